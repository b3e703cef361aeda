"""Opening a store for a command: checked before any work, one line when it cannot be used.

Every command and job opens its lake (and its output folders) through :func:`open_lake` /
:func:`output_folder`, so a path that is a file, a lake that does not exist where one must, a
read-only store, or an ``s3://`` store without credentials, endpoint or bucket is a
:class:`~seaice_tasks.errors.ConfigError` naming the argument, the store and the problem, raised
before anything is read or written (exit 2 on the command line).  An S3 store is probed with
one short request and no retries (:data:`PROBE_TIMEOUT_S`), so a missing endpoint costs seconds,
not the minutes of a client's default retries.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import uuid
from pathlib import Path
from typing import Any, Final

import fsspec

from seaice_tasks.errors import ConfigError, StorageError
from seaice_tasks.storage import STAGING_DIR, Lake, lake_from_env

__all__ = ["open_lake", "output_folder", "PROBE_TIMEOUT_S"]

#: Connect and read timeout of the S3 probe (s); the probe makes one attempt.
PROBE_TIMEOUT_S: Final[float] = 5.0


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _probe_filesystem(lake: Lake) -> Any:
    """A fresh S3 filesystem with the lake's options, one attempt per request and short timeouts."""
    options = dict(lake.storage_options)
    config_kwargs = dict(options.pop("config_kwargs", {}) or {})
    config_kwargs.update(connect_timeout=PROBE_TIMEOUT_S, read_timeout=PROBE_TIMEOUT_S,
                         retries={"max_attempts": 1, "mode": "standard"})
    fs = fsspec.filesystem(lake.protocol, skip_instance_cache=True, config_kwargs=config_kwargs, **options)
    if hasattr(fs, "retries"):
        fs.retries = 1  # s3fs's own retry loop around botocore
    return fs


def _s3_problem(exc: BaseException) -> str:
    name = type(exc).__name__
    if name in ("NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"):
        return ("no S3 credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or key and secret in "
                "SEAICE_LAKE_OPTIONS)")
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError", "ReadTimeoutError") \
            or isinstance(exc, ConnectionError | TimeoutError):
        return ("the S3 endpoint does not answer (set SEAICE_LAKE_S3_ENDPOINT_URL or SEAICE_S3_ENDPOINT_URL for "
                f"MinIO or a local server; {_first_line(exc)})")
    if isinstance(exc, PermissionError):
        return f"access denied ({_first_line(exc)})"
    return _first_line(exc)


def _check_s3(lake: Lake, *, must_exist: bool, writable: bool, argument: str) -> None:
    fs = _probe_filesystem(lake)
    where = lake.url()
    bucket = lake.path().split("/", 1)[0]
    try:
        fs.ls(bucket, detail=False)  # one request: credentials, endpoint and bucket at once
    except FileNotFoundError:
        raise ConfigError(f"{argument} {where}: bucket {bucket!r} does not exist") from None
    except Exception as exc:  # botocore and s3fs raise many kinds; each becomes one line
        raise ConfigError(f"{argument} {where}: {_s3_problem(exc)}") from None
    try:
        if must_exist and not fs.ls(lake.path(), detail=False):
            raise FileNotFoundError(lake.path())
    except FileNotFoundError:
        raise ConfigError(f"{argument} {where}: no lake there (nothing under that prefix)") from None
    except Exception as exc:
        raise ConfigError(f"{argument} {where}: {_s3_problem(exc)}") from None
    if writable:
        probe = lake.path(STAGING_DIR, f"probe-{uuid.uuid4().hex}")
        try:
            fs.pipe_file(probe, b"")
            fs.rm_file(probe)
        except Exception as exc:
            raise ConfigError(f"{argument} {where}: not writable ({_s3_problem(exc)})") from None


def _check_local(lake: Lake, *, must_exist: bool, writable: bool, argument: str) -> None:
    root = lake.path()
    if os.path.exists(root) and not os.path.isdir(root):
        raise ConfigError(f"{argument} {lake.root}: is a file, not a lake folder")
    if not os.path.exists(root):
        if must_exist:
            raise ConfigError(f"{argument} {lake.root}: no lake there (the folder does not exist)")
        parent = next(p for p in (Path(root), *Path(root).parents) if p.exists())
        if not parent.is_dir():
            raise ConfigError(f"{argument} {lake.root}: {parent} is a file, not a folder")
    if writable:
        staging = lake.path(STAGING_DIR)
        made: list[str] = [p for p in (root, staging) if not os.path.exists(p)]
        probe = posixpath.join(staging, f"probe-{uuid.uuid4().hex}")
        try:
            os.makedirs(staging, exist_ok=True)
            with open(probe, "wb"):
                pass
            os.unlink(probe)
        except OSError as exc:
            raise ConfigError(f"{argument} {lake.root}: not writable ({_first_line(exc)})") from None
        finally:
            for path in reversed(made):  # leave no empty folder where there was none
                with contextlib.suppress(OSError):
                    os.rmdir(path)


def open_lake(url: str | None, *, must_exist: bool = True, writable: bool = False, argument: str = "--lake") -> Lake:
    """The lake at ``url`` (or ``$SEAICE_LAKE``), checked to be usable for a command.

    Parameters
    ----------
    url : str or None
        Local path or URL; empty means ``$SEAICE_LAKE`` (default ``./var/lake``).
    must_exist : bool
        The command reads what earlier commands wrote (a missing lake is an error, never a new
        empty one).
    writable : bool
        The command writes: a probe file is written to the lake's staging folder and removed.
    argument : str
        The argument named in the error.

    Raises
    ------
    ConfigError
        One line naming ``argument``, the store and the problem.
    """
    try:
        lake = lake_from_env(url or None)
    except (ValueError, ImportError, StorageError) as exc:
        where = url or "$SEAICE_LAKE"
        raise ConfigError(f"{argument} {where}: not a usable storage URL ({_first_line(exc)})") from None
    if lake.protocol == "file":
        _check_local(lake, must_exist=must_exist, writable=writable, argument=argument)
    else:
        _check_s3(lake, must_exist=must_exist, writable=writable, argument=argument)
    return lake


def output_folder(path: str | os.PathLike[str], argument: str = "--out", *, create: bool = True) -> Path:
    """A local folder a command writes files to: never a file, writable; created when ``create``.

    With ``create=False`` nothing is made: the check a command runs before its work, so that a
    bad argument writes nothing.

    Raises
    ------
    ConfigError
        One line naming ``argument``, the path and the problem.
    """
    out = Path(path)
    existing = next((p for p in (out, *out.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise ConfigError(f"{argument} {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{argument} {path}: {existing} is not writable")
    if not create:
        return out
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".probe-{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"{argument} {path}: not writable ({_first_line(exc)})") from None
    return out
