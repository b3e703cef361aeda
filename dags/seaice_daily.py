"""
### seaice_daily

One UTC day of sea-ice processing:

1. `discover` finds the day's ICESat-2 granules and Sentinel-2 scenes in the catalog and commits
   `inventory/date=<day>`;
2. `resample_2m` (Spark, `SparkSubmitOperator`, connection `spark_default`, `local[*]` by
   default) turns the day's ATL03 granules into 2 m segment partitions
   `segments_2m/date=<day>/granule=<g>/beam=<b>` and a `resample_report` of skipped granules;
   scheduled and manual runs (and retries) read only the granules whose tracks are not yet
   committed from the same file, config and code (`--process new`); backfills and the
   `reprocess` param redo them all;
3. `s2_labels` (Spark, in parallel) filters thin cloud/shadow and colour-labels the day's
   Sentinel-2 scenes window by window into `s2_labels/date=<day>/scene=<scene>` (label COG,
   unusable-mask COG, quicklook) and an `s2_labels_report`; with the `s2_unet_model` param it
   also writes U-Net label partitions `s2_unet_labels/date=<day>/scene=<scene>`.

4. `colocate` (Spark, after both) pairs every 2 m track with the Sentinel-2 scenes it crosses
   within 80 min, estimates each scene's drift shift, transfers the labels to the 2 m segments
   and commits `s2_pairs/date=<day>`, `segments_labelled/date=<day>/granule=<g>/beam=<b>/scene=<s>`
   and a `colocate_report` (params `colocate`, `corrections`, `drift_overrides`);
5. `training_set` builds an immutable, versioned training set of the day's labelled segments
   (`training_set/name=<n>/version=<v>`, param `training_set`) and updates the Asset
   `seaice_training_set` that the training DAG is scheduled on; a day without labelled windows
   skips it.

6. `classify_model` resolves the model that classifies the day (param `classify`: model name,
   empty version = the promoted one) and skips, recorded in Airflow, when none is promoted yet:
   the day still ends green; `classify` (Spark, after `resample_2m`) then classifies every 2 m
   segment into `segments_classified/date=<day>/granule=<g>/beam=<b>` (class, probabilities,
   window flag, raw values) and a `classify_report`.

7. `freeboard` (Spark, after `classify`) estimates each track's local sea surface from its open
   water (four estimators, the ATL10 lead equation by default), freeboard, snow depth and
   thickness with uncertainties into `freeboard/date=<day>/granule=<g>/beam=<b>` (param
   `freeboard`: FreeboardConfig) and a `freeboard_report`;
8. `validate` (Spark) compares every track with NASA's ATL07/ATL10 of its pass from the
   inventory and commits `validation/date=<day>/granule=<g>/beam=<b>` (figures, quicklook PNG),
   `validation_day/date=<day>` (JSON, Markdown, freeboard histograms) and a `validate_report`
   (param `validate`).  Both are skipped with `classify` while no model is promoted.

9. `publish` (after `colocate` and `validate`; runs when they succeeded or were skipped, one
   at a time across runs) commits `daily_summary/date=<day>` (JSON and Markdown) and writes the
   day's STAC items, sub-collections, product collections and the root `catalog.json` of the
   lake (param `publish`: PublishConfig).

* Pools and limits: the six Spark tasks run in pool `spark` (create it: `airflow pools set spark 2
  "Spark jobs"`; its slots bound the concurrent spark-submits of all runs); every task retries
  twice with exponential back-off from `$SEAICE_RETRY_DELAY_S` (default 300 s, at most 1 h) and is
  killed after its execution timeout (Spark jobs 3 h, other tasks 30 min).

* A day without any ATL03 granule or Sentinel-2 scene ends after `discover` (inventory committed,
  the rest skipped): an empty day costs no Spark start.
* Schedule: daily from `$SEAICE_START_DATE` (default 2018-10-13, the first ATL03 science data); the
  run with logical date D starts at D+1 00:00 UTC and processes day D; `catchup` is on (off with
  `SEAICE_CATCHUP=false`, then unpausing schedules only the latest day), so a scheduler started
  late catches up.  `airflow backfill create --dag-id seaice_daily --from-date ... --to-date ...`
  (or the UI's backfill dialog) fills any range either way.
* Params: `catalog` (folder/URL of raw inputs, default `$SEAICE_CATALOG`), `lake` (storage
  root, default `$SEAICE_LAKE`), `date` (override the logical date, `YYYY-MM-DD`), `reprocess`
  (redo every granule of the day in a scheduled or manual run), `resample` (ResampleConfig as
  a JSON object; `max_photons_per_chunk` sets the photons per Spark work item), `s2_labels`
  (S2LabelConfig as a JSON object), `s2_unet_model` (a trained U-Net folder; empty: colour
  labels only), `publish` (PublishConfig as a JSON object).
* Every task is a thin call into the `seaice_tasks` package; heavy imports live in task bodies.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pendulum
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import Asset, CronDataIntervalTimetable, Param, dag, task

#: First retry delay (s); doubled on every further try (exponential back-off).  ``$SEAICE_RETRY_DELAY_S``
#: of the dag-processor overrides it (the integration tests retry after a few seconds).
RETRY_DELAY_S = float(os.environ.get("SEAICE_RETRY_DELAY_S") or 300)
#: Longest a Spark job of one day may run before Airflow kills it and retries.
SPARK_TIMEOUT = dt.timedelta(hours=3)
#: Longest a small Python task (discover, model lookup, training set) may run.
TASK_TIMEOUT = dt.timedelta(minutes=30)
#: Pool of the Spark job tasks: its slots bound the concurrent spark-submits of all runs.
SPARK_POOL = "spark"
#: The tasks before publish whose durations the run's timings list (a skipped task has none).
STAGE_TASKS = ("discover", "resample_2m", "s2_labels", "colocate", "training_set", "classify_model", "classify",
               "freeboard", "validate")
#: XCom key under which every task leaves its wall-clock seconds for the publish task.
DURATION_XCOM = "seaice_duration_s"


def _record_duration(context: Any, result: Any = None) -> None:
    """post_execute hook of every task: push its wall-clock seconds (this try) to XCom."""
    ti = context["ti"]
    start = getattr(ti, "start_date", None)
    if start is not None:
        ti.xcom_push(key=DURATION_XCOM, value=round((pendulum.now("UTC") - start).total_seconds(), 3))


DEFAULT_ARGS: dict[str, Any] = {
    "owner": "seaice",
    "retries": 2,
    "retry_delay": dt.timedelta(seconds=RETRY_DELAY_S),
    "retry_exponential_backoff": True,
    "max_retry_delay": dt.timedelta(hours=1),
    "execution_timeout": TASK_TIMEOUT,
    "post_execute": _record_duration,
}
DAY = "{{ params.date or ds }}"
#: ``--process`` of the 2 m stage: a backfill (or the ``reprocess`` param) redoes every granule of the
#: day; scheduled and manual runs, and every retry, read only the granules without current tracks.
PROCESS = "{{ 'all' if params.reprocess or dag_run.run_type == 'backfill' else 'new' }}"
#: JSON-schema type of an optional text param: the UI's trigger and backfill forms send null for an
#: empty field, which a plain ``"string"`` rejects (the form cannot be submitted).
OPTIONAL_STRING = ["null", "string"]
#: Input kinds the Spark stages process: a day with none of them is skipped after `discover`.
PROCESSED_KINDS = ("ATL03", "S2")
#: First day of the schedule (``$SEAICE_START_DATE``, default the first ATL03 science data) and
#: whether unpausing catches up every day since (``$SEAICE_CATCHUP``, default on).
START_DATE = pendulum.parse(os.environ.get("SEAICE_START_DATE") or "2018-10-13", tz="UTC")
CATCHUP = (os.environ.get("SEAICE_CATCHUP") or "true").strip().lower() not in ("0", "false", "no", "off")
#: Updated whenever a new training set version is committed (the training DAG's schedule).
TRAINING_SET_ASSET = Asset(name="seaice_training_set", uri="seaice://lake/training_set")
#: Lake products (docs/products.md) each task commits: its outlets, one Asset per product, updated
#: when the task succeeds (the UI's Assets view shows which run last wrote each).
TASK_PRODUCTS: dict[str, tuple[str, ...]] = {
    "discover": ("inventory",),
    "resample_2m": ("segments_2m",),
    "s2_labels": ("s2_labels",),
    "colocate": ("s2_pairs", "segments_labelled"),
    "classify": ("segments_classified",),
    "freeboard": ("freeboard",),
    "validate": ("validation", "validation_day"),
    "publish": ("daily_summary",),
}


def _assets(task_id: str) -> list[Asset]:
    """The outlets of one task: ``seaice_<product>`` at ``seaice://lake/<product>``."""
    return [Asset(name=f"seaice_{p}", uri=f"seaice://lake/{p}") for p in TASK_PRODUCTS[task_id]]


def _spark_job(name: str) -> str:
    """Path of a Spark job script of the installed package (found without importing it)."""
    override = os.environ.get("SEAICE_SPARK_JOBS")
    if override:
        return str(Path(override) / name)
    spec = importlib.util.find_spec("seaice_tasks")
    assert spec is not None and spec.submodule_search_locations, "seaice_tasks is not installed"
    return str(Path(next(iter(spec.submodule_search_locations))) / "spark_jobs" / name)


def _spark_submit(task_id: str, job: str, config: str, *extra: str) -> SparkSubmitOperator:
    """The task running one job script through ``spark_default``: ``--date``, ``--lake``, ``--config`` (a
    template) and the job's own options; the driver and executors use this environment's Python."""
    return SparkSubmitOperator(
        task_id=task_id,
        conn_id="spark_default",
        application=_spark_job(f"{job}.py"),
        name=f"seaice-{job.replace('_', '-')}-{DAY}",
        application_args=["--date", DAY, "--lake", "{{ params.lake or '' }}", "--config", config, *extra],
        env_vars={"PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable},
        pool=SPARK_POOL,
        execution_timeout=SPARK_TIMEOUT,
        outlets=_assets(task_id),
    )


#: Airflow connections the discover task reads (if defined) for the network providers: Earthdata
#: Login (password = bearer token, or login + password) and a STAC API token (password).
EARTHDATA_CONN_ID = "earthdata_default"
STAC_CONN_ID = "seaice_stac"


@contextlib.contextmanager
def _connection_secrets() -> Iterator[None]:
    """Put the secrets of the providers' Airflow connections into this process's environment.

    seaice_tasks reads credentials from the environment only; the previous values come back
    afterwards.  A connection that is not defined is not an error (the catalog provider and
    public STAC APIs need none), and no secret is ever logged.
    """
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    wanted: dict[str, str] = {}
    try:
        conn = BaseHook.get_connection(EARTHDATA_CONN_ID)
        if conn.login:
            wanted.update({"EARTHDATA_USERNAME": conn.login, "EARTHDATA_PASSWORD": conn.password or ""})
        elif conn.password:
            wanted["EARTHDATA_TOKEN"] = conn.password
    except AirflowNotFoundException:
        pass
    try:
        stac = BaseHook.get_connection(STAC_CONN_ID)
        if stac.password:
            wanted["SEAICE_STAC_TOKEN"] = stac.password
    except AirflowNotFoundException:
        pass
    before = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@dag(
    dag_id="seaice_daily",
    doc_md=__doc__,
    # data-interval semantics: the run for day D starts after D ends and has logical date D.
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=START_DATE,
    catchup=CATCHUP,
    max_active_runs=2,
    default_args=DEFAULT_ARGS,
    tags=["seaice", "icesat2", "sentinel2"],
    params={
        "catalog": Param(None, type=OPTIONAL_STRING, description="raw input folder/URL; empty = $SEAICE_CATALOG"),
        "lake": Param(None, type=OPTIONAL_STRING, description="storage root; empty = $SEAICE_LAKE"),
        "date": Param(None, type=OPTIONAL_STRING, description="YYYY-MM-DD to process; empty = the logical date"),
        "reprocess": Param(False, type="boolean",
                           description="redo every granule of the day (backfills always do); off = only "
                                       "granules without current 2 m tracks"),
        "discover": Param({}, type="object",
                          description="DiscoverConfig fields (JSON; is2_source: catalog|cmr, s2_source: "
                                      "catalog|stac, bbox, max_cloud_cover, ...)"),
        "resample": Param({}, type="object",
                          description="ResampleConfig fields (JSON; max_photons_per_chunk: photons per work item)"),
        "s2_labels": Param({}, type="object", description="S2LabelConfig fields (JSON object)"),
        "colocate": Param({}, type="object", description="ColocateConfig fields (JSON; refine, drift_scope, ...)"),
        "corrections": Param(None, type=OPTIONAL_STRING,
                             description="manual label corrections table (CSV/Parquet URL); empty = none"),
        "drift_overrides": Param(None, type=OPTIONAL_STRING, description="manual drift shifts table (CSV/Parquet URL); "
                                                                "empty = none"),
        "training_set": Param({}, type="object", description="TrainingSetConfig fields (JSON; name, features, split)"),
        "classify": Param({}, type="object", description="ClassifyConfig fields (JSON; model, version: empty = "
                                                         "the promoted one)"),
        "freeboard": Param({}, type="object", description="FreeboardConfig fields (JSON; surface: {reference, "
                                                           "lead_fallback, smooth_rows, ...}, thickness: {snow, ...})"),
        "validate": Param({}, type="object", description="ValidateConfig fields (JSON; histogram_bins, quicklook, "
                                                         "zoom_m)"),
        "publish": Param({}, type="object", description="PublishConfig fields (JSON; license, title)"),
        "s2_unet_model": Param(None, type=OPTIONAL_STRING,
                               description="U-Net model folder (save_unet) visible to the Spark executors; "
                                           "empty = colour labels only"),
    },
    render_template_as_native_obj=False,
)
def seaice_daily() -> None:
    @task(outlets=_assets("discover"))
    def discover(ds: str | None = None, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Find the day's granules and scenes; commit `inventory/date=<day>`."""
        from airflow.sdk.exceptions import AirflowSkipException

        from seaice_tasks.catalog import run_discover

        p = params or {}
        with _connection_secrets():
            found = run_discover(p.get("date") or ds or "", catalog=p.get("catalog") or None,
                                 lake=p.get("lake") or None, config=p.get("discover") or {})
        if not any(found["counts"].get(kind) for kind in PROCESSED_KINDS):
            # the inventory is committed; the Spark stages would only start Spark to find nothing
            raise AirflowSkipException(f"no ATL03 granule or Sentinel-2 scene on {found['date']} "
                                       f"(inventory {found['inventory']}): nothing to process")
        return found

    resample_2m = _spark_submit("resample_2m", "resample", "{{ params.resample | tojson }}", "--process", PROCESS)

    s2_labels = _spark_submit("s2_labels", "s2_labels", "{{ params.s2_labels | tojson }}",
                              "--unet-model", "{{ params.s2_unet_model or '' }}")

    colocate = _spark_submit("colocate", "colocate", "{{ params.colocate | tojson }}",
                             "--corrections", "{{ params.corrections or '' }}",
                             "--drift-overrides", "{{ params.drift_overrides or '' }}")

    @task(outlets=[TRAINING_SET_ASSET])
    def training_set(ds: str | None = None, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The day's labelled segments -> a versioned training set (skipped when there is no window)."""
        from airflow.sdk.exceptions import AirflowSkipException

        from seaice_tasks.config import parse_day
        from seaice_tasks.is2.training_set import EmptyTrainingSetError, TrainingSetConfig, run_training_set
        from seaice_tasks.storage import lake_from_env

        p = params or {}
        day = parse_day(p.get("date") or ds or "")
        try:
            return run_training_set(lake_from_env(p.get("lake") or None), [day],
                                    TrainingSetConfig.from_dict(p.get("training_set") or {}))
        except EmptyTrainingSetError as exc:
            raise AirflowSkipException(str(exc)) from None

    @task
    def classify_model(params: dict[str, Any] | None = None) -> str:
        """The day's ClassifyConfig (JSON) with the model version pinned; skipped when none is promoted."""
        import dataclasses

        from airflow.sdk.exceptions import AirflowSkipException

        from seaice_tasks.is2.classify import ClassifyConfig
        from seaice_tasks.models.lake import model_card, promoted_version
        from seaice_tasks.storage import lake_from_env

        p = params or {}
        lake = lake_from_env(p.get("lake") or None)
        config = ClassifyConfig.from_dict(p.get("classify") or {})
        version = config.version or promoted_version(lake, config.model)
        if version is None:
            raise AirflowSkipException(f"no version of model {config.model} is promoted: the day's segments are not "
                                       "classified (run seaice_training first)")
        model_card(lake, config.model, version)  # the version must be committed
        return dataclasses.replace(config, version=version).to_json()

    classify = _spark_submit("classify", "classify", "{{ ti.xcom_pull(task_ids='classify_model') }}")

    freeboard = _spark_submit("freeboard", "freeboard", "{{ params.freeboard | tojson }}")

    validate = _spark_submit("validate", "validate", "{{ params.validate | tojson }}")

    # after the last stages; skipped ones (no promoted model) do not stop it, a failed one does
    @task(outlets=_assets("publish"), trigger_rule="none_failed_min_one_success", max_active_tis_per_dag=1)
    def publish(ds: str | None = None, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Commit `daily_summary/date=<day>` and publish the day's partitions to the lake's STAC catalog."""
        from airflow.sdk import get_current_context

        from seaice_tasks.publish import publish_day

        ti = get_current_context()["ti"]
        timings = {t: ti.xcom_pull(task_ids=t, key=DURATION_XCOM) for t in STAGE_TASKS}
        p = params or {}
        result = publish_day(p.get("date") or ds or "", lake=p.get("lake") or None, config=p.get("publish") or {},
                             timings=timings)
        return {k: v for k, v in result.items() if k != "summary"}

    found = discover()
    found >> [resample_2m, s2_labels] >> colocate >> training_set()
    [resample_2m, classify_model()] >> classify >> freeboard >> validate
    [colocate, validate] >> publish()


DAG = seaice_daily()
