"""The paper's fusion block by block (core.pyramid_scene) against the whole-image core.fusion.fuse."""

import numpy as np
import pytest
from scipy import ndimage

from geochem_fusion.core.blocks import array_reader
from geochem_fusion.core.fusion import fuse
from geochem_fusion.core.progress import Canceled
from geochem_fusion.core.pyramid_scene import LayerSource, fit_rows, fuse_layers
from geochem_fusion.core.vocabulary import FusionSettings

SHAPE = (150, 170)


@pytest.fixture(scope="module")
def layers():
    rng = np.random.default_rng(1)
    feats = np.stack([ndimage.gaussian_filter(rng.normal(size=SHAPE), 2) for _ in range(3)])
    feats[:, 10:14, 20:30] = np.nan  # an image hole
    geo = 50 + 10 * feats[0] + 5 * ndimage.gaussian_filter(rng.normal(size=SHAPE), 8)
    geo[np.isnan(geo)] = 50.0
    labels = (feats[1] > 0).astype(int) + (feats[2] > 0.05)
    labels[np.isnan(feats[1])] = -1
    return geo, feats, labels


def run_blocks(geo, feats, *, labels=None, block_rows=17, levels, log_transform=False,
               progress=None, cancel=None, **settings):
    geo = geo if geo.ndim == 3 else geo[None]
    out = np.full(geo.shape, np.nan)
    seen = []

    def consume(row0, fused, features, block_labels):
        seen.append(row0)
        out[:, row0:row0 + fused.shape[1]] = fused
        np.testing.assert_array_equal(features, feats[:, row0:row0 + fused.shape[1]])

    source = LayerSource(array_reader(geo), array_reader(feats), SHAPE,
                         read_units=None if labels is None else array_reader(labels[None]),
                         log_transform=log_transform)
    settings = FusionSettings(**{"mode": "coherent", **settings}, block_rows=block_rows)
    results = fuse_layers(source, levels, settings, consume, n_elements=len(geo),
                          progress=progress, cancel=cancel)
    assert seen == list(range(0, SHAPE[0], block_rows))  # every block, in order
    return out, results


@pytest.mark.parametrize("mode", ["paper", "coherent"])
@pytest.mark.parametrize("regression", ["global", "local"])
@pytest.mark.parametrize(("log_transform", "blend_sigma"), [(False, 0.0), (True, 3.0)])
def test_blocks_equal_the_whole_image_fusion(layers, mode, regression, log_transform,
                                             blend_sigma):
    geo, feats, labels = layers
    whole = fuse(geo, feats, levels=4, mode=mode, regression=regression, labels=labels,
                 log_transform=log_transform, blend_sigma=blend_sigma)
    out, (result,) = run_blocks(geo, feats, labels=labels if regression == "local" else None,
                                levels=4, mode=mode, regression=regression,
                                log_transform=log_transform, blend_sigma=blend_sigma)
    np.testing.assert_array_equal(np.isnan(out[0]), np.isnan(whole.fused))
    np.testing.assert_allclose(out[0], whole.fused, rtol=1e-12, atol=1e-9)
    for got, want in zip(result.coefficient_table(), whole.coefficient_table(), strict=True):
        assert got.keys() == want.keys() and got["unit"] == want["unit"]
        assert [got[k] for k in got if k != "unit"] == pytest.approx(
            [want[k] for k in want if k != "unit"], rel=1e-9)
    assert (result.mode, result.regression, result.levels) == (mode, regression, 4)


def test_elements_share_the_image_pass(layers):
    geo, feats, _ = layers
    two = np.stack([geo, 2 * geo + 7])
    out, results = run_blocks(two, feats, levels=3)
    assert len(results) == 2
    for i in range(2):
        alone, _ = run_blocks(two[i], feats, levels=3)
        np.testing.assert_allclose(out[i], alone[0], rtol=1e-12)


def test_a_sampled_fit_on_a_large_image_recovers_the_gains():
    # geochemistry exactly linear in the features: any pixel sample gives the same gains
    rng = np.random.default_rng(5)
    feats = np.stack([ndimage.gaussian_filter(rng.normal(size=SHAPE), 3) for _ in range(2)])
    geo = 3.0 + 40.0 * feats[0] - 25.0 * feats[1]
    rows = fit_rows(*SHAPE, 4, 2_000)
    assert 1 < rows[1] - rows[0] <= 2 ** (4 - 2) and rows.size * SHAPE[1] >= 2_000
    out, (result,) = run_blocks(geo, feats, levels=4, mode="paper", sample_size=2_000)
    fit = result.model.global_fit_
    assert fit.n == 2_000
    np.testing.assert_allclose(fit.coef, [40.0, -25.0], rtol=1e-9)
    # the same fusion as the whole image fitted on every pixel
    whole = fuse(geo, feats, levels=4, mode="paper", sample_size=None)
    np.testing.assert_allclose(out[0], whole.fused, rtol=1e-9, atol=1e-9)


def test_fit_rows():
    np.testing.assert_array_equal(fit_rows(10, 20, 8, 200), np.arange(10))  # small: every row
    # a full tile at depth 8: the low band's scale is 2**8 = 256 px, a quarter of it is 64;
    # every 64th row still offers ceil(10980 / 64) * 10980 = 1.9 M pixels >= 200 000
    rows = fit_rows(10980, 10980, 8, 200_000)
    assert rows[1] == 64 and rows.size == -(-10980 // 64)
    # 1000 x 1000 = 1 M pixels for a sample of 200 000: every 5th row offers 200 rows x 1000 =
    # 200 000 pixels, just enough (every 6th: 167 x 1000 = 167 000, too few; every 4th:
    # 250 000, denser than needed), and 5 is below the cap of 64
    rows = fit_rows(1000, 1000, 8, 200_000)
    assert rows[1] == 5 and rows.size * 1000 == 200_000
    np.testing.assert_array_equal(np.diff(rows), 5)
    # a shallow pyramid caps the stride: depth 3 -> 2**(3 - 2) = 2 even if 5 would suffice
    assert fit_rows(1000, 1000, 3, 200_000)[1] == 2


def test_progress_and_cancel(layers):
    geo, feats, _ = layers
    calls = []
    run_blocks(geo, feats, levels=3, progress=lambda f, m: calls.append(f))
    assert calls[0] == 0.0 and calls[-1] == 1.0
    assert all(b >= a for a, b in zip(calls, calls[1:]))
    assert len(calls) >= 2 * SHAPE[0] // 17  # every block of both passes reports
    for stop_after in (3, len(calls) - 4):  # in the reduce pass, then among the last blocks
        polls = []

        def cancel(stop_after=stop_after, polls=polls):
            polls.append(1)
            return len(polls) > stop_after

        with pytest.raises(Canceled):
            run_blocks(geo, feats, levels=3, cancel=cancel)


def test_bad_input_is_refused(layers):
    geo, feats, labels = layers
    with pytest.raises(ValueError, match="local regression needs unit labels"):
        run_blocks(geo, feats, levels=3, regression="local")
    negative = geo.copy()
    negative[100, 5] = -1.0
    with pytest.raises(ValueError, match="log transform needs positive values.*rows 85-102"):
        run_blocks(negative, feats, levels=3, log_transform=True)
    with pytest.raises(ValueError, match="mode must be one of"):
        run_blocks(geo, feats, levels=3, mode="adaptive")


def test_the_fit_holds_a_bounded_share_of_pixels(layers, monkeypatch):
    # a shallow pyramid samples every row; the fit still keeps about FIT_OFFER * sample_size
    # pixels, not the image
    from geochem_fusion.core import pyramid_scene
    from geochem_fusion.core.regression import FeatureRegression

    geo, feats, _ = layers
    seen = []
    real_fit = FeatureRegression.fit

    def fit(self, y, X, labels=None):
        seen.append(y.shape)
        return real_fit(self, y, X, labels)

    monkeypatch.setattr(FeatureRegression, "fit", fit)
    _, (result,) = run_blocks(geo, feats, levels=1, sample_size=500)
    rows, n = seen[0]
    assert rows == 1 and 0.8 * pyramid_scene.FIT_OFFER * 500 < n < 1.2 * pyramid_scene.FIT_OFFER * 500
    assert result.model.global_fit_.n == 500
