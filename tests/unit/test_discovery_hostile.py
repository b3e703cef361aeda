"""Discovery against hostile search answers: no local file read, no write outside the catalog,
no credential to a stranger, no secret in a log, no download without bounds.

The answers are the recorded CMR / STAC responses of ``tests/discovery_server.py`` on 127.0.0.1,
edited the way a hostile or broken service would answer; a second server on 127.0.0.2 is a
stranger host that records what reaches it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from seaice_tasks.catalog import run_discover
from seaice_tasks.config import DiscoverConfig
from seaice_tasks.discovery import (
    CredentialPolicy,
    HrefRefused,
    RemoteFile,
    RemoteInput,
    check_href,
    check_name,
    fetch_inputs,
)
from seaice_tasks.storage import InputStore
from tests.discovery_server import DiscoveryServer, requests_to

REPO = Path(__file__).resolve().parents[2]
DAY = dt.date(2019, 1, 25)
ATL10_NAME = "ATL10-02_20190125171848_04320201_005_02.h5"
S2_CLEAR = "20190125T161339_20190125T161342_T12CVC"
S2_CLOUDY = "20190125T161339_20190125T161342_T12CVD"
EDL_TOKEN = "edl-hostile-test-token-31c9"
STAC_TOKEN = "stac-hostile-test-token-8d02"


@pytest.fixture
def server() -> Iterator[DiscoveryServer]:
    with DiscoveryServer() as srv:
        yield srv


@pytest.fixture
def stranger() -> Iterator[DiscoveryServer]:
    """Another host (127.0.0.2) serving the same files: on no allow-list."""
    with DiscoveryServer(host="127.0.0.2") as srv:
        yield srv


@pytest.fixture
def tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EARTHDATA_TOKEN", EDL_TOKEN)
    monkeypatch.setenv("SEAICE_STAC_TOKEN", STAC_TOKEN)


def _config(server: DiscoveryServer, **over: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "is2_source": "cmr", "s2_source": "stac", "cmr_url": server.cmr_url, "stac_url": server.stac_url,
        "atl03_version": "006", "atl07_version": "003", "atl10_version": "005", "retry_backoff_s": 0.0,
        "download_retries": 0, "earthdata_hosts": ["127.0.0.1"],
    }
    fields.update(over)
    return fields


def _item(server: DiscoveryServer, item_id: str) -> dict[str, Any]:
    return next(i for i in server.items if i["id"] == item_id)


def _granule_links(server: DiscoveryServer, name: str) -> list[dict[str, Any]]:
    granule = next(g for g in server.granules if g["umm"]["GranuleUR"] == name)
    return [u for u in granule["umm"]["RelatedUrls"] if u["Type"] == "GET DATA"]


def _unchecked(asset_or_archive: dict[str, Any]) -> None:
    """Drop the stated size and checksum, so only the href policy stands between a href and the catalog."""
    for key in ("file:checksum", "file:size", "Checksum", "SizeInBytes"):
        asset_or_archive.pop(key, None)


def _discover(server: DiscoveryServer, tmp_path: Path, **over: Any) -> dict[str, Any]:
    catalog = tmp_path / "catalog"
    catalog.mkdir(exist_ok=True)
    return run_discover(DAY, catalog=str(catalog), lake=str(tmp_path / "lake"), config=_config(server, **over))


def _files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


# -- hrefs: never a local file ------------------------------------------------------------------------------


@pytest.mark.parametrize("href", ["../../../../../../../../etc/passwd", "/etc/passwd", "file:///proc/self/environ"])
def test_a_local_asset_href_is_refused_as_a_recorded_skip(
    server: DiscoveryServer, tmp_path: Path, tokens: None, href: str
) -> None:
    red = _item(server, S2_CLEAR)["assets"]["red"]
    red["href"] = href
    _unchecked(red)
    found = _discover(server, tmp_path)
    assert found["counts"] == {"ATL10": 1, "S2": 1}  # the granule and the other scene still came
    (skip,) = found["skipped"]
    assert skip["uri"].endswith(f"S2/{S2_CLEAR}") and href in skip["reason"] and "refused href" in skip["reason"]
    assert not (tmp_path / "catalog" / "S2" / S2_CLEAR).exists()
    for path in _files_under(tmp_path / "catalog") + _files_under(tmp_path / "lake"):
        data = path.read_bytes()
        assert b"root:" not in data and EDL_TOKEN.encode() not in data and STAC_TOKEN.encode() not in data, path


def test_a_file_data_link_of_cmr_is_refused(server: DiscoveryServer, tmp_path: Path) -> None:
    secret = tmp_path / "elsewhere" / ATL10_NAME
    secret.parent.mkdir()
    secret.write_bytes(b"a local file that must never reach the catalog")
    (link,) = _granule_links(server, ATL10_NAME)
    link["URL"] = f"file://{secret}"
    granule = next(g for g in server.granules if g["umm"]["GranuleUR"] == ATL10_NAME)
    _unchecked(granule["umm"]["DataGranule"]["ArchiveAndDistributionInformation"][0])
    found = _discover(server, tmp_path)
    assert found["counts"] == {"S2": 2}
    (skip,) = found["skipped"]
    assert skip["uri"].endswith(f"ATL10/{ATL10_NAME}") and f"file://{secret}" in skip["reason"]
    assert not (tmp_path / "catalog" / "ATL10").exists()


@pytest.mark.parametrize(
    ("href", "why"),
    [
        ("http://169.254.169.254/latest/meta-data/iam/B04.tif", "link-local"),
        ("http://[fe80::1]/B04.tif", "link-local"),
        ("http://0.0.0.0/B04.tif", "unspecified"),
        ("https://user:pw@example.org/B04.tif", "user name or password"),
        ("simplecache::https://example.org/B04.tif", "chained"),
        ("s3://bucket/B04.tif", "only https://, http://"),
        ("ftp://example.org/B04.tif", "only https://, http://"),
        ("https://example.org/B04 .tif", "spaces"),
        ("https:///B04.tif", "no host"),
        ("https://example.org:99999/B04.tif", "bad port"),
    ],
)
def test_check_href_refuses_what_discovery_never_fetches(href: str, why: str) -> None:
    with pytest.raises(HrefRefused, match=why):
        check_href(href, "file")


def test_check_href_allows_network_urls_and_the_stores_own_scheme() -> None:
    assert check_href("https://data.nsidc.earthdatacloud.nasa.gov/x/ATL03.h5").hostname == \
        "data.nsidc.earthdatacloud.nasa.gov"
    assert check_href("http://127.0.0.1:8080/data/B04.tif").port == 8080
    assert check_href("s3://raw/S2/B04.tif", "s3").scheme == "s3"  # a catalog on S3 may copy from S3


def test_a_link_local_asset_is_a_recorded_skip_and_never_requested(server: DiscoveryServer, tmp_path: Path) -> None:
    href = "http://169.254.169.254/latest/meta-data/iam/security-credentials/B08.tif"
    _item(server, S2_CLEAR)["assets"]["nir"]["href"] = href
    found = _discover(server, tmp_path)
    (skip,) = found["skipped"]
    assert skip["uri"].endswith(f"S2/{S2_CLEAR}") and href in skip["reason"] and "link-local" in skip["reason"]


# -- names: one safe component, inside the catalog ------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("s2:product_uri", "../../escape/S2B_MSIL1C_20190125T161339_N0207_R140_T12CVC_20190125T180000.SAFE"),
        ("id", "{tmp}/escape/20190125T161339_20190125T161342_T12CVC"),
        ("id", "../../escape/20190125T161339_20190125T161342_T12CVC"),
    ],
)
def test_a_scene_name_that_leaves_the_catalog_is_never_a_path(
    server: DiscoveryServer, tmp_path: Path, field: str, value: str
) -> None:
    item = _item(server, S2_CLEAR)
    hostile = value.replace("{tmp}", str(tmp_path))
    if field == "id":
        item["id"] = hostile
    else:
        item["properties"][field] = hostile
    found = _discover(server, tmp_path)
    assert not (tmp_path / "escape").exists()
    outside = [p for p in _files_under(tmp_path) if not p.is_relative_to(tmp_path / "catalog")
               and not p.is_relative_to(tmp_path / "lake")]
    assert outside == []
    # the scene still arrives, under a safe name: the GEE id or the <time>_T<tile> key
    scenes = {p.name for p in (tmp_path / "catalog" / "S2").iterdir()}
    assert scenes in ({S2_CLEAR, S2_CLOUDY}, {"20190125T161339_T12CVC", S2_CLOUDY})
    assert found["counts"] == {"ATL10": 1, "S2": 2}


def test_an_item_with_no_safe_name_is_a_recorded_skip(server: DiscoveryServer, tmp_path: Path) -> None:
    item = _item(server, S2_CLEAR)
    item["id"] = "../../etc/20190125T161339_20190125T161342_T12CVC"
    for key in ("mgrs:utm_zone", "mgrs:latitude_band", "mgrs:grid_square"):
        item["properties"].pop(key)
    found = _discover(server, tmp_path)
    (skip,) = found["skipped"]
    assert skip["uri"].startswith("stac:'../../etc/") and "scene name" in skip["reason"]
    assert found["counts"] == {"ATL10": 1, "S2": 1}


@pytest.mark.parametrize(
    ("name", "kind"),
    [("../ATL10-02_20190125171848_04320201_005_02.h5", "ATL10"), ("/ATL03_20181014002445_02350104_006_02.h5", "ATL03"),
     ("ATL03_20181014002445_02350104_006_02.h5", "ATL10"), ("x_ATL03_20181014002445_02350104_006_02.h5", "ATL03"),
     ("..", "S2"), ("S2/../x", "S2"), ("B04.tif/..", "band"), ("B04.exe", "band"), (".B04.tif", "band")],
)
def test_check_name_refuses_anything_but_one_name_of_the_products_pattern(name: str, kind: str) -> None:
    with pytest.raises(HrefRefused, match="refused name"):
        check_name(name, kind)


def test_a_hand_made_input_with_a_traversing_name_is_refused_by_fetch(tmp_path: Path) -> None:
    evil = RemoteInput("S2", "../../escape", dt.datetime(2019, 1, 25, tzinfo=dt.UTC),
                       (RemoteFile("http://127.0.0.1:9/B02.tif", "B02.tif"),), "stac")
    result = fetch_inputs([evil], InputStore(str(tmp_path / "catalog"), {}), config=DiscoverConfig(download_retries=0))
    ((uri, reason),) = result.failed
    assert uri == "stac:'../../escape'" and "refused name" in reason
    assert not (tmp_path / "escape").exists()


# -- credentials: allowed hosts only, https unless loopback ------------------------------------------------------


def test_tokens_never_reach_a_host_the_answer_names(
    server: DiscoveryServer, stranger: DiscoveryServer, tmp_path: Path, tokens: None
) -> None:
    (link,) = _granule_links(server, ATL10_NAME)
    link["URL"] = link["URL"].replace(server.base, stranger.base)  # a data link to a stranger
    for asset in _item(server, S2_CLEAR)["assets"].values():  # assets on a stranger
        asset["href"] = asset["href"].replace(server.base, stranger.base)
    server.next_link = f"{stranger.base}/stac/search?page=2"  # and the next page too
    found = _discover(server, tmp_path)
    assert found["counts"] == {"ATL10": 1, "S2": 2}  # anonymous downloads still work: checksums are checked
    reached = list(stranger.requests)
    assert {r.path for r in reached} >= {"/stac/search", stranger.data_path(ATL10_NAME)}
    assert all("Authorization" not in r.headers for r in reached), [(r.path, r.headers) for r in reached]
    # the allowed hosts did get them: the STAC API (its own host) and its assets there
    search = [r for r in requests_to(server, "/stac/search") if r.method == "POST"]
    assert search and all(r.headers.get("Authorization") == f"Bearer {STAC_TOKEN}" for r in search)
    cloudy = [r for r in requests_to(server, f"/data/S2/{S2_CLOUDY}") if r.method == "GET"]
    assert cloudy and all(r.headers.get("Authorization") == f"Bearer {STAC_TOKEN}" for r in cloudy)


def test_a_redirect_to_a_stranger_drops_the_token(
    server: DiscoveryServer, stranger: DiscoveryServer, tmp_path: Path, tokens: None
) -> None:
    path = server.data_path(ATL10_NAME)
    server.redirect[path] = f"{stranger.base}{path}"
    found = _discover(server, tmp_path)
    assert found["counts"]["ATL10"] == 1
    first = [r for r in requests_to(server, path) if r.method == "GET"]
    assert first and first[0].headers.get("Authorization") == f"Bearer {EDL_TOKEN}"
    followed = [r for r in requests_to(stranger, path) if r.method == "GET"]
    assert followed and all("Authorization" not in r.headers for r in followed)


def test_the_default_hosts_get_nothing_but_nasa_over_https() -> None:
    policy = CredentialPolicy.from_config(DiscoverConfig(stac_url="https://earth-search.aws.element84.com/v1",
                                                         stac_asset_hosts=("sentinel-cogs.s3.us-west-2.amazonaws.com",)))
    assert policy.may_send("cmr", "https://data.nsidc.earthdatacloud.nasa.gov/ATLAS/ATL03.h5")
    assert policy.may_send("cmr", "https://urs.earthdata.nasa.gov/oauth")
    assert not policy.may_send("cmr", "http://data.nsidc.earthdatacloud.nasa.gov/ATLAS/ATL03.h5")  # plain http
    assert not policy.may_send("cmr", "https://earthdatacloud.nasa.gov.evil.example/ATL03.h5")
    assert not policy.may_send("cmr", "http://127.0.0.1:8000/ATL03.h5")  # loopback, but not on the list
    assert not policy.may_send("stac", "https://data.nsidc.earthdatacloud.nasa.gov/x.tif")  # NASA's list is NASA's
    assert policy.may_send("stac", "https://earth-search.aws.element84.com/v1/search")
    assert policy.may_send("stac", "https://sentinel-cogs.s3.us-west-2.amazonaws.com/B04.tif")
    assert not policy.may_send("stac", "http://sentinel-cogs.s3.us-west-2.amazonaws.com/B04.tif")
    loopback = CredentialPolicy(("127.0.0.1",), ())
    assert loopback.may_send("cmr", "http://127.0.0.1:8000/ATL03.h5")  # loopback in tests: http is fine


@pytest.mark.parametrize("hosts", [["https://earthdata.nasa.gov"], ["*.nasa.gov"], ["earthdata.nasa.gov/x"]])
def test_a_credential_host_must_be_a_host_name(hosts: list[str]) -> None:
    from seaice_tasks.errors import ConfigError

    with pytest.raises(ConfigError, match="is not a host name"):
        DiscoverConfig.from_dict({"earthdata_hosts": hosts})


def test_no_log_level_shows_a_token(
    server: DiscoveryServer, tmp_path: Path, tokens: None, caplog: pytest.LogCaptureFixture
) -> None:
    server.fail_first[server.data_path(ATL10_NAME)] = 1  # a logged retry
    with caplog.at_level(logging.DEBUG):
        _discover(server, tmp_path, download_retries=1)
    assert any(r.name.startswith("pystac_client") for r in caplog.records)  # its debug lines were there
    assert EDL_TOKEN not in caplog.text and STAC_TOKEN not in caplog.text


def test_seaice_verbose_discover_shows_no_token(server: DiscoveryServer, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    env = dict(os.environ, EARTHDATA_TOKEN=EDL_TOKEN, SEAICE_STAC_TOKEN=STAC_TOKEN,
               AWS_SECRET_ACCESS_KEY="aws-sk-1f2e3d")
    seaice = Path(sys.executable).with_name("seaice")
    proc = subprocess.run(
        [str(seaice), "-v", "discover", "--date", DAY.isoformat(), "--catalog", str(catalog), "--lake",
         str(tmp_path / "lake"), "--config", json.dumps(_config(server))],
        env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "DEBUG pystac_client" in proc.stderr  # verbose: the client's request lines are there
    for secret in (EDL_TOKEN, STAC_TOKEN, "aws-sk-1f2e3d"):
        assert secret not in proc.stderr and secret not in proc.stdout


# -- sizes and time: bounded ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [-5, "lots", 10**15, 1.5])
def test_a_hostile_stated_size_refuses_only_its_scene(server: DiscoveryServer, tmp_path: Path, size: object) -> None:
    _item(server, S2_CLEAR)["assets"]["green"]["file:size"] = size
    found = _discover(server, tmp_path)
    assert found["counts"] == {"ATL10": 1, "S2": 1}
    (skip,) = found["skipped"]
    assert "size" in skip["reason"]


def test_a_file_larger_than_the_limit_is_cut_off(server: DiscoveryServer, tmp_path: Path) -> None:
    for asset in _item(server, S2_CLEAR)["assets"].values():
        _unchecked(asset)
    found = _discover(server, tmp_path, max_download_bytes=1000)
    assert found["counts"] == {}
    reasons = {s["uri"].rsplit("/", 1)[-1]: s["reason"] for s in found["skipped"]}
    assert "more than max_download_bytes 1000 bytes" in reasons[S2_CLEAR]  # unstated sizes: cut off
    assert "over max_download_bytes 1000" in reasons["B02.tif"]  # stated sizes: refused before any request
    assert "over max_download_bytes 1000" in reasons[ATL10_NAME]
    assert not any(r.path.startswith(f"/data/S2/{S2_CLOUDY}") for r in server.requests)


def test_a_download_that_stalls_fails_after_the_timeout(server: DiscoveryServer, tmp_path: Path) -> None:
    server.stall.add(server.data_path(ATL10_NAME))
    started = time.monotonic()
    found = _discover(server, tmp_path, download_timeout_s=0.5)
    took = time.monotonic() - started
    assert took < 20.0  # the stalled answer would hold it for 30 s
    (skip,) = found["skipped"]
    assert skip["uri"].endswith(ATL10_NAME) and "1 attempt" in skip["reason"]
    assert found["counts"] == {"S2": 2}


def test_a_killed_download_leaves_no_work_folder_behind(server: DiscoveryServer, tmp_path: Path) -> None:
    path = server.data_path(ATL10_NAME)
    server.stall.add(path)
    work = tmp_path / "work"
    child = f"""
import datetime as dt
from seaice_tasks.config import DiscoverConfig
from seaice_tasks.discovery import RemoteFile, RemoteInput, fetch_inputs
from seaice_tasks.storage import InputStore
item = RemoteInput("ATL10", {ATL10_NAME!r}, dt.datetime(2019, 1, 25, 17, 18, 48, tzinfo=dt.UTC),
                   (RemoteFile({server.base + path!r}, {ATL10_NAME!r}),), "cmr")
fetch_inputs([item], InputStore({str(tmp_path / 'catalog')!r}, {{}}), work_parent={str(work)!r})
"""
    proc = subprocess.Popen([sys.executable, "-c", child], cwd=REPO)
    deadline = time.monotonic() + 60.0
    partial: list[Path] = []
    while not partial and time.monotonic() < deadline and proc.poll() is None:
        partial = [p for p in work.rglob("*.partial") if p.stat().st_size > 0] if work.exists() else []
    assert partial, "the child never started its download"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert partial[0].parent.exists()  # SIGKILL: no clean-up ran
    fetch_inputs([], InputStore(str(tmp_path / "catalog"), {}), work_parent=str(work))
    assert not partial[0].parent.exists()
    assert os.listdir(work) == []
