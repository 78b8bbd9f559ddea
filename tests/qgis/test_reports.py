"""The HTML reports read well: rectangular tables, readable parameters, units, plain numbers."""

import re

import pytest

from geochem_fusion.algorithms.report import table_html


def test_tables_of_rows_with_different_keys_stay_rectangular(html_tables):
    rows = [{"feature set": "-", "cv rmse": 16.3},
            {"feature set": "bands", "window": 5, "cv rmse": 14.3, "loo rmse": 10.4}]
    text = table_html(rows, "candidates")
    assert not html_tables.shape_errors(text)
    (table,) = html_tables(text)
    assert [c[1] for c in table["rows"][0]] == ["feature set", "cv rmse", "window", "loo rmse"]
    assert [c[1] for c in table["rows"][1]] == ["-", "16.3", "–", "–"]
    assert table["in_div"]  # wide tables scroll inside the page


@pytest.fixture(scope="module")
def fusion_report(run_alg, demo, tmp_path_factory):
    """The default (adaptive) fusion's report for Cu and Zn, and the run's log."""
    from qgis.core import QgsProcessingFeedback

    class Log(QgsProcessingFeedback):
        def __init__(self):
            super().__init__()
            self.lines = []

        def pushInfo(self, info):  # noqa: N802 (QGIS API name)
            self.lines.append(info)

    folder = tmp_path_factory.mktemp("report")
    feedback = Log()
    run_alg("fusegeochemistry", {
        "SAMPLES": f"{demo}/samples.gpkg|layername=samples", "FIELD": ["Cu", "Zn"],
        "IMAGE": str(demo / "sentinel2.tif"), "OUTPUT": str(folder / "fused.tif"),
        "OUTPUT_KRIGED": str(folder / "kriged.tif"),
        "OUTPUT_REPORT": str(folder / "report.html")}, feedback=feedback)
    return (folder / "report.html").read_text(encoding="utf-8"), feedback.lines


def test_fusion_report_tables_have_a_cell_per_heading(fusion_report, html_tables):
    text, _ = fusion_report
    assert not html_tables.shape_errors(text)
    assert all(t["in_div"] for t in html_tables(text))


def test_fusion_report_lists_readable_parameters_that_apply(fusion_report, html_tables):
    text, _ = fusion_report
    params = {row[0][1]: row[1][1] for row in html_tables(text)[0]["rows"][1:]}
    assert params["fusion mode"] == "adaptive" and params["image features"] == "all bands"
    for raw in ("band_map", "pcs", "sensor", "random_state", "log_transform", "n_clusters"):
        assert raw not in params, raw
    assert "None" not in params.values()
    assert "ppm" in params["concentrations"]


def test_fusion_report_numbers_and_units(fusion_report, html_tables):
    text, _ = fusion_report
    cells = [c[1] for t in html_tables(text) for row in t["rows"] for c in row]
    assert not [c for c in cells if re.fullmatch(r"-?[\d.]+e-\d+", c)]  # no 2.129e-18 nugget
    headings = [c[1] for t in html_tables(text) for c in t["rows"][0]]
    assert "sill (ppm²)" in headings and "nugget (ppm²)" in headings
    assert "RMSE (ppm)" in headings


def test_adaptive_choice_caption_states_the_rule(fusion_report, html_tables):
    text, _ = fusion_report
    tables = [t for t in html_tables(text) if "used" in [c[1] for c in t["rows"][0]]]
    assert len(tables) == 2  # Cu and Zn
    for table in tables:
        caption = table["caption"]
        assert "lowest leave-one-out RMSE" in caption and "spatial block cross-validation" in caption
        column = [c[1] for c in table["rows"][0]].index("used")
        used = [row for row in table["rows"][1:] if row[column][1] == "✔"]
        assert len(used) == 1


def test_the_log_has_no_python_dicts(run_alg, demo, tmp_path):
    from qgis.core import QgsProcessingFeedback

    lines = []

    class Log(QgsProcessingFeedback):
        def pushInfo(self, info):  # noqa: N802 (QGIS API name)
            lines.append(info)

    run_alg("krigesamples", {"SAMPLES": f"{demo}/samples.gpkg|layername=samples", "FIELD": "Cu",
                             "OUTPUT": str(tmp_path / "cu.tif")}, feedback=Log())
    variogram = [line for line in lines if line.startswith("Variogram:")]
    assert variogram and "sill (ppm²)" in variogram[0]
    ours = [line for line in lines if not line.startswith("Results:")]  # Processing's own line
    assert not [line for line in ours if "{'" in line or "':" in line]


def test_band_map_is_logged_as_the_user_types_it():
    from geochem_fusion.algorithms.params import format_band_map, parse_band_map

    band_map = {"B2": 0, "B3": 1, "B11": 4}
    assert format_band_map(band_map) == "B2=1, B3=2, B11=5"
    assert parse_band_map(format_band_map(band_map)) == band_map
