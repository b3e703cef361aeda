"""The jobs under bad input: isolation, a day is its last run, clear argument errors, no silent loss.

Each test reproduces a case that broke the jobs before (docs/fault_injection.md lists them all).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from seaice_tasks.catalog import run_discover
from seaice_tasks.is2.resample import ResampleConfig
from seaice_tasks.products import REPORT_FILE, RESAMPLE_REPORT, SEGMENTS_2M
from seaice_tasks.spark_jobs import resample, s2_labels
from seaice_tasks.spark_jobs.runner import EXIT_BAD_ARGUMENT, EXIT_FAILED, main, run_job
from seaice_tasks.storage import Lake

DAY = "2019-11-04"
STRONG = ("gt1r", "gt2r", "gt3r")
FILL_FLOAT32 = np.float32(3.4028235e38)


def _copy(small_sim_day: Any, tmp_path: Path, name: str, edit: Callable[[h5py.File], None] | None = None) -> str:
    src = Path(small_sim_day.atl03[0])
    dst = tmp_path / name / src.name
    dst.parent.mkdir(parents=True)
    shutil.copyfile(src, dst)
    if edit is not None:
        with h5py.File(dst, "r+") as f:
            edit(f)
    return str(dst)


def _truncate_heights(beam: str) -> Callable[[h5py.File], None]:
    def edit(f: h5py.File) -> None:  # photon arrays of unequal length inside one beam
        data = f[f"{beam}/heights/h_ph"][:-5]
        del f[f"{beam}/heights/h_ph"]
        f[f"{beam}/heights/h_ph"] = data
    return edit


def _fill_heights(beam: str) -> Callable[[h5py.File], None]:
    def edit(f: h5py.File) -> None:
        f[f"{beam}/heights/h_ph"][...] = FILL_FLOAT32
    return edit


def _no_signal(beam: str) -> Callable[[h5py.File], None]:
    def edit(f: h5py.File) -> None:
        f[f"{beam}/heights/signal_conf_ph"][...] = 0
    return edit


def _beams(lake: Lake) -> list[str]:
    return [str(k.beam) for k in lake.partitions(SEGMENTS_2M.name)]


def test_a_broken_beam_fails_only_its_partition(small_sim_day, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                capsys: pytest.CaptureFixture[str]) -> None:
    broken = _copy(small_sim_day, tmp_path, "broken", _truncate_heights("gt3r"))
    lake_dir = tmp_path / "lake"
    code = main(resample.JOB, ["--granules", broken, "--date", DAY, "--lake", str(lake_dir), "--no-spark"])
    assert code == EXIT_FAILED  # the exit status shows the failure ...
    lake = Lake(lake_dir)
    assert _beams(lake) == ["gt1r", "gt2r"]  # ... never at the cost of the good beams
    report = lake.require(RESAMPLE_REPORT.key(date=DAY))
    assert [f["partition"].rsplit("=", 1)[1] for f in report.info["failed"]] == ["gt3r"]
    assert "inconsistent" in report.info["failed"][0]["reason"] and broken in report.info["failed"][0]["reason"]
    assert not (lake_dir / "_staging").exists()
    assert "1 failure(s)" in capsys.readouterr().err


def test_two_files_of_one_granule_key_are_not_mixed(small_sim_day, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    first = _copy(small_sim_day, tmp_path, "a")
    other = _copy(small_sim_day, tmp_path, "b", _no_signal("gt1r"))  # same name, different content
    lake = Lake(tmp_path / "lake")
    summary = run_job(resample.JOB, [first, other], lake, ResampleConfig(), day=DAY)
    assert _beams(lake) == list(STRONG) and summary["failed"] == []
    assert {s["uri"] for s in summary["skipped"]} == {other}
    assert all(f"is also {first}" in s["reason"] for s in summary["skipped"])
    reference = Lake(tmp_path / "ref")
    run_job(resample.JOB, [first], reference, ResampleConfig())
    for key in lake.partitions(SEGMENTS_2M.name):  # exactly the first file's segments
        assert lake.require(key).files == reference.require(key).files


def test_a_day_is_what_its_last_run_produced(small_sim_day, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    catalog = tmp_path / "catalog"
    shutil.copytree(small_sim_day.catalog, catalog)
    lake_dir = tmp_path / "lake"
    run_discover(DAY, catalog=str(catalog), lake=str(lake_dir))
    args = ["--date", DAY, "--lake", str(lake_dir), "--no-spark"]
    assert main(resample.JOB, args) == 0 and _beams(Lake(lake_dir)) == list(STRONG)
    granule = next(catalog.rglob("ATL03_*.h5"))
    good = granule.read_bytes()
    granule.write_bytes(b"\x89HDF\r\n\x1a\n became unreadable")
    assert main(resample.JOB, args) == 0  # a skip is not a failure
    lake = Lake(lake_dir)
    assert _beams(lake) == list(STRONG)  # a skipped input keeps its last good tracks, reported as stale
    report = json.loads(lake.open_file(RESAMPLE_REPORT.key(date=DAY), REPORT_FILE))
    assert report["removed"] == [] and len(report["stale"]) == 3 and report["skipped"][0]["uri"] == str(granule)
    granule.write_bytes(good)
    assert main(resample.JOB, args) == 0 and _beams(lake) == list(STRONG)
    assert json.loads(lake.open_file(RESAMPLE_REPORT.key(date=DAY), REPORT_FILE))["stale"] == []
    granule.unlink()  # the granule leaves the day's inventory: its tracks go
    run_discover(DAY, catalog=str(catalog), lake=str(lake_dir))
    assert main(resample.JOB, args) == 0
    assert _beams(lake) == []
    report = json.loads(lake.open_file(RESAMPLE_REPORT.key(date=DAY), REPORT_FILE))
    assert len(report["removed"]) == 3 and report["stale"] == []
    explicit = _copy(small_sim_day, tmp_path, "explicit")
    run_job(resample.JOB, [explicit], lake, ResampleConfig(beams=("gt1r",)), day=DAY)
    run_job(resample.JOB, [explicit], lake, ResampleConfig(beams=("gt2r",)), day=DAY)
    assert _beams(lake) == ["gt1r", "gt2r"]  # runs on explicit inputs never remove other partitions


@pytest.mark.parametrize("argv, message", [
    (["--date", "2019-13-45"], "--date: '2019-13-45' is not a day"),
    (["--date", "yesterday"], "--date: 'yesterday' is not a day"),
    (["--date", "2019-11-04garbage"], "--date: '2019-11-04garbage' is not a day"),
    (["--config", '{"max_photons_per_chunk": 0}'], "max_photons_per_chunk must be >= 1"),
    (["--config", '{"beams": "weak"}'], "ResampleConfig.beams"),
    (["--config", "{nope"], "invalid JSON"),
    (["--tasks-per-core", "0"], "--tasks-per-core"),
])
def test_bad_arguments_are_one_line_and_write_nothing(small_sim_day, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                       capsys: pytest.CaptureFixture[str], argv: list[str],
                                                       message: str) -> None:
    lake_dir = tmp_path / "lake"
    code = main(resample.JOB, ["--granules", str(small_sim_day.atl03[0]), *argv, "--lake", str(lake_dir),
                               "--no-spark"])
    err = capsys.readouterr().err.strip()
    assert code == EXIT_BAD_ARGUMENT and err.startswith("resample: error: ") and "\n" not in err
    assert message in err
    assert not lake_dir.exists()  # with explicit granules too: nothing committed before the error


def test_unusable_lake_and_window_are_argument_errors(small_sim_day, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code = main(resample.JOB, ["--granules", str(small_sim_day.atl03[0]), "--lake", str(blocker / "lake"),
                               "--no-spark"])
    assert code == EXIT_BAD_ARGUMENT and f"{blocker} is a file, not a folder" in capsys.readouterr().err
    code = main(s2_labels.JOB, ["--scenes", str(small_sim_day.scenes[0]), "--config", '{"window_px": 0}',
                                "--lake", str(tmp_path / "lake"), "--no-spark"])
    assert code == EXIT_BAD_ARGUMENT and "window_px" in capsys.readouterr().err
    code = main(resample.JOB, ["--granules", "x.h5", "--lake", "nosuchproto://bucket/x", "--no-spark"])
    assert code == EXIT_BAD_ARGUMENT and "not a usable storage URL" in capsys.readouterr().err


def test_cli_date_errors_are_one_line(tmp_path: Path) -> None:
    seaice = str(Path(sys.executable).with_name("seaice"))
    for cmd in (["resample", "--date", "yesterday", "--no-spark"], ["discover", "--date", "2019-11-04garbage",
                                                                     "--catalog", str(tmp_path)]):
        proc = subprocess.run([seaice, *cmd, "--lake", str(tmp_path / "lake")], capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == EXIT_BAD_ARGUMENT, (cmd, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1 and "not a day" in proc.stderr, proc.stderr


def test_beam_problems_are_named_per_beam(small_sim_day, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    filled = _copy(small_sim_day, tmp_path, "filled", _fill_heights("gt2r"))
    lake = Lake(tmp_path / "lake")
    summary = run_job(resample.JOB, [filled], lake, ResampleConfig())
    assert _beams(lake) == ["gt1r", "gt3r"]  # one all-fill beam no longer drops the healthy ones
    assert [(s["beam"], "only fill values" in s["reason"]) for s in summary["skipped"]] == [("gt2r", True)]

    silent = _copy(small_sim_day, tmp_path, "silent", _no_signal("gt1r"))
    lake = Lake(tmp_path / "lake2")
    summary = run_job(resample.JOB, [silent], lake, ResampleConfig())
    assert _beams(lake) == ["gt2r", "gt3r"]  # no 0-row partition ...
    assert summary["skipped"][0]["beam"] == "gt1r" and "no photon passes" in summary["skipped"][0]["reason"]

    summary = run_job(resample.JOB, [silent], Lake(tmp_path / "lake3"), ResampleConfig(beams=("gt1r", "gt2r")),
                      day="2019-11-05")
    assert {s["reason"].split(": ", 1)[1] for s in summary["skipped"]} == {
        "granule of 2019-11-04, not of the run's day 2019-11-05"}  # not committed under another day


def test_a_requested_beam_the_file_lacks_is_a_named_skip(realdata: Path, tmp_path: Path) -> None:
    granule = str(realdata / "icesat2" / "harmony_ATL03_gt1l.h5")
    summary = run_job(resample.JOB, [granule], Lake(tmp_path / "lake"), ResampleConfig(beams=("gt1l", "gt2r")))
    assert [p.rsplit("=", 1)[1] for p in summary["partitions"]] == ["gt1l"]
    assert [(s["beam"], "is not in the file" in s["reason"]) for s in summary["skipped"]] == [("gt2r", True)]
    summary = run_job(resample.JOB, [granule], Lake(tmp_path / "lake2"), ResampleConfig())
    assert summary["partitions"] == [] and "no strong beam" in summary["skipped"][0]["reason"]


def test_two_folders_of_one_scene_key_are_not_mixed(small_sim_day, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from seaice_tasks.products import S2_LABELS
    from seaice_tasks.s2.scene_labels import S2LabelConfig

    scene = Path(small_sim_day.scenes[0])
    first, second = tmp_path / "a" / scene.name, tmp_path / "b" / scene.name
    shutil.copytree(scene, first)
    shutil.copytree(scene, second)
    lake = Lake(tmp_path / "lake")
    summary = run_job(s2_labels.JOB, [str(first), str(second)], lake, S2LabelConfig(), day=DAY)
    assert len(lake.partitions(S2_LABELS.name)) == 1 and summary["failed"] == []
    assert [s["uri"] for s in summary["skipped"]] == [str(second)] and "is also" in summary["skipped"][0]["reason"]


def test_bad_store_options_are_argument_errors(small_sim_day, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
                                               capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("SEAICE_CATALOG_OPTIONS", "SEAICE_LAKE_OPTIONS"):
        monkeypatch.setenv(name, "{not json")
        code = main(resample.JOB, ["--granules", str(small_sim_day.atl03[0]), "--lake", str(tmp_path / "lake"),
                                   "--no-spark"])
        err = capsys.readouterr().err.strip()
        assert code == EXIT_BAD_ARGUMENT and name in err and "\n" not in err
        monkeypatch.delenv(name)
