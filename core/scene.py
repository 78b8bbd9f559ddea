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

Both CPUs are used: the elements are fitted in worker threads (while this
thread reports progress and polls cancel), and the row blocks are computed by
worker threads and written in order by the calling thread. The numerics
release the GIL and every block is computed alone, so the results do not
depend on the number of threads.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import logging
import math
import os
import threading
import time
from dataclasses import dataclass

import numpy as np

from .adaptive import DEFAULT_WINDOWS, feature_stack, fit_adaptive_samples, read_chips
from .grid import Grid
from .kriging import OrdinaryKrigingModel, _single_threaded_blas
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
POLL_SECONDS = 0.5
"""How often progress is reported and cancel polled while the per-element fits run."""
MAX_WORKERS = 4
"""Row blocks computed at once (at most; one per CPU)."""


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


def scene_samples(x, y, values, regression, image_grid, cell_size=None):
    """Checks and geometry shared by the scene functions.

    Returns ``(x, y, near, spacing, kgrid)``: float coordinates, the samples near
    enough to the image to krige from, their median spacing and the coarse
    kriging grid (:func:`~.pipeline.kriging_grid`).
    """
    from .pipeline import _check_samples_on_grid, kriging_grid

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if not values:
        raise ValueError("no element field given: choose at least one concentration field")
    if regression not in ("global", "local"):
        raise ValueError(f"regression must be 'global' or 'local', got {regression!r}")
    _, near, spacing = _check_samples_on_grid(x, y, image_grid)
    return x, y, near, spacing, kriging_grid(image_grid, spacing, cell_size=cell_size)


def fit_image_model(read, image_grid, *, features="bands", sensor="sentinel2", band_map=None,
                    pcs=(2,), band_names=None, regression="global", n_clusters=5,
                    sample_size=200_000, random_state=0, progress=None, cancel=None,
                    start=0.0, span=0.08):
    """The image work shared by all elements: the feature transform and the K-means units.

    Both are fitted on a seeded sample of ``sample_size`` pixels read from random
    windows (:func:`sample_pixels_from_windows`); K-means only for local
    regression. Returns ``(transform, kmeans or None, pixels)``.
    """
    step(progress, cancel, start, "sampling image pixels for the feature transform")
    pixels = sample_pixels_from_windows(read, image_grid.shape, n_pixels=sample_size,
                                        random_state=random_state)
    transform = FeatureTransform(features, sensor=sensor, band_map=band_map, pcs=pcs,
                                 band_names=band_names, random_state=random_state).fit(pixels)
    kmeans = None
    if regression == "local":
        from .clustering import KMeansUnits

        step(progress, cancel, start + span * 0.4,
             f"clustering {n_clusters} geological units (K-means)")
        kmeans = KMeansUnits(n_clusters, sample_size=sample_size,
                             random_state=random_state).fit(transform.transform(pixels[:, None, :]))
    return transform, kmeans, pixels


class Previews:
    """Decimated copies of full-resolution outputs, filled row block by row block, for reports.

    Every ``stride``-th pixel of every ``stride``-th row (the longest side becomes
    ``preview_size`` pixels): ``{"<element> fused", "features", "units"}``.
    """

    def __init__(self, image_grid, names, n_features, *, units=False, preview_size=600):
        rows, cols = image_grid.shape
        self.names = list(names)
        self.stride = max(1, int(math.ceil(max(rows, cols) / preview_size)))
        shape = (len(range(0, rows, self.stride)), len(range(0, cols, self.stride)))
        self.grid = Grid(image_grid.x_min, image_grid.y_max, image_grid.cell_x * self.stride,
                         image_grid.cell_y * self.stride, shape[1], shape[0])
        self.layers = {f"{name} fused": np.full(shape, np.nan) for name in self.names}
        self.layers["features"] = np.full((n_features, *shape), np.nan)
        if units:
            self.layers["units"] = np.full(shape, -1)

    def take(self, row0, fused, features, units=None, kmeans=None):
        """The preview pixels of a full-width row block (in a worker thread).

        ``fused``: one block per element; ``units``: the block's units, or None
        to predict them with ``kmeans`` on the preview pixels only.
        """
        first = row0 + (-row0) % self.stride
        n = len(range(first, row0 + features.shape[1], self.stride))
        sel = (slice(first - row0, None, self.stride), slice(None, None, self.stride))
        pieces = {f"{name} fused": block[sel] for name, block in zip(self.names, fused)}
        pieces["features"] = features[(slice(None), *sel)]
        if "units" in self.layers:
            pieces["units"] = (units[sel] if units is not None
                               else kmeans.predict(pieces["features"]))
        return slice(first // self.stride, first // self.stride + n), pieces

    def put(self, taken):
        """Store what :meth:`take` returned (in the thread that owns the previews)."""
        dst, pieces = taken
        for key, block in pieces.items():
            self.layers[key][..., dst, :] = block

    def add_kriged(self, krigings, kgrid):
        """The kriged layers (where computed), resampled to the preview grid."""
        for name in self.names:
            if krigings.get(name) is not None:
                self.layers[f"{name} kriged"] = resample_cubic(krigings[name].estimate, kgrid,
                                                               self.grid)


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
    levels: int = 0

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
        return PipelineResult(elements, feats, self.previews.get("units"), self.kmeans,
                              self.levels,
                              self.sample_spacing, self.kriging_grid, self.notes)


def _run_tasks(tasks, progress, cancel, start, span, message, *, tau=10.0):
    """Run ``tasks`` ``{key: callable}`` in worker threads; return ``{key: result}``.

    The per-element fits have no progress or cancel hooks of their own and take
    tens of seconds with thousands of samples. While they run in threads (as many
    as there are CPUs: several elements share the cores), this thread reports
    progress every :data:`POLL_SECONDS` (creeping through the share of the task
    running, ``elapsed / (elapsed + tau)``) and polls ``cancel``: a cancel returns
    at once, and fits already running finish in the background and are discarded.
    """
    keys = list(tasks)
    workers = max(1, min(len(keys), os.cpu_count() or 1))
    pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="geochem-fit")
    results = {}
    try:
        with _single_threaded_blas():
            futures = {pool.submit(tasks[k]): k for k in keys}
            pending = set(futures)
            step(progress, cancel, start, message)
            since = time.monotonic()
            while pending:
                done, pending = concurrent.futures.wait(
                    pending, timeout=POLL_SECONDS,
                    return_when=concurrent.futures.FIRST_COMPLETED)
                for future in done:
                    results[futures[future]] = future.result()
                if done:
                    since = time.monotonic()
                elapsed = time.monotonic() - since if pending else 0.0
                step(progress, cancel,
                     start + span * (len(results) + elapsed / (elapsed + tau)) / len(keys))
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return results


def _ordered_map(compute, items, consume, *, workers=None):
    """``consume(k, compute(item_k))`` for every item in order, ``compute`` in worker threads.

    The blocks are independent and their numerics (numpy, scipy, BLAS, GDAL)
    release the GIL, so ``workers`` blocks (default: the CPUs, at most
    :data:`MAX_WORKERS`) are computed at once while this thread writes the
    previous ones (GDAL compresses them meanwhile). At most ``workers + 1``
    results are held. An exception in ``consume`` (a cancel) or ``compute`` stops
    the pass once the blocks being computed are done.
    """
    workers = workers or max(1, min(os.cpu_count() or 1, MAX_WORKERS))
    pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="geochem-block")
    queue = collections.deque()
    done = 0
    try:
        with _single_threaded_blas() if workers > 1 else contextlib.nullcontext():
            for item in items:
                queue.append(pool.submit(compute, item))
                if len(queue) > workers:
                    consume(done, queue.popleft().result())
                    done += 1
            while queue:
                consume(done, queue.popleft().result())
                done += 1
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def fuse_scene(x, y, values, read, image_grid, write, *, band_names=None, features="bands",
               sensor="sentinel2", band_map=None, pcs=(2,), regression="global", n_clusters=5,
               log_transform=False, variogram="auto", cell_size=None, block_rows=None,
               sample_size=200_000, random_state=0, windows=DEFAULT_WINDOWS,
               write_features=None, write_units=None, preview_size=600, krige_alone=True,
               progress=None, cancel=None):
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
    krige_alone : bool
        Also krige each element alone on the coarse grid (the kriged and
        variance outputs, the report, :meth:`SceneResult.as_pipeline_result`'s
        ``geo``). False skips it: ``SceneResult.kriging`` then maps every
        element to None.
    progress, cancel : callables
        See :mod:`geochem_fusion.core.progress`; polled per block, and every
        :data:`POLL_SECONDS` while the elements are fitted (in worker threads,
        see :func:`_run_tasks`).

    Other parameters as :func:`~geochem_fusion.core.pipeline.fuse_samples`.
    """
    x, y, near, spacing, kgrid = scene_samples(x, y, values, regression, image_grid, cell_size)
    rows, cols = image_grid.shape
    notes = []
    names = list(values)
    # progress: image sampling and fits up to FITTED (fits from CHIPS), then the blocks
    CHIPS, FITTED = 0.1, 0.4  # noqa: N806 (constants of this function)

    # --- image work, once for all elements -----------------------------------------------
    transform, kmeans, _ = fit_image_model(
        read, image_grid, features=features, sensor=sensor, band_map=band_map, pcs=pcs,
        band_names=band_names, regression=regression, n_clusters=n_clusters,
        sample_size=sample_size, random_state=random_state, progress=progress, cancel=cancel)

    half = max(windows) // 2
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

    # --- per element: the adaptive fit (and kriging alone for the outputs) ---------------
    tasks = {}
    counts = {}
    for name in names:
        vals = np.asarray(values[name], dtype=np.float64)
        ok = near & np.isfinite(vals)
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
        tasks[("fit", name)] = (
            lambda ok=ok, z=z: fit_adaptive_samples(
                x[ok], y[ok], z, chips[ok], kgrid, band_names=transform.names_,
                variogram=variogram, windows=windows, random_state=random_state,
                labels=None if labels is None else labels[ok]))
    if krige_alone:  # after the fits: the longest tasks start first
        for name in names:
            vals = np.asarray(values[name], dtype=np.float64)
            ok = near & np.isfinite(vals)
            tasks[("kriging", name)] = (
                lambda ok=ok, vals=vals: OrdinaryKrigingModel(
                    variogram, log_transform=log_transform).fit(
                    x[ok], y[ok], vals[ok]).krige_grid(kgrid))
    done = _run_tasks(
        tasks, progress, cancel, CHIPS, FITTED - CHIPS,
        "; ".join(f"{name}: kriging {counts[name]} samples" for name in names)
        + " and choosing the image model")
    fits = {name: done[("fit", name)] for name in names}
    krigings = {name: done.get(("kriging", name)) for name in names}
    for name in names:
        fit = fits[name]
        fit.mode = "adaptive"
        notes.append(
            f"{name}: " + ("kriging alone (the image did not improve the cross-validation)"
                           if fit.shrink == 0 else
                           f"image trend on {fit.feature_set}, {fit.window} px window, "
                           f"shrink {fit.shrink:.2f}; CV RMSE {fit.loo_rmse:.4g} vs kriging "
                           f"alone {fit.kriging_alone_rmse:.4g}"))

    # --- every block once, every element on it -------------------------------------------
    halo = max(f.halo for f in fits.values())
    block_rows = block_rows or block_rows_for(cols, 2 * p)
    # units on every pixel only where a local trend or the units output needs them
    units_everywhere = kmeans is not None and (
        write_units is not None or any(f.shrink > 0 and f.unit_fits for f in fits.values()))
    estimates = np.stack([fits[name].kriging.estimate for name in names])
    # the features of all the trends from one computation per block: the unfiltered
    # features of the widest set once, then one window mean per window, as many features
    # as the trends on that window use (the bands come first in every feature set)
    trends = [fits[name] for name in names if fits[name].shrink > 0]
    widest = ("bands+ratios" if any(f.feature_set == "bands+ratios" for f in trends)
              else "bands")
    needed = {}
    for fit in trends:
        needed[fit.window] = max(needed.get(fit.window, 0), len(fit.feature_names))
    previews = (Previews(image_grid, names, len(transform.names_), units=kmeans is not None,
                         preview_size=preview_size) if preview_size else None)
    read_lock = threading.Lock()  # the reader (a GDAL dataset) serves one thread at a time

    def compute(r0):
        """Everything on the row block starting at ``r0`` (in a worker thread)."""
        r1 = min(r0 + block_rows, rows)
        # the features need `halo` rows of context; everything else is per pixel
        a0, a1 = max(r0 - halo, 0), min(r1 + halo, rows)
        core = slice(r0 - a0, r0 - a0 + (r1 - r0))
        with read_lock:
            image_block = read(a0, 0, a1 - a0, cols)
        F0 = transform.transform(image_block)
        F = F0[:, core]
        units = kmeans.predict(F) if units_everywhere else None
        # one cubic resampling of the kriged residuals for all elements
        residuals = resample_cubic(estimates, kgrid, image_grid.window(r0, 0, r1 - r0, cols))
        windowed = {}
        if trends:
            raw = feature_stack(F0, widest)[0]
            windowed = {w: (raw[:k] if w == 1 else
                            feature_stack(raw[:k], "bands", window=w)[0])[:, core]
                        for w, k in needed.items()}
        fused = []
        valid = None
        for i, name in enumerate(names):
            fit = fits[name]
            if fit.shrink > 0:
                out = fit.trend_from_features(windowed[fit.window][:len(fit.feature_names)],
                                              labels=units)
                out += residuals[i]
            else:
                if valid is None:
                    valid = np.isfinite(F).all(axis=0)
                out = np.where(valid, residuals[i], np.nan)
            fused.append(np.power(10.0, out) if log_transform else out)
        result = {"r0": r0, "fused": fused, "units": units}
        if write_features is not None:
            result["features"] = F
        if previews is not None:
            result["preview"] = previews.take(r0, fused, F, units, kmeans)
        return result

    def consume(b, result):
        """Progress, cancel and the outputs of block ``b`` (in this thread, in order)."""
        step(progress, cancel, FITTED + (1 - FITTED) * b / n_blocks,
             f"block {b + 1}/{n_blocks}" if b % 10 == 0 else None)
        r0 = result["r0"]
        for i, block in enumerate(result["fused"]):
            write(i, r0, block)
        if write_features is not None:
            write_features(r0, result["features"])
        if write_units is not None and result["units"] is not None:
            write_units(r0, result["units"])
        if previews is not None:
            previews.put(result["preview"])

    n_blocks = int(math.ceil(rows / block_rows))
    _ordered_map(compute, range(0, rows, block_rows), consume)
    step(progress, cancel, 1.0, "done")
    if previews is not None:
        previews.add_kriged(krigings, kgrid)
    return SceneResult(fits, krigings, transform, kmeans, float(spacing), kgrid,
                       previews.layers if previews else {}, previews.grid if previews else None,
                       notes)
