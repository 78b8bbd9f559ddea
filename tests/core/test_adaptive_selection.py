"""The adaptive fit's selection rules (issue 17): support and shrinkage by the validation
whose prediction distances match the map's (leave-one-out or spatial block CV)."""

import numpy as np
import pytest
from scipy import ndimage

from geochem_fusion.core import adaptive
from geochem_fusion.core.grid import Grid
from geochem_fusion.core.vocabulary import kriging_grid


def _fit(x, y, z, image, grid, kgrid, **options):
    """The adaptive fit on an in-memory image: chips, fit, prediction (``options`` those of
    ``AdaptiveOptions``)."""
    chips = adaptive.chips_from_image(image, grid, x, y, half=max(adaptive.DEFAULT_WINDOWS) // 2)
    fit = adaptive.fit_adaptive_samples(x, y, z, chips, kgrid,
                                        options=adaptive.AdaptiveOptions(**options))
    return fit.predict(image, grid), fit


def _scene(seed=0, n=150, lines=False):
    """A 3-band positive image and values linear in two of its bands plus a smooth trend.

    ``lines``: the samples lie along 5 horizontal lines (road sampling) instead of uniformly.
    """
    rng = np.random.default_rng(seed)
    shape = (120, 120)
    bands = np.stack([ndimage.gaussian_filter(rng.normal(size=shape), 2) for _ in range(3)])
    bands = 0.2 + 0.05 * bands / bands.std(axis=(1, 2), keepdims=True)
    trend = ndimage.gaussian_filter(rng.normal(size=shape), 25)
    truth = trend / trend.std() + 40 * bands[0] - 25 * bands[1]
    grid = Grid(0.0, 1200.0, 10.0, 10.0, 120, 120)
    if lines:
        x = rng.uniform(30, 1170, n)
        y = rng.choice([150.0, 370.0, 600.0, 830.0, 1050.0], n) + rng.normal(0, 5, n)
    else:
        x, y = rng.uniform(30, 1170, n), rng.uniform(30, 1170, n)
    col, row = grid.to_pixel(x, y)
    z = truth[np.round(row).astype(int), np.round(col).astype(int)]
    return bands, grid, x, y, z


def test_matched_validation_by_design():
    # an even survey is mapped at about half its spacing, closer to leave-one-out's distances;
    # lines 220 m apart with samples a few metres apart leave the map far from any sample
    grid = Grid(0.0, 1200.0, 10.0, 10.0, 120, 120)
    kg = kriging_grid(grid, 100.0)
    gx, gy = np.meshgrid(np.arange(50.0, 1200.0, 100.0), np.arange(50.0, 1200.0, 100.0))
    x, y = gx.ravel(), gy.ravel()
    folds = adaptive.spatial_folds(x, y, block=500.0)
    choice, dist = adaptive.matched_validation(x, y, folds, kg)
    assert choice == "loo"
    assert dist["loo"] == pytest.approx(100.0)  # the grid's nearest neighbour, by hand
    assert dist["map"] < dist["loo"] <= dist["cv"]
    x = np.tile(np.arange(5.0, 1200.0, 10.0), 5)
    y = np.repeat([150.0, 370.0, 600.0, 830.0, 1050.0], x.size // 5)
    folds = adaptive.spatial_folds(x, y, block=50.0)
    choice, dist = adaptive.matched_validation(x, y, folds, kg)
    assert dist["loo"] == pytest.approx(10.0)
    assert choice == "cv" and dist["map"] > 5 * dist["loo"]


@pytest.mark.parametrize("lines", [False, True])
def test_support_is_chosen_by_the_matched_validation(lines):
    bands, grid, x, y, z = _scene(lines=lines)
    _, fit = _fit(x, y, z, bands, grid, kriging_grid(grid, 100.0))
    errors = fit.support_errors
    # every (feature set, window) pair was scored both ways (3 windows x 2 feature sets)
    assert len(errors) == 6
    assert all(np.isfinite(a) and np.isfinite(b) and a > 0 and b > 0 for a, b in errors.values())
    which = 0 if fit.validation[0] == "loo" else 1
    best = min(errors, key=lambda k: errors[k][which])
    assert fit.shrink > 0  # the image explains most of the values here
    assert (fit.feature_set, fit.window) == best


@pytest.mark.parametrize("lines", [False, True])
def test_shrink_is_chosen_by_the_matched_validation(lines):
    bands, grid, x, y, z = _scene(seed=1, lines=lines)
    _, fit = _fit(x, y, z, bands, grid, kriging_grid(grid, 100.0))
    tried = [c for c in fit.candidates if c["shrink"] > 0]
    assert len(tried) == len(adaptive.DEFAULT_SHRINKS) - 1
    key = "loo rmse" if fit.validation[0] == "loo" else "cv rmse"
    chosen = min(tried, key=lambda c: c[key])
    assert fit.shrink == chosen["shrink"]
    # the other rules stay available and choose by their own error
    _, fit_loo = _fit(x, y, z, bands, grid, kriging_grid(grid, 100.0),
                                       shrink_selection="loo")
    tried = [c for c in fit_loo.candidates if c["shrink"] > 0]
    assert fit_loo.shrink == min(tried, key=lambda c: c["loo rmse"])["shrink"]


def test_unknown_shrink_selection_is_refused():
    bands, grid, x, y, z = _scene(n=40)
    with pytest.raises(ValueError, match="shrink_selection must be"):
        _fit(x, y, z, bands, grid, kriging_grid(grid, 100.0),
                              shrink_selection="median")
