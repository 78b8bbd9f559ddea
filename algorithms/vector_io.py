"""Reading sample points from vector layers (QGIS), kept out of ``core``."""

import math

import numpy as np
from qgis.core import (
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


def read_points(source, fields, target_crs, context, feedback=None, *, report_missing=True):
    """Coordinates (in ``target_crs``) and values of ``fields`` for the points of ``source``.

    ``source`` is a ``QgsFeatureSource`` (``parameterAsSource``).

    NULL or non-numeric values become NaN (counted in the messages when
    ``report_missing``; :func:`geochem_fusion.core.samples.check_samples`
    reports them otherwise); multipoints use their first part.
    Returns ``(x, y, {field: values}, messages)``.
    """
    if source is None:
        raise ValueError("no sample layer given")
    name = source.sourceName()
    crs = source.sourceCrs()
    if QgsWkbTypes.geometryType(source.wkbType()) != QgsWkbTypes.PointGeometry:
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
    bad = {f: 0 for f in fields}
    no_geometry = not_transformed = 0
    request = QgsFeatureRequest().setSubsetOfAttributes(fields, source.fields())
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
        for f in fields:
            v = feat[f]
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
    return (np.asarray(xs, float), np.asarray(ys, float),
            {f: np.asarray(v, float) for f, v in vals.items()}, messages)
