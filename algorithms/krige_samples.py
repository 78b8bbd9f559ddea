"""``geochemfusion:krigesamples`` — ordinary kriging of geochemical samples to a grid."""

from qgis.core import (
    QgsProcessing,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
)

from . import compat, raster_io, sample_values
from .base import CoreFeedback, GeochemAlgorithm
from .params import (
    DEFAULT_VARIOGRAM,
    VARIOGRAMS,
)
from .styles import GEOCHEM, VARIANCE
from .variogram import HELP as VARIOGRAM_HELP
from .variogram import (
    add_variogram_parameters,
    kriging_sections,
    loo_row,
    variogram_row,
    variogram_settings,
)
from .vector_io import check_projected, projected_crs_for


def describe_row(row):
    """One log line from a readable row: ``label value, label value``."""
    from .report import format_value

    return ", ".join(f"{k} {format_value(v)}" for k, v in row.items())


class KrigeSamples(GeochemAlgorithm):
    """``geochemfusion:krigesamples``: ordinary kriging of point samples on a coarse grid."""

    NAME = "krigesamples"
    DISPLAY_NAME = "Krige samples (ordinary kriging)"
    SAMPLES, FIELD, CELL_SIZE, VARIOGRAM, LOG_TRANSFORM, EXTENT = (
        "SAMPLES", "FIELD", "CELL_SIZE", "VARIOGRAM", "LOG_TRANSFORM", "EXTENT")
    BELOW_DETECTION = "BELOW_DETECTION"
    OUTPUT, OUTPUT_VARIANCE, OUTPUT_REPORT = "OUTPUT", "OUTPUT_VARIANCE", "OUTPUT_REPORT"
    REQUIRES = ("numpy", "scipy", "pykrige")
    HELP = (
        "Ordinary kriging (PyKrige) of geochemical samples onto a grid, the first step of the "
        "fusion (step 1 of the method, docs/method.md; Remote Sensing 2023, 15(8), 1993).<br>"
        "<b>Cell size</b>: map units; 0 = a quarter of the median nearest-neighbour sample spacing "
        "(kriging at the image resolution would be slow and adds nothing).<br>"
        "<b>Variogram</b>: spherical, exponential, gaussian, linear, or auto (the model with the "
        "lowest leave-one-out error). Parameters are fitted automatically.<br>"
        "<b>Log transform</b>: krige log10 of the concentrations (recommended for right-skewed "
        "geochemical data); the estimate is back-transformed to the lognormal mean; the variance "
        "stays in log10 units. Values must be positive.<br>"
        "<b>Extent</b>: default the samples' bounding box.<br>"
        "<b>CRS</b>: samples in degrees are reprojected (to the project's CRS when it is "
        "projected, else to the UTM zone of their centre), as the fusion reprojects them to the "
        "image's CRS.<br>"
        "Samples without a value are left out, samples at identical coordinates are merged (mean) "
        "and extreme outliers and isolated samples are reported in the log.<br>"
        "Outputs: estimate (data units) and kriging variance; the report shows the variogram "
        "(pairs per lag), the directional variograms, the anisotropy ellipse and the "
        "leave-one-out statistics (mean error, RMSE, standardized error). The variogram used is "
        "also returned as outputs for models and scripts: VARIOGRAM_MODEL, NUGGET, SILL (total; "
        "the slope for linear), RANGE (major axis; 0 for linear), ANISOTROPY_ANGLE (azimuth, "
        "degrees from north), ANISOTROPY_RATIO (1 = isotropic), all in the kriged units, and "
        "LOO_RMSE (leave-one-out RMSE in data units).<br>" + VARIOGRAM_HELP + "<br>"
    ) + sample_values.help_text()
    OUTPUT_NUMBERS = ("NUGGET", "SILL", "RANGE", "ANISOTROPY_ANGLE", "ANISOTROPY_RATIO", "LOO_RMSE")

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.SAMPLES, "Geochemical samples", [QgsProcessing.SourceType.TypeVectorPoint]))
        self.addParameter(QgsProcessingParameterField(
            self.FIELD, "Element (concentration field)", parentLayerParameterName=self.SAMPLES,
            type=QgsProcessingParameterField.DataType.Any))  # text such as "<5" too
        self.addParameter(QgsProcessingParameterNumber(
            self.CELL_SIZE, "Cell size (map units, 0 = quarter of the sample spacing)",
            QgsProcessingParameterNumber.Type.Double, 0.0, minValue=0.0))
        self.addParameter(QgsProcessingParameterEnum(
            self.VARIOGRAM, "Variogram model", VARIOGRAMS, defaultValue=DEFAULT_VARIOGRAM))
        self.addParameter(QgsProcessingParameterBoolean(
            self.LOG_TRANSFORM, "Log-transform concentrations (log10)", False))
        self.addParameter(QgsProcessingParameterExtent(self.EXTENT, "Extent", optional=True))
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, "Kriged estimate"))
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.OUTPUT_VARIANCE, "Kriging variance", optional=True, createByDefault=True))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_REPORT, "Kriging report", "HTML files (*.html)", optional=True,
            createByDefault=False))
        sample_values.add_parameters(self)
        add_variogram_parameters(self)
        self.addOutput(QgsProcessingOutputString("VARIOGRAM_MODEL", "Variogram model"))
        for name in self.OUTPUT_NUMBERS:
            self.addOutput(QgsProcessingOutputNumber(name, name.replace("_", " ").capitalize()))

    def run_algorithm(self, parameters, context, feedback):
        from ..core.grid import Grid
        from ..core.kriging import krige
        from ..core.samples import check_overlap, check_samples, median_nn_spacing

        source = self.parameterAsSource(parameters, self.SAMPLES, context)
        field = compat.parameter_as_strings(self, parameters, self.FIELD, context)[0]
        crs = projected_crs_for(source, context)
        check_projected(crs, f"Sample layer '{source.sourceName()}'")
        self.step(feedback, 1, f"Reading the samples of {field}")
        x, y, values, marks = sample_values.read_samples(self, parameters, context, feedback,
                                                         source, [field], crs)
        self.check_canceled(feedback)
        log = self.parameterAsBool(parameters, self.LOG_TRANSFORM, context)
        x, y, z, notes = check_samples(
            x, y, values[field], log_transform=log, name=field, qualifiers=marks.get(field),
            **sample_values.conventions(self, parameters, context))
        for note in notes:
            feedback.pushWarning(note)
        spacing = median_nn_spacing(x, y)
        extent = None
        if parameters.get(self.EXTENT):
            rect = self.parameterAsExtent(parameters, self.EXTENT, context, crs)
            if not rect.isNull() and not rect.isEmpty():
                extent = (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())
                check_overlap(x, y, extent, spacing=spacing, margin=3 * spacing, min_spacings=0,
                              what="kriging")
        if extent is None:
            extent = (x.min(), y.min(), x.max(), y.max())
            if not (extent[2] > extent[0] and extent[3] > extent[1]):
                raise ValueError(
                    f"the samples of {field} lie on a straight line (their bounding box has no "
                    "width or height); give an Extent to krige on"
                )
        cell = self.parameterAsDouble(parameters, self.CELL_SIZE, context) or spacing / 4.0
        grid = Grid.from_extent(*extent, cell)
        raster_io.check_memory(grid.shape, 1, 8, f"a kriging grid of cell size {cell:g}", copies=4,
                               remedy="Use a larger cell size (0 = a quarter of the sample "
                               "spacing) or a smaller extent.")
        variogram = VARIOGRAMS[self.parameterAsEnum(parameters, self.VARIOGRAM, context)]
        settings = variogram_settings(self, parameters, context, variogram)
        feedback.pushInfo(f"Kriging {x.size} samples of {field} ({variogram} variogram) on "
                          f"{grid.nrows} x {grid.ncols} cells of {cell:g} map units")
        progress = CoreFeedback(feedback, 2, 90)
        result = krige(x, y, z, grid=grid, variogram=variogram, log_transform=log,
                       progress=progress.progress, cancel=progress.is_canceled, **settings)
        self.check_canceled(feedback)
        feedback.pushInfo(f"Variogram: {describe_row(variogram_row(result))}")
        if result.anisotropy_note:
            feedback.pushInfo(f"Anisotropy: {result.anisotropy_note}")
        feedback.pushInfo(f"Leave-one-out: {describe_row(loo_row(result))}")
        wkt = crs.toWkt()
        meta = {"ELEMENT": field, "VARIOGRAM": result.variogram_model,
                "SAMPLE_SPACING": result.sample_spacing, "LOG_TRANSFORM": log}
        out = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        raster_io.write_raster(out, result.estimate, result.grid, wkt,
                               descriptions=[f"{field} kriged"], metadata=meta)
        self.load_styled(context, out, GEOCHEM, f"{field} kriged")
        outputs = {self.OUTPUT: out}
        out_var = self.parameterAsOutputLayer(parameters, self.OUTPUT_VARIANCE, context)
        if out_var:
            unit = " (log10 units)" if log else ""
            raster_io.write_raster(out_var, result.variance, result.grid, wkt,
                                   descriptions=[f"{field} kriging variance{unit}"], metadata=meta)
            self.load_styled(context, out_var, VARIANCE, f"{field} kriging variance")
            outputs[self.OUTPUT_VARIANCE] = out_var
        report = self.parameterAsFileOutput(parameters, self.OUTPUT_REPORT, context)
        if report:
            from .report import write_report

            write_report(report, f"Kriging of {field}", kriging_sections(field, result))
            outputs[self.OUTPUT_REPORT] = report
        outputs.update(variogram_outputs(result))
        return outputs


def variogram_outputs(result):
    """The ``VARIOGRAM_MODEL`` ... ``LOO_RMSE`` outputs of a ``KrigingResult``."""
    p = result.variogram_parameters
    linear = result.variogram_model == "linear"
    loo = result.loo
    return {
        "VARIOGRAM_MODEL": result.variogram_model,
        "NUGGET": float(p["nugget"]),
        "SILL": float(p["slope"] if linear else p["sill"]),
        "RANGE": 0.0 if linear else float(p["range"]),
        "ANISOTROPY_ANGLE": float(result.anisotropy.azimuth) if result.anisotropy else 0.0,
        "ANISOTROPY_RATIO": float(result.anisotropy.ratio) if result.anisotropy else 1.0,
        "LOO_RMSE": float(loo.get("rmse_data_units", loo.get("rmse", float("nan")))),
    }
