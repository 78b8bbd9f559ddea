"""Regression fusion of a geochemical layer with image features (paper eqs. 1–3).

Reference: "Research on Scale Improvement of Geochemical Exploration Based on
Remote Sensing Image Fusion", Remote Sensing 2023, 15(8), 1993, §4.3; the
method as the project states it in ``docs/method.md``.

With ``X_L``/``X_H`` the Laplacian-pyramid low/high parts
(:func:`geochem_fusion.core.pyramid.decompose`):

- eq. 1  ``Geo_L ≈ f(MS_L) = a0 + Σ ai·MS_Li``  (least squares, global or per unit)
- eq. 2  ``Geo_Hre = Geo_H + Σ ai·MS_Hi``        (gains only: adding a0 again would
  double-count the offset)
- eq. 3  ``Geo_f = Geo_Lre + Geo_Hre``           (``mode="paper"``)

``mode="coherent"`` keeps the residual the image does not explain:
``Geo_f = Geo_L + Geo_H + Σ ai·MS_Hi``; its block average at the survey
support returns the input approximately (Wald consistency).  Not exactly:
cubic resampling is not area-preserving, and the depth-``k`` pyramid low-pass
is about three times wider than a ``2**k`` block (equivalent Gaussian sigma
≈ 0.8·2**k pixels), so the injected detail keeps a non-zero block mean.

Behaviour to know about: eq. 2 adds ``Geo_H`` *and* the injected detail (in
both modes), so fine detail already present in the geochemical layer is kept
and image detail is added on top (if the geochemical layer already held the
image detail it would get it twice); and in ``paper`` mode everything in
``Geo_L`` the regression does not explain (``Geo_L − Geo_Lre``) is dropped.

:func:`fuse` holds every layer and its pyramid in memory: it is the reference.
The toolbox and :mod:`~geochem_fusion.core.pipeline` run the same equations row
block by row block (:func:`geochem_fusion.core.pyramid_scene.fuse_layers`),
equal to it to rounding, so that a full Sentinel-2 tile fits in memory.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from .progress import step
from .pyramid import decompose
from .regression import FeatureRegression
from .vocabulary import PYRAMID_MODES, REGRESSIONS, SAMPLE_SIZE, check_choice

__all__ = ["FusionResult", "fuse"]

logger = logging.getLogger(__name__)



@dataclass
class FusionResult:
    """Output of :func:`fuse`. Arrays are ``(rows, cols)``, NaN = nodata.

    ``fused`` is in data units (back-transformed when ``log_transform``); the
    other layers are in the space the fit was made in (log10 when
    ``log_transform``).
    """

    fused: np.ndarray
    geo_low: np.ndarray
    geo_high: np.ndarray
    geo_low_regressed: np.ndarray
    injected_detail: np.ndarray
    model: FeatureRegression
    mode: str
    regression: str
    levels: int
    log_transform: bool

    def coefficient_table(self, feature_names=None):
        """One row per fit (global, then each unit): n, R², intercept, gains."""
        return self.model.coefficient_table(feature_names)


def _validate(geo, features, labels):
    geo = np.asarray(geo, dtype=np.float64)
    features = np.asarray(features, dtype=np.float64)
    if geo.ndim != 2:
        raise ValueError(f"expected the geochemical layer as (rows, cols), got ndim={geo.ndim}")
    if features.ndim == 2:
        features = features[None]
    if features.ndim != 3:
        raise ValueError(
            f"expected features as a (bands, rows, cols) stack, got ndim={features.ndim}"
        )
    if features.shape[1:] != geo.shape:
        raise ValueError(
            f"features {features.shape[1:]} and geochemistry {geo.shape} are not on the same grid; "
            "resample the geochemistry to the image grid first"
        )
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != geo.shape:
            raise ValueError(f"units {labels.shape} and geochemistry {geo.shape} differ in shape")
    return geo, features, labels


def fuse(
    geo,
    features,
    *,
    levels,
    mode="coherent",
    regression="global",
    labels=None,
    log_transform=False,
    blend_sigma=0.0,
    sample_size=SAMPLE_SIZE,
    random_state=0,
    cancel=None,
):
    """Fuse a geochemical layer with image features on the same fine grid.

    Parameters
    ----------
    geo : ndarray, shape (rows, cols)
        The geochemical layer resampled to the image grid (``Geo``), in data
        units (e.g. ppm). NaN = nodata.
    features : ndarray, shape (p, rows, cols)
        Image features ``MS`` (bands, indices or principal components).
    levels : int
        Laplacian pyramid depth ``k``; the low part is the Gaussian level ``k``
        expanded back (:func:`~geochem_fusion.core.pyramid.auto_levels` gives
        the paper's default from sample spacing and pixel size).
    mode : {"paper", "coherent"}
        ``paper``: eq. 3 exactly; ``coherent``: keep the unexplained residual.
    regression : {"global", "local"}
        One fit for the whole image, or one per geological unit (``labels``).
    labels : ndarray of int, shape (rows, cols), optional
        Unit of each pixel (−1 = none); required for ``regression="local"``.
    log_transform : bool
        Fit and fuse ``log10(geo)`` and back-transform with ``10**x`` at the end.
        Needs positive values. Off in the paper.
    blend_sigma : float
        Pixels; > 0 smooths the per-unit coefficients across unit borders to
        avoid seams (local regression only). Off in the paper.
    sample_size, random_state
        Passed to :class:`~geochem_fusion.core.regression.FeatureRegression`
        (its other options keep their defaults, as in the block-by-block chain).
    cancel : callable() -> bool, optional
        Polled between the pyramid of each layer and the fit; raises
        :class:`~geochem_fusion.core.progress.Canceled` when it returns True.

    Returns
    -------
    FusionResult
    """
    check_choice("mode", mode, PYRAMID_MODES)
    check_choice("regression", regression, REGRESSIONS)
    geo, features, labels = _validate(geo, features, labels)
    if regression == "local" and labels is None:
        raise ValueError("local regression needs unit labels (run K-means units first)")
    if regression == "global":
        labels = None

    if log_transform:
        bad = np.isfinite(geo) & (geo <= 0)
        if bad.any():
            raise ValueError(
                f"log transform needs positive values, but {int(bad.sum())} pixels of the "
                "geochemical layer are <= 0; turn the log transform off or fix the input"
            )
        with np.errstate(divide="ignore", invalid="ignore"):
            space = np.log10(geo)
    else:
        space = geo

    step(None, cancel, 0.0)
    geo_low, geo_high = decompose(space, levels)
    ms_low = np.empty_like(features)
    ms_high = np.empty_like(features)
    for i in range(features.shape[0]):  # band by band, so that a cancel is seen between bands
        step(None, cancel, 0.0)
        ms_low[i], ms_high[i] = decompose(features[i], levels)
    step(None, cancel, 0.0)

    model = FeatureRegression(
        regression, sample_size=sample_size, random_state=random_state,
    ).fit(geo_low, ms_low, labels)
    gains, intercept = model.coefficient_maps(labels, shape=geo.shape, blend_sigma=blend_sigma)

    geo_low_regressed = intercept + np.einsum("prc,prc->rc", gains, ms_low)
    detail = np.einsum("prc,prc->rc", gains, ms_high)
    if mode == "paper":
        fused = geo_low_regressed + geo_high + detail
    else:
        fused = geo_low + geo_high + detail
    if log_transform:
        fused = np.power(10.0, fused)
    logger.info("fused with %s regression in %s mode at depth %d", regression, mode, levels)
    return FusionResult(
        fused=fused,
        geo_low=geo_low,
        geo_high=geo_high,
        geo_low_regressed=geo_low_regressed,
        injected_detail=detail,
        model=model,
        mode=mode,
        regression=regression,
        levels=int(levels),
        log_transform=bool(log_transform),
    )
