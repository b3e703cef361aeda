"""Network providers download into a catalog on S3 (the loopback moto server), atomically."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import fsspec

from seaice_tasks.catalog import run_discover
from seaice_tasks.config import DiscoverConfig
from seaice_tasks.products import INVENTORY
from seaice_tasks.storage import Lake, inputs_from_env
from tests.discovery_server import DiscoveryServer

DAY = dt.date(2019, 1, 25)
ATL10_NAME = "ATL10-02_20190125171848_04320201_005_02.h5"
SCENE = "20190125T161339_20190125T161342_T12CVC"


def test_cmr_and_stac_fetch_into_an_s3_catalog(s3_bucket: str, tmp_path: Path) -> None:
    catalog = f"s3://{s3_bucket}/raw"
    with DiscoveryServer() as server:
        bad = server.data_path(f"{SCENE}/B08.tif")
        server.corrupt.add(bad)
        cfg = DiscoverConfig(is2_source="cmr", s2_source="stac", cmr_url=server.cmr_url, stac_url=server.stac_url,
                             atl10_version="005", retry_backoff_s=0.0, download_retries=0)
        found = run_discover(DAY, catalog=catalog, lake=str(tmp_path / "lake"), config=cfg)
        served = server.file_bytes(server.data_path(ATL10_NAME))
    assert found["counts"] == {"ATL10": 1, "S2": 1}
    assert found["granules"]["ATL10"] == [f"{catalog}/ATL10/{ATL10_NAME}"]
    store = inputs_from_env(catalog)
    fs = fsspec.filesystem("s3", **(store.options_for(catalog) or {}))
    assert fs.cat_file(f"{s3_bucket}/raw/ATL10/{ATL10_NAME}") == served
    keys = [k.removeprefix(f"{s3_bucket}/raw/") for k in fs.find(f"{s3_bucket}/raw")]
    assert not any(k.startswith(f"S2/{SCENE}") for k in keys), keys  # the corrupt scene left no object at all
    assert not any(".partial" in k for k in keys), keys
    (skip,) = found["skipped"]
    assert skip["uri"] == f"{catalog}/S2/{SCENE}" and "checksum" in skip["reason"]
    assert Lake(tmp_path / "lake").require(INVENTORY.key(date=DAY)).info["catalog"] == catalog
