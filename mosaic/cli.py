r"""``python3 -m geochem_fusion fuse`` — the fusion of many image tiles on Dask, without QGIS.

Example (a new local cluster sized to the machine, then an existing one)::

    python3 -m geochem_fusion fuse samples.gpkg T35WMS.tif T35WNS.tif --field Cu --out fused/
    python3 -m geochem_fusion fuse samples.gpkg tiles.vrt --field Cu --field Zn --out fused/ \\
        --scheduler tcp://10.0.0.5:8786

The arguments mirror the ``fusegeochemistry`` Processing algorithm.
"""

from __future__ import annotations

import argparse
import sys

MODES = ("adaptive", "paper", "coherent")
FEATURES = ("bands", "bands-pc2", "indices-pc2", "pcs")
VARIOGRAMS = ("auto", "spherical", "exponential", "gaussian", "linear")
PYRAMID_MODES_NOTE = (
    "the paper and coherent modes are not tile-local: their Laplacian pyramid and the "
    "regression of its low-frequency levels span the whole image, so a tile cannot be computed "
    "from its own window. Run them on the mosaic in one process (the fusegeochemistry "
    "algorithm on a VRT of the tiles), or use the adaptive mode (the default) here")


def _int_list(text):
    return tuple(int(v) for v in text.replace(" ", "").split(",") if v)


def _band_map(text):
    if not text:
        return None
    out = {}
    for item in text.split(","):
        key, _, value = item.partition("=")
        if not value:
            raise argparse.ArgumentTypeError(f"band map item {item!r} is not NAME=BAND")
        out[key.strip()] = int(value)
    return out


def build_parser():
    """The ``fuse`` command's arguments."""
    parser = argparse.ArgumentParser(
        prog="python3 -m geochem_fusion",
        description="Geochemical Image Fusion without QGIS: many image tiles fused on Dask.")
    sub = parser.add_subparsers(dest="command", required=True)
    fuse = sub.add_parser(
        "fuse", help="fuse samples with image tiles (files or a VRT) into an output folder",
        description="Fit once on the samples for the whole area, then fuse every image tile "
                    "as its own Dask task; the output folder gets one Cloud-Optimized GeoTIFF "
                    "per tile and fused.vrt over them.")
    fuse.add_argument("samples", help="geochemical samples: any OGR point source")
    fuse.add_argument("images", nargs="+",
                      help="image tiles (files), or a VRT standing for the files it lists")
    fuse.add_argument("--field", "-f", action="append", required=True,
                      help="element field (concentration); repeat for several elements")
    fuse.add_argument("--out", "-o", required=True, help="output folder")
    fuse.add_argument("--layer", help="layer of the samples source (default: the first)")
    fuse.add_argument("--mode", choices=MODES, default="adaptive",
                      help="fusion mode (only adaptive, the default, runs tile by tile)")
    fuse.add_argument("--regression", choices=("global", "local"), default="global",
                      help="global trend, or one per K-means geological unit")
    fuse.add_argument("--clusters", type=int, default=5,
                      help="number of geological units (local regression)")
    fuse.add_argument("--features", choices=FEATURES, default="bands",
                      help="image features (default: all bands)")
    fuse.add_argument("--pcs", type=_int_list, default=(2,),
                      help="principal components for --features pcs, e.g. 2,3")
    fuse.add_argument("--sensor", choices=("aster", "sentinel2"), default="sentinel2",
                      help="sensor (for indices-pc2)")
    fuse.add_argument("--band-map", type=_band_map, default=None,
                      help="sensor band=raster band, e.g. B2=1,B3=2 (for indices-pc2)")
    fuse.add_argument("--log", action="store_true", help="log10-transform the concentrations")
    fuse.add_argument("--below-detection", choices=("refuse", "half-min"), default="refuse",
                      help="values <= 0 with --log, or negative codes: refuse, or replace by "
                           "half the smallest positive value")
    fuse.add_argument("--variogram", choices=VARIOGRAMS, default="auto", help="variogram model")
    fuse.add_argument("--seed", type=int, default=0, help="random seed (pixel samples, K-means)")
    fuse.add_argument("--sample-size", type=int, default=200_000,
                      help="pixels sampled to fit the feature transform and K-means")
    fuse.add_argument("--scheduler", default="local",
                      help="'local' (default: a new Dask LocalCluster sized to the machine) or "
                           "the address of an existing scheduler, tcp://HOST:PORT")
    fuse.add_argument("--workers", type=int, default=None,
                      help="worker processes of the local cluster (default: one per CPU)")
    fuse.add_argument("--rows-per-task", type=int, default=0,
                      help="cut tiles into row pieces of this many rows (0: one task per tile)")
    fuse.add_argument("--no-resume", action="store_true",
                      help="recompute every tile even if complete from the same inputs")
    return parser


def main(argv=None):
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.mode != "adaptive":
        print(f"error: --mode {args.mode}: {PYRAMID_MODES_NOTE}", file=sys.stderr)
        return 2
    try:
        import distributed  # noqa: F401 (only checks it is there)
    except ImportError:
        print("error: Dask distributed is not installed in this Python. Install it with "
              "`pip install -r requirements.txt` (or `make setup`, which makes .venv) and run "
              "`.venv/bin/python -m geochem_fusion fuse ...`", file=sys.stderr)
        return 2
    from .model import Settings
    from .run import fuse_mosaic

    settings = Settings(features=args.features, sensor=args.sensor, band_map=args.band_map,
                        pcs=args.pcs, regression=args.regression, n_clusters=args.clusters,
                        log_transform=args.log, variogram=args.variogram,
                        sample_size=args.sample_size, random_state=args.seed)
    try:
        result = fuse_mosaic(args.samples, args.field, args.images, args.out, settings=settings,
                             scheduler=args.scheduler, n_workers=args.workers,
                             rows_per_task=args.rows_per_task, resume=not args.no_resume,
                             below_detection=args.below_detection, layer=args.layer)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if result.failed or result.bad_tiles:
        return 1
    return 0
