"""Geochemical Image Fusion — QGIS plugin entry point.

QGIS calls :func:`classFactory`; nothing else happens at import time, so the
numeric core (``geochem_fusion.core``) can be imported without QGIS.
"""


def classFactory(iface):
    """QGIS entry point: the plugin object for ``iface``."""
    from .plugin import GeochemFusionPlugin

    return GeochemFusionPlugin(iface)
