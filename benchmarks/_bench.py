"""Helpers shared by the benchmark scripts (``resample_benchmark.py``, ``s2_benchmark.py``).

Importing this module is cheap and imports no numerical library, so a script can call
:func:`pin_threads` right after importing it and before numpy is imported::

    from _bench import pin_threads

    pin_threads()  # single-threaded numpy/BLAS in this process and in every child it starts

    import numpy as np  # noqa: E402

What lives here: best-of-N timing (:func:`timed`), Markdown tables (:func:`table`), MET/MISSED
(:func:`verdict`), the ``spark-submit`` environment and path, one run of a Spark job script with
its ``SEAICE_RESULT`` line parsed (:func:`run_job_once`), the peak RSS of a fresh child process
(:func:`child_rss`, with the ``peak()`` snippet :data:`CHILD_PEAK` for the child's code), the
machine description (:func:`machine`) and the part driver (:func:`run_parts`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

from seaice_tasks.spark_jobs.runner import RESULT_MARKER

__all__ = [
    "best_per_master",
    "spark_rows",
    "spark_report",
    "THREAD_VARS",
    "REPO_ROOT",
    "RESULT_MARKER",
    "KIB_PER_MIB",
    "BYTES_PER_MIB",
    "CHILD_PEAK",
    "Timing",
    "pin_threads",
    "timed",
    "table",
    "verdict",
    "loadavg",
    "spark_env",
    "spark_submit_path",
    "run_job_once",
    "child_rss",
    "cores_of",
    "machine",
    "run_parts",
]

#: Thread-count variables of the numerical libraries (OpenMP, MKL, OpenBLAS, BLIS, Accelerate, numexpr).
THREAD_VARS: Final[tuple[str, ...]] = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
REPO_ROOT: Final[Path] = Path(__file__).resolve().parents[1]
KIB_PER_MIB: Final[float] = 1024.0
BYTES_PER_MIB: Final[float] = 1024.0 * 1024.0

T = TypeVar("T")


def pin_threads() -> None:
    """Single-threaded numerical libraries: call before numpy is imported.

    Also inherited by the child processes and Spark Python workers started from here, so
    ``local[2]`` means two single-threaded Python workers.
    """
    for var in THREAD_VARS:
        os.environ[var] = "1"


# ----------------------------------------------------------------------------------------------
# Timing and reporting
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Timing:
    """Best-of-N wall and CPU time of one measured step."""

    wall_s: float
    cpu_s: float


def timed(fn: Callable[[], T], repeats: int) -> tuple[Timing, T]:
    """Run ``fn`` ``repeats`` times; the fastest wall time (and its CPU time) and the last result."""
    best: Timing | None = None
    result: T | None = None
    for _ in range(max(repeats, 1)):
        c0, t0 = time.process_time(), time.perf_counter()
        result = fn()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if best is None or wall < best.wall_s:
            best = Timing(wall, cpu)
    assert best is not None
    return best, result  # type: ignore[return-value]


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table (readable as plain text too)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    return "\n".join([line, rule, *body])


def verdict(ok: bool) -> str:
    """MET / MISSED."""
    return "MET" if ok else "MISSED"


def loadavg() -> float:
    """1-min load average (NaN where the platform has none)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


# ----------------------------------------------------------------------------------------------
# Spark jobs
# ----------------------------------------------------------------------------------------------


def spark_env() -> dict[str, str]:
    """Environment of ``spark-submit``: this interpreter for driver and workers, loopback only."""
    env = dict(os.environ)
    env["PYSPARK_PYTHON"] = sys.executable
    env["PYSPARK_DRIVER_PYTHON"] = sys.executable
    env["SPARK_LOCAL_IP"] = "127.0.0.1"
    env.pop("SEAICE_LAKE", None)
    return env


def spark_submit_path() -> Path:
    """``spark-submit`` of the interpreter's environment (the virtualenv), else from PATH."""
    local = Path(sys.executable).parent / "spark-submit"
    if local.exists():
        return local
    found = shutil.which("spark-submit")
    if found is None:
        raise SystemExit("spark-submit not found (install pyspark in the virtualenv)")
    return Path(found)


def run_job_once(
    script: Path, job_args: Sequence[str], master: str | None, work: Path, lake_from: Path | None = None
) -> dict[str, Any]:
    """One run of a Spark job script into a fresh lake under ``work``; parses its ``SEAICE_RESULT``.

    ``master`` ``None`` runs the script with ``--no-spark`` in one Python process (no JVM), else
    ``spark-submit --master MASTER --conf spark.ui.enabled=false``.  ``--lake`` is appended to
    ``job_args``; the lake starts empty, or as a copy of ``lake_from`` (a job that reads its
    inputs from the lake; the copy is made before the clock starts), and is removed afterwards.
    Returns ``summary`` (the job's JSON result), ``wall_s`` (the whole command, JVM start and
    stop included) and ``loadavg_1min_before``.
    """
    lake = Path(tempfile.mkdtemp(prefix="lake_", dir=work))
    if lake_from is not None:
        shutil.copytree(lake_from, lake, dirs_exist_ok=True)
    if master is None:
        cmd = [sys.executable, str(script), "--no-spark", *job_args, "--lake", str(lake.resolve())]
        what = "--no-spark run"
    else:
        cmd = [str(spark_submit_path()), "--master", master, "--conf", "spark.ui.enabled=false",
               str(script), *job_args, "--lake", str(lake.resolve())]
        what = f"spark-submit --master {master}"
    load_avg = loadavg()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=spark_env(), capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    shutil.rmtree(lake, ignore_errors=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_MARKER)]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-4000:] + "\n" + proc.stderr[-8000:] + "\n")
        raise RuntimeError(f"{what} failed (exit {proc.returncode})")
    summary: dict[str, Any] = json.loads(lines[-1][len(RESULT_MARKER):])
    return {"summary": summary, "wall_s": wall, "loadavg_1min_before": load_avg}


def cores_of(master: str) -> str:
    """``N`` of ``local[N]`` (``?`` for another master)."""
    return master[master.find("[") + 1 : master.find("]")] if "[" in master else "?"


# ----------------------------------------------------------------------------------------------
# Peak memory of a fresh process
# ----------------------------------------------------------------------------------------------

#: Code for a child started by :func:`child_rss`: ``peak()`` returns its own ``VmHWM`` (KiB) and
#: ``ru_maxrss``; the child prints ``json.dumps({**peak(), ...})`` as its last line.
CHILD_PEAK: Final[str] = """
import json, resource, sys


def peak():
    # VmHWM: high-water RSS of this process's own address space (fresh at exec).  ru_maxrss is
    # reported too, but Linux carries it over from the forking parent across execve.
    hwm = 0
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except OSError:
        pass
    return {"vmhwm_kib": hwm, "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
"""


def child_rss(code: str, *argv: str) -> dict[str, Any]:
    """Run ``code`` (which should start with :data:`CHILD_PEAK`) in a fresh interpreter.

    Returns ``peak_rss_mib`` (its ``VmHWM``, or ``ru_maxrss`` where there is no VmHWM),
    ``ru_maxrss_mib``, ``wall_s`` and the other keys of the child's last JSON line as they are.
    """
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, check=False,
                          env=dict(os.environ))
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:] + "\n")
        raise RuntimeError(f"memory child failed (exit {proc.returncode})")
    doc: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    hwm_kib = doc.pop("vmhwm_kib") or doc["maxrss_kib"]  # VmHWM absent off Linux: fall back to ru_maxrss
    maxrss_kib = doc.pop("maxrss_kib")
    return {
        "peak_rss_mib": hwm_kib / KIB_PER_MIB,
        "ru_maxrss_mib": maxrss_kib / KIB_PER_MIB,  # KiB on Linux; includes the parent's at fork
        "wall_s": wall,
        **doc,
    }


# ----------------------------------------------------------------------------------------------
# Machine and driver
# ----------------------------------------------------------------------------------------------


def machine(*libraries: str) -> dict[str, Any]:
    """Where the numbers come from; ``libraries``: module names whose ``__version__`` to record."""
    doc: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
    }
    for name in libraries:
        doc[name] = getattr(importlib.import_module(name), "__version__", "?")
    doc["threads_env"] = {v: os.environ.get(v, "") for v in THREAD_VARS}
    doc["loadavg_start"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    return doc


Runner = Callable[[Any], dict[str, Any]]
Reporter = Callable[[dict[str, Any]], str]


def run_parts(
    title: str,
    args: Any,
    parts: Sequence[str],
    runners: Mapping[str, tuple[Runner, Reporter]],
    argv: Sequence[str] | None,
    libraries: Sequence[str] = ("numpy",),
) -> dict[str, Any]:
    """Run the parts in order, then print the machine line (numpy's version) and every part's report.

    ``args`` needs ``work`` (created) and ``json`` (``None`` or a path the results are written to).
    Returns the whole JSON document.
    """
    args.work.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {
        "started_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(*libraries),
        "argv": list(sys.argv[1:] if argv is None else argv),
    }
    reports: list[str] = []
    for part in parts:
        run, report = runners[part]
        t0 = time.perf_counter()
        doc[part] = run(args)
        doc[part]["part_wall_s"] = time.perf_counter() - t0
        reports.append(report(doc[part]))
    doc["machine"]["loadavg_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    m = doc["machine"]
    print(f"\n# {title} -- {m['cpu_count']} CPUs, {m['processor']}, Python {m['python']}, "
          f"numpy {m.get('numpy', '?')}, load average {m['loadavg_start']} -> {m['loadavg_end']}\n")
    print("\n\n".join(reports))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=1, sort_keys=True, default=str) + "\n")
        print(f"\nresults written to {args.json}")
    return doc


def best_per_master(runs: Sequence[dict[str, Any]], masters: Sequence[str]) -> list[dict[str, Any]]:
    """The fastest (total) run of each master, in ``masters`` order, with speed-ups vs the first.

    Adds ``speedup_load``, ``speedup_map_reduce`` and ``speedup_total`` = T(masters[0]) / T(run).
    """
    best: dict[str, dict[str, Any]] = {}
    for run in runs:
        if run["master"] not in best or run["total_s"] < best[run["master"]]["total_s"]:
            best[run["master"]] = run
    base = best[masters[0]]
    for run in best.values():
        run["speedup_load"] = base["load_s"] / run["load_s"]
        run["speedup_map_reduce"] = base["map_reduce_s"] / run["map_reduce_s"]
        run["speedup_total"] = base["total_s"] / run["total_s"]
    return [best[m] for m in masters]


def spark_rows(best: Sequence[dict[str, Any]]) -> list[list[str]]:
    """Table rows (papers' Tables II / V style) of :func:`best_per_master`'s runs."""
    return [
        [
            "1", cores_of(b["master"]), f"{b['load_s']:.2f}", f"{b['map_reduce_s']:.2f}", f"{b['total_s']:.2f}",
            f"{b['speedup_load']:.2f}", f"{b['speedup_map_reduce']:.2f}", f"{b['speedup_total']:.2f}",
            f"{b['loadavg_1min_before']:.1f}",
        ]
        for b in best
    ]


def spark_report(r: Mapping[str, Any], head: str, per_run: str, work: str, target: float) -> str:
    """Markdown report of a Spark part: the table of :func:`spark_rows`, the verdict and the no-Spark row.

    ``r`` holds ``best`` (:func:`best_per_master`), ``baseline`` (its first master),
    ``target_met`` and ``no_spark`` (``None`` or the ``--no-spark`` run: ``load_s``,
    ``map_reduce_s``, ``total_s``, optionally ``loadavg_1min_before``).  ``per_run`` ends the
    verdict line (e.g. the rows each run wrote); ``work`` names the job's work in the no-Spark
    note (e.g. ``"labelling work"``).  With a no-Spark run the note gives the overhead Spark adds
    to map-reduce and the speed-up map-reduce would reach if only that work halved on 2 cores.
    """
    rows = spark_rows(r["best"])
    serial = r.get("no_spark")
    base = r["best"][0]
    last = r["best"][-1]
    foot = (f"map-reduce speed-up {last['master']} / {r['baseline']} = {last['speedup_map_reduce']:.2f}x "
            f"(target >= {target:g}x: {verdict(r['target_met'])}); "
            f"total (incl. JVM start) {last['speedup_total']:.2f}x; {per_run}")
    if serial is not None:
        load_avg = serial.get("loadavg_1min_before")
        rows.append([
            "no Spark", "1", f"{serial['load_s']:.2f}", f"{serial['map_reduce_s']:.2f}", f"{serial['total_s']:.2f}",
            f"{base['load_s'] / serial['load_s']:.2f}", f"{base['map_reduce_s'] / serial['map_reduce_s']:.2f}",
            f"{base['total_s'] / serial['total_s']:.2f}", "" if load_avg is None else f"{load_avg:.1f}",
        ])
        overhead = base["map_reduce_s"] - serial["map_reduce_s"]
        amdahl = base["map_reduce_s"] / (overhead + serial["map_reduce_s"] / 2.0)
        foot += (f"\nno-Spark row: the same job in one Python process (--no-spark). Spark adds "
                 f"{overhead:.2f} s to map-reduce on {r['baseline']}; if only the {work} "
                 f"({serial['map_reduce_s']:.2f} s, driver commit included) halved on 2 cores, map-reduce "
                 f"would speed up {amdahl:.2f}x")
    body = table(["executors", "cores", "load (s)", "map-reduce (s)", "total (s)", "speed-up load",
                  "speed-up map-reduce", "speed-up total", "load avg before"], rows)
    return f"{head}\n\n{body}\n\n{foot}"
