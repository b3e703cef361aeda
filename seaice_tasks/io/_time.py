"""ICESat-2 time: ``delta_time`` (s since the ATLAS SDP epoch, GPS time base) -> UTC."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from seaice_tasks.constants import ATLAS_SDP_GPS_EPOCH_S, GPS_EPOCH, LEAP_SECONDS_TABLE, gps_leap_seconds

__all__ = ["delta_time_to_utc"]

_GPS_EPOCH_NS = np.datetime64(GPS_EPOCH.replace(tzinfo=None), "ns")
_NS_PER_S = 1_000_000_000
#: GPS seconds at which each leap second of the table takes effect, and the offset from then on
#: (index 0: before the first one), as :func:`~seaice_tasks.constants.gps_leap_seconds` counts them.
_LEAP_STARTS_GPS_S = np.array([(start - GPS_EPOCH).total_seconds() + leap for start, leap in LEAP_SECONDS_TABLE])
_LEAP_OFFSETS = np.array([0.0] + [float(leap) for _, leap in LEAP_SECONDS_TABLE])


def delta_time_to_utc(
    delta_time_s: npt.ArrayLike, atlas_sdp_gps_epoch_s: float = ATLAS_SDP_GPS_EPOCH_S
) -> npt.NDArray[np.datetime64]:
    """Convert ATLAS ``delta_time`` to UTC ``datetime64[ns]`` (naive, UTC).

    UTC = 1980-01-06 + (delta_time + atlas_sdp_gps_epoch) - leap seconds.  NaN maps to NaT.

    Parameters
    ----------
    delta_time_s : array_like
        Seconds since the ATLAS SDP epoch (2018-01-01, GPS time base).
    atlas_sdp_gps_epoch_s : float
        ``ancillary_data/atlas_sdp_gps_epoch`` in GPS seconds (default 1198800018.0).

    Examples
    --------
    >>> str(delta_time_to_utc([0.0])[0])
    '2018-01-01T00:00:00.000000000'
    """
    dt_s = np.atleast_1d(np.asarray(delta_time_s, dtype=np.float64))
    gps_s = dt_s + float(atlas_sdp_gps_epoch_s)
    finite = np.isfinite(gps_s)
    all_finite = bool(finite.all())
    if not finite.any():  # also an empty array
        return np.full(dt_s.shape, np.datetime64("NaT"), dtype="datetime64[ns]")
    # Leap seconds only change at a handful of instants: one offset for the whole array unless it
    # spans a change, then a vectorised table lookup (GPS instant -> offset in force).
    lo, hi = float(np.nanmin(gps_s)), float(np.nanmax(gps_s))
    leap_lo, leap_hi = gps_leap_seconds(lo), gps_leap_seconds(hi)
    utc_s: npt.NDArray[np.float64]
    if leap_lo == leap_hi:
        utc_s = gps_s - float(leap_lo)
    else:
        utc_s = gps_s - _LEAP_OFFSETS[np.searchsorted(_LEAP_STARTS_GPS_S, np.where(finite, gps_s, 0.0),
                                                      side="right")]
    values = utc_s if all_finite else utc_s[finite]
    whole = np.floor(values)
    ns = whole.astype(np.int64) * _NS_PER_S + np.round((values - whole) * _NS_PER_S).astype(np.int64)
    stamps = _GPS_EPOCH_NS + ns.astype("timedelta64[ns]")
    if all_finite:
        return stamps
    out = np.full(dt_s.shape, np.datetime64("NaT"), dtype="datetime64[ns]")
    out[finite] = stamps
    return out
