"""The compose stack's Redis, started here as compose starts it: the password on stdin, never on a command line.

The service's rendered entrypoint (deploy/check-secrets.sh, then deploy/redis-server.sh) runs the
machine's ``redis-server`` on a Unix socket; only the image's ``docker-entrypoint.sh`` (which drops root)
is left out.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_compose import command, environment
from tests.unit.test_deploy_secrets import REAL, env_text, local, rendered_services, words

#: Seconds redis-server may take to accept connections.
REDIS_START_TIMEOUT_S = 30.0
READY = "ready to accept connections"


def redis_cli(argv: list[str], socket: Path, env: dict[str, str]) -> str:
    """A healthcheck-style ``redis-cli`` call on the socket; its stdout and stderr."""
    proc = subprocess.run([argv[0], "-s", str(socket), *argv[1:]], env=env, capture_output=True, text=True,
                          timeout=30, check=False)
    return proc.stdout + proc.stderr


def test_redis_requires_the_password_that_never_was_an_argument(tmp_path: Path) -> None:
    """Started through the checks, Redis refuses clients without the password, answers redis-cli with
    REDISCLI_AUTH (the healthcheck), and its command line holds no password."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is not installed (Debian package redis-server)", pytrace=False)
    redis: dict[str, Any] = rendered_services(env_text(REAL), tmp_path)["redis"]
    password = REAL["REDIS_PASSWORD"]
    cmd = command(redis)
    assert cmd[0] == "docker-entrypoint.sh", cmd
    socket = tmp_path / "redis.sock"
    argv = [*local(words(redis["entrypoint"])), server, *cmd[2:],
            "--port", "0", "--unixsocket", str(socket), "--dir", str(tmp_path), "--save", "", "--appendonly", "no"]
    env = {**environment(redis), "PATH": os.environ["PATH"]}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    watchdog = threading.Timer(REDIS_START_TIMEOUT_S, proc.kill)
    watchdog.start()
    try:
        assert proc.stdout is not None
        seen: list[str] = []
        for line in proc.stdout:
            seen.append(line)
            if READY in line.lower():
                break
        else:
            pytest.fail(f"redis-server exited ({proc.wait()}):\n{''.join(seen)}")
        watchdog.cancel()
        assert Path(f"/proc/{proc.pid}/comm").read_text().strip() == "redis-server", "the checks did not exec it"
        assert password not in " ".join(argv)
        assert password.encode() not in Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        health = words(redis["healthcheck"]["test"])[1:]
        without = {k: v for k, v in env.items() if k != "REDISCLI_AUTH"}
        assert "NOAUTH" in redis_cli(health, socket, without), "Redis answers without the password"
        assert redis_cli(health, socket, env).strip() == "PONG"
    finally:
        watchdog.cancel()
        proc.terminate()
        proc.wait(REDIS_START_TIMEOUT_S)
        if proc.stdout is not None:
            proc.stdout.close()
