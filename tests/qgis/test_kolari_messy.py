"""Issue 12 on real data: Kolari till geochemistry (GTK, 1112 samples) and the airborne
radiometrics, made messy at test time as a user's files are (nothing is copied into the repo).

Each variant is built in ``tmp_path`` from ``../shared/data/kolari``; the test skips cleanly
when the data is absent.
"""

import html

import numpy as np
import pytest
from osgeo import gdal, ogr
from qgis.core import QgsProcessingException

from .test_reliability import Log

gdal.UseExceptions()
ogr.UseExceptions()

GPKG = "vectors/IOCG_CLB_Till_Geochem_reg_511p.gpkg"
BANDS = ("IOCG_Gm_Rd_K__100m.tif", "IOCG_Gm_Rd_Th_eq__100m.tif", "IOCG_Gm_Rd_U_eq__100m.tif")
CU = "Cu_ppm_511"


@pytest.fixture(scope="module")
def kolari(shared_data):
    folder = shared_data / "kolari"
    if not (folder / GPKG).is_file():
        pytest.skip("Kolari data not found")
    return folder


@pytest.fixture(scope="module")
def messy(kolari, tmp_path_factory):
    """The variants: float32 grids with nodata -1e32 stacked by a -separate VRT, the same stack
    as a GeoTIFF, the east half of it, one with a 25 km hole, and sample tables with codes."""
    tmp = tmp_path_factory.mktemp("kolari")
    grids = []
    for name in BANDS:  # -999999 -> -1e32 (not a float32 number: stored as float32(-1e32))
        out = str(tmp / name.replace(".tif", "_f32.tif"))
        ds = gdal.Translate(out, str(kolari / name), outputType=gdal.GDT_Float32)
        band = ds.GetRasterBand(1)
        values = band.ReadAsArray()
        values[values == -999999] = np.float32(-1e32)
        band.WriteArray(values)
        band.SetNoDataValue(-1e32)
        ds = band = None
        grids.append(out)
    vrt = str(tmp / "radiometrics.vrt")
    gdal.BuildVRT(vrt, grids, separate=True)
    original = str(tmp / "original.vrt")  # the GTK grids as delivered (nodata -999999, exact)
    gdal.BuildVRT(original, [str(kolari / name) for name in BANDS], separate=True)
    tif = str(tmp / "radiometrics.tif")
    gdal.Translate(tif, vrt)
    ds = gdal.Open(tif)
    gt, cols, rows = ds.GetGeoTransform(), ds.RasterXSize, ds.RasterYSize
    ds = None
    x_mid = gt[0] + gt[1] * cols / 2
    east = str(tmp / "east.tif")
    gdal.Translate(east, tif, projWin=[x_mid, gt[3], gt[0] + gt[1] * cols, gt[3] + gt[5] * rows])
    holed = str(tmp / "holed.tif")
    gdal.Translate(holed, tif)
    ds = gdal.Open(holed, gdal.GA_Update)
    r0, c0 = rows // 2 - 125, cols // 2 - 125  # 250 x 250 cells of 100 m: 25 x 25 km
    for b in range(1, ds.RasterCount + 1):
        band = ds.GetRasterBand(b)
        block = band.ReadAsArray(c0, r0, 250, 250)
        block[:] = np.float32(-1e32)
        band.WriteArray(block, c0, r0)
    ds = None
    return {"vrt": vrt, "tif": tif, "east": east, "holed": holed, "tmp": tmp,
            "original": original}


def copy_samples(kolari, path, edit=None):
    """A copy of the till samples (``edit(feature, i)`` may change a feature)."""
    src = ogr.Open(str(kolari / GPKG))
    layer = src.GetLayer(0)
    out = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    copy = out.CopyLayer(layer, "samples")
    if edit is not None:
        for i, feature in enumerate(list(copy)):
            if edit(feature, i):
                copy.SetFeature(feature)
    out = None
    return f"{path}|layername=samples"


def read(path):
    ds = gdal.Open(path)
    band = ds.GetRasterBand(1)
    arr = band.ReadAsArray().astype(float)
    arr[arr == band.GetNoDataValue()] = np.nan
    return arr


def fuse(run_alg, samples, image, out, feedback=None, **extra):
    return run_alg("fusegeochemistry", {"SAMPLES": samples, "FIELD": [CU], "IMAGE": image,
                                        "OUTPUT": out, **extra}, feedback=feedback)


def test_vrt_of_float32_grids_reads_as_the_original_grids(run_alg, kolari, messy):
    """Issue 12: ~98k nodata pixels per band entered the fits as data; colour bars from -1e32."""
    from geochem_fusion.algorithms import raster_io

    nodata = np.isnan(raster_io.read_raster(messy["vrt"]).data).sum(axis=(1, 2))
    for name, n in zip(BANDS, nodata):
        ds = gdal.Open(str(kolari / name))
        assert n == (ds.GetRasterBand(1).ReadAsArray() == -999999).sum() > 90_000
    samples = copy_samples(kolari, messy["tmp"] / "plain.gpkg")
    a = read(fuse(run_alg, samples, messy["vrt"], str(messy["tmp"] / "vrt_cu.tif"))["OUTPUT"])
    b = read(fuse(run_alg, samples, messy["original"], str(messy["tmp"] / "orig_cu.tif"))["OUTPUT"])
    np.testing.assert_allclose(a, b, rtol=1e-5, equal_nan=True)
    assert np.nanmin(a) > -1e3 and np.nanmax(a) < 1e4  # ppm, not -1e32


def test_missing_codes_in_the_real_table(run_alg, kolari, messy):
    """Issue 12: -9999 with LOG off was kriged (fused Cu minimum -1198 ppm)."""
    def code(feature, i):
        if i % 50 == 0:
            feature.SetField(CU, -9999.0)
            return True
        return False

    samples = copy_samples(kolari, messy["tmp"] / "codes.gpkg", code)
    log = Log()
    out = fuse(run_alg, samples, messy["tif"], str(messy["tmp"] / "codes_cu.tif"), log)
    assert log.warned(f"23 samples of {CU} hold a missing-value code (-9999 (23 samples))")
    assert np.nanmin(read(out["OUTPUT"])) >= 0


def test_real_qualifier_column_refused_then_replaced(run_alg, kolari, messy):
    """GTK's Th has 19 '<' (value 0: no limit given) and 153 '!' values."""
    samples = copy_samples(kolari, messy["tmp"] / "th.gpkg")
    params = {"SAMPLES": samples, "FIELD": "Th_ppm_511", "CELL_SIZE": 1000,
              "OUTPUT": str(messy["tmp"] / "th.tif")}
    with pytest.raises(QgsProcessingException, match=r"19 samples of Th_ppm_511 are below "
                                                     r"detection.*'Below detection'"):
        run_alg("krigesamples", params)
    log = Log()
    run_alg("krigesamples", {**params, "BELOW_DETECTION": 2}, feedback=log)
    assert log.warned("19 of them give no detection limit")
    assert log.warned("153 samples of Th_ppm_511 carry the qualifier '!'")


def test_near_duplicates_in_the_real_table(run_alg, kolari, messy):
    """Issue 12: 10 pairs 0.5 m apart: range 12.7 km -> 604 m, maximum 183 -> 391 ppm."""
    path = messy["tmp"] / "dups.gpkg"
    samples = copy_samples(kolari, path)
    ds = ogr.Open(str(path), 1)
    layer = ds.GetLayer(0)
    features = [layer.GetFeature(fid) for fid in range(1, 11)]
    for feature in features:
        twin = feature.Clone()
        point = twin.GetGeometryRef()
        point.SetPoint_2D(0, point.GetX() + 0.5, point.GetY())
        twin.SetField(CU, feature.GetField(CU) * 1.05)  # a repeat analysis
        twin.SetFID(-1)
        layer.CreateFeature(twin)
    ds = None
    log = Log()
    run_alg("krigesamples", {"SAMPLES": samples, "FIELD": CU, "CELL_SIZE": 1000,
                             "OUTPUT": str(messy["tmp"] / "dups.tif")}, feedback=log)
    assert log.warned("10 groups of 20 samples closer to each other than")
    ranges = [i for i in log.infos if i.startswith("Variogram:")]
    assert ranges and "'range'" in ranges[0]
    value = float(ranges[0].split("'range': ")[1].split(",")[0].rstrip("}"))
    assert value > 2000  # kilometres, as without the duplicates, not hundreds of metres


def test_east_half_image_counts_the_samples_outside(run_alg, kolari, messy):
    """Issue 12: an image covering the east half dropped 45 % of the samples silently."""
    samples = copy_samples(kolari, messy["tmp"] / "plain2.gpkg")
    log = Log()
    fuse(run_alg, samples, messy["east"], str(messy["tmp"] / "east_cu.tif"), log)
    (warning,) = log.warned("lie outside the image")
    share = float(warning.split("(")[1].split(" %")[0])
    assert 30 < share < 70


def test_hole_in_the_image_falls_back_to_kriging(run_alg, kolari, messy):
    """Issue 12: a 25 x 25 km nodata hole blanked the default fusion there (82.5 % -> 71.3 %
    valid) without a warning, although the result there was kriging alone."""
    samples = copy_samples(kolari, messy["tmp"] / "plain3.gpkg")
    whole = read(fuse(run_alg, samples, messy["tif"], str(messy["tmp"] / "whole_cu.tif"))["OUTPUT"])
    log = Log()
    report = messy["tmp"] / "holed.html"
    holed = read(fuse(run_alg, samples, messy["holed"], str(messy["tmp"] / "holed_cu.tif"), log,
                      OUTPUT_REPORT=str(report))["OUTPUT"])
    assert np.isfinite(holed).mean() == pytest.approx(np.isfinite(whole).mean(), abs=0.002)
    (warning,) = log.warned("have no image data but lie within reach of the samples")
    text = report.read_text(encoding="utf-8")
    assert "kriged estimate" in warning and warning in text
    (coverage,) = log.warned("fall on its nodata")  # the samples in the hole, counted
    assert html.escape(coverage) in text
