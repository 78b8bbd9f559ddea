"""``make demo``: run the end-to-end fusion on the embedded demo data and show the result.

1. ``qgis_process.bin run geochemfusion:fusegeochemistry`` on ``data/demo`` (Cu and Zn, local
   regression) writes the fused layers, the intermediate layers and the HTML report;
2. a QGIS project opens them styled next to the sample points and the occurrences;
3. a PNG map is rendered headless from that project;
4. because the demo samples are simulated from a kept truth, the fused and the kriged layers are
   scored against it (``scores.md``), and ``geochemfusion:evaluatefusion`` scores the Cu layers
   against the truth, the samples and the occurrences (``evaluation.html``, ``evaluation.csv``).

Run through ``make demo`` (which sets up the environment first).
"""

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import qgis_env  # noqa: E402
from qgis_env import REPO, link_package, qgis_process  # noqa: E402

sys.path.insert(0, str(link_package()))

DATA = REPO / "data" / "demo"
OUT = REPO / "demo_output"


def fusegeochemistry(settings, outputs):
    """Run ``fusegeochemistry`` on the demo data with ``settings``, writing ``outputs``."""
    args = ["run", "geochemfusion:fusegeochemistry", "--",
            f"SAMPLES={DATA / 'samples.gpkg'}|layername=samples", "FIELD=Cu", "FIELD=Zn",
            f"IMAGE={DATA / 'sentinel2.tif'}", *settings]
    args += [f"{k}={v}" for k, v in outputs.items()]
    print("qgis_process.bin " + " ".join(args))
    proc = qgis_process(*args, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"qgis_process failed with exit code {proc.returncode}")
    print("\n".join(line for line in proc.stdout.splitlines() if line.strip()))
    return outputs


def run_fusion():
    """The default (adaptive) fusion with every output, then the paper's local fusion to compare."""
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir()
    outputs = fusegeochemistry([], {
        "OUTPUT": OUT / "fused.tif",
        "OUTPUT_KRIGED": OUT / "kriged.tif",
        "OUTPUT_VARIANCE": OUT / "kriging_variance.tif",
        "OUTPUT_FEATURES": OUT / "features.tif",
        "OUTPUT_COEFFICIENTS": OUT / "coefficients.csv",
        "OUTPUT_REPORT": OUT / "report.html",
    })
    paper = fusegeochemistry(["MODE=0", "REGRESSION=1", "FEATURES=0", "N_CLUSTERS=4"], {
        "OUTPUT": OUT / "fused_paper_local.tif",
        "OUTPUT_UNITS": OUT / "units.tif",
    })
    outputs["OUTPUT_PAPER"] = paper["OUTPUT"]
    outputs["OUTPUT_UNITS"] = paper["OUTPUT_UNITS"]
    return outputs


def evaluatefusion(outputs):
    """Score the Cu layers side by side: ``geochemfusion:evaluatefusion`` through qgis_process."""
    report, table = OUT / "evaluation.html", OUT / "evaluation.csv"
    args = ["run", "geochemfusion:evaluatefusion", "--",
            f"FUSED={outputs['OUTPUT']}", f"FUSED={outputs['OUTPUT_PAPER']}",
            f"FUSED={outputs['OUTPUT_KRIGED']}", "BAND_FILTER=Cu",
            f"REFERENCE_RASTER={DATA / 'cu_truth.tif'}",
            f"INPUT_SAMPLES={DATA / 'samples.gpkg'}|layername=samples", "INPUT_FIELD=Cu",
            f"OCCURRENCES={DATA / 'occurrences.gpkg'}",
            f"OUTPUT_TABLE={table}", f"OUTPUT_REPORT={report}"]
    print("qgis_process.bin " + " ".join(args))
    proc = qgis_process(*args, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"qgis_process failed with exit code {proc.returncode}")
    return report, table


def build_project_and_map(outputs):
    """A QGIS project of the outputs and the map picture of the README."""
    import os

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from qgis.core import (
        QgsApplication,
        QgsMapRendererParallelJob,
        QgsMapSettings,
        QgsProject,
        QgsRasterLayer,
        QgsVectorLayer,
    )
    from qgis.PyQt.QtCore import QSize
    from qgis.PyQt.QtGui import QColor, QFont, QImage, QPainter

    from geochem_fusion.algorithms.styles import GEOCHEM, UNITS, VARIANCE, apply_style

    app = QgsApplication([], False)
    app.initQgis()
    project = QgsProject.instance()
    project.clear()
    rasters = [
        (outputs["OUTPUT_UNITS"], "Geological units (K-means)", UNITS, False),
        (outputs["OUTPUT_VARIANCE"], "Cu kriging variance", VARIANCE, False),
        (outputs["OUTPUT_KRIGED"], "Cu kriged (coarse grid)", GEOCHEM, False),
        (outputs["OUTPUT_PAPER"], "Cu fused (local, paper)", GEOCHEM, False),
        (outputs["OUTPUT"], "Cu fused (adaptive)", GEOCHEM, True),
    ]
    layers = {}
    for path, name, kind, visible in rasters:
        layer = QgsRasterLayer(str(path), name)
        apply_style(layer, kind)
        project.addMapLayer(layer)
        project.layerTreeRoot().findLayer(layer.id()).setItemVisibilityChecked(visible)
        layers[name] = layer
    samples = QgsVectorLayer(f"{DATA / 'samples.gpkg'}|layername=samples", "Cu samples", "ogr")
    samples.renderer().symbol().setColor(QColor("#222222"))
    samples.renderer().symbol().setSize(1.6)
    occ = QgsVectorLayer(str(DATA / "occurrences.gpkg"), "Cu occurrences", "ogr")
    occ.renderer().symbol().setColor(QColor("#ff00ff"))
    occ.renderer().symbol().setSize(3.2)
    for layer in (samples, occ):
        project.addMapLayer(layer)
    project_path = OUT / "demo.qgz"
    project.write(str(project_path))

    extent = layers["Cu fused (adaptive)"].extent()

    def render(raster, title):
        settings = QgsMapSettings()
        settings.setLayers([occ, samples, raster])
        settings.setDestinationCrs(raster.crs())
        settings.setExtent(extent)
        settings.setOutputSize(QSize(600, 400))
        settings.setBackgroundColor(QColor("white"))
        job = QgsMapRendererParallelJob(settings)
        job.start()
        job.waitForFinished()
        img = job.renderedImage()
        painter = QPainter(img)
        painter.setFont(QFont("Sans", 14, QFont.Weight.Bold))
        painter.fillRect(0, 0, 600, 28, QColor(255, 255, 255, 200))
        painter.drawText(8, 20, title)
        painter.end()
        return img

    kriged = render(layers["Cu kriged (coarse grid)"], "Cu kriged from 150 samples")
    fused = render(layers["Cu fused (adaptive)"], "Cu fused with Sentinel-2 (10 m)")
    picture = QImage(1210, 400, QImage.Format.Format_ARGB32)
    picture.fill(QColor("white"))
    painter = QPainter(picture)
    painter.drawImage(0, 0, kriged)
    painter.drawImage(610, 0, fused)
    painter.end()
    png = OUT / "demo_map.png"
    picture.save(str(png))
    app.exitQgis()
    return project_path, png


def score(outputs):
    """Scores of the fused layers against the demo's true fields."""
    import numpy as np
    from osgeo import gdal

    gdal.UseExceptions()

    from geochem_fusion.core import metrics
    from geochem_fusion.core.grid import Grid
    from geochem_fusion.core.resample import resample_cubic

    def read(path, band=1):
        ds = gdal.Open(str(path))
        b = ds.GetRasterBand(band)
        arr = b.ReadAsArray().astype(float)
        if b.GetNoDataValue() is not None:
            arr[arr == b.GetNoDataValue()] = np.nan
        return arr, Grid.from_gdal(ds.GetGeoTransform(), arr.shape)

    truth, grid = read(DATA / "cu_truth.tif")
    fused, _ = read(outputs["OUTPUT"])
    kriged, kgrid = read(outputs["OUTPUT_KRIGED"])
    kriged_fine = resample_cubic(kriged, kgrid, grid)
    rows = []
    paper, _ = read(outputs["OUTPUT_PAPER"])
    for name, layer in (("kriging alone (cubic-resampled)", kriged_fine),
                        ("paper mode, local regression, bands-PC2", paper),
                        ("default (adaptive)", fused)):
        rows.append((name, metrics.pearson_cc(layer, truth), metrics.rmse(layer, truth),
                     metrics.ssim(layer, truth)))
    lines = ["| Cu layer vs simulated truth | CC | RMSE (ppm) | SSIM |", "|---|---|---|---|"]
    lines += [f"| {n} | {cc:.3f} | {e:.2f} | {s:.3f} |" for n, cc, e, s in rows]
    table = "\n".join(lines)
    (OUT / "scores.md").write_text(table + "\n")
    return table


def main():
    """Run the demo: fuse, score, and print the table."""
    args = sys.argv[1:]
    if args[:1] == ["--plugin-zip"] and len(args) == 2:
        installed = qgis_env.install_plugin_zip(args[1])
        print(f"Plugin installed from {args[1]} into {installed}")
    elif args:
        raise SystemExit("usage: demo.py [--plugin-zip dist/geochem_fusion-VERSION.zip]")
    outputs = run_fusion()
    table = score(outputs)
    evaluation = evaluatefusion(outputs)
    project, png = build_project_and_map(outputs)
    print("\n" + table + "\n")
    print(f"Fused layers:   {outputs['OUTPUT']} (default), {outputs['OUTPUT_PAPER']} (paper)")
    print(f"Intermediates:  {OUT}/kriged.tif, kriging_variance.tif, features.tif, units.tif, "
          "coefficients.csv")
    print(f"Report:         {outputs['OUTPUT_REPORT']}")
    print(f"Evaluation:     {evaluation[0]} (report), {evaluation[1]} (metrics per layer)")
    print(f"QGIS project:   {project}  (open it in QGIS)")
    print(f"Picture:        {png}")


if __name__ == "__main__":
    main()
