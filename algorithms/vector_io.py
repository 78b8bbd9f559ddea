"""Reading sample points from vector layers (QGIS), kept out of ``core``."""

import math

import numpy as np
from qgis.core import (
    NULL,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsCsException,
    QgsFeatureRequest,
    QgsWkbTypes,
)

REPROJECT_MENU = {
    "raster": "Raster > Projections > Warp (Reproject)",
    "vector": "Vector > Data Management Tools > Reproject Layer",
}
"""Where QGIS reprojects each kind of layer (the geographic-CRS message points there)."""


def check_projected(crs, what, kind="vector"):
    """Refuse a missing or geographic CRS with a message naming ``what``.

    ``kind`` (``"raster"`` or ``"vector"``) picks the QGIS menu the message points to.
    """
    if not crs.isValid():
        raise ValueError(
            f"{what} has no coordinate reference system; set it in the layer properties "
            "(Source > Assigned Coordinate Reference System)."
        )
    if crs.isGeographic():
        raise ValueError(
            f"{what} is in a geographic CRS ({crs.authid()}, degrees); distances, cell sizes and "
            "sample spacing need metres. Reproject it to a projected CRS (e.g. the local UTM zone) "
            f"with {REPROJECT_MENU[kind]} first."
        )


def projected_crs_for(source, context):
    """The CRS samples are kriged in when no image gives one (the one CRS rule).

    The layer's own CRS when it is projected; else (degrees) the project's CRS
    when that is projected, else the UTM zone of the samples' centre.  The
    samples are then reprojected into it, as ``fusegeochemistry`` reprojects
    them to the image's CRS.
    """
    crs = source.sourceCrs()
    if not crs.isValid() or not crs.isGeographic():
        return crs
    project = context.project() if context is not None else None
    if project is not None and project.crs().isValid() and not project.crs().isGeographic():
        return project.crs()
    extent = source.sourceExtent()
    to_wgs84 = QgsCoordinateTransform(crs, QgsCoordinateReferenceSystem("EPSG:4326"),
                                      context.transformContext())
    centre = to_wgs84.transform(extent.center())
    zone = min(60, max(1, int((centre.x() + 180.0) // 6.0) + 1))
    return QgsCoordinateReferenceSystem(f"EPSG:{(32600 if centre.y() >= 0 else 32700) + zone}")


def _raw(value):
    """A field value for the field-data conventions: None for NULL, numbers and text as is."""
    if value is None or value == NULL:
        return None
    if isinstance(value, (int, float, str)):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def read_points(source, fields, target_crs, context, feedback=None, *, report_missing=True,
                raw=False, qualifiers=None):
    """Coordinates (in ``target_crs``) and values of ``fields`` for the points of ``source``.

    ``source`` is a ``QgsFeatureSource`` (``parameterAsSource``).

    NULL or non-numeric values become NaN (counted in the messages when
    ``report_missing``; :func:`geochem_fusion.core.samples.check_samples`
    reports them otherwise); multipoints use their first part.  With ``raw``
    the values are kept as written (numbers, text such as ``"<5"``, None for
    NULL) for :func:`geochem_fusion.core.samples.parse_values`, and the
    qualifier columns named in ``qualifiers`` (``{field: qualifier field}``)
    are read too.  Returns ``(x, y, {field: values}, messages)``, plus
    ``{field: qualifiers}`` with ``raw``.
    """
    qualifiers = {f: q for f, q in (qualifiers or {}).items() if q}
    if source is None:
        raise ValueError("no sample layer given")
    name = source.sourceName()
    crs = source.sourceCrs()
    if QgsWkbTypes.geometryType(source.wkbType()) != QgsWkbTypes.GeometryType.PointGeometry:
        raise ValueError(f"Layer '{name}' must contain points (samples), not lines or polygons")
    if not crs.isValid():
        raise ValueError(
            f"Layer '{name}' has no coordinate reference system; set it in the layer "
            "properties (Source > Assigned Coordinate Reference System)."
        )
    names = source.fields().names()
    for f in fields:
        if f not in names:
            raise ValueError(f"Layer '{name}' has no field '{f}' (fields: {', '.join(names)})")
    messages = []
    transform = None
    if crs != target_crs:
        transform = QgsCoordinateTransform(crs, target_crs, context.transformContext())
        messages.append(f"Samples reprojected from {crs.authid()} to {target_crs.authid()}.")
    xs, ys, vals = [], [], {f: [] for f in fields}
    marks = {f: [] for f in qualifiers}
    bad = {f: 0 for f in fields}
    no_geometry = not_transformed = 0
    request = QgsFeatureRequest().setSubsetOfAttributes(
        list(fields) + list(qualifiers.values()), source.fields())
    for feat in source.getFeatures(request):
        if feedback is not None and feedback.isCanceled():
            break
        geom = feat.geometry()
        if geom is None or geom.isEmpty():
            no_geometry += 1
            continue
        if transform is not None:
            try:
                geom.transform(transform)
            except QgsCsException:
                not_transformed += 1
                continue
        pt = geom.vertexAt(0)
        xs.append(pt.x())
        ys.append(pt.y())
        for f, q in qualifiers.items():
            marks[f].append(_raw(feat[q]))
        for f in fields:
            v = feat[f]
            if raw:
                vals[f].append(_raw(v))
                continue
            try:
                v = float(v)
            except (TypeError, ValueError):
                v = math.nan
            if not math.isfinite(v):
                bad[f] += 1
                v = math.nan
            vals[f].append(v)
    if not_transformed:
        messages.append(
            f"{not_transformed} samples of '{name}' could not be reprojected from {crs.authid()} to "
            f"{target_crs.authid()} (coordinates outside that CRS's area: typing errors?) and "
            "are left out.")
    if no_geometry:
        messages.append(f"{no_geometry} features of '{name}' have no geometry and are left out.")
    for f, n in bad.items():
        if n and report_missing:
            messages.append(f"{n} samples have no numeric value in '{f}' and are ignored for it.")
    if raw:
        return (np.asarray(xs, float), np.asarray(ys, float),
                {f: np.asarray(v, dtype=object) for f, v in vals.items()}, messages,
                {f: np.asarray(m, dtype=object) for f, m in marks.items()})
    return (np.asarray(xs, float), np.asarray(ys, float),
            {f: np.asarray(v, float) for f, v in vals.items()}, messages)
