"""``make pictures``: every picture of the documentation, made again from the code as it stands.

1. ``tools/demo.py`` (the demo, into ``demo_output/``), whose map becomes ``docs/demo_map.png``;
2. the first screen of the demo's HTML report, rendered by QtWebKit (as QGIS shows HTML),
   becomes ``docs/report_page.png``;
3. ``tools/screenshot_dialog.py``: the ``fusegeochemistry`` dialog in QGIS desktop under Xvfb,
   ``docs/fusegeochemistry_dialog.png`` and the record of what it shows
   (``docs/fusegeochemistry_dialog.json``, checked against the code by the tests).

Run through ``make pictures`` (which sets up the environment first).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from qgis_env import REPO, qgis_process_env  # noqa: E402

DOCS = REPO / "docs"
REPORT_SIZE = (1000, 1250)  # pixels of the report page picture (width, height)


def render_html(html, png, size=REPORT_SIZE, timeout=60):
    """Render the top ``size`` of ``html`` (a file) to ``png`` with QtWebKit, headless."""
    from qgis.PyQt.QtCore import QEventLoop, QSize, QTimer, QUrl
    from qgis.PyQt.QtGui import QColor, QImage, QPainter
    from qgis.PyQt.QtWebKitWidgets import QWebPage
    from qgis.PyQt.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])  # noqa: F841 (keeps the application)
    page = QWebPage()
    page.setViewportSize(QSize(*size))
    loop = QEventLoop()
    page.loadFinished.connect(lambda ok: loop.quit())
    QTimer.singleShot(timeout * 1000, loop.quit)
    page.mainFrame().load(QUrl.fromLocalFile(str(html)))
    loop.exec_()
    image = QImage(QSize(*size), QImage.Format.Format_ARGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    page.mainFrame().render(painter)
    painter.end()
    if not image.save(str(png)):
        raise SystemExit(f"could not write {png}")


def main():
    """Make every picture: the demo map, the report page, the dialog and its record."""
    demo_output = REPO / "demo_output"
    subprocess.run([sys.executable, str(REPO / "tools" / "demo.py"), "--out", str(demo_output)],
                   check=True)
    shutil.copyfile(demo_output / "demo_map.png", DOCS / "demo_map.png")
    print(f"{(DOCS / 'demo_map.png').relative_to(REPO)}")
    env = qgis_process_env()  # offscreen Qt, the venv's packages
    subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                    "import pictures; pictures.render_html(sys.argv[2], sys.argv[3])",
                    str(REPO / "tools"), str(demo_output / "report.html"),
                    str(DOCS / "report_page.png")], check=True, env=env)
    print(f"{(DOCS / 'report_page.png').relative_to(REPO)}")
    subprocess.run([sys.executable, str(REPO / "tools" / "screenshot_dialog.py")], check=True,
                   env={k: v for k, v in os.environ.items()})


if __name__ == "__main__":
    main()
