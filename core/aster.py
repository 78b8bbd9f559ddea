"""ASTER L1T metadata and radiometry: digital numbers to radiance and reflectance.

Pure parsing and arithmetic; reading the HDF-EOS file is the job of the
Processing algorithm ``prepareaster``.

An ASTER L1T scene (``AST_L1T_*.hdf``) stores at-sensor radiance as digital
numbers: VNIR bands 1, 2, 3N at 15 m, SWIR bands 4-9 at 30 m (8 bit), TIR
bands 10-14 at 90 m (16 bit), north-up in UTM.  ``DN = 0`` is no data.
The conversion to radiance depends on the gain each VNIR/SWIR band was
acquired with (high, normal, low 1, low 2), given in the file's metadata::

    L = (DN - 1) * UCC[band, gain]                    (W m-2 sr-1 um-1)
    rho_TOA = pi * L * d**2 / (ESUN[band] * cos(theta_z))

with ``d`` the Earth-Sun distance (AU) on the acquisition day and
``theta_z = 90 deg - sun elevation``.  The dark-object subtraction DOS1
(Chavez 1996) is offered as a simple atmospheric correction.

Not corrected: SWIR crosstalk (light leaking from band 4 into bands 5 and 9
in data before the 2007 SWIR detector failure, Iwasaki & Tonooka 2005).
Use crosstalk-corrected products (e.g. AST_07XT) where it matters.

Metadata are read from the flat ``NAME=value`` items GDAL makes of the
file's ODL attributes (``coremetadata.0``, ``productmetadata.0``):
``CALENDARDATE=20100515``, ``SOLARDIRECTION=152.35, 56.71`` (azimuth,
elevation), ``GAIN.1=01, HGH`` ... ``GAIN.n=09, NOR``, ``UPPERLEFTM`` and
``LOWERRIGHTM`` (northing, easting of the corner pixel centres, m),
``UTMZONENUMBER``, ``NORTHBOUNDINGCOORDINATE``.  :func:`parse_odl` produces
the same items from the ODL text itself.

References
----------
Abrams, M., Hook, S., Ramachandran, B. (2002). ASTER User Handbook, version 2.
    Jet Propulsion Laboratory.  Table 5: unit conversion coefficients.
Thome, K. et al. (2001), via the LP DAAC ASTER L1T tutorial (Krehbiel, C., 2017,
    "How to convert ASTER L1T radiance to top of atmosphere reflectance"):
    exo-atmospheric solar irradiance of bands 1-9.  Smith's values
    (1845.99, 1555.74, 1119.47, 231.25, 79.81, 74.99, 68.66, 59.74, 56.92) differ
    by up to 10 % in SWIR; ratios of neighbouring SWIR bands barely change.
Chavez, P.S. (1996). Image-based atmospheric corrections - revisited and improved.
    Photogrammetric Engineering & Remote Sensing 62(9), 1025-1036 (DOS1).
Iwasaki, A., Tonooka, H. (2005). Validation of a crosstalk correction algorithm
    for ASTER/SWIR. IEEE Transactions on Geoscience and Remote Sensing 43(12).
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import re
from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional, Tuple

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "BANDS",
    "BAND_EDGES_UM",
    "ESUN",
    "UCC",
    "SceneMetadata",
    "band_label",
    "dark_object_dn",
    "dn_to_radiance",
    "dos1",
    "earth_sun_distance",
    "parse_metadata",
    "parse_odl",
    "radiance_to_reflectance",
    "unit_conversion_coefficient",
    "valid_dn_counts",
]

VNIR_BANDS: Tuple[str, ...] = ("1", "2", "3N")
SWIR_BANDS: Tuple[str, ...] = ("4", "5", "6", "7", "8", "9")
TIR_BANDS: Tuple[str, ...] = ("10", "11", "12", "13", "14")
#: Nadir bands of an L1T scene (the backward-looking 3B is not used).
BANDS: Tuple[str, ...] = VNIR_BANDS + SWIR_BANDS + TIR_BANDS
SUBSYSTEM: Dict[str, str] = {
    **{b: "VNIR" for b in VNIR_BANDS}, **{b: "SWIR" for b in SWIR_BANDS},
    **{b: "TIR" for b in TIR_BANDS},
}
#: Pixel size of each subsystem in an L1T product (m).
RESOLUTION: Dict[str, float] = {"VNIR": 15.0, "SWIR": 30.0, "TIR": 90.0}

#: Published band edges (um), ASTER User Handbook v2, Table 1.
BAND_EDGES_UM: Dict[str, Tuple[float, float]] = {
    "1": (0.52, 0.60), "2": (0.63, 0.69), "3N": (0.78, 0.86),
    "4": (1.600, 1.700), "5": (2.145, 2.185), "6": (2.185, 2.225), "7": (2.235, 2.285),
    "8": (2.295, 2.365), "9": (2.360, 2.430),
    "10": (8.125, 8.475), "11": (8.475, 8.825), "12": (8.925, 9.275), "13": (10.25, 10.95),
    "14": (10.95, 11.65),
}
#: Central wavelengths (um), ASTER User Handbook v2.
CENTRAL_WAVELENGTH_UM: Dict[str, float] = {
    "1": 0.556, "2": 0.661, "3N": 0.807, "4": 1.656, "5": 2.167, "6": 2.209, "7": 2.262,
    "8": 2.336, "9": 2.400, "10": 8.291, "11": 8.634, "12": 9.075, "13": 10.657, "14": 11.318,
}

GAINS: Tuple[str, ...] = ("high", "normal", "low1", "low2")
#: Gain codes of the metadata (``GAIN.n=04, NOR``) -> gain names.
GAIN_CODES: Dict[str, str] = {
    "HGH": "high", "HIGH": "high", "NOR": "normal", "NORMAL": "normal", "LO1": "low1",
    "LOW": "low1", "LOW1": "low1", "LO2": "low2", "LOW2": "low2",
}
#: Unit conversion coefficients (W m-2 sr-1 um-1 per DN), ASTER User Handbook v2,
#: Table 5.  VNIR bands have no low-2 gain.  TIR bands have a single gain.
UCC: Dict[str, Dict[str, float]] = {
    "1": {"high": 0.676, "normal": 1.688, "low1": 2.25},
    "2": {"high": 0.708, "normal": 1.415, "low1": 1.89},
    "3N": {"high": 0.423, "normal": 0.862, "low1": 1.15},
    "4": {"high": 0.1087, "normal": 0.2174, "low1": 0.2900, "low2": 0.2900},
    "5": {"high": 0.0348, "normal": 0.0696, "low1": 0.0925, "low2": 0.4090},
    "6": {"high": 0.0313, "normal": 0.0625, "low1": 0.0830, "low2": 0.3900},
    "7": {"high": 0.0299, "normal": 0.0597, "low1": 0.0795, "low2": 0.3320},
    "8": {"high": 0.0209, "normal": 0.0417, "low1": 0.0556, "low2": 0.2450},
    "9": {"high": 0.0159, "normal": 0.0318, "low1": 0.0424, "low2": 0.2650},
    "10": {"normal": 6.822e-3}, "11": {"normal": 6.780e-3}, "12": {"normal": 6.590e-3},
    "13": {"normal": 5.693e-3}, "14": {"normal": 5.225e-3},
}
#: Exo-atmospheric solar irradiance (W m-2 um-1), Thome et al. (2001).
ESUN: Dict[str, float] = {
    "1": 1848.0, "2": 1549.0, "3N": 1114.0, "4": 225.4, "5": 86.63, "6": 81.85, "7": 74.85,
    "8": 66.49, "9": 59.85,
}
#: Saturated DN of the 8-bit VNIR/SWIR bands.
SATURATED_DN = 255
#: DOS1 assumes the darkest object reflects 1 % (Chavez 1996).
DOS1_DARK_REFLECTANCE = 0.01


def band_name(band) -> str:
    """Canonical band name: ``1`` / ``"01"`` / ``"B3N"`` / ``"3"`` -> ``"1"``, ``"3N"``."""
    s = str(band).strip().upper().replace(" ", "").replace("_", "")
    s = re.sub(r"^(BAND|B|IMAGEDATA)", "", s)
    m = re.fullmatch(r"0*(\d{1,2})(N?)", s)
    if m:
        num = int(m.group(1))
        name = "3N" if num == 3 else str(num)
        if name in BANDS and (not m.group(2) or num == 3):
            return name
    raise ValueError(f"{band!r} is not an ASTER nadir band; expected one of {', '.join(BANDS)}")


@dataclass(frozen=True)
class SceneMetadata:
    """What :func:`parse_metadata` reads from an ASTER L1T file.

    Attributes
    ----------
    date : datetime.date
        Acquisition date (``CALENDARDATE``).
    sun_azimuth, sun_elevation : float
        Degrees (``SOLARDIRECTION``).
    gains : dict
        Band name -> gain (``"high"``, ``"normal"``, ``"low1"``, ``"low2"``) of the
        VNIR/SWIR bands listed in ``GAIN.n``.
    utm_zone : int or None
        ``UTMZONENUMBER``.
    south : bool
        Southern hemisphere (``NORTHBOUNDINGCOORDINATE`` < 0).
    upper_left, lower_right : tuple of float or None
        ``(easting, northing)`` of the corner pixel centres (m), northing with the
        10,000 km false northing of southern UTM zones added.
    """

    date: _dt.date
    sun_azimuth: float
    sun_elevation: float
    gains: Dict[str, str] = field(default_factory=dict)
    utm_zone: Optional[int] = None
    south: bool = False
    upper_left: Optional[Tuple[float, float]] = None
    lower_right: Optional[Tuple[float, float]] = None

    @property
    def day_of_year(self) -> int:
        """Day of the year of the acquisition (1-366)."""
        return self.date.timetuple().tm_yday

    @property
    def epsg(self) -> Optional[int]:
        """EPSG code of the WGS 84 / UTM zone (326zz north, 327zz south), or None."""
        if self.utm_zone is None:
            return None
        return (32700 if self.south else 32600) + self.utm_zone

    def gain(self, band) -> str:
        """Gain of ``band``: from the metadata, ``"normal"`` for TIR."""
        name = band_name(band)
        if SUBSYSTEM[name] == "TIR":
            return "normal"
        if name not in self.gains:
            raise ValueError(
                f"no gain setting for band {name} in the metadata (GAIN.n items); the file is "
                "not a complete ASTER L1T product"
            )
        return self.gains[name]


def parse_odl(text: str) -> Dict[str, str]:
    """Flatten ODL metadata text into ``NAME=value`` items, as GDAL does.

    ``OBJECT = GAIN`` with ``CLASS = "1"`` and ``VALUE = ("01", "HGH")``
    becomes ``{"GAIN.1": "01, HGH"}``; quotes and parentheses are dropped.

    Parameters
    ----------
    text : str
        ODL text (e.g. the ``productmetadata.0`` attribute).

    Returns
    -------
    dict of str to str
    """
    items: Dict[str, str] = {}
    name = klass = value = None
    collecting = None
    for raw in str(text).splitlines():
        line = raw.strip()
        if collecting is not None:
            collecting += " " + line
            if collecting.count("(") <= collecting.count(")"):
                value, collecting = collecting, None
            continue
        key, sep, rest = line.partition("=")
        if not sep:
            continue
        key, rest = key.strip().upper(), rest.strip()
        if key == "OBJECT":
            name, klass, value = rest, None, None
        elif key == "CLASS" and name:
            klass = rest.strip('"')
        elif key == "VALUE" and name:
            if rest.count("(") > rest.count(")"):
                collecting = rest
            else:
                value = rest
        elif key == "END_OBJECT" and name:
            if value is not None:
                cleaned = ", ".join(
                    v.strip().strip('"') for v in value.strip().strip("()").split(","))
                items[f"{name}.{klass}" if klass else name] = cleaned
            name = klass = value = None
    return items


def _numbers(text, what, count):
    try:
        values = [float(v) for v in str(text).replace("(", " ").replace(")", " ")
                  .replace(",", " ").split()]
    except ValueError as exc:
        raise ValueError(f"ASTER metadata {what}={text!r} is not {count} numbers") from exc
    if len(values) != count:
        raise ValueError(f"ASTER metadata {what}={text!r}: expected {count} numbers")
    return values


def _date(text) -> _dt.date:
    s = str(text).strip().strip('"')
    for fmt in ("%Y%m%d", "%Y-%m-%d"):
        try:
            return _dt.datetime.strptime(s[:10] if "-" in s else s[:8], fmt).date()
        except ValueError:
            continue
    raise ValueError(f"ASTER metadata CALENDARDATE={text!r} is not a date (YYYYMMDD)")


def parse_metadata(items: Mapping[str, str]) -> SceneMetadata:
    """Read acquisition date, sun position, gains and UTM corners of an L1T scene.

    Parameters
    ----------
    items : mapping of str to str
        The file's metadata as GDAL gives it (``gdal.Open(path).GetMetadata()``)
        or as :func:`parse_odl` makes it from the ODL text.

    Returns
    -------
    SceneMetadata

    Raises
    ------
    ValueError
        ``CALENDARDATE`` or ``SOLARDIRECTION`` missing or malformed, or an
        unknown gain code: the file is not an ASTER L1T product.
    """
    meta = {str(k).upper(): str(v) for k, v in items.items()}
    missing = [k for k in ("CALENDARDATE", "SOLARDIRECTION") if k not in meta]
    if missing:
        raise ValueError(
            f"ASTER metadata {', '.join(missing)} not found; is this an ASTER L1T file "
            "(AST_L1T_*.hdf)?"
        )
    azimuth, elevation = _numbers(meta["SOLARDIRECTION"], "SOLARDIRECTION", 2)
    gains: Dict[str, str] = {}
    for key, value in meta.items():
        if not re.fullmatch(r"GAIN(\.\d+)?", key):
            continue
        parts = [p.strip().strip('"') for p in value.split(",")]
        if len(parts) != 2:
            raise ValueError(f"ASTER metadata {key}={value!r}: expected 'band, gain'")
        if parts[0].upper() == "3B":
            continue
        code = parts[1].upper()
        if code == "OFF":
            continue
        if code not in GAIN_CODES:
            raise ValueError(
                f"ASTER metadata {key}={value!r}: unknown gain {parts[1]!r}; expected one of "
                f"{sorted(GAIN_CODES)}"
            )
        gains[band_name(parts[0])] = GAIN_CODES[code]

    zone = meta.get("UTMZONENUMBER")
    utm_zone = int(float(zone)) if zone not in (None, "") else None
    north = meta.get("NORTHBOUNDINGCOORDINATE")
    south = north not in (None, "") and float(north) < 0
    corners = []
    for key in ("UPPERLEFTM", "LOWERRIGHTM"):
        if key in meta:
            northing, easting = _numbers(meta[key], key, 2)
            corners.append((easting, northing + (10_000_000.0 if south else 0.0)))
        else:
            corners.append(None)
    return SceneMetadata(
        date=_date(meta["CALENDARDATE"]), sun_azimuth=azimuth, sun_elevation=elevation,
        gains=gains, utm_zone=utm_zone, south=south, upper_left=corners[0],
        lower_right=corners[1],
    )


def unit_conversion_coefficient(band, gain="normal") -> float:
    """UCC of ``band`` at ``gain`` (W m-2 sr-1 um-1 per DN), ASTER User Handbook v2."""
    name = band_name(band)
    table = UCC[name]
    if SUBSYSTEM[name] == "TIR":
        return table["normal"]
    if gain not in table:
        raise ValueError(
            f"band {name} has no {gain!r} gain; available: {', '.join(table)}"
        )
    return table[gain]


def earth_sun_distance(day_of_year) -> float:
    """Earth-Sun distance (AU) on a day of the year.

    ``d = 1 - 0.01672 cos(0.9856 (doy - 4))`` (degrees): the first-order
    eccentricity term, within 5e-4 AU of the ephemeris (0.1 % in reflectance;
    the approximation of the LP DAAC ASTER L1T tutorial).
    """
    doy = float(day_of_year)
    if not 1 <= doy <= 366:
        raise ValueError(f"day_of_year must be 1..366, got {day_of_year!r}")
    return 1.0 - 0.01672 * math.cos(math.radians(0.9856 * (doy - 4.0)))


def dn_to_radiance(dn, band, *, gain="normal", nodata=0, saturated=None):
    """At-sensor radiance of ASTER digital numbers: ``(DN - 1) * UCC``.

    Parameters
    ----------
    dn : array_like of int
        Digital numbers of one band, any shape.  Not modified.
    band : str or int
        Band name (``"1"``, ``"3N"``, ``"14"``).
    gain : {"high", "normal", "low1", "low2"}, keyword-only
        Gain the band was acquired with (:meth:`SceneMetadata.gain`); ignored for TIR.
    nodata : int or None, keyword-only
        DN of no data (0).
    saturated : int or None, keyword-only
        DN of saturated pixels; default 255 for VNIR/SWIR, none for TIR.

    Returns
    -------
    ndarray of float64, same shape as ``dn``
        Radiance in W m-2 sr-1 um-1; NaN at no data and saturated pixels.
    """
    name = band_name(band)
    raw = np.asarray(dn)
    if not np.issubdtype(raw.dtype, np.number):
        raise ValueError(f"expected numeric digital numbers, got dtype {raw.dtype}")
    if saturated is None and SUBSYSTEM[name] != "TIR":
        saturated = SATURATED_DN
    out = (raw.astype(np.float64) - 1.0) * unit_conversion_coefficient(name, gain)
    for special in (nodata, saturated):
        if special is not None:
            out[raw == special] = np.nan
    return out


def radiance_to_reflectance(radiance, band, *, earth_sun_distance, sun_elevation):
    """Top-of-atmosphere reflectance ``pi L d^2 / (ESUN cos(theta_z))``.

    Parameters
    ----------
    radiance : array_like
        At-sensor radiance (W m-2 sr-1 um-1) of a VNIR/SWIR band; NaN stays NaN.
    band : str or int
        Band 1-9 (no solar irradiance for TIR).
    earth_sun_distance : float, keyword-only
        AU (:func:`earth_sun_distance`).
    sun_elevation : float, keyword-only
        Degrees above the horizon; ``theta_z = 90 - sun_elevation``.

    Returns
    -------
    ndarray of float64
        Unitless reflectance.
    """
    name = band_name(band)
    if name not in ESUN:
        raise ValueError(f"band {name} is thermal: it has no reflectance (keep its radiance)")
    if not 0 < sun_elevation <= 90:
        raise ValueError(
            f"sun elevation must be in (0, 90] degrees for reflectance, got {sun_elevation}"
        )
    if not earth_sun_distance > 0:
        raise ValueError(f"earth_sun_distance must be positive, got {earth_sun_distance}")
    cos_z = math.cos(math.radians(90.0 - sun_elevation))
    factor = math.pi * earth_sun_distance ** 2 / (ESUN[name] * cos_z)
    return np.asarray(radiance, dtype=np.float64) * factor


def valid_dn_counts(dn, band):
    """Histogram of the valid digital numbers of a VNIR/SWIR band window.

    Parameters
    ----------
    dn : array_like of int
        8-bit digital numbers, any shape.
    band : str or int
        Band 1-9.

    Returns
    -------
    ndarray of int64, shape (256,)
        ``counts[v]`` = pixels with DN ``v``; no data (0) and saturated (255) pixels are
        not counted.  Sum the windows' histograms for :func:`dark_object_dn`.
    """
    name = band_name(band)
    if SUBSYSTEM[name] == "TIR":
        raise ValueError(f"band {name} is thermal: DOS1 applies to bands 1-9")
    raw = np.asarray(dn).ravel()
    valid = raw[(raw > 0) & (raw < SATURATED_DN)].astype(np.int64)
    return np.bincount(valid, minlength=SATURATED_DN + 1)[: SATURATED_DN + 1]


def dark_object_dn(counts, *, min_fraction=1e-4) -> int:
    """Digital number of the dark object of a band (Chavez 1996).

    The lowest DN >= 1 whose pixel count reaches ``min_fraction`` of the valid
    pixels, so that a few defective pixels are not taken as the dark object.

    Parameters
    ----------
    counts : array_like of int, shape (n,)
        Histogram of the band's valid digital numbers: ``counts[dn]`` pixels
        have value ``dn`` (e.g. ``np.bincount``).  ``counts[0]`` (no data) is ignored.
    min_fraction : float, keyword-only
        Share of the valid pixels the dark object must have (0.01 %).

    Returns
    -------
    int
    """
    c = np.asarray(counts, dtype=np.float64).copy()
    if c.ndim != 1:
        raise ValueError(f"counts must be a 1-D histogram, got shape {c.shape}")
    if c.size:
        c[0] = 0.0
    total = c.sum()
    if total <= 0:
        raise ValueError("no valid pixel in the band: no dark object")
    enough = np.flatnonzero(c >= max(min_fraction * total, 1.0))
    return int(enough[0]) if enough.size else int(np.flatnonzero(c)[0])


def dos1(reflectance, dark_reflectance):
    """Dark-object subtraction DOS1 in reflectance units (Chavez 1996).

    The haze is what the dark object reflects beyond 1 %:
    ``rho = rho_TOA - (rho_TOA(dark object) - 0.01)``.  This equals the radiance
    form ``pi (L - L_haze) d^2 / (ESUN cos theta_z)`` with
    ``L_haze = L_dark - L_1%`` and transmittances 1 (DOS1).

    Parameters
    ----------
    reflectance : array_like
        TOA reflectance of one band.
    dark_reflectance : float
        TOA reflectance of the band's dark object (:func:`dark_object_dn`
        converted like the band).

    Returns
    -------
    ndarray of float64
        Pixels darker than the dark object (rare by construction) stay below 0.01;
        nothing is clipped.
    """
    return np.asarray(reflectance, dtype=np.float64) - (float(dark_reflectance)
                                                        - DOS1_DARK_REFLECTANCE)


def band_label(band) -> str:
    """Band description ``"B3N (807 nm)"``: band name and central wavelength.

    ``core.indices.guess_band_map(..., "aster")`` reads these back.
    """
    name = band_name(band)
    label = f"B{name.zfill(2)}" if name != "3N" else "B3N"
    return f"{label} ({CENTRAL_WAVELENGTH_UM[name] * 1000:g} nm)"
