"""A real Airflow 3 deployment on loopback, and a small client of its REST API.

``AirflowStack`` runs ``airflow db migrate`` against a Postgres metadata database, then starts
``airflow api-server``, ``scheduler``, ``dag-processor`` and ``triggerer`` as separate process
groups on 127.0.0.1 (what a data engineer runs on one host; the production stack in
docker-compose runs the same commands in containers).  Optionally a Spark standalone master and
worker are started too, and ``spark_default`` points at them.  ``stop`` ends every group with
SIGINT, then SIGTERM, then SIGKILL.

``AirflowClient`` speaks the public REST API (``/api/v2``) with a token from the simple auth
manager (``POST /auth/token``): trigger a run, read runs and task instances, pause and unpause.
It uses only the standard library, so ``seaice status`` can use it without Airflow installed.

Nothing here imports Airflow.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

from seaice_tasks.orchestration import airflow_env, spark_connection, write_pools_file

__all__ = [
    "COMPONENTS",
    "TERMINAL_RUN_STATES",
    "AirflowApiError",
    "AirflowClient",
    "AirflowStack",
    "SparkStandalone",
    "postgres_url",
    "create_database",
    "drop_database",
    "free_port",
    "stop_group",
    "wait_port",
    "write_private_file",
]

#: The Airflow processes of one deployment, in start order.
COMPONENTS: Final[tuple[str, ...]] = ("api-server", "scheduler", "dag-processor", "triggerer")
#: Run states after which a DAG run no longer changes.
TERMINAL_RUN_STATES: Final[frozenset[str]] = frozenset({"success", "failed"})
#: Local Postgres service of the machine (trust auth).
POSTGRES_ADMIN: Final[str] = "postgresql://postgres@127.0.0.1:5432/postgres"
#: Seconds to wait for the API server to answer after start.
START_TIMEOUT_S: Final[float] = 180.0
#: Seconds a stage of ``stop_group`` waits before the next signal.
STOP_WAIT_S: Final[float] = 10.0
#: Poll interval of the waiting helpers (s).
POLL_S: Final[float] = 1.0
#: Default user of the simple auth manager (role admin).
DEFAULT_USER: Final[str] = "admin"
#: Timeout of one REST call (s).
HTTP_TIMEOUT_S: Final[float] = 30.0
#: Permission bits of a file holding a secret: read and write for its owner only.
PRIVATE_FILE_MODE: Final[int] = 0o600


class AirflowApiError(RuntimeError):
    """A REST call answered with an HTTP error (status and body in the message)."""

    def __init__(self, method: str, url: str, status: int, body: str) -> None:
        super().__init__(f"{method} {url}: HTTP {status}: {body[:500]}")
        self.status = status


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_private_file(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` as a file only its owner can read (mode 0600), atomically.

    The text goes into a new file of the same folder that is created with mode 0600 (whatever the
    umask), which then replaces ``path``: no reader ever sees the secret under wider permissions,
    an older file's mode does not survive, and a half-written file never appears under ``path``.

    Parameters
    ----------
    path : path
        File to write (its folder must exist), e.g. the simple auth manager's password file.
    text : str
        Content, written as UTF-8.

    Returns
    -------
    Path
        ``path``.
    """
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), PRIVATE_FILE_MODE)
            fh.write(text)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return target


def stop_group(proc: subprocess.Popen[bytes], wait_s: float = STOP_WAIT_S) -> None:
    """Stop a process group started with ``start_new_session``: SIGINT, then SIGTERM, then SIGKILL."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            continue
    # children that outlived their leader (task runners, spark-submit) go with the group
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def postgres_url(database: str, *, admin: str = POSTGRES_ADMIN) -> str:
    """SQLAlchemy URL of ``database`` on the server of ``admin`` (driver psycopg2, as Airflow expects)."""
    parts = urllib.parse.urlsplit(admin)
    return urllib.parse.urlunsplit(("postgresql+psycopg2", parts.netloc, f"/{database}", "", ""))


def _admin_sql(sql: str, admin: str) -> None:
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.encode())  # identifiers are checked by the callers


def _check_identifier(name: str) -> str:
    if not name.replace("_", "").isalnum() or not name[0].isalpha():
        raise ValueError(f"database name {name!r}: letters, digits and '_' only, starting with a letter")
    return name


def create_database(name: str, *, admin: str = POSTGRES_ADMIN) -> str:
    """Create an empty Postgres database ``name``; returns its SQLAlchemy URL."""
    _admin_sql(f'CREATE DATABASE "{_check_identifier(name)}"', admin)
    return postgres_url(name, admin=admin)


def drop_database(name: str, *, admin: str = POSTGRES_ADMIN) -> None:
    """Drop database ``name`` (its connections are closed first)."""
    _admin_sql(f'DROP DATABASE IF EXISTS "{_check_identifier(name)}" WITH (FORCE)', admin)


def wait_port(port: int, proc: subprocess.Popen[bytes], what: str, log: Path,
              timeout_s: float = START_TIMEOUT_S) -> None:
    """Wait until ``proc`` listens on 127.0.0.1:``port``; RuntimeError with its log's tail if it exits or times out."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start (log {log}): {log.read_text()[-3000:]}") from None
            time.sleep(POLL_S / 4)


def _spawn(argv: Sequence[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    fh: IO[bytes]
    with open(log, "ab") as fh:
        return subprocess.Popen(list(argv), env=dict(env), stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


@dataclass
class SparkStandalone:
    """A Spark standalone master and one worker on 127.0.0.1 (``spark-class`` of this environment's pyspark).

    Parameters
    ----------
    log_dir : Path
        Where ``master.log`` and ``worker.log`` go.
    worker_cores : int
        Cores the worker offers.
    worker_memory : str
        Memory the worker offers (``2g``).
    app_cores : int
        Cores one application takes by default (``spark.deploy.defaultCores``), so two jobs of a
        day run side by side on a two-core worker.
    """

    log_dir: Path
    worker_cores: int = 2
    worker_memory: str = "3g"
    app_cores: int = 1
    port: int = 0
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def master_url(self) -> str:
        """``spark://127.0.0.1:<port>``."""
        return f"spark://127.0.0.1:{self.port}"

    def start(self) -> SparkStandalone:
        """Start the master, then the worker, and wait until both listen."""
        spark_class = str(Path(sys.executable).with_name("spark-class"))
        if not Path(spark_class).exists():
            import pyspark

            spark_class = str(Path(pyspark.__file__).parent / "bin" / "spark-class")
        env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1", PYSPARK_PYTHON=sys.executable,
                   SPARK_MASTER_OPTS=f"-Dspark.deploy.defaultCores={self.app_cores}")
        self.port, ui, worker_port, worker_ui = (free_port() for _ in range(4))
        master_log, worker_log = self.log_dir / "master.log", self.log_dir / "worker.log"
        master = _spawn([spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                         "--port", str(self.port), "--webui-port", str(ui)], env, master_log)
        self.procs.append(master)
        wait_port(self.port, master, "Spark master", master_log, START_TIMEOUT_S)
        worker = _spawn([spark_class, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                         "--port", str(worker_port), "--webui-port", str(worker_ui),
                         "--cores", str(self.worker_cores), "--memory", self.worker_memory,
                         "--work-dir", str(self.log_dir / "work"), self.master_url], env, worker_log)
        self.procs.append(worker)
        wait_port(worker_port, worker, "Spark worker", worker_log, START_TIMEOUT_S)
        deadline = time.monotonic() + START_TIMEOUT_S
        while "Successfully registered with master" not in worker_log.read_text(errors="replace"):
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Spark worker did not register: {worker_log.read_text()[-3000:]}")
            time.sleep(POLL_S / 4)
        return self

    def stop(self) -> None:
        """Stop the worker, then the master."""
        for proc in reversed(self.procs):
            stop_group(proc)
        self.procs.clear()


@dataclass
class AirflowStack:
    """One Airflow deployment on loopback: Postgres metadata DB, api-server, scheduler, dag-processor, triggerer.

    Parameters
    ----------
    home : Path
        ``AIRFLOW_HOME`` (config, logs, the process logs under ``processes/``).
    database : str
        Name of a fresh Postgres database on the local server; created by ``start`` (it must not
        exist) and dropped by ``stop`` when ``drop_database_on_stop``.
    extra_env : mapping
        More environment for every process (``SEAICE_LAKE``, ``SEAICE_CATALOG``, retry settings).
    spark_master : str, optional
        Master of ``spark_default`` (``spark://127.0.0.1:7077``); default the embedded ``local[*]``.
    """

    home: Path
    database: str
    extra_env: Mapping[str, str] = field(default_factory=dict)
    spark_master: str | None = None
    drop_database_on_stop: bool = True
    admin: str = POSTGRES_ADMIN
    api_port: int = 0
    password: str = ""
    env: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        """Base URL of the API server (UI at ``/``, REST at ``/api/v2``)."""
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def process_logs(self) -> Path:
        """Folder of the components' stdout/stderr logs."""
        return self.home / "processes"

    def _environment(self) -> dict[str, str]:
        self.api_port = self.api_port or free_port()
        self.password = self.password or secrets.token_urlsafe(12)
        self.home.mkdir(parents=True, exist_ok=True)
        passwords = write_private_file(self.home / "passwords.json", json.dumps({DEFAULT_USER: self.password}))
        env = airflow_env(self.home, sql_alchemy_conn=postgres_url(self.database, admin=self.admin), extra={
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__BASE_URL": self.api_url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{DEFAULT_USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            # task logs as the users read them in the UI (the CLI default of airflow_env is WARNING)
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "SPARK_LOCAL_IP": "127.0.0.1",
        })
        if self.spark_master:
            env["AIRFLOW_CONN_SPARK_DEFAULT"] = spark_connection(self.spark_master)
        env.update(self.extra_env)
        return env

    def airflow(self, *args: str, timeout_s: float = 600.0, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run one ``airflow`` CLI command against this deployment."""
        airflow = str(Path(sys.executable).with_name("airflow"))
        proc = subprocess.run([airflow, *args], env=self.env, capture_output=True, text=True, timeout=timeout_s)
        if check and proc.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} failed ({proc.returncode}): {proc.stderr[-3000:]}")
        return proc

    def start(self) -> AirflowStack:
        """Create the database, migrate it, import the pools (``POOLS``), start the components, wait for the API."""
        self.env = self._environment()
        create_database(self.database, admin=self.admin)
        try:
            self.airflow("db", "migrate")
            self.airflow("pools", "import", str(write_pools_file(self.home / "pools.json")))
            airflow = str(Path(sys.executable).with_name("airflow"))
            for component in COMPONENTS:
                argv = [airflow, component]
                if component == "api-server":
                    argv += ["--host", "127.0.0.1", "--port", str(self.api_port), "--workers", "1"]
                self.procs[component] = _spawn(argv, self.env, self.process_logs / f"{component}.log")
            wait_port(self.api_port, self.procs["api-server"], "airflow api-server",
                       self.process_logs / "api-server.log", START_TIMEOUT_S)
            self.client().wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def client(self) -> AirflowClient:
        """A REST client logged in as the admin user."""
        return AirflowClient(self.api_url, DEFAULT_USER, self.password)

    def alive(self) -> dict[str, bool]:
        """Whether each component's process is still running."""
        return {name: proc.poll() is None for name, proc in self.procs.items()}

    def stop(self) -> None:
        """Stop the components (reverse order), then drop the database."""
        for name in reversed(list(self.procs)):
            stop_group(self.procs.pop(name))
        if self.drop_database_on_stop:
            drop_database(self.database, admin=self.admin)

    def __enter__(self) -> AirflowStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class AirflowClient:
    """The Airflow 3 REST API (``/api/v2``) with a simple-auth-manager token.

    Parameters
    ----------
    base_url : str
        API server URL (``http://127.0.0.1:8080``).
    username, password : str
        Credentials of the simple auth manager; the token is fetched on first use and renewed on 401.
    """

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._credentials = {"username": username, "password": password}
        self._token: str | None = None

    def _raw(self, method: str, path: str, body: object | None, token: str | None) -> Any:
        url = self.base_url + path
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            raise AirflowApiError(method, url, exc.code, exc.read().decode(errors="replace")) from None
        return json.loads(payload) if payload else None

    def token(self) -> str:
        """A JWT for the REST API (``POST /auth/token``)."""
        if self._token is None:
            self._token = str(self._raw("POST", "/auth/token", self._credentials, None)["access_token"])
        return self._token

    def request(self, method: str, path: str, body: object | None = None) -> Any:
        """One call to ``/api/v2<path>``; JSON in and out."""
        try:
            return self._raw(method, "/api/v2" + path, body, self.token())
        except AirflowApiError as exc:
            if exc.status != 401:
                raise
            self._token = None
            return self._raw(method, "/api/v2" + path, body, self.token())

    def wait_healthy(self, timeout_s: float = START_TIMEOUT_S) -> dict[str, Any]:
        """Wait until ``/api/v2/monitor/health`` reports the metadatabase healthy."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                health: dict[str, Any] = self._raw("GET", "/api/v2/monitor/health", None, None)
                if health.get("metadatabase", {}).get("status") == "healthy":
                    return health
            except (OSError, AirflowApiError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.base_url} did not become healthy in {timeout_s:.0f} s")
            time.sleep(POLL_S)

    def wait_dag(self, dag_id: str, timeout_s: float = START_TIMEOUT_S) -> dict[str, Any]:
        """Wait until the dag-processor has parsed ``dag_id``; returns the DAG."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                dag: dict[str, Any] = self.request("GET", f"/dags/{dag_id}")
                return dag
            except AirflowApiError as exc:
                if exc.status != 404 or time.monotonic() > deadline:
                    raise
            time.sleep(POLL_S)

    def set_paused(self, dag_id: str, paused: bool) -> dict[str, Any]:
        """Pause or unpause a DAG (``PATCH /dags/{dag_id}``)."""
        dag: dict[str, Any] = self.request("PATCH", f"/dags/{dag_id}", {"is_paused": paused})
        return dag

    def trigger(self, dag_id: str, *, logical_date: str | None, conf: Mapping[str, Any] | None = None,
                run_id: str | None = None) -> dict[str, Any]:
        """Create a DAG run (``POST /dags/{dag_id}/dagRuns``); ``logical_date`` ISO-8601 or None."""
        body: dict[str, Any] = {"logical_date": logical_date, "conf": dict(conf or {})}
        if run_id:
            body["dag_run_id"] = run_id
        run: dict[str, Any] = self.request("POST", f"/dags/{dag_id}/dagRuns", body)
        return run

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        """One DAG run."""
        run: dict[str, Any] = self.request("GET", f"/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}")
        return run

    def runs(self, dag_id: str = "~", *, limit: int = 100, order_by: str = "-start_date") -> list[dict[str, Any]]:
        """Recent DAG runs of one DAG (``~``: of all DAGs)."""
        query = urllib.parse.urlencode({"limit": limit, "order_by": order_by})
        return list(self.request("GET", f"/dags/{dag_id}/dagRuns?{query}")["dag_runs"])

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Task instances of one run (mapped ones included, one row per map index)."""
        path = f"/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}/taskInstances?limit=1000"
        return list(self.request("GET", path)["task_instances"])

    def iter_wait(self, dag_id: str, run_id: str, timeout_s: float) -> Iterator[dict[str, Any]]:
        """Yield the run every poll until it ends (the last one yielded is terminal); TimeoutError after timeout_s."""
        deadline = time.monotonic() + timeout_s
        while True:
            run = self.run(dag_id, run_id)
            yield run
            if run["state"] in TERMINAL_RUN_STATES:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} of {dag_id} still {run['state']} after {timeout_s:.0f} s")
            time.sleep(POLL_S)

    def wait_run(self, dag_id: str, run_id: str, timeout_s: float) -> dict[str, Any]:
        """Wait until a run ends; returns it."""
        last: dict[str, Any] = {}
        for current in self.iter_wait(dag_id, run_id, timeout_s):
            last = current
        return last
