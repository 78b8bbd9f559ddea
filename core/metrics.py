"""Accuracy, consistency and detail metrics for fused geochemical layers.

All functions are NaN-aware: they use the pixels (or points) that are finite
in *both* inputs and raise ``ValueError`` when fewer than two such pairs
remain.  In two-argument metrics ``a`` is the estimate (e.g. the fused layer)
and ``b`` the reference.  Nothing here needs scikit-image.

References
----------
Wang, Z., Bovik, A.C. (2002). A universal image quality index. IEEE Signal
    Processing Letters 9(3), 81-84.
Wang, Z., Bovik, A.C., Sheikh, H.R., Simoncelli, E.P. (2004). Image quality
    assessment: from error visibility to structural similarity. IEEE
    Transactions on Image Processing 13(4), 600-612.
Zhou, J., Civco, D.L., Silander, J.A. (1998). A wavelet transform method to
    merge Landsat TM and SPOT panchromatic data. International Journal of
    Remote Sensing 19(4), 743-757.
Wald, L., Ranchin, T., Mangolini, M. (1997). Fusion of satellite images of
    different spatial resolutions: assessing the quality of resulting images.
    Photogrammetric Engineering and Remote Sensing 63(6), 691-699.
"""

from __future__ import annotations

import logging
import warnings
from typing import Dict, Optional, Tuple

import numpy as np
from scipy import ndimage

from .blocks import BLOCK_PIXELS

logger = logging.getLogger(__name__)

__all__ = [
    "anomaly_iou",
    "bias",
    "block_average",
    "high_pass",
    "pearson_cc",
    "rmse",
    "scc",
    "ssim",
    "success_rate_auc",
    "success_rate_curve",
    "uiqi",
    "wald_consistency",
]

#: 3x3 Laplacian high-pass kernel of Zhou et al. (1998).
LAPLACIAN_3X3 = np.array([[-1.0, -1.0, -1.0], [-1.0, 8.0, -1.0], [-1.0, -1.0, -1.0]])

_SSIM_SIGMA = 1.5
_SSIM_TRUNCATE = 3.5  # window radius int(3.5 * 1.5 + 0.5) = 5 -> 11x11, as Wang et al. (2004)
_SSIM_RADIUS = int(_SSIM_TRUNCATE * _SSIM_SIGMA + 0.5)
_SSIM_BLOCK_PIXELS = BLOCK_PIXELS  # pixels of a row block of the SSIM map (the one budget)


def _pairs(a, b) -> Tuple[np.ndarray, np.ndarray]:
    """Flattened float64 values of ``a`` and ``b`` where both are finite."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"inputs must have the same shape, got {a.shape} and {b.shape}")
    ok = np.isfinite(a) & np.isfinite(b)
    n = int(ok.sum())
    if n < 2:
        raise ValueError(
            f"need at least 2 pixels finite in both inputs, got {n} (of {a.size}); "
            "check that the layers overlap and are not all nodata"
        )
    return a[ok], b[ok]


def _as_2d(x, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (rows, cols) layer, got ndim={x.ndim}")
    return x


def _corr(x: np.ndarray, y: np.ndarray) -> float:
    dx, dy = x - x.mean(), y - y.mean()
    sxx, syy = float(np.dot(dx, dx)), float(np.dot(dy, dy))
    if sxx == 0.0 or syy == 0.0:
        warnings.warn(
            "correlation is undefined for a constant layer; returning NaN", RuntimeWarning,
            stacklevel=3,
        )
        return float("nan")
    return float(np.clip(np.dot(dx, dy) / np.sqrt(sxx * syy), -1.0, 1.0))


def pearson_cc(a, b) -> float:
    """Pearson correlation coefficient of ``a`` and ``b`` (any equal shapes).

    NaN (with a ``RuntimeWarning``) when either input is constant.
    """
    return _corr(*_pairs(a, b))


def rmse(a, b) -> float:
    """Root mean square error of estimate ``a`` against reference ``b``."""
    x, y = _pairs(a, b)
    return float(np.sqrt(np.mean((x - y) ** 2)))


def bias(a, b) -> float:
    """Mean error ``mean(a - b)``: positive when the estimate ``a`` is too high."""
    x, y = _pairs(a, b)
    return float(np.mean(x - y))


def uiqi(a, b) -> float:
    """Universal image quality index of Wang & Bovik (2002), computed globally.

    ``Q = 4 s_ab m_a m_b / ((s_a^2 + s_b^2)(m_a^2 + m_b^2))`` over all valid
    pixels (one window covering the whole layer, not the 8x8 sliding window of
    the original paper).  Combines correlation, mean (luminance) and variance
    (contrast) agreement; 1 only when ``a == b``.  Identical constant inputs
    give 1; otherwise a zero denominator gives NaN with a warning.
    """
    x, y = _pairs(a, b)
    mx, my = x.mean(), y.mean()
    vx, vy = x.var(), y.var()
    cxy = np.mean((x - mx) * (y - my))
    den = (vx + vy) * (mx * mx + my * my)
    if den == 0.0:
        if np.array_equal(x, y):
            return 1.0
        warnings.warn("UIQI is undefined (zero mean and variance); returning NaN",
                      RuntimeWarning, stacklevel=2)
        return float("nan")
    return float(4.0 * cxy * mx * my / den)


def ssim(a, b, *, data_range: Optional[float] = None) -> float:
    """Mean structural similarity (Wang et al. 2004) of estimate ``a`` and reference ``b``.

    Local statistics use an 11x11 Gaussian window (sigma 1.5), constants
    ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2`` and population (co)variances, as in
    the authors' reference implementation.  Like that implementation, the
    mean is taken over window centres at least 5 pixels from the border
    (``skimage.metrics.structural_similarity(..., gaussian_weights=True,
    use_sample_covariance=False)`` gives the same number without NaNs).

    NaN-aware: local statistics are normalised convolutions over the pixels
    finite in both layers, and the mean is over those pixels.

    Parameters
    ----------
    a, b : array_like, shape (rows, cols)
        Both at least 11x11.
    data_range : float, optional
        Dynamic range ``L``.  None uses ``max(b) - min(b)`` over valid pixels
        (the reference's range, so the score does not depend on the estimate).

    Returns
    -------
    float
        In [-1, 1]; 1 for identical layers.
    """
    a, b = _as_2d(a, "a"), _as_2d(b, "b")
    x, y = _pairs(a, b)
    win = 2 * _SSIM_RADIUS + 1
    if min(a.shape) < win:
        raise ValueError(
            f"ssim needs layers of at least {win}x{win} pixels, got {a.shape}; use uiqi instead"
        )
    if data_range is None:
        data_range = float(y.max() - y.min())
        if data_range == 0.0:
            raise ValueError("the reference is constant; pass data_range explicitly")
    elif not data_range > 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    del x, y

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    r = _SSIM_RADIUS
    rows, cols = a.shape
    # row blocks with the filter's reach as context (exact: the Gaussian is separable and
    # its reach is r rows), so the dozen working arrays are the size of a block, not the layer
    step = max(1, _SSIM_BLOCK_PIXELS // cols)
    total, count = 0.0, 0
    for r0 in range(r, rows - r, step):
        r1 = min(r0 + step, rows - r)
        h0, h1 = max(r0 - r, 0), min(r1 + r, rows)
        smap, valid = _ssim_map(a[h0:h1], b[h0:h1], c1, c2)
        core = slice(r0 - h0, r1 - h0)
        inner = valid[core, r:cols - r]
        total += float(np.sum(smap[core, r:cols - r][inner]))
        count += int(inner.sum())
    if count == 0:
        raise ValueError("no valid pixel lies 5 or more pixels inside the border")
    return total / count


def _ssim_map(a, b, c1, c2):
    """SSIM map of a block: NaN-aware local statistics (normalized convolution).

    Only pixels ``_SSIM_RADIUS`` or more from the block's edges are used, so the
    border mode never reaches them: a block's map equals the whole layer's there.
    """
    valid = np.isfinite(a) & np.isfinite(b)
    w = valid.astype(np.float64)
    a0, b0 = np.where(valid, a, 0.0), np.where(valid, b, 0.0)

    def filt(img):
        return ndimage.gaussian_filter(img, _SSIM_SIGMA, truncate=_SSIM_TRUNCATE, mode="reflect")

    wsum = filt(w)
    with np.errstate(divide="ignore", invalid="ignore"):
        mu_a, mu_b = filt(a0) / wsum, filt(b0) / wsum
        var_a = filt(a0 * a0) / wsum - mu_a**2
        var_b = filt(b0 * b0) / wsum - mu_b**2
        cov = filt(a0 * b0) / wsum - mu_a * mu_b
        smap = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
            (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
        )
    return smap, valid


def high_pass(x) -> np.ndarray:
    """High-pass detail of a layer with the 3x3 Laplacian of Zhou et al. (1998).

    Parameters
    ----------
    x : array_like, shape (rows, cols)

    Returns
    -------
    ndarray, shape (rows, cols), float64
        Convolution with ``[[-1,-1,-1],[-1,8,-1],[-1,-1,-1]]`` (mirror
        boundary); NaN where any pixel of the 3x3 neighbourhood is NaN.
    """
    x = _as_2d(x, "x")
    bad = ~np.isfinite(x)
    out = ndimage.convolve(np.where(bad, 0.0, x), LAPLACIAN_3X3, mode="reflect")
    out[ndimage.maximum_filter(bad, size=3, mode="reflect")] = np.nan
    return out


def scc(a, b) -> float:
    """Spatial correlation coefficient (Zhou et al. 1998).

    Pearson correlation of the Laplacian high-pass details of ``a`` and ``b``:
    how well the fused layer's fine detail matches the reference's.
    """
    a, b = _as_2d(a, "a"), _as_2d(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"inputs must have the same shape, got {a.shape} and {b.shape}")
    return pearson_cc(high_pass(a), high_pass(b))


def block_average(x, factor: int) -> np.ndarray:
    """NaN-aware mean over non-overlapping ``factor x factor`` blocks.

    Blocks start at the top-left pixel, so coarse cell ``(i, j)`` covers fine
    rows ``i*factor .. (i+1)*factor - 1`` (the same origin as the fine grid).
    Rows/columns left over at the bottom/right (``rows % factor``,
    ``cols % factor``) are trimmed.  A block with no finite pixel is NaN.

    Parameters
    ----------
    x : array_like, shape (rows, cols)
    factor : int
        Block size in pixels, >= 1 and <= min(rows, cols).

    Returns
    -------
    ndarray, shape (rows // factor, cols // factor), float64
    """
    x = _as_2d(x, "x")
    if isinstance(factor, (bool, np.bool_)) or not isinstance(factor, (int, np.integer)):
        raise ValueError(f"factor must be an int, got {factor!r}")
    if factor < 1 or factor > min(x.shape):
        raise ValueError(f"factor must be in 1..{min(x.shape)} for shape {x.shape}, got {factor}")
    nr, nc = x.shape[0] // factor, x.shape[1] // factor
    blocks = x[: nr * factor, : nc * factor].reshape(nr, factor, nc, factor)
    ok = np.isfinite(blocks)
    count = ok.sum(axis=(1, 3))
    total = np.where(ok, blocks, 0.0).sum(axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def wald_consistency(fused, coarse, factor: int) -> Dict[str, float]:
    """Consistency property of Wald et al. (1997).

    Block-averages ``fused`` by ``factor`` (see :func:`block_average`) to the
    support of ``coarse`` and compares it with ``coarse``.

    Parameters
    ----------
    fused : array_like, shape (rows, cols)
    coarse : array_like, shape (rows // factor, cols // factor)
        The input coarse layer, on a grid aligned with ``fused``'s top-left corner.
    factor : int
        Ratio of the coarse to the fine cell size.

    Returns
    -------
    dict
        ``cc``, ``rmse``, ``bias`` of the block average (estimate) against
        ``coarse`` (reference).  A perfectly consistent fusion gives cc 1,
        rmse 0, bias 0 (cc is NaN if ``coarse`` is constant).
    """
    avg = block_average(fused, factor)
    coarse = _as_2d(coarse, "coarse")
    if avg.shape != coarse.shape:
        raise ValueError(
            f"fused {np.shape(fused)} block-averaged by {factor} gives {avg.shape}, but coarse "
            f"is {coarse.shape}; the fused grid must be the coarse grid refined {factor} times"
        )
    return {"cc": pearson_cc(avg, coarse), "rmse": rmse(avg, coarse), "bias": bias(avg, coarse)}


def _anomaly_mask(x: np.ndarray, percentile: float, threshold: Optional[str]) -> np.ndarray:
    if threshold is None or threshold == "percentile":
        t = np.percentile(x, percentile)
    else:  # "mean+2sd"
        t = x.mean() + 2.0 * x.std()
    return x > t


def anomaly_iou(a, b, *, percentile: float = 90.0, threshold: Optional[str] = None) -> float:
    """Intersection over union of the anomalous areas of two layers.

    A pixel is anomalous in a layer when its value is strictly above that
    layer's own threshold, computed over the pixels valid in both layers.

    Parameters
    ----------
    a, b : array_like, same shape
    percentile : float
        Threshold percentile in (0, 100) (default 90: the top 10 %).
    threshold : {None, "percentile", "mean+2sd"}
        ``"mean+2sd"`` uses mean + 2 standard deviations instead of the percentile.

    Returns
    -------
    float
        ``|A and B| / |A or B|`` in [0, 1]; NaN (with a warning) when neither
        layer has a pixel above its threshold.
    """
    if threshold not in (None, "percentile", "mean+2sd"):
        raise ValueError(f"threshold must be None, 'percentile' or 'mean+2sd', got {threshold!r}")
    if not 0.0 < percentile < 100.0:
        raise ValueError(f"percentile must be in (0, 100), got {percentile}")
    x, y = _pairs(a, b)
    ma = _anomaly_mask(x, percentile, threshold)
    mb = _anomaly_mask(y, percentile, threshold)
    union = int(np.sum(ma | mb))
    if union == 0:
        warnings.warn("no pixel is above the threshold in either layer; IoU is NaN",
                      RuntimeWarning, stacklevel=2)
        return float("nan")
    return float(np.sum(ma & mb) / union)


def success_rate_curve(layer, rows, cols) -> Tuple[np.ndarray, np.ndarray]:
    """Success-rate curve of a layer for known occurrences.

    Valid pixels are ranked from the highest value to the lowest; for each
    threshold ``t`` the curve gives the fraction of the valid area with value
    ``>= t`` and the fraction of occurrences on pixels with value ``>= t``.
    The curve is piecewise linear between those points, so a group of tied
    pixels is a straight segment: an occurrence in a tie is counted as found
    after half of the tied area (midrank), never all-first or all-last.
    Only the vertices at occurrence values are returned (the curve is straight
    in between), from (0, 0) to (1, 1).

    Parameters
    ----------
    layer : array_like, shape (rows, cols)
        The ranking layer (e.g. fused concentration); NaN is nodata.
    rows, cols : array_like of int, shape (n,)
        0-based pixel indices of the occurrences.  Several occurrences in one
        pixel count separately.  Occurrences on NaN pixels are dropped with a
        warning.

    Returns
    -------
    area_fraction, captured_fraction : ndarray, shape (m,)
        Non-decreasing vertices of the curve.
    """
    values, occ = _occurrence_values(layer, rows, cols)  # values ascending
    n_valid = values.size
    xs, ys = [0.0], [0.0]
    uniq, counts = np.unique(occ, return_counts=True)
    found = 0
    for v, c in zip(uniq[::-1], counts[::-1]):  # occurrence values, highest first
        n_greater = n_valid - np.searchsorted(values, v, side="right")
        n_geq = n_valid - np.searchsorted(values, v, side="left")
        xs += [n_greater / n_valid, n_geq / n_valid]
        ys += [found / occ.size, (found + c) / occ.size]
        found += c
    xs.append(1.0)
    ys.append(1.0)
    return np.asarray(xs), np.asarray(ys)


def _occurrence_values(layer, rows, cols):
    """Sorted valid values of ``layer`` and the values at the valid occurrences."""
    layer = _as_2d(layer, "layer")
    rows, cols = np.asarray(rows), np.asarray(cols)
    if rows.ndim != 1 or rows.shape != cols.shape or rows.size == 0:
        raise ValueError(
            f"rows and cols must be 1-D of equal non-zero length, got {rows.shape} and {cols.shape}"
        )
    for name, idx in (("rows", rows), ("cols", cols)):
        if not np.issubdtype(idx.dtype, np.integer) and not (
            np.issubdtype(idx.dtype, np.floating) and np.all(idx == np.round(idx))
        ):
            raise ValueError(f"{name} must hold integer pixel indices, got dtype {idx.dtype}")
    rows, cols = rows.astype(np.int64), cols.astype(np.int64)
    out = (rows < 0) | (rows >= layer.shape[0]) | (cols < 0) | (cols >= layer.shape[1])
    if out.any():
        raise ValueError(
            f"{int(out.sum())} occurrence(s) fall outside the layer of shape {layer.shape}; "
            "clip the occurrences to the layer extent first"
        )
    occ_vals = layer[rows, cols]
    ok = np.isfinite(occ_vals)
    if not ok.all():
        warnings.warn(
            f"{int((~ok).sum())} of {ok.size} occurrence(s) lie on nodata pixels and are ignored",
            UserWarning, stacklevel=3,
        )
    if not ok.any():
        raise ValueError("every occurrence lies on a nodata pixel")
    values = np.sort(layer[np.isfinite(layer)])
    return values, occ_vals[ok]


def success_rate_auc(layer, rows, cols) -> float:
    """Area under :func:`success_rate_curve`.

    Equals the probability that a random valid pixel has a lower value than a
    random occurrence (ties count one half) - the Mann-Whitney form of a ROC
    AUC, with the occurrence pixels included in the area.  About 0.5 for a
    layer unrelated to the occurrences.  Because each occurrence pixel is
    itself part of the area, the extremes are reached within the
    discretisation: occurrences on the ``k`` highest of ``N`` distinct values
    give ``1 - k / (2N)``, on the ``k`` lowest ``k / (2N)``.

    Parameters
    ----------
    layer, rows, cols
        As in :func:`success_rate_curve`.

    Returns
    -------
    float
        In (0, 1).
    """
    x, y = success_rate_curve(layer, rows, cols)
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0))
