"""Publishing one day to the STAC catalog: plan from checked files, write in link order, check again.

1. **Plan** (:func:`plan_product`, reads only).  Every committed partition of the day becomes an
   item built from its files read and checked against its manifest
   (:func:`~seaice_tasks.publish.stac.partition_item`).  A partition whose file differs from the
   manifest (size or sha256), is missing or unreadable, or whose manifest is damaged, is a
   recorded skip (item, partition, reason), never an item; the other partitions are published.
   A file found missing while the manifest now names another version (a commit replaced the
   version meanwhile) is read again from the new version.
2. **Write** (:func:`write_catalog`).  The documents whose bytes change, each in one atomic
   step, in link order: the items, the days' collections, the products' collections, the root
   catalog; then what is no longer linked is removed (product collections, day collections,
   items).  When a write fails, the documents already written are put back as they were (new
   ones removed) and the publish fails with one line: the catalog stays the previous one, and
   every link in it resolves.
3. **Check** (:func:`publish_catalog`).  The day's partitions are listed and their manifests
   read again.  A commit that replaced a version while the catalog was planned or written (and
   so removed the version folder an item points at) shows as a changed manifest: that product is
   planned and written again, until a round finds nothing changed (at most
   :data:`PUBLISH_ROUNDS`); partitions still being re-committed then are left out of the
   catalog as recorded skips, so no asset ever points at a removed version.
4. **Index** (:mod:`seaice_tasks.publish.index`): the day's rows of ``stac-items.parquet``, the
   catalog's items as one GeoParquet file, replaced.

A commit made after the publish ended replaces a version the catalog names; the next publish of
the day (the DAG's ``publish`` runs after the day's stages) points the item at the new one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import posixpath
from collections.abc import Mapping, Sequence
from typing import Final

from seaice_tasks.errors import StorageError
from seaice_tasks.products import Product
from seaice_tasks.publish.index import INDEX_FILE, update_index
from seaice_tasks.publish.stac import (
    CATALOG_FILE,
    CHILD_BBOX_FIELD,
    COLLECTION_FILE,
    PUBLISHED,
    STAC_DIR,
    WORLD_BBOX,
    PublishConfig,
    collection_doc,
    day_interval,
    dumps,
    item_id,
    partition_item,
    product_dir,
    root_doc,
    union,
)
from seaice_tasks.storage import Lake, Manifest, PartitionKey

__all__ = ["PUBLISH_ROUNDS", "ProductPlan", "changed_partitions", "plan_product", "publish_catalog",
           "write_catalog"]

log = logging.getLogger(__name__)

#: Rounds of write-and-check while commits keep replacing the day's partitions.
PUBLISH_ROUNDS: Final[int] = 5
#: Reads of one partition while commits keep replacing its version during the read.
READ_ATTEMPTS: Final[int] = 10
#: Skip reason of a partition still re-committed after :data:`PUBLISH_ROUNDS` rounds.
LEFT_OUT: Final[str] = (f"re-committed while the catalog was written ({PUBLISH_ROUNDS} rounds); left out until the "
                        "next publish of the day")

#: What a partition's manifest read gave: the manifest, the error of a damaged one, or None (not committed).
State = Manifest | str | None


@dataclasses.dataclass(frozen=True)
class _Entry:
    """One partition as planned: the manifest state its item was built from, the item or the skip."""

    state: State
    item: bytes | None = None
    bbox: list[float] | None = None
    skip: str | None = None


@dataclasses.dataclass(frozen=True)
class ProductPlan:
    """The documents of one product for one day, before they are written.

    Attributes
    ----------
    product : Product
    entries : dict
        Every partition of the day listed: its manifest state, item or skip.
    items : dict
        Item documents (root-relative path: bytes), in partition order.
    day_collection, product_collection : tuple of (str, bytes or None)
        Path and bytes of the day's and the product's collection (None: to be removed).
    stale : tuple of str
        Item documents of the day no partition has any more (removed last).
    skipped : tuple of dict
        ``item``, ``partition`` (URL) and ``reason`` of every partition left out.
    """

    product: Product
    entries: Mapping[PartitionKey, _Entry]
    items: Mapping[str, bytes]
    day_collection: tuple[str, bytes | None]
    product_collection: tuple[str, bytes | None]
    stale: tuple[str, ...]
    skipped: tuple[dict[str, str], ...]


def _state(lake: Lake, key: PartitionKey) -> State:
    try:
        return lake.manifest(key)
    except StorageError as exc:
        return str(exc)


def _reason(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, StorageError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


def _plan_partition(lake: Lake, product: Product, key: PartitionKey, path: str, config: PublishConfig,
                    previous: _Entry | None) -> _Entry:
    """The item of one partition from the version its manifest names, or why there is none."""
    state = _state(lake, key)
    for _ in range(READ_ATTEMPTS):
        if state is None:  # removed since the listing
            return _Entry(None)
        if isinstance(state, str):
            return _Entry(state, skip=state)
        if previous is not None and previous.state == state:
            return previous  # planned from this very manifest already (an earlier round)
        try:
            item = partition_item(lake, product, key, state, path, config)
        except (OSError, ValueError, StorageError) as exc:
            again = _state(lake, key)
            if again != state:  # a commit replaced the version while it was read: read the new one
                state = again
                continue
            return _Entry(state, skip=_reason(exc))
        return _Entry(state, dumps(item), item.get("bbox"))
    return _Entry(state, skip=f"re-committed {READ_ATTEMPTS} times while it was read")


def _child_day(folder: str, path: str) -> dt.date | None:
    """The day of ``<folder>/<YYYY-MM-DD>/collection.json`` (None for any other path)."""
    parent = posixpath.dirname(path)
    if posixpath.basename(path) != COLLECTION_FILE or posixpath.dirname(parent) != folder:
        return None
    try:
        return dt.date.fromisoformat(posixpath.basename(parent))
    except ValueError:
        return None


def _read_child(lake: Lake, path: str) -> tuple[bool, list[float] | None]:
    """Whether a day collection exists, and its box (None: no footprint)."""
    raw = lake.read_document(path)
    if raw is None:
        return False, None
    try:
        box = json.loads(raw)["extent"]["spatial"]["bbox"][0]
    except (ValueError, KeyError, IndexError, TypeError):
        return True, None
    return True, (None if list(box) == list(WORLD_BBOX) else [float(v) for v in box])


def _children(lake: Lake, product: Product) -> dict[str, list[float] | None]:
    """The day collections the product's collection links (path: box).

    Without a readable product collection, the day collections present are found by listing.
    A link written before links carried the day's box gets it from the day's collection.
    """
    folder = product_dir(product)
    path = posixpath.join(folder, COLLECTION_FILE)
    raw = lake.read_document(path)
    links = None
    if raw is not None:
        try:
            links = json.loads(raw).get("links")
        except (ValueError, AttributeError) as exc:
            log.warning("%s: unreadable (%s); its days are found by listing", lake.url(path), exc)
    out: dict[str, list[float] | None] = {}
    if not isinstance(links, list):
        for found in lake.list_documents(folder):
            if _child_day(folder, found) is not None:
                out[found] = _read_child(lake, found)[1]
        return out
    for link in links:
        if not isinstance(link, dict) or link.get("rel") != "child":
            continue
        child = posixpath.normpath(posixpath.join(folder, str(link.get("href", ""))))
        if _child_day(folder, child) is None:
            continue
        box = link.get(CHILD_BBOX_FIELD)
        if isinstance(box, list) and len(box) == len(WORLD_BBOX):
            out[child] = [float(v) for v in box]
        elif (child_box := _read_child(lake, child))[0]:
            out[child] = child_box[1]
    return out


def plan_product(lake: Lake, product: Product, day: dt.date, config: PublishConfig,
                 previous: ProductPlan | None = None,
                 leave_out: frozenset[PartitionKey] = frozenset()) -> ProductPlan:
    """The items and collections of one product after publishing ``day`` (nothing is written).

    Parameters
    ----------
    previous : ProductPlan, optional
        An earlier round's plan: partitions whose manifest is unchanged keep their item.
    leave_out : frozenset of PartitionKey
        Partitions to record as skipped (:data:`LEFT_OUT`) instead of publishing.
    """
    folder = product_dir(product)
    day_dir = posixpath.join(folder, day.isoformat())
    day_path = posixpath.join(day_dir, COLLECTION_FILE)
    product_path = posixpath.join(folder, COLLECTION_FILE)
    entries: dict[PartitionKey, _Entry] = {}
    items: dict[str, bytes] = {}
    skipped: list[dict[str, str]] = []
    for key in lake.partitions(product.name, day):
        path = posixpath.join(day_dir, f"{item_id(key)}.json")
        if key in leave_out:
            entry = _Entry(_state(lake, key), skip=LEFT_OUT)
        else:
            entry = _plan_partition(lake, product, key, path, config,
                                    previous.entries.get(key) if previous is not None else None)
        entries[key] = entry
        if entry.item is not None:
            items[path] = entry.item
        elif entry.skip is not None:
            skipped.append({"item": item_id(key), "partition": lake.partition_url(key), "reason": entry.skip})
            log.warning("publish %s: %s skipped: %s", day, lake.partition_url(key), entry.skip)
    stale = tuple(p for p in lake.list_documents(day_dir) if p not in items and p != day_path)
    day_box = union(e.bbox for e in entries.values() if e.item is not None)
    day_doc = dumps(collection_doc(
        f"{product.name}-{day.isoformat()}", f"{product.name} {day.isoformat()}", product.description, day_path,
        day_box, day_interval(day, day), {}, list(items), product_path, config)) if items else None
    children = _children(lake, product)
    children.pop(day_path, None)
    if items:
        children[day_path] = day_box
    product_doc = None
    if children:
        days = sorted(d for d in (_child_day(folder, c) for c in children) if d is not None)
        product_doc = dumps(collection_doc(
            product.name, product.name, product.description, product_path, union(children.values()),
            day_interval(days[0], days[-1]), children, [], CATALOG_FILE, config))
    return ProductPlan(product, entries, items, (day_path, day_doc), (product_path, product_doc), stale,
                       tuple(skipped))


def _undo(lake: Lake, journal: Sequence[tuple[str, bytes | None]]) -> list[str]:
    """Put back the documents of ``journal`` (path, bytes before; None: it was new); those that failed."""
    failed = []
    for path, before in reversed(journal):
        try:
            if before is None:
                lake.delete_document(path)
            else:
                lake.write_document(path, before)
        except (OSError, StorageError) as exc:
            failed.append(path)
            log.error("%s: not put back after a failed publish (%s)", lake.url(path), exc)
    return failed


def write_catalog(lake: Lake, plans: Sequence[ProductPlan], config: PublishConfig) -> None:
    """Write the planned documents in link order, then remove the unlinked ones (module docstring).

    Raises
    ------
    StorageError
        A document could not be written (those written before it are put back) or an unlinked
        one could not be removed (the catalog is then complete; the next publish removes it).
    """
    present = [p.product_collection[0] for p in plans if p.product_collection[1] is not None]
    writes: list[tuple[str, bytes | None]] = [
        *(i for p in plans for i in p.items.items()),
        *(p.day_collection for p in plans if p.day_collection[1] is not None),
        *(p.product_collection for p in plans if p.product_collection[1] is not None),
        (CATALOG_FILE, dumps(root_doc(present, config))),
    ]
    journal: list[tuple[str, bytes | None]] = []
    path = CATALOG_FILE
    try:
        for path, data in writes:
            before = lake.read_document(path)
            if data is None or before == data:
                continue
            journal.append((path, before))
            lake.write_document(path, data)
    except Exception as exc:
        failed = _undo(lake, journal)
        if not isinstance(exc, OSError | StorageError | ValueError):
            raise
        after = (f"{len(failed)} document(s) could not be put back: {', '.join(failed)}" if failed
                 else "the catalog was left as it was")
        raise StorageError(f"{lake.url(path)}: not written ({type(exc).__name__}: {' '.join(str(exc).split())}); "
                           f"{after}") from exc
    removals = [*(p.product_collection[0] for p in plans if p.product_collection[1] is None),
                *(p.day_collection[0] for p in plans if p.day_collection[1] is None),
                *(s for p in plans for s in p.stale)]
    left = []
    for path in removals:  # parents first: nothing that stays links what goes
        try:
            lake.delete_document(path)
        except OSError as exc:
            left.append(f"{path} ({type(exc).__name__})")
    if left:
        raise StorageError(f"{lake.url(STAC_DIR)}: published, but unlinked documents not removed: {', '.join(left)}")


def changed_partitions(lake: Lake, plan: ProductPlan, day: dt.date) -> set[PartitionKey]:
    """The product's partitions of ``day`` committed, replaced or removed since ``plan`` read them."""
    now = set(lake.partitions(plan.product.name, day))
    planned = {k for k, e in plan.entries.items() if e.state is not None}
    changed = now ^ planned
    changed |= {k for k in now & planned if _state(lake, k) != plan.entries[k].state}
    return changed


def publish_catalog(lake: Lake, day: dt.date, config: PublishConfig) -> tuple[dict[str, int], list[dict[str, str]]]:
    """Publish ``day`` to the catalog (module docstring): items per product, and the skipped partitions.

    Raises
    ------
    StorageError
        When the catalog cannot be written (it is then left as it was).
    """
    plans = {p.name: plan_product(lake, p, day, config) for p in PUBLISHED}
    for attempt in range(PUBLISH_ROUNDS):
        write_catalog(lake, list(plans.values()), config)
        changed = {name: keys for name, plan in plans.items() if (keys := changed_partitions(lake, plan, day))}
        if not changed:
            break
        log.info("publish %s: %s re-committed meanwhile; publishing them again", day,
                 ", ".join(sorted(lake.partition_url(k) for keys in changed.values() for k in keys)))
        last = attempt == PUBLISH_ROUNDS - 1
        leave_out = frozenset(k for keys in changed.values() for k in keys) if last else frozenset()
        for name in changed:
            plans[name] = plan_product(lake, plans[name].product, day, config, plans[name], leave_out)
    else:
        write_catalog(lake, list(plans.values()), config)
    try:
        update_index(lake, day, [(name, plan.items) for name, plan in plans.items()])
    except (OSError, ValueError, StorageError) as exc:
        raise StorageError(f"{lake.url(INDEX_FILE)}: the catalog is published, its items index not written "
                           f"({type(exc).__name__}: {' '.join(str(exc).split())})") from exc
    return ({name: len(plan.items) for name, plan in plans.items()},
            [s for plan in plans.values() for s in plan.skipped])
