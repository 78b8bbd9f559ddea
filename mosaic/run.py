"""The distributed run: fit once on the client, then one Dask task per output tile.

Stages (each with a progress line or bar):

1. **tiles** — every input tile checked (:func:`.tiles.check_tiles`); bad ones are
   reported by name and left out; the good ones become one VRT mosaic.
2. **image model** — on the client: the feature transform (and K-means units)
   fitted on a seeded pixel sample of the mosaic, and the features read in
   small windows around the samples (:func:`.model.fit_image_part`).
3. **fit** — one Dask task per element: the adaptive trend, its window and
   shrinkage chosen by cross-validation, and the residual kriged on the coarse
   grid (:func:`.model.fit_element`). The fitted model (a few MB) is kept in the
   output folder (``model.pkl``) for resuming and scattered to every worker.
4. **tiles** — one Dask task per output tile (or per row piece of a tile with
   ``rows_per_task``): read the window with its halo from the mosaic, predict,
   add the interpolated residual, write a Cloud-Optimized GeoTIFF under a
   temporary name, rename it (:func:`fuse_tile`). Dask schedules, moves the
   model and retries a task whose worker died.
5. **mosaic** — ``fused.vrt`` over every finished tile; ``run.json`` records
   the run (settings, fits, tiles done, skipped, failed).

Resume: a rerun with the same inputs and settings (same fingerprint) loads
the model and skips every tile whose final file carries that fingerprint.
"""

from __future__ import annotations

import glob
import hashlib
import json
import math
import os
import pickle
import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from ..core.blocks import block_rows_for
from ..core.grid import Grid
from ..core.samples import check_overlap, check_sample_table, median_nn_spacing
from . import model as _model
from . import tiles as _tiles
from .samples import read_points

MOSAIC_NAME = "input_mosaic.vrt"
OUTPUT_NAME = "fused.vrt"
MODEL_NAME = "model.pkl"
SUMMARY_NAME = "run.json"
RETRIES = 2
"""Extra attempts of a task that raised (a worker that died is handled by Dask's own rule:
its tasks go to the other workers, up to ``distributed.scheduler.allowed-failures``)."""


@dataclass
class Piece:
    """One output tile: a window of the mosaic and its file."""

    tile: str
    source: str
    window: tuple
    path: str


@dataclass
class RunResult:
    """What a run did (also written to ``run.json``)."""

    output: str = None
    elements: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    done: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    failed: list = field(default_factory=list)
    bad_tiles: list = field(default_factory=list)
    dashboard: str = None
    fingerprint: str = None
    seconds: dict = field(default_factory=dict)


def _say(log, message):
    if log is not None:
        log(message)


def fingerprint(settings, x, y, values, tiles, rows_per_task):
    """A hash of everything the output depends on (resume only trusts files that carry it)."""
    h = hashlib.sha256()
    h.update(json.dumps(asdict(settings), sort_keys=True, default=str).encode())
    for arr in (x, y, *[values[k] for k in sorted(values)]):
        h.update(np.ascontiguousarray(arr, dtype=np.float64).tobytes())
    h.update(json.dumps(sorted(values)).encode())
    for t in tiles:
        st = os.stat(t.path)
        h.update(f"{os.path.abspath(t.path)}|{st.st_size}|{st.st_mtime_ns}".encode())
    h.update(str(rows_per_task).encode())
    return h.hexdigest()[:16]


def plan_pieces(tiles, mosaic_grid, out_dir, rows_per_task=0):
    """The output tiles: one per input tile, or row pieces of at most ``rows_per_task`` rows."""
    pieces = []
    for t in tiles:
        r0, c0, nr, nc = _tiles.tile_window(mosaic_grid, t.grid)
        step = rows_per_task if rows_per_task and rows_per_task < nr else nr
        for a in range(r0, r0 + nr, step):
            n = min(step, r0 + nr - a)
            suffix = f"_r{a - r0:06d}" if step < nr else ""
            pieces.append(Piece(t.name, t.path, (a, c0, n, nc),
                                os.path.join(out_dir, f"fused_{t.name}{suffix}.tif")))
    return pieces


def fuse_tile(model, mosaic_path, window, path, descriptions, metadata):
    """One task: the fused window of the mosaic written as a COG at ``path``; returns seconds.

    The window is computed row block by row block (bounded memory), each block
    with the model's halo of context (:func:`.model.predict_window`).
    """
    t0 = time.perf_counter()
    read = _tiles.WindowReader(mosaic_path)
    row0, col0, nrows, ncols = window
    grid = read.grid
    writer = _tiles.TileWriter(path, grid.window(row0, col0, nrows, ncols), read.crs_wkt,
                               len(model.names), descriptions=descriptions, metadata=metadata)
    try:
        rows = block_rows_for(ncols, 2 * len(read.nodata))
        for r in range(row0, row0 + nrows, rows):
            n = min(rows, row0 + nrows - r)
            fused = _model.predict_window(model, read, r, col0, n, ncols)
            for i in range(fused.shape[0]):
                writer.write(i, r - row0, fused[i])
        writer.finish()
    except BaseException:
        writer.discard()
        raise
    finally:
        read.close()
    return time.perf_counter() - t0


def open_client(scheduler="local", n_workers=None, log=print):
    """A Dask client: a new ``LocalCluster`` sized to the machine, or an existing scheduler."""
    from distributed import Client, LocalCluster

    if scheduler in (None, "", "local"):
        workers = n_workers or max(1, os.cpu_count() or 1)
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=":0")
        client = Client(cluster)
        _say(log, f"Dask LocalCluster: {workers} worker processes, 1 thread each")
    else:
        client = Client(scheduler, timeout="30s")
        n = len(client.scheduler_info().get("workers", {}))
        _say(log, f"Dask scheduler {scheduler}: {n} workers connected")
    return client


def dashboard_line(client):
    """The dashboard address, or why there is none."""
    link = None
    try:
        link = client.dashboard_link
    except Exception:  # noqa: BLE001 (any failure only means no link)
        link = None
    import importlib.util

    if importlib.util.find_spec("bokeh") is None and client.cluster is not None:
        return ("Dask dashboard: not served (it needs the bokeh package: "
                ".venv/bin/pip install 'bokeh>=3.1')")
    return f"Dask dashboard: {link}" if link else "Dask dashboard: not available"


def _progress(futures, log):
    """A text progress bar over ``futures`` (Dask's own), then wait for all of them."""
    from distributed import progress, wait

    if log is not None and futures:
        progress(futures, notebook=False)
        sys.stdout.write("\n")
        sys.stdout.flush()
    wait(futures)


def fuse_mosaic(samples, fields, images, out_dir, *, settings=None, scheduler="local",
                client=None, n_workers=None, rows_per_task=0, resume=True,
                below_detection="refuse", layer=None, log=print):
    """Fuse the samples with many image tiles on Dask; returns a :class:`RunResult`.

    Parameters
    ----------
    samples : str
        Any OGR point source.
    fields : list of str
        Element fields (one output band each).
    images : list of str
        Tile files, or VRTs standing for the files they list.
    out_dir : str
        Output folder: one ``fused_<tile>.tif`` COG per tile and ``fused.vrt``.
    settings : :class:`.model.Settings`
    scheduler : str
        ``"local"`` (a new ``LocalCluster``) or ``"tcp://host:port"``.
    client : distributed.Client, optional
        An existing client (then ``scheduler`` and ``n_workers`` are ignored).
    rows_per_task : int
        0: one task per tile; else tiles are cut into row pieces of this many rows.
    resume : bool
        Skip tiles already complete for the same inputs and settings.
    """
    settings = settings or _model.Settings()
    result = RunResult()
    clock = time.perf_counter()
    os.makedirs(out_dir, exist_ok=True)
    for stale in glob.glob(os.path.join(out_dir, ".*.part*")):
        _tiles._remove(stale)

    # --- stage 1: tiles, samples, mosaic ---------------------------------------------------
    tiles, bad = _tiles.check_tiles(_tiles.expand_inputs(images))
    if not tiles:
        raise ValueError("no usable image tile: " + "; ".join(r for _, r in bad))
    wkt = tiles[0].crs_wkt
    x, y, values, notes = read_points(samples, fields, wkt, layer=layer)
    x, y, values, checked = check_sample_table(
        x, y, values, log_transform=settings.log_transform, below_detection=below_detection)
    notes += checked
    spacing = median_nn_spacing(x, y)
    reach = (x.min() - 3 * spacing, y.min() - 3 * spacing,
             x.max() + 3 * spacing, y.max() + 3 * spacing)
    usable = []
    for t in tiles:
        if t.grid.overlaps(_reach_grid(reach)):
            usable.append(t)
        else:
            bad.append((t.path, f"{t.path}: no overlap with the samples: no sample lies on the "
                                "tile or within 3 sample spacings of it; check the tile and the "
                                "samples' CRS"))
    tiles = usable
    for _, reason in bad:
        _say(log, f"Bad tile, left out: {reason}")
    result.bad_tiles = [{"tile": p, "reason": r} for p, r in bad]
    if not tiles:
        raise ValueError("no image tile overlaps the samples: " + "; ".join(r for _, r in bad))
    mosaic_path = os.path.join(out_dir, MOSAIC_NAME)
    mosaic_grid = _tiles.build_mosaic(tiles, mosaic_path)
    notes += check_overlap(x, y, mosaic_grid.extent)
    names = list(values)
    result.elements = names
    run_id = fingerprint(settings, x, y, values, tiles, rows_per_task)
    result.fingerprint = run_id
    _say(log, f"{len(tiles)} tiles in the mosaic ({mosaic_grid.nrows} x {mosaic_grid.ncols} "
              f"pixels); {x.size} samples; elements {', '.join(names)}")
    result.seconds["check"] = time.perf_counter() - clock

    own_client = client is None
    if own_client:
        client = open_client(scheduler, n_workers, log)
    try:
        result.dashboard = client.dashboard_link if client else None
        _say(log, dashboard_line(client))
        # --- stages 2-3: the fit, once -------------------------------------------------------
        t0 = time.perf_counter()
        model = _load_model(os.path.join(out_dir, MODEL_NAME), run_id) if resume else None
        if model is not None:
            _say(log, "fit: reusing the model of the previous run (same inputs and settings)")
        else:
            model = _fit(client, x, y, values, mosaic_path, settings, log)
            _save_model(os.path.join(out_dir, MODEL_NAME), run_id, model)
        for line in model.notes:
            _say(log, line)
        result.notes = notes + model.notes
        result.seconds["fit"] = time.perf_counter() - t0

        # --- stage 4: the tiles ----------------------------------------------------------------
        t0 = time.perf_counter()
        pieces = plan_pieces(tiles, mosaic_grid, out_dir, rows_per_task)
        todo = []
        for piece in pieces:
            if resume and _tiles.tile_metadata(piece.path).get("GEOCHEM_RUN") == run_id:
                result.skipped.append(piece.path)
            else:
                todo.append(piece)
        if result.skipped:
            _say(log, f"resume: {len(result.skipped)} of {len(pieces)} tiles already complete")
        meta = {"GEOCHEM_RUN": run_id, "ELEMENTS": ",".join(names), "MODE": "adaptive"}
        descriptions = [f"{n} fused (adaptive)" for n in names]
        futures = []
        if todo:
            model_future = client.scatter(model, broadcast=True)
            futures = [client.submit(fuse_tile, model_future, os.path.abspath(mosaic_path),
                                     p.window, os.path.abspath(p.path), descriptions, meta,
                                     key=f"tile-{os.path.basename(p.path)}-{run_id}",
                                     retries=RETRIES, pure=False)
                       for p in todo]
            _say(log, f"tiles: {len(todo)} tasks")
            _progress(futures, log)
        task_seconds = []
        for piece, future in zip(todo, futures):
            if future.status == "finished":
                task_seconds.append(future.result())
                result.done.append(piece.path)
            else:
                try:
                    exc = future.exception()
                except Exception as err:  # noqa: BLE001 (reported, the rest goes on)
                    exc = err
                reason = f"{piece.source}: {type(exc).__name__}: {exc}"
                result.failed.append({"tile": piece.source, "output": piece.path,
                                      "reason": reason})
                _say(log, f"Tile failed: {reason}")
        result.seconds["tiles"] = time.perf_counter() - t0
        result.seconds["task_seconds"] = task_seconds
    finally:
        if own_client:
            cluster = client.cluster
            client.close()
            if cluster is not None:
                cluster.close()
    for stale in glob.glob(os.path.join(out_dir, ".*.part*")):
        _tiles._remove(stale)

    # --- stage 5: the output mosaic ------------------------------------------------------
    complete = [p.path for p in plan_pieces(tiles, mosaic_grid, out_dir, rows_per_task)
                if _tiles.tile_metadata(p.path).get("GEOCHEM_RUN") == run_id]
    if complete:
        result.output = os.path.join(out_dir, OUTPUT_NAME)
        _tiles.build_vrt(complete, result.output)
    result.seconds["total"] = time.perf_counter() - clock
    _write_summary(os.path.join(out_dir, SUMMARY_NAME), result, settings)
    _say(log, f"{len(result.done)} tiles written, {len(result.skipped)} already complete, "
              f"{len(result.failed)} failed, {len(result.bad_tiles)} bad tiles left out; "
              f"output {result.output}")
    return result


def _reach_grid(reach):
    x0, y0, x1, y1 = reach
    return Grid(x0, y1, max(x1 - x0, 1.0), max(y1 - y0, 1.0), 1, 1)


def _fit(client, x, y, values, mosaic_path, settings, log):
    """Stages 2-3: the image part on the client, one Dask task per element."""
    _say(log, "image model: feature transform and the features around the samples")
    read = _tiles.WindowReader(mosaic_path)
    mosaic_grid = read.grid
    try:
        part = _model.fit_image_part(x, y, values, read, mosaic_grid,
                                     settings.replace(band_names=read.descriptions))
    finally:
        read.close()
    inputs, counts = _model.element_inputs(values, part, settings.log_transform)
    band_names = part.transform.names_
    _say(log, "fit: " + "; ".join(f"{n}: {counts[n]} samples" for n in inputs)
         + " (trend, variogram, residual kriging on the coarse grid)")
    futures = {name: client.submit(_model.fit_element, args, part.kriging_grid, band_names,
                                   settings,
                                   key=f"fit-{name}-{time.time_ns()}", retries=RETRIES)
               for name, args in inputs.items()}
    _progress(list(futures.values()), log)
    fits = {name: f.result() for name, f in futures.items()}
    names = list(values)
    return _model.fitted_model(names, part, fits, mosaic_grid, settings)


def _load_model(path, run_id):
    try:
        with open(path, "rb") as fh:
            saved = pickle.load(fh)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
        return None
    return saved.get("model") if saved.get("fingerprint") == run_id else None


def _save_model(path, run_id, model):
    tmp = path + ".part"
    with open(tmp, "wb") as fh:
        pickle.dump({"fingerprint": run_id, "model": model}, fh)
    os.replace(tmp, path)


def _write_summary(path, result, settings):
    data = asdict(result)
    data["settings"] = asdict(settings)
    tmp = path + ".part"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, default=str)
    os.replace(tmp, path)


def per_tile_seconds(result):
    """Median seconds of a tile task in ``result`` (NaN when none ran)."""
    secs = result.seconds.get("task_seconds") or []
    return float(np.median(secs)) if secs else math.nan
