"""Spark job: ATL03 granules -> 2 m segment partitions (``segments_2m/date=D/granule=G/beam=B``).

Usage::

    spark-submit seaice_tasks/spark_jobs/resample.py --granules a.h5,b.h5 --lake ROOT --config '{...}'
    spark-submit seaice_tasks/spark_jobs/resample.py --date 2019-11-04 --lake ROOT   # from the inventory

Load phase: executors plan the granules (one row each: info and segment tables read, each
selected beam split into segment-range chunks of at most ``--max-photons`` photons, the work
items) and the driver collects the items; an unreadable granule comes back as a skip row. The
items are packed by photon count into ``--tasks-per-core`` Spark tasks per core (each task costs
a fixed Python-worker overhead, docs/benchmarks.md). Each item reads its photon slice plus one
20 m segment of halo on either side and keeps only the 2 m bins it owns (bin start in ``[x_lo,
x_hi)``, the chunk's boundaries snapped to the 2 m grid), so a bin split by a chunk boundary is
computed once, from all its photons. Executors run the pure
:func:`seaice_tasks.is2.resample.resample_photons` through ``mapInPandas`` and stage one part
file per item under a shared token; the driver commits each (granule, beam) partition once all
its items succeeded. A granule that cannot be read is skipped with its reason recorded in the
``resample_report`` partition of the day; the others go on. The same code runs on ``local[*]``
and on a standalone cluster, and without Spark (:func:`run_local`) for the CLI and the tests.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
import math
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, Final

import numpy as np

from seaice_tasks.constants import SEGMENT_LENGTH_M
from seaice_tasks.errors import SeaIceError
from seaice_tasks.spark_jobs._common import (
    DEFAULT_TASKS_PER_CORE,
    inventory_uris,
    print_result,
    record_mapper,
    spark_session,
    split_uris,
    task_dataframe,
    write_report,
)
from seaice_tasks.storage import FileEntry, Lake, Manifest, PartitionKey, lake_from_env

__all__ = [
    "SEGMENTS_STAGE",
    "REPORT_STAGE",
    "WorkItem",
    "plan_granule",
    "plan_work_items",
    "run_item",
    "commit_results",
    "run_local",
    "main",
]

log = logging.getLogger("seaice_tasks.spark_jobs.resample")

SEGMENTS_STAGE: Final[str] = "segments_2m"
REPORT_STAGE: Final[str] = "resample_report"
DEFAULT_MAX_PHOTONS: Final[int] = 2_000_000
HALO_SEGMENTS: Final[int] = 1
#: Importable names for executors (``__name__`` is ``__main__`` under spark-submit).
_MODULE: Final[str] = "seaice_tasks.spark_jobs.resample"
_CONFIG_PATH: Final[str] = "seaice_tasks.is2.resample:ResampleConfig"


#: Columns of the work-item DataFrame handed to executors (and of the results they return).
ITEM_COLUMNS: Final[tuple[str, ...]] = (
    "granule_uri", "granule", "date", "beam", "part", "seg_start", "seg_stop",
    "read_start", "read_stop", "x_lo", "x_hi", "token", "photons",
)
#: Spark DDL of the work items (:data:`ITEM_COLUMNS`).
ITEM_SCHEMA: Final[str] = (
    "granule_uri string, granule string, date string, beam string, part long, seg_start long, seg_stop long, "
    "read_start long, read_stop long, x_lo double, x_hi double, token string, photons long"
)
#: Rows of the distributed planning pass: the items, or one row per unreadable granule.
PLAN_SCHEMA: Final[str] = ITEM_SCHEMA + ", skip string"
RESULT_SCHEMA: Final[str] = (
    "granule string, date string, beam string, token string, name string, rows long, bytes long, "
    "sha256 string, error string, seconds double"
)


@dataclasses.dataclass(frozen=True)
class WorkItem:
    """One executor task: a segment range of one beam of one granule."""

    granule_uri: str
    granule: str
    date: str
    beam: str
    part: int
    seg_start: int
    seg_stop: int
    read_start: int
    read_stop: int
    x_lo: float
    x_hi: float
    token: str
    #: Photons in ``[seg_start, seg_stop)``: the item's weight when items are packed into tasks.
    photons: int = 0

    @property
    def key(self) -> PartitionKey:
        """The partition the item contributes to."""
        return PartitionKey(SEGMENTS_STAGE, dt.date.fromisoformat(self.date), self.granule, self.beam)


def _resample_module() -> Any:
    from seaice_tasks.is2 import resample

    return resample


def _snap_floor(x_m: float, step_m: float) -> float:
    return math.floor(x_m / step_m) * step_m


def _ownership_step_m(config: Any) -> float:
    """Grid that chunk boundaries snap to: bins and first-photon-bias windows stay whole."""
    return float(max(config.bin_size_m, config.fpb_window_m))


def _halo_segments(config: Any) -> int:
    """20 m segments read beyond a chunk on each side so owned bins/windows see all photons."""
    return HALO_SEGMENTS + math.ceil(_ownership_step_m(config) / SEGMENT_LENGTH_M)


def plan_granule(
    uri: str,
    config: Any,
    *,
    max_photons: int = DEFAULT_MAX_PHOTONS,
    token: str,
    storage_options: dict[str, Any] | None = None,
) -> list[WorkItem]:
    """Split one granule's selected beams into work items (reads metadata and segment tables only).

    Raises
    ------
    SeaIceError
        The granule cannot be read or named.
    """
    from seaice_tasks.granule import parse_granule
    from seaice_tasks.io.atl03 import read_atl03_info, read_segments, segment_chunks

    resample = _resample_module()
    step = _ownership_step_m(config)
    halo = _halo_segments(config)
    info = read_atl03_info(uri, storage_options=storage_options)
    try:
        gid = parse_granule(uri)
    except SeaIceError:
        if info.granule is None:
            raise
        gid = info.granule  # from the file's metadata (subsets are renamed)
    granule, day = gid.granule, gid.date.isoformat()
    items: list[WorkItem] = []
    for beam in resample.select_beams({b.beam: b.strength for b in info.beams}, config):
        segs = read_segments(uri, beam, storage_options=storage_options)
        n = len(segs)
        x0 = segs["segment_dist_x_m"].to_numpy(dtype=np.float64)
        beg = segs["ph_index_beg"].to_numpy()
        cnt = np.where(beg > 0, segs["segment_ph_cnt"].to_numpy(), 0)
        chunks = segment_chunks(segs["segment_ph_cnt"].to_numpy(), max_photons, beg) if n else []
        if not chunks:
            chunks = [(0, n)]
        for part, (a, b) in enumerate(chunks):
            lo = -math.inf if part == 0 else _snap_floor(float(x0[a]), step)
            hi = math.inf if part == len(chunks) - 1 else _snap_floor(float(x0[b]), step)
            items.append(WorkItem(
                granule_uri=uri, granule=granule, date=day, beam=beam, part=part, seg_start=a, seg_stop=b,
                read_start=max(a - halo, 0), read_stop=min(b + halo, n),
                x_lo=lo, x_hi=hi, token=token, photons=int(cnt[a:b].sum()),
            ))
    return items


def plan_work_items(
    granules: Sequence[str],
    config: Any,
    *,
    max_photons: int = DEFAULT_MAX_PHOTONS,
    token: str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> tuple[list[WorkItem], list[dict[str, str]]]:
    """Split granules into work items in this process (:func:`plan_granule` for each).

    Returns
    -------
    items : list of WorkItem
    skips : list of dict
        ``{"uri", "reason"}`` for granules that cannot be read.
    """
    token = token or uuid.uuid4().hex
    items: list[WorkItem] = []
    skips: list[dict[str, str]] = []
    for uri in granules:
        try:
            items.extend(plan_granule(uri, config, max_photons=max_photons, token=token,
                                      storage_options=storage_options))
        except SeaIceError as exc:
            log.warning("resample: skipping %s: %s", uri, exc)
            skips.append({"uri": uri, "reason": str(exc)})
    return items, skips


def plan_record(rec: dict[str, Any], config: Any, lake: Lake) -> list[dict[str, Any]]:
    """Executor side of the load phase: one granule -> its work-item rows (see :data:`PLAN_SCHEMA`).

    A granule that cannot be read gives one row with ``skip`` = the reason and no item.
    """
    uri = str(rec["uri"])
    so = lake.storage_options if uri.startswith("s3://") else None
    try:
        items = plan_granule(uri, config, max_photons=int(rec["max_photons"]), token=str(rec["token"]),
                             storage_options=so)
    except SeaIceError as exc:
        empty = dict.fromkeys(ITEM_COLUMNS)
        return [{**empty, "granule_uri": uri, "skip": str(exc)}]
    return [{**dataclasses.asdict(item), "skip": ""} for item in items]


def run_item(item: WorkItem, config: Any, lake: Lake) -> dict[str, Any]:
    """Resample one work item and stage its part file; never raises on bad input.

    Returns
    -------
    dict
        One result row (see :data:`RESULT_SCHEMA`); ``error`` is empty on success.
    """
    from seaice_tasks.io.atl03 import read_photons, read_segments
    from seaice_tasks.schemas import SEGMENTS_2M_SCHEMA

    resample = _resample_module()
    t0 = time.perf_counter()
    name = f"part-{item.part:05d}.parquet"
    row: dict[str, Any] = {"granule": item.granule, "date": item.date, "beam": item.beam, "token": item.token,
                           "name": name, "rows": 0, "bytes": 0, "sha256": "", "error": "", "seconds": 0.0}
    so = lake.storage_options if item.granule_uri.startswith("s3://") else None
    try:
        segments = read_segments(item.granule_uri, item.beam, storage_options=so)
        photons = read_photons(item.granule_uri, item.beam, item.read_start, item.read_stop, storage_options=so)
        bckgrd = resample.read_optional_bckgrd(item.granule_uri, item.beam, so)
        fpb = resample.read_fpb_with_dead_time(item.granule_uri, item.beam, so)
        frame = resample.resample_photons(photons, segments, bckgrd, fpb, config, beam=item.beam,
                                          granule=item.granule)
        x = frame["x_atc_m"].to_numpy(dtype=np.float64)
        frame = frame.loc[(x >= item.x_lo) & (x < item.x_hi)].reset_index(drop=True)
        table = resample.to_segments_table(frame)
        entry = lake.writer(item.key, config, token=item.token).write_table(name, table, SEGMENTS_2M_SCHEMA)
        row.update(rows=entry.rows or 0, bytes=entry.bytes, sha256=entry.sha256)
    except SeaIceError as exc:
        row["error"] = str(exc)
    row["seconds"] = time.perf_counter() - t0
    return row


def commit_results(
    lake: Lake, results: Iterable[dict[str, Any]], config: Any
) -> tuple[list[Manifest], list[dict[str, str]]]:
    """Commit every (granule, beam) partition whose items all succeeded (driver side)."""
    groups: dict[PartitionKey, list[dict[str, Any]]] = {}
    for row in results:
        key = PartitionKey(SEGMENTS_STAGE, dt.date.fromisoformat(row["date"]), row["granule"], row["beam"])
        groups.setdefault(key, []).append(row)
    manifests: list[Manifest] = []
    failures: list[dict[str, str]] = []
    for key in sorted(groups):
        rows = sorted(groups[key], key=lambda r: str(r["name"]))
        errors = sorted({r["error"] for r in rows if r["error"]})
        writer = lake.writer(key, config, token=rows[0]["token"])
        if errors:
            writer.abort()
            failures.append({"partition": key.relpath, "reason": "; ".join(errors)})
            log.error("resample: %s not committed: %s", key.relpath, "; ".join(errors))
            continue
        for r in rows:
            writer.adopt(FileEntry(name=r["name"], bytes=int(r["bytes"]), sha256=r["sha256"], rows=int(r["rows"])))
        writer.info = {"parts": len(rows)}
        manifests.append(writer.commit())
    return manifests, failures


def _summary(manifests: list[Manifest], skips: list[dict[str, str]], failures: list[dict[str, str]],
             timings: dict[str, float]) -> dict[str, Any]:
    return {
        "partitions": [m.key.relpath for m in manifests],
        "rows": sum(m.rows for m in manifests),
        "skipped": skips,
        "failed": failures,
        "timings_s": timings,
    }


def run_local(
    granules: Sequence[str],
    lake: Lake,
    config: Any,
    *,
    max_photons: int = DEFAULT_MAX_PHOTONS,
    day: str | None = None,
) -> dict[str, Any]:
    """The same job in one process (CLI ``seaice resample``, unit tests)."""
    t0 = time.perf_counter()
    items, skips = plan_work_items(granules, config, max_photons=max_photons,
                                   storage_options=lake.storage_options or None)
    t1 = time.perf_counter()
    results = [run_item(item, config, lake) for item in items]
    manifests, failures = commit_results(lake, results, config)
    t2 = time.perf_counter()
    summary = _summary(manifests, skips, failures, {"load": t1 - t0, "map_reduce": t2 - t1})
    write_report(lake, REPORT_STAGE, day, summary, config)
    return summary


def run_record(rec: dict[str, Any], config: Any, lake: Lake) -> dict[str, Any]:
    """:func:`run_item` of a work-item record (a row of the items DataFrame)."""
    return run_item(WorkItem(**{c: rec[c] for c in ITEM_COLUMNS}), config, lake)


def build_parser() -> argparse.ArgumentParser:
    """Arguments of the job."""
    p = argparse.ArgumentParser(prog="resample.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--granules", default="", help="comma-separated ATL03 URIs (or @file, one per line)")
    p.add_argument("--date", default="", help="UTC day: take the ATL03 granules of its inventory")
    p.add_argument("--lake", default="", help="storage root (default $SEAICE_LAKE)")
    p.add_argument("--config", default="{}", help="ResampleConfig as JSON")
    p.add_argument("--max-photons", type=int, default=DEFAULT_MAX_PHOTONS, help="photons per work item")
    p.add_argument("--master", default="", help="Spark master when not set by spark-submit")
    p.add_argument("--tasks-per-core", type=int, default=DEFAULT_TASKS_PER_CORE,
                   help="Spark tasks per core the work items are packed into (by photons)")
    p.add_argument("--no-spark", action="store_true", help="run in this process without Spark")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point (``spark-submit`` or ``python -m``); prints one ``SEAICE_RESULT {json}`` line."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    resample = _resample_module()
    config = resample.ResampleConfig.from_json(args.config)
    lake = lake_from_env(args.lake or None)
    granules = split_uris(args.granules)
    if args.date and not granules:
        granules = inventory_uris(lake, args.date, "ATL03")
    granules = list(dict.fromkeys(granules))  # a granule listed twice is resampled once
    day = args.date or None
    if args.no_spark:
        summary = run_local(granules, lake, config, max_photons=args.max_photons, day=day)
    else:
        summary = _run_spark(granules, lake, config, args, day)
    print_result(summary)
    return 0


def _run_spark(
    granules: list[str], lake: Lake, config: Any, args: argparse.Namespace, day: str | None
) -> dict[str, Any]:
    """Load: executors plan the granules (one row each); map-reduce: packed items, driver commit."""
    spark = spark_session("seaice-resample", args.master)
    try:
        t0 = time.perf_counter()
        token = uuid.uuid4().hex
        plan_rows = [{"uri": u, "token": token, "max_photons": int(args.max_photons)} for u in granules]
        plan_df = task_dataframe(spark, plan_rows, "uri string, token string, max_photons long",
                                 tasks_per_core=args.tasks_per_core)
        planner = record_mapper(f"{_MODULE}:plan_record", _CONFIG_PATH, config.to_json(), lake.url(),
                                [c.split()[0] for c in PLAN_SCHEMA.split(", ")])
        planned = [r.asDict() for r in plan_df.mapInPandas(planner, schema=PLAN_SCHEMA).collect()]
        rank = {u: k for k, u in enumerate(granules)}
        skips = [{"uri": r["granule_uri"], "reason": r["skip"]} for r in planned if r["skip"]]
        for skip in skips:
            log.warning("resample: skipping %s: %s", skip["uri"], skip["reason"])
        items = sorted((r for r in planned if not r["skip"]),
                       key=lambda r: (rank.get(r["granule_uri"], 0), r["beam"], r["part"]))
        df = task_dataframe(spark, items, ITEM_SCHEMA, weights=[float(r["photons"]) + 1.0 for r in items],
                            tasks_per_core=args.tasks_per_core)
        t1 = time.perf_counter()
        fn = record_mapper(f"{_MODULE}:run_record", _CONFIG_PATH, config.to_json(), lake.url(),
                           [c.split()[0] for c in RESULT_SCHEMA.split(", ")])
        results = df.mapInPandas(fn, schema=RESULT_SCHEMA).collect()
        manifests, failures = commit_results(lake, [r.asDict() for r in results], config)
        t2 = time.perf_counter()
    finally:
        spark.stop()
    skips.sort(key=lambda r: rank.get(r["uri"], 0))  # input order, as in run_local
    summary = _summary(manifests, skips, failures, {"load": t1 - t0, "map_reduce": t2 - t1})
    write_report(lake, REPORT_STAGE, day, summary, config)
    return summary


if __name__ == "__main__":
    sys.exit(main())
