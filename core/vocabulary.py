"""The chain's shared vocabulary: its choices, its settings, its grid and its results.

Everything the two scene chains (:mod:`.adaptive_scene`, :mod:`.pyramid_scene`),
the one entry point (:mod:`.scene`), the in-memory wrappers (:mod:`.pipeline`)
and the Processing algorithms agree on lives here, once:

- the enumerations :data:`MODES`, :data:`PYRAMID_MODES`, :data:`REGRESSIONS`,
  :data:`FEATURE_CHOICES` and the default :data:`SAMPLE_SIZE`;
- :class:`FusionSettings`, every setting of a run, checked when made;
- :func:`kriging_grid`, the coarse grid the samples are kriged on;
- the result dataclasses.

It imports nothing but numpy and :mod:`.grid`, so the algorithms can read the
choices when QGIS loads the plugin, before any optional package is needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .grid import Grid

__all__ = [
    "FEATURE_CHOICES",
    "MODES",
    "PYRAMID_MODES",
    "REGRESSIONS",
    "SAMPLE_SIZE",
    "BELOW_DETECTION",
    "DEFAULT_WINDOWS",
    "MIN_SAMPLES",
    "VARIOGRAM_MODELS",
    "ElementResult",
    "FusionSettings",
    "ImageFeatures",
    "PipelineResult",
    "SceneResult",
    "Sinks",
    "kriging_grid",
]

PYRAMID_MODES = ("paper", "coherent")
"""The Laplacian-pyramid fusion of the kriged layer (:func:`~.fusion.fuse`, eqs. 1–3):
``paper`` regresses the low band, ``coherent`` keeps the kriged low band."""
MODES = PYRAMID_MODES + ("adaptive",)
"""Every mode of the chain from samples: the pyramid modes and ``adaptive``, the
product's default (:func:`~.adaptive.fit_adaptive_samples`: a support-averaged
trend with cross-validated shrinkage plus kriged residuals)."""
REGRESSIONS = ("global", "local")
"""One regression for the whole image, or one per K-means unit."""
FEATURE_CHOICES = ("bands-pc2", "indices-pc2", "bands", "pcs")
"""Image features: PC2 of the bands, PC2 of the mineral indices, all bands, chosen PCs."""
SAMPLE_SIZE = 200_000
"""Pixels the fit steps (PCA, K-means, regression) see at most, by default.

The one default of the plugin: the algorithms' "Pixels sampled for the fits"
parameter, :class:`FusionSettings` and every fitted core step."""
DEFAULT_WINDOWS = (1, 3, 5)
"""Support windows (pixels) the adaptive mode chooses from."""
MIN_SAMPLES = 10
"""Fewest usable samples per element: a variogram cannot be estimated from fewer."""
VARIOGRAM_MODELS = ("spherical", "exponential", "gaussian", "linear")
"""Variogram models of the kriging (all tried by ``variogram="auto"``)."""
BELOW_DETECTION = ("refuse", "half-min", "fraction-dl")
"""Policies for values below detection: ``"refuse"`` (stop with a message naming them),
``"half-min"`` (replace by half the smallest measured value) or ``"fraction-dl"``
(replace by ``dl_fraction`` times each sample's own detection limit). The order is
that of the algorithms' BELOW_DETECTION option."""


def check_choice(name, value, choices):
    """``value`` when it is one of ``choices``, else a ValueError naming them."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


@dataclass(frozen=True)
class FusionSettings:
    """Every setting of a fusion run, checked when made.

    Parameters
    ----------
    mode : {"paper", "coherent", "adaptive"}
        See :data:`MODES`; ``adaptive`` ignores ``levels`` and ``blend_sigma``.
    features : {"bands-pc2", "indices-pc2", "bands", "pcs"}
        The image features (:class:`~.features.FeatureTransform`).
    sensor, band_map
        Which band is which, for ``indices-pc2``.
    pcs : tuple of int
        The 1-based components kept with ``features="pcs"``.
    band_names : tuple of str, optional
        Names of the image bands (reports, coefficient tables).
    regression : {"global", "local"}
        One trend, or one per K-means unit (``n_clusters`` units).
    levels : int
        Pyramid depth of the pyramid modes; 0 = automatic
        (:func:`~.pyramid.resolve_levels`).
    log_transform : bool
        Fuse log10 of the concentrations.
    variogram : str
        Variogram model of the kriging, or ``"auto"``.
    cell_size : float, optional
        Cell of the kriging grid (default a quarter of the sample spacing).
    blend_sigma : float
        Gaussian blending of the unit coefficients at unit borders (pixels).
    sample_size : int
        Pixels the fits see at most (:data:`SAMPLE_SIZE`).
    random_state : int
        Seed of every pixel sample and of K-means: a run repeats exactly.
    windows : tuple of int
        Support windows the adaptive mode chooses from.
    block_rows : int, optional
        Rows per block (default :func:`~.blocks.block_rows_for`).

    The defaults are those of the ``fusegeochemistry`` algorithm (the product's
    default, chosen by the accuracy benchmark, ``bench/results/accuracy.md``).
    """

    mode: str = "adaptive"
    features: str = "bands"
    sensor: str = "sentinel2"
    band_map: dict = None
    pcs: tuple = (2,)
    band_names: tuple = None
    regression: str = "global"
    n_clusters: int = 5
    levels: int = 0
    log_transform: bool = False
    variogram: str = "auto"
    cell_size: float = None
    blend_sigma: float = 0.0
    sample_size: int = SAMPLE_SIZE
    random_state: int = 0
    windows: tuple = DEFAULT_WINDOWS
    block_rows: int = None

    def __post_init__(self):
        check_choice("mode", self.mode, MODES)
        check_choice("regression", self.regression, REGRESSIONS)
        check_choice("features", self.features, FEATURE_CHOICES)
        object.__setattr__(self, "pcs", tuple(int(p) for p in self.pcs))
        if self.band_names is not None:
            object.__setattr__(self, "band_names", tuple(self.band_names))
        if self.sample_size is None or int(self.sample_size) < 1:
            raise ValueError(f"sample_size must be a positive integer, got {self.sample_size!r}")
        if self.blend_sigma < 0:
            raise ValueError(f"blend_sigma must be >= 0 pixels, got {self.blend_sigma}")
        if int(self.levels) != self.levels or self.levels < 0:
            raise ValueError(f"levels must be an integer >= 0 (0 = automatic), got {self.levels!r}")

    def replace(self, **changes):
        """A copy with ``changes`` (checked again)."""
        fields = {name: getattr(self, name) for name in self.__dataclass_fields__}
        fields.update(changes)
        return FusionSettings(**fields)

    def as_dict(self):
        """The settings as a plain dict (reports, logs)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


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
    """One element's results: its kriging, the kriged layer on the image grid, its fit."""

    name: str
    kriging: object  # core.kriging.KrigingResult
    geo: np.ndarray  # kriged layer resampled to the image grid
    fusion: object  # core.fusion.FusionResult or core.adaptive.AdaptiveFit


@dataclass
class PipelineResult:
    """The results of a run for all its elements, in memory (:func:`~.pipeline.fuse_samples`)."""

    elements: dict
    features: ImageFeatures
    units: np.ndarray = None
    kmeans: object = None
    levels: int = 0
    sample_spacing: float = 0.0
    kriging_grid: Grid = None
    notes: list = field(default_factory=list)


@dataclass
class SceneResult:
    """What a scene chain fitted (the fused layers themselves went to ``write``).

    ``previews`` holds decimated layers on ``preview_grid`` for reports:
    ``{"<element> fused", "<element> kriged", "features", "units"}``.
    """

    fits: dict
    kriging: dict
    transform: object  # core.features.FeatureTransform
    kmeans: object
    sample_spacing: float
    kriging_grid: Grid
    previews: dict
    preview_grid: Grid
    notes: list
    levels: int = 0

    def as_pipeline_result(self):
        """The same shape as :func:`~.pipeline.fuse_samples` returns, with the previews as layers."""
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


@dataclass
class Sinks:
    """Where a scene chain sends its results, and whom it tells how far it is.

    Parameters
    ----------
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
        variance outputs, the report). False skips it where the mode does not
        need it: ``SceneResult.kriging`` then maps every element to None.
    progress, cancel : callables, optional
        See :mod:`~.progress`; polled per block, and every
        :data:`~.blocks.POLL_SECONDS` while long fits run in worker threads.
    """

    write: object = None
    write_features: object = None
    write_units: object = None
    preview_size: int = 600
    krige_alone: bool = True
    progress: object = None
    cancel: object = None
