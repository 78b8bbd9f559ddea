"""Shared behaviour of the plugin's Processing algorithms.

Algorithms stay thin: read parameters -> read arrays -> one core call ->
write outputs.  Core ``ValueError``s become ``QgsProcessingException`` with
the same message; missing optional packages are reported by ``canExecute``.
"""

from pathlib import Path

from qgis.core import QgsProcessingAlgorithm, QgsProcessingException

from . import deps
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

    def __init__(self):
        super().__init__()
        self._post_processors = []  # keep post-processors alive until layers load

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
        styler = LayerStyler(kind, name)
        self._post_processors.append(styler)
        details.setPostProcessor(styler)

    @staticmethod
    def check_canceled(feedback):
        if feedback is not None and feedback.isCanceled():
            raise QgsProcessingException("Canceled by the user; no output was written.")
