"""``preparesentinel2`` and ``prepareaster`` on synthetic products laid out like real ones.

The Sentinel-2 products are ``.SAFE`` trees with ``MTD_MSIL2A.xml`` /
``MTD_MSIL1C.xml`` (PSD 14 element names, baseline 04.00 offsets) and
lossless JPEG 2000 band files under ``GRANULE/*/IMG_DATA/R10m|R20m|R60m``.
The ASTER products are HDF-EOS swath files (``VNIR_Swath:ImageData1`` ...)
with the ODL metadata attributes of AST_L1T (``coremetadata.0``,
``productmetadata.0``), written with pyhdf.

Expected values are computed by hand from the digital numbers written, the
product's scaling (reflectance = (DN + offset) / 10000; ASTER radiance =
(DN - 1) * UCC) and, for resampled bands, from linear ramps: cubic
convolution (Keys 1981) reproduces a linear function exactly, so a 20 m
ramp resampled to 10 m must give the ramp at the 10 m cell centres.

Tolerances: outputs are float32; ``rtol=1e-6`` covers the rounding of
values ~0.1-1 (float32 spacing 6e-8 relative).  Resampled ramps get
``atol=1e-5``: GDAL's warper computes its weights in float32.
"""

import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, osr
from qgis.core import QgsProcessingException, QgsProcessingFeedback

from geochem_fusion.core import sentinel2

gdal.UseExceptions()

EPSG = 32719  # WGS 84 / UTM 19S
X0, Y0 = 300_000.0, 7_000_000.0
TILE = "T19KDS"
STAMP = "20220301T143731"
S2_FILL_BAND_ORDER = ("B02", "B03", "B04", "B08", "B05", "B06", "B07", "B8A", "B11", "B12")


# ---------------------------------------------------------------------------
# synthetic Sentinel-2 products
# ---------------------------------------------------------------------------
def _write_jp2(path, arr, x0, y0, cell):
    """Lossless JPEG 2000 with its georeferencing (GMLJP2), like the product's band files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    gdal_type = gdal.GDT_Byte if arr.dtype == np.uint8 else gdal.GDT_UInt16
    mem = gdal.GetDriverByName("MEM").Create("", arr.shape[1], arr.shape[0], 1, gdal_type)
    mem.SetGeoTransform((x0, cell, 0.0, y0, 0.0, -cell))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(EPSG)
    mem.SetProjection(srs.ExportToWkt())
    mem.GetRasterBand(1).WriteArray(arr)
    gdal.GetDriverByName("JP2OpenJPEG").CreateCopy(
        str(path), mem, options=["REVERSIBLE=YES", "QUALITY=100"])


def mtd_xml(level, baseline, image_files, *, offsets=None, central=None, quantification=10000):
    """Product metadata with the element names of PSD 14 (only the parts the reader uses)."""
    if level == "L2A":
        root, ptype, plevel = "Level-2A_User_Product", "S2MSI2A", "Level-2A"
        quant = ("<QUANTIFICATION_VALUES_LIST>"
                 f'<BOA_QUANTIFICATION_VALUE unit="none">{quantification}</BOA_QUANTIFICATION_VALUE>'
                 '<AOT_QUANTIFICATION_VALUE unit="none">1000.0</AOT_QUANTIFICATION_VALUE>'
                 '<WVP_QUANTIFICATION_VALUE unit="cm">1000.0</WVP_QUANTIFICATION_VALUE>'
                 "</QUANTIFICATION_VALUES_LIST>")
        off_list, off_tag = "BOA_ADD_OFFSET_VALUES_LIST", "BOA_ADD_OFFSET"
    else:
        root, ptype, plevel = "Level-1C_User_Product", "S2MSI1C", "Level-1C"
        quant = f'<QUANTIFICATION_VALUE unit="none">{quantification}</QUANTIFICATION_VALUE>'
        off_list, off_tag = "Radiometric_Offset_List", "RADIO_ADD_OFFSET"
    offs = ""
    if offsets:
        offs = f"<{off_list}>" + "".join(
            f'<{off_tag} band_id="{sentinel2.BANDS.index(b)}">{v}</{off_tag}>'
            for b, v in offsets.items()) + f"</{off_list}>"
    central = central or {}
    spectral = "<Spectral_Information_List>" + "".join(
        f'<Spectral_Information bandId="{i}" physicalBand="{b.replace("B0", "B")}">'
        f"<RESOLUTION>{sentinel2.NATIVE_RESOLUTION[b]}</RESOLUTION><Wavelength>"
        f'<CENTRAL unit="nm">{central.get(b, sentinel2.CENTRAL_WAVELENGTH_NM[b])}</CENTRAL>'
        "</Wavelength></Spectral_Information>"
        for i, b in enumerate(sentinel2.BANDS)) + "</Spectral_Information_List>"
    files = "".join(f"<IMAGE_FILE>{f}</IMAGE_FILE>" for f in image_files)
    uri = f"S2A_MSI{level}_{STAMP}_N{baseline.replace('.', '')}_R122_{TILE}_{STAMP}.SAFE"
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
        f'<n1:{root} xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_{plevel}.xsd">'
        "<n1:General_Info><Product_Info>"
        f"<PRODUCT_START_TIME>2022-03-01T14:37:31.024Z</PRODUCT_START_TIME>"
        f"<PRODUCT_URI>{uri}</PRODUCT_URI><PROCESSING_LEVEL>{plevel}</PROCESSING_LEVEL>"
        f"<PRODUCT_TYPE>{ptype}</PRODUCT_TYPE><PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE>"
        '<Datatake datatakeIdentifier="GS2A"><SPACECRAFT_NAME>Sentinel-2A</SPACECRAFT_NAME>'
        "</Datatake><Product_Organisation><Granule_List>"
        f'<Granule datastripIdentifier="DS" granuleIdentifier="GR" imageFormat="JPEG2000">{files}'
        "</Granule></Granule_List></Product_Organisation></Product_Info>"
        "<Product_Image_Characteristics>"
        "<Special_Values><SPECIAL_VALUE_TEXT>NODATA</SPECIAL_VALUE_TEXT>"
        "<SPECIAL_VALUE_INDEX>0</SPECIAL_VALUE_INDEX></Special_Values>"
        "<Special_Values><SPECIAL_VALUE_TEXT>SATURATED</SPECIAL_VALUE_TEXT>"
        "<SPECIAL_VALUE_INDEX>65535</SPECIAL_VALUE_INDEX></Special_Values>"
        f"{quant}{offs}{spectral}</Product_Image_Characteristics></n1:General_Info></n1:{root}>\n"
    )


def make_safe(folder, bands, *, level="L2A", baseline="04.00", scl=None, offsets=None,
              central=None, extra_20m=None):
    """A ``.SAFE`` tree: ``bands`` maps band name -> DN array at its native resolution.

    L2A puts the files under ``R10m``/``R20m``/``R60m`` with ``_10m`` suffixes (plus
    ``extra_20m`` bands, e.g. ESA's 20 m copies of 10 m bands); L1C puts them in one
    ``IMG_DATA`` folder without suffixes.
    """
    uri = f"S2A_MSI{level}_{STAMP}_N{baseline.replace('.', '')}_R122_{TILE}_{STAMP}.SAFE"
    safe = Path(folder) / uri
    granule = f"GRANULE/{level}_{TILE}_A034890_{STAMP}/IMG_DATA"
    files = []

    def put(name, arr, res):
        if level == "L2A":
            rel = f"{granule}/R{res}m/{TILE}_{STAMP}_{name}_{res}m"
        else:
            rel = f"{granule}/{TILE}_{STAMP}_{name}"
        _write_jp2(safe / (rel + ".jp2"), arr, X0, Y0, float(res))
        files.append(rel)

    for name, arr in bands.items():
        put(name, arr, sentinel2.NATIVE_RESOLUTION[name])
    for name, arr in (extra_20m or {}).items():
        put(name, arr, 20)
    if scl is not None:
        put("SCL", scl, 20)
    (safe / f"MTD_MSI{level}.xml").write_text(
        mtd_xml(level, baseline, files, offsets=offsets, central=central), encoding="utf-8")
    (safe / "manifest.safe").write_text("<xfdu/>", encoding="utf-8")
    return safe


def zip_safe(safe):
    """The product zipped as downloaded: the ``.SAFE`` folder at the root of the zip."""
    path = Path(str(safe).replace(".SAFE", ".zip"))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for f in sorted(safe.rglob("*")):
            zf.write(f, f.relative_to(safe.parent).as_posix())
    return path


# 10 m grid of the small product: 36 x 48 cells (20 m: 18 x 24, 60 m: 6 x 8)
ROWS, COLS = 36, 48
CLOUD20 = (slice(14, 16), slice(18, 20))  # SCL 9 (cloud, high probability)
WATER20 = (slice(1, 3), slice(20, 22))  # SCL 6
SHADOW20 = (16, 2)  # SCL 3


def l2a_bands(rows=ROWS, cols=COLS):
    """DN of every default band: 10 m planes and 20 m linear ramps, all distinct."""
    r, c = np.mgrid[0:rows, 0:cols]
    out = {}
    for k, b in enumerate(("B02", "B03", "B04", "B08")):
        out[b] = (1500 + 100 * k + 7 * r + 3 * c).astype(np.uint16)
    i, j = np.mgrid[0:rows // 2, 0:cols // 2]
    for k, b in enumerate(("B05", "B06", "B07", "B8A", "B11", "B12")):
        out[b] = (2000 + 100 * k + 10 * i + 20 * j).astype(np.uint16)
    out["B02"][0, 0] = 0  # no data
    out["B02"][1, 1] = 65535  # saturated
    out["B03"][2, 2] = 500  # dark: negative reflectance after the -1000 offset
    return out


def l2a_scl(rows=ROWS, cols=COLS):
    scl = np.full((rows // 2, cols // 2), 4, dtype=np.uint8)  # vegetation
    scl[CLOUD20] = 9
    scl[WATER20] = 6
    scl[SHADOW20] = 3
    return scl


#: Offsets of the synthetic baseline-04.00 product.  ESA uses -1000 for every band; B12
#: gets -900 here so that a band read with another band's offset shows up.
L2A_OFFSETS = {**{b: -1000 for b in sentinel2.BANDS}, "B12": -900}


@pytest.fixture(scope="module")
def l2a_product(tmp_path_factory):
    folder = tmp_path_factory.mktemp("s2")
    bands = l2a_bands()
    safe = make_safe(folder, bands, scl=l2a_scl(), offsets=L2A_OFFSETS,
                     central={"B02": 492.3},
                     extra_20m={"B02": np.full((ROWS // 2, COLS // 2), 9999, np.uint16)})
    return safe, bands


def up(mask20):
    """A 20 m mask on the 10 m grid (each 20 m cell covers 2 x 2 10 m cells)."""
    return np.repeat(np.repeat(mask20, 2, axis=0), 2, axis=1)


def mask20(*regions):
    m = np.zeros((ROWS // 2, COLS // 2), bool)
    for region in regions:
        m[region] = True
    return m


def test_sentinel2_l2a_values_masks_and_descriptions(run_alg, l2a_product, read_raster,
                                                     check_output, partial_files, tmp_path):
    safe, dn = l2a_product
    result = run_alg("preparesentinel2", {"INPUT": str(safe), "OUTPUT": str(tmp_path / "s2.tif")})
    out = read_raster(result["OUTPUT"])
    assert out.data.shape == (10, ROWS, COLS)
    assert out.geotransform == (X0, 10.0, 0.0, Y0, 0.0, -10.0)
    # default bands in the order of core.indices.default_band_map; B02's central wavelength
    # comes from the metadata (492.3 nm written there), the others are the nominal ones
    assert out.descriptions == ["B02 (492.3 nm)"] + [
        sentinel2.band_label(b) for b in sentinel2.DEFAULT_BANDS[1:]]
    assert out.descriptions[1] == "B03 (559.8 nm)"
    order = [d.split()[0] for d in out.descriptions]
    masked = up(mask20(CLOUD20, SHADOW20))  # default mask: clouds, cirrus, shadows
    # 10 m bands: (DN - 1000) / 10000 by hand, NaN at no data / saturated / clouds
    for b in ("B02", "B03", "B04", "B08"):
        expected = (dn[b].astype(float) - 1000.0) / 10000.0
        expected[masked] = np.nan
        if b == "B02":
            expected[0, 0] = expected[1, 1] = np.nan
        np.testing.assert_allclose(out.data[order.index(b)], expected, rtol=1e-6, atol=1e-7)
    assert out.data[order.index("B03"), 2, 2] == pytest.approx(-0.05, abs=1e-7)
    assert np.isfinite(out.data[order.index("B03"), 0, 0])  # the B02 no-data pixel is B02's own
    # water is kept by default
    water = up(mask20(WATER20))
    assert np.isfinite(out.data[:, water]).all()
    # 20 m ramps DN = a + 10 i + 20 j at 20 m cell centres; the 10 m cell (r, c) centre is
    # at i = r/2 - 0.25, j = c/2 - 0.25.  Interior cells whose cubic kernel (4 x 4 cells of
    # 20 m) touches neither the edge nor a masked cell:
    r, c = np.mgrid[6:21, 6:31]
    for k, b in enumerate(("B05", "B06", "B07", "B8A", "B11", "B12")):
        offset = L2A_OFFSETS[b]
        ramp = 2000 + 100 * k + 10 * (r / 2 - 0.25) + 20 * (c / 2 - 0.25)
        np.testing.assert_allclose(out.data[order.index(b), 6:21, 6:31],
                                   (ramp + offset) / 10000.0, atol=1e-5)
        # masked at native resolution: the cloud footprint is exactly the SCL cells
        assert np.isnan(out.data[order.index(b)][masked]).all()
        assert np.isfinite(out.data[order.index(b)][~masked]).all()
    meta = out.metadata
    assert meta["PRODUCT_LEVEL"] == "L2A" and meta["PROCESSING_BASELINE"] == "04.00"
    assert float(meta["OFFSET_B12"]) == -900 and float(meta["QUANTIFICATION_VALUE"]) == 10000
    check_output(result["OUTPUT"])
    assert partial_files(tmp_path) == []


def test_sentinel2_band_map_guessed_by_mineral_indices(run_alg, l2a_product, read_raster,
                                                       tmp_path):
    """The stack's band descriptions let mineralindices find the bands by itself."""
    from geochem_fusion.core.indices import compute_indices

    safe, _ = l2a_product
    stack = run_alg("preparesentinel2", {"INPUT": str(safe), "OUTPUT": str(tmp_path / "s2.tif")})
    result = run_alg("mineralindices", {"IMAGE": stack["OUTPUT"], "SENSOR": 1,
                                        "OUTPUT": str(tmp_path / "ix.tif")})
    image = read_raster(stack["OUTPUT"])
    expected = compute_indices(image.data, sentinel2_default_map(), sensor="sentinel2")
    np.testing.assert_allclose(read_raster(result["OUTPUT"]).data, expected.data, rtol=1e-6,
                               equal_nan=True)


def sentinel2_default_map():
    return {b.replace("B0", "B"): i for i, b in enumerate(sentinel2.DEFAULT_BANDS)}


def test_sentinel2_water_mask_20m_grid_and_band_choice(run_alg, l2a_product, read_raster,
                                                      tmp_path):
    safe, dn = l2a_product
    result = run_alg("preparesentinel2", {
        "INPUT": str(safe), "BANDS": [1, 11], "RESOLUTION": 1, "MASK": [3],
        "OUTPUT": str(tmp_path / "s2_20m.tif")})
    out = read_raster(result["OUTPUT"])
    assert [d.split()[0] for d in out.descriptions] == ["B02", "B11"]
    assert out.geotransform == (X0, 20.0, 0.0, Y0, 0.0, -20.0)
    assert out.data.shape == (2, ROWS // 2, COLS // 2)
    water = mask20(WATER20)
    assert np.isnan(out.data[:, water]).all()
    assert np.isfinite(out.data[1, ~water]).all()  # clouds not masked this time
    # B02 at 20 m: the mean of its four 10 m cells (from the 10 m file, not ESA's 20 m copy,
    # which holds 9999), NaN-free blocks only
    refl = (dn["B02"].astype(float) - 1000) / 10000
    means = refl.reshape(ROWS // 2, 2, COLS // 2, 2).mean(axis=(1, 3))
    ok = ~water
    ok[0, 0] = False  # holds the no-data and saturated pixels
    np.testing.assert_allclose(out.data[0][ok], means[ok], rtol=1e-6)
    # B11 at its own 20 m grid: an exact copy
    np.testing.assert_allclose(out.data[1][~water],
                               ((dn["B11"].astype(float) - 1000) / 10000)[~water], rtol=1e-6)


def test_sentinel2_zip_mtd_and_clip_give_the_same_pixels(run_alg, l2a_product, read_raster,
                                                          tmp_path):
    safe, _ = l2a_product
    full = read_raster(run_alg("preparesentinel2", {
        "INPUT": str(safe), "OUTPUT": str(tmp_path / "full.tif")})["OUTPUT"])
    from_zip = read_raster(run_alg("preparesentinel2", {
        "INPUT": str(zip_safe(safe)), "OUTPUT": str(tmp_path / "zip.tif")})["OUTPUT"])
    np.testing.assert_array_equal(from_zip.data, full.data)
    # clip: x 300095..300205, y 6999845..6999905 -> whole 10 m cells, cols 9..20, rows 9..15
    extent = f"{X0 + 95},{X0 + 205},{Y0 - 155},{Y0 - 95} [EPSG:{EPSG}]"
    clipped = read_raster(run_alg("preparesentinel2", {
        "INPUT": str(safe / "MTD_MSIL2A.xml"), "EXTENT": extent,
        "OUTPUT": str(tmp_path / "clip.tif")})["OUTPUT"])
    assert clipped.geotransform == (X0 + 90, 10.0, 0.0, Y0 - 90, 0.0, -10.0)
    np.testing.assert_allclose(clipped.data, full.data[:, 9:16, 9:21], rtol=1e-6, equal_nan=True)


def test_sentinel2_l1c_before_baseline_04_has_no_offset(run_alg, read_raster, tmp_path):
    r, c = np.mgrid[0:12, 0:12]
    bands = {"B02": (800 + r + c).astype(np.uint16), "B11": (3000 + 5 * r[:6, :6]).astype(np.uint16),
             "B10": np.full((2, 2), 40, np.uint16)}
    safe = make_safe(tmp_path, bands, level="L1C", baseline="02.05")
    result = run_alg("preparesentinel2", {"INPUT": str(safe), "BANDS": [1, 10],
                                          "OUTPUT": str(tmp_path / "l1c.tif")})
    out = read_raster(result["OUTPUT"])
    np.testing.assert_allclose(out.data[0], bands["B02"] / 10000.0, rtol=1e-6)
    assert out.descriptions[1].startswith("B10 (1373.5 nm)")
    np.testing.assert_allclose(out.data[1], 0.004, rtol=1e-6)  # 60 m -> 10 m of a constant
    assert out.metadata["QUANTITY"] == "TOA reflectance"


def test_sentinel2_coarse_bands_resampled_by_cubic_convolution(run_alg, read_raster, tmp_path):
    # Keys (1981) cubic convolution (a = -1/2) reproduces quadratics exactly, bilinear does
    # not: a 20 m band DN = 3000 + 4 (i - 6)^2 + 3 (j - 5)^2 must come out at the 10 m cell
    # centres (i = r/2 - 0.25, j = c/2 - 0.25) as that quadratic; bilinear interpolation would
    # be off by 0.1875 * (4 + 3) = 1.3 DN (1.3e-4 in reflectance) at every such cell.
    i, j = np.mgrid[0:12, 0:12]
    b11 = (3000 + 4 * (i - 6) ** 2 + 3 * (j - 5) ** 2).astype(np.uint16)
    bands = {"B02": np.full((24, 24), 1000, np.uint16), "B11": b11}
    safe = make_safe(tmp_path, bands, level="L1C", baseline="02.05")
    out = read_raster(run_alg("preparesentinel2", {"INPUT": str(safe), "BANDS": [1, 11],
                                                   "OUTPUT": str(tmp_path / "q.tif")})["OUTPUT"])
    assert out.data.shape == (2, 24, 24)
    r, c = np.mgrid[6:18, 6:18]  # cells whose 4 x 4 kernel of 20 m cells lies inside
    ii, jj = r / 2 - 0.25, c / 2 - 0.25
    quadratic = (3000 + 4 * (ii - 6) ** 2 + 3 * (jj - 5) ** 2) / 10000.0
    np.testing.assert_allclose(out.data[1, 6:18, 6:18], quadratic, rtol=0, atol=1e-5)
    # the same cells by bilinear interpolation of the 20 m grid: clearly different
    from scipy import ndimage

    bilinear = ndimage.map_coordinates(b11 / 10000.0, [ii, jj], order=1)
    assert np.abs(bilinear - quadratic).min() > 1e-4


def test_sentinel2_l1c_baseline_04_offset(run_alg, read_raster, tmp_path):
    bands = {"B04": np.full((6, 6), 1234, np.uint16)}
    safe = make_safe(tmp_path, bands, level="L1C", baseline="05.09",
                     offsets={b: -1000 for b in sentinel2.BANDS})
    out = read_raster(run_alg("preparesentinel2", {
        "INPUT": str(safe), "BANDS": [3], "OUTPUT": str(tmp_path / "o.tif")})["OUTPUT"])
    np.testing.assert_allclose(out.data, 0.0234, rtol=1e-6)


def test_sentinel2_bad_inputs_write_nothing(run_alg, l2a_product, tmp_path, partial_files):
    safe, _ = l2a_product
    out = tmp_path / "never.tif"
    (tmp_path / "x.xml").write_text("<a/>", encoding="utf-8")
    with pytest.raises(QgsProcessingException, match="not a Sentinel-2 product"):
        run_alg("preparesentinel2", {"INPUT": str(tmp_path / "x.xml"), "OUTPUT": str(out)})
    (tmp_path / "empty.SAFE").mkdir()
    with pytest.raises(QgsProcessingException, match="no MTD_MSIL1C.xml or MTD_MSIL2A.xml"):
        run_alg("preparesentinel2", {"INPUT": str(tmp_path / "empty.SAFE"), "OUTPUT": str(out)})
    with pytest.raises(QgsProcessingException, match="Level-2A products have no B10"):
        run_alg("preparesentinel2", {"INPUT": str(safe), "BANDS": [10], "OUTPUT": str(out)})
    with pytest.raises(QgsProcessingException, match="does not overlap"):
        run_alg("preparesentinel2", {"INPUT": str(safe), "OUTPUT": str(out),
                                     "EXTENT": f"0,10,0,10 [EPSG:{EPSG}]"})
    broken = make_safe(tmp_path / "broken", {"B02": np.ones((4, 4), np.uint16)},
                       scl=np.full((2, 2), 4, np.uint8), offsets=L2A_OFFSETS)
    next(broken.rglob("*B02_10m.jp2")).unlink()
    with pytest.raises(QgsProcessingException, match="incomplete"):
        run_alg("preparesentinel2", {"INPUT": str(broken), "BANDS": [1], "OUTPUT": str(out)})
    assert not out.exists() and partial_files(tmp_path) == []


class _CancelAfter(QgsProcessingFeedback):
    """Cancels once progress passes ``fraction`` (mid-run)."""

    def __init__(self, percent):
        super().__init__()
        self.percent = percent

    def setProgress(self, value):
        super().setProgress(value)
        if value >= self.percent:
            self.cancel()


@pytest.mark.parametrize("percent", [20, 50])  # while converting bands / while stacking
def test_sentinel2_cancel_leaves_nothing(run_alg, l2a_product, tmp_path, partial_files, percent):
    safe, _ = l2a_product
    out = tmp_path / "canceled.tif"
    with pytest.raises(QgsProcessingException, match="Canceled"):
        run_alg("preparesentinel2", {"INPUT": str(safe), "OUTPUT": str(out)},
                feedback=_CancelAfter(percent))
    assert not out.exists()
    assert partial_files(tmp_path) == []


def test_sentinel2_product_to_fused_cu(run_alg, make_points, read_raster, tmp_path):
    """Done-when check: a .SAFE goes to a fused Cu layer with the toolbox alone."""
    rows = cols = 120  # 1.2 km x 1.2 km at 10 m
    r, c = np.mgrid[0:rows, 0:cols]
    geology = np.sin(r / 9.0) + np.cos(c / 13.0)
    bands = {}
    for k, b in enumerate(S2_FILL_BAND_ORDER):
        res = sentinel2.NATIVE_RESOLUTION[b]
        field = geology[::res // 10, ::res // 10]
        bands[b] = (2500 + 300 * k + 400 * (1 + k % 3) * field).astype(np.uint16)
    scl = np.full((rows // 2, cols // 2), 5, np.uint8)
    scl[5:8, 40:44] = 9
    safe = make_safe(tmp_path, bands, scl=scl, offsets={b: -1000 for b in sentinel2.BANDS})
    stack = run_alg("preparesentinel2", {"INPUT": str(safe), "OUTPUT": str(tmp_path / "s2.tif")})
    rng = np.random.default_rng(1)
    xy = np.column_stack([X0 + rng.uniform(20, 1180, 80), Y0 - rng.uniform(20, 1180, 80)])
    col = ((xy[:, 0] - X0) / 10).astype(int)
    row = ((Y0 - xy[:, 1]) / 10).astype(int)
    cu = 40 + 15 * geology[row, col] + rng.normal(0, 2, len(xy))
    samples = make_points("samples.gpkg", xy, {"Cu": cu}, epsg=EPSG)
    fused = run_alg("fusegeochemistry", {"SAMPLES": samples, "FIELD": "Cu",
                                         "IMAGE": stack["OUTPUT"], "FEATURES": 1, "VARIOGRAM": 0,
                                         "OUTPUT": str(tmp_path / "cu.tif")})
    out = read_raster(fused["OUTPUT"])
    assert os.path.isfile(fused["OUTPUT"]) and out.data.shape == (1, rows, cols)
    valid = np.isfinite(out.data[0])
    assert valid.mean() > 0.95  # only the cloud (and its nodata) is missing
    assert np.isfinite(out.data[0][valid]).all()
    assert 20 < np.nanmean(out.data) < 60


def test_sentinel2_real_bands_through_band_map_and_index_table(run_alg, shared_data, read_raster,
                                                               tmp_path):
    """Real L1C DN (DSen2, 2017, baseline < 04.00) as band files of a product."""
    from geochem_fusion.core.indices import compute_indices, guess_band_map

    npz = np.load(shared_data / "dsen2" / "S2B_MSIL1C_20171022_T49JGM.npz")
    bands = {}
    for group in ("10", "20", "60"):
        for name, arr in zip(npz[f"bands{group}"], npz[f"im{group}"]):
            bands[str(name)] = arr
    safe = make_safe(tmp_path, bands, level="L1C", baseline="02.05")
    stack = run_alg("preparesentinel2", {"INPUT": str(safe), "OUTPUT": str(tmp_path / "s2.tif")})
    image = read_raster(stack["OUTPUT"])
    order = [d.split()[0] for d in image.descriptions]
    for name in ("B02", "B03", "B04", "B08"):  # native 10 m: DN / 10000 exactly
        expected = bands[name] / 10000.0
        expected[bands[name] == 0] = np.nan
        np.testing.assert_allclose(image.data[order.index(name)], expected, rtol=1e-6)
    band_map = guess_band_map(image.descriptions, "sentinel2")
    assert band_map == sentinel2_default_map()
    result = run_alg("mineralindices", {"IMAGE": stack["OUTPUT"], "SENSOR": 1,
                                        "OUTPUT": str(tmp_path / "ix.tif")})
    ix = read_raster(result["OUTPUT"])
    expected = compute_indices(image.data, band_map, sensor="sentinel2")
    assert [d for d in ix.descriptions] == expected.labels  # the whole Sentinel-2 table
    np.testing.assert_allclose(ix.data, expected.data, rtol=1e-6, equal_nan=True)
    # the 20 m bands went through cubic convolution to 10 m: their 2 x 2 means come back
    # close to the real 20 m values (the kernel smooths a little: 0.005 reflectance median)
    b11 = image.data[order.index("B11")].reshape(300, 2, 300, 2).mean(axis=(1, 3))
    assert np.nanmedian(np.abs(b11 - bands["B11"] / 10000.0)) < 0.005


# ---------------------------------------------------------------------------
# synthetic ASTER L1T (HDF-EOS swaths, written with pyhdf)
# ---------------------------------------------------------------------------
AST_DATE, AST_DOY = "20100515", 135  # 15 May 2010
SUN_AZIMUTH, SUN_ELEVATION = 152.352398, 56.711539
#: (band, gain code) as in GAININFORMATION; 3B is listed in real files and must be skipped
AST_GAINS = [("01", "HGH"), ("02", "NOR"), ("3N", "NOR"), ("3B", "NOR"), ("04", "NOR"),
             ("05", "LO1"), ("06", "NOR"), ("07", "NOR"), ("08", "LO2"), ("09", "NOR")]
# published values typed in independently of core.aster (ASTER User Handbook v2 Table 5;
# Thome et al. 2001 ESUN), for the gains above
UCC_USED = {"1": 0.676, "2": 1.415, "3N": 0.862, "4": 0.2174, "5": 0.0925, "6": 0.0625,
            "7": 0.0597, "8": 0.2450, "9": 0.0318, "10": 6.822e-3, "11": 6.780e-3,
            "12": 6.590e-3, "13": 5.693e-3, "14": 5.225e-3}
ESUN_THOME = {"1": 1848, "2": 1549, "3N": 1114, "4": 225.4, "5": 86.63, "6": 81.85, "7": 74.85,
              "8": 66.49, "9": 59.85}
AST_ROWS, AST_COLS = 30, 36  # VNIR 15 m; SWIR 15 x 18 at 30 m; TIR 5 x 6 at 90 m
SWIRS = ("4", "5", "6", "7", "8", "9")
TIRS = ("10", "11", "12", "13", "14")


def _odl(objects):
    """ODL text: ``objects`` = [(name, value, class or None)] with values already formatted."""
    lines = ["GROUP                  = PRODUCTMETADATA", ""]
    for name, value, klass in objects:
        lines.append(f"  OBJECT                 = {name}")
        if klass:
            lines.append(f'    CLASS                = "{klass}"')
        lines += [f"    NUM_VAL              = {value.count(',') + 1}",
                  f"    VALUE                = {value}", f"  END_OBJECT             = {name}", ""]
    return "\n".join(lines + ["END_GROUP              = PRODUCTMETADATA", "", "END", ""])


def _struct_metadata(swaths):
    """HDF-EOS ``StructMetadata.0`` describing the swaths, their dimensions and fields."""
    out = ["GROUP=SwathStructure"]
    for k, (swath, rows, cols, fields) in enumerate(swaths, 1):
        dims = [("ImageLine", rows), ("ImagePixel", cols), ("GeoTrack", 11), ("GeoXtrack", 11)]
        out += [f"\tGROUP=SWATH_{k}", f'\t\tSwathName="{swath}"', "\t\tGROUP=Dimension"]
        for j, (name, size) in enumerate(dims, 1):
            out += [f"\t\t\tOBJECT=Dimension_{j}", f'\t\t\t\tDimensionName="{name}"',
                    f"\t\t\t\tSize={size}", f"\t\t\tEND_OBJECT=Dimension_{j}"]
        out += ["\t\tEND_GROUP=Dimension", "\t\tGROUP=DimensionMap"]
        for j, (geo, data, size) in enumerate((("GeoTrack", "ImageLine", rows),
                                               ("GeoXtrack", "ImagePixel", cols)), 1):
            out += [f"\t\t\tOBJECT=DimensionMap_{j}", f'\t\t\t\tGeoDimension="{geo}"',
                    f'\t\t\t\tDataDimension="{data}"', "\t\t\t\tOffset=0",
                    f"\t\t\t\tIncrement={max(1, size // 10)}", f"\t\t\tEND_OBJECT=DimensionMap_{j}"]
        out += ["\t\tEND_GROUP=DimensionMap", "\t\tGROUP=IndexDimensionMap",
                "\t\tEND_GROUP=IndexDimensionMap", "\t\tGROUP=GeoField"]
        for j, geo in enumerate(("Latitude", "Longitude"), 1):
            out += [f"\t\t\tOBJECT=GeoField_{j}", f'\t\t\t\tGeoFieldName="{geo}"',
                    "\t\t\t\tDataType=DFNT_FLOAT64", '\t\t\t\tDimList=("GeoTrack","GeoXtrack")',
                    f"\t\t\tEND_OBJECT=GeoField_{j}"]
        out += ["\t\tEND_GROUP=GeoField", "\t\tGROUP=DataField"]
        for j, (name, arr) in enumerate(fields.items(), 1):
            kind = "DFNT_UINT8" if arr.dtype == np.uint8 else "DFNT_UINT16"
            out += [f"\t\t\tOBJECT=DataField_{j}", f'\t\t\t\tDataFieldName="{name}"',
                    f"\t\t\t\tDataType={kind}", '\t\t\t\tDimList=("ImageLine","ImagePixel")',
                    f"\t\t\tEND_OBJECT=DataField_{j}"]
        out += ["\t\tEND_GROUP=DataField", "\t\tGROUP=MergedFields", "\t\tEND_GROUP=MergedFields",
                f"\tEND_GROUP=SWATH_{k}"]
    out += ["END_GROUP=SwathStructure", "GROUP=GridStructure", "END_GROUP=GridStructure",
            "GROUP=PointStructure", "END_GROUP=PointStructure", "END", ""]
    return "\n".join(out)


def write_aster_l1t(path, dn, *, ul_centre=(X0 + 7.5, Y0 - 7.5), zone=19, north_lat=-27.0):
    """An AST_L1T-like HDF-EOS file.

    Swaths VNIR/SWIR/TIR with ``ImageDataN`` fields,
    Latitude/Longitude geolocation, and the ODL metadata GDAL flattens
    (``GAIN.n``, ``SOLARDIRECTION``, ``CALENDARDATE``, ``UPPERLEFTM`` ...).
    """
    pytest.importorskip("pyhdf.SD", reason="pyhdf (Debian python3-hdf4) writes HDF4")
    import pyhdf.V  # noqa: F401 (HDF.vgstart needs the V interface loaded)
    from pyhdf.HDF import HC, HDF
    from pyhdf.SD import SD, SDC

    swaths = [("VNIR_Swath", AST_ROWS, AST_COLS,
               {f"ImageData{b}": dn[b] for b in ("1", "2", "3N")} | {"ImageData3B": dn["3N"]}),
              ("SWIR_Swath", AST_ROWS // 2, AST_COLS // 2,
               {f"ImageData{b}": dn[b] for b in SWIRS if b in dn}),
              ("TIR_Swath", AST_ROWS // 6, AST_COLS // 6,
               {f"ImageData{b}": dn[b] for b in TIRS if b in dn})]
    swaths = [s for s in swaths if s[3]]
    east, north = ul_centre
    lr = (east + 15.0 * (AST_COLS - 1), north - 15.0 * (AST_ROWS - 1))
    false_north = 10_000_000.0 if north_lat < 0 else 0.0
    core = _odl([("CALENDARDATE", f'"{AST_DATE}"', None),
                 ("NORTHBOUNDINGCOORDINATE", f"{north_lat}", None)])
    product = _odl(
        [("SOLARDIRECTION", f"({SUN_AZIMUTH}, {SUN_ELEVATION})", None)]
        + [("GAIN", f'("{b}", "{g}")', str(i)) for i, (b, g) in enumerate(AST_GAINS, 1)]
        + [("UPPERLEFTM", f"({north - false_north}, {east})", None),
           ("LOWERRIGHTM", f"({lr[1] - false_north}, {lr[0]})", None),
           ("UTMZONENUMBER", str(zone), None)])
    sd = SD(str(path), SDC.WRITE | SDC.CREATE)
    refs = {}
    for swath, _, _, fields in swaths:
        for geo in ("Latitude", "Longitude"):
            s = sd.create(geo, SDC.FLOAT64, (11, 11))
            s.dim(0).setname(f"GeoTrack:{swath}")
            s.dim(1).setname(f"GeoXtrack:{swath}")
            s[:] = np.full((11, 11), north_lat if geo == "Latitude" else -69.0)
            refs[swath, geo] = s.ref()
            s.endaccess()
        for name, arr in fields.items():
            s = sd.create(name, SDC.UINT8 if arr.dtype == np.uint8 else SDC.UINT16, arr.shape)
            s.dim(0).setname(f"ImageLine:{swath}")
            s.dim(1).setname(f"ImagePixel:{swath}")
            s[:] = arr
            refs[swath, name] = s.ref()
            s.endaccess()
    sd.attr("StructMetadata.0").set(SDC.CHAR8, _struct_metadata(swaths))
    sd.attr("coremetadata.0").set(SDC.CHAR8, core)
    sd.attr("productmetadata.0").set(SDC.CHAR8, product)
    sd.end()
    hdf = HDF(str(path), HC.WRITE)
    vgroups = hdf.vgstart()
    for swath, _, _, fields in swaths:
        top = vgroups.create(swath)
        top._class = "SWATH"
        for sub, names in (("Geolocation Fields", ("Latitude", "Longitude")),
                           ("Data Fields", tuple(fields)), ("Swath Attributes", ())):
            group = vgroups.create(sub)
            group._class = "SWATH Vgroup"
            for name in names:
                group.add(HC.DFTAG_NDG, refs[swath, name])
            top.insert(group)
            group.detach()
        top.detach()
    vgroups.end()
    hdf.close()
    return str(path)


def aster_dn():
    """VNIR planes, SWIR and TIR linear ramps, with no-data and saturated pixels."""
    r, c = np.mgrid[0:AST_ROWS, 0:AST_COLS]
    dn = {b: (40 + 20 * k + r + c).astype(np.uint8) for k, b in enumerate(("1", "2", "3N"))}
    dn["1"][4, 5] = 9  # the darkest valid pixel of band 1
    dn["2"][0, 0] = 0  # no data
    dn["3N"][3, 3] = 255  # saturated
    i, j = np.mgrid[0:AST_ROWS // 2, 0:AST_COLS // 2]
    for k, b in enumerate(SWIRS):
        dn[b] = (30 + 10 * k + 3 * i + 2 * j).astype(np.uint8)
    t, u = np.mgrid[0:AST_ROWS // 6, 0:AST_COLS // 6]
    for k, b in enumerate(TIRS):
        dn[b] = (1000 + 50 * k + 30 * t + 20 * u).astype(np.uint16)
    return dn


@pytest.fixture(scope="module")
def aster_file(tmp_path_factory):
    dn = aster_dn()
    path = tmp_path_factory.mktemp("aster") / "AST_L1T_00305152010180505_20150522071203_1234.hdf"
    return write_aster_l1t(path, dn), dn


def toa(dn, band):
    """Hand computation: (DN - 1) UCC, then pi L d^2 / (ESUN sin(elevation))."""
    d = 1 - 0.01672 * np.cos(np.radians(0.9856 * (AST_DOY - 4)))
    radiance = (np.asarray(dn, float) - 1) * UCC_USED[band]
    return np.pi * radiance * d ** 2 / (ESUN_THOME[band] * np.sin(np.radians(SUN_ELEVATION)))


def test_aster_file_layout_is_what_gdal_shows_for_l1t(aster_file):
    path, _ = aster_file
    ds = gdal.Open(path)
    names = [n for n, _ in ds.GetSubDatasets()]
    assert f'HDF4_EOS:EOS_SWATH:"{path}":VNIR_Swath:ImageData1' in names
    assert f'HDF4_EOS:EOS_SWATH:"{path}":SWIR_Swath:ImageData9' in names
    meta = ds.GetMetadata()
    assert meta["GAIN.1"] == "01, HGH" and meta["SOLARDIRECTION"].startswith("152.35")


def test_aster_reflectance_by_hand(run_alg, aster_file, read_raster, check_output, tmp_path,
                                   partial_files):
    path, dn = aster_file
    result = run_alg("prepareaster", {"INPUT": path, "OUTPUT": str(tmp_path / "ast.tif")})
    out = read_raster(result["OUTPUT"])
    assert out.data.shape == (9, AST_ROWS, AST_COLS)
    assert out.geotransform == (X0, 15.0, 0.0, Y0, 0.0, -15.0)
    assert "UTM zone 19S" in gdal.Open(result["OUTPUT"]).GetProjection()
    assert out.descriptions == ["B01 (556 nm)", "B02 (661 nm)", "B3N (807 nm)", "B04 (1656 nm)",
                                "B05 (2167 nm)", "B06 (2209 nm)", "B07 (2262 nm)",
                                "B08 (2336 nm)", "B09 (2400 nm)"]
    for k, band in enumerate(("1", "2", "3N")):
        expected = toa(dn[band], band)
        expected[dn[band] == 0] = np.nan
        expected[dn[band] == 255] = np.nan
        np.testing.assert_allclose(out.data[k], expected, rtol=1e-6)
    assert np.isnan(out.data[1, 0, 0]) and np.isnan(out.data[2, 3, 3])
    # SWIR ramps: the 15 m cell (r, c) centre lies at SWIR index (r/2, c/2) (UPPERLEFTM is the
    # centre of each subsystem's first pixel); cubic convolution reproduces the ramp inside
    r, c = np.mgrid[4:23, 4:29]
    for k, band in enumerate(SWIRS):
        ramp = 30 + 10 * k + 3 * (r / 2) + 2 * (c / 2)
        np.testing.assert_allclose(out.data[3 + k, 4:23, 4:29], toa(ramp, band), rtol=1e-5)
    assert float(out.metadata["UCC_5"]) == 0.0925 and out.metadata["GAIN_8"] == "low2"
    assert out.metadata["SWIR_CROSSTALK"] == "not corrected"
    check_output(result["OUTPUT"])
    assert partial_files(tmp_path) == []


def test_aster_dos1_and_thermal_outputs(run_alg, aster_file, read_raster, tmp_path):
    path, dn = aster_file
    result = run_alg("prepareaster", {"INPUT": path, "DOS1": True, "TIR": 1,
                                      "OUTPUT": str(tmp_path / "ast.tif"),
                                      "OUTPUT_TIR": str(tmp_path / "tir.tif")})
    out, tir = read_raster(result["OUTPUT"]), read_raster(result["OUTPUT_TIR"])
    # DOS1: the band's darkest DN (here 9, one pixel of 1080 >= 0.01 %) is taken to reflect 1 %
    expected = toa(dn["1"], "1") - (toa(9, "1") - 0.01)
    np.testing.assert_allclose(out.data[0], expected, rtol=1e-6)
    assert out.data[0, 4, 5] == pytest.approx(0.01, rel=1e-6)
    assert int(out.metadata["DOS1_DARK_DN_1"]) == 9
    # band 4: the darkest SWIR value is the ramp's corner DN 30
    assert int(out.metadata["DOS1_DARK_DN_4"]) == 30
    # thermal radiance on the 90 m grid, exactly (DN - 1) * UCC
    assert tir.geotransform == (X0 - 37.5, 90.0, 0.0, Y0 + 37.5, 0.0, -90.0)  # 7.5 - 45
    assert tir.descriptions[0] == "B10 (8291 nm)"
    for k, band in enumerate(TIRS):
        np.testing.assert_allclose(tir.data[k], (dn[band] - 1.0) * UCC_USED[band], rtol=1e-6)


def test_aster_thermal_resampled_and_clip(run_alg, aster_file, read_raster, tmp_path):
    path, dn = aster_file
    full = read_raster(run_alg("prepareaster", {
        "INPUT": path, "TIR": 2, "OUTPUT": str(tmp_path / "all.tif")})["OUTPUT"])
    assert full.data.shape == (14, AST_ROWS, AST_COLS)
    # TIR cell centres: the 15 m cell (r, c) is at TIR index (r/6, c/6); interior cells only
    r, c = np.mgrid[6:13, 6:19]
    ramp = 1000 + 30 * (r / 6) + 20 * (c / 6)
    np.testing.assert_allclose(full.data[9, 6:13, 6:19], (ramp - 1) * UCC_USED["10"], rtol=1e-5)
    extent = f"{X0 + 31},{X0 + 119},{Y0 - 89},{Y0 - 16} [EPSG:{EPSG}]"
    clipped = read_raster(run_alg("prepareaster", {
        "INPUT": path, "TIR": 2, "EXTENT": extent, "OUTPUT": str(tmp_path / "clip.tif")})["OUTPUT"])
    assert clipped.geotransform == (X0 + 30, 15.0, 0.0, Y0 - 15, 0.0, -15.0)
    np.testing.assert_allclose(clipped.data, full.data[:, 1:6, 2:8], rtol=1e-6, equal_nan=True)


def test_aster_not_an_l1t_file(run_alg, tmp_path, partial_files):
    bad = tmp_path / "AST_L1T_bad.hdf"
    pytest.importorskip("pyhdf.SD", reason="pyhdf (Debian python3-hdf4) writes HDF4")
    from pyhdf.SD import SD, SDC

    sd = SD(str(bad), SDC.WRITE | SDC.CREATE)
    s = sd.create("Other", SDC.UINT8, (4, 4))
    s[:] = np.ones((4, 4), np.uint8)
    s.endaccess()
    sd.end()
    out = tmp_path / "never.tif"
    with pytest.raises(QgsProcessingException, match="ASTER L1T"):
        run_alg("prepareaster", {"INPUT": str(bad), "OUTPUT": str(out)})
    assert not out.exists() and partial_files(tmp_path) == []


def test_aster_product_to_fused_cu(run_alg, make_points, read_raster, tmp_path):
    """Done-when check: an ASTER L1T .hdf goes to a fused Cu layer with the toolbox alone."""
    dn = aster_dn()
    r, c = np.mgrid[0:AST_ROWS, 0:AST_COLS]
    geology = np.sin(r / 5.0) + np.cos(c / 7.0)
    for k, band in enumerate(("1", "2", "3N")):
        dn[band] = (80 + 10 * k + 20 * geology).astype(np.uint8)
    for k, band in enumerate(SWIRS):  # alteration contrast in the SWIR
        dn[band] = (60 + 5 * k + (12 - 3 * k) * geology[::2, ::2]).astype(np.uint8)
    path = write_aster_l1t(tmp_path / "AST_L1T_e2e.hdf", dn)
    stack = run_alg("prepareaster", {"INPUT": path, "DOS1": True,
                                     "OUTPUT": str(tmp_path / "ast.tif")})
    rng = np.random.default_rng(2)
    xy = np.column_stack([X0 + rng.uniform(10, 530, 60), Y0 - rng.uniform(10, 440, 60)])
    rows = ((Y0 - xy[:, 1]) / 15).astype(int)
    cols = ((xy[:, 0] - X0) / 15).astype(int)
    cu = 50 + 20 * geology[rows, cols] + rng.normal(0, 2, len(xy))
    samples = make_points("samples.gpkg", xy, {"Cu": cu}, epsg=EPSG)
    fused = run_alg("fusegeochemistry", {"SAMPLES": samples, "FIELD": "Cu", "SENSOR": 0,
                                         "IMAGE": stack["OUTPUT"], "FEATURES": 1, "VARIOGRAM": 0,
                                         "LEVELS": 1, "OUTPUT": str(tmp_path / "cu.tif")})
    out = read_raster(fused["OUTPUT"])
    assert os.path.isfile(fused["OUTPUT"]) and out.data.shape == (1, AST_ROWS, AST_COLS)
    assert np.isfinite(out.data).mean() > 0.9
    assert 20 < np.nanmean(out.data) < 80


@pytest.mark.parametrize("keep_bytes", [0, 300])  # empty, or cut inside the code-stream
def test_sentinel2_damaged_band_file_names_band_and_file(run_alg, tmp_path, partial_files,
                                                          keep_bytes):
    """Issue 12: a truncated JP2 gave a raw traceback (RuntimeError: No code-stream in JP2 file)
    without saying which file is broken."""
    bands = {"B02": np.full((8, 8), 1200, np.uint16), "B04": np.full((8, 8), 900, np.uint16)}
    safe = make_safe(tmp_path / "damaged", bands, scl=np.full((4, 4), 4, np.uint8),
                     offsets=L2A_OFFSETS)
    jp2 = next(safe.rglob("*B04_10m.jp2"))
    data = jp2.read_bytes()
    jp2.write_bytes(data[:keep_bytes])
    out = tmp_path / "out" / "s2.tif"
    with pytest.raises(QgsProcessingException) as info:
        run_alg("preparesentinel2", {"INPUT": str(safe), "BANDS": [1, 3], "OUTPUT": str(out)})
    message = str(info.value)
    assert "Band B04" in message and jp2.name in message
    assert "download the product again" in message
    assert not out.exists() and partial_files(tmp_path / "out") == []
