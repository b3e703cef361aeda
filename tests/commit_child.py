"""Helper process of tests/integration/test_commit_faults.py: commits of one partition, over and over.

``python tests/commit_child.py LAKE loop A|B|AB``
    commits content A, B, or A and B alternately, until SIGINT; one line per commit on stdout
    (``ok A``) and one per failed commit (``err <exception>``).
``python tests/commit_child.py LAKE fork``
    a zygote that has imported everything: for each line ``go N`` on stdin it forks a worker that
    commits A and B alternately (starting with A when N is even) and answers the worker's pid;
    the worker prints ``ready PID`` once its lake client is set up (the two lines come in either
    order).  For ``wait PID`` it reaps the worker and answers ``dead PID``.  Forking makes a fresh
    committer start in a millisecond, so a test can SIGKILL many of them at random moments.

The lake comes from ``lake_from_env(LAKE)``: a folder, or ``s3://...`` with the S3 server's
environment.  The contents are built here, so the test compares what it reads with them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import sys

from seaice_tasks.storage import Lake, PartitionKey, lake_from_env

KEY = PartitionKey("faults_test", dt.date(2019, 11, 4), "20191104195311_05940510", "gt2r")


def _blob(label: str, size: int) -> bytes:
    """Deterministic bytes, different for every label."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{label}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


#: Two versions of the partition: other file sets, and a shared name with other bytes.
CONTENTS: dict[str, dict[str, bytes]] = {
    "A": {"part-0.bin": _blob("A0", 48_000), "part-1.bin": _blob("A1", 40_000), "shared.bin": _blob("As", 8_000),
          "sub/deep.bin": _blob("Ad", 4_000)},
    "B": {"part-0.bin": _blob("B0", 32_000), "shared.bin": _blob("Bs", 16_000), "extra.bin": _blob("Be", 24_000)},
}


def commit(lake: Lake, label: str) -> None:
    """Stage and commit one content (a fresh staging token per commit, like a job run)."""
    with lake.writer(KEY) as w:
        for name, data in CONTENTS[label].items():
            w.write_bytes(name, data)


def _loop(url: str, labels: str) -> int:
    lake = lake_from_env(url)
    n = 0
    try:
        while True:
            label = labels[n % len(labels)]
            n += 1
            try:
                commit(lake, label)
            except Exception as exc:  # every failed commit is reported to the test
                print(f"err {type(exc).__name__}: {exc}", flush=True)
            else:
                print(f"ok {label}", flush=True)
    except KeyboardInterrupt:
        return 0


def _worker(url: str, start: int) -> None:
    try:
        lake = lake_from_env(url)
        lake.manifest(KEY)  # sets up the client (an S3 session takes a moment): kill delays start after it
        print(f"ready {os.getpid()}", flush=True)
        n = start
        while True:
            commit(lake, "AB"[n % 2])
            n += 1
    except BaseException as exc:  # a worker only ends by SIGKILL; anything else is reported
        print(f"err {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        os._exit(3)


def _zygote(url: str) -> int:
    try:
        for line in sys.stdin:
            cmd, _, arg = line.strip().partition(" ")
            if cmd == "go":
                pid = os.fork()
                if pid == 0:
                    _worker(url, int(arg))
                print(pid, flush=True)
            elif cmd == "wait":
                os.waitpid(int(arg), 0)
                print(f"dead {arg}", flush=True)
    except KeyboardInterrupt:
        pass
    return 0


def main(argv: list[str]) -> int:
    url, mode, *rest = argv
    if mode == "loop":
        return _loop(url, rest[0])
    if mode == "fork":
        return _zygote(url)
    raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
