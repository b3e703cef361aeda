"""Every command, every bad argument: one line on stderr, exit 2, nothing written.

Each case runs the real ``seaice`` entry point on a small lake (an inventory committed by
``seaice discover``) and compares the whole folder tree, bytes included, before and after.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seaice_tasks.cli import main

DAY = "2019-11-04"


def _tree(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` with its bytes (None for a folder)."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


@pytest.fixture
def place(tmp_path: Path) -> Path:
    """A folder with a lake (one committed inventory), an empty catalog and a plain file."""
    (tmp_path / "catalog").mkdir()
    (tmp_path / "a_file").write_text("not a folder\n")
    assert main(["discover", "--date", DAY, "--catalog", str(tmp_path / "catalog"), "--lake",
                 str(tmp_path / "lake")]) == 0
    return tmp_path


CASES: list[tuple[str, list[str], str]] = [
    ("discover", ["discover", "--date", DAY, "--catalog", "{catalog}", "--lake", "{file}"], "--lake {file}: is a file"),
    ("discover", ["discover", "--date", DAY, "--catalog", "{file}", "--lake", "{lake}"], "is a file, not a folder"),
    ("discover", ["discover", "--date", DAY, "--catalog", "{catalog}", "--lake", "{lake}", "--config", "[1]"],
     "--config: expected a JSON object"),
    ("discover", ["discover", "--date", DAY, "--catalog", "{catalog}", "--lake", "{lake}", "--config", "{{"],
     "--config: not JSON"),
    ("discover", ["discover", "--date", "2019-02-30", "--catalog", "{catalog}", "--lake", "{lake}"], "--date"),
    ("publish", ["publish", "--date", DAY, "--lake", "{file}"], "--lake {file}: is a file"),
    ("publish", ["publish", "--date", DAY, "--lake", "{missing}"], "--lake {missing}: no lake there"),
    ("publish", ["publish", "--date", DAY, "--lake", "{lake}", "--config", "[]"], "--config: expected a JSON object"),
    ("publish", ["publish", "--date", DAY, "--lake", "{lake}", "--config", "nope"], "--config: not JSON"),
    ("simulate", ["simulate", "--out", "{file}"], "--out {file}: {file} is a file"),
    ("simulate", ["simulate", "--out", "{file}/below"], "is a file, not a folder"),
    ("simulate", ["simulate", "--out", "{place}/sim", "--granules", "0"], "--granules must be >= 1"),
    ("simulate", ["simulate", "--out", "{place}/sim", "--km", "-3"], "--km must be > 0"),
    ("simulate", ["simulate", "--out", "{place}/sim", "--day", "nope"], "unknown simulated day 'nope'; known: "),
    ("simulate", ["simulate", "--out", "{place}/sim", "--day", "unseen_hazy", "--seed", "3"],
     "--day unseen_hazy fixes the date and the seeds"),
    ("plot", ["plot", "--date", DAY, "--lake", "{lake}", "--out", "{file}"], "--out {file}: {file} is a file"),
    ("plot", ["plot", "--date", DAY, "--lake", "{missing}", "--out", "{place}/png"], "no lake there"),
    ("status", ["status", "--lake", "{file}"], "--lake {file}: is a file"),
    ("status", ["status", "--lake", "{missing}"], "--lake {missing}: no lake there"),
    ("status", ["status", "--lake", "{lake}", "--today", "2019-02-30"], "--today: '2019-02-30' is not a day"),
    ("status", ["status", "--lake", "{lake}", "--days", "0"], "--days must be >= 1"),
    ("gc", ["gc", "--lake", "{file}"], "--lake {file}: is a file"),
    ("gc", ["gc", "--lake", "{missing}"], "no lake there"),
    ("gc", ["gc", "--lake", "{lake}", "--min-age-hours", "-1"], "--min-age-hours must be >= 0"),
    ("models", ["models", "list", "--lake", "{file}"], "--lake {file}: is a file"),
    ("models", ["models", "list", "--lake", "{missing}"], "no lake there"),
    ("models", ["models", "show", "seaice-is2-lstm", "--lake", "{file}"], "--lake {file}: is a file"),
    ("models", ["models", "promote", "seaice-is2-lstm", "v1", "--lake", "{file}"], "--lake {file}: is a file"),
    ("train", ["train", "--lake", "{file}"], "--lake {file}: is a file"),
    ("train", ["train", "--lake", "{lake}", "--config", "[1]"], "--config: expected a JSON object"),
    ("train", ["train", "--lake", "{lake}", "--config", "{{"], "--config: not JSON"),
    ("training-set", ["training-set", "--dates", DAY, "--lake", "{file}"], "--lake {file}: is a file"),
    ("training-set", ["training-set", "--dates", DAY, "--lake", "{lake}", "--config", "[1]"],
     "--config: expected a JSON object"),
    ("training-set", ["training-set", "--dates", "2019-11-31", "--lake", "{lake}"], "--dates: '2019-11-31'"),
]


@pytest.mark.parametrize(("command", "argv", "message"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_a_bad_argument_is_one_line_exit_2_and_writes_nothing(
    place: Path, capsys: pytest.CaptureFixture[str], command: str, argv: list[str], message: str
) -> None:
    names = {"catalog": str(place / "catalog"), "lake": str(place / "lake"), "file": str(place / "a_file"),
             "missing": str(place / "no_lake_here"), "place": str(place)}
    before = _tree(place)
    capsys.readouterr()
    status = main([a.format(**names) for a in argv])
    err = capsys.readouterr().err
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"seaice {command}: error: "), err
    assert message.format(**names) in lines[0]
    assert _tree(place) == before


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "no S3 credentials"),
        ({"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "SEAICE_S3_ENDPOINT_URL": "http://127.0.0.1:{port}"},
         "the S3 endpoint does not answer"),
    ],
)
@pytest.mark.parametrize("command", [["status"], ["gc"], ["publish", "--date", DAY],
                                     ["discover", "--date", DAY, "--catalog", "{catalog}"]])
def test_an_unusable_s3_lake_fails_in_seconds_with_one_line(
    place: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    env: dict[str, str], message: str, command: list[str]
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "SEAICE_S3_ENDPOINT_URL", "SEAICE_LAKE_S3_ENDPOINT_URL", "SEAICE_LAKE_OPTIONS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(place))  # no ~/.aws
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-metadata credentials either
    port = _free_port()
    for name, value in env.items():
        monkeypatch.setenv(name, value.format(port=port))
    started = time.monotonic()
    status = main([a.format(catalog=str(place / "catalog")) for a in command] + ["--lake", "s3://seaice-lake/day"])
    took = time.monotonic() - started
    err = capsys.readouterr().err
    assert status == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert took < 10.0  # a client's default retries took 10-25 s


def _read_only(folder: Path, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``seaice argv`` with ``folder`` mounted read-only (a private mount namespace as root, else chmod)."""
    seaice = str(Path(sys.executable).with_name("seaice"))
    if os.geteuid() == 0:
        cmd = ["unshare", "-m", "sh", "-c", 'mount -o bind,ro "$0" "$0" && exec "$@"', str(folder), seaice, *argv]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")]}
    for p in modes:
        p.chmod(modes[p] & ~0o222)
    try:
        return subprocess.run([seaice, *argv], capture_output=True, text=True, timeout=120, check=False)
    finally:
        for p, mode in modes.items():
            p.chmod(mode)


@pytest.mark.skipif(shutil.which("unshare") is None and os.geteuid() == 0, reason="needs util-linux unshare as root")
@pytest.mark.parametrize("command", [["publish", "--date", DAY], ["discover", "--date", DAY, "--catalog", "{catalog}"],
                                     ["gc"]])
def test_a_read_only_lake_is_one_line_and_exit_2(place: Path, command: list[str]) -> None:
    lake = place / "lake"
    before = _tree(lake)
    proc = _read_only(lake, [a.format(catalog=str(place / "catalog")) for a in command] + ["--lake", str(lake)])
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"seaice {command[0]}: error: --lake {lake}: not writable"), line
    assert _tree(lake) == before


def test_a_good_discover_still_creates_a_new_lake(place: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fresh = place / "deeper" / "new_lake"
    assert main(["discover", "--date", DAY, "--catalog", str(place / "catalog"), "--lake", str(fresh)]) == 0
    assert json.loads(capsys.readouterr().out)["counts"] == {}
    assert (fresh / "inventory").is_dir()


@pytest.mark.parametrize("job", ["resample", "label-s2", "colocate", "classify", "freeboard", "validate"])
def test_a_job_on_a_missing_lake_is_exit_2_and_creates_nothing(
    place: Path, capsys: pytest.CaptureFixture[str], job: str
) -> None:
    missing = place / "no_lake_here"
    status = main([job, "--date", DAY, "--lake", str(missing), "--no-spark"])
    err = capsys.readouterr().err
    assert status == 2, err
    (line,) = [ln for ln in err.strip().splitlines() if "error" in ln]
    name = {"label-s2": "s2_labels"}.get(job, job)
    assert line == f"{name}: error: --lake {missing}: no lake there (the folder does not exist)"
    assert not missing.exists()


@pytest.mark.parametrize(("config", "message"), [
    ('{"model": "no-such-model"}', "--config model 'no-such-model' is not in the lake's registry"),
    ('{"modle": "typo"}', "unknown field(s) ['modle']"),
    ('[1, 2]', "expected a JSON object"),
])
def test_a_bad_classify_config_leaves_the_days_report_alone(
    place: Path, capsys: pytest.CaptureFixture[str], config: str, message: str
) -> None:
    before = _tree(place / "lake")
    status = main(["classify", "--date", DAY, "--lake", str(place / "lake"), "--no-spark", "--config", config])
    err = capsys.readouterr().err
    assert status == 2 and message in err, err
    assert _tree(place / "lake") == before
