"""Benchmark: sea surface + freeboard -- segments per second per core, validation and quicklooks, Spark scaling.

Usage::

    .venv/bin/python benchmarks/freeboard_benchmark.py --part all
    .venv/bin/python benchmarks/freeboard_benchmark.py --quick      # smoke run: 2 granules x 24 km

Three parts (``--part throughput|spark|validate_spark|all``); the day is simulated once into
``--work`` (default ``var/bench``: ``freeboardday_<N>x<KM>km/``, reused when its ``.complete``
marker exists and records the same simulation) and prepared there:

* ``sim/`` -- the simulated catalog (ATL03 with the ATL07/ATL10 of each pass, ``--scenes`` S2
  scenes per granule; none by default: the freeboard stage reads no scene) and its truth;
* ``lake/`` -- the freeboard job's inputs: the day's inventory (``run_discover``), its
  ``segments_2m`` tracks (the resample job, ``run_job(load_job("resample"), ...)`` in process)
  and ``segments_classified`` with the simulator's TRUTH classes
  (``tests.sim_lake.classified_from_truth``).  No model is trained: the freeboard stage's speed
  does not depend on where the classes come from (it reads the class column and the heights;
  the classifier is timed by ``train_benchmark.py``, T-2), only its outputs' meaning does;
* ``lake_freeboard/`` -- a copy of ``lake/`` plus the day's ``freeboard`` partitions (the
  freeboard job run once in process): the validate job's inputs.

1. **throughput** (F-1) -- single core (OMP/MKL/OPENBLAS/... threads forced to 1 before numpy
   is imported), in this process: every track of the day read once beforehand (the reads are
   reported, not counted), then timed over all tracks, best of ``--repeats``:

   * ``seaice_tasks.surface.freeboard.freeboard_frame`` (sea surface, freeboard, thickness):
     segments per second per core -- the headline.  One further pass with ``sea_surface`` and
     ``ice_thickness`` wrapped gives their share (the best-of pass runs unwrapped);
   * ``seaice_tasks.surface.validate.compare_track`` on the committed freeboard tracks and
     ``read_reference(...)`` of the simulated ATL07/ATL10 (found as the validate job finds
     them: ``companion_uri`` among the day's inventory URIs);
   * ``seaice_tasks.surface.plots.track_quicklook`` per track, with the photon zoom the
     validate job draws (``zoom_photons``, read beforehand): seconds per track.

2. **spark** (F-2) -- the freeboard job ``seaice_tasks/spark_jobs/freeboard.py`` in whole-day
   mode (``--date D --lake COPY`` of ``lake/``) through ``spark-submit --master local[1]`` and
   ``local[2]``, interleaved ``--spark-repeats`` times (fastest kept), plus ``--no-spark`` in
   one process: load and map-reduce from the job's ``SEAICE_RESULT`` ``timings_s``, total wall
   time (JVM start included), speed-ups T(local[1]) / T(local[2]) as in the papers' Table V.
   Target: map-reduce >= 1.7x on 2 cores.
3. **validate_spark** (F-2) -- the same for the validate job ``seaice_tasks/spark_jobs/validate.py``
   on copies of ``lake_freeboard/`` (comparison, quicklook PNGs and the day's report), with
   ``SEAICE_CATALOG`` set to the simulated catalog as in the daily DAG.

All timings of one part are taken back to back in the same run; compare the RATIOS, not the
absolute numbers, which depend on the machine and on whatever else runs on it.  The results
(every part and a short ``summary``) are printed and written to ``--json`` (default
``var/bench/freeboard_benchmark.json``; ``--quick``: ``var/bench/freeboard_benchmark_quick.json``).
"""

from __future__ import annotations

import sys

from _bench import (
    REPO_ROOT,
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
sys.path.insert(0, str(REPO_ROOT))  # tests/sim_lake.py

import argparse  # noqa: E402
import contextlib  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import posixpath  # noqa: E402
import shutil  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Final  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from seaice_tasks.catalog import run_discover  # noqa: E402
from seaice_tasks.config import parse_day  # noqa: E402
from seaice_tasks.granule import parse_granule  # noqa: E402
from seaice_tasks.is2.resample import ResampleConfig  # noqa: E402
from seaice_tasks.products import FREEBOARD, SEGMENTS_CLASSIFIED  # noqa: E402
from seaice_tasks.sim.day import simulate_day  # noqa: E402
from seaice_tasks.sim.geometry import SimConfig  # noqa: E402
from seaice_tasks.spark_jobs import job_script  # noqa: E402
from seaice_tasks.spark_jobs.runner import inventory_uris, load_job, run_job  # noqa: E402
from seaice_tasks.storage import InputStore, Lake  # noqa: E402
from seaice_tasks.surface import freeboard as freeboard_module  # noqa: E402
from seaice_tasks.surface.freeboard import INPUT_COLUMNS, FreeboardConfig, freeboard_frame  # noqa: E402
from seaice_tasks.surface.plots import track_quicklook  # noqa: E402
from seaice_tasks.surface.validate import (  # noqa: E402
    ReferenceTrack,
    ValidateConfig,
    companion_uri,
    compare_track,
    read_reference,
    zoom_centre,
    zoom_height_range,
    zoom_photons,
)
from tests.sim_lake import classified_from_truth  # noqa: E402

COMPLETE_MARKER: Final[str] = ".complete"
PARTS: Final[tuple[str, ...]] = ("throughput", "spark", "validate_spark")
#: Spark parts: the job each runs and the prepared lake it starts from.
SPARK_PARTS: Final[dict[str, tuple[str, str]]] = {"spark": ("freeboard", "lake"),
                                                  "validate_spark": ("validate", "lake_freeboard")}

DEFAULT_WORK: Final[Path] = Path("var/bench")
DEFAULT_JSON: Final[Path] = DEFAULT_WORK / "freeboard_benchmark.json"
QUICK_JSON: Final[Path] = DEFAULT_WORK / "freeboard_benchmark_quick.json"
DEFAULT_DATE: Final[str] = "2019-11-04"
DEFAULT_SEED: Final[int] = 0
DEFAULT_GRANULES: Final[int] = 8
DEFAULT_KM: Final[float] = 40.0
DEFAULT_SCENES: Final[int] = 0
QUICK_GRANULES: Final[int] = 2
QUICK_KM: Final[float] = 24.0
DEFAULT_REPEATS: Final[int] = 3
DEFAULT_QUICKLOOK_REPEATS: Final[int] = 2
DEFAULT_SPARK_REPEATS: Final[int] = 2
DEFAULT_MASTERS: Final[tuple[str, ...]] = ("local[1]", "local[2]")
#: Processes of ``simulate_day`` (the cached inputs do not depend on it).
SIM_WORKERS: Final[int] = 2
CATALOG_ENV: Final[str] = "SEAICE_CATALOG"

TARGET_MAP_REDUCE_SPEEDUP: Final[float] = 1.7


# ----------------------------------------------------------------------------------------------
# Inputs (simulated and prepared once, reused from the work folder)
# ----------------------------------------------------------------------------------------------


def sim_config(args: argparse.Namespace) -> SimConfig:
    """The simulated day of this run."""
    return SimConfig(date=args.date, seed=args.seed, granules=args.granules, km=args.km,
                     scenes_per_granule=args.scenes)


def day_dir(args: argparse.Namespace) -> Path:
    """Cache folder of a prepared day: ``freeboardday_<N>x<KM>km`` (+ the non-default settings)."""
    name = f"freeboardday_{args.granules}x{args.km:g}km"
    if args.seed != DEFAULT_SEED:
        name += f"_seed{args.seed}"
    if args.scenes != DEFAULT_SCENES:
        name += f"_scenes{args.scenes}"
    if args.date != DEFAULT_DATE:
        name += f"_{args.date}"
    work: Path = args.work
    return work / name


def ensure_day(args: argparse.Namespace) -> dict[str, Any]:
    """Simulate and prepare the day unless cached (module docstring); its marker document.

    The marker (``.complete``, JSON) holds the simulation's config, the catalog folder and the
    preparation times; a marker of another config is rebuilt.
    """
    out = day_dir(args)
    marker = out / COMPLETE_MARKER
    config = sim_config(args)
    if marker.exists():
        with contextlib.suppress(ValueError, KeyError):
            doc: dict[str, Any] = json.loads(marker.read_text())
            if doc["sim_config"] == json.loads(config.to_json()):
                print(f"reusing {out}", flush=True)
                return doc
        print(f"{marker} is stale or unreadable: rebuilding {out}", flush=True)
    shutil.rmtree(out, ignore_errors=True)
    print(f"simulating day {args.date}, {args.granules} x {args.km:g} km, {args.scenes} scene(s) per granule, "
          f"seed {args.seed} -> {out} ...", flush=True)
    sim = simulate_day(config, out / "sim", workers=SIM_WORKERS)
    lake_dir = out / "lake"
    print(f"  simulated in {sim.seconds:.1f} s; discover, resample and truth classes into {lake_dir} ...", flush=True)
    t0 = time.perf_counter()
    run_discover(args.date, catalog=str(sim.catalog), lake=str(lake_dir))
    lake = Lake(lake_dir)
    summary = run_job(load_job("resample"), [str(p) for p in sim.atl03], lake, ResampleConfig(), day=args.date,
                      inputs=InputStore(str(sim.catalog)))
    if summary.get("failed"):
        raise RuntimeError(f"preparing the lake: resample failed: {summary['failed']}")
    t_resample = time.perf_counter() - t0
    classified = classified_from_truth(lake, sim, args.date)
    if not classified:
        raise RuntimeError(f"preparing the lake: no 2 m track on {args.date} in {lake_dir}")
    t_classes = time.perf_counter() - t0 - t_resample
    print(f"  {classified} classified track(s) (truth classes); the freeboard job in process into "
          f"{out / 'lake_freeboard'} ...", flush=True)
    shutil.copytree(lake_dir, out / "lake_freeboard")
    fb_lake = Lake(out / "lake_freeboard")
    job = load_job("freeboard")
    assert job.day_inputs is not None
    day = parse_day(args.date)
    fb = run_job(job, job.day_inputs(fb_lake, day), fb_lake, FreeboardConfig(), day=day, whole_day=True)
    if fb["failed"]:
        raise RuntimeError(f"preparing the lake: freeboard failed: {fb['failed']}")
    doc = {
        "sim_config": json.loads(config.to_json()),
        "catalog": str(Path(sim.catalog).resolve()),
        "sim_s": sim.seconds,
        "resample_s": t_resample,
        "classes_s": t_classes,
        "freeboard_s": time.perf_counter() - t0 - t_resample - t_classes,
        "tracks": classified,
        "sim_summary": sim.summary(),
    }
    marker.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"  lake prepared in {time.perf_counter() - t0:.1f} s", flush=True)
    return doc


@dataclasses.dataclass
class Track:
    """One beam of the day, read once before the clock starts."""

    granule: str
    beam: str
    classified: pd.DataFrame  #: the freeboard stage's input (INPUT_COLUMNS)
    ours: pd.DataFrame  #: the committed freeboard track, sorted (the validate stage's input)
    atl03: str
    atl07: str | None
    atl10: str | None
    ref: ReferenceTrack | None = None
    photons: pd.DataFrame | None = None

    @property
    def name(self) -> str:
        """``granule/beam``."""
        return f"{self.granule}/{self.beam}"


def read_tracks(out: Path, date: str) -> tuple[list[Track], dict[str, float]]:
    """Every classified track and its committed freeboard, with the companions' URIs; the read times."""
    day = parse_day(date)
    lake, fb_lake = Lake(out / "lake"), Lake(out / "lake_freeboard")
    uris = {kind: inventory_uris(lake, day, kind) for kind in ("ATL03", "ATL07", "ATL10")}
    atl03 = {parse_granule(posixpath.basename(u)).granule: u for u in uris["ATL03"]}
    t0 = time.perf_counter()
    classified = {(str(k.granule), str(k.beam)): lake.read_table(k).select(list(INPUT_COLUMNS)).to_pandas()
                  for k in lake.partitions(SEGMENTS_CLASSIFIED.name, day)}
    t_classified = time.perf_counter() - t0
    tracks = []
    for (granule, beam), frame in sorted(classified.items()):
        ours = fb_lake.read_table(FREEBOARD.key(date=day, granule=granule, beam=beam)).to_pandas()
        tracks.append(Track(granule, beam, frame, ours.sort_values("x_atc_m", kind="stable").reset_index(drop=True),
                            atl03.get(granule, ""), companion_uri(granule, uris["ATL07"], "ATL07"),
                            companion_uri(granule, uris["ATL10"], "ATL10")))
    return tracks, {"read_classified_s": t_classified,
                    "read_freeboard_s": time.perf_counter() - t0 - t_classified}


# ----------------------------------------------------------------------------------------------
# 1. Throughput
# ----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def wrapped_time(module: Any, names: Sequence[str]) -> Iterator[dict[str, float]]:
    """Summed wall time of the module-level functions ``names`` while inside (put back on exit)."""
    spent = dict.fromkeys(names, 0.0)
    originals = {name: getattr(module, name) for name in names}

    def wrap(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*a: Any, **kw: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                spent[name] += time.perf_counter() - t0

        return call

    try:
        for name, fn in originals.items():
            setattr(module, name, wrap(name, fn))
        yield spent
    finally:
        for name, fn in originals.items():
            setattr(module, name, fn)


def _read_references(tracks: Sequence[Track], zoom_m: float) -> dict[str, float]:
    """ATL07/ATL10 of every track and its photon zoom, into the tracks; the read times."""
    t0 = time.perf_counter()
    for t in tracks:
        t.ref = read_reference(t.atl07, t.atl10, t.beam)
    t_ref = time.perf_counter() - t0
    for t in tracks:
        if t.atl03 and len(t.ours):
            t.photons = zoom_photons(t.atl03, t.beam, zoom_centre(t.ours), zoom_m, zoom_height_range(t.ours))
    return {"read_reference_s": t_ref, "zoom_photons_s": time.perf_counter() - t0 - t_ref}


def _quicklooks(tracks: Sequence[Track], docs: Sequence[dict[str, Any]], day: str) -> list[bytes]:
    """The validate job's quicklook of every track."""
    return [track_quicklook(t.ours, title=f"{t.granule} {t.beam} {day}", atl07=t.ref.atl07 if t.ref else None,
                            atl10=t.ref.atl10 if t.ref else None,
                            atl10_surface=t.ref.atl10_surface if t.ref else None, photons=t.photons,
                            datum_offset_m=float(doc.get("datum", {}).get("offset_m") or 0.0))
            for t, doc in zip(tracks, docs, strict=True)]


def _check_frames(tracks: Sequence[Track], frames: Sequence[pd.DataFrame]) -> int:
    """Tracks whose computed freeboard differs from the committed one (should be 0)."""
    bad = 0
    for t, f in zip(tracks, frames, strict=True):
        a = f["freeboard_m"].to_numpy(dtype=np.float64)
        b = t.ours["freeboard_m"].to_numpy(dtype=np.float64)
        bad += int(a.shape != b.shape or not np.allclose(a, b, equal_nan=True, rtol=0.0, atol=1e-9))
    return bad


def run_throughput(args: argparse.Namespace) -> dict[str, Any]:
    """Part 1 (F-1): freeboard_frame, compare_track and track_quicklook in this process, single core."""
    prep = ensure_day(args)
    out = day_dir(args)
    tracks, reads = read_tracks(out, args.date)
    if not tracks:
        raise RuntimeError(f"no classified track on {args.date} in {out / 'lake'}")
    segments = sum(len(t.classified) for t in tracks)
    fb_segments = sum(len(t.ours) for t in tracks)
    print(f"\n[throughput] {len(tracks)} track(s), {segments:,} segments, in process, single core, best of "
          f"{args.repeats} (quicklooks: {args.quicklook_repeats})", flush=True)
    cfg, vcfg = FreeboardConfig(), ValidateConfig()

    t_fb, frames = timed(lambda: [freeboard_frame(t.classified, cfg) for t in tracks], args.repeats)
    mismatched = _check_frames(tracks, frames)
    with wrapped_time(freeboard_module, ("sea_surface", "ice_thickness")) as inner:
        t_wrapped, _ = timed(lambda: [freeboard_frame(t.classified, cfg) for t in tracks], 1)
    print(f"  freeboard_frame {t_fb.wall_s:.3f} s ({segments / t_fb.wall_s:,.0f} segments/s); sea_surface "
          f"{inner['sea_surface']:.3f} s of {t_wrapped.wall_s:.3f} s (wrapped pass)", flush=True)

    reads.update(_read_references(tracks, vcfg.zoom_m))
    with_atl07 = sum(t.ref is not None and t.ref.atl07 is not None for t in tracks)
    with_atl10 = sum(t.ref is not None and t.ref.atl10 is not None for t in tracks)
    if not with_atl07 or not with_atl10:
        print(f"  WARNING: ATL07 found for {with_atl07}, ATL10 for {with_atl10} of {len(tracks)} tracks: the "
              "comparison measures little", flush=True)
    t_cmp, docs = timed(lambda: [compare_track(t.ours, t.ref, vcfg) for t in tracks if t.ref is not None],
                        args.repeats)
    print(f"  compare_track {t_cmp.wall_s:.3f} s ({fb_segments / t_cmp.wall_s:,.0f} segments/s)", flush=True)

    warm, _ = timed(lambda: _quicklooks(tracks[:1], docs[:1], args.date), 1)  # matplotlib's first figure
    t_ql, pngs = timed(lambda: _quicklooks(tracks, docs, args.date), args.quicklook_repeats)
    print(f"  track_quicklook {t_ql.wall_s:.2f} s ({t_ql.wall_s / len(tracks):.3f} s per track; first figure "
          f"{warm.wall_s:.2f} s)", flush=True)
    n = len(tracks)
    return {
        "day_dir": str(out),
        "date": args.date,
        "prepared": {k: v for k, v in prep.items() if k != "sim_summary"},
        "tracks": n,
        "segments": segments,
        "freeboard_segments": fb_segments,
        "repeats": args.repeats,
        "quicklook_repeats": args.quicklook_repeats,
        "reads_s": reads,
        "freeboard_frame_s": t_fb.wall_s,
        "freeboard_frame_cpu_over_wall": t_fb.cpu_s / t_fb.wall_s,
        "freeboard_segments_per_s": segments / t_fb.wall_s,
        "freeboard_s_per_track": t_fb.wall_s / n,
        "freeboard_mismatched_tracks": mismatched,
        "wrapped_pass_s": t_wrapped.wall_s,
        "sea_surface_s": inner["sea_surface"],
        "ice_thickness_s": inner["ice_thickness"],
        "share_sea_surface": inner["sea_surface"] / t_wrapped.wall_s,
        "share_ice_thickness": inner["ice_thickness"] / t_wrapped.wall_s,
        "tracks_with_atl07": with_atl07,
        "tracks_with_atl10": with_atl10,
        "compare_track_s": t_cmp.wall_s,
        "compare_segments_per_s": fb_segments / t_cmp.wall_s,
        "compare_s_per_track": t_cmp.wall_s / max(len(docs), 1),
        "quicklook_s": t_ql.wall_s,
        "quicklook_s_per_track": t_ql.wall_s / n,
        "quicklook_segments_per_s": fb_segments / t_ql.wall_s,
        "quicklook_first_figure_s": warm.wall_s,
        "quicklook_png_kib_mean": sum(len(p) for p in pngs) / len(pngs) / 1024.0,
        "validate_work_s_per_track": (reads["read_reference_s"] + reads["zoom_photons_s"] + t_cmp.wall_s
                                      + t_ql.wall_s) / n,
    }


def report_throughput(r: dict[str, Any]) -> str:
    """Table of part 1."""
    n = r["tracks"]

    def row(step: str, wall: float, segments: int | None, note: str = "") -> list[str]:
        per_s = f"{segments / wall:,.0f}" if segments and wall > 0 else ""
        return [step, f"{wall:.3f}", f"{wall / n:.4f}", per_s, note]

    io = "I/O, read once beforehand, not timed with the step"

    s, fs, reads = r["segments"], r["freeboard_segments"], r["reads_s"]
    share = "share of one extra pass with the function wrapped"
    rows = [
        row("read segments_classified tracks", reads["read_classified_s"], s, io),
        row("**freeboard_frame** (surface + freeboard + thickness)", r["freeboard_frame_s"], s, "F-1"),
        row(f"  sea_surface: {100 * r['share_sea_surface']:.0f} %", r["share_sea_surface"] * r["freeboard_frame_s"],
            None, share),
        row(f"  ice_thickness: {100 * r['share_ice_thickness']:.0f} %",
            r["share_ice_thickness"] * r["freeboard_frame_s"], None, share),
        row("read freeboard tracks", reads["read_freeboard_s"], fs, io),
        row("read_reference: ATL07 + ATL10 of the beam", reads["read_reference_s"], fs, io),
        row("compare_track (validation figures)", r["compare_track_s"], fs),
        row("zoom_photons: ATL03 photons of the zoom", reads["zoom_photons_s"], fs, io),
        row("track_quicklook (PNG, with the photon zoom)", r["quicklook_s"], fs),
    ]
    head = (f"## throughput (F-1): freeboard of {r['date']}, {n} tracks, {s:,} segments, in process, single core, "
            f"best of {r['repeats']} (quicklooks best of {r['quicklook_repeats']})")
    body = table(["step", "wall (s)", "s per track", "segments/s", "note"], rows)
    foot = (f"**{r['freeboard_segments_per_s']:,.0f} segments/s per core** for freeboard_frame (cpu/wall "
            f"{r['freeboard_frame_cpu_over_wall']:.2f}; committed freeboard reproduced on "
            f"{n - r['freeboard_mismatched_tracks']}/{n} tracks); compare_track {r['compare_segments_per_s']:,.0f} "
            f"segments/s ({r['compare_s_per_track']:.4f} s per track, ATL07 on {r['tracks_with_atl07']}, ATL10 on "
            f"{r['tracks_with_atl10']} tracks); quicklook {r['quicklook_s_per_track']:.3f} s per track "
            f"({r['quicklook_png_kib_mean']:.0f} KiB PNG; first figure of the process "
            f"{r['quicklook_first_figure_s']:.2f} s); the validate work per track (reads + comparison + quicklook) "
            f"{r['validate_work_s_per_track']:.3f} s")
    return f"{head}\n\n{body}\n\n{foot}"


# ----------------------------------------------------------------------------------------------
# 2./3. Spark
# ----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def environ(name: str, value: str | None) -> Iterator[None]:
    """``os.environ[name] = value`` while inside (``None``: unchanged)."""
    old = os.environ.get(name)
    if value is not None:
        os.environ[name] = value
    try:
        yield
    finally:
        if value is not None:
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def run_spark_job(job: str, master: str | None, lake_from: Path, date: str, work: Path) -> dict[str, Any]:
    """One whole-day run of ``job`` (``master`` ``None``: ``--no-spark``) on a copy of ``lake_from``."""
    print(f"  {job} {master or 'no Spark (one process)'}: ...", flush=True)
    run = run_job_once(job_script(job), ["--date", date], master, work, lake_from=lake_from)
    summary, wall = run["summary"], run["wall_s"]
    if summary["failed"] or summary["skipped"]:
        raise RuntimeError(f"{job} {master}: failed {summary['failed']}, skipped {summary['skipped']}")
    timings = summary["timings_s"]
    print(f"    load {timings['load']:.2f} s, map-reduce {timings['map_reduce']:.2f} s, total {wall:.2f} s, "
          f"{summary['tracks']} tracks", flush=True)
    return {
        "master": master or "none",
        "load_s": float(timings["load"]),
        "map_reduce_s": float(timings["map_reduce"]),
        "total_s": wall,
        "tracks": int(summary["tracks"]),
        "segments": int(summary.get("segments") or 0),
        "partitions": len(summary["partitions"]),
        "loadavg_1min_before": run["loadavg_1min_before"],
    }


def spark_part(part: str, args: argparse.Namespace) -> dict[str, Any]:
    """A Spark part: its job on local[1] and local[2] (each a fresh JVM and lake copy), plus --no-spark."""
    job, lake_name = SPARK_PARTS[part]
    prep = ensure_day(args)
    lake_from = day_dir(args) / lake_name
    repeats = args.spark_repeats
    print(f"\n[{part}] {job} job, whole day {args.date} ({prep['tracks']} tracks), masters "
          f"{', '.join(args.masters)}, best of {repeats}", flush=True)
    # the validate job reads the raw ATL03/ATL07/ATL10 with the catalog's storage options
    with environ(CATALOG_ENV, prep["catalog"] if job == "validate" else None):
        serial = run_spark_job(job, None, lake_from, args.date, args.work) if args.no_spark_baseline else None
        runs = [run_spark_job(job, m, lake_from, args.date, args.work) for _ in range(max(repeats, 1))
                for m in args.masters]
    best = best_per_master(runs, args.masters)
    return {
        "job": job,
        "lake": str(lake_from),
        "date": args.date,
        "tracks": best[0]["tracks"],
        "segments": best[0]["segments"],
        "repeats": repeats,
        "runs": runs,
        "best": best,
        "no_spark": serial,
        "baseline": args.masters[0],
        "target_map_reduce_speedup_min": TARGET_MAP_REDUCE_SPEEDUP,
        "target_met": best[-1]["speedup_map_reduce"] >= TARGET_MAP_REDUCE_SPEEDUP,
    }


def report_spark_part(r: dict[str, Any]) -> str:
    """Table of a Spark part in the style of the papers' Tables II / V."""
    what = {"freeboard": "sea surface, freeboard, thickness and commit",
            "validate": "comparison with ATL07/ATL10, quicklook PNGs, the day's report"}[r["job"]]
    segs = f", {r['segments']:,} segments" if r["segments"] else ""
    head = (f"## {'spark' if r['job'] == 'freeboard' else 'validate_spark'} (F-2): the {r['job']} job ({what}), "
            f"whole day {r['date']}, {r['tracks']} tracks (work items){segs}; best of {r['repeats']}, "
            f"speed-up = T({r['baseline']}) / T(config)")
    per_run = f"tracks per run: {', '.join(str(b['tracks']) for b in r['best'])}"
    return spark_report(r, head, per_run, f"{r['job']} work", TARGET_MAP_REDUCE_SPEEDUP)


# ----------------------------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------------------------


def summary_of(doc: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of the parts that ran."""
    out: dict[str, Any] = {}
    if "throughput" in doc:
        r = doc["throughput"]
        out["F-1"] = {k: r[k] for k in ("tracks", "segments", "freeboard_segments_per_s", "share_sea_surface",
                                        "compare_segments_per_s", "compare_s_per_track", "quicklook_s_per_track",
                                        "quicklook_segments_per_s", "validate_work_s_per_track",
                                        "freeboard_mismatched_tracks")}
    for part in SPARK_PARTS:
        if part in doc:
            r = doc[part]
            last = r["best"][-1]
            out[f"F-2 {r['job']}"] = {
                "tracks": r["tracks"],
                **{f"{b['master']} {k}": round(b[k], 3) for b in r["best"] for k in ("load_s", "map_reduce_s",
                                                                                     "total_s")},
                "speedup_map_reduce": round(last["speedup_map_reduce"], 3),
                "speedup_total": round(last["speedup_total"], 3),
                "no_spark_map_reduce_s": None if r["no_spark"] is None else round(r["no_spark"]["map_reduce_s"], 3),
                "target_map_reduce_speedup_min": r["target_map_reduce_speedup_min"],
                "target_met": r["target_met"],
            }
    return out


def build_parser() -> argparse.ArgumentParser:
    """Command-line arguments."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                epilog="See docs/benchmarks.md for measured numbers.")
    p.add_argument("--part", choices=(*PARTS, "all"), default="all", help="which part(s) to run")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke run: {QUICK_GRANULES} granules x {QUICK_KM:g} km, one Spark repeat, "
                        f"JSON to {QUICK_JSON} (unless --json)")
    p.add_argument("--work", type=Path, default=DEFAULT_WORK, help="cache of simulated inputs (default var/bench)")
    p.add_argument("--json", type=Path, default=None, help=f"results file (default {DEFAULT_JSON})")
    p.add_argument("--date", default=DEFAULT_DATE, help="UTC day of the simulated day")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the simulated day")
    p.add_argument("--granules", type=int, default=None, help=f"granules of the day ({DEFAULT_GRANULES})")
    p.add_argument("--km", type=float, default=None, help=f"along-track km per granule ({DEFAULT_KM:g})")
    p.add_argument("--scenes", type=int, default=DEFAULT_SCENES, help="S2 scenes per granule (not read here)")
    p.add_argument("--repeats", type=int, default=DEFAULT_REPEATS,
                   help="passes of freeboard_frame and compare_track, fastest kept (1)")
    p.add_argument("--quicklook-repeats", type=int, default=DEFAULT_QUICKLOOK_REPEATS,
                   help="passes of the quicklooks, fastest kept (1)")
    p.add_argument("--spark-repeats", type=int, default=None,
                   help=f"runs per master, fastest kept ({DEFAULT_SPARK_REPEATS}; --quick: 1)")
    p.add_argument("--masters", type=lambda s: tuple(s.split(",")), default=DEFAULT_MASTERS,
                   help="comma-separated Spark masters; the first is the speed-up baseline")
    p.add_argument("--no-spark-baseline", action=argparse.BooleanOptionalAction, default=True,
                   help="also time each job with --no-spark in one process")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected parts, print their tables and a JSON summary, write the JSON file."""
    args = build_parser().parse_args(argv)
    if args.granules is None:
        args.granules = QUICK_GRANULES if args.quick else DEFAULT_GRANULES
    if args.km is None:
        args.km = QUICK_KM if args.quick else DEFAULT_KM
    if args.spark_repeats is None:
        args.spark_repeats = 1 if args.quick else DEFAULT_SPARK_REPEATS
    json_path: Path = args.json if args.json is not None else (QUICK_JSON if args.quick else DEFAULT_JSON)
    args.json = None  # written below, with the summary
    parts = PARTS if args.part == "all" else (args.part,)
    runners = {
        "throughput": (run_throughput, report_throughput),
        "spark": (lambda a: spark_part("spark", a), report_spark_part),
        "validate_spark": (lambda a: spark_part("validate_spark", a), report_spark_part),
    }
    title = "freeboard benchmark" + (" (--quick smoke run)" if args.quick else "")
    doc = run_parts(title, args, parts, runners, argv, libraries=("numpy", "pandas", "matplotlib"))
    doc["quick"] = args.quick
    doc["summary"] = summary_of(doc)
    print("\n" + json.dumps(doc["summary"], indent=1, sort_keys=True))
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(doc, indent=1, sort_keys=True, default=str) + "\n")
    print(f"\nresults written to {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
