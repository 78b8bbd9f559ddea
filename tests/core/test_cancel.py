"""Progress and cancel hooks of the long core steps (kriging a grid)."""

import numpy as np
import pytest

from geochem_fusion.core.grid import Grid
from geochem_fusion.core.kriging import OrdinaryKrigingModel, krige
from geochem_fusion.core.progress import Canceled


def samples(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(0, 1000, n), rng.uniform(0, 1000, n)
    return x, y, np.sin(x / 200) + np.cos(y / 300) + 0.1 * rng.normal(size=n)


def test_krige_reports_increasing_progress_up_to_the_grid():
    x, y, v = samples()
    seen = []
    krige(x, y, v, grid=Grid(0, 1000, 50, 50, 20, 20), variogram="spherical",
          progress=lambda fraction, message=None: seen.append(fraction))
    assert seen[0] == 0.0 and all(0 <= f <= 1 for f in seen)
    assert seen == sorted(seen) and len(seen) >= 3  # start, after the fit, each chunk


def test_cancel_after_the_fit_stops_before_kriging_the_grid():
    x, y, v = samples()
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > 1  # not at the start, as soon as the fit is done

    with pytest.raises(Canceled):
        krige(x, y, v, grid=Grid(0, 1000, 50, 50, 20, 20), variogram="spherical", cancel=cancel)


def test_cancel_between_chunks_of_grid_points():
    x, y, v = samples()
    model = OrdinaryKrigingModel("spherical").fit(x, y, v)
    polls = []

    def cancel():
        polls.append(1)
        return len(polls) == 3  # the third chunk

    with pytest.raises(Canceled):
        model.predict_grid(Grid(0, 1000, 10, 10, 100, 100), chunk_size=1000, cancel=cancel)
    assert len(polls) == 3  # stopped at once, not after the remaining chunks


def test_fusion_cancel_between_pyramid_layers():
    # the pyramid modes poll cancel before each layer's decomposition: a cancel raised on the
    # third poll stops before the feature bands are all decomposed
    from geochem_fusion.core.fusion import fuse

    rng = np.random.default_rng(1)
    geo = rng.normal(size=(64, 64))
    feats = rng.normal(size=(3, 64, 64))
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) >= 3

    with pytest.raises(Canceled):
        fuse(geo, feats, levels=2, cancel=cancel)
    assert len(calls) == 3
