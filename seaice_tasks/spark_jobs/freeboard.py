"""Spark job: sea surface, freeboard and thickness of every classified 2 m segment of the day.

Usage::

    spark-submit seaice_tasks/spark_jobs/freeboard.py --date 2019-11-04 --lake ROOT
    spark-submit seaice_tasks/spark_jobs/freeboard.py --date 2019-11-04 --granules G1 --lake ROOT \\
        --config '{"surface": {"reference": "nasa_smooth"}, "thickness": {"snow": "constant"}}'

Load (driver): the ``segments_classified`` tracks of the day's granules (a whole-day run: every
granule with 2 m tracks; or those of ``--granules``); a granule without a classified partition
is a recorded skip.
Map: one work item per track, packed by segment count into Spark tasks
(:func:`~seaice_tasks.surface.freeboard.freeboard_track_work`); a track fails alone, a track
without open water or shorter than a window is committed with its flag in the manifest info.
Commit: ``freeboard/date=D/granule=G/beam=B/freeboard.parquet``, then the report
``freeboard_report/date=D``.  A whole-day run removes the day's freeboard partitions of granules
without 2 m tracks any more; those of tracks skipped or failed this time stay (``stale``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from seaice_tasks.config import parse_day
from seaice_tasks.errors import ConfigError
from seaice_tasks.products import FREEBOARD, FREEBOARD_REPORT, SEGMENTS_CLASSIFIED
from seaice_tasks.spark_jobs.runner import Job, Run, day_tracks, main, track_inputs
from seaice_tasks.surface.freeboard import FreeboardConfig, freeboard_track_work

__all__ = ["JOB", "run"]


def run(job: Run[FreeboardConfig], granules: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Freeboard of every classified track of the day; the job's summary."""
    day = parse_day(args.date)
    keys, skipped = track_inputs(job.lake, SEGMENTS_CLASSIFIED, day, granules, "classified", "classify")
    records = [{"date": day.isoformat(), "granule": str(k.granule), "beam": str(k.beam)} for k in keys]
    weights = [float(job.lake.require(k).rows) + 1.0 for k in keys]
    job.lap("load")
    results = job.map(freeboard_track_work, records, weights=weights)
    failed = [{"track": f"{r.record['granule']}/{r.record['beam']}", "reason": r.error} for r in results if not r.ok]
    rows = {(r.record["granule"], r.record["beam"]): r.rows[0] for r in results if r.ok and r.rows}
    manifests = job.commit(results, info=lambda key, _: dict(rows[(key.granule, key.beam)]))
    job.lap("map_reduce")
    flagged = [{"track": f"{g}/{b}", "flags": r["flags"]} for (g, b), r in sorted(rows.items()) if r["flags"]]
    return {
        "partitions": [m.key.relpath for m in manifests],
        "tracks": len(keys),
        "segments": sum(r["segments"] for r in rows.values()),
        "with_freeboard": sum(r["with_freeboard"] for r in rows.values()),
        "flagged": flagged,
        "skipped": skipped,
        "failed": failed,
    }


def _check(args: argparse.Namespace, config: FreeboardConfig) -> None:
    """``--date`` given (the classified tracks are found by day)."""
    del config
    if not args.date:
        raise ConfigError("--date is required (the classified tracks are found by day)")


JOB = Job(name="freeboard", config_type=FreeboardConfig, inventory_kind="ATL03", inputs_arg="granules",
          report=FREEBOARD_REPORT, body=run, description=__doc__, check_arguments=_check,
          products=lambda args: (FREEBOARD,), day_inputs=day_tracks)

if __name__ == "__main__":
    sys.exit(main(JOB))
