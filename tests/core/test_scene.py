"""Whole-scene (window-by-window) adaptive fusion: core.scene."""

import numpy as np
import pytest
from scipy import ndimage

from geochem_fusion.core import blocks, scene
from geochem_fusion.core.grid import Grid
from geochem_fusion.core.progress import Canceled
from geochem_fusion.core.vocabulary import FusionSettings, Sinks

GRID = Grid(500_000.0, 7_001_500.0, 10.0, 10.0, 150, 130)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    shape = GRID.shape
    image = 0.1 + 0.05 * np.abs(np.stack([ndimage.gaussian_filter(rng.normal(size=shape), 2)
                                          for _ in range(3)]) / 0.1)
    image[:, 40:44, 60:70] = np.nan  # a nodata patch
    trend = ndimage.gaussian_filter(rng.normal(size=shape), 20)
    truth = 30 + 200 * (image[0] - image[1]) + 5 * trend / trend.std()
    x = rng.uniform(GRID.x_min + 20, GRID.x_max - 20, 120)
    y = rng.uniform(GRID.y_min + 20, GRID.y_max - 20, 120)
    col, row = GRID.to_pixel(x, y)
    cu = truth[np.round(row).astype(int), np.round(col).astype(int)]
    ok = np.isfinite(cu)
    return dict(image=image, x=x[ok], y=y[ok], cu=cu[ok], zn=0.5 * cu[ok] + 3)


SINKS = {"write_features", "write_units", "preview_size", "krige_alone", "progress", "cancel"}


def run(data, **kwargs):
    """The entry point with these settings (and sinks: the outputs, progress, cancel)."""
    out = {}

    def write(i, row0, block):
        out.setdefault(i, np.full(GRID.shape, np.nan))[row0:row0 + block.shape[0]] = block

    sinks = Sinks(write, **{k: kwargs.pop(k) for k in list(kwargs) if k in SINKS})
    res = scene.fuse_scene(data["x"], data["y"], {"Cu": data["cu"], "Zn": data["zn"]},
                           blocks.array_reader(data["image"]), GRID,
                           FusionSettings(variogram="spherical", **kwargs), sinks)
    return res, out


def test_blocks_reproduce_the_single_block_result(data):
    # the halo makes block boundaries invisible: 7-row blocks equal one block (rounding)
    _, one = run(data, block_rows=1000)
    res, many = run(data, block_rows=7)
    for i in (0, 1):
        np.testing.assert_allclose(many[i], one[i], rtol=1e-10, atol=1e-10, equal_nan=True)
    assert np.isnan(many[0][41, 65])  # image nodata stays nodata
    assert np.isfinite(many[0][100, 100])
    assert set(res.fits) == {"Cu", "Zn"} and res.fits["Cu"].shrink > 0


def test_local_units_features_previews_and_progress(data):
    feats, units, calls = {}, {}, []

    def write_features(row0, block):
        feats[row0] = block

    def write_units(row0, block):
        units[row0] = block

    res, out = run(data, regression="local", n_clusters=3, block_rows=40,
                   write_features=write_features, write_units=write_units, preview_size=50,
                   progress=lambda f, m: calls.append(f))
    assert sorted(units) == [0, 40, 80, 120] and units[0].shape == (40, 150)
    assert set(np.unique(np.concatenate([u.ravel() for u in units.values()]))) <= {-1, 0, 1, 2}
    assert feats[0].shape == (3, 40, 150)
    assert res.kmeans is not None
    assert res.previews["Cu fused"].shape == res.previews["units"].shape
    np.testing.assert_allclose(res.previews["Cu fused"], out[0][::3, ::3], equal_nan=True)
    assert calls == sorted(calls) and calls[-1] == 1.0
    pr = res.as_pipeline_result()
    assert pr.elements["Cu"].fusion is res.fits["Cu"]


@pytest.mark.parametrize("features", ["bands-pc2", "pcs"])
def test_pca_features(data, features):
    res, out = run(data, features=features, pcs=(1, 2))
    assert res.transform.names_ == (["PC2"] if features == "bands-pc2" else ["PC1", "PC2"])
    assert np.isfinite(out[0]).mean() > 0.95


def test_cancel_and_bad_input(data):
    with pytest.raises(Canceled):
        run(data, cancel=lambda: True)
    with pytest.raises(ValueError, match="no sample"):
        scene.fuse_scene(data["x"] + 1e6, data["y"], {"Cu": data["cu"]},
                         blocks.array_reader(data["image"]), GRID, FusionSettings(),
                         Sinks(lambda *a: None))
    with pytest.raises(ValueError, match="no valid pixels"):
        blocks.sample_pixels_from_windows(blocks.array_reader(np.full((2, 20, 20), np.nan)),
                                          (20, 20), n_pixels=100)
