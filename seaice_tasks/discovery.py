"""Discovery providers: where a day's raw inputs come from, behind one interface.

Three providers fill the catalog store (``$SEAICE_CATALOG``, a folder or bucket):

* ``catalog`` (the default): the inputs are already there; nothing is fetched.
* ``cmr``: NASA's Common Metadata Repository, searched with :mod:`earthaccess` for ICESat-2
  ATL03/ATL07/ATL10 granules (short name, version, the UTC day, bounding box or polygon,
  optionally daytime only).
* ``stac``: a STAC API (Earth Search, Planetary Computer, CDSE), searched with
  :mod:`pystac_client` for Sentinel-2 L1C/L2A scenes (collection, the UTC day, bounding box,
  ``eo:cloud_cover``).

Every provider returns :class:`RemoteInput` records; :func:`fetch_inputs` downloads them into
the catalog store through fsspec, with retries, checksums where the provider gives them
(CMR's ``Checksum``, STAC's ``file:checksum``) and an atomic rename, so that a partial download
never becomes an input.  The day's inventory is then scanned from the catalog store exactly as
for a catalog folder (:func:`seaice_tasks.catalog.discover_day`), so the later stages cannot tell
how an input arrived.

Credentials come from the environment only (the DAG copies them there from Airflow
connections): ``EARTHDATA_TOKEN`` (an Earthdata Login bearer token) or ``EARTHDATA_USERNAME`` +
``EARTHDATA_PASSWORD`` for NASA downloads, ``SEAICE_STAC_TOKEN`` for a STAC API that wants a
bearer token, and the usual AWS variables for ``s3://`` assets.  They are never logged and never
written into the inventory.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import logging
import os
import posixpath
import shutil
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, Protocol

import aiohttp
import fsspec

from seaice_tasks.config import DiscoverConfig
from seaice_tasks.constants import S2_BANDS
from seaice_tasks.errors import GranuleNameError, InputError, SeaIceError
from seaice_tasks.granule import parse_granule, parse_s2_scene
from seaice_tasks.storage import InputStore

__all__ = [
    "RemoteFile", "RemoteInput", "Provider", "CmrProvider", "StacProvider", "providers_for",
    "fetch_inputs", "FetchResult", "credentials_from_env", "search_all",
    "DiscoveryError", "DownloadError", "Credentials",
]

log = logging.getLogger(__name__)

#: Environment variables holding credentials (never logged).
EARTHDATA_TOKEN_ENV: Final[str] = "EARTHDATA_TOKEN"
EARTHDATA_USERNAME_ENV: Final[str] = "EARTHDATA_USERNAME"
EARTHDATA_PASSWORD_ENV: Final[str] = "EARTHDATA_PASSWORD"
STAC_TOKEN_ENV: Final[str] = "SEAICE_STAC_TOKEN"
#: Suffix of a download in progress (never an input: the catalog scan only takes .h5/.tif/.jp2 names).
PARTIAL_SUFFIX: Final[str] = ".partial"
#: Chunk size of a streamed download (bytes).
CHUNK_BYTES: Final[int] = 1 << 20
#: Band names of Earth Search v1 assets ("blue", ...) beside the band codes other APIs use.
S2_COMMON_NAMES: Final[dict[str, str]] = {"B02": "blue", "B03": "green", "B04": "red", "B08": "nir"}
#: Multihash codes of the file extension's ``file:checksum`` (https://multiformats.io/multihash/).
_MULTIHASH: Final[dict[int, str]] = {0x12: "sha256", 0x13: "sha512", 0xD5: "md5", 0x11: "sha1"}
#: CMR ``Checksum.Algorithm`` values and their hashlib names.
_CMR_ALGORITHMS: Final[dict[str, str]] = {
    "MD5": "md5", "SHA-1": "sha1", "SHA-256": "sha256", "SHA-512": "sha512", "SHA256": "sha256", "SHA512": "sha512",
}


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    """One file to download.

    Attributes
    ----------
    href : str
        URL (``https://``, ``http://``, ``s3://``) of the file.
    name : str
        File name in the catalog store.
    size_bytes : int or None
        Size the provider states, checked after the download.
    checksum : str or None
        Hex digest the provider states, checked after the download.
    algorithm : str or None
        hashlib name of ``checksum`` (``md5``, ``sha256``, ...).
    """

    href: str
    name: str
    size_bytes: int | None = None
    checksum: str | None = None
    algorithm: str | None = None


@dataclasses.dataclass(frozen=True)
class RemoteInput:
    """One granule or scene a provider found.

    Attributes
    ----------
    kind : str
        ``ATL03``, ``ATL07``, ``ATL10`` or ``S2``.
    name : str
        Granule file name or scene folder name (parseable by :mod:`seaice_tasks.granule`).
    start_utc : datetime.datetime
        Acquisition start.
    files : tuple of RemoteFile
        One file for a granule; the band rasters of a scene (written under the folder ``name``).
    provider : str
        Provider name (``cmr``, ``stac``).
    """

    kind: str
    name: str
    start_utc: dt.datetime
    files: tuple[RemoteFile, ...]
    provider: str

    @property
    def relpath(self) -> str:
        """Where the input lands in the catalog store (a file for a granule, a folder for a scene)."""
        return posixpath.join(self.kind, self.name)  # one catalog sub-folder per kind


class Provider(Protocol):
    """A source of raw inputs: finds one UTC day's granules or scenes."""

    name: str

    def search(self, day: dt.date) -> list[RemoteInput]:
        """Inputs acquired on ``day`` (UTC)."""
        ...


@dataclasses.dataclass(frozen=True)
class Credentials:
    """Credentials read from the environment; ``repr`` hides them."""

    earthdata_token: str = dataclasses.field(default="", repr=False)
    earthdata_username: str = dataclasses.field(default="", repr=False)
    earthdata_password: str = dataclasses.field(default="", repr=False)
    stac_token: str = dataclasses.field(default="", repr=False)

    def earthdata_headers(self) -> dict[str, str]:
        """HTTP headers for NASA downloads (bearer token, else basic auth, else none)."""
        if self.earthdata_token:
            return {"Authorization": f"Bearer {self.earthdata_token}"}
        if self.earthdata_username and self.earthdata_password:
            pair = f"{self.earthdata_username}:{self.earthdata_password}".encode()
            return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
        return {}

    def stac_headers(self) -> dict[str, str]:
        """HTTP headers for the STAC API and its https assets."""
        return {"Authorization": f"Bearer {self.stac_token}"} if self.stac_token else {}


def credentials_from_env(env: Mapping[str, str] | None = None) -> Credentials:
    """Read :class:`Credentials` from ``env`` (default ``os.environ``)."""
    env = os.environ if env is None else env
    return Credentials(
        earthdata_token=env.get(EARTHDATA_TOKEN_ENV, "").strip(),
        earthdata_username=env.get(EARTHDATA_USERNAME_ENV, "").strip(),
        earthdata_password=env.get(EARTHDATA_PASSWORD_ENV, ""),
        stac_token=env.get(STAC_TOKEN_ENV, "").strip(),
    )


def _day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time(0, 0), tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=1) - dt.timedelta(seconds=1)


def _iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


class CmrProvider:
    """ICESat-2 granules from NASA CMR through :class:`earthaccess.DataGranules`.

    Parameters
    ----------
    config : DiscoverConfig
        ``cmr_url``, ``products``, ``atl03_version`` ..., ``bbox`` / ``polygon``, ``daylight_only``,
        ``max_items``.
    """

    name = "cmr"

    def __init__(self, config: DiscoverConfig) -> None:
        self.config = config

    def version(self, product: str) -> str:
        """The product version asked for (``006``)."""
        return {"ATL03": self.config.atl03_version, "ATL07": self.config.atl07_version,
                "ATL10": self.config.atl10_version}.get(product, "")

    def search(self, day: dt.date) -> list[RemoteInput]:
        """Granules of every product in ``config.products`` that start on ``day``."""
        import earthaccess

        found: list[RemoteInput] = []
        start, end = _day_bounds(day)
        for product in self.config.products:
            query = earthaccess.DataGranules().mode(self.config.cmr_url)
            query.short_name(product)
            version = self.version(product)
            if version:
                query.version(version)
            query.temporal(_iso(start), _iso(end))
            if self.config.polygon:
                coords = self.config.polygon
                query.polygon(list(zip(coords[0::2], coords[1::2], strict=True)))
            elif self.config.bbox:
                w, s, e, n = self.config.bbox
                query.bounding_box(w, s, e, n)
            if self.config.daylight_only:
                query.day_night_flag("day")
            with warnings.catch_warnings():  # earthaccess 0.17 warns about its own DataGranule.size() call
                warnings.simplefilter("ignore", FutureWarning)
                granules = query.get(self.config.max_items)
            log.info("cmr: %d %s granule(s) v%s on %s", len(granules), product, version or "any", day)
            for granule in granules:
                item = _cmr_input(granule, product, day)
                if item is not None:
                    found.append(item)
        return sorted(found, key=lambda r: (r.start_utc, r.kind, r.name))


def _cmr_input(granule: Mapping[str, Any], product: str, day: dt.date) -> RemoteInput | None:
    """A RemoteInput from one UMM-G record, or None (logged) if it is not a granule of ``day``."""
    umm = granule.get("umm", {})
    archive = umm.get("DataGranule", {}).get("ArchiveAndDistributionInformation", []) or []
    links = [u for u in umm.get("RelatedUrls", []) or [] if u.get("Type") == "GET DATA"]
    for link in links:
        name = posixpath.basename(str(link.get("URL", "")).split("?", 1)[0])
        try:
            gid = parse_granule(name)
        except GranuleNameError:
            continue
        if gid.product != product or gid.start.date() != day:
            log.info("cmr: %s is not a %s granule starting on %s; ignored", name, product, day)
            return None
        meta = next((a for a in archive if a.get("Name") == name), archive[0] if len(archive) == 1 else {})
        checksum = meta.get("Checksum") or {}
        algorithm = _CMR_ALGORITHMS.get(str(checksum.get("Algorithm", "")).upper())
        size = meta.get("SizeInBytes")
        return RemoteInput(
            kind=product, name=name, start_utc=gid.start, provider="cmr",
            files=(RemoteFile(href=str(link["URL"]), name=name,
                              size_bytes=int(size) if size is not None else None,
                              checksum=str(checksum["Value"]).lower() if algorithm and checksum.get("Value") else None,
                              algorithm=algorithm),),
        )
    log.warning("cmr: granule %s has no data link with an ICESat-2 file name; ignored", umm.get("GranuleUR", "?"))
    return None


class StacProvider:
    """Sentinel-2 scenes from a STAC API through :class:`pystac_client.Client`.

    Parameters
    ----------
    config : DiscoverConfig
        ``stac_url``, ``stac_collection``, ``bbox``, ``max_cloud_cover``, ``max_items``.
    credentials : Credentials, optional
        For a STAC API that wants a bearer token.
    """

    name = "stac"

    def __init__(self, config: DiscoverConfig, credentials: Credentials | None = None) -> None:
        self.config = config
        self.credentials = credentials or Credentials()

    def search(self, day: dt.date) -> list[RemoteInput]:
        """Scenes sensed on ``day`` with at most ``max_cloud_cover`` percent cloud."""
        import pystac_client

        client = pystac_client.Client.open(self.config.stac_url, headers=self.credentials.stac_headers() or None)
        start, end = _day_bounds(day)
        kwargs: dict[str, Any] = {
            "collections": [self.config.stac_collection],
            "datetime": f"{_iso(start)}/{_iso(end)}",
            "max_items": self.config.max_items,
        }
        if self.config.bbox:
            kwargs["bbox"] = list(self.config.bbox)
        if self.config.max_cloud_cover < 100.0:
            kwargs["query"] = {"eo:cloud_cover": {"lte": self.config.max_cloud_cover}}
        items = list(client.search(**kwargs).items())
        log.info("stac: %d %s item(s) on %s", len(items), self.config.stac_collection, day)
        wanted = (_stac_input(i.to_dict(), day, self.config.max_cloud_cover) for i in items)
        found = [r for r in wanted if r is not None]
        return sorted(found, key=lambda r: (r.start_utc, r.kind, r.name))


def _stac_scene_name(item: Mapping[str, Any]) -> str | None:
    """A folder name :func:`parse_s2_scene` accepts: the SAFE name, the item id or ``<time>_T<tile>``."""
    props = item.get("properties", {})
    for candidate in (str(props.get("s2:product_uri", "")).removesuffix(".SAFE"), str(item.get("id", ""))):
        if candidate:
            try:
                parse_s2_scene(candidate)
                return candidate
            except GranuleNameError:
                pass
    tile = props.get("s2:mgrs_tile") or (
        f"{int(props['mgrs:utm_zone']):02d}{props['mgrs:latitude_band']}{props['mgrs:grid_square']}"
        if {"mgrs:utm_zone", "mgrs:latitude_band", "mgrs:grid_square"} <= set(props) else None)
    when = props.get("datetime")
    if not tile or not when:
        return None
    sensed = dt.datetime.fromisoformat(str(when).replace("Z", "+00:00"))
    return f"{sensed:%Y%m%dT%H%M%S}_T{tile}"


def _band_asset(assets: Mapping[str, Any], band: str) -> Mapping[str, Any] | None:
    for key in (band, band.lower(), S2_COMMON_NAMES[band], f"{band}_10m"):
        if key in assets:
            return dict(assets[key])
    for asset in assets.values():
        names = {str(b.get("name", "")) for b in asset.get("eo:bands", []) or []}
        if band in names:
            return dict(asset)
    return None


def _stac_input(item: Mapping[str, Any], day: dt.date, max_cloud: float) -> RemoteInput | None:
    item_id = str(item.get("id", "?"))
    name = _stac_scene_name(item)
    if name is None:
        log.warning("stac: item %s has no Sentinel-2 scene name, tile or datetime; ignored", item_id)
        return None
    try:
        scene = parse_s2_scene(name)
    except GranuleNameError as exc:
        log.warning("stac: item %s: %s; ignored", item_id, exc)
        return None
    cloud = item.get("properties", {}).get("eo:cloud_cover")
    if scene.sensing.date() != day or (cloud is not None and float(cloud) > max_cloud):
        log.info("stac: item %s (sensed %s, cloud %s %%) is not wanted on %s; ignored",
                 item_id, scene.sensing, cloud, day)
        return None
    files: list[RemoteFile] = []
    for band in S2_BANDS:
        asset = _band_asset(item.get("assets", {}), band)
        if asset is None:
            log.warning("stac: item %s has no asset for band %s; ignored", item_id, band)
            return None
        href = str(asset["href"])
        suffix = posixpath.splitext(href.split("?", 1)[0])[1].lower() or ".tif"
        algorithm, digest = _multihash(asset.get("file:checksum"))
        size = asset.get("file:size")
        files.append(RemoteFile(href=href, name=f"{band}{suffix}", size_bytes=int(size) if size is not None else None,
                                checksum=digest, algorithm=algorithm))
    return RemoteInput(kind="S2", name=name, start_utc=scene.sensing, files=tuple(files), provider="stac")


def _multihash(value: Any) -> tuple[str | None, str | None]:
    """(hashlib name, hex digest) of a ``file:checksum`` multihash, or (None, None)."""
    if not value:
        return None, None
    try:
        raw = bytes.fromhex(str(value))
    except ValueError:
        raw = b""
    if len(raw) < 2 or raw[0] not in _MULTIHASH or raw[1] != len(raw) - 2:
        log.warning("stac: file:checksum %s is not a multihash this reader knows; not checked", value)
        return None, None
    return _MULTIHASH[raw[0]], raw[2:].hex()


def providers_for(config: DiscoverConfig, credentials: Credentials | None = None) -> list[Provider]:
    """The network providers ``config`` asks for (none for a plain catalog)."""
    found: list[Provider] = []
    if config.is2_source == "cmr":
        found.append(CmrProvider(config))
    if config.s2_source == "stac":
        found.append(StacProvider(config, credentials))
    return found


@dataclasses.dataclass(frozen=True)
class FetchResult:
    """What :func:`fetch_inputs` did: inputs placed, already present, and failed (uri, reason)."""

    fetched: tuple[str, ...]
    present: tuple[str, ...]
    failed: tuple[tuple[str, str], ...]


class DownloadError(InputError):
    """A download that failed for good (after retries) or did not match its size or checksum."""


def _http_options(href: str, credentials: Credentials, provider: str) -> dict[str, Any]:
    if not href.startswith(("http://", "https://")):
        return {}
    headers = credentials.earthdata_headers() if provider == "cmr" else credentials.stac_headers()
    return {"client_kwargs": {"headers": headers}} if headers else {}


def _download_one(
    remote: RemoteFile, local: str, *, credentials: Credentials, provider: str,
    retries: int, backoff_s: float, sleep: Callable[[float], None],
) -> None:
    """Download ``remote`` to the local path ``local``, checking size and checksum; retry on failure."""
    protocol = remote.href.split("://", 1)[0] if "://" in remote.href else "file"
    last = ""
    for attempt in range(1, retries + 2):
        try:
            fs = fsspec.filesystem(protocol, **_http_options(remote.href, credentials, provider))
            hasher = hashlib.new(remote.algorithm) if remote.algorithm else None
            size = 0
            streamed = {"block_size": 0} if protocol in ("http", "https") else {}  # no size needed up front
            with fs.open(remote.href, "rb", **streamed) as src, open(local, "wb") as dst:
                while chunk := src.read(CHUNK_BYTES):
                    dst.write(chunk)
                    size += len(chunk)
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
            last = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if attempt <= retries:
                log.warning("download %s failed (attempt %d of %d): %s; retrying", remote.href, attempt,
                            retries + 1, last)
                sleep(backoff_s * 2 ** (attempt - 1))
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


def fetch_inputs(
    inputs: Iterable[RemoteInput],
    store: InputStore,
    *,
    credentials: Credentials | None = None,
    retries: int = 3,
    backoff_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> FetchResult:
    """Download ``inputs`` into the catalog store; one failed input never stops the others.

    Each file goes to a local temporary file first, is checked against the provider's size and
    checksum, and only then is renamed into the store (one atomic PUT on S3).  A scene's bands
    are placed only once all of them are verified.

    Parameters
    ----------
    inputs : iterable of RemoteInput
    store : InputStore
        The catalog store (``$SEAICE_CATALOG``).
    credentials : Credentials, optional
        Default: from the environment.
    retries : int
        Further attempts per file after the first (exponential backoff from ``backoff_s`` seconds).
    backoff_s : float
        First wait between attempts (s).
    sleep : callable
        Wait function (tests pass a recorder).

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
    for item in inputs:
        target = posixpath.join(base, item.relpath)
        paths = [target] if item.kind != "S2" else [posixpath.join(target, f.name) for f in item.files]
        uri = target if protocol == "file" else f"{protocol}://{target}"
        if all(_present(fs, p, f) for p, f in zip(paths, item.files, strict=True)):
            present.append(uri)
            continue
        with tempfile.TemporaryDirectory(prefix="seaice-fetch-") as tmp:
            try:
                locals_ = []
                for i, remote in enumerate(item.files):
                    local = os.path.join(tmp, f"{i}{PARTIAL_SUFFIX}")
                    _download_one(remote, local, credentials=creds, provider=item.provider, retries=retries,
                                  backoff_s=backoff_s, sleep=sleep)
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
            except (DownloadError, OSError) as exc:
                reason = str(exc).splitlines()[0]
                log.error("fetch: %s not fetched: %s", item.name, reason)
                failed.append((uri, reason))
                continue
        log.info("fetch: %s -> %s", item.name, uri)
        fetched.append(uri)
    return FetchResult(tuple(fetched), tuple(present), tuple(failed))


class DiscoveryError(SeaIceError):
    """A provider's search failed: the day's inventory would be incomplete, so nothing is committed."""


def search_all(providers: Sequence[Provider], day: dt.date) -> list[RemoteInput]:
    """Every provider's inputs of ``day``.

    Raises
    ------
    DiscoveryError
        When a search fails (service down, bad answer): the task fails and Airflow retries it,
        rather than committing an inventory that looks like a day without data.
    """
    found: list[RemoteInput] = []
    for provider in providers:
        try:
            found.extend(provider.search(day))
        except Exception as exc:  # requests, aiohttp and pystac_client each raise their own
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DiscoveryError(f"{provider.name} search for {day} failed: {reason}") from exc
    return found
