"""Benchmark: IS2 x S2 colocation -- labelled segments per second per core, drift-search share, Spark scaling.

Usage::

    .venv/bin/python benchmarks/colocate_benchmark.py --part all --json var/bench/colocate_benchmark.json

Two parts (``--part throughput|spark|all``); the day is simulated once into ``--work`` (default
``var/bench``: ``colocday_<N>x40km_scene20km_seed<S>/``, reused when its ``.complete`` marker
exists) and prepared there as the job's inputs: ``sim/`` (the simulated catalog) and ``lake/``
(the day's inventory from ``run_discover``, its ``segments_2m`` tracks from the resample job
and its ``s2_labels`` scenes from the S2 label job, both run in process).  Every colocation run
below starts from a fresh copy of that lake (the copy is not timed):

1. **throughput** -- single core (OMP/MKL/OPENBLAS/... threads forced to 1 before numpy is
   imported): the colocation job ``run_job(colocate.JOB, day_tracks(lake, day), ...)`` in this
   process (``LocalBackend``) on the day's tracks: load and map-reduce (the job's own
   ``timings_s``) and total wall time; labelled segments per second (the sum of the pairs'
   ``n_labelled``) over map-reduce and over the total.  The drift search
   (``seaice_tasks.is2.drift.estimate_drift``) and the label transfer + features
   (``colocate_work._transfer``) are timed by wrapping them in the work module during the run,
   so their share of map-reduce is measured, not estimated; the rest of map-reduce is reading
   the rasters and tracks, projecting and pairing them, staging and committing.
2. **spark** -- the Spark job ``seaice_tasks/spark_jobs/colocate.py`` in whole-day mode
   (``--date D --lake COPY``) on the same day (default 4 granules x 40 km with one 20 km scene
   each) with ``--master local[1]`` and ``local[2]``: load, map-reduce and total wall time (JVM
   start included) and the speed-ups local[2] / local[1], as in the papers' Tables II and V;
   plus the same job with ``--no-spark`` in one process.  Target: map-reduce >= 1.7x on 2 cores.

All timings of one part are taken back to back in the same run; compare the RATIOS, not the
absolute numbers, which depend on the machine and on whatever else runs on it.
"""

from __future__ import annotations

from _bench import (
    REPO_ROOT,
    Timing,
    best_per_master,
    pin_threads,
    run_job_once,
    run_parts,
    spark_report,
    table,
    timed,
)

# Single-threaded numerical libraries: must be set before numpy is imported (also inherited by
# the child processes and Spark Python workers started from here, so 2 Spark cores = 2 threads).
pin_threads()

import argparse  # noqa: E402
import contextlib  # noqa: E402
import datetime as dt  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Final  # noqa: E402

from seaice_tasks.catalog import run_discover  # noqa: E402
from seaice_tasks.config import parse_day  # noqa: E402
from seaice_tasks.is2 import colocate_work as work_module  # noqa: E402
from seaice_tasks.is2.colocate import ColocateConfig  # noqa: E402
from seaice_tasks.is2.resample import ResampleConfig  # noqa: E402
from seaice_tasks.s2.scene_labels import S2LabelConfig  # noqa: E402
from seaice_tasks.sim.day import simulate_day  # noqa: E402
from seaice_tasks.sim.geometry import SimConfig  # noqa: E402
from seaice_tasks.spark_jobs import colocate, resample, s2_labels  # noqa: E402
from seaice_tasks.spark_jobs.runner import run_job  # noqa: E402
from seaice_tasks.storage import InputStore, Lake  # noqa: E402

SPARK_JOB: Final[Path] = REPO_ROOT / "seaice_tasks" / "spark_jobs" / "colocate.py"
COMPLETE_MARKER: Final[str] = ".complete"
PARTS: Final[tuple[str, ...]] = ("throughput", "spark")

DEFAULT_WORK: Final[Path] = Path("var/bench")
DEFAULT_DATE: Final[str] = "2019-11-04"
DEFAULT_SEED: Final[int] = 0
DEFAULT_GRANULES: Final[int] = 4
DEFAULT_KM: Final[float] = 40.0
DEFAULT_SCENE_KM: Final[float] = 20.0
DEFAULT_REPEATS: Final[int] = 2
DEFAULT_MASTERS: Final[tuple[str, ...]] = ("local[1]", "local[2]")
#: Processes of ``simulate_day`` (the cached inputs do not depend on it).
SIM_WORKERS: Final[int] = 2

TARGET_MAP_REDUCE_SPEEDUP: Final[float] = 1.7


# ----------------------------------------------------------------------------------------------
# Inputs (simulated and prepared once, reused from the work folder)
# ----------------------------------------------------------------------------------------------


def day_dir(work: Path, granules: int, km: float, scene_km: float, seed: int) -> Path:
    """Cache folder of a prepared day (``sim/`` and ``lake/``) with one scene per granule."""
    return work / f"colocday_{granules}x{km:g}km_scene{scene_km:g}km_seed{seed}"


def ensure_lake(args: argparse.Namespace) -> Path:
    """Simulate the day and build the colocation's input lake unless cached; the lake folder.

    The lake holds the day's inventory (``run_discover``), ``segments_2m`` (resample job) and
    ``s2_labels`` (S2 label job, default configs), the job runs made in this process.
    """
    out = day_dir(args.work, args.granules, args.km, args.scene_km, args.seed)
    lake_dir = out / "lake"
    if (out / COMPLETE_MARKER).exists():
        print(f"reusing {out}", flush=True)
        return lake_dir
    shutil.rmtree(out, ignore_errors=True)
    print(f"simulating day {args.date}, {args.granules} x {args.km:g} km, one {args.scene_km:g} km scene each, "
          f"seed {args.seed} -> {out} ...", flush=True)
    sim = simulate_day(SimConfig(date=args.date, seed=args.seed, granules=args.granules, km=args.km,
                                 scenes_per_granule=1, scene_km=args.scene_km), out / "sim", workers=SIM_WORKERS)
    print(f"  simulated in {sim.seconds:.1f} s; discover, resample and S2 labels into {lake_dir} ...", flush=True)
    t0 = time.perf_counter()
    run_discover(args.date, catalog=str(sim.catalog), lake=str(lake_dir))
    lake = Lake(lake_dir)
    inputs = InputStore(str(sim.catalog))
    steps = (
        (resample.JOB, sim.atl03, ResampleConfig()),
        (s2_labels.JOB, sim.scenes, S2LabelConfig()),
    )
    for job, paths, config in steps:
        summary = run_job(job, [str(p) for p in paths], lake, config, day=args.date, inputs=inputs)
        if summary.get("failed"):
            raise RuntimeError(f"preparing the lake: {job.name} failed: {summary['failed']}")
    if not colocate.day_tracks(lake, parse_day(args.date)):
        raise RuntimeError(f"preparing the lake: no 2 m track on {args.date} in {lake_dir}")
    (out / COMPLETE_MARKER).write_text(sim.summary() + f"\nlake prepared in {time.perf_counter() - t0:.1f} s\n")
    print(f"  lake prepared in {time.perf_counter() - t0:.1f} s", flush=True)
    return lake_dir


@contextlib.contextmanager
def lake_copy(lake_dir: Path, work: Path) -> Iterator[Path]:
    """A fresh copy of the prepared lake under ``work`` (removed afterwards)."""
    dest = Path(tempfile.mkdtemp(prefix="lake_colocate_", dir=work))
    try:
        shutil.copytree(lake_dir, dest, dirs_exist_ok=True)
        yield dest
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def n_labelled(summary: dict[str, Any]) -> int:
    """Labelled segments of a colocation run: the sum of its pairs' ``n_labelled``."""
    return sum(int(p.get("n_labelled") or 0) for p in summary["pairs"])


def check_summary(summary: dict[str, Any], what: str) -> None:
    """A run with failures or without any labelled segment measures nothing useful: stop."""
    if summary["failed"]:
        raise RuntimeError(f"{what}: colocation reported failures: {summary['failed']}")
    if not summary["pairs"]:
        raise RuntimeError(f"{what}: no (granule, scene) pair on this day ({summary['candidates']} candidates, "
                           f"skipped {summary['skipped']}): nothing to measure; try more granules or another seed")


# ----------------------------------------------------------------------------------------------
# 1. Throughput
# ----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def timing_calls(module: Any, names: Sequence[str]) -> Iterator[dict[str, dict[str, float]]]:
    """Wrap the module-level functions ``names`` of ``module``; their summed wall time and calls.

    The work function looks them up in its module at call time, so the wrappers see every call
    of an in-process (``LocalBackend``) run.  The originals are put back on exit.
    """
    stats: dict[str, dict[str, float]] = {name: {"wall_s": 0.0, "calls": 0} for name in names}
    originals = {name: getattr(module, name) for name in names}

    def wrap(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed_call(*a: Any, **kw: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                stats[name]["wall_s"] += time.perf_counter() - t0
                stats[name]["calls"] += 1

        return timed_call

    try:
        for name, fn in originals.items():
            setattr(module, name, wrap(name, fn))
        yield stats
    finally:
        for name, fn in originals.items():
            setattr(module, name, fn)


#: Measured pieces of the work function: the drift search and the label transfer + features.
WRAPPED: Final[dict[str, str]] = {"estimate_drift": "drift search (estimate_drift)",
                                  "_transfer": "label transfer + features (_transfer)"}


def colocate_in_process(lake_dir: Path, day: dt.date, work: Path) -> tuple[Timing, dict[str, Any], dict[str, Any]]:
    """One in-process run on a fresh copy of the lake: its timing, summary and wrapped-call times."""
    with lake_copy(lake_dir, work) as copy, timing_calls(work_module, tuple(WRAPPED)) as calls:
        lake = Lake(copy)
        tracks = colocate.day_tracks(lake, day)
        t, summary = timed(lambda: run_job(colocate.JOB, tracks, lake, ColocateConfig(), day=day), 1)
    return t, summary, {k: dict(v) for k, v in calls.items()}


def run_throughput(args: argparse.Namespace) -> dict[str, Any]:
    """Part 1: the colocation job in this process, single core; drift search vs the rest."""
    lake_dir = ensure_lake(args)
    day = parse_day(args.date)
    tracks = colocate.day_tracks(Lake(lake_dir), day)
    print(f"\n[throughput] {len(tracks)} granule(s) with 2 m tracks, in process (LocalBackend), "
          f"{args.repeats} repeat(s), a fresh lake copy each", flush=True)
    best: tuple[Timing, dict[str, Any], dict[str, Any]] | None = None
    for _ in range(max(args.repeats, 1)):
        run = colocate_in_process(lake_dir, day, args.work)
        check_summary(run[1], "throughput")
        print(f"  total {run[0].wall_s:.2f} s (map-reduce {run[1]['timings_s']['map_reduce']:.2f} s, drift "
              f"{run[2]['estimate_drift']['wall_s']:.2f} s)", flush=True)
        if best is None or run[0].wall_s < best[0].wall_s:
            best = run
    assert best is not None
    t, summary, calls = best
    load_s = float(summary["timings_s"]["load"])
    mr_s = float(summary["timings_s"]["map_reduce"])
    labelled = n_labelled(summary)
    drift_s = calls["estimate_drift"]["wall_s"]
    transfer_s = calls["_transfer"]["wall_s"]
    return {
        "lake": str(lake_dir),
        "date": args.date,
        "granules": len(tracks),
        "candidates": int(summary["candidates"]),
        "pairs": len(summary["pairs"]),
        "partitions": len(summary["partitions"]),
        "skipped": len(summary["skipped"]),
        "n_labelled": labelled,
        "repeats": args.repeats,
        "load_s": load_s,
        "map_reduce_s": mr_s,
        "total_s": t.wall_s,
        "cpu_over_wall": t.cpu_s / t.wall_s,
        "calls": calls,
        "drift_s": drift_s,
        "transfer_s": transfer_s,
        "rest_of_map_reduce_s": max(mr_s - drift_s - transfer_s, 0.0),
        "share_drift_in_map_reduce": drift_s / mr_s,
        "share_transfer_in_map_reduce": transfer_s / mr_s,
        "labelled_per_s_map_reduce": labelled / mr_s,
        "labelled_per_s_total": labelled / t.wall_s,
        "shift_sources": {s: sum(p["shift_source"] == s for p in summary["pairs"])
                          for s in sorted({p["shift_source"] for p in summary["pairs"]})},
    }


def report_throughput(r: dict[str, Any]) -> str:
    """Table of part 1."""
    mr = r["map_reduce_s"]
    n = r["n_labelled"]

    def row(step: str, wall: float, per_s: bool = False) -> list[str]:
        return [step, f"{wall:.2f}", f"{100 * wall / mr:.0f} %", f"{n / wall:,.0f}" if per_s else ""]

    rows = [
        row("run_job total (in process)", r["total_s"], per_s=True),
        row("load (driver: tracks, scenes, candidates)", r["load_s"]),
        row("map-reduce", mr, per_s=True),
        row(f"  {WRAPPED['estimate_drift']}, {r['calls']['estimate_drift']['calls']:.0f} call(s)", r["drift_s"]),
        row(f"  {WRAPPED['_transfer']}, {r['calls']['_transfer']['calls']:.0f} call(s)", r["transfer_s"]),
        row("  rest (read rasters/tracks, project, pair, stage, commit)", r["rest_of_map_reduce_s"]),
    ]
    head = (f"## throughput: colocation of {r['date']}, {r['granules']} granule(s), {r['candidates']} candidate(s) "
            f"-> {r['pairs']} pair(s), {n:,} labelled segments, in process, single core, best of {r['repeats']}")
    body = table(["step", "wall (s)", "of map-reduce", "labelled segments/s"], rows)
    foot = (f"{r['labelled_per_s_map_reduce']:,.0f} labelled segments/s per core over map-reduce, "
            f"{r['labelled_per_s_total']:,.0f} over the whole run (cpu/wall {r['cpu_over_wall']:.2f}); the drift "
            f"search is {100 * r['share_drift_in_map_reduce']:.0f} % of map-reduce, the label transfer "
            f"{100 * r['share_transfer_in_map_reduce']:.0f} %; shift sources {r['shift_sources']}")
    return f"{head}\n\n{body}\n\n{foot}"


# ----------------------------------------------------------------------------------------------
# 2. Spark
# ----------------------------------------------------------------------------------------------


def run_colocate(master: str | None, lake_dir: Path, date: str, work: Path) -> dict[str, Any]:
    """One run of the colocation job (``master`` ``None``: ``--no-spark``); its timings."""
    print(f"  {master or 'no Spark (one process)'}: ...", flush=True)
    run = run_job_once(SPARK_JOB, ["--date", date], master, work, lake_from=lake_dir)
    summary, wall = run["summary"], run["wall_s"]
    check_summary(summary, master or "--no-spark")
    timings = summary["timings_s"]
    print(f"    load {timings['load']:.2f} s, map-reduce {timings['map_reduce']:.2f} s, total {wall:.2f} s, "
          f"{len(summary['pairs'])} pairs, {n_labelled(summary):,} labelled segments", flush=True)
    return {
        "master": master or "none",
        "load_s": float(timings["load"]),
        "map_reduce_s": float(timings["map_reduce"]),
        "total_s": wall,
        "candidates": int(summary["candidates"]),
        "pairs": len(summary["pairs"]),
        "partitions": len(summary["partitions"]),
        "n_labelled": n_labelled(summary),
        "skipped": len(summary["skipped"]),
        "loadavg_1min_before": run["loadavg_1min_before"],
    }


def run_spark(args: argparse.Namespace) -> dict[str, Any]:
    """Part 2: the colocation job on local[1] and local[2] (each a fresh JVM and lake copy)."""
    lake_dir = ensure_lake(args)
    tracks = colocate.day_tracks(Lake(lake_dir), parse_day(args.date))
    repeats = args.spark_repeats if args.spark_repeats is not None else args.repeats
    print(f"\n[spark] whole day {args.date}: {len(tracks)} granule(s) with 2 m tracks, masters "
          f"{', '.join(args.masters)}, best of {repeats}", flush=True)
    serial = run_colocate(None, lake_dir, args.date, args.work) if args.no_spark_baseline else None
    runs: list[dict[str, Any]] = []
    for _ in range(max(repeats, 1)):
        runs.extend(run_colocate(m, lake_dir, args.date, args.work) for m in args.masters)
    best = best_per_master(runs, args.masters)
    return {
        "lake": str(lake_dir),
        "date": args.date,
        "granules": len(tracks),
        "candidates": best[0]["candidates"],
        "pairs": best[0]["pairs"],
        "n_labelled": best[0]["n_labelled"],
        "repeats": repeats,
        "runs": runs,
        "best": best,
        "no_spark": serial,
        "baseline": args.masters[0],
        "target_map_reduce_speedup_min": TARGET_MAP_REDUCE_SPEEDUP,
        "target_met": best[-1]["speedup_map_reduce"] >= TARGET_MAP_REDUCE_SPEEDUP,
    }


def report_spark(r: dict[str, Any]) -> str:
    """Table of part 2 in the style of the papers' Tables II / V."""
    head = (f"## spark: colocation of {r['date']} (whole day), {r['granules']} granule(s), {r['candidates']} "
            f"work items (granule x scene candidates) -> {r['pairs']} pairs, {r['n_labelled']:,} labelled "
            f"segments; best of {r['repeats']}, speed-up = T({r['baseline']}) / T(config)")
    per_run = f"labelled segments per run: {', '.join(format(b['n_labelled'], ',') for b in r['best'])}"
    return spark_report(r, head, per_run, "colocation work", TARGET_MAP_REDUCE_SPEEDUP)


# ----------------------------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """Command-line arguments."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                epilog="See docs/benchmarks.md for measured numbers.")
    p.add_argument("--part", choices=(*PARTS, "all"), default="all", help="which part(s) to run")
    p.add_argument("--work", type=Path, default=DEFAULT_WORK, help="cache of simulated inputs (default var/bench)")
    p.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    p.add_argument("--date", default=DEFAULT_DATE, help="UTC day of the simulated day")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the simulated day")
    p.add_argument("--granules", type=int, default=DEFAULT_GRANULES,
                   help="granules of the simulated day, one scene each (parts 1 and 2)")
    p.add_argument("--km", type=float, default=DEFAULT_KM, help="along-track km per granule")
    p.add_argument("--scene-km", type=float, default=DEFAULT_SCENE_KM, help="side of the scenes (km, 10 m px)")
    p.add_argument("--repeats", type=int, default=DEFAULT_REPEATS,
                   help="runs per measurement, fastest kept (1; and 2 unless --spark-repeats)")
    p.add_argument("--spark-repeats", type=int, default=None,
                   help="runs per master, fastest kept (2; default: --repeats)")
    p.add_argument("--masters", type=lambda s: tuple(s.split(",")), default=DEFAULT_MASTERS,
                   help="comma-separated Spark masters; the first is the speed-up baseline (2)")
    p.add_argument("--no-spark-baseline", action=argparse.BooleanOptionalAction, default=True,
                   help="also time the job with --no-spark in one process (2)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected parts, print their tables and ratios, optionally write JSON."""
    args = build_parser().parse_args(argv)
    parts = PARTS if args.part == "all" else (args.part,)
    runners = {
        "throughput": (run_throughput, report_throughput),
        "spark": (run_spark, report_spark),
    }
    run_parts("colocation benchmark", args, parts, runners, argv, libraries=("numpy", "rasterio"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
