"""Incidents in the lake and the `seaice status` view of them and of the job reports."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from seaice_tasks.airflow_stack import free_port
from seaice_tasks.cli import main as cli
from seaice_tasks.monitoring import (
    LOST_TRY_ERROR,
    Incident,
    lake_status,
    list_incidents,
    record_incident,
    record_lost_tries,
    record_recovery,
    status_table,
)
from seaice_tasks.outputs import BytesOutput, write_partition
from seaice_tasks.products import REPORT_FILE, RESAMPLE_REPORT
from seaice_tasks.storage import Lake

DAY = "2019-11-04"


def _incident(task: str, try_number: int, error: str, final: bool = False) -> Incident:
    return Incident(dag_id="seaice_daily", run_id="scheduled__2019-11-04", task_id=task, map_index=-1,
                    try_number=try_number, error=error, day=DAY, final=final, log_url="http://127.0.0.1:8080/log")


def test_incident_round_trip(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    inc = _incident("resample_2m", 1, "granule 20191104195311_05940510: truncated")
    path = record_incident(lake, inc)
    assert path == f"incidents/date={DAY}/name={inc.incident_id}"
    assert record_incident(lake, inc) == path  # the same try recorded twice is one incident
    docs = list_incidents(lake)
    assert len(docs) == 1 and docs[0]["granule"] == "20191104195311_05940510" and not docs[0]["recovered"]
    assert record_recovery(lake, "seaice_daily", "scheduled__2019-11-04", "resample_2m", -1, DAY) == 1
    assert list_incidents(lake)[0]["recovered"] and list_incidents(lake, dt.date(2019, 11, 5)) == []
    assert record_recovery(lake, "seaice_daily", "scheduled__2019-11-04", "resample_2m", -1, DAY) == 0


def test_a_killed_try_is_recorded_when_the_next_try_starts(tmp_path: Path) -> None:
    """Try 1 reported its failure, try 2 was killed (no report): try 3 starting records try 2 only, once."""
    lake = Lake(tmp_path / "lake")
    record_incident(lake, _incident("colocate", 1, "ValueError: bad scene"))
    record_incident(lake, _incident("resample_2m", 1, "other task"))  # another instance: not counted
    third = _incident("colocate", 3, "")
    written = record_lost_tries(lake, third)
    assert len(written) == 1
    docs = [d for d in list_incidents(lake) if d["task_id"] == "colocate"]
    assert [(d["try_number"], d["error"]) for d in docs] == [(1, "ValueError: bad scene"), (2, LOST_TRY_ERROR)]
    assert record_lost_tries(lake, third) == []  # already recorded
    assert record_lost_tries(lake, _incident("classify", 1, "")) == []  # a first try has no earlier try


def test_status_shows_report_failures_and_open_incidents(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEAICE_AIRFLOW_URL", raising=False)
    lake = Lake(tmp_path / "lake")
    key = RESAMPLE_REPORT.key(date=dt.date(2019, 11, 4))
    bad = {"partition": "granule 20191104221126_01300510", "reason": "truncated HDF5"}
    write_partition(lake, key, [BytesOutput(key, REPORT_FILE, b"{}")], None,
                    {"skipped": [{"uri": "x.h5", "reason": "not ATL03"}], "failed": [bad]})
    record_incident(lake, _incident("resample_2m", 1, "granule 20191104221126_01300510: truncated", final=False))
    record_incident(lake, _incident("resample_2m", 2, "granule 20191104221126_01300510: truncated", final=True))
    status = lake_status(lake, dt.date(2019, 11, 1))
    assert status["days"][DAY]["resample_report"] == {"skipped": [{"uri": "x.h5", "reason": "not ATL03"}],
                                                     "failed": [bad], "stale": []}
    assert [d["try_number"] for d in status["open_incidents"]] == [1, 2] and status["recovered_incidents"] == 0
    table = status_table(status)
    assert "resample_report" in table and "truncated HDF5" in table and "try 2 (final)" in table
    assert "granule 20191104221126_01300510" in table and "log: http://127.0.0.1:8080/log" in table
    assert cli(["status", "--lake", str(tmp_path / "lake"), "--today", "2019-11-05", "--days", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["open_incidents"]) == 2 and out["since"] == "2019-11-03"
    assert cli(["status", "--lake", str(tmp_path / "lake"), "--today", "2019-11-20", "--days", "3"]) == 0
    out = capsys.readouterr().out
    assert "open incidents: 0" in out  # older days are not shown
    assert "airflow: not asked" in out  # no --airflow, no $SEAICE_AIRFLOW_URL
    assert cli(["status", "--lake", str(tmp_path / "lake"), "--days", "0"]) == 2
    # an Airflow that does not answer: the lake's part is still shown, the exit status is 1
    closed = f"http://127.0.0.1:{free_port()}"
    assert cli(["status", "--lake", str(tmp_path / "lake"), "--today", "2019-11-05", "--airflow", closed]) == 1
    out = capsys.readouterr().out
    assert "open incidents: 2" in out and f"airflow: unreachable: {closed}" in out
