"""Inference job: a simulated day resampled, labelled, colocated, trained on, then every segment classified."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from seaice_tasks.errors import ConfigError
from seaice_tasks.is2.classify import ClassifyConfig
from seaice_tasks.is2.colocate import ColocateConfig
from seaice_tasks.is2.features import FEATURE_NAMES
from seaice_tasks.is2.training_set import TrainingSetConfig, run_training_set
from seaice_tasks.models.lake import model_key
from seaice_tasks.models.registry import CARD_NAME, WEIGHTS_NAME
from seaice_tasks.monitoring import lake_status, status_table
from seaice_tasks.outputs import BytesOutput, write_partition
from seaice_tasks.products import (
    CLASSES_FILE,
    CLASSIFY_REPORT,
    FREEBOARD,
    FREEBOARD_REPORT,
    REPORT_FILE,
    SEGMENTS_2M,
    SEGMENTS_CLASSIFIED,
)
from seaice_tasks.sim.geometry import SimConfig
from seaice_tasks.sim.scoring import truth_classes
from seaice_tasks.spark_jobs import classify, colocate
from seaice_tasks.spark_jobs.runner import EXIT_BAD_ARGUMENT, EXIT_FAILED, load_job, main, run_job
from seaice_tasks.storage import Lake
from seaice_tasks.train.promotion import promote
from seaice_tasks.train.segments import SegmentTrainConfig, train_segment_model
from tests.sim_lake import resampled_and_labelled

DAY = "2019-11-04"
DATE = dt.date(2019, 11, 4)
SIM = SimConfig(date=DAY, seed=31, granules=1, km=24.0, scenes_per_granule=1, scene_km=12.0)
MODEL = "seaice-is2-lstm"


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The day's 2 m tracks and labels, a training set of it, a promoted model (2 epochs)."""
    root = tmp_path_factory.mktemp("classify_day")
    sim, lake_dir = resampled_and_labelled(SIM, root)
    lake = Lake(lake_dir)
    untrained = root / "untrained"
    shutil.copytree(lake_dir, untrained)  # 2 m tracks, no model: the "before the first model" lake
    run_job(colocate.JOB, colocate.day_tracks(lake, DATE), lake, ColocateConfig(), day=DAY, whole_day=True)
    run_training_set(lake, [DATE], TrainingSetConfig(block_m=1000.0))
    trained = train_segment_model(lake, SegmentTrainConfig(epochs=2, batch_size=64))
    promote(lake, MODEL, trained["version"], force=True)  # 2 epochs: it may never say water; the job is tested here
    return {"sim": sim, "lake_dir": lake_dir, "untrained": untrained, "version": trained["version"]}


def _classify(lake: Lake, config: ClassifyConfig | None = None) -> dict[str, Any]:
    return run_job(classify.JOB, classify.day_tracks(lake, DATE), lake, config or ClassifyConfig(), day=DAY,
                   whole_day=True)


@pytest.fixture(scope="module")
def classified(day: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    lake_dir = tmp_path_factory.mktemp("classified") / "lake"
    shutil.copytree(day["lake_dir"], lake_dir)
    lake = Lake(lake_dir)
    return {"lake": lake, "summary": _classify(lake)}


def test_every_segment_classified_or_flagged(day: dict[str, Any], classified: dict[str, Any]) -> None:
    lake, summary = classified["lake"], classified["summary"]
    assert summary["failed"] == [] and summary["skipped"] == [] and not summary["no_model"]
    assert summary["model"]["version"] == day["version"] and summary["model"]["name"] == MODEL
    tracks = lake.partitions(SEGMENTS_2M.name, DATE)
    keys = lake.partitions(SEGMENTS_CLASSIFIED.name, DATE)
    assert [(k.granule, k.beam) for k in keys] == [(k.granule, k.beam) for k in tracks]
    for track, key in zip(tracks, keys, strict=True):
        seg = lake.read_table(track).to_pandas().sort_values("x_atc_m").reset_index(drop=True)
        out = lake.read_table(key, CLASSES_FILE).to_pandas()
        assert len(out) == len(seg) and np.array_equal(out["bin_index"], seg["bin_index"])
        np.testing.assert_array_equal(out["h_cor_mean_m"], seg["h_cor_mean_m"])  # raw metres, never normalised
        valid = out["window_valid"].to_numpy()
        assert 0.9 < valid.mean() < 1.0  # gaps and track ends have no full window
        assert (out.loc[~valid, "class"] == 255).all() and out.loc[~valid, "p_thick"].isna().all()
        probs = out.loc[valid, ["p_thick", "p_thin", "p_water"]].to_numpy(dtype=np.float64)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
        # the argmax, except water the photons do not support (ClassifyConfig.water_vote_min): its best ice class
        expected = probs.argmax(axis=1)
        unsupported = (expected == 2) & ~(out.loc[valid, "water_vote"].to_numpy() >= ClassifyConfig().water_vote_min)
        expected[unsupported] = probs[unsupported, :2].argmax(axis=1)
        assert (out.loc[valid, "class"].to_numpy() == expected).all()
        # a window centre needs its 2 neighbours each side to be the adjacent bins
        bins = out["bin_index"].to_numpy()
        for i in np.flatnonzero(valid)[:2000]:
            assert np.array_equal(bins[i - 2:i + 3] - bins[i], np.arange(-2, 3))
        manifest = lake.require(key)
        assert manifest.info["model"]["weights_sha256"] and manifest.config["version"] == day["version"]


def test_classes_against_truth(day: dict[str, Any], classified: dict[str, Any]) -> None:
    """A sanity bound on the training day (the honest score on another seed is in docs/classification.md)."""
    lake = classified["lake"]
    truth_bins = pd.read_parquet(next(day["sim"].truth.glob("*_truth_bins.parquet")))
    hits = total = 0
    for key in lake.partitions(SEGMENTS_CLASSIFIED.name, DATE):
        out = lake.read_table(key, CLASSES_FILE).to_pandas()
        truth = truth_classes(out, truth_bins, str(key.beam))
        ok = out["window_valid"].to_numpy() & (truth != 255)
        hits += int((out["class"].to_numpy()[ok] == truth[ok]).sum())
        total += int(ok.sum())
    assert total > 10_000 and hits / total > 0.85


def test_rerun_is_byte_identical(day: dict[str, Any], classified: dict[str, Any], tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    shutil.copytree(day["lake_dir"], tmp_path / "lake")
    _classify(lake)

    def digests(lk: Lake) -> list[str]:
        return [hashlib.sha256(lk.open_file(k, CLASSES_FILE)).hexdigest()
                for k in lk.partitions(SEGMENTS_CLASSIFIED.name, DATE)]

    assert digests(lake) == digests(classified["lake"])


def test_classes_file_is_the_same_for_any_chunk_size(day: dict[str, Any], classified: dict[str, Any]) -> None:
    """Read in chunks (model windows, reference windows and a batch of 8192 windows cut by their boundaries) or at
    once, the staged ``classes.parquet`` is byte for byte the job's, and so is the summary row."""
    import uuid

    from seaice_tasks.is2.classify import classify_track
    from seaice_tasks.outputs import stage_output
    from seaice_tasks.storage import InputStore
    from seaice_tasks.work import WorkContext

    lake: Lake = classified["lake"]
    key = lake.partitions(SEGMENTS_CLASSIFIED.name, DATE)[0]
    committed = hashlib.sha256(lake.open_file(key, CLASSES_FILE)).hexdigest()
    rows = []
    for chunk_rows in (0, 777, 5000):
        ctx = WorkContext(config=ClassifyConfig(), lake=lake, inputs=InputStore(str(lake.root)),
                          token=uuid.uuid4().hex)
        result = classify_track(ctx, DAY, str(key.granule), str(key.beam), day["version"], chunk_rows)
        for output in result.outputs:
            stage_output(lake, output, ctx.token, ctx.config)
        staged = ctx.read_staged(key, CLASSES_FILE)
        lake.discard_staging(ctx.token)
        assert hashlib.sha256(staged).hexdigest() == committed, chunk_rows
        rows.append(result.rows)
    assert rows[0] == rows[1] == rows[2] and rows[0][0]["segments"] == lake.require(key).rows
    info = lake.require(key).info
    assert {k: rows[0][0][k] for k in ("segments", "classified", "class_counts")} == {
        k: info[k] for k in ("segments", "classified", "class_counts")}


def test_classes_file_has_fixed_row_groups_whatever_the_chunk_size(day: dict[str, Any],
                                                                   classified: dict[str, Any]) -> None:
    """Row groups of ``group_rows`` rows, cut by the row count alone: read in chunks of 37 or 5000 rows or at once,
    the same bytes, and the job's table (one row group at this length) in columns, values and metadata."""
    import uuid

    import pyarrow as pa
    import pyarrow.parquet as pq

    from seaice_tasks.is2.classify import classify_track
    from seaice_tasks.outputs import stage_output
    from seaice_tasks.storage import InputStore
    from seaice_tasks.work import WorkContext

    lake: Lake = classified["lake"]
    key = lake.partitions(SEGMENTS_CLASSIFIED.name, DATE)[0]
    rows = lake.require(key).rows
    group_rows = 1000
    staged = set()
    for chunk_rows in (0, 37, 5000):
        ctx = WorkContext(config=ClassifyConfig(), lake=lake, inputs=InputStore(str(lake.root)),
                          token=uuid.uuid4().hex)
        result = classify_track(ctx, DAY, str(key.granule), str(key.beam), day["version"], chunk_rows,
                                group_rows=group_rows)
        for output in result.outputs:
            stage_output(lake, output, ctx.token, ctx.config)
        staged.add(ctx.read_staged(key, CLASSES_FILE))
        lake.discard_staging(ctx.token)
    assert len(staged) == 1
    file = pq.ParquetFile(pa.BufferReader(staged.pop()))
    sizes = [file.metadata.row_group(i).num_rows for i in range(file.num_row_groups)]
    assert rows > 3 * group_rows and sizes == [group_rows] * (rows // group_rows) + [rows % group_rows]
    committed = pq.ParquetFile(pa.BufferReader(lake.open_file(key, CLASSES_FILE)))
    assert committed.num_row_groups == 1
    assert file.read().equals(committed.read(), check_metadata=True)


def test_no_promoted_model_is_a_recorded_skip(day: dict[str, Any], tmp_path: Path) -> None:
    shutil.copytree(day["untrained"], tmp_path / "lake")
    lake = Lake(tmp_path / "lake")
    summary = _classify(lake)
    assert summary["no_model"] and summary["partitions"] == []
    assert "no version of model seaice-is2-lstm is promoted" in summary["skipped"][-1]["reason"]
    report = lake.require(CLASSIFY_REPORT.key(date=DATE))
    assert any("promoted" in s["reason"] for s in report.info["skipped"])


def test_unknown_model_version_exits_2(day: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(day["lake_dir"], tmp_path / "lake")
    status = main(classify.JOB, ["--date", DAY, "--lake", str(tmp_path / "lake"), "--no-spark",
                                 "--config", '{"version": "0000000000000000"}'])
    assert status == EXIT_BAD_ARGUMENT
    err = capsys.readouterr().err
    assert "no such model version is committed" in err and "0000000000000000" in err
    assert Lake(tmp_path / "lake").partitions(SEGMENTS_CLASSIFIED.name) == []


# -- a broken promoted model: one line, exit 2, the lake untouched ------------------------------------------------
def _lake_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _committed_file(lake: Lake, version: str, name: str) -> Path:
    key = model_key(MODEL, version)
    return Path(lake.path(key.relpath, lake.require(key).file_relpath(name)))


def _card_text(card: dict[str, Any]) -> bytes:
    return (json.dumps(card, indent=2, sort_keys=True) + "\n").encode()


def _swap_two_features(card: dict[str, Any]) -> dict[str, Any]:
    features = card["input"]["features"]
    features[0], features[1] = features[1], features[0]
    return card


def _recommit(lake: Lake, version: str, *, card: bytes | None = None, weights: bytes | None = None) -> None:
    """A new, self-consistent version of the model partition (its manifest matches the edited files)."""
    key = model_key(MODEL, version)
    man = lake.require(key)
    files = {name: _committed_file(lake, version, name).read_bytes() for name in (WEIGHTS_NAME, CARD_NAME)}
    files[CARD_NAME] = card if card is not None else files[CARD_NAME]
    files[WEIGHTS_NAME] = weights if weights is not None else files[WEIGHTS_NAME]
    write_partition(lake, key, [BytesOutput(key, n, b) for n, b in files.items()], None, man.info)


def _flip(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]


def _break(lake: Lake, version: str, damage: str) -> None:
    weights, card_path = _committed_file(lake, version, WEIGHTS_NAME), _committed_file(lake, version, CARD_NAME)
    card = json.loads(card_path.read_text())
    if damage == "flipped weight bytes":
        weights.write_bytes(_flip(weights.read_bytes()))
    elif damage == "card with two features swapped":
        card_path.write_bytes(_card_text(_swap_two_features(card)))
    elif damage == "missing weights":
        weights.unlink()
    elif damage == "unreadable card":
        card_path.write_bytes(b"{\"card_format\": 2, \"name\": ")
    elif damage == "recommitted card with two features swapped":
        _recommit(lake, version, card=_card_text(_swap_two_features(card)))
    elif damage == "recommitted unreadable card":
        _recommit(lake, version, card=b"\xff\xfe not json")
    elif damage == "recommitted flipped weights":
        _recommit(lake, version, weights=_flip(weights.read_bytes()))


@pytest.mark.parametrize("damage, message", [
    ("flipped weight bytes", "model.safetensors fails its lake manifest"),
    ("card with two features swapped", "card.json fails its lake manifest"),
    ("missing weights", "model.safetensors fails its lake manifest"),
    ("unreadable card", "card.json fails its lake manifest"),
    ("recommitted card with two features swapped", "input features"),
    ("recommitted unreadable card", "card.json is damaged"),
    ("recommitted flipped weights", "differs from the card's"),
])
def test_a_broken_model_is_one_line_exit_2_and_the_lake_untouched(day: dict[str, Any], classified: dict[str, Any],
                                                                   tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                   damage: str, message: str) -> None:
    root = tmp_path / "lake"
    shutil.copytree(classified["lake"].root, root)  # the day's good classifications are in it
    lake = Lake(root)
    _break(lake, day["version"], damage)
    before = _lake_files(root)
    status = main(classify.JOB, ["--date", DAY, "--lake", str(root), "--no-spark"])
    err = capsys.readouterr().err.strip()
    assert status == EXIT_BAD_ARGUMENT and "\n" not in err and err.startswith("classify: error: ")
    assert f"model {MODEL} version {day['version']}" in err and message in err
    assert _lake_files(root) == before  # nothing written, nothing removed, not even the day report


def test_a_failed_track_keeps_its_last_good_classification(day: dict[str, Any], classified: dict[str, Any],
                                                           tmp_path: Path) -> None:
    root = tmp_path / "lake"
    shutil.copytree(classified["lake"].root, root)
    lake = Lake(root)
    good = lake.partitions(SEGMENTS_CLASSIFIED.name, DATE)
    track = lake.partitions(SEGMENTS_2M.name, DATE)[0]
    manifest = lake.require(track)
    Path(lake.path(track.relpath, manifest.file_relpath(manifest.files[0].name))).write_bytes(b"PAR1 damaged")
    before = {k: lake.require(k).to_json() for k in good}
    status = main(classify.JOB, ["--date", DAY, "--lake", str(root), "--no-spark"])
    assert status == EXIT_FAILED
    report = json.loads(lake.open_file(CLASSIFY_REPORT.key(date=DATE), REPORT_FILE))
    stale = SEGMENTS_CLASSIFIED.key(date=DATE, granule=track.granule, beam=track.beam).relpath
    assert report["removed"] == [] and report["stale"] == [stale] and len(report["failed"]) == 1
    assert lake.partitions(SEGMENTS_CLASSIFIED.name, DATE) == good  # the failed track's classification stays
    assert {k: lake.require(k).to_json() for k in good} == before
    shown = status_table(lake_status(lake, DATE))  # seaice status says which partition is from an earlier run
    assert f"stale {stale} (kept from an earlier run)" in shown
    # downstream, the kept classification is an input like the others: nothing is lost there either
    summary = run_job(load_job("freeboard"), [], lake, None, day=DAY, whole_day=True)
    assert summary["failed"] == [] and summary["skipped"] == [] and len(summary["partitions"]) == len(good)


def test_a_missing_upstream_partition_is_a_skip_and_a_removed_input_prunes(classified: dict[str, Any],
                                                                           tmp_path: Path) -> None:
    root = tmp_path / "lake"
    shutil.copytree(classified["lake"].root, root)
    lake = Lake(root)
    run_job(load_job("freeboard"), [], lake, None, day=DAY, whole_day=True)
    freeboard = lake.partitions(FREEBOARD.name, DATE)
    for key in lake.partitions(SEGMENTS_CLASSIFIED.name, DATE):  # classified tracks lost, 2 m tracks still there
        lake.delete(key)
    status = main(load_job("freeboard"), ["--date", DAY, "--lake", str(root), "--no-spark"])
    assert status == 0
    report = json.loads(lake.open_file(FREEBOARD_REPORT.key(date=DATE), REPORT_FILE))
    (granule,) = {str(k.granule) for k in freeboard}
    assert [s["granule"] for s in report["skipped"]] == [granule]
    assert "no classified partition" in report["skipped"][0]["reason"]
    assert report["removed"] == [] and report["stale"] == [k.relpath for k in freeboard]
    assert lake.partitions(FREEBOARD.name, DATE) == freeboard
    # the granule's 2 m tracks gone from the day (its ATL03 left the inventory): now its products go too
    for key in lake.partitions(SEGMENTS_2M.name, DATE):
        lake.delete(key)
    summary = run_job(load_job("freeboard"), [], lake, None, day=DAY, whole_day=True)
    assert summary["removed"] == [k.relpath for k in freeboard] and summary["stale"] == []
    assert lake.partitions(FREEBOARD.name, DATE) == []


def test_open_water_needs_the_photons_support() -> None:
    """water_vote_min: a window the model calls water without the photons' vote takes its more probable ice class."""
    from seaice_tasks.is2.classify import _Pending

    rows = pd.DataFrame({"bin_index": np.arange(4)})
    features = pd.DataFrame({name: np.zeros(4) for name in FEATURE_NAMES}).assign(water_vote=[1.0, 0.2, 0.0, np.nan])
    probs = np.array([[0.1, 0.2, 0.7], [0.1, 0.3, 0.6], [0.5, 0.1, 0.4], [0.2, 0.1, 0.7]], dtype=np.float32)
    centres = np.arange(4)
    frame = _Pending(rows.copy(), features, centres, probs, water_vote_min=0.4).frame()
    assert frame["class"].tolist() == [2, 1, 0, 0]  # supported water stays; the others fall to thin / thick
    assert _Pending(rows.copy(), features, centres, probs).frame()["class"].tolist() == [2, 2, 0, 2]  # argmax alone
    assert frame["p_water"].tolist() == pytest.approx([0.7, 0.6, 0.4, 0.7])  # the probabilities are the model's
    with pytest.raises(ConfigError, match="water_vote_min"):
        ClassifyConfig(water_vote_min=1.5)
