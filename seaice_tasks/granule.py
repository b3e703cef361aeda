"""Parse ICESat-2 granule names and Sentinel-2 scene names.

ICESat-2: ``ATL03_YYYYMMDDhhmmss_RRRRCCSS_VVV_rr.h5`` (RRRR reference ground track, CC cycle,
SS region, VVV release, rr revision); NSIDC-subsetter outputs carry a ``processed_`` prefix and
ATL07/ATL10 a hemisphere suffix (``ATL07-01`` Arctic, ``ATL07-02`` Antarctic).

Sentinel-2: SAFE names ``S2A_MSIL1C_20191104T194521_N0208_R085_T02CNA_20191104T205923`` and the
GEE ids ``20191104T194521_20191104T194524_T02CNA``.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass

from seaice_tasks.errors import GranuleNameError

__all__ = ["GranuleId", "S2SceneId", "parse_granule", "parse_s2_scene", "is_granule_file_name", "is_s2_scene_name"]

_GRANULE_RE = re.compile(
    r"(?:processed_)?(?P<product>ATL\d{2})(?:-(?P<hemisphere>0[12]))?_"
    r"(?P<time>\d{14})_(?P<rgt>\d{4})(?P<cycle>\d{2})(?P<region>\d{2})_"
    r"(?P<release>\d{3})_(?P<revision>\d{2})"
)
_S2_SAFE_RE = re.compile(
    r"(?P<mission>S2[ABCD])_MSI(?P<level>L1C|L2A)_(?P<time>\d{8}T\d{6})_N(?P<baseline>\d{4})_"
    r"R(?P<orbit>\d{3})_T(?P<tile>\d{2}[C-X][A-Z]{2})_(?P<ptime>\d{8}T\d{6})"
)
_S2_GEE_RE = re.compile(r"(?P<time>\d{8}T\d{6})_(?P<dtime>\d{8}T\d{6})_T(?P<tile>\d{2}[C-X][A-Z]{2})")
_S2_KEY_RE = re.compile(r"(?P<time>\d{8}T\d{6})_T(?P<tile>\d{2}[C-X][A-Z]{2})")
#: Suffixes of a granule file.
GRANULE_SUFFIXES = (".h5", ".hdf5", ".he5")


@dataclass(frozen=True)
class GranuleId:
    """Identity of one ICESat-2 granule, parsed from its file name.

    Attributes
    ----------
    product : str
        ``ATL03``, ``ATL07`` or ``ATL10`` (any ``ATLnn``).
    start : datetime.datetime
        Acquisition start (UTC) from the name.
    rgt, cycle, region : int
        Reference ground track, orbit cycle and granule region.
    release, revision : int
        Product release (e.g. 6) and revision.
    hemisphere : int or None
        1 Arctic, 2 Antarctic for ATL07/ATL10 names, else None.
    """

    product: str
    start: dt.datetime
    rgt: int
    cycle: int
    region: int
    release: int
    revision: int
    hemisphere: int | None = None

    @property
    def granule(self) -> str:
        """Granule key ``YYYYMMDDhhmmss_RRRRCCSS`` (storage partitions, logs).

        ATL07/ATL10 granules cover a whole hemisphere pass (region field ``01``) while ATL03
        granules are regional, so the keys of matching ATL03 and ATL07 granules differ; they are
        matched by RGT, cycle and time overlap, not by key.
        """
        return f"{self.start:%Y%m%d%H%M%S}_{self.rgt:04d}{self.cycle:02d}{self.region:02d}"

    @property
    def date(self) -> dt.date:
        """UTC day of the acquisition start."""
        return self.start.date()


@dataclass(frozen=True)
class S2SceneId:
    """Identity of one Sentinel-2 scene (MGRS tile at one sensing time)."""

    tile: str  #: MGRS tile without the leading ``T``, e.g. ``02CNA``
    sensing: dt.datetime  #: sensing start (UTC)
    mission: str | None = None
    level: str | None = None
    baseline: tuple[int, int] | None = None  #: processing baseline (major, minor), e.g. (2, 8)

    @property
    def scene(self) -> str:
        """Storage key ``YYYYMMDDThhmmss_Txxxxx``."""
        return f"{self.sensing:%Y%m%dT%H%M%S}_T{self.tile}"

    @property
    def utm_epsg(self) -> int:
        """EPSG code of the tile's UTM zone (south for latitude bands C-M)."""
        zone = int(self.tile[:2])
        south = self.tile[2] < "N"
        return (32700 if south else 32600) + zone


def parse_granule(name: str | os.PathLike[str]) -> GranuleId:
    """Parse an ICESat-2 granule file name (any directory part is ignored).

    Parameters
    ----------
    name : str or os.PathLike
        File name or path, e.g. ``ATL03_20191104195311_05940510_006_01.h5``.

    Returns
    -------
    GranuleId

    Raises
    ------
    GranuleNameError
        If the name does not follow the convention.

    Examples
    --------
    >>> g = parse_granule("ATL03_20191104195311_05940510_006_01.h5")
    >>> (g.product, g.rgt, g.cycle, g.region, g.release, g.granule)
    ('ATL03', 594, 5, 10, 6, '20191104195311_05940510')
    """
    base = os.path.basename(os.fspath(name))
    m = _GRANULE_RE.search(base)
    if m is None:
        raise GranuleNameError(
            f"{base}: not an ICESat-2 granule name (expected ATLnn_YYYYMMDDhhmmss_RRRRCCSS_VVV_rr)"
        )
    try:
        start = dt.datetime.strptime(m["time"], "%Y%m%d%H%M%S").replace(tzinfo=dt.UTC)
    except ValueError as exc:
        raise GranuleNameError(f"{base}: invalid acquisition time {m['time']!r}") from exc
    return GranuleId(
        product=m["product"],
        start=start,
        rgt=int(m["rgt"]),
        cycle=int(m["cycle"]),
        region=int(m["region"]),
        release=int(m["release"]),
        revision=int(m["revision"]),
        hemisphere=int(m["hemisphere"]) if m["hemisphere"] else None,
    )


def parse_s2_scene(name: str | os.PathLike[str]) -> S2SceneId:
    """Parse a Sentinel-2 SAFE product name, GEE id or our scene key.

    Examples
    --------
    >>> s = parse_s2_scene("COPERNICUS/S2_SR/20191104T194521_20191104T194524_T02CNA")
    >>> (s.tile, s.scene, s.utm_epsg)
    ('02CNA', '20191104T194521_T02CNA', 32702)
    """
    text = os.fspath(name)
    base = text.rstrip("/").split("/")[-1]
    m = _S2_SAFE_RE.search(base)
    if m is not None:
        baseline = m["baseline"]
        return S2SceneId(
            tile=m["tile"],
            sensing=_s2_time(base, m["time"]),
            mission=m["mission"],
            level=m["level"],
            baseline=(int(baseline[:2]), int(baseline[2:])),
        )
    m = _S2_GEE_RE.search(base)
    if m is not None:
        return S2SceneId(tile=m["tile"], sensing=_s2_time(base, m["time"]))
    m = _S2_KEY_RE.search(base)
    if m is not None:
        return S2SceneId(tile=m["tile"], sensing=_s2_time(base, m["time"]))
    raise GranuleNameError(f"{base}: not a Sentinel-2 scene name (SAFE name, GEE id or YYYYMMDDThhmmss_Txxxxx)")


def _s2_time(base: str, text: str) -> dt.datetime:
    try:
        return dt.datetime.strptime(text, "%Y%m%dT%H%M%S").replace(tzinfo=dt.UTC)
    except ValueError as exc:
        raise GranuleNameError(f"{base}: invalid sensing time {text!r}") from exc


def is_granule_file_name(name: str) -> bool:
    """``name`` is a bare granule file name and nothing else (no folder, prefix or trailing text).

    The strict form of :func:`parse_granule` for names that come from the network and become
    paths.

    Examples
    --------
    >>> is_granule_file_name("ATL03_20191104195311_05940510_006_01.h5")
    True
    >>> is_granule_file_name("../ATL03_20191104195311_05940510_006_01.h5")
    False
    """
    stem, dot, suffix = name.rpartition(".")
    if not dot or f".{suffix.lower()}" not in GRANULE_SUFFIXES or _GRANULE_RE.fullmatch(stem) is None:
        return False
    try:
        parse_granule(name)
    except GranuleNameError:
        return False
    return True


def is_s2_scene_name(name: str) -> bool:
    """``name`` is exactly a SAFE name (without ``.SAFE``), a GEE id or a scene key.

    Examples
    --------
    >>> is_s2_scene_name("20191104T194521_20191104T194524_T02CNA")
    True
    >>> is_s2_scene_name("x/../20191104T194521_20191104T194524_T02CNA")
    False
    """
    if not any(p.fullmatch(name) for p in (_S2_SAFE_RE, _S2_GEE_RE, _S2_KEY_RE)):
        return False
    try:
        parse_s2_scene(name)
    except GranuleNameError:
        return False
    return True
