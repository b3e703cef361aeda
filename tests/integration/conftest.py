"""Integration-only fixtures: a real S3-protocol server (moto) on 127.0.0.1 and fresh buckets on it.

Every test collected under this folder gets the ``integration`` marker here, so a new file cannot forget it.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import _free_port, _stop

HERE = Path(__file__).resolve().parent
MOTO_START_TIMEOUT_S = 30.0
MOTO_REGION = "us-east-1"


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects, so `-m "not integration"` sees the marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(item.path).resolve().is_relative_to(HERE):
            item.add_marker(pytest.mark.integration)


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
