"""The numeric core of Geochemical Image Fusion: numpy arrays in, numpy arrays out.

Usable without QGIS (a notebook, the PyQGIS console, a script)::

    from geochem_fusion.core import pyramid, fusion
    low, high = pyramid.decompose(stack, levels=4)

Conventions: stacks are ``(bands, rows, cols)``; nodata is NaN; grids are
:class:`~geochem_fusion.core.grid.Grid` (GDAL geotransform convention).

Modules (imported on demand, so that a missing optional dependency only
affects the modules that need it):

- :mod:`.grid` — raster grid geometry
- :mod:`.kriging` — ordinary kriging with variogram fit and leave-one-out (pykrige)
- :mod:`.resample` — cubic convolution (Keys 1981)
- :mod:`.pyramid` — Gaussian/Laplacian pyramid (Burt & Adelson 1983)
- :mod:`.pca` — principal components (scikit-learn)
- :mod:`.clustering` — K-means geological units (scikit-learn)
- :mod:`.regression` — global / per-unit least squares
- :mod:`.fusion` — the fusion equations 1–3 of the paper, ``paper`` and ``coherent`` modes
- :mod:`.indices` — ASTER and Sentinel-2 mineral band-ratio indices
- :mod:`.metrics` — CC, RMSE, UIQI, SSIM, SCC, Wald consistency, anomaly IoU, success rate
- :mod:`.evaluation` — a layer scored against references; spatial cross-validation of the chain
- :mod:`.samples` — checks of field samples (NULL, below detection, duplicates, outliers)
- :mod:`.guards` — last checks of fused blocks: image holes fall back to kriging, no negative value
- :mod:`.adaptive` — the default fusion from samples: support-averaged ridge trend, spatial CV
- :mod:`.scene` — the default fusion over a whole scene, window by window
- :mod:`.sentinel2`, :mod:`.aster` — reflectance from Sentinel-2 and ASTER L1T products
- :mod:`.pipeline` — the whole chain from samples and an image
"""

import importlib

__all__ = [
    "grid", "kriging", "resample", "pyramid", "pca", "clustering", "regression", "fusion",
    "indices", "metrics", "pipeline", "progress", "samples", "adaptive", "scene", "sentinel2",
    "aster", "evaluation", "guards",
]


def __getattr__(name):
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
