"""Raster input/output for the algorithms (GDAL), kept out of ``core``.

Reading turns nodata into NaN (the core convention) after checking that the
raster fits in memory (:func:`check_memory`).  Writing goes to a temporary
file in the destination folder that is moved into place only when it is
complete, so a failure (a full disk, a cancel) never leaves a half-written
output, and an existing file at the destination is kept until the new one is
complete.
"""

import contextlib
import errno
import os
import re
import shutil
import uuid
from dataclasses import dataclass

import numpy as np
from osgeo import gdal, osr

from ..core.blocks import block_rows_for, row_blocks, sample_pixels_from_windows
from ..core.grid import Grid
from ..core.vocabulary import SAMPLE_SIZE

gdal.UseExceptions()

NODATA = -9999.0
"""Nodata value of float outputs (also understood by SAGA, ArcGIS, R)."""

GTIFF_OPTIONS = ["COMPRESS=DEFLATE", "PREDICTOR=2", "TILED=YES", "BIGTIFF=IF_SAFER",
                 "NUM_THREADS=ALL_CPUS"]
"""Creation options of every GeoTIFF written (``NUM_THREADS``: blocks compressed in parallel)."""


@dataclass
class RasterData:
    """A raster read whole: data, grid, CRS and band descriptions."""

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
    """Open ``path`` with GDAL (read only), or raise a message naming the file."""
    try:
        return gdal.Open(path)
    except RuntimeError as exc:
        raise ValueError(f"Cannot open raster '{path}': {exc}") from exc


@contextlib.contextmanager
def gdal_errors(path, what=None, remedy=None):
    """Turn a GDAL error (``RuntimeError``) raised inside the block into a message naming the file.

    ``what`` says what the file is (e.g. ``"band B04"``); ``remedy`` what to do
    (default: check the file, or export it again).
    """
    try:
        yield
    except RuntimeError as exc:
        label = f"{what}: " if what else ""
        remedy = remedy or ("Check the file (open it in QGIS), or export or download it again.")
        raise ValueError(f"{label}GDAL could not read '{path}' ({str(exc).strip()}); the file is "
                         f"damaged, incomplete or not a raster GDAL reads. {remedy}") from exc


# -- nodata: in each band's own type, and GDAL's mask bands ------------------------------
def data_bands(ds):
    """1-based numbers of the bands of ``ds`` that hold data (alpha bands are masks, not data)."""
    return [b for b in range(1, ds.RasterCount + 1)
            if ds.GetRasterBand(b).GetColorInterpretation() != gdal.GCI_AlphaBand]


def nodata_in_type(nodata, dtype):
    """The nodata value as the band's own numpy type stores it, or None when it cannot be stored.

    A float32 band with nodata ``-1e32`` holds ``float32(-1e32)``, which is not
    ``-1e32`` in float64: comparing after a conversion to float64 finds nothing.
    An integer nodata outside the type's range (or not an integer) matches no pixel.
    """
    if nodata is None or np.isnan(nodata):
        return None
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if nodata != int(nodata) or not info.min <= nodata <= info.max:
            return None
        return dtype.type(int(nodata))
    if dtype.kind == "f":
        with np.errstate(over="ignore"):
            value = dtype.type(nodata)
        return None if np.isinf(value) and not np.isinf(nodata) else value
    return dtype.type(nodata)


def invalid_mask(band, values, window=None):
    """Boolean mask of the nodata pixels of ``values`` read from ``band`` (not yet converted).

    ``values`` is the window ``(row0, col0, nrows, ncols)`` of ``band`` (default
    the whole band, at the resolution of ``values``), read in the band's own type or any wider type.  Honours
    the band's nodata value compared in the band's own type, NaN, and GDAL's
    mask band when it is not derived from the nodata value (alpha band,
    per-dataset ``.msk`` mask, an explicit mask band): pixels masked (0) there
    are nodata.
    """
    band_type = gdal_array_type(band.DataType)
    invalid = np.zeros(values.shape, dtype=bool)
    if values.dtype.kind == "f":
        invalid |= np.isnan(values)
    nodata = nodata_in_type(band.GetNoDataValue(), band_type)
    if nodata is not None:
        invalid |= values == np.asarray(nodata).astype(values.dtype)
    flags = band.GetMaskFlags()
    if not flags & (gdal.GMF_ALL_VALID | gdal.GMF_NODATA):
        mask_band = band.GetMaskBand()
        if window is None:  # the whole band, possibly decimated to the shape of `values`
            mask = mask_band.ReadAsArray(buf_xsize=values.shape[-1], buf_ysize=values.shape[-2])
        else:
            row0, col0, nrows, ncols = window
            mask = mask_band.ReadAsArray(col0, row0, ncols, nrows)
        invalid |= mask.reshape(values.shape) == 0
    return invalid


def gdal_array_type(gdal_type):
    """Numpy dtype of a GDAL data type (float64 for complex or unknown types)."""
    from osgeo import gdal_array

    code = gdal_array.GDALTypeCodeToNumericTypeCode(gdal_type)
    return np.dtype(code) if code is not None else np.dtype(np.float64)


def read_band(band, window):
    """``window`` ``(row0, col0, nrows, ncols)`` of ``band`` as float64 with nodata as NaN."""
    row0, col0, nrows, ncols = window
    raw = band.ReadAsArray(col0, row0, ncols, nrows)
    out = raw.astype(np.float64)
    out[invalid_mask(band, raw, window)] = np.nan
    return out


# -- memory ------------------------------------------------------------------------------
def available_memory():
    """Bytes of memory available to this process now, or None when unknown.

    Linux: ``MemAvailable`` of ``/proc/meminfo`` (free memory plus the page
    cache that can be dropped); elsewhere the free physical pages
    (``os.sysconf``), when the platform reports them.
    """
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(shape, bands, bytes_per_value=8, what="raster", *, copies=1, remedy=None):
    """Refuse, before allocating, arrays that would not fit in the available memory.

    Parameters
    ----------
    shape : tuple of int
        ``(rows, cols)``.
    bands : int
        Number of bands.
    bytes_per_value : int
        8 for the float64 arrays of the core.
    what : str
        What is processed, for the message (e.g. ``"raster 'scene.tif'"``).
    copies : float
        Arrays of this size the processing holds at once (working copies).
    remedy : str, optional
        What the user can do; default: clip to an extent or use a coarser
        resolution.

    Raises
    ------
    ValueError
        With the size needed in GB, the memory available and the remedy.
    """
    rows, cols = (int(v) for v in tuple(shape)[-2:])
    need = float(rows) * cols * int(bands) * bytes_per_value * copies
    available = available_memory()
    if available is None or need <= available:
        return
    remedy = remedy or ("Clip it to the area you need (Raster > Extraction > Clip Raster by "
                        "Extent) or resample it to a coarser resolution first.")
    raise ValueError(
        f"Processing {what} ({bands} band{'s' if bands != 1 else ''} of {rows} x {cols} pixels) "
        f"needs about {_size(need)} of memory, but only {_size(available)} is available. {remedy}"
    )


def _size(n_bytes):
    """``"3.2 GB"``, ``"450.0 MB"`` or ``"12.0 kB"``."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.1f} {unit}"
    return f"{n_bytes / 1e3:.1f} kB"


def read_raster(path, *, bands=None, window=None, copies=1):
    """Read a raster as float64 ``(bands, rows, cols)`` with nodata as NaN.

    ``window`` is ``(row0, col0, nrows, ncols)``; ``bands`` 1-based band numbers.
    ``copies``: arrays of the raster's size the caller will hold at once; a
    raster that would not fit in memory is refused before it is read
    (:func:`check_memory`).
    """
    ds = open_raster(path)
    gt = ds.GetGeoTransform(can_return_null=True)
    if gt is None:
        raise ValueError(f"Raster '{path}' has no georeferencing; georeference it first.")
    full = Grid.from_gdal(gt, (ds.RasterYSize, ds.RasterXSize))
    row0, col0, nrows, ncols = window or (0, 0, ds.RasterYSize, ds.RasterXSize)
    numbers = list(bands) if bands else data_bands(ds)
    for b in numbers:
        if not 1 <= b <= ds.RasterCount:
            raise ValueError(f"Raster '{path}' has {ds.RasterCount} bands; band {b} was asked for.")
    check_memory((nrows, ncols), len(numbers), 8, f"raster '{os.path.basename(path)}'",
                 copies=copies)
    out = np.empty((len(numbers), nrows, ncols), dtype=np.float64)
    descriptions = []
    for i, b in enumerate(numbers):
        band = ds.GetRasterBand(b)
        with gdal_errors(path, f"band {b}"):
            out[i] = read_band(band, (row0, col0, nrows, ncols))
        descriptions.append(band.GetDescription() or f"Band {b}")
    grid = full.window(row0, col0, nrows, ncols)
    return RasterData(out, grid, ds.GetProjection(), descriptions)


def check_bands(raster, what, *, empty_band="error"):
    """Refuse a raster without valid pixels; report bands that are entirely nodata.

    Constant bands are left to the core, which handles them without dividing
    by zero (PCA and K-means leave them unscaled with a warning; the
    regression refuses a constant feature with a message).

    Parameters
    ----------
    raster : RasterData
    what : str
        The raster's name for the messages (e.g. ``"Image 'scene'"``).
    empty_band : {"error", "warn"}
        A band entirely nodata: ``"error"`` where every band is needed at
        every pixel (PCA, K-means, regression: one empty band empties the
        whole stack), ``"warn"`` where bands are used separately.

    Returns
    -------
    list of str
        Warnings (empty bands with ``empty_band="warn"``).

    Raises
    ------
    ValueError
        Every pixel is nodata, or (``empty_band="error"``) one band is.
    """
    data = raster.data
    finite = np.isfinite(data)
    if not finite.any():
        raise ValueError(f"{what} has no valid pixel: every pixel is nodata. Check its nodata "
                         "value and that it covers the area.")
    messages = []
    for i, name in enumerate(raster.descriptions):
        label = f"band {i + 1} ('{name}')"
        if not finite[i].any():
            if empty_band == "error":
                raise ValueError(
                    f"{what}: {label} is entirely nodata, which leaves no pixel where every band "
                    "is valid. Remove that band from the stack (Raster > Conversion > Translate, "
                    "or rebuild the stack without it)."
                )
            messages.append(f"{what}: {label} is entirely nodata; results that use it are nodata.")
    return messages


def describe_io_error(exc, path):
    """A user message for a failed write of ``path`` (disk full, permission, other I/O)."""
    folder = os.path.dirname(os.path.abspath(path)) or "."
    text = str(exc)
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = None
    code = getattr(exc, "errno", None)
    if code == errno.ENOSPC or "No space left" in text or (free is not None and free < 1_000_000):
        space = f" ({free / 1e6:.0f} MB free)" if free is not None else ""
        return (f"The disk is full: writing '{path}' failed in '{folder}'{space}. Free some space "
                "or choose an output folder on another disk; nothing was written at that path.")
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (f"Permission denied writing '{path}'; choose a folder you can write to. Nothing "
                "was written at that path.")
    return f"Writing '{path}' failed ({text}); nothing was written at that path."


_PARTIAL = re.compile(r"^\..*\.(\d+)-[0-9a-f]{8}\.partial(\.tif|\.html)?(\.aux\.xml)?$")


def partial_path(folder, name, suffix=".partial.tif"):
    """A temporary file (or folder) name in ``folder`` for an output named ``name``.

    Hidden, and tagged with this process's id, so that the next run writing to
    that folder removes it if this process was killed before it could clean up
    (:func:`remove_stale_partials`).
    """
    return os.path.join(folder, f".{name}.{os.getpid()}-{uuid.uuid4().hex[:8]}{suffix}")


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # another user's process, or a platform that cannot tell
    return True


def remove_stale_partials(folder):
    """Remove the temporary outputs left in ``folder`` by runs whose process is gone.

    A run killed (SIGTERM, SIGKILL, a crash of QGIS) cannot remove its
    temporary files; the next run writing to the same folder does.  Files of
    runs still alive (another run writing there now) are left alone.
    Returns the names removed.
    """
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        match = _PARTIAL.match(name)
        if not match or _alive(int(match.group(1))):
            continue
        target = os.path.join(folder, name)
        try:
            if os.path.isdir(target):
                shutil.rmtree(target)
            else:
                os.remove(target)
            removed.append(name)
        except OSError:
            pass
    return removed


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
    check_geotiff_name(path)
    remove_stale_partials(folder)
    return folder


def check_geotiff_name(path):
    """Refuse an output file name that is not a GeoTIFF (.tif/.tiff)."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".tif", ".tiff"):
        raise ValueError(
            f"Output '{path}': only GeoTIFF (.tif) is written by this plugin; use a .tif file name "
            f"and convert with Raster > Conversion > Translate if you need another format."
        )


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
    tmp = partial_path(folder, os.path.basename(path))
    ds = None
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
        band = None
        ds.FlushCache()
        gdal.ErrorReset()
        ds = None  # closes the file: GDAL writes its last blocks now
        _raise_close_error()
        _move_into_place(tmp, path)
    except (RuntimeError, OSError) as exc:
        ds = band = None  # close before removing (closing may write a side-car file)
        message = describe_io_error(exc, path)  # before removing: a full disk is still full
        _discard(tmp)
        raise ValueError(message) from exc
    except BaseException:
        ds = band = None
        _discard(tmp)
        raise
    return path


def _raise_close_error():
    """Raise RuntimeError if closing a dataset failed.

    With GDAL 3.6 a failure while closing (the last blocks are written then)
    is only printed, not raised: it is read back with ``GetLastErrorType``
    (reset with ``gdal.ErrorReset()`` just before the close).
    """
    if gdal.GetLastErrorType() >= gdal.CE_Failure:
        raise RuntimeError(gdal.GetLastErrorMsg())


def _move_into_place(tmp, path):
    os.replace(tmp, path)
    # statistics live in a side-car .aux.xml (GDAL PAM): move it with the file
    if os.path.exists(tmp + ".aux.xml"):
        os.replace(tmp + ".aux.xml", path + ".aux.xml")
    elif os.path.exists(path + ".aux.xml"):
        os.remove(path + ".aux.xml")


def _discard(tmp):
    """Remove a temporary output and its side-car (once its dataset is closed)."""
    for leftover in (tmp, tmp + ".aux.xml"):
        if os.path.exists(leftover):
            os.remove(leftover)


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


# -- window-by-window processing of large rasters ---------------------------------------
# The block budget and the row windows are the core's (core.blocks): one for the plugin.


class WindowedWriter:
    """A GeoTIFF written window by window that appears at ``path`` only when complete.

    Use as a context manager: the file is created in the destination folder
    under a temporary name, filled with :meth:`write`, and moved to ``path``
    (with band statistics) when the block exits without an exception; on an
    exception (including a cancel) the temporary file is removed and
    nothing is left at ``path``.

    Windows of any height may be written in any order: rows are gathered into
    whole strips of the file's tiles, and each strip is written and flushed
    (compressed, and dropped from GDAL's cache) as soon as it is complete, so
    every tile is compressed once and memory stays at one strip per band. The
    band statistics are accumulated from the written values (no re-read).
    """

    def __init__(self, path, grid, crs_wkt, n_bands, *, descriptions=None, dtype="float32",
                 nodata=NODATA, metadata=None, statistics=True):
        self.path, self.grid, self.crs_wkt = path, grid, crs_wkt
        self.statistics = statistics
        self.n_bands, self.descriptions = int(n_bands), descriptions
        self.dtype, self.nodata, self.metadata = dtype, nodata, metadata
        self.folder = _check_destination(path)
        self.tmp = partial_path(self.folder, os.path.basename(path))
        self.ds = None
        self._strips = {}  # strip -> (values (bands, rows, cols), rows written (bands, rows))
        self._stats = [None] * self.n_bands  # [count, mean, M2, min, max]

    def __enter__(self):
        gdal_type = {"float32": gdal.GDT_Float32, "float64": gdal.GDT_Float64,
                     "uint8": gdal.GDT_Byte, "int16": gdal.GDT_Int16}[self.dtype]
        try:
            self.ds = gdal.GetDriverByName("GTiff").Create(
                self.tmp, self.grid.ncols, self.grid.nrows, self.n_bands, gdal_type, GTIFF_OPTIONS)
        except RuntimeError as exc:
            message = describe_io_error(exc, self.path)
            self._discard()
            raise ValueError(message) from exc
        self.ds.SetGeoTransform(self.grid.to_gdal())
        if self.crs_wkt:
            self.ds.SetProjection(self.crs_wkt)
        for i in range(self.n_bands):
            band = self.ds.GetRasterBand(i + 1)
            if self.nodata is not None:
                band.SetNoDataValue(float(self.nodata))
            if self.descriptions is not None:
                band.SetDescription(str(self.descriptions[i]))
        if self.metadata:
            self.ds.SetMetadata({str(k): str(v) for k, v in self.metadata.items()})
        self._strip_rows = max(1, self.ds.GetRasterBand(1).GetBlockSize()[1])
        return self

    def describe(self, *, metadata=None, descriptions=None):
        """Add metadata items and name the bands while the file is written.

        For what is known only once the run has fitted (the pyramid depth, the
        feature names).
        """
        for key, value in (metadata or {}).items():
            self.ds.SetMetadataItem(str(key), str(value))
        for i, name in enumerate(descriptions or []):
            self.ds.GetRasterBand(i + 1).SetDescription(str(name))

    def write(self, band_index, row0, values):
        """Write a ``(rows, cols)`` window (NaN = nodata) into 0-based band ``band_index`` at ``row0``."""
        values = np.asarray(values)
        finite = np.isfinite(values)
        if self.nodata is not None and not finite.all():
            values = np.where(finite, values, self.nodata)
        values = values.astype(self.dtype, copy=False)
        if self.statistics:
            self._add_statistics(band_index, values, finite)
        row0, h = int(row0), self._strip_rows
        for k in range(row0 // h, (row0 + values.shape[0] - 1) // h + 1):
            s0 = k * h
            n = min(h, self.grid.nrows - s0)
            if k not in self._strips:
                fill = 0 if self.nodata is None else self.nodata
                self._strips[k] = (
                    np.full((self.n_bands, n, self.grid.ncols), fill, dtype=self.dtype),
                    np.zeros((self.n_bands, n), dtype=bool))
            strip, filled = self._strips[k]
            lo, hi = max(row0, s0), min(row0 + values.shape[0], s0 + n)
            strip[band_index, lo - s0:hi - s0] = values[lo - row0:hi - row0]
            filled[band_index, lo - s0:hi - s0] = True
            if filled.all():
                self._write_strip(k)

    def _write_strip(self, k):
        """Write strip ``k`` of every band, compress it and drop it from GDAL's cache.

        All bands at once: a multi-band GeoTIFF interleaves the bands in each tile
        by default, so a tile is complete only when every band of it is.
        """
        strip, _ = self._strips.pop(k)
        try:
            for i in range(self.n_bands):
                self.ds.GetRasterBand(i + 1).WriteArray(strip[i], 0, k * self._strip_rows)
            self.ds.FlushCache()
        except RuntimeError as exc:
            raise ValueError(describe_io_error(exc, self.path)) from exc

    def _add_statistics(self, band_index, values, finite):
        """Merge a window into the band's count, mean, M2 (Chan et al. 1979), min and max."""
        valid = finite if self.nodata is None else finite & (values != self.nodata)
        v = values if valid.all() else values[valid]
        if v.size == 0:
            return
        n_b, mean_b = v.size, float(v.sum(dtype=np.float64)) / v.size
        m2_b = float(np.square(np.subtract(v, mean_b, dtype=np.float64)).sum())
        lo, hi = float(v.min()), float(v.max())
        if self._stats[band_index] is None:
            self._stats[band_index] = [n_b, mean_b, m2_b, lo, hi]
            return
        n_a, mean_a, m2_a, lo_a, hi_a = self._stats[band_index]
        n = n_a + n_b
        delta = mean_b - mean_a
        self._stats[band_index] = [n, mean_a + delta * n_b / n,
                                   m2_a + m2_b + delta * delta * n_a * n_b / n,
                                   min(lo, lo_a), max(hi, hi_a)]

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            try:
                self._finish()
            except (RuntimeError, OSError) as error:
                message = describe_io_error(error, self.path)  # before freeing the space
                self._discard()
                raise ValueError(message) from error
            except BaseException:
                self._discard()
                raise
        else:
            self._discard()
        return False

    def _finish(self):
        for k in sorted(self._strips):  # strips not entirely written
            self._write_strip(k)
        for i in range(self.n_bands):
            if self.statistics and self._stats[i] is not None:
                n, mean, m2, lo, hi = self._stats[i]
                band = self.ds.GetRasterBand(i + 1)
                band.SetStatistics(lo, hi, mean, float(np.sqrt(m2 / n)))
                band.SetMetadataItem("STATISTICS_VALID_PERCENT",
                                     f"{100.0 * n / (self.grid.nrows * self.grid.ncols):.4g}")
        ds, self.ds = self.ds, None
        try:
            ds.FlushCache()
        except RuntimeError:
            ds = None  # close before the caller removes the file
            raise
        gdal.ErrorReset()
        ds = None  # closes the file: GDAL writes its last blocks now
        _raise_close_error()
        _move_into_place(self.tmp, self.path)

    def _discard(self):
        self.ds = None
        self._strips = {}
        _discard(self.tmp)


def warped_vrt(source, grid, crs_wkt, *, resample="cubic", band=None, dst_nodata=None):
    """``source`` (a path or dataset) warped onto ``grid`` as a virtual (VRT) dataset.

    Nothing is computed until a window is read, so whole scenes are resampled
    window by window in bounded memory.  The source's own nodata value is
    honoured (no-data pixels do not contribute to ``cubic``/``average``).

    Parameters
    ----------
    resample : str
        GDAL resampling: ``"cubic"`` (Keys 1981) for reflectance, ``"average"`` to
        aggregate to coarser cells, ``"near"`` for classes and masks.
    band : int, optional
        1-based source band to keep (default: all).
    dst_nodata : float, optional
        Nodata value of the result (e.g. NaN for float bands).
    """
    x_min, y_min, x_max, y_max = grid.extent
    options = dict(format="VRT", outputBounds=(x_min, y_min, x_max, y_max), width=grid.ncols,
                   height=grid.nrows, dstSRS=crs_wkt, resampleAlg=resample)
    if dst_nodata is not None:
        options["dstNodata"] = dst_nodata
    if band is not None:
        source = gdal.Translate("", source, format="VRT", bandList=[int(band)])
    options["warpOptions"] = _scale_options(source, grid, crs_wkt)
    return gdal.Warp("", source, **options)


def _scale_options(source, grid, crs_wkt):
    """GDAL warp options fixing the resampling scale to the two grids' ratio.

    From GDAL 3.9/3.10 on, a warp reading a small window (a clip, a row block of a VRT)
    estimates the scale from its padded source window, takes an upsampling for a
    downsampling and widens the cubic kernel: the values of a clip then differ from the
    same window of the whole warp, and from Keys' cubic, by up to 11 % (GDAL 3.10.3;
    0 with 3.6). ``XSCALE``/``YSCALE`` (destination pixels per source pixel, GDAL >= 3.6)
    fix it to the grids' ratio, so a window is the same whatever its size. Only for a
    source in the grid's CRS (no ratio to state otherwise): an empty list leaves GDAL's.
    """
    ds = gdal.Open(source) if isinstance(source, str) else source
    if ds is None:
        return []
    src_wkt = ds.GetProjection()
    if src_wkt and crs_wkt:
        src_srs, dst_srs = osr.SpatialReference(), osr.SpatialReference()
        src_srs.ImportFromWkt(src_wkt)
        dst_srs.ImportFromWkt(crs_wkt)
        if not src_srs.IsSame(dst_srs):
            return []
    gt = ds.GetGeoTransform()
    if gt[2] or gt[4]:
        return []
    return [f"XSCALE={abs(gt[1]) / grid.cell_x!r}", f"YSCALE={abs(gt[5]) / grid.cell_y!r}"]


def prepare_destination(path):
    """Check that ``path`` can be written as a GeoTIFF (creating its folder); return the folder."""
    return _check_destination(path)


def grid_of(ds):
    """:class:`Grid` of an open GDAL dataset (refuses rasters without a geotransform)."""
    gt = ds.GetGeoTransform(can_return_null=True)
    if gt is None:
        raise ValueError(f"raster '{ds.GetDescription()}' has no georeferencing")
    return Grid.from_gdal(gt, (ds.RasterYSize, ds.RasterXSize))


def clip_grid(grid, extent):
    """The cells of ``grid`` that overlap ``extent`` ``(x_min, y_min, x_max, y_max)``.

    The result stays aligned with ``grid`` (whole cells).  ValueError when the
    extent misses the grid.
    """
    x_min, y_min, x_max, y_max = (float(v) for v in extent)
    eps = 1e-6
    col0 = max(0, int(np.floor((x_min - grid.x_min) / grid.cell_x + eps)))
    col1 = min(grid.ncols, int(np.ceil((x_max - grid.x_min) / grid.cell_x - eps)))
    row0 = max(0, int(np.floor((grid.y_max - y_max) / grid.cell_y + eps)))
    row1 = min(grid.nrows, int(np.ceil((grid.y_max - y_min) / grid.cell_y - eps)))
    if col1 <= col0 or row1 <= row0:
        raise ValueError(
            f"the extent {x_min:g}, {y_min:g}, {x_max:g}, {y_max:g} does not overlap the raster "
            f"({grid.x_min:g}, {grid.y_min:g}, {grid.x_max:g}, {grid.y_max:g}); choose an extent "
            "inside the scene (in its CRS)"
        )
    return grid.window(row0, col0, row1 - row0, col1 - col0)


def window_covering(grid, extent, *, margin=0):
    """``(row0, col0, nrows, ncols)`` of the cells of ``grid`` covering ``extent``.

    Plus ``margin`` cells on each side (clamped to the grid).
    """
    sub = clip_grid(grid, extent)
    col0 = int(round((sub.x_min - grid.x_min) / grid.cell_x))
    row0 = int(round((grid.y_max - sub.y_max) / grid.cell_y))
    r0, c0 = max(0, row0 - margin), max(0, col0 - margin)
    r1 = min(grid.nrows, row0 + sub.nrows + margin)
    c1 = min(grid.ncols, col0 + sub.ncols + margin)
    return r0, c0, r1 - r0, c1 - c0


def convert_to_file(read_window, grid, crs_wkt, path, *, on_window=None):
    """Write a converted band window by window as a float32 GeoTIFF with NaN nodata.

    ``read_window(row0, nrows)`` returns the float ``(nrows, grid.ncols)`` values
    of those rows (NaN = nodata); ``on_window(fraction)`` is called before each
    window (raise from it to cancel: the file is then removed).
    """
    with WindowedWriter(path, grid, crs_wkt, 1, nodata=float("nan"), statistics=False) as out:
        for row0, n in row_blocks(grid.nrows, block_rows_for(grid.ncols)):
            if on_window is not None:
                on_window(row0 / grid.nrows)
            out.write(0, row0, read_window(row0, n))
    return path


def stack_onto_grid(sources, grid, crs_wkt, path, *, resample, descriptions=None,
                    adjust=None, metadata=None, on_window=None):
    """Resample single-band rasters onto ``grid`` and stack them, window by window.

    Parameters
    ----------
    sources : list of str
        Single-band float rasters with NaN (or another declared) nodata.
    resample : list of str
        GDAL resampling of each source (see :func:`warped_vrt`).
    adjust : list of callable or None, optional
        ``adjust[i](window) -> window`` applied to each band window after
        resampling (e.g. a per-band correction); None entries are skipped.
    on_window : callable, optional
        ``on_window(fraction)`` before each window; raise from it to cancel
        (nothing is left at ``path``).
    """
    vrts = [warped_vrt(src, grid, crs_wkt, resample=r, dst_nodata=float("nan"))
            for src, r in zip(sources, resample)]
    adjust = adjust or [None] * len(sources)
    with WindowedWriter(path, grid, crs_wkt, len(sources), descriptions=descriptions,
                        metadata=metadata) as out:
        for row0, n in row_blocks(grid.nrows, block_rows_for(grid.ncols)):
            if on_window is not None:
                on_window(row0 / grid.nrows)
            for i, vrt in enumerate(vrts):
                values = vrt.GetRasterBand(1).ReadAsArray(0, row0, grid.ncols, n)
                values = values.astype(np.float64)
                if adjust[i] is not None:
                    values = adjust[i](values)
                out.write(i, row0, values)
    return path


@dataclass
class BlockSource:
    """A raster read window by window: ``read(row0, col0, nrows, ncols)`` → float64 NaN-nodata."""

    path: str
    grid: Grid
    crs_wkt: str
    descriptions: list
    read: object

    @property
    def n_bands(self):
        return len(self.descriptions)


def open_blocks(path):
    """Open ``path`` for window-by-window reading of all its bands (nodata as NaN).

    Full-width windows (the row blocks of a whole-scene pass) are served from
    whole strips of the file's blocks, read once in the file's own type and
    kept while they are needed; small windows (samples, chips) are read
    directly. GDAL's block cache is emptied after each strip and whenever a
    direct read moves to another strip, so memory stays at a couple of strips
    whatever the size of the image (GDAL would otherwise keep up to
    ``GDAL_CACHEMAX``, 5 % of the RAM, of decoded blocks).
    """
    driver = gdal.IdentifyDriver(path)
    if driver is not None and driver.ShortName == "GTiff":
        try:  # tiles decoded in parallel when a strip is read
            ds = gdal.OpenEx(path, gdal.OF_RASTER, open_options=["NUM_THREADS=ALL_CPUS"])
        except RuntimeError:
            ds = open_raster(path)
    else:
        ds = open_raster(path)
    gt = ds.GetGeoTransform(can_return_null=True)
    if gt is None:
        raise ValueError(f"Raster '{path}' has no georeferencing; georeference it first.")
    grid = Grid.from_gdal(gt, (ds.RasterYSize, ds.RasterXSize))
    numbers = data_bands(ds)
    bands = [ds.GetRasterBand(b) for b in numbers]
    descriptions = [ds.GetRasterBand(b).GetDescription() or f"Band {b}" for b in numbers]
    # one read of all bands in their common type (float64 when their types differ)
    same_type = len({b.DataType for b in bands}) == 1
    buf_type = None if same_type else gdal.GDT_Float64

    def read_all(col0, row0, ncols, nrows):
        """The bands' raw window ``(bands, nrows, ncols)`` and its nodata mask."""
        with gdal_errors(path):
            raw = ds.ReadAsArray(col0, row0, ncols, nrows, band_list=numbers, buf_type=buf_type)
            raw = raw.reshape(len(bands), nrows, ncols)
            invalid = np.stack([invalid_mask(b, raw[i], (row0, col0, nrows, ncols))
                                for i, b in enumerate(bands)])
        return raw, invalid

    # strips of whole blocks (at least 64 rows for files in strips of a few rows)
    strip_rows = max(64, bands[0].GetBlockSize()[1])
    strips = {}
    state = {"strip": None}  # the strip of the last direct read

    def strip(k):
        if k not in strips:
            r0 = k * strip_rows
            n = min(strip_rows, grid.nrows - r0)
            strips[k] = read_all(0, r0, grid.ncols, n)
            ds.FlushCache()
        return strips[k]

    def read(row0, col0, nrows, ncols):
        row0, col0, nrows, ncols = int(row0), int(col0), int(nrows), int(ncols)
        out = np.empty((len(bands), nrows, ncols), dtype=np.float64)
        if col0 == 0 and ncols == grid.ncols:
            first, last = row0 // strip_rows, (row0 + nrows - 1) // strip_rows
            for k in [k for k in strips if k < first]:  # passed: row blocks go down the image
                del strips[k]
            for k in range(first, last + 1):
                s0 = k * strip_rows
                lo, hi = max(row0, s0), min(row0 + nrows, s0 + strip_rows)
                raw, invalid = strip(k)
                part = out[:, lo - row0:hi - row0]
                part[:] = raw[:, lo - s0:hi - s0]
                part[invalid[:, lo - s0:hi - s0]] = np.nan
        else:
            k = row0 // strip_rows
            if state["strip"] != k:
                ds.FlushCache()
                state["strip"] = k
            raw, invalid = read_all(col0, row0, ncols, nrows)
            out[:] = raw
            out[invalid] = np.nan
        return out

    read.dataset = ds  # keep the dataset open as long as the reader lives
    return BlockSource(path, grid, ds.GetProjection(), descriptions, read)


def read_preview(path, max_pixels=1_000_000):
    """All bands at reduced resolution (at most ``max_pixels`` per band), nodata as NaN.

    For checks and guesses on rasters too large to read whole (empty bands,
    band descriptions); the grid is that of the decimated array.
    """
    ds = open_raster(path)
    step = max(1.0, float(np.sqrt(ds.RasterXSize * ds.RasterYSize / max_pixels)))
    bx = max(1, int(ds.RasterXSize / step))
    by = max(1, int(ds.RasterYSize / step))
    numbers = data_bands(ds)
    out = np.empty((len(numbers), by, bx), dtype=np.float64)
    descriptions = []
    for i, b in enumerate(numbers):
        band = ds.GetRasterBand(b)
        with gdal_errors(path, f"band {b}"):
            raw = band.ReadAsArray(buf_xsize=bx, buf_ysize=by)
            out[i] = raw
            out[i][invalid_mask(band, raw)] = np.nan
        descriptions.append(band.GetDescription() or f"Band {b}")
    gt = ds.GetGeoTransform()
    grid = Grid(gt[0], gt[3], gt[1] * ds.RasterXSize / bx, -gt[5] * ds.RasterYSize / by, bx, by)
    return RasterData(out, grid, ds.GetProjection(), descriptions)


WHOLE_READ_PIXELS = 4_000_000
"""Rasters up to this many pixels are fitted on whole; larger ones on a pixel sample."""


def fitting_stack(src, *, n_pixels=SAMPLE_SIZE, random_state=0):
    """What a fit step (PCA, K-means) sees: the whole raster when small, else a pixel sample.

    Returns ``(bands, rows, cols)``; for a large raster ``(bands, 1, n)`` valid
    pixels read from random windows (:func:`geochem_fusion.core.blocks.sample_pixels_from_windows`),
    so that memory does not grow with the image.
    """
    rows, cols = src.grid.shape
    if rows * cols <= WHOLE_READ_PIXELS:
        return src.read(0, 0, rows, cols)
    return sample_pixels_from_windows(src.read, src.grid.shape, n_pixels=n_pixels,
                                      random_state=random_state)[:, None, :]


def resampled_reader(src, grid, *, band=None):
    """``read(row0, col0, nrows, ncols)`` of ``src`` (a :class:`BlockSource`) on ``grid``.

    Cubic convolution (:func:`geochem_fusion.core.resample.resample_cubic`),
    window by window: each window reads only the source cells around it (three
    cells of margin, beyond the Keys kernel's reach), so a fine source is never
    read whole and the values equal those of resampling the whole source.
    ``band`` (0-based) keeps one band. On the same grid the source is read as is.
    """
    from ..core.resample import resample_cubic

    bands = slice(None) if band is None else slice(band, band + 1)
    if src.grid == grid:
        return lambda row0, col0, nrows, ncols: src.read(row0, col0, nrows, ncols)[bands]

    def read(row0, col0, nrows, ncols):
        target = grid.window(row0, col0, nrows, ncols)
        try:
            r0, c0, nr, nc = window_covering(src.grid, target.extent, margin=3)
        except ValueError:  # the window is beyond the source: nodata
            return np.full((len(range(src.n_bands)[bands]), nrows, ncols), np.nan)
        data = src.read(r0, c0, nr, nc)[bands]
        return resample_cubic(data, src.grid.window(r0, c0, nr, nc), target)

    return read
