"""Failure monitoring: the plugin's listener records every failed try in the lake, notifies, marks recoveries."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any, ClassVar

import pytest

from seaice_tasks.monitoring import list_incidents
from seaice_tasks.orchestration import airflow_env
from seaice_tasks.products import INCIDENTS
from seaice_tasks.storage import Lake

pytestmark = pytest.mark.integration

DAG_FILE = '''
import datetime as dt
from pathlib import Path
import pendulum
from airflow.sdk import dag, task

MARK = Path({mark!r})


@dag(dag_id="seaice_monitoring_check", schedule=None, start_date=pendulum.datetime(2019, 11, 1, tz="UTC"),
     catchup=False, default_args={{"retries": 0}})
def seaice_monitoring_check():
    @task(retries=1, retry_delay=dt.timedelta(seconds=0))
    def flaky() -> str:
        if not MARK.exists():
            MARK.write_text("failed once")
            raise RuntimeError("granule 20191104195311_05940510: transient read error")
        return "ok"

    @task
    def broken() -> None:
        raise ValueError("granule 20191104221126_01300510: truncated file")

    flaky()
    broken()


DAG = seaice_monitoring_check()
'''


class _Hook(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        del args


def test_failed_tries_become_incidents_and_notifications(tmp_path: Path) -> None:
    """dag.test() of a DAG with a flaky task (fails once, retried) and a broken one, the plugin loaded."""
    server = http.server.HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "seaice_monitoring_check.py").write_text(DAG_FILE.format(mark=str(tmp_path / "mark")))
    lake_dir = tmp_path / "lake"
    env = airflow_env(tmp_path / "airflow", extra={
        "SEAICE_LAKE": str(lake_dir), "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "SEAICE_INCIDENT_WEBHOOK": f"http://127.0.0.1:{server.server_port}/hook"})
    airflow = str(Path(sys.executable).with_name("airflow"))
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    code = f"""
        import datetime as dt, json, sys
        sys.path.insert(0, {str(dags)!r})
        import seaice_monitoring_check as m
        run = m.DAG.test(logical_date=dt.datetime(2019, 11, 4, tzinfo=dt.timezone.utc))
        print("JSON" + json.dumps({{ti.task_id: str(ti.state) for ti in run.get_task_instances()}}))
        """
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                          timeout=300)
    server.shutdown()
    assert "JSON" in proc.stdout, proc.stderr[-3000:]
    states = json.loads(proc.stdout.split("JSON", 1)[1].splitlines()[0])
    assert states == {"flaky": "success", "broken": "failed"}
    docs = {(d["task_id"], d["try_number"]): d for d in list_incidents(Lake(lake_dir))}
    assert set(docs) == {("flaky", 1), ("broken", 1)}, proc.stderr[-3000:]
    flaky, broken = docs[("flaky", 1)], docs[("broken", 1)]
    assert flaky["recovered"] and not flaky["final"] and flaky["granule"] == "20191104195311_05940510"
    assert not broken["recovered"] and broken["final"] and "ValueError: granule" in broken["error"]
    assert broken["granule"] == "20191104221126_01300510" and broken["day"] == "2019-11-04"
    assert broken["dag_id"] == "seaice_monitoring_check" and broken["map_index"] == -1 and broken["log_url"]
    assert len(Lake(lake_dir).partitions(INCIDENTS.name)) == 2
    assert sorted(h["task_id"] for h in _Hook.received) == ["broken", "flaky"]
    assert all(h["partition"].startswith("incidents/date=2019-11-04/") for h in _Hook.received)
