"""Discovery providers against recorded CMR / STAC responses served on 127.0.0.1.

The granule and scene names are real (``../shared/realdata`` and its pairing lists); the bytes
served are real files of ``../shared/realdata`` standing in for them (tests/data/discovery/README.md).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from seaice_tasks.catalog import run_discover
from seaice_tasks.config import DiscoverConfig
from seaice_tasks.discovery import (
    CmrProvider,
    Credentials,
    DiscoveryError,
    Refused,
    RemoteFile,
    RemoteInput,
    StacProvider,
    credentials_from_env,
    fetch_inputs,
)
from seaice_tasks.errors import ConfigError
from seaice_tasks.products import INVENTORY
from seaice_tasks.storage import InputStore, Lake
from tests.discovery_server import DiscoveryServer, requests_to

ATL10_DAY = dt.date(2019, 1, 25)  # ATL10-02_20190125171848_04320201_005_02 and two S2 scenes (Amundsen pairs)
ATL10_NAME = "ATL10-02_20190125171848_04320201_005_02.h5"
S2_CLEAR = "20190125T161339_20190125T161342_T12CVC"
S2_CLOUDY = "20190125T161339_20190125T161342_T12CVD"
ATL03_NIGHT_DAY = dt.date(2018, 10, 14)  # the real ATL03 subset near the North Pole: polar night
ATL03_NAME = "ATL03_20181014002445_02350104_006_02.h5"
TOKEN = "edl-token-do-not-log-7f3a"


@pytest.fixture
def server() -> Iterator[DiscoveryServer]:
    with DiscoveryServer() as srv:
        yield srv


def _config(server: DiscoveryServer, **over: object) -> DiscoverConfig:
    fields: dict[str, object] = {
        "is2_source": "cmr", "s2_source": "stac", "cmr_url": server.cmr_url, "stac_url": server.stac_url,
        "atl03_version": "006", "atl07_version": "003", "atl10_version": "005", "retry_backoff_s": 0.0,
        "earthdata_hosts": ["127.0.0.1"],  # the recorded data host (loopback: plain http is allowed)
    }
    fields.update(over)
    return DiscoverConfig.from_dict(fields)


def _no_wait(_: float) -> None:
    pass


def test_cmr_search_sends_the_day_product_version_and_area(server: DiscoveryServer) -> None:
    cfg = _config(server, bbox=[-120.0, -78.0, -95.0, -70.0])
    found = CmrProvider(cfg).search(ATL10_DAY)
    assert [(r.kind, r.name) for r in found] == [("ATL10", ATL10_NAME)]
    served = server.file_bytes(server.data_path(ATL10_NAME))
    (file,) = found[0].files
    assert (file.size_bytes, file.algorithm) == (len(served), "md5")
    assert file.checksum is not None and len(file.checksum) == 32
    queries = {r.query["short_name"][0]: r.query for r in requests_to(server, "/search/granules.umm_json")}
    assert sorted(queries) == ["ATL03", "ATL07", "ATL10"]
    assert queries["ATL10"]["version"] == ["005"]
    assert queries["ATL10"]["temporal[]"] == ["2019-01-25T00:00:00Z,2019-01-25T23:59:59Z"]
    assert queries["ATL10"]["bounding_box"] == ["-120.0,-78.0,-95.0,-70.0"]


def test_cmr_daylight_only_drops_the_polar_night_granule(server: DiscoveryServer) -> None:
    assert [r.name for r in CmrProvider(_config(server)).search(ATL03_NIGHT_DAY)] == [ATL03_NAME]
    assert CmrProvider(_config(server, daylight_only=True)).search(ATL03_NIGHT_DAY) == []
    last = list(requests_to(server, "/search/granules.umm_json"))[-1]
    assert last.query["day_night_flag"] == ["day"]


def test_cmr_ignores_a_granule_of_another_day_that_the_service_returns(server: DiscoveryServer) -> None:
    # CMR matches on overlap: a granule starting the day before (ending after midnight) must not be taken
    server.granules[4]["umm"]["TemporalExtent"]["RangeDateTime"]["EndingDateTime"] = "2019-01-27T00:10:00Z"
    found = CmrProvider(_config(server)).search(dt.date(2019, 1, 26))
    assert found == []


def test_stac_search_filters_cloud_cover_and_names_scene_folders(server: DiscoveryServer) -> None:
    every = StacProvider(_config(server)).search(ATL10_DAY)
    assert [r.name for r in every] == [S2_CLEAR, S2_CLOUDY]
    assert [f.name for f in every[0].files] == ["B02.tif", "B03.tif", "B04.tif", "B08.tif"]
    assert all(f.algorithm == "sha256" and f.size_bytes for f in every[0].files)
    clear = StacProvider(_config(server, max_cloud_cover=50.0)).search(ATL10_DAY)
    assert [r.name for r in clear] == [S2_CLEAR]
    body = list(requests_to(server, "/stac/search"))[-1].body
    assert b'"eo:cloud_cover": {"lte": 50.0}' in body
    assert b'"datetime": "2019-01-25T00:00:00Z/2019-01-25T23:59:59Z"' in body


def test_run_discover_fetches_then_inventories_and_a_rerun_downloads_nothing(
    server: DiscoveryServer, tmp_path: Path
) -> None:
    catalog, lake = tmp_path / "catalog", tmp_path / "lake"
    catalog.mkdir()
    cfg = _config(server).to_dict()
    found = run_discover(ATL10_DAY, catalog=str(catalog), lake=str(lake), config=cfg)
    assert found["counts"] == {"ATL10": 1, "S2": 2}
    assert found["skipped"] == []
    assert (catalog / "ATL10" / ATL10_NAME).read_bytes() == server.file_bytes(server.data_path(ATL10_NAME))
    assert sorted(p.name for p in (catalog / "S2" / S2_CLEAR).iterdir()) == ["B02.tif", "B03.tif", "B04.tif", "B08.tif"]
    table = Lake(lake).read_table(INVENTORY.key(date=ATL10_DAY))
    assert sorted(zip(table.column("kind").to_pylist(), table.column("item").to_pylist(), strict=True)) == [
        ("ATL10", "20190125171848_04320201"), ("S2", "20190125T161339_T12CVC"), ("S2", "20190125T161339_T12CVD")]
    manifest = (lake / INVENTORY.key(date=ATL10_DAY).relpath / "_manifest.json")
    data_requests = len(list(requests_to(server, "/data/")))
    before = sorted(p.read_bytes() for p in (lake / INVENTORY.key(date=ATL10_DAY).relpath).rglob("*.parquet"))
    again = run_discover(ATL10_DAY, catalog=str(catalog), lake=str(lake), config=cfg)
    assert again["counts"] == found["counts"]
    assert len(list(requests_to(server, "/data/"))) == data_requests  # nothing downloaded again
    after = sorted(p.read_bytes() for p in (lake / INVENTORY.key(date=ATL10_DAY).relpath).rglob("*.parquet"))
    assert after == before
    assert manifest.exists()


def test_a_transient_failure_is_retried_with_backoff(server: DiscoveryServer, tmp_path: Path) -> None:
    (item,) = CmrProvider(_config(server)).search(ATL10_DAY)
    server.fail_first[server.data_path(ATL10_NAME)] = 2
    waits: list[float] = []
    cfg = _config(server, download_retries=3, retry_backoff_s=0.5)
    result = fetch_inputs([item], InputStore(str(tmp_path), {}), config=cfg, sleep=waits.append)
    assert result.failed == () and len(result.fetched) == 1
    assert waits == [0.5, 1.0]
    assert (tmp_path / "ATL10" / ATL10_NAME).stat().st_size == item.files[0].size_bytes


def test_a_corrupt_download_never_becomes_an_input_and_the_others_go_on(
    server: DiscoveryServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    catalog, lake = tmp_path / "catalog", tmp_path / "lake"
    catalog.mkdir()
    bad = server.data_path(f"{S2_CLEAR}/B03.tif")
    server.corrupt.add(bad)
    with caplog.at_level(logging.WARNING):
        found = run_discover(ATL10_DAY, catalog=str(catalog), lake=str(lake),
                             config=_config(server, download_retries=1).to_dict())
    assert found["counts"] == {"ATL10": 1, "S2": 1}  # the cloudy scene and the granule still came
    (skip,) = found["skipped"]
    assert skip["uri"].endswith(f"S2/{S2_CLEAR}")
    assert "B03.tif" in skip["reason"] and "checksum" in skip["reason"]
    assert not (catalog / "S2" / S2_CLEAR).exists() or not any((catalog / "S2" / S2_CLEAR).iterdir())
    leftovers = [p for p in catalog.rglob("*") if p.is_file() and ".partial" in p.name]
    assert leftovers == []
    assert sum(1 for r in requests_to(server, bad) if r.method == "GET") == 2  # first try and one retry


def test_a_size_mismatch_is_rejected(server: DiscoveryServer, tmp_path: Path) -> None:
    href = f"{server.base}{server.data_path(ATL10_NAME)}"
    wrong = RemoteInput("ATL10", ATL10_NAME, dt.datetime(2019, 1, 25, 17, 18, 48, tzinfo=dt.UTC),
                        (RemoteFile(href, ATL10_NAME, size_bytes=12),), "cmr")
    result = fetch_inputs([wrong], InputStore(str(tmp_path), {}), config=DiscoverConfig(download_retries=0),
                          sleep=_no_wait)
    ((_uri, reason),) = result.failed
    assert "the provider states 12" in reason
    assert not (tmp_path / "ATL10" / ATL10_NAME).exists()


def test_credentials_come_from_the_environment_and_never_reach_logs_or_the_lake(
    server: DiscoveryServer, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EARTHDATA_TOKEN", TOKEN)
    assert TOKEN not in repr(credentials_from_env())
    catalog, lake = tmp_path / "catalog", tmp_path / "lake"
    catalog.mkdir()
    server.fail_first[server.data_path(ATL10_NAME)] = 1  # a logged retry must not show it either
    with caplog.at_level(logging.DEBUG):
        run_discover(ATL10_DAY, catalog=str(catalog), lake=str(lake), config=_config(server).to_dict())
    nasa = [r for r in requests_to(server, "/data/ATL10/")]
    assert nasa and all(r.headers.get("Authorization") == f"Bearer {TOKEN}" for r in nasa)
    s2 = [r for r in requests_to(server, "/data/S2/")]
    assert s2 and all("Authorization" not in r.headers for r in s2)  # NASA's token goes to NASA only
    assert TOKEN not in caplog.text
    for path in lake.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path


def test_basic_auth_when_no_token() -> None:
    creds = credentials_from_env({"EARTHDATA_USERNAME": "ice", "EARTHDATA_PASSWORD": "p@ss"})
    assert creds.earthdata_headers() == {"Authorization": "Basic aWNlOnBAc3M="}
    assert Credentials().earthdata_headers() == {}


def test_a_failed_search_fails_the_task_and_commits_nothing(server: DiscoveryServer, tmp_path: Path) -> None:
    server.search_error = True
    catalog, lake = tmp_path / "catalog", tmp_path / "lake"
    catalog.mkdir()
    with pytest.raises(DiscoveryError, match=r"^cmr search for 2019-01-25 failed: "):
        run_discover(ATL10_DAY, catalog=str(catalog), lake=str(lake), config=_config(server).to_dict())
    assert not Lake(lake).is_committed(INVENTORY.key(date=ATL10_DAY))


def test_the_real_atl03_arrives_byte_for_byte(server: DiscoveryServer, tmp_path: Path, realdata: Path) -> None:
    (item,) = CmrProvider(_config(server, products=["ATL03"])).search(ATL03_NIGHT_DAY)
    fetch_inputs([item], InputStore(str(tmp_path), {}), sleep=_no_wait)
    got = (tmp_path / "ATL03" / ATL03_NAME).read_bytes()
    assert got == (realdata / "icesat2" / "harmony_ATL03_gt1l.h5").read_bytes()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"is2_source": "earthdata"}, "is2_source"),
        ({"s2_source": "gee"}, "s2_source"),
        ({"bbox": [1.0, 2.0, 3.0]}, "bbox needs 4"),
        ({"polygon": [0.0, 0.0, 1.0, 0.0, 1.0]}, "polygon"),
        ({"max_cloud_cover": 120.0}, "percentage"),
    ],
)
def test_bad_discovery_settings_are_named(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DiscoverConfig.from_dict(fields)


def test_the_catalog_provider_is_the_default_and_fetches_nothing(tmp_path: Path) -> None:
    cfg = DiscoverConfig()
    assert (cfg.is2_source, cfg.s2_source) == ("catalog", "catalog")
    (tmp_path / "catalog").mkdir()
    found = run_discover(ATL10_DAY, catalog=str(tmp_path / "catalog"), lake=str(tmp_path / "lake"))
    assert found["counts"] == {}
    assert os.listdir(tmp_path / "catalog") == []


def test_cmr_polygon_replaces_the_bounding_box(server: DiscoveryServer) -> None:
    ring = [-120.0, -78.0, -95.0, -78.0, -95.0, -70.0, -120.0, -70.0, -120.0, -78.0]  # closed, counter-clockwise
    CmrProvider(_config(server, polygon=ring, bbox=[-1.0, -1.0, 1.0, 1.0], products=["ATL10"])).search(ATL10_DAY)
    (query,) = [r.query for r in requests_to(server, "/search/granules.umm_json")]
    assert query["polygon"] == [",".join(str(v) for v in ring)]
    assert "bounding_box" not in query


def test_an_unusable_stac_item_is_ignored_not_fatal(server: DiscoveryServer) -> None:
    server.items[0]["id"] = "not-a-scene"
    server.items[0]["properties"].pop("mgrs:utm_zone")  # no SAFE name, id or tile: no folder name
    server.items[1]["assets"]["blue"]["file:checksum"] = "zz-not-hex"  # kept, its checksum not checked
    found = StacProvider(_config(server)).search(ATL10_DAY)
    inputs = [r for r in found if isinstance(r, RemoteInput)]
    assert [r.name for r in inputs] == [S2_CLOUDY]
    assert inputs[0].files[0].checksum is None and inputs[0].files[1].checksum is not None
    (refused,) = [r for r in found if isinstance(r, Refused)]  # a recorded skip, not a silent drop
    assert refused.uri == "stac:'not-a-scene'" and "scene name" in refused.reason
