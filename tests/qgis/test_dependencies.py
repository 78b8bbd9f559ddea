"""Missing optional packages: the plugin loads, the algorithms that need them explain the fix."""

import sys

import numpy as np
import pytest
from qgis.core import QgsProcessingException

HIDDEN = ("pykrige", "sklearn")


@pytest.fixture
def plugin_without_optional(provider_unregistered, monkeypatch, qgis_iface):
    """The plugin imported afresh and started while pykrige and scikit-learn cannot be imported.

    ``sys.modules[name] = None`` makes ``import name`` raise ImportError; the
    already imported submodules are hidden too (``import sklearn.cluster``
    would otherwise be served from the cache), and the plugin's own modules
    are dropped so that they are imported again in this state.
    """
    for name in list(sys.modules):
        if name.split(".")[0] in HIDDEN:
            monkeypatch.setitem(sys.modules, name, None)
        elif name == "geochem_fusion" or name.startswith("geochem_fusion."):
            monkeypatch.delitem(sys.modules, name)
    for name in HIDDEN:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError):
        import pykrige  # noqa: F401
    import geochem_fusion

    plugin = geochem_fusion.classFactory(qgis_iface)
    plugin.initProcessing()
    yield provider_unregistered
    plugin.unload()


def test_plugin_loads_without_optional_packages(plugin_without_optional):
    provider = plugin_without_optional.providerById("geochemfusion")
    assert provider is not None
    names = {alg.name() for alg in provider.algorithms()}
    assert {"krigesamples", "kmeansunits", "laplaciandecomposition", "fusegeochemistry"} <= names


def can_execute(registry, alg_id):
    alg = registry.createAlgorithmById(f"geochemfusion:{alg_id}")
    assert alg is not None
    return alg.canExecute()


def test_kriging_explains_missing_pykrige(plugin_without_optional):
    ok, message = can_execute(plugin_without_optional, "krigesamples")
    assert not ok
    assert "pykrige" in message
    assert "pip install" in message


def test_kmeans_explains_missing_scikit_learn(plugin_without_optional):
    ok, message = can_execute(plugin_without_optional, "kmeansunits")
    assert not ok
    assert "scikit-learn" in message  # the pip name, not the import name sklearn
    assert "install" in message


def test_fusion_names_both_missing_packages(plugin_without_optional):
    ok, message = can_execute(plugin_without_optional, "fusegeochemistry")
    assert not ok
    assert "pykrige" in message and "scikit-learn" in message


def test_algorithm_without_optional_needs_still_runs(plugin_without_optional, make_raster,
                                                    stack, read_raster, tmp_path):
    ok, message = can_execute(plugin_without_optional, "laplaciandecomposition")
    assert ok, message
    import processing

    src = make_raster("in.tif", stack(2, 24, 32), nodata=np.nan)
    result = processing.run("geochemfusion:laplaciandecomposition", {
        "INPUT": src, "LEVELS": 2, "OUTPUT_LOW": str(tmp_path / "low.tif"),
        "OUTPUT_HIGH": str(tmp_path / "high.tif")})
    assert read_raster(result["OUTPUT_LOW"]).data.shape == (2, 24, 32)


def test_running_raises_the_install_message(plugin_without_optional, demo, tmp_path):
    import processing

    out = tmp_path / "kriged.tif"
    with pytest.raises(QgsProcessingException, match=r"pykrige.*pip install"):
        processing.run("geochemfusion:krigesamples", {
            "SAMPLES": f"{demo}/samples.gpkg|layername=samples", "FIELD": "Cu",
            "OUTPUT": str(out)})
    assert not out.exists()
