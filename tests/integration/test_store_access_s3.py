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


def test_read_api_on_s3_gives_one_committed_version_while_a_partition_is_committed(s3_bucket: str) -> None:
    """seaice_tasks.read on the loopback S3 server: the committed rows, each partition from one version, while a
    committer replaces one partition in a loop (row count and checksum of every read)."""
    import functools
    import hashlib

    import numpy as np

    from seaice_tasks.outputs import TableOutput, write_partition
    from seaice_tasks.products import CLASSES_FILE, SEGMENTS_CLASSIFIED
    from seaice_tasks.reading import read
    from tests.unit.test_reading import read_while_committing
    from tests.unit.test_track_chunks import DAY, GRANULE, classified_table, track

    url = f"s3://{s3_bucket}/lake"
    lake = open_lake(url, must_exist=False, writable=True)
    tables = {n: classified_table(track(n, seed=n), "gt1r") for n in (300, 200)}
    digests = {n: hashlib.sha256(t.column("x_atc_m").to_numpy().tobytes()).hexdigest() for n, t in tables.items()}
    key = SEGMENTS_CLASSIFIED.key(date=DAY, granule=GRANULE, beam="gt1r")

    def commit(n: int) -> None:
        write_partition(lake, key, [TableOutput(key, CLASSES_FILE, tables[n])], None)

    commit(300)

    def read_once() -> None:
        frame = read(url, "segments_classified", DAY)
        x = np.ascontiguousarray(frame["x_atc_m"].to_numpy())
        assert len(frame) in digests and hashlib.sha256(x.tobytes()).hexdigest() == digests[len(frame)]
        assert frame.geometry.notna().all() and frame.crs.to_epsg() == 4326

    commits = [functools.partial(commit, 200 if i % 2 == 0 else 300) for i in range(6)]
    assert read_while_committing(commits, read_once, min_reads=2) >= 1
