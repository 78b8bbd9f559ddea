"""The plugin from the command line: ``qgis_process.bin`` (QGIS 3.22).

Recipe (what makes ``qgis_process.bin list`` show the geochemfusion algorithms
without touching the user's real QGIS profile), checked by these tests:

1. ``QGIS_PLUGINPATH=<dir>`` where ``<dir>/geochem_fusion`` is a symlink to
   the repository root (the folder name is the plugin's module name);
2. a private profile: ``QGIS_CUSTOM_CONFIG_PATH=<tmp>/config`` (and a
   temporary ``HOME`` as a second guard; Qt also writes
   ``$HOME/.config/...qgis_process.bin.conf``);
3. ``QT_QPA_PLATFORM=offscreen`` (no display) and ``XDG_RUNTIME_DIR`` set to
   a private 0700 folder (only silences a Qt warning);
4. ``PYTHONPATH=<venv site-packages>:<folder holding pykrige>``: QGIS runs
   Debian's ``python3``, not the venv.  The temporary ``HOME`` hides
   ``~/.local`` from it, so the folder pykrige was imported from here (the
   venv, or ``~/.local`` after ``make install-plugin``) is passed explicitly;
5. once per profile: ``qgis_process.bin plugins enable geochem_fusion``. In
   3.22 a plugin found on ``QGIS_PLUGINPATH`` is listed by
   ``qgis_process.bin plugins`` but not loaded until enabled; enabling writes
   ``[PythonPlugins] geochem_fusion=true`` to
   ``<config>/profiles/default/QGIS/QGIS3.ini``.

Then ``qgis_process.bin list`` shows ``geochemfusion:*`` and
``qgis_process.bin run geochemfusion:fusegeochemistry -- SAMPLES=... FIELD=Cu
IMAGE=... OUTPUT=...`` works.  Call ``qgis_process.bin`` directly: the
``qgis_process`` wrapper script of Debian's 3.22 passes an option the binary
rejects.
"""

import json
import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pykrige
import pytest
from osgeo import gdal

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "data" / "demo"
EXE = shutil.which("qgis_process.bin")
ALGORITHM_IDS = {
    "krigesamples", "mineralindices", "principalcomponents", "laplaciandecomposition",
    "kmeansunits", "regressionfusion", "fusegeochemistry",
}

pytestmark = pytest.mark.skipif(EXE is None, reason="qgis_process.bin is not on PATH")


@pytest.fixture(scope="module")
def qgis_env(tmp_path_factory):
    """Environment of a private QGIS profile with the plugin on the plugin path."""
    root = tmp_path_factory.mktemp("qgis_process")
    plugins = root / "plugins"
    plugins.mkdir()
    (plugins / "geochem_fusion").symlink_to(REPO, target_is_directory=True)
    runtime = root / "runtime"
    runtime.mkdir(mode=0o700)
    (root / "home").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QGIS_")}
    env.update({
        "HOME": str(root / "home"),
        "QGIS_CUSTOM_CONFIG_PATH": str(root / "config"),
        "QGIS_PLUGINPATH": str(plugins),
        "QT_QPA_PLATFORM": "offscreen",
        "XDG_RUNTIME_DIR": str(runtime),
        # QGIS's python3 sees neither the venv nor (HOME being temporary) ~/.local: give it
        # the venv's site-packages and, explicitly, the folder pykrige is imported from here
        "PYTHONPATH": os.pathsep.join(dict.fromkeys(
            [sysconfig.get_paths()["purelib"], str(Path(pykrige.__file__).resolve().parents[1])])),
    })
    env["_root"] = str(root)
    return env


def qgis_process(env, *args, timeout=300):
    proc = subprocess.run([EXE, *args], env={k: v for k, v in env.items() if k != "_root"},
                          capture_output=True, text=True, timeout=timeout,
                          cwd=env["_root"])
    return proc


def as_json(proc):
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads(proc.stdout[proc.stdout.index("{"):])


@pytest.fixture(scope="module")
def enabled(qgis_env):
    """The plugin enabled in the private profile (listed but not loaded before)."""
    before = as_json(qgis_process(qgis_env, "--json", "plugins"))["plugins"]
    assert before["geochem_fusion"]["loaded"] is False  # found on QGIS_PLUGINPATH, not enabled
    proc = qgis_process(qgis_env, "plugins", "enable", "geochem_fusion")
    assert proc.returncode == 0, proc.stderr[-2000:]
    ini = Path(qgis_env["QGIS_CUSTOM_CONFIG_PATH"]) / "profiles/default/QGIS/QGIS3.ini"
    assert "geochem_fusion=true" in ini.read_text()
    return qgis_env


def test_plugin_loads_once_enabled(enabled):
    plugins = as_json(qgis_process(enabled, "--json", "plugins"))["plugins"]
    assert plugins["geochem_fusion"]["loaded"] is True


def test_list_shows_the_algorithms(enabled):
    providers = as_json(qgis_process(enabled, "--json", "list"))["providers"]
    algorithms = set(providers["geochemfusion"]["algorithms"])
    assert {f"geochemfusion:{a}" for a in ALGORITHM_IDS} <= algorithms


def test_run_fuse_geochemistry(enabled, tmp_path):
    out = tmp_path / "cu_fused.tif"
    proc = qgis_process(enabled, "--json", "run", "geochemfusion:fusegeochemistry", "--",
                        f"SAMPLES={DEMO}/samples.gpkg|layername=samples", "FIELD=Cu",
                        f"IMAGE={DEMO}/sentinel2.tif", f"OUTPUT={out}")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    results = as_json(proc)["results"]
    assert results["OUTPUT"] == str(out)
    ds = gdal.Open(str(out))
    assert (ds.RasterXSize, ds.RasterYSize, ds.RasterCount) == (300, 200, 1)
    assert ds.GetRasterBand(1).GetDescription().startswith("Cu fused (")


def test_run_error_exits_nonzero(enabled, tmp_path):
    out = tmp_path / "cu.asc"
    proc = qgis_process(enabled, "run", "geochemfusion:krigesamples", "--",
                        f"SAMPLES={DEMO}/samples.gpkg|layername=samples", "FIELD=Cu",
                        f"OUTPUT={out}")
    assert proc.returncode != 0
    assert "only GeoTIFF" in proc.stdout + proc.stderr
    assert not out.exists()
