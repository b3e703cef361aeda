"""The lake: one storage root, partition paths, GeoParquet/COG writers and atomic commits.

Contract (docs/storage.md):

* One root URL, ``$SEAICE_LAKE`` (default ``./var/lake``; production ``s3://bucket/prefix``).
  Storage options come from ``$SEAICE_LAKE_OPTIONS`` (JSON) and, for S3,
  ``$SEAICE_S3_ENDPOINT_URL``.
* A partition's path is a pure function of its product and key fields
  (:data:`KEY_FIELDS`; the key shapes are declared in :mod:`seaice_tasks.products`):
  ``<root>/<product>/date=YYYY-MM-DD[/granule=<id>][/beam=<gtxx>][/scene=<id>]/`` or
  ``<root>/<product>/name=<n>/version=<v>/``.
* Writers put files under a staging prefix ``<root>/_staging/<token>/<partition path>/``
  (one token per job run, shared by its distributed workers).  :meth:`PartitionWriter.commit`
  copies them into a new, immutable version folder ``<partition>/_v-<16 hex>/`` named from its
  files and its parent version, publishes it by replacing ``_manifest.json`` (files, row
  counts, sha256, config, code version, version folder) in one atomic, conditional step
  (local: ``flock`` + temporary file + ``os.replace``; S3: one conditional PUT), then removes
  the version it replaced.  Readers follow the manifest into its version folder, so a
  partition is always its previous or its new complete version, whatever is killed when and
  whatever commits at the same time; an identical re-run leaves files and manifest as they are.
* :meth:`Lake.gc_staging` removes what killed runs and commits leave behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import errno
import fcntl
import functools
import hashlib
import io
import json
import logging
import os
import posixpath
import random
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Final, Self

import fsspec
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from seaice_tasks import __version__
from seaice_tasks.config import JsonConfig, config_hash, json_default
from seaice_tasks.errors import SchemaError, StorageError
from seaice_tasks.schemas import validate_table

__all__ = [
    "DEFAULT_LAKE",
    "MANIFEST_NAME",
    "PartitionKey",
    "Manifest",
    "FileEntry",
    "Lake",
    "PartitionWriter",
    "lake_from_env",
    "storage_options_from_env",
    "InputStore",
    "inputs_from_env",
    "KEY_FIELDS",
    "STAGING_DIR",
    "VERSION_PREFIX",
    "GC_MIN_AGE_S",
    "PARQUET_ROW_GROUP_ROWS",
    "code_version",
    "geoparquet_table",
    "is_safe_file_name",
]

log = logging.getLogger(__name__)

DEFAULT_LAKE: Final[str] = "./var/lake"
MANIFEST_NAME: Final[str] = "_manifest.json"
STAGING_DIR: Final[str] = "_staging"
#: Manifest format written: 2 (files in the version folder the manifest names).  Readers also
#: accept format 1 (files directly in the partition folder), written before version folders.
MANIFEST_VERSION: Final[int] = 2
READABLE_MANIFEST_VERSIONS: Final[tuple[int, ...]] = (1, 2)
#: Version folders are ``<partition>/_v-<16 hex>``; temporary files start with ``.tmp-``.
VERSION_PREFIX: Final[str] = "_v-"
_VERSION_NAME = re.compile(r"^_v-[0-9a-f]{16}$")
TMP_PREFIX: Final[str] = ".tmp-"
#: Default safe age of leftovers for :meth:`Lake.gc_staging`: staging tokens, version folders no
#: manifest names and temporary files untouched for this long belong to dead runs.
GC_MIN_AGE_S: Final[float] = 6 * 3600.0
#: A commit re-reads the manifest and tries again when another commit replaced it meanwhile.
_COMMIT_ATTEMPTS: Final[int] = 50
#: Reads of one partition while concurrent commits keep replacing its version (a reader racing
#: a busy writer on slow object storage can see several commits land during one read).
_READ_ATTEMPTS: Final[int] = 10
#: errno values of ``link`` on filesystems without hard links (then the file is copied).
_NO_HARDLINK: Final[frozenset[int]] = frozenset({errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP,
                                                 errno.EMLINK})
GEOPARQUET_VERSION: Final[str] = "1.1.0"
#: EPSG:4326 as PROJJSON is long; GeoParquet allows omitting ``crs`` for OGC:CRS84 but we are
#: explicit so every reader (geopandas, GDAL, DuckDB) agrees.
WGS84_EPSG: Final[int] = 4326
_HASH_CHUNK_BYTES: Final[int] = 1 << 20
#: Rows of a row group of ``pq.write_table`` (its default): the layout of every table file written at once
#: (:meth:`PartitionWriter.write_table`); streamed track files have their own (``trackio.TRACK_ROW_GROUP_ROWS``).
PARQUET_ROW_GROUP_ROWS: Final[int] = 1024 * 1024
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
#: Key fields of a partition path, in path order.
KEY_FIELDS: Final[tuple[str, ...]] = ("date", "granule", "beam", "scene", "name", "version")


def _document_path(relpath: str) -> str:
    """``relpath`` checked to stay below the root and off the lake's own files (see Lake.write_document)."""
    if not is_safe_file_name(relpath):  # the rule of a partition's file names, below the root
        raise StorageError(f"{relpath!r}: not a document path below the lake root (relative, no '..', "
                           "no component starting with '_' or '.')")
    return relpath


def code_version() -> str:
    """Version of the code that wrote an output (package version)."""
    return __version__


@dataclasses.dataclass(frozen=True, order=True)
class PartitionKey:
    """Identity of one partition: its product and the values of the product's key fields.

    Which fields a product uses is its key shape (:mod:`seaice_tasks.products`): ``date`` alone
    (day), ``date`` + ``granule`` (+ ``beam``: a track), ``date`` + ``scene``, ``date`` +
    ``granule`` + ``beam`` + ``scene`` (a pair), ``name`` + ``version`` (a model or a training
    set).  Build keys through the registry (``SEGMENTS_2M.key(date=..., granule=..., beam=...)``)
    so the shape is checked.

    Attributes
    ----------
    stage : str
        Product name, e.g. ``inventory``, ``segments_2m``, ``s2_labels``.
    date : datetime.date or None
        UTC day of the acquisitions in the partition (None for versioned products).
    granule : str or None
        ICESat-2 granule key ``YYYYMMDDhhmmss_RRRRCCSS``.
    beam : str or None
        Beam group ``gt1l`` .. ``gt3r``.
    scene : str or None
        Sentinel-2 scene key (``YYYYMMDDThhmmss_Txxxxx``).
    name, version : str or None
        Model or training-set name and version.
    """

    stage: str
    date: dt.date | None
    granule: str | None = None
    beam: str | None = None
    scene: str | None = None
    name: str | None = None
    version: str | None = None

    def __post_init__(self) -> None:
        for name in ("stage", *KEY_FIELDS[1:]):
            value = getattr(self, name)
            if value is not None and not _SAFE_VALUE.match(value):
                raise StorageError(f"partition {name} {value!r} is not a safe path component")
        if self.date is not None and (isinstance(self.date, dt.datetime) or not isinstance(self.date, dt.date)):
            raise StorageError(f"partition date must be a datetime.date, got {self.date!r}")
        if all(getattr(self, f) is None for f in KEY_FIELDS):
            raise StorageError(f"partition of {self.stage!r} has no key field set")

    @property
    def fields(self) -> tuple[str, ...]:
        """The key fields that are set, in path order."""
        return tuple(f for f in KEY_FIELDS if getattr(self, f) is not None)

    def value(self, name: str) -> str:
        """Text of one key field as it appears in the path."""
        value = getattr(self, name)
        return value.isoformat() if isinstance(value, dt.date) else str(value)

    @property
    def relpath(self) -> str:
        """Path below the root: ``stage/field=value/...`` in :data:`KEY_FIELDS` order.

        Examples
        --------
        >>> PartitionKey("segments_2m", dt.date(2019, 11, 4), "20191104195311_05940510", "gt2r").relpath
        'segments_2m/date=2019-11-04/granule=20191104195311_05940510/beam=gt2r'
        >>> PartitionKey("s2_labels", dt.date(2019, 11, 4), scene="20191104T200456_T07CAN").relpath
        's2_labels/date=2019-11-04/scene=20191104T200456_T07CAN'
        """
        return "/".join([self.stage, *(f"{f}={self.value(f)}" for f in self.fields)])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (written into manifests and Parquet metadata).

        The granule is stored under ``item`` and ``date``, ``item`` and ``beam`` are always
        present (null when unset): the layout of manifest format 1, kept so that the files of
        day, granule and track partitions stay byte-identical.  The other fields appear only
        when set.
        """
        doc: dict[str, Any] = {"stage": self.stage, "date": self.date.isoformat() if self.date else None,
                               "item": self.granule, "beam": self.beam}
        doc.update({f: getattr(self, f) for f in ("scene", "name", "version") if getattr(self, f) is not None})
        return doc

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PartitionKey:
        """Inverse of :meth:`to_dict`."""
        date = data.get("date")
        return cls(
            stage=str(data["stage"]),
            date=dt.date.fromisoformat(str(date)) if date else None,
            granule=data.get("item", data.get("granule")),
            beam=data.get("beam"),
            scene=data.get("scene"),
            name=data.get("name"),
            version=data.get("version"),
        )

    @classmethod
    def from_relpath(cls, relpath: str) -> PartitionKey:
        """Parse a path produced by :attr:`relpath`."""
        parts = relpath.strip("/").split("/")
        values: dict[str, str] = {}
        for part in parts[1:]:
            name, sep, value = part.partition("=")
            if not sep or name not in KEY_FIELDS or name in values:
                raise StorageError(f"{relpath}: not a partition path ({part!r})")
            values[name] = value
        if not values:
            raise StorageError(f"{relpath}: not a partition path")
        try:
            date = dt.date.fromisoformat(values.pop("date")) if "date" in values else None
        except ValueError as exc:
            raise StorageError(f"{relpath}: not a partition path ({exc})") from exc
        return cls(stage=parts[0], date=date, **values)


@dataclasses.dataclass(frozen=True)
class FileEntry:
    """One committed file: name relative to the partition, rows (tables), bytes and sha256."""

    name: str
    bytes: int
    sha256: str
    rows: int | None = None


def is_safe_file_name(name: str) -> bool:
    """Whether ``name`` may name a file of a partition (in a manifest or a writer).

    A name is relative and stays inside the partition's version folder: no absolute path, no
    backslash, no empty, ``.`` or ``..`` component, and no component starting with ``_`` or
    ``.`` (those are the manifest, version folders and temporary files).

    Examples
    --------
    >>> [is_safe_file_name(n) for n in ("part-00000.parquet", "tiles/a.tif", "../x", "/etc/passwd", "_manifest.json")]
    [True, True, False, False, False]
    """
    if not isinstance(name, str) or not name or "\\" in name or "\x00" in name or name.startswith("/"):
        return False
    return all(part and part not in (".", "..") and not part.startswith(("_", ".")) for part in name.split("/"))


def _version_name(files: Iterable[FileEntry], parent: str | None) -> str:
    """``_v-`` + 16 hex of the sha256 over the parent version and the sorted (name, sha256) list.

    The same files on the same parent give the same name, so an interrupted commit that is
    re-run reuses its folder and re-runs stay byte-identical; the parent makes every new
    version of a partition a new name, so no commit can publish a folder that a commit which
    superseded it is removing (docs/storage.md, "Atomic commit").
    """
    doc = json.dumps([parent or "", sorted([f.name, f.sha256] for f in files)], separators=(",", ":"))
    return VERSION_PREFIX + hashlib.sha256(doc.encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class Manifest:
    """What makes a partition visible; written last by :meth:`PartitionWriter.commit`.

    ``version`` is the partition's version folder (``_v-<16 hex>``) holding the files, and
    ``parent`` the version it replaced (None for the first); both are None for a partition
    committed in manifest format 1, whose files sit directly in the partition folder.
    """

    key: PartitionKey
    files: tuple[FileEntry, ...]
    config: dict[str, Any]
    config_hash: str
    code_version: str
    info: dict[str, Any] = dataclasses.field(default_factory=dict)
    version: str | None = None
    parent: str | None = None

    @property
    def rows(self) -> int:
        """Total table rows over the partition's files."""
        return sum(f.rows or 0 for f in self.files)

    @property
    def format(self) -> int:
        """Manifest format: 2 with a version folder, 1 without."""
        return MANIFEST_VERSION if self.version is not None else 1

    def file_relpath(self, name: str) -> str:
        """Path of one of the files below the partition folder (``<version>/<name>``)."""
        return posixpath.join(self.version, name) if self.version else name

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, no wall-clock time): re-runs give identical bytes."""
        doc: dict[str, Any] = {
            "manifest_version": self.format,
            "partition": self.key.to_dict(),
            "files": [dataclasses.asdict(f) for f in self.files],
            "rows": self.rows,
            "config": self.config,
            "config_hash": self.config_hash,
            "code_version": self.code_version,
            "info": self.info,
        }
        if self.version is not None:
            doc.update(version=self.version, parent=self.parent)
        return json.dumps(doc, sort_keys=True, indent=1, default=json_default)

    @classmethod
    def from_json(cls, text: str, where: str = "manifest") -> Manifest:
        """Parse a manifest, with a clear error when it is damaged or names a file outside its partition.

        Raises
        ------
        StorageError
            Damaged JSON or fields, an unknown ``manifest_version``, a version folder that is not
            ``_v-<16 hex>``, or a file name that :func:`is_safe_file_name` refuses (absolute,
            ``..``, backslash, or starting with ``_``/``.``); the message names ``where`` (the
            manifest's URL, hence the partition) and the bad value.
        """
        try:
            doc = json.loads(text)
            fmt = doc.get("manifest_version", 1)
            if fmt not in READABLE_MANIFEST_VERSIONS:
                raise StorageError(f"{where}: unsupported manifest_version {fmt!r} (readable: "
                                   f"{', '.join(map(str, READABLE_MANIFEST_VERSIONS))})")
            version = doc.get("version") if fmt >= 2 else None
            parent = doc.get("parent") if fmt >= 2 else None
            if fmt >= 2 and not (isinstance(version, str) and _VERSION_NAME.match(version)):
                raise StorageError(f"{where}: manifest names an invalid version folder {version!r}")
            if parent is not None and not (isinstance(parent, str) and _VERSION_NAME.match(parent)):
                raise StorageError(f"{where}: manifest names an invalid parent version {parent!r}")
            files = tuple(FileEntry(**f) for f in doc["files"])
            for entry in files:
                if not is_safe_file_name(entry.name):
                    raise StorageError(f"{where}: manifest names a file outside its partition: {entry.name!r}")
            return cls(
                key=PartitionKey.from_dict(doc["partition"]),
                files=files,
                config=dict(doc["config"]),
                config_hash=str(doc["config_hash"]),
                code_version=str(doc["code_version"]),
                info=dict(doc.get("info", {})),
                version=version,
                parent=parent,
            )
        except StorageError:
            raise
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StorageError(f"{where}: damaged manifest ({exc})") from exc


#: Environment prefixes of the two stores: the lake (outputs) and the catalog (raw inputs).
LAKE_ENV: Final[str] = "SEAICE_LAKE"
CATALOG_ENV: Final[str] = "SEAICE_CATALOG"
#: S3 endpoint used by a store that has no endpoint of its own.
SHARED_S3_ENDPOINT_ENV: Final[str] = "SEAICE_S3_ENDPOINT_URL"


def storage_options_from_env(
    root: str, env: Mapping[str, str] | None = None, *, store: str = LAKE_ENV
) -> dict[str, Any]:
    """fsspec storage options for ``root`` of one store from the environment.

    The lake and the catalog are separate stores (raw inputs often live on another bucket,
    account or endpoint): ``<store>_OPTIONS`` (``SEAICE_LAKE_OPTIONS``, ``SEAICE_CATALOG_OPTIONS``)
    holds a JSON object passed to fsspec as is (e.g. ``{"key": ..., "secret": ...}`` for s3fs);
    for ``s3://`` roots ``<store>_S3_ENDPOINT_URL``, else ``SEAICE_S3_ENDPOINT_URL``, sets the
    endpoint (MinIO, a local S3 server).  Without credentials in the options, s3fs/botocore read
    the usual AWS variables.

    Examples
    --------
    >>> env = {"SEAICE_CATALOG_S3_ENDPOINT_URL": "http://127.0.0.1:9000", "SEAICE_LAKE_OPTIONS": '{"anon": true}'}
    >>> storage_options_from_env("s3://raw", env, store=CATALOG_ENV)
    {'client_kwargs': {'endpoint_url': 'http://127.0.0.1:9000'}}
    >>> storage_options_from_env("s3://lake", env)
    {'anon': True}
    """
    env = os.environ if env is None else env
    opts: dict[str, Any] = {}
    name = f"{store}_OPTIONS"
    raw = env.get(name, "").strip()
    if raw:
        try:
            loaded = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise StorageError(f"{name} is not valid JSON ({exc})") from exc
        if not isinstance(loaded, dict):
            raise StorageError(f"{name} must be a JSON object")
        opts.update(loaded)
    endpoint = env.get(f"{store}_S3_ENDPOINT_URL", "").strip() or env.get(SHARED_S3_ENDPOINT_ENV, "").strip()
    if root.startswith("s3://") and endpoint:
        client_kwargs = dict(opts.get("client_kwargs", {}))
        client_kwargs.setdefault("endpoint_url", endpoint)
        opts["client_kwargs"] = client_kwargs
    return opts


def lake_from_env(root: str | None = None, env: Mapping[str, str] | None = None) -> Lake:
    """The lake at ``root`` or ``$SEAICE_LAKE`` (default ``./var/lake``) with env storage options."""
    env = os.environ if env is None else env
    url = root or env.get(LAKE_ENV, "") or DEFAULT_LAKE
    return Lake(url, storage_options_from_env(url, env))


@dataclasses.dataclass(frozen=True)
class InputStore:
    """Where the raw inputs (granules, scenes) live: a catalog root and its own fsspec options.

    Every reader of a raw input takes its options from here (:meth:`options_for`), never from
    the lake's, so inputs and outputs can sit on different buckets, accounts or endpoints.

    Attributes
    ----------
    root : str
        Catalog folder or URL (may be empty when inputs are given as explicit URIs).
    storage_options : dict
        fsspec options of remote inputs.
    """

    root: str = ""
    storage_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def options_for(self, uri: str) -> dict[str, Any] | None:
        """Options for reading ``uri``: the store's for remote URLs, None for local paths.

        Examples
        --------
        >>> store = InputStore("s3://raw", {"anon": True})
        >>> store.options_for("s3://raw/ATL03_x.h5"), store.options_for("/data/ATL03_x.h5")
        ({'anon': True}, None)
        """
        protocol = uri.split("://", 1)[0] if "://" in uri else "file"
        return dict(self.storage_options) if protocol != "file" else None


def inputs_from_env(root: str | None = None, env: Mapping[str, str] | None = None) -> InputStore:
    """The input store at ``root`` or ``$SEAICE_CATALOG`` with the catalog's storage options.

    Remote inputs named explicitly (not found under the catalog) use the same options; their
    endpoint is ``SEAICE_CATALOG_S3_ENDPOINT_URL`` (else ``SEAICE_S3_ENDPOINT_URL``).
    """
    env = os.environ if env is None else env
    url = root or env.get(CATALOG_ENV, "")
    return InputStore(url, storage_options_from_env(url or "s3://", env, store=CATALOG_ENV))


class Lake:
    """A storage root on any fsspec filesystem (local folder, ``file://``, ``s3://``).

    Parameters
    ----------
    root : str
        Local path or URL.
    storage_options : dict, optional
        fsspec options (S3 endpoint, credentials).
    """

    def __init__(self, root: str | os.PathLike[str], storage_options: Mapping[str, Any] | None = None) -> None:
        text = os.fspath(root)
        self.storage_options: dict[str, Any] = dict(storage_options or {})
        if "://" in text:
            protocol = text.split("://", 1)[0]
            self.fs: fsspec.AbstractFileSystem = fsspec.filesystem(protocol, **self.storage_options)
            base = text.split("://", 1)[1] if protocol != "file" else text.removeprefix("file://")
        else:
            protocol = "file"
            self.fs = fsspec.filesystem("file")
            base = os.path.abspath(text)
        self.protocol = protocol
        self._base = base.rstrip("/")
        self.root = text

    def __repr__(self) -> str:
        return f"Lake({self.root!r})"

    # -- paths -------------------------------------------------------------------------------
    def path(self, *parts: str) -> str:
        """Filesystem path (no protocol) below the root."""
        return posixpath.join(self._base, *parts) if parts else self._base

    def url(self, *parts: str) -> str:
        """Full URL below the root (``file:///...`` locally)."""
        path = self.path(*parts)
        return f"{self.protocol}://{path}"

    def partition_url(self, key: PartitionKey) -> str:
        """URL of a partition folder."""
        return self.url(key.relpath)

    def file_url(self, key: PartitionKey, name: str) -> str:
        """Logical URL of one file of a partition (``<partition>/<name>``), for messages.

        Committed files live in the version folder their manifest names: read them with
        :meth:`open_file` or :meth:`read_partition`, or get their address with
        :meth:`committed_file_url` / :meth:`committed_file_path`.
        """
        return self.url(key.relpath, name)

    def committed_file_path(self, key: PartitionKey, name: str) -> str:
        """Filesystem path (no protocol) of one committed file, in the version its manifest names.

        The path stays valid until a later commit of the partition replaces that version; to
        be safe against concurrent commits, read through :meth:`open_file` instead.

        Raises
        ------
        StorageError
            When the partition is not committed or its manifest has no such file.
        """
        man = self.require(key)
        if not any(f.name == name for f in man.files):
            raise StorageError(f"{self.partition_url(key)}: no file {name!r} in manifest")
        return self.path(key.relpath, man.file_relpath(name))

    def committed_file_url(self, key: PartitionKey, name: str) -> str:
        """URL of one committed file (see :meth:`committed_file_path`)."""
        return f"{self.protocol}://{self.committed_file_path(key, name)}"

    # -- reading ------------------------------------------------------------------------------
    def manifest(self, key: PartitionKey) -> Manifest | None:
        """The committed manifest of a partition, or None when it is not committed.

        Raises
        ------
        StorageError
            When the manifest is damaged or names a file outside its partition.
        """
        raw = self._read_raw(self.path(key.relpath, MANIFEST_NAME))
        if raw is None:
            return None
        return Manifest.from_json(raw[0].decode("utf-8", errors="replace"),
                                  where=self.url(key.relpath, MANIFEST_NAME))

    def is_committed(self, key: PartitionKey) -> bool:
        """Whether the partition has a manifest."""
        return self.manifest(key) is not None

    def require(self, key: PartitionKey) -> Manifest:
        """The manifest, or :class:`StorageError` naming the partition."""
        man = self.manifest(key)
        if man is None:
            raise StorageError(f"{self.partition_url(key)}: partition not committed")
        return man

    def partitions(self, stage: str, date: dt.date | None = None) -> list[PartitionKey]:
        """Committed partitions of a stage (optionally one day), sorted."""
        folder = self.path(stage, f"date={date.isoformat()}") if date else self.path(stage)
        self.fs.invalidate_cache(folder)
        found = self.fs.glob(posixpath.join(folder, "**", MANIFEST_NAME))
        base = self.path()
        keys = []
        for p in found:
            rel = posixpath.relpath(posixpath.dirname(str(p)), base)
            if any(part.startswith(("_", ".")) for part in rel.split("/")):
                continue  # below a version folder or the staging area: not a partition
            keys.append(PartitionKey.from_relpath(rel))
        return sorted(set(keys))

    def read_partition(
        self, key: PartitionKey, names: Iterable[str] | None = None, *, verify: bool = False
    ) -> tuple[Manifest, dict[str, bytes]]:
        """One consistent read of a committed partition: its manifest and the bytes of its files.

        Every file comes from the one version the manifest names, never from two.  A file
        found missing while the manifest now names another version means that a concurrent
        commit replaced the version read: the files are read again from the new one, as long as
        the manifest keeps changing (up to 10 reads).  A file missing from the version the
        manifest still names is an error.

        Parameters
        ----------
        key : PartitionKey
            The partition.
        names : iterable of str, optional
            Files to read (default: all files of the manifest).
        verify : bool
            Check every file's sha256 against the manifest.

        Raises
        ------
        StorageError
            Not committed, a name not in the manifest, a file still missing after re-reading
            the manifest, or (``verify``) a checksum that differs.
        """
        wanted = None if names is None else list(names)
        return self._read_snapshot(key, lambda man: [f.name for f in man.files] if wanted is None else wanted,
                                   verify=verify)

    def open_file(self, key: PartitionKey, name: str, *, verify: bool = False) -> bytes:
        """Bytes of one committed file; ``verify`` checks its sha256 against the manifest."""
        return self._read_snapshot(key, lambda man: [name], verify=verify)[1][name]

    def read_table(self, key: PartitionKey, name: str | None = None, *, verify: bool = False) -> pa.Table:
        """Read a committed (Geo)Parquet table; all tables of the partition when ``name`` is None.

        All tables come from one version of the partition (:meth:`read_partition`).
        """
        names, data = self._read_parquet(key, name, verify=verify)
        tables = [pq.read_table(io.BytesIO(data[n])) for n in names]
        return tables[0] if len(tables) == 1 else pa.concat_tables(tables)

    def read_geodataframe(self, key: PartitionKey, name: str | None = None) -> Any:
        """Read a committed GeoParquet table as a :class:`geopandas.GeoDataFrame`."""
        import geopandas

        names, data = self._read_parquet(key, name, verify=False)
        frames = [geopandas.read_parquet(io.BytesIO(data[n])) for n in names]
        return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)

    def _read_parquet(self, key: PartitionKey, name: str | None, *, verify: bool) -> tuple[list[str], dict[str, bytes]]:
        def pick(man: Manifest) -> list[str]:
            names = [name] if name else [f.name for f in man.files if f.name.endswith(".parquet")]
            if not names:
                raise StorageError(f"{self.partition_url(key)}: no parquet files in manifest")
            return names

        man, data = self._read_snapshot(key, pick, verify=verify)
        return pick(man), data

    def _read_snapshot(
        self, key: PartitionKey, pick: Callable[[Manifest], list[str]], *, verify: bool
    ) -> tuple[Manifest, dict[str, bytes]]:
        for attempt in range(_READ_ATTEMPTS):
            man = self.require(key)
            names = pick(man)
            entries = {f.name: f for f in man.files}
            for name in names:
                if name not in entries:
                    raise StorageError(f"{self.partition_url(key)}: no file {name!r} in manifest")
            try:
                data = {n: self._get(self.path(key.relpath, man.file_relpath(n))) for n in names}
            except FileNotFoundError as exc:
                if attempt + 1 < _READ_ATTEMPTS and man != self.manifest(key):
                    log.debug("%s: version %s replaced while reading; reading the new manifest",
                              self.partition_url(key), man.version)
                    continue
                raise StorageError(f"{self.partition_url(key)}: committed file missing ({exc})") from exc
            if verify:
                for n, blob in data.items():
                    if hashlib.sha256(blob).hexdigest() != entries[n].sha256:
                        url = self.url(key.relpath, man.file_relpath(n))
                        raise StorageError(f"{url}: sha256 differs from manifest")
            return man, data
        raise StorageError(f"{self.partition_url(key)}: not read")  # pragma: no cover - the loop returns or raises

    # -- writing ------------------------------------------------------------------------------
    def writer(
        self, key: PartitionKey, config: JsonConfig | Mapping[str, Any] | None = None, *, token: str | None = None
    ) -> PartitionWriter:
        """A :class:`PartitionWriter` for ``key``; use it as a context manager.

        Distributed jobs give every worker the same ``token``: workers stage part files with
        :meth:`PartitionWriter.write_table` (no commit), the driver opens a writer with that token,
        :meth:`~PartitionWriter.adopt` s the workers' entries and commits once all are done.
        """
        return PartitionWriter(self, key, config, token=token)

    def discard_staging(self, token: str) -> None:
        """Remove everything staged under a job's token (its uncommitted leftovers)."""
        if not _SAFE_VALUE.match(token):
            raise StorageError(f"staging token {token!r} is not a safe path component")
        self._rm_tree(self.path(STAGING_DIR, token))
        if self.protocol == "file":
            with contextlib.suppress(OSError):
                os.rmdir(self.path(STAGING_DIR))  # only when no other run is staging

    def gc_staging(self, min_age_s: float = GC_MIN_AGE_S, *, versions: bool = True,
                   now: float | None = None) -> list[str]:
        """Remove the leftovers of dead runs and killed commits; the URLs removed, sorted.

        Removed, when nothing inside them changed for ``min_age_s`` seconds (default
        :data:`GC_MIN_AGE_S`, 6 h): staging token folders ``_staging/<token>`` (age: the newest
        modification time inside, so a live run that keeps staging is never touched); with
        ``versions``, version folders that their partition's manifest does not name (orphans of
        killed or superseded commits) and temporary files (``.tmp-*``).  The version folder a
        manifest names is never removed, whatever its age.

        Parameters
        ----------
        min_age_s : float
            Safe age in seconds; it must exceed the longest time a live run leaves its staging
            untouched.
        versions : bool
            Also scan the whole lake for orphan version folders and temporary files (one listing
            of the lake and one manifest read per partition with an old candidate).
        now : float, optional
            The current time (seconds since the epoch); default :func:`time.time`.
        """
        if min_age_s < 0:
            raise StorageError(f"gc: min_age_s must be >= 0, got {min_age_s}")
        cutoff = (time.time() if now is None else now) - min_age_s
        removed: list[str] = []
        staging = self.path(STAGING_DIR)
        newest: dict[str, float | None] = {}
        for path, info in self._tree(staging, withdirs=True).items():
            rel = posixpath.relpath(path, staging)
            if rel == "." or rel.startswith(".."):
                continue
            token = rel.split("/", 1)[0]
            newest[token] = _newer(newest.get(token), _mtime(info))
        for token, when in sorted(newest.items()):
            if (when is None or when <= cutoff) and self._rm_tree(posixpath.join(staging, token)):
                removed.append(self.url(STAGING_DIR, token))
        if self.protocol == "file":
            with contextlib.suppress(OSError):
                os.rmdir(staging)
        if versions:
            removed += self._gc_versions(cutoff)
        for url in removed:
            log.info("gc: removed %s", url)
        return sorted(removed)

    def _gc_versions(self, cutoff: float) -> list[str]:
        """Orphan version folders and temporary files older than ``cutoff``, removed."""
        base = self.path()
        found: dict[str, dict[str, float | None]] = {}  # partition relpath -> version -> newest mtime
        temps: list[str] = []
        for path, info in self._tree(base, withdirs=True).items():
            rel = posixpath.relpath(path, base)
            parts = rel.split("/")
            if rel.startswith("..") or parts[0] in (".", STAGING_DIR):
                continue
            when = _mtime(info)
            at = next((i for i, part in enumerate(parts) if _VERSION_NAME.match(part)), None)
            if at is not None and at > 0:
                folders = found.setdefault("/".join(parts[:at]), {})
                folders[parts[at]] = _newer(folders.get(parts[at]), when)
            elif parts[-1].startswith(TMP_PREFIX) and info.get("type") != "directory" and when is not None \
                    and when <= cutoff:
                temps.append(path)
        removed = []
        for rel, folders in sorted(found.items()):
            old = sorted(v for v, when in folders.items() if when is None or when <= cutoff)
            if not old:
                continue
            raw = self._read_raw(posixpath.join(base, rel, MANIFEST_NAME))
            try:
                man = None if raw is None else Manifest.from_json(raw[0].decode("utf-8", errors="replace"),
                                                                  where=self.url(rel, MANIFEST_NAME))
            except StorageError as exc:
                log.warning("gc: %s left alone (%s)", self.url(rel), exc)
                continue
            for version in old:
                if man is not None and version == man.version:
                    continue
                folder = posixpath.join(base, rel, version)
                again = [_mtime(i) for i in self._tree(folder, withdirs=True).values()]
                if any(w is not None and w > cutoff for w in again):
                    continue  # a commit is filling it right now
                if self._rm_tree(folder):
                    removed.append(self.url(rel, version))
        for path in temps:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(path)
                removed.append(f"{self.protocol}://{path}")
        return removed

    def delete(self, key: PartitionKey) -> None:
        """Remove a partition (manifest first, so it turns invisible before files go)."""
        folder = self.path(key.relpath)
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(posixpath.join(folder, MANIFEST_NAME))
        self._rm_tree(folder)

    # -- documents: whole files outside the partitions (the STAC catalog) -------------------------
    def write_document(self, relpath: str, data: bytes) -> None:
        """Write a whole file below the root in one atomic step (readers see the old or the new bytes).

        For files that are not partitions, such as the STAC catalog: ``relpath`` must not name a
        manifest, staging or temporary file.

        Raises
        ------
        StorageError
            When ``relpath`` is absolute, climbs out of the root or names a reserved file.
        """
        self._write_atomic(self.path(_document_path(relpath)), data)

    def read_document(self, relpath: str) -> bytes | None:
        """Bytes of a file written by :meth:`write_document`, or None when it is absent."""
        try:
            return self._get(self.path(_document_path(relpath)))
        except FileNotFoundError:
            return None

    def list_documents(self, folder: str) -> list[str]:
        """Root-relative paths of the files below ``folder``, sorted ([] when it is absent)."""
        base = self.path(_document_path(folder))
        return sorted(posixpath.relpath(p, self._base) for p, info in self._tree(base).items()
                      if info.get("type") == "file")

    def delete_document(self, relpath: str) -> None:
        """Remove a file written by :meth:`write_document` (nothing when it is absent)."""
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self.path(_document_path(relpath)))

    # -- atomic primitives: local folder, S3, other fsspec filesystems --------------------------
    @property
    def _s3(self) -> bool:
        return self.protocol in ("s3", "s3a")

    def _get(self, path: str) -> bytes:
        """Bytes of one file; :class:`FileNotFoundError` when it is missing."""
        if self._s3:
            return self._s3_get(path)[0]
        data: bytes = self.fs.cat_file(path)
        return data

    def _s3_get(self, path: str) -> tuple[bytes, str]:
        """One GET: the object's bytes and its ETag (no listing cache involved)."""
        from fsspec.asyn import sync

        fs: Any = self.fs
        result: tuple[bytes, str] = sync(fs.loop, _s3_get_object, fs, path)
        return result

    def _read_raw(self, path: str) -> tuple[bytes, str] | None:
        """Bytes of a file and a token of them for :meth:`_cas_write` (S3: the ETag; else their
        sha256), or None when the file is missing."""
        try:
            if self._s3:
                return self._s3_get(path)
            data = self._get(path)
        except FileNotFoundError:
            return None
        return data, hashlib.sha256(data).hexdigest()

    def _cas_write(self, path: str, token: str | None, data: bytes) -> bool:
        """Replace ``path`` by ``data`` in one atomic step if it still holds what ``token`` names
        (None: if it is still absent); False when another writer changed it meanwhile.

        Local: under an exclusive ``flock`` of the folder, compare, then temporary file +
        ``os.replace``.  S3: one PUT with ``If-Match: <ETag>`` (``If-None-Match: *`` when
        absent).  Other filesystems have no conditional write: there the last writer wins.
        """
        if self.protocol == "file":
            folder = posixpath.dirname(path)
            os.makedirs(folder, exist_ok=True)
            with _folder_lock(folder):
                raw = self._read_raw(path)
                if (raw[1] if raw else None) != token:
                    return False
                self._write_atomic(path, data)
            return True
        if self._s3:
            fs: Any = self.fs
            bucket, key, _ = fs.split_path(path)
            condition = {"IfMatch": token} if token is not None else {"IfNoneMatch": "*"}
            try:
                fs.call_s3("put_object", Bucket=bucket, Key=key, Body=data, **condition)
            except (FileExistsError, FileNotFoundError):
                return False
            except OSError as exc:
                if _precondition_failed(exc):
                    return False
                raise
            finally:
                fs.invalidate_cache(path)
            return True
        self._write_atomic(path, data)
        return True

    def _write_atomic(self, path: str, data: bytes) -> None:
        """Write a whole file in one step (local: temporary file + ``os.replace``; S3: one PUT)."""
        if self.protocol == "file":
            _local_replace(path, lambda tmp: _write_local(tmp, data))
        else:
            self.fs.pipe_file(path, data)

    def _put_atomic(self, local_path: str, path: str) -> None:
        """Upload a local file in one step (local: copy to a temporary file + ``os.replace``)."""
        if self.protocol == "file":
            def make(tmp: str) -> None:
                shutil.copyfile(local_path, tmp)

            _local_replace(path, make)
        else:
            self.fs.put_file(local_path, path)

    def _place(self, src: str, dst: str) -> None:
        """Copy a staged file to its committed place in one atomic step.

        Local: a hard link (a copy where the filesystem has none) to a temporary name, then
        ``os.replace``; S3: one server-side copy.  The staged file stays until the commit ends.
        """
        fs: Any = self.fs
        if self.protocol == "file":
            def make(tmp: str) -> None:
                try:
                    fs.link(src, tmp)
                except OSError as exc:
                    if exc.errno not in _NO_HARDLINK:
                        raise
                    shutil.copyfile(src, tmp)

            _local_replace(dst, make)
        else:
            fs.cp_file(src, dst)

    def _tree(self, prefix: str, *, withdirs: bool = False) -> dict[str, dict[str, Any]]:
        """Everything below ``prefix`` (path -> fsspec info), listed afresh; {} when absent."""
        self.fs.invalidate_cache(prefix)
        try:
            found = self.fs.find(prefix, withdirs=withdirs, detail=True)
        except FileNotFoundError:
            return {}
        return {str(k): dict(v) for k, v in found.items() if str(k).rstrip("/") != prefix.rstrip("/")}

    def _rm_tree(self, path: str) -> bool:
        """Remove a folder and everything below it; False when absent or not fully removed."""
        self.fs.invalidate_cache(path)
        try:
            self.fs.rm(path, recursive=True)
        except FileNotFoundError:
            return False
        except OSError as exc:
            log.warning("%s://%s: not fully removed (%s)", self.protocol, path, exc)
            return False
        return True


async def _s3_get_object(fs: Any, path: str) -> tuple[bytes, str]:
    bucket, key, _ = fs.split_path(path)
    resp = await fs._call_s3("get_object", Bucket=bucket, Key=key)
    try:
        body: bytes = await resp["Body"].read()
    finally:
        resp["Body"].close()
    return body, str(resp.get("ETag", ""))


def _precondition_failed(exc: BaseException) -> bool:
    """Whether an s3fs error is a failed ``If-Match``/``If-None-Match`` (412, or 409 on a conflict)."""
    seen: BaseException | None = exc
    while seen is not None:
        response = getattr(seen, "response", None)
        if isinstance(response, dict):
            code = str(response.get("Error", {}).get("Code", ""))
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412):
                return True
        seen = seen.__cause__ or seen.__context__
    return False


@contextlib.contextmanager
def _folder_lock(folder: str) -> Iterator[None]:
    """Exclusive ``flock`` of a local folder; the kernel releases it when the process dies."""
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:  # e.g. ENOLCK on some network filesystems
            log.warning("%s: cannot lock (%s); concurrent commits here are not serialised", folder, exc)
        yield
    finally:
        os.close(fd)


def _local_replace(path: str, make: Callable[[str], None]) -> None:
    """Create ``path`` atomically: ``make`` fills a temporary file beside it, ``os.replace`` moves it in."""
    folder = posixpath.dirname(path)
    os.makedirs(folder, exist_ok=True)
    tmp = posixpath.join(folder, f"{TMP_PREFIX}{uuid.uuid4().hex}-{posixpath.basename(path)[:64]}")
    try:
        make(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def _write_local(path: str, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)


def _mtime(info: Mapping[str, Any]) -> float | None:
    """Modification time of an fsspec info record (local ``mtime``, S3 ``LastModified``)."""
    value = info.get("mtime", info.get("LastModified"))
    if isinstance(value, dt.datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    return None


def _newer(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


def _same_files(a: Iterable[FileEntry], b: Iterable[FileEntry]) -> bool:
    return sorted((f.name, f.sha256, f.bytes) for f in a) == sorted((f.name, f.sha256, f.bytes) for f in b)


class PartitionWriter:
    """Stages the files of one partition and commits them atomically.

    Use as a context manager: leaving the block normally commits; an exception discards the
    staged files and leaves any previously committed partition as it was.

    Examples
    --------
    >>> import tempfile
    >>> lake = Lake(tempfile.mkdtemp())
    >>> key = PartitionKey("demo", dt.date(2019, 11, 4))
    >>> with lake.writer(key) as w:
    ...     _ = w.write_bytes("hello.txt", b"hi")
    >>> lake.require(key).files[0].name
    'hello.txt'
    """

    def __init__(
        self,
        lake: Lake,
        key: PartitionKey,
        config: JsonConfig | Mapping[str, Any] | None = None,
        *,
        token: str | None = None,
    ) -> None:
        self.lake = lake
        self.key = key
        if isinstance(config, JsonConfig):
            self.config: dict[str, Any] = config.to_dict()
            self.config_hash = config_hash(config)
        else:
            self.config = dict(config or {})
            self.config_hash = hashlib.sha256(
                json.dumps(self.config, sort_keys=True, default=json_default).encode()
            ).hexdigest()[:16]
        self.info: dict[str, Any] = {}
        self._files: dict[str, FileEntry] = {}
        if token is not None and not _SAFE_VALUE.match(token):
            raise StorageError(f"staging token {token!r} is not a safe path component")
        self.token = token or uuid.uuid4().hex
        self._staging = lake.path(STAGING_DIR, self.token, key.relpath)
        self._done = False

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None and not self._done:
            try:
                self.commit()
            except BaseException:
                self.abort()
                raise
        elif not self._done:
            self.abort()

    @property
    def files(self) -> dict[str, FileEntry]:
        """Files staged so far."""
        return dict(self._files)

    def adopt(self, entry: FileEntry) -> None:
        """Take over a file another process staged under this writer's token.

        Raises
        ------
        StorageError
            If the staged file is missing or its size differs from the entry.
        """
        self._check_name(entry.name)
        path = posixpath.join(self._staging, entry.name)
        try:
            size = int(self.lake.fs.size(path))
        except FileNotFoundError:
            size = -1
        if size != entry.bytes:
            raise StorageError(f"{self.lake.url(STAGING_DIR, self.token, self.key.relpath, entry.name)}: "
                               f"staged file missing or of the wrong size ({size} != {entry.bytes} bytes)")
        self._files[entry.name] = entry

    def read_staged(self, name: str) -> bytes:
        """Bytes of a file staged under this writer's token (by this or another process)."""
        path = posixpath.join(self._staging, name)
        try:
            with self.lake.fs.open(path, "rb") as fh:
                data: bytes = fh.read()
        except FileNotFoundError as exc:
            raise StorageError(f"{self.lake.url(STAGING_DIR, self.token, self.key.relpath, name)}: not staged") from exc
        return data

    def write_bytes(self, name: str, data: bytes, rows: int | None = None) -> FileEntry:
        """Stage one file from bytes."""
        self._check_name(name)
        self.lake._write_atomic(posixpath.join(self._staging, name), data)
        entry = FileEntry(name=name, bytes=len(data), sha256=hashlib.sha256(data).hexdigest(), rows=rows)
        self._files[name] = entry
        return entry

    def write_local_file(self, name: str, local_path: str | os.PathLike[str], rows: int | None = None) -> FileEntry:
        """Stage a file that was written to local disk (large outputs, COGs), streaming its hash."""
        self._check_name(name)
        digest = hashlib.sha256()
        size = 0
        with open(local_path, "rb") as src:
            for chunk in iter(lambda: src.read(_HASH_CHUNK_BYTES), b""):
                digest.update(chunk)
                size += len(chunk)
        self.lake._put_atomic(os.fspath(local_path), posixpath.join(self._staging, name))
        entry = FileEntry(name=name, bytes=size, sha256=digest.hexdigest(), rows=rows)
        self._files[name] = entry
        return entry

    def write_table(
        self,
        name: str,
        table: pa.Table,
        schema: pa.Schema | None = None,
        *,
        compression: str = "zstd",
    ) -> FileEntry:
        """Stage a Parquet table; ``schema`` (from :mod:`seaice_tasks.schemas`) is enforced.

        The table keeps its schema metadata (GeoParquet ``geo`` key, units) and gets a
        ``seaice`` key with the partition, config and code version.
        """
        if schema is not None:
            table = validate_table(table, schema, where=self.lake.file_url(self.key, name))
        table = table.replace_schema_metadata(self._table_metadata(table))
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression=compression)
        return self.write_bytes(name, sink.getvalue().to_pybytes(), rows=table.num_rows)

    def write_table_pieces(
        self,
        name: str,
        pieces: Iterable[pa.Table],
        schema: pa.Schema | None = None,
        *,
        compression: str = "zstd",
        use_dictionary: bool = True,
    ) -> FileEntry:
        """Stage a Parquet table that arrives in pieces, streamed through a local file (bounded memory).

        Every piece is checked and gets its metadata as :meth:`write_table`'s table does, and is
        written as the file's next row group(s); all pieces must have one schema (metadata
        included: give every piece the whole table's, e.g. its GeoParquet bbox).  Pieces of
        ``pq.write_table``'s row group size (:data:`PARQUET_ROW_GROUP_ROWS`, the last one
        shorter) give the very bytes that :meth:`write_table` gives for their concatenation.
        ``use_dictionary`` False writes every column without dictionary encoding (plain).  A
        piece is let go once written, before the next one is asked for.

        Raises
        ------
        StorageError
            When no piece is given.
        SchemaError
            When a piece does not fit ``schema`` or differs from the first piece's schema.
        """
        self._check_name(name)
        where = self.lake.file_url(self.key, name)
        rows = 0
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "table.parquet")
            out: pq.ParquetWriter | None = None
            try:
                for piece in pieces:
                    table = validate_table(piece, schema, where=where) if schema is not None else piece
                    table = table.replace_schema_metadata(self._table_metadata(table))
                    if out is None:
                        out = pq.ParquetWriter(path, table.schema, compression=compression,
                                               use_dictionary=use_dictionary)
                    elif not table.schema.equals(out.schema, check_metadata=True):
                        raise SchemaError(f"{where}: a piece's schema differs from the first piece's")
                    out.write_table(table)
                    rows += table.num_rows
                    del piece, table  # not held while the next piece is made
            finally:
                if out is not None:
                    out.close()
            if out is None:
                raise StorageError(f"{where}: no table pieces to write")
            return self.write_local_file(name, path, rows=rows)

    def _table_metadata(self, table: pa.Table) -> dict[bytes, bytes]:
        """``table``'s schema metadata plus the ``seaice`` key (partition, config, code version)."""
        meta = dict(table.schema.metadata or {})
        meta[b"seaice"] = json.dumps(
            {
                "partition": self.key.to_dict(),
                "config": self.config,
                "config_hash": self.config_hash,
                "code_version": code_version(),
            },
            sort_keys=True,
            default=json_default,
        ).encode()
        return meta

    def write_cog(
        self,
        name: str,
        array: npt.NDArray[Any],
        *,
        crs: Any,
        transform: Any,
        nodata: float | None = None,
        colormap: Mapping[int, tuple[int, int, int]] | None = None,
        tags: Mapping[str, str] | None = None,
        blocksize: int = 512,
    ) -> FileEntry:
        """Stage a Cloud-Optimised GeoTIFF of a (bands, rows, cols) or (rows, cols) array."""
        import rasterio
        from rasterio.io import MemoryFile
        from rasterio.shutil import copy as rio_copy

        data = array[np.newaxis] if array.ndim == 2 else array
        count, height, width = data.shape
        profile = {
            "driver": "GTiff",
            "width": width,
            "height": height,
            "count": count,
            "dtype": data.dtype.name,
            "crs": crs,
            "transform": transform,
            "nodata": nodata,
        }
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "cog.tif")
            with MemoryFile() as mem, mem.open(**profile) as ds:
                ds.write(data)
                if colormap is not None and count == 1:
                    ds.write_colormap(1, dict(colormap))
                ds.update_tags(seaice_code_version=code_version(), seaice_config_hash=self.config_hash,
                               **dict(tags or {}))
                with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
                    rio_copy(ds, out, driver="COG", BLOCKSIZE=blocksize, COMPRESS="DEFLATE")
            return self.write_local_file(name, out)

    def commit(self) -> Manifest:
        """Publish the staged files as the partition's new version; the manifest goes last.

        1. Read the current manifest (with a token of it: its sha256 locally, its ETag on S3).
        2. Place the staged files in the version folder ``<partition>/_v-<16 hex>`` named from
           them and from the current version, each file in one atomic step (local: hard link or
           copy to a temporary name + ``os.replace``; S3: one server-side copy), and check that
           the folder is complete.  When the files are the current version's, that folder is
           kept (missing files are put back).
        3. Replace the manifest in one conditional, atomic step, only if it is still what step 1
           read (local: under ``flock`` of the partition folder, temporary file + ``os.replace``;
           S3: one PUT with ``If-Match``/``If-None-Match``).  When another commit replaced it
           meanwhile, start again at 1.  An identical manifest is not rewritten.
        4. Remove the version the replaced manifest named (format 1: its files), then the
           staged files.

        Whatever is killed when, and whatever commits at the same time, the partition is its
        previous or its new complete version; :meth:`Lake.gc_staging` removes the leftovers of
        killed commits.

        Raises
        ------
        StorageError
            When a staged file is missing, the version folder lost files while it was filled,
            or concurrent commits kept replacing the manifest for :data:`_COMMIT_ATTEMPTS` tries.
        """
        if self._done:
            raise StorageError(f"{self.lake.partition_url(self.key)}: writer already finished")
        lake = self.lake
        folder = lake.path(self.key.relpath)
        manifest_path = posixpath.join(folder, MANIFEST_NAME)
        where = lake.url(self.key.relpath, MANIFEST_NAME)
        entries = tuple(self._files[n] for n in sorted(self._files))
        filled: str | None = None  # the version folder this commit has filled and checked
        problem = "concurrent commits kept replacing the manifest"
        for attempt in range(_COMMIT_ATTEMPTS):
            if attempt:
                time.sleep(random.uniform(0.0, min(0.05, 0.001 * 2**attempt)))
            raw = lake._read_raw(manifest_path)
            current: Manifest | None = None
            if raw is not None:
                try:
                    current = Manifest.from_json(raw[0].decode("utf-8", errors="replace"), where=where)
                except StorageError as exc:
                    log.warning("%s; the commit replaces it", exc)
            if current is not None and current.version is not None and _same_files(current.files, entries):
                version, parent, keep = current.version, current.parent, True
            else:
                parent = current.version if current is not None else None
                version, keep = _version_name(entries, parent), False
            manifest = Manifest(
                key=self.key,
                files=entries,
                config=self.config,
                config_hash=self.config_hash,
                code_version=code_version(),
                info=self.info,
                version=version,
                parent=parent,
            )
            text = manifest.to_json().encode()
            target = posixpath.join(folder, version)
            if filled != version:
                # a new version: place every file; a kept one: put back what is missing (a repair),
                # unless it is missing because a concurrent commit replaced that version
                todo = self._missing(target, entries) if keep else list(self._files)
                if keep and todo and lake._read_raw(manifest_path) != raw:
                    continue
                if not self._fill(target, todo):
                    continue  # the kept version folder went away: a concurrent commit replaced it
                if todo and (lost := self._missing(target, entries)):
                    problem = f"{lake.url(self.key.relpath, version)} lost {', '.join(lost)} while being filled"
                    continue  # removed meanwhile (a replaced kept version, gc, a delete): fill it again
                filled = version
            if raw is not None and raw[0] == text:
                break  # committed exactly so already (an identical re-run)
            if lake._cas_write(manifest_path, raw[1] if raw is not None else None, text):
                self._retire(folder, current, version)
                break
        else:
            raise StorageError(f"{lake.partition_url(self.key)}: commit gave up after {_COMMIT_ATTEMPTS} attempts "
                               f"({problem})")
        self._cleanup_staging()
        self._done = True
        log.info("committed %s (%s, %d files, %d rows)", lake.partition_url(self.key), manifest.version,
                 len(manifest.files), manifest.rows)
        return manifest

    def abort(self) -> None:
        """Discard the staged files; a committed partition stays as it was."""
        self._cleanup_staging()
        self._done = True

    def _fill(self, target: str, names: Iterable[str]) -> bool:
        """Place the staged files ``names`` in the version folder ``target``.

        False when the folder disappeared meanwhile (a concurrent commit replaced the version
        that is kept); :class:`StorageError` when a staged file is missing.
        """
        lake = self.lake
        try:
            if lake.protocol == "file":
                os.makedirs(target, exist_ok=True)
        except FileExistsError:
            # os.makedirs found the folder, then a concurrent commit retired it before its isdir check
            return False
        lake.fs.invalidate_cache(self._staging)
        for name in sorted(names):
            src = posixpath.join(self._staging, name)
            try:
                lake._place(src, posixpath.join(target, name))
            except FileExistsError:  # the same race in the makedirs of a file's own folder
                return False
            except FileNotFoundError as exc:
                lake.fs.invalidate_cache(src)
                if lake.fs.exists(src):
                    return False
                raise StorageError(f"{lake.url(STAGING_DIR, self.token, self.key.relpath, name)}: staged file "
                                   f"missing at commit ({exc})") from exc
        return True

    def _missing(self, target: str, entries: Iterable[FileEntry]) -> list[str]:
        """Names of ``entries`` not in the version folder with their size (one listing)."""
        sizes = {posixpath.relpath(p, target): i.get("size") for p, i in self.lake._tree(target).items()}
        return [e.name for e in entries if sizes.get(e.name) != e.bytes]

    def _retire(self, folder: str, current: Manifest | None, version: str) -> None:
        """Remove what the replaced manifest named (best effort: leftovers are found by gc)."""
        lake = self.lake
        if current is None:
            return
        if current.version is not None:
            if current.version != version:
                lake._rm_tree(posixpath.join(folder, current.version))
            return
        for entry in current.files:  # format 1: the files sit directly in the partition folder
            try:
                lake.fs.rm_file(posixpath.join(folder, entry.name))
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("%s: old file not removed (%s)", lake.url(self.key.relpath, entry.name), exc)
        if lake.protocol == "file":
            subdirs = {posixpath.dirname(e.name) for e in current.files if "/" in e.name}
            for sub in sorted(subdirs, key=lambda d: -d.count("/")):
                with contextlib.suppress(OSError):
                    os.removedirs(posixpath.join(folder, sub))  # stops at the first non-empty folder

    def _cleanup_staging(self) -> None:
        self.lake._rm_tree(self._staging)
        if self.lake.protocol == "file":  # object stores have no empty folders to leave behind
            root = self.lake.path(STAGING_DIR)
            folder = posixpath.dirname(self._staging)
            while folder.startswith(root) and folder != root:
                try:
                    os.rmdir(folder)
                except OSError:
                    break  # not empty: another partition is staging
                folder = posixpath.dirname(folder)

    def _check_name(self, name: str) -> None:
        if self._done:
            raise StorageError(f"{self.lake.partition_url(self.key)}: writer already finished")
        if not is_safe_file_name(name):
            raise StorageError(f"{self.lake.partition_url(self.key)}: invalid file name {name!r}")


@functools.lru_cache(maxsize=1)
def _wgs84_projjson() -> str:
    """PROJJSON of EPSG:4326 (built once per process: pyproj takes ~40 ms for it)."""
    from pyproj import CRS

    return json.dumps(CRS.from_epsg(WGS84_EPSG).to_json_dict())


def _arrow_column(values: Any, type_: pa.DataType) -> pa.Array:
    """One column as Arrow: a pandas Series through Arrow's own conversion (timestamps stay vectorised)."""
    if isinstance(values, pd.Series):
        return pa.Array.from_pandas(values, type=type_)
    return pa.array(values, type=type_, from_pandas=True)


def geoparquet_table(
    frame: pd.DataFrame,
    schema: pa.Schema,
    *,
    lon_col: str = "lon_deg",
    lat_col: str = "lat_deg",
    geometry_col: str = "geometry",
    bbox: Sequence[float] | None = None,
) -> pa.Table:
    """Arrow table in ``schema`` with a WKB point geometry and GeoParquet 1.1 ``geo`` metadata.

    Parameters
    ----------
    frame : pandas.DataFrame
        Must hold the schema's columns (minus geometry) and ``lon_col``/``lat_col`` in degrees.
    schema : pyarrow.Schema
        Target schema; its ``geometry`` field must be binary.
    bbox : sequence of float, optional
        The ``bbox`` to record (degrees: lon min, lat min, lon max, lat max; empty: none), for a
        piece of a larger table; default: the frame's own (its finite points').

    Returns
    -------
    pyarrow.Table
        Validated against ``schema``, geometry in EPSG:4326, bbox in the metadata.
    """
    import shapely

    lon = frame[lon_col].to_numpy(dtype=np.float64)
    lat = frame[lat_col].to_numpy(dtype=np.float64)
    wkb = shapely.to_wkb(shapely.points(lon, lat))
    cols = {f.name: frame[f.name] for f in schema if f.name != geometry_col}
    table = pa.table(
        {**{k: _arrow_column(v, schema.field(k).type) for k, v in cols.items()},
         geometry_col: pa.array(wkb, type=pa.binary())}
    )
    table = table.select([f.name for f in schema])
    if bbox is None:
        finite = np.isfinite(lon) & np.isfinite(lat)
        bbox = (
            [float(lon[finite].min()), float(lat[finite].min()), float(lon[finite].max()), float(lat[finite].max())]
            if finite.any()
            else []
        )
    geo = {
        "version": GEOPARQUET_VERSION,
        "primary_column": geometry_col,
        "columns": {
            geometry_col: {
                "encoding": "WKB",
                "geometry_types": ["Point"],
                "crs": json.loads(_wgs84_projjson()),
                **({"bbox": list(bbox)} if bbox else {}),
            }
        },
    }
    meta = dict(schema.metadata or {})
    meta[b"geo"] = json.dumps(geo, sort_keys=True).encode()
    return validate_table(table.replace_schema_metadata(meta), schema.with_metadata(meta), where="geoparquet")
