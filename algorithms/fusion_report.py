"""The HTML report of ``fusegeochemistry``: what was done and how it came out."""

import html

from .krige_samples import kriging_sections
from .report import map_html, table_html, variogram_html, write_report


def fusion_report(path, result, settings, band_names, coefficient_rows):
    """Write the report of a :class:`~geochem_fusion.core.pipeline.PipelineResult`."""
    names = list(result.elements)
    params = {k: (v if not isinstance(v, (list, tuple, dict)) else str(v))
              for k, v in settings.items() if k != "band_names"}
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
