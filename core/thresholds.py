"""Geochemical anomaly thresholds of a concentration raster (or of sample values).

* The **concentration-area (C-A) fractal method** (Cheng, Agterberg &
  Ballantyne 1994): the area ``A(rho)`` where the concentration is at least
  ``rho`` follows power laws ``A ~ rho ** -alpha`` with different exponents
  for the background and for the anomalies; on a log-log plot the curve is
  piecewise linear and the breakpoints are the thresholds.  Here the curve is
  sampled at ``n_levels`` concentrations evenly spaced in log between the
  lowest and highest value, and a *continuous* piecewise-linear function of
  ``log10 rho`` is fitted to ``log10 A`` by least squares with an exhaustive
  search of the breakpoints (segmented regression).  The number of segments
  is given, or chosen by the Bayesian information criterion (each extra
  segment costs a slope and a breakpoint: two parameters).
* The classic statistical thresholds compared by Reimann, Filzmoser &
  Garrett (2005): median + 2 MAD and mean + 2 standard deviations, both of
  the ``log10`` values (geochemical data are right-skewed; the threshold is
  back-transformed), and upper percentiles.

Values that are not finite, or not positive (a logarithm is needed), are left
out and counted.

References
----------
- Cheng, Q., Agterberg, F. P., Ballantyne, S. B. (1994). The separation of
  geochemical anomalies from background by fractal methods. *J. Geochem.
  Explor.* 51(2), 109-130.
- Reimann, C., Filzmoser, P., Garrett, R. G. (2005). Background and threshold:
  critical comparison of methods of determination. *Sci. Total Environ.*
  346, 1-16.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "CAFit",
    "ThresholdResult",
    "anomaly_thresholds",
    "classify",
    "concentration_area",
    "fit_concentration_area",
]

#: Default number of concentration levels of the C-A curve.
DEFAULT_LEVELS = 60
#: Fewest curve points per segment of the piecewise fit.
MIN_POINTS_PER_SEGMENT = 5
#: Most segments tried when the number is chosen by the information criterion.
MAX_SEGMENTS = 4
#: Fewest cells above a level for it to enter the fit (the sparse tail is a staircase).
MIN_CELLS = 25
#: Smallest relative change of slope between adjacent segments for a break to count.
MIN_SLOPE_CHANGE = 0.3
#: Consistency factor of the MAD for a normal distribution.
MAD_SCALE = 1.4826


@dataclass
class CAFit:
    """Piecewise-linear fit of the log-log concentration-area curve.

    Attributes
    ----------
    log_concentration, log_area : ndarray
        The curve: ``log10`` of the levels and of the area at or above them.
    breakpoints : ndarray
        ``log10`` concentrations of the breaks, increasing.
    slopes : ndarray
        Slope of each segment (``-alpha``, the fractal exponents).
    n_segments : int
    rss : float
        Residual sum of squares.
    bic : dict
        ``n_segments -> BIC`` of every number of segments tried.
    """

    log_concentration: np.ndarray
    log_area: np.ndarray
    breakpoints: np.ndarray
    slopes: np.ndarray
    n_segments: int
    rss: float
    bic: dict = field(default_factory=dict)
    coefficients: np.ndarray = None

    @property
    def thresholds(self):
        """Breakpoints in concentration units."""
        return 10.0 ** self.breakpoints

    def predict(self, log_concentration):
        """The fitted piecewise line at ``log_concentration``."""
        return _design(np.asarray(log_concentration, dtype=float), self.breakpoints) @ \
            self.coefficients


@dataclass
class ThresholdResult:
    """Anomaly thresholds of one variable.

    Attributes
    ----------
    ca : CAFit
    classic : dict
        ``name -> threshold`` (concentration units) of the classic methods.
    n_values : int
        Values used.
    n_left_out : int
        Values left out (not finite or not positive).
    """

    ca: CAFit
    classic: dict
    n_values: int
    n_left_out: int

    def table(self):
        """Rows ``{"method", "threshold", "share above (%)"}`` for a report or a table layer."""
        return self._rows

    _rows: list = field(default_factory=list, repr=False)


def concentration_area(values, *, cell_area=1.0, n_levels=DEFAULT_LEVELS, min_cells=1):
    """The concentration-area curve: area at or above each of ``n_levels`` concentrations.

    Parameters
    ----------
    values : array_like
        Positive, finite concentrations (one per cell).
    cell_area : float
        Area of a cell (map units squared); only shifts ``log10 A``.
    n_levels : int
        Levels evenly spaced in ``log10`` from the lowest to the highest value.
    min_cells : int
        Levels with fewer cells at or above them are dropped.

    Returns
    -------
    log_concentration, log_area : ndarray, shape (m,)
        ``m <= n_levels`` (levels with no cell above them are dropped).
    """
    v = np.sort(np.asarray(values, dtype=float).ravel())
    if v.size == 0 or not (v > 0).all() or not np.isfinite(v).all():
        raise ValueError("concentration_area needs positive finite values")
    levels = np.linspace(math.log10(v[0]), math.log10(v[-1]), int(n_levels))
    above = v.size - np.searchsorted(v, 10.0 ** levels * (1 - 1e-12), side="left")
    keep = above >= max(1, int(min_cells))
    return levels[keep], np.log10(above[keep] * float(cell_area))


def _design(x, breakpoints):
    """Columns ``1, x, (x - t_k)_+``: a continuous piecewise-linear basis."""
    cols = [np.ones_like(x), x] + [np.maximum(x - t, 0.0) for t in breakpoints]
    return np.column_stack(cols)


def _best_breaks(x, y, n_breaks):
    """Breakpoints (among the curve's points) minimising the residual sum of squares."""
    if n_breaks == 0:
        a = _design(x, [])
        coef, *_ = np.linalg.lstsq(a, y, rcond=None)
        return np.array([]), coef, float(np.sum((a @ coef - y) ** 2))
    m = MIN_POINTS_PER_SEGMENT
    candidates = range(m - 1, x.size - m)
    best = None
    for combo in itertools.combinations(candidates, n_breaks):
        if any(b - a < m for a, b in zip(combo, combo[1:])):
            continue
        t = x[list(combo)]
        a = _design(x, t)
        coef, *_ = np.linalg.lstsq(a, y, rcond=None)
        rss = float(np.sum((a @ coef - y) ** 2))
        if best is None or rss < best[2]:
            best = (t, coef, rss)
    if best is None:
        raise ValueError(
            f"the concentration-area curve has {x.size} points: too few for {n_breaks + 1} "
            f"segments of at least {MIN_POINTS_PER_SEGMENT} points"
        )
    return best


def fit_concentration_area(log_concentration, log_area, *, n_segments=None):
    """Piecewise-linear least-squares fit of the C-A curve.

    Parameters
    ----------
    log_concentration, log_area : array_like
        The curve (:func:`concentration_area`).
    n_segments : int, optional
        Number of straight segments (>= 1).  ``None``: 1 to
        :data:`MAX_SEGMENTS` tried, the lowest BIC kept
        (``m ln(RSS/m) + k ln m`` with ``k = 2 n_segments`` parameters)
        among the fits whose adjacent slopes differ by at least
        :data:`MIN_SLOPE_CHANGE` (relative): the points of a cumulative curve
        are not independent, so the BIC alone would cut any curved stretch
        (a lognormal, a truncated tail) into more and more segments.

    Returns
    -------
    CAFit
    """
    x = np.asarray(log_concentration, dtype=float)
    y = np.asarray(log_area, dtype=float)
    if n_segments is not None:
        if int(n_segments) != n_segments or n_segments < 1:
            raise ValueError(f"the number of segments must be an integer >= 1, got {n_segments!r}")
        tried = [int(n_segments)]
    else:
        most = max(1, min(MAX_SEGMENTS, x.size // MIN_POINTS_PER_SEGMENT))
        tried = list(range(1, most + 1))
    fits, bic = {}, {}
    for s in tried:
        try:
            fits[s] = _best_breaks(x, y, s - 1)
        except ValueError:
            if n_segments is not None:
                raise
            continue
        rss = max(fits[s][2], 1e-12 * x.size)
        bic[s] = x.size * math.log(rss / x.size) + 2 * s * math.log(x.size)
    distinct = [s for s in bic if s == 1 or n_segments is not None
                or _slopes_differ(np.cumsum(fits[s][1][1:]))]
    chosen = min(distinct, key=bic.get)
    t, coef, rss = fits[chosen]
    slopes = np.cumsum(coef[1:])
    return CAFit(x, y, np.asarray(t), slopes, chosen, rss, bic, coef)


def _slopes_differ(slopes):
    """Whether each pair of adjacent slopes differs by :data:`MIN_SLOPE_CHANGE` (relative)."""
    a, b = np.abs(slopes[:-1]), np.abs(slopes[1:])
    change = np.abs(slopes[1:] - slopes[:-1])
    return bool(np.all(change >= MIN_SLOPE_CHANGE * np.maximum(np.maximum(a, b), 1e-12)))


def anomaly_thresholds(values, *, cell_area=1.0, n_levels=DEFAULT_LEVELS, n_segments=None,
                       percentiles=(95.0, 98.0), min_cells=MIN_CELLS):
    """C-A fractal and classic anomaly thresholds of a concentration raster or sample set.

    Parameters
    ----------
    values : array_like
        Concentrations (any shape).  Non-finite and non-positive values are
        left out and counted (``n_left_out``).
    cell_area, n_levels, n_segments
        As for :func:`concentration_area` and :func:`fit_concentration_area`.
    min_cells : int
        Levels above which fewer cells lie are left out of the C-A fit: the
        last few cells make a staircase, not a power law (default
        :data:`MIN_CELLS`, or 1 % of the values when fewer than 2500).
    percentiles : sequence of float
        Upper percentiles reported as thresholds.

    Returns
    -------
    ThresholdResult
    """
    v = np.asarray(values, dtype=float).ravel()
    ok = np.isfinite(v) & (v > 0)
    used = v[ok]
    if used.size < 2 * MIN_POINTS_PER_SEGMENT or np.ptp(used) == 0:
        raise ValueError(
            f"anomaly thresholds need varying positive values: got {used.size} usable values "
            f"({int((~ok).sum())} left out as NaN, nodata or <= 0)"
            + (", all equal" if used.size and np.ptp(used) == 0 else "")
        )
    min_cells = min(int(min_cells), max(1, used.size // 100))
    x, y = concentration_area(used, cell_area=cell_area, n_levels=n_levels, min_cells=min_cells)
    ca = fit_concentration_area(x, y, n_segments=n_segments)
    logs = np.log10(used)
    median = float(np.median(logs))
    mad = MAD_SCALE * float(np.median(np.abs(logs - median)))
    classic = {
        "median + 2 MAD (log10)": 10.0 ** (median + 2.0 * mad),
        "mean + 2 SD (log10)": 10.0 ** (float(logs.mean()) + 2.0 * float(logs.std(ddof=1))),
    }
    for p in percentiles:
        if not 0 < p < 100:
            raise ValueError(f"percentiles must lie between 0 and 100, got {p}")
        classic[f"percentile {p:g}"] = float(np.percentile(used, p))
    rows = [{"method": f"C-A fractal, break {i + 1} of {ca.n_segments - 1}",
             "threshold": float(t), "share above (%)": 100.0 * float(np.mean(used >= t))}
            for i, t in enumerate(ca.thresholds)]
    rows += [{"method": name, "threshold": float(t),
              "share above (%)": 100.0 * float(np.mean(used >= t))}
             for name, t in classic.items()]
    return ThresholdResult(ca, classic, int(used.size), int((~ok).sum()), rows)


def classify(values, thresholds, *, nodata=255):
    """Class of each value: 0 background (below the first threshold), 1, 2, ... above each.

    Non-finite values get ``nodata``.  Returns ``uint8``.
    """
    t = np.sort(np.asarray(thresholds, dtype=float).ravel())
    if t.size > 254:
        raise ValueError("at most 254 thresholds")
    v = np.asarray(values, dtype=float)
    out = np.searchsorted(t, v, side="right").astype(np.uint8)
    out[~np.isfinite(v)] = nodata
    return out
