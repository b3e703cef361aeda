"""ICESat-2 time: ``delta_time`` (s since the ATLAS SDP epoch, GPS time base) -> UTC."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from seaice_tasks.constants import ATLAS_SDP_GPS_EPOCH_S, GPS_EPOCH, gps_leap_seconds

__all__ = ["delta_time_to_utc"]

_GPS_EPOCH_NS = np.datetime64(GPS_EPOCH.replace(tzinfo=None), "ns")
_NS_PER_S = 1_000_000_000


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
    out = np.full(dt_s.shape, np.datetime64("NaT"), dtype="datetime64[ns]")
    if not finite.any():
        return out
    # Leap seconds only change at a handful of instants: look them up for the range's ends
    # and split only when a granule spans a change.
    lo, hi = float(np.nanmin(gps_s)), float(np.nanmax(gps_s))
    leap_lo, leap_hi = gps_leap_seconds(lo), gps_leap_seconds(hi)
    if leap_lo == leap_hi:
        leap = np.full(dt_s.shape, leap_lo, dtype=np.float64)
    else:
        leap = np.array([gps_leap_seconds(v) if np.isfinite(v) else 0 for v in gps_s.ravel()]).reshape(
            dt_s.shape
        )
    utc_s = gps_s - leap
    whole = np.floor(utc_s[finite])
    frac_ns = np.round((utc_s[finite] - whole) * _NS_PER_S).astype(np.int64)
    out[finite] = _GPS_EPOCH_NS + (whole.astype(np.int64) * _NS_PER_S + frac_ns).astype("timedelta64[ns]")
    return out
