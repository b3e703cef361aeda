"""Spark job: the day's freeboard tracks against NASA's ATL07/ATL10, quicklooks and the day's report.

Usage::

    spark-submit seaice_tasks/spark_jobs/validate.py --date 2019-11-04 --lake ROOT
    spark-submit seaice_tasks/spark_jobs/validate.py --date 2019-11-04 --granules G1 --lake ROOT \\
        --config '{"quicklook": false}'

Load (driver): the ``freeboard`` tracks of the day's granules (a whole-day run: every granule
with 2 m tracks; or those of ``--granules``; a granule without a freeboard partition is a
recorded skip) and, from the day's inventory, each granule's ATL03 and
the ATL07/ATL10 of its pass (:func:`~seaice_tasks.surface.validate.companion_uri`; none found is a
recorded flag of the track, not a skip).
Map: one work item per track (:func:`~seaice_tasks.surface.validate.validate_track_work`):
``validation/date=D/granule=G/beam=B/{validation.json, quicklook.png}``.
Commit: the track partitions, then ``validation_day/date=D`` (the pooled figures as JSON and
Markdown, the day's freeboard histograms as PNG), then the report ``validate_report/date=D``.
A whole-day run removes the day's validation partitions of granules without 2 m tracks any
more; those of tracks skipped or failed this time stay (``stale``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import posixpath
import sys
from typing import Any

from seaice_tasks.config import parse_day
from seaice_tasks.errors import ConfigError
from seaice_tasks.granule import parse_granule
from seaice_tasks.outputs import BytesOutput, write_partition
from seaice_tasks.products import (
    FREEBOARD,
    HISTOGRAM_FILE,
    INVENTORY,
    VALIDATE_REPORT,
    VALIDATION,
    VALIDATION_DAY,
    VALIDATION_FILE,
    VALIDATION_MD_FILE,
)
from seaice_tasks.spark_jobs.runner import Job, Run, day_tracks, inventory_uris, main, track_inputs
from seaice_tasks.storage import Lake
from seaice_tasks.surface.plots import freeboard_histogram
from seaice_tasks.surface.validate import (
    ValidateConfig,
    companion_uri,
    markdown_report,
    pooled_summary,
    validate_track_work,
)

__all__ = ["JOB", "run"]

_HIST_LABELS = {"ours_ice": "ours (2 m, ice)", "atl10": "ATL10"}


def _inventory(lake: Lake, day: dt.date, kind: str) -> list[str]:
    return inventory_uris(lake, day, kind) if lake.manifest(INVENTORY.key(date=day)) is not None else []


def run(job: Run[ValidateConfig], granules: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Validate every freeboard track of the day; the job's summary."""
    day = parse_day(args.date)
    keys, skipped = track_inputs(job.lake, FREEBOARD, day, granules, "freeboard", "freeboard")
    uris = {kind: _inventory(job.lake, day, kind) for kind in ("ATL03", "ATL07", "ATL10")}
    atl03 = {parse_granule(posixpath.basename(uri)).granule: uri for uri in uris["ATL03"]}
    records = [{"date": day.isoformat(), "granule": str(k.granule), "beam": str(k.beam),
                "atl03": atl03.get(str(k.granule), ""),
                "atl07": companion_uri(str(k.granule), uris["ATL07"], "ATL07") or "",
                "atl10": companion_uri(str(k.granule), uris["ATL10"], "ATL10") or ""} for k in keys]
    weights = [float(job.lake.require(k).rows) + 1.0 for k in keys]
    job.lap("load")
    results = job.map(validate_track_work, records, weights=weights)
    failed = [{"track": f"{r.record['granule']}/{r.record['beam']}", "reason": r.error} for r in results if not r.ok]
    docs = {r.rows[0]["track"]: {k: v for k, v in r.rows[0].items() if k != "track"}
            for r in results if r.ok and r.rows}
    manifests = job.commit(results, info=lambda key, _: {"flags": docs[f"{key.granule}/{key.beam}"]["flags"]})
    pooled = pooled_summary(docs)
    day_key = VALIDATION_DAY.key(date=day)
    hists = {_HIST_LABELS.get(name, name): (h["edges_m"], h["counts"]) for name, h in pooled["histograms"].items()}
    write_partition(job.lake, day_key, [
        BytesOutput(day_key, VALIDATION_FILE, json.dumps({"pooled": pooled, "tracks": docs}, sort_keys=True,
                                                         indent=1).encode()),
        BytesOutput(day_key, VALIDATION_MD_FILE, markdown_report(day.isoformat(), pooled, docs).encode()),
        BytesOutput(day_key, HISTOGRAM_FILE, freeboard_histogram(hists, title=f"freeboard, {day} ({len(docs)} "
                                                                             "tracks)")),
    ], job.config, {"tracks": len(docs), "failed": failed})
    job.lap("map_reduce")
    summary = {k: v for k, v in pooled.items() if k != "histograms"}
    return {
        "partitions": [m.key.relpath for m in manifests] + [day_key.relpath],
        "tracks": len(keys),
        "pooled": summary,
        "skipped": skipped,
        "failed": failed,
    }


def _check(args: argparse.Namespace, config: ValidateConfig) -> None:
    """``--date`` given (the freeboard tracks and the inventory are found by day)."""
    del config
    if not args.date:
        raise ConfigError("--date is required (the freeboard tracks are found by day)")


JOB = Job(name="validate", config_type=ValidateConfig, inventory_kind="ATL03", inputs_arg="granules",
          report=VALIDATE_REPORT, body=run, description=__doc__, check_arguments=_check,
          products=lambda args: (VALIDATION,), day_inputs=day_tracks)

if __name__ == "__main__":
    sys.exit(main(JOB))
