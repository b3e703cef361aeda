"""What every Spark job shares: argument helpers, the session, executor environment, result line."""

from __future__ import annotations

import datetime as dt
import importlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from seaice_tasks.storage import Lake

__all__ = [
    "RESULT_MARKER",
    "EXECUTOR_ENV",
    "REPORT_FILE",
    "split_uris",
    "spark_session",
    "print_result",
    "inventory_uris",
    "write_report",
    "record_mapper",
]

#: Prefix of the one JSON line a job prints for its caller (Airflow log, CLI, tests).
RESULT_MARKER: Final[str] = "SEAICE_RESULT "
#: File of a job's day-level report partition (``<stage>/date=D/report.json``).
REPORT_FILE: Final[str] = "report.json"
#: Driver environment forwarded to executors (storage root and credentials).
EXECUTOR_ENV: Final[tuple[str, ...]] = (
    "SEAICE_LAKE", "SEAICE_LAKE_OPTIONS", "SEAICE_S3_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_SESSION_TOKEN",
)


def split_uris(text: str) -> list[str]:
    """Comma-separated URIs, or ``@file`` with one per line.

    Examples
    --------
    >>> split_uris("a.h5, b.h5,")
    ['a.h5', 'b.h5']
    """
    if text.startswith("@"):
        with open(text[1:]) as fh:
            return [line.strip() for line in fh if line.strip()]
    return [u for u in (s.strip() for s in text.split(",")) if u]


def spark_session(app_name: str, master: str = "") -> Any:
    """A Spark session whose executors see the driver's lake variables."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name)
    for name in EXECUTOR_ENV:
        if os.environ.get(name):
            builder = builder.config(f"spark.executorEnv.{name}", os.environ[name])
    if master:
        builder = builder.master(master)
    return builder.getOrCreate()


def print_result(summary: dict[str, Any]) -> None:
    """Print the job's one-line JSON result."""
    print(RESULT_MARKER + json.dumps(summary, sort_keys=True), flush=True)


def inventory_uris(lake: Lake, day: str, kind: str) -> list[str]:
    """URIs of one kind (``ATL03``, ``S2`` ...) in the day's committed inventory, sorted."""
    from seaice_tasks.storage import PartitionKey

    table = lake.read_table(PartitionKey("inventory", dt.date.fromisoformat(day))).to_pandas()
    return sorted(table.loc[table["kind"] == kind, "uri"].tolist())


def write_report(lake: Lake, stage: str, day: str | None, summary: dict[str, Any], config: Any) -> None:
    """Commit a job's day report: the summary without timings, skips and failures in the manifest."""
    if not day:
        return
    from seaice_tasks.storage import PartitionKey

    doc = {k: v for k, v in summary.items() if k != "timings_s"}
    with lake.writer(PartitionKey(stage, dt.date.fromisoformat(day)), config) as writer:
        writer.write_bytes(REPORT_FILE, json.dumps(doc, sort_keys=True, indent=1).encode())
        writer.info = {"skipped": summary["skipped"], "failed": summary["failed"]}


def record_mapper(
    fn_path: str, config_path: str, config_json: str, lake_url: str, columns: Sequence[str]
) -> Callable[[Iterator[Any]], Iterator[Any]]:
    """A ``mapInPandas`` function applying ``fn(record, config, lake) -> row`` to every work item.

    Functions and config classes travel as ``"module:name"`` strings and the config as JSON, so
    the closure pickles small; executors import them and build the lake from ``lake_url``.
    """
    cols = list(columns)

    def run(frames: Iterator[Any]) -> Iterator[Any]:
        import pandas as pd

        from seaice_tasks.storage import lake_from_env

        fn = _resolve(fn_path)
        config = _resolve(config_path).from_json(config_json)
        lake = lake_from_env(lake_url)
        for frame in frames:
            yield pd.DataFrame([fn(rec, config, lake) for rec in frame.to_dict("records")], columns=cols)

    return run


def _resolve(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)
