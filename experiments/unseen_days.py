"""The published classes, sea surface and freeboard scored against the truth on named days unlike the training day.

``python experiments/unseen_days.py --out DIR --days tuning|unseen|issue26|NAME[,NAME...] [--epochs N]``
(a research script beside the package, free to use the simulator :mod:`seaice_tasks.sim`):

1. prepares the demo's **training day** (:data:`seaice_tasks.demo.TRAIN_CONFIG`: discover, resample,
   S2 labels, colocation with the default label policy, in process) and builds its training set
   with the default :class:`~seaice_tasks.is2.training_set.TrainingSetConfig` -- labels from the
   pipeline (Sentinel-2 and the photons), never from the truth;
2. trains the default recipe (:class:`~seaice_tasks.train.segments.SegmentTrainConfig`, ``--epochs``)
   on it, the **ceiling** (the same network on the same windows with the simulator's truth as
   labels) and the **paper recipe** (:mod:`seaice_tasks.recipes`: the S2 colour labels as they
   are and the notebook features, in a lake of its own);
3. for every requested day of :data:`seaice_tasks.sim.days.DAYS` (``tuning``: the tuning days,
   ``unseen``: the days never tuned on -- score them once, after the method is frozen;
   ``issue26``: the five days the current method was scored on, now reported): simulates
   and resamples it, classifies every 2 m segment with both models (the classify job's inference,
   :func:`~seaice_tasks.is2.classify.classify_frame`), and scores

   * the classes against the truth (recipe, ceiling, and the photon evidence's rule alone), and
     away from class edges (segments whose ~11 m footprint stays in one class: the bound that
     the footprint sets on 2 m classes);
   * the sea surface and freeboard (:func:`~seaice_tasks.surface.freeboard.freeboard_frame`) of
     the published configuration (:class:`~seaice_tasks.surface.freeboard.FreeboardConfig`
     defaults) and of its alternatives (lead detector, per-lead height), with two ceilings:
     the truth classes, and the truth classes with perfect lead heights (``oracle leads``);
     ATL10 of the same beams at its own segments beside ours;
4. scores the training day's labels of both recipes against the truth (docs/colocation.md);
5. writes ``DIR/unseen_days_<days>.json`` and prints the Markdown tables of docs/freeboard.md,
   docs/classification.md and docs/colocation.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from seaice_tasks.catalog import run_discover
from seaice_tasks.demo import TRAIN_CONFIG, TRAIN_EPOCHS, prepare_labelled_day
from seaice_tasks.io.atl10 import read_atl10_freeboard
from seaice_tasks.is2.classify import TRACK_COLUMNS, ClassifyConfig, classify_frame
from seaice_tasks.is2.features import FEATURE_EVIDENCE
from seaice_tasks.is2.photon_evidence import photon_evidence
from seaice_tasks.is2.resample import ResampleConfig
from seaice_tasks.is2.training_set import TrainingSetConfig, build_training_set, commit_training_set, load_sources
from seaice_tasks.models.lake import load_lake_model
from seaice_tasks.products import SEGMENTS_2M, SEGMENTS_LABELLED
from seaice_tasks.recipes import recipe
from seaice_tasks.sim.day import TRUTH_DIR, simulate_day
from seaice_tasks.sim.days import DAYS, TUNING, UNSEEN, NamedDay, days_of
from seaice_tasks.sim.scoring import (
    score_classes,
    score_freeboard,
    score_label_transfer,
    truth_bins_by_granule,
    truth_classes,
)
from seaice_tasks.spark_jobs.runner import inventory_uris, load_job, run_job
from seaice_tasks.storage import InputStore, Lake
from seaice_tasks.surface.freeboard import FreeboardConfig, freeboard_frame
from seaice_tasks.train.segments import SegmentTrainConfig, train_segment_model

log = logging.getLogger("unseen_days")

RECIPE: Final[str] = "exp-recipe"
CEILING: Final[str] = "exp-ceiling"
PAPER: Final[str] = "exp-paper"
#: The days issue 26's frozen method was scored on, once (unseen until then; reported since).
ISSUE_26_DAYS: Final[tuple[str, ...]] = (
    "unseen_dense_leads", "unseen_backward", "unseen_night", "unseen_hazy", "unseen_backward_patchy")
_WATER: Final[int] = 2
#: Rows (2 m) on either side within which the ~11 m laser footprint reaches a neighbouring class.
EDGE_ROWS: Final[int] = 3


def train_models(lake: Lake, out: Path, epochs: int) -> dict[str, Any]:
    """The recipe, its truth-trained ceiling and the paper recipe on the training day (cached: ``models.json``)."""
    done = out / "models.json"
    doc: dict[str, Any] = json.loads(done.read_text()) if done.exists() else {}
    if doc.get("epochs") != epochs:
        doc = {"epochs": epochs}
    day = dt.date.fromisoformat(TRAIN_CONFIG.date)
    runs: list[tuple[str, str, str, Lake]] = []
    if RECIPE not in doc or CEILING not in doc:
        truth = truth_bins_by_granule(prepare_labelled_day(TRAIN_CONFIG, out / "train_sim", lake))
        config = TrainingSetConfig(name="recipe")
        frames, _ = load_sources(lake, [day])
        ts = build_training_set(frames, config)
        commit_training_set(lake, ts, config)
        relabelled = []
        for frame in frames:
            f = frame.copy()
            for (granule, beam), idx in f.groupby(["granule", "beam"]).groups.items():
                f.loc[idx, "label"] = truth_classes(f.loc[idx], truth[str(granule)], str(beam))
            relabelled.append(f)
        oracle_config = dataclasses.replace(config, name="ceiling")
        oracle = build_training_set(relabelled, oracle_config)
        commit_training_set(lake, oracle, oracle_config)
        doc["training_set"] = {"windows": ts.report["windows"], "class_fractions": ts.report["class_fractions"]}
        runs += [(RECIPE, "recipe", ts.version, lake), (CEILING, "ceiling", oracle.version, lake)]
    if PAPER not in doc:
        # the paper's recipe: its colour labels and features, in a lake of its own (the same simulated day)
        paper_lake = Lake(out / "lake_paper")
        prepare_labelled_day(TRAIN_CONFIG, out / "train_sim", paper_lake, recipe("paper")["colocate"])
        paper_config = recipe("paper")["training_set"]
        assert isinstance(paper_config, TrainingSetConfig)
        paper_config = dataclasses.replace(paper_config, name="paper")
        paper_frames, _ = load_sources(paper_lake, [day])
        paper_ts = build_training_set(paper_frames, paper_config)
        commit_training_set(paper_lake, paper_ts, paper_config)
        doc["training_set_paper"] = {"windows": paper_ts.report["windows"],
                                     "class_fractions": paper_ts.report["class_fractions"]}
        runs.append((PAPER, "paper", paper_ts.version, paper_lake))
    for name, ts_name, version, where in runs:
        t0 = time.perf_counter()
        result = train_segment_model(where, SegmentTrainConfig(name=name, training_set=ts_name,
                                                               training_set_version=version, epochs=epochs))
        doc[name] = {"version": str(result["version"]), "train_s": round(time.perf_counter() - t0, 1)}
        log.info("trained %s in %.0f s", name, doc[name]["train_s"])
        done.write_text(json.dumps(doc, indent=1))
    return doc


def training_labels(out: Path) -> dict[str, Any]:
    """The training day's labels of both recipes against the truth (docs/colocation.md's table)."""
    truth = truth_bins_by_granule(out / "train_sim" / TRUTH_DIR)
    scores = {}
    for policy, folder in (("evidence (default)", "lake"), ("s2 (paper)", "lake_paper")):
        where = Lake(out / folder)
        truths, labels = [], []
        for key in where.partitions(SEGMENTS_LABELLED.name):
            seg = where.read_table(key).to_pandas()
            truths.append(truth_classes(seg, truth[str(key.granule)], str(key.beam)))
            labels.append(seg["label"].to_numpy())
        if truths:
            scores[policy] = score_label_transfer(np.concatenate(truths), np.concatenate(labels))
    return scores


def prepare_day(named: NamedDay, out: Path, lake: Lake) -> dict[str, Any]:
    """Simulate, discover and resample one day (once); its ATL03/ATL10 paths and truth folder."""
    marker = out / f"{named.name}.json"
    if not marker.exists():
        sim = simulate_day(named.config, out / named.name, workers=2)
        run_discover(named.date, catalog=str(sim.catalog), lake=lake.root)
        day = dt.date.fromisoformat(named.date)
        run_job(load_job("resample"), inventory_uris(lake, day, "ATL03"), lake, ResampleConfig(), day=named.date,
                inputs=InputStore(str(sim.catalog)))
        marker.write_text(json.dumps({"atl03": [str(p) for p in sim.atl03], "atl10": [str(p) for p in sim.atl10],
                                      "truth": str(out / named.name / TRUTH_DIR)}))
    prepared: dict[str, Any] = json.loads(marker.read_text())
    return prepared


def _tracks(lake: Lake, named: NamedDay, prep: dict[str, Any], models: dict[str, Any]) -> list[dict[str, Any]]:
    loaded = {name: load_lake_model(lake, name, models[name]["version"]) for name in (RECIPE, CEILING)}
    loaded[PAPER] = load_lake_model(Lake(Path(lake.root).parent / "lake_paper"), PAPER, models[PAPER]["version"])
    truth = truth_bins_by_granule(Path(prep["truth"]))
    tracks = []
    for key in lake.partitions(SEGMENTS_2M.name, dt.date.fromisoformat(named.date)):
        seg = lake.read_table(key).select(list(TRACK_COLUMNS)).to_pandas()
        seg = seg.sort_values("x_atc_m", kind="stable").reset_index(drop=True)
        bins = truth[str(key.granule)]
        atl10 = next(p for p in prep["atl10"] if str(key.granule)[:14] in p)
        frames = {}
        for name, model in loaded.items():
            config = recipe("paper")["classify"] if name == PAPER else ClassifyConfig()
            assert isinstance(config, ClassifyConfig)
            classified = classify_frame(seg, model, dataclasses.replace(config, model=name))
            frame = seg.rename(columns={"h_std_m": "height_sd_m"})
            for column in ("window_valid", "class", "p_water", "water_vote", "height_above_low_m"):
                frame[column] = classified[column].to_numpy()
            frames[name] = frame
        evidence = photon_evidence(seg, FEATURE_EVIDENCE)["evidence_class"].to_numpy()
        tracks.append({"frames": frames, "truth_bins": bins, "beam": str(key.beam), "evidence": evidence,
                       "truth": truth_classes(seg, bins, str(key.beam)),
                       "atl10": read_atl10_freeboard(atl10, str(key.beam))})
    return tracks


def away_from_edges(truth: npt.NDArray[np.uint8], reach: int = EDGE_ROWS) -> npt.NDArray[np.uint8]:
    """The truth classes with 255 (not scored) within ``reach`` rows of another class.

    Examples
    --------
    >>> away_from_edges(np.array([0, 0, 0, 0, 2, 2, 2, 2, 2, 0, 0, 0], np.uint8), 1).tolist()
    [0, 0, 0, 255, 255, 2, 2, 2, 255, 255, 0, 0]
    """
    from scipy.ndimage import maximum_filter1d, minimum_filter1d

    t = np.asarray(truth, dtype=np.uint8)
    size = 2 * reach + 1
    same = maximum_filter1d(t, size, mode="nearest") == minimum_filter1d(t, size, mode="nearest")
    return np.where(same, t, np.uint8(255)).astype(np.uint8)


def _variants() -> dict[str, tuple[str, FreeboardConfig]]:
    """Freeboard runs: name -> (class source, configuration)."""
    base = FreeboardConfig()

    def surface(**kw: Any) -> FreeboardConfig:
        return dataclasses.replace(base, surface=dataclasses.replace(base.surface, **kw))

    return {
        "published (defaults)": (RECIPE, base),
        "lead heights: mean": (RECIPE, surface(weight_form="mean")),
        "lead heights: Eq. 2": (RECIPE, surface(weight_form="paper")),
        "leads: classes": (RECIPE, dataclasses.replace(base, leads="classes")),
        "leads: photons": (RECIPE, dataclasses.replace(base, leads="photons")),
        "before: leads classes, Eq. 2": (RECIPE, dataclasses.replace(surface(weight_form="paper"), leads="classes")),
        "paper recipe's freeboard (ATL10 windows)": (RECIPE, recipe_config("paper")),
        "paper recipe (its model, its freeboard)": (PAPER, recipe_config("paper")),
        "ceiling model (truth-trained)": (CEILING, base),
        "truth classes": ("truth", dataclasses.replace(base, leads="classes")),
        "truth classes, oracle leads": ("oracle_leads", dataclasses.replace(base, leads="classes")),
    }


def recipe_config(name: str) -> FreeboardConfig:
    """The freeboard configuration of a named recipe (:mod:`seaice_tasks.recipes`)."""
    config = recipe(name)["freeboard"]
    assert isinstance(config, FreeboardConfig)
    return config


def _score_freeboard(tracks: list[dict[str, Any]], source: str, config: FreeboardConfig) -> dict[str, Any]:
    def rows() -> Iterator[tuple[pd.DataFrame, pd.DataFrame, str, pd.DataFrame | None]]:
        for t in tracks:
            frame = t["frames"][source if source in t["frames"] else RECIPE]
            classes = None
            if source in ("truth", "oracle_leads"):
                classes = t["truth"]
                if source == "oracle_leads":
                    from seaice_tasks.sim.scoring import freeboard_truth

                    frame = frame.copy()
                    water = classes == _WATER
                    surface = freeboard_truth(frame, t["truth_bins"], t["beam"])["truth_surface_m"].to_numpy()
                    frame.loc[water, "h_cor_mean_m"] = surface[water]
            yield freeboard_frame(frame, config, classes=classes), t["truth_bins"], t["beam"], t["atl10"]

    return score_freeboard(rows())


def score_day(named: NamedDay, out: Path, lake: Lake, models: dict[str, Any]) -> dict[str, Any]:
    """Every table's numbers for one day."""
    t0 = time.perf_counter()
    prep = prepare_day(named, out, lake)
    tracks = _tracks(lake, named, prep, models)
    classes: dict[str, Any] = {}
    for name in (RECIPE, CEILING, PAPER):
        classes[name] = score_classes((t["frames"][name], t["truth"]) for t in tracks)
    classes["photon evidence (rule)"] = score_classes(
        (t["frames"][RECIPE].assign(**{"class": t["evidence"]}), t["truth"]) for t in tracks)
    # the bound of the 2 m classes: a segment whose ~11 m footprint reaches another class is ambiguous
    for name in (RECIPE, CEILING):
        classes[f"{name}, away from class edges"] = score_classes(
            (t["frames"][name], away_from_edges(t["truth"])) for t in tracks)
    freeboard = {label: _score_freeboard(tracks, source, config) for label, (source, config) in _variants().items()}
    return {"day": named.name, "role": named.role, "differs": named.differs, "config": named.config.to_dict(),
            "segments": int(sum(len(t["truth"]) for t in tracks)), "tracks": len(tracks), "classes": classes,
            "freeboard": freeboard, "elapsed_s": round(time.perf_counter() - t0, 1)}


def _cm(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.1f}"


def markdown(doc: dict[str, Any]) -> str:
    """Training labels, then classes and freeboard tables, one block per day."""
    lines = ["### training labels (demo_train) against the truth", "",
             "| policy | labelled | labels right | water labels | water R / P | thin P |", "|---|---|---|---|---|---|"]
    for policy, sc in doc.get("labels", {}).items():
        conf = np.asarray(sc["confusion_matrix"])
        lines.append(f"| {policy} | {sc['labelled'] * 100:.1f} % | {sc['accuracy'] * 100:.1f} % | "
                     f"{int(conf[:, 2].sum()):,} | {sc['recall'][2]:.2f} / {sc['precision'][2]:.2f} | "
                     f"{sc['precision'][1]:.2f} |")
    lines.append("")
    for d in doc["days"]:
        lines += [f"### {d['day']} ({d['role']}; {d['differs']}): {d['tracks']} tracks, {d['segments']:,} segments",
                  "", "| classes | accuracy | thick R / P | thin R / P | water R / P |", "|---|---|---|---|---|"]
        for name, c in d["classes"].items():
            def rp(k: str, c: dict[str, Any] = c) -> str:
                r, p = c["recall"].get(k), c["precision"].get(k)
                return f"{r:.3f} / {p:.3f}" if r is not None and p is not None else "-"
            label = name
            for model, text in ((RECIPE, "recipe (pipeline labels)"), (CEILING, "ceiling (truth labels)"),
                                (PAPER, "paper recipe (S2 colour labels, notebook features)")):
                label = label.replace(model, text)
            lines.append(f"| {label} | {c['accuracy'] * 100:.2f} % | {rp('thick')} | {rp('thin')} | {rp('water')} |")
        lines += ["", "| freeboard (cm) | SS bias | SS RMSE | SS z | FB RMSE | ratio | at ATL10 all (ours / ATL10) "
                      "| thick | thin |", "|---|---|---|---|---|---|---|---|---|"]
        for name, r in d["freeboard"].items():
            ss, fb, ext = r["sea_surface"], r["freeboard_ice"], r.get("atl10_extent", {})

            def pair(k: str, e: dict[str, Any] = ext) -> str:
                v = e.get(k, {})
                return f"{_cm(v.get('ours_rmse_m'))} / {_cm(v.get('atl10_rmse_m'))}" if v.get("n") else "-"
            ratio = "-" if fb["ratio"] is None else f"{fb['ratio']:.2f}"
            z = "-" if ss.get("z_rms") is None else f"{ss['z_rms']:.2f}"
            lines.append(f"| {name} | {_cm(ss['bias_m'])} | {_cm(ss['section_rmse_m'])} | {z} | {_cm(fb['rmse_m'])} | "
                         f"{ratio} | {pair('all')} | {pair('thick')} | {pair('thin')} |")
        lines.append("")
    return "\n".join(lines)


def run(out: Path, which: str, epochs: int) -> dict[str, Any]:
    """The experiment for the days ``which`` (a role, or names); its document."""
    out.mkdir(parents=True, exist_ok=True)
    lake = Lake(out / "lake")
    named = (days_of(TUNING) if which == "tuning" else days_of(UNSEEN) if which == "unseen"
             else tuple(DAYS[n] for n in ISSUE_26_DAYS) if which == "issue26"
             else tuple(DAYS[n] for n in which.split(",")))
    models = train_models(lake, out, epochs)
    doc: dict[str, Any] = {"epochs": epochs, "models": models, "labels": training_labels(out), "days": []}
    for d in named:
        doc["days"].append(score_day(d, out, lake, models))
        log.info("%s scored", d.name)
        (out / f"unseen_days_{which.replace(',', '_')}.json").write_text(json.dumps(doc, indent=1, sort_keys=True))
    return doc


def main(argv: Sequence[str] | None = None) -> int:
    """Command line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("var/experiments/unseen_days"))
    p.add_argument("--days", default="tuning",
                   help="tuning, unseen, issue26, or comma-separated names of seaice_tasks.sim.days")
    p.add_argument("--epochs", type=int, default=TRAIN_EPOCHS, help="epochs of both models (the demo's by default)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("seaice_tasks").setLevel(logging.WARNING)
    print(markdown(run(args.out, args.days, args.epochs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
