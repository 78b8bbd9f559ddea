"""Shared behaviour of the plugin's Processing algorithms.

Algorithms stay thin: read parameters -> read arrays -> one core call ->
write outputs.  Core ``ValueError``s become ``QgsProcessingException`` with
the same message, and so do GDAL/OGR errors (``RuntimeError``; readers name
the file with :func:`.raster_io.gdal_errors`); missing optional packages are reported by ``canExecute``;
``UserWarning``s the core raises while an algorithm runs become warning lines
of the Processing log (:func:`warnings_to_feedback`).
"""

import contextlib
import logging
import os
import threading
import warnings
from pathlib import Path

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingOutputLayerDefinition,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterRasterDestination,
    QgsProperty,
)
from qgis.PyQt.QtGui import QIcon

from . import deps
from .raster_io import check_geotiff_name
from .styles import LayerStyler

ICON = Path(__file__).resolve().parent.parent / "icons" / "icon.svg"
CANCELED = "Canceled by the user; no output was written."

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def warnings_to_feedback(feedback):
    """Show the ``UserWarning``s raised in this thread as ``feedback.pushWarning`` lines.

    The core reports fallbacks the user must know about (duplicate samples
    merged, a unit too small for its own fit, a constant band) with
    :func:`warnings.warn`; inside this block each distinct message is shown
    once in the Processing log, while it happens.  Other warning categories
    (e.g. numpy's RuntimeWarning) go to the ``logging`` log.  Warnings of
    other threads (another algorithm running at the same time) are passed on
    unchanged.
    """
    thread = threading.get_ident()
    seen = set()
    with warnings.catch_warnings():
        previous = warnings.showwarning
        warnings.simplefilter("always", UserWarning)

        def show(message, category, filename, lineno, file=None, line=None):
            if threading.get_ident() != thread or feedback is None:
                previous(message, category, filename, lineno, file, line)
            elif issubclass(category, UserWarning):
                text = str(message)
                if text not in seen:
                    seen.add(text)
                    feedback.pushWarning(text)
            else:
                logger.debug("%s: %s (%s:%s)", category.__name__, message, filename, lineno)

        warnings.showwarning = show
        yield



def advanced(param):
    """Mark a parameter as advanced (folded away in the dialog) and return it."""
    param.setFlags(param.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
    return param


def sample_size_parameter(name="SAMPLE_SIZE", what="PCA, K-means, regression"):
    """The advanced "pixel sample for the fits" parameter (the fits never see more pixels)."""
    from qgis.core import QgsProcessingParameterNumber

    from .params import DEFAULT_SAMPLE_SIZE

    return advanced(QgsProcessingParameterNumber(
        name, f"Pixel sample size for the fits ({what})", QgsProcessingParameterNumber.Type.Integer,
        DEFAULT_SAMPLE_SIZE, minValue=1000))

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

    def displayName(self):
        return self.DISPLAY_NAME

    def group(self):
        return self.GROUP

    def groupId(self):
        return self.GROUP_ID

    def shortHelpString(self):
        return self.HELP

    def svgIconPath(self):
        return str(ICON)

    def icon(self):
        # the toolbox and the dialog use icon(); without it they show Processing's gear
        return QIcon(str(ICON))

    def createInstance(self):
        return type(self)()

    def addParameter(self, definition, createOutput=True):
        """Declare ``definition`` with its help text (:mod:`.param_help`): the dialog's tooltip."""
        from .param_help import parameter_help

        if not definition.help():
            definition.setHelp(parameter_help(self.NAME, definition.name()))
        return super().addParameter(definition, createOutput)

    # -- dependencies ---------------------------------------------------
    def canExecute(self):
        message = deps.missing_message(self.REQUIRES)
        return (not message, message)

    LEVELS_RASTER = None
    """Name of the raster parameter that is decomposed with a Laplacian pyramid (if any).

    ``checkParameterValues`` refuses it when it is too small for a pyramid
    (under 3 x 3 pixels), and a ``LEVELS`` parameter deeper than its size allows.
    """

    # -- parameter checks ---------------------------------------------------
    def checkParameterValues(self, parameters, context):
        """Refuse non-GeoTIFF raster outputs before anything is computed or written.

        Otherwise a bad name is only noticed when that output is written: after
        the whole computation, and after the algorithm's earlier outputs.  Also
        refuses a ``LEVELS_RASTER`` too small for a pyramid, or a pyramid depth
        (``LEVELS``) too deep for it.
        """
        ok, message = super().checkParameterValues(parameters, context)
        if not ok:
            return ok, message
        message = self._check_levels(parameters, context)
        if message:
            return False, message
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

    def _check_levels(self, parameters, context):
        """Message refusing a ``LEVELS_RASTER`` too small or ``LEVELS`` too deep, or ""."""
        if not self.LEVELS_RASTER:
            return ""
        layer = self.parameterAsRasterLayer(parameters, self.LEVELS_RASTER, context)
        if layer is None:
            return ""
        from ..core.pyramid import levels_problem

        levels = (self.parameterAsInt(parameters, "LEVELS", context)
                  if self.parameterDefinition("LEVELS") is not None else 0)
        return levels_problem(levels, (layer.height(), layer.width()), f"'{layer.name()}'")

    # -- running ----------------------------------------------------------
    def processAlgorithm(self, parameters, context, feedback):
        from ..core.progress import Canceled

        ok, message = self.canExecute()
        if not ok:
            raise QgsProcessingException(message)
        try:
            with warnings_to_feedback(feedback):
                return self.run_algorithm(parameters, context, feedback)
        except ValueError as exc:
            raise QgsProcessingException(str(exc)) from exc
        except Canceled as exc:
            raise QgsProcessingException(CANCELED) from exc
        except MemoryError as exc:
            raise QgsProcessingException(
                f"Not enough memory ({exc or 'an array could not be allocated'}). Clip the input "
                "to the area you need (an extent, or Raster > Extraction > Clip Raster by Extent) "
                "or use a coarser resolution; nothing was written."
            ) from exc
        except OSError as exc:  # e.g. the disk filled up while a report or table was written
            from .raster_io import describe_io_error

            message = describe_io_error(exc, exc.filename) if exc.filename else str(exc)
            raise QgsProcessingException(message) from exc
        except RuntimeError as exc:  # GDAL/OGR errors not caught where the file is known
            logger.exception("%s failed", self.name())  # the traceback, for a bug report
            raise QgsProcessingException(
                f"GDAL/OGR could not read or write a file ({str(exc).strip()}). Check that the "
                "input files are complete and open in QGIS (a damaged or partly downloaded file "
                "must be exported or downloaded again), and that the output folder is writable."
            ) from exc

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

    def image_and_samples(self, parameters, context, feedback, fields):
        """The ``IMAGE`` layer (projected CRS required) and the ``SAMPLES`` of ``fields`` in its CRS.

        Returns ``(image_layer, x, y, {field: values}, {field: qualifiers})``:
        values as written and qualifier columns, for the field-data conventions
        (:mod:`.sample_values`); reprojection and skipped features are
        reported in the log.
        """
        from . import sample_values
        from .vector_io import check_projected

        image_layer = self.parameterAsRasterLayer(parameters, self.IMAGE, context)
        if image_layer is None:
            raise ValueError("no image given")
        crs = image_layer.crs()
        check_projected(crs, f"Image '{image_layer.name()}'", "raster")
        source = self.parameterAsSource(parameters, self.SAMPLES, context)
        x, y, values, marks = sample_values.read_samples(self, parameters, context, feedback,
                                                         source, fields, crs)
        return image_layer, x, y, values, marks

    @staticmethod
    def check_canceled(feedback):
        if feedback is not None and feedback.isCanceled():
            raise QgsProcessingException(CANCELED)

    @classmethod
    def step(cls, feedback, percent, message=None):
        """Stop here if the user canceled (nothing written yet), else report progress.

        Long algorithms call it between their steps (read, fit, apply) and
        before writing anything, so that Cancel stops them at the next step.
        """
        cls.check_canceled(feedback)
        if feedback is not None:
            feedback.setProgress(percent)
            if message:
                feedback.pushInfo(message)


def _static_path(value):
    """The file name of a destination parameter value, or None when it is computed."""
    if isinstance(value, QgsProcessingOutputLayerDefinition):
        value = value.sink
    if isinstance(value, QgsProperty):
        if value.propertyType() != QgsProperty.Type.StaticProperty:
            return None
        value = value.staticValue()
    return str(value) if value else None
