"""Build ``models/paper_fusion.model3``: the paper's chain as a Processing graphical model.

krige samples → principal components of the image (PC2) → K-means units of the image →
regression fusion (local, paper mode). Run with the venv Python (it needs PyQGIS);
the model file is committed, this script documents how it was made.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from qgis_env import REPO, link_package  # noqa: E402

sys.path.insert(0, str(link_package()))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def build():
    """Build the model from the provider's algorithms and save it."""
    from qgis.core import (
        QgsApplication,
        QgsProcessing,
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelChildParameterSource,
        QgsProcessingModelOutput,
        QgsProcessingModelParameter,
        QgsProcessingParameterFeatureSource,
        QgsProcessingParameterField,
        QgsProcessingParameterNumber,
        QgsProcessingParameterRasterLayer,
    )
    from qgis.PyQt.QtCore import QPointF

    app = QgsApplication([], False)
    app.initQgis()
    from geochem_fusion.provider import GeochemFusionProvider

    provider = GeochemFusionProvider()
    QgsApplication.processingRegistry().addProvider(provider)

    model = QgsProcessingModelAlgorithm("Paper fusion (krige, PC2, K-means, local regression)",
                                        "Geochemical image fusion", "")
    model.setHelpContent({
        "ALG_DESC": "The chain of Remote Sensing 2023, 15(8), 1993 (Figure 8): ordinary kriging of "
                    "the samples, PC2 of the image bands, K-means geological units of the image, "
                    "and local regression fusion in the paper's mode (eqs. 1-3).",
    })
    inputs = [
        (QgsProcessingParameterFeatureSource("samples", "Geochemical samples",
                                             [QgsProcessing.SourceType.TypeVectorPoint]), 80),
        (QgsProcessingParameterField("element", "Element field", parentLayerParameterName="samples",
                                     type=QgsProcessingParameterField.DataType.Numeric), 160),
        (QgsProcessingParameterRasterLayer("image", "Image (multiband)"), 240),
        (QgsProcessingParameterNumber("units", "Number of geological units",
                                      QgsProcessingParameterNumber.Type.Integer, 5, minValue=2), 320),
    ]
    for definition, y in inputs:
        param = QgsProcessingModelParameter(definition.name())
        param.setPosition(QPointF(120, y))
        model.addModelParameter(definition, param)

    def child(alg_id, cid, x, y, params, outputs):
        c = QgsProcessingModelChildAlgorithm(alg_id)
        c.setChildId(cid)
        c.setPosition(QPointF(x, y))
        c.setDescription(QgsApplication.processingRegistry().algorithmById(alg_id).displayName())
        for key, src in params.items():
            c.addParameterSources(key, [src])
        outs = {}
        for key, name in outputs.items():
            o = QgsProcessingModelOutput(name)
            o.setChildId(cid)
            o.setChildOutputName(key)
            outs[name] = o
        c.setModelOutputs(outs)
        model.addChildAlgorithm(c)
        return c

    S = QgsProcessingModelChildParameterSource
    child("geochemfusion:krigesamples", "krige", 420, 100, {
        "SAMPLES": S.fromModelParameter("samples"), "FIELD": S.fromModelParameter("element"),
        "CELL_SIZE": S.fromStaticValue(0), "VARIOGRAM": S.fromStaticValue(4),
        "LOG_TRANSFORM": S.fromStaticValue(False),
        "EXTENT": S.fromModelParameter("image"),  # krige over the whole image
    }, {})
    child("geochemfusion:principalcomponents", "pca", 420, 220, {
        "INPUT": S.fromModelParameter("image"), "N_COMPONENTS": S.fromStaticValue(0),
        "STANDARDIZE": S.fromStaticValue(True), "COMPONENTS": S.fromStaticValue("2"),
    }, {})
    child("geochemfusion:kmeansunits", "units", 420, 340, {
        "INPUT": S.fromModelParameter("image"), "N_CLUSTERS": S.fromModelParameter("units"),
        "SEED": S.fromStaticValue(0),
    }, {})
    child("geochemfusion:regressionfusion", "fusion", 720, 220, {
        "GEOCHEM": S.fromChildOutput("krige", "OUTPUT"),
        "FEATURES": S.fromChildOutput("pca", "OUTPUT"),
        "UNITS": S.fromChildOutput("units", "OUTPUT"),
        "LEVELS": S.fromStaticValue(0), "MODE": S.fromStaticValue(0),
        "REGRESSION": S.fromStaticValue(1), "N_CLUSTERS": S.fromModelParameter("units"),
        "LOG_TRANSFORM": S.fromStaticValue(False),
    }, {"OUTPUT": "Fused"})
    model.setName("paper_fusion")
    model.setGroup("Geochemical image fusion")
    path = REPO / "models" / "paper_fusion.model3"
    if not model.toFile(str(path)):
        raise SystemExit(f"could not write {path}")
    print(path)
    app.exitQgis()


if __name__ == "__main__":
    build()
