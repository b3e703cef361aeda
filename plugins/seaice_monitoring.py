"""Airflow plugin: every failed task try of the seaice DAGs becomes an incident in the lake.

A listener (Airflow's ``on_task_instance_failed`` hook, called by the task runner for each
failed try, ``UP_FOR_RETRY`` included; a try killed before it could report is recorded when the
next try starts, ``on_task_instance_running``) records the try with
:func:`seaice_tasks.monitoring.record_incident` (dag, run, task, map index, granule, try,
error, log URL) in the lake of the run (param ``lake``, else ``$SEAICE_LAKE``), and hands it to
the configured notifier; ``on_task_instance_success`` marks the task's earlier incidents
recovered.  Monitoring must never fail a task: errors here are logged and swallowed.

Notifier (off by default): ``SEAICE_INCIDENT_WEBHOOK=<url>`` posts each incident as JSON
(:class:`WebhookNotifier`, an Airflow ``BaseNotifier``, usable as ``on_failure_callback`` too).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import urllib.request
from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin
from airflow.sdk import BaseNotifier

try:  # the hook marker of Airflow 3's listener spec
    from airflow.listeners import hookimpl
except ImportError:  # pragma: no cover - older layouts
    from airflow.sdk._shared.listeners import hookimpl  # type: ignore[no-redef]

log = logging.getLogger("seaice.monitoring")

#: DAGs whose failures are recorded.
DAG_PREFIX = "seaice_"
WEBHOOK_ENV = "SEAICE_INCIDENT_WEBHOOK"
WEBHOOK_TIMEOUT_S = 10


class WebhookNotifier(BaseNotifier):
    """POST the incident of a failed try as JSON to ``url`` (the context's ``seaice_incident``)."""

    template_fields = ("url",)

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url

    def notify(self, context: Any) -> None:
        """Send one incident."""
        body = json.dumps(context.get("seaice_incident") or {}, sort_keys=True).encode()
        req = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"},
                                     method="POST")
        with urllib.request.urlopen(req, timeout=WEBHOOK_TIMEOUT_S) as resp:
            resp.read()


def _lake(ti: Any) -> Any:
    from seaice_tasks.storage import lake_from_env

    params = {}
    try:
        params = dict(ti.get_template_context().get("params") or {})
    except Exception:  # an API-side TaskInstance has no template context
        params = {}
    return lake_from_env(params.get("lake") or None)


def _day(ti: Any) -> str:
    try:
        ctx = ti.get_template_context()
        params = ctx.get("params") or {}
        return str(params.get("date") or ctx.get("ds"))
    except Exception:
        return str(getattr(ti, "start_date", "") or "")[:10]


def _map_arg(ti: Any) -> str:
    try:
        return str(ti.rendered_map_index or "")
    except Exception:
        return ""


@hookimpl
def on_task_instance_failed(previous_state: Any, task_instance: Any, error: Any) -> None:
    """Record the failed try (retries included) and notify."""
    del previous_state
    ti = task_instance
    if not str(getattr(ti, "dag_id", "")).startswith(DAG_PREFIX):
        return
    try:
        from seaice_tasks.monitoring import Incident, granule_of, record_incident

        text = str(error or "")
        try_number = int(getattr(ti, "try_number", 1) or 1)
        max_tries = int(getattr(ti, "max_tries", 0) or 0)
        incident = Incident(
            dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id, map_index=int(getattr(ti, "map_index", -1)),
            try_number=try_number, error=f"{type(error).__name__}: {text}" if isinstance(error, BaseException)
            else text, day=_day(ti), granule=granule_of(_map_arg(ti)) or granule_of(text),
            log_url=str(getattr(ti, "log_url", "") or ""), final=try_number > max_tries,
        )
        path = record_incident(_lake(ti), incident)
        log.warning("seaice incident recorded: %s (%s.%s try %d)", path, ti.dag_id, ti.task_id, try_number)
        url = os.environ.get(WEBHOOK_ENV)
        if url:
            import dataclasses

            WebhookNotifier(url).notify({"seaice_incident": {**dataclasses.asdict(incident), "partition": path}})
    except Exception:
        log.exception("seaice monitoring: could not record the failure of %s", getattr(ti, "task_id", "?"))


@hookimpl
def on_task_instance_running(previous_state: Any, task_instance: Any) -> None:
    """A retry starts: earlier tries that ended without reporting (killed) become incidents."""
    del previous_state
    ti = task_instance
    try_number = int(getattr(ti, "try_number", 1) or 1)
    if not str(getattr(ti, "dag_id", "")).startswith(DAG_PREFIX) or try_number <= 1:
        return
    try:
        from seaice_tasks.monitoring import Incident, granule_of, record_lost_tries

        started = Incident(dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id,
                           map_index=int(getattr(ti, "map_index", -1)), try_number=try_number, error="",
                           day=_day(ti), granule=granule_of(_map_arg(ti)),
                           log_url=str(getattr(ti, "log_url", "") or ""))
        for path in record_lost_tries(_lake(ti), started):
            log.warning("seaice incident recorded for a killed try: %s", path)
    except Exception:
        log.exception("seaice monitoring: could not check the earlier tries of %s", getattr(ti, "task_id", "?"))


@hookimpl
def on_task_instance_success(previous_state: Any, task_instance: Any) -> None:
    """A try succeeded: the instance's earlier incidents are recovered."""
    del previous_state
    ti = task_instance
    if not str(getattr(ti, "dag_id", "")).startswith(DAG_PREFIX) or int(getattr(ti, "try_number", 1) or 1) <= 1:
        return
    try:
        from seaice_tasks.monitoring import record_recovery

        record_recovery(_lake(ti), ti.dag_id, ti.run_id, ti.task_id, int(getattr(ti, "map_index", -1)), _day(ti))
    except Exception:
        log.exception("seaice monitoring: could not record the recovery of %s", getattr(ti, "task_id", "?"))


class SeaiceMonitoringPlugin(AirflowPlugin):
    """Registers the failure listener."""

    name = "seaice_monitoring"
    listeners: ClassVar[list[Any]] = [sys.modules[__name__]]  # this module holds the hook implementations
