"""Small synthetic tiles and samples for the distributed tests and the benchmark."""

import os

import numpy as np
from osgeo import gdal, ogr, osr

EPSG = 32635
PIXEL = 10.0
X0, Y0 = 500_000.0, 7_500_000.0


def image(rows, cols, seed=0):
    """A smooth 4-band reflectance-like image (float32 ~ 0.02..0.5)."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    bands = []
    for _ in range(4):
        noise = rng.normal(size=(rows, cols))
        bands.append(ndimage.gaussian_filter(noise, 6) * 3 + ndimage.gaussian_filter(noise, 1))
    stack = np.stack(bands)
    stack = 0.2 + 0.05 * stack + 0.02 * rng.normal(size=stack.shape)
    return stack.astype(np.float32)


def write_tile(path, data, row0, col0, *, epsg=EPSG, nodata=None):
    """``data`` (bands, rows, cols) as a tiled GeoTIFF whose corner is pixel (row0, col0) of the area."""
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    bands, rows, cols = data.shape
    dtype = gdal.GDT_UInt16 if data.dtype == np.uint16 else gdal.GDT_Float32
    ds = gdal.GetDriverByName("GTiff").Create(path, cols, rows, bands, dtype,
                                              ["TILED=YES", "COMPRESS=DEFLATE"])
    ds.SetGeoTransform((X0 + col0 * PIXEL, PIXEL, 0, Y0 - row0 * PIXEL, 0, -PIXEL))
    ds.SetProjection(srs.ExportToWkt())
    for i in range(bands):
        band = ds.GetRasterBand(i + 1)
        if nodata is not None:
            band.SetNoDataValue(nodata)
        band.SetDescription(f"B{i + 2}")
        band.WriteArray(data[i])
    ds = None
    return path


def make_tiles(folder, rows, cols, grid=(2, 2), seed=0, dtype=np.float32, scale=1.0):
    """An image of ``grid`` tiles of ``rows`` x ``cols`` each; returns (paths, whole image)."""
    whole = image(rows * grid[0], cols * grid[1], seed) * scale
    whole = whole.astype(dtype)
    paths = []
    for i in range(grid[0]):
        for j in range(grid[1]):
            path = os.path.join(folder, f"T{i}{j}.tif")
            write_tile(path, whole[:, i * rows:(i + 1) * rows, j * cols:(j + 1) * cols],
                       i * rows, j * cols)
            paths.append(path)
    return paths, whole


def make_samples(path, whole, spacing, seed=1, fields=("Cu", "Zn"), epsg=EPSG):
    """Samples on a jittered grid over ``whole`` (bands, rows, cols), written as a GeoPackage.

    Values: a linear mix of the bands at the sample plus a smooth field and noise, so the
    adaptive fit finds an image trend.
    """
    rng = np.random.default_rng(seed)
    _, rows, cols = whole.shape
    width, height = cols * PIXEL, rows * PIXEL
    gx = np.arange(spacing / 2, width, spacing)
    gy = np.arange(spacing / 2, height, spacing)
    xx, yy = np.meshgrid(gx, gy)
    x = X0 + xx.ravel() + rng.uniform(-spacing / 3, spacing / 3, xx.size)
    y = Y0 - yy.ravel() + rng.uniform(-spacing / 3, spacing / 3, xx.size)
    c = np.clip(((x - X0) / PIXEL).astype(int), 0, cols - 1)
    r = np.clip(((Y0 - y) / PIXEL).astype(int), 0, rows - 1)
    b = whole[:, r, c].astype(np.float64)
    values = {}
    for k, name in enumerate(fields):
        w = np.roll(np.array([40.0, -25.0, 30.0, 10.0]), k)
        values[name] = 200 + (w[:, None] * (b - 0.2) / 0.05).sum(axis=0) \
            + 0.002 * (x - X0) + rng.normal(0, 5, x.size)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(path)
    lyr = ds.CreateLayer("samples", srs, ogr.wkbPoint)
    for name in fields:
        lyr.CreateField(ogr.FieldDefn(name, ogr.OFTReal))
    for i in range(x.size):
        feat = ogr.Feature(lyr.GetLayerDefn())
        geom = ogr.Geometry(ogr.wkbPoint)
        geom.AddPoint_2D(float(x[i]), float(y[i]))
        feat.SetGeometry(geom)
        for name in fields:
            feat.SetField(name, float(values[name][i]))
        lyr.CreateFeature(feat)
    ds = None
    return path, x, y, values
