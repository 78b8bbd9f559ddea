"""Fixtures of the QGIS-layer tests (pytest-qgis: QGIS 3.22 headless).

- ``geochem_provider`` registers the ``geochemfusion`` provider once per
  session (after pytest-qgis' ``qgis_processing``); ``provider_unregistered``
  takes it out for one test (plugin load/unload tests) and puts it back.
- ``run_alg`` runs ``geochemfusion:<id>`` through ``processing.run``.
- ``demo`` is the embedded demo data folder (``data/demo``).
- ``make_raster`` / ``make_points`` write small synthetic GeoTIFFs and point
  GeoPackages in ``tmp_path``; ``read_raster`` reads an output back
  (nodata -> NaN) with its band descriptions.
"""

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, ogr, osr
from qgis.core import QgsApplication

# The original provider class (test_dependencies re-imports the package with
# optional modules hidden; re-registration must not depend on that state).
from geochem_fusion.provider import GeochemFusionProvider

gdal.UseExceptions()
ogr.UseExceptions()

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "data" / "demo"
PROVIDER_ID = "geochemfusion"
ALGORITHM_IDS = frozenset({
    "krigesamples", "mineralindices", "principalcomponents", "laplaciandecomposition",
    "kmeansunits", "regressionfusion", "fusegeochemistry", "preparesentinel2", "prepareaster",
    "evaluatefusion", "crossvalidatefusion", "anomalythresholds", "paper_fusion",
})
UTM_19S = 32719  # the demo data's CRS (WGS 84 / UTM zone 19S)
# Synthetic rasters: 10 m pixels with the upper-left corner here (UTM 19S).
X0, Y0, CELL = 300_000.0, 7_000_000.0, 10.0


@pytest.fixture(scope="session", autouse=True)
def _single_threaded_blas():
    """One BLAS thread.

    PyKrige solves thousands of tiny systems, and a multi-threaded
    OpenBLAS on a busy 2-core machine made one kriging take 0.2 s or 12 s at random.
    Results are unaffected (algorithm and expected values run in the same process).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


class _Registration:
    """Python reference to the registered provider.

    PyQGIS needs it: when the Python provider object is garbage-collected its
    algorithms disappear from the registry ("Algorithm ... not found").
    """

    provider = None


def register_provider():
    registry = QgsApplication.processingRegistry()
    if registry.providerById(PROVIDER_ID) is None:
        _Registration.provider = GeochemFusionProvider()
        assert registry.addProvider(_Registration.provider)
    return registry.providerById(PROVIDER_ID)


@pytest.fixture(scope="session")
def geochem_provider(qgis_processing):
    """The registered ``geochemfusion`` provider id (registered once per session)."""
    register_provider()
    return PROVIDER_ID


@pytest.fixture
def provider_unregistered(geochem_provider):
    """No ``geochemfusion`` provider during the test; the session one is restored after."""
    registry = QgsApplication.processingRegistry()
    current = registry.providerById(PROVIDER_ID)
    if current is not None:
        registry.removeProvider(current)  # deletes the C++ provider
        _Registration.provider = None
    yield registry
    stray = registry.providerById(PROVIDER_ID)  # left by a failed test
    if stray is not None:
        registry.removeProvider(stray)
    register_provider()


@pytest.fixture(scope="session")
def run_alg(geochem_provider):
    """``run_alg("krigesamples", params, **kwargs)`` = ``processing.run("geochemfusion:…")``."""
    import processing  # importable once pytest-qgis has initialized Processing

    def run(alg_id, parameters, **kwargs):
        return processing.run(f"{PROVIDER_ID}:{alg_id}", parameters, **kwargs)

    return run


@pytest.fixture(scope="session")
def demo():
    """Folder of the embedded demo data (sentinel2.tif, samples.gpkg, ...)."""
    assert (DEMO / "sentinel2.tif").is_file(), f"demo data missing in {DEMO}"
    return DEMO


# ---------------------------------------------------------------------------
# synthetic data
# ---------------------------------------------------------------------------
def _srs(epsg):
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    return srs


def write_geotiff(path, data, *, x_min=X0, y_max=Y0, cell=CELL, epsg=UTM_19S, nodata=None,
                  descriptions=None, metadata=None, dtype=gdal.GDT_Float32):
    """Write ``data`` ((bands, rows, cols) or (rows, cols); NaN kept as is) as a GeoTIFF."""
    arr = np.asarray(data)
    if arr.ndim == 2:
        arr = arr[None]
    ds = gdal.GetDriverByName("GTiff").Create(str(path), arr.shape[2], arr.shape[1],
                                              arr.shape[0], dtype)
    ds.SetGeoTransform((x_min, cell, 0.0, y_max, 0.0, -cell))
    ds.SetProjection(_srs(epsg).ExportToWkt())
    for i in range(arr.shape[0]):
        band = ds.GetRasterBand(i + 1)
        if nodata is not None:
            band.SetNoDataValue(float(nodata))
        band.WriteArray(arr[i])
        if descriptions is not None:
            band.SetDescription(descriptions[i])
    if metadata:
        ds.SetMetadata({k: str(v) for k, v in metadata.items()})
    ds.FlushCache()
    ds = None
    return str(path)


def write_points(path, xy, fields, *, epsg=UTM_19S, layer="samples"):
    """Write points ``xy`` (n, 2) with numeric ``fields`` ({name: values}) to a GeoPackage."""
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    lyr = ds.CreateLayer(layer, _srs(epsg), ogr.wkbPoint)
    for name in fields:
        lyr.CreateField(ogr.FieldDefn(name, ogr.OFTReal))
    for i, (x, y) in enumerate(np.asarray(xy, float)):
        feat = ogr.Feature(lyr.GetLayerDefn())
        for name, values in fields.items():
            feat.SetField(name, float(values[i]))
        geom = ogr.Geometry(ogr.wkbPoint)
        geom.AddPoint_2D(float(x), float(y))
        feat.SetGeometry(geom)
        lyr.CreateFeature(feat)
    ds = None
    return f"{path}|layername={layer}"


def smooth_stack(n_bands, rows, cols, *, seed=0, hole=True):
    """Correlated smooth bands plus fine texture; a NaN hole (nodata) when ``hole``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:cols] / max(rows, cols)
    base = [np.sin(3 * xx + 1) * np.cos(2 * yy), xx * yy, np.cos(5 * yy - xx)]
    bands = []
    for _ in range(n_bands):
        w = rng.normal(size=len(base))
        bands.append(0.3 + 0.1 * sum(wi * f for wi, f in zip(w, base))
                     + 0.02 * rng.normal(size=(rows, cols)))
    stack = np.array(bands)
    if hole:
        stack[:, 5:9, 7:12] = np.nan
    return stack


@dataclass
class Raster:
    data: np.ndarray  # (bands, rows, cols) float64, NaN = nodata
    nodata: list  # per band
    descriptions: list
    geotransform: tuple
    metadata: dict


def read_geotiff(path):
    """Read a raster with nodata as NaN (the core convention)."""
    ds = gdal.Open(str(path))
    data, nodata, desc = [], [], []
    for i in range(1, ds.RasterCount + 1):
        band = ds.GetRasterBand(i)
        arr = band.ReadAsArray().astype(np.float64)
        nd = band.GetNoDataValue()
        if nd is not None and not np.isnan(nd):
            arr[arr == nd] = np.nan
        data.append(arr)
        nodata.append(nd)
        desc.append(band.GetDescription())
    return Raster(np.array(data), nodata, desc, ds.GetGeoTransform(), ds.GetMetadata())


def read_samples(source, fields):
    """Coordinates and field values of a point layer (``path|layername=...``), in FID order."""
    path, _, layer = str(source).partition("|layername=")
    ds = ogr.Open(path)
    lyr = ds.GetLayerByName(layer) if layer else ds.GetLayer(0)
    xs, ys, vals = [], [], {f: [] for f in fields}
    for feat in lyr:
        geom = feat.GetGeometryRef()
        xs.append(geom.GetX())
        ys.append(geom.GetY())
        for f in fields:
            v = feat.GetField(f)
            vals[f].append(np.nan if v is None else float(v))
    return np.array(xs), np.array(ys), {f: np.array(v) for f, v in vals.items()}


@pytest.fixture
def make_raster(tmp_path):
    """``make_raster("name.tif", data, **write_geotiff options)`` -> path in tmp_path."""
    def make(name, data, **kwargs):
        return write_geotiff(tmp_path / name, data, **kwargs)

    return make


@pytest.fixture
def make_points(tmp_path):
    """``make_points("name.gpkg", xy, {"Cu": values}, epsg=...)`` -> layer source string."""
    def make(name, xy, fields, **kwargs):
        return write_points(tmp_path / name, xy, fields, **kwargs)

    return make


@pytest.fixture(scope="session")
def read_raster():
    return read_geotiff


@pytest.fixture(scope="session")
def samples_of():
    return read_samples


@pytest.fixture(scope="session")
def stack():
    return smooth_stack


def leftovers(folder):
    """Temporary (``*.partial*``) files left in ``folder``."""
    return [n for n in os.listdir(folder) if ".partial" in n]


@pytest.fixture(scope="session")
def partial_files():
    return leftovers


def assert_written(path):
    """Every band has a nodata value and GDAL statistics (so QGIS stretches it well)."""
    ds = gdal.Open(str(path))
    for i in range(1, ds.RasterCount + 1):
        band = ds.GetRasterBand(i)
        assert band.GetNoDataValue() is not None, f"{path} band {i}: no nodata value"
        assert band.GetMetadataItem("STATISTICS_MINIMUM") is not None, f"{path} band {i}: no stats"
        assert band.GetStatistics(False, False) is not None


@pytest.fixture(scope="session")
def check_output():
    return assert_written
