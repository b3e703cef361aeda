"""Spark job: 2 m tracks x Sentinel-2 labels -> pairs, drift shifts and labelled segments.

Usage::

    spark-submit seaice_tasks/spark_jobs/colocate.py --date 2019-11-04 --lake ROOT      # the day's tracks
    spark-submit seaice_tasks/spark_jobs/colocate.py --date 2019-11-04 --granules G1,G2 --lake ROOT \\
        --corrections corrections.csv --drift-overrides drift.csv --config '{"refine": true}'

Load (driver): the day's ``segments_2m`` tracks (or those of ``--granules``; a granule without
a 2 m partition is a recorded skip), the ``s2_labels`` scenes of the day and the days either side
(a pass within 80 min of midnight pairs across it), the corrections and drift tables (a table
that cannot be read is one line naming the file and row, exit 2; a row naming an unknown
granule of the day or overlapping another row is refused and recorded, the other rows apply).
Candidates are the (granule, scene) couples whose start and sensing times are close enough;
the executors check which beams of each really cross the scene's footprint in time
(:func:`~seaice_tasks.is2.colocate_work.plan_candidate_work`) and how many segments its drift
search will correlate, the weight by which the map pass packs the candidates into Spark tasks.
Map: each candidate with pairs (:func:`~seaice_tasks.is2.colocate_work.colocate_work`) finds its pairs
(beams crossing the valid footprint in time), estimates the drift, transfers the labels and
stages one ``segments_labelled`` partition per pair; a candidate that fails fails alone.
Commit: the labelled partitions, then the day's pair table ``s2_pairs/date=D`` and the report
``colocate_report/date=D`` (pairs, shifts, skips, failures, corrections applied and refused).
A whole-day run removes the day's labelled partitions it did not produce.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Any, Final

import fsspec
import pyarrow as pa

from seaice_tasks.config import parse_day
from seaice_tasks.errors import ConfigError, InputError
from seaice_tasks.is2.colocate import ColocateConfig, granule_start_utc, scene_sensing_utc
from seaice_tasks.is2.colocate_work import colocate_work, plan_candidate_work
from seaice_tasks.is2.label_transfer import check_corrections, read_corrections, read_drift_overrides
from seaice_tasks.outputs import TableOutput, write_partition
from seaice_tasks.products import (
    COLOCATE_REPORT,
    PAIRS_FILE,
    S2_LABELS,
    S2_PAIRS,
    S2_UNET_LABELS,
    SEGMENTS_2M,
    SEGMENTS_LABELLED,
)
from seaice_tasks.schemas import PAIRS_SCHEMA, validate_table
from seaice_tasks.spark_jobs.runner import Job, Run, day_tracks, main
from seaice_tasks.storage import PartitionKey, inputs_from_env

__all__ = ["JOB", "run", "day_tracks"]

#: A granule's photons span at most this long after its start time (s): a candidate scene must
#: be within ``max_dt_s`` plus this of the granule's start.
GRANULE_SPAN_S: Final[float] = 1800.0


def _read_bytes(url: str) -> bytes:
    try:
        with fsspec.open(url, "rb", **(inputs_from_env().options_for(url) or {})) as fh:
            data: bytes = fh.read()
    except (OSError, ValueError) as exc:
        raise InputError(url, f"cannot read ({type(exc).__name__}: {exc})") from None
    return data


def run(job: Run[ColocateConfig], granules: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Plan the (granule, scene) candidates, colocate them, commit; the job's summary."""
    day = parse_day(args.date)
    cfg = job.config
    beams: dict[str, list[str]] = {}
    for key in job.lake.partitions(SEGMENTS_2M.name, day):
        beams.setdefault(str(key.granule), []).append(str(key.beam))
    skipped: list[dict[str, Any]] = []
    selected = granules or sorted(beams)
    for g in selected:
        if g not in beams:
            skipped.append({"granule": g, "reason": f"granule {g}: no 2 m partition on {day} (run resample first)"})
    selected = [g for g in selected if g in beams]
    scenes: list[tuple[PartitionKey, dict[str, Any]]] = []
    unet: set[str] = set()
    for d in (day - dt.timedelta(days=1), day, day + dt.timedelta(days=1)):
        for key in job.lake.partitions(S2_LABELS.name, d):
            scenes.append((key, job.lake.require(key).info))
        unet |= {str(k.scene) for k in job.lake.partitions(S2_UNET_LABELS.name, d)}
    excluded = []
    usable_scenes = []
    for key, info in scenes:
        cloud = float(info.get("cloud_fraction", 0.0))
        water = float(info.get("class_fractions", {}).get("open_water", 0.0))
        if cloud > cfg.max_scene_cloud_fraction or water < cfg.min_scene_water_fraction:
            excluded.append({"scene": key.scene, "reason": f"scene {key.scene}: cloud {cloud:.1%} / water {water:.1%} "
                                                           f"outside the config's limits"})
        else:
            usable_scenes.append(key)
    refused: list[dict[str, Any]] = []
    corrections: dict[str, list[dict[str, Any]]] = {}
    if args.corrections:
        checked = check_corrections(read_corrections(_read_bytes(args.corrections), args.corrections),
                                    args.corrections, dict.fromkeys(beams, True))
        refused += list(checked.refused)
        for row in checked.rows.to_dict("records"):
            corrections.setdefault(str(row["granule"]), []).append({k: _plain(v) for k, v in row.items()})
    overrides: dict[tuple[str, str], list[dict[str, Any]]] = {}
    if args.drift_overrides:
        table = read_drift_overrides(_read_bytes(args.drift_overrides), args.drift_overrides)
        for row in table.to_dict("records"):
            overrides.setdefault((str(row["granule"]), str(row["scene"])), []).append(
                {k: _plain(v) for k, v in row.items()})
    skipped += refused
    records: list[dict[str, Any]] = []
    for g in selected:
        start = granule_start_utc(g)
        for key in usable_scenes:
            gap = abs((scene_sensing_utc(str(key.scene)) - start).total_seconds())
            if gap <= cfg.max_dt_s + GRANULE_SPAN_S:
                records.append({"date": day.isoformat(), "granule": g, "beams": sorted(beams[g]), "scene": key.scene,
                                "scene_date": key.date.isoformat() if key.date else day.isoformat(),
                                "unet": cfg.use_unet and key.scene in unet, "corrections": corrections.get(g, []),
                                "overrides": overrides.get((g, str(key.scene)), [])})
    planned = job.map(plan_candidate_work, records, weights=[float(len(r["beams"])) for r in records])
    failed = [{"pair": f"{r.record['granule']} x {r.record['scene']}", "reason": r.error}
              for r in planned if not r.ok]
    # weighted by the segments each drift search correlates: a few scenes carry all the work
    todo = [({**r.record, "beams": r.rows[0]["beams"]}, float(r.rows[0]["segments"]) + 1.0)
            for r in planned if r.ok and r.rows[0]["beams"]]
    job.lap("load")
    results = job.map(colocate_work, [rec for rec, _ in todo], weights=[w for _, w in todo])
    failed += [{"pair": f"{r.record['granule']} x {r.record['scene']}", "reason": r.error} for r in results if not r.ok]
    pairs = [row for r in results if r.ok for row in r.rows]
    skipped += [{"pair": f"{p['granule']}/{p['beam']} x {p['scene']}", "reason": p["skip"]} for p in pairs if p["skip"]]
    tried = {str(r.record["granule"]) for r in planned}
    paired = ({str(p["granule"]) for p in pairs} | {str(r.record["granule"]) for r in results if not r.ok}
              | {str(r.record["granule"]) for r in planned if not r.ok})
    skipped += [{"granule": g, "reason": f"granule {g}: no Sentinel-2 label scene crosses its tracks within "
                                         f"{cfg.max_dt_s:.0f} s ({'no' if g not in tried else 'no covering'} "
                                         f"candidate scene)"} for g in selected if g not in paired]
    pair_info: dict[PartitionKey, Any] = {
        SEGMENTS_LABELLED.key(date=day, granule=p["granule"], beam=p["beam"], scene=p["scene"]): p["info"]
        for p in pairs}
    manifests = job.commit(results, info=lambda key, _: pair_info[key])
    table = validate_table(pa.Table.from_pylist([{f.name: p.get(f.name) for f in PAIRS_SCHEMA} for p in pairs],
                                                schema=PAIRS_SCHEMA), PAIRS_SCHEMA, where="s2_pairs")
    pairs_key = S2_PAIRS.key(date=day)
    write_partition(job.lake, pairs_key, [TableOutput(pairs_key, PAIRS_FILE, table)], cfg,
                    {"pairs": len(pairs), "labelled": len(manifests)})
    job.committed.add(pairs_key)
    job.lap("map_reduce")
    applied = sorted({(p["granule"], p["beam"], int(c["row"])) for p in pairs
                      for c in p["info"].get("corrections", [])})
    return {
        "partitions": [m.key.relpath for m in manifests],
        "pairs": [{k: p[k] for k in ("granule", "beam", "scene", "dt_s", "overlap_m", "n_labelled", "shift_dx_m",
                                     "shift_dy_m", "shift_source", "shift_confidence", "agreement_before",
                                     "agreement_after", "drift_note")} for p in pairs],
        "candidates": len(records),
        "candidates_with_pairs": len(todo),
        "excluded_scenes": excluded,
        "corrections_applied": [{"granule": g, "beam": b, "row": r} for g, b, r in applied],
        "skipped": skipped,
        "failed": failed,
    }


def _plain(value: Any) -> Any:
    """numpy scalars -> Python (records travel as JSON)."""
    return value.item() if hasattr(value, "item") else value


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corrections", default="", help="manual label corrections table (CSV/Parquet URL: granule, beam, "
                                                     "x_from, x_to, class, author, note)")
    p.add_argument("--drift-overrides", default="", help="manual drift table (CSV/Parquet URL: granule, beam, scene, "
                                                         "dx, dy, author, note; EPSG:3976 m)")


def _check(args: argparse.Namespace, config: ColocateConfig) -> None:
    """``--date`` given; the corrections and drift tables readable and well-formed (before any work)."""
    del config
    if not args.date:
        raise ConfigError("--date is required (the 2 m tracks and labels are found by day)")
    if args.corrections:
        read_corrections(_read_bytes(args.corrections), args.corrections)
    if args.drift_overrides:
        read_drift_overrides(_read_bytes(args.drift_overrides), args.drift_overrides)


JOB = Job(name="colocate", config_type=ColocateConfig, inventory_kind="ATL03", inputs_arg="granules",
          report=COLOCATE_REPORT, body=run, description=__doc__, add_arguments=_add_arguments,
          check_arguments=_check, products=lambda args: (SEGMENTS_LABELLED,), day_inputs=day_tracks)

if __name__ == "__main__":
    sys.exit(main(JOB))
