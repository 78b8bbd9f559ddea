"""Variogram control, the fitted model as outputs, and anomaly thresholds (issue 13)."""

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsProcessingException

from .conftest import X0, Y0


def _anisotropic_points(n=300, seed=0, azimuth=45.0, ratio=3.0):
    from geochem_fusion.core.kriging import Anisotropy

    rng = np.random.default_rng(seed)
    x = X0 + rng.uniform(0, 5000, n)
    y = Y0 - rng.uniform(0, 5000, n)
    xs, ys = Anisotropy(azimuth, ratio).transform(x - x.mean(), y - y.mean())
    h = np.hypot(xs[:, None] - xs[None], ys[:, None] - ys[None])
    cov = np.exp(-3 * h / 2000.0) + 1e-10 * np.eye(n)
    z = 50 + 10 * (np.linalg.cholesky(cov) @ rng.standard_normal(n))
    return x, y, z


def test_krige_samples_returns_the_variogram_and_uses_given_parameters(
        run_alg, make_points, read_raster, tmp_path):
    from geochem_fusion.core.kriging import krige

    x, y, z = _anisotropic_points()
    source = make_points("aniso.gpkg", np.column_stack([x, y]), {"Cu": z})
    report = tmp_path / "k.html"
    result = run_alg("krigesamples", {
        "SAMPLES": source, "FIELD": "Cu", "VARIOGRAM": 1, "CELL_SIZE": 100.0,
        "OUTPUT": str(tmp_path / "cu.tif"), "OUTPUT_REPORT": str(report)})
    expected = krige(x, y, z, variogram="exponential", anisotropy="auto", cell_size=100.0)
    assert result["VARIOGRAM_MODEL"] == "exponential"
    assert expected.anisotropy is not None
    assert result["ANISOTROPY_ANGLE"] == pytest.approx(expected.anisotropy.azimuth)
    assert result["ANISOTROPY_RATIO"] == pytest.approx(expected.anisotropy.ratio)
    for key in ("NUGGET", "SILL", "RANGE"):
        assert result[key] == pytest.approx(expected.variogram_parameters[key.lower()])
    assert result["LOO_RMSE"] == pytest.approx(expected.loo["rmse"])
    text = report.read_text(encoding="utf-8")
    assert "directional variograms" in text and "anisotropy kept" in text
    assert "pairs per lag" in text

    # the returned numbers fed back as manual settings give the same grid
    again = run_alg("krigesamples", {
        "SAMPLES": source, "FIELD": "Cu", "VARIOGRAM": 1, "CELL_SIZE": 100.0,
        "NUGGET": result["NUGGET"], "SILL": result["SILL"], "RANGE": result["RANGE"],
        "ANISOTROPY": 2, "ANISOTROPY_ANGLE": result["ANISOTROPY_ANGLE"],
        "ANISOTROPY_RATIO": result["ANISOTROPY_RATIO"], "OUTPUT": str(tmp_path / "cu2.tif")})
    np.testing.assert_allclose(read_raster(again["OUTPUT"]).data,
                               read_raster(result["OUTPUT"]).data, rtol=1e-5, equal_nan=True)
    isotropic = run_alg("krigesamples", {
        "SAMPLES": source, "FIELD": "Cu", "VARIOGRAM": 1, "ANISOTROPY": 0,
        "OUTPUT": str(tmp_path / "cu3.tif")})
    assert isotropic["ANISOTROPY_RATIO"] == 1.0


def test_krige_samples_refuses_incomplete_variogram_parameters(run_alg, make_points, tmp_path):
    x, y, z = _anisotropic_points(60)
    source = make_points("p.gpkg", np.column_stack([x, y]), {"Cu": z})
    with pytest.raises(QgsProcessingException, match="missing: range"):
        run_alg("krigesamples", {"SAMPLES": source, "FIELD": "Cu", "VARIOGRAM": 0,
                                 "NUGGET": 0.0, "SILL": 1.0, "OUTPUT": str(tmp_path / "o.tif")})
    with pytest.raises(QgsProcessingException, match="instead of auto"):
        run_alg("krigesamples", {"SAMPLES": source, "FIELD": "Cu", "NUGGET": 0.0, "SILL": 1.0,
                                 "RANGE": 500.0, "OUTPUT": str(tmp_path / "o.tif")})


def test_anomaly_thresholds_classifies_and_reports(run_alg, make_raster, read_raster, tmp_path):
    from geochem_fusion.core.thresholds import anomaly_thresholds, classify

    rng = np.random.default_rng(1)
    u = rng.uniform(size=(120, 150))
    s = (100 / 10.0) ** -0.5
    values = np.where(u >= s, 10 * u ** -2.0, 100 * (u / s) ** -0.5)
    values[:2] = np.nan
    src = make_raster("cu.tif", values[None], nodata=np.nan, descriptions=["Cu fused"])
    report = tmp_path / "t.html"
    result = run_alg("anomalythresholds", {
        "INPUT": src, "OUTPUT": str(tmp_path / "classes.tif"),
        "OUTPUT_TABLE": str(tmp_path / "t.csv"), "OUTPUT_REPORT": str(report)})
    written = read_raster(src).data[0]
    expected = anomaly_thresholds(written, cell_area=100.0)
    classes = gdal.Open(result["OUTPUT"]).ReadAsArray()
    assert np.array_equal(classes, classify(written, expected.ca.thresholds))
    assert (classes[:2] == 255).all()
    assert gdal.Open(result["OUTPUT"]).GetMetadataItem("CLASS_LABELS").startswith("background")
    assert "concentration-area" in report.read_text(encoding="utf-8")
    by_mad = run_alg("anomalythresholds", {"INPUT": src, "CLASSIFY": 1,
                                           "OUTPUT": str(tmp_path / "mad.tif")})
    mad = gdal.Open(by_mad["OUTPUT"]).ReadAsArray()
    assert set(np.unique(mad)) == {0, 1, 255}
