"""Raster input/output for the algorithms (GDAL), kept out of ``core``.

Reading turns nodata into NaN (the core convention).  Writing goes to a
temporary file in the destination folder that is moved into place only when
it is complete, so a failure never leaves a half-written output.
"""

import os
import uuid
from dataclasses import dataclass

import numpy as np
from osgeo import gdal

from ..core.grid import Grid

gdal.UseExceptions()

NODATA = -9999.0
"""Nodata value of float outputs (also understood by SAGA, ArcGIS, R)."""

GTIFF_OPTIONS = ["COMPRESS=DEFLATE", "PREDICTOR=2", "TILED=YES", "BIGTIFF=IF_SAFER"]


@dataclass
class RasterData:
    data: np.ndarray  # (bands, rows, cols) float64, NaN = nodata
    grid: Grid
    crs_wkt: str
    descriptions: list


def layer_path(layer, name="raster"):
    """File path of a raster layer, refusing providers GDAL cannot read as a file."""
    provider = layer.providerType()
    if provider != "gdal":
        raise ValueError(
            f"Layer '{layer.name()}' comes from the '{provider}' provider; this algorithm needs a "
            f"file-based raster (GeoTIFF, JPEG2000, ...). Save it with Raster > Conversion > "
            f"Translate first."
        )
    return layer.source()


def open_raster(path):
    try:
        return gdal.Open(path)
    except RuntimeError as exc:
        raise ValueError(f"Cannot open raster '{path}': {exc}") from exc


def read_raster(path, *, bands=None, window=None):
    """Read a raster as float64 ``(bands, rows, cols)`` with nodata as NaN.

    ``window`` is ``(row0, col0, nrows, ncols)``; ``bands`` 1-based band numbers.
    """
    ds = open_raster(path)
    gt = ds.GetGeoTransform(can_return_null=True)
    if gt is None:
        raise ValueError(f"Raster '{path}' has no georeferencing; georeference it first.")
    full = Grid.from_gdal(gt, (ds.RasterYSize, ds.RasterXSize))
    row0, col0, nrows, ncols = window or (0, 0, ds.RasterYSize, ds.RasterXSize)
    numbers = list(bands) if bands else list(range(1, ds.RasterCount + 1))
    out = np.empty((len(numbers), nrows, ncols), dtype=np.float64)
    descriptions = []
    for i, b in enumerate(numbers):
        band = ds.GetRasterBand(b)
        arr = band.ReadAsArray(col0, row0, ncols, nrows).astype(np.float64, copy=False)
        nodata = band.GetNoDataValue()
        if nodata is not None and not np.isnan(nodata):
            arr[arr == nodata] = np.nan
        out[i] = arr
        descriptions.append(band.GetDescription() or f"Band {b}")
    grid = full.window(row0, col0, nrows, ncols)
    return RasterData(out, grid, ds.GetProjection(), descriptions)


def _check_destination(path):
    folder = os.path.dirname(os.path.abspath(path)) or "."
    if not os.path.isdir(folder):
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise ValueError(
                f"Cannot create the output folder '{folder}' ({exc.strerror}); choose another output."
            ) from exc
    if not os.access(folder, os.W_OK):
        raise ValueError(
            f"The output folder '{folder}' is not writable; choose a folder you can write to."
        )
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".tif", ".tiff"):
        raise ValueError(
            f"Output '{path}': only GeoTIFF (.tif) is written by this plugin; use a .tif file name "
            f"and convert with Raster > Conversion > Translate if you need another format."
        )
    return folder


def write_raster(path, data, grid, crs_wkt, *, descriptions=None, dtype="float32", nodata=NODATA,
                 metadata=None):
    """Write ``data`` ((bands, rows, cols) or (rows, cols), NaN = nodata) as a GeoTIFF.

    The file appears at ``path`` only once complete (temporary file + rename);
    band statistics are computed so that QGIS stretches the layer well. An
    existing file at ``path`` is replaced (Processing's overwrite semantics).
    """
    folder = _check_destination(path)
    arr = np.asarray(data)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.shape[1:] != grid.shape:
        raise ValueError(f"array shape {arr.shape[1:]} does not match the grid {grid.shape}")
    gdal_type = {"float32": gdal.GDT_Float32, "float64": gdal.GDT_Float64,
                 "int16": gdal.GDT_Int16, "int32": gdal.GDT_Int32, "uint8": gdal.GDT_Byte}[dtype]
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex[:8]}.partial.tif")
    try:
        driver = gdal.GetDriverByName("GTiff")
        ds = driver.Create(tmp, grid.ncols, grid.nrows, arr.shape[0], gdal_type, GTIFF_OPTIONS)
        ds.SetGeoTransform(grid.to_gdal())
        if crs_wkt:
            ds.SetProjection(crs_wkt)
        for i in range(arr.shape[0]):
            band = ds.GetRasterBand(i + 1)
            values = arr[i]
            if nodata is not None:
                band.SetNoDataValue(float(nodata))
                values = np.where(np.isfinite(values), values, nodata)
            band.WriteArray(values.astype(dtype, copy=False))
            if descriptions is not None:
                band.SetDescription(str(descriptions[i]))
            if np.isfinite(arr[i]).any():
                band.ComputeStatistics(False)
        if metadata:
            ds.SetMetadata({str(k): str(v) for k, v in metadata.items()})
        ds.FlushCache()
        ds = None
        os.replace(tmp, path)
        # statistics live in a side-car .aux.xml (GDAL PAM): move it with the file
        if os.path.exists(tmp + ".aux.xml"):
            os.replace(tmp + ".aux.xml", path + ".aux.xml")
        elif os.path.exists(path + ".aux.xml"):
            os.remove(path + ".aux.xml")
    except BaseException:
        ds = None
        for leftover in (tmp, tmp + ".aux.xml"):
            if os.path.exists(leftover):
                os.remove(leftover)
        raise
    return path


def warp_to_crs(path, crs_wkt):
    """Warp ``path`` to ``crs_wkt`` (cubic) into an in-memory VRT/MEM dataset path."""
    out = f"/vsimem/geochem_fusion_{uuid.uuid4().hex}.tif"
    gdal.Warp(out, path, dstSRS=crs_wkt, resampleAlg="cubic", dstNodata=NODATA,
              outputType=gdal.GDT_Float32)
    return out


def metadata_float(path, key):
    """A float metadata item of a raster (e.g. SAMPLE_SPACING written by krigesamples), or None."""
    value = open_raster(path).GetMetadataItem(key)
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
