"""Tests of core.pipeline.

Image features, the kriging grid, the whole chain from samples (fuse_samples)
and from a raster (fuse_raster), progress/cancel hooks,
validation, and a quick run on the real Kolari till Cu and airborne geophysics.
"""

import math

import numpy as np
import pytest
from scipy import ndimage

from geochem_fusion.core import features as core_features
from geochem_fusion.core import pipeline
from geochem_fusion.core.fusion import fuse
from geochem_fusion.core.grid import Grid
from geochem_fusion.core.indices import compute_indices
from geochem_fusion.core.kriging import median_nn_spacing
from geochem_fusion.core.progress import Canceled
from geochem_fusion.core.pyramid import resolve_levels
from geochem_fusion.core.resample import resample_cubic
from geochem_fusion.core.vocabulary import FusionSettings, kriging_grid

PIX = 10.0  # image pixel, m
N = 160  # image pixels per side (1.6 km)
SPACING = 160.0  # sample lattice, m
GRID = Grid(500_000.0, 7_000_000.0, PIX, PIX, N, N)


# -- helpers ------------------------------------------------------------------
def reference_pcs(stack):
    """Correlation-matrix PCA by hand.

    Scores of every component, sign-fixed so that
    each component's largest-magnitude coefficient is positive (core.pca's stated
    convention), strongest component first.
    """
    X = stack.reshape(stack.shape[0], -1).T
    Z = (X - X.mean(0)) / X.std(0)
    eigval, eigvec = np.linalg.eigh(np.corrcoef(Z.T))
    eigvec = eigvec[:, np.argsort(eigval)[::-1]]
    signs = np.sign(eigvec[np.abs(eigvec).argmax(axis=0), np.arange(eigvec.shape[1])])
    return (Z @ (eigvec * signs)).T.reshape(stack.shape)


def corr(a, b):
    ok = np.isfinite(a) & np.isfinite(b)
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


@pytest.fixture(scope="module")
def small_image():
    """4 correlated bands, 40 x 50 pixels (fewer pixels than the PCA sample: exact fit)."""
    rng = np.random.default_rng(3)
    latent = rng.normal(size=(3, 40, 50))
    mix = np.array([[1.0, 0.5, 0.1], [0.9, -0.6, 0.2], [0.8, 0.1, -0.7], [0.7, 0.3, 0.4]])
    return 0.2 + 0.03 * np.tensordot(mix, latent, axes=1)


def assert_same(blockwise, whole):
    """The block-by-block chain equals the whole-image :func:`fuse` to rounding."""
    np.testing.assert_array_equal(np.isnan(blockwise), np.isnan(whole))
    np.testing.assert_allclose(blockwise, whole, rtol=1e-12, atol=1e-9)


# -- image_features -------------------------------------------------------------
def test_bands_returns_the_stack(small_image):
    feats = core_features.image_features(small_image, features="bands")
    np.testing.assert_array_equal(feats.data, small_image)
    assert feats.names == ["Band 1", "Band 2", "Band 3", "Band 4"]
    assert feats.pca is None and feats.indices is None
    named = core_features.image_features(small_image, features="bands", band_names=list("abcd"))
    assert named.names == ["a", "b", "c", "d"]


def test_bands_pc2_is_the_second_principal_component(small_image):
    feats = core_features.image_features(small_image, features="bands-pc2")
    assert feats.data.shape == (1,) + small_image.shape[1:]
    assert feats.names == ["PC2"] and feats.pca is not None
    ref = reference_pcs(small_image)
    # same pixels, same standardized PCA: identical up to rounding, sign included
    assert corr(feats.data[0], ref[1]) > 1 - 1e-9
    # and it is not PC1 (the bands share a strong common factor)
    assert abs(corr(feats.data[0], ref[0])) < 1e-6


def test_pcs_returns_the_requested_components(small_image):
    feats = core_features.image_features(small_image, features="pcs", pcs=(1, 3))
    assert feats.names == ["PC1", "PC3"] and feats.data.shape[0] == 2
    ref = reference_pcs(small_image)
    assert corr(feats.data[0], ref[0]) > 1 - 1e-9
    assert corr(feats.data[1], ref[2]) > 1 - 1e-9


@pytest.mark.parametrize("pcs", [(0,), (5,), (2, 5), ()])
def test_invalid_pc_numbers_raise(small_image, pcs):
    with pytest.raises(ValueError, match=r"principal components .* between 1 and 4"):
        core_features.image_features(small_image, features="pcs", pcs=pcs)


def test_indices_pc2_from_a_sentinel2_stack():
    rng = np.random.default_rng(4)
    latent = ndimage.gaussian_filter(rng.normal(size=(6, 30, 40)), (0, 2, 2))
    # B2, B3, B4, B8, B11, B12 reflectances around typical bare-soil values
    base = np.array([0.08, 0.11, 0.14, 0.25, 0.30, 0.22])[:, None, None]
    image = base * np.exp(0.2 * latent / latent.std())  # positive, ~20 % variation
    assert image.min() > 0
    band_map = {"B2": 0, "B3": 1, "B4": 2, "B8": 3, "B11": 4, "B12": 5}
    feats = core_features.image_features(image, features="indices-pc2", sensor="sentinel2",
                                    band_map=band_map)
    expected = compute_indices(image, band_map, sensor="sentinel2")
    assert expected.data.shape[0] >= 3  # several indices, so PC2 exists
    np.testing.assert_allclose(feats.indices.data, expected.data)
    assert feats.data.shape == (1, 30, 40) and feats.names == ["PC2"]
    # the indices are ratios in different ranges: standardized PCA by default
    assert corr(feats.data[0], reference_pcs(expected.data)[1]) > 1 - 1e-9


def test_image_features_validation(small_image):
    with pytest.raises(ValueError, match="features must be one of"):
        core_features.image_features(small_image, features="pc1")
    with pytest.raises(ValueError, match="ndim=2"):
        core_features.image_features(small_image[0], features="bands")


# -- kriging_grid ---------------------------------------------------------------
@pytest.mark.parametrize("image_grid, spacing, cell_size, cell", [
    (GRID, 160.0, None, 40.0),  # a quarter of the spacing, an exact multiple of 10 m
    (GRID, 137.0, None, 30.0),  # 34.25 m -> nearest multiple of the pixel
    (GRID, 160.0, 37.0, 40.0),  # explicit cell, snapped to the pixel lattice
    (GRID, 20.0, None, 10.0),  # finer than the pixel -> one pixel
    (Grid(345_968.96, 7_540_129.44, 99.93, 100.0, 203, 117), 2000.0, None, 499.65),
])
def test_kriging_grid_is_aligned_with_the_pixels_and_covers_the_image(image_grid, spacing,
                                                                      cell_size, cell):
    pad = 3
    kg = kriging_grid(image_grid, spacing, cell_size=cell_size, pad_cells=pad)
    assert kg.cell_x == pytest.approx(cell)
    # whole pixels per cell and whole pixels between the origins (so coarse cell
    # edges fall on pixel edges)
    for offset, size, pixel in ((image_grid.x_min - kg.x_min, kg.cell_x, image_grid.cell_x),
                                (kg.y_max - image_grid.y_max, kg.cell_y, image_grid.cell_y)):
        for value in (offset / pixel, size / pixel):
            assert value == pytest.approx(round(value), abs=1e-6) and round(value) >= 1
    # covers the image plus pad cells on every side
    eps = 1e-6
    assert kg.x_min <= image_grid.x_min - pad * kg.cell_x + eps
    assert kg.y_max >= image_grid.y_max + pad * kg.cell_y - eps
    assert kg.x_max >= image_grid.x_max + pad * kg.cell_x - eps
    assert kg.y_min <= image_grid.y_min - pad * kg.cell_y + eps


# -- fuse_samples on a synthetic scene -------------------------------------------
@pytest.fixture(scope="module")
def synthetic():
    """A synthetic scene: 3 bands at 10 m, a truth, ~100 samples.

    3 bands at 10 m with broad structure and fine detail; truth = linear in the
    bands + a smooth trend the bands do not hold; ~100 samples on a jittered 160 m
    lattice (point values of the truth).
    """
    rng = np.random.default_rng(1)

    def band():
        out = np.zeros((N, N))
        for sigma, weight in ((16.0, 1.0), (4.0, 0.5), (1.0, 0.3)):
            g = ndimage.gaussian_filter(rng.normal(size=(N, N)), sigma, mode="reflect")
            out += weight * g / g.std()
        return 0.1 + 0.02 * out

    image = np.stack([band() for _ in range(3)])
    rows, cols = np.mgrid[0:N, 0:N]
    trend = 20.0 * np.sin(cols / N * np.pi) * np.cos(rows / N * np.pi / 2)
    truth = 100.0 + np.tensordot([1000.0, -600.0, 300.0], image - 0.1, axes=1) + trend
    centres = np.arange(SPACING / 2, N * PIX, SPACING)
    gx, gy = np.meshgrid(centres, centres)
    x = GRID.x_min + gx.ravel() + rng.uniform(-25, 25, gx.size)
    y = GRID.y_max - gy.ravel() + rng.uniform(-25, 25, gy.size)
    col, row = GRID.to_pixel(x, y)
    values = truth[np.round(row).astype(int), np.round(col).astype(int)]
    zn = 30.0 + 0.2 * truth + 5.0 * np.sin(rows / 25.0)
    zn_values = zn[np.round(row).astype(int), np.round(col).astype(int)]
    return dict(image=image, truth=truth, x=x, y=y, cu=values, zn=zn_values)


@pytest.fixture(scope="module")
def bands_run(synthetic):
    s = synthetic
    calls = []
    result = pipeline.fuse_samples(s["x"], s["y"], {"Cu": s["cu"], "Zn": s["zn"]}, s["image"], GRID,
                                   FusionSettings(features="bands", mode="coherent",
                                                  variogram="spherical"),
                                   progress=lambda f, m: calls.append((f, m)))
    return result, calls


def test_fusion_beats_kriging_alone_on_the_synthetic_scene(synthetic, bands_run):
    result, _ = bands_run
    cu = result.elements["Cu"]
    truth = synthetic["truth"]
    assert np.isfinite(cu.geo).all() and np.isfinite(cu.fusion.fused).all()
    cc_kriged = corr(cu.geo, truth)
    cc_fused = corr(cu.fusion.fused, truth)
    # kriging from 160 m samples sees the broad structure only (measured cc ~0.84); the
    # image puts the 10-160 m detail back (measured ~0.96)
    assert cc_kriged > 0.6
    assert cc_fused > cc_kriged + 0.05
    assert cu.fusion.model.global_fit_.r2 > 0.5


def test_each_element_is_the_core_chain_on_shared_features(synthetic, bands_run):
    result, _ = bands_run
    assert list(result.elements) == ["Cu", "Zn"]
    np.testing.assert_array_equal(result.features.data, synthetic["image"])
    assert result.units is None and result.kmeans is None
    for name, elem in result.elements.items():
        assert elem.name == name
        # step 2: the kriged grid, cubic-resampled to the image grid
        assert elem.kriging.grid == result.kriging_grid
        np.testing.assert_array_equal(
            elem.geo, resample_cubic(elem.kriging.estimate, result.kriging_grid, GRID))
        # steps 4-8: core.fusion.fuse on that layer and the shared features (computed block by
        # block through the streamed pyramid: equal to rounding)
        direct = fuse(elem.geo, result.features.data, levels=result.levels)
        assert_same(elem.fusion.fused, direct.fused)
        assert elem.fusion.levels == result.levels and elem.fusion.mode == "coherent"
    assert not np.allclose(result.elements["Cu"].fusion.fused, result.elements["Zn"].fusion.fused)


def test_automatic_levels_follow_the_sample_spacing(synthetic, bands_run):
    result, _ = bands_run
    # every sample is inside the image, so the spacing is that of all of them
    assert result.sample_spacing == pytest.approx(median_nn_spacing(synthetic["x"], synthetic["y"]))
    # jitter shortens nearest-neighbour distances a little below the 160 m lattice
    assert 0.7 * SPACING < result.sample_spacing <= SPACING
    assert result.levels == round(math.log2(result.sample_spacing / PIX)) == 4
    assert result.notes == []


def test_levels_are_capped_by_the_image_size():
    notes = []
    # log2(160 / 10) = 4, but a 12 x 12 image only allows 3 halvings (2 x 2 coarsest)
    assert resolve_levels(0, 160.0, 10.0, (12, 12), notes) == 3
    assert len(notes) == 1 and "capped at 3" in notes[0]
    assert resolve_levels(0, 160.0, 10.0, (160, 160)) == 4


def test_progress_increases_to_one(bands_run):
    _, calls = bands_run
    fractions = [f for f, _ in calls]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert all(b >= a for a, b in zip(fractions, fractions[1:]))
    # None = the same step goes on; every step is named, and the named steps advance
    named = [(f, m) for f, m in calls if m is not None]
    assert all(isinstance(m, str) and m for _, m in named) and calls[0][1]
    assert len(named) >= 5 and all(b[0] > a[0] for a, b in zip(named, named[1:]))


def test_local_regression_makes_shared_units(synthetic):
    s = synthetic
    result = pipeline.fuse_samples(s["x"], s["y"], {"Cu": s["cu"], "Zn": s["zn"]}, s["image"], GRID,
                                   FusionSettings(features="bands", regression="local",
                                                  n_clusters=3, levels=3, mode="coherent",
                                                  variogram="spherical"))
    assert result.levels == 3
    assert result.units.shape == GRID.shape and result.kmeans is not None
    assert set(np.unique(result.units)) == {0, 1, 2}
    for elem in result.elements.values():
        assert elem.fusion.regression == "local"
        assert sorted(elem.fusion.model.fits_) == [0, 1, 2]
        direct = fuse(elem.geo, result.features.data, levels=3, regression="local",
                      labels=result.units)
        assert_same(elem.fusion.fused, direct.fused)


def test_samples_not_analysed_are_skipped(synthetic):
    s = synthetic
    cu = s["cu"].copy()
    cu[::10] = np.nan  # 10 of the 100 samples have no Cu value
    messages = []
    result = pipeline.fuse_samples(s["x"], s["y"], {"Cu": cu}, s["image"], GRID,
                                   FusionSettings(features="bands", mode="coherent",
                                                  variogram="spherical"),
                                   progress=lambda f, m: messages.append(m))
    assert "Cu: kriging 90 samples" in messages
    assert np.isfinite(result.elements["Cu"].fusion.fused).all()
    assert result.elements["Cu"].kriging.estimate.shape == result.kriging_grid.shape


def test_samples_outside_the_image_raise(synthetic):
    s = synthetic
    with pytest.raises(ValueError, match="no sample"):
        pipeline.fuse_samples(s["x"] + 1e5, s["y"], {"Cu": s["cu"]}, s["image"], GRID)


def test_fuse_samples_validation(synthetic):
    s = synthetic
    with pytest.raises(ValueError, match="no element field"):
        pipeline.fuse_samples(s["x"], s["y"], {}, s["image"], GRID)
    with pytest.raises(ValueError, match="does not match its grid"):
        pipeline.fuse_samples(s["x"], s["y"], {"Cu": s["cu"]}, s["image"][:, :-1], GRID)


def test_cancel_stops_the_run(synthetic):
    s = synthetic
    args = (s["x"], s["y"], {"Cu": s["cu"]}, s["image"], GRID)
    with pytest.raises(Canceled):
        pipeline.fuse_samples(*args, FusionSettings(features="bands"), cancel=lambda: True)
    # polled between steps: stop at the second poll (before kriging), nothing after
    polls, reports = [], []

    def cancel_second():
        polls.append(1)
        return len(polls) >= 2

    with pytest.raises(Canceled):
        pipeline.fuse_samples(*args, FusionSettings(features="bands"), cancel=cancel_second,
                              progress=lambda f, m: reports.append(f))
    assert len(polls) == 2 and reports == [0.0]


# -- fuse_raster ------------------------------------------------------------------
def test_fuse_raster_equals_resample_then_fuse(synthetic):
    s = synthetic
    geo_grid = Grid(GRID.x_min - 80.0, GRID.y_max + 80.0, 40.0, 40.0, 44, 44)
    rng = np.random.default_rng(9)
    geo = 50.0 + ndimage.gaussian_filter(rng.normal(size=geo_grid.shape), 3) * 100
    result, labels, notes = pipeline.fuse_raster(geo, geo_grid, s["image"], GRID)
    # levels=0: 4 geochemical cells (160 m) as the spacing -> log2(160 / 10) = 4
    assert result.levels == 4 and labels is None and notes == []
    by_hand = fuse(resample_cubic(geo, geo_grid, GRID), s["image"], levels=4)
    assert_same(result.fused, by_hand.fused)
    # an explicit spacing, paper mode and local regression with K-means units
    result, labels, _ = pipeline.fuse_raster(
        geo, geo_grid, s["image"], GRID,
        FusionSettings(mode="paper", regression="local", n_clusters=2), sample_spacing=80.0)
    assert result.levels == 3 and result.mode == "paper"
    assert labels.shape == GRID.shape and set(np.unique(labels)) == {0, 1}
    by_hand = fuse(resample_cubic(geo, geo_grid, GRID), s["image"], levels=3, mode="paper",
                   regression="local", labels=labels)
    assert_same(result.fused, by_hand.fused)


def test_fuse_raster_validation(synthetic):
    image = synthetic["image"]
    geo_grid = Grid(GRID.x_min, GRID.y_max, 40.0, 40.0, 40, 40)
    geo = np.ones(geo_grid.shape)
    with pytest.raises(ValueError, match="do not match their grid"):
        pipeline.fuse_raster(geo, geo_grid, image[:, :-1], GRID)
    far = Grid(GRID.x_min + 1e5, GRID.y_max, 40.0, 40.0, 40, 40)
    with pytest.raises(ValueError, match="do not overlap"):
        pipeline.fuse_raster(geo, far, image, GRID)


# -- real data ----------------------------------------------------------------------
@pytest.mark.realdata
def test_real_kolari_cu_with_airborne_radiometrics(shared_data):
    gdal = pytest.importorskip("osgeo.gdal")
    ogr = pytest.importorskip("osgeo.ogr")
    kolari = shared_data / "kolari"
    ds = ogr.Open(str(kolari / "vectors" / "IOCG_CLB_Till_Geochem_reg_511p.gpkg"))
    samples = [(f.GetGeometryRef().GetX(), f.GetGeometryRef().GetY(), f.GetField("Cu_ppm_511"))
               for f in ds.GetLayer(0)]
    ds = None
    x, y, cu = (np.array(c, dtype=float) for c in zip(*samples))

    # a 200 x 200 pixel (20 km) window in the middle of two rasters on the same grid
    size = 200
    bands, grids = [], []
    for name in ("IOCG_Gm_Rd_K__100m.tif", "IOCG_Gm_Rd_Th_eq__100m.tif"):
        raster = gdal.Open(str(kolari / name))
        row0, col0 = (raster.RasterYSize - size) // 2, (raster.RasterXSize - size) // 2
        band = raster.GetRasterBand(1)
        data = band.ReadAsArray(col0, row0, size, size).astype(np.float64)
        nodata = band.GetNoDataValue()
        if nodata is not None:
            data[data == nodata] = np.nan
        bands.append(data)
        grids.append(Grid.from_gdal(raster.GetGeoTransform(),
                                    (raster.RasterYSize, raster.RasterXSize)).window(
                                        row0, col0, size, size))
        raster = None
    assert grids[0] == grids[1]
    image, grid = np.stack(bands), grids[0]

    result = pipeline.fuse_samples(x, y, {"Cu": cu}, image, grid,
                                   FusionSettings(features="bands", log_transform=True,
                                                  mode="coherent", variogram="spherical"))
    fused = result.elements["Cu"].fusion.fused
    valid = np.isfinite(image).all(axis=0)
    assert valid.mean() > 0.9  # the middle of the survey is covered
    assert np.isfinite(fused[valid]).all() and (fused[valid] > 0).all()
    # the till survey is ~1 sample per 4 km2 (median nearest neighbour measured ~1.5 km):
    # round(log2(1470 / 100)) = 4 halvings
    assert 1000 < result.sample_spacing < 3000
    assert result.levels == round(math.log2(result.sample_spacing / grid.cell_x)) == 4
    fit = result.elements["Cu"].fusion.model.global_fit_
    print(f"\nKolari Cu ~ K + eTh (log10, window {size}x{size}): R2={fit.r2:.3f}, "
          f"gains={np.round(fit.coef, 4).tolist()}, n={fit.n}, levels={result.levels}")
    # fused values stay within the range a geochemist would accept: the data's range
    # widened by a factor 3 either way (the injected detail is not extrapolated wildly)
    assert cu.min() / 3 < np.nanmin(fused) and np.nanmax(fused) < 3 * cu.max()


def test_defaults_are_the_product_defaults(synthetic):
    # fusegeochemistry's defaults: adaptive mode on all bands (chosen by bench/accuracy.py)
    defaults = FusionSettings()
    assert defaults.mode == "adaptive" and defaults.features == "bands"
    s = synthetic
    result = pipeline.fuse_samples(s["x"], s["y"], {"Cu": s["cu"]}, s["image"], GRID)
    fit = result.elements["Cu"].fusion
    assert fit.mode == "adaptive" and np.isfinite(fit.fused).all()
    # the synthetic truth is linear in the bands: the image must be used
    assert fit.shrink > 0
    assert corr(fit.fused, s["truth"]) > corr(result.elements["Cu"].geo, s["truth"])
