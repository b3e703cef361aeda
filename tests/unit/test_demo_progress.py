"""The demo's progress lines and timings come from Airflow's metadata DB (its task_instance table)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from seaice_tasks.demo import TaskWatcher, _table, task_states


def _db(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    # the columns of Airflow 3's tables that the demo reads
    conn.execute("CREATE TABLE dag_run (id INTEGER PRIMARY KEY, dag_id TEXT, run_id TEXT)")
    conn.execute("CREATE TABLE task_instance (dag_id TEXT, run_id TEXT, task_id TEXT, state TEXT, "
                 "start_date TEXT, duration REAL)")
    conn.execute("INSERT INTO dag_run (dag_id, run_id) VALUES ('seaice_daily', 'old'), ('seaice_daily', 'new')")
    conn.commit()
    return conn


def test_task_states_read_the_last_run_in_start_order(tmp_path: Path) -> None:
    conn = _db(tmp_path / "airflow.db")
    conn.executemany("INSERT INTO task_instance VALUES ('seaice_daily', ?, ?, ?, ?, ?)", [
        ("old", "discover", "failed", "2019-11-05 00:00:01", 1.0),
        ("new", "resample_2m", "success", "2019-11-05 00:01:00", 61.5),
        ("new", "discover", "success", "2019-11-05 00:00:02", 2.25),
        ("new", "classify", None, None, None),
    ])
    conn.commit()
    assert task_states(tmp_path / "airflow.db", "seaice_daily") == [
        ("discover", "success", 2.25), ("resample_2m", "success", 61.5), ("classify", "none", None)]
    assert task_states(tmp_path / "missing.db", "seaice_daily") == []


def test_the_watcher_prints_each_finished_task_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conn = _db(tmp_path / "airflow.db")
    watcher = TaskWatcher(tmp_path / "airflow.db", "seaice_daily", total=3)
    conn.execute("INSERT INTO task_instance VALUES ('seaice_daily', 'new', 'discover', 'success', '1', 2.0)")
    conn.execute("INSERT INTO task_instance VALUES ('seaice_daily', 'new', 'resample_2m', 'running', '2', NULL)")
    conn.commit()
    watcher.report()
    conn.execute("UPDATE task_instance SET state = 'skipped', duration = 0.5 WHERE task_id = 'resample_2m'")
    conn.commit()
    watcher.report()
    watcher.report()
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:3] for line in lines] == [["[", "1/3]", "discover"], ["[", "2/3]", "resample_2m"]]
    assert "skipped" in lines[1] and "0.5 s" in lines[1]


def test_the_summary_table_lines_up() -> None:
    text = _table([("accuracy", "91.0 %", "paper 96.56 %", "-"), ("whole demo", "9.5 min", "2 cores", "<= 15 min")])
    lines = text.splitlines()
    assert len(lines) == 4 and len({line.index("|") for line in lines if "|" in line}) == 1
    assert lines[3].startswith("whole demo") and lines[3].rstrip().endswith("<= 15 min")
