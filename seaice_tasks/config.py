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
from typing import Any, ClassVar, Self, get_type_hints

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


@dataclasses.dataclass(frozen=True)
class DiscoverConfig(JsonConfig):
    """Discovery of one day's inputs in a local catalog folder.

    Attributes
    ----------
    catalog : str
        Folder (or URL) holding the raw granules and scenes; empty means ``$SEAICE_CATALOG``.
    products : tuple of str
        ICESat-2 products to list.
    """

    kind: ClassVar[str] = "discover"
    catalog: str = ""
    products: tuple[str, ...] = ("ATL03", "ATL07", "ATL10")
