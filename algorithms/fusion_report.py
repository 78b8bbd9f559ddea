"""The HTML report of ``fusegeochemistry``: what was done and how it came out."""

import html

from .params import FEATURE_KEYS, FEATURES, SENSOR_KEYS, SENSORS, format_band_map
from .report import bars_html, map_html, scatter_html, table_html, variogram_html, write_report
from .variogram import UNIT, kriging_sections, working_unit


def adaptive_margin():
    """Return the margin the adaptive mode's image use must beat kriging alone by.

    The relative RMSE of the spatial cross-validation: ``margin`` of
    :class:`~geochem_fusion.core.adaptive.AdaptiveOptions`.
    """
    from ..core.adaptive import AdaptiveOptions

    return AdaptiveOptions().margin


def parameter_rows(settings):
    """The run's settings as ``[{"parameter", "value"}]`` a geochemist reads.

    Only what applies is listed: principal components for *chosen PCs*, sensor
    and band map for the index features, the number of units for the local
    regression; keys it does not know are listed as they are (spaces for
    underscores); :data:`NOT_REPORTED` are left out.
    """
    s = settings.as_dict() if hasattr(settings, "as_dict") else dict(settings)
    for key in NOT_REPORTED:
        s.pop(key, None)
    mode = s.pop("mode", None)
    features = s.pop("features", None)
    sensor, band_map, pcs = s.pop("sensor", None), s.pop("band_map", None), s.pop("pcs", None)
    regression, n_clusters = s.pop("regression", None), s.pop("n_clusters", None)
    rows = []

    def add(label, value):
        rows.append({"parameter": label, "value": value})

    if mode is not None:
        add("fusion mode", mode)
    if features is not None:
        add("image features", FEATURES[FEATURE_KEYS.index(features)]
            if features in FEATURE_KEYS else features)
    if features == "pcs" and pcs:
        add("principal components", ", ".join(f"PC{int(i)}" for i in pcs))
    if features == "indices-pc2":
        add("sensor", SENSORS[SENSOR_KEYS.index(sensor)] if sensor in SENSOR_KEYS else sensor)
        if band_map:
            add("band map (sensor band = image band)",
                format_band_map(band_map))
    if regression is not None:
        add("regression", regression)
    if regression == "local" and n_clusters is not None:
        add("geological units (K-means)", n_clusters)
    labels = {"log_transform": "log-transform concentrations (log10)",
              "variogram": "variogram model", "random_state": "random seed",
              "sample_size": "pixel sample for the fits (pixels)"}
    for key, value in s.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        add(labels.get(key, key.replace("_", " ")), value)
    return rows


def candidate_rows(candidates, fit, unit):
    """The adaptive fit's candidates as readable rows, the chosen one marked."""
    labels = {"feature set": "image features", "window": "support window (px)",
              "shrink": "shrink λ", "ridge alpha": "ridge α",
              "trend loo rmse": f"trend alone LOO RMSE ({unit})",
              "loo rmse": f"LOO RMSE ({unit})", "cv rmse": f"spatial CV RMSE ({unit})"}
    chosen = (getattr(fit, "feature_set", None), getattr(fit, "window", None),
              getattr(fit, "shrink", None))
    rows = []
    for c in candidates:
        alone = not c.get("shrink")
        picked = (chosen[2] == 0) if alone else (
            (c.get("feature set"), c.get("window"), c.get("shrink")) == chosen)
        row = {"candidate": "kriging alone" if alone else "image trend + kriged residual",
               "used": "✔" if picked else ""}
        for key, value in c.items():
            if alone and key in ("feature set", "window", "shrink"):
                value = None
            row[labels.get(key, key)] = value
        rows.append(row)
    return rows


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
    plain = settings.as_dict() if hasattr(settings, "as_dict") else dict(settings)
    unit = working_unit(plain.get("log_transform", False))
    params = parameter_rows(settings)
    if plain.get("mode") != "adaptive":
        params.append({"parameter": "pyramid levels used", "value": result.levels})
    params += [{"parameter": "concentrations", "value": f"{', '.join(names)} ({UNIT})"},
               {"parameter": "median sample spacing (map units)", "value": result.sample_spacing},
               {"parameter": "kriging cell (map units)", "value": result.kriging_grid.cell_x},
               {"parameter": "image bands", "value": ", ".join(band_names)}]
    sections = [("Inputs and parameters", table_html(params)
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
                candidate_rows(candidates, el.fusion, unit),
                "Each way of using the image (image features, support window, shrink λ of the "
                "image trend) with its errors at the samples. The one with the lowest "
                "leave-one-out RMSE (trend plus kriged residual) is chosen; it is used only if "
                "its spatial block cross-validation RMSE is also at least "
                f"{100 * adaptive_margin():.0f} % below kriging alone's (first row), otherwise "
                "kriging alone is used. ✔ marks what was used.")))
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
        coefficient_rows, f"Gains ai of Geo_L ≈ a0 + Σ ai·MS_Li ({unit}); units that fell back "
        "use the global fit")))
    sections.append(("Fused layers", "".join(
        map_html(result.elements[n].geo, f"{n} kriged, resampled ({UNIT})") +
        map_html(result.elements[n].fusion.fused, f"{n} fused ({UNIT})") for n in names)))
    return write_report(path, "Geochemical image fusion report", sections)
