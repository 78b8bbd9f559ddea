"""Tests of core.regression.

Coefficient recovery (global and per unit), fallbacks, prediction, coefficient
maps with and without blending, validation.
"""

import warnings

import numpy as np
import pytest

from geochem_fusion.core.regression import (
    FeatureRegression,
    LinearFit,
    SingularDesignError,
    fit_linear,
)

ROWS, COLS = 60, 80
# unit 0 (left half) and unit 1 (right half): y = a0 + a1*x1 + a2*x2
TRUE = {0: (1.0, np.array([2.0, -1.0])), 1: (-3.0, np.array([0.5, 4.0]))}


def two_unit_scene(noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(2, ROWS, COLS))
    labels = np.zeros((ROWS, COLS), dtype=np.int32)
    labels[:, COLS // 2:] = 1
    y = np.empty((ROWS, COLS))
    for unit, (a0, gains) in TRUE.items():
        inside = labels == unit
        y[inside] = a0 + gains @ X[:, inside]
    return y + rng.normal(scale=noise, size=y.shape) if noise else y, X, labels


# -- fit_linear ---------------------------------------------------------------
def test_fit_linear_recovers_noise_free_coefficients():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 3)) * [1.0, 100.0, 0.01] + [5.0, -300.0, 2.0]
    y = 7.0 + X @ np.array([2.0, -0.03, 50.0])
    fit = fit_linear(y, X)
    # exact linear data: only rounding separates the fit from the truth
    np.testing.assert_allclose(fit.coef, [2.0, -0.03, 50.0], rtol=1e-10)
    assert fit.intercept == pytest.approx(7.0, abs=1e-9)
    assert fit.r2 == pytest.approx(1.0, abs=1e-12)
    assert fit.n == 200 and fit.label is None and not fit.fallback


def test_fit_linear_with_noise_within_standard_errors():
    rng = np.random.default_rng(2)
    n, sigma = 2000, 0.5
    X = rng.normal(size=(n, 2))
    y = 1.0 + X @ np.array([3.0, -2.0]) + rng.normal(scale=sigma, size=n)
    fit = fit_linear(y, X)
    # standard error of each gain ~ sigma / sqrt(n) = 0.011; allow 5 standard errors
    np.testing.assert_allclose(fit.coef, [3.0, -2.0], atol=5 * sigma / np.sqrt(n))
    assert fit.intercept == pytest.approx(1.0, abs=5 * sigma / np.sqrt(n))
    # population R^2 = 13 / (13 + 0.25) = 0.981
    assert fit.r2 == pytest.approx(13 / 13.25, abs=0.01)


def test_fit_linear_singular_designs():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(50, 2))
    y = rng.normal(size=50)
    constant = X.copy()
    constant[:, 1] = 0.1
    with pytest.raises(SingularDesignError, match=r"feature\(s\) \[1\].*constant"):
        fit_linear(y, constant)
    collinear = np.column_stack([X[:, 0], 3 * X[:, 0] + 1])
    with pytest.raises(SingularDesignError, match="collinear"):
        fit_linear(y, collinear)
    with pytest.raises(SingularDesignError, match="need at least 4"):
        fit_linear(y[:3], X[:3])
    assert issubclass(SingularDesignError, ValueError)


def test_fit_linear_ridge_matches_closed_form_and_handles_collinearity():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(100, 2))
    y = 1 + X @ [1.0, 2.0] + rng.normal(size=100)
    lam = 0.3
    Z = (X - X.mean(0)) / X.std(0)
    b = np.linalg.solve(Z.T @ Z + 100 * lam * np.eye(2), Z.T @ (y - y.mean()))
    fit = fit_linear(y, X, ridge=lam)
    np.testing.assert_allclose(fit.coef, b / X.std(0), rtol=1e-10)
    assert np.linalg.norm(fit.coef) < np.linalg.norm(fit_linear(y, X).coef)  # shrinkage
    collinear = np.column_stack([X[:, 0], 2 * X[:, 0]])
    shared = fit_linear(y, collinear, ridge=0.01).coef
    assert shared[1] == pytest.approx(shared[0] / 2, rel=1e-8)  # equal standardized gains


def test_fit_linear_constant_y_has_zero_r2():
    fit = fit_linear(np.full(20, 4.0), np.arange(20.0)[:, None])
    assert fit.r2 == 0.0 and fit.coef[0] == pytest.approx(0.0, abs=1e-12)
    assert fit.intercept == pytest.approx(4.0)


def test_fit_linear_rejects_nan_and_bad_shapes():
    with pytest.raises(ValueError, match="finite"):
        fit_linear(np.array([1.0, np.nan, 3.0, 4.0]), np.ones((4, 1)))
    with pytest.raises(ValueError, match=r"\(n, p\)"):
        fit_linear(np.ones(5), np.ones(5))


# -- FeatureRegression: fitting -----------------------------------------------
def test_global_fit_recovers_coefficients_on_an_image():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(2, ROWS, COLS))
    y = 0.5 + 1.5 * X[0] - 2.5 * X[1]
    y[0, :10] = np.nan
    X[1, 5, 5] = np.nan
    reg = FeatureRegression().fit(y, X)
    np.testing.assert_allclose(reg.global_fit_.coef, [1.5, -2.5], rtol=1e-10)
    assert reg.global_fit_.intercept == pytest.approx(0.5, abs=1e-10)
    assert reg.global_fit_.n == ROWS * COLS - 11  # NaN pixels are left out
    assert reg.fits_ == {}


def test_local_fit_recovers_each_unit():
    y, X, labels = two_unit_scene()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback expected
        reg = FeatureRegression("local").fit(y, X, labels)
    assert sorted(reg.fits_) == [0, 1]
    for unit, (a0, gains) in TRUE.items():
        fit = reg.fits_[unit]
        assert fit.label == unit and not fit.fallback and fit.n == ROWS * COLS // 2
        np.testing.assert_allclose(fit.coef, gains, rtol=1e-10)
        assert fit.intercept == pytest.approx(a0, abs=1e-10)
    # the pooled fit is a compromise that matches neither unit
    assert reg.global_fit_.r2 < 0.99


def test_local_fit_with_noise_within_tolerance():
    sigma = 0.2
    y, X, labels = two_unit_scene(noise=sigma, seed=6)
    reg = FeatureRegression("local").fit(y, X, labels)
    n = ROWS * COLS // 2
    for unit, (a0, gains) in TRUE.items():
        # standard error per gain and of the intercept ~ sigma / sqrt(n) = 0.0041 (X ~ N(0, 1));
        # allow 5 standard errors
        tol = 5 * sigma / np.sqrt(n)
        np.testing.assert_allclose(reg.fits_[unit].coef, gains, atol=tol)
        assert reg.fits_[unit].intercept == pytest.approx(a0, abs=tol)


def test_sample_size_bounds_the_fitted_pixels():
    y, X, labels = two_unit_scene(seed=7)
    reg = FeatureRegression("local", sample_size=500, random_state=1).fit(y, X, labels)
    assert reg.global_fit_.n == 500
    assert all(f.n == 500 for f in reg.fits_.values())
    # noise-free data: any sample recovers the truth
    np.testing.assert_allclose(reg.fits_[1].coef, TRUE[1][1], rtol=1e-10)
    again = FeatureRegression("local", sample_size=500, random_state=1).fit(y, X, labels)
    assert again.global_fit_.coef.tolist() == reg.global_fit_.coef.tolist()


def test_tiny_unit_falls_back_to_global_fit_with_warning():
    y, X, labels = two_unit_scene(seed=8)
    labels[:1, :5] = 2  # 5 pixels < default min_pixels = max(30, 10 * 3)
    with pytest.warns(UserWarning, match=r"unit 2: only 5 valid pixels.*global fit"):
        reg = FeatureRegression("local").fit(y, X, labels)
    fit = reg.fits_[2]
    assert fit.fallback and fit.label == 2
    np.testing.assert_array_equal(fit.coef, reg.global_fit_.coef)
    assert not reg.fits_[0].fallback and not reg.fits_[1].fallback


def test_singular_unit_falls_back_to_global_fit_with_warning():
    y, X, labels = two_unit_scene(seed=9)
    X[1][labels == 1] = 0.7  # feature 2 constant within unit 1
    with pytest.warns(UserWarning, match=r"unit 1: singular design.*constant"):
        reg = FeatureRegression("local").fit(y, X, labels)
    assert reg.fits_[1].fallback
    assert reg.fits_[1].intercept == reg.global_fit_.intercept
    assert not reg.fits_[0].fallback
    np.testing.assert_allclose(reg.fits_[0].coef, TRUE[0][1], rtol=1e-10)


def test_min_pixels_is_configurable():
    y, X, labels = two_unit_scene(seed=10)
    with pytest.warns(UserWarning) as record:
        reg = FeatureRegression("local", min_pixels=3000).fit(y, X, labels)
    messages = sorted(str(w.message) for w in record)
    assert len(messages) == 2
    assert messages[0].startswith("unit 0: only 2400 valid pixels (min_pixels=3000)")
    assert messages[1].startswith("unit 1: only 2400 valid pixels")
    assert reg.min_pixels_ == 3000 and reg.fits_[0].fallback and reg.fits_[1].fallback


# -- FeatureRegression: applying ----------------------------------------------
def test_predict_uses_per_unit_coefficients():
    y, X, labels = two_unit_scene(seed=11)
    reg = FeatureRegression("local").fit(y, X, labels)
    # noise-free: each unit's own fit reproduces y to rounding
    np.testing.assert_allclose(reg.predict(X, labels), y, atol=1e-10)
    glob = FeatureRegression().fit(y, X).predict(X)
    assert np.abs(glob - y).max() > 1.0
    # unlabelled pixels use the global fit
    unlabelled = labels.copy()
    unlabelled[:, :10] = -1
    pred = reg.predict(X, unlabelled)
    g = reg.global_fit_
    np.testing.assert_allclose(pred[:, :10], g.intercept + np.tensordot(g.coef, X[:, :, :10], 1),
                               atol=1e-12)
    np.testing.assert_allclose(pred[:, 10:], y[:, 10:], atol=1e-10)


def test_predict_nan_where_features_nan_and_inputs_untouched():
    y, X, labels = two_unit_scene(seed=12)
    reg = FeatureRegression("local").fit(y, X, labels)
    X[0, 3, 3] = np.nan
    before = X.copy()
    pred = reg.predict(X, labels)
    assert np.isnan(pred[3, 3]) and np.isfinite(pred).sum() == ROWS * COLS - 1
    np.testing.assert_array_equal(X, before)
    assert reg.predict(X.astype(np.float32), labels).dtype == np.float32


def test_coefficient_maps_hard_borders_without_blending():
    y, X, labels = two_unit_scene(seed=13)
    reg = FeatureRegression("local").fit(y, X, labels)
    gains, intercept = reg.coefficient_maps(labels)
    assert gains.shape == (2, ROWS, COLS) and intercept.shape == (ROWS, COLS)
    for unit, fit in reg.fits_.items():
        inside = labels == unit
        assert np.all(gains[:, inside] == fit.coef[:, None])
        assert np.all(intercept[inside] == fit.intercept)
    # the maps reproduce predict
    np.testing.assert_allclose(intercept + (gains * X).sum(0), reg.predict(X, labels), atol=1e-12)


def test_blending_gives_intermediate_values_at_border_only():
    y, X, labels = two_unit_scene(seed=14)
    reg = FeatureRegression("local").fit(y, X, labels)
    sigma = 2.0
    gains, intercept = reg.coefficient_maps(labels, blend_sigma=sigma)
    a_left, a_right = reg.fits_[0].coef[0], reg.fits_[1].coef[0]
    border = gains[0, :, COLS // 2 - 1:COLS // 2 + 1]
    lo, hi = sorted([a_left, a_right])
    assert np.all((border > lo + 0.1) & (border < hi - 0.1))
    # scipy truncates the kernel at 4 sigma: farther than that nothing is blended
    far = int(4 * sigma) + 1
    np.testing.assert_allclose(gains[0, :, :COLS // 2 - far], a_left, rtol=1e-12)
    np.testing.assert_allclose(gains[0, :, COLS // 2 + far:], a_right, rtol=1e-12)
    # predict with blending is the blended maps applied to X
    np.testing.assert_allclose(reg.predict(X, labels, blend_sigma=sigma),
                               intercept + (gains * X).sum(0), atol=1e-12)


def test_blending_ignores_unlabelled_pixels():
    y, X, labels = two_unit_scene(seed=15)
    reg = FeatureRegression("local").fit(y, X, labels)
    holes = labels.copy()
    holes[:, :5] = -1
    gains, _ = reg.coefficient_maps(holes, blend_sigma=2.0)
    np.testing.assert_allclose(gains[0, :, 5:20], reg.fits_[0].coef[0], rtol=1e-12)
    assert np.all(gains[0, :, :5] == reg.global_fit_.coef[0])


def test_global_mode_maps_need_shape_or_labels():
    y, X, _ = two_unit_scene(seed=16)
    reg = FeatureRegression().fit(y, X)
    gains, intercept = reg.coefficient_maps(shape=(3, 4))
    assert gains.shape == (2, 3, 4) and np.all(intercept == reg.global_fit_.intercept)
    with pytest.raises(ValueError, match="labels or shape"):
        reg.coefficient_maps()


def test_coefficient_table():
    y, X, labels = two_unit_scene(seed=17)
    labels[0, :3] = 5
    with pytest.warns(UserWarning, match="unit 5"):
        reg = FeatureRegression("local").fit(y, X, labels)
    table = reg.coefficient_table(["PC2", "Fe3"])
    assert [row["unit"] for row in table] == ["global", 0, 1, 5]
    assert set(table[1]) == {"unit", "n", "r2", "intercept", "gain_PC2", "gain_Fe3", "fallback"}
    assert table[2]["gain_Fe3"] == pytest.approx(TRUE[1][1][1])
    assert table[3]["fallback"] and not table[1]["fallback"]
    assert isinstance(reg.fits_[5], LinearFit)


# -- validation ---------------------------------------------------------------
def test_validation_messages():
    y, X, labels = two_unit_scene(seed=18)
    with pytest.raises(ValueError, match="does not match y"):
        FeatureRegression().fit(y, X[:, :, :-1])
    with pytest.raises(ValueError, match=r"labels shape \(60, 79\)"):
        FeatureRegression("local").fit(y, X, labels[:, :-1])
    with pytest.raises(ValueError, match="labels .* are required"):
        FeatureRegression("local").fit(y, X)
    with pytest.raises(ValueError, match="mode must be"):
        FeatureRegression("gwr").fit(y, X)
    with pytest.raises(ValueError, match="integers"):
        FeatureRegression("local").fit(y, X, labels.astype(float))
    sparse = np.full_like(y, np.nan)
    sparse[0, :10] = 1.0
    with pytest.raises(ValueError, match="only 10 pixels .* needs at least 30"):
        FeatureRegression().fit(sparse, X)
    reg = FeatureRegression("local").fit(y, X, labels)
    with pytest.raises(ValueError, match="3 features but the regression was fitted on 2"):
        reg.predict(np.concatenate([X, X[:1]]), labels)
    with pytest.raises(ValueError, match="labels .* required to predict"):
        reg.predict(X)
    with pytest.raises(ValueError, match="not fitted"):
        FeatureRegression().predict(X)


def test_singular_global_design_is_an_error():
    y, X, _ = two_unit_scene(seed=19)
    X[0] = 1.0
    with pytest.raises(SingularDesignError, match="global fit: feature"):
        FeatureRegression().fit(y, X)


# -- the rules the fit states (pinned one by one) -------------------------------------------
def test_fit_linear_needs_p_plus_2_pixels_and_keyword_options():
    rng = np.random.default_rng(30)
    # p = 1: 2 pixels cannot fit a gain, an intercept and leave a residual; 3 can
    with pytest.raises(SingularDesignError, match="2 pixels cannot fit 1 gains .* at least 3"):
        fit_linear(rng.normal(size=2), rng.normal(size=(2, 1)))
    fit_linear(rng.normal(size=3), rng.normal(size=(3, 1)))
    # p = 3: 5 pixels are enough (p + 2), 4 are not
    X = rng.normal(size=(5, 3))
    fit = fit_linear(X @ [1.0, 2.0, 3.0] + 4.0, X)
    np.testing.assert_allclose(fit.coef, [1.0, 2.0, 3.0], atol=1e-9)
    with pytest.raises(SingularDesignError, match="need at least 5"):
        fit_linear(rng.normal(size=4), rng.normal(size=(4, 3)))
    # shapes must agree exactly, in either direction
    for n_y, n_x in ((5, 6), (6, 5)):
        with pytest.raises(ValueError, match=r"expected y of shape \(n,\)"):
            fit_linear(np.ones(n_y), rng.normal(size=(n_x, 2)))
    # ridge and label are keyword-only: a positional 0.5 is a mistake, not a ridge
    with pytest.raises(TypeError):
        fit_linear(X @ [1.0, 2.0, 3.0], X, 0.5)


def test_default_min_pixels_is_max_of_30_and_10_per_coefficient():
    # METHOD: at least 30 pixels, and 10 per coefficient (p gains + intercept)
    rng = np.random.default_rng(31)
    for p, needed in ((1, 30), (3, 40)):
        y = np.full((10, 10), np.nan)
        X = rng.normal(size=(p, 10, 10))
        flat = y.reshape(-1)
        flat[:needed - 1] = rng.normal(size=needed - 1)
        with pytest.raises(ValueError, match=f"only {needed - 1} pixels .* at least {needed} "
                                             f"\\(min_pixels={needed}\\)"):
            FeatureRegression("global").fit(y, X)
        flat[needed - 1] = 0.5
        reg = FeatureRegression("global").fit(y, X)
        assert reg.min_pixels_ == needed


def test_features_on_another_grid_are_refused():
    y = np.ones((10, 10))
    for shape in ((2, 10, 12), (2, 10, 8), (2, 12, 10)):
        with pytest.raises(ValueError, match="does not match y"):
            FeatureRegression("global").fit(y, np.ones(shape))


def test_predict_refuses_a_negative_blend_sigma_like_coefficient_maps():
    rng = np.random.default_rng(32)
    X = rng.normal(size=(2, 12, 12))
    y = 1.0 + X[0] - X[1]
    reg = FeatureRegression("global").fit(y, X)
    with pytest.raises(ValueError, match="blend_sigma must be >= 0"):
        reg.predict(X, blend_sigma=-1.0)
    with pytest.raises(ValueError, match="blend_sigma must be >= 0"):
        reg.coefficient_maps(shape=(12, 12), blend_sigma=-1.0)
    np.testing.assert_allclose(reg.predict(X), y, atol=1e-9)
