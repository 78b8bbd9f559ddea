"""Checks of geochemical field samples before kriging, with messages for the user.

Field data come with typing errors in coordinates, NULL values, negative
"below detection" codes (−1, −9999, ...), duplicate sites and extreme
outliers.  :func:`check_sample_table` (several elements sharing the sample
sites) and :func:`check_samples` (one element) clean what can be cleaned
safely, refuse what cannot, and return plain-language messages that the
caller shows to the user:

* field values are read by the field-data conventions of :func:`parse_values`
  (the one place that states them, see :data:`CONVENTIONS`): numbers; text
  ``<5`` (below a detection limit of 5) and ``>5000`` (above an upper limit);
  negative numbers meaning "below |value|" when the user says so
  (``negative_below``), other negative numbers and zeros (with the log) as
  below-detection codes of unknown limit; missing-value codes (``-9999``,
  ``-999``, ``-99999``; configurable) dropped and counted; qualifier columns
  (GTK-style ``*_T`` holding ``<`` or ``!``);
* samples without a value (NULL, empty, not a number, a missing-value code)
  are left out, and counted;
* below-detection values are refused (``below_detection="refuse"``, the
  default: whenever one would reach the kriging, log transform or not),
  replaced by a fraction of each sample's own detection limit
  (``"fraction-dl"``, default ½) or by half the smallest measured value
  (``"half-min"``) -- the usual simple substitutions for censored geochemical
  data (Helsel 2012, ch. 1).  A negative value is never kriged or logged
  silently;
* samples sharing exact coordinates, or closer to each other than a small
  fraction (:data:`NEAR_DUPLICATE_FRACTION`) of the median sample spacing, are
  merged into one with their mean: repeated or re-sampled sites are not
  spatial structure, and a variogram fitted on pairs at almost zero distance
  would read them as a tiny range;
* fewer than :data:`~geochem_fusion.core.vocabulary.MIN_SAMPLES` usable samples,
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
import math
import re
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from .vocabulary import BELOW_DETECTION, MIN_SAMPLES, kriging_grid

__all__ = ["BELOW_DETECTION", "CONVENTIONS", "DL_FRACTION", "MIN_SAMPLES", "MISSING_CODES",
           "NEAR_DUPLICATE_FRACTION", "ParsedValues", "check_coverage", "check_overlap",
           "check_sample_table", "check_samples", "check_samples_on_grid", "clean_values",
           "median_nn_spacing", "merge_near_sites", "parse_missing_codes", "parse_values", "qualifier_field",
           "scene_samples"]

logger = logging.getLogger(__name__)

#: Default fraction of the detection limit that replaces a below-detection value.
DL_FRACTION = 0.5

#: Default missing-value codes: numbers that mean "no value" in survey databases.
MISSING_CODES = (-9999.0, -999.0, -99999.0)

#: Numbers this large (in absolute value) are float nodata codes (1e30, -1e32, 3.4e38),
#: never concentrations: they count as missing-value codes.
HUGE_CODE = 1e30

#: Samples closer than this fraction of the median nearest-neighbour spacing are
#: merged as duplicates (a 2 km till survey: 40 m).
NEAR_DUPLICATE_FRACTION = 0.02

#: The field-data conventions, for the help of every algorithm that reads samples.
CONVENTIONS = (
    "<b>Sample values</b> (the same rules in every algorithm that reads samples): numbers; "
    "text <i>&lt;5</i> is below a detection limit of 5 and <i>&gt;5000</i> above an upper limit "
    "(kept at 5000, reported); NULL, empty or other text is no value. <b>Missing-value "
    "codes</b> (default -9999, -999, -99999; and any number beyond ±1e30, a float nodata) "
    "mean no value: those samples are left out and "
    "counted. <b>Negative values</b> are below-detection codes; with <i>Negative values mean "
    "below |value|</i> (the USGS/GTK convention) -5 is below a detection limit of 5. "
    "<b>Qualifier columns</b>: a text field next to the element (GTK style: <i>Cu_511P_T</i> "
    "for <i>Cu_ppm_511</i>, or <i>Cu_T</i> for <i>Cu</i>) holding <i>&lt;</i> marks the value "
    "as below detection (its value is the limit; 0 = limit not given) and <i>&gt;</i> as above "
    "the upper limit; other marks (e.g. <i>!</i>) are counted and the value kept. "
    "<b>Below detection</b> (these values, and 0 with the log transform): <i>refuse</i> "
    "(default: the run stops and names the values whenever one would be kriged), <i>replace by "
    "a fraction of the detection limit</i> (each sample's own limit times the fraction, default "
    "½; where the limit is not given, the smallest measured value stands for it), or "
    "<i>replace by half the smallest measured value</i>. Samples closer than 2 % of the median "
    "sample spacing are merged like exact duplicates (mean position and value), with a warning "
    "that counts them."
)

_LISTED = 5  # most samples or codes named in one message


def check_samples(x, y, values, *, log_transform=False, below_detection="refuse",
                  min_samples=MIN_SAMPLES, outlier_iqr=3.0, isolated_factor=10.0,
                  name="values", qualifiers=None, **conventions):
    """Check and clean the samples of one element.

    Parameters
    ----------
    x, y : array_like, shape (n,)
        Sample coordinates (map units, metres).
    values : array_like, shape (n,)
        Field values (numbers, text such as ``"<5"``, None); NaN = no value.
    qualifiers : array_like, shape (n,), optional
        The element's qualifier column (``"<"``, ``">"``, ``"!"``, None).
    log_transform, below_detection, min_samples, outlier_iqr, isolated_factor, conventions
        See :func:`check_sample_table` (``conventions``: ``missing_codes``,
        ``negative_below``, ``dl_fraction``, ``near_fraction``).
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
        min_samples=min_samples, outlier_iqr=outlier_iqr, isolated_factor=isolated_factor,
        qualifiers=None if qualifiers is None else {name: qualifiers}, **conventions)
    v = table[name]
    ok = np.isfinite(v)
    return x[ok], y[ok], v[ok], messages


def check_sample_table(x, y, values, *, log_transform=False, below_detection="refuse",
                       min_samples=MIN_SAMPLES, outlier_iqr=3.0, isolated_factor=10.0,
                       qualifiers=None, missing_codes=MISSING_CODES, negative_below=False,
                       dl_fraction=DL_FRACTION, near_fraction=NEAR_DUPLICATE_FRACTION):
    """Check and clean samples of several elements analysed at the same sites.

    Parameters
    ----------
    x, y : array_like, shape (n,)
        Sample coordinates (map units, metres).  Samples with non-finite
        coordinates are left out (with a message).
    values : dict of str -> array_like, shape (n,)
        Field values per element, read by :func:`parse_values`: numbers, text
        (``"<5"``, ``">5000"``, ``"12.5"``), None; NaN = not analysed / NULL.
    log_transform : bool
        The values will be log-transformed: they must be positive.
    below_detection : {"refuse", "half-min", "fraction-dl"}
        What to do with values below detection (``<DL`` text, a ``<``
        qualifier, negative numbers; zeros too with ``log_transform``).
        ``"refuse"``: a ValueError naming them whenever there is one, log
        transform or not; ``"half-min"``: replace them by half the smallest
        measured value of that element; ``"fraction-dl"``: by ``dl_fraction``
        times each sample's own detection limit (the smallest measured value
        where the limit is not given).
    qualifiers : dict of str -> array_like, optional
        Qualifier column per element (see :func:`parse_values`).
    missing_codes : sequence of float
        Numbers that mean "no value"; those samples are left out and counted.
    negative_below : bool
        A negative number ``-v`` means "below a detection limit of ``v``".
    dl_fraction : float
        The fraction of ``"fraction-dl"``, in (0, 1].
    near_fraction : float
        Sites closer than this fraction of the median nearest-neighbour
        spacing are merged as duplicates (0: exact duplicates only).
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
    if not 0 < dl_fraction <= 1:
        raise ValueError(f"the fraction of the detection limit must be in (0, 1], got {dl_fraction}")
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length, got {x.size} and {y.size}")
    if not values:
        raise ValueError("no element given: pass at least one {name: values} entry")
    qualifiers = qualifiers or {}
    messages = []
    parsed = {}
    for name, v in values.items():
        p = parse_values(v, name=name, qualifiers=qualifiers.get(name),
                         missing_codes=missing_codes, negative_below=negative_below)
        if p.values.size != x.size:
            raise ValueError(f"'{name}': got {x.size} coordinates but {p.values.size} values")
        parsed[name] = p

    bad_xy = ~(np.isfinite(x) & np.isfinite(y))
    if bad_xy.any():
        messages.append(f"{int(bad_xy.sum())} of {x.size} samples have no valid coordinates "
                        "and are left out.")
        x, y = x[~bad_xy], y[~bad_xy]
        parsed = {name: p.subset(~bad_xy) for name, p in parsed.items()}
    table = {}
    for name, p in parsed.items():
        messages.extend(p.messages)
        table[name] = _below_detection(p, name, log_transform, below_detection, dl_fraction,
                                       messages)

    x, y, table = _merge_duplicates(x, y, table, messages)
    x, y, table = _merge_near_duplicates(x, y, table, near_fraction, messages)

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


def clean_values(raw, *, name="values", log_transform=False, below_detection="refuse",
                 qualifiers=None, missing_codes=MISSING_CODES, negative_below=False,
                 dl_fraction=DL_FRACTION):
    """One element's field values by the conventions, below-detection policy applied.

    For callers that compare values rather than krige them (e.g. the samples
    of an evaluation): no duplicate merge, no minimum count.  Parameters as
    :func:`check_sample_table`.

    Returns
    -------
    values : ndarray of float, shape (n,)
        NaN where there is no usable value.
    messages : list of str
    """
    if below_detection not in BELOW_DETECTION:
        raise ValueError(f"below_detection must be one of {BELOW_DETECTION}, got {below_detection!r}")
    parsed = parse_values(raw, name=name, qualifiers=qualifiers, missing_codes=missing_codes,
                          negative_below=negative_below)
    messages = list(parsed.messages)
    values = _below_detection(parsed, name, log_transform, below_detection, dl_fraction,
                              messages)
    return values, messages


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


def _below_detection(parsed, name, log_transform, policy, fraction, messages):
    """Apply the below-detection policy to one element; returns the values to krige (NaN = none)."""
    v = parsed.values.copy()
    present = np.isfinite(v)
    with np.errstate(invalid="ignore"):
        below = parsed.below | (present & (v <= 0) if log_transform else parsed.below)
    n = int(below.sum())
    if parsed.above.any():
        messages.append(
            f"{_count(parsed.above.sum(), 'sample', 'samples')} of {name} "
            f"{'is' if parsed.above.sum() == 1 else 'are'} above the upper limit of the analysis "
            f"({_describe_labels(parsed.labels[parsed.above])}): kept at that limit, so the "
            "true value is higher there.")
    if n == 0:
        return v
    described = _describe_labels(parsed.labels[below])
    if policy == "refuse":
        reach = "the log transform and the kriging" if log_transform else "the kriging"
        raise ValueError(
            f"{n} sample{'s' if n > 1 else ''} of {name} {'are' if n > 1 else 'is'} below "
            f"detection ({described}) and would reach {reach} as if measured. Choose what to do "
            "with them in 'Below detection' (advanced parameter): replace each by a fraction of "
            "its detection limit (default 1/2), or by half the smallest measured value. If "
            "negative numbers in this field mean 'below |value|', tick 'Negative values mean "
            "below |value|'; if they are missing-value codes, add them to 'Missing-value codes'"
        )
    measured = v[present & ~below & (v > 0)]
    if measured.size == 0:
        raise ValueError(
            f"no sample of {name} is positive, so its {n} below-detection values cannot be "
            "replaced by half the smallest positive value; check the field"
            if policy == "half-min" else
            f"no sample of {name} is measured above its detection limit, so its {n} "
            "below-detection values cannot be replaced; check the field"
        )
    smallest = float(measured.min())
    if policy == "half-min":
        v[below] = smallest / 2.0
        messages.append(
            f"{_count(n, 'sample', 'samples')} of {name} below detection ({described}) "
            f"{'was' if n == 1 else 'were'} replaced by {smallest / 2:g}, half the smallest "
            f"positive value ({smallest:g}).")
        return v
    limit = np.where(below & (parsed.limit > 0), parsed.limit, np.nan)
    unknown = below & ~np.isfinite(limit)
    limit[unknown] = smallest
    v[below] = fraction * limit[below]
    note = (f" {int(unknown.sum())} of them give no detection limit "
            f"({_describe_labels(parsed.labels[unknown])}): the smallest measured value, "
            f"{smallest:g}, stands for it." if unknown.any() else "")
    messages.append(
        f"{_count(n, 'sample', 'samples')} of {name} below detection ({described}) "
        f"{'was' if n == 1 else 'were'} replaced by {fraction:g} x their detection limit.{note}")
    return v


# -- field-data conventions ---------------------------------------------------------
@dataclass
class ParsedValues:
    """One element's field values read by :func:`parse_values`.

    Attributes
    ----------
    values : ndarray of float
        Measured value; for a below- or above-limit value the limit (or the
        code, e.g. -1, when no limit is given); NaN = no value.
    below, above : ndarray of bool
        Below detection / above the upper limit.
    limit : ndarray of float
        Detection limit of the below-detection values (NaN = not given).
    labels : ndarray of str
        How each value was written (``"<5"``, ``"-1"``), for messages.
    messages : list of str
    """

    values: np.ndarray
    below: np.ndarray
    above: np.ndarray
    limit: np.ndarray
    labels: np.ndarray
    messages: list = field(default_factory=list)

    def subset(self, keep):
        """The values of the samples in ``keep`` (a mask or indices), same messages."""
        return ParsedValues(self.values[keep], self.below[keep], self.above[keep],
                            self.limit[keep], self.labels[keep], self.messages)


_NUMBER = r"[+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][+-]?\d+)?"
_BOUND = re.compile(rf"^([<>])\s*=?\s*({_NUMBER})\s*$")
_BARE_BELOW = re.compile(r"^(<|<\s*(dl|lod|lld|d\.l\.)|bdl|b\.d\.l\.)$", re.IGNORECASE)


def _to_float(text):
    text = text.strip()
    if re.fullmatch(_NUMBER, text):
        return float(text.replace(",", ".")) if "." not in text else float(text)
    raise ValueError(text)


def parse_values(raw, *, name="values", qualifiers=None, missing_codes=MISSING_CODES,
                 negative_below=False):
    """Read one element's field values by the field-data conventions (:data:`CONVENTIONS`).

    Parameters
    ----------
    raw : array_like, shape (n,)
        Numbers, text or None (NULL).
    name : str
        Element name for the messages.
    qualifiers : array_like of str or None, shape (n,), optional
        Qualifier column: ``"<"`` below detection (the value is the limit; 0
        or empty = limit not given), ``">"`` above the upper limit (the value
        is that limit); other marks (``"!"``: GTK's uncertain value) are
        counted and the value kept.
    missing_codes : sequence of float
        Numbers meaning "no value" (left out, counted).
    negative_below : bool
        ``-v`` means below a detection limit of ``v`` (else a negative number
        is a below-detection code without a limit).

    Returns
    -------
    ParsedValues
    """
    raw = np.asarray(raw, dtype=object).ravel() if not isinstance(raw, np.ndarray) else raw.ravel()
    n = raw.size
    values = np.full(n, np.nan)
    below = np.zeros(n, dtype=bool)
    above = np.zeros(n, dtype=bool)
    limit = np.full(n, np.nan)
    labels = np.empty(n, dtype=object)
    not_numbers = {}
    null = 0
    for i, item in enumerate(raw.tolist()):
        if item is None or isinstance(item, bool):
            null += item is None
            continue
        if isinstance(item, (int, float)):
            if not math.isfinite(item):
                null += 1
                continue
            values[i] = float(item)
            labels[i] = f"{float(item):g}"
            continue
        text = str(item).strip()
        if not text or text.upper() in ("NULL", "NAN", "NA", "N/A"):
            null += 1
            continue
        bound = _BOUND.match(text)
        if bound:
            value = _to_float(bound.group(2))
            values[i] = value
            labels[i] = f"{bound.group(1)}{value:g}"
            if bound.group(1) == "<":
                below[i] = True
                limit[i] = abs(value) if value != 0 else np.nan
            else:
                above[i] = True
            continue
        if _BARE_BELOW.match(text):
            below[i] = True
            values[i] = 0.0
            labels[i] = text
            continue
        try:
            values[i] = _to_float(text)
            labels[i] = f"{values[i]:g}"
        except ValueError:
            not_numbers[text] = not_numbers.get(text, 0) + 1
    messages = []
    with np.errstate(invalid="ignore"):  # float nodata conventions (1e30, -1e32, 3.4e38): no value
        huge = np.abs(values) >= HUGE_CODE
    codes = (np.isin(values, np.asarray(list(missing_codes or ()), dtype=float)) | huge) & (
        ~below & ~above)
    if codes.any():
        messages.append(
            f"{_count(codes.sum(), 'sample', 'samples')} of {name} "
            f"{'holds' if codes.sum() == 1 else 'hold'} a missing-value code "
            f"({_describe_codes(values[codes])}) and {'is' if codes.sum() == 1 else 'are'} left "
            "out for it (no value).")
        values[codes] = np.nan
    if qualifiers is not None:
        _apply_qualifiers(np.asarray(qualifiers, dtype=object).ravel(), name, values, below,
                          above, limit, labels, messages)
    negative = np.isfinite(values) & (values < 0) & ~below & ~above
    if negative.any():
        below |= negative
        if negative_below:
            limit[negative] = -values[negative]
            labels[negative] = [f"<{-v:g} (written {v:g})" for v in values[negative]]
    missing = int(null + sum(not_numbers.values()))
    if missing:
        listed = ", ".join(f"'{t}' ({c})" for t, c in
                           sorted(not_numbers.items(), key=lambda kv: -kv[1])[:_LISTED])
        what = "NULL, empty" + (f" or text that is not a number: {listed}" if listed else "")
        messages.append(f"{missing} of {n} samples have no value for {name} ({what}) and are "
                        "left out for it.")
    return ParsedValues(values, below, above, limit, labels, messages)


def _apply_qualifiers(marks, name, values, below, above, limit, labels, messages):
    if marks.size != values.size:
        raise ValueError(f"'{name}': got {values.size} values but {marks.size} qualifiers")
    other = {}
    for i, mark in enumerate(marks.tolist()):
        mark = "" if mark is None else str(mark).strip()
        if not mark or not np.isfinite(values[i]) or below[i] or above[i]:
            continue
        if mark.startswith("<"):
            below[i] = True
            limit[i] = abs(values[i]) if values[i] != 0 else np.nan
            labels[i] = f"<{abs(values[i]):g}" if values[i] != 0 else "< (no limit given)"
        elif mark.startswith(">"):
            above[i] = True
            labels[i] = f">{values[i]:g}"
        else:
            other[mark] = other.get(mark, 0) + 1
    for mark, count in other.items():
        messages.append(
            f"{_count(count, 'sample', 'samples')} of {name} "
            f"{'carries' if count == 1 else 'carry'} the qualifier '{mark}' (e.g. "
            "an uncertain value near the detection limit) and are kept as measured.")


def qualifier_field(field, names):
    """The qualifier column of ``field`` among ``names`` (GTK-style), or None.

    ``Cu`` -> ``Cu_T``; ``Cu_ppm_511`` -> ``Cu_ppm_511_T``, else the one field
    named ``Cu_…_T`` (GTK: ``Cu_511P_T``).
    """
    lower = {n.lower(): n for n in names}
    for candidate in (f"{field}_T", f"{field}_Q"):
        if candidate.lower() in lower:
            return lower[candidate.lower()]
    element = field.split("_")[0]
    if element == field:
        return None
    matches = [n for n in names if n != field and n.lower().startswith(element.lower() + "_")
               and n.lower().endswith("_t")]
    return matches[0] if len(matches) == 1 else None


def parse_missing_codes(text):
    """``"-9999, -999"`` -> ``(-9999.0, -999.0)``; ValueError naming a bad entry."""
    codes = []
    for part in str(text or "").replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            codes.append(float(part))
        except ValueError as exc:
            raise ValueError(f"missing-value codes: '{part}' is not a number; give numbers "
                             "separated by commas, e.g. -9999, -999") from exc
    return tuple(codes)


def _describe_labels(labels):
    """``"<5 (3 samples), -1 (1 sample)"`` for how the values were written."""
    distinct, counts = np.unique(np.asarray([str(v) for v in labels]), return_counts=True)
    order = np.argsort(-counts, kind="stable")[:_LISTED]
    parts = [f"{distinct[i]} ({counts[i]} sample{'s' if counts[i] > 1 else ''})" for i in order]
    if distinct.size > _LISTED:
        parts.append(f"and {distinct.size - _LISTED} other values")
    return ", ".join(parts)


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


def merge_near_sites(x, y, columns, near_fraction=NEAR_DUPLICATE_FRACTION):
    """Merge sites closer than ``near_fraction`` x the median nearest-neighbour spacing.

    Parameters
    ----------
    x, y : ndarray, shape (n,)
        Distinct sites (exact duplicates already merged).
    columns : list of ndarray, shape (n,)
        Values per site (NaN = none); merged by the mean of the finite ones.
    near_fraction : float
        0 disables the merge.

    Returns
    -------
    x, y, columns, n_groups, n_samples, tolerance
        The merged sites, how many groups of how many samples were merged,
        and the distance below which sites were merged (map units).
    """
    if near_fraction <= 0 or x.size < 3:
        return x, y, columns, 0, 0, 0.0
    pts = np.column_stack([x, y])
    tree = cKDTree(pts)
    d, _ = tree.query(pts, k=2)
    spacing = float(np.median(d[:, 1]))
    tolerance = near_fraction * spacing
    if not tolerance > 0:
        return x, y, columns, 0, 0, 0.0
    pairs = tree.query_pairs(tolerance, output_type="ndarray")
    if pairs.size == 0:
        return x, y, columns, 0, 0, tolerance
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(x.size, x.size))
    n_sites, label = connected_components(graph, directed=False)
    counts = np.bincount(label, minlength=n_sites)
    mean = lambda v: np.bincount(label, weights=v, minlength=n_sites) / counts  # noqa: E731
    merged = []
    for v in columns:
        ok = np.isfinite(v)
        number = np.bincount(label, weights=ok.astype(float), minlength=n_sites)
        total = np.bincount(label, weights=np.where(ok, v, 0.0), minlength=n_sites)
        with np.errstate(invalid="ignore", divide="ignore"):
            merged.append(np.where(number > 0, total / np.maximum(number, 1), np.nan))
    groups = counts > 1
    return (mean(x), mean(y), merged, int(groups.sum()), int(counts[groups].sum()), tolerance)


def _merge_near_duplicates(x, y, table, near_fraction, messages):
    """Merge sites closer than a small fraction of the spacing (a counted message)."""
    names = list(table)
    x2, y2, columns, groups, n, tolerance = merge_near_sites(
        x, y, [table[k] for k in names], near_fraction)
    if groups == 0:
        return x, y, table
    messages.append(
        f"{_count(groups, 'group', 'groups')} of {n} samples closer to each other than "
        f"{tolerance:.3g} map units ({100 * near_fraction:g} % of the median sample spacing) "
        f"{'was' if groups == 1 else 'were'} merged like duplicates (mean position and mean "
        "value): repeated or re-sampled sites are not spatial structure, and a variogram fitted "
        "on them would read a tiny range.")
    return x2, y2, dict(zip(names, columns))


def check_coverage(x, y, extent, on_nodata=None, *, what="image"):
    """Count the samples outside an image or on its nodata, as a warning.

    Parameters
    ----------
    x, y : array_like, shape (n,)
        Sample sites (image CRS).
    extent : tuple of float
        ``(x_min, y_min, x_max, y_max)`` of the image.
    on_nodata : array_like of bool, shape (n,), optional
        The samples inside the extent whose pixel is nodata in some band.
    what : str

    Returns
    -------
    list of str
        Empty, or one warning with the counts and shares.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.size == 0:
        return []
    x_min, y_min, x_max, y_max = (float(v) for v in extent)
    outside = ~((x >= x_min) & (x <= x_max) & (y >= y_min) & (y <= y_max))
    hole = np.zeros(x.size, dtype=bool) if on_nodata is None else (
        np.asarray(on_nodata, dtype=bool).ravel() & ~outside)
    n_out, n_hole = int(outside.sum()), int(hole.sum())
    if n_out + n_hole == 0:
        return []
    parts = []
    if n_out:
        parts.append(f"{n_out} ({100.0 * n_out / x.size:.1f} %) lie outside the {what}")
    if n_hole:
        parts.append(f"{n_hole} ({100.0 * n_hole / x.size:.1f} %) fall on its nodata")
    return [
        f"Of the {x.size} sample sites, {' and '.join(parts)}: the {what} tells nothing there. "
        "They still shape the kriging, but the image part of the fusion learns only from the "
        f"{x.size - n_out - n_hole} samples on valid pixels; where the {what} has no data the "
        "fused layer is the kriged estimate. Use an image that covers the survey if you want "
        "the image's detail everywhere."
    ]


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


def median_nn_spacing(x, y) -> float:
    """Median nearest-neighbour distance between sample points.

    Parameters
    ----------
    x, y : array_like, shape (n,)
        Sample coordinates (map units, metres).

    Returns
    -------
    float
        Median over samples of the distance to the closest other sample.
        Coincident samples count with distance 0.
    """
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length, got {x.size} and {y.size}")
    bad = ~(np.isfinite(x) & np.isfinite(y))
    if bad.any():
        raise ValueError(
            f"{int(bad.sum())} of {x.size} samples have non-finite coordinates: drop them first"
        )
    if x.size < 2:
        raise ValueError(f"need at least 2 samples to measure their spacing, got {x.size}")
    distance, _ = cKDTree(np.column_stack([x, y])).query(np.column_stack([x, y]), k=2)
    return float(np.median(distance[:, 1]))


def _median_spacing(x, y):
    """:func:`median_nn_spacing`, 0 for fewer than two samples."""
    return 0.0 if np.size(x) < 2 else median_nn_spacing(x, y)


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
