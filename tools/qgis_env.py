"""Environment for running the plugin through ``qgis_process`` without touching the user's profile.

QGIS 3.22 (Debian 12) notes: call ``qgis_process.bin`` (the ``qgis_process``
wrapper script passes an option the 3.22 binary rejects); point
``QGIS_PLUGINPATH`` at a folder holding a ``geochem_fusion`` link to the
repository; use a private ``QGIS_CUSTOM_CONFIG_PATH`` profile in which the
plugin is enabled once with ``qgis_process.bin plugins enable geochem_fusion``;
and put the venv's site-packages (pykrige) on ``PYTHONPATH``, because QGIS
runs Debian's ``python3``, not the venv.
"""

import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / ".pkg"
PLUGINS = BUILD / "qgis-plugins"
PROFILE_ROOT = BUILD / "qgis-config"


def link_package():
    """``.pkg/geochem_fusion`` -> repo (for imports) and ``.pkg/qgis-plugins/geochem_fusion``."""
    for folder in (BUILD, PLUGINS):
        folder.mkdir(parents=True, exist_ok=True)
        link = folder / "geochem_fusion"
        if not link.exists():
            try:
                link.symlink_to(REPO, target_is_directory=True)
            except FileExistsError:  # made meanwhile by a parallel process
                pass
    return BUILD


def install_plugin_zip(zip_path):
    """Install the zip of ``make package`` as QGIS's Plugin Manager does, and use it from now on.

    The zip is extracted into a fresh plugins folder (``.pkg/zip-plugins``) and a fresh profile
    (``.pkg/zip-config``); :func:`qgis_process` then loads the plugin from the zip's files,
    not from the repository.  Returns the installed plugin folder.
    """
    import zipfile

    global PLUGINS, PROFILE_ROOT
    PLUGINS, PROFILE_ROOT = BUILD / "zip-plugins", BUILD / "zip-config"
    for folder in (PLUGINS, PROFILE_ROOT):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    with zipfile.ZipFile(zip_path) as archive:
        names = archive.namelist()
        if not names or any(not n.startswith("geochem_fusion/") for n in names):
            raise ValueError(f"{zip_path} is not a plugin zip: every entry must be under geochem_fusion/")
        archive.extractall(PLUGINS)
    return PLUGINS / "geochem_fusion"


def qgis_process_env():
    """The environment ``qgis_process`` runs in: offscreen, the venv's packages, the link."""
    env = dict(os.environ)
    site = sysconfig.get_paths()["purelib"]
    env.update({
        "QT_QPA_PLATFORM": "offscreen",
        "QGIS_PLUGINPATH": str(PLUGINS),
        "QGIS_CUSTOM_CONFIG_PATH": str(PROFILE_ROOT),
        "PYTHONPATH": os.pathsep.join(p for p in (site, env.get("PYTHONPATH")) if p),
    })
    return env


def qgis_process(*args, check=True, capture=True):
    """Run ``qgis_process.bin`` with the plugin enabled in a private profile."""
    exe = shutil.which("qgis_process.bin") or shutil.which("qgis_process")
    if exe is None:
        raise FileNotFoundError("qgis_process.bin not found: install QGIS (make setup)")
    link_package()
    env = qgis_process_env()
    marker = PROFILE_ROOT / ".geochem_fusion_enabled"
    if not marker.exists():
        subprocess.run([exe, "plugins", "enable", "geochem_fusion"], env=env, check=True,
                       capture_output=True, text=True)
        marker.touch()
    return subprocess.run([exe, *args], env=env, check=check, capture_output=capture, text=True)
