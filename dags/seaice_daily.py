"""
### seaice_daily

One UTC day of sea-ice processing: discover the day's ICESat-2 granules and Sentinel-2 scenes
in the catalog and commit the day's inventory to the lake.  Later stages (S2 labels, 2 m
resampling, colocation, inference, sea surface and freeboard, validation, publishing) hang off
the inventory.

* Schedule: daily; the run with logical date D starts at D+1 00:00 UTC and processes day D; `catchup` is on so that
  `airflow backfill create --dag-id seaice_daily --from-date ... --to-date ...` (or the UI's
  backfill dialog) fills any range, and a scheduler started late catches up.
* Params: `catalog` (folder/URL of raw inputs, default `$SEAICE_CATALOG`), `lake` (storage
  root, default `$SEAICE_LAKE`), `date` (override the logical date, `YYYY-MM-DD`).
* Every task is a thin call into the `seaice_tasks` package; heavy imports live in task bodies.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pendulum
from airflow.sdk import CronDataIntervalTimetable, Param, dag, task

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "seaice",
    "retries": 2,
    "retry_delay": dt.timedelta(minutes=5),
    "retry_exponential_backoff": True,
}


@dag(
    dag_id="seaice_daily",
    doc_md=__doc__,
    # data-interval semantics: the run for day D starts after D ends and has logical date D.
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2018, 10, 13, tz="UTC"),  # first ATL03 science data
    catchup=True,
    max_active_runs=2,
    default_args=DEFAULT_ARGS,
    tags=["seaice", "icesat2", "sentinel2"],
    params={
        "catalog": Param("", type="string", description="raw input folder/URL; empty = $SEAICE_CATALOG"),
        "lake": Param("", type="string", description="storage root; empty = $SEAICE_LAKE"),
        "date": Param("", type="string", description="YYYY-MM-DD to process; empty = the logical date"),
    },
)
def seaice_daily() -> None:
    @task
    def discover(ds: str | None = None, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Find the day's granules and scenes; commit `inventory/date=<day>`."""
        from seaice_tasks.catalog import run_discover

        p = params or {}
        return run_discover(p.get("date") or ds or "", catalog=p.get("catalog") or None,
                            lake=p.get("lake") or None)

    discover()


DAG = seaice_daily()
