"""Last checks of fused blocks (issue 12): holes fall back to kriging, no negative concentration."""

from types import SimpleNamespace

import numpy as np

from geochem_fusion.core.grid import Grid
from geochem_fusion.core.guards import FusedGuard, kriged_support

IMAGE = Grid(0.0, 100.0, 1.0, 1.0, 100, 100)  # 100 x 100 cells of 1 m
KGRID = Grid(0.0, 100.0, 10.0, 10.0, 10, 10)


def collect():
    out = {}

    def write(i, row0, block):
        out[(i, row0)] = block.copy()

    return out, write


def test_negative_values_are_counted_and_clipped_by_default():
    out, write = collect()
    guard = FusedGuard(["Cu"], write, IMAGE)
    block = np.full((10, 100), 5.0)
    block[0, :3] = [-1.0, -30.0, -0.5]
    guard.write(0, 0, block)
    assert out[(0, 0)].min() == 0.0 and guard.negative[0] == 3 and guard.minimum[0] == -30.0
    (warning,), _ = guard.notes(log_transform=False, mode="paper")
    assert "Cu: 3 fused pixels (0.30 %) were negative (minimum -30) in the paper fusion: set to 0" \
        in warning and "The log transform avoids them" in warning
    assert guard.metadata()["NEGATIVE_PIXELS_1"] == "3"


def test_raw_values_kept_when_asked():
    out, write = collect()
    guard = FusedGuard(["Cu"], write, IMAGE, clip_negative=False)
    guard.write(0, 0, np.array([[-2.0, 1.0]]))
    assert out[(0, 0)][0, 0] == -2.0
    (warning,), _ = guard.notes(log_transform=True)
    assert "kept as computed" in warning and "log transform" not in warning


def test_holes_fall_back_to_the_kriged_estimate_within_reach():
    out, write = collect()
    kriged = SimpleNamespace(estimate=np.full(KGRID.shape, 7.0), grid=KGRID)
    support = kriged_support(np.array([5.0]), np.array([95.0]), KGRID, reach=30.0)
    assert support[0, 0] and not support[-1, -1]
    guard = FusedGuard(["Cu"], write, IMAGE, kriged=[kriged], support=support,
                       kriging_grid=KGRID)
    block = np.full((20, 100), 3.0)
    block[:, :] = np.nan  # the image has no data on these rows
    guard.write(0, 0, block)
    filled = out[(0, 0)]
    assert np.allclose(filled[:10, :10], 7.0)  # near the sample: the kriged estimate
    assert np.isnan(filled[:, -10:]).all()  # far from every sample: stays nodata
    assert guard.filled[0] == np.isfinite(filled).sum() > 0
    (warning,), _ = guard.notes()
    assert "Cu: " in warning and "have no image data but lie within reach of the samples" in warning
    assert float(guard.metadata()["KRIGED_FALLBACK_PERCENT_1"]) > 0


def test_kriging_for_the_holes_is_computed_only_at_the_first_hole_in_reach():
    out, write = collect()
    calls = []

    def kriging():
        calls.append(1)
        return [SimpleNamespace(estimate=np.full(KGRID.shape, 7.0), grid=KGRID)]

    support = kriged_support(np.array([5.0]), np.array([95.0]), KGRID, reach=30.0)
    guard = FusedGuard(["Cu"], write, IMAGE, kriged=kriging, support=support,
                       kriging_grid=KGRID)
    guard.write(0, 0, np.full((10, 100), 3.0))  # no hole
    far = np.full((10, 100), 3.0)
    far[:, -5:] = np.nan  # a hole far from the samples: no kriging needed
    guard.write(0, 10, far)
    assert calls == []
    near = np.full((10, 100), 3.0)
    near[:, :5] = np.nan
    guard.write(0, 20, near)
    guard.write(0, 30, near)
    assert calls == [1] and np.isfinite(out[(0, 20)][:, :5]).all()
