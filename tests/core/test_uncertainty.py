"""Calibrated prediction uncertainty (core.uncertainty, AdaptiveFit.variance; issue 13)."""

import math

import numpy as np
import pytest
from scipy import ndimage

from geochem_fusion.core import adaptive
from geochem_fusion.core.grid import Grid
from geochem_fusion.core.uncertainty import (
    coverage,
    interval,
    log_variance_from_sd,
    lognormal_sd,
)
from geochem_fusion.core.vocabulary import kriging_grid


def _fit(x, y, z, image, grid, kgrid, variogram="spherical"):
    """The adaptive fit of ``z`` on an in-memory image, and its prediction on the grid."""
    chips = adaptive.chips_from_image(image, grid, x, y, half=max(adaptive.DEFAULT_WINDOWS) // 2)
    fit = adaptive.fit_adaptive_samples(x, y, z, chips, kgrid, variogram=variogram)
    return fit.predict(image, grid), fit


def _scene(seed, n=200, m=300, relation=1.0, psill=0.3, range_=400.0, nugget=0.05):
    """Image-driven trend plus a Gaussian residual of a known exponential model.

    ``n`` samples to fit, ``m`` held-out points (all on pixel centres).
    """
    rng = np.random.default_rng(seed)
    shape = (120, 120)
    bands = np.stack([ndimage.gaussian_filter(rng.normal(size=shape), 2) for _ in range(3)])
    bands = 0.2 + 0.05 * bands / bands.std(axis=(1, 2), keepdims=True)
    grid = Grid(0.0, 1200.0, 10.0, 10.0, 120, 120)
    cells = rng.choice(114 * 114, n + m, replace=False)  # distinct pixels, 3 from the edge
    r, c = np.divmod(cells, 114)
    r, c = r + 3, c + 3
    x, y = grid.x_centers()[c], grid.y_centers()[r]
    h = np.hypot(x[:, None] - x[None], y[:, None] - y[None])
    cov = psill * np.exp(-3 * h / range_) + 1e-10 * np.eye(n + m)
    resid = np.linalg.cholesky(cov) @ rng.standard_normal(n + m)
    resid += math.sqrt(nugget) * rng.standard_normal(n + m)
    z = relation * (40 * bands[0, r, c] - 25 * bands[1, r, c]) + resid
    return bands, grid, x, y, z, r, c, n


def test_lognormal_sd_and_interval_match_a_sample():
    rng = np.random.default_rng(0)
    logs = rng.normal(1.5, 0.2, 400_000)
    values = 10**logs
    assert lognormal_sd(1.5, 0.04) == pytest.approx(values.std(), rel=0.01)
    low, high = interval(1.5, 0.04, log=True)
    assert np.mean((values >= low) & (values <= high)) == pytest.approx(0.95, abs=0.002)
    share, n = coverage(values, np.full(values.size, 1.5), np.full(values.size, 0.04), log=True)
    assert n == values.size and share == pytest.approx(0.95, abs=0.002)


def test_log_variance_from_sd_inverts_lognormal_sd():
    m = np.array([0.5, 1.0, 2.0, 3.0])
    v = np.array([0.0, 0.01, 0.09, 0.4])
    np.testing.assert_allclose(log_variance_from_sd(10**m, lognormal_sd(m, v)), v, atol=1e-12)


def test_adaptive_95_interval_covers_held_out_truth():
    shares = []
    for seed in range(4):
        bands, grid, x, y, z, r, c, n = _scene(seed)
        fused, fit = _fit(x[:n], y[:n], z[:n], bands, grid, kriging_grid(grid, 50.0),
                          variogram="exponential")
        assert fit.shrink > 0  # the image trend is used: its estimation variance counts
        variance = fit.variance(bands, grid)
        assert (variance[np.isfinite(variance)] >= 0).all()
        share, count = coverage(z[n:], fused[r[n:], c[n:]], variance[r[n:], c[n:]])
        assert count == z.size - n
        shares.append(share)
    assert 0.90 <= np.mean(shares) <= 0.98, shares
    assert min(shares) >= 0.85, shares


def test_kriging_alone_variance_is_the_kriging_variance():
    bands, grid, x, y, z, r, c, n = _scene(1, relation=0.0)
    noise = np.random.default_rng(9).uniform(0.2, 0.3, bands.shape)  # an unrelated image
    fused, fit = _fit(x[:n], y[:n], z[:n], noise, grid, kriging_grid(grid, 50.0),
                      variogram="exponential")
    assert fit.shrink == 0
    from geochem_fusion.core.resample import resample_cubic

    expected = np.maximum(resample_cubic(fit.kriging.variance, fit.kriging.grid, grid), 0)
    np.testing.assert_allclose(fit.variance(noise, grid), expected)
    share, _ = coverage(z[n:], fused[r[n:], c[n:]], expected[r[n:], c[n:]])
    assert 0.85 <= share <= 0.99


def test_trend_variance_grows_away_from_the_sampled_features():
    bands, grid, x, y, z, r, c, n = _scene(2)
    _, fit = _fit(x[:n], y[:n], z[:n], bands, grid, kriging_grid(grid, 50.0))
    F, _ = adaptive.feature_stack(bands, fit.feature_set, window=fit.window)
    typical = fit.trend_variance_from_features(fit.mean[:, None, None] + 0 * F[:, :1, :1])
    extreme = fit.trend_variance_from_features(
        (fit.mean + 5 * fit.scale)[:, None, None] + 0 * F[:, :1, :1])
    assert 0 < typical[0, 0] < extreme[0, 0]
    assert typical[0, 0] == pytest.approx(fit.shrink**2 * fit.intercept_variance)


def test_cross_validation_reports_the_coverage_of_each_method_with_a_variance():
    from geochem_fusion.core.evaluation import cross_validate_chain

    bands, grid, x, y, z, r, c, n = _scene(3, n=250, m=0)
    res = cross_validate_chain(x, y, z, bands, grid, n_folds=5,
                               methods=("kriging alone", "regression kriging", "paper global"))
    for method in ("kriging alone", "regression kriging"):
        assert res[method]["n_coverage"] == res[method]["n"] == x.size
        assert 0.85 <= res[method]["coverage95"] <= 0.99, (method, res[method]["coverage95"])
    assert np.isnan(res["paper global"]["coverage95"]) and res["paper global"]["n_coverage"] == 0


def test_fused_scene_uncertainty_is_calibrated_on_held_out_points():
    """The SD layer of the one entry point (adaptive mode) covers held-out truth (issue 13)."""
    from geochem_fusion.core.blocks import array_reader
    from geochem_fusion.core.scene import fuse_scene
    from geochem_fusion.core.vocabulary import FusionSettings, Sinks

    shares = []
    for seed, log in ((0, False), (1, False), (2, True)):
        bands, grid, x, y, z, r, c, n = _scene(seed)
        values = 10 ** (1 + z / 4) if log else z
        fused = np.full((1,) + grid.shape, np.nan)
        sd = np.full((1,) + grid.shape, np.nan)

        def write(i, row0, block, out=fused):
            out[i, row0:row0 + block.shape[0]] = block

        def write_sd(i, row0, block, out=sd):
            out[i, row0:row0 + block.shape[0]] = block

        settings = FusionSettings(log_transform=log, variogram="exponential")
        fuse_scene(x[:n], y[:n], {"v": values[:n]}, array_reader(bands), grid, settings,
                   Sinks(write, write_uncertainty=write_sd, preview_size=None,
                         krige_alone=False))
        assert np.isfinite(sd[0]).mean() > 0.9 and (sd[0][np.isfinite(sd[0])] >= 0).all()
        f, s = fused[0, r[n:], c[n:]], sd[0, r[n:], c[n:]]
        if log:
            share, _ = coverage(values[n:], np.log10(f), log_variance_from_sd(f, s), log=True)
        else:
            share, _ = coverage(values[n:], f, s**2)
        shares.append(share)
    assert 0.88 <= np.mean(shares) <= 0.98, shares
