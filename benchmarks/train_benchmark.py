"""Benchmark: segment-classifier training (1 vs 2 processes, Horovod and torchrun) and inference.

Usage::

    .venv/bin/python benchmarks/train_benchmark.py --part all --json var/bench/train_benchmark.json

Two parts (``--part training|inference|all``):

1. **training** -- a learnable synthetic training set (``tests/training_data.py``: 3 tracks of
   ``--bins`` segments, block split) committed to a lake under ``--work``; the notebook LSTM
   (batch 32 per process) trained ``--epochs`` epochs by ``single`` (one process), ``horovod``
   with 1 and 2 processes (``horovodrun -np N -H localhost:N --gloo``) and ``torchrun`` with 1
   and 2 processes, each in a fresh copy of that lake.  From each model card: the training
   pass per epoch (first epoch dropped when there are 3 or more), samples per second (training
   windows / pass time: the global rate), the share of the pass spent waiting for the next
   batch from the loader (the papers' bottleneck; target < 10 %), and the scaling efficiency
   T(1 process) / (2 T(2 processes)) per launcher (the paper: 7.25x on 8 GPUs = 91 %).
2. **inference** -- the colocation benchmark's prepared day (``colocday_<N>x40km_...``, built
   by ``colocate_benchmark.py`` when missing) with a small promoted model: the classify job in
   this process (segments per second per core) and ``spark-submit`` with ``local[1]`` and
   ``local[2]`` (best of 2, target map-reduce speed-up >= 1.7x), plus ``--no-spark``.

Threads are pinned to 1 (before numpy is imported) in this process and every child, so
``2 processes`` means 2 single-threaded ranks on the 2 cores.
"""

from __future__ import annotations

import sys
from pathlib import Path

from _bench import (
    REPO_ROOT,
    best_per_master,
    pin_threads,
    run_job_once,
    run_parts,
    spark_report,
    table,
    timed,
    verdict,
)

pin_threads()
sys.path.insert(0, str(REPO_ROOT))  # tests/training_data.py

import argparse  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from typing import Any, Final  # noqa: E402

from seaice_tasks.config import parse_day  # noqa: E402
from seaice_tasks.is2.classify import ClassifyConfig  # noqa: E402
from seaice_tasks.spark_jobs.runner import load_job, run_job  # noqa: E402
from seaice_tasks.storage import Lake  # noqa: E402
from seaice_tasks.train.launch import run_training  # noqa: E402
from seaice_tasks.train.promotion import promote  # noqa: E402
from seaice_tasks.train.segments import SegmentTrainConfig, train_segment_model  # noqa: E402
from tests.training_data import commit_learnable_training_set  # noqa: E402

PARTS: Final[tuple[str, ...]] = ("training", "inference")
DEFAULT_WORK: Final[Path] = REPO_ROOT / "var" / "bench"
#: (label, backend, processes) of the training runs.
TRAINING_RUNS: Final[tuple[tuple[str, str, int], ...]] = (
    ("single process", "single", 1), ("horovod -np 1", "horovod", 1), ("horovod -np 2", "horovod", 2),
    ("torchrun 1", "torchrun", 1), ("torchrun 2", "torchrun", 2),
)
TARGET_DATA_WAIT_SHARE: Final[float] = 0.10
TARGET_MAP_REDUCE_SPEEDUP: Final[float] = 1.7
SPARK_JOB: Final[Path] = REPO_ROOT / "seaice_tasks" / "spark_jobs" / "classify.py"
DEFAULT_DATE: Final[str] = "2019-11-04"


# ----------------------------------------------------------------------------------------------
# 1. Training
# ----------------------------------------------------------------------------------------------


def ensure_training_lake(work: Path, bins: int) -> Path:
    """A lake holding the synthetic training set (built once per ``bins``)."""
    lake = work / f"trainset_{bins}"
    if not (lake / ".complete").exists():
        shutil.rmtree(lake, ignore_errors=True)
        commit_learnable_training_set(Lake(lake), n_bins=bins)
        (lake / ".complete").write_text("ok\n")
    return lake


def _steady(values: Sequence[float]) -> float:
    """Mean per-epoch value without the first epoch (warm-up) when there are 3 or more."""
    vals = list(values[1:] if len(values) >= 3 else values)
    return sum(vals) / len(vals)


def run_training_part(args: argparse.Namespace) -> dict[str, Any]:
    """Part 1: the same training with every launcher and process count."""
    source = ensure_training_lake(args.work, args.bins)
    config = SegmentTrainConfig(epochs=args.epochs)
    runs = []
    print(f"\n[training] notebook LSTM, {args.epochs} epochs, batch 32 per process, lake {source}", flush=True)
    for label, backend, nproc in TRAINING_RUNS:
        with tempfile.TemporaryDirectory(dir=args.work) as tmp:
            lake = Path(tmp) / "lake"
            shutil.copytree(source, lake)
            if backend == "single":
                t, result = timed(lambda lake=lake: train_segment_model(Lake(lake), config), 1)
            else:
                t, result = timed(lambda lake=lake, b=backend, n=nproc: run_training(b, n, str(lake), config), 1)
        card_run = result["run"]
        pass_s = _steady(card_run["train_pass_s"])
        windows = int(card_run["train_windows"])
        entry = {"label": label, "backend": backend, "processes": nproc, "wall_s": t.wall_s,
                 "train_pass_s": pass_s, "samples_per_s": windows / pass_s,
                 "data_wait_share": _steady(card_run["data_wait_s"]) / pass_s,
                 "test_accuracy": result["metrics"]["test"]["accuracy"], "train_windows": windows}
        print(f"  {label}: pass {pass_s:.2f} s/epoch, {entry['samples_per_s']:,.0f} samples/s, data wait "
              f"{100 * entry['data_wait_share']:.1f} %, accuracy {entry['test_accuracy']:.4f}", flush=True)
        runs.append(entry)
    by = {(r["backend"], r["processes"]): r for r in runs}
    scaling = {b: by[(b, 1)]["train_pass_s"] / (2 * by[(b, 2)]["train_pass_s"]) for b in ("horovod", "torchrun")}
    return {"epochs": args.epochs, "bins": args.bins, "runs": runs, "scaling_efficiency_2": scaling,
            "max_data_wait_share": max(r["data_wait_share"] for r in runs),
            "target_data_wait_met": max(r["data_wait_share"] for r in runs) < TARGET_DATA_WAIT_SHARE}


def report_training(r: dict[str, Any]) -> str:
    """Table of part 1."""
    rows = [[e["label"], str(e["processes"]), f"{e['train_pass_s']:.2f}", f"{e['samples_per_s']:,.0f}",
             f"{100 * e['data_wait_share']:.1f} %", f"{e['test_accuracy']:.4f}", f"{e['wall_s']:.1f}"]
            for e in r["runs"]]
    head = (f"## training: notebook LSTM, {r['runs'][0]['train_windows']:,} training windows, {r['epochs']} epochs, "
            "batch 32 per process")
    body = table(["launcher", "processes", "pass (s/epoch)", "samples/s", "data wait", "held-out acc",
                  "wall (s)"], rows)
    eff = r["scaling_efficiency_2"]
    foot = (f"scaling efficiency at 2 processes: horovod {100 * eff['horovod']:.0f} %, torchrun "
            f"{100 * eff['torchrun']:.0f} % (T1 / (2 T2)); largest data-wait share "
            f"{100 * r['max_data_wait_share']:.1f} % (target < {100 * TARGET_DATA_WAIT_SHARE:.0f} %: "
            f"{verdict(r['target_data_wait_met'])})")
    return f"{head}\n\n{body}\n\n{foot}"


# ----------------------------------------------------------------------------------------------
# 2. Inference
# ----------------------------------------------------------------------------------------------


def ensure_inference_lake(args: argparse.Namespace) -> Path:
    """The colocation benchmark's prepared day plus a small promoted model (built once)."""
    day_dir = args.work / f"colocday_{args.granules}x40km_scene20km_seed0"
    lake = args.work / f"classifyday_{args.granules}x40km"
    if (lake / ".complete").exists():
        return lake
    if not (day_dir / ".complete").exists():
        import subprocess

        subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "colocate_benchmark.py"), "--part",
                        "throughput", "--granules", str(args.granules), "--work", str(args.work)], check=True)
    shutil.rmtree(lake, ignore_errors=True)
    shutil.copytree(day_dir / "lake", lake)
    commit_learnable_training_set(Lake(lake), n_bins=1500, name="bench")
    result = train_segment_model(Lake(lake), SegmentTrainConfig(training_set="bench", epochs=1))
    promote(Lake(lake), "seaice-is2-lstm", str(result["version"]))
    (lake / ".complete").write_text("ok\n")
    return lake


def run_inference_part(args: argparse.Namespace) -> dict[str, Any]:
    """Part 2: the classify job in process and on local[1] / local[2]."""
    source = ensure_inference_lake(args)
    day = parse_day(args.date)
    job = load_job("classify")
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        lake_dir = Path(tmp) / "lake"
        shutil.copytree(source, lake_dir)
        lake = Lake(lake_dir)
        tracks = sorted({str(k.granule) for k in lake.partitions("segments_2m", day)})
        t, summary = timed(lambda: run_job(job, tracks, lake, ClassifyConfig(), day=day, whole_day=True), 1)
    segments = int(summary["segments"])
    mr = float(summary["timings_s"]["map_reduce"])
    print(f"\n[inference] in process: {segments:,} segments, map-reduce {mr:.2f} s, total {t.wall_s:.2f} s",
          flush=True)
    serial = _spark_run(None, source, args) if args.no_spark_baseline else None
    runs = [_spark_run(m, source, args) for _ in range(args.spark_repeats) for m in args.masters]
    best = best_per_master(runs, args.masters)
    return {"segments": segments, "tracks": summary["tracks"], "in_process_map_reduce_s": mr,
            "in_process_total_s": t.wall_s, "segments_per_s_map_reduce": segments / mr,
            "segments_per_s_total": segments / t.wall_s, "runs": runs, "best": best, "no_spark": serial,
            "baseline": args.masters[0], "target_met": best[-1]["speedup_map_reduce"] >= TARGET_MAP_REDUCE_SPEEDUP}


def _spark_run(master: str | None, lake: Path, args: argparse.Namespace) -> dict[str, Any]:
    print(f"  {master or 'no Spark (one process)'}: ...", flush=True)
    run = run_job_once(SPARK_JOB, ["--date", args.date], master, args.work, lake_from=lake)
    timings = run["summary"]["timings_s"]
    print(f"    load {timings['load']:.2f} s, map-reduce {timings['map_reduce']:.2f} s, total {run['wall_s']:.2f} s",
          flush=True)
    return {"master": master or "none", "load_s": float(timings["load"]), "map_reduce_s": float(timings["map_reduce"]),
            "total_s": run["wall_s"], "segments": int(run["summary"]["segments"]),
            "loadavg_1min_before": run["loadavg_1min_before"]}


def report_inference(r: dict[str, Any]) -> str:
    """Tables of part 2."""
    head1 = (f"## inference: {r['segments']:,} segments of {r['tracks']} tracks, in process, single core: "
             f"{r['segments_per_s_map_reduce']:,.0f} segments/s over map-reduce "
             f"({r['segments_per_s_total']:,.0f} over the whole run)")
    head2 = f"## inference on Spark: speed-up = T({r['baseline']}) / T(config)"
    per_run = f"segments per run: {', '.join(format(b['segments'], ',') for b in r['best'])}"
    return head1 + "\n\n" + spark_report(r, head2, per_run, "classification work", TARGET_MAP_REDUCE_SPEEDUP)


def build_parser() -> argparse.ArgumentParser:
    """Command-line arguments."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                epilog="See docs/benchmarks.md for measured numbers.")
    p.add_argument("--part", choices=(*PARTS, "all"), default="all")
    p.add_argument("--work", type=Path, default=DEFAULT_WORK)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--bins", type=int, default=20_000, help="segments per track of the synthetic training set")
    p.add_argument("--epochs", type=int, default=3, help="training epochs per run")
    p.add_argument("--granules", type=int, default=8, help="granules of the inference day")
    p.add_argument("--date", default=DEFAULT_DATE)
    p.add_argument("--masters", type=lambda s: tuple(s.split(",")), default=("local[1]", "local[2]"))
    p.add_argument("--spark-repeats", type=int, default=2)
    p.add_argument("--no-spark-baseline", action=argparse.BooleanOptionalAction, default=True)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected parts, print their tables, optionally write JSON."""
    args = build_parser().parse_args(argv)
    parts = PARTS if args.part == "all" else (args.part,)
    runners = {"training": (run_training_part, report_training), "inference": (run_inference_part, report_inference)}
    run_parts("training and inference benchmark", args, parts, runners, argv, libraries=("numpy", "torch"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
