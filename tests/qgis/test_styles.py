"""Output layers are named and styled when they load.

Directly: ``styles.apply_style`` / ``LayerStyler.postProcessLayer`` on raster
layers.  End to end: ``processing.run`` with outputs bound to a fresh
``QgsProject`` (what the Processing dialog does), then Processing's own
``handleAlgorithmResults`` loads them and runs the post-processors.
"""

import contextlib
import gc

import numpy as np
import pytest
from qgis.core import (
    QgsColorRampShader,
    QgsPalettedRasterRenderer,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputLayerDefinition,
    QgsProject,
    QgsRasterLayer,
    QgsSingleBandGrayRenderer,
    QgsSingleBandPseudoColorRenderer,
)

from geochem_fusion.algorithms import styles


def raster_layer(path, name="layer"):
    layer = QgsRasterLayer(str(path), name)
    assert layer.isValid(), path
    return layer


@pytest.fixture
def geochem_raster(make_raster, read_raster):
    """A right-skewed "concentration" layer with a nodata block; returns (path, valid values)."""
    rng = np.random.default_rng(1)
    data = np.exp(rng.normal(3.0, 0.8, size=(60, 80)))
    data[:10, :10] = -9999
    path = make_raster("cu.tif", data, nodata=-9999)
    values = read_raster(path).data[0]  # float32 as written, nodata -> NaN
    return path, values[np.isfinite(values)]


def shader_items(layer):
    renderer = layer.renderer()
    assert isinstance(renderer, QgsSingleBandPseudoColorRenderer)
    function = renderer.shader().rasterShaderFunction()
    return function, function.colorRampItemList()


def test_geochem_style_cumulative_frequency_classes(geochem_raster):
    path, values = geochem_raster
    layer = raster_layer(path)
    styles.apply_style(layer, styles.GEOCHEM)
    function, items = shader_items(layer)
    assert function.colorRampType() == QgsColorRampShader.Discrete
    # one class per cumulative-frequency limit, plus the maximum (continuous data: all distinct)
    assert len(items) == len(styles.CUMULATIVE_PERCENTILES) + 1
    expected = np.percentile(values, styles.CUMULATIVE_PERCENTILES)
    # same float32 values, same percentile definition: equal up to double rounding
    np.testing.assert_allclose([it.value for it in items[:-1]], expected, rtol=1e-12)
    assert items[-1].value == pytest.approx(values.max())
    assert all(a.value < b.value for a, b in zip(items, items[1:]))
    assert len({it.color.name() for it in items}) > 1  # a ramp, not one colour
    assert items[0].label.endswith("(1.5 %)") and items[-1].label.endswith("(100 %)")


def test_geochem_style_few_distinct_values_merges_classes(make_raster):
    data = np.repeat(np.array([1.0, 2.0, 3.0]), 100).reshape(10, 30)
    layer = raster_layer(make_raster("steps.tif", data, nodata=-9999))
    styles.apply_style(layer, styles.GEOCHEM)
    _, items = shader_items(layer)
    assert [it.value for it in items] == sorted({it.value for it in items})  # no duplicate limits
    assert len(items) <= 3


def test_units_style_one_class_per_unit(make_raster):
    from osgeo import gdal

    units = np.tile(np.arange(4, dtype=np.int16), (20, 5))
    units[0, :] = -1
    layer = raster_layer(make_raster("units.tif", units, nodata=-1, dtype=gdal.GDT_Int16))
    styles.apply_style(layer, styles.UNITS)
    renderer = layer.renderer()
    assert isinstance(renderer, QgsPalettedRasterRenderer)
    classes = renderer.classes()
    assert [c.value for c in classes] == [0, 1, 2, 3]
    assert [c.label for c in classes] == ["Unit 1", "Unit 2", "Unit 3", "Unit 4"]
    assert len({c.color.name() for c in classes}) == 4


def test_variance_style_is_pseudocolor(geochem_raster):
    layer = raster_layer(geochem_raster[0])
    styles.apply_style(layer, styles.VARIANCE)
    function, items = shader_items(layer)
    assert function.colorRampType() == QgsColorRampShader.Interpolated
    assert len(items) >= 2


def test_continuous_style_is_grey_percentile_stretch(geochem_raster):
    path, values = geochem_raster
    layer = raster_layer(path)
    styles.apply_style(layer, styles.CONTINUOUS)
    renderer = layer.renderer()
    assert isinstance(renderer, QgsSingleBandGrayRenderer)
    ce = renderer.contrastEnhancement()
    lo, hi = np.percentile(values, [2, 98])
    assert ce.minimumValue() == pytest.approx(lo, rel=1e-6)
    assert ce.maximumValue() == pytest.approx(hi, rel=1e-6)


def test_post_processor_names_and_styles(geochem_raster):
    layer = raster_layer(geochem_raster[0], "fused")
    styler = styles.LayerStyler(styles.GEOCHEM, "Cu fused (global, coherent)")
    styler.postProcessLayer(layer, QgsProcessingContext(), QgsProcessingFeedback())
    assert layer.name() == "Cu fused (global, coherent)"
    assert isinstance(layer.renderer(), QgsSingleBandPseudoColorRenderer)


# ---------------------------------------------------------------------------
# loading on completion, as in the Processing dialog
# ---------------------------------------------------------------------------
def run_and_load(run_alg, alg_id, parameters, outputs):
    """Run with ``outputs`` bound to a fresh project; load them as Processing does.

    Returns ``(project, {path: name announced before loading})``.
    """
    from processing.gui.Postprocessing import handleAlgorithmResults

    project = QgsProject()
    context = QgsProcessingContext()
    context.setProject(project)
    feedback = QgsProcessingFeedback()
    params = dict(parameters)
    for key, path in outputs.items():
        params[key] = QgsProcessingOutputLayerDefinition(str(path), project)
    announced = {}

    def on_finish(alg, ctx, fb):
        for path, details in ctx.layersToLoadOnCompletion().items():
            announced[path] = details.name
        # The algorithm instance that ran is gone by now; the post-processors must
        # survive a garbage collection until the layers load (they once did not).
        gc.collect()
        assert handleAlgorithmResults(alg, ctx, fb)

    with layer_tree_view_of(project):
        run_alg(alg_id, params, onFinish=on_finish, context=context, feedback=feedback)
    return project, announced


@contextlib.contextmanager
def layer_tree_view_of(project):
    """Give pytest-qgis' iface a real layer tree view of ``project`` while loading.

    QGIS 3.44's Postprocessing passes ``iface.layerTreeView()`` to the C++
    ``QgsProcessingGuiUtils.addResultLayers``, which refuses pytest-qgis' MagicMock.
    """
    from qgis.core import QgsLayerTreeModel
    from qgis.gui import QgsLayerTreeView
    from qgis.utils import iface

    view = QgsLayerTreeView()
    view.setModel(QgsLayerTreeModel(project.layerTreeRoot(), view))
    iface.layerTreeView = lambda: view
    try:
        yield view
    finally:
        del iface.layerTreeView


def layers_by_name(project):
    return {layer.name(): layer for layer in project.mapLayers().values()}


def test_kriging_outputs_load_named_and_styled(run_alg, demo, tmp_path):
    est, var = tmp_path / "cu.tif", tmp_path / "cu_var.tif"
    project, announced = run_and_load(
        run_alg, "krigesamples",
        {"SAMPLES": f"{demo}/samples.gpkg|layername=samples", "FIELD": "Cu"},
        {"OUTPUT": est, "OUTPUT_VARIANCE": var})
    assert announced == {str(est): "Cu kriged", str(var): "Cu kriging variance"}
    layers = layers_by_name(project)
    assert set(layers) == {"Cu kriged", "Cu kriging variance"}
    kriged = layers["Cu kriged"]
    assert isinstance(kriged.renderer(), QgsSingleBandPseudoColorRenderer)
    items = kriged.renderer().shader().rasterShaderFunction().colorRampItemList()
    assert len(items) == len(styles.CUMULATIVE_PERCENTILES) + 1  # geochemical classes
    assert isinstance(layers["Cu kriging variance"].renderer(), QgsSingleBandPseudoColorRenderer)


def test_fusion_outputs_load_named_and_styled(run_alg, demo, tmp_path):
    outputs = {"OUTPUT": tmp_path / "fused.tif", "OUTPUT_UNITS": tmp_path / "units.tif",
               "OUTPUT_FEATURES": tmp_path / "features.tif"}
    project, announced = run_and_load(
        run_alg, "fusegeochemistry",
        {"SAMPLES": f"{demo}/samples.gpkg|layername=samples", "FIELD": ["Cu"],
         "IMAGE": str(demo / "sentinel2.tif"), "FEATURES": 0, "MODE": 1, "REGRESSION": 1,
         "N_CLUSTERS": 3},
        outputs)
    assert announced[str(outputs["OUTPUT"])] == "Cu fused (local, coherent)"
    layers = layers_by_name(project)
    assert isinstance(layers["Cu fused (local, coherent)"].renderer(),
                      QgsSingleBandPseudoColorRenderer)
    units = layers[announced[str(outputs["OUTPUT_UNITS"])]]
    assert isinstance(units.renderer(), QgsPalettedRasterRenderer)
    assert len(units.renderer().classes()) == 3
    features = layers[announced[str(outputs["OUTPUT_FEATURES"])]]
    assert isinstance(features.renderer(), QgsSingleBandGrayRenderer)


def test_nothing_loads_without_a_destination_project(run_alg, make_raster, stack, tmp_path):
    """Plain ``processing.run`` (scripts, qgis_process) loads nothing and needs no styler."""
    context = QgsProcessingContext()
    src = make_raster("img.tif", stack(2, 24, 32), nodata=np.nan)
    run_alg("kmeansunits", {"INPUT": src, "N_CLUSTERS": 2, "OUTPUT": str(tmp_path / "u.tif")},
            context=context)
    assert not context.layersToLoadOnCompletion()
