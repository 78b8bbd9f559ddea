"""The ``geochemfusion`` Processing provider (its id is public API: keep it)."""

from pathlib import Path

from qgis.core import QgsMessageLog, QgsProcessingModelAlgorithm, QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .algorithms import ALGORITHM_CLASSES

ICON = Path(__file__).resolve().parent / "icons" / "icon.svg"
MODELS = Path(__file__).resolve().parent / "models"


class ShippedModel(QgsProcessingModelAlgorithm):
    """A graphical model shipped with the plugin, listed beside the algorithms.

    Its id is the file name (``geochemfusion:paper_fusion``: public API, as the
    algorithms' names), the toolbox shows the model's own name, and it sits in
    the group of the algorithm it is a chain of (the model file keeps the group
    name, and QGIS 3.22 reads the group id from it: a second group of the same
    name otherwise).
    """

    def __init__(self, path=None, group_id=""):
        super().__init__()
        self._path, self._group_id = path, group_id
        self._id = Path(path).stem if path else ""

    def load(self):
        return self.fromFile(str(self._path))

    def name(self):
        return self._id

    def displayName(self):  # noqa: N802 (QGIS API name)
        return super().name()

    def groupId(self):  # noqa: N802 (QGIS API name)
        return self._group_id or super().groupId()

    def createInstance(self):  # noqa: N802 (QGIS API name)
        copy = ShippedModel(self._path, self._group_id)
        copy.loadVariant(self.toVariant())
        copy.setSourceFilePath(self.sourceFilePath())
        return copy


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
        groups = {cls.GROUP: cls.GROUP_ID for cls in ALGORITHM_CLASSES}
        for path in sorted(MODELS.glob("*.model3")):
            model = QgsProcessingModelAlgorithm()
            if model.fromFile(str(path)):
                shipped = ShippedModel(path, groups.get(model.group(), ""))
                shipped.load()
                self.addAlgorithm(shipped)
            else:
                QgsMessageLog.logMessage(f"Could not load model {path}", "Geochemical Image Fusion")
