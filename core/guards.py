"""Last checks of every fused block before it is written: holes and impossible values.

A fused concentration layer must never be silently wrong:

* **holes** -- where the image has no data (clouds, a gap between flight
  lines, the edge of a scene) but the samples do, the fused layer falls back
  to the kriged estimate instead of being blank, and the share of such pixels
  is counted;
* **impossible values** -- a concentration is never negative.  The regression
  and the detail injection can overshoot below zero where the geochemistry is
  low and the image contrast strong; those pixels are counted per element and,
  by default, set to zero (``clip_negative``).  The log transform avoids them
  at the source (a back-transformed value is always positive).

:class:`FusedGuard` wraps the ``write(element_index, row0, block)`` callback
of the block-by-block chains; :meth:`FusedGuard.notes` gives the messages for
the log and the report.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from .resample import resample_cubic

__all__ = ["HOLE_REACH", "FusedGuard", "kriged_support"]

HOLE_REACH = 3.0
"""Image holes within this many median sample spacings of a sample fall back to kriging
(as far as the kriging of an extent reaches beyond the samples, see ``krigesamples``)."""


def kriged_support(x, y, kgrid, reach):
    """Cells of ``kgrid`` within ``reach`` map units of a sample (where the samples "have data").

    Returns a boolean ``(rows, cols)`` mask of the kriging grid.
    """
    rows, cols = kgrid.shape
    cx = kgrid.x_min + (np.arange(cols) + 0.5) * kgrid.cell_x
    cy = kgrid.y_max - (np.arange(rows) + 0.5) * kgrid.cell_y
    xx, yy = np.meshgrid(cx, cy)
    d, _ = cKDTree(np.column_stack([x, y])).query(np.column_stack([xx.ravel(), yy.ravel()]))
    return (d <= reach).reshape(rows, cols)


class FusedGuard:
    """Checks and repairs fused blocks on their way to ``write``.

    Parameters
    ----------
    names : list of str
        Elements, in the order of the writer's bands.
    write : callable
        ``write(element_index, row0, block)`` of the output.
    image_grid : Grid
        Grid of the fused layer.
    clip_negative : bool
        Set negative concentrations to zero (they are counted either way).
    kriged : list of KrigingResult-like, or a callable returning it, optional
        Per element, an object with ``estimate`` (data units) and ``grid``
        (the coarse kriging grid), or None: where a fused block is nodata and
        the kriged estimate (cubic on the image grid) is not, the block takes
        the kriged estimate.  A callable is called once, at the first hole
        within the support (so that a kriging only the holes need is only
        computed when there is a hole).  Set it (:meth:`set_kriged`) before the
        first block is written.
    support : ndarray of bool, optional
        Mask of the kriging grid where the fallback applies (see
        :func:`kriged_support`); default everywhere the estimate is finite.
    kriging_grid : Grid, optional
        The grid of ``support`` (needed with ``support``).
    """

    def __init__(self, names, write, image_grid, *, clip_negative=True, kriged=None,
                 support=None, kriging_grid=None):
        self.names = list(names)
        self._write = write
        self.image_grid = image_grid
        self.clip_negative = bool(clip_negative)
        n = len(self.names)
        self.negative = np.zeros(n, dtype=np.int64)
        self.minimum = np.full(n, np.inf)
        self.filled = np.zeros(n, dtype=np.int64)
        self.valid = np.zeros(n, dtype=np.int64)
        self.pixels = np.zeros(n, dtype=np.int64)
        self.kriged = None
        self._source = None
        self.support = None
        self.kriging_grid = None
        if kriged is not None:
            self.set_kriged(kriged, support, kriging_grid)

    def set_kriged(self, kriged, support=None, kriging_grid=None):
        """The kriged estimates the holes fall back to (None entries: no fallback)."""
        if support is not None and kriging_grid is None:
            raise ValueError("give the kriging grid of the support mask")
        self._source = kriged
        self.kriged = None if callable(kriged) else list(kriged)
        self.support, self.kriging_grid = support, kriging_grid

    def _in_support(self, row0, nrows, kgrid):
        """Image pixels of rows ``row0 : row0 + nrows`` whose kriging cell is in the support."""
        if self.support is None:
            return None
        g = self.image_grid
        cx = g.x_min + (np.arange(g.ncols) + 0.5) * g.cell_x
        cy = g.y_max - (np.arange(row0, row0 + nrows) + 0.5) * g.cell_y
        ci = np.floor((cx - kgrid.x_min) / kgrid.cell_x).astype(np.int64)
        ri = np.floor((kgrid.y_max - cy) / kgrid.cell_y).astype(np.int64)
        inside_c = (ci >= 0) & (ci < kgrid.ncols)
        inside_r = (ri >= 0) & (ri < kgrid.nrows)
        out = np.zeros((nrows, g.ncols), dtype=bool)
        out[np.ix_(inside_r, inside_c)] = self.support[np.ix_(ri[inside_r], ci[inside_c])]
        return out

    def _kriged_block(self, i, row0, nrows, hole):
        if self._source is None:
            return None
        if self.support is not None and not (
                hole & self._in_support(row0, nrows, self.kriging_grid)).any():
            return None  # no hole within reach of the samples here
        if self.kriged is None:  # the first hole: compute the kriging it needs now
            self.kriged = list(self._source())
        k = self.kriged[i]
        if k is None:
            return None
        target = self.image_grid.window(row0, 0, nrows, self.image_grid.ncols)
        estimate = np.asarray(k.estimate, dtype=np.float64)
        if self.support is not None:
            estimate = np.where(self.support, estimate, np.nan)
        return resample_cubic(estimate[None], k.grid, target)[0]

    def write(self, i, row0, block):
        """Check block ``block`` (rows from ``row0``) of element ``i``, then write it."""
        block = np.array(block, dtype=np.float64)
        hole = ~np.isfinite(block)
        if hole.any() and self._source is not None:
            fallback = self._kriged_block(i, row0, block.shape[0], hole)
            if fallback is not None:
                fill = hole & np.isfinite(fallback)
                block[fill] = fallback[fill]
                self.filled[i] += int(fill.sum())
        finite = np.isfinite(block)
        self.valid[i] += int(finite.sum())
        self.pixels[i] += block.size
        with np.errstate(invalid="ignore"):
            negative = block < 0
        if negative.any():
            self.negative[i] += int(negative.sum())
            self.minimum[i] = min(self.minimum[i], float(block[negative].min()))
            if self.clip_negative:
                block[negative] = 0.0
        self._write(i, row0, block)

    def notes(self, *, log_transform=False, mode=""):
        """Messages for the log and the report: ``(warnings, infos)``."""
        warnings, infos = [], []
        for i, name in enumerate(self.names):
            if self.filled[i]:
                share = 100.0 * self.filled[i] / max(self.pixels[i], 1)
                warnings.append(
                    f"{name}: {self.filled[i]} pixels ({share:.1f} % of the layer) have no image "
                    "data but lie within reach of the samples: the fused layer there is the "
                    "kriged estimate (no image detail).")
            if self.negative[i]:
                share = 100.0 * self.negative[i] / max(self.valid[i], 1)
                done = ("set to 0 (a concentration cannot be negative; untick 'Clip negative "
                        "concentrations to 0' to keep the raw values)" if self.clip_negative
                        else "kept as computed (clipping is off)")
                hint = ("" if log_transform else
                        " The log transform avoids them at the source: its back-transformed "
                        "values are always positive.")
                warnings.append(
                    f"{name}: {self.negative[i]} fused pixels ({share:.2f} %) were negative "
                    f"(minimum {self.minimum[i]:.4g}) in the {mode + ' ' if mode else ''}"
                    f"fusion: {done}.{hint}")
        return warnings, infos

    def metadata(self):
        """Items for the fused layer's metadata (per element, 1-based band order)."""
        meta = {}
        for i in range(len(self.names)):
            share = 100.0 * self.filled[i] / max(self.pixels[i], 1)
            meta[f"KRIGED_FALLBACK_PERCENT_{i + 1}"] = f"{share:.3f}"
            meta[f"NEGATIVE_PIXELS_{i + 1}"] = str(int(self.negative[i]))
        meta["NEGATIVE_VALUES"] = "clipped to 0" if self.clip_negative else "kept"
        meta["IMAGE_HOLES"] = ("kriged estimate where the image has no data within reach of the "
                               "samples" if self._source is not None else "nodata")
        return meta
