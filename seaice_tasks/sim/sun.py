"""The simulator's one sun: solar elevation and azimuth from the NOAA / Spencer series.

Both the ATL03 background rate (:mod:`seaice_tasks.sim.atl03`) and the Sentinel-2 cloud shadows
(:mod:`seaice_tasks.sim.s2`) use :func:`sun_position`, so the truth world has a single sun.
Accuracy ~0.5 degree (NOAA Global Monitoring Division "General Solar Position Calculations",
Spencer 1971 Fourier series for the equation of time and the declination); no refraction.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["sun_position"]

FloatArray = npt.NDArray[np.float64]

_EQTIME_SCALE_MIN: Final[float] = 229.18
_EQTIME_COEF: Final[tuple[float, float, float, float, float]] = (0.000075, 0.001868, -0.032077, -0.014615,
                                                                -0.040849)
_DECL_COEF: Final[tuple[float, ...]] = (0.006918, -0.399912, 0.070257, -0.006758, 0.000907, -0.002697, 0.00148)
_DAYS_PER_YEAR: Final[float] = 365.0
_HOURS_PER_DAY: Final[float] = 24.0
_MINUTES_PER_DEGREE_LON: Final[float] = 4.0
_MINUTES_PER_HOUR: Final[float] = 60.0
_NOON_HOUR: Final[float] = 12.0
_HALF_TURN_DEG: Final[float] = 180.0
_FULL_TURN_DEG: Final[float] = 360.0


def sun_position(day_of_year: int, hours_utc: npt.ArrayLike, lon_deg: npt.ArrayLike,
                 lat_deg: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Sun azimuth and elevation (degrees) at UTC hours of one day, for arrays of positions.

    Parameters
    ----------
    day_of_year : int
        1 for 1 January.
    hours_utc : array_like
        Hours since 00:00 UTC of that day (may exceed 24 for a pass that crosses midnight).
    lon_deg, lat_deg : array_like
        Positions (degrees east, degrees north); broadcast with ``hours_utc``.

    Returns
    -------
    azimuth_deg : ndarray
        Clockwise from true north, [0, 360).
    elevation_deg : ndarray
        Above the horizon, negative at night.

    Examples
    --------
    >>> az, el = sun_position(308, 11 + 43 / 60 + 36 / 3600, 0.0, -75.0)
    >>> round(float(az)) % 360, round(float(el))  # solar noon on 2019-11-04: due north
    (0, 30)
    """
    hours = np.asarray(hours_utc, dtype=np.float64)
    g = 2.0 * np.pi / _DAYS_PER_YEAR * (day_of_year - 1 + (hours - _NOON_HOUR) / _HOURS_PER_DAY)
    e0, e1, e2, e3, e4 = _EQTIME_COEF
    eqtime = _EQTIME_SCALE_MIN * (e0 + e1 * np.cos(g) + e2 * np.sin(g) + e3 * np.cos(2 * g) + e4 * np.sin(2 * g))
    d = _DECL_COEF
    decl = (d[0] + d[1] * np.cos(g) + d[2] * np.sin(g) + d[3] * np.cos(2 * g) + d[4] * np.sin(2 * g)
            + d[5] * np.cos(3 * g) + d[6] * np.sin(3 * g))
    true_solar_min = hours * _MINUTES_PER_HOUR + eqtime + _MINUTES_PER_DEGREE_LON * np.asarray(lon_deg, np.float64)
    hour_angle = np.radians(true_solar_min / _MINUTES_PER_DEGREE_LON - _HALF_TURN_DEG)
    lat = np.radians(np.asarray(lat_deg, dtype=np.float64))
    cos_zen = np.sin(lat) * np.sin(decl) + np.cos(lat) * np.cos(decl) * np.cos(hour_angle)
    elevation = 90.0 - np.degrees(np.arccos(np.clip(cos_zen, -1.0, 1.0)))
    azimuth = np.degrees(np.arctan2(np.sin(hour_angle), np.cos(hour_angle) * np.sin(lat) - np.tan(decl) * np.cos(lat)))
    return (np.asarray(np.mod(azimuth + _HALF_TURN_DEG, _FULL_TURN_DEG), dtype=np.float64),
            np.asarray(elevation, dtype=np.float64))
