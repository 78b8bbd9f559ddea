"""Whole-scene fusion, window by window, in bounded memory (the default ``adaptive`` mode).

A full Sentinel-2 tile is 10980 × 10980 pixels per band (482 MB as float32): it
is never held in memory. The image is reached only through a ``read`` callable
and the results leave through ``write`` callables, so this module stays free of
GDAL and works the same on an in-memory array (:func:`array_reader`) and on a
raster file read block by block by the Processing algorithm:

- ``read(row0, col0, nrows, ncols) -> ndarray (bands, nrows, ncols)`` (float, NaN = nodata);
- ``write(element_index, row0, values)`` with ``values`` a full-width block ``(nrows, cols)``.

Fit steps use samples: the feature transform (PCA) and the K-means units are
fitted on a seeded sample of pixels read from random windows, and the adaptive
trend on small chips read around the geochemical samples. Kriging runs on the
coarse grid only. Then every row block (with the few rows of context the
support window needs) is transformed once and predicted for every element, so
extra elements only add their own trend and residual.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from .adaptive import DEFAULT_WINDOWS, feature_stack, fit_adaptive_samples
from .grid import Grid
from .kriging import OrdinaryKrigingModel
from .progress import step
from .resample import resample_cubic

__all__ = [
    "FeatureTransform",
    "SceneResult",
    "array_reader",
    "block_rows_for",
    "fuse_scene",
    "sample_pixels_from_windows",
]

logger = logging.getLogger(__name__)

BLOCK_PIXELS = 2 ** 21
"""Pixels per row block (about 2 M: a few hundred MB of float64 features at most)."""


def array_reader(image):
    """A ``read`` callable over an in-memory ``(bands, rows, cols)`` array."""
    image = np.asarray(image)

    def read(row0, col0, nrows, ncols):
        return np.asarray(image[:, row0:row0 + nrows, col0:col0 + ncols], dtype=np.float64)

    return read


def block_rows_for(ncols, n_features=1):
    """Rows per block so that a block holds about :data:`BLOCK_PIXELS` pixels."""
    return max(16, BLOCK_PIXELS // max(1, ncols) // max(1, n_features // 4))


def sample_pixels_from_windows(read, shape, *, n_pixels=200_000, size=64, random_state=0):
    """Up to ``n_pixels`` valid pixels ``(bands, n)`` from random ``size`` × ``size`` windows.

    Windows are placed at seeded random positions; pixels with any NaN band
    are dropped; the collected pixels are subsampled (seeded) to ``n_pixels``.
    """
    rows, cols = shape
    rng = np.random.default_rng(random_state)
    size_r, size_c = min(size, rows), min(size, cols)
    n_windows = max(4, int(math.ceil(2 * n_pixels / (size_r * size_c))))
    n_windows = min(n_windows, max(1, (rows // size_r) * (cols // size_c)) * 4)
    chunks = []
    for _ in range(n_windows):
        r0 = int(rng.integers(0, rows - size_r + 1))
        c0 = int(rng.integers(0, cols - size_c + 1))
        block = read(r0, c0, size_r, size_c)
        flat = block.reshape(block.shape[0], -1)
        chunks.append(flat[:, np.isfinite(flat).all(axis=0)])
    pixels = np.concatenate(chunks, axis=1)
    if pixels.shape[1] == 0:
        raise ValueError(
            "the image has no valid pixels (every band is nodata where it was sampled): check the "
            "image's nodata value and extent"
        )
    if pixels.shape[1] > n_pixels:
        pixels = pixels[:, np.sort(rng.choice(pixels.shape[1], n_pixels, replace=False))]
    return pixels


class FeatureTransform:
    """Image bands → fusion features, fitted on a pixel sample, applied to any window.

    ``features``: ``"bands"`` (every band), ``"bands-pc2"`` / ``"indices-pc2"``
    (PC2 of the bands / of the mineral indices, the paper's choice) or
    ``"pcs"`` (the 1-based components in ``pcs``).
    """

    def __init__(self, features="bands", *, sensor="sentinel2", band_map=None, pcs=(2,),
                 band_names=None, standardize=True, random_state=0):
        from .pipeline import FEATURE_CHOICES

        if features not in FEATURE_CHOICES:
            raise ValueError(f"features must be one of {FEATURE_CHOICES}, got {features!r}")
        self.features = features
        self.sensor = sensor
        self.band_map = band_map
        self.pcs = tuple(int(p) for p in pcs)
        self.band_names = list(band_names) if band_names else None
        self.standardize = standardize
        self.random_state = random_state

    def _source(self, stack):
        if self.features == "indices-pc2":
            from .indices import compute_indices

            result = compute_indices(stack, self.band_map, sensor=self.sensor,
                                     indices=self.index_keys_)
            return result.data
        return stack

    def fit(self, pixels):
        """Fit on valid pixels ``(bands, n)``."""
        from .pca import PCA

        pixels = np.asarray(pixels, dtype=np.float64)
        p = pixels.shape[0]
        names = self.band_names or [f"Band {i + 1}" for i in range(p)]
        self.n_bands_ = p
        self.pca_ = None
        self.index_keys_ = None
        self.source_names_ = names
        if self.features == "bands":
            self.names_ = names
            return self
        stack = pixels[:, None, :]
        if self.features == "indices-pc2":
            from .indices import compute_indices, default_band_map

            if self.band_map is None:
                self.band_map = default_band_map(p, self.sensor)
            result = compute_indices(stack, self.band_map, sensor=self.sensor)
            self.index_keys_ = [ix.key for ix in result.indices]
            self.source_names_ = [ix.label for ix in result.indices]
            stack = result.data
        wanted = (2,) if self.features in ("bands-pc2", "indices-pc2") else self.pcs
        if not wanted or min(wanted) < 1 or max(wanted) > stack.shape[0]:
            raise ValueError(
                f"principal components {wanted} requested, but only {stack.shape[0]} inputs are "
                f"available ({', '.join(self.source_names_)}); choose components between 1 and "
                f"{stack.shape[0]}"
            )
        self.wanted_ = wanted
        self.pca_ = PCA(max(wanted), standardize=self.standardize,
                        random_state=self.random_state).fit(stack)
        self.names_ = [f"PC{w}" for w in wanted]
        return self

    def transform(self, block):
        """Features ``(q, rows, cols)`` of an image block ``(bands, rows, cols)``."""
        block = np.asarray(block, dtype=np.float64)
        if self.features == "bands":
            return block
        comps = self.pca_.transform(self._source(block))
        return comps[[w - 1 for w in self.wanted_]]


@dataclass
class SceneResult:
    """What :func:`fuse_scene` fitted (the fused layers themselves went to ``write``).

    ``previews`` holds decimated layers on ``preview_grid`` for reports:
    ``{"<element> fused", "<element> kriged", "features", "units"}``.
    """

    fits: dict
    kriging: dict
    transform: FeatureTransform
    kmeans: object
    sample_spacing: float
    kriging_grid: Grid
    previews: dict
    preview_grid: Grid
    notes: list

    def as_pipeline_result(self):
        """The same shape as :func:`~.pipeline.fuse_samples` returns, with the previews as layers."""
        from .pipeline import ElementResult, ImageFeatures, PipelineResult

        elements = {}
        for name, fit in self.fits.items():
            if fit.fused is None:
                fit.fused = self.previews.get(f"{name} fused")
            elements[name] = ElementResult(name, self.kriging[name],
                                           self.previews.get(f"{name} kriged"), fit)
        feats = ImageFeatures(self.previews.get("features"), self.transform.names_,
                              pca=self.transform.pca_,
                              source_names=self.transform.source_names_)
        return PipelineResult(elements, feats, self.previews.get("units"), self.kmeans, 0,
                              self.sample_spacing, self.kriging_grid, self.notes)


def _chips(read, grid, x, y, half):
    """Chips ``(n, bands, 2·half+1, 2·half+1)`` around the sample pixels (NaN beyond the image)."""
    col, row = grid.to_pixel(x, y)
    r = np.round(row).astype(int)
    c = np.round(col).astype(int)
    size = 2 * half + 1
    chips = None
    for i, (ri, ci) in enumerate(zip(r, c)):
        r0, r1 = max(ri - half, 0), min(ri + half + 1, grid.nrows)
        c0, c1 = max(ci - half, 0), min(ci + half + 1, grid.ncols)
        if r0 >= r1 or c0 >= c1:
            continue
        block = read(r0, c0, r1 - r0, c1 - c0)
        if chips is None:
            chips = np.full((r.size, block.shape[0], size, size), np.nan)
        chips[i, :, r0 - ri + half:r1 - ri + half, c0 - ci + half:c1 - ci + half] = block
    return chips


def fuse_scene(x, y, values, read, image_grid, write, *, band_names=None, features="bands",
               sensor="sentinel2", band_map=None, pcs=(2,), regression="global", n_clusters=5,
               log_transform=False, variogram="auto", cell_size=None, block_rows=None,
               sample_size=200_000, random_state=0, windows=DEFAULT_WINDOWS,
               write_features=None, write_units=None, preview_size=600, progress=None,
               cancel=None):
    """Adaptive fusion of one or several elements over a whole scene, block by block.

    Parameters
    ----------
    x, y : array_like, shape (n,)
        Sample coordinates in the image CRS (metres).
    values : dict of str -> array_like (n,)
        Concentrations per element (NaN = not analysed).
    read : callable
        ``read(row0, col0, nrows, ncols) -> (bands, nrows, ncols)`` over the image.
    image_grid : Grid
    write : callable
        ``write(element_index, row0, fused_block)``: full-width row blocks of
        each fused element, in data units.
    write_features, write_units : callable, optional
        ``write_x(row0, block)`` for the features ``(q, rows, cols)`` and the
        units ``(rows, cols)``.
    preview_size : int or None
        Longest side of the decimated previews kept in the result (None: none).
    progress, cancel : callables
        See :mod:`geochem_fusion.core.progress`; polled per block.

    Other parameters as :func:`~geochem_fusion.core.pipeline.fuse_samples`.
    """
    from .pipeline import _check_samples_on_grid, kriging_grid

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if not values:
        raise ValueError("no element field given: choose at least one concentration field")
    if regression not in ("global", "local"):
        raise ValueError(f"regression must be 'global' or 'local', got {regression!r}")
    rows, cols = image_grid.shape
    inside, near, spacing = _check_samples_on_grid(x, y, image_grid)
    kgrid = kriging_grid(image_grid, spacing, cell_size=cell_size)
    notes = []
    names = list(values)
    n_work = 3 + 2 * len(names)

    # --- image work, once for all elements -----------------------------------------------
    step(progress, cancel, 0.0, "sampling image pixels for the feature transform")
    pixels = sample_pixels_from_windows(read, image_grid.shape, n_pixels=sample_size,
                                        random_state=random_state)
    transform = FeatureTransform(features, sensor=sensor, band_map=band_map, pcs=pcs,
                                 band_names=band_names,
                                 random_state=random_state).fit(pixels)
    kmeans = None
    if regression == "local":
        from .clustering import KMeansUnits

        step(progress, cancel, 1 / n_work, f"clustering {n_clusters} geological units (K-means)")
        sample_features = transform.transform(pixels[:, None, :])
        kmeans = KMeansUnits(n_clusters, sample_size=sample_size,
                             random_state=random_state).fit(sample_features)

    half = max(windows) // 2
    chips_raw = _chips(read, image_grid, x, y, half)
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

    # --- per element: kriging alone (for the outputs) and the adaptive fit ---------------
    fits, krigings = {}, {}
    for i, name in enumerate(names):
        vals = np.asarray(values[name], dtype=np.float64)
        ok = near & np.isfinite(vals)
        step(progress, cancel, (2 + 2 * i) / n_work, f"{name}: kriging {int(ok.sum())} samples")
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
        krigings[name] = OrdinaryKrigingModel(variogram, log_transform=log_transform).fit(
            x[ok], y[ok], vals[ok]).krige_grid(kgrid)
        step(progress, cancel, (3 + 2 * i) / n_work, f"{name}: choosing the image model")
        fits[name] = fit_adaptive_samples(
            x[ok], y[ok], z, chips[ok], kgrid, band_names=transform.names_,
            variogram=variogram, windows=windows, random_state=random_state,
            labels=None if labels is None else labels[ok])
        fits[name].mode = "adaptive"
        fit = fits[name]
        notes.append(
            f"{name}: " + ("kriging alone (the image did not improve the cross-validation)"
                           if fit.shrink == 0 else
                           f"image trend on {fit.feature_set}, {fit.window} px window, "
                           f"shrink {fit.shrink:.2f}; CV RMSE {fit.loo_rmse:.4g} vs kriging "
                           f"alone {fit.kriging_alone_rmse:.4g}"))

    # --- every block once, every element on it -------------------------------------------
    halo = max(f.halo for f in fits.values())
    block_rows = block_rows or block_rows_for(cols, 2 * p)
    stride = max(1, int(math.ceil(max(rows, cols) / preview_size))) if preview_size else None
    previews = {}
    if stride:
        pshape = (len(range(0, rows, stride)), len(range(0, cols, stride)))
        for name in names:
            previews[f"{name} fused"] = np.full(pshape, np.nan)
        previews["features"] = np.full((len(transform.names_), *pshape), np.nan)
        if kmeans is not None:
            previews["units"] = np.full(pshape, -1)
    n_blocks = int(math.ceil(rows / block_rows))
    for b, r0 in enumerate(range(0, rows, block_rows)):
        step(progress, cancel, (n_work - 1 + b / n_blocks) / n_work,
             f"block {b + 1}/{n_blocks}" if b % 10 == 0 else None)
        r1 = min(r0 + block_rows, rows)
        if stride:  # preview rows in this block: every stride-th image row
            first = r0 + (-r0) % stride
            dst = slice(first // stride, first // stride + len(range(first, r1, stride)))
            sel = slice(first - r0, None, stride)
        a0, a1 = max(r0 - halo, 0), min(r1 + halo, rows)
        core = slice(r0 - a0, r0 - a0 + (r1 - r0))
        block_grid = image_grid.window(a0, 0, a1 - a0, cols)
        F0 = transform.transform(read(a0, 0, a1 - a0, cols))
        units = kmeans.predict(F0) if kmeans is not None else None
        cache = {}
        for i, name in enumerate(names):
            fit = fits[name]
            residual = resample_cubic(fit.kriging.estimate, kgrid, block_grid)
            if fit.shrink > 0:
                key = (fit.feature_set, fit.window)
                if key not in cache:
                    cache[key] = feature_stack(F0, fit.feature_set, window=fit.window)[0]
                fused = fit.trend_from_features(cache[key], labels=units) + residual
            else:
                fused = np.where(np.isfinite(F0).all(axis=0), residual, np.nan)
            fused = fused[core]
            if log_transform:
                fused = np.power(10.0, fused)
            write(i, r0, fused)
            if stride:
                previews[f"{name} fused"][dst] = fused[sel, ::stride]
        if write_features is not None:
            write_features(r0, F0[:, core])
        if write_units is not None and units is not None:
            write_units(r0, units[core])
        if stride:
            previews["features"][:, dst] = F0[:, core][:, sel, ::stride]
            if units is not None:
                previews["units"][dst] = units[core][sel, ::stride]
    step(progress, cancel, 1.0, "done")
    preview_grid = None
    if stride:
        preview_grid = Grid(image_grid.x_min, image_grid.y_max, image_grid.cell_x * stride,
                            image_grid.cell_y * stride, previews["features"].shape[2],
                            previews["features"].shape[1])
        for name in names:
            k = krigings[name]
            previews[f"{name} kriged"] = resample_cubic(k.estimate, kgrid, preview_grid)
    return SceneResult(fits, krigings, transform, kmeans, float(spacing), kgrid, previews,
                       preview_grid, notes)

