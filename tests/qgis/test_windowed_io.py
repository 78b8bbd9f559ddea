"""Window-by-window raster I/O (algorithms.raster_io): what the full-scene fusion relies on."""

import numpy as np
import pytest
from osgeo import gdal

from geochem_fusion.algorithms import raster_io
from geochem_fusion.core.grid import Grid

GRID = Grid(300_000.0, 7_001_000.0, 10.0, 10.0, 70, 1100)  # taller than one 512-row tile strip


def small_blocks(monkeypatch, rows):
    """Both scene chains cut their images into blocks of ``rows`` rows."""
    from geochem_fusion.core import adaptive_scene, pyramid_scene

    for module in (adaptive_scene, pyramid_scene):
        monkeypatch.setattr(module, "block_rows_for", lambda ncols, n=1: rows)


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
    # many row blocks (two passes through core.pyramid.BlockPyramid) must give the whole-image
    # decomposition (float32 rounding of the written layers)
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


@pytest.fixture(scope="module")
def demo_samples(demo, samples_of):
    source = f"{demo}/samples.gpkg|layername=samples"
    return (source, *samples_of(source, ["Cu", "Zn"]))


def _recording_reads(monkeypatch):
    """Wrap raster_io.open_blocks so that every window read is recorded (path, rows, cols)."""
    reads = []
    real = raster_io.open_blocks

    def open_blocks(path):
        src = real(path)
        inner = src.read

        def read(row0, col0, nrows, ncols):
            reads.append((path, nrows, ncols))
            return inner(row0, col0, nrows, ncols)

        src.read = read
        return src

    monkeypatch.setattr(raster_io, "open_blocks", open_blocks)

    def refuse(*args, **kwargs):
        raise AssertionError("read the whole raster")

    monkeypatch.setattr(raster_io, "read_raster", refuse)
    return reads


@pytest.mark.parametrize("geo_cell", [10.0, 40.0, 7.5])
@pytest.mark.parametrize(("mode", "regression"), [("coherent", "global"), ("paper", "local")])
def test_regression_fusion_runs_block_by_block(run_alg, make_raster, stack, read_raster, tmp_path,
                                               monkeypatch, geo_cell, mode, regression):
    # the features are never read whole: row blocks of 16 rows, two passes and a fit; the
    # geochemistry is read around each block (on the feature grid, coarser or finer); the
    # result equals core.fusion.fuse on the whole arrays
    from geochem_fusion.core.fusion import fuse
    from geochem_fusion.core.grid import Grid
    from geochem_fusion.core.resample import resample_cubic

    feats_data = stack(2, 150, 60, seed=6)
    feats_path = make_raster("features.tif", feats_data, nodata=np.nan)
    feats = read_raster(feats_path)
    fgrid = Grid.from_gdal(feats.geotransform, feats.data.shape)
    margin = 2 * geo_cell
    nr, nc = int((150 * 10 + 2 * margin) / geo_cell), int((60 * 10 + 2 * margin) / geo_cell)
    yy, xx = np.mgrid[0:nr, 0:nc] * geo_cell / 40.0
    geo_values = 50 + 20 * np.sin(xx / 3.0) + 10 * np.cos(yy / 4.0) + xx
    geo_path = make_raster("cu.tif", geo_values, x_min=fgrid.x_min - margin,
                           y_max=fgrid.y_max + margin, cell=geo_cell, descriptions=["Cu kriged"],
                           metadata={"SAMPLE_SPACING": 80.0})
    labels = (np.nan_to_num(feats.data[0]) > 0).astype(int)
    labels[~np.isfinite(feats.data).all(axis=0)] = -1
    params = {"GEOCHEM": geo_path, "FEATURES": feats_path, "MODE": ["paper", "coherent"].index(mode),
              "REGRESSION": ["global", "local"].index(regression), "OUTPUT": str(tmp_path / "f.tif")}
    if regression == "local":
        params["UNITS"] = make_raster("units.tif", labels, nodata=-1, dtype=gdal.GDT_Int16)
    geo = read_raster(geo_path)
    reads = _recording_reads(monkeypatch)
    small_blocks(monkeypatch, 16)
    out = read_raster(run_alg("regressionfusion", params)["OUTPUT"])
    assert max(n for path, n, _ in reads if path == feats_path) <= 16
    assert max(n for path, n, _ in reads if path == geo_path) < geo.data.shape[1] / 2
    whole = fuse(resample_cubic(geo.data[0], Grid.from_gdal(geo.geotransform, geo.data.shape[1:]),
                                fgrid), feats.data, levels=3, mode=mode, regression=regression,
                 labels=labels if regression == "local" else None)
    np.testing.assert_allclose(out.data[0], whole.fused, rtol=2e-6, atol=1e-4, equal_nan=True)


def test_paper_mode_of_the_one_click_fusion_runs_block_by_block(
        run_alg, demo, demo_samples, read_raster, tmp_path, monkeypatch):

    image_path = str(demo / "sentinel2.tif")
    rows = read_raster(image_path).data.shape[1]
    reads = _recording_reads(monkeypatch)
    small_blocks(monkeypatch, 32)
    result = run_alg("fusegeochemistry", {
        "SAMPLES": demo_samples[0], "FIELD": ["Cu"], "IMAGE": image_path, "MODE": 0,
        "REGRESSION": 1, "OUTPUT": str(tmp_path / "fused.tif")})
    assert max(n for path, n, _ in reads if path == image_path) <= 64 < rows
    out = read_raster(result["OUTPUT"])
    assert out.descriptions == ["Cu fused (local, paper)"]
    assert np.isfinite(out.data).mean() > 0.9
    ds = gdal.Open(result["OUTPUT"])
    assert int(ds.GetMetadataItem("LEVELS")) >= 1


def test_the_pixel_sample_size_reaches_the_fits(run_alg, make_raster, stack, tmp_path):
    # SAMPLE_SIZE bounds the pixels the regression sees (the global fit's n in the table)
    import csv

    feats = make_raster("features.tif", stack(2, 150, 60, seed=3), nodata=np.nan)
    geo = make_raster("cu.tif", 50 + stack(1, 40, 16, seed=5)[0] * 10, x_min=300_000.0 - 100,
                      y_max=7_000_000.0 + 100, cell=40.0, descriptions=["Cu kriged"],
                      metadata={"SAMPLE_SPACING": 160.0})
    for size in (1000, 5000):
        table = tmp_path / f"coefficients_{size}.csv"
        run_alg("regressionfusion", {"GEOCHEM": geo, "FEATURES": feats, "SAMPLE_SIZE": size,
                                     "OUTPUT": str(tmp_path / f"f{size}.tif"),
                                     "OUTPUT_COEFFICIENTS": str(table)})
        with open(table, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        assert rows[0]["unit"] == "global" and int(float(rows[0]["n"])) == size


def test_cross_validation_reads_the_image_block_by_block(run_alg, make_raster, make_points, stack,
                                                        read_raster, samples_of, tmp_path,
                                                        monkeypatch):
    # every method of every fold reads windows of the image, never the whole raster, and the
    # errors equal core.evaluation.cross_validate_chain on the image in memory
    import csv

    from geochem_fusion.core.evaluation import cross_validate_chain
    from geochem_fusion.core.grid import Grid

    image_path = make_raster("img.tif", stack(3, 96, 160, seed=8), nodata=np.nan,
                             descriptions=["B4", "B8", "B11"])
    rng = np.random.default_rng(2)
    xy = rng.uniform([300_000.0, 6_999_040.0], [301_600.0, 7_000_000.0], (48, 2))
    cu = 50 + 20 * np.sin((xy[:, 0] - 300_000) / 150) + rng.normal(0, 2, 48)
    samples = make_points("s.gpkg", xy, {"Cu": cu})
    image = read_raster(image_path)
    reads = _recording_reads(monkeypatch)
    small_blocks(monkeypatch, 16)
    table = tmp_path / "cv.csv"
    run_alg("crossvalidatefusion", {"SAMPLES": samples, "FIELD": "Cu", "IMAGE": image_path,
                                    "N_FOLDS": 2, "OUTPUT_TABLE": str(table)})
    # full-width reads are row blocks (16) or single rows; the fit samples read 64 x 64 windows
    assert max(n for path, n, cols in reads if path == image_path and cols == 160) <= 16
    assert max(n * cols for path, n, cols in reads if path == image_path) <= 64 * 64
    x, y, values = samples_of(samples, ["Cu"])
    expected = cross_validate_chain(x, y, values["Cu"], image.data,
                                    Grid.from_gdal(image.geotransform, image.data.shape[1:]),
                                    n_folds=2, band_names=image.descriptions,
                                    variogram_options={"anisotropy": "none", "nlags": 15,
                                                       "max_lag": None, "lag_width": None})
    with open(table, newline="", encoding="utf-8") as f:
        rows = {r["method"]: r for r in csv.DictReader(f)}
    assert list(rows) == list(expected)
    for method, r in expected.items():
        assert float(rows[method]["rmse"]) == pytest.approx(r["rmse"], rel=1e-6)


@pytest.mark.parametrize(("cell", "x0", "y0", "cols", "rows"), [
    (40.0, 299_900.0, 7_001_100.0, 30, 40),   # coarser, covering the target with a margin
    (7.5, 300_013.0, 7_000_950.0, 90, 120),   # finer, offset, covering part of the target only
    (10.0, 300_000.0, 7_001_000.0, 70, 1100),  # the target grid itself
])
def test_resampled_reader_equals_resampling_the_whole_source(tmp_path, cell, x0, y0, cols, rows):
    from geochem_fusion.core.resample import resample_cubic

    rng = np.random.default_rng(3)
    data = rng.normal(size=(2, rows, cols)).astype(np.float32)
    src_grid = Grid(x0, y0, cell, cell, cols, rows)
    path = tmp_path / "src.tif"
    raster_io.write_raster(str(path), data, src_grid, "", descriptions=["a", "b"])
    src = raster_io.open_blocks(str(path))
    read = raster_io.resampled_reader(src, GRID, band=1)
    whole = resample_cubic(data[1].astype(np.float64), src_grid, GRID)
    for r0, c0, n, m in ((0, 0, 16, GRID.ncols), (500, 0, 37, GRID.ncols), (1090, 5, 10, 20),
                         (30, 60, 5, 10)):
        got = read(r0, c0, n, m)
        assert got.shape == (1, n, m)
        np.testing.assert_allclose(got[0], whole[r0:r0 + n, c0:c0 + m], rtol=1e-12,
                                   equal_nan=True)


def test_cubic_warp_of_a_small_window_is_keys_cubic_on_every_gdal(tmp_path):
    """The reference for any window of a cubic warp is Keys' cubic at its cell centres.

    GDAL 3.10 alone (no XSCALE/YSCALE) gives a 12 x 7 clip of a 20 m -> 10 m warp values up to
    11 % off both Keys' cubic and the same window of the whole warp (0 on GDAL 3.6): it takes
    the small request for a downsampling and widens the kernel. Row blocks of a VRT are such
    requests too.
    """
    from geochem_fusion.core.resample import resample_cubic

    rng = np.random.default_rng(0)
    src = rng.uniform(0.1, 0.5, (15, 20))
    src_grid = Grid(300_000.0, 7_000_000.0, 20.0, 20.0, 20, 15)
    wkt = _utm_wkt()
    path = str(tmp_path / "src.tif")
    ds = gdal.GetDriverByName("GTiff").Create(path, 20, 15, 1, gdal.GDT_Float64)
    ds.SetGeoTransform(src_grid.to_gdal())
    ds.SetProjection(wkt)
    ds.GetRasterBand(1).WriteArray(src)
    ds = None
    whole = Grid(300_000.0, 7_000_000.0, 10.0, 10.0, 40, 30)
    clip = whole.window(9, 9, 7, 12)
    # (the whole warp away from its borders, where GDAL and Keys treat missing taps differently)
    for grid, cols in ((whole, slice(4, -4)), (clip, slice(None))):
        vrt = raster_io.warped_vrt(path, grid, wkt, resample="cubic", dst_nodata=float("nan"))
        keys = resample_cubic(src, src_grid, grid)
        rows = slice(4, -4) if grid is whole else slice(None)
        np.testing.assert_allclose(vrt.GetRasterBand(1).ReadAsArray()[rows, cols], keys[rows, cols],
                                   rtol=1e-9)
        # a 3-row window of the VRT (as the block-by-block passes read it) is the same
        window = vrt.GetRasterBand(1).ReadAsArray(0, 4, grid.ncols, 3)
        np.testing.assert_allclose(window[:, cols], keys[4:7, cols], rtol=1e-9)


def _utm_wkt():
    from osgeo import osr

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32719)
    return srs.ExportToWkt()


def test_one_band_of_several_and_the_last_band_by_number(tmp_path):
    # band=0 of a 3-band source is that band alone (on its own grid and resampled); band
    # number 3 (1-based) of a 3-band raster is valid, 4 is refused
    rng = np.random.default_rng(5)
    data = rng.normal(size=(3, 40, 30)).astype(np.float32)
    small = Grid(300_000.0, 7_001_000.0, 10.0, 10.0, 30, 40)
    path = tmp_path / "three.tif"
    raster_io.write_raster(str(path), data, small, "", descriptions=["a", "b", "c"])
    src = raster_io.open_blocks(str(path))
    same = raster_io.resampled_reader(src, small, band=0)(0, 0, 40, 30)
    assert same.shape == (1, 40, 30)
    np.testing.assert_array_equal(same[0], data[0])
    coarse = Grid(300_000.0, 7_001_000.0, 20.0, 20.0, 15, 20)
    assert raster_io.resampled_reader(src, coarse, band=0)(0, 0, 20, 15).shape == (1, 20, 15)
    assert raster_io.read_raster(str(path)).data.shape == (3, 40, 30)  # all bands by default
    last = raster_io.read_raster(str(path), bands=[3])
    np.testing.assert_array_equal(last.data[0], data[2])
    with pytest.raises(ValueError, match="has 3 bands; band 4 was asked for"):
        raster_io.read_raster(str(path), bands=[4])


def test_check_memory_counts_one_copy_by_default():
    # one float64 copy of a 10^6 x 10^6 raster (8 TB) never fits: refused with the default
    with pytest.raises(ValueError, match="needs about 8000.0 GB of memory"):
        raster_io.check_memory((1_000_000, 1_000_000), 1)
    raster_io.check_memory((10, 10), 1)  # 800 bytes always fit
