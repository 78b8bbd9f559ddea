"""ASTER L1T metadata parsing and radiometry (core.aster).

The ODL snippet follows the layout of a real AST_L1T ``productmetadata.0``
(``GAININFORMATION`` objects with a ``CLASS``, ``SOLARDIRECTION`` as
(azimuth, elevation), ``UPPERLEFTM`` as (northing, easting)).  Expected
values use the published constants typed in here (ASTER User Handbook v2,
Table 5; Thome et al. 2001), not the module's tables.
"""

import datetime as dt
import math

import numpy as np
import pytest

from geochem_fusion.core import aster
from geochem_fusion.core.indices import default_band_map, guess_band_map

PRODUCT_ODL = """
GROUP                  = PRODUCTMETADATA

  OBJECT                 = SOLARDIRECTION
    NUM_VAL              = 2
    VALUE                = (152.352398, 56.711539)
  END_OBJECT             = SOLARDIRECTION

  GROUP                  = GAININFORMATION

    OBJECT                 = GAIN
      CLASS                = "1"
      NUM_VAL              = 2
      VALUE                = ("01", "HGH")
    END_OBJECT             = GAIN

    OBJECT                 = GAIN
      CLASS                = "2"
      NUM_VAL              = 2
      VALUE                = ("3N", "NOR")
    END_OBJECT             = GAIN

    OBJECT                 = GAIN
      CLASS                = "3"
      NUM_VAL              = 2
      VALUE                = ("3B", "NOR")
    END_OBJECT             = GAIN

    OBJECT                 = GAIN
      CLASS                = "4"
      NUM_VAL              = 2
      VALUE                = ("05",
                              "LO2")
    END_OBJECT             = GAIN

  END_GROUP              = GAININFORMATION

  OBJECT                 = UPPERLEFTM
    NUM_VAL              = 2
    VALUE                = (-2975092.5, 437452.5)
  END_OBJECT             = UPPERLEFTM

  OBJECT                 = UTMZONENUMBER
    NUM_VAL              = 1
    VALUE                = 19
  END_OBJECT             = UTMZONENUMBER

END_GROUP              = PRODUCTMETADATA

END
"""


def items(**extra):
    meta = aster.parse_odl(PRODUCT_ODL)
    meta.update({"CALENDARDATE": "20100515", "NORTHBOUNDINGCOORDINATE": "-26.8"})
    meta.update(extra)
    return meta


def test_parse_odl_flattens_like_gdal():
    meta = aster.parse_odl(PRODUCT_ODL)
    assert meta["GAIN.1"] == "01, HGH" and meta["GAIN.2"] == "3N, NOR"
    assert meta["GAIN.4"] == "05, LO2"  # a value continued on the next line
    assert meta["SOLARDIRECTION"] == "152.352398, 56.711539"
    assert meta["UTMZONENUMBER"] == "19"


def test_parse_metadata():
    meta = aster.parse_metadata(items())
    assert meta.date == dt.date(2010, 5, 15) and meta.day_of_year == 135
    assert (meta.sun_azimuth, meta.sun_elevation) == (152.352398, 56.711539)
    assert meta.gains == {"1": "high", "3N": "normal", "5": "low2"}  # 3B skipped
    assert meta.gain("14") == "normal"  # TIR has a single gain
    # southern hemisphere: the metadata northing is negative, +10,000 km false northing
    assert meta.south and meta.epsg == 32719
    assert meta.upper_left == (437452.5, 7024907.5)
    assert aster.parse_metadata(items(CALENDARDATE="2010-05-15")).day_of_year == 135
    north = aster.parse_metadata(items(NORTHBOUNDINGCOORDINATE="38.2"))
    assert not north.south and north.epsg == 32619 and north.upper_left[1] == -2975092.5


def test_parse_metadata_errors():
    with pytest.raises(ValueError, match="CALENDARDATE"):
        aster.parse_metadata({"SOLARDIRECTION": "1, 2"})
    with pytest.raises(ValueError, match="unknown gain"):
        aster.parse_metadata(items(**{"GAIN.9": "04, MAX"}))
    with pytest.raises(ValueError, match="not a date"):
        aster.parse_metadata(items(CALENDARDATE="May 2010"))
    meta = aster.parse_metadata(items(**{"GAIN.7": "07, OFF"}))
    with pytest.raises(ValueError, match="no gain setting for band 7"):
        meta.gain("7")


def test_unit_conversion_coefficients_are_the_handbook_values():
    assert aster.unit_conversion_coefficient("1", "high") == 0.676
    assert aster.unit_conversion_coefficient("3N", "low1") == 1.15
    assert aster.unit_conversion_coefficient("4", "normal") == 0.2174
    assert aster.unit_conversion_coefficient("9", "low2") == 0.265
    assert aster.unit_conversion_coefficient("13") == 5.693e-3
    with pytest.raises(ValueError, match="no 'low2' gain"):
        aster.unit_conversion_coefficient("2", "low2")  # VNIR has no low-2 gain


def test_dn_to_radiance_by_hand():
    dn = np.array([[0, 1, 2], [100, 254, 255]], dtype=np.uint8)
    before = dn.copy()
    rad = aster.dn_to_radiance(dn, "1", gain="high")
    expected = np.array([[np.nan, 0.0, 0.676], [99 * 0.676, 253 * 0.676, np.nan]])
    np.testing.assert_allclose(rad, expected, rtol=1e-12)
    np.testing.assert_array_equal(dn, before)
    # TIR: 16 bit, 255 is a valid value
    tir = aster.dn_to_radiance(np.array([0, 255, 3000], np.uint16), "10")
    np.testing.assert_allclose(tir, [np.nan, 254 * 6.822e-3, 2999 * 6.822e-3], rtol=1e-12)


def test_radiance_to_reflectance_by_hand():
    d = aster.earth_sun_distance(135)
    rho = aster.radiance_to_reflectance(np.array([10.0, np.nan]), "5", earth_sun_distance=d,
                                        sun_elevation=56.711539)
    by_hand = math.pi * 10.0 * d ** 2 / (86.63 * math.sin(math.radians(56.711539)))
    assert rho[0] == pytest.approx(by_hand, rel=1e-12) and np.isnan(rho[1])
    with pytest.raises(ValueError, match="thermal"):
        aster.radiance_to_reflectance([1.0], "12", earth_sun_distance=1, sun_elevation=50)
    with pytest.raises(ValueError, match="sun elevation"):
        aster.radiance_to_reflectance([1.0], "1", earth_sun_distance=1, sun_elevation=-3)


@pytest.mark.parametrize("doy, published", [
    (1, 0.98331), (4, 0.98330), (91, 0.99926), (182, 1.01667), (274, 1.00119),
    (365, 0.98333)])
def test_earth_sun_distance_against_the_published_table(doy, published):
    # Landsat 7 handbook table (ephemeris): the one-term formula is within 5e-4 AU
    assert aster.earth_sun_distance(doy) == pytest.approx(published, abs=5e-4)


def test_earth_sun_distance_extremes_and_validation():
    days = np.arange(1, 366)
    d = np.array([aster.earth_sun_distance(x) for x in days])
    assert days[d.argmin()] == 4 and days[d.argmax()] == 187  # perihelion / aphelion
    assert d.min() == pytest.approx(1 - 0.01672) and d.max() == pytest.approx(1.01672, abs=1e-5)
    with pytest.raises(ValueError, match="day_of_year"):
        aster.earth_sun_distance(0)


def test_dark_object_ignores_a_few_stray_pixels():
    counts = np.zeros(256, int)
    counts[0] = 10_000  # no data: ignored
    counts[3] = 2  # two defective pixels, below 0.01 % of 100,002
    counts[12] = 15
    counts[40:200] = 625
    assert aster.dark_object_dn(counts) == 12
    assert aster.dark_object_dn(counts, min_fraction=0) == 3
    with pytest.raises(ValueError, match="no valid pixel"):
        aster.dark_object_dn(np.r_[5, np.zeros(255)])


def test_valid_dn_counts_and_dos1():
    dn = np.array([[0, 9, 9], [255, 30, 254]], dtype=np.uint8)
    counts = aster.valid_dn_counts(dn, "2")
    assert counts.shape == (256,) and counts.sum() == 4 and counts[9] == 2 and counts[255] == 0
    rho = np.array([0.05, 0.2])
    np.testing.assert_allclose(aster.dos1(rho, 0.05), [0.01, 0.16])  # dark object -> 1 %
    with pytest.raises(ValueError, match="thermal"):
        aster.valid_dn_counts(dn, "11")


def test_band_names_and_labels():
    assert [aster.band_name(b) for b in (1, "01", "B3N", "3", "ImageData3N", "band 14")] == [
        "1", "1", "3N", "3N", "3N", "14"]
    for bad in ("3B", "15", "4N"):
        with pytest.raises(ValueError, match="not an ASTER nadir band"):
            aster.band_name(bad)
    labels = [aster.band_label(b) for b in aster.BANDS]
    assert labels[2] == "B3N (807 nm)" and labels[9] == "B10 (8291 nm)"
    assert guess_band_map(labels[:9], "aster") == default_band_map(9, "aster")
    assert guess_band_map(labels, "aster") == default_band_map(14, "aster")


def test_band_edges_contain_the_central_wavelengths():
    for band, (lo, hi) in aster.BAND_EDGES_UM.items():
        assert lo < aster.CENTRAL_WAVELENGTH_UM[band] < hi


def test_full_tables_are_the_handbook_values():
    # ASTER User Handbook v2, Table 5 (unit conversion coefficients, W m-2 sr-1 um-1 per DN)
    # and Table 1 (band edges, um), typed in here
    ucc = {
        "1": (0.676, 1.688, 2.25, None), "2": (0.708, 1.415, 1.89, None),
        "3N": (0.423, 0.862, 1.15, None), "4": (0.1087, 0.2174, 0.2900, 0.2900),
        "5": (0.0348, 0.0696, 0.0925, 0.4090), "6": (0.0313, 0.0625, 0.0830, 0.3900),
        "7": (0.0299, 0.0597, 0.0795, 0.3320), "8": (0.0209, 0.0417, 0.0556, 0.2450),
        "9": (0.0159, 0.0318, 0.0424, 0.2650),
    }
    for band, values in ucc.items():
        for gain, value in zip(("high", "normal", "low1", "low2"), values):
            if value is None:
                with pytest.raises(ValueError, match="no 'low2' gain"):
                    aster.unit_conversion_coefficient(band, gain)
            else:
                assert aster.unit_conversion_coefficient(band, gain) == value, (band, gain)
    tir = {"10": 6.822e-3, "11": 6.780e-3, "12": 6.590e-3, "13": 5.693e-3, "14": 5.225e-3}
    for band, value in tir.items():
        assert aster.unit_conversion_coefficient(band) == value
    assert aster.BAND_EDGES_UM == {
        "1": (0.52, 0.60), "2": (0.63, 0.69), "3N": (0.78, 0.86), "4": (1.600, 1.700),
        "5": (2.145, 2.185), "6": (2.185, 2.225), "7": (2.235, 2.285), "8": (2.295, 2.365),
        "9": (2.360, 2.430), "10": (8.125, 8.475), "11": (8.475, 8.825),
        "12": (8.925, 9.275), "13": (10.25, 10.95), "14": (10.95, 11.65)}


def test_both_corners_and_the_hemisphere_default():
    odl = items(LOWERRIGHTM="(-3036907.5, 497647.5)")
    meta = aster.parse_metadata(odl)
    assert meta.upper_left == (437452.5, 7024907.5)
    assert meta.lower_right == (497647.5, 6963092.5)  # -3036907.5 + 10,000 km
    assert aster.SceneMetadata(date=dt.date(2010, 5, 15), sun_azimuth=0.0,
                               sun_elevation=45.0).south is False


def test_dark_object_needs_a_1d_histogram():
    with pytest.raises(ValueError, match="1-D histogram"):
        aster.dark_object_dn(np.ones((2, 256)))
    with pytest.raises(ValueError, match="1-D histogram"):
        aster.dark_object_dn(np.float64(3.0))
