"""``geochemfusion:regressionfusion`` — the fusion itself, from rasters."""

from qgis.core import (
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from . import raster_io
from .base import CoreFeedback, GeochemAlgorithm, sample_size_parameter
from .fusion_labels import FUSION_HELP, fused_name
from .params import DEFAULT_MODE, DEFAULT_N_CLUSTERS, DEFAULT_REGRESSION, MODES, REGRESSIONS
from .styles import FUSED
from .tables import flatten_rows, write_table


class RegressionFusion(GeochemAlgorithm):
    """``geochemfusion:regressionfusion``: the pyramid fusion of a geochemical raster with image features."""

    NAME = "regressionfusion"
    DISPLAY_NAME = "Regression fusion (geochemistry + image detail)"
    GEOCHEM, FEATURES, LEVELS, MODE, REGRESSION, UNITS, N_CLUSTERS, LOG_TRANSFORM = (
        "GEOCHEM", "FEATURES", "LEVELS", "MODE", "REGRESSION", "UNITS", "N_CLUSTERS",
        "LOG_TRANSFORM")
    SAMPLE_SIZE = "SAMPLE_SIZE"
    OUTPUT, OUTPUT_COEFFICIENTS = "OUTPUT", "OUTPUT_COEFFICIENTS"
    REQUIRES = ("numpy", "scipy", "sklearn")
    LEVELS_RASTER = FEATURES
    HELP = (
        "Injects image detail into a geochemical layer: the kriged layer (any resolution; it is "
        "resampled to the feature grid by cubic convolution) and the image features (bands, "
        "indices or principal components, on the target grid) are split into low and high "
        "frequency with a Laplacian pyramid; the low-frequency geochemistry is regressed on the "
        "low-frequency features (eq. 1), and the regression gains carry the high-frequency image "
        "detail into the geochemistry (eqs. 2–3).<br>" + FUSION_HELP +
        "<br><b>Units</b>: optional unit raster on the feature grid (from K-means units); when "
        "empty and regression is local, units are computed with <b>Number of units</b>."
    )

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.GEOCHEM, "Geochemical layer (kriged, any resolution)"))
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.FEATURES, "Image features (on the target grid)"))
        self.addParameter(QgsProcessingParameterNumber(
            self.LEVELS, "Pyramid levels (0 = automatic)", QgsProcessingParameterNumber.Type.Integer,
            0, minValue=0, maxValue=16))
        self.addParameter(QgsProcessingParameterEnum(
            self.MODE, "Fusion mode", MODES, defaultValue=DEFAULT_MODE))
        self.addParameter(QgsProcessingParameterEnum(
            self.REGRESSION, "Regression", REGRESSIONS, defaultValue=DEFAULT_REGRESSION))
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.UNITS, "Geological units (optional, local regression)", optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            self.N_CLUSTERS, "Number of units (when no unit raster is given)",
            QgsProcessingParameterNumber.Type.Integer, DEFAULT_N_CLUSTERS, minValue=2, maxValue=64))
        self.addParameter(QgsProcessingParameterBoolean(
            self.LOG_TRANSFORM, "Log-transform concentrations (log10)", False))
        self.addParameter(sample_size_parameter(self.SAMPLE_SIZE, "K-means, regression"))
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, "Fused layer"))
        self.addParameter(QgsProcessingParameterFeatureSink(
            self.OUTPUT_COEFFICIENTS, "Regression coefficients", optional=True,
            createByDefault=True))

    def checkParameterValues(self, parameters, context):
        ok, message = super().checkParameterValues(parameters, context)
        if not ok:
            return ok, message
        layer = self.parameterAsRasterLayer(parameters, self.FEATURES, context)
        if layer is None:
            return True, ""
        if (self.parameterAsInt(parameters, self.LEVELS, context) == 0
                and layer.crs().isGeographic()):
            return False, (
                f"'{layer.name()}' is in a geographic CRS ({layer.crs().authid()}, degrees): the "
                "automatic pyramid depth compares the sample spacing (metres) with the pixel size. "
                "Reproject the features to a projected CRS (Raster > Projections > Warp), or give "
                "the number of levels.")
        return True, ""

    def run_algorithm(self, parameters, context, feedback):
        from ..core.pyramid_scene import fuse_raster_blocks
        from ..core.vocabulary import FusionSettings

        geo_layer = self.parameterAsRasterLayer(parameters, self.GEOCHEM, context)
        feat_layer = self.parameterAsRasterLayer(parameters, self.FEATURES, context)
        for layer in (geo_layer, feat_layer):
            if not layer.crs().isValid():
                raise ValueError(
                    f"Raster '{layer.name()}' has no coordinate reference system; set it in the "
                    "layer properties (Source > Assigned Coordinate Reference System).")
        self.step(feedback, 1, f"Checking '{feat_layer.name()}'")
        feat_path = raster_io.layer_path(feat_layer)
        raster_io.check_bands(raster_io.read_preview(feat_path), f"Features '{feat_layer.name()}'")
        feats = raster_io.open_blocks(feat_path)
        geo_path = raster_io.layer_path(geo_layer)
        if geo_layer.crs() != feat_layer.crs():
            feedback.pushInfo(f"Warping the geochemical layer from {geo_layer.crs().authid()} to "
                              f"{feat_layer.crs().authid()}.")
            geo_path = raster_io.warp_to_crs(geo_path, feats.crs_wkt)
        geo = raster_io.open_blocks(geo_path)
        spacing = raster_io.metadata_float(geo_path, "SAMPLE_SPACING")
        regression = REGRESSIONS[self.parameterAsEnum(parameters, self.REGRESSION, context)]
        mode = MODES[self.parameterAsEnum(parameters, self.MODE, context)]
        units_layer = self.parameterAsRasterLayer(parameters, self.UNITS, context)
        read_units = None
        if units_layer is not None and regression == "local":
            units = raster_io.open_blocks(raster_io.layer_path(units_layer))
            if units.grid != feats.grid:
                raise ValueError("the unit raster must be on the same grid as the features")
            read_units = raster_io.resampled_reader(units, feats.grid, band=0)
        element = geo.descriptions[0].replace(" kriged", "")
        name = fused_name(element, regression, mode)
        settings = FusionSettings(
            mode=mode, regression=regression,
            levels=self.parameterAsInt(parameters, self.LEVELS, context),
            n_clusters=self.parameterAsInt(parameters, self.N_CLUSTERS, context),
            log_transform=self.parameterAsBool(parameters, self.LOG_TRANSFORM, context),
            sample_size=self.parameterAsInt(parameters, self.SAMPLE_SIZE, context))
        out = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        progress = CoreFeedback(feedback, 5, 95)
        # the features are read, split and fused row block by row block (core.pyramid_scene):
        # memory follows the block, not the image
        with raster_io.WindowedWriter(out, feats.grid, feats.crs_wkt, 1, descriptions=[name],
                                      metadata={"MODE": mode, "REGRESSION": regression}) as writer:
            results, notes = fuse_raster_blocks(
                raster_io.resampled_reader(geo, feats.grid, band=0), feats.read, feats.grid,
                settings, geo_grid=geo.grid, sample_spacing=spacing, read_units=read_units,
                consume=lambda row0, fused, _f, _u: writer.write(0, row0, fused[0]),
                progress=progress.progress, cancel=progress.is_canceled)
            writer.describe(metadata={"LEVELS": results[0].levels})
        for note in notes:
            feedback.pushInfo(note)
        feedback.pushInfo(f"Pyramid depth: {results[0].levels} levels")
        self.load_styled(context, out, FUSED, name)
        outputs = {self.OUTPUT: out}
        table = results[0].coefficient_table(feats.descriptions)
        dest = write_table(self, parameters, context, self.OUTPUT_COEFFICIENTS,
                                   flatten_rows(table))
        if dest is not None:
            outputs[self.OUTPUT_COEFFICIENTS] = dest
        return outputs
