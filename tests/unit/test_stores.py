"""The two stores' options from the environment: endpoints, options JSON, no leaks between the stores.

The same separation end to end on a real S3-protocol server is ``tests/integration/test_stores.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

from seaice_tasks.errors import StorageError
from seaice_tasks.is2.resample import ResampleConfig
from seaice_tasks.spark_jobs import resample
from seaice_tasks.spark_jobs.runner import LocalBackend, Run
from seaice_tasks.storage import (
    CATALOG_ENV,
    LAKE_ENV,
    InputStore,
    Lake,
    inputs_from_env,
    lake_from_env,
    storage_options_from_env,
)
from seaice_tasks.work import Record, WorkContext

SHARED = "http://shared:9000"
LAKE_EP = "http://lake:9000"
CATALOG_EP = "http://catalog:9000"


def _endpoint(opts: dict[str, object]) -> object:
    return opts.get("client_kwargs", {}).get("endpoint_url")  # type: ignore[attr-defined]


@pytest.mark.parametrize("store", [LAKE_ENV, CATALOG_ENV])
def test_store_endpoint_wins_over_the_shared_one(store: str) -> None:
    env = {"SEAICE_S3_ENDPOINT_URL": SHARED, f"{store}_S3_ENDPOINT_URL": "http://own:9000"}
    assert _endpoint(storage_options_from_env("s3://b/p", env, store=store)) == "http://own:9000"
    del env[f"{store}_S3_ENDPOINT_URL"]
    assert _endpoint(storage_options_from_env("s3://b/p", env, store=store)) == SHARED  # the fallback
    env[f"{store}_S3_ENDPOINT_URL"] = ""  # empty is unset
    assert _endpoint(storage_options_from_env("s3://b/p", env, store=store)) == SHARED


def test_each_store_takes_its_own_endpoint_only() -> None:
    env = {"SEAICE_LAKE_S3_ENDPOINT_URL": LAKE_EP, "SEAICE_CATALOG_S3_ENDPOINT_URL": CATALOG_EP,
           "SEAICE_S3_ENDPOINT_URL": SHARED}
    assert _endpoint(storage_options_from_env("s3://b/lake", env)) == LAKE_EP
    assert _endpoint(storage_options_from_env("s3://b/raw", env, store=CATALOG_ENV)) == CATALOG_EP
    only_lake = {"SEAICE_LAKE_S3_ENDPOINT_URL": LAKE_EP}
    assert storage_options_from_env("s3://b/raw", only_lake, store=CATALOG_ENV) == {}
    only_catalog = {"SEAICE_CATALOG_S3_ENDPOINT_URL": CATALOG_EP}
    assert storage_options_from_env("s3://b/lake", only_catalog) == {}


def test_endpoint_is_for_s3_roots_only_and_options_endpoint_is_kept() -> None:
    env = {"SEAICE_CATALOG_S3_ENDPOINT_URL": CATALOG_EP, "SEAICE_S3_ENDPOINT_URL": SHARED}
    assert storage_options_from_env("/data/raw", env, store=CATALOG_ENV) == {}
    assert storage_options_from_env("gs://b/raw", env, store=CATALOG_ENV) == {}
    env["SEAICE_CATALOG_OPTIONS"] = '{"client_kwargs": {"endpoint_url": "http://explicit:1", "region_name": "x"}}'
    opts = storage_options_from_env("s3://b/raw", env, store=CATALOG_ENV)
    assert opts == {"client_kwargs": {"endpoint_url": "http://explicit:1", "region_name": "x"}}


def test_options_never_leak_between_the_stores() -> None:
    env = {"SEAICE_LAKE_OPTIONS": '{"key": "lake-key", "secret": "lake-secret"}',
           "SEAICE_CATALOG_OPTIONS": '{"key": "catalog-key", "secret": "catalog-secret"}'}
    assert storage_options_from_env("s3://b/lake", env) == {"key": "lake-key", "secret": "lake-secret"}
    assert storage_options_from_env("s3://b/raw", env, store=CATALOG_ENV) == \
        {"key": "catalog-key", "secret": "catalog-secret"}
    only_lake = {"SEAICE_LAKE_OPTIONS": env["SEAICE_LAKE_OPTIONS"], "SEAICE_LAKE_S3_ENDPOINT_URL": LAKE_EP}
    assert storage_options_from_env("s3://b/raw", only_lake, store=CATALOG_ENV) == {}
    assert inputs_from_env("s3://b/raw", only_lake).storage_options == {}
    only_catalog = {"SEAICE_CATALOG_OPTIONS": env["SEAICE_CATALOG_OPTIONS"],
                    "SEAICE_CATALOG_S3_ENDPOINT_URL": CATALOG_EP}
    assert storage_options_from_env("s3://b/lake", only_catalog) == {}
    assert lake_from_env("s3://b/lake", only_catalog).storage_options == {}


def test_bad_catalog_options_are_a_storage_error_naming_the_variable() -> None:
    with pytest.raises(StorageError, match="SEAICE_CATALOG_OPTIONS is not valid JSON"):
        storage_options_from_env("s3://b/raw", {"SEAICE_CATALOG_OPTIONS": "{nope"}, store=CATALOG_ENV)
    with pytest.raises(StorageError, match="SEAICE_CATALOG_OPTIONS must be a JSON object"):
        inputs_from_env("s3://b/raw", {"SEAICE_CATALOG_OPTIONS": '["key"]'})
    # a broken variable of one store does not break the other
    assert storage_options_from_env("s3://b/lake", {"SEAICE_CATALOG_OPTIONS": "{nope"}) == {}
    assert inputs_from_env("s3://b/raw", {"SEAICE_LAKE_OPTIONS": "{nope"}).storage_options == {}
    with pytest.raises(StorageError, match="SEAICE_LAKE_OPTIONS"):
        lake_from_env("s3://b/lake", {"SEAICE_LAKE_OPTIONS": "{nope"})


def test_inputs_from_env_root_and_options() -> None:
    env = {"SEAICE_CATALOG": "s3://raw/catalog", "SEAICE_CATALOG_OPTIONS": '{"anon": true}',
           "SEAICE_CATALOG_S3_ENDPOINT_URL": CATALOG_EP, "SEAICE_LAKE": "s3://out/lake"}
    store = inputs_from_env(env=env)
    assert store.root == "s3://raw/catalog"
    assert store.storage_options == {"anon": True, "client_kwargs": {"endpoint_url": CATALOG_EP}}
    assert inputs_from_env("/local/catalog", env).options_for("/local/catalog/x.h5") is None
    # explicit remote inputs without a catalog root still get the catalog's endpoint
    assert _endpoint(dict(inputs_from_env(env={"SEAICE_CATALOG_S3_ENDPOINT_URL": CATALOG_EP}).storage_options)) \
        == CATALOG_EP
    assert lake_from_env(env=env).storage_options == {}  # the catalog's options are not the lake's


def test_options_for_returns_a_copy() -> None:
    store = InputStore("s3://raw", {"anon": True})
    opts = store.options_for("s3://raw/a.h5")
    assert opts == {"anon": True}
    opts["anon"] = False
    assert store.options_for("s3://raw/a.h5") == {"anon": True}
    assert store.options_for("file:///data/a.h5") is None


def probe_stores(rec: Record, ctx: WorkContext[ResampleConfig]) -> dict[str, Any]:
    """A work function reporting the stores it was handed."""
    return {"lake": [ctx.lake.root, ctx.lake.storage_options],
            "inputs": [ctx.inputs.root, ctx.inputs.options_for(str(rec["uri"]))]}


def test_work_functions_get_each_store_its_own_options(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """What a work function is handed (rebuilt from the run spec, as on an executor)."""
    lake = Lake(tmp_path / "lake", {"key": "lake-key"})
    inputs = InputStore("s3://raw/catalog", {"key": "catalog-key"})
    run = Run(resample.JOB, ResampleConfig(), lake, inputs, LocalBackend(), token="t0")
    [result] = run.map(probe_stores, [{"uri": "s3://raw/catalog/a.h5"}])
    assert result.ok, result.error
    assert result.rows == [{"lake": [str(tmp_path / "lake"), {"key": "lake-key"}],
                            "inputs": ["s3://raw/catalog", {"key": "catalog-key"}]}]
