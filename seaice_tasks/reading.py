"""Read API for notebooks: a product's committed rows as one GeoDataFrame (docs/reading.md).

:func:`read` gives **exactly the committed current rows of every partition, once**: each
partition is read from the one version its manifest names (:meth:`~seaice_tasks.storage.Lake.read_partition`:
a version replaced while it is read is read again from the new one), so never a superseded, an
in-flight or a half-written version, also while a commit of the same partition runs.  The
partition keys (``date``, ``granule``, ``beam``, ``scene``) become columns, as a hive-partitioned
reader would give them; the geometry is the products' WKB point column in EPSG:4326.

Examples
--------
A lake without the product's partitions gives an empty frame with the product's key columns::

    >>> import tempfile
    >>> from seaice_tasks.storage import Lake
    >>> lake = Lake(tempfile.mkdtemp())
    >>> frame = read(lake.root, "freeboard", "2019-11-04")
    >>> len(frame), list(frame.columns)[:3], str(frame.crs)
    (0, ['date', 'granule', 'beam'], 'EPSG:4326')
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Final

import numpy as np
import pandas as pd

from seaice_tasks.config import parse_day
from seaice_tasks.errors import ConfigError
from seaice_tasks.products import PRODUCTS, Product
from seaice_tasks.storage import KEY_FIELDS, Lake, PartitionKey
from seaice_tasks.store_access import open_lake

if TYPE_CHECKING:
    import geopandas

__all__ = ["read", "table_products"]

#: CRS of the products' geometry column (WKB points of lon_deg, lat_deg).
CRS: Final[str] = "EPSG:4326"
#: Key fields that become columns (the versioned products' name/version are not day data).
_KEY_COLUMNS: Final[tuple[str, ...]] = tuple(f for f in KEY_FIELDS if f not in ("name", "version"))
Dates = str | dt.date | Iterable[str | dt.date] | None


def table_products() -> tuple[str, ...]:
    """Products whose partitions hold a GeoParquet table with a geometry column, by day."""
    return tuple(sorted(name for name, p in PRODUCTS.items() if _geo_table(p) is not None))


def _geo_table(product: Product) -> str | None:
    """The product's GeoParquet table file name, or None."""
    for spec in product.files:
        schema = spec.schema
        if spec.kind == "table" and schema is not None and "geometry" in schema.names and "{" not in spec.name:
            return spec.name
    return None


def _days(dates: Dates) -> list[dt.date | None]:
    """``None`` (every day), one day, a ``START/END`` range (inclusive) or an iterable of days."""
    if dates is None:
        return [None]
    if isinstance(dates, dt.date):
        return [dates]
    if isinstance(dates, str):
        if "/" in dates:
            first, last = (parse_day(d.strip(), "dates") for d in dates.split("/", 1))
            if last < first:
                raise ConfigError(f"dates {dates!r}: the range ends before it starts")
            return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
        return [parse_day(dates, "dates")]
    return [d if isinstance(d, dt.date) else parse_day(str(d), "dates") for d in dates]


def _with_keys(frame: geopandas.GeoDataFrame, key: PartitionKey, shape: Sequence[str]) -> geopandas.GeoDataFrame:
    """The partition keys as the first columns (a key the table already holds keeps its values)."""
    fields = [f for f in _KEY_COLUMNS if f in shape]
    for field in fields:
        if field not in frame.columns:
            frame[field] = pd.Series([str(getattr(key, field))] * len(frame), index=frame.index, dtype="string")
    return frame[[*fields, *(c for c in frame.columns if c not in fields)]]


def read(lake_url: str, product: str, dates: Dates = None, *, bbox: Sequence[float] | None = None,
         columns: Sequence[str] | None = None) -> geopandas.GeoDataFrame:
    """The committed rows of a table product as one :class:`geopandas.GeoDataFrame`.

    Parameters
    ----------
    lake_url : str
        The lake: a folder or an ``s3://bucket/prefix`` URL (credentials and endpoint as for the
        jobs, docs/operations.md).
    product : str
        A table product (:func:`table_products`): ``segments_2m``, ``segments_classified``,
        ``freeboard``, ...
    dates : str, datetime.date, iterable or None
        One day ``YYYY-MM-DD``, a range ``YYYY-MM-DD/YYYY-MM-DD`` (inclusive), several days, or
        None for every day in the lake.
    bbox : (min_lon, min_lat, max_lon, max_lat), optional
        Keep the rows whose point lies inside (deg, inclusive).
    columns : sequence of str, optional
        Columns to keep besides the partition keys and the geometry (default: all).

    Returns
    -------
    geopandas.GeoDataFrame
        The partition keys as string columns first, then the table's columns, geometry in
        EPSG:4326; partitions in key order, rows in file order.

    Raises
    ------
    ConfigError
        An unusable lake, an unknown or non-table product, a bad day, a bbox that is not four
        numbers, a column the product does not have (one line each).
    """
    import geopandas

    spec = PRODUCTS.get(product)
    table = _geo_table(spec) if spec is not None else None
    if spec is None or table is None:
        raise ConfigError(f"product {product!r} is not a table product; known: {', '.join(table_products())}")
    schema = next(f.schema for f in spec.files if f.name == table)
    assert schema is not None
    if columns is not None:
        unknown = [c for c in columns if c not in schema.names]
        if unknown:
            raise ConfigError(f"{product} has no column(s) {unknown}; it has {schema.names}")
    box = None
    if bbox is not None:
        try:
            box = np.asarray(bbox, dtype=np.float64)
        except (TypeError, ValueError):
            box = np.full(0, np.nan)
        if box.shape != (4,) or not np.isfinite(box).all() or box[0] > box[2] or box[1] > box[3]:
            raise ConfigError(f"bbox must be (min_lon, min_lat, max_lon, max_lat), got {bbox!r}")
    lake: Lake = open_lake(lake_url, argument="lake_url")
    shape = spec.shape.fields
    keep = None if columns is None else [c for c in schema.names if c in columns or c == "geometry" or c in shape]
    frames = []
    for day in _days(dates):
        for key in lake.partitions(spec.name, day):
            frame = lake.read_geodataframe(key, table)
            if keep is not None:
                frame = frame[keep]
            if box is not None:
                x, y = frame.geometry.x.to_numpy(), frame.geometry.y.to_numpy()
                frame = frame[(x >= box[0]) & (x <= box[2]) & (y >= box[1]) & (y <= box[3])]
            frames.append(_with_keys(frame.reset_index(drop=True), key, shape))
    if not frames:
        empty = {f: pd.Series(dtype="string") for f in _KEY_COLUMNS if f in shape}
        return geopandas.GeoDataFrame(empty, geometry=geopandas.GeoSeries([], crs=CRS), crs=CRS)
    out = pd.concat(frames, ignore_index=True)
    return geopandas.GeoDataFrame(out, geometry="geometry", crs=CRS)
