"""``geochemfusion:laplaciandecomposition`` — low/high-frequency split of a raster."""

import os

from qgis.core import (
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from ..core.blocks import block_rows_for, row_blocks
from . import raster_io
from .base import GeochemAlgorithm
from .styles import CONTINUOUS


class LaplacianDecomposition(GeochemAlgorithm):
    """``geochemfusion:laplaciandecomposition``: low and high frequency of a raster."""

    NAME = "laplaciandecomposition"
    DISPLAY_NAME = "Laplacian pyramid decomposition (low/high frequency)"
    INPUT, LEVELS, SPACING = "INPUT", "LEVELS", "SPACING"
    LEVELS_RASTER = INPUT
    OUTPUT_LOW, OUTPUT_HIGH = "OUTPUT_LOW", "OUTPUT_HIGH"
    HELP = (
        "Splits every band of a raster into a low-frequency part (background at the scale of the "
        "geochemical survey) and a high-frequency part (the detail finer than that scale) with a "
        "Gaussian/Laplacian pyramid (Burt & Adelson 1983): X = X_L + X_H exactly.<br>"
        "<b>Levels</b>: number of halvings; the low part keeps structures larger than about "
        "2^levels pixels. 0 = automatic from the sample spacing: round(log2(spacing / pixel size)) "
        "(step 4 of the method, docs/method.md; Remote Sensing 2023, 15(8), 1993).<br>"
        "<b>Sample spacing</b>: typical distance between geochemical samples (map units, metres); "
        "used only when Levels is 0.<br>NaN/nodata pixels stay nodata and do not bleed into their "
        "neighbours (normalized convolution)."
    )

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Input raster"))
        self.addParameter(QgsProcessingParameterNumber(
            self.LEVELS, "Pyramid levels (0 = automatic from the sample spacing)",
            QgsProcessingParameterNumber.Type.Integer, 0, minValue=0, maxValue=16))
        self.addParameter(QgsProcessingParameterNumber(
            self.SPACING, "Sample spacing (map units; for automatic levels)",
            QgsProcessingParameterNumber.Type.Double, 0.0, minValue=0.0))
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT_LOW, "Low frequency"))
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT_HIGH, "High frequency"))

    def checkParameterValues(self, parameters, context):
        ok, msg = super().checkParameterValues(parameters, context)
        if not ok:
            return ok, msg
        levels = self.parameterAsInt(parameters, self.LEVELS, context)
        spacing = self.parameterAsDouble(parameters, self.SPACING, context)
        if levels == 0 and spacing <= 0:
            return False, "Set either the pyramid levels or the sample spacing (for automatic levels)."
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        # an explicit depth is checked against the raster by the base class
        # (core.pyramid.levels_problem); the automatic one is capped (core.pyramid.resolve_levels)
        if layer is not None and levels == 0 and layer.crs().isGeographic():
            return False, (
                f"'{layer.name()}' is in a geographic CRS ({layer.crs().authid()}, degrees): "
                "automatic levels compare the sample spacing (metres) with the pixel size. "
                "Reproject the raster to a projected CRS (Raster > Projections > Warp), or "
                "give the number of levels.")
        return True, ""

    def run_algorithm(self, parameters, context, feedback):
        from ..core.pyramid import BlockPyramid, resolve_levels

        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        self.step(feedback, 1, f"Reading '{layer.name()}'")
        path = raster_io.layer_path(layer)
        preview = raster_io.read_preview(path)
        for note in raster_io.check_bands(preview, f"Input '{layer.name()}'", empty_band="warn"):
            feedback.pushWarning(note)
        src = raster_io.open_blocks(path)
        levels = self.parameterAsInt(parameters, self.LEVELS, context)
        if levels == 0:
            notes = []
            levels = resolve_levels(0, self.parameterAsDouble(parameters, self.SPACING, context),
                                    src.grid.cell_x, src.grid.shape, notes)
            for note in notes:
                feedback.pushInfo(note)
            feedback.pushInfo(f"Automatic pyramid depth: {levels} levels")
        out_low = self.parameterAsOutputLayer(parameters, self.OUTPUT_LOW, context)
        out_high = self.parameterAsOutputLayer(parameters, self.OUTPUT_HIGH, context)
        desc = src.descriptions
        rows, cols = src.grid.shape
        # two passes of row blocks (core.pyramid.BlockPyramid): the first streams REDUCE down
        # to the coarsest level, the second expands it back block by block; the result equals
        # the whole-image decomposition while memory follows the block
        block = block_rows_for(cols)
        raster_io.check_memory((min(block, rows), cols), src.n_bands, 8,
                               f"raster '{os.path.basename(path)}'", copies=6)
        pyramid = BlockPyramid((rows, cols), levels, src.n_bands)
        for row0, nrows in row_blocks(rows, block):
            self.step(feedback, 5 + 40 * row0 / rows, None)
            pyramid.push(src.read(row0, 0, nrows, cols))
        with raster_io.WindowedWriter(out_low, src.grid, src.crs_wkt, src.n_bands,
                                      descriptions=[f"{d} low (k={levels})" for d in desc]) as lo, \
                raster_io.WindowedWriter(out_high, src.grid, src.crs_wkt, src.n_bands,
                                         descriptions=[f"{d} high (k={levels})" for d in desc]) as hi:
            for row0, nrows in row_blocks(rows, block):
                self.step(feedback, 45 + 50 * row0 / rows, None)
                low, high = pyramid.decompose(src.read(row0, 0, nrows, cols), row0)
                for b in range(src.n_bands):
                    lo.write(b, row0, low[b])
                    hi.write(b, row0, high[b])
        self.load_styled(context, out_low, CONTINUOUS, f"{layer.name()} low frequency")
        self.load_styled(context, out_high, CONTINUOUS, f"{layer.name()} high frequency")
        return {self.OUTPUT_LOW: out_low, self.OUTPUT_HIGH: out_high, self.LEVELS: levels}
