"""Reliability (issue 8): every bad input gets a clear answer, nothing half-written, nothing lost.

Each test runs an algorithm through ``processing.run`` on small synthetic data and checks
the message the user sees (the exception, or a warning line of the log) and that nothing
is left at the output path. ``docs/reliability.md`` lists the cases with these tests.
"""

import os
import time

import numpy as np
import pytest
from osgeo import gdal, ogr
from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsRasterLayer,
)

from geochem_fusion.algorithms import raster_io


class Log(QgsProcessingFeedback):
    """A feedback that keeps the log lines; optionally presses Cancel at the first progress."""

    def __init__(self, cancel_at_first_progress=False, cancel_above=None):
        super().__init__()
        self.infos, self.warnings = [], []
        self.cancel_above = 0.0 if cancel_at_first_progress else cancel_above
        if self.cancel_above is not None:
            self.progressChanged.connect(self._press_cancel)

    def _press_cancel(self, progress):
        if progress > self.cancel_above:
            self.cancel()

    def pushInfo(self, info):
        self.infos.append(info)
        super().pushInfo(info)

    def pushWarning(self, warning):
        self.warnings.append(warning)
        super().pushWarning(warning)

    def warned(self, text):
        return [w for w in self.warnings if text in w]


def scattered(n, *, x0=300_000.0, y0=7_000_000.0, size=1000.0, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, size, (n, 2)) + [x0, y0]


def over_image(n, seed=0):
    """Sites over the ``image`` fixture (x 300000-300500, y 6999600-7000000)."""
    return scattered(n, y0=6_999_600.0, size=400.0, seed=seed)


def smooth_values(xy, seed=0):
    """Positive, spatially smooth concentrations (ppm) with a little noise."""
    rng = np.random.default_rng(seed)
    x, y = (xy[:, 0] - xy[:, 0].min()) / 300, (xy[:, 1] - xy[:, 1].min()) / 300
    return 50 + 20 * np.sin(x) * np.cos(y) + rng.normal(0, 2, len(xy))


def files_in(folder):
    """Every file in ``folder`` (outputs, temporary ``*.partial*`` files, side-cars)."""
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def outputs(folder):
    """The files in ``folder`` but GDAL's statistics side-cars (``.aux.xml``)."""
    return [name for name in files_in(folder) if not name.endswith(".aux.xml")]


@pytest.fixture
def out_dir(tmp_path):
    """An empty folder for outputs only (inputs are written beside it)."""
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


@pytest.fixture
def image(make_raster, stack):
    """A 3-band 40 x 50 image of 10 m pixels (UTM 19S) with a nodata hole."""
    return make_raster("image.tif", stack(3, 40, 50), nodata=np.nan,
                       descriptions=["B4", "B8", "B11"])


@pytest.fixture
def samples(make_points):
    """40 samples over the image (400 m x 500 m) with smooth Cu values."""
    xy = over_image(40)
    return make_points("samples.gpkg", xy, {"Cu": smooth_values(xy)})


def krige(run_alg, samples, out_dir, feedback=None, **parameters):
    return run_alg("krigesamples", {"SAMPLES": samples, "FIELD": "Cu", "VARIOGRAM": 0,
                                    "OUTPUT": str(out_dir / "cu.tif"), **parameters},
                   feedback=feedback)


def check_parameters(alg_id, parameters):
    """``checkParameterValues`` of an algorithm: refused before anything runs."""
    from qgis.core import QgsApplication

    alg = QgsApplication.processingRegistry().createAlgorithmById(f"geochemfusion:{alg_id}")
    return alg.checkParameterValues(parameters, QgsProcessingContext())


# ---------------------------------------------------------------------------
# CRS
# ---------------------------------------------------------------------------
def test_samples_in_another_crs_are_reprojected_and_logged(run_alg, make_points, image, out_dir,
                                                           geochem_provider):
    from osgeo import osr
    from qgis.core import QgsCoordinateReferenceSystem, QgsVectorLayer

    from geochem_fusion.algorithms.vector_io import read_points

    xy = over_image(40)
    # the same sites in WGS 84 (lon, lat)
    src, dst = osr.SpatialReference(), osr.SpatialReference()
    src.ImportFromEPSG(32719)
    dst.ImportFromEPSG(4326)
    dst.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    src.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    to_wgs84 = osr.CoordinateTransformation(src, dst)
    lonlat = np.array([to_wgs84.TransformPoint(x, y)[:2] for x, y in xy])
    source = make_points("wgs84.gpkg", lonlat, {"Cu": smooth_values(xy)}, epsg=4326)
    layer = QgsVectorLayer(source, "wgs84", "ogr")
    x, y, _, messages = read_points(layer, ["Cu"], QgsCoordinateReferenceSystem("EPSG:32719"),
                                    QgsProcessingContext())
    assert messages == ["Samples reprojected from EPSG:4326 to EPSG:32719."]
    np.testing.assert_allclose(np.column_stack([x, y]), xy, atol=0.01)  # 1 cm: PROJ round trip

    log = Log()
    run_alg("fusegeochemistry", {"SAMPLES": source, "FIELD": ["Cu"], "IMAGE": image,
                                 "OUTPUT": str(out_dir / "fused.tif")}, feedback=log)
    assert "Samples reprojected from EPSG:4326 to EPSG:32719." in log.infos
    assert outputs(out_dir) == ["fused.tif"]


def test_geochemical_raster_in_another_crs_is_warped_and_logged(run_alg, image, make_raster, stack,
                                                               out_dir, read_raster):
    from osgeo import osr

    utm, wgs84 = osr.SpatialReference(), osr.SpatialReference()
    utm.ImportFromEPSG(32719)
    wgs84.ImportFromEPSG(4326)
    for srs in utm, wgs84:
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    corners = [osr.CoordinateTransformation(utm, wgs84).TransformPoint(x, y)[:2]
               for x in (300_000.0, 300_500.0) for y in (6_999_600.0, 7_000_000.0)]
    lon, lat = np.array(corners).T
    cell = 0.0004  # degrees, about 40 m
    cols = int(np.ceil((lon.max() - lon.min()) / cell)) + 4
    rows = int(np.ceil((lat.max() - lat.min()) / cell)) + 4
    geo = make_raster("geo_wgs84.tif", 50 + stack(1, rows, cols, hole=False)[0],
                      x_min=lon.min() - 2 * cell, y_max=lat.max() + 2 * cell, cell=cell,
                      epsg=4326, descriptions=["Cu kriged"])
    log = Log()
    result = run_alg("regressionfusion", {"GEOCHEM": geo, "FEATURES": image, "LEVELS": 2,
                                          "OUTPUT": str(out_dir / "fused.tif")}, feedback=log)
    assert "Warping the geochemical layer from EPSG:4326 to EPSG:32719." in log.infos
    assert np.isfinite(read_raster(result["OUTPUT"]).data).mean() > 0.8  # all but the hole


def write_points_without_crs(path, xy, values):
    """A shapefile without its .prj: the layer has no CRS at all."""
    ds = ogr.GetDriverByName("ESRI Shapefile").CreateDataSource(str(path))
    lyr = ds.CreateLayer("nocrs", None, ogr.wkbPoint)
    lyr.CreateField(ogr.FieldDefn("Cu", ogr.OFTReal))
    for (x, y), v in zip(xy, values):
        feat = ogr.Feature(lyr.GetLayerDefn())
        feat.SetField("Cu", float(v))
        geom = ogr.Geometry(ogr.wkbPoint)
        geom.AddPoint_2D(float(x), float(y))
        feat.SetGeometry(geom)
        lyr.CreateFeature(feat)
    ds = None
    assert not os.path.exists(str(path).replace(".shp", ".prj"))
    return str(path)


def test_sample_layer_without_crs_is_named(run_alg, tmp_path, out_dir):
    xy = scattered(30)
    source = write_points_without_crs(tmp_path / "nocrs.shp", xy, smooth_values(xy))
    with pytest.raises(QgsProcessingException, match="'nocrs' has no coordinate reference system"):
        krige(run_alg, source, out_dir)
    assert files_in(out_dir) == []


def test_image_without_crs_is_named(run_alg, samples, stack, tmp_path, out_dir):
    path = tmp_path / "nocrs.tif"
    ds = gdal.GetDriverByName("GTiff").Create(str(path), 50, 40, 3, gdal.GDT_Float32)
    ds.SetGeoTransform((300_000.0, 10.0, 0.0, 7_000_400.0, 0.0, -10.0))
    for i, band in enumerate(stack(3, 40, 50, hole=False)):
        ds.GetRasterBand(i + 1).WriteArray(band)
    ds = None
    with pytest.raises(QgsProcessingException,
                       match="Image 'nocrs' has no coordinate reference system"):
        run_alg("fusegeochemistry", {"SAMPLES": samples, "FIELD": ["Cu"], "IMAGE": str(path),
                                     "OUTPUT": str(out_dir / "fused.tif")})
    assert files_in(out_dir) == []


@pytest.fixture
def wgs84_image(make_raster, stack):
    return make_raster("wgs84.tif", stack(2, 30, 40), x_min=-70.0, y_max=-42.0, cell=0.001,
                       epsg=4326, nodata=np.nan)


def test_geographic_raster_automatic_levels_refused(geochem_provider, wgs84_image, out_dir):
    ok, message = check_parameters("laplaciandecomposition", {
        "INPUT": wgs84_image, "LEVELS": 0, "SPACING": 500.0,
        "OUTPUT_LOW": str(out_dir / "low.tif"), "OUTPUT_HIGH": str(out_dir / "high.tif")})
    assert not ok
    assert "geographic CRS (EPSG:4326, degrees)" in message and "Reproject" in message


def test_geographic_raster_explicit_levels_accepted(run_alg, wgs84_image, out_dir):
    """Levels given in pixels need no metres: the decomposition runs in any CRS."""
    result = run_alg("laplaciandecomposition", {
        "INPUT": wgs84_image, "LEVELS": 2, "OUTPUT_LOW": str(out_dir / "low.tif"),
        "OUTPUT_HIGH": str(out_dir / "high.tif")})
    assert os.path.exists(result["OUTPUT_LOW"])


def test_geographic_features_automatic_levels_refused(geochem_provider, wgs84_image, out_dir):
    ok, message = check_parameters("regressionfusion", {
        "GEOCHEM": wgs84_image, "FEATURES": wgs84_image, "LEVELS": 0,
        "OUTPUT": str(out_dir / "fused.tif")})
    assert not ok
    assert "geographic CRS (EPSG:4326, degrees)" in message


# ---------------------------------------------------------------------------
# extent
# ---------------------------------------------------------------------------
def test_kriging_extent_away_from_the_samples(run_alg, samples, out_dir):
    with pytest.raises(QgsProcessingException,
                       match="no sample falls inside the kriging extent"):
        krige(run_alg, samples, out_dir,
              EXTENT="400000,401000,7100000,7101000 [EPSG:32719]")
    assert files_in(out_dir) == []


def test_image_overlapping_the_samples_by_less_than_a_few_spacings(run_alg, make_points,
                                                                   make_raster, stack, out_dir):
    # a survey every 150 m over 3 km (jittered), and a 300 m x 300 m image inside it
    rng = np.random.default_rng(1)
    gx, gy = np.meshgrid(np.arange(21) * 150.0, np.arange(21) * 150.0)
    xy = np.column_stack([gx.ravel(), gy.ravel()]) + rng.uniform(-20, 20, (441, 2))
    xy += [299_000.0, 6_998_500.0]
    samples = make_points("wide.gpkg", xy, {"Cu": smooth_values(xy)})
    image = make_raster("small.tif", stack(3, 30, 30), nodata=np.nan)  # 300000-300300 m east
    log = Log()
    run_alg("fusegeochemistry", {"SAMPLES": samples, "FIELD": ["Cu"], "IMAGE": image,
                                 "OUTPUT": str(out_dir / "fused.tif")}, feedback=log)
    assert log.warned("less than 3 sample spacings")


@pytest.fixture
def one_pixel(make_raster):
    return make_raster("one.tif", np.ones((3, 1, 1)), nodata=np.nan)


def test_one_pixel_image_pyramid_refused_before_running(geochem_provider, one_pixel, out_dir):
    ok, message = check_parameters("laplaciandecomposition", {
        "INPUT": one_pixel, "LEVELS": 1, "OUTPUT_LOW": str(out_dir / "l.tif"),
        "OUTPUT_HIGH": str(out_dir / "h.tif")})
    assert not ok and "only 1 x 1 pixels" in message
    ok, message = check_parameters("regressionfusion", {
        "GEOCHEM": one_pixel, "FEATURES": one_pixel, "OUTPUT": str(out_dir / "f.tif")})
    assert not ok and "only 1 x 1 pixels" in message


@pytest.mark.parametrize("alg_id, parameters, message", [
    ("principalcomponents", {}, "PCA of 3 bands needs at least 4 pixels"),
    ("kmeansunits", {"N_CLUSTERS": 2}, "only 1 distinct value, and units need at least 2"),
])
def test_one_pixel_image_steps(run_alg, one_pixel, out_dir, alg_id, parameters, message):
    with pytest.raises(QgsProcessingException, match=message):
        run_alg(alg_id, {"INPUT": one_pixel, "OUTPUT": str(out_dir / "out.tif"), **parameters})
    assert files_in(out_dir) == []


def test_one_pixel_image_fusion_refused_before_running(geochem_provider, samples, one_pixel,
                                                       out_dir):
    ok, message = check_parameters("fusegeochemistry", {
        "SAMPLES": samples, "FIELD": ["Cu"], "IMAGE": one_pixel,
        "OUTPUT": str(out_dir / "fused.tif")})
    assert not ok and "only 1 x 1 pixels" in message


@pytest.mark.parametrize("alg_id, raster_key, extra", [
    ("laplaciandecomposition", "INPUT", {"OUTPUT_LOW": "low.tif", "OUTPUT_HIGH": "high.tif"}),
    ("regressionfusion", "FEATURES", {"OUTPUT": "fused.tif"}),
    pytest.param("fusegeochemistry", "IMAGE", {"OUTPUT": "fused.tif"}),
])
def test_pyramid_too_deep_refused_before_running(geochem_provider, image, samples, out_dir,
                                                 alg_id, raster_key, extra):
    parameters = {raster_key: image, "GEOCHEM": image, "SAMPLES": samples, "FIELD": ["Cu"],
                  "LEVELS": 6,
                  **{k: str(out_dir / v) for k, v in extra.items()}}
    ok, message = check_parameters(alg_id, parameters)
    assert not ok
    assert "6 pyramid levels are too many for the 50 x 40 pixels" in message
    assert "at most 5" in message  # ceil(40 / 2**5) = 2 cells, ceil(40 / 2**6) = 1


# ---------------------------------------------------------------------------
# samples (krigesamples uses core.samples.check_samples)
# ---------------------------------------------------------------------------
def test_too_few_samples_says_how_many(run_alg, make_points, out_dir):
    xy = scattered(12)
    values = smooth_values(xy)
    values[:5] = np.nan
    samples = make_points("few.gpkg", xy, {"Cu": values})
    with pytest.raises(QgsProcessingException, match="needs at least 10 samples.*got 7"):
        krige(run_alg, samples, out_dir)
    assert files_in(out_dir) == []


def test_duplicate_coordinates_merged_with_a_warning(run_alg, make_points, out_dir):
    xy = scattered(30)
    xy = np.vstack([xy, xy[:2]])  # two sites sampled twice
    samples = make_points("dup.gpkg", xy, {"Cu": smooth_values(xy)})
    log = Log()
    krige(run_alg, samples, out_dir, feedback=log)
    assert log.warned("2 locations hold 4 samples with identical coordinates")
    assert any("Kriging 30 samples" in i for i in log.infos)


def test_fusion_duplicate_coordinates_warned(run_alg, make_points, image, out_dir):
    """fusegeochemistry: the kriging's merge warning reaches the log (base.warnings_to_feedback)."""
    xy = over_image(40)
    xy = np.vstack([xy, xy[:3]])
    samples = make_points("dup.gpkg", xy, {"Cu": smooth_values(xy)})
    log = Log()
    run_alg("fusegeochemistry", {"SAMPLES": samples, "FIELD": ["Cu"], "IMAGE": image,
                                 "OUTPUT": str(out_dir / "fused.tif")}, feedback=log)
    assert log.warned("identical coordinates")


def test_null_and_non_numeric_values_left_out(run_alg, tmp_path, out_dir):
    xy = scattered(30)
    values = [str(v) for v in smooth_values(xy)]
    values[3], values[8] = None, "n.a."  # NULL and a text code in a text column
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(tmp_path / "text.gpkg"))
    from osgeo import osr

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32719)
    lyr = ds.CreateLayer("samples", srs, ogr.wkbPoint)
    lyr.CreateField(ogr.FieldDefn("Cu", ogr.OFTString))
    for (x, y), v in zip(xy, values):
        feat = ogr.Feature(lyr.GetLayerDefn())
        if v is not None:
            feat.SetField("Cu", v)
        geom = ogr.Geometry(ogr.wkbPoint)
        geom.AddPoint_2D(float(x), float(y))
        feat.SetGeometry(geom)
        lyr.CreateFeature(feat)
    ds = None
    log = Log()
    # the FIELD parameter accepts numeric fields only in the dialog; scripts can pass text ones
    krige(run_alg, f"{tmp_path}/text.gpkg|layername=samples", out_dir, feedback=log)
    assert log.warned("2 of 30 samples have no value for Cu")
    assert any("Kriging 28 samples" in i for i in log.infos)


@pytest.fixture
def with_codes(make_points):
    """30 samples of which three carry below-detection codes (-1, -1, -9999)."""
    xy = scattered(30)
    values = smooth_values(xy)
    values[[4, 9]] = -1.0
    values[17] = -9999.0
    return make_points("codes.gpkg", xy, {"Cu": values}), values


def test_below_detection_refused_by_default_with_the_codes(run_alg, with_codes, out_dir):
    samples, _ = with_codes
    with pytest.raises(QgsProcessingException,
                       match=r"2 samples of Cu are below detection \(-1 \(2 samples\)\) and "
                             r"would reach the log transform and the kriging.*'Below detection'"):
        krige(run_alg, samples, out_dir, LOG_TRANSFORM=True)
    assert files_in(out_dir) == []


def test_below_detection_replaced_by_half_the_smallest_value(run_alg, with_codes, out_dir,
                                                             read_raster):
    samples, values = with_codes
    log = Log()
    result = krige(run_alg, samples, out_dir, feedback=log, LOG_TRANSFORM=True, BELOW_DETECTION=1)
    half = values[values > 0].min() / 2
    assert log.warned(f"2 samples of Cu below detection (-1 (2 samples)) were "
                      f"replaced by {half:g}")
    assert log.warned("1 sample of Cu holds a missing-value code (-9999 (1 sample))")
    estimate = read_raster(result["OUTPUT"]).data
    # never a logged negative: the lognormal estimate is positive and of the data's magnitude
    assert np.nanmin(estimate) > 0 and np.nanmax(estimate) < 10 * values.max()


def test_fusion_below_detection_parameter(run_alg, make_points, image, out_dir):
    xy = over_image(40)
    values = smooth_values(xy)
    values[[4, 9]] = -1.0
    samples = make_points("codes.gpkg", xy, {"Cu": values})
    log = Log()
    run_alg("fusegeochemistry", {"SAMPLES": samples, "FIELD": ["Cu"], "IMAGE": image,
                                 "LOG_TRANSFORM": True, "BELOW_DETECTION": 1,
                                 "OUTPUT": str(out_dir / "fused.tif")}, feedback=log)
    assert log.warned("2 samples of Cu below detection")


def test_fusion_log_of_negative_values_refused(run_alg, make_points, image, out_dir):
    xy = over_image(40)
    values = smooth_values(xy)
    values[[4, 9]] = -1.0
    samples = make_points("codes.gpkg", xy, {"Cu": values})
    with pytest.raises(QgsProcessingException, match="2 samples of Cu are below detection"):
        run_alg("fusegeochemistry", {"SAMPLES": samples, "FIELD": ["Cu"], "IMAGE": image,
                                     "LOG_TRANSFORM": True, "OUTPUT": str(out_dir / "fused.tif")})
    assert files_in(out_dir) == []


def test_all_equal_values_refused(run_alg, make_points, out_dir):
    samples = make_points("flat.gpkg", scattered(20), {"Cu": np.full(20, 5.0)})
    with pytest.raises(QgsProcessingException, match="all 20 samples of Cu have the same value"):
        krige(run_alg, samples, out_dir)
    assert files_in(out_dir) == []


def test_extreme_outlier_reported(run_alg, make_points, out_dir):
    xy = scattered(40)
    values = smooth_values(xy)
    values[11] = 50_000.0  # ppm typed instead of ppb, or an extra zero or three
    samples = make_points("outlier.gpkg", xy, {"Cu": values})
    log = Log()
    krige(run_alg, samples, out_dir, feedback=log)
    report = log.warned("1 sample of Cu is an extreme outlier")
    assert len(report) == 1 and "50000 at (" in report[0]


def test_fusion_extreme_outlier_reported(run_alg, make_points, image, out_dir):
    xy = over_image(40)
    values = smooth_values(xy)
    values[11] = 50_000.0
    samples = make_points("outlier.gpkg", xy, {"Cu": values})
    log = Log()
    run_alg("fusegeochemistry", {"SAMPLES": samples, "FIELD": ["Cu"], "IMAGE": image,
                                 "OUTPUT": str(out_dir / "fused.tif")}, feedback=log)
    assert log.warned("is an extreme outlier")


# ---------------------------------------------------------------------------
# rasters
# ---------------------------------------------------------------------------
def test_all_nodata_band_named(run_alg, make_raster, stack, out_dir):
    data = stack(3, 24, 32)
    data[1] = np.nan
    src = make_raster("empty_band.tif", data, nodata=np.nan, descriptions=["B4", "B8", "B11"])
    with pytest.raises(QgsProcessingException, match=r"band 2 \('B8'\) is entirely nodata"):
        run_alg("principalcomponents", {"INPUT": src, "OUTPUT": str(out_dir / "pcs.tif")})
    assert files_in(out_dir) == []


def test_all_nodata_raster_refused(run_alg, make_raster, out_dir):
    src = make_raster("nodata.tif", np.full((2, 24, 32), -9999.0), nodata=-9999)
    with pytest.raises(QgsProcessingException, match="has no valid pixel"):
        run_alg("kmeansunits", {"INPUT": src, "OUTPUT": str(out_dir / "units.tif")})
    assert files_in(out_dir) == []


def test_constant_band_pca_runs_with_a_warning(run_alg, make_raster, stack, out_dir, read_raster):
    data = stack(3, 24, 32, hole=False)
    data[2] = 0.25
    src = make_raster("constant.tif", data, nodata=np.nan)
    log = Log()
    result = run_alg("principalcomponents", {"INPUT": src, "OUTPUT": str(out_dir / "pcs.tif"),
                                             "OUTPUT_TABLE": "TEMPORARY_OUTPUT"}, feedback=log)
    assert np.isfinite(read_raster(result["OUTPUT"]).data).all()  # no division by zero
    assert log.warned("are constant over the sampled pixels")


def test_constant_feature_regression_refused(run_alg, make_raster, stack, out_dir):
    features = stack(2, 40, 50, hole=False)
    features[1] = 0.25
    feats = make_raster("features.tif", features, nodata=np.nan)
    geo = make_raster("geo.tif", 50 + stack(1, 10, 13, hole=False)[0], cell=40.0,
                      descriptions=["Cu kriged"])
    with pytest.raises(QgsProcessingException, match=r"feature\(s\) \[1\].*constant"):
        run_alg("regressionfusion", {"GEOCHEM": geo, "FEATURES": feats, "LEVELS": 2,
                                     "OUTPUT": str(out_dir / "fused.tif")})
    assert files_in(out_dir) == []


def test_integer_inputs_do_not_overflow(run_alg, make_raster, out_dir, read_raster):
    """ASTER DN stored as UInt16: (4+6)/5 of 60000 and 60000 is 120000 / 1000, not a wrap."""
    data = np.full((9, 6, 8), 1000, dtype=np.uint16)
    data[3] = data[5] = 60_000  # bands 4 and 6
    src = make_raster("dn.tif", data, dtype=gdal.GDT_UInt16, nodata=0)
    result = run_alg("mineralindices", {"IMAGE": src, "SENSOR": 0,
                                        "OUTPUT": str(out_dir / "indices.tif")})
    out = read_raster(result["OUTPUT"])
    k = [i for i, d in enumerate(out.descriptions) if d.endswith("(4+6)/5")]
    assert len(k) == 1
    np.testing.assert_allclose(out.data[k[0]], 120.0, rtol=1e-6)  # float32 output


def test_wrong_band_count_for_the_sensor(run_alg, make_raster, stack, out_dir):
    src = make_raster("six.tif", stack(6, 12, 16), nodata=np.nan)  # no band names
    with pytest.raises(QgsProcessingException,
                       match=r"6 bands.*usual band order has 9 \(bands 1-9\) or 14.*Band map"):
        run_alg("mineralindices", {"IMAGE": src, "SENSOR": 0,
                                   "OUTPUT": str(out_dir / "indices.tif")})
    assert files_in(out_dir) == []


def test_band_map_beyond_the_band_count(run_alg, make_raster, stack, out_dir):
    src = make_raster("four.tif", stack(4, 12, 16), nodata=np.nan)
    with pytest.raises(QgsProcessingException,
                       match=r"'B11=5': the image has 4 bands, numbered 1 to 4"):
        run_alg("mineralindices", {"IMAGE": src, "SENSOR": 1, "BAND_MAP": "B11=5,B12=6",
                                   "OUTPUT": str(out_dir / "indices.tif")})


def test_web_service_layer_refused(run_alg, out_dir):
    layer = QgsRasterLayer("type=xyz&url=http://127.0.0.1:9/%7Bz%7D/%7Bx%7D/%7By%7D.png"
                           "&zmin=0&zmax=19", "Tiles", "wms")
    assert layer.isValid(), "an XYZ layer is valid offline (its tiles are fetched on demand)"
    with pytest.raises(QgsProcessingException, match="'Tiles' comes from the 'wms' provider"):
        run_alg("principalcomponents", {"INPUT": layer, "OUTPUT": str(out_dir / "pcs.tif")})
    assert files_in(out_dir) == []


# ---------------------------------------------------------------------------
# clusters
# ---------------------------------------------------------------------------
def test_more_clusters_than_distinct_pixels(run_alg, make_raster, out_dir):
    data = np.zeros((2, 10, 10))
    data[:, :5] = 1.0  # two distinct pixel vectors
    src = make_raster("two.tif", data, nodata=np.nan)
    with pytest.raises(QgsProcessingException,
                       match="only 2 distinct values; lower N_CLUSTERS to at most 2"):
        run_alg("kmeansunits", {"INPUT": src, "N_CLUSTERS": 5,
                                "OUTPUT": str(out_dir / "units.tif")})
    assert files_in(out_dir) == []


def test_small_unit_reported_by_kmeans_and_by_the_local_fusion(run_alg, make_raster, stack,
                                                               out_dir):
    features = stack(2, 40, 50, hole=False)
    feats = make_raster("features.tif", features, nodata=np.nan)
    units = np.zeros((40, 50), dtype=np.int16)
    units[:, 25:] = 1
    units[:2, :3] = 2  # a unit of 6 pixels
    units_path = make_raster("units.tif", units, dtype=gdal.GDT_Int16, nodata=-1)
    geo = make_raster("geo.tif", 50 + stack(1, 10, 13, hole=False)[0], cell=40.0,
                      descriptions=["Cu kriged"])
    log = Log()
    run_alg("regressionfusion", {"GEOCHEM": geo, "FEATURES": feats, "LEVELS": 2,
                                 "REGRESSION": 1, "UNITS": units_path,
                                 "OUTPUT": str(out_dir / "fused.tif")}, feedback=log)
    assert log.warned("unit 2: only 6 valid pixels")
    assert log.warned("using the global fit instead")


def test_kmeans_small_unit_warned(run_alg, make_raster, out_dir):
    data = np.zeros((1, 20, 20))
    data[0, :10] = 1.0
    data[0, 0, :3] = 50.0  # three far pixels: K-means gives them their own unit
    src = make_raster("img.tif", data, nodata=np.nan)
    log = Log()
    run_alg("kmeansunits", {"INPUT": src, "N_CLUSTERS": 3, "OUTPUT": str(out_dir / "units.tif")},
            feedback=log)
    assert log.warned("holds only 3 of the 400 pixels")


# ---------------------------------------------------------------------------
# outputs
# ---------------------------------------------------------------------------
class DiskFull:
    """GDAL's GTiff driver, whose datasets fail to flush as on a full disk.

    The temporary file exists and holds data when the failure happens, as on a
    real full disk; the GDAL message is the one libtiff gives for ENOSPC.
    """

    def __init__(self, real_get_driver):
        self.real_get_driver = real_get_driver
        self.partial = []

    def get_driver(self, name):
        return _FailingDriver(self.real_get_driver(name), self.partial)


class _FailingDriver:
    def __init__(self, driver, partial):
        self.driver, self.partial = driver, partial

    def Create(self, path, *args, **kwargs):
        return _FailingDataset(self.driver.Create(path, *args, **kwargs), path, self.partial)


class _FailingDataset:
    def __init__(self, ds, path, partial):
        self._ds, self._path, self._partial = ds, path, partial

    def __getattr__(self, name):
        return getattr(self._ds, name)

    def FlushCache(self):
        self._ds.FlushCache()
        self._partial.append((self._path, os.path.getsize(self._path)))
        raise RuntimeError(f"{self._path}: _tiffWriteProc:No space left on device")


@pytest.fixture
def disk_full(monkeypatch):
    full = DiskFull(gdal.GetDriverByName)
    monkeypatch.setattr(raster_io.gdal, "GetDriverByName", full.get_driver)
    return full


def test_disk_full_leaves_nothing_and_says_where(run_alg, samples, out_dir, disk_full):
    target = out_dir / "cu.tif"
    with pytest.raises(QgsProcessingException,
                       match=rf"The disk is full: writing '{target}' failed in '{out_dir}'"):
        krige(run_alg, samples, out_dir)
    assert disk_full.partial and disk_full.partial[0][1] > 0  # a partial file did exist
    assert files_in(out_dir) == []  # ... and is gone, with nothing at the target


def test_disk_full_while_writing_window_by_window(out_dir, disk_full):
    from geochem_fusion.core.grid import Grid

    grid = Grid(0.0, 100.0, 1.0, 1.0, 100, 100)
    with pytest.raises(ValueError, match="The disk is full"):
        with raster_io.WindowedWriter(str(out_dir / "big.tif"), grid, "", 1) as out:
            for row0, n in raster_io.row_blocks(100, 10):
                out.write(0, row0, np.ones((n, 100)))
    assert files_in(out_dir) == []


def test_existing_output_is_replaced(run_alg, samples, out_dir, read_raster):
    target = out_dir / "cu.tif"
    raster_io.write_raster(str(target), np.zeros((3, 4)), raster_io.Grid(0, 4, 1, 1, 4, 3), "",
                           descriptions=["old"])
    krige(run_alg, samples, out_dir)
    assert read_raster(target).descriptions == ["Cu kriged"]
    assert outputs(out_dir) == ["cu.tif"]


def test_existing_output_kept_when_the_run_fails(run_alg, samples, out_dir, disk_full):
    target = out_dir / "cu.tif"
    target.write_bytes(b"previous result")
    with pytest.raises(QgsProcessingException, match="The disk is full"):
        krige(run_alg, samples, out_dir)
    assert target.read_bytes() == b"previous result"
    assert files_in(out_dir) == ["cu.tif"]


# ---------------------------------------------------------------------------
# cancel: every long algorithm stops at its next step and leaves no output
# ---------------------------------------------------------------------------
CANCEL_CASES = {
    "krigesamples": lambda d: {"SAMPLES": d["samples"], "FIELD": "Cu", "OUTPUT": "cu.tif",
                               "OUTPUT_VARIANCE": "var.tif"},
    "principalcomponents": lambda d: {"INPUT": d["image"], "OUTPUT": "pcs.tif"},
    "kmeansunits": lambda d: {"INPUT": d["image"], "N_CLUSTERS": 3, "OUTPUT": "units.tif"},
    "laplaciandecomposition": lambda d: {"INPUT": d["image"], "LEVELS": 2, "OUTPUT_LOW": "l.tif",
                                         "OUTPUT_HIGH": "h.tif"},
    "regressionfusion": lambda d: {"GEOCHEM": d["geo"], "FEATURES": d["image"], "LEVELS": 2,
                                   "OUTPUT": "fused.tif"},
    "mineralindices": lambda d: {"IMAGE": d["image"], "SENSOR": 1, "BAND_MAP": "B4=1,B8=2,B11=3",
                                 "OUTPUT": "indices.tif"},
}


@pytest.mark.parametrize("alg_id", sorted(CANCEL_CASES))
def test_cancel_stops_and_leaves_no_output(run_alg, alg_id, image, samples, make_raster, stack,
                                           out_dir):
    geo = make_raster("geo.tif", 50 + stack(1, 10, 13, hole=False)[0], cell=40.0,
                      descriptions=["Cu kriged"])
    parameters = CANCEL_CASES[alg_id]({"image": image, "samples": samples, "geo": geo})
    parameters = {k: str(out_dir / v) if str(v).endswith(".tif") else v
                  for k, v in parameters.items()}
    log = Log(cancel_at_first_progress=True)
    start = time.monotonic()
    with pytest.raises(QgsProcessingException, match="Canceled by the user; no output was written"):
        run_alg(alg_id, parameters, feedback=log)
    assert time.monotonic() - start < 10  # stopped at the next step, not at the end
    assert log.isCanceled()
    assert files_in(out_dir) == []


def test_cancel_fusion_leaves_no_output(run_alg, image, samples, out_dir):
    log = Log(cancel_at_first_progress=True)
    with pytest.raises(QgsProcessingException, match="Canceled by the user"):
        run_alg("fusegeochemistry", {"SAMPLES": samples, "FIELD": ["Cu"], "IMAGE": image,
                                     "OUTPUT": str(out_dir / "fused.tif")}, feedback=log)
    assert files_in(out_dir) == []


@pytest.mark.parametrize("mode", [0, 1])  # paper, coherent
def test_cancel_while_blocks_are_written_leaves_no_output(run_alg, image, samples, out_dir, mode,
                                                          monkeypatch):
    # past 60 % the pyramid modes are in their last pass: the fused layer is being written
    from geochem_fusion.core import pyramid_scene

    monkeypatch.setattr(pyramid_scene, "block_rows_for", lambda ncols, n=1: 4)  # 10 blocks
    log = Log(cancel_above=60)
    with pytest.raises(QgsProcessingException, match="Canceled by the user"):
        run_alg("fusegeochemistry", {"SAMPLES": samples, "FIELD": ["Cu"], "IMAGE": image,
                                     "MODE": mode, "OUTPUT": str(out_dir / "fused.tif")},
                feedback=log)
    assert any("injecting image detail" in line for line in log.infos)
    assert files_in(out_dir) == []


# ---------------------------------------------------------------------------
# memory
# ---------------------------------------------------------------------------
def test_memory_error_becomes_an_actionable_message(run_alg, image, out_dir, monkeypatch):
    from geochem_fusion.core import pca

    def no_memory(self, stack):
        raise MemoryError("Unable to allocate 3.2 GiB for an array with shape (40000, 10980)")

    monkeypatch.setattr(pca.PCA, "fit", no_memory)
    with pytest.raises(QgsProcessingException,
                       match=r"Not enough memory \(Unable to allocate 3.2 GiB.*\)\. Clip the input"):
        run_alg("principalcomponents", {"INPUT": image, "OUTPUT": str(out_dir / "pcs.tif")})
    assert files_in(out_dir) == []


def test_raster_too_large_for_memory_refused_before_reading(run_alg, image, out_dir,
                                                            monkeypatch):
    monkeypatch.setattr(raster_io, "available_memory", lambda: 100_000)  # 100 kB
    with pytest.raises(QgsProcessingException,
                       match=r"raster 'image.tif' \(3 bands of 40 x 50 pixels\) needs about "
                             r"[\d.]+ kB of memory, but only 100.0 kB is available. Clip it"):
        # the pyramid checks the memory of its row block before reading it
        run_alg("laplaciandecomposition", {"INPUT": image, "LEVELS": 1,
                                           "OUTPUT_LOW": str(out_dir / "low.tif"),
                                           "OUTPUT_HIGH": str(out_dir / "high.tif")})
    assert files_in(out_dir) == []


def test_kriging_grid_too_large_for_memory_refused(run_alg, samples, out_dir):
    """A 1 cm cell over 400 m x 400 m: 1.6e9 cells, about 51 GB of working arrays."""
    with pytest.raises(QgsProcessingException,
                       match=r"needs about \d+\.\d GB of memory.*Use a larger cell size"):
        krige(run_alg, samples, out_dir, CELL_SIZE=0.01)
    assert files_in(out_dir) == []
