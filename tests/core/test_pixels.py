"""Tests of the shared pixel helpers (stack validation, valid mask, seeded sampling)."""

import numpy as np
import pytest

from geochem_fusion.core._pixels import (
    as_stack,
    band_scaling,
    sample_indices,
    sample_pixels,
    valid_mask,
)
from geochem_fusion.core.blocks import BLOCK_PIXELS, block_rows_for, row_blocks


def test_as_stack_rejects_wrong_ndim_with_clear_message():
    with pytest.raises(ValueError, match=r"expected a \(bands, rows, cols\) stack, got ndim=2"):
        as_stack(np.zeros((4, 5)))


def test_as_stack_dtypes_and_no_copy():
    ints = np.arange(24).reshape(2, 3, 4)
    assert as_stack(ints).dtype == np.float64
    f32 = np.zeros((2, 3, 4), dtype=np.float32)
    assert as_stack(f32).dtype == np.float64
    assert as_stack(f32, dtype=None) is f32  # kept as is: no float64 copy of a tile
    assert as_stack(ints, dtype=None).dtype == np.float64


def test_valid_mask_requires_all_bands_finite():
    stack = np.ones((3, 4, 5))
    stack[0, 1, 1] = np.nan
    stack[2, 3, 4] = np.inf
    mask = valid_mask(stack)
    assert mask.shape == (4, 5)
    assert not mask[1, 1] and not mask[3, 4]
    assert mask.sum() == 18


def test_sample_is_valid_distinct_seeded_and_bounded():
    rng = np.random.default_rng(1)
    mask = rng.random((60, 70)) > 0.3
    rows, cols = sample_indices(mask, 500, 7)
    assert len(rows) == 500
    assert mask[rows, cols].all()  # only valid pixels
    flat = rows * 70 + cols
    assert len(np.unique(flat)) == 500  # without replacement
    assert np.all(np.diff(flat) > 0)  # raster order
    again = sample_indices(mask, 500, 7)
    assert np.array_equal(rows, again[0]) and np.array_equal(cols, again[1])
    other = sample_indices(mask, 500, 8)
    assert not np.array_equal(flat, other[0] * 70 + other[1])


def test_sample_covers_the_whole_image():
    # ranks are mapped to rows through per-row counts: every row must be reachable
    mask = np.ones((200, 50), dtype=bool)
    rows, _ = sample_indices(mask, 5000, 0)
    assert rows.min() == 0 and rows.max() == 199
    # each row holds 25 draws on average; a uniform sample puts 5000 * 0.5 in each half
    assert abs((rows < 100).sum() - 2500) < 4 * np.sqrt(5000 * 0.25)


def test_sample_returns_all_when_fewer_valid_pixels():
    stack = np.arange(2 * 3 * 4, dtype=float).reshape(2, 3, 4)
    stack[1, 0, :] = np.nan
    samples = sample_pixels(stack, valid_mask(stack), 1000, 0)
    assert samples.shape == (8, 2)
    assert np.array_equal(samples[:, 0], stack[0, 1:].ravel())


def test_sample_size_must_be_positive():
    with pytest.raises(ValueError, match="sample_size"):
        sample_indices(np.ones((3, 3), bool), 0, 0)


def test_row_blocks_cover_rows_once():
    blocks = list(row_blocks(10, 2))
    assert [n for _, n in blocks] == [2, 2, 2, 2, 2]
    assert [r for r, _ in blocks] == [0, 2, 4, 6, 8]
    assert list(row_blocks(10, 0))[0] == (0, 1)  # at least one row
    assert list(row_blocks(7, 3)) == [(0, 3), (3, 3), (6, 1)]


def test_one_block_budget():
    # about BLOCK_PIXELS pixels per block, fewer rows for many layers, never under 16 rows
    assert block_rows_for(1000) == BLOCK_PIXELS // 1000
    assert block_rows_for(1000, 8) == BLOCK_PIXELS // 1000 // 2
    assert block_rows_for(10 ** 7) == 16


def test_band_scaling_constant_band_gets_scale_one():
    samples = np.column_stack([np.arange(10.0), np.full(10, 0.3)])
    with pytest.warns(UserWarning, match="constant"):
        mean, scale = band_scaling(samples)
    assert scale[1] == 1.0 and np.isclose(scale[0], np.arange(10.0).std())
    mean, scale = band_scaling(samples, standardize=False)
    assert np.array_equal(scale, [1.0, 1.0])
