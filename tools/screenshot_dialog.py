"""``make screenshot``: a picture of the ``geochemfusion:fusegeochemistry`` dialog in QGIS desktop.

Starts the real QGIS desktop (``qgis``, Debian's wrapper around ``qgis.bin``) under
``xvfb-run`` with a private profile in which the plugin is enabled, loads the demo samples and
image, opens the algorithm dialog non-blocking, waits for it to settle, and saves:

- ``docs/fusegeochemistry_dialog.png``: the dialog alone (parameters, defaults, help panel);
- ``.pkg/screenshots/qgis_desktop.png``: the whole virtual screen (for checking by eye).

QGIS is then asked to quit; a hard timeout ends it if it hangs. Exits non-zero when the
dialog picture was not written.

This file plays two parts: run by Python it is the driver; QGIS runs the same file through
``--code`` with ``GEOCHEM_SCREENSHOT_OUT`` set, and then it is the in-QGIS part.
"""

import os

# Set only in the QGIS process that this driver starts.
IN_QGIS = "GEOCHEM_SCREENSHOT_OUT" in os.environ
WIDTH, HELP_WIDTH = 1200, 460  # dialog and help-panel width, pixels


def _in_qgis():
    """Open the dialog, grab it and the screen, quit QGIS (runs inside QGIS desktop)."""
    import traceback
    from pathlib import Path

    from qgis.core import QgsProject, QgsRasterLayer, QgsVectorLayer
    from qgis.PyQt.QtCore import QTimer
    from qgis.PyQt.QtWidgets import QApplication, QScrollArea
    from qgis.utils import iface

    out = Path(os.environ["GEOCHEM_SCREENSHOT_OUT"])
    screen_out = Path(os.environ["GEOCHEM_SCREENSHOT_SCREEN"])
    error_out = Path(os.environ["GEOCHEM_SCREENSHOT_ERROR"])
    demo = Path(os.environ["GEOCHEM_SCREENSHOT_DEMO"])
    state = {}

    def fail():
        error_out.write_text(traceback.format_exc())
        quit_qgis()

    def quit_qgis():
        dialog = state.get("dialog")
        if dialog is not None:
            dialog.close()
        QgsProject.instance().setDirty(False)
        iface.actionExit().trigger()

    def open_dialog():
        try:
            import processing

            samples = QgsVectorLayer(f"{demo / 'samples.gpkg'}|layername=samples", "samples")
            image = QgsRasterLayer(str(demo / "sentinel2.tif"), "sentinel2")
            for layer in (samples, image):
                if not layer.isValid():
                    raise RuntimeError(f"demo layer {layer.source()} is not valid")
            QgsProject.instance().addMapLayers([samples, image])
            dialog = processing.createAlgorithmDialog(
                "geochemfusion:fusegeochemistry",
                {"SAMPLES": samples.id(), "FIELD": ["Cu", "Zn"], "IMAGE": image.id()})
            if dialog is None:
                raise RuntimeError("geochemfusion:fusegeochemistry is not registered: "
                                   "the plugin did not load")
            state["dialog"] = dialog
            dialog.resize(WIDTH, 900)
            dialog.show()
            QTimer.singleShot(3000, grab)
        except Exception:  # noqa: BLE001 (reported to the driver, which exits non-zero)
            fail()

    def unfold(dialog):
        """Expand the advanced parameters and size the dialog so nothing needs scrolling."""
        from qgis.PyQt.QtWidgets import QGroupBox, QSplitter

        for box in dialog.findChildren(QGroupBox):
            # "Advanced Parameters" is a QgsCollapsibleGroupBox that PyQt sees as a QGroupBox:
            # set its Qt property.
            if box.property("collapsed"):
                box.setProperty("collapsed", False)
        for splitter in dialog.findChildren(QSplitter):
            # Parameters on the left, help on the right: give the help room to read.
            splitter.setSizes([WIDTH - HELP_WIDTH, HELP_WIDTH])
        QApplication.processEvents()
        area = max(dialog.findChildren(QScrollArea), key=lambda a: a.widget().sizeHint().height())
        extra = area.widget().sizeHint().height() - area.viewport().height()
        # grab() renders the widget itself, so the dialog may be taller than the screen.
        dialog.resize(WIDTH, dialog.height() + max(extra, 0) + 4)
        QApplication.processEvents()

    def grab():
        try:
            dialog = state["dialog"]
            unfold(dialog)
            if not dialog.grab().save(str(out)):
                raise RuntimeError(f"could not save {out}")
            screen = QApplication.primaryScreen().grabWindow(0)
            screen_out.parent.mkdir(parents=True, exist_ok=True)
            screen.save(str(screen_out))
        except Exception:  # noqa: BLE001
            fail()
            return
        quit_qgis()

    QTimer.singleShot(2000, open_dialog)


def main(timeout=120):
    """Open the dialog in QGIS desktop (under Xvfb) and save its picture."""
    import shutil
    import signal
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from qgis_env import BUILD, REPO, link_package, qgis_process_env

    for tool in ("xvfb-run", "qgis", "timeout"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: install QGIS and xvfb (make setup)")
    out = REPO / "docs" / "fusegeochemistry_dialog.png"
    screen = BUILD / "screenshots" / "qgis_desktop.png"
    link_package()
    # A desktop profile of its own: QGIS desktop writes its window state and settings on exit,
    # which should not leak into the qgis_process profile that the tests use.
    config = BUILD / "qgis-desktop-config"
    ini = config / "profiles" / "default" / "QGIS" / "QGIS3.ini"
    ini.parent.mkdir(parents=True, exist_ok=True)
    _enable_plugin(ini, "geochem_fusion")

    env = qgis_process_env()
    env.pop("QT_QPA_PLATFORM", None)  # a real X display (Xvfb), not offscreen
    out.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        error = Path(tmp) / "error.txt"
        env.update({
            "QGIS_CUSTOM_CONFIG_PATH": str(config),
            "GEOCHEM_SCREENSHOT_OUT": str(out),
            "GEOCHEM_SCREENSHOT_SCREEN": str(screen),
            "GEOCHEM_SCREENSHOT_ERROR": str(error),
            "GEOCHEM_SCREENSHOT_DEMO": str(REPO / "data" / "demo"),
        })
        # `qgis` is Debian's sh wrapper: it adds QGIS_OPTS and execs qgis.bin.
        cmd = ["timeout", "-k", "10", str(timeout),
               "xvfb-run", "-a", "-s", "-screen 0 1600x1000x24",
               "qgis", "--nologo", "--noversioncheck", "--code", str(Path(__file__).resolve())]
        print(" ".join(cmd))
        proc = subprocess.Popen(cmd, env=env, start_new_session=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            log, _ = proc.communicate(timeout=timeout + 30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            log, _ = proc.communicate()
        if error.exists():
            sys.stderr.write(error.read_text())
    if not out.exists():
        sys.stderr.write(log[-5000:])
        raise SystemExit(f"no screenshot written (QGIS exit code {proc.returncode})")
    _shrink(out)
    print(f"{out.relative_to(REPO)} ({out.stat().st_size // 1024} KB)")
    if screen.exists():
        print(f"{screen.relative_to(REPO)} (whole screen)")
    if proc.returncode not in (0, None):
        print(f"note: QGIS exit code {proc.returncode}", file=sys.stderr)


def _shrink(png):
    """Re-save a widget screenshot with a 256-colour palette (a third of the size, same look)."""
    try:
        from PIL import Image
    except ImportError:  # Pillow comes with Debian's matplotlib; without it keep the RGB file
        return
    with Image.open(png) as image:
        small = image.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT,
                                                   dither=Image.Dither.NONE)
    small.save(png, optimize=True)


def _enable_plugin(ini, name):
    """Set ``[PythonPlugins] <name>=true`` in a QGIS3.ini, as QGIS desktop reads it."""
    from qgis.PyQt.QtCore import QSettings

    settings = QSettings(str(ini), QSettings.Format.IniFormat)
    settings.setValue(f"PythonPlugins/{name}", True)
    settings.sync()
    if settings.status() != QSettings.Status.NoError:
        raise SystemExit(f"could not write {ini}")


if IN_QGIS:
    _in_qgis()
elif __name__ == "__main__":
    main()
