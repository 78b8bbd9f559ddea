"""Ordinary kriging of point samples onto a coarse grid (``docs/method.md`` step 1).

The geochemical samples (``x``, ``y`` in metres of a projected CRS, values
e.g. in ppm) are interpolated by ordinary kriging with `PyKrige`_ on a grid
about a quarter of the sample spacing -- never directly on the 10 m image
grid -- and the kriging variance is kept.

* :class:`OrdinaryKrigingModel` is a scikit-learn style estimator: ``fit``
  validates the samples, fits the variogram (PyKrige's automatic least-squares
  fit, or the user's parameters; ``variogram='auto'`` keeps the model with the
  lowest leave-one-out RMSE), and computes leave-one-out statistics;
  ``predict`` / ``predict_grid`` krige with a moving window of the
  ``n_closest_points`` nearest samples, in chunks of points, so memory never
  grows as ``n_samples x n_cells``.
* :func:`krige` is the one-call convenience returning a :class:`KrigingResult`.
* :func:`leave_one_out` is a batched numpy implementation of leave-one-out
  ordinary kriging (each sample estimated from its nearest *other* samples).

Log transform
-------------
Concentrations are right-skewed, so ``log_transform=True`` kriges ``log10``
of the values.  The estimate is back-transformed to data units, by default
with the lognormal mean ``10 ** (est + ln(10) * var / 2)`` (the ``ln(10)``
factor appears because the logarithm is base 10), or with the median
``10 ** est`` (``back_transform='median'``).  The ordinary-kriging Lagrange
multiplier correction of lognormal kriging (Journel 1980) is ignored: this is
the simple-kriging form of the back-transform, a known approximation.  The
kriging *variance* is always reported in the kriged space (``log10`` units
squared when ``log_transform``).

References
----------
.. _PyKrige: https://github.com/GeoStat-Framework/PyKrige

- Cressie, N. (1993). *Statistics for Spatial Data*, rev. ed. Wiley, §3.2.
- Goovaerts, P. (1997). *Geostatistics for Natural Resources Evaluation*.
  Oxford University Press, ch. 5 (ordinary kriging) and §6.2 (cross-validation).
- Journel, A. G. (1980). The lognormal approach to predicting local
  distributions of selective mining unit grades. *Math. Geol.* 12(4), 285-303.
- Kitanidis, P. K. (1997). *Introduction to Geostatistics*. Cambridge
  University Press (the variogram models used by PyKrige).
"""

from __future__ import annotations

import logging
import math
import threading
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree

from .blocks import single_threaded_blas
from .grid import Grid
from .progress import step as _step
from .samples import median_nn_spacing, merge_near_sites
from .vocabulary import MIN_SAMPLES, VARIOGRAM_MODELS

__all__ = [
    "MIN_SAMPLES",
    "Anisotropy",
    "ExperimentalVariogram",
    "default_max_lag",
    "directional_variograms",
    "experimental_variogram",
    "fit_anisotropy",
    "fit_variogram",
    "semivariance",
    "VARIOGRAM_MODELS",
    "KrigingResult",
    "OrdinaryKrigingModel",
    "default_cell_size",
    "krige",
    "krige_at",
    "leave_one_out",
    "median_nn_spacing",
]

logger = logging.getLogger(__name__)



_PARAMETER_KEYS = {
    "spherical": ("sill", "range", "nugget"),
    "exponential": ("sill", "range", "nugget"),
    "gaussian": ("sill", "range", "nugget"),
    "linear": ("slope", "nugget"),
}
_BACK_TRANSFORMS = ("mean", "median")

#: Points kriged per call in the moving-window path.
_CHUNK_POINTS = 50_000
#: Upper bound on ``points x samples`` distances held at once in the full-system path.
_MAX_FULL_ELEMENTS = 2_000_000
#: Samples per batch of stacked leave-one-out systems.
_LOO_BATCH = 2_000
#: PyKrige's cut-off for "zero distance" (``OrdinaryKriging.eps``).
_ZERO_DISTANCE = 1e-10
_LN10 = math.log(10.0)


# ---------------------------------------------------------------------------
# sample spacing
# ---------------------------------------------------------------------------
def default_cell_size(x, y) -> float:
    """Kriging cell size: a quarter of the median nearest-neighbour spacing.

    ``docs/method.md`` step 1 krigs on a grid coarse enough to be cheap (about a
    quarter of the sample spacing): finer cells add no information, since
    kriging is smooth between samples.

    Parameters
    ----------
    x, y : array_like, shape (n,)
        Sample coordinates (map units, metres).

    Returns
    -------
    float
        ``median_nn_spacing(x, y) / 4`` (map units).
    """
    size = median_nn_spacing(x, y) / 4.0
    if not size > 0:
        raise ValueError(
            "the median nearest-neighbour spacing is 0 (most samples share coordinates): "
            "merge duplicate samples or give cell_size explicitly"
        )
    return size


# ---------------------------------------------------------------------------
# experimental variogram, its fit and geometric anisotropy
# ---------------------------------------------------------------------------
#: Default number of lag bins up to the cut-off (gstat: width = cutoff / 15).
DEFAULT_NLAGS = 15
#: Samples used for the experimental variogram at most (a fixed random subset beyond).
_MAX_VARIOGRAM_SAMPLES = 3000
#: Directions of the directional variograms (azimuth, degrees clockwise from north).
DIRECTIONS = (0.0, 45.0, 90.0, 135.0)
#: Half-width of each direction's angular tolerance (degrees).
DIRECTION_TOLERANCE = 22.5
#: Smallest ratio worth an anisotropic model; below it the field is called isotropic.
MIN_ANISOTROPY_RATIO = 1.2
#: Relative leave-one-out RMSE gain an estimated anisotropy must bring to be kept.
MIN_ANISOTROPY_GAIN = 0.01
#: Largest ratio estimated automatically (beyond, the data rarely support it).
MAX_ANISOTROPY_RATIO = 10.0


@dataclass(frozen=True)
class Anisotropy:
    """Geometric anisotropy: an elliptical range.

    Attributes
    ----------
    azimuth : float
        Direction of the major axis (longest range), degrees clockwise from
        north, in [0, 180).
    ratio : float
        Major range / minor range (>= 1).  The variogram ``range`` is the
        major-axis range; the minor range is ``range / ratio``.

    PyKrige takes the same ellipse as ``anisotropy_angle`` (counter-clockwise
    from the x axis, :attr:`pykrige_angle`) and ``anisotropy_scaling`` (the
    ratio).
    """

    azimuth: float
    ratio: float

    def __post_init__(self):
        if not (np.isfinite(self.azimuth) and np.isfinite(self.ratio)):
            raise ValueError(f"anisotropy azimuth and ratio must be finite, got {self}")
        if self.ratio < 1.0:
            raise ValueError(
                f"the anisotropy ratio is major/minor range and must be >= 1, got {self.ratio}: "
                "to describe the other axis, turn the azimuth by 90 degrees"
            )
        object.__setattr__(self, "azimuth", float(self.azimuth) % 180.0)
        object.__setattr__(self, "ratio", float(self.ratio))

    @property
    def pykrige_angle(self):
        """The major axis as PyKrige's ``anisotropy_angle``: degrees counter-clockwise from x."""
        return (90.0 - self.azimuth) % 180.0

    def transform(self, x, y):
        """Coordinates in the isotropic space (PyKrige's rotation then stretch), origin kept."""
        theta = math.radians(self.pykrige_angle)
        c, s = math.cos(theta), math.sin(theta)
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        return c * x + s * y, self.ratio * (-s * x + c * y)

    def range_along(self, azimuth, major_range):
        """Range in the direction ``azimuth`` (degrees from north) of an ellipse with ``major_range``."""
        return major_range / _stretch(np.radians(np.asarray(azimuth, dtype=float) - self.azimuth),
                                      self.ratio)


def _stretch(delta, ratio):
    """Factor by which distances at angle ``delta`` (radians) from the major axis grow."""
    return np.sqrt(np.cos(delta) ** 2 + (ratio * np.sin(delta)) ** 2)


@dataclass
class ExperimentalVariogram:
    """Binned semivariance of sample pairs.

    Attributes
    ----------
    lags : ndarray
        Mean pair distance of each non-empty bin (map units).
    semivariance : ndarray
        Half the mean squared difference of the pairs of each bin.
    pairs : ndarray of int
        Number of pairs in each bin.
    max_lag, lag_width : float
        Cut-off and bin width used.
    azimuth : float or None
        Direction (degrees clockwise from north) for a directional variogram,
        ``None`` for the omnidirectional one.
    pair_azimuth : ndarray or None
        Mean azimuth of the pairs of each bin (directional variograms).
    """

    lags: np.ndarray
    semivariance: np.ndarray
    pairs: np.ndarray
    max_lag: float
    lag_width: float
    azimuth: float = None
    pair_azimuth: np.ndarray = None


def default_max_lag(x, y):
    """The default cut-off of gstat: a third of the diagonal of the samples' bounding box."""
    x, y = _as_coordinates(x, y)
    return float(math.hypot(np.ptp(x), np.ptp(y)) / 3.0)


def _lag_settings(x, y, lag_width, nlags, max_lag):
    """(max_lag, lag_width, nlags) from the user's settings, gstat's defaults for the rest."""
    if max_lag is None:
        if lag_width is not None and nlags is not None:
            max_lag = float(lag_width) * int(nlags)
        else:
            max_lag = default_max_lag(x, y)
    max_lag = float(max_lag)
    if not (np.isfinite(max_lag) and max_lag > 0):
        raise ValueError(f"the maximum lag must be a positive distance (map units), got {max_lag}")
    if lag_width is not None:
        lag_width = float(lag_width)
        if not (np.isfinite(lag_width) and lag_width > 0):
            raise ValueError(f"the lag width must be a positive distance, got {lag_width}")
        nlags = max(1, int(math.ceil(max_lag / lag_width - 1e-9)))
        max_lag = nlags * lag_width
    else:
        nlags = DEFAULT_NLAGS if nlags is None else nlags
        if int(nlags) != nlags or nlags < 1:
            raise ValueError(f"the number of lags must be an integer >= 1, got {nlags!r}")
        nlags = int(nlags)
        lag_width = max_lag / nlags
    return max_lag, lag_width, nlags


def _pairs(x, y, max_lag, seed=0):
    """Index pairs (i, j) of samples closer than ``max_lag`` (a fixed subset of samples if many)."""
    n = x.size
    keep = np.arange(n)
    if n > _MAX_VARIOGRAM_SAMPLES:
        keep = np.sort(np.random.default_rng(seed).choice(n, _MAX_VARIOGRAM_SAMPLES, replace=False))
    xy = np.column_stack([x[keep], y[keep]])
    pairs = cKDTree(xy).query_pairs(max_lag, output_type="ndarray")
    return keep[pairs[:, 0]], keep[pairs[:, 1]]


def experimental_variogram(x, y, values, *, lag_width=None, nlags=None, max_lag=None,
                           azimuth=None, tolerance=DIRECTION_TOLERANCE, anisotropy=None):
    """Experimental (semi)variogram with a cut-off and the number of pairs per lag.

    Parameters
    ----------
    x, y, values : array_like, shape (n,)
        Samples (map units; values in the kriged space).
    lag_width, nlags, max_lag : optional
        Bins: ``nlags`` bins of ``lag_width`` up to ``max_lag``.  Defaults as
        in gstat: cut-off a third of the bounding-box diagonal, 15 bins.
        Given a lag width, the number of lags follows from the cut-off.
    azimuth : float, optional
        Only pairs whose direction is within ``tolerance`` degrees of this
        azimuth (clockwise from north): a directional variogram.
    anisotropy : Anisotropy, optional
        Distances measured in its isotropic space (major-axis units).

    Returns
    -------
    ExperimentalVariogram
        Empty bins are dropped.
    """
    x, y = _as_coordinates(x, y)
    z = np.asarray(values, dtype=float).ravel()
    max_lag, lag_width, nlags = _lag_settings(x, y, lag_width, nlags, max_lag)
    xs, ys = x - x.mean(), y - y.mean()
    if anisotropy is not None:
        xs, ys = anisotropy.transform(xs, ys)
    i, j = _pairs(xs, ys, max_lag)
    dx, dy = xs[j] - xs[i], ys[j] - ys[i]
    h = np.hypot(dx, dy)
    pair_azimuth = np.degrees(np.arctan2(dx, dy)) % 180.0
    keep = (h > 0) & (h <= max_lag)
    if azimuth is not None:
        off = np.abs((pair_azimuth - azimuth + 90.0) % 180.0 - 90.0)
        keep &= off <= tolerance
    h, g, a = h[keep], 0.5 * (z[j] - z[i])[keep] ** 2, pair_azimuth[keep]
    bins = np.minimum((h / lag_width).astype(int), nlags - 1)
    count = np.bincount(bins, minlength=nlags)
    full = count > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        lags = np.bincount(bins, weights=h, minlength=nlags)[full] / count[full]
        gamma = np.bincount(bins, weights=g, minlength=nlags)[full] / count[full]
        mean_azimuth = None
        if azimuth is not None:
            # circular mean of the axial directions (angles doubled)
            rad = np.radians(2.0 * a)
            c = np.bincount(bins, weights=np.cos(rad), minlength=nlags)[full]
            s = np.bincount(bins, weights=np.sin(rad), minlength=nlags)[full]
            mean_azimuth = (np.degrees(np.arctan2(s, c)) / 2.0) % 180.0
    return ExperimentalVariogram(lags, gamma, count[full], max_lag, lag_width,
                                 None if azimuth is None else float(azimuth), mean_azimuth)


def _initial_parameters(model, lags, gamma):
    """Starting values as PyKrige's: partial sill, a quarter of the largest lag, smallest gamma."""
    if model == "linear":
        slope = (gamma[-1] - gamma[0]) / max(lags[-1] - lags[0], 1e-12)
        return [max(slope, 0.0), max(float(gamma.min()), 0.0)]
    return [max(float(gamma.max() - gamma.min()), 1e-12), 0.25 * float(lags.max()),
            max(float(gamma.min()), 0.0)]


def fit_variogram(model, variogram):
    """Weighted least-squares fit of a variogram model to an experimental variogram.

    The weights are gstat's default (``fit.method = 7``): pairs per bin over
    the squared lag, ``N_j / h_j**2``, so short, well-populated lags -- those
    that matter for kriging -- drive the fit, and the cut-off keeps the far,
    sparse lags out.  PyKrige's robust ``soft_l1`` loss is kept.

    Parameters
    ----------
    model : {'spherical', 'exponential', 'gaussian', 'linear'}
    variogram : ExperimentalVariogram

    Returns
    -------
    dict
        Our parameter dict (total ``sill``, ``range``, ``nugget``; or
        ``slope``, ``nugget``).
    """
    from scipy.optimize import least_squares

    lags = np.asarray(variogram.lags, dtype=float)
    gamma = np.asarray(variogram.semivariance, dtype=float)
    if lags.size < 2:
        raise ValueError(
            f"the experimental variogram has {lags.size} non-empty lag(s) below the cut-off "
            f"{variogram.max_lag:g}: use a larger maximum lag or fewer, wider lags"
        )
    weight = np.sqrt(variogram.pairs / np.maximum(lags, 1e-12 * lags.max()) ** 2)
    weight = weight / weight.mean()
    function = load_pykrige().variograms[model]
    x0 = np.array(_initial_parameters(model, lags, gamma))
    if model == "linear":
        lower, upper = [0.0, 0.0], [np.inf, max(float(gamma.max()), 1e-12)]
    else:
        lower = [0.0, 1e-6 * lags.max(), 0.0]
        upper = [10.0 * max(float(gamma.max()), 1e-12), 10.0 * variogram.max_lag,
                 max(float(gamma.max()), 1e-12)]
    x0 = np.clip(x0, lower, np.asarray(upper) * 0.999)

    def residuals(p):
        return (function(p, lags) - gamma) * weight

    solution = least_squares(residuals, x0, bounds=(lower, upper), loss="soft_l1")
    return _from_pykrige(model, solution.x)


def directional_variograms(x, y, values, *, lag_width=None, nlags=None, max_lag=None,
                           directions=DIRECTIONS, tolerance=DIRECTION_TOLERANCE):
    """Experimental variograms along ``directions`` (azimuths, degrees clockwise from north)."""
    return [experimental_variogram(x, y, values, lag_width=lag_width, nlags=nlags,
                                   max_lag=max_lag, azimuth=a, tolerance=tolerance)
            for a in directions]


def fit_anisotropy(model, directional, *, fixed=None):
    """Geometric anisotropy fitted jointly to directional variograms.

    ``fixed`` (a full parameter dict) holds the variogram and fits only the
    azimuth and ratio.

    One model -- nugget, sill, major range, azimuth, ratio -- is fitted by
    weighted least squares (weights as in :func:`fit_variogram`) to all the
    directional variograms at once: each bin is compared with the model at
    its mean pair distance stretched by the ellipse in its mean pair
    direction.  Several starting azimuths avoid local minima.

    Returns
    -------
    parameters : dict
        Variogram parameters (``range`` along the major axis).
    anisotropy : Anisotropy
    cost : float
        Weighted residual sum of squares.
    """
    from scipy.optimize import least_squares

    if model == "linear":
        raise ValueError("geometric anisotropy needs a model with a range (not linear)")
    lags = np.concatenate([v.lags for v in directional])
    gamma = np.concatenate([v.semivariance for v in directional])
    pairs = np.concatenate([v.pairs for v in directional])
    azimuth = np.radians(np.concatenate([v.pair_azimuth for v in directional]))
    if lags.size < 4:
        raise ValueError("too few populated directional lags to estimate an anisotropy")
    max_lag = max(v.max_lag for v in directional)
    weight = np.sqrt(pairs / np.maximum(lags, 1e-12 * lags.max()) ** 2)
    weight = weight / weight.mean()
    function = load_pykrige().variograms[model]
    top = max(float(gamma.max()), 1e-12)
    base = _to_pykrige(model, _check_parameters(model, fixed)) if fixed else None

    def unpack(p):
        if base is not None:
            return base, p[0], p[1]
        return p[:3], p[3], p[4]

    def residuals(p):
        vparams, phi, log_ratio = unpack(p)
        h = lags * _stretch(azimuth - phi, math.exp(log_ratio))
        return (function(vparams, h) - gamma) * weight

    best = None
    for start_azimuth in (0.0, 45.0, 90.0, 135.0):
        for ratio in (1.5, 3.0):
            angle = [math.radians(start_azimuth), math.log(ratio)]
            bounds_angle = ([-10.0, 0.0], [10.0, math.log(MAX_ANISOTROPY_RATIO)])
            if base is None:
                p0 = _initial_parameters(model, lags, gamma)
                p0[1] = min(p0[1], max_lag)
                start = p0 + angle
                lower = [0.0, 1e-6 * max_lag, 0.0] + bounds_angle[0]
                upper = [10.0 * top, 10.0 * max_lag, top] + bounds_angle[1]
                start = list(np.clip(start, lower, np.asarray(upper) * 0.999))
            else:
                start, lower, upper = angle, bounds_angle[0], bounds_angle[1]
            solution = least_squares(residuals, start, bounds=(lower, upper), loss="soft_l1")
            if best is None or solution.cost < best.cost:
                best = solution
    vparams, phi, log_ratio = unpack(best.x)
    parameters = _from_pykrige(model, vparams)
    return parameters, Anisotropy(math.degrees(phi) % 180.0, math.exp(log_ratio)), float(best.cost)


# ---------------------------------------------------------------------------
# result
# ---------------------------------------------------------------------------
@dataclass
class KrigingResult:
    """Kriged grid and the variogram and cross-validation that produced it.

    Attributes
    ----------
    estimate : ndarray, shape (rows, cols), float64
        Kriging estimate at the cell centres, in data units (back-transformed
        when ``log_transform``; see the module notes).
    variance : ndarray, shape (rows, cols), float64
        Ordinary-kriging variance in the *kriged* space: data units squared, or
        ``log10`` units squared when ``log_transform``.
    grid : Grid
        Geometry of ``estimate`` and ``variance``.
    variogram_model : str
        One of :data:`VARIOGRAM_MODELS`.
    variogram_parameters : dict
        ``sill`` (total sill), ``range``, ``nugget`` for spherical, exponential
        and gaussian; ``slope``, ``nugget`` for linear.  Kriged-space units;
        ranges in map units.
    loo : dict
        Leave-one-out statistics (see :meth:`OrdinaryKrigingModel.fit`).
    candidates : dict
        ``model -> leave-one-out RMSE`` of every model tried by
        ``variogram='auto'`` (empty otherwise).
    log_transform : bool
        Whether ``log10`` of the values was kriged.
    """

    estimate: np.ndarray
    variance: np.ndarray
    grid: Grid
    variogram_model: str
    variogram_parameters: dict
    loo: dict
    candidates: dict = field(default_factory=dict)
    log_transform: bool = False
    sample_spacing: float = float("nan")
    experimental_variogram: tuple = None
    #: Omnidirectional :class:`ExperimentalVariogram` (pairs per lag) the model was fitted to.
    experimental: object = None
    #: Directional :class:`ExperimentalVariogram` list (with ``anisotropy='auto'``), else empty.
    directional: list = field(default_factory=list)
    #: :class:`Anisotropy` used, ``None`` when isotropic.
    anisotropy: object = None
    #: Why the anisotropy is used or not (estimate and leave-one-out figures).
    anisotropy_note: str = ""
    #: Estimated anisotropy and its parameters, kept or not (``anisotropy='auto'``), else ``None``.
    anisotropy_estimate: tuple = None

    def variogram_function(self, h, azimuth=None):
        """Semivariance of the fitted model at lag distances ``h`` (kriged space).

        With an anisotropy, ``azimuth`` (degrees from north) gives the
        direction of the lags; ``None`` means along the major axis.
        """
        h = np.asarray(h, dtype=float)
        if self.anisotropy is not None and azimuth is not None:
            h = h * _stretch(math.radians(azimuth - self.anisotropy.azimuth), self.anisotropy.ratio)
        return _model_semivariance(self.variogram_model, self.variogram_parameters, h)


# ---------------------------------------------------------------------------
# estimator
# ---------------------------------------------------------------------------
class OrdinaryKrigingModel:
    """Ordinary kriging of scattered samples, scikit-learn style.

    Parameters
    ----------
    variogram : {'spherical', 'exponential', 'gaussian', 'linear', 'auto'}
        Variogram model.  ``'auto'`` fits all four and keeps the one with the
        lowest leave-one-out RMSE (Goovaerts 1997, §6.2).
    variogram_parameters : dict, optional
        Fixed parameters, in the kriged space: ``sill`` (total sill, nugget
        included), ``range`` (map units, PyKrige's convention -- the practical
        range for exponential and gaussian), ``nugget`` for spherical,
        exponential and gaussian; ``slope`` (per map unit), ``nugget`` for
        linear.  ``None`` (default): PyKrige's automatic least-squares fit to
        the experimental variogram.  Not allowed with ``'auto'``.
    log_transform : bool
        Krige ``log10`` of the values (they must all be positive).
    n_closest_points : int
        Samples used by the moving-window kriging of each point (>= 2).  When
        there are no more samples than this, every point uses all of them.
    nlags : int, optional
        Number of lag bins of the experimental variogram up to ``max_lag``
        (default 15, as gstat).  Ignored when ``lag_width`` is given.
    lag_width : float, optional
        Width of the lag bins (map units); the number of lags follows.
    max_lag : float, optional
        Cut-off: pairs farther apart are left out of the experimental
        variogram and the fit.  Default a third of the diagonal of the
        samples' bounding box (gstat's convention), so far lags with few
        pairs do not drive the fit.  The experimental variogram and its
        weighted least-squares fit (:func:`fit_variogram`) are computed here
        because PyKrige has no cut-off; PyKrige is then given the fitted
        parameters (``variogram_parameters``) unchanged.
    anisotropy : {'none', 'auto'} or Anisotropy or (azimuth, ratio)
        Geometric anisotropy.  ``'auto'`` estimates the azimuth and ratio from
        directional variograms (:func:`fit_anisotropy`) and keeps them only
        when the ratio is at least :data:`MIN_ANISOTROPY_RATIO` and the
        leave-one-out RMSE is at least :data:`MIN_ANISOTROPY_GAIN` lower than
        the isotropic model's.  A given ``(azimuth, ratio)``: azimuth of the
        major axis in degrees clockwise from north, ratio major/minor range
        (>= 1); the ``range`` is then the major-axis range.
    back_transform : {'mean', 'median'}
        How log-space estimates return to data units: lognormal mean
        ``10 ** (est + ln(10) * var / 2)`` or median ``10 ** est``.  Only used
        with ``log_transform``.

    Attributes
    ----------
    variogram_model_ : str
        Model used.
    variogram_parameters_ : dict
        Parameters used (keys as for ``variogram_parameters``).
    loo_ : dict
        Leave-one-out statistics, in the kriged space: ``n``, ``mean_error``,
        ``rmse``, ``mean_standardized_error`` (≈ 0), ``rmse_standardized``
        (≈ 1 when the kriging variance describes the errors well), plus
        ``rmse_data_units`` (back-transformed estimates against the values)
        when ``log_transform``.  Errors are ``estimate - value``.
    candidates_ : dict
        ``model -> leave-one-out RMSE`` for ``variogram='auto'``, else empty.
    x_, y_ : ndarray, shape (n,)
        Sample coordinates after merging duplicates.
    z_ : ndarray, shape (n,)
        Kriged values (``log10`` when ``log_transform``), duplicates averaged.

    Notes
    -----
    Samples sharing exact coordinates are merged into one sample with the
    mean of their (transformed) values -- for log-transformed data the
    geometric mean in data units -- with a warning: the kriging system is
    singular otherwise.  Kriging is exact at sample locations (PyKrige's
    ``exact_values=True``): a query point that coincides with a sample
    returns its value and zero variance, even with a nugget.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.uniform(0, 1000, (2, 50))
    >>> model = OrdinaryKrigingModel(variogram_parameters={
    ...     "sill": 1.0, "range": 500.0, "nugget": 0.0}).fit(x, y, np.sin(x / 200))
    >>> est, var = model.predict(x[:3], y[:3])
    >>> bool(np.allclose(est, np.sin(x[:3] / 200)))
    True
    """

    def __init__(
        self,
        variogram="spherical",
        *,
        variogram_parameters=None,
        log_transform=False,
        n_closest_points=32,
        nlags=None,
        back_transform="mean",
        lag_width=None,
        max_lag=None,
        anisotropy="none",
    ):
        self.variogram = variogram
        self.variogram_parameters = variogram_parameters
        self.log_transform = log_transform
        self.n_closest_points = n_closest_points
        self.nlags = nlags
        self.back_transform = back_transform
        self.lag_width = lag_width
        self.max_lag = max_lag
        self.anisotropy = anisotropy

    # -- fitting ------------------------------------------------------------
    def fit(self, x, y, values, *, cross_validate=True):
        """Validate the samples, fit the variogram and cross-validate it.

        Parameters
        ----------
        x, y : array_like, shape (n,)
            Sample coordinates (map units, metres); finite.
        values : array_like, shape (n,)
            Sample values (e.g. ppm); finite, not all equal, positive when
            ``log_transform``.
        cross_validate : bool
            Compute the leave-one-out statistics (needed by ``variogram='auto'``).
            ``False`` skips them (``loo_`` is then empty), for callers that only
            need the fitted variogram, e.g. inside another cross-validation.

        Returns
        -------
        self
        """
        self._check_settings()
        if not cross_validate and self.variogram == "auto":
            raise ValueError("variogram='auto' chooses by leave-one-out: keep cross_validate=True")
        x, y, values = _validate_samples(x, y, values, log_transform=self.log_transform)
        z = np.log10(values) if self.log_transform else values
        x, y, z = _merge_duplicates(x, y, z)
        if x.size < MIN_SAMPLES:
            raise ValueError(
                f"ordinary kriging needs at least {MIN_SAMPLES} samples at distinct locations, "
                f"got {x.size} after merging duplicate coordinates"
            )
        if np.ptp(z) == 0:
            raise ValueError("all sample values are equal after merging duplicates")
        self.x_, self.y_, self.z_ = x, y, z
        manual = self._manual_anisotropy()
        self.experimental_ = experimental_variogram(
            x, y, z, lag_width=self.lag_width, nlags=self.nlags, max_lag=self.max_lag,
            anisotropy=manual)
        self.directional_ = []
        self.anisotropy_estimate_ = None
        self.anisotropy_note_ = (
            "" if manual is None else
            f"anisotropy given: major axis azimuth {manual.azimuth:g} deg, ratio {manual.ratio:g}")

        models = VARIOGRAM_MODELS if self.variogram == "auto" else (self.variogram,)
        fits = {}
        for model in models:
            try:
                fits[model] = self._fit_one(model, manual, cross_validate=cross_validate)
            except (ValueError, np.linalg.LinAlgError) as exc:
                if self.variogram != "auto":
                    raise
                warnings.warn(
                    f"variogram model {model!r} could not be fitted and is skipped: {exc}",
                    stacklevel=2,
                )
        if not fits:
            raise ValueError(f"no variogram model could be fitted to the samples (tried {models})")
        best = min(fits, key=lambda m: fits[m][2]["rmse"])
        self._kriger, self.variogram_parameters_, self.loo_ = fits[best]
        self.anisotropy_ = manual
        self.candidates_ = {m: fits[m][2]["rmse"] for m in fits} if self.variogram == "auto" else {}
        if self.anisotropy == "auto":
            self._auto_anisotropy(best, cross_validate)
        if not cross_validate:
            self.loo_ = {}
        self.variogram_model_ = best
        logger.info(
            "ordinary kriging: %d samples, %s variogram %s, LOO %s%s",
            x.size,
            best,
            self.variogram_parameters_,
            self.loo_,
            f", candidates {self.candidates_}" if self.candidates_ else "",
        )
        return self

    def _manual_anisotropy(self):
        """The user's :class:`Anisotropy`, or ``None`` for 'none' and 'auto'."""
        a = self.anisotropy
        if isinstance(a, str):
            if a not in ("none", "auto"):
                raise ValueError(
                    f"unknown anisotropy {a!r}: use 'none', 'auto' or (azimuth, ratio)")
            return None
        if isinstance(a, Anisotropy):
            return None if a.ratio == 1.0 else a
        try:
            azimuth, ratio = a
        except (TypeError, ValueError):
            raise ValueError(
                f"anisotropy must be 'none', 'auto' or (azimuth, ratio), got {a!r}") from None
        result = Anisotropy(float(azimuth), float(ratio))
        return None if result.ratio == 1.0 else result

    def _auto_anisotropy(self, model, cross_validate):
        """Estimate an anisotropy for ``model``; keep it only when leave-one-out improves."""
        if model == "linear":
            self.anisotropy_note_ = "anisotropy not estimated: the linear model has no range"
            return
        if not cross_validate:
            raise ValueError("anisotropy='auto' is kept by leave-one-out: keep cross_validate=True")
        self.directional_ = directional_variograms(
            self.x_, self.y_, self.z_, lag_width=self.lag_width, nlags=self.nlags,
            max_lag=self.experimental_.max_lag)
        fixed = None
        if self.variogram_parameters is not None:
            fixed = _check_parameters(model, self.variogram_parameters)
        try:
            parameters, estimate, _ = fit_anisotropy(model, self.directional_, fixed=fixed)
        except (ValueError, np.linalg.LinAlgError) as exc:
            self.anisotropy_note_ = f"anisotropy not estimated: {exc}"
            return
        iso_rmse = self.loo_["rmse"]
        self.anisotropy_estimate_ = (estimate, parameters, float("nan"))
        if estimate.ratio < MIN_ANISOTROPY_RATIO:
            self.anisotropy_note_ = (
                f"isotropic: the directional variograms give a ratio of only {estimate.ratio:.2f} "
                f"(azimuth {estimate.azimuth:.0f} deg; below {MIN_ANISOTROPY_RATIO})")
            return
        kriger, parameters, stats = self._fit_one(model, estimate, parameters=parameters)
        self.anisotropy_estimate_ = (estimate, parameters, stats["rmse"])
        gain = 1.0 - stats["rmse"] / iso_rmse if iso_rmse > 0 else 0.0
        described = (f"azimuth {estimate.azimuth:.0f} deg, ratio {estimate.ratio:.2f}: "
                     f"leave-one-out RMSE {stats['rmse']:.4g} against {iso_rmse:.4g} isotropic")
        if gain >= MIN_ANISOTROPY_GAIN:
            self._kriger, self.variogram_parameters_, self.loo_ = kriger, parameters, stats
            self.anisotropy_ = estimate
            self.anisotropy_note_ = f"anisotropy kept ({gain:.1%} better): {described}"
        else:
            self.anisotropy_note_ = (
                f"isotropic: the estimated anisotropy does not pay for itself "
                f"(gain {gain:.1%} < {MIN_ANISOTROPY_GAIN:.0%}; {described})")

    def _fit_one(self, model, anisotropy=None, *, parameters=None, cross_validate=True):
        """PyKrige object, parameters and LOO statistics of one variogram model."""
        if parameters is None and self.variogram_parameters is not None:
            parameters = _check_parameters(model, self.variogram_parameters)
        elif parameters is None:
            parameters = fit_variogram(model, self.experimental_)
        # PyKrige's dict form has our keys (a *list* would mean a different order); it
        # is given the parameters unchanged and only computes its own (unused) bins.
        options = {}
        if anisotropy is not None:
            options = {"anisotropy_scaling": anisotropy.ratio,
                       "anisotropy_angle": anisotropy.pykrige_angle}
        kriger = load_pykrige().ordinary_kriging(
            self.x_,
            self.y_,
            self.z_,
            variogram_model=model,
            variogram_parameters=dict(parameters),
            nlags=int(self.experimental_.lags.size) or 1,
            **options,
        )
        parameters = _from_pykrige(model, kriger.variogram_model_parameters)
        if not cross_validate:
            return kriger, parameters, {"rmse": float("nan")}
        estimate, variance = leave_one_out(
            self.x_,
            self.y_,
            self.z_,
            variogram_model=model,
            variogram_parameters=parameters,
            n_closest_points=self.n_closest_points,
            anisotropy=anisotropy,
        )
        stats = _loo_statistics(self.z_, estimate, variance)
        if self.log_transform:
            back = self._back(estimate, variance)
            stats["rmse_data_units"] = float(np.sqrt(np.mean((back - 10.0**self.z_) ** 2)))
        logger.debug("variogram %s %s: LOO %s", model, parameters, stats)
        return kriger, parameters, stats

    def _check_settings(self):
        if self.variogram != "auto" and self.variogram not in VARIOGRAM_MODELS:
            raise ValueError(
                f"unknown variogram {self.variogram!r}: use one of "
                f"{', '.join(VARIOGRAM_MODELS)} or 'auto'"
            )
        if self.variogram == "auto" and self.variogram_parameters is not None:
            raise ValueError(
                "variogram_parameters cannot be combined with variogram='auto' (the parameters "
                "belong to one model): name the model, or leave the parameters to the fit"
            )
        if self.back_transform not in _BACK_TRANSFORMS:
            raise ValueError(
                f"unknown back_transform {self.back_transform!r}: use 'mean' or 'median'"
            )
        if int(self.n_closest_points) != self.n_closest_points or self.n_closest_points < 2:
            raise ValueError(
                f"n_closest_points must be an integer >= 2, got {self.n_closest_points!r}"
            )
        if self.nlags is not None and (int(self.nlags) != self.nlags or self.nlags < 1):
            raise ValueError(f"nlags must be an integer >= 1, got {self.nlags!r}")
        self._manual_anisotropy()

    # -- prediction ---------------------------------------------------------
    def predict(self, x, y, *, chunk_size=None):
        """Krige at arbitrary points.

        Parameters
        ----------
        x, y : array_like
            Query coordinates (map units), same shape.  Non-finite coordinates
            give NaN.
        chunk_size : int, optional
            Points kriged per PyKrige call.  ``None``: 50 000 for the moving
            window, fewer for the full system so that at most about
            2 million point-sample distances are held at once.

        Returns
        -------
        estimate : ndarray, same shape as ``x``
            In data units (back-transformed when ``log_transform``).
        variance : ndarray, same shape as ``x``
            Kriging variance in the kriged space (``log10`` units squared when
            ``log_transform``), clipped at 0.
        """
        self._check_fitted()
        xq = np.asarray(x, dtype=float)
        yq = np.asarray(y, dtype=float)
        if xq.shape != yq.shape:
            raise ValueError(f"x and y must have the same shape, got {xq.shape} and {yq.shape}")
        ok = np.isfinite(xq) & np.isfinite(yq)
        estimate = np.full(xq.shape, np.nan)
        variance = np.full(xq.shape, np.nan)
        xs, ys = xq[ok], yq[ok]
        e, v = self._krige_flat(lambda a, b: (xs[a:b], ys[a:b]), xs.size, chunk_size)
        estimate[ok], variance[ok] = e, v
        return estimate, variance

    def krige_grid(self, grid, *, progress=None, cancel=None):
        """Krige onto ``grid`` and return a :class:`KrigingResult` with the fit diagnostics.

        ``progress`` and ``cancel`` are as for :meth:`predict_grid`.
        """
        estimate, variance = self.predict_grid(grid, progress=progress, cancel=cancel)
        return KrigingResult(
            estimate=estimate,
            variance=variance,
            grid=grid,
            variogram_model=self.variogram_model_,
            variogram_parameters=dict(self.variogram_parameters_),
            loo=dict(self.loo_),
            candidates=dict(self.candidates_),
            log_transform=bool(self.log_transform),
            sample_spacing=median_nn_spacing(self.x_, self.y_),
            experimental_variogram=(np.asarray(self.experimental_.lags),
                                    np.asarray(self.experimental_.semivariance)),
            experimental=self.experimental_,
            directional=list(self.directional_),
            anisotropy=self.anisotropy_,
            anisotropy_note=self.anisotropy_note_,
            anisotropy_estimate=self.anisotropy_estimate_,
        )

    def predict_grid(self, grid, *, chunk_size=None, progress=None, cancel=None):
        """Krige at the cell centres of ``grid``.

        Parameters
        ----------
        grid : Grid
            Target grid.
        chunk_size : int, optional
            As for :meth:`predict`.
        progress : callable(fraction, message), optional
            Called before each chunk of points with the fraction done.
        cancel : callable() -> bool, optional
            Polled before each chunk; raises
            :class:`~geochem_fusion.core.progress.Canceled` when it returns True.

        Returns
        -------
        estimate, variance : ndarray, shape ``grid.shape``
            As for :meth:`predict`.
        """
        self._check_fitted()
        if not isinstance(grid, Grid):
            raise ValueError(f"expected a core.grid.Grid, got {type(grid).__name__}")
        xc, yc = grid.x_centers(), grid.y_centers()

        def coordinates(start, stop):
            row, col = np.divmod(np.arange(start, stop), grid.ncols)
            return xc[col], yc[row]

        estimate, variance = self._krige_flat(coordinates, grid.nrows * grid.ncols, chunk_size,
                                              progress=progress, cancel=cancel)
        return estimate.reshape(grid.shape), variance.reshape(grid.shape)

    def _krige_flat(self, coordinates, npoints, chunk_size, *, progress=None, cancel=None):
        """Krige ``npoints`` points given chunk by chunk by ``coordinates(start, stop)``."""
        n = self.x_.size
        if n <= self.n_closest_points:
            backend, window = "vectorized", None
            step = max(1, min(_CHUNK_POINTS, _MAX_FULL_ELEMENTS // (n + 1)))
        else:
            backend, window = load_pykrige().backend, int(self.n_closest_points)
            step = _CHUNK_POINTS
        if chunk_size is not None:
            if int(chunk_size) != chunk_size or chunk_size < 1:
                raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
            step = int(chunk_size)
        estimate = np.empty(npoints)
        variance = np.empty(npoints)
        with single_threaded_blas():
            for start in range(0, npoints, step):
                _step(progress, cancel, start / max(npoints, 1))
                stop = min(start + step, npoints)
                xq, yq = coordinates(start, stop)
                e, v = self._kriger.execute("points", xq, yq, backend=backend,
                                            n_closest_points=window)
                estimate[start:stop] = np.asarray(e, dtype=float).ravel()
                variance[start:stop] = np.asarray(v, dtype=float).ravel()
        np.maximum(variance, 0.0, out=variance)
        return self._back(estimate, variance), variance

    def _back(self, estimate, variance):
        """Back-transform kriged-space estimates to data units."""
        if not self.log_transform:
            return estimate
        if self.back_transform == "median":
            return 10.0**estimate
        return 10.0 ** (estimate + _LN10 * np.maximum(variance, 0.0) / 2.0)

    def _check_fitted(self):
        if not hasattr(self, "_kriger"):
            raise ValueError("this OrdinaryKrigingModel is not fitted yet: call fit(x, y, values)")


# ---------------------------------------------------------------------------
# leave-one-out
# ---------------------------------------------------------------------------
def leave_one_out(x, y, values, *, variogram_model, variogram_parameters, n_closest_points=32,
                  anisotropy=None):
    """Leave-one-out ordinary kriging of every sample from its neighbours.

    Each sample is estimated by ordinary kriging from its ``n_closest_points``
    nearest *other* samples (all others when there are fewer), with the
    variogram held fixed -- the usual cross-validation of a fitted variogram
    (Goovaerts 1997, §6.2).  The systems are built for batches of samples and
    solved together with :func:`numpy.linalg.solve`; this equals, sample by
    sample, a PyKrige moving-window kriging from the other samples.

    Parameters
    ----------
    x, y : array_like, shape (n,)
        Sample coordinates (map units).
    values : array_like, shape (n,)
        Values in the kriged space (e.g. ``log10`` already applied).
    variogram_model : {'spherical', 'exponential', 'gaussian', 'linear'}
    variogram_parameters : dict
        Keys as for :class:`OrdinaryKrigingModel`.
    n_closest_points : int
        Neighbours per system (>= 2).
    anisotropy : Anisotropy, optional
        Distances (and the neighbour search) in its isotropic space, as PyKrige.

    Returns
    -------
    estimate : ndarray, shape (n,)
        Estimate at each sample without that sample.
    variance : ndarray, shape (n,)
        Ordinary-kriging variance of each estimate (may be slightly negative
        from round-off when a neighbour almost coincides).
    """
    if variogram_model not in VARIOGRAM_MODELS:
        raise ValueError(
            f"unknown variogram_model {variogram_model!r}: use one of {', '.join(VARIOGRAM_MODELS)}"
        )
    checked = _check_parameters(variogram_model, variogram_parameters)
    parameters = _to_pykrige(variogram_model, checked)
    gamma = load_pykrige().variograms[variogram_model]
    x, y, values = _validate_samples(x, y, values, log_transform=False, minimum=3)
    n = x.size
    k = min(int(n_closest_points), n - 1)
    if k < 2 or int(n_closest_points) != n_closest_points:
        raise ValueError(f"n_closest_points must be an integer >= 2, got {n_closest_points!r}")

    # Centre the coordinates: distances are unchanged and round-off smaller.
    xy = _isotropic_xy(x - x.mean(), y - y.mean(), anisotropy)
    _, neighbours = cKDTree(xy).query(xy, k=k + 1)
    # Drop each sample from its own neighbour list (it is normally first, but
    # coincident samples may tie with it); drop the farthest if it is absent.
    is_self = neighbours == np.arange(n)[:, None]
    is_self[~is_self.any(axis=1), -1] = True
    is_self &= np.cumsum(is_self, axis=1) == 1
    neighbours = neighbours[~is_self].reshape(n, k)
    with single_threaded_blas():
        return _solve_batched(xy, values, xy, neighbours, gamma, parameters)


def _solve_batched(xy, values, targets, neighbours, gamma, parameters):
    """Ordinary kriging of ``targets`` (m, 2) from the samples ``neighbours`` (m, k) index.

    One (k+1)×(k+1) system per target, solved in batches with numpy.
    """
    n, k = neighbours.shape
    estimate = np.empty(n)
    variance = np.empty(n)
    for start in range(0, n, _LOO_BATCH):
        idx = neighbours[start : start + _LOO_BATCH]
        m = idx.shape[0]
        pts = xy[idx]  # (m, k, 2)
        d_nn = np.linalg.norm(pts[:, :, None, :] - pts[:, None, :, :], axis=-1)
        d_0 = np.linalg.norm(pts - targets[start : start + m, None, :], axis=-1)
        a = np.zeros((m, k + 1, k + 1))
        a[:, :k, :k] = gamma(parameters, d_nn)
        a[:, np.arange(k), np.arange(k)] = 0.0  # gamma(0) = 0: the nugget is a jump
        a[:, :k, k] = 1.0
        a[:, k, :k] = 1.0
        b = np.ones((m, k + 1))
        b[:, :k] = gamma(parameters, d_0)
        b[:, :k][d_0 <= _ZERO_DISTANCE] = 0.0  # PyKrige's exact_values convention
        try:
            sol = np.linalg.solve(a, b[..., None])[..., 0]
        except np.linalg.LinAlgError:
            logger.warning("singular kriging system: using the pseudo-inverse")
            sol = np.einsum("mij,mj->mi", np.linalg.pinv(a), b)
        estimate[start : start + m] = np.einsum("mk,mk->m", sol[:, :k], values[idx])
        variance[start : start + m] = np.einsum("mi,mi->m", sol, b)
    return estimate, variance


def krige_at(x, y, values, xq, yq, *, variogram_model, variogram_parameters,
             n_closest_points=32, anisotropy=None):
    """Ordinary kriging at points ``(xq, yq)`` from samples with a *given* variogram.

    The batched moving-window solver of :func:`leave_one_out`, for held-out
    points (spatial cross-validation): no variogram fit, no leave-one-out.

    Returns
    -------
    estimate, variance : ndarray, shape (m,)
    """
    if variogram_model not in VARIOGRAM_MODELS:
        raise ValueError(
            f"unknown variogram_model {variogram_model!r}: use one of {', '.join(VARIOGRAM_MODELS)}"
        )
    parameters = _to_pykrige(variogram_model, _check_parameters(variogram_model,
                                                                variogram_parameters))
    x, y, values = _validate_samples(x, y, values, log_transform=False, minimum=2)
    xq, yq = _as_coordinates(xq, yq)
    k = min(int(n_closest_points), x.size)
    cx, cy = x.mean(), y.mean()
    xy = _isotropic_xy(x - cx, y - cy, anisotropy)
    targets = _isotropic_xy(xq - cx, yq - cy, anisotropy)
    if targets.shape[0] == 0:
        return np.empty(0), np.empty(0)
    _, neighbours = cKDTree(xy).query(targets, k=k)
    neighbours = np.asarray(neighbours).reshape(targets.shape[0], k)
    with single_threaded_blas():
        return _solve_batched(xy, values, targets, neighbours,
                              load_pykrige().variograms[variogram_model], parameters)


def _isotropic_xy(x, y, anisotropy):
    """(n, 2) coordinates, in the isotropic space of ``anisotropy`` when given."""
    if anisotropy is not None:
        x, y = anisotropy.transform(x, y)
    return np.column_stack([x, y])


def _loo_statistics(values, estimate, variance):
    """Cross-validation summary in the kriged space (errors = estimate - value)."""
    error = estimate - values
    positive = variance > 0
    standardized = error[positive] / np.sqrt(variance[positive])
    if not positive.all():
        logger.warning(
            "%d leave-one-out kriging variances are not positive and are left out of the "
            "standardized statistics",
            int((~positive).sum()),
        )
    nan = float("nan")
    return {
        "n": int(values.size),
        "mean_error": float(error.mean()),
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mean_standardized_error": float(standardized.mean()) if standardized.size else nan,
        "rmse_standardized": (
            float(np.sqrt(np.mean(standardized**2))) if standardized.size else nan
        ),
    }


# ---------------------------------------------------------------------------
# convenience
# ---------------------------------------------------------------------------
def krige(
    x,
    y,
    values,
    *,
    grid=None,
    cell_size=None,
    extent=None,
    variogram="spherical",
    variogram_parameters=None,
    log_transform=False,
    n_closest_points=32,
    progress=None,
    cancel=None,
    **variogram_options,
) -> KrigingResult:
    """Krige point samples onto a grid in one call.

    Parameters
    ----------
    x, y : array_like, shape (n,)
        Sample coordinates (map units, metres).
    values : array_like, shape (n,)
        Sample values (e.g. ppm).
    grid : Grid, optional
        Target grid.  ``None``: built with :meth:`Grid.from_extent` over
        ``extent`` with square cells of ``cell_size``.
    cell_size : float, optional
        Cell size (map units) when ``grid`` is None; default
        :func:`default_cell_size` (a quarter of the median sample spacing).
    extent : tuple of float, optional
        ``(x_min, y_min, x_max, y_max)`` when ``grid`` is None; default the
        bounding box of the samples.
    variogram, variogram_parameters, log_transform, n_closest_points
        As for :class:`OrdinaryKrigingModel` (lognormal-mean back-transform).
    progress : callable(fraction, message), optional
        Told when the variogram fit starts (0) and how far the kriging of the
        grid is (fit = first 40 %).
    cancel : callable() -> bool, optional
        Polled after the fit and before each chunk of grid points; raises
        :class:`~geochem_fusion.core.progress.Canceled` when it returns True.
    **variogram_options
        ``nlags``, ``lag_width``, ``max_lag``, ``anisotropy`` of
        :class:`OrdinaryKrigingModel`.

    Returns
    -------
    KrigingResult
    """
    if grid is not None and (cell_size is not None or extent is not None):
        raise ValueError("give either grid, or cell_size and/or extent, not both")
    _step(progress, cancel, 0.0, "fitting the variogram")
    model = OrdinaryKrigingModel(
        variogram,
        variogram_parameters=variogram_parameters,
        log_transform=log_transform,
        n_closest_points=n_closest_points,
        **variogram_options,
    ).fit(x, y, values)
    if grid is None:
        if cell_size is None:
            cell_size = default_cell_size(model.x_, model.y_)
        if not (np.isfinite(cell_size) and cell_size > 0):
            raise ValueError(f"cell_size must be a positive number of map units, got {cell_size}")
        if extent is None:
            extent = (model.x_.min(), model.y_.min(), model.x_.max(), model.y_.max())
        if len(extent) != 4:
            raise ValueError(f"extent must be (x_min, y_min, x_max, y_max), got {extent!r}")
        grid = Grid.from_extent(*extent, cell_size)
    _step(progress, cancel, 0.4, f"kriging {grid.nrows} x {grid.ncols} cells")

    def grid_progress(fraction, message=None):
        if progress is not None:
            progress(0.4 + 0.6 * fraction, message)

    return model.krige_grid(grid, progress=grid_progress, cancel=cancel)


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def _as_coordinates(x, y):
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length, got {x.size} and {y.size}")
    bad = ~(np.isfinite(x) & np.isfinite(y))
    if bad.any():
        raise ValueError(
            f"{int(bad.sum())} of {x.size} samples have non-finite coordinates: drop them first"
        )
    return x, y


def _validate_samples(x, y, values, *, log_transform, minimum=MIN_SAMPLES):
    """Finite 1-D float copies of the samples, checked for kriging."""
    x, y = _as_coordinates(x, y)
    values = np.asarray(values, dtype=float).ravel()
    if values.size != x.size:
        raise ValueError(f"got {x.size} coordinates but {values.size} values")
    if x.size < minimum:
        raise ValueError(f"ordinary kriging needs at least {minimum} samples, got {x.size}")
    bad = ~np.isfinite(values)
    if bad.any():
        raise ValueError(
            f"{int(bad.sum())} of {values.size} sample values are not finite (NaN or inf): "
            "drop those samples first"
        )
    if log_transform and (values <= 0).any():
        raise ValueError(
            f"log_transform needs positive values, but {int((values <= 0).sum())} of "
            f"{values.size} are <= 0: replace below-detection codes (e.g. by half the "
            "detection limit) or turn off the log transform"
        )
    if np.ptp(values) == 0:
        raise ValueError(
            f"all {values.size} sample values are equal ({values[0]}): there is nothing to krige"
        )
    return x, y, values


def _merge_duplicates(x, y, z):
    """Average samples sharing exact coordinates, then sites very close together.

    Sites closer than a small fraction of the sample spacing are merged
    (:func:`~.samples.merge_near_sites`): no variogram is fitted on pairs at
    almost zero distance as if they were structure.  Warns when any are merged.
    """
    xy, inverse, counts = np.unique(
        np.column_stack([x, y]), axis=0, return_inverse=True, return_counts=True
    )
    if xy.shape[0] != x.size:
        inverse = inverse.ravel()
        warnings.warn(
            f"{int((counts > 1).sum())} locations hold {int(counts[counts > 1].sum())} samples "
            "with identical coordinates: each group is merged into one sample with their mean",
            stacklevel=3,
        )
        x, y, z = xy[:, 0].copy(), xy[:, 1].copy(), np.bincount(inverse, weights=z) / counts
    x, y, (z,), groups, n, tolerance = merge_near_sites(x, y, [z])
    if groups:
        warnings.warn(
            f"{groups} groups of {n} samples closer than {tolerance:.3g} map units are merged "
            "into one sample each (mean position and value)",
            stacklevel=3,
        )
    return x, y, z


def _check_parameters(model, parameters):
    """Validated float copy of a user variogram parameter dict."""
    keys = _PARAMETER_KEYS[model]
    if not isinstance(parameters, dict) or set(parameters) != set(keys):
        got = sorted(parameters) if isinstance(parameters, dict) else type(parameters).__name__
        raise ValueError(
            f"variogram_parameters for the {model} model must be a dict with keys "
            f"{', '.join(keys)}; got {got}"
        )
    p = {key: float(parameters[key]) for key in keys}
    if not all(np.isfinite(v) for v in p.values()):
        raise ValueError(f"variogram_parameters must be finite, got {p}")
    if p["nugget"] < 0:
        raise ValueError(f"the nugget must be >= 0, got {p['nugget']}")
    if model == "linear":
        if p["slope"] < 0:
            raise ValueError(f"the linear variogram slope must be >= 0, got {p['slope']}")
    else:
        if p["range"] <= 0:
            raise ValueError(f"the variogram range must be > 0 (map units), got {p['range']}")
        if p["sill"] < p["nugget"]:
            raise ValueError(
                f"the sill is the total sill and must be >= the nugget, got sill={p['sill']}, "
                f"nugget={p['nugget']}"
            )
    return p


def _to_pykrige(model, p):
    """Our parameter dict -> the list taken by ``pykrige.variogram_models`` functions.

    Those functions take the *partial* sill; PyKrige's constructor, given a
    list, expects the total sill instead, so it is always given the dict.
    """
    if model == "linear":
        return [p["slope"], p["nugget"]]
    return [p["sill"] - p["nugget"], p["range"], p["nugget"]]


def _from_pykrige(model, values):
    """PyKrige's parameter list -> our parameter dict (total sill)."""
    values = [float(v) for v in values]
    if model == "linear":
        return {"slope": values[0], "nugget": values[1]}
    psill, range_, nugget = values
    return {"sill": psill + nugget, "range": range_, "nugget": nugget}


class _PyKrige:
    """PyKrige, imported on first use (it is optional: see :func:`load_pykrige`)."""

    def __init__(self):
        from pykrige import variogram_models
        from pykrige.ok import OrdinaryKriging

        self.ordinary_kriging = OrdinaryKriging
        self.variograms = {
            "spherical": variogram_models.spherical_variogram_model,
            "exponential": variogram_models.exponential_variogram_model,
            "gaussian": variogram_models.gaussian_variogram_model,
            "linear": variogram_models.linear_variogram_model,
        }
        self.backend = self._find_backend()

    @staticmethod
    def _find_backend():
        """PyKrige's Cython moving-window backend when it is built, else its Python loop."""
        try:
            from pykrige.lib import cok  # noqa: F401
        except ImportError:
            logger.warning("PyKrige's C extension is unavailable: using its slower 'loop' backend")
            return "loop"
        return "C"


_PYKRIGE = []
_PYKRIGE_LOCK = threading.Lock()


def load_pykrige():
    """PyKrige's classes, variogram functions and backend, imported once.

    PyKrige is the one optional dependency of the core: every step but kriging
    runs without it. The chains call this in the calling thread before they
    start worker threads that krige, so that PyKrige's extension modules are
    never first imported in a worker (see :func:`~.blocks.single_threaded_blas`).
    Raises ImportError when PyKrige is not installed.
    """
    with _PYKRIGE_LOCK:
        if not _PYKRIGE:
            _PYKRIGE.append(_PyKrige())
        return _PYKRIGE[0]


def semivariance(model, parameters, h, *, anisotropy=None, azimuth=None):
    """Semivariance of ``model`` with our ``parameters`` dict at lags ``h`` (map units).

    With an :class:`Anisotropy`, the lags point at ``azimuth`` (degrees from
    north); the range in ``parameters`` is the major-axis range.
    """
    h = np.asarray(h, dtype=float)
    if anisotropy is not None and azimuth is not None:
        h = h * _stretch(math.radians(azimuth - anisotropy.azimuth), anisotropy.ratio)
    return _model_semivariance(model, parameters, h)


def _model_semivariance(model, parameters, h):
    """Semivariance of ``model`` with our ``parameters`` dict at lags ``h``."""
    return load_pykrige().variograms[model](_to_pykrige(model, parameters),
                                            np.asarray(h, dtype=float))
