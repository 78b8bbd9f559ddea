"""Bad input: a clear QgsProcessingException, and nothing left at the output path."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from qgis.core import QgsProcessingException

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def demo_samples(demo):
    return f"{demo}/samples.gpkg|layername=samples"


def scattered(n, *, x0=300_000.0, y0=7_000_000.0, size=1000.0, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, size, (n, 2)) + [x0, y0]


def assert_clean(path, partial_files):
    """No output file and no temporary ``*.partial*`` file beside it."""
    assert not os.path.exists(path)
    folder = os.path.dirname(path)
    if os.path.isdir(folder):
        assert not partial_files(folder)


def test_samples_outside_the_image(run_alg, demo, make_points, partial_files, tmp_path):
    far = make_points("far.gpkg", scattered(30), {"Cu": np.linspace(1, 100, 30)})  # 270 km away
    out = str(tmp_path / "fused.tif")
    with pytest.raises(QgsProcessingException, match="no sample falls inside the image extent"):
        run_alg("fusegeochemistry", {"SAMPLES": far, "FIELD": ["Cu"],
                                     "IMAGE": str(demo / "sentinel2.tif"), "OUTPUT": out})
    assert_clean(out, partial_files)


def test_geographic_image(run_alg, demo_samples, make_raster, stack, partial_files, tmp_path):
    image = make_raster("wgs84.tif", stack(3, 30, 40), x_min=-70.0, y_max=-42.0, cell=0.001,
                        epsg=4326, nodata=np.nan)
    out = str(tmp_path / "fused.tif")
    with pytest.raises(QgsProcessingException, match=r"geographic CRS \(EPSG:4326"):
        run_alg("fusegeochemistry", {"SAMPLES": demo_samples, "FIELD": ["Cu"], "IMAGE": image,
                                     "OUTPUT": out})
    assert_clean(out, partial_files)


def test_geographic_samples_for_kriging_are_reprojected(run_alg, make_points, tmp_path):
    """One CRS rule (issue 12): krigesamples reprojects samples in degrees, as the fusion does,
    to the UTM zone of their centre (the test project has no projected CRS)."""
    from osgeo import gdal, osr

    xy = scattered(30, x0=-70.0, y0=-42.0, size=0.05)
    samples = make_points("wgs84.gpkg", xy, {"Cu": np.linspace(1, 100, 30)}, epsg=4326)
    out = str(tmp_path / "cu.tif")
    run_alg("krigesamples", {"SAMPLES": samples, "FIELD": "Cu", "OUTPUT": out})
    srs = osr.SpatialReference(wkt=gdal.Open(out).GetProjection())
    srs.AutoIdentifyEPSG()
    assert srs.GetAuthorityCode(None) == "32719"  # WGS 84 / UTM zone 19S


def test_too_few_samples_for_kriging(run_alg, make_points, partial_files, tmp_path):
    samples = make_points("five.gpkg", scattered(5), {"Cu": [1.0, 5.0, 2.0, 8.0, 3.0]})
    out = str(tmp_path / "cu.tif")
    with pytest.raises(QgsProcessingException, match="at least 10 samples.*got 5"):
        run_alg("krigesamples", {"SAMPLES": samples, "FIELD": "Cu", "OUTPUT": out})
    assert_clean(out, partial_files)


@pytest.mark.parametrize("bad_value", [0.0, -1.0])
def test_log_transform_of_non_positive_values(run_alg, make_points, partial_files, tmp_path,
                                              bad_value):
    values = np.linspace(1, 100, 30)
    values[7] = bad_value  # e.g. a below-detection code
    samples = make_points("cu.gpkg", scattered(30), {"Cu": values})
    out = str(tmp_path / "cu.tif")
    with pytest.raises(QgsProcessingException, match="below detection .* would reach the log "
                                                     "transform and the kriging"):
        run_alg("krigesamples", {"SAMPLES": samples, "FIELD": "Cu", "LOG_TRANSFORM": True,
                                 "OUTPUT": out})
    assert_clean(out, partial_files)


def test_output_folder_is_a_file(run_alg, demo_samples, partial_files, tmp_path):
    """A 'folder' that is a regular file cannot be written, even by root."""
    blocker = tmp_path / "afile.txt"
    blocker.write_text("not a folder")
    out = str(blocker / "cu.tif")
    with pytest.raises(QgsProcessingException, match="Cannot create the output folder"):
        run_alg("krigesamples", {"SAMPLES": demo_samples, "FIELD": "Cu", "OUTPUT": out})
    assert blocker.read_text() == "not a folder"
    assert_clean(out, partial_files)
    assert not partial_files(tmp_path)


def as_unprivileged_user():
    """Command prefix that runs a program as ``nobody`` (nothing when not root already)."""
    if not (hasattr(os, "geteuid") and os.geteuid() == 0):
        return []
    exe = shutil.which("setpriv")
    assert exe, "setpriv (util-linux) is needed to run this case as a non-root user"
    return [exe, "--reuid=65534", "--regid=65534", "--clear-groups"]


def test_read_only_output_folder(demo, tmp_path):
    """A read-only output folder, as a user who really cannot write there (CI runs as root).

    ``qgis_process.bin`` runs ``krigesamples`` as ``nobody`` (``setpriv``). Everything it
    reads is copied into a world-readable temporary folder first (the checkout may sit
    under a folder ``nobody`` cannot enter): the plugin, pykrige and the demo samples.
    """
    import pykrige

    exe = shutil.which("qgis_process.bin")
    assert exe, "qgis_process.bin is not on PATH"
    root = Path(tempfile.mkdtemp(prefix="geochem_read_only_"))
    try:
        root.chmod(0o755)
        plugin = root / "plugins" / "geochem_fusion"
        shutil.copytree(REPO, plugin, ignore=shutil.ignore_patterns(
            ".venv", ".pkg", ".git", "bench", "dist", "demo_output", "__pycache__", "*.tif"))
        site = root / "site"
        shutil.copytree(Path(pykrige.__file__).parent, site / "pykrige")
        shutil.copy(demo / "samples.gpkg", root / "samples.gpkg")
        home = root / "home"
        home.mkdir(mode=0o700)
        read_only = root / "read_only"
        read_only.mkdir()
        read_only.chmod(0o555)
        if as_unprivileged_user():
            os.chown(home, 65534, 65534)  # nobody's HOME, profile and runtime folder
        for p in [root, *root.rglob("*")]:
            if p != home and home not in p.parents and not p.is_symlink():
                p.chmod(p.stat().st_mode | 0o444 | (0o111 if p.is_dir() else 0))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("QGIS_", "PYTHON"))}
        env.update({"HOME": str(home), "QGIS_CUSTOM_CONFIG_PATH": str(home / "config"),
                    "QGIS_PLUGINPATH": str(plugin.parent), "QT_QPA_PLATFORM": "offscreen",
                    "XDG_RUNTIME_DIR": str(home), "PYTHONPATH": str(site)})
        user = as_unprivileged_user()
        run = [*user, exe]
        subprocess.run([*run, "plugins", "enable", "geochem_fusion"], env=env, cwd=home,
                       check=True, capture_output=True, text=True, timeout=300)
        out = read_only / "cu.tif"
        proc = subprocess.run([*run, "run", "geochemfusion:krigesamples", "--",
                               f"SAMPLES={root / 'samples.gpkg'}", "FIELD=Cu", f"OUTPUT={out}"],
                              env=env, cwd=home, capture_output=True, text=True, timeout=300)
        assert proc.returncode != 0
        assert "not writable" in proc.stdout + proc.stderr, proc.stdout + proc.stderr
        assert list(read_only.iterdir()) == []  # neither the output nor a partial file
        # the same run into a writable folder works as this user: the refusal was the folder's
        ok = home / "cu.tif"
        proc = subprocess.run([*run, "run", "geochemfusion:krigesamples", "--",
                               f"SAMPLES={root / 'samples.gpkg'}", "FIELD=Cu", f"OUTPUT={ok}"],
                              env=env, cwd=home, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert ok.is_file()
        if user:  # written by nobody, not by root
            assert ok.stat().st_uid == 65534
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_non_geotiff_output(run_alg, demo_samples, partial_files, tmp_path):
    out = str(tmp_path / "cu.asc")
    with pytest.raises(QgsProcessingException, match=r"only GeoTIFF \(\.tif\)"):
        run_alg("krigesamples", {"SAMPLES": demo_samples, "FIELD": "Cu", "OUTPUT": out})
    assert_clean(out, partial_files)


def test_non_geotiff_second_output_writes_nothing(run_alg, make_raster, stack, partial_files,
                                                  tmp_path):
    """Output names are checked before computing: the valid first output is not written either."""
    src = make_raster("img.tif", stack(2, 24, 32), nodata=np.nan)
    low, high = str(tmp_path / "low.tif"), str(tmp_path / "high.asc")
    with pytest.raises(QgsProcessingException, match="only GeoTIFF"):
        run_alg("laplaciandecomposition", {"INPUT": src, "LEVELS": 2, "OUTPUT_LOW": low,
                                           "OUTPUT_HIGH": high})
    assert_clean(low, partial_files)
    assert_clean(high, partial_files)


def test_missing_field(run_alg, demo_samples, tmp_path):
    with pytest.raises(QgsProcessingException, match="has no field 'Au'"):
        run_alg("krigesamples", {"SAMPLES": demo_samples, "FIELD": "Au",
                                 "OUTPUT": str(tmp_path / "au.tif")})
    assert not (tmp_path / "au.tif").exists()
