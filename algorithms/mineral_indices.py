"""``geochemfusion:mineralindices`` — band-ratio mineral indices of an image stack."""

import re

from qgis.core import (
    QgsProcessingParameterEnum,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from . import raster_io
from .base import GeochemAlgorithm, advanced
from .params import SENSOR_KEYS, SENSORS, format_band_map, parse_band_map
from .styles import CONTINUOUS


def all_indices():
    """(sensor key, Index) for the ASTER then the Sentinel-2 table (the enum order)."""
    from ..core.indices import ASTER_INDICES, SENTINEL2_INDICES

    return [("aster", ix) for ix in ASTER_INDICES] + [("sentinel2", ix) for ix in SENTINEL2_INDICES]


def resolve_band_map(raster, sensor, band_map_text):
    """Band map from the user's text, else guessed from band descriptions, else by band order."""
    from ..core.indices import default_band_map, guess_band_map

    n_bands = len(raster.descriptions)
    if band_map_text.strip():
        band_map = parse_band_map(band_map_text)
        for key, index in band_map.items():
            if not 0 <= index < n_bands:
                raise ValueError(
                    f"band map entry '{key}={index + 1}': the image has {n_bands} bands, numbered "
                    f"1 to {n_bands}; fix the band map"
                )
        return band_map, "given"
    if sensor == "custom":
        raise ValueError("SENSOR is 'custom': give a band map such as 'B2=1,B3=2,B4=3,B8=4'.")
    # "Band 3" is the name given to unnamed bands (raster_io.read_raster), not a sensor band
    names = ["" if re.fullmatch(r"Band \d+", d) else d for d in raster.descriptions]
    guessed = guess_band_map(names, sensor)
    if guessed:
        return guessed, "guessed from band descriptions"
    try:
        return default_band_map(n_bands, sensor), "by band order"
    except ValueError as exc:
        usual, example = _USUAL_BANDS[sensor]
        raise ValueError(
            f"the image has {n_bands} bands whose names do not say which {sensor_name(sensor)} "
            f"band they are, and the usual band order has {usual} bands. Give the Band map "
            f"(advanced parameter), e.g. '{example}', or choose the sensor that took the image"
        ) from exc


_USUAL_BANDS = {
    "aster": ("9 (bands 1-9) or 14 (1-14)", "1=1,2=2,3=3,4=4,5=5,6=6,7=7,8=8,9=9"),
    "sentinel2": ("4 (B2, B3, B4, B8) or 10 (B2-B7, B8, B8A, B11, B12)",
                  "B2=1,B3=2,B4=3,B8=4,B11=5,B12=6"),
}


def sensor_name(sensor):
    return "ASTER" if sensor == "aster" else "Sentinel-2"


def sensor_of(band_map, sensor):
    """For a custom band map, the table its band names belong to."""
    if sensor != "custom":
        return sensor
    return "sentinel2" if any(k.upper().startswith("B") for k in band_map) else "aster"


class MineralIndices(GeochemAlgorithm):
    NAME = "mineralindices"
    DISPLAY_NAME = "Mineral indices (band ratios)"
    IMAGE, SENSOR, BAND_MAP, INDICES, OUTPUT = "IMAGE", "SENSOR", "BAND_MAP", "INDICES", "OUTPUT"
    HELP = (
        "Band-ratio mineral indices of an image stack: the ASTER table of Kalinowski & Oliver "
        "(2004, Geoscience Australia) used by the paper (Remote Sensing 2023, 15(8), 1993, Tables "
        "1–2), or a Sentinel-2 analogue table (van der Werff & van der Meer 2016). Each output band "
        "is named with the index and its formula, e.g. 'Alunite/kaolinite/pyrophyllite (4+6)/5'.<br>"
        "<b>Sensor</b>: ASTER (bands 1–9, optionally 10–14), Sentinel-2, or custom.<br>"
        "<b>Band map</b>: which raster band (1-based) holds which sensor band, e.g. "
        "'B2=1,B3=2,B4=3,B8=4,B11=5,B12=6' or '1=1,2=2,…'. Empty: guessed from the band "
        "descriptions, else the usual band order.<br><b>Indices</b>: empty = every index the "
        "bands allow; indices that need absent bands are listed in the log. Division by zero gives "
        "nodata."
    )

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API name)
        self.addParameter(QgsProcessingParameterRasterLayer(self.IMAGE, "Image stack"))
        self.addParameter(QgsProcessingParameterEnum(self.SENSOR, "Sensor", SENSORS, defaultValue=1))
        band_map = QgsProcessingParameterString(self.BAND_MAP, "Band map (sensor band=raster band)",
                                                "", optional=True)
        self.addParameter(advanced(band_map))
        options = [f"{'ASTER' if s == 'aster' else 'Sentinel-2'}: {ix.label}"
                   for s, ix in all_indices()]
        self.addParameter(QgsProcessingParameterEnum(
            self.INDICES, "Indices (empty = all available)", options, allowMultiple=True,
            optional=True))
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, "Mineral indices"))

    def run_algorithm(self, parameters, context, feedback):
        from ..core.indices import compute_indices

        layer = self.parameterAsRasterLayer(parameters, self.IMAGE, context)
        self.step(feedback, 1, f"Reading '{layer.name()}'")
        path = raster_io.layer_path(layer)
        # checks and the band map on a decimated copy; the indices block by block, so a full
        # scene never sits in memory
        preview = raster_io.read_preview(path)
        for note in raster_io.check_bands(preview, f"Image '{layer.name()}'", empty_band="warn"):
            feedback.pushWarning(note)
        sensor = SENSOR_KEYS[self.parameterAsEnum(parameters, self.SENSOR, context)]
        band_map, how = resolve_band_map(
            preview, sensor, self.parameterAsString(parameters, self.BAND_MAP, context))
        sensor = sensor_of(band_map, sensor)
        feedback.pushInfo(f"Band map ({how}): {format_band_map(band_map)}")
        chosen = (self.parameterAsEnums(parameters, self.INDICES, context)
                  if parameters.get(self.INDICES) not in (None, "", []) else [])
        table = all_indices()
        keys = [table[i][1].key for i in chosen if table[i][0] == sensor] or None
        if chosen and keys is None:
            raise ValueError("none of the chosen indices belongs to the chosen sensor's table")
        probe = compute_indices(preview.data[:, :1, :1], band_map, sensor=sensor, indices=keys)
        for key, bands in probe.missing.items():
            feedback.pushWarning(f"Index '{key}' not computed: bands {', '.join(bands)} are absent.")
        keys = [ix.key for ix in probe.indices]
        src = raster_io.open_blocks(path)
        out = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        rows = src.grid.nrows
        with raster_io.WindowedWriter(out, src.grid, src.crs_wkt, len(keys),
                                      descriptions=[ix.label for ix in probe.indices]) as writer:
            for row0, nrows in raster_io.row_blocks(rows, max(16, 2 ** 21 // src.grid.ncols)):
                self.step(feedback, 5 + 90 * row0 / rows)
                block = compute_indices(src.read(row0, 0, nrows, src.grid.ncols), band_map,
                                        sensor=sensor, indices=keys)
                for i in range(len(keys)):
                    writer.write(i, row0, block.data[i])
        self.load_styled(context, out, CONTINUOUS, f"{layer.name()} mineral indices")
        return {self.OUTPUT: out}
