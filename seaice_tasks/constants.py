"""Codes and names of the ICESat-2 / Sentinel-2 products and of our own classes.

Sources: ATL03/ATL07/ATL10 product documentation as verified on real files (METHOD.md §1.2-1.4).
"""

from __future__ import annotations

import datetime as dt
from enum import IntEnum
from typing import Final, Literal, get_args

__all__ = [
    "Beam",
    "BEAMS",
    "LEFT_BEAMS",
    "RIGHT_BEAMS",
    "ScOrient",
    "strong_beams",
    "weak_beams",
    "is_strong",
    "SignalConf",
    "SurfaceType",
    "SeaIceClass",
    "CLASS_NAMES",
    "CLASS_COLOURS_RGB",
    "UNLABELED",
    "ATL07SurfaceType",
    "H5_FILL_FLOAT32",
    "H5_FILL_THRESHOLD",
    "ATLAS_SDP_GPS_EPOCH_S",
    "GPS_EPOCH",
    "LEAP_SECONDS_TABLE",
    "gps_leap_seconds",
    "S2_BANDS",
    "S2_REFLECTANCE_SCALE",
    "S2_BOA_ADD_OFFSET_DN",
    "S2_OFFSET_BASELINE",
    "SHOTS_PER_MAJOR_FRAME",
    "SHOTS_PER_BCKGRD_ROW",
    "SEGMENT_LENGTH_M",
    "SPEED_OF_LIGHT_M_S",
]

Beam = Literal["gt1l", "gt1r", "gt2l", "gt2r", "gt3l", "gt3r"]
#: All six ATLAS beam groups in file order.
BEAMS: Final[tuple[Beam, ...]] = get_args(Beam)
LEFT_BEAMS: Final[tuple[Beam, ...]] = ("gt1l", "gt2l", "gt3l")
RIGHT_BEAMS: Final[tuple[Beam, ...]] = ("gt1r", "gt2r", "gt3r")


class ScOrient(IntEnum):
    """Spacecraft orientation, ``orbit_info/sc_orient``."""

    BACKWARD = 0  #: left beams are the strong ones
    FORWARD = 1  #: right beams are the strong ones
    TRANSITION = 2  #: during a yaw flip: strength undefined, do not use


def strong_beams(sc_orient: int) -> tuple[Beam, ...]:
    """Strong beams for a spacecraft orientation.

    Parameters
    ----------
    sc_orient : int
        ``orbit_info/sc_orient`` (0 backward, 1 forward, 2 transition).

    Returns
    -------
    tuple of str
        The three strong beam groups; empty during a transition.

    Examples
    --------
    >>> strong_beams(1)
    ('gt1r', 'gt2r', 'gt3r')
    >>> strong_beams(2)
    ()
    """
    orient = ScOrient(int(sc_orient))
    if orient is ScOrient.BACKWARD:
        return LEFT_BEAMS
    if orient is ScOrient.FORWARD:
        return RIGHT_BEAMS
    return ()


def weak_beams(sc_orient: int) -> tuple[Beam, ...]:
    """Weak beams for a spacecraft orientation (empty during a transition)."""
    orient = ScOrient(int(sc_orient))
    if orient is ScOrient.BACKWARD:
        return RIGHT_BEAMS
    if orient is ScOrient.FORWARD:
        return LEFT_BEAMS
    return ()


def is_strong(beam: str, sc_orient: int) -> bool | None:
    """Whether ``beam`` is strong; ``None`` when the orientation is a transition."""
    if ScOrient(int(sc_orient)) is ScOrient.TRANSITION:
        return None
    return beam in strong_beams(sc_orient)


class SignalConf(IntEnum):
    """Values of ATL03 ``heights/signal_conf_ph``."""

    POSSIBLE_TEP = -2
    NOT_CONSIDERED = -1
    NOISE = 0
    BUFFER = 1
    LOW = 2
    MEDIUM = 3
    HIGH = 4


class SurfaceType(IntEnum):
    """Columns of ``signal_conf_ph`` (N, 5) and of ``geolocation/surf_type``."""

    LAND = 0
    OCEAN = 1
    SEA_ICE = 2
    LAND_ICE = 3
    INLAND_WATER = 4


class SeaIceClass(IntEnum):
    """Our class codes of 2 m segments and S2 pixels (the authors' IS2 encoding)."""

    THICK_ICE = 0
    THIN_ICE = 1
    OPEN_WATER = 2
    UNLABELED = 255


UNLABELED: Final[int] = int(SeaIceClass.UNLABELED)

CLASS_NAMES: Final[dict[SeaIceClass, str]] = {
    SeaIceClass.THICK_ICE: "thick/snow-covered ice",
    SeaIceClass.THIN_ICE: "thin/young ice",
    SeaIceClass.OPEN_WATER: "open water",
    SeaIceClass.UNLABELED: "unlabeled",
}

#: Display colours, the authors' label-PNG convention (red thick, blue thin, green water).
CLASS_COLOURS_RGB: Final[dict[SeaIceClass, tuple[int, int, int]]] = {
    SeaIceClass.THICK_ICE: (255, 0, 0),
    SeaIceClass.THIN_ICE: (0, 0, 255),
    SeaIceClass.OPEN_WATER: (0, 255, 0),
    SeaIceClass.UNLABELED: (0, 0, 0),
}


class ATL07SurfaceType(IntEnum):
    """ATL07 ``heights/height_segment_type``."""

    CLOUD_COVERED = 0
    OTHER = 1  #: sea ice
    SPECULAR_LEAD_LOW_W_BKG = 2
    SPECULAR_LEAD_LOW = 3
    SPECULAR_LEAD_HIGH_W_BKG = 4
    SPECULAR_LEAD_HIGH = 5
    DARK_LEAD_SMOOTH_W_BKG = 6
    DARK_LEAD_SMOOTH = 7
    DARK_LEAD_ROUGH_W_BKG = 8
    DARK_LEAD_ROUGH = 9


#: The float fill value of ICESat-2 HDF5 products (largest float32).
H5_FILL_FLOAT32: Final[float] = 3.4028235e38
#: Anything above this is treated as fill.
H5_FILL_THRESHOLD: Final[float] = 3.0e38

#: GPS seconds from 1980-01-06 to the ATLAS SDP epoch 2018-01-01 (ancillary_data/atlas_sdp_gps_epoch).
ATLAS_SDP_GPS_EPOCH_S: Final[float] = 1198800018.0
GPS_EPOCH: Final[dt.datetime] = dt.datetime(1980, 1, 6, tzinfo=dt.UTC)

#: (first UTC instant at which it applies, GPS - UTC in seconds).  Last entry 2017-01-01; IERS
#: announced no leap second since.  Extend here when one is announced.
LEAP_SECONDS_TABLE: Final[tuple[tuple[dt.datetime, int], ...]] = (
    (dt.datetime(1981, 7, 1, tzinfo=dt.UTC), 1),
    (dt.datetime(1982, 7, 1, tzinfo=dt.UTC), 2),
    (dt.datetime(1983, 7, 1, tzinfo=dt.UTC), 3),
    (dt.datetime(1985, 7, 1, tzinfo=dt.UTC), 4),
    (dt.datetime(1988, 1, 1, tzinfo=dt.UTC), 5),
    (dt.datetime(1990, 1, 1, tzinfo=dt.UTC), 6),
    (dt.datetime(1991, 1, 1, tzinfo=dt.UTC), 7),
    (dt.datetime(1992, 7, 1, tzinfo=dt.UTC), 8),
    (dt.datetime(1993, 7, 1, tzinfo=dt.UTC), 9),
    (dt.datetime(1994, 7, 1, tzinfo=dt.UTC), 10),
    (dt.datetime(1996, 1, 1, tzinfo=dt.UTC), 11),
    (dt.datetime(1997, 7, 1, tzinfo=dt.UTC), 12),
    (dt.datetime(1999, 1, 1, tzinfo=dt.UTC), 13),
    (dt.datetime(2006, 1, 1, tzinfo=dt.UTC), 14),
    (dt.datetime(2009, 1, 1, tzinfo=dt.UTC), 15),
    (dt.datetime(2012, 7, 1, tzinfo=dt.UTC), 16),
    (dt.datetime(2015, 7, 1, tzinfo=dt.UTC), 17),
    (dt.datetime(2017, 1, 1, tzinfo=dt.UTC), 18),
)


def gps_leap_seconds(gps_seconds: float) -> int:
    """GPS - UTC offset (s) in force at a GPS time.

    Parameters
    ----------
    gps_seconds : float
        Seconds since the GPS epoch 1980-01-06T00:00:00.

    Examples
    --------
    >>> gps_leap_seconds(ATLAS_SDP_GPS_EPOCH_S + 60.0)
    18
    """
    offset = 0
    for start_utc, leap in LEAP_SECONDS_TABLE:
        start_gps = (start_utc - GPS_EPOCH).total_seconds() + leap
        if gps_seconds >= start_gps:
            offset = leap
    return offset


#: The four 10 m Sentinel-2 bands we use, in the order B02 blue, B03 green, B04 red, B08 NIR.
S2_BANDS: Final[tuple[str, ...]] = ("B02", "B03", "B04", "B08")
#: reflectance = (DN + offset) / S2_REFLECTANCE_SCALE
S2_REFLECTANCE_SCALE: Final[float] = 10000.0
#: BOA/RADIO_ADD_OFFSET in DN from processing baseline 04.00 on.
S2_BOA_ADD_OFFSET_DN: Final[int] = -1000
#: First processing baseline that carries the offset.
S2_OFFSET_BASELINE: Final[tuple[int, int]] = (4, 0)

#: ATLAS fires 10 kHz; 200 shots make one 50 Hz major frame.
SHOTS_PER_MAJOR_FRAME: Final[int] = 200
#: ``bckgrd_atlas`` has one row per 50 shots (200 Hz).
SHOTS_PER_BCKGRD_ROW: Final[int] = 50
#: Nominal ATL03 geolocation segment length (m).
SEGMENT_LENGTH_M: Final[float] = 20.0
SPEED_OF_LIGHT_M_S: Final[float] = 299_792_458.0
