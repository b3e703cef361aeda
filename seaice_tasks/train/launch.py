"""Launch a segment-classifier training: one process, ``horovodrun`` or ``torchrun``.

:func:`launch_command` builds the command line that starts ``np`` processes of
:mod:`seaice_tasks.train.segments` (the same command an Airflow task runs on the ``dgx`` pool);
:func:`run_training` runs it and parses rank 0's ``SEAICE_RESULT`` line.

Single host (the default ``hosts``)::

    python -m seaice_tasks.train.segments --backend single ...
    horovodrun -np 2 -H localhost:2 --gloo python -m seaice_tasks.train.segments --backend horovod ...
    torchrun --standalone --nnodes 1 --nproc-per-node 2 -m seaice_tasks.train.segments --backend torchrun ...

Several hosts: Horovod takes a host list (``hosts="dgx1:8,dgx2:8"``, ``np`` 16; password-less
SSH between the hosts, the same venv path on each); torchrun runs once per node with
``--nnodes M --node-rank R --rdzv-backend c10d --rdzv-endpoint HOST:PORT``
(:func:`launch_command` with ``nnodes``/``node_rank``/``rdzv_endpoint``).  On GPUs pass
``device="cuda"`` in the config: each rank takes the GPU of its local rank, Horovod then
all-reduces with NCCL when it was built with ``HOROVOD_GPU_OPERATIONS=NCCL``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from seaice_tasks.errors import ConfigError, SeaIceError
from seaice_tasks.storage import lake_from_env
from seaice_tasks.train.dist import BACKENDS
from seaice_tasks.train.segments import RESULT_MARKER, SegmentTrainConfig, check_training_inputs

__all__ = ["WORKER_MODULE", "launch_command", "run_training", "TrainingFailed"]

log = logging.getLogger(__name__)

#: The module every process runs.
WORKER_MODULE: Final[str] = "seaice_tasks.train.segments"
#: Exit status of a worker that refused its input (bad config, missing training set).
_EXIT_INPUT: Final[int] = 2


class TrainingFailed(SeaIceError):
    """A training run exited non-zero (the message carries the exit status and the log's tail).

    Attributes
    ----------
    returncode : int
        Exit status of the launcher (2: a worker refused its input).
    """

    def __init__(self, message: str, returncode: int) -> None:
        super().__init__(message)
        self.returncode = returncode


def _tool(name: str, python: str) -> str:
    local = Path(python).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise ConfigError(f"{name} not found beside {python} or on PATH"
                          + (" (run `make horovod`)" if name == "horovodrun" else ""))
    return found


def launch_command(
    backend: str,
    nproc: int,
    lake: str,
    config: SegmentTrainConfig,
    *,
    hosts: str = "",
    python: str = sys.executable,
    nnodes: int = 1,
    node_rank: int = 0,
    rdzv_endpoint: str = "",
) -> list[str]:
    """The command line that trains ``config`` with ``nproc`` processes under ``backend``.

    Examples
    --------
    >>> cmd = launch_command("single", 1, "/lake", SegmentTrainConfig(epochs=1), python="/venv/bin/python")
    >>> cmd[:4]
    ['/venv/bin/python', '-m', 'seaice_tasks.train.segments', '--lake']
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown training backend {backend!r} (known: {', '.join(BACKENDS)})")
    if nproc < 1 or nnodes < 1 or not 0 <= node_rank < nnodes:
        raise ConfigError(f"training launch: need nproc >= 1 and 0 <= node_rank < nnodes, got {nproc}, "
                          f"{node_rank}, {nnodes}")
    worker = ["--lake", lake, "--config", config.to_json(), "--backend", backend]
    if backend == "single":
        if nproc != 1:
            raise ConfigError(f"backend single runs one process, not {nproc} (use horovod or torchrun)")
        return [python, "-m", WORKER_MODULE, *worker]
    if backend == "horovod":
        host_list = hosts or f"localhost:{nproc}"
        return [_tool("horovodrun", python), "-np", str(nproc), "-H", host_list, "--gloo",
                python, "-m", WORKER_MODULE, *worker]
    if nnodes == 1 and not rdzv_endpoint:
        launcher = ["--standalone", "--nnodes", "1"]
    else:
        if not rdzv_endpoint:
            raise ConfigError("torchrun on several nodes needs rdzv_endpoint HOST:PORT")
        launcher = ["--nnodes", str(nnodes), "--node-rank", str(node_rank), "--rdzv-backend", "c10d",
                    "--rdzv-endpoint", rdzv_endpoint]
    return [_tool("torchrun", python), *launcher, "--nproc-per-node", str(nproc), "-m", WORKER_MODULE, *worker]


def run_training(
    backend: str,
    nproc: int,
    lake: str,
    config: SegmentTrainConfig,
    *,
    hosts: str = "",
    env: Mapping[str, str] | None = None,
    timeout_s: float | None = None,
) -> dict[str, Any]:
    """Run a training (see :func:`launch_command`) and return rank 0's summary.

    Raises
    ------
    InputError
        When the training set is not committed or lacks a requested feature (checked before
        any process starts).
    TrainingFailed
        When the processes exit non-zero or rank 0 prints no result (exit status 2 of a worker:
        its input was refused; the message names it).
    """
    cmd = launch_command(backend, nproc, lake, config, hosts=hosts)
    check_training_inputs(lake_from_env(lake), config)  # bad input: one line here, not a traceback per rank
    run_env = dict(os.environ if env is None else env)
    run_env.setdefault("PYTHONUNBUFFERED", "1")
    log.info("training: %s", " ".join(cmd[:8]) + " ...")
    proc = subprocess.run(cmd, env=run_env, capture_output=True, text=True, check=False, timeout=timeout_s)
    lines = [ln for ln in proc.stdout.splitlines() if RESULT_MARKER in ln]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stdout + "\n" + proc.stderr).strip().splitlines()[-25:])
        kind = "refused its input" if proc.returncode == _EXIT_INPUT else "failed"
        raise TrainingFailed(f"{backend} training with {nproc} process(es) {kind} (exit {proc.returncode}):\n{tail}",
                             proc.returncode)
    line = lines[-1]
    summary: dict[str, Any] = json.loads(line[line.index(RESULT_MARKER) + len(RESULT_MARKER):])
    return summary
