"""Public enumerations (option order is API: models and scripts pass indices)."""

VARIOGRAMS = ["spherical", "exponential", "gaussian", "linear", "auto"]
SENSORS = ["ASTER", "Sentinel-2", "custom"]
SENSOR_KEYS = ["aster", "sentinel2", "custom"]
MODES = ["paper", "coherent"]
FUSE_MODES = MODES + ["adaptive"]  # fusegeochemistry starts from the samples: one more mode
REGRESSIONS = ["global", "local"]
FEATURES = ["bands-PC2", "indices-PC2", "all bands", "chosen PCs"]
FEATURE_KEYS = ["bands-pc2", "indices-pc2", "bands", "pcs"]
BELOW_DETECTION_OPTIONS = ["refuse", "replace by half the smallest positive value",
                           "replace by a fraction of each sample's detection limit"]
BELOW_DETECTION_KEYS = ["refuse", "half-min", "fraction-dl"]  # core.samples.BELOW_DETECTION

DEFAULT_MODE = MODES.index("coherent")
DEFAULT_FUSE_MODE = FUSE_MODES.index("adaptive")
DEFAULT_FEATURES = FEATURES.index("all bands")
DEFAULT_REGRESSION = REGRESSIONS.index("global")
DEFAULT_VARIOGRAM = VARIOGRAMS.index("auto")
DEFAULT_N_CLUSTERS = 5
DEFAULT_SAMPLE_SIZE = 200_000  # pixels the fits (PCA, K-means, regression) see at most
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
    try:
        return [int(v) for v in str(text).replace(";", ",").split(",") if v.strip()]
    except ValueError as exc:
        raise ValueError(f"{what}: expected comma-separated integers, got '{text}'") from exc


def parse_float_list(text, what):
    try:
        return [float(v) for v in str(text).replace(";", ",").split(",") if v.strip()]
    except ValueError as exc:
        raise ValueError(f"{what}: expected comma-separated numbers, got '{text}'") from exc
