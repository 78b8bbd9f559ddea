"""Installing a missing dependency from inside QGIS, without a terminal (issue 14).

The end-to-end test runs in a fresh process of the Python QGIS runs (Debian's
``python3``, without the venv), where pykrige really is absent: the user site is
an empty temporary folder (``PYTHONUSERBASE``), and pip's package index is the
local wheel folder ``make wheels`` filled (``.pkg/wheels``; ``PIP_NO_INDEX`` and a
blank pip configuration: no network).  It clicks the message bar's button, waits
for the background task, and runs the kriging algorithm in the same process.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from geochem_fusion.algorithms import deps

REPO = Path(__file__).resolve().parents[2]
WHEELS = REPO / ".pkg" / "wheels"
QGIS_PYTHON = Path("/usr/bin/python3")

SCRIPT = r"""
import json, sys, time
from pathlib import Path
from qgis.core import QgsApplication
from qgis.gui import QgsMessageBar
from qgis.PyQt.QtWidgets import QPushButton

app = QgsApplication([], False)
app.initQgis()
sys.path.append(str(Path(QgsApplication.pkgDataPath()) / "python" / "plugins"))
from processing.core.Processing import Processing
Processing.initialize()
import processing
import geochem_fusion

out = {}
try:
    import pykrige  # noqa: F401
    out["pykrige_before"] = True
except ImportError:
    out["pykrige_before"] = False


class Iface:
    def __init__(self):
        self.bar = QgsMessageBar()

    def messageBar(self):
        return self.bar


iface = Iface()
plugin = geochem_fusion.classFactory(iface)
plugin.initGui()
registry = QgsApplication.processingRegistry()
alg = registry.createAlgorithmById("geochemfusion:krigesamples")
out["can_execute_before"] = alg.canExecute()
buttons = [b for item in iface.bar.items() for b in item.findChildren(QPushButton)
           if b.text().startswith("Install")]
out["buttons"] = [b.text() for b in buttons]
# closed by the user, the offer comes back from the algorithm's canExecute
iface.bar.popWidget(iface.bar.items()[0])
out["after_close"] = len(iface.bar.items())
alg.canExecute()
buttons = [b for item in iface.bar.items() for b in item.findChildren(QPushButton)
           if b.text().startswith("Install")]
out["buttons_from_can_execute"] = [b.text() for b in buttons]
progress = []
buttons[0].click()
task = plugin.task
task.progressChanged.connect(lambda value: progress.append(value))
deadline = time.time() + 600
while plugin.task is not None and time.time() < deadline:
    app.processEvents()
    time.sleep(0.05)
out["progress"] = progress
out["bar_after"] = [item.text() for item in iface.bar.items()]
out["can_execute_after"] = alg.canExecute()
import pykrige
out["pykrige_from"] = pykrige.__file__
result = processing.run("geochemfusion:krigesamples", {
    "SAMPLES": sys.argv[1] + "|layername=samples", "FIELD": "Cu", "OUTPUT": sys.argv[2]})
out["output"] = result["OUTPUT"]
plugin.unload()
print("RESULT " + json.dumps(out))
"""


@pytest.fixture
def wheels():
    if not any(WHEELS.glob("pykrige-*.whl")):
        pytest.skip(f"no pykrige wheel in {WHEELS}: run `make wheels` (make test-qgis does)")
    return WHEELS


@pytest.mark.skipif(not QGIS_PYTHON.is_file(), reason="needs Debian's python3 (the one QGIS runs)")
def test_install_from_the_message_bar_makes_kriging_runnable(wheels, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    env.update({
        "PYTHONPATH": str(REPO / ".pkg"),  # the plugin only: no venv, so no pykrige
        "PYTHONUSERBASE": str(tmp_path / "userbase"),  # an empty user site
        "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels), "PIP_CONFIG_FILE": os.devnull,
        "QT_QPA_PLATFORM": "offscreen",
    })
    out_tif = tmp_path / "cu.tif"
    proc = subprocess.run(
        [str(QGIS_PYTHON), "-c", SCRIPT, str(REPO / "data" / "demo" / "samples.gpkg"), str(out_tif)],
        env=env, capture_output=True, text=True, timeout=900)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = json.loads(lines[-1][len("RESULT "):])
    assert out["pykrige_before"] is False
    ok, message = out["can_execute_before"]
    assert not ok and "pykrige" in message and "message bar" in message
    assert "pip install --user" in message  # the terminal command stays in the message
    assert out["buttons"] == ["Install pykrige"]
    assert out["after_close"] == 0 and out["buttons_from_can_execute"] == ["Install pykrige"]
    assert out["progress"] and out["progress"][-1] == 100
    assert any("installed" in text and "no restart" in text for text in out["bar_after"])
    assert out["can_execute_after"] == [True, ""]
    assert out["pykrige_from"].startswith(str(tmp_path / "userbase"))
    assert out_tif.is_file() and out_tif.stat().st_size > 0


# -- the pip command per platform (no install) -------------------------------------------
def test_pip_arguments_on_debian_use_the_user_site_and_pep668_flag(monkeypatch):
    monkeypatch.setattr(deps, "in_virtualenv", lambda: False)
    monkeypatch.setattr(deps, "externally_managed", lambda: True)
    args = deps.pip_install_args(["pykrige"], python="/usr/bin/python3.11", system="Linux")
    assert args[:4] == ["/usr/bin/python3.11", "-m", "pip", "install"]
    assert "--user" in args and "--break-system-packages" in args
    assert args[-1] == "pykrige>=1.7.3"
    monkeypatch.setattr(deps, "externally_managed", lambda: False)  # Ubuntu 22.04
    assert "--break-system-packages" not in deps.pip_install_args(["pykrige"], python="p",
                                                                   system="Linux")


def test_pip_arguments_on_windows_and_macos(monkeypatch):
    monkeypatch.setattr(deps, "in_virtualenv", lambda: False)
    monkeypatch.setattr(deps.os, "access", lambda path, mode: True)  # OSGeo4W's own Python
    win = deps.pip_install_args(["sklearn"], python="C:/OSGeo4W/apps/Python312/python.exe",
                                system="Windows")
    assert "--user" not in win and "--break-system-packages" not in win
    assert win[-1] == "scikit-learn"
    monkeypatch.setattr(deps.os, "access", lambda path, mode: False)  # under Program Files
    assert "--user" in deps.pip_install_args(["sklearn"], python="p", system="Windows")
    mac = deps.pip_install_args(["pykrige"], python="/Applications/QGIS.app/Contents/MacOS/bin/python3",
                                system="Darwin")
    assert "--user" in mac and "--break-system-packages" not in mac


def test_terminal_commands_per_platform(monkeypatch):
    assert deps.install_command(["pykrige"], system="Windows") == \
        "in the OSGeo4W Shell: python -m pip install pykrige"
    assert deps.install_command(["pykrige"], system="Darwin").startswith(
        "/Applications/QGIS.app/Contents/MacOS/bin/python3 -m pip install --user pykrige")
    monkeypatch.setattr(deps, "externally_managed", lambda: True)
    linux = deps.install_command(["pykrige"], system="Linux")
    assert linux == "python3 -m pip install --user --break-system-packages pykrige"


def test_the_python_qgis_runs_is_found_beside_its_prefix(monkeypatch, tmp_path):
    """Inside QGIS ``sys.executable`` is the QGIS binary, not Python."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    (tmp_path / "bin").mkdir()
    python = tmp_path / "bin" / f"python{version}"
    python.write_text("")
    monkeypatch.setattr(deps.sys, "executable", "/usr/bin/qgis")
    monkeypatch.setattr(deps.sys, "prefix", str(tmp_path))
    assert deps.qgis_python(system="Linux") == str(python)
    (tmp_path / "python.exe").write_text("")
    monkeypatch.setattr(deps.sys, "executable", "C:/OSGeo4W/bin/qgis-bin.exe")
    assert deps.qgis_python(system="Windows") == str(tmp_path / "python.exe")
