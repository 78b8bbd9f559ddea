"""The one entry point of the chain: samples and an image in, fused layers out, block by block.

:class:`SceneFusion` is a scikit-learn-style estimator over a block reader and
writers. :meth:`~SceneFusion.fit` learns everything from the samples and from
pixel samples of the image, whatever the mode of its
:class:`~.vocabulary.FusionSettings`; :meth:`~SceneFusion.predict` streams the
fused layers to a :class:`~.vocabulary.Sinks`, row block by row block, and
:meth:`~SceneFusion.predict_block` fuses one block, so that a distributed run
can fit once, send the small fitted model to its workers and predict a block
per task. :func:`fuse_scene` is fit then predict.

It dispatches to the two scene chains:

- :mod:`.adaptive_scene` — the ``adaptive`` mode, the product's default;
- :mod:`.pyramid_scene` — the paper's ``paper`` and ``coherent`` modes.

Both read the image only through ``read(row0, col0, nrows, ncols)`` (see
:mod:`.blocks`), so a full Sentinel-2 tile is never held in memory. The
labelled in-memory reference of the paper's equations is
:func:`~.fusion.fuse`; :mod:`.pipeline` runs this entry point on arrays.
"""

from __future__ import annotations

from .adaptive_scene import fit_adaptive_scene
from .pyramid_scene import fit_pyramid_scene
from .vocabulary import FusionSettings, Sinks

__all__ = ["SceneFusion", "fuse_scene"]


class SceneFusion:
    """The whole chain as an estimator: ``fit`` on samples, ``predict`` block by block.

    Parameters
    ----------
    settings : FusionSettings, optional
        Every setting of the run (default: the product's defaults, the
        ``adaptive`` mode).

    Attributes
    ----------
    model_ : AdaptiveSceneModel or PyramidSceneModel
        The fitted chain (coefficients and coarse grids: small, picklable).
    """

    def __init__(self, settings=None):
        self.settings = settings if settings is not None else FusionSettings()

    def fit(self, x, y, values, read, image_grid, *, krige_alone=True, progress=None,
            cancel=None):
        """Fit the chain on the samples and on pixel samples of the image.

        Parameters
        ----------
        x, y : array_like, shape (n,)
            Sample coordinates in the image CRS (metres).
        values : dict of str -> array_like (n,)
            Concentrations per element (NaN = not analysed).
        read : callable
            ``read(row0, col0, nrows, ncols) -> (bands, nrows, ncols)`` over the image.
        image_grid : Grid
        krige_alone : bool
            Also krige each element alone where the mode does not need it
            (adaptive): the kriged and variance outputs and the report.
        progress, cancel : callables, optional
            See :mod:`~.progress`.

        Returns
        -------
        self
        """
        if self.settings.mode == "adaptive":
            self.model_ = fit_adaptive_scene(x, y, values, read, image_grid, self.settings,
                                             krige_alone=krige_alone, progress=progress,
                                             cancel=cancel)
        else:
            self.model_ = fit_pyramid_scene(x, y, values, read, image_grid, self.settings,
                                            progress=progress, cancel=cancel)
        return self

    @property
    def feature_names_(self):
        """Names of the image features the fitted chain uses."""
        return list(self.model_.transform.names_)

    def predict_block(self, read, row0, nrows):
        """``(fused, features, units)`` of rows ``row0 : row0 + nrows`` of the image.

        ``fused``: one ``(nrows, cols)`` layer per element, in data units;
        ``units`` is None where no units are made. Independent of every other
        block, so blocks may be computed anywhere, in any order.
        """
        fused, features, units = self.model_.predict_block(read, row0, nrows)
        return list(fused), features, units

    def predict(self, read, sinks):
        """Every row block of the image, written in order to ``sinks`` (a :class:`Sinks`).

        Returns the :class:`~.vocabulary.SceneResult`.
        """
        return self.model_.predict(read, sinks)


def fuse_scene(x, y, values, read, image_grid, settings=None, sinks=None):
    """Fuse one or several elements over a whole scene, block by block: fit, then predict.

    Parameters
    ----------
    x, y, values, read, image_grid
        As :meth:`SceneFusion.fit`.
    settings : FusionSettings, optional
        Every setting of the run (default: the product's defaults).
    sinks : Sinks
        Where the fused blocks (and features, units) go, the previews kept,
        whether kriging alone is computed, progress and cancel.

    Returns
    -------
    SceneResult
        The fits and krigings per element, the feature transform, the units,
        the kriging grid, the previews and the notes; ``levels`` is the
        pyramid depth used (0 in the adaptive mode).
    """
    sinks = sinks if sinks is not None else Sinks()
    estimator = SceneFusion(settings).fit(x, y, values, read, image_grid,
                                          krige_alone=sinks.krige_alone,
                                          progress=sinks.progress, cancel=sinks.cancel)
    return estimator.predict(read, sinks)
