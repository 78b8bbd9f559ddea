"""Adaptive fusion from sample points: cross-validated regression on image features + kriged residuals.

The paper's fusion (:mod:`.fusion`) regresses the *kriged* geochemistry on the
image at the coarse scale.  When the samples themselves are available (the
one-click ``fusegeochemistry`` starts from them), the image can be related to
the measured values directly, at their own support, and what the image does
not explain is kriged (``docs/method.md``, the ``adaptive`` mode).  Measured on
real data, this roughly halves the RMSE of a paper-like fusion on real
Sentinel-2, and on real till geochemistry a plain covariate model can do
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
4. **Selection**: the feature set and window by the error of the ridge trend
   alone, then ``λ`` by the error of the whole predictor, each measured by
   leave-one-out or by spatial block cross-validation (blocks of a few sample
   spacings; the trend is refitted without the held-out blocks and the
   residual kriged from the other samples with
   :func:`~geochem_fusion.core.kriging.krige_at`), whichever predicts at the
   distances the map does (:func:`matched_validation`: leave-one-out for an
   even survey, the block CV for samples clustered along roads or streams).
   The choice is used only if it beats kriging alone by a margin in the
   block CV.  When the image does not help, kriging alone wins and the result
   *is* kriging alone.

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

from .kriging import OrdinaryKrigingModel, krige_at, leave_one_out
from .resample import resample_cubic
from .samples import median_nn_spacing
from .vocabulary import DEFAULT_WINDOWS

__all__ = [
    "AdaptiveFit", "AdaptiveOptions", "fit_adaptive_samples", "chips_from_image", "read_chips",
    "sample_features", "feature_stack", "matched_validation", "DEFAULT_WINDOWS", "DEFAULT_SHRINKS",
]

logger = logging.getLogger(__name__)

DEFAULT_SHRINKS = (0.0, 0.25, 0.5, 0.75, 1.0)
"""Shrinkage factors of the image trend tried (0 = kriging alone)."""
FEATURE_SETS = ("bands", "bands+ratios")
_ALPHAS = np.logspace(-3, 4, 36)
"""Ridge penalties tried (GCV): 1e-3 to 1e4, five per decade."""


def _window_mean(band, window, out=None):
    """NaN-aware mean over a ``window`` × ``window`` square (normalized convolution).

    ``out``: an array to write the result into (else a new one; ``band`` itself
    for ``window`` 1).
    """
    if window <= 1:
        if out is None:
            return band
        out[...] = band
        return out
    valid = np.isfinite(band)
    if valid.all():
        # the normalizer would be uniform_filter(ones) == 1.0 exactly (a running mean of ones)
        return ndimage.uniform_filter(band, window, output=out, mode="reflect")
    num = ndimage.uniform_filter(np.where(valid, band, 0.0), window, mode="reflect")
    den = ndimage.uniform_filter(valid.astype(np.float64), window, mode="reflect")
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.divide(num, den, out=out)
    out[~valid] = np.nan
    return out


def feature_stack(image, feature_set="bands", *, window=1, band_names=None):
    """Features of ``docs/method.md`` step 3 for the adaptive fit: ``(q, rows, cols)`` and their names.

    ``bands+ratios`` adds every pairwise normalized difference ``(bi − bj)/(bi + bj)``.
    Each feature is averaged over ``window`` × ``window`` pixels (NaN-aware).
    """
    image = np.asarray(image, dtype=np.float64)
    p = image.shape[0]
    names = list(band_names) if band_names else [f"band {i + 1}" for i in range(p)]
    if feature_set not in FEATURE_SETS:
        raise ValueError(f"feature_set must be one of {FEATURE_SETS}, got {feature_set!r}")
    pairs = list(combinations(range(p), 2)) if feature_set == "bands+ratios" else []
    fnames = names + [f"ND({names[i]}, {names[j]})" for i, j in pairs]
    # filled feature by feature: a window of a whole scene holds one copy of the features
    out = np.empty((len(fnames),) + image.shape[1:])
    for i in range(p):
        _window_mean(image[i], window, out=out[i])
    for k, (i, j) in enumerate(pairs):
        nd = np.subtract(image[i], image[j])
        with np.errstate(invalid="ignore", divide="ignore"):
            nd /= image[i] + image[j]
        bad = ~np.isfinite(nd)
        if bad.any():
            nd[bad] = np.nan
        _window_mean(nd, window, out=out[p + k])
    return out, fnames


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


def _fit_trend(As, z, labels, min_unit, *, return_loo=False):
    """Global ridge trend, plus one per unit (label >= 0) with at least ``min_unit`` samples.

    Returns ``{"global": (coef, intercept, alpha), unit: (coef, intercept, alpha), ...}``,
    and with ``return_loo`` also the closed-form leave-one-out trend at each sample (from
    the fit that predicts it).
    """
    coef, intercept, alpha, _, loo = _ridge_loo(As, z)
    fits = {"global": (coef, intercept, alpha)}
    if labels is not None:
        for unit in np.unique(labels[labels >= 0]):
            inside = labels == unit
            if inside.sum() >= min_unit and np.ptp(z[inside]) > 0:
                c, i0, a, _, unit_loo = _ridge_loo(As[inside], z[inside])
                fits[int(unit)] = (c, i0, a)
                loo[inside] = unit_loo
    return (fits, loo) if return_loo else fits


def _apply_trend(As, labels, fits):
    """Trend at rows of ``As`` with each row's unit fit (the global fit when it has none)."""
    coef, intercept, _ = fits["global"]
    out = intercept + As @ coef
    if labels is not None:
        for unit, (c, i0, _) in fits.items():
            if unit == "global":
                continue
            inside = labels == unit
            out[inside] = i0 + As[inside] @ c
    return out


@dataclass
class AdaptiveFit:
    """What :func:`fit_adaptive_samples` chose and why.

    Attributes
    ----------
    feature_set, window, shrink : the selected candidate (``shrink`` = λ; 0 means
        kriging alone).
    coef, intercept, alpha : ridge trend on the standardized features (gains per
        standard deviation of each feature), and its GCV penalty.
    feature_names, mean, scale : feature standardization.
    loo_rmse : spatial cross-validation RMSE of the selected predictor at the samples.
    kriging_alone_rmse : the same for ordinary kriging alone.
    candidates : list of dicts, one per candidate, with its cross-validation RMSE.
    kriging : the :class:`~geochem_fusion.core.kriging.KrigingResult` of the residual.
    unit_fits : ``{unit: (coef, intercept, alpha)}`` of the local trends (``regression =
        "local"``); pixels of other units, or unlabelled, use the global trend.
    support_errors : ``{(feature set, window): (leave-one-out RMSE, spatial block CV RMSE)}``
        of the ridge trend alone, from which the support was chosen (empty when there was
        one candidate or ``support_selection="cv"``).
    validation : ``(choice, median distances)`` of :func:`matched_validation`: which
        validation chose the support and λ.
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
    unit_fits: dict = field(default_factory=dict)
    regression: str = "global"
    support_errors: dict = field(default_factory=dict)
    validation: tuple = ("loo", {})

    @property
    def halo(self):
        """Pixels of context a window needs on each side for an exact :meth:`trend`."""
        return self.window // 2

    def trend(self, image, *, labels=None, band_names=None):
        """``λ·(a0 + Σ ai·F_i)`` on the image (or a window of it), ``(rows, cols)``.

        ``labels`` ``(rows, cols)``: units of the pixels, for local trends.
        """
        image = np.asarray(image, dtype=np.float64)
        if self.shrink == 0:
            return np.where(np.isfinite(image).all(axis=0), 0.0, np.nan)
        F, _ = feature_stack(image, self.feature_set, window=self.window, band_names=band_names)
        return self.trend_from_features(F, labels=labels)

    def trend_from_features(self, F, *, labels=None):
        """The trend from a precomputed :func:`feature_stack` ``F`` (shared between elements)."""
        F = np.asarray(F)
        flat = F.reshape(F.shape[0], -1)
        # each fit as gains on the raw features: a0 + sum_j c_j (F_j - m_j) / s_j
        fits = [(self.coef, self.intercept)]
        if self.unit_fits and labels is not None:
            units = list(self.unit_fits)
            fits += [self.unit_fits[u][:2] for u in units]
        gains = np.stack([c / self.scale for c, _ in fits])  # (fits, q)
        offsets = np.array([a0 for _, a0 in fits]) - gains @ self.mean
        if len(fits) == 1:
            t = gains[0] @ flat
            t += offsets[0]
        else:
            # every fit on every pixel (one matrix product), then each pixel's own fit
            every = gains @ flat
            lab = np.asarray(labels).ravel()
            # row of `every` for each label (-1 and units without a fit: 0, the global fit)
            lookup = np.zeros(max(max(units), int(lab.max(initial=-1))) + 2, dtype=np.intp)
            lookup[np.asarray(units) + 1] = np.arange(1, len(units) + 1)
            which = lookup[lab + 1]
            t = np.take_along_axis(every, which[None], axis=0)[0]
            t += offsets[which]
        t *= self.shrink
        return t.reshape(F.shape[1:])

    def predict(self, image, grid, *, labels=None, band_names=None):
        """Fused values (working space) on ``grid``: trend of ``image`` + kriged residual.

        ``image`` ``(p, rows, cols)`` covers ``grid``, which may be any window of
        the image grid; give windows :attr:`halo` pixels of context (then crop)
        for results identical to the whole-image ones.
        """
        residual = resample_cubic(self.kriging.estimate, self.kriging.grid, grid)
        return self.trend(image, labels=labels, band_names=band_names) + residual

    def coefficient_table(self, feature_names=None):
        """One row describing the selected predictor (same shape as the regression tables)."""
        row = {"unit": None, "n": self.n, "feature set": self.feature_set,
               "window (px)": self.window, "shrink": self.shrink, "ridge alpha": self.alpha,
               "CV RMSE": self.loo_rmse, "kriging alone CV RMSE": self.kriging_alone_rmse,
               "intercept": self.intercept * self.shrink}
        for name, c in zip(self.feature_names, self.coef):
            row[f"gain per SD {name}"] = float(c) * self.shrink
        rows = [row]
        for unit, (coef, intercept, alpha) in sorted(self.unit_fits.items()):
            unit_row = {k: "" for k in row}
            unit_row.update({"unit": int(unit), "ridge alpha": alpha,
                             "intercept": intercept * self.shrink})
            for name, c in zip(self.feature_names, coef):
                unit_row[f"gain per SD {name}"] = float(c) * self.shrink
            rows.append(unit_row)
        return rows


def _sample_pixels(x, y, grid):
    col, row = grid.to_pixel(x, y)
    c = np.round(col).astype(int)
    r = np.round(row).astype(int)
    inside = (c >= 0) & (c < grid.ncols) & (r >= 0) & (r < grid.nrows)
    return r, c, inside


def read_chips(read, grid, x, y, half, *, n_bands=None):
    """Square chips ``(n, bands, 2·half+1, 2·half+1)`` centred on the sample pixels.

    ``read(row0, col0, nrows, ncols) -> (bands, nrows, ncols)`` reaches the
    image (an array or a raster read block by block); pixels beyond the image
    are NaN. This is all the fit needs from the image. Chips are read in row
    order, so that a file reader decodes each of its blocks once. Returns None
    when no sample falls on the image and ``n_bands`` is not given.
    """
    r, c, _ = _sample_pixels(x, y, grid)
    size = 2 * half + 1
    chips = None if n_bands is None else np.full((r.size, n_bands, size, size), np.nan)
    for i in np.lexsort((c, r)):
        ri, ci = r[i], c[i]
        r0, r1 = max(ri - half, 0), min(ri + half + 1, grid.nrows)
        c0, c1 = max(ci - half, 0), min(ci + half + 1, grid.ncols)
        if r0 >= r1 or c0 >= c1:
            continue
        block = read(r0, c0, r1 - r0, c1 - c0)
        if chips is None:
            chips = np.full((r.size, block.shape[0], size, size), np.nan)
        chips[i, :, r0 - ri + half:r1 - ri + half, c0 - ci + half:c1 - ci + half] = block
    return chips


def chips_from_image(image, image_grid, x, y, *, half):
    """:func:`read_chips` of an in-memory ``(p, rows, cols)`` image."""
    image = np.asarray(image, dtype=np.float64)

    def read(row0, col0, nrows, ncols):
        return image[:, row0:row0 + nrows, col0:col0 + ncols]

    return read_chips(read, image_grid, x, y, half, n_bands=image.shape[0])


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


def spatial_folds(x, y, *, block, n_folds=5, random_state=0):
    """Fold number of each sample for spatial block cross-validation.

    Samples are grouped in square blocks of side ``block`` (map units), and
    whole blocks are dealt to ``n_folds`` folds at random (seeded), so a
    held-out sample has no training sample in its own block. The block is
    shrunk when there would be fewer than ``2 * n_folds`` occupied blocks.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    rng = np.random.default_rng(random_state)
    size = float(block)
    for _ in range(20):
        bx = np.floor((x - x.min()) / size).astype(np.int64)
        by = np.floor((y - y.min()) / size).astype(np.int64)
        keys, inverse = np.unique(bx * 1_000_003 + by, return_inverse=True)
        if keys.size >= 2 * n_folds or size < 1e-9:
            break
        size /= 1.5
    order = rng.permutation(keys.size)
    block_fold = np.empty(keys.size, dtype=np.int64)
    block_fold[order] = np.arange(keys.size) % n_folds
    return block_fold[inverse]


def matched_validation(x, y, folds, kriging_grid):
    """Which validation sees the distances the map will: ``"loo"`` or ``"cv"``.

    The map predicts the nodes of ``kriging_grid`` at some distance from the
    nearest sample; leave-one-out predicts each sample from its nearest other
    sample, the spatial block cross-validation from the nearest sample in
    another fold. The one whose median prediction distance is closer (in ratio)
    to the map's is the one whose error is the map's (nearest-neighbour
    distance matching, Milà et al. 2022, Methods in Ecology and Evolution 13).
    An even survey is mapped at about half its spacing: leave-one-out. Samples
    clustered along lines leave map pixels far from any sample: the block CV.

    Returns ``(choice, {"map": d, "loo": d, "cv": d})`` (median distances).
    """
    from scipy.spatial import cKDTree

    pts = np.column_stack([x, y])
    tree = cKDTree(pts)
    gx, gy = np.meshgrid(kriging_grid.x_centers(), kriging_grid.y_centers())
    d_map = float(np.median(tree.query(np.column_stack([gx.ravel(), gy.ravel()]))[0]))
    d_loo = float(np.median(tree.query(pts, k=2)[0][:, 1]))
    d_cv = np.full(x.size, np.nan)
    for f in np.unique(folds):
        test = folds == f
        if (~test).any():
            d_cv[test] = cKDTree(pts[~test]).query(pts[test])[0]
    d_cv = float(np.nanmedian(d_cv))
    dist = {"map": d_map, "loo": d_loo, "cv": d_cv}
    if not (d_map > 0 and d_loo > 0 and d_cv > 0):
        return "loo", dist
    choice = "loo" if abs(np.log(d_map / d_loo)) <= abs(np.log(d_map / d_cv)) else "cv"
    return choice, dist


def _rmse(a, b):
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


@dataclass(frozen=True)
class AdaptiveOptions:
    """How :func:`fit_adaptive_samples` chooses its predictor (the defaults are the product's).

    Parameters
    ----------
    feature_sets : sequence of str, optional
        Default: ``("bands", "bands+ratios")`` when every chip pixel is
        positive (reflectance) and there are several bands, else ``("bands",)``.
    windows, shrinks : sequences
        Candidates for the support window (pixels) and λ (0 < λ ≤ 1).
    n_closest_points : int
        Neighbours of the moving-window kriging.
    min_samples : int
        Fewest samples with valid features for a trend to be tried.
    block : float, optional
        Side of the spatial CV blocks (map units; default 5 median sample spacings).
    n_folds : int
        Folds of the spatial CV.
    margin : float
        Relative RMSE by which the image must beat kriging alone (default 2 %).
    min_unit_samples : int
        Fewest samples of a unit for its own trend (local regression).
    support_selection : {"gcv", "cv"}
        How the feature set and window are chosen: ``"gcv"`` (default) by the
        error of the ridge trend alone, its leave-one-out error or its spatial
        block CV error, whichever validation matches the map's prediction
        distances (:func:`matched_validation`; a feature set that extrapolates
        badly between lines of samples fails the block CV), then λ;
        ``"cv"``: every combination by spatial CV (noisier with few samples).
    shrink_selection : {"matched", "loo", "cv"}
        How λ is chosen: ``"matched"`` (default) by the validation whose
        prediction distances match the map's (:func:`matched_validation`):
        leave-one-out for an even survey (interpolating between samples, what
        a map pixel sees), the spatial block CV for samples clustered along
        lines (map pixels far from any sample); ``"loo"`` or ``"cv"`` by one
        of them whatever the design.
        Either way the image is used only if the chosen λ also beats kriging
        alone in the spatial CV by ``margin``.
    """

    feature_sets: tuple = None
    windows: tuple = DEFAULT_WINDOWS
    shrinks: tuple = DEFAULT_SHRINKS
    n_closest_points: int = 32
    min_samples: int = 12
    block: float = None
    n_folds: int = 5
    margin: float = 0.02
    min_unit_samples: int = 15
    support_selection: str = "gcv"
    shrink_selection: str = "matched"


def fit_adaptive_samples(x, y, z, chips, kriging_grid, *, band_names=None, labels=None,
                         variogram="spherical", options=None, random_state=0):
    """Choose the adaptive predictor from the samples by spatial cross-validation.

    Every candidate — kriging alone, and for each feature set and support
    window the ridge trend shrunk by each λ plus the kriged residual — is
    scored by spatial block cross-validation at the samples (blocks of
    ``block`` map units, default 5 median sample spacings, dealt to
    ``n_folds`` folds): the trend is refitted without the held-out blocks and
    the residual is kriged from the remaining samples only. The image is used
    only if the chosen candidate beats kriging alone there by more than
    ``margin`` (relative RMSE, default 2 %), so an image that does not help
    leaves kriging alone.

    Parameters
    ----------
    x, y, z : ndarray, shape (n,)
        Samples (image CRS) and their values in the working space (e.g. log10).
    chips : ndarray, shape (n, p, s, s)
        Image chips centred on the samples (:func:`chips_from_image`), ``s``
        at least the largest window.
    kriging_grid : Grid
        Coarse grid on which the final residual is kriged.
    band_names : list of str, optional
        Names of the chip bands (the coefficient table).
    variogram : str
        Variogram of the final residual kriging (``"auto"`` allowed); the
        cross-validation uses spherical models fitted to all samples.
    options : AdaptiveOptions, optional
        The candidates and how one is chosen (default: the product's).
    random_state : int
        Seed of the spatial folds.
    labels : ndarray of int, shape (n,), optional
        Geological unit of each sample (−1 = none): local regression, one
        ridge trend per unit with at least ``min_unit_samples`` samples, the
        global trend elsewhere.

    Returns
    -------
    AdaptiveFit
        With ``kriging`` (the residual kriged on ``kriging_grid``) set; use
        :meth:`AdaptiveFit.predict` for any window of the image.
    """
    options = options if options is not None else AdaptiveOptions()
    feature_sets, windows, shrinks = options.feature_sets, options.windows, options.shrinks
    n_closest_points, min_samples = options.n_closest_points, options.min_samples
    block, n_folds, margin = options.block, options.n_folds, options.margin
    min_unit_samples = options.min_unit_samples
    support_selection, shrink_selection = options.support_selection, options.shrink_selection
    if shrink_selection not in ("matched", "loo", "cv"):
        raise ValueError(
            f"shrink_selection must be 'matched', 'loo' or 'cv', got {shrink_selection!r}")
    if labels is not None:
        labels = np.asarray(labels).astype(np.int64).ravel()
        if labels.size != np.asarray(x).size:
            raise ValueError(f"got {labels.size} unit labels for {np.asarray(x).size} samples")

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
    shrinks = [lam for lam in shrinks if lam > 0]

    def krige_cv(values, keep, model):
        """Pooled spatial-CV predictions of ``values`` on the samples in ``keep``."""
        pred = np.full(values.size, np.nan)
        for f in np.unique(folds[keep]):
            test = keep & (folds == f)
            train = keep & (folds != f)
            if train.sum() < 3:
                continue
            pred[test] = krige_at(x[train], y[train], values[train], x[test], y[test],
                                  variogram_model=model.variogram_model_,
                                  variogram_parameters=model.variogram_parameters_,
                                  n_closest_points=n_closest_points)[0]
        return pred

    spacing = median_nn_spacing(x, y)
    folds = spatial_folds(x, y, block=block or 5 * spacing, n_folds=n_folds,
                          random_state=random_state)
    matched, distances = matched_validation(x, y, folds, kriging_grid)
    everywhere = np.ones(x.size, dtype=bool)
    base = OrdinaryKrigingModel("spherical", n_closest_points=n_closest_points)
    base.fit(x, y, z, cross_validate=False)
    base_pred = krige_cv(z, everywhere, base)
    base_rmse = _rmse(base_pred[np.isfinite(base_pred)], z[np.isfinite(base_pred)])
    candidates = [{"feature set": "-", "window": 0, "shrink": 0.0, "cv rmse": base_rmse}]
    best = None  # (rmse ratio to kriging alone, description, rmse)
    pairs = [(fs, w) for fs in feature_sets for w in windows]
    support, support_errors = {}, {}
    if support_selection == "gcv" and len(pairs) > 1:
        # the support question (which features, averaged over which window, match the samples)
        # is a regression question: answer it with the closed-form leave-one-out error of the
        # ridge trend, far less noisy than the spatial CV of trend + kriging with few samples
        for fs, w in pairs:
            A, _ = sample_features(chips, fs, w, band_names)
            use = np.isfinite(A).all(axis=1)
            if use.sum() < max(min_samples, 3):
                continue
            sd = A[use].std(axis=0)
            As = (A[use] - A[use].mean(axis=0)) / np.where(sd == 0, 1.0, sd)
            loo = _ridge_loo(As, z[use])[4]
            # and the same trend refitted without each block fold: a feature set that
            # extrapolates badly away from the samples (lines of samples, a land cover seen
            # in one area only) fails here even where its leave-one-out error is small
            block_cv = np.full(int(use.sum()), np.nan)
            for f in np.unique(folds[use]):
                test, train = folds[use] == f, folds[use] != f
                if train.sum() < max(min_samples, 3):
                    continue
                block_cv[test] = _apply_trend(As[test], None, _fit_trend(As[train], z[use][train],
                                                                          None, min_unit_samples))
            scored = np.isfinite(block_cv)
            support_errors[(fs, w)] = (_rmse(loo, z[use]), _rmse(block_cv[scored], z[use][scored])
                                       if scored.any() else 0.0)
            support[(fs, w)] = support_errors[(fs, w)][0 if matched == "loo" else 1]
        if support:
            pairs = [min(support, key=support.get)]
    elif support_selection not in ("gcv", "cv"):
        raise ValueError(f"support_selection must be 'gcv' or 'cv', got {support_selection!r}")
    for fs, w in pairs:
        A, names = sample_features(chips, fs, w, band_names)
        use = np.isfinite(A).all(axis=1)
        if use.sum() < max(min_samples, 3):
            continue
        mean = A[use].mean(axis=0)
        scale = A[use].std(axis=0)
        scale[scale == 0] = 1.0
        As = np.where(use[:, None], (np.nan_to_num(A) - mean) / scale, 0.0)
        lab = None if labels is None else labels
        full_fits, trend_loo = _fit_trend(As[use], z[use], None if lab is None else lab[use],
                                          min_unit_samples, return_loo=True)
        coef, intercept, alpha = full_fits["global"]
        fitted = _apply_trend(As[use], None if lab is None else lab[use], full_fits)
        # trend of each held-out fold from a ridge refitted on the other folds
        trend_cv = np.full(x.size, np.nan)
        trend_fit = np.full(x.size, np.nan)  # in-fold fitted trend, for the residuals
        fold_fits = {}
        for f in np.unique(folds[use]):
            test, train = use & (folds == f), use & (folds != f)
            if train.sum() < max(min_samples, 3):
                continue
            fits_f = _fit_trend(As[train], z[train], None if lab is None else lab[train],
                                min_unit_samples)
            fold_fits[f] = fits_f
            trend_cv[test] = _apply_trend(As[test], None if lab is None else lab[test],
                                          fits_f)
        trend_fit[use] = fitted
        scored = use & np.isfinite(trend_cv) & np.isfinite(base_pred)
        base_use = _rmse(base_pred[scored], z[scored])
        for lam in shrinks:
            resid = z - lam * trend_fit
            try:
                model = OrdinaryKrigingModel("spherical", n_closest_points=n_closest_points)
                model.fit(x[use], y[use], resid[use], cross_validate=False)
            except ValueError:
                continue
            # residuals of the training folds use the trend refitted without the test fold
            pred = np.full(x.size, np.nan)
            for f in np.unique(folds[scored]):
                test, train = scored & (folds == f), use & (folds != f)
                r_train = z[train] - lam * _apply_trend(
                    As[train], None if lab is None else lab[train], fold_fits[f])
                pred[test] = lam * trend_cv[test] + krige_at(
                    x[train], y[train], r_train, x[test], y[test],
                    variogram_model=model.variogram_model_,
                    variogram_parameters=model.variogram_parameters_,
                    n_closest_points=n_closest_points)[0]
            score = _rmse(pred[scored], z[scored])
            # leave-one-out of the same predictor: the interpolation error a map pixel sees
            k_loo = leave_one_out(x[use], y[use], resid[use],
                                  variogram_model=model.variogram_model_,
                                  variogram_parameters=model.variogram_parameters_,
                                  n_closest_points=n_closest_points)[0]
            loo_score = _rmse(lam * trend_loo + k_loo, z[use])
            candidates.append({"feature set": fs, "window": w, "shrink": lam,
                               "cv rmse": score, "loo rmse": loo_score, "ridge alpha": alpha,
                               "trend loo rmse": support.get((fs, w), float("nan"))})
            ratio = score / base_use
            rule = matched if shrink_selection == "matched" else shrink_selection
            key = loo_score if rule == "loo" else score
            if best is None or key < best[0]:
                best = (key, (fs, w, lam, coef, intercept, alpha, names, mean, scale, use,
                              full_fits), score, ratio)
    # the image is trusted only if the chosen predictor also beats kriging alone by the margin
    # in the spatial block cross-validation
    if best is None or best[3] >= 1.0 - margin:
        fit = AdaptiveFit("-", 0, 0.0, np.zeros(0), 0.0, 0.0, [], np.zeros(0), np.zeros(0),
                          base_rmse, base_rmse, candidates, n=int(x.size))
        rx, ry, rz = x, y, z
        logger.info("adaptive fusion: the image does not improve on kriging alone (spatial CV)")
    else:
        _, (fs, w, lam, coef, intercept, alpha, names, mean, scale, use, full_fits), score, _ = best
        units = {k: v for k, v in full_fits.items() if k != "global"}
        fit = AdaptiveFit(fs, w, lam, coef, intercept, alpha, names, mean, scale, score,
                          base_rmse, candidates, n=int(use.sum()), unit_fits=units,
                          regression="local" if labels is not None else "global")
        A, _ = sample_features(chips[use], fs, w, band_names)
        rx, ry = x[use], y[use]
        rz = z[use] - lam * _apply_trend((A - mean) / scale,
                                         None if labels is None else labels[use], full_fits)
        logger.info("adaptive fusion: %s, window %d px, shrink %.2f, CV RMSE %.4g (kriging "
                    "alone %.4g)", fs, w, lam, score, base_rmse)
    fit.support_errors = support_errors
    fit.validation = (matched, distances)
    model = OrdinaryKrigingModel(variogram, n_closest_points=n_closest_points)
    fit.kriging = model.fit(rx, ry, rz).krige_grid(kriging_grid)
    return fit
