"""The publish stage: the daily summary and a static STAC catalog of the lake's products.

:func:`publish_day` is the daily DAG's ``publish`` task (and ``seaice publish --date D``):

1. commits ``daily_summary/date=D`` (:func:`~seaice_tasks.publish.summary.day_summary`: inputs,
   partitions, skips and failures, class fractions, freeboard statistics, validation figures;
   JSON and Markdown), unless the lake holds nothing of the day;
2. publishes the day to the catalog (:mod:`seaice_tasks.publish.catalog`): one STAC item per
   committed partition of the day of every published product (:data:`PUBLISHED`) in
   ``stac/<product>/<date>/``, the day's collection beside them, the product's collection
   ``stac/<product>/collection.json`` and the root ``catalog.json``.

What the catalog guarantees:

* every asset points at a file that exists and whose bytes match its ``file:size`` and
  ``file:checksum`` (each file is checked against its manifest when its item is built; a
  partition that does not match is a recorded skip, and commits that replace a version while
  the day is published are caught by reading the manifests again after writing);
* every link resolves: documents are written whole, in link order, and a publish that fails
  puts back what it had written (the catalog stays the previous one);
* the extents describe what is linked: a day's collection its items, a product's collection its
  days (publishing a day with nothing in it changes nothing).

Links and asset hrefs are relative: the same tree reads from a folder, over HTTP or on S3.
Nothing depends on the wall clock: publishing a day twice gives the same bytes.  Two publishes
must not run at once (the DAG's ``publish`` task allows one at a time): a product's collection
is read, then rewritten.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping
from typing import Any

from seaice_tasks.config import parse_day
from seaice_tasks.outputs import BytesOutput, write_partition
from seaice_tasks.products import DAILY_SUMMARY, SUMMARY_FILE, SUMMARY_MD_FILE
from seaice_tasks.publish.catalog import publish_catalog
from seaice_tasks.publish.stac import (
    CATALOG_FILE,
    COLLECTION_FILE,
    PUBLISHED,
    STAC_DIR,
    PublishConfig,
    item_id,
)
from seaice_tasks.publish.summary import (
    TIMINGS_DIR,
    day_is_empty,
    day_summary,
    summary_markdown,
    timings_markdown,
    write_timings,
)
from seaice_tasks.storage import Lake, lake_from_env

__all__ = [
    "CATALOG_FILE",
    "COLLECTION_FILE",
    "PUBLISHED",
    "STAC_DIR",
    "TIMINGS_DIR",
    "PublishConfig",
    "day_summary",
    "item_id",
    "publish_day",
    "summary_markdown",
    "timings_markdown",
    "write_timings",
]

log = logging.getLogger(__name__)


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
        A JSON object of :class:`PublishConfig` fields (anything else is a :class:`ConfigError`).
    timings : mapping, optional
        Wall-clock seconds of each task of the run (the DAG passes Airflow's); written beside the
        summary as ``run_timings/<day>.json`` and ``.md``, outside the versioned partition.

    Returns
    -------
    dict
        JSON-ready: ``date``, ``catalog`` (URL of the root catalog), ``items`` ({product:
        items of the day}), ``skipped`` (``item``, ``partition``, ``reason`` of every partition
        of the day left out of the catalog), ``summary`` (the daily summary), ``summary_committed``
        (False for a day the lake holds nothing of), ``timings`` (URL of the timings, or None).

    Raises
    ------
    SeaIceError
        When the config or the day is unusable (before anything is written), or the lake cannot
        be written (the catalog is then left as it was).
    """
    raw: Any = {} if config is None else config  # a JSON value: anything but an object is refused
    cfg = raw if isinstance(raw, PublishConfig) else PublishConfig.from_dict(
        dict(raw) if isinstance(raw, Mapping) else raw)
    the_day = parse_day(day) if isinstance(day, str) else day
    store = lake if isinstance(lake, Lake) else lake_from_env(lake)
    summary = day_summary(store, the_day)
    commit = not day_is_empty(store, the_day)
    if commit:
        key = DAILY_SUMMARY.key(date=the_day)
        write_partition(store, key, [
            BytesOutput(key, SUMMARY_FILE, json.dumps(summary, sort_keys=True, indent=1).encode()),
            BytesOutput(key, SUMMARY_MD_FILE, summary_markdown(summary).encode()),
        ], cfg, {"products": {k: v["partitions"] for k, v in summary["products"].items()}})
    else:
        log.warning("publish %s: the lake holds nothing of the day; no summary committed", the_day)
    items, skipped = publish_catalog(store, the_day, cfg)
    timings_url = store.url(write_timings(store, the_day, timings)) if timings is not None else None
    log.info("publish %s: %s items, %d skipped; catalog %s", the_day, sum(items.values()), len(skipped),
             store.url(CATALOG_FILE))
    return {"date": the_day.isoformat(), "catalog": store.url(CATALOG_FILE), "items": items, "skipped": skipped,
            "summary": summary, "summary_committed": commit, "timings": timings_url}
