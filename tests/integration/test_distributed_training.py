"""Distributed training on CPU: 2-process Horovod (Gloo) and torchrun (DDP) runs, a killed rank resumed.

Each test starts the real launchers (``horovodrun -np 2 -H localhost:2 --gloo``, ``torchrun
--standalone --nproc-per-node 2``) on a small learnable training set in a temporary lake.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from seaice_tasks.products import MODELS
from seaice_tasks.storage import Lake, lake_from_env
from seaice_tasks.train import segments as seg
from seaice_tasks.train.launch import launch_command, run_training
from seaice_tasks.train.segments import SegmentTrainConfig, train_segment_model
from tests.training_data import commit_learnable_training_set

CONFIG = SegmentTrainConfig(epochs=3, batch_size=64)
#: Metrics of a Horovod and a torchrun run of the same config (same sharding, same seeds,
#: gradients averaged by different all-reduce implementations): equal within this tolerance.
METRIC_TOLERANCE = 1e-3
TIMEOUT_S = 600



@pytest.fixture(scope="module")
def horovod_built() -> None:
    """``make test`` builds Horovod first (``make horovod``): its absence is a failure, not a skip."""
    assert (Path(sys.executable).parent / "horovodrun").exists(), "horovodrun missing: run `make horovod`"


@pytest.fixture(scope="module")
def lake_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("distlake")
    commit_learnable_training_set(Lake(root))
    return root


def _fresh_lake(lake_dir: Path, tmp: Path) -> Path:
    dest = tmp / "lake"
    shutil.copytree(lake_dir, dest)
    return dest


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    env.pop("SEAICE_LAKE", None)
    return env


#: Rank weights of the local Horovod run, for the run on S3 to match.
_LOCAL_HOROVOD: dict[str, Any] = {}


def test_horovod_two_ranks_identical_weights(horovod_built: None, lake_dir: Path, tmp_path: Path) -> None:
    lake = _fresh_lake(lake_dir, tmp_path)
    result = run_training("horovod", 2, str(lake), CONFIG, env=_env(), timeout_s=TIMEOUT_S)
    assert result["world_size"] == 2 and result["backend"] == "horovod" and result["committed"]
    digests = result["rank_weights_sha256"]
    assert len(digests) == 2 and digests[0] == digests[1]
    _LOCAL_HOROVOD.update(result)
    assert Lake(lake).manifest(MODELS.key(name=CONFIG.name, version=result["version"])) is not None
    assert result["metrics"]["test"]["accuracy"] > 0.85


def test_horovod_ranks_read_and_write_a_lake_on_s3(horovod_built: None, lake_dir: Path, s3_bucket: str) -> None:
    """Both ranks read the training set from the loopback S3 server; rank 0 commits the model there.

    Same data, seeds and sharding as the local run: the same weights.
    """
    import fsspec

    if not _LOCAL_HOROVOD:
        pytest.skip("needs test_horovod_two_ranks_identical_weights first (same module)")
    lake_url = f"s3://{s3_bucket}/lake"
    fs = fsspec.filesystem("s3", client_kwargs={"endpoint_url": os.environ["SEAICE_S3_ENDPOINT_URL"]})
    for f in sorted(p for p in lake_dir.rglob("*") if p.is_file()):
        fs.put_file(str(f), f"{s3_bucket}/lake/{f.relative_to(lake_dir).as_posix()}")
    result = run_training("horovod", 2, lake_url, CONFIG, env=_env(), timeout_s=TIMEOUT_S)
    assert result["committed"] and result["world_size"] == 2
    assert result["rank_weights_sha256"] == _LOCAL_HOROVOD["rank_weights_sha256"]
    assert result["version"] == _LOCAL_HOROVOD["version"]
    assert lake_from_env(lake_url).manifest(MODELS.key(name=CONFIG.name, version=result["version"])) is not None


def test_torchrun_two_ranks_identical_weights(lake_dir: Path, tmp_path: Path) -> None:
    lake = _fresh_lake(lake_dir, tmp_path)
    result = run_training("torchrun", 2, str(lake), CONFIG, env=_env(), timeout_s=TIMEOUT_S)
    assert result["world_size"] == 2 and result["backend"] == "torchrun" and result["committed"]
    digests = result["rank_weights_sha256"]
    assert len(digests) == 2 and digests[0] == digests[1]
    assert result["metrics"]["test"]["accuracy"] > 0.85


def test_horovod_and_torchrun_agree(horovod_built: None, lake_dir: Path, tmp_path: Path) -> None:
    a = run_training("horovod", 2, str(_fresh_lake(lake_dir, tmp_path / "h")), CONFIG, env=_env(),
                     timeout_s=TIMEOUT_S)
    b = run_training("torchrun", 2, str(_fresh_lake(lake_dir, tmp_path / "t")), CONFIG, env=_env(),
                     timeout_s=TIMEOUT_S)
    for key in ("accuracy", "macro_f1"):
        assert a["metrics"]["test"][key] == pytest.approx(b["metrics"]["test"][key], abs=METRIC_TOLERANCE), key
    # two processes with a 2x64 global batch vs one with 64: the same data, a different run
    single = train_segment_model(Lake(_fresh_lake(lake_dir, tmp_path / "s")), CONFIG)
    assert single["metrics"]["test"]["accuracy"] > 0.85


def _kill_a_rank_after_first_checkpoint(cmd: list[str], checkpoints: Path) -> int:
    """Start the run, SIGKILL rank 1's process once epoch 1's checkpoint exists; the launcher's exit status."""
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + TIMEOUT_S
    killed = False
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if not killed and (checkpoints / "epoch_0001.pt").exists():
                workers = [p for p in psutil.Process(proc.pid).children(recursive=True)
                           if "seaice_tasks.train.segments" in " ".join(p.cmdline())]
                rank1 = [p for p in workers if p.environ().get("RANK", p.environ().get("HOROVOD_RANK")) == "1"]
                assert rank1, [p.cmdline() for p in workers]
                rank1[0].send_signal(signal.SIGKILL)
                killed = True
            time.sleep(0.05)
        assert killed, "the run ended before its first checkpoint could be watched"
        return proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)


@pytest.mark.parametrize("backend", ["horovod", "torchrun"])
def test_killed_rank_resumes_to_the_uninterrupted_weights(backend: str, lake_dir: Path, tmp_path: Path,
                                                         request: pytest.FixtureRequest) -> None:
    if backend == "horovod":
        request.getfixturevalue("horovod_built")
    config = SegmentTrainConfig(epochs=4, batch_size=32)
    reference = run_training(backend, 2, str(_fresh_lake(lake_dir, tmp_path / "ref")), config, env=_env(),
                             timeout_s=TIMEOUT_S)
    lake = _fresh_lake(lake_dir, tmp_path / "run")
    version = reference["version"]
    checkpoints = seg.checkpoint_dir(Lake(lake), config.name, version)
    status = _kill_a_rank_after_first_checkpoint(launch_command(backend, 2, str(lake), config), checkpoints)
    assert status != 0
    assert Lake(lake).manifest(MODELS.key(name=config.name, version=version)) is None  # nothing half-done visible
    resumed: dict[str, Any] = run_training(backend, 2, str(lake), config, env=_env(), timeout_s=TIMEOUT_S)
    assert resumed["version"] == version and resumed["resumed_from"] >= 1
    assert resumed["rank_weights_sha256"] == reference["rank_weights_sha256"]
