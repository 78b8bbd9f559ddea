"""The core's layout: no QGIS, one-way imports, optional PyKrige, short signatures.

Read from the source (``ast``) and checked in fresh interpreters; nothing here
imports QGIS.
"""

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PKG_DIR = REPO / ".pkg"  # holds the geochem_fusion -> repo link (tests/conftest.py)
CORE_FILES = sorted((REPO / "core").glob("*.py"))
BLOCKED = ("qgis", "PyQt5", "PyQt6", "osgeo", "sip")
MAX_PARAMETERS = 11
"""Parameters of a public core function at most ("about 10"): settings travel as objects
(``FusionSettings``, ``Sinks``, ``AdaptiveOptions``, ``LayerSource``), not as keywords."""
LONGER = {
    # the kriging options (variogram, lags, anisotropy), the field-data conventions and the
    # spatial cross-validation's folds: 13 each, to be grouped like the chain's settings
    ("kriging.py", "krige"): 13,
    ("samples.py", "check_sample_table"): 13,
    ("evaluation.py", "cross_validate_chain"): 13,
}


def parse(path):
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def imported_modules(path):
    """Top-level names of every module imported anywhere in ``path`` (also inside functions)."""
    names = set()
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def core_imports(path):
    """``(core modules imported at module level, core imports inside functions)``."""
    tree = parse(path)
    top, nested = set(), []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or node.level != 1:
            continue
        names = [node.module] if node.module else [a.name for a in node.names]
        if node in tree.body:
            top.update(n.split(".")[0] for n in names)
        else:
            nested.append((node.lineno, names))
    return top, nested


def run_python(code):
    venv_python = REPO / ".venv" / "bin" / "python"
    python = str(venv_python) if venv_python.exists() else sys.executable
    return subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=180,
                          cwd=str(REPO))


BLOCKER = """
import importlib, importlib.abc, sys

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError("blocked by the test: " + name)
        return None

sys.meta_path.insert(0, Blocker())
for name in list(sys.modules):
    if name.split(".")[0] in BLOCKED:
        del sys.modules[name]
"""


def test_core_files_found():
    assert {"__init__.py", "grid.py", "pipeline.py", "scene.py"} <= {p.name for p in CORE_FILES}


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: p.name)
def test_core_source_imports_no_qgis(path):
    assert not imported_modules(path) & set(BLOCKED)


def test_core_imports_with_qgis_blocked():
    """A fresh interpreter that cannot import qgis/PyQt5/osgeo imports every core module."""
    modules = [p.stem for p in CORE_FILES if p.stem != "__init__"]
    code = f"BLOCKED = {BLOCKED!r}\n" + BLOCKER + textwrap.dedent(f"""
        try:
            import osgeo  # noqa: F401
        except ImportError:
            pass
        else:
            raise SystemExit("the import blocker does not work")
        sys.path.insert(0, {str(PKG_DIR)!r})
        import geochem_fusion.core as core
        for name in sorted(set(core.__all__) | set({modules!r})):
            importlib.import_module("geochem_fusion.core." + name)
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        assert not loaded, loaded
        print("imported", len({modules!r}), "core modules")
    """)
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "core modules" in proc.stdout


def test_every_core_module_is_listed_in_the_package():
    import geochem_fusion.core as core

    public = {p.stem for p in CORE_FILES if not p.stem.startswith("_")}
    assert public == set(core.__all__)
    for name in public:  # and described in its docstring
        assert f":mod:`.{name}`" in core.__doc__, name


def test_core_imports_flow_one_way():
    """The graph of module-level imports between core modules has no cycle."""
    graph = {p.stem: core_imports(p)[0] & {q.stem for q in CORE_FILES} for p in CORE_FILES}
    graph.pop("__init__")
    done, active = set(), []

    def visit(name):
        if name in active:
            raise AssertionError("import cycle: " + " -> ".join(active + [name]))
        if name in done:
            return
        active.append(name)
        for dep in sorted(graph.get(name, ())):
            visit(dep)
        active.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)


def test_core_modules_import_only_modules_listed_before_them():
    """The package docstring lists the modules bottom up: that order is the import order."""
    import re

    import geochem_fusion.core as core

    order = re.findall(r":mod:`\.(\w+)`", core.__doc__)
    position = {name: i for i, name in enumerate(dict.fromkeys(order))}
    for path in CORE_FILES:
        if path.stem.startswith("_"):
            continue
        above = {name for name in core_imports(path)[0] if not name.startswith("_")}
        late = sorted(name for name in above if position[name] >= position[path.stem])
        assert not late, f"{path.stem} imports {late}, listed after it"


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: p.name)
def test_core_modules_import_each_other_at_module_level(path):
    # no function-local import (that would hide a cycle): only optional third-party
    # packages are imported lazily
    assert core_imports(path)[1] == []


def test_the_core_imports_without_pykrige():
    """Every core module imports, and every step but kriging runs, when PyKrige is missing."""
    modules = [p.stem for p in CORE_FILES if p.stem != "__init__"]
    code = "BLOCKED = ('pykrige',)\n" + BLOCKER + textwrap.dedent(f"""
        sys.path.insert(0, {str(PKG_DIR)!r})
        import numpy as np
        for name in {modules!r}:
            importlib.import_module("geochem_fusion.core." + name)
        from geochem_fusion.core import clustering, fusion, indices, pca, pyramid, kriging
        rng = np.random.default_rng(0)
        stack = rng.normal(size=(4, 40, 50)) + 1.0
        pca.PCA(2).fit(stack).transform(stack)
        clustering.KMeansUnits(3).fit(stack).predict(stack)
        pyramid.decompose(stack, levels=2)
        fusion.fuse(stack[0], stack[1:], levels=2)
        indices.compute_indices(np.abs(stack), indices.default_band_map(4, "sentinel2"),
                                sensor="sentinel2")
        try:
            kriging.OrdinaryKrigingModel("spherical").fit(rng.uniform(0, 100, 20),
                                                          rng.uniform(0, 100, 20),
                                                          rng.normal(size=20))
        except ImportError as exc:
            print("kriging needs pykrige:", exc)
        assert not [m for m in sys.modules if m.startswith("pykrige")]
    """)
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "kriging needs pykrige" in proc.stdout


def test_public_core_functions_take_about_ten_parameters():
    found = {}
    for path in CORE_FILES:
        for node in ast.walk(parse(path)):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            if node.name.startswith("_") and node.name != "__init__":
                continue
            a = node.args
            names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
            n = len(names) - (names[:1] in (["self"], ["cls"])) + bool(a.vararg) + bool(a.kwarg)
            if n > LONGER.get((path.name, node.name), MAX_PARAMETERS):
                found[f"{path.name}:{node.name}"] = n
    assert not found
