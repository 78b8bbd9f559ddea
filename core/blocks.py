"""Block I/O and scheduling: how the chains reach an image too large to hold.

A full Sentinel-2 tile is 10980 × 10980 pixels per band (482 MB as float32): it
is never held in memory. The chains reach the image only through a ``read``
callable and hand their results to ``write`` callables, so the core stays free
of GDAL and works the same on an in-memory array (:func:`array_reader`) and on
a raster file read block by block by the Processing algorithms:

- ``read(row0, col0, nrows, ncols) -> ndarray (bands, nrows, ncols)`` (float, NaN = nodata);
- ``write(element_index, row0, values)`` with ``values`` a full-width block ``(nrows, cols)``.

This module holds what every block-by-block step shares: the one block budget
(:data:`BLOCK_PIXELS`, :func:`block_rows_for`, :func:`row_blocks`), the seeded
pixel sample read from random windows (:func:`sample_pixels_from_windows`), the
thread pools (:func:`run_tasks` for a few long fits, :func:`ordered_map` for the
row blocks) and the decimated previews kept for reports (:class:`Previews`).

Threads: the numerics release the GIL and every block is computed alone, so the
results do not depend on the number of threads.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import math
import os
import time

import numpy as np

from .grid import Grid
from .progress import step
from .resample import resample_cubic

__all__ = [
    "BLOCK_PIXELS",
    "MAX_WORKERS",
    "POLL_SECONDS",
    "Previews",
    "array_reader",
    "block_rows_for",
    "ordered_map",
    "row_blocks",
    "run_tasks",
    "sample_pixels_from_windows",
    "single_threaded_blas",
]

BLOCK_PIXELS = 2 ** 21
"""Pixels per row block (about 2 M: a few hundred MB of float64 features at most).

The one block budget of the plugin: the scene chains, the in-memory
``transform``/``predict`` methods, the SSIM map and the Processing algorithms
that stream rasters all cut their row blocks with :func:`block_rows_for`."""
MIN_BLOCK_ROWS = 16
"""Fewest rows in a block (a very wide raster still gets blocks of several rows)."""
POLL_SECONDS = 0.5
"""How often progress is reported and cancel polled while long fits run in threads."""
MAX_WORKERS = 4
"""Row blocks computed at once (at most; one per CPU)."""


def block_rows_for(ncols, n_layers=1):
    """Rows per block so that a block holds about :data:`BLOCK_PIXELS` pixels.

    ``n_layers``: the layers a block carries at once; beyond 4 the rows shrink
    in proportion, so that the block's memory stays bounded.
    """
    return max(MIN_BLOCK_ROWS,
               BLOCK_PIXELS // max(1, int(ncols)) // max(1, int(n_layers) // 4))


def row_blocks(nrows, block_rows):
    """``(row0, n)`` windows of at most ``block_rows`` rows covering ``nrows`` rows, in order."""
    nrows, block_rows = int(nrows), max(1, int(block_rows))
    for row0 in range(0, nrows, block_rows):
        yield row0, min(block_rows, nrows - row0)


def array_reader(image):
    """A ``read`` callable over an in-memory ``(bands, rows, cols)`` array."""
    image = np.asarray(image)

    def read(row0, col0, nrows, ncols):
        return np.asarray(image[:, row0:row0 + nrows, col0:col0 + ncols], dtype=np.float64)

    return read


def sample_pixels_from_windows(read, shape, *, n_pixels, size=64, random_state=0):
    """Up to ``n_pixels`` valid pixels ``(bands, n)`` from random ``size`` × ``size`` windows.

    Windows are placed at seeded random positions; pixels with any NaN band
    are dropped; the collected pixels are subsampled (seeded) to ``n_pixels``.
    """
    rows, cols = shape
    rng = np.random.default_rng(random_state)
    size_r, size_c = min(size, rows), min(size, cols)
    n_windows = max(4, int(math.ceil(2 * n_pixels / (size_r * size_c))))
    n_windows = min(n_windows, max(1, (rows // size_r) * (cols // size_c)) * 4)
    chunks = []
    for _ in range(n_windows):
        r0 = int(rng.integers(0, rows - size_r + 1))
        c0 = int(rng.integers(0, cols - size_c + 1))
        block = read(r0, c0, size_r, size_c)
        flat = block.reshape(block.shape[0], -1)
        chunks.append(flat[:, np.isfinite(flat).all(axis=0)])
    pixels = np.concatenate(chunks, axis=1)
    if pixels.shape[1] == 0:
        raise ValueError(
            "the image has no valid pixels (every band is nodata where it was sampled): check the "
            "image's nodata value and extent"
        )
    if pixels.shape[1] > n_pixels:
        pixels = pixels[:, np.sort(rng.choice(pixels.shape[1], n_pixels, replace=False))]
    return pixels


def _blas_controller():
    """Threadpoolctl's view of the loaded BLAS libraries, made once, when this module is imported.

    Making it scans the process's libraries with ``dl_iterate_phdr``, which holds the
    dynamic loader's lock while calling back into Python: done in a worker thread while
    another thread imports an extension module (``dlopen`` with the GIL held) the two
    wait for each other forever. So it is made here, in the importing thread, and reused.
    """
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


_BLAS = _blas_controller()


def single_threaded_blas():
    """Limit BLAS to one thread (when threadpoolctl, a scikit-learn dependency, is available).

    Many tiny systems (kriging) or blocks computed in parallel threads: BLAS
    threads only add contention (seen: 0.2 s vs 12 s on a busy 2-core machine).
    """
    if _BLAS is None:
        return contextlib.nullcontext()
    return _BLAS.limit(limits=1, user_api="blas")


def run_tasks(tasks, progress, cancel, start, span, message, *, tau=10.0):
    """Run ``tasks`` ``{key: callable}`` in worker threads; return ``{key: result}``.

    The per-element fits have no progress or cancel hooks of their own and take
    tens of seconds with thousands of samples. While they run in threads (as many
    as there are CPUs: several elements share the cores), this thread reports
    progress every :data:`POLL_SECONDS` (creeping through the share of the task
    running, ``elapsed / (elapsed + tau)``) and polls ``cancel``: a cancel returns
    at once, and fits already running finish in the background and are discarded.
    """
    keys = list(tasks)
    workers = max(1, min(len(keys), os.cpu_count() or 1))
    pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="geochem-fit")
    results = {}
    try:
        with single_threaded_blas():
            futures = {pool.submit(tasks[k]): k for k in keys}
            pending = set(futures)
            step(progress, cancel, start, message)
            since = time.monotonic()
            while pending:
                done, pending = concurrent.futures.wait(
                    pending, timeout=POLL_SECONDS,
                    return_when=concurrent.futures.FIRST_COMPLETED)
                for future in done:
                    results[futures[future]] = future.result()
                if done:
                    since = time.monotonic()
                elapsed = time.monotonic() - since if pending else 0.0
                step(progress, cancel,
                     start + span * (len(results) + elapsed / (elapsed + tau)) / len(keys))
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return results


def ordered_map(compute, items, consume, *, workers=None):
    """``consume(k, compute(item_k))`` for every item in order, ``compute`` in worker threads.

    The blocks are independent and their numerics (numpy, scipy, BLAS, GDAL)
    release the GIL, so ``workers`` blocks (default: the CPUs, at most
    :data:`MAX_WORKERS`) are computed at once while this thread writes the
    previous ones (GDAL compresses them meanwhile). At most ``workers + 1``
    results are held. An exception in ``consume`` (a cancel) or ``compute`` stops
    the pass once the blocks being computed are done.
    """
    workers = workers or max(1, min(os.cpu_count() or 1, MAX_WORKERS))
    pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="geochem-block")
    queue = collections.deque()
    done = 0
    try:
        with single_threaded_blas() if workers > 1 else contextlib.nullcontext():
            for item in items:
                queue.append(pool.submit(compute, item))
                if len(queue) > workers:
                    consume(done, queue.popleft().result())
                    done += 1
            while queue:
                consume(done, queue.popleft().result())
                done += 1
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class Previews:
    """Decimated copies of full-resolution outputs, filled row block by row block, for reports.

    Every ``stride``-th pixel of every ``stride``-th row (the longest side becomes
    ``preview_size`` pixels): ``{"<element> fused", "features", "units"}``.
    """

    def __init__(self, image_grid, names, n_features, *, units=False, preview_size=600):
        rows, cols = image_grid.shape
        self.names = list(names)
        self.stride = max(1, int(math.ceil(max(rows, cols) / preview_size)))
        shape = (len(range(0, rows, self.stride)), len(range(0, cols, self.stride)))
        self.grid = Grid(image_grid.x_min, image_grid.y_max, image_grid.cell_x * self.stride,
                         image_grid.cell_y * self.stride, shape[1], shape[0])
        self.layers = {f"{name} fused": np.full(shape, np.nan) for name in self.names}
        self.layers["features"] = np.full((n_features, *shape), np.nan)
        if units:
            self.layers["units"] = np.full(shape, -1)

    def take(self, row0, fused, features, units=None, kmeans=None):
        """The preview pixels of a full-width row block (in a worker thread).

        ``fused``: one block per element; ``units``: the block's units, or None
        to predict them with ``kmeans`` on the preview pixels only.
        """
        first = row0 + (-row0) % self.stride
        n = len(range(first, row0 + features.shape[1], self.stride))
        sel = (slice(first - row0, None, self.stride), slice(None, None, self.stride))
        pieces = {f"{name} fused": block[sel] for name, block in zip(self.names, fused)}
        pieces["features"] = features[(slice(None), *sel)]
        if "units" in self.layers:
            pieces["units"] = (units[sel] if units is not None
                               else kmeans.predict(pieces["features"]))
        return slice(first // self.stride, first // self.stride + n), pieces

    def put(self, taken):
        """Store what :meth:`take` returned (in the thread that owns the previews)."""
        dst, pieces = taken
        for key, block in pieces.items():
            self.layers[key][..., dst, :] = block

    def add_kriged(self, krigings, kgrid):
        """The kriged layers (where computed), resampled to the preview grid."""
        for name in self.names:
            if krigings.get(name) is not None:
                self.layers[f"{name} kriged"] = resample_cubic(krigings[name].estimate, kgrid,
                                                               self.grid)
