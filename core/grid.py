"""North-up raster grid geometry shared by the core modules.

A :class:`Grid` describes where the cells of a ``(rows, cols)`` array lie in
map coordinates.  It uses the GDAL geotransform convention: the origin is the
*outer* top-left corner of the top-left cell, ``x`` grows with columns and
``y`` decreases with rows.  Units are those of the coordinate reference system
(metres for the projected CRSs this plugin expects).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Grid"]


@dataclass(frozen=True)
class Grid:
    """Geometry of a north-up grid.

    Parameters
    ----------
    x_min, y_max : float
        Map coordinates of the outer top-left corner.
    cell_x, cell_y : float
        Cell width and height, both positive (map units).
    ncols, nrows : int
        Number of columns and rows.
    """

    x_min: float
    y_max: float
    cell_x: float
    cell_y: float
    ncols: int
    nrows: int

    def __post_init__(self):
        if not (self.cell_x > 0 and self.cell_y > 0):
            raise ValueError(
                f"cell sizes must be positive, got cell_x={self.cell_x}, cell_y={self.cell_y}"
            )
        if self.ncols < 1 or self.nrows < 1:
            raise ValueError(f"a grid needs at least 1x1 cells, got {self.nrows}x{self.ncols}")

    # -- constructors -----------------------------------------------------
    @classmethod
    def from_gdal(cls, geotransform, shape) -> Grid:
        """Build from a GDAL geotransform and an array ``shape`` ``(..., rows, cols)``.

        Rotated geotransforms are refused (reproject/warp the raster first).
        """
        x0, dx, rx, y0, ry, dy = (float(v) for v in geotransform)
        if rx != 0 or ry != 0:
            raise ValueError("rotated rasters are not supported: warp the raster to a north-up grid")
        if dy >= 0:
            raise ValueError("expected a north-up raster (negative pixel height)")
        rows, cols = int(shape[-2]), int(shape[-1])
        return cls(x0, y0, dx, -dy, cols, rows)

    @classmethod
    def from_extent(cls, x_min, y_min, x_max, y_max, cell_size) -> Grid:
        """Smallest grid of square ``cell_size`` cells covering the extent."""
        if not (x_max > x_min and y_max > y_min):
            raise ValueError(
                f"empty extent: x {x_min}..{x_max}, y {y_min}..{y_max}"
            )
        ncols = max(1, int(math.ceil((x_max - x_min) / cell_size - 1e-9)))
        nrows = max(1, int(math.ceil((y_max - y_min) / cell_size - 1e-9)))
        return cls(float(x_min), float(y_max), float(cell_size), float(cell_size), ncols, nrows)

    # -- properties -------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, cols)``."""
        return (self.nrows, self.ncols)

    @property
    def x_max(self) -> float:
        """East edge (map units)."""
        return self.x_min + self.ncols * self.cell_x

    @property
    def y_min(self) -> float:
        """South edge (map units)."""
        return self.y_max - self.nrows * self.cell_y

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """``(x_min, y_min, x_max, y_max)``."""
        return (self.x_min, self.y_min, self.x_max, self.y_max)

    def to_gdal(self) -> tuple[float, float, float, float, float, float]:
        """The GDAL geotransform of the grid."""
        return (self.x_min, self.cell_x, 0.0, self.y_max, 0.0, -self.cell_y)

    # -- coordinates ------------------------------------------------------
    def x_centers(self) -> np.ndarray:
        """Map x of each column's cell centre, shape ``(cols,)``."""
        return self.x_min + (np.arange(self.ncols) + 0.5) * self.cell_x

    def y_centers(self) -> np.ndarray:
        """Map y of each row's cell centre (decreasing), shape ``(rows,)``."""
        return self.y_max - (np.arange(self.nrows) + 0.5) * self.cell_y

    def to_pixel(self, x, y):
        """Fractional (col, row) in *cell-centre* units: 0.0 is the first cell centre."""
        col = (np.asarray(x, dtype=float) - self.x_min) / self.cell_x - 0.5
        row = (self.y_max - np.asarray(y, dtype=float)) / self.cell_y - 0.5
        return col, row

    def window(self, row0, col0, nrows, ncols) -> Grid:
        """Sub-grid starting at (row0, col0) with the given size."""
        return Grid(
            self.x_min + col0 * self.cell_x,
            self.y_max - row0 * self.cell_y,
            self.cell_x,
            self.cell_y,
            int(ncols),
            int(nrows),
        )

    def overlaps(self, other: Grid) -> bool:
        """Whether the two grids' extents overlap (touching edges do not)."""
        return not (
            other.x_min >= self.x_max
            or other.x_max <= self.x_min
            or other.y_min >= self.y_max
            or other.y_max <= self.y_min
        )
