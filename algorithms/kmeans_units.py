"""``geochemfusion:kmeansunits`` — K-means geological units from an image stack."""

from qgis.core import (
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from ..core.blocks import block_rows_for, row_blocks
from . import raster_io
from .base import GeochemAlgorithm, sample_size_parameter
from .params import DEFAULT_N_CLUSTERS
from .styles import UNITS

SMALL_UNIT = 30
"""Fewest pixels of a unit worth its own fit (the regression's default ``min_pixels`` floor)."""


class KMeansUnitsAlgorithm(GeochemAlgorithm):
    """``geochemfusion:kmeansunits``: K-means geological units of an image stack."""

    NAME = "kmeansunits"
    DISPLAY_NAME = "K-means geological units"
    INPUT, N_CLUSTERS, SEED, SAMPLE_SIZE, OUTPUT = (
        "INPUT", "N_CLUSTERS", "SEED", "SAMPLE_SIZE", "OUTPUT")
    REQUIRES = ("numpy", "scipy", "sklearn")
    HELP = (
        "Unsupervised classification of the image into N units (one per geological body) with "
        "K-means (scikit-learn), as used by the paper's local regression (Remote Sensing 2023, "
        "15(8), 1993, §3.3). Bands are standardized first so that each counts equally.<br>"
        "<b>Number of units</b>: N ≥ 2.<br><b>Seed</b>: the same seed gives the same units.<br>"
        "<b>Pixel sample size</b>: K-means is fitted on this many random valid pixels, then every "
        "pixel is assigned to its nearest centre.<br>Output: unit numbers 0…N−1 (labelled Unit 1…N "
        "in the legend), nodata where any band is nodata."
    )

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Image or feature stack"))
        self.addParameter(QgsProcessingParameterNumber(
            self.N_CLUSTERS, "Number of units", QgsProcessingParameterNumber.Type.Integer,
            DEFAULT_N_CLUSTERS, minValue=2, maxValue=64))
        self.addParameter(QgsProcessingParameterNumber(
            self.SEED, "Random seed", QgsProcessingParameterNumber.Type.Integer, 0, minValue=0))
        self.addParameter(sample_size_parameter(self.SAMPLE_SIZE, "K-means"))
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, "Units"))

    def run_algorithm(self, parameters, context, feedback):
        from ..core.clustering import KMeansUnits

        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        self.step(feedback, 1, f"Reading '{layer.name()}'")
        path = raster_io.layer_path(layer)
        raster_io.check_bands(raster_io.read_preview(path), f"Input '{layer.name()}'")
        src = raster_io.open_blocks(path)
        k = self.parameterAsInt(parameters, self.N_CLUSTERS, context)
        sample_size = self.parameterAsInt(parameters, self.SAMPLE_SIZE, context)
        seed = self.parameterAsInt(parameters, self.SEED, context)
        model = KMeansUnits(k, sample_size=sample_size, random_state=seed)
        self.step(feedback, 10, f"Fitting K-means ({k} units)")
        model.fit(raster_io.fitting_stack(src, n_pixels=sample_size, random_state=seed))
        for unit, count in enumerate(model.counts_):
            if count < SMALL_UNIT:
                feedback.pushWarning(
                    f"Unit {unit + 1} holds only {count} of the {int(model.counts_.sum())} pixels "
                    "K-means was fitted on: too few for its own regression in a local fusion (it "
                    "would use the global fit). Consider fewer units.")
        self.step(feedback, 50, "Assigning every pixel to its unit")
        out = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        rows, cols = src.grid.shape
        with raster_io.WindowedWriter(out, src.grid, src.crs_wkt, 1,
                                      descriptions=[f"K-means units (N={k})"], dtype="int16",
                                      nodata=-1) as writer:
            for row0, nrows in row_blocks(rows, block_rows_for(cols)):
                self.step(feedback, 50 + 45 * row0 / rows, None)
                writer.write(0, row0, model.predict(src.read(row0, 0, nrows, cols)))
        self.load_styled(context, out, UNITS, f"Geological units (K-means, N={k})")
        return {self.OUTPUT: out}
