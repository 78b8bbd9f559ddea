"""Every algorithm through ``processing.run`` headless equals the core function it wraps.

Each test reads the algorithm's input with GDAL/OGR, calls the core function
with the settings the algorithm documents (its defaults), and compares.

Tolerance: outputs are float32 GeoTIFFs of float64 core results.  Rounding
to float32 changes a value by at most 2**-24 ≈ 6e-8 of itself, so
``rtol=1e-6`` is ample; ``atol`` = 1e-6 of the largest magnitude covers
values near zero (high-frequency layers, components), where float64 sums
done in another order may differ by a few ulps of the data scale.  Integer
outputs (units) must match exactly.
"""

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, ogr
from qgis.core import QgsProcessingException

from geochem_fusion.core.grid import Grid

SENTINEL2_MAP = {"B2": 0, "B3": 1, "B4": 2, "B8": 3, "B11": 4, "B12": 5}  # demo band order


def assert_matches(actual, expected):
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape
    scale = np.nanmax(np.abs(expected))
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-6 * scale, equal_nan=True)


def grid_of(raster):
    return Grid.from_gdal(raster.geotransform, raster.data.shape)


# ---------------------------------------------------------------------------
# single steps on small synthetic rasters
# ---------------------------------------------------------------------------
def test_laplacian_decomposition(run_alg, make_raster, stack, read_raster, check_output,
                                 tmp_path):
    from geochem_fusion.core.pyramid import decompose

    src = make_raster("img.tif", stack(3, 48, 64), nodata=np.nan,
                      descriptions=["red", "nir", "swir"])
    image = read_raster(src)
    result = run_alg("laplaciandecomposition", {
        "INPUT": src, "LEVELS": 2, "OUTPUT_LOW": str(tmp_path / "low.tif"),
        "OUTPUT_HIGH": str(tmp_path / "high.tif")})
    low, high = read_raster(result["OUTPUT_LOW"]), read_raster(result["OUTPUT_HIGH"])
    exp_low, exp_high = decompose(image.data, 2)
    assert_matches(low.data, exp_low)
    assert_matches(high.data, exp_high)
    # X = X_L + X_H: an independent check of the written layers (float32 rounding of both)
    np.testing.assert_allclose(low.data + high.data, image.data, atol=1e-6, equal_nan=True)
    assert np.isnan(low.data[:, 6, 8]).all()  # the nodata hole stays nodata
    assert low.descriptions == ["red low (k=2)", "nir low (k=2)", "swir low (k=2)"]
    assert grid_of(low) == grid_of(image)
    for path in result["OUTPUT_LOW"], result["OUTPUT_HIGH"]:
        check_output(path)


def test_laplacian_decomposition_of_a_ramp(run_alg, make_raster, read_raster, tmp_path):
    # independent of core: the Burt & Adelson kernel is symmetric and sums to 1, so REDUCE and
    # EXPAND reproduce a linear ramp away from the borders: low = ramp, high = 0 there
    rr, cc = np.mgrid[0:48, 0:64]
    ramp = (0.1 + 0.002 * rr + 0.003 * cc)[None]
    src = make_raster("ramp.tif", ramp, nodata=np.nan)
    result = run_alg("laplaciandecomposition", {
        "INPUT": src, "LEVELS": 2, "OUTPUT_LOW": str(tmp_path / "low.tif"),
        "OUTPUT_HIGH": str(tmp_path / "high.tif")})
    low, high = read_raster(result["OUTPUT_LOW"]), read_raster(result["OUTPUT_HIGH"])
    inner = (slice(None), slice(12, -12), slice(12, -12))  # the reach of 2 levels is 12 px
    np.testing.assert_allclose(low.data[inner], ramp[inner], rtol=1e-6)
    np.testing.assert_allclose(high.data[inner], 0.0, atol=1e-6)
    # near the border the mirror makes low differ from the ramp: there is something to pin
    assert np.abs(high.data[0, 0, :]).max() > 1e-4


def test_laplacian_automatic_levels(run_alg, make_raster, stack, tmp_path):
    src = make_raster("img.tif", stack(1, 48, 64), nodata=np.nan)
    result = run_alg("laplaciandecomposition", {
        "INPUT": src, "LEVELS": 0, "SPACING": 80.0, "OUTPUT_LOW": str(tmp_path / "low.tif"),
        "OUTPUT_HIGH": str(tmp_path / "high.tif")})
    assert result["LEVELS"] == 3  # round(log2(80 m / 10 m))


def test_laplacian_automatic_levels_are_capped_by_the_raster(run_alg, make_raster, stack,
                                                             tmp_path):
    # the one depth rule (core.pyramid.resolve_levels): round(log2(10 km / 10 m)) = 10 halvings,
    # capped at the 3 a 12 x 16 raster allows, as in the fusion algorithms
    src = make_raster("img.tif", stack(1, 12, 16), nodata=np.nan)
    result = run_alg("laplaciandecomposition", {
        "INPUT": src, "LEVELS": 0, "SPACING": 10_000.0, "OUTPUT_LOW": str(tmp_path / "low.tif"),
        "OUTPUT_HIGH": str(tmp_path / "high.tif")})
    assert result["LEVELS"] == 3


def test_laplacian_levels_or_spacing_required(run_alg, make_raster, stack, tmp_path):
    src = make_raster("img.tif", stack(1, 48, 64), nodata=np.nan)
    with pytest.raises(QgsProcessingException, match="sample spacing"):
        run_alg("laplaciandecomposition", {
            "INPUT": src, "LEVELS": 0, "SPACING": 0.0, "OUTPUT_LOW": str(tmp_path / "l.tif"),
            "OUTPUT_HIGH": str(tmp_path / "h.tif")})


def test_principal_components(run_alg, make_raster, stack, read_raster, check_output,
                              tmp_path):
    from geochem_fusion.core.pca import PCA

    names = ["b1", "b2", "b3", "b4"]
    src = make_raster("img.tif", stack(4, 48, 64, seed=3), nodata=np.nan, descriptions=names)
    image = read_raster(src)
    table = tmp_path / "loadings.gpkg"
    result = run_alg("principalcomponents", {
        "INPUT": src, "OUTPUT": str(tmp_path / "pc.tif"), "OUTPUT_TABLE": str(table)})
    out = read_raster(result["OUTPUT"])
    pca = PCA(None, standardize=True).fit(image.data)  # defaults: all components, correlation
    assert_matches(out.data, pca.transform(image.data))
    ratios = pca.explained_variance_ratio_
    assert out.descriptions == [f"PC{i + 1} ({100 * r:.1f} % of variance)"
                                for i, r in enumerate(ratios)]
    assert np.isclose(ratios.sum(), 1.0)
    # independent of core.pca: eigen-decomposition of the correlation matrix of the valid
    # pixels; the shares of variance are its eigenvalues / 4 and each component is the
    # standardized data projected on its eigenvector (up to the sign)
    pixels = image.data.reshape(4, -1)
    pixels = pixels[:, np.isfinite(pixels).all(axis=0)]
    eigval, eigvec = np.linalg.eigh(np.corrcoef(pixels))
    order = np.argsort(eigval)[::-1]
    np.testing.assert_allclose(ratios, eigval[order] / 4, rtol=1e-6)
    z = (pixels - pixels.mean(axis=1, keepdims=True)) / pixels.std(axis=1, keepdims=True)
    scores = out.data.reshape(4, -1)[:, np.isfinite(image.data.reshape(4, -1)).all(axis=0)]
    for k in range(3):  # the last component of 4 correlated bands is tiny: no stable sign
        reference = eigvec[:, order[k]] @ z
        assert abs(np.corrcoef(scores[k], reference)[0, 1]) > 1 - 1e-6
    check_output(result["OUTPUT"])

    expected_rows = pca.loading_table(names)
    ds = ogr.Open(str(table))
    rows = [feat.items() for feat in ds.GetLayer(0)]
    assert [r["band"] for r in rows] == [r["band"] for r in expected_rows]
    for row, expected in zip(rows, expected_rows):
        for key in ("PC1", "PC2", "PC3", "PC4"):
            assert row[key] == pytest.approx(expected[key], rel=1e-9, abs=1e-12)


def test_kmeans_units(run_alg, make_raster, stack, check_output, tmp_path):
    from geochem_fusion.core.clustering import KMeansUnits

    data = stack(3, 48, 64, seed=5)
    src = make_raster("img.tif", data, nodata=np.nan)
    result = run_alg("kmeansunits", {"INPUT": src, "N_CLUSTERS": 3, "SEED": 7,
                                     "OUTPUT": str(tmp_path / "units.tif")})
    ds = gdal.Open(result["OUTPUT"])
    band = ds.GetRasterBand(1)
    labels = band.ReadAsArray()
    assert band.GetNoDataValue() == -1
    assert band.DataType == gdal.GDT_Int16
    image = data.astype(np.float32).astype(np.float64)  # what the algorithm read
    expected = KMeansUnits(3, sample_size=100_000, random_state=7).fit(image).predict(image)
    np.testing.assert_array_equal(labels, expected)
    assert (labels[6, 8] == -1) and set(np.unique(labels)) == {-1, 0, 1, 2}
    check_output(result["OUTPUT"])


@pytest.mark.parametrize("regression", ["global", "local"])
def test_regression_fusion(run_alg, make_raster, stack, read_raster, check_output, tmp_path,
                           regression):
    from geochem_fusion.core.clustering import KMeansUnits
    from geochem_fusion.core.pipeline import fuse_raster
    from geochem_fusion.core.vocabulary import FusionSettings

    feats_path = make_raster("features.tif", stack(2, 48, 64, seed=11), nodata=np.nan,
                             descriptions=["PC2", "ratio"])
    feats = read_raster(feats_path)
    fx0, _, _, fy0, _, _ = feats.geotransform
    nr, nc = 48 // 4 + 4, 64 // 4 + 4  # 40 m cells, two cells of margin on each side
    yy, xx = np.mgrid[0:nr, 0:nc]
    geo_values = 50 + 20 * np.sin(xx / 3.0) + 10 * np.cos(yy / 4.0) + xx
    geo_path = make_raster("cu_kriged.tif", geo_values, x_min=fx0 - 80, y_max=fy0 + 80, cell=40.0,
                           nodata=-9999, descriptions=["Cu kriged"],
                           metadata={"SAMPLE_SPACING": 160.0})
    geo = read_raster(geo_path)
    params = {"GEOCHEM": geo_path, "FEATURES": feats_path,
              "REGRESSION": ["global", "local"].index(regression),  # enum order is public API
              "OUTPUT": str(tmp_path / "fused.tif"),
              "OUTPUT_COEFFICIENTS": str(tmp_path / "coefficients.gpkg")}
    labels = None
    if regression == "local":
        labels = KMeansUnits(3, random_state=0).fit(feats.data).predict(feats.data)
        params["UNITS"] = make_raster("units.tif", labels, nodata=-1, dtype=gdal.GDT_Int16)
    result = run_alg("regressionfusion", params)
    out = read_raster(result["OUTPUT"])
    expected, _, _ = fuse_raster(geo.data[0], grid_of(geo), feats.data, grid_of(feats),
                                 FusionSettings(levels=0, mode="coherent", regression=regression,
                                                n_clusters=5, log_transform=False),
                                 sample_spacing=160.0, labels=labels)
    assert_matches(out.data[0], expected.fused)
    assert out.descriptions == [f"Cu fused ({regression}, coherent)"]
    assert grid_of(out) == grid_of(feats)
    assert np.isnan(out.data[0, 6, 8])  # nodata in the features -> nodata in the fusion
    check_output(result["OUTPUT"])
    ds = ogr.Open(result["OUTPUT_COEFFICIENTS"])  # keep: the layer dies with its dataset
    n_fits = ds.GetLayer(0).GetFeatureCount()
    assert n_fits == (1 if regression == "global" else 1 + 3)  # global fit (+ one per unit)


# ---------------------------------------------------------------------------
# the demo data
# ---------------------------------------------------------------------------
def test_mineral_indices_sentinel2(run_alg, demo, read_raster, check_output, tmp_path):
    from geochem_fusion.core.indices import SENTINEL2_INDICES, compute_indices

    image = read_raster(demo / "sentinel2.tif")
    result = run_alg("mineralindices", {"IMAGE": str(demo / "sentinel2.tif"), "SENSOR": 1,
                                        "OUTPUT": str(tmp_path / "indices.tif")})
    out = read_raster(result["OUTPUT"])
    expected = compute_indices(image.data, SENTINEL2_MAP, sensor="sentinel2")
    assert_matches(out.data, expected.data)
    labels = [ix.label for ix in SENTINEL2_INDICES]  # the demo has every band the table uses
    assert out.descriptions == labels
    assert any(label.startswith("Clay/hydroxyl") for label in out.descriptions)
    # independent of core.indices: the Sentinel-2 ratios written out on the demo's bands
    b = {name: image.data[i].astype(np.float64) for name, i in SENTINEL2_MAP.items()}
    by_hand = {"Ferric iron": b["B4"] / b["B2"], "Ferrous iron": b["B12"] / b["B8"] + b["B3"] / b["B4"],
               "Ferric oxides": b["B11"] / b["B8"], "Gossan": b["B11"] / b["B4"],
               "Ferrous silicates": b["B12"] / b["B11"], "Clay/hydroxyl": b["B11"] / b["B12"]}
    for k, label in enumerate(out.descriptions):
        name = next(n for n in by_hand if label.startswith(n + " "))
        np.testing.assert_allclose(out.data[k], by_hand[name], rtol=1e-6, equal_nan=True)
    check_output(result["OUTPUT"])


@pytest.fixture(scope="module")
def demo_samples(demo, samples_of):
    source = f"{demo}/samples.gpkg|layername=samples"
    return (source, *samples_of(source, ["Cu", "Zn"]))


def test_krige_samples(run_alg, demo_samples, read_raster, check_output, tmp_path):
    from geochem_fusion.core.kriging import krige

    source, x, y, values = demo_samples
    report = tmp_path / "kriging.html"
    result = run_alg("krigesamples", {
        "SAMPLES": source, "FIELD": "Cu", "OUTPUT": str(tmp_path / "cu.tif"),
        "OUTPUT_VARIANCE": str(tmp_path / "cu_var.tif"), "OUTPUT_REPORT": str(report)})
    # defaults: automatic variogram, a quarter of the spacing, the samples' bounding box
    expected = krige(x, y, values["Cu"], variogram="auto", log_transform=False, anisotropy="auto")
    est, var = read_raster(result["OUTPUT"]), read_raster(result["OUTPUT_VARIANCE"])
    assert_matches(est.data[0], expected.estimate)
    assert_matches(var.data[0], expected.variance)
    assert grid_of(est) == expected.grid
    assert est.descriptions == ["Cu kriged"] and var.descriptions == ["Cu kriging variance"]
    assert float(est.metadata["SAMPLE_SPACING"]) == pytest.approx(expected.sample_spacing)
    assert np.nanmin(var.data) >= 0
    # independent of core.kriging's solver: PyKrige with the variogram the algorithm fitted
    # (moving window of 32 samples, as documented) at 25 cells of the output grid
    from pykrige.ok import OrdinaryKriging

    g = grid_of(est)
    rng = np.random.default_rng(0)
    rows, cols = rng.integers(0, g.nrows, 25), rng.integers(0, g.ncols, 25)
    ok = OrdinaryKriging(x, y, values["Cu"], variogram_model=expected.variogram_model,
                         variogram_parameters=dict(expected.variogram_parameters))
    ref_est, ref_var = ok.execute("points", g.x_centers()[cols], g.y_centers()[rows],
                                  backend="loop", n_closest_points=min(32, x.size))
    np.testing.assert_allclose(est.data[0, rows, cols], ref_est, rtol=1e-5)
    np.testing.assert_allclose(var.data[0, rows, cols], ref_var, rtol=1e-4)
    for path in result["OUTPUT"], result["OUTPUT_VARIANCE"]:
        check_output(path)
    assert "Leave-one-out" in report.read_text(encoding="utf-8")


# The pyramid-regression chain with the paper's features, chosen explicitly (enum indices
# are public API): features bands-PC2, mode coherent; the rest are the algorithm's defaults.
PAPER_CHAIN = {"FEATURES": 0, "MODE": 1}


def fuse_expected(demo_samples, image, fields, **settings):
    """core.pipeline.fuse_samples as fusegeochemistry calls it with PAPER_CHAIN."""
    from geochem_fusion.core.pipeline import fuse_samples
    from geochem_fusion.core.vocabulary import FusionSettings

    _, x, y, values = demo_samples
    options = dict(features="bands-pc2", sensor="sentinel2", band_map=None, pcs=[2],
                   band_names=image.descriptions, regression="global", n_clusters=5,
                   mode="coherent", levels=0, log_transform=False, variogram="auto",
                   random_state=0)
    options.update(settings)
    return fuse_samples(x, y, {f: values[f] for f in fields}, image.data, grid_of(image),
                        FusionSettings(**options))


def test_fuse_geochemistry_minimal_parameters(run_alg, demo, demo_samples, read_raster,
                                              check_output, tmp_path):
    result = run_alg("fusegeochemistry", {
        "SAMPLES": demo_samples[0], "FIELD": "Cu", "IMAGE": str(demo / "sentinel2.tif"),
        "OUTPUT": str(tmp_path / "fused.tif")})
    assert set(result) == {"OUTPUT"}
    out = read_raster(result["OUTPUT"])
    assert len(out.descriptions) == 1 and out.descriptions[0].startswith("Cu fused (")
    assert np.isfinite(out.data).mean() > 0.9
    assert grid_of(out) == grid_of(read_raster(demo / "sentinel2.tif"))
    check_output(result["OUTPUT"])


def test_fuse_geochemistry_two_elements(run_alg, demo, demo_samples, read_raster, check_output,
                                        tmp_path):
    image = read_raster(demo / "sentinel2.tif")
    report = tmp_path / "report.html"
    result = run_alg("fusegeochemistry", {
        "SAMPLES": demo_samples[0], "FIELD": ["Cu", "Zn"], "IMAGE": str(demo / "sentinel2.tif"),
        **PAPER_CHAIN, "OUTPUT": str(tmp_path / "fused.tif"), "OUTPUT_REPORT": str(report),
        "OUTPUT_KRIGED": str(tmp_path / "kriged.tif")})
    out = read_raster(result["OUTPUT"])
    assert out.descriptions == ["Cu fused (global, coherent)", "Zn fused (global, coherent)"]
    expected = fuse_expected(demo_samples, image, ["Cu", "Zn"])
    for i, element in enumerate(["Cu", "Zn"]):
        assert_matches(out.data[i], expected.elements[element].fusion.fused)
    kriged = read_raster(result["OUTPUT_KRIGED"])
    assert grid_of(kriged) == expected.kriging_grid
    assert_matches(kriged.data[1], expected.elements["Zn"].kriging.estimate)
    for path in result["OUTPUT"], result["OUTPUT_KRIGED"]:
        check_output(path)
    text = report.read_text(encoding="utf-8")
    assert "Cu: kriging" in text and "Zn: kriging" in text and "<img" in text


def test_fuse_geochemistry_local_regression_units(run_alg, demo, demo_samples, read_raster,
                                                  check_output, tmp_path):
    image = read_raster(demo / "sentinel2.tif")
    result = run_alg("fusegeochemistry", {
        "SAMPLES": demo_samples[0], "FIELD": ["Cu"], "IMAGE": str(demo / "sentinel2.tif"),
        **PAPER_CHAIN, "REGRESSION": 1, "N_CLUSTERS": 4, "OUTPUT": str(tmp_path / "fused.tif"),
        "OUTPUT_UNITS": str(tmp_path / "units.tif")})
    expected = fuse_expected(demo_samples, image, ["Cu"], regression="local", n_clusters=4)
    out = read_raster(result["OUTPUT"])
    assert out.descriptions == ["Cu fused (local, coherent)"]
    assert_matches(out.data[0], expected.elements["Cu"].fusion.fused)
    ds = gdal.Open(result["OUTPUT_UNITS"])  # keep: the band dies with its dataset
    units = ds.GetRasterBand(1)
    assert units.GetNoDataValue() == -1
    np.testing.assert_array_equal(units.ReadAsArray(), expected.units)
    assert set(np.unique(expected.units)) - {-1} == {0, 1, 2, 3}
    for path in result["OUTPUT"], result["OUTPUT_UNITS"]:
        check_output(path)


def test_fuse_geochemistry_default_is_windowed_adaptive_and_equals_the_core(
        run_alg, demo, demo_samples, read_raster, check_output, tmp_path):
    # the default mode reads the image and writes the output block by block; it must equal
    # core.pipeline.fuse_samples (same defaults) on the in-memory arrays
    from geochem_fusion.core.pipeline import fuse_samples
    from geochem_fusion.core.vocabulary import FusionSettings

    image = read_raster(demo / "sentinel2.tif")
    _, x, y, values = demo_samples
    report = tmp_path / "report.html"
    result = run_alg("fusegeochemistry", {
        "SAMPLES": demo_samples[0], "FIELD": ["Cu", "Zn"], "IMAGE": str(demo / "sentinel2.tif"),
        "REGRESSION": 1, "N_CLUSTERS": 4, "OUTPUT": str(tmp_path / "fused.tif"),
        "OUTPUT_UNITS": str(tmp_path / "units.tif"), "OUTPUT_FEATURES": str(tmp_path / "f.tif"),
        "OUTPUT_COEFFICIENTS": str(tmp_path / "coef.csv"), "OUTPUT_REPORT": str(report)})
    expected = fuse_samples(x, y, {"Cu": values["Cu"], "Zn": values["Zn"]}, image.data,
                            grid_of(image), FusionSettings(band_names=image.descriptions,
                                                           regression="local", n_clusters=4))
    out = read_raster(result["OUTPUT"])
    assert out.descriptions == ["Cu fused (adaptive)", "Zn fused (adaptive)"]
    for i, element in enumerate(["Cu", "Zn"]):  # negative concentrations are clipped to 0
        assert_matches(out.data[i], np.maximum(expected.elements[element].fusion.fused, 0.0))
    units = read_raster(result["OUTPUT_UNITS"])
    np.testing.assert_array_equal(np.nan_to_num(units.data[0], nan=-1), expected.units)
    feats = read_raster(result["OUTPUT_FEATURES"])
    assert feats.descriptions == image.descriptions
    for path in result["OUTPUT"], result["OUTPUT_UNITS"], result["OUTPUT_FEATURES"]:
        check_output(path)
    text = report.read_text(encoding="utf-8")
    assert "adaptive model choice" in text and "<img" in text
    assert Path(result["OUTPUT_COEFFICIENTS"]).read_text().count("\n") >= 3
