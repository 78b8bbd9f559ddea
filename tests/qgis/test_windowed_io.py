"""Window-by-window raster I/O (algorithms.raster_io): what the full-scene fusion relies on."""

import numpy as np
import pytest
from osgeo import gdal

from geochem_fusion.algorithms import raster_io
from geochem_fusion.core.grid import Grid

GRID = Grid(300_000.0, 7_001_000.0, 10.0, 10.0, 70, 1100)  # taller than one 512-row tile strip


def test_out_of_order_writes_give_the_whole_raster_with_statistics(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.normal(size=(2, *GRID.shape))
    data[1, 5:9, 3:7] = np.nan
    path = tmp_path / "out.tif"
    blocks = list(range(0, GRID.nrows, 37))[::-1]  # bottom-up, odd block size
    with raster_io.WindowedWriter(str(path), GRID, "", 2, descriptions=["a", "b"]) as w:
        for r0 in blocks:
            for b in (1, 0):
                w.write(b, r0, data[b, r0:r0 + 37])
    ds = gdal.Open(str(path))
    for b in (0, 1):
        band = ds.GetRasterBand(b + 1)
        arr = band.ReadAsArray().astype(float)
        arr[arr == band.GetNoDataValue()] = np.nan
        np.testing.assert_allclose(arr, data[b].astype(np.float32), equal_nan=True)
        mn, mx, mean, sd = band.GetStatistics(False, False)
        # statistics accumulated from the blocks equal the exact ones (float32 rounding)
        assert mean == pytest.approx(np.nanmean(data[b].astype(np.float32)), rel=1e-5)
        assert mx == pytest.approx(np.nanmax(data[b].astype(np.float32)), rel=1e-6)
    assert [ds.GetRasterBand(i).GetDescription() for i in (1, 2)] == ["a", "b"]


def test_an_exception_leaves_nothing(tmp_path):
    path = tmp_path / "out.tif"
    with pytest.raises(RuntimeError):
        with raster_io.WindowedWriter(str(path), GRID, "", 1) as w:
            w.write(0, 0, np.zeros((10, GRID.ncols)))
            raise RuntimeError("canceled")
    assert list(tmp_path.iterdir()) == []


def test_open_blocks_reads_across_strips(tmp_path):
    rng = np.random.default_rng(1)
    data = rng.normal(size=(3, *GRID.shape)).astype(np.float32)
    path = tmp_path / "in.tif"
    raster_io.write_raster(str(path), data, GRID, "", descriptions=["x", "y", "z"])
    src = raster_io.open_blocks(str(path))
    assert src.grid == GRID and src.descriptions == ["x", "y", "z"]
    for r0, n in ((0, 5), (500, 40), (1090, 10)):
        np.testing.assert_array_equal(src.read(r0, 3, n, 20), data[:, r0:r0 + n, 3:23])


def test_large_rasters_are_fitted_on_a_pixel_sample(run_alg, make_raster, stack, read_raster,
                                                    tmp_path, monkeypatch):
    # above WHOLE_READ_PIXELS the PCA is fitted on pixels from random windows and applied block
    # by block; on a smooth stack the components match the whole-image fit closely
    from geochem_fusion.core.pca import PCA

    data = stack(3, 120, 90, seed=4)
    src = make_raster("img.tif", data, nodata=np.nan)
    monkeypatch.setattr(raster_io, "WHOLE_READ_PIXELS", 1000)
    result = run_alg("principalcomponents", {"INPUT": src, "OUTPUT": str(tmp_path / "pc.tif")})
    out = read_raster(result["OUTPUT"]).data
    image = read_raster(src).data
    whole = PCA(None, standardize=True).fit(image).transform(image)
    for i in range(3):
        ok = np.isfinite(out[i]) & np.isfinite(whole[i])
        # same components up to sampling error of the fit (sign fixed by the convention)
        assert abs(np.corrcoef(out[i][ok], whole[i][ok])[0, 1]) > 0.95


def test_laplacian_blocks_equal_the_whole_image(run_alg, make_raster, stack, read_raster,
                                                tmp_path, monkeypatch):
    # many row blocks (each read with the pyramid's halo, aligned on 2**levels) must give the
    # whole-image decomposition (float32 rounding of the written layers)
    from geochem_fusion.core.pyramid import decompose

    data = stack(2, 150, 70, seed=2)
    src = make_raster("img.tif", data, nodata=np.nan)
    monkeypatch.setattr(raster_io, "block_rows_for", lambda ncols, n_bands=1: 16)
    result = run_alg("laplaciandecomposition", {
        "INPUT": src, "LEVELS": 3, "OUTPUT_LOW": str(tmp_path / "low.tif"),
        "OUTPUT_HIGH": str(tmp_path / "high.tif")})
    image = read_raster(src).data
    exp_low, exp_high = decompose(image, 3)
    np.testing.assert_allclose(read_raster(result["OUTPUT_LOW"]).data, exp_low, rtol=1e-6,
                               atol=1e-6, equal_nan=True)
    np.testing.assert_allclose(read_raster(result["OUTPUT_HIGH"]).data, exp_high, rtol=1e-6,
                               atol=1e-6, equal_nan=True)
