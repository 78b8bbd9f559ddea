"""Variogram control and geometric anisotropy of core.kriging (issue 13).

The synthetic fields are Gaussian with PyKrige's exponential covariance in
the isotropic space of a known :class:`Anisotropy`, so the truth is known.
"""

import math

import numpy as np
import pytest

from geochem_fusion.core.kriging import (
    Anisotropy,
    OrdinaryKrigingModel,
    default_max_lag,
    experimental_variogram,
    fit_variogram,
    krige_at,
    leave_one_out,
)


def _field(n, seed, anisotropy=None, range_=3000.0, nugget=0.05, size=10_000.0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, size, n)
    y = rng.uniform(0, size, n)
    xs, ys = anisotropy.transform(x, y) if anisotropy is not None else (x, y)
    h = np.hypot(xs[:, None] - xs[None], ys[:, None] - ys[None])
    cov = np.exp(-3.0 * h / range_) + 1e-10 * np.eye(n)
    z = np.linalg.cholesky(cov) @ rng.standard_normal(n) + math.sqrt(nugget) * rng.standard_normal(n)
    return x, y, 5.0 + z


def _angle_difference(a, b):
    return abs((a - b + 90.0) % 180.0 - 90.0)


def test_anisotropy_azimuth_is_clockwise_from_north_and_matches_pykrige_angle():
    north = Anisotropy(0.0, 2.0)
    assert north.pykrige_angle == pytest.approx(90.0)
    # along the major axis (north) distances are kept, across (east) stretched by the ratio
    assert np.allclose(np.hypot(*north.transform(0.0, 1.0)), 1.0)
    assert np.allclose(np.hypot(*north.transform(1.0, 0.0)), 2.0)
    ne = Anisotropy(45.0, 3.0)
    assert ne.pykrige_angle == pytest.approx(45.0)
    assert np.allclose(np.hypot(*ne.transform(1.0, 1.0)), math.sqrt(2.0))
    assert ne.range_along(135.0, 900.0) == pytest.approx(300.0)
    with pytest.raises(ValueError, match="major/minor"):
        Anisotropy(10.0, 0.5)


def test_default_cut_off_is_a_third_of_the_diagonal_and_pairs_are_counted():
    x, y, z = _field(200, seed=1)
    cut = default_max_lag(x, y)
    assert cut == pytest.approx(math.hypot(np.ptp(x), np.ptp(y)) / 3.0)
    v = experimental_variogram(x, y, z)
    assert v.max_lag == pytest.approx(cut)
    assert v.lags.max() <= cut
    assert v.lags.size == 15
    # every pair closer than the cut-off is counted once
    d = np.hypot(x[:, None] - x[None], y[:, None] - y[None])
    assert v.pairs.sum() == int(((d > 0) & (d <= cut)).sum() // 2)
    w = experimental_variogram(x, y, z, lag_width=250.0, max_lag=2000.0)
    assert w.lag_width == 250.0 and w.lags.size == 8 and w.lags.max() <= 2000.0


def test_user_variogram_parameters_reach_pykrige_unchanged():
    x, y, z = _field(150, seed=2)
    user = {"sill": 1.3, "range": 2500.0, "nugget": 0.1}
    model = OrdinaryKrigingModel("exponential", variogram_parameters=user,
                                 anisotropy=(30.0, 2.0)).fit(x, y, z)
    kriger = model._kriger
    assert list(kriger.variogram_model_parameters) == [1.3 - 0.1, 2500.0, 0.1]
    assert kriger.variogram_model == "exponential"
    assert kriger.anisotropy_scaling == 2.0
    assert kriger.anisotropy_angle == pytest.approx(60.0)
    assert model.variogram_parameters_ == pytest.approx(user)


def test_fit_recovers_the_variogram_of_a_known_field():
    x, y, z = _field(500, seed=3, range_=2500.0, nugget=0.1)
    fitted = fit_variogram("exponential", experimental_variogram(x, y, z))
    assert fitted["range"] == pytest.approx(2500.0, rel=0.5)
    assert fitted["sill"] == pytest.approx(1.1, rel=0.35)


def test_auto_anisotropy_recovers_a_known_ellipse_and_beats_isotropic_kriging():
    truth = Anisotropy(30.0, 3.0)
    x, y, z = _field(600, seed=2, anisotropy=truth)
    train, test = slice(0, 450), slice(450, None)
    auto = OrdinaryKrigingModel("exponential", anisotropy="auto").fit(x[train], y[train], z[train])
    iso = OrdinaryKrigingModel("exponential").fit(x[train], y[train], z[train])
    assert auto.anisotropy_ is not None, auto.anisotropy_note_
    assert _angle_difference(auto.anisotropy_.azimuth, truth.azimuth) <= 15.0
    assert auto.anisotropy_.ratio == pytest.approx(truth.ratio, rel=0.3)
    held_auto = auto.predict(x[test], y[test])[0] - z[test]
    held_iso = iso.predict(x[test], y[test])[0] - z[test]
    assert np.sqrt(np.mean(held_auto**2)) < np.sqrt(np.mean(held_iso**2))
    assert auto.loo_["rmse"] < iso.loo_["rmse"]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_isotropic_field_gives_no_anisotropy(seed):
    x, y, z = _field(450, seed=seed)
    model = OrdinaryKrigingModel("exponential", anisotropy="auto").fit(x, y, z)
    assert model.anisotropy_ is None, model.anisotropy_note_
    assert model.anisotropy_note_.startswith("isotropic")


def test_anisotropic_leave_one_out_and_krige_at_match_pykrige():
    x, y, z = _field(120, seed=4, anisotropy=Anisotropy(60.0, 2.0))
    params = {"sill": 1.0, "range": 3000.0, "nugget": 0.05}
    aniso = Anisotropy(60.0, 2.0)
    model = OrdinaryKrigingModel("exponential", variogram_parameters=params, anisotropy=aniso,
                                 n_closest_points=20).fit(x[:100], y[:100], z[:100])
    expected, expected_var = model.predict(x[100:], y[100:])
    got, got_var = krige_at(x[:100], y[:100], z[:100], x[100:], y[100:],
                            variogram_model="exponential", variogram_parameters=params,
                            n_closest_points=20, anisotropy=aniso)
    assert np.allclose(got, expected, atol=1e-8)
    assert np.allclose(got_var, expected_var, atol=1e-8)
    # leave-one-out of sample 0 equals kriging it from the other samples
    loo, _ = leave_one_out(x[:100], y[:100], z[:100], variogram_model="exponential",
                           variogram_parameters=params, n_closest_points=20, anisotropy=aniso)
    one, _ = krige_at(x[1:100], y[1:100], z[1:100], x[:1], y[:1], variogram_model="exponential",
                      variogram_parameters=params, n_closest_points=20, anisotropy=aniso)
    assert loo[0] == pytest.approx(one[0], abs=1e-8)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"anisotropy": "diagonal"}, "unknown anisotropy"),
        ({"anisotropy": (10.0, 0.5)}, "major/minor"),
        ({"anisotropy": 3}, "anisotropy must be"),
        ({"max_lag": -1.0}, "maximum lag"),
        ({"lag_width": 0.0}, "lag width"),
    ],
)
def test_bad_variogram_settings(kwargs, message):
    x, y, z = _field(50, seed=5)
    with pytest.raises(ValueError, match=message):
        OrdinaryKrigingModel("spherical", **kwargs).fit(x, y, z)
