"""The storage contract on a local folder, and the pure parts of the storage API.

The same contract on a real S3-protocol server (moto on 127.0.0.1) is ``tests/integration/test_storage_s3.py``.
"""

from __future__ import annotations

import datetime as dt

import pytest

from seaice_tasks.errors import StorageError
from seaice_tasks.storage import Lake, PartitionKey, lake_from_env, storage_options_from_env
from tests.storage_contract import DAY, KEY, StorageContract


class TestFileLake(StorageContract):
    @pytest.fixture
    def lake(self, tmp_path) -> Lake:  # type: ignore[no-untyped-def]
        return Lake(tmp_path / "lake")


def test_partition_path_is_pure_function_of_key() -> None:
    assert KEY.relpath == "segments_test/date=2019-11-04/granule=20191104195311_05940510/beam=gt2r"
    assert PartitionKey.from_relpath(KEY.relpath) == KEY
    assert PartitionKey("inventory", DAY).relpath == "inventory/date=2019-11-04"
    with pytest.raises(StorageError, match="safe path"):
        PartitionKey("x", DAY, "../etc")
    with pytest.raises(StorageError, match=r"datetime\.date"):
        PartitionKey("x", dt.datetime(2019, 11, 4))  # type: ignore[arg-type]


def test_storage_options_from_env() -> None:
    env = {"SEAICE_LAKE_OPTIONS": '{"anon": false}', "SEAICE_S3_ENDPOINT_URL": "http://127.0.0.1:9000"}
    opts = storage_options_from_env("s3://b/p", env)
    assert opts == {"anon": False, "client_kwargs": {"endpoint_url": "http://127.0.0.1:9000"}}
    assert storage_options_from_env("/tmp/lake", env) == {"anon": False}
    with pytest.raises(StorageError, match="JSON"):
        storage_options_from_env("s3://b/p", {"SEAICE_LAKE_OPTIONS": "{nope"})
    assert lake_from_env(env={}).root == "./var/lake"
