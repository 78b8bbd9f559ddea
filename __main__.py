"""``python3 -m geochem_fusion``: the command line (no QGIS needed; see ``mosaic/cli.py``)."""

import sys

from .mosaic.cli import main

if __name__ == "__main__":  # not again in the worker processes Dask spawns
    sys.exit(main())
