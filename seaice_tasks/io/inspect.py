"""What a product file holds: one :class:`~seaice_tasks.io.summary.ProductSummary` per file or scene.

:func:`inspect_path` dispatches on the path: a folder or a raster suffix is a Sentinel-2 scene or
raster (:func:`seaice_tasks.io.s2.summarize_s2`), anything else an ICESat-2 HDF5 granule whose
product (ATL03, ATL07, ATL10) is read from its layout.  ``seaice inspect`` (:mod:`seaice_tasks.cli`)
and the demo print it.
"""

from __future__ import annotations

import os
from typing import Final

from seaice_tasks.errors import CorruptFileError, WrongProductError
from seaice_tasks.io.summary import ProductSummary

__all__ = ["RASTER_SUFFIXES", "inspect_path"]

#: File suffixes read as Sentinel-2 rasters (lower case).
RASTER_SUFFIXES: Final[tuple[str, ...]] = (".tif", ".tiff", ".jp2", ".png", ".vrt")


def inspect_path(path: str) -> ProductSummary:
    """Summarise one product file or Sentinel-2 scene folder.

    Parameters
    ----------
    path : str
        Local path (``file://`` allowed) or URL of an ATL03/ATL07/ATL10 HDF5 file, a Sentinel-2
        raster or a scene folder.

    Returns
    -------
    ProductSummary
        Product, granule, time range, per-beam photon/segment counts and strength (ICESat-2) or
        CRS, shape and bands (Sentinel-2).

    Raises
    ------
    SeaIceError
        When the file is unreadable, of an unknown product, or malformed (the error names the
        file).
    """
    local = path.removeprefix("file://")
    if os.path.isdir(local) or local.lower().endswith(RASTER_SUFFIXES):
        from seaice_tasks.io.s2 import summarize_s2

        return summarize_s2(path)
    from seaice_tasks.io._h5 import open_h5, product_of

    with open_h5(path) as f:
        product = product_of(f)
    if product == "ATL03":
        from seaice_tasks.io.atl03 import summarize_atl03

        return summarize_atl03(path)
    if product == "ATL07":
        from seaice_tasks.io.atl07 import summarize_atl07

        return summarize_atl07(path)
    if product == "ATL10":
        from seaice_tasks.io.atl10 import summarize_atl10

        return summarize_atl10(path)
    if product is None:
        raise WrongProductError(path, "no ATL03/ATL07/ATL10 layout found (no gtXX beam groups with product data)")
    raise CorruptFileError(path, f"product {product} is not supported (ATL03, ATL07, ATL10, Sentinel-2)")
