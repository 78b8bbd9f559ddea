"""Image features: the bands, or principal components of the bands or of mineral indices.

The image features ``MS`` of the method (``docs/method.md``, step 3) are made by
a :class:`FeatureTransform` fitted once on a seeded sample of valid pixels and
then applied to any window of the image, so the block-by-block chains and the
in-memory :func:`image_features` compute the same features.
:func:`fit_image_model` fits the transform and, for the local regression, the
K-means units on pixels read from random windows of a scene.
"""

from __future__ import annotations

import numpy as np

from ._pixels import sample_pixels, valid_mask
from .blocks import sample_pixels_from_windows
from .clustering import KMeansUnits
from .indices import compute_indices, default_band_map
from .pca import PCA
from .progress import step
from .vocabulary import FEATURE_CHOICES, SAMPLE_SIZE, ImageFeatures

__all__ = [
    "FeatureTransform",
    "fit_image_model",
    "image_features",
]

class FeatureTransform:
    """Image bands → fusion features, fitted on a pixel sample, applied to any window.

    ``features``: ``"bands"`` (every band), ``"bands-pc2"`` / ``"indices-pc2"``
    (PC2 of the bands / of the mineral indices, the paper's choice) or
    ``"pcs"`` (the 1-based components in ``pcs``). The PCA sees at most
    ``sample_size`` of the pixels given to :meth:`fit`.
    """

    def __init__(self, features="bands", *, sensor="sentinel2", band_map=None, pcs=(2,),
                 band_names=None, standardize=True, sample_size=SAMPLE_SIZE, random_state=0):
        if features not in FEATURE_CHOICES:
            raise ValueError(f"features must be one of {FEATURE_CHOICES}, got {features!r}")
        self.features = features
        self.sensor = sensor
        self.band_map = band_map
        self.pcs = tuple(int(p) for p in pcs)
        self.band_names = list(band_names) if band_names else None
        self.standardize = standardize
        self.sample_size = sample_size
        self.random_state = random_state

    def _source(self, stack):
        if self.features == "indices-pc2":
            result = compute_indices(stack, self.band_map, sensor=self.sensor,
                                     indices=self.index_keys_)
            return result.data
        return stack

    def fit(self, pixels):
        """Fit on valid pixels ``(bands, n)``."""
        pixels = np.asarray(pixels, dtype=np.float64)
        p = pixels.shape[0]
        names = self.band_names or [f"Band {i + 1}" for i in range(p)]
        self.n_bands_ = p
        self.pca_ = None
        self.index_keys_ = None
        self.source_names_ = names
        if self.features == "bands":
            self.names_ = names
            return self
        stack = pixels[:, None, :]
        if self.features == "indices-pc2":
            if self.band_map is None:
                self.band_map = default_band_map(p, self.sensor)
            result = compute_indices(stack, self.band_map, sensor=self.sensor)
            self.index_keys_ = [ix.key for ix in result.indices]
            self.source_names_ = [ix.label for ix in result.indices]
            stack = result.data
        wanted = (2,) if self.features in ("bands-pc2", "indices-pc2") else self.pcs
        if not wanted or min(wanted) < 1 or max(wanted) > stack.shape[0]:
            raise ValueError(
                f"principal components {wanted} requested, but only {stack.shape[0]} inputs are "
                f"available ({', '.join(self.source_names_)}); choose components between 1 and "
                f"{stack.shape[0]}"
            )
        self.wanted_ = wanted
        self.pca_ = PCA(max(wanted), standardize=self.standardize, sample_size=self.sample_size,
                        random_state=self.random_state).fit(stack)
        self.names_ = [f"PC{w}" for w in wanted]
        return self

    def transform(self, block):
        """Features ``(q, rows, cols)`` of an image block ``(bands, rows, cols)``."""
        block = np.asarray(block, dtype=np.float64)
        if self.features == "bands":
            return block
        comps = self.pca_.transform(self._source(block))
        return comps[[w - 1 for w in self.wanted_]]


def fit_image_model(read, image_grid, settings, *, progress=None, cancel=None, start=0.0,
                    span=0.08):
    """The image work shared by all elements: the feature transform and the K-means units.

    Both are fitted on a seeded sample of ``settings.sample_size`` pixels read
    from random windows (:func:`~.blocks.sample_pixels_from_windows`); K-means
    only for local regression. ``settings``: a
    :class:`~.vocabulary.FusionSettings` (``features``, ``sensor``,
    ``band_map``, ``pcs``, ``band_names``, ``regression``, ``n_clusters``,
    ``sample_size``, ``random_state``). Returns ``(transform, kmeans or None, pixels)``.
    """
    step(progress, cancel, start, "sampling image pixels for the feature transform")
    pixels = sample_pixels_from_windows(read, image_grid.shape, n_pixels=settings.sample_size,
                                        random_state=settings.random_state)
    transform = FeatureTransform(settings.features, sensor=settings.sensor,
                                 band_map=settings.band_map, pcs=settings.pcs,
                                 band_names=settings.band_names,
                                 sample_size=settings.sample_size,
                                 random_state=settings.random_state).fit(pixels)
    kmeans = None
    if settings.regression == "local":
        step(progress, cancel, start + span * 0.4,
             f"clustering {settings.n_clusters} geological units (K-means)")
        kmeans = KMeansUnits(settings.n_clusters, sample_size=settings.sample_size,
                             random_state=settings.random_state).fit(
            transform.transform(pixels[:, None, :]))
    return transform, kmeans, pixels


def image_features(image, *, features="bands-pc2", sensor="sentinel2", band_map=None,
                   pcs=(2,), band_names=None, standardize=True, sample_size=SAMPLE_SIZE,
                   random_state=0):
    """Compute the image features ``MS`` (``docs/method.md`` step 3) on an in-memory image.

    The :class:`FeatureTransform` the block-by-block chains use, fitted on a
    seeded sample of ``sample_size`` valid pixels.

    Parameters
    ----------
    image : ndarray, shape (bands, rows, cols)
        Reflectance (or any covariate) stack, NaN = nodata.
    features : {"bands-pc2", "indices-pc2", "bands", "pcs"}
        ``bands-pc2``/``indices-pc2``: the paper's PC2 of the bands / of the
        mineral indices (PC1 carries albedo and topography); ``bands``: every
        band; ``pcs``: the principal components listed in ``pcs`` (1-based).
    sensor, band_map
        For the indices (see :func:`geochem_fusion.core.indices.compute_indices`).
    pcs : sequence of int
        Components kept with ``features="pcs"``.
    band_names : list of str, optional
    standardize : bool
        PCA on standardized bands (correlation matrix). Recommended for indices
        and mixed covariates, whose units differ.
    sample_size : int
        Pixels the PCA is fitted on (at most).
    random_state : int
        Seed of the pixel sample.

    Returns
    -------
    ImageFeatures
    """
    transform = FeatureTransform(features, sensor=sensor, band_map=band_map, pcs=pcs,
                                 band_names=band_names, standardize=standardize,
                                 sample_size=sample_size, random_state=random_state)
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 3:
        raise ValueError(f"expected a (bands, rows, cols) image stack, got ndim={image.ndim}")
    pixels = sample_pixels(image, valid_mask(image), sample_size, random_state).T
    transform.fit(pixels)
    if features == "bands":
        return ImageFeatures(image, transform.names_)
    index_result = None
    if features == "indices-pc2":
        index_result = compute_indices(image, transform.band_map, sensor=sensor,
                                       indices=transform.index_keys_)
    return ImageFeatures(transform.transform(image), transform.names_, pca=transform.pca_,
                         indices=index_result, source_names=transform.source_names_)
