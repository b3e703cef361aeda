"""Sequence classifiers of 2 m ICESat-2 segments: the authors' LSTM presets and the MLP baseline.

Both take a window of ``2 * half + 1`` consecutive 2 m segments (default 5: n-2 .. n+2, METHOD.md
§5.3) with ``F`` features each, timestep-major ``(N, T, F)``, and return the **logits** of the
three classes of the window's centre (0 thick ice, 1 thin ice, 2 open water).  The softmax of the
Keras models is applied by the loss (:class:`~seaice_tasks.models.losses.FocalLoss`) and at
inference.

Presets (:data:`PRESETS`, METHOD.md §6)
    ``notebook``  LSTM(48, tanh) -> Dropout 0.4 -> Dense 16 ELU -> Dropout 0.4 -> Dense 16 ELU
                  -> Dropout 0.4 -> Dense 3; Adam 8.886e-4, 50 epochs, batch 32 (NB3 final model;
                  12,051 parameters with 8 features, 11,667 with 6).
    ``paper``     LSTM(16, ELU) -> Dropout 0.2 -> Dense 32/96/32/16/112/48/64 ELU -> Dense 3; Adam
                  3e-3, 20 epochs, batch 32 (P1 §III.B; where the 0.2 dropout sits is UNCERTAIN:
                  a Dropout layer after the LSTM, as R1, is the choice here).
    ``mlp``       flattened window -> Dense 32 ReLU -> Dropout 0.2 -> Dense 3; Adam 3e-3, 20 epochs
                  (1,091 parameters with 30 inputs).

The LSTM is written out (:class:`KerasLSTM`) rather than ``torch.nn.LSTM`` because the paper's
preset uses an ELU cell activation, which ``torch.nn.LSTM`` cannot: Keras semantics, gates
``i, f, c~, o`` with a sigmoid recurrent activation, ``c = f c + i act(c~)``, ``h = o act(c)``,
Glorot-uniform input kernels, orthogonal recurrent kernels, zero bias with the forget gate's at 1
(``unit_forget_bias``).  Parameter counts equal Keras' (one bias vector per gate).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Final

import torch
from torch import Tensor, nn

from seaice_tasks.config import JsonConfig
from seaice_tasks.errors import ConfigError

__all__ = [
    "N_CLASSES",
    "WINDOW",
    "ACTIVATIONS",
    "SequenceModelConfig",
    "PRESETS",
    "preset",
    "KerasLSTM",
    "LSTMClassifier",
    "MLPClassifier",
    "build_model",
    "architecture_kwargs",
    "PREDICT_BATCH",
    "predict_proba",
]

#: Output classes (thick, thin, open water).
N_CLASSES: Final[int] = 3
#: Segments per window (n-2 .. n+2).
WINDOW: Final[int] = 5
#: Activation names of the presets -> modules.
ACTIVATIONS: Final[Mapping[str, type[nn.Module]]] = {"tanh": nn.Tanh, "elu": nn.ELU, "relu": nn.ReLU,
                                                     "sigmoid": nn.Sigmoid}
_FORGET_BIAS: Final[float] = 1.0


def _activation(name: str) -> nn.Module:
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ConfigError(f"unknown activation {name!r} (known: {sorted(ACTIVATIONS)})") from None


@dataclasses.dataclass(frozen=True)
class SequenceModelConfig(JsonConfig):
    """Architecture and optimiser settings of one preset.

    Attributes
    ----------
    preset : str
        Name of the preset these values came from (informative).
    architecture : str
        ``"lstm"`` or ``"mlp"``.
    units : int
        LSTM units (``lstm``) or hidden units (``mlp``).
    cell_activation : str
        Activation of the LSTM cell candidate and output (``tanh`` in Keras' default).
    dropout : float
        Dropout after the LSTM (or the MLP's hidden layer).
    dense : tuple of int
        Hidden dense layers after the LSTM (units each).
    dense_activation : str
        Activation of those layers.
    dense_dropout : float
        Dropout after each of those layers (0: none).
    lr : float
        Adam learning rate (per process; see ``scale_lr`` of the training config).
    epochs : int
        Training epochs.
    batch_size : int
        Samples per batch and process.
    """

    kind: ClassVar[str] = "sequence_model"
    preset: str = "notebook"
    architecture: str = "lstm"
    units: int = 48
    cell_activation: str = "tanh"
    dropout: float = 0.4
    dense: tuple[int, ...] = (16, 16)
    dense_activation: str = "elu"
    dense_dropout: float = 0.4
    lr: float = 0.0008886176350890356
    epochs: int = 50
    batch_size: int = 32

    def __post_init__(self) -> None:
        if self.architecture not in ("lstm", "mlp"):
            raise ConfigError(f"sequence model: architecture must be 'lstm' or 'mlp', got {self.architecture!r}")
        if self.units < 1 or any(d < 1 for d in self.dense):
            raise ConfigError(f"sequence model: units and dense sizes must be >= 1, got {self.units}, {self.dense}")
        if not (0.0 <= self.dropout < 1.0 and 0.0 <= self.dense_dropout < 1.0):
            raise ConfigError("sequence model: dropouts must be in [0, 1)")
        if not math.isfinite(self.lr) or self.lr <= 0 or self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("sequence model: lr > 0, epochs >= 1 and batch_size >= 1 required")
        for name in (self.cell_activation, self.dense_activation):
            if name not in ACTIVATIONS:
                raise ConfigError(f"sequence model: unknown activation {name!r} (known: {sorted(ACTIVATIONS)})")


#: The presets of METHOD.md §6.
PRESETS: Final[Mapping[str, SequenceModelConfig]] = {
    "notebook": SequenceModelConfig(),
    "paper": SequenceModelConfig(preset="paper", units=16, cell_activation="elu", dropout=0.2,
                                 dense=(32, 96, 32, 16, 112, 48, 64), dense_activation="elu", dense_dropout=0.0,
                                 lr=3e-3, epochs=20),
    "mlp": SequenceModelConfig(preset="mlp", architecture="mlp", units=32, cell_activation="tanh", dropout=0.2,
                               dense=(), dense_activation="relu", dense_dropout=0.0, lr=3e-3, epochs=20),
}


def preset(name: str, **overrides: Any) -> SequenceModelConfig:
    """A preset by name with fields replaced (e.g. ``epochs=2``).

    Examples
    --------
    >>> preset("paper").dense
    (32, 96, 32, 16, 112, 48, 64)
    >>> preset("mlp", epochs=3).epochs
    3
    """
    try:
        base = PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown model preset {name!r} (known: {sorted(PRESETS)})") from None
    return dataclasses.replace(base, **overrides) if overrides else base


class KerasLSTM(nn.Module):
    """One LSTM layer with Keras semantics and a configurable cell activation; returns the last ``h``.

    Parameters
    ----------
    n_features : int
        Inputs per timestep.
    units : int
        Hidden size.
    activation : str
        Cell candidate and output activation (a key of :data:`ACTIVATIONS`).

    Examples
    --------
    >>> lstm = KerasLSTM(8, 48)
    >>> sum(p.numel() for p in lstm.parameters())  # Keras: 4 * (48 * (8 + 48) + 48)
    10944
    >>> lstm(torch.zeros(2, 5, 8)).shape
    torch.Size([2, 48])
    """

    def __init__(self, n_features: int, units: int, activation: str = "tanh") -> None:
        super().__init__()
        self.units = units
        self.kernel = nn.Linear(n_features, 4 * units, bias=True)
        self.recurrent = nn.Linear(units, 4 * units, bias=False)
        self.act = _activation(activation)
        with torch.no_grad():
            for gate in range(4):
                rows = slice(gate * units, (gate + 1) * units)
                nn.init.xavier_uniform_(self.kernel.weight[rows])
                nn.init.orthogonal_(self.recurrent.weight[rows])
            self.kernel.bias.zero_()
            self.kernel.bias[units:2 * units] = _FORGET_BIAS

    def forward(self, x: Tensor) -> Tensor:
        """``x`` (N, T, F) -> last hidden state (N, units)."""
        n, steps, _ = x.shape
        projected = self.kernel(x)  # (N, T, 4U): every timestep's input term at once
        h = x.new_zeros(n, self.units)
        c = x.new_zeros(n, self.units)
        for t in range(steps):
            z = projected[:, t] + self.recurrent(h)
            i, f, g, o = z.chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * self.act(g)
            h = torch.sigmoid(o) * self.act(c)
        return h


def _dense_stack(n_in: int, sizes: Sequence[int], activation: str, dropout: float) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = []
    for size in sizes:
        layers += [nn.Linear(n_in, size), _activation(activation)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        n_in = size
    return nn.Sequential(*layers), n_in


def _glorot(module: nn.Module) -> None:
    """Keras' Dense defaults: Glorot-uniform kernels, zero biases."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


class LSTMClassifier(nn.Module):
    """LSTM -> dropout -> dense stack -> logits of the window centre's class.

    Parameters
    ----------
    n_features : int
        Features per segment.
    units : int
        LSTM units.
    cell_activation : str
        LSTM cell activation.
    dropout : float
        Dropout after the LSTM.
    dense : sequence of int
        Hidden dense layers.
    dense_activation : str
        Their activation.
    dense_dropout : float
        Dropout after each of them.
    n_classes : int
        Outputs (3).

    Examples
    --------
    >>> m = LSTMClassifier(8)  # the notebook preset's layers
    >>> sum(p.numel() for p in m.parameters())  # METHOD.md §6.2: 12,051 with 8 features
    12051
    >>> m(torch.zeros(4, 5, 8)).shape
    torch.Size([4, 3])
    """

    def __init__(self, n_features: int, units: int = 48, cell_activation: str = "tanh", dropout: float = 0.4,
                 dense: Sequence[int] = (16, 16), dense_activation: str = "elu", dense_dropout: float = 0.4,
                 n_classes: int = N_CLASSES) -> None:
        super().__init__()
        self.lstm = KerasLSTM(n_features, units, cell_activation)
        self.dropout = nn.Dropout(dropout)
        self.dense, n_out = _dense_stack(units, dense, dense_activation, dense_dropout)
        self.head = nn.Linear(n_out, n_classes)
        _glorot(self.dense)
        _glorot(self.head)

    def forward(self, x: Tensor) -> Tensor:
        """``x`` (N, T, F) -> logits (N, n_classes)."""
        out: Tensor = self.head(self.dense(self.dropout(self.lstm(x))))
        return out


class MLPClassifier(nn.Module):
    """Flattened window -> Dense ReLU -> dropout -> logits (the paper's baseline, METHOD.md §6.5).

    Examples
    --------
    >>> m = MLPClassifier(6)
    >>> sum(p.numel() for p in m.parameters())  # 30 inputs: 30 * 32 + 32 + 32 * 3 + 3
    1091
    >>> m(torch.zeros(2, 5, 6)).shape
    torch.Size([2, 3])
    """

    def __init__(self, n_features: int, window: int = WINDOW, units: int = 32, activation: str = "relu",
                 dropout: float = 0.2, n_classes: int = N_CLASSES) -> None:
        super().__init__()
        self.window = window
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(window * n_features, units), _activation(activation),
                                  nn.Dropout(dropout))
        self.head = nn.Linear(units, n_classes)
        _glorot(self)

    def forward(self, x: Tensor) -> Tensor:
        """``x`` (N, T, F) -> logits (N, n_classes)."""
        out: Tensor = self.head(self.body(x))
        return out


def architecture_kwargs(config: SequenceModelConfig, n_features: int,
                        window: int = WINDOW) -> tuple[str, dict[str, Any]]:
    """Registered architecture name and constructor kwargs of a preset (what the model card stores)."""
    if config.architecture == "mlp":
        return "MLPClassifier", {"n_features": n_features, "window": window, "units": config.units,
                                 "activation": config.dense_activation, "dropout": config.dropout}
    return "LSTMClassifier", {"n_features": n_features, "units": config.units,
                              "cell_activation": config.cell_activation, "dropout": config.dropout,
                              "dense": tuple(config.dense), "dense_activation": config.dense_activation,
                              "dense_dropout": config.dense_dropout}


def build_model(config: SequenceModelConfig, n_features: int, window: int = WINDOW,
                seed: int | None = None) -> nn.Module:
    """The untrained module of a preset (weights drawn from ``seed`` when given).

    Examples
    --------
    >>> a = build_model(preset("paper"), 6, seed=1)
    >>> b = build_model(preset("paper"), 6, seed=1)
    >>> all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    True
    >>> sum(p.numel() for p in a.parameters())  # METHOD.md §6.1: about 19,475 with 6 features
    19475
    """
    if seed is not None:
        torch.manual_seed(seed)
    name, kwargs = architecture_kwargs(config, n_features, window)
    cls: type[nn.Module] = MLPClassifier if name == "MLPClassifier" else LSTMClassifier
    return cls(**kwargs)


#: Windows per forward pass at inference.
PREDICT_BATCH: Final[int] = 8192


@torch.no_grad()
def predict_proba(model: nn.Module, x: Any, batch_size: int = PREDICT_BATCH) -> Any:
    """Class probabilities (N, 3) float32 numpy of windows ``x`` (N, T, F) float32 numpy, eval mode.

    Examples
    --------
    >>> import numpy as np
    >>> p = predict_proba(build_model(preset("mlp"), 2, seed=0), np.zeros((3, 5, 2), np.float32))
    >>> p.shape, bool(np.allclose(p.sum(axis=1), 1.0))
    ((3, 3), True)
    """
    import numpy as np

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    try:
        for start in range(0, len(x), batch_size):
            chunk = torch.from_numpy(np.ascontiguousarray(x[start:start + batch_size])).to(device)
            out.append(torch.softmax(model(chunk), dim=1).cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, N_CLASSES), np.float32)
