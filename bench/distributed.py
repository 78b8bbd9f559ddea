"""Distributed benchmark (issue 18): ``make bench-distributed``.

Writes ``bench/results/distributed.md``.

Inputs (generated once in ``bench/work/distributed/``, never committed): the full synthetic
Sentinel-2 tile of ``bench/scale.py`` (10980 x 10980 pixels of 10 m, 4 bands uint16, the same
seeded generator and cache, ``bench/work/scale/10980/``) cut into its four quadrants of
5490 x 5490 pixels (``T00.tif`` … ``T11.tif``, same creation options), and its samples (a
jittered 2 km grid, 3025 points; the Cu field).

Runs, each a child process measured as a whole (wall, user + system CPU and peak RSS of the
largest process from ``os.wait4``, CPU the rest of the machine used meanwhile from
``/proc/stat``):

- **single process**: ``core.scene.fuse_scene`` (the chain ``fusegeochemistry`` runs) on the
  VRT mosaic of the four tiles, read window by window with GDAL, written as one COG;
- **1 worker** / **2 workers**: ``python -m geochem_fusion fuse`` with ``--workers 1`` / ``2``
  (a ``LocalCluster`` of that many single-threaded worker processes; cluster start-up,
  fit, four tile tasks, the output VRT);
- **scheduler overhead**: ``N_NOOP`` tasks that do nothing on a 2-worker ``LocalCluster``
  (wall per task), and, from the tile runs, the tile stage's wall time against the time the
  tasks themselves measured.

The products are compared pixel by pixel (single process against each Dask run).
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import math
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tools"))

import scale  # noqa: E402 (bench/scale.py: the generator and the measured child process)
from qgis_env import link_package  # noqa: E402

sys.path.insert(0, str(link_package()))

from osgeo import gdal  # noqa: E402

gdal.UseExceptions()
logger = logging.getLogger("bench.distributed")

WORK = REPO / "bench" / "work" / "distributed"
RESULTS = REPO / "bench" / "results"
HALF = scale.FULL // 2
ELEMENT = "Cu"
N_NOOP = 2000
N_TILES_MODEL = 600
GEN_VERSION = "1"


def generate():
    """The four 5490² quadrants of the full synthetic tile (cached)."""
    WORK.mkdir(parents=True, exist_ok=True)
    stamp = WORK / "generated.txt"
    full = scale.WORK / str(scale.FULL)
    scale.generate(scale.FULL, scale.Scene(), full)
    if stamp.exists() and stamp.read_text() == GEN_VERSION:
        return full / "samples.gpkg"
    for i in range(2):
        for j in range(2):
            out = WORK / f"T{i}{j}.tif"
            gdal.Translate(str(out), str(full / "image.tif"),
                           srcWin=[j * HALF, i * HALF, HALF, HALF],
                           creationOptions=scale.IMAGE_OPTIONS)
    stamp.write_text(GEN_VERSION)
    return full / "samples.gpkg"


def tiles():
    """The four input tiles of the benchmark."""
    return [str(WORK / f"T{i}{j}.tif") for i in range(2) for j in range(2)]


def single(samples, out):
    """Child: the single-process product (``fuse_scene`` on the mosaic) as one COG."""
    from geochem_fusion.core.samples import check_sample_table
    from geochem_fusion.core.scene import fuse_scene
    from geochem_fusion.core.vocabulary import FusionSettings, Sinks
    from geochem_fusion.mosaic.samples import read_points
    from geochem_fusion.mosaic.tiles import TileWriter, WindowReader

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    vrt = str(out / "mosaic.vrt")
    gdal.BuildVRT(vrt, tiles()).FlushCache()
    read = WindowReader(vrt)
    x, y, values, _ = read_points(samples, [ELEMENT], read.crs_wkt)
    x, y, values, _ = check_sample_table(x, y, values)
    writer = TileWriter(str(out / "fused.tif"), read.grid, read.crs_wkt, 1)
    t0 = time.perf_counter()
    scene = fuse_scene(x, y, values, read, read.grid,
                       FusionSettings(band_names=read.descriptions),
                       Sinks(writer.write, krige_alone=False, preview_size=None))
    t1 = time.perf_counter()
    writer.finish()
    t2 = time.perf_counter()
    json.dump({"fuse_scene": t1 - t0, "cog": t2 - t1, "notes": scene.notes},
              open(out / "single.json", "w"))


def noop(i):
    """A task that does nothing (the scheduler's overhead)."""
    return i


def overhead(n_workers=2, n_tasks=N_NOOP):
    """Child: wall per no-op task on a LocalCluster (the scheduler's cost per task)."""
    from distributed import Client, LocalCluster, wait

    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        wait(client.map(noop, range(50), pure=False))  # warm up
        t0 = time.perf_counter()
        futures = client.map(noop, range(n_tasks), pure=False)
        wait(futures)
        wall = time.perf_counter() - t0
    print(json.dumps({"tasks": n_tasks, "wall": wall}))


def compare(a_path, b_path, rows=512):
    """Largest absolute difference and the count of pixels whose validity differs."""
    a, b = gdal.Open(a_path), gdal.Open(b_path)
    assert (a.RasterXSize, a.RasterYSize) == (b.RasterXSize, b.RasterYSize)
    worst, mismatch, scale_ = 0.0, 0, 0.0
    for r in range(0, a.RasterYSize, rows):
        n = min(rows, a.RasterYSize - r)
        x = a.GetRasterBand(1).ReadAsArray(0, r, a.RasterXSize, n).astype(np.float64)
        y = b.GetRasterBand(1).ReadAsArray(0, r, b.RasterXSize, n).astype(np.float64)
        vx, vy = x != -9999.0, y != -9999.0
        mismatch += int((vx != vy).sum())
        both = vx & vy
        if both.any():
            worst = max(worst, float(np.abs(x[both] - y[both]).max()))
            scale_ = max(scale_, float(np.abs(x[both]).max()))
    return worst, mismatch, scale_


def main(argv=None):
    """Command line entry point."""
    logging.basicConfig(format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logger.setLevel(logging.INFO)
    scale.logger.setLevel(logging.INFO)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=RESULTS / "distributed.md")
    parser.add_argument("--single", nargs=2, metavar=("SAMPLES", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--overhead", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--generate-only", action="store_true", help="only make the inputs")
    args = parser.parse_args(argv)
    if args.single:
        return single(*args.single)
    if args.overhead:
        return overhead()
    samples = generate()
    if args.generate_only:
        return 0
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(link_package()), os.environ.get("PYTHONPATH")) if p))
    load_before = os.getloadavg()
    runs = {}
    out = WORK / "out"
    shutil.rmtree(out, ignore_errors=True)
    runs["single"] = scale.Run([sys.executable, __file__, "--single", samples, out / "single"],
                               env=env)()
    for n in (1, 2):
        runs[f"{n} workers"] = scale.Run(
            [sys.executable, "-m", "geochem_fusion", "fuse", samples, *tiles(), "--field", ELEMENT,
             "--out", out / f"workers{n}", "--workers", str(n), "--no-resume"], env=env)()
    runs["noop"] = scale.Run([sys.executable, __file__, "--overhead"], env=env)()
    load_after = os.getloadavg()
    single_json = json.loads((out / "single" / "single.json").read_text())
    summaries = {n: json.loads((out / f"workers{n}" / "run.json").read_text()) for n in (1, 2)}
    noop_json = json.loads(runs["noop"].lines[-1][1])
    diffs = {n: compare(str(out / "single" / "fused.tif"), str(out / f"workers{n}" / "fused.vrt"))
             for n in (1, 2)}
    text = report(runs, single_json, summaries, noop_json, diffs, load_before, load_after,
                  argv)
    args.output.write_text(text)
    print(text)  # noqa: T201 (the benchmark's output)
    return 0


def report(runs, single_json, summaries, noop_json, diffs, load_before, load_after, argv):
    """The Markdown results."""
    command = "python bench/distributed.py " + " ".join(sys.argv[1:] if argv is None else argv)
    if os.environ.get("MAKELEVEL"):
        command = f"make bench-distributed (runs {command.strip()})"
    task = {n: s["seconds"]["task_seconds"] for n, s in summaries.items()}
    per_tile = {n: float(np.median(t)) for n, t in task.items()}
    per_noop = noop_json["wall"] / noop_json["tasks"]
    lines = [
        "# Distributed benchmark (issue 18)",
        "",
        f"Command: `{command.strip()}`  ",
        f"Date: {datetime.datetime.now().isoformat(timespec='minutes')}  ",
        f"Machine: {scale.machine()}  ",
        f"GDAL {gdal.__version__}; Dask distributed "
        f"{__import__('distributed').__version__}",
        "",
        "Inputs: the full synthetic Sentinel-2 tile of `bench/scale.py` (10980 x 10980 px, "
        "10 m, 4 bands uint16) cut into its four 5490 x 5490 quadrants (the 4 tiles), and its "
        f"3025 samples (jittered 2 km grid); element {ELEMENT}; the defaults of the command "
        "line (adaptive mode, global regression, all bands, auto variogram).",
        "",
        "| run | wall (s) | CPU (s) | peak RSS of one process (GB) | other CPU (s) |",
        "|---|---:|---:|---:|---:|",
    ]
    labels = {"single": "single process (`fuse_scene` on the mosaic, one COG)",
              "1 workers": "`python -m geochem_fusion fuse --workers 1`",
              "2 workers": "`python -m geochem_fusion fuse --workers 2`",
              "noop": f"{noop_json['tasks']} no-op tasks on 2 workers (+ cluster start-up)"}
    for key, label in labels.items():
        r = runs[key]
        lines.append(f"| {label} | {r.wall:.1f} | {r.cpu:.1f} | {r.rss_gb:.2f} | "
                     f"{r.other:.1f} |")
    lines += [
        "",
        "*other CPU*: CPU time the rest of the machine used during the run (`/proc/stat`). "
        f"Load average (1, 5, 15 min) before the runs: {', '.join(f'{v:.1f}' for v in load_before)}; "
        f"after: {', '.join(f'{v:.1f}' for v in load_after)}. The machine has "
        f"{os.cpu_count()} CPUs shared with other work: where *other CPU* is large the times "
        "are pessimistic and the ratios between runs are uncertain.",
        "",
        "Stages of the Dask runs (seconds, from `run.json`):",
        "",
        "| workers | checks + mosaic | fit (image model on the client, per-element fit task) "
        "| tile stage (wall) | tile tasks (each, as measured inside the task) | total |",
        "|---:|---:|---:|---:|---|---:|",
    ]
    for n, s in summaries.items():
        sec = s["seconds"]
        lines.append(f"| {n} | {sec['check']:.1f} | {sec['fit']:.1f} | {sec['tiles']:.1f} | "
                     + ", ".join(f"{t:.1f}" for t in sec["task_seconds"])
                     + f" | {sec['total']:.1f} |")
    lines += [
        "",
        f"Single process: `fuse_scene` {single_json['fuse_scene']:.1f} s (fit and all blocks, "
        f"threads on both CPUs) + COG conversion {single_json['cog']:.1f} s.",
        "",
        "Same product: largest absolute difference to the single-process product "
        + "; ".join(f"{n} worker(s): {d[0]:.3g} (values up to {d[2]:.3g}), "
                    f"{d[1]} pixels valid in one and not the other" for n, d in diffs.items())
        + ".",
        "",
        "## Scheduler overhead",
        "",
        f"- No-op tasks: {per_noop * 1e3:.2f} ms of wall time per task on a 2-worker "
        "LocalCluster (submit, schedule, run, report back).",
    ]
    for n, s in summaries.items():
        sec = s["seconds"]
        busy = sum(sec["task_seconds"])
        lines.append(
            f"- {n} worker(s): the tile stage took {sec['tiles']:.1f} s of wall time for "
            f"{busy:.1f} s of task time on {n} worker(s): "
            f"{max(0.0, sec['tiles'] - busy / n) / len(sec['task_seconds']):.2f} s per task "
            "not spent inside a task (scattering the model, scheduling, imbalance of the last "
            "tasks).")
    # cost model
    t_tile = per_tile[1] * 4.0
    fit = summaries[1]["seconds"]["fit"]
    lines += [
        "",
        f"## Cost model: {N_TILES_MODEL} full tiles on N workers",
        "",
        f"Basis: the median tile task of the 1-worker run, {per_tile[1]:.1f} s for a 5490² "
        "tile (read, predict, COG with overviews), measured inside the task on this machine "
        f"with the contention above; a full 10980² tile is 4 times the pixels, so "
        f"t_tile = {t_tile:.0f} s (the work per tile is per pixel: window reads, features, "
        "trend, cubic residual, COG). With the 2-worker run the median task took "
        f"{per_tile[2]:.1f} s: two workers on two shared CPUs slow each other "
        "(memory bandwidth, the other load), so a worker is assumed to have a CPU of its own.",
        "",
        f"T(N) = fit + ceil({N_TILES_MODEL} / N) x t_tile + {N_TILES_MODEL} x overhead, "
        f"with overhead = {per_noop * 1e3:.1f} ms per task (negligible) and the fit measured "
        f"here on 3025 samples ({fit:.0f} s). The fit of a national survey (hundreds of "
        "thousands of samples) was not measured and does not scale with the tiles: it runs "
        "once, on the client and one task per element.",
        "",
        "| N workers | T (h) |",
        "|---:|---:|",
    ]
    for n in (1, 2, 8, 32, 100, 300, 600):
        total = fit + math.ceil(N_TILES_MODEL / n) * t_tile + N_TILES_MODEL * per_noop
        lines.append(f"| {n} | {total / 3600:.2f} |")
    lines += [
        "",
        "What was not seen here: a speed-up beyond what two shared CPUs give. The model "
        "assumes each worker reads its tiles from storage as fast as this machine reads its "
        "page cache; on a cluster, reading 600 tiles from shared storage may dominate.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
