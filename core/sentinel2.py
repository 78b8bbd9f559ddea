"""Sentinel-2 L1C / L2A product metadata and digital-number conversion.

Pure parsing and arithmetic (``xml.etree`` and numpy); reading the JPEG 2000
band files is the job of the Processing algorithm ``preparesentinel2``.

A Sentinel-2 product (``*.SAFE``) holds a product metadata file
``MTD_MSIL1C.xml`` or ``MTD_MSIL2A.xml`` that lists its image files
(``GRANULE/*/IMG_DATA/[R10m/]T*_B02[_10m]``) and gives the radiometric
scaling: since processing baseline 04.00 (25 January 2022) the digital numbers
carry an additive offset (``RADIO_ADD_OFFSET`` for L1C, ``BOA_ADD_OFFSET``
for L2A, -1000 so far) that keeps dark, noisy pixels from being clipped at 0::

    reflectance = (DN + offset) / quantification_value

with ``QUANTIFICATION_VALUE`` (L1C) or ``BOA_QUANTIFICATION_VALUE`` (L2A),
10000 so far.  ``DN = 0`` is *no data* and ``DN = 65535`` *saturated*
(``Special_Values`` of the metadata).  L2A products also hold a scene
classification layer (SCL) used to mask clouds, shadows and water.

References
----------
ESA (2021). Sentinel-2 Products Specification Document (PSD), S2-PDGS-TAS-DI-PSD,
    issue 14.9: product metadata, ``Special_Values``, ``*_ADD_OFFSET``.
ESA (2022). Copernicus Sentinel-2: Major Products Upgrade Upcoming (processing
    baseline 04.00, radiometric offset).  Sentinel Online news, 2021-11.
Louis, J. et al. (2021). Sentinel-2 MSI Level-2A Algorithm Theoretical Basis
    Document, S2-PDGS-MPC-ATBD-L2A, issue 2.0 (scene classification classes).
"""

from __future__ import annotations

import logging
import re
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Dict, Iterable, Mapping, Optional, Tuple

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "BANDS",
    "DEFAULT_BANDS",
    "NATIVE_RESOLUTION",
    "SCL_CLASSES",
    "SCL_MASK_GROUPS",
    "ProductMetadata",
    "band_label",
    "dn_to_reflectance",
    "parse_mtd",
    "scl_mask",
]

#: MSI bands in ``band_id`` order (the ``band_id``/``bandId`` of the metadata is the index).
BANDS: Tuple[str, ...] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12",
)
#: Native pixel size of each band (m).
NATIVE_RESOLUTION: Dict[str, int] = {
    "B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20, "B08": 10,
    "B8A": 20, "B09": 60, "B10": 60, "B11": 20, "B12": 20,
}
#: Nominal central wavelengths of Sentinel-2A (nm, ESA spectral response functions v3);
#: used when the metadata do not give them.
CENTRAL_WAVELENGTH_NM: Dict[str, float] = {
    "B01": 442.7, "B02": 492.7, "B03": 559.8, "B04": 664.6, "B05": 704.1, "B06": 740.5,
    "B07": 782.8, "B08": 832.8, "B8A": 864.7, "B09": 945.1, "B10": 1373.5, "B11": 1613.7,
    "B12": 2202.4,
}
#: The 10 m and 20 m bands, in the order ``core.indices.default_band_map`` expects.
DEFAULT_BANDS: Tuple[str, ...] = (
    "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12",
)

#: Scene classification (SCL) classes of Level-2A products (L2A ATBD, Table 4).
SCL_CLASSES: Dict[int, str] = {
    0: "no data", 1: "saturated or defective", 2: "cast shadows (dark area)",
    3: "cloud shadows", 4: "vegetation", 5: "not vegetated", 6: "water", 7: "unclassified",
    8: "cloud, medium probability", 9: "cloud, high probability", 10: "thin cirrus",
    11: "snow or ice",
}
#: Groups of SCL classes a user can choose to mask.  Classes 0 and 1 are always masked.
SCL_MASK_GROUPS: Dict[str, Tuple[int, ...]] = {
    "clouds": (8, 9), "cirrus": (10,), "shadows": (2, 3), "water": (6,), "snow": (11,),
}
SCL_ALWAYS_MASKED: Tuple[int, ...] = (0, 1)

#: Offset ESA applies from processing baseline 04.00 on (used only when the metadata lack it).
BASELINE_04_OFFSET = -1000.0

_FILE_BAND = re.compile(r"_(B\d\d|B8A|SCL|TCI|AOT|WVP)(?:_(\d{2})m)?(?:\.jp2)?$", re.IGNORECASE)


@dataclass(frozen=True)
class ProductMetadata:
    """What :func:`parse_mtd` reads from a product metadata file.

    Attributes
    ----------
    level : {"L1C", "L2A"}
        Processing level.
    baseline : str
        Processing baseline, e.g. ``"04.00"`` (``""`` when absent).
    quantification : float
        Divisor from DN to reflectance (10000 for every baseline so far).
    offsets : dict
        Band name (``"B02"``) -> additive offset in DN (0 before baseline 04.00).
    nodata_dn, saturated_dn : int
        The ``NODATA`` and ``SATURATED`` special values (0 and 65535).
    image_files : dict
        Band name (``"B02"``, ``"SCL"``) -> ``{resolution_m: path}``; the path is
        relative to the ``.SAFE`` folder, without the ``.jp2`` extension, as listed
        in ``Product_Organisation``.
    central_wavelength_nm : dict
        Band name -> central wavelength (nm), from ``Spectral_Information`` where
        given, else the nominal Sentinel-2A value.
    spacecraft, product_uri, sensing_time : str
        ``SPACECRAFT_NAME``, ``PRODUCT_URI``, ``PRODUCT_START_TIME`` (``""`` when absent).
    """

    level: str
    baseline: str
    quantification: float
    offsets: Dict[str, float]
    nodata_dn: int = 0
    saturated_dn: int = 65535
    image_files: Dict[str, Dict[int, str]] = field(default_factory=dict)
    central_wavelength_nm: Dict[str, float] = field(default_factory=dict)
    spacecraft: str = ""
    product_uri: str = ""
    sensing_time: str = ""

    @property
    def baseline_version(self) -> Tuple[int, int]:
        """``(major, minor)`` of the processing baseline, ``(0, 0)`` when unknown."""
        m = re.match(r"\s*(\d+)\.(\d+)", self.baseline or "")
        return (int(m.group(1)), int(m.group(2))) if m else (0, 0)

    def offset(self, band: str) -> float:
        """Additive DN offset of ``band`` (0.0 when the product has none)."""
        return float(self.offsets.get(_band_name(band), 0.0))


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _band_name(name) -> str:
    """``"B2"``, ``"b02"``, ``"B8A"`` -> ``"B02"``, ``"B8A"``; ValueError otherwise."""
    s = str(name).strip().upper()
    m = re.fullmatch(r"B?0*(\d{1,2})(A?)", s)
    if m:
        candidate = f"B{int(m.group(1)):02d}" if not m.group(2) else f"B{int(m.group(1))}A"
        if candidate in BANDS:
            return candidate
    raise ValueError(f"{name!r} is not a Sentinel-2 band; expected one of {', '.join(BANDS)}")


def _band_of_id(band_id) -> Optional[str]:
    try:
        i = int(str(band_id).strip())
    except ValueError:
        return None
    return BANDS[i] if 0 <= i < len(BANDS) else None


def _float(text, what) -> float:
    try:
        return float(str(text).strip())
    except (TypeError, ValueError) as exc:
        raise ValueError(f"product metadata: {what} is {text!r}, not a number") from exc


def parse_mtd(xml_text) -> ProductMetadata:
    """Parse a Sentinel-2 product metadata file (``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml``).

    Parameters
    ----------
    xml_text : str or bytes
        The file's content.

    Returns
    -------
    ProductMetadata

    Raises
    ------
    ValueError
        Not XML, not a Level-1C/2A product metadata file, or a number that is
        not one.

    Warns
    -----
    UserWarning
        Baseline 04.00 or later without an offset list: ESA's -1000 is assumed.

    Notes
    -----
    Element names are matched without their namespace, so PSD versions that
    differ only in namespaces are all read.  Old multi-tile products list
    ``IMAGE_ID`` instead of ``IMAGE_FILE``; both are read.
    """
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as exc:
        raise ValueError(f"product metadata is not valid XML: {exc}") from exc
    elements = list(root.iter())
    texts: Dict[str, str] = {}
    for el in elements:
        texts.setdefault(_local(el.tag), (el.text or "").strip())

    level_text = " ".join(
        [texts.get("PRODUCT_TYPE", ""), texts.get("PROCESSING_LEVEL", ""), _local(root.tag)]
    ).upper()
    if "2A" in level_text:
        level = "L2A"
    elif "1C" in level_text:
        level = "L1C"
    else:
        raise ValueError(
            f"not a Sentinel-2 Level-1C or Level-2A product metadata file (root element "
            f"{_local(root.tag)!r}); give the product's MTD_MSIL1C.xml or MTD_MSIL2A.xml"
        )

    q_tag = "BOA_QUANTIFICATION_VALUE" if level == "L2A" else "QUANTIFICATION_VALUE"
    if q_tag in texts:
        quantification = _float(texts[q_tag], q_tag)
    else:
        quantification = 10000.0
        warnings.warn(f"{q_tag} not found in the product metadata; using 10000", stacklevel=2)
    if quantification <= 0:
        raise ValueError(f"{q_tag} must be positive, got {quantification}")

    offset_tag = "BOA_ADD_OFFSET" if level == "L2A" else "RADIO_ADD_OFFSET"
    offsets: Dict[str, float] = {}
    for el in elements:
        if _local(el.tag) == offset_tag:
            band = _band_of_id(el.get("band_id", el.get("bandId")))
            if band is not None:
                offsets[band] = _float(el.text, f"{offset_tag} of band_id {el.get('band_id')}")

    baseline = texts.get("PROCESSING_BASELINE", "")
    meta_baseline = re.match(r"\s*(\d+)\.(\d+)", baseline)
    if meta_baseline and int(meta_baseline.group(1)) >= 4 and not offsets:
        warnings.warn(
            f"processing baseline {baseline} but no {offset_tag} in the metadata; assuming "
            f"ESA's offset {BASELINE_04_OFFSET:g} for every band", stacklevel=2)
        offsets = {b: BASELINE_04_OFFSET for b in BANDS}

    nodata_dn, saturated_dn = 0, 65535
    for el in elements:
        if _local(el.tag) != "Special_Values":
            continue
        kids = {_local(k.tag): (k.text or "").strip() for k in el}
        name, index = kids.get("SPECIAL_VALUE_TEXT", "").upper(), kids.get("SPECIAL_VALUE_INDEX")
        if index is None:
            continue
        if name == "NODATA":
            nodata_dn = int(_float(index, "NODATA special value"))
        elif name == "SATURATED":
            saturated_dn = int(_float(index, "SATURATED special value"))

    wavelengths = dict(CENTRAL_WAVELENGTH_NM)
    for el in elements:
        if _local(el.tag) != "Spectral_Information":
            continue
        band = _band_of_id(el.get("bandId", el.get("band_id")))
        central = next((k for k in el.iter() if _local(k.tag) == "CENTRAL"), None)
        if band is not None and central is not None and (central.text or "").strip():
            wavelengths[band] = _float(central.text, f"central wavelength of {band}")

    image_files: Dict[str, Dict[int, str]] = {}
    for el in elements:
        if _local(el.tag) not in ("IMAGE_FILE", "IMAGE_ID"):
            continue
        path = (el.text or "").strip()
        m = _FILE_BAND.search(path)
        if m is None:
            continue
        name = m.group(1).upper()
        resolution = int(m.group(2)) if m.group(2) else NATIVE_RESOLUTION.get(name, 20)
        per_res = image_files.setdefault(name, {})
        if resolution in per_res and per_res[resolution] != path:
            raise ValueError(
                f"the product lists several {name} files at {resolution} m ({per_res[resolution]!r}, "
                f"{path!r}): multi-tile products (before December 2016) are not supported; use a "
                "single-tile product"
            )
        per_res[resolution] = path

    return ProductMetadata(
        level=level, baseline=baseline, quantification=quantification, offsets=offsets,
        nodata_dn=nodata_dn, saturated_dn=saturated_dn, image_files=image_files,
        central_wavelength_nm=wavelengths, spacecraft=texts.get("SPACECRAFT_NAME", ""),
        product_uri=texts.get("PRODUCT_URI", ""), sensing_time=texts.get("PRODUCT_START_TIME", ""),
    )


def dn_to_reflectance(dn, *, quantification=10000.0, offset=0.0, nodata=0, saturated=65535):
    """Reflectance of Sentinel-2 digital numbers.

    ``reflectance = (DN + offset) / quantification``; no data and saturated
    pixels become NaN.

    Parameters
    ----------
    dn : array_like of int
        Digital numbers of one band, any shape.  Not modified.
    quantification : float, keyword-only
        ``QUANTIFICATION_VALUE`` / ``BOA_QUANTIFICATION_VALUE`` (10000).
    offset : float, keyword-only
        ``RADIO_ADD_OFFSET`` / ``BOA_ADD_OFFSET`` of the band in DN (-1000 from
        baseline 04.00 on, 0 before).
    nodata, saturated : int or None, keyword-only
        DN values to mask (the ``NODATA`` and ``SATURATED`` special values);
        ``None`` masks nothing.

    Returns
    -------
    ndarray of float64, same shape as ``dn``
        Reflectance (unitless, ~0-1).  Values of dark pixels can be slightly
        negative from baseline 04.00 on: the offset exists to keep them, and
        they are kept.

    Examples
    --------
    >>> dn_to_reflectance([0, 1000, 3500, 65535], offset=-1000).tolist()
    [nan, 0.0, 0.25, nan]
    """
    if not quantification or quantification <= 0:
        raise ValueError(f"quantification must be positive, got {quantification!r}")
    raw = np.asarray(dn)
    if not np.issubdtype(raw.dtype, np.number):
        raise ValueError(f"expected numeric digital numbers, got dtype {raw.dtype}")
    out = (raw.astype(np.float64) + float(offset)) / float(quantification)
    for special in (nodata, saturated):
        if special is not None:
            out[raw == special] = np.nan
    return out


def scl_mask(scl, groups: Iterable[str] = ("clouds", "cirrus", "shadows")):
    """Pixels to mask from a scene classification (SCL) layer.

    Parameters
    ----------
    scl : array_like of int
        SCL classes (0-11), any shape.
    groups : iterable of str
        Keys of :data:`SCL_MASK_GROUPS` (``"clouds"``, ``"cirrus"``, ``"shadows"``,
        ``"water"``, ``"snow"``).  Classes 0 (no data) and 1 (saturated or
        defective) are always masked.

    Returns
    -------
    ndarray of bool, same shape as ``scl``
        True where the pixel must be masked.
    """
    classes = set(SCL_ALWAYS_MASKED)
    for group in groups:
        if group not in SCL_MASK_GROUPS:
            raise ValueError(
                f"unknown SCL mask group {group!r}; expected some of {sorted(SCL_MASK_GROUPS)}"
            )
        classes.update(SCL_MASK_GROUPS[group])
    return np.isin(np.asarray(scl), sorted(classes))


def band_label(band: str, wavelengths: Optional[Mapping[str, float]] = None) -> str:
    """Band description ``"B02 (492.7 nm)"``: band name and central wavelength.

    ``core.indices.guess_band_map`` reads these descriptions back.
    """
    name = _band_name(band)
    nm = (wavelengths or CENTRAL_WAVELENGTH_NM).get(name, CENTRAL_WAVELENGTH_NM[name])
    return f"{name} ({nm:g} nm)"
