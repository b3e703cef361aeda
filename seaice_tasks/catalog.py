"""Discovery of one day's raw inputs in a catalog folder (local path or URL).

A catalog is any folder tree holding ICESat-2 granules named as NSIDC names them
(``ATL03_YYYYMMDDhhmmss_RRRRCCSS_VVV_rr.h5``, with or without the subsetter's ``processed_``
prefix) and Sentinel-2 scenes, either as a folder named after the scene (SAFE name, GEE id or
``YYYYMMDDThhmmss_Txxxxx``) holding per-band rasters, or as one multi-band raster so named.
Files whose names do not parse are skipped and the skip is recorded with its reason.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import posixpath
import re
from collections.abc import Mapping
from typing import Any, Final

import fsspec
import pandas as pd
import pyarrow as pa

from seaice_tasks.config import DiscoverConfig, parse_day
from seaice_tasks.constants import S2_BANDS
from seaice_tasks.discovery import credentials_from_env, fetch_inputs, providers_for, search_all
from seaice_tasks.errors import ConfigError, GranuleNameError
from seaice_tasks.granule import S2SceneId, parse_granule, parse_s2_scene
from seaice_tasks.outputs import TableOutput, write_partition
from seaice_tasks.products import INVENTORY, INVENTORY_FILE
from seaice_tasks.storage import InputStore, Lake, Manifest, inputs_from_env, lake_from_env

__all__ = ["CatalogItem", "Skip", "scan_catalog", "discover_day", "write_inventory", "run_discover"]

log = logging.getLogger(__name__)

_H5_SUFFIXES: Final[tuple[str, ...]] = (".h5", ".hdf5", ".he5")
_RASTER_SUFFIXES: Final[tuple[str, ...]] = (".tif", ".tiff", ".jp2")
_DEFAULT_DISCOVER: Final[DiscoverConfig] = DiscoverConfig()
_BAND_RE = re.compile(r"(?<![0-9A-Za-z])(B0[2348])(?![0-9])")


@dataclasses.dataclass(frozen=True)
class CatalogItem:
    """One raw input: an ICESat-2 granule file or a Sentinel-2 scene."""

    kind: str  #: ATL03, ATL07, ATL10 or S2
    uri: str
    item: str  #: granule key or S2 scene key
    start_utc: dt.datetime
    size_bytes: int
    rgt: int | None = None
    cycle: int | None = None
    region: int | None = None
    release: int | None = None
    tile: str | None = None

    @property
    def date(self) -> dt.date:
        """UTC day of the acquisition."""
        return self.start_utc.date()


@dataclasses.dataclass(frozen=True)
class Skip:
    """A catalog entry that was not used, and why."""

    uri: str
    reason: str


def _url(protocol: str, path: str) -> str:
    return path if protocol == "file" else f"{protocol}://{path}"


def scan_catalog(
    catalog: str | os.PathLike[str], storage_options: Mapping[str, Any] | None = None
) -> tuple[list[CatalogItem], list[Skip]]:
    """List every granule and scene of a catalog.

    Parameters
    ----------
    catalog : str or os.PathLike
        Folder or URL (``s3://bucket/raw``).
    storage_options : dict, optional
        fsspec options for URLs.

    Returns
    -------
    items : list of CatalogItem
        Sorted by (start, kind, item).
    skips : list of Skip
        Entries that look like inputs but could not be used.
    """
    text = os.fspath(catalog)
    protocol = text.split("://", 1)[0] if "://" in text else "file"
    fs = fsspec.filesystem(protocol, **dict(storage_options or {}))
    root = text.split("://", 1)[1] if "://" in text else os.path.abspath(text)
    if not fs.exists(root):
        raise FileNotFoundError(f"{text}: catalog folder does not exist")
    if not fs.isdir(root):
        raise ConfigError(f"{text}: the catalog is a file, not a folder")
    items: list[CatalogItem] = []
    skips: list[Skip] = []
    details = fs.find(root, detail=True)
    s2_folders: dict[str, dict[str, int]] = {}
    for path, info in sorted(details.items()):
        name = posixpath.basename(path)
        lower = name.lower()
        size = int(info.get("size") or 0)
        if lower.endswith(_H5_SUFFIXES):
            try:
                gid = parse_granule(name)
            except GranuleNameError as exc:
                skips.append(Skip(_url(protocol, path), str(exc)))
                continue
            items.append(
                CatalogItem(
                    kind=gid.product,
                    uri=_url(protocol, path),
                    item=gid.granule,
                    start_utc=gid.start,
                    size_bytes=size,
                    rgt=gid.rgt,
                    cycle=gid.cycle,
                    region=gid.region,
                    release=gid.release,
                )
            )
        elif lower.endswith(_RASTER_SUFFIXES):
            parent = posixpath.dirname(path)
            band = _BAND_RE.search(name)
            if band is not None and _scene_or_none(posixpath.basename(parent)) is not None:
                s2_folders.setdefault(parent, {})[band.group(1)] = size
                continue
            scene = _scene_or_none(name)
            if scene is not None:
                items.append(
                    CatalogItem(kind="S2", uri=_url(protocol, path), item=scene.scene,
                                start_utc=scene.sensing, size_bytes=size, tile=scene.tile)
                )
    for folder, bands in sorted(s2_folders.items()):
        scene = _scene_or_none(posixpath.basename(folder))
        assert scene is not None
        missing = [b for b in S2_BANDS if b not in bands]
        if missing:
            skips.append(Skip(_url(protocol, folder), f"Sentinel-2 scene folder lacks band(s) {missing}"))
            continue
        items.append(
            CatalogItem(kind="S2", uri=_url(protocol, folder), item=scene.scene, start_utc=scene.sensing,
                        size_bytes=sum(bands.values()), tile=scene.tile)
        )
    items.sort(key=lambda c: (c.start_utc, c.kind, c.item, c.uri))
    for skip in skips:
        log.warning("catalog: skipped %s: %s", skip.uri, skip.reason)
    return items, skips


def _scene_or_none(name: str) -> S2SceneId | None:
    try:
        return parse_s2_scene(name)
    except GranuleNameError:
        return None


def discover_day(
    catalog: str | os.PathLike[str],
    day: dt.date,
    config: DiscoverConfig = _DEFAULT_DISCOVER,
    storage_options: Mapping[str, Any] | None = None,
) -> tuple[list[CatalogItem], list[Skip]]:
    """Inputs of one UTC day (ICESat-2 products in ``config.products`` and all S2 scenes)."""
    items, skips = scan_catalog(catalog, storage_options)
    wanted = set(config.products) | {"S2"}
    return [c for c in items if c.date == day and c.kind in wanted], skips


def inventory_table(items: list[CatalogItem]) -> pa.Table:
    """The inventory of a day as an Arrow table in the schema of :data:`~seaice_tasks.products.INVENTORY`."""
    frame = pd.DataFrame(
        {
            "kind": [c.kind for c in items],
            "uri": [c.uri for c in items],
            "item": [c.item for c in items],
            "start_utc": pd.to_datetime([c.start_utc for c in items], utc=True),
            "rgt": pd.array([c.rgt for c in items], dtype="Int16"),
            "cycle": pd.array([c.cycle for c in items], dtype="Int16"),
            "region": pd.array([c.region for c in items], dtype="Int8"),
            "release": pd.array([c.release for c in items], dtype="Int16"),
            "tile": [c.tile for c in items],
            "size_bytes": [c.size_bytes for c in items],
        }
    )
    return pa.Table.from_pandas(frame, schema=INVENTORY.schema, preserve_index=False)


def write_inventory(
    lake: Lake,
    day: dt.date,
    items: list[CatalogItem],
    skips: list[Skip],
    config: DiscoverConfig,
    catalog: str = "",
) -> Manifest:
    """Commit the day's inventory partition (``inventory/date=YYYY-MM-DD``)."""
    key = INVENTORY.key(date=day)
    info = {"catalog": catalog, "counts": _counts(items), "skipped": [dataclasses.asdict(s) for s in skips]}
    return write_partition(lake, key, [TableOutput(key, INVENTORY_FILE, inventory_table(items))], config, info)


def _counts(items: list[CatalogItem]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for c in items:
        counts[c.kind] = counts.get(c.kind, 0) + 1
    return dict(sorted(counts.items()))


def _fetch_from_providers(day: dt.date, cfg: DiscoverConfig, store: InputStore) -> list[Skip]:
    """Search the network providers ``cfg`` names and download what they find into the catalog.

    Returns the inputs that could not be fetched, as skips of the inventory.  A failed search
    raises :class:`~seaice_tasks.discovery.DiscoveryError` (nothing is committed).
    """
    credentials = credentials_from_env()
    providers = providers_for(cfg, credentials)
    if not providers:
        return []
    found = search_all(providers, day)
    result = fetch_inputs(found, store, config=cfg, credentials=credentials)
    log.info("fetched %d input(s) of %s, %d already in the catalog, %d failed", len(result.fetched), day,
             len(result.present), len(result.failed))
    return [Skip(uri, reason) for uri, reason in result.failed]


def run_discover(
    day: str | dt.date,
    *,
    catalog: str | None = None,
    lake: str | None = None,
    config: DiscoverConfig | Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Discover a day's inputs and commit the inventory; the Airflow task's whole body.

    With ``is2_source="cmr"`` or ``s2_source="stac"`` the day's granules / scenes are first
    searched for and downloaded into the catalog (:mod:`seaice_tasks.discovery`); the inventory
    is always the scan of the catalog, and inputs that could not be fetched are among its skips.

    Parameters
    ----------
    day : str or datetime.date
        UTC day (``YYYY-MM-DD``).
    catalog : str, optional
        Catalog folder/URL; default ``config.catalog`` or ``$SEAICE_CATALOG``.
    lake : str, optional
        Lake root; default ``$SEAICE_LAKE``.
    config : DiscoverConfig or dict, optional

    Returns
    -------
    dict
        JSON-ready: ``date``, ``inventory`` (partition URL), ``counts``, ``granules`` (product ->
        list of URIs), ``scenes`` (list of URIs), ``skipped``.  Small enough for XCom.
    """
    cfg = config if isinstance(config, DiscoverConfig) else DiscoverConfig.from_dict(dict(config or {}))
    the_day = day if isinstance(day, dt.date) else parse_day(str(day))
    store = inputs_from_env(catalog or cfg.catalog or None)
    where = store.root
    if not where:
        raise FileNotFoundError("no catalog given: pass catalog=, set DiscoverConfig.catalog or $SEAICE_CATALOG")
    target = lake_from_env(lake)
    fetch_skips = _fetch_from_providers(the_day, cfg, store)
    items, skips = discover_day(where, the_day, cfg, store.options_for(where))
    manifest = write_inventory(target, the_day, items, skips + fetch_skips, cfg, catalog=where)
    granules: dict[str, list[str]] = {}
    for c in items:
        if c.kind != "S2":
            granules.setdefault(c.kind, []).append(c.uri)
    log.info("discovered %s on %s: %s", where, the_day, manifest.info["counts"])
    return {
        "date": the_day.isoformat(),
        "inventory": target.partition_url(manifest.key),
        "counts": manifest.info["counts"],
        "granules": granules,
        "scenes": [c.uri for c in items if c.kind == "S2"],
        "skipped": manifest.info["skipped"],
    }
