"""The storage contract every lake backend must meet, as test methods on a mixin class.

A test module subclasses :class:`StorageContract` as ``Test...`` and provides a ``lake`` fixture: the local
folder in ``tests/unit/test_storage.py``, the S3-protocol server in ``tests/integration/test_storage_s3.py``.
The class itself is not collected (its name does not start with ``Test``).
"""

from __future__ import annotations

import datetime as dt
import io
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from seaice_tasks.config import DiscoverConfig
from seaice_tasks.errors import SchemaError, StorageError
from seaice_tasks.schemas import field
from seaice_tasks.storage import MANIFEST_NAME, Lake, PartitionKey, geoparquet_table

DAY = dt.date(2019, 11, 4)
KEY = PartitionKey("segments_test", DAY, "20191104195311_05940510", "gt2r")
POINTS_SCHEMA = pa.schema(
    [
        field("x_atc_m", pa.float64(), "m", "along-track distance", nullable=False),
        field("h_m", pa.float32(), "m", "height"),
        field("geometry", pa.binary(), "", "WKB point, EPSG:4326"),
    ]
)


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
        assert not lake.fs.exists(lake.path(KEY.relpath, "old.bin"))
        assert lake.open_file(KEY, "part-0.parquet") == first_bytes
        assert man.files[0].sha256 == json.loads(first_manifest)["files"][1]["sha256"]
        # an identical re-run gives an identical manifest
        with lake.writer(KEY) as w:
            w.write_table("part-0.parquet", geoparquet_table(frame, POINTS_SCHEMA), POINTS_SCHEMA)
        assert lake.require(KEY).to_json() == man.to_json()

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
        with lake.fs.open(lake.path(KEY.relpath, "a.bin"), "wb") as fh:
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
