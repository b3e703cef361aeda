"""Segment classifiers: presets, the Keras-style LSTM, one-process training, registry, promotion, resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from seaice_tasks.cli import main as cli_main
from seaice_tasks.errors import ConfigError, InputError
from seaice_tasks.models import lake as model_lake
from seaice_tasks.models.registry import read_card
from seaice_tasks.models.sequence import KerasLSTM, LSTMClassifier, MLPClassifier, build_model, predict_proba, preset
from seaice_tasks.products import CONFUSION_FILE, MODELS
from seaice_tasks.storage import Lake
from seaice_tasks.train import segments as seg
from seaice_tasks.train.launch import launch_command
from seaice_tasks.train.loop import Trainer
from seaice_tasks.train.promotion import promote
from seaice_tasks.train.segments import SegmentTrainConfig, load_training_set, state_sha256, train_segment_model
from tests.training_data import commit_learnable_training_set

FAST = {"epochs": 2, "batch_size": 64}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Lake, dict[str, Any]]:
    lake = Lake(tmp_path_factory.mktemp("seglake"))
    commit_learnable_training_set(lake)
    return lake, train_segment_model(lake, SegmentTrainConfig(**FAST))


# -- models ------------------------------------------------------------------------------------------------------
def test_keras_lstm_equals_torch_lstm_with_tanh() -> None:
    torch.manual_seed(0)
    ours = KerasLSTM(6, 16, "tanh")
    ref = torch.nn.LSTM(6, 16, batch_first=True)
    with torch.no_grad():
        ref.weight_ih_l0.copy_(ours.kernel.weight)
        ref.weight_hh_l0.copy_(ours.recurrent.weight)
        ref.bias_ih_l0.copy_(ours.kernel.bias)
        ref.bias_hh_l0.zero_()
    x = torch.randn(7, 5, 6)
    out, _ = ref(x)
    torch.testing.assert_close(ours(x), out[:, -1], rtol=1e-5, atol=1e-6)


def test_presets_match_the_papers_layers() -> None:
    notebook = build_model(preset("notebook"), 8)
    paper = build_model(preset("paper"), 6)
    mlp = build_model(preset("mlp"), 6)
    assert isinstance(notebook, LSTMClassifier) and isinstance(mlp, MLPClassifier)
    assert sum(p.numel() for p in notebook.parameters()) == 12_051  # METHOD §6.2
    assert sum(p.numel() for p in paper.parameters()) == 19_475  # METHOD §6.1 (6 features)
    assert sum(p.numel() for p in mlp.parameters()) == 1_091  # METHOD §6.5 (30 inputs)
    assert isinstance(paper.lstm.act, torch.nn.ELU) and isinstance(notebook.lstm.act, torch.nn.Tanh)
    assert (preset("notebook").lr, preset("paper").lr, preset("notebook").epochs) == (0.0008886176350890356, 3e-3, 50)
    forget = notebook.lstm.kernel.bias[48:96]
    assert torch.all(forget == 1.0) and torch.all(notebook.lstm.kernel.bias[:48] == 0.0)  # unit forget bias


@pytest.mark.parametrize("kwargs", [{"preset": "resnet"}, {"epochs": -1}, {"focal_alpha": (1.0, 1.0)}])
def test_config_rejects(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        SegmentTrainConfig(**kwargs)


# -- training ----------------------------------------------------------------------------------------------------
def test_training_learns_and_commits_a_model_with_its_card(trained: tuple[Lake, dict[str, Any]]) -> None:
    lake, result = trained
    assert result["committed"] and result["epochs"] == 2 and len(result["history"]) == 2
    test = result["metrics"]["test"]
    assert test["n"] > 500 and test["accuracy"] > 0.85, test
    assert all(v is not None and v > 0.5 for v in test["recall"].values()), test["recall"]
    key = MODELS.key(name="seaice-is2-lstm", version=result["version"])
    manifest = lake.require(key)
    assert {f.name for f in manifest.files} == {"model.safetensors", "card.json", CONFUSION_FILE}
    assert lake.open_file(key, CONFUSION_FILE)[:8] == b"\x89PNG\r\n\x1a\n"
    card = model_lake.model_card(lake, "seaice-is2-lstm", result["version"])
    assert card["input"]["features"] == list(load_training_set(lake, "seaice").features)
    assert set(card["input"]["normalisation"]) == set(card["input"]["features"])
    assert card["training_data"]["version"] == result["training_set"].rsplit("=", 1)[1]
    assert card["metrics"]["run"]["backend"] == "single" and card["metrics"]["run"]["world_size"] == 1
    assert len(card["metrics"]["run"]["epoch_s"]) == 2
    assert card["metrics"]["test"]["confusion_normalised"][0][0] == pytest.approx(test["recall"]["thick"], abs=1e-6)
    assert card["architecture"]["preset"] == "notebook" and card["code_version"]


def test_loaded_model_predicts_like_the_trained_one(trained: tuple[Lake, dict[str, Any]]) -> None:
    lake, result = trained
    loaded = model_lake.load_lake_model(lake, "seaice-is2-lstm", result["version"])
    ts = load_training_set(lake, "seaice")
    x = ts.splits["test"].x
    pred = predict_proba(loaded.model, x).argmax(axis=1)
    acc = float(np.mean(pred == ts.splits["test"].y))
    assert acc == pytest.approx(result["metrics"]["test"]["accuracy"], abs=1e-9)
    assert state_sha256(loaded.model) == result["rank_weights_sha256"][0]


def test_rerun_finds_the_model_committed(trained: tuple[Lake, dict[str, Any]]) -> None:
    lake, result = trained
    again = train_segment_model(lake, SegmentTrainConfig(**FAST))
    assert again["version"] == result["version"] and again["committed"] is False and again["epochs"] == 0


def test_identical_runs_give_identical_weights(tmp_path: Path, trained: tuple[Lake, dict[str, Any]]) -> None:
    _, result = trained
    other = Lake(tmp_path / "lake")
    commit_learnable_training_set(other)
    second = train_segment_model(other, SegmentTrainConfig(**FAST))
    assert second["version"] == result["version"]
    assert second["rank_weights_sha256"] == result["rank_weights_sha256"]


def test_crashed_run_resumes_to_the_same_weights(tmp_path: Path, trained: tuple[Lake, dict[str, Any]],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _, result = trained
    lake = Lake(tmp_path / "lake")
    commit_learnable_training_set(lake)
    original = Trainer._run_epoch

    def crash_in_epoch_2(self: Trainer, epoch: int) -> dict[str, float]:
        if epoch == 2:
            raise RuntimeError("killed")
        return original(self, epoch)

    monkeypatch.setattr(Trainer, "_run_epoch", crash_in_epoch_2)
    with pytest.raises(RuntimeError, match="killed"):
        train_segment_model(lake, SegmentTrainConfig(**FAST))
    assert lake.manifest(MODELS.key(name="seaice-is2-lstm", version=result["version"])) is None  # nothing visible
    checkpoints = seg.checkpoint_dir(lake, "seaice-is2-lstm", result["version"])
    assert sorted(p.name for p in checkpoints.iterdir()) == ["epoch_0001.pt"]
    monkeypatch.setattr(Trainer, "_run_epoch", original)
    resumed = train_segment_model(lake, SegmentTrainConfig(**FAST))
    assert resumed["resumed_from"] == 1
    assert resumed["rank_weights_sha256"] == result["rank_weights_sha256"]


def test_mlp_trains_too(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    commit_learnable_training_set(lake, n_bins=1500)
    result = train_segment_model(lake, SegmentTrainConfig(name="seaice-is2-mlp", preset="mlp", **FAST))
    card = read_card(model_lake.fetch_model(lake, "seaice-is2-mlp", result["version"], tmp_path / "m"))
    assert card["architecture"]["name"] == "MLPClassifier" and result["metrics"]["test"]["accuracy"] > 0.7


# -- registry and promotion --------------------------------------------------------------------------------------
def test_promotion_only_when_better(tmp_path: Path, trained: tuple[Lake, dict[str, Any]]) -> None:
    lake = Lake(tmp_path / "lake")
    commit_learnable_training_set(lake, n_bins=1500)
    good = train_segment_model(lake, SegmentTrainConfig(**FAST))
    worse = train_segment_model(lake, SegmentTrainConfig(epochs=1, batch_size=512, lr=1e-5))
    name = "seaice-is2-lstm"
    assert model_lake.promoted_version(lake, name) is None
    with pytest.raises(InputError, match="no version of model"):
        model_lake.load_lake_model(lake, name)
    first = promote(lake, name, worse["version"])
    assert first["promoted"] and first["reason"] == "first promoted version"
    better = promote(lake, name, good["version"])
    assert better["promoted"] and better["previous"] == worse["version"]
    refused = promote(lake, name, worse["version"])
    assert not refused["promoted"] and "does not beat" in refused["reason"]
    assert model_lake.promoted_version(lake, name) == good["version"]
    assert promote(lake, name, worse["version"], force=True)["promoted"]
    assert model_lake.promoted_version(lake, name) == worse["version"]
    assert [k.version for k in model_lake.list_models(lake, name)] == sorted([good["version"], worse["version"]])


# -- bad input and the command line ------------------------------------------------------------------------------
def test_missing_training_set_and_unknown_feature(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    with pytest.raises(InputError, match="no training set of that name"):
        train_segment_model(lake, SegmentTrainConfig())
    commit_learnable_training_set(lake, n_bins=600)
    with pytest.raises(InputError, match=r"features \['nope'\] are not in the training set"):
        train_segment_model(lake, SegmentTrainConfig(features=("nope",)))


def test_cli_train_models_list_show_promote(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lake = tmp_path / "lake"
    commit_learnable_training_set(Lake(lake), n_bins=1200)
    assert cli_main(["train", "--lake", str(lake), "--epochs", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    version = out["version"]
    assert out["promotion"]["promoted"]  # the first model of a name is promoted
    assert cli_main(["models", "list", "--lake", str(lake)]) == 0
    listing = capsys.readouterr().out
    assert version in listing and "promoted" in listing
    assert cli_main(["models", "show", "seaice-is2-lstm", "--lake", str(lake)]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == version
    assert cli_main(["train", "--lake", str(lake), "--training-set", "absent"]) == 2
    assert "no training set of that name" in capsys.readouterr().err
    # distributed launches check their input before any process starts: one line, exit 2
    for backend in ("torchrun", "horovod"):
        assert cli_main(["train", "--lake", str(lake), "--backend", backend, "--np", "2",
                         "--config", '{"features": ["zzz"]}']) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "features ['zzz'] are not in the training set" in err


def test_launch_commands() -> None:
    cfg = SegmentTrainConfig(epochs=1)
    single = launch_command("single", 1, "/l", cfg, python="/v/bin/python")
    assert single[:3] == ["/v/bin/python", "-m", "seaice_tasks.train.segments"] and single[-1] == "single"
    with pytest.raises(ConfigError, match="runs one process"):
        launch_command("single", 2, "/l", cfg)
    with pytest.raises(ConfigError, match="unknown training backend"):
        launch_command("mpi", 2, "/l", cfg)
    torchrun = launch_command("torchrun", 2, "/l", cfg)
    assert torchrun[1:6] == ["--standalone", "--nnodes", "1", "--nproc-per-node", "2"]
    multi = launch_command("torchrun", 8, "/l", cfg, nnodes=2, node_rank=1, rdzv_endpoint="dgx1:29400")
    assert multi[1:9] == ["--nnodes", "2", "--node-rank", "1", "--rdzv-backend", "c10d", "--rdzv-endpoint",
                          "dgx1:29400"]
