"""Property-based tests (hypothesis): random shapes, NaN patterns and values never crash the core.

"Never crash" means: a result that satisfies the documented invariants, or a ``ValueError``
with a message (the only exception the algorithms turn into a user message). Examples are
kept few (50) and small so that the file runs in seconds.
"""

import re
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from geochem_fusion.core import metrics
from geochem_fusion.core.fusion import fuse
from geochem_fusion.core.grid import Grid
from geochem_fusion.core.indices import compute_indices, default_band_map
from geochem_fusion.core.pyramid import decompose, max_levels
from geochem_fusion.core.resample import resample_cubic

SETTINGS = settings(max_examples=50, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# values span several orders of magnitude and both signs; NaN comes from a separate mask
VALUES = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False, width=64)


@st.composite
def stacks(draw, *, bands=(1, 3), rows=(1, 24), cols=(1, 24), values=VALUES, nan=True):
    """A (bands, rows, cols) float64 stack with a random NaN (nodata) pattern."""
    shape = (draw(st.integers(*bands)), draw(st.integers(*rows)), draw(st.integers(*cols)))
    data = draw(arrays(np.float64, shape, elements=values))
    if nan:
        mask = draw(arrays(np.bool_, shape, elements=st.booleans()))
        # mostly valid pixels, as in real imagery: keep about a quarter of the drawn holes
        keep = draw(arrays(np.bool_, shape, elements=st.sampled_from([True, False, False, False])))
        data[mask & keep] = np.nan
    return data


def scale_of(x):
    finite = np.abs(x[np.isfinite(x)])
    return max(1.0, float(finite.max())) if finite.size else 1.0


# ---------------------------------------------------------------------------
# pyramid
# ---------------------------------------------------------------------------
@SETTINGS
@given(data=st.data(), x=stacks())
def test_decompose_splits_exactly_and_keeps_nodata(data, x):
    levels = data.draw(st.integers(0, max_levels(x.shape)))
    before = x.copy()
    low, high = decompose(x, levels)
    np.testing.assert_array_equal(x, before)  # the input is not modified
    assert low.shape == high.shape == x.shape
    valid = np.isfinite(x)
    # nodata stays nodata, and nothing else becomes nodata (normalized convolution)
    np.testing.assert_array_equal(np.isfinite(low), valid)
    np.testing.assert_array_equal(np.isfinite(high), valid)
    # X = X_L + X_H up to float64 rounding of sums of values of this magnitude
    np.testing.assert_allclose((low + high)[valid], x[valid], rtol=0,
                               atol=1e-9 * scale_of(x))


@SETTINGS
@given(x=stacks(rows=(1, 12), cols=(1, 12)))
def test_decompose_refuses_too_many_levels_with_a_message(x):
    with pytest.raises(ValueError, match="too deep"):
        decompose(x, max_levels(x.shape) + 1)


# ---------------------------------------------------------------------------
# resampling
# ---------------------------------------------------------------------------
@st.composite
def grid_pairs(draw):
    """A source grid and a destination grid overlapping it (any cell sizes and offsets)."""
    src = Grid(0.0, 1000.0, draw(st.floats(1, 50)), draw(st.floats(1, 50)),
               draw(st.integers(1, 20)), draw(st.integers(1, 20)))
    cell = draw(st.floats(0.5, 80))
    x0 = draw(st.floats(src.x_min - 3 * cell, src.x_max - 0.1))
    y1 = draw(st.floats(src.y_min + 0.1, src.y_max + 3 * cell))
    dst = Grid(x0, y1, cell, cell, draw(st.integers(1, 20)), draw(st.integers(1, 20)))
    return src, dst


@SETTINGS
@given(data=st.data(), grids=grid_pairs())
def test_resample_is_bounded_and_nan_only_outside_or_at_holes(data, grids):
    src_grid, dst_grid = grids
    src = data.draw(arrays(np.float64, src_grid.shape, elements=VALUES))
    out = resample_cubic(src, src_grid, dst_grid)
    assert out.shape == dst_grid.shape
    assert not np.isinf(out).any()
    # all-finite source: finite exactly where the destination centre is inside the source extent
    xc, yc = np.meshgrid(dst_grid.x_centers(), dst_grid.y_centers())
    inside = ((xc >= src_grid.x_min) & (xc <= src_grid.x_max)
              & (yc >= src_grid.y_min) & (yc <= src_grid.y_max))
    np.testing.assert_array_equal(np.isfinite(out), inside)
    # Keys weights (a = -0.5) have an absolute sum of at most 1.25 per axis, 1.5625 in 2-D
    assert np.all(np.abs(out[inside]) <= 1.5625 * np.abs(src).max() + 1e-9 * scale_of(src))


@SETTINGS
@given(grids=grid_pairs(), value=VALUES, data=st.data())
def test_resample_keeps_a_constant_field_constant_despite_holes(grids, value, data):
    src_grid, dst_grid = grids
    src = np.full(src_grid.shape, value)
    holes = data.draw(arrays(np.bool_, src_grid.shape, elements=st.booleans()))
    src[holes] = np.nan
    out = resample_cubic(src, src_grid, dst_grid)
    finite = np.isfinite(out)
    # renormalized weights sum to 1, so a constant stays that constant (rounding only)
    np.testing.assert_allclose(out[finite], value, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------
# fusion
# ---------------------------------------------------------------------------
@SETTINGS
@given(data=st.data(), mode=st.sampled_from(["paper", "coherent"]), log=st.booleans())
def test_fuse_gives_a_result_or_a_message(data, mode, log):
    rows, cols = data.draw(st.integers(8, 24)), data.draw(st.integers(8, 24))
    geo_values = st.floats(0.01, 1e4) if log else VALUES
    geo = data.draw(stacks(bands=(1, 1), rows=(rows, rows), cols=(cols, cols),
                           values=geo_values))[0]
    features = data.draw(stacks(bands=(1, 3), rows=(rows, rows), cols=(cols, cols)))
    levels = data.draw(st.integers(0, min(3, max_levels(geo.shape))))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = fuse(geo, features, levels=levels, mode=mode, log_transform=log)
        except ValueError as exc:
            # only the documented refusals, each with a count that is true of this input
            # (any other ValueError, or a refusal of a well-posed input, fails)
            valid = np.isfinite(geo) & np.isfinite(features).all(axis=0)
            message = str(exc)
            few = re.search(r"only (\d+) pixels have finite geochemistry and all (\d+) "
                            r"features; the global fit needs at least (\d+)", message)
            constant = re.search(r"feature\(s\) \[[\d, ]+\] \(0-based\) are constant over "
                                 r"the (\d+) pixels", message)
            collinear = re.search(r"the (\d+) features are collinear \(rank (\d+) after "
                                  r"centring\)", message)
            if collinear:  # the third documented refusal: rank below the number of features
                assert int(collinear.group(1)) == features.shape[0] > int(collinear.group(2))
                event("refused: collinear features")
                return
            assert few or constant, f"unexpected refusal: {message}"
            if few:
                assert int(few.group(1)) == valid.sum() < int(few.group(3))
                assert int(few.group(2)) == features.shape[0]
            else:
                assert int(constant.group(1)) == valid.sum()
                # a constant design is only possible when few pixels or few values vary
                distinct = min(np.unique(f[valid]).size for f in features)
                assert valid.sum() < 4 * features.shape[0] + 8 or distinct < valid.sum()
            event("refused: " + ("too few pixels" if few else "constant feature"))
            return
    event("fused")
    assert result.fused.shape == geo.shape
    assert not np.isinf(result.fused).any() or log  # 10**x may overflow only when logged
    valid = np.isfinite(geo) & np.isfinite(features).all(axis=0)
    # a pixel without geochemistry or a feature is nodata; every other pixel has a value
    assert not np.isfinite(result.fused[~valid]).any()
    if not log:
        assert np.isfinite(result.fused[valid]).all()


@SETTINGS
@given(data=st.data(), mode=st.sampled_from(["paper", "coherent"]))
def test_fuse_of_a_well_posed_input_never_refuses(data, mode):
    # enough valid pixels and features that vary: a refusal here is a bug, not a message
    rows, cols = data.draw(st.integers(16, 24)), data.draw(st.integers(16, 24))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    features = rng.uniform(0.05, 0.6, (2, rows, cols))
    geo = 10 + 5 * features[0] - 3 * features[1] + rng.normal(scale=0.1, size=(rows, cols))
    holes = rng.random((rows, cols)) < data.draw(st.floats(0.0, 0.3))  # up to 30 % nodata
    geo[holes] = np.nan
    levels = data.draw(st.integers(0, 2))
    result = fuse(geo, features, levels=levels, mode=mode)
    assert np.isfinite(result.fused[~holes]).all() and np.isnan(result.fused[holes]).all()


@SETTINGS
@given(data=st.data())
def test_fuse_refuses_non_positive_values_with_log_transform(data):
    geo = data.draw(stacks(bands=(1, 1), rows=(8, 8), cols=(8, 8), nan=False))[0]
    geo[0, 0] = data.draw(st.floats(-1e4, 0))
    features = data.draw(stacks(bands=(1, 1), rows=(8, 8), cols=(8, 8), nan=False))
    with pytest.raises(ValueError, match="positive"):
        fuse(geo, features, levels=1, log_transform=True)


# ---------------------------------------------------------------------------
# indices
# ---------------------------------------------------------------------------
@SETTINGS
@given(data=st.data(), sensor=st.sampled_from(["aster", "sentinel2"]))
def test_indices_are_never_infinite_and_nodata_propagates(data, sensor):
    n_bands = 9 if sensor == "aster" else 4
    # reflectance-like values including exact zeros (zero denominators) and negatives
    values = st.one_of(st.just(0.0), st.floats(-1.0, 1e4, allow_nan=False))
    stack = data.draw(stacks(bands=(n_bands, n_bands), rows=(1, 10), cols=(1, 10),
                             values=values))
    band_map = default_band_map(n_bands, sensor)
    result = compute_indices(stack, band_map, sensor=sensor)
    assert result.data.shape == (len(result.indices),) + stack.shape[1:]
    assert not np.isinf(result.data).any()
    for k, index in enumerate(result.indices):
        used = [band_map[b] for b in index.bands]
        missing = ~np.isfinite(stack[used]).all(axis=0)
        assert np.isnan(result.data[k][missing]).all()


# ---------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------
@SETTINGS
@given(data=st.data())
def test_metrics_stay_in_their_ranges(data):
    a = data.draw(stacks(bands=(1, 1), rows=(1, 12), cols=(1, 12)))[0]
    b = data.draw(arrays(np.float64, a.shape, elements=VALUES))
    pairs = int((np.isfinite(a) & np.isfinite(b)).sum())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # constant layers: NaN with a warning
        if pairs < 2:
            with pytest.raises(ValueError, match="at least 2 pixels"):
                metrics.rmse(a, b)
            return
        assert metrics.rmse(a, b) >= 0
        assert metrics.rmse(a, a) == 0
        assert metrics.bias(a, b) == pytest.approx(-metrics.bias(b, a), abs=1e-9)
        cc = metrics.pearson_cc(a, b)
        assert np.isnan(cc) or -1.0 <= cc <= 1.0
        q = metrics.uiqi(a, b)
        assert np.isnan(q) or q <= 1.0 + 1e-9
        assert metrics.uiqi(a, a) == pytest.approx(1.0) or np.isnan(metrics.uiqi(a, a))


@SETTINGS
@given(data=st.data())
def test_block_average_of_a_constant_is_that_constant(data):
    rows, cols = data.draw(st.integers(1, 20)), data.draw(st.integers(1, 20))
    value = data.draw(VALUES)
    factor = data.draw(st.integers(1, min(rows, cols)))
    out = metrics.block_average(np.full((rows, cols), value), factor)
    np.testing.assert_allclose(out[np.isfinite(out)], value, rtol=1e-12, atol=1e-12)
