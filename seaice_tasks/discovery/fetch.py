"""Downloads of what the providers found into the catalog store: checked, bounded, atomic.

Each file of a :class:`~seaice_tasks.discovery.providers.RemoteInput` is fetched only after its
href passed :func:`~seaice_tasks.discovery.policy.check_href` and its target path
:func:`~seaice_tasks.discovery.policy.path_inside`; credentials go only where the
:class:`~seaice_tasks.discovery.policy.CredentialPolicy` allows.  The bytes go to a private
local work folder first (bounded in time and size), are checked against the provider's size and
checksum, and only then placed in the store atomically (rename on a local disk, one PUT on S3).
A scene's bands are placed only when all of them are verified.  Every refusal or failure is a
recorded skip; the other inputs go on.

The work folders live under ``$TMPDIR/seaice-fetch/<pid>-<random>``; a process killed in the
middle of a download leaves one, and the next fetch removes the folders of processes that are
gone (:func:`sweep_work_folders`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final

import aiohttp
import fsspec

from seaice_tasks.config import DiscoverConfig
from seaice_tasks.discovery.policy import (
    CredentialPolicy,
    Credentials,
    HrefRefused,
    check_href,
    check_name,
    credentials_from_env,
    path_inside,
)
from seaice_tasks.discovery.providers import Found, Refused, RemoteFile, RemoteInput, shown
from seaice_tasks.errors import InputError
from seaice_tasks.storage import InputStore

__all__ = ["FetchResult", "DownloadError", "fetch_inputs", "sweep_work_folders", "WORK_DIR_NAME", "PARTIAL_SUFFIX"]

log = logging.getLogger(__name__)

#: Suffix of a download in progress (never an input: the catalog scan only takes .h5/.tif/.jp2 names).
PARTIAL_SUFFIX: Final[str] = ".partial"
#: Chunk size of a streamed download (bytes).
CHUNK_BYTES: Final[int] = 1 << 20
#: Folder under the system's temporary folder holding the fetch work folders.
WORK_DIR_NAME: Final[str] = "seaice-fetch"
_DEFAULT: Final[DiscoverConfig] = DiscoverConfig()


@dataclasses.dataclass(frozen=True)
class FetchResult:
    """What :func:`fetch_inputs` did: inputs placed, already present, and failed or refused (uri, reason)."""

    fetched: tuple[str, ...]
    present: tuple[str, ...]
    failed: tuple[tuple[str, str], ...]


class DownloadError(InputError):
    """A download that failed for good (after retries) or did not match its size or checksum."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def sweep_work_folders(parent: str | None = None) -> list[str]:
    """Remove the fetch work folders of processes that are gone; the folders removed.

    Parameters
    ----------
    parent : str, optional
        Folder holding the work folders (default ``$TMPDIR/seaice-fetch``).
    """
    parent = parent or os.path.join(tempfile.gettempdir(), WORK_DIR_NAME)
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(parent):
            pid_text = entry.name.split("-", 1)[0]
            if entry.is_dir(follow_symlinks=False) and pid_text.isdigit() and not _alive(int(pid_text)):
                shutil.rmtree(entry.path, ignore_errors=True)
                removed.append(entry.path)
    if removed:
        log.info("fetch: removed %d work folder(s) of killed downloads", len(removed))
    return removed


@contextlib.contextmanager
def _work_folder(parent: str | None = None) -> Iterator[str]:
    """A private (0700) work folder named after this process, removed on exit."""
    parent = parent or os.path.join(tempfile.gettempdir(), WORK_DIR_NAME)
    os.makedirs(parent, mode=0o700, exist_ok=True)
    path = os.path.join(parent, f"{os.getpid()}-{uuid.uuid4().hex}")
    os.mkdir(path, mode=0o700)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _filesystem(parts_scheme: str, href: str, headers: dict[str, str], config: DiscoverConfig,
                store: InputStore) -> fsspec.AbstractFileSystem:
    """A fresh (uncached) filesystem for one download, with its time limits and allowed headers."""
    if parts_scheme in ("http", "https"):
        timeout = aiohttp.ClientTimeout(total=config.download_deadline_s, sock_connect=config.download_timeout_s,
                                        sock_read=config.download_timeout_s)
        client: dict[str, Any] = {"timeout": timeout}
        if headers:
            client["headers"] = headers
        return fsspec.filesystem(parts_scheme, skip_instance_cache=True, client_kwargs=client)
    options = dict(store.options_for(href) or {})
    config_kwargs = dict(options.pop("config_kwargs", {}) or {})
    config_kwargs.setdefault("connect_timeout", config.download_timeout_s)
    config_kwargs.setdefault("read_timeout", config.download_timeout_s)
    return fsspec.filesystem(parts_scheme, skip_instance_cache=True, config_kwargs=config_kwargs, **options)


def _download_one(
    remote: RemoteFile, local: str, *, credentials: Credentials, provider: str, config: DiscoverConfig,
    store: InputStore, sleep: Callable[[float], None],
) -> None:
    """Download ``remote`` to the local path ``local``, checking href, size and checksum; retry on failure."""
    parts = check_href(remote.href, store.root.split("://", 1)[0] if "://" in store.root else "file")
    scheme = parts.scheme.lower()
    headers = CredentialPolicy.from_config(config).headers(provider, remote.href, credentials) \
        if scheme in ("http", "https") else {}
    limit = min(remote.size_bytes if remote.size_bytes is not None else config.max_download_bytes,
                config.max_download_bytes)
    last = ""
    retries = config.download_retries
    for attempt in range(1, retries + 2):
        try:
            fs = _filesystem(scheme, remote.href, headers, config, store)
            hasher = hashlib.new(remote.algorithm) if remote.algorithm else None
            size = 0
            started = time.monotonic()
            streamed = {"block_size": 0} if scheme in ("http", "https") else {}  # no size needed up front
            with fs.open(remote.href, "rb", **streamed) as src, open(local, "wb") as dst:
                while chunk := src.read(CHUNK_BYTES):
                    size += len(chunk)
                    if size > limit:
                        raise DownloadError(remote.href, f"got more than {limit} bytes, the provider states "
                                            f"{remote.size_bytes}" if remote.size_bytes is not None else
                                            f"more than max_download_bytes {limit} bytes")
                    if time.monotonic() - started > config.download_deadline_s:
                        raise TimeoutError(f"slower than download_deadline_s {config.download_deadline_s:g} s")
                    dst.write(chunk)
                    if hasher is not None:
                        hasher.update(chunk)
            if remote.size_bytes is not None and size != remote.size_bytes:
                raise DownloadError(remote.href, f"got {size} bytes, the provider states {remote.size_bytes}")
            if hasher is not None and remote.checksum is not None and hasher.hexdigest() != remote.checksum.lower():
                raise DownloadError(remote.href, f"{remote.algorithm} checksum {hasher.hexdigest()} "
                                    f"does not match the provider's {remote.checksum}")
            return
        except FileNotFoundError as exc:  # 404: retrying will not help
            raise DownloadError(remote.href, f"not found ({exc})") from exc
        except (TimeoutError, DownloadError, OSError, ValueError, aiohttp.ClientError) as exc:
            text = exc.problem if isinstance(exc, InputError) else str(exc)
            last = text.splitlines()[0] if text else type(exc).__name__
            if attempt <= retries:
                log.warning("download %s failed (attempt %d of %d): %s; retrying", shown(remote.href), attempt,
                            retries + 1, last)
                sleep(config.retry_backoff_s * 2 ** (attempt - 1))
    raise DownloadError(remote.href, f"download failed after {retries + 1} attempt(s): {last}")


def _present(fs: fsspec.AbstractFileSystem, path: str, remote: RemoteFile) -> bool:
    """A file already in the store with the stated size (a re-run does not download it again)."""
    try:
        info = fs.info(path)
    except FileNotFoundError:
        return False
    return remote.size_bytes is None or int(info.get("size") or -1) == remote.size_bytes


def _place(fs: fsspec.AbstractFileSystem, protocol: str, local: str, path: str) -> None:
    """Move a verified local file to ``path`` atomically (rename on a local disk, one PUT on S3).

    On a local disk the copy goes to a ``<name>.<random>.partial`` file in the target folder
    first, so a crash mid-copy leaves only a name the catalog scan never takes.
    """
    if protocol == "file":
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{uuid.uuid4().hex}{PARTIAL_SUFFIX}"
        try:
            shutil.copyfile(local, tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    else:
        fs.put_file(local, path)  # S3: the object appears only when the (multipart) upload completes


def _targets(base: str, item: RemoteInput) -> tuple[str, list[str]]:
    """The checked target of ``item`` in the store and the path of each of its files."""
    check_name(item.name, item.kind)
    target = path_inside(base, item.kind, item.name)
    if item.kind != "S2":
        if len(item.files) != 1 or item.files[0].name != item.name:
            raise HrefRefused(item.name, "refused: a granule is one file of its own name")
        return target, [target]
    return target, [path_inside(base, item.kind, item.name, check_name(f.name, "band")) for f in item.files]


def fetch_inputs(
    inputs: Iterable[Found],
    store: InputStore,
    *,
    config: DiscoverConfig = _DEFAULT,
    credentials: Credentials | None = None,
    sleep: Callable[[float], None] = time.sleep,
    work_parent: str | None = None,
) -> FetchResult:
    """Download ``inputs`` into the catalog store; one failed or refused input never stops the others.

    Parameters
    ----------
    inputs : iterable of RemoteInput or Refused
        What the providers found; a :class:`Refused` record goes straight to ``failed``.
    store : InputStore
        The catalog store (``$SEAICE_CATALOG``).
    config : DiscoverConfig
        Retries and backoff, time and size limits, credential hosts.
    credentials : Credentials, optional
        Default: from the environment.
    sleep : callable
        Wait function (tests pass a recorder).
    work_parent : str, optional
        Folder of the local work folders (default ``$TMPDIR/seaice-fetch``).

    Returns
    -------
    FetchResult
    """
    creds = credentials or credentials_from_env()
    root = store.root
    protocol = root.split("://", 1)[0] if "://" in root else "file"
    fs = fsspec.filesystem(protocol, **(store.options_for(root) or {}))
    base = root.split("://", 1)[1] if "://" in root else os.path.abspath(root)
    fetched: list[str] = []
    present: list[str] = []
    failed: list[tuple[str, str]] = []
    sweep_work_folders(work_parent)
    with _work_folder(work_parent) as work:
        for item in inputs:
            if isinstance(item, Refused):
                failed.append((item.uri, item.reason))
                continue
            try:
                target, paths = _targets(base, item)
            except HrefRefused as exc:
                log.error("fetch: %s", exc)
                failed.append((f"{item.provider}:{shown(item.name)}", str(exc)))
                continue
            uri = target if protocol == "file" else f"{protocol}://{target}"
            if all(_present(fs, p, f) for p, f in zip(paths, item.files, strict=True)):
                present.append(uri)
                continue
            try:
                locals_ = []
                for i, remote in enumerate(item.files):
                    local = os.path.join(work, f"{i}{PARTIAL_SUFFIX}")
                    _download_one(remote, local, credentials=creds, provider=item.provider, config=config,
                                  store=store, sleep=sleep)
                    locals_.append(local)
                placed: list[str] = []
                try:
                    for local, path in zip(locals_, paths, strict=True):
                        _place(fs, protocol, local, path)
                        placed.append(path)
                except OSError:
                    for path in placed:  # a scene is whole or absent
                        fs.rm_file(path)
                    raise
            except (InputError, OSError) as exc:  # refused href, failed download, store error
                reason = str(exc).splitlines()[0]
                log.error("fetch: %s not fetched: %s", item.name, reason)
                failed.append((uri, reason))
                continue
            finally:
                for name in os.listdir(work):
                    os.unlink(os.path.join(work, name))
            log.info("fetch: %s -> %s", item.name, uri)
            fetched.append(uri)
    return FetchResult(tuple(fetched), tuple(present), tuple(failed))
