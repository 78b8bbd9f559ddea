"""``geochemfusion:fusegeochemistry`` — one click from samples and image to fused layers."""

import contextlib
import os

from qgis.core import (
    QgsProcessing,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from ..core.vocabulary import FusionSettings
from . import compat, raster_io, sample_values
from .bands import resolve_band_map, sensor_of
from .base import CoreFeedback, GeochemAlgorithm, advanced, sample_size_parameter
from .fusion_labels import FUSION_HELP, fused_name
from .params import (
    DEFAULT_FEATURES,
    DEFAULT_FUSE_MODE,
    DEFAULT_N_CLUSTERS,
    DEFAULT_REGRESSION,
    DEFAULT_VARIOGRAM,
    FEATURE_KEYS,
    FEATURES,
    FUSE_MODES,
    REGRESSIONS,
    SENSOR_KEYS,
    SENSORS,
    VARIOGRAMS,
    format_band_map,
    parse_int_list,
)
from .styles import CONTINUOUS, FUSED, GEOCHEM, UNITS, VARIANCE
from .tables import flatten_rows, write_table


class FuseGeochemistry(GeochemAlgorithm):
    """``geochemfusion:fusegeochemistry``: samples and image in, fused layers out (every mode)."""

    NAME = "fusegeochemistry"
    DISPLAY_NAME = "Fuse geochemistry with imagery (end to end)"
    GROUP = "Geochemical image fusion"
    GROUP_ID = "fusion"
    REQUIRES = ("numpy", "scipy", "sklearn", "pykrige")
    SAMPLES, FIELD, IMAGE, FEATURES, PCS, SENSOR, BAND_MAP = (
        "SAMPLES", "FIELD", "IMAGE", "FEATURES", "PCS", "SENSOR", "BAND_MAP")
    BELOW_DETECTION = "BELOW_DETECTION"
    CLIP_NEGATIVE = "CLIP_NEGATIVE"
    LEVELS_RASTER = IMAGE
    REGRESSION, N_CLUSTERS, MODE, LEVELS, LOG_TRANSFORM, VARIOGRAM, SEED = (
        "REGRESSION", "N_CLUSTERS", "MODE", "LEVELS", "LOG_TRANSFORM", "VARIOGRAM", "SEED")
    SAMPLE_SIZE = "SAMPLE_SIZE"
    OUTPUT, OUTPUT_KRIGED, OUTPUT_VARIANCE, OUTPUT_FEATURES, OUTPUT_UNITS = (
        "OUTPUT", "OUTPUT_KRIGED", "OUTPUT_VARIANCE", "OUTPUT_FEATURES", "OUTPUT_UNITS")
    OUTPUT_COEFFICIENTS, OUTPUT_REPORT = "OUTPUT_COEFFICIENTS", "OUTPUT_REPORT"
    HELP = (
        "Produces fine-resolution geochemical layers from a regional geochemical survey and a "
        "satellite image (Sentinel-2, ASTER or any co-registered stack), following 'Research on "
        "Scale Improvement of Geochemical Exploration Based on Remote Sensing Image Fusion', "
        "Remote Sensing 2023, 15(8), 1993:<br>1. ordinary kriging of the samples on a grid of a "
        "quarter of the sample spacing, aligned with the image; 2. cubic convolution to the image "
        "grid; 3. image features; 4. Laplacian-pyramid split; 5. K-means units (local regression); "
        "6–8. regression of the low-frequency geochemistry on the low-frequency features and "
        "injection of the image detail (modes <i>paper</i> and <i>coherent</i>).<br>"
        "<b>Default mode <i>adaptive</i></b>: because this algorithm has the samples themselves, it "
        "regresses the measured values on the image features averaged over the sample support "
        "(bands and, for reflectance, their normalized differences; ridge penalty by "
        "cross-validation), kriges what the image does not explain, and chooses the support "
        "window and how much to trust the image by leave-one-out cross-validation at the samples. "
        "When the image does not help, it returns kriging alone. Pyramid levels do not apply to "
        "it; with <i>Regression</i> local each K-means unit gets its own trend (K-means runs "
        "only then). On real Sentinel-2 and till data it beats kriging alone, the "
        "paper's modes and regression kriging (see the README's accuracy table).<br>"
        "<b>Element fields</b>: one or several concentration fields (ppm); the image work is done "
        "once and each element becomes one band of the output.<br>"
        "<b>Image features</b>: <i>all bands</i> (default), <i>bands-PC2</i> (the paper's PC2 of "
        "the bands; PC1 carries albedo "
        "and topography), <i>indices-PC2</i> (PC2 of the mineral band ratios), "
        "or <i>chosen PCs</i> (list them in Principal components).<br>"
        "<b>Sensor / band map</b>: which band is which (for indices); guessed from band "
        "descriptions when the map is empty.<br>"
        "<b>Variogram</b>: <i>auto</i> fits the spherical, exponential, gaussian and linear models "
        "and keeps the one with the lowest leave-one-out error.<br>"
        "<b>Random seed</b>: fixes the pixel subsamples (PCA, K-means, regression), so runs "
        "repeat exactly.<br>" + FUSION_HELP +
        "<br>Samples in another CRS are reprojected to the image CRS (the image must be in a "
        "projected CRS, metres).<br>" + sample_values.help_text()
    )

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.SAMPLES, "Geochemical samples", [QgsProcessing.SourceType.TypeVectorPoint]))
        self.addParameter(QgsProcessingParameterField(
            self.FIELD, "Element fields (concentrations)", parentLayerParameterName=self.SAMPLES,
            type=QgsProcessingParameterField.DataType.Any, allowMultiple=True))  # text such as "<5" too
        self.addParameter(QgsProcessingParameterRasterLayer(self.IMAGE, "Image (multiband)"))
        self.addParameter(QgsProcessingParameterEnum(
            self.MODE, "Fusion mode", FUSE_MODES, defaultValue=DEFAULT_FUSE_MODE))
        self.addParameter(QgsProcessingParameterEnum(
            self.FEATURES, "Image features", FEATURES, defaultValue=DEFAULT_FEATURES))
        self.addParameter(QgsProcessingParameterEnum(
            self.REGRESSION, "Regression (local: one trend per K-means unit)", REGRESSIONS,
            defaultValue=DEFAULT_REGRESSION))
        self.addParameter(QgsProcessingParameterNumber(
            self.N_CLUSTERS, "Number of geological units (local regression only)",
            QgsProcessingParameterNumber.Type.Integer, DEFAULT_N_CLUSTERS, minValue=2, maxValue=64))
        self.addParameter(QgsProcessingParameterNumber(
            self.LEVELS, "Pyramid levels (paper and coherent modes only; 0 = automatic)",
            QgsProcessingParameterNumber.Type.Integer, 0, minValue=0, maxValue=16))
        self.addParameter(QgsProcessingParameterBoolean(
            self.LOG_TRANSFORM, "Log-transform concentrations (log10)", False))
        self.addParameter(advanced(QgsProcessingParameterString(
            self.PCS, "Principal components (for 'chosen PCs', e.g. 2,3)", "2", optional=True)))
        self.addParameter(advanced(QgsProcessingParameterEnum(
            self.SENSOR, "Sensor (for indices-PC2)", SENSORS, defaultValue=1)))
        self.addParameter(advanced(QgsProcessingParameterString(
            self.BAND_MAP, "Band map (sensor band=raster band, e.g. B2=1,B3=2)", "",
            optional=True)))
        self.addParameter(advanced(QgsProcessingParameterEnum(
            self.VARIOGRAM, "Variogram model", VARIOGRAMS, defaultValue=DEFAULT_VARIOGRAM)))
        self.addParameter(advanced(QgsProcessingParameterNumber(
            self.SEED, "Random seed (pixel subsampling, K-means)",
            QgsProcessingParameterNumber.Type.Integer, 0, minValue=0)))
        self.addParameter(sample_size_parameter(self.SAMPLE_SIZE))
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.OUTPUT, "Fused geochemistry"))
        for key, label in ((self.OUTPUT_KRIGED, "Kriged geochemistry (coarse grid)"),
                           (self.OUTPUT_VARIANCE, "Kriging variance (coarse grid)"),
                           (self.OUTPUT_FEATURES, "Image features used in the fusion"),
                           (self.OUTPUT_UNITS, "Geological units (local regression only)")):
            self.addParameter(QgsProcessingParameterRasterDestination(
                key, label, optional=True, createByDefault=False))
        self.addParameter(QgsProcessingParameterFeatureSink(
            self.OUTPUT_COEFFICIENTS, "Regression coefficients", optional=True,
            createByDefault=False))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_REPORT, "Report", "HTML files (*.html)", optional=True,
            createByDefault=False))
        sample_values.add_parameters(self)
        self.addParameter(advanced(QgsProcessingParameterBoolean(
            self.CLIP_NEGATIVE, "Clip negative concentrations to 0 (they are counted either way)",
            True)))

    def run_algorithm(self, parameters, context, feedback):
        fields = compat.parameter_as_strings(self, parameters, self.FIELD, context)
        if not fields:
            raise ValueError("choose at least one element field")
        image_layer, x, y, values, marks = self.image_and_samples(parameters, context, feedback,
                                                                  fields)
        image_crs = image_layer.crs()
        image = raster_io.open_blocks(raster_io.layer_path(image_layer))
        from ..core.samples import check_overlap, check_sample_table

        x, y, values, notes = check_sample_table(
            x, y, values, log_transform=self.parameterAsBool(parameters, self.LOG_TRANSFORM, context),
            qualifiers=marks, **sample_values.conventions(self, parameters, context))
        sample_notes = (notes + check_overlap(x, y, image.grid.extent)
                        + sample_values.coverage_messages(image, x, y))
        for note in sample_notes:
            feedback.pushWarning(note)
        feature_key = FEATURE_KEYS[self.parameterAsEnum(parameters, self.FEATURES, context)]
        sensor = SENSOR_KEYS[self.parameterAsEnum(parameters, self.SENSOR, context)]
        band_map = None
        if feature_key == "indices-pc2":
            band_map, how = resolve_band_map(
                image, sensor, self.parameterAsString(parameters, self.BAND_MAP, context))
            sensor = sensor_of(band_map, sensor)
            feedback.pushInfo(f"Band map ({how}): {format_band_map(band_map)}")
        settings = FusionSettings(
            mode=FUSE_MODES[self.parameterAsEnum(parameters, self.MODE, context)],
            features=feature_key, sensor=sensor, band_map=band_map,
            pcs=parse_int_list(self.parameterAsString(parameters, self.PCS, context) or "2",
                               "Principal components"),
            band_names=image.descriptions,
            regression=REGRESSIONS[self.parameterAsEnum(parameters, self.REGRESSION, context)],
            n_clusters=self.parameterAsInt(parameters, self.N_CLUSTERS, context),
            levels=self.parameterAsInt(parameters, self.LEVELS, context),
            log_transform=self.parameterAsBool(parameters, self.LOG_TRANSFORM, context),
            variogram=VARIOGRAMS[self.parameterAsEnum(parameters, self.VARIOGRAM, context)],
            random_state=self.parameterAsInt(parameters, self.SEED, context),
            sample_size=self.parameterAsInt(parameters, self.SAMPLE_SIZE, context))
        wkt = image.crs_wkt or image_crs.toWkt()
        paths = self.destinations(parameters, context)
        out = paths[self.OUTPUT]
        result, warnings = self._fuse_windowed(parameters, context, paths, image, wkt, x, y,
                                               values, settings, out,
                                               CoreFeedback(feedback, 0, 90))
        for note in result.notes:
            feedback.pushInfo(note)
        for warning in warnings:  # holes filled, negative values: in the log and the report
            feedback.pushWarning(warning)
            result.notes.append(warning)
        result.notes.extend(sample_notes)  # samples left out, merged, off the image: the report
        names, mode = list(values), settings.mode
        layer_name = fused_name(names[0], settings.regression, mode) if len(names) == 1 else (
            f"Fused geochemistry ({', '.join(names)}; "
            + (f"{settings.regression}, " if mode != "adaptive" else "") + f"{mode})")
        self.load_styled(context, out, FUSED, layer_name)
        outputs = {self.OUTPUT: out}
        for key, kind, label in ((self.OUTPUT_FEATURES, CONTINUOUS, "Fusion image features"),
                                 (self.OUTPUT_UNITS, UNITS, "Geological units (K-means)")):
            path = paths[key]
            if path and os.path.exists(path):
                self.load_styled(context, path, kind, label)
                outputs[key] = path
            elif path:  # asked for, but this run made no units: nothing to load either
                feedback.pushInfo("No unit raster: the K-means units are made only with "
                                  "Regression = local.")
                loads = context.layersToLoadOnCompletion()
                loads.pop(path, None)
                context.setLayersToLoadOnCompletion(loads)
        feedback.setProgress(92)
        outputs.update(self._write_common(parameters, context, paths, image, wkt, result,
                                          settings))
        feedback.setProgress(100)
        return outputs

    def destinations(self, parameters, context):
        """Every output's file name, asked for once.

        Each request for a temporary output ("Save to temporary file") makes a new
        file name: asking twice writes one file and loads another.
        """
        paths = {key: self.parameterAsOutputLayer(parameters, key, context)
                 for key in (self.OUTPUT, self.OUTPUT_KRIGED, self.OUTPUT_VARIANCE,
                             self.OUTPUT_FEATURES, self.OUTPUT_UNITS)}
        paths[self.OUTPUT_REPORT] = self.parameterAsFileOutput(
            parameters, self.OUTPUT_REPORT, context)
        return paths

    def _fuse_windowed(self, parameters, context, paths, image, wkt, x, y, values, settings,
                       out, progress):
        """Run the core's one entry point (every mode), reading and writing block by block.

        Returns the result and the warnings of the last checks of the fused
        blocks (:class:`~geochem_fusion.core.guards.FusedGuard`).
        """
        from ..core.guards import HOLE_REACH, FusedGuard, kriged_support
        from ..core.scene import SceneFusion
        from ..core.vocabulary import Sinks

        names = list(values)
        descriptions = [fused_name(n, settings.regression, settings.mode) for n in names]
        meta = {"ELEMENTS": ",".join(names), "MODE": settings.mode,
                "REGRESSION": settings.regression, "FEATURES": settings.features}
        features_path, units_path = paths[self.OUTPUT_FEATURES], paths[self.OUTPUT_UNITS]
        # kriging alone is only an output (kriged layer, variance, report): skip it otherwise
        krige_alone = any(paths[key] for key in (self.OUTPUT_KRIGED, self.OUTPUT_VARIANCE,
                                                 self.OUTPUT_REPORT))
        with contextlib.ExitStack() as stack:
            writer = stack.enter_context(raster_io.WindowedWriter(
                out, image.grid, wkt, len(descriptions), descriptions=descriptions,
                metadata=meta))
            extra = {}

            def lazy(key, path, n_bands, **kwargs):
                if key not in extra:
                    extra[key] = stack.enter_context(raster_io.WindowedWriter(
                        path, image.grid, wkt, n_bands, **kwargs))
                return extra[key]

            def write_features(row0, block):
                w = lazy("features", features_path, block.shape[0])
                for j in range(block.shape[0]):
                    w.write(j, row0, block[j])

            def write_units(row0, block):
                lazy("units", units_path, 1, descriptions=["K-means units"], dtype="int16",
                     nodata=-1).write(0, row0, block)

            guard = FusedGuard(list(values), writer.write, image.grid, clip_negative=(
                self.parameterAsBool(parameters, self.CLIP_NEGATIVE, context)))
            sinks = Sinks(
                guard.write, write_features=write_features if features_path else None,
                write_units=write_units if units_path else None, krige_alone=krige_alone,
                progress=progress.progress, cancel=progress.is_canceled)
            estimator = SceneFusion(settings).fit(
                x, y, values, image.read, image.grid, krige_alone=krige_alone,
                progress=sinks.progress, cancel=sinks.cancel)
            # image holes within reach of the samples fall back to the kriged estimate
            model = estimator.model_
            guard.set_kriged(
                kriging_for_holes(model, x, y, values, settings),
                kriged_support(x, y, model.kriging_grid, HOLE_REACH * model.sample_spacing),
                model.kriging_grid)
            scene = estimator.predict(image.read, sinks)
            if settings.mode != "adaptive":
                scene.notes.append(f"Pyramid depth: {scene.levels} levels (sample spacing "
                                   f"{scene.sample_spacing:.0f} map units)")
                writer.describe(metadata={"LEVELS": scene.levels})
            if "features" in extra:
                extra["features"].describe(descriptions=scene.transform.names_)
            writer.describe(metadata=guard.metadata())
        warnings, _ = guard.notes(log_transform=settings.log_transform, mode=settings.mode)
        return scene.as_pipeline_result(), warnings

    def _write_common(self, parameters, context, paths, image, wkt, result, settings):
        """Coarse kriging layers, the coefficient table and the report."""
        import numpy as np

        names = list(result.elements)
        outputs = {}
        kgrid = result.kriging_grid
        for key, attr, desc, kind, label in (
                (self.OUTPUT_KRIGED, "estimate", "kriged", GEOCHEM, "kriged"),
                (self.OUTPUT_VARIANCE, "variance", "kriging variance", VARIANCE,
                 "kriging variance")):
            path = paths[key]
            if path:
                data = np.stack([getattr(result.elements[n].kriging, attr) for n in names])
                raster_io.write_raster(path, data, kgrid, wkt,
                                       descriptions=[f"{n} {desc}" for n in names],
                                       metadata={"SAMPLE_SPACING": result.sample_spacing})
                self.load_styled(context, path, kind, f"{', '.join(names)} {label}")
                outputs[key] = path
        rows = []
        for n in names:
            for row in flatten_rows(result.elements[n].fusion.coefficient_table(
                    result.features.names)):
                rows.append({"element": n, **row})
        dest = write_table(self, parameters, context, self.OUTPUT_COEFFICIENTS, rows)
        if dest is not None:
            outputs[self.OUTPUT_COEFFICIENTS] = dest
            if context.willLoadLayerOnCompletion(dest):
                context.layerToLoadOnCompletionDetails(dest).name = (
                    f"{', '.join(names)} regression coefficients")
        report = paths[self.OUTPUT_REPORT]
        if report:
            from .fusion_report import fusion_report

            fusion_report(report, result, settings, image.descriptions, rows)
            outputs[self.OUTPUT_REPORT] = report
        return outputs


def kriging_for_holes(model, x, y, values, settings):
    """A callable giving each element's kriging alone on the model's kriging grid.

    The fitted chain keeps it when it made it (the pyramid modes, or kriging
    alone asked for an output); otherwise it is computed when called: at the
    first image hole within reach of the samples (:class:`~geochem_fusion.core.guards.FusedGuard`).
    """
    def krigings():
        import numpy as np

        from ..core.kriging import OrdinaryKrigingModel

        out = []
        for name in model.names:
            kriging = (model.kriging or {}).get(name)
            if kriging is None:
                v = np.asarray(values[name], dtype=np.float64)
                ok = np.isfinite(v)
                kriging = OrdinaryKrigingModel(
                    settings.variogram, log_transform=settings.log_transform).fit(
                    x[ok], y[ok], v[ok]).krige_grid(model.kriging_grid)
            out.append(kriging)
        return out

    return krigings
