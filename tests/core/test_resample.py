"""Tests for cubic convolution resampling (core.resample)."""

import numpy as np
import pytest

from geochem_fusion.core.grid import Grid
from geochem_fusion.core.resample import keys_kernel, resample_cubic


def sample(func, grid):
    """``func(x, y)`` at the cell centres of ``grid``, shape (rows, cols)."""
    x, y = np.meshgrid(grid.x_centers(), grid.y_centers())
    return func(x, y)


def interior(src_grid, dst_grid):
    """Destination cells whose 4x4 stencil lies inside the source (no clamping).

    Position p uses taps floor(p)-1 .. floor(p)+2, all valid for 1 <= p <= n-2
    (at p = n-2 the last tap has weight W(2) = 0).
    """
    col, _ = src_grid.to_pixel(dst_grid.x_centers(), src_grid.y_max)
    _, row = src_grid.to_pixel(src_grid.x_min, dst_grid.y_centers())
    ok_c = (col >= 1) & (col <= src_grid.ncols - 2)
    ok_r = (row >= 1) & (row <= src_grid.nrows - 2)
    return np.outer(ok_r, ok_c)


SRC = Grid(500_000.0, 4_200_000.0, 10.0, 10.0, 40, 50)  # 50 rows x 40 cols of 10 m


def ramp(x, y):
    return 3.0 + 0.02 * (x - 500_000.0) - 0.05 * (4_200_000.0 - y)


def quadratic(x, y):
    u, v = (x - 500_000.0) / 100.0, (4_200_000.0 - y) / 100.0
    return 1.0 + u - 2.0 * v + 0.7 * u * u - 0.4 * u * v + 0.3 * v * v


# -- the kernel -------------------------------------------------------------------
def test_keys_kernel_properties():
    assert keys_kernel(0.0) == 1.0
    np.testing.assert_array_equal(keys_kernel([1.0, -1.0, 2.0, -2.0, 2.5, 7.0]), 0.0)
    t = np.linspace(-3, 3, 61)
    np.testing.assert_array_equal(keys_kernel(t), keys_kernel(-t))
    # partition of unity and exact reproduction of x and x**2 at any offset s
    s = np.linspace(0.0, 1.0, 101)[:, None]
    k = np.arange(-2, 4)[None, :]
    w = keys_kernel(s - k)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-14)
    np.testing.assert_allclose((w * k).sum(axis=1), s[:, 0], atol=1e-14)
    np.testing.assert_allclose((w * k**2).sum(axis=1), s[:, 0] ** 2, atol=1e-13)
    # a = -0.5 values from Keys (1981) eq. 15
    np.testing.assert_allclose(keys_kernel([0.5, 1.5]), [0.5625, -0.0625])
    np.testing.assert_allclose(keys_kernel(1.5, a=-1.0), -0.125)


# -- exactness -----------------------------------------------------------------------
def test_identity_when_grids_are_equal():
    rng = np.random.default_rng(0)
    src = rng.normal(size=SRC.shape)
    # equal grids: every position is a source centre, weights (0, 1, 0, 0)
    np.testing.assert_array_equal(resample_cubic(src, SRC, SRC), src)


@pytest.mark.parametrize(
    "dst",
    [
        # upsampling by a non-integer ratio 2.5 with an offset of the origin
        Grid(500_003.3, 4_199_998.3, 4.0, 4.0, 90, 110),
        # upsampling by 2 (half-cell shifted centres) and by 3
        Grid(500_000.0, 4_200_000.0, 5.0, 5.0, 80, 100),
        Grid(500_000.0, 4_200_000.0, 10 / 3, 10 / 3, 120, 150),
        # downsampling by a non-integer ratio with anisotropic cells
        Grid(500_007.0, 4_199_991.0, 25.0, 17.0, 14, 27),
    ],
)
@pytest.mark.parametrize("func", [ramp, quadratic])
def test_reproduces_linear_and_quadratic_exactly_in_the_interior(dst, func):
    # With a = -0.5 the Keys weights reproduce polynomials of degree <= 2
    # exactly (Keys 1981, sec. III), so away from the clamped borders the only
    # error is rounding; values are O(10..1000), tolerance ~1e4 ulp of them.
    out = resample_cubic(sample(func, SRC), SRC, dst)
    inside = interior(SRC, dst)
    assert inside.sum() > 50
    expected = sample(func, dst)
    np.testing.assert_allclose(out[inside], expected[inside], rtol=1e-11, atol=1e-11)


def test_third_order_error_bound_and_convergence():
    # For smooth f the interpolation error is bounded, by Taylor expansion to
    # second order (which the kernel reproduces), by
    #   |err| <= max|f'''| h**3 / 6 * max_s sum_k |W(s-k)| |s-k|**3,
    # and that last factor is 0.5625 for a = -0.5 (computed below). In 2-D each
    # pass contributes such a term, so the bound is doubled. Halving h should
    # divide the error by ~8 (O(h**3)); we require > 6.
    s = np.linspace(0.0, 1.0, 2001)[:, None]
    k = np.arange(-2, 4)[None, :]
    c3 = (np.abs(keys_kernel(s - k)) * np.abs(s - k) ** 3).sum(axis=1).max()
    assert c3 == pytest.approx(0.5625, abs=1e-3)

    omega = 2 * np.pi / 400.0  # wavelength 400 m

    def f(x, y):
        return np.sin(omega * (x - 500_000.0)) * np.cos(omega * (4_200_000.0 - y))

    max_f3 = omega**3  # bound of every third partial derivative along x or y
    errors = []
    for h in (20.0, 10.0):
        n = int(2000 / h)
        src_grid = Grid(500_000.0, 4_200_000.0, h, h, n, n)
        dst = Grid(500_000.0 + 0.37 * h, 4_200_000.0 - 0.71 * h, h / 2.5, h / 2.5, 2 * n, 2 * n)
        out = resample_cubic(sample(f, src_grid), src_grid, dst)
        inside = interior(src_grid, dst)
        err = np.abs(out - sample(f, dst))[inside].max()
        assert err <= 2 * max_f3 * h**3 / 6 * c3
        errors.append(err)
    assert errors[0] / errors[1] > 6.0


# -- borders and extent ----------------------------------------------------------------
def test_outside_source_extent_is_nan_and_inside_is_finite():
    src = sample(ramp, SRC)
    # destination grid overhanging the source on all sides, 5 m cells
    dst = Grid(SRC.x_min - 50.0, SRC.y_max + 30.0, 5.0, 5.0, 100, 120)
    out = resample_cubic(src, SRC, dst)
    xc, yc = np.meshgrid(dst.x_centers(), dst.y_centers())
    inside = (xc > SRC.x_min) & (xc < SRC.x_max) & (yc > SRC.y_min) & (yc < SRC.y_max)
    assert inside.any() and (~inside).any()
    assert np.isnan(out[~inside]).all()
    assert np.isfinite(out[inside]).all()
    # between the outer centre and the outer edge, replicate clamping keeps the
    # values within the range of the edge neighbourhood
    assert np.nanmin(out) >= src.min() - 1.0 and np.nanmax(out) <= src.max() + 1.0


def test_disjoint_grid_is_all_nan():
    dst = Grid(SRC.x_max + 100.0, SRC.y_max, 10.0, 10.0, 5, 5)
    assert np.isnan(resample_cubic(np.ones(SRC.shape), SRC, dst)).all()


# -- nodata -------------------------------------------------------------------------
def test_nan_source_pixel_only_blanks_cells_it_is_nearest_to():
    src = np.full(SRC.shape, 2.5)
    src[20, 15] = np.nan
    dst = Grid(SRC.x_min, SRC.y_max, 10 / 3, 10 / 3, 120, 150)  # 3x upsampling
    out = resample_cubic(src, SRC, dst)
    expected_nan = np.zeros(dst.shape, bool)
    expected_nan[60:63, 45:48] = True  # the 3 x 3 destination cells inside pixel (20, 15)
    np.testing.assert_array_equal(np.isnan(out), expected_nan)
    # renormalized weights still sum to 1, so a constant is kept everywhere else
    np.testing.assert_allclose(out[~expected_nan], 2.5, rtol=1e-13)


def test_nan_neighbour_renormalizes_smooth_data():
    src = sample(ramp, SRC)
    src[20, 15] = np.nan
    dst = Grid(SRC.x_min + 1.0, SRC.y_max - 1.0, 2.5, 2.5, 150, 190)
    out = resample_cubic(src, SRC, dst)
    expected = sample(ramp, dst)
    ok = np.isfinite(out) & interior(SRC, dst)
    # Dropping a non-nearest tap j and renormalizing changes a 1-D linear
    # interpolation by w_j * slope * (p - x_j) / (1 - w_j), at most 9/14 of a
    # cell step (w_j = 0.5625 at distance 0.5). The ramp steps 0.2 per cell in
    # x and 0.5 in y; the y pass can amplify an x-pass error by sum|w| <= 1.25:
    bound = 9 / 14 * (0.2 * 1.25 + 0.5)
    err = np.abs(out - expected)[ok]
    assert err.max() <= bound
    assert err.max() > 1e-6  # the NaN did change the neighbourhood: not vacuous
    assert np.isnan(out).sum() == 16  # 4 x 4 destination cells nearest to the NaN


# -- stacks and input handling -----------------------------------------------------------
def test_stack_matches_band_by_band():
    rng = np.random.default_rng(1)
    stack = rng.normal(size=(3,) + SRC.shape)
    stack[1, 10:12, 5:9] = np.nan
    dst = Grid(500_003.3, 4_199_998.3, 4.0, 4.0, 90, 110)
    out = resample_cubic(stack, SRC, dst)
    assert out.shape == (3,) + dst.shape
    for b in range(3):
        np.testing.assert_array_equal(out[b], resample_cubic(stack[b], SRC, dst))


def test_input_not_mutated():
    src = sample(ramp, SRC).astype(np.float32)
    src[3, 3] = np.nan
    before = src.copy()
    resample_cubic(src, SRC, Grid(SRC.x_min, SRC.y_max, 4.0, 4.0, 100, 125))
    np.testing.assert_array_equal(src, before)


def test_bad_inputs_rejected():
    with pytest.raises(ValueError, match="ndim=1"):
        resample_cubic(np.zeros(10), SRC, SRC)
    with pytest.raises(ValueError, match=r"\(49, 40\).*\(50, 40\)"):
        resample_cubic(np.zeros((49, 40)), SRC, SRC)
    with pytest.raises(ValueError, match="Grid"):
        resample_cubic(np.zeros(SRC.shape), SRC, (0, 0, 1, 1, 2, 2))


def test_large_upsample_runs():
    # 100 x 100 -> 2000 x 2000 (factor 20): vectorized path, sanity of result
    src_grid = Grid(0.0, 1000.0, 10.0, 10.0, 100, 100)
    dst = Grid(0.0, 1000.0, 0.5, 0.5, 2000, 2000)
    src = np.add.outer(np.arange(100.0), np.arange(100.0))
    out = resample_cubic(src, src_grid, dst)
    assert out.shape == (2000, 2000)
    assert np.isfinite(out).all()
