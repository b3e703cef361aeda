"""docker-compose.yaml, Dockerfile, .env.example and docs/deployment.md agree (no container engine needed).

The file is rendered by ``docker compose config`` when the plugin exists, else by Debian's
``docker-compose`` 1.29 (``make compose-cli``); neither starts or pulls anything.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yaml"
ENV_EXAMPLE = REPO / ".env.example"
DEPLOYMENT_DOC = REPO / "docs" / "deployment.md"

AIRFLOW_SERVICES = frozenset({
    "airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
    "airflow-worker", "airflow-worker-gpu",
})
EXPECTED_SERVICES = AIRFLOW_SERVICES | {"postgres", "redis", "minio", "minio-init", "spark-master", "spark-worker"}
#: Settings every Airflow component must share, with the values that are fixed by the design.
SHARED_ENV: dict[str, str | None] = {
    "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": "http://airflow-apiserver:8080/execution/",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": None,
    "AIRFLOW__CELERY__BROKER_URL": None,
    "AIRFLOW__CELERY__RESULT_BACKEND": None,
    "AIRFLOW__API_AUTH__JWT_SECRET": None,
    "AIRFLOW__CORE__FERNET_KEY": None,
    "AIRFLOW_CONN_SPARK_DEFAULT": None,
    "SEAICE_LAKE": None,
}
SPARK_MASTER_URL = "spark://spark-master:7077"
#: ``${VAR}``, ``${VAR:-default}``, ``${VAR?err}`` ... (after ``$$`` escapes are removed).
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:[:?-][^}]*)?\}|\$([A-Za-z_][A-Za-z0-9_]*)")
#: A pinned tag: digit-dotted version (16.13, 4.2.0-scala2.13, slim-3.3.2-python3.11) or a MinIO release.
PINNED_TAG = re.compile(r"(?<![0-9.])\d+\.\d+(?:\.\d+)*(?![0-9.])|^RELEASE\.\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z$")
SECRET_KEY = re.compile(r"PASSWORD|SECRET|FERNET")


def compose_command() -> list[str]:
    """``docker compose`` when its plugin answers, else ``docker-compose``; fails (never skips) without either."""
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=60, check=False)
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy is not None:
        return [legacy]
    pytest.fail("no compose validator: neither `docker compose` (plugin) nor `docker-compose` is installed; "
                "`make compose-cli` installs Debian's docker-compose", pytrace=False)


def env_file_values(path: Path) -> dict[str, str]:
    """``KEY=value`` lines of an env file (comments and blank lines skipped; one pair of quotes stripped)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key), f"{path.name}: not KEY=value: {line!r}"
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def variables_used(text: str) -> set[str]:
    """Names of the variables a compose file interpolates (``$$`` is a literal dollar, not a variable)."""
    return {a or b for a, b in VARIABLE.findall(text.replace("$$", ""))}


def is_pinned(ref: str) -> bool:
    """An image reference with an exact tag: no ``latest``, no bare or major-only tag, no variable."""
    name, sep, tag = ref.rpartition(":")
    if not sep or not name or "/" in tag or "$" in ref:
        return False
    return "latest" not in tag.lower() and PINNED_TAG.search(tag) is not None


def dockerfile_stages(path: Path) -> tuple[list[tuple[str, str | None]], list[tuple[str | None, str]]]:
    """``FROM`` lines as (image or stage, alias) and ``COPY``/``ADD`` lines as (``--from`` value, sources)."""
    froms: list[tuple[str, str | None]] = []
    copies: list[tuple[str | None, str]] = []
    logical = re.sub(r"\\\n", " ", path.read_text())
    for line in logical.splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        opts = [w for w in words[1:] if w.startswith("--")]
        args = [w for w in words[1:] if not w.startswith("--")]
        if words[0].upper() == "FROM":
            alias = args[2] if len(args) == 3 and args[1].upper() == "AS" else None
            froms.append((args[0], alias))
        elif words[0].upper() in ("COPY", "ADD"):
            source = next((o.split("=", 1)[1] for o in opts if o.startswith("--from=")), None)
            copies.extend((source, src) for src in args[:-1])
    return froms, copies


def dockerignore_allows(context: Path, source: str) -> bool:
    """Whether an allow-list ``.dockerignore`` (``*`` then ``!path`` lines) lets ``source`` into the context."""
    ignore = context / ".dockerignore"
    if not ignore.exists():
        return True
    lines = [ln.strip() for ln in ignore.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    if "*" not in lines:
        return True
    allowed = [ln[1:].rstrip("/") for ln in lines if ln.startswith("!")]
    src = source.rstrip("/")
    return any(src == a or src.startswith(a + "/") for a in allowed)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``config`` of the compose file with a copy of ``.env.example`` as its ``.env``, parsed."""
    env_file = tmp_path_factory.mktemp("compose") / ".env"
    shutil.copyfile(ENV_EXAMPLE, env_file)
    # the caller's environment would override .env values (compose gives the shell precedence)
    defined = env_file_values(ENV_EXAMPLE)
    env = {k: v for k, v in os.environ.items() if k not in defined and not k.startswith("COMPOSE_")}
    proc = subprocess.run([*compose_command(), "--env-file", str(env_file), "-f", str(COMPOSE_FILE), "config"],
                          capture_output=True, text=True, env=env, cwd=env_file.parent, timeout=120, check=False)
    assert proc.returncode == 0, f"compose config failed:\n{proc.stderr}"
    config = yaml.safe_load(proc.stdout)
    assert isinstance(config, dict) and isinstance(config.get("services"), dict), proc.stdout[:2000]
    return config


def service(config: dict[str, Any], name: str) -> dict[str, Any]:
    """One rendered service (fails when it is missing)."""
    services: dict[str, Any] = config["services"]
    assert name in services, f"service {name!r} missing from docker-compose.yaml"
    svc: dict[str, Any] = services[name]
    return svc


def environment(svc: dict[str, Any]) -> dict[str, str]:
    """A rendered service's environment as a mapping (compose renders a list or a mapping)."""
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def command(svc: dict[str, Any]) -> list[str]:
    """A rendered service's command as a list of words."""
    cmd = svc.get("command") or []
    return cmd.split() if isinstance(cmd, str) else [str(c) for c in cmd]


def container_ports(svc: dict[str, Any]) -> set[int]:
    """Container ports a rendered service publishes (``host:port:port/tcp`` strings or ``target`` mappings)."""
    ports: set[int] = set()
    for entry in svc.get("ports", []):
        ports.add(int(entry["target"]) if isinstance(entry, dict) else int(str(entry).split("/")[0].rsplit(":", 1)[-1]))
    return ports


# --- 1. the file renders, with the services the design names -----------------------------------------


def test_config_renders_the_expected_services(rendered: dict[str, Any]) -> None:
    """``config`` with ``.env.example`` exits 0 and lists exactly the stack's services, all values resolved."""
    assert set(rendered["services"]) == EXPECTED_SERVICES
    text = yaml.safe_dump(rendered)
    assert "${" not in text.replace("$${", ""), "an unresolved variable is left in the rendered file"
    for name in ("airflow-init", "minio-init"):
        assert str(service(rendered, name).get("restart", "no")) == "no", f"{name} is a one-shot"


# --- 2. pinned images, builds that exist ---------------------------------------------------------------


@pytest.mark.parametrize(("ref", "pinned"), [
    ("postgres:16.13", True),
    ("apache/spark:4.2.0-scala2.13-java21-ubuntu", True),
    ("apache/airflow:slim-3.3.2-python3.11", True),
    ("minio/minio:RELEASE.2025-09-07T16-13-09Z", True),
    ("postgres", False),
    ("postgres:16", False),
    ("redis:latest", False),
    ("redis:7-alpine", False),
    ("minio/minio:RELEASE.latest", False),
    ("seaice/airflow:${TAG}", False),
    ("localhost:5000/airflow", False),
])
def test_is_pinned(ref: str, pinned: bool) -> None:
    """The pin check itself: exact versions and MinIO releases pass, bare, major-only and latest tags fail."""
    assert is_pinned(ref) is pinned


def test_every_image_is_pinned(rendered: dict[str, Any]) -> None:
    """Every ``image:`` of the rendered file and every ``FROM``/``COPY --from`` image of its Dockerfiles is pinned."""
    for name, svc in rendered["services"].items():
        assert "image" in svc, f"{name}: no image (a built service tags its image too)"
        assert is_pinned(svc["image"]), f"{name}: image {svc['image']!r} is not pinned to an exact version"
    dockerfiles = {Path(svc["build"]["context"]) / svc["build"].get("dockerfile", "Dockerfile")
                   for svc in rendered["services"].values() if isinstance(svc.get("build"), dict)}
    assert dockerfiles, "no service is built from a Dockerfile"
    for path in dockerfiles:
        froms, copies = dockerfile_stages(path)
        stages: set[str] = set()
        for image, alias in froms:
            assert image in stages or is_pinned(image), f"{path.name}: FROM {image} is not pinned"
            if alias:
                stages.add(alias)
        for source, _ in copies:
            assert source is None or source in stages or is_pinned(source), f"{path.name}: COPY --from={source}"


def test_builds_refer_to_files_that_exist(rendered: dict[str, Any]) -> None:
    """Each build's context, Dockerfile, target stage and copied sources exist and pass its .dockerignore."""
    built = {name: svc["build"] for name, svc in rendered["services"].items() if "build" in svc}
    assert {"airflow-apiserver", "airflow-worker-gpu", "spark-worker"} <= set(built)
    for name, build in built.items():
        context = Path(build["context"])
        assert context.is_dir(), f"{name}: build context {context} does not exist"
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        assert dockerfile.is_file(), f"{name}: {dockerfile} does not exist"
        froms, copies = dockerfile_stages(dockerfile)
        aliases = {alias for _, alias in froms if alias}
        assert build.get("target") in aliases, f"{name}: target {build.get('target')!r} is no stage of {dockerfile}"
        for source, src in copies:
            if source is None:
                assert (context / src).exists(), f"{dockerfile.name}: COPY {src}: no such file in the context"
                assert dockerignore_allows(context, src), f"{dockerfile.name}: COPY {src} is excluded by .dockerignore"
    assert not dockerignore_allows(REPO, ".env"), ".env (secrets) must stay out of the build context"


# --- 3. the deployment doc and the file name the same services -----------------------------------------


def documented_services(doc: Path) -> dict[str, str]:
    """Rows of the table under ``## Services``: backticked service name -> its image cell."""
    text = doc.read_text()
    match = re.search(r"^## Services\n(.*?)(?=^## )", text, re.S | re.M)
    assert match, f"{doc.name} has no '## Services' section"
    return dict(re.findall(r"^\|\s*`([a-z0-9-]+)`\s*\|([^|]*)\|", match.group(1), re.M))


def test_deployment_doc_lists_every_service(rendered: dict[str, Any]) -> None:
    """docs/deployment.md's Services table and the file name the same services, with the same images."""
    documented = documented_services(DEPLOYMENT_DOC)
    assert documented, "the Services table names no service"
    assert set(documented) - set(rendered["services"]) == set(), "documented but not in docker-compose.yaml"
    assert set(rendered["services"]) - set(documented) == set(), "in docker-compose.yaml but not documented"
    for name, cell in documented.items():
        svc = service(rendered, name)
        expected = f"target `{svc['build']['target']}`" if "build" in svc else f"`{svc['image']}`"
        assert expected in cell, f"docs/deployment.md: {name}'s image is {expected}, the table says {cell.strip()!r}"
    readme = (REPO / "README.md").read_text()
    assert "docs/deployment.md" in readme, "README.md does not link the deployment doc"


# --- 4. queues, GPU reservation, Spark wiring, shared Airflow settings ---------------------------------


def test_gpu_worker_reserves_nvidia_gpus_and_serves_queue_gpu(rendered: dict[str, Any]) -> None:
    """The GPU worker reserves every NVIDIA GPU, listens to ``gpu`` only and runs the ``gpu`` image stage."""
    gpu = service(rendered, "airflow-worker-gpu")
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    # compose v2 renders `count: all` as -1
    assert any(d.get("driver") == "nvidia" and str(d.get("count")) in ("all", "-1")
               and "gpu" in d.get("capabilities", []) for d in devices), devices
    cmd = command(gpu)
    assert cmd[:2] == ["celery", "worker"] and cmd[cmd.index("--queues") + 1] == "gpu", cmd
    assert gpu["build"]["target"] == "gpu"


def test_default_worker_serves_queue_default(rendered: dict[str, Any]) -> None:
    """The CPU worker listens to ``default`` (the queue of every task but ``train``) and reserves no GPU."""
    worker = service(rendered, "airflow-worker")
    cmd = command(worker)
    assert cmd[:2] == ["celery", "worker"] and cmd[cmd.index("--queues") + 1] == "default", cmd
    assert "deploy" not in worker or "devices" not in str(worker["deploy"])


def test_spark_worker_and_connection_point_at_the_master(rendered: dict[str, Any]) -> None:
    """The master listens on spark-master:7077; the worker and ``spark_default`` use that URL."""
    master = command(service(rendered, "spark-master"))
    assert "org.apache.spark.deploy.master.Master" in master
    assert master[master.index("--host") + 1] == "spark-master" and master[master.index("--port") + 1] == "7077"
    worker = command(service(rendered, "spark-worker"))
    assert "org.apache.spark.deploy.worker.Worker" in worker and worker[-1] == SPARK_MASTER_URL, worker
    conn = json.loads(environment(service(rendered, "airflow-worker"))["AIRFLOW_CONN_SPARK_DEFAULT"])
    assert conn == {"conn_type": "spark", "host": SPARK_MASTER_URL}


def test_airflow_services_share_one_configuration(rendered: dict[str, Any]) -> None:
    """Every Airflow service has the scheduler's whole environment (executor, DB, broker, JWT, Execution API)."""
    base = environment(service(rendered, "airflow-scheduler"))
    for key, value in SHARED_ENV.items():
        assert base.get(key), f"{key} is not set for the Airflow services"
        assert value is None or base[key] == value, f"{key}={base[key]!r}, expected {value!r}"
    assert base["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
    assert base["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://")
    for name in sorted(AIRFLOW_SERVICES):
        env = environment(service(rendered, name))
        differing = {k for k, v in base.items() if env.get(k) != v}
        assert not differing, f"{name} differs from the common Airflow settings in {sorted(differing)}"
    api = service(rendered, "airflow-apiserver")
    assert command(api) == ["api-server"]
    assert 8080 in container_ports(api), "the api-server does not publish port 8080"


# --- 5. variables and secrets ---------------------------------------------------------------------------


def test_variables_used_and_env_example_agree() -> None:
    """Every ``${VAR}`` of the compose file is in .env.example, and .env.example holds no unused setting."""
    used = variables_used(COMPOSE_FILE.read_text())
    defined = set(env_file_values(ENV_EXAMPLE))
    assert used, "the compose file interpolates nothing"
    assert used - defined == set(), "used in docker-compose.yaml but not defined in .env.example"
    assert defined - used == set(), "defined in .env.example but not used by docker-compose.yaml"


def test_variable_scan_sees_escapes_and_defaults() -> None:
    """``$$X`` is a literal for the container's shell; ``${A:-x}``, ``${B?e}`` and ``$C`` are variables."""
    assert variables_used("a: $${HOME} $$PATH ${A:-x} ${B?e} $C") == {"A", "B", "C"}


def test_env_example_holds_placeholders_only() -> None:
    """Secrets in .env.example are change-me placeholders, and .env itself is ignored by git."""
    secrets = {k: v for k, v in env_file_values(ENV_EXAMPLE).items() if SECRET_KEY.search(k)}
    assert {"POSTGRES_PASSWORD", "AIRFLOW_JWT_SECRET", "AIRFLOW_FERNET_KEY", "AWS_SECRET_ACCESS_KEY"} <= set(secrets)
    assert all(v.startswith("change-me") for v in secrets.values()), secrets
    assert ".env" in (REPO / ".gitignore").read_text().splitlines()
