"""The whole chain on in-memory arrays: thin wrappers over the block-by-block entry point.

Samples → ordinary kriging on a coarse grid aligned with the image (a quarter
of the sample spacing, ``docs/method.md`` step 1) → cubic convolution to the
image grid (step 2) → image features: bands/indices reduced by PCA (step 3) →
K-means units (step 5, local regression only) → Laplacian-pyramid regression
fusion (steps 4, 6–8), or the adaptive trend plus kriged residuals.

:func:`fuse_samples` runs :func:`~.scene.fuse_scene` (the product's path) on an
array and collects the blocks into arrays; :func:`fuse_raster` runs
:func:`~.pyramid_scene.fuse_raster_blocks` (what the ``regressionfusion``
algorithm runs on raster files) on arrays. The image work (features, units)
is done once and shared by all elements.
"""

from __future__ import annotations

import numpy as np

from .blocks import array_reader
from .progress import Canceled
from .pyramid_scene import fuse_raster_blocks
from .resample import resample_cubic
from .scene import fuse_scene
from .vocabulary import (
    PYRAMID_MODES,
    ElementResult,
    FusionSettings,
    ImageFeatures,
    PipelineResult,
    Sinks,
    check_choice,
)

__all__ = ["Canceled", "fuse_raster", "fuse_samples"]


def fuse_samples(x, y, values, image, image_grid, settings=None, *, progress=None,
                 cancel=None):
    """Run the whole method for one or several elements on an in-memory image.

    Parameters
    ----------
    x, y : array_like, shape (n,)
        Sample coordinates in the image CRS (metres).
    values : dict of str -> array_like (n,)
        Concentrations per element (e.g. ``{"Cu": ppm}``); NaN = not analysed.
    image : ndarray, shape (bands, rows, cols)
        Image stack on ``image_grid``, NaN = nodata.
    image_grid : Grid
    settings : FusionSettings, optional
        Every setting (default: the product's defaults, the ``adaptive`` mode).
    progress : callable(fraction, message), optional
    cancel : callable() -> bool, optional
        Polled between steps; raises :class:`Canceled` when it returns True.

    Returns
    -------
    PipelineResult
        Full-resolution fused layers, features and units, and per element the
        kriging and its layer resampled to the image grid.
    """
    settings = settings if settings is not None else FusionSettings()
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 3 or image.shape[1:] != image_grid.shape:
        raise ValueError(
            f"image of shape {image.shape} does not match its grid {image_grid.shape}"
        )
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

    sinks = Sinks(write, write_features=write_features, write_units=write_units,
                  preview_size=None, progress=progress, cancel=cancel)
    scene = fuse_scene(x, y, values, array_reader(image), image_grid, settings, sinks)
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


def fuse_raster(geo, geo_grid, features, image_grid, settings=None, *, sample_spacing=None,
                labels=None):
    """Fuse a geochemical raster of any resolution with features on the image grid.

    ``geo`` (rows, cols) on ``geo_grid`` is resampled to ``image_grid`` by cubic
    convolution; with ``regression="local"`` and no ``labels``, units are made
    by K-means on the features. ``settings.levels=0`` derives the depth from
    ``sample_spacing`` (default: 4 geochemical cells, since kriging grids are a
    quarter of the sample spacing). The in-memory form of
    :func:`~.pyramid_scene.fuse_raster_blocks`. ``settings`` default: the
    ``coherent`` mode. Returns ``(FusionResult, labels, notes)``; of the
    result's arrays only ``fused`` is set.
    """
    settings = settings if settings is not None else FusionSettings(mode="coherent")
    check_choice("mode", settings.mode, PYRAMID_MODES)
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
        read_geo, array_reader(features), image_grid, settings, geo_grid=geo_grid,
        sample_spacing=sample_spacing,
        read_units=None if labels is None else array_reader(np.asarray(labels)[None]),
        consume=consume)
    result = results[0]
    result.fused = fused
    return result, held.get("labels"), notes
