"""The plugin as a QGIS desktop user meets it (issue 15), driven from Python, headless.

- the demo project (``tools/demo.py``) opens at the styled map, in its CRS;
- ``fusegeochemistry`` runs from its real dialog (Processing's ``AlgorithmDialog``, the
  threaded task, the loading of the results) with every intermediate output a temporary
  file: no error in the dialog's log, every output loaded, named, styled, and the fused
  map above the variance and the image;
- the shipped model loads and validates;
- every parameter of every algorithm has help text (tooltips, generated docs);
- every HTML report the demo writes has as many cells per row as headings.
"""

import subprocess
import sys
import time
from pathlib import Path

import pytest
from qgis.core import (
    QgsApplication,
    QgsMultiBandColorRenderer,
    QgsPalettedRasterRenderer,
    QgsProcessing,
    QgsProcessingParameterDefinition,
    QgsProject,
    QgsRasterLayer,
    QgsSingleBandGrayRenderer,
    QgsSingleBandPseudoColorRenderer,
    QgsVectorLayer,
)

REPO = Path(__file__).resolve().parents[2]
FUSE = "geochemfusion:fusegeochemistry"
INTERMEDIATES = ("OUTPUT_KRIGED", "OUTPUT_VARIANCE", "OUTPUT_FEATURES", "OUTPUT_UNITS",
                 "OUTPUT_COEFFICIENTS")


@pytest.fixture(scope="module")
def demo_output(tmp_path_factory):
    """``tools/demo.py`` run into a fresh folder (as ``make demo`` does, through qgis_process)."""
    out = tmp_path_factory.mktemp("demo_output")
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "demo.py"), "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


# ---------------------------------------------------------------------------
# the demo project
# ---------------------------------------------------------------------------
def test_demo_project_opens_at_the_styled_map(demo_output, qgis_app):
    from qgis.gui import QgsMapCanvas

    project = QgsProject()
    canvas = QgsMapCanvas()
    canvas.setObjectName("theMapCanvas")  # the canvas QGIS desktop restores the view into
    canvas.resize(1000, 700)
    # as QGIS desktop wires its main canvas: the project CRS, then the saved view
    project.crsChanged.connect(lambda: canvas.setDestinationCrs(project.crs()))
    project.readProject.connect(canvas.readProject)
    assert project.read(str(demo_output / "demo.qgz")), project.error()
    assert project.crs().isValid() and project.crs().authid() == "EPSG:32719"
    fused = project.mapLayersByName("Cu, Zn fused (adaptive)")[0]
    assert fused.isValid()
    # the view opened is the fused map (not an empty canvas at 1:1, not the whole world)
    extent = canvas.extent()
    assert extent.contains(fused.extent().buffered(-1.0))
    assert extent.width() < 3 * fused.extent().width()
    assert 1_000 < canvas.scale() < 100_000
    view = project.viewSettings().defaultViewExtent()
    assert not view.isEmpty() and view.intersects(fused.extent())
    # styled, with the fused map on top of the rasters and the image at the bottom
    assert isinstance(fused.renderer(), QgsSingleBandPseudoColorRenderer)
    assert set(fused.styleManager().styles()) == {"Cu fused (adaptive)", "Zn fused (adaptive)"}
    order = [n.layer().name() for n in project.layerTreeRoot().findLayers()]
    rasters = [name for name in order if isinstance(project.mapLayersByName(name)[0],
                                                    QgsRasterLayer)]
    assert rasters[0] == "Cu, Zn fused (adaptive)"
    assert rasters.index("Cu, Zn fused (adaptive)") < rasters.index("Cu, Zn kriging variance")
    image = project.mapLayersByName(rasters[-1])[0]
    assert "Sentinel-2" in image.name() and isinstance(image.renderer(), QgsMultiBandColorRenderer)
    checked = {layer.name() for layer in project.layerTreeRoot().checkedLayers()}
    assert "Cu, Zn fused (adaptive)" in checked and "Cu, Zn kriging variance" not in checked


def test_every_demo_report_table_has_a_cell_per_heading(demo_output, html_tables):
    reports = sorted(demo_output.glob("*.html"))
    assert {p.name for p in reports} >= {"report.html", "evaluation.html"}
    for report in reports:
        text = report.read_text(encoding="utf-8")
        assert html_tables(text), report.name
        assert not html_tables.shape_errors(text), report.name


# ---------------------------------------------------------------------------
# fusegeochemistry from its dialog
# ---------------------------------------------------------------------------
def dialog_log(dialog):
    from qgis.PyQt.QtWidgets import QTextEdit

    browser = dialog.findChild(QTextEdit, "txtLog")  # the Log tab
    assert browser is not None
    return browser.toPlainText(), browser.toHtml()


def run_from_dialog(alg_id, values, timeout=600):
    """Open ``alg_id``'s dialog, set ``values``, run it as the Run button does; wait, return it.

    The dialog runs the algorithm as a background task and loads the outputs into the
    current project when the task ends (``AlgorithmDialog.finish``).
    """
    import processing

    dialog = processing.createAlgorithmDialog(alg_id, values)
    assert dialog is not None
    dialog.show()
    dialog.runAlgorithm()
    deadline = time.monotonic() + timeout
    # the dialog drops its feedback once the task has ended and the outputs are loaded
    while dialog.feedback is not None and time.monotonic() < deadline:
        QgsApplication.processEvents()
        time.sleep(0.05)
    QgsApplication.processEvents()
    return dialog


@pytest.fixture
def desktop_project(geochem_provider, qgis_iface, demo, monkeypatch):
    """The current project holding the demo image (bottom) and samples, as a user loads them."""
    from qgis.gui import QgsBrowserGuiModel

    browser = QgsBrowserGuiModel()  # pytest-qgis' iface has none (or a mock): the dialog asks
    monkeypatch.setattr(qgis_iface, "browserModel", lambda: browser, raising=False)
    project = QgsProject.instance()
    project.clear()
    image = QgsRasterLayer(str(demo / "sentinel2.tif"), "sentinel2")
    samples = QgsVectorLayer(f"{demo / 'samples.gpkg'}|layername=samples", "samples", "ogr")
    assert image.isValid() and samples.isValid()
    project.addMapLayers([image, samples])
    yield project, image, samples
    project.clear()


@pytest.mark.parametrize("choices", [
    {},  # the defaults the dialog shows (adaptive)
    {"MODE": 0, "REGRESSION": 1, "FEATURES": 0, "N_CLUSTERS": 4},  # the paper's local chain
], ids=["defaults", "paper-local"])
def test_fuse_from_the_dialog_with_temporary_intermediates(desktop_project, choices):
    project, image, samples = desktop_project
    values = {"SAMPLES": samples.id(), "FIELD": ["Cu", "Zn"], "IMAGE": image.id(), **choices,
              "OUTPUT": QgsProcessing.TEMPORARY_OUTPUT}
    values.update({key: QgsProcessing.TEMPORARY_OUTPUT for key in INTERMEDIATES})
    before = set(project.mapLayers())
    dialog = run_from_dialog(FUSE, values)
    text, html = dialog_log(dialog)
    try:
        assert dialog.wasExecuted(), text[-3000:]
        assert "not correctly generated" not in text, text[-3000:]
        assert "No unit raster" not in text or not choices
        assert "color:#ff0000" not in html.replace(" ", "").lower()  # nothing reported in red
        loaded = [project.mapLayer(i) for i in set(project.mapLayers()) - before]
        names = {layer.name(): layer for layer in loaded}
        labels = {d.description() for d in dialog.algorithm().destinationParameterDefinitions()}
        assert not set(names) & labels, "a layer named after a parameter label: not styled"
        mode = "adaptive" if not choices else "local, paper"
        fused = names[f"Fused geochemistry (Cu, Zn; {mode})"]
        assert set(fused.styleManager().styles()) >= {f"Cu fused ({mode})",
                                                      f"Zn fused ({mode})"}
        kinds = {"kriged": QgsSingleBandPseudoColorRenderer,
                 "kriging variance": QgsSingleBandPseudoColorRenderer,
                 "Fusion image features": QgsSingleBandGrayRenderer}
        if choices:
            kinds["Geological units (K-means)"] = QgsPalettedRasterRenderer
        for suffix, renderer in kinds.items():
            match = [layer for name, layer in names.items() if name.endswith(suffix)]
            assert len(match) == 1, (suffix, sorted(names))
            assert isinstance(match[0].renderer(), renderer), suffix
        assert any(isinstance(layer, QgsVectorLayer) for layer in loaded)  # coefficients
        expected = 5 + bool(choices)  # fused, kriged, variance, features, coefficients (+ units)
        assert len(loaded) == expected, sorted(names)
        order = [n.layer().id() for n in project.layerTreeRoot().findLayers()]
        variance = next(layer for name, layer in names.items() if name.endswith("variance"))
        assert order.index(fused.id()) < order.index(variance.id()) < order.index(image.id())
    finally:
        dialog.close()


def test_the_dialog_shows_first_what_a_user_must_decide(geochem_provider):
    alg = QgsApplication.processingRegistry().createAlgorithmById(FUSE)
    basic = [p.name() for p in alg.parameterDefinitions()
             if not p.flags() & QgsProcessingParameterDefinition.Flag.FlagAdvanced
             and not p.isDestination()]
    assert basic[:4] == ["SAMPLES", "FIELD", "IMAGE", "MODE"]
    for name in ("REGRESSION", "N_CLUSTERS", "LEVELS"):
        definition = alg.parameterDefinition(name)
        # what applies only to some modes says so, or is folded away
        assert ("paper" in definition.description().lower()
                or "local" in definition.description().lower()
                or definition.flags() & QgsProcessingParameterDefinition.Flag.FlagAdvanced), name
    assert "paper" in alg.parameterDefinition("LEVELS").description().lower()


# ---------------------------------------------------------------------------
# the model and the help texts
# ---------------------------------------------------------------------------
def test_the_shipped_model_loads_and_validates(geochem_provider):
    alg = QgsApplication.processingRegistry().createAlgorithmById("geochemfusion:paper_fusion")
    assert alg is not None
    ok, issues = alg.validate()
    assert ok, issues


def test_every_parameter_of_every_algorithm_has_help(geochem_provider):
    provider = QgsApplication.processingRegistry().providerById(geochem_provider)
    missing = []
    for alg in provider.algorithms():
        if alg.id() == "geochemfusion:paper_fusion":
            continue  # a model: its inputs are the model's
        instance = alg.create()  # as the dialog gets it (keep it: it owns its parameters)
        for definition in instance.parameterDefinitions():
            if len(definition.help().strip()) < 15:
                missing.append(f"{alg.name()}:{definition.name()}")
    assert not missing


# ---------------------------------------------------------------------------
# the documentation's pictures
# ---------------------------------------------------------------------------
PICTURES = ("docs/demo_map.png", "docs/report_page.png", "docs/fusegeochemistry_dialog.png")


def test_the_readme_shows_the_pictures_make_pictures_makes():
    import re

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    shown = set(re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", readme))
    assert shown == set(PICTURES)
    for picture in PICTURES:
        assert (REPO / picture).stat().st_size > 10_000, picture


def test_the_dialog_picture_matches_the_dialog(geochem_provider):
    """``docs/fusegeochemistry_dialog.json`` records what the picture shows (``make pictures``
    writes both): labels, defaults, order and folding of the parameters must be the code's."""
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location(
        "screenshot_dialog", REPO / "tools" / "screenshot_dialog.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    record = json.loads((REPO / "docs" / "fusegeochemistry_dialog.json").read_text("utf-8"))
    alg = QgsApplication.processingRegistry().createAlgorithmById(record["algorithm"])
    assert tool.dialog_record(alg) == record["parameters"], (
        "the fusegeochemistry dialog changed since docs/fusegeochemistry_dialog.png was made: "
        "run `make pictures`")


@pytest.mark.parametrize("choices, clusters", [
    ({}, False),  # adaptive, global regression: no units used
    ({"MODE": 1}, False),  # coherent, global
    ({"REGRESSION": 1, "N_CLUSTERS": 3}, True),  # adaptive with one trend per unit
], ids=["adaptive-global", "coherent-global", "adaptive-local"])
def test_kmeans_runs_only_when_the_run_uses_units(run_alg, demo, tmp_path, choices, clusters):
    from qgis.core import QgsProcessingFeedback

    lines = []

    class Log(QgsProcessingFeedback):
        def pushInfo(self, info):  # noqa: N802 (QGIS API name)
            lines.append(info)

        def setProgressText(self, text):  # noqa: N802 (QGIS API name)
            lines.append(text)

    run_alg("fusegeochemistry", {
        "SAMPLES": f"{demo}/samples.gpkg|layername=samples", "FIELD": ["Cu"],
        "IMAGE": str(demo / "sentinel2.tif"), **choices, "OUTPUT": str(tmp_path / "f.tif")},
        feedback=Log())
    assert any("K-means" in line for line in lines) == clusters, lines
