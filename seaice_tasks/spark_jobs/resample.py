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
succeeded; a failed item fails its partition only.  The report goes to ``resample_report/date=D``.
The runner (:mod:`seaice_tasks.spark_jobs.runner`) runs the same code without Spark
(``--no-spark``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from seaice_tasks.is2.resample import ResampleConfig
from seaice_tasks.is2.resample_work import item_key, plan_granule_work, resample_chunk_work
from seaice_tasks.products import RESAMPLE_REPORT
from seaice_tasks.spark_jobs.runner import Job, Run, main

__all__ = ["JOB", "run"]


def run(job: Run[ResampleConfig], granules: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Plan the granules, resample their chunks, commit the tracks; the job's summary."""
    del args
    planned = job.map(plan_granule_work, [{"uri": uri} for uri in granules])
    skipped = [{"uri": r.record["uri"], "reason": r.error} for r in planned if not r.ok]
    items = [row for r in planned for row in r.rows]
    job.lap("load")
    results = job.map(resample_chunk_work, items, weights=[float(i["photons"]) + 1.0 for i in items])
    errors: dict[Any, list[str]] = {}
    for r in results:
        if not r.ok:
            errors.setdefault(item_key(r.record), []).append(r.error)
    manifests = job.commit(results, exclude=errors, info=lambda key, entries: {"parts": len(entries)})
    job.lap("map_reduce")
    return {
        "partitions": [m.key.relpath for m in manifests],
        "rows": sum(m.rows for m in manifests),
        "skipped": skipped,
        "failed": [{"partition": key.relpath, "reason": "; ".join(sorted(set(errs)))}
                   for key, errs in sorted(errors.items())],
    }


JOB = Job(name="resample", config_type=ResampleConfig, inventory_kind="ATL03", inputs_arg="granules",
          report=RESAMPLE_REPORT, body=run, description=__doc__)

if __name__ == "__main__":
    sys.exit(main(JOB))
