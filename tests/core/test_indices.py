"""Tests of core.indices: band-ratio mineral index tables and their evaluation."""

import re

import numpy as np
import pytest

from geochem_fusion.core import indices as ind

ASTER_FULL = {str(i): i - 1 for i in range(1, 15)}
S2_FULL = {b: i for i, b in enumerate(ind.SENTINEL2_BANDS)}


@pytest.fixture
def aster_stack():
    """A random positive 14-band ASTER-like stack: no zero denominators."""
    rng = np.random.default_rng(0)
    return rng.uniform(0.05, 0.6, size=(14, 6, 7))


def _b(stack, band):
    """ASTER band ``band`` (1-based number) of a 14-band stack in band order."""
    return stack[band - 1]


# -- tables -----------------------------------------------------------------
# Every row of the paper's ASTER table (docs/method.md step 3), one entry per ratio: (name, formula).
METHOD_ROWS = [
    ("Ferric iron", "2/1"),
    ("Ferrous iron", "5/3"),
    ("Ferrous iron", "1/2"),
    ("Ferrous iron", "5/3+1/2"),
    ("Ferric oxides", "4/3"),
    ("Gossan", "4/2"),
    ("Carbonate/chlorite/epidote", "(7+9)/8"),
    ("Epidote/chlorite/amphibole", "(6+9)/(7+8)"),
    ("Amphibole", "(6+9)/8"),
    ("Amphibole", "6/8"),
    ("Dolomite", "(6+8)/7"),
    ("Carbonate", "13/14"),
    ("Sericite/muscovite/illite/smectite", "(5+7)/6"),
    ("Alunite/kaolinite/pyrophyllite", "(4+6)/5"),
    ("Phengite", "5/6"),
    ("Kaolinite", "7/5"),
    ("Silica", "11/10"),
    ("Silica", "11/12"),
    ("Silica", "13/10"),
    ("SiO2", "13/12"),
    ("SiO2", "12/13"),
    ("Siliceous rocks", "(11·11)/(10·12)"),
    ("Garnets/pyroxenes", "12/13"),
]


def test_aster_table_has_every_method_row():
    got = [(ix.name, ix.formula) for ix in ind.ASTER_INDICES]
    assert sorted(got) == sorted(METHOD_ROWS)


@pytest.mark.parametrize("table", [ind.ASTER_INDICES, ind.SENTINEL2_INDICES])
def test_keys_unique_snake_case(table):
    keys = [ix.key for ix in table]
    assert len(set(keys)) == len(keys)
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", k) for k in keys)
    labels = [ix.label for ix in table]
    assert len(set(labels)) == len(labels)


def test_label_format():
    ix = {i.key: i for i in ind.ASTER_INDICES}["alunite_kaolinite_pyrophyllite"]
    assert ix.label == "Alunite/kaolinite/pyrophyllite (4+6)/5"
    assert ix.bands == ("4", "6", "5")
    assert ind.get_table("aster") is ind.ASTER_INDICES
    assert ind.get_table("Sentinel-2") is ind.SENTINEL2_INDICES
    with pytest.raises(ValueError, match="unknown sensor"):
        ind.get_table("landsat")


#: The Sentinel-2 formula table, written out from the sources the module cites: van der Meer
#: et al. (2014) map ASTER 4/2 (gossan) to B11/B4, 4/3 (ferric oxides) to B11/B8, 5/4
#: (ferrous silicates) to B12/B11 and 5/3+1/2 (ferrous iron) to B12/B8+B3/B4; Sabins (1999)
#: Landsat TM 3/1 (ferric iron) and 5/7 (clay/hydroxyl) are B4/B2 and B11/B12 on Sentinel-2.
S2_TABLE = {
    "ferric_iron": ("B4/B2", lambda b: b["B4"] / b["B2"]),
    "ferrous_iron": ("B12/B8+B3/B4", lambda b: b["B12"] / b["B8"] + b["B3"] / b["B4"]),
    "ferric_oxides": ("B11/B8", lambda b: b["B11"] / b["B8"]),
    "gossan": ("B11/B4", lambda b: b["B11"] / b["B4"]),
    "ferrous_silicates": ("B12/B11", lambda b: b["B12"] / b["B11"]),
    "clay_hydroxyl": ("B11/B12", lambda b: b["B11"] / b["B12"]),
}


def test_sentinel2_table_bands_and_formulas():
    by_key = {ix.key: ix for ix in ind.SENTINEL2_INDICES}
    assert set(by_key) == set(S2_TABLE)
    for key, (formula, _) in S2_TABLE.items():
        assert by_key[key].formula == formula, key
    for ix in ind.SENTINEL2_INDICES:
        assert set(ix.bands) <= set(ind.SENTINEL2_BANDS)
        assert ix.reference  # every analogue is referenced


# -- computation ---------------------------------------------------------------
def test_every_aster_row_computes(aster_stack):
    res = ind.compute_indices(aster_stack, ASTER_FULL)
    assert res.data.shape == (len(ind.ASTER_INDICES), 6, 7)
    assert res.data.dtype == np.float64
    assert [ix.key for ix in res.indices] == [ix.key for ix in ind.ASTER_INDICES]
    assert res.missing == {}
    # positive bands -> every ratio finite and positive
    assert np.all(np.isfinite(res.data)) and np.all(res.data > 0)


def test_every_sentinel2_row_computes():
    stack = np.random.default_rng(1).uniform(0.05, 0.6, size=(13, 5, 4))
    res = ind.compute_indices(stack, S2_FULL, sensor="sentinel2")
    assert len(res.indices) == len(ind.SENTINEL2_INDICES)
    assert np.all(np.isfinite(res.data)) and np.all(res.data > 0)
    k = [ix.key for ix in res.indices].index("ferrous_iron")
    expected = stack[S2_FULL["B12"]] / stack[S2_FULL["B8"]] + stack[S2_FULL["B3"]] / stack[
        S2_FULL["B4"]
    ]
    np.testing.assert_allclose(res.data[k], expected, rtol=1e-14)


@pytest.mark.parametrize("key", sorted(S2_TABLE))
def test_sentinel2_values_follow_the_formula_table(key):
    # every Sentinel-2 index computed from distinct band values (prime-like, so that a swapped
    # or wrong band gives another number) against the table written out by hand above
    stack = np.random.default_rng(2).uniform(0.05, 0.6, size=(13, 4, 5))
    bands = {b: stack[i] for i, b in enumerate(ind.SENTINEL2_BANDS)}
    res = ind.compute_indices(stack, S2_FULL, sensor="sentinel2", indices=[key])
    np.testing.assert_allclose(res.data[0], S2_TABLE[key][1](bands), rtol=1e-14)
    # one pixel by hand: B11 = 0.3, B4 = 0.1 -> gossan 3 (and 1/3 if the ratio were swapped)
    if key == "gossan":
        one = np.full((13, 1, 1), 0.2)
        one[S2_FULL["B11"]], one[S2_FULL["B4"]] = 0.3, 0.1
        value = ind.compute_indices(one, S2_FULL, sensor="sentinel2", indices=["gossan"]).data
        assert value[0, 0, 0] == pytest.approx(3.0, rel=1e-14)


@pytest.mark.parametrize(
    "key, formula",
    [
        ("alunite_kaolinite_pyrophyllite", lambda s: (_b(s, 4) + _b(s, 6)) / _b(s, 5)),
        ("siliceous_rocks", lambda s: (_b(s, 11) * _b(s, 11)) / (_b(s, 10) * _b(s, 12))),
        ("ferrous_iron_5_3_1_2", lambda s: _b(s, 5) / _b(s, 3) + _b(s, 1) / _b(s, 2)),
        ("epidote_chlorite_amphibole", lambda s: (_b(s, 6) + _b(s, 9)) / (_b(s, 7) + _b(s, 8))),
        ("ferric_iron", lambda s: _b(s, 2) / _b(s, 1)),
        ("carbonate", lambda s: _b(s, 13) / _b(s, 14)),
    ],
)
def test_hand_written_formulas(aster_stack, key, formula):
    res = ind.compute_indices(aster_stack, ASTER_FULL, indices=[key])
    # same arithmetic up to operation order: a few ulps
    np.testing.assert_allclose(res.data[0], formula(aster_stack), rtol=1e-13)


def test_band_map_order_is_respected(aster_stack):
    """Stack bands in reverse order with a matching band map give the same result."""
    reversed_stack = aster_stack[::-1]
    bmap = {str(i): 14 - i for i in range(1, 15)}
    a = ind.compute_indices(aster_stack, ASTER_FULL).data
    b = ind.compute_indices(reversed_stack, bmap).data
    np.testing.assert_array_equal(a, b)


def test_input_not_mutated(aster_stack):
    before = aster_stack.copy()
    ind.compute_indices(aster_stack, ASTER_FULL)
    np.testing.assert_array_equal(aster_stack, before)


def test_division_by_zero_gives_nan_not_inf(aster_stack):
    s = aster_stack.copy()
    s[4, 0, 0] = 0.0  # band 5 (denominator of (4+6)/5)
    s[4, 1, 1] = np.inf
    s[5, 2, 2] = np.nan  # band 6 (numerator) -> NaN propagates
    s[9, 3, 3] = 0.0  # band 10: (11·11)/(10·12) denominator product is 0
    res = ind.compute_indices(s, ASTER_FULL)
    assert not np.any(np.isinf(res.data))
    keys = [ix.key for ix in res.indices]
    akp = res.data[keys.index("alunite_kaolinite_pyrophyllite")]
    assert np.isnan(akp[0, 0]) and np.isnan(akp[1, 1]) and np.isnan(akp[2, 2])
    assert np.isfinite(akp).sum() == akp.size - 3
    sil = res.data[keys.index("siliceous_rocks")]
    assert np.isnan(sil[3, 3]) and np.isfinite(sil).sum() == sil.size - 1
    # band 5 is the *numerator* of phengite 5/6: 0 there is a valid 0, inf becomes NaN
    phe = res.data[keys.index("phengite")]
    assert phe[0, 0] == 0.0 and np.isnan(phe[1, 1])


def test_missing_bands_reported_for_vnir_swir_stack(aster_stack):
    nine = aster_stack[:9]
    res = ind.compute_indices(nine, ind.default_band_map(9, "aster"))
    tir = {ix.key for ix in ind.ASTER_INDICES if any(int(b) >= 10 for b in ix.bands)}
    assert tir  # the table does have TIR indices
    assert set(res.missing) == tir
    assert res.missing["siliceous_rocks"] == ["11", "10", "12"]
    assert {ix.key for ix in res.indices} == {ix.key for ix in ind.ASTER_INDICES} - tir
    assert res.data.shape[0] == len(ind.ASTER_INDICES) - len(tir)


def test_requested_index_with_missing_band_raises(aster_stack):
    with pytest.raises(ValueError, match=r"siliceous_rocks.*11, 10, 12"):
        ind.compute_indices(aster_stack[:9], ind.default_band_map(9, "aster"),
                            indices=["gossan", "siliceous_rocks"])


def test_bad_requests_raise(aster_stack):
    with pytest.raises(ValueError, match="unknown aster index"):
        ind.compute_indices(aster_stack, ASTER_FULL, indices=["ndvi"])
    with pytest.raises(ValueError, match="ndim=2"):
        ind.compute_indices(aster_stack[0], ASTER_FULL)
    with pytest.raises(ValueError, match="outside the stack"):
        ind.compute_indices(aster_stack[:9], ASTER_FULL)
    with pytest.raises(ValueError, match="no aster index is computable"):
        ind.compute_indices(aster_stack[:1], {"1": 0})
    with pytest.raises(ValueError, match="not a sentinel2 band"):
        ind.compute_indices(aster_stack, {"B13": 0}, sensor="sentinel2")


def test_b02_alias_in_band_map():
    stack = np.random.default_rng(2).uniform(0.1, 0.5, size=(4, 3, 3))
    res = ind.compute_indices(
        stack, {"B02": 0, "B03": 1, "B04": 2, "B08": 3}, sensor="sentinel2"
    )
    assert [ix.key for ix in res.indices] == ["ferric_iron"]
    np.testing.assert_allclose(res.data[0], stack[2] / stack[0], rtol=1e-15)
    assert set(res.missing) == {"ferrous_iron", "ferric_oxides", "gossan", "ferrous_silicates",
                                "clay_hydroxyl"}


def test_known_spectrum_ranks_kaolinite_ratio():
    """A kaolinite-like spectrum scores higher on the Al-OH index than a flat one.

    Deep 2.2 um Al-OH absorption in ASTER band 5/6.
    """
    flat = np.full(9, 0.4)
    kaol = flat.copy()
    kaol[4] = kaol[5] = 0.25  # bands 5 and 6 absorb
    stack = np.stack([flat, kaol], axis=1)[:, :, None]  # (9 bands, 2 rows, 1 col)
    res = ind.compute_indices(stack, ind.default_band_map(9, "aster"),
                              indices=["alunite_kaolinite_pyrophyllite", "kaolinite"])
    assert res.data[0, 1, 0] > res.data[0, 0, 0]
    assert res.data[1, 1, 0] > res.data[1, 0, 0]


# -- band maps -----------------------------------------------------------------
def test_guess_band_map_sentinel2():
    desc = ["B02", "B3 (560 nm)", "band 4", "Band 8: B08", "B8A", "SR_B11", "B12", "cloud mask"]
    assert ind.guess_band_map(desc, "sentinel2") == {
        "B2": 0, "B3": 1, "B4": 2, "B8": 3, "B8A": 4, "B11": 5, "B12": 6,
    }


def test_guess_band_map_aster():
    desc = ["ASTER b1", "B02", "ASTER b3N", "3B", "band 4", "5", "Band_06", "b7", "B8", "b9"]
    got = ind.guess_band_map(desc, "aster")
    # 3B (backward-looking stereo) is not band 3
    assert got == {"1": 0, "2": 1, "3": 2, "4": 4, "5": 5, "6": 6, "7": 7, "8": 8, "9": 9}
    assert ind.guess_band_map(["", None, "blue"], "aster") == {}


def test_default_band_map():
    assert ind.default_band_map(9, "aster") == {str(i): i - 1 for i in range(1, 10)}
    assert ind.default_band_map(14, "aster")["14"] == 13
    assert ind.default_band_map(4, "sentinel2") == {"B2": 0, "B3": 1, "B4": 2, "B8": 3}
    s2 = ind.default_band_map(10, "sentinel2")
    assert list(s2) == ["B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12"]
    assert list(s2.values()) == list(range(10))
    with pytest.raises(ValueError, match="provide a band map"):
        ind.default_band_map(5, "sentinel2")


# -- the rules of the band map and the formula parser (pinned one by one) -------------------
@pytest.mark.parametrize(("formula", "message"), [
    ("4/", "expected a band"),          # a ratio without its denominator
    ("(4+6/5", "expected \\)"),         # an unclosed group
    ("4/5 6", "expected \\+"),          # two ratios without '+'
    ("/5", "malformed formula '/5'$"),  # a factor must be a band: '/' is not one
    ("·/5", "malformed formula '·/5'$"),  # nor is a product sign
])
def test_malformed_formulas_are_refused_with_what_was_expected(formula, message):
    with pytest.raises(ValueError, match=message):
        ind._parse(formula)


def test_band_names_by_sensor():
    # ASTER has bands 1..14 and 3N (nadir) -- not 15, not 3B, not 2N; Sentinel-2 has B1..B12
    # and B8A -- not B3N, not B4A
    assert ind._canonical_band("3N", "aster") == "3"
    assert ind._canonical_band("14", "aster") == "14"
    for name in ("15", "3B", "2N", "4N", "8A"):
        assert ind._canonical_band(name, "aster") is None, name
    assert ind._canonical_band("B8A", "sentinel2") == "B8A"
    assert ind._canonical_band("B02", "sentinel2") == "B2"
    for name in ("B3N", "B4A", "B13", "B8N"):
        assert ind._canonical_band(name, "sentinel2") is None, name
    stack = np.ones((15, 2, 2))
    with pytest.raises(ValueError, match=r"'15' is not a aster band name; use e\.g\. '1'\.\.'14'"):
        ind.compute_indices(stack, {"15": 0})
    with pytest.raises(ValueError, match=r"'B3N' is not a sentinel2 band name; use e\.g\. 'B2'"):
        ind.compute_indices(stack, {"B3N": 0}, sensor="sentinel2")


def test_band_map_indices_and_duplicates():
    stack = np.ones((14, 2, 2))
    with pytest.raises(ValueError, match=r"band_map\['3'\] = 14 is outside the stack's bands 0\.\.13"):
        ind.compute_indices(stack, {"1": 0, "2": 1, "3": 14})
    with pytest.raises(ValueError, match=r"= -1 is outside"):
        ind.compute_indices(stack, {"1": 0, "2": -1})
    # the same band under two names is refused whichever index is larger
    for a, b in ((0, 1), (1, 0)):
        with pytest.raises(ValueError, match="mapped twice"):
            ind.compute_indices(stack, {"B2": a, "B02": b, "B3": 2}, sensor="sentinel2")
    # the same band twice with the same index is harmless
    res = ind.compute_indices(stack, {"B4": 2, "B04": 2, "B2": 0}, sensor="sentinel2",
                              indices=["ferric_iron"])
    np.testing.assert_array_equal(res.data, 1.0)


def test_guess_band_map_takes_the_last_band_token():
    # QGIS shows "Band 1: B02": the band is B2, not B1
    assert ind.guess_band_map(["Band 1: B02", "Band 2: B03"], "sentinel2") == {"B2": 0, "B3": 1}


def test_default_band_map_only_for_the_documented_stacks():
    assert ind.default_band_map(9, "aster") == {str(i): i - 1 for i in range(1, 10)}
    assert len(ind.default_band_map(14, "aster")) == 14
    for n, sensor in ((10, "aster"), (3, "sentinel2"), (5, "sentinel2"), (11, "sentinel2"),
                      (13, "sentinel2")):
        with pytest.raises(ValueError, match="provide a band map"):
            ind.default_band_map(n, sensor)
    with pytest.raises(ValueError, match=r"4 \(B2,B3,B4,B8\) or 10"):
        ind.default_band_map(7, "sentinel2")
    with pytest.raises(ValueError, match="9 or 14"):
        ind.default_band_map(7, "aster")


def test_negative_denominator_is_a_number_zero_is_nodata():
    # reflectance may be slightly negative after the offset: the ratio is then a (negative)
    # number; only a zero or non-finite denominator is nodata
    stack = np.full((4, 1, 3), 0.2)
    stack[0] = [[-0.1, 0.0, 0.1]]  # B2, the denominator of ferric iron B4/B2
    res = ind.compute_indices(stack, {"B2": 0, "B3": 1, "B4": 2, "B8": 3}, sensor="sentinel2",
                              indices=["ferric_iron"])
    np.testing.assert_allclose(res.data[0, 0], [-2.0, np.nan, 2.0])


def test_skipped_indices_are_logged(aster_stack, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger=ind.__name__):
        ind.compute_indices(aster_stack, ASTER_FULL)
    assert "skipped" not in caplog.text  # every index computable: nothing to say
    with caplog.at_level(logging.INFO, logger=ind.__name__):
        ind.compute_indices(aster_stack[:9], ind.default_band_map(9, "aster"))
    assert "skipped" in caplog.text and "siliceous_rocks" in caplog.text
