"""The publish stage: the daily summary and the STAC catalog, validated with pystac's validator."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import posixpath
import queue
import shutil
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
import pystac
import pytest
from pystac.validation import JsonSchemaSTACValidator, validate_dict

from seaice_tasks.errors import StorageError
from seaice_tasks.products import DAILY_SUMMARY, S2_LABELS, SEGMENTS_2M, SUMMARY_FILE
from seaice_tasks.publish import CATALOG_FILE, STAC_DIR, TIMINGS_DIR, item_id, publish_day
from seaice_tasks.spark_jobs.runner import load_job, run_job
from seaice_tasks.storage import Lake, Manifest, PartitionKey

DAY = dt.date(2019, 11, 4)
#: The four extension schemas the items use, recorded from the stac-extensions repositories
#: (Apache-2.0): no network here, and pystac carries only the core schemas.
SCHEMAS = Path(__file__).resolve().parents[1] / "data" / "stac_schemas"


@pytest.fixture(scope="module")
def validator() -> JsonSchemaSTACValidator:
    """pystac's JSON-schema validator with the recorded extension schemas in its cache."""
    v = JsonSchemaSTACValidator()
    for path in sorted(SCHEMAS.glob("*.json")):
        doc = json.loads(path.read_text())
        v.schema_cache[doc["$id"].rstrip("#")] = doc
    return v


@pytest.fixture(scope="module")
def day_lake(small_sim_day, tmp_path_factory: pytest.TempPathFactory) -> Lake:  # type: ignore[no-untyped-def]
    """A lake with the small day's 2 m tracks (two beams) and Sentinel-2 labels."""
    lake = Lake(tmp_path_factory.mktemp("publish") / "lake")
    from seaice_tasks.is2.resample import ResampleConfig

    run_job(load_job("resample"), [str(small_sim_day.atl03[0])], lake, ResampleConfig(beams=("gt1r", "gt2r")),
            day=DAY.isoformat())
    run_job(load_job("s2_labels"), [str(small_sim_day.scenes[0])], lake, day=DAY.isoformat())
    return lake


def _stac_files(lake: Lake) -> dict[str, bytes]:
    return {p: lake.read_document(p) or b"" for p in [CATALOG_FILE, *lake.list_documents(STAC_DIR)]}


def test_every_document_validates_and_the_catalog_walks_to_every_partition(
        day_lake: Lake, validator: JsonSchemaSTACValidator) -> None:
    result = publish_day(DAY, lake=day_lake)
    assert result["items"]["segments_2m"] == 2 and result["items"]["s2_labels"] == 1
    assert result["items"]["daily_summary"] == 1 and result["items"]["freeboard"] == 0
    files = _stac_files(day_lake)
    for path, data in files.items():
        doc = json.loads(data)
        schemas = validate_dict(doc, validator=validator)
        assert schemas, path
        if doc["type"] == "Feature":
            assert set(doc["stac_extensions"]) <= {s for s in schemas}, path
    # pystac reads the tree back from the root and finds one item per partition
    catalog = pystac.Catalog.from_file(day_lake.path(CATALOG_FILE))
    found = {item.id: item for item in catalog.get_items(recursive=True)}
    expected = {item_id(k) for p in (SEGMENTS_2M, S2_LABELS, DAILY_SUMMARY) for k in day_lake.partitions(p.name)}
    assert set(found) == expected
    track = found[item_id(day_lake.partitions(SEGMENTS_2M.name)[0])]
    # the footprint is the GeoParquet bbox: inside the simulated Antarctic day, not the world
    assert track.bbox is not None and track.bbox[3] < -55 and track.bbox[2] - track.bbox[0] < 10
    part = next(iter(track.assets.values()))
    data_file = Path(part.get_absolute_href() or "")
    assert data_file.is_file() and data_file.stat().st_size == part.extra_fields["file:size"]
    assert part.extra_fields["table:row_count"] == day_lake.require(day_lake.partitions(SEGMENTS_2M.name)[0]).rows
    scene = found[item_id(day_lake.partitions(S2_LABELS.name)[0])]
    labels = scene.assets["labels"].extra_fields
    assert labels["proj:code"].startswith("EPSG:") and len(labels["proj:shape"]) == 2
    assert scene.assets["quicklook"].roles == ["overview"]


def test_republish_is_byte_identical_and_a_removed_partition_loses_its_item(day_lake: Lake, tmp_path: Path) -> None:
    day_lake = _copy(day_lake, tmp_path)  # the fixture stays whole for the other tests
    publish_day(DAY, lake=day_lake)
    first = _stac_files(day_lake)
    summary = day_lake.require(DAILY_SUMMARY.key(date=DAY)).to_json()
    publish_day(DAY, lake=day_lake)
    assert _stac_files(day_lake) == first
    assert day_lake.require(DAILY_SUMMARY.key(date=DAY)).to_json() == summary
    gone = day_lake.partitions(SEGMENTS_2M.name)[0]
    day_lake.delete(gone)
    publish_day(DAY, lake=day_lake)
    files = _stac_files(day_lake)
    assert not any(p.endswith(f"{item_id(gone)}.json") for p in files)
    day_coll = json.loads(files[f"{STAC_DIR}/segments_2m/{DAY}/collection.json"])
    assert [link["href"] for link in day_coll["links"] if link["rel"] == "item"] == [
        f"./{item_id(k)}.json" for k in day_lake.partitions(SEGMENTS_2M.name)]


def test_run_timings_sit_beside_the_summary_without_changing_it(day_lake: Lake) -> None:
    publish_day(DAY, lake=day_lake)
    summary = day_lake.require(DAILY_SUMMARY.key(date=DAY)).to_json()
    out = publish_day(DAY, lake=day_lake, timings={"discover": 0.4, "resample_2m": 61.25, "classify": None})
    assert day_lake.require(DAILY_SUMMARY.key(date=DAY)).to_json() == summary  # timings are not in the partition
    assert out["timings"] == day_lake.url(f"{TIMINGS_DIR}/{DAY.isoformat()}.json")
    doc = json.loads(day_lake.read_document(f"{TIMINGS_DIR}/{DAY.isoformat()}.json") or b"{}")
    assert doc == {"date": DAY.isoformat(), "unit": "s", "tasks": {"discover": 0.4, "resample_2m": 61.25,
                                                                    "classify": None}}
    md = (day_lake.read_document(f"{TIMINGS_DIR}/{DAY.isoformat()}.md") or b"").decode()
    assert "| resample_2m | 61.2 |" in md and "| classify | - |" in md
    publish_day(DAY, lake=day_lake, timings={"discover": 9.0})  # the latest run replaces the earlier one
    again = json.loads(day_lake.read_document(f"{TIMINGS_DIR}/{DAY.isoformat()}.json") or b"{}")
    assert again["tasks"] == {"discover": 9.0}


def test_a_second_day_joins_the_product_collection(day_lake: Lake, tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    for key in day_lake.partitions(S2_LABELS.name):  # the same scene on two days: copy its files
        for day in (DAY, DAY + dt.timedelta(days=1)):
            with lake.writer(S2_LABELS.key(date=day, scene=key.scene), day_lake.require(key).config) as w:
                for entry in day_lake.require(key).files:
                    w.write_bytes(entry.name, day_lake.open_file(key, entry.name))
    publish_day(DAY + dt.timedelta(days=1), lake=lake)
    publish_day(DAY, lake=lake)
    coll: dict[str, Any] = json.loads(lake.read_document(f"{STAC_DIR}/s2_labels/collection.json") or b"{}")
    assert [link["href"] for link in coll["links"] if link["rel"] == "child"] == [
        f"./{DAY}/collection.json", f"./{DAY + dt.timedelta(days=1)}/collection.json"]
    assert coll["extent"]["temporal"]["interval"] == [[f"{DAY}T00:00:00Z", f"{DAY + dt.timedelta(days=2)}T00:00:00Z"]]
    root = json.loads(lake.read_document(CATALOG_FILE) or b"{}")
    assert {link["title"] for link in root["links"] if link["rel"] == "child"} == {"s2_labels", "daily_summary"}


def test_daily_summary_counts_the_day(day_lake: Lake) -> None:
    publish_day(DAY, lake=day_lake)
    summary = json.loads(day_lake.open_file(DAILY_SUMMARY.key(date=DAY), SUMMARY_FILE))
    assert summary["products"]["segments_2m"]["partitions"] == len(day_lake.partitions(SEGMENTS_2M.name, DAY))
    assert summary["products"]["segments_2m"]["rows"] == sum(
        day_lake.require(k).rows for k in day_lake.partitions(SEGMENTS_2M.name, DAY))
    assert summary["stages"]["resample_2m"] == {"reported": True, "skipped": 0, "failed": 0}
    assert summary["stages"]["classify"]["reported"] is False and summary["classes"] is None
    assert summary["freeboard"] == {"segments": 0} and summary["validation"] is None


def test_document_paths_stay_off_the_lake_files(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    for bad in ("", "/abs.json", "../out.json", "stac/../x.json", "_manifest.json", "stac/.tmp-x", "a//b"):
        with pytest.raises(StorageError, match="not a document path"):
            lake.write_document(bad, b"{}")
    lake.write_document("stac/a/b.json", b"{}")
    assert lake.list_documents("stac") == ["stac/a/b.json"] and lake.read_document("stac/a/b.json") == b"{}"
    lake.delete_document("stac/a/b.json")
    assert lake.read_document("stac/a/b.json") is None


# -- the catalog points only at files that exist and match, and its extents describe what it holds --------


def _copy(day_lake: Lake, tmp_path: Path) -> Lake:
    """A copy of the day's lake without any catalog."""
    shutil.copytree(day_lake.path(), tmp_path / "lake", ignore=shutil.ignore_patterns(STAC_DIR, CATALOG_FILE))
    return Lake(tmp_path / "lake")


def _unresolved(lake: Lake) -> tuple[list[str], int]:
    """Links and assets of every catalog document that do not resolve to a file with the bytes they
    describe, and the number of assets checked."""
    bad, assets = [], 0
    for relpath in [CATALOG_FILE, *lake.list_documents(STAC_DIR)]:
        path = Path(lake.path(relpath))
        if not path.is_file():
            continue
        doc = json.loads(path.read_bytes())
        for link in doc.get("links", []):
            if not (path.parent / link["href"]).is_file():
                bad.append(f"{relpath}: {link['rel']} {link['href']}")
        for asset in doc.get("assets", {}).values():
            assets += 1
            target = path.parent / asset["href"]
            data = target.read_bytes() if target.is_file() else None
            if data is None or len(data) != asset["file:size"] or \
                    "1220" + hashlib.sha256(data).hexdigest() != asset["file:checksum"]:
                bad.append(f"{relpath}: asset {asset['href']} {'missing' if data is None else 'differs'}")
    return bad, assets


class RacingLake(Lake):
    """A lake on which a committer thread re-commits one partition, in a loop, at the worst moments of a
    publish: right after the publish wrote that partition's item, and right after it read the partition's
    manifest once the catalog is being written (each commit retires the version it replaces)."""

    def __init__(self, root: Path, key: PartitionKey, versions: list[pa.Table], commits: int) -> None:
        super().__init__(root)
        self.key, self.left, self.armed, self.done = key, commits, False, 0
        self._go: queue.Queue[bool] = queue.Queue()
        self._ack: queue.Queue[BaseException | None] = queue.Queue()
        committer = Lake(root)  # a plain lake: its reads and writes do not race

        def loop() -> None:
            while self._go.get():
                try:
                    with committer.writer(key) as w:
                        w.write_table("part-00000.parquet", versions[self.done % len(versions)])
                    self.done += 1
                    self._ack.put(None)
                except BaseException as exc:  # handed to the publishing thread
                    self._ack.put(exc)

        self.thread = threading.Thread(target=loop, daemon=True)
        self.thread.start()

    def _race(self) -> None:
        if self.left > 0:
            self.left -= 1
            self._go.put(True)
            if (exc := self._ack.get(timeout=120)) is not None:
                raise exc

    def stop(self) -> None:
        self._go.put(False)
        self.thread.join(timeout=60)

    def write_document(self, relpath: str, data: bytes) -> None:
        super().write_document(relpath, data)
        self.armed = True
        if relpath.endswith(f"/{item_id(self.key)}.json"):
            self._race()

    def manifest(self, key: PartitionKey) -> Manifest | None:
        found = super().manifest(key)
        if self.armed and key == self.key:
            self._race()
        return found


def test_commits_during_a_publish_never_leave_an_asset_on_a_removed_version(day_lake: Lake, tmp_path: Path) -> None:
    base = _copy(day_lake, tmp_path)
    key = base.partitions(SEGMENTS_2M.name, DAY)[0]
    table = base.read_table(key)
    racing = RacingLake(tmp_path / "lake", key, [table.slice(1), table], commits=4)
    try:
        result = publish_day(DAY, lake=racing)
    finally:
        racing.stop()
    bad, assets = _unresolved(base)
    assert bad == [] and assets >= 6
    assert racing.done == 4  # the committer re-committed the track four times while the day was published
    assert result["skipped"] == [] and result["items"]["segments_2m"] == 2
    item = json.loads(base.read_document(f"{STAC_DIR}/segments_2m/{DAY}/{item_id(key)}.json") or b"{}")
    manifest = base.require(key)
    assert str(manifest.version) in item["assets"]["part-00000"]["href"]
    assert item["assets"]["part-00000"]["table:row_count"] == manifest.rows == table.num_rows  # the last version


def test_a_failed_publish_leaves_every_link_resolving(day_lake: Lake, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from seaice_tasks.cli import main as cli

    lake = _copy(day_lake, tmp_path)
    in_the_way = Path(lake.path(STAC_DIR, "daily_summary", DAY.isoformat(),
                                f"{item_id(DAILY_SUMMARY.key(date=DAY))}.json"))
    in_the_way.mkdir(parents=True)  # a folder where the last product's item goes: that write fails
    assert cli(["publish", "--date", DAY.isoformat(), "--lake", str(lake.path())]) == 2
    err = capsys.readouterr().err
    assert _unresolved(lake)[0] == [] and lake.read_document(CATALOG_FILE) is None
    assert err.count("\n") == 1 and str(in_the_way) in err and "left as it was" in err
    in_the_way.rmdir()
    publish_day(DAY, lake=lake)
    before = _stac_files(lake)
    assert _unresolved(lake)[0] == [] and len(before) > 6
    # with a catalog in place: a failing publish of the next day leaves the previous catalog, byte for byte
    later = DAY + dt.timedelta(days=1)
    scene = lake.partitions(S2_LABELS.name, DAY)[0]
    with lake.writer(S2_LABELS.key(date=later, scene=scene.scene), lake.require(scene).config) as w:
        for entry in lake.require(scene).files:
            w.write_bytes(entry.name, lake.open_file(scene, entry.name))
    Path(lake.path(STAC_DIR, "daily_summary", later.isoformat(),
                   f"{item_id(DAILY_SUMMARY.key(date=later))}.json")).mkdir(parents=True)
    with pytest.raises(StorageError, match="not written") as failed:
        publish_day(later, lake=lake)  # the new scene's item was written before the summary's failed
    assert "\n" not in str(failed.value)
    assert _stac_files(lake) == before and _unresolved(lake)[0] == []


def test_a_manifest_checksum_that_differs_from_the_file_is_a_named_skip(day_lake: Lake, tmp_path: Path) -> None:
    lake = _copy(day_lake, tmp_path)
    edited, kept = lake.partitions(SEGMENTS_2M.name, DAY)
    manifest = Path(lake.path(edited.relpath, "_manifest.json"))
    doc = json.loads(manifest.read_text())
    doc["files"][0]["sha256"] = "0" * 64  # the file's bytes stay as they were
    manifest.write_text(json.dumps(doc))
    result = publish_day(DAY, lake=lake)
    assert _unresolved(lake)[0] == []
    day_dir = f"{STAC_DIR}/segments_2m/{DAY}"
    assert lake.read_document(f"{day_dir}/{item_id(edited)}.json") is None
    assert lake.read_document(f"{day_dir}/{item_id(kept)}.json") is not None
    assert [(s["item"], s["partition"]) for s in result["skipped"]] == [(item_id(edited), lake.partition_url(edited))]
    assert "sha256" in result["skipped"][0]["reason"] and "differs from the manifest" in result["skipped"][0]["reason"]
    assert result["items"]["segments_2m"] == 1


def _extents(lake: Lake) -> dict[str, Any]:
    return {p: json.loads(lake.read_document(p) or b"{}")["extent"] for p in lake.list_documents(STAC_DIR)
            if p.count("/") == 2 and p.endswith("/collection.json")}


def test_extents_describe_the_items_held(day_lake: Lake, tmp_path: Path) -> None:
    lake = _copy(day_lake, tmp_path)
    publish_day(DAY, lake=lake)
    extents = _extents(lake)
    assert set(extents) == {f"{STAC_DIR}/{p}/collection.json" for p in ("segments_2m", "s2_labels", "daily_summary")}
    for path, extent in extents.items():
        items = [json.loads(lake.read_document(p) or b"{}") for p in lake.list_documents(posixpath.dirname(path))
                 if "/collection.json" not in p]
        assert extent["temporal"]["interval"] == [[f"{DAY}T00:00:00Z", f"{DAY + dt.timedelta(days=1)}T00:00:00Z"]]
        boxes = [i["bbox"] for i in items if "bbox" in i]
        expected = [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
                    max(b[3] for b in boxes)] if boxes else [-180.0, -90.0, 180.0, 90.0]
        assert extent["spatial"]["bbox"] == [expected], path
    # a day the lake holds nothing of changes nothing: no summary, no extent reaching back to 1970
    before = _stac_files(lake)
    empty = publish_day("1970-01-01", lake=lake)
    assert _stac_files(lake) == before and lake.partitions(DAILY_SUMMARY.name, dt.date(1970, 1, 1)) == []
    assert empty["summary_committed"] is False and sum(empty["items"].values()) == 0
    # a day whose partitions are gone leaves the extents: they shrink back to the days still held
    later = DAY + dt.timedelta(days=3)
    scene = lake.partitions(S2_LABELS.name, DAY)[0]
    with lake.writer(S2_LABELS.key(date=later, scene=scene.scene), lake.require(scene).config) as w:
        for entry in lake.require(scene).files:
            w.write_bytes(entry.name, lake.open_file(scene, entry.name))
    coll_path = f"{STAC_DIR}/s2_labels/collection.json"
    coll = json.loads(lake.read_document(coll_path) or b"{}")
    for link in coll["links"]:
        assert link.pop("seaice:bbox", None) is not None or link["rel"] != "child"
    lake.write_document(coll_path, json.dumps(coll).encode())  # as written before child links carried boxes
    publish_day(later, lake=lake)
    assert _extents(lake)[coll_path] == {"spatial": extents[coll_path]["spatial"], "temporal": {"interval": [
        [f"{DAY}T00:00:00Z", f"{later + dt.timedelta(days=1)}T00:00:00Z"]]}}
    lake.delete(S2_LABELS.key(date=later, scene=scene.scene))
    publish_day(later, lake=lake)
    assert _extents(lake)[coll_path] == extents[coll_path]
    assert _unresolved(lake)[0] == []


def test_publish_refuses_a_config_that_is_not_an_object(day_lake: Lake, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from seaice_tasks.cli import main as cli
    from seaice_tasks.errors import ConfigError

    lake = _copy(day_lake, tmp_path)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    for config in ("[]", "3", '"x"'):
        assert cli(["publish", "--date", DAY.isoformat(), "--lake", str(lake.path()), "--config", config]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "expected a JSON object" in err, err
    values: list[Any] = [[], 3, "x"]
    for value in values:  # the same from Python (the DAG passes its param through)
        with pytest.raises(ConfigError, match="PublishConfig: expected a JSON object"):
            publish_day(DAY, lake=lake, config=value)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written


def test_the_items_index_is_one_geoparquet_row_per_item(day_lake: Lake, tmp_path: Path) -> None:
    """stac-items.parquet: every item once with its footprint and asset paths; a re-publish writes the same bytes;
    a removed partition's row goes with its item."""
    import geopandas

    from seaice_tasks.publish.index import INDEX_COLUMNS, INDEX_FILE

    lake = _copy(day_lake, tmp_path)
    publish_day(DAY, lake=lake)
    index = geopandas.read_parquet(lake.path(INDEX_FILE))
    assert tuple(index.columns) == INDEX_COLUMNS and index.crs.to_epsg() == 4326
    expected = {item_id(k) for p in (SEGMENTS_2M, S2_LABELS, DAILY_SUMMARY) for k in lake.partitions(p.name)}
    assert sorted(index["id"]) == sorted(expected)
    tracks = index[index["product"] == "segments_2m"]
    assert len(tracks) == 2 and (tracks["date"] == DAY.isoformat()).all()
    for row in tracks.itertuples():
        key = next(k for k in lake.partitions(SEGMENTS_2M.name) if item_id(k) == row.id)
        assert row.row_count == lake.require(key).rows and row.geometry.bounds[3] < -55
        for path in json.loads(row.assets).values():
            assert Path(lake.path(path)).is_file()  # the asset paths resolve from the lake root
    # a DuckDB-like filter by footprint: the tracks' items intersect their own bbox, not the north pole
    assert index[index.intersects(tracks.geometry.iloc[0])]["id"].tolist().count(tracks["id"].iloc[0]) == 1
    first = Path(lake.path(INDEX_FILE)).read_bytes()
    publish_day(DAY, lake=lake)
    assert Path(lake.path(INDEX_FILE)).read_bytes() == first
    gone = lake.partitions(SEGMENTS_2M.name)[0]
    lake.delete(gone)
    publish_day(DAY, lake=lake)
    assert item_id(gone) not in set(geopandas.read_parquet(lake.path(INDEX_FILE))["id"])
