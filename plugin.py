"""QGIS plugin object: registers the Processing provider, nothing numeric."""

from qgis.core import QgsApplication


class GeochemFusionPlugin:
    """Plugin entry object created by :func:`geochem_fusion.classFactory`."""

    def __init__(self, iface):
        self.iface = iface
        self.provider = None

    def initProcessing(self):
        from .provider import GeochemFusionProvider

        self.provider = GeochemFusionProvider()
        QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):
        self.initProcessing()

    def unload(self):
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
