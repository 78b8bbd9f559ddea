"""Scale benchmark (issue 7): ``make bench-scale``.

Runs the end-to-end ``geochemfusion:fusegeochemistry`` through ``qgis_process.bin`` on
synthetic inputs of Sentinel-2 tile size and writes ``bench/results/scale.md``.

Inputs (generated once in ``bench/work/scale/<size>/``, never committed)
    - ``image.tif``: 4 bands uint16 (reflectance x 10 000, nodata 0), ``size`` x ``size``
      pixels of 10 m in EPSG:32719 (a Sentinel-2 tile's grid; the smaller sizes are its
      top-left corner), tiled 512 x 512, DEFLATE with the horizontal predictor
      (see :data:`IMAGE_OPTIONS`). The texture is seeded: three latent "lithology" fields,
      each a sum of smoothed noise at 160 m, 640 m, 2.56 km and 10.24 km (bilinear
      interpolation of Gaussian-smoothed noise grids defined over the whole tile), six units
      with sharp borders (a fourth smooth field cut at fixed thresholds), each with its own
      spectral signature, and pixel noise. The texture of a pixel does not depend on the size
      generated, so the smaller images are crops of the full tile.
    - ``samples.gpkg``: a jittered 2 km grid over the *full* tile (55 x 55 = 3025 points,
      each moved by up to +-500 m) with Cu, Zn, Pb, Ni, Co (ppm) simulated as
      ``10 ** (mean + lithology + unit effect + element's own 40 km smooth field + nugget)``.
      For the smaller sizes the file holds the points inside the image plus a 6 km margin
      (three spacings: the plugin's own kriging margin), same values, so the spacing stays
      2 km and there are fewer samples.
    - ``coarse.tif``: a float32 grid of 500 m cells (a quarter of the 2 km spacing: the size
      of the plugin's kriging grid) over the image extent, for the floor.

Measurements (each a child process, its wall time, user+sys CPU and peak RSS from
``os.wait4``)
    - QGIS start-up: ``qgis_process.bin help geochemfusion:fusegeochemistry`` (starts QGIS,
      loads the providers and the plugin, prints the help).
    - The floor: ``gdalwarp -r cubic`` of ``coarse.tif`` onto the 10 m grid of the image
      (``-tr 10 10 -te <extent>``), written with the plugin's creation options
      (``raster_io.GTIFF_OPTIONS``): the resampling of a coarse grid onto the image grid and
      the writing of one compressed float32 band, the I/O-dominated floor of any fusion.
    - The fusion, default mode (adaptive), REGRESSION=1 (local), N_CLUSTERS=8, default
      features (all bands): (a) FIELD=Cu, (b) the five elements. Cost of an additional
      element: ``(t5 - t1) / 4 / t1``.
    The progress lines ``qgis_process.bin`` prints are time-stamped as they arrive, and the
    longest silence of the full-tile run is reported.

The cancel check runs the core (:func:`geochem_fusion.core.scene.fuse_scene`, image
read block by block with GDAL) in this process with a cancel callback that turns True after
a few seconds, and reports how long it took to stop.

Run ``python bench/scale.py --help`` for the options (``--sizes 2745,5490`` runs a subset).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "bench" / "work" / "scale"
RESULTS = REPO / "bench" / "results"

# The repository root is the package ``geochem_fusion``: import it through the
# same symlink the tests use (tools/qgis_env.link_package), never through the folder name.
sys.path.insert(0, str(REPO / "tools"))
from qgis_env import link_package  # noqa: E402

sys.path.insert(0, str(link_package()))

import qgis_env  # noqa: E402
from osgeo import gdal, ogr, osr  # noqa: E402

from geochem_fusion.algorithms.raster_io import GTIFF_OPTIONS  # noqa: E402
from geochem_fusion.core.grid import Grid  # noqa: E402

gdal.UseExceptions()
logger = logging.getLogger("bench.scale")

FULL = 10980
SIZES = (2745, 5490, FULL)
PIXEL = 10.0
X0, Y0 = 399960.0, 7500040.0  # upper-left corner of a Sentinel-2 tile (UTM 19S)
EPSG = 32719
SPACING = 2000.0
ELEMENTS = ("Cu", "Zn", "Pb", "Ni", "Co")
N_CLUSTERS = 8
SEED = 7
IMAGE_OPTIONS = ["TILED=YES", "BLOCKXSIZE=512", "BLOCKYSIZE=512", "COMPRESS=DEFLATE",
                 "PREDICTOR=2", "BIGTIFF=IF_SAFER"]
GEN_VERSION = "1"  # bump when the generator changes (regenerates the cached inputs)
TILE = 512  # pixel-noise tiles (seeded by position, so crops of the tile agree)

TARGET_RSS_GB = 3.0
TARGET_RATIO = 10.0
TARGET_EXTRA = 0.5


# ----------------------------------------------------------------------------------------
# synthetic scene
# ----------------------------------------------------------------------------------------
class Texture:
    """Smooth random fields defined over the full tile, evaluated on any window or at points.

    Each field is a sum over scales ``s`` (pixels) of a Gaussian-smoothed noise grid of
    ``s``-pixel cells, interpolated bilinearly, normalized to unit variance.
    """

    SCALES = (16, 64, 256, 1024)
    WEIGHTS = (0.35, 0.6, 0.8, 0.6)

    def __init__(self, n_fields, *, scales=None, weights=None, seed=SEED):
        from scipy import ndimage

        rng = np.random.default_rng(seed)
        self.scales = scales or self.SCALES
        weights = np.asarray(weights or self.WEIGHTS, dtype=np.float64)
        self.weights = weights / np.sqrt((weights ** 2).sum())
        self.grids = []  # [field][scale] -> 2-D array of cells (+2 border cells)
        for _ in range(n_fields):
            per_scale = []
            for s in self.scales:
                n = FULL // s + 4
                g = ndimage.gaussian_filter(rng.normal(size=(n, n)), 1.0, mode="wrap")
                per_scale.append(g / g.std())
            self.grids.append(per_scale)

    @staticmethod
    def _taps(pos, s):
        u = (pos + 0.5) / s + 1.0  # cell-centre positions, one border cell
        i = np.floor(u - 0.5).astype(np.int64)
        return i, (u - 0.5) - i

    def window(self, k, row0, col0, nrows, ncols):
        """Field ``k`` on pixels ``row0:row0+nrows, col0:col0+ncols`` (float32)."""
        out = np.zeros((nrows, ncols), dtype=np.float32)
        rows = np.arange(row0, row0 + nrows, dtype=np.float64)
        cols = np.arange(col0, col0 + ncols, dtype=np.float64)
        for s, w, g in zip(self.scales, self.weights, self.grids[k]):
            i, fi = self._taps(rows, s)
            j, fj = self._taps(cols, s)
            # along columns for the grid rows needed, then along rows
            r_lo, r_hi = i.min(), i.max() + 2
            sub = g[r_lo:r_hi]
            along = sub[:, j] * (1 - fj) + sub[:, j + 1] * fj
            ii = i - r_lo
            val = along[ii] * (1 - fi)[:, None] + along[ii + 1] * fi[:, None]
            out += (w * val).astype(np.float32)
        return out

    def points(self, k, rows, cols):
        """Field ``k`` at fractional pixel positions (same interpolation as :meth:`window`)."""
        out = np.zeros(np.broadcast(np.asarray(rows), np.asarray(cols)).shape)
        for s, w, g in zip(self.scales, self.weights, self.grids[k]):
            i, fi = self._taps(np.asarray(rows, dtype=np.float64), s)
            j, fj = self._taps(np.asarray(cols, dtype=np.float64), s)
            val = (g[i, j] * (1 - fi) * (1 - fj) + g[i + 1, j] * fi * (1 - fj)
                   + g[i, j + 1] * (1 - fi) * fj + g[i + 1, j + 1] * fi * fj)
            out += w * val
        return out


class Scene:
    """The synthetic tile: latent lithology, units, band signatures, element models."""

    N_LATENT = 3
    N_UNITS = 6
    BASE = np.array([1400.0, 1600.0, 1900.0, 3000.0])  # B2, B3, B4, B8 (DN)
    NOISE_DN = 45.0

    def __init__(self, seed=SEED):
        rng = np.random.default_rng(seed + 1)
        self.seed = seed
        self.litho = Texture(self.N_LATENT + 1, seed=seed)  # the last one draws the units
        self.mix = rng.normal(0.0, 160.0, size=(4, self.N_LATENT))  # DN per latent SD
        self.mix[3] *= 1.8  # NIR varies most
        self.signature = rng.normal(0.0, 260.0, size=(self.N_UNITS, 4))
        self.thresholds = np.array([-1.2, -0.5, 0.0, 0.5, 1.1])  # unit field SDs
        # elements: log10 mean, gains on the latent fields, unit effects, smooth-field SD
        self.log_mean = np.log10([40.0, 80.0, 15.0, 30.0, 12.0])
        self.gain = rng.normal(0.0, 0.12, size=(len(ELEMENTS), self.N_LATENT))
        self.unit_effect = rng.normal(0.0, 0.15, size=(len(ELEMENTS), self.N_UNITS))
        self.smooth = Texture(len(ELEMENTS), scales=(2048, 4096), weights=(0.5, 1.0),
                              seed=seed + 2)
        self.smooth_sd = 0.12
        self.nugget_sd = 0.05

    def units(self, field):
        """Unit labels of a field (its thresholds)."""
        return np.digitize(field, self.thresholds)

    def image_block(self, row0, nrows, ncols):
        """uint16 ``(4, nrows, ncols)`` of the tile's rows ``row0:row0+nrows``, columns ``0:ncols``."""
        latent = [self.litho.window(k, row0, 0, nrows, ncols) for k in range(self.N_LATENT)]
        unit = self.units(self.litho.window(self.N_LATENT, row0, 0, nrows, ncols))
        out = np.empty((4, nrows, ncols), dtype=np.uint16)
        noise = np.empty((4, nrows, ncols), dtype=np.float32)
        for c0 in range(0, ncols, TILE):  # pixel noise seeded by tile position
            c1 = min(c0 + TILE, ncols)
            rng = np.random.default_rng((self.seed, row0 // TILE, c0 // TILE))
            noise[:, :, c0:c1] = rng.standard_normal((4, TILE, TILE), dtype=np.float32)[
                :, :nrows, :c1 - c0]
        for b in range(4):
            v = self.BASE[b] + self.signature[unit, b].astype(np.float32)
            for k in range(self.N_LATENT):
                v += np.float32(self.mix[b, k]) * latent[k]
            v += np.float32(self.NOISE_DN) * noise[b]
            out[b] = np.clip(np.rint(v), 1, 65535).astype(np.uint16)
        return out

    def samples(self):
        """Jittered 2 km grid over the full tile: ``x, y, {element: ppm}``."""
        rng = np.random.default_rng(self.seed + 3)
        n = int(round(FULL * PIXEL / SPACING))
        centres = (np.arange(n) + 0.5) * SPACING
        cx, cy = np.meshgrid(centres, centres)
        dx = rng.uniform(-SPACING / 4, SPACING / 4, cx.shape)
        dy = rng.uniform(-SPACING / 4, SPACING / 4, cy.shape)
        px = np.clip(cx + dx, 5.0, FULL * PIXEL - 5.0).ravel()  # metres from the corner
        py = np.clip(cy + dy, 5.0, FULL * PIXEL - 5.0).ravel()
        cols, rows = px / PIXEL - 0.5, py / PIXEL - 0.5  # fractional pixel (0 = first centre)
        latent = np.stack([self.litho.points(k, rows, cols) for k in range(self.N_LATENT)])
        unit = self.units(self.litho.points(self.N_LATENT, rows, cols))
        values = {}
        for e, name in enumerate(ELEMENTS):
            log = (self.log_mean[e] + self.gain[e] @ latent + self.unit_effect[e, unit]
                   + self.smooth_sd * self.smooth.points(e, rows, cols)
                   + rng.normal(0.0, self.nugget_sd, rows.size))
            values[name] = 10.0 ** log
        return X0 + px, Y0 - py, values


def _srs():
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(EPSG)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


def image_grid(size):
    """The image grid of a square scene of ``size`` pixels."""
    return Grid(X0, Y0, PIXEL, PIXEL, size, size)


def generate(size, scene, folder):
    """Write ``image.tif``, ``samples.gpkg`` and ``coarse.tif`` for ``size`` (cached)."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = folder / "generated.txt"
    if stamp.exists() and stamp.read_text() == GEN_VERSION:
        return
    start = time.perf_counter()
    grid = image_grid(size)
    srs = _srs()
    # image
    tmp = folder / "image.partial.tif"
    ds = gdal.GetDriverByName("GTiff").Create(str(tmp), size, size, 4, gdal.GDT_UInt16,
                                              IMAGE_OPTIONS)
    ds.SetGeoTransform(grid.to_gdal())
    ds.SetProjection(srs.ExportToWkt())
    for b, name in enumerate(("B2", "B3", "B4", "B8")):
        ds.GetRasterBand(b + 1).SetDescription(name)
        ds.GetRasterBand(b + 1).SetNoDataValue(0)
    for row0 in range(0, size, TILE):
        n = min(TILE, size - row0)
        block = scene.image_block(row0, n, size)
        for b in range(4):
            ds.GetRasterBand(b + 1).WriteArray(block[b], 0, row0)
    ds = None
    os.replace(tmp, folder / "image.tif")
    # samples inside the image plus three spacings
    x, y, values = scene.samples()
    margin = 3 * SPACING
    keep = ((x >= grid.x_min - margin) & (x <= grid.x_max + margin)
            & (y >= grid.y_min - margin) & (y <= grid.y_max + margin))
    path = folder / "samples.gpkg"
    if path.exists():
        path.unlink()
    out = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    layer = out.CreateLayer("samples", srs, ogr.wkbPoint)
    layer.CreateField(ogr.FieldDefn("id", ogr.OFTInteger))
    for name in ELEMENTS:
        layer.CreateField(ogr.FieldDefn(name, ogr.OFTReal))
    layer.StartTransaction()
    for i in np.flatnonzero(keep):
        feat = ogr.Feature(layer.GetLayerDefn())
        feat.SetField("id", int(i))
        for name in ELEMENTS:
            feat.SetField(name, float(round(values[name][i], 2)))
        point = ogr.Geometry(ogr.wkbPoint)
        point.AddPoint_2D(float(x[i]), float(y[i]))
        feat.SetGeometry(point)
        layer.CreateFeature(feat)
    layer.CommitTransaction()
    out = None
    # coarse grid for the floor: 500 m cells over the image extent
    factor = int(SPACING / 4 / PIXEL)
    n = -(-size // factor)
    rows = (np.arange(n) + 0.5) * factor - 0.5
    coarse = scene.smooth.points(0, rows[:, None], rows[None, :]).astype(np.float32)
    cds = gdal.GetDriverByName("GTiff").Create(str(folder / "coarse.tif"), n, n, 1,
                                               gdal.GDT_Float32)
    cds.SetGeoTransform((X0, factor * PIXEL, 0.0, Y0, 0.0, -factor * PIXEL))
    cds.SetProjection(srs.ExportToWkt())
    cds.GetRasterBand(1).WriteArray(40.0 + 10.0 * coarse)
    cds = None
    (folder / "n_samples.txt").write_text(str(int(keep.sum())))
    stamp.write_text(GEN_VERSION)
    logger.info("generated %d x %d inputs in %.0f s", size, size, time.perf_counter() - start)


# ----------------------------------------------------------------------------------------
# measured child processes
# ----------------------------------------------------------------------------------------
def _busy_cpu_seconds():
    """CPU seconds all CPUs spent busy since boot (``/proc/stat``), 0 where unavailable."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    ticks = [int(v) for v in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class Run:
    """Wall time, CPU (user + sys) and peak RSS of one child process."""

    def __init__(self, argv, *, env=None, stamp_output=False):
        self.argv = [str(a) for a in argv]
        self.env = env
        self.stamp_output = stamp_output
        self.lines = []  # (seconds since start, text)

    def __call__(self):
        """Run the command, timing it and recording its progress lines."""
        logger.info("running %s", " ".join(self.argv))
        busy = _busy_cpu_seconds()
        start = time.perf_counter()
        proc = subprocess.Popen(self.argv, env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)

        def reader():
            buf = b""
            while True:
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                now = time.perf_counter() - start
                buf += chunk
                # progress comes as "0...10...20..." on one line: split on dots and newlines
                parts = re.split(rb"(\n|\.\.\.)", buf)
                buf = parts.pop()
                for p in parts:
                    text = p.decode(errors="replace").strip()
                    if text and text != "...":
                        self.lines.append((now, text))
            if buf.strip():
                self.lines.append((time.perf_counter() - start, buf.decode(errors="replace")))

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        _, status, usage = os.wait4(proc.pid, 0)
        self.wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        thread.join()
        proc.stdout.close()
        self.cpu = usage.ru_utime + usage.ru_stime
        # CPU time the rest of the machine used meanwhile (other work skews the times)
        self.other = max(0.0, _busy_cpu_seconds() - busy - self.cpu)
        self.rss_gb = usage.ru_maxrss * 1024 / 1e9  # Linux: kilobytes
        self.returncode = proc.returncode
        if self.returncode != 0:
            tail = "\n".join(t for _, t in self.lines[-30:])
            raise RuntimeError(f"{self.argv[0]} failed ({self.returncode}):\n{tail}")
        logger.info("  wall %.1f s, cpu %.1f s, peak RSS %.2f GB", self.wall, self.cpu,
                    self.rss_gb)
        return self

    def longest_silence(self):
        """Longest gap (s) between output lines once the algorithm started, and what ended it."""
        first = next((i for i, (_, text) in enumerate(self.lines) if text == "Inputs"), 0)
        lines = self.lines[first:]
        times = [t for t, _ in lines] + [self.wall]
        gaps = np.diff(times)
        k = int(np.argmax(gaps))
        return float(gaps[k]), lines[k + 1][1] if k + 1 < len(lines) else "the end"


def qgis_exe():
    """Path of ``qgis_process.bin`` (or the wrapper), or an error."""
    exe = shutil.which("qgis_process.bin") or shutil.which("qgis_process")
    if exe is None:
        raise SystemExit("qgis_process.bin not found: run make setup")
    return exe


def qgis_startup():
    """Run ``qgis_process`` once so that its start-up is not timed."""
    qgis_env.qgis_process("help", "geochemfusion:fusegeochemistry")  # enables the plugin once
    return Run([qgis_exe(), "help", "geochemfusion:fusegeochemistry"],
               env=qgis_env.qgis_process_env())()


def floor(folder, size):
    """Time the I/O floor: warp the coarse grid to the image grid and write one band."""
    grid = image_grid(size)
    out = folder / "floor.tif"
    if out.exists():
        out.unlink()
    argv = ["gdalwarp", "-q", "-overwrite", "-r", "cubic", "-tr", PIXEL, PIXEL, "-te",
            grid.x_min, grid.y_min, grid.x_max, grid.y_max]
    for option in GTIFF_OPTIONS:
        argv += ["-co", option]
    run = Run(argv + [folder / "coarse.tif", out])()
    out.unlink()
    return run


def saga(folder):
    """SAGA GIS "GWR for Grid Downscaling" (the peer) on the same image and coarse grid, or None.

    Its inputs (one file per band, as SAGA wants them) are prepared before the
    timed run. It regresses the coarse grid on the bands and writes the regression
    with and without residual correction (uncompressed GeoTIFF, SAGA's default).
    """
    if shutil.which("saga_cmd") is None:
        return None
    work = folder / "saga"
    work.mkdir(exist_ok=True)
    bands = []
    for b in range(1, 5):
        bands.append(work / f"b{b}.tif")
        if not bands[-1].exists():
            gdal.Translate(str(bands[-1]), str(folder / "image.tif"), bandList=[b])
    outputs = {key: work / f"{key.lower()}.tif" for key in
               ("REGRESSION", "REG_RESCORR", "QUALITY", "RESIDUALS")}
    argv = ["saga_cmd", "statistics_regression", "14",
            "-PREDICTORS=" + ";".join(str(b) for b in bands),
            f"-DEPENDENT={folder / 'coarse.tif'}"]
    argv += [f"-{key}={path}" for key, path in outputs.items()]
    run = Run(argv)()
    for path in outputs.values():
        path.unlink()
    return run


def fusion(folder, elements, *, paper=False):
    """The one-click fusion; ``paper``: the paper's chain (MODE=0 paper, FEATURES=0 bands-PC2)."""
    out = folder / f"fused_{len(elements)}.tif"
    argv = [qgis_exe(), "run", "geochemfusion:fusegeochemistry", "--",
            f"SAMPLES={folder / 'samples.gpkg'}", f"IMAGE={folder / 'image.tif'}",
            "REGRESSION=1", f"N_CLUSTERS={N_CLUSTERS}", f"OUTPUT={out}"]
    if paper:
        argv += ["MODE=0", "FEATURES=0"]
    argv += [f"FIELD={e}" for e in elements]
    run = Run(argv, env=qgis_env.qgis_process_env(), stamp_output=True)()
    ds = gdal.Open(str(out))
    if ds.RasterCount != len(elements) or ds.RasterXSize != image_grid(
            int(folder.name)).ncols:
        raise RuntimeError(f"unexpected output {out}: {ds.RasterCount} bands")
    ds = None
    for leftover in (out, Path(str(out) + ".aux.xml")):
        if leftover.exists():
            leftover.unlink()
    return run


def raster_fusion(folder):
    """``regressionfusion`` of the coarse grid (standing for a kriged layer) with the four bands.

    The raster-only chain (coherent mode, local regression with 8 K-means units).
    """
    out, table = folder / "fused_raster.tif", folder / "coefficients.csv"
    argv = [qgis_exe(), "run", "geochemfusion:regressionfusion", "--",
            f"GEOCHEM={folder / 'coarse.tif'}", f"FEATURES={folder / 'image.tif'}",
            "REGRESSION=1", f"N_CLUSTERS={N_CLUSTERS}", f"OUTPUT={out}",
            f"OUTPUT_COEFFICIENTS={table}"]
    run = Run(argv, env=qgis_env.qgis_process_env(), stamp_output=True)()
    ds = gdal.Open(str(out))
    if ds.RasterCount != 1 or ds.RasterXSize != image_grid(int(folder.name)).ncols:
        raise RuntimeError(f"unexpected output {out}")
    ds = None
    for leftover in (out, Path(str(out) + ".aux.xml"), table):
        if leftover.exists():
            leftover.unlink()
    return run


# ----------------------------------------------------------------------------------------
# cancel check (core, in this process)
# ----------------------------------------------------------------------------------------
def check_cancel(folder, after_seconds, *, paper=False):
    """Seconds from the cancel request to the Canceled exception, for each request time.

    ``paper``: the paper mode (bands-PC2), else the default; both through the core's entry
    point, :func:`~geochem_fusion.core.scene.fuse_scene`.
    """
    from geochem_fusion.algorithms import raster_io
    from geochem_fusion.core.progress import Canceled
    from geochem_fusion.core.scene import fuse_scene
    from geochem_fusion.core.vocabulary import FusionSettings, Sinks

    image = raster_io.open_blocks(str(folder / "image.tif"))
    ds = ogr.Open(str(folder / "samples.gpkg"))
    layer = ds.GetLayer(0)
    x, y, cu = [], [], []
    for f in layer:
        g = f.GetGeometryRef()
        x.append(g.GetX())
        y.append(g.GetY())
        cu.append(f.GetField("Cu"))
    results = []
    baseline = threading.active_count()
    for delay in after_seconds:
        out = folder / "cancel.tif"
        out.unlink(missing_ok=True)
        state = {"start": time.perf_counter(), "asked": None, "step": ""}

        def cancel(state=state, delay=delay):
            if time.perf_counter() - state["start"] >= delay:
                if state["asked"] is None:
                    state["asked"] = time.perf_counter()
                return True
            return False

        def progress(fraction, message, state=state):
            if message:
                state["step"] = message

        try:
            with raster_io.WindowedWriter(str(out), image.grid, image.crs_wkt, 1) as writer:
                common = dict(band_names=image.descriptions, regression="local",
                              n_clusters=N_CLUSTERS)
                settings = (FusionSettings(mode="paper", features="bands-pc2", **common)
                            if paper else FusionSettings(**common))
                fuse_scene(np.array(x), np.array(y), {"Cu": np.array(cu)}, image.read,
                           image.grid, settings,
                           Sinks(writer.write, krige_alone=False, progress=progress,
                                 cancel=cancel))
            stopped = None
        except Canceled:
            stopped = time.perf_counter()
        # the cancel is polled between steps: the latency is from the moment it was asked
        # (delay) to the exception, including the time the running step took to reach a poll
        latency = None if stopped is None else stopped - state["start"] - delay
        results.append((delay, latency, state["step"]))
        logger.info("cancel after %.0f s: stopped %.1f s later (during: %s)", delay,
                    latency if latency is not None else float("nan"), state["step"])
        if out.exists():
            if stopped is not None:
                raise RuntimeError(f"a canceled run left {out}")
            out.unlink()
            Path(str(out) + ".aux.xml").unlink(missing_ok=True)
        # a fit canceled while running finishes in its thread: let it, before the next run
        deadline = time.monotonic() + 120
        while threading.active_count() > baseline and time.monotonic() < deadline:
            time.sleep(0.2)
    return results


# ----------------------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------------------
def machine():
    """The machine's CPUs and memory, for the report."""
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs ({cpu}), {mem:.0f} GiB RAM, {platform.platform()}"


def report(rows, startup, cancels, command, path, *, paper_cancels=()):
    """Write ``path`` (markdown) and return its text."""
    lines = [
        "# Scale benchmark (issue 7)",
        "",
        f"Command: `{command}`  ",
        f"Date: {datetime.datetime.now().isoformat(timespec='minutes')}  ",
        f"Machine: {machine()}  ",
        f"GDAL {gdal.__version__}, {qgis_version()}, {saga_version()}",
        "",
        "Inputs (`bench/scale.py` makes them, seeded): a synthetic 4-band uint16 image (tiled "
        "512 x 512, DEFLATE + horizontal predictor), 10 m pixels, UTM 19S, the top-left corner "
        "of one full Sentinel-2 tile for the smaller sizes; samples on a jittered 2 km grid "
        "(3025 over the full tile; for the smaller sizes those inside the image plus 6 km, so "
        "the spacing stays 2 km), five elements. The image is in the page cache (just "
        "written or read) for every run.",
        "",
        "Runs, each one process measured as a whole (wall time, user + system CPU and peak "
        "RSS from `wait4`):",
        "",
        f"- **plugin**: `qgis_process.bin run geochemfusion:fusegeochemistry` with "
        f"REGRESSION=1 (local), N_CLUSTERS={N_CLUSTERS}, the default mode (adaptive) and "
        "features (all bands), FIELD=Cu (1 element) or FIELD=Cu ... FIELD=Co (5 elements): "
        "QGIS start-up, reading the samples, kriging, the model choice and the fused "
        "layer written as a compressed GeoTIFF. QGIS start-up alone (`qgis_process.bin help "
        f"geochemfusion:fusegeochemistry`) takes {startup.wall:.1f} s wall, "
        f"{startup.cpu:.1f} s CPU, {startup.rss_gb:.2f} GB.",
        "- **floor**: `gdalwarp -r cubic` of the 500 m coarse grid (the size of the plugin's "
        "kriging grid) onto the 10 m grid, written with the plugin's creation options ("
        + " ".join(GTIFF_OPTIONS) + "): resampling a coarse layer to the image grid and "
        "writing one compressed float32 band, the I/O-dominated floor of any fusion.",
        "- **SAGA GWR**: SAGA GIS `statistics_regression 14` (GWR for Grid Downscaling, tool "
        "defaults) of the same coarse grid on the four bands, writing the regression with and "
        "without residual correction (uncompressed GeoTIFF). It is given the coarse grid; it "
        "does not krige or choose a model.",
        "- **plugin, paper mode**: the same with MODE=0 (paper, eq. 3) and FEATURES=0 (PC2 of "
        "the bands, the paper's chain): kriging, the feature transform and K-means fitted on "
        "pixel samples, then three passes of row blocks (the Laplacian pyramid streamed down "
        "to its coarsest level, the regression fitted on sampled rows, the detail injected "
        "and written).",
        "- **plugin, regressionfusion**: `qgis_process.bin run geochemfusion:regressionfusion` "
        "of the 500 m coarse grid (standing for a kriged layer) with the four bands as features, "
        "REGRESSION=1 (local), N_CLUSTERS=8, the default coherent mode: the raster-only chain "
        "(K-means on a pixel sample, the same three passes, no kriging).",
        "",
        "| size (px) | samples | run | wall (s) | CPU (s) | peak RSS (GB) | wall / floor "
        "| extra element / first | other CPU (s) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        r["extra"] = (r["five"].wall - r["one"].wall) / 4 / r["one"].wall
        if r["paper one"] is not None:
            r["paper extra"] = ((r["paper five"].wall - r["paper one"].wall) / 4
                                / r["paper one"].wall)
        runs = [("floor (gdalwarp)", r["floor"]), ("SAGA GWR", r["saga"]),
                ("plugin, 1 element", r["one"]), ("plugin, 5 elements", r["five"]),
                ("plugin, paper mode, 1 element", r["paper one"]),
                ("plugin, paper mode, 5 elements", r["paper five"]),
                ("plugin, regressionfusion (rasters)", r.get("raster"))]
        for label, run in runs:
            if run is None:
                continue
            extra = (f"{r['extra']:.2f}" if run is r["five"] else
                     f"{r['paper extra']:.2f}" if run is r["paper five"] else "")
            lines.append(
                f"| {r['size']}² | {r['n_samples']} | {label} | {run.wall:.2f} | {run.cpu:.2f} "
                f"| {run.rss_gb:.2f} | {run.wall / r['floor'].wall:.1f} | {extra} "
                f"| {run.other:.1f} |")
    lines += ["", "*other CPU*: CPU time the rest of the machine used during the run "
              "(`/proc/stat`); well above zero, other work competed for the 2 CPUs and the "
              "times are pessimistic."]
    lines += ["", "Longest time without a line or a progress step from `qgis_process.bin` "
              "once the algorithm has started (1 element; it prints the bar in steps of "
              "2.5 %): " + "; ".join(
                  f"{r['size']}²: {r['silence'][0]:.1f} s (until '{r['silence'][1][:50]}')"
                  for r in rows) + "."]
    if any(r["paper one"] is not None for r in rows):
        lines[-1] += " Paper mode: " + "; ".join(
            f"{r['size']}²: {r['paper silence'][0]:.1f} s (until "
            f"'{r['paper silence'][1][:50]}')" for r in rows if r["paper one"] is not None) + "."
    if cancels:
        lines += ["", "Cancel: the core `fuse_scene` (1 element, image read with GDAL block by "
                  "block) on the largest size, with a cancel callback that turns true t seconds "
                  "after the start; latency = from t to the `Canceled` exception: " + "; ".join(
                      f"t = {d:.0f} s: {lat:.2f} s (during '{step[:40]}')"
                      if lat is not None else f"t = {d:.0f} s: finished first"
                      for d, lat, step in cancels) + "."]
    if paper_cancels:
        lines += ["", "The same for the paper mode (`fuse_pyramid_scene`, bands-PC2): " + "; ".join(
            f"t = {d:.0f} s: {lat:.2f} s (during '{step[:40]}')"
            if lat is not None else f"t = {d:.0f} s: finished first"
            for d, lat, step in paper_cancels) + "."]
    lines += ["", "## Targets", ""]
    full = [r for r in rows if r["size"] == FULL]
    if full:
        r = full[0]
        one = r["one"]
        ratio = one.wall / r["floor"].wall
        lines.append(
            f"- Full tile, 1 element, whole process: peak RSS {one.rss_gb:.2f} GB (target "
            f"<= {TARGET_RSS_GB:g} GB: {'met' if one.rss_gb <= TARGET_RSS_GB else 'MISSED'}); "
            f"wall {one.wall:.1f} s = {ratio:.1f} x the floor measured in the same run "
            f"(target <= {TARGET_RATIO:g} x: {'met' if ratio <= TARGET_RATIO else 'MISSED'}).")
        paper = r["paper one"]
        if paper is not None:
            ratio = paper.wall / r["floor"].wall
            lines.append(
                f"- The same in the paper mode: peak RSS {paper.rss_gb:.2f} GB "
                f"({'met' if paper.rss_gb <= TARGET_RSS_GB else 'MISSED'}); wall {paper.wall:.1f} "
                f"s = {ratio:.1f} x the floor "
                f"({'met' if ratio <= TARGET_RATIO else 'MISSED'}).")
        raster = r.get("raster")
        if raster is not None:
            ratio = raster.wall / r["floor"].wall
            lines.append(
                f"- `regressionfusion` on the full tile: peak RSS {raster.rss_gb:.2f} GB "
                f"({'met' if raster.rss_gb <= TARGET_RSS_GB else 'MISSED'}); wall "
                f"{raster.wall:.1f} s = {ratio:.1f} x the floor "
                f"({'met' if ratio <= TARGET_RATIO else 'MISSED'}).")
    else:
        lines.append("- Full tile not run (run the default sizes for the main target).")
    worst = max(r["extra"] for r in rows)
    lines.append(f"- Each additional element: at most {worst:.2f} x the first over the sizes run "
                 f"(target <= {TARGET_EXTRA:g}: {'met' if worst <= TARGET_EXTRA else 'MISSED'}).")
    papers = [r["paper extra"] for r in rows if r["paper one"] is not None]
    if papers:
        lines.append(f"- In the paper mode: at most {max(papers):.2f} x the first "
                     f"({'met' if max(papers) <= TARGET_EXTRA else 'MISSED'}).")
    peers = [(r["size"], r["one"].wall, r["saga"].wall) for r in rows if r["saga"] is not None]
    if peers:
        fastest = all(one < other for _, one, other in peers)
        lines.append("- Fastest tool: the plugin (1 element, QGIS start-up included) vs SAGA GWR: "
                     + "; ".join(f"{size}²: {one:.1f} s vs {other:.1f} s"
                                 for size, one, other in peers)
                     + f" ({'met' if fastest else 'MISSED'}).")
    if len(rows) > 1:
        a, b = rows[0], rows[-1]
        lines.append(
            f"- Memory: from {a['size']}² to {b['size']}² the image grows "
            f"{(b['size'] / a['size']) ** 2:.0f} x; the plugin's peak RSS goes from "
            f"{a['one'].rss_gb:.2f} to {b['one'].rss_gb:.2f} GB (1 element) and from "
            f"{a['five'].rss_gb:.2f} to {b['five'].rss_gb:.2f} GB (5 elements). Row blocks hold "
            "a fixed number of pixels (about 1 M; two are computed at once), and the image is "
            "read and the output written by strips of tiles with GDAL's cache emptied after "
            "each, so memory follows the block, not the image; what still grows is what scales "
            "with the image width (the strips: 512 input rows, 256 output rows) and with the "
            "number of samples (the kriging systems of the fits).")
        if a["paper one"] is not None and b["paper one"] is not None:
            lines.append(
                f"- Memory in the paper mode: {a['paper one'].rss_gb:.2f} to "
                f"{b['paper one'].rss_gb:.2f} GB (1 element), {a['paper five'].rss_gb:.2f} to "
                f"{b['paper five'].rss_gb:.2f} GB (5 elements). The pyramid is streamed: the "
                "first pass keeps only the coarsest level (2**levels times smaller per axis) "
                "and a few rows per level, the later passes expand it block by block.")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return "\n".join(lines)


def qgis_version():
    """The QGIS version ``qgis_process`` reports."""
    out = subprocess.run([qgis_exe(), "--version"], capture_output=True, text=True,
                         env=qgis_env.qgis_process_env())
    text = " ".join(out.stdout.split())
    match = re.search(r"QGIS (\S+)", text)
    return f"QGIS {match.group(1)}" if match else "QGIS"


def saga_version():
    """The SAGA GIS version, or None when it is not installed."""
    if shutil.which("saga_cmd") is None:
        return "SAGA GIS not installed (its rows are left out)"
    out = subprocess.run(["saga_cmd", "--version"], capture_output=True, text=True)
    match = re.search(r"SAGA Version: (\S+)", out.stdout + out.stderr)
    return f"SAGA GIS {match.group(1)}" if match else "SAGA GIS"


def main(argv=None):
    """Command line entry point."""
    logging.basicConfig(format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logger.setLevel(logging.INFO)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)),
                        help="image sizes (pixels per side), comma-separated; at most 10980")
    parser.add_argument("--output", type=Path, default=RESULTS / "scale.md")
    parser.add_argument("--no-cancel-check", action="store_true",
                        help="leave out the cancel check (the core canceled at 2, 6 and 15 s on "
                             "the largest size)")
    parser.add_argument("--no-saga", action="store_true",
                        help="leave out SAGA GIS GWR for Grid Downscaling (the peer)")
    parser.add_argument("--no-paper", action="store_true",
                        help="leave out the paper mode (MODE=0, bands-PC2) runs")
    parser.add_argument("--generate-only", action="store_true")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    if not sizes or sizes[0] < 256 or sizes[-1] > FULL:
        raise SystemExit(f"sizes must be between 256 and {FULL}, got {args.sizes}")
    scene = Scene()
    for size in sizes:
        generate(size, scene, WORK / str(size))
    if args.generate_only:
        return
    startup = qgis_startup()
    rows = []
    for size in sizes:
        folder = WORK / str(size)
        row = {"size": size, "n_samples": int((folder / "n_samples.txt").read_text())}
        row["floor"] = floor(folder, size)
        row["saga"] = None if args.no_saga else saga(folder)
        row["one"] = fusion(folder, ELEMENTS[:1])
        row["five"] = fusion(folder, ELEMENTS)
        row["silence"] = row["one"].longest_silence()
        row["paper one"] = row["paper five"] = None
        if not args.no_paper:
            row["paper one"] = fusion(folder, ELEMENTS[:1], paper=True)
            row["paper five"] = fusion(folder, ELEMENTS, paper=True)
            row["paper silence"] = row["paper one"].longest_silence()
        row["raster"] = raster_fusion(folder)
        rows.append(row)
    cancels = paper_cancels = []
    if not args.no_cancel_check:
        cancels = check_cancel(WORK / str(sizes[-1]), (2, 6, 15))
        if not args.no_paper:
            paper_cancels = check_cancel(WORK / str(sizes[-1]), (2, 8, 20), paper=True)
    command = "python bench/scale.py " + " ".join(sys.argv[1:] if argv is None else argv)
    if os.environ.get("MAKELEVEL"):
        command = f"make bench-scale (runs {command.strip()})"
    text = report(rows, startup, cancels, command.strip(), args.output,
                  paper_cancels=paper_cancels)
    print(text)  # noqa: T201 (the benchmark's output)


if __name__ == "__main__":
    main()
