"""``geochemfusion:prepareaster`` — an ASTER L1T HDF-EOS scene to a reflectance stack.

File handling only: metadata parsing and radiometry are in ``core.aster``.
Like ``preparesentinel2`` the work is done in two passes, window by window:
each band is converted at its native resolution (DN -> radiance ->
reflectance, no data and saturated pixels -> NaN) into a temporary float
GeoTIFF, then the bands are resampled onto the 15 m VNIR grid (SWIR 30 m and
TIR 90 m by cubic convolution) and stacked.

Georeferencing: GDAL gives the L1T swaths only coarse latitude/longitude
GCPs, so the UTM grid is built from the metadata as in the LP DAAC ASTER L1T
tutorials: ``UPPERLEFTM`` is the (northing, easting) of the centre of the
upper-left pixel, the UTM zone is ``UTMZONENUMBER`` (south when
``NORTHBOUNDINGCOORDINATE`` < 0, northing + 10,000 km), WGS 84.
"""

import os
import re
import shutil

import numpy as np
from osgeo import gdal, osr
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterRasterDestination,
)

from ..core.grid import Grid
from . import raster_io
from .base import GeochemAlgorithm

TIR_MODES = ["not included", "separate output on its own 90 m grid",
             "resampled into the 15 m stack"]
_IMAGE_DATA = re.compile(r"ImageData(\d{1,2}N?)(?![0-9A-Za-z])", re.IGNORECASE)


def find_bands(ds):
    """Band name (``"1"``, ``"3N"``, ``"14"``) -> subdataset name of an L1T file.

    Works with the HDF-EOS swath subdatasets of real files
    (``HDF4_EOS:EOS_SWATH:"f.hdf":VNIR_Swath:ImageData1``) and with plain HDF4
    scientific datasets named ``ImageData1`` ...; the backward band 3B is skipped.
    """
    from ..core.aster import BANDS, band_name

    found = {}
    for name, description in ds.GetSubDatasets():
        m = _IMAGE_DATA.search(name.rsplit(":", 1)[-1]) or _IMAGE_DATA.search(description)
        if m is None:
            continue
        try:
            band = band_name(m.group(1))
        except ValueError:
            continue
        found.setdefault(band, name)
    return {b: found[b] for b in BANDS if b in found}


def subsystem_grid(meta, subsystem, shape):
    """UTM grid of a subsystem from the metadata corners (LP DAAC convention)."""
    from ..core.aster import RESOLUTION

    if meta.upper_left is None or meta.utm_zone is None:
        raise ValueError(
            "the file's metadata have no UPPERLEFTM / UTMZONENUMBER: it is not an ASTER L1T "
            "(map-projected) scene; use AST_L1T products"
        )
    cell = RESOLUTION[subsystem]
    east, north = meta.upper_left
    return Grid(east - cell / 2, north + cell / 2, cell, cell, int(shape[1]), int(shape[0]))


class PrepareAster(GeochemAlgorithm):
    """``geochemfusion:prepareaster``: reflectance stack from an ASTER L1T product."""

    NAME = "prepareaster"
    DISPLAY_NAME = "Prepare ASTER L1T scene (reflectance stack)"
    GROUP = "Imagery preparation"
    GROUP_ID = "imagery"
    REQUIRES = ("numpy",)
    INPUT, TIR, DOS1, EXTENT, OUTPUT, OUTPUT_TIR = (
        "INPUT", "TIR", "DOS1", "EXTENT", "OUTPUT", "OUTPUT_TIR")
    HELP = (
        "Turns an ASTER L1T scene (<i>AST_L1T_*.hdf</i>, HDF-EOS, as downloaded from NASA LP "
        "DAAC / Earthdata) into a reflectance stack for the mineral indices, PCA and fusion.<br>"
        "<b>Output</b>: VNIR + SWIR bands 1, 2, 3N, 4–9 on the 15 m VNIR grid (SWIR resampled "
        "from 30 m by cubic convolution), float32 top-of-atmosphere reflectance: radiance "
        "L = (DN − 1) × UCC with the unit conversion coefficient of each band's gain setting "
        "read from the file (ASTER User Handbook v2), then ρ = π L d² / (ESUN cos θz) with the "
        "Earth–Sun distance d of the acquisition date, the sun elevation of the metadata and "
        "ESUN of Thome et al. (2001). DN 0 (no data) and 255 (saturated) become nodata.<br>"
        "<b>Thermal bands</b> 10–14 (at-sensor radiance, W m⁻² sr⁻¹ µm⁻¹): not included, "
        "written to a separate 90 m output, or resampled into the 15 m stack (bands 10–14 "
        "after band 9).<br>"
        "<b>Dark-object subtraction (DOS1)</b>: a simple atmospheric correction (Chavez 1996): "
        "each band's darkest DN with at least 0.01 % of the pixels is taken to reflect 1 %, and "
        "the difference is subtracted as haze.<br>"
        "<b>Not corrected</b>: SWIR crosstalk (band 4 light leaking into bands 5 and 9, "
        "Iwasaki & Tonooka 2005); use crosstalk-corrected products (AST_07XT) when it matters. "
        "SWIR data acquired after April 2008 are unusable (detector temperature).<br>"
        "<b>Georeferencing</b>: UTM (WGS 84) from the scene's corner metadata, as in the LP DAAC "
        "ASTER L1T tutorials.<br><b>Clip extent</b>: optional; the output keeps the scene's "
        "pixel grid.<br>Band descriptions carry band name and central wavelength "
        "(e.g. 'B3N (807 nm)'), so <i>mineralindices</i> and <i>fusegeochemistry</i> find "
        "the bands by themselves."
    )

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterFile(
            self.INPUT, "ASTER L1T scene (AST_L1T_*.hdf)",
            fileFilter="ASTER L1T HDF-EOS (*.hdf *.HDF);;All files (*.*)"))
        self.addParameter(QgsProcessingParameterEnum(
            self.TIR, "Thermal bands 10–14", TIR_MODES, defaultValue=0))
        self.addParameter(QgsProcessingParameterBoolean(
            self.DOS1, "Dark-object subtraction (DOS1)", False))
        self.addParameter(QgsProcessingParameterExtent(self.EXTENT, "Clip extent", optional=True))
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.OUTPUT, "Reflectance stack (15 m)"))
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.OUTPUT_TIR, "Thermal radiance (90 m)", optional=True, createByDefault=False))

    def run_algorithm(self, parameters, context, feedback):
        from ..core import aster

        path = self.parameterAsFile(parameters, self.INPUT, context)
        try:
            ds = gdal.Open(path)
        except RuntimeError as exc:
            raise ValueError(f"cannot open '{path}' as HDF4: {exc}") from exc
        meta = aster.parse_metadata(ds.GetMetadata())
        subdatasets = find_bands(ds)
        ds = None
        if not all(b in subdatasets for b in aster.VNIR_BANDS):
            raise ValueError(
                f"'{os.path.basename(path)}' has no VNIR ImageData1/2/3N subdatasets: it is not an "
                "ASTER L1T scene"
            )
        tir_mode = self.parameterAsEnum(parameters, self.TIR, context)
        use_dos = self.parameterAsBool(parameters, self.DOS1, context)
        reflective = [b for b in aster.VNIR_BANDS + aster.SWIR_BANDS if b in subdatasets]
        missing = [b for b in aster.SWIR_BANDS if b not in subdatasets]
        if missing:
            feedback.pushWarning(f"SWIR bands {', '.join(missing)} are absent from the file.")
        thermal = [b for b in aster.TIR_BANDS if b in subdatasets] if tir_mode else []
        if tir_mode and len(thermal) < len(aster.TIR_BANDS):
            feedback.pushWarning("some thermal bands are absent from the file.")
        tir_out = None
        if tir_mode == 1:
            tir_out = self.parameterAsOutputLayer(parameters, self.OUTPUT_TIR, context)
            if not tir_out:
                raise ValueError("Thermal bands as a separate output: give the thermal output file")
        distance = aster.earth_sun_distance(meta.day_of_year)
        feedback.pushInfo(
            f"Acquired {meta.date.isoformat()} (day {meta.day_of_year}, Earth–Sun distance "
            f"{distance:.5f} AU), sun elevation {meta.sun_elevation:g}°, UTM zone "
            f"{meta.utm_zone}{'S' if meta.south else 'N'}; gains "
            + ", ".join(f"{b}: {g}" for b, g in meta.gains.items()))

        srs = osr.SpatialReference()
        srs.ImportFromEPSG(meta.epsg)
        crs_wkt = srs.ExportToWkt()
        grids = {}
        for band in reflective + thermal:
            sub = gdal.Open(subdatasets[band])
            grids[band] = subsystem_grid(meta, aster.SUBSYSTEM[band],
                                         (sub.RasterYSize, sub.RasterXSize))
            sub = None
        self._check_corners(meta, grids["1"], feedback)
        extent = None
        if parameters.get(self.EXTENT) not in (None, ""):
            rect = self.parameterAsExtent(parameters, self.EXTENT, context,
                                          QgsCoordinateReferenceSystem.fromWkt(crs_wkt))
            if not rect.isNull() and not rect.isEmpty():
                extent = (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())
        target = raster_io.clip_grid(grids["1"], extent) if extent else grids["1"]

        out = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        folder = raster_io.prepare_destination(out)
        workdir = raster_io.partial_path(folder, "prepareaster", ".partial")  # removed if killed
        os.mkdir(workdir)
        try:
            converted, counts = {}, {}
            bands = reflective + thermal
            for k, band in enumerate(bands):
                converted[band], counts[band] = self._convert_band(
                    subdatasets[band], band, meta, distance, grids[band], target.extent, crs_wkt,
                    os.path.join(workdir, f"B{band}.tif"), feedback,
                    (50.0 * k / len(bands), 50.0 * (k + 1) / len(bands)))
            adjust, dark = [], {}
            for band in reflective:
                if not use_dos:
                    adjust.append(None)
                    continue
                dn = aster.dark_object_dn(counts[band])
                dark[band] = dn
                rho_dark = aster.radiance_to_reflectance(
                    aster.dn_to_radiance(np.array([dn]), band, gain=meta.gain(band)), band,
                    earth_sun_distance=distance, sun_elevation=meta.sun_elevation)[0]
                adjust.append(lambda w, r=rho_dark: aster.dos1(w, r))
            if dark:
                feedback.pushInfo("DOS1 dark-object DN: "
                                  + ", ".join(f"{b}: {v}" for b, v in dark.items()))
            stacked = reflective + (thermal if tir_mode == 2 else [])
            metadata = self._metadata(meta, distance, stacked, dark)
            raster_io.stack_onto_grid(
                [converted[b] for b in stacked], target, crs_wkt, out,
                resample=["near" if aster.SUBSYSTEM[b] == "VNIR" else "cubic" for b in stacked],
                descriptions=[aster.band_label(b) for b in stacked],
                adjust=adjust + [None] * (len(stacked) - len(reflective)), metadata=metadata,
                on_window=self._progress(feedback, 50.0, 90.0 if tir_out else 100.0))
            if tir_out:
                tir_target = (raster_io.clip_grid(grids[thermal[0]], extent) if extent
                              else grids[thermal[0]])
                raster_io.stack_onto_grid(
                    [converted[b] for b in thermal], tir_target, crs_wkt, tir_out,
                    resample=["near"] * len(thermal),
                    descriptions=[aster.band_label(b) for b in thermal],
                    metadata={**self._metadata(meta, distance, thermal, {}),
                              "QUANTITY": "at-sensor radiance (W m-2 sr-1 um-1)"},
                    on_window=self._progress(feedback, 90.0, 100.0))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        name = os.path.splitext(os.path.basename(path))[0]
        for dest, label in ((out, "reflectance"), (tir_out, "thermal radiance")):
            if dest and context.willLoadLayerOnCompletion(dest):
                context.layerToLoadOnCompletionDetails(dest).name = f"{name} {label}"
        results = {self.OUTPUT: out}
        if tir_out:
            results[self.OUTPUT_TIR] = tir_out
        return results

    def _convert_band(self, subdataset, band, meta, distance, grid, extent, crs_wkt, dest,
                      feedback, span):
        """Pass 1: native-resolution reflectance (VNIR/SWIR) or radiance (TIR) of ``band``."""
        from ..core import aster

        ds = gdal.Open(subdataset)
        source = ds.GetRasterBand(1)
        row0, col0, nrows, ncols = raster_io.window_covering(grid, extent, margin=3)
        sub = grid.window(row0, col0, nrows, ncols)
        gain = meta.gain(band)
        counts = np.zeros(256, dtype=np.int64)

        def read_window(r, n):
            dn = source.ReadAsArray(col0, row0 + r, ncols, n)
            radiance = aster.dn_to_radiance(dn, band, gain=gain)
            if aster.SUBSYSTEM[band] == "TIR":
                return radiance
            counts[:] += aster.valid_dn_counts(dn, band)
            return aster.radiance_to_reflectance(radiance, band, earth_sun_distance=distance,
                                                 sun_elevation=meta.sun_elevation)

        path = raster_io.convert_to_file(read_window, sub, crs_wkt, dest,
                                         on_window=self._progress(feedback, *span))
        return path, counts

    @staticmethod
    def _check_corners(meta, grid, feedback):
        if meta.lower_right is None:
            return
        east = grid.x_min + grid.cell_x * (grid.ncols - 0.5)
        north = grid.y_max - grid.cell_y * (grid.nrows - 0.5)
        if max(abs(east - meta.lower_right[0]), abs(north - meta.lower_right[1])) > grid.cell_x:
            feedback.pushWarning(
                f"LOWERRIGHTM ({meta.lower_right[0]:.1f} E, {meta.lower_right[1]:.1f} N) does not "
                f"match the VNIR image size ({east:.1f} E, {north:.1f} N expected): check the "
                "georeferencing of the output")

    @staticmethod
    def _metadata(meta, distance, bands, dark):
        from ..core import aster

        items = {
            "SENSOR": "ASTER", "PRODUCT": "AST_L1T", "ACQUISITION_DATE": meta.date.isoformat(),
            "SUN_ELEVATION": meta.sun_elevation, "SUN_AZIMUTH": meta.sun_azimuth,
            "EARTH_SUN_DISTANCE": round(distance, 6),
            "QUANTITY": ("TOA reflectance (bands 1-9)" + ("+DOS1" if dark else "")
                         + "; at-sensor radiance W m-2 sr-1 um-1 (bands 10-14)"),
            "SWIR_CROSSTALK": "not corrected",
        }
        for b in bands:
            items[f"UCC_{b}"] = aster.unit_conversion_coefficient(b, meta.gain(b))
            if aster.SUBSYSTEM[b] != "TIR":
                items[f"GAIN_{b}"] = meta.gain(b)
            if b in dark:
                items[f"DOS1_DARK_DN_{b}"] = dark[b]
        return items

    def _progress(self, feedback, start, end):
        def on_window(fraction):
            feedback.setProgress(start + (end - start) * fraction)
            self.check_canceled(feedback)

        return on_window
