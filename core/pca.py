"""Principal component analysis of a raster stack (``docs/method.md`` step 3).

The paper reduces the image bands (or the alteration indices) with PCA and
uses PC2 as the image feature, PC1 carrying albedo and topography.  PCA is
fitted on a seeded sample of valid pixels and applied block by block, so it
scales to full Sentinel-2 tiles (``docs/method.md``, "How the streaming chain
maps onto the steps").

A principal component's sign is arbitrary: :class:`PCA` orients every
component so that its largest-magnitude coefficient is positive
(deterministic, independent of the geochemistry; ``docs/method.md`` step 3).

References
----------
Jolliffe, I. T. (2002). *Principal Component Analysis*, 2nd ed. Springer.

Research on Scale Improvement of Geochemical Exploration Based on Remote
Sensing Image Fusion. *Remote Sensing* 15(8), 1993 (2023), section 4.3.
"""

from __future__ import annotations

import logging

import numpy as np
from sklearn import decomposition

from ._pixels import as_stack, band_scaling, map_pixels, sample_pixels, valid_mask
from .vocabulary import SAMPLE_SIZE

__all__ = ["PCA"]

logger = logging.getLogger(__name__)


class PCA:
    """PCA of a ``(bands, rows, cols)`` stack, fitted on a pixel sample.

    Parameters
    ----------
    n_components : int or None
        Number of components kept; ``None`` keeps all (one per band).
    standardize : bool, keyword-only
        ``False`` (default): covariance PCA of the centred bands.  ``True``:
        correlation PCA, each band divided by its standard deviation (use it
        when bands have different units, e.g. band ratios).  A constant band
        gets scale 1 and a warning instead of a division by zero.
    sample_size : int or None, keyword-only
        Number of valid pixels drawn (seeded, without replacement) to fit;
        ``None`` uses all valid pixels.
    random_state : int or None, keyword-only
        Seed of the pixel sample.

    Attributes
    ----------
    mean_, scale_ : numpy.ndarray, shape (n_bands,)
        The fitted space is ``z = (x - mean_) / scale_`` (``scale_`` is 1
        unless ``standardize``).
    components_ : numpy.ndarray, shape (n_components, n_bands)
        Orthonormal rows, the eigenvectors of the covariance of ``z``.
        **Sign convention**: each row is oriented so that its largest-magnitude
        coefficient is positive (the first one on ties).
    explained_variance_ : numpy.ndarray, shape (n_components,)
        Variance of each component's scores on the sample (ddof=1).
    explained_variance_ratio_ : numpy.ndarray, shape (n_components,)
        Fraction of the total variance of ``z``; sums to 1 when all components
        are kept.
    loadings_ : numpy.ndarray, shape (n_bands, n_components)
        Pearson correlation of each band ``z_j`` with each component's scores
        on the fitted sample:
        ``loadings_[j, k] = components_[k, j] * sqrt(explained_variance_[k]) / std(z_j)``
        with ``std`` computed with ddof=1 (as ``explained_variance_``).  A
        constant band has loading 0.
    n_components_ : int
    n_features_in_ : int
        Number of bands seen in ``fit``.
    n_samples_ : int
        Number of pixels used in ``fit``.

    Notes
    -----
    ``fit`` uses :class:`sklearn.decomposition.PCA` (full SVD) on the sample.
    ``transform`` works on row blocks of about
    :data:`~geochem_fusion.core.blocks.BLOCK_PIXELS` pixels, so only
    one block is ever held as an ``(n_pixels, bands)`` float64 matrix.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> stack = rng.normal(size=(4, 50, 60))
    >>> pca = PCA(2).fit(stack)
    >>> pca.transform(stack).shape
    (2, 50, 60)
    """

    def __init__(self, n_components=None, *, standardize=False, sample_size=SAMPLE_SIZE,
                 random_state=0):
        self.n_components = n_components
        self.standardize = standardize
        self.sample_size = sample_size
        self.random_state = random_state

    # -- fitting ------------------------------------------------------------
    def fit(self, stack):
        """Fit on a seeded sample of the pixels where every band is finite.

        Parameters
        ----------
        stack : array_like, shape (bands, rows, cols)
            Image bands or indices; NaN marks nodata.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            If ``n_components`` is out of range, or fewer than ``bands + 1``
            valid pixels are available.
        """
        stack = as_stack(stack, "stack", dtype=None)
        n_bands = stack.shape[0]
        n_components = n_bands if self.n_components is None else int(self.n_components)
        if not 1 <= n_components <= n_bands:
            raise ValueError(
                f"n_components must be between 1 and the number of bands ({n_bands}), "
                f"got {self.n_components}"
            )
        samples = sample_pixels(stack, valid_mask(stack), self.sample_size, self.random_state)
        if samples.shape[0] < n_bands + 1:
            raise ValueError(
                f"PCA of {n_bands} bands needs at least {n_bands + 1} pixels where every band is "
                f"finite, got {samples.shape[0]} (sample_size={self.sample_size}); check the "
                "bands' nodata and overlap"
            )
        self.mean_, self.scale_ = band_scaling(samples, standardize=self.standardize)
        z = (samples - self.mean_) / self.scale_
        sk = decomposition.PCA(n_components=n_components, svd_solver="full").fit(z)

        components = sk.components_.copy()
        largest = np.argmax(np.abs(components), axis=1)
        signs = np.sign(components[np.arange(n_components), largest])
        components *= signs[:, np.newaxis]
        self.components_ = components
        self.explained_variance_ = sk.explained_variance_
        self.explained_variance_ratio_ = sk.explained_variance_ratio_

        band_std = z.std(axis=0, ddof=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            loadings = components.T * np.sqrt(self.explained_variance_) / band_std[:, np.newaxis]
        self.loadings_ = np.where(band_std[:, np.newaxis] > 0, loadings, 0.0)

        self.n_components_ = n_components
        self.n_features_in_ = n_bands
        self.n_samples_ = samples.shape[0]
        logger.info(
            "PCA fitted on %d pixels of %d bands; explained variance ratio %s",
            self.n_samples_, n_bands, np.round(self.explained_variance_ratio_, 4).tolist(),
        )
        return self

    # -- applying -----------------------------------------------------------
    def transform(self, stack):
        """Component scores of every pixel.

        Parameters
        ----------
        stack : array_like, shape (bands, rows, cols)
            Same bands, in the same order, as in ``fit``.

        Returns
        -------
        numpy.ndarray, shape (n_components, rows, cols)
            Scores ``z @ components_.T`` with ``z = (x - mean_) / scale_``;
            NaN where any band is not finite.  Float32 input gives float32
            output (computed in float64 per row block), otherwise float64.
        """
        self._check_fitted()
        stack = as_stack(stack, "stack", dtype=None)
        if stack.shape[0] != self.n_features_in_:
            raise ValueError(
                f"stack has {stack.shape[0]} bands but the PCA was fitted on "
                f"{self.n_features_in_}; pass the same bands in the same order"
            )
        return map_pixels(
            stack, lambda px: ((px - self.mean_) / self.scale_) @ self.components_.T,
            self.n_components_)

    # -- reporting ----------------------------------------------------------
    def loading_table(self, band_names=None):
        """Loadings and explained variance as table rows for reports.

        Parameters
        ----------
        band_names : sequence of str, optional
            One name per band; default ``"band_1"``, ``"band_2"``, …

        Returns
        -------
        list of dict
            One row per band ``{"band": name, "PC1": loading, "PC2": …}``
            (see ``loadings_``), then two rows with ``"band"`` set to
            ``"explained variance"`` and ``"explained variance ratio"``.
        """
        self._check_fitted()
        if band_names is None:
            band_names = [f"band_{j + 1}" for j in range(self.n_features_in_)]
        band_names = list(band_names)
        if len(band_names) != self.n_features_in_:
            raise ValueError(
                f"got {len(band_names)} band names for {self.n_features_in_} bands"
            )
        pcs = [f"PC{k + 1}" for k in range(self.n_components_)]
        rows = [
            {"band": name, **dict(zip(pcs, map(float, self.loadings_[j])))}
            for j, name in enumerate(band_names)
        ]
        rows.append({"band": "explained variance",
                     **dict(zip(pcs, map(float, self.explained_variance_)))})
        rows.append({"band": "explained variance ratio",
                     **dict(zip(pcs, map(float, self.explained_variance_ratio_)))})
        return rows

    def _check_fitted(self):
        if not hasattr(self, "components_"):
            raise ValueError("this PCA is not fitted yet: call fit(stack) first")
