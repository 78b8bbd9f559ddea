"""Prediction uncertainty: back-transform of log-space variances, and interval coverage.

A fused or kriged value comes with a prediction variance in the space the
fit was made in (data units, or ``log10`` units when log-transformed).  For
log fits the prediction distribution is taken as lognormal: with ``m`` the
``log10`` estimate and ``v`` its variance, the 95 % interval is
``10 ** (m ± 1.96 √v)`` -- exact under the lognormal assumption, so it is the
interval the coverage is measured with -- and the standard deviation in data
units is that of the lognormal,
``10 ** m · exp(s² / 2) · √(exp(s²) − 1)`` with ``s² = v · ln(10)²``.

References
----------
- Aitchison, J., Brown, J. A. C. (1957). *The Lognormal Distribution*.
  Cambridge University Press (moments of the lognormal).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["Z95", "coverage", "interval", "log_variance_from_sd", "lognormal_sd"]

#: Two-sided 95 % quantile of the standard normal.
Z95 = 1.959963984540054
_LN10 = math.log(10.0)


def lognormal_sd(log_estimate, log_variance):
    """Standard deviation (data units) of ``10 ** N(log_estimate, log_variance)``."""
    m = np.asarray(log_estimate, dtype=float)
    s2 = np.maximum(np.asarray(log_variance, dtype=float), 0.0) * _LN10**2
    with np.errstate(over="ignore", invalid="ignore"):
        return 10.0**m * np.exp(s2 / 2.0) * np.sqrt(np.expm1(s2))


def log_variance_from_sd(median, sd):
    """The ``log10`` variance ``v`` whose lognormal SD (:func:`lognormal_sd`) about ``median`` is ``sd``.

    Inverts ``sd / median = √(u² − u)`` with ``u = exp(v · ln(10)²)``.
    """
    ratio = np.asarray(sd, dtype=float) / np.asarray(median, dtype=float)
    u = (1.0 + np.sqrt(1.0 + 4.0 * ratio**2)) / 2.0
    return np.log(u) / _LN10**2


def interval(estimate, variance, *, log=False, z=Z95):
    """Lower and upper ends of the prediction interval (data units).

    ``estimate`` and ``variance`` are in the fitted space (``log10`` when ``log``).
    """
    estimate = np.asarray(estimate, dtype=float)
    half = z * np.sqrt(np.maximum(np.asarray(variance, dtype=float), 0.0))
    if log:
        return 10.0 ** (estimate - half), 10.0 ** (estimate + half)
    return estimate - half, estimate + half


def coverage(values, estimate, variance, *, log=False, z=Z95):
    """Share of ``values`` inside their prediction interval (NaN-free pairs only).

    Returns ``(share, n)``: the calibration of the uncertainty (0.95 expected
    for the 95 % interval).
    """
    values = np.asarray(values, dtype=float)
    low, high = interval(estimate, variance, log=log, z=z)
    ok = np.isfinite(values) & np.isfinite(low) & np.isfinite(high)
    if not ok.any():
        return float("nan"), 0
    inside = (values[ok] >= low[ok]) & (values[ok] <= high[ok])
    return float(inside.mean()), int(ok.sum())
