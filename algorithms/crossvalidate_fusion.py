"""``geochemfusion:crossvalidatefusion`` — does the image help here? Spatial CV of the chain."""

from qgis.core import (
    QgsProcessing,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
)

from . import compat, raster_io, sample_values
from .base import CoreFeedback, GeochemAlgorithm, advanced
from .tables import write_table

HELPS_MARGIN = 0.02
"""The image "helps" when the default fusion's RMSE is this much (relative) below kriging
alone's: the margin the adaptive mode itself requires before it trusts the image."""


def verdict(results):
    """The sentence comparing the default fusion with kriging alone (or "" without both)."""
    default, alone = results.get("default"), results.get("kriging alone")
    if not default or not alone or not (default["rmse"] > 0 and alone["rmse"] > 0):
        return ""
    change = 100.0 * (default["rmse"] / alone["rmse"] - 1.0)
    if default["rmse"] < (1.0 - HELPS_MARGIN) * alone["rmse"]:
        return (f"The image helps here: the default fusion predicts the held-out samples with an "
                f"RMSE of {default['rmse']:.4g}, {-change:.0f} % below kriging alone "
                f"({alone['rmse']:.4g}).")
    return (f"The image does not help here: kriging alone is as good (RMSE {alone['rmse']:.4g} "
            f"vs {default['rmse']:.4g} for the default fusion, {change:+.0f} %).")


class CrossValidateFusion(GeochemAlgorithm):
    """``geochemfusion:crossvalidatefusion``: spatial cross-validation of the chain, method by method."""

    NAME = "crossvalidatefusion"
    DISPLAY_NAME = "Cross-validate the fusion (does the image help?)"
    GROUP = "Evaluation"
    GROUP_ID = "evaluation"
    REQUIRES = ("numpy", "scipy", "sklearn", "pykrige")
    SAMPLES, FIELD, IMAGE, LOG_TRANSFORM = "SAMPLES", "FIELD", "IMAGE", "LOG_TRANSFORM"
    BLOCK_SIZE, N_FOLDS, SEED = "BLOCK_SIZE", "N_FOLDS", "SEED"
    OUTPUT_TABLE, OUTPUT_REPORT = "OUTPUT_TABLE", "OUTPUT_REPORT"
    HELP = (
        "Spatial block cross-validation of the whole chain, from the samples: the samples are "
        "grouped in square blocks dealt to folds; for each fold every method is refitted from "
        "the other folds only (kriging, image features, regression, fusion) and predicts the "
        "held-out samples (the fused layer sampled bilinearly). The table gives the RMSE, "
        "correlation (CC) and bias of each method, so you see whether the image helps in your "
        "area before you trust a fused map.<br>"
        "Methods: <i>kriging alone</i> (ordinary kriging, automatic variogram); <i>regression "
        "kriging</i> (linear regression on the image bands + kriged residuals); <i>default</i> "
        "(fusegeochemistry's default, the adaptive mode); <i>paper global</i> and <i>coherent "
        "global</i> (the paper's Laplacian-pyramid fusion on all bands, global regression).<br>"
        "<b>Block size</b>: side of the blocks in map units; 0 = 5 median sample spacings, so "
        "a held-out sample has no training sample next to it. <b>Folds</b>: 5 by default.<br>"
        "The errors are in data units (ppm), or in log10 with the log transform (the space "
        "the methods fit in, so that their different back-transforms do not decide).<br>"
        "Cost: every fold redoes each method's image work, so a run takes about folds x "
        "methods fusions: clip large images to a representative area first.<br>"
    ) + sample_values.help_text()

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.SAMPLES, "Geochemical samples", [QgsProcessing.SourceType.TypeVectorPoint]))
        self.addParameter(QgsProcessingParameterField(
            self.FIELD, "Element (concentration field)", parentLayerParameterName=self.SAMPLES,
            type=QgsProcessingParameterField.DataType.Any))  # text such as "<5" too
        self.addParameter(QgsProcessingParameterRasterLayer(self.IMAGE, "Image (multiband)"))
        self.addParameter(QgsProcessingParameterBoolean(
            self.LOG_TRANSFORM, "Log-transform concentrations (log10)", False))
        self.addParameter(QgsProcessingParameterNumber(
            self.BLOCK_SIZE, "Block size (map units, 0 = 5 sample spacings)",
            QgsProcessingParameterNumber.Type.Double, 0.0, minValue=0.0))
        self.addParameter(QgsProcessingParameterNumber(
            self.N_FOLDS, "Number of folds", QgsProcessingParameterNumber.Type.Integer, 5,
            minValue=2, maxValue=50))
        self.addParameter(advanced(QgsProcessingParameterNumber(
            self.SEED, "Random seed (folds, pixel subsampling)",
            QgsProcessingParameterNumber.Type.Integer, 0, minValue=0)))
        self.addParameter(QgsProcessingParameterFeatureSink(
            self.OUTPUT_TABLE, "Cross-validation errors per method", optional=True,
            createByDefault=True))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_REPORT, "Cross-validation report", "HTML files (*.html)", optional=True,
            createByDefault=False))
        sample_values.add_parameters(self)

    def run_algorithm(self, parameters, context, feedback):
        from ..core.evaluation import cross_validate_chain
        from ..core.samples import check_overlap, check_samples

        field = compat.parameter_as_strings(self, parameters, self.FIELD, context)[0]
        self.step(feedback, 1, f"Reading the samples of {field}")
        image_layer, x, y, values, marks = self.image_and_samples(parameters, context, feedback,
                                                                  [field])
        log = self.parameterAsBool(parameters, self.LOG_TRANSFORM, context)
        x, y, z, notes = check_samples(x, y, values[field], log_transform=log, name=field,
                                       qualifiers=marks.get(field),
                                       **sample_values.conventions(self, parameters, context))
        self.step(feedback, 3, f"Checking '{image_layer.name()}'")
        path = raster_io.layer_path(image_layer)
        raster_io.check_bands(raster_io.read_preview(path), f"Image '{image_layer.name()}'")
        # every method reads the image block by block and keeps only the rows the held-out
        # samples need: memory does not grow with the image
        image = raster_io.open_blocks(path)
        for note in (notes + check_overlap(x, y, image.grid.extent)
                     + sample_values.coverage_messages(image, x, y)):
            feedback.pushWarning(note)
        n_folds = self.parameterAsInt(parameters, self.N_FOLDS, context)
        progress = CoreFeedback(feedback, 5, 90)
        results = cross_validate_chain(
            x, y, z, image.read, image.grid, n_folds=n_folds,
            block=self.parameterAsDouble(parameters, self.BLOCK_SIZE, context) or None,
            log_transform=log, random_state=self.parameterAsInt(parameters, self.SEED, context),
            band_names=image.descriptions, progress=progress.progress,
            cancel=progress.is_canceled)
        self.check_canceled(feedback)
        alone = results.get("kriging alone", {}).get("rmse")
        space = "log10" if log else "data units"
        rows = []
        for method, r in results.items():
            row = {"method": method, "element": field, "errors in": space, "n": r["n"],
                   "rmse": r["rmse"], "cc": r["cc"], "bias": r["bias"]}
            if alone:
                row["rmse vs kriging alone (%)"] = 100.0 * (r["rmse"] / alone - 1.0)
            rows.append(row)
        feedback.pushInfo(f"Spatial cross-validation of {field} ({n_folds} folds), errors in "
                          f"{space} at the held-out samples:")
        for row in rows:
            feedback.pushInfo(f"  {row['method']:<20} n={row['n']:<5} RMSE={row['rmse']:<10.4g} "
                              f"CC={row['cc']:<8.3f} bias={row['bias']:.4g}")
        sentence = verdict(results)
        if sentence:
            feedback.pushInfo(sentence)
        self.step(feedback, 95, "Writing the outputs")
        outputs = {}
        dest = write_table(self, parameters, context, self.OUTPUT_TABLE, rows)
        if dest is not None:
            outputs[self.OUTPUT_TABLE] = dest
        report = self.parameterAsFileOutput(parameters, self.OUTPUT_REPORT, context)
        if report:
            source = self.parameterAsSource(parameters, self.SAMPLES, context)
            settings = {"samples": source.sourceName(), "element": field,
                        "samples used": int(x.size), "image": image_layer.name(),
                        "log transform": log, "folds": n_folds,
                        "block size (map units)": self.parameterAsDouble(
                            parameters, self.BLOCK_SIZE, context) or "5 sample spacings",
                        "seed": self.parameterAsInt(parameters, self.SEED, context)}
            crossvalidation_report(report, field, z, results, rows, settings, sentence, space)
            outputs[self.OUTPUT_REPORT] = report
        return outputs


def _readable(rows, unit):
    """The table rows with headings a reader understands (the output table keeps the keys)."""
    labels = {"n": "samples scored", "rmse": f"RMSE ({unit})", "cc": "CC",
              "bias": f"bias ({unit})", "errors in": None}
    return [{labels.get(k, k): v for k, v in row.items() if labels.get(k, k) is not None}
            for row in rows]


def crossvalidation_report(path, field, observed, results, rows, settings, sentence,
                           space="data units"):
    """Write the HTML report of :class:`CrossValidateFusion`."""
    import html

    from .report import bars_html, scatter_html, table_html, write_report

    methods = list(results)
    alone = results.get("kriging alone", {}).get("rmse")
    unit = "log10 ppm" if space == "log10" else "ppm"
    sections = [
        ("Inputs and parameters", table_html(
            [{"parameter": k, "value": v} for k, v in settings.items()])),
        ("Does the image help?", f"<p><b>{html.escape(sentence)}</b></p>" + bars_html(
            methods, [results[m]["rmse"] for m in methods],
            f"{field}: RMSE at the held-out samples", f"RMSE ({space})",
            highlight=methods.index("default") if "default" in methods else None,
            reference=alone, reference_label="kriging alone")
         + table_html(_readable(rows, unit), "Errors of each method at the held-out samples "
                      "(estimate − value); every method is scored on the same samples")),
        ("Predicted against measured", "".join(
            scatter_html(observed, results[m]["predictions"], m, f"{field} measured",
                         f"{field} predicted (held out)", log=space == "log10")
            for m in methods)),
        ("How it was done", "<p>The samples were grouped in square blocks dealt at random to "
         "the folds. For each fold, every method was refitted from the samples of the other "
         "folds only (variogram, image features, regression, fusion) and its layer on the "
         "image grid was sampled bilinearly at the held-out samples. Whole blocks are held "
         "out, so the errors are those of predicting away from the samples, as a map does "
         "between survey points.</p>"),
    ]
    return write_report(path, f"Spatial cross-validation of the fusion: {field}", sections)
