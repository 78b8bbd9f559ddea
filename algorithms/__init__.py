"""Processing algorithms of the ``geochemfusion`` provider (one module per step).

Modules import only QGIS and GDAL at load time; the numeric core (and its
optional dependencies scikit-learn and pykrige) is imported when an algorithm
runs, so the plugin loads even where those packages are missing.
"""

from .anomaly_thresholds import AnomalyThresholds
from .crossvalidate_fusion import CrossValidateFusion
from .evaluate_fusion import EvaluateFusion
from .fuse_geochemistry import FuseGeochemistry
from .fuse_mosaic import FuseMosaic
from .kmeans_units import KMeansUnitsAlgorithm
from .krige_samples import KrigeSamples
from .laplacian_decomposition import LaplacianDecomposition
from .mineral_indices import MineralIndices
from .prepare_aster import PrepareAster
from .prepare_sentinel2 import PrepareSentinel2
from .principal_components import PrincipalComponents
from .regression_fusion import RegressionFusion

ALGORITHM_CLASSES = (
    KrigeSamples,
    MineralIndices,
    PrincipalComponents,
    LaplacianDecomposition,
    KMeansUnitsAlgorithm,
    RegressionFusion,
    FuseGeochemistry,
    PrepareSentinel2,
    PrepareAster,
    EvaluateFusion,
    CrossValidateFusion,
    AnomalyThresholds,
    FuseMosaic,
)
