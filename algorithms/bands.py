"""Which raster band is which sensor band: the band map of the mineral indices.

Shared by ``mineralindices`` and ``fusegeochemistry`` (features ``indices-PC2``).
"""

import re

from .params import parse_band_map


def all_indices():
    """(sensor key, Index) for the ASTER then the Sentinel-2 table (the enum order)."""
    from ..core.indices import ASTER_INDICES, SENTINEL2_INDICES

    return [("aster", ix) for ix in ASTER_INDICES] + [("sentinel2", ix) for ix in SENTINEL2_INDICES]


def resolve_band_map(raster, sensor, band_map_text):
    """Band map from the user's text, else guessed from band descriptions, else by band order."""
    from ..core.indices import default_band_map, guess_band_map

    n_bands = len(raster.descriptions)
    if band_map_text.strip():
        band_map = parse_band_map(band_map_text)
        for key, index in band_map.items():
            if not 0 <= index < n_bands:
                raise ValueError(
                    f"band map entry '{key}={index + 1}': the image has {n_bands} bands, numbered "
                    f"1 to {n_bands}; fix the band map"
                )
        return band_map, "given"
    if sensor == "custom":
        raise ValueError("SENSOR is 'custom': give a band map such as 'B2=1,B3=2,B4=3,B8=4'.")
    # "Band 3" is the name given to unnamed bands (raster_io.read_raster), not a sensor band
    names = ["" if re.fullmatch(r"Band \d+", d) else d for d in raster.descriptions]
    guessed = guess_band_map(names, sensor)
    if guessed:
        return guessed, "guessed from band descriptions"
    try:
        return default_band_map(n_bands, sensor), "by band order"
    except ValueError as exc:
        usual, example = _USUAL_BANDS[sensor]
        raise ValueError(
            f"the image has {n_bands} bands whose names do not say which {sensor_name(sensor)} "
            f"band they are, and the usual band order has {usual} bands. Give the Band map "
            f"(advanced parameter), e.g. '{example}', or choose the sensor that took the image"
        ) from exc


_USUAL_BANDS = {
    "aster": ("9 (bands 1-9) or 14 (1-14)", "1=1,2=2,3=3,4=4,5=5,6=6,7=7,8=8,9=9"),
    "sentinel2": ("4 (B2, B3, B4, B8) or 10 (B2-B7, B8, B8A, B11, B12)",
                  "B2=1,B3=2,B4=3,B8=4,B11=5,B12=6"),
}


def sensor_name(sensor):
    """Display name of a sensor key."""
    return "ASTER" if sensor == "aster" else "Sentinel-2"


def sensor_of(band_map, sensor):
    """For a custom band map, the table its band names belong to."""
    if sensor != "custom":
        return sensor
    return "sentinel2" if any(k.upper().startswith("B") for k in band_map) else "aster"
