"""Integration-only fixtures: a real S3-protocol server (moto) on 127.0.0.1 and fresh buckets on it.

Every test collected under this folder gets the ``integration`` marker here, so a new file cannot forget it.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from seaice_tasks.airflow_stack import free_port, stop_group, wait_port

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
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    moto = Path(sys.executable).with_name("moto_server")
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [str(moto), "-H", "127.0.0.1", "-p", str(port)],
            stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_port(port, proc, "moto_server", log, MOTO_START_TIMEOUT_S)
    except RuntimeError:
        stop_group(proc)
        raise
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": MOTO_REGION,
        "SEAICE_S3_ENDPOINT_URL": endpoint,
    }
    try:
        yield env
    finally:
        stop_group(proc)


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


#: The two simulated days of the shared Airflow deployment (small: 1 granule x 20 km, one 5 km scene each).
STACK_DAYS = ("2019-11-04", "2019-11-05")


@pytest.fixture(scope="session")
def seaice_airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One real Airflow deployment for the whole session, shared by the tests that need it.

    A Postgres metadata database of its own, ``airflow api-server``, ``scheduler``,
    ``dag-processor`` and ``triggerer`` as process groups on loopback, ``spark_default`` on a
    Spark standalone master + worker on loopback, a catalog of two simulated days and an empty
    lake.  Yields ``stack``, ``client``, ``lake`` (folder), ``catalog``, ``days``, ``spark`` and
    ``corrupt`` (the path of a truncated granule of the second day: the day must finish, recording
    it as a skip).
    """
    from seaice_tasks.airflow_stack import AirflowStack, SparkStandalone
    from seaice_tasks.demo import add_corrupt_granule
    from seaice_tasks.sim.day import simulate_day
    from seaice_tasks.sim.geometry import SimConfig

    root = tmp_path_factory.mktemp("airflow_stack")
    catalog = root / "catalog"
    for day in STACK_DAYS:
        config = SimConfig(date=day, seed=int(day.replace("-", "")), granules=1, km=20.0, scenes_per_granule=1,
                           scene_km=5.0)
        sim = simulate_day(config, root / f"sim_{day}", workers=1)
        for entry in (f for f in Path(sim.catalog).rglob("*") if f.is_file()):  # discovery follows file links only
            link = catalog / entry.relative_to(sim.catalog)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(entry)
    corrupt = add_corrupt_granule(catalog, STACK_DAYS[1])  # the demo's corrupt granule, on the second day
    lake = root / "lake"
    spark = SparkStandalone(root / "spark").start()
    stack = AirflowStack(root / "airflow", f"seaice_test_{uuid.uuid4().hex[:12]}", spark_master=spark.master_url,
                         extra_env={"SEAICE_LAKE": str(lake), "SEAICE_CATALOG": str(catalog),
                                    "SEAICE_CATCHUP": "false", "SEAICE_RETRY_DELAY_S": "3"})
    try:
        stack.start()
        client = stack.client()
        client.wait_dag("seaice_daily")
        yield {"stack": stack, "client": client, "lake": lake, "catalog": catalog, "days": STACK_DAYS,
               "spark": spark, "corrupt": corrupt}
    finally:
        stack.stop()
        spark.stop()
