"""The store check on a real S3-protocol server (moto on 127.0.0.1): buckets, prefixes, probes."""

from __future__ import annotations

import boto3
import pytest

from seaice_tasks.errors import ConfigError
from seaice_tasks.store_access import open_lake


def _keys(endpoint: str, bucket: str) -> list[str]:
    listing = boto3.client("s3", endpoint_url=endpoint).list_objects_v2(Bucket=bucket)
    return sorted(o["Key"] for o in listing.get("Contents", []))


def test_a_writable_new_lake_is_probed_and_left_clean(s3_bucket: str, s3_server: dict[str, str]) -> None:
    lake = open_lake(f"s3://{s3_bucket}/lake", must_exist=False, writable=True)
    assert lake.protocol == "s3"
    assert _keys(s3_server["SEAICE_S3_ENDPOINT_URL"], s3_bucket) == []  # the probe object is gone


def test_a_missing_prefix_or_bucket_is_one_line(s3_bucket: str) -> None:
    with pytest.raises(ConfigError, match=rf"^--lake s3://{s3_bucket}/lake: no lake there"):
        open_lake(f"s3://{s3_bucket}/lake", must_exist=True)
    with pytest.raises(ConfigError, match=r"bucket 'seaice-no-such-bucket' does not exist$"):
        open_lake("s3://seaice-no-such-bucket/lake", must_exist=False, writable=True)


def test_an_existing_lake_passes_the_check(s3_bucket: str, s3_server: dict[str, str]) -> None:
    boto3.client("s3", endpoint_url=s3_server["SEAICE_S3_ENDPOINT_URL"]).put_object(
        Bucket=s3_bucket, Key="lake/inventory/date=2019-11-04/_manifest.json", Body=b"{}")
    lake = open_lake(f"s3://{s3_bucket}/lake", must_exist=True, writable=True)
    assert lake.fs.exists(lake.path("inventory"))
