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

# One BLAS/OpenMP thread per process, set before numpy loads: the benchmark runs cases in
# parallel processes (--jobs), and on a shared machine threads spinning for the same CPUs
# made every method tens of times slower. Results are the same to rounding.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

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


#: Krige the regression-kriging residuals at every fine pixel (slow) instead of
#: on the coarse kriging grid followed by cubic resampling. Set by --rk-pixelwise.
RK_PIXELWISE = False


def _rk_support(image, image_grid, x, y, values):
    """The support of regression kriging, chosen as the default chooses its own.

    The image bands at the same sample pixels as the default's fit
    (:func:`~geochem_fusion.core.adaptive.chips_from_image`), averaged over each
    of the default's windows (:data:`~geochem_fusion.core.adaptive.DEFAULT_WINDOWS`);
    the window with the lowest leave-one-out RMSE of the linear regression
    (closed form) wins. Returns ``(window, features at the samples)``.
    """
    from geochem_fusion.core.adaptive import DEFAULT_WINDOWS, chips_from_image, sample_features

    chips = chips_from_image(image, image_grid, x, y, half=max(DEFAULT_WINDOWS) // 2)
    best = None
    for w in DEFAULT_WINDOWS:
        A = sample_features(chips, "bands", w)[0]
        ok = np.isfinite(A).all(axis=1) & np.isfinite(values)
        X = np.column_stack([np.ones(int(ok.sum())), A[ok]])
        h = np.einsum("ij,ji->i", X, np.linalg.pinv(X))  # hat matrix diagonal
        resid = values[ok] - X @ np.linalg.lstsq(X, values[ok], rcond=None)[0]
        loo = float(np.sqrt(np.mean((resid / np.clip(1.0 - h, 1e-6, None)) ** 2)))
        if best is None or loo < best[0]:
            best = (loo, w, A)
    return best[1], best[2]


def regression_kriging(x, y, values, image, image_grid, *, element_info):
    """PyKrige ``RegressionKriging``: linear model on the image at the points + kriged residuals.

    Fitted with ``p`` = all image bands averaged over the support window that
    :func:`_rk_support` chooses (the default's candidates and sample pixels;
    samples on nodata pixels are left out), spherical variogram, a moving
    window of 32 samples. The regression part is predicted at every pixel
    from the bands averaged over the same window; the kriged residual is
    predicted on the pipeline's coarse kriging grid and cubic-resampled (the
    treatment kriging alone gets), or at every pixel centre with
    ``--rk-pixelwise``.
    """
    from pykrige.rk import RegressionKriging
    from sklearn.linear_model import LinearRegression

    from geochem_fusion.core.adaptive import feature_stack

    window, p = _rk_support(image, image_grid, x, y, values)
    element_info.cache["rk window"] = window
    ok = np.isfinite(p).all(axis=1) & np.isfinite(values)
    rk = RegressionKriging(regression_model=LinearRegression(), variogram_model="spherical",
                           n_closest_points=32)
    with contextlib.redirect_stdout(io.StringIO()):  # PyKrige prints progress
        rk.fit(p[ok], np.column_stack([x[ok], y[ok]]), values[ok])
    image = feature_stack(image, "bands", window=window)[0]
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


#: SAGA runs single-threaded, as the rest of the benchmark (see the top of the script).
SAGA_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


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
        proc = subprocess.run(cmd, capture_output=True, text=True, env=SAGA_ENV)
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


def _saga_points(x, y, values, image, image_grid, info, resampling=3, window=1):
    """Run SAGA "Multiple Regression Analysis (Points and Predictor Grids)" once; cache both outputs.

    ``saga_cmd statistics_regression 1`` with the settings of issue 17: ``METHOD=0`` (all
    predictors), ``RESAMPLING=3`` (B-spline sampling of the predictors at the points),
    ``RESIDUAL_COR=0`` (multilevel B-spline interpolation of the residuals); tool defaults
    otherwise. Predictors: the image bands on the image grid; points: the samples with
    their values. Returns ``(regression, regression with residual correction)`` on the image
    grid. SAGA needs square cells: as for :func:`_saga`, the grids are written with square
    cells of the image pixel height, and the points' x is scaled the same way.
    ``resampling`` and ``window`` (predictors averaged over ``window`` pixels first) are
    for the diagnostics of ``--why`` only.
    """
    key = ("saga points", resampling, window)
    if key in info.cache:
        return info.cache[key]
    if window > 1:
        from geochem_fusion.core.adaptive import feature_stack

        image = feature_stack(image, "bands", window=window)[0]
    from osgeo import gdal, ogr, osr

    if shutil.which("saga_cmd") is None:
        raise RuntimeError("SAGA GIS is not installed (saga_cmd not found; `apt-get install saga`)")
    cell = image_grid.cell_y
    sx = cell / image_grid.cell_x  # x scale to square cells (1 for Sentinel-2)
    nodata = -99999.0
    drv = gdal.GetDriverByName("GTiff")
    with tempfile.TemporaryDirectory(prefix="sagapt_", dir=WORK) as tmp:
        tmp = Path(tmp)
        preds = []
        for i, band in enumerate(image):
            preds.append(tmp / f"p{i}.tif")
            ds = drv.Create(str(preds[-1]), band.shape[1], band.shape[0], 1, gdal.GDT_Float32)
            ds.SetGeoTransform((image_grid.x_min, cell, 0.0, image_grid.y_max, 0.0, -cell))
            b = ds.GetRasterBand(1)
            b.SetNoDataValue(nodata)
            b.WriteArray(np.where(np.isfinite(band), band, nodata).astype(np.float32))
            ds = None
        shp = tmp / "pts.shp"
        sds = ogr.GetDriverByName("ESRI Shapefile").CreateDataSource(str(shp))
        lyr = sds.CreateLayer("pts", osr.SpatialReference(), ogr.wkbPoint)
        lyr.CreateField(ogr.FieldDefn("value", ogr.OFTReal))
        ok = np.isfinite(values)
        for xi, yi, vi in zip(x[ok], y[ok], values[ok]):
            feat = ogr.Feature(lyr.GetLayerDefn())
            feat.SetField("value", float(vi))
            pt = ogr.Geometry(ogr.wkbPoint)
            pt.AddPoint_2D(float(image_grid.x_min + (xi - image_grid.x_min) * sx), float(yi))
            feat.SetGeometry(pt)
            lyr.CreateFeature(feat)
            feat = None
        sds = None
        cmd = ["saga_cmd", "statistics_regression", "1",
               "-PREDICTORS=" + ";".join(str(p) for p in preds), f"-POINTS={shp}",
               "-ATTRIBUTE=value", "-METHOD=0", f"-RESAMPLING={resampling}", "-RESIDUAL_COR=0",
               f"-REGRESSION={tmp / 'reg.sdat'}", f"-REGRESCORR={tmp / 'regrc.sdat'}"]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=SAGA_ENV)
        if proc.returncode != 0 or not (tmp / "regrc.sdat").exists():
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-5:]
            raise RuntimeError(f"saga_cmd failed (exit {proc.returncode}): {' | '.join(tail)}")
        out = []
        for name in ("reg.sdat", "regrc.sdat"):
            ds = gdal.Open(str(tmp / name))
            band = ds.GetRasterBand(1)
            arr = band.ReadAsArray().astype(np.float64)
            nd = band.GetNoDataValue()
            if nd is not None:
                arr[arr == nd] = np.nan
            if arr.shape != image_grid.shape:
                raise RuntimeError(f"SAGA wrote {arr.shape}, expected {image_grid.shape}")
            out.append(arr)
        info.cache[key] = tuple(out)
    return info.cache[key]


def saga_points(x, y, values, image, image_grid, *, element_info):
    """SAGA point regression (all predictors, B-spline sampling), regression only."""
    return _saga_points(x, y, values, image, image_grid, element_info)[0]


def saga_points_rc(x, y, values, image, image_grid, *, element_info):
    """SAGA point regression with its multilevel B-spline residual correction."""
    return _saga_points(x, y, values, image, image_grid, element_info)[1]


def _saga_points_variant(resampling, window, corrected):
    def method(x, y, values, image, image_grid, *, element_info):
        if element_info.protocol != "sentinel2":
            raise NotApplicable("diagnostics run on Sentinel-2 only")
        return _saga_points(x, y, values, image, image_grid, element_info, resampling,
                            window)[int(corrected)]
    return method


def _adaptive_variant(residual_cell):
    """The adaptive fit with the default's settings, its residual kriged on a grid of ``residual_cell`` m.

    :func:`~geochem_fusion.core.adaptive.fit_adaptive_samples` on chips of the whole
    image (None: the pipeline's coarse kriging grid, as the default).
    """
    def method(x, y, values, image, image_grid, *, element_info):
        from geochem_fusion.core.adaptive import (
            DEFAULT_WINDOWS,
            chips_from_image,
            fit_adaptive_samples,
        )

        if element_info.protocol != "sentinel2":
            raise NotApplicable("diagnostics run on Sentinel-2 only")
        spacing = median_nn_spacing(x, y) if residual_cell is None else 4.0 * residual_cell
        kgrid = kriging_grid(image_grid, spacing)
        chips = chips_from_image(image, image_grid, x, y, half=max(DEFAULT_WINDOWS) // 2)
        fit = fit_adaptive_samples(x, y, values, chips, kgrid, band_names=element_info.band_names,
                                   variogram=VARIOGRAM, random_state=element_info.seed)
        return fit.predict(image, image_grid, band_names=element_info.band_names)
    return method


#: Diagnostics of ``--why`` (issue 17: why does SAGA's point regression win where it wins?):
#: one factor changed at a time, on the seed-0 Sentinel-2 cases.
DIAGNOSTICS = {
    "why: adaptive fit, residual on the coarse grid": _adaptive_variant(None),
    "why: adaptive fit, residual kriged at 20 m": _adaptive_variant(20.0),
    "why: SAGA point regression, nearest-pixel sampling": _saga_points_variant(0, 1, False),
    "why: SAGA point regression + residual corr., nearest-pixel sampling":
        _saga_points_variant(0, 1, True),
    "why: SAGA point regression, bands averaged over 3 px": _saga_points_variant(3, 3, False),
    "why: SAGA point regression + residual corr., bands averaged over 3 px":
        _saga_points_variant(3, 3, True),
}


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
    "SAGA point regression": saga_points,
    "SAGA point regression + residual corr.": saga_points_rc,
}
#: The peers the product default must beat (Sentinel-2 target of the issue).
#: The paper's modes, compared with the default too (README claims).
PAPER_ROWS = ["paper global", "paper local", "coherent global", "coherent local"]
#: Rows run on the first seed's jittered Sentinel-2 cases only (the survey design of the
#: paper's comparison); the other peers run on every case and seed. SAGA GWR is among them:
#: it is far behind everywhere and costs more than all the other methods together.
FIRST_SEED_ONLY = PAPER_ROWS + ["paper global PC2", "paper local PC2", "coherent global PC2",
                                "coherent local PC2", "SAGA GWR", "SAGA GWR + residual corr."]
PEERS = ["kriging alone", "SAGA GWR", "SAGA GWR + residual corr.", "regression kriging",
         "SAGA point regression", "SAGA point regression + residual corr."]
DEFAULT = "product default"
BASELINE = "kriging alone"


def run_method(name, x, y, values, image, grid, info):
    """Call one method; returns ``(layer or None, seconds, status)``."""
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            layer = {**METHODS, **DIAGNOSTICS}[name](x, y, values, image, grid, element_info=info)
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
#: Held-out target (issue 19): a band never scored while the default's rules were designed
#: or tuned (red edge 1, 20 m); its cases run only in full runs and are reported apart.
S2_HELDOUT_BANDS = ("B05",)
S2_SPACINGS = (320, 640)
S2_HELDOUT_SPACINGS = (640,)  # the sparser survey, where the margins are smallest
S2_DESIGNS = ("jittered", "random", "lines")
N_SEEDS = 5


def _snap(gx, gy, shape20):
    """Metres from the top-left corner -> the nearest 20 m pixel corner away from the edge."""
    cols = np.clip(np.round(np.ravel(gx) / 20.0), 1, shape20[1] - 1).astype(int)
    rows = np.clip(np.round(np.ravel(gy) / 20.0), 1, shape20[0] - 1).astype(int)
    return cols * 20.0, rows * 20.0, rows, cols


def survey_points(shape20, spacing, seed, design="jittered"):
    """Survey on a 20 m target: ``(x, y, rows, cols)`` of the 20 m pixel corners.

    ``jittered``: one point per ``spacing`` cell of the scene, at the cell
    centre moved by a uniform offset of at most ``spacing/4`` per axis.
    ``random``: as many points, uniform over the scene. ``lines``: as many
    points, clustered along meandering lines as road or stream sampling is:
    each line starts at a uniform point with a uniform heading and walks in
    steps of ``spacing/3`` (one sample per step) turning by a normal angle of
    15° per step, until it leaves the scene; lines are added until the count
    is reached. Every point is snapped to the nearest 20 m pixel corner away
    from the scene edge. ``x``/``y`` are metres from the top-left corner (y
    downwards, made map coordinates by the caller).
    """
    if design not in S2_DESIGNS:
        raise ValueError(f"design must be one of {S2_DESIGNS}, got {design!r}")
    code = S2_DESIGNS.index(design)
    # the jittered design keeps the seed sequence it always had
    rng = np.random.default_rng([seed, spacing] if code == 0 else [seed, spacing, code])
    height, width = shape20[0] * 20.0, shape20[1] * 20.0
    cx = np.arange(spacing / 2.0, width, spacing)
    cy = np.arange(spacing / 2.0, height, spacing)
    n = cx.size * cy.size
    if design == "jittered":
        gx, gy = np.meshgrid(cx, cy)
        gx = gx + rng.uniform(-spacing / 4.0, spacing / 4.0, gx.shape)
        gy = gy + rng.uniform(-spacing / 4.0, spacing / 4.0, gy.shape)
        return _snap(gx, gy, shape20)
    if design == "random":
        return _snap(rng.uniform(0, width, n), rng.uniform(0, height, n), shape20)
    step = spacing / 3.0
    px, py = [], []
    while len(px) < n:
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        heading = rng.uniform(0, 2 * np.pi)
        for _ in range(2):  # walk both ways from the start
            cx_, cy_, h = x, y, heading
            while 0 <= cx_ < width and 0 <= cy_ < height and len(px) < n:
                px.append(cx_)
                py.append(cy_)
                h += rng.normal(0.0, np.radians(15.0))
                cx_, cy_ = cx_ + step * np.cos(h), cy_ + step * np.sin(h)
            x, y = x - step * np.cos(heading), y - step * np.sin(heading)
            heading += np.pi
    gx, gy = np.asarray(px), np.asarray(py)
    # two points of a line may snap to the same corner: keep each corner once
    cols, rows = _snap(gx, gy, shape20)[2:][::-1]
    _, first = np.unique(rows * shape20[1] + cols, return_index=True)
    first = np.sort(first)
    return cols[first] * 20.0, rows[first] * 20.0, rows[first], cols[first]


def window_mean(target, rows, cols):
    """Mean of the 2 x 2 pixels (40 m) around each pixel corner ``(rows, cols)``."""
    return (target[rows - 1, cols - 1] + target[rows - 1, cols]
            + target[rows, cols - 1] + target[rows, cols]) / 4.0


@dataclass(frozen=True)
class S2Case:
    """One Sentinel-2 case: scene, target band, survey spacing, design and seed."""

    scene: str
    band: str
    spacing: int
    design: str
    seed: int
    heldout: bool = False
    first: bool = True  # the first seed and design: run FIRST_SEED_ONLY too
    why: bool = False  # run the DIAGNOSTICS too

    @property
    def group(self):
        """The case without its seed (what the seeds are repeated over)."""
        return f"{self.scene.split('_')[-1]} {self.band} S={self.spacing} {self.design}"

    @property
    def name(self):
        """The case and its seed."""
        return f"{self.group} #{self.seed}"


def s2_cases(quick, seeds, designs=S2_DESIGNS, heldout=True, why=False):
    """The Sentinel-2 cases of a run; held-out cases last (never in ``quick``).

    The cases of the first seed and design also run :data:`FIRST_SEED_ONLY`, and with
    ``why`` those of the first band the :data:`DIAGNOSTICS`.
    """
    scenes = S2_SCENES[:1] if quick else S2_SCENES
    bands = S2_BANDS[:1] if quick else S2_BANDS
    spacings = (640,) if quick else S2_SPACINGS
    seeds = list(seeds)
    out = [S2Case(sc, b, s, d, seed, first=seed == seeds[0] and d == designs[0],
                  why=why and seed == seeds[0] and d == designs[0] and b == bands[0])
           for sc in scenes for b in bands for s in spacings for d in designs for seed in seeds]
    if heldout and not quick:
        out += [S2Case(sc, b, s, d, seed, heldout=True, first=False)
                for sc in scenes for b in S2_HELDOUT_BANDS for s in S2_HELDOUT_SPACINGS
                for d in designs for seed in seeds]
    return out


#: Wall-clock time (``time.time()``) after which no new Sentinel-2 case starts (--max-minutes).
DEADLINE = None
#: Skip Sentinel-2 cases whose every method is already in the store (--resume).
RESUME = False


def run_s2(methods, cases, store, jobs=1):
    """Run every method on every case, seed by seed, each case stored when done.

    One work unit per seed, held-out flag, scene and band, in parallel processes with
    ``jobs`` > 1.

    With a :data:`DEADLINE`, cases not started by then are skipped and counted in the notes:
    the seeds run first are complete.
    """
    units = {}
    for case in sorted(cases, key=lambda c: (c.seed, c.heldout)):
        units.setdefault((case.seed, case.heldout, case.scene, case.band), []).append(case)
    work = [(methods, unit, store) for unit in units.values()]
    results = parallel_map(_s2_scene, work, jobs)
    skipped = 0
    for done, notes, n_skipped in results:
        store.fresh.update(f"sentinel2|{name}|{m}" for name, recs in done.items() for m in recs)
        NOTES.extend(n for n in notes if n not in NOTES)
        skipped += n_skipped
    if skipped:
        NOTES.append(f"{skipped} of {len(cases)} Sentinel-2 cases were not run: the time budget "
                     "(--max-minutes) ran out; the tables count the cases that ran.")


def parallel_map(func, items, jobs):
    """``[func(item) for item in items]``, in up to ``jobs`` forked processes when that helps."""
    if jobs > 1 and len(items) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(jobs, len(items)),
                                 mp_context=multiprocessing.get_context("fork")) as pool:
            return list(pool.map(func, items))
    return [func(item) for item in items]


def _s2_scene(work):
    """Every case of one unit (one scene), each stored when done.

    Returns ``({case name: {method: record}}, notes, cases skipped at the deadline)``.
    """
    methods, cases, store = work
    x0, y0 = 500_000.0, 7_000_000.0  # arbitrary UTM-like origin
    d = np.load(DATA / "dsen2" / f"{cases[0].scene}.npz")
    im10, im20 = d["im10"].astype(np.float64) / 1e4, d["im20"].astype(np.float64) / 1e4
    names10, names20 = [str(b) for b in d["bands10"]], [str(b) for b in d["bands20"]]
    image_cache, out = {}, {}
    first = cases[0].first and not cases[0].heldout
    notes_before = len(NOTES)
    skipped = 0
    for case in cases:
        if DEADLINE is not None and time.time() > DEADLINE:
            skipped += 1
            continue
        run = [m for m in methods if case.first or m not in FIRST_SEED_ONLY]
        run += list(DIAGNOSTICS) if case.why else []
        if RESUME and all(store.get("sentinel2", case.name, m) for m in run):
            out[case.name] = {m: store.get("sentinel2", case.name, m) for m in run}
            continue  # computed by an earlier run of the same code (--resume)
        target = im20[names20.index(case.band)]
        grid = Grid(x0, y0, 10.0, 10.0, im10.shape[2], im10.shape[1])
        px, py, rows, cols = survey_points(target.shape, case.spacing, case.seed, case.design)
        x, y = x0 + px, y0 - py
        values = window_mean(target, rows, cols)
        info = ElementInfo("sentinel2", case.band, names10, seed=case.seed,
                           image_cache=image_cache)
        logger.info("Sentinel-2 %s: %d survey points", case.name, x.size)
        if first:
            _equivalence_note("Sentinel-2 " + case.name, methods, x, y, values, im10, grid, info)
            first = False
        out[case.name] = _score_s2(run, x, y, values, im10, grid, info, target, case.spacing,
                                   (rows, cols))
        store.put_many("sentinel2", case.name, out[case.name])
    return out, NOTES[notes_before:], skipped


def _score_s2(methods, x, y, values, im10, grid, info, target, spacing, corners):
    """``{method: record}`` of one Sentinel-2 sample set.

    ``corners``: the 20 m pixel corners ``(rows, cols)`` of the samples; the
    record's ``at_samples_rmse`` is the RMSE of the fused layer's 40 m mean
    around each sample against the sample value (0 = the samples honoured
    exactly).
    """
    r10, c10 = 2 * corners[0], 2 * corners[1]
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
            at = np.mean([layer[r10 + i, c10 + j] for i in range(-2, 2) for j in range(-2, 2)],
                         axis=0)
            rec.update(cc=metrics.pearson_cc(fused20, truth), rmse=metrics.rmse(fused20, truth),
                       ssim=metrics.ssim(fused20, truth),
                       at_samples_rmse=metrics.rmse(at, values))
    # consistency: against the kriged input (kriging alone), both at the survey support
    kriged = _kriged(x, y, values, grid, info)[2]
    ref_s = metrics.block_average(kriged, factor_s)[border_s:-border_s, border_s:-border_s]
    for name, rec in records.items():
        if name in at_s:
            rec.update(cons_cc=metrics.pearson_cc(at_s[name], ref_s),
                       cons_rmse=metrics.rmse(at_s[name], ref_s))
        logger.info("  %-40s %s", name, _fmt_rec(rec))
    return records


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


def run_kolari(methods, quick, seed, store, jobs=1, elements=None):
    """Run every method on the Kolari folds; scores go to ``store`` as each element finishes."""
    image, grid, names, valid, x, y, logv, (drow, dcol, n_dep) = load_kolari()
    folds = block_folds(x, y, seed)
    col = np.floor((x - grid.x_min) / grid.cell_x).astype(int)
    row = np.floor((grid.y_max - y) / grid.cell_y).astype(int)
    scored = valid[np.clip(row, 0, grid.nrows - 1), np.clip(col, 0, grid.ncols - 1)]
    on_valid = valid[drow, dcol]
    logger.info("Kolari: %d samples (%d on valid image pixels), %d folds of %s samples, "
                "%d of %d deposits inside the image (%d on valid pixels)", x.size, scored.sum(),
                N_FOLDS, np.bincount(folds).tolist(), drow.size, n_dep, on_valid.sum())
    elements = elements or (KOLARI_ELEMENTS[:1] if quick else KOLARI_ELEMENTS)
    image_cache = {}
    _equivalence_note("Kolari " + elements[0], methods, x, y, logv[elements[0]], image, grid,
                      ElementInfo("kolari", elements[0], names, log10=True, seed=seed,
                                  image_cache=image_cache))
    _KOLARI.update(image=image, grid=grid, names=names, valid=valid, x=x, y=y, logv=logv,
                   deposits=(drow[on_valid], dcol[on_valid]), folds=folds, scored=scored,
                   image_cache=image_cache, methods=methods, seed=seed, store=store)
    results = parallel_map(_kolari_element, elements, jobs)
    for element, records in zip(elements, results):  # stored by the workers as they finish
        store.fresh.update(f"kolari|{element}|{m}" for m in records)


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
    k["store"].put_many("kolari", element, records)
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
        self.put_many(protocol, case, {method: rec})

    def put_many(self, protocol, case, records):
        """Store ``{method: record}`` of one case.

        Merged into the file under a lock, so that invocations running side by side (e.g. one
        per protocol) keep each other's results.
        """
        updates = {}
        for method, rec in records.items():
            rec = {k: (float(v) if isinstance(v, (np.floating, float)) else v)
                   for k, v in rec.items()}
            rec["when"] = _now()
            updates[f"{protocol}|{case}|{method}"] = rec
        self.fresh.update(updates)
        self._merge(updates)

    def _merge(self, updates):
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self.path.exists():
                self.data = json.loads(self.path.read_text())
            self.data.update(updates)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True))
            tmp.replace(self.path)

    def put_run(self, report, protocol, **meta):
        """Record how the last run of ``protocol`` writing ``report`` (not --report-only) was made."""
        self._merge({f"_run {report} {protocol}": meta})

    def runs(self, report):
        """``{protocol: meta}`` of the runs recorded for ``report``."""
        return {p: self.data[f"_run {report} {p}"] for p in ("all", "sentinel2", "kolari")
                if f"_run {report} {p}" in self.data}

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


def _ok(rec):
    return bool(rec) and rec.get("status") == "ok"


def _margins(store, cases, peer):
    """Paired margins of the default over ``peer``: ``(case list, ΔCC, RMSE ratio − 1)``.

    ΔCC = CC(default) − CC(peer) (> 0: the default is better); the RMSE margin is
    RMSE(default) / RMSE(peer) − 1 (< 0: the default is better). Cases where either failed
    are left out.
    """
    used, dcc, drmse = [], [], []
    for case in cases:
        d, p = store.get("sentinel2", case.name, DEFAULT), store.get("sentinel2", case.name, peer)
        if _ok(d) and _ok(p):
            used.append(case)
            dcc.append(d["cc"] - p["cc"])
            drmse.append(d["rmse"] / p["rmse"] - 1.0)
    return used, np.asarray(dcc), np.asarray(drmse)


def _bootstrap_median(values, n_boot=2000, seed=0):
    """95 % percentile bootstrap interval of the median (cases resampled, seeded)."""
    values = np.asarray(values)
    if values.size < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    meds = np.median(values[rng.integers(0, values.size, (n_boot, values.size))], axis=1)
    return float(np.percentile(meds, 2.5)), float(np.percentile(meds, 97.5))


def _wilcoxon(values):
    """Two-sided Wilcoxon signed-rank p-value of paired margins (NaN when undefined)."""
    from scipy.stats import wilcoxon

    values = np.asarray(values)
    if values.size < 2 or not np.any(values != 0):
        return float("nan")
    return float(wilcoxon(values).pvalue)


def _claims(store, cases, peers):
    """Per peer and seed: share of cases won on both CC and RMSE, median and worst margins.

    The pooled row (all seeds) adds the 95 % bootstrap interval of the median margins and
    the Wilcoxon signed-rank p-value of the paired margins.
    """
    seeds = sorted({c.seed for c in cases})
    lines = ["| peer | seeds | cases won (CC and RMSE) | median ΔCC | worst ΔCC | "
             "median ΔRMSE | worst ΔRMSE | 95 % CI of median ΔCC | 95 % CI of median ΔRMSE | "
             "Wilcoxon p (CC / RMSE) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for peer in peers:
        for seed in [*seeds, None]:
            sub = [c for c in cases if seed is None or c.seed == seed]
            used, dcc, drm = _margins(store, sub, peer)
            if not used:
                continue
            won = int(np.sum((dcc > 0) & (drm < 0)))
            row = (f"| {peer} | {'all' if seed is None else seed} | {won}/{len(used)} "
                   f"({100 * won / len(used):.0f} %) | {np.median(dcc):+.3f} | {dcc.min():+.3f} | "
                   f"{100 * np.median(drm):+.1f} % | {100 * drm.max():+.1f} % |")
            if seed is None:
                lo, hi = _bootstrap_median(dcc)
                rlo, rhi = _bootstrap_median(drm)
                row += (f" [{lo:+.3f}, {hi:+.3f}] | [{100 * rlo:+.1f}, {100 * rhi:+.1f}] % | "
                        f"{_num(_wilcoxon(dcc), '.1g')} / {_num(_wilcoxon(drm), '.1g')} |")
            else:
                row += " | | |"
            lines.append(row)
    return lines


def _s2_medians(store, cases):
    """One row per method: median CC and ΔRMSE (vs kriging alone) per design."""
    designs = [d for d in S2_DESIGNS if any(c.design == d for c in cases)]
    head = "| method | " + " | ".join(f"{d}: median CC | {d}: median ΔRMSE" for d in designs)
    lines = [head + " | median time (s) |", "|---|" + "---|---|" * len(designs) + "---|"]
    for name in METHODS:
        cells, secs = [], []
        for design in designs:
            recs = [(store.get("sentinel2", c.name, name), store.get("sentinel2", c.name, BASELINE))
                    for c in cases if c.design == design]
            recs = [(r, b) for r, b in recs if _ok(r) and _ok(b)]
            if not recs:
                cells += ["", ""]
                continue
            secs += [r["seconds"] for r, _ in recs]
            cells += [f"{np.median([r['cc'] for r, _ in recs]):.3f}",
                      f"{100 * np.median([r['rmse'] / b['rmse'] - 1 for r, b in recs]):+.1f} %"]
        if secs:
            label = f"**{name}**" if name == DEFAULT else name
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {np.median(secs):.1f} |")
    return lines


def _s2_groups(store, cases):
    """Every case (scene, band, spacing, design) and method: mean and range over the seeds."""
    groups = {}
    for c in cases:
        groups.setdefault(c.group, []).append(c)
    lines = ["| case | method | seeds | CC mean | CC min–max | RMSE mean | RMSE min–max | "
             "SSIM mean | default better on CC and RMSE |",
             "|---|---|---|---|---|---|---|---|---|"]
    for group, members in groups.items():
        for name in METHODS:
            recs = [store.get("sentinel2", c.name, name) for c in members]
            ok = [r for r in recs if _ok(r)]
            if not any(recs):
                continue
            label = f"**{name}**" if name == DEFAULT else name
            if not ok:
                lines.append(f"| {group} | {label} | 0 | {recs[0].get('status', '?')} |"
                             + " |" * 5)
                continue
            cc = np.array([r["cc"] for r in ok])
            rm = np.array([r["rmse"] for r in ok])
            ss = np.array([r["ssim"] for r in ok])
            won = ""
            if name != DEFAULT:
                used, dcc, drm = _margins(store, members, name)
                won = f"{int(np.sum((dcc > 0) & (drm < 0)))}/{len(used)}" if used else ""
            lines.append(f"| {group} | {label} | {len(ok)} | {cc.mean():.3f} | {cc.min():.3f}–"
                         f"{cc.max():.3f} | {rm.mean():.4f} | {rm.min():.4f}–{rm.max():.4f} | "
                         f"{ss.mean():.3f} | {won} |")
    return lines


def _ratio_median(store, cases, a, b, key="rmse"):
    """Median over ``cases`` of ``rec_a[key] / rec_b[key] − 1`` and the number of cases."""
    vals = []
    for c in cases:
        ra, rb = store.get("sentinel2", c.name, a), store.get("sentinel2", c.name, b)
        if _ok(ra) and _ok(rb) and key in ra and key in rb and rb[key] > 0:
            vals.append(ra[key] / rb[key] - 1.0)
    return (float(np.median(vals)) if vals else float("nan")), len(vals)


def _why_findings(store, main_cases, why_cases):
    """The measured answers to "why does SAGA's point regression win where it wins"."""
    pr, rc = "SAGA point regression", "SAGA point regression + residual corr."
    out = []
    for spacing in S2_SPACINGS:
        sub = [c for c in main_cases if c.spacing == spacing]
        m, n = _ratio_median(store, sub, rc, pr)
        if n:
            out.append(f"- Residual correction (multilevel B-spline of the residuals at the image "
                       f"resolution, honouring the samples): SAGA's RMSE changes by {_pct(m)} "
                       f"(median of {n} cases, S = {spacing} m, all designs and seeds).")
    m, n = _ratio_median(store, why_cases, pr, "why: SAGA point regression, nearest-pixel sampling")
    m2, _ = _ratio_median(store, why_cases, rc,
                          "why: SAGA point regression + residual corr., nearest-pixel sampling")
    if n:
        out.append(f"- B-spline sampling of the predictors (vs the nearest pixel): SAGA's RMSE "
                   f"{_pct(m)} without and {_pct(m2)} with residual correction (median of {n} "
                   "cases). The samples sit on pixel corners: B-spline sampling there blends the "
                   "4 pixels around the point, closer to the 40 m support of the sample.")
    m, n = _ratio_median(store, why_cases, "why: SAGA point regression, bands averaged over 3 px", pr)
    m2, _ = _ratio_median(store, why_cases,
                          "why: SAGA point regression + residual corr., bands averaged over 3 px", rc)
    if n:
        out.append(f"- Support (the bands averaged over 3 px before SAGA samples them): RMSE "
                   f"{_pct(m)} without and {_pct(m2)} with residual correction (median of {n} "
                   "cases).")
    coarse = "why: adaptive fit, residual on the coarse grid"
    fine = "why: adaptive fit, residual kriged at 20 m"
    diffs = [abs(store.get("sentinel2", c.name, fine)["rmse"]
                 - store.get("sentinel2", c.name, coarse)["rmse"])
             for c in why_cases if _ok(store.get("sentinel2", c.name, fine))
             and _ok(store.get("sentinel2", c.name, coarse))]
    if diffs:
        out.append(f"- Residual at full resolution for the default's own fit: kriging its "
                   f"residual at 20 m instead of on the coarse grid changes the RMSE by at most "
                   f"{max(diffs):.5f} ({len(diffs)} cases): the kriged residual is smooth, cubic "
                   "resampling loses nothing.")
    m, n = _ratio_median(store, main_cases, rc, DEFAULT, key="at_samples_rmse")
    m2, _ = _ratio_median(store, main_cases, rc, DEFAULT)
    if n:
        out.append(f"- Exact honouring of the samples: SAGA with residual correction's error "
                   f"at the samples is {_pct(m)} relative to the default's, its RMSE on the map "
                   f"{_pct(m2)} (medians of {n} cases): honouring the samples is not what "
                   "makes a map accurate between them." if m < 0 < m2 else
                   f"- Exact honouring of the samples: SAGA with residual correction's error "
                   f"at the samples is {_pct(m)} relative to the default's, its RMSE on the map "
                   f"{_pct(m2)} (medians of {n} cases).")
    return out


def _why_section(store, main_cases):
    """The diagnostics of why SAGA's point regression wins where it wins (first seed)."""
    cases = [c for c in main_cases if store.get("sentinel2", c.name, next(iter(DIAGNOSTICS)))]
    if not cases:
        return []
    rows = [DEFAULT, "SAGA point regression", "SAGA point regression + residual corr.",
            *DIAGNOSTICS]
    lines = ["## Why SAGA's point regression wins where it wins (diagnostics, seed "
             f"{cases[0].seed})", "",
             "One factor changed at a time (`DIAGNOSTICS` in `bench/accuracy.py`): SAGA fed "
             "with nearest-pixel instead of B-spline sampling of the predictors, or with the "
             "bands averaged over 3 px (the support); the adaptive fit with its residual "
             "kriged at 20 m instead of the coarse grid (residual at full resolution). "
             "*at samples*: RMSE of the layer's 40 m mean at the samples against their values "
             "(0 = the samples honoured exactly).", "",
             "Measured (every factor as a relative change of RMSE against the truth):", ""]
    lines += _why_findings(store, main_cases, cases)
    lines += ["", "Medians over the cases of each design:", "",
             "| method | design | cases | median CC | median RMSE | median RMSE at samples |",
             "|---|---|---|---|---|---|"]
    for name in rows:
        for design in S2_DESIGNS:
            recs = [store.get("sentinel2", c.name, name) for c in cases if c.design == design]
            recs = [r for r in recs if _ok(r)]
            if recs:
                lines.append(f"| {name} | {design} | {len(recs)} | "
                             f"{np.median([r['cc'] for r in recs]):.3f} | "
                             f"{np.median([r['rmse'] for r in recs]):.4f} | "
                             f"{np.median([r.get('at_samples_rmse', np.nan) for r in recs]):.4f} |")
    return lines + [""]


def _s2_section(store, cases):
    """Medians per design, the claims per seed and peer, and every case over the seeds."""
    lines = ["Medians over the cases and seeds, per survey design:", ""]
    lines += _s2_medians(store, cases) + [""]
    for design in S2_DESIGNS:
        sub = [c for c in cases if c.design == design]
        if not sub:
            continue
        lines += [f"Claims, design *{design}* — the default against each peer, per seed "
                  "(ΔCC = CC of the default − the peer's; ΔRMSE = RMSE of the default / the "
                  "peer's − 1; *worst* = the peer's best case):", ""]
        lines += _claims(store, sub, PEERS + [m for m in PAPER_ROWS if m in METHODS]) + [""]
    lines += ["Every case, over the seeds:", ""] + _s2_groups(store, cases) + [""]
    return lines


def _s2_verdicts(store, cases, label):
    """The target lines: the default against each peer on every case and seed."""
    lines = []
    for peer in PEERS:
        sub = cases
        if peer in FIRST_SEED_ONLY:
            sub = [c for c in cases if c.first]
            if not sub:
                continue
        used, dcc, drm = _margins(store, sub, peer)
        n = len(used)
        cc_w, rm_w = int(np.sum(dcc > 0)), int(np.sum(drm < 0))
        both = int(np.sum((dcc > 0) & (drm < 0)))
        if n == 0:
            verdict = "not measured (the peer failed or is missing, see its rows)"
        elif both == n == len(sub):
            verdict = "**met**"
        else:
            lost = sorted({c.group for c, a, b in zip(used, dcc, drm) if not (a > 0 and b < 0)})
            verdict = "not met" + (f" ({len(sub) - n} case(s) not measured)"
                                   if n < len(sub) else "")
            if lost:
                verdict += "; lost or tied in " + ", ".join(lost)
        lines.append(f"- {label} vs {peer}: better CC in {cc_w}/{n}, lower RMSE in {rm_w}/{n}, "
                     f"both in {both}/{n} of {len(sub)} case-seeds"
                     + (" (first seed only)" if sub is not cases else "") + f" — {verdict}")
    return lines


def _pct(v):
    return f"{100 * v:+.1f} %".replace("-", "−")


def readme_summary(store, s2_list, kolari_list):
    """The lines the README's accuracy section copies, word for word."""
    main_cases = [c for c in s2_list if not c.heldout]
    held = [c for c in s2_list if c.heldout]
    designs = [d for d in S2_DESIGNS if any(c.design == d for c in main_cases)]
    seeds = sorted({c.seed for c in main_cases})
    lines = []
    if main_cases:
        head = "| method | " + " | ".join(f"Sentinel-2 {d}: median CC / RMSE vs kriging"
                                          for d in designs)
        head += " | Kolari: RMSE vs kriging (" + "/".join(kolari_list) + ") |" if kolari_list \
            else " |"
        lines += [head, "|---|" + "---|" * (len(designs) + bool(kolari_list))]
        rows = [BASELINE, *PAPER_ROWS[:1], "paper global PC2", "coherent global",
                "regression kriging", "SAGA GWR", "SAGA point regression",
                "SAGA point regression + residual corr.", DEFAULT]
        for name in rows:
            cells = []
            for design in designs:
                recs = [(store.get("sentinel2", c.name, name),
                         store.get("sentinel2", c.name, BASELINE))
                        for c in main_cases if c.design == design]
                recs = [(r, b) for r, b in recs if _ok(r) and _ok(b)]
                cells.append(f"{np.median([r['cc'] for r, _ in recs]):.2f} / "
                             + _pct(np.median([r["rmse"] / b["rmse"] - 1 for r, b in recs]))
                             + (f" ({len(recs)})" if len(recs) < sum(c.design == design
                                                                       for c in main_cases) else "")
                             if recs else "(not run)")
            if kolari_list:
                ks = []
                for e in kolari_list:
                    r, b = store.get("kolari", e, name), store.get("kolari", e, BASELINE)
                    ks.append(_pct(r["rmse"] / b["rmse"] - 1) if _ok(r) and _ok(b) else "n/a")
                cells.append(" / ".join(ks) if any(k != "n/a" for k in ks) else "(not run)")
            if all(c == "(not run)" for c in cells):
                continue
            label = "**default: adaptive**" if name == DEFAULT else name
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        ran = [c for c in main_cases if _ok(store.get("sentinel2", c.name, DEFAULT))]
        seeds_ran = sorted({c.seed for c in ran})
        lines += ["", "Sentinel-2: 2 scenes × B11/B12 × S = 320/640 m per design and seed; "
                  f"{len(ran)} of the {len(main_cases)} planned case-seeds ran (seeds "
                  f"{', '.join(map(str, seeds_ran))} of {', '.join(map(str, seeds))}; "
                  "`bench/results/accuracy.md` says which). In parentheses the number of cases "
                  "of a row that ran on fewer. The default against each peer: cases won on both "
                  "CC and RMSE, median and worst RMSE margin:", ""]
        for design in designs:
            sub = [c for c in main_cases if c.design == design]
            parts = []
            for peer in PEERS:
                if peer == BASELINE:
                    continue
                psub = [c for c in sub if c.first] if peer in FIRST_SEED_ONLY else sub
                used, dcc, drm = _margins(store, psub, peer)
                if not used:
                    continue
                won = int(np.sum((dcc > 0) & (drm < 0)))
                parts.append(f"{peer} {won}/{len(used)} ({_pct(np.median(drm))}, worst "
                             f"{_pct(drm.max())})")
            lines.append(f"- *{design}*: " + "; ".join(parts) + ".")
    if held:
        parts = []
        for peer in PEERS:
            if peer == BASELINE or peer in FIRST_SEED_ONLY:
                continue
            used, dcc, drm = _margins(store, held, peer)
            if used:
                won = int(np.sum((dcc > 0) & (drm < 0)))
                parts.append(f"{peer} {won}/{len(used)} ({_pct(np.median(drm))}, worst "
                             f"{_pct(drm.max())})")
        lines.append("- *held-out band B05* (never scored while the default was designed; "
                     "S = 640 m, all designs and seeds): " + "; ".join(parts) + ".")
    if kolari_list:
        rel = {e: store.get("kolari", e, DEFAULT)["rmse"] / store.get("kolari", e, BASELINE)["rmse"]
               - 1.0 for e in kolari_list if _ok(store.get("kolari", e, DEFAULT))
               and _ok(store.get("kolari", e, BASELINE))}
        worse = [e for e, r in rel.items() if r > 1e-4]  # 0.01 %: the same kriging, rounded
        missing = [e for e in kolari_list if not (_ok(store.get("kolari", e, DEFAULT))
                                                  and _ok(store.get("kolari", e, BASELINE)))]
        if missing:
            lines.append("- *Kolari*: not measured for " + ", ".join(missing) + ".")
        else:
            same = [e for e, r in rel.items() if abs(r) <= 1e-4]
            better = [e for e, r in rel.items() if r < -1e-4]
            parts = []
            if same:
                parts.append(f"{', '.join(same)}: kriging alone (RMSE within "
                             f"{100 * max(abs(rel[e]) for e in same):.3f} %)")
            if better:
                parts.append(", ".join(f"{e}: {_pct(rel[e])}" for e in better))
            if worse:
                parts.append("worse than kriging alone: "
                             + ", ".join(f"{e} {_pct(rel[e])}" for e in worse))
            lines.append("- *Kolari* (one real survey, 5 spatial folds), the default against "
                         "kriging alone: " + "; ".join(parts) + ".")
    return lines


def report(store, s2_list, kolari_list, *, command, runtime, quick, jobs=1, out="", code=None):
    """The Markdown report of the stored scores."""
    lines = ["# Accuracy benchmark on real data (issue 6)", ""]
    runs = store.runs(out)
    if runtime is None and runs:  # --report-only: describe the runs that made the results
        lines += [f"- Report rewritten with `{command}` from the results of the run(s) below."]
        for meta in runs.values():
            lines += [f"- Command: `{meta['command']}` — {meta.get('date', '?')}, "
                      f"{meta['runtime']:.0f} s, {meta.get('jobs', 1)} parallel processes, "
                      f"code: commit {meta.get('code', '?')}"]
    else:
        lines += [f"- Command: `{command}`",
                  f"- Date: {_now()}",
                  (f"- Total runtime: {runtime:.0f} s" if runtime is not None else "- Nothing run")
                  + (" (quick subset)" if quick else "")
                  + (f", scenes and Kolari elements in {jobs} parallel processes"
                     if jobs > 1 else ""),
                  f"- Code: commit {code or _code_version()}"]
    lines += [f"- Machine: {platform.node()} — {platform.platform()}, {os.cpu_count()} CPUs, "
              f"Python {platform.python_version()}, numpy {np.__version__}",
              f"- SAGA: {_saga_version()}",
              ""]
    made = store.fresh | {k for meta in runs.values() for k in meta.get("keys", [])}
    stale = [k for k in store.data if k not in made and k.count("|") == 2
             and k.split("|")[1] in {c.name for c in s2_list} | set(kolari_list)]
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
              "variogram_model='spherical', n_closest_points=32)` fitted on all image bands "
              "averaged over the support window it chooses by the default's rule (the default's "
              "windows 1/3/5 px at the same sample pixels, lowest leave-one-out error of the "
              "linear regression), the same window at every pixel; its residuals are kriged on "
              "the coarse grid and cubic-resampled (`--rk-pixelwise` kriges them at every pixel "
              "instead, about 60 times slower);",
              "- *SAGA GWR*: `saga_cmd statistics_regression 14` (GWR for Grid Downscaling, tool "
              "defaults: local, 10 cells, no distance weighting) of the kriged coarse grid with "
              "the image bands as predictors, without and with its residual correction (one SAGA "
              "run gives both; its time is under *SAGA GWR*);",
              "- *SAGA point regression*: `saga_cmd statistics_regression 1` (Multiple Regression "
              "Analysis, Points and Predictor Grids) of the samples on the image bands, with the "
              "settings of issue 17: `METHOD=0` (all predictors), `RESAMPLING=3` (B-spline "
              "sampling of the predictors at the points), `RESIDUAL_COR=0` (multilevel B-spline "
              "interpolation of the residuals at the image resolution), tool defaults otherwise; "
              "*+ residual corr.* is its `REGRESCORR` output (one SAGA run gives both).", "",
              "*time*: seconds in the method's call, incremental: the kriging of a sample set is "
              "computed by the first method that needs it (kriging alone, listed first) and "
              "shared with the others; the image features and K-means units are computed once "
              "per image. *product default* runs `fuse_samples` in full each time.", ""]
    notes = NOTES or list(dict.fromkeys(n for meta in runs.values() for n in meta.get("notes", [])))
    lines += [f"- {note}" for note in notes] + ([""] if notes else [])
    main_cases = [c for c in s2_list if not c.heldout]
    held = [c for c in s2_list if c.heldout]
    if s2_list:
        seeds = sorted({c.seed for c in s2_list})
        lines += ["## Protocol 1 — real Sentinel-2, target B11/B12 at 20 m", "",
                  "Survey of spacing S in three designs: *jittered* (one point per S×S cell, "
                  "offset ≤ S/4), *random* (as many points, uniform), *lines* (as many points "
                  "along meandering lines, one every S/3, as road or stream sampling); value = "
                  "mean of the target in 40 m. Image = B02, B03, B04, B08 at 10 m. "
                  "CC, RMSE (reflectance) and SSIM of the fused layer block-averaged to 20 m "
                  "against the real band, border of 2·S excluded; *ΔRMSE* relative to kriging "
                  f"alone. Survey seeds: {', '.join(map(str, seeds))} (each seed draws new "
                  "points for every case and design); the paper's modes (and their PC2 rows) "
                  "and SAGA GWR run on the first seed of the jittered design only (SAGA GWR is "
                  "far behind everywhere and costs more than the other methods together), the "
                  "other peers on every case and seed. SAGA runs "
                  "single-threaded (`OMP_NUM_THREADS=1`), as every method here (one BLAS "
                  "thread per process). Per-seed records with consistency "
                  "(fused vs kriged input at the survey support) are in "
                  "`bench/work/accuracy.json`.", ""]
        lines += _s2_section(store, main_cases)
        lines += _why_section(store, main_cases)
    if held:
        lines += ["## Protocol 1b — held-out target (B05, red edge 1, 20 m)", "",
                  "The same protocol (S = 640 m, the sparser survey, where the margins are "
                  "smallest) with B05 as the truth: a band that no tuning run of the "
                  "default ever scored (the development runs use `--quick` or the B11/B12 "
                  "cases only; `--no-heldout` leaves it out). Reported apart, never pooled with "
                  "the cases above.", ""]
        lines += _s2_section(store, held)
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
    lines += ["## Summary (the README's accuracy section copies it)", ""]
    lines += readme_summary(store, s2_list, kolari_list) + [""]
    lines += ["## Summary against the targets", ""]
    if s2_list:
        lines += ["Sentinel-2 — the product default must beat each peer on both CC and RMSE in every "
                  "case, design and seed:", ""]
        for design in S2_DESIGNS:
            sub = [c for c in main_cases if c.design == design]
            if sub:
                lines += _s2_verdicts(store, sub, design)
        for design in S2_DESIGNS:
            sub = [c for c in held if c.design == design]
            if sub:
                lines += _s2_verdicts(store, sub, f"held-out B05, {design}")
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
    global RK_PIXELWISE, DEADLINE, RESUME
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="one scene, one band, S=640 m, no held-out band; Kolari: Cu only")
    parser.add_argument("--only", default="",
                        help="comma-separated method names to run (others are taken from "
                             "bench/work/accuracy.json); known: " + ", ".join(METHODS))
    parser.add_argument("--protocol", choices=("all", "sentinel2", "kolari"), default="all")
    parser.add_argument("--output", type=Path, default=None,
                        help="report path (default bench/results/accuracy.md; with --quick "
                             "bench/work/accuracy-quick.md)")
    parser.add_argument("--rk-pixelwise", action="store_true",
                        help="krige the regression-kriging residuals at every pixel (slow)")
    parser.add_argument("--seed", type=int, default=SEED,
                        help="first survey seed (Sentinel-2) and the seed of the Kolari folds")
    parser.add_argument("--seeds", type=int, default=N_SEEDS,
                        help="Sentinel-2 survey seeds per case: --seed, --seed + 1, ...")
    parser.add_argument("--designs", default=",".join(S2_DESIGNS),
                        help="Sentinel-2 survey designs, comma-separated: " + ", ".join(S2_DESIGNS))
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="start no Sentinel-2 case after this many minutes (seeds run in "
                             "order, so the first seeds are complete); the report says how many "
                             "cases were left out")
    parser.add_argument("--elements", default="",
                        help="Kolari elements, comma-separated (default: " +
                             ", ".join(KOLARI_ELEMENTS) + ")")
    parser.add_argument("--resume", action="store_true",
                        help="skip Sentinel-2 cases whose every method is already in "
                             "bench/work/accuracy.json (an interrupted run of the same code)")
    parser.add_argument("--no-why", action="store_true",
                        help="leave out the diagnostics of why SAGA's point regression wins "
                             "(run on the first seed's jittered B11 cases; --quick always leaves "
                             "them out)")
    parser.add_argument("--no-heldout", action="store_true",
                        help="leave out the held-out target (B05); --quick always does")
    parser.add_argument("--report-only", action="store_true",
                        help="only rewrite the report from bench/work/accuracy.json")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="Sentinel-2 scenes and Kolari elements run in parallel "
                             "processes (times then include contention)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("geochem_fusion").setLevel(logging.WARNING)  # the core's own INFO is noise here
    if not DATA.is_dir():
        print(f"accuracy benchmark skipped: real data not found at {DATA}")
        return 0
    RK_PIXELWISE = args.rk_pixelwise
    RESUME = args.resume
    DEADLINE = None if args.max_minutes is None else time.time() + 60.0 * args.max_minutes
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
        designs = [d.strip() for d in args.designs.split(",") if d.strip()]
        if not designs or set(designs) - set(S2_DESIGNS):
            parser.error(f"--designs: choose among {', '.join(S2_DESIGNS)}")
        s2_list = s2_cases(args.quick, range(args.seed, args.seed + args.seeds), designs,
                           heldout=not args.no_heldout,
                           why=not (args.no_why or args.quick))
        if not args.report_only:
            run_s2(methods, s2_list, store, jobs=args.jobs)
    if args.protocol in ("all", "kolari"):
        elements = [e.strip() for e in args.elements.split(",") if e.strip()]
        if set(elements) - set(KOLARI_ELEMENTS):
            parser.error(f"--elements: choose among {', '.join(KOLARI_ELEMENTS)}")
        kolari_list = elements or list(KOLARI_ELEMENTS[:1] if args.quick else KOLARI_ELEMENTS)
        if not args.report_only:
            run_kolari(methods, args.quick, args.seed, store, jobs=args.jobs,
                       elements=kolari_list)
    runtime = None if args.report_only else time.perf_counter() - t0
    command = shlex.join(["python", "bench/accuracy.py",
                          *(argv if argv is not None else sys.argv[1:])])
    out = args.output or (WORK / "accuracy-quick.md" if args.quick else RESULTS / "accuracy.md")
    out_key = os.path.relpath(out.resolve(), REPO)
    if runtime is not None:
        store.put_run(out_key, args.protocol, command=command.strip(), runtime=runtime,
                      jobs=args.jobs,
                      date=_now(), keys=sorted(store.fresh), notes=list(NOTES), code=code)
    text = report(store, s2_list, kolari_list, command=command.strip(), runtime=runtime,
                  quick=args.quick, jobs=1 if args.report_only else args.jobs, out=out_key,
                  code=code)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    print(text)
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
