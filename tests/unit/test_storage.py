"""The storage contract on a local folder, and the pure parts of the storage API.

The same contract on a real S3-protocol server (moto on 127.0.0.1) is ``tests/integration/test_storage_s3.py``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path

import pytest

from seaice_tasks.cli import main
from seaice_tasks.errors import StorageError
from seaice_tasks.storage import (
    GC_MIN_AGE_S,
    STAGING_DIR,
    Lake,
    PartitionKey,
    is_safe_file_name,
    lake_from_env,
    storage_options_from_env,
)
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


def _age(path: Path, seconds: float) -> None:
    """Set the modification time of ``path`` and everything below it ``seconds`` into the past."""
    when = time.time() - seconds
    for p in [path, *path.rglob("*")]:
        os.utime(p, (when, when))


def test_gc_age_is_the_newest_change_inside_a_token(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    for token in ("dead1", "busy1", "young1"):
        lake.writer(KEY, token=token).write_bytes("a.bin", token.encode())
    staging = tmp_path / "lake" / STAGING_DIR
    _age(staging / "dead1", GC_MIN_AGE_S + 60)
    _age(staging / "busy1", GC_MIN_AGE_S + 60)
    lake.writer(PartitionKey("other", DAY), token="busy1").write_bytes("b.bin", b"still staging")  # a live run
    assert lake.gc_staging() == [lake.url(STAGING_DIR, "dead1")]
    assert sorted(p.name for p in staging.iterdir()) == ["busy1", "young1"]
    (staging / "empty1").mkdir()
    _age(staging / "empty1", GC_MIN_AGE_S + 60)
    assert lake.gc_staging() == [lake.url(STAGING_DIR, "empty1")]
    assert lake.gc_staging(0) == sorted(lake.url(STAGING_DIR, t) for t in ("busy1", "young1"))
    assert not staging.exists()  # the last run's staging went: no empty _staging is left behind


def test_a_version_folder_retired_during_its_makedirs_is_filled_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two committers alternating: one retires a version folder while the other is creating it.

    ``os.makedirs(exist_ok=True)`` then raises FileExistsError (mkdir found it, isdir no longer
    does); the commit must try again, not fail.
    """
    lake = Lake(tmp_path / "lake")
    real = os.makedirs
    raced: list[str] = []

    def racing(name: str, mode: int = 0o777, exist_ok: bool = False) -> None:
        if "_v-" in os.path.basename(str(name)) and not raced:
            raced.append(str(name))
            raise FileExistsError(17, "File exists", str(name))
        real(name, mode, exist_ok)

    monkeypatch.setattr(os, "makedirs", racing)
    with lake.writer(KEY) as w:
        w.write_bytes("a.bin", b"after the race")
    assert raced and lake.open_file(KEY, "a.bin", verify=True) == b"after the race"


def test_gc_removes_old_temporary_files_and_orphans_only(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    with lake.writer(KEY) as w:
        w.write_bytes("a.bin", b"committed")
    folder = tmp_path / "lake" / KEY.relpath
    version = lake.require(KEY).version
    assert version is not None
    stale_tmp = folder / ".tmp-0123-_manifest.json"  # a commit killed between temp file and os.replace
    stale_tmp.write_bytes(b"{")
    young_orphan = folder / "_v-00000000000000aa"
    young_orphan.mkdir()
    (young_orphan / "a.bin").write_bytes(b"a commit filling this right now")
    _age(folder / version, GC_MIN_AGE_S + 60)
    _age(stale_tmp, GC_MIN_AGE_S + 60)
    assert lake.gc_staging() == [f"file://{stale_tmp}"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(["_manifest.json", version, young_orphan.name])
    assert lake.open_file(KEY, "a.bin", verify=True) == b"committed"


def test_cli_gc(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "lake"
    lake = Lake(root)
    lake.writer(KEY, token="dead1").write_bytes("a.bin", b"x")
    assert main(["gc", "--lake", str(root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"lake": lake.url(), "min_age_hours": 6.0, "removed": []}
    assert main(["gc", "--lake", str(root), "--min-age-hours", "0"]) == 0
    out = capsys.readouterr().out
    assert f"removed {lake.url(STAGING_DIR, 'dead1')}" in out and "1 leftover(s)" in out
    assert not (root / STAGING_DIR).exists()
    assert main(["gc", "--lake", str(root), "--min-age-hours", "-1"]) == 2


def test_writers_and_readers_agree_on_safe_names() -> None:
    assert is_safe_file_name("part-00000.parquet") and is_safe_file_name("tiles/r0/c1.tif")
    for bad in ("../x", "/x", "a\\b", "", "a//b", "_manifest.json", "_v-0123456789abcdef/x", ".tmp-x", "a/.b",
                "a/_b", "a/./b", "a/"):
        assert not is_safe_file_name(bad), bad


def test_staging_writes_never_change_committed_bytes(tmp_path: Path) -> None:
    """Committed files are hard links of staged ones: staging a name again must replace it, never write into it."""
    lake = Lake(tmp_path / "lake")
    with lake.writer(KEY, token="run1") as w:
        w.write_bytes("a.bin", b"committed bytes")
    staged = Path(lake.path(STAGING_DIR, "run1", KEY.relpath, "a.bin"))
    staged.parent.mkdir(parents=True)
    os.link(lake.committed_file_path(KEY, "a.bin"), staged)  # a commit killed before it removed its staging
    lake.writer(KEY, token="run1").write_bytes("a.bin", b"staged again, other bytes")
    lake.writer(KEY, token="run1").write_local_file("a.bin", staged)
    assert lake.open_file(KEY, "a.bin", verify=True) == b"committed bytes"
