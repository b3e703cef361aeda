"""Benchmark: Sentinel-2 labels -- pixels per second per core, Spark scaling and peak memory.

Usage::

    .venv/bin/python benchmarks/s2_benchmark.py --part all --json var/bench/s2_benchmark.json

Three parts (``--part throughput|spark|memory|all``); the scenes are simulated once into
``--work`` (default ``var/bench``: ``s2day_<N>x30km_scene20km/`` and ``s2day_1x30km_scene10km/``,
reused when their ``.complete`` marker exists) and reused by later runs:

1. **throughput** -- single core (OMP/MKL/OPENBLAS/... threads forced to 1 before numpy is
   imported): wall time of ``label_scene`` on one simulated 20 km scene (2000 x 2000 px at
   10 m) with the thin-cloud/shadow filter on and off (both with the unusable mask), and with
   colour thresholds only (filter and unusable mask off); valid (and labelled) pixels per second.
   Also timed: reading the scene (``read_reflectance`` + ``rgb_composite`` of the whole scene,
   the floor every labelling pays) and committing one scene's partition
   (``write_scene_partition``: labels COG, unusable COG, quicklook), the job's per-scene step
   (pass 3, on the executors since 2026-11-26).  The cost of the filter is filter-on / filter-off.
2. **spark** -- the Spark job ``seaice_tasks/spark_jobs/s2_labels.py`` on the scenes of a
   simulated day (default 6 granules x 30 km with one 20 km scene each) with ``--master
   local[1]`` and ``local[2]`` and ``--config '{"window_px": 500}'`` (16 windows per scene):
   load, map-reduce and total wall time (JVM start included) and the speed-ups local[2] /
   local[1], as in the papers' Tables II and V; plus the same job with ``--no-spark`` in one
   process.  Target: map-reduce >= 1.7x on 2 cores.
3. **memory** -- peak RSS (``VmHWM``) of a fresh child process that runs both passes of the job's
   per-window path (``window_histogram`` then ``label_window`` over every window of one scene,
   keeping nothing) with ``window_px`` 256, 512, 1024 and 2000 on the 20 km scene, and at one
   window size on a 10 km scene; plus ``label_scene`` (which mosaics the whole scene) and a child
   that only imports the libraries.  Target: peak RSS bounded by the window, not the scene: it
   grows with ``window_px`` and stays flat (within 1.25x) from the 10 km to the 20 km scene.

All timings of one part are taken back to back in the same run; compare the RATIOS, not the
absolute numbers, which depend on the machine and on whatever else runs on it.
"""

from __future__ import annotations

from _bench import (
    CHILD_PEAK,
    REPO_ROOT,
    best_per_master,
    child_rss,
    pin_threads,
    run_job_once,
    run_parts,
    spark_report,
    table,
    timed,
    verdict,
)

# Single-threaded numerical libraries: must be set before numpy is imported (also inherited by
# the child processes and Spark Python workers started from here, so 2 Spark cores = 2 threads).
pin_threads()

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Final  # noqa: E402

import numpy as np  # noqa: E402

from seaice_tasks.constants import SeaIceClass  # noqa: E402
from seaice_tasks.io.s2 import open_s2_scene, read_reflectance, rgb_composite  # noqa: E402
from seaice_tasks.products import S2_LABELS  # noqa: E402
from seaice_tasks.s2.scene_labels import (  # noqa: E402
    S2LabelConfig,
    label_scene,
    plan_windows,
    write_scene_partition,
)
from seaice_tasks.sim.day import simulate_day  # noqa: E402
from seaice_tasks.sim.geometry import SimConfig  # noqa: E402
from seaice_tasks.storage import Lake  # noqa: E402

SPARK_JOB: Final[Path] = REPO_ROOT / "seaice_tasks" / "spark_jobs" / "s2_labels.py"
COMPLETE_MARKER: Final[str] = ".complete"
PARTS: Final[tuple[str, ...]] = ("throughput", "spark", "memory")

DEFAULT_WORK: Final[Path] = Path("var/bench")
DEFAULT_GRANULES: Final[int] = 6
DEFAULT_KM: Final[float] = 30.0
DEFAULT_SCENE_KM: Final[float] = 20.0
DEFAULT_SMALL_SCENE_KM: Final[float] = 10.0
DEFAULT_THROUGHPUT_WINDOW_PX: Final[int] = S2LabelConfig().window_px
DEFAULT_SPARK_WINDOW_PX: Final[int] = 500
DEFAULT_MEMORY_WINDOWS: Final[tuple[int, ...]] = (256, 512, 1024, 2000)
DEFAULT_SAME_WINDOW_PX: Final[int] = 512
DEFAULT_MASTERS: Final[tuple[str, ...]] = ("local[1]", "local[2]")

TARGET_MAP_REDUCE_SPEEDUP: Final[float] = 1.7
#: Peak RSS of the 20 km scene may exceed the 10 km scene's (same window) by this factor and still count as "flat".
FLAT_RSS_TOLERANCE: Final[float] = 1.25


# ----------------------------------------------------------------------------------------------
# Inputs (simulated once, reused from the work folder)
# ----------------------------------------------------------------------------------------------


def day_dir(work: Path, granules: int, km: float, scene_km: float) -> Path:
    """Cache folder of a simulated day with one scene per granule."""
    return work / f"s2day_{granules}x{km:g}km_scene{scene_km:g}km"


def ensure_scenes(work: Path, granules: int, km: float, scene_km: float) -> list[Path]:
    """Simulate the day (one ``scene_km`` scene per granule) unless cached; return its scene folders."""
    out = day_dir(work, granules, km, scene_km)
    if not (out / COMPLETE_MARKER).exists():
        shutil.rmtree(out, ignore_errors=True)
        print(f"simulating day {granules} x {km:g} km, one {scene_km:g} km scene each -> {out} ...", flush=True)
        result = simulate_day(SimConfig(granules=granules, km=km, scenes_per_granule=1, scene_km=scene_km), out)
        (out / COMPLETE_MARKER).write_text(result.summary() + "\n")
        print(f"  done in {result.seconds:.1f} s", flush=True)
    else:
        print(f"reusing {out}", flush=True)
    scenes = sorted(p for p in (out / "catalog" / "sentinel2").iterdir() if p.is_dir())
    if not scenes:
        raise RuntimeError(f"the simulated day {out} holds no Sentinel-2 scene")
    return scenes


# ----------------------------------------------------------------------------------------------
# 1. Throughput
# ----------------------------------------------------------------------------------------------


def read_pass(path: Path, config: S2LabelConfig) -> int:
    """The floor: read the whole scene and build its 8-bit composite; returns the valid pixels."""
    scene = open_s2_scene(str(path), config.read)
    _, valid = rgb_composite(read_reflectance(scene), config.read)
    return int(np.count_nonzero(valid))


def label_pass(path: Path, config: S2LabelConfig) -> tuple[int, int]:
    """The measured operation: open + ``label_scene``; returns (valid, labelled) pixels."""
    result = label_scene(open_s2_scene(str(path), config.read), config)
    return int(np.count_nonzero(result.valid)), int(np.count_nonzero(result.labels != SeaIceClass.UNLABELED))


def commit_pass(path: Path, config: S2LabelConfig, result: Any, work: Path) -> int:
    """The per-scene step of the job (pass 3): ``write_scene_partition`` into a fresh lake."""
    scene = open_s2_scene(str(path), config.read)
    name = scene.scene_id.scene if scene.scene_id is not None else path.name
    day = scene.scene_id.sensing.date() if scene.scene_id is not None else dt.date(2019, 11, 4)
    lake_dir = Path(tempfile.mkdtemp(prefix="lake_commit_", dir=work))
    try:
        write_scene_partition(Lake(str(lake_dir)), S2_LABELS.key(date=day, scene=name), scene, result, config)
        return sum(p.stat().st_size for p in lake_dir.rglob("*") if p.is_file())
    finally:
        shutil.rmtree(lake_dir, ignore_errors=True)


def run_throughput(args: argparse.Namespace) -> dict[str, Any]:
    """Part 1: label_scene with the filter on/off vs the read floor, single core, back to back."""
    path = ensure_scenes(args.work, args.granules, args.km, args.scene_km)[0]
    base = S2LabelConfig(window_px=args.throughput_window_px)
    configs = {
        "colour only": S2LabelConfig(window_px=args.throughput_window_px, apply_filter=False, flag_unusable=False),
        "filter off": S2LabelConfig(window_px=args.throughput_window_px, apply_filter=False),
        "filter on": base,
    }
    scene = open_s2_scene(str(path), base.read)
    n_px = scene.shape[0] * scene.shape[1]
    n_windows = len(plan_windows(scene.shape, base.window_px))
    print(f"\n[throughput] {path.name}: {scene.shape[0]} x {scene.shape[1]} px, window_px {base.window_px} "
          f"({n_windows} windows), {args.repeats} repeat(s) each", flush=True)
    read_pass(path, base)  # warm the page cache so no side pays for the first disk read
    read_t, n_valid = timed(lambda: read_pass(path, base), args.repeats)
    print(f"  read + composite  {read_t.wall_s:7.2f} s", flush=True)
    steps: dict[str, dict[str, Any]] = {}
    for name, cfg in configs.items():
        t, (valid, labelled) = timed(lambda cfg=cfg: label_pass(path, cfg), args.repeats)  # type: ignore[misc]
        steps[name] = {"wall_s": t.wall_s, "cpu_s": t.cpu_s, "valid_px": valid, "labelled_px": labelled,
                       "valid_px_per_s": valid / t.wall_s, "labelled_px_per_s": labelled / t.wall_s}
        print(f"  label_scene, {name:<11} {t.wall_s:7.2f} s ({valid / t.wall_s / 1e6:.2f} M valid px/s)", flush=True)
    result = label_scene(scene, base)
    commit_t, commit_bytes = timed(lambda: commit_pass(path, base, result, args.work), args.repeats)
    print(f"  commit (write_scene_partition) {commit_t.wall_s:7.2f} s", flush=True)
    on, off = steps["filter on"], steps["filter off"]
    return {
        "scene": str(path),
        "shape": list(scene.shape),
        "n_px": n_px,
        "n_valid_px": n_valid,
        "window_px": base.window_px,
        "n_windows": n_windows,
        "repeats": args.repeats,
        "read_s": read_t.wall_s,
        "read_cpu_s": read_t.cpu_s,
        "steps": steps,
        "commit_s": commit_t.wall_s,
        "commit_cpu_s": commit_t.cpu_s,
        "commit_bytes": commit_bytes,
        "filter_cost_ratio": on["wall_s"] / off["wall_s"],
        "filter_cost_s_per_mpx": (on["wall_s"] - off["wall_s"]) / (n_valid / 1e6),
    }


def report_throughput(r: dict[str, Any]) -> str:
    """Table of part 1."""
    off = r["steps"]["filter off"]["wall_s"]
    rows = [["read + composite (whole scene)", f"{r['read_s']:.2f}", f"{r['n_valid_px'] / r['read_s'] / 1e6:.2f}", "",
             f"{r['read_s'] / off:.2f}", f"{r['read_cpu_s'] / r['read_s']:.2f}"]]
    for name, s in r["steps"].items():
        rows.append([f"label_scene, {name}", f"{s['wall_s']:.2f}", f"{s['valid_px_per_s'] / 1e6:.2f}",
                     f"{s['labelled_px_per_s'] / 1e6:.2f}", f"{s['wall_s'] / off:.2f}",
                     f"{s['cpu_s'] / s['wall_s']:.2f}"])
    rows.append(["commit: write_scene_partition", f"{r['commit_s']:.2f}", "", "", f"{r['commit_s'] / off:.2f}",
                 f"{r['commit_cpu_s'] / r['commit_s']:.2f}"])
    on = r["steps"]["filter on"]
    head = (f"## throughput: {Path(r['scene']).name}, {r['shape'][0]} x {r['shape'][1]} px "
            f"({r['n_valid_px']:,} valid, {on['labelled_px']:,} labelled with the unusable mask), "
            f"window_px {r['window_px']} ({r['n_windows']} windows), single core, best of {r['repeats']}")
    body = table(["step", "wall (s)", "M valid px/s", "M labelled px/s", "x filter off", "cpu/wall"], rows)
    foot = (f"filter on: {on['valid_px_per_s'] / 1e6:.2f} M valid px/s per core; cost of the filter = "
            f"{r['filter_cost_ratio']:.2f}x the filter-off time (+{r['filter_cost_s_per_mpx']:.3f} s per M valid px); "
            f"commit of one scene ({r['commit_bytes'] / 1e6:.1f} MB written) = "
            f"{100 * r['commit_s'] / on['wall_s']:.0f} % of its filter-on labelling")
    return f"{head}\n\n{body}\n\n{foot}"


# ----------------------------------------------------------------------------------------------
# 2. Spark
# ----------------------------------------------------------------------------------------------


def _job_args(scenes: Sequence[Path], window_px: int) -> list[str]:
    return ["--scenes", ",".join(str(s.resolve()) for s in scenes), "--config", json.dumps({"window_px": window_px})]


def run_job(master: str | None, scenes: Sequence[Path], window_px: int, work: Path) -> dict[str, Any]:
    """One run of the S2 label job (``master`` ``None``: ``--no-spark``); its timings."""
    print(f"  {master or 'no Spark (one process)'}: ...", flush=True)
    run = run_job_once(SPARK_JOB, _job_args(scenes, window_px), master, work)
    summary, wall = run["summary"], run["wall_s"]
    if summary["failed"]:
        raise RuntimeError(f"s2_labels job reported failures: {summary['failed']}")
    timings = summary["timings_s"]
    print(f"    load {timings['load']:.2f} s, map-reduce {timings['map_reduce']:.2f} s, total {wall:.2f} s, "
          f"{len(summary['partitions'])} partitions, {len(summary['skipped'])} skipped", flush=True)
    return {
        "master": master or "none",
        "load_s": float(timings["load"]),
        "map_reduce_s": float(timings["map_reduce"]),
        "total_s": wall,
        "partitions": len(summary["partitions"]),
        "skipped": len(summary["skipped"]),
        "loadavg_1min_before": run["loadavg_1min_before"],
    }


def run_spark(args: argparse.Namespace) -> dict[str, Any]:
    """Part 2: the S2 label job on local[1] and local[2] (each a fresh JVM and lake)."""
    scenes = ensure_scenes(args.work, args.granules, args.km, args.scene_km)
    cfg = S2LabelConfig(window_px=args.spark_window_px)
    shapes = [open_s2_scene(str(s), cfg.read).shape for s in scenes]
    n_items = sum(len(plan_windows(shape, cfg.window_px)) for shape in shapes)
    n_px = sum(r * c for r, c in shapes)
    print(f"\n[spark] {len(scenes)} scenes, {n_px / 1e6:.1f} M px, {n_items} work items per pass "
          f"(window_px {cfg.window_px}, filter on: 2 passes)", flush=True)
    serial = run_job(None, scenes, cfg.window_px, args.work) if args.no_spark_baseline else None
    runs: list[dict[str, Any]] = []
    for _ in range(max(args.spark_repeats, 1)):
        runs.extend(run_job(m, scenes, cfg.window_px, args.work) for m in args.masters)
    best = best_per_master(runs, args.masters)
    return {
        "scenes": [str(s) for s in scenes],
        "n_px": n_px,
        "window_px": cfg.window_px,
        "work_items": n_items,
        "runs": runs,
        "best": best,
        "no_spark": serial,
        "baseline": args.masters[0],
        "target_map_reduce_speedup_min": TARGET_MAP_REDUCE_SPEEDUP,
        "target_met": best[-1]["speedup_map_reduce"] >= TARGET_MAP_REDUCE_SPEEDUP,
    }


def report_spark(r: dict[str, Any]) -> str:
    """Table of part 2 in the style of the papers' Tables II / V."""
    head = (f"## spark: {len(r['scenes'])} scenes ({r['n_px'] / 1e6:.1f} M px), window_px {r['window_px']}: "
            f"{r['work_items']} work items per pass, speed-up = T({r['baseline']}) / T(config)")
    per_run = f"partitions per run: {', '.join(str(b['partitions']) for b in r['best'])}"
    return spark_report(r, head, per_run, "labelling work", TARGET_MAP_REDUCE_SPEEDUP)


# ----------------------------------------------------------------------------------------------
# 3. Memory
# ----------------------------------------------------------------------------------------------

_CHILD_WINDOWS = CHILD_PEAK + """
import numpy as np
from seaice_tasks.io.s2 import open_s2_scene
from seaice_tasks.s2.cloud_shadow import FilterStats
from seaice_tasks.s2.scene_labels import S2LabelConfig, label_window, plan_windows, window_histogram

config = S2LabelConfig(window_px=int(sys.argv[2]))
scene = open_s2_scene(sys.argv[1], config.read)
windows = plan_windows(scene.shape, config.window_px)
hist = np.zeros(256, dtype=np.int64)
for w in windows:  # pass 1, as the job's histogram_item
    hist += window_histogram(scene, w, config)
stats = FilterStats.from_histogram(hist)
valid = labelled = 0
for w in windows:  # pass 2, as the job's label_window_work (the arrays are dropped, as once staged)
    labels, unusable, ok = label_window(scene, w, config, stats)
    valid += int(ok.sum())
    labelled += int((labels != 255).sum())
    del labels, unusable, ok
print(json.dumps({**peak(), "shape": list(scene.shape), "windows": len(windows), "valid_px": valid,
                  "labelled_px": labelled}))
"""
_CHILD_SCENE = CHILD_PEAK + """
from seaice_tasks.io.s2 import open_s2_scene
from seaice_tasks.s2.scene_labels import S2LabelConfig, label_scene, plan_windows

config = S2LabelConfig(window_px=int(sys.argv[2]))
scene = open_s2_scene(sys.argv[1], config.read)
result = label_scene(scene, config)
print(json.dumps({**peak(), "shape": list(scene.shape), "windows": len(plan_windows(scene.shape, config.window_px)),
                  "valid_px": int(result.valid.sum()), "labelled_px": int((result.labels != 255).sum())}))
"""
_CHILD_IMPORTS = CHILD_PEAK + """
import numpy as np
from seaice_tasks.io.s2 import open_s2_scene
from seaice_tasks.s2.cloud_shadow import FilterStats
from seaice_tasks.s2.scene_labels import S2LabelConfig, label_scene, label_window, plan_windows, window_histogram

print(json.dumps({**peak(), "shape": [0, 0], "windows": 0, "valid_px": 0, "labelled_px": 0}))
"""


def max_read_px(shape: Sequence[int], window_px: int, halo: int) -> int:
    """Pixels of the largest window read (window grown by the halo, clipped to the scene)."""
    rows, cols = shape
    best = 0
    for w in plan_windows((rows, cols), window_px):
        r = min(w.row_off + w.height + halo, rows) - max(w.row_off - halo, 0)
        c = min(w.col_off + w.width + halo, cols) - max(w.col_off - halo, 0)
        best = max(best, r * c)
    return best


def run_memory(args: argparse.Namespace) -> dict[str, Any]:
    """Part 3: peak RSS of the per-window path vs window size and scene size, each in a fresh process."""
    big = ensure_scenes(args.work, args.granules, args.km, args.scene_km)[0]
    small = ensure_scenes(args.work, 1, args.km, args.small_scene_km)[0]
    halo = S2LabelConfig().filter.halo_px
    print(f"\n[memory] per-window path (both passes), halo {halo} px, one fresh process per measurement", flush=True)
    rows: list[dict[str, Any]] = []

    def measure(case: str, code: str, path: Path | None, window_px: int, kind: str) -> dict[str, Any]:
        argv = (str(path), str(window_px)) if path is not None else ()
        m = child_rss(code, *argv)
        m.update(case=case, kind=kind, window_px=window_px if path is not None else 0,
                 scene_km=args.scene_km if path == big else (args.small_scene_km if path == small else 0.0))
        m["max_read_px"] = max_read_px(m["shape"], window_px, halo) if path is not None else 0
        print(f"  {case}: {m['peak_rss_mib']:.0f} MiB ({m['wall_s']:.1f} s)", flush=True)
        rows.append(m)
        return m

    imports = measure("imports only", _CHILD_IMPORTS, None, 0, "imports")
    by_window = [measure(f"windows of {w} px, {args.scene_km:g} km scene", _CHILD_WINDOWS, big, w, "windows")
                 for w in args.memory_windows]
    same = args.same_window_px
    small_m = measure(f"windows of {same} px, {args.small_scene_km:g} km scene", _CHILD_WINDOWS, small, same,
                      "windows")
    big_m = next((m for m in by_window if m["window_px"] == same), None)
    if big_m is None:
        big_m = measure(f"windows of {same} px, {args.scene_km:g} km scene", _CHILD_WINDOWS, big, same, "windows")
    scene_m = measure(f"label_scene (mosaic), window {DEFAULT_THROUGHPUT_WINDOW_PX} px, {args.scene_km:g} km scene",
                      _CHILD_SCENE, big, DEFAULT_THROUGHPUT_WINDOW_PX, "label_scene")
    # label_scene against the per-window path at the same window_px (else at the compared window)
    same_window_of_scene = next((m for m in by_window if m["window_px"] == scene_m["window_px"]), big_m)
    for m in rows:
        m["above_imports_mib"] = m["peak_rss_mib"] - imports["peak_rss_mib"]
    peaks = [m["peak_rss_mib"] for m in by_window]
    grows = all(b >= a * 0.98 for a, b in itertools.pairwise(peaks)) and peaks[-1] > peaks[0]
    first, last = by_window[0], by_window[-1]
    slope = ((last["peak_rss_mib"] - first["peak_rss_mib"]) * 1024 * 1024
             / max(last["max_read_px"] - first["max_read_px"], 1))
    scene_px_ratio = (big_m["shape"][0] * big_m["shape"][1]) / (small_m["shape"][0] * small_m["shape"][1])
    scene_growth = big_m["peak_rss_mib"] / small_m["peak_rss_mib"]
    return {
        "halo_px": halo,
        "cases": rows,
        "imports_mib": imports["peak_rss_mib"],
        "grows_with_window": grows,
        "bytes_per_read_px": slope,
        "same_window_px": same,
        "scene_px_ratio": scene_px_ratio,
        "scene_rss_growth": scene_growth,
        "flat_tolerance": FLAT_RSS_TOLERANCE,
        "target_flat_in_scene_met": scene_growth <= FLAT_RSS_TOLERANCE,
        "label_scene_window_px": scene_m["window_px"],
        "label_scene_over_windows": scene_m["peak_rss_mib"] / same_window_of_scene["peak_rss_mib"],
        "target_met": grows and scene_growth <= FLAT_RSS_TOLERANCE,
    }


def report_memory(r: dict[str, Any]) -> str:
    """Table of part 3."""
    rows = []
    for c in r["cases"]:
        is_base = c["kind"] == "imports"
        shape = c["shape"]
        rows.append([
            c["case"], "-" if is_base else f"{shape[0]} x {shape[1]}", "-" if is_base else str(c["window_px"]),
            "-" if is_base else str(c["windows"]), "-" if is_base else f"{c['max_read_px'] / 1e6:.2f}",
            f"{c['peak_rss_mib']:.0f}", "-" if is_base else f"{c['above_imports_mib']:.0f}",
            "-" if is_base else f"{c['valid_px']:,}", f"{c['wall_s']:.1f}",
        ])
    head = (f"## memory: peak RSS (VmHWM) of a fresh process; per-window path = window_histogram + label_window "
            f"over every window (halo {r['halo_px']} px), nothing kept")
    body = table(["case", "scene px", "window px", "windows", "largest read (M px)", "peak RSS (MiB)",
                  "above imports (MiB)", "valid px", "wall (s)"], rows)
    foot = (f"peak grows with the window: {r['grows_with_window']} (~{r['bytes_per_read_px']:.0f} B of peak per px "
            f"of the largest halo window read); same window {r['same_window_px']} px, scene pixels "
            f"x{r['scene_px_ratio']:.1f} -> peak RSS x{r['scene_rss_growth']:.2f} (flat within "
            f"{r['flat_tolerance']:g}x: {verdict(r['target_flat_in_scene_met'])}); bounded by the window, not the "
            f"scene: {verdict(r['target_met'])}; label_scene (whole-scene mosaic) = "
            f"{r['label_scene_over_windows']:.2f}x the per-window peak at {r['label_scene_window_px']} px")
    return f"{head}\n\n{body}\n\n{foot}"


# ----------------------------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------------------------


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(","))


def build_parser() -> argparse.ArgumentParser:
    """Command-line arguments."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                epilog="See docs/benchmarks.md for measured numbers.")
    p.add_argument("--part", choices=(*PARTS, "all"), default="all", help="which part(s) to run")
    p.add_argument("--work", type=Path, default=DEFAULT_WORK, help="cache of simulated inputs (default var/bench)")
    p.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    p.add_argument("--granules", type=int, default=DEFAULT_GRANULES,
                   help="granules of the simulated day, one scene each: the Spark job's scenes (2); "
                        "the first scene is the one of parts 1 and 3")
    p.add_argument("--km", type=float, default=DEFAULT_KM, help="along-track km per granule")
    p.add_argument("--scene-km", type=float, default=DEFAULT_SCENE_KM, help="side of the scenes (km, 10 m px)")
    p.add_argument("--small-scene-km", type=float, default=DEFAULT_SMALL_SCENE_KM,
                   help="side of the smaller scene of the memory part (3)")
    p.add_argument("--repeats", type=int, default=3, help="repeats per throughput step (best is kept) (1)")
    p.add_argument("--throughput-window-px", type=int, default=DEFAULT_THROUGHPUT_WINDOW_PX,
                   help="window_px of label_scene (1; default: the S2LabelConfig default)")
    p.add_argument("--spark-window-px", type=int, default=DEFAULT_SPARK_WINDOW_PX,
                   help="window_px of the Spark job: its work items (2)")
    p.add_argument("--masters", type=lambda s: tuple(s.split(",")), default=DEFAULT_MASTERS,
                   help="comma-separated Spark masters; the first is the speed-up baseline (2)")
    p.add_argument("--no-spark-baseline", action=argparse.BooleanOptionalAction, default=True,
                   help="also time the job with --no-spark in one process (2)")
    p.add_argument("--spark-repeats", type=int, default=2, help="runs per master, fastest kept (2)")
    p.add_argument("--memory-windows", type=_ints, default=DEFAULT_MEMORY_WINDOWS,
                   help="comma-separated window_px of the memory part, increasing (3)")
    p.add_argument("--same-window-px", type=int, default=DEFAULT_SAME_WINDOW_PX,
                   help="window_px at which the small and the big scene are compared (3)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected parts, print their tables and ratios, optionally write JSON."""
    args = build_parser().parse_args(argv)
    parts = PARTS if args.part == "all" else (args.part,)
    runners = {
        "throughput": (run_throughput, report_throughput),
        "spark": (run_spark, report_spark),
        "memory": (run_memory, report_memory),
    }
    run_parts("S2 labels benchmark", args, parts, runners, argv, libraries=("numpy", "rasterio"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
