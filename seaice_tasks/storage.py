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
  (one token per job run, shared by its distributed workers); :meth:`PartitionWriter.commit`
  removes the old manifest (the partition becomes invisible), replaces the partition's files,
  and writes ``_manifest.json`` (files, row counts, sha256, config, code version) last.  Readers
  only follow committed manifests, so a half-written partition is never visible and a re-run
  replaces the partition with the same content.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import io
import json
import logging
import os
import posixpath
import re
import tempfile
import uuid
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Final, Self

import fsspec
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from seaice_tasks import __version__
from seaice_tasks.config import JsonConfig, config_hash
from seaice_tasks.errors import StorageError
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
    "code_version",
    "geoparquet_table",
]

log = logging.getLogger(__name__)

DEFAULT_LAKE: Final[str] = "./var/lake"
MANIFEST_NAME: Final[str] = "_manifest.json"
STAGING_DIR: Final[str] = "_staging"
MANIFEST_VERSION: Final[int] = 1
GEOPARQUET_VERSION: Final[str] = "1.1.0"
#: EPSG:4326 as PROJJSON is long; GeoParquet allows omitting ``crs`` for OGC:CRS84 but we are
#: explicit so every reader (geopandas, GDAL, DuckDB) agrees.
WGS84_EPSG: Final[int] = 4326
_HASH_CHUNK_BYTES: Final[int] = 1 << 20
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
#: Key fields of a partition path, in path order.
KEY_FIELDS: Final[tuple[str, ...]] = ("date", "granule", "beam", "scene", "name", "version")


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


@dataclasses.dataclass(frozen=True)
class Manifest:
    """What makes a partition visible; written last by :meth:`PartitionWriter.commit`."""

    key: PartitionKey
    files: tuple[FileEntry, ...]
    config: dict[str, Any]
    config_hash: str
    code_version: str
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def rows(self) -> int:
        """Total table rows over the partition's files."""
        return sum(f.rows or 0 for f in self.files)

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, no wall-clock time): re-runs give identical bytes."""
        doc = {
            "manifest_version": MANIFEST_VERSION,
            "partition": self.key.to_dict(),
            "files": [dataclasses.asdict(f) for f in self.files],
            "rows": self.rows,
            "config": self.config,
            "config_hash": self.config_hash,
            "code_version": self.code_version,
            "info": self.info,
        }
        return json.dumps(doc, sort_keys=True, indent=1, default=_json_default)

    @classmethod
    def from_json(cls, text: str, where: str = "manifest") -> Manifest:
        """Parse a manifest, with a clear error when it is damaged."""
        try:
            doc = json.loads(text)
            return cls(
                key=PartitionKey.from_dict(doc["partition"]),
                files=tuple(FileEntry(**f) for f in doc["files"]),
                config=dict(doc["config"]),
                config_hash=str(doc["config_hash"]),
                code_version=str(doc["code_version"]),
                info=dict(doc.get("info", {})),
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise StorageError(f"{where}: damaged manifest ({exc})") from exc


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


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
        """URL of one file of a partition."""
        return self.url(key.relpath, name)

    # -- reading ------------------------------------------------------------------------------
    def manifest(self, key: PartitionKey) -> Manifest | None:
        """The committed manifest of a partition, or None when it is not committed."""
        path = self.path(key.relpath, MANIFEST_NAME)
        try:
            with self.fs.open(path, "rb") as fh:
                text = fh.read().decode()
        except FileNotFoundError:
            return None
        return Manifest.from_json(text, where=self.url(key.relpath, MANIFEST_NAME))

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
        pattern = (self.path(stage, f"date={date.isoformat()}", "**", MANIFEST_NAME) if date
                   else self.path(stage, "**", MANIFEST_NAME))
        found = self.fs.glob(pattern)
        base = self.path()
        keys = []
        for p in found:
            rel = posixpath.relpath(posixpath.dirname(str(p)), base)
            keys.append(PartitionKey.from_relpath(rel))
        return sorted(set(keys))

    def open_file(self, key: PartitionKey, name: str, *, verify: bool = False) -> bytes:
        """Bytes of one committed file; ``verify`` checks its sha256 against the manifest."""
        man = self.require(key)
        entry = next((f for f in man.files if f.name == name), None)
        if entry is None:
            raise StorageError(f"{self.partition_url(key)}: no file {name!r} in manifest")
        with self.fs.open(self.path(key.relpath, name), "rb") as fh:
            data: bytes = fh.read()
        if verify and hashlib.sha256(data).hexdigest() != entry.sha256:
            raise StorageError(f"{self.file_url(key, name)}: sha256 differs from manifest")
        return data

    def read_table(self, key: PartitionKey, name: str | None = None, *, verify: bool = False) -> pa.Table:
        """Read a committed (Geo)Parquet table; all tables of the partition when ``name`` is None."""
        man = self.require(key)
        names = [name] if name else [f.name for f in man.files if f.name.endswith(".parquet")]
        if not names:
            raise StorageError(f"{self.partition_url(key)}: no parquet files in manifest")
        tables = [pq.read_table(io.BytesIO(self.open_file(key, n, verify=verify))) for n in names]
        return tables[0] if len(tables) == 1 else pa.concat_tables(tables)

    def read_geodataframe(self, key: PartitionKey, name: str | None = None) -> Any:
        """Read a committed GeoParquet table as a :class:`geopandas.GeoDataFrame`."""
        import geopandas

        man = self.require(key)
        names = [name] if name else [f.name for f in man.files if f.name.endswith(".parquet")]
        frames = [geopandas.read_parquet(io.BytesIO(self.open_file(key, n))) for n in names]
        return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)

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
        folder = self.path(STAGING_DIR, token)
        try:
            if self.fs.exists(folder):
                self.fs.rm(folder, recursive=True)
        except FileNotFoundError:
            pass
        if self.protocol == "file":
            with contextlib.suppress(OSError):
                os.rmdir(self.path(STAGING_DIR))  # only when no other run is staging

    def delete(self, key: PartitionKey) -> None:
        """Remove a partition (manifest first, so it turns invisible before files go)."""
        folder = self.path(key.relpath)
        manifest = posixpath.join(folder, MANIFEST_NAME)
        if self.fs.exists(manifest):
            self.fs.rm(manifest)
        if self.fs.exists(folder):
            self.fs.rm(folder, recursive=True)


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
                json.dumps(self.config, sort_keys=True, default=_json_default).encode()
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
            self.commit()
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
        path = posixpath.join(self._staging, name)
        self.lake.fs.makedirs(posixpath.dirname(path), exist_ok=True)
        with self.lake.fs.open(path, "wb") as fh:
            fh.write(data)
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
        path = posixpath.join(self._staging, name)
        self.lake.fs.makedirs(posixpath.dirname(path), exist_ok=True)
        self.lake.fs.put_file(os.fspath(local_path), path)
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
        meta = dict(table.schema.metadata or {})
        meta[b"seaice"] = json.dumps(
            {
                "partition": self.key.to_dict(),
                "config": self.config,
                "config_hash": self.config_hash,
                "code_version": code_version(),
            },
            sort_keys=True,
            default=_json_default,
        ).encode()
        table = table.replace_schema_metadata(meta)
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression=compression)
        return self.write_bytes(name, sink.getvalue().to_pybytes(), rows=table.num_rows)

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
        """Make the staged files the partition's content; the manifest goes last."""
        if self._done:
            raise StorageError(f"{self.lake.partition_url(self.key)}: writer already finished")
        fs = self.lake.fs
        folder = self.lake.path(self.key.relpath)
        manifest = Manifest(
            key=self.key,
            files=tuple(self._files[n] for n in sorted(self._files)),
            config=self.config,
            config_hash=self.config_hash,
            code_version=code_version(),
            info=self.info,
        )
        manifest_path = posixpath.join(folder, MANIFEST_NAME)
        # 1. invisible: remove the old manifest, then the old files.
        if fs.exists(manifest_path):
            fs.rm(manifest_path)
        if fs.exists(folder):
            fs.rm(folder, recursive=True)
        # 2. move the staged files in.
        fs.makedirs(folder, exist_ok=True)
        for name in sorted(self._files):
            dst = posixpath.join(folder, name)
            fs.makedirs(posixpath.dirname(dst), exist_ok=True)
            fs.mv(posixpath.join(self._staging, name), dst)
        # 3. visible: the manifest, atomically (local: temp file + rename; S3: one PUT).
        text = manifest.to_json().encode()
        if self.lake.protocol == "file":
            tmp = posixpath.join(folder, f".{MANIFEST_NAME}.{uuid.uuid4().hex}")
            with fs.open(tmp, "wb") as fh:
                fh.write(text)
            os.replace(tmp, manifest_path)
        else:
            with fs.open(manifest_path, "wb") as fh:
                fh.write(text)
        self._cleanup_staging()
        self._done = True
        log.info("committed %s (%d files, %d rows)", self.lake.partition_url(self.key),
                 len(manifest.files), manifest.rows)
        return manifest

    def abort(self) -> None:
        """Discard the staged files; a committed partition stays as it was."""
        self._cleanup_staging()
        self._done = True

    def _cleanup_staging(self) -> None:
        fs = self.lake.fs
        try:
            if fs.exists(self._staging):
                fs.rm(self._staging, recursive=True)
        except FileNotFoundError:
            pass
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
        if name == MANIFEST_NAME or name.startswith(("/", ".")) or ".." in name.split("/"):
            raise StorageError(f"{self.lake.partition_url(self.key)}: invalid file name {name!r}")


def geoparquet_table(
    frame: pd.DataFrame,
    schema: pa.Schema,
    *,
    lon_col: str = "lon_deg",
    lat_col: str = "lat_deg",
    geometry_col: str = "geometry",
) -> pa.Table:
    """Arrow table in ``schema`` with a WKB point geometry and GeoParquet 1.1 ``geo`` metadata.

    Parameters
    ----------
    frame : pandas.DataFrame
        Must hold the schema's columns (minus geometry) and ``lon_col``/``lat_col`` in degrees.
    schema : pyarrow.Schema
        Target schema; its ``geometry`` field must be binary.

    Returns
    -------
    pyarrow.Table
        Validated against ``schema``, geometry in EPSG:4326, bbox in the metadata.
    """
    import shapely
    from pyproj import CRS

    lon = frame[lon_col].to_numpy(dtype=np.float64)
    lat = frame[lat_col].to_numpy(dtype=np.float64)
    wkb = shapely.to_wkb(shapely.points(lon, lat))
    cols = {f.name: frame[f.name] for f in schema if f.name != geometry_col}
    table = pa.table(
        {**{k: pa.array(v.to_numpy() if hasattr(v, "to_numpy") else v, type=schema.field(k).type,
                        from_pandas=True) for k, v in cols.items()},
         geometry_col: pa.array(list(wkb), type=pa.binary())}
    )
    table = table.select([f.name for f in schema])
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
                "crs": CRS.from_epsg(WGS84_EPSG).to_json_dict(),
                **({"bbox": bbox} if bbox else {}),
            }
        },
    }
    meta = dict(schema.metadata or {})
    meta[b"geo"] = json.dumps(geo, sort_keys=True).encode()
    return validate_table(table.replace_schema_metadata(meta), schema.with_metadata(meta), where="geoparquet")
