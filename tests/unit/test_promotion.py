"""Promotion compares like with like; the training command refuses what would silently mislead.

A model trained without open water must not replace one that sees it (its own held-out macro F1
over two classes beats the 3-class model's); a broken card is one line; a tiny training set,
``--epochs 0`` and an unknown device are refused before any training.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from seaice_tasks.cli import main as cli_main
from seaice_tasks.errors import ConfigError
from seaice_tasks.is2.training_set import TrainingSetConfig, build_training_set, commit_training_set
from seaice_tasks.models import lake as model_lake
from seaice_tasks.models.registry import CARD_NAME, WEIGHTS_NAME
from seaice_tasks.outputs import BytesOutput, TableOutput, write_partition
from seaice_tasks.products import (
    MODELS,
    NORMALISATION_FILE,
    TRAINING_REPORT_FILE,
    TRAINING_SEGMENTS_FILE,
    TRAINING_SET,
)
from seaice_tasks.storage import Lake
from seaice_tasks.train.promotion import promote
from seaice_tasks.train.segments import SegmentTrainConfig, train_segment_model
from tests.training_data import commit_learnable_training_set, learnable_frames

NAME = "seaice-is2-lstm"
FAST: dict[str, Any] = {"epochs": 2, "batch_size": 64}
N_BINS = 1500


def _commit_without_water(lake: Lake) -> None:
    """The learnable tracks with every open-water segment dropped (a day over closed pack ice)."""
    frames = [f[f["label"] != 2].reset_index(drop=True) for f in learnable_frames(N_BINS)]
    config = TrainingSetConfig(name="nowater", block_m=400.0)
    commit_training_set(lake, build_training_set(frames, config), config)


@pytest.fixture(scope="module")
def two_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A promoted 3-class model and a candidate trained on a training set without open water."""
    root = tmp_path_factory.mktemp("promotion")
    lake = Lake(root / "lake")
    commit_learnable_training_set(lake, n_bins=N_BINS)
    good = train_segment_model(lake, SegmentTrainConfig(**FAST))
    assert promote(lake, NAME, good["version"])["promoted"]
    _commit_without_water(lake)
    blind = train_segment_model(lake, SegmentTrainConfig(training_set="nowater", **FAST))
    return {"root": root, "good": good, "blind": blind}


def _copy(two_models: dict[str, Any], tmp_path: Path) -> Lake:
    import shutil

    shutil.copytree(two_models["root"] / "lake", tmp_path / "lake")
    return Lake(tmp_path / "lake")


def test_a_model_that_cannot_see_water_is_not_promoted(two_models: dict[str, Any], tmp_path: Path) -> None:
    lake = _copy(two_models, tmp_path)
    good, blind = two_models["good"], two_models["blind"]
    # its own card's score, over the two classes its test split holds, beats the 3-class model's
    assert blind["metrics"]["test"]["macro_f1"] > good["metrics"]["test"]["macro_f1"]
    decision = promote(lake, NAME, blind["version"])
    assert not decision["promoted"] and model_lake.promoted_version(lake, NAME) == good["version"]
    assert "its training split has no water window" in decision["reason"]
    assert "never predicts water" in decision["reason"] and "does not beat" in decision["reason"]
    evaluation = decision["evaluation"]  # the same windows and classes for both
    assert evaluation["training_sets"] == [blind["training_set"], good["training_set"]]
    assert evaluation["windows"] == blind["metrics"]["test"]["n"] + good["metrics"]["test"]["n"]
    assert evaluation["classes"] == ["thick", "thin", "water"]
    mine, theirs = evaluation["candidate"], evaluation["promoted"]
    assert mine["windows"] == theirs["windows"] == evaluation["windows"] and mine["labels"] == theirs["labels"]
    assert mine["predicted"]["water"] == 0 and mine["f1"]["water"] == 0.0 and theirs["f1"]["water"] > 0.5
    assert decision["score"] < decision["previous_score"]
    # alone in a lake it is refused too: nothing to compare with, but it cannot see a class of the task
    alone = Lake(tmp_path / "alone")
    _commit_without_water(alone)
    first = promote(alone, NAME, train_segment_model(alone, SegmentTrainConfig(training_set="nowater",
                                                                               **FAST))["version"])
    assert not first["promoted"] and "no water window" in first["reason"]
    assert model_lake.promoted_version(alone, NAME) is None


def test_force_promotes_and_records_what_it_overrode(two_models: dict[str, Any], tmp_path: Path) -> None:
    lake = _copy(two_models, tmp_path)
    forced = promote(lake, NAME, two_models["blind"]["version"], force=True)
    assert forced["promoted"] and forced["reason"] == "forced" and len(forced["overridden"]) == 3
    record = model_lake.promotion(lake, NAME)
    assert record is not None and record["overridden"] == forced["overridden"]
    assert record["previous"] == two_models["good"]["version"]


def test_a_damaged_promoted_version_does_not_block_a_sound_candidate(two_models: dict[str, Any],
                                                                    tmp_path: Path) -> None:
    lake = _copy(two_models, tmp_path)
    good = two_models["good"]["version"]
    key = MODELS.key(name=NAME, version=good)
    weights = Path(lake.path(key.relpath, lake.require(key).file_relpath(WEIGHTS_NAME)))
    weights.write_bytes(weights.read_bytes()[:-7] + b"garbage")
    retrained = train_segment_model(lake, SegmentTrainConfig(seed=1, **FAST))
    decision = promote(lake, NAME, retrained["version"])
    assert decision["promoted"] and "fails its checks" in decision["reason"] and good in decision["reason"]


# -- the command line --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["--epochs", "0"], "--epochs: must be >= 1, got 0"),
    (["--batch-size", "0"], "--batch-size: must be >= 1, got 0"),
    (["--lr", "-0.001"], "--lr: must be > 0"),
    (["--lr", "0"], "--lr: must be > 0"),
    (["--device", "tpu9"], "'tpu9' is not a device; one of cpu, cuda, cuda:N"),
    (["--config", '{"device": "gpu"}'], "'gpu' is not a device"),
])
def test_bad_train_flags_are_one_line_and_train_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        argv: list[str], message: str) -> None:
    lake = Lake(tmp_path / "lake")
    commit_learnable_training_set(lake, n_bins=600)
    assert cli_main(["train", "--lake", str(tmp_path / "lake"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err
    assert lake.partitions(MODELS.name) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="this torch has CUDA: cuda is a valid choice here")
def test_cuda_without_cuda_is_refused_not_run_on_the_cpu(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lake = Lake(tmp_path / "lake")
    commit_learnable_training_set(lake, n_bins=600)
    assert cli_main(["train", "--lake", str(tmp_path / "lake"), "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "device cuda: torch" in err and "sees no CUDA GPU" in err
    assert lake.partitions(MODELS.name) == []
    with pytest.raises(ConfigError, match="sees no CUDA GPU"):
        train_segment_model(lake, SegmentTrainConfig(device="cuda:0", **FAST))


def test_train_refuses_a_training_set_without_test_windows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A tiny set committed before the training-set stage refused them: one line, exit 2, no traceback."""
    lake = Lake(tmp_path / "lake")
    config = TrainingSetConfig(name="tiny")
    ts = build_training_set(learnable_frames(300, tracks=1), config)  # 600 m: one block, all in one split
    assert ts.report["windows"]["test"] == 0
    key = TRAINING_SET.key(name="tiny", version=ts.version)
    write_partition(lake, key, [TableOutput(key, TRAINING_SEGMENTS_FILE, ts.table),
                                BytesOutput(key, NORMALISATION_FILE, json.dumps(ts.normalisation).encode()),
                                BytesOutput(key, TRAINING_REPORT_FILE, json.dumps(ts.report).encode())], config, {})
    for argv in ([], ["--backend", "torchrun", "--np", "2"]):
        assert cli_main(["train", "--lake", str(tmp_path / "lake"), "--training-set", "tiny", "--epochs", "1",
                         *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "hold no window" in err and "test" in err
    assert lake.partitions(MODELS.name) == []


def test_models_show_and_list_with_an_unreadable_card(two_models: dict[str, Any], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    lake = _copy(two_models, tmp_path)
    blind = two_models["blind"]["version"]
    key = MODELS.key(name=NAME, version=blind)
    Path(lake.path(key.relpath, lake.require(key).file_relpath(CARD_NAME))).write_bytes(b"\x00not json")
    root = str(tmp_path / "lake")
    assert cli_main(["models", "show", NAME, blind, "--lake", root]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"model {NAME} version {blind}" in err and "card.json" in err
    assert cli_main(["models", "list", "--lake", root]) == 2
    out, err = capsys.readouterr()
    assert two_models["good"]["version"] in out and "UNREADABLE" in out  # the others are still listed
    assert len(err.strip().splitlines()) == 1 and blind in err
    assert cli_main(["models", "promote", NAME, blind, "--lake", root]) == 2
    assert "card.json" in capsys.readouterr().err
