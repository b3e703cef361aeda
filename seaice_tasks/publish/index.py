"""A STAC search without a server: every published item as one row of one GeoParquet file.

``<lake>/stac-items.parquet`` (:data:`INDEX_FILE`) holds one row per item of the catalog, in the
spirit of stac-geoparquet: ``id``, ``collection``, ``product``, ``date``, ``start_datetime`` /
``end_datetime`` (UTC), ``item`` (the item document, lake-root relative), ``assets`` (JSON: asset
name -> lake-root-relative path of its file), ``row_count`` (rows of the item's tables) and the
footprint ``geometry`` (EPSG:4326).  DuckDB, geopandas or pyarrow filter it by time and footprint
and open the assets' paths (docs/reading.md).

Each publish of a day replaces that day's rows of the products it published (:func:`update_index`)
and writes the file in one atomic step; rows are sorted by product, date and id, so a re-publish
writes the same bytes.  Two publishes of different days at the same moment may lose one of the
updates; the next publish of that day writes its rows again.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import posixpath
from collections.abc import Iterable, Mapping
from typing import Any, Final

import pandas as pd

from seaice_tasks.storage import Lake

__all__ = ["INDEX_FILE", "INDEX_COLUMNS", "item_rows", "update_index", "read_index"]

#: Lake-root-relative path of the index (beside ``catalog.json``, outside the item folders).
INDEX_FILE: Final[str] = "stac-items.parquet"
#: Columns of the index, in order (``geometry`` last).
INDEX_COLUMNS: Final[tuple[str, ...]] = (
    "id", "collection", "product", "date", "start_datetime", "end_datetime", "item", "assets", "row_count", "geometry",
)
CRS: Final[str] = "EPSG:4326"


def item_rows(product: str, day: dt.date, items: Mapping[str, bytes]) -> list[dict[str, Any]]:
    """Index rows of one product's items of one day (``items``: item path -> item document bytes)."""
    from shapely.geometry import shape

    rows = []
    for path, data in items.items():
        doc = json.loads(data)
        props = doc.get("properties", {})
        assets = {name: posixpath.normpath(posixpath.join(posixpath.dirname(path), asset["href"]))
                  for name, asset in sorted(doc.get("assets", {}).items())}
        counts = [a["table:row_count"] for a in doc.get("assets", {}).values() if "table:row_count" in a]
        rows.append({
            "id": doc["id"], "collection": doc.get("collection"), "product": product, "date": day.isoformat(),
            "start_datetime": pd.Timestamp(props.get("start_datetime")),
            "end_datetime": pd.Timestamp(props.get("end_datetime")),
            "item": path, "assets": json.dumps(assets, sort_keys=True),
            "row_count": int(sum(counts)) if counts else None,
            "geometry": shape(doc["geometry"]) if doc.get("geometry") else None,
        })
    return rows


def read_index(lake: Lake) -> Any:
    """The index as a GeoDataFrame (empty, with its columns, when the lake has none)."""
    import geopandas

    data = lake.read_document(INDEX_FILE)
    if data is None:
        empty = {c: pd.Series(dtype="object") for c in INDEX_COLUMNS if c != "geometry"}
        return geopandas.GeoDataFrame(empty, geometry=geopandas.GeoSeries([], crs=CRS), crs=CRS)
    return geopandas.read_parquet(io.BytesIO(data))


def _typed(frame: Any) -> Any:
    """``frame`` with the index's column types (the same types whatever rows it holds)."""
    out = frame[list(INDEX_COLUMNS)].copy()
    for column in INDEX_COLUMNS:
        if column in ("start_datetime", "end_datetime"):
            out[column] = pd.to_datetime(out[column], utc=True)
        elif column == "row_count":
            out[column] = out[column].astype("Int64")
        elif column != "geometry":
            out[column] = out[column].astype(object)
    return out


def update_index(lake: Lake, day: dt.date, published: Iterable[tuple[str, Mapping[str, bytes]]]) -> int:
    """Replace ``day``'s rows of the ``published`` products (name, items) and write the index; its row count."""
    import geopandas

    published = list(published)
    old = read_index(lake)
    names = {name for name, _ in published}
    keep = old[~((old["date"] == day.isoformat()) & old["product"].isin(names))]
    new = [row for name, items in published for row in item_rows(name, day, items)]
    frames = [_typed(f) for f in (keep, geopandas.GeoDataFrame(new, geometry="geometry", crs=CRS) if new else None)
              if f is not None and len(f)]
    if frames:
        out = geopandas.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs=CRS)
    else:
        out = _typed(old.iloc[0:0])
    out = out.sort_values(["product", "date", "id"], kind="stable").reset_index(drop=True)[list(INDEX_COLUMNS)]
    buffer = io.BytesIO()
    out.to_parquet(buffer, index=False, compression="zstd")
    lake.write_document(INDEX_FILE, buffer.getvalue())
    return len(out)
