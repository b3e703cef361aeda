"""The resample job's work items, halo ownership and commits, without Spark."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from seaice_tasks.is2.resample import ResampleConfig, resample_granule
from seaice_tasks.is2.resample_work import plan_granule
from seaice_tasks.products import REPORT_FILE, RESAMPLE_REPORT, SEGMENTS_2M
from seaice_tasks.spark_jobs.resample import JOB
from seaice_tasks.spark_jobs.runner import main, run_job
from seaice_tasks.storage import Lake

SMALL_CHUNK_PHOTONS = 40_000


def _partition_frames(lake: Lake) -> dict[str, pd.DataFrame]:
    return {k.beam or "": lake.read_table(k, verify=True).to_pandas().drop(columns=["geometry"])
            for k in lake.partitions(SEGMENTS_2M.name)}


@pytest.mark.parametrize("fpb_window_m", [2.0, 10.0])
def test_chunked_job_equals_whole_beam(small_sim_day, tmp_path: Path, fpb_window_m: float) -> None:  # type: ignore[no-untyped-def]
    granule = str(small_sim_day.atl03[0])
    config = ResampleConfig(fpb_window_m=fpb_window_m, max_photons_per_chunk=SMALL_CHUNK_PHOTONS)
    items, notes = plan_granule(granule, config)
    assert notes == []
    assert len({i["beam"] for i in items}) == 3  # strong beams only
    assert len(items) > 6  # several chunks per beam
    lake = Lake(tmp_path / "lake")
    summary = run_job(JOB, [granule], lake, config, day="2019-11-04")
    assert summary["failed"] == [] and len(summary["partitions"]) == 3
    got = _partition_frames(lake)
    expected = resample_granule(granule, ResampleConfig(fpb_window_m=fpb_window_m))  # one chunk a beam
    assert set(got) == set(expected)
    for beam, frame in expected.items():
        pd.testing.assert_frame_equal(got[beam].reset_index(drop=True),
                                      frame.reset_index(drop=True), check_exact=True, check_dtype=False)
    assert summary["rows"] == sum(len(f) for f in expected.values())


def test_bad_granule_is_skipped_and_recorded(small_sim_day, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "ATL03_20191104000000_00010510_006_01.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n truncated")
    lake = Lake(tmp_path / "lake")
    granule = str(small_sim_day.atl03[0])
    summary = run_job(JOB, [str(bad), granule], lake, ResampleConfig(), day="2019-11-04")
    assert [s["uri"] for s in summary["skipped"]] == [str(bad)]
    assert "not a readable HDF5 file" in summary["skipped"][0]["reason"]
    assert len(summary["partitions"]) == 3
    report_key = RESAMPLE_REPORT.key(date="2019-11-04")
    report = json.loads(lake.open_file(report_key, REPORT_FILE))
    assert report["skipped"] == summary["skipped"]


def test_rerun_gives_identical_partitions(small_sim_day, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lake = Lake(tmp_path / "lake")
    granule = str(small_sim_day.atl03[0])
    run_job(JOB, [granule], lake, ResampleConfig(beams=("gt2r",)))
    key = lake.partitions(SEGMENTS_2M.name)[0]
    first = lake.require(key).to_json()
    run_job(JOB, [granule], lake, ResampleConfig(beams=("gt2r",)))
    assert lake.require(key).to_json() == first


def test_main_without_spark_reads_the_inventory(small_sim_day, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from seaice_tasks.catalog import run_discover

    lake_dir = tmp_path / "lake"
    run_discover("2019-11-04", catalog=str(small_sim_day.catalog), lake=str(lake_dir))
    assert main(JOB, ["--date", "2019-11-04", "--lake", str(lake_dir), "--no-spark",
                 "--config", json.dumps({"beams": ["gt1r"]})]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("SEAICE_RESULT "))
    result = json.loads(line.removeprefix("SEAICE_RESULT "))
    assert result["partitions"] and all(p.endswith("beam=gt1r") for p in result["partitions"])


def _copy_granule(granule: Path, folder: Path, rgt_cycle: str) -> Path:
    """The same photons under another granule name (another track of the day)."""
    parts = granule.name.split("_")
    parts[2] = rgt_cycle
    target = folder / "_".join(parts)
    target.write_bytes(granule.read_bytes())
    return target


def test_process_new_keeps_done_granules_and_reads_only_the_others(small_sim_day,  # type: ignore[no-untyped-def]
                                                                   tmp_path: Path) -> None:
    day, config = "2019-11-04", ResampleConfig(beams=("gt2r",))
    first = Path(small_sim_day.atl03[0])
    done_copy = _copy_granule(first, tmp_path, "00020510")
    lake = Lake(tmp_path / "lake")
    run_job(JOB, [str(done_copy)], lake, config, day=day, whole_day=True)
    (done_key,) = lake.partitions(SEGMENTS_2M.name)
    version = lake.require(done_key).version
    assert lake.require(done_key).info["source"] == str(done_copy)
    # the done granule is not read again: were it read, its now truncated file would be a skip
    done_copy.write_bytes(done_copy.read_bytes()[:10_000])
    summary = run_job(JOB, [str(done_copy), str(first)], lake, config, day=day, whole_day=True, process="new")
    assert summary["kept"] == [done_key.relpath]
    assert summary["skipped"] == [] and summary["removed"] == []
    assert len(summary["partitions"]) == 2 and done_key.relpath in summary["partitions"]
    assert lake.require(done_key).version == version  # untouched
    report = json.loads(lake.open_file(RESAMPLE_REPORT.key(date=day), REPORT_FILE))
    assert report["kept"] == [done_key.relpath] and report["partitions"] == summary["partitions"]
    # --process all (a backfill) reads it again: now a recorded skip; its last good track stays, reported stale
    summary = run_job(JOB, [str(done_copy), str(first)], lake, config, day=day, whole_day=True)
    assert [s["uri"] for s in summary["skipped"]] == [str(done_copy)]
    assert summary["removed"] == [] and summary["stale"] == [done_key.relpath] and "kept" not in summary
    assert lake.require(done_key).version == version


def test_process_new_redoes_a_granule_with_a_missing_track_or_another_config(small_sim_day,  # type: ignore[no-untyped-def]
                                                                             tmp_path: Path) -> None:
    day, config = "2019-11-04", ResampleConfig(beams=("gt2r", "gt1r"))
    granule = str(small_sim_day.atl03[0])
    lake = Lake(tmp_path / "lake")
    run_job(JOB, [granule], lake, config, day=day, whole_day=True)
    keys = lake.partitions(SEGMENTS_2M.name)
    assert len(keys) == 2 and lake.require(keys[0]).info["beams"] == ["gt1r", "gt2r"]
    assert run_job(JOB, [granule], lake, config, day=day, whole_day=True, process="new")["kept"] == [
        k.relpath for k in keys]
    lake.delete(keys[0])  # as if a run was killed between its two commits
    summary = run_job(JOB, [granule], lake, config, day=day, whole_day=True, process="new")
    assert "kept" not in summary and sorted(summary["partitions"]) == [k.relpath for k in keys]
    other = ResampleConfig(beams=("gt2r", "gt1r"), fpb_window_m=10.0)
    summary = run_job(JOB, [granule], lake, other, day=day, whole_day=True, process="new")
    assert "kept" not in summary and all(lake.require(k).config == other.to_dict() for k in keys)
