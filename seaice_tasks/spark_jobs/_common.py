"""What every Spark job shares: argument helpers, the session, executor environment, result line."""

from __future__ import annotations

import datetime as dt
import heapq
import importlib
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
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
    "DEFAULT_TASKS_PER_CORE",
    "balanced_bins",
    "task_dataframe",
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
#: ``OMP_NUM_THREADS`` of the executors' Python workers unless the driver's environment sets one.
EXECUTOR_THREADS_DEFAULT: Final[str] = "1"
#: Spark tasks per executor core a job's work items are packed into (see :func:`task_dataframe`).
DEFAULT_TASKS_PER_CORE: Final[int] = 2


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
    """A Spark session whose executors see the driver's lake variables and run one thread per task."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name)
    for name in EXECUTOR_ENV:
        if os.environ.get(name):
            builder = builder.config(f"spark.executorEnv.{name}", os.environ[name])
    # one core per Spark task: numpy/OpenCV/torch in the Python workers run single-threaded
    builder = builder.config("spark.executorEnv.OMP_NUM_THREADS",
                             os.environ.get("OMP_NUM_THREADS", EXECUTOR_THREADS_DEFAULT))
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
    ``fn`` returns one row (a dict) or a list of rows (e.g. the work items planned from one granule).
    """
    cols = list(columns)

    def run(frames: Iterator[Any]) -> Iterator[Any]:
        import pandas as pd

        from seaice_tasks.storage import lake_from_env

        fn = _resolve(fn_path)
        config = _resolve(config_path).from_json(config_json)
        lake = lake_from_env(lake_url)
        for frame in frames:
            rows: list[dict[str, Any]] = []
            for rec in frame.to_dict("records"):
                out = fn(rec, config, lake)
                rows.extend(out if isinstance(out, list) else [out])
            yield pd.DataFrame(rows, columns=cols)

    return run


def _resolve(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def balanced_bins(weights: Sequence[float], n_bins: int) -> list[list[int]]:
    """Indices of ``weights`` packed into at most ``n_bins`` bins of near-equal total weight.

    Longest-processing-time first: the heaviest remaining item goes to the lightest bin (ties to
    the lower bin).  Deterministic; empty bins are dropped; each bin lists its indices in order.

    Examples
    --------
    >>> balanced_bins([5, 1, 4, 2, 3], 2)
    [[0, 1, 3], [2, 4]]
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    order = sorted(range(len(weights)), key=lambda i: (-float(weights[i]), i))
    heap = [(0.0, b) for b in range(min(n_bins, max(len(weights), 1)))]
    bins: list[list[int]] = [[] for _ in heap]
    for i in order:
        load, b = heapq.heappop(heap)
        bins[b].append(i)
        heapq.heappush(heap, (load + float(weights[i]), b))
    return [sorted(b) for b in bins if b]


def _items_of(batch: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return batch


def task_dataframe(
    spark: Any,
    rows: Sequence[Mapping[str, Any]],
    schema: str,
    weights: Sequence[float] | None = None,
    tasks_per_core: int = DEFAULT_TASKS_PER_CORE,
) -> Any:
    """A DataFrame of work-item ``rows`` in ``tasks_per_core`` x cores partitions of equal weight.

    Each Spark task costs a fixed overhead in its Python worker (~0.1 s measured in local mode,
    docs/benchmarks.md), so many small items are packed into a few tasks per core with
    :func:`balanced_bins` (``weights``: e.g. photons per item; equal by default).  The bins become
    the partitions directly (``parallelize`` of one bin per slice), with no shuffle.

    Parameters
    ----------
    spark : pyspark.sql.SparkSession
    rows : sequence of mapping
        One mapping per work item, holding (at least) the columns of ``schema``, Python values.
    schema : str
        Spark DDL of the columns, in order.
    weights : sequence of float, optional
        Relative cost per row.
    tasks_per_core : int
        Partitions per core of ``spark.sparkContext.defaultParallelism``.
    """
    columns = [c.split()[0] for c in schema.split(", ")]
    n_tasks = max(1, min(len(rows), tasks_per_core * int(spark.sparkContext.defaultParallelism)))
    bins = balanced_bins(list(weights) if weights is not None else [1.0] * len(rows), n_tasks)
    data = [[tuple(rows[i][c] for c in columns) for i in b] for b in bins]
    rdd = spark.sparkContext.parallelize(data, max(len(data), 1)).flatMap(_items_of)
    return spark.createDataFrame(rdd, schema=schema)
