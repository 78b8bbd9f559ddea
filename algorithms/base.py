"""Shared behaviour of the plugin's Processing algorithms.

Algorithms stay thin: read parameters -> read arrays -> one core call ->
write outputs.  Core ``ValueError``s become ``QgsProcessingException`` with
the same message; missing optional packages are reported by ``canExecute``.
"""

import os
from pathlib import Path

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingOutputLayerDefinition,
    QgsProcessingParameterRasterDestination,
    QgsProperty,
)

from . import deps
from .raster_io import check_geotiff_name
from .styles import LayerStyler

ICON = Path(__file__).resolve().parent.parent / "icons" / "icon.svg"


class CoreFeedback:
    """Adapts a Processing feedback to the plain callbacks the core accepts."""

    def __init__(self, feedback, start=0.0, end=100.0):
        self.feedback = feedback
        self.start, self.end = start, end

    def progress(self, fraction, message=None):
        if self.feedback is None:
            return
        self.feedback.setProgress(self.start + (self.end - self.start) * float(fraction))
        if message:
            self.feedback.pushInfo(message)

    def is_canceled(self):
        return self.feedback is not None and self.feedback.isCanceled()


class GeochemAlgorithm(QgsProcessingAlgorithm):
    """Base class: names, help, dependency check and error translation."""

    NAME = ""
    DISPLAY_NAME = ""
    GROUP = "Fusion steps"
    GROUP_ID = "steps"
    HELP = ""
    REQUIRES = ("numpy", "scipy")

    # -- identity ---------------------------------------------------------
    def name(self):
        return self.NAME

    def displayName(self):  # noqa: N802 (QGIS API name)
        return self.DISPLAY_NAME

    def group(self):
        return self.GROUP

    def groupId(self):  # noqa: N802 (QGIS API name)
        return self.GROUP_ID

    def shortHelpString(self):  # noqa: N802 (QGIS API name)
        return self.HELP

    def svgIconPath(self):  # noqa: N802 (QGIS API name)
        return str(ICON)

    def createInstance(self):  # noqa: N802 (QGIS API name)
        return type(self)()

    # -- dependencies ---------------------------------------------------
    def canExecute(self):  # noqa: N802 (QGIS API name)
        message = deps.missing_message(self.REQUIRES)
        return (not message, message)

    # -- parameter checks ---------------------------------------------------
    def checkParameterValues(self, parameters, context):  # noqa: N802 (QGIS API name)
        """Refuse non-GeoTIFF raster outputs before anything is computed or written.

        Otherwise a bad name is only noticed when that output is written: after
        the whole computation, and after the algorithm's earlier outputs.
        """
        ok, message = super().checkParameterValues(parameters, context)
        if not ok:
            return ok, message
        for definition in self.destinationParameterDefinitions():
            if not isinstance(definition, QgsProcessingParameterRasterDestination):
                continue
            path = _static_path(parameters.get(definition.name()))
            if not path or path == QgsProcessing.TEMPORARY_OUTPUT or not os.path.splitext(path)[1]:
                continue  # Processing picks the file name (and its default .tif extension)
            try:
                check_geotiff_name(path)
            except ValueError as exc:
                return False, str(exc)
        return True, ""

    # -- running ----------------------------------------------------------
    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API name)
        ok, message = self.canExecute()
        if not ok:
            raise QgsProcessingException(message)
        try:
            return self.run_algorithm(parameters, context, feedback)
        except (ValueError, MemoryError) as exc:
            raise QgsProcessingException(str(exc)) from exc

    def run_algorithm(self, parameters, context, feedback):
        raise NotImplementedError

    # -- helpers ------------------------------------------------------------
    def load_styled(self, context, destination, kind, name):
        """Name and style ``destination`` when Processing loads it on completion."""
        if not context.willLoadLayerOnCompletion(destination):
            return
        details = context.layerToLoadOnCompletionDetails(destination)
        details.name = name
        details.setPostProcessor(LayerStyler(kind, name))  # keeps itself alive until it runs

    @staticmethod
    def check_canceled(feedback):
        if feedback is not None and feedback.isCanceled():
            raise QgsProcessingException("Canceled by the user; no output was written.")


def _static_path(value):
    """The file name of a destination parameter value, or None when it is computed."""
    if isinstance(value, QgsProcessingOutputLayerDefinition):
        value = value.sink
    if isinstance(value, QgsProperty):
        if value.propertyType() != QgsProperty.StaticProperty:
            return None
        value = value.staticValue()
    return str(value) if value else None
