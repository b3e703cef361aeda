"""The publish stage: the daily summary and the STAC catalog, validated with pystac's validator."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pystac
import pytest
from pystac.validation import JsonSchemaSTACValidator, validate_dict

from seaice_tasks.products import DAILY_SUMMARY, S2_LABELS, SEGMENTS_2M, SUMMARY_FILE
from seaice_tasks.publish import CATALOG_FILE, STAC_DIR, TIMINGS_DIR, item_id, publish_day
from seaice_tasks.spark_jobs.runner import load_job, run_job
from seaice_tasks.storage import Lake

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


def test_every_document_validates_and_the_catalog_walks_to_every_partition(  # type: ignore[no-untyped-def]
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


def test_republish_is_byte_identical_and_a_removed_partition_loses_its_item(day_lake: Lake) -> None:
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
    from seaice_tasks.errors import StorageError

    lake = Lake(tmp_path / "lake")
    for bad in ("", "/abs.json", "../out.json", "stac/../x.json", "_manifest.json", "stac/.tmp-x", "a//b"):
        with pytest.raises(StorageError, match="not a document path"):
            lake.write_document(bad, b"{}")
    lake.write_document("stac/a/b.json", b"{}")
    assert lake.list_documents("stac") == ["stac/a/b.json"] and lake.read_document("stac/a/b.json") == b"{}"
    lake.delete_document("stac/a/b.json")
    assert lake.read_document("stac/a/b.json") is None
