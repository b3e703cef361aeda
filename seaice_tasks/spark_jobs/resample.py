"""Spark job: ATL03 granules -> 2 m segment partitions (``segments_2m/date=D/granule=G/beam=B``).

Usage::

    spark-submit seaice_tasks/spark_jobs/resample.py --granules a.h5,b.h5 --lake ROOT --config '{...}'
    spark-submit seaice_tasks/spark_jobs/resample.py --date 2019-11-04 --lake ROOT   # from the inventory

Load: the executors plan the granules (:func:`~seaice_tasks.is2.resample_work.plan_granule_work`:
one work item per chunk of each selected beam, at most ``max_photons_per_chunk`` photons of the
config; an unreadable granule is a recorded skip).  Map: the items, packed by photons into a few
Spark tasks per core, are resampled (:func:`~seaice_tasks.is2.resample_work.resample_chunk_work`:
each reads its chunk with a halo and keeps the bins it owns, :mod:`seaice_tasks.is2.chunks`) and
staged as part files.  Commit: the driver commits each track partition whose items all
succeeded and that holds at least one 2 m bin; a failed item fails its partition only.  Skips
(unreadable granule, missing/empty/all-fill beam, a second file of one granule key, a granule of
another day than ``--date``, no selectable photon) and flags (photon times that do not match the
name) are recorded per beam in the report ``resample_report/date=D``; a whole-day run removes the
day's tracks it did not produce.  With ``--process new`` (the daily DAG's scheduled and manual
runs) a granule whose tracks are all committed from the same file, config and code version is
kept as it is (:func:`done`); only the others are read.
The runner (:mod:`seaice_tasks.spark_jobs.runner`) runs the same code without Spark
(``--no-spark``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from seaice_tasks.config import config_hash
from seaice_tasks.is2.resample import ResampleConfig
from seaice_tasks.is2.resample_work import item_key, plan_granule_work, resample_chunk_work
from seaice_tasks.products import RESAMPLE_REPORT, SEGMENTS_2M
from seaice_tasks.spark_jobs.runner import Job, Run, main, parse_day, unique_entries
from seaice_tasks.storage import Manifest, PartitionKey, code_version

__all__ = ["JOB", "done", "run"]


def run(job: Run[ResampleConfig], granules: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Plan the granules, resample their chunks, commit the tracks; the job's summary."""
    planned = job.map(plan_granule_work, [{"uri": uri} for uri in granules])
    skipped = [{"uri": r.record["uri"], "reason": r.error} for r in planned if not r.ok]
    notes = [row for r in planned for row in r.rows if "granule" not in row]
    skipped += [{"uri": n["uri"], "beam": n["beam"], "reason": n["skip"]} for n in notes if "skip" in n]
    items: list[dict[str, Any]] = []
    owner: dict[str, str] = {}
    for row in (row for r in planned for row in r.rows if "granule" in row):
        first = owner.setdefault(row["granule"], row["uri"])
        if first != row["uri"]:  # two files, one granule key: the first in input order wins
            skipped.append({"uri": row["uri"], "beam": row["beam"],
                            "reason": f"{row['uri']}: granule {row['granule']} is also {first}; not resampled"})
        elif args.date and row["date"] != args.date:
            skipped.append({"uri": row["uri"], "beam": row["beam"],
                            "reason": f"{row['uri']}: granule of {row['date']}, not of the run's day {args.date}"})
        else:
            items.append(row)
    skipped = unique_entries(skipped)  # one line per (file, beam, reason)
    job.lap("load")
    results = job.map(resample_chunk_work, items, weights=[float(i["photons"]) + 1.0 for i in items])
    errors: dict[PartitionKey, list[str]] = {}
    rows: dict[PartitionKey, int] = {}
    uri_of: dict[PartitionKey, str] = {}
    for r in results:
        key = item_key(r.record)
        uri_of[key] = r.record["uri"]
        rows[key] = rows.get(key, 0) + sum(int(x["rows"]) for x in r.rows)
        if not r.ok:
            errors.setdefault(key, []).append(r.error)
    empty = sorted(k for k, n in rows.items() if n == 0 and k not in errors)
    skipped += [{"uri": uri_of[k], "beam": str(k.beam),
                 "reason": f"{k.relpath}: no photon passes the selection (signal_conf[{job.config.surface_type}] >= "
                           f"{job.config.min_signal_conf}, quality, finite values); not committed"} for k in empty]
    beams: dict[str, set[str]] = {}  # the tracks of each granule this run commits or fails
    for key in rows:
        if key not in empty:
            beams.setdefault(str(key.granule), set()).add(str(key.beam))
    manifests = job.commit(results, exclude=[*errors, *empty], info=lambda key, entries: {
        "parts": len(entries), "source": uri_of[key], "beams": sorted(beams[str(key.granule)])})
    job.lap("map_reduce")
    return {
        "partitions": [m.key.relpath for m in manifests],
        "rows": sum(m.rows for m in manifests),
        "skipped": skipped,
        "flags": [{"uri": n["uri"], "beam": n["beam"], "reason": n["flag"]} for n in notes if "flag" in n],
        "failed": [{"partition": key.relpath, "reason": "; ".join(sorted(set(errs)))}
                   for key, errs in sorted(errors.items())],
    }


def done(job: Run[ResampleConfig], granules: Sequence[str], args: argparse.Namespace) -> dict[str, list[PartitionKey]]:
    """The granules whose 2 m tracks of the day are all committed from that file, config and code version.

    A track's manifest names its ``source`` file and the ``beams`` its run committed or failed for
    the granule: a granule is done when every one of those beams is committed with the current
    config hash and code version (a failed beam, a run killed between two commits or a changed
    config leaves it to be processed again).
    """
    if not args.date:
        return {}
    current, code = config_hash(job.config), code_version()
    by_source: dict[str, list[Manifest]] = {}
    for key in job.lake.partitions(SEGMENTS_2M.name, parse_day(args.date)):
        manifest = job.lake.manifest(key)
        if manifest is not None and isinstance(manifest.info.get("source"), str):
            by_source.setdefault(manifest.info["source"], []).append(manifest)
    kept: dict[str, list[PartitionKey]] = {}
    for uri in granules:
        tracks = by_source.get(uri, [])
        expected = {str(b) for m in tracks for b in m.info.get("beams", [])}
        if (tracks and expected == {str(m.key.beam) for m in tracks}
                and all(m.config_hash == current and m.code_version == code for m in tracks)):
            kept[uri] = sorted(m.key for m in tracks)
    return kept


JOB = Job(name="resample", config_type=ResampleConfig, inventory_kind="ATL03", inputs_arg="granules",
          report=RESAMPLE_REPORT, body=run, description=__doc__, products=lambda args: (SEGMENTS_2M,),
          done=done)

if __name__ == "__main__":
    sys.exit(main(JOB))
