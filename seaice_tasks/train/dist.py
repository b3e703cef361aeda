"""Distributed back-ends of the training loop: one process, Horovod, torch.distributed (DDP).

One loop (:class:`~seaice_tasks.train.loop.Trainer`), three ways to run it, chosen by
``backend`` (:data:`BACKENDS`):

``single``
    One process; the Trainer as it is.
``horovod``
    Started by ``horovodrun -np N -H host:N[,host2:N] ...`` (Gloo on CPU, NCCL on GPU).
    :class:`HorovodTrainer` wraps the optimizer in ``hvd.DistributedOptimizer`` (gradients
    averaged by ring all-reduce during ``step``), broadcasts the parameters and the optimizer
    state from rank 0 after the (optional) resume, averages metrics with ``hvd.allreduce``.
``torchrun``
    Started by ``torchrun --nproc-per-node N [--nnodes M ...] ...``.  :class:`DDPTrainer` joins
    the process group (Gloo on CPU, NCCL on GPU) from the launcher's environment, wraps the
    model in ``DistributedDataParallel`` (gradients averaged during ``backward``), broadcasts the
    parameters from rank 0 after the resume, averages metrics with ``all_reduce``.

Same semantics for both: the training data are sharded per rank by a ``DistributedSampler``
(reshuffled per epoch with the run's seed: :meth:`Trainer._run_epoch` calls ``set_epoch``),
rank 0 alone logs and writes checkpoints, every rank resumes from the same checkpoint folder and
the ranks check that they agree on the epoch to start from.  The optimizer state is broadcast
only when there is one (a resumed run): Horovod's broadcast of an empty Adam state would run a
zero-gradient step and shift Adam's step count by one, which the DDP and single-process runs do
not do.

Horovod is imported only by the ``horovod`` back-end (it is built by ``make horovod``).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import torch
from torch import Tensor, nn

from seaice_tasks.errors import ConfigError
from seaice_tasks.train.loop import Trainer

__all__ = [
    "BACKENDS",
    "DistContext",
    "init_backend",
    "shutdown_backend",
    "trainer_class",
    "HorovodTrainer",
    "DDPTrainer",
]

log = logging.getLogger(__name__)

#: Training back-ends (the launcher that starts the processes decides which one applies).
BACKENDS: Final[tuple[str, ...]] = ("single", "horovod", "torchrun")
#: Timeout of the torch.distributed process group (s).
_PG_TIMEOUT_S: Final[float] = 600.0


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a training run.

    Attributes
    ----------
    backend : str
        One of :data:`BACKENDS`.
    rank, world_size, local_rank : int
        Global rank, process count and rank on this host.
    device : str
        ``"cpu"`` or ``"cuda:<N + local_rank>"`` (:func:`_device`).
    """

    backend: str
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"


def _device(local_rank: int, want: str) -> str:
    """The torch device of a rank: ``cpu``, or the GPU ``N + local_rank`` of ``cuda[:N]`` (N default 0).

    Raises
    ------
    ConfigError
        When ``want`` is not ``cpu``, ``cuda`` or ``cuda:N``, or names a GPU this torch cannot
        use (no CUDA, or fewer devices): never a silent fall-back to the CPU.
    """
    if want == "cpu":
        return "cpu"
    kind, _, index = want.partition(":")
    if kind != "cuda" or not (index == "" or index.isdigit()):
        raise ConfigError(f"device {want!r}: one of cpu, cuda, cuda:N")
    if not torch.cuda.is_available():
        raise ConfigError(f"device {want}: torch {torch.__version__} sees no CUDA GPU here (use cpu)")
    gpu = int(index or 0) + local_rank
    if gpu >= torch.cuda.device_count():
        raise ConfigError(f"device {want}: GPU {gpu} asked for, this host has {torch.cuda.device_count()}")
    torch.cuda.set_device(gpu)
    return f"cuda:{gpu}"


def init_backend(backend: str, device: str = "cpu") -> DistContext:
    """Join the run of ``backend`` (from the launcher's environment) and return the context.

    Raises
    ------
    ConfigError
        When the back-end is unknown, Horovod is not installed, the torchrun environment
        variables are missing, or ``device`` is not usable here.
    """
    if backend == "single":
        return DistContext("single", device=_device(0, device))
    if backend == "horovod":
        try:
            import horovod.torch as hvd
        except ImportError as exc:
            raise ConfigError(f"backend horovod: Horovod is not installed (run `make horovod`): {exc}") from exc
        hvd.init()
        ctx = DistContext("horovod", hvd.rank(), hvd.size(), hvd.local_rank(), _device(hvd.local_rank(), device))
        torch.set_num_threads(max(1, torch.get_num_threads() // max(1, hvd.local_size())))
        return ctx
    if backend == "torchrun":
        missing = [v for v in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
        if missing:
            raise ConfigError(f"backend torchrun: {', '.join(missing)} not set (start the workers with torchrun)")
        import torch.distributed as dist

        local_rank = int(os.environ["LOCAL_RANK"])
        dev = _device(local_rank, device)
        dist.init_process_group("nccl" if dev.startswith("cuda") else "gloo",
                                timeout=dt.timedelta(seconds=_PG_TIMEOUT_S))
        local_size = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        torch.set_num_threads(max(1, torch.get_num_threads() // max(1, local_size)))
        return DistContext("torchrun", dist.get_rank(), dist.get_world_size(), local_rank, dev)
    raise ConfigError(f"unknown training backend {backend!r} (known: {', '.join(BACKENDS)})")


def shutdown_backend(ctx: DistContext) -> None:
    """Leave the run (torch.distributed: destroy the process group; Horovod: shutdown)."""
    if ctx.backend == "torchrun":
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
    elif ctx.backend == "horovod":
        import horovod.torch as hvd

        hvd.shutdown()


class HorovodTrainer(Trainer):
    """:class:`Trainer` under Horovod (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        import horovod.torch as hvd

        super().__init__(*args, **kwargs)
        self._hvd = hvd
        self.optimizer = hvd.DistributedOptimizer(self.optimizer, named_parameters=self.model.named_parameters(),
                                                  op=hvd.Average)

    def _maybe_resume(self) -> None:
        super()._maybe_resume()
        hvd = self._hvd
        hvd.broadcast_parameters(self.model.state_dict(), root_rank=0)
        if self.optimizer.state_dict()["state"]:
            hvd.broadcast_optimizer_state(self.optimizer, root_rank=0)

    def average_metric(self, name: str, value: float) -> float:
        """Mean over the ranks (``hvd.allreduce`` with ``op=Average``)."""
        return float(self._hvd.allreduce(torch.tensor(float(value), dtype=torch.float64), name=f"metric.{name}",
                                         op=self._hvd.Average))

    def sum_tensor(self, tensor: Tensor) -> Tensor:
        """Sum over the ranks."""
        summed: Tensor = self._hvd.allreduce(tensor, op=self._hvd.Sum)
        return summed

    def gather_object(self, obj: Any) -> list[Any]:
        """Every rank's value, in rank order."""
        return list(self._hvd.allgather_object(obj))


class DDPTrainer(Trainer):
    """:class:`Trainer` under torch.distributed with ``DistributedDataParallel``."""

    def __init__(self, model: nn.Module, *args: Any, **kwargs: Any) -> None:
        from torch.nn.parallel import DistributedDataParallel

        config = kwargs.get("config")
        device = torch.device(config.device if config is not None else "cpu")
        model = model.to(device)
        wrapped = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        super().__init__(wrapped, *args, **kwargs)

    def _maybe_resume(self) -> None:
        import torch.distributed as dist

        super()._maybe_resume()
        for tensor in self.model.state_dict().values():
            dist.broadcast(tensor, src=0)

    def average_metric(self, name: str, value: float) -> float:
        """Mean over the ranks (``all_reduce`` sum / world size)."""
        import torch.distributed as dist

        del name
        t = torch.tensor(float(value), dtype=torch.float64)
        dist.all_reduce(t)
        return float(t) / dist.get_world_size()

    def sum_tensor(self, tensor: Tensor) -> Tensor:
        """Sum over the ranks."""
        import torch.distributed as dist

        out = tensor.clone()
        dist.all_reduce(out)
        return out

    def gather_object(self, obj: Any) -> list[Any]:
        """Every rank's value, in rank order."""
        import torch.distributed as dist

        gathered: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, obj)
        return gathered


_TRAINERS: Final[Mapping[str, Callable[..., Trainer]]] = {
    "single": Trainer,
    "horovod": HorovodTrainer,
    "torchrun": DDPTrainer,
}


def trainer_class(backend: str) -> Callable[..., Trainer]:
    """The Trainer (sub)class of a back-end."""
    try:
        return _TRAINERS[backend]
    except KeyError:
        raise ConfigError(f"unknown training backend {backend!r} (known: {', '.join(BACKENDS)})") from None
