"""Benchmark: peak memory of classify, freeboard and validate on one track of 200, 400 and 800 km.

Usage::

    .venv/bin/python benchmarks/track_memory_benchmark.py                       # before (BASELINE_REV) and after
    .venv/bin/python benchmarks/track_memory_benchmark.py --km 50 100 --baseline-rev ''   # quick, after only

Inputs (simulated and prepared once into ``--work``, default ``var/bench/trackmem``, reused when
its ``.complete`` marker records the same settings):

* ``lake/``: a small training day (2 granules x 40 km with a Sentinel-2 scene each: resampled,
  labelled, colocated, a training set, a segment model trained for 2 epochs and promoted), then
  for every ``--km`` one simulated granule of that length on its own day (2019-11-05, -06, ...):
  resampled, classified by the promoted model, freeboard computed (the jobs in process), so that
  each stage finds its input committed;
* ``sim_<km>km/``: the simulated catalogs (ATL03, ATL07, ATL10) the validate stage reads.

Measurement: for every stage, track length and code version, a fresh child process (``python
-c``) runs the stage's work function (``classify_track_work``, ``freeboard_track_work``,
``validate_track_work``) on the granule's longest beam with the default config, exactly as an
executor does: it reads the committed input from the lake, computes, and stages its outputs under
a throw-away token (removed afterwards; nothing is committed).  The child reports its own
``VmHWM`` (:func:`_bench.child_rss`).  "before" runs the package as it was at ``--baseline-rev``
(exported with ``git archive`` into the work folder and put first on the child's ``sys.path``),
"after" the working tree.  Both read the same lake.  "stream" (classify and freeboard) runs only
the working tree's chunked computation over the committed track (``classify_chunks`` /
``freeboard_chunks``), dropping every chunk's rows: the work function minus the output file.
"rg<N>" (classify and freeboard, one per ``--group-rows``) is "after" writing row groups of N rows
instead of :data:`~seaice_tasks.trackio.TRACK_ROW_GROUP_ROWS` (``classify_track`` /
``freeboard_track`` with ``group_rows``): its peak and its file's size, to choose the constant.

File check (classify and freeboard): the tables of "before" (one row group of up to 1,048,576
rows) and "after" (row groups of ``TRACK_ROW_GROUP_ROWS``) are read back and compared --
columns, values and metadata equal -- and the file size overhead of every row group size
against "before" is reported.

Target: flat in the track length -- peak RSS at 800 km <= 1.1 x at 200 km.  Threads are pinned to
one (``_bench.pin_threads``), as in the other benchmarks.
"""

from __future__ import annotations

import sys

from _bench import CHILD_PEAK, REPO_ROOT, child_rss, pin_threads, run_parts, table, verdict

pin_threads()
sys.path.insert(0, str(REPO_ROOT))  # tests/sim_lake.py

import argparse  # noqa: E402
import contextlib  # noqa: E402
import datetime as dt  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Final  # noqa: E402

COMPLETE_MARKER: Final[str] = ".complete"
DEFAULT_WORK: Final[Path] = Path("var/bench/trackmem")
DEFAULT_JSON: Final[Path] = Path("var/bench/track_memory_benchmark.json")
DEFAULT_KM: Final[tuple[float, ...]] = (200.0, 400.0, 800.0)
#: The last revision before the stages read tracks in chunks.
BASELINE_REV: Final[str] = "5f7d143"
TRAIN_DAY: Final[str] = "2019-11-04"
FIRST_TRACK_DAY: Final[dt.date] = dt.date(2019, 11, 5)
SEED: Final[int] = 5
MODEL: Final[str] = "seaice-is2-lstm"
STAGES: Final[tuple[str, ...]] = ("classify", "freeboard", "validate")
#: Product each stage writes and reads.
OUTPUT_OF: Final[dict[str, str]] = {"classify": "segments_classified", "freeboard": "freeboard",
                                    "validate": "validation"}
INPUT_OF: Final[dict[str, str]] = {"classify": "segments_2m", "freeboard": "segments_classified",
                                   "validate": "freeboard"}
TARGET_RATIO: Final[float] = 1.1
BYTES_PER_MIB: Final[float] = 1024.0 * 1024.0

#: The child: run one stage's work function on one track and stage its outputs (``work``), or only stream
#: the track through the stage's chunked computation, writing nothing (``stream``); report VmHWM.
CHILD: Final[str] = CHILD_PEAK + """
import json, sys, time, uuid
tree, lake_dir, stage, rec, config, catalog, what, keep = sys.argv[1:9]
if tree:
    sys.path.insert(0, tree)
from seaice_tasks.storage import InputStore, Lake
from seaice_tasks.work import WorkContext
from seaice_tasks.outputs import stage_output
if stage == "classify":
    import torch
    torch.set_num_threads(1)
    from seaice_tasks.is2.classify import ClassifyConfig as Config, classify_track_work as work
elif stage == "freeboard":
    from seaice_tasks.surface.freeboard import FreeboardConfig as Config, freeboard_track_work as work
else:
    from seaice_tasks.surface.validate import ValidateConfig as Config, validate_track_work as work
lake = Lake(lake_dir)
ctx = WorkContext(config=Config.from_json(config), lake=lake, inputs=InputStore(catalog), token=uuid.uuid4().hex)
rec = json.loads(rec)
t0 = time.perf_counter()
sizes = {}
if what == "work" or what.startswith("rg"):
    if what == "work":
        result = work(rec, ctx)
    elif stage == "classify":  # rg<N>: row groups of N rows
        from seaice_tasks.is2.classify import classify_track
        result = classify_track(ctx, rec["date"], rec["granule"], rec["beam"], rec["version"], ctx.config.chunk_rows,
                                group_rows=int(what[2:]))
    else:
        from seaice_tasks.surface.freeboard import freeboard_track
        result = freeboard_track(ctx, rec["date"], rec["granule"], rec["beam"], ctx.config.chunk_rows,
                                 group_rows=int(what[2:]))
    for output in result.outputs:
        sizes[output.name] = stage_output(lake, output, ctx.token, ctx.config).bytes
        if keep and output.name.endswith(".parquet"):
            with open(keep, "wb") as f:
                f.write(ctx.read_staged(output.key, output.name))
    lake.discard_staging(ctx.token)
else:
    from seaice_tasks.products import SEGMENTS_2M, SEGMENTS_CLASSIFIED
    from seaice_tasks.trackio import PartitionSource
    keys = {k: rec[k] for k in ("date", "granule", "beam")}
    if stage == "classify":
        from seaice_tasks.is2.classify import cached_model, classify_chunks
        with PartitionSource(lake, SEGMENTS_2M.key(**keys)) as source:
            model = cached_model(lake, ctx.config.model, rec["version"])
            sizes["rows"] = sum(len(out) for out in classify_chunks(source, model, ctx.config, ctx.config.chunk_rows))
    else:
        from seaice_tasks.surface.freeboard import freeboard_chunks
        with PartitionSource(lake, SEGMENTS_CLASSIFIED.key(**keys)) as source:
            sizes["rows"] = sum(len(out) for out in freeboard_chunks(source, ctx.config, ctx.config.chunk_rows))
print(json.dumps({**peak(), "work_s": time.perf_counter() - t0, "output_bytes": sizes}))
"""
#: What is measured: the work function at the baseline revision and now, the chunked computation alone (and
#: ``rg<N>``: the work function now with row groups of N rows, one mode per ``--group-rows``).
MODES: Final[tuple[str, ...]] = ("before", "after", "stream")
#: Row group sizes tried besides ``TRACK_ROW_GROUP_ROWS`` (rows).
DEFAULT_GROUP_ROWS: Final[tuple[int, ...]] = (65_536, 131_072, 262_144)
#: File size overhead against one row group per file a row group size may cost (fraction).
SIZE_OVERHEAD_LIMIT: Final[float] = 0.03
#: Stages whose output is a table file (compared and sized).
TABLE_STAGES: Final[tuple[str, ...]] = ("classify", "freeboard")


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """What the prepared work folder depends on."""
    return {"km": list(args.km), "seed": SEED, "train_day": TRAIN_DAY}


def ensure_inputs(args: argparse.Namespace) -> dict[str, Any]:
    """Simulate and prepare the lake unless the work folder has it (module docstring); the marker document."""
    marker = args.work / COMPLETE_MARKER
    if marker.exists():
        with contextlib.suppress(ValueError, KeyError):
            doc: dict[str, Any] = json.loads(marker.read_text())
            if doc["settings"] == settings(args):
                print(f"reusing {args.work}", flush=True)
                return doc
    import torch

    from seaice_tasks.catalog import run_discover
    from seaice_tasks.is2.colocate import ColocateConfig
    from seaice_tasks.is2.resample import ResampleConfig
    from seaice_tasks.is2.training_set import TrainingSetConfig, run_training_set
    from seaice_tasks.sim.day import simulate_day
    from seaice_tasks.sim.geometry import SimConfig
    from seaice_tasks.spark_jobs.runner import day_tracks, load_job, run_job
    from seaice_tasks.storage import InputStore, Lake
    from seaice_tasks.train.promotion import promote
    from seaice_tasks.train.segments import SegmentTrainConfig, train_segment_model
    from tests.sim_lake import resampled_and_labelled

    torch.set_num_threads(1)
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    t0 = time.perf_counter()
    print("training day: simulate, resample, label, colocate, train, promote ...", flush=True)
    train = SimConfig(date=TRAIN_DAY, seed=31, granules=2, km=40.0, scenes_per_granule=1, scene_km=12.0)
    _, lake_dir = resampled_and_labelled(train, args.work)
    lake = Lake(lake_dir)
    colocate = load_job("colocate")
    train_date = dt.date.fromisoformat(TRAIN_DAY)
    run_job(colocate, day_tracks(lake, train_date), lake, ColocateConfig(), day=TRAIN_DAY, whole_day=True)
    run_training_set(lake, [train_date], TrainingSetConfig(block_m=1000.0))
    trained = train_segment_model(lake, SegmentTrainConfig(epochs=2, batch_size=64))
    promote(lake, MODEL, trained["version"], force=True)
    tracks = {}
    for i, km in enumerate(args.km):
        day = (FIRST_TRACK_DAY + dt.timedelta(days=i)).isoformat()
        print(f"{km:g} km on {day}: simulate, resample, classify, freeboard ...", flush=True)
        sim = simulate_day(SimConfig(date=day, seed=SEED, granules=1, km=km, scenes_per_granule=0),
                           args.work / f"sim_{km:g}km", workers=1)
        run_discover(day, catalog=str(sim.catalog), lake=str(lake_dir))
        inputs = InputStore(str(sim.catalog))
        run_job(load_job("resample"), [str(p) for p in sim.atl03], lake, ResampleConfig(), day=day, inputs=inputs)
        for name in ("classify", "freeboard"):
            job = load_job(name)
            summary = run_job(job, day_tracks(lake, dt.date.fromisoformat(day)), lake, day=day,
                              whole_day=True, inputs=inputs)
            if summary["failed"] or summary["skipped"]:
                raise RuntimeError(f"preparing {km:g} km: {name} failed or skipped: {summary}")
        tracks[f"{km:g}"] = {"day": day, "catalog": str(sim.catalog)}
    doc = {"settings": settings(args), "lake": str(lake_dir), "tracks": tracks, "version": trained["version"],
           "prepare_s": time.perf_counter() - t0}
    marker.write_text(json.dumps(doc, indent=1, sort_keys=True))
    return doc


def baseline_tree(args: argparse.Namespace) -> str:
    """The package at ``--baseline-rev``, exported under the work folder ('' without a baseline)."""
    if not args.baseline_rev:
        return ""
    out = args.work / f"baseline_{args.baseline_rev}"
    if not (out / "seaice_tasks").is_dir():
        out.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(REPO_ROOT), "archive", args.baseline_rev, "seaice_tasks"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return str(out)


def track_record(lake_dir: str, info: dict[str, Any], version: str) -> tuple[dict[str, Any], int, dict[str, float]]:
    """The work record of the track's longest beam, its rows and the in-memory (Arrow) size of each output table."""
    from seaice_tasks.products import FREEBOARD, SEGMENTS_2M, SEGMENTS_CLASSIFIED
    from seaice_tasks.spark_jobs.runner import inventory_uris
    from seaice_tasks.storage import Lake
    from seaice_tasks.surface.validate import companion_uri

    lake = Lake(lake_dir)
    day = dt.date.fromisoformat(info["day"])
    keys = lake.partitions(SEGMENTS_2M.name, day)
    key = max(keys, key=lambda k: lake.require(k).rows)
    rows = lake.require(key).rows
    granule, beam = str(key.granule), str(key.beam)
    uris = {kind: inventory_uris(lake, day, kind) for kind in ("ATL03", "ATL07", "ATL10")}
    record = {"date": info["day"], "granule": granule, "beam": beam, "version": version,
              "atl03": next(u for u in uris["ATL03"] if granule in u),
              "atl07": companion_uri(granule, uris["ATL07"], "ATL07") or "",
              "atl10": companion_uri(granule, uris["ATL10"], "ATL10") or ""}
    sizes = {stage: lake.read_table(product.key(date=day, granule=granule, beam=beam)).nbytes / BYTES_PER_MIB
             for stage, product in (("classify", SEGMENTS_CLASSIFIED), ("freeboard", FREEBOARD))}
    return record, rows, sizes


def modes_of(args: argparse.Namespace) -> list[str]:
    """The modes measured, in order (``before`` only with a baseline revision)."""
    return [*(["before"] if args.baseline_rev else []), "after", "stream", *(f"rg{n}" for n in args.group_rows)]


def compare_files(before: Path, after: Path) -> dict[str, Any]:
    """Whether two Parquet files hold the same table (columns, values, metadata), and their row groups."""
    import pyarrow.parquet as pq

    a, b = pq.ParquetFile(before), pq.ParquetFile(after)
    equal = a.read().equals(b.read(), check_metadata=True)
    return {"values_equal": bool(equal), "row_groups_before": a.num_row_groups, "row_groups_after": b.num_row_groups,
            "rows": a.metadata.num_rows}


def run_memory(args: argparse.Namespace) -> dict[str, Any]:
    """Every stage x track length x mode in a fresh child; peak RSS, file sizes and the before/after file check."""
    from seaice_tasks.trackio import TRACK_ROW_GROUP_ROWS

    doc = ensure_inputs(args)
    before_tree = baseline_tree(args)
    kept_dir = args.work / "files"
    kept_dir.mkdir(parents=True, exist_ok=True)
    runs, checks = [], []
    for km in args.km:
        info = doc["tracks"][f"{km:g}"]
        record, rows, output_mib = track_record(doc["lake"], info, doc["version"])
        for stage in args.stages:
            rec = {k: record[k] for k in (("date", "granule", "beam", "version") if stage == "classify" else
                                          ("date", "granule", "beam") if stage == "freeboard" else
                                          ("date", "granule", "beam", "atl03", "atl07", "atl10"))}
            kept: dict[str, Path] = {}
            for mode in modes_of(args):
                if mode not in ("before", "after") and stage not in TABLE_STAGES:
                    continue  # validate writes no table: its work function is its stream
                if mode in ("before", "after") and stage in TABLE_STAGES:
                    kept[mode] = kept_dir / f"{mode}_{stage}.parquet"
                config = json.dumps(args.config if mode != "before" else {})
                what = "work" if mode in ("before", "after") else mode
                result = child_rss(CHILD, before_tree if mode == "before" else "", doc["lake"], stage, json.dumps(rec),
                                   config, info["catalog"], what, str(kept.get(mode, "")))
                group_rows = (TRACK_ROW_GROUP_ROWS if mode == "after" else int(mode[2:]) if mode.startswith("rg")
                              else None)
                run = {"stage": stage, "km": km, "mode": mode, "rows": rows, "group_rows": group_rows,
                       "output_table_mib": output_mib.get(stage), **result}
                runs.append(run)
                print(f"  {stage:9s} {km:5g} km {mode:9s}: {result['peak_rss_mib']:7.0f} MiB "
                      f"({result['work_s']:.1f} s) {result['output_bytes']}", flush=True)
            if len(kept) == 2:
                check = {"stage": stage, "km": km, **compare_files(kept["before"], kept["after"])}
                checks.append(check)
                print(f"  {stage:9s} {km:5g} km before/after: {check}", flush=True)
            for path in kept.values():
                path.unlink(missing_ok=True)
    return {"runs": runs, "checks": checks, "km": list(args.km), "baseline_rev": args.baseline_rev,
            "config": args.config, "track_row_group_rows": TRACK_ROW_GROUP_ROWS}


def _run(r: dict[str, Any], stage: str, km: float, mode: str) -> dict[str, Any] | None:
    for run in r["runs"]:
        if run["stage"] == stage and run["km"] == km and run["mode"] == mode:
            return dict(run)
    return None


def _peak(r: dict[str, Any], stage: str, km: float, mode: str) -> float:
    run = _run(r, stage, km, mode)
    return float(run["peak_rss_mib"]) if run else float("nan")


def _modes_run(r: dict[str, Any]) -> list[str]:
    seen = list(dict.fromkeys(run["mode"] for run in r["runs"]))
    return sorted(seen, key=lambda m: (MODES.index(m), 0) if m in MODES else (len(MODES), int(m[2:])))


def report_memory(r: dict[str, Any]) -> str:
    """Markdown: peak RSS per stage, length and mode against the target; file sizes and the before/after check."""
    kms = r["km"]
    rows_by_km = {run["km"]: run["rows"] for run in r["runs"]}
    out_mib = {(run["stage"], run["km"]): run["output_table_mib"] for run in r["runs"]}
    headers = ["stage", "code", *(f"{km:g} km ({rows_by_km[km]:,} rows)" for km in kms),
               f"{kms[-1]:g} / {kms[0]:g} km", f"flat (<= {TARGET_RATIO} x)",
               f"output table {kms[0]:g} / {kms[-1]:g} km (MiB)"]
    lines = []
    stages = sorted({run["stage"] for run in r["runs"]}, key=STAGES.index)
    for stage in stages:
        for mode in _modes_run(r):
            peaks = [_peak(r, stage, km, mode) for km in kms]
            if any(p != p for p in peaks):  # NaN: not measured
                continue
            ratio = peaks[-1] / peaks[0]
            held = (f"{out_mib[(stage, kms[0])]:.0f} / {out_mib[(stage, kms[-1])]:.0f}"
                    if out_mib.get((stage, kms[0])) is not None and mode in ("before", "after") else "-")
            lines.append([stage, mode, *(f"{p:.0f}" for p in peaks), f"{ratio:.2f}",
                          verdict(ratio <= TARGET_RATIO), held])
    out = ("## Peak RSS (MiB, VmHWM of a fresh process; before = the work function at "
           f"{r['baseline_rev'] or '-'}, after = the work function now (row groups of "
           f"{r['track_row_group_rows']:,} rows), stream = the chunked computation alone, nothing written, "
           "rg<N> = after with row groups of N rows)\n\n" + table(headers, lines))
    size_lines = []
    for stage in (s for s in stages if s in TABLE_STAGES):
        for km in kms:
            base = _run(r, stage, km, "before")
            for mode in (m for m in _modes_run(r) if m == "after" or m.startswith("rg")):
                run = _run(r, stage, km, mode)
                if run is None:
                    continue
                size = sum(run["output_bytes"].values())
                if base is None:
                    size_lines.append([stage, f"{km:g}", f"{run['group_rows']:,}", f"{size:,}", "-", "-", "-"])
                    continue
                before = sum(base["output_bytes"].values())
                overhead = size / before - 1.0
                size_lines.append([stage, f"{km:g}", f"{run['group_rows']:,}", f"{size:,}", f"{before:,}",
                                   f"{100 * overhead:+.1f} %", verdict(overhead <= SIZE_OVERHEAD_LIMIT)])
    if size_lines:
        out += ("\n\n## File size (bytes) per row group size, against before (one row group per file)\n\n"
                + table(["stage", "km", "row group (rows)", "file", "before", "overhead",
                         f"<= {100 * SIZE_OVERHEAD_LIMIT:g} %"], size_lines))
    if r.get("checks"):
        out += ("\n\n## before vs after: the tables read back (columns, values, metadata)\n\n"
                + table(["stage", "km", "rows", "row groups before / after", "equal"],
                        [[c["stage"], f"{c['km']:g}", f"{c['rows']:,}",
                          f"{c['row_groups_before']} / {c['row_groups_after']}", "yes" if c["values_equal"] else "NO"]
                         for c in r["checks"]]))
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--km", type=float, nargs="+", default=list(DEFAULT_KM), help="track lengths (km), shortest first")
    p.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    p.add_argument("--baseline-rev", default=BASELINE_REV,
                   help="git revision of the 'before' code ('' : after only)")
    p.add_argument("--group-rows", type=int, nargs="*", default=list(DEFAULT_GROUP_ROWS),
                   help="row group sizes (rows) also tried, one rg<N> mode each (none: '--group-rows')")
    p.add_argument("--config", type=json.loads, default={},
                   help='config of the "after" runs as JSON, e.g. \'{"chunk_rows": 32768}\' (default: defaults)')
    p.add_argument("--work", type=Path, default=DEFAULT_WORK, help="prepared inputs (reused)")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, help="results file")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Prepare the inputs, run every measurement, print the table, write the JSON."""
    args = build_parser().parse_args(argv)
    run_parts("track memory benchmark", args, ("memory",), {"memory": (run_memory, report_memory)}, argv,
              libraries=("numpy", "pandas", "pyarrow"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
