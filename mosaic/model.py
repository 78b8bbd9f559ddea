"""The adaptive fusion split in two: a fit on the samples, then a prediction of any window.

The fit (:func:`fit_image_part`, :func:`element_tasks`, :class:`FittedModel`)
happens once for the whole mosaic and gives a small object (the feature
transform, the K-means units, one :class:`~geochem_fusion.core.adaptive.AdaptiveFit`
per element with its kriged residual on the coarse grid): that is what is
broadcast to the workers. :func:`predict_window` then computes any window of
the mosaic from the pixels of that window plus ``halo`` pixels of context on
each side, so a tile's result equals the whole-mosaic result to rounding.

The steps are those of :func:`geochem_fusion.core.scene.fuse_scene` (same
functions, same order, same seeds), so the product equals a single-machine
``fuse_scene`` on the same mosaic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core.adaptive import DEFAULT_WINDOWS, feature_stack, fit_adaptive_samples, read_chips
from ..core.resample import resample_cubic
from ..core.scene import fit_image_model, scene_samples


@dataclass
class Settings:
    """What the command line passes on to the fit (the defaults of ``fusegeochemistry``)."""

    features: str = "bands"
    sensor: str = "sentinel2"
    band_map: dict = None
    pcs: tuple = (2,)
    regression: str = "global"
    n_clusters: int = 5
    log_transform: bool = False
    variogram: str = "auto"
    cell_size: float = None
    sample_size: int = 200_000
    random_state: int = 0
    windows: tuple = DEFAULT_WINDOWS


@dataclass
class ImagePart:
    """The image side of the fit, shared by all elements."""

    transform: object
    kmeans: object
    chips: np.ndarray
    labels: np.ndarray
    near: np.ndarray
    spacing: float
    kgrid: object


@dataclass
class FittedModel:
    """Everything a task needs to predict any window of the mosaic (small: broadcast it)."""

    names: list
    transform: object
    kmeans: object
    fits: dict
    kgrid: object
    log_transform: bool
    spacing: float
    notes: list = field(default_factory=list)

    @property
    def halo(self):
        """Pixels of context a window needs on each side."""
        return max(f.halo for f in self.fits.values())


def fit_image_part(x, y, values, read, grid, settings, band_names=None):
    """The feature transform, K-means units and feature chips at the samples (read once)."""
    x, y, near, spacing, kgrid = scene_samples(x, y, values, settings.regression, grid,
                                               settings.cell_size)
    transform, kmeans, _ = fit_image_model(
        read, grid, features=settings.features, sensor=settings.sensor,
        band_map=settings.band_map, pcs=settings.pcs, band_names=band_names,
        regression=settings.regression, n_clusters=settings.n_clusters,
        sample_size=settings.sample_size, random_state=settings.random_state)
    half = max(settings.windows) // 2
    chips_raw = read_chips(read, grid, x, y, half)
    if chips_raw is None:
        raise ValueError("no sample falls on the image")
    n, p, s, _ = chips_raw.shape
    flat = chips_raw.transpose(1, 2, 0, 3).reshape(p, s, n * s)
    feat = transform.transform(flat)
    chips = feat.reshape(feat.shape[0], s, n, s).transpose(2, 0, 1, 3)
    labels = None
    if kmeans is not None:
        labels = kmeans.predict(chips[:, :, half, half].T[:, :, None])[:, 0]
    return ImagePart(transform, kmeans, chips, labels, near, float(spacing), kgrid)


def element_inputs(x, y, values, part, settings):
    """Per element: the arguments of its fit ``{name: (x, y, z, chips, labels)}`` and counts."""
    out, counts = {}, {}
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    for name, vals in values.items():
        vals = np.asarray(vals, dtype=np.float64)
        ok = part.near & np.isfinite(vals)
        counts[name] = int(ok.sum())
        z = vals[ok]
        if settings.log_transform:
            bad = z <= 0
            if bad.any():
                raise ValueError(
                    f"log transform needs positive values, but {int(bad.sum())} {name} samples "
                    "are <= 0: replace below-detection codes (--below-detection half-min) or "
                    "turn the log transform off")
            z = np.log10(z)
        out[name] = (x[ok], y[ok], z, part.chips[ok],
                     None if part.labels is None else part.labels[ok])
    return out, counts


def fit_element(inputs, kgrid, band_names, settings):
    """The adaptive fit of one element (a task of the fit stage)."""
    x, y, z, chips, labels = inputs
    fit = fit_adaptive_samples(x, y, z, chips, kgrid, band_names=band_names,
                               variogram=settings.variogram, windows=settings.windows,
                               random_state=settings.random_state, labels=labels)
    fit.mode = "adaptive"
    return fit


def describe(name, fit):
    """One line on what the fit chose (as ``fuse_scene`` notes it)."""
    if fit.shrink == 0:
        return f"{name}: kriging alone (the image did not improve the cross-validation)"
    return (f"{name}: image trend on {fit.feature_set}, {fit.window} px window, "
            f"shrink {fit.shrink:.2f}; CV RMSE {fit.loo_rmse:.4g} vs kriging alone "
            f"{fit.kriging_alone_rmse:.4g}")


def predict_window(model, read, grid, row0, col0, nrows, ncols):
    """Fused values ``(elements, nrows, ncols)`` of a window of the mosaic ``grid``.

    ``read`` reaches the whole mosaic; the window is read with ``model.halo``
    pixels of context on each side (clamped at the mosaic's edges, where the
    whole-mosaic run sees the same edge), so the result equals the whole-mosaic
    one to rounding.
    """
    halo = model.halo
    rows, cols = grid.shape
    a0, a1 = max(row0 - halo, 0), min(row0 + nrows + halo, rows)
    b0, b1 = max(col0 - halo, 0), min(col0 + ncols + halo, cols)
    core = (slice(row0 - a0, row0 - a0 + nrows), slice(col0 - b0, col0 - b0 + ncols))
    image_block = read(a0, b0, a1 - a0, b1 - b0)
    fits = [model.fits[name] for name in model.names]
    F0 = model.transform.transform(image_block)  # noqa: N806 (the method's symbol)
    F = F0[(slice(None), *core)]  # noqa: N806
    trends = [f for f in fits if f.shrink > 0]
    units = (model.kmeans.predict(F)
             if model.kmeans is not None and any(f.unit_fits for f in trends) else None)
    estimates = np.stack([f.kriging.estimate for f in fits])
    residuals = resample_cubic(estimates, model.kgrid, grid.window(row0, col0, nrows, ncols))
    windowed = {}
    if trends:
        widest = ("bands+ratios" if any(f.feature_set == "bands+ratios" for f in trends)
                  else "bands")
        needed = {}
        for fit in trends:
            needed[fit.window] = max(needed.get(fit.window, 0), len(fit.feature_names))
        raw = feature_stack(F0, widest)[0]
        windowed = {w: (raw[:k] if w == 1 else
                        feature_stack(raw[:k], "bands", window=w)[0])[(slice(None), *core)]
                    for w, k in needed.items()}
    out = np.empty((len(fits), nrows, ncols))
    valid = None
    for i, fit in enumerate(fits):
        if fit.shrink > 0:
            value = fit.trend_from_features(windowed[fit.window][:len(fit.feature_names)],
                                            labels=units)
            value += residuals[i]
        else:
            if valid is None:
                valid = np.isfinite(F).all(axis=0)
            value = np.where(valid, residuals[i], np.nan)
        out[i] = np.power(10.0, value) if model.log_transform else value
    return out


def settings_for(**changes):
    """The settings of a run: the defaults of ``fusegeochemistry`` with ``changes``."""
    return Settings(**changes)
