"""The network providers: NASA CMR for ICESat-2 granules, a STAC API for Sentinel-2 scenes.

Every provider turns its search answer into :class:`RemoteInput` records (what to download and
under which name) or :class:`Refused` records (what it will not fetch, and why: a recorded skip
of the day's inventory).  The answer is hostile input: a name becomes a path only after
:func:`~seaice_tasks.discovery.policy.check_name`, a size or checksum that does not parse
refuses its record, and a malformed record never stops the others.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import posixpath
import urllib.parse
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Final, Protocol

from seaice_tasks.config import DiscoverConfig
from seaice_tasks.constants import S2_BANDS
from seaice_tasks.discovery.policy import (
    BAND_SUFFIXES,
    CredentialPolicy,
    Credentials,
    HrefRefused,
    check_name,
)
from seaice_tasks.errors import GranuleNameError, SeaIceError
from seaice_tasks.granule import is_granule_file_name, parse_granule, parse_s2_scene

__all__ = [
    "RemoteFile", "RemoteInput", "Refused", "Found", "Provider", "CmrProvider", "StacProvider", "providers_for",
    "search_all", "DiscoveryError", "S2_COMMON_NAMES",
]

log = logging.getLogger(__name__)

#: Band names of Earth Search v1 assets ("blue", ...) beside the band codes other APIs use.
S2_COMMON_NAMES: Final[dict[str, str]] = {"B02": "blue", "B03": "green", "B04": "red", "B08": "nir"}
#: Multihash codes of the file extension's ``file:checksum`` (https://multiformats.io/multihash/).
_MULTIHASH: Final[dict[int, str]] = {0x12: "sha256", 0x13: "sha512", 0xD5: "md5", 0x11: "sha1"}
#: CMR ``Checksum.Algorithm`` values and their hashlib names.
_CMR_ALGORITHMS: Final[dict[str, str]] = {
    "MD5": "md5", "SHA-1": "sha1", "SHA-256": "sha256", "SHA-512": "sha512", "SHA256": "sha256", "SHA512": "sha512",
}
#: Hex digest lengths of the algorithms above (characters).
_DIGEST_CHARS: Final[dict[str, int]] = {"md5": 32, "sha1": 40, "sha256": 64, "sha512": 128}
#: Characters of a network value shown in a log line or skip reason.
SHOWN_CHARS: Final[int] = 120


def shown(value: object) -> str:
    """A network value as it may appear in a log line or a skip reason: ``ascii`` and cut short."""
    text = ascii(value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "..."


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    """One file to download.

    Attributes
    ----------
    href : str
        URL (``https://``, ``http://``, or the catalog store's own ``s3://``) of the file.
    name : str
        File name in the catalog store (checked: one safe path component).
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
        Granule file name or scene folder name (checked by :func:`check_name`).
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


@dataclasses.dataclass(frozen=True)
class Refused:
    """A search result that will not be fetched: a recorded skip of the inventory.

    Attributes
    ----------
    uri : str
        What was refused: the href, or ``<provider>:<record id>``.
    reason : str
        Why, in one line.
    """

    uri: str
    reason: str


#: What a search returns per record.
Found = RemoteInput | Refused


class Provider(Protocol):
    """A source of raw inputs: finds one UTC day's granules or scenes."""

    name: str

    def search(self, day: dt.date) -> list[Found]:
        """Inputs acquired on ``day`` (UTC), and the records refused."""
        ...


def _day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time(0, 0), tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=1) - dt.timedelta(seconds=1)


def _iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _size(value: Any) -> int | None:
    """A stated size in bytes (None when not stated).

    Raises
    ------
    ValueError
        When it is not a non-negative integer.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"size {shown(value)} is not a number of bytes")
    try:
        size = int(str(value).strip()) if isinstance(value, str) else int(value)
    except (ValueError, OverflowError):
        raise ValueError(f"size {shown(value)} is not a number of bytes") from None
    if size < 0 or (isinstance(value, float) and value != size):
        raise ValueError(f"size {shown(value)} is not a number of bytes")
    return size


def _digest(algorithm: str | None, value: Any) -> str | None:
    """A stated hex digest, lower case (None when not stated or of an unknown algorithm).

    Raises
    ------
    ValueError
        When it is not a hex digest of the algorithm's length.
    """
    if algorithm is None or not value:
        return None
    text = str(value).strip().lower()
    if len(text) != _DIGEST_CHARS[algorithm] or any(c not in "0123456789abcdef" for c in text):
        raise ValueError(f"{algorithm} checksum {shown(value)} is not a hex digest")
    return text


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

    def search(self, day: dt.date) -> list[Found]:
        """Granules of every product in ``config.products`` that start on ``day``."""
        import earthaccess

        found: list[Found] = []
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
                try:
                    item = _cmr_input(granule, product, day, self.config.max_download_bytes)
                except (KeyError, TypeError, ValueError, AttributeError, HrefRefused) as exc:
                    ur = granule.get("umm", {}).get("GranuleUR", "?") if isinstance(granule, Mapping) else "?"
                    item = Refused(f"cmr:{shown(ur)}", f"malformed granule record: {exc}")
                    log.warning("cmr: %s: %s; skipped", item.uri, item.reason)
                if item is not None:
                    found.append(item)
        return _ordered(found)


def _ordered(found: list[Found]) -> list[Found]:
    inputs = sorted((r for r in found if isinstance(r, RemoteInput)), key=lambda r: (r.start_utc, r.kind, r.name))
    return [*inputs, *sorted((r for r in found if isinstance(r, Refused)), key=lambda r: (r.uri, r.reason))]


def _cmr_input(granule: Mapping[str, Any], product: str, day: dt.date, max_bytes: int) -> Found | None:
    """A RemoteInput from one UMM-G record, None (logged) if it is not a granule of ``day``."""
    umm = granule.get("umm", {})
    archive = umm.get("DataGranule", {}).get("ArchiveAndDistributionInformation", []) or []
    links = [u for u in umm.get("RelatedUrls", []) or [] if isinstance(u, Mapping) and u.get("Type") == "GET DATA"]
    for link in links:
        href = str(link.get("URL", ""))
        name = posixpath.basename(urllib.parse.urlsplit(href).path)
        if not is_granule_file_name(name):
            continue
        check_name(name, product)
        gid = parse_granule(name)
        if gid.product != product or gid.start.date() != day:
            log.info("cmr: %s is not a %s granule starting on %s; ignored", name, product, day)
            return None
        meta = next((a for a in archive if a.get("Name") == name), archive[0] if len(archive) == 1 else {})
        checksum = meta.get("Checksum") or {}
        algorithm = _CMR_ALGORITHMS.get(str(checksum.get("Algorithm", "")).upper())
        size = _size(meta.get("SizeInBytes"))
        if size is not None and size > max_bytes:
            return Refused(href, f"{name}: stated size {size} bytes is over max_download_bytes {max_bytes}")
        return RemoteInput(
            kind=product, name=name, start_utc=gid.start, provider="cmr",
            files=(RemoteFile(href=href, name=name, size_bytes=size,
                              checksum=_digest(algorithm, checksum.get("Value")),
                              algorithm=algorithm if checksum.get("Value") else None),),
        )
    log.warning("cmr: granule %s has no data link with an ICESat-2 file name; ignored",
                shown(umm.get("GranuleUR", "?")))
    return None


class StacProvider:
    """Sentinel-2 scenes from a STAC API through :class:`pystac_client.Client`.

    The STAC token goes with a request only when the request's host is allowed
    (:class:`~seaice_tasks.discovery.policy.CredentialPolicy`): a ``next`` link of a search answer
    that points elsewhere is followed without it.  It is added by the HTTP adapter at send time,
    so no client log line ever holds it.

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

    def _client(self) -> Any:
        import pystac_client
        import requests.adapters
        from pystac_client.stac_api_io import StacApiIO

        policy = CredentialPolicy.from_config(self.config)
        headers = self.credentials.stac_headers()

        class TokenAdapter(requests.adapters.HTTPAdapter):
            """Adds the token at send time, to allowed hosts only (redirects and next pages included)."""

            def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
                request.headers.pop("Authorization", None)
                if headers and policy.may_send("stac", str(request.url)):
                    request.headers.update(headers)
                return super().send(request, *args, **kwargs)

        stac_io = StacApiIO(timeout=self.config.download_timeout_s)
        for prefix in ("https://", "http://"):
            stac_io.session.mount(prefix, TokenAdapter())
        return pystac_client.Client.open(self.config.stac_url, stac_io=stac_io)

    def search(self, day: dt.date) -> list[Found]:
        """Scenes sensed on ``day`` with at most ``max_cloud_cover`` percent cloud."""
        client = self._client()
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
        items = list(client.search(**kwargs).items_as_dicts())
        log.info("stac: %d %s item(s) on %s", len(items), self.config.stac_collection, day)
        found: list[Found] = []
        for item in items:
            try:
                one = _stac_input(item, day, self.config.max_cloud_cover, self.config.max_download_bytes)
            except (KeyError, TypeError, ValueError, AttributeError, HrefRefused) as exc:
                item_id = item.get("id", "?") if isinstance(item, Mapping) else "?"
                one = Refused(f"stac:{shown(item_id)}", f"malformed item: {exc}")
                log.warning("stac: %s: %s; skipped", one.uri, one.reason)
            if one is not None:
                found.append(one)
        return _ordered(found)


def _stac_scene_name(item: Mapping[str, Any]) -> str | None:
    """A folder name :func:`check_name` accepts: the SAFE name, the item id or ``<time>_T<tile>``."""
    props = item.get("properties", {})
    for candidate in (str(props.get("s2:product_uri", "")).removesuffix(".SAFE"), str(item.get("id", ""))):
        if candidate:
            try:
                return check_name(candidate, "S2")
            except HrefRefused:
                pass
    tile = props.get("s2:mgrs_tile") or (
        f"{int(props['mgrs:utm_zone']):02d}{props['mgrs:latitude_band']}{props['mgrs:grid_square']}"
        if {"mgrs:utm_zone", "mgrs:latitude_band", "mgrs:grid_square"} <= set(props) else None)
    when = props.get("datetime")
    if not tile or not when:
        return None
    sensed = dt.datetime.fromisoformat(str(when).replace("Z", "+00:00"))
    try:
        return check_name(f"{sensed:%Y%m%dT%H%M%S}_T{tile}", "S2")
    except HrefRefused:
        return None


def _band_asset(assets: Mapping[str, Any], band: str) -> Mapping[str, Any] | None:
    for key in (band, band.lower(), S2_COMMON_NAMES[band], f"{band}_10m"):
        if key in assets:
            return dict(assets[key])
    for asset in assets.values():
        names = {str(b.get("name", "")) for b in asset.get("eo:bands", []) or []}
        if band in names:
            return dict(asset)
    return None


def _stac_input(item: Mapping[str, Any], day: dt.date, max_cloud: float, max_bytes: int) -> Found | None:
    item_id = shown(item.get("id", "?"))
    name = _stac_scene_name(item)
    if name is None:
        reason = "no safe Sentinel-2 scene name (SAFE name, id, or tile and datetime)"
        log.warning("stac: item %s has %s; skipped", item_id, reason)
        return Refused(f"stac:{item_id}", reason)
    try:
        scene = parse_s2_scene(name)
    except GranuleNameError as exc:
        log.warning("stac: item %s: %s; skipped", item_id, exc)
        return Refused(f"stac:{item_id}", str(exc))
    cloud = item.get("properties", {}).get("eo:cloud_cover")
    if scene.sensing.date() != day or (cloud is not None and float(cloud) > max_cloud):
        log.info("stac: item %s (sensed %s, cloud %s %%) is not wanted on %s; ignored",
                 item_id, scene.sensing, shown(cloud), day)
        return None
    files: list[RemoteFile] = []
    for band in S2_BANDS:
        asset = _band_asset(item.get("assets", {}), band)
        if asset is None:
            log.warning("stac: item %s has no asset for band %s; skipped", item_id, band)
            return Refused(f"stac:{item_id}", f"no asset for band {band}")
        href = str(asset["href"])
        suffix = posixpath.splitext(urllib.parse.urlsplit(href).path)[1].lower() or ".tif"
        if suffix not in BAND_SUFFIXES:
            return Refused(href, f"{name}: band {band} asset is not a raster ({', '.join(BAND_SUFFIXES)})")
        algorithm, digest = _multihash(asset.get("file:checksum"))
        size = _size(asset.get("file:size"))
        if size is not None and size > max_bytes:
            return Refused(href, f"{name}: stated size {size} bytes is over max_download_bytes {max_bytes}")
        files.append(RemoteFile(href=href, name=check_name(f"{band}{suffix}", "band"), size_bytes=size,
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
    if len(raw) < 2 or raw[0] not in _MULTIHASH or raw[1] != len(raw) - 2 \
            or 2 * raw[1] != _DIGEST_CHARS[_MULTIHASH[raw[0]]]:
        log.warning("stac: file:checksum %s is not a multihash this reader knows; not checked", shown(value))
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


class DiscoveryError(SeaIceError):
    """A provider's search failed: the day's inventory would be incomplete, so nothing is committed."""


def search_all(providers: Sequence[Provider], day: dt.date) -> list[Found]:
    """Every provider's inputs (and refused records) of ``day``.

    Raises
    ------
    DiscoveryError
        When a search fails (service down, bad answer): the task fails and Airflow retries it,
        rather than committing an inventory that looks like a day without data.
    """
    found: list[Found] = []
    for provider in providers:
        try:
            found.extend(provider.search(day))
        except Exception as exc:  # requests, aiohttp and pystac_client each raise their own
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DiscoveryError(f"{provider.name} search for {day} failed: {reason}") from exc
    return found
