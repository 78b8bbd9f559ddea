"""Checks of geochemical field samples before kriging, with messages for the user.

Field data come with typing errors in coordinates, NULL values, negative
"below detection" codes (−1, −9999, ...), duplicate sites and extreme
outliers.  :func:`check_sample_table` (several elements sharing the sample
sites) and :func:`check_samples` (one element) clean what can be cleaned
safely, refuse what cannot, and return plain-language messages that the
caller shows to the user:

* samples without a numeric value (NaN) are left out, and counted;
* values that cannot be log-transformed (``<= 0`` with ``log_transform``)
  are refused, or, with ``below_detection="half-min"``, replaced by half the
  smallest positive value of that element (the usual simple substitution for
  censored geochemical data; Helsel 2012, ch. 1).  A negative value is never
  logged silently;
* samples sharing exact coordinates are merged into one with their mean;
* fewer than :data:`~geochem_fusion.core.kriging.MIN_SAMPLES` usable samples,
  or all values equal, is refused with the numbers;
* extreme outliers (beyond the quartiles by more than ``outlier_iqr``
  interquartile ranges; Tukey 1977, "far out" values at 3 IQR), computed on
  ``log10`` when every value is positive, and samples far from all others
  (probable coordinate typos) are reported, not removed.

:func:`check_overlap` compares the sample sites with the extent of an image or
of a requested kriging extent.

References
----------
- Helsel, D. R. (2012). *Statistics for Censored Environmental Data Using
  Minitab and R*, 2nd ed. Wiley.
- Tukey, J. W. (1977). *Exploratory Data Analysis*. Addison-Wesley, ch. 2.
- Reimann, C., Filzmoser, P., Garrett, R. G. (2005). Background and threshold:
  critical comparison of methods of determination. *Science of the Total
  Environment* 346, 1-16 (outliers of geochemical data on a log scale).
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.spatial import cKDTree

from .kriging import MIN_SAMPLES, median_nn_spacing
from .vocabulary import BELOW_DETECTION, kriging_grid

__all__ = ["BELOW_DETECTION", "MIN_SAMPLES", "check_overlap", "check_sample_table",
           "check_samples", "check_samples_on_grid", "scene_samples"]

logger = logging.getLogger(__name__)


_LISTED = 5  # most samples or codes named in one message


def check_samples(x, y, values, *, log_transform=False, below_detection="refuse",
                  min_samples=MIN_SAMPLES, outlier_iqr=3.0, isolated_factor=10.0,
                  name="values"):
    """Check and clean the samples of one element.

    Parameters
    ----------
    x, y : array_like, shape (n,)
        Sample coordinates (map units, metres).
    values : array_like, shape (n,)
        Concentrations (e.g. ppm); NaN = no value (NULL or not a number).
    log_transform, below_detection, min_samples, outlier_iqr, isolated_factor
        See :func:`check_sample_table`.
    name : str
        Element name used in the messages (e.g. the field name, ``"Cu"``).

    Returns
    -------
    x, y, values : ndarray, shape (m,)
        New arrays of the usable samples (``m <= n``): every value finite,
        duplicates merged, below-detection values replaced if asked.
    messages : list of str
        What was done or found, for the user.

    Raises
    ------
    ValueError
        See :func:`check_sample_table`.
    """
    x, y, table, messages = check_sample_table(
        x, y, {name: values}, log_transform=log_transform, below_detection=below_detection,
        min_samples=min_samples, outlier_iqr=outlier_iqr, isolated_factor=isolated_factor)
    v = table[name]
    ok = np.isfinite(v)
    return x[ok], y[ok], v[ok], messages


def check_sample_table(x, y, values, *, log_transform=False, below_detection="refuse",
                       min_samples=MIN_SAMPLES, outlier_iqr=3.0, isolated_factor=10.0):
    """Check and clean samples of several elements analysed at the same sites.

    Parameters
    ----------
    x, y : array_like, shape (n,)
        Sample coordinates (map units, metres).  Samples with non-finite
        coordinates are left out (with a message).
    values : dict of str -> array_like, shape (n,)
        Concentrations per element; NaN = not analysed / NULL / not a number.
    log_transform : bool
        The values will be log-transformed: they must be positive.
    below_detection : {"refuse", "half-min"}
        What to do with values that are below detection codes: ``<= 0`` with
        ``log_transform``, negative without.  ``"refuse"``: a ValueError with
        ``log_transform`` (a message only without it, since the values can be
        kriged, but probably should not be); ``"half-min"``: replace them by
        half the smallest positive value of that element.
    min_samples : int
        Fewest usable samples at distinct sites per element (kriging needs
        enough pairs to estimate a variogram).
    outlier_iqr : float
        Report values beyond ``Q1 - k·IQR`` or ``Q3 + k·IQR`` (``k`` =
        ``outlier_iqr``) of ``log10`` of the values when all are positive,
        of the values otherwise.  0 disables the report.
    isolated_factor : float
        Report samples whose nearest other sample is more than this many
        times the median nearest-neighbour spacing away.  0 disables it.

    Returns
    -------
    x, y : ndarray, shape (m,)
        Sites, duplicates merged (``m <= n``); new arrays.
    values : dict of str -> ndarray, shape (m,)
        Per element, NaN where that element has no usable value; new arrays.
    messages : list of str
        What was done or found, for the user.

    Raises
    ------
    ValueError
        Mismatched lengths, an unknown policy, non-positive values with
        ``log_transform`` and ``below_detection="refuse"``, fewer than
        ``min_samples`` usable samples, or all values of an element equal.
    """
    if below_detection not in BELOW_DETECTION:
        raise ValueError(f"below_detection must be one of {BELOW_DETECTION}, got {below_detection!r}")
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length, got {x.size} and {y.size}")
    if not values:
        raise ValueError("no element given: pass at least one {name: values} entry")
    table = {}
    for name, v in values.items():
        v = np.asarray(v, dtype=np.float64).ravel()
        if v.size != x.size:
            raise ValueError(f"'{name}': got {x.size} coordinates but {v.size} values")
        table[name] = v
    messages = []

    bad_xy = ~(np.isfinite(x) & np.isfinite(y))
    if bad_xy.any():
        messages.append(f"{int(bad_xy.sum())} of {x.size} samples have no valid coordinates "
                        "and are left out.")
        x, y = x[~bad_xy], y[~bad_xy]
        table = {name: v[~bad_xy] for name, v in table.items()}
    for name, v in table.items():
        missing = ~np.isfinite(v)
        if missing.any():
            messages.append(f"{int(missing.sum())} of {v.size} samples have no value for {name} "
                            "(NULL, empty or not a number) and are left out for it.")
        table[name] = _below_detection(np.where(missing, np.nan, v), name, log_transform,
                                       below_detection, messages)

    x, y, table = _merge_duplicates(x, y, table, messages)

    for name, v in table.items():
        ok = np.isfinite(v)
        n = int(ok.sum())
        if n < min_samples:
            raise ValueError(
                f"kriging {name} needs at least {min_samples} samples with a value at distinct "
                f"locations to estimate a variogram, got {n}; add samples, "
                "widen the area, or check the field and its NULL values"
            )
        if np.ptp(v[ok]) == 0:
            raise ValueError(
                f"all {n} samples of {name} have the same value ({v[ok][0]:g}): there is no "
                "spatial variation to krige; check the field (e.g. a constant detection-limit "
                "code)"
            )
        if outlier_iqr > 0:
            _report_outliers(x[ok], y[ok], v[ok], name, outlier_iqr, messages)
    if isolated_factor > 0:
        _report_isolated(x, y, isolated_factor, messages)
    for message in messages:
        logger.info(message)
    return x, y, table, messages


def check_overlap(x, y, extent, *, spacing=None, margin=0.0, min_spacings=3.0, what="image"):
    """Check that samples and an extent overlap enough to be used together.

    Parameters
    ----------
    x, y : array_like, shape (n,)
        Sample coordinates (map units), finite.
    extent : tuple of float
        ``(x_min, y_min, x_max, y_max)`` of the image or kriging extent, in the
        samples' CRS.
    spacing : float, optional
        Typical sample spacing (map units); default the median
        nearest-neighbour distance of the samples.
    margin : float
        Samples up to this distance outside the extent count as covering it
        (kriging uses them); map units.
    min_spacings : float
        Report when the overlap of the extent with the samples' bounding box
        is narrower than this many spacings in either direction.  0 disables.
    what : str
        Name of the extent in the messages ("image", "extent").

    Returns
    -------
    messages : list of str
        Empty, or a warning that the overlap is small.

    Raises
    ------
    ValueError
        When no sample lies within ``margin`` of the extent, or the overlap is
        less than one sample spacing wide.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    x_min, y_min, x_max, y_max = (float(v) for v in extent)
    if x.size == 0:
        raise ValueError("no sample given")
    near = ((x >= x_min - margin) & (x <= x_max + margin)
            & (y >= y_min - margin) & (y <= y_max + margin))
    if not near.any():
        raise ValueError(
            f"no sample falls inside the {what} extent ({x_min:.0f}, {y_min:.0f}) - "
            f"({x_max:.0f}, {y_max:.0f}); the samples span ({x.min():.0f}, {y.min():.0f}) - "
            f"({x.max():.0f}, {y.max():.0f}). Check that samples and {what} cover the same area "
            "and that their CRSs are right"
        )
    if spacing is None:
        spacing = _median_spacing(x, y)
    if not (spacing and spacing > 0) or min_spacings <= 0:
        return []
    width = min(x_max, x.max() + spacing) - max(x_min, x.min() - spacing)
    height = min(y_max, y.max() + spacing) - max(y_min, y.min() - spacing)
    if min(width, height) < spacing:
        raise ValueError(
            f"the samples overlap the {what} over only {max(width, 0):.0f} x {max(height, 0):.0f} "
            f"map units, less than one sample spacing ({spacing:.0f}); use an {what} that covers "
            "the sampled area"
        )
    if min(width, height) < min_spacings * spacing:
        return [
            f"The samples overlap the {what} over only {width:.0f} x {height:.0f} map units, "
            f"less than {min_spacings:g} sample spacings ({spacing:.0f}) across: there is little "
            "to learn from, and the result will be close to kriging alone. Use an image that "
            "covers more of the survey."
        ]
    return []


# -- helpers -----------------------------------------------------------------
def _count(n, singular, plural):
    """``"1 sample"``, ``"3 samples"``."""
    n = int(n)
    return f"{n} {singular if n == 1 else plural}"


def _describe_codes(codes):
    """``"-1 (3 samples), -9999 (1 sample)"`` for the distinct values in ``codes``."""
    distinct, counts = np.unique(codes, return_counts=True)
    order = np.argsort(-counts, kind="stable")[:_LISTED]
    parts = [f"{distinct[i]:g} ({counts[i]} sample{'s' if counts[i] > 1 else ''})" for i in order]
    if distinct.size > _LISTED:
        parts.append(f"and {distinct.size - _LISTED} other values")
    return ", ".join(parts)


def _below_detection(v, name, log_transform, policy, messages):
    """Apply the below-detection policy to one element (NaN = no value)."""
    with np.errstate(invalid="ignore"):
        codes = (v <= 0) if log_transform else (v < 0)
    n = int(codes.sum())
    if n == 0:
        return v
    described = _describe_codes(v[codes])
    if policy == "refuse":
        if log_transform:
            raise ValueError(
                f"the log transform needs positive values, but {n} samples of {name} are <= 0: "
                f"{described}, probably below-detection codes. Choose to replace below-detection "
                "values by half the smallest positive value, replace them in the layer (e.g. by "
                "half the detection limit), or turn the log transform off"
            )
        messages.append(
            f"{n} samples of {name} are negative ({described}). If these are below-detection "
            "codes, replace them (e.g. by half the detection limit); they are kriged as they are."
        )
        return v
    positive = v[v > 0]
    if positive.size == 0:
        raise ValueError(
            f"no sample of {name} is positive, so its {n} below-detection values cannot be "
            "replaced by half the smallest positive value; check the field"
        )
    smallest = float(positive.min())
    out = v.copy()
    out[codes] = smallest / 2.0
    messages.append(
        f"{n} samples of {name} below detection ({described}) were replaced by {smallest / 2:g}, "
        f"half the smallest positive value ({smallest:g})."
    )
    return out


def _merge_duplicates(x, y, table, messages):
    """Merge samples with identical coordinates into one site (mean of each element)."""
    if x.size == 0:
        return x, y, table
    xy, inverse, counts = np.unique(np.column_stack([x, y]), axis=0, return_inverse=True,
                                    return_counts=True)
    if xy.shape[0] == x.size:
        return x, y, table
    inverse = inverse.ravel()
    merged = {}
    for name, v in table.items():
        ok = np.isfinite(v)
        total = np.bincount(inverse, weights=np.where(ok, v, 0.0), minlength=xy.shape[0])
        number = np.bincount(inverse, weights=ok.astype(float), minlength=xy.shape[0])
        with np.errstate(invalid="ignore", divide="ignore"):
            merged[name] = np.where(number > 0, total / np.maximum(number, 1), np.nan)
    groups = counts > 1
    messages.append(
        f"{_count(groups.sum(), 'location holds', 'locations hold')} "
        f"{int(counts[groups].sum())} samples with identical coordinates (duplicates or repeated "
        "analyses); each group was merged into one sample with the mean of its values."
    )
    return xy[:, 0].copy(), xy[:, 1].copy(), merged


def _report_outliers(x, y, v, name, k, messages):
    positive = bool((v > 0).all())
    space = np.log10(v) if positive else v
    q1, q3 = np.percentile(space, [25, 75])
    iqr = q3 - q1
    if not iqr > 0:
        return
    low, high = q1 - k * iqr, q3 + k * iqr
    far = (space < low) | (space > high)
    if not far.any():
        return
    distance = np.where(space > high, space - high, low - space)
    order = np.flatnonzero(far)[np.argsort(-distance[far], kind="stable")][:_LISTED]
    listed = ", ".join(f"{v[i]:g} at ({x[i]:.0f}, {y[i]:.0f})" for i in order)
    more = f" and {int(far.sum()) - _LISTED} more" if far.sum() > _LISTED else ""
    scale = "log10 values" if positive else "values"
    messages.append(
        f"{_count(far.sum(), 'sample', 'samples')} of {name} "
        f"{'is an extreme outlier' if far.sum() == 1 else 'are extreme outliers'} (more than "
        f"{k:g} interquartile ranges beyond the quartiles of the {scale}): {listed}{more}. Check "
        "for typing or unit errors; kept as they are."
    )


def _median_spacing(x, y):
    if x.size < 2:
        return 0.0
    d, _ = cKDTree(np.column_stack([x, y])).query(np.column_stack([x, y]), k=2)
    return float(np.median(d[:, 1]))


def _report_isolated(x, y, factor, messages):
    if x.size < 3:
        return
    pts = np.column_stack([x, y])
    d, _ = cKDTree(pts).query(pts, k=2)
    nn = d[:, 1]
    spacing = float(np.median(nn))
    if not spacing > 0:
        return
    far = nn > factor * spacing
    if not far.any():
        return
    order = np.flatnonzero(far)[np.argsort(-nn[far], kind="stable")][:_LISTED]
    listed = ", ".join(f"({x[i]:.0f}, {y[i]:.0f}), {nn[i]:.0f} away" for i in order)
    messages.append(
        f"{_count(far.sum(), 'sample lies', 'samples lie')} far from all others (more than "
        f"{factor:g} times the median "
        f"spacing of {spacing:.0f} map units from their nearest neighbour): {listed}. Check their "
        "coordinates for typing errors."
    )


def check_samples_on_grid(x, y, image_grid):
    """Samples inside the image, samples near it (kriging support), and their spacing.

    The kriging uses the samples inside the image plus a margin of three
    sample spacings, so the borders of the image are kriged from both sides.
    """
    inside = ((x >= image_grid.x_min) & (x <= image_grid.x_max)
              & (y >= image_grid.y_min) & (y <= image_grid.y_max))
    if not inside.any():
        raise ValueError(
            "no sample falls inside the image extent "
            f"({image_grid.x_min:.0f}, {image_grid.y_min:.0f}) - "
            f"({image_grid.x_max:.0f}, {image_grid.y_max:.0f}); check that samples and image "
            "cover the same area and that their CRSs are right"
        )
    pts = inside if inside.sum() > 1 else np.ones_like(inside)
    spacing = median_nn_spacing(x[pts], y[pts])
    margin = 3 * spacing
    near = ((x >= image_grid.x_min - margin) & (x <= image_grid.x_max + margin)
            & (y >= image_grid.y_min - margin) & (y <= image_grid.y_max + margin))
    return inside, near, spacing


def scene_samples(x, y, values, image_grid, cell_size=None):
    """Checks and geometry shared by the scene chains.

    Returns ``(x, y, near, spacing, kgrid)``: float coordinates, the samples near
    enough to the image to krige from, their median spacing and the coarse
    kriging grid (:func:`~.vocabulary.kriging_grid`).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if not values:
        raise ValueError("no element field given: choose at least one concentration field")
    _, near, spacing = check_samples_on_grid(x, y, image_grid)
    return x, y, near, spacing, kriging_grid(image_grid, spacing, cell_size=cell_size)
