"""The lake and the catalog are separate stores: raw inputs are read with the catalog's options only.

Each store gets its own endpoint and credentials from ``SEAICE_<STORE>_S3_ENDPOINT_URL`` and
``SEAICE_<STORE>_OPTIONS``; there is no shared endpoint (``SEAICE_S3_ENDPOINT_URL``) and no AWS
credential variable in the environment, so a reader that took the other store's options would reach
for real AWS (no network here) and fail.  One store sits on the moto server, the other on a local
folder, and the outputs must be byte-identical to the same jobs run on local copies.  The negative
half puts the lake on the server with its endpoint and credentials and leaves the catalog without
any: every read of an input must then fail, which it would not if a reader took the lake's options.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import BotoCoreError

from seaice_tasks.catalog import run_discover
from seaice_tasks.granule import parse_granule
from seaice_tasks.is2.resample import ResampleConfig
from seaice_tasks.products import S2_LABELS, SEGMENTS_2M
from seaice_tasks.s2.scene_labels import S2LabelConfig
from seaice_tasks.spark_jobs import resample, s2_labels
from seaice_tasks.spark_jobs.runner import RESULT_MARKER, main, run_job
from seaice_tasks.storage import STAGING_DIR, InputStore, Lake, inputs_from_env, lake_from_env
from tests.servers import spark_env

pytestmark = pytest.mark.integration

SPARK_TIMEOUT_S = 300
#: A read that must fail (no endpoint, no credentials) has to do so at once, not after retries.
FAIL_FAST_S = 20.0
CHUNKED = ResampleConfig(max_photons_per_chunk=60_000)
LABELS = S2LabelConfig(window_px=200)
#: What botocore says when a store has neither credentials nor a reachable endpoint.
_NO_ACCESS = re.compile(r"NoCredentialsError|Unable to locate credentials|EndpointConnectionError|Could not connect")
#: Every variable that could hand a store an endpoint or credentials it was not given.
STORE_VARS = (
    "SEAICE_LAKE", "SEAICE_LAKE_OPTIONS", "SEAICE_LAKE_S3_ENDPOINT_URL", "SEAICE_S3_ENDPOINT_URL",
    "SEAICE_CATALOG", "SEAICE_CATALOG_OPTIONS", "SEAICE_CATALOG_S3_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
)


def _endpoint(server: dict[str, str]) -> str:
    return server["SEAICE_S3_ENDPOINT_URL"]


def _isolate(monkeypatch: pytest.MonkeyPatch, server: dict[str, str], tmp_path: Path) -> None:
    """No store variable, no AWS credential; botocore fails at once instead of retrying or probing."""
    for name in STORE_VARS:
        monkeypatch.delenv(name, raising=False)
    empty = tmp_path / "no-aws-files"
    empty.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))  # no ~/.aws profile can supply credentials
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("AWS_RETRY_MODE", "standard")
    monkeypatch.setenv("AWS_DEFAULT_REGION", server["AWS_DEFAULT_REGION"])  # signing region for moto


def _options(key: str) -> str:
    return json.dumps({"key": f"{key}-key", "secret": f"{key}-secret", "config_kwargs": {"connect_timeout": 2}})


def _bucket(server: dict[str, str]) -> tuple[Any, str]:
    """A fresh bucket, made with a client of its own (explicit credentials, nothing from the environment)."""
    import boto3

    client = boto3.client("s3", endpoint_url=_endpoint(server), region_name=server["AWS_DEFAULT_REGION"],
                          aws_access_key_id=server["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=server["AWS_SECRET_ACCESS_KEY"])
    name = f"seaice-stores-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    return client, name


def _upload_inputs(client: Any, bucket: str, sim: Any) -> None:
    """The day's ATL03 granule and S2 scene folder under ``catalog/`` as in the local catalog."""
    granule, scene = Path(sim.atl03[0]), Path(sim.scenes[0])
    client.upload_file(str(granule), bucket, f"catalog/{granule.relative_to(sim.catalog).as_posix()}")
    for f in sorted(scene.iterdir()):
        client.upload_file(str(f), bucket, f"catalog/{f.relative_to(sim.catalog).as_posix()}")


def _day(sim: Any) -> dt.date:
    return parse_granule(Path(sim.atl03[0]).name).date


def _files(lake: Lake, stage: str) -> dict[str, list[tuple[str, str, int | None]]]:
    """(name, sha256, rows) of every committed file of a product, by partition."""
    return {k.relpath: [(f.name, f.sha256, f.rows) for f in lake.require(k).files] for k in lake.partitions(stage)}


@pytest.fixture(scope="module")
def reference(small_sim_day, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Both jobs on the local copies, into a local lake: the files every other run must reproduce."""
    lake = Lake(tmp_path_factory.mktemp("stores_ref") / "lake")
    none = InputStore()
    out = run_job(resample.JOB, [str(small_sim_day.atl03[0])], lake, CHUNKED, inputs=none)
    assert out["failed"] == [] and out["skipped"] == [] and len(out["partitions"]) == 3
    out = run_job(s2_labels.JOB, [str(small_sim_day.scenes[0])], lake, LABELS, inputs=none)
    assert out["failed"] == [] and out["skipped"] == [] and len(out["partitions"]) == 1
    return {"segments": _files(lake, SEGMENTS_2M.name), "labels": _files(lake, S2_LABELS.name)}


def test_catalog_on_s3_with_its_own_options_lake_local(  # type: ignore[no-untyped-def]
    s3_server: dict[str, str], small_sim_day, reference: dict[str, Any], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, bucket = _bucket(s3_server)
    _upload_inputs(client, bucket, small_sim_day)
    day = _day(small_sim_day)
    catalog = f"s3://{bucket}/catalog"
    _isolate(monkeypatch, s3_server, tmp_path)
    monkeypatch.setenv("SEAICE_CATALOG", catalog)
    monkeypatch.setenv("SEAICE_CATALOG_S3_ENDPOINT_URL", _endpoint(s3_server))
    monkeypatch.setenv("SEAICE_CATALOG_OPTIONS", _options("catalog"))
    monkeypatch.setenv("SEAICE_LAKE", str(tmp_path / "lake"))

    found = run_discover(day)
    granule = f"{catalog}/{Path(small_sim_day.atl03[0]).relative_to(small_sim_day.catalog).as_posix()}"
    scene = f"{catalog}/{Path(small_sim_day.scenes[0]).relative_to(small_sim_day.catalog).as_posix()}"
    assert found["granules"] == {"ATL03": [granule]} and found["scenes"] == [scene]
    assert found["skipped"] == [] and found["inventory"].startswith("file://")

    lake = lake_from_env()
    assert lake.protocol == "file" and lake.storage_options == {}
    out = run_job(resample.JOB, found["granules"]["ATL03"], lake, CHUNKED, day=day, inputs=inputs_from_env())
    assert out["failed"] == [] and out["skipped"] == [] and len(out["partitions"]) == 3
    out = run_job(s2_labels.JOB, found["scenes"], lake, LABELS, day=day, inputs=inputs_from_env())
    assert out["failed"] == [] and out["skipped"] == [] and len(out["partitions"]) == 1
    assert _files(lake, SEGMENTS_2M.name) == reference["segments"]  # the same part files, byte for byte
    assert _files(lake, S2_LABELS.name) == reference["labels"]
    assert not os.path.exists(lake.path(STAGING_DIR))

    # under spark-submit: the driver takes the inputs from the inventory of a local lake; the
    # executors read them from the catalog with the catalog's options (the run spec carries them)
    spark_lake = tmp_path / "spark_lake"
    run_discover(day, lake=str(spark_lake))
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("spark-submit")), "--master", "local[2]", "--conf",
         "spark.ui.enabled=false", resample.__file__, "--date", day.isoformat(), "--lake", str(spark_lake),
         "--config", CHUNKED.to_json()],
        env=spark_env(), capture_output=True, text=True, timeout=SPARK_TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(next(x for x in proc.stdout.splitlines() if x.startswith(RESULT_MARKER))
                        .removeprefix(RESULT_MARKER))
    assert result["failed"] == [] and result["skipped"] == [] and len(result["partitions"]) == 3
    assert _files(Lake(spark_lake), SEGMENTS_2M.name) == reference["segments"]

    # the discriminating half: the lake on the server with its endpoint and credentials, the
    # catalog with none -- a reader that took the lake's options would read the inputs anyway
    monkeypatch.delenv("SEAICE_CATALOG_OPTIONS")
    monkeypatch.delenv("SEAICE_CATALOG_S3_ENDPOINT_URL")
    monkeypatch.setenv("SEAICE_LAKE", f"s3://{bucket}/lake")
    monkeypatch.setenv("SEAICE_LAKE_S3_ENDPOINT_URL", _endpoint(s3_server))
    monkeypatch.setenv("SEAICE_LAKE_OPTIONS", _options("lake"))
    s3_lake = lake_from_env()
    assert s3_lake.fs.exists(f"{bucket}/catalog")  # the lake's options do reach the inputs
    assert inputs_from_env().storage_options == {}
    t0 = time.perf_counter()
    with pytest.raises((BotoCoreError, OSError)):  # no credentials, or no route to AWS
        run_discover(day)
    out = run_job(resample.JOB, [granule], s3_lake, CHUNKED, inputs=inputs_from_env())
    assert out["partitions"] == [] and [s["uri"] for s in out["skipped"]] == [granule], out
    skips = list(out["skipped"])
    out = run_job(s2_labels.JOB, [scene], s3_lake, LABELS, inputs=inputs_from_env())
    assert out["partitions"] == [] and [s["uri"] for s in out["skipped"]] == [scene], out
    for skip in skips + out["skipped"]:  # refused for want of the catalog's credentials/endpoint
        assert _NO_ACCESS.search(skip["reason"]), skip
    assert time.perf_counter() - t0 < FAIL_FAST_S
    assert s3_lake.partitions(SEGMENTS_2M.name) == [] and s3_lake.partitions(S2_LABELS.name) == []


def test_lake_on_s3_with_its_own_options_catalog_local(  # type: ignore[no-untyped-def]
    s3_server: dict[str, str], small_sim_day, reference: dict[str, Any], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    client, bucket = _bucket(s3_server)
    day = _day(small_sim_day)
    root = f"s3://{bucket}/lake"
    _isolate(monkeypatch, s3_server, tmp_path)
    monkeypatch.setenv("SEAICE_CATALOG", str(small_sim_day.catalog))
    monkeypatch.setenv("SEAICE_LAKE", root)
    monkeypatch.setenv("SEAICE_LAKE_S3_ENDPOINT_URL", _endpoint(s3_server))
    monkeypatch.setenv("SEAICE_LAKE_OPTIONS", _options("lake"))
    assert inputs_from_env().storage_options == {}  # nothing of the lake's leaks into the catalog

    found = run_discover(day)
    assert found["inventory"] == f"{root}/inventory/date={day.isoformat()}"
    assert found["granules"]["ATL03"] == [str(small_sim_day.atl03[0])] and found["skipped"] == []
    lake = lake_from_env()
    out = run_job(resample.JOB, found["granules"]["ATL03"], lake, CHUNKED, day=day, inputs=inputs_from_env())
    assert out["failed"] == [] and out["skipped"] == [] and len(out["partitions"]) == 3
    assert _files(lake, SEGMENTS_2M.name) == reference["segments"]  # the same part files, byte for byte
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="lake/")["Contents"]}
    assert f"lake/inventory/date={day.isoformat()}/_manifest.json" in keys
    assert f"lake/resample_report/date={day.isoformat()}/_manifest.json" in keys
    assert not any(k.startswith(f"lake/{STAGING_DIR}/") for k in keys)  # nothing staged is left behind

    # the job script's own entry point: the inventory read back from the S3 lake, inputs local
    assert main(resample.JOB, ["--date", day.isoformat(), "--no-spark", "--config", CHUNKED.to_json()]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith(RESULT_MARKER))
    result = json.loads(line.removeprefix(RESULT_MARKER))
    assert result["failed"] == [] and result["skipped"] == [] and len(result["partitions"]) == 3
    assert _files(lake, SEGMENTS_2M.name) == reference["segments"]
