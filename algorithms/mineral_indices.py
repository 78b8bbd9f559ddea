"""``geochemfusion:mineralindices`` — band-ratio mineral indices of an image stack."""

from qgis.core import (
    QgsProcessingParameterEnum,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from ..core.blocks import block_rows_for, row_blocks
from . import raster_io
from .bands import all_indices, resolve_band_map, sensor_of
from .base import GeochemAlgorithm, advanced
from .params import SENSOR_KEYS, SENSORS
from .styles import CONTINUOUS


class MineralIndices(GeochemAlgorithm):
    """``geochemfusion:mineralindices``: mineral band-ratio indices of an image."""

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

    def initAlgorithm(self, config=None):
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
        feedback.pushInfo(f"Band map ({how}): {band_map}")
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
            for row0, nrows in row_blocks(rows, block_rows_for(src.grid.ncols)):
                self.step(feedback, 5 + 90 * row0 / rows)
                block = compute_indices(src.read(row0, 0, nrows, src.grid.ncols), band_map,
                                        sensor=sensor, indices=keys)
                for i in range(len(keys)):
                    writer.write(i, row0, block.data[i])
        self.load_styled(context, out, CONTINUOUS, f"{layer.name()} mineral indices")
        return {self.OUTPUT: out}
