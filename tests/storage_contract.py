"""The storage contract every lake backend must meet, as test methods on a mixin class.

A test module subclasses :class:`StorageContract` as ``Test...`` and provides a ``lake`` fixture: the local
folder in ``tests/unit/test_storage.py``, the S3-protocol server in ``tests/integration/test_storage_s3.py``.
The class itself is not collected (its name does not start with ``Test``).
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import io
import json
import re
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from seaice_tasks.config import DiscoverConfig
from seaice_tasks.errors import SchemaError, StorageError
from seaice_tasks.schemas import field
from seaice_tasks.storage import (
    GC_MIN_AGE_S,
    MANIFEST_NAME,
    STAGING_DIR,
    FileEntry,
    Lake,
    Manifest,
    PartitionKey,
    geoparquet_table,
)

DAY = dt.date(2019, 11, 4)
KEY = PartitionKey("segments_test", DAY, "20191104195311_05940510", "gt2r")
POINTS_SCHEMA = pa.schema(
    [
        field("x_atc_m", pa.float64(), "m", "along-track distance", nullable=False),
        field("h_m", pa.float32(), "m", "height"),
        field("geometry", pa.binary(), "", "WKB point, EPSG:4326"),
    ]
)


def _below(lake: Lake, key: PartitionKey) -> set[str]:
    """Every file below a partition's folder, relative to it (fresh listing)."""
    folder = lake.path(key.relpath)
    lake.fs.invalidate_cache(folder)
    return {p[len(folder) + 1:] for p in lake.fs.find(folder)}


def _commit(lake: Lake, key: PartitionKey, files: dict[str, bytes]) -> Manifest:
    with lake.writer(key) as w:
        for name, data in files.items():
            w.write_bytes(name, data)
    return lake.require(key)


def _frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x_atc_m": np.arange(n) * 2.0 + 28_489_900.0,
            "h_m": rng.normal(0.3, 0.1, n).astype(np.float32),
            "lon_deg": np.linspace(-170.5, -170.0, n),
            "lat_deg": np.linspace(-75.0, -74.9, n),
        }
    )


class StorageContract:
    """The contract checks; a subclass supplies the ``lake`` fixture (a fresh, empty :class:`Lake`)."""

    def test_geoparquet_roundtrip_with_metadata(self, lake: Lake) -> None:
        import geopandas

        frame = _frame(50)
        cfg = DiscoverConfig(catalog="somewhere")
        with lake.writer(KEY, cfg) as w:
            w.write_table("part-0.parquet", geoparquet_table(frame, POINTS_SCHEMA), POINTS_SCHEMA)
        man = lake.require(KEY)
        assert man.rows == 50 and [f.name for f in man.files] == ["part-0.parquet"]
        assert man.config == cfg.to_dict() and man.code_version
        table = lake.read_table(KEY, verify=True)
        assert table.column("x_atc_m").to_pylist() == frame["x_atc_m"].tolist()
        meta = json.loads(table.schema.metadata[b"seaice"])
        assert meta["config"]["catalog"] == "somewhere" and meta["partition"]["beam"] == "gt2r"
        assert table.schema.field("h_m").metadata[b"unit"] == b"m"
        gdf = lake.read_geodataframe(KEY)
        assert isinstance(gdf, geopandas.GeoDataFrame)
        assert gdf.crs.to_epsg() == 4326
        np.testing.assert_allclose(gdf.geometry.x, frame["lon_deg"])
        np.testing.assert_allclose(gdf.geometry.y, frame["lat_deg"])

    def test_uncommitted_partition_is_invisible(self, lake: Lake) -> None:
        writer = lake.writer(KEY)
        writer.write_bytes("a.bin", b"x" * 10)
        assert lake.manifest(KEY) is None
        assert KEY not in lake.partitions("segments_test")
        with pytest.raises(StorageError, match="not committed"):
            lake.read_table(KEY)
        writer.abort()
        assert lake.manifest(KEY) is None

    def test_failed_rerun_keeps_previous_partition(self, lake: Lake) -> None:
        with lake.writer(KEY) as w:
            w.write_bytes("a.bin", b"first")
        with pytest.raises(RuntimeError), lake.writer(KEY) as w:
            w.write_bytes("a.bin", b"second, never committed")
            raise RuntimeError("task failed half-way")
        assert lake.open_file(KEY, "a.bin", verify=True) == b"first"

    def test_rerun_replaces_partition_and_is_byte_identical(self, lake: Lake) -> None:
        frame = _frame(20)
        with lake.writer(KEY) as w:
            w.write_bytes("old.bin", b"stale")
            w.write_table("part-0.parquet", geoparquet_table(frame, POINTS_SCHEMA), POINTS_SCHEMA)
        first_manifest = lake.require(KEY).to_json()
        first_bytes = lake.open_file(KEY, "part-0.parquet")
        with lake.writer(KEY) as w:
            w.write_table("part-0.parquet", geoparquet_table(frame, POINTS_SCHEMA), POINTS_SCHEMA)
        man = lake.require(KEY)
        assert [f.name for f in man.files] == ["part-0.parquet"]
        assert _below(lake, KEY) == {MANIFEST_NAME, f"{man.version}/part-0.parquet"}  # old.bin went with its version
        assert lake.open_file(KEY, "part-0.parquet") == first_bytes
        assert man.files[0].sha256 == json.loads(first_manifest)["files"][1]["sha256"]
        # an identical re-run leaves the manifest, the version folder and every file byte-identical
        manifest_path = lake.path(KEY.relpath, MANIFEST_NAME)
        before = {rel: lake.fs.cat_file(lake.path(KEY.relpath, rel)) for rel in _below(lake, KEY)}
        with lake.writer(KEY) as w:
            w.write_table("part-0.parquet", geoparquet_table(frame, POINTS_SCHEMA), POINTS_SCHEMA)
        assert lake.require(KEY).to_json() == man.to_json()
        assert {rel: lake.fs.cat_file(lake.path(KEY.relpath, rel)) for rel in _below(lake, KEY)} == before
        assert lake.fs.cat_file(manifest_path) == man.to_json().encode()

    def test_partitions_lists_only_committed(self, lake: Lake) -> None:
        other = PartitionKey("segments_test", DAY, "20191104195311_05940510", "gt1r")
        later = PartitionKey("segments_test", dt.date(2019, 11, 5), "20191105000000_06000510", "gt1r")
        for key in (KEY, other, later):
            with lake.writer(key) as w:
                w.write_bytes("a.bin", key.relpath.encode())
        staged = lake.writer(PartitionKey("segments_test", DAY, "20191104000000_05930510", "gt3r"))
        staged.write_bytes("a.bin", b"pending")
        assert lake.partitions("segments_test") == sorted([KEY, other, later])
        assert lake.partitions("segments_test", DAY) == sorted([KEY, other])
        staged.abort()

    def test_checksum_detects_tampering(self, lake: Lake) -> None:
        with lake.writer(KEY) as w:
            w.write_bytes("a.bin", b"original")
        with lake.fs.open(lake.committed_file_path(KEY, "a.bin"), "wb") as fh:
            fh.write(b"tampered")
        assert lake.open_file(KEY, "a.bin") == b"tampered"
        with pytest.raises(StorageError, match="sha256"):
            lake.open_file(KEY, "a.bin", verify=True)

    def test_cog_writer(self, lake: Lake) -> None:
        import rasterio
        from rasterio.transform import from_origin

        labels = (np.arange(600 * 700) % 3).astype(np.uint8).reshape(600, 700)
        transform = from_origin(440_000.0, 4_175_000.0, 10.0, 10.0)
        key = PartitionKey("s2_test", DAY, "20191104T194521_T02CNA")
        with lake.writer(key) as w:
            w.write_cog("labels.tif", labels, crs="EPSG:32702", transform=transform, nodata=255,
                        colormap={0: (255, 0, 0), 1: (0, 0, 255), 2: (0, 255, 0)})
        data = lake.open_file(key, "labels.tif", verify=True)
        with rasterio.MemoryFile(io.BytesIO(data)) as mem, mem.open() as ds:
            assert ds.crs.to_epsg() == 32702 and ds.transform == transform
            assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
            assert ds.profile["tiled"] and ds.nodata == 255
            assert ds.colormap(1)[1][:3] == (0, 0, 255)
            np.testing.assert_array_equal(ds.read(1), labels)

    def test_schema_is_enforced_on_write(self, lake: Lake) -> None:
        bad = pa.table({"x_atc_m": [1.0], "h_m": [0.1]})  # no geometry column
        with pytest.raises(SchemaError, match="missing"), lake.writer(KEY) as w:
            w.write_table("p.parquet", bad, POINTS_SCHEMA)
        assert lake.manifest(KEY) is None
        nulls = pa.table({"x_atc_m": pa.array([None], pa.float64()), "h_m": [0.1], "geometry": [b""]})
        with pytest.raises(SchemaError, match="nulls"), lake.writer(KEY) as w:
            w.write_table("p.parquet", nulls, POINTS_SCHEMA)

    def test_manifest_and_file_names_are_protected(self, lake: Lake) -> None:
        with lake.writer(KEY) as w:
            for bad in (MANIFEST_NAME, "../x", ".hidden"):
                with pytest.raises(StorageError, match="invalid file name"):
                    w.write_bytes(bad, b"")
            w.write_bytes("ok.bin", b"")

    def test_distributed_staging_and_driver_commit(self, lake: Lake) -> None:
        """Workers stage parts under a shared token; the driver adopts them and commits."""
        frame = _frame(30)
        token = "run0001"
        entries = []
        for part in range(3):  # three "executors"
            worker = lake.writer(KEY, token=token)
            entries.append(worker.write_table(f"part-{part:05d}.parquet",
                                              geoparquet_table(frame.iloc[part * 10:(part + 1) * 10], POINTS_SCHEMA),
                                              POINTS_SCHEMA))
        assert lake.manifest(KEY) is None  # nothing visible before the driver commits
        with lake.writer(KEY, token=token) as driver:
            for entry in entries:
                driver.adopt(entry)
        man = lake.require(KEY)
        assert man.rows == 30 and len(man.files) == 3
        assert lake.read_table(KEY, verify=True).column("x_atc_m").to_pylist() == frame["x_atc_m"].tolist()
        with pytest.raises(StorageError, match="staged file missing"), lake.writer(KEY, token="other") as driver:
            driver.adopt(entries[0])
        with pytest.raises(StorageError, match="safe path"):
            lake.writer(KEY, token="../x")

    # -- atomic replace: version folders ----------------------------------------------------------
    def test_commit_puts_files_in_a_content_named_version_folder(self, lake: Lake) -> None:
        man = _commit(lake, KEY, {"a.bin": b"alpha", "sub/b.bin": b"beta"})
        assert man.version is not None and re.fullmatch(r"_v-[0-9a-f]{16}", man.version)
        doc = json.loads(lake.fs.cat_file(lake.path(KEY.relpath, MANIFEST_NAME)))
        assert doc["manifest_version"] == 2 and doc["version"] == man.version and doc["parent"] is None
        assert _below(lake, KEY) == {MANIFEST_NAME, f"{man.version}/a.bin", f"{man.version}/sub/b.bin"}
        assert lake.committed_file_path(KEY, "sub/b.bin") == lake.path(KEY.relpath, man.version, "sub/b.bin")
        assert lake.committed_file_url(KEY, "a.bin") == lake.url(KEY.relpath, man.version, "a.bin")
        assert lake.fs.cat_file(lake.committed_file_path(KEY, "a.bin")) == b"alpha"  # the bytes as written
        with pytest.raises(StorageError, match=r"no file 'c\.bin'"):
            lake.committed_file_path(KEY, "c.bin")
        # the name comes from the content: the same files give the same version in another partition
        other = PartitionKey("segments_test", DAY, "20191104195311_05940510", "gt1r")
        assert _commit(lake, other, {"sub/b.bin": b"beta", "a.bin": b"alpha"}).version == man.version
        assert lake.partitions("segments_test") == sorted([KEY, other])  # version folders are no partitions

    def test_replace_removes_the_version_it_replaced(self, lake: Lake) -> None:
        first = _commit(lake, KEY, {"a.bin": b"A" * 100, "only-in-a.bin": b"a"})
        second = _commit(lake, KEY, {"a.bin": b"B" * 50, "only-in-b.bin": b"b"})
        assert second.version != first.version and second.parent == first.version
        assert _below(lake, KEY) == {MANIFEST_NAME, f"{second.version}/a.bin", f"{second.version}/only-in-b.bin"}
        assert lake.read_partition(KEY, verify=True)[1] == {"a.bin": b"B" * 50, "only-in-b.bin": b"b"}
        # the same files again are a new version (a new name: no commit can publish a folder being removed)
        third = _commit(lake, KEY, {"a.bin": b"A" * 100, "only-in-a.bin": b"a"})
        assert third.version not in (first.version, second.version) and third.parent == second.version
        assert _below(lake, KEY) == {MANIFEST_NAME, f"{third.version}/a.bin", f"{third.version}/only-in-a.bin"}

    def test_same_files_new_info_keeps_the_version_folder(self, lake: Lake) -> None:
        first = _commit(lake, KEY, {"a.bin": b"alpha"})
        with lake.writer(KEY) as w:
            w.write_bytes("a.bin", b"alpha")
            w.info = {"note": "re-run with other facts"}
        man = lake.require(KEY)
        assert man.version == first.version and man.info == {"note": "re-run with other facts"}
        assert _below(lake, KEY) == {MANIFEST_NAME, f"{first.version}/a.bin"}

    def test_reader_retries_once_after_losing_a_race(self, lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
        """Read the manifest, a commit supersedes (and removes) its version, then the files are opened."""
        _commit(lake, KEY, {"a.bin": b"first a", "b.bin": b"first b"})
        real_require = lake.require
        lost: list[Manifest] = []

        def require_then_supersede(key: PartitionKey) -> Manifest:
            man = real_require(key)
            if not lost:
                lost.append(man)
                _commit(lake, KEY, {"a.bin": b"second a", "b.bin": b"second b"})
            return man

        monkeypatch.setattr(lake, "require", require_then_supersede)
        assert lake.open_file(KEY, "a.bin", verify=True) == b"second a"
        assert lost[0].version is not None and not lake.fs.exists(lake.path(KEY.relpath, lost[0].version))
        lost.clear()
        man, files = lake.read_partition(KEY, verify=True)  # all files from one version, never mixed
        assert files == {"a.bin": b"second a", "b.bin": b"second b"} and man == real_require(KEY)
        # tables: every part from the one version the manifest read on retry names
        monkeypatch.undo()
        table_key = PartitionKey("segments_test", DAY, "20191104195311_05940510", "gt1r")
        frames = [_frame(10, seed) for seed in range(4)]

        def commit_parts(first: int) -> None:
            with lake.writer(table_key) as w:
                for part in range(2):
                    w.write_table(f"part-{part}.parquet", geoparquet_table(frames[first + part], POINTS_SCHEMA),
                                  POINTS_SCHEMA)

        commit_parts(0)
        real_require = lake.require
        lost.clear()

        def require_then_supersede_parts(key: PartitionKey) -> Manifest:
            man = real_require(key)
            if not lost:
                lost.append(man)
                commit_parts(2)
            return man

        monkeypatch.setattr(lake, "require", require_then_supersede_parts)
        table = lake.read_table(table_key, verify=True)
        expected = pd.concat(frames[2:4])["h_m"].tolist()
        assert table.column("h_m").to_pylist() == pytest.approx(expected)

    def test_commit_starts_again_when_a_concurrent_commit_replaced_the_manifest(
        self, lake: Lake, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The manifest write is conditional: a commit that lands in between makes it read again."""
        first = _commit(lake, KEY, {"a.bin": b"A"})
        manifest_path = lake.path(KEY.relpath, MANIFEST_NAME)
        assert not lake._cas_write(manifest_path, None, b"{}")  # exists already
        assert not lake._cas_write(manifest_path, "not-its-token", b"{}")
        assert lake.require(KEY) == first
        real = Lake._cas_write
        between: list[Manifest] = []
        calls: list[str | None] = []

        def cas_after_a_concurrent_commit(self: Lake, path: str, token: str | None, data: bytes) -> bool:
            calls.append(token)
            if len(calls) == 1:  # this commit read the manifest; another one lands before it writes
                between.append(_commit(lake, KEY, {"a.bin": b"B", "b.bin": b"B"}))
            return real(self, path, token, data)

        monkeypatch.setattr(Lake, "_cas_write", cas_after_a_concurrent_commit)
        third = _commit(lake, KEY, {"a.bin": b"C"})
        assert len(calls) == 3 and calls[0] == calls[1]  # the first write was refused: its base had changed
        assert between[0].parent == first.version and third.parent == between[0].version  # read again, on B
        assert lake.read_partition(KEY, verify=True)[1] == {"a.bin": b"C"}
        # A's and B's versions are gone; the folder the refused attempt filled is left to gc: another
        # commit of the same files on the same parent could be publishing that very name
        orphans = {rel.split("/")[0] for rel in _below(lake, KEY)} - {MANIFEST_NAME, third.version}
        assert len(orphans) == 1 and _below(lake, KEY) == {MANIFEST_NAME, f"{third.version}/a.bin",
                                                          f"{orphans.pop()}/a.bin"}
        monkeypatch.undo()
        lake.gc_staging(now=time.time() + GC_MIN_AGE_S + 60)
        assert _below(lake, KEY) == {MANIFEST_NAME, f"{third.version}/a.bin"}

    def test_failure_halfway_through_commit_keeps_previous_version(
        self, lake: Lake, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A permission error on the second file a commit puts in place (root ignores chmod: injected)."""
        old = {f"f{i}.bin": f"old {i}".encode() for i in range(3)}
        before = _commit(lake, KEY, old)
        calls: list[Any] = []

        def failing(real: Callable[..., Any]) -> Callable[..., Any]:
            def fn(*args: Any, **kwargs: Any) -> Any:
                calls.append(args)
                if len(calls) == 2:
                    raise PermissionError(errno.EACCES, "injected: permission denied", str(args[-1]))
                return real(*args, **kwargs)
            return fn

        for attr in ("mv", "copy", "cp_file", "link", "put_file"):  # whatever moves staged files into place
            if hasattr(lake.fs, attr):
                monkeypatch.setattr(lake.fs, attr, failing(getattr(lake.fs, attr)))
        with pytest.raises(PermissionError, match="injected"), lake.writer(KEY) as w:
            for i in range(3):
                w.write_bytes(f"f{i}.bin", f"new {i}".encode())
        monkeypatch.undo()
        assert len(calls) == 2
        assert lake.require(KEY) == before
        assert lake.read_partition(KEY, verify=True)[1] == old
        assert not lake.fs.exists(lake.path(STAGING_DIR, w.token))  # the failed writer discarded its staging
        new = {f"f{i}.bin": f"new {i}".encode() for i in range(3)}
        after = _commit(lake, KEY, new)  # the next commit reuses the half-filled folder of the same name
        assert lake.read_partition(KEY, verify=True)[1] == new
        assert _below(lake, KEY) == {MANIFEST_NAME, *(f"{after.version}/{n}" for n in new)}

    def test_format_1_partition_is_read_and_replaced(self, lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
        data = b"written before version folders"
        entry = FileEntry("a.bin", len(data), hashlib.sha256(data).hexdigest())
        legacy = Manifest(KEY, (entry,), {}, "0" * 16, "0.1.0")
        lake.fs.makedirs(lake.path(KEY.relpath), exist_ok=True)
        lake.fs.pipe_file(lake.path(KEY.relpath, "a.bin"), data)
        lake.fs.pipe_file(lake.path(KEY.relpath, MANIFEST_NAME), legacy.to_json().encode())
        assert json.loads(legacy.to_json())["manifest_version"] == 1 and "version" not in json.loads(legacy.to_json())
        assert lake.require(KEY) == legacy and lake.open_file(KEY, "a.bin", verify=True) == data
        assert lake.committed_file_path(KEY, "a.bin") == lake.path(KEY.relpath, "a.bin")
        # a reader of the format-1 manifest that loses the race with the commit replacing it reads the new one
        real_require = lake.require
        read: list[Manifest] = []

        def require_then_replace(key: PartitionKey) -> Manifest:
            man = real_require(key)
            read.append(man)
            if len(read) == 1:
                _commit(lake, KEY, {"a.bin": b"new"})
            return man

        monkeypatch.setattr(lake, "require", require_then_replace)
        assert lake.open_file(KEY, "a.bin", verify=True) == b"new"
        assert read[0] == legacy and read[-1].version is not None
        assert _below(lake, KEY) == {MANIFEST_NAME, f"{read[-1].version}/a.bin"}  # the old file went

    # -- manifests naming files outside their partition ------------------------------------------
    @pytest.mark.parametrize("bad", ["../evil", "/etc/passwd", "a/../../evil", "a\\b", "", "a//b", MANIFEST_NAME,
                                     "_v-0123456789abcdef/x", ".hidden", "sub/_x", "./a"])
    def test_manifest_naming_a_file_outside_its_partition_is_refused(self, lake: Lake, bad: str) -> None:
        man = _commit(lake, KEY, {"a.bin": b"ok"})
        doc = json.loads(man.to_json())
        doc["files"][0]["name"] = bad
        lake.fs.pipe_file(lake.path(KEY.relpath, MANIFEST_NAME), json.dumps(doc).encode())
        pattern = rf"{re.escape(KEY.relpath)}.*outside its partition: {re.escape(repr(bad))}"
        with pytest.raises(StorageError, match=pattern):
            lake.manifest(KEY)
        with pytest.raises(StorageError, match=pattern):
            lake.open_file(KEY, bad)
        with pytest.raises(StorageError, match="invalid file name"), lake.writer(KEY) as w:
            w.write_bytes(bad, b"")

    def test_manifest_naming_a_bad_version_folder_is_refused(self, lake: Lake) -> None:
        doc = json.loads(_commit(lake, KEY, {"a.bin": b"ok"}).to_json())
        for field_name, bad in (("version", "../../elsewhere"), ("version", None), ("parent", "/x"),
                                ("manifest_version", 3)):
            lake.fs.pipe_file(lake.path(KEY.relpath, MANIFEST_NAME), json.dumps({**doc, field_name: bad}).encode())
            with pytest.raises(StorageError, match=re.escape(KEY.relpath)):
                lake.manifest(KEY)

    # -- leftovers --------------------------------------------------------------------------------
    def test_gc_removes_dead_leftovers_and_keeps_live_and_committed(self, lake: Lake) -> None:
        _commit(lake, KEY, {"a.bin": b"committed"})
        dead = lake.writer(KEY, token="deadrun1")
        dead.write_bytes("a.bin", b"staged by a run that died")
        orphan = lake.path(KEY.relpath, "_v-0123456789abcdef")  # what a commit killed before its manifest leaves
        lake.fs.makedirs(orphan, exist_ok=True)
        lake.fs.pipe_file(f"{orphan}/a.bin", b"never published")
        elsewhere = PartitionKey("segments_test", DAY, "20191104000000_05930510", "gt3r")  # never committed
        lake.fs.makedirs(lake.path(elsewhere.relpath, "_v-fedcba9876543210"), exist_ok=True)
        lake.fs.pipe_file(lake.path(elsewhere.relpath, "_v-fedcba9876543210", "x.bin"), b"never published")
        assert lake.gc_staging() == []  # everything is young: a live run could own it
        later = time.time() + GC_MIN_AGE_S + 60
        assert lake.gc_staging(now=later) == sorted([
            lake.url(STAGING_DIR, "deadrun1"),
            lake.url(KEY.relpath, "_v-0123456789abcdef"),
            lake.url(elsewhere.relpath, "_v-fedcba9876543210"),
        ])
        assert lake.open_file(KEY, "a.bin", verify=True) == b"committed"  # the manifest's version stays, however old
        assert _below(lake, KEY) == {MANIFEST_NAME, f"{lake.require(KEY).version}/a.bin"}
        assert lake.gc_staging(now=later) == []
        assert lake.gc_staging(0, versions=False) == []
        with pytest.raises(StorageError, match="min_age_s"):
            lake.gc_staging(-1)

    def test_distributed_staging_survives_gc_while_young(self, lake: Lake) -> None:
        token = "liverun1"
        worker = lake.writer(KEY, token=token)
        entry = worker.write_bytes("a.bin", b"staged by a live worker")
        assert lake.gc_staging() == []
        with lake.writer(KEY, token=token) as driver:
            driver.adopt(entry)
        assert lake.open_file(KEY, "a.bin", verify=True) == b"staged by a live worker"
