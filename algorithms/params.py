"""Public enumerations (option order is API: models and scripts pass indices).

The keys come from the core (:mod:`geochem_fusion.core.vocabulary`, their one home);
this module holds only the labels the dialogs show and the order of the options.
"""

from ..core.vocabulary import BELOW_DETECTION, FEATURE_CHOICES, PYRAMID_MODES, SAMPLE_SIZE, VARIOGRAM_MODELS
from ..core.vocabulary import MODES as CORE_MODES
from ..core.vocabulary import REGRESSIONS as CORE_REGRESSIONS

VARIOGRAMS = [*VARIOGRAM_MODELS, "auto"]
SENSORS = ["ASTER", "Sentinel-2", "custom"]
SENSOR_KEYS = ["aster", "sentinel2", "custom"]
MODES = list(PYRAMID_MODES)  # regressionfusion: the pyramid modes
FUSE_MODES = list(CORE_MODES)  # fusegeochemistry starts from the samples: also adaptive
REGRESSIONS = list(CORE_REGRESSIONS)
FEATURES = ["bands-PC2", "indices-PC2", "all bands", "chosen PCs"]
FEATURE_KEYS = list(FEATURE_CHOICES)
BELOW_DETECTION_OPTIONS = ["refuse", "replace by half the smallest positive value",
                           "replace by a fraction of each sample's detection limit"]
BELOW_DETECTION_KEYS = list(BELOW_DETECTION)

DEFAULT_MODE = MODES.index("coherent")
DEFAULT_FUSE_MODE = FUSE_MODES.index("adaptive")
DEFAULT_FEATURES = FEATURES.index("all bands")
DEFAULT_REGRESSION = REGRESSIONS.index("global")
DEFAULT_VARIOGRAM = VARIOGRAMS.index("auto")
DEFAULT_N_CLUSTERS = 5
DEFAULT_SAMPLE_SIZE = SAMPLE_SIZE  # pixels the fits (PCA, K-means, regression) see at most
DEFAULT_BELOW_DETECTION = BELOW_DETECTION_KEYS.index("refuse")


def parse_band_map(text):
    """Parse ``"B2=1, B3=2"`` (sensor band = 1-based raster band) into a 0-based map."""
    band_map = {}
    for part in (text or "").replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise ValueError(
                f"band map entry '{part}' is not of the form NAME=BAND (e.g. 'B11=5' or '4=4')"
            )
        key, value = (s.strip() for s in part.split("=", 1))
        try:
            band_map[key] = int(value) - 1
        except ValueError as exc:
            raise ValueError(f"band map entry '{part}': '{value}' is not a band number") from exc
    return band_map


def parse_int_list(text, what):
    """Parse ``2, 3`` into integers; ``what`` names the parameter in the error."""
    try:
        return [int(v) for v in str(text).replace(";", ",").split(",") if v.strip()]
    except ValueError as exc:
        raise ValueError(f"{what}: expected comma-separated integers, got '{text}'") from exc


def parse_float_list(text, what):
    """Parse ``0.5, 1`` into floats; ``what`` names the parameter in the error."""
    try:
        return [float(v) for v in str(text).replace(";", ",").split(",") if v.strip()]
    except ValueError as exc:
        raise ValueError(f"{what}: expected comma-separated numbers, got '{text}'") from exc
