"""The adaptive fusion split in two for a mosaic: a fit on the samples, then any window.

The pieces are the core's own (:mod:`geochem_fusion.core.adaptive_scene`): the
image part of the fit (:func:`fit_image_part`) runs on the client, the fit of
each element (:func:`fit_element`) is one Dask task, and the fitted
:class:`~geochem_fusion.core.adaptive_scene.AdaptiveSceneModel` (the feature
transform, the K-means units, one ``AdaptiveFit`` per element with its kriged
residual on the coarse grid: small) is broadcast to the workers, whose tasks
call :func:`predict_window`. So the product equals the single-machine
``fusegeochemistry`` on the same mosaic, to rounding.
"""

from __future__ import annotations

import numpy as np

from ..core.adaptive_scene import (
    AdaptiveSceneModel,
    describe,
    element_inputs,
    fit_element,
    fit_image_part,
)
from ..core.blocks import block_rows_for
from ..core.vocabulary import FusionSettings

__all__ = ["Settings", "describe", "element_inputs", "fit_element", "fit_image_part",
           "fitted_model", "predict_window"]

Settings = FusionSettings
"""What the command line passes on to the fit: the core's settings (``fusegeochemistry``'s
defaults)."""


def fitted_model(names, part, fits, grid, settings):
    """The model every tile task predicts from (the image part and the element fits)."""
    return AdaptiveSceneModel(
        list(names), fits, {name: None for name in names}, part.transform, part.kmeans, grid,
        part.kriging_grid, part.spacing, bool(settings.log_transform),
        block_rows_for(grid.ncols, 2 * part.transform.n_bands_),
        [describe(name, fits[name]) for name in names])


def predict_window(model, read, row0, col0, nrows, ncols):
    """Fused values ``(elements, nrows, ncols)`` of a window of the mosaic.

    ``read`` reaches the whole mosaic; the window is read with ``model.halo``
    pixels of context on each side (clamped at the mosaic's edges), so the
    result equals the whole-mosaic one to rounding
    (:meth:`~geochem_fusion.core.adaptive_scene.AdaptiveSceneModel.predict_window`).
    """
    fused, _, _ = model.predict_window(read, row0, col0, nrows, ncols)
    return np.stack(fused)
