"""NASA's ATL07/ATL10 of a track: finding the file of a granule's pass, and reading one beam of it.

A file is used only when it is the granule its name says.  Its own metadata is compared with
the name (:func:`name_disagreement`): the granule named in ``METADATA/DatasetIdentification``
(``fileName``, ``producerGranuleId``), ``orbit_info/rgt`` and ``orbit_info/cycle_number``, and
the time of the beam's segments (they start no earlier than a minute before the name's start
time and within the hour of the pass after it).  A file that disagrees (another granule's file
put under this granule's name) is skipped with a flag naming the file and what disagrees,
instead of being compared with a track it does not cover.  A missing or unreadable file, or a
beam absent from it, is a flag too, never an error: the other figures are still computed.
"""

from __future__ import annotations

import dataclasses
import posixpath
from collections.abc import Callable, Sequence
from typing import Any, Final

import pandas as pd

from seaice_tasks.errors import GranuleNameError, SeaIceError
from seaice_tasks.granule import parse_granule

__all__ = ["PASS_S", "ReferenceTrack", "companion_uri", "name_disagreement", "read_reference"]

#: ATL07/ATL10 granules start up to this long before the ATL03 granules of their pass (s): a pass
#: over a hemisphere lasts under 50 min; their segments lie within this long after their start.
PASS_S: Final[float] = 3600.0
#: How much earlier than the start time of its name a granule's first segment may be (s).
NAME_START_SLACK_S: Final[float] = 60.0
#: Group and attributes naming the granule a file holds (the name NASA gave it).
DATASET_ID_GROUP: Final[str] = "METADATA/DatasetIdentification"
GRANULE_NAME_ATTRS: Final[tuple[str, ...]] = ("fileName", "producerGranuleId", "ProducerGranuleId", "granule_id")
RGT_PATH: Final[str] = "orbit_info/rgt"
CYCLE_PATH: Final[str] = "orbit_info/cycle_number"
#: UTC time column of the readers (from ``delta_time``).
TIME_COLUMN: Final[str] = "time_utc"
ATL07_COLUMNS: Final[tuple[str, ...]] = ("seg_dist_x", "height_segment_height", "height_segment_type",
                                         "height_segment_ssh_flag", "height_segment_length_seg",
                                         "height_segment_quality")
ATL10_COLUMNS: Final[tuple[str, ...]] = ("seg_dist_x", "beam_fb_height", "beam_refsurf_ndx",
                                         "height_segment_height", "height_segment_length_seg",
                                         "height_segment_type", "height_segment_ssh_flag")


def companion_uri(atl03_granule: str, uris: Sequence[str], product: str) -> str | None:
    """The ATL07 or ATL10 file of an ATL03 granule's pass among ``uris``.

    Same RGT and cycle, starting at most an hour before the ATL03 granule (ATL07/ATL10 cover a
    hemisphere pass and their keys differ from the regional ATL03 keys); the latest such start,
    then the highest release and the name, wins.

    Examples
    --------
    >>> companion_uri("20191104195311_05940510", ["/c/ATL07-02_20191104195311_05940501_006_01.h5",
    ...               "/c/ATL07-02_20191104195311_05950501_006_01.h5"], "ATL07")
    '/c/ATL07-02_20191104195311_05940501_006_01.h5'
    """
    try:
        ref = parse_granule(f"ATL03_{atl03_granule}_006_01.h5")
    except GranuleNameError:
        return None
    best: tuple[Any, ...] | None = None
    for uri in uris:
        try:
            g = parse_granule(posixpath.basename(uri))
        except GranuleNameError:
            continue
        lead_s = (ref.start - g.start).total_seconds()
        if g.product != product or g.rgt != ref.rgt or g.cycle != ref.cycle or not 0 <= lead_s <= PASS_S:
            continue
        rank = (g.start, g.release, uri)
        if best is None or rank > best:
            best = rank
    return None if best is None else str(best[2])


def _attr_text(obj: Any, key: str) -> str | None:
    """An attribute as stripped text (bytes decoded; first item of an array), else None."""
    value = obj.attrs.get(key)
    if value is None:
        return None
    if hasattr(value, "ravel"):
        flat = value.ravel()
        if flat.size == 0:
            return None
        value = flat[0]
    text = (bytes(value).decode("utf-8", "replace") if isinstance(value, bytes) else str(value)).strip()
    return text or None


def _identity(uri: str, storage_options: dict[str, Any] | None) -> tuple[str | None, int | None, int | None]:
    """The granule name a file's metadata gives, its ``orbit_info`` RGT and cycle (None: absent)."""
    from seaice_tasks.io._h5 import has_path, open_h5, read_dataset

    with open_h5(uri, storage_options) as f:
        name = None
        if has_path(f, DATASET_ID_GROUP):
            group = f[DATASET_ID_GROUP]
            name = next((t for key in GRANULE_NAME_ATTRS if (t := _attr_text(group, key)) is not None), None)
        numbers: list[int | None] = []
        for path in (RGT_PATH, CYCLE_PATH):
            values = read_dataset(f, path).ravel() if has_path(f, path) else None
            numbers.append(int(values[0]) if values is not None and values.size else None)
    return name, numbers[0], numbers[1]


def _utc(value: pd.Timestamp) -> str:
    return f"{value:%Y-%m-%dT%H:%M:%S}Z"


def _time_disagreement(uri: str, times: pd.Series) -> str | None:
    """Whether segment times lie outside the pass that starts at the time of the file's name."""
    try:
        start = pd.Timestamp(parse_granule(posixpath.basename(uri)).start)
    except GranuleNameError:
        return None
    stamps = pd.to_datetime(times, utc=True).dropna()
    if not len(stamps):
        return None
    first, last = stamps.min(), stamps.max()
    if start - pd.Timedelta(seconds=NAME_START_SLACK_S) <= first <= start + pd.Timedelta(seconds=PASS_S):
        return None
    return f"its segments span {_utc(first)} to {_utc(last)}, its name starts {_utc(start)}"


def name_disagreement(uri: str, times: pd.Series | None = None,
                      storage_options: dict[str, Any] | None = None) -> str | None:
    """What in an ATL07/ATL10 file disagrees with the granule its name gives (None: nothing).

    Parameters
    ----------
    uri : str
        The file (local path or URL); a name that is not a granule name is not checked.
    times : pandas.Series, optional
        UTC times of segments read from it (the ``time_utc`` column of a beam).
    storage_options : dict, optional
        fsspec options of remote files.

    Raises
    ------
    SeaIceError, OSError
        When the file cannot be read.
    """
    try:
        named = parse_granule(posixpath.basename(uri))
    except GranuleNameError:
        return None
    found = []
    inner_name, rgt, cycle = _identity(uri, storage_options)
    if inner_name is not None:
        try:
            inner = parse_granule(inner_name)
        except GranuleNameError:
            inner = None
        if inner is not None and (inner.product, inner.granule) != (named.product, named.granule):
            found.append(f"its metadata names {posixpath.basename(inner_name)} ({inner.product} granule "
                         f"{inner.granule}), its name {named.product} granule {named.granule}")
    for what, value, expected in ((RGT_PATH, rgt, named.rgt), (CYCLE_PATH, cycle, named.cycle)):
        if value is not None and value != expected:
            found.append(f"{what} is {value}, its name says {expected}")
    if times is not None and (late := _time_disagreement(uri, times)) is not None:
        found.append(late)
    return "; ".join(found) or None


@dataclasses.dataclass(frozen=True)
class ReferenceTrack:
    """NASA's products of one beam, as far as they could be read.

    Attributes
    ----------
    atl07, atl10, atl10_surface : pandas.DataFrame or None
        ATL07 segments, ATL10 freeboard segments, ATL10 reference sections (None: not available).
    release : int or None
        ATL07 release (decides the lead types).
    flags : tuple of str
        Why something is missing (``no_atl07``, ``atl10 unusable: ...``, ``atl10 skipped: <file> is
        another granule's file: ...``).
    """

    atl07: pd.DataFrame | None
    atl10: pd.DataFrame | None
    atl10_surface: pd.DataFrame | None
    release: int | None
    flags: tuple[str, ...]


def _own_granule(product: str, uri: str, read: Callable[[list[str]], pd.DataFrame], columns: Sequence[str],
                 flags: list[str], storage_options: dict[str, Any] | None) -> pd.DataFrame | None:
    """``read(columns)`` of a file, or None and a flag when the file is another granule's.

    The file's metadata is compared with its name before the beam is read (a beam the file lacks
    does not hide that it is another granule's), the beam's times after.
    """
    what = name_disagreement(uri, None, storage_options)
    if what is None:
        frame = read([*columns, TIME_COLUMN])
        what = _time_disagreement(uri, frame[TIME_COLUMN])
        if what is None:
            return frame.drop(columns=[TIME_COLUMN])
    flags.append(f"{product} skipped: {uri} is another granule's file: {what}")
    return None


def read_reference(atl07_uri: str | None, atl10_uri: str | None, beam: str,
                   storage_options: dict[str, Any] | None = None) -> ReferenceTrack:
    """Read one beam of ATL07 and ATL10; what cannot be used becomes a flag (module docstring)."""
    from seaice_tasks.io.atl07 import read_atl07
    from seaice_tasks.io.atl10 import read_atl10_freeboard, read_atl10_reference_surface

    flags: list[str] = []
    atl07 = atl10 = surface = None
    release = None
    if not atl07_uri:
        flags.append("no_atl07")
    else:
        try:
            atl07 = _own_granule("atl07", atl07_uri,
                                 lambda cols: read_atl07(atl07_uri, beam, cols, storage_options=storage_options),
                                 ATL07_COLUMNS, flags, storage_options)
            release = parse_granule(posixpath.basename(atl07_uri)).release
        except (SeaIceError, GranuleNameError, OSError) as exc:
            flags.append(f"atl07 unusable: {exc}")
        if atl07 is None:
            release = None
    if not atl10_uri:
        flags.append("no_atl10")
    else:
        try:
            atl10 = _own_granule(
                "atl10", atl10_uri,
                lambda cols: read_atl10_freeboard(atl10_uri, beam, cols, storage_options=storage_options),
                ATL10_COLUMNS, flags, storage_options)
            if atl10 is not None:
                surface = read_atl10_reference_surface(atl10_uri, beam, ["beam_refsurf_height"],
                                                       storage_options=storage_options)
        except (SeaIceError, OSError) as exc:
            flags.append(f"atl10 unusable: {exc}")
            atl10 = surface = None
    return ReferenceTrack(atl07, atl10, surface, release, tuple(flags))
