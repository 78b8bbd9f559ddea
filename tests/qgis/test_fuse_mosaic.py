"""``geochemfusion:fusemosaic``: many tiles on Dask from QGIS (threads of the QGIS process)."""

import sys
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsProcessingFeedback

pytest.importorskip("distributed")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "mosaic"))
import synth  # noqa: E402  (tests/mosaic/synth.py: tiles and samples)


def test_fusemosaic_equals_the_single_process_chain(run_alg, tmp_path):
    from geochem_fusion.core.blocks import array_reader
    from geochem_fusion.core.grid import Grid
    from geochem_fusion.core.samples import check_sample_table
    from geochem_fusion.core.scene import fuse_scene
    from geochem_fusion.core.vocabulary import FusionSettings, Sinks
    from geochem_fusion.mosaic.samples import read_points

    paths, whole = synth.make_tiles(str(tmp_path), 60, 50)
    samples = str(tmp_path / "samples.gpkg")
    synth.make_samples(samples, whole, 150.0, fields=("Cu",))
    wrong_crs = synth.write_tile(str(tmp_path / "T_wrong_crs.tif"), whole[:, :60, :50], 0, 0,
                                 epsg=32634)
    messages = []

    class Feedback(QgsProcessingFeedback):
        def pushWarning(self, text):  # noqa: N802 (QGIS API name)
            messages.append(text)

    result = run_alg("fusemosaic", {
        "SAMPLES": samples, "FIELD": ["Cu"], "TILES": paths + [wrong_crs],
        "SCHEDULER": "local", "WORKERS": 2, "OUTPUT_FOLDER": str(tmp_path / "out")}, feedback=Feedback())
    assert any("T_wrong_crs.tif" in m and "wrong CRS" in m for m in messages), messages
    ds = gdal.Open(result["OUTPUT"])
    out = ds.GetRasterBand(1).ReadAsArray()
    # the reference: the single-process chain on the whole image
    grid = Grid(synth.X0, synth.Y0, synth.PIXEL, synth.PIXEL, whole.shape[2], whole.shape[1])
    x, y, values, marks, _ = read_points(samples, ["Cu"], gdal.Open(paths[0]).GetProjection())
    x, y, values, _ = check_sample_table(x, y, values, qualifiers=marks)
    ref = np.full(grid.shape, np.nan)

    def write(i, row0, block):
        ref[row0:row0 + block.shape[0]] = block

    fuse_scene(x, y, values, array_reader(whole), grid,
               FusionSettings(band_names=[f"B{i + 2}" for i in range(4)]),
               Sinks(write, krige_alone=False, preview_size=None))
    np.testing.assert_allclose(out, ref.astype(np.float32), rtol=1e-6, atol=1e-4)


def test_fusemosaic_explains_how_to_install_dask(monkeypatch, geochem_provider):
    from geochem_fusion.algorithms import deps
    from geochem_fusion.algorithms.fuse_mosaic import FuseMosaic

    real = deps.missing_modules
    monkeypatch.setattr(deps, "missing_modules",
                        lambda modules: [m for m in modules if m == "distributed"] + real(
                            [m for m in modules if m != "distributed"]))
    ok, message = FuseMosaic().canExecute()
    assert not ok
    assert "dask[distributed]" in message and "install" in message
