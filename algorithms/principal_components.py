"""``geochemfusion:principalcomponents`` — PCA of a raster stack with its loading table."""

from qgis.core import (
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from ..core.blocks import block_rows_for, row_blocks
from . import raster_io
from .base import GeochemAlgorithm, sample_size_parameter
from .params import parse_int_list
from .styles import CONTINUOUS
from .tables import write_table


class PrincipalComponents(GeochemAlgorithm):
    """``geochemfusion:principalcomponents``: principal components of an image stack."""

    NAME = "principalcomponents"
    DISPLAY_NAME = "Principal components"
    INPUT, N_COMPONENTS, STANDARDIZE, COMPONENTS, OUTPUT, OUTPUT_TABLE = (
        "INPUT", "N_COMPONENTS", "STANDARDIZE", "COMPONENTS", "OUTPUT", "OUTPUT_TABLE")
    REQUIRES = ("numpy", "scipy", "sklearn")
    HELP = (
        "Principal component analysis of the bands (or mineral indices) of a raster. The paper "
        "uses PC2: PC1 mostly carries albedo and topography, PC2 the lithological/alteration "
        "contrast (Remote Sensing 2023, 15(8), 1993, §4.3).<br>"
        "<b>Number of components</b>: 0 = all.<br><b>Standardize</b>: PCA of the correlation "
        "matrix (each band scaled to unit variance) — use it for indices or mixed units.<br>"
        "Sign convention: each component is oriented so that its largest-magnitude coefficient is "
        "positive.<br><b>Components to write</b>: e.g. '2' writes PC2 only (the paper's feature); "
        "empty writes every computed component.<br><b>Loadings table</b>: the correlation of "
        "each band with each component, and "
        "the explained variance of each component, so you can see what PC2 means."
    )

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Input stack"))
        self.addParameter(QgsProcessingParameterNumber(
            self.N_COMPONENTS, "Number of components (0 = all)",
            QgsProcessingParameterNumber.Type.Integer, 0, minValue=0))
        self.addParameter(QgsProcessingParameterBoolean(
            self.STANDARDIZE, "Standardize bands (correlation-matrix PCA)", True))
        components = QgsProcessingParameterString(
            self.COMPONENTS, "Components to write (e.g. 2; empty = all)", "", optional=True)
        self.addParameter(components)
        self.addParameter(sample_size_parameter("SAMPLE_SIZE", "PCA"))
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, "Principal components"))
        self.addParameter(QgsProcessingParameterFeatureSink(
            self.OUTPUT_TABLE, "Loadings and explained variance", optional=True,
            createByDefault=True))

    def run_algorithm(self, parameters, context, feedback):
        from ..core.pca import PCA

        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        self.step(feedback, 1, f"Reading '{layer.name()}'")
        path = raster_io.layer_path(layer)
        raster_io.check_bands(raster_io.read_preview(path), f"Input '{layer.name()}'")
        src = raster_io.open_blocks(path)
        n = self.parameterAsInt(parameters, self.N_COMPONENTS, context) or None
        wanted = parse_int_list(self.parameterAsString(parameters, self.COMPONENTS, context) or "",
                                "Components to write")
        if wanted and n is not None and max(wanted) > n:
            n = max(wanted)
        sample_size = self.parameterAsInt(parameters, "SAMPLE_SIZE", context)
        pca = PCA(n, standardize=self.parameterAsBool(parameters, self.STANDARDIZE, context),
                  sample_size=sample_size)
        self.step(feedback, 10, "Fitting the principal components")
        pca.fit(raster_io.fitting_stack(src, n_pixels=sample_size))
        ratio = pca.explained_variance_ratio_
        n_comp = len(ratio)
        desc = [f"PC{i + 1} ({100 * r:.1f} % of variance)" for i, r in enumerate(ratio)]
        keep = list(range(n_comp))
        if wanted:
            if min(wanted) < 1 or max(wanted) > n_comp:
                raise ValueError(f"components {wanted} requested, but the stack has only "
                                 f"{n_comp} (choose between 1 and {n_comp})")
            keep = [w - 1 for w in wanted]
            desc = [desc[k] for k in keep]
        out = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        rows, cols = src.grid.shape
        with raster_io.WindowedWriter(out, src.grid, src.crs_wkt, len(keep),
                                      descriptions=desc) as writer:
            for row0, nrows in row_blocks(rows, block_rows_for(cols)):
                self.step(feedback, 20 + 75 * row0 / rows, None)
                comps = pca.transform(src.read(row0, 0, nrows, cols))
                for i, k in enumerate(keep):
                    writer.write(i, row0, comps[k])
        self.load_styled(context, out, CONTINUOUS, f"{layer.name()} principal components")
        results = {self.OUTPUT: out}
        table = pca.loading_table(src.descriptions)
        dest = write_table(self, parameters, context, self.OUTPUT_TABLE, table)
        if dest is not None:
            results[self.OUTPUT_TABLE] = dest
        for row in table:
            feedback.pushInfo(", ".join(
                f"{k}={v:.3f}" if not isinstance(v, str) else f"{k}={v}" for k, v in row.items()))
        return results
