"""The adaptive chain over a whole scene, block by block: the product's default mode.

Fit (:func:`fit_adaptive_scene`), on samples only: the feature transform (PCA)
and the K-means units are fitted on a seeded sample of pixels read from random
windows (:func:`~.features.fit_image_model`), the adaptive trend of each element
on small chips read around the geochemical samples
(:func:`~.adaptive.fit_adaptive_samples`), and the residuals are kriged on the
coarse grid only. The fitted :class:`AdaptiveSceneModel` is small (coefficients,
a coarse grid per element), so it can be sent to other processes.

Predict (:meth:`AdaptiveSceneModel.predict_block`): every row block (with the
few rows of context the support window needs) is transformed once and
predicted for every element, so extra elements only add their own trend and
residual. :meth:`AdaptiveSceneModel.predict` does it for all the blocks of a
scene in worker threads (:func:`~.blocks.ordered_map`), writing them in order.

The elements are fitted in worker threads too (while the calling thread
reports progress and polls cancel). The numerics release the GIL and every
block is computed alone, so the results do not depend on the number of threads.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

from .adaptive import AdaptiveOptions, feature_stack, fit_adaptive_samples, read_chips
from .blocks import Previews, block_rows_for, ordered_map, row_blocks, run_tasks
from .features import fit_image_model
from .grid import Grid
from .kriging import OrdinaryKrigingModel, load_pykrige
from .progress import step
from .resample import resample_cubic
from .samples import scene_samples
from .vocabulary import SceneResult

__all__ = ["AdaptiveSceneModel", "ImagePart", "describe", "element_inputs", "fit_adaptive_scene",
           "fit_element", "fit_image_part"]

CHIPS, FITTED = 0.1, 0.4
"""Progress shares: image sampling up to 10 %, the element fits up to 40 %, then the blocks."""


@dataclass
class AdaptiveSceneModel:
    """The fitted adaptive chain: everything a row block needs, nothing image-sized.

    ``fits`` maps each element to its :class:`~.adaptive.AdaptiveFit` (trend
    coefficients and the kriged residual on ``kriging_grid``); ``kriging`` to
    its kriging alone (or None).
    """

    names: list
    fits: dict
    kriging: dict
    transform: object  # core.features.FeatureTransform
    kmeans: object
    image_grid: Grid
    kriging_grid: Grid
    sample_spacing: float
    log_transform: bool
    block_rows: int
    notes: list

    def __post_init__(self):
        fits = [self.fits[name] for name in self.names]
        self.halo = max(f.halo for f in fits)
        self._estimates = np.stack([f.kriging.estimate for f in fits])
        # the features of all the trends from one computation per block: the unfiltered
        # features of the widest set once, then one window mean per window, as many features
        # as the trends on that window use (the bands come first in every feature set)
        self._trends = [f for f in fits if f.shrink > 0]
        self._widest = ("bands+ratios" if any(f.feature_set == "bands+ratios"
                                              for f in self._trends) else "bands")
        self._needed = {}
        for fit in self._trends:
            self._needed[fit.window] = max(self._needed.get(fit.window, 0),
                                           len(fit.feature_names))

    def units_everywhere(self, write_units=False):
        """Whether every pixel needs its unit: a local trend, or the units output."""
        return self.kmeans is not None and (
            write_units or any(f.shrink > 0 and f.unit_fits for f in self.fits.values()))

    def predict_window(self, read, row0, col0, nrows, ncols, *, units=False):
        """Fused elements, features and units of a window of the image.

        ``read`` reaches the whole image; the window is read with :attr:`halo`
        pixels of context on each side (clamped at the image's edges, where the
        whole-image run sees the same edge), so the result equals the
        whole-image one to rounding whatever the windows. ``units``: predict
        the units on every pixel (else only where a local trend needs them).
        Returns ``(fused, features, units)``: one ``(nrows, ncols)`` array per
        element in data units, ``(q, nrows, ncols)`` and ``(nrows, ncols)`` or None.
        """
        rows, cols = self.image_grid.shape
        r0, r1 = row0, min(row0 + nrows, rows)
        c0, c1 = col0, min(col0 + ncols, cols)
        # the features need `halo` pixels of context; everything else is per pixel
        a0, a1 = max(r0 - self.halo, 0), min(r1 + self.halo, rows)
        b0, b1 = max(c0 - self.halo, 0), min(c1 + self.halo, cols)
        core = (slice(r0 - a0, r0 - a0 + (r1 - r0)), slice(c0 - b0, c0 - b0 + (c1 - c0)))
        image_block = read(a0, b0, a1 - a0, b1 - b0)
        all_features = self.transform.transform(image_block)
        features = all_features[(slice(None), *core)]
        labels = self.kmeans.predict(features) if self.units_everywhere(units) else None
        # one cubic resampling of the kriged residuals for all elements
        residuals = resample_cubic(self._estimates, self.kriging_grid,
                                   self.image_grid.window(r0, c0, r1 - r0, c1 - c0))
        windowed = {}
        if self._trends:
            raw = feature_stack(all_features, self._widest)[0]
            windowed = {w: (raw[:k] if w == 1 else
                            feature_stack(raw[:k], "bands", window=w)[0])[(slice(None), *core)]
                        for w, k in self._needed.items()}
        fused = []
        valid = None
        for i, name in enumerate(self.names):
            fit = self.fits[name]
            if fit.shrink > 0:
                out = fit.trend_from_features(windowed[fit.window][:len(fit.feature_names)],
                                              labels=labels)
                out += residuals[i]
            else:
                if valid is None:
                    valid = np.isfinite(features).all(axis=0)
                out = np.where(valid, residuals[i], np.nan)
            fused.append(np.power(10.0, out) if self.log_transform else out)
        return fused, features, labels

    def predict_block(self, read, row0, nrows, *, units=False):
        """:meth:`predict_window` of rows ``row0 : row0 + nrows``, full width."""
        return self.predict_window(read, row0, 0, nrows, self.image_grid.ncols, units=units)

    def predict(self, read, sinks):
        """Every row block of the scene, computed in worker threads, written in order.

        ``sinks``: a :class:`~.vocabulary.Sinks`. Returns the
        :class:`~.vocabulary.SceneResult`.
        """
        rows, _ = self.image_grid.shape
        progress, cancel = sinks.progress, sinks.cancel
        previews = (Previews(self.image_grid, self.names, len(self.transform.names_),
                             units=self.kmeans is not None, preview_size=sinks.preview_size)
                    if sinks.preview_size else None)
        read_lock = threading.Lock()  # the reader (a GDAL dataset) serves one thread at a time

        def locked_read(*window):
            with read_lock:
                return read(*window)

        def compute(block):
            """Everything on one row block (in a worker thread)."""
            r0, nrows = block
            fused, features, labels = self.predict_block(
                locked_read, r0, nrows, units=sinks.write_units is not None)
            result = {"r0": r0, "fused": fused, "units": labels}
            if sinks.write_features is not None:
                result["features"] = features
            if previews is not None:
                result["preview"] = previews.take(r0, fused, features, labels, self.kmeans)
            return result

        n_blocks = int(math.ceil(rows / self.block_rows))

        def consume(b, result):
            """Progress, cancel and the outputs of block ``b`` (in this thread, in order)."""
            step(progress, cancel, FITTED + (1 - FITTED) * b / n_blocks,
                 f"block {b + 1}/{n_blocks}" if b % 10 == 0 else None)
            r0 = result["r0"]
            for i, block in enumerate(result["fused"]):
                sinks.write(i, r0, block)
            if sinks.write_features is not None:
                sinks.write_features(r0, result["features"])
            if sinks.write_units is not None and result["units"] is not None:
                sinks.write_units(r0, result["units"])
            if previews is not None:
                previews.put(result["preview"])

        ordered_map(compute, row_blocks(rows, self.block_rows), consume)
        step(progress, cancel, 1.0, "done")
        if previews is not None:
            previews.add_kriged(self.kriging, self.kriging_grid)
        return SceneResult(self.fits, self.kriging, self.transform, self.kmeans,
                           float(self.sample_spacing), self.kriging_grid,
                           previews.layers if previews else {},
                           previews.grid if previews else None, self.notes)


@dataclass
class ImagePart:
    """The image side of the adaptive fit, shared by all elements.

    The feature transform and units (:func:`~.features.fit_image_model`), the
    features of the chips around the samples and the samples' units, which
    samples are near enough to krige from, their spacing and the kriging grid.
    """

    x: np.ndarray
    y: np.ndarray
    transform: object
    kmeans: object
    chips: np.ndarray
    labels: np.ndarray
    near: np.ndarray
    spacing: float
    kriging_grid: Grid


def fit_image_part(x, y, values, read, image_grid, settings, *, progress=None, cancel=None):
    """The image work of the adaptive fit, once for all elements (reads the image).

    Parameters as :func:`fit_adaptive_scene`. Returns an :class:`ImagePart`.
    """
    x, y, near, spacing, kgrid = scene_samples(x, y, values, image_grid, settings.cell_size)
    transform, kmeans, _ = fit_image_model(read, image_grid, settings, progress=progress,
                                           cancel=cancel)
    half = max(settings.windows) // 2
    step(progress, cancel, 0.08, f"reading the image around {x.size} samples")
    chips_raw = read_chips(read, image_grid, x, y, half)
    if chips_raw is None:
        raise ValueError("no sample falls on the image")
    n, p, s, _ = chips_raw.shape
    # features of the chips: transform them side by side as one (bands, s, n*s) block
    flat = chips_raw.transpose(1, 2, 0, 3).reshape(p, s, n * s)
    feat = transform.transform(flat)
    chips = feat.reshape(feat.shape[0], s, n, s).transpose(2, 0, 1, 3)
    labels = None
    if kmeans is not None:
        centre = chips[:, :, half, half].T[:, :, None]  # (q, n, 1)
        labels = kmeans.predict(centre)[:, 0]
    return ImagePart(x, y, transform, kmeans, chips, labels, near, float(spacing), kgrid)


def element_inputs(values, part, log_transform=False):
    """Per element, what its fit needs: ``({name: (x, y, z, chips, labels)}, {name: count})``.

    ``z`` in the fit space (log10 with ``log_transform``); only the samples near
    the image with a value.
    """
    inputs, counts = {}, {}
    for name in values:
        vals = np.asarray(values[name], dtype=np.float64)
        ok = part.near & np.isfinite(vals)
        counts[name] = int(ok.sum())
        z = vals[ok]
        if log_transform:
            bad = z <= 0
            if bad.any():
                raise ValueError(
                    f"log transform needs positive values, but {int(bad.sum())} {name} samples "
                    "are <= 0: replace below-detection codes (e.g. by half the detection limit) "
                    "or turn the log transform off"
                )
            z = np.log10(z)
        inputs[name] = (part.x[ok], part.y[ok], z, part.chips[ok],
                        None if part.labels is None else part.labels[ok])
    return inputs, counts


def fit_element(inputs, kriging_grid, band_names, settings):
    """The adaptive fit of one element (one task: independent of the other elements)."""
    x, y, z, chips, labels = inputs
    fit = fit_adaptive_samples(x, y, z, chips, kriging_grid, band_names=band_names,
                               labels=labels, variogram=settings.variogram,
                               options=AdaptiveOptions(windows=settings.windows),
                               random_state=settings.random_state)
    fit.mode = "adaptive"
    return fit


def describe(name, fit):
    """One line on what the fit of ``name`` chose (the run's notes)."""
    if fit.shrink == 0:
        return f"{name}: kriging alone (the image did not improve the cross-validation)"
    return (f"{name}: image trend on {fit.feature_set}, {fit.window} px window, "
            f"shrink {fit.shrink:.2f}; CV RMSE {fit.loo_rmse:.4g} vs kriging "
            f"alone {fit.kriging_alone_rmse:.4g}")


def fit_adaptive_scene(x, y, values, read, image_grid, settings, *, krige_alone=True,
                       progress=None, cancel=None):
    """Fit the adaptive chain on the samples and a pixel sample of the scene.

    :func:`fit_image_part`, then :func:`fit_element` for every element (and
    kriging alone for the outputs) in worker threads.

    Parameters
    ----------
    x, y : array_like, shape (n,)
        Sample coordinates in the image CRS (metres).
    values : dict of str -> array_like (n,)
        Concentrations per element (NaN = not analysed).
    read : callable
        ``read(row0, col0, nrows, ncols) -> (bands, nrows, ncols)`` over the image.
    image_grid : Grid
    settings : FusionSettings
        See :class:`~.vocabulary.FusionSettings` (``levels`` and
        ``blend_sigma`` do not apply).
    krige_alone : bool
        Also krige each element alone (for the kriged outputs and the report).
    progress, cancel : callables
        See :mod:`~.progress`; reported from 0 to 40 % and polled every
        :data:`~.blocks.POLL_SECONDS` while the elements are fitted.

    Returns
    -------
    AdaptiveSceneModel
    """
    load_pykrige()  # here, not first in the worker threads that krige
    names = list(values)
    part = fit_image_part(x, y, values, read, image_grid, settings, progress=progress,
                          cancel=cancel)
    x, y, kgrid = part.x, part.y, part.kriging_grid
    inputs, counts = element_inputs(values, part, settings.log_transform)
    band_names = part.transform.names_
    tasks = {("fit", name): (lambda args=inputs[name]: fit_element(args, kgrid, band_names,
                                                                      settings))
             for name in names}
    if krige_alone:  # after the fits: the longest tasks start first
        for name in names:
            vals = np.asarray(values[name], dtype=np.float64)
            ok = part.near & np.isfinite(vals)
            tasks[("kriging", name)] = (
                lambda ok=ok, vals=vals: OrdinaryKrigingModel(
                    settings.variogram, log_transform=settings.log_transform).fit(
                    x[ok], y[ok], vals[ok]).krige_grid(kgrid))
    done = run_tasks(
        tasks, progress, cancel, CHIPS, FITTED - CHIPS,
        "; ".join(f"{name}: kriging {counts[name]} samples" for name in names)
        + " and choosing the image model")
    fits = {name: done[("fit", name)] for name in names}
    krigings = {name: done.get(("kriging", name)) for name in names}
    block_rows = settings.block_rows or block_rows_for(image_grid.ncols,
                                                       2 * part.transform.n_bands_)
    return AdaptiveSceneModel(names, fits, krigings, part.transform, part.kmeans, image_grid,
                              kgrid, part.spacing, bool(settings.log_transform), block_rows,
                              [describe(name, fits[name]) for name in names])
