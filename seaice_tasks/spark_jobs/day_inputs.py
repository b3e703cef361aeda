"""The inputs of a job's day: the inventory's URIs, the granules of upstream track partitions.

A whole-day run of a job takes its inputs from here (``Job.day_inputs``); a job that reads a
track product asks :func:`track_inputs` for the day's partitions, and an asked-for granule without
one is a recorded skip.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from typing import Any

from seaice_tasks.products import INVENTORY, SEGMENTS_2M, Product
from seaice_tasks.storage import Lake, PartitionKey

__all__ = ["inventory_uris", "day_granules", "day_tracks", "track_inputs", "unique_entries"]


def inventory_uris(lake: Lake, day: dt.date, kind: str) -> list[str]:
    """URIs of one kind (``ATL03``, ``S2`` ...) in the day's committed inventory, sorted."""
    table = lake.read_table(INVENTORY.key(date=day)).to_pandas()
    return sorted(table.loc[table["kind"] == kind, "uri"].tolist())


def day_granules(lake: Lake, day: dt.date, product: Product = SEGMENTS_2M) -> list[str]:
    """Granule keys of the day's committed partitions of a track product (default the 2 m tracks).

    The inputs of a whole-day run of a job that reads that product (``Job.day_inputs``, with
    :func:`functools.partial` for another product).
    """
    return sorted({str(k.granule) for k in lake.partitions(product.name, day)})


def day_tracks(lake: Lake, day: dt.date) -> list[str]:
    """Granule keys of the day's committed 2 m tracks (the inputs of a whole-day run of the jobs that read them)."""
    return day_granules(lake, day, SEGMENTS_2M)


def track_inputs(lake: Lake, product: Product, day: dt.date, granules: Sequence[str], what: str,
                 upstream: str) -> tuple[list[PartitionKey], list[dict[str, Any]]]:
    """The day's partitions of a track product (those of ``granules`` when given) and the asked-for misses.

    Each granule of ``granules`` without a partition is a recorded skip
    ``{"granule", "reason": "granule G: no <what> partition on D (run <upstream> first)"}``.
    """
    keys = [k for k in lake.partitions(product.name, day) if not granules or k.granule in granules]
    present = {str(k.granule) for k in keys}
    skipped: list[dict[str, Any]] = [
        {"granule": g, "reason": f"granule {g}: no {what} partition on {day} (run {upstream} first)"}
        for g in granules if g not in present]
    return keys, skipped


def unique_entries(entries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Report entries (skips, flags) without repeats, in first-seen order."""
    return list({json.dumps(e, sort_keys=True): e for e in entries}.values())
