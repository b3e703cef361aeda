"""How a job's work items run: the JSON that travels to executors, and the local and Spark backends.

:class:`LocalBackend` (``--no-spark``: the CLI, the tests) and :class:`SparkBackend`
(``spark-submit``: ``mapInPandas`` over work items packed by weight into a few tasks per core,
no shuffle) both call the same :func:`execute` on the same JSON text of each record and of the
run (:class:`RunSpec`), and results come back in input order, so a job's output is the same,
byte for byte, whichever backend ran it.  A work function that raises fails only its item.
"""

from __future__ import annotations

import dataclasses
import heapq
import importlib
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final, Protocol

from seaice_tasks.config import json_default
from seaice_tasks.errors import SeaIceError
from seaice_tasks.outputs import BytesOutput, stage_output
from seaice_tasks.storage import FileEntry, InputStore, Lake, PartitionKey
from seaice_tasks.work import WorkContext, WorkResult

__all__ = [
    "EXECUTOR_ENV", "DEFAULT_TASKS_PER_CORE", "RunSpec", "ItemResult", "Backend", "LocalBackend", "SparkBackend",
    "execute", "split_uris", "balanced_bins", "spark_session", "json_text", "function_path",
]

log = logging.getLogger(__name__)

#: Driver environment forwarded to executors (storage roots and credentials).
EXECUTOR_ENV: Final[tuple[str, ...]] = (
    "SEAICE_LAKE", "SEAICE_LAKE_OPTIONS", "SEAICE_LAKE_S3_ENDPOINT_URL", "SEAICE_S3_ENDPOINT_URL",
    "SEAICE_CATALOG", "SEAICE_CATALOG_OPTIONS", "SEAICE_CATALOG_S3_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_SESSION_TOKEN",
)
#: ``OMP_NUM_THREADS`` of the executors' Python workers unless the driver's environment sets one.
EXECUTOR_THREADS_DEFAULT: Final[str] = "1"
#: Spark tasks per executor core the work items are packed into (see :meth:`SparkBackend.map`).
DEFAULT_TASKS_PER_CORE: Final[int] = 2
_IN_SCHEMA: Final[str] = "i long, rec string"
_OUT_SCHEMA: Final[str] = "out string"


# -- small helpers ---------------------------------------------------------------------------------


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


def json_text(value: Any) -> str:
    """Canonical JSON (sorted keys; numpy values and dates as JSON)."""
    return json.dumps(value, default=json_default, sort_keys=True)


def function_path(fn: Callable[..., Any]) -> str:
    """``module:qualname`` of a package function (what executors import)."""
    return f"{fn.__module__}:{fn.__qualname__}"


def _resolve(path: str) -> Any:
    module, _, name = path.partition(":")
    obj: Any = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


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


# -- what travels to the executors -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """Everything an executor needs to rebuild a run's :class:`~seaice_tasks.work.WorkContext`, as JSON."""

    config_type: str
    config: str
    lake: str
    lake_options: Mapping[str, Any]
    inputs: str
    inputs_options: Mapping[str, Any]
    token: str

    def to_json(self) -> str:
        """Canonical JSON."""
        return json_text(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        """Inverse of :meth:`to_json`."""
        return cls(**json.loads(text))

    def context(self) -> WorkContext[Any]:
        """The work context of this run (config parsed into its class, stores opened)."""
        config = _resolve(self.config_type).from_json(self.config)
        return WorkContext(config=config, lake=Lake(self.lake, self.lake_options),
                           inputs=InputStore(self.inputs, dict(self.inputs_options)), token=self.token)


def execute(fn_path: str, ctx: WorkContext[Any], index: int, record_json: str) -> str:
    """Run one work item: call the work function, stage its outputs, catch any error (both backends).

    Returns
    -------
    str
        JSON of ``{"i", "rows", "files": [[partition path, file entry], ...], "error"}``; scratch
        outputs are staged but not listed.
    """
    try:
        out = _resolve(fn_path)(json.loads(record_json), ctx)
        result = out if isinstance(out, WorkResult) else WorkResult(rows=tuple(out) if isinstance(out, list)
                                                                    else (out,))
        files = []
        for output in result.outputs:
            entry = stage_output(ctx.lake, output, ctx.token, ctx.config)
            if not (isinstance(output, BytesOutput) and output.scratch):
                files.append([output.key.relpath, dataclasses.asdict(entry)])
        return json_text({"i": index, "rows": list(result.rows), "files": files, "error": ""})
    except Exception as exc:  # one item's failure, whatever it is, must not stop the others
        error = str(exc) if isinstance(exc, SeaIceError) else f"{type(exc).__name__}: {exc}"
        log.warning("%s item %d failed: %s", fn_path.rpartition(":")[2], index, error)
        return json_text({"i": index, "rows": [], "files": [], "error": error})


@dataclasses.dataclass(frozen=True)
class ItemResult:
    """The result of one work item on the driver."""

    index: int
    record: dict[str, Any]
    rows: list[dict[str, Any]]
    files: list[tuple[PartitionKey, FileEntry]]
    error: str

    @property
    def ok(self) -> bool:
        """The item succeeded."""
        return not self.error


# -- backends -------------------------------------------------------------------------------------------


class Backend(Protocol):
    """Maps :func:`execute` over JSON records; returns the JSON results in input order."""

    def map(self, fn_path: str, spec_json: str, records: Sequence[str],
            weights: Sequence[float] | None) -> list[str]: ...

    def close(self) -> None: ...


class LocalBackend:
    """This process, one item after the other (``--no-spark``)."""

    def map(self, fn_path: str, spec_json: str, records: Sequence[str],
            weights: Sequence[float] | None) -> list[str]:
        """:func:`execute` on every record, in order."""
        del weights
        ctx = RunSpec.from_json(spec_json).context()
        return [execute(fn_path, ctx, i, rec) for i, rec in enumerate(records)]

    def close(self) -> None:
        """Nothing to release."""


def spark_session(app_name: str, master: str = "") -> Any:
    """A Spark session whose executors see the driver's store variables and run one thread per task."""
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


def _items_of(batch: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return batch


def _mapper(fn_path: str, spec_json: str) -> Callable[[Iterator[Any]], Iterator[Any]]:
    """The ``mapInPandas`` function: :func:`execute` on each ``(i, rec)`` row of a partition."""

    def run(frames: Iterator[Any]) -> Iterator[Any]:
        import pandas as pd

        ctx = RunSpec.from_json(spec_json).context()
        for frame in frames:
            out = [execute(fn_path, ctx, int(i), str(rec)) for i, rec in zip(frame["i"], frame["rec"], strict=True)]
            yield pd.DataFrame({"out": out})

    return run


class SparkBackend:
    """``mapInPandas`` on a Spark session, work items packed by weight.

    Each Spark task costs a fixed overhead in its Python worker (~0.1 s measured in local mode,
    docs/benchmarks.md), so the items are packed into ``tasks_per_core`` x cores partitions of
    near-equal weight (:func:`balanced_bins`) that become the partitions directly
    (``parallelize`` of one bin per slice), with no shuffle.
    """

    def __init__(self, spark: Any, tasks_per_core: int = DEFAULT_TASKS_PER_CORE) -> None:
        self.spark = spark
        self.tasks_per_core = tasks_per_core

    def map(self, fn_path: str, spec_json: str, records: Sequence[str],
            weights: Sequence[float] | None) -> list[str]:
        """:func:`execute` on every record on the executors; results in input order."""
        if not records:
            return []
        sc = self.spark.sparkContext
        n_tasks = max(1, min(len(records), self.tasks_per_core * int(sc.defaultParallelism)))
        bins = balanced_bins(list(weights) if weights is not None else [1.0] * len(records), n_tasks)
        data = [[(i, records[i]) for i in b] for b in bins]
        df = self.spark.createDataFrame(sc.parallelize(data, len(data)).flatMap(_items_of), schema=_IN_SCHEMA)
        rows = df.mapInPandas(_mapper(fn_path, spec_json), schema=_OUT_SCHEMA).collect()
        return sorted((str(r["out"]) for r in rows), key=lambda text: int(json.loads(text)["i"]))

    def close(self) -> None:
        """Stop the Spark session."""
        self.spark.stop()
