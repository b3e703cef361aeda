"""Segment classifiers scored against the simulator's truth on a day never used for training or tuning.

The paper recipe's labels and features (:mod:`seaice_tasks.recipes`): the experiment behind the
"Earlier" section of docs/classification.md.  The default recipe is scored by
``experiments/unseen_days.py``.

``python experiments/classifier_accuracy.py --out DIR [--epochs N] [--models notebook,paper,mlp]``
(a research script beside the package, free to use the simulator :mod:`seaice_tasks.sim`):

1. simulates and prepares (discover, resample, S2 labels, colocation, in process:
   :func:`seaice_tasks.demo.prepare_labelled_day`) a **training day** (:data:`TRAIN_DAY`) and an
   **evaluation day** (:data:`EVAL_DAY`: another date and seed, never trained or tuned on);
2. builds the training set of the training day from its S2-transferred labels (block split),
   and an **oracle** training set of the same segments with the simulator's truth classes as
   labels (same windows, same splits: the difference is label noise alone);
3. trains each requested preset on the labels, and the oracle LSTM on the truth;
4. classifies every 2 m segment of the evaluation day with each model (the inference code of
   the classify job, :func:`seaice_tasks.is2.classify.classify_frame`) and scores the segments
   that centre a full window against truth: accuracy, per-class precision / recall / F1,
   macro / weighted F1, row-normalised confusion; also the held-out split of the training day
   against its labels (the card's numbers) and against truth;
5. writes ``DIR/classifier_accuracy.json`` and prints a Markdown table (docs/classification.md).
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
import pandas as pd

from seaice_tasks.demo import prepare_labelled_day
from seaice_tasks.is2.classify import TRACK_COLUMNS, ClassifyConfig, classify_frame
from seaice_tasks.is2.features import RELATIVE_FEATURES
from seaice_tasks.is2.training_set import TrainingSetConfig, build_training_set, commit_training_set, load_sources
from seaice_tasks.metrics import classification_report
from seaice_tasks.models.lake import load_lake_model, model_card
from seaice_tasks.products import SEGMENTS_2M
from seaice_tasks.recipes import recipe
from seaice_tasks.sim.days import day
from seaice_tasks.sim.geometry import SimConfig
from seaice_tasks.sim.scoring import score_classes, truth_bins_by_granule, truth_classes
from seaice_tasks.storage import Lake
from seaice_tasks.train.segments import SegmentTrainConfig, load_training_set, train_segment_model

log = logging.getLogger("classifier_accuracy")

#: Training day (the demo's size: 3 granules x 100 km, a 20 km scene each).
TRAIN_DAY: Final[SimConfig] = day("classifier_train")
#: Evaluation day: another date and seed, never used for training or tuning.
EVAL_DAY: Final[SimConfig] = day("classifier_eval")
PRESETS: Final[tuple[str, ...]] = ("notebook", "paper", "mlp")


def _truth_for(truth: dict[str, pd.DataFrame], granule: str, frame: pd.DataFrame, beam: str) -> np.ndarray:
    bins = truth.get(granule)
    if bins is None:
        return np.full(len(frame), 255, np.uint8)
    return truth_classes(frame, bins, beam)


def _prepared(config: SimConfig, sim_dir: Path, lake: Lake) -> Path:
    """The day's truth folder; the day is simulated and prepared unless its colocation report is committed."""
    from seaice_tasks.products import COLOCATE_REPORT
    from seaice_tasks.sim.day import TRUTH_DIR

    if lake.manifest(COLOCATE_REPORT.key(date=dt.date.fromisoformat(config.date))) is not None:
        return sim_dir / TRUTH_DIR
    return prepare_labelled_day(config, sim_dir, lake, recipe("paper")["colocate"])


def oracle_training_set(lake: Lake, day: dt.date, truth: dict[str, pd.DataFrame], config: TrainingSetConfig) -> str:
    """The day's labelled segments with the truth class as label (same rows); its version."""
    frames, _ = load_sources(lake, [day])
    relabelled = []
    for frame in frames:
        f = frame.copy()
        for (granule, beam), idx in f.groupby(["granule", "beam"]).groups.items():
            f.loc[idx, "label"] = _truth_for(truth, str(granule), f.loc[idx], str(beam))
        relabelled.append(f)
    ts = build_training_set(relabelled, config)
    commit_training_set(lake, ts, config)
    return ts.version


def score_day(lake: Lake, day: dt.date, truth: dict[str, pd.DataFrame], name: str, version: str) -> dict[str, Any]:
    """Every segment of the day classified by one model, scored against truth."""
    loaded = load_lake_model(lake, name, version)

    def tracks() -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
        for key in lake.partitions(SEGMENTS_2M.name, day):
            frame = lake.read_table(key).select(list(TRACK_COLUMNS)).to_pandas()
            out = classify_frame(frame, loaded, ClassifyConfig(model=name, version=version, water_vote_min=0.0))
            yield out, _truth_for(truth, str(key.granule), out, str(key.beam))

    report = score_classes(tracks())
    assert report is not None, f"no 2 m track on {day}"
    return report


def held_out_vs_truth(lake: Lake, ts_name: str, ts_version: str, oracle_version: str, name: str,
                      version: str) -> dict[str, Any]:
    """The training day's held-out windows: the model's classes against the truth labels of the oracle set."""
    from seaice_tasks.models.sequence import predict_proba

    loaded = load_lake_model(lake, name, version)
    features = tuple(loaded.card["input"]["features"])
    test = load_training_set(lake, ts_name, ts_version, features).splits["test"]
    oracle = load_training_set(lake, "oracle", oracle_version, features).splits["test"]
    merged = test.keys.reset_index().merge(oracle.keys.reset_index(), on=["granule", "beam", "bin_index"],
                                           suffixes=("", "_o"))
    pred = predict_proba(loaded.model, test.x[merged["index"].to_numpy()]).argmax(axis=1)
    return classification_report(oracle.y[merged["index_o"].to_numpy()], pred)


def run(out: Path, epochs: int, presets: Sequence[str], relative: bool = True,
        only: Sequence[str] = ()) -> dict[str, Any]:
    """The whole experiment (module docstring); the results document."""
    lake = Lake(out / "lake")
    t0 = time.perf_counter()
    truth_train = truth_bins_by_granule(_prepared(TRAIN_DAY, out / "train_sim", lake))
    truth_eval = truth_bins_by_granule(_prepared(EVAL_DAY, out / "eval_sim", lake))
    prep_s = time.perf_counter() - t0
    train_day = dt.date.fromisoformat(TRAIN_DAY.date)
    ts_config = TrainingSetConfig(name="labels", features="notebook")  # the paper recipe's (docs/classification.md)
    frames, _ = load_sources(lake, [train_day])
    ts = build_training_set(frames, ts_config)
    commit_training_set(lake, ts, ts_config)
    oracle_version = oracle_training_set(lake, train_day, truth_train, dataclasses.replace(ts_config, name="oracle"))
    runs: list[tuple[str, SegmentTrainConfig]] = [
        (p, SegmentTrainConfig(name=f"exp-{p}", preset=p, training_set="labels", training_set_version=ts.version,
                               epochs=epochs)) for p in presets]
    runs.append(("oracle-notebook", SegmentTrainConfig(name="exp-oracle", preset="notebook", training_set="oracle",
                                                       training_set_version=oracle_version, epochs=epochs)))
    if relative:
        # the same LSTM without the absolute height: robust to a sea-surface offset between days
        runs.append(("notebook-relative", SegmentTrainConfig(name="exp-notebook-relative", preset="notebook",
                                                             training_set="labels", training_set_version=ts.version,
                                                             features=RELATIVE_FEATURES, epochs=epochs)))
        runs.append(("oracle-relative", SegmentTrainConfig(name="exp-oracle-relative", preset="notebook",
                                                           training_set="oracle", training_set_version=oracle_version,
                                                           features=RELATIVE_FEATURES, epochs=epochs)))
    # the notebook LSTM with equal focal-loss class weights (the authors' alpha fits their class balance)
    runs.append(("notebook-equal-alpha", SegmentTrainConfig(name="exp-notebook-equal-alpha", preset="notebook",
                                                            training_set="labels", training_set_version=ts.version,
                                                            focal_alpha=(1 / 3, 1 / 3, 1 / 3), epochs=epochs)))
    runs = [r for r in runs if not only or r[0] in only]
    doc: dict[str, Any] = {"train_day": TRAIN_DAY.to_dict(), "eval_day": EVAL_DAY.to_dict(), "epochs": epochs,
                           "prepare_s": prep_s, "training_set": {"labels": ts.version, "oracle": oracle_version,
                                                                 "windows": ts.report["windows"],
                                                                 "class_fractions": ts.report["class_fractions"]},
                           "models": {}}
    eval_day = dt.date.fromisoformat(EVAL_DAY.date)
    for label, cfg in runs:
        t1 = time.perf_counter()
        result = train_segment_model(lake, cfg)
        train_s = time.perf_counter() - t1
        card = model_card(lake, cfg.name, str(result["version"]))
        entry = {"version": result["version"], "train_s": card["metrics"]["run"]["train_wall_s"],
                 "features": list(card["input"]["features"]),
                 "held_out_vs_own_labels": card["metrics"]["test"],
                 "eval_day_vs_truth": score_day(lake, eval_day, truth_eval, cfg.name, str(result["version"]))}
        if cfg.training_set == "labels":
            entry["held_out_vs_truth"] = held_out_vs_truth(lake, "labels", ts.version, oracle_version, cfg.name,
                                                           str(result["version"]))
        doc["models"][label] = entry
        ev = entry["eval_day_vs_truth"]
        print(f"{label}: eval day vs truth accuracy {ev['accuracy']:.4f}, recall {ev['recall']}, "
              f"train {entry['train_s']:.0f} s ({train_s:.0f} s this run)", flush=True)
    path = out / ("classifier_accuracy.json" if not only else f"classifier_accuracy_{'_'.join(only)}.json")
    path.write_text(json.dumps(doc, indent=1, sort_keys=True, default=str) + "\n")
    print(markdown(doc))
    return doc


def markdown(doc: dict[str, Any]) -> str:
    """The results as a Markdown table."""
    rows = ["| model | trained on | eval day vs truth: accuracy | thick R / P | thin R / P | water R / P | macro F1 "
            "| held-out vs own labels | held-out vs truth | train (s) |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for label, e in doc["models"].items():
        ev = e["eval_day_vs_truth"]

        def rp(c: str, ev: dict[str, Any] = ev) -> str:
            r, p = ev["recall"][c], ev["precision"][c]
            return f"{r:.3f} / {p:.3f}" if r is not None and p is not None else "-"

        own = e.get("held_out_vs_own_labels") or {}
        ho = e.get("held_out_vs_truth") or {}
        rows.append(f"| {label} | {'truth' if label.startswith('oracle') else 'S2 labels'} | {ev['accuracy']:.4f} | "
                    f"{rp('thick')} | {rp('thin')} | {rp('water')} | {ev['macro_f1']:.3f} | "
                    f"{own.get('accuracy', float('nan')):.4f} | {ho.get('accuracy', float('nan')):.4f} | "
                    f"{e['train_s']:.0f} |")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("var/experiments/classifier"))
    p.add_argument("--epochs", type=int, default=20, help="epochs of every model (the presets: 50 / 20 / 20)")
    p.add_argument("--models", default=",".join(PRESETS), help="presets trained on the S2 labels")
    p.add_argument("--only", default="", help="comma-separated run labels to (re)score, e.g. notebook-relative")
    p.add_argument("--no-relative", action="store_true", help="skip the runs without the absolute height")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    run(args.out, args.epochs, [m for m in args.models.split(",") if m], relative=not args.no_relative,
        only=[o for o in args.only.split(",") if o])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
