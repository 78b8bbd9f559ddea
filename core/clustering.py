"""K-means units for the local regression (``docs/method.md`` step 5).

In local mode the paper splits the image into N classes with K-means on the
image features, one class standing for one geological unit, and fits the
regression of eq. 1 separately in each.  K-means is fitted on a seeded pixel
sample and applied block by block (``docs/method.md``, "How the streaming chain maps onto the steps").

References
----------
Lloyd, S. (1982). Least squares quantization in PCM. *IEEE Transactions on
Information Theory* 28(2), 129-137.

Research on Scale Improvement of Geochemical Exploration Based on Remote
Sensing Image Fusion. *Remote Sensing* 15(8), 1993 (2023), section 4.3.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.spatial.distance import cdist
from sklearn.cluster import KMeans

from ._pixels import as_stack, band_scaling, map_pixels, sample_pixels, valid_mask
from .vocabulary import SAMPLE_SIZE

__all__ = ["KMeansUnits"]

logger = logging.getLogger(__name__)


class KMeansUnits:
    """K-means classes of the pixels of a ``(bands, rows, cols)`` stack.

    Parameters
    ----------
    n_clusters : int
        Number of classes N (at least 2).
    sample_size : int or None, keyword-only
        Valid pixels drawn (seeded, without replacement) to fit; ``None`` uses
        all valid pixels.
    random_state : int or None, keyword-only
        Seed of both the pixel sample and :class:`sklearn.cluster.KMeans`, so a
        fixed seed gives the same classes.
    standardize : bool, keyword-only
        Divide each band by its standard deviation before clustering (default),
        so bands in different units weigh alike.  A constant band gets scale 1
        and a warning.

    Attributes
    ----------
    cluster_centers_ : numpy.ndarray, shape (n_clusters, n_bands)
        Class centres in input units.  **Label order**: classes are numbered by
        increasing centre value of the first band (exact ties broken by the
        next bands), so labels do not depend on K-means' internal order.
        Classes whose first-band centres are nearly equal may swap labels with
        another seed or sample.
    mean_, scale_ : numpy.ndarray, shape (n_bands,)
        Clustering space ``z = (x - mean_) / scale_`` (``scale_`` is 1 unless
        ``standardize``).
    counts_ : numpy.ndarray of int, shape (n_clusters,)
        Number of sampled pixels in each class.
    inertia_ : float
        Sum of squared distances of the sampled pixels to their centre (in the
        clustering space).
    n_features_in_ : int
        Number of bands seen in ``fit``.

    Notes
    -----
    Uses :class:`sklearn.cluster.KMeans` (k-means++ initialisation, 4 runs,
    best inertia kept).  ``predict`` works on row blocks, so
    memory is bounded by the block size, not the image size.
    """

    n_init = 4

    def __init__(self, n_clusters=8, *, sample_size=SAMPLE_SIZE, random_state=0, standardize=True):
        self.n_clusters = n_clusters
        self.sample_size = sample_size
        self.random_state = random_state
        self.standardize = standardize

    def fit(self, stack):
        """Fit K-means on a seeded sample of the pixels where every band is finite.

        Parameters
        ----------
        stack : array_like, shape (bands, rows, cols)
            Image features (bands, PCs or indices); NaN marks nodata.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            If ``n_clusters < 2`` or the sample holds fewer distinct pixel
            vectors than ``n_clusters``.
        """
        if int(self.n_clusters) != self.n_clusters or self.n_clusters < 2:
            raise ValueError(
                f"n_clusters must be an integer of at least 2, got {self.n_clusters}; "
                "use the global mode for a single class"
            )
        n_clusters = int(self.n_clusters)
        stack = as_stack(stack, "stack", dtype=None)
        samples = sample_pixels(stack, valid_mask(stack), self.sample_size, self.random_state)
        n_distinct = len(np.unique(samples, axis=0)) if len(samples) else 0
        if n_distinct < 2:
            raise ValueError(
                f"cannot make {n_clusters} classes: the sampled pixels (where every band is "
                f"finite) hold only {n_distinct} distinct value{'' if n_distinct == 1 else 's'}, and "
                "units need at least 2; check the input's nodata, its size and that it is not "
                "constant"
            )
        if n_distinct < n_clusters:
            raise ValueError(
                f"cannot make {n_clusters} classes: the sampled pixels (where every band is "
                f"finite) hold only {n_distinct} distinct values; lower N_CLUSTERS to at most "
                f"{max(n_distinct, 1)} or check the input's nodata"
            )
        self.mean_, self.scale_ = band_scaling(samples, standardize=self.standardize)
        z = (samples - self.mean_) / self.scale_
        km = KMeans(n_clusters=n_clusters, n_init=self.n_init, random_state=self.random_state)
        km.fit(z)

        centres = km.cluster_centers_
        order = np.lexsort(centres.T[::-1])  # first band is the primary key
        relabel = np.empty(n_clusters, dtype=np.int32)
        relabel[order] = np.arange(n_clusters, dtype=np.int32)
        self._centres_z = centres[order]
        self.cluster_centers_ = self._centres_z * self.scale_ + self.mean_
        self.counts_ = np.bincount(relabel[km.labels_], minlength=n_clusters)
        self.inertia_ = float(km.inertia_)
        self.n_features_in_ = stack.shape[0]
        logger.info(
            "K-means: %d classes from %d sampled pixels, counts %s",
            n_clusters, len(samples), self.counts_.tolist(),
        )
        return self

    def predict(self, stack):
        """Class of the nearest centre for every pixel.

        Parameters
        ----------
        stack : array_like, shape (bands, rows, cols)
            Same bands, in the same order, as in ``fit``.

        Returns
        -------
        numpy.ndarray of int32, shape (rows, cols)
            Labels ``0 … n_clusters-1``; ``-1`` where any band is not finite.
        """
        stack = self._check_stack(stack)
        return map_pixels(
            stack,
            lambda px: np.argmin(cdist((px - self.mean_) / self.scale_, self._centres_z,
                                       "sqeuclidean"), axis=1),
            None, fill=-1, dtype=np.int32)

    def _check_stack(self, stack):
        if not hasattr(self, "cluster_centers_"):
            raise ValueError("this KMeansUnits is not fitted yet: call fit(stack) first")
        stack = as_stack(stack, "stack", dtype=None)
        if stack.shape[0] != self.n_features_in_:
            raise ValueError(
                f"stack has {stack.shape[0]} bands but the classes were fitted on "
                f"{self.n_features_in_}; pass the same bands in the same order"
            )
        return stack
