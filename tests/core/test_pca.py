"""Tests of core.pca.

Orthonormality, recovery of known components, sign convention, loadings, NaN
handling and validation.
"""

import warnings

import numpy as np
import pytest

from geochem_fusion.core.pca import PCA


def orient_to(component_image, reference_image):
    """Flip a component image so it correlates non-negatively with a reference.

    A data-driven sign convention (test only: the product uses the PCA's own,
    largest loading positive): orient e.g. PC2 so that it correlates positively
    with the low-frequency geochemistry ``Geo_L``.

    Parameters
    ----------
    component_image : array_like
        Component scores, e.g. ``pca.transform(stack)[1]``; NaN is nodata.
    reference_image : array_like
        Same shape as ``component_image``; NaN is nodata.

    Returns
    -------
    oriented : numpy.ndarray of float
        ``sign * component_image`` (a new array).
    sign : int
        ``-1`` if the Pearson correlation over the pixels finite in both is
        negative, else ``+1`` (also when the correlation is undefined, e.g. a
        constant image, which is reported with a warning).

    Raises
    ------
    ValueError
        If the shapes differ or no pixel is finite in both images.
    """
    comp = np.asarray(component_image, dtype=float)
    ref = np.asarray(reference_image, dtype=float)
    if comp.shape != ref.shape:
        raise ValueError(
            f"component image shape {comp.shape} differs from reference shape {ref.shape}; "
            "resample both to the same grid"
        )
    both = np.isfinite(comp) & np.isfinite(ref)
    if not both.any():
        raise ValueError("the component and reference images have no finite pixel in common")
    a = comp[both] - comp[both].mean()
    b = ref[both] - ref[both].mean()
    cov = float(a @ b)
    if cov == 0.0:
        warnings.warn(
            "the component and the reference are uncorrelated (or one is constant); "
            "the component's sign is left unchanged",
            UserWarning,
            stacklevel=2,
        )
    sign = -1 if cov < 0 else 1
    return comp * sign, sign


def correlated_stack(rows=40, cols=50, bands=4, seed=0):
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(bands, bands))
    pixels = rng.normal(size=(rows * cols, bands)) @ mixing + rng.normal(size=bands) * 10
    return pixels.T.reshape(bands, rows, cols)


def known_components_stack(stds, rows=30, cols=40, seed=0):
    """Stack whose pixel covariance (ddof=1) is exactly ``basis.T @ diag(stds**2) @ basis``."""
    rng = np.random.default_rng(seed)
    n, p = rows * cols, len(stds)
    basis = np.linalg.qr(rng.normal(size=(p, p)))[0].T  # orthonormal rows
    raw = rng.normal(size=(n, p))
    # orthonormal, zero-mean score columns -> exactly uncorrelated scores
    scores = np.linalg.qr(raw - raw.mean(axis=0))[0] * np.sqrt(n - 1) * np.asarray(stds)
    pixels = scores @ basis + np.array([100.0, 50.0, 20.0, 5.0][:p])
    return pixels.T.reshape(p, rows, cols), basis


def test_components_are_orthonormal():
    pca = PCA().fit(correlated_stack())
    c = pca.components_
    assert c.shape == (4, 4)
    # eigenvectors from an SVD are orthonormal to rounding
    np.testing.assert_allclose(c @ c.T, np.eye(4), atol=1e-12)


def test_explained_variance_ratio_sums_to_one_only_with_all_components():
    stack = correlated_stack()
    assert np.isclose(PCA().fit(stack).explained_variance_ratio_.sum(), 1.0, atol=1e-12)
    partial = PCA(2).fit(stack).explained_variance_ratio_
    assert partial.shape == (2,) and partial.sum() < 1.0
    assert np.all(np.diff(partial) <= 0)  # sorted by decreasing variance


def test_recovers_known_components_and_variances():
    stds = np.array([10.0, 5.0, 2.0, 0.5])
    stack, basis = known_components_stack(stds)
    pca = PCA(sample_size=None).fit(stack)
    # the construction is exact, so only rounding separates the result from the truth
    np.testing.assert_allclose(pca.explained_variance_, stds**2, rtol=1e-10)
    for k in range(4):
        assert abs(pca.components_[k] @ basis[k]) == pytest.approx(1.0, abs=1e-10)


def test_sign_convention_largest_coefficient_positive():
    stack = correlated_stack(seed=3)
    pca = PCA().fit(stack)
    c = pca.components_
    largest = c[np.arange(4), np.argmax(np.abs(c), axis=1)]
    assert np.all(largest > 0)
    # negating the data leaves the covariance, hence the oriented components, unchanged;
    # the scores change sign
    neg = PCA().fit(-stack)
    np.testing.assert_allclose(neg.components_, c, atol=1e-10)
    np.testing.assert_allclose(neg.transform(-stack), -pca.transform(stack), atol=1e-8)


def test_scores_match_projection_and_have_fitted_variance():
    stack = correlated_stack(seed=4)
    pca = PCA(sample_size=None).fit(stack)
    scores = pca.transform(stack).reshape(4, -1)
    pixels = stack.reshape(4, -1).T
    np.testing.assert_allclose(scores.T, (pixels - pca.mean_) @ pca.components_.T, atol=1e-9)
    # fitted on every pixel, so the score variances are the explained variances
    np.testing.assert_allclose(scores.var(axis=1, ddof=1), pca.explained_variance_, rtol=1e-10)


def test_transform_in_several_row_blocks_matches_direct_projection():
    # 3 x 520 x 520 = 270,400 pixels per band: more than one default row block
    rng = np.random.default_rng(5)
    stack = rng.normal(size=(3, 520, 520)).astype(np.float32)
    stack[1, 300, 10] = np.nan
    pca = PCA(2, sample_size=5000).fit(stack)
    out = pca.transform(stack)
    assert out.dtype == np.float32  # float32 tiles stay float32
    direct = ((stack.reshape(3, -1).T - pca.mean_) @ pca.components_.T).T.reshape(2, 520, 520)
    valid = ~np.isnan(direct[0])
    # float32 output: relative rounding ~6e-8 on scores of order 1-4
    np.testing.assert_allclose(out[:, valid], direct[:, valid], atol=1e-5)
    assert np.isnan(out[:, 300, 10]).all()


def test_standardize_constant_band_warns_and_stays_finite():
    stack = correlated_stack(bands=3, seed=6)
    stack[1] = 0.3  # a constant band (std would be 0)
    with pytest.warns(UserWarning, match="constant"):
        pca = PCA(standardize=True).fit(stack)
    assert pca.scale_[1] == 1.0
    for name in ("components_", "explained_variance_", "explained_variance_ratio_", "loadings_"):
        assert np.all(np.isfinite(getattr(pca, name))), name
    assert np.all(np.isfinite(pca.transform(stack)))
    assert np.all(pca.loadings_[1] == 0.0)


def test_standardize_scales_by_band_std():
    stack = correlated_stack(seed=7)
    stack[2] *= 1000.0  # a band in other units would dominate covariance PCA
    cov = PCA().fit(stack)
    cor = PCA(standardize=True, sample_size=None).fit(stack)
    np.testing.assert_allclose(cor.scale_, stack.reshape(4, -1).std(axis=1), rtol=1e-12)
    assert abs(cov.components_[0, 2]) > 0.99
    # correlation PCA: the total variance is the number of bands (times n/(n-1), ddof)
    n = stack[0].size
    assert cor.explained_variance_.sum() == pytest.approx(4 * n / (n - 1), rel=1e-10)


def test_nan_pixels_stay_nan():
    stack = correlated_stack(seed=8)
    stack[0, 3, 4] = np.nan
    stack[3, 10, 20] = np.nan
    pca = PCA(3).fit(stack)
    out = pca.transform(stack)
    assert out.shape == (3, 40, 50)
    assert np.isnan(out[:, 3, 4]).all() and np.isnan(out[:, 10, 20]).all()
    assert np.isfinite(out).sum() == 3 * (40 * 50 - 2)
    assert np.isfinite(stack).sum() == 4 * 40 * 50 - 2  # input untouched


@pytest.mark.parametrize("standardize", [False, True])
def test_loadings_are_band_component_correlations(standardize):
    stack = correlated_stack(seed=9)
    pca = PCA(3, standardize=standardize, sample_size=None).fit(stack)
    assert pca.loadings_.shape == (4, 3)
    scores = pca.transform(stack).reshape(3, -1)
    bands = stack.reshape(4, -1)
    expected = np.array([[np.corrcoef(b, s)[0, 1] for s in scores] for b in bands])
    # same pixels, same ddof: equal to rounding
    np.testing.assert_allclose(pca.loadings_, expected, atol=1e-10)


def test_loading_table_rows():
    stack = correlated_stack(bands=3, seed=10)
    pca = PCA(2).fit(stack)
    table = pca.loading_table(["B2", "B3", "B4"])
    assert [row["band"] for row in table] == [
        "B2", "B3", "B4", "explained variance", "explained variance ratio"]
    assert table[1]["PC2"] == pytest.approx(pca.loadings_[1, 1])
    assert table[-1]["PC1"] == pytest.approx(pca.explained_variance_ratio_[0])
    with pytest.raises(ValueError, match="2 band names for 3 bands"):
        pca.loading_table(["a", "b"])


def test_sampling_is_seeded_and_bounded():
    stack = correlated_stack(seed=11)
    a = PCA(sample_size=300, random_state=1).fit(stack)
    b = PCA(sample_size=300, random_state=1).fit(stack)
    assert a.n_samples_ == 300
    np.testing.assert_array_equal(a.components_, b.components_)


def test_orient_to_reference():
    rng = np.random.default_rng(12)
    comp = rng.normal(size=(20, 30))
    ref = -2 * comp + rng.normal(size=comp.shape) * 0.5
    ref[0, 0] = np.nan
    before = comp.copy()
    oriented, sign = orient_to(comp, ref)
    assert sign == -1
    np.testing.assert_array_equal(oriented, -comp)
    np.testing.assert_array_equal(comp, before)  # not mutated
    again, sign2 = orient_to(oriented, ref)
    assert sign2 == 1 and np.array_equal(again, oriented)
    with pytest.raises(ValueError, match="shape"):
        orient_to(comp, ref[:5])


def test_orient_to_constant_reference_keeps_sign_with_warning():
    with pytest.warns(UserWarning, match="uncorrelated"):
        _, sign = orient_to(np.arange(6.0).reshape(2, 3), np.ones((2, 3)))
    assert sign == 1


def test_validation_errors():
    with pytest.raises(ValueError, match=r"expected a \(bands, rows, cols\) stack, got ndim=2"):
        PCA().fit(np.zeros((5, 5)))
    stack = correlated_stack(bands=4)
    with pytest.raises(ValueError, match="n_components must be between 1 and"):
        PCA(5).fit(stack)
    few = np.full((4, 10, 10), np.nan)
    few[:, 0, :4] = np.arange(16.0).reshape(4, 4)  # 4 valid pixels for 4 bands
    with pytest.raises(ValueError, match="at least 5 pixels.*got 4"):
        PCA().fit(few)
    pca = PCA().fit(stack)
    with pytest.raises(ValueError, match="3 bands but the PCA was fitted on 4"):
        pca.transform(stack[:3])
    with pytest.raises(ValueError, match="not fitted"):
        PCA().transform(stack)


def test_no_warning_on_ordinary_data():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PCA(standardize=True).fit(correlated_stack(seed=13))
