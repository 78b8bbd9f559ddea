"""The numeric core of Geochemical Image Fusion: numpy arrays in, numpy arrays out.

Usable without QGIS (a notebook, the PyQGIS console, a script)::

    from geochem_fusion.core import pyramid, fusion
    low, high = pyramid.decompose(stack, levels=4)

Conventions: stacks are ``(bands, rows, cols)``; nodata is NaN; grids are
:class:`~geochem_fusion.core.grid.Grid` (GDAL geotransform convention). The
method, in the project's own words, is ``docs/method.md``.

Modules (imported on demand, so that a missing optional dependency only
affects the modules that need it), from the bottom up: each imports only
modules listed before it (``tests/core/test_layout.py`` checks it).

Building blocks

- :mod:`.grid` — raster grid geometry
- :mod:`.progress` — progress and cancel hooks
- :mod:`.vocabulary` — the chain's choices, settings, kriging grid and results
- :mod:`.resample` — cubic convolution (Keys 1981)
- :mod:`.blocks` — block I/O and scheduling: the block budget, readers, pixel samples, threads, previews
- :mod:`.samples` — field samples: values, detection limits, duplicates, outliers, spacing, extent
- :mod:`.kriging` — ordinary kriging with variogram fit and leave-one-out (PyKrige, optional)
- :mod:`.pyramid` — Gaussian/Laplacian pyramid (Burt & Adelson 1983) and the depth rule
- :mod:`.pca` — principal components (scikit-learn)
- :mod:`.clustering` — K-means geological units (scikit-learn)
- :mod:`.regression` — global / per-unit least squares
- :mod:`.indices` — ASTER and Sentinel-2 mineral band-ratio indices
- :mod:`.metrics` — CC, RMSE, UIQI, SSIM, SCC, anomaly IoU, success rate
- :mod:`.thresholds` — anomaly thresholds: concentration-area fractal, MAD, percentiles

The method

- :mod:`.fusion` — the in-memory reference of the paper's equations 1–3 (``paper``, ``coherent``)
- :mod:`.adaptive` — the adaptive trend from samples: support-averaged ridge trend, spatial CV
- :mod:`.features` — image features: the fitted feature transform (bands, PCs, indices)

The chain (the product's path)

- :mod:`.adaptive_scene` — the default ``adaptive`` chain over a whole scene, block by block
- :mod:`.pyramid_scene` — the ``paper`` / ``coherent`` chain over a whole scene, block by block
- :mod:`.scene` — the one entry point: settings in, ``fit`` / ``predict`` over block readers
- :mod:`.pipeline` — the entry point on in-memory arrays
- :mod:`.guards` — last checks of fused blocks: image holes fall back to kriging, no negative value
- :mod:`.evaluation` — a layer scored against references; spatial cross-validation of the chain

Inputs

- :mod:`.sentinel2`, :mod:`.aster` — reflectance from Sentinel-2 and ASTER L1T products
"""

import importlib

__all__ = [
    "adaptive", "adaptive_scene", "aster", "blocks", "clustering", "evaluation", "features",
    "fusion", "grid", "guards", "indices", "kriging", "metrics", "pca", "pipeline", "progress",
    "pyramid", "pyramid_scene", "regression", "resample", "samples", "scene", "sentinel2",
    "thresholds", "vocabulary",
]


def __getattr__(name):
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
