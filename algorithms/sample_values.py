"""The field-data parameters shared by every algorithm that reads sample values.

``krigesamples``, ``fusegeochemistry``, ``crossvalidatefusion`` and
``evaluatefusion`` (its sample inputs) add the same advanced parameters
(:func:`add_parameters`), read the samples the same way (:func:`read_samples`)
and pass the same rules to the core (:func:`conventions`); the rules
themselves are :mod:`geochem_fusion.core.samples` (:data:`~geochem_fusion.core.samples.CONVENTIONS`).
"""

from qgis.core import (
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from .base import advanced
from .params import BELOW_DETECTION_KEYS, BELOW_DETECTION_OPTIONS, DEFAULT_BELOW_DETECTION

BELOW_DETECTION = "BELOW_DETECTION"
DL_FRACTION = "DL_FRACTION"
NEGATIVE_BELOW = "NEGATIVE_BELOW"
MISSING_CODES = "MISSING_CODES"
QUALIFIERS = "QUALIFIERS"

DEFAULT_MISSING_CODES = "-9999, -999, -99999"


def help_text():
    """The conventions, for the algorithms' help (one text, from the core)."""
    from ..core.samples import CONVENTIONS

    return CONVENTIONS


def add_parameters(algorithm):
    """Add the advanced field-data parameters to ``algorithm`` (after its own)."""
    algorithm.addParameter(advanced(QgsProcessingParameterEnum(
        BELOW_DETECTION, "Below detection (<DL text, '<' qualifiers, negative codes; 0 with log)",
        BELOW_DETECTION_OPTIONS, defaultValue=DEFAULT_BELOW_DETECTION)))
    algorithm.addParameter(advanced(QgsProcessingParameterNumber(
        DL_FRACTION, "Fraction of the detection limit (for 'replace by a fraction')",
        QgsProcessingParameterNumber.Type.Double, 0.5, minValue=0.01, maxValue=1.0)))
    algorithm.addParameter(advanced(QgsProcessingParameterBoolean(
        NEGATIVE_BELOW, "Negative values mean below |value| (-5 = below a limit of 5)", False)))
    algorithm.addParameter(advanced(QgsProcessingParameterString(
        MISSING_CODES, "Missing-value codes (no value; comma-separated)", DEFAULT_MISSING_CODES,
        optional=True)))
    algorithm.addParameter(advanced(QgsProcessingParameterBoolean(
        QUALIFIERS, "Use qualifier columns (e.g. Cu_T holding '<') when present", True)))


def conventions(algorithm, parameters, context):
    """The keyword arguments of :func:`geochem_fusion.core.samples.check_sample_table`."""
    from ..core.samples import parse_missing_codes

    return dict(
        below_detection=BELOW_DETECTION_KEYS[
            algorithm.parameterAsEnum(parameters, BELOW_DETECTION, context)],
        dl_fraction=algorithm.parameterAsDouble(parameters, DL_FRACTION, context),
        negative_below=algorithm.parameterAsBool(parameters, NEGATIVE_BELOW, context),
        missing_codes=parse_missing_codes(
            algorithm.parameterAsString(parameters, MISSING_CODES, context)))


def read_samples(algorithm, parameters, context, feedback, source, fields, target_crs):
    """Sites (in ``target_crs``), field values as written and their qualifier columns.

    Returns ``(x, y, {field: raw values}, {field: qualifiers})``; the
    reprojection, skipped features and the qualifier columns used are logged.
    """
    from ..core.samples import qualifier_field
    from .vector_io import read_points

    qualifiers = {}
    if algorithm.parameterAsBool(parameters, QUALIFIERS, context) and source is not None:
        names = source.fields().names()
        qualifiers = {f: qualifier_field(f, names) for f in fields}
    x, y, values, messages, marks = read_points(source, fields, target_crs, context, feedback,
                                                report_missing=False, raw=True,
                                                qualifiers=qualifiers)
    for m in messages:
        feedback.pushInfo(m)
    for f, q in qualifiers.items():
        if q:
            feedback.pushInfo(f"Qualifier column of {f}: {q}")
    return x, y, values, marks


def coverage_messages(image, x, y):
    """Warnings counting the samples outside ``image`` (a BlockSource) or on its nodata."""
    import numpy as np

    from ..core.samples import check_coverage

    grid = image.grid
    col = np.floor((np.asarray(x) - grid.x_min) / grid.cell_x).astype(np.int64)
    row = np.floor((grid.y_max - np.asarray(y)) / grid.cell_y).astype(np.int64)
    inside = (col >= 0) & (col < grid.ncols) & (row >= 0) & (row < grid.nrows)
    on_nodata = np.zeros(len(col), dtype=bool)
    for i in np.flatnonzero(inside)[np.argsort(row[inside], kind="stable")]:
        on_nodata[i] = not np.isfinite(image.read(row[i], col[i], 1, 1)).all()
    return check_coverage(x, y, grid.extent, on_nodata)
