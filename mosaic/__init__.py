"""Fusion of many image tiles on Dask distributed, outside QGIS (``python3 -m geochem_fusion fuse``).

- :mod:`.tiles` — tile checks, the input mosaic (VRT), window reads, COG output (GDAL);
- :mod:`.samples` — samples from any OGR source (GDAL);
- :mod:`.model` — the adaptive fusion as a fit once and a prediction of any window (numpy);
- :mod:`.run` — the Dask run: fit, broadcast, one task per tile, resume, bad tiles;
- :mod:`.cli` — the command line.

Nothing here imports QGIS; GDAL and Dask are imported by the modules that use them.
"""
