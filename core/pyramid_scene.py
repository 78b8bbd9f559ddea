"""The paper's Laplacian-pyramid fusion over a whole scene, row block by row block.

The ``paper`` and ``coherent`` modes (:func:`geochem_fusion.core.fusion.fuse`,
eqs. 1–3) need the low and high frequency of every layer: the geochemistry on
the image grid and each image feature. A full Sentinel-2 tile does not fit in
memory several times over, so :func:`fuse_layers` makes three passes over the
rows, each holding one row block at a time:

1. **Reduce**: every block is read and pushed into a
   :class:`~geochem_fusion.core.pyramid.BlockPyramid`, which keeps only the
   coarsest Gaussian level (a few kilobytes).
2. **Fit** (eq. 1): the low-frequency layers are expanded on a sample of rows
   (every row of a small image, so the fit is the whole-image one), of which a
   seeded random share of pixels is kept (at most :data:`FIT_OFFER` times
   ``sample_size``), and the regression, global or per unit, is fitted on them.
3. **Inject** (eqs. 2–3): every block is read again, split into low and high
   frequency from the coarse level, and fused with the fitted gains; the
   blocks are computed by worker threads and handed to ``consume`` in order.

The result equals :func:`~geochem_fusion.core.fusion.fuse` on the whole
arrays to floating-point rounding when the fit sees every pixel (images up to
``sample_size`` pixels). :func:`fuse_pyramid_scene` runs the whole chain from
sample points (kriging on the coarse grid, feature transform and K-means
fitted on pixel samples, as :func:`~geochem_fusion.core.scene.fuse_scene`).

Readers have the signature of :mod:`~geochem_fusion.core.scene`:
``read(row0, col0, nrows, ncols) -> (layers, nrows, ncols)``, float, NaN = nodata.
"""

from __future__ import annotations

import logging
import math
import threading

import numpy as np

from .fusion import MODES, REGRESSIONS, FusionResult
from .kriging import OrdinaryKrigingModel
from .progress import step
from .pyramid import BlockPyramid
from .regression import FeatureRegression
from .resample import resample_cubic

__all__ = ["fuse_layers", "fuse_pyramid_scene", "fit_rows"]

logger = logging.getLogger(__name__)

REDUCED, FITTED = 0.4, 0.5
"""Progress shares: the reduce pass ends at 40 %, the fit at 50 %, then the blocks."""
FIT_OFFER = 4
"""The fit pass keeps at most this many times ``sample_size`` pixels for the regression."""


def fit_rows(rows, cols, levels, sample_size):
    """Rows whose pixels the regression is fitted on: all of them for an image of up to
    ``sample_size`` pixels, else every ``s``-th row, ``s`` at most ``2**(levels - 2)`` (a
    quarter of the low band's scale, so the sample follows it) and no denser than needed to
    offer ``sample_size`` pixels."""
    if sample_size is None or rows * cols <= sample_size:
        return np.arange(rows)
    stride = max(1, min(rows * cols // sample_size, 2 ** max(levels - 2, 0)))
    return np.arange(0, rows, stride)


def fuse_layers(read_geo, read_features, shape, *, levels, n_elements=1, mode="coherent",
                regression="global", read_units=None, kmeans=None, log_transform=False, blend_sigma=0.0,
                min_pixels=None, ridge=0.0, sample_size=200_000, random_state=0,
                block_rows=None, consume=None, progress=None, cancel=None, start=0.0,
                span=1.0):
    """Fuse geochemical layers with feature layers on the same grid, block by block.

    Parameters
    ----------
    read_geo : callable
        ``read_geo(row0, col0, nrows, ncols) -> (n_elements, nrows, ncols)``: the
        geochemistry on the image grid, in data units (e.g. ppm).
    read_features : callable
        ``read_features(row0, col0, nrows, ncols) -> (p, nrows, ncols)``: the features ``MS``.
    shape : tuple of int
        ``(rows, cols)`` of the image grid.
    levels : int
        Pyramid depth (:func:`~geochem_fusion.core.pyramid.auto_levels`).
    read_units : callable, optional
        ``read_units(row0, col0, nrows, ncols) -> (nrows, ncols)`` unit labels (−1 or NaN =
        none), for ``regression="local"``; or
    kmeans : KMeansUnits, optional
        fitted units predicted from the features of each block.
    consume : callable
        ``consume(row0, fused, features, labels)`` with ``fused`` ``(n_elements, nrows,
        cols)`` in data units, called for every row block in order, in the calling thread.
    progress, cancel : callables
        See :mod:`geochem_fusion.core.progress`; reported from ``start`` to
        ``start + span`` and polled for every block.

    Other parameters as :func:`~geochem_fusion.core.fusion.fuse`.

    Returns
    -------
    list of FusionResult
        One per element, with the fitted ``model``; the arrays are None (the
        fused blocks went to ``consume``).
    """
    from .scene import _ordered_map, block_rows_for

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if regression not in REGRESSIONS:
        raise ValueError(f"regression must be one of {REGRESSIONS}, got {regression!r}")
    if regression == "local" and read_units is None and kmeans is None:
        raise ValueError("local regression needs unit labels (run K-means units first)")
    if blend_sigma < 0:
        raise ValueError(f"blend_sigma must be >= 0 pixels, got {blend_sigma}")
    rows, cols = shape
    lock = threading.Lock()  # readers (GDAL datasets) serve one thread at a time

    def read(row0, nrows, halo=0, with_units=False):
        """Geochemistry (fit space), features and units of rows ``row0 - halo : row0 + nrows +
        halo``, and the first row read."""
        a0, a1 = max(row0 - halo, 0), min(row0 + nrows + halo, rows)
        labels = None
        with lock:
            geo = np.asarray(read_geo(a0, 0, a1 - a0, cols), dtype=np.float64)
            feats = np.asarray(read_features(a0, 0, a1 - a0, cols), dtype=np.float64)
            if with_units and read_units is not None:
                labels = np.asarray(read_units(a0, 0, a1 - a0, cols))
                labels = labels[0] if labels.ndim == 3 else labels
        if with_units:
            if labels is None:
                labels = kmeans.predict(feats)
            elif not np.issubdtype(labels.dtype, np.integer):
                labels = np.where(np.isfinite(labels), labels, -1).astype(np.int32)
        if geo.ndim == 2:
            geo = geo[None]
        if log_transform:
            bad = np.isfinite(geo) & (geo <= 0)
            if bad.any():
                raise ValueError(
                    f"log transform needs positive values, but {int(bad.sum())} pixels of the "
                    f"geochemical layer are <= 0 in rows {a0}-{a1}; turn the log transform off "
                    "or fix the input")
            with np.errstate(divide="ignore", invalid="ignore"):
                geo = np.log10(geo)
        return geo, feats, labels, a0

    # --- pass 1: stream every layer into the pyramid ----------------------------------------
    geo, feats, _, _ = read(0, 1)
    n_geo, p = geo.shape[0], feats.shape[0]
    if n_geo != n_elements:
        raise ValueError(f"the geochemistry reader gave {n_geo} layers for {n_elements} elements")
    pyramid = BlockPyramid(shape, levels, n_geo + p)
    block_rows = block_rows or block_rows_for(cols, 2 * (n_geo + p))
    for row0 in range(0, rows, block_rows):
        step(progress, cancel, start + span * REDUCED * row0 / rows,
             "splitting the layers into low and high frequency (pyramid)" if row0 == 0 else None)
        geo, feats, _, _ = read(row0, min(block_rows, rows - row0))
        pyramid.push(np.concatenate([geo, feats]))

    # --- fit (eq. 1) on the low band of sampled rows ------------------------------------------
    step(progress, cancel, start + span * REDUCED, f"fitting the {regression} regression (eq. 1)")
    chosen = fit_rows(rows, cols, levels, sample_size)
    # at most FIT_OFFER * sample_size pixels are kept (a seeded random share of each chosen
    # row), so the fit's memory is bounded whatever the image and the depth
    keep = (1.0 if sample_size is None
            else min(1.0, FIT_OFFER * sample_size / max(1, chosen.size * cols)))
    rng = np.random.default_rng(random_state)
    runs = (np.split(chosen, np.flatnonzero(np.diff(chosen) > 1) + 1) if chosen.size else [])
    lows, labels = [], []
    local = regression == "local"
    for run in runs:
        for row0 in range(int(run[0]), int(run[-1]) + 1, block_rows):
            nrows = min(block_rows, int(run[-1]) + 1 - row0)
            step(progress, cancel, start + span * (REDUCED + (FITTED - REDUCED) * row0 / rows))
            geo, feats, block_labels, _ = read(row0, nrows, with_units=local)
            low, _ = pyramid.decompose(np.concatenate([geo, feats]), row0)
            low = low.reshape(low.shape[0], -1)  # pixels in raster order
            taken = slice(None) if keep >= 1.0 else rng.random(low.shape[1]) < keep
            lows.append(low[:, taken])
            if local:
                labels.append(block_labels.reshape(-1)[taken])
    lows = np.concatenate(lows, axis=1)[:, None, :]  # (layers, 1, pixels): a one-row image
    labels = np.concatenate(labels)[None, :] if labels else None
    models = []
    for e in range(n_geo):
        models.append(FeatureRegression(
            regression, min_pixels=min_pixels, sample_size=sample_size,
            random_state=random_state, ridge=ridge).fit(lows[e], lows[n_geo:], labels))
    del lows

    # --- pass 2: inject the detail (eqs. 2-3), block by block --------------------------------
    halo = int(4 * blend_sigma + 0.5) + 1 if blend_sigma > 0 and regression == "local" else 0

    def compute(row0):
        nrows = min(block_rows, rows - row0)
        geo, feats, block_labels, a0 = read(row0, nrows, halo, with_units=regression == "local")
        core = slice(row0 - a0, row0 - a0 + nrows)
        low, high = pyramid.decompose(np.concatenate([geo[:, core], feats[:, core]]), row0)
        ms_low, ms_high = low[n_geo:], high[n_geo:]
        fused = np.empty((n_geo, nrows, cols))
        for e, model in enumerate(models):
            if block_labels is None:
                gains, intercept = model.coefficient_maps(shape=(nrows, cols))
            else:
                gains, intercept = model.coefficient_maps(block_labels, blend_sigma=blend_sigma)
                gains, intercept = gains[:, core], intercept[core]
            detail = np.einsum("prc,prc->rc", gains, ms_high)
            base = intercept + np.einsum("prc,prc->rc", gains, ms_low) if mode == "paper" \
                else low[e]
            fused[e] = base + high[e] + detail
        if log_transform:
            fused = np.power(10.0, fused)
        return row0, fused, feats[:, core], (None if block_labels is None
                                              else block_labels[core])

    n_blocks = int(math.ceil(rows / block_rows))

    def take(b, result):
        step(progress, cancel, start + span * (FITTED + (1 - FITTED) * b / n_blocks),
             f"injecting image detail: block {b + 1}/{n_blocks}" if b % 10 == 0 else None)
        if consume is not None:
            consume(*result)

    _ordered_map(compute, range(0, rows, block_rows), take)
    step(progress, cancel, start + span)
    logger.info("fused %d layer(s) with %s regression in %s mode at depth %d, %d blocks",
                n_geo, regression, mode, levels, n_blocks)
    return [FusionResult(fused=None, geo_low=None, geo_high=None, geo_low_regressed=None,
                         injected_detail=None, model=model, mode=mode, regression=regression,
                         levels=int(levels), log_transform=bool(log_transform))
            for model in models]


def fuse_pyramid_scene(x, y, values, read, image_grid, write, *, band_names=None,
                       features="bands", sensor="sentinel2", band_map=None, pcs=(2,),
                       regression="global", n_clusters=5, mode="coherent", levels=0,
                       log_transform=False, variogram="auto", cell_size=None, blend_sigma=0.0,
                       block_rows=None, sample_size=200_000, random_state=0,
                       write_features=None, write_units=None, preview_size=600, progress=None,
                       cancel=None):
    """The ``paper`` / ``coherent`` chain from sample points over a whole scene, block by block.

    Kriging of each element on the coarse grid (METHOD.md step 1), cubic
    resampling to the image grid per block (step 2), image features and K-means
    units fitted on pixel samples (steps 3 and 5, shared by all elements), then
    :func:`fuse_layers` (steps 4, 6–8) for all elements at once, so the image is
    read and decomposed once per pass whatever the number of elements.

    Parameters as :func:`~geochem_fusion.core.scene.fuse_scene` (``read``,
    ``write(element_index, row0, block)``, ``write_features``, ``write_units``,
    ``preview_size``) and :func:`~geochem_fusion.core.pipeline.fuse_samples`
    (``mode``, ``levels`` with 0 = automatic, ``blend_sigma``).

    Returns
    -------
    SceneResult
        ``fits`` maps each element to its :class:`~geochem_fusion.core.fusion.FusionResult`
        (the model; arrays None), ``kriging`` to its kriging result; ``levels``
        is the depth used.
    """
    from .pipeline import spacing_levels
    from .scene import Previews, SceneResult, _run_tasks, fit_image_model, scene_samples

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    x, y, near, spacing, kgrid = scene_samples(x, y, values, regression, image_grid, cell_size)
    rows, cols = image_grid.shape
    notes = []
    if levels <= 0:
        levels = spacing_levels(spacing, image_grid.cell_x, image_grid.shape, notes)
    names = list(values)

    transform, kmeans, _ = fit_image_model(
        read, image_grid, features=features, sensor=sensor, band_map=band_map, pcs=pcs,
        band_names=band_names, regression=regression, n_clusters=n_clusters,
        sample_size=sample_size, random_state=random_state, progress=progress, cancel=cancel)

    tasks, counts = {}, {}
    for name in names:
        vals = np.asarray(values[name], dtype=np.float64)
        ok = near & np.isfinite(vals)
        counts[name] = int(ok.sum())
        tasks[name] = (lambda ok=ok, vals=vals: OrdinaryKrigingModel(
            variogram, log_transform=log_transform).fit(x[ok], y[ok], vals[ok]).krige_grid(kgrid))
    krigings = _run_tasks(tasks, progress, cancel, 0.08, 0.12,
                          "; ".join(f"{name}: kriging {counts[name]} samples" for name in names))
    estimates = np.stack([krigings[name].estimate for name in names])

    def read_geo(row0, col0, nrows, ncols):
        return resample_cubic(estimates, kgrid, image_grid.window(row0, col0, nrows, ncols))

    def read_features(row0, col0, nrows, ncols):
        return transform.transform(read(row0, col0, nrows, ncols))

    previews = (Previews(image_grid, names, len(transform.names_), units=kmeans is not None,
                         preview_size=preview_size) if preview_size else None)

    def consume(row0, fused, feats, labels):
        for i, block in enumerate(fused):
            write(i, row0, block)
        if write_features is not None:
            write_features(row0, feats)
        if write_units is not None and labels is not None:
            write_units(row0, labels)
        if previews is not None:
            previews.put(previews.take(row0, fused, feats, labels, kmeans))

    results = fuse_layers(
        read_geo, read_features, (rows, cols), levels=levels, n_elements=len(names), mode=mode,
        regression=regression, kmeans=kmeans, log_transform=log_transform,
        blend_sigma=blend_sigma, sample_size=sample_size, random_state=random_state,
        block_rows=block_rows, consume=consume, progress=progress, cancel=cancel, start=0.2,
        span=0.8)
    step(progress, cancel, 1.0, "done")
    if previews is not None:
        previews.add_kriged(krigings, kgrid)
    return SceneResult(dict(zip(names, results)), krigings, transform, kmeans, float(spacing),
                       kgrid, previews.layers if previews else {},
                       previews.grid if previews else None, notes, levels=int(levels))
