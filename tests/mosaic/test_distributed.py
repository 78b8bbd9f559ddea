"""The distributed run (``python3 -m geochem_fusion fuse``) against the single-process chain.

Four small tiles (2 x 2) of one synthetic image; the reference is
``core.scene.fuse_scene`` on the whole image in one process. Only loopback
addresses are used.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
gdal = pytest.importorskip("osgeo.gdal")

from geochem_fusion.core.blocks import array_reader  # noqa: E402
from geochem_fusion.core.grid import Grid  # noqa: E402
from geochem_fusion.core.samples import check_sample_table  # noqa: E402
from geochem_fusion.core.scene import fuse_scene  # noqa: E402
from geochem_fusion.core.vocabulary import FusionSettings, Sinks  # noqa: E402
from geochem_fusion.mosaic import cli  # noqa: E402
from geochem_fusion.mosaic.model import Settings  # noqa: E402
from geochem_fusion.mosaic.run import fuse_mosaic  # noqa: E402
from geochem_fusion.mosaic.samples import read_points  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import synth  # noqa: E402

ROWS, COLS = 90, 80
FIELDS = ["Cu", "Zn"]
# a window of 5 pixels: the features need a halo across tile seams
SETTINGS = Settings(regression="local", n_clusters=3, windows=(5,), sample_size=20_000)
PKG = str(Path(__file__).resolve().parents[2] / ".pkg")


@pytest.fixture(scope="module")
def area(tmp_path_factory):
    """Four tiles, the samples and the single-process product on the whole image."""
    folder = tmp_path_factory.mktemp("tiles")
    paths, whole = synth.make_tiles(str(folder), ROWS, COLS)
    samples = str(folder / "samples.gpkg")
    synth.make_samples(samples, whole, 150.0, fields=FIELDS)
    grid = Grid(synth.X0, synth.Y0, synth.PIXEL, synth.PIXEL, whole.shape[2], whole.shape[1])
    wkt = gdal.Open(paths[0]).GetProjection()
    x, y, values, _ = read_points(samples, FIELDS, wkt)
    x, y, values, _ = check_sample_table(x, y, values)
    reference = np.full((len(FIELDS), *grid.shape), np.nan)

    def write(i, row0, block):
        reference[i, row0:row0 + block.shape[0]] = block

    settings = FusionSettings(band_names=[f"B{i + 2}" for i in range(4)], regression="local",
                              n_clusters=3, windows=(5,), sample_size=20_000)
    scene = fuse_scene(x, y, values, array_reader(whole), grid, settings,
                       Sinks(write, krige_alone=False, preview_size=None))
    assert max(f.window for f in scene.fits.values()) > 1  # the halo is exercised
    assert any(f.shrink > 0 for f in scene.fits.values())  # an image trend, not kriging alone
    return {"folder": folder, "paths": paths, "samples": samples, "grid": grid,
            "reference": reference.astype(np.float32), "wkt": wkt}


@pytest.fixture(scope="module")
def cluster():
    """A LocalCluster with 2 worker processes (1 thread each) on the loopback address."""
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (PKG, os.environ.get("PYTHONPATH")) if p)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as c:
        yield c


def _output(result):
    ds = gdal.Open(result.output)
    data = ds.ReadAsArray().astype(np.float32)
    nodata = ds.GetRasterBand(1).GetNoDataValue()
    data[data == nodata] = np.nan
    return data.reshape(-1, ds.RasterYSize, ds.RasterXSize)


def _assert_equal_to_reference(result, area):
    out = _output(result)
    assert out.shape == area["reference"].shape
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, area["reference"], rtol=1e-6, atol=1e-4)


def test_local_cluster_equals_single_process(area, cluster, tmp_path):
    with distributed.Client(cluster) as client:
        result = fuse_mosaic(area["samples"], FIELDS, area["paths"], str(tmp_path / "out"),
                             settings=SETTINGS, client=client, log=None)
    assert len(result.done) == 4 and not result.failed and not result.bad_tiles
    for path in result.done:  # every output tile is a Cloud-Optimized GeoTIFF
        ds = gdal.Open(path)
        assert ds.GetMetadata("IMAGE_STRUCTURE").get("LAYOUT") == "COG"
    assert not [p for p in os.listdir(tmp_path / "out") if ".part" in p]
    _assert_equal_to_reference(result, area)


def test_row_pieces_and_a_vrt_of_tiles_give_the_same_product(area, cluster, tmp_path):
    vrt = str(area["folder"] / "tiles.vrt")
    gdal.BuildVRT(vrt, area["paths"]).FlushCache()
    with distributed.Client(cluster) as client:
        result = fuse_mosaic(area["samples"], FIELDS, [vrt], str(tmp_path / "out"),
                             settings=SETTINGS, client=client, rows_per_task=40, log=None)
    assert len(result.done) == 4 * 3  # 90 rows in pieces of 40, 40, 10
    _assert_equal_to_reference(result, area)


def test_resume_skips_complete_tiles(area, cluster, tmp_path):
    out = tmp_path / "out"
    lines = []
    with distributed.Client(cluster) as client:
        first = fuse_mosaic(area["samples"], FIELDS, area["paths"], str(out),
                            settings=SETTINGS, client=client, log=None)
        removed = first.done[1]
        os.remove(removed)
        kept = {p: os.stat(p).st_mtime_ns for p in first.done if p != removed}
        second = fuse_mosaic(area["samples"], FIELDS, area["paths"], str(out),
                             settings=SETTINGS, client=client, log=lines.append)
        assert second.done == [removed]
        assert sorted(second.skipped) == sorted(kept)
        assert any("reusing the model" in line for line in lines)
        assert {p: os.stat(p).st_mtime_ns for p in kept} == kept  # not rewritten
        _assert_equal_to_reference(second, area)
        # other settings: nothing is reused
        third = fuse_mosaic(area["samples"], FIELDS, area["paths"], str(out),
                            settings=Settings(**{**SETTINGS.__dict__, "random_state": 1}),
                            client=client, log=None)
    assert len(third.done) == 4 and not third.skipped


def test_bad_tiles_are_reported_by_name_and_the_rest_finish(area, cluster, tmp_path, capsys):
    folder = tmp_path / "bad"
    folder.mkdir()
    data = gdal.Open(area["paths"][0]).ReadAsArray()
    wrong_crs = synth.write_tile(str(folder / "T_wrong_crs.tif"), data, 0, 0, epsg=32634)
    far_away = synth.write_tile(str(folder / "T_far_away.tif"), data, 100_000, 0)
    missing = str(folder / "T_missing.tif")
    args = ["fuse", area["samples"], *area["paths"], wrong_crs, far_away, missing,
            "--field", "Cu", "--field", "Zn", "--out", str(tmp_path / "out"),
            "--regression", "local", "--clusters", "3", "--sample-size", "20000",
            "--scheduler", cluster.scheduler_address]
    status = cli.main(args)
    captured = capsys.readouterr().out
    assert status == 1  # bad tiles: not a clean run
    for path, words in ((wrong_crs, "wrong CRS"), (far_away, "no overlap"),
                        (missing, "file not found")):
        line = next(ln for ln in captured.splitlines() if path in ln)
        assert words in line and line.startswith("Bad tile")
    assert sorted(os.listdir(tmp_path / "out")).count("fused.vrt") == 1
    done = [n for n in os.listdir(tmp_path / "out") if n.startswith("fused_")]
    assert sorted(done) == ["fused_T00.tif", "fused_T01.tif", "fused_T10.tif", "fused_T11.tif"]


def test_other_modes_are_refused_with_the_reason(area, tmp_path, capsys):
    status = cli.main(["fuse", area["samples"], *area["paths"], "--field", "Cu",
                       "--out", str(tmp_path / "out"), "--mode", "paper"])
    assert status == 2
    assert "not tile-local" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def _start(cmd, env):
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)


def test_scheduler_and_two_workers_survive_a_killed_worker(area, tmp_path):
    """`dask scheduler` + 2 `dask worker` processes on 127.0.0.1; one is killed mid-run."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (PKG, os.environ.get("PYTHONPATH")) if p))
    sched_file = str(tmp_path / "scheduler.json")
    procs = [_start([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host",
                     "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file",
                     sched_file], env)]
    try:
        for _ in range(300):
            if os.path.exists(sched_file):
                break
            time.sleep(0.1)
        for _ in range(2):  # no nanny: a killed worker stays dead
            procs.append(_start([sys.executable, "-m", "distributed.cli.dask_worker",
                                 "--scheduler-file", sched_file, "--host", "127.0.0.1",
                                 "--nthreads", "1", "--no-nanny", "--no-dashboard"], env))
        out = tmp_path / "out"
        with distributed.Client(scheduler_file=sched_file, timeout="60s") as client:
            client.wait_for_workers(2, timeout=120)
            killed = {}

            def kill_when_busy():
                # once a few pieces are written, the run is mid-way: kill a worker (SIGKILL)
                while not killed:
                    written = [n for n in os.listdir(out)] if out.exists() else []
                    if sum(n.startswith("fused_") and n.endswith(".tif") for n in written) >= 3:
                        os.kill(procs[1].pid, signal.SIGKILL)
                        killed["at"] = len(written)
                        return
                    time.sleep(0.02)

            watcher = threading.Thread(target=kill_when_busy, daemon=True)
            watcher.start()
            result = fuse_mosaic(area["samples"], FIELDS, area["paths"], str(out),
                                 settings=SETTINGS, client=client, rows_per_task=10, log=None)
            watcher.join(timeout=5)
            assert killed, "the worker was not killed during the run"
            assert procs[1].wait(timeout=30) == -signal.SIGKILL
            assert len(client.scheduler_info()["workers"]) == 1
        n_pieces = 4 * 9  # 90 rows in pieces of 10
        assert len(result.done) == n_pieces and not result.failed
        _assert_equal_to_reference(result, area)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
