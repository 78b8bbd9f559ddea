"""The advanced variogram parameters shared by every algorithm that kriges.

``krigesamples``, ``fusegeochemistry`` and ``crossvalidatefusion`` add them
with :func:`add_variogram_parameters` and read them back as keyword
arguments of :class:`~geochem_fusion.core.kriging.OrdinaryKrigingModel` with
:func:`variogram_settings`.
"""

from qgis.core import QgsProcessingParameterEnum, QgsProcessingParameterNumber

from .base import advanced

NUGGET, SILL, RANGE = "NUGGET", "SILL", "RANGE"
LAG_WIDTH, NLAGS, MAX_LAG = "LAG_WIDTH", "NLAGS", "MAX_LAG"
ANISOTROPY, ANISOTROPY_ANGLE, ANISOTROPY_RATIO = (
    "ANISOTROPY", "ANISOTROPY_ANGLE", "ANISOTROPY_RATIO")
#: Option order is API (models and scripts pass indices).
ANISOTROPY_OPTIONS = ["none", "auto (kept only when leave-one-out improves)",
                      "manual (azimuth and ratio below)"]
DEFAULT_ANISOTROPY = 1

HELP = (
    "<b>Variogram parameters</b> (advanced): give <i>nugget</i>, <i>sill</i> (total sill, "
    "nugget included) and <i>range</i> (map units; the practical range for exponential and "
    "gaussian; for linear, the sill is the slope per map unit and the range is ignored) to use "
    "them instead of the automatic fit — all three, with a named model (not auto), in the units "
    "kriged (log10 units when log-transformed). Leave them empty for the fit: a weighted "
    "least-squares fit (pairs / lag², as gstat) of the experimental variogram up to the "
    "<i>maximum lag</i> (0 = a third of the diagonal of the samples' extent, gstat's cut-off) "
    "in <i>number of lags</i> bins, or bins of <i>lag width</i> (0 = from the number of lags). "
    "The report shows the pairs per lag.<br>"
    "<b>Anisotropy</b>: none, auto (azimuth and ratio estimated from directional "
    "variograms, kept only when leave-one-out cross-validation improves by at least 1 %; the "
    "default of krigesamples), or "
    "manual: <i>azimuth</i> of the major axis (degrees clockwise from north, e.g. the ice-flow "
    "direction of a till dispersal train) and <i>ratio</i> major/minor range (≥ 1); the range "
    "is then the major-axis range."
)


def add_variogram_parameters(alg, anisotropy=DEFAULT_ANISOTROPY):
    """Add the advanced variogram and anisotropy parameters to ``alg``.

    ``anisotropy``: the default option of ``ANISOTROPY`` (0 none, 1 auto, 2 manual).
    """
    def number(name, label, default=None, minimum=0.0, maximum=None, integer=False):
        kind = (QgsProcessingParameterNumber.Type.Integer if integer
                else QgsProcessingParameterNumber.Type.Double)
        param = QgsProcessingParameterNumber(name, label, kind, default,
                                             optional=default is None, minValue=minimum)
        if maximum is not None:
            param.setMaximum(maximum)
        alg.addParameter(advanced(param))

    number(NUGGET, "Variogram nugget (empty = fitted)")
    number(SILL, "Variogram total sill, or linear slope (empty = fitted)")
    number(RANGE, "Variogram range, map units (empty = fitted)")
    number(MAX_LAG, "Maximum lag, map units (0 = a third of the extent's diagonal)", 0.0)
    number(NLAGS, "Number of lags", 15, minimum=2, integer=True)
    number(LAG_WIDTH, "Lag width, map units (0 = maximum lag / number of lags)", 0.0)
    alg.addParameter(advanced(QgsProcessingParameterEnum(
        ANISOTROPY, "Anisotropy", ANISOTROPY_OPTIONS, defaultValue=anisotropy)))
    number(ANISOTROPY_ANGLE, "Anisotropy azimuth of the major axis (degrees clockwise from north)",
           0.0, maximum=180.0)
    number(ANISOTROPY_RATIO, "Anisotropy ratio, major/minor range (≥ 1)", 1.0, minimum=1.0)


def variogram_settings(alg, parameters, context, model):
    """Keyword arguments of ``OrdinaryKrigingModel`` from the parameters of :func:`add_variogram_parameters`.

    ``model`` is the variogram model chosen (``'auto'`` refuses given parameters).
    """
    def value(name):
        if parameters.get(name) is None or parameters.get(name) == "":
            return None
        return alg.parameterAsDouble(parameters, name, context)

    given = {"nugget": value(NUGGET), "sill": value(SILL), "range": value(RANGE)}
    settings = {}
    if any(v is not None for v in given.values()):
        if model == "linear":
            if given["sill"] is None or given["nugget"] is None:
                raise ValueError("the linear variogram needs a nugget and a slope (the sill "
                                 "parameter); give both or neither")
            settings["variogram_parameters"] = {"slope": given["sill"], "nugget": given["nugget"]}
        else:
            missing = [k for k, v in given.items() if v is None]
            if missing:
                raise ValueError(f"variogram parameters: give the nugget, sill and range together "
                                 f"(missing: {', '.join(missing)}), or none for the fit")
            if model == "auto":
                raise ValueError("variogram parameters belong to one model: choose spherical, "
                                 "exponential, gaussian or linear instead of auto")
            settings["variogram_parameters"] = given
    max_lag = value(MAX_LAG)
    settings["max_lag"] = max_lag or None
    lag_width = value(LAG_WIDTH)
    settings["lag_width"] = lag_width or None
    settings["nlags"] = alg.parameterAsInt(parameters, NLAGS, context) or None
    kind = alg.parameterAsEnum(parameters, ANISOTROPY, context)
    if kind == 0:
        settings["anisotropy"] = "none"
    elif kind == 1:
        settings["anisotropy"] = "auto"
    else:
        settings["anisotropy"] = (alg.parameterAsDouble(parameters, ANISOTROPY_ANGLE, context),
                                  alg.parameterAsDouble(parameters, ANISOTROPY_RATIO, context))
    return settings


UNIT = "ppm"
"""The unit of the concentrations (the element fields hold ppm)."""


def working_unit(log_transform):
    """The unit of kriged values, errors and variances: ppm, or log10 ppm with the log transform."""
    return f"log10 {UNIT}" if log_transform else UNIT


def variogram_row(result):
    """The fitted variogram as readable ``{label (unit): value}``.

    A nugget or sill below a millionth of the total sill is fitting round-off and shows as 0.
    """
    unit = working_unit(result.log_transform)
    squared = f"({unit})²" if " " in unit else f"{unit}²"
    params = dict(result.variogram_parameters)
    scale = abs(params.get("sill", 0.0)) + abs(params.get("nugget", 0.0))
    labels = {"sill": f"sill ({squared})", "psill": f"partial sill ({squared})",
              "range": "range (map units)", "nugget": f"nugget ({squared})",
              "slope": f"slope ({squared} per map unit)"}
    row = {"model": result.variogram_model}
    for key, value in params.items():
        value = float(value)
        if key in ("sill", "psill", "nugget") and abs(value) < 1e-6 * scale:
            value = 0.0
        row[labels.get(key, key)] = value
    return row


def loo_row(result):
    """The leave-one-out statistics as readable ``{label (unit): value}``."""
    unit = working_unit(result.log_transform)
    labels = {"n": "samples", "mean_error": f"mean error ({unit})", "rmse": f"RMSE ({unit})",
              "mean_standardized_error": "mean standardized error",
              "rmse_standardized": "standardized RMSE"}
    return {labels.get(k, k.replace("_", " ")): v for k, v in dict(result.loo).items()}


def variogram_report_html(result, title):
    """Figures of a ``KrigingResult`` and the choice made.

    The variogram with pairs per lag, the directional variograms with the
    fitted model, and the anisotropy ellipse.
    """
    import html

    import numpy as np

    from .report import _pyplot, figure_html, table_html

    plt = _pyplot()
    parts = []
    exp = result.experimental
    if exp is not None and exp.lags.size:
        fig, ax = plt.subplots(figsize=(5.0, 3.6))
        ax.plot(exp.lags, exp.semivariance, "o", label="experimental")
        for h, g, n in zip(exp.lags, exp.semivariance, exp.pairs):
            ax.annotate(str(int(n)), (h, g), textcoords="offset points", xytext=(0, 5),
                        fontsize=6, ha="center", color="0.35")
        h = np.linspace(0, exp.max_lag, 200)
        label = f"{result.variogram_model} model"
        if result.anisotropy is not None:
            label += " (major axis)"
        ax.plot(h, result.variogram_function(h), "-", label=label)
        ax.set_xlim(0, exp.max_lag * 1.02)
        ax.set_ylim(bottom=0)
        ax.set_xlabel("lag distance (map units)", fontsize=8)
        ax.set_ylabel("semivariance" + (" (log10 units²)" if result.log_transform else ""),
                      fontsize=8)
        ax.set_title(f"{title}: variogram (numbers: pairs per lag; cut-off {exp.max_lag:.4g})",
                     fontsize=8)
        ax.legend(fontsize=7)
        parts.append(figure_html(fig, f"{title} variogram"))
        parts.append(table_html(
            [{"lag (mean distance)": float(h), "semivariance": float(g), "pairs": int(n)}
             for h, g, n in zip(exp.lags, exp.semivariance, exp.pairs)],
            f"Experimental variogram: pairs per lag (cut-off {exp.max_lag:.4g}, "
            f"lag width {exp.lag_width:.4g})"))
    if result.directional:
        from ..core.kriging import semivariance

        ellipse, params, kept = result.anisotropy, result.variogram_parameters, True
        if ellipse is None and result.anisotropy_estimate is not None:
            (ellipse, params, _), kept = result.anisotropy_estimate, False
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9.0, 3.8))
        colors = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02"]
        for color, v in zip(colors, result.directional):
            ax.plot(v.lags, v.semivariance, "o", ms=3, color=color,
                    label=f"{v.azimuth:g}° ({int(v.pairs.sum())} pairs)")
            h = np.linspace(0, v.max_lag, 200)
            ax.plot(h, semivariance(result.variogram_model, params, h, anisotropy=ellipse,
                                    azimuth=v.azimuth), "-" if kept else "--", color=color)
        ax.set_ylim(bottom=0)
        ax.set_xlabel("lag distance (map units)", fontsize=8)
        ax.set_ylabel("semivariance", fontsize=8)
        ax.set_title("directional variograms (azimuth ± 22.5°) and "
                     + ("the model used" if kept else "the estimate, not kept (dashed)"),
                     fontsize=8)
        ax.legend(fontsize=7)
        if ellipse is not None and "range" in params:
            t = np.linspace(0, 360, 361)
            r = ellipse.range_along(t, params["range"])
            ax2.plot(r * np.sin(np.radians(t)), r * np.cos(np.radians(t)), "-" if kept else "--",
                     color="k" if kept else "0.5",
                     label=f"azimuth {ellipse.azimuth:.0f}°, ratio {ellipse.ratio:.2f}")
            ax2.set_aspect("equal")
            ax2.axhline(0, color="0.8", lw=0.5)
            ax2.axvline(0, color="0.8", lw=0.5)
            ax2.set_xlabel("east (map units)", fontsize=8)
            ax2.set_ylabel("north (map units)", fontsize=8)
            ax2.set_title("range ellipse" + ("" if kept else " (estimated, not kept)"), fontsize=8)
            ax2.legend(fontsize=7)
        else:
            ax2.axis("off")
        parts.append(figure_html(fig, f"{title} directional variograms"))
    rows = [{**variogram_row(result),
             "anisotropy azimuth (°)": result.anisotropy.azimuth if result.anisotropy else 0.0,
             "anisotropy ratio": result.anisotropy.ratio if result.anisotropy else 1.0}]
    text = table_html(rows, "Variogram used (kriged-space units; range along the major axis)")
    if result.anisotropy_note:
        text += f"<p>{html.escape(result.anisotropy_note)}</p>"
    return text + "".join(parts)


def kriging_sections(element, result):
    """Report sections describing a kriging result (variogram, LOO statistics, maps)."""
    from .report import map_html, table_html

    unit = working_unit(result.log_transform)
    sections = [
        ("Variogram", variogram_report_html(result, element)
         + (table_html([{"model": k, f"LOO RMSE ({unit})": v}
                        for k, v in result.candidates.items()],
                       "Automatic model choice: the model with the lowest leave-one-out RMSE")
            if result.candidates else "")),
        ("Leave-one-out cross-validation", table_html([loo_row(result)],
         "mean error ≈ 0 and standardized RMSE ≈ 1 indicate a good variogram fit")),
        ("Maps", map_html(result.estimate, f"{element} kriged ({UNIT})")
         + map_html(result.variance, f"{element} kriging variance ({unit})²", cmap="viridis")),
    ]
    return sections
