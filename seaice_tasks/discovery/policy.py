"""What discovery trusts of a search answer: hrefs, names, paths and where credentials may go.

A CMR or STAC answer is data from the network.  Before anything is fetched or written:

* an **href** must be ``https://`` or ``http://`` (or the catalog store's own scheme, e.g. ``s3://``
  for a catalog on S3): never a local path, ``file:``, a chained fsspec URL (``a::b``), a URL
  with a user name or password in it, or an IP literal of a link-local (cloud metadata),
  multicast, unspecified or reserved address (:func:`check_href`);
* a **name** that becomes a path (granule file name, scene folder name, band file name) must be
  one safe path component that matches the product's own naming pattern (:func:`check_name`),
  and the path built from it must stay inside the catalog store (:func:`path_inside`);
* **credentials** are sent only to hosts on the provider's allow-list (Earthdata hosts for
  NASA, the STAC API's own host and configured asset hosts for STAC), and only over https
  unless the host is loopback (:class:`CredentialPolicy`).

Credentials themselves come from the environment (:func:`credentials_from_env`); their
``repr`` hides them.
"""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
import logging
import os
import posixpath
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Final

from seaice_tasks.config import DiscoverConfig
from seaice_tasks.errors import InputError
from seaice_tasks.granule import is_granule_file_name, is_s2_scene_name

__all__ = [
    "Credentials", "credentials_from_env", "CredentialPolicy", "HrefRefused", "check_href", "check_name",
    "path_inside", "is_loopback_host", "host_matches", "BAND_SUFFIXES", "EARTHDATA_TOKEN_ENV",
    "EARTHDATA_USERNAME_ENV", "EARTHDATA_PASSWORD_ENV", "STAC_TOKEN_ENV",
]

log = logging.getLogger(__name__)

#: Environment variables holding credentials (never logged).
EARTHDATA_TOKEN_ENV: Final[str] = "EARTHDATA_TOKEN"
EARTHDATA_USERNAME_ENV: Final[str] = "EARTHDATA_USERNAME"
EARTHDATA_PASSWORD_ENV: Final[str] = "EARTHDATA_PASSWORD"
STAC_TOKEN_ENV: Final[str] = "SEAICE_STAC_TOKEN"
#: Schemes of network hrefs (a catalog on S3 also allows its own ``s3``).
NETWORK_SCHEMES: Final[tuple[str, ...]] = ("https", "http")
#: Longest href accepted (characters).
MAX_HREF_CHARS: Final[int] = 4096
#: Longest name accepted as a path component (characters; most file systems allow 255 bytes).
MAX_NAME_CHARS: Final[int] = 255
#: Suffixes a band file may take in a scene folder (what the catalog scan reads as a raster).
BAND_SUFFIXES: Final[tuple[str, ...]] = (".tif", ".tiff", ".jp2")
#: Host names that are loopback besides the 127.0.0.0/8 and ::1 literals.
LOOPBACK_NAMES: Final[frozenset[str]] = frozenset({"localhost", "localhost.localdomain"})
_SAFE_COMPONENT: Final[re.Pattern[str]] = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_IPV6_HOST: Final[re.Pattern[str]] = re.compile(r"\[[0-9A-Fa-f:.]+\]")


class HrefRefused(InputError):
    """An href or name from a search answer that discovery will not fetch or write (a recorded skip)."""


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
        """HTTP headers for the STAC API and its allowed asset hosts."""
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


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback IP literal (``127.0.0.0/8``, ``::1``).

    Examples
    --------
    >>> [is_loopback_host(h) for h in ("127.0.0.2", "::1", "localhost", "127.example.org")]
    [True, True, True, False]
    """
    host = host.lower().strip("[]")
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_matches(host: str, patterns: Iterable[str]) -> bool:
    """``host`` is one of ``patterns`` or a sub-domain of one (``earthdata.nasa.gov`` matches
    ``urs.earthdata.nasa.gov``, never ``earthdata.nasa.gov.example.org``).

    Examples
    --------
    >>> host_matches("data.nsidc.earthdatacloud.nasa.gov", ["earthdatacloud.nasa.gov"])
    True
    >>> host_matches("earthdatacloud.nasa.gov.evil.org", ["earthdatacloud.nasa.gov"])
    False
    """
    host = host.lower().rstrip(".")
    return any(host == p or host.endswith("." + p) for p in (q.lower().strip(".") for q in patterns) if p)


def check_href(href: str, store_protocol: str = "file") -> urllib.parse.SplitResult:
    """The parts of ``href`` if discovery may fetch it.

    Parameters
    ----------
    href : str
        An asset href or data link from a search answer.
    store_protocol : str
        Protocol of the catalog store (``file``, ``s3``): a store on S3 may also fetch ``s3://``.

    Raises
    ------
    HrefRefused
        Naming the href and why: not a network URL, a chained or local URL, credentials in the
        URL, an address discovery never fetches from.
    """
    shown = href[:200]
    if not isinstance(href, str) or not href:
        raise HrefRefused(repr(shown), "refused href: empty")
    if len(href) > MAX_HREF_CHARS or any(ord(c) < 0x21 or ord(c) == 0x7F for c in href):
        raise HrefRefused(repr(shown), "refused href: too long or holds spaces or control characters")
    if "::" in _IPV6_HOST.sub("", href):
        raise HrefRefused(repr(shown), "refused href: a chained URL")
    parts = urllib.parse.urlsplit(href)
    allowed = NETWORK_SCHEMES + ((store_protocol,) if store_protocol not in ("file", "") else ())
    if parts.scheme.lower() not in allowed or "://" not in href:
        raise HrefRefused(repr(shown), f"refused href: only {', '.join(s + '://' for s in allowed)} URLs are fetched "
                          "(never a local path or file:)")
    if "@" in parts.netloc:
        raise HrefRefused(repr(shown), "refused href: a user name or password in the URL")
    host = (parts.hostname or "").lower()
    if not host:
        raise HrefRefused(repr(shown), "refused href: no host")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise HrefRefused(repr(shown), "refused href: a bad port") from None
    if parts.scheme.lower() in NETWORK_SCHEMES:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if address is not None and (address.is_link_local or address.is_multicast or address.is_unspecified
                                    or (address.is_reserved and not address.is_loopback)):
            raise HrefRefused(repr(shown), f"refused href: {host} is a link-local, multicast, unspecified or "
                              "reserved address")
    return parts


def check_name(name: str, kind: str) -> str:
    """``name`` if it may become a path component of the catalog for an input of ``kind``.

    A granule (``ATL03``, ``ATL07``, ``ATL10``) must be a bare NSIDC file name of that product;
    a scene (``S2``) a bare SAFE name, GEE id or ``YYYYMMDDThhmmss_Txxxxx`` key; a band file
    (``band``) a band code and a raster suffix.

    Raises
    ------
    HrefRefused
        Naming the name and why.
    """
    shown = repr(name[:MAX_NAME_CHARS])
    if not isinstance(name, str) or len(name) > MAX_NAME_CHARS or not _SAFE_COMPONENT.fullmatch(name) \
            or name in (".", "..") or ".." in name:
        raise HrefRefused(shown, "refused name: not one safe path component")
    if kind == "S2":
        ok = is_s2_scene_name(name)
    elif kind == "band":
        stem, suffix = posixpath.splitext(name)
        ok = re.fullmatch(r"B\d{2}|B8A", stem) is not None and suffix.lower() in BAND_SUFFIXES
    else:
        ok = is_granule_file_name(name) and name.removeprefix("processed_").startswith(kind)
    if not ok:
        raise HrefRefused(shown, f"refused name: not a {kind} name")
    return name


def path_inside(base: str, *parts: str) -> str:
    """``base`` joined with ``parts``, checked to stay inside ``base``.

    Each part must be one path component (no separator, not ``.`` or ``..``), and the joined
    path, normalised, must lie below ``base``.  (Symbolic links inside the store are the
    operator's own and are followed, as for any other write.)

    Raises
    ------
    HrefRefused
        When the path would leave ``base``.

    Examples
    --------
    >>> path_inside("/data/catalog", "S2", "20190125T161339_T12CVC")
    '/data/catalog/S2/20190125T161339_T12CVC'
    >>> path_inside("/data/catalog", "S2", "../../etc")
    Traceback (most recent call last):
    ...
    seaice_tasks.discovery.policy.HrefRefused: S2/../../etc: refused path: leaves the catalog store /data/catalog
    """
    root = posixpath.normpath(base)
    path = posixpath.normpath(posixpath.join(root, *parts))
    bad_part = any(not p or p in (".", "..") or "/" in p or "\\" in p or "\x00" in p for p in parts)
    if bad_part or not path.startswith(root.rstrip("/") + "/"):
        raise HrefRefused("/".join(parts) if parts else base, f"refused path: leaves the catalog store {base}")
    return path


@dataclasses.dataclass(frozen=True)
class CredentialPolicy:
    """Which hosts a provider's credentials may go to.

    Attributes
    ----------
    earthdata_hosts : tuple of str
        Hosts (and their sub-domains) that get the Earthdata credentials.
    stac_hosts : tuple of str
        Hosts that get the STAC token: the API's own host and the configured asset hosts.
    """

    earthdata_hosts: tuple[str, ...]
    stac_hosts: tuple[str, ...]

    @classmethod
    def from_config(cls, config: DiscoverConfig) -> CredentialPolicy:
        """The policy of ``config`` (``earthdata_hosts``; ``stac_url``'s host + ``stac_asset_hosts``)."""
        api_host = urllib.parse.urlsplit(config.stac_url).hostname or ""
        return cls(tuple(config.earthdata_hosts), tuple(h for h in (api_host, *config.stac_asset_hosts) if h))

    def hosts_for(self, provider: str) -> tuple[str, ...]:
        """The allow-list of ``provider`` (``cmr``, ``stac``; none for any other)."""
        return {"cmr": self.earthdata_hosts, "stac": self.stac_hosts}.get(provider, ())

    def may_send(self, provider: str, href: str) -> bool:
        """Credentials of ``provider`` may go with a request to ``href``: its host is on the
        provider's allow-list and it is https (or loopback)."""
        parts = urllib.parse.urlsplit(href)
        host = (parts.hostname or "").lower()
        secure = parts.scheme.lower() == "https" or (parts.scheme.lower() == "http" and is_loopback_host(host))
        return bool(host) and secure and host_matches(host, self.hosts_for(provider))

    def headers(self, provider: str, href: str, credentials: Credentials) -> dict[str, str]:
        """The credential headers for a request of ``provider`` to ``href`` (none when not allowed)."""
        wanted = credentials.earthdata_headers() if provider == "cmr" else \
            credentials.stac_headers() if provider == "stac" else {}
        if not wanted:
            return {}
        if not self.may_send(provider, href):
            host = urllib.parse.urlsplit(href).hostname or "?"
            log.info("%s: credentials not sent to %s (not an allowed https host of this provider)", provider, host)
            return {}
        return wanted
