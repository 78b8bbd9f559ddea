"""Tables the algorithms write: a list of dicts as a geometry-less feature sink.

Shared by every algorithm with a table output (loadings, coefficients, scores,
thresholds), so that no algorithm imports another's module.
"""

from qgis.core import QgsFeature, QgsFeatureSink, QgsFields, QgsWkbTypes

from . import compat


def write_table(alg, parameters, context, key, rows):
    """Write a list of dicts as a geometry-less table sink.

    Columns are the union of the rows' keys, in first-seen order; a column is
    text if any row holds text in it; missing or empty values are NULL.
    """
    columns = {}
    for row in rows:
        for name, value in row.items():
            text = isinstance(value, str) and value != ""
            columns[name] = columns.get(name, False) or text
    fields = QgsFields()
    for name, text in columns.items():
        fields.append(compat.make_field(name, text))
    sink, dest = alg.parameterAsSink(parameters, key, context, fields, QgsWkbTypes.Type.NoGeometry)
    if sink is None:
        return None
    for row in rows:
        feat = QgsFeature(fields)
        values = []
        for name, text in columns.items():
            value = row.get(name)
            if value is None or value == "":
                values.append(None)
            else:
                values.append(str(value) if text else float(value))
        feat.setAttributes(values)
        sink.addFeature(feat, QgsFeatureSink.Flag.FastInsert)
    return dest


def flatten_rows(rows):
    """Table rows with list values spread over columns and None/bool as text or numbers."""
    flat = []
    for row in rows:
        out = {}
        for key, value in row.items():
            if isinstance(value, (list, tuple)):
                for i, v in enumerate(value):
                    out[f"{key}_{i + 1}"] = v
            elif value is None:
                out[key] = "global"
            elif isinstance(value, bool):
                out[key] = float(value)
            else:
                out[key] = value
        flat.append(out)
    return flat
