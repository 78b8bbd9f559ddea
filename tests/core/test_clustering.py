"""Tests of core.clustering.KMeansUnits.

Recovery of separated classes, determinism, stable label order, NaN handling
and validation.
"""

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from sklearn.metrics import adjusted_rand_score

from geochem_fusion.core._pixels import map_pixels
from geochem_fusion.core.clustering import KMeansUnits

# distinct first-band values, so the documented label order (by first band) is well defined
CENTRES = np.array([[0.0, 0.0, 0.0], [20.0, 0.0, -5.0], [10.0, 20.0, 5.0], [30.0, 20.0, 10.0]])


def distances(km, stack):
    """Euclidean distance of every pixel to every class centre, in the clustering space.

    ``(n_clusters, rows, cols)``, NaN where any band is not finite; float32 input
    gives float32 output (test only: the product needs the nearest centre alone).
    """
    stack = km._check_stack(stack)
    return map_pixels(
        stack, lambda px: cdist((px - km.mean_) / km.scale_, km._centres_z),
        len(km._centres_z))



def separated_classes(rows=60, cols=80, noise=1.0, seed=0):
    """Stack of 4 classes whose centres are >= 20 noise SDs apart, and the true labels."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, len(CENTRES), size=(rows, cols))
    stack = CENTRES[truth].transpose(2, 0, 1) + rng.normal(scale=noise, size=(3, rows, cols))
    return stack, truth


def test_recovers_separated_classes_up_to_permutation():
    stack, truth = separated_classes()
    labels = KMeansUnits(4, sample_size=2000).fit(stack).predict(stack)
    assert labels.dtype == np.int32 and labels.shape == truth.shape
    # classes are 20 noise SDs apart: no pixel can be misassigned, so the ARI is exactly 1
    assert adjusted_rand_score(truth.ravel(), labels.ravel()) == 1.0


def test_centres_in_input_units_and_label_order():
    stack, truth = separated_classes(seed=1)
    km = KMeansUnits(4, sample_size=None).fit(stack)
    # labels are sorted by the first band's centre
    order = np.argsort(CENTRES[:, 0])
    # centres are class means of 1200 pixels with noise SD 1: error ~0.03, allow 0.2
    np.testing.assert_allclose(km.cluster_centers_, CENTRES[order], atol=0.2)
    assert np.all(np.diff(km.cluster_centers_[:, 0]) >= 0)
    assert km.counts_.sum() == truth.size
    np.testing.assert_array_equal(np.sort(km.counts_), np.sort(np.bincount(truth.ravel())))


def test_deterministic_for_a_seed():
    stack, _ = separated_classes(noise=6.0, seed=2)  # overlapping classes: a harder case
    a = KMeansUnits(5, sample_size=1500, random_state=3).fit(stack)
    b = KMeansUnits(5, sample_size=1500, random_state=3).fit(stack)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    np.testing.assert_array_equal(a.predict(stack), b.predict(stack))


def test_nan_pixels_get_minus_one():
    stack, _ = separated_classes(seed=4)
    stack[0, 5, 6] = np.nan
    stack[2, 10, :] = np.nan
    km = KMeansUnits(4).fit(stack)
    labels = km.predict(stack)
    assert labels[5, 6] == -1 and np.all(labels[10] == -1)
    assert np.count_nonzero(labels == -1) == 1 + 80
    assert labels.min() == -1 and labels.max() == 3
    d = distances(km, stack)
    assert d.shape == (4, 60, 80)
    assert np.isnan(d[:, 5, 6]).all()


def test_distances_agree_with_predict_and_standardized_space():
    stack, _ = separated_classes(seed=5)
    km = KMeansUnits(4).fit(stack)
    d = distances(km, stack)
    np.testing.assert_array_equal(np.argmin(d, axis=0), km.predict(stack))
    # distance to a centre, recomputed by hand in the standardized space
    z = (stack[:, 7, 9] - km.mean_) / km.scale_
    centre = (km.cluster_centers_[2] - km.mean_) / km.scale_
    assert d[2, 7, 9] == pytest.approx(np.linalg.norm(z - centre), rel=1e-10)


def test_standardize_balances_bands_in_different_units():
    stack, truth = separated_classes(seed=6)
    stack[2] *= 1e4  # third band in other units: unscaled it would dominate
    labels = KMeansUnits(4).fit(stack).predict(stack)
    assert adjusted_rand_score(truth.ravel(), labels.ravel()) == 1.0


def test_constant_band_warns_and_works():
    stack, truth = separated_classes(seed=7)
    stack = np.concatenate([stack, np.full((1, 60, 80), 2.5)])
    with pytest.warns(UserWarning, match="constant"):
        labels = KMeansUnits(4).fit(stack).predict(stack)
    assert adjusted_rand_score(truth.ravel(), labels.ravel()) == 1.0


def test_too_many_clusters_is_a_clear_error():
    # quadrants (0, 0), (1, 0), (0, 1), (0, 0): 3 distinct pixel vectors
    stack = np.zeros((2, 20, 20))
    stack[0, :10, 10:] = 1.0
    stack[1, 10:, :10] = 1.0
    with pytest.raises(ValueError, match=r"only 3 distinct values.*N_CLUSTERS"):
        KMeansUnits(5).fit(stack)
    with pytest.raises(ValueError, match="at least 2"):
        KMeansUnits(1).fit(stack)


def test_all_nan_is_a_clear_error():
    with pytest.raises(ValueError, match="only 0 distinct values"):
        KMeansUnits(2).fit(np.full((2, 5, 5), np.nan))


def test_predict_validation():
    stack, _ = separated_classes(seed=8)
    with pytest.raises(ValueError, match="not fitted"):
        KMeansUnits(4).predict(stack)
    km = KMeansUnits(4).fit(stack)
    with pytest.raises(ValueError, match="2 bands but the classes were fitted on 3"):
        km.predict(stack[:2])
    with pytest.raises(ValueError, match=r"got ndim=2"):
        km.predict(stack[0])


def test_float32_input_and_inputs_not_mutated():
    stack, truth = separated_classes(seed=9)
    stack = stack.astype(np.float32)
    before = stack.copy()
    km = KMeansUnits(4).fit(stack)
    assert distances(km, stack).dtype == np.float32
    assert adjusted_rand_score(truth.ravel(), km.predict(stack).ravel()) == 1.0
    np.testing.assert_array_equal(stack, before)
