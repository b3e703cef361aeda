"""Commits under faults, on a local folder and on the S3-protocol server (moto on 127.0.0.1).

* SIGKILL at random moments: committer processes (forked from a zygote, ``tests/commit_child.py``)
  commit contents A and B of one partition alternately and are killed after seeded random delays;
  after every kill a fresh :class:`Lake` finds the partition committed and exactly A or exactly B
  (file set, bytes and sha256).  The leftovers the kills leave are then removed by ``gc_staging``.
* Two committer processes (A and B) as fast as they can, and a verifying reader here: every read
  returns A's or B's complete content (a read that loses a race re-reads the manifest once), and
  no commit fails.

Each test is bounded in time (see ``KILLS``, ``MAX_DELAY_S``, ``RACE_S``).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import pytest

from seaice_tasks.airflow_stack import stop_group
from seaice_tasks.errors import StorageError
from seaice_tasks.storage import MANIFEST_NAME, STAGING_DIR, Lake, lake_from_env
from tests.commit_child import CONTENTS, KEY, commit

HELPER = Path(__file__).resolve().parents[1] / "commit_child.py"
KILLS = 30
KILL_SEED = 20191104
#: Kill delays (after the worker is ready) are uniform in [0, MAX_DELAY_S): a few commits long.
MAX_DELAY_S = {"local": 0.08, "s3": 0.5}
RACE_S = 8.0
START_TIMEOUT_S = 60.0


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(backend name, lake URL): a fresh folder, or a fresh bucket on the S3 server."""
    if request.param == "local":
        return "local", str(tmp_path / "lake")
    bucket = request.getfixturevalue("s3_bucket")
    return "s3", f"s3://{bucket}/seaice"


def _which(lake: Lake) -> str:
    """'A' or 'B' when the partition is committed and exactly that content; else the assertion fails."""
    man = lake.require(KEY)
    names = {f.name for f in man.files}
    label = next((lab for lab, files in CONTENTS.items() if set(files) == names), None)
    assert label is not None, f"file set {sorted(names)} is neither A's nor B's"
    for name, data in CONTENTS[label].items():
        assert lake.open_file(KEY, name, verify=True) == data, f"{name} is not {label}'s"
    return label


def _ask(proc: subprocess.Popen[str], line: str, n_lines: int = 1) -> list[str]:
    stdin, stdout = proc.stdin, proc.stdout
    assert stdin is not None and stdout is not None
    stdin.write(line + "\n")
    stdin.flush()
    answers = [stdout.readline().strip() for _ in range(n_lines)]
    assert all(answers), f"zygote gave no answer to {line!r} (exit status {proc.poll()})"
    return answers


def _start_worker(zygote: subprocess.Popen[str], n: int) -> int:
    """Fork a committer and wait until it is ready; its pid (the zygote's and the worker's lines, any order)."""
    answers = _ask(zygote, f"go {n}", n_lines=2)
    pid = next(int(a) for a in answers if a.isdigit())
    assert f"ready {pid}" in answers, answers
    return pid


def test_sigkill_at_random_moments_leaves_previous_or_new_version(backend: tuple[str, str], tmp_path: Path) -> None:
    name, url = backend
    commit(lake_from_env(url), "A")
    rng = random.Random(KILL_SEED)
    errors = tmp_path / "workers.err"
    seen: list[str] = []
    with open(errors, "wb") as err:
        zygote = subprocess.Popen([sys.executable, str(HELPER), url, "fork"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=err, text=True, start_new_session=True)
    try:
        for i in range(KILLS):
            pid = _start_worker(zygote, i)
            time.sleep(rng.uniform(0.0, MAX_DELAY_S[name]))
            os.kill(pid, signal.SIGKILL)
            assert _ask(zygote, f"wait {pid}") == [f"dead {pid}"]
            seen.append(_which(lake_from_env(url)))  # a fresh Lake, as the next job would see it
    finally:
        if zygote.stdin is not None:
            zygote.stdin.close()  # the zygote ends at the end of its input
        with contextlib.suppress(subprocess.TimeoutExpired):
            zygote.wait(10)
        stop_group(zygote)
    assert errors.read_text() == ""  # no worker failed a commit before it was killed
    assert set(seen) == {"A", "B"}, seen  # the workers did commit between kills
    lake = lake_from_env(url)
    assert lake.fs.find(lake.path(STAGING_DIR))  # kills interrupted runs: their staging is left behind
    removed = lake.gc_staging(0)  # every run is dead now: all of it may go
    assert removed and not lake.fs.find(lake.path(STAGING_DIR))
    folder = lake.path(KEY.relpath)
    version = lake.require(KEY).version
    lake.fs.invalidate_cache(folder)
    assert {p[len(folder) + 1:].split("/")[0] for p in lake.fs.find(folder)} == {MANIFEST_NAME, version}
    assert _which(lake) == seen[-1]


def _started(procs: list[subprocess.Popen[bytes]], outs: list[Path]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not all("ok " in out.read_text() for out in outs):
        logs = [out.read_text()[-2000:] for out in outs]
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), logs
        time.sleep(0.05)


def test_two_committers_and_a_verifying_reader(backend: tuple[str, str], tmp_path: Path) -> None:
    _, url = backend
    lake = lake_from_env(url)
    commit(lake, "A")
    procs: list[subprocess.Popen[bytes]] = []
    outs = [tmp_path / f"writer-{label}.out" for label in "AB"]
    reads = {"A": 0, "B": 0}
    bad: list[str] = []
    try:
        for label, out in zip("AB", outs, strict=True):
            fh: IO[bytes]
            with open(out, "wb") as fh:
                procs.append(subprocess.Popen([sys.executable, str(HELPER), url, "loop", label], stdout=fh,
                                              stderr=subprocess.STDOUT, start_new_session=True))
        _started(procs, outs)
        end = time.monotonic() + RACE_S
        while time.monotonic() < end:
            try:
                man, files = lake.read_partition(KEY, verify=True)
            except StorageError as exc:
                bad.append(str(exc))
                continue
            label = next((lab for lab, content in CONTENTS.items() if files == content), None)
            if label is None or {f.name for f in man.files} != set(files):
                bad.append(f"mixed read: {sorted(files)}")
            else:
                reads[label] += 1
    finally:
        for proc in procs:
            stop_group(proc)
    logs = [out.read_text() for out in outs]
    failed = [line for log in logs for line in log.splitlines() if line.startswith("err")]
    commits = [log.count("ok ") for log in logs]
    print(f"reads {reads}, commits A/B {commits}")
    assert bad == [], bad[:5]
    assert failed == [], failed[:5]
    assert min(commits) >= 5 and reads["A"] > 0 and reads["B"] > 0, (commits, reads)
    assert _which(lake_from_env(url)) in ("A", "B")
