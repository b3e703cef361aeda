"""Benchmark: ATL03 -> 2 m resampling throughput, Spark scaling and peak memory.

Usage::

    .venv/bin/python benchmarks/resample_benchmark.py --part all --json var/bench/resample_benchmark.json

Three parts (``--part throughput|spark|memory|all``); inputs are simulated once into ``--work``
(default ``var/bench``) and reused by later runs:

1. **throughput** -- single core (OMP/MKL/OPENBLAS/... threads forced to 1 before numpy is
   imported) wall time of ``resample_beam`` on one simulated strong beam (default 20 M photons,
   chunks of 2 M photons) against "the practical floor": one pass that reads ``gt1r/heights/h_ph``
   with h5py in chunks of the same size and sums it.  The read step alone (``read_photons`` over
   every chunk) is timed too, so that resample = read + compute is visible.  Target: resample
   at most 3x the floor.  ``--baseline-module PATH`` also times ``resample_beam`` of another
   copy of ``seaice_tasks/is2/resample.py`` (e.g. the code before an optimisation) back to back
   in the same process, and checks that both return the same frame, bit for bit.
2. **spark** -- the Spark job ``seaice_tasks/spark_jobs/resample.py`` on a simulated day
   (default 6 granules x 200 km, no Sentinel-2 scenes) with ``--master local[1]`` and
   ``local[2]``: load, map-reduce and total wall time (JVM start included) and the speed-ups
   local[2] / local[1], as in the papers' Tables II and V.  Target: map-reduce >= 1.7x on 2 cores.
3. **memory** -- peak RSS of a fresh child process running ``resample_beam`` on the big beam and
   on a smaller one (default 5 M photons), plus a child that only imports the libraries.  The
   child reports its own ``VmHWM`` (``/proc/self/status``) and ``getrusage`` ``ru_maxrss``; the
   table uses VmHWM because Linux carries ``ru_maxrss`` over from the forking parent (this
   script, a few hundred MiB) across ``execve``, which would hide a small child's peak.
   The production path is measured the same way: the job's per-work-item path
   (the resample job run in process by ``seaice_tasks.spark_jobs.runner.run_job`` with a lake
   directory: each item is resampled and staged to the lake as a part file, so no process ever
   holds a whole beam's bins).
   Target: peak RSS does not grow with the beam size and stays <= 2 GB.

All timings of one part are taken back to back in the same run; compare the RATIOS, not the
absolute numbers, which depend on the machine and on whatever else runs on it.
"""

from __future__ import annotations

from _bench import (
    BYTES_PER_MIB,
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
import cProfile  # noqa: E402
import importlib.util  # noqa: E402
import io  # noqa: E402
import os  # noqa: E402
import pstats  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import zlib  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from types import ModuleType  # noqa: E402
from typing import Any, Final  # noqa: E402

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from seaice_tasks.io.atl03 import PHOTON_PATHS, read_photons, read_segments  # noqa: E402
from seaice_tasks.is2.resample import ResampleConfig, beam_chunks, resample_beam  # noqa: E402
from seaice_tasks.sim.atl03 import write_benchmark_beam  # noqa: E402
from seaice_tasks.sim.day import simulate_day  # noqa: E402
from seaice_tasks.sim.geometry import SimConfig  # noqa: E402
from seaice_tasks.sim.world import TruthWorld  # noqa: E402

SPARK_JOB: Final[Path] = REPO_ROOT / "seaice_tasks" / "spark_jobs" / "resample.py"
BEAM: Final[str] = "gt1r"
H_PH_PATH: Final[str] = f"{BEAM}/heights/h_ph"
COMPLETE_MARKER: Final[str] = ".complete"
PARTS: Final[tuple[str, ...]] = ("throughput", "spark", "memory")

DEFAULT_WORK: Final[Path] = Path("var/bench")
DEFAULT_PHOTONS: Final[int] = 20_000_000
DEFAULT_SMALL_PHOTONS: Final[int] = 5_000_000
DEFAULT_CHUNK_PHOTONS: Final[int] = 2_000_000
#: The Spark day: 6 granules x 200 km (~39 M photons, 72 work items); a 4 x 100 km day (13 M) is
#: dominated by Spark's fixed per-job costs on 2 cores (docs/benchmarks.md).
DEFAULT_GRANULES: Final[int] = 6
DEFAULT_KM: Final[float] = 200.0
DEFAULT_SPARK_MAX_PHOTONS: Final[int] = 500_000
DEFAULT_MASTERS: Final[tuple[str, ...]] = ("local[1]", "local[2]")
DEFAULT_SEED: Final[int] = 0

TARGET_THROUGHPUT_RATIO: Final[float] = 3.0
TARGET_MAP_REDUCE_SPEEDUP: Final[float] = 1.7
TARGET_PEAK_RSS_MIB: Final[float] = 2048.0
#: Peak RSS of the big beam may exceed the small beam's by this factor and still count as "flat".
FLAT_RSS_TOLERANCE: Final[float] = 1.25


# ----------------------------------------------------------------------------------------------
# Inputs (simulated once, reused from the work folder)
# ----------------------------------------------------------------------------------------------


def beam_path(work: Path, n_photons: int, seed: int) -> Path:
    """Cache file of a simulated benchmark beam."""
    return work / f"beam_{BEAM}_{n_photons}_seed{seed}.h5"


def ensure_beam(work: Path, n_photons: int, seed: int) -> Path:
    """Write the benchmark beam unless a complete copy is cached (written to a temp name first)."""
    out = beam_path(work, n_photons, seed)
    if out.exists():
        print(f"reusing {out}", flush=True)
        return out
    work.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    print(f"simulating {n_photons:,}-photon beam -> {out} ...", flush=True)
    t0 = time.perf_counter()
    write_benchmark_beam(partial, TruthWorld(), n_photons=n_photons, seed=seed)
    os.replace(partial, out)
    print(f"  done in {time.perf_counter() - t0:.1f} s", flush=True)
    return out


def day_dir(work: Path, granules: int, km: float) -> Path:
    """Cache folder of a simulated day."""
    return work / f"day_{granules}x{km:g}km"


def ensure_day(work: Path, granules: int, km: float) -> list[Path]:
    """Simulate the day (no Sentinel-2 scenes) unless cached; return its ATL03 granules."""
    out = day_dir(work, granules, km)
    if not (out / COMPLETE_MARKER).exists():
        shutil.rmtree(out, ignore_errors=True)
        print(f"simulating day {granules} x {km:g} km -> {out} ...", flush=True)
        result = simulate_day(SimConfig(granules=granules, km=km, scenes_per_granule=0), out)
        (out / COMPLETE_MARKER).write_text(result.summary() + "\n")
        print(f"  done in {result.seconds:.1f} s", flush=True)
    else:
        print(f"reusing {out}", flush=True)
    return sorted((out / "catalog" / "icesat2").glob("ATL03_*.h5"))


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------


def n_photons_of(path: Path) -> int:
    """Photons of the benchmark beam."""
    with h5py.File(path, "r") as f:
        return int(f[H_PH_PATH].shape[0])


# ----------------------------------------------------------------------------------------------
# 1. Throughput
# ----------------------------------------------------------------------------------------------


def floor_pass(path: Path, chunk: int) -> float:
    """The practical floor: read ``h_ph`` in slices of ``chunk`` photons with h5py and sum it."""
    total = 0.0
    with h5py.File(path, "r") as f:
        dset = f[H_PH_PATH]
        n = int(dset.shape[0])
        for start in range(0, n, chunk):
            total += float(np.sum(dset[start : start + chunk], dtype=np.float64))
    return total


def inflate_decomposition(path: Path, repeats: int) -> list[dict[str, Any]]:
    """Per photon variable ``read_photons`` reads: h5py read time and zlib-inflate-only time.

    The raw gzip chunks are fetched first (``read_direct_chunk``, untimed), then only
    ``zlib.decompress`` of every chunk is timed: the cost of decompressing the variable with no
    HDF5 overhead at all, a lower bound for any reader of these gzip datasets with zlib.
    """
    rows: list[dict[str, Any]] = []
    with h5py.File(path, "r") as f:
        for name, template in PHOTON_PATHS.items():
            dset = f[template.format(beam=BEAM)]
            h5_t, _ = timed(lambda d=dset: int(np.asarray(d[...]).nbytes), repeats)
            row: dict[str, Any] = {"variable": name, "dtype": str(dset.dtype), "bytes_per_photon":
                                   int(dset.dtype.itemsize * int(np.prod(dset.shape[1:], dtype=np.int64))),
                                   "h5py_s": h5_t.wall_s, "compression": str(dset.compression)}
            if dset.chunks is not None and dset.compression == "gzip" and not dset.shuffle:
                infos: list[Any] = []
                dset.id.chunk_iter(infos.append)
                raw = [dset.id.read_direct_chunk(info.chunk_offset)[1] for info in infos]
                z_t, _ = timed(lambda r=raw: sum(len(zlib.decompress(c)) for c in r), repeats)
                row["inflate_s"] = z_t.wall_s
                row["compressed_bytes"] = sum(len(c) for c in raw)
            rows.append(row)
    return rows


def _config(chunk: int, module: Any = None) -> Any:
    cls = ResampleConfig if module is None else module.ResampleConfig
    return cls(beams=(BEAM,), max_photons_per_chunk=chunk)


def read_pass(path: Path, chunk: int) -> int:
    """The read step of ``resample_beam`` alone: ``read_photons`` over every chunk with its halo."""
    n = 0
    for c in beam_chunks(read_segments(path, BEAM), _config(chunk)):
        n += len(read_photons(path, BEAM, c.read_start, c.read_stop))
    return n


def resample_pass(path: Path, chunk: int) -> int:
    """The measured operation: ``resample_beam`` of the strong beam; returns the 2 m bins."""
    frame = resample_beam(path, BEAM, _config(chunk))
    return len(frame)


def load_baseline(path: Path) -> ModuleType:
    """Another copy of ``seaice_tasks/is2/resample.py`` (e.g. before an optimisation) as a module."""
    spec = importlib.util.spec_from_file_location("resample_baseline", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up in sys.modules
    spec.loader.exec_module(module)
    return module


def baseline_pass(module: ModuleType, path: Path, chunk: int) -> int:
    """``resample_pass`` with the baseline module's ``resample_beam``."""
    frame = module.resample_beam(path, BEAM, _config(chunk, module))
    return len(frame)


def same_output(module: ModuleType, path: Path, chunk: int) -> bool:
    """Whether the baseline and the current ``resample_beam`` return the same frame, bit for bit."""
    expected = module.resample_beam(path, BEAM, _config(chunk, module))
    got = resample_beam(path, BEAM, _config(chunk))
    try:
        pd.testing.assert_frame_equal(got, expected, check_exact=True)
    except AssertionError as exc:
        print(f"  OUTPUTS DIFFER: {exc}", flush=True)
        return False
    return True


def profile_resample(path: Path, chunk: int, top: int) -> str:
    """cProfile top entries (by cumulative and by own time) of one ``resample_beam`` run."""
    prof = cProfile.Profile()
    prof.enable()
    resample_pass(path, chunk)
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out).strip_dirs()
    out.write("=== by cumulative time ===\n")
    stats.sort_stats("cumulative").print_stats(top)
    out.write("=== by own (tottime) time ===\n")
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


def run_throughput(args: argparse.Namespace) -> dict[str, Any]:
    """Part 1: resample vs read vs floor, single core, same process, back to back."""
    path = ensure_beam(args.work, args.photons, args.seed)
    n = n_photons_of(path)
    chunk = args.chunk_photons
    print(f"\n[throughput] {n:,} photons, chunks of {chunk:,}, {args.repeats} repeat(s) each", flush=True)
    floor_pass(path, chunk)  # warm the page cache so no side pays for the first disk read
    floor_t, _ = timed(lambda: floor_pass(path, chunk), args.repeats)
    print(f"  floor     {floor_t.wall_s:8.2f} s", flush=True)
    read_t, n_read = timed(lambda: read_pass(path, chunk), args.repeats)
    print(f"  read      {read_t.wall_s:8.2f} s", flush=True)
    baseline: dict[str, Any] | None = None
    if args.baseline_module is not None:
        module = load_baseline(args.baseline_module)
        base_t, base_bins = timed(lambda: baseline_pass(module, path, chunk), args.repeats)
        print(f"  baseline  {base_t.wall_s:8.2f} s ({args.baseline_module})", flush=True)
        baseline = {"module": str(args.baseline_module), "resample_s": base_t.wall_s, "cpu_s": base_t.cpu_s,
                    "n_bins": base_bins}
    res_t, n_bins = timed(lambda: resample_pass(path, chunk), args.repeats)
    print(f"  resample  {res_t.wall_s:8.2f} s", flush=True)
    inflate = inflate_decomposition(path, args.repeats)
    floor_again, _ = timed(lambda: floor_pass(path, chunk), args.repeats)
    floor_best = min(floor_t.wall_s, floor_again.wall_s)
    compute_s = max(res_t.wall_s - read_t.wall_s, 0.0)
    result: dict[str, Any] = {
        "beam_file": str(path),
        "n_photons": n,
        "n_photons_read": n_read,
        "n_bins": n_bins,
        "chunk_photons": chunk,
        "repeats": args.repeats,
        "floor_s": floor_best,
        "floor_s_before_after": [floor_t.wall_s, floor_again.wall_s],
        "read_s": read_t.wall_s,
        "resample_s": res_t.wall_s,
        "compute_s": compute_s,
        "cpu_over_wall": {
            "floor": floor_t.cpu_s / floor_t.wall_s,
            "read": read_t.cpu_s / read_t.wall_s,
            "resample": res_t.cpu_s / res_t.wall_s,
        },
        "photons_per_s": {
            "floor": n / floor_best,
            "read": n / read_t.wall_s,
            "resample": n / res_t.wall_s,
        },
        "ratio_resample_over_floor": res_t.wall_s / floor_best,
        "ratio_read_over_floor": read_t.wall_s / floor_best,
        "share_read_in_resample": read_t.wall_s / res_t.wall_s,
        "target_ratio_max": TARGET_THROUGHPUT_RATIO,
        "per_variable": inflate,
    }
    result["target_met"] = result["ratio_resample_over_floor"] <= TARGET_THROUGHPUT_RATIO
    if baseline is not None:
        baseline["ratio_over_floor"] = baseline["resample_s"] / floor_best
        baseline["speedup"] = baseline["resample_s"] / res_t.wall_s
        baseline["identical_output"] = same_output(module, path, chunk)
        result["baseline"] = baseline
    if args.profile > 0:
        result["profile"] = profile_resample(path, chunk, args.profile)
    return result


def report_throughput(r: dict[str, Any]) -> str:
    """Table of part 1."""
    pps = r["photons_per_s"]
    cow = r["cpu_over_wall"]
    rows = [
        ["floor: h5py read h_ph + sum", f"{r['floor_s']:.2f}", f"{pps['floor'] / 1e6:.2f}", "1.00",
         f"{cow['floor']:.2f}"],
        ["read_photons, all chunks", f"{r['read_s']:.2f}", f"{pps['read'] / 1e6:.2f}",
         f"{r['ratio_read_over_floor']:.2f}", f"{cow['read']:.2f}"],
        ["resample - read (compute)", f"{r['compute_s']:.2f}", "", f"{r['compute_s'] / r['floor_s']:.2f}", ""],
        ["resample_beam", f"{r['resample_s']:.2f}", f"{pps['resample'] / 1e6:.2f}",
         f"{r['ratio_resample_over_floor']:.2f}", f"{cow['resample']:.2f}"],
    ]
    base = r.get("baseline")
    if base is not None:
        rows.append([f"baseline resample_beam ({Path(base['module']).name})", f"{base['resample_s']:.2f}",
                     f"{r['n_photons'] / base['resample_s'] / 1e6:.2f}", f"{base['ratio_over_floor']:.2f}",
                     f"{base['cpu_s'] / base['resample_s']:.2f}"])
    head = (f"## throughput: {r['n_photons']:,} photons ({BEAM}), chunks of {r['chunk_photons']:,}, "
            f"single core, best of {r['repeats']}; {r['n_bins']:,} 2 m bins")
    foot = (f"resample / floor = {r['ratio_resample_over_floor']:.2f}x (target <= {TARGET_THROUGHPUT_RATIO:g}x: "
            f"{verdict(r['target_met'])}); read share of resample = {100 * r['share_read_in_resample']:.0f} %")
    body = table(["step", "wall (s)", "M photons/s", "x floor", "cpu/wall"], rows)
    if base is not None:
        foot += (f"\nbaseline / resample_beam = {base['speedup']:.2f}x faster; same frame, bit for bit: "
                 f"{base['identical_output']} (baseline bins {base['n_bins']:,})")
    text = f"{head}\n\n{body}\n\n{foot}"
    per_var = r.get("per_variable")
    if per_var:
        floor = r["floor_s"]
        vrows = [[v["variable"], v["dtype"], str(v["bytes_per_photon"]), f"{v['h5py_s']:.3f}",
                  f"{v['h5py_s'] / floor:.2f}",
                  f"{v['inflate_s']:.3f}" if "inflate_s" in v else "-",
                  f"{v['inflate_s'] / floor:.2f}" if "inflate_s" in v else "-"] for v in per_var]
        h5_sum = sum(v["h5py_s"] for v in per_var)
        z_sum = sum(v.get("inflate_s", 0.0) for v in per_var)
        vrows.append(["all", "", str(sum(v["bytes_per_photon"] for v in per_var)), f"{h5_sum:.3f}",
                      f"{h5_sum / floor:.2f}", f"{z_sum:.3f}", f"{z_sum / floor:.2f}"])
        text += ("\n\nPhoton variables read by read_photons, whole beam (h5py read; zlib inflate of the raw "
                 "chunks only, no HDF5 overhead):\n\n"
                 + table(["variable", "dtype", "B/photon", "h5py (s)", "x floor", "inflate (s)", "x floor"], vrows)
                 + f"\n\ninflating the variables alone costs {z_sum / floor:.2f}x the floor (h5py reads: "
                   f"{h5_sum / floor:.2f}x), before any resampling")
    if "profile" in r:
        text += "\n\ncProfile of resample_beam:\n" + r["profile"]
    return text


# ----------------------------------------------------------------------------------------------
# 2. Spark
# ----------------------------------------------------------------------------------------------


def _job_args(granules: Sequence[Path], max_photons: int) -> list[str]:
    return ["--granules", ",".join(str(g.resolve()) for g in granules),
            "--config", ResampleConfig(max_photons_per_chunk=max_photons).to_json()]


def _check_result(summary: dict[str, Any]) -> None:
    if summary["failed"] or summary["skipped"]:
        raise RuntimeError(f"spark job reported failures/skips: {summary['failed']} {summary['skipped']}")


def run_spark_once(master: str, granules: Sequence[Path], max_photons: int, work: Path) -> dict[str, Any]:
    """One ``spark-submit`` of the resample job into a fresh lake; parses ``SEAICE_RESULT``."""
    print(f"  {master}: spark-submit ...", flush=True)
    run = run_job_once(SPARK_JOB, _job_args(granules, max_photons), master, work)
    summary, wall = run["summary"], run["wall_s"]
    timings = summary["timings_s"]
    _check_result(summary)
    print(f"    load {timings['load']:.2f} s, map-reduce {timings['map_reduce']:.2f} s, total {wall:.2f} s",
          flush=True)
    return {
        "master": master,
        "load_s": float(timings["load"]),
        "map_reduce_s": float(timings["map_reduce"]),
        "total_s": wall,
        "rows": int(summary["rows"]),
        "partitions": len(summary["partitions"]),
        "loadavg_1min_before": run["loadavg_1min_before"],
    }


def run_no_spark(granules: Sequence[Path], max_photons: int, work: Path) -> dict[str, Any]:
    """The same job with ``--no-spark`` (one Python process, no JVM): the serial reference."""
    print("  no Spark (one process): ...", flush=True)
    run = run_job_once(SPARK_JOB, _job_args(granules, max_photons), None, work)
    wall = run["wall_s"]
    timings = run["summary"]["timings_s"]
    print(f"    load {timings['load']:.2f} s, map-reduce {timings['map_reduce']:.2f} s, total {wall:.2f} s",
          flush=True)
    return {"master": "none", "load_s": float(timings["load"]), "map_reduce_s": float(timings["map_reduce"]),
            "total_s": wall}


def count_work_items(granules: Sequence[Path], max_photons: int) -> int:
    """Work items the job's driver will plan (same planner, default config)."""
    from seaice_tasks.is2.resample_work import plan_granule

    config = ResampleConfig(max_photons_per_chunk=max_photons)
    return sum(len(plan_granule(str(g), config)[0]) for g in granules)


def run_spark(args: argparse.Namespace) -> dict[str, Any]:
    """Part 2: the Spark job on local[1] and local[2] (each a fresh JVM and lake)."""
    granules = ensure_day(args.work, args.granules, args.km)
    if not granules:
        raise RuntimeError("the simulated day holds no ATL03 granule")
    n_items = count_work_items(granules, args.spark_max_photons)
    n_photons = 0
    for g in granules:
        with h5py.File(g, "r") as f:
            n_photons += sum(int(f[f"{b}/heights/h_ph"].shape[0]) for b in f if b.startswith("gt"))
    print(f"\n[spark] {len(granules)} granules, {n_photons:,} photons (all beams), "
          f"{n_items} work items of <= {args.spark_max_photons:,} photons (strong beams)", flush=True)
    runs: list[dict[str, Any]] = []
    serial = run_no_spark(granules, args.spark_max_photons, args.work) if args.no_spark_baseline else None
    for _ in range(max(args.spark_repeats, 1)):
        runs.extend(run_spark_once(m, granules, args.spark_max_photons, args.work) for m in args.masters)
    best = best_per_master(runs, args.masters)
    return {
        "granules": [str(g) for g in granules],
        "n_photons_all_beams": n_photons,
        "max_photons": args.spark_max_photons,
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
    head = (f"## spark: {len(r['granules'])} granules, {r['n_photons_all_beams']:,} photons, "
            f"{r['work_items']} work items (max_photons_per_chunk {r['max_photons']:,}), "
            f"speed-up = T({r['baseline']}) / T(config)")
    per_run = f"rows per run: {', '.join(str(b['rows']) for b in r['best'])}"
    return spark_report(r, head, per_run, "resampling work", TARGET_MAP_REDUCE_SPEEDUP)


# ----------------------------------------------------------------------------------------------
# 3. Memory
# ----------------------------------------------------------------------------------------------

_CHILD_IMPORTS = CHILD_PEAK + """
from seaice_tasks.is2.resample import ResampleConfig, resample_beam
"""
_CHILD_RESAMPLE = _CHILD_IMPORTS + """
if len(sys.argv) > 3:  # a baseline copy of resample.py
    import importlib.util
    spec = importlib.util.spec_from_file_location("resample_baseline", sys.argv[3])
    module = importlib.util.module_from_spec(spec)
    sys.modules["resample_baseline"] = module
    spec.loader.exec_module(module)
    resample_beam, ResampleConfig = module.resample_beam, module.ResampleConfig
frame = resample_beam(sys.argv[1], "gt1r", ResampleConfig(beams=("gt1r",), max_photons_per_chunk=int(sys.argv[2])))
out_bytes = int(frame.memory_usage(deep=False).sum())  # object cells share one str per column
rows = len(frame)
del frame
print(json.dumps({**peak(), "output_bytes": out_bytes, "rows": rows}))
"""
_CHILD_JOB = _CHILD_IMPORTS + """
import shutil, tempfile
from seaice_tasks.spark_jobs.resample import JOB
from seaice_tasks.spark_jobs.runner import run_job
from seaice_tasks.storage import Lake

lake_dir = tempfile.mkdtemp(prefix="lake_mem_", dir=sys.argv[3])
try:
    summary = run_job(JOB, [sys.argv[1]], Lake(lake_dir),
                      ResampleConfig(beams=("gt1r",), max_photons_per_chunk=int(sys.argv[2])))
finally:
    shutil.rmtree(lake_dir, ignore_errors=True)
if summary["failed"] or summary["skipped"] or not summary["rows"]:
    raise SystemExit(f"run_job failed: {summary['failed']} {summary['skipped']}")
print(json.dumps({**peak(), "output_bytes": 0, "rows": summary["rows"]}))
"""
_CHILD_BASELINE = _CHILD_IMPORTS + """
print(json.dumps({**peak(), "output_bytes": 0, "rows": 0}))
"""


def resample_rss(code: str, *argv: str) -> dict[str, Any]:
    """Peak RSS (MiB) of ``code`` in a fresh interpreter, with its output size and rows."""
    m = child_rss(code, *argv)
    return {
        "peak_rss_mib": m["peak_rss_mib"],
        "ru_maxrss_mib": m["ru_maxrss_mib"],
        "output_mib": m["output_bytes"] / BYTES_PER_MIB,
        "rows": m["rows"],
        "wall_s": m["wall_s"],
    }


def run_memory(args: argparse.Namespace) -> dict[str, Any]:
    """Part 3: peak RSS of resample_beam on the small and the big beam, each in a fresh process."""
    small = ensure_beam(args.work, args.small_photons, args.seed)
    big = ensure_beam(args.work, args.photons, args.seed)
    print(f"\n[memory] chunks of {args.chunk_photons:,} photons, one fresh process per measurement", flush=True)
    base = resample_rss(_CHILD_BASELINE)
    print(f"  imports only: {base['peak_rss_mib']:.0f} MiB", flush=True)
    rows: list[dict[str, Any]] = [{"case": "imports only", "n_photons": 0, **base}]
    for path in (small, big):
        n = n_photons_of(path)
        m = resample_rss(_CHILD_RESAMPLE, str(path), str(args.chunk_photons))
        # the returned frame is built column by column from the per-chunk columns (each chunk's
        # piece is freed once copied), so at the end the bins are held about once, not twice
        m["working_set_mib"] = m["peak_rss_mib"] - m["output_mib"]
        print(f"  {n:,} photons: {m['peak_rss_mib']:.0f} MiB (returned frame {m['output_mib']:.0f} MiB)",
              flush=True)
        rows.append({"case": path.name, "n_photons": n, **m})
    if args.baseline_module is not None:  # the same with the baseline copy of resample.py
        for path in (small, big):
            n = n_photons_of(path)
            m = resample_rss(_CHILD_RESAMPLE, str(path), str(args.chunk_photons), str(args.baseline_module))
            m["working_set_mib"] = m["peak_rss_mib"] - 2.0 * m["output_mib"]  # pd.concat held it twice
            print(f"  {n:,} photons, baseline: {m['peak_rss_mib']:.0f} MiB", flush=True)
            rows.append({"case": f"baseline {path.name}", "n_photons": n, "path": "baseline", **m})
    for path in (small, big):  # production path: per work item, staged to a lake
        n = n_photons_of(path)
        m = resample_rss(_CHILD_JOB, str(path.resolve()), str(args.chunk_photons), str(args.work.resolve()))
        m["working_set_mib"] = m["peak_rss_mib"]  # no beam-sized frame is held
        print(f"  {n:,} photons, run_job + lake: {m['peak_rss_mib']:.0f} MiB", flush=True)
        rows.append({"case": f"run_job {path.name}", "n_photons": n, "path": "job", **m})
    s, b = rows[1], rows[2]
    js, jb = rows[-2], rows[-1]
    growth = b["peak_rss_mib"] / s["peak_rss_mib"]
    growth_ws = b["working_set_mib"] / s["working_set_mib"]
    job_growth = jb["peak_rss_mib"] / js["peak_rss_mib"]
    return {
        "job_rss_growth": job_growth,
        "target_job_flat_met": job_growth <= FLAT_RSS_TOLERANCE,
        "target_job_below_2gb_met": max(js["peak_rss_mib"], jb["peak_rss_mib"]) <= TARGET_PEAK_RSS_MIB,
        "chunk_photons": args.chunk_photons,
        "cases": rows,
        "rss_growth": growth,
        "working_set_growth": growth_ws,
        "photon_growth": b["n_photons"] / s["n_photons"],
        "target_peak_rss_mib_max": TARGET_PEAK_RSS_MIB,
        "flat_tolerance": FLAT_RSS_TOLERANCE,
        "target_below_2gb_met": max(s["peak_rss_mib"], b["peak_rss_mib"]) <= TARGET_PEAK_RSS_MIB,
        "target_flat_met": growth <= FLAT_RSS_TOLERANCE,
    }


def report_memory(r: dict[str, Any]) -> str:
    """Table of part 3."""
    rows = []
    for c in r["cases"]:
        is_base = c["n_photons"] == 0
        is_job = c.get("path") == "job"
        rows.append([
            c["case"], "-" if is_base else f"{c['n_photons']:,}", f"{c['peak_rss_mib']:.0f}",
            "-" if is_base or is_job else f"{c['output_mib']:.0f}",
            "-" if is_base else f"{c['working_set_mib']:.0f}",
            "-" if is_base else f"{c['rows']:,}", f"{c['ru_maxrss_mib']:.0f}", f"{c['wall_s']:.1f}",
        ])
    head = (f"## memory: peak RSS (VmHWM) of a fresh process, resample_beam with chunks of "
            f"{r['chunk_photons']:,} photons")
    foot = (f"photons x{r['photon_growth']:.1f} -> peak RSS x{r['rss_growth']:.2f} "
            f"(flat within {FLAT_RSS_TOLERANCE:g}x: {verdict(r['target_flat_met'])}), "
            f"streaming working set (peak - frame) x{r['working_set_growth']:.2f}; "
            f"<= {TARGET_PEAK_RSS_MIB:.0f} MiB: {verdict(r['target_below_2gb_met'])}")
    if "job_rss_growth" in r:
        foot += (f"\nproduction path (run_job: per work item, staged to a lake): photons "
                 f"x{r['photon_growth']:.1f} -> peak RSS x{r['job_rss_growth']:.2f} (flat within "
                 f"{FLAT_RSS_TOLERANCE:g}x: {verdict(r['target_job_flat_met'])}); <= {TARGET_PEAK_RSS_MIB:.0f} MiB: "
                 f"{verdict(r['target_job_below_2gb_met'])}")
    body = table(["case", "photons", "peak RSS (MiB)", "returned frame (MiB)", "working set (MiB)",
                  "2 m bins", "ru_maxrss (MiB)", "wall (s)"], rows)
    return f"{head}\n\n{body}\n\n{foot}"


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
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the simulated beams")
    p.add_argument("--photons", type=int, default=DEFAULT_PHOTONS, help="photons of the big beam (parts 1, 3)")
    p.add_argument("--small-photons", type=int, default=DEFAULT_SMALL_PHOTONS, help="photons of the small beam (3)")
    p.add_argument("--chunk-photons", type=int, default=DEFAULT_CHUNK_PHOTONS,
                   help="max_photons per chunk of resample_beam and of the floor read (parts 1, 3)")
    p.add_argument("--repeats", type=int, default=3, help="repeats per throughput step (best is kept)")
    p.add_argument("--baseline-module", type=Path, default=None, metavar="PATH",
                   help="also time resample_beam of this copy of resample.py, back to back, and check "
                        "that its output is identical (1); and measure its peak RSS (3)")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="also cProfile one resample_beam run and print the top N entries (part 1)")
    p.add_argument("--granules", type=int, default=DEFAULT_GRANULES, help="granules of the simulated day (2)")
    p.add_argument("--km", type=float, default=DEFAULT_KM, help="along-track km per granule (2)")
    p.add_argument("--spark-max-photons", type=int, default=DEFAULT_SPARK_MAX_PHOTONS,
                   help="max_photons_per_chunk of the Spark job's config: photons per work item (2)")
    p.add_argument("--masters", type=lambda s: tuple(s.split(",")), default=DEFAULT_MASTERS,
                   help="comma-separated Spark masters; the first is the speed-up baseline (2)")
    p.add_argument("--no-spark-baseline", action=argparse.BooleanOptionalAction, default=True,
                   help="also time the job with --no-spark in one process (2)")
    p.add_argument("--spark-repeats", type=int, default=2, help="runs per master, fastest kept (2)")
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
    run_parts("resample benchmark", args, parts, runners, argv, libraries=("numpy", "h5py"))
    return 0

if __name__ == "__main__":
    sys.exit(main())
