"""Tests for the Gaussian/Laplacian pyramid (core.pyramid)."""

import math

import numpy as np
import pytest
from scipy import ndimage

from geochem_fusion.core import pyramid

EPS = np.finfo(np.float64).eps


# -- the textbook pyramid (test only: the product uses decompose and BlockPyramid) --
def halo(levels) -> int:
    """Pixels of context a window needs for ``pyramid.decompose`` to match the whole image.

    The exact reach of ``levels`` REDUCE + EXPAND steps is
    ``4 * (2**levels - 1)`` pixels; it is rounded up to the next multiple of
    ``2**levels`` (that is, ``2**(levels + 2)``) so that a window whose core
    starts on a multiple of ``2**levels`` still starts on one after the halo
    is added (the alignment :func:`~geochem_fusion.core.pyramid.decompose` needs, see the module notes).
    Inside such a window minus its halo the result equals the whole-image
    result to floating-point rounding.

    Parameters
    ----------
    levels : int
        Pyramid depth, >= 0.

    Returns
    -------
    int
        Halo width in full-resolution pixels (0 for ``levels == 0``).
    """
    levels = pyramid._check_levels_value(levels)
    return 0 if levels == 0 else 2 ** (levels + 2)


def gaussian_pyramid(x, levels) -> list:
    """Gaussian pyramid by repeated REDUCE.

    Parameters
    ----------
    x : array_like, shape (rows, cols) or (bands, rows, cols)
        Image or stack; NaN is nodata.
    levels : int
        Number of REDUCE steps, ``0 <= levels <= max_levels(x.shape)``.

    Returns
    -------
    list of ndarray
        ``levels + 1`` float64 arrays; level 0 is (a float64 copy of) ``x``,
        level ``j`` has ``ceil(rows / 2**j)`` x ``ceil(cols / 2**j)`` cells.
        A coarse cell is NaN when no valid pixel supports it.
    """
    x = pyramid._as_stack(x)
    levels = pyramid._check_levels(levels, x.shape)
    return pyramid._gaussian(x, levels)


def laplacian_pyramid(x, levels) -> list:
    """Laplacian pyramid: ``levels`` band-pass levels, then the coarsest Gaussian level.

    ``L_j = G_j - EXPAND(G_{j+1})`` for ``j < levels`` and ``L_levels = G_levels``.

    Parameters
    ----------
    x : array_like, shape (rows, cols) or (bands, rows, cols)
        Image or stack; NaN is nodata.
    levels : int
        Pyramid depth, ``0 <= levels <= max_levels(x.shape)``.

    Returns
    -------
    list of ndarray
        ``levels + 1`` float64 arrays with the shapes of the Gaussian levels.
        :func:`reconstruct` inverts it.
    """
    x = pyramid._as_stack(x)
    levels = pyramid._check_levels(levels, x.shape)
    gauss = pyramid._gaussian(x, levels)
    bands = [g - pyramid._expand(gauss[j + 1], g.shape[-2:]) for j, g in enumerate(gauss[:-1])]
    return bands + [gauss[-1]]


def reconstruct(levels_list) -> np.ndarray:
    """Invert :func:`laplacian_pyramid`: ``R_j = EXPAND(R_{j+1}) + L_j``.

    Parameters
    ----------
    levels_list : sequence of ndarray
        Output of :func:`laplacian_pyramid` (possibly with edited bands); each
        level must have ``ceil(n / 2)`` cells of the previous one per axis.

    Returns
    -------
    ndarray
        Float64 array with the shape of ``pyramid[0]``.
    """
    if len(levels_list) == 0:
        raise ValueError("expected a non-empty list of pyramid levels, got an empty one")
    levels = [np.asarray(level, dtype=np.float64) for level in levels_list]
    for j in range(1, len(levels)):
        fine, coarse = levels[j - 1].shape, levels[j].shape
        expected = fine[:-2] + tuple(-(-n // 2) for n in fine[-2:])
        if coarse != expected:
            raise ValueError(
                f"pyramid level {j} has shape {coarse} but level {j - 1} has shape {fine}; "
                f"level {j} must have shape {expected} (pass the list from laplacian_pyramid)"
            )
    out = levels[-1]
    for band in reversed(levels[:-1]):
        out = pyramid._expand(out, band.shape[-2:]) + band
    return out


def smooth_field(shape, seed=0, sigma=4.0):
    """A random, spatially correlated field with values of order 1-10."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=shape)
    sig = (0,) * (len(shape) - 2) + (sigma, sigma)
    return 5.0 + 3.0 * ndimage.gaussian_filter(noise, sig) / 0.05


def exact_reach(levels):
    """Support radius of REDUCE^k + EXPAND^k in full-resolution pixels."""
    return 4 * (2**levels - 1)


# -- the published kernel ----------------------------------------------------
def burt_adelson_weights(a=0.375):
    """Burt & Adelson (1983), eq. (2)-(3): w = [1/4 - a/2, 1/4, a, 1/4, 1/4 - a/2]."""
    return np.array([0.25 - a / 2, 0.25, a, 0.25, 0.25 - a / 2])


def reference_reduce(g, w):
    """REDUCE by the paper's sum G1(i, j) = sum_m sum_n w(m) w(n) G0(2i + m, 2j + n), interior only.

    Returns the coarse level on the cells whose 5 x 5 support lies inside ``g`` (NaN elsewhere).
    """
    rows, cols = -(-g.shape[0] // 2), -(-g.shape[1] // 2)
    out = np.full((rows, cols), np.nan)
    for i in range(1, rows - 1):
        for j in range(1, cols - 1):
            if 2 * i + 2 < g.shape[0] and 2 * j + 2 < g.shape[1]:
                out[i, j] = sum(w[m + 2] * w[n + 2] * g[2 * i + m, 2 * j + n]
                                for m in range(-2, 3) for n in range(-2, 3))
    return out


def reference_expand(g, shape, w):
    """EXPAND by the paper's sum 4 sum_m sum_n w(m) w(n) G((i - m)/2, (j - n)/2), integer terms only.

    Interior cells of the fine ``shape`` (NaN within 2 cells of the border).
    """
    out = np.full(shape, np.nan)
    for i in range(2, shape[0] - 2):
        for j in range(2, shape[1] - 2):
            total = 0.0
            for m in range(-2, 3):
                for n in range(-2, 3):
                    if (i - m) % 2 == 0 and (j - n) % 2 == 0:
                        total += w[m + 2] * w[n + 2] * g[(i - m) // 2, (j - n) // 2]
            out[i, j] = 4.0 * total
    return out


def test_kernel_is_burt_adelson_a_0375():
    # Burt & Adelson (1983) generating kernel with a = 0.375 is the binomial [1, 4, 6, 4, 1] / 16
    np.testing.assert_array_equal(pyramid.KERNEL, burt_adelson_weights(0.375))
    np.testing.assert_array_equal(pyramid.KERNEL * 16, [1, 4, 6, 4, 1])


def test_reduce_of_an_impulse_gives_the_published_weights():
    # an impulse at an even position (2i, 2j): the coarse level holds w(m) w(n) at i - m/2 ...
    # only even offsets m = 2i' - 2i land on coarse cells: the centre gets w(0)^2 = a^2
    x = np.zeros((33, 33))
    x[16, 16] = 1.0
    g1 = gaussian_pyramid(x, 1)[1]
    w = burt_adelson_weights()
    assert g1[8, 8] == pytest.approx(w[2] * w[2], abs=1e-15)  # 0.140625
    assert g1[8, 9] == pytest.approx(w[2] * w[0], abs=1e-15)  # m = 0, n = -2
    assert g1[9, 9] == pytest.approx(w[0] * w[0], abs=1e-15)
    assert g1[8, 10] == 0.0  # beyond the 5-tap reach


@pytest.mark.parametrize("levels", [1, 2])
def test_pyramid_levels_match_the_papers_sums(levels):
    # the Gaussian levels and the expanded low band against the paper's formulas written out
    # term by term (independent of KERNEL and of scipy): interior cells, rounding only
    x = smooth_field((41, 45), seed=3)
    w = burt_adelson_weights()
    gauss = gaussian_pyramid(x, levels)
    expected = x
    for j in range(1, levels + 1):
        expected = reference_reduce(expected, w)
        inner = np.isfinite(expected)
        np.testing.assert_allclose(gauss[j][inner], expected[inner], rtol=1e-12)
        expected = gauss[j]  # the next level's reference starts from the checked level
    low, high = pyramid.decompose(x, 1)
    ref_low = reference_expand(gaussian_pyramid(x, 1)[1], x.shape, w)
    inner = np.isfinite(ref_low)
    np.testing.assert_allclose(low[inner], ref_low[inner], rtol=1e-12)
    # high is the detail the paper's EXPAND(REDUCE(x)) misses: x - that, not x - anything
    np.testing.assert_allclose(high[inner], (x - ref_low)[inner], rtol=0, atol=1e-12)


# -- decompose: exact split ------------------------------------------------
@pytest.mark.parametrize("shape", [(97, 131), (64, 64), (3, 50, 37)])
def test_low_plus_high_is_input(shape):
    # low + high == x holds by construction (high = x - low); what the test pins is that low
    # is the published smoothing: EXPAND^k(REDUCE^k(x)) preserves the mean of x (each kernel
    # sums to 1), removes fine detail (the high band carries the variance at the pixel
    # scale), and differs between depths -- a low band equal to x or to 0 fails
    x = smooth_field(shape, seed=1)
    for levels in range(pyramid.max_levels(shape) + 1):
        low, high = pyramid.decompose(x, levels)
        assert low.dtype == np.float64 and high.dtype == np.float64
        assert low.shape == x.shape and high.shape == x.shape
        np.testing.assert_allclose(low + high, x, rtol=0, atol=4 * EPS * np.abs(x).max())
        if levels == 0:
            np.testing.assert_array_equal(low, x)
            previous = low
            continue
        if levels <= 2:  # mirror borders shift the mean of deep levels (border cells weigh more)
            assert abs(low.mean() - x.mean()) < 0.05 * x.std()
        assert np.std(high) > 0.01 * np.std(x)
        # a deeper level smooths more: less variance in low, more in high
        assert np.var(np.diff(low, axis=-1)) < np.var(np.diff(previous, axis=-1))
        previous = low
def test_levels_zero_is_identity():
    x = smooth_field((20, 30))
    low, high = pyramid.decompose(x, 0)
    np.testing.assert_array_equal(low, x)
    np.testing.assert_array_equal(high, 0.0)


def test_stack_bands_match_single_band_calls():
    x = smooth_field((3, 45, 61), seed=2)
    x[1, 10:14, 20:30] = np.nan  # nodata in one band only
    low, high = pyramid.decompose(x, 3)
    for b in range(3):
        low_b, high_b = pyramid.decompose(x[b], 3)
        # same arithmetic per band; allow rounding only
        np.testing.assert_allclose(low[b], low_b, rtol=1e-13, atol=0)
        np.testing.assert_allclose(high[b], high_b, rtol=1e-12, atol=1e-12)


def test_input_not_mutated_and_float32_accepted():
    x = smooth_field((40, 40)).astype(np.float32)
    x[5, 5] = np.nan
    before = x.copy()
    low, high = pyramid.decompose(x, 2)
    np.testing.assert_array_equal(x, before)
    assert low.dtype == np.float64


# -- decompose: low-pass behaviour ----------------------------------------
def test_constant_image_low_is_constant():
    x = np.full((97, 131), 7.25)
    low, high = pyramid.decompose(x, 5)
    # the kernels are normalized, so a constant survives up to rounding
    np.testing.assert_allclose(low, 7.25, rtol=1e-13)
    np.testing.assert_allclose(high, 0.0, atol=1e-12)


def test_linear_ramp_has_no_high_frequency_away_from_borders():
    rows, cols = np.mgrid[0:97, 0:131].astype(float)
    x = 3.0 + 0.3 * rows - 0.7 * cols
    levels = 3
    low, high = pyramid.decompose(x, levels)
    # The symmetric, normalized binomial kernel maps a linear function to
    # itself in REDUCE, and normalized EXPAND interpolates linear samples
    # exactly, so away from the borders (beyond the operator's reach, where the
    # mirror extension of a ramp is not linear) high is 0 up to rounding of
    # values of order 100: 1e-10 is ~1e5 ulp, ample for a few hundred ops.
    r = exact_reach(levels)
    np.testing.assert_allclose(high[r:-r, r:-r], 0.0, atol=1e-10)
    # ...and the border really is affected (so the interior check is not vacuous)
    assert np.abs(high).max() > 1e-3


def test_low_removes_fine_detail():
    # A checkerboard (Nyquist frequency) is removed entirely by one REDUCE.
    rows, cols = np.mgrid[0:64, 0:64]
    x = 10.0 + np.where((rows + cols) % 2 == 0, 1.0, -1.0)
    low, high = pyramid.decompose(x, 2)
    np.testing.assert_allclose(low, 10.0, atol=1e-12)


# -- Laplacian pyramid ------------------------------------------------------
@pytest.mark.parametrize("shape", [(97, 131), (2, 33, 70)])
def test_laplacian_reconstruct_round_trip(shape):
    x = smooth_field(shape, seed=3)
    levels = pyramid.max_levels(shape)
    lap = laplacian_pyramid(x, levels)
    assert len(lap) == levels + 1
    for j, band in enumerate(lap):
        expected = shape[:-2] + tuple(math.ceil(n / 2**j) for n in shape[-2:])
        assert band.shape == expected
    # each level adds one expand + one add on top of the subtraction: rounding only
    np.testing.assert_allclose(reconstruct(lap), x, rtol=0, atol=1e-12 * np.abs(x).max())


def test_laplacian_round_trip_with_nodata():
    x = smooth_field((80, 90), seed=4)
    x[30:45, 20:60] = np.nan
    lap = laplacian_pyramid(x, 4)
    back = reconstruct(lap)
    np.testing.assert_array_equal(np.isnan(back), np.isnan(x))
    np.testing.assert_allclose(back, x, rtol=0, atol=1e-12 * np.nanmax(np.abs(x)))


def test_gaussian_pyramid_level0_and_coarsest_matches_decompose():
    x = smooth_field((70, 50), seed=5)
    gauss = gaussian_pyramid(x, 3)
    np.testing.assert_array_equal(gauss[0], x)
    # decompose's low is the coarsest Gaussian level expanded back: reconstructing
    # a Laplacian pyramid whose band-pass levels are zeroed gives exactly that.
    lap = laplacian_pyramid(x, 3)
    zeroed = [np.zeros_like(b) for b in lap[:-1]] + [gauss[-1]]
    low, _ = pyramid.decompose(x, 3)
    np.testing.assert_allclose(reconstruct(zeroed), low, rtol=1e-13)


def test_reconstruct_rejects_inconsistent_shapes():
    with pytest.raises(ValueError, match="level 1"):
        reconstruct([np.zeros((10, 10)), np.zeros((4, 5))])
    with pytest.raises(ValueError, match="empty"):
        reconstruct([])


# -- nodata ---------------------------------------------------------------
def test_nan_stays_nan_and_does_not_bleed_into_constant():
    x = np.full((90, 110), 4.0)
    x[40:50, 30:70] = np.nan  # a hole
    x[:, :3] = np.nan  # a nodata strip along the border
    low, high = pyramid.decompose(x, 4)
    nan = np.isnan(x)
    np.testing.assert_array_equal(np.isnan(low), nan)
    np.testing.assert_array_equal(np.isnan(high), nan)
    # normalized convolution averages valid pixels only: a constant is kept
    # exactly (up to rounding) right up to the edge of the nodata
    np.testing.assert_allclose(low[~nan], 4.0, rtol=1e-13)


def test_low_near_hole_is_a_local_weighted_mean():
    x = smooth_field((100, 100), seed=6)
    x[45:60, 40:55] = np.nan
    levels = 3
    low, _ = pyramid.decompose(x, levels)
    r = exact_reach(levels)
    # Every weight in the normalized filters is >= 0, so low at a pixel is a
    # convex combination of valid inputs within the operator's reach: it must
    # lie in their [min, max] (up to rounding).
    for i, j in [(44, 47), (60, 50), (52, 39), (52, 55), (30, 30)]:
        assert np.isfinite(low[i, j])
        win = x[max(0, i - r): i + r + 1, max(0, j - r): j + r + 1]
        assert np.nanmin(win) - 1e-12 <= low[i, j] <= np.nanmax(win) + 1e-12


def test_nan_region_does_not_change_values_far_away():
    x = smooth_field((120, 120), seed=7)
    holed = x.copy()
    holed[50:70, 50:70] = np.nan
    levels = 3
    low, _ = pyramid.decompose(x, levels)
    low_h, _ = pyramid.decompose(holed, levels)
    r = exact_reach(levels)
    far = np.ones(x.shape, bool)
    far[50 - r: 70 + r, 50 - r: 70 + r] = False
    assert far.sum() > 1000
    np.testing.assert_allclose(low_h[far], low[far], rtol=1e-12)
    # ... while near the hole the values do change (test is not vacuous)
    assert not np.allclose(low_h[48, 40:80], low[48, 40:80])


def test_all_nan_input_gives_all_nan():
    low, high = pyramid.decompose(np.full((16, 16), np.nan), 2)
    assert np.isnan(low).all() and np.isnan(high).all()


# -- levels ------------------------------------------------------------------
@pytest.mark.parametrize("n", [2, 3, 4, 5, 8, 9, 97, 131, 1000, 10980])
def test_max_levels(n):
    # independent closed form: ceil(n / 2**k) >= 2  <=>  2**k < n
    assert pyramid.max_levels((n, 10**6)) == int(math.floor(math.log2(n - 1)))
    assert pyramid.max_levels((10**6, n)) == int(math.floor(math.log2(n - 1)))  # cols bind
    assert pyramid.max_levels((3, n, n + 1)) == int(math.floor(math.log2(n - 1)))
    coarsest = gaussian_pyramid(np.zeros((n, 5)), pyramid.max_levels((n, 5)))[-1]
    assert min(coarsest.shape) >= 2


def test_too_many_levels_is_a_clear_error():
    x = np.zeros((97, 131))
    with pytest.raises(ValueError, match=r"levels=7.*\(97, 131\).*maximum is 6.*fewer levels"):
        pyramid.decompose(x, 7)
    pyramid.decompose(x, 6)  # the maximum itself works


@pytest.mark.parametrize("bad", [-1, 1.5, "2", True, None])
def test_bad_levels_rejected(bad):
    with pytest.raises(ValueError, match="levels"):
        pyramid.decompose(np.zeros((10, 10)), bad)


def test_bad_ndim_rejected():
    with pytest.raises(ValueError, match="ndim=1"):
        pyramid.decompose(np.zeros(10), 1)


@pytest.mark.parametrize(
    ("spacing", "pixel", "expected"),
    [(2000, 10, 8), (640, 10, 6), (320, 10, 5), (10, 10, 1), (5, 10, 1), (1000, 15, 6)],
)
def test_auto_levels(spacing, pixel, expected):
    # round(log2(spacing / pixel)), at least 1: 200 -> 7.64 -> 8; 64 -> 6; 66.7 -> 6.06 -> 6
    assert pyramid.auto_levels(spacing, pixel) == expected


@pytest.mark.parametrize(("spacing", "pixel"), [(0, 10), (100, 0), (-5, 10), (100, float("nan"))])
def test_auto_levels_rejects_non_positive(spacing, pixel):
    with pytest.raises(ValueError, match="positive"):
        pyramid.auto_levels(spacing, pixel)


# -- windowed processing --------------------------------------------------------
def _decompose_in_windows(x, levels, split):
    """Decompose ``x`` in 2 x 2 windows split at ``split`` (rows and cols), with halo."""
    h = halo(levels)
    n_rows, n_cols = x.shape
    low = np.full(x.shape, np.nan)
    for r0, r1 in [(0, split), (split, n_rows)]:
        for c0, c1 in [(0, split), (split, n_cols)]:
            rr0, rr1 = max(0, r0 - h), min(n_rows, r1 + h)
            cc0, cc1 = max(0, c0 - h), min(n_cols, c1 + h)
            # the read window must start on a multiple of 2**levels
            assert rr0 % 2**levels == 0 and cc0 % 2**levels == 0
            win_low, _ = pyramid.decompose(x[rr0:rr1, cc0:cc1], levels)
            low[r0:r1, c0:c1] = win_low[r0 - rr0: r1 - rr0, c0 - cc0: c1 - cc0]
    return low


@pytest.mark.parametrize(("levels", "split"), [(3, 152), (4, 144), (5, 160)])
@pytest.mark.parametrize("with_hole", [False, True])
def test_windows_with_halo_match_whole_image(levels, split, with_hole):
    x = smooth_field((300, 300), seed=8)
    if with_hole:
        x[130:170, 100:200] = np.nan  # nodata straddling the window seams
    assert halo(levels) >= exact_reach(levels)
    assert halo(levels) % 2**levels == 0
    whole, _ = pyramid.decompose(x, levels)
    windowed = _decompose_in_windows(x, levels, split)
    np.testing.assert_array_equal(np.isnan(windowed), np.isnan(whole))
    # Same operations on the same inputs within the reach; the spec asks for
    # 1e-6 relative, we expect (and get) agreement to rounding.
    np.testing.assert_allclose(windowed, whole, rtol=1e-6)
    np.testing.assert_allclose(windowed, whole, rtol=1e-12)


def test_halo_values():
    assert halo(0) == 0
    assert halo(1) == 8
    assert halo(5) == 128
    with pytest.raises(ValueError):
        halo(-1)


# -- BlockPyramid: row blocks, two passes, no halo ------------------------------
def _block_decompose(x, levels, push_rows, read_rows):
    bp = pyramid.BlockPyramid(x.shape[-2:], levels, x.shape[0])
    most = 0
    for r in range(0, x.shape[1], push_rows):
        bp.push(x[:, r:r + push_rows])
        most = max([most] + [stage.num.shape[1] for stage in bp._stages])
    parts = [bp.decompose(x[:, r:r + read_rows], r) for r in range(0, x.shape[1], read_rows)]
    low = np.concatenate([p[0] for p in parts], axis=1)
    high = np.concatenate([p[1] for p in parts], axis=1)
    return low, high, bp, most


@pytest.mark.parametrize("shape", [(97, 131), (64, 64), (5, 9), (3, 40), (200, 33)])
@pytest.mark.parametrize(("push_rows", "read_rows"), [(1, 1), (3, 16), (17, 5), (1000, 1000)])
def test_block_pyramid_equals_the_whole_image(shape, push_rows, read_rows):
    rng = np.random.default_rng(sum(shape))
    x = np.stack([smooth_field(shape, seed=2), rng.normal(size=shape)])
    x[1, rng.random(shape) < 0.15] = np.nan  # scattered nodata in one layer only
    x[0, : shape[0] // 3, : shape[1] // 4] = np.nan  # and a corner of the other
    for levels in range(pyramid.max_levels(shape) + 1):
        whole_low, whole_high = pyramid.decompose(x, levels)
        low, high, bp, _ = _block_decompose(x, levels, push_rows, read_rows)
        np.testing.assert_array_equal(np.isnan(low), np.isnan(whole_low))
        np.testing.assert_allclose(low, whole_low, rtol=0, atol=1e-12)
        np.testing.assert_allclose(high, whole_high, rtol=0, atol=1e-12)
        if levels:
            assert bp.top_.shape == (2, *bp.sizes[-1])
            assert bp.sizes[-1] == tuple(-(-n // 2**levels) for n in shape)


def test_block_pyramid_takes_2d_blocks_for_one_layer():
    # a single-layer BlockPyramid accepts (rows, cols) blocks as well as (1, rows, cols)
    x = smooth_field((40, 30), seed=6)
    whole_low, whole_high = pyramid.decompose(x, 2)
    bp = pyramid.BlockPyramid(x.shape, 2)
    for r in range(0, 40, 8):
        bp.push(x[r:r + 8])
    assert bp.complete
    low, high = bp.decompose(x[16:24], 16)
    np.testing.assert_allclose(low[0], whole_low[16:24], rtol=0, atol=1e-12)
    np.testing.assert_allclose(high[0], whole_high[16:24], rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match=r"expected a \(1, rows, 30\) row block"):
        bp.decompose(x[16:24, :20], 16)


def test_block_pyramid_holds_the_block_not_the_image():
    x = smooth_field((1, 512, 96), seed=4)
    levels, push_rows = 6, 8
    low, _, bp, most = _block_decompose(x, levels, push_rows, 32)
    # each level keeps at most the rows just pushed plus the 5-tap kernel's context
    assert most <= push_rows + 4
    assert bp.top_.shape == (1, 8, 2)  # 512 / 64 rows, 96 / 64 -> 2 columns
    np.testing.assert_allclose(low, pyramid.decompose(x, levels)[0], atol=1e-12)


def test_block_pyramid_misuse_is_refused():
    bp = pyramid.BlockPyramid((10, 12), 2, 1)
    with pytest.raises(ValueError, match="push all 10 rows"):
        bp.low_rows(0, 2)
    with pytest.raises(ValueError, match=r"\(1, rows, 12\) row block"):
        bp.push(np.zeros((1, 3, 11)))
    bp.push(np.zeros((1, 10, 12)))
    with pytest.raises(ValueError, match="pushed 11 rows into a 10-row pyramid"):
        bp.push(np.zeros((1, 1, 12)))
    with pytest.raises(ValueError, match="outside the raster's 10 rows"):
        bp.low_rows(8, 11)
    with pytest.raises(ValueError, match="too deep"):
        pyramid.BlockPyramid((10, 12), 4, 1)
