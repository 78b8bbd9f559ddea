"""Styling of output layers, applied by post-processors when they load.

- geochemistry: cumulative-frequency classes (the percentile classes of
  geochemical atlases) on a blue→red ramp;
- kriging variance: a sequential ramp;
- geological units: categories;
- principal components and indices: a percentile-stretched grey ramp.

A raster of several bands (e.g. one per element) gets one named style per band
(*Layer Properties › Styles*), the first one current.  Loaded outputs are put in a
stated order in the Layers panel (:data:`LAYER_ORDER`): fused layers above the
kriged ones, units, features and the variance, all above the input image.
"""

import numpy as np
from osgeo import gdal
from qgis.core import (
    QgsColorRampShader,
    QgsContrastEnhancement,
    QgsGradientColorRamp,
    QgsLayerTreeLayer,
    QgsMapLayerLegendUtils,
    QgsMapLayerStyle,
    QgsPalettedRasterRenderer,
    QgsProcessingLayerPostProcessorInterface,
    QgsProject,
    QgsRasterLayer,
    QgsRasterShader,
    QgsSingleBandGrayRenderer,
    QgsSingleBandPseudoColorRenderer,
    QgsStyle,
)
from qgis.PyQt.QtGui import QColor

from .raster_io import invalid_mask

CUMULATIVE_PERCENTILES = (1.5, 4, 8, 15, 25, 40, 60, 75, 85, 92, 96, 98.5)
"""Class limits (cumulative frequency, %) used by geochemical atlases."""

GEOCHEM, VARIANCE, UNITS, CONTINUOUS = "geochem", "variance", "units", "continuous"
ANOMALY = "anomaly"

#: Background grey, then anomaly classes from yellow to dark red.
_ANOMALY_COLORS = ("#d9d9d9", "#fed976", "#fd8d3c", "#e31a1c", "#800026", "#49000f")
FUSED = "fused"
"""A fused geochemical layer: styled as :data:`GEOCHEM`, placed above every other output."""

LAYER_ORDER = (FUSED, GEOCHEM, ANOMALY, UNITS, CONTINUOUS, VARIANCE)
"""Top-to-bottom order of the outputs in the Layers panel (the fused map on top, the kriging
variance, which would hide everything, at the bottom; the input image stays below them)."""

ORDER_PROPERTY = "geochem_fusion/layer_order"
"""Layer custom property holding the rank of an output in :data:`LAYER_ORDER`."""

_UNIT_COLORS = ("#1f78b4", "#33a02c", "#e31a1c", "#ff7f00", "#6a3d9a", "#b15928", "#a6cee3",
                "#b2df8a", "#fb9a99", "#fdbf6f", "#cab2d6", "#ffff99", "#8dd3c7", "#bebada",
                "#fb8072", "#80b1d3")


def _sample_values(layer, band, max_pixels=1_000_000):
    """Valid values of ``band``, read at reduced resolution for big rasters."""
    ds = gdal.Open(layer.source())
    b = ds.GetRasterBand(band)
    step = max(1.0, np.sqrt(ds.RasterXSize * ds.RasterYSize / max_pixels))
    bx, by = max(1, int(ds.RasterXSize / step)), max(1, int(ds.RasterYSize / step))
    raw = b.ReadAsArray(buf_xsize=bx, buf_ysize=by)
    arr = raw.astype(float)
    arr[invalid_mask(b, raw)] = np.nan  # nodata in the band's own type, mask bands
    return arr[np.isfinite(arr)]


def _ramp(name, invert=False):
    ramp = QgsStyle.defaultStyle().colorRamp(name)
    if ramp is None:  # a profile without the default style
        ramp = QgsGradientColorRamp(QColor("#2c7bb6"), QColor("#d7191c"))
    if invert:
        ramp.invert()
    return ramp


def geochem_class_breaks(values):
    """Class upper limits at the cumulative-frequency percentiles, plus the maximum."""
    breaks = np.percentile(values, CUMULATIVE_PERCENTILES)
    return np.unique(np.append(breaks, values.max()))


def style_geochem(layer, band=1):
    """Concentration style: a colour ramp on quantiles of the valid values."""
    values = _sample_values(layer, band)
    if values.size == 0:
        return
    breaks = geochem_class_breaks(values)
    ramp = _ramp("RdYlBu", invert=True)  # blue (low) -> red (high)
    items = []
    labels = [f"{p:g} %" for p in CUMULATIVE_PERCENTILES] + ["100 %"]
    for i, value in enumerate(breaks):
        color = ramp.color(i / max(1, len(breaks) - 1))
        label = f"≤ {value:.4g} ({labels[min(i, len(labels) - 1)]})"
        items.append(QgsColorRampShader.ColorRampItem(float(value), color, label))
    shader_fn = QgsColorRampShader(float(values.min()), float(values.max()))
    shader_fn.setColorRampType(QgsColorRampShader.Type.Discrete)
    shader_fn.setSourceColorRamp(ramp.clone())
    shader_fn.setColorRampItemList(items)
    shader = QgsRasterShader()
    shader.setRasterShaderFunction(shader_fn)
    renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), band, shader)
    renderer.setClassificationMin(float(values.min()))
    renderer.setClassificationMax(float(values.max()))
    layer.setRenderer(renderer)


def style_variance(layer, band=1):
    """Kriging variance style: a sequential ramp from the smallest to the largest variance."""
    values = _sample_values(layer, band)
    if values.size == 0:
        return
    lo, hi = np.percentile(values, [2, 98])
    ramp = _ramp("Viridis")
    shader_fn = QgsColorRampShader(float(lo), float(hi), ramp.clone(), QgsColorRampShader.Type.Interpolated)
    shader_fn.classifyColorRamp(8, band, layer.extent(), layer.dataProvider())
    shader = QgsRasterShader()
    shader.setRasterShaderFunction(shader_fn)
    renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), band, shader)
    renderer.setClassificationMin(float(lo))
    renderer.setClassificationMax(float(hi))
    layer.setRenderer(renderer)


def style_units(layer, band=1):
    """Unit style: one colour and one legend entry (Unit 1, 2, ...) per unit."""
    values = np.unique(_sample_values(layer, band).astype(int))
    classes = [
        QgsPalettedRasterRenderer.Class(int(v), QColor(_UNIT_COLORS[i % len(_UNIT_COLORS)]),
                                        f"Unit {int(v) + 1}")
        for i, v in enumerate(values)
    ]
    layer.setRenderer(QgsPalettedRasterRenderer(layer.dataProvider(), band, classes))


def style_continuous(layer, band=1):
    """Continuous style (features, indices): a grey ramp stretched on 2-98 %."""
    values = _sample_values(layer, band)
    if values.size == 0:
        return
    lo, hi = np.percentile(values, [2, 98])
    renderer = QgsSingleBandGrayRenderer(layer.dataProvider(), band)
    ce = QgsContrastEnhancement(layer.dataProvider().dataType(band))
    ce.setContrastEnhancementAlgorithm(QgsContrastEnhancement.ContrastEnhancementAlgorithm.StretchToMinimumMaximum)
    ce.setMinimumValue(float(lo))
    ce.setMaximumValue(float(hi))
    renderer.setContrastEnhancement(ce)
    layer.setRenderer(renderer)


def anomaly_class_labels(thresholds):
    """Labels of the classes cut by ``thresholds``: background, then anomaly classes."""
    t = sorted(thresholds)
    if not t:
        return ["background (no threshold)"]
    labels = [f"background (< {t[0]:.4g})"]
    for i, low in enumerate(t):
        high = f" to < {t[i + 1]:.4g}" if i + 1 < len(t) else ""
        labels.append(f"anomaly class {i + 1} (≥ {low:.4g}{high})")
    return labels


def _anomaly_color(i, n):
    """Colour of class ``i`` (of ``n``): grey background, then yellow to dark red."""
    del n
    return QColor(_ANOMALY_COLORS[min(i, len(_ANOMALY_COLORS) - 1)])


def style_anomaly(layer, band=1):
    """Paletted classes of an anomaly-classes raster (labels from its ``CLASS_LABELS``)."""
    ds = gdal.Open(layer.source())
    labels = (ds.GetMetadataItem("CLASS_LABELS") or "").split("|") if ds else []
    ds = None
    labels = [label for label in labels if label] or ["background"]
    classes = [QgsPalettedRasterRenderer.Class(i, _anomaly_color(i, len(labels)), label)
               for i, label in enumerate(labels)]
    layer.setRenderer(QgsPalettedRasterRenderer(layer.dataProvider(), band, classes))


def style_by_thresholds(layer, thresholds, band=1):
    """Style a concentration layer in discrete classes cut at ``thresholds``."""
    t = sorted(float(v) for v in thresholds)
    labels = anomaly_class_labels(t)
    values = _sample_values(layer, band)
    top = float(max(values.max(), t[-1])) if values.size else t[-1]
    bottom = float(min(values.min(), t[0])) if values.size else t[0]
    uppers = t + [top]
    items = [QgsColorRampShader.ColorRampItem(
        float(u) if i < len(t) else float("inf"), _anomaly_color(i, len(labels)), labels[i])
        for i, u in enumerate(uppers)]
    shader_fn = QgsColorRampShader(bottom, top)
    shader_fn.setColorRampType(QgsColorRampShader.Type.Discrete)
    shader_fn.setColorRampItemList(items)
    shader = QgsRasterShader()
    shader.setRasterShaderFunction(shader_fn)
    renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), band, shader)
    renderer.setClassificationMin(bottom)
    renderer.setClassificationMax(top)
    layer.setRenderer(renderer)
    layer.triggerRepaint()


STYLERS = {GEOCHEM: style_geochem, FUSED: style_geochem, VARIANCE: style_variance,
           UNITS: style_units, CONTINUOUS: style_continuous, ANOMALY: style_anomaly}


def band_descriptions(layer):
    """The GDAL band descriptions of a raster layer ("" where a band has none)."""
    ds = gdal.Open(layer.source())
    if ds is None:
        return [""] * layer.bandCount()
    return [ds.GetRasterBand(b + 1).GetDescription() for b in range(ds.RasterCount)]


def apply_style(layer, kind, band=None):
    """Style ``layer`` as ``kind``: band ``band`` only, or (None) every band as a named style.

    With several bands, each band becomes a style named after its description
    (e.g. ``Cu fused``, ``Zn fused``) that the user picks in the Styles menu;
    the first band's style is current.
    """
    if band is not None or layer.bandCount() <= 1:
        STYLERS[kind](layer, band or 1)
        layer.triggerRepaint()
        return
    names = []
    for b, description in enumerate(band_descriptions(layer), start=1):
        name = description or f"Band {b}"
        names.append(name if name not in names else f"{name} (band {b})")
    others = []
    for b, name in enumerate(names[1:], start=2):
        STYLERS[kind](layer, b)
        style = QgsMapLayerStyle()
        style.readFromLayer(layer)
        others.append((name, style))
    STYLERS[kind](layer, 1)  # the current style: the layer's state is stored in it
    manager = layer.styleManager()
    manager.renameStyle(manager.currentStyle(), names[0])
    for name, style in others:
        manager.addStyle(name, style)
    layer.triggerRepaint()


def label_legend(node, layer):
    """Label the band entry of ``layer``'s legend with its band description alone.

    QGIS's own label reads "Band 1: Cu fused (Gray)": "(Gray)" is only the
    GeoTIFF colour interpretation of band 1, which means nothing for a
    concentration and cannot be unset in a GeoTIFF.
    """
    renderer = layer.renderer()
    bands = renderer.usesBands() if renderer is not None else []
    if len(bands) != 1:
        return
    descriptions = band_descriptions(layer)
    band = bands[0]
    text = descriptions[band - 1] if band <= len(descriptions) else ""
    QgsMapLayerLegendUtils.setLegendNodeUserLabel(node, 0, text or f"Band {band}")
    node.setCustomProperty("legend/geochem_fusion", True)


def place_in_layer_tree(node, kind):
    """Move ``node`` (a loaded output) to its place among the other outputs (:data:`LAYER_ORDER`).

    It goes just below the last sibling output of the same or a higher rank, or
    else just above the first one of a lower rank; a layer that is not an
    output of this plugin (the input image, the samples) is not moved.
    Returns the node now in the tree (a moved node is a copy).
    """
    rank = LAYER_ORDER.index(kind)
    node.layer().setCustomProperty(ORDER_PROPERTY, rank)
    parent = node.parent()
    if parent is None:
        return node
    siblings = [c for c in parent.children() if c is not node]
    ranks = []
    for i, child in enumerate(siblings):
        if isinstance(child, QgsLayerTreeLayer) and child.layer() is not None:
            other = child.layer().customProperty(ORDER_PROPERTY)
            if other is not None:
                ranks.append((i, int(other)))
    above = [i for i, r in ranks if r <= rank]
    below = [i for i, r in ranks if r > rank]
    if above:
        target = above[-1] + 1
    elif below:
        target = below[0]
    else:
        return node
    current = parent.children().index(node)
    if target == current:  # ``target`` counts the siblings without the node
        return node
    # the copy goes in first: a layer without a node in the tree leaves the project
    clone = node.clone()
    parent.insertChildNode(target + 1 if target > current else target, clone)
    parent.removeChildNode(node)
    return clone


_PENDING = set()
"""Stylers waiting for their layer (see :class:`LayerStyler`)."""


class LayerStyler(QgsProcessingLayerPostProcessorInterface):
    """Names and styles an output layer when Processing loads it.

    Processing deletes the algorithm instance that ran before it loads the
    outputs, and the context does not keep the Python object alive (its C++
    side survives without the Python overrides), so each styler keeps itself
    in a module-level set until it has run.
    """

    def __init__(self, kind, name):
        super().__init__()
        self.kind = kind
        self.name = name
        _PENDING.add(self)

    def postProcessLayer(self, layer, context, feedback):
        _PENDING.discard(self)
        if not isinstance(layer, QgsRasterLayer):
            return
        layer.setName(self.name)
        apply_style(layer, self.kind)
        project = context.project() or QgsProject.instance()
        node = project.layerTreeRoot().findLayer(layer.id())
        if node is not None:
            label_legend(place_in_layer_tree(node, self.kind), layer)
