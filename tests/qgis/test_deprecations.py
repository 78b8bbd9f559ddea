"""Nothing deprecated is called from the plugin's own code on the QGIS it runs in (issue 14).

pyproject.toml ignores DeprecationWarning in general (Python's and QGIS's own), but turns
one raised from a ``geochem_fusion`` module into an error, in every test. This file runs
the algorithms whose QGIS API moved (field parameters: ``parameterAsFields`` ->
``parameterAsStrings`` from 3.32; table fields: ``QgsField(name, QVariant…)`` ->
``QMetaType`` from 3.38): the error propagates out of ``processAlgorithm`` and
``processing.run`` fails. On 3.22 the old spellings are not deprecated: these are checks
for the 3.40 and 3.44 legs of ``make test-matrix``.
"""

import warnings

import pytest

OWN_DEPRECATIONS_ARE_ERRORS = pytest.mark.filterwarnings("error::DeprecationWarning:geochem_fusion")


@OWN_DEPRECATIONS_ARE_ERRORS
def test_algorithms_with_moved_api_raise_no_deprecation(run_alg, demo, tmp_path):
    samples = f"{demo / 'samples.gpkg'}|layername=samples"
    run_alg("krigesamples", {"SAMPLES": samples, "FIELD": "Cu", "OUTPUT": str(tmp_path / "cu.tif")})
    run_alg("principalcomponents", {
        "INPUT": str(demo / "sentinel2.tif"), "OUTPUT": str(tmp_path / "pc.tif"),
        "OUTPUT_TABLE": str(tmp_path / "loadings.gpkg")})
    run_alg("evaluatefusion", {
        "FUSED": [str(tmp_path / "cu.tif")], "INPUT_SAMPLES": samples, "INPUT_FIELD": "Cu",
        "OUTPUT_TABLE": str(tmp_path / "evaluation.csv")})
    assert (tmp_path / "evaluation.csv").is_file()


@OWN_DEPRECATIONS_ARE_ERRORS
def test_a_deprecation_attributed_to_the_plugin_is_an_error():
    """The filter is not vacuous: it raises for a plugin module, and only for one."""
    with pytest.raises(DeprecationWarning):
        warnings.warn_explicit("old API", DeprecationWarning, "compat.py", 1,
                               module="geochem_fusion.algorithms.compat")
    warnings.warn_explicit("old API", DeprecationWarning, "other.py", 1, module="numpy.other")
