"""Frozen, typed stage configurations with a JSON round-trip.

Every stage takes one frozen dataclass.  ``to_json``/``from_json`` turn it into the plain JSON
that travels through Airflow ``params``, ``spark-submit --config`` and partition manifests, so
a partition records exactly the configuration that produced it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import types
import typing
from typing import Any, ClassVar, Final, Self, get_type_hints

from seaice_tasks.errors import ConfigError

_DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_day(text: str, argument: str = "--date") -> dt.date:
    """A UTC day ``YYYY-MM-DD``, strictly (no time, no trailing text).

    Raises
    ------
    ConfigError
        Naming ``argument`` and what is wrong.

    Examples
    --------
    >>> parse_day("2019-11-04")
    datetime.date(2019, 11, 4)
    >>> parse_day("2019-13-45")
    Traceback (most recent call last):
    ...
    seaice_tasks.errors.ConfigError: --date: '2019-13-45' is not a day YYYY-MM-DD (month must be in 1..12)
    """
    if not _DAY_RE.match(text):
        raise ConfigError(f"{argument}: {text!r} is not a day YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(f"{argument}: {text!r} is not a day YYYY-MM-DD ({exc})") from None

__all__ = ["JsonConfig", "ReaderConfig", "StorageConfig", "DiscoverConfig", "config_hash", "parse_day", "json_default"]


@dataclasses.dataclass(frozen=True)
class JsonConfig:
    """Base of all configs: JSON round-trip with type checks.

    Tuples are written as JSON lists and restored as tuples; unknown keys are an error (a typo in
    an Airflow param must not be silently ignored).
    """

    kind: ClassVar[str] = "config"

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary of the fields (tuples become lists)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def to_json(self) -> str:
        """Canonical JSON (sorted keys), stable across runs."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Build from a dictionary, checking names and coercing lists back to tuples.

        Raises
        ------
        ConfigError
            On unknown keys or values of the wrong type.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"{cls.__name__}: unknown field(s) {unknown}; known: {sorted(names)}")
        hints = get_type_hints(cls)
        kwargs = {k: _coerce(cls.__name__, k, hints[k], v) for k, v in data.items()}
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{cls.__name__}: {exc}") from exc

    @classmethod
    def from_json(cls, text: str) -> Self:
        """Inverse of :meth:`to_json`."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{cls.__name__}: invalid JSON ({exc})") from exc
        return cls.from_dict(data)


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def _coerce(owner: str, name: str, hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(owner, name, arg, value)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{owner}.{name}: {value!r} matches none of {hint}")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{owner}.{name}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(owner, name, args[0], v) for v in value)
        if len(args) != len(value):
            raise ConfigError(f"{owner}.{name}: expected {len(args)} items, got {len(value)}")
        return tuple(_coerce(owner, name, a, v) for a, v in zip(args, value, strict=True))
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{owner}.{name}: {value!r} not one of {list(args)}")
        return value
    if isinstance(hint, type) and issubclass(hint, JsonConfig):
        return hint.from_dict(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{owner}.{name}: expected a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{owner}.{name}: expected an integer, got {value!r}")
        return value
    if hint in (str, bool):
        if not isinstance(value, hint):
            raise ConfigError(f"{owner}.{name}: expected {hint.__name__}, got {value!r}")
        return value
    return value


def json_default(value: Any) -> Any:
    """``json.dumps(default=...)`` for the values stages hand over: numpy scalars and arrays, dates.

    Examples
    --------
    >>> import numpy as np
    >>> json.dumps({"n": np.int64(3), "ok": np.bool_(True), "day": dt.date(2019, 11, 4)}, default=json_default)
    '{"n": 3, "ok": true, "day": "2019-11-04"}'
    """
    import numpy as np

    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dt.date):  # datetime too
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def config_hash(config: JsonConfig) -> str:
    """Short sha256 of the canonical JSON: names a configuration in manifests and logs."""
    import hashlib

    return hashlib.sha256(config.to_json().encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class ReaderConfig(JsonConfig):
    """Options of the ICESat-2 readers.

    Attributes
    ----------
    default_sc_orient : int
        Spacecraft orientation assumed when ``orbit_info/sc_orient`` is absent (subset files);
        1 = forward, the orientation of the 2019 Ross Sea granules.  A warning is logged.
    atlas_sdp_gps_epoch_s : float
        GPS seconds of the ATLAS SDP epoch, used when ``ancillary_data`` is absent.
    """

    kind: ClassVar[str] = "reader"
    default_sc_orient: int = 1
    atlas_sdp_gps_epoch_s: float = 1198800018.0


@dataclasses.dataclass(frozen=True)
class StorageConfig(JsonConfig):
    """Where the lake lives.  ``root`` is a local path or URL; empty means ``$SEAICE_LAKE``."""

    kind: ClassVar[str] = "storage"
    root: str = ""


#: Where ICESat-2 granules and Sentinel-2 scenes can come from.
IS2_SOURCES: Final[tuple[str, ...]] = ("catalog", "cmr")
S2_SOURCES: Final[tuple[str, ...]] = ("catalog", "stac")
BBOX_VALUES: Final[int] = 4
#: Hosts of NASA's Earthdata Login and data distribution (with their sub-domains:
#: urs.earthdata.nasa.gov, data.nsidc.earthdatacloud.nasa.gov, ...).
EARTHDATA_HOSTS: Final[tuple[str, ...]] = ("earthdata.nasa.gov", "earthdatacloud.nasa.gov")
#: Largest download (bytes): ATL03 granules reach a few GB.
MAX_DOWNLOAD_BYTES: Final[int] = 20 * 2**30
_LABEL: Final[str] = r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
_HOST_RE: Final[re.Pattern[str]] = re.compile(rf"{_LABEL}(\.{_LABEL})*|\[?[0-9A-Fa-f:.]+\]?")
POLYGON_MIN_POINTS: Final[int] = 4


@dataclasses.dataclass(frozen=True)
class DiscoverConfig(JsonConfig):
    """Discovery of one day's inputs (see :mod:`seaice_tasks.discovery`).

    Attributes
    ----------
    catalog : str
        Folder (or URL) holding the raw granules and scenes; empty means ``$SEAICE_CATALOG``.
        Network providers download into it.
    products : tuple of str
        ICESat-2 products to list.
    is2_source : str
        ``catalog`` (inputs already in the catalog) or ``cmr`` (NASA CMR through earthaccess).
    s2_source : str
        ``catalog`` or ``stac`` (a STAC API through pystac-client).
    cmr_url : str
        CMR search root (``.../search/``).
    atl03_version, atl07_version, atl10_version : str
        Product versions to ask CMR for (empty: any).
    bbox : tuple of float
        West, south, east, north (degrees); empty: the whole globe.
    polygon : tuple of float
        Flat lon, lat pairs of a closed counter-clockwise polygon (degrees); used by CMR instead
        of ``bbox`` when given.
    daylight_only : bool
        Ask CMR for daytime granules only (Sentinel-2 needs the sun).
    stac_url : str
        STAC API root.
    stac_collection : str
        ``sentinel-2-l1c`` or ``sentinel-2-l2a`` (names differ per API).
    max_cloud_cover : float
        Largest ``eo:cloud_cover`` of a scene (percent); 100 means no filter.
    max_items : int
        Most granules per product / scenes per day a search returns.
    download_retries : int
        Further attempts per file after a failed download.
    retry_backoff_s : float
        Wait before the first retry (s), doubled each time.
    earthdata_hosts : tuple of str
        Hosts (with their sub-domains) that receive the Earthdata credentials; a data link to
        any other host is downloaded without them (docs/operations.md).
    stac_asset_hosts : tuple of str
        Hosts besides the STAC API's own that receive the STAC token with asset downloads.
    download_timeout_s : float
        Longest wait for a connection or for the next bytes of a download (s).
    download_deadline_s : float
        Longest time one download attempt may take in all (s).
    max_download_bytes : int
        Largest file discovery downloads (bytes): a larger stated size is refused, an unstated
        one is cut off there.
    """

    kind: ClassVar[str] = "discover"
    catalog: str = ""
    products: tuple[str, ...] = ("ATL03", "ATL07", "ATL10")
    is2_source: str = "catalog"
    s2_source: str = "catalog"
    cmr_url: str = "https://cmr.earthdata.nasa.gov/search/"
    atl03_version: str = "006"
    atl07_version: str = "006"
    atl10_version: str = "006"
    bbox: tuple[float, ...] = ()
    polygon: tuple[float, ...] = ()
    daylight_only: bool = False
    stac_url: str = "https://earth-search.aws.element84.com/v1"
    stac_collection: str = "sentinel-2-l1c"
    max_cloud_cover: float = 100.0
    max_items: int = 2000
    download_retries: int = 3
    retry_backoff_s: float = 2.0
    earthdata_hosts: tuple[str, ...] = EARTHDATA_HOSTS
    stac_asset_hosts: tuple[str, ...] = ()
    download_timeout_s: float = 60.0
    download_deadline_s: float = 3600.0
    max_download_bytes: int = MAX_DOWNLOAD_BYTES

    def __post_init__(self) -> None:
        if self.is2_source not in IS2_SOURCES:
            raise ValueError(f"is2_source {self.is2_source!r} is not one of {IS2_SOURCES}")
        if self.s2_source not in S2_SOURCES:
            raise ValueError(f"s2_source {self.s2_source!r} is not one of {S2_SOURCES}")
        if self.bbox and len(self.bbox) != BBOX_VALUES:
            raise ValueError(f"bbox needs {BBOX_VALUES} values (west, south, east, north in degrees), got {self.bbox}")
        if self.polygon and (len(self.polygon) % 2 or len(self.polygon) < 2 * POLYGON_MIN_POINTS):
            raise ValueError("polygon needs lon, lat pairs of at least "
                             f"{POLYGON_MIN_POINTS} points (closed, counter-clockwise)")
        if not 0.0 <= self.max_cloud_cover <= 100.0:
            raise ValueError(f"max_cloud_cover {self.max_cloud_cover} is not a percentage")
        if self.max_items < 1 or self.download_retries < 0 or self.retry_backoff_s < 0:
            raise ValueError("max_items must be >= 1, download_retries and retry_backoff_s >= 0")
        if self.download_timeout_s <= 0 or self.download_deadline_s <= 0 or self.max_download_bytes < 1:
            raise ValueError("download_timeout_s, download_deadline_s and max_download_bytes must be > 0")
        for host in (*self.earthdata_hosts, *self.stac_asset_hosts):
            if not _HOST_RE.fullmatch(host):
                raise ValueError(f"{host!r} is not a host name (no scheme, port, path or wildcard)")
        for name, url in (("cmr_url", self.cmr_url), ("stac_url", self.stac_url)):
            if not url.startswith(("https://", "http://")):
                raise ValueError(f"{name} {url!r} is not an http(s) URL")
