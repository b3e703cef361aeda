"""Failure monitoring: every failed task try as an incident in the lake (docs/operations.md).

The Airflow listener ``plugins/seaice_monitoring.py`` turns each failed try (retries included)
into an :class:`Incident` and calls :func:`record_incident`; nothing here imports Airflow, the
plugin passes plain values.  Incidents are partitions ``incidents/date=D/name=<id>`` (D = the
run's day, id = a hash of dag, run, task, map index and try, so a try recorded twice is one
incident) holding ``incident.json``; :func:`list_incidents` reads them back for ``seaice
status``.  An incident is *open* while no later success of the same task instance is recorded
(:func:`record_recovery`, called by the listener on success after a failed try).  A try whose
process was killed (SIGKILL, out of memory, a lost host) cannot report itself: when the next try
starts, :func:`record_lost_tries` records every earlier try that has no incident.

Examples
--------
>>> inc = Incident(dag_id="seaice_daily", run_id="scheduled__2019-11-04", task_id="resample_2m",
...                map_index=-1, try_number=1, error="boom", day="2019-11-04")
>>> inc.incident_id == inc.incident_id and len(inc.incident_id)
16
>>> granule_of("granule 20191104195311_05940510: truncated file")
'20191104195311_05940510'
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import re
import urllib.parse
from typing import TYPE_CHECKING, Any, Final

from seaice_tasks.outputs import BytesOutput, write_partition
from seaice_tasks.products import INCIDENT_FILE, INCIDENTS
from seaice_tasks.storage import Lake

if TYPE_CHECKING:
    from seaice_tasks.airflow_stack import AirflowClient

__all__ = ["Incident", "granule_of", "record_incident", "record_recovery", "record_lost_tries", "LOST_TRY_ERROR",
           "list_incidents", "lake_status", "airflow_status", "status_table", "MAX_ERROR_CHARS", "FAILED_TASK_STATES"]

#: Error texts are cut to this length in an incident (the full text is in the task log).
MAX_ERROR_CHARS: Final[int] = 2000
_GRANULE_RE: Final = re.compile(r"(?<!\d)(\d{14}_\d{8})(?!\d)")


def granule_of(text: str) -> str | None:
    """The first ICESat-2 granule key (``YYYYMMDDhhmmss_RRRRCCSS``) named in a text, if any."""
    m = _GRANULE_RE.search(text or "")
    return m.group(1) if m else None


@dataclasses.dataclass(frozen=True)
class Incident:
    """One failed task try.

    Attributes
    ----------
    dag_id, run_id, task_id : str
        Where it failed.
    map_index : int
        Mapped task index (-1: not mapped).
    try_number : int
        The try that failed (1 = first).
    error : str
        The error (cut to :data:`MAX_ERROR_CHARS`).
    day : str
        The run's UTC day ``YYYY-MM-DD`` (its logical date; the partition's date).
    granule : str or None
        A granule named by the error or the task's map argument.
    log_url : str
        Link to the try's log in the Airflow UI.
    final : bool
        No retry is left: the task instance ended failed.
    at_utc : str
        When it was recorded (ISO 8601, UTC).
    """

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int
    error: str
    day: str
    granule: str | None = None
    log_url: str = ""
    final: bool = False
    at_utc: str = ""

    @property
    def incident_id(self) -> str:
        """Stable id of this try (16 hex digits)."""
        key = f"{self.dag_id}\0{self.run_id}\0{self.task_id}\0{self.map_index}\0{self.try_number}"
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    @property
    def instance(self) -> tuple[str, str, str, int]:
        """The task instance the try belongs to."""
        return (self.dag_id, self.run_id, self.task_id, self.map_index)


def record_incident(lake: Lake, incident: Incident) -> str:
    """Commit one incident; returns its partition path.  Idempotent for the same try."""
    doc = dataclasses.asdict(incident)
    doc["error"] = (incident.error or "")[:MAX_ERROR_CHARS]
    doc["granule"] = incident.granule or granule_of(incident.error)
    doc["at_utc"] = incident.at_utc or dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    doc["incident_id"] = incident.incident_id
    doc["recovered"] = False
    return _commit(lake, doc)


def _commit(lake: Lake, doc: dict[str, Any]) -> str:
    """Write one incident document as its partition (manifest info: dag, task, final, recovered)."""
    key = INCIDENTS.key(date=dt.date.fromisoformat(doc["day"]), name=doc["incident_id"])
    write_partition(lake, key, [BytesOutput(key, INCIDENT_FILE, json.dumps(doc, sort_keys=True, indent=1).encode())],
                    None, {k: doc[k] for k in ("dag_id", "task_id", "final", "recovered")})
    return key.relpath


#: Error text of a try that ended without reporting (its process was killed).
LOST_TRY_ERROR: Final[str] = ("the try ended without reporting: its process was killed (SIGKILL, out of memory or a "
                              "lost host); see the task log")


def record_lost_tries(lake: Lake, started: Incident) -> list[str]:
    """Record the tries before ``started.try_number`` of its task instance that have no incident.

    ``started`` describes the try that is starting now (its ``error`` is ignored); each earlier
    try without an incident becomes one with :data:`LOST_TRY_ERROR`.  Returns the partitions written.
    """
    known = {d["try_number"] for d in list_incidents(lake, dt.date.fromisoformat(started.day))
             if (d["dag_id"], d["run_id"], d["task_id"], d["map_index"]) == started.instance}
    written = []
    for try_number in range(1, started.try_number):
        if try_number not in known:
            lost = dataclasses.replace(started, try_number=try_number, error=LOST_TRY_ERROR, final=False, at_utc="")
            written.append(record_incident(lake, lost))
    return written


def list_incidents(lake: Lake, since: dt.date | None = None) -> list[dict[str, Any]]:
    """Every recorded incident (of days on or after ``since``), oldest first."""
    out = []
    for key in lake.partitions(INCIDENTS.name):
        if since is not None and key.date is not None and key.date < since:
            continue
        out.append(json.loads(lake.open_file(key, INCIDENT_FILE)))
    return sorted(out, key=lambda d: (d["at_utc"], d["dag_id"], d["run_id"], d["task_id"], d["map_index"],
                                      d["try_number"]))


def record_recovery(lake: Lake, dag_id: str, run_id: str, task_id: str, map_index: int, day: str) -> int:
    """Mark the open incidents of a task instance recovered (a later try succeeded); how many."""
    n = 0
    for doc in list_incidents(lake, dt.date.fromisoformat(day)):
        if (doc["dag_id"], doc["run_id"], doc["task_id"], doc["map_index"]) == (dag_id, run_id, task_id, map_index) \
                and not doc["recovered"]:
            doc["recovered"] = True
            _commit(lake, doc)
            n += 1
    return n


def lake_status(lake: Lake, since: dt.date) -> dict[str, Any]:
    """What ``seaice status`` shows from the lake: per day and stage, skipped and failed inputs; incidents.

    Returns
    -------
    dict
        ``days``: ``{day: {report product: {"skipped": [...], "failed": [...], "stale": [...]}}}``
        from the job reports' manifests (days on or after ``since``; ``stale``: partitions kept from
        an earlier run because their input failed or was skipped in the last one);
        ``open_incidents``: incidents whose task instance has no later success (newest last);
        ``recovered_incidents``: their count.
    """
    from seaice_tasks.products import DAY, PRODUCTS

    days: dict[str, dict[str, Any]] = {}
    for product in (p for p in PRODUCTS.values() if p.shape == DAY and p.name.endswith("_report")):
        for key in lake.partitions(product.name):
            if key.date is None or key.date < since:
                continue
            info = lake.require(key).info
            days.setdefault(key.date.isoformat(), {})[product.name] = {
                "skipped": list(info.get("skipped", [])), "failed": list(info.get("failed", [])),
                "stale": list(info.get("stale", []))}
    incidents = list_incidents(lake, since)
    return {"since": since.isoformat(), "days": dict(sorted(days.items())),
            "open_incidents": [d for d in incidents if not d["recovered"]],
            "recovered_incidents": sum(1 for d in incidents if d["recovered"])}


#: States of a task instance that ``seaice status`` lists as failed (the last try failed or is waiting to retry).
FAILED_TASK_STATES: Final[tuple[str, ...]] = ("failed", "up_for_retry", "upstream_failed")
#: DAG ids of the pipeline (the monitoring covers these only).
DAG_PREFIX: Final[str] = "seaice_"


def airflow_status(client: AirflowClient, runs: int = 20) -> dict[str, Any]:
    """What ``seaice status`` shows from the Airflow REST API: recent runs and failed task instances.

    Parameters
    ----------
    client : AirflowClient
        A client of the deployment's API server (``/api/v2``).
    runs : int
        How many of the newest runs (by run-after time) of all seaice DAGs are listed.

    Returns
    -------
    dict
        ``runs``: ``[{dag_id, run_id, run_type, logical_date, state, start_date, end_date}]``,
        newest first; ``failed_tasks``: the task instances of those runs in a state of
        :data:`FAILED_TASK_STATES` (``{dag_id, run_id, task_id, map_index, try_number, state}``).
    """
    query = urllib.parse.urlencode({"limit": 100, "dag_id_pattern": DAG_PREFIX})
    dag_ids = sorted(d["dag_id"] for d in client.request("GET", f"/dags?{query}")["dags"]
                     if str(d["dag_id"]).startswith(DAG_PREFIX))
    recent: list[dict[str, Any]] = []
    for dag_id in dag_ids:
        recent += client.runs(dag_id, limit=runs, order_by="-run_after")
    recent.sort(key=lambda r: (str(r.get("run_after") or ""), str(r["dag_run_id"])), reverse=True)
    recent = recent[:runs]
    failed = []
    for run in recent:
        for ti in client.task_instances(run["dag_id"], run["dag_run_id"]):
            if ti["state"] in FAILED_TASK_STATES:
                failed.append({"dag_id": run["dag_id"], "run_id": run["dag_run_id"], "task_id": ti["task_id"],
                               "map_index": ti["map_index"], "try_number": ti["try_number"], "state": ti["state"]})
    return {"runs": [{"dag_id": r["dag_id"], "run_id": r["dag_run_id"], "run_type": r["run_type"],
                      "logical_date": r["logical_date"], "state": r["state"], "start_date": r["start_date"],
                      "end_date": r["end_date"]} for r in recent],
            "failed_tasks": failed}


def status_table(status: dict[str, Any]) -> str:
    """``lake_status`` as plain-text tables (one line per day and stage, one per open incident)."""
    lines = [f"job reports since {status['since']}:",
             f"  {'day':10s}  {'stage':18s}  {'skipped':>7s}  {'failed':>6s}  {'stale':>5s}"]
    for day, stages in status["days"].items():
        for stage, rec in sorted(stages.items()):
            stale = rec.get("stale", [])
            counts = f"{len(rec['skipped']):7d}  {len(rec['failed']):6d}  {len(stale):5d}"
            lines.append(f"  {day:10s}  {stage:18s}  {counts}")
            for fail in rec["failed"]:
                what = next((str(v) for k, v in fail.items() if k != "reason"), "?")
                lines.append(f"      failed {what}: {str(fail.get('reason', ''))[:100]}")
            for path in stale:
                lines.append(f"      stale {path} (kept from an earlier run)")
    lines.append(f"open incidents: {len(status['open_incidents'])} (recovered: {status['recovered_incidents']})")
    for d in status["open_incidents"]:
        lines.append(f"  {d['at_utc']}  {d['dag_id']}.{d['task_id']}[{d['map_index']}] try {d['try_number']}"
                     f"{' (final)' if d['final'] else ''}  granule {d['granule'] or '-'}  {d['error'][:80]}")
        if d.get("log_url"):
            lines.append(f"      log: {d['log_url']}")
    airflow = status.get("airflow")
    if airflow is None:
        lines.append("airflow: not asked (--airflow URL or $SEAICE_AIRFLOW_URL)")
    elif "error" in airflow:
        lines.append(f"airflow: unreachable: {airflow['error']}")
    else:
        lines.append(f"recent runs: {len(airflow['runs'])}")
        for r in airflow["runs"]:
            lines.append(f"  {str(r['logical_date'] or '-')[:10]:10s}  {r['dag_id']:16s}  {r['state'] or '-':8s}  "
                         f"{r['run_type']:9s}  {r['run_id']}")
        lines.append(f"failed tasks: {len(airflow['failed_tasks'])}")
        for t in airflow["failed_tasks"]:
            index = "" if t["map_index"] < 0 else f"[{t['map_index']}]"
            lines.append(f"  {t['dag_id']}.{t['task_id']}{index}  {t['state']}  try {t['try_number']}  {t['run_id']}")
    return "\n".join(lines)
