"""Optional Python dependencies: detect what is missing and say how to install it.

QGIS ships numpy and GDAL everywhere, but not always scipy, scikit-learn,
matplotlib or pykrige.  The plugin must still load without them; the
algorithms that need them explain the fix through ``canExecute``.
"""

import importlib
import platform
import sys

# import name -> pip / distribution name
PIP_NAMES = {
    "numpy": "numpy",
    "scipy": "scipy",
    "sklearn": "scikit-learn",
    "pykrige": "pykrige",
    "matplotlib": "matplotlib",
    "distributed": "dask[distributed]",
}
# import name -> Debian package (None: not packaged in Debian 12)
DEBIAN_NAMES = {
    "numpy": "python3-numpy",
    "scipy": "python3-scipy",
    "sklearn": "python3-sklearn",
    "pykrige": None,
    "matplotlib": "python3-matplotlib",
    "distributed": None,  # Debian's python3-distributed is older than the pinned one
}


def missing_modules(modules):
    """Return the import names in ``modules`` that cannot be imported."""
    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


def install_command(modules, system=None):
    """The command that installs ``modules`` into the Python QGIS runs on ``system``."""
    system = system or platform.system()
    pip = " ".join(PIP_NAMES.get(m, m) for m in modules)
    if system == "Windows":
        return f"in the OSGeo4W Shell: python -m pip install {pip}"
    if system == "Darwin":
        return f"{sys.executable} -m pip install {pip}"
    apt = [DEBIAN_NAMES[m] for m in modules if DEBIAN_NAMES.get(m)]
    no_apt = [PIP_NAMES.get(m, m) for m in modules if not DEBIAN_NAMES.get(m)]
    parts = []
    if apt:
        parts.append("sudo apt install " + " ".join(apt))
    if no_apt:
        parts.append("python3 -m pip install --user " + " ".join(no_apt)
                     + " (add --break-system-packages on Debian 12 / Ubuntu 23.04+)")
    return " and ".join(parts)


def missing_message(modules):
    """A user-facing message for the missing ``modules``; empty when none is missing."""
    missing = missing_modules(modules)
    if not missing:
        return ""
    names = ", ".join(PIP_NAMES.get(m, m) for m in missing)
    return (
        f"This algorithm needs the Python package(s) {names}, which the Python used by QGIS "
        f"cannot import. Install them with: {install_command(missing)}; then restart QGIS."
    )
