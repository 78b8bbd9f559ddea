"""Image tiles on disk: checks, the input mosaic, window reads, Cloud-Optimized GeoTIFF output.

Everything here uses GDAL's Python bindings and nothing from QGIS, so it runs in
a plain Python (a Dask worker, the command line). The numerics stay in
``core/``; this module only moves pixels between files and arrays.

Rules:

- A *tile* is one raster file (a VRT given as input stands for the files it
  lists). Tiles must share a projected CRS, a pixel size, a band count and one
  pixel lattice; those that do not are *bad tiles*: reported by name with the
  reason and left out, and the rest go on.
- The *mosaic* is a VRT of the good tiles (``gdal.BuildVRT``): the single grid
  the fit and every task read from, so a tile's border pixels see their
  neighbours across the seam exactly as in a single-machine run on the mosaic.
- Every output tile is written to a temporary name in the output folder,
  converted to a Cloud-Optimized GeoTIFF under another temporary name and only
  then renamed to its final name (``os.replace``, atomic on one file system):
  a final name is always a complete file.
"""

from __future__ import annotations

import math
import os
import uuid
from collections import Counter
from dataclasses import dataclass

import numpy as np
from osgeo import gdal, osr

from ..core.grid import Grid

gdal.UseExceptions()
osr.UseExceptions()

NODATA = -9999.0
"""Nodata value of the fused tiles (float32)."""
COG_OPTIONS = ["COMPRESS=DEFLATE", "PREDICTOR=YES", "BIGTIFF=IF_SAFER", "BLOCKSIZE=512"]
"""Creation options of the output Cloud-Optimized GeoTIFFs (overviews: the driver's default)."""


class BadTile(ValueError):
    """A tile that cannot be used, with the reason (its message names the tile)."""


@dataclass(frozen=True)
class Tile:
    """One input image tile."""

    path: str
    grid: Grid
    crs_wkt: str
    n_bands: int
    descriptions: tuple
    nodata: tuple

    @property
    def name(self):
        """The file name without its folder and extension (the output tile's name)."""
        return os.path.splitext(os.path.basename(self.path))[0]


def expand_inputs(paths):
    """The tile files named by ``paths``: a VRT stands for the files it lists."""
    out = []
    for path in paths:
        if str(path).lower().endswith(".vrt") and os.path.exists(path):
            ds = gdal.Open(str(path))
            sources = [f for f in (ds.GetFileList() or [])[1:] if not f.lower().endswith(".vrt")]
            ds = None
            out.extend(sources or [str(path)])
        else:
            out.append(str(path))
    return out


def open_tile(path):
    """Read a tile's georeferencing (no pixels); :class:`BadTile` when it cannot be used."""
    if not os.path.exists(path):
        raise BadTile(f"{path}: file not found")
    try:
        ds = gdal.Open(path)
    except RuntimeError as exc:
        raise BadTile(f"{path}: not a raster GDAL can read ({exc})") from exc
    gt = ds.GetGeoTransform(can_return_null=True)
    wkt = ds.GetProjection()
    if gt is None or not wkt:
        raise BadTile(f"{path}: no georeferencing or no CRS; georeference the tile first")
    try:
        grid = Grid.from_gdal(gt, (ds.RasterYSize, ds.RasterXSize))
    except ValueError as exc:
        raise BadTile(f"{path}: {exc}") from exc
    bands = [ds.GetRasterBand(i + 1) for i in range(ds.RasterCount)]
    return Tile(path, grid, wkt, len(bands),
                tuple(b.GetDescription() or f"Band {i + 1}" for i, b in enumerate(bands)),
                tuple(b.GetNoDataValue() for b in bands))


def _same_crs(a, b):
    sa, sb = osr.SpatialReference(), osr.SpatialReference()
    sa.ImportFromWkt(a)
    sb.ImportFromWkt(b)
    return bool(sa.IsSame(sb))


def check_tiles(paths, reach=None):
    """Split ``paths`` into usable tiles and bad ones.

    The reference CRS, pixel size and band count are those of most tiles (ties:
    the first tile's). ``reach`` ``(x_min, y_min, x_max, y_max)`` in that CRS is
    the area the samples can inform; a tile outside it is bad ("no overlap").
    Returns ``(tiles, bad)`` with ``bad`` a list of ``(path, reason)``.
    """
    tiles, bad = [], []
    for path in paths:
        try:
            tiles.append(open_tile(path))
        except BadTile as exc:
            bad.append((path, str(exc)))
    if not tiles:
        return [], bad
    crs_groups = []  # [representative wkt, count]
    for t in tiles:
        for group in crs_groups:
            if _same_crs(group[0], t.crs_wkt):
                group[1] += 1
                break
        else:
            crs_groups.append([t.crs_wkt, 1])
    ref_wkt = max(crs_groups, key=lambda g: g[1])[0]
    srs = osr.SpatialReference()
    srs.ImportFromWkt(ref_wkt)
    if not srs.IsProjected():
        raise ValueError(
            f"the tiles are in a geographic CRS ({srs.GetName()}): the fusion needs a projected "
            "CRS in metres; warp them first (e.g. gdalwarp -t_srs EPSG:32635)")
    cells = Counter((round(t.grid.cell_x, 9), round(t.grid.cell_y, 9)) for t in tiles)
    ref_cell = cells.most_common(1)[0][0]
    ref_bands = Counter(t.n_bands for t in tiles).most_common(1)[0][0]
    good = []
    for t in tiles:
        reason = None
        if not _same_crs(ref_wkt, t.crs_wkt):
            crs = osr.SpatialReference()
            crs.ImportFromWkt(t.crs_wkt)
            reason = (f"wrong CRS ({crs.GetName()}; the other tiles are in {srs.GetName()}): "
                      "warp it to their CRS (gdalwarp -t_srs) or fuse it in its own run")
        elif (round(t.grid.cell_x, 9), round(t.grid.cell_y, 9)) != ref_cell:
            reason = (f"pixel size {t.grid.cell_x:g} x {t.grid.cell_y:g}, the other tiles have "
                      f"{ref_cell[0]:g} x {ref_cell[1]:g}: resample it to theirs")
        elif t.n_bands != ref_bands:
            reason = f"{t.n_bands} bands, the other tiles have {ref_bands}"
        elif reach is not None and not t.grid.overlaps(Grid.from_extent(*reach, 1.0)):
            reason = ("no overlap with the samples: no sample lies on the tile or within reach of "
                      "it (3 sample spacings); check the tile and the samples' CRS")
        if reason:
            bad.append((t.path, f"{t.path}: {reason}"))
        else:
            good.append(t)
    if good:
        ref = good[0].grid
        aligned = []
        for t in good:
            dx = (t.grid.x_min - ref.x_min) / ref.cell_x
            dy = (ref.y_max - t.grid.y_max) / ref.cell_y
            if abs(dx - round(dx)) > 1e-3 or abs(dy - round(dy)) > 1e-3:
                bad.append((t.path, f"{t.path}: not on the other tiles' pixel lattice (shifted "
                                    f"by a fraction of a pixel): resample it onto theirs"))
            else:
                aligned.append(t)
        good = aligned
    return good, bad


def build_mosaic(tiles, path):
    """A VRT of ``tiles`` at ``path`` (written to a temporary name, then renamed); its grid."""
    tmp = _temporary(path)
    try:
        ds = gdal.BuildVRT(tmp, [t.path for t in tiles])
        ds.FlushCache()
        grid = Grid.from_gdal(ds.GetGeoTransform(), (ds.RasterYSize, ds.RasterXSize))
        ds = None
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise
    return grid


def tile_window(mosaic_grid, grid):
    """``(row0, col0, nrows, ncols)`` of ``grid`` in the mosaic's pixels."""
    col0 = int(round((grid.x_min - mosaic_grid.x_min) / mosaic_grid.cell_x))
    row0 = int(round((mosaic_grid.y_max - grid.y_max) / mosaic_grid.cell_y))
    return row0, col0, grid.nrows, grid.ncols


class WindowReader:
    """``read(row0, col0, nrows, ncols) -> (bands, nrows, ncols)`` float64, nodata as NaN.

    One GDAL dataset per reader (GDAL datasets serve one thread at a time: each
    task opens its own). Pixels outside the raster are not read: callers ask
    for windows inside it.
    """

    def __init__(self, path):
        self.path = path
        self.ds = gdal.Open(path)
        self.grid = Grid.from_gdal(self.ds.GetGeoTransform(),
                                   (self.ds.RasterYSize, self.ds.RasterXSize))
        bands = [self.ds.GetRasterBand(i + 1) for i in range(self.ds.RasterCount)]
        self.nodata = [b.GetNoDataValue() for b in bands]
        self.descriptions = [b.GetDescription() or f"Band {i + 1}" for i, b in enumerate(bands)]
        self.crs_wkt = self.ds.GetProjection()

    def __call__(self, row0, col0, nrows, ncols):
        """The window's pixels (bands, nrows, ncols)."""
        data = self.ds.ReadAsArray(int(col0), int(row0), int(ncols), int(nrows))
        data = np.asarray(data, dtype=np.float64).reshape(len(self.nodata), int(nrows), int(ncols))
        for i, nd in enumerate(self.nodata):
            if nd is not None and not math.isnan(nd):
                data[i][data[i] == nd] = np.nan
        return data

    def close(self):
        """Release the dataset."""
        self.ds = None


class TileWriter:
    """A float32 output tile written row block by row block, finished as a COG.

    Blocks go to a temporary tiled GeoTIFF; :meth:`finish` converts it to a
    Cloud-Optimized GeoTIFF under a second temporary name and renames that to
    ``path``. On an error or :meth:`discard` both temporaries are removed and
    ``path`` is left as it was.
    """

    def __init__(self, path, grid, crs_wkt, n_bands, *, descriptions=(), metadata=None):
        self.path = path
        self.tmp = _temporary(path, ".blocks.tif")
        self.ds = gdal.GetDriverByName("GTiff").Create(
            self.tmp, grid.ncols, grid.nrows, n_bands, gdal.GDT_Float32,
            ["TILED=YES", "BIGTIFF=IF_SAFER", "BLOCKXSIZE=512", "BLOCKYSIZE=512"])
        self.ds.SetGeoTransform(grid.to_gdal())
        self.ds.SetProjection(crs_wkt)
        for i in range(n_bands):
            band = self.ds.GetRasterBand(i + 1)
            band.SetNoDataValue(NODATA)
            if i < len(descriptions):
                band.SetDescription(descriptions[i])
        if metadata:
            self.ds.SetMetadata({str(k): str(v) for k, v in metadata.items()})

    def write(self, band_index, row0, values):
        """Rows ``row0 …`` of band ``band_index`` (0-based), NaN written as nodata."""
        values = np.where(np.isfinite(values), values, NODATA).astype(np.float32)
        self.ds.GetRasterBand(band_index + 1).WriteArray(values, 0, int(row0))

    def finish(self):
        """Convert to a COG and rename it into place."""
        cog = _temporary(self.path, ".cog.tif")
        try:
            self.ds.FlushCache()
            gdal.Translate(cog, self.ds, format="COG", creationOptions=COG_OPTIONS)
            self.ds = None
            os.replace(cog, self.path)
        except BaseException:
            _remove(cog)
            self.discard()
            raise
        self.discard()

    def discard(self):
        """Remove the temporary blocks file."""
        self.ds = None
        _remove(self.tmp)


def tile_metadata(path):
    """The GDAL metadata of a finished output tile (``{}`` when it is missing or unreadable)."""
    if not os.path.exists(path):
        return {}
    try:
        ds = gdal.Open(path)
        return dict(ds.GetMetadata() or {})
    except RuntimeError:
        return {}


def _temporary(path, suffix=""):
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}.{uuid.uuid4().hex[:12]}.part{suffix}")


def _remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
    except OSError:
        pass


def build_vrt(paths, path):
    """A VRT mosaic of the finished output tiles at ``path`` (temporary name, then renamed)."""
    tmp = _temporary(path, ".vrt")
    try:
        ds = gdal.BuildVRT(tmp, list(paths))
        ds.FlushCache()
        ds = None
        # sources relative to the VRT's folder, so the folder can be moved as a whole
        with open(tmp, encoding="utf-8") as fh:
            text = fh.read()
        folder = os.path.dirname(os.path.abspath(path))
        for p in paths:
            text = text.replace(f'relativeToVRT="0">{os.path.abspath(p)}<',
                                f'relativeToVRT="1">{os.path.relpath(p, folder)}<')
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise
