"""``geochemfusion:anomalythresholds`` — anomaly thresholds and classes of a geochemical raster."""

from qgis.core import (
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from . import raster_io
from .base import GeochemAlgorithm, advanced
from .params import parse_float_list
from .styles import ANOMALY, anomaly_class_labels, style_by_thresholds
from .tables import write_table

#: How the classified raster is cut (option order is API).
CLASSIFY_BY = ["concentration-area fractal breaks", "median + 2 MAD (log10)",
               "mean + 2 SD (log10)", "percentiles"]


def ca_plot_html(result, title):
    """Log-log concentration-area plot with the fitted segments and the breaks."""
    import numpy as np

    from .report import _pyplot, figure_html

    plt = _pyplot()
    ca = result.ca
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    ax.plot(ca.log_concentration, ca.log_area, "o", ms=3, label="C-A curve")
    x = np.linspace(ca.log_concentration.min(), ca.log_concentration.max(), 200)
    ax.plot(x, ca.predict(x), "-", lw=1.5,
            label=f"{ca.n_segments} segment(s), slopes {', '.join(f'{s:.2f}' for s in ca.slopes)}")
    for t in ca.breakpoints:
        ax.axvline(t, color="r", ls="--", lw=1)
        ax.annotate(f"{10 ** t:.4g}", (t, ax.get_ylim()[1]), fontsize=7, color="r",
                    ha="left", va="top", rotation=90)
    ax.set_xlabel("log10 concentration", fontsize=8)
    ax.set_ylabel("log10 area at or above (map units²)", fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return figure_html(fig, title)


class AnomalyThresholds(GeochemAlgorithm):
    """``geochemfusion:anomalythresholds``: anomaly thresholds of a geochemical raster."""

    NAME = "anomalythresholds"
    DISPLAY_NAME = "Anomaly thresholds (concentration-area fractal, MAD, percentiles)"
    INPUT, BAND, N_SEGMENTS, CLASSIFY, PERCENTILES, STYLE_INPUT = (
        "INPUT", "BAND", "N_SEGMENTS", "CLASSIFY", "PERCENTILES", "STYLE_INPUT")
    OUTPUT, OUTPUT_TABLE, OUTPUT_REPORT = "OUTPUT", "OUTPUT_TABLE", "OUTPUT_REPORT"
    REQUIRES = ("numpy",)
    HELP = (
        "Anomaly thresholds of a geochemical raster (a fused layer, a kriged grid).<br>"
        "<b>Concentration-area fractal</b> (Cheng, Agterberg & Ballantyne 1994): the area where "
        "the concentration is at least ρ is plotted against ρ on log-log axes; background and "
        "anomalies follow straight lines of different slopes and the breaks between them are the "
        "thresholds. The breaks are found by piecewise-linear least squares; the number of "
        "segments is chosen by the Bayesian information criterion among fits whose slopes differ "
        "by at least 30 % (or given). Levels above which fewer than 25 cells lie are left out of "
        "the fit (the last cells make a staircase).<br>"
        "<b>Classic thresholds</b> (Reimann, Filzmoser & Garrett 2005): median + 2 MAD and "
        "mean + 2 SD of the log10 values (back-transformed), and upper percentiles.<br>"
        "Pixels that are nodata or ≤ 0 are left out and counted in the log.<br>"
        "Outputs: a classified raster (0 = background, 1, 2 … = anomaly classes above each "
        "threshold, 255 = nodata) styled as such, the thresholds table and an HTML report with the "
        "log-log plot. <b>Style the input by these classes</b> restyles the input layer (when it "
        "is in the project) with the same thresholds."
    )

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.INPUT, "Geochemical raster (fused or kriged)"))
        self.addParameter(QgsProcessingParameterNumber(
            self.BAND, "Band number", QgsProcessingParameterNumber.Type.Integer, 1, minValue=1))
        self.addParameter(QgsProcessingParameterEnum(
            self.CLASSIFY, "Classify by", CLASSIFY_BY, defaultValue=0))
        self.addParameter(advanced(QgsProcessingParameterNumber(
            self.N_SEGMENTS, "Number of C-A segments (0 = chosen by the information criterion)",
            QgsProcessingParameterNumber.Type.Integer, 0, minValue=0, maxValue=6)))
        self.addParameter(advanced(QgsProcessingParameterString(
            self.PERCENTILES, "Percentile thresholds (comma-separated)", "95, 98")))
        self.addParameter(QgsProcessingParameterBoolean(
            self.STYLE_INPUT, "Style the input layer by these classes", False))
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.OUTPUT, "Anomaly classes"))
        self.addParameter(QgsProcessingParameterFeatureSink(
            self.OUTPUT_TABLE, "Thresholds", optional=True, createByDefault=True))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_REPORT, "Thresholds report", "HTML files (*.html)", optional=True,
            createByDefault=False))

    def run_algorithm(self, parameters, context, feedback):
        from ..core.thresholds import anomaly_thresholds, classify

        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        band = self.parameterAsInt(parameters, self.BAND, context) or 1
        self.step(feedback, 1, f"Reading band {band} of '{layer.name()}'")
        raster = raster_io.read_raster(raster_io.layer_path(layer), bands=[band], copies=3)
        values = raster.data[0]
        name = raster.descriptions[0] or layer.name()
        segments = self.parameterAsInt(parameters, self.N_SEGMENTS, context) or None
        percentiles = parse_float_list(
            self.parameterAsString(parameters, self.PERCENTILES, context) or "",
            "Percentile thresholds")
        self.step(feedback, 20, "Fitting the concentration-area curve")
        grid = raster.grid
        result = anomaly_thresholds(values, cell_area=abs(grid.cell_x * grid.cell_y),
                                    n_segments=segments, percentiles=percentiles)
        if result.n_left_out:
            feedback.pushInfo(f"{result.n_left_out} of {values.size} pixels are nodata or ≤ 0 "
                              "and are left out of the thresholds (they stay nodata).")
        for row in result.table():
            feedback.pushInfo(f"{row['method']}: {row['threshold']:.5g} "
                              f"({row['share above (%)']:.2f} % of the pixels above)")
        choice = self.parameterAsEnum(parameters, self.CLASSIFY, context)
        thresholds = self._chosen(result, choice)
        if not thresholds:
            feedback.pushWarning(
                "The concentration-area curve is one straight line (no break): every pixel is "
                "background. Give a number of segments, or classify by another method.")
        self.step(feedback, 60, f"Classifying by {CLASSIFY_BY[choice]}: "
                                f"{', '.join(f'{t:.5g}' for t in thresholds) or 'no threshold'}")
        classes = classify(values, thresholds).astype(float)
        classes[~(values == values)] = float("nan")
        labels = anomaly_class_labels(thresholds)
        out = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        raster_io.write_raster(out, classes, grid, raster.crs_wkt, dtype="uint8", nodata=255,
                               descriptions=[f"{name} anomaly classes"],
                               metadata={"CLASS_LABELS": "|".join(labels),
                                         "THRESHOLDS": ",".join(f"{t:.6g}" for t in thresholds),
                                         "CLASSIFIED_BY": CLASSIFY_BY[choice]})
        self.load_styled(context, out, ANOMALY, f"{name} anomaly classes")
        outputs = {self.OUTPUT: out}
        dest = write_table(self, parameters, context, self.OUTPUT_TABLE, result.table())
        if dest is not None:
            outputs[self.OUTPUT_TABLE] = dest
        report = self.parameterAsFileOutput(parameters, self.OUTPUT_REPORT, context)
        if report:
            from .report import map_html, table_html, write_report

            sections = [
                ("Thresholds", table_html(result.table(), f"{name}: {result.n_values} pixels used, "
                                          f"{result.n_left_out} left out (nodata or ≤ 0)")),
                ("Concentration-area plot", ca_plot_html(result, f"{name}: concentration-area")),
                ("Classes", f"<p>Classified by {CLASSIFY_BY[choice]}: "
                            f"{'; '.join(labels)}</p>"
                 + map_html(classes, f"{name} anomaly classes", categorical=True)),
            ]
            write_report(report, f"Anomaly thresholds of {name}", sections)
            outputs[self.OUTPUT_REPORT] = report
        self._style_input = (layer.id(), band, thresholds) if self.parameterAsBool(
            parameters, self.STYLE_INPUT, context) else None
        return outputs

    @staticmethod
    def _chosen(result, choice):
        if choice == 0:
            return [float(t) for t in result.ca.thresholds]
        if choice == 1:
            return [result.classic["median + 2 MAD (log10)"]]
        if choice == 2:
            return [result.classic["mean + 2 SD (log10)"]]
        return sorted(float(v) for k, v in result.classic.items() if k.startswith("percentile"))

    def postProcessAlgorithm(self, context, feedback):
        chosen = getattr(self, "_style_input", None)
        if chosen:
            layer_id, band, thresholds = chosen
            layer = context.project().mapLayer(layer_id) if context.project() else None
            if layer is not None and thresholds:
                style_by_thresholds(layer, thresholds, band)
                feedback.pushInfo(f"'{layer.name()}' is now styled by the anomaly classes.")
        return {}
