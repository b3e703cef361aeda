"""The compose stack refuses its change-me secrets and keeps every secret off command lines and out of readable files.

``deploy/*.sh`` run here as they run in the containers (``/opt/seaice-deploy`` is ``deploy/``), with the
environments ``docker compose config`` renders for ``.env.example`` and for a ``.env`` of real, distinctive
secrets; no container engine is needed.  Redis itself is started in
``tests/integration/test_deploy_redis.py``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from seaice_tasks.airflow_stack import AirflowStack, write_private_file
from tests.unit.test_compose import (
    COMPOSE_FILE,
    DEPLOYMENT_DOC,
    ENV_EXAMPLE,
    REPO,
    command,
    compose_command,
    env_file_values,
    environment,
)

DEPLOY = REPO / "deploy"
#: Where docker-compose.yaml mounts deploy/ (read-only) in every service holding a secret.
MOUNT = "/opt/seaice-deploy"
CHECK = f"{MOUNT}/check-secrets.sh"
#: The variables .env.example leaves as change-me placeholders: every one must be replaced.
PLACEHOLDERS = frozenset(k for k, v in env_file_values(ENV_EXAMPLE).items() if v.startswith("change-me"))
#: A real-looking, URL-safe value per placeholder; none is a substring of another or of anything else.
REAL = {name: f"Zq{name.lower().replace('_', '')}7Xs" for name in sorted(PLACEHOLDERS)}
#: Services that hold a secret of .env, so must start through the check.
SECRET_HOLDERS = frozenset({
    "postgres", "redis", "minio", "minio-init", "airflow-init", "airflow-apiserver", "airflow-scheduler",
    "airflow-dag-processor", "airflow-triggerer", "airflow-worker", "airflow-worker-gpu",
})
#: Exit status of a refusal (bad input).
REFUSED = 2


def env_text(values: dict[str, str]) -> str:
    """``.env.example`` with the given variables' lines replaced (``NAME=value``)."""
    text = ENV_EXAMPLE.read_text()
    for name, value in values.items():
        text, n = re.subn(rf"^{name}=.*$", f"{name}={value}", text, flags=re.M)
        assert n == 1, f"{name} is not a line of .env.example"
    return text


def render(text: str, folder: Path) -> subprocess.CompletedProcess[str]:
    """``config`` of docker-compose.yaml with ``text`` as its ``.env`` (the caller's own variables left out)."""
    env_file = folder / ".env"
    env_file.write_text(text)
    defined = env_file_values(ENV_EXAMPLE)
    env = {k: v for k, v in os.environ.items() if k not in defined and not k.startswith("COMPOSE_")}
    return subprocess.run([*compose_command(), "--env-file", str(env_file), "-f", str(COMPOSE_FILE), "config"],
                          capture_output=True, text=True, env=env, cwd=folder, timeout=120, check=False)


def rendered_services(text: str, folder: Path) -> dict[str, Any]:
    """The rendered services for one ``.env`` text (fails when ``config`` does)."""
    proc = render(text, folder)
    assert proc.returncode == 0, f"compose config failed:\n{proc.stderr}"
    services: dict[str, Any] = yaml.safe_load(proc.stdout)["services"]
    return services


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Services rendered with a ``.env`` whose secrets are replaced by :data:`REAL`."""
    return rendered_services(env_text(REAL), tmp_path_factory.mktemp("real"))


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Services rendered with ``.env.example`` as it is."""
    return rendered_services(ENV_EXAMPLE.read_text(), tmp_path_factory.mktemp("example"))


def words(value: Any) -> list[str]:
    """An entrypoint, command or healthcheck test as a list of words (a string is one word)."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def on_command_lines(svc: dict[str, Any]) -> list[str]:
    """Every argument a service's processes get from compose: entrypoint, command, healthcheck."""
    return words(svc.get("entrypoint")) + words(svc.get("command")) + words((svc.get("healthcheck") or {}).get("test"))


def checked(svc: dict[str, Any]) -> list[str]:
    """The variables a service's entrypoint hands to the check (empty when it has no check)."""
    entry = words(svc.get("entrypoint"))
    if CHECK not in entry:
        return []
    start = entry.index(CHECK) + 1
    assert "--" in entry[start:], f"the check in {entry} runs no command"
    return entry[start:entry.index("--", start)]


def local(argv: list[str]) -> list[str]:
    """A rendered argv as the container gets it (``$$`` is ``$``), the mounted deploy/ mapped to this checkout."""
    argv = [a.replace("$$", "$") for a in argv]
    return [str(DEPLOY / a[len(MOUNT) + 1:]) if a.startswith(MOUNT + "/") else a for a in argv]


def deploy_mounted(svc: dict[str, Any]) -> bool:
    """Whether deploy/ is bind-mounted read-only at :data:`MOUNT` (compose 1.29 strings or v2 mappings)."""
    for vol in svc.get("volumes", []):
        if isinstance(vol, dict):
            if Path(vol.get("source", "")) == DEPLOY and vol.get("target") == MOUNT and vol.get("read_only"):
                return True
        elif vol == f"{DEPLOY}:{MOUNT}:ro":
            return True
    return False


def carriers(svc: dict[str, Any]) -> set[str]:
    """Environment variables of a service whose rendered value contains one of the :data:`REAL` secrets."""
    return {k for k, v in environment(svc).items() if any(secret in v for secret in REAL.values())}


def run_check(names: list[str], env: dict[str, str], *cmd: str) -> subprocess.CompletedProcess[str]:
    """deploy/check-secrets.sh with ``names`` (and ``-- cmd`` when given) in exactly ``env`` plus PATH."""
    argv = ["/bin/sh", str(DEPLOY / "check-secrets.sh"), *names, *(["--", *cmd] if cmd else [])]
    return subprocess.run(argv, env={**env, "PATH": os.environ["PATH"]}, capture_output=True, text=True,
                          timeout=30, check=False)


# --- 1. the check itself ------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "reason"), [
    ("change-me-redis", "change-me placeholder"),
    ("change-me-fernet-key-44-characters-base64=", "change-me placeholder"),
    ("postgresql+psycopg2://airflow:change-me-postgres@postgres:5432/airflow", "change-me placeholder"),
    ("CHANGE_ME", "change-me placeholder"),
    ("changeme", "change-me placeholder"),
    ("", "is empty"),
    ("  \t", "is empty"),
    (None, "is empty"),
])
def test_check_refuses_placeholders_and_empty_values(value: str | None, reason: str) -> None:
    """A placeholder (anywhere in the value, any case), an empty, blank or unset value: one line, exit 2, no start."""
    env = {} if value is None else {"SEAICE_TEST_SECRET": value}
    proc = run_check(["SEAICE_TEST_SECRET"], env, "/bin/echo", "started")
    assert proc.returncode == REFUSED, proc
    assert "started" not in proc.stdout
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "SEAICE_TEST_SECRET" in lines[0] and reason in lines[0], proc.stderr
    shown = (value or "").strip()
    assert not shown or shown not in proc.stderr, "the check printed the value"


def test_check_names_every_refused_variable_and_runs_nothing() -> None:
    """Two bad variables among good ones: a line for each, none for the good one, the command never runs."""
    env = {"A_OK": "k2Hq9vLr", "B_BAD": "change-me-b", "C_BAD": ""}
    proc = run_check(["A_OK", "B_BAD", "C_BAD"], env, "/bin/echo", "started")
    assert proc.returncode == REFUSED and proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 2 and "B_BAD" in lines[0] and "C_BAD" in lines[1] and "A_OK" not in proc.stderr


def test_check_runs_the_command_in_its_place_with_real_values() -> None:
    """Real values: the command replaces the check (same process, so it gets the signals), with its exit status."""
    argv = ["/bin/sh", str(DEPLOY / "check-secrets.sh"), "SEAICE_TEST_SECRET", "--",
            "/bin/sh", "-c", 'echo "started $$ $SEAICE_TEST_SECRET"; exit 7']
    env = {"SEAICE_TEST_SECRET": "k2Hq9vLr-real", "PATH": os.environ["PATH"]}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 7 and err == "", err
    assert out == f"started {proc.pid} k2Hq9vLr-real\n", "the command does not run in the check's place"
    assert run_check(["SEAICE_TEST_SECRET"], env).returncode == 0, "without a command the check only checks"


def test_check_rejects_a_malformed_variable_name() -> None:
    """A name the shell cannot hold (it would be evaluated) is refused before anything is read."""
    proc = run_check(["A;touch /tmp/x"], {}, "/bin/echo", "started")
    assert proc.returncode == REFUSED and "not a variable name" in proc.stderr and proc.stdout == ""


# --- 2. compose: every service that holds a secret starts through the check -------------------------------


def test_every_secret_holder_starts_through_the_check(real: dict[str, Any]) -> None:
    """Each variable carrying a secret is checked, each checked variable exists, deploy/ is mounted read-only."""
    holders = {name for name, svc in real.items() if carriers(svc)}
    assert holders == SECRET_HOLDERS, "services holding a secret of .env changed"
    for name in sorted(holders):
        svc = real[name]
        names = checked(svc)
        assert names, f"{name} holds secrets but does not start through {CHECK}"
        assert carriers(svc) <= set(names), f"{name}: unchecked secrets {sorted(carriers(svc) - set(names))}"
        assert set(names) <= set(environment(svc)), f"{name} checks variables it does not have"
        assert deploy_mounted(svc), f"{name} does not mount deploy/ read-only at {MOUNT}"
        entry = words(svc["entrypoint"])
        assert entry[entry.index(CHECK) - 1] == "/bin/sh", f"{name}: the check is run by /bin/sh (no exec bit needed)"


def test_services_refuse_env_example_and_accept_real_secrets(example: dict[str, Any], real: dict[str, Any]) -> None:
    """The check of each service, in the environment compose gives it: .env.example refused, real values pass."""
    for name in sorted(SECRET_HOLDERS):
        names = checked(real[name])
        refused = run_check(names, environment(example[name]))
        assert refused.returncode == REFUSED, f"{name} starts with .env.example's placeholders"
        assert all("refusing to start" in line for line in refused.stderr.splitlines()), refused.stderr
        accepted = run_check(names, environment(real[name]))
        assert accepted.returncode == 0, f"{name} refuses real secrets: {accepted.stderr}"


def test_compose_refuses_an_empty_secret(tmp_path: Path) -> None:
    """Every use of a placeholder variable is ``${VAR:?...}``, so ``config`` (and ``up``) stops when one is empty."""
    text = COMPOSE_FILE.read_text()
    for name in sorted(PLACEHOLDERS):
        uses = re.findall(rf"\$\{{{name}(?![A-Za-z0-9_])([^}}]*)\}}", text)
        assert uses and all(u.startswith(":?") for u in uses), f"{name}: {uses}"
    proc = render(env_text({**REAL, "AIRFLOW_JWT_SECRET": ""}), tmp_path)
    assert proc.returncode != 0 and "AIRFLOW_JWT_SECRET" in proc.stderr, proc.stderr


# --- 3. no secret on a command line ----------------------------------------------------------------------


def test_no_secret_reaches_a_command_line(real: dict[str, Any]) -> None:
    """No entrypoint, command or healthcheck holds a secret, nor a shell expansion of a variable carrying one."""
    for name, svc in sorted(real.items()):
        argv = on_command_lines(svc)
        joined = "\n".join(argv)
        leaked = sorted(k for k, secret in REAL.items() if secret in joined)
        assert not leaked, f"{name}: the value of {leaked} is on a command line"
        for var in sorted(carriers(svc) | PLACEHOLDERS):
            assert not re.search(rf"\$\{{?{var}(?![A-Za-z0-9_])", joined.replace("$$", "$")), \
                f"{name}: ${var} is expanded on a command line"


def test_redis_takes_its_password_on_stdin(real: dict[str, Any]) -> None:
    """redis-server reads its configuration from stdin (``-``) through deploy/redis-server.sh; redis-cli from env."""
    redis = real["redis"]
    assert words(redis["entrypoint"])[-2:] == ["/bin/sh", f"{MOUNT}/redis-server.sh"]
    assert command(redis)[-2:] == ["redis-server", "-"]
    assert environment(redis)["REDISCLI_AUTH"] == REAL["REDIS_PASSWORD"], "the healthcheck's redis-cli needs it"


def test_minio_init_gives_mc_no_secret_as_argument(real: dict[str, Any], tmp_path: Path) -> None:
    """minio-init as compose runs it, with a recording ``mc``: secrets reach mc by environment and stdin only."""
    svc = real["minio-init"]
    bin_dir, log = tmp_path / "bin", tmp_path / "mc.jsonl"
    bin_dir.mkdir()
    mc = bin_dir / "mc"
    mc.write_text(f"#!{sys.executable}\nimport json, os, sys\n"
                  "with open(os.environ['MC_LOG'], 'a') as fh:\n"
                  "    fh.write(json.dumps({'argv': sys.argv[1:], 'stdin': sys.stdin.read()}) + '\\n')\n")
    mc.chmod(0o755)
    env = {**environment(svc), "PATH": f"{bin_dir}:{os.environ['PATH']}", "MC_LOG": str(log)}
    proc = subprocess.run(local(words(svc.get("entrypoint")) + command(svc)), env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    for call in calls:
        assert not any(secret in " ".join(call["argv"]) for secret in REAL.values()), call["argv"]
        assert call["argv"][0] != "alias", "the alias comes from MC_HOST_local, not from `mc alias set`"
    assert [c["argv"] for c in calls[:2]] == [["mb", "--ignore-existing", "local/seaice-lake"],
                                              ["mb", "--ignore-existing", "local/seaice-catalog"]]
    add = calls[2]
    assert add["argv"] == ["admin", "user", "add", "local", env["AWS_ACCESS_KEY_ID"]]
    assert add["stdin"] == REAL["AWS_SECRET_ACCESS_KEY"] + "\n", "mc reads the omitted secret key from stdin"
    # mc's MC_HOST_<alias> form: scheme://ACCESS:SECRET@host:port (cmd/config.go, parseEnvURLStr)
    host = re.fullmatch(r"(https?://)(.*?):(.*?)@(.*?)", env["MC_HOST_local"])
    assert host and host.groups() == ("http://", REAL["MINIO_ROOT_USER"], REAL["MINIO_ROOT_PASSWORD"], "minio:9000")


# --- 4. files holding secrets are private from their creation -------------------------------------------


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """umask 000, so only an explicit mode keeps a file private."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    """Permission bits of a file."""
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("permissive_umask")
def test_write_private_file_creates_and_replaces_with_mode_0600(tmp_path: Path) -> None:
    """A new file is 0600; an older 0644 file is replaced by a 0600 one; no temporary file is left."""
    target = tmp_path / "passwords.json"
    assert write_private_file(target, '{"admin": "k2Hq9vLr"}') == target
    assert mode(target) == 0o600 and target.read_text() == '{"admin": "k2Hq9vLr"}'
    target.chmod(0o644)
    write_private_file(target, "second")
    assert mode(target) == 0o600 and target.read_text() == "second"
    assert [p.name for p in tmp_path.iterdir()] == ["passwords.json"]


@pytest.mark.usefixtures("permissive_umask")
def test_test_stack_password_file_is_private(tmp_path: Path) -> None:
    """The environment of the loopback Airflow stack points at a password file only its owner can read."""
    stack = AirflowStack(home=tmp_path / "home", database="seaice_unit_never_created")
    env = stack._environment()
    passwords = Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    assert mode(passwords) == 0o600
    assert json.loads(passwords.read_text()) == {"admin": stack.password}


@pytest.mark.usefixtures("permissive_umask")
def test_airflow_init_writes_a_private_password_file(real: dict[str, Any], tmp_path: Path) -> None:
    """airflow-init's own line that writes the admin's password file, run here: 0600, the password from env."""
    svc = real["airflow-init"]
    script = "\n".join(words(svc["command"]))
    lines = [ln for ln in script.splitlines() if "passwords" in ln.lower() and not ln.lstrip().startswith("#")]
    assert len(lines) == 1 and lines[0].startswith("python -c "), lines
    argv = local(shlex.split(lines[0]))
    target = tmp_path / "auth" / "passwords.json"
    target.parent.mkdir()
    env = {**environment(svc), "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(target),
           "PATH": os.environ["PATH"]}
    subprocess.run([sys.executable, *argv[1:]], env=env, check=True, timeout=60)
    assert mode(target) == 0o600
    assert json.loads(target.read_text()) == {env["AIRFLOW_ADMIN_USER"]: REAL["AIRFLOW_ADMIN_PASSWORD"]}


def test_deployment_doc_says_what_is_refused() -> None:
    """docs/deployment.md has the section on refusals, naming the check and the variables it refuses."""
    text = DEPLOYMENT_DOC.read_text()
    match = re.search(r"^## What the stack refuses, and why\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, "docs/deployment.md has no 'What the stack refuses, and why' section"
    section = match.group(1)
    missing = [n for n in sorted(PLACEHOLDERS) if f"`{n}`" not in section]
    assert "deploy/check-secrets.sh" in section and not missing, f"not named in the section: {missing}"
