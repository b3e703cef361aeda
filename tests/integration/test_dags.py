"""DAG integrity, import weight, and a real `dag.test()` run of seaice_daily on SQLite."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

from seaice_tasks.orchestration import airflow_env, dags_folder, write_pools_file
from seaice_tasks.products import (
    FREEBOARD,
    INVENTORY,
    PRODUCTS,
    RESAMPLE_REPORT,
    S2_LABELS,
    S2_PAIRS,
    S2_UNET_LABELS,
    SEGMENTS_2M,
    SEGMENTS_CLASSIFIED,
    SEGMENTS_LABELLED,
    VALIDATION,
    VALIDATION_DAY,
    VALIDATION_FILE,
)
from seaice_tasks.storage import Lake

pytestmark = pytest.mark.integration

HEAVY_MODULES = ("numpy", "pandas", "pyarrow", "h5py", "rasterio", "geopandas", "torch", "pyspark",
                 "seaice_tasks.storage", "seaice_tasks.catalog")
AIRFLOW_TIMEOUT_S = 300


def _python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True,
                          text=True, timeout=AIRFLOW_TIMEOUT_S)


@pytest.fixture(scope="module")
def af_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("airflow")
    env = airflow_env(home)
    airflow = str(Path(sys.executable).with_name("airflow"))
    proc = subprocess.run([airflow, "db", "migrate"], env=env, capture_output=True, text=True,
                          timeout=AIRFLOW_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the DAGs' pools, as docs/operations.md sets them up
    proc = subprocess.run([airflow, "pools", "import", str(write_pools_file(home / "pools.json"))], env=env,
                          capture_output=True, text=True, timeout=AIRFLOW_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return env


def test_dagbag_has_no_import_errors_and_sane_defaults(af_env: dict[str, str]) -> None:
    proc = _python(
        f"""
        import json
        from airflow.dag_processing.dagbag import DagBag
        bag = DagBag(dag_folder={str(dags_folder())!r})
        out = {{"errors": {{k: str(v) for k, v in bag.import_errors.items()}}, "dags": {{}}}}
        for dag_id, dag in bag.dags.items():
            out["dags"][dag_id] = {{
                "tags": sorted(dag.tags), "catchup": dag.catchup,
                "tz": str(dag.start_date.tzinfo),
                "schedule": [type(dag.timetable).__name__, getattr(dag.timetable, "expression", None),
                             str(getattr(dag.timetable, "timezone", None))],
                "pools": {{t.task_id: t.pool for t in dag.tasks}},
                "queues": {{t.task_id: t.queue for t in dag.tasks}},
                "retries": [t.retries for t in dag.tasks], "tasks": sorted(dag.task_ids),
                "limits": {{t.task_id: [t.retries, t.retry_exponential_backoff, t.retry_delay.total_seconds(),
                                        t.max_retry_delay.total_seconds() if t.max_retry_delay else None,
                                        t.execution_timeout.total_seconds() if t.execution_timeout else None]
                            for t in dag.tasks}},
                "nullable": sorted(k for k, p in dag.params.items() if "null" in (p.schema.get("type") or [])),
                "doc": bool(dag.doc_md),
                "rules": {{t.task_id: [getattr(t.trigger_rule, "value", ""), t.max_active_tis_per_dag]
                           for t in dag.tasks if getattr(t.trigger_rule, "value", "") != "all_success"
                           or t.max_active_tis_per_dag is not None}},
                "upstream": {{t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks}},
                "outlets": {{t.task_id: [getattr(o, "name", str(o)) for o in t.outlets] for t in dag.tasks}},
            }}
            if dag_id == "seaice_daily":  # the 2 m stage's --process per run type and reprocess param
                from types import SimpleNamespace
                args = dag.get_task("resample_2m").application_args
                template = dag.get_template_env().from_string(args[args.index("--process") + 1])
                out["dags"][dag_id]["process"] = {{
                    f"{{run_type}}/{{reprocess}}": template.render(params={{"reprocess": reprocess}},
                                                               dag_run=SimpleNamespace(run_type=run_type))
                    for run_type in ("scheduled", "manual", "backfill") for reprocess in (False, True)}}
        print("JSON" + json.dumps(out))
        """,
        af_env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.split("JSON", 1)[1])
    assert out["errors"] == {}
    daily = out["dags"]["seaice_daily"]
    assert daily["catchup"] is True and daily["tz"] == "UTC"
    assert daily["schedule"] == ["CronDataIntervalTimetable", "0 0 * * *", "UTC"]
    assert "seaice" in daily["tags"] and daily["doc"]
    assert all(r >= 1 for r in daily["retries"])
    assert daily["tasks"] == ["classify", "classify_model", "colocate", "discover", "freeboard", "publish",
                              "resample_2m", "s2_labels", "training_set", "validate"]
    assert daily["upstream"] == {"discover": [], "resample_2m": ["discover"], "s2_labels": ["discover"],
                                 "colocate": ["resample_2m", "s2_labels"], "training_set": ["colocate"],
                                 "classify_model": [], "classify": ["classify_model", "resample_2m"],
                                 "freeboard": ["classify"], "validate": ["freeboard"],
                                 "publish": ["colocate", "validate"]}
    spark_jobs = {"resample_2m", "s2_labels", "colocate", "classify", "freeboard", "validate"}
    assert daily["pools"] == {t: "spark" if t in spark_jobs else "default_pool" for t in daily["tasks"]}
    # retries twice, back-off doubling from 5 min up to 1 h; Spark jobs killed after 3 h, the rest after 30 min
    assert daily["limits"] == {t: [2, True, 300.0, 3600.0, 10800.0 if t in spark_jobs else 1800.0]
                               for t in daily["tasks"]}
    # the UI's forms send null for an empty text field: every optional text param takes it
    assert daily["nullable"] == ["catalog", "corrections", "date", "drift_overrides", "lake", "s2_unet_model"]
    assert daily["outlets"] == {"discover": ["seaice_inventory"], "resample_2m": ["seaice_segments_2m"],
                                "s2_labels": ["seaice_s2_labels"],
                                "colocate": ["seaice_s2_pairs", "seaice_segments_labelled"],
                                "training_set": ["seaice_training_set"], "classify_model": [],
                                "classify": ["seaice_segments_classified"], "freeboard": ["seaice_freeboard"],
                                "validate": ["seaice_validation", "seaice_validation_day"],
                                "publish": ["seaice_daily_summary"]}
    # every outlet but the training set's names a product of the registry
    assert {a.removeprefix("seaice_") for o in daily["outlets"].values() for a in o} - {"training_set"} <= set(PRODUCTS)
    # publish runs after skipped stages (no model yet), not after failed ones, one at a time
    assert daily["rules"] == {"publish": ["none_failed_min_one_success", 1]}
    # scheduled and manual runs (and their retries) read only new granules; backfills and reprocess redo all
    assert daily["process"] == {"scheduled/False": "new", "manual/False": "new", "backfill/False": "all",
                                "scheduled/True": "all", "manual/True": "all", "backfill/True": "all"}
    training = out["dags"]["seaice_training"]
    assert training["schedule"][0] == "AssetTriggeredTimetable" and training["catchup"] is False
    assert training["tasks"] == ["evaluate", "promote", "train"]
    assert training["upstream"] == {"train": [], "evaluate": ["train"], "promote": ["evaluate"]}
    assert training["pools"]["train"] == "dgx" and training["queues"]["train"] == "gpu"
    assert training["outlets"]["promote"] == ["seaice_model"]
    assert all(r >= 1 for r in training["retries"])


@pytest.mark.parametrize("dag_file", sorted(p.name for p in dags_folder().glob("*.py")))
def test_dag_files_import_no_heavy_modules(af_env: dict[str, str], dag_file: str) -> None:
    proc = _python(
        f"""
        import sys, runpy
        import airflow.sdk, pendulum  # the authoring surface itself is allowed
        before = set(sys.modules)
        runpy.run_path({str(dags_folder() / dag_file)!r})
        added = set(sys.modules) - before
        heavy = sorted(m for m in added if m.split('.')[0] in {HEAVY_MODULES!r} or m in {HEAVY_MODULES!r})
        print("HEAVY=" + ",".join(heavy))
        """,
        af_env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "HEAVY="


def _dag_test(env: dict[str, str], day: dt.date, conf: dict[str, object] | None = None,  # type: ignore[type-arg]
              dag_module: str = "seaice_daily") -> dict:
    proc = _python(
        f"""
        import datetime as dt, json, sys
        sys.path.insert(0, {str(dags_folder())!r})
        import {dag_module} as module
        run = module.DAG.test(logical_date=dt.datetime({day.year}, {day.month}, {day.day},
                                                       tzinfo=dt.timezone.utc), run_conf={conf or {}!r})
        states = {{ti.task_id: str(ti.state) for ti in run.get_task_instances()}}
        print("JSON" + json.dumps({{"run": str(run.state), "tis": states}}))
        """,
        env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out: dict = json.loads(proc.stdout.split("JSON", 1)[1].splitlines()[0])  # type: ignore[type-arg]
    assert out["run"] == "success", proc.stdout[-5000:]
    return out


@pytest.fixture(scope="module")
def warm_lake(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A lake holding only a promoted model (trained on a small synthetic training set), copied by each run."""
    from seaice_tasks.train.promotion import promote
    from seaice_tasks.train.segments import SegmentTrainConfig, train_segment_model
    from tests.training_data import commit_learnable_training_set

    lake_dir = tmp_path_factory.mktemp("warm") / "lake"
    commit_learnable_training_set(Lake(lake_dir), n_bins=600, name="warmup")
    warm = train_segment_model(Lake(lake_dir), SegmentTrainConfig(training_set="warmup", epochs=1))
    promote(Lake(lake_dir), "seaice-is2-lstm", warm["version"])
    return {"lake": lake_dir, "version": warm["version"], "local_files": {}}


#: Products whose files hold input or lake URIs (inventory rows, reports), so they differ between stores.
URI_BEARING = frozenset({"inventory", "resample_report", "s2_labels_report", "colocate_report", "classify_report",
                         "freeboard_report", "validate_report", "daily_summary"})
SIM_DAY = dt.date(2019, 11, 4)


def _day_files(lake: Lake) -> dict[str, list[tuple[str, str]]]:
    """(name, sha256) of every committed file of the day's data products, by partition."""
    out: dict[str, list[tuple[str, str]]] = {}
    for product in PRODUCTS.values():
        if product.name in URI_BEARING:
            continue
        for key in lake.partitions(product.name, SIM_DAY) if "date" in product.shape.fields else []:
            out[key.relpath] = sorted((f.name, f.sha256) for f in lake.require(key).files)
    return out


def test_seaice_daily_on_a_simulated_day(af_env: dict[str, str], tmp_path: Path, small_sim_day,  # type: ignore[no-untyped-def]
                                         tiny_unet_model: Path, warm_lake: dict[str, Any]) -> None:
    """discover + resample_2m + s2_labels (spark-submit through SparkSubmitOperator, local[*]), with a U-Net."""

    lake_dir = tmp_path / "lake"
    shutil.copytree(warm_lake["lake"], lake_dir)
    env = dict(af_env, SEAICE_LAKE=str(lake_dir), SEAICE_CATALOG=str(small_sim_day.catalog))
    conf = {"resample": {"max_photons_per_chunk": 50_000}, "s2_unet_model": str(tiny_unet_model)}
    out = _dag_test(env, dt.date(2019, 11, 4), conf)
    warm = {"version": warm_lake["version"]}
    assert out["tis"] == {"discover": "success", "resample_2m": "success", "s2_labels": "success",
                          "colocate": "success", "training_set": out["tis"]["training_set"],
                          "classify_model": "success", "classify": "success", "freeboard": "success",
                          "validate": "success", "publish": "success"}
    assert out["tis"]["training_set"] in ("success", "skipped")  # a 5 km scene may give no training window
    lake = Lake(lake_dir)
    pairs = lake.read_table(S2_PAIRS.key(date=dt.date(2019, 11, 4))).to_pandas()
    assert len(pairs) >= 1 and set(pairs["granule"]) == {k.granule for k in lake.partitions(SEGMENTS_2M.name)}
    assert len(lake.partitions(SEGMENTS_LABELLED.name)) >= 1
    inventory = lake.require(INVENTORY.key(date=dt.date(2019, 11, 4)))
    assert inventory.info["counts"] == {"ATL03": 1, "ATL07": 1, "ATL10": 1, "S2": 1}
    segments = lake.partitions(SEGMENTS_2M.name, dt.date(2019, 11, 4))
    assert sorted(k.beam for k in segments) == ["gt1r", "gt2r", "gt3r"]  # strong beams, sc_orient 1
    assert all(lake.require(k).rows > 5000 for k in segments)  # 20 km of 2 m bins, minus gaps
    assert lake.require(RESAMPLE_REPORT.key(date=dt.date(2019, 11, 4))).info["skipped"] == []
    labels = lake.partitions(S2_LABELS.name, dt.date(2019, 11, 4))
    assert len(labels) == 1 and lake.require(labels[0]).info["class_fractions"]["thick_ice"] > 0.5
    unet = lake.partitions(S2_UNET_LABELS.name, dt.date(2019, 11, 4))
    assert [k.scene for k in unet] == [labels[0].scene]
    assert lake.require(unet[0]).info["model"]["weights_sha256"]
    classified = lake.partitions(SEGMENTS_CLASSIFIED.name, dt.date(2019, 11, 4))
    assert [(k.granule, k.beam) for k in classified] == [(k.granule, k.beam) for k in segments]
    assert all(lake.require(k).info["model"]["version"] == warm["version"] for k in classified)
    freeboard = lake.partitions(FREEBOARD.name, dt.date(2019, 11, 4))
    assert [(k.granule, k.beam) for k in freeboard] == [(k.granule, k.beam) for k in segments]
    validation = lake.partitions(VALIDATION.name, dt.date(2019, 11, 4))
    assert [(k.granule, k.beam) for k in validation] == [(k.granule, k.beam) for k in segments]
    day_report = lake.require(VALIDATION_DAY.key(date=dt.date(2019, 11, 4)))
    assert day_report.info["tracks"] == 3 and day_report.info["failed"] == []
    # the simulated ATL07/ATL10 of the granule were found in the inventory and compared
    doc = json.loads(lake.open_file(validation[0], VALIDATION_FILE))
    assert "no_atl07" not in doc["flags"] and doc["resolution"]["atl10_per_km"] > 0
    # every task left its wall clock for publish: the run's timings beside the summary
    timings = json.loads(lake.read_document(f"run_timings/{SIM_DAY.isoformat()}.json") or b"{}")["tasks"]
    assert all(timings[t] > 0 for t in ("discover", "resample_2m", "s2_labels", "colocate", "classify",
                                         "freeboard", "validate")), timings
    warm_lake["local_files"].update(_day_files(lake))


def test_seaice_daily_whole_day_on_s3(af_env: dict[str, str], small_sim_day, tiny_unet_model: Path,  # type: ignore[no-untyped-def]
                                      warm_lake: dict[str, Any], s3_server: dict[str, str]) -> None:
    """The same day with the catalog and the lake on the loopback S3 server: every product byte-identical.

    The Spark executors read the granules and scenes from S3 and write the lake there; the
    classify task loads the promoted model from the S3 lake.
    """
    import boto3
    import fsspec

    if not warm_lake["local_files"]:
        pytest.skip("needs test_seaice_daily_on_a_simulated_day's local run first (same module)")
    client = boto3.client("s3", endpoint_url=s3_server["SEAICE_S3_ENDPOINT_URL"],
                          region_name=s3_server["AWS_DEFAULT_REGION"],
                          aws_access_key_id=s3_server["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=s3_server["AWS_SECRET_ACCESS_KEY"])
    bucket = f"seaice-day-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    catalog = Path(small_sim_day.catalog)
    for f in sorted(p for p in catalog.rglob("*") if p.is_file()):
        client.upload_file(str(f), bucket, f"catalog/{f.relative_to(catalog).as_posix()}")
    for f in sorted(p for p in Path(warm_lake["lake"]).rglob("*") if p.is_file()):  # the promoted model
        client.upload_file(str(f), bucket, f"lake/{f.relative_to(warm_lake['lake']).as_posix()}")
    env = dict(af_env, **s3_server, SEAICE_LAKE=f"s3://{bucket}/lake", SEAICE_CATALOG=f"s3://{bucket}/catalog")
    conf = {"resample": {"max_photons_per_chunk": 50_000}, "s2_unet_model": str(tiny_unet_model)}
    out = _dag_test(env, SIM_DAY, conf)
    assert {t for t, state in out["tis"].items() if state != "success"} <= {"training_set"}
    opts = {"client_kwargs": {"endpoint_url": s3_server["SEAICE_S3_ENDPOINT_URL"]},
            "key": s3_server["AWS_ACCESS_KEY_ID"], "secret": s3_server["AWS_SECRET_ACCESS_KEY"]}
    lake = Lake(f"s3://{bucket}/lake", opts)
    inventory = lake.require(INVENTORY.key(date=SIM_DAY))
    assert inventory.info["counts"] == {"ATL03": 1, "ATL07": 1, "ATL10": 1, "S2": 1}
    uris = lake.read_table(inventory.key).column("uri").to_pylist()
    assert all(u.startswith(f"s3://{bucket}/catalog/") for u in uris), uris
    on_s3 = _day_files(lake)
    compared = {k.split("/", 1)[0] for k in on_s3}
    assert {"segments_2m", "s2_labels", "s2_unet_labels", "s2_pairs", "segments_labelled", "segments_classified",
            "freeboard", "validation", "validation_day"} <= compared, compared
    assert sorted(on_s3) == sorted(warm_lake["local_files"])
    different = [k for k in on_s3 if on_s3[k] != warm_lake["local_files"][k]]
    assert different == [], different
    assert fsspec.filesystem("s3", **opts).exists(f"{bucket}/lake/catalog.json")  # the STAC root, on S3 too


def test_seaice_daily_on_real_files(af_env: dict[str, str], tmp_path: Path, realdata: Path) -> None:
    """A day with only a real ATL07 granule: inventory committed, then the day is skipped (no Spark start)."""
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    name = "processed_ATL07-01_20190226002919_09100201_003_02.h5"
    (catalog / name).symlink_to(realdata / "icesat2" / f"icepyx_{name}")
    lake_dir = tmp_path / "lake"
    env = dict(af_env, SEAICE_LAKE=str(lake_dir), SEAICE_CATALOG=str(catalog))
    out = _dag_test(env, dt.date(2019, 2, 26))
    # discover commits the inventory, then skips: nothing downstream runs
    assert out["tis"] == {task: "skipped" for task in ("discover", "resample_2m", "s2_labels", "colocate",
                                                       "training_set", "classify_model", "classify",
                                                       "freeboard", "validate", "publish")}
    manifest = Lake(lake_dir).require(INVENTORY.key(date=dt.date(2019, 2, 26)))
    assert manifest.info["counts"] == {"ATL07": 1}
    assert manifest.info["catalog"] == str(catalog)
    assert Lake(lake_dir).partitions(SEGMENTS_2M.name) == []


def test_seaice_daily_discovers_through_cmr_with_an_airflow_connection(af_env: dict[str, str], tmp_path: Path) -> None:
    """The same real ATL07 day found through CMR (recorded, on 127.0.0.1) and downloaded into the catalog.

    The Earthdata token comes from the Airflow connection ``earthdata_default`` and reaches the
    data host, never the task log.
    """
    from tests.discovery_server import DiscoveryServer, requests_to

    token = "edl-from-an-airflow-connection"
    catalog, lake_dir = tmp_path / "catalog", tmp_path / "lake"
    catalog.mkdir()
    day = dt.date(2019, 2, 26)
    with DiscoveryServer() as server:
        env = dict(af_env, SEAICE_LAKE=str(lake_dir), SEAICE_CATALOG=str(catalog),
                   AIRFLOW_CONN_EARTHDATA_DEFAULT=json.dumps({"conn_type": "http", "password": token}))
        conf = {"discover": {"is2_source": "cmr", "cmr_url": server.cmr_url, "atl07_version": "003",
                             "products": ["ATL07"], "earthdata_hosts": ["127.0.0.1"]}}
        out = _dag_test(env, day, conf)
        downloads = [r for r in requests_to(server, "/data/ATL07/") if r.method == "GET"]
    assert out["tis"]["discover"] == "skipped"  # an ATL07-only day: inventory, then nothing to process
    assert downloads and all(r.headers.get("Authorization") == f"Bearer {token}" for r in downloads)
    name = "ATL07-01_20190226002919_09100201_003_02.h5"
    assert (catalog / "ATL07" / name).stat().st_size > 0
    manifest = Lake(lake_dir).require(INVENTORY.key(date=day))
    assert manifest.info["counts"] == {"ATL07": 1}
    assert token not in json.dumps(manifest.info)


def test_seaice_training_trains_evaluates_and_promotes(af_env: dict[str, str], tmp_path: Path) -> None:
    """dag.test() of the training DAG on a small training set: a model committed, re-scored, promoted."""
    from seaice_tasks.models.lake import model_card, promoted_version
    from tests.training_data import commit_learnable_training_set

    lake_dir = tmp_path / "lake"
    commit_learnable_training_set(Lake(lake_dir), n_bins=1200)
    env = dict(af_env, SEAICE_LAKE=str(lake_dir))
    out = _dag_test(env, dt.date(2024, 1, 2), {"epochs": 1, "preset": "paper"}, dag_module="seaice_training")
    assert out["tis"] == {"train": "success", "evaluate": "success", "promote": "success"}
    lake = Lake(lake_dir)
    version = promoted_version(lake, "seaice-is2-lstm")
    assert version is not None
    card = model_card(lake, "seaice-is2-lstm", version)
    assert card["architecture"]["preset"] == "paper" and card["metrics"]["run"]["epochs"] == 1
