"""Checks of field samples before kriging (core.samples): clean what is safe, refuse the rest."""

import numpy as np
import pytest

from geochem_fusion.core import kriging, samples
from geochem_fusion.core.samples import check_overlap, check_sample_table, check_samples


def survey(n=40, *, seed=0, size=10_000.0):
    """Scattered sites over ``size`` metres with lognormal concentrations (ppm)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, size, n) + 500_000.0
    y = rng.uniform(0, size, n) + 7_000_000.0
    values = 10 ** rng.normal(1.5, 0.2, n)  # narrow: no sample is a far outlier by chance
    return x, y, values


def test_min_samples_matches_kriging():
    assert samples.MIN_SAMPLES == kriging.MIN_SAMPLES


def test_clean_samples_pass_unchanged_without_messages():
    x, y, v = survey()
    x2, y2, v2, messages = check_samples(x, y, v, log_transform=True, name="Cu")
    assert messages == []
    np.testing.assert_array_equal(np.sort(v2), np.sort(v))
    assert x2.size == x.size


def test_inputs_are_not_modified():
    x, y, v = survey()
    v[3] = -1.0
    v[4] = np.nan
    copies = x.copy(), y.copy(), v.copy()
    check_samples(x, y, v, log_transform=True, below_detection="half-min", name="Cu")
    for before, after in zip(copies, (x, y, v)):
        np.testing.assert_array_equal(before, after)


def test_missing_values_are_left_out_and_counted():
    x, y, v = survey()
    v[[2, 5, 9]] = np.nan
    x2, _, v2, messages = check_samples(x, y, v, name="Cu")
    assert x2.size == x.size - 3 and np.isfinite(v2).all()
    assert any("3 of 40 samples have no value for Cu" in m for m in messages)


def test_non_finite_coordinates_are_left_out():
    x, y, v = survey()
    x[0] = np.inf
    x2, _, _, messages = check_samples(x, y, v, name="Cu")
    assert x2.size == x.size - 1
    assert any("no valid coordinates" in m for m in messages)


@pytest.mark.parametrize("code", [0.0, -1.0, -5.0])
def test_log_transform_refuses_non_positive_values_naming_them(code):
    x, y, v = survey()
    v[[1, 7]] = code
    with pytest.raises(ValueError, match=rf"2 samples of Cu are below detection \({code:g} "
                                         r"\(2 samples\)\) and would reach the log transform.*"
                                         r"'Below detection'"):
        check_samples(x, y, v, log_transform=True, name="Cu")


def test_half_min_replaces_below_detection_codes():
    x, y, v = survey()
    v[[1, 7]] = -1.0
    v[11] = -5.0
    smallest = v[v > 0].min()
    _, _, v2, messages = check_samples(x, y, v, log_transform=True, below_detection="half-min",
                                       name="Cu")
    assert (v2 > 0).all()
    assert np.count_nonzero(v2 == smallest / 2) == 3  # exactly the three codes
    assert any("3 samples of Cu below detection" in m and "-5 (1 sample)" in m
               and "-1 (2 samples)" in m for m in messages)


def test_half_min_without_any_positive_value_is_refused():
    x, y, _ = survey(12)
    with pytest.raises(ValueError, match="no sample of Cu is positive"):
        check_samples(x, y, -np.ones(12), log_transform=True, below_detection="half-min",
                      name="Cu")


def test_negative_values_without_log_are_refused_by_default():
    """Issue 12: "refuse" refuses whenever a below-detection value would reach the kriging."""
    x, y, v = survey()
    v[4] = -2.0
    with pytest.raises(ValueError, match=r"1 sample of Cu is below detection \(-2 \(1 sample\)\)"
                                         r" and would reach the kriging as if measured"):
        check_samples(x, y, v, name="Cu")


def test_unknown_policy_is_refused():
    x, y, v = survey()
    with pytest.raises(ValueError, match="below_detection must be one of"):
        check_samples(x, y, v, below_detection="drop")


def test_duplicates_are_merged_by_their_mean():
    x, y, v = survey(30)
    x = np.append(x, [x[0], x[0]])
    y = np.append(y, [y[0], y[0]])
    v = np.append(v, [v[0] + 3.0, v[0] + 6.0])
    x2, y2, v2, messages = check_samples(x, y, v, name="Cu")
    assert x2.size == 30
    site = (x2 == x[0]) & (y2 == y[0])
    assert site.sum() == 1
    assert v2[site][0] == pytest.approx(v[0] + 3.0)  # mean of v, v+3, v+6
    assert any("1 location holds 3 samples with identical coordinates" in m for m in messages)


def test_duplicates_of_several_elements_merge_each_with_its_own_values():
    x, y, cu = survey(20)
    zn = cu * 2
    x = np.append(x, x[0])
    y = np.append(y, y[0])
    cu = np.append(cu, np.nan)  # the repeat has no Cu: the site keeps the first Cu
    zn = np.append(zn, zn[0] + 10.0)
    _, _, table, _ = check_sample_table(x, y, {"Cu": cu, "Zn": zn})
    assert table["Cu"].size == 20
    assert np.isclose(table["Cu"], cu[0]).sum() == 1
    assert np.isclose(table["Zn"], zn[0] + 5.0).sum() == 1


def test_too_few_samples_says_how_many_are_needed():
    x, y, v = survey(12)
    v[:4] = np.nan
    with pytest.raises(ValueError, match="needs at least 10 samples.*got 8"):
        check_samples(x, y, v, name="Cu")


def test_duplicates_count_once_toward_the_minimum():
    x, y, v = survey(6)
    x, y, v = np.tile(x, 2), np.tile(y, 2), np.tile(v, 2)  # 12 samples at 6 sites
    with pytest.raises(ValueError, match="got 6"):
        check_samples(x, y, v, name="Cu")


def test_all_equal_values_are_refused():
    x, y, _ = survey(20)
    with pytest.raises(ValueError, match="all 20 samples of Cu have the same value"):
        check_samples(x, y, np.full(20, 5.0), name="Cu")


def test_extreme_outlier_is_reported_not_removed():
    x, y, v = survey(60)
    v[13] = 1e6  # a typing error (1000000 instead of 100): far beyond Q3 + 3 IQR in log10
    _, _, v2, messages = check_samples(x, y, v, log_transform=True, name="Cu")
    assert 1e6 in v2
    report = [m for m in messages if "extreme outlier" in m]
    assert len(report) == 1 and "1e+06" in report[0] and "log10" in report[0]


def test_moderately_high_values_are_not_outliers():
    x, y, v = survey(60)
    # twice the largest value: 0.3 above the log10 maximum, which sits about 0.75 IQR above Q3
    # for 60 draws of sigma 0.2 (IQR ~0.27): about Q3 + 2 IQR, inside the Q3 + 3 IQR fence
    v[13] = v.max() * 2
    _, _, _, messages = check_samples(x, y, v, name="Cu")
    assert not any("outlier" in m for m in messages)


def test_isolated_sample_is_reported():
    x, y, v = survey(40)
    x[5] += 1_000_000.0  # a coordinate typo: 1000 km east
    _, _, _, messages = check_samples(x, y, v, name="Cu")
    report = [m for m in messages if "far from all others" in m]
    assert len(report) == 1 and report[0].startswith("1 sample lies far")


def test_overlap_no_sample_inside_is_refused():
    x, y, _ = survey()
    with pytest.raises(ValueError, match="no sample falls inside the image extent"):
        check_overlap(x, y, (0.0, 0.0, 1000.0, 1000.0))


def test_overlap_margin_counts_samples_just_outside():
    x, y, _ = survey()
    extent = (x.max() + 50.0, y.min(), x.max() + 500.0, y.max())
    with pytest.raises(ValueError):
        check_overlap(x, y, extent)
    check_overlap(x, y, extent, margin=100.0, min_spacings=0)


def test_small_overlap_is_reported():
    x, y, _ = survey(100)
    spacing = kriging.median_nn_spacing(x, y)
    x0, y0 = x.min(), y.min()
    small = (x0, y0, x0 + 2 * spacing, y0 + 2 * spacing)  # two spacings across
    messages = check_overlap(x, y, small, spacing=spacing)
    assert len(messages) == 1 and "less than 3 sample spacings" in messages[0]
    assert check_overlap(x, y, (x.min(), y.min(), x.max(), y.max())) == []


def test_overlap_thinner_than_one_spacing_is_refused():
    x, y, _ = survey(100)
    spacing = kriging.median_nn_spacing(x, y)
    # a strip beside the survey: inside the margin of one spacing, but thinner than one spacing
    strip = (x.max() + 0.1 * spacing, y.min(), x.max() + 0.5 * spacing, y.max())
    with pytest.raises(ValueError, match="less than one sample spacing"):
        check_overlap(x, y, strip, spacing=spacing, margin=spacing)
