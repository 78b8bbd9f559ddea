"""The ``geochemfusion`` Processing provider (its id is public API: keep it)."""

from pathlib import Path

from qgis.core import QgsMessageLog, QgsProcessingModelAlgorithm, QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .algorithms import ALGORITHM_CLASSES

ICON = Path(__file__).resolve().parent / "icons" / "icon.svg"
MODELS = Path(__file__).resolve().parent / "models"


class GeochemFusionProvider(QgsProcessingProvider):
    """Lists the plugin's algorithms explicitly."""

    def id(self):
        return "geochemfusion"

    def name(self):
        return "Geochemical Image Fusion"

    def longName(self):
        return "Geochemical Image Fusion (kriging + image detail injection)"

    def icon(self):
        return QIcon(str(ICON))

    def svgIconPath(self):
        return str(ICON)

    def supportedOutputRasterLayerExtensions(self):
        return ["tif"]  # outputs are written as GeoTIFF only (raster_io)

    def loadAlgorithms(self):
        for cls in ALGORITHM_CLASSES:
            self.addAlgorithm(cls())
        # shipped graphical models (e.g. the paper's chain), listed like any algorithm
        for path in sorted(MODELS.glob("*.model3")):
            model = QgsProcessingModelAlgorithm()
            if model.fromFile(str(path)):
                self.addAlgorithm(model)
            else:
                QgsMessageLog.logMessage(f"Could not load model {path}", "Geochemical Image Fusion")
