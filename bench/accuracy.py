"""Accuracy benchmark on real data (issue 6): ``make bench-accuracy``.

Scores, side by side in one run, kriging alone, the paper's fusion (global and
local), the ``coherent`` mode, the product's default and the peers a user
would otherwise reach for (PyKrige regression kriging, SAGA GIS "GWR for Grid
Downscaling" with and without residual correction), on two real data sets in
``../shared/data`` (the script exits with a message when it is absent).

Protocol 1 -- real Sentinel-2 (``dsen2``, both scenes)
    Target: B11 and B12 at 20 m (real SWIR). A survey is simulated on a
    jittered grid of spacing S = 320 m and 640 m: one point per S x S cell,
    at the cell centre moved by a uniform offset of at most S/4 in x and in y
    (fixed seed), snapped to the nearest 20 m pixel corner; its value is the
    mean of the target in the 40 m window (2 x 2 pixels of 20 m) around it.
    The fusion gets those points plus the 10 m bands B02, B03, B04, B08 as the
    image (reflectance = DN / 10 000, an arbitrary UTM-like geotransform).
    Score: the fused 10 m layer block-averaged by 2 to 20 m against the real
    20 m band, away from a border of 2·S: CC, RMSE (reflectance), SSIM.
    Consistency (Wald): the fused layer and the kriged input layer (kriging
    alone, cubic-resampled to 10 m) are both block-averaged to the survey
    support (S x S blocks) and compared (CC, RMSE) away from the same border;
    RMSE 0 means the method keeps the survey's information at its own support.
    Consistency is not accuracy (the kriged layer is very smooth): both are
    reported.

Protocol 2 -- real till geochemistry (``kolari``)
    Cu, Ni, Co, Fe (log10; values <= 0 replaced by half the element's smallest
    positive value) from 1112 regional till samples; the image is the airborne
    geophysics at 100 m: 9 layers (K, eTh, eU, total count, magnetic anomaly,
    AEM in-phase, quadrature, log10 apparent resistivity, ratio; ``AEM_1`` is
    left out: it is the in-phase clipped at 0, r = 0.96), aligned by bilinear
    warping onto the magnetic grid, a pixel valid only where all 9 are, each
    layer standardized. Spatial block cross-validation: 10 km blocks, blocks
    shuffled (fixed seed) into 5 folds; each fold is predicted by the method
    fitted on the other folds, read at the held-out samples by bilinear
    interpolation of the fine layer (nearest pixel where a neighbour is
    nodata). RMSE and CC in log10 units, pooled over folds, at the held-out
    samples on valid image pixels. Success-rate AUC
    (:func:`~geochem_fusion.core.metrics.success_rate_auc`) of each method's
    full-data layer over the valid image pixels for the known deposits that
    fall inside the image.

Methods are pluggable: :data:`METHODS` maps a name to
``callable(x, y, values, image, image_grid, *, element_info) -> ndarray``
(the fused layer on ``image_grid``). A method raises :class:`NotApplicable`
to be left out of a protocol. :func:`product_default` at the top is the
product's default; replace it when the default changes.

Run ``python bench/accuracy.py --help`` for the options (``--quick``,
``--only``, ``--protocol``, ``--jobs``, ``--report-only``). Per-(case, method)
results are kept in ``bench/work/accuracy.json`` so that ``--only METHOD``
reruns merge with the others.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import logging
import math
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = (REPO / ".." / "shared" / "data").resolve()
WORK = REPO / "bench" / "work"
RESULTS = REPO / "bench" / "results"
CACHE_FILE = WORK / "accuracy.json"

# The repository root is the package ``geochem_fusion``: import it through the
# same symlink the tests use (tools/qgis_env.link_package), never through the folder name.
sys.path.insert(0, str(REPO / "tools"))
from qgis_env import link_package  # noqa: E402

sys.path.insert(0, str(link_package()))

from geochem_fusion.core import metrics  # noqa: E402
from geochem_fusion.core.blocks import array_reader  # noqa: E402
from geochem_fusion.core.features import fit_image_model  # noqa: E402
from geochem_fusion.core.grid import Grid  # noqa: E402
from geochem_fusion.core.kriging import OrdinaryKrigingModel  # noqa: E402
from geochem_fusion.core.pipeline import fuse_raster, fuse_samples  # noqa: E402
from geochem_fusion.core.resample import resample_cubic  # noqa: E402
from geochem_fusion.core.samples import median_nn_spacing  # noqa: E402
from geochem_fusion.core.vocabulary import (  # noqa: E402
    SAMPLE_SIZE,
    FusionSettings,
    kriging_grid,
)

logger = logging.getLogger("bench.accuracy")

SEED = 0
NOTES = []  # lines added to the report by this invocation
N_CLUSTERS = 5  # K-means units of the local regression (fuse_samples' default)
#: Variogram of every ordinary kriging here (kriging alone, the paper/coherent
#: chain, SAGA's input): fuse_samples' default, so that kriging alone is the
#: kriging the product itself would do.
VARIOGRAM = FusionSettings().variogram


# ===========================================================================
# PRODUCT DEFAULT -- the lead replaces this function when the default changes.
# ===========================================================================
def product_default(x, y, values, image, image_grid, *, element_info):
    """The product's default: :func:`fuse_samples` with every setting left at its default."""
    res = fuse_samples(x, y, {element_info.name: values}, image, image_grid,
                       FusionSettings(band_names=element_info.band_names,
                                      random_state=element_info.seed))
    return res.elements[element_info.name].fusion.fused


# ===========================================================================
# method plumbing
# ===========================================================================
class NotApplicable(Exception):
    """Raised by a method that does not apply to a protocol (row left out)."""


@dataclass
class ElementInfo:
    """What a method may know about the case besides the samples and the image.

    Attributes
    ----------
    protocol : {"sentinel2", "kolari"}
    name : str
        Target band or element ("B11", "Cu").
    band_names : list of str
        Names of the image bands.
    log10 : bool
        The values are already log10 (Kolari); fuse them as they are.
    seed : int
        Seed for anything random.
    cache : dict
        Shared by the methods for one sample set (one case, one fold): holds
        the kriging so that it is computed once. Methods may add to it.
    image_cache : dict
        Shared by every sample set on the same image (image features, K-means
        units).
    """

    protocol: str
    name: str
    band_names: list
    log10: bool = False
    seed: int = SEED
    cache: dict = field(default_factory=dict)
    image_cache: dict = field(default_factory=dict)


def _kriged(x, y, values, image_grid, info):
    """Ordinary kriging (:data:`VARIOGRAM`) on the pipeline's coarse grid, cached.

    Returns ``(estimate on the kriging grid, kriging grid, estimate resampled
    by cubic convolution to the image grid)``. Same kriging as
    :func:`fuse_samples` (grid from the median nearest-neighbour spacing).
    """
    if "kriging" not in info.cache:
        spacing = median_nn_spacing(x, y)
        kgrid = kriging_grid(image_grid, spacing)
        model = OrdinaryKrigingModel(VARIOGRAM).fit(x, y, values)
        est = model.krige_grid(kgrid).estimate
        info.cache["kriging"] = (est, kgrid, resample_cubic(est, kgrid, image_grid))
    return info.cache["kriging"]


def kriging_alone(x, y, values, image, image_grid, *, element_info):
    """Ordinary kriging on the coarse grid, cubic-resampled to the image grid."""
    return _kriged(x, y, values, image_grid, element_info)[2]


def _image_model(image, image_grid, features, info):
    """The feature transform and K-means units exactly as :func:`fuse_samples` fits them.

    (:func:`~geochem_fusion.core.features.fit_image_model` on pixels from random windows),
    applied to the whole image; cached for the image. Returns ``(features, units)``.
    """
    key = ("image model", features)
    if key not in info.image_cache:
        transform, kmeans, _ = fit_image_model(
            array_reader(image), image_grid, FusionSettings(
                features=features, band_names=info.band_names, regression="local",
                n_clusters=N_CLUSTERS, sample_size=SAMPLE_SIZE, random_state=info.seed))
        data = transform.transform(image)
        info.image_cache[key] = (data, kmeans.predict(data))
    return info.image_cache[key]


def _fusion(mode, regression, features="bands"):
    """A method running the chain of :func:`fuse_samples` with fixed settings.

    It is :func:`fuse_samples` taken apart so that the kriging (the same for
    every method on one sample set) and the image features and K-means units
    (the same for every sample set on one image) are computed once:
    :func:`check_equivalence` verifies that it gives fuse_samples' result.
    """
    def method(x, y, values, image, image_grid, *, element_info):
        if features != "bands" and element_info.protocol != "sentinel2":
            raise NotApplicable("PC2 of the bands is run on Sentinel-2 only")
        est, kgrid, _ = _kriged(x, y, values, image_grid, element_info)
        feats, units = _image_model(image, image_grid, features, element_info)
        labels = units if regression == "local" else None
        res, _, _ = fuse_raster(est, kgrid, feats, image_grid,
                                FusionSettings(mode=mode, regression=regression,
                                               random_state=element_info.seed),
                                sample_spacing=median_nn_spacing(x, y), labels=labels)
        return res.fused
    method.__doc__ = f"fuse_samples(features={features!r}, mode={mode!r}, regression={regression!r})"
    method.settings = dict(features=features, mode=mode, regression=regression)
    return method


def check_equivalence(x, y, values, image, image_grid, info, name="coherent local"):
    """Largest difference between a :func:`_fusion` method and :func:`fuse_samples` itself."""
    # own kriging cache, so that the methods' times are not lowered by this check
    fresh = ElementInfo(info.protocol, info.name, info.band_names, log10=info.log10,
                        seed=info.seed, image_cache=info.image_cache)
    mine = METHODS[name](x, y, values, image, image_grid, element_info=fresh)
    res = fuse_samples(x, y, {info.name: values}, image, image_grid,
                       FusionSettings(band_names=info.band_names, random_state=info.seed,
                                      n_clusters=N_CLUSTERS, variogram=VARIOGRAM,
                                      **METHODS[name].settings))
    ref = res.elements[info.name].fusion.fused
    if not np.array_equal(np.isnan(mine), np.isnan(ref)):
        return float("inf")
    return float(np.nanmax(np.abs(mine - ref)))


def _pixel_values(image, image_grid, x, y):
    """Image bands at the pixel containing each point, ``(n, bands)`` (NaN outside)."""
    col = np.floor((np.asarray(x) - image_grid.x_min) / image_grid.cell_x).astype(int)
    row = np.floor((image_grid.y_max - np.asarray(y)) / image_grid.cell_y).astype(int)
    inside = (col >= 0) & (col < image_grid.ncols) & (row >= 0) & (row < image_grid.nrows)
    out = np.full((col.size, image.shape[0]), np.nan)
    out[inside] = image[:, row[inside], col[inside]].T
    return out


#: Krige the regression-kriging residuals at every fine pixel (slow) instead of
#: on the coarse kriging grid followed by cubic resampling. Set by --rk-pixelwise.
RK_PIXELWISE = False


def regression_kriging(x, y, values, image, image_grid, *, element_info):
    """PyKrige ``RegressionKriging``: linear model on the image at the points + kriged residuals.

    Fitted with ``p`` = all image bands at the pixel containing each sample
    (samples on nodata pixels are left out), spherical variogram, a moving
    window of 32 samples. The regression part is predicted at every pixel;
    the kriged residual is predicted on the pipeline's coarse kriging grid and
    cubic-resampled (the treatment kriging alone gets), or at every pixel
    centre with ``--rk-pixelwise``.
    """
    from pykrige.rk import RegressionKriging
    from sklearn.linear_model import LinearRegression

    p = _pixel_values(image, image_grid, x, y)
    ok = np.isfinite(p).all(axis=1) & np.isfinite(values)
    rk = RegressionKriging(regression_model=LinearRegression(), variogram_model="spherical",
                           n_closest_points=32)
    with contextlib.redirect_stdout(io.StringIO()):  # PyKrige prints progress
        rk.fit(p[ok], np.column_stack([x[ok], y[ok]]), values[ok])
    pix = image.reshape(image.shape[0], -1).T
    valid = np.isfinite(pix).all(axis=1)
    out = np.full(pix.shape[0], np.nan)
    out[valid] = rk.regression_model.predict(pix[valid])
    if RK_PIXELWISE:
        xc, yc = np.meshgrid(image_grid.x_centers(), image_grid.y_centers())
        pts = np.column_stack([xc.ravel(), yc.ravel()])[valid]
        resid = np.empty(pts.shape[0])
        step = 50_000  # bounded memory: one chunk of points per PyKrige call
        for start in range(0, pts.shape[0], step):
            with contextlib.redirect_stdout(io.StringIO()):
                resid[start:start + step] = rk.krige_residual(pts[start:start + step])
        out[valid] += resid
    else:
        kgrid = kriging_grid(image_grid, median_nn_spacing(x, y))
        xc, yc = np.meshgrid(kgrid.x_centers(), kgrid.y_centers())
        with contextlib.redirect_stdout(io.StringIO()):
            resid = rk.krige_residual(np.column_stack([xc.ravel(), yc.ravel()]))
        out += resample_cubic(np.asarray(resid).reshape(kgrid.shape), kgrid, image_grid).ravel()
    return out.reshape(image_grid.shape)


def _saga(x, y, values, image, image_grid, info):
    """Run SAGA "GWR for Grid Downscaling" once; cache both of its outputs.

    Dependent: the kriged layer on the coarse kriging grid; predictors: the
    image bands. Tool defaults otherwise (local search range of 10 coarse
    cells, no distance weighting). SAGA needs square cells: the grids are
    written with square cells of the image pixel height, the coarse grid
    aligned with it exactly as in reality (only the x scale of a non-square
    image like Kolari's 99.93 x 100 m changes, identically for both).
    """
    if "saga" in info.cache:
        return info.cache["saga"]
    from osgeo import gdal

    if shutil.which("saga_cmd") is None:
        raise RuntimeError("SAGA GIS is not installed (saga_cmd not found; `apt-get install saga`)")
    est, kgrid, _ = _kriged(x, y, values, image_grid, info)
    factor = int(round(kgrid.cell_x / image_grid.cell_x))
    pad_c = int(round((image_grid.x_min - kgrid.x_min) / kgrid.cell_x))
    pad_r = int(round((kgrid.y_max - image_grid.y_max) / kgrid.cell_y))
    cell = image_grid.cell_y
    nodata = -99999.0
    drv = gdal.GetDriverByName("GTiff")

    def write(path, arr, x0, y0, c):
        ds = drv.Create(str(path), arr.shape[1], arr.shape[0], 1, gdal.GDT_Float32)
        ds.SetGeoTransform((x0, c, 0.0, y0, 0.0, -c))
        band = ds.GetRasterBand(1)
        band.SetNoDataValue(nodata)
        band.WriteArray(np.where(np.isfinite(arr), arr, nodata).astype(np.float32))
        ds = None

    def read(path):
        ds = gdal.Open(str(path))
        band = ds.GetRasterBand(1)
        arr = band.ReadAsArray().astype(np.float64)
        nd = band.GetNoDataValue()
        if nd is not None:
            arr[arr == nd] = np.nan
        if arr.shape != image_grid.shape:
            raise RuntimeError(f"SAGA wrote {arr.shape}, expected {image_grid.shape}")
        return arr

    with tempfile.TemporaryDirectory(prefix="saga_", dir=WORK) as tmp:
        tmp = Path(tmp)
        preds = []
        for i, band in enumerate(image):
            preds.append(tmp / f"p{i}.tif")
            write(preds[-1], band, image_grid.x_min, image_grid.y_max, cell)
        write(tmp / "dep.tif", est, image_grid.x_min - pad_c * factor * cell,
              image_grid.y_max + pad_r * factor * cell, factor * cell)
        cmd = ["saga_cmd", "statistics_regression", "14",
               "-PREDICTORS=" + ";".join(str(p) for p in preds),
               f"-DEPENDENT={tmp / 'dep.tif'}", f"-REGRESSION={tmp / 'reg.tif'}",
               f"-REG_RESCORR={tmp / 'regrc.tif'}", f"-QUALITY={tmp / 'q.tif'}",
               f"-RESIDUALS={tmp / 'res.tif'}"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not (tmp / "regrc.tif").exists():
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-5:]
            raise RuntimeError(f"saga_cmd failed (exit {proc.returncode}): {' | '.join(tail)}")
        info.cache["saga"] = (read(tmp / "reg.tif"), read(tmp / "regrc.tif"))
    return info.cache["saga"]


def saga_gwr(x, y, values, image, image_grid, *, element_info):
    """SAGA GWR for Grid Downscaling, regression only."""
    return _saga(x, y, values, image, image_grid, element_info)[0]


def saga_gwr_rc(x, y, values, image, image_grid, *, element_info):
    """SAGA GWR for Grid Downscaling with its residual correction."""
    return _saga(x, y, values, image, image_grid, element_info)[1]


#: name -> callable(x, y, values, image, image_grid, *, element_info) -> fused layer.
METHODS = {
    "kriging alone": kriging_alone,
    "paper global": _fusion("paper", "global"),
    "paper local": _fusion("paper", "local"),
    "coherent global": _fusion("coherent", "global"),
    "coherent local": _fusion("coherent", "local"),
    "paper global PC2": _fusion("paper", "global", "bands-pc2"),
    "paper local PC2": _fusion("paper", "local", "bands-pc2"),
    "coherent global PC2": _fusion("coherent", "global", "bands-pc2"),
    "coherent local PC2": _fusion("coherent", "local", "bands-pc2"),
    "product default": product_default,
    "regression kriging": regression_kriging,
    "SAGA GWR": saga_gwr,
    "SAGA GWR + residual corr.": saga_gwr_rc,
}
#: The peers the product default must beat (Sentinel-2 target of the issue).
PEERS = ["kriging alone", "SAGA GWR", "SAGA GWR + residual corr.", "regression kriging"]
DEFAULT = "product default"
BASELINE = "kriging alone"


def run_method(name, x, y, values, image, grid, info):
    """Call one method; returns ``(layer or None, seconds, status)``."""
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            layer = METHODS[name](x, y, values, image, grid, element_info=info)
    except NotApplicable as exc:
        return None, 0.0, f"n/a: {exc}"
    except Exception as exc:  # a failing peer must not stop the benchmark
        logger.exception("%s failed", name)
        return None, time.perf_counter() - t0, f"failed: {type(exc).__name__}: {exc}"
    layer = np.asarray(layer, dtype=np.float64)
    if layer.shape != grid.shape:
        return None, time.perf_counter() - t0, f"failed: returned {layer.shape}, not {grid.shape}"
    return layer, time.perf_counter() - t0, "ok"


# ===========================================================================
# protocol 1: Sentinel-2
# ===========================================================================
S2_SCENES = ("S2B_MSIL1C_20171022_T49JGM", "S2A_MSIL1C_20170527_T33UUB")
S2_BANDS = ("B11", "B12")
S2_SPACINGS = (320, 640)


def survey_points(shape20, spacing, seed):
    """Jittered-grid survey on a 20 m target: ``(x, y, rows, cols)`` of the 20 m pixel corners.

    One point per ``spacing`` cell of the scene, at the cell centre moved by a
    uniform offset of at most ``spacing/4`` per axis, snapped to the nearest
    20 m pixel corner away from the scene edge. ``x``/``y`` are metres from
    the top-left corner (y downwards, made map coordinates by the caller).
    """
    rng = np.random.default_rng([seed, spacing])
    height, width = shape20[0] * 20.0, shape20[1] * 20.0
    cx = np.arange(spacing / 2.0, width, spacing)
    cy = np.arange(spacing / 2.0, height, spacing)
    gx, gy = np.meshgrid(cx, cy)
    gx = gx + rng.uniform(-spacing / 4.0, spacing / 4.0, gx.shape)
    gy = gy + rng.uniform(-spacing / 4.0, spacing / 4.0, gy.shape)
    cols = np.clip(np.round(gx / 20.0), 1, shape20[1] - 1).astype(int).ravel()
    rows = np.clip(np.round(gy / 20.0), 1, shape20[0] - 1).astype(int).ravel()
    return cols * 20.0, rows * 20.0, rows, cols


def window_mean(target, rows, cols):
    """Mean of the 2 x 2 pixels (40 m) around each pixel corner ``(rows, cols)``."""
    return (target[rows - 1, cols - 1] + target[rows - 1, cols]
            + target[rows, cols - 1] + target[rows, cols]) / 4.0


def s2_cases(quick):
    """The Sentinel-2 cases (scene, band) of the protocol (one scene with ``quick``)."""
    scenes = S2_SCENES[:1] if quick else S2_SCENES
    bands = S2_BANDS[:1] if quick else S2_BANDS
    spacings = (640,) if quick else S2_SPACINGS
    return [(sc, b, s) for sc in scenes for b in bands for s in spacings]


def run_s2(methods, quick, seed, store):
    """Run every method on every Sentinel-2 case; scores go to ``store``."""
    x0, y0 = 500_000.0, 7_000_000.0  # arbitrary UTM-like origin
    loaded, image_caches, first = {}, {}, True
    for scene, band, spacing in s2_cases(quick):
        if scene not in loaded:
            d = np.load(DATA / "dsen2" / f"{scene}.npz")
            loaded[scene] = (d["im10"].astype(np.float64) / 1e4, d["im20"].astype(np.float64) / 1e4,
                             [str(b) for b in d["bands10"]], [str(b) for b in d["bands20"]])
        im10, im20, names10, names20 = loaded[scene]
        target = im20[names20.index(band)]
        grid = Grid(x0, y0, 10.0, 10.0, im10.shape[2], im10.shape[1])
        px, py, rows, cols = survey_points(target.shape, spacing, seed)
        x, y = x0 + px, y0 - py
        values = window_mean(target, rows, cols)
        info = ElementInfo("sentinel2", band, names10, seed=seed,
                           image_cache=image_caches.setdefault(scene, {}))
        case = f"{scene.split('_')[-1]} {band} S={spacing}"
        logger.info("Sentinel-2 %s: %d survey points", case, x.size)
        if first:
            _equivalence_note("Sentinel-2 " + case, methods, x, y, values, im10, grid, info)
            first = False
        border20 = int(round(2 * spacing / 20.0))
        factor_s = int(round(spacing / 10.0))
        border_s = 2
        truth = target[border20:-border20, border20:-border20]
        records, at_s = {}, {}
        for name in methods:
            layer, secs, status = run_method(name, x, y, values, im10, grid, info)
            if status.startswith("n/a"):
                continue
            rec = records[name] = {"status": status, "seconds": round(secs, 2),
                                   "n_points": int(x.size)}
            if layer is not None:
                fused20 = metrics.block_average(layer, 2)[border20:-border20, border20:-border20]
                at_s[name] = metrics.block_average(layer, factor_s)[border_s:-border_s,
                                                                    border_s:-border_s]
                rec.update(cc=metrics.pearson_cc(fused20, truth), rmse=metrics.rmse(fused20, truth),
                           ssim=metrics.ssim(fused20, truth))
        # consistency: against the kriged input (kriging alone), both at the survey support
        kriged = _kriged(x, y, values, grid, info)[2]
        ref_s = metrics.block_average(kriged, factor_s)[border_s:-border_s, border_s:-border_s]
        for name, rec in records.items():
            if name in at_s:
                rec.update(cons_cc=metrics.pearson_cc(at_s[name], ref_s),
                           cons_rmse=metrics.rmse(at_s[name], ref_s))
            store.put("sentinel2", case, name, rec)
            logger.info("  %-28s %s", name, _fmt_rec(rec))


def _equivalence_note(where, methods, x, y, values, image, grid, info):
    """Check once that the cached fusion chain equals fuse_samples; note the result."""
    if "coherent local" not in methods:
        return
    diff = check_equivalence(x, y, values, image, grid, info)
    scale = float(np.nanmax(np.abs(values)))
    ok = diff <= 1e-9 * scale
    NOTES.append(f"Equivalence check ({where}): the cached chain of the paper/coherent rows vs "
                 f"`fuse_samples` itself (coherent local): max |difference| = {diff:.3g} — "
                 + ("identical to rounding." if ok else "**DIFFERENT: the paper/coherent rows do "
                    "not reproduce fuse_samples; fix `_fusion` in bench/accuracy.py.**"))
    if not ok:
        logger.warning(NOTES[-1])


# ===========================================================================
# protocol 2: Kolari till geochemistry
# ===========================================================================
KOLARI_ELEMENTS = ("Cu", "Ni", "Co", "Fe")
KOLARI_LAYERS = {  # file stem -> short name; AEM_1 (in-phase clipped at 0) left out
    "IOCG_Gm_Rd_K__100m": "K",
    "IOCG_Gm_Rd_Th_eq__100m": "eTh",
    "IOCG_Gm_Rd_U_eq__100m": "eU",
    "IOCG_Gm_Rd_Total_Count__100m": "TC",
    "IOCG_Mag_grysc_DGRF65_anom__100m": "Mag",
    "IOCG_AEM_Inph__100m": "AEM in-phase",
    "IOCG_AEM_Quad_100m": "AEM quadrature",
    "IOCG_App_res_100m": "log10 app. resistivity",
    "IOCG_EM_ratio_100m": "AEM ratio",
}
REFERENCE_LAYER = "IOCG_Mag_grysc_DGRF65_anom__100m"
BLOCK = 10_000.0
N_FOLDS = 5


def load_kolari():
    """Standardized geophysics stack, its grid, samples (log10) and deposit pixels."""
    from osgeo import gdal, ogr

    gdal.UseExceptions()
    root = DATA / "kolari"
    ref = gdal.Open(str(root / f"{REFERENCE_LAYER}.tif"))
    gt = ref.GetGeoTransform()
    grid = Grid.from_gdal(gt, (ref.RasterYSize, ref.RasterXSize))
    layers, names = [], []
    for stem, short in KOLARI_LAYERS.items():
        src = gdal.Open(str(root / f"{stem}.tif"))
        warped = gdal.Warp("", src, format="MEM", outputBounds=grid.extent, width=grid.ncols,
                           height=grid.nrows, resampleAlg="bilinear", dstNodata=np.nan,
                           outputType=gdal.GDT_Float64)
        arr = warped.GetRasterBand(1).ReadAsArray().astype(np.float64)
        if short.startswith("log10"):
            arr = np.log10(np.clip(arr, 1.0, None))
        layers.append(arr)
        names.append(short)
    image = np.stack(layers)
    valid = np.isfinite(image).all(axis=0)
    image[:, ~valid] = np.nan
    for band in image:
        band -= np.nanmean(band)
        band /= np.nanstd(band)

    ds = ogr.Open(str(root / "vectors" / "IOCG_CLB_Till_Geochem_reg_511p.gpkg"))
    layer = ds.GetLayer(0)
    xs, ys, vals = [], [], {e: [] for e in KOLARI_ELEMENTS}
    for feat in layer:
        geom = feat.GetGeometryRef()
        xs.append(geom.GetX())
        ys.append(geom.GetY())
        for e in KOLARI_ELEMENTS:
            v = feat.GetField(f"{e}_ppm_511")
            vals[e].append(np.nan if v is None else float(v))
    x, y = np.asarray(xs), np.asarray(ys)
    logv = {}
    for e, v in vals.items():
        v = np.asarray(v)
        floor = 0.5 * np.nanmin(v[v > 0])
        logv[e] = np.log10(np.where(v > 0, v, floor))

    deps_ds = ogr.Open(str(root / "vectors" / "IOCG_Deps_Prosp_Occs_2.shp"))  # keep alive
    dx, dy = [], []
    for feat in deps_ds.GetLayer(0):
        geom = feat.GetGeometryRef()
        dx.append(geom.GetX())
        dy.append(geom.GetY())
    dx, dy = np.asarray(dx), np.asarray(dy)
    col = np.floor((dx - grid.x_min) / grid.cell_x).astype(int)
    row = np.floor((grid.y_max - dy) / grid.cell_y).astype(int)
    inside = (col >= 0) & (col < grid.ncols) & (row >= 0) & (row < grid.nrows)
    deposits = (row[inside], col[inside], int(dx.size))
    return image, grid, names, valid, x, y, logv, deposits


def block_folds(x, y, seed):
    """Fold (0..4) of each sample: 10 km blocks shuffled with a fixed seed, dealt round-robin."""
    bx = np.floor((x - x.min()) / BLOCK).astype(int)
    by = np.floor((y - y.min()) / BLOCK).astype(int)
    block = bx * 10_000 + by
    uniq = np.unique(block)
    order = np.random.default_rng(seed).permutation(uniq.size)
    fold_of_block = dict(zip(uniq[order].tolist(), (np.arange(uniq.size) % N_FOLDS).tolist()))
    return np.array([fold_of_block[b] for b in block.tolist()])


def sample_layer(layer, grid, x, y):
    """Bilinear value of ``layer`` at points; nearest pixel where a neighbour is NaN."""
    from scipy.ndimage import map_coordinates

    col, row = grid.to_pixel(x, y)
    out = map_coordinates(layer, [row, col], order=1, mode="nearest")
    bad = ~np.isfinite(out)
    r = np.clip(np.round(row[bad]).astype(int), 0, grid.nrows - 1)
    c = np.clip(np.round(col[bad]).astype(int), 0, grid.ncols - 1)
    out[bad] = layer[r, c]
    return out


#: Loaded Kolari data, set before the element workers are forked (they inherit it).
_KOLARI = {}


def run_kolari(methods, quick, seed, store, jobs=1):
    """Run every method on the Kolari folds; scores go to ``store``."""
    image, grid, names, valid, x, y, logv, (drow, dcol, n_dep) = load_kolari()
    folds = block_folds(x, y, seed)
    col = np.floor((x - grid.x_min) / grid.cell_x).astype(int)
    row = np.floor((grid.y_max - y) / grid.cell_y).astype(int)
    scored = valid[np.clip(row, 0, grid.nrows - 1), np.clip(col, 0, grid.ncols - 1)]
    on_valid = valid[drow, dcol]
    logger.info("Kolari: %d samples (%d on valid image pixels), %d folds of %s samples, "
                "%d of %d deposits inside the image (%d on valid pixels)", x.size, scored.sum(),
                N_FOLDS, np.bincount(folds).tolist(), drow.size, n_dep, on_valid.sum())
    elements = KOLARI_ELEMENTS[:1] if quick else KOLARI_ELEMENTS
    image_cache = {}
    _equivalence_note("Kolari " + elements[0], methods, x, y, logv[elements[0]], image, grid,
                      ElementInfo("kolari", elements[0], names, log10=True, seed=seed,
                                  image_cache=image_cache))
    _KOLARI.update(image=image, grid=grid, names=names, valid=valid, x=x, y=y, logv=logv,
                   deposits=(drow[on_valid], dcol[on_valid]), folds=folds, scored=scored,
                   image_cache=image_cache, methods=methods, seed=seed)
    if jobs > 1 and len(elements) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(jobs, len(elements)),
                                 mp_context=multiprocessing.get_context("fork")) as pool:
            results = list(pool.map(_kolari_element, elements))
    else:
        results = [_kolari_element(e) for e in elements]
    for element, records in zip(elements, results):
        for name, rec in records.items():
            store.put("kolari", element, name, rec)


def _kolari_element(element):
    """Cross-validate and score every method on one element; ``{method: record}``."""
    k = _KOLARI
    x, y, values, grid, folds = k["x"], k["y"], k["logv"][element], k["grid"], k["folds"]
    methods = k["methods"]
    pred = {m: np.full(x.size, np.nan) for m in methods}
    secs = dict.fromkeys(methods, 0.0)
    status = dict.fromkeys(methods, "ok")
    records = {}
    for fold in [*range(N_FOLDS), None]:
        train = folds != fold if fold is not None else np.ones(x.size, bool)
        info = ElementInfo("kolari", element, k["names"], log10=True, seed=k["seed"],
                           image_cache=k["image_cache"])
        for name in methods:
            if status[name] != "ok":
                continue
            layer, s, st = run_method(name, x[train], y[train], values[train], k["image"], grid,
                                      info)
            secs[name] += s
            if layer is None:
                status[name] = st
            elif fold is not None:
                test = folds == fold
                pred[name][test] = sample_layer(layer, grid, x[test], y[test])
            else:
                full = np.where(k["valid"], layer, np.nan)
                rec = _cv_record(pred[name], values, k["scored"])
                rec.update(status="ok", seconds=round(secs[name], 2),
                           auc=metrics.success_rate_auc(full, *k["deposits"]),
                           n_deposits=int(k["deposits"][0].size))
                records[name] = rec
                logger.info("  %s %-28s %s", element, name, _fmt_rec(rec))
        logger.info("Kolari %s: fold %s done", element, "all" if fold is None else fold)
    for name in methods:
        if status[name] != "ok" and not status[name].startswith("n/a"):
            records[name] = {"status": status[name], "seconds": round(secs[name], 2)}
    return records


def _cv_record(pred, values, scored):
    ok = scored & np.isfinite(pred)
    return {"cc": metrics.pearson_cc(pred[ok], values[ok]), "rmse": metrics.rmse(pred[ok], values[ok]),
            "n_scored": int(ok.sum()), "n_missing": int((scored & ~np.isfinite(pred)).sum())}


# ===========================================================================
# results store and report
# ===========================================================================
class Store:
    """Per-(protocol, case, method) results, merged with ``bench/work/accuracy.json``."""

    def __init__(self, path):
        self.path = path
        self.data = {}
        if path.exists():
            self.data = json.loads(path.read_text())
        self.fresh = set()

    def put(self, protocol, case, method, rec):
        """Store the record ``rec`` of a method on a case."""
        rec = {k: (float(v) if isinstance(v, (np.floating, float)) else v) for k, v in rec.items()}
        rec["when"] = _now()
        key = f"{protocol}|{case}|{method}"
        self.data[key] = rec
        self.fresh.add(key)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.data, indent=1, sort_keys=True))

    def put_run(self, report, **meta):
        """Record how the last run writing ``report`` (not --report-only) was made."""
        self.data[f"_run {report}"] = meta
        self.path.write_text(json.dumps(self.data, indent=1, sort_keys=True))

    def get(self, protocol, case, method):
        """The stored record of a method on a case, or None."""
        return self.data.get(f"{protocol}|{case}|{method}")


def _fmt_rec(rec):
    if rec.get("status") != "ok":
        return rec.get("status", "?")
    keys = ("cc", "rmse", "ssim", "cons_rmse", "auc")
    return " ".join(f"{k}={rec[k]:.4f}" for k in keys if k in rec) + f" ({rec['seconds']:.1f} s)"


def _num(v, fmt):
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def _table(store, protocol, cases, columns):
    head = "| case | method | " + " | ".join(c[0] for c in columns) + " |"
    lines = [head, "|" + "---|" * (len(columns) + 2)]
    for case in cases:
        base = store.get(protocol, case, BASELINE)
        for name in METHODS:
            rec = store.get(protocol, case, name)
            if rec is None:
                continue
            label = f"**{name}**" if name == DEFAULT else name
            if rec.get("status") != "ok":
                lines.append(f"| {case} | {label} | {rec['status']} |" + " |" * (len(columns) - 1))
                continue
            cells = [c[1](rec, base) for c in columns]
            lines.append(f"| {case} | {label} | " + " | ".join(cells) + " |")
    return lines


def _vs_base(rec, base):
    """RMSE change relative to the baseline, blank on the baseline's own row."""
    if rec is base or not base or base.get("status") != "ok":
        return ""
    return f"{100.0 * (rec['rmse'] / base['rmse'] - 1.0):+.1f} %"


def _n_deposits(store, cases):
    for case in cases:
        for name in METHODS:
            rec = store.get("kolari", case, name)
            if rec and "n_deposits" in rec:
                return rec["n_deposits"]
    return "?"


def _medians(store, protocol, cases, extra):
    """One row per method: medians over the cases of CC, RMSE change vs kriging alone, ``extra``."""
    lines = ["| method | cases | median CC | median ΔRMSE | median " + extra + " | median time (s) |",
             "|---|---|---|---|---|---|"]
    for name in METHODS:
        recs = [(store.get(protocol, c, name), store.get(protocol, c, BASELINE)) for c in cases]
        recs = [(r, b) for r, b in recs if r and r.get("status") == "ok"]
        if not recs:
            continue
        cc = np.median([r["cc"] for r, _ in recs])
        rel = [100.0 * (r["rmse"] / b["rmse"] - 1.0) for r, b in recs
               if b and b.get("status") == "ok"]
        ex = np.median([r[extra.lower()] for r, _ in recs])
        label = f"**{name}**" if name == DEFAULT else name
        secs = np.median([r["seconds"] for r, _ in recs])
        lines.append(f"| {label} | {len(recs)} | {cc:.3f} | "
                     + (f"{np.median(rel):+.1f} %" if rel else "") + f" | {ex:.3f} | {secs:.1f} |")
    return lines


def _wins(store, protocol, cases):
    """Per peer: cases where the default beats it on CC and on RMSE."""
    out = []
    for peer in PEERS:
        both = cc_w = rmse_w = n = 0
        for case in cases:
            d, p = store.get(protocol, case, DEFAULT), store.get(protocol, case, peer)
            if not d or not p or d.get("status") != "ok" or p.get("status") != "ok":
                continue
            n += 1
            c, r = d["cc"] > p["cc"], d["rmse"] < p["rmse"]
            cc_w += c
            rmse_w += r
            both += c and r
        out.append((peer, n, cc_w, rmse_w, both))
    return out


def report(store, s2_list, kolari_list, *, command, runtime, quick, jobs=1, out=""):
    """The Markdown report of the stored scores."""
    lines = ["# Accuracy benchmark on real data (issue 6)", ""]
    last = store.data.get(f"_run {out}", {})
    if runtime is None and last:  # --report-only: describe the run that made the results
        lines += [f"- Report rewritten with `{command}` from the results of the run below."]
        command, runtime, jobs = last["command"], last["runtime"], last.get("jobs", 1)
    lines += [f"- Command: `{command}`",
              f"- Date: {last.get('date') or _now()}",
              f"- Machine: {platform.node()} — {platform.platform()}, {os.cpu_count()} CPUs, "
              f"Python {platform.python_version()}, numpy {np.__version__}",
              (f"- Total runtime: {runtime:.0f} s" if runtime is not None else "- Nothing run")
              + (" (quick subset)" if quick else "")
              + (f", Kolari elements in {jobs} parallel processes"
                 if jobs > 1 and len(kolari_list) > 1 else ""),
              f"- Code: commit {last.get('code') or _code_version()}",
              f"- SAGA: {_saga_version()}",
              ""]
    made = store.fresh | set(last.get("keys", []))
    stale = [k for k in store.data if k not in made and k.count("|") == 2
             and k.split("|")[1] in set(s2_list) | set(kolari_list)]
    if stale:
        lines += [f"- {len(stale)} result(s) were not recomputed in this invocation and come from "
                  "`bench/work/accuracy.json` of an earlier run (see `when` there).", ""]
    lines += ["Methods (`bench/accuracy.py`, table `METHODS`):", "",
              f"- *kriging alone*: ordinary kriging (variogram {VARIOGRAM!r}, fuse_samples' "
              "default) on a grid of about a quarter of the sample spacing, cubic-resampled;",
              "- *paper* / *coherent*, *global* / *local*: `fuse_samples(mode=..., "
              "regression=...)` with the image bands as features (*PC2*: the paper's PC2 of the "
              "bands), 5 K-means units for *local*;",
              "- ***product default***: `product_default()` at the top of the script;",
              "- *regression kriging*: PyKrige `RegressionKriging(LinearRegression(), "
              "variogram_model='spherical', n_closest_points=32)` fitted on all image bands at "
              "the pixel of each sample; its residuals are kriged on the coarse grid and "
              "cubic-resampled (the same scores to 3 decimals as kriging them at every pixel, "
              "`--rk-pixelwise`, 60 times slower);",
              "- *SAGA GWR*: `saga_cmd statistics_regression 14` (GWR for Grid Downscaling, tool "
              "defaults: local, 10 cells, no distance weighting) of the kriged coarse grid with "
              "the image bands as predictors, without and with its residual correction (one SAGA "
              "run gives both; its time is under *SAGA GWR*).", "",
              "*time*: seconds in the method's call, incremental: the kriging of a sample set is "
              "computed by the first method that needs it (kriging alone, listed first) and "
              "shared with the others; the image features and K-means units are computed once "
              "per image. *product default* runs `fuse_samples` in full each time.", ""]
    notes = NOTES if NOTES or not last else last.get("notes", [])
    lines += [f"- {note}" for note in notes] + ([""] if notes else [])
    if s2_list:
        lines += ["## Protocol 1 — real Sentinel-2, target B11/B12 at 20 m", "",
                  "Survey on a jittered grid of spacing S (one point per S×S cell, offset ≤ S/4, "
                  "value = mean of the target in 40 m); image = B02, B03, B04, B08 at 10 m. "
                  "CC, RMSE (reflectance) and SSIM of the fused layer block-averaged to 20 m "
                  "against the real band, border of 2·S excluded; *ΔRMSE* relative to kriging "
                  "alone. Consistency: fused layer vs the kriged input, both block-averaged to "
                  "S×S (0 = the survey's information kept at its support; not accuracy).", ""]
        cols = [("CC", lambda r, b: _num(r["cc"], ".3f")),
                ("RMSE", lambda r, b: _num(r["rmse"], ".4f")),
                ("ΔRMSE", _vs_base),
                ("SSIM", lambda r, b: _num(r["ssim"], ".3f")),
                ("cons. CC", lambda r, b: _num(r["cons_cc"], ".3f")),
                ("cons. RMSE", lambda r, b: _num(r["cons_rmse"], ".4f")),
                ("time (s)", lambda r, b: _num(r["seconds"], ".1f"))]
        lines += ["Medians over the cases:", ""] + _medians(store, "sentinel2", s2_list, "SSIM")
        lines += ["", "Every case:", ""] + _table(store, "sentinel2", s2_list, cols) + [""]
    if kolari_list:
        lines += ["## Protocol 2 — real till geochemistry (Kolari), log10", "",
                  "Spatial block cross-validation (10 km blocks, 5 folds, fixed seed): RMSE and CC "
                  "in log10 units at the held-out samples on valid image pixels, pooled over the "
                  "folds; *ΔRMSE* relative to kriging alone. AUC: success-rate AUC of the "
                  "full-data layer for the known deposits inside the image (0.5 = no better than "
                  f"chance; {_n_deposits(store, kolari_list)} of the 26 deposits fall inside the "
                  "image). *n*: held-out samples scored. Image: 9 standardized airborne "
                  "geophysics layers at 100 m (the fusion rows use them all as features).", ""]
        cols = [("CC", lambda r, b: _num(r["cc"], ".3f")),
                ("RMSE", lambda r, b: _num(r["rmse"], ".4f")),
                ("ΔRMSE", _vs_base),
                ("AUC", lambda r, b: _num(r.get("auc"), ".3f")),
                ("n", lambda r, b: str(r.get("n_scored", ""))),
                ("time (s)", lambda r, b: _num(r["seconds"], ".1f"))]
        lines += ["Medians over the elements:", ""] + _medians(store, "kolari", kolari_list, "AUC")
        lines += ["", "Every element:", ""] + _table(store, "kolari", kolari_list, cols) + [""]
    lines += ["## Summary against the targets", ""]
    if s2_list:
        lines += ["Sentinel-2 — the product default must beat each peer on both CC and RMSE in every "
                  "case:", ""]
        for peer, n, cc_w, rmse_w, both in _wins(store, "sentinel2", s2_list):
            if n == 0:
                verdict = "not measured (the peer failed or is missing, see its rows)"
            elif both == n == len(s2_list):
                verdict = "**met**"
            else:
                verdict = "not met" + (f" ({len(s2_list) - n} case(s) not measured)"
                                       if n < len(s2_list) else "")
            lines.append(f"- vs {peer}: better CC in {cc_w}/{n}, lower RMSE in {rmse_w}/{n}, "
                         f"both in {both}/{n} of {len(s2_list)} cases — {verdict}")
        lines.append("")
    if kolari_list:
        lines += ["Kolari — the default's RMSE within 1 % of kriging alone on every element, and "
                  "lower wherever regression kriging's is:", ""]
        ok_all = True
        for case in kolari_list:
            d, b = store.get("kolari", case, DEFAULT), store.get("kolari", case, BASELINE)
            rk = store.get("kolari", case, "regression kriging")
            if not d or not b or d.get("status") != "ok" or b.get("status") != "ok":
                lines.append(f"- {case}: missing result")
                ok_all = False
                continue
            rel = d["rmse"] / b["rmse"] - 1.0
            good = rel <= 0.01
            note = f"- {case}: default RMSE {100 * rel:+.2f} % vs kriging alone"
            if rk and rk.get("status") == "ok":
                note += f"; regression kriging {100 * (rk['rmse'] / b['rmse'] - 1):+.2f} %"
                if rk["rmse"] < b["rmse"]:
                    better = d["rmse"] < b["rmse"]
                    good = good and better
                    note += f" → the default must be better: {'yes' if better else 'no'}"
            ok_all &= good
            lines.append(note + (" — ok" if good else " — **not met**"))
        lines += ["", f"Kolari target: {'**met**' if ok_all else 'not met'}", ""]
    return "\n".join(lines)


def _code_version():
    """``git describe``-like id of the code that ran, with its uncommitted files (read-only git)."""
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=30).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "core",
                                "bench/accuracy.py"], capture_output=True, text=True,
                               timeout=30).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    dirty = [ln[3:] for ln in dirty if ln.strip()]
    return head + (f" + uncommitted changes in {', '.join(dirty)}" if dirty else "")


def _now():
    return datetime.datetime.now().isoformat(timespec="seconds")


def _saga_version():
    if shutil.which("saga_cmd") is None:
        return "not installed (its rows say so)"
    try:
        out = subprocess.run(["saga_cmd", "--version"], capture_output=True, text=True, timeout=30)
        line = [ln for ln in (out.stdout + out.stderr).splitlines() if "SAGA" in ln and "ersion" in ln]
        return line[0].strip() if line else "installed"
    except (OSError, subprocess.SubprocessError):
        return "installed"


def main(argv=None):
    """Command line entry point."""
    global RK_PIXELWISE
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="one scene, one band, S=640 m; Kolari: Cu only")
    parser.add_argument("--only", default="",
                        help="comma-separated method names to run (others are taken from "
                             "bench/work/accuracy.json); known: " + ", ".join(METHODS))
    parser.add_argument("--protocol", choices=("all", "sentinel2", "kolari"), default="all")
    parser.add_argument("--output", type=Path, default=None,
                        help="report path (default bench/results/accuracy.md; with --quick "
                             "bench/work/accuracy-quick.md)")
    parser.add_argument("--rk-pixelwise", action="store_true",
                        help="krige the regression-kriging residuals at every pixel (slow)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--report-only", action="store_true",
                        help="only rewrite the report from bench/work/accuracy.json")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="Kolari elements run in parallel processes (times then include "
                             "contention)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("geochem_fusion").setLevel(logging.WARNING)  # the core's own INFO is noise here
    if not DATA.is_dir():
        print(f"accuracy benchmark skipped: real data not found at {DATA}")
        return 0
    RK_PIXELWISE = args.rk_pixelwise
    methods = list(METHODS)
    if args.only:
        methods = [m.strip() for m in args.only.split(",") if m.strip()]
        unknown = [m for m in methods if m not in METHODS]
        if unknown:
            parser.error(f"unknown method(s) {unknown}; known: {list(METHODS)}")
    WORK.mkdir(parents=True, exist_ok=True)
    store = Store(CACHE_FILE)
    code = _code_version()  # before the run: others may commit while it runs
    t0 = time.perf_counter()
    s2_list = kolari_list = []
    if args.protocol in ("all", "sentinel2"):
        s2_list = [f"{sc.split('_')[-1]} {b} S={s}" for sc, b, s in s2_cases(args.quick)]
        if not args.report_only:
            run_s2(methods, args.quick, args.seed, store)
    if args.protocol in ("all", "kolari"):
        kolari_list = list(KOLARI_ELEMENTS[:1] if args.quick else KOLARI_ELEMENTS)
        if not args.report_only:
            run_kolari(methods, args.quick, args.seed, store, jobs=args.jobs)
    runtime = None if args.report_only else time.perf_counter() - t0
    command = shlex.join(["python", "bench/accuracy.py",
                          *(argv if argv is not None else sys.argv[1:])])
    out = args.output or (WORK / "accuracy-quick.md" if args.quick else RESULTS / "accuracy.md")
    out_key = os.path.relpath(out.resolve(), REPO)
    if runtime is not None:
        store.put_run(out_key, command=command.strip(), runtime=runtime, jobs=args.jobs,
                      date=_now(), keys=sorted(store.fresh), notes=list(NOTES), code=code)
    text = report(store, s2_list, kolari_list, command=command.strip(), runtime=runtime,
                  quick=args.quick, jobs=1 if args.report_only else args.jobs, out=out_key)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    print(text)
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
