"""Tests of core.metrics against hand computations and independent implementations."""

import math
import warnings

import numpy as np
import pytest
from scipy import signal, stats

from geochem_fusion.core import metrics as m

# 4-element example used for the hand computations below.
A4 = np.array([1.0, 2.0, 3.0, 4.0])
B4 = np.array([1.0, 3.0, 2.0, 5.0])
# by hand: mean a = 2.5, mean b = 2.75; deviations da = (-1.5, -0.5, 0.5, 1.5),
# db = (-1.75, 0.25, -0.75, 2.25); sum da*db = 5.5, sum da^2 = 5, sum db^2 = 8.75;
# a - b = (0, -1, 1, -1)


@pytest.fixture
def image():
    rng = np.random.default_rng(42)
    # smooth + noise, so SSIM/SCC have structure to compare
    base = np.cumsum(np.cumsum(rng.normal(size=(40, 37)), axis=0), axis=1)
    return base + rng.normal(scale=2.0, size=base.shape)


# -- point metrics -------------------------------------------------------------
def test_hand_computed_point_metrics():
    assert m.pearson_cc(A4, B4) == pytest.approx(5.5 / math.sqrt(5 * 8.75), rel=1e-12)
    assert m.rmse(A4, B4) == pytest.approx(math.sqrt(3 / 4), rel=1e-12)
    assert m.bias(A4, B4) == pytest.approx(-1 / 4, rel=1e-12)
    # UIQI with population moments: cov 5.5/4, var 5/4 and 8.75/4
    q = 4 * (5.5 / 4) * 2.5 * 2.75 / ((5 / 4 + 8.75 / 4) * (2.5**2 + 2.75**2))
    assert m.uiqi(A4, B4) == pytest.approx(q, rel=1e-12)
    # UIQI = correlation * luminance * contrast factors (Wang & Bovik 2002, eq. 2)
    sa, sb = math.sqrt(5 / 4), math.sqrt(8.75 / 4)
    factors = (m.pearson_cc(A4, B4) * (2 * 2.5 * 2.75 / (2.5**2 + 2.75**2))
               * (2 * sa * sb / (sa**2 + sb**2)))
    assert m.uiqi(A4, B4) == pytest.approx(factors, rel=1e-12)


def summary(fused, reference) -> dict:
    """All pixel-wise metrics of ``fused`` against ``reference`` (same 2-D grid; test only).

    Returns
    -------
    dict
        ``cc``, ``rmse``, ``bias``, ``uiqi``, ``ssim`` and ``scc``.
    """
    return {
        "cc": m.pearson_cc(fused, reference),
        "rmse": m.rmse(fused, reference),
        "bias": m.bias(fused, reference),
        "uiqi": m.uiqi(fused, reference),
        "ssim": m.ssim(fused, reference),
        "scc": m.scc(fused, reference),
    }


def test_nan_pairs_are_dropped():
    a = np.array([1.0, 2.0, np.nan, 3.0, 4.0, 7.0])
    b = np.array([1.0, 3.0, 5.0, 2.0, 5.0, np.inf])
    # only the 4 pairs of A4/B4 are finite in both
    assert m.pearson_cc(a, b) == pytest.approx(m.pearson_cc(A4, B4), rel=1e-14)
    assert m.rmse(a, b) == pytest.approx(m.rmse(A4, B4), rel=1e-14)
    assert m.bias(a, b) == pytest.approx(m.bias(A4, B4), rel=1e-14)
    assert m.uiqi(a, b) == pytest.approx(m.uiqi(A4, B4), rel=1e-14)


def test_too_few_pairs_and_shape_mismatch():
    with pytest.raises(ValueError, match="at least 2"):
        m.rmse([1.0, np.nan], [np.nan, 2.0])
    with pytest.raises(ValueError, match="same shape"):
        m.pearson_cc(np.zeros(3), np.zeros(4))


def test_constant_layer_correlation_is_nan_with_warning():
    with pytest.warns(RuntimeWarning, match="constant"):
        assert math.isnan(m.pearson_cc([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))


def test_identical_images(image):
    s = summary(image, image)
    assert s["cc"] == pytest.approx(1.0, abs=1e-12)
    assert s["rmse"] == 0.0 and s["bias"] == 0.0
    assert s["uiqi"] == pytest.approx(1.0, abs=1e-12)
    assert s["ssim"] == pytest.approx(1.0, abs=1e-12)
    assert s["scc"] == pytest.approx(1.0, abs=1e-12)


def test_inputs_not_mutated(image):
    a, b = image.copy(), image[::-1].copy()
    a[3, 4] = np.nan
    a0, b0 = a.copy(), b.copy()
    summary(a, b)
    np.testing.assert_array_equal(a, a0)
    np.testing.assert_array_equal(b, b0)


# -- SSIM --------------------------------------------------------------------------
def _ssim_direct(a, b, data_range):
    """Wang et al. (2004) reference algorithm.

    Explicit 11x11 Gaussian window (sigma 1.5), statistics only where the
    window fits ('valid' filtering).
    """
    r = np.arange(-5, 6)
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * 1.5**2))
    g /= g.sum()

    def f(x):
        return signal.correlate2d(x, g, mode="valid")

    mu_a, mu_b = f(a), f(b)
    va, vb = f(a * a) - mu_a**2, f(b * b) - mu_b**2
    cov = f(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    smap = (2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a**2 + mu_b**2 + c1) * (va + vb + c2))
    return smap.mean()


def test_ssim_matches_direct_implementation(image):
    rng = np.random.default_rng(3)
    est = image + rng.normal(scale=3.0, size=image.shape)
    expected = _ssim_direct(est, image, image.max() - image.min())
    # same formula by two routes (FFT-free separable filter vs 2-D correlation): ~1e-12
    assert m.ssim(est, image) == pytest.approx(expected, abs=1e-10)
    assert m.ssim(est, image, data_range=50.0) == pytest.approx(
        _ssim_direct(est, image, 50.0), abs=1e-10
    )
    assert m.ssim(est, image) < 0.99  # noise lowers it


def test_ssim_matches_skimage(image):
    skm = pytest.importorskip("skimage.metrics")
    est = image + np.random.default_rng(4).normal(scale=3.0, size=image.shape)
    ref = skm.structural_similarity(
        est, image, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        data_range=image.max() - image.min(),
    )
    assert m.ssim(est, image) == pytest.approx(ref, abs=1e-8)


def test_ssim_nan_aware(image):
    est = image + np.random.default_rng(5).normal(scale=3.0, size=image.shape)
    holed = est.copy()
    holed[20, 20] = np.nan
    val = m.ssim(holed, image)
    assert np.isfinite(val)
    # one missing pixel out of ~800 changes the mean only slightly
    assert val == pytest.approx(m.ssim(est, image), abs=0.01)
    same = image.copy()
    same[10:13, 10:13] = np.nan
    assert m.ssim(same, image) == pytest.approx(1.0, abs=1e-12)


def test_ssim_errors(image):
    with pytest.raises(ValueError, match="at least 11x11"):
        m.ssim(image[:8, :8], image[:8, :8])
    with pytest.raises(ValueError, match="constant"):
        m.ssim(image, np.ones_like(image))


# -- high pass / SCC ----------------------------------------------------------------
def test_high_pass_kernel_and_nan():
    x = np.zeros((5, 5))
    x[2, 2] = 1.0
    hp = m.high_pass(x)
    # impulse response is the (symmetric) kernel itself
    np.testing.assert_array_equal(hp[1:4, 1:4], m.LAPLACIAN_3X3)
    assert np.all(m.high_pass(np.full((4, 4), 7.0)) == 0.0)  # kernel sums to 0
    x[0, 0] = np.nan
    hp = m.high_pass(x)
    assert np.isnan(hp[:2, :2]).all() and np.isfinite(hp).sum() == 25 - 4


def test_scc_ignores_offsets_and_detects_unrelated_detail(image):
    assert m.scc(image + 100.0, image) == pytest.approx(1.0, abs=1e-12)
    noise = np.random.default_rng(6).normal(size=image.shape)
    # independent detail: |cc| of ~1400 independent-ish values is well below 0.2
    assert abs(m.scc(noise, image)) < 0.2


# -- Wald consistency ----------------------------------------------------------------
def test_block_average_by_hand():
    x = np.array([[1.0, np.nan, 5.0, 6.0, 9.0],
                  [3.0, 4.0, 7.0, 8.0, 9.0],
                  [9.0, 9.0, 9.0, 9.0, 9.0]])
    out = m.block_average(x, 2)
    # last row and column trimmed; NaN ignored: (1+3+4)/3 and (5+6+7+8)/4
    np.testing.assert_allclose(out, [[8.0 / 3.0, 6.5]])
    assert np.isnan(m.block_average(np.full((2, 2), np.nan), 2)[0, 0])
    with pytest.raises(ValueError, match="factor"):
        m.block_average(x, 0)
    with pytest.raises(ValueError, match="factor"):
        m.block_average(x, 2.5)


def test_wald_consistency_of_upsampled_coarse():
    coarse = np.random.default_rng(7).normal(size=(5, 6))
    fused = np.repeat(np.repeat(coarse, 4, axis=0), 4, axis=1)
    fused = np.pad(fused, ((0, 3), (0, 2)), constant_values=99.0)  # remainder is trimmed
    out = m.wald_consistency(fused, coarse, 4)
    assert out["cc"] == pytest.approx(1.0, abs=1e-12)
    assert out["rmse"] == pytest.approx(0.0, abs=1e-12)
    assert out["bias"] == pytest.approx(0.0, abs=1e-12)
    # adding zero-mean detail inside each block keeps consistency
    detail = np.tile(np.array([[1.0, -1.0], [-1.0, 1.0]]), (10, 12))
    out = m.wald_consistency(fused[:20, :24] + detail, coarse, 4)
    assert out["rmse"] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="coarse"):
        m.wald_consistency(fused, coarse[:4], 4)


# -- anomaly IoU -----------------------------------------------------------------------
def test_anomaly_iou_by_hand():
    a = np.arange(10.0)
    b = a.copy()
    b[7], b[0] = 0.0, 7.0
    # 70th percentile of 0..9 is 6.3: a -> {7, 8, 9}, b -> {0, 8, 9}; IoU = 2/4
    assert m.anomaly_iou(a, b, percentile=70.0) == pytest.approx(0.5)
    assert m.anomaly_iou(a, a) == 1.0
    assert m.anomaly_iou(a, a[::-1]) == 0.0


def test_anomaly_iou_mean_2sd_and_nan():
    a = np.zeros(100)
    a[0] = 10.0  # mean 0.1, sd ~1.0 -> only pixel 0 above mean + 2 sd
    b = a.copy()
    b[1] = 10.0  # mean 0.2, sd ~1.4 -> pixels 0 and 1 above
    assert m.anomaly_iou(a, b, threshold="mean+2sd") == pytest.approx(0.5)
    a_nan = a.copy()
    a_nan[1] = np.nan  # drops pixel 1 from both layers
    assert m.anomaly_iou(a_nan, b, threshold="mean+2sd") == pytest.approx(1.0)
    with pytest.raises(ValueError, match="threshold"):
        m.anomaly_iou(a, b, threshold="2sd")
    with pytest.raises(ValueError, match="percentile"):
        m.anomaly_iou(a, b, percentile=100.0)


# -- success rate --------------------------------------------------------------------------
def test_success_rate_top_and_bottom():
    rng = np.random.default_rng(8)
    layer = rng.permutation(2500).reshape(50, 50).astype(float)  # distinct values
    n, k = layer.size, 10
    order = np.argsort(layer, axis=None)
    top_r, top_c = np.unravel_index(order[-k:], layer.shape)
    low_r, low_c = np.unravel_index(order[:k], layer.shape)
    # discretisation: the occurrence pixels are part of the area, so the k best
    # pixels give 1 - k/(2N) and the k worst k/(2N) (see success_rate_auc)
    assert m.success_rate_auc(layer, top_r, top_c) == pytest.approx(1 - k / (2 * n), abs=1e-12)
    assert m.success_rate_auc(layer, low_r, low_c) == pytest.approx(k / (2 * n), abs=1e-12)
    x, y = m.success_rate_curve(layer, top_r, top_c)
    assert (x[0], y[0], x[-1], y[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(x) >= 0) and np.all(np.diff(y) >= 0)
    # all occurrences are captured once the top k/N of the area is taken
    assert y[np.searchsorted(x, k / n)] == 1.0


def test_success_rate_random_layer_is_half():
    rng = np.random.default_rng(9)
    aucs = []
    for _ in range(200):
        layer = rng.normal(size=(30, 30))
        r, c = rng.integers(0, 30, size=20), rng.integers(0, 30, size=20)
        aucs.append(m.success_rate_auc(layer, r, c))
    # one draw has sd ~ sqrt(1/12/20) = 0.065; the mean of 200 has se ~ 0.005
    assert np.mean(aucs) == pytest.approx(0.5, abs=0.02)


def test_success_rate_equals_mann_whitney_with_ties():
    rng = np.random.default_rng(10)
    layer = rng.integers(0, 5, size=(20, 20)).astype(float)  # heavy ties
    layer[0, :3] = np.nan
    r, c = rng.integers(1, 20, size=15), rng.integers(0, 20, size=15)
    occ = layer[r, c]
    allv = layer[np.isfinite(layer)]
    u = stats.mannwhitneyu(occ, allv).statistic  # counts ties as 1/2
    assert m.success_rate_auc(layer, r, c) == pytest.approx(u / (occ.size * allv.size), rel=1e-12)
    # a constant layer cannot rank anything: fair ties give exactly 0.5
    assert m.success_rate_auc(np.ones((5, 5)), [0, 1], [2, 3]) == pytest.approx(0.5)


def test_success_rate_nan_occurrences_warn_and_drop():
    layer = np.arange(16.0).reshape(4, 4)
    layer[0, 0] = np.nan
    with pytest.warns(UserWarning, match="nodata"):
        with_nan = m.success_rate_auc(layer, [0, 3, 2], [0, 3, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        without = m.success_rate_auc(layer, [3, 2], [3, 1])
    assert with_nan == without
    with pytest.raises(ValueError, match="outside"):
        m.success_rate_auc(layer, [4], [0])
    with pytest.raises(ValueError, match="integer"):
        m.success_rate_auc(layer, [1.5], [0])
    with pytest.raises(ValueError, match="nodata"), pytest.warns(UserWarning):
        m.success_rate_auc(layer, [0], [0])


def test_ssim_by_row_blocks_equals_the_whole_layer(monkeypatch):
    # the SSIM map is computed in row blocks with the window's reach as context: the mean
    # must not depend on the block size (to rounding)
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 217)).cumsum(axis=0)
    b = a + rng.normal(size=a.shape)
    a[1:3, 1:4] = np.nan
    b[-6:, -9:] = np.nan
    whole = m.ssim(a, b)
    for block_pixels in (217, 5000, 30_000):  # one row, a few rows, many rows per block
        monkeypatch.setattr(m, "_SSIM_BLOCK_PIXELS", block_pixels)
        assert m.ssim(a, b) == pytest.approx(whole, rel=1e-12)


def test_ssim_without_a_valid_pixel_inside_the_border_is_a_clear_error():
    a = np.random.default_rng(50).normal(size=(20, 20))
    b = a.copy()
    b[5:15, 5:15] = np.nan  # every pixel 5 or more inside the border is nodata
    with pytest.raises(ValueError, match="no valid pixel lies 5 or more pixels inside"):
        m.ssim(a, b)


def test_anomaly_is_strictly_above_the_threshold():
    # 95 zeros and 5 ones: the 90th percentile is 0, so the anomalies are the five ones
    # (strictly above it), not every pixel; two layers with their ones apart do not overlap
    a = np.zeros((10, 10))
    b = np.zeros((10, 10))
    a[0, :5] = 1.0
    b[9, 5:] = 1.0
    assert m.anomaly_iou(a, b) == 0.0
    assert m.anomaly_iou(a, a) == 1.0


def test_occurrence_indices_may_be_whole_floats_but_not_fractions():
    layer = np.arange(25.0).reshape(5, 5)
    as_int = m.success_rate_auc(layer, np.array([4, 3]), np.array([4, 2]))
    as_float = m.success_rate_auc(layer, np.array([4.0, 3.0]), np.array([4.0, 2.0]))
    assert as_float == as_int
    with pytest.raises(ValueError, match="rows must hold integer pixel indices"):
        m.success_rate_auc(layer, np.array([4.5, 3.0]), np.array([4.0, 2.0]))
