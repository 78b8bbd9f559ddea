"""Sentinel-2 product metadata parsing and DN -> reflectance (core.sentinel2).

The metadata snippets follow the element names and nesting of real
``MTD_MSIL2A.xml`` / ``MTD_MSIL1C.xml`` files (PSD 14).  Expected
reflectances are computed by hand from (DN + offset) / quantification.
"""

import warnings

import numpy as np
import pytest

from geochem_fusion.core import sentinel2
from geochem_fusion.core.indices import compute_indices, default_band_map, guess_band_map

GRANULE = "GRANULE/L2A_T32TQM_A032526_20210913T101436/IMG_DATA"


def l2a_xml(*, baseline="04.00", offsets=True, files=None, central=None, quant="10000"):
    offs = ("<BOA_ADD_OFFSET_VALUES_LIST>"
            + "".join(f'<BOA_ADD_OFFSET band_id="{i}">{-1000 - 10 * i}</BOA_ADD_OFFSET>'
                      for i in range(13))
            + "</BOA_ADD_OFFSET_VALUES_LIST>") if offsets else ""
    files = files if files is not None else [
        f"{GRANULE}/R10m/T32TQM_20210913T101021_B02_10m",
        f"{GRANULE}/R10m/T32TQM_20210913T101021_TCI_10m",
        f"{GRANULE}/R20m/T32TQM_20210913T101021_B02_20m",
        f"{GRANULE}/R20m/T32TQM_20210913T101021_B8A_20m",
        f"{GRANULE}/R20m/T32TQM_20210913T101021_SCL_20m",
        f"{GRANULE}/R60m/T32TQM_20210913T101021_SCL_60m",
    ]
    spectral = "".join(
        f'<Spectral_Information bandId="{i}" physicalBand="{b}"><RESOLUTION>10</RESOLUTION>'
        f'<Wavelength><MIN unit="nm">1</MIN><MAX unit="nm">2</MAX>'
        f'<CENTRAL unit="nm">{c}</CENTRAL></Wavelength></Spectral_Information>'
        for i, b, c in (central or []))
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<n1:Level-2A_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd">
  <n1:General_Info>
    <Product_Info>
      <PRODUCT_START_TIME>2021-09-13T10:10:21.024Z</PRODUCT_START_TIME>
      <PRODUCT_URI>S2B_MSIL2A_20210913T101021_N0400_R022_T32TQM_20210913T131117.SAFE</PRODUCT_URI>
      <PROCESSING_LEVEL>Level-2A</PROCESSING_LEVEL>
      <PRODUCT_TYPE>S2MSI2A</PRODUCT_TYPE>
      <PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE>
      <Datatake datatakeIdentifier="GS2B_20210913T101021_023561_N04.00">
        <SPACECRAFT_NAME>Sentinel-2B</SPACECRAFT_NAME>
      </Datatake>
      <Product_Organisation><Granule_List>
        <Granule datastripIdentifier="DS" granuleIdentifier="GR" imageFormat="JPEG2000">
          {"".join(f"<IMAGE_FILE>{f}</IMAGE_FILE>" for f in files)}
        </Granule>
      </Granule_List></Product_Organisation>
    </Product_Info>
    <Product_Image_Characteristics>
      <Special_Values><SPECIAL_VALUE_TEXT>NODATA</SPECIAL_VALUE_TEXT>
        <SPECIAL_VALUE_INDEX>0</SPECIAL_VALUE_INDEX></Special_Values>
      <Special_Values><SPECIAL_VALUE_TEXT>SATURATED</SPECIAL_VALUE_TEXT>
        <SPECIAL_VALUE_INDEX>65535</SPECIAL_VALUE_INDEX></Special_Values>
      <QUANTIFICATION_VALUES_LIST>
        <BOA_QUANTIFICATION_VALUE unit="none">{quant}</BOA_QUANTIFICATION_VALUE>
        <AOT_QUANTIFICATION_VALUE unit="none">1000.0</AOT_QUANTIFICATION_VALUE>
      </QUANTIFICATION_VALUES_LIST>
      {offs}
      <Spectral_Information_List>{spectral}</Spectral_Information_List>
    </Product_Image_Characteristics>
  </n1:General_Info>
</n1:Level-2A_User_Product>
"""


L1C_XML = """<?xml version="1.0" encoding="UTF-8"?>
<n1:Level-1C_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-1C.xsd">
  <n1:General_Info>
    <Product_Info>
      <PROCESSING_LEVEL>Level-1C</PROCESSING_LEVEL>
      <PRODUCT_TYPE>S2MSI1C</PRODUCT_TYPE>
      <PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE>
      <Product_Organisation><Granule_List><Granule>
        <IMAGE_FILE>GRANULE/L1C_T32TQM_A032526_20210913T101436/IMG_DATA/T32TQM_20210913T101021_B8A</IMAGE_FILE>
        <IMAGE_FILE>GRANULE/L1C_T32TQM_A032526_20210913T101436/IMG_DATA/T32TQM_20210913T101021_B10</IMAGE_FILE>
      </Granule></Granule_List></Product_Organisation>
    </Product_Info>
    <Product_Image_Characteristics>
      <QUANTIFICATION_VALUE unit="none">10000</QUANTIFICATION_VALUE>
      {offsets}
    </Product_Image_Characteristics>
  </n1:General_Info>
</n1:Level-1C_User_Product>
"""


def test_parse_l2a_baseline_04():
    meta = sentinel2.parse_mtd(l2a_xml(central=[(1, "B2", 492.3)]).encode())
    assert meta.level == "L2A" and meta.baseline == "04.00" and meta.baseline_version == (4, 0)
    assert meta.quantification == 10000.0
    # offsets are indexed by band_id: 0 = B01, 8 = B8A, 12 = B12
    assert meta.offset("B01") == -1000 and meta.offset("B8A") == -1080
    assert meta.offset("B12") == -1120 and meta.offset("b2") == -1010
    assert (meta.nodata_dn, meta.saturated_dn) == (0, 65535)
    assert meta.image_files["B02"] == {10: f"{GRANULE}/R10m/T32TQM_20210913T101021_B02_10m",
                                       20: f"{GRANULE}/R20m/T32TQM_20210913T101021_B02_20m"}
    assert set(meta.image_files["SCL"]) == {20, 60}
    assert meta.central_wavelength_nm["B02"] == 492.3  # from the metadata
    assert meta.central_wavelength_nm["B03"] == 559.8  # nominal, not in this metadata
    assert meta.spacecraft == "Sentinel-2B" and meta.product_uri.endswith(".SAFE")


def test_parse_l1c_with_and_without_offsets():
    offsets = ("<Radiometric_Offset_List>" + "".join(
        f'<RADIO_ADD_OFFSET band_id="{i}">-1000</RADIO_ADD_OFFSET>' for i in range(13))
        + "</Radiometric_Offset_List>")
    new = sentinel2.parse_mtd(L1C_XML.format(baseline="05.09", offsets=offsets))
    assert new.level == "L1C" and new.offset("B10") == -1000
    # L1C files have no resolution suffix: the native resolution is used
    assert set(new.image_files["B8A"]) == {20} and set(new.image_files["B10"]) == {60}
    old = sentinel2.parse_mtd(L1C_XML.format(baseline="02.04", offsets=""))
    assert old.offsets == {} and old.offset("B04") == 0.0


def test_baseline_04_without_offsets_warns_and_assumes_esa_offset():
    with pytest.warns(UserWarning, match="assuming ESA's offset -1000"):
        meta = sentinel2.parse_mtd(l2a_xml(offsets=False))
    assert meta.offset("B11") == -1000.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sentinel2.parse_mtd(l2a_xml(baseline="03.01", offsets=False)).offset("B11") == 0.0


@pytest.mark.parametrize("text, message", [
    ("not xml <", "not valid XML"),
    ("<Some_Other_Product/>", "not a Sentinel-2 Level-1C or Level-2A"),
])
def test_parse_refuses_what_is_not_a_product(text, message):
    with pytest.raises(ValueError, match=message):
        sentinel2.parse_mtd(text)


def test_parse_refuses_bad_numbers_and_multi_tile_products():
    with pytest.raises(ValueError, match="not a number"):
        sentinel2.parse_mtd(l2a_xml(quant="ten thousand"))
    twice = [f"{GRANULE}/R10m/T32TQM_X_B02_10m", "GRANULE/OTHER/IMG_DATA/R10m/T32TQN_X_B02_10m"]
    with pytest.raises(ValueError, match="multi-tile"):
        sentinel2.parse_mtd(l2a_xml(files=twice))


def test_dn_to_reflectance_by_hand():
    dn = np.array([[0, 1000, 1001, 3500], [11000, 65535, 500, 65534]], dtype=np.uint16)
    before = dn.copy()
    refl = sentinel2.dn_to_reflectance(dn, quantification=10000, offset=-1000)
    expected = np.array([[np.nan, 0.0, 1e-4, 0.25], [1.0, np.nan, -0.05, 6.4534]])
    np.testing.assert_allclose(refl, expected, rtol=1e-12, atol=1e-15)
    assert refl.dtype == np.float64
    np.testing.assert_array_equal(dn, before)  # input untouched
    # before baseline 04.00: no offset
    assert sentinel2.dn_to_reflectance([2500])[0] == 0.25
    # masks can be switched off
    assert sentinel2.dn_to_reflectance([0], nodata=None)[0] == 0.0


@pytest.mark.parametrize("bad", [0, -1, None])
def test_dn_to_reflectance_rejects_bad_quantification(bad):
    with pytest.raises(ValueError, match="quantification"):
        sentinel2.dn_to_reflectance([1], quantification=bad)


def test_scl_mask():
    scl = np.arange(12).reshape(3, 4)
    default = sentinel2.scl_mask(scl)
    assert set(scl[default]) == {0, 1, 2, 3, 8, 9, 10}
    assert set(scl[sentinel2.scl_mask(scl, ["water"])]) == {0, 1, 6}
    assert set(scl[sentinel2.scl_mask(scl, [])]) == {0, 1}
    with pytest.raises(ValueError, match="unknown SCL mask group"):
        sentinel2.scl_mask(scl, ["fog"])


def test_band_labels_give_back_the_default_band_map():
    labels = [sentinel2.band_label(b) for b in sentinel2.DEFAULT_BANDS]
    assert labels[0] == "B02 (492.7 nm)" and labels[7] == "B8A (864.7 nm)"
    assert guess_band_map(labels, "sentinel2") == default_band_map(10, "sentinel2")
    with pytest.raises(ValueError, match="not a Sentinel-2 band"):
        sentinel2.band_label("B13")


def test_algorithm_band_list_matches_core():
    """The Processing enum (declared without importing numpy) lists the core's bands."""
    import ast
    from pathlib import Path

    source = (Path(sentinel2.__file__).parents[1] / "algorithms" / "prepare_sentinel2.py").read_text()
    consts = {node.targets[0].id: ast.literal_eval(node.value)
              for node in ast.parse(source).body
              if isinstance(node, ast.Assign) and len(node.targets) == 1
              and getattr(node.targets[0], "id", "") in ("S2_BANDS", "S2_DEFAULT_BANDS")}
    assert consts["S2_BANDS"] == sentinel2.BANDS
    assert consts["S2_DEFAULT_BANDS"] == sentinel2.DEFAULT_BANDS


@pytest.mark.realdata
def test_real_l1c_bands_through_band_map_and_sentinel2_table(shared_data):
    """Real L1C DN (DSen2, 2017: baseline < 04.00, no offset) -> reflectance -> indices."""
    npz = np.load(shared_data / "dsen2" / "S2B_MSIL1C_20171022_T49JGM.npz")
    # everything on the 20 m grid: 10 m bands as 2 x 2 means
    bands = {}
    for name, arr in zip(npz["bands10"], npz["im10"]):
        refl = sentinel2.dn_to_reflectance(arr)
        bands[str(name)] = refl.reshape(300, 2, 300, 2).mean(axis=(1, 3))
    for name, arr in zip(npz["bands20"], npz["im20"]):
        bands[str(name)] = sentinel2.dn_to_reflectance(arr)
    names = list(sentinel2.DEFAULT_BANDS)
    stack = np.stack([bands[n] for n in names])
    assert 0 < np.nanmedian(stack) < 1  # reflectance scale, not DN
    band_map = guess_band_map([sentinel2.band_label(n) for n in names], "sentinel2")
    result = compute_indices(stack, band_map, sensor="sentinel2")
    assert [ix.key for ix in result.indices] == [
        "ferric_iron", "ferrous_iron", "ferric_oxides", "gossan", "ferrous_silicates",
        "clay_hydroxyl"]
    # by hand, on the DN (no offset: ratios of reflectance are ratios of DN)
    dn = {str(n): a.astype(float) for n, a in zip(npz["bands20"], npz["im20"])}
    with np.errstate(divide="ignore", invalid="ignore"):
        np.testing.assert_allclose(result.data[-1], dn["B11"] / dn["B12"], rtol=1e-12)
        b4 = npz["im10"][2].astype(float).reshape(300, 2, 300, 2).mean(axis=(1, 3))
        b2 = npz["im10"][0].astype(float).reshape(300, 2, 300, 2).mean(axis=(1, 3))
        np.testing.assert_allclose(result.data[0], b4 / b2, rtol=1e-12)


def test_sensor_tables_match_esa():
    # Sentinel-2 MSI: native resolutions (ESA Sentinel-2 User Handbook, Table 1), S2A central
    # wavelengths (spectral response functions v3, nm) and the L2A scene classes (ATBD Table 4)
    resolution = {"B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20,
                  "B08": 10, "B8A": 20, "B09": 60, "B10": 60, "B11": 20, "B12": 20}
    assert sentinel2.NATIVE_RESOLUTION == resolution
    assert sentinel2.BANDS == tuple(resolution)
    central = {"B01": 442.7, "B02": 492.7, "B03": 559.8, "B04": 664.6, "B05": 704.1,
               "B06": 740.5, "B07": 782.8, "B08": 832.8, "B8A": 864.7, "B09": 945.1,
               "B10": 1373.5, "B11": 1613.7, "B12": 2202.4}
    assert sentinel2.CENTRAL_WAVELENGTH_NM == central
    assert sentinel2.SCL_CLASSES == {
        0: "no data", 1: "saturated or defective", 2: "cast shadows (dark area)",
        3: "cloud shadows", 4: "vegetation", 5: "not vegetated", 6: "water",
        7: "unclassified", 8: "cloud, medium probability", 9: "cloud, high probability",
        10: "thin cirrus", 11: "snow or ice"}


def test_special_values_without_an_index_are_skipped_not_the_end():
    # a Special_Values element without SPECIAL_VALUE_INDEX comes first: the NODATA and
    # SATURATED values after it must still be read
    xml = l2a_xml().replace(
        "<Special_Values><SPECIAL_VALUE_TEXT>NODATA</SPECIAL_VALUE_TEXT>",
        "<Special_Values><SPECIAL_VALUE_TEXT>FILL</SPECIAL_VALUE_TEXT></Special_Values>"
        "<Special_Values><SPECIAL_VALUE_TEXT>NODATA</SPECIAL_VALUE_TEXT>", 1)
    xml = xml.replace("<SPECIAL_VALUE_INDEX>0</SPECIAL_VALUE_INDEX>",
                      "<SPECIAL_VALUE_INDEX>7</SPECIAL_VALUE_INDEX>")
    xml = xml.replace("<SPECIAL_VALUE_INDEX>65535</SPECIAL_VALUE_INDEX>",
                      "<SPECIAL_VALUE_INDEX>65000</SPECIAL_VALUE_INDEX>")
    assert "FILL" in xml
    meta = sentinel2.parse_mtd(xml)
    assert meta.nodata_dn == 7 and meta.saturated_dn == 65000


def test_special_values_default_to_esa_0_and_65535():
    # without Special_Values in the metadata, ESA's conventions: DN 0 no data, 65535 saturated
    xml = l2a_xml()
    start, end = xml.index("<Special_Values>"), xml.rindex("</Special_Values>")
    meta = sentinel2.parse_mtd(xml[:start] + xml[end + len("</Special_Values>"):])
    assert meta.nodata_dn == 0 and meta.saturated_dn == 65535
