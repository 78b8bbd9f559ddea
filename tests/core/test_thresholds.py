"""Anomaly thresholds (core.thresholds): the C-A fractal method and the classic ones."""

import numpy as np
import pytest

from geochem_fusion.core.thresholds import (
    anomaly_thresholds,
    classify,
    concentration_area,
    fit_concentration_area,
)


def _two_population_field(seed=0, shape=(300, 300), background=(10.0, 0.5), anomaly=2.0,
                          brk=100.0):
    """A raster whose area-concentration law breaks at ``brk``.

    Background: ``A(rho) ~ rho ** -0.5`` from 10 up to ``brk``; anomalies:
    ``A(rho) ~ rho ** -2`` above it (Cheng et al. 1994's two power laws).  The
    anomalous values fill a blob around a centre, the background the rest,
    with noise in position so the field is not just a sorted ramp.
    """
    rng = np.random.default_rng(seed)
    n = shape[0] * shape[1]
    low, alpha = background
    u = rng.uniform(size=n)
    s_break = (brk / low) ** -alpha
    values = np.where(
        u >= s_break,
        low * u ** (-1.0 / alpha),  # survival (rho/low)^-alpha, above s_break: rho < brk
        brk * (u / s_break) ** (-1.0 / anomaly),  # survival s_break (rho/brk)^-anomaly
    )
    rows, cols = np.indices(shape)
    distance = np.hypot(rows - shape[0] / 2, cols - shape[1] / 2) + rng.normal(0, 5, shape)
    order = np.argsort(distance.ravel())
    field = np.empty(n)
    field[order] = np.sort(values)[::-1]
    return field.reshape(shape)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_two_population_field_gives_the_true_break_within_15_percent(seed):
    field = _two_population_field(seed)
    result = anomaly_thresholds(field)
    assert result.ca.n_segments >= 2
    closest = min(result.ca.thresholds, key=lambda t: abs(np.log(t / 100.0)))
    assert closest == pytest.approx(100.0, rel=0.15)
    # the fitted slopes are the two power laws' exponents
    assert result.ca.slopes[0] == pytest.approx(-0.5, abs=0.15)
    assert result.ca.slopes[-1] == pytest.approx(-2.0, abs=0.6)


def test_single_power_law_needs_one_segment():
    rng = np.random.default_rng(3)
    values = 10.0 * rng.uniform(size=50_000) ** (-1.0 / 1.5)
    result = anomaly_thresholds(values)
    assert result.ca.n_segments == 1
    assert result.ca.thresholds.size == 0


def test_given_number_of_segments_is_used():
    field = _two_population_field(0)
    x, y = concentration_area(field.ravel())
    assert fit_concentration_area(x, y, n_segments=3).n_segments == 3
    with pytest.raises(ValueError, match="segments"):
        fit_concentration_area(x, y, n_segments=0)


def test_concentration_area_counts_cells_at_or_above_each_level():
    values = np.array([1.0, 2.0, 2.0, 4.0, 8.0])
    x, y = concentration_area(values, cell_area=100.0, n_levels=4)
    assert np.allclose(x, np.log10([1.0, 2.0, 4.0, 8.0]))
    assert np.allclose(10 ** y, [500.0, 400.0, 200.0, 100.0])


def test_classic_thresholds_of_a_lognormal_sample():
    rng = np.random.default_rng(4)
    logs = rng.normal(np.log10(20.0), 0.3, 200_000)
    result = anomaly_thresholds(10 ** logs, percentiles=(95,))
    expected = 20.0 * 10 ** (2 * 0.3)
    assert result.classic["median + 2 MAD (log10)"] == pytest.approx(expected, rel=0.02)
    assert result.classic["mean + 2 SD (log10)"] == pytest.approx(expected, rel=0.02)
    assert result.classic["percentile 95"] == pytest.approx(20.0 * 10 ** (1.645 * 0.3), rel=0.02)
    shares = {row["method"]: row["share above (%)"] for row in result.table()}
    assert shares["percentile 95"] == pytest.approx(5.0, abs=0.1)


def test_nodata_and_non_positive_values_are_left_out_and_counted():
    field = _two_population_field(0, shape=(100, 100))
    field[:3] = np.nan
    field[3, :10] = 0.0
    result = anomaly_thresholds(field)
    assert result.n_left_out == 310
    assert result.n_values == field.size - 310
    with pytest.raises(ValueError, match="usable values"):
        anomaly_thresholds(np.full(50, np.nan))
    with pytest.raises(ValueError, match="all equal"):
        anomaly_thresholds(np.full(50, 3.0))


def test_classify_background_then_anomaly_classes():
    values = np.array([[1.0, 5.0, 50.0], [np.nan, 10.0, 500.0]])
    classes = classify(values, [100.0, 10.0])
    assert classes.tolist() == [[0, 0, 1], [255, 1, 2]]
