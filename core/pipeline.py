"""The whole chain from sample points and an image to fused layers.

Samples → ordinary kriging on a coarse grid aligned with the image (a quarter
of the sample spacing, METHOD.md step 1) → cubic convolution to the image grid
(step 2) → image features: bands/indices reduced by PCA (step 3) → K-means
units (step 5, local regression only) → Laplacian-pyramid regression fusion
(steps 4, 6–8; :func:`geochem_fusion.core.fusion.fuse`).

The image work (features, units) is done once and shared by all elements.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from . import fusion as _fusion
from .grid import Grid
from .kriging import median_nn_spacing
from .progress import Canceled
from .progress import step as _step
from .pyramid import auto_levels, max_levels
from .resample import resample_cubic

__all__ = [
    "FEATURE_CHOICES",
    "Canceled",
    "fuse_raster",
    "fuse_raster_blocks",
    "ImageFeatures",
    "ElementResult",
    "PipelineResult",
    "image_features",
    "kriging_grid",
    "fuse_samples",
]

logger = logging.getLogger(__name__)

FEATURE_CHOICES = ("bands-pc2", "indices-pc2", "bands", "pcs")
MODES = ("paper", "coherent", "adaptive")
"""``paper``/``coherent``: :func:`~geochem_fusion.core.fusion.fuse` on the kriged layer;
``adaptive``: :func:`~geochem_fusion.core.adaptive.fit_adaptive` from the samples."""
"""Image features: PC2 of the bands, PC2 of the mineral indices, all bands, chosen PCs."""




@dataclass
class ImageFeatures:
    """Features ``(p, rows, cols)`` on the image grid and what produced them."""

    data: np.ndarray
    names: list
    pca: object = None
    indices: object = None
    source_names: list = None  # inputs of the PCA (bands or index labels), for its loadings


@dataclass
class ElementResult:
    name: str
    kriging: object  # core.kriging.KrigingResult
    geo: np.ndarray  # kriged layer resampled to the image grid
    fusion: object  # core.fusion.FusionResult


@dataclass
class PipelineResult:
    elements: dict
    features: ImageFeatures
    units: np.ndarray = None
    kmeans: object = None
    levels: int = 0
    sample_spacing: float = 0.0
    kriging_grid: Grid = None
    notes: list = field(default_factory=list)


def image_features(image, *, features="bands-pc2", sensor="sentinel2", band_map=None,
                   pcs=(2,), band_names=None, standardize=True, sample_size=200_000,
                   random_state=0):
    """Compute the image features ``MS`` of METHOD.md step 3 on an in-memory image.

    The :class:`~geochem_fusion.core.scene.FeatureTransform` the block-by-block
    chains use, fitted on a seeded sample of ``sample_size`` valid pixels.

    Parameters
    ----------
    image : ndarray, shape (bands, rows, cols)
        Reflectance (or any covariate) stack, NaN = nodata.
    features : {"bands-pc2", "indices-pc2", "bands", "pcs"}
        ``bands-pc2``/``indices-pc2``: the paper's PC2 of the bands / of the
        mineral indices (PC1 carries albedo and topography); ``bands``: every
        band; ``pcs``: the principal components listed in ``pcs`` (1-based).
    sensor, band_map
        For the indices (see :func:`geochem_fusion.core.indices.compute_indices`).
    standardize : bool
        PCA on standardized bands (correlation matrix). Recommended for indices
        and mixed covariates, whose units differ.
    """
    from ._pixels import sample_pixels, valid_mask
    from .scene import FeatureTransform

    transform = FeatureTransform(features, sensor=sensor, band_map=band_map, pcs=pcs,
                                 band_names=band_names, standardize=standardize,
                                 random_state=random_state)
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 3:
        raise ValueError(f"expected a (bands, rows, cols) image stack, got ndim={image.ndim}")
    pixels = sample_pixels(image, valid_mask(image), sample_size, random_state).T
    transform.fit(pixels)
    if features == "bands":
        return ImageFeatures(image, transform.names_)
    index_result = None
    if features == "indices-pc2":
        from .indices import compute_indices

        index_result = compute_indices(image, transform.band_map, sensor=sensor,
                                       indices=transform.index_keys_)
    return ImageFeatures(transform.transform(image), transform.names_, pca=transform.pca_,
                         indices=index_result, source_names=transform.source_names_)


def kriging_grid(image_grid, sample_spacing, *, cell_size=None, pad_cells=3):
    """A coarse kriging grid covering ``image_grid``, aligned with its pixels.

    The cell is a multiple of the image pixel close to ``cell_size`` (default
    a quarter of the sample spacing), and the grid extends ``pad_cells`` cells
    beyond the image so that cubic convolution has support at the borders.
    """
    target = cell_size if cell_size else sample_spacing / 4.0
    factor = max(1, int(round(target / image_grid.cell_x)))
    cell = factor * image_grid.cell_x
    cell_y = factor * image_grid.cell_y
    ncols = int(math.ceil(image_grid.ncols / factor)) + 2 * pad_cells
    nrows = int(math.ceil(image_grid.nrows / factor)) + 2 * pad_cells
    return Grid(image_grid.x_min - pad_cells * cell, image_grid.y_max + pad_cells * cell_y,
                cell, cell_y, ncols, nrows)


def fuse_samples(x, y, values, image, image_grid, *, features="bands", sensor="sentinel2",
                 band_map=None, pcs=(2,), band_names=None, regression="global", n_clusters=5,
                 mode="adaptive", levels=0, log_transform=False, variogram="auto",
                 cell_size=None, blend_sigma=0.0, sample_size=200_000, random_state=0,
                 progress=None, cancel=None):
    """Run the whole method for one or several elements.

    Parameters
    ----------
    x, y : array_like, shape (n,)
        Sample coordinates in the image CRS (metres).
    values : dict of str -> array_like (n,)
        Concentrations per element (e.g. ``{"Cu": ppm}``); NaN = not analysed.
    image : ndarray, shape (bands, rows, cols)
        Image stack on ``image_grid``, NaN = nodata.
    image_grid : Grid
    mode : {"paper", "coherent", "adaptive"}
        ``paper``/``coherent``: the Laplacian-pyramid fusion of the kriged layer
        (:func:`~geochem_fusion.core.fusion.fuse`); ``adaptive``: regression of
        the samples on the (support-averaged) features with cross-validated
        shrinkage plus kriged residuals (:mod:`~geochem_fusion.core.adaptive`),
        one trend per K-means unit with ``regression="local"``; it ignores
        ``levels`` and ``blend_sigma``.
    levels : int
        Pyramid depth; 0 = automatic, ``round(log2(sample_spacing / pixel))``
        capped by the image size.
    progress : callable(fraction, message), optional
    cancel : callable() -> bool, optional
        Polled between steps; raises :class:`Canceled` when it returns True.

    The defaults are those of the ``fusegeochemistry`` algorithm (the product's
    default, chosen by the accuracy benchmark, ``bench/results/accuracy.md``).
    Other parameters are those of :func:`image_features`,
    :func:`~geochem_fusion.core.kriging.krige` and
    :func:`~geochem_fusion.core.fusion.fuse`.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if regression not in _fusion.REGRESSIONS:
        raise ValueError(f"regression must be one of {_fusion.REGRESSIONS}, got {regression!r}")
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if not values:
        raise ValueError("no element field given: choose at least one concentration field")
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 3 or image.shape[1:] != image_grid.shape:
        raise ValueError(
            f"image of shape {image.shape} does not match its grid {image_grid.shape}"
        )

    settings = dict(band_names=band_names, features=features, sensor=sensor, band_map=band_map,
                    pcs=pcs, regression=regression, n_clusters=n_clusters,
                    log_transform=log_transform, variogram=variogram, cell_size=cell_size,
                    sample_size=sample_size, random_state=random_state, progress=progress,
                    cancel=cancel)
    if mode == "adaptive":
        from .scene import fuse_scene

        return _scene_in_memory(fuse_scene, x, y, values, image, image_grid, **settings)
    from .pyramid_scene import fuse_pyramid_scene

    return _scene_in_memory(fuse_pyramid_scene, x, y, values, image, image_grid, mode=mode,
                            levels=levels, blend_sigma=blend_sigma, **settings)


def _scene_in_memory(fuse_scene, x, y, values, image, image_grid, **settings):
    """A block-by-block scene function (:func:`~.scene.fuse_scene`,
    :func:`~.pyramid_scene.fuse_pyramid_scene`) on an in-memory image, into arrays."""
    from .scene import array_reader

    names = list(values)
    fused = np.full((len(names), *image_grid.shape), np.nan)
    held = {}

    def write(i, row0, block):
        fused[i, row0:row0 + block.shape[0]] = block

    def write_features(row0, block):
        if "features" not in held:
            held["features"] = np.full((block.shape[0], *image_grid.shape), np.nan)
        held["features"][:, row0:row0 + block.shape[1]] = block

    def write_units(row0, block):
        if "units" not in held:
            held["units"] = np.full(image_grid.shape, -1, dtype=np.int32)
        held["units"][row0:row0 + block.shape[0]] = block

    scene = fuse_scene(x, y, values, array_reader(image), image_grid, write,
                       write_features=write_features, write_units=write_units, preview_size=None,
                       **settings)
    elements = {}
    for i, name in enumerate(names):
        kres = scene.kriging[name]
        fit = scene.fits[name]
        fit.fused = fused[i]
        elements[name] = ElementResult(name, kres, resample_cubic(kres.estimate, kres.grid,
                                                                  image_grid), fit)
    feats = ImageFeatures(held["features"], scene.transform.names_, pca=scene.transform.pca_,
                          source_names=scene.transform.source_names_)
    return PipelineResult(elements, feats, held.get("units"), scene.kmeans, scene.levels,
                          scene.sample_spacing, scene.kriging_grid, scene.notes)


def _check_samples_on_grid(x, y, image_grid):
    """Samples inside the image, samples near it (kriging support), and their spacing.

    The kriging uses the samples inside the image plus a margin of three
    sample spacings, so the borders of the image are kriged from both sides.
    """
    inside = ((x >= image_grid.x_min) & (x <= image_grid.x_max)
              & (y >= image_grid.y_min) & (y <= image_grid.y_max))
    if not inside.any():
        raise ValueError(
            "no sample falls inside the image extent "
            f"({image_grid.x_min:.0f}, {image_grid.y_min:.0f}) - "
            f"({image_grid.x_max:.0f}, {image_grid.y_max:.0f}); check that samples and image "
            "cover the same area and that their CRSs are right"
        )
    pts = inside if inside.sum() > 1 else np.ones_like(inside)
    spacing = median_nn_spacing(x[pts], y[pts])
    margin = 3 * spacing
    near = ((x >= image_grid.x_min - margin) & (x <= image_grid.x_max + margin)
            & (y >= image_grid.y_min - margin) & (y <= image_grid.y_max + margin))
    return inside, near, spacing


def spacing_levels(sample_spacing, pixel_size, shape, notes=None):
    """Automatic pyramid depth ``round(log2(spacing / pixel))``, capped by the raster size."""
    levels = auto_levels(sample_spacing, pixel_size)
    cap = max_levels(shape)
    if levels > cap:
        if notes is not None:
            notes.append(f"pyramid depth {levels} capped at {cap} by the image size")
        levels = cap
    return levels


def fuse_raster(geo, geo_grid, features, image_grid, *, levels=0, sample_spacing=None,
                mode="coherent", regression="global", labels=None, n_clusters=5,
                log_transform=False, blend_sigma=0.0, sample_size=200_000, random_state=0):
    """Fuse a geochemical raster of any resolution with features on the image grid.

    ``geo`` (rows, cols) on ``geo_grid`` is resampled to ``image_grid`` by cubic
    convolution; with ``regression="local"`` and no ``labels``, units are made
    by K-means on the features. ``levels=0`` derives the depth from
    ``sample_spacing`` (default: 4 geochemical cells, since kriging grids are a
    quarter of the sample spacing). The in-memory form of :func:`fuse_raster_blocks`
    (what the ``regressionfusion`` algorithm runs on raster files). Returns
    ``(FusionResult, labels, notes)``; of the result's arrays only ``fused`` is set.
    """
    from .scene import array_reader

    features = np.asarray(features, dtype=np.float64)
    if features.ndim == 2:
        features = features[None]
    if features.shape[1:] != image_grid.shape:
        raise ValueError(f"features {features.shape} do not match their grid {image_grid.shape}")
    geo = np.asarray(geo, dtype=np.float64)

    def read_geo(row0, col0, nrows, ncols):
        return resample_cubic(geo, geo_grid, image_grid.window(row0, col0, nrows, ncols))[None]

    fused = np.full(image_grid.shape, np.nan)
    held = {}

    def consume(row0, block, feats, block_labels):
        fused[row0:row0 + block.shape[1]] = block[0]
        if block_labels is not None:
            held.setdefault("labels", np.full(image_grid.shape, -1, dtype=np.int32))
            held["labels"][row0:row0 + block.shape[1]] = block_labels

    results, notes = fuse_raster_blocks(
        read_geo, array_reader(features), image_grid, geo_grid=geo_grid, levels=levels,
        sample_spacing=sample_spacing, mode=mode, regression=regression,
        read_units=None if labels is None else array_reader(np.asarray(labels)[None]),
        n_clusters=n_clusters, log_transform=log_transform, blend_sigma=blend_sigma,
        sample_size=sample_size, random_state=random_state, consume=consume)
    result = results[0]
    result.fused = fused
    return result, held.get("labels"), notes


def fuse_raster_blocks(read_geo, read_features, image_grid, *, geo_grid, levels=0,
                       sample_spacing=None, mode="coherent", regression="global",
                       read_units=None, n_clusters=5, log_transform=False, blend_sigma=0.0,
                       sample_size=200_000, random_state=0, consume=None, progress=None,
                       cancel=None):
    """:func:`fuse_raster` on readers, block by block (bounded memory).

    ``read_geo``, ``read_features`` and ``read_units`` are ``read(row0, col0, nrows, ncols)``
    callables on ``image_grid`` (:func:`~geochem_fusion.core.pyramid_scene.fuse_layers`);
    ``geo_grid`` is the geochemical raster's own grid (for the automatic depth and the
    overlap check). K-means units, when needed and no ``read_units`` is given, are fitted
    on a seeded pixel sample. Returns ``(list of FusionResult, notes)``; the fused blocks
    go to ``consume(row0, fused, features, labels)``.
    """
    from .pyramid_scene import fuse_layers
    from .scene import sample_pixels_from_windows

    if not geo_grid.overlaps(image_grid):
        raise ValueError(
            "the geochemical raster and the feature stack do not overlap; check their extents "
            "and CRSs"
        )
    notes = []
    if levels <= 0:
        spacing = sample_spacing or 4.0 * geo_grid.cell_x
        levels = spacing_levels(spacing, image_grid.cell_x, image_grid.shape, notes)
    kmeans = None
    if regression == "local" and read_units is None:
        from .clustering import KMeansUnits

        _step(progress, cancel, 0.0, f"clustering {n_clusters} geological units (K-means)")
        pixels = sample_pixels_from_windows(read_features, image_grid.shape,
                                            n_pixels=sample_size, random_state=random_state)
        kmeans = KMeansUnits(n_clusters, sample_size=sample_size,
                             random_state=random_state).fit(pixels[:, None, :])
    results = fuse_layers(
        read_geo, read_features, image_grid.shape, levels=levels, mode=mode,
        regression=regression, read_units=read_units, kmeans=kmeans,
        log_transform=log_transform, blend_sigma=blend_sigma, sample_size=sample_size,
        random_state=random_state, consume=consume, progress=progress, cancel=cancel,
        start=0.05, span=0.95)
    return results, notes
