"""Adaptive fusion from sample points: cross-validated regression on image features + kriged residuals.

The paper's fusion (:mod:`.fusion`) regresses the *kriged* geochemistry on the
image at the coarse scale.  When the samples themselves are available (the
one-click ``fusegeochemistry`` starts from them), the image can be related to
the measured values directly, at their own support, and what the image does
not explain is kriged.  METHOD.md ("What measurements on real data already
say") records that this roughly halves the RMSE of a paper-like fusion on real
Sentinel-2, and that on real till geochemistry a plain covariate model can do
*worse* than kriging alone, so the method must decide from the data how much to
trust the image.  This module does that:

1. **Features** ``F``: the image bands, and optionally their pairwise
   normalized differences ``(bi − bj)/(bi + bj)`` (band ratios are how
   lithology and alteration show in reflectance; only offered when all bands
   are positive), each averaged over a square window of ``w`` pixels to match
   the support of a composite sample, then standardized.
2. **Trend**: ridge regression of the sample values on ``F`` at the sample
   pixels, the penalty chosen by generalized cross-validation
   (:class:`sklearn.linear_model.RidgeCV`): collinear bands cannot blow the
   gains up.
3. **Shrinkage** ``λ`` in [0, 1] of the trend and the residual kriging:
   ``z = λ·trend + OK(z − λ·trend)``; ``λ = 0`` is kriging alone.
4. **Selection**: every combination of feature set, window and ``λ`` is scored
   by leave-one-out cross-validation of the whole predictor at the samples
   (closed-form ridge LOO + batched kriging LOO,
   :func:`~geochem_fusion.core.kriging.leave_one_out`), and the best one is
   used.  When the image does not help, ``λ = 0`` wins and the result *is*
   kriging alone.

The output on the fine image grid is ``λ·trend(F) + residual`` where the
residual is kriged on the coarse grid and brought to the image grid by cubic
convolution.  Everything is in the space the caller gives (log10 for
log-transformed concentrations).

References: Hengl, Heuvelink & Rossiter (2007) "About regression-kriging",
Computers & Geosciences 33; Golub, Heath & Wahba (1979) generalized
cross-validation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
from scipy import ndimage

from .kriging import OrdinaryKrigingModel, leave_one_out
from .resample import resample_cubic

__all__ = [
    "AdaptiveFit", "fit_adaptive", "fit_adaptive_samples", "chips_from_image", "sample_features",
    "feature_stack", "DEFAULT_WINDOWS", "DEFAULT_SHRINKS",
]

logger = logging.getLogger(__name__)

DEFAULT_WINDOWS = (1, 3, 5)
"""Square averaging windows (pixels) tried for the sample support."""
DEFAULT_SHRINKS = (0.0, 0.25, 0.5, 0.75, 1.0)
"""Shrinkage factors of the image trend tried (0 = kriging alone)."""
FEATURE_SETS = ("bands", "bands+ratios")
_ALPHAS = np.logspace(-3, 4, 36)


def _window_mean(band, window):
    """NaN-aware mean over a ``window`` × ``window`` square (normalized convolution)."""
    if window <= 1:
        return band
    valid = np.isfinite(band)
    num = ndimage.uniform_filter(np.where(valid, band, 0.0), window, mode="reflect")
    den = ndimage.uniform_filter(valid.astype(np.float64), window, mode="reflect")
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den
    out[~valid] = np.nan
    return out


def feature_stack(image, feature_set="bands", *, window=1, band_names=None):
    """Features of METHOD step 3 for the adaptive fit: ``(q, rows, cols)`` and their names.

    ``bands+ratios`` adds every pairwise normalized difference ``(bi − bj)/(bi + bj)``.
    Each feature is averaged over ``window`` × ``window`` pixels (NaN-aware).
    """
    image = np.asarray(image, dtype=np.float64)
    p = image.shape[0]
    names = list(band_names) if band_names else [f"band {i + 1}" for i in range(p)]
    feats, fnames = [image[i] for i in range(p)], list(names)
    if feature_set == "bands+ratios":
        for i, j in combinations(range(p), 2):
            with np.errstate(invalid="ignore", divide="ignore"):
                nd = (image[i] - image[j]) / (image[i] + image[j])
            nd[~np.isfinite(nd)] = np.nan
            feats.append(nd)
            fnames.append(f"ND({names[i]}, {names[j]})")
    elif feature_set != "bands":
        raise ValueError(f"feature_set must be one of {FEATURE_SETS}, got {feature_set!r}")
    return np.stack([_window_mean(f, window) for f in feats]), fnames


def _ridge_loo(A, z):
    """Ridge fit with GCV-chosen penalty; closed-form leave-one-out predictions.

    ``A`` (n, q) standardized features, ``z`` (n,). Returns
    ``(coef, intercept, alpha, fitted, loo_pred)``.
    """
    from sklearn.linear_model import RidgeCV

    model = RidgeCV(alphas=_ALPHAS).fit(A, z)
    alpha = float(model.alpha_)
    n = A.shape[0]
    Ac = A - A.mean(axis=0)
    # hat matrix diagonal of ridge with an unpenalized intercept: 1/n + diag(Ac M Ac')
    M = np.linalg.solve(Ac.T @ Ac + alpha * np.eye(A.shape[1]), np.eye(A.shape[1]))
    h = 1.0 / n + np.einsum("ij,jk,ik->i", Ac, M, Ac)
    fitted = model.predict(A)
    loo = z - (z - fitted) / np.clip(1.0 - h, 1e-6, None)
    return model.coef_.copy(), float(model.intercept_), alpha, fitted, loo


@dataclass
class AdaptiveFit:
    """What :func:`fit_adaptive` chose and why.

    Attributes
    ----------
    feature_set, window, shrink : the selected candidate (``shrink`` = λ; 0 means
        kriging alone).
    coef, intercept, alpha : ridge trend on the standardized features (gains per
        standard deviation of each feature), and its GCV penalty.
    feature_names, mean, scale : feature standardization.
    loo_rmse : leave-one-out RMSE of the selected predictor at the samples.
    kriging_alone_rmse : leave-one-out RMSE of ordinary kriging alone.
    candidates : list of dicts, one per candidate, with its LOO RMSE.
    kriging : the :class:`~geochem_fusion.core.kriging.KrigingResult` of the residual.
    """

    feature_set: str
    window: int
    shrink: float
    coef: np.ndarray
    intercept: float
    alpha: float
    feature_names: list
    mean: np.ndarray
    scale: np.ndarray
    loo_rmse: float
    kriging_alone_rmse: float
    candidates: list = field(default_factory=list)
    kriging: object = None
    fused: np.ndarray = None
    n: int = 0

    @property
    def halo(self):
        """Pixels of context a window needs on each side for an exact :meth:`trend`."""
        return self.window // 2

    def trend(self, image, *, band_names=None):
        """``λ·(a0 + Σ ai·F_i)`` on the image (or a window of it), ``(rows, cols)``."""
        image = np.asarray(image, dtype=np.float64)
        if self.shrink == 0:
            return np.where(np.isfinite(image).all(axis=0), 0.0, np.nan)
        F, _ = feature_stack(image, self.feature_set, window=self.window, band_names=band_names)
        t = np.full(F.shape[1:], self.intercept)
        for i in range(F.shape[0]):
            t += self.coef[i] * (F[i] - self.mean[i]) / self.scale[i]
        return self.shrink * t

    def predict(self, image, grid, *, band_names=None):
        """Fused values (working space) on ``grid``: trend of ``image`` + kriged residual.

        ``image`` ``(p, rows, cols)`` covers ``grid``, which may be any window of
        the image grid; give windows :attr:`halo` pixels of context (then crop)
        for results identical to the whole-image ones.
        """
        residual = resample_cubic(self.kriging.estimate, self.kriging.grid, grid)
        return self.trend(image, band_names=band_names) + residual

    def coefficient_table(self, feature_names=None):
        """One row describing the selected predictor (same shape as the regression tables)."""
        row = {"unit": None, "n": self.n, "feature set": self.feature_set,
               "window (px)": self.window, "shrink": self.shrink, "ridge alpha": self.alpha,
               "LOO RMSE": self.loo_rmse, "kriging alone LOO RMSE": self.kriging_alone_rmse,
               "intercept": self.intercept * self.shrink}
        for name, c in zip(self.feature_names, self.coef):
            row[f"gain per SD {name}"] = float(c) * self.shrink
        return [row]


def _sample_pixels(x, y, grid):
    col, row = grid.to_pixel(x, y)
    c = np.round(col).astype(int)
    r = np.round(row).astype(int)
    inside = (c >= 0) & (c < grid.ncols) & (r >= 0) & (r < grid.nrows)
    return r, c, inside


def chips_from_image(image, image_grid, x, y, *, half):
    """Square chips ``(n, p, 2·half+1, 2·half+1)`` of ``image`` centred on the sample pixels.

    Pixels beyond the image are NaN. This is all the fit needs from the image,
    so a caller with a huge raster can read just these chips instead.
    """
    image = np.asarray(image, dtype=np.float64)
    p, rows, cols = image.shape
    r, c, _ = _sample_pixels(x, y, image_grid)
    size = 2 * half + 1
    chips = np.full((len(r), p, size, size), np.nan)
    for i, (ri, ci) in enumerate(zip(r, c)):
        r0, r1 = max(ri - half, 0), min(ri + half + 1, rows)
        c0, c1 = max(ci - half, 0), min(ci + half + 1, cols)
        if r0 >= r1 or c0 >= c1:
            continue
        chips[i, :, r0 - ri + half:r1 - ri + half, c0 - ci + half:c1 - ci + half] = \
            image[:, r0:r1, c0:c1]
    return chips


def sample_features(chips, feature_set, window, band_names=None):
    """Features at the chip centres averaged over ``window`` × ``window`` pixels: ``(n, q)``."""
    chips = np.asarray(chips, dtype=np.float64)
    half = chips.shape[-1] // 2
    h = window // 2
    n, p = chips.shape[:2]
    out = []
    names = None
    for i in range(n):
        F, names = feature_stack(chips[i][:, half - h:half + h + 1, half - h:half + h + 1],
                                 feature_set, band_names=band_names)
        with np.errstate(invalid="ignore"):
            valid = np.isfinite(F)
            counts = valid.sum(axis=(1, 2))
            sums = np.where(valid, F, 0.0).sum(axis=(1, 2))
            out.append(np.where(counts > 0, sums / np.maximum(counts, 1), np.nan))
    if names is None:
        names = feature_stack(np.ones((p, 1, 1)), feature_set, band_names=band_names)[1]
    return np.asarray(out).reshape(n, len(names)), names


def fit_adaptive_samples(x, y, z, chips, kriging_grid, *, band_names=None, feature_sets=None,
                         windows=DEFAULT_WINDOWS, shrinks=DEFAULT_SHRINKS, variogram="spherical",
                         n_closest_points=32, min_samples=12):
    """Choose the adaptive predictor from the samples and krige its residual.

    Parameters
    ----------
    x, y, z : ndarray, shape (n,)
        Samples (image CRS) and their values in the working space (e.g. log10).
    chips : ndarray, shape (n, p, s, s)
        Image chips centred on the samples (:func:`chips_from_image`), ``s``
        at least the largest window.
    kriging_grid : Grid
        Coarse grid on which the residual is kriged.
    feature_sets : sequence of str, optional
        Default: ``("bands", "bands+ratios")`` when every chip pixel is
        positive (reflectance) and there are several bands, else ``("bands",)``.
    windows, shrinks : sequences
        Candidates for the support window (pixels) and λ.
    variogram : str
        Variogram of the final residual kriging (``"auto"`` allowed); the
        candidate scoring uses a spherical model for speed.

    Returns
    -------
    AdaptiveFit
        With ``kriging`` (the residual kriged on ``kriging_grid``) set; use
        :meth:`AdaptiveFit.predict` for any window of the image.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    chips = np.asarray(chips, dtype=np.float64)
    if chips.ndim != 4 or chips.shape[0] != x.size:
        raise ValueError(f"expected chips of shape (n={x.size}, bands, s, s), got {chips.shape}")
    if feature_sets is None:
        finite = chips[np.isfinite(chips)]
        positive = finite.size > 0 and finite.min() > 0
        feature_sets = FEATURE_SETS if (positive and chips.shape[1] > 1) else ("bands",)
    windows = [w for w in windows if w <= chips.shape[-1]]

    # kriging alone: the reference every candidate must beat
    base = OrdinaryKrigingModel("spherical", n_closest_points=n_closest_points).fit(x, y, z)
    base_loo, _ = leave_one_out(base.x_, base.y_, base.z_, variogram_model=base.variogram_model_,
                                variogram_parameters=base.variogram_parameters_,
                                n_closest_points=n_closest_points)
    base_rmse = float(base.loo_["rmse"])
    candidates = [{"feature set": "-", "window": 0, "shrink": 0.0, "loo rmse": base_rmse}]
    best = None  # (rmse ratio to kriging alone, feature_set, window, shrink, fit-tuple, rmse)
    for fs in feature_sets:
        for w in windows:
            A, names = sample_features(chips, fs, w, band_names)
            use = np.isfinite(A).all(axis=1) & np.isfinite(z)
            if use.sum() < max(min_samples, 3):
                continue
            mean = A[use].mean(axis=0)
            scale = A[use].std(axis=0)
            scale[scale == 0] = 1.0
            As = (A[use] - mean) / scale
            coef, intercept, alpha, fitted, loo_trend = _ridge_loo(As, z[use])
            xu, yu, zu = x[use], y[use], z[use]
            # kriging alone on the same samples (when the model merged duplicate coordinates the
            # per-sample order is lost: compare with the overall figure)
            if base.x_.size == x.size:
                base_use = float(np.sqrt(np.mean((base_loo[use] - zu) ** 2)))
            else:
                base_use = base_rmse
            for lam in shrinks:
                if lam == 0:
                    continue
                resid = zu - lam * fitted
                try:
                    vario = OrdinaryKrigingModel("spherical", n_closest_points=n_closest_points)
                    vario.fit(xu, yu, resid)
                except ValueError:
                    continue
                k_loo, _ = leave_one_out(xu, yu, resid, variogram_model=vario.variogram_model_,
                                         variogram_parameters=vario.variogram_parameters_,
                                         n_closest_points=n_closest_points)
                pred = lam * loo_trend + k_loo
                score = float(np.sqrt(np.mean((pred - zu) ** 2)))
                candidates.append({"feature set": fs, "window": w, "shrink": lam,
                                   "loo rmse": score, "ridge alpha": alpha})
                ratio = score / base_use
                if best is None or ratio < best[0]:
                    best = (ratio, fs, w, lam, (coef, intercept, alpha, names, mean, scale, use),
                            score)
    if best is None or best[0] >= 1.0:
        fit = AdaptiveFit("-", 0, 0.0, np.zeros(0), 0.0, 0.0, [], np.zeros(0), np.zeros(0),
                          base_rmse, base_rmse, candidates, n=int(x.size))
        rx, ry, rz = x, y, z
        logger.info("adaptive fusion: the image does not improve on kriging alone (LOO)")
    else:
        _, fs, w, lam, (coef, intercept, alpha, names, mean, scale, use), score = best
        fit = AdaptiveFit(fs, w, lam, coef, intercept, alpha, names, mean, scale, score,
                          base_rmse, candidates, n=int(use.sum()))
        A, _ = sample_features(chips[use], fs, w, band_names)
        rx, ry = x[use], y[use]
        rz = z[use] - lam * (intercept + ((A - mean) / scale) @ coef)
        logger.info("adaptive fusion: %s, window %d px, shrink %.2f, LOO RMSE %.4g (kriging "
                    "alone %.4g)", fs, w, lam, score, base_rmse)
    model = OrdinaryKrigingModel(variogram, n_closest_points=n_closest_points)
    fit.kriging = model.fit(rx, ry, rz).krige_grid(kriging_grid)
    return fit


def fit_adaptive(x, y, z, image, image_grid, kriging_grid, *, band_names=None, **options):
    """Choose and fit the adaptive predictor and predict on the whole image grid.

    Convenience for images that fit in memory: :func:`chips_from_image`, then
    :func:`fit_adaptive_samples` (``options`` are its keywords), then
    :meth:`AdaptiveFit.predict`.

    Returns
    -------
    fused : ndarray, shape (rows, cols)
    fit : AdaptiveFit
    """
    windows = options.get("windows", DEFAULT_WINDOWS)
    chips = chips_from_image(image, image_grid, x, y, half=max(windows) // 2)
    fit = fit_adaptive_samples(x, y, z, chips, kriging_grid, band_names=band_names, **options)
    fit.fused = fit.predict(image, image_grid, band_names=band_names)
    return fit.fused, fit
