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
fitted on pixel samples, as the adaptive chain, :mod:`~.adaptive_scene`), and
:func:`fuse_raster_blocks` from a geochemical raster (the ``regressionfusion``
algorithm).

The fit (passes 1 and 2, :func:`fit_layers`) gives a :class:`PyramidModel`: the
coarsest pyramid level and the regression coefficients, small enough to send to
other processes; its :meth:`~PyramidModel.predict_block` fuses any row block.

Readers have the signature of :mod:`~.blocks`:
``read(row0, col0, nrows, ncols) -> (layers, nrows, ncols)``, float, NaN = nodata.
"""

from __future__ import annotations

import logging
import math
import threading

import numpy as np

from .blocks import Previews, block_rows_for, ordered_map, row_blocks, run_tasks, sample_pixels_from_windows
from .clustering import KMeansUnits
from .features import fit_image_model
from .fusion import FusionResult
from .kriging import OrdinaryKrigingModel, load_pykrige
from .progress import step
from .pyramid import BlockPyramid, resolve_levels
from .regression import FeatureRegression
from .resample import resample_cubic
from .samples import scene_samples
from .vocabulary import PYRAMID_MODES, REGRESSIONS, SceneResult, check_choice

__all__ = ["LayerSource", "PyramidModel", "PyramidSceneModel", "fit_layers", "fit_pyramid_scene",
           "fit_rows", "fuse_layers", "fuse_raster_blocks"]

logger = logging.getLogger(__name__)

REDUCED, FITTED = 0.4, 0.5
"""Progress shares: the reduce pass ends at 40 %, the fit at 50 %, then the blocks."""
FIT_OFFER = 4
"""The fit pass keeps at most this many times ``sample_size`` pixels for the regression."""


def fit_rows(rows, cols, levels, sample_size):
    """Rows whose pixels the regression is fitted on.

    All of them for an image of up to ``sample_size`` pixels, else every ``s``-th row,
    ``s`` at most ``2**(levels - 2)`` (a
    quarter of the low band's scale, so the sample follows it) and no denser than needed to
    offer ``sample_size`` pixels.
    """
    if sample_size is None or rows * cols <= sample_size:
        return np.arange(rows)
    stride = max(1, min(rows * cols // sample_size, 2 ** max(levels - 2, 0)))
    return np.arange(0, rows, stride)


class LayerSource:
    """The layers a pyramid fusion reads, block by block, on the image grid.

    Parameters
    ----------
    read_geo : callable
        ``read_geo(row0, col0, nrows, ncols) -> (n_elements, nrows, ncols)``: the
        geochemistry on the image grid, in data units (e.g. ppm).
    read_features : callable
        ``read_features(row0, col0, nrows, ncols) -> (p, nrows, ncols)``: the features ``MS``.
    shape : tuple of int
        ``(rows, cols)`` of the image grid.
    read_units : callable, optional
        ``read_units(row0, col0, nrows, ncols) -> (nrows, ncols)`` unit labels (−1 or NaN =
        none), for ``regression="local"``; or
    kmeans : KMeansUnits, optional
        fitted units predicted from the features of each block.
    log_transform : bool
        The geochemistry is fused as log10 (its values must be positive).
    """

    def __init__(self, read_geo, read_features, shape, *, read_units=None, kmeans=None,
                 log_transform=False):
        self.read_geo = read_geo
        self.read_features = read_features
        self.shape = (int(shape[0]), int(shape[1]))
        self.read_units = read_units
        self.kmeans = kmeans
        self.log_transform = bool(log_transform)
        self.has_units = read_units is not None or kmeans is not None
        self._lock = threading.Lock()  # readers (GDAL datasets) serve one thread at a time

    def read(self, row0, nrows, halo=0, with_units=False):
        """Geochemistry (fit space), features, units and first row of a block with its halo.

        The rows ``row0 - halo : row0 + nrows + halo`` (clipped to the raster).
        """
        rows, cols = self.shape
        a0, a1 = max(row0 - halo, 0), min(row0 + nrows + halo, rows)
        labels = None
        with self._lock:
            geo = np.asarray(self.read_geo(a0, 0, a1 - a0, cols), dtype=np.float64)
            feats = np.asarray(self.read_features(a0, 0, a1 - a0, cols), dtype=np.float64)
            if with_units and self.read_units is not None:
                labels = np.asarray(self.read_units(a0, 0, a1 - a0, cols))
                labels = labels[0] if labels.ndim == 3 else labels
        if with_units:
            if labels is None:
                labels = self.kmeans.predict(feats)
            elif not np.issubdtype(labels.dtype, np.integer):
                labels = np.where(np.isfinite(labels), labels, -1).astype(np.int32)
        if geo.ndim == 2:
            geo = geo[None]
        if self.log_transform:
            bad = np.isfinite(geo) & (geo <= 0)
            if bad.any():
                raise ValueError(
                    f"log transform needs positive values, but {int(bad.sum())} pixels of the "
                    f"geochemical layer are <= 0 in rows {a0}-{a1}; turn the log transform off "
                    "or fix the input")
            with np.errstate(divide="ignore", invalid="ignore"):
                geo = np.log10(geo)
        return geo, feats, labels, a0


class PyramidModel:
    """The fitted pyramid fusion: the coarsest pyramid level and one regression per element.

    Made by :func:`fit_layers`; :meth:`predict_block` fuses any row block from
    it and the layers (eqs. 2–3), independently of the other blocks.
    """

    def __init__(self, pyramid, models, settings, n_elements, block_rows):
        self.pyramid = pyramid
        self.models = models
        self.mode = settings.mode
        self.regression = settings.regression
        self.blend_sigma = settings.blend_sigma
        self.levels = pyramid.levels
        self.n_elements = n_elements
        self.block_rows = block_rows
        local = self.regression == "local"
        self.halo = int(4 * self.blend_sigma + 0.5) + 1 if self.blend_sigma > 0 and local else 0

    def predict_block(self, source, row0, nrows):
        """``(row0, fused, features, labels)`` of rows ``row0 : row0 + nrows`` (full width).

        ``fused`` is ``(n_elements, nrows, cols)`` in data units.
        """
        cols = source.shape[1]
        n_geo = self.n_elements
        geo, feats, block_labels, a0 = source.read(row0, nrows, self.halo,
                                                   with_units=self.regression == "local")
        core = slice(row0 - a0, row0 - a0 + nrows)
        low, high = self.pyramid.decompose(np.concatenate([geo[:, core], feats[:, core]]), row0)
        ms_low, ms_high = low[n_geo:], high[n_geo:]
        fused = np.empty((n_geo, nrows, cols))
        for e, model in enumerate(self.models):
            if block_labels is None:
                gains, intercept = model.coefficient_maps(shape=(nrows, cols))
            else:
                gains, intercept = model.coefficient_maps(block_labels,
                                                          blend_sigma=self.blend_sigma)
                gains, intercept = gains[:, core], intercept[core]
            detail = np.einsum("prc,prc->rc", gains, ms_high)
            base = intercept + np.einsum("prc,prc->rc", gains, ms_low) if self.mode == "paper" \
                else low[e]
            fused[e] = base + high[e] + detail
        if source.log_transform:
            fused = np.power(10.0, fused)
        return row0, fused, feats[:, core], (None if block_labels is None
                                              else block_labels[core])

    def predict(self, source, consume, *, progress=None, cancel=None, start=0.0, span=1.0):
        """Every row block, computed in worker threads, handed to ``consume`` in order.

        ``consume(row0, fused, features, labels)`` is called in the calling thread;
        progress runs from ``start + span * FITTED`` to ``start + span``.
        Returns one :class:`~.fusion.FusionResult` per element (the model; arrays None).
        """
        rows = source.shape[0]
        n_blocks = int(math.ceil(rows / self.block_rows))

        def take(b, result):
            step(progress, cancel, start + span * (FITTED + (1 - FITTED) * b / n_blocks),
                 f"injecting image detail: block {b + 1}/{n_blocks}" if b % 10 == 0 else None)
            if consume is not None:
                consume(*result)

        ordered_map(lambda block: self.predict_block(source, *block),
                    row_blocks(rows, self.block_rows), take)
        step(progress, cancel, start + span)
        logger.info("fused %d layer(s) with %s regression in %s mode at depth %d, %d blocks",
                    self.n_elements, self.regression, self.mode, self.levels, n_blocks)
        return self.results(source.log_transform)

    def results(self, log_transform):
        """One :class:`~.fusion.FusionResult` per element: the model, no arrays."""
        return [FusionResult(fused=None, geo_low=None, geo_high=None, geo_low_regressed=None,
                             injected_detail=None, model=model, mode=self.mode,
                             regression=self.regression, levels=int(self.levels),
                             log_transform=bool(log_transform))
                for model in self.models]


def fit_layers(source, levels, settings, *, n_elements=1, progress=None, cancel=None,
               start=0.0, span=1.0):
    """Passes 1 and 2 of the pyramid fusion: reduce every layer, fit eq. 1 on sampled rows.

    Parameters
    ----------
    source : LayerSource
        The geochemistry, features and units on the image grid.
    levels : int
        Pyramid depth (:func:`~geochem_fusion.core.pyramid.resolve_levels`).
    settings : FusionSettings
        ``mode`` (a pyramid mode), ``regression``, ``blend_sigma``,
        ``sample_size``, ``random_state``, ``block_rows``.
    n_elements : int
        Geochemical layers ``source.read_geo`` gives.
    progress, cancel : callables
        See :mod:`geochem_fusion.core.progress`; reported from ``start`` to
        ``start + span * FITTED`` and polled for every block.

    Returns
    -------
    PyramidModel
    """
    check_choice("mode", settings.mode, PYRAMID_MODES)
    check_choice("regression", settings.regression, REGRESSIONS)
    regression, sample_size = settings.regression, settings.sample_size
    if regression == "local" and not source.has_units:
        raise ValueError("local regression needs unit labels (run K-means units first)")
    rows, cols = source.shape

    # --- pass 1: stream every layer into the pyramid ----------------------------------------
    geo, feats, _, _ = source.read(0, 1)
    n_geo, p = geo.shape[0], feats.shape[0]
    if n_geo != n_elements:
        raise ValueError(f"the geochemistry reader gave {n_geo} layers for {n_elements} elements")
    pyramid = BlockPyramid(source.shape, levels, n_geo + p)
    block_rows = settings.block_rows or block_rows_for(cols, 2 * (n_geo + p))
    for row0 in range(0, rows, block_rows):
        step(progress, cancel, start + span * REDUCED * row0 / rows,
             "splitting the layers into low and high frequency (pyramid)" if row0 == 0 else None)
        geo, feats, _, _ = source.read(row0, min(block_rows, rows - row0))
        pyramid.push(np.concatenate([geo, feats]))

    # --- fit (eq. 1) on the low band of sampled rows ------------------------------------------
    step(progress, cancel, start + span * REDUCED, f"fitting the {regression} regression (eq. 1)")
    chosen = fit_rows(rows, cols, levels, sample_size)
    # at most FIT_OFFER * sample_size pixels are kept (a seeded random share of each chosen
    # row), so the fit's memory is bounded whatever the image and the depth
    keep = (1.0 if sample_size is None
            else min(1.0, FIT_OFFER * sample_size / max(1, chosen.size * cols)))
    rng = np.random.default_rng(settings.random_state)
    runs = (np.split(chosen, np.flatnonzero(np.diff(chosen) > 1) + 1) if chosen.size else [])
    lows, labels = [], []
    local = regression == "local"
    for run in runs:
        for row0 in range(int(run[0]), int(run[-1]) + 1, block_rows):
            nrows = min(block_rows, int(run[-1]) + 1 - row0)
            step(progress, cancel, start + span * (REDUCED + (FITTED - REDUCED) * row0 / rows))
            geo, feats, block_labels, _ = source.read(row0, nrows, with_units=local)
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
            regression, sample_size=sample_size,
            random_state=settings.random_state).fit(lows[e], lows[n_geo:], labels))
    del lows
    return PyramidModel(pyramid, models, settings, n_geo, block_rows)


def fuse_layers(source, levels, settings, consume, *, n_elements=1, progress=None,
                cancel=None, start=0.0, span=1.0):
    """Fuse geochemical layers with feature layers on the same grid, block by block.

    :func:`fit_layers` then :meth:`PyramidModel.predict`: ``consume(row0, fused,
    features, labels)`` with ``fused`` ``(n_elements, nrows, cols)`` in data units,
    called for every row block in order, in the calling thread. Parameters as
    :func:`fit_layers`; the equations are those of :func:`~geochem_fusion.core.fusion.fuse`.

    Returns
    -------
    list of FusionResult
        One per element, with the fitted ``model``; the arrays are None (the
        fused blocks went to ``consume``).
    """
    model = fit_layers(source, levels, settings, n_elements=n_elements, progress=progress,
                       cancel=cancel, start=start, span=span)
    return model.predict(source, consume, progress=progress, cancel=cancel, start=start,
                         span=span)


class PyramidSceneModel:
    """The fitted ``paper`` / ``coherent`` chain of a scene: nothing image-sized.

    The kriged elements on the coarse grid, the feature transform, the K-means
    units and the :class:`PyramidModel` (coarsest pyramid level and gains), so
    any row block can be fused from the image reader alone
    (:meth:`predict_block`).
    """

    def __init__(self, names, kriging, transform, kmeans, image_grid, kriging_grid,
                 sample_spacing, log_transform, notes):
        self.names = list(names)
        self.kriging = kriging
        self.transform = transform
        self.kmeans = kmeans
        self.image_grid = image_grid
        self.kriging_grid = kriging_grid
        self.sample_spacing = float(sample_spacing)
        self.log_transform = bool(log_transform)
        self.notes = notes
        self.layers = None  # the PyramidModel, set by fit_pyramid_scene
        self._estimates = np.stack([kriging[name].estimate for name in self.names])

    @property
    def levels(self):
        """The pyramid depth used."""
        return self.layers.levels

    def source(self, read):
        """The :class:`LayerSource` of the scene: kriged elements and features from ``read``."""
        image_grid, kgrid = self.image_grid, self.kriging_grid

        def read_geo(row0, col0, nrows, ncols):
            return resample_cubic(self._estimates, kgrid,
                                  image_grid.window(row0, col0, nrows, ncols))

        def read_features(row0, col0, nrows, ncols):
            return self.transform.transform(read(row0, col0, nrows, ncols))

        return LayerSource(read_geo, read_features, image_grid.shape, kmeans=self.kmeans,
                           log_transform=self.log_transform)

    def predict_block(self, read, row0, nrows):
        """``(fused, features, units)`` of rows ``row0 : row0 + nrows`` (full width).

        ``fused`` is ``(n_elements, nrows, cols)`` in data units.
        """
        _, fused, feats, labels = self.layers.predict_block(self.source(read), row0, nrows)
        return fused, feats, labels

    def predict(self, read, sinks):
        """Every row block of the scene, in worker threads, written in order to ``sinks``."""
        progress, cancel = sinks.progress, sinks.cancel
        kmeans = self.kmeans
        previews = (Previews(self.image_grid, self.names, len(self.transform.names_),
                             units=kmeans is not None, preview_size=sinks.preview_size)
                    if sinks.preview_size else None)

        def consume(row0, fused, feats, labels):
            for i, block in enumerate(fused):
                sinks.write(i, row0, block)
            if sinks.write_features is not None:
                sinks.write_features(row0, feats)
            if sinks.write_units is not None and labels is not None:
                sinks.write_units(row0, labels)
            if previews is not None:
                previews.put(previews.take(row0, fused, feats, labels, kmeans))

        results = self.layers.predict(self.source(read), consume, progress=progress,
                                      cancel=cancel, start=0.2, span=0.8)
        step(progress, cancel, 1.0, "done")
        if previews is not None:
            previews.add_kriged(self.kriging, self.kriging_grid)
        return SceneResult(dict(zip(self.names, results)), self.kriging, self.transform, kmeans,
                           self.sample_spacing, self.kriging_grid,
                           previews.layers if previews else {},
                           previews.grid if previews else None, self.notes,
                           levels=int(self.levels))


def fit_pyramid_scene(x, y, values, read, image_grid, settings, *, progress=None, cancel=None):
    """Fit the ``paper`` / ``coherent`` chain from sample points over a whole scene.

    Kriging of each element on the coarse grid (docs/method.md step 1), cubic
    resampling to the image grid per block (step 2), image features and K-means
    units fitted on pixel samples (steps 3 and 5, shared by all elements), then
    :func:`fit_layers` (steps 4 and 6) for all elements at once, so the image is
    read and decomposed once per pass whatever the number of elements.

    Parameters as :func:`~geochem_fusion.core.adaptive_scene.fit_adaptive_scene`;
    ``settings.mode`` is a pyramid mode and ``settings.levels`` 0 = automatic.

    Returns
    -------
    PyramidSceneModel
    """
    check_choice("mode", settings.mode, PYRAMID_MODES)
    x, y, near, spacing, kgrid = scene_samples(x, y, values, image_grid, settings.cell_size)
    load_pykrige()  # here, not first in the worker threads that krige
    notes = []
    levels = resolve_levels(settings.levels, spacing, image_grid.cell_x, image_grid.shape, notes)
    names = list(values)

    transform, kmeans, _ = fit_image_model(read, image_grid, settings, progress=progress,
                                           cancel=cancel)

    tasks, counts = {}, {}
    for name in names:
        vals = np.asarray(values[name], dtype=np.float64)
        ok = near & np.isfinite(vals)
        counts[name] = int(ok.sum())
        tasks[name] = (lambda ok=ok, vals=vals: OrdinaryKrigingModel(
            settings.variogram, log_transform=settings.log_transform).fit(
            x[ok], y[ok], vals[ok]).krige_grid(kgrid))
    krigings = run_tasks(tasks, progress, cancel, 0.08, 0.12,
                         "; ".join(f"{name}: kriging {counts[name]} samples" for name in names))
    model = PyramidSceneModel(names, krigings, transform, kmeans, image_grid, kgrid, spacing,
                              settings.log_transform, notes)
    model.layers = fit_layers(model.source(read), levels, settings, n_elements=len(names),
                              progress=progress, cancel=cancel, start=0.2, span=0.8)
    return model


def fuse_raster_blocks(read_geo, read_features, image_grid, settings, *, geo_grid,
                       sample_spacing=None, read_units=None, consume=None, progress=None,
                       cancel=None):
    """The pyramid fusion of a geochemical raster of any resolution, on readers, block by block.

    ``read_geo``, ``read_features`` and ``read_units`` are ``read(row0, col0, nrows, ncols)``
    callables on ``image_grid`` (:class:`LayerSource`); ``geo_grid`` is the geochemical
    raster's own grid (for the automatic depth and the overlap check). ``settings``: a
    :class:`~.vocabulary.FusionSettings` in a pyramid mode (``levels`` 0 = automatic from
    ``sample_spacing``, default 4 geochemical cells, since kriging grids are a quarter of
    the sample spacing). K-means units, when needed and no ``read_units`` is given, are
    fitted on a seeded pixel sample. Returns ``(list of FusionResult, notes)``; the fused
    blocks go to ``consume(row0, fused, features, labels)``.
    """
    if not geo_grid.overlaps(image_grid):
        raise ValueError(
            "the geochemical raster and the feature stack do not overlap; check their extents "
            "and CRSs"
        )
    notes = []
    levels = resolve_levels(settings.levels, sample_spacing or 4.0 * geo_grid.cell_x,
                            image_grid.cell_x, image_grid.shape, notes)
    kmeans = None
    if settings.regression == "local" and read_units is None:
        step(progress, cancel, 0.0, f"clustering {settings.n_clusters} geological units (K-means)")
        pixels = sample_pixels_from_windows(read_features, image_grid.shape,
                                            n_pixels=settings.sample_size,
                                            random_state=settings.random_state)
        kmeans = KMeansUnits(settings.n_clusters, sample_size=settings.sample_size,
                             random_state=settings.random_state).fit(pixels[:, None, :])
    source = LayerSource(read_geo, read_features, image_grid.shape, read_units=read_units,
                         kmeans=kmeans, log_transform=settings.log_transform)
    results = fuse_layers(source, levels, settings, consume, progress=progress, cancel=cancel,
                          start=0.05, span=0.95)
    return results, notes
