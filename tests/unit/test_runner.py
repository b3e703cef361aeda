"""The job runner without Spark: execute, item isolation, outputs checked by the registry, commits, cleanup."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pytest

from seaice_tasks.config import JsonConfig
from seaice_tasks.errors import ConfigError, InputError
from seaice_tasks.outputs import BytesOutput, TableOutput, write_partition
from seaice_tasks.products import QUICKLOOK_FILE, REPORT_FILE, RESAMPLE_REPORT, S2_LABELS, SEGMENTS_2M
from seaice_tasks.spark_jobs.runner import EXIT_BAD_ARGUMENT, Job, Run, execute, main, parse_day, run_job
from seaice_tasks.storage import InputStore, Lake
from seaice_tasks.work import Record, WorkContext, WorkResult

DAY = dt.date(2019, 11, 4)
PNG = b"\x89PNG\r\n\x1a\n fake"


@dataclasses.dataclass(frozen=True)
class ToyConfig(JsonConfig):
    """Config of the toy job."""

    kind: ClassVar[str] = "toy"
    fail_on: str = "boom"


def _scene_key(name: str) -> Any:
    return S2_LABELS.key(date=DAY, scene=name)


def toy_work(rec: Record, ctx: WorkContext[ToyConfig]) -> WorkResult:
    """One scene name -> a quicklook (and a scratch file); raises for the configured name."""
    name = str(rec["name"])
    if name == ctx.config.fail_on:
        raise ZeroDivisionError("not a seaice error")
    if name == "bad-input":
        raise InputError(name, "unreadable")
    return WorkResult(rows=({"name": name, "n": len(name)},),
                      outputs=(BytesOutput(_scene_key(name), QUICKLOOK_FILE, PNG),
                               BytesOutput(_scene_key(name), "scratch.bin", b"x", scratch=True)))


def bad_table_work(rec: Record, ctx: WorkContext[ToyConfig]) -> WorkResult:
    """A table that does not fit the product's schema."""
    del ctx
    key = SEGMENTS_2M.key(date=DAY, granule="20191104204017_00880510", beam="gt1r")
    return WorkResult(outputs=(TableOutput(key, "part-00000.parquet", pa.table({"x": [rec["i"]]})),))


def _body(run: Run[ToyConfig], uris: list[str], args: argparse.Namespace) -> dict[str, Any]:
    del args
    results = run.map(toy_work, [{"name": u} for u in uris])
    manifests = run.commit(results, info=lambda key, entries: {"files": len(entries)})
    return {"partitions": [m.key.relpath for m in manifests], "skipped": [],
            "failed": [{"uri": r.record["name"], "reason": r.error} for r in results if not r.ok]}


TOY = Job(name="toy", config_type=ToyConfig, inventory_kind="S2", inputs_arg="scenes", report=RESAMPLE_REPORT,
          body=_body)


def _ctx(lake: Lake, config: ToyConfig | None = None) -> WorkContext[ToyConfig]:
    return WorkContext(config or ToyConfig(), lake, InputStore(), "tok1")


def test_execute_isolates_any_exception(tmp_path: Path) -> None:
    ctx = _ctx(Lake(tmp_path))
    fn = f"{__name__}:toy_work"
    ok = json.loads(execute(fn, ctx, 0, json.dumps({"name": "a"})))
    assert ok["error"] == "" and ok["rows"] == [{"name": "a", "n": 1}]
    assert [path for path, _ in ok["files"]] == [_scene_key("a").relpath]  # the scratch file is not listed
    assert (tmp_path / "_staging" / "tok1" / _scene_key("a").relpath / "scratch.bin").exists()
    boom = json.loads(execute(fn, ctx, 1, json.dumps({"name": "boom"})))
    assert boom["error"] == "ZeroDivisionError: not a seaice error" and boom["files"] == []
    bad = json.loads(execute(fn, ctx, 2, json.dumps({"name": "bad-input"})))
    assert bad["error"] == "bad-input: unreadable"


def test_outputs_are_checked_against_the_product(tmp_path: Path) -> None:
    out = json.loads(execute(f"{__name__}:bad_table_work", _ctx(Lake(tmp_path)), 0, json.dumps({"i": 1})))
    assert "columns differ from schema" in out["error"]


def test_run_commits_good_items_writes_report_and_cleans_staging(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    summary = run_job(TOY, ["a", "boom", "cc", "a"], lake, day=DAY)  # "a" twice: runs once
    assert summary["partitions"] == [_scene_key("a").relpath, _scene_key("cc").relpath]
    assert summary["failed"] == [{"uri": "boom", "reason": "ZeroDivisionError: not a seaice error"}]
    assert set(summary["timings_s"]) == set()  # the toy body records no laps
    man = lake.require(_scene_key("cc"))
    assert [f.name for f in man.files] == [QUICKLOOK_FILE] and man.info == {"files": 1}
    assert man.config == ToyConfig().to_dict()
    report = lake.require(RESAMPLE_REPORT.key(date=DAY))
    assert report.info["failed"] == summary["failed"]
    assert "timings_s" not in json.loads(lake.open_file(report.key, REPORT_FILE))
    assert not (tmp_path / "lake" / "_staging").exists()  # scratch and failed items' leftovers removed


def test_main_checks_arguments_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lake = tmp_path / "lake"
    for argv in (["--date", "yesterday"], ["--date", "2019-11-04garbage"], ["--config", '{"fail_on": 3}'],
                 ["--config", '{"nope": 1}'], ["--tasks-per-core", "0"]):
        assert main(TOY, [*argv, "--lake", str(lake), "--no-spark"]) == EXIT_BAD_ARGUMENT
        err = capsys.readouterr().err.strip()
        assert err.startswith("toy: error: ") and "\n" not in err
    assert not lake.exists()
    assert main(TOY, ["--scenes", "a,b", "--lake", str(lake), "--no-spark"]) == 0
    assert "SEAICE_RESULT " in capsys.readouterr().out


def test_parse_day_and_unknown_options() -> None:
    assert parse_day("2019-11-04") == DAY
    with pytest.raises(ConfigError, match="--date"):
        parse_day("2019-02-30")
    with pytest.raises(ConfigError, match="unknown option"):
        run_job(TOY, [], Lake("/nonexistent"), colour="red")


def test_a_job_start_removes_dead_runs_staging_only(tmp_path: Path) -> None:
    import os
    import time

    lake = Lake(tmp_path / "lake")
    dead = tmp_path / "lake" / "_staging" / "deadrun" / "s2_labels" / "x.png"
    live = tmp_path / "lake" / "_staging" / "liverun" / "s2_labels" / "y.png"
    for path in (dead, live):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"x")
    old = time.time() - 7 * 3600  # older than the safe age of 6 h
    for path in (dead, dead.parent, dead.parent.parent):
        os.utime(path, (old, old))
    run_job(TOY, ["a"], lake)
    assert not dead.parent.parent.exists() and live.exists()


def test_process_new_needs_a_job_that_knows_what_is_done(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="toy: --process new: this job always processes all its inputs"):
        run_job(TOY, ["a"], Lake(tmp_path / "lake"), ToyConfig(), process="new")
    with pytest.raises(ConfigError, match="--process: one of all, new, got 'some'"):
        run_job(TOY, ["a"], Lake(tmp_path / "lake"), ToyConfig(), process="some")


def test_kept_inputs_join_the_summary_with_their_earlier_skips() -> None:
    from seaice_tasks.spark_jobs.runner import _add_kept

    kept = {"a.h5": [SEGMENTS_2M.key(date="2019-11-04", granule="g1", beam="gt1r")]}
    previous = {"skipped": [{"uri": "a.h5", "beam": "gt3r", "reason": "beam gt3r missing"},
                            {"uri": "b.h5", "reason": "unreadable"}],
                "flags": [{"uri": "a.h5", "beam": "gt1r", "reason": "times"}]}
    summary: dict[str, Any] = {"partitions": ["segments_2m/date=2019-11-04/granule=g2/beam=gt1r"],
                               "skipped": [{"uri": "b.h5", "reason": "unreadable"}]}
    _add_kept(summary, kept, previous)
    assert summary["kept"] == ["segments_2m/date=2019-11-04/granule=g1/beam=gt1r"]
    assert summary["partitions"] == ["segments_2m/date=2019-11-04/granule=g1/beam=gt1r",
                                     "segments_2m/date=2019-11-04/granule=g2/beam=gt1r"]
    assert summary["skipped"] == [{"uri": "b.h5", "reason": "unreadable"},
                                  {"uri": "a.h5", "beam": "gt3r", "reason": "beam gt3r missing"}]
    assert summary["flags"] == [{"uri": "a.h5", "beam": "gt1r", "reason": "times"}]


def _sourced_body(run: Run[ToyConfig], uris: list[str], args: argparse.Namespace) -> dict[str, Any]:
    del args
    results = run.map(toy_work, [{"name": u} for u in uris])
    manifests = run.commit(results, info=lambda key, entries: {"source": str(key.scene)})
    return {"partitions": [m.key.relpath for m in manifests], "skipped": [],
            "failed": [{"uri": r.record["name"], "reason": r.error} for r in results if not r.ok]}


def test_a_whole_day_run_removes_only_partitions_whose_input_is_gone(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    job = dataclasses.replace(TOY, body=_sourced_body, products=lambda args: (S2_LABELS,))
    run_job(job, ["a", "b", "c"], lake, day=DAY, whole_day=True)
    b_version = lake.require(_scene_key("b")).version
    orphan = _scene_key("d")  # a partition that does not say its input: never removed
    write_partition(lake, orphan, [BytesOutput(orphan, QUICKLOOK_FILE, PNG)], None, {})
    summary = run_job(job, ["a", "b"], lake, ToyConfig(fail_on="b"), day=DAY, whole_day=True)
    assert summary["failed"][0]["uri"] == "b"
    assert summary["removed"] == [_scene_key("c").relpath]  # c left the day's inputs
    assert summary["stale"] == [_scene_key("b").relpath, orphan.relpath]  # b failed: its last good output stays
    assert lake.partitions(S2_LABELS.name, DAY) == [_scene_key("a"), _scene_key("b"), orphan]
    assert lake.require(_scene_key("b")).version == b_version
    report = json.loads(lake.open_file(RESAMPLE_REPORT.key(date=DAY), REPORT_FILE))
    assert report["stale"] == summary["stale"] and report["removed"] == summary["removed"]
    explicit = dataclasses.replace(job, input_of=lambda manifest: "a")  # a job may say how its partitions map
    assert run_job(explicit, ["a"], lake, day=DAY, whole_day=True)["removed"] == []
