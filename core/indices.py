"""Band-ratio mineral indices for ASTER and Sentinel-2 stacks.

The ASTER table is the one of the paper (Tables 1-2), compiled from
Kalinowski & Oliver (2004).  Where a mineral feature lists several ratios,
each ratio is its own index, and the Kalinowski & Oliver combined ferrous
iron index ``5/3+1/2`` is provided next to its two parts.  Indices that need
the thermal bands (10-14) are only computable when TIR is in the stack.

The Sentinel-2 table holds only widely used analogues of the ASTER/Landsat
ratios (see :data:`SENTINEL2_INDICES`).  Sentinel-2 has two broad SWIR bands
and no thermal bands, so it cannot resolve the Al-OH / Mg-OH / carbonate
features the ASTER SWIR ratios target; do not read its "clay/hydroxyl"
ratio as a mineral identification.

Formulas are written as in the tables (``"(4+6)/5"``, ``"(11·11)/(10·12)"``,
``"5/3+1/2"``, ``"B11/B12"``) and parsed once into a small expression: a
sum of ratios, each a sum of band products over a sum of band products.
They are evaluated with numpy, never with ``eval``.

References
----------
Kalinowski, A., Oliver, S. (2004). ASTER Mineral Index Processing Manual.
    Remote Sensing Applications, Geoscience Australia.
van der Meer, F.D., van der Werff, H.M.A., van Ruitenbeek, F.J.A. (2014).
    Potential of ESA's Sentinel-2 for geological applications. Remote Sensing
    of Environment 148, 124-133.
van der Werff, H., van der Meer, F. (2016). Sentinel-2A MSI and Landsat 8 OLI
    provide data continuity for geological remote sensing. Remote Sensing
    8(11), 883.
Sabins, F.F. (1999). Remote sensing for mineral exploration. Ore Geology
    Reviews 14, 157-183.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "ASTER_INDICES",
    "SENTINEL2_INDICES",
    "Index",
    "IndexResult",
    "Ratio",
    "compute_indices",
    "default_band_map",
    "get_table",
    "guess_band_map",
]

SENSORS = ("aster", "sentinel2")

ASTER_BANDS = tuple(str(i) for i in range(1, 15))
SENTINEL2_BANDS = (
    "B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12",
)

#: Products of bands, e.g. ``(("11", "11"),)`` for ``11·11``; a sum of them is a tuple.
Sum = Tuple[Tuple[str, ...], ...]


@dataclass(frozen=True)
class Ratio:
    """One ratio term ``numerator / denominator``.

    Each side is a sum of products of bands: ``(("4",), ("6",))`` is
    ``4+6`` and ``(("10", "12"),)`` is ``10·12``.
    """

    numerator: Sum
    denominator: Sum


@dataclass(frozen=True)
class Index:
    """A band-ratio index.

    Attributes
    ----------
    key : str
        Stable lowercase snake identifier, e.g. ``"alunite_kaolinite_pyrophyllite"``.
        Features with several ratios append their band numbers in formula
        order (``"silica_11_10"``, ``"ferrous_iron_5_3_1_2"``).
    name : str
        Mineral feature, e.g. ``"Alunite/kaolinite/pyrophyllite"``.
    formula : str
        The formula as written in the table, e.g. ``"(4+6)/5"`` or ``"B11/B12"``.
    bands : tuple of str
        Canonical band names the formula needs, in order of first appearance.
    terms : tuple of Ratio
        The parsed formula: the index is the sum of these ratios.
    reference : str
        Where the ratio comes from.
    """

    key: str
    name: str
    formula: str
    bands: Tuple[str, ...]
    terms: Tuple[Ratio, ...]
    reference: str = ""

    @property
    def label(self) -> str:
        """``f"{name} {formula}"``, used as the output band description."""
        return f"{self.name} {self.formula}"


@dataclass
class IndexResult:
    """Output of :func:`compute_indices`.

    Attributes
    ----------
    data : ndarray, shape (n, rows, cols), float64
        One layer per computed index, NaN where undefined.
    indices : tuple of Index
        The computed indices, in the order of ``data``.
    missing : dict
        ``key -> list of absent bands`` for indices that could not be computed.
    """

    data: np.ndarray
    indices: Tuple[Index, ...]
    missing: Dict[str, List[str]]

    @property
    def labels(self) -> List[str]:
        """Band descriptions of ``data`` (``Index.label`` of each layer)."""
        return [ix.label for ix in self.indices]


# -- formula parsing ---------------------------------------------------------
_TOKEN = re.compile(r"\s*(B\d+A?|\d+|[()+/·*×])")


def _parse(formula: str) -> Tuple[Ratio, ...]:
    """Parse ``ratio ('+' ratio)*``.

    A ratio is ``group '/' group`` and a group is a parenthesised sum of
    products or a bare product of bands.
    """
    pos, tokens = 0, []
    formula_s = formula.strip()
    while pos < len(formula_s):
        m = _TOKEN.match(formula_s, pos)
        if m is None:
            raise ValueError(f"cannot parse formula {formula!r} at {formula_s[pos:]!r}")
        tokens.append(m.group(1))
        pos = m.end()
    i = 0

    def peek():
        return tokens[i] if i < len(tokens) else None

    def take(expected=None):
        nonlocal i
        tok = peek()
        if tok is None or (expected is not None and tok != expected):
            raise ValueError(f"malformed formula {formula!r}: expected {expected or 'a band'}")
        i += 1
        return tok

    def product():
        factors = [take()]
        while peek() in ("·", "*", "×"):
            take()
            factors.append(take())
        if any(not (f[0].isdigit() or f[0] == "B") for f in factors):
            raise ValueError(f"malformed formula {formula!r}")
        return tuple(factors)

    def group():
        if peek() == "(":
            take("(")
            terms = [product()]
            while peek() == "+":
                take("+")
                terms.append(product())
            take(")")
            return tuple(terms)
        return (product(),)

    ratios = []
    while True:
        num = group()
        take("/")
        ratios.append(Ratio(num, group()))
        if peek() is None:
            return tuple(ratios)
        take("+")


def _index(key: str, name: str, formula: str, reference: str) -> Index:
    terms = _parse(formula)
    bands: List[str] = []
    for ratio in terms:
        for side in (ratio.numerator, ratio.denominator):
            for prod in side:
                bands.extend(b for b in prod if b not in bands)
    return Index(key, name, formula, tuple(bands), terms, reference)


_KO = "Kalinowski & Oliver (2004); paper Table 1"

#: ASTER indices: every row of the paper's Tables 1-2 (``docs/method.md`` step 3), one index per ratio.
#: Note that "SiO2 12/13" and "Garnets/pyroxenes 12/13" are the same ratio under two
#: names (both rows are in the paper); drop one before a PCA if duplicates matter.
ASTER_INDICES: Tuple[Index, ...] = (
    _index("ferric_iron", "Ferric iron", "2/1", _KO),
    _index("ferrous_iron_5_3", "Ferrous iron", "5/3", _KO),
    _index("ferrous_iron_1_2", "Ferrous iron", "1/2", _KO),
    _index("ferrous_iron_5_3_1_2", "Ferrous iron", "5/3+1/2", "Kalinowski & Oliver (2004)"),
    _index("ferric_oxides", "Ferric oxides", "4/3", _KO),
    _index("gossan", "Gossan", "4/2", _KO),
    _index("carbonate_chlorite_epidote", "Carbonate/chlorite/epidote", "(7+9)/8", _KO),
    _index("epidote_chlorite_amphibole", "Epidote/chlorite/amphibole", "(6+9)/(7+8)", _KO),
    _index("amphibole_6_9_8", "Amphibole", "(6+9)/8", _KO),
    _index("amphibole_6_8", "Amphibole", "6/8", _KO),
    _index("dolomite", "Dolomite", "(6+8)/7", _KO),
    _index("carbonate", "Carbonate", "13/14", _KO),
    _index(
        "sericite_muscovite_illite_smectite", "Sericite/muscovite/illite/smectite", "(5+7)/6", _KO
    ),
    _index("alunite_kaolinite_pyrophyllite", "Alunite/kaolinite/pyrophyllite", "(4+6)/5", _KO),
    _index("phengite", "Phengite", "5/6", _KO),
    _index("kaolinite", "Kaolinite", "7/5", _KO),
    _index("silica_11_10", "Silica", "11/10", _KO),
    _index("silica_11_12", "Silica", "11/12", _KO),
    _index("silica_13_10", "Silica", "13/10", _KO),
    _index("sio2_13_12", "SiO2", "13/12", _KO),
    _index("sio2_12_13", "SiO2", "12/13", _KO),
    _index("siliceous_rocks", "Siliceous rocks", "(11·11)/(10·12)", _KO),
    _index(
        "garnets_pyroxenes", "Garnets/pyroxenes", "12/13",
        "Kalinowski & Oliver (2004); paper Table 2",
    ),
)

_S2_VDM = "van der Meer et al. (2014)"
#: Sentinel-2 analogues of the classic ASTER/Landsat ratios.  Band choices follow the
#: Sentinel-2 geology products of van der Meer et al. (2014) (ASTER 2/1 -> red/blue,
#: ASTER 5/3+1/2 -> B12/B8+B3/B4, ASTER 4/3 -> B11/B8, ASTER 4/2 -> B11/B4,
#: ASTER 5/4 -> B12/B11) and the Landsat TM 3/1 and 5/7 ratios (Sabins 1999) that
#: van der Werff & van der Meer (2016) evaluated on real Sentinel-2A data.
SENTINEL2_INDICES: Tuple[Index, ...] = (
    _index("ferric_iron", "Ferric iron", "B4/B2",
           "Landsat TM 3/1 analogue; Sabins (1999); van der Werff & van der Meer (2016)"),
    _index("ferrous_iron", "Ferrous iron", "B12/B8+B3/B4",
           f"ASTER 5/3+1/2 analogue; {_S2_VDM}"),
    _index("ferric_oxides", "Ferric oxides", "B11/B8", f"ASTER 4/3 analogue; {_S2_VDM}"),
    _index("gossan", "Gossan", "B11/B4", f"ASTER 4/2 analogue; {_S2_VDM}"),
    _index("ferrous_silicates", "Ferrous silicates", "B12/B11", f"ASTER 5/4 analogue; {_S2_VDM}"),
    _index("clay_hydroxyl", "Clay/hydroxyl", "B11/B12",
           "Landsat TM 5/7 analogue; Sabins (1999); van der Werff & van der Meer (2016)"),
)


def _check_sensor(sensor: str) -> str:
    s = str(sensor).lower().replace("-", "").replace("_", "")
    if s not in SENSORS:
        raise ValueError(f"unknown sensor {sensor!r}; expected one of {SENSORS}")
    return s


def get_table(sensor: str) -> Tuple[Index, ...]:
    """Index table of a sensor: ``"aster"`` or ``"sentinel2"``."""
    return ASTER_INDICES if _check_sensor(sensor) == "aster" else SENTINEL2_INDICES


# -- band names ----------------------------------------------------------------
def _canonical_band(name, sensor: str) -> Optional[str]:
    """Canonical band name (``"3"`` for ASTER ``"B3N"``, ``"B2"`` for ``"B02"``), or None.

    ASTER ``3B`` (the backward-looking stereo band) is deliberately *not* band 3.
    """
    s = str(name).strip().upper().replace(" ", "").replace("_", "")
    s = re.sub(r"^(BAND|B)", "", s)
    m = re.fullmatch(r"0*(\d{1,2})(A|N)?", s)
    if m is None:
        return None
    num, suffix = int(m.group(1)), m.group(2) or ""
    if sensor == "aster":
        if suffix == "A" or (suffix == "N" and num != 3):
            return None
        band = str(num)
        return band if band in ASTER_BANDS else None
    if suffix == "N" or (suffix == "A" and num != 8):
        return None
    band = f"B{num}{suffix}"
    return band if band in SENTINEL2_BANDS else None


def _normalise_band_map(band_map: Mapping, sensor: str, n_bands: int) -> Dict[str, int]:
    out: Dict[str, int] = {}
    for name, idx in band_map.items():
        band = _canonical_band(name, sensor)
        if band is None:
            raise ValueError(
                f"band_map key {name!r} is not a {sensor} band name; use e.g. "
                + ("'1'..'14' (or '3N')" if sensor == "aster" else "'B2'..'B12', 'B8A' (or 'B02')")
            )
        if isinstance(idx, (bool, np.bool_)) or not isinstance(idx, (int, np.integer)):
            raise ValueError(f"band_map[{name!r}] must be an int stack index, got {idx!r}")
        if not 0 <= idx < n_bands:
            raise ValueError(
                f"band_map[{name!r}] = {idx} is outside the stack's bands 0..{n_bands - 1}"
            )
        if band in out and out[band] != idx:
            raise ValueError(
                f"band {band} is mapped twice in band_map (stack indices {out[band]} and {idx})"
            )
        out[band] = int(idx)
    return out


_BAND_TOKEN = re.compile(r"(?:^|[^A-Z0-9])(?:BAND|B)[\s_:]*0*(\d{1,2}[AN]?)(?![A-Z0-9])")
_BARE_TOKEN = re.compile(r"^\s*0*(\d{1,2}[AN]?)\s*$")


def guess_band_map(descriptions: Sequence[str], sensor: str) -> Dict[str, int]:
    """Guess a band map from raster band descriptions.

    Recognises ``"B02"``, ``"B2 (490 nm)"``, ``"band 4"``, ``"Band_8A"``,
    ``"SR_B4"``, ``"ASTER b3N"``, bare ``"3N"`` / ``"8A"`` / ``"4"``; when a
    description holds several band tokens the last one is used (``"Band 1: B02"``
    is B2).  A generic
    ``"Band 3"`` is read as *sensor* band 3, so check the result when the
    descriptions are only the default GDAL/QGIS band numbers.

    Parameters
    ----------
    descriptions : sequence of str
        One description per stack band, in stack order.
    sensor : {"aster", "sentinel2"}

    Returns
    -------
    dict
        Canonical band name -> 0-based stack band index, for the descriptions
        that could be matched (possibly empty).  When two descriptions give the
        same band, the first wins and a warning is logged.
    """
    sensor = _check_sensor(sensor)
    out: Dict[str, int] = {}
    for i, desc in enumerate(descriptions):
        text = str(desc or "").upper()
        # the last band token wins: "Band 1: B02" (QGIS display name) is B2
        tokens = _BAND_TOKEN.findall(text) or _BARE_TOKEN.findall(text)
        band = _canonical_band(tokens[-1], sensor) if tokens else None
        if band is None:
            logger.debug("band %d description %r not recognised as a %s band", i, desc, sensor)
            continue
        if band in out:
            logger.warning(
                "band %s found in descriptions of stack bands %d and %d; keeping %d",
                band, out[band], i, out[band],
            )
            continue
        out[band] = i
    return out


def default_band_map(n_bands: int, sensor: str) -> Dict[str, int]:
    """Band map of a stack in the usual band order.

    ASTER: 9 bands (VNIR+SWIR, 1..9) or 14 bands (1..14).  Sentinel-2: 4 bands
    ``B2, B3, B4, B8`` or 10 bands ``B2, B3, B4, B5, B6, B7, B8, B8A, B11, B12``.

    Raises
    ------
    ValueError
        For any other band count: provide a band map (or band descriptions).
    """
    sensor = _check_sensor(sensor)
    if sensor == "aster" and n_bands in (9, 14):
        order = ASTER_BANDS[:n_bands]
    elif sensor == "sentinel2" and n_bands == 4:
        order = ("B2", "B3", "B4", "B8")
    elif sensor == "sentinel2" and n_bands == 10:
        order = ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12")
    else:
        expected = "9 or 14" if sensor == "aster" else "4 (B2,B3,B4,B8) or 10 (B2..B8A,B11,B12)"
        raise ValueError(
            f"no default band order for a {n_bands}-band {sensor} stack (expected {expected} "
            "bands); provide a band map, e.g. {'B2': 0, 'B3': 1, ...}"
        )
    return {band: i for i, band in enumerate(order)}


# -- evaluation ----------------------------------------------------------------
def _sum_of_products(side: Sum, stack: np.ndarray, band_map: Dict[str, int]) -> np.ndarray:
    total = None
    for prod in side:
        term = stack[band_map[prod[0]]].astype(np.float64, copy=True)
        for band in prod[1:]:
            term *= stack[band_map[band]]
        total = term if total is None else total + term
    return total


def _evaluate(index: Index, stack: np.ndarray, band_map: Dict[str, int]) -> np.ndarray:
    out = None
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for ratio in index.terms:
            num = _sum_of_products(ratio.numerator, stack, band_map)
            den = _sum_of_products(ratio.denominator, stack, band_map)
            bad = (den == 0) | ~np.isfinite(den)
            den[bad] = 1.0
            val = num / den
            val[bad] = np.nan
            out = val if out is None else out + val
    out[~np.isfinite(out)] = np.nan
    return out


def compute_indices(
    stack,
    band_map: Mapping,
    *,
    sensor: str = "aster",
    indices: Optional[Sequence[str]] = None,
) -> IndexResult:
    """Compute band-ratio indices of a stack.

    Parameters
    ----------
    stack : array_like, shape (bands, rows, cols)
        Reflectance (or radiance) bands; NaN is nodata.  Not modified.
    band_map : mapping
        Sensor band name -> 0-based stack band index, e.g. ``{"1": 0, "2": 1}``
        for ASTER or ``{"B2": 0, "B3": 1}`` for Sentinel-2.  ``"B02"`` and
        ``"3N"`` style names are accepted.
    sensor : {"aster", "sentinel2"}
        Which table to use.
    indices : sequence of str, optional
        Index keys to compute, in that order.  ``None`` computes every index
        whose bands are all in ``band_map`` and reports the others in
        ``missing``.

    Returns
    -------
    IndexResult
        ``data`` of shape (n, rows, cols), float64.  A ratio is NaN where its
        denominator is 0 or not finite; NaN inputs give NaN; never inf.

    Raises
    ------
    ValueError
        Bad stack or band map; an unknown key in ``indices``; an explicitly
        requested index whose bands are absent (named with the bands); or
        ``indices=None`` and no index of the table is computable.
    """
    sensor = _check_sensor(sensor)
    stack = np.asarray(stack)
    if stack.ndim != 3:
        raise ValueError(f"expected a (bands, rows, cols) stack, got ndim={stack.ndim}")
    if not np.issubdtype(stack.dtype, np.number):
        raise ValueError(f"expected a numeric stack, got dtype {stack.dtype}")
    bmap = _normalise_band_map(band_map, sensor, stack.shape[0])
    table = {ix.key: ix for ix in get_table(sensor)}

    if indices is None:
        wanted = list(table.values())
    else:
        if isinstance(indices, str):
            indices = [indices]
        unknown = [k for k in indices if k not in table]
        if unknown:
            raise ValueError(
                f"unknown {sensor} index key(s) {unknown}; available: {sorted(table)}"
            )
        wanted = [table[k] for k in indices]

    missing = {
        ix.key: [b for b in ix.bands if b not in bmap]
        for ix in wanted
        if any(b not in bmap for b in ix.bands)
    }
    if indices is not None and missing:
        details = "; ".join(
            f"{table[k].label!r} ({k}) needs band(s) {', '.join(v)}" for k, v in missing.items()
        )
        raise ValueError(
            f"cannot compute the requested index(es): {details}; the band map has "
            f"{sorted(bmap)}. Add those bands to the stack/band map or drop the index."
        )
    todo = [ix for ix in wanted if ix.key not in missing]
    if not todo:
        raise ValueError(
            f"no {sensor} index is computable from bands {sorted(bmap)}; "
            f"missing bands per index: {missing}"
        )
    if missing:
        logger.info("skipped %d index(es) lacking bands: %s", len(missing), missing)

    data = np.empty((len(todo),) + stack.shape[1:], dtype=np.float64)
    for k, ix in enumerate(todo):
        data[k] = _evaluate(ix, stack, bmap)
    return IndexResult(data=data, indices=tuple(todo), missing=missing)
