"""The QGIS API where it moved between the versions the plugin supports (3.22 to 4.x).

One place for the version gates, so that nothing deprecated is called on a QGIS
that has the replacement (``tests/qgis/test_deprecations.py`` turns the plugin's
DeprecationWarnings into errors on 3.40 and 3.44):

- ``parameterAsStrings`` replaces ``parameterAsFields`` from QGIS 3.32;
- ``QgsField(name, QMetaType.Type…)`` replaces ``QgsField(name, QVariant…)`` from 3.38
  (and is the only form on QGIS 4 / Qt6, where ``QVariant.Type`` is gone).
"""

from qgis.core import Qgis, QgsField

QGIS_VERSION_INT = Qgis.QGIS_VERSION_INT


def parameter_as_strings(alg, parameters, name, context):
    """The field names chosen in the field parameter ``name`` (a list of str)."""
    if QGIS_VERSION_INT >= 33200:
        return alg.parameterAsStrings(parameters, name, context)
    return alg.parameterAsFields(parameters, name, context)


def make_field(name, text=False):
    """A ``QgsField`` holding text (``text=True``) or double values."""
    if QGIS_VERSION_INT >= 33800:
        from qgis.PyQt.QtCore import QMetaType

        return QgsField(name, QMetaType.Type.QString if text else QMetaType.Type.Double)
    from qgis.PyQt.QtCore import QVariant

    return QgsField(name, QVariant.Type.String if text else QVariant.Type.Double)
