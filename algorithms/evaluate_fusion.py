"""``geochemfusion:evaluatefusion`` — score fused layers side by side against what is known."""

import html

from qgis.core import (
    QgsProcessing,
    QgsProcessingParameterBand,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from . import compat, raster_io, sample_values
from .base import GeochemAlgorithm, advanced
from .report import format_value as report_value
from .tables import write_table
from .vector_io import check_projected, read_points

NOTHING_TO_COMPARE = (
    "Nothing to compare the layers with: give at least one of REFERENCE_SAMPLES (with "
    "REFERENCE_FIELD), REFERENCE_RASTER, INPUT_SAMPLES (with INPUT_FIELD) or INPUT_GEOCHEM, "
    "OCCURRENCES."
)


def _given(parameters, key):
    value = parameters.get(key)
    return value is not None and value != "" and value != []


def parse_percentiles(text):
    """``"90, 95"`` -> ``[90.0, 95.0]``; refuses values outside (0, 100)."""
    try:
        values = [float(v) for v in str(text or "").replace(";", ",").split(",") if v.strip()]
    except ValueError as exc:
        raise ValueError(f"Percentiles: expected comma-separated numbers such as '90,95', got "
                         f"'{text}'") from exc
    bad = [v for v in values if not 0 < v < 100]
    if bad:
        raise ValueError(f"Percentiles must lie strictly between 0 and 100, got {bad}")
    return values


class EvaluateFusion(GeochemAlgorithm):
    """``geochemfusion:evaluatefusion``: scores of fused layers against reference layers and points."""

    NAME = "evaluatefusion"
    DISPLAY_NAME = "Evaluate fused layers"
    GROUP = "Evaluation"
    GROUP_ID = "evaluation"
    REQUIRES = ("numpy", "scipy")
    FUSED, BAND_FILTER = "FUSED", "BAND_FILTER"
    REFERENCE_SAMPLES, REFERENCE_FIELD = "REFERENCE_SAMPLES", "REFERENCE_FIELD"
    REFERENCE_RASTER, REFERENCE_BAND = "REFERENCE_RASTER", "REFERENCE_BAND"
    INPUT_SAMPLES, INPUT_FIELD = "INPUT_SAMPLES", "INPUT_FIELD"
    INPUT_GEOCHEM, INPUT_GEOCHEM_BAND = "INPUT_GEOCHEM", "INPUT_GEOCHEM_BAND"
    OCCURRENCES, PERCENTILES, SUPPORT = "OCCURRENCES", "PERCENTILES", "SUPPORT"
    OUTPUT_TABLE, OUTPUT_REPORT = "OUTPUT_TABLE", "OUTPUT_REPORT"
    HELP = (
        "Scores one or several geochemical layers side by side (e.g. adaptive vs paper fusion vs "
        "kriging alone) against whatever you have to compare them with. Every band of every "
        "input raster is one layer, named by its band description; <b>Band names containing</b> "
        "keeps only some bands (e.g. 'Cu').<br>"
        "All layers are compared on the grid of the finest input raster; the others are brought "
        "onto it by cubic convolution (reprojected first when their CRS differs). Points in "
        "another CRS are reprojected.<br>"
        "<b>Reference samples</b> (a denser or independent survey): correlation (CC), RMSE and "
        "bias of the layer, sampled bilinearly at the points.<br>"
        "<b>Reference raster</b> (e.g. a detailed map, or the truth of a simulation): CC, RMSE, "
        "bias, UIQI, SSIM, SCC of the Laplacian high-pass detail, and the intersection over "
        "union of the anomalies above each of the <b>Percentiles</b>.<br>"
        "<b>Input samples</b> or <b>input geochemistry</b> (the survey the layer was made from): "
        "Wald consistency. The layer averaged over blocks of the survey support (the input "
        "raster's cells, or squares of the median sample spacing, or <b>Support</b>) is compared "
        "with the input; a fusion that keeps the measured geochemistry returns it.<br>"
        "<b>Occurrences</b> (known mineralisation): success-rate curve (fraction of the "
        "occurrences captured by the highest x % of the area) and its AUC (0.5 = random).<br>"
        "Outputs: a table with one row per layer, and an HTML report with the table, scatter "
        "plots, the success-rate curves and small maps.<br>"
    ) + sample_values.help_text()

    def initAlgorithm(self, config=None):
        points = [QgsProcessing.SourceType.TypeVectorPoint]
        self.addParameter(QgsProcessingParameterMultipleLayers(
            self.FUSED, "Layers to evaluate (every band is one layer)", QgsProcessing.SourceType.TypeRaster))
        self.addParameter(QgsProcessingParameterString(
            self.BAND_FILTER, "Band names containing (e.g. Cu; empty = every band)", "",
            optional=True))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.REFERENCE_SAMPLES, "Reference samples (independent survey)", points,
            optional=True))
        self.addParameter(QgsProcessingParameterField(
            self.REFERENCE_FIELD, "Reference field", parentLayerParameterName=self.REFERENCE_SAMPLES,
            type=QgsProcessingParameterField.DataType.Any, optional=True))  # text such as "<5" too
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.REFERENCE_RASTER, "Reference raster", optional=True))
        self.addParameter(QgsProcessingParameterBand(
            self.REFERENCE_BAND, "Reference raster band", 1,
            parentLayerParameterName=self.REFERENCE_RASTER, optional=True))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.INPUT_SAMPLES, "Input samples (the survey that was fused)", points, optional=True))
        self.addParameter(QgsProcessingParameterField(
            self.INPUT_FIELD, "Input field", parentLayerParameterName=self.INPUT_SAMPLES,
            type=QgsProcessingParameterField.DataType.Any, optional=True))
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.INPUT_GEOCHEM, "Input geochemistry raster (instead of input samples)",
            optional=True))
        self.addParameter(QgsProcessingParameterBand(
            self.INPUT_GEOCHEM_BAND, "Input geochemistry band", 1,
            parentLayerParameterName=self.INPUT_GEOCHEM, optional=True))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.OCCURRENCES, "Known occurrences", points, optional=True))
        self.addParameter(advanced(QgsProcessingParameterString(
            self.PERCENTILES, "Anomaly percentiles for the IoU (e.g. 90,95)", "90,95")))
        self.addParameter(advanced(QgsProcessingParameterNumber(
            self.SUPPORT, "Survey support for the consistency check (map units, 0 = median "
            "sample spacing)", QgsProcessingParameterNumber.Type.Double, 0.0, minValue=0.0)))
        self.addParameter(QgsProcessingParameterFeatureSink(
            self.OUTPUT_TABLE, "Metrics per layer", optional=True, createByDefault=True))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_REPORT, "Evaluation report", "HTML files (*.html)", optional=True,
            createByDefault=False))
        sample_values.add_parameters(self)  # the sample values, as every algorithm reads them

    def checkParameterValues(self, parameters, context):
        ok, message = super().checkParameterValues(parameters, context)
        if not ok:
            return ok, message
        keys = (self.REFERENCE_SAMPLES, self.REFERENCE_RASTER, self.INPUT_SAMPLES,
                self.INPUT_GEOCHEM, self.OCCURRENCES)
        if not any(_given(parameters, k) for k in keys):
            return False, NOTHING_TO_COMPARE
        for source, field in ((self.REFERENCE_SAMPLES, self.REFERENCE_FIELD),
                              (self.INPUT_SAMPLES, self.INPUT_FIELD)):
            if _given(parameters, source) and not _given(parameters, field):
                return False, f"{source} is given without {field}: choose the field to compare."
        if _given(parameters, self.INPUT_SAMPLES) and _given(parameters, self.INPUT_GEOCHEM):
            return False, ("Give INPUT_SAMPLES or INPUT_GEOCHEM for the consistency check, not "
                           "both.")
        try:
            parse_percentiles(parameters.get(self.PERCENTILES, "90,95"))
        except ValueError as exc:
            return False, str(exc)
        return True, ""

    # -- reading ----------------------------------------------------------------------
    def _layers(self, parameters, context, feedback):
        """The bands to evaluate on a common grid: ``(names, arrays, grid, crs, wkt)``."""
        from ..core.resample import resample_cubic

        layers = self.parameterAsLayerList(parameters, self.FUSED, context)
        if not layers:
            raise ValueError("no layer to evaluate: give at least one raster in FUSED")
        rasters = []
        for layer in layers:
            if not hasattr(layer, "bandCount"):
                raise ValueError(f"'{layer.name()}' is not a raster layer; FUSED takes rasters")
            rasters.append((layer, raster_io.read_raster(raster_io.layer_path(layer))))
        target_layer, target = min(rasters, key=lambda r: r[1].grid.cell_x * r[1].grid.cell_y)
        crs = target_layer.crs()
        check_projected(crs, f"Layer '{target_layer.name()}'", "raster")
        grid, wkt = target.grid, target.crs_wkt or crs.toWkt()
        wanted = (self.parameterAsString(parameters, self.BAND_FILTER, context) or "").strip()
        names, arrays, seen = [], [], set()
        for layer, raster in rasters:
            bands = [i for i, d in enumerate(raster.descriptions)
                     if not wanted or wanted.lower() in d.lower()]
            if not bands:
                continue
            if layer.crs() != crs:
                feedback.pushInfo(f"'{layer.name()}' reprojected from {layer.crs().authid()} to "
                                  f"{crs.authid()} onto the evaluation grid (cubic).")
                vrt = raster_io.warped_vrt(raster_io.layer_path(layer), grid, wkt,
                                           resample="cubic", dst_nodata=float("nan"))
                data = [vrt.GetRasterBand(i + 1).ReadAsArray().astype(float) for i in bands]
            elif raster.grid != grid:
                feedback.pushInfo(f"'{layer.name()}' resampled from its {raster.grid.cell_x:g} "
                                  "map unit cells onto the evaluation grid (cubic convolution).")
                data = list(resample_cubic(raster.data[bands], raster.grid, grid))
            else:
                data = [raster.data[i] for i in bands]
            for i, arr in zip(bands, data):
                name = raster.descriptions[i]
                if name in seen:
                    name = f"{layer.name()}: {name}"
                seen.add(name)
                names.append(name)
                arrays.append(arr)
        if not names:
            available = sorted({d for _, r in rasters for d in r.descriptions})
            raise ValueError(f"no band name contains '{wanted}' (bands: {', '.join(available)}); "
                             "change or clear 'Band names containing'")
        return names, arrays, grid, crs, wkt

    def _raster_input(self, parameters, context, key, band_key, grid, crs, wkt, *, onto_grid):
        """Band of an optional raster as ``(array, Grid)`` in the evaluation CRS, or None."""
        layer = self.parameterAsRasterLayer(parameters, key, context)
        if layer is None:
            return None
        band = self.parameterAsInt(parameters, band_key, context) or 1
        path = raster_io.layer_path(layer)
        if layer.crs() == crs:
            raster = raster_io.read_raster(path, bands=[band])
            return raster.data[0], raster.grid
        if onto_grid:  # the reference: straight onto the evaluation grid
            vrt = raster_io.warped_vrt(path, grid, wkt, resample="cubic", band=band,
                                       dst_nodata=float("nan"))
            return vrt.GetRasterBand(1).ReadAsArray().astype(float), grid
        from osgeo import gdal

        warped = raster_io.warp_to_crs(path, wkt)  # the survey support: keep its own cells
        try:
            raster = raster_io.read_raster(warped, bands=[band])
        finally:
            gdal.Unlink(warped)
        return raster.data[0], raster.grid

    def _points(self, parameters, context, feedback, key, field_key, crs):
        source = self.parameterAsSource(parameters, key, context)
        if source is None:
            return None
        fields = []
        if field_key:
            fields = compat.parameter_as_strings(self, parameters, field_key, context)[:1]
            if not fields:
                raise ValueError(f"{key} is given without {field_key}: choose the field to compare")
        if not fields:
            x, y, _, messages = read_points(source, fields, crs, context, feedback)
            for m in messages:
                feedback.pushInfo(m)
        else:
            from ..core.samples import clean_values

            x, y, raw, marks = sample_values.read_samples(self, parameters, context, feedback,
                                                          source, fields, crs)
            values, messages = clean_values(
                raw[fields[0]], name=fields[0], qualifiers=marks.get(fields[0]),
                **sample_values.conventions(self, parameters, context))
            for m in messages:
                feedback.pushWarning(m)
        if x.size == 0:
            raise ValueError(f"the layer '{source.sourceName()}' ({key}) has no point")
        return (x, y, values) if fields else (x, y)

    # -- running ----------------------------------------------------------------------
    def run_algorithm(self, parameters, context, feedback):
        from ..core.evaluation import evaluate_layer

        self.step(feedback, 1, "Reading the layers to evaluate")
        names, arrays, grid, crs, wkt = self._layers(parameters, context, feedback)
        inputs = {
            "reference_points": self._points(parameters, context, feedback,
                                             self.REFERENCE_SAMPLES, self.REFERENCE_FIELD, crs),
            "reference_raster": self._raster_input(parameters, context, self.REFERENCE_RASTER,
                                                   self.REFERENCE_BAND, grid, crs, wkt,
                                                   onto_grid=True),
            "input_points": self._points(parameters, context, feedback, self.INPUT_SAMPLES,
                                         self.INPUT_FIELD, crs),
            "input_geochem": self._raster_input(parameters, context, self.INPUT_GEOCHEM,
                                                self.INPUT_GEOCHEM_BAND, grid, crs, wkt,
                                                onto_grid=False),
            "occurrences": self._points(parameters, context, feedback, self.OCCURRENCES, None,
                                        crs),
        }
        if all(v is None for v in inputs.values()):
            raise ValueError(NOTHING_TO_COMPARE)
        if inputs["input_points"] is not None and inputs["input_geochem"] is not None:
            raise ValueError("Give INPUT_SAMPLES or INPUT_GEOCHEM for the consistency check, "
                             "not both.")
        if inputs["reference_raster"] is not None and inputs["reference_raster"][1] != grid:
            from ..core.resample import resample_cubic

            ref, ref_grid = inputs["reference_raster"]
            feedback.pushInfo("Reference raster resampled onto the evaluation grid (cubic "
                              "convolution).")
            inputs["reference_raster"] = (resample_cubic(ref, ref_grid, grid), grid)
        percentiles = parse_percentiles(
            self.parameterAsString(parameters, self.PERCENTILES, context) or "90,95")
        support = self.parameterAsDouble(parameters, self.SUPPORT, context) or None
        rows = []
        for i, (name, arr) in enumerate(zip(names, arrays)):
            self.step(feedback, 10 + 70 * i / len(names), f"Evaluating '{name}'")
            scores = evaluate_layer(arr, grid, percentiles=percentiles, support=support, **inputs)
            rows.append({"layer": name, **scores})
            feedback.pushInfo(f"{name}: " + ", ".join(
                f"{metric_label(k)} {report_value(v)}" for k, v in scores.items()))
        for sentence in evaluation_verdict(rows):
            feedback.pushInfo(sentence)
        self.step(feedback, 85, "Writing the outputs")
        outputs = {}
        dest = write_table(self, parameters, context, self.OUTPUT_TABLE, rows)
        if dest is not None:
            outputs[self.OUTPUT_TABLE] = dest
        report = self.parameterAsFileOutput(parameters, self.OUTPUT_REPORT, context)
        if report:
            described = {
                "layers": ", ".join(names),
                "evaluation grid": f"{grid.ncols} x {grid.nrows} cells of {grid.cell_x:g} map "
                                   f"units, {crs.authid()}",
            }
            for key, label in ((self.REFERENCE_SAMPLES, "reference samples"),
                               (self.INPUT_SAMPLES, "input samples"),
                               (self.OCCURRENCES, "occurrences")):
                source = self.parameterAsSource(parameters, key, context)
                if source is not None:
                    described[label] = source.sourceName()
            for key, label in ((self.REFERENCE_RASTER, "reference raster"),
                               (self.INPUT_GEOCHEM, "input geochemistry")):
                layer = self.parameterAsRasterLayer(parameters, key, context)
                if layer is not None:
                    described[label] = layer.name()
            described["anomaly percentiles"] = ", ".join(f"{p:g}" for p in percentiles)
            evaluation_report(report, names, arrays, grid, rows, inputs, described)
            outputs[self.OUTPUT_REPORT] = report
        return outputs


METRIC_LABELS = {
    "n_points": "reference points", "cc_points": "CC at the points",
    "rmse_points": "RMSE at the points", "bias_points": "bias at the points",
    "n_pixels": "pixels compared", "cc_raster": "CC with the reference raster",
    "rmse_raster": "RMSE against the reference raster", "bias_raster": "bias against the raster",
    "uiqi": "UIQI", "ssim": "SSIM", "scc": "SCC (detail correlation)",
    "wald_support": "survey support (map units)", "wald_n": "support blocks",
    "wald_cc": "CC with the survey (block means)", "wald_rmse": "RMSE against the survey",
    "wald_bias": "bias against the survey", "n_occurrences": "occurrences", "auc": "AUC (occurrences)",
}
"""Column headings of the report for the keys of ``core.evaluation.METRIC_NAMES`` (the CSV keeps
the keys)."""


def metric_label(key):
    """The report's heading for a metric key (``iou_p90`` -> "anomaly overlap, top 10 % (IoU)")."""
    if key.startswith("iou_p"):
        return f"anomaly overlap above the {key[5:]}th percentile (IoU)"
    return METRIC_LABELS.get(key, key.replace("_", " "))


def evaluation_verdict(rows):
    """Plain sentences saying which layer scores best on each kind of evidence (or [])."""
    import math

    def number(value):
        try:
            value = float(value)
        except (TypeError, ValueError):
            return None
        return value if math.isfinite(value) else None

    def best(key, lowest=True):
        scored = [{**r, key: number(r.get(key))} for r in rows]
        scored = [r for r in scored if r[key] is not None]
        if not scored:
            return None
        return sorted(scored, key=lambda r: r[key] if lowest else -r[key])

    sentences = []
    for key, what in (("rmse_raster", "the reference raster"), ("rmse_points", "the reference "
                      "samples"), ("wald_rmse", "the input survey (block means)")):
        ranked = best(key)
        if ranked is None:
            continue
        top = ranked[0]
        text = (f"Closest to {what}: {top['layer']} (RMSE {top[key]:.4g}")
        if len(ranked) > 1:
            text += "; then " + ", ".join(f"{r['layer']} {r[key]:.4g}" for r in ranked[1:])
        sentences.append(text + ").")
    ranked = best("auc", lowest=False)
    if ranked is not None:
        top = ranked[0]
        sentences.append(f"Best at ranking the occurrences: {top['layer']} (AUC {top['auc']:.2f}; "
                         "0.5 is random).")
    return sentences


def evaluation_report(path, names, arrays, grid, rows, inputs, described):
    """Write the HTML report of :class:`EvaluateFusion`."""
    from ..core.evaluation import METRIC_NAMES, sample_layer, success_rate
    from .report import curves_html, map_html, scatter_html, table_html, write_report

    sections = []
    verdict = evaluation_verdict(rows)
    if verdict:
        sections.append(("Verdict", "".join(f'<p class="verdict">{html.escape(t)}</p>'
                                            for t in verdict)
                         + "<p>Errors are in the layers' units (ppm for concentrations).</p>"))
    sections.append(("Inputs", table_html([{"input": k, "value": v}
                                           for k, v in described.items()])))
    keys = []
    for row in rows:
        keys += [k for k in row if k != "layer" and k not in keys]
    legend = [{"metric": metric_label(k),
               "meaning": METRIC_NAMES.get(k) or METRIC_NAMES["iou_p<P>"].replace(
                   "P-th", f"{k[5:]}th"),
               "CSV column": k} for k in keys]
    sections.append(("Metrics", table_html(
        [{"layer": r["layer"], **{metric_label(k): r.get(k) for k in keys}} for r in rows],
        "One row per layer") + table_html(legend, "What the columns mean")))
    if inputs["reference_points"] is not None:
        rx, ry, rv = inputs["reference_points"]
        sections.append(("Layers against the reference samples", "".join(
            scatter_html(rv, sample_layer(arr, grid, rx, ry), name, "reference samples",
                         f"{name} (bilinear)") for name, arr in zip(names, arrays))))
    if inputs["reference_raster"] is not None:
        ref = inputs["reference_raster"][0]
        sections.append(("Layers against the reference raster", "".join(
            scatter_html(ref, arr, name, "reference raster", name)
            for name, arr in zip(names, arrays))))
    occ_pixels = None
    if inputs["occurrences"] is not None:
        ox, oy = inputs["occurrences"]
        occ_pixels = grid.to_pixel(ox, oy)
        curves = {}
        for name, arr in zip(names, arrays):
            try:
                area, captured, auc = success_rate(arr, grid, ox, oy)
            except ValueError:
                continue
            curves[f"{name} (AUC {auc:.2f})"] = (area, captured)
        if curves:
            sections.append(("Success-rate curves", curves_html(
                curves, "Occurrences captured by the highest-valued area",
                "fraction of the area (highest values first)", "fraction of the occurrences",
                diagonal=True) + "<p>A curve above the diagonal ranks the occurrences higher "
                "than random; the AUC is the area under it (0.5 = random, 1 = every occurrence "
                "on the highest values).</p>"))
    maps = "".join(map_html(arr, name, points=occ_pixels) for name, arr in zip(names, arrays))
    if inputs["reference_raster"] is not None:
        maps += map_html(inputs["reference_raster"][0], "reference raster", points=occ_pixels)
    sections.append(("Maps" + (" (occurrences in magenta)" if occ_pixels is not None else ""),
                     maps))
    notes = ("<p>Points are compared with the layer sampled bilinearly. The consistency check "
             "(Wald et al. 1997) averages the layer over the survey support"
             + (f" ({html.escape(str(rows[0].get('wald_support')))} map units)"
                if "wald_support" in rows[0] else "")
             + " and compares it with the input survey.</p>")
    sections.append(("Notes", notes))
    return write_report(path, "Evaluation of fused layers", sections)
