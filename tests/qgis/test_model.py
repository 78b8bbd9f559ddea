"""The shipped graphical model runs headless and matches the same chain of algorithms."""

from pathlib import Path

import numpy as np
from qgis.core import QgsApplication, QgsProcessingModelAlgorithm

MODEL = Path(__file__).resolve().parents[2] / "models" / "paper_fusion.model3"


def test_model_file_loads_with_the_paper_chain():
    model = QgsProcessingModelAlgorithm()
    assert model.fromFile(str(MODEL))
    children = {c.algorithmId() for c in model.childAlgorithms().values()}
    assert children == {"geochemfusion:krigesamples", "geochemfusion:principalcomponents",
                        "geochemfusion:kmeansunits", "geochemfusion:regressionfusion"}
    assert {p.name() for p in model.parameterDefinitions()} >= {"samples", "element", "image",
                                                                 "units"}


def test_model_is_listed_by_the_provider(geochem_provider):
    alg = QgsApplication.processingRegistry().algorithmById("geochemfusion:paper_fusion")
    assert alg is not None


def test_model_runs_headless(run_alg, demo, tmp_path, read_raster):
    out = tmp_path / "model_fused.tif"
    result = run_alg("paper_fusion", {
        "samples": f"{demo / 'samples.gpkg'}|layername=samples", "element": "Cu",
        "image": str(demo / "sentinel2.tif"), "units": 4, "fusion:Fused": str(out)})
    assert Path(result["fusion:Fused"]) == out and out.exists()
    data = read_raster(out).data[0]
    assert np.isfinite(data).mean() > 0.99


def shipped_model():
    alg = QgsApplication.processingRegistry().algorithmById("geochemfusion:paper_fusion")
    assert alg is not None
    return alg


def test_model_is_valid_in_the_model_designer(geochem_provider):
    """What *Validate Model* checks: every step has all its mandatory parameters (rerun
    tools/build_model.py when an algorithm gains one)."""
    ok, issues = shipped_model().create().validate()  # a fresh copy, as the designer opens
    assert ok, issues
    file_model = QgsProcessingModelAlgorithm()
    assert file_model.fromFile(str(MODEL))
    assert file_model.validate()[0]


def test_model_shows_a_readable_name_in_the_fusion_group(geochem_provider):
    alg = shipped_model()
    fuse = QgsApplication.processingRegistry().algorithmById("geochemfusion:fusegeochemistry")
    assert alg.displayName().startswith("Paper fusion")
    assert alg.groupId() == fuse.groupId() and alg.group() == fuse.group()
    groups = {(a.groupId(), a.group()) for a in
              QgsApplication.processingRegistry().providerById("geochemfusion").algorithms()}
    assert len({name for _, name in groups}) == len(groups)  # one group id per group name
    copy = alg.create()  # what Processing runs and the dialog shows
    assert copy.id() == "geochemfusion:paper_fusion" and copy.displayName() == alg.displayName()


def test_model_lists_its_inputs_in_order_with_labelled_outputs(geochem_provider):
    alg = shipped_model().create()
    names = [p.name() for p in alg.parameterDefinitions() if not p.isDestination()]
    assert names == ["samples", "element", "image", "units"]
    for definition in alg.destinationParameterDefinitions():
        assert definition.description().strip(), definition.name()
