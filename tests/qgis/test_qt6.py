"""QGIS 4 (Qt6) readiness of the shipped code and the tools (issue 14).

- No unscoped enum spelling (``QgsProcessingParameterNumber.Integer``): PyQt6 and QGIS 4
  only know the scoped one (``QgsProcessingParameterNumber.Type.Integer``), which QGIS
  3.22 to 3.44 know too.  Checked against the QGIS this runs in (``tools/scoped_enums.py``).
- Every shipped module imports with PyQt6 (pinned, ``make qt6``) standing in for
  ``qgis.PyQt``, and every ``qgis.PyQt`` name and attribute chain the code uses
  (``QFont.Weight.Bold``, ``QImage.Format.Format_ARGB32``, ``QMetaType.Type.QString``...)
  exists in PyQt6.

What the PyQt6 test cannot cover without a QGIS 4 build: ``qgis.core``/``qgis.gui``/
``processing`` are stand-ins there (any name resolves), so the QGIS API under Qt6
(its enums, signatures, the ``QgsField``/``QMetaType`` path at run time) and anything
that happens only when an algorithm runs are not exercised; the QGIS-side enum
spellings are checked by the first test on 3.22, 3.40 and 3.44 instead.
"""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
import scoped_enums  # noqa: E402

PYQT6 = REPO / ".pkg" / "pyqt6"
SHIPPED_DIRS = ("algorithms",)
SHIPPED_FILES = ("__init__.py", "plugin.py", "provider.py")


def shipped_files():
    files = [REPO / f for f in SHIPPED_FILES]
    for folder in SHIPPED_DIRS:
        files += sorted((REPO / folder).glob("*.py"))
    return files


def test_the_scanner_finds_unscoped_spellings():
    source = ("from qgis.core import QgsProcessingParameterNumber, QgsProcessing\n"
              "from qgis.PyQt.QtGui import QFont\n"
              "a = QgsProcessingParameterNumber.Integer\n"
              "b = QgsProcessingParameterNumber.Type.Integer\n"
              "c = QFont.Bold\n"
              "d = QgsProcessing.SourceType.TypeRaster\n"
              "def f(param):\n    return param.FlagAdvanced\n")
    found = scoped_enums.scan_source(source)
    assert [(f[0], f[3]) for f in found] == [
        (3, "QgsProcessingParameterNumber.Integer"), (5, "QFont.Bold"), (8, "param.FlagAdvanced")]
    # the scoped names are this QGIS's (3.22: Type, Weight; 3.44 has other enum names)
    from qgis.core import QgsProcessingParameterNumber  # noqa: F401
    from qgis.PyQt.QtGui import QFont  # noqa: F401

    assert eval(found[0][4]) == QgsProcessingParameterNumber.Type.Integer
    assert eval(found[1][4]) == QFont.Weight.Bold
    assert found[2][4] is None  # an instance: reported, not rewritten
    fixed = scoped_enums.fix_source(source, found)
    assert f"a = {found[0][4]}\n" in fixed and f"c = {found[1][4]}\n" in fixed
    assert "return param.FlagAdvanced" in fixed


def checked_files():
    for path in [*shipped_files(), *sorted((REPO / "tools").glob("*.py"))]:
        yield pytest.param(path, id=path.relative_to(REPO).as_posix())


@pytest.mark.parametrize("path", checked_files())
def test_no_unscoped_enum_spelling(path):
    found = scoped_enums.scan_source(path.read_text(encoding="utf-8"), str(path))
    assert not found, "\n".join(
        f"{path.name}:{line}: {text}" + (f" -> {scoped}" if scoped else "")
        for line, _col, _end, text, scoped in found)


# -- PyQt6 standing in for qgis.PyQt ------------------------------------------------------
def pyqt_chains(path):
    """``(module, name, attribute chain)`` of each use of a ``qgis.PyQt`` import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("qgis.PyQt."):
            for alias in node.names:
                imported[alias.asname or alias.name] = (node.module.split(".")[-1], alias.name)
    chains = {(module, name, ()) for module, name in imported.values()}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            attrs, base = [], node
            while isinstance(base, ast.Attribute):
                attrs.append(base.attr)
                base = base.value
            if isinstance(base, ast.Name) and base.id in imported:
                module, name = imported[base.id]
                chains.add((module, name, tuple(reversed(attrs))))
    return chains


# Run in a fresh process: PyQt5 (QGIS 3) and PyQt6 cannot share one.
STAND_IN = r"""
import importlib, json, sys, types

sys.path.insert(0, sys.argv[1])  # PyQt6
sys.path.insert(0, sys.argv[2])  # .pkg (geochem_fusion)
import PyQt6
from PyQt6 import QtCore

assert QtCore.PYQT_VERSION_STR.startswith("6."), QtCore.PYQT_VERSION_STR


class _Anything(type):
    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Anything(name, (), {})

    def __call__(cls, *args, **kwargs):
        return _Anything(cls.__name__, (), {})


def stand_in(name):
    module = types.ModuleType(name)
    module.__path__ = []
    module.__getattr__ = lambda attr: _Anything(attr, (), {})
    return module


qgis = stand_in("qgis")
sys.modules["qgis"] = qgis
for name in ("qgis.core", "qgis.gui", "qgis.analysis", "qgis.utils", "processing"):
    sys.modules[name] = stand_in(name)
pyqt = types.ModuleType("qgis.PyQt")
pyqt.__path__ = []
sys.modules["qgis.PyQt"] = pyqt
for sub in ("QtCore", "QtGui", "QtWidgets", "QtSvg", "QtXml", "QtNetwork"):
    real = importlib.import_module("PyQt6." + sub)
    sys.modules["qgis.PyQt." + sub] = real
    setattr(pyqt, sub, real)

result = {"imported": [], "errors": {}, "missing": []}
for module in sys.argv[4].split(","):
    try:
        importlib.import_module(module)
        result["imported"].append(module)
    except Exception as exc:  # noqa: BLE001
        result["errors"][module] = f"{type(exc).__name__}: {exc}"
for module, name, chain in json.loads(sys.argv[3]):
    obj = getattr(importlib.import_module("PyQt6." + module), name, None)
    for attr in chain:
        if obj is None:
            break
        obj = getattr(obj, attr, None)
    if obj is None:
        result["missing"].append(".".join([module, name, *chain]))
print("RESULT " + json.dumps(result))
"""


def test_shipped_modules_import_with_pyqt6():
    if not (PYQT6 / "PyQt6").is_dir():
        pytest.skip(f"PyQt6 not in {PYQT6}: run `make qt6` (make test-qgis does)")
    files = shipped_files()
    modules = ["geochem_fusion"] + [
        "geochem_fusion." + str(p.relative_to(REPO).with_suffix("")).replace(os.sep, ".")
        for p in files if p.name != "__init__.py"] + ["geochem_fusion.algorithms"]
    chains = sorted({c for p in files for c in pyqt_chains(p)})
    assert ("QtCore", "pyqtSlot", ()) in chains  # the scan sees plugin.py's Qt names
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["QT_QPA_PLATFORM"] = "offscreen"
    proc = subprocess.run(
        [sys.executable, "-c", STAND_IN, str(PYQT6), str(REPO / ".pkg"), json.dumps(chains),
         ",".join(modules)], env=env, capture_output=True, text=True, timeout=300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["errors"] == {}
    assert sorted(result["imported"]) == sorted(modules)
    # QVariant.Type: only in compat.make_field's branch for QGIS < 3.38, which is never Qt6
    assert [m for m in result["missing"] if not m.startswith("QtCore.QVariant.Type")] == []
