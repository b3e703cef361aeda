"""Spark job: every 2 m segment of the day classified by the promoted model.

Usage::

    spark-submit seaice_tasks/spark_jobs/classify.py --date 2019-11-04 --lake ROOT
    spark-submit seaice_tasks/spark_jobs/classify.py --date 2019-11-04 --granules G1 --lake ROOT \\
        --config '{"model": "seaice-is2-lstm", "version": "0123456789abcdef"}'

Check (before any work): the model version (the config's, else the promoted one of the
config's model name) is verified (:func:`~seaice_tasks.models.lake.verify_model`: card and
weights against the lake manifest, weights against the card, features and normalisation
against the training set's); a broken model is one line and exit status 2, with nothing
written, not even the report.
Load (driver): the day's ``segments_2m`` tracks (or those of ``--granules``; a granule without
a 2 m partition is a recorded skip).  When no version is promoted the whole day is one recorded
skip (report ``classify_report/date=D``) and the job exits 0: a day before the first trained
model still ends green.
Map: one work item per track, packed by its segment count into Spark tasks; every executor
process reads the model from the lake once (:func:`~seaice_tasks.is2.classify.cached_model`) and
stages ``segments_classified/date=D/granule=G/beam=B/classes.parquet``
(:func:`~seaice_tasks.is2.classify.classify_track_work`); a track that fails fails alone.
Commit: the partitions (manifest info: the model, class counts), then the report.  A whole-day
run removes the day's classified partitions of granules without 2 m tracks any more; those of
tracks that failed this time stay (``stale`` in the report).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from seaice_tasks.config import parse_day
from seaice_tasks.errors import ConfigError
from seaice_tasks.is2.classify import ClassifyConfig, classify_track_work, model_summary
from seaice_tasks.models.lake import list_models, model_card, promoted_version, verify_model
from seaice_tasks.products import CLASSIFY_REPORT, SEGMENTS_2M, SEGMENTS_CLASSIFIED
from seaice_tasks.spark_jobs.runner import Job, Run, day_tracks, main, track_inputs
from seaice_tasks.storage import Lake

__all__ = ["JOB", "run", "day_tracks"]


def run(job: Run[ClassifyConfig], granules: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Resolve the model, classify every track, commit; the job's summary."""
    day = parse_day(args.date)
    cfg = job.config
    keys, skipped = track_inputs(job.lake, SEGMENTS_2M, day, granules, "2 m", "resample")
    version = cfg.version or promoted_version(job.lake, cfg.model)
    if version is None:
        job.lap("load")
        reason = f"no version of model {cfg.model} is promoted: nothing classified (train and promote one first)"
        job.lap("map_reduce")
        return {"partitions": [], "model": None, "tracks": len(keys),
                "skipped": [*skipped, {"day": day.isoformat(), "reason": reason}], "failed": [], "no_model": True}
    card = model_card(job.lake, cfg.model, version)
    resolved = dataclasses.replace(cfg, version=version)
    records = [{"date": day.isoformat(), "granule": str(k.granule), "beam": str(k.beam), "version": version}
               for k in keys]
    weights = [float(job.lake.require(k).rows) + 1.0 for k in keys]
    job.lap("load")
    results = job.map(classify_track_work, records, weights=weights)
    failed = [{"track": f"{r.record['granule']}/{r.record['beam']}", "reason": r.error} for r in results if not r.ok]
    rows = {(r.record["granule"], r.record["beam"]): r.rows[0] for r in results if r.ok and r.rows}
    summary = model_summary(card, version)
    manifests = job.commit(results, info=lambda key, _: {"model": summary, **rows[(key.granule, key.beam)]},
                           config_for=lambda key: resolved)
    job.lap("map_reduce")
    totals = {c: sum(r["class_counts"][c] for r in rows.values()) for c in ("thick", "thin", "water")}
    return {
        "partitions": [m.key.relpath for m in manifests],
        "model": summary,
        "tracks": len(keys),
        "segments": sum(r["segments"] for r in rows.values()),
        "classified": sum(r["classified"] for r in rows.values()),
        "class_counts": totals,
        "skipped": skipped,
        "failed": failed,
        "no_model": False,
    }


def _check(args: argparse.Namespace, config: ClassifyConfig) -> None:
    """``--date`` given (the 2 m tracks are found by day)."""
    del config
    if not args.date:
        raise ConfigError("--date is required (the 2 m tracks are found by day)")


def _check_model(lake: Lake, args: argparse.Namespace, config: ClassifyConfig) -> None:
    """The model version the run would use (the config's or the promoted one) is sound (before any work)."""
    del args
    version = config.version or promoted_version(lake, config.model)
    if version:
        verify_model(lake, config.model, version)
        return
    if config.model != ClassifyConfig().model:  # a model asked for by name must be there: never a silent skip
        known = sorted({str(k.name) for k in list_models(lake)})
        what = "has no promoted version (give \"version\")" if config.model in known else \
            f"is not in the lake's registry (models there: {', '.join(known) or 'none'})"
        raise ConfigError(f"--config model {config.model!r} {what}")


JOB = Job(name="classify", config_type=ClassifyConfig, inventory_kind="ATL03", inputs_arg="granules",
          report=CLASSIFY_REPORT, body=run, description=__doc__, check_arguments=_check,
          products=lambda args: (SEGMENTS_CLASSIFIED,), day_inputs=day_tracks, check_lake=_check_model)

if __name__ == "__main__":
    sys.exit(main(JOB))
