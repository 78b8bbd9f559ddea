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
from .params import DEFAULT_MODE, DEFAULT_N_CLUSTERS, DEFAULT_REGRESSION, MODES, REGRESSIONS
from .principal_components import write_loading_table
from .styles import FUSED

FUSION_HELP = (
    "<b>Mode</b>: <i>paper</i> = eq. 3 of the paper exactly, Geo_f = Geo_Lre + Geo_H + Σ ai·MS_Hi "
    "(the low-frequency geochemistry is replaced by its regression on the image, so what the image "
    "does not explain is lost); <i>coherent</i> = Geo_L + Geo_H + Σ ai·MS_Hi (keeps the measured "
    "geochemistry and adds the image detail; block-averaged back to the survey support it returns "
    "the input).<br><b>Regression</b>: <i>global</i> = one linear fit for the whole area; "
    "<i>local</i> = one fit per geological unit (K-means units), units with too few pixels fall "
    "back to the global fit.<br><b>Levels</b>: Laplacian pyramid depth; 0 = automatic, "
    "round(log2(sample spacing / pixel size)).<br><b>Log transform</b>: fit and fuse log10 of the "
    "concentrations (right-skewed data), back-transformed at the end; off in the paper.<br>"
    "Reference: Remote Sensing 2023, 15(8), 1993, §4.3, eqs. 1–3."
)


def fused_name(element, regression, mode):
    """Layer/band name of a fused layer, e.g. "Cu fused (local, coherent)"."""
    if mode == "adaptive":  # no global/local choice in that mode
        return f"{element} fused (adaptive)"
    return f"{element} fused ({regression}, {mode})"


class RegressionFusion(GeochemAlgorithm):
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

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API name)
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.GEOCHEM, "Geochemical layer (kriged, any resolution)"))
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.FEATURES, "Image features (on the target grid)"))
        self.addParameter(QgsProcessingParameterNumber(
            self.LEVELS, "Pyramid levels (0 = automatic)", QgsProcessingParameterNumber.Integer,
            0, minValue=0, maxValue=16))
        self.addParameter(QgsProcessingParameterEnum(
            self.MODE, "Fusion mode", MODES, defaultValue=DEFAULT_MODE))
        self.addParameter(QgsProcessingParameterEnum(
            self.REGRESSION, "Regression", REGRESSIONS, defaultValue=DEFAULT_REGRESSION))
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.UNITS, "Geological units (optional, local regression)", optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            self.N_CLUSTERS, "Number of units (when no unit raster is given)",
            QgsProcessingParameterNumber.Integer, DEFAULT_N_CLUSTERS, minValue=2, maxValue=64))
        self.addParameter(QgsProcessingParameterBoolean(
            self.LOG_TRANSFORM, "Log-transform concentrations (log10)", False))
        self.addParameter(sample_size_parameter(self.SAMPLE_SIZE, "K-means, regression"))
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, "Fused layer"))
        self.addParameter(QgsProcessingParameterFeatureSink(
            self.OUTPUT_COEFFICIENTS, "Regression coefficients", optional=True,
            createByDefault=True))

    def checkParameterValues(self, parameters, context):  # noqa: N802 (QGIS API name)
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
        from ..core.pipeline import fuse_raster_blocks

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
        out = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        progress = CoreFeedback(feedback, 5, 95)
        # the features are read, split and fused row block by row block (core.pyramid_scene):
        # memory follows the block, not the image
        with raster_io.WindowedWriter(out, feats.grid, feats.crs_wkt, 1, descriptions=[name],
                                      metadata={"MODE": mode, "REGRESSION": regression}) as writer:
            results, notes = fuse_raster_blocks(
                raster_io.resampled_reader(geo, feats.grid, band=0), feats.read, feats.grid,
                geo_grid=geo.grid, levels=self.parameterAsInt(parameters, self.LEVELS, context),
                sample_spacing=spacing, mode=mode, regression=regression, read_units=read_units,
                n_clusters=self.parameterAsInt(parameters, self.N_CLUSTERS, context),
                log_transform=self.parameterAsBool(parameters, self.LOG_TRANSFORM, context),
                sample_size=self.parameterAsInt(parameters, self.SAMPLE_SIZE, context),
                consume=lambda row0, fused, _f, _u: writer.write(0, row0, fused[0]),
                progress=progress.progress, cancel=progress.is_canceled)
            writer.ds.SetMetadataItem("LEVELS", str(results[0].levels))
        for note in notes:
            feedback.pushInfo(note)
        feedback.pushInfo(f"Pyramid depth: {results[0].levels} levels")
        self.load_styled(context, out, FUSED, name)
        outputs = {self.OUTPUT: out}
        table = results[0].coefficient_table(feats.descriptions)
        dest = write_loading_table(self, parameters, context, self.OUTPUT_COEFFICIENTS,
                                   flatten_rows(table))
        if dest is not None:
            outputs[self.OUTPUT_COEFFICIENTS] = dest
        return outputs


def flatten_rows(rows):
    """Table rows with list values spread over columns and None/bool as text or numbers."""
    flat = []
    for row in rows:
        out = {}
        for key, value in row.items():
            if isinstance(value, (list, tuple)):
                for i, v in enumerate(value):
                    out[f"{key}_{i + 1}"] = v
            elif value is None:
                out[key] = "global"
            elif isinstance(value, bool):
                out[key] = float(value)
            else:
                out[key] = value
        flat.append(out)
    return flat
