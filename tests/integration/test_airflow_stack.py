"""The DAG as the users run it: a real scheduler on Postgres, runs through the REST API and the CLI.

One deployment (``seaice_airflow`` in conftest: api-server, scheduler, dag-processor and
triggerer on loopback, Postgres metadata DB, ``spark_default`` on a standalone cluster) serves
every test here; the tests run in file order and build on each other's runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

import psutil
import pytest

from seaice_tasks.monitoring import LOST_TRY_ERROR, list_incidents
from seaice_tasks.products import (
    INVENTORY,
    REPORT_FILE,
    RESAMPLE_REPORT,
    S2_LABELS,
    S2_PAIRS,
    SEGMENTS_2M,
    SEGMENTS_LABELLED,
)
from seaice_tasks.storage import Lake

pytestmark = pytest.mark.integration

DAG_ID = "seaice_daily"
#: Work items small enough that the resample job is still running when the test kills it.
CONF = {"resample": {"max_photons_per_chunk": 50_000}}
RUN_TIMEOUT_S = 900
#: Seconds a triggered run of a paused DAG is watched to stay queued.
PAUSED_WATCH_S = 8
#: Products the day's runs write (no model is promoted here: classify and after are skipped).
PRODUCTS = (INVENTORY, SEGMENTS_2M, S2_LABELS, S2_PAIRS, SEGMENTS_LABELLED)
_STATE: dict[str, Any] = {}


def _day_files(lake_dir: Path, day: str) -> dict[str, dict[str, str]]:
    """Every committed partition of the day's products -> {file: sha256} (the manifest's checksums)."""
    import datetime as dt

    lake = Lake(lake_dir)
    out: dict[str, dict[str, str]] = {}
    for product in PRODUCTS:
        for key in lake.partitions(product.name, dt.date.fromisoformat(day)):
            out[key.relpath] = {f.name: f.sha256 for f in lake.require(key).files}
    return out


def _task_states(client: Any, run_id: str) -> dict[str, tuple[str | None, int]]:
    return {t["task_id"]: (t["state"], t["try_number"]) for t in client.task_instances(DAG_ID, run_id)}


def _kill_task_process(ti_id: str, timeout_s: float = 120) -> int:
    """SIGKILL the process group of the task runner of one task instance (``airflow worker -- <ti id>``)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for proc in psutil.process_iter(["cmdline"]):
            title = " ".join(proc.info["cmdline"] or []).split()  # setproctitle pads the title
            if title == ["airflow", "worker", "--", ti_id]:  # the supervisor is "... LocalExecutor: <id>"
                children = proc.children(recursive=True)
                if any("java" in (c.name() or "") for c in children):  # spark-submit is running
                    os.killpg(os.getpgid(proc.pid), signal.SIGKILL)
                    return proc.pid
        time.sleep(0.5)
    raise AssertionError(f"no running task process for task instance {ti_id}")


def _wait_backfills_done(client: Any, timeout_s: float = 120) -> list[dict[str, Any]]:
    """Wait until every backfill of the DAG is marked complete (one may be active per DAG); returns them."""
    deadline = time.monotonic() + timeout_s
    while True:
        backfills: list[dict[str, Any]] = client.request("GET", f"/backfills?dag_id={DAG_ID}")["backfills"]
        if all(b["completed_at"] for b in backfills):
            return backfills
        assert time.monotonic() < deadline, f"a backfill is still active: {backfills}"
        time.sleep(1)


def test_triggered_while_paused_waits_then_runs_and_a_killed_task_is_retried(seaice_airflow: dict[str, Any]) -> None:
    """REST: the DAG is paused at creation; a run triggered then stays queued; unpaused it runs; the
    resample task's process is SIGKILLed mid-job and its retry succeeds."""
    client, day = seaice_airflow["client"], seaice_airflow["days"][0]
    assert client.request("GET", f"/dags/{DAG_ID}")["is_paused"] is True
    run = client.trigger(DAG_ID, logical_date=f"{day}T00:00:00Z", conf=CONF)
    run_id = run["dag_run_id"]
    time.sleep(PAUSED_WATCH_S)
    assert client.run(DAG_ID, run_id)["state"] == "queued"
    assert client.set_paused(DAG_ID, False)["is_paused"] is False

    killed, current = None, {}
    for current in client.iter_wait(DAG_ID, run_id, RUN_TIMEOUT_S):  # noqa: B007 (the last one is the end)
        if killed is None:
            tis = {t["task_id"]: t for t in client.task_instances(DAG_ID, run_id)}
            if tis["resample_2m"]["state"] == "running":
                killed = _kill_task_process(tis["resample_2m"]["id"])
    assert killed is not None
    states = _task_states(client, run_id)
    assert current["state"] == "success", states
    assert states["resample_2m"] == ("success", 2)  # the killed try, then the retry
    assert states["discover"] == ("success", 1) and states["colocate"][0] == "success"
    assert states["classify_model"][0] == "skipped"  # no model promoted in this lake
    files = _day_files(seaice_airflow["lake"], day)
    assert any(k.startswith("segments_2m/") for k in files) and any(k.startswith("s2_labels/") for k in files)
    _STATE["first_run"] = files
    # the killed try is an incident, marked recovered by the retry's success
    incidents = [i for i in list_incidents(Lake(seaice_airflow["lake"])) if i["task_id"] == "resample_2m"]
    assert [(i["try_number"], i["recovered"], i["run_id"]) for i in incidents] == [(1, True, run_id)], incidents
    # recorded by the scheduler when it finds the try dead (its listener call), else by the retry's start
    assert incidents[0]["error"] == LOST_TRY_ERROR or "resample_2m" in incidents[0]["error"], incidents


def test_backfill_of_two_days_reprocesses_the_completed_one_byte_identically(seaice_airflow: dict[str, Any]) -> None:
    """``airflow backfill create`` over both days with ``--reprocess-behavior completed``."""
    if "first_run" not in _STATE:
        pytest.skip("needs the triggered run of the test above")
    stack, client, days = seaice_airflow["stack"], seaice_airflow["client"], seaice_airflow["days"]
    stack.airflow("backfill", "create", "--dag-id", DAG_ID, "--from-date", days[0], "--to-date", days[1],
                  "--reprocess-behavior", "completed", "--dag-run-conf", json.dumps(CONF))
    deadline = time.monotonic() + 60
    while not (runs := client.request("GET", f"/dags/{DAG_ID}/dagRuns?run_type=backfill")["dag_runs"]):
        assert time.monotonic() < deadline, "the backfill created no run"
        time.sleep(1)
    assert sorted(r["logical_date"][:10] for r in runs) == list(days)
    ends = {r["logical_date"][:10]: client.wait_run(DAG_ID, r["dag_run_id"], RUN_TIMEOUT_S) for r in runs}
    assert {d: r["state"] for d, r in ends.items()} == {d: "success" for d in days}
    _wait_backfills_done(client)  # the scheduler marks the backfill complete a moment after its runs
    assert _day_files(seaice_airflow["lake"], days[0]) == _STATE["first_run"]  # re-run: the same bytes
    second = _day_files(seaice_airflow["lake"], days[1])
    assert any(k.startswith("segments_2m/") for k in second)
    # the truncated granule of the second day is a recorded skip; its good neighbour was processed
    report = json.loads(Lake(seaice_airflow["lake"]).open_file(RESAMPLE_REPORT.key(date=days[1]), REPORT_FILE))
    assert [Path(s["uri"]).name for s in report["skipped"]] == [seaice_airflow["corrupt"].name], report["skipped"]
    assert "not a readable HDF5 file" in report["skipped"][0]["reason"]


#: Where the browser test leaves its screenshots (gitignored; look at them after a run).
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "ui-screenshots"
#: Debian's Chromium (``make browser`` installs it); Playwright drives it, it downloads no browser.
CHROMIUM = Path("/usr/bin/chromium")
#: Milliseconds Playwright waits for one element or page.
UI_TIMEOUT_MS = 60_000
VIEWPORT = {"width": 1400, "height": 900}


def _pick_datetime(page: Any, index: int, day: str) -> None:
    """Fill the ``index``-th date-time picker of the backfill form (its popover's date and time fields)."""
    page.get_by_test_id("datetime-input").nth(index).click()
    popover = page.locator("[data-scope=popover][data-part=content][data-state=open]")
    popover.get_by_placeholder("YYYY/MM/DD").fill(day.replace("-", "/"))
    popover.get_by_placeholder("HH:mm").fill("00:00")
    page.keyboard.press("Escape")


def _login(page: Any, stack: Any, screenshot: Path | None = None) -> None:
    """Log into the UI through the simple auth manager's form (a page that needs a login redirects there)."""
    page.goto(f"{stack.api_url}/dags/{DAG_ID}")
    page.wait_for_url("**/auth/login**")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", stack.password)
    if screenshot is not None:
        page.screenshot(path=screenshot)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/auth/" not in url)


def test_ui_backfill_of_one_day_and_the_skipped_granule_in_its_task_log(seaice_airflow: dict[str, Any]) -> None:
    """The users' view in headless Chromium: log in, open the DAG, backfill one day from the UI's
    dialog ("All Runs"), wait for it, open the resample task's log and find the corrupt granule's skip."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium")
    stack, client, day = seaice_airflow["stack"], seaice_airflow["client"], seaice_airflow["days"][1]
    corrupt = seaice_airflow["corrupt"].name
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    before = {b["id"] for b in _wait_backfills_done(client)}  # the dialog refuses a second active backfill
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(UI_TIMEOUT_MS)
            _login(page, stack, SCREENSHOTS / "01_login.png")
            page.goto(f"{stack.api_url}/dags/{DAG_ID}")
            page.get_by_text("resample_2m").first.wait_for()
            page.screenshot(path=SCREENSHOTS / "02_dag.png")

            page.get_by_role("button", name="Trigger").click()
            page.get_by_text("Backfill", exact=True).click()
            _pick_datetime(page, 0, day)
            _pick_datetime(page, 1, day)
            page.get_by_text("All Runs", exact=True).click()
            page.get_by_text("1 run will be triggered").wait_for()
            page.screenshot(path=SCREENSHOTS / "03_backfill_dialog.png")
            page.get_by_role("button", name="Run Backfill").click()
            page.get_by_text("Backfill generated").first.wait_for()  # the dialog's confirmation
            page.get_by_text("Backfill in progress").first.wait_for()
            page.screenshot(path=SCREENSHOTS / "04_backfill_running.png")
            created = [b for b in client.request("GET", f"/backfills?dag_id={DAG_ID}")["backfills"]
                       if b["id"] not in before]
            assert len(created) == 1, created
            deadline = time.monotonic() + RUN_TIMEOUT_S
            while not (backfill := client.request("GET", f"/backfills/{created[0]['id']}"))["completed_at"]:
                assert time.monotonic() < deadline, f"the UI's backfill did not complete: {backfill}"
                time.sleep(2)
            assert (backfill["from_date"][:10], backfill["to_date"][:10]) == (day, day)
            assert backfill["reprocess_behavior"] == "completed"  # the dialog's "All Runs"
            runs = [r for r in client.request("GET", f"/dags/{DAG_ID}/dagRuns?run_type=backfill")["dag_runs"]
                    if r["logical_date"][:10] == day]
            assert [r["state"] for r in runs] == ["success"], runs

            run_path = f"{stack.api_url}/dags/{DAG_ID}/runs/{urllib.parse.quote(runs[0]['dag_run_id'], safe='')}"
            page.goto(run_path)
            page.get_by_text("resample_2m").first.wait_for()
            page.screenshot(path=SCREENSHOTS / "05_run.png")
            page.goto(f"{run_path}/tasks/resample_2m")
            page.get_by_placeholder("Search logs").fill(corrupt)
            line = page.get_by_text(f"skipped: {seaice_airflow['corrupt']}").first
            line.wait_for()
            page.screenshot(path=SCREENSHOTS / "06_task_log.png")
            assert "not a readable HDF5 file" in line.inner_text()
        finally:
            browser.close()


#: A config the resample job refuses (exit 2 before anything is written): every try of the task fails.
BAD_CONF = {"resample": {"max_photons_per_chunk": 0}}


def test_a_failing_task_is_an_incident_in_seaice_status_and_its_log_in_the_ui(seaice_airflow: dict[str, Any]) -> None:
    """Every try of resample_2m fails (a refused config): the run ends failed, the last try is an open
    final incident in the lake, ``seaice status`` lists the failed task from the REST API and the
    incident from the lake, and the UI shows the job's one-line error in the task's log."""
    from playwright.sync_api import sync_playwright

    stack, client, day = seaice_airflow["stack"], seaice_airflow["client"], seaice_airflow["days"][0]
    run_id = f"bad_config__{day}"
    client.trigger(DAG_ID, logical_date=None, conf={**BAD_CONF, "date": day}, run_id=run_id)
    end = client.wait_run(DAG_ID, run_id, RUN_TIMEOUT_S)
    states = _task_states(client, run_id)
    assert end["state"] == "failed", states
    assert states["resample_2m"] == ("failed", 3) and states["s2_labels"][0] == "success"  # the others ran
    assert states["colocate"][0] == "upstream_failed"

    env = dict(os.environ, SEAICE_AIRFLOW_URL=stack.api_url, SEAICE_AIRFLOW_PASSWORD=stack.password)
    seaice = str(Path(sys.executable).with_name("seaice"))
    lake = str(seaice_airflow["lake"])
    proc = subprocess.run([seaice, "status", "--lake", lake, "--today", day, "--json"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    status = json.loads(proc.stdout)
    assert {"dag_id": DAG_ID, "run_id": run_id, "task_id": "resample_2m", "map_index": -1, "try_number": 3,
            "state": "failed"} in status["airflow"]["failed_tasks"]
    assert any(r["run_id"] == run_id and r["state"] == "failed" for r in status["airflow"]["runs"])
    mine = [i for i in status["open_incidents"] if i["run_id"] == run_id]
    assert [(i["task_id"], i["try_number"], i["final"]) for i in mine] == [
        ("resample_2m", 1, False), ("resample_2m", 2, False), ("resample_2m", 3, True)], mine
    table = subprocess.run([seaice, "status", "--lake", lake, "--today", day], env=env, capture_output=True,
                           text=True, timeout=120).stdout
    assert f"seaice_daily.resample_2m  failed  try 3  {run_id}" in table, table

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(UI_TIMEOUT_MS)
            _login(page, stack)
            page.goto(f"{stack.api_url}/dags/{DAG_ID}/runs/{urllib.parse.quote(run_id, safe='')}/tasks/resample_2m")
            page.get_by_placeholder("Search logs").fill("max_photons_per_chunk")
            line = page.get_by_text("resample: error:").first
            line.wait_for()
            page.screenshot(path=SCREENSHOTS / "07_failed_task_log.png")
            assert "max_photons_per_chunk" in line.inner_text()
        finally:
            browser.close()
