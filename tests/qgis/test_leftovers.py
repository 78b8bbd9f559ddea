"""No leftovers (issue 12): a run killed with SIGTERM cannot remove its temporary file; the next
run writing to the same folder does (temporary names carry the id of the process that owns them)."""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np

from geochem_fusion.algorithms import raster_io
from geochem_fusion.core.grid import Grid

from .conftest import REPO
from .test_reliability import krige, scattered, smooth_values

GRID = Grid(300_000.0, 7_001_000.0, 10.0, 10.0, 60, 80)


def dead_pid():
    """The id of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def killed_writer(target):
    """Start a process writing ``target`` window by window, kill it with SIGTERM mid-write."""
    script = textwrap.dedent(f"""
        import sys, time
        import numpy as np
        sys.path.insert(0, {str(REPO / '.pkg')!r})
        from geochem_fusion.algorithms import raster_io
        from geochem_fusion.core.grid import Grid
        grid = Grid(300000.0, 7001000.0, 10.0, 10.0, 60, 80)
        w = raster_io.WindowedWriter({str(target)!r}, grid, "", 1).__enter__()
        w.write(0, 0, np.zeros((10, grid.ncols)))
        print("writing", flush=True)
        time.sleep(120)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    line = child.stdout.readline().strip()
    assert line == "writing", child.communicate()[1]
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=30) == -signal.SIGTERM


def hidden_partials(folder):
    return sorted(n for n in os.listdir(folder) if ".partial" in n)


def test_sigterm_leftover_is_removed_by_the_next_run(tmp_path):
    target = tmp_path / "fused.tif"
    killed_writer(target)
    (left,) = hidden_partials(tmp_path)  # the killed run could not clean up ...
    assert left.startswith(".fused.tif.") and not target.exists()
    raster_io.write_raster(str(target), np.ones(GRID.shape), GRID, "")
    assert hidden_partials(tmp_path) == []  # ... the next run to that folder does
    assert target.exists()


def test_a_running_writers_file_is_left_alone(tmp_path):
    """Another run writing to the same folder now (this process) keeps its temporary file."""
    other = tmp_path / "other.tif"
    with raster_io.WindowedWriter(str(other), GRID, "", 1) as w:
        w.write(0, 0, np.zeros((10, GRID.ncols)))
        raster_io.write_raster(str(tmp_path / "mine.tif"), np.ones(GRID.shape), GRID, "")
        assert len(hidden_partials(tmp_path)) == 1  # the live writer's
        w.write(0, 10, np.zeros((GRID.nrows - 10, GRID.ncols)))
    assert other.exists() and hidden_partials(tmp_path) == []


def test_algorithm_run_removes_stale_files_and_folders(run_alg, make_points, tmp_path):
    """A killed fusion's file, a killed preparation's folder and report: gone after a run."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    pid = dead_pid()
    stale = [f".cu.tif.{pid}-0123abcd.partial.tif", f".report.html.{pid}-0123abcd.partial.html",
             f".cu.tif.{pid}-0123abcd.partial.tif.aux.xml"]
    for name in stale:
        (out_dir / name).write_bytes(b"")
    (out_dir / f".preparesentinel2.{pid}-89abcdef.partial").mkdir()
    (out_dir / f".preparesentinel2.{pid}-89abcdef.partial" / "B02.tif").write_bytes(b"x")
    (out_dir / "notes.partial.txt").write_text("a user's file")  # not ours: kept
    xy = scattered(30)
    krige(run_alg, make_points("s.gpkg", xy, {"Cu": smooth_values(xy)}), out_dir)
    assert sorted(os.listdir(out_dir)) == ["cu.tif", "notes.partial.txt"]
