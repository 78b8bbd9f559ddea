"""Nodata read exactly (issue 12): every reader honours nodata in the band's own type and
GDAL's mask bands, so a VRT, a GeoTIFF and any other format of the same data read the same."""

import subprocess

import numpy as np
import pytest
from osgeo import gdal

from geochem_fusion.algorithms import raster_io

from .conftest import write_geotiff

gdal.UseExceptions()


HOLE = (slice(5, 15), slice(10, 30))


def float32_grid(rows=40, cols=50, *, seed=0, nodata=-1e32, hole=HOLE):
    rng = np.random.default_rng(seed)
    data = rng.normal(100.0, 10.0, size=(rows, cols)).astype(np.float32)
    data[hole] = np.float32(nodata)
    return data


def all_readers(path):
    """NaN masks of every reader of raster_io, band by band: (bands, rows, cols) each."""
    whole = raster_io.read_raster(path).data
    src = raster_io.open_blocks(path)
    rows, cols = src.grid.shape
    blocks = src.read(0, 0, rows, cols)  # full-width strips
    window = src.read(3, 4, rows - 6, cols - 8)  # a direct window
    preview = raster_io.read_preview(path).data
    return whole, blocks, window, preview


def test_float32_nodata_not_exact_in_float64(tmp_path):
    """-1e32 is not a float32: the band holds float32(-1e32) != -1e32 in float64."""
    assert np.float64(np.float32(-1e32)) != -1e32
    data = float32_grid()
    path = write_geotiff(tmp_path / "k.tif", data, nodata=-1e32)
    whole, blocks, window, preview = all_readers(path)
    expected = data == np.float32(-1e32)
    assert expected.sum() == 200
    np.testing.assert_array_equal(np.isnan(whole[0]), expected)
    np.testing.assert_array_equal(np.isnan(blocks[0]), expected)
    np.testing.assert_array_equal(np.isnan(window[0]), expected[3:-3, 4:-4])
    assert np.nanmin(preview) > 0  # no -1e32 left in what styles and checks see


def test_gdalbuildvrt_separate_of_float32_grids(tmp_path):
    """The issue's case: a -separate VRT of float32 grids with nodata -1e32."""
    paths = []
    for i in range(3):
        hole = (slice(2 + 3 * i, 12 + 3 * i), slice(0, 20))
        paths.append(write_geotiff(tmp_path / f"g{i}.tif", float32_grid(seed=i, hole=hole),
                                   nodata=-1e32))
    vrt = str(tmp_path / "stack.vrt")
    gdal.BuildVRT(vrt, paths, separate=True)
    tif = str(tmp_path / "stack.tif")
    gdal.Translate(tif, vrt)  # the same data as a GeoTIFF
    results = {}
    for name, path in (("vrt", vrt), ("tif", tif)):
        whole, blocks, window, _ = all_readers(path)
        for arr in (whole, blocks):
            assert np.isnan(arr).sum(axis=(1, 2)).tolist() == [200, 200, 200]
            assert np.nanmin(arr) > 0
        results[name] = whole
    np.testing.assert_array_equal(results["vrt"], results["tif"])


@pytest.mark.parametrize("options", [[], ["-srcnodata", "-1e32", "-vrtnodata", "-1e32"]])
def test_gdalbuildvrt_command_line(tmp_path, options):
    """Same with the command-line tool a user runs (skipped where it is not installed); with
    ``-vrtnodata -1e32`` the VRT declares the float64 -1e32 that no float32 pixel equals."""
    paths = [write_geotiff(tmp_path / f"g{i}.tif", float32_grid(seed=i), nodata=-1e32)
             for i in range(2)]
    vrt = str(tmp_path / "cli.vrt")
    try:
        subprocess.run(["gdalbuildvrt", "-q", "-separate", *options, vrt, *paths], check=True)
    except FileNotFoundError:
        pytest.skip("gdalbuildvrt is not installed")
    data = raster_io.read_raster(vrt).data
    assert np.isnan(data).sum(axis=(1, 2)).tolist() == [200, 200]


@pytest.mark.parametrize("dtype, nodata", [
    (gdal.GDT_UInt16, 65535), (gdal.GDT_Int16, -32768), (gdal.GDT_Byte, 0),
    (gdal.GDT_Int32, -9999)])
def test_integer_nodata(tmp_path, dtype, nodata):
    data = np.full((20, 30), 7, dtype=np.int64)
    data[4:8, 5:9] = nodata
    path = write_geotiff(tmp_path / "i.tif", data, nodata=nodata, dtype=dtype)
    whole, blocks, window, preview = all_readers(path)
    expected = data == nodata
    for arr in (whole, blocks):
        np.testing.assert_array_equal(np.isnan(arr[0]), expected)
    assert np.nanmax(preview) == 7 and np.nanmin(preview) == 7


def test_integer_nodata_outside_the_type_matches_nothing(tmp_path):
    """A Byte band declaring nodata -9999 (impossible in Byte) does not wrap onto a real value."""
    data = np.arange(256, dtype=np.uint8).reshape(16, 16)
    path = write_geotiff(tmp_path / "b.tif", data, nodata=-9999, dtype=gdal.GDT_Byte)
    assert not np.isnan(raster_io.read_raster(path).data).any()


def test_per_band_nodata(tmp_path):
    """Bands with different nodata values (a VRT keeps one per band)."""
    a = float32_grid(seed=1, nodata=-1e32, hole=(slice(0, 10), slice(0, 10)))
    b = np.full((40, 50), 3.0, dtype=np.float32)
    b[20:30, 20:25] = -9999.0
    paths = [write_geotiff(tmp_path / "a.tif", a, nodata=-1e32),
             write_geotiff(tmp_path / "b.tif", b, nodata=-9999)]
    vrt = str(tmp_path / "ab.vrt")
    gdal.BuildVRT(vrt, paths, separate=True)
    ds = gdal.Open(vrt)
    assert [np.float32(ds.GetRasterBand(i).GetNoDataValue()) for i in (1, 2)] == [
        np.float32(-1e32), -9999.0]
    ds = None
    for arr in all_readers(vrt)[:2]:
        assert np.isnan(arr).sum(axis=(1, 2)).tolist() == [100, 50]
        # a value equal to the *other* band's nodata is data
        assert not np.isnan(arr[1][a == np.float32(-1e32)]).any()


def test_alpha_band_is_a_mask_not_data(tmp_path):
    """RGBA: the alpha band masks the colour bands and is not read as a band."""
    rgb = np.full((3, 20, 30), 120, dtype=np.uint8)
    alpha = np.full((20, 30), 255, dtype=np.uint8)
    alpha[:, :10] = 0
    path = str(tmp_path / "rgba.tif")
    ds = gdal.GetDriverByName("GTiff").Create(path, 30, 20, 4, gdal.GDT_Byte,
                                              ["PHOTOMETRIC=RGB", "ALPHA=YES"])
    ds.SetGeoTransform((300000, 10, 0, 7000000, 0, -10))
    for i in range(3):
        ds.GetRasterBand(i + 1).WriteArray(rgb[i])
    ds.GetRasterBand(4).WriteArray(alpha)
    ds = None
    for arr in all_readers(path)[:2]:
        assert arr.shape[0] == 3
        assert np.isnan(arr[:, :, :10]).all() and not np.isnan(arr[:, :, 10:]).any()


def test_dataset_mask_band(tmp_path):
    """A per-dataset mask (.msk side-car, as GDAL writes for JPEG-compressed data)."""
    data = np.full((2, 20, 30), 5.0, dtype=np.float32)
    path = write_geotiff(tmp_path / "m.tif", data)
    ds = gdal.Open(path, gdal.GA_Update)
    ds.CreateMaskBand(gdal.GMF_PER_DATASET)
    mask = np.full((20, 30), 255, dtype=np.uint8)
    mask[12:, :] = 0
    ds.GetRasterBand(1).GetMaskBand().WriteArray(mask)
    ds = None
    for arr in all_readers(path)[:2]:
        assert np.isnan(arr).sum(axis=(1, 2)).tolist() == [240, 240]


def test_nan_is_nodata_without_a_declared_value(tmp_path):
    data = np.ones((10, 10), dtype=np.float32)
    data[2, 3] = np.nan
    path = write_geotiff(tmp_path / "n.tif", data)
    for arr in all_readers(path)[:2]:
        assert np.isnan(arr).sum() == 1
