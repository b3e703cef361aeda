"""The simulator's one sun against the real ATL03 file's own solar angles."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import h5py
import numpy as np

from seaice_tasks.io._time import delta_time_to_utc
from seaice_tasks.sim.atl03 import solar_geometry
from seaice_tasks.sim.s2 import solar_position
from seaice_tasks.sim.sun import sun_position

#: NOAA series accuracy (~0.5 deg) plus the file's reference-photon positions.
ELEVATION_TOL_DEG = 0.6
AZIMUTH_TOL_DEG = 0.2
FILL = 1e30


def test_sun_matches_the_real_files_solar_angles(realdata: Path) -> None:
    with h5py.File(realdata / "icesat2" / "harmony_ATL03_gt1l.h5", "r") as f:
        g = f["gt1l/geolocation"]
        t = delta_time_to_utc(g["delta_time"][:])
        lat, lon = g["reference_photon_lat"][:], g["reference_photon_lon"][:]
        elev, az = g["solar_elevation"][:], g["solar_azimuth"][:]
    ok = (np.abs(elev) < FILL) & (np.abs(lat) < FILL) & ~np.isnat(t)
    assert ok.sum() > 10
    day = t[ok].astype("datetime64[D]")
    assert (day == day[0]).all()
    doy = int((day[0] - day[0].astype("datetime64[Y]")).astype(int)) + 1
    hours = (t[ok] - day).astype("timedelta64[ns]").astype(np.int64) / 3.6e12
    sim_az, sim_elev = sun_position(doy, hours, lon[ok], lat[ok])
    assert np.abs(sim_elev - elev[ok]).max() < ELEVATION_TOL_DEG
    assert np.abs((sim_az - az[ok] + 180.0) % 360.0 - 180.0).max() < AZIMUTH_TOL_DEG


def test_atl03_and_s2_share_the_sun() -> None:
    when = dt.datetime(2019, 11, 4, 19, 53, 11, 250000, tzinfo=dt.UTC)
    az, el = solar_position(when, -170.0, -75.5)
    sod = 19 * 3600 + 53 * 60 + 11.25
    el3, az3 = solar_geometry(-170.0, -75.5, when.timetuple().tm_yday, sod)
    assert float(el3) == el and float(az3) == az
