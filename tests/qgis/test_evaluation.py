"""``evaluatefusion`` and ``crossvalidatefusion`` through processing.run, against core.evaluation."""

import math

import numpy as np
import pytest
from osgeo import ogr, osr
from qgis.core import QgsApplication, QgsProcessingException, QgsProcessingFeedback

from geochem_fusion.core import evaluation as ev
from geochem_fusion.core.grid import Grid
from geochem_fusion.core.resample import resample_cubic

X0, Y0, CELL = 300_000.0, 7_000_000.0, 10.0  # the synthetic grid of conftest.write_geotiff
GRID = Grid(X0, Y0, CELL, CELL, 50, 40)
METHODS = ["kriging alone", "regression kriging", "default", "paper global", "coherent global"]


class Log(QgsProcessingFeedback):
    def __init__(self):
        super().__init__()
        self.infos = []

    def pushInfo(self, info):
        self.infos.append(info)
        super().pushInfo(info)


def table_rows(path):
    ds = ogr.Open(str(path))  # keep: the layer dies with its dataset
    return [feat.items() for feat in ds.GetLayer(0)]


def assert_same(value, expected):
    if isinstance(expected, float) and math.isnan(expected):
        assert value is None or math.isnan(value)
    else:
        assert value == pytest.approx(expected, rel=1e-9, abs=1e-12)


def to_lonlat(x, y):
    """UTM 19S -> WGS 84 longitude, latitude (points given in another CRS)."""
    src, dst = osr.SpatialReference(), osr.SpatialReference()
    src.ImportFromEPSG(32719)
    dst.ImportFromEPSG(4326)
    dst.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    src.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    t = osr.CoordinateTransformation(src, dst)
    return np.array([t.TransformPoint(float(a), float(b))[:2] for a, b in zip(x, y)])


@pytest.fixture
def scene(make_raster, make_points):
    """A truth, two fused layers on its grid, a coarser one, points and occurrences."""
    from scipy import ndimage

    rng = np.random.default_rng(0)
    truth = 30 + 40 * ndimage.gaussian_filter(rng.normal(size=(40, 50)), 3.0)
    good = truth + rng.normal(scale=1.0, size=truth.shape)
    coarse = truth.reshape(20, 2, 25, 2).mean(axis=(1, 3))
    paths = {
        "truth": make_raster("truth.tif", truth, descriptions=["Cu truth"]),
        "fused": make_raster("fused.tif", np.stack([good, truth + 3.0]),
                             descriptions=["Cu good", "Cu shifted"]),
        "coarse": make_raster("coarse.tif", coarse, cell=20.0, descriptions=["Cu coarse"]),
    }
    ref_xy = np.column_stack([rng.uniform(X0 + 5, X0 + 495, 40), rng.uniform(Y0 - 395, Y0 - 5, 40)])
    ref_v = ev.sample_layer(truth, GRID, ref_xy[:, 0], ref_xy[:, 1]) + rng.normal(size=40)
    side_x, side_y = np.meshgrid(np.arange(25, 500, 50.0), np.arange(25, 400, 50.0))
    in_xy = np.column_stack([X0 + side_x.ravel(), Y0 - side_y.ravel()])
    in_v = ev.sample_layer(truth, GRID, in_xy[:, 0], in_xy[:, 1])
    top = np.argsort(truth, axis=None)[-4:]
    rows, cols = np.unravel_index(top, truth.shape)
    occ_xy = np.column_stack([GRID.x_centers()[cols], GRID.y_centers()[rows]])
    paths.update(
        reference=make_points("reference.gpkg", ref_xy, {"Cu": ref_v}),
        input=make_points("input.gpkg", in_xy, {"Cu": in_v}),
        occurrences=make_points("occ.gpkg", to_lonlat(*occ_xy.T), {}, epsg=4326,
                                layer="occurrences"))
    points = {"reference": (ref_xy[:, 0], ref_xy[:, 1], ref_v),
              "input": (in_xy[:, 0], in_xy[:, 1], in_v), "occurrences": tuple(occ_xy.T)}
    return paths, points


def test_algorithms_are_registered_in_the_evaluation_group(geochem_provider):
    registry = QgsApplication.processingRegistry()
    for alg_id in ("evaluatefusion", "crossvalidatefusion"):
        alg = registry.createAlgorithmById(f"geochemfusion:{alg_id}")
        assert alg is not None, alg_id
        assert alg.group() == "Evaluation" and alg.shortHelpString()


def test_evaluate_fusion_table_equals_the_core(run_alg, scene, read_raster, tmp_path):
    paths, points = scene
    table, report = tmp_path / "metrics.gpkg", tmp_path / "evaluation.html"
    result = run_alg("evaluatefusion", {
        "FUSED": [paths["fused"], paths["coarse"]], "REFERENCE_SAMPLES": paths["reference"],
        "REFERENCE_FIELD": "Cu", "REFERENCE_RASTER": paths["truth"],
        "INPUT_SAMPLES": paths["input"], "INPUT_FIELD": "Cu",
        "OCCURRENCES": paths["occurrences"], "PERCENTILES": "90,97.5",
        "OUTPUT_TABLE": str(table), "OUTPUT_REPORT": str(report)})
    truth = read_raster(paths["truth"]).data[0]
    fused = read_raster(paths["fused"]).data
    coarse = read_raster(paths["coarse"]).data[0]
    # the coarser layer is compared on the finest layer's grid (cubic convolution)
    coarse_grid = Grid(X0, Y0, 20.0, 20.0, 25, 20)
    layers = {"Cu good": fused[0], "Cu shifted": fused[1],
              "Cu coarse": resample_cubic(coarse, coarse_grid, GRID)}
    rows = table_rows(result["OUTPUT_TABLE"])
    assert [r["layer"] for r in rows] == list(layers)
    for row in rows:
        expected = ev.evaluate_layer(
            layers[row["layer"]], GRID, reference_points=points["reference"],
            reference_raster=(truth, GRID), input_points=points["input"],
            occurrences=points["occurrences"], percentiles=(90, 97.5))
        assert {k for k in row if k not in ("fid", "layer")} == set(expected)
        for key, value in expected.items():
            assert_same(row[key], value)
    # known cases: the shifted truth is off by 3 everywhere; the occurrences (given in
    # longitude/latitude, reprojected) sit on the truth's 4 highest pixels
    shifted = next(r for r in rows if r["layer"] == "Cu shifted")
    assert shifted["bias_raster"] == pytest.approx(3.0, abs=1e-4)  # float32 storage
    assert shifted["cc_raster"] == pytest.approx(1.0, abs=1e-6)
    assert shifted["n_occurrences"] == 4 and shifted["auc"] > 0.99
    text = report.read_text(encoding="utf-8")
    assert "<img" in text and "Success-rate curves" in text and "Cu coarse" in text


def test_evaluate_fusion_band_filter_and_input_raster(run_alg, scene, read_raster, tmp_path):
    paths, _ = scene
    result = run_alg("evaluatefusion", {
        "FUSED": [paths["fused"]], "BAND_FILTER": "shifted",
        "INPUT_GEOCHEM": paths["coarse"], "OUTPUT_TABLE": str(tmp_path / "m.gpkg")})
    rows = table_rows(result["OUTPUT_TABLE"])
    assert [r["layer"] for r in rows] == ["Cu shifted"]
    # the shifted truth averaged over the coarse (2 x 2 mean) cells is the coarse layer + 3
    assert rows[0]["wald_bias"] == pytest.approx(3.0, abs=1e-4)
    assert rows[0]["wald_support"] == pytest.approx(20.0)
    assert rows[0]["wald_cc"] == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(QgsProcessingException, match="no band name contains 'Zn'"):
        run_alg("evaluatefusion", {"FUSED": [paths["fused"]], "BAND_FILTER": "Zn",
                                   "INPUT_GEOCHEM": paths["coarse"],
                                   "OUTPUT_TABLE": str(tmp_path / "m2.gpkg")})


def test_evaluate_fusion_without_anything_to_compare_says_what_to_give(run_alg, scene, tmp_path):
    paths, _ = scene
    with pytest.raises(QgsProcessingException, match="give at least one of REFERENCE_SAMPLES"):
        run_alg("evaluatefusion", {"FUSED": [paths["fused"]],
                                   "OUTPUT_TABLE": str(tmp_path / "m.gpkg")})
    with pytest.raises(QgsProcessingException, match="without REFERENCE_FIELD"):
        run_alg("evaluatefusion", {"FUSED": [paths["fused"]],
                                   "REFERENCE_SAMPLES": paths["reference"],
                                   "OUTPUT_TABLE": str(tmp_path / "m.gpkg")})
    assert not (tmp_path / "m.gpkg").exists()


def test_crossvalidate_fusion_on_the_demo_data(run_alg, demo, tmp_path):
    from geochem_fusion.algorithms.crossvalidate_fusion import HELPS_MARGIN

    log = Log()
    report = tmp_path / "cv.html"
    result = run_alg("crossvalidatefusion", {
        "SAMPLES": f"{demo}/samples.gpkg|layername=samples", "FIELD": "Cu",
        "IMAGE": str(demo / "sentinel2.tif"), "N_FOLDS": 3,
        "OUTPUT_TABLE": str(tmp_path / "cv.gpkg"), "OUTPUT_REPORT": str(report)}, feedback=log)
    rows = {r["method"]: r for r in table_rows(result["OUTPUT_TABLE"])}
    assert list(rows) == METHODS
    for row in rows.values():
        assert row["n"] == 150 and row["element"] == "Cu"  # every demo sample is held out once
        assert row["rmse"] > 0 and -1 <= row["cc"] <= 1
    assert rows["kriging alone"]["rmse vs kriging alone (%)"] == pytest.approx(0.0)
    # the sentence in the log follows the table
    helps = rows["default"]["rmse"] < (1 - HELPS_MARGIN) * rows["kriging alone"]["rmse"]
    sentence = "The image helps here" if helps else "The image does not help here"
    assert any(sentence in line for line in log.infos)
    text = report.read_text(encoding="utf-8")
    assert "Does the image help?" in text and "<img" in text
