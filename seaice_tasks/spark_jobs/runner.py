"""One runner for every Spark job: plan -> map -> commit, with a local and a Spark backend.

A job (:class:`Job`) is its arguments, its config class and a body.  The body plans work items
and maps package work functions over them with :meth:`Run.map` (any number of passes, the
driver combining results in between), then commits with :meth:`Run.commit`; the runner writes
the day report, prints the ``SEAICE_RESULT`` line and removes whatever the run staged.

Backends (:mod:`seaice_tasks.spark_jobs.backends`).  :class:`LocalBackend` (``--no-spark``: the
CLI, the tests) and :class:`SparkBackend` (``spark-submit``) both call the same :func:`execute` on
the same JSON text of each record and of the run, so a job's output is the same, byte for byte,
whichever backend ran it.  The day's inputs come from :mod:`seaice_tasks.spark_jobs.day_inputs`.

Errors.  A work function that raises fails only its item (the error, with the exception type
when it is not a seaice input error, comes back with the item); a bad argument or config, or a
lake the job cannot use (``Job.check_lake``: a damaged model), is one line on stderr and exit
status 2 before anything is written.

A whole-day run.  The day's inputs (inventory URIs, or upstream partitions' granules through
``Job.day_inputs``) define the day: afterwards a partition is removed only when its input is no
longer among them; the partitions of inputs that failed or were skipped this time stay (the
last good output) and the report lists them as ``stale``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import functools
import json
import logging
import posixpath
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, Generic

from seaice_tasks.config import JsonConfig, parse_day
from seaice_tasks.errors import ConfigError, SeaIceError, StorageError
from seaice_tasks.outputs import BytesOutput, write_partition
from seaice_tasks.products import REPORT_FILE, Product
from seaice_tasks.redact import install_secret_filter, redact, secrets_from_env
from seaice_tasks.spark_jobs.backends import (
    DEFAULT_TASKS_PER_CORE,
    EXECUTOR_ENV,
    Backend,
    ItemResult,
    LocalBackend,
    RunSpec,
    SparkBackend,
    balanced_bins,
    execute,
    function_path,
    json_text,
    spark_session,
    split_uris,
)
from seaice_tasks.spark_jobs.day_inputs import day_granules, day_tracks, inventory_uris, track_inputs, unique_entries
from seaice_tasks.storage import (
    STAGING_DIR,
    FileEntry,
    InputStore,
    Lake,
    Manifest,
    PartitionKey,
    inputs_from_env,
)
from seaice_tasks.store_access import open_lake
from seaice_tasks.work import ConfigT, Record, WorkContext

__all__ = [
    "inventory_uris",
    "day_granules",
    "job_day_inputs",
    "partition_input",
    "day_tracks",
    "track_inputs",
    "load_job",
    "RESULT_MARKER",
    "EXECUTOR_ENV",
    "DEFAULT_TASKS_PER_CORE",
    "EXIT_OK",
    "EXIT_BAD_ARGUMENT",
    "EXIT_FAILED",
    "Job",
    "Run",
    "RunSpec",
    "ItemResult",
    "Backend",
    "LocalBackend",
    "SparkBackend",
    "execute",
    "run_job",
    "main",
    "split_uris",
    "parse_day",
    "unique_entries",
    "balanced_bins",
    "spark_session",
]

log = logging.getLogger(__name__)

#: Prefix of the one JSON line a job prints for its caller (Airflow log, CLI, tests).
RESULT_MARKER: Final[str] = "SEAICE_RESULT "
EXIT_OK: Final[int] = 0
#: Exit status when some work items failed (the rest of the day is committed and reported).
EXIT_FAILED: Final[int] = 1
#: Exit status when an argument or config is unusable (nothing is written).
EXIT_BAD_ARGUMENT: Final[int] = 2
#: File touched in a run's staging folder at every pass (keeps ``gc_staging`` off a live run).
HEARTBEAT_NAME: Final[str] = ".heartbeat"
#: ``--process`` modes: every input (default; backfills, re-runs) or only inputs without current
#: partitions (the daily runs: a retry or a second run of the day redoes nothing that is done).
PROCESS_ALL: Final[str] = "all"
PROCESS_NEW: Final[str] = "new"
PROCESS_MODES: Final[tuple[str, ...]] = (PROCESS_ALL, PROCESS_NEW)
#: Report lists whose entries of a kept input are carried over from the previous report.
CARRIED_REPORT_LISTS: Final[tuple[str, ...]] = ("skipped", "flags")


# -- the driver side of a run ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Job(Generic[ConfigT]):
    """A Spark job: its name, config class, inputs, report product and body.

    Attributes
    ----------
    name : str
        Short name (``resample``); the Spark app is ``seaice-<name>``.
    config_type : type
        The job's :class:`~seaice_tasks.config.JsonConfig` (``--config`` JSON).
    inventory_kind : str
        Kind of input taken from the day's inventory with ``--date`` (``ATL03``, ``S2``).
    inputs_arg : str
        Option of explicit input URIs (``granules`` -> ``--granules``).
    report : Product
        The day report product (``--date`` given).
    body : callable
        ``body(run, uris, args) -> summary`` (JSON-ready; the runner adds ``timings_s``).
    description : str
        Help text.
    add_arguments : callable, optional
        Adds the job's own options to the parser.
    check_arguments : callable, optional
        ``check(args, config)`` raises :class:`~seaice_tasks.errors.SeaIceError` on an unusable
        option, before any work.
    day_inputs : callable, optional
        ``day_inputs(lake, day)``: the inputs of a whole-day run (``--date`` without explicit
        inputs) when they are lake partitions rather than the inventory's raw files (default:
        the day's inventory URIs of ``inventory_kind``).
    products : callable, optional
        ``products(args)``: the products this run may write.  After a whole-day run (``--date``
        with the inputs of the day's inventory) the day's partitions of these products whose
        input is no longer among the day's inputs are removed (:meth:`Run.prune_day`); those of
        inputs that failed or were skipped this time stay, listed as ``stale``.
    input_of : callable, optional
        ``input_of(manifest)``: the input (as the day's inputs name it) a committed partition of
        ``products`` was made from, None when it cannot be told (such a partition is never
        removed).  Default (:func:`partition_input`): the manifest's ``source`` for a job whose
        inputs are inventory URIs, the partition key's granule for a job with ``day_inputs``.
    check_lake : callable, optional
        ``check_lake(lake, args, config)`` raises :class:`~seaice_tasks.errors.SeaIceError` when
        what the run needs from the lake is unusable (a damaged model ...), before anything is
        written, not even the day report.
    done : callable, optional
        ``done(run, uris, args) -> {uri: keys}``: the inputs among ``uris`` whose committed
        partitions are current (written from that input, with this config and code version, all
        of them present) and their partitions.  With ``--process new`` the runner keeps those
        partitions and runs the body on the other inputs only; a job without it rejects
        ``--process new``.
    """

    name: str
    config_type: type[ConfigT]
    inventory_kind: str
    inputs_arg: str
    report: Product
    body: Callable[[Run[ConfigT], list[str], argparse.Namespace], dict[str, Any]]
    description: str = ""
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None
    check_arguments: Callable[[argparse.Namespace, ConfigT], None] | None = None
    products: Callable[[argparse.Namespace], tuple[Product, ...]] | None = None
    day_inputs: Callable[[Lake, dt.date], list[str]] | None = None
    done: Callable[[Run[ConfigT], Sequence[str], argparse.Namespace], dict[str, list[PartitionKey]]] | None = None
    input_of: Callable[[Manifest], str | None] | None = None
    check_lake: Callable[[Lake, argparse.Namespace, ConfigT], None] | None = None

    def parser(self) -> argparse.ArgumentParser:
        """The job's argument parser (common options plus the job's own)."""
        p = argparse.ArgumentParser(prog=f"{self.name}.py", description=self.description,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument(f"--{self.inputs_arg}", default="", help="comma-separated input URIs (or @file, one per line)")
        p.add_argument("--date", default="", help=f"UTC day YYYY-MM-DD: take the {self.inventory_kind} inputs of its "
                                                  "inventory (and write the day report)")
        p.add_argument("--lake", default="", help="storage root (default $SEAICE_LAKE)")
        p.add_argument("--config", default="{}", help=f"{self.config_type.__name__} as JSON")
        p.add_argument("--master", default="", help="Spark master when not set by spark-submit")
        p.add_argument("--tasks-per-core", type=int, default=DEFAULT_TASKS_PER_CORE,
                       help="Spark tasks per core the work items are packed into (by weight)")
        p.add_argument("--no-spark", action="store_true", help="run in this process without Spark")
        p.add_argument("--process", choices=PROCESS_MODES, default=PROCESS_ALL,
                       help="all: every input; new: only inputs without current partitions (the "
                            "others are kept as committed)")
        if self.add_arguments is not None:
            self.add_arguments(p)
        return p


class Run(Generic[ConfigT]):
    """One run of a job on the driver: maps work functions, commits partitions, times phases."""

    def __init__(self, job: Job[ConfigT], config: ConfigT, lake: Lake, inputs: InputStore, backend: Backend,
                 token: str | None = None) -> None:
        self.job = job
        self.config = config
        self.lake = lake
        self.inputs = inputs
        self.backend = backend
        self.token = token or uuid.uuid4().hex
        self.timings: dict[str, float] = {}
        #: Partitions committed by this run (for the whole-day pruning).
        self.committed: set[PartitionKey] = set()
        self._lap = time.perf_counter()
        self._spec = RunSpec(
            config_type=function_path(type(config)), config=config.to_json(), lake=lake.root,
            lake_options=lake.storage_options, inputs=inputs.root, inputs_options=dict(inputs.storage_options),
            token=self.token,
        ).to_json()

    def map(self, fn: Callable[[Record, WorkContext[ConfigT]], Any], records: Sequence[Mapping[str, Any]],
            weights: Sequence[float] | None = None) -> list[ItemResult]:
        """Run ``fn`` on every record (one work item each) with the backend; results in input order."""
        texts = [json_text(dict(r)) for r in records]
        self.heartbeat()
        results = []
        for i, text in enumerate(self.backend.map(function_path(fn), self._spec, texts, weights)):
            doc = json.loads(text)
            files = [(PartitionKey.from_relpath(path), FileEntry(**entry)) for path, entry in doc["files"]]
            results.append(ItemResult(index=i, record=json.loads(texts[i]), rows=doc["rows"], files=files,
                                      error=doc["error"]))
        return results

    def heartbeat(self) -> None:
        """Touch this run's staging folder, so ``gc_staging`` sees a live run (age = newest mtime inside)."""
        path = self.lake.path(STAGING_DIR, self.token, HEARTBEAT_NAME)
        self.lake.fs.makedirs(posixpath.dirname(path), exist_ok=True)
        with self.lake.fs.open(path, "wb") as fh:
            fh.write(self.job.name.encode())

    def lap(self, phase: str) -> None:
        """Record the time since the previous lap (or the start) as ``phase``."""
        now = time.perf_counter()
        self.timings[phase] = self.timings.get(phase, 0.0) + now - self._lap
        self._lap = now

    def commit(
        self,
        results: Iterable[ItemResult],
        *,
        exclude: Iterable[PartitionKey] = (),
        info: Callable[[PartitionKey, list[FileEntry]], dict[str, Any]] | None = None,
        config_for: Callable[[PartitionKey], JsonConfig] | None = None,
    ) -> list[Manifest]:
        """Commit every partition the successful ``results`` staged files for, except ``exclude``.

        Files are adopted in name order and the manifest is written last; ``info`` gives each
        manifest's info from its key and entries, ``config_for`` a partition's config (default:
        the job's).
        """
        skip = set(exclude)
        groups: dict[PartitionKey, list[FileEntry]] = {}
        for result in results:
            if result.ok:
                for key, entry in result.files:
                    groups.setdefault(key, []).append(entry)
        manifests = []
        for key in sorted(k for k in groups if k not in skip):
            entries = sorted(groups[key], key=lambda e: e.name)
            writer = self.lake.writer(key, config_for(key) if config_for else self.config, token=self.token)
            for entry in entries:
                writer.adopt(entry)
            writer.info = info(key, entries) if info else {}
            manifests.append(writer.commit())
            self.committed.add(key)
        return manifests

    def prune_day(self, day: dt.date, products: Iterable[Product],
                  inputs: Iterable[str]) -> tuple[list[str], list[str]]:
        """Remove the day's partitions of ``products`` whose input is gone from the day's ``inputs``.

        Called after a whole-day run only, with the day's inputs.  A partition this run did not
        commit is removed when the input it was made from (:attr:`Job.input_of`) is no longer
        among ``inputs`` (a granule taken out of the inventory, a track whose upstream partition
        is gone).  One whose input is still there (the input failed or was skipped this time) or
        cannot be told is the last good output of that input: it stays and is listed as stale,
        so a broken run never erases what an earlier run got right.

        Returns
        -------
        removed, stale : list of str
            Relpaths of the removed partitions and of the kept partitions of an earlier run.
        """
        wanted = set(inputs)
        removed: list[str] = []
        stale: list[str] = []
        for prod in products:
            for key in self.lake.partitions(prod.name, day):
                if key in self.committed:
                    continue
                source = self._input_of(key)
                if source is not None and source not in wanted:
                    self.lake.delete(key)
                    removed.append(key.relpath)
                    log.warning("%s: removed %s (its input %s is no longer among the day's inputs)",
                                self.job.name, key.relpath, source)
                else:
                    stale.append(key.relpath)
                    log.warning("%s: kept %s from an earlier run (its input %s was not produced again by this run: "
                                "failed or skipped)", self.job.name, key.relpath, source or "(unknown)")
        return removed, stale

    def _input_of(self, key: PartitionKey) -> str | None:
        """The input a committed partition was made from (None: unknown, or its manifest is unreadable)."""
        try:
            manifest = self.lake.manifest(key)
        except StorageError as exc:
            log.warning("%s: %s: manifest unreadable (%s); its input is unknown", self.job.name, key.relpath, exc)
            return None
        if manifest is None:
            return None
        return (self.job.input_of or functools.partial(partition_input, self.job))(manifest)

    def write_report(self, day: dt.date, summary: Mapping[str, Any]) -> None:
        """Commit the job's day report: the summary without timings; skips, failures and stale partitions
        (kept from an earlier run because their input failed or was skipped) in the manifest."""
        doc = {k: v for k, v in summary.items() if k != "timings_s"}
        key = self.job.report.key(date=day)
        report = BytesOutput(key, REPORT_FILE, json.dumps(doc, sort_keys=True, indent=1).encode())
        write_partition(self.lake, key, [report], self.config,
                        {"skipped": summary.get("skipped", []), "failed": summary.get("failed", []),
                         "stale": summary.get("stale", [])})

    def close(self) -> None:
        """Remove whatever this run staged and did not commit."""
        self.lake.discard_staging(self.token)


def partition_input(job: Job[Any], manifest: Manifest) -> str | None:
    """The input a committed partition of ``job`` was made from, as the day's inputs name it (default rule).

    A job whose inputs are the inventory's URIs records each partition's file as ``source`` in
    its manifest info; a job with ``day_inputs`` takes granule keys, which its partitions carry
    in their key.  None when the partition does not say.
    """
    if job.day_inputs is None:
        source = manifest.info.get("source")
        return source if isinstance(source, str) and source else None
    return None if manifest.key.granule is None else str(manifest.key.granule)


def job_day_inputs(job: Job[Any], lake: Lake, day: dt.date) -> list[str]:
    """The inputs of a whole-day run: ``job.day_inputs`` or the day's inventory URIs of its kind."""
    return job.day_inputs(lake, day) if job.day_inputs is not None else inventory_uris(lake, day, job.inventory_kind)


def _previous_report(lake: Lake, job: Job[Any], day: dt.date) -> dict[str, Any]:
    """The day's committed report document of ``job`` ({} when there is none or it is unreadable)."""
    key = job.report.key(date=day)
    try:
        if lake.manifest(key) is None:
            return {}
        doc = json.loads(lake.open_file(key, REPORT_FILE))
    except (OSError, StorageError, ValueError) as exc:
        log.warning("%s: previous report %s unreadable (%s); kept inputs' skips are not carried over",
                    job.name, key.relpath, exc)
        return {}
    return doc if isinstance(doc, dict) else {}


def _add_kept(summary: dict[str, Any], kept: Mapping[str, Sequence[PartitionKey]],
              previous: Mapping[str, Any]) -> None:
    """Make a ``--process new`` summary describe the whole day: the kept partitions join ``partitions``
    (and are listed in ``kept``), and the previous report's skips and flags of kept inputs are carried over."""
    kept_paths = sorted(k.relpath for keys in kept.values() for k in keys)
    summary["kept"] = kept_paths
    summary["partitions"] = sorted({*summary.get("partitions", []), *kept_paths})
    for name in CARRIED_REPORT_LISTS:
        carried = [e for e in previous.get(name, []) if isinstance(e, dict) and e.get("uri") in kept]
        if carried or name in summary:
            merged = [*summary.get(name, []), *carried]
            summary[name] = unique_entries(merged)


def load_job(name: str) -> Job[Any]:
    """The ``JOB`` of a job script, run with :func:`runpy.run_path` (a job script is never imported).

    For callers that run a job in process (the demo, experiments): ``run_job(load_job("resample"), ...)``.
    """
    import runpy

    from seaice_tasks.spark_jobs import job_script

    job: Job[Any] = runpy.run_path(str(job_script(name)), run_name=f"seaice_job_{name}")["JOB"]
    return job


def run_job(
    job: Job[ConfigT],
    uris: Sequence[str],
    lake: Lake,
    config: ConfigT | None = None,
    *,
    day: dt.date | str | None = None,
    inputs: InputStore | None = None,
    backend: Backend | None = None,
    check: bool = True,
    whole_day: bool = False,
    process: str = PROCESS_ALL,
    **options: Any,
) -> dict[str, Any]:
    """Run a job on explicit inputs in this process (or on ``backend``); returns its summary.

    ``options`` are the job's own arguments (``unet_model=...``), by their ``argparse`` names;
    ``check`` runs the job's argument and lake checks first (:func:`main` has already run them).
    The day report is written when ``day`` is given; ``whole_day`` (the inputs are the day's
    whole inventory; none given: :func:`job_day_inputs`) also removes the day's partitions whose
    input is no longer among them (``removed`` in the summary) and lists those of inputs that
    failed or were skipped this time, kept from an earlier run (``stale``, :meth:`Run.prune_day`).
    ``process="new"`` (``--process new``) keeps the partitions of the inputs the job's ``done``
    finds current (they count as produced by this run: ``kept`` in the summary,
    also listed in ``partitions``; the previous report's skips and flags of those inputs are
    carried over) and runs the body on the other inputs.  If the body itself breaks, the report
    still records the error.

    Raises
    ------
    SeaIceError
        When an option, the config or what the run needs from the lake is unusable (before
        anything is written).
    """
    args = job.parser().parse_args([])
    for name, value in options.items():
        if not hasattr(args, name):
            raise ConfigError(f"{job.name}: unknown option {name!r}")
        setattr(args, name, value)
    cfg = config if config is not None else job.config_type()
    the_day = parse_day(day) if isinstance(day, str) else day
    args.date = the_day.isoformat() if the_day is not None else ""
    if process not in PROCESS_MODES:
        raise ConfigError(f"{job.name}: --process: one of {', '.join(PROCESS_MODES)}, got {process!r}")
    args.process = process
    if check and job.check_arguments is not None:
        job.check_arguments(args, cfg)
    if args.process == PROCESS_NEW and job.done is None:
        raise ConfigError(f"{job.name}: --process {PROCESS_NEW}: this job always processes all its inputs")
    if check and job.check_lake is not None:
        job.check_lake(lake, args, cfg)
    if whole_day and not uris and the_day is not None:
        uris = job_day_inputs(job, lake, the_day)
    run = Run(job, cfg, lake, inputs if inputs is not None else inputs_from_env(), backend or LocalBackend())
    try:
        removed = lake.gc_staging(versions=False)  # staging of dead runs (never a live one: see heartbeat)
        if removed:
            log.info("%s: removed %d staging folder(s) of dead runs", job.name, len(removed))
    except (OSError, StorageError) as exc:  # a failed clean-up must not stop the day
        log.warning("%s: staging clean-up failed: %s", job.name, exc)
    day_inputs = list(dict.fromkeys(uris))  # an input listed twice runs once
    todo = list(day_inputs)
    kept: dict[str, list[PartitionKey]] = {}
    if args.process == PROCESS_NEW and job.done is not None:
        kept = job.done(run, todo, args)
        todo = [u for u in todo if u not in kept]
        run.committed.update(k for keys in kept.values() for k in keys)  # not pruned: still the day's
        log.info("%s: --process new: %d input(s) already processed (kept), %d to process",
                 job.name, len(kept), len(todo))
    try:
        try:
            previous = _previous_report(lake, job, the_day) if kept and the_day is not None else {}
            summary = job.body(run, todo, args)
            if kept:
                _add_kept(summary, kept, previous)
        except Exception as exc:
            if the_day is not None:  # the day's report says the run broke, and where
                run.write_report(the_day, {"partitions": [], "skipped": [], "failed": [
                    {"reason": f"{job.name} job error: {type(exc).__name__}: {exc}"}]})
            raise
        if whole_day and the_day is not None and job.products is not None:
            summary["removed"], summary["stale"] = run.prune_day(the_day, job.products(args), day_inputs)
        summary["timings_s"] = dict(run.timings)
        if the_day is not None:
            run.write_report(the_day, summary)
    finally:
        run.close()
    return summary


def main(job: Job[Any], argv: Sequence[str] | None = None) -> int:
    """Entry point of a job script (``spark-submit`` or ``--no-spark``); prints one ``SEAICE_RESULT`` line."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    install_secret_filter()  # no log line of the job shows a secret (executors' included: same handlers)
    args = job.parser().parse_args(argv)
    try:
        config = job.config_type.from_json(args.config)
        day = parse_day(args.date) if args.date else None
        if args.tasks_per_core < 1:
            raise ConfigError(f"--tasks-per-core: must be >= 1, got {args.tasks_per_core}")
        if job.check_arguments is not None:
            job.check_arguments(args, config)
        uris = split_uris(getattr(args, job.inputs_arg.replace("-", "_")))
        # a job that reads the lake (its day's inputs or upstream partitions) needs one; explicit raw inputs may
        # start a new lake
        lake = open_lake(args.lake, must_exist=job.day_inputs is not None or (day is not None and not uris),
                         writable=True)
        if job.check_lake is not None:
            job.check_lake(lake, args, config)
        inputs = inputs_from_env()
        whole_day = day is not None and not uris
        if day is not None and not uris:
            uris = job_day_inputs(job, lake, day)
    except (SeaIceError, OSError) as exc:  # OSError: an @file of inputs that cannot be read
        print(f"{job.name}: error: {redact(str(exc), secrets_from_env())}", file=sys.stderr, flush=True)
        return EXIT_BAD_ARGUMENT
    backend: Backend = (LocalBackend() if args.no_spark
                        else SparkBackend(spark_session(f"seaice-{job.name}", args.master), args.tasks_per_core))
    try:
        summary = run_job(job, uris, lake, config, day=day, inputs=inputs, backend=backend, check=False,
                          whole_day=whole_day, process=args.process,
                          **{k: v for k, v in vars(args).items() if k not in _COMMON_ARGS})
    finally:
        backend.close()
    for skip in summary.get("skipped", []):  # one line each, for whoever reads the task log
        log.warning("%s: skipped: %s", job.name, skip.get("reason", skip))
    print(RESULT_MARKER + json.dumps(summary, sort_keys=True), flush=True)
    if summary.get("failed"):  # committed what it could; the exit status shows the failures (the DAG too)
        print(f"{job.name}: {len(summary['failed'])} failure(s): "
              + "; ".join(str(f.get("reason", ""))[:200] for f in summary["failed"][:5]), file=sys.stderr, flush=True)
        return EXIT_FAILED
    return EXIT_OK


_COMMON_ARGS: Final[frozenset[str]] = frozenset({"date", "lake", "config", "master", "tasks_per_core", "no_spark",
                                                  "process"})
