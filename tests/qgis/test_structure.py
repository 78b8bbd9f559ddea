"""Package structure: plugin loading, metadata, the plugin zip (the core's layout: tests/core)."""

import ast
import configparser
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from qgis.core import QgsApplication

REPO = Path(__file__).resolve().parents[2]
PKG_DIR = REPO / ".pkg"  # holds the geochem_fusion -> repo link (tests/conftest.py)
ALGORITHM_IDS = {
    "krigesamples", "mineralindices", "principalcomponents", "laplaciandecomposition",
    "kmeansunits", "regressionfusion", "fusegeochemistry", "preparesentinel2", "prepareaster",
    "evaluatefusion", "crossvalidatefusion", "anomalythresholds",
}


# ---------------------------------------------------------------------------
# algorithms: thin steps over shared modules
# ---------------------------------------------------------------------------
ALGORITHM_FILES = sorted((REPO / "algorithms").glob("*.py"))


def step_modules():
    """Modules of ``algorithms/`` that define a Processing algorithm (a non-empty ``NAME``)."""
    steps = set()
    for path in ALGORITHM_FILES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and any(
                    isinstance(item, ast.Assign) and isinstance(item.value, ast.Constant)
                    and item.value.value and any(
                        getattr(t, "id", None) == "NAME" for t in item.targets)
                    for item in node.body):
                steps.add(path.stem)
    return steps


def test_no_step_imports_from_another_step():
    steps = step_modules()
    assert {"fuse_geochemistry", "principal_components",
            "regression_fusion", "krige_samples", "mineral_indices"} <= steps
    borrowed = []
    for path in ALGORITHM_FILES:
        if path.stem not in steps:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                names = [node.module] if node.module else [a.name for a in node.names]
                borrowed += [(path.stem, n) for n in names if n in steps]
    assert not borrowed


# ---------------------------------------------------------------------------
# the plugin object
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("start", ["initGui", "initProcessing"])
def test_plugin_registers_and_unloads_provider(provider_unregistered, qgis_iface, start):
    import geochem_fusion

    registry = provider_unregistered
    assert registry.providerById("geochemfusion") is None
    plugin = geochem_fusion.classFactory(qgis_iface)
    getattr(plugin, start)()  # QGIS desktop calls initGui, qgis_process initProcessing
    try:
        provider = registry.providerById("geochemfusion")
        assert provider is not None
        names = {alg.name() for alg in provider.algorithms()}
        assert ALGORITHM_IDS <= names  # (and possibly later additions, shipped models)
        for alg_id in ALGORITHM_IDS:
            alg = registry.createAlgorithmById(f"geochemfusion:{alg_id}")
            assert alg is not None, alg_id
            assert alg.displayName() and alg.shortHelpString()
    finally:
        plugin.unload()
    assert registry.providerById("geochemfusion") is None
    assert registry.algorithmById("geochemfusion:fusegeochemistry") is None


def test_provider_icon_exists(geochem_provider):
    provider = QgsApplication.processingRegistry().providerById(geochem_provider)
    assert Path(provider.svgIconPath()).is_file()
    assert not provider.icon().isNull()


# ---------------------------------------------------------------------------
# metadata.txt
# ---------------------------------------------------------------------------
REQUIRED_KEYS = ("name", "qgisMinimumVersion", "qgisMaximumVersion", "description", "about",
                 "version", "author", "email", "repository", "tracker", "homepage", "tags",
                 "category", "icon", "hasProcessingProvider", "license")


@pytest.fixture(scope="module")
def metadata():
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keys are case-sensitive (qgisMinimumVersion)
    parser.read(REPO / "metadata.txt", encoding="utf-8")
    return parser["general"]


def test_metadata_has_required_keys(metadata):
    missing = [k for k in REQUIRED_KEYS if not metadata.get(k, "").strip()]
    assert not missing


def test_metadata_values(metadata):
    assert metadata["qgisMinimumVersion"] == "3.22"
    # QGIS 4 (Qt6) loads plugins that declare 4.99; Qt6 builds of 3.44 read supportsQt6
    assert metadata["qgisMaximumVersion"] == "4.99"
    assert metadata["supportsQt6"] == "True"
    assert metadata["category"] == "Analysis"
    assert metadata["hasProcessingProvider"] == "yes"
    assert (REPO / metadata["icon"]).is_file()
    assert metadata["version"].count(".") == 2  # x.y.z
    assert metadata["repository"].startswith("https://")


# ---------------------------------------------------------------------------
# make package
# ---------------------------------------------------------------------------
SHIPPED = ("metadata.txt", "__init__.py", "plugin.py", "provider.py", "icons/icon.svg")
NOT_SHIPPED = ("tests/", "bench/", "data/", "tools/", ".ci/", "Makefile")


def committed(folder):
    """``folder/*.py`` files in HEAD (``make package`` archives HEAD, not the work tree)."""
    out = subprocess.run(["git", "ls-tree", "--name-only", "HEAD", f"{folder}/"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    return {name for name in out.split() if name.endswith(".py")}


@pytest.fixture(scope="module")
def package_zip():
    if shutil.which("make") is None or shutil.which("git") is None:
        pytest.skip("make package needs make and git")
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout: make package archives HEAD")
    proc = subprocess.run(["make", "--no-print-directory", "package"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    path = REPO / proc.stdout.strip().splitlines()[-1]
    assert path.suffix == ".zip" and path.is_file(), proc.stdout
    with zipfile.ZipFile(path) as zf:
        return zf.namelist()


def test_package_entries_are_under_the_plugin_folder(package_zip):
    assert package_zip
    assert all(name.startswith("geochem_fusion/") for name in package_zip)


def test_package_contains_the_plugin(package_zip):
    files = {name[len("geochem_fusion/"):] for name in package_zip}
    assert set(SHIPPED) <= files
    for folder in ("core", "algorithms"):
        expected = committed(folder)
        assert f"{folder}/__init__.py" in expected
        assert expected <= files


def test_package_excludes_development_files(package_zip):
    files = [name[len("geochem_fusion/"):] for name in package_zip]
    shipped_dev = [f for f in files if f.startswith(NOT_SHIPPED)]
    assert not shipped_dev
