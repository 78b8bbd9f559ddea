"""Gaussian and Laplacian pyramids with nodata-aware normalized convolution.

This is the frequency split of ``docs/method.md`` step 4: an image ``X`` is divided
into a low-frequency part ``X_L`` (Gaussian pyramid level ``k`` expanded back
to full size) and a high-frequency part ``X_H = X - X_L`` (the sum of the
Laplacian bands ``0 .. k-1``), so that ``X_L + X_H == X``.

Conventions
-----------
* Arrays are ``(rows, cols)`` or ``(bands, rows, cols)``; bands are processed
  independently.  Computation is in float64.  Nodata is NaN (any non-finite
  value is treated as nodata).
* REDUCE filters with the separable 5-tap binomial kernel ``[1, 4, 6, 4, 1] / 16``
  (Burt & Adelson's generating kernel with ``a = 0.375``) and keeps every second
  row and column, starting with the first one, so a level of ``n`` cells becomes
  ``ceil(n / 2)`` cells: odd sizes are fine.
* EXPAND inserts zeros between the coarse samples (to the exact shape of the
  finer level) and filters with the same kernel.
* Borders are whole-sample symmetric: ``scipy.ndimage`` mode ``'mirror'``
  (``d c b | a b c d``).  With it a zero-inserted row keeps its even/odd
  pattern across the border, so EXPAND needs no special border case.
* Nodata is handled by normalized convolution (Knutsson & Westin 1993): the
  filter is applied to ``data * weight`` and to ``weight`` and the two are
  divided, so NaN never bleeds into valid pixels and valid pixels next to
  nodata get a weighted mean of their valid neighbours.  REDUCE carries the
  filtered weight (the fraction of valid support) down the pyramid; a coarse
  cell with no valid support is NaN.  EXPAND weights the coarse cells by
  validity (1 or 0), so a coarse NaN cell is filled from its valid
  neighbours where any lie within the kernel.  Outputs are NaN wherever the
  input is.  Without nodata this is exactly the classic pyramid.

Windowed processing
-------------------
The low band at a pixel depends only on input pixels less than
``4 * (2**levels - 1)`` pixels away (REDUCE and EXPAND each reach
``2 * 2**j`` full-resolution pixels at level ``j``).  Rounded up to a
multiple of ``2**levels``, that is a halo of ``2**(levels + 2)`` pixels.
Decomposing a window read with this halo (clipped at the image edges) reproduces the whole-image
result in the window's interior to floating-point rounding, **provided the
read window's first row and column are multiples of** ``2**levels`` (so the
window's REDUCE sampling lattice coincides with the whole image's).  With
core windows on a ``2**levels``-aligned grid and this halo the requirement is
met automatically.

The halo grows with the depth (2048 rows of context at 8 levels).  For row
blocks of a large raster, :class:`BlockPyramid` needs none: it streams REDUCE
down to the coarsest level in a first pass and expands it back block by block
in a second, with the same result (what the toolbox and the block-by-block
fusion use).

References
----------
Burt, P. J. & Adelson, E. H. (1983). The Laplacian pyramid as a compact image
code. IEEE Transactions on Communications, 31(4), 532-540.

Knutsson, H. & Westin, C.-F. (1993). Normalized and differential convolution.
Proc. IEEE CVPR, 515-523.
"""

from __future__ import annotations

import logging
import math
import numbers

import numpy as np
from scipy import ndimage

__all__ = [
    "auto_levels",
    "decompose",
    "levels_problem",
    "max_levels",
    "resolve_levels",
]

logger = logging.getLogger(__name__)

#: Burt & Adelson generating kernel (a = 0.375): the binomial [1, 4, 6, 4, 1] / 16.
KERNEL = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0
#: scipy.ndimage border mode: whole-sample symmetric (d c b | a b c d).
BORDER_MODE = "mirror"
_AXES = (-2, -1)


# -- public helpers ------------------------------------------------------
def auto_levels(sample_spacing, pixel_size) -> int:
    """Default pyramid depth: the halvings from image pixel to sample support.

    ``max(1, round(log2(sample_spacing / pixel_size)))`` (``docs/method.md`` step 4).

    Parameters
    ----------
    sample_spacing : float
        Typical distance between geochemical samples (map units, e.g. m).
    pixel_size : float
        Image pixel size, same units.

    Returns
    -------
    int
        Number of pyramid levels, at least 1.

    Examples
    --------
    >>> auto_levels(2000, 10)
    8
    """
    for name, value in (("sample_spacing", sample_spacing), ("pixel_size", pixel_size)):
        if not (isinstance(value, numbers.Real) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number (map units), got {value!r}")
    return max(1, int(round(math.log2(sample_spacing / pixel_size))))


def max_levels(shape) -> int:
    """Deepest pyramid whose coarsest level still has >= 2 cells per dimension.

    Parameters
    ----------
    shape : tuple of int
        ``(rows, cols)`` or ``(bands, rows, cols)``; only the last two count.

    Returns
    -------
    int
        The largest ``k`` with ``ceil(n / 2**k) >= 2`` for both ``n = rows``
        and ``n = cols`` (0 for a grid with a single row or column).
    """
    if len(shape) < 2:
        raise ValueError(f"expected a (rows, cols) shape, got {tuple(shape)}")
    rows, cols = int(shape[-2]), int(shape[-1])
    k = 0
    while min(-(-rows // 2 ** (k + 1)), -(-cols // 2 ** (k + 1))) >= 2:
        k += 1
    return k


def resolve_levels(levels, sample_spacing, pixel_size, shape, notes=None) -> int:
    """The pyramid depth of a run: ``levels`` when given, else the automatic depth.

    The one home of the depth rule. ``levels > 0`` is checked against
    :func:`max_levels` (ValueError when too deep); ``levels == 0`` gives
    :func:`auto_levels` of ``sample_spacing`` and ``pixel_size``, capped by
    :func:`max_levels` of ``shape`` (the cap is told in ``notes`` when given).
    """
    if levels and levels > 0:
        return _check_levels(levels, shape)
    levels = auto_levels(sample_spacing, pixel_size)
    cap = max_levels(shape)
    if levels > cap:
        if notes is not None:
            notes.append(f"pyramid depth {levels} capped at {cap} by the image size")
        levels = cap
    return levels


# -- pyramids ------------------------------------------------------------
def levels_problem(levels, shape, name="the raster") -> str:
    """Why a raster of ``shape`` cannot take ``levels`` (a message naming ``name``), or "".

    The user-facing side of :func:`resolve_levels`: a raster too small for any
    pyramid, or an explicit depth beyond :func:`max_levels` (``levels`` 0 =
    automatic is always possible: it is capped).
    """
    rows, cols = int(shape[-2]), int(shape[-1])
    cap = max_levels(shape)
    if cap == 0:
        return (f"{name} is only {cols} x {rows} pixels: too small for a Laplacian pyramid (it "
                "needs at least 3 x 3 pixels, and many more to be useful). Use a larger image.")
    if levels <= cap:
        return ""
    return (f"{levels} pyramid levels are too many for the {cols} x {rows} pixels of {name} "
            f"(at most {cap}: the coarsest level keeps 2 x 2 cells); use fewer levels, or 0 for "
            "automatic.")


def decompose(x, levels):
    """Split an image into low and high frequency: ``x == low + high``.

    Parameters
    ----------
    x : array_like, shape (rows, cols) or (bands, rows, cols)
        Image or stack; NaN (any non-finite value) is nodata.
    levels : int
        Pyramid depth ``k``, ``0 <= k <= max_levels(x.shape)`` (see
        :func:`auto_levels` for the default of ``docs/method.md`` step 4).  ``0`` gives
        ``low = x`` and ``high = 0``.

    Returns
    -------
    low : ndarray
        Gaussian level ``k`` expanded back to full size (float64, shape of x).
    high : ndarray
        ``x - low`` (the sum of Laplacian bands ``0 .. k-1``).
        Both are NaN wherever ``x`` is not finite.

    Raises
    ------
    ValueError
        If ``x`` is not 2-D/3-D or ``levels`` exceeds :func:`max_levels`.

    Notes
    -----
    For row blocks of a large raster use :class:`BlockPyramid` (see the module
    notes).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(48.0).reshape(6, 8)
    >>> low, high = decompose(x, 1)
    >>> bool(np.allclose(low + high, x))
    True
    """
    x = _as_stack(x)
    levels = _check_levels(levels, x.shape)
    valid = np.isfinite(x)
    if not valid.all():
        x[~valid] = np.nan
    gauss = _gaussian(x, levels)
    low = gauss[-1]
    for finer in reversed(gauss[:-1]):
        low = _expand(low, finer.shape[-2:])
    if levels == 0:
        low = low.copy()
    low[~valid] = np.nan
    high = x - low
    return low, high


# -- internals -----------------------------------------------------------
def _as_stack(x) -> np.ndarray:
    """Float64 copy of a 2-D or 3-D array (never a view of the caller's data)."""
    arr = np.array(x, dtype=np.float64, copy=True)
    if arr.ndim not in (2, 3):
        raise ValueError(
            f"expected a (rows, cols) image or a (bands, rows, cols) stack, got ndim={arr.ndim} "
            f"with shape {arr.shape}"
        )
    return arr


def _check_levels_value(levels) -> int:
    if isinstance(levels, bool) or not isinstance(levels, numbers.Integral) or levels < 0:
        raise ValueError(f"levels must be an integer >= 0, got {levels!r}")
    return int(levels)


def _check_levels(levels, shape) -> int:
    levels = _check_levels_value(levels)
    deepest = max_levels(shape)
    if levels > deepest:
        raise ValueError(
            f"levels={levels} is too deep for an image of shape {tuple(shape)}: the maximum is "
            f"{deepest} (the coarsest level must keep at least 2x2 cells); use fewer levels "
            "or a larger image"
        )
    return levels


def _every_other(arr, axis):
    index = [slice(None)] * arr.ndim
    index[axis] = slice(None, None, 2)
    return arr[tuple(index)]


def _correlate(arr, axis):
    return ndimage.correlate1d(arr, KERNEL, axis=axis, mode=BORDER_MODE)


def _gaussian(x, levels):
    """Gaussian levels of a float64 array (NaN = nodata), carrying support weights."""
    valid = np.isfinite(x)
    weight = None if valid.all() else valid.astype(np.float64)
    out = [x]
    value = x
    for _ in range(levels):
        value, weight = _reduce(value, weight)
        out.append(value)
    return out


def _reduce(value, weight):
    """One REDUCE step; ``weight`` None means every cell is valid with weight 1."""
    if weight is None:
        for axis in _AXES:
            value = _every_other(_correlate(value, axis), axis)
        return value, None
    num = np.where(weight > 0, value * weight, 0.0)
    den = weight
    for axis in _AXES:
        num = _every_other(_correlate(num, axis), axis)
        den = _every_other(_correlate(den, axis), axis)
    return _divide(num, den), den


def _expand(value, shape):
    """One EXPAND step of ``value`` to the (rows, cols) ``shape`` of the finer level."""
    valid = np.isfinite(value)
    if valid.all():
        for axis, size in zip(_AXES, shape):
            value = _upsample(value, axis, size)
            ones = np.zeros(size)
            ones[::2] = 1.0
            norm = ndimage.correlate1d(ones, KERNEL, mode=BORDER_MODE)
            value = _correlate(value, axis) / (norm[:, None] if axis == -2 else norm)
        return value
    num = np.where(valid, value, 0.0)
    den = valid.astype(np.float64)
    for axis, size in zip(_AXES, shape):
        num = _correlate(_upsample(num, axis, size), axis)
        den = _correlate(_upsample(den, axis, size), axis)
    return _divide(num, den)


def _upsample(arr, axis, size):
    """Insert zeros between samples along ``axis`` to length ``size``."""
    out_shape = list(arr.shape)
    out_shape[axis] = size
    out = np.zeros(out_shape)
    index = [slice(None)] * arr.ndim
    index[axis] = slice(None, None, 2)
    out[tuple(index)] = arr
    return out


def _divide(num, den):
    """``num / den`` where ``den > 0``, NaN where there is no valid support."""
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


# -- row-block (streaming) decomposition ---------------------------------
def _mirror_index(index, n):
    """Whole-sample symmetric index into ``n`` samples (scipy ``'mirror'``), any depth."""
    index = np.asarray(index)
    if n == 1:
        return np.zeros_like(index)
    period = 2 * (n - 1)
    index = np.abs(index) % period
    return np.where(index > n - 1, period - index, index)


class _StreamingReduce:
    """One REDUCE step fed with consecutive row chunks of the finer level.

    It holds the few rows the 5-tap kernel still needs and emits each coarse
    row as soon as its five (mirrored) source rows have arrived, as the
    weighted sums ``num = Σ K·value·weight`` and ``den = Σ K·weight`` of
    :func:`_reduce` (normalized convolution, exactly as on the whole image).
    """

    def __init__(self, n_rows, n_layers, n_cols):
        self.n_rows = n_rows
        self.n_out = -(-n_rows // 2)
        self.num = np.empty((n_layers, 0, n_cols))
        self.den = np.empty((n_layers, 0, n_cols))
        self.start = 0  # global row of num[:, 0]
        self.received = 0
        self.emitted = 0

    def push(self, num, den):
        """Append rows (already ``value * weight`` and ``weight``); return the coarse rows ready."""
        self.num = np.concatenate([self.num, num], axis=1)
        self.den = np.concatenate([self.den, den], axis=1)
        self.received += num.shape[1]
        if self.received > self.n_rows:
            raise ValueError(f"got {self.received} rows for a level of {self.n_rows} rows")
        last = self.n_rows - 1
        ready = self.emitted
        while ready < self.n_out and min(2 * ready + 2, last) < self.received:
            ready += 1
        if ready == self.emitted:
            return None
        rows = np.arange(self.emitted, ready)
        local = _mirror_index(2 * rows[:, None] + np.arange(-2, 3), self.n_rows) - self.start
        num_out = sum(KERNEL[t] * self.num[:, local[:, t]] for t in range(5))
        den_out = sum(KERNEL[t] * self.den[:, local[:, t]] for t in range(5))
        num_out = _every_other(_correlate(num_out, -1), -1)
        den_out = _every_other(_correlate(den_out, -1), -1)
        self.emitted = ready
        keep = max(0, 2 * ready - 2) - self.start  # the next coarse row needs rows from 2i - 2
        if keep > 0:
            self.num, self.den = self.num[:, keep:], self.den[:, keep:]
            self.start += keep
        value = _divide(num_out, den_out)
        return np.where(den_out > 0, value * den_out, 0.0), den_out


class BlockPyramid:
    """:func:`decompose` of a raster too large for memory, row block by row block.

    Two passes over the rows, each from the top:

    1. :meth:`push` every row block in order. REDUCE is streamed level by
       level (each level keeps only the rows the 5-tap kernel still needs);
       what stays is the coarsest Gaussian level, ``2**levels`` times smaller
       per axis (a few kilobytes for a full Sentinel-2 tile at 8 levels).
    2. :meth:`decompose` any row block: EXPAND runs from the coarsest level
       over the rows of the block only (plus two rows of context per level).

    The result equals :func:`decompose` on the whole image to floating-point
    rounding, for any block sizes, with no halo reads: memory follows the
    block, not the image, and every pixel is filtered once per pass.

    Parameters
    ----------
    shape : tuple of int
        ``(rows, cols)`` of the whole raster.
    levels : int
        Pyramid depth, ``0 <= levels <= max_levels(shape)``.
    n_layers : int
        Layers decomposed together (blocks are ``(n_layers, rows, cols)``).
    """

    def __init__(self, shape, levels, n_layers=1):
        self.shape = (int(shape[-2]), int(shape[-1]))
        self.levels = _check_levels(levels, self.shape)
        self.n_layers = int(n_layers)
        self.sizes = [self.shape]
        for _ in range(self.levels):
            rows, cols = self.sizes[-1]
            self.sizes.append((-(-rows // 2), -(-cols // 2)))
        self._stages = [_StreamingReduce(rows, self.n_layers, cols)
                        for rows, cols in self.sizes[:-1]]
        self._top = []
        self.rows_pushed = 0
        self.top_ = None

    # -- pass 1 ---------------------------------------------------------------
    def push(self, block):
        """Feed the next row block ``(n_layers, rows, cols)`` (NaN = nodata), top to bottom."""
        block = self._check_block(block)
        if self.rows_pushed + block.shape[1] > self.shape[0]:
            raise ValueError(f"pushed {self.rows_pushed + block.shape[1]} rows into a "
                             f"{self.shape[0]}-row pyramid")
        self.rows_pushed += block.shape[1]
        if self.levels == 0:  # nothing to reduce: the low band is the block itself
            return
        valid = np.isfinite(block)
        num, den = np.where(valid, block, 0.0), valid.astype(np.float64)
        for stage in self._stages:
            out = stage.push(num, den)
            if out is None:
                return
            num, den = out
        self._top.append(_divide(num, den))
        if self.rows_pushed == self.shape[0]:
            self.top_ = np.concatenate(self._top, axis=1)
            self._top = []

    @property
    def complete(self):
        """True once every row has been pushed."""
        return self.rows_pushed == self.shape[0]

    # -- pass 2 ---------------------------------------------------------------
    def low_rows(self, row0, row1):
        """The low band ``(n_layers, row1 - row0, cols)`` of rows ``row0:row1``, not yet masked."""
        if not self.complete:
            raise ValueError(f"push all {self.shape[0]} rows before asking for the low band "
                             f"({self.rows_pushed} pushed)")
        if not 0 <= row0 < row1 <= self.shape[0]:
            raise ValueError(f"rows {row0}:{row1} are outside the raster's {self.shape[0]} rows")
        return self._expand_rows(0, row0, row1)

    def _expand_rows(self, level, row0, row1):
        if level == self.levels:
            return self.top_[:, row0:row1]
        n_rows, n_cols = self.sizes[level]
        # upsampled rows u0:u1 cover every row's 5-tap reach, or stop at a true border
        u0 = max(0, row0 - 2 - (row0 % 2))
        u1 = min(n_rows, row1 + 2)
        coarse = self._expand_rows(level + 1, u0 // 2, -(-u1 // 2))
        valid = np.isfinite(coarse)
        upsampled = np.zeros((self.n_layers, u1 - u0, coarse.shape[2]))
        upsampled[:, ::2] = np.where(valid, coarse, 0.0)
        num = _correlate(upsampled, -2)[:, row0 - u0:row1 - u0]
        num = _correlate(_upsample(num, -1, n_cols), -1)
        if valid.all():  # separable norm, as in _expand
            rows = np.zeros(u1 - u0)
            rows[::2] = 1.0
            cols = np.zeros(n_cols)
            cols[::2] = 1.0
            norm_rows = ndimage.correlate1d(rows, KERNEL, mode=BORDER_MODE)[row0 - u0:row1 - u0]
            norm_cols = ndimage.correlate1d(cols, KERNEL, mode=BORDER_MODE)
            return num / norm_rows[:, None] / norm_cols
        upsampled[:, ::2] = valid
        den = _correlate(upsampled, -2)[:, row0 - u0:row1 - u0]
        den = _correlate(_upsample(den, -1, n_cols), -1)
        return _divide(num, den)

    def decompose(self, block, row0):
        """``(low, high)`` of the row block ``(n_layers, rows, cols)`` starting at ``row0``.

        Same as :func:`decompose` on the whole raster, restricted to the block:
        both NaN wherever the block is not finite, ``block == low + high``.
        """
        block = self._check_block(block)
        valid = np.isfinite(block)
        if self.levels == 0:
            low = np.where(valid, block, np.nan)
        else:
            low = self.low_rows(row0, row0 + block.shape[1])  # a new array (levels >= 1)
            low[~valid] = np.nan
        return low, block - low

    def _check_block(self, block):
        block = np.asarray(block, dtype=np.float64)
        if block.ndim == 2 and self.n_layers == 1:
            block = block[None]
        if block.ndim != 3 or block.shape[0] != self.n_layers or block.shape[2] != self.shape[1]:
            raise ValueError(
                f"expected a ({self.n_layers}, rows, {self.shape[1]}) row block, got "
                f"{block.shape}"
            )
        return block
