"""Sea surface and freeboard scored against the simulator's truth on a day never used for tuning.

``python experiments/freeboard_accuracy.py --out DIR`` (a research script beside the package,
free to use the simulator :mod:`seaice_tasks.sim`):

1. simulates the **evaluation day** :data:`EVAL_DAY` (date and seed used nowhere else) and resamples
   it in process (2019-11-10, seed 1110, was looked at while the ``leads`` surface was designed:
   it is no longer an unseen day; the demo day, seed 20191104, chose ``lead_kernel_m``);
2. classifies every 2 m segment with the demo's model (:func:`seaice_tasks.demo.ensure_model`:
   the notebook LSTM trained on the demo's training day) with the classify job's inference code;
3. computes the sea surface and freeboard (:func:`seaice_tasks.surface.freeboard.freeboard_frame`)
   from four class sources: the **model's** classes (what the pipeline publishes), the **truth**
   classes (a perfect classifier), and two ceilings: **oracle leads** (truth classes and each
   open-water segment's height replaced by the true sea surface: what is left is the sampling
   of the sea surface by leads and the interpolation between them) and, for every estimator,
   the truth classes;
4. scores each against the truth (:func:`seaice_tasks.sim.scoring.score_freeboard`), with the
   simulated ATL10 of the same beams beside ours at ATL10's segment extents;
5. writes ``DIR/freeboard_accuracy.json`` and prints a Markdown table (docs/freeboard.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from seaice_tasks.catalog import run_discover
from seaice_tasks.demo import ensure_model
from seaice_tasks.io.atl10 import read_atl10_freeboard
from seaice_tasks.is2.classify import TRACK_COLUMNS, ClassifyConfig, classify_frame
from seaice_tasks.is2.resample import ResampleConfig
from seaice_tasks.models.lake import load_lake_model, promoted_version
from seaice_tasks.products import SEGMENTS_2M
from seaice_tasks.sim.day import simulate_day
from seaice_tasks.sim.days import day
from seaice_tasks.sim.geometry import SimConfig
from seaice_tasks.sim.scoring import freeboard_truth, score_freeboard
from seaice_tasks.spark_jobs.runner import load_job, run_job
from seaice_tasks.storage import InputStore, Lake
from seaice_tasks.surface.freeboard import FreeboardConfig, freeboard_frame

log = logging.getLogger("freeboard_accuracy")

#: Evaluation day: 3 granules x 100 km (the demo's size), a date and seed used nowhere else.
EVAL_DAY: Final[SimConfig] = day("freeboard_eval")
MODEL: Final[str] = "seaice-is2-lstm"
ESTIMATORS: Final[tuple[str, ...]] = ("nasa", "average", "minimum", "nearest_minimum", "nasa_smooth", "leads")


def _prepare(out: Path, day: SimConfig) -> tuple[Any, Lake]:
    sim_dir, lake = out / "sim", Lake(out / "lake")
    marker = out / "prepared.json"
    sim = simulate_day(day, sim_dir, workers=2) if not marker.exists() else None
    if sim is not None:
        run_discover(day.date, catalog=str(sim.catalog), lake=lake.root)
        run_job(load_job("resample"), [str(p) for p in sim.atl03], lake, ResampleConfig(), day=day.date,
                inputs=InputStore(str(sim.catalog)))
        marker.write_text(json.dumps({"atl03": [str(p) for p in sim.atl03], "atl10": [str(p) for p in sim.atl10],
                                      "truth": str(sim.truth)}))
    return json.loads(marker.read_text()), lake


def _tracks(lake: Lake, prep: dict[str, Any], config: SimConfig) -> list[dict[str, Any]]:
    day = dt.date.fromisoformat(config.date)
    version = promoted_version(lake, MODEL)
    assert version is not None
    loaded = load_lake_model(lake, MODEL, version)
    tracks = []
    for key in lake.partitions(SEGMENTS_2M.name, day):
        seg = lake.read_table(key).select(list(TRACK_COLUMNS)).to_pandas()
        seg = seg.sort_values("x_atc_m", kind="stable").reset_index(drop=True)
        atl03 = next(p for p in prep["atl03"] if str(key.granule) in p)
        atl10 = next(p for p in prep["atl10"] if str(key.granule)[:14] in p)
        truth_bins = pd.read_parquet(Path(prep["truth"]) / (Path(atl03).name.replace(".h5", "_truth_bins.parquet")))
        classified = classify_frame(seg, loaded, ClassifyConfig())
        predicted = classified["class"].to_numpy(dtype=np.uint8)
        frame = seg.rename(columns={"h_std_m": "height_sd_m"})
        frame["class"] = predicted
        frame["p_water"] = classified["p_water"].to_numpy(dtype=np.float64)
        for column in ("water_vote", "height_above_low_m"):  # the photon evidence of FreeboardConfig.leads
            frame[column] = classified[column].to_numpy(dtype=np.float64)
        truth = freeboard_truth(frame, truth_bins, str(key.beam))
        tracks.append({"frame": frame, "truth_bins": truth_bins, "beam": str(key.beam), "truth": truth,
                       "atl10": read_atl10_freeboard(atl10, str(key.beam)), "predicted": predicted})
    return tracks


def _score(tracks: list[dict[str, Any]], config: FreeboardConfig, source: str) -> dict[str, Any]:
    if source != "model":  # the truth's water as it is (no photon confirmation)
        config = dataclasses.replace(config, leads="classes")

    def rows() -> Any:
        for t in tracks:
            frame = t["frame"]
            classes = t["predicted"] if source == "model" else t["truth"]["truth_class"].to_numpy()
            if source == "oracle_leads":
                frame = frame.copy()
                water = classes == 2
                frame.loc[water, "h_cor_mean_m"] = t["truth"]["truth_surface_m"].to_numpy()[water]
            given = None if source == "model" else classes
            yield freeboard_frame(frame, config, classes=given), t["truth_bins"], t["beam"], t["atl10"]

    return score_freeboard(rows())


def _with(base: FreeboardConfig, **surface: Any) -> FreeboardConfig:
    return dataclasses.replace(base, surface=dataclasses.replace(base.surface, **surface))


def run(out: Path, day: SimConfig = EVAL_DAY, kernels: Sequence[float] = ()) -> dict[str, Any]:
    """Prepare, classify, score; the experiment's document."""
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    prep, lake = _prepare(out, day)
    ensure_model(lake, out / "model_work")
    tracks = _tracks(lake, prep, day)
    n = sum(len(t["frame"]) for t in tracks)
    base = FreeboardConfig()
    doc: dict[str, Any] = {"eval_day": dataclasses.asdict(day), "segments": n, "tracks": len(tracks),
                           "config": base.to_dict(), "results": {}}
    for source in ("model", "truth", "oracle_leads"):
        doc["results"][source] = _score(tracks, base, source)
        log.info("%s done", source)
    for est in ESTIMATORS:
        for source in ("model", "truth", "oracle_leads"):
            doc["results"][f"{source}/{est}"] = _score(tracks, _with(base, reference=est), source)
    for kernel in kernels:
        for source in ("model", "truth", "oracle_leads"):
            doc["results"][f"{source}/leads {kernel:g} m"] = _score(tracks, _with(base, reference="leads",
                                                                                  lead_kernel_m=kernel), source)
    for p_water in (0.1, 0.2, 0.3):
        doc["results"][f"model/leads, p_water >= {p_water:g}"] = _score(
            tracks, dataclasses.replace(base, lead_p_water=p_water), "model")
    for trim in (2.0, 6.0):
        for source in ("model", "truth"):
            doc["results"][f"{source}/nasa, edge trim {trim:g} m"] = _score(tracks, _with(base, lead_edge_trim_m=trim),
                                                                           source)
    doc["elapsed_s"] = round(time.perf_counter() - t0, 1)
    (out / "freeboard_accuracy.json").write_text(json.dumps(doc, indent=1, sort_keys=True))
    return doc


def _cm(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.1f}"


def markdown(doc: dict[str, Any]) -> str:
    """The results as the Markdown table of docs/freeboard.md."""
    lines = [f"Evaluation day {doc['eval_day']['date']} (seed {doc['eval_day']['seed']}), {doc['tracks']} tracks, "
             f"{doc['segments']:,} segments of 2 m.  cm; SS = sea surface per 10 km section; FB = 2 m ice "
             "freeboard; ext = averaged to ATL10's segments (ours / ATL10).", "",
             "| classes / surface | SS bias | SS RMSE | FB RMSE | heights RMSE | ratio | ext all | ext thick | "
             "ext thin | ext water |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in doc["results"].items():
        ss, fb = r["sea_surface"], r["freeboard_ice"]
        ext = r.get("atl10_extent", {})

        def pair(k: str, e: dict[str, Any] = ext) -> str:
            v = e.get(k, {})
            return f"{_cm(v.get('ours_rmse_m'))} / {_cm(v.get('atl10_rmse_m'))}" if v.get("n") else "-"

        lines.append(f"| {name} | {_cm(ss['bias_m'])} | {_cm(ss['section_rmse_m'])} | {_cm(fb['rmse_m'])} | "
                     f"{_cm(fb['height_rmse_m'])} | {fb['ratio']:.2f} | {pair('all')} | {pair('thick')} | "
                     f"{pair('thin')} | {pair('water')} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="var/experiments/freeboard", help="work and output folder")
    p.add_argument("--date", default=EVAL_DAY.date, help="day to simulate (default: the evaluation day)")
    p.add_argument("--seed", type=int, default=EVAL_DAY.seed, help="its seed")
    p.add_argument("--kernels", default="", help="comma-separated lead_kernel_m values to compare (m)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("seaice_tasks").setLevel(logging.WARNING)
    day = dataclasses.replace(EVAL_DAY, date=args.date, seed=args.seed)
    kernels = [float(k) for k in args.kernels.split(",") if k.strip()]
    print(markdown(run(Path(args.out), day, kernels)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
