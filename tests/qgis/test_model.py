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
