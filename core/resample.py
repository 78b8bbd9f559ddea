"""Cubic convolution resampling between north-up grids (Keys 1981, ``a = -0.5``).

Used in ``docs/method.md`` step 2 to bring the coarse kriged layer onto the image grid.
The interpolation is separable: first along x (columns) for every source
row, then along y (rows).  Each output value is a weighted sum of the 4 x 4
source cells around the destination cell centre, with the weights of the Keys
kernel.  With ``a = -0.5`` the scheme reproduces polynomials up to degree 2
exactly and its error for smooth data is ``O(h**3)`` (``h`` the source cell
size).

It is an interpolator, not an area average: when the destination cells are
larger than the source cells it samples the source at the destination centres
without low-pass filtering (block-average or low-pass first if that matters).

References
----------
Keys, R. G. (1981). Cubic convolution interpolation for digital image
processing. IEEE Transactions on Acoustics, Speech, and Signal Processing,
29(6), 1153-1160.
"""

from __future__ import annotations

import logging

import numpy as np

from .grid import Grid

__all__ = ["keys_kernel", "resample_cubic"]

logger = logging.getLogger(__name__)

# Positions within this distance of an integer are snapped to it, so equal or
# aligned grids copy samples exactly despite rounding in the coordinates.
_SNAP = 1e-9
# Destination rows processed at once in the second pass (bounds temporaries).
_BLOCK_ELEMENTS = 2_000_000


def keys_kernel(t, a=-0.5) -> np.ndarray:
    """The Keys cubic convolution kernel ``W(t)``.

    ``W(t) = (a+2)|t|^3 - (a+3)|t|^2 + 1`` for ``|t| <= 1``,
    ``a|t|^3 - 5a|t|^2 + 8a|t| - 4a`` for ``1 < |t| < 2`` and 0 beyond.

    Parameters
    ----------
    t : array_like
        Distance from the sample, in source cells.
    a : float, default -0.5
        Kernel parameter; ``-0.5`` gives third-order accuracy (Keys 1981).

    Returns
    -------
    ndarray
        Kernel values, float64, shape of ``t``.

    Examples
    --------
    >>> keys_kernel([0.0, 0.5, 1.0, 1.5]).tolist()
    [1.0, 0.5625, 0.0, -0.0625]
    """
    t = np.abs(np.asarray(t, dtype=np.float64))
    t2, t3 = t * t, t * t * t
    near = (a + 2.0) * t3 - (a + 3.0) * t2 + 1.0
    far = a * t3 - 5.0 * a * t2 + 8.0 * a * t - 4.0 * a
    return np.where(t <= 1.0, near, np.where(t < 2.0, far, 0.0))


def resample_cubic(src, src_grid: Grid, dst_grid: Grid, *, a=-0.5) -> np.ndarray:
    """Resample a raster to another north-up grid by cubic convolution.

    Parameters
    ----------
    src : array_like, shape (rows, cols) or (bands, rows, cols)
        Source values on ``src_grid``; NaN is nodata.
    src_grid, dst_grid : Grid
        Source and destination geometry in the same CRS.  Any cell sizes
        (integer or not) and offsets.
    a : float, default -0.5
        Keys kernel parameter.

    Returns
    -------
    ndarray, shape dst_grid.shape or (bands,) + dst_grid.shape
        Float64 values at the destination cell centres.

    Notes
    -----
    * Source positions are ``src_grid.to_pixel`` of the destination centres.
    * Borders: taps beyond the outermost source centres repeat the edge
      sample (replicate), for centres inside the source's outer extent.
      Destination cells whose centre lies outside that extent are NaN.
    * Nodata: in each 1-D pass, NaN samples get weight 0 and the remaining
      Keys weights are renormalized to sum to 1.  If the sample nearest to
      the position is NaN the result is NaN.  (The nearest weight is at least
      ``W(0.5)`` = 0.5625 and the two outer weights together exceed -0.15 for
      ``a = -0.5``, so the renormalizing sum is always well above 0.)  Hence a
      NaN source cell only blanks the destination cells for which it is the
      nearest source cell.
    * Memory: the first pass makes a ``(bands, src_rows_used, dst_cols)``
      array, the second works in blocks of destination rows, so peak memory
      is about the output plus that intermediate.
    """
    if not isinstance(src_grid, Grid) or not isinstance(dst_grid, Grid):
        raise ValueError(
            "src_grid and dst_grid must be core.grid.Grid instances, got "
            f"{type(src_grid).__name__} and {type(dst_grid).__name__}"
        )
    arr = np.asarray(src, dtype=np.float64)
    if arr.ndim not in (2, 3):
        raise ValueError(
            f"expected a (rows, cols) image or a (bands, rows, cols) stack, got ndim={arr.ndim}"
        )
    if arr.shape[-2:] != src_grid.shape:
        raise ValueError(
            f"source array has {arr.shape[-2:]} (rows, cols) but src_grid describes "
            f"{src_grid.shape}; pass the grid of this array"
        )
    if not np.isfinite(a):
        raise ValueError(f"a must be a finite number, got {a!r}")

    col_pos, _ = src_grid.to_pixel(dst_grid.x_centers(), src_grid.y_max)
    _, row_pos = src_grid.to_pixel(src_grid.x_min, dst_grid.y_centers())
    col_idx, col_w, col_near, col_out = _taps(col_pos, src_grid.ncols, a)
    row_idx, row_w, row_near, row_out = _taps(row_pos, src_grid.nrows, a)

    # Only the source rows that some destination row uses go through pass 1.
    r0, r1 = int(row_idx.min()), int(row_idx.max()) + 1
    part = arr[..., r0:r1, :]
    tmp = _weighted_sum(part, col_idx, col_w, col_near, axis=-1, has_nan=np.isnan(part).any())
    row_idx = row_idx - r0
    tmp_has_nan = bool(np.isnan(tmp).any())

    out = np.empty(arr.shape[:-2] + dst_grid.shape)
    per_row = max(1, int(np.prod(out.shape[:-2])) * dst_grid.ncols)
    step = max(1, _BLOCK_ELEMENTS // per_row)
    for start in range(0, dst_grid.nrows, step):
        rows = slice(start, start + step)
        out[..., rows, :] = _weighted_sum(
            tmp, row_idx[rows], row_w[rows], row_near[rows], axis=-2, has_nan=tmp_has_nan
        )
    out[..., :, col_out] = np.nan
    out[..., row_out, :] = np.nan
    return out


def _taps(pos, n, a):
    """Indices ``(m, 4)``, Keys weights ``(m, 4)``, nearest-tap column and outside mask."""
    pos = np.asarray(pos, dtype=np.float64)
    nearest_int = np.round(pos)
    pos = np.where(np.abs(pos - nearest_int) < _SNAP, nearest_int, pos)
    outside = (pos < -0.5 - _SNAP) | (pos > n - 0.5 + _SNAP)
    base = np.floor(pos)
    frac = pos - base
    offsets = np.arange(-1, 3)
    idx = np.clip(base[:, None].astype(np.int64) + offsets, 0, n - 1)
    weights = keys_kernel(frac[:, None] - offsets, a)
    nearest = np.where(frac <= 0.5, 1, 2)
    return idx, weights, nearest, outside


def _weighted_sum(data, idx, weights, nearest, axis, has_nan):
    """Sum of the 4 gathered samples along ``axis`` with NaN-aware renormalization."""
    shape = [1] * data.ndim
    shape[axis] = len(idx)

    def gathered(k):
        return np.take(data, idx[:, k], axis=axis), weights[:, k].reshape(shape)

    if not has_nan:
        out = 0.0
        for k in range(4):
            values, w = gathered(k)
            out = out + w * values
        return out
    num = 0.0
    den = 0.0
    dropped = False
    for k in range(4):
        values, w = gathered(k)
        bad = np.isnan(values)
        num = num + np.where(bad, 0.0, w * values)
        den = den + np.where(bad, 0.0, w)
        dropped = dropped | bad
    # Renormalize only where a tap was dropped, so NaN-free neighbourhoods get
    # bit-for-bit the same result as the NaN-free path.
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(dropped, num / den, num)
    near_values = np.take(data, idx[np.arange(len(idx)), nearest], axis=axis)
    out[np.isnan(near_values)] = np.nan
    return out
