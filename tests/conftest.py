"""Shared fixtures: the real sample data, a real S3-protocol server on 127.0.0.1, lakes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REALDATA = REPO.parent / "shared" / "realdata"
MOTO_START_TIMEOUT_S = 30.0
MOTO_REGION = "us-east-1"


@pytest.fixture(scope="session")
def realdata() -> Path:
    """The shared real sample data (must be beside the repository)."""
    assert REALDATA.is_dir(), f"{REALDATA} missing: ../shared/realdata must be beside the repo"
    return REALDATA


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process group: SIGINT, then SIGTERM, then SIGKILL."""
    for sig, wait_s in ((signal.SIGINT, 5), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """moto's standalone S3 server on 127.0.0.1, started and stopped here.

    Yields the environment a client needs (endpoint, fake credentials, region).
    """
    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    moto = Path(sys.executable).with_name("moto_server")
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [str(moto), "-H", "127.0.0.1", "-p", str(port)],
            stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
        )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + MOTO_START_TIMEOUT_S
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                _stop(proc)
                raise RuntimeError(f"moto_server did not start: {log.read_text()[-2000:]}") from None
            time.sleep(0.2)
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": MOTO_REGION,
        "SEAICE_S3_ENDPOINT_URL": endpoint,
    }
    try:
        yield env
    finally:
        _stop(proc)


@pytest.fixture
def s3_bucket(s3_server: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the S3 server; the environment points s3fs at it."""
    import boto3

    for k, v in s3_server.items():
        monkeypatch.setenv(k, v)
    name = f"seaice-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=s3_server["SEAICE_S3_ENDPOINT_URL"])
    client.create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def small_sim_day(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A small simulated day (1 granule x 20 km, one 5 km scene), written once per session."""
    from seaice_tasks.sim.day import simulate_day
    from seaice_tasks.sim.geometry import SimConfig

    config = SimConfig(granules=1, km=20.0, scenes_per_granule=1, scene_km=5.0)
    return simulate_day(config, tmp_path_factory.mktemp("small_sim_day"), workers=1)


@pytest.fixture(scope="session")
def tiny_unet_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved, untrained U-Net folder (3 levels, width 2, 32 px tiles): enough for plumbing tests."""
    from seaice_tasks.models.unet import UNetConfig, build_unet, save_unet
    from seaice_tasks.train.loop import seed_everything

    cfg = UNetConfig(base_filters=2, levels=3, dropouts=(0.1, 0.1, 0.2), decoder_dropouts=(0.2, 0.1), tile_px=32)
    seed_everything(3)
    folder = tmp_path_factory.mktemp("tiny_unet")
    save_unet(build_unet(cfg), cfg, {}, folder, training_data="untrained, plumbing tests")
    return folder
