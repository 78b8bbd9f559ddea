"""The HTML report of ``fusegeochemistry``: what was done and how it came out."""

import html

from .report import bars_html, map_html, scatter_html, table_html, variogram_html, write_report
from .variogram import kriging_sections


def _number(value):
    """``value`` as a float, or None when it is absent or not a finite number."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if value == value and abs(value) != float("inf") else None


def image_help_section(name, fit):
    """HTML of the "Does the image help?" section for one element's fit, or "".

    Uses what the fit carries, and skips what it does not: the adaptive fit's
    ``candidates`` (dicts with ``"cv rmse"``, ``"feature set"``, ``"window"``,
    ``"shrink"``), ``loo_rmse`` (the chosen predictor's spatial CV RMSE),
    ``kriging_alone_rmse`` and ``shrink``; and, when present,
    ``cv_predictions``: ``{label: (measured, predicted)}`` for scatter plots.
    """
    candidates = [c for c in (getattr(fit, "candidates", None) or []) if isinstance(c, dict)]
    scored = [c for c in candidates if _number(c.get("cv rmse")) is not None]
    chosen = _number(getattr(fit, "loo_rmse", None))
    alone = _number(getattr(fit, "kriging_alone_rmse", None))
    shrink = _number(getattr(fit, "shrink", None))
    body = ""
    if chosen is not None and alone is not None and alone > 0:
        if shrink == 0:
            body += (f"<p><b>No</b>: no use of the image beat kriging alone in the spatial "
                     f"cross-validation (CV RMSE {alone:.4g}), so {html.escape(name)} is "
                     "kriging alone.</p>")
        else:
            body += (f"<p><b>Yes</b>: the image trend plus kriged residuals predicts held-out "
                     f"samples with a CV RMSE of {chosen:.4g}, against {alone:.4g} for kriging "
                     f"alone ({100 * (chosen / alone - 1):+.0f} %).</p>")
    if scored:
        labels, values, highlight = [], [], None
        for i, c in enumerate(scored):
            lam = _number(c.get("shrink")) or 0.0
            if lam == 0:
                labels.append("kriging alone")
            else:
                labels.append(f"{c.get('feature set', '?')}, {c.get('window', '?')} px, "
                              f"λ {lam:g}")
            values.append(_number(c.get("cv rmse")))
            if (shrink is not None and lam == shrink
                    and c.get("feature set") == getattr(fit, "feature_set", None)
                    and c.get("window") == getattr(fit, "window", None)) or (
                    shrink == 0 and lam == 0):
                highlight = i
        body += bars_html(labels, values, f"{name}: spatial CV RMSE of each candidate",
                          "CV RMSE (working units)", highlight=highlight, reference=alone,
                          reference_label="kriging alone")
        body += ("<p>Each bar is one way of using the image (feature set, support window, "
                 "shrink λ of the image trend), scored by spatial block cross-validation at the "
                 "samples (in the working space: log10 with the log transform). The chosen one "
                 "(orange) is picked by the fit's own criterion (leave-one-out by default), and "
                 "the image is used only when it also beats kriging alone (dashed line) "
                 "here.</p>")
    predictions = getattr(fit, "cv_predictions", None)
    if isinstance(predictions, dict):
        for label, pair in predictions.items():
            if isinstance(pair, (tuple, list)) and len(pair) == 2:
                body += scatter_html(pair[0], pair[1], f"{name}: {label}", "measured",
                                     "predicted (held out)")
    return body


NOT_REPORTED = ("band_names", "levels", "cell_size", "blend_sigma", "windows", "block_rows")
"""Settings the report does not list (the bands and the depth used have their own rows; the
others are not parameters of the algorithm)."""


def fusion_report(path, result, settings, band_names, coefficient_rows):
    """Write the report of a :class:`~geochem_fusion.core.vocabulary.PipelineResult`.

    ``settings``: the run's :class:`~geochem_fusion.core.vocabulary.FusionSettings`.
    """
    names = list(result.elements)
    params = {k: (v if not isinstance(v, (list, tuple, dict)) else str(v))
              for k, v in settings.as_dict().items() if k not in NOT_REPORTED}
    params.update({"pyramid levels used": result.levels,
                   "median sample spacing (map units)": result.sample_spacing,
                   "kriging cell (map units)": result.kriging_grid.cell_x,
                   "image bands": ", ".join(band_names)})
    sections = [("Inputs and parameters", table_html(
        [{"parameter": k, "value": v} for k, v in params.items()])
        + "".join(f"<p>{html.escape(n)}</p>" for n in result.notes))]
    for n in names:
        el = result.elements[n]
        k = el.kriging
        body = ""
        if k.experimental_variogram is not None:
            lags, gamma = k.experimental_variogram
            body += variogram_html(lags, gamma, k.variogram_function,
                                   f"{n}: {k.variogram_model} variogram")
        for heading, part in kriging_sections(n, k):
            body += f"<h3>{html.escape(heading)}</h3>{part}"
        sections.append((f"{n}: kriging", body))
        helps = image_help_section(n, el.fusion)
        sections.append((f"{n}: does the image help?", helps or (
            "<p>This mode does not test it. Run <i>Cross-validate the fusion</i> "
            "(geochemfusion:crossvalidatefusion) to compare it with kriging alone and "
            "regression kriging at held-out samples.</p>")))
        candidates = getattr(el.fusion, "candidates", None)
        if candidates:
            sections.append((f"{n}: adaptive model choice", table_html(
                candidates, "Leave-one-out RMSE at the samples of each candidate (feature set, "
                "support window in pixels, shrink λ of the image trend; the first row is kriging "
                "alone). The lowest is used; if none beats kriging alone, kriging alone is used.")))
    pca = result.features.pca
    if pca is not None:
        sections.append(("Principal components", table_html(
            pca.loading_table(result.features.source_names
                              or (result.features.indices.labels if result.features.indices
                                  else band_names)),
            "Loadings (correlation of each input with each component) and explained variance")))
    maps = "".join(map_html(result.features.data[i], name, cmap="gray")
                   for i, name in enumerate(result.features.names))
    if result.units is not None:
        maps += map_html(result.units.astype(float), "Geological units (K-means)",
                         categorical=True)
    sections.append(("Image features and units", maps))
    sections.append(("Regression (eq. 1) per fit", table_html(
        coefficient_rows, "Gains ai of Geo_L ≈ a0 + Σ ai·MS_Li; units that fell back use the "
        "global fit")))
    sections.append(("Fused layers", "".join(
        map_html(result.elements[n].geo, f"{n} kriged, resampled") +
        map_html(result.elements[n].fusion.fused, f"{n} fused") for n in names)))
    return write_report(path, "Geochemical image fusion report", sections)
