"""Tests of core.evaluation: known small cases for every metric group and the chain's CV."""

import warnings

import numpy as np
import pytest

from geochem_fusion.core import evaluation as ev
from geochem_fusion.core import metrics
from geochem_fusion.core.grid import Grid

GRID = Grid(500_000.0, 7_000_000.0, 10.0, 10.0, 50, 40)  # 50 cols x 40 rows of 10 m


def smooth_field(shape=(40, 50), seed=0):
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    return 20.0 + 5.0 * ndimage.gaussian_filter(rng.normal(size=shape), 3.0) / 0.05 \
        + rng.normal(scale=0.5, size=shape)


def centres(grid, rows, cols):
    return grid.x_centers()[cols], grid.y_centers()[rows]


# -- sampling --------------------------------------------------------------------------
def test_bilinear_sampling_is_exact_on_a_plane_and_nearest_takes_the_cell():
    xc, yc = np.meshgrid(GRID.x_centers(), GRID.y_centers())
    plane = 3.0 + 0.02 * (xc - GRID.x_min) - 0.05 * (GRID.y_max - yc)
    rng = np.random.default_rng(1)
    # inside the hull of the cell centres, bilinear interpolation reproduces a plane exactly
    x = rng.uniform(GRID.x_min + 5, GRID.x_max - 5, 200)
    y = rng.uniform(GRID.y_min + 5, GRID.y_max - 5, 200)
    expected = 3.0 + 0.02 * (x - GRID.x_min) - 0.05 * (GRID.y_max - y)
    np.testing.assert_allclose(ev.sample_layer(plane, GRID, x, y), expected, rtol=0, atol=1e-9)
    near = ev.sample_layer(plane, GRID, x, y, method="nearest")
    col = np.floor((x - GRID.x_min) / 10.0).astype(int)
    row = np.floor((GRID.y_max - y) / 10.0).astype(int)
    np.testing.assert_array_equal(near, plane[row, col])
    # outside the grid -> NaN; a NaN neighbour with weight -> NaN
    out = ev.sample_layer(plane, GRID, [GRID.x_min - 1, GRID.x_max + 1], [GRID.y_max - 50] * 2)
    assert np.isnan(out).all()
    holed = plane.copy()
    holed[10, 10] = np.nan
    xh, yh = GRID.x_centers()[10] + 3, GRID.y_centers()[10] - 3
    assert np.isnan(ev.sample_layer(holed, GRID, [xh], [yh])[0])


# -- reference points and raster -------------------------------------------------------
def test_a_layer_equal_to_the_reference_scores_perfectly():
    truth = smooth_field()
    rng = np.random.default_rng(2)
    rows, cols = rng.integers(0, 40, 60), rng.integers(0, 50, 60)
    x, y = centres(GRID, rows, cols)
    out = ev.evaluate_layer(truth, GRID, reference_points=(x, y, truth[rows, cols]),
                            reference_raster=(truth, GRID))
    assert out["n_points"] == 60 and out["n_pixels"] == truth.size
    for key in ("cc_points", "cc_raster", "uiqi", "ssim", "scc", "iou_p90", "iou_p95"):
        assert out[key] == pytest.approx(1.0, abs=1e-12), key
    for key in ("rmse_points", "bias_points", "rmse_raster", "bias_raster"):
        assert out[key] == pytest.approx(0.0, abs=1e-9), key


def test_a_shifted_layer_has_that_bias_and_rmse_but_full_correlation():
    truth = smooth_field(seed=3)
    rng = np.random.default_rng(4)
    x = rng.uniform(GRID.x_min + 5, GRID.x_max - 5, 80)
    y = rng.uniform(GRID.y_min + 5, GRID.y_max - 5, 80)
    ref_values = ev.sample_layer(truth, GRID, x, y)
    out = ev.evaluate_layer(truth + 3.0, GRID, reference_points=(x, y, ref_values),
                            reference_raster=(truth, GRID), percentiles=(80,))
    for suffix in ("points", "raster"):
        assert out[f"bias_{suffix}"] == pytest.approx(3.0, abs=1e-9)
        assert out[f"rmse_{suffix}"] == pytest.approx(3.0, abs=1e-9)
        assert out[f"cc_{suffix}"] == pytest.approx(1.0, abs=1e-12)
    assert out["iou_p80"] == pytest.approx(1.0)  # a shift moves each layer's own threshold
    assert out["uiqi"] < 1.0  # the means differ
    assert "iou_p90" not in out


def test_reference_raster_on_another_grid_is_resampled_onto_the_layer():
    # a plane is reproduced by the cubic convolution (degree <= 2), so the resampled reference
    # equals the plane on the layer grid: perfect scores away from the coarse grid's border
    fine = Grid(500_000.0, 7_000_000.0, 10.0, 10.0, 40, 40)
    coarse = Grid(499_900.0, 7_000_100.0, 40.0, 40.0, 15, 15)

    def plane(grid):
        xc, yc = np.meshgrid(grid.x_centers(), grid.y_centers())
        return 0.01 * (xc - 500_000.0) + 0.02 * (yc - 6_999_000.0)

    out = ev.evaluate_layer(plane(fine), fine, reference_raster=(plane(coarse), coarse))
    assert out["rmse_raster"] == pytest.approx(0.0, abs=1e-8)
    assert out["n_pixels"] == 40 * 40


def test_no_overlap_gives_nan_with_a_warning():
    truth = smooth_field()
    with pytest.warns(UserWarning, match="fewer than 2 valid pairs"):
        out = ev.evaluate_layer(truth, GRID, reference_points=([0.0, 1.0], [0.0, 1.0], [1, 2]))
    assert out["n_points"] == 0 and np.isnan(out["rmse_points"])


def test_small_layer_has_nan_ssim_with_a_warning():
    small = Grid(0.0, 100.0, 10.0, 10.0, 8, 8)
    layer = np.arange(64.0).reshape(8, 8)
    with pytest.warns(UserWarning, match="SSIM not computed"):
        out = ev.evaluate_layer(layer, small, reference_raster=(layer, small))
    assert np.isnan(out["ssim"]) and out["uiqi"] == pytest.approx(1.0)


# -- Wald consistency --------------------------------------------------------------------
def test_block_mean_equals_metrics_block_average_on_aligned_grids():
    layer = smooth_field(seed=5)
    layer[3:6, 7:9] = np.nan  # partly empty blocks still count (more than half valid)
    coarse = Grid(GRID.x_min, GRID.y_max, 50.0, 50.0, 10, 8)
    got = ev.block_mean(layer, GRID, coarse, min_coverage=1e-9)
    np.testing.assert_allclose(got, metrics.block_average(layer, 5), rtol=1e-12)


def test_wald_consistency_of_a_layer_that_keeps_the_coarse_input():
    rng = np.random.default_rng(6)
    coarse_values = rng.uniform(10, 50, (8, 10))
    detail = rng.normal(size=(40, 50))
    detail -= metrics.block_average(detail, 5).repeat(5, 0).repeat(5, 1)  # zero mean per block
    layer = np.kron(coarse_values, np.ones((5, 5))) + detail
    coarse = Grid(GRID.x_min, GRID.y_max, 50.0, 50.0, 10, 8)
    out = ev.evaluate_layer(layer, GRID, input_geochem=(coarse_values, coarse))
    assert out["wald_n"] == 80 and out["wald_support"] == 50.0
    assert out["wald_rmse"] == pytest.approx(0.0, abs=1e-9)
    assert out["wald_cc"] == pytest.approx(1.0, abs=1e-12)
    # the detail alone (the coarse input thrown away) is not consistent
    bad = ev.evaluate_layer(detail + 30.0, GRID, input_geochem=(coarse_values, coarse))
    assert bad["wald_rmse"] > 5.0


def test_wald_consistency_with_input_samples_at_the_median_spacing():
    rng = np.random.default_rng(7)
    coarse_values = rng.uniform(10, 50, (8, 10))
    layer = np.kron(coarse_values, np.ones((5, 5)))
    # one sample near the centre of every 50 m block: median spacing 50 m -> 5 px blocks
    jitter = rng.uniform(-5, 5, (2, 80))
    bx, by = np.meshgrid(np.arange(10), np.arange(8))
    x = GRID.x_min + 25.0 + 50.0 * bx.ravel() + jitter[0]
    y = GRID.y_max - 25.0 - 50.0 * by.ravel() + jitter[1]
    out = ev.evaluate_layer(layer, GRID, input_points=(x, y, coarse_values.ravel()))
    assert out["wald_support"] == 50.0 and out["wald_n"] == 80
    assert out["wald_rmse"] == pytest.approx(0.0, abs=1e-9)
    assert out["wald_bias"] == pytest.approx(0.0, abs=1e-9)


def test_two_points_are_enough_to_score_and_two_inputs_to_find_a_support():
    # 2 valid pairs are the documented minimum: scored, no warning; 1 is too few
    layer = smooth_field(seed=8)
    rows, cols = np.array([5, 30]), np.array([7, 40])
    x, y = centres(GRID, rows, cols)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = ev.evaluate_layer(layer, GRID, reference_points=(x, y, layer[rows, cols] + 1.0))
    assert out["n_points"] == 2 and out["bias_points"] == pytest.approx(-1.0)
    # the consistency check finds its support from 2 input samples (their spacing) ...
    xi, yi = np.array([GRID.x_min + 25.0, GRID.x_min + 75.0]), np.array([GRID.y_max - 25.0] * 2)
    out = ev.evaluate_layer(layer, GRID, input_points=(xi, yi, np.array([20.0, 21.0])))
    assert out["wald_support"] == pytest.approx(50.0)
    # ... but not from 1, unless the support is given (it must then be positive)
    with pytest.raises(ValueError, match="at least 2 input samples"):
        ev.evaluate_layer(layer, GRID, input_points=(xi[:1], yi[:1], np.array([20.0])))
    for bad in (0.0, -50.0, np.nan):
        with pytest.raises(ValueError, match="support must be a positive block side"):
            ev.evaluate_layer(layer, GRID, input_points=(xi, yi, np.array([20.0, 21.0])),
                              support=bad)


def test_block_mean_leaves_out_pixels_beyond_the_coarse_grid():
    # a coarse grid covering only the left 30 m x the top 20 m of the layer: the pixels
    # outside it are left out, not wrapped into other cells
    layer = smooth_field(seed=9)
    coarse = Grid(GRID.x_min, GRID.y_max, 10.0, 10.0, 3, 2)  # 3 cols x 2 rows of 10 m
    wide = Grid(GRID.x_min, GRID.y_max, 10.0, 10.0, 50, 40)
    got = ev.block_mean(layer, wide, coarse, min_coverage=1e-9)
    np.testing.assert_allclose(got, layer[:2, :3], rtol=1e-12)


# -- occurrences -------------------------------------------------------------------------
def test_occurrences_on_the_maxima_give_an_auc_near_one():
    layer = smooth_field(seed=8)
    top = np.argsort(layer, axis=None)[-5:]
    rows, cols = np.unravel_index(top, layer.shape)
    x, y = centres(GRID, rows, cols)
    out = ev.evaluate_layer(layer, GRID, occurrences=(x, y))
    assert set(out) == {"n_occurrences", "auc"}
    # the k highest of N distinct values give 1 - k / (2N) (metrics.success_rate_auc)
    assert out["auc"] == pytest.approx(1 - 5 / (2 * layer.size), abs=1e-12)
    area, captured, auc = ev.success_rate(layer, GRID, x, y)
    assert captured[np.searchsorted(area, 5 / layer.size)] == pytest.approx(1.0)
    bottom = np.argsort(layer, axis=None)[:5]
    xb, yb = centres(GRID, *np.unravel_index(bottom, layer.shape))
    assert ev.evaluate_layer(layer, GRID, occurrences=(xb, yb))["auc"] < 0.01


def test_occurrences_outside_are_left_out_with_a_warning():
    layer = smooth_field(seed=9)
    x, y = centres(GRID, np.array([5, 10]), np.array([5, 10]))
    with pytest.warns(UserWarning, match="outside the layer"):
        _, _, auc = ev.success_rate(layer, GRID, np.append(x, 0.0), np.append(y, 0.0))
    assert auc == pytest.approx(ev.success_rate(layer, GRID, x, y)[2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = ev.evaluate_layer(layer, GRID, occurrences=(np.append(x, 0.0), np.append(y, 0.0)))
    assert out["n_occurrences"] == 2


# -- validation ---------------------------------------------------------------------------
def test_bad_input_is_refused_with_a_clear_message():
    layer = smooth_field()
    with pytest.raises(ValueError, match="give at least one of"):
        ev.evaluate_layer(layer, GRID)
    with pytest.raises(ValueError, match="not both"):
        ev.evaluate_layer(layer, GRID, input_points=([1], [1], [1]),
                          input_geochem=(layer, GRID))
    with pytest.raises(ValueError, match="percentiles"):
        ev.evaluate_layer(layer, GRID, reference_raster=(layer, GRID), percentiles=(100,))
    with pytest.raises(ValueError, match="grid's shape"):
        ev.evaluate_layer(layer[:5], GRID, occurrences=([1], [1]))
    with pytest.raises(ValueError, match="equal-length"):
        ev.evaluate_layer(layer, GRID, reference_points=([1, 2], [1], [1, 2]))


# -- cross-validation of the chain ---------------------------------------------------------
@pytest.fixture(scope="module")
def scene():
    """Values explained by fine image texture that kriging of the samples cannot see."""
    rng = np.random.default_rng(10)
    grid = Grid(400_000.0, 6_000_000.0, 10.0, 10.0, 64, 64)
    # positive, reflectance-like texture of a few pixels (much finer than the 100 m sample
    # spacing), no spatial trend: kriging cannot see it, the image does
    from scipy import ndimage

    texture = ndimage.gaussian_filter(rng.normal(size=(3, 64, 64)), (0, 1.5, 1.5))
    image = 0.225 + 0.05 * texture / texture.std()
    side = np.arange(6) * 100.0 + 70.0  # 6 x 6 jittered samples, 100 m apart
    sx, sy = np.meshgrid(side, side)
    x = grid.x_min + sx.ravel() + rng.uniform(-20, 20, 36)
    y = grid.y_max - sy.ravel() + rng.uniform(-20, 20, 36)
    col = np.floor((x - grid.x_min) / 10).astype(int)
    row = np.floor((grid.y_max - y) / 10).astype(int)
    values = 30 + 400 * (image[0, row, col] - 0.225) - 200 * (image[2, row, col] - 0.225)
    values += rng.normal(scale=0.2, size=values.size)
    return x, y, values, image, grid


def test_cross_validation_shows_that_the_image_helps(scene):
    x, y, values, image, grid = scene
    res = ev.cross_validate_chain(x, y, values, image, grid, n_folds=4,
                                  methods=("kriging alone", "regression kriging", "default"))
    assert list(res) == ["kriging alone", "regression kriging", "default"]
    for r in res.values():
        assert r["n"] == x.size and r["predictions"].shape == (x.size,)
        assert np.isfinite(r["predictions"]).all()
        ok = np.isfinite(r["predictions"])
        assert r["rmse"] == pytest.approx(metrics.rmse(r["predictions"][ok], values[ok]))
    # the values are (almost) a linear function of the bands at the pixels: the image methods
    # predict held-out blocks far better than kriging, which sees only spatially white noise
    assert res["default"]["rmse"] < 0.5 * res["kriging alone"]["rmse"]
    assert res["regression kriging"]["rmse"] < 0.5 * res["kriging alone"]["rmse"]


def test_cross_validation_never_trains_on_the_held_out_fold(scene):
    # Plant a signal in one sample: +1000 on a value of ~30. A held-out prediction may not
    # depend on the held-out values, so the planted sample and the rest of its fold must be
    # predicted exactly as without the plant; the other folds train on it and must move.
    from geochem_fusion.core.adaptive import spatial_folds
    from geochem_fusion.core.kriging import median_nn_spacing

    x, y, values, image, grid = scene
    methods = ("kriging alone", "regression kriging", "default")
    planted = values.copy()
    i = 14
    planted[i] += 1000.0
    base = ev.cross_validate_chain(x, y, values, image, grid, n_folds=4, methods=methods)
    leak = ev.cross_validate_chain(x, y, planted, image, grid, n_folds=4, methods=methods)
    folds = spatial_folds(x, y, block=5 * median_nn_spacing(x, y), n_folds=4, random_state=0)
    same_fold = folds == folds[i]
    assert 1 < same_fold.sum() < x.size
    for m in methods:
        before, after = base[m]["predictions"], leak[m]["predictions"]
        np.testing.assert_allclose(after[same_fold], before[same_fold], rtol=1e-9, atol=1e-9,
                                   err_msg=f"{m}: the held-out fold saw its own values")
        # the plant is visible wherever it was trained on (kriging spreads it to neighbours)
        assert np.abs(after - before)[~same_fold].max() > 1.0, m


def test_cross_validation_with_log_transform_scores_in_log10(scene):
    x, y, values, image, grid = scene
    ppm = 10 ** (1 + values / 100)  # positive, right-skewed
    res = ev.cross_validate_chain(x, y, ppm, image, grid, n_folds=3, log_transform=True,
                                  methods=("kriging alone",))["kriging alone"]
    pred = res["predictions"]
    assert (pred > 0).all()  # data units
    assert res["rmse"] == pytest.approx(metrics.rmse(np.log10(pred), np.log10(ppm)))
    assert res["bias"] == pytest.approx(metrics.bias(np.log10(pred), np.log10(ppm)))
    with pytest.raises(ValueError, match="positive"):
        ev.cross_validate_chain(x, y, ppm - 100, image, grid, log_transform=True)


def test_cross_validation_refuses_bad_settings(scene):
    x, y, values, image, grid = scene
    with pytest.raises(ValueError, match="methods"):
        ev.cross_validate_chain(x, y, values, image, grid, methods=("magic",))
    with pytest.raises(ValueError, match="n_folds"):
        ev.cross_validate_chain(x, y, values, image, grid, n_folds=1)
    for bad in (0.0, -100.0):  # 0 would silently mean the default block: refused instead
        with pytest.raises(ValueError, match="block must be a positive side"):
            ev.cross_validate_chain(x, y, values, image, grid, block=bad)
    with pytest.raises(ValueError, match="does not match its grid"):
        ev.cross_validate_chain(x, y, values, image[:, :10], grid)
