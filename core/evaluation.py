"""Evaluation of fused geochemical layers, and spatial cross-validation of the whole chain.

Two questions a user asks after a fusion:

1. **How good is this layer?** :func:`evaluate_layer` scores one layer against
   whatever the user has to compare with: a denser survey (reference points),
   a reference raster (e.g. a simulated truth, or a detailed map), the input
   survey itself (Wald consistency: averaged back to the survey support, the
   fused layer should return the input) and known mineral occurrences
   (success-rate curve). All numbers come from :mod:`.metrics`.
2. **Does the image help in my area?** :func:`cross_validate_chain` holds out
   spatial blocks of samples, refits the *whole* chain on the others (kriging,
   image features, regression, fusion), predicts the held-out samples from the
   fused layer, and reports the errors of each method next to kriging alone and
   regression kriging.

Conventions: layers are ``(rows, cols)`` on a :class:`~.grid.Grid`, NaN is
nodata, points are ``(x, y[, values])`` arrays in the layer's CRS.

References
----------
Wald, L., Ranchin, T., Mangolini, M. (1997). Fusion of satellite images of
    different spatial resolutions: assessing the quality of resulting images.
    Photogrammetric Engineering and Remote Sensing 63(6), 691-699.
Chung, C.-J. F., Fabbri, A. G. (2003). Validation of spatial prediction models
    for landslide hazard mapping. Natural Hazards 30, 451-472 (success-rate curves).
Roberts, D. R. et al. (2017). Cross-validation strategies for data with
    temporal, spatial, hierarchical, or phylogenetic structure. Ecography 40,
    913-929 (spatial block cross-validation).
Hengl, T., Heuvelink, G. B. M., Rossiter, D. G. (2007). About regression-kriging:
    from equations to case studies. Computers & Geosciences 33, 1301-1315.
"""

from __future__ import annotations

import logging
import math
import warnings

import numpy as np

from . import metrics
from .adaptive import spatial_folds
from .blocks import array_reader
from .grid import Grid
from .kriging import OrdinaryKrigingModel
from .progress import step as _step
from .resample import resample_cubic
from .samples import median_nn_spacing
from .scene import fuse_scene
from .vocabulary import FusionSettings, Sinks, kriging_grid

__all__ = [
    "METHODS",
    "METRIC_NAMES",
    "block_mean",
    "cross_validate_chain",
    "evaluate_layer",
    "sample_layer",
    "success_rate",
]

logger = logging.getLogger(__name__)

METHODS = ("kriging alone", "regression kriging", "default", "paper global", "coherent global")
"""Methods of :func:`cross_validate_chain`, in the order they are reported."""

METRIC_NAMES = {
    "n_points": "reference points on valid pixels of the layer",
    "cc_points": "Pearson correlation of the layer (bilinear) with the reference points",
    "rmse_points": "root mean square error at the reference points (data units)",
    "bias_points": "mean error (layer - reference) at the reference points",
    "n_pixels": "pixels valid in both the layer and the reference raster",
    "cc_raster": "Pearson correlation with the reference raster",
    "rmse_raster": "root mean square error against the reference raster",
    "bias_raster": "mean error (layer - reference raster)",
    "uiqi": "universal image quality index (Wang & Bovik 2002), whole layer",
    "ssim": "mean structural similarity (Wang et al. 2004), 11x11 Gaussian window",
    "scc": "correlation of the 3x3 Laplacian high-pass details (Zhou et al. 1998)",
    "iou_p<P>": "intersection over union of the pixels above the P-th percentile of each layer",
    "wald_support": "side of the survey-support blocks (map units)",
    "wald_n": "survey-support blocks compared",
    "wald_cc": "correlation of the block-averaged layer with the input survey",
    "wald_rmse": "RMSE of the block-averaged layer against the input survey",
    "wald_bias": "mean error of the block-averaged layer against the input survey",
    "n_occurrences": "occurrences on valid pixels of the layer",
    "auc": "area under the success-rate curve (0.5 = no better than random)",
}
"""Every key :func:`evaluate_layer` may return, with its meaning (``<P>`` = each percentile)."""


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def _as_layer(layer, grid):
    layer = np.asarray(layer, dtype=np.float64)
    if not isinstance(grid, Grid):
        raise ValueError(f"grid must be a core.grid.Grid, got {type(grid).__name__}")
    if layer.ndim != 2 or layer.shape != grid.shape:
        raise ValueError(
            f"expected a (rows, cols) layer of the grid's shape {grid.shape}, got shape "
            f"{layer.shape}"
        )
    return layer


def _as_points(points, name, *, with_values):
    """``(x, y[, v])`` as float arrays of equal length; rows with a non-finite entry dropped."""
    n_parts = 3 if with_values else 2
    what = "(x, y, values)" if with_values else "(x, y)"
    try:
        parts = [np.asarray(p, dtype=np.float64).ravel() for p in points]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a tuple {what} of numeric arrays") from exc
    if len(parts) != n_parts or len({p.size for p in parts}) != 1:
        raise ValueError(
            f"{name} must be a tuple {what} of equal-length arrays, got "
            f"{len(parts)} arrays of lengths {[p.size for p in parts]}"
        )
    ok = np.logical_and.reduce([np.isfinite(p) for p in parts])
    return tuple(p[ok] for p in parts)


def _same_grid(a: Grid, b: Grid) -> bool:
    return a.shape == b.shape and np.allclose(
        [a.x_min, a.y_max, a.cell_x, a.cell_y], [b.x_min, b.y_max, b.cell_x, b.cell_y],
        rtol=0.0, atol=1e-6 * min(a.cell_x, a.cell_y))


def _pair_metrics(estimate, reference, prefix, suffix):
    """cc, rmse, bias of two arrays (NaN with a warning when fewer than 2 valid pairs)."""
    ok = np.isfinite(estimate) & np.isfinite(reference)
    out = {}
    if ok.sum() < 2:
        warnings.warn(
            f"fewer than 2 valid pairs for the {suffix} comparison ({int(ok.sum())}): "
            "its metrics are NaN; check that the inputs overlap the layer", UserWarning,
            stacklevel=3)
        for key in ("cc", "rmse", "bias"):
            out[f"{prefix}{key}{suffix and '_' + suffix}"] = float("nan")
        return out
    e, r = estimate[ok], reference[ok]
    out[f"{prefix}cc{suffix and '_' + suffix}"] = metrics.pearson_cc(e, r)
    out[f"{prefix}rmse{suffix and '_' + suffix}"] = metrics.rmse(e, r)
    out[f"{prefix}bias{suffix and '_' + suffix}"] = metrics.bias(e, r)
    return out


def _or_nan(function, *args, what, **kwargs):
    """``function(*args)``, or NaN with a warning when it cannot be computed (ValueError)."""
    try:
        return function(*args, **kwargs)
    except ValueError as exc:
        warnings.warn(f"{what} not computed: {exc}", UserWarning, stacklevel=3)
        return float("nan")


def sample_layer(layer, grid, x, y, *, method="bilinear"):
    """Values of a layer at points.

    Parameters
    ----------
    layer : array_like, shape grid.shape
    grid : Grid
    x, y : array_like, shape (n,)
        Points in the grid's CRS (map units).
    method : {"bilinear", "nearest"}
        ``bilinear`` (default): weighted mean of the 4 cell centres around the
        point; a point between the outermost centres and the grid edge uses
        the edge cells (no extrapolation). NaN when a neighbour with a
        non-zero weight is NaN. ``nearest``: the value of the cell holding
        the point.

    Returns
    -------
    ndarray, shape (n,)
        NaN for points outside the grid.
    """
    layer = _as_layer(layer, grid)
    if method not in ("bilinear", "nearest"):
        raise ValueError(f"method must be 'bilinear' or 'nearest', got {method!r}")
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length, got {x.size} and {y.size}")
    col, row = grid.to_pixel(x, y)
    out = np.full(x.size, np.nan)
    with np.errstate(invalid="ignore"):
        inside = (col >= -0.5) & (col < grid.ncols - 0.5) & (row >= -0.5) & (row < grid.nrows - 0.5)
    if method == "nearest":
        c = np.floor(col[inside] + 0.5).astype(np.intp)
        r = np.floor(row[inside] + 0.5).astype(np.intp)
        out[inside] = layer[r, c]
        return out
    out[inside] = _bilinear(lambda rr, cc: layer[rr, cc], grid, col[inside], row[inside])
    return out


def _bilinear_taps(grid, col, row):
    """Rows, columns and weights of the 4 cell centres around fractional ``(col, row)``."""
    c = np.clip(col, 0.0, grid.ncols - 1)
    r = np.clip(row, 0.0, grid.nrows - 1)
    c0 = np.minimum(np.floor(c).astype(np.intp), max(grid.ncols - 2, 0))
    r0 = np.minimum(np.floor(r).astype(np.intp), max(grid.nrows - 2, 0))
    c1 = np.minimum(c0 + 1, grid.ncols - 1)
    r1 = np.minimum(r0 + 1, grid.nrows - 1)
    fc, fr = c - c0, r - r0
    return ((r0, c0, (1 - fr) * (1 - fc)), (r0, c1, (1 - fr) * fc),
            (r1, c0, fr * (1 - fc)), (r1, c1, fr * fc))


def _bilinear(lookup, grid, col, row):
    """Bilinear values at points inside the grid; ``lookup(rows, cols)`` gives cell values."""
    total = np.zeros(np.shape(col))
    bad = np.zeros(np.shape(col), dtype=bool)
    for rr, cc, w in _bilinear_taps(grid, col, row):
        v = lookup(rr, cc)
        used = w > 0
        bad |= used & ~np.isfinite(v)
        total += np.where(used & np.isfinite(v), w * v, 0.0)
    total[bad] = np.nan
    return total


class _RowCapture:
    """The rows of a layer that bilinear sampling at some points needs, kept as they pass.

    :meth:`write` takes full-width row blocks (in any order); :meth:`sample`
    then gives :func:`sample_layer` of the whole layer at the points. Memory:
    two rows per point at most, whatever the size of the layer.
    """

    def __init__(self, grid, x, y):
        self.grid = grid
        col, row = grid.to_pixel(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
        with np.errstate(invalid="ignore"):
            self.inside = ((col >= -0.5) & (col < grid.ncols - 0.5) & (row >= -0.5)
                           & (row < grid.nrows - 0.5))
        self.col, self.row = col[self.inside], row[self.inside]
        taps = _bilinear_taps(grid, self.col, self.row)
        self.needed = np.unique(np.concatenate([taps[0][0], taps[2][0]]))  # sorted
        self.values = np.full((self.needed.size, grid.ncols), np.nan)

    def rows_in(self, row0, nrows):
        """Needed rows in ``row0 : row0 + nrows``."""
        return self.needed[(self.needed >= row0) & (self.needed < row0 + nrows)]

    def write(self, row0, block):
        rows = self.rows_in(row0, block.shape[0])
        self.values[np.searchsorted(self.needed, rows)] = block[rows - row0]

    def sample(self):
        out = np.full(self.inside.size, np.nan)
        out[self.inside] = _bilinear(
            lambda rr, cc: self.values[np.searchsorted(self.needed, rr), cc],
            self.grid, self.col, self.row)
        return out


def block_mean(layer, grid, coarse_grid, *, min_coverage=0.5):
    """Mean of a layer over the cells of a coarser grid (the survey support).

    A fine pixel belongs to the coarse cell that holds its centre. The mean is
    over the valid (finite) pixels of each coarse cell; a coarse cell with fewer
    valid pixels than ``min_coverage`` times the number it can hold (cell area
    ratio) is NaN, so partly covered cells at the edges are not compared.

    Parameters
    ----------
    layer : array_like, shape grid.shape
    grid, coarse_grid : Grid
        In the same CRS; ``coarse_grid`` cells at least as large as ``grid``'s.
        The grids need not be aligned.
    min_coverage : float
        In (0, 1].

    Returns
    -------
    ndarray, shape coarse_grid.shape
    """
    layer = _as_layer(layer, grid)
    if not 0.0 < min_coverage <= 1.0:
        raise ValueError(f"min_coverage must be in (0, 1], got {min_coverage}")
    ratio = (coarse_grid.cell_x / grid.cell_x) * (coarse_grid.cell_y / grid.cell_y)
    if ratio < 1.0 - 1e-9:
        raise ValueError(
            f"the survey support ({coarse_grid.cell_x:g} x {coarse_grid.cell_y:g} map units) is "
            f"finer than the layer's pixels ({grid.cell_x:g} x {grid.cell_y:g}): nothing to "
            "average; give the survey's own (coarser) grid"
        )
    ccol = np.floor((grid.x_centers() - coarse_grid.x_min) / coarse_grid.cell_x).astype(np.int64)
    crow = np.floor((coarse_grid.y_max - grid.y_centers()) / coarse_grid.cell_y).astype(np.int64)
    col_ok = (ccol >= 0) & (ccol < coarse_grid.ncols)
    row_ok = (crow >= 0) & (crow < coarse_grid.nrows)
    index = crow[:, None] * coarse_grid.ncols + ccol[None, :]
    use = row_ok[:, None] & col_ok[None, :] & np.isfinite(layer)
    size = coarse_grid.nrows * coarse_grid.ncols
    sums = np.bincount(index[use], weights=layer[use], minlength=size)
    counts = np.bincount(index[use], minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(counts >= max(1.0, min_coverage * ratio) - 1e-9, sums / counts, np.nan)
    return mean.reshape(coarse_grid.shape)


def _occurrence_pixels(grid, x, y):
    """Row, column of the cells holding the points, and which points lie on the grid."""
    col = np.floor((np.asarray(x, dtype=np.float64) - grid.x_min) / grid.cell_x).astype(np.int64)
    row = np.floor((grid.y_max - np.asarray(y, dtype=np.float64)) / grid.cell_y).astype(np.int64)
    inside = (col >= 0) & (col < grid.ncols) & (row >= 0) & (row < grid.nrows)
    return row, col, inside


def success_rate(layer, grid, occ_x, occ_y):
    """Success-rate curve and its area for occurrences given by coordinates.

    Each occurrence counts at the cell that holds it (no interpolation);
    occurrences outside the grid are left out with a warning, and so are those
    on nodata cells (:func:`~.metrics.success_rate_curve`).

    Parameters
    ----------
    layer : array_like, shape grid.shape
        The ranking layer (e.g. the fused concentration).
    grid : Grid
    occ_x, occ_y : array_like, shape (n,)
        Occurrence coordinates in the grid's CRS.

    Returns
    -------
    area_fraction, captured : ndarray, shape (m,)
        Vertices of the curve from (0, 0) to (1, 1): the fraction of the valid
        area ranked highest and the fraction of the occurrences it holds.
    auc : float
        Area under the curve (:func:`~.metrics.success_rate_auc`): about 0.5
        for a layer unrelated to the occurrences, near 1 when they lie on the
        highest values.
    """
    layer = _as_layer(layer, grid)
    occ_x, occ_y = _as_points((occ_x, occ_y), "occurrences", with_values=False)
    row, col, inside = _occurrence_pixels(grid, occ_x, occ_y)
    if not inside.all():
        warnings.warn(f"{int((~inside).sum())} of {inside.size} occurrence(s) lie outside the "
                      "layer and are left out", UserWarning, stacklevel=2)
    if not inside.any():
        raise ValueError("no occurrence lies on the layer; check their CRS and extent")
    area, captured = metrics.success_rate_curve(layer, row[inside], col[inside])
    return area, captured, metrics.success_rate_auc(layer, row[inside], col[inside])


# ---------------------------------------------------------------------------
# evaluation of one layer
# ---------------------------------------------------------------------------
def evaluate_layer(layer, grid, *, reference_points=None, reference_raster=None,
                   input_points=None, input_geochem=None, occurrences=None,
                   percentiles=(90, 95), support=None):
    """Score one layer against everything available to compare with.

    Each group of metrics is computed only when its input is given, and then
    all of its keys are present (NaN, with a warning, when a metric cannot be
    computed, e.g. SSIM on a layer under 11 x 11 pixels or no point on a valid
    pixel). Keys and meanings: :data:`METRIC_NAMES`.

    Parameters
    ----------
    layer : array_like, shape (rows, cols)
        The layer to evaluate (data units), NaN = nodata.
    grid : Grid
        Its grid.
    reference_points : tuple (x, y, values), optional
        An independent (e.g. denser) survey in the layer's CRS. The layer is
        sampled **bilinearly** at the points (:func:`sample_layer`); keys
        ``n_points``, ``cc_points``, ``rmse_points``, ``bias_points``.
    reference_raster : tuple (array, Grid), optional
        A reference layer in the layer's CRS. When its grid differs from
        ``grid`` it is resampled onto ``grid`` by cubic convolution
        (:func:`~.resample.resample_cubic`, an interpolator: give a reference
        at least as fine as the layer). Keys ``n_pixels``, ``cc_raster``,
        ``rmse_raster``, ``bias_raster``, ``uiqi``, ``ssim``, ``scc`` and
        ``iou_p<P>`` for each percentile ``P`` (anomalies = the pixels above
        the P-th percentile of each layer, :func:`~.metrics.anomaly_iou`).
    input_points : tuple (x, y, values), optional
        The survey the layer was made from, for the **Wald consistency**
        property at the survey support: the layer's extent is tiled with
        square blocks of side ``support`` (default: the median
        nearest-neighbour spacing of the input points, rounded to whole
        pixels), aligned with the layer's top-left corner; in each block
        holding at least one input sample, the mean of the layer over the
        block (:func:`block_mean`, blocks less than half valid are skipped) is
        compared with the mean of the samples in it. Keys ``wald_support``,
        ``wald_n``, ``wald_cc``, ``wald_rmse``, ``wald_bias``.
    input_geochem : tuple (array, Grid), optional
        The input geochemistry as a coarse raster (e.g. the kriged layer): the
        layer is averaged over each of its cells (:func:`block_mean`) and
        compared with it (Wald et al. 1997). Same keys as ``input_points``
        (``wald_support`` = its cell width). Give one of ``input_points`` and
        ``input_geochem``.
    occurrences : tuple (x, y), optional
        Known occurrences: keys ``n_occurrences`` and ``auc`` of
        :func:`success_rate`.
    percentiles : sequence of float
        Anomaly thresholds for the IoU, in (0, 100).
    support : float, optional
        Block side (map units) for ``input_points``; default the median
        nearest-neighbour spacing of the input points.

    Returns
    -------
    dict of str -> float
    """
    layer = _as_layer(layer, grid)
    if all(v is None for v in (reference_points, reference_raster, input_points, input_geochem,
                               occurrences)):
        raise ValueError(
            "nothing to compare the layer with: give at least one of reference_points, "
            "reference_raster, input_points or input_geochem, occurrences"
        )
    if input_points is not None and input_geochem is not None:
        raise ValueError("give input_points or input_geochem for the consistency check, not both")
    percentiles = [float(p) for p in np.atleast_1d(percentiles)]
    for p in percentiles:
        if not 0.0 < p < 100.0:
            raise ValueError(f"percentiles must be in (0, 100), got {p}")
    if support is not None and not (np.isfinite(support) and support > 0):
        raise ValueError(f"support must be a positive block side in map units, got {support}")
    out = {}

    if reference_points is not None:
        rx, ry, rv = _as_points(reference_points, "reference_points", with_values=True)
        est = sample_layer(layer, grid, rx, ry)
        out["n_points"] = int(np.sum(np.isfinite(est)))
        out.update(_pair_metrics(est, rv, "", "points"))

    if reference_raster is not None:
        ref, ref_grid = reference_raster
        ref = _as_layer(ref, ref_grid)
        if not _same_grid(ref_grid, grid):
            ref = resample_cubic(ref, ref_grid, grid)
        ok = np.isfinite(layer) & np.isfinite(ref)
        out["n_pixels"] = int(ok.sum())
        out.update(_pair_metrics(layer, ref, "", "raster"))
        out["uiqi"] = _or_nan(metrics.uiqi, layer, ref, what="UIQI")
        out["ssim"] = _or_nan(metrics.ssim, layer, ref, what="SSIM")
        out["scc"] = _or_nan(metrics.scc, layer, ref, what="SCC")
        for p in percentiles:
            out[f"iou_p{p:g}"] = _or_nan(metrics.anomaly_iou, layer, ref, percentile=p,
                                         what=f"anomaly IoU at the {p:g}th percentile")

    if input_points is not None:
        ix, iy, iv = _as_points(input_points, "input_points", with_values=True)
        if support is None:
            if ix.size < 2:
                raise ValueError("the consistency check needs at least 2 input samples, or an "
                                 "explicit support")
            from scipy.spatial import cKDTree

            xy = np.column_stack([ix, iy])
            support = float(np.median(cKDTree(xy).query(xy, k=2)[0][:, 1]))
        factor = max(1, int(round(support / grid.cell_x)))
        blocks = Grid(grid.x_min, grid.y_max, factor * grid.cell_x, factor * grid.cell_y,
                      max(1, math.ceil(grid.ncols / factor)), max(1, math.ceil(grid.nrows / factor)))
        averaged = block_mean(layer, grid, blocks)
        r, c, inside = _occurrence_pixels(blocks, ix, iy)
        index = r[inside] * blocks.ncols + c[inside]
        counts = np.bincount(index, minlength=blocks.nrows * blocks.ncols)
        sums = np.bincount(index, weights=iv[inside], minlength=counts.size)
        with np.errstate(invalid="ignore", divide="ignore"):
            survey = np.where(counts > 0, sums / counts, np.nan).reshape(blocks.shape)
        out["wald_support"] = float(factor * grid.cell_x)
        out["wald_n"] = int(np.sum(np.isfinite(averaged) & np.isfinite(survey)))
        out.update(_pair_metrics(averaged, survey, "wald_", ""))

    if input_geochem is not None:
        coarse, coarse_grid = input_geochem
        coarse = _as_layer(coarse, coarse_grid)
        averaged = block_mean(layer, grid, coarse_grid)
        out["wald_support"] = float(coarse_grid.cell_x)
        out["wald_n"] = int(np.sum(np.isfinite(averaged) & np.isfinite(coarse)))
        out.update(_pair_metrics(averaged, coarse, "wald_", ""))

    if occurrences is not None:
        ox, oy = _as_points(occurrences, "occurrences", with_values=False)
        row, col, inside = _occurrence_pixels(grid, ox, oy)
        valid = np.zeros(ox.size, dtype=bool)
        valid[inside] = np.isfinite(layer[row[inside], col[inside]])
        out["n_occurrences"] = int(valid.sum())
        out["auc"] = float("nan")
        if valid.any():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # counted in n_occurrences
                out["auc"] = success_rate(layer, grid, ox[valid], oy[valid])[2]
        else:
            warnings.warn("no occurrence lies on a valid pixel of the layer: AUC is NaN",
                          UserWarning, stacklevel=2)
    return out


# ---------------------------------------------------------------------------
# spatial cross-validation of the whole chain
# ---------------------------------------------------------------------------
def _pixel_bands(read, image_grid, x, y):
    """Bands ``(n, bands)`` at the pixel nearest to each point (NaN outside the image)."""
    col, row = image_grid.to_pixel(x, y)
    c = np.floor(col + 0.5).astype(np.intp)
    r = np.floor(row + 0.5).astype(np.intp)
    inside = (c >= 0) & (c < image_grid.ncols) & (r >= 0) & (r < image_grid.nrows)
    bands = None
    for i in np.flatnonzero(inside):
        pixel = read(int(r[i]), int(c[i]), 1, 1)[:, 0, 0]
        if bands is None:
            bands = np.full((x.size, pixel.size), np.nan)
        bands[i] = pixel
    return bands


def _regression_kriging(x, y, z, read, image_grid, kgrid, log_transform, capture):
    """Linear regression on the bands at the sample pixels + ordinary kriging of the residuals."""
    from sklearn.linear_model import LinearRegression

    bands = _pixel_bands(read, image_grid, x, y)
    n_bands = 0 if bands is None else bands.shape[1]
    use = np.zeros(x.size, dtype=bool) if bands is None else np.isfinite(bands).all(axis=1)
    target = np.log10(z) if log_transform else z
    if use.sum() < n_bands + 3 or bands is None:
        raise ValueError(f"only {int(use.sum())} samples fall on valid image pixels: too few "
                         f"for a regression on {n_bands} bands")
    trend_model = LinearRegression().fit(bands[use], target[use])
    residual = target[use] - trend_model.predict(bands[use])
    kres = OrdinaryKrigingModel("auto").fit(x[use], y[use], residual).krige_grid(kgrid)
    for r in capture.needed:
        flat = read(int(r), 0, 1, image_grid.ncols).reshape(n_bands, -1)
        valid = np.isfinite(flat).all(axis=0)
        trend = np.full(flat.shape[1], np.nan)
        trend[valid] = trend_model.predict(flat[:, valid].T)
        layer = trend + resample_cubic(kres.estimate, kgrid,
                                       image_grid.window(int(r), 0, 1, image_grid.ncols))[0]
        capture.write(int(r), (np.power(10.0, layer) if log_transform else layer)[None])


def _predict_at(method, x, y, z, read, image_grid, xq, yq, *, log_transform, random_state,
                band_names):
    """``method``'s layer (image grid, data units) from these samples, at ``(xq, yq)``.

    The layer is made block by block (the fusions' scene functions) or row by row
    (kriging, regression kriging), and only the rows bilinear sampling needs are kept.
    """
    capture = _RowCapture(image_grid, xq, yq)
    if method in ("kriging alone", "regression kriging"):
        kgrid = kriging_grid(image_grid, median_nn_spacing(x, y))
        if method == "regression kriging":
            _regression_kriging(x, y, z, read, image_grid, kgrid, log_transform, capture)
            return capture.sample()  # median back-transform
        # kriged (and resampled) in the working space, back-transformed by 10 ** x like the
        # other methods: the scores in log10 then compare the estimates themselves
        estimate = OrdinaryKrigingModel("auto").fit(
            x, y, np.log10(z) if log_transform else z).krige_grid(kgrid).estimate
        for r in capture.needed:
            layer = resample_cubic(estimate, kgrid, image_grid.window(int(r), 0, 1,
                                                                      image_grid.ncols))
            capture.write(int(r), np.power(10.0, layer) if log_transform else layer)
        return capture.sample()
    # "default": the product's defaults (adaptive); "paper global", "coherent global": that
    # mode with the other defaults
    settings = FusionSettings(mode="adaptive" if method == "default" else method.split()[0],
                              log_transform=log_transform, band_names=band_names,
                              random_state=random_state)

    def write(_element, row0, block):
        capture.write(row0, block)

    fuse_scene(x, y, {"value": z}, read, image_grid, settings,
               Sinks(write, preview_size=None, krige_alone=False))
    return capture.sample()


def cross_validate_chain(x, y, values, image, image_grid, *, methods=None, block=None, n_folds=5,
                         log_transform=False, random_state=0, band_names=None, progress=None,
                         cancel=None):
    """Spatial block cross-validation of the whole chain, method by method.

    The samples are grouped in square blocks (:func:`~.adaptive.spatial_folds`)
    dealt to ``n_folds`` folds. For each fold, every method is refitted from
    the samples of the other folds only -- kriging, image features, units,
    regression and fusion all redone -- and the held-out samples are predicted
    from the resulting layer on the image grid by **bilinear** sampling
    (:func:`sample_layer`). So a user sees, in their own area, whether the
    image improves on kriging alone.

    Methods (:data:`METHODS`):

    - ``"kriging alone"``: ordinary kriging (``variogram="auto"``) on the
      kriging grid of :func:`~.vocabulary.kriging_grid` (a quarter of the sample
      spacing), brought to the image grid by cubic convolution -- the kriging
      of :func:`~.pipeline.fuse_samples` (with ``log_transform``: of log10,
      back-transformed by ``10 ** x``);
    - ``"regression kriging"``: linear regression (scikit-learn
      ``LinearRegression``) of the values on the image bands at the sample
      pixels, plus ordinary kriging of the residuals (Hengl et al. 2007);
      with ``log_transform`` in log10, back-transformed by ``10 ** x`` (the
      median);
    - ``"default"``: :func:`~.pipeline.fuse_samples` with its defaults (the
      adaptive mode, the product's default);
    - ``"paper global"``, ``"coherent global"``: :func:`~.pipeline.fuse_samples`
      with ``mode="paper"`` / ``"coherent"`` and its other defaults (global
      regression on all bands, automatic pyramid depth).

    Parameters
    ----------
    x, y : array_like, shape (n,)
        Sample coordinates in the image CRS (map units).
    values : array_like, shape (n,)
        Concentrations (data units); samples with NaN are left out.
    image : ndarray, shape (bands, rows, cols), or callable
        The image on ``image_grid`` (NaN = nodata), in memory or as a reader
        ``read(row0, col0, nrows, ncols) -> (bands, nrows, ncols)`` (a raster
        read block by block: every method works window by window and keeps only
        the rows the held-out samples need, so memory does not grow with the image).
    image_grid : Grid
    methods : sequence of str, optional
        Subset of :data:`METHODS` (default all, in that order).
    block : float, optional
        Block side (map units); default 5 median nearest-neighbour sample
        spacings, so held-out samples are not next to training samples.
    n_folds : int
        Number of folds (>= 2).
    log_transform : bool
        Passed to every method (log10 of the concentrations). The errors are
        then computed in log10 (the space every method fits in, and that of
        the adaptive mode's own cross-validation), so that the methods'
        different back-transforms (lognormal mean for kriging, ``10 ** x``
        for the fusions) and a few extreme values do not decide the
        comparison; without it, in data units.
    random_state : int
        Seeds the folds and the pixel subsamples of the fusion.
    band_names : list of str, optional
    progress, cancel : callables, optional
        See :mod:`~.progress`; polled before each method of each fold.

    Returns
    -------
    dict
        ``method -> {"rmse", "cc", "bias", "n", "predictions"}``: the errors
        of the predictions (estimate - value; log10 with ``log_transform``)
        over the ``n`` held-out samples it predicted, and ``predictions``
        ``(n_samples,)`` in data units (NaN where a sample was left out or not
        predicted). A fold whose refit fails (too few samples) is skipped with
        a warning.

    Notes
    -----
    Cost: each fold redoes the image work of each method (features, pyramid,
    adaptive model choice), so the run takes about ``n_folds`` times one
    fusion per method: about half a minute for the 300 x 200 pixel demo image and
    150 samples on a small machine, and minutes on a whole Sentinel-2 tile.
    """
    methods = list(METHODS if methods is None else methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"methods must be a non-empty subset of {METHODS}, got {methods}")
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    values = np.asarray(values, dtype=np.float64).ravel()
    if not (x.size == y.size == values.size):
        raise ValueError(f"x, y and values must have the same length, got {x.size}, {y.size}, "
                         f"{values.size}")
    if callable(image):
        read = image
    else:
        image = np.asarray(image, dtype=np.float64)
        if image.ndim != 3 or image.shape[1:] != image_grid.shape:
            raise ValueError(f"image of shape {image.shape} does not match its grid "
                             f"{image_grid.shape}")
        read = array_reader(image)
    if int(n_folds) != n_folds or n_folds < 2:
        raise ValueError(f"n_folds must be an integer >= 2, got {n_folds!r}")
    if block is not None and not (np.isfinite(block) and block > 0):
        raise ValueError(f"block must be a positive side in map units (or None), got {block}")
    ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(values)
    if log_transform and (values[ok] <= 0).any():
        raise ValueError(f"log_transform needs positive values, but {int((values[ok] <= 0).sum())} "
                         "are <= 0: replace below-detection codes or turn the log transform off")
    idx = np.flatnonzero(ok)
    if idx.size < 2 * n_folds:
        raise ValueError(f"{idx.size} samples with a value are too few for {n_folds}-fold "
                         "cross-validation")
    xs, ys, vs = x[idx], y[idx], values[idx]
    block = block or 5.0 * median_nn_spacing(xs, ys)
    folds = spatial_folds(xs, ys, block=block, n_folds=int(n_folds), random_state=random_state)
    fold_ids = np.unique(folds)
    logger.info("spatial cross-validation: %d samples, %d folds of %g map unit blocks, "
                "methods %s", idx.size, fold_ids.size, block, methods)
    predictions = {m: np.full(x.size, np.nan) for m in methods}
    total = fold_ids.size * len(methods)
    for k, f in enumerate(fold_ids):
        test, train = folds == f, folds != f
        for j, method in enumerate(methods):
            _step(progress, cancel, (k * len(methods) + j) / total,
                  f"fold {k + 1}/{fold_ids.size}: {method}")
            try:
                predicted = _predict_at(method, xs[train], ys[train], vs[train], read,
                                        image_grid, xs[test], ys[test],
                                        log_transform=log_transform,
                                        random_state=random_state, band_names=band_names)
            except ValueError as exc:
                warnings.warn(f"cross-validation fold {k + 1}: {method} could not be fitted "
                              f"({exc}); its {int(test.sum())} held-out samples are not scored",
                              UserWarning, stacklevel=2)
                continue
            predictions[method][idx[test]] = predicted
    _step(progress, cancel, 1.0, "cross-validation done")
    results = {}
    for method in methods:
        pred = predictions[method]
        scored = np.isfinite(pred) & ok
        if log_transform:
            scored &= pred > 0
        estimate, value = pred[scored], values[scored]
        if log_transform:
            estimate, value = np.log10(estimate), np.log10(value)
        row = {"rmse": float("nan"), "cc": float("nan"), "bias": float("nan"),
               "n": int(scored.sum()), "predictions": pred}
        if scored.sum() >= 2:
            row.update(rmse=metrics.rmse(estimate, value), cc=metrics.pearson_cc(estimate, value),
                       bias=metrics.bias(estimate, value))
        results[method] = row
    return results
