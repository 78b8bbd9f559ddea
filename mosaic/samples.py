"""Geochemical samples from any OGR source (GeoPackage, Shapefile, CSV with X/Y, …), without QGIS."""

from __future__ import annotations

import numpy as np
from osgeo import ogr, osr

ogr.UseExceptions()
osr.UseExceptions()


def read_points(source, fields, target_wkt, *, layer=None, qualifiers=True):
    """Point coordinates in ``target_wkt``, the ``fields`` as written and their qualifiers.

    Parameters
    ----------
    source : str
        Any OGR data source (a CSV needs ``X``/``Y`` or ``lon``/``lat`` columns that
        OGR recognizes, or a ``.csvt``/open options; a GeoPackage or Shapefile
        carries its CRS).
    fields : list of str
        Concentration fields. Values are returned as written (numbers, text such
        as ``"<5"``, None for NULL) for :func:`geochem_fusion.core.samples.check_sample_table`,
        which applies the field-data conventions.
    target_wkt : str
        The image CRS; points are transformed to it.
    qualifiers : bool
        Also read each field's qualifier column (``Cu_T`` holding ``"<"``) when
        there is one (:func:`geochem_fusion.core.samples.qualifier_field`).

    Returns ``(x, y, values, marks, notes)``: ``marks`` maps each field with a
    qualifier column to its values; features without a point geometry are left
    out and counted in ``notes``.
    """
    from ..core.samples import qualifier_field

    try:
        ds = ogr.Open(str(source))
    except RuntimeError as exc:
        raise ValueError(f"cannot open the samples {source!r}: {exc}") from exc
    if ds is None:
        raise ValueError(f"cannot open the samples {source!r}")
    lyr = ds.GetLayerByName(layer) if layer else ds.GetLayer(0)
    if lyr is None:
        raise ValueError(f"no layer {layer!r} in {source!r}")
    defn = lyr.GetLayerDefn()
    have = [defn.GetFieldDefn(i).GetName() for i in range(defn.GetFieldCount())]
    missing = [f for f in fields if f not in have]
    if missing:
        raise ValueError(f"field(s) {', '.join(missing)} not in {source!r}; its fields are: "
                         f"{', '.join(have)}")
    src = lyr.GetSpatialRef()
    if src is None:
        raise ValueError(f"the samples {source!r} have no CRS: give the layer a CRS (e.g. a .prj)")
    dst = osr.SpatialReference()
    dst.ImportFromWkt(target_wkt)
    for srs in (src, dst):
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    transform = None if src.IsSame(dst) else osr.CoordinateTransformation(src, dst)
    marks_of = {f: qualifier_field(f, have) for f in fields} if qualifiers else {}
    marks_of = {f: q for f, q in marks_of.items() if q}
    xs, ys, vals = [], [], {f: [] for f in fields}
    marks = {f: [] for f in marks_of}
    skipped = 0
    for feat in lyr:
        geom = feat.GetGeometryRef()
        if geom is None or geom.IsEmpty():
            skipped += 1
            continue
        if geom.GetGeometryType() not in (ogr.wkbPoint, ogr.wkbPoint25D, ogr.wkbPointM,
                                          ogr.wkbPointZM):
            skipped += 1
            continue
        x, y = geom.GetX(), geom.GetY()
        if transform is not None:
            x, y, _ = transform.TransformPoint(x, y)
        xs.append(x)
        ys.append(y)
        for f in fields:
            vals[f].append(feat.GetField(f))
        for f, q in marks_of.items():
            marks[f].append(feat.GetField(q))
    notes = [f"qualifier column of {f}: {q}" for f, q in marks_of.items()]
    if skipped:
        notes.append(f"{skipped} features without a point geometry were left out")
    if not xs:
        raise ValueError(f"no point in {source!r}")
    return (np.asarray(xs), np.asarray(ys),
            {f: np.asarray(v, dtype=object) for f, v in vals.items()},
            {f: np.asarray(v, dtype=object) for f, v in marks.items()}, notes)
