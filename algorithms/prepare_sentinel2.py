"""``geochemfusion:preparesentinel2`` — a Sentinel-2 L1C/L2A product to a reflectance stack.

File handling only: the metadata parsing and the DN-to-reflectance arithmetic
are in ``core.sentinel2``.  The work is done in two passes, window by window,
so a full tile fits in bounded memory:

1. each chosen band is read at its native resolution (only the part that
   covers the clip extent), converted to reflectance with no data, saturated
   and (L2A) masked scene-classification pixels set to NaN, and written to a
   temporary float GeoTIFF;
2. the temporary bands are resampled onto the output grid (cubic convolution
   to finer cells, cell averages to coarser cells, a plain copy at the same
   size) and stacked into the output, window by window.

Because masking happens before resampling, masked pixels never leak into
their neighbours; an output pixel is nodata exactly where its nearest
source pixel is.
"""

import glob
import os
import re
import shutil
import zipfile
from dataclasses import dataclass

from osgeo import gdal
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterRasterDestination,
)

from ..core.grid import Grid
from . import raster_io
from .base import GeochemAlgorithm

S2_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11",
            "B12")
S2_DEFAULT_BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
RESOLUTIONS = [10, 20]
#: SCL mask choices (option order is API) -> ``core.sentinel2.SCL_MASK_GROUPS`` keys.
SCL_OPTIONS = [
    ("clouds (SCL 8, 9)", "clouds"),
    ("thin cirrus (SCL 10)", "cirrus"),
    ("cloud and cast shadows (SCL 3, 2)", "shadows"),
    ("water (SCL 6)", "water"),
    ("snow and ice (SCL 11)", "snow"),
]
_MTD = re.compile(r"(^|/)MTD_MSIL(1C|2A)\.xml$", re.IGNORECASE)


@dataclass
class Product:
    """Where a product's files are: ``root`` is the GDAL path of the ``.SAFE`` folder."""

    root: str
    xml_text: bytes
    members: frozenset = None  # file names inside a .zip (None: a folder on disk)

    def band_path(self, relative):
        """GDAL path of an image file listed (without extension) in the metadata."""
        name = relative if relative.lower().endswith(".jp2") else relative + ".jp2"
        path = f"{self.root}/{name}"
        found = name in self.members if self.members is not None else os.path.isfile(path)
        if not found:
            raise ValueError(
                f"image file '{name}' listed in the product metadata is missing from the product; "
                "the download is incomplete: download the product again"
            )
        return path


def locate_product(path):
    """Find the metadata of a product given as ``.SAFE`` folder, ``.zip`` or ``MTD_MSIL*.xml``."""
    path = os.path.abspath(str(path))
    if os.path.isdir(path):
        found = sorted(glob.glob(os.path.join(path, "MTD_MSIL*.xml")))
        if not found:
            raise ValueError(
                f"no MTD_MSIL1C.xml or MTD_MSIL2A.xml in '{path}': give a Sentinel-2 .SAFE folder, "
                "its .zip, or the MTD_MSIL*.xml file inside it"
            )
        path = found[0]
    if not os.path.isfile(path):
        raise ValueError(f"'{path}' does not exist")
    if path.lower().endswith(".zip"):
        try:
            with zipfile.ZipFile(path) as zf:
                names = [n for n in zf.namelist() if not n.endswith("/")]
                mtd = sorted((n for n in names if _MTD.search(n)), key=lambda n: n.count("/"))
                if not mtd:
                    raise ValueError(
                        f"'{path}' holds no MTD_MSIL1C.xml or MTD_MSIL2A.xml: it is not a "
                        "Sentinel-2 L1C/L2A product"
                    )
                xml_text = zf.read(mtd[0])
        except zipfile.BadZipFile as exc:
            raise ValueError(f"'{path}' is not a readable zip file ({exc})") from exc
        folder = os.path.dirname(mtd[0])
        root = f"/vsizip/{path}" + (f"/{folder}" if folder else "")
        prefix = f"{folder}/" if folder else ""
        members = frozenset(n[len(prefix):] if n.startswith(prefix) else n for n in names)
        return Product(root, xml_text, members)
    if not _MTD.search(os.path.basename(path)):
        raise ValueError(
            f"'{os.path.basename(path)}' is not a Sentinel-2 product: give the .SAFE folder, its "
            ".zip, or its MTD_MSIL1C.xml / MTD_MSIL2A.xml"
        )
    with open(path, "rb") as f:
        xml_text = f.read()
    return Product(os.path.dirname(path), xml_text)


def _source_file(meta, band):
    """(relative path, resolution) of ``band``: its native resolution, else the finest listed."""
    from ..core.sentinel2 import NATIVE_RESOLUTION

    files = meta.image_files.get(band)
    if not files:
        hint = " (Level-2A products have no B10)" if band == "B10" and meta.level == "L2A" else ""
        raise ValueError(f"band {band} is not in this {meta.level} product{hint}; drop it")
    resolution = NATIVE_RESOLUTION[band] if NATIVE_RESOLUTION[band] in files else min(files)
    return files[resolution], resolution


def _resampling(source_cell, target_cell):
    if abs(source_cell - target_cell) < 1e-6 * target_cell:
        return "near"  # same grid: an exact copy
    return "cubic" if source_cell > target_cell else "average"


DAMAGED = ("The Sentinel-2 product is damaged or incomplete (an interrupted download or copy): "
           "download the product again.")


class PrepareSentinel2(GeochemAlgorithm):
    """``geochemfusion:preparesentinel2``: reflectance stack from a Sentinel-2 product."""

    NAME = "preparesentinel2"
    DISPLAY_NAME = "Prepare Sentinel-2 product (reflectance stack)"
    GROUP = "Imagery preparation"
    GROUP_ID = "imagery"
    REQUIRES = ("numpy",)
    INPUT, BANDS, RESOLUTION, MASK, EXTENT, OUTPUT = (
        "INPUT", "BANDS", "RESOLUTION", "MASK", "EXTENT", "OUTPUT")
    HELP = (
        "Turns a downloaded Sentinel-2 Level-1C (top-of-atmosphere) or Level-2A (surface) "
        "product into one reflectance stack for the mineral indices, PCA and fusion.<br>"
        "<b>Product</b>: the <i>.SAFE</i> folder, its <i>.zip</i> as downloaded, or the "
        "<i>MTD_MSIL1C.xml</i> / <i>MTD_MSIL2A.xml</i> inside it.<br>"
        "<b>Bands</b>: default the 10 m and 20 m bands B02, B03, B04, B05, B06, B07, B08, B8A, "
        "B11, B12 (the band order the mineral indices expect).<br>"
        "<b>Resolution</b>: 10 m (20 m and 60 m bands resampled by cubic convolution) or 20 m "
        "(10 m bands averaged over 2×2 pixels).<br>"
        "Reflectance = (DN + offset) / quantification value, with the quantification value and, "
        "from processing baseline 04.00 on, the per-band offset (RADIO_ADD_OFFSET or "
        "BOA_ADD_OFFSET, −1000) read from the product metadata. Output is float32 reflectance "
        "(0–1; dark pixels of baseline ≥ 04.00 products may be slightly negative).<br>"
        "<b>Masked (nodata)</b>: no-data (DN 0) and saturated (DN 65535) pixels; for Level-2A "
        "also the scene-classification (SCL) classes chosen under <i>Mask</i> (default clouds, "
        "cirrus, shadows) and always SCL 0/1. Masking is done at native resolution before "
        "resampling. Level-1C products have no SCL: mask clouds yourself.<br>"
        "<b>Clip extent</b>: optional; the output keeps the product's pixel grid.<br>"
        "Band descriptions carry band name and central wavelength (e.g. 'B02 (492.7 nm)'), "
        "so <i>mineralindices</i> and <i>fusegeochemistry</i> find the bands by themselves.<br>"
        "Full tiles are processed window by window in bounded memory; temporary files (about the "
        "size of the bands as float32) are written next to the output and removed at the end."
    )

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterFile(
            self.INPUT, "Sentinel-2 product (.SAFE folder, .zip or MTD_MSIL*.xml)",
            fileFilter="Sentinel-2 products (*.zip *.xml *.SAFE);;All files (*.*)"))
        self.addParameter(QgsProcessingParameterEnum(
            self.BANDS, "Bands", list(S2_BANDS), allowMultiple=True,
            defaultValue=[S2_BANDS.index(b) for b in S2_DEFAULT_BANDS]))
        self.addParameter(QgsProcessingParameterEnum(
            self.RESOLUTION, "Output resolution", [f"{r} m" for r in RESOLUTIONS], defaultValue=0))
        self.addParameter(QgsProcessingParameterEnum(
            self.MASK, "Mask (Level-2A scene classification)", [o[0] for o in SCL_OPTIONS],
            allowMultiple=True, optional=True, defaultValue=[0, 1, 2]))
        self.addParameter(QgsProcessingParameterExtent(
            self.EXTENT, "Clip extent", optional=True))
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.OUTPUT, "Reflectance stack"))

    def run_algorithm(self, parameters, context, feedback):
        from ..core import sentinel2

        product = locate_product(self.parameterAsFile(parameters, self.INPUT, context))
        meta = sentinel2.parse_mtd(product.xml_text)
        feedback.pushInfo(
            f"{meta.product_uri or 'product'}: {meta.level}, processing baseline "
            f"{meta.baseline or 'unknown'}, quantification value {meta.quantification:g}, "
            f"offsets {sorted(set(meta.offsets.values())) or [0]}")
        bands = [S2_BANDS[i] for i in self.parameterAsEnums(parameters, self.BANDS, context)]
        if not bands:
            raise ValueError("no band chosen: choose at least one band")
        resolution = RESOLUTIONS[self.parameterAsEnum(parameters, self.RESOLUTION, context)]
        groups = [SCL_OPTIONS[i][1] for i in self.parameterAsEnums(parameters, self.MASK, context)]
        sources = {band: _source_file(meta, band) for band in bands}

        scl_path = None
        if meta.level == "L2A":
            if "SCL" not in meta.image_files:
                raise ValueError("this Level-2A product lists no SCL file; it is incomplete")
            scl_path = product.band_path(meta.image_files["SCL"][min(meta.image_files["SCL"])])
            feedback.pushInfo(f"Masking SCL classes 0, 1 and: {', '.join(groups) or 'nothing else'}")
        elif groups:
            feedback.pushInfo("Level-1C product: no scene classification, clouds are not masked.")

        first_path = product.band_path(sources[bands[0]][0])
        with raster_io.gdal_errors(first_path, f"Band {bands[0]}", DAMAGED):
            first = gdal.Open(first_path)
        crs_wkt = first.GetProjection()
        tile = raster_io.grid_of(first)
        first = None
        base = Grid(tile.x_min, tile.y_max, float(resolution), float(resolution),
                    int(round(tile.ncols * tile.cell_x / resolution)),
                    int(round(tile.nrows * tile.cell_y / resolution)))
        target = base
        if parameters.get(self.EXTENT) not in (None, ""):
            crs = QgsCoordinateReferenceSystem.fromWkt(crs_wkt)
            rect = self.parameterAsExtent(parameters, self.EXTENT, context, crs)
            if not rect.isNull() and not rect.isEmpty():
                target = raster_io.clip_grid(
                    base, (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum()))
        feedback.pushInfo(f"Output grid: {target.nrows} × {target.ncols} cells of {resolution} m")

        out = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        folder = raster_io.prepare_destination(out)
        workdir = raster_io.partial_path(folder, "preparesentinel2", ".partial")  # removed if killed
        os.mkdir(workdir)
        try:
            converted, resample = [], []
            for k, band in enumerate(bands):
                relative, _ = sources[band]
                path = product.band_path(relative)
                converted.append(self._convert_band(
                    path, band, meta, scl_path, groups, target, crs_wkt,
                    os.path.join(workdir, f"{band}.tif"), feedback,
                    (50.0 * k / len(bands), 50.0 * (k + 1) / len(bands))))
                src = gdal.Open(converted[-1])
                resample.append(_resampling(src.GetGeoTransform()[1], resolution))
                src = None
            metadata = {
                "SENSOR": "Sentinel-2", "PRODUCT": meta.product_uri, "PRODUCT_LEVEL": meta.level,
                "PROCESSING_BASELINE": meta.baseline, "QUANTIFICATION_VALUE": meta.quantification,
                "SPACECRAFT": meta.spacecraft, "SENSING_TIME": meta.sensing_time,
                "QUANTITY": "TOA reflectance" if meta.level == "L1C" else "surface reflectance",
                **{f"OFFSET_{b}": meta.offset(b) for b in bands},
            }
            raster_io.stack_onto_grid(
                converted, target, crs_wkt, out, resample=resample,
                descriptions=[sentinel2.band_label(b, meta.central_wavelength_nm) for b in bands],
                metadata=metadata, on_window=self._progress(feedback, 50.0, 100.0))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        if context.willLoadLayerOnCompletion(out):
            details = context.layerToLoadOnCompletionDetails(out)
            details.name = f"{meta.product_uri.replace('.SAFE', '') or 'Sentinel-2'} reflectance"
        return {self.OUTPUT: out}

    def _convert_band(self, path, band, meta, scl_path, groups, target, crs_wkt, dest, feedback,
                      span):
        """Pass 1: native-resolution reflectance of the part of ``band`` covering ``target``."""
        from ..core.sentinel2 import dn_to_reflectance, scl_mask

        with raster_io.gdal_errors(path, f"Band {band}", DAMAGED):
            ds = gdal.Open(path)
        grid = raster_io.grid_of(ds)
        row0, col0, nrows, ncols = raster_io.window_covering(grid, target.extent, margin=3)
        sub = grid.window(row0, col0, nrows, ncols)
        with raster_io.gdal_errors(scl_path, "The scene classification (SCL)", DAMAGED):
            scl = (raster_io.warped_vrt(scl_path, sub, crs_wkt, resample="near")
                   if scl_path is not None else None)
        source = ds.GetRasterBand(1)
        feedback.pushInfo(f"{band}: {os.path.basename(path)} ({grid.cell_x:g} m)")

        def read_window(r, n):
            with raster_io.gdal_errors(path, f"Band {band}", DAMAGED):
                dn = source.ReadAsArray(col0, row0 + r, ncols, n)
            values = dn_to_reflectance(dn, quantification=meta.quantification,
                                       offset=meta.offset(band), nodata=meta.nodata_dn,
                                       saturated=meta.saturated_dn)
            if scl is not None:
                with raster_io.gdal_errors(scl_path, "The scene classification (SCL)", DAMAGED):
                    classes = scl.GetRasterBand(1).ReadAsArray(0, r, ncols, n)
                values[scl_mask(classes, groups)] = float("nan")
            return values

        return raster_io.convert_to_file(read_window, sub, crs_wkt, dest,
                                         on_window=self._progress(feedback, *span))

    def _progress(self, feedback, start, end):
        def on_window(fraction):
            feedback.setProgress(start + (end - start) * fraction)
            self.check_canceled(feedback)

        return on_window
