"""Pixel handling shared by the fitted core steps (PCA, K-means, regression).

The fit steps of the method are estimated on a seeded random *sample* of
valid pixels and then applied block by block (``docs/method.md``, "Scale"), so a full
Sentinel-2 tile never becomes one ``(n_pixels, bands)`` float64 matrix.  This
module holds the small pieces they share:

- :func:`as_stack` validates a ``(bands, rows, cols)`` stack;
- :func:`valid_mask` marks the pixels where every band is finite;
- :func:`sample_indices` / :func:`sample_pixels` draw the seeded sample;
- :func:`band_scaling` computes the per-band centring and scaling.

Nodata is NaN inside core: a pixel is *valid* when all its bands are finite.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np

from .blocks import block_rows_for, row_blocks

__all__ = [
    "as_stack",
    "band_scaling",
    "map_pixels",
    "sample_indices",
    "sample_pixels",
    "valid_mask",
]

logger = logging.getLogger(__name__)



def as_stack(x, name="stack", *, dtype=np.float64) -> np.ndarray:
    """Validate a ``(bands, rows, cols)`` stack and return it as a float array.

    Parameters
    ----------
    x : array_like, shape (bands, rows, cols)
        Raster stack; NaN marks nodata.
    name : str
        Name used in error messages (e.g. ``"X"``).
    dtype : numpy dtype or None, keyword-only
        Output dtype (default float64).  ``None`` keeps a floating input as it
        is (a float32 tile is not doubled in memory) and converts any other
        dtype to float64.

    Returns
    -------
    numpy.ndarray, shape (bands, rows, cols)
        The input itself when no conversion is needed (callers must not write
        into it), otherwise a converted copy.

    Raises
    ------
    ValueError
        If the array is not 3-D or has an empty axis.
    """
    arr = np.asarray(x)
    if arr.ndim != 3:
        raise ValueError(
            f"{name}: expected a (bands, rows, cols) stack, got ndim={arr.ndim} "
            f"(shape {arr.shape}); wrap a single band as band[np.newaxis]"
        )
    if min(arr.shape) == 0:
        raise ValueError(f"{name}: the stack is empty, got shape {arr.shape}")
    if dtype is None:
        dtype = arr.dtype if np.issubdtype(arr.dtype, np.floating) else np.float64
    return arr.astype(dtype, copy=False)


def valid_mask(stack) -> np.ndarray:
    """Pixels where every band is finite.

    Parameters
    ----------
    stack : numpy.ndarray, shape (bands, rows, cols)

    Returns
    -------
    numpy.ndarray of bool, shape (rows, cols)
        Computed band by band, so no ``(bands, rows, cols)`` temporary is made.
    """
    mask = np.isfinite(stack[0])
    for band in stack[1:]:
        mask &= np.isfinite(band)
    return mask


def sample_indices(mask, sample_size, random_state=0):
    """Seeded random sample, without replacement, of the ``True`` pixels of a mask.

    Parameters
    ----------
    mask : array_like of bool, shape (rows, cols)
        Pixels that may be drawn.
    sample_size : int or None
        Maximum number of pixels; ``None`` or a value at least the number of
        ``True`` pixels returns all of them.
    random_state : int, numpy.random.Generator or None
        Seed of :func:`numpy.random.default_rng`; the same seed and mask give
        the same sample.

    Returns
    -------
    rows, cols : numpy.ndarray of int, shape (n,)
        Pixel indices in raster (row-major) order.

    Notes
    -----
    Memory stays proportional to ``sample_size`` plus one row: ranks among
    the valid pixels are drawn, then mapped to (row, col) through per-row
    counts, so no array of all valid-pixel indices is built.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"mask: expected a (rows, cols) array, got ndim={mask.ndim}")
    if sample_size is not None and sample_size < 1:
        raise ValueError(f"sample_size must be a positive integer or None, got {sample_size}")
    counts = mask.sum(axis=1)
    n_valid = int(counts.sum())
    if sample_size is None or n_valid <= sample_size:
        return np.nonzero(mask)
    rng = np.random.default_rng(random_state)
    ranks = np.sort(rng.choice(n_valid, size=int(sample_size), replace=False, shuffle=False))
    ends = np.cumsum(counts)
    rows = np.searchsorted(ends, ranks, side="right")
    cols = np.empty_like(ranks)
    # ranks are sorted, so each row's draws form one contiguous run
    present = np.unique(rows)
    bounds = np.searchsorted(rows, np.append(present, mask.shape[0]))
    for r, lo, hi in zip(present, bounds[:-1], bounds[1:]):
        cols[lo:hi] = np.flatnonzero(mask[r])[ranks[lo:hi] - (ends[r] - counts[r])]
    return rows, cols


def sample_pixels(stack, mask, sample_size, random_state=0) -> np.ndarray:
    """Seeded random sample of pixel vectors.

    Parameters
    ----------
    stack : numpy.ndarray, shape (bands, rows, cols)
    mask : array_like of bool, shape (rows, cols)
        Pixels that may be drawn, usually :func:`valid_mask` of ``stack``.
    sample_size : int or None
        Maximum number of pixels (without replacement); all masked pixels when
        there are fewer or when ``None``.
    random_state : int, numpy.random.Generator or None
        Seed, see :func:`sample_indices`.

    Returns
    -------
    numpy.ndarray of float64, shape (n, bands)
        One row per sampled pixel, in raster order.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != stack.shape[1:]:
        raise ValueError(
            f"mask shape {mask.shape} does not match the stack's (rows, cols) {stack.shape[1:]}"
        )
    rows, cols = sample_indices(mask, sample_size, random_state)
    return np.asarray(stack[:, rows, cols].T, dtype=np.float64)


def band_scaling(samples, *, standardize=True):
    """Per-band centre and scale of sampled pixel vectors.

    Parameters
    ----------
    samples : numpy.ndarray, shape (n, bands)
    standardize : bool, keyword-only
        ``True``: scale is each band's standard deviation (population, ddof=0,
        as :class:`sklearn.preprocessing.StandardScaler`).  ``False``: scale 1.

    Returns
    -------
    mean, scale : numpy.ndarray of float64, shape (bands,)
        Features are ``(x - mean) / scale``.  A constant band (max == min in
        the sample) gets scale 1 and a :class:`UserWarning` rather than a
        division by zero.
    """
    mean = samples.mean(axis=0)
    if not standardize:
        return mean, np.ones_like(mean)
    scale = samples.std(axis=0)
    constant = (samples.max(axis=0) == samples.min(axis=0)) | (scale == 0)
    if constant.any():
        warnings.warn(
            f"band(s) {np.flatnonzero(constant).tolist()} (0-based) are constant over the "
            "sampled pixels; they are left unscaled (scale 1) and carry no information",
            UserWarning,
            stacklevel=3,
        )
        scale = np.where(constant, 1.0, scale)
    return mean, scale


def map_pixels(stack, func, n_out, *, fill=np.nan, dtype=None):
    """Apply ``func`` to the valid pixels of ``stack``, row block by row block.

    ``func`` takes the ``(n, bands)`` matrix of pixels whose bands are all
    finite and returns ``(n, n_out)`` (or ``(n,)`` when ``n_out`` is None).
    Returns ``(n_out, rows, cols)`` (or ``(rows, cols)``) of ``dtype``
    (default: the stack's), ``fill`` where any band is not finite. Row blocks
    keep the temporary pixel matrices small on large stacks.
    """
    n_bands, rows, cols = stack.shape
    dtype = stack.dtype if dtype is None else dtype
    shape = (rows, cols) if n_out is None else (n_out, rows, cols)
    out = np.full(shape, fill, dtype=dtype)
    for row0, nrows in row_blocks(rows, block_rows_for(cols, n_bands)):
        block = slice(row0, row0 + nrows)
        pixels = stack[:, block].reshape(n_bands, -1).T
        ok = np.isfinite(pixels).all(axis=1)
        if n_out is None:
            values = np.full(pixels.shape[0], fill, dtype=dtype)
            values[ok] = func(pixels[ok])
            out[block] = values.reshape(-1, cols)
        else:
            values = np.full((pixels.shape[0], n_out), fill)
            values[ok] = func(pixels[ok])
            out[:, block] = values.T.reshape(n_out, -1, cols)
    return out
