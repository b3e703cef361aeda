"""The publish stage: the daily summary and a static STAC catalog of the lake's products.

:func:`publish_day` is the daily DAG's ``publish`` task (and ``seaice publish --date D``):

1. commits ``daily_summary/date=D`` (:func:`day_summary`: inputs, partitions, skips and failures,
   class fractions, freeboard statistics, validation figures; JSON and Markdown);
2. writes one STAC item per committed partition of the day of every published product
   (:data:`PUBLISHED`) into ``stac/<product>/<date>/``, the day's sub-collection beside them,
   then the product's collection ``stac/<product>/collection.json`` and the root
   ``catalog.json``; items of the day that no longer have a partition are removed last.

Everything is written whole, in one atomic step per file (:meth:`Lake.write_document`), and in
link order (an item before the collection that links it), so a reader never follows a link to a
missing file.  Links and asset hrefs are relative: the same tree reads from a folder, over HTTP
or on S3.  Nothing depends on the wall clock: publishing a day twice gives the same bytes.

Items carry the ``file`` (size, sha256 multihash), ``projection`` (rasters: EPSG code, grid
shape, transform, bbox), ``table`` (tables: columns with type and unit, row count) and
``processing`` (software and version) extensions.  Footprints come from file headers only: the
GeoParquet ``bbox`` of the table files and the bounds of the rasters (reprojected to
longitude/latitude); a product without geometry (JSON, pictures) has a null geometry.

The product collections keep their extent as the union of every day published (a re-run that
shrinks a day leaves the extent as large as before), so publishing one day reads one file per
product, never the whole history.  Two publishes of different days must not run at once
(the DAG's ``publish`` task allows one at a time): the collection update is read-modify-write.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, Final

import numpy as np
import pyarrow.parquet as pq

from seaice_tasks.config import JsonConfig, parse_day
from seaice_tasks.errors import ConfigError, StorageError
from seaice_tasks.outputs import BytesOutput, write_partition
from seaice_tasks.products import (
    CLASSIFY_REPORT,
    COLOCATE_REPORT,
    DAILY_SUMMARY,
    FREEBOARD,
    FREEBOARD_FILE,
    FREEBOARD_REPORT,
    INVENTORY,
    RESAMPLE_REPORT,
    S2_LABELS,
    S2_LABELS_REPORT,
    S2_PAIRS,
    S2_UNET_LABELS,
    SEGMENTS_2M,
    SEGMENTS_CLASSIFIED,
    SEGMENTS_LABELLED,
    SUMMARY_FILE,
    SUMMARY_MD_FILE,
    VALIDATE_REPORT,
    VALIDATION,
    VALIDATION_DAY,
    VALIDATION_FILE,
    FileSpec,
    Product,
)
from seaice_tasks.storage import Lake, Manifest, PartitionKey, code_version, lake_from_env

__all__ = [
    "CATALOG_FILE",
    "COLLECTION_FILE",
    "PUBLISHED",
    "STAC_DIR",
    "PublishConfig",
    "day_summary",
    "item_id",
    "publish_day",
    "summary_markdown",
    "write_timings",
]

log = logging.getLogger(__name__)

#: Folder of the collections below the lake root, and the names of the STAC files.
STAC_DIR: Final[str] = "stac"
CATALOG_FILE: Final[str] = "catalog.json"
COLLECTION_FILE: Final[str] = "collection.json"
#: The products with a STAC collection (every dated output; not reports, incidents, models).
PUBLISHED: Final[tuple[Product, ...]] = (
    SEGMENTS_2M, S2_LABELS, S2_UNET_LABELS, S2_PAIRS, SEGMENTS_LABELLED, SEGMENTS_CLASSIFIED, FREEBOARD,
    VALIDATION, VALIDATION_DAY, DAILY_SUMMARY,
)
#: Job reports the summary reads skips and failures from, by stage.
STAGE_REPORTS: Final[dict[str, Product]] = {
    "resample_2m": RESAMPLE_REPORT, "s2_labels": S2_LABELS_REPORT, "colocate": COLOCATE_REPORT,
    "classify": CLASSIFY_REPORT, "freeboard": FREEBOARD_REPORT, "validate": VALIDATE_REPORT,
}
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
#: The extent of a collection before anything with a footprint is published.
WORLD_BBOX: Final[tuple[float, float, float, float]] = (-180.0, -90.0, 180.0, 90.0)
#: Percentiles of the freeboard statistics (%).
FREEBOARD_PERCENTILES: Final[tuple[int, int]] = (10, 90)
#: Points per raster edge when its bounds are reprojected to longitude/latitude.
DENSIFY_POINTS: Final[int] = 21
#: Classes of the classified segments in the summary, by their count key in the classify report.
CLASS_NAMES: Final[tuple[str, ...]] = ("thick", "thin", "water")


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


def item_id(key: PartitionKey) -> str:
    """The STAC item id of a partition: product and key values joined by ``-``.

    Examples
    --------
    >>> item_id(SEGMENTS_2M.key(date="2019-11-04", granule="20191104195311_05940510", beam="gt2r"))
    'segments_2m-2019-11-04-20191104195311_05940510-gt2r'
    """
    return "-".join([key.stage, *(key.value(f) for f in key.fields)])


def _dumps(doc: Mapping[str, Any]) -> bytes:
    """Canonical JSON bytes of a STAC document."""
    return (json.dumps(doc, sort_keys=True, indent=1, allow_nan=False) + "\n").encode()


def _rel(from_file: str, to_path: str) -> str:
    """Relative href from the folder of root-relative ``from_file`` to root-relative ``to_path``."""
    rel = posixpath.relpath(to_path, posixpath.dirname(from_file) or ".")
    return rel if rel.startswith(".") else f"./{rel}"


def _union(boxes: Iterable[Sequence[float] | None]) -> list[float] | None:
    """The bounding box of some boxes (None when there is none)."""
    real = [b for b in boxes if b]
    if not real:
        return None
    return [min(b[0] for b in real), min(b[1] for b in real), max(b[2] for b in real), max(b[3] for b in real)]


def _polygon(bbox: Sequence[float]) -> dict[str, Any]:
    """GeoJSON polygon of a bbox (counter-clockwise)."""
    w, s, e, n = bbox
    return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}


def _open(lake: Lake, key: PartitionKey, manifest: Manifest, name: str) -> Any:
    """A binary file object of one committed file (reads only what is asked for: headers)."""
    return lake.fs.open(lake.path(key.relpath, manifest.file_relpath(name)), "rb")


def _table_bbox(lake: Lake, key: PartitionKey, manifest: Manifest, name: str) -> list[float] | None:
    """The GeoParquet ``bbox`` of a table file's primary geometry, from its footer (None without one)."""
    with _open(lake, key, manifest, name) as fh:
        meta = pq.ParquetFile(fh).schema_arrow.metadata or {}
    geo = json.loads(meta.get(b"geo", b"{}"))
    column = geo.get("columns", {}).get(geo.get("primary_column", ""), {})
    bbox = column.get("bbox")
    return [float(v) for v in bbox] if bbox else None


def _raster_fields(lake: Lake, key: PartitionKey, manifest: Manifest, name: str) -> tuple[list[float], dict[str, Any]]:
    """Longitude/latitude bbox of a raster file and its ``proj:`` asset fields."""
    import rasterio
    from rasterio.warp import transform_bounds

    with _open(lake, key, manifest, name) as fh, rasterio.open(fh) as src:
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


def _item(lake: Lake, product: Product, key: PartitionKey, manifest: Manifest, item_path: str,
          config: PublishConfig) -> dict[str, Any]:
    """The STAC item of one committed partition (root-relative ``item_path``)."""
    day = key.date
    assert day is not None, key
    boxes: list[list[float] | None] = []
    assets: dict[str, Any] = {}
    extensions = {FILE_SCHEMA, PROCESSING_SCHEMA}
    properties: dict[str, Any] = {
        "datetime": None,
        "start_datetime": f"{day.isoformat()}T00:00:00Z",
        "end_datetime": f"{(day + dt.timedelta(days=1)).isoformat()}T00:00:00Z",
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
        asset: dict[str, Any] = {
            "href": _rel(item_path, posixpath.join(key.relpath, manifest.file_relpath(entry.name))),
            "type": MEDIA_TYPES[spec.kind],
            "roles": ROLES[spec.kind],
            "title": spec.description,
            "file:size": entry.bytes,
            "file:checksum": SHA256_MULTIHASH + entry.sha256,
        }
        if spec.kind == "table":
            boxes.append(_table_bbox(lake, key, manifest, entry.name))
            asset["table:row_count"] = entry.rows or 0
            properties.setdefault("table:columns", _columns(spec))
            extensions.add(TABLE_SCHEMA)
        elif spec.kind == "raster":
            raster_box, proj = _raster_fields(lake, key, manifest, entry.name)
            boxes.append(raster_box)
            asset.update({k: v for k, v in proj.items() if v is not None})
            extensions.add(PROJECTION_SCHEMA)
        assets[posixpath.splitext(entry.name)[0].replace("{", "").replace("}", "")] = asset
    bbox = _union(boxes)
    return {
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": sorted(extensions),
        "id": item_id(key),
        "geometry": _polygon(bbox) if bbox else None,
        **({"bbox": bbox} if bbox else {}),
        "properties": properties,
        "links": [
            {"rel": "root", "href": _rel(item_path, CATALOG_FILE), "type": "application/json"},
            {"rel": "parent", "href": "./" + COLLECTION_FILE, "type": "application/json"},
            {"rel": "collection", "href": "./" + COLLECTION_FILE, "type": "application/json"},
        ],
        "assets": assets,
        "collection": f"{product.name}-{day.isoformat()}",
    }


def _collection(coll_id: str, title: str, description: str, path: str, bbox: Sequence[float] | None,
                interval: Sequence[str | None], children: Sequence[str], items: Sequence[str], parent: str,
                config: PublishConfig) -> dict[str, Any]:
    """A STAC collection document at root-relative ``path`` linking its children and items."""
    links = [{"rel": "root", "href": _rel(path, CATALOG_FILE), "type": "application/json"},
             {"rel": "parent", "href": _rel(path, parent), "type": "application/json"}]
    links += [{"rel": "child", "href": _rel(path, c), "type": "application/json"} for c in children]
    links += [{"rel": "item", "href": _rel(path, i), "type": "application/geo+json"} for i in items]
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


def _product_dir(product: Product) -> str:
    return posixpath.join(STAC_DIR, product.name)


def _publish_product(lake: Lake, product: Product, day: dt.date, config: PublishConfig) -> int:
    """Items and the day's sub-collection of one product, then its collection; the number of items."""
    day_dir = posixpath.join(_product_dir(product), day.isoformat())
    day_path = posixpath.join(day_dir, COLLECTION_FILE)
    product_path = posixpath.join(_product_dir(product), COLLECTION_FILE)
    keys = lake.partitions(product.name, day)
    written: list[str] = []
    boxes: list[Sequence[float] | None] = []
    for key in keys:
        manifest = lake.manifest(key)
        if manifest is None:  # removed since the listing
            continue
        path = posixpath.join(day_dir, f"{item_id(key)}.json")
        item = _item(lake, product, key, manifest, path, config)
        lake.write_document(path, _dumps(item))
        written.append(path)
        boxes.append(item.get("bbox"))
    stale = [p for p in lake.list_documents(day_dir) if p not in written and p != day_path]
    interval = [f"{day.isoformat()}T00:00:00Z", f"{(day + dt.timedelta(days=1)).isoformat()}T00:00:00Z"]
    if written:
        lake.write_document(day_path, _dumps(_collection(
            f"{product.name}-{day.isoformat()}", f"{product.name} {day.isoformat()}", product.description, day_path,
            _union(boxes), interval, [], written, product_path, config)))
    else:
        lake.delete_document(day_path)
    previous = lake.read_document(product_path)
    old = json.loads(previous) if previous else None
    children = {posixpath.normpath(posixpath.join(_product_dir(product), link["href"]))
                for link in (old or {}).get("links", []) if link.get("rel") == "child"}
    children.discard(day_path)
    if written:
        children.add(day_path)
    if old is not None:
        old_box = old["extent"]["spatial"]["bbox"][0]
        had_box = list(old_box) != list(WORLD_BBOX)
        bbox = _union([old_box if had_box else None, *boxes])
        lo, hi = old["extent"]["temporal"]["interval"][0]
        interval = [min(lo, interval[0]) if lo else interval[0], max(hi, interval[1]) if hi else interval[1]]
    else:
        bbox = _union(boxes)
    if children:
        lake.write_document(product_path, _dumps(_collection(
            product.name, product.name, product.description, product_path, bbox, interval, sorted(children), [],
            CATALOG_FILE, config)))
    else:
        lake.delete_document(product_path)
    for path in stale:  # no longer linked: now they may go
        lake.delete_document(path)
    return len(written)


def _write_root(lake: Lake, config: PublishConfig) -> None:
    """The root catalog linking every product collection that exists."""
    children = [posixpath.join(_product_dir(p), COLLECTION_FILE) for p in PUBLISHED]
    present = [c for c in children if lake.read_document(c) is not None]
    doc = {
        "type": "Catalog",
        "stac_version": STAC_VERSION,
        "stac_extensions": [],
        "id": "seaice",
        "title": config.title,
        "description": "Products of the seaice pipeline: 2 m ICESat-2 segments, Sentinel-2 labels, colocated "
                       "and classified segments, sea surface and freeboard, validation against ATL07/ATL10, "
                       "daily summaries.",
        "links": [{"rel": "root", "href": "./" + CATALOG_FILE, "type": "application/json"}]
        + [{"rel": "child", "href": "./" + c, "type": "application/json", "title": c.split("/")[1]} for c in present],
    }
    lake.write_document(CATALOG_FILE, _dumps(doc))


# -- the daily summary ---------------------------------------------------------------------------------


def _report_doc(lake: Lake, product: Product, day: dt.date) -> dict[str, Any] | None:
    """The manifest info of a job's day report (None when the job did not report the day)."""
    manifest = lake.manifest(product.key(date=day))
    return dict(manifest.info) if manifest is not None else None


def _freeboard_stats(lake: Lake, day: dt.date) -> dict[str, Any]:
    """Count, mean, median, std and percentiles (m) of the finite freeboards of the day's tracks."""
    values = [lake.read_table(k, FREEBOARD_FILE).column("freeboard_m").to_numpy(zero_copy_only=False)
              for k in lake.partitions(FREEBOARD.name, day)]
    fb = np.concatenate(values).astype(np.float64) if values else np.zeros(0)
    fb = fb[np.isfinite(fb)]
    if fb.size == 0:
        return {"segments": 0}
    lo, hi = np.percentile(fb, FREEBOARD_PERCENTILES)
    return {"segments": int(fb.size), "mean_m": round(float(fb.mean()), 4), "median_m": round(float(np.median(fb)), 4),
            "std_m": round(float(fb.std()), 4), f"p{FREEBOARD_PERCENTILES[0]}_m": round(float(lo), 4),
            f"p{FREEBOARD_PERCENTILES[1]}_m": round(float(hi), 4)}


def day_summary(lake: Lake, day: dt.date) -> dict[str, Any]:
    """The day's summary from its manifests, reports and freeboard tables (JSON-ready, deterministic).

    Returns
    -------
    dict
        ``date``; ``inputs`` (inventory counts per kind); ``products`` ({product: {"partitions",
        "rows"}} of the published products); ``stages`` ({stage: {"reported", "skipped",
        "failed"}}); ``classes`` (counts and fractions of thick ice, thin ice, open water among
        the classified segments, or None without a classification); ``freeboard``
        (:func:`_freeboard_stats`); ``validation`` (the pooled figures of ``validation_day``
        without histograms, or None).
    """
    inventory = lake.manifest(INVENTORY.key(date=day))
    products = {}
    for product in PUBLISHED:
        if product is DAILY_SUMMARY:
            continue
        keys = lake.partitions(product.name, day)
        manifests = [m for m in (lake.manifest(k) for k in keys) if m is not None]
        products[product.name] = {"partitions": len(manifests), "rows": sum(m.rows for m in manifests)}
    stages = {}
    for stage, report in STAGE_REPORTS.items():
        doc = _report_doc(lake, report, day)
        stages[stage] = {"reported": doc is not None, "skipped": len((doc or {}).get("skipped", [])),
                         "failed": len((doc or {}).get("failed", []))}
    classes = None
    if stages["classify"]["reported"]:
        counts = {c: 0 for c in CLASS_NAMES}
        for key in lake.partitions(SEGMENTS_CLASSIFIED.name, day):
            manifest = lake.manifest(key)
            for name, n in ((manifest.info if manifest else {}).get("class_counts") or {}).items():
                if name in counts:
                    counts[name] += int(n)
        total = sum(counts.values())
        classes = {"counts": counts,
                   "fractions": {c: round(n / total, 4) for c, n in counts.items()} if total else None}
    validation = None
    day_key = VALIDATION_DAY.key(date=day)
    if lake.manifest(day_key) is not None:
        pooled = json.loads(lake.open_file(day_key, VALIDATION_FILE)).get("pooled", {})
        validation = {k: v for k, v in pooled.items() if k != "histograms"}
    return {
        "date": day.isoformat(),
        "inputs": dict(sorted(((inventory.info.get("counts") or {}) if inventory else {}).items())),
        "products": products,
        "stages": stages,
        "classes": classes,
        "freeboard": _freeboard_stats(lake, day),
        "validation": validation,
        "code_version": code_version(),
    }


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {_fmt(v)}" for k, v in value.items())
    return str(value)


def summary_markdown(summary: Mapping[str, Any]) -> str:
    """The daily summary as a Markdown page."""
    lines = [f"# seaice daily summary {summary['date']}", "",
             f"Stage timings of the latest run: `{TIMINGS_DIR}/{summary['date']}.md` at the lake root.", "",
             "Inputs: " + (", ".join(f"{k} {v}" for k, v in summary["inputs"].items()) or "none"), "",
             "| product | partitions | rows |", "|---|---:|---:|"]
    lines += [f"| `{name}` | {p['partitions']} | {p['rows']} |" for name, p in summary["products"].items()]
    lines += ["", "| stage | reported | skipped | failed |", "|---|---|---:|---:|"]
    lines += [f"| {name} | {'yes' if s['reported'] else 'no'} | {s['skipped']} | {s['failed']} |"
              for name, s in summary["stages"].items()]
    classes = summary.get("classes")
    lines += ["", "Classes of the 2 m segments: "
              + (_fmt(classes["fractions"]) + f" (of {sum(classes['counts'].values())} segments)"
                 if classes and classes.get("fractions") else "not classified (no promoted model)")]
    fb = summary["freeboard"]
    lines += ["", "Freeboard (m): " + (", ".join(f"{k.removesuffix('_m')} {_fmt(v)}" for k, v in fb.items())
                                       if fb.get("segments") else "none")]
    validation = summary.get("validation")
    if validation:
        lines += ["", "Validation against ATL07/ATL10 (pooled over the day's tracks):", ""]
        lines += [f"- {k}: {_fmt(v)}" for k, v in validation.items() if k != "flagged"]
    return "\n".join(lines) + "\n"


#: Folder of the per-run stage timings (lake documents, not partitions: a re-run's timings differ,
#: and the daily summary must stay byte-identical across re-runs).
TIMINGS_DIR: Final[str] = "run_timings"


def timings_markdown(day: dt.date, timings: Mapping[str, float | None]) -> str:
    """The stage timings of a run as a Markdown table (seconds; ``-`` for a task that did not run)."""
    lines = [f"# seaice run timings {day.isoformat()}", "", "| task | wall clock (s) |", "|---|---:|"]
    lines += [f"| {task} | {'-' if sec is None else f'{sec:.1f}'} |" for task, sec in timings.items()]
    ran = [v for v in timings.values() if v is not None]
    lines += ["", f"Sum of the task times: {sum(ran):.1f} s (tasks in parallel overlap)."]
    return "\n".join(lines) + "\n"


def write_timings(lake: Lake, day: dt.date, timings: Mapping[str, float | None]) -> str:
    """Write ``run_timings/<day>.json`` and ``.md`` (atomically, replacing an earlier run's); the JSON's path."""
    doc = {"date": day.isoformat(), "unit": "s", "tasks": dict(timings)}
    relpath = f"{TIMINGS_DIR}/{day.isoformat()}.json"
    lake.write_document(relpath, json.dumps(doc, sort_keys=True, indent=1).encode())
    lake.write_document(f"{TIMINGS_DIR}/{day.isoformat()}.md", timings_markdown(day, timings).encode())
    return relpath


def publish_day(day: str | dt.date, *, lake: Lake | str | None = None,
                config: PublishConfig | Mapping[str, Any] | None = None,
                timings: Mapping[str, float | None] | None = None) -> dict[str, Any]:
    """Commit the day's summary and publish the day's partitions to the STAC catalog.

    Parameters
    ----------
    day : str or datetime.date
        UTC day (``YYYY-MM-DD``).
    lake : Lake or str, optional
        The lake (default ``$SEAICE_LAKE``).
    config : PublishConfig or dict, optional
    timings : mapping, optional
        Wall-clock seconds of each task of the run (the DAG passes Airflow's); written beside the
        summary as ``run_timings/<day>.json`` and ``.md``, outside the versioned partition.

    Returns
    -------
    dict
        JSON-ready: ``date``, ``catalog`` (URL of the root catalog), ``items`` ({product:
        items of the day}), ``summary`` (the daily summary), ``timings`` (URL of the timings, or
        None).

    Raises
    ------
    SeaIceError
        When the config is unusable or the lake cannot be written.
    """
    cfg = config if isinstance(config, PublishConfig) else PublishConfig.from_dict(dict(config or {}))
    the_day = parse_day(day) if isinstance(day, str) else day
    store = lake if isinstance(lake, Lake) else lake_from_env(lake)
    summary = day_summary(store, the_day)
    write_partition(store, DAILY_SUMMARY.key(date=the_day), [
        BytesOutput(DAILY_SUMMARY.key(date=the_day), SUMMARY_FILE,
                    json.dumps(summary, sort_keys=True, indent=1).encode()),
        BytesOutput(DAILY_SUMMARY.key(date=the_day), SUMMARY_MD_FILE, summary_markdown(summary).encode()),
    ], cfg, {"products": {k: v["partitions"] for k, v in summary["products"].items()}})
    items = {}
    for product in PUBLISHED:
        try:
            items[product.name] = _publish_product(store, product, the_day, cfg)
        except (OSError, ValueError) as exc:
            raise StorageError(f"publish {product.name} {the_day}: {type(exc).__name__}: {exc}") from exc
    _write_root(store, cfg)
    timings_url = store.url(write_timings(store, the_day, timings)) if timings is not None else None
    log.info("publish %s: %s items; catalog %s", the_day, sum(items.values()), store.url(CATALOG_FILE))
    return {"date": the_day.isoformat(), "catalog": store.url(CATALOG_FILE), "items": items, "summary": summary,
            "timings": timings_url}
