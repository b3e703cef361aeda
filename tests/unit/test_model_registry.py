"""The model registry: any registered nn.Module as model.safetensors + card.json, and its clear errors."""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from torch import Tensor, nn

from seaice_tasks.config import JsonConfig
from seaice_tasks.errors import InputError, SeaIceError
from seaice_tasks.models.registry import (
    ARCHITECTURES,
    CARD_FORMAT,
    CARD_NAME,
    WEIGHTS_NAME,
    ArchitectureSpec,
    ModelFormatError,
    architecture_class,
    load_model,
    model_card_summary,
    read_card,
    register_architecture,
    save_model,
    sha256_file,
)
from seaice_tasks.models.unet import UNet

TINY_MLP = "TinyMLP"


class TinyMLP(nn.Module):
    """A stand-in for the next models (LSTM/MLP): tuple kwargs, no U-Net anywhere."""

    def __init__(self, n_in: int = 4, hidden: tuple[int, ...] = (8,), n_out: int = 3) -> None:
        super().__init__()
        if not isinstance(hidden, tuple):
            raise TypeError(f"hidden must be a tuple, got {type(hidden).__name__}")
        sizes = (n_in, *hidden, n_out)
        self.layers = nn.Sequential(*(nn.Linear(a, b) for a, b in itertools.pairwise(sizes)))

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.layers(x)
        return out


@dataclasses.dataclass(frozen=True)
class TinyConfig(JsonConfig):
    kind: ClassVar[str] = "tiny_mlp"
    hidden: tuple[int, ...] = (8, 5)
    lr: float = 1e-3


@pytest.fixture(autouse=True)
def _tiny_mlp_registered() -> None:
    register_architecture(TINY_MLP, TinyMLP)


def _save(folder: Path, seed: int = 0) -> tuple[TinyMLP, Path]:
    cfg = TinyConfig()
    torch.manual_seed(seed)
    model = TinyMLP(hidden=cfg.hidden)
    spec = ArchitectureSpec(TINY_MLP, {"n_in": 4, "hidden": cfg.hidden, "n_out": 3})
    card_path = save_model(model, folder, architecture=spec, config=cfg, name="tiny",
                           metrics={"f1": float("nan")}, training_data={"rows": 10}, classes={0: "a", 1: "b", 2: "c"})
    return model, card_path


def test_any_registered_model_round_trips(tmp_path: Path) -> None:
    model, card_path = _save(tmp_path / "m")
    assert card_path == tmp_path / "m" / CARD_NAME
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == sorted([CARD_NAME, WEIGHTS_NAME]), "no temp files"
    card = read_card(tmp_path / "m")
    assert card["card_format"] == CARD_FORMAT and card["architecture"] == {
        "name": TINY_MLP, "kwargs": {"n_in": 4, "hidden": [8, 5], "n_out": 3}}
    assert card["config"] == {"hidden": [8, 5], "lr": 1e-3} and card["config_kind"] == "tiny_mlp"
    assert card["metrics"] == {"f1": None} and card["classes"] == {"0": "a", "1": "b", "2": "c"}
    assert card["param_count"] == sum(p.numel() for p in model.parameters())
    assert card["weights_sha256"] == sha256_file(tmp_path / "m" / WEIGHTS_NAME)
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded.model, TinyMLP) and not loaded.model.training and loaded.card == card
    x = torch.rand(5, 4)
    assert torch.equal(loaded.model(x), model.eval()(x))
    # saving again replaces the model in place
    _save(tmp_path / "m", seed=1)
    assert read_card(tmp_path / "m")["weights_sha256"] != card["weights_sha256"]


def test_architecture_table() -> None:
    assert ARCHITECTURES.get("UNet") in ("seaice_tasks.models.unet:UNet", UNet)
    assert architecture_class("UNet") is UNet
    register_architecture("UNet", "seaice_tasks.models.unet:UNet")  # the same target again: fine
    with pytest.raises(ValueError, match="already registered"):
        register_architecture("UNet", TinyMLP)
    with pytest.raises(ValueError, match="module:Class"):
        register_architecture("Bad", "no_colon")
    with pytest.raises(KeyError, match="not registered"):
        architecture_class("NoSuchNet")


def _write_card(folder: Path, **changes: object) -> None:
    card = json.loads((folder / CARD_NAME).read_text())
    card.update(changes)
    (folder / CARD_NAME).write_text(json.dumps(card))


def test_not_a_model_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match=r"missing: no such model folder"):
        read_card(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFormatError, match=r"empty: not a model folder \(no card.json\)") as info:
        load_model(tmp_path / "empty")
    assert isinstance(info.value, InputError) and isinstance(info.value, SeaIceError)
    assert info.value.path == str(tmp_path / "empty")


@pytest.mark.parametrize(("damage", "message"), [
    ("text", r"card.json is damaged"),
    ("list", r"card.json is not a JSON object"),
    ("format", r"card_format 1, this code reads 2"),
    ("missing", r"misses \['weights_sha256'\]"),
    ("escape", r"weights_file '../x' is not a file name"),
    ("sha", r"weights_sha256 'abc' is not a sha256"),
    ("architecture", r"string 'name' and an object 'kwargs'"),
])
def test_damaged_card_is_a_clear_error(tmp_path: Path, damage: str, message: str) -> None:
    folder = tmp_path / "m"
    _save(folder)
    card = json.loads((folder / CARD_NAME).read_text())
    if damage == "text":
        (folder / CARD_NAME).write_text('{"card_format": 2, ')
    elif damage == "list":
        (folder / CARD_NAME).write_text("[]")
    elif damage == "format":
        _write_card(folder, card_format=1)
    elif damage == "missing":
        del card["weights_sha256"]
        (folder / CARD_NAME).write_text(json.dumps(card))
    elif damage == "escape":
        _write_card(folder, weights_file="../x")
    elif damage == "sha":
        _write_card(folder, weights_sha256="abc")
    else:
        _write_card(folder, architecture={"name": TINY_MLP})
    with pytest.raises(ModelFormatError, match=message) as info:
        load_model(folder)
    assert str(folder) in str(info.value)


def test_weights_that_do_not_match_are_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    _save(folder)
    weights = folder / WEIGHTS_NAME
    good = weights.read_bytes()
    weights.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(ModelFormatError, match=r"sha256 [0-9a-f]{64} differs from the card's"):
        load_model(folder)
    weights.unlink()
    with pytest.raises(ModelFormatError, match=r"weights file model\.safetensors is missing"):
        load_model(folder)
    # weights of another shape, with a matching checksum: they do not fit the architecture
    _save(folder)
    _write_card(folder, architecture={"name": TINY_MLP, "kwargs": {"n_in": 4, "hidden": [7, 5], "n_out": 3}})
    with pytest.raises(ModelFormatError, match="does not fit the card's TinyMLP"):
        load_model(folder)
    # not a safetensors file at all
    weights.write_bytes(b"not safetensors")
    _write_card(folder, weights_sha256=sha256_file(weights))
    with pytest.raises(ModelFormatError, match="does not fit"):
        load_model(folder)


def test_unknown_or_unbuildable_architecture_is_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    _save(folder)
    _write_card(folder, architecture={"name": "LSTM2099", "kwargs": {}})
    with pytest.raises(ModelFormatError, match=r"architecture 'LSTM2099' cannot be built"):
        load_model(folder)
    _write_card(folder, architecture={"name": TINY_MLP, "kwargs": {"n_in": 4, "width": 3}})
    with pytest.raises(ModelFormatError, match="kwargs do not build a TinyMLP"):
        load_model(folder)


def test_save_checks_the_architecture(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="not registered"):
        save_model(TinyMLP(), tmp_path / "m", architecture=ArchitectureSpec("Nope", {}), config=TinyConfig(),
                   name="x")
    with pytest.raises(TypeError, match="model is a TinyMLP"):
        save_model(TinyMLP(), tmp_path / "m", architecture=ArchitectureSpec("UNet", {}), config=TinyConfig(),
                   name="x")
    assert not (tmp_path / "m").exists()


def test_card_summary_of_a_unet_card() -> None:
    card = {"name": "seaice-s2-unet", "weights_sha256": "ab" * 32, "param_count": 12, "code_version": "0.1",
            "torch_version": "2", "card_format": 2, "metrics": {"big": 1},
            "architecture": {"name": "UNet", "kwargs": {"base_filters": 2, "levels": 3, "dropouts": [0.1]}},
            "config": {"tile_px": 32, "epochs": 3}, "training_data": {"views": ["filtered"], "scenes": 4}}
    assert model_card_summary(card) == {
        "name": "seaice-s2-unet", "weights_sha256": "ab" * 32, "param_count": 12, "code_version": "0.1",
        "torch_version": "2", "card_format": 2, "architecture": "UNet", "base_filters": 2, "levels": 3,
        "tile_px": 32, "training_views": ["filtered"]}
    assert model_card_summary({"training_data": "free text", "architecture": "odd"}) == {}
