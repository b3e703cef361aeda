"""Where the simulated sensors look: ICESat-2 ground tracks and beams, Sentinel-2 footprints.

A simulated granule is a straight reference ground track (RGT) in EPSG:3976, traversed at the
ICESat-2 ground speed.  The six beams are offset across track: three pairs 3.3 km apart, the two
beams of a pair 90 m apart.  With ``sc_orient`` = 1 (forward, as in November 2019) the right
beam of each pair is the strong one; with 0 (backward) the left one.

Overpasses are placed in a window of local solar time (``SimConfig.overpass_local_hours``, by
default the late morning of Sentinel-2's 10:30 crossing); the sun at that time sets the ATL03
background (:mod:`seaice_tasks.sim.sun`).  A Sentinel-2 scene is only planned when the sun is at
least ``SimConfig.s2_min_sun_elevation_deg`` above the horizon at its centre and sensing time:
MSI does not image in the dark, so a night day has no scenes (recorded as ``DayPlan.unlit_scenes``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from typing import ClassVar, Final

import numpy as np
import numpy.typing as npt

from seaice_tasks.config import JsonConfig
from seaice_tasks.constants import ATLAS_SDP_GPS_EPOCH_S, BEAMS, gps_leap_seconds
from seaice_tasks.errors import ConfigError
from seaice_tasks.sim.atmosphere import AtmosphereConfig
from seaice_tasks.sim.sun import sun_position
from seaice_tasks.sim.world import WORLD_CRS, WorldConfig, hash_uniform

__all__ = [
    "SimConfig",
    "Track",
    "S2Footprint",
    "plan_day",
    "DayPlan",
    "sun_elevation_deg",
    "repeat_cycle",
    "S2_MIN_SUN_ELEVATION_DEG",
    "to_lonlat",
    "from_lonlat",
    "utc_to_delta_time",
    "GROUND_SPEED_M_S",
    "SHOT_RATE_HZ",
    "PAIR_SPACING_M",
    "BEAM_SPACING_M",
]

#: ICESat-2 ground-track speed (m/s) and laser repetition rate (Hz): shots 0.69 m apart.
GROUND_SPEED_M_S: Final[float] = 6900.0
SHOT_RATE_HZ: Final[float] = 10_000.0
#: Across-track spacing of beam pairs and of the two beams of a pair (m).
PAIR_SPACING_M: Final[float] = 3300.0
BEAM_SPACING_M: Final[float] = 90.0
#: Along-track distance from the ascending equator crossing to the start of a Ross Sea
#: granule (m): the author's tracks sit near x_atc = 28.3-28.5 Mm (METHOD.md §1.5).
X_ATC_START_M: Final[float] = 28_300_000.0
#: Study area (METHOD.md §1.1): Ross Sea.
ROSS_LAT_DEG: Final[tuple[float, float]] = (-78.0, -70.0)
ROSS_LON_DEG: Final[tuple[float, float]] = (-180.0, -140.0)
_TAG_TRACK: Final[int] = 101
_TAG_SCENE: Final[int] = 102
_SECONDS_PER_DAY: Final[float] = 86_400.0
#: Local solar time window (h) of the simulated overpasses, around Sentinel-2's 10:30 crossing.
_LOCAL_HOUR_RANGE: Final[tuple[float, float]] = (9.5, 11.5)
_DEG_PER_HOUR: Final[float] = 15.0
_HOURS_PER_DAY: Final[float] = 24.0
_SECONDS_PER_HOUR: Final[float] = 3600.0
#: Lowest sun elevation (deg) at which a Sentinel-2 scene is acquired: ESA images low-illumination
#: scenes up to a sun zenith angle of 85 deg (Sentinel-2B observation scenario from 23 Oct 2019;
#: the largest in the 2022 L1C archive is 86.2 deg), never in the dark.
S2_MIN_SUN_ELEVATION_DEG: Final[float] = 5.0
#: ICESat-2's 91-day repeat cycles: cycle 2 began on 2018-12-28 (cycle 1 was a partial one), so
#: November 2019 is cycle 5 and June 2019 cycle 3, as in the real granule names.
_CYCLE2_START: Final[dt.date] = dt.date(2018, 12, 28)
_CYCLE_DAYS: Final[int] = 91


@dataclasses.dataclass(frozen=True)
class SimConfig(JsonConfig):
    """One simulated day.

    Attributes
    ----------
    date : str
        UTC day ``YYYY-MM-DD``.
    seed : int
        Seed of the day (the world's seed is ``world.seed``).
    granules : int
        Number of ATL03 granules (and their ATL07/ATL10).
    km : float
        Along-track length of each granule (km).
    scenes_per_granule : int
        Sentinel-2 scenes placed over each granule's track.
    scene_km : float
        Side of a square Sentinel-2 scene (km).
    sc_orient : int
        Spacecraft orientation (1 forward: right beams strong; 0 backward: left beams strong).
    release : int
        ATL03/ATL07/ATL10 release written in names and metadata.
    drift_max_m : float
        Largest ice drift between the S2 and IS2 acquisitions (m); each pair draws U(0, max)
        in a random direction.
    s2_offset_min : (float, float)
        Range of |t_IS2 - t_S2| (minutes); the sign is random.
    s2_baseline : (int, int)
        Processing baseline of the scenes (>= (4, 0) adds the -1000 DN offset).
    world : WorldConfig
        The truth world.
    atmosphere : AtmosphereConfig
        Haze and thin-cloud patches over the ICESat-2 passes (default clear;
        :mod:`seaice_tasks.sim.atmosphere`).
    overpass_local_hours : (float, float)
        Window of local solar time (h) in which the granules' overpasses are drawn; ``hi`` may
        exceed 24 (a window across local midnight).  The default late morning pairs with
        Sentinel-2; a window around local midnight on a winter date gives night passes.
    s2_min_sun_elevation_deg : float
        Sun elevation (deg) below which a planned scene is not acquired (dark).
    """

    kind: ClassVar[str] = "sim_day"
    date: str = "2019-11-04"
    seed: int = 20191104
    granules: int = 3
    km: float = 100.0
    scenes_per_granule: int = 1
    scene_km: float = 20.0
    sc_orient: int = 1
    release: int = 6
    drift_max_m: float = 800.0
    s2_offset_min: tuple[float, float] = (7.0, 48.0)
    s2_baseline: tuple[int, int] = (2, 8)
    world: WorldConfig = dataclasses.field(default_factory=WorldConfig)
    atmosphere: AtmosphereConfig = dataclasses.field(default_factory=AtmosphereConfig)
    overpass_local_hours: tuple[float, float] = _LOCAL_HOUR_RANGE
    s2_min_sun_elevation_deg: float = S2_MIN_SUN_ELEVATION_DEG

    def __post_init__(self) -> None:
        try:
            dt.date.fromisoformat(self.date)
        except ValueError as exc:
            raise ConfigError(f"SimConfig.date: {exc}") from exc
        if self.granules < 0 or self.km <= 0 or self.scene_km <= 0:
            raise ConfigError("SimConfig: granules >= 0, km > 0 and scene_km > 0 required")
        if self.sc_orient not in (0, 1):
            raise ConfigError(f"SimConfig.sc_orient: must be 0 (backward) or 1 (forward), got {self.sc_orient}")
        lo, hi = self.overpass_local_hours
        if not (0.0 <= lo <= hi <= lo + _HOURS_PER_DAY and lo < _HOURS_PER_DAY):
            raise ConfigError(f"SimConfig.overpass_local_hours: need 0 <= lo <= hi <= lo + 24, got {(lo, hi)}")
        if not -90.0 <= self.s2_min_sun_elevation_deg <= 90.0:
            raise ConfigError("SimConfig.s2_min_sun_elevation_deg: must be in [-90, 90]")

    @property
    def day(self) -> dt.date:
        """The simulated UTC day."""
        return dt.date.fromisoformat(self.date)


_TO_LONLAT = None
_FROM_LONLAT = None


def to_lonlat(x_m: npt.ArrayLike, y_m: npt.ArrayLike) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """EPSG:3976 (m) -> (lon, lat) in degrees."""
    global _TO_LONLAT
    if _TO_LONLAT is None:
        from pyproj import Transformer

        _TO_LONLAT = Transformer.from_crs(WORLD_CRS, "EPSG:4326", always_xy=True)
    lon, lat = _TO_LONLAT.transform(np.asarray(x_m, dtype=np.float64), np.asarray(y_m, dtype=np.float64))
    return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)


def from_lonlat(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(lon, lat) degrees -> EPSG:3976 (m)."""
    global _FROM_LONLAT
    if _FROM_LONLAT is None:
        from pyproj import Transformer

        _FROM_LONLAT = Transformer.from_crs("EPSG:4326", WORLD_CRS, always_xy=True)
    x, y = _FROM_LONLAT.transform(np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64))
    return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)


def utc_to_delta_time(t: dt.datetime) -> float:
    """UTC -> ATLAS ``delta_time`` (s since 2018-01-01 on the GPS time base)."""
    gps = (t - dt.datetime(1980, 1, 6, tzinfo=dt.UTC)).total_seconds()
    gps += gps_leap_seconds(gps + 18.0)
    return gps - ATLAS_SDP_GPS_EPOCH_S


@dataclasses.dataclass(frozen=True)
class Track:
    """One simulated granule's reference ground track.

    Attributes
    ----------
    start_utc : datetime.datetime
        Time of the first shot (also the granule name's time).
    rgt, cycle, region : int
        Name fields (region 10 for these Antarctic granules, METHOD.md §1.1).
    x0_m, y0_m : float
        EPSG:3976 position of the RGT at the first shot.
    ux, uy : float
        Unit along-track direction in EPSG:3976.
    length_m : float
        Along-track length.
    x_atc0_m : float
        Along-track distance of the first shot from the equator crossing.
    """

    start_utc: dt.datetime
    rgt: int
    cycle: int
    region: int
    x0_m: float
    y0_m: float
    ux: float
    uy: float
    length_m: float
    x_atc0_m: float = X_ATC_START_M

    @property
    def granule(self) -> str:
        """Granule key ``YYYYMMDDhhmmss_RRRRCCSS``."""
        return f"{self.start_utc:%Y%m%d%H%M%S}_{self.rgt:04d}{self.cycle:02d}{self.region:02d}"

    @property
    def duration_s(self) -> float:
        """Time to fly the track (s)."""
        return self.length_m / GROUND_SPEED_M_S

    def across_offset_m(self, beam: str) -> float:
        """Across-track offset of a beam from the RGT (m, positive to the right of travel)."""
        pair = int(beam[2]) - 2  # gt1 -> -1, gt2 -> 0, gt3 -> +1
        side = -0.5 if beam.endswith("l") else 0.5
        return pair * PAIR_SPACING_M + side * BEAM_SPACING_M

    def beam_xy(self, beam: str, s_m: npt.ArrayLike) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """EPSG:3976 position of ``beam`` at along-track distance ``s_m`` from the start."""
        s = np.asarray(s_m, dtype=np.float64)
        off = self.across_offset_m(beam)
        # right of travel = direction rotated by -90 degrees: (uy, -ux)
        return (self.x0_m + s * self.ux + off * self.uy, self.y0_m + s * self.uy - off * self.ux)

    def time_at(self, s_m: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Seconds after ``start_utc`` when the spacecraft is at ``s_m``."""
        return np.asarray(s_m, dtype=np.float64) / GROUND_SPEED_M_S

    def bounds_m(self, margin_m: float = 0.0) -> tuple[float, float, float, float]:
        """EPSG:3976 bounding box of all six beams (xmin, ymin, xmax, ymax)."""
        xs, ys = [], []
        for beam in BEAMS:
            x, y = self.beam_xy(beam, np.array([0.0, self.length_m]))
            xs.extend(x.tolist())
            ys.extend(y.tolist())
        return (min(xs) - margin_m, min(ys) - margin_m, max(xs) + margin_m, max(ys) + margin_m)


@dataclasses.dataclass(frozen=True)
class S2Footprint:
    """One simulated Sentinel-2 scene over a track.

    ``center_x_m``/``center_y_m`` are EPSG:3976; the scene is ``size_m`` square in its own UTM
    CRS ``utm_epsg``, sensed at ``sensing_utc``; the ice moved by ``drift_m`` (dx, dy in
    EPSG:3976 m) from the S2 to the IS2 time.
    """

    track_granule: str
    tile: str
    utm_epsg: int
    sensing_utc: dt.datetime
    center_x_m: float
    center_y_m: float
    size_m: float
    drift_m: tuple[float, float]
    baseline: tuple[int, int]

    @property
    def scene(self) -> str:
        """Scene key ``YYYYMMDDThhmmss_Txxxxx``."""
        return f"{self.sensing_utc:%Y%m%dT%H%M%S}_T{self.tile}"

    @property
    def safe_name(self) -> str:
        """A SAFE-style product name carrying the processing baseline."""
        b = f"N{self.baseline[0]:02d}{self.baseline[1]:02d}"
        t = f"{self.sensing_utc:%Y%m%dT%H%M%S}"
        return f"S2B_MSIL1C_{t}_{b}_R000_T{self.tile}_{t}"


@dataclasses.dataclass(frozen=True)
class DayPlan:
    """Tracks and scenes of a simulated day.

    ``unlit_scenes`` are the footprints that were drawn but not acquired: the sun was below
    ``config.s2_min_sun_elevation_deg`` at their centre and sensing time.
    """

    config: SimConfig
    tracks: tuple[Track, ...]
    scenes: tuple[S2Footprint, ...]
    unlit_scenes: tuple[S2Footprint, ...] = ()


def _utm_zone(lon: float) -> int:
    return int((lon + 180.0) // 6.0) % 60 + 1


def _mgrs_tile(lon: float, lat: float) -> str:
    """A plausible MGRS tile id (zone + latitude band C for 80-72 S, D for 72-64 S + 2 letters)."""
    zone = _utm_zone(lon)
    band = "C" if lat < -72.0 else "D"
    letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
    col = letters[int((lon + 180.0) * 4) % len(letters)]
    row = letters[int((lat + 90.0) * 4) % len(letters)]
    return f"{zone:02d}{band}{col}{row}"


def plan_day(config: SimConfig) -> DayPlan:
    """Place the day's granule tracks and S2 scenes (deterministic from ``config.seed``).

    Tracks start inside the Ross Sea box at times spread over the day; headings are near
    meridional (ICESat-2's 92 degree inclination); scenes sit on a random along-track position of
    their track, with a drift and an IS2-S2 time offset drawn per scene.  A scene whose centre has
    the sun below ``config.s2_min_sun_elevation_deg`` at its sensing time goes to
    ``unlit_scenes`` instead of ``scenes`` (its draws do not depend on the others').
    """
    seed = config.seed
    day0 = dt.datetime.combine(config.day, dt.time(), tzinfo=dt.UTC)
    tracks = []
    scenes: list[S2Footprint] = []
    unlit: list[S2Footprint] = []
    hour_lo, hour_hi = config.overpass_local_hours
    length = config.km * 1000.0
    for g in range(config.granules):
        u = hash_uniform(seed, _TAG_TRACK, g, np.arange(8))
        lat0 = ROSS_LAT_DEG[0] + 1.0 + u[0] * (ROSS_LAT_DEG[1] - ROSS_LAT_DEG[0] - 3.0)
        lon0 = ROSS_LON_DEG[0] + 2.0 + u[1] * (ROSS_LON_DEG[1] - ROSS_LON_DEG[0] - 4.0)
        x0, y0 = from_lonlat(lon0, lat0)
        # heading: towards the pole (descending) or away from it, within 25 degrees of the meridian
        to_pole = math.atan2(-float(y0), -float(x0))
        heading = to_pole + (math.pi if u[2] < 0.5 else 0.0) + math.radians(50.0 * (u[3] - 0.5))
        # Sentinel-2 crosses at ~10:30 local solar time and pairs lie within ~80 min, so put the
        # overpass in the local late morning: UTC hour = local hour - lon / 15.
        local_h = hour_lo + u[4] * (hour_hi - hour_lo)
        utc_s = ((local_h - lon0 / _DEG_PER_HOUR) % _HOURS_PER_DAY) * _SECONDS_PER_HOUR
        start = day0 + dt.timedelta(seconds=int(min(utc_s, _SECONDS_PER_DAY - 3600.0)))
        tracks.append(
            Track(start_utc=start, rgt=int(1 + u[5] * 1386), cycle=repeat_cycle(config.day), region=10,
                  x0_m=float(x0), y0_m=float(y0),
                  ux=math.cos(heading), uy=math.sin(heading), length_m=length,
                  x_atc0_m=X_ATC_START_M + float(u[6]) * 100_000.0)
        )
    tracks.sort(key=lambda t: t.start_utc)
    for track in tracks:
        for k in range(config.scenes_per_granule):
            u = hash_uniform(seed, _TAG_SCENE, track.rgt, k, np.arange(8))
            half = config.scene_km * 500.0
            s = half + u[0] * max(track.length_m - 2 * half, 0.0)
            cx, cy = track.beam_xy("gt2l", s)  # centred near the middle pair
            offset_min = config.s2_offset_min[0] + u[1] * (config.s2_offset_min[1] - config.s2_offset_min[0])
            sign = 1.0 if u[2] < 0.5 else -1.0
            t_is2 = track.start_utc + dt.timedelta(seconds=float(s / GROUND_SPEED_M_S))
            sensing = (t_is2 - dt.timedelta(minutes=sign * offset_min)).replace(microsecond=0)
            mag = u[3] * config.drift_max_m
            ang = u[4] * 2 * math.pi
            lon, lat = to_lonlat(cx, cy)
            zone = _utm_zone(float(lon))
            footprint = S2Footprint(
                track_granule=track.granule, tile=_mgrs_tile(float(lon), float(lat)), utm_epsg=32700 + zone,
                sensing_utc=sensing, center_x_m=float(cx), center_y_m=float(cy), size_m=config.scene_km * 1000.0,
                drift_m=(mag * math.cos(ang), mag * math.sin(ang)), baseline=config.s2_baseline)
            lit = sun_elevation_deg(sensing, float(lon), float(lat)) >= config.s2_min_sun_elevation_deg
            (scenes if lit else unlit).append(footprint)
    return DayPlan(config=config, tracks=tuple(tracks), scenes=tuple(scenes), unlit_scenes=tuple(unlit))


def repeat_cycle(day: dt.date) -> int:
    """ICESat-2 repeat cycle of a UTC day (the granule name's CC field; 1 before cycle 2).

    Examples
    --------
    >>> repeat_cycle(dt.date(2019, 11, 4)), repeat_cycle(dt.date(2019, 6, 24)), repeat_cycle(dt.date(2018, 11, 1))
    (5, 3, 1)
    """
    return max(1, 2 + (day - _CYCLE2_START).days // _CYCLE_DAYS)


def sun_elevation_deg(when: dt.datetime, lon_deg: float, lat_deg: float) -> float:
    """Sun elevation (deg) at one UTC instant and place (:func:`seaice_tasks.sim.sun.sun_position`).

    Examples
    --------
    >>> noon = dt.datetime(2019, 11, 4, 11, 43, 36, tzinfo=dt.UTC)
    >>> round(sun_elevation_deg(noon, 0.0, -75.0)), sun_elevation_deg(noon.replace(month=6, day=21), 0.0, -75.0) < 0
    (30, True)
    """
    day0 = dt.datetime.combine(when.date(), dt.time(), tzinfo=when.tzinfo)
    hours = (when - day0).total_seconds() / _SECONDS_PER_HOUR
    _, elevation = sun_position(when.timetuple().tm_yday, hours, lon_deg, lat_deg)
    return float(elevation)
