"""STAC documents of the lake: an item per committed partition, collections and the root catalog.

An item is built from the partition's files as they are on storage: every file is read whole and
its size and sha256 are checked against the manifest before the item names it
(:func:`partition_item`; a file that differs raises :class:`FileMismatch`), so ``file:size`` and
``file:checksum`` always describe the bytes the asset ``href`` points at.  Footprints come from
the files' headers only: the GeoParquet ``bbox`` of tables and the bounds of rasters
(reprojected to longitude/latitude); a product without geometry (JSON, pictures) has a null
geometry.

Collections carry the extent of what they link: a day's collection the union of its items'
boxes and the day; a product's collection the union of its days' boxes (each ``child`` link
carries its day's box as ``seaice:bbox``, so a product's extent is computed without reading
every day) and the first to the last day it links.  Links and asset hrefs are relative: the
same tree reads from a folder, over HTTP or on S3.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any, ClassVar, Final

import pyarrow.parquet as pq

from seaice_tasks.config import JsonConfig
from seaice_tasks.errors import ConfigError, StorageError
from seaice_tasks.products import (
    DAILY_SUMMARY,
    FREEBOARD,
    S2_LABELS,
    S2_PAIRS,
    S2_UNET_LABELS,
    SEGMENTS_2M,
    SEGMENTS_CLASSIFIED,
    SEGMENTS_LABELLED,
    VALIDATION,
    VALIDATION_DAY,
    FileSpec,
    Product,
)
from seaice_tasks.storage import FileEntry, Lake, Manifest, PartitionKey

__all__ = [
    "CATALOG_FILE",
    "COLLECTION_FILE",
    "PUBLISHED",
    "STAC_DIR",
    "WORLD_BBOX",
    "FileMismatch",
    "PublishConfig",
    "collection_doc",
    "day_interval",
    "dumps",
    "item_id",
    "partition_item",
    "product_dir",
    "root_doc",
    "union",
]

#: Folder of the collections below the lake root, and the names of the STAC files.
STAC_DIR: Final[str] = "stac"
CATALOG_FILE: Final[str] = "catalog.json"
COLLECTION_FILE: Final[str] = "collection.json"
#: The products with a STAC collection (every dated output; not reports, incidents, models).
PUBLISHED: Final[tuple[Product, ...]] = (
    SEGMENTS_2M, S2_LABELS, S2_UNET_LABELS, S2_PAIRS, SEGMENTS_LABELLED, SEGMENTS_CLASSIFIED, FREEBOARD,
    VALIDATION, VALIDATION_DAY, DAILY_SUMMARY,
)
#: Media type and roles of an asset by the kind of its file.
MEDIA_TYPES: Final[dict[str, str]] = {
    "table": "application/vnd.apache.parquet",
    "raster": "image/tiff; application=geotiff; profile=cloud-optimized",
    "image": "image/png",
    "json": "application/json",
    "text": "text/markdown",
    "weights": "application/octet-stream",
}
ROLES: Final[dict[str, list[str]]] = {"table": ["data"], "raster": ["data"], "image": ["overview"],
                                       "json": ["metadata"], "text": ["metadata"], "weights": ["data"]}
STAC_VERSION: Final[str] = "1.1.0"
FILE_SCHEMA: Final[str] = "https://stac-extensions.github.io/file/v2.1.0/schema.json"
PROJECTION_SCHEMA: Final[str] = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
TABLE_SCHEMA: Final[str] = "https://stac-extensions.github.io/table/v1.2.0/schema.json"
PROCESSING_SCHEMA: Final[str] = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"
#: Multihash prefix of a sha256 digest (``file:checksum``).
SHA256_MULTIHASH: Final[str] = "1220"
#: The spatial extent of a collection whose items have no footprint (JSON, pictures).
WORLD_BBOX: Final[tuple[float, float, float, float]] = (-180.0, -90.0, 180.0, 90.0)
#: Field of a ``child`` link holding the child collection's box (degrees: west, south, east, north).
CHILD_BBOX_FIELD: Final[str] = "seaice:bbox"
#: Points per raster edge when its bounds are reprojected to longitude/latitude.
DENSIFY_POINTS: Final[int] = 21
#: Bytes read at a time when a committed file is checked against its manifest (1 MiB).
HASH_CHUNK_BYTES: Final[int] = 1 << 20


@dataclasses.dataclass(frozen=True)
class PublishConfig(JsonConfig):
    """Settings of the STAC catalog.

    Attributes
    ----------
    license : str
        SPDX identifier (or ``other``) of the published products; the inputs are NASA's public
        ICESat-2 data and Copernicus Sentinel-2 data (free, with attribution).
    title : str
        Title of the root catalog.
    max_info_bytes : int
        Largest manifest ``info`` (JSON bytes) copied into an item's ``seaice:info`` property;
        larger ones are left out (the manifest keeps them).
    """

    kind: ClassVar[str] = "publish"
    license: str = "CC-BY-4.0"
    title: str = "seaice: 2 m sea-ice classes, sea surface and freeboard from ICESat-2 and Sentinel-2"
    max_info_bytes: int = 20_000

    def __post_init__(self) -> None:
        if not self.license or not self.title or self.max_info_bytes < 0:
            raise ConfigError("PublishConfig: license and title must be set, max_info_bytes >= 0")


class FileMismatch(StorageError):
    """A committed file whose size or sha256 differs from what its manifest records."""


def item_id(key: PartitionKey) -> str:
    """The STAC item id of a partition: product and key values joined by ``-``.

    Examples
    --------
    >>> item_id(SEGMENTS_2M.key(date="2019-11-04", granule="20191104195311_05940510", beam="gt2r"))
    'segments_2m-2019-11-04-20191104195311_05940510-gt2r'
    """
    return "-".join([key.stage, *(key.value(f) for f in key.fields)])


def product_dir(product: Product) -> str:
    """Root-relative folder of a product's collection (``stac/<product>``)."""
    return posixpath.join(STAC_DIR, product.name)


def dumps(doc: Mapping[str, Any]) -> bytes:
    """Canonical JSON bytes of a STAC document."""
    return (json.dumps(doc, sort_keys=True, indent=1, allow_nan=False) + "\n").encode()


def rel(from_file: str, to_path: str) -> str:
    """Relative href from the folder of root-relative ``from_file`` to root-relative ``to_path``."""
    out = posixpath.relpath(to_path, posixpath.dirname(from_file) or ".")
    return out if out.startswith(".") else f"./{out}"


def union(boxes: Iterable[Sequence[float] | None]) -> list[float] | None:
    """The bounding box (degrees) of some boxes (None when there is none)."""
    real = [b for b in boxes if b]
    if not real:
        return None
    return [min(b[0] for b in real), min(b[1] for b in real), max(b[2] for b in real), max(b[3] for b in real)]


def day_interval(first: dt.date, last: dt.date) -> list[str]:
    """The temporal interval (UTC) from the start of ``first`` to the end of ``last``."""
    return [f"{first.isoformat()}T00:00:00Z", f"{(last + dt.timedelta(days=1)).isoformat()}T00:00:00Z"]


def _polygon(bbox: Sequence[float]) -> dict[str, Any]:
    """GeoJSON polygon of a bbox (counter-clockwise)."""
    w, s, e, n = bbox
    return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}


def _table_bbox(fh: IO[bytes]) -> list[float] | None:
    """The GeoParquet ``bbox`` of a table file's primary geometry, from its footer (None without one)."""
    meta = pq.ParquetFile(fh).schema_arrow.metadata or {}
    geo = json.loads(meta.get(b"geo", b"{}"))
    column = geo.get("columns", {}).get(geo.get("primary_column", ""), {})
    bbox = column.get("bbox")
    return [float(v) for v in bbox] if bbox else None


def _raster_fields(fh: IO[bytes]) -> tuple[list[float], dict[str, Any]]:
    """Longitude/latitude bbox of a raster file and its ``proj:`` asset fields."""
    import rasterio
    from rasterio.warp import transform_bounds

    with rasterio.open(fh) as src:
        bounds = transform_bounds(src.crs, "EPSG:4326", *src.bounds, densify_pts=DENSIFY_POINTS)
        epsg = src.crs.to_epsg()
        fields = {
            "proj:code": f"EPSG:{epsg}" if epsg else None,
            "proj:shape": [int(src.height), int(src.width)],
            "proj:transform": [float(v) for v in list(src.transform)[:6]],
            "proj:bbox": [float(v) for v in src.bounds],
        }
        if epsg is None:
            fields["proj:wkt2"] = src.crs.to_wkt()
    return [round(float(v), 7) for v in bounds], fields


def _checked_fields(lake: Lake, key: PartitionKey, manifest: Manifest, entry: FileEntry,
                    kind: str) -> tuple[list[float] | None, dict[str, Any]]:
    """Box and asset fields of one committed file, read after checking it against the manifest.

    Raises
    ------
    FileMismatch
        The file's size or sha256 differs from the manifest's.
    OSError
        The file is missing or unreadable (a version retired by a later commit: missing).
    """
    relpath = posixpath.join(key.relpath, manifest.file_relpath(entry.name))
    with lake.fs.open(lake.path(relpath), "rb") as fh:
        digest = hashlib.sha256()
        size = 0
        while chunk := fh.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
        if size != entry.bytes:
            raise FileMismatch(f"{lake.url(relpath)}: {size} bytes, the manifest records {entry.bytes}")
        if digest.hexdigest() != entry.sha256:
            raise FileMismatch(f"{lake.url(relpath)}: sha256 {digest.hexdigest()} differs from the manifest's "
                               f"{entry.sha256}")
        fh.seek(0)
        if kind == "table":
            return _table_bbox(fh), {}
        if kind == "raster":
            return _raster_fields(fh)
    return None, {}


def _columns(spec: FileSpec) -> list[dict[str, Any]]:
    """``table:columns`` of a table file: name, Arrow type, and the description/unit of its schema."""
    out = []
    for field in spec.schema or []:
        meta = {k.decode(): v.decode() for k, v in (field.metadata or {}).items()}
        col: dict[str, Any] = {"name": field.name, "type": str(field.type)}
        unit = f"unit {meta['unit']}" if meta.get("unit") else None
        text = "; ".join(v for v in (meta.get("description"), unit) if v)
        if text:
            col["description"] = text
        out.append(col)
    return out


def partition_item(lake: Lake, product: Product, key: PartitionKey, manifest: Manifest, item_path: str,
                   config: PublishConfig) -> dict[str, Any]:
    """The STAC item of one committed partition (root-relative ``item_path``), its files checked.

    Raises
    ------
    FileMismatch
        A file's size or sha256 differs from the manifest.
    StorageError
        The manifest names a file the product does not have.
    OSError, ValueError
        A file is missing (its version was retired meanwhile) or unreadable.
    """
    day = key.date
    assert day is not None, key
    boxes: list[list[float] | None] = []
    assets: dict[str, Any] = {}
    extensions = {FILE_SCHEMA, PROCESSING_SCHEMA}
    start, end = day_interval(day, day)
    properties: dict[str, Any] = {
        "datetime": None,
        "start_datetime": start,
        "end_datetime": end,
        "seaice:product": product.name,
        "seaice:partition": key.to_dict(),
        "seaice:config_hash": manifest.config_hash,
        "processing:software": {"seaice": manifest.code_version},
        "processing:lineage": product.description,
    }
    info = json.dumps(manifest.info, sort_keys=True, default=str)
    if len(info) <= config.max_info_bytes:
        properties["seaice:info"] = json.loads(info)
    for entry in manifest.files:
        spec = product.file(entry.name)
        box, fields = _checked_fields(lake, key, manifest, entry, spec.kind)
        asset: dict[str, Any] = {
            "href": rel(item_path, posixpath.join(key.relpath, manifest.file_relpath(entry.name))),
            "type": MEDIA_TYPES[spec.kind],
            "roles": ROLES[spec.kind],
            "title": spec.description,
            "file:size": entry.bytes,
            "file:checksum": SHA256_MULTIHASH + entry.sha256,
        }
        if spec.kind == "table":
            boxes.append(box)
            asset["table:row_count"] = entry.rows or 0
            properties.setdefault("table:columns", _columns(spec))
            extensions.add(TABLE_SCHEMA)
        elif spec.kind == "raster":
            boxes.append(box)
            asset.update({k: v for k, v in fields.items() if v is not None})
            extensions.add(PROJECTION_SCHEMA)
        assets[posixpath.splitext(entry.name)[0].replace("{", "").replace("}", "")] = asset
    bbox = union(boxes)
    return {
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": sorted(extensions),
        "id": item_id(key),
        "geometry": _polygon(bbox) if bbox else None,
        **({"bbox": bbox} if bbox else {}),
        "properties": properties,
        "links": [
            {"rel": "root", "href": rel(item_path, CATALOG_FILE), "type": "application/json"},
            {"rel": "parent", "href": "./" + COLLECTION_FILE, "type": "application/json"},
            {"rel": "collection", "href": "./" + COLLECTION_FILE, "type": "application/json"},
        ],
        "assets": assets,
        "collection": f"{product.name}-{day.isoformat()}",
    }


def collection_doc(coll_id: str, title: str, description: str, path: str, bbox: Sequence[float] | None,
                   interval: Sequence[str], children: Mapping[str, Sequence[float] | None], items: Sequence[str],
                   parent: str, config: PublishConfig) -> dict[str, Any]:
    """A STAC collection at root-relative ``path`` linking its children (path: box) and items.

    ``bbox`` None (nothing held has a footprint) gives the whole world as the spatial extent.
    """
    links = [{"rel": "root", "href": rel(path, CATALOG_FILE), "type": "application/json"},
             {"rel": "parent", "href": rel(path, parent), "type": "application/json"}]
    for child, box in sorted(children.items()):
        link: dict[str, Any] = {"rel": "child", "href": rel(path, child), "type": "application/json"}
        if box:
            link[CHILD_BBOX_FIELD] = list(box)
        links.append(link)
    links += [{"rel": "item", "href": rel(path, i), "type": "application/geo+json"} for i in items]
    return {
        "type": "Collection",
        "stac_version": STAC_VERSION,
        "stac_extensions": [],
        "id": coll_id,
        "title": title,
        "description": description,
        "license": config.license,
        "extent": {"spatial": {"bbox": [list(bbox or WORLD_BBOX)]}, "temporal": {"interval": [list(interval)]}},
        "links": links,
    }


def root_doc(children: Sequence[str], config: PublishConfig) -> dict[str, Any]:
    """The root catalog linking the product collections ``children`` (root-relative paths)."""
    return {
        "type": "Catalog",
        "stac_version": STAC_VERSION,
        "stac_extensions": [],
        "id": "seaice",
        "title": config.title,
        "description": "Products of the seaice pipeline: 2 m ICESat-2 segments, Sentinel-2 labels, colocated "
                       "and classified segments, sea surface and freeboard, validation against ATL07/ATL10, "
                       "daily summaries.",
        "links": [{"rel": "root", "href": "./" + CATALOG_FILE, "type": "application/json"}]
        + [{"rel": "child", "href": "./" + c, "type": "application/json", "title": c.split("/")[1]}
           for c in children],
    }
