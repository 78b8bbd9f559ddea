"""Field-data conventions for sample values (issue 12): one set of rules, in core.samples."""

import numpy as np
import pytest

from geochem_fusion.core import kriging
from geochem_fusion.core.samples import (
    check_coverage,
    check_sample_table,
    check_samples,
    parse_missing_codes,
    parse_values,
    qualifier_field,
)


def survey(n=60, *, seed=0, size=20_000.0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, size, n) + 500_000.0
    y = rng.uniform(0, size, n) + 7_000_000.0
    values = 10 ** rng.normal(1.5, 0.2, n)
    return x, y, values


def test_parse_numbers_text_limits_and_nulls():
    p = parse_values([12.5, "7", "3,5", "<5", "< 0.2", ">5000", None, "", "n.a.", "abc", 4],
                     name="Cu")
    np.testing.assert_array_equal(p.below, [0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(p.above, [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(p.values[[0, 1, 2, 3, 4, 5, 10]], [12.5, 7, 3.5, 5, 0.2, 5000, 4])
    np.testing.assert_allclose(p.limit[[3, 4]], [5, 0.2])
    assert np.isnan(p.values[[6, 7, 8, 9]]).all()
    assert any("4 of 11 samples have no value for Cu" in m and "'abc' (1)" in m and "'n.a.' (1)"
               in m for m in p.messages)


def test_missing_value_codes_are_dropped_and_counted():
    p = parse_values([10.0, -9999, -9999.0, "-999", 3.0], name="Cu")
    assert np.isnan(p.values[[1, 2, 3]]).all() and not p.below.any()
    assert any("3 samples of Cu hold a missing-value code" in m and "-9999 (2 samples)" in m
               for m in p.messages)
    p = parse_values([10.0, -1.0], name="Cu", missing_codes=parse_missing_codes("-1; -9999"))
    assert np.isnan(p.values[1])
    with pytest.raises(ValueError, match="'x' is not a number"):
        parse_missing_codes("-9999, x")


def test_negative_values_mean_below_their_absolute_value_when_asked():
    p = parse_values([10.0, -5.0, -0.5], name="Cu", negative_below=True)
    np.testing.assert_array_equal(p.below, [0, 1, 1])
    np.testing.assert_allclose(p.limit[1:], [5.0, 0.5])
    p = parse_values([10.0, -5.0], name="Cu")  # a code without a limit otherwise
    assert p.below[1] and np.isnan(p.limit[1])


def test_gtk_qualifier_columns():
    values = [4.62, 0.0, 2.3, 5.0, 12.0, 900.0]
    marks = [None, "<", "!", "<", "", ">"]
    p = parse_values(values, name="Cu", qualifiers=marks)
    np.testing.assert_array_equal(p.below, [0, 1, 0, 1, 0, 0])
    np.testing.assert_array_equal(p.above, [0, 0, 0, 0, 0, 1])
    assert np.isnan(p.limit[1]) and p.limit[3] == 5.0  # "<" with 0: limit not given
    assert any("1 sample of Cu carries the qualifier '!'" in m for m in p.messages)


def test_qualifier_field_names():
    names = ["Cu_ppm_511", "Cu_511P_T", "Ni_ppm_511", "Ni_511P_T", "Zn", "Zn_T", "Au"]
    assert qualifier_field("Cu_ppm_511", names) == "Cu_511P_T"
    assert qualifier_field("Zn", names) == "Zn_T"
    assert qualifier_field("Au", names) is None


def test_text_below_detection_is_not_dropped_but_refused_by_default():
    """Issue 12: '<5' used to be 'not a number' and dropped: the low end disappeared."""
    x, y, v = survey()
    raw = list(v)
    raw[3] = raw[9] = "<5"
    with pytest.raises(ValueError, match=r"2 samples of Cu are below detection \(<5 \(2 "
                                         r"samples\)\).*'Below detection'"):
        check_samples(x, y, raw, name="Cu")


def test_fraction_of_each_samples_own_detection_limit():
    """Issue 12: replace used half the smallest value (2.55), ignoring the limit (5)."""
    x, y, v = survey()
    raw = list(v)
    raw[3], raw[9], raw[11] = "<5", "<2", -1.0
    smallest = min(v[i] for i in range(v.size) if i not in (3, 9, 11))
    _, _, table, messages = check_sample_table(
        x, y, {"Cu": raw}, below_detection="fraction-dl", log_transform=True)
    out = table["Cu"]
    assert np.isclose(out, 2.5).sum() == 1 and np.isclose(out, 1.0).sum() == 1
    assert np.isclose(out, 0.5 * smallest).sum() == 1  # -1: no limit, the smallest stands in
    assert any("3 samples of Cu below detection" in m and "1 of them give no detection limit"
               in m for m in messages)
    _, _, table, _ = check_sample_table(x, y, {"Cu": raw}, below_detection="fraction-dl",
                                        dl_fraction=0.25)
    assert np.isclose(table["Cu"], 1.25).sum() == 1
    with pytest.raises(ValueError, match="fraction of the detection limit"):
        check_sample_table(x, y, {"Cu": raw}, below_detection="fraction-dl", dl_fraction=0)


def test_missing_code_without_log_is_never_kriged():
    """Issue 12: -9999 with LOG off was kriged as a concentration (fused minimum -1198 ppm)."""
    x, y, v = survey()
    v[[2, 5]] = -9999.0
    x2, _, v2, messages = check_samples(x, y, v, name="Cu")
    assert x2.size == x.size - 2 and v2.min() > 0
    assert any("2 samples of Cu hold a missing-value code (-9999 (2 samples))" in m
               for m in messages)


def test_above_upper_limit_is_kept_and_reported():
    x, y, v = survey()
    raw = list(v)
    raw[0] = ">5000"
    _, _, v2, messages = check_samples(x, y, raw, name="Cu", outlier_iqr=0)
    assert 5000.0 in v2
    assert any("above the upper limit" in m and ">5000 (1 sample)" in m for m in messages)


def test_near_duplicates_are_merged_and_counted():
    """Issue 12: 10 pairs 0.5 m apart made the variogram range fall from 12.7 km to 604 m."""
    x, y, v = survey(100)
    rng = np.random.default_rng(1)
    pick = rng.choice(100, 10, replace=False)
    x = np.append(x, x[pick] + 0.5)
    y = np.append(y, y[pick])
    v = np.append(v, v[pick] * 3.0)
    x2, y2, v2, messages = check_samples(x, y, v, name="Cu")
    assert x2.size == 100
    assert any("10 groups of 20 samples closer to each other than" in m for m in messages)
    for i in pick:
        site = np.argmin(np.hypot(x2 - x[i] - 0.25, y2 - y[i]))
        assert np.hypot(x2[site] - x[i] - 0.25, y2[site] - y[i]) < 1e-6
        assert v2[site] == pytest.approx(2.0 * v[i])


def test_kriging_merges_near_duplicates_too():
    """No variogram is fitted on pairs at almost zero distance, whoever calls the kriging."""
    x, y, v = survey(60)
    x = np.append(x, x[:5] + 0.01)
    y = np.append(y, y[:5])
    v = np.append(v, v[:5] * 5)
    with pytest.warns(UserWarning, match="5 groups of 10 samples closer"):
        model = kriging.OrdinaryKrigingModel("spherical").fit(x, y, v, cross_validate=False)
    assert model.x_.size == 60


def test_coverage_counts_samples_outside_and_on_nodata():
    x = np.array([0.5, 1.5, 2.5, 3.5, 10.0, 20.0])
    y = np.full(6, 0.5)
    on_nodata = np.array([False, True, False, False, False, False])
    (message,) = check_coverage(x, y, (0, 0, 4, 1), on_nodata)
    assert "Of the 6 sample sites, 2 (33.3 %) lie outside the image and 1 (16.7 %) fall on its" \
           " nodata" in message
    assert check_coverage(x[:4], y[:4], (0, 0, 4, 1)) == []


def test_float_nodata_numbers_are_missing_codes():
    """1e30, -1e32, 3.4e38: what GIS software writes for "no value" in float fields."""
    p = parse_values([10.0, 1e30, -1e32, 3.4e38, 5.0], name="Cu")
    assert np.isnan(p.values[1:4]).all() and not p.below.any()
    assert any("3 samples of Cu hold a missing-value code" in m for m in p.messages)
