"""Linear regression of the geochemistry on image features (``docs/method.md`` step 6).

The paper fits, by least squares, globally or separately in each K-means
unit (eq. 1)::

    Geo_L ≈ f(MS_L1 … MS_Ln) = a0 + Σ ai·MS_Li

between the low-frequency geochemistry ``Geo_L`` and the low-frequency image
features ``MS_Li``.  The fit uses a seeded sample of pixels; applying it is
done block by block.  The paper leaves units with too few pixels or a
singular design open: they fall back to the global fit, with a warning.

References
----------
Research on Scale Improvement of Geochemical Exploration Based on Remote
Sensing Image Fusion. *Remote Sensing* 15(8), 1993 (2023), eqs. 1-3.

Hoerl, A. E. & Kennard, R. W. (1970). Ridge regression: biased estimation for
nonorthogonal problems. *Technometrics* 12(1), 55-67.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np
from scipy.ndimage import gaussian_filter

from ._pixels import as_stack, sample_indices, valid_mask
from .blocks import block_rows_for, row_blocks
from .vocabulary import SAMPLE_SIZE

__all__ = ["FeatureRegression", "LinearFit", "SingularDesignError", "fit_linear"]

logger = logging.getLogger(__name__)


class SingularDesignError(ValueError):
    """The design matrix cannot identify the coefficients.

    Too few pixels, a constant feature or exactly collinear features.
    """


@dataclass
class LinearFit:
    """One fitted linear model ``y ≈ intercept + coef @ x``.

    Attributes
    ----------
    coef : numpy.ndarray, shape (p,)
        Gains ``a1 … ap`` of eq. 1 (units of y per unit of each feature).
    intercept : float
        Offset ``a0``.
    r2 : float
        Coefficient of determination on the fitted pixels, ``1 - SSres/SStot``
        (0 when y is constant).
    n : int
        Number of pixels fitted.
    label : int or None
        Unit label, ``None`` for the global fit.
    fallback : bool
        ``True`` when this unit uses the global fit (then ``coef``,
        ``intercept``, ``r2`` and ``n`` are the global fit's).
    """

    coef: np.ndarray
    intercept: float
    r2: float
    n: int
    label: Optional[int] = None
    fallback: bool = False


def fit_linear(y, X, *, ridge=0.0, label=None) -> LinearFit:
    """Least-squares fit of ``y ≈ a0 + X @ a`` with an intercept.

    Parameters
    ----------
    y : array_like, shape (n,)
        Response, finite.
    X : array_like, shape (n, p)
        Features, finite.
    ridge : float, keyword-only
        L2 penalty λ ≥ 0 on the gains of the *standardized* features: minimises
        ``mean((yc - Zb)**2) + λ·|b|²`` where ``Z`` are the centred features
        divided by their standard deviation, so λ is relative to the feature
        correlation matrix (λ = 0.01 adds 1 % to its diagonal).  0 (default)
        is plain least squares, as in the paper.
    label : int or None, keyword-only
        Stored in the result.

    Returns
    -------
    LinearFit

    Raises
    ------
    SingularDesignError
        If ``n < p + 2``, a feature is constant, or (without ridge) the
        centred features are rank deficient (exactly collinear).
    ValueError
        If the shapes disagree or the data are not finite.

    Notes
    -----
    The gains are solved with :func:`numpy.linalg.lstsq` on the centred,
    standardized features (better conditioned), then rescaled; the intercept
    is ``mean(y) - mean(X) @ coef``.
    """
    y = np.asarray(y, dtype=np.float64)
    X = np.asarray(X, dtype=np.float64)
    if y.ndim != 1 or X.ndim != 2 or X.shape[0] != y.shape[0]:
        raise ValueError(
            f"expected y of shape (n,) and X of shape (n, p), got {y.shape} and {X.shape}"
        )
    if not (np.isfinite(y).all() and np.isfinite(X).all()):
        raise ValueError("y and X must be finite: drop NaN pixels before fitting")
    if ridge < 0:
        raise ValueError(f"ridge must be >= 0, got {ridge}")
    n, p = X.shape
    if n < p + 2:
        raise SingularDesignError(
            f"{n} pixels cannot fit {p} gains and an intercept: need at least {p + 2}"
        )
    x_mean, y_mean = X.mean(axis=0), y.mean()
    Xc, yc = X - x_mean, y - y_mean
    std = Xc.std(axis=0)
    constant = (X.max(axis=0) == X.min(axis=0)) | (std == 0)
    if constant.any():
        raise SingularDesignError(
            f"feature(s) {np.flatnonzero(constant).tolist()} (0-based) are constant over the "
            f"{n} pixels, so their gains are undefined"
        )
    Z = Xc / std
    if ridge > 0:
        Z_aug = np.vstack([Z, np.sqrt(n * ridge) * np.eye(p)])
        b = np.linalg.lstsq(Z_aug, np.concatenate([yc, np.zeros(p)]), rcond=None)[0]
    else:
        b, _, rank, _ = np.linalg.lstsq(Z, yc, rcond=None)
        if rank < p:
            raise SingularDesignError(
                f"the {p} features are collinear (rank {rank} after centring); drop or "
                "combine features (e.g. use principal components) or set ridge > 0"
            )
    coef = b / std
    resid = yc - Xc @ coef
    ss_tot = float(yc @ yc)
    r2 = 1.0 - float(resid @ resid) / ss_tot if ss_tot > 0 else 0.0
    return LinearFit(coef=coef, intercept=float(y_mean - x_mean @ coef), r2=r2, n=n,
                     label=label)


class FeatureRegression:
    """Global or per-unit linear regression of geochemistry on image features (eq. 1).

    Parameters
    ----------
    mode : {'global', 'local'}
        ``'global'``: one fit for the whole image.  ``'local'``: one fit per
        unit of a label image (K-means classes), with the global fit as
        fallback.
    min_pixels : int or None, keyword-only
        Fewest valid pixels a unit needs for its own fit; ``None`` means
        ``max(30, 10 * (p + 1))`` (ten pixels per coefficient, a common rule
        of thumb).  The global fit needs as many.
    sample_size : int or None, keyword-only
        Most pixels fitted per model, drawn seeded and without replacement
        (within each unit in local mode); ``None`` fits all valid pixels.
    random_state : int or None, keyword-only
        Seed of the pixel samples.
    ridge : float, keyword-only
        L2 penalty on the standardized gains, see :func:`fit_linear`.  0
        (default) is plain least squares, as in the paper.

    Attributes
    ----------
    global_fit_ : LinearFit
        Fit on all valid pixels (always computed).
    fits_ : dict of int to LinearFit
        Local mode: one fit per unit label found in ``labels`` (≥ 0), with
        ``fallback=True`` where the global fit is used.  Empty in global mode.
    min_pixels_ : int
        Resolved ``min_pixels``.
    n_features_in_ : int
        Number of features p.
    """

    def __init__(self, mode="global", *, min_pixels=None, sample_size=SAMPLE_SIZE, random_state=0,
                 ridge=0.0):
        self.mode = mode
        self.min_pixels = min_pixels
        self.sample_size = sample_size
        self.random_state = random_state
        self.ridge = ridge

    # -- fitting ------------------------------------------------------------
    def fit(self, y, X, labels=None):
        """Fit eq. 1 on the pixels where ``y`` and all features are finite.

        Parameters
        ----------
        y : array_like, shape (rows, cols)
            Low-frequency geochemistry ``Geo_L``; NaN is nodata.
        X : array_like, shape (p, rows, cols)
            Low-frequency features ``MS_L``; NaN is nodata.
        labels : array_like of int, shape (rows, cols), optional
            Unit of each pixel, ``-1`` for unlabelled.  Required in local
            mode, ignored in global mode.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            On a bad mode, mismatched shapes, missing labels in local mode, or
            fewer valid pixels than ``min_pixels`` for the global fit.
        SingularDesignError
            If the global design is singular (a subclass of ValueError).

        Warns
        -----
        UserWarning
            For each unit that falls back to the global fit, naming it and the
            reason.
        """
        if self.mode not in ("global", "local"):
            raise ValueError(f"mode must be 'global' or 'local', got {self.mode!r}")
        y, X, labels = self._check_inputs(y, X, labels, require_labels=self.mode == "local")
        p = X.shape[0]
        min_pixels = max(30, 10 * (p + 1)) if self.min_pixels is None else int(self.min_pixels)
        rng = np.random.default_rng(self.random_state)
        valid = np.isfinite(y) & valid_mask(X)

        n_valid = int(valid.sum())
        if n_valid < max(min_pixels, p + 2):
            raise ValueError(
                f"only {n_valid} pixels have finite geochemistry and all {p} features; the "
                f"global fit needs at least {max(min_pixels, p + 2)} (min_pixels={min_pixels}). "
                "Check that the layers overlap and their nodata, or lower min_pixels"
            )
        try:
            self.global_fit_ = self._fit_masked(y, X, valid, rng, label=None)
        except SingularDesignError as exc:
            raise SingularDesignError(f"global fit: {exc}") from exc
        self.fits_ = {}
        if self.mode == "local":
            for label in np.unique(labels[labels >= 0]).tolist():
                self.fits_[label] = self._fit_unit(y, X, valid & (labels == label), rng,
                                                   label, min_pixels)
        self.min_pixels_ = min_pixels
        self.n_features_in_ = p
        logger.info(
            "regression (%s): global r2=%.4f on %d pixels; %d unit fits, %d fallbacks",
            self.mode, self.global_fit_.r2, self.global_fit_.n, len(self.fits_),
            sum(f.fallback for f in self.fits_.values()),
        )
        return self

    def _fit_masked(self, y, X, mask, rng, label):
        rows, cols = sample_indices(mask, self.sample_size, rng)
        return fit_linear(y[rows, cols], X[:, rows, cols].T, ridge=self.ridge, label=label)

    def _fit_unit(self, y, X, mask, rng, label, min_pixels):
        n = int(mask.sum())
        if n < min_pixels:
            reason = f"only {n} valid pixels (min_pixels={min_pixels})"
        else:
            try:
                return self._fit_masked(y, X, mask, rng, label)
            except SingularDesignError as exc:
                reason = f"singular design: {exc}"
        warnings.warn(f"unit {label}: {reason}; using the global fit instead",
                      UserWarning, stacklevel=3)
        return replace(self.global_fit_, label=label, fallback=True)

    # -- applying -----------------------------------------------------------
    def coefficient_maps(self, labels=None, shape=None, *, blend_sigma=0.0):
        """Per-pixel gains and intercept from the unit fits.

        Parameters
        ----------
        labels : array_like of int, shape (rows, cols), optional
            Unit of each pixel (``-1`` unlabelled).  Required in local mode;
            in global mode give either ``labels`` or ``shape``.
        shape : tuple of int, optional
            ``(rows, cols)`` when ``labels`` is not given (global mode).
        blend_sigma : float, keyword-only
            Standard deviation, in pixels, of a Gaussian that smooths the
            coefficient maps to soften seams at unit borders (``docs/method.md``
            step 6).  0 (default) keeps hard borders.  Only the
            labelled pixels are averaged (normalised convolution: the filtered
            coefficients divided by the filtered labelled mask); unlabelled
            pixels keep the global fit.  When applying by windows, give the
            window a halo of about ``4 * blend_sigma`` pixels.

        Returns
        -------
        gains : numpy.ndarray of float64, shape (p, rows, cols)
        intercept : numpy.ndarray of float64, shape (rows, cols)
            Unlabelled pixels and labels without a fit get the global fit.
        """
        self._check_fitted()
        if blend_sigma < 0:
            raise ValueError(f"blend_sigma must be >= 0 pixels, got {blend_sigma}")
        if labels is None:
            if self.mode == "local":
                raise ValueError("local mode: labels (rows, cols) are required")
            if shape is None:
                raise ValueError("give labels or shape=(rows, cols)")
            labels = np.full(tuple(shape), -1, dtype=np.int32)
        labels = self._check_labels(labels, None if shape is None else tuple(shape))
        table, index = self._lookup(labels)
        coeffs = table[:, index]  # (p + 1, rows, cols): intercept then gains
        if blend_sigma > 0 and self.fits_:
            labelled = (labels >= 0).astype(np.float64)
            weight = gaussian_filter(labelled, blend_sigma, mode="nearest")
            for plane in coeffs:
                smoothed = gaussian_filter(plane * labelled, blend_sigma, mode="nearest")
                inside = labelled > 0
                plane[inside] = smoothed[inside] / weight[inside]
        return coeffs[1:], coeffs[0]

    def predict(self, X, labels=None, *, blend_sigma=0.0):
        """Apply eq. 1: ``a0 + Σ ai·X_i`` with each pixel's unit fit.

        Parameters
        ----------
        X : array_like, shape (p, rows, cols)
            Features, same order as in ``fit``; NaN is nodata.
        labels : array_like of int, shape (rows, cols), optional
            Unit of each pixel; required in local mode (``-1`` and labels
            without a fit use the global fit), ignored in global mode.
        blend_sigma : float, keyword-only
            Smooth the coefficients across unit borders, see
            :meth:`coefficient_maps`.  0 (default) applies each unit's fit
            as is, block by block; > 0 builds full-size coefficient maps.

        Returns
        -------
        numpy.ndarray, shape (rows, cols)
            NaN where any feature is not finite.  Float32 input gives float32
            output (computed in float64), otherwise float64.
        """
        self._check_fitted()
        if blend_sigma < 0:
            raise ValueError(f"blend_sigma must be >= 0 pixels, got {blend_sigma}")
        X = as_stack(X, "X", dtype=None)
        if X.shape[0] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[0]} features but the regression was fitted on "
                f"{self.n_features_in_}; pass the same features in the same order"
            )
        if self.mode == "global":
            labels = np.full(X.shape[1:], -1, dtype=np.int32)
        elif labels is None:
            raise ValueError("local mode: labels (rows, cols) are required to predict")
        labels = self._check_labels(labels, X.shape[1:])
        if blend_sigma > 0:
            gains, intercept = self.coefficient_maps(labels, blend_sigma=blend_sigma)
        else:
            table, index = self._lookup(labels)
        out = np.empty(X.shape[1:], dtype=X.dtype)
        for row0, nrows in row_blocks(X.shape[1], block_rows_for(X.shape[2], X.shape[0])):
            block = slice(row0, row0 + nrows)
            if blend_sigma > 0:
                a0, gain = intercept[block], gains[:, block]
            else:
                coeffs = table[:, index[block]]
                a0, gain = coeffs[0], coeffs[1:]
            x = X[:, block].astype(np.float64)
            value = a0 + np.einsum("pij,pij->ij", gain, x)
            value[~np.isfinite(x).all(axis=0)] = np.nan
            out[block] = value
        return out

    # -- reporting ----------------------------------------------------------
    def coefficient_table(self, feature_names=None):
        """The fits as table rows for reports.

        Parameters
        ----------
        feature_names : sequence of str, optional
            One name per feature; default ``"feature_1"``, …

        Returns
        -------
        list of dict
            Global fit first (``"unit": "global"``), then one row per unit:
            ``unit, n, r2, intercept, gain_<name>…, fallback``.
        """
        self._check_fitted()
        if feature_names is None:
            feature_names = [f"feature_{i + 1}" for i in range(self.n_features_in_)]
        feature_names = list(feature_names)
        if len(feature_names) != self.n_features_in_:
            raise ValueError(
                f"got {len(feature_names)} feature names for {self.n_features_in_} features"
            )
        rows = []
        for fit in [self.global_fit_, *self.fits_.values()]:
            row = {"unit": "global" if fit.label is None else fit.label, "n": fit.n,
                   "r2": fit.r2, "intercept": fit.intercept}
            row.update({f"gain_{name}": float(a) for name, a in zip(feature_names, fit.coef)})
            row["fallback"] = fit.fallback
            rows.append(row)
        return rows

    # -- helpers ------------------------------------------------------------
    def _lookup(self, labels):
        """Coefficient table ``(p + 1, n_entries)`` and each pixel's column index.

        Row 0 is the intercept, column 0 the global fit.
        """
        fits = [self.global_fit_, *self.fits_.values()]
        table = np.array([[f.intercept, *f.coef] for f in fits]).T
        index = np.zeros(labels.shape, dtype=np.intp)
        for column, label in enumerate(self.fits_, start=1):
            index[labels == label] = column
        return table, index

    def _check_fitted(self):
        if not hasattr(self, "global_fit_"):
            raise ValueError("this FeatureRegression is not fitted yet: call fit(y, X) first")

    @staticmethod
    def _check_labels(labels, shape):
        labels = np.asarray(labels)
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                f"labels must be integers (-1 = unlabelled), got dtype {labels.dtype}; "
                "convert NaN to -1 and cast to int"
            )
        if labels.ndim != 2 or (shape is not None and labels.shape != tuple(shape)):
            raise ValueError(
                f"labels shape {labels.shape} does not match the (rows, cols) grid {shape}"
            )
        return labels

    @classmethod
    def _check_inputs(cls, y, X, labels, *, require_labels):
        y = np.asarray(y, dtype=np.float64)
        if y.ndim != 2:
            raise ValueError(f"y: expected a (rows, cols) image, got ndim={y.ndim}")
        X = as_stack(X, "X", dtype=None)
        if X.shape[1:] != y.shape:
            raise ValueError(
                f"X (p, rows, cols) = {X.shape} does not match y (rows, cols) = {y.shape}; "
                "put all layers on the same grid"
            )
        if require_labels:
            if labels is None:
                raise ValueError("local mode: labels (rows, cols) are required")
            labels = cls._check_labels(labels, y.shape)
        return y, X, labels
