"""Missing optional packages: the plugin loads, the algorithms that need them explain the fix."""

import sys

import numpy as np
import pytest
from qgis.core import QgsProcessingException

HIDDEN = ("pykrige", "sklearn")


def start_plugin_without(hidden, monkeypatch, qgis_iface):
    """The plugin imported afresh and started while the packages ``hidden`` cannot be imported.

    ``sys.modules[name] = None`` makes ``import name`` raise ImportError; the
    already imported submodules are hidden too (``import sklearn.cluster``
    would otherwise be served from the cache), and the plugin's own modules
    are dropped so that they are imported again in this state.
    """
    for name in list(sys.modules):
        if name.split(".")[0] in hidden:
            monkeypatch.setitem(sys.modules, name, None)
        elif name == "geochem_fusion" or name.startswith("geochem_fusion."):
            monkeypatch.delitem(sys.modules, name)
    for name in hidden:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError):
        import pykrige  # noqa: F401
    import geochem_fusion

    plugin = geochem_fusion.classFactory(qgis_iface)
    plugin.initProcessing()
    return plugin


@pytest.fixture
def plugin_without_optional(provider_unregistered, monkeypatch, qgis_iface):
    """The plugin started while pykrige and scikit-learn cannot be imported."""
    plugin = start_plugin_without(HIDDEN, monkeypatch, qgis_iface)
    yield provider_unregistered
    plugin.unload()


@pytest.fixture
def plugin_without_pykrige(provider_unregistered, monkeypatch, qgis_iface):
    """The plugin started while only pykrige (the one optional package of the core) is missing."""
    plugin = start_plugin_without(("pykrige",), monkeypatch, qgis_iface)
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


def test_every_step_but_kriging_runs_without_pykrige(plugin_without_pykrige, demo, make_raster,
                                                     stack, read_raster, tmp_path):
    """PyKrige is imported only by kriging.

    The other algorithms, and the non-kriging steps of the shipped model (PCA,
    K-means units, regression fusion), run without it.
    """
    import processing

    registry = plugin_without_pykrige
    assert not can_execute(registry, "krigesamples")[0]
    image = str(demo / "sentinel2.tif")
    feats = make_raster("feats.tif", stack(2, 48, 64, seed=11), nodata=np.nan,
                        descriptions=["PC2", "ratio"])
    fx0, fy0 = 300_000.0, 7_000_000.0  # the corner make_raster puts rasters at
    geo = make_raster("cu_kriged.tif", 50 + 10 * stack(1, 16, 20, seed=2)[0], x_min=fx0 - 80,
                      y_max=fy0 + 80, cell=40.0, descriptions=["Cu kriged"],
                      metadata={"SAMPLE_SPACING": 160.0})
    runs = {
        "principalcomponents": {"INPUT": image, "OUTPUT": str(tmp_path / "pcs.tif")},
        "kmeansunits": {"INPUT": image, "N_CLUSTERS": 3, "OUTPUT": str(tmp_path / "units.tif")},
        "mineralindices": {"IMAGE": image, "SENSOR": 1, "OUTPUT": str(tmp_path / "ix.tif")},
        "laplaciandecomposition": {"INPUT": image, "LEVELS": 2,
                                   "OUTPUT_LOW": str(tmp_path / "low.tif"),
                                   "OUTPUT_HIGH": str(tmp_path / "high.tif")},
        "regressionfusion": {"GEOCHEM": geo, "FEATURES": feats, "REGRESSION": 1,
                             "OUTPUT": str(tmp_path / "fused.tif")},
    }
    for alg_id, parameters in runs.items():
        ok, message = can_execute(registry, alg_id)
        assert ok, (alg_id, message)
        result = processing.run(f"geochemfusion:{alg_id}", parameters)
        key = "OUTPUT_LOW" if alg_id == "laplaciandecomposition" else "OUTPUT"
        data = read_raster(result[key]).data
        assert np.isfinite(data).mean() > 0.5, alg_id
    assert not [m for m in sys.modules if m.startswith("pykrige") and sys.modules[m]]
