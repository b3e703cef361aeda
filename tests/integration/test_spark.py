"""The Spark jobs under real spark-submit: local[2] and a standalone cluster on loopback."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from seaice_tasks.airflow_stack import SparkStandalone
from seaice_tasks.is2.resample import ResampleConfig
from seaice_tasks.products import S2_LABELS, S2_UNET_LABELS, SEGMENTS_2M
from seaice_tasks.spark_jobs import resample
from seaice_tasks.spark_jobs.runner import RESULT_MARKER, run_job
from seaice_tasks.storage import STAGING_DIR, Lake
from tests.servers import spark_env

pytestmark = pytest.mark.integration

SPARK_TIMEOUT_S = 300
CLUSTER_START_TIMEOUT_S = 60
JOB = Path(__file__).resolve().parents[2] / "seaice_tasks" / "spark_jobs" / "resample.py"
CHUNKED = ResampleConfig(max_photons_per_chunk=60_000)


@pytest.fixture(scope="module")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A standalone master + one worker started with pyspark's own ``spark-class``."""
    cluster = SparkStandalone(tmp_path_factory.mktemp("spark"), worker_cores=2, worker_memory="2g", app_cores=2)
    try:
        yield cluster.start().master_url
    finally:
        cluster.stop()


def _submit(master: str, granule: str, lake: Path) -> dict:  # type: ignore[type-arg]
    spark_submit = str(Path(sys.executable).with_name("spark-submit"))
    proc = subprocess.run(
        [spark_submit, "--master", master, "--conf", "spark.ui.enabled=false", str(JOB),
         "--granules", granule, "--lake", str(lake), "--config", CHUNKED.to_json()],
        env=spark_env(), capture_output=True, text=True, timeout=SPARK_TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith(RESULT_MARKER))
    return json.loads(line.removeprefix(RESULT_MARKER))  # type: ignore[no-any-return]


def _manifests(lake: Lake) -> dict[str, str]:
    return {k.relpath: lake.require(k).to_json() for k in lake.partitions(SEGMENTS_2M.name)}


@pytest.fixture(scope="module")
def reference(small_sim_day, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:  # type: ignore[no-untyped-def]
    lake = Lake(tmp_path_factory.mktemp("ref") / "lake")
    run_job(resample.JOB, [str(small_sim_day.atl03[0])], lake, CHUNKED)
    return _manifests(lake)


def test_spark_submit_local(small_sim_day, reference: dict[str, str], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "ATL03_20191104000000_00010510_006_01.h5"
    bad.write_bytes(b"not an HDF5 file")
    result = _submit("local[2]", f"{small_sim_day.atl03[0]},{bad}", tmp_path / "lake")
    assert result["failed"] == [] and len(result["partitions"]) == 3
    # planned on an executor, the unreadable granule is a recorded skip and the other goes on
    assert [s["uri"] for s in result["skipped"]] == [str(bad)]
    assert str(bad) in result["skipped"][0]["reason"]
    assert set(result["timings_s"]) == {"load", "map_reduce"}
    assert _manifests(Lake(tmp_path / "lake")) == reference  # same bytes as without Spark


def test_s2_labels_spark_submit_local(small_sim_day, tiny_unet_model: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import torch

    from seaice_tasks.s2.scene_labels import S2LabelConfig
    from seaice_tasks.spark_jobs import s2_labels

    model_dir = tiny_unet_model
    scene = str(small_sim_day.scenes[0])
    config = '{"window_px": 200}'
    spark_submit = str(Path(sys.executable).with_name("spark-submit"))
    proc = subprocess.run(
        [spark_submit, "--master", "local[2]", "--conf", "spark.ui.enabled=false", s2_labels.__file__,
         "--scenes", scene, "--lake", str(tmp_path / "spark"), "--config", config, "--unet-model", str(model_dir)],
        env=spark_env(), capture_output=True, text=True, timeout=SPARK_TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(next(x for x in proc.stdout.splitlines() if x.startswith(RESULT_MARKER))
                        .removeprefix(RESULT_MARKER))
    assert result["failed"] == [] and len(result["partitions"]) == 1 and len(result["unet_partitions"]) == 1
    local = Lake(tmp_path / "local")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the Spark workers, so the U-Net sums run in the same order
    try:
        run_job(s2_labels.JOB, [scene], local, S2LabelConfig.from_json(config), unet_model=str(model_dir))
    finally:
        torch.set_num_threads(threads)
    spark_lake = Lake(tmp_path / "spark")
    for stage in (S2_LABELS.name, S2_UNET_LABELS.name):  # same bytes as in-process, colour and U-Net labels
        key = spark_lake.partitions(stage)[0]
        assert spark_lake.require(key).to_json() == local.require(key).to_json()


def test_spark_standalone_cluster(spark_cluster: str, small_sim_day, reference: dict[str, str],  # type: ignore[no-untyped-def]
                                  tmp_path: Path) -> None:
    result = _submit(spark_cluster, str(small_sim_day.atl03[0]), tmp_path / "lake")
    assert result["failed"] == [] and len(result["partitions"]) == 3
    assert _manifests(Lake(tmp_path / "lake")) == reference


def test_spark_jobs_on_an_s3_lake(s3_bucket: str, small_sim_day, reference: dict[str, str],  # type: ignore[no-untyped-def]
                                  tmp_path: Path) -> None:
    """Both jobs under spark-submit with the granule, the scene and the lake on the local S3 server."""
    from seaice_tasks.storage import lake_from_env

    root = f"s3://{s3_bucket}/lake"
    lake = lake_from_env(root)
    granule = Path(small_sim_day.atl03[0])
    s3_granule = f"s3://{s3_bucket}/catalog/{granule.name}"
    lake.fs.put(str(granule), s3_granule)
    result = _submit("local[2]", s3_granule, root)  # type: ignore[arg-type]
    assert result["failed"] == [] and result["skipped"] == [] and len(result["partitions"]) == 3
    local = {k: json.loads(v) for k, v in reference.items()}
    on_s3 = {k.relpath: json.loads(lake.require(k).to_json()) for k in lake.partitions(SEGMENTS_2M.name)}
    assert sorted(on_s3) == sorted(local)
    for key, man in on_s3.items():  # the same part files, byte for byte
        assert [(f["name"], f["sha256"], f["rows"]) for f in man["files"]] == \
            [(f["name"], f["sha256"], f["rows"]) for f in local[key]["files"]]
    assert not lake.fs.exists(f"{s3_bucket}/lake/{STAGING_DIR}")  # nothing staged is left behind

    from seaice_tasks.spark_jobs import s2_labels

    scene_dir = Path(small_sim_day.scenes[0])
    s3_scene = f"s3://{s3_bucket}/catalog/{scene_dir.name}"
    lake.fs.put(str(scene_dir), s3_scene, recursive=True)
    spark_submit = str(Path(sys.executable).with_name("spark-submit"))
    proc = subprocess.run(
        [spark_submit, "--master", "local[2]", "--conf", "spark.ui.enabled=false", s2_labels.__file__,
         "--scenes", s3_scene, "--lake", root, "--config", '{"window_px": 200}'],
        env=spark_env(), capture_output=True, text=True, timeout=SPARK_TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(next(x for x in proc.stdout.splitlines() if x.startswith(RESULT_MARKER))
                     .removeprefix(RESULT_MARKER))
    assert out["failed"] == [] and out["skipped"] == [] and len(out["partitions"]) == 1
    key = lake.partitions(S2_LABELS.name)[0]
    assert {f.name for f in lake.require(key).files} == {"labels.tif", "unusable.tif", "quicklook.png"}


def test_spark_submit_bad_arguments_are_one_line(tmp_path: Path) -> None:
    """Under spark-submit (the DAG's path) a config error is the same one line and exit 2 as in-process."""
    spark_submit = str(Path(sys.executable).with_name("spark-submit"))
    proc = subprocess.run(
        [spark_submit, "--master", "local[1]", "--conf", "spark.ui.enabled=false", str(JOB),
         "--date", "2019-13-45", "--lake", str(tmp_path / "lake")],
        env=spark_env(), capture_output=True, text=True, timeout=SPARK_TIMEOUT_S,
    )
    assert proc.returncode == 2
    output = proc.stdout + proc.stderr  # spark-submit passes the script's stderr on its stdout
    errors = [line for line in output.splitlines() if "error" in line.lower()]
    assert errors == ["resample: error: --date: '2019-13-45' is not a day YYYY-MM-DD (month must be in 1..12)"]
    assert "Traceback" not in output and not (tmp_path / "lake").exists()


def test_colocate_spark_submit_equals_in_process(small_sim_day, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The colocation job through spark-submit local[2] commits the same bytes as in one process."""
    import shutil

    from seaice_tasks.is2.colocate import ColocateConfig
    from seaice_tasks.products import S2_PAIRS, SEGMENTS_LABELLED
    from seaice_tasks.s2.scene_labels import S2LabelConfig
    from seaice_tasks.spark_jobs import colocate, s2_labels

    base = Lake(tmp_path / "base")
    run_job(resample.JOB, [str(small_sim_day.atl03[0])], base, ResampleConfig(), day="2019-11-04")
    run_job(s2_labels.JOB, [str(small_sim_day.scenes[0])], base, S2LabelConfig(), day="2019-11-04")
    for name in ("local", "spark"):
        shutil.copytree(tmp_path / "base", tmp_path / name)
    local = Lake(tmp_path / "local")
    summary = run_job(colocate.JOB, colocate.day_tracks(local, dt.date(2019, 11, 4)), local, ColocateConfig(),
                      day="2019-11-04", whole_day=True)
    assert summary["failed"] == [] and summary["pairs"]
    spark_submit = str(Path(sys.executable).with_name("spark-submit"))
    proc = subprocess.run(
        [spark_submit, "--master", "local[2]", "--conf", "spark.ui.enabled=false", colocate.__file__,
         "--date", "2019-11-04", "--lake", str(tmp_path / "spark")],
        env=spark_env(), capture_output=True, text=True, timeout=SPARK_TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    spark = Lake(tmp_path / "spark")
    for stage in (S2_PAIRS.name, SEGMENTS_LABELLED.name):
        keys = local.partitions(stage)
        assert keys and spark.partitions(stage) == keys
        for key in keys:
            assert spark.require(key).to_json() == local.require(key).to_json()


def test_classify_spark_submit_equals_in_process(small_sim_day, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The classify, freeboard and validate jobs through spark-submit local[2] commit the bytes of one process."""
    import shutil

    from seaice_tasks.is2.classify import ClassifyConfig
    from seaice_tasks.products import SEGMENTS_CLASSIFIED
    from seaice_tasks.spark_jobs import classify
    from seaice_tasks.train.promotion import promote
    from seaice_tasks.train.segments import SegmentTrainConfig, train_segment_model
    from tests.training_data import commit_learnable_training_set

    base = Lake(tmp_path / "base")
    run_job(resample.JOB, [str(small_sim_day.atl03[0])], base, ResampleConfig(), day="2019-11-04")
    commit_learnable_training_set(base, n_bins=600)
    promote(base, "seaice-is2-lstm", str(train_segment_model(base, SegmentTrainConfig(epochs=1))["version"]))
    for name in ("local", "spark"):
        shutil.copytree(tmp_path / "base", tmp_path / name)
    local = Lake(tmp_path / "local")
    summary = run_job(classify.JOB, classify.day_tracks(local, dt.date(2019, 11, 4)), local, ClassifyConfig(),
                      day="2019-11-04", whole_day=True)
    assert summary["failed"] == [] and len(summary["partitions"]) == 3
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("spark-submit")), "--master", "local[2]", "--conf",
         "spark.ui.enabled=false", classify.__file__, "--date", "2019-11-04", "--lake", str(tmp_path / "spark")],
        env=spark_env(), capture_output=True, text=True, timeout=SPARK_TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    spark = Lake(tmp_path / "spark")
    keys = local.partitions(SEGMENTS_CLASSIFIED.name)
    assert keys and spark.partitions(SEGMENTS_CLASSIFIED.name) == keys
    for key in keys:
        assert spark.require(key).to_json() == local.require(key).to_json()
    # the day's freeboard and validation through spark-submit: the same partitions, byte for byte
    from seaice_tasks.products import FREEBOARD, VALIDATION, VALIDATION_DAY
    from seaice_tasks.spark_jobs import freeboard, validate

    for job, script in ((freeboard.JOB, freeboard.__file__), (validate.JOB, validate.__file__)):
        summary = run_job(job, [], local, None, day="2019-11-04", whole_day=True)
        assert summary["failed"] == [] and summary["partitions"]
        proc = subprocess.run(
            [str(Path(sys.executable).with_name("spark-submit")), "--master", "local[2]", "--conf",
             "spark.ui.enabled=false", script, "--date", "2019-11-04", "--lake", str(tmp_path / "spark")],
            env=spark_env(), capture_output=True, text=True, timeout=SPARK_TIMEOUT_S,
        )
        assert proc.returncode == 0, proc.stderr[-4000:]
    for stage in (FREEBOARD.name, VALIDATION.name, VALIDATION_DAY.name):
        keys = local.partitions(stage)
        assert keys and spark.partitions(stage) == keys
        for key in keys:
            assert spark.require(key).to_json() == local.require(key).to_json()
