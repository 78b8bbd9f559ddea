"""``geochemfusion:fusemosaic`` — many image tiles fused on Dask distributed, from QGIS."""

from qgis.core import (
    QgsProcessing,
    QgsProcessingOutputRasterLayer,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from . import deps, sample_values
from .base import GeochemAlgorithm, advanced
from .params import REGRESSIONS


class FuseMosaic(GeochemAlgorithm):
    """Samples and many image tiles in, one COG per tile and a VRT out, on Dask."""

    NAME = "fusemosaic"
    DISPLAY_NAME = "Fuse geochemistry with many image tiles (Dask)"
    GROUP = "Geochemical image fusion"
    GROUP_ID = "fusion"
    REQUIRES = ("numpy", "scipy", "sklearn", "pykrige")
    OPTIONAL = ("distributed",)
    """Needed by this algorithm only: checked when it is run, not offered at QGIS start-up."""
    SAMPLES, FIELD, TILES, REGRESSION, N_CLUSTERS = (
        "SAMPLES", "FIELD", "TILES", "REGRESSION", "N_CLUSTERS")
    SCHEDULER, WORKERS, OUTPUT_FOLDER, OUTPUT = "SCHEDULER", "WORKERS", "OUTPUT_FOLDER", "OUTPUT"
    HELP = (
        "The default (adaptive) fusion of <i>Fuse geochemistry with imagery</i> over many image "
        "tiles (a province, a country of Sentinel-2 tiles), on Dask distributed. The model is "
        "fitted once on the samples for the whole area; then every tile is one Dask task that "
        "reads its window of the tiles' mosaic, predicts, adds the kriged residual and writes a "
        "Cloud-Optimized GeoTIFF into the output folder; <i>fused.vrt</i> ties them together. "
        "The result equals the single-machine fusion of the mosaic to rounding.<br>"
        "<b>Tiles</b>: rasters in one projected CRS, one pixel size and one pixel lattice. Tiles "
        "that are missing, in another CRS or away from the samples are reported by name and "
        "left out; the rest finish.<br>"
        "<b>Scheduler</b>: <i>local</i> runs the tasks in threads of this QGIS process; or the "
        "address of an existing Dask scheduler (tcp://host:8786), whose workers must see the "
        "tiles and the output folder at the same paths. For worker processes on this machine "
        "or a cluster, the command line does the same: <i>python3 -m geochem_fusion fuse</i> "
        "(see the README, 'Beyond one machine').<br>"
        "A rerun into the same folder skips the tiles already complete.<br>"
        "Needs the <i>dask[distributed]</i> package in the Python QGIS runs.<br>"
        + sample_values.help_text()
    )

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API name)
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.SAMPLES, "Geochemical samples", [QgsProcessing.SourceType.TypeVectorPoint]))
        self.addParameter(QgsProcessingParameterField(
            self.FIELD, "Element fields (concentrations)", parentLayerParameterName=self.SAMPLES,
            type=QgsProcessingParameterField.DataType.Numeric, allowMultiple=True))
        self.addParameter(QgsProcessingParameterMultipleLayers(
            self.TILES, "Image tiles", QgsProcessing.SourceType.TypeRaster))
        self.addParameter(QgsProcessingParameterEnum(
            self.REGRESSION, "Regression", REGRESSIONS, defaultValue=0))
        self.addParameter(QgsProcessingParameterNumber(
            self.N_CLUSTERS, "Number of geological units (local regression)",
            QgsProcessingParameterNumber.Type.Integer, 5, minValue=2, maxValue=64))
        self.addParameter(QgsProcessingParameterString(
            self.SCHEDULER, "Dask scheduler ('local', or tcp://host:port)", "local"))
        self.addParameter(advanced(QgsProcessingParameterNumber(
            self.WORKERS, "Worker threads of the local scheduler (0 = one per CPU)",
            QgsProcessingParameterNumber.Type.Integer, 0, minValue=0)))
        self.addParameter(QgsProcessingParameterFolderDestination(
            self.OUTPUT_FOLDER, "Output folder"))
        self.addOutput(QgsProcessingOutputRasterLayer(self.OUTPUT, "Fused geochemistry (VRT)"))
        sample_values.add_parameters(self)

    def canExecute(self):  # noqa: N802 (QGIS API name)
        """Runnable when the core's packages and ``dask.distributed`` are importable."""
        ok, message = super().canExecute()
        if not ok:
            return ok, message
        message = deps.missing_message(self.OPTIONAL)
        return (not message, message)

    def run_algorithm(self, parameters, context, feedback):
        import os

        from ..mosaic.run import fuse_mosaic, local_threads_client

        fields = self.parameterAsFields(parameters, self.FIELD, context)
        if not fields:
            raise ValueError("choose at least one element field")
        samples = self.parameterAsCompatibleSourceLayerPath(
            parameters, self.SAMPLES, context, ["gpkg", "shp"], "gpkg", feedback)
        tiles = [layer.source() for layer in
                 self.parameterAsLayerList(parameters, self.TILES, context)]
        if not tiles:
            raise ValueError("choose at least one image tile")
        folder = self.parameterAsString(parameters, self.OUTPUT_FOLDER, context)
        scheduler = self.parameterAsString(parameters, self.SCHEDULER, context).strip() or "local"
        from ..mosaic.model import settings_for

        settings = settings_for(
            regression=REGRESSIONS[self.parameterAsEnum(parameters, self.REGRESSION, context)],
            n_clusters=self.parameterAsInt(parameters, self.N_CLUSTERS, context))
        client = None
        if scheduler == "local":  # threads: QGIS's own executable cannot spawn Python workers
            client = local_threads_client(self.parameterAsInt(parameters, self.WORKERS, context))
        try:
            result = fuse_mosaic(samples, fields, tiles, folder, settings=settings,
                                 scheduler=scheduler, client=client, log=feedback.pushInfo,
                                 sample_rules=sample_values.conventions(self, parameters, context),
                                 qualifiers=self.parameterAsBool(parameters,
                                                                 sample_values.QUALIFIERS,
                                                                 context),
                                 progress=lambda f: feedback.setProgress(100 * f),
                                 cancel=feedback.isCanceled)
        finally:
            if client is not None:
                cluster = client.cluster
                client.close()
                cluster.close()
        for bad in result.bad_tiles:
            feedback.pushWarning(f"Bad tile, left out: {bad['reason']}")
        for failed in result.failed:
            feedback.pushWarning(f"Tile failed: {failed['reason']}")
        if result.output is None:
            raise ValueError("no tile was fused; see the messages above")
        context.addLayerToLoadOnCompletion(
            result.output, context.LayerDetails("Fused geochemistry (tiles)", context.project(),
                                                self.OUTPUT))
        return {self.OUTPUT: result.output, self.OUTPUT_FOLDER: os.path.abspath(folder)}
