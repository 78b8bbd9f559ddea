"""Tests of core.fusion.

Coefficient recovery and accuracy on a synthetic scene
whose fine truth is linear in the features, the paper/coherent equations,
Wald consistency, the documented weaknesses of eq. 3 (unexplained signal lost,
detail counted twice), local regression with and without blending, the log
transform, nodata and validation.
"""

import numpy as np
import pytest
from scipy import ndimage

from geochem_fusion.core import metrics
from geochem_fusion.core.fusion import FusionResult, fuse
from geochem_fusion.core.grid import Grid
from geochem_fusion.core.pyramid import decompose
from geochem_fusion.core.resample import resample_cubic

N = 256  # fine pixels per side
FACTOR = 16  # survey support in fine pixels
LEVELS = 4  # log2(FACTOR): the paper's default depth
A0, GAINS = 50.0, np.array([8.0, -5.0])
BORDER = slice(FACTOR, -FACTOR)  # one coarse cell in from the edge (cubic replicates there)
FINE = Grid(0.0, float(N), 1.0, 1.0, N, N)
COARSE = Grid(0.0, float(N), float(FACTOR), float(FACTOR), N // FACTOR, N // FACTOR)


def smooth_field(rng, sigmas=(24.0, 6.0, 1.5)):
    """Zero-mean random field with broad structure and fine detail (each scale unit variance)."""
    out = np.zeros((N, N))
    for s in sigmas:
        g = ndimage.gaussian_filter(rng.normal(size=(N, N)), s, mode="wrap")
        out += g / g.std()
    return out


def survey(truth):
    """Coarse survey of a fine layer: block average at the support, cubic back to the fine grid."""
    coarse = metrics.block_average(truth, FACTOR)
    return coarse, resample_cubic(coarse, COARSE, FINE)


def rmse_inside(a, b):
    return float(np.sqrt(np.mean((a - b)[BORDER, BORDER] ** 2)))


@pytest.fixture(scope="module")
def scene():
    rng = np.random.default_rng(0)
    features = np.stack([smooth_field(rng), smooth_field(rng)])
    truth = A0 + np.tensordot(GAINS, features, axes=1)
    coarse, geo = survey(truth)
    return features, truth, coarse, geo


# -- accuracy on a scene whose truth is linear in the features -----------------------
@pytest.mark.parametrize("mode", ["paper", "coherent"])
def test_linear_truth_recovers_gains_and_beats_the_resampled_input(scene, mode):
    features, truth, _, geo = scene
    res = fuse(geo, features, levels=LEVELS, mode=mode)
    assert isinstance(res, FusionResult) and res.mode == mode and res.levels == LEVELS
    fit = res.model.global_fit_
    # Geo_L is the low-pass of a cubic-resampled block average, a bit smoother than the
    # truth's low band a0 + a·MS_L, which attenuates the gains slightly (~3 % here): 6 %.
    np.testing.assert_allclose(fit.coef, GAINS, rtol=0.06)
    assert fit.intercept == pytest.approx(A0, abs=0.5)  # features have mean ~0
    assert fit.r2 > 0.98
    # the resampled survey misses all detail finer than 16 px; the fusion puts most of it
    # back: at least half the error goes (measured ~2.5x lower)
    assert rmse_inside(res.fused, truth) < 0.5 * rmse_inside(geo, truth)
    assert np.corrcoef(res.fused.ravel(), truth.ravel())[0, 1] > 0.95


def test_coherent_is_closer_to_the_survey_at_its_support_than_paper(scene):
    """Wald consistency: block-average the fused layer back to the survey support.

    The truth holds an anomaly the features know nothing about (a Gaussian bump of
    40 units, 30 px wide); paper mode drops it with the regression residual, coherent
    keeps it.  Coherent is still not exact, for two reasons: cubic convolution is not
    area-preserving (block_average(geo) misses the survey by ~1.9 here), and the
    depth-4 pyramid low-pass is about 3x wider than a 16-px block (equivalent Gaussian
    sigma ~13 px vs a box of std 4.6 px), so the injected high band still has a
    non-zero mean over each block.  Measured: coherent ~2.7, paper ~6.8, against a
    survey spread of ~13 units.
    """
    features, truth, _, _ = scene
    rows, cols = np.mgrid[0:N, 0:N]
    anomaly = 40.0 * np.exp(-((cols - 150) ** 2 + (rows - 100) ** 2) / (2 * 30.0**2))
    coarse, geo = survey(truth + anomaly)
    miss = {}
    for mode in ("paper", "coherent"):
        res = fuse(geo, features, levels=LEVELS, mode=mode)
        miss[mode] = metrics.wald_consistency(res.fused, coarse, FACTOR)
    spread = coarse.std()
    assert miss["coherent"]["rmse"] < 0.3 * spread
    assert miss["coherent"]["rmse"] < 0.5 * miss["paper"]["rmse"]
    assert miss["coherent"]["cc"] > 0.98 > miss["paper"]["cc"]
    # linearity of the block average splits coherent's miss into the two causes above
    res = fuse(geo, features, levels=LEVELS, mode="coherent")
    np.testing.assert_allclose(
        metrics.block_average(res.fused, FACTOR) - coarse,
        (metrics.block_average(geo, FACTOR) - coarse)
        + metrics.block_average(res.injected_detail, FACTOR),
        atol=1e-9,
    )


# -- the equations ----------------------------------------------------------------
def test_paper_and_coherent_equations_hold_exactly(scene):
    features, _, _, geo = scene
    paper = fuse(geo, features, levels=LEVELS, mode="paper")
    coherent = fuse(geo, features, levels=LEVELS, mode="coherent")
    # eq. 3 with eq. 2: Geo_f = Geo_Lre + Geo_H + Σ ai·MS_Hi (float rounding only)
    np.testing.assert_allclose(
        paper.fused, paper.geo_low_regressed + paper.geo_high + paper.injected_detail,
        rtol=0, atol=1e-10)
    np.testing.assert_allclose(
        coherent.fused, coherent.geo_low + coherent.geo_high + coherent.injected_detail,
        rtol=0, atol=1e-10)
    np.testing.assert_allclose(coherent.fused, geo + coherent.injected_detail, rtol=0, atol=1e-10)
    # the pieces themselves: the pyramid split of geo, eq. 1 on MS_L, the gains on MS_H
    low, high = decompose(geo, LEVELS)
    ms_low, ms_high = decompose(features, LEVELS)
    fit = paper.model.global_fit_
    np.testing.assert_allclose(paper.geo_low, low, atol=1e-10)
    np.testing.assert_allclose(paper.geo_high, high, atol=1e-10)
    np.testing.assert_allclose(paper.geo_low_regressed,
                               fit.intercept + np.tensordot(fit.coef, ms_low, axes=1), atol=1e-9)
    np.testing.assert_allclose(paper.injected_detail, np.tensordot(fit.coef, ms_high, axes=1),
                               atol=1e-9)
    # both modes share the fit, hence the detail
    np.testing.assert_array_equal(paper.injected_detail, coherent.injected_detail)


def test_features_that_explain_nothing_paper_loses_the_low_band_coherent_keeps_it():
    """The known weakness of eq. 3 (``docs/method.md``, the ``paper`` mode).

    The geochemistry varies only down the rows and each feature only across the
    columns (independent random 1-D profiles).  On the full grid the sample covariance
    of any function of the row with any function of the column is exactly zero, so
    the least-squares gains are 0 (to rounding): the regression explains nothing.
    """
    rng = np.random.default_rng(7)

    def profile(sigma):
        p = ndimage.gaussian_filter1d(rng.normal(size=N), sigma, mode="wrap")
        return p / p.std()

    geo = np.repeat((100.0 + 30.0 * profile(32.0))[:, None], N, axis=1)
    features = np.stack([np.repeat(profile(s)[None, :], N, axis=0) for s in (16.0, 3.0)])
    paper = fuse(geo, features, levels=LEVELS, mode="paper")
    coherent = fuse(geo, features, levels=LEVELS, mode="coherent")
    fit = paper.model.global_fit_
    assert fit.r2 < 1e-20
    assert np.abs(fit.coef).max() < 1e-10
    low_spread = paper.geo_low.std()
    assert low_spread > 20.0  # the geochemistry has a strong low band...
    # ...which paper mode replaces by a constant (the mean): Geo_f = mean + Geo_H
    np.testing.assert_allclose(paper.geo_low_regressed, paper.geo_low.mean(), atol=1e-8)
    np.testing.assert_allclose(paper.fused, paper.geo_low.mean() + paper.geo_high, atol=1e-8)
    assert np.sqrt(np.mean((paper.fused - geo) ** 2)) == pytest.approx(low_spread, rel=1e-6)
    # coherent returns the geochemistry unchanged (no gain, no detail)
    np.testing.assert_allclose(coherent.fused, geo, atol=1e-8)


@pytest.mark.parametrize("mode", ["paper", "coherent"])
def test_detail_already_in_the_geochemistry_is_counted_twice(scene, mode):
    """Documented behaviour (module docstring): eq. 2 keeps Geo_H and adds Σ ai·MS_Hi.

    Given the fine truth itself, Geo_L = a0 + a·MS_L exactly (the pyramid is linear),
    so the fit is exact, Geo_Lre = Geo_L and both modes return truth + injected
    detail, where the injected detail equals the truth's own high band: the fine
    detail appears twice.
    """
    features, truth, _, _ = scene
    res = fuse(truth, features, levels=LEVELS, mode=mode)
    fit = res.model.global_fit_
    np.testing.assert_allclose(fit.coef, GAINS, rtol=1e-9)  # exact data: rounding only
    np.testing.assert_allclose(res.fused - truth, res.injected_detail, atol=1e-8)
    np.testing.assert_allclose(res.injected_detail, res.geo_high, atol=1e-8)
    detail = res.injected_detail.std()
    assert detail > 5.0  # not a vacuous comparison: the detail is a large part of the signal
    assert np.sqrt(np.mean((res.fused - truth) ** 2)) == pytest.approx(detail, rel=0.05)


# -- local regression -------------------------------------------------------------
UNITS = {0: (20.0, np.array([6.0, -2.0])), 1: (60.0, np.array([-3.0, 5.0]))}


def two_unit_truth(features):
    labels = np.zeros((N, N), dtype=np.int32)
    labels[:, N // 2:] = 1
    truth = np.empty((N, N))
    for unit, (a0, gains) in UNITS.items():
        inside = labels == unit
        truth[inside] = a0 + gains @ features[:, inside]
    return truth, labels


@pytest.mark.parametrize("source, levels, rtol", [
    # The fine truth at depth 3: the low band at a pixel depends only on pixels less
    # than 4 * (2**3 - 1) = 28 px away (pyramid.halo docs), so with a 28-px unlabelled
    # strip on each side of the border each unit's Geo_L is exactly its own linear
    # model: exact recovery up to rounding.
    ("truth", 3, 1e-8),
    # The realistic survey (block average + cubic) at depth 4: the smoothing attenuates
    # the gains a little and the bump between units leaks in a little (measured <= 7 %).
    ("survey", 4, 0.1),
])
def test_local_regression_recovers_each_units_coefficients(scene, source, levels, rtol):
    features = scene[0]
    truth, labels = two_unit_truth(features)
    geo = truth if source == "truth" else survey(truth)[1]
    strip = 28 if levels == 3 else 32
    labels = labels.copy()
    labels[:, N // 2 - strip:N // 2 + strip] = -1
    res = fuse(geo, features, levels=levels, regression="local", labels=labels, mode="paper")
    assert res.regression == "local" and sorted(res.model.fits_) == [0, 1]
    for unit, (a0, gains) in UNITS.items():
        fit = res.model.fits_[unit]
        assert not fit.fallback
        np.testing.assert_allclose(fit.coef, gains, rtol=rtol)
        assert fit.intercept == pytest.approx(a0, rel=rtol)


def test_blend_sigma_gives_intermediate_coefficients_at_the_border(scene):
    features = scene[0]
    truth, labels = two_unit_truth(features)
    sigma = 6.0
    hard = fuse(truth, features, levels=3, regression="local", labels=labels)
    soft = fuse(truth, features, levels=3, regression="local", labels=labels, blend_sigma=sigma)
    g_hard, c_hard = hard.model.coefficient_maps(labels)
    g_soft, c_soft = soft.model.coefficient_maps(labels, blend_sigma=sigma)
    left, right = hard.model.fits_[0], hard.model.fits_[1]
    # hard borders: each side carries its unit's fit exactly
    np.testing.assert_array_equal(c_hard[:, N // 2 - 1], left.intercept)
    np.testing.assert_array_equal(c_hard[:, N // 2], right.intercept)
    # soft borders: the two columns at the border lie strictly between the units...
    for col in (N // 2 - 1, N // 2):
        lo, hi = sorted((left.intercept, right.intercept))
        assert np.all((c_soft[:, col] > lo + 1) & (c_soft[:, col] < hi - 1))
        for k in range(2):
            lo, hi = sorted((left.coef[k], right.coef[k]))
            assert np.all((g_soft[k, :, col] > lo) & (g_soft[k, :, col] < hi))
    # ...and far from it (beyond 5 sigma, where the Gaussian weight is < 1e-6) nothing moves
    far = int(5 * sigma)
    np.testing.assert_allclose(c_soft[:, : N // 2 - far], left.intercept, atol=1e-4)
    np.testing.assert_allclose(c_soft[:, N // 2 + far:], right.intercept, atol=1e-4)
    # the fusion applies exactly these blended maps (paper mode, eqs. 1-3 per pixel)
    ms_low, ms_high = decompose(features, 3)
    expected = (c_soft + np.einsum("prc,prc->rc", g_soft, ms_low) + soft.geo_high
                + np.einsum("prc,prc->rc", g_soft, ms_high))
    paper_soft = fuse(truth, features, levels=3, regression="local", labels=labels,
                      blend_sigma=sigma, mode="paper")
    np.testing.assert_allclose(paper_soft.fused, expected, atol=1e-8)


def test_global_regression_ignores_labels(scene):
    features, _, _, geo = scene
    labels = np.zeros((N, N), dtype=np.int32)
    with_labels = fuse(geo, features, levels=LEVELS, labels=labels)
    without = fuse(geo, features, levels=LEVELS)
    np.testing.assert_array_equal(with_labels.fused, without.fused)
    assert with_labels.model.fits_ == {}


# -- log transform ----------------------------------------------------------------
@pytest.mark.parametrize("mode", ["paper", "coherent"])
def test_log_transform_fuses_in_log_space_and_back_transforms(scene, mode):
    features, truth, _, geo = scene
    ppm = 10.0 ** (geo / 50.0)  # positive, right-skewed; log10(ppm) is linear in the features
    res = fuse(ppm, features, levels=LEVELS, mode=mode, log_transform=True)
    assert res.log_transform
    assert np.all(np.isfinite(res.fused)) and np.all(res.fused > 0)
    low = res.geo_low_regressed if mode == "paper" else res.geo_low
    np.testing.assert_allclose(res.fused, 10.0 ** (low + res.geo_high + res.injected_detail),
                               rtol=1e-12)
    # the split is of log10(ppm) and the gains are those of geo / 50
    np.testing.assert_allclose(res.geo_low + res.geo_high, np.log10(ppm), atol=1e-10)
    np.testing.assert_allclose(res.model.global_fit_.coef, GAINS / 50.0, rtol=0.06)


@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_log_transform_refuses_non_positive_values(scene, bad):
    features, _, _, geo = scene
    ppm = 10.0 ** (geo / 50.0)
    ppm[5, 7] = bad
    ppm[9, 9] = np.nan  # nodata is fine, only finite values <= 0 are refused
    with pytest.raises(ValueError, match=r"positive.*1 pixels"):
        fuse(ppm, features, levels=LEVELS, log_transform=True)


# -- nodata -------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["paper", "coherent"])
def test_nodata_stays_where_it_is_and_does_not_spread(scene, mode):
    features, truth, _, geo = scene
    holed_features = features.copy()
    holed_features[0, 100:110, 50:60] = np.nan  # one band only
    holed_geo = geo.copy()
    holed_geo[30:40, 200:212] = np.nan
    res = fuse(holed_geo, holed_features, levels=LEVELS, mode=mode)
    ref = fuse(geo, features, levels=LEVELS, mode=mode)
    hole = np.isnan(holed_features[0]) | np.isnan(holed_geo)
    # NaN exactly where any input is NaN (normalized convolution in the pyramid)
    np.testing.assert_array_equal(np.isnan(res.fused), hole)
    # inputs untouched
    assert np.isnan(holed_features[0]).sum() == 100 and np.isfinite(features).all()
    # the regression just skips the holes: 1 % fewer pixels, same gains to 0.1 %
    np.testing.assert_allclose(res.model.global_fit_.coef, ref.model.global_fit_.coef, rtol=1e-3)
    # valid pixels next to the holes get a fill from their valid neighbours: within
    # 5 % of the truth's spread of the hole-free result (measured < 3 %)
    ok = ~hole
    assert np.abs(res.fused[ok] - ref.fused[ok]).max() < 0.05 * truth.std()


# -- validation -------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, match", [
    (dict(mode="hpf"), "mode must be one of"),
    (dict(regression="gwr"), "regression must be one of"),
    (dict(regression="local"), "local regression needs unit labels"),
    (dict(regression="local", labels=np.zeros((4, 4), dtype=int)), r"units \(4, 4\)"),
])
def test_bad_options_raise(scene, kwargs, match):
    features, _, _, geo = scene
    with pytest.raises(ValueError, match=match):
        fuse(geo, features, levels=LEVELS, **kwargs)


def test_bad_shapes_raise(scene):
    features, _, _, geo = scene
    with pytest.raises(ValueError, match="ndim=3"):
        fuse(features, features, levels=LEVELS)
    with pytest.raises(ValueError, match="not on the same grid"):
        fuse(geo[:-1], features, levels=LEVELS)
    with pytest.raises(ValueError, match="ndim=4"):
        fuse(geo, features[None], levels=LEVELS)
    with pytest.raises(ValueError, match="too deep"):
        fuse(geo, features, levels=9)


def test_single_feature_as_2d_array_and_inputs_not_mutated(scene):
    features, _, _, geo = scene
    f0, g0 = features.copy(), geo.copy()
    one = fuse(geo, features[0], levels=LEVELS)
    stacked = fuse(geo, features[:1], levels=LEVELS)
    np.testing.assert_array_equal(one.fused, stacked.fused)
    assert one.model.global_fit_.coef.shape == (1,)
    np.testing.assert_array_equal(features, f0)
    np.testing.assert_array_equal(geo, g0)


# -- the input rules fuse states (pinned one by one) ----------------------------------------
def test_fuse_refuses_wrong_dimensions_and_grids():
    rng = np.random.default_rng(40)
    geo = rng.uniform(1, 2, (16, 16))
    feats = rng.uniform(0.1, 0.5, (2, 16, 16))
    with pytest.raises(ValueError, match=r"geochemical layer as \(rows, cols\), got ndim=1"):
        fuse(geo[0], feats, levels=1)
    with pytest.raises(ValueError, match=r"geochemical layer as \(rows, cols\), got ndim=3"):
        fuse(geo[None], feats, levels=1)
    with pytest.raises(ValueError, match=r"features as a \(bands, rows, cols\) stack, got ndim=1"):
        fuse(geo, feats[0, 0], levels=1)
    with pytest.raises(ValueError, match=r"got ndim=4"):
        fuse(geo, feats[None], levels=1)
    # features on a smaller or a larger grid than the geochemistry
    for shape in ((2, 16, 12), (2, 16, 20), (2, 12, 16), (2, 20, 16)):
        with pytest.raises(ValueError, match="are not on the same grid"):
            fuse(geo, rng.uniform(0.1, 0.5, shape), levels=1)
    # the settings are keyword-only: fuse(geo, feats, 1) is a mistake, not levels=1
    with pytest.raises(TypeError):
        fuse(geo, feats, 1)


def test_log_transform_accepts_values_below_one():
    # concentrations below 1 (e.g. Au in ppm) are positive: log10 is defined, only <= 0 is refused
    rng = np.random.default_rng(41)
    feats = rng.uniform(0.1, 0.5, (2, 16, 16))
    geo = 10 ** (-2 + feats[0] + 0.01 * rng.normal(size=(16, 16)))  # 0.01 .. 0.03
    result = fuse(geo, feats, levels=1, log_transform=True)
    assert np.isfinite(result.fused).all() and (result.fused > 0).all()
    geo[3, 3] = 0.0
    with pytest.raises(ValueError, match="1 pixels of the geochemical layer are <= 0"):
        fuse(geo, feats, levels=1, log_transform=True)
