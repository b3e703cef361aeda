"""Simulated ATL03 granules in the real v006 layout, plus the truth the pipeline never reads.

A granule is written beam by beam and, inside a beam, in chunks of whole major frames
(``_CHUNK_SHOTS`` shots) appended to resizable HDF5 datasets, so the same code writes a 100 km
granule and a multi-GB benchmark beam with bounded memory.  Layout: METHOD.md §1.2; every dataset
written here exists in the real ATL03 variable list (``icepyx_is2variables.json``).

Photon model (all rates per shot of 10 kHz, shots ``SHOT_SPACING_M`` = 0.69 m apart)
---------------------------------------------------------------------------------------
* **Signal.**  Poisson with a mean set by the surface under the shot (``world.sample`` at the shot
  centre, ``shift_m = (0, 0)``: the ice at the ICESat-2 time): strong beam
  ``SIGNAL_PHOTONS_PER_SHOT`` = 5.0 thick/snow, 2.5 thin, 0.4 dark water and
  ``SPECULAR_PHOTONS_PER_SHOT`` = 10.0 on specular (calm) leads -- a ``SPECULAR_FRACTION`` of the
  open water, drawn per ``SPECULAR_CELL_M`` cell; weak beams get ``WEAK_BEAM_FACTOR`` = 1/4.
  Height = ``world.sea_surface_m(x, y, t)`` + freeboard + N(0, sqrt(roughness² +
  ``SYSTEM_JITTER_M``²)), with the system timing jitter 0.11 m (1.5 ns FWHM pulse + detector).
  A few signal photons come back late: afterpulses (``AFTERPULSE_PROB`` per signal photon,
  1.8-4.8 m below, ``quality_ph`` 1) and impulse-response tails (``IMPULSE_RESPONSE_PROB``, 5-15 m
  below, ``quality_ph`` 2), as seen on the real subset.
* **Background.**  Uniform over the telemetry window ``dem_h ± TLM_HALF_HEIGHT_M`` (±15 m) at
  ``background_rate_hz`` = night rate + ``BACKGROUND_RATE_PER_SIN_ELEV_HZ`` · sin(solar elevation),
  times a surface albedo factor; November in the Ross Sea is daylight, so strong beams see
  ~4-8 MHz (the authors' ``brate_mean`` ≈ 6.5e6 counts/s) and weak beams a quarter of that.
* **Clouds.**  ``CLOUD_GAPS_PER_100KM`` along-track intervals of ``CLOUD_GAP_LENGTH_M`` per
  track (all beams), deterministic from the day seed and the RGT: no signal photons there, the
  background goes on.  Recorded in the truth metadata.
* **Haze and thin cloud** (``SimConfig.atmosphere``, default clear): every signal rate x the
  two-way transmission T(s), the solar background mixed towards the cloud's own reflectance
  (:mod:`seaice_tasks.sim.atmosphere`).  T is recorded per truth bin and in the truth metadata.
* **Signal finder** (emulation of the ATL03 ATBD §5 histogramming): photons are grouped in blocks
  of ``SF_BLOCK_SHOTS`` = 20 shots; each photon counts the photons of its block within
  ``± SF_HALF_WINDOW_M`` in height; the count above the expected background count (from the
  block's ``bckgrd_atlas`` rate) in units of its Poisson sigma gives the confidence 4 / 3 / 2
  (``SF_Z_HIGH``, ``SF_Z_MEDIUM``, ``SF_Z_LOW``, with minimum counts); photons within
  ``SF_BUFFER_M`` of a block's signal height range are buffer (1), the rest noise (0).  The ocean
  column copies the sea-ice column and land / land-ice / inland-water are -1, as on the real file.
* **Corrections** (``geophys_corr``, per 20 m segment): ``dem_h`` = world MSS with ``dem_flag`` 3;
  ``tide_ocean``, ``tide_equilibrium``, ``dac`` from the world; ``geoid`` = MSS - MDT with a smooth
  mean dynamic topography of -1.1 to -1.9 m; ``tide_earth``, ``tide_load``, ``tide_pole``,
  ``tide_oc_pole``, ``geoid_free2mean`` and ``tide_earth_free2mean`` small smooth values that are
  physically already in ``h_ph`` (the truth surface does not contain them).
* **First-photon bias.**  The simulated detector has no dead time, so its CAL-19 tables
  (``ancillary_data/calibrations/first_photon_bias/gtx``) have the real axes (dead_time 6,
  strength 160, width 498) and ``ffb_corr`` identically 0 ps: applying them is a no-op.

Truth (pandas parquet + JSON; see :func:`truth_paths`): per photon (beam, photon index, class,
surface height, kind, is_signal), per absolute 2 m bin ``floor(x_atc / 2) * 2`` of every beam
(class at the bin centre, sea surface and its components, freeboard, number of surface-signal
photons, transmission), and the cloud gaps, atmosphere and model constants.

Determinism: one ``numpy.random.Generator`` per (world seed, day seed, RGT, beam, chunk), fixed
chunking and compression, no HDF5 object timestamps (``track_times`` off on every object), no
creation dates in attributes: the same inputs give byte-identical files.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import h5py
import numpy as np
import numpy.typing as npt
import pandas as pd

from seaice_tasks.constants import (
    ATLAS_SDP_GPS_EPOCH_S,
    BEAMS,
    H5_FILL_FLOAT32,
    SEGMENT_LENGTH_M,
    SHOTS_PER_BCKGRD_ROW,
    SHOTS_PER_MAJOR_FRAME,
    SPEED_OF_LIGHT_M_S,
    ScOrient,
    SeaIceClass,
    SignalConf,
    SurfaceType,
    is_strong,
)
from seaice_tasks.sim.atmosphere import (
    CLOUD_BACKSCATTER_ALBEDO,
    TransmissionProfile,
    solar_background_change,
    transmission_profile,
)
from seaice_tasks.sim.geometry import (
    GROUND_SPEED_M_S,
    SHOT_RATE_HZ,
    SimConfig,
    Track,
    plan_day,
    to_lonlat,
    utc_to_delta_time,
)
from seaice_tasks.sim.sun import sun_position
from seaice_tasks.sim.world import TruthWorld, hash_uniform

__all__ = [
    "write_atl03_granule",
    "write_benchmark_beam",
    "granule_file_name",
    "truth_paths",
    "TruthPaths",
    "cloud_gaps",
    "background_rate_hz",
    "solar_geometry",
    "SHOT_SPACING_M",
    "SIGNAL_PHOTONS_PER_SHOT",
    "SPECULAR_PHOTONS_PER_SHOT",
    "WEAK_BEAM_FACTOR",
    "SYSTEM_JITTER_M",
    "TLM_HALF_HEIGHT_M",
    "SF_BLOCK_SHOTS",
    "SF_HALF_WINDOW_M",
    "PHOTON_KIND_BACKGROUND",
    "PHOTON_KIND_SURFACE",
    "PHOTON_KIND_AFTERPULSE",
]

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# -- geometry / timing ----------------------------------------------------------------------------
#: Along-track distance between two shots (m): 6900 m/s / 10 kHz = 0.69 m.
SHOT_SPACING_M: Final[float] = GROUND_SPEED_M_S / SHOT_RATE_HZ
#: Shots generated and appended at a time (a whole number of major frames: 500 frames, ~69 km).
_CHUNK_SHOTS: Final[int] = 500 * SHOTS_PER_MAJOR_FRAME
#: ``pce_mframe_cnt`` is uint32 in ``heights``: the counter wraps.
_MFRAME_MODULO: Final[int] = 2**32
_MAJOR_FRAMES_PER_S: Final[float] = SHOT_RATE_HZ / SHOTS_PER_MAJOR_FRAME
_SECONDS_PER_HOUR: Final[float] = 3600.0
_SECONDS_PER_DAY: Final[float] = 86_400.0
_TRUTH_BIN_M: Final[float] = 2.0

# -- signal photons -------------------------------------------------------------------------------
#: Mean signal photons per shot of a STRONG beam by SeaIceClass (thick/snow, thin, dark water).
SIGNAL_PHOTONS_PER_SHOT: Final[tuple[float, float, float]] = (5.0, 2.5, 0.4)
#: Mean signal photons per shot of a strong beam on a specular (smooth, calm) lead.
SPECULAR_PHOTONS_PER_SHOT: Final[float] = 10.0
#: Fraction of open water that is specular, drawn per square cell of SPECULAR_CELL_M.
SPECULAR_FRACTION: Final[float] = 0.35
SPECULAR_CELL_M: Final[float] = 250.0
#: Weak-beam / strong-beam transmitted energy (signal and background).
WEAK_BEAM_FACTOR: Final[float] = 0.25
#: Per-photon system timing jitter expressed as a height std (m).
SYSTEM_JITTER_M: Final[float] = 0.11
#: Probability per signal photon of an afterpulse (quality_ph 1) and its depth range below (m).
AFTERPULSE_PROB: Final[float] = 0.02
AFTERPULSE_DEPTH_M: Final[tuple[float, float]] = (1.8, 4.8)
#: Probability per signal photon of an impulse-response tail photon (quality_ph 2), depth (m).
IMPULSE_RESPONSE_PROB: Final[float] = 0.004
IMPULSE_RESPONSE_DEPTH_M: Final[tuple[float, float]] = (5.0, 15.0)
_QUALITY_NOMINAL: Final[int] = 0
_QUALITY_AFTERPULSE: Final[int] = 1
_QUALITY_IMPULSE_RESPONSE: Final[int] = 2

#: Truth photon kinds.
PHOTON_KIND_BACKGROUND: Final[int] = 0
PHOTON_KIND_SURFACE: Final[int] = 1
PHOTON_KIND_AFTERPULSE: Final[int] = 2

# -- background -----------------------------------------------------------------------------------
#: Half height of the telemetry window around dem_h (m); background photons are uniform in it.
TLM_HALF_HEIGHT_M: Final[float] = 15.0
#: Strong-beam background at night (dark counts + airglow, counts/s).
BACKGROUND_NIGHT_RATE_HZ: Final[float] = 6.0e4
#: Strong-beam solar background per unit sin(solar elevation) over bright snow (counts/s).
BACKGROUND_RATE_PER_SIN_ELEV_HZ: Final[float] = 1.35e7
#: Relative solar background (albedo) by SeaIceClass: thick/snow, thin, water.
BACKGROUND_ALBEDO: Final[tuple[float, float, float]] = (1.0, 0.6, 0.2)
#: Height of the background integration histogram (m) and of the signal band removed from it.
BCKGRD_INT_HEIGHT_M: Final[float] = 550.0
BCKGRD_SIGNAL_BAND_M: Final[float] = 1.0
#: A solar elevation with no sunlight (deg): ``background_rate_hz`` there is the night rate.
_BELOW_HORIZON_DEG: Final[float] = -90.0

# -- clouds ---------------------------------------------------------------------------------------
CLOUD_GAPS_PER_100KM: Final[float] = 2.5
CLOUD_GAP_LENGTH_M: Final[tuple[float, float]] = (300.0, 3000.0)
_MAX_CLOUD_GAPS_PER_100KM: Final[int] = 12
_TAG_CLOUD: Final[int] = 301
_TAG_SPECULAR: Final[int] = 302

# -- signal finder emulation ----------------------------------------------------------------------
SF_BLOCK_SHOTS: Final[int] = 20
SF_HALF_WINDOW_M: Final[float] = 0.5
SF_Z_HIGH: Final[float] = 6.0
SF_Z_MEDIUM: Final[float] = 4.0
SF_Z_LOW: Final[float] = 2.5
SF_MIN_COUNT_HIGH: Final[int] = 5
SF_MIN_COUNT_MEDIUM: Final[int] = 4
SF_MIN_COUNT_LOW: Final[int] = 3
SF_BUFFER_M: Final[float] = 2.0
#: Scale of the KNN-like ``weight_ph`` (neighbours above background for weight 255·(1 - 1/e)).
WEIGHT_SCALE_COUNTS: Final[float] = 10.0
_WEIGHT_MAX: Final[int] = 255
#: Key offset separating blocks when sorting (m); larger than any height span of a block.
_BLOCK_KEY_SPAN_M: Final[float] = 10_000.0

# -- photon ids -----------------------------------------------------------------------------------
_CHANNELS_PER_PCE: Final[int] = 20
_RISING_EDGE_OFFSET: Final[int] = 60
_STRONG_CHANNELS: Final[int] = 16
_WEAK_CHANNELS: Final[int] = 4
_FOOTPRINT_SIGMA_M: Final[float] = 2.5

# -- corrections ----------------------------------------------------------------------------------
_DEM_FLAG_MSS: Final[int] = 3
_DEM_FLAG_FILL: Final[int] = 127
_MDT_MEAN_M: Final[float] = -1.5
_MDT_AMPLITUDE_M: Final[float] = 0.4
_MDT_WAVELENGTH_M: Final[tuple[float, float]] = (800_000.0, 600_000.0)
_TIDE_EARTH_AMPLITUDE_M: Final[float] = 0.15
_TIDE_LOAD_MEAN_M: Final[float] = -0.02
_TIDE_LOAD_AMPLITUDE_M: Final[float] = 0.01
_TIDE_POLE_AMPLITUDE_M: Final[float] = 0.01
_TIDE_OC_POLE_AMPLITUDE_M: Final[float] = 0.001
_M2_PERIOD_S: Final[float] = 12.42 * _SECONDS_PER_HOUR
#: Permanent-tide conversions: value · (1.5 sin²(lat) - 0.5) (m), fitted on the real subset.
_GEOID_FREE2MEAN_COEF_M: Final[float] = -0.2562
_TIDE_EARTH_FREE2MEAN_COEF_M: Final[float] = -0.1206

# -- first-photon-bias tables (CAL-19 axes) ---------------------------------------------------------
_FPB_DEAD_TIME_NS: Final[tuple[float, ...]] = (2.9, 3.0, 3.1, 3.2, 3.3, 3.4)
_FPB_N_STRENGTH: Final[int] = 160
_FPB_STRENGTH_STEP: Final[float] = 0.1
_FPB_N_WIDTH: Final[int] = 498
_FPB_WIDTH_STEP_NS: Final[float] = 0.02

# -- HDF5 -----------------------------------------------------------------------------------------
_H5_CHUNK_ROWS: Final[int] = 10_000
_GZIP_LEVEL: Final[int] = 1
_N_SURF: Final[int] = len(SurfaceType)
_RELEASE_REVISION: Final[int] = 1
_ISO_Z: Final[str] = "%Y-%m-%dT%H:%M:%S.%fZ"

_BEAM_SPOT_FORWARD: Final[Mapping[str, tuple[str, str]]] = {
    "gt1l": ("6", "pce3"), "gt1r": ("5", "pce3"), "gt2l": ("4", "pce2"),
    "gt2r": ("3", "pce2"), "gt3l": ("2", "pce1"), "gt3r": ("1", "pce1"),
}
_BEAM_SPOT_BACKWARD: Final[Mapping[str, tuple[str, str]]] = {
    "gt1l": ("1", "pce1"), "gt1r": ("2", "pce1"), "gt2l": ("3", "pce2"),
    "gt2r": ("4", "pce2"), "gt3l": ("5", "pce3"), "gt3r": ("6", "pce3"),
}
_BEAM_INDEX: Final[Mapping[str, int]] = {beam: i for i, beam in enumerate(BEAMS)}
_SC_ORIENTATION_TEXT: Final[Mapping[int, str]] = {
    int(ScOrient.BACKWARD): "Backward", int(ScOrient.FORWARD): "Forward", int(ScOrient.TRANSITION): "Transition",
}

#: Dataset attributes (units, long_name, _FillValue or None) of everything written.
_F32_FILL: Final[np.float32] = np.float32(H5_FILL_FLOAT32)
_ATTRS: Final[Mapping[str, tuple[str, str, Any]]] = {
    "heights/h_ph": ("meters", "Photon WGS84 Height", None),
    "heights/lat_ph": ("degrees_north", "Latitude", None),
    "heights/lon_ph": ("degrees_east", "Longitude", None),
    "heights/delta_time": ("seconds since 2018-01-01", "Elapsed GPS seconds", None),
    "heights/dist_ph_along": ("meters", "Distance from equator crossing.", None),
    "heights/dist_ph_across": ("meters", "Distance off RGT.", None),
    "heights/signal_conf_ph": ("1", "Photon Signal Confidence", None),
    "heights/quality_ph": ("1", "Photon Quality", None),
    "heights/ph_id_pulse": ("counts", "laser pulse counter", None),
    "heights/pce_mframe_cnt": ("counts", "PCE Major frame counter", None),
    "heights/ph_id_channel": ("1", "Receive channel id", None),
    "heights/ph_id_count": ("counts", "photon event counter", None),
    "heights/weight_ph": ("1", "Photon weight", None),
    "geolocation/segment_id": ("1", "Along-track segment ID number", None),
    "geolocation/segment_dist_x": ("meters", "Along track distance", None),
    "geolocation/segment_length": ("meters", "along-track segment length", None),
    "geolocation/ph_index_beg": ("counts", "Photon Index Begin", np.int64(0)),
    "geolocation/segment_ph_cnt": ("counts", "Number of photons in a given along-track segment", np.int32(0)),
    "geolocation/reference_photon_index": ("counts", "Reference Photon Index", np.int32(0)),
    "geolocation/reference_photon_lat": ("degrees_north", "Reference Photon Latitude", None),
    "geolocation/reference_photon_lon": ("degrees_east", "Reference Photon Longitude", None),
    "geolocation/solar_elevation": ("degrees", "solar elevation", _F32_FILL),
    "geolocation/solar_azimuth": ("degrees_east", "solar azimuth", _F32_FILL),
    "geolocation/surf_type": ("1", "Surface Type", None),
    "geolocation/delta_time": ("seconds since 2018-01-01", "Elapsed GPS seconds", None),
    "geophys_corr/delta_time": ("seconds since 2018-01-01", "Elapsed GPS seconds", None),
    "geophys_corr/dem_h": ("meters", "DEM Height", _F32_FILL),
    "geophys_corr/dem_flag": ("1", "DEM source flag", np.int8(_DEM_FLAG_FILL)),
    "geophys_corr/geoid": ("meters", "Geoid", _F32_FILL),
    "geophys_corr/geoid_free2mean": ("meters", "Geoid Free-to-Mean conversion", _F32_FILL),
    "geophys_corr/tide_ocean": ("meters", "Ocean Tide", _F32_FILL),
    "geophys_corr/tide_equilibrium": ("meters", "Long Period Equilibrium Tide", _F32_FILL),
    "geophys_corr/dac": ("meters", "Dynamic Atmosphere Correction", _F32_FILL),
    "geophys_corr/tide_earth": ("meters", "Earth Tide", _F32_FILL),
    "geophys_corr/tide_earth_free2mean": ("meters", "Earth Tide Free-to-Mean conversion", _F32_FILL),
    "geophys_corr/tide_load": ("meters", "Load Tide", _F32_FILL),
    "geophys_corr/tide_pole": ("meters", "Solid Earth Pole Tide", _F32_FILL),
    "geophys_corr/tide_oc_pole": ("meters", "Ocean Pole Tide", _F32_FILL),
    "bckgrd_atlas/delta_time": ("seconds since 2018-01-01", "Elapsed GPS seconds", None),
    "bckgrd_atlas/pce_mframe_cnt": ("counts", "PCE Major frame counter", None),
    "bckgrd_atlas/bckgrd_counts": ("counts", "ATLAS 50-shot background count", None),
    "bckgrd_atlas/bckgrd_counts_reduced": ("counts", "ATLAS 50-shot background count - reduced", None),
    "bckgrd_atlas/bckgrd_rate": ("counts / second", "Background count rate based on the ATLAS 50-shot sum", None),
    "bckgrd_atlas/bckgrd_int_height": ("meters", "Altimetric range window width", None),
    "bckgrd_atlas/bckgrd_int_height_reduced": ("meters", "Altimetric range window height - reduced", None),
    "bckgrd_atlas/bckgrd_hist_top": ("meters", "Top of the altimetric range window", None),
    "bckgrd_atlas/tlm_top_band1": ("meters", "Top of Telemetry Band 1", None),
    "bckgrd_atlas/tlm_height_band1": ("meters", "Height of Telemetry Band 1", None),
    "bckgrd_atlas/tlm_top_band2": ("meters", "Top of Telemetry Band 2", None),
    "bckgrd_atlas/tlm_height_band2": ("meters", "Height of Telemetry Band 2", None),
}
_FLAGS: Final[Mapping[str, tuple[npt.NDArray[np.int8], str]]] = {
    "heights/signal_conf_ph": (np.arange(-2, 5, dtype=np.int8),
                               "possible_tep not_considered noise buffer low medium high"),
    "heights/quality_ph": (np.arange(0, 4, dtype=np.int8),
                           "nominal possible_afterpulse possible_impulse_response_effect possible_tep"),
    "geolocation/surf_type": (np.arange(0, 2, dtype=np.int8), "not_type is_type"),
    "geophys_corr/dem_flag": (np.arange(0, 5, dtype=np.int8), "none arctic global mss antarctic"),
}
_PHOTON_DTYPES: Final[Mapping[str, npt.DTypeLike]] = {
    "h_ph": np.float32, "lat_ph": np.float64, "lon_ph": np.float64, "delta_time": np.float64,
    "dist_ph_along": np.float32, "dist_ph_across": np.float32, "signal_conf_ph": np.int8,
    "quality_ph": np.int8, "ph_id_pulse": np.uint8, "pce_mframe_cnt": np.uint32,
    "ph_id_channel": np.uint8, "ph_id_count": np.uint8, "weight_ph": np.uint8,
}
_BCKGRD_DTYPES: Final[Mapping[str, npt.DTypeLike]] = {
    "delta_time": np.float64, "pce_mframe_cnt": np.int64, "bckgrd_counts": np.int32,
    "bckgrd_counts_reduced": np.int32, "bckgrd_rate": np.float32, "bckgrd_int_height": np.float32,
    "bckgrd_int_height_reduced": np.float32, "bckgrd_hist_top": np.float32, "tlm_top_band1": np.float32,
    "tlm_height_band1": np.float32, "tlm_top_band2": np.float32, "tlm_height_band2": np.float32,
}


# ----------------------------------------------------------------------------------------------
# Small public helpers
# ----------------------------------------------------------------------------------------------


def granule_file_name(track: Track, config: SimConfig) -> str:
    """Real-style ATL03 file name of a simulated track.

    Examples
    --------
    >>> track = plan_day(SimConfig(granules=1, km=1)).tracks[0]
    >>> granule_file_name(track, SimConfig()).startswith("ATL03_20191104")
    True
    """
    return (f"ATL03_{track.start_utc:%Y%m%d%H%M%S}_{track.rgt:04d}{track.cycle:02d}{track.region:02d}"
            f"_{config.release:03d}_{_RELEASE_REVISION:02d}.h5")


@dataclasses.dataclass(frozen=True)
class TruthPaths:
    """Truth files of one simulated granule.

    Attributes
    ----------
    photons : Path
        Parquet, one row per photon: ``beam`` (str), ``photon_index`` (int64, 0-based index in the
        beam's ``heights`` arrays), ``class`` (uint8 SeaIceClass at the shot), ``surface_height_m``
        (float32, sea surface + freeboard at the shot, m above WGS84), ``kind`` (uint8: 0
        background, 1 surface signal, 2 afterpulse / impulse response) and ``is_signal`` (kind 1).
    bins : Path
        Parquet, one row per absolute 2 m along-track bin of each beam: ``beam``, ``x_atc_m``
        (int64 bin start, ``floor(x_atc / 2) * 2``), ``class`` (uint8 at the bin centre),
        ``sea_surface_m``, ``freeboard_m``, ``mss_m``, ``tide_ocean_m``, ``tide_equilibrium_m``,
        ``dac_m``, ``residual_m`` (float64, m, at the bin centre and its overflight time),
        ``n_signal_photons`` (int32, kind 1 photons in the bin), ``in_cloud_gap`` (bool) and
        ``transmission`` (float64, two-way atmospheric transmission at the bin centre, 1 clear).
    meta : Path
        JSON: granule, track, cloud gaps (along-track from the first shot and in x_atc, m), the
        atmosphere (config, haze, thin-cloud patches, mean transmission) and the model constants.
    """

    photons: Path
    bins: Path
    meta: Path


def truth_paths(truth_dir: Path, h5_name: str) -> TruthPaths:
    """Where :func:`write_atl03_granule` writes the truth of the granule file ``h5_name``.

    Examples
    --------
    >>> truth_paths(Path("t"), "ATL03_x.h5").bins.name
    'ATL03_x_truth_bins.parquet'
    """
    stem = Path(h5_name).stem
    return TruthPaths(photons=truth_dir / f"{stem}_truth_photons.parquet",
                      bins=truth_dir / f"{stem}_truth_bins.parquet",
                      meta=truth_dir / f"{stem}_truth_meta.json")


def cloud_gaps(track: Track, seed: int) -> FloatArray:
    """Cloud gaps of a track: (G, 2) along-track [start, end) from the first shot (m), sorted.

    On average ``CLOUD_GAPS_PER_100KM`` gaps per 100 km, each ``CLOUD_GAP_LENGTH_M`` long,
    deterministic from ``seed`` and the RGT.

    Examples
    --------
    >>> track = plan_day(SimConfig(granules=1, km=100)).tracks[0]
    >>> gaps = cloud_gaps(track, 1)
    >>> bool((gaps[:, 1] > gaps[:, 0]).all()), np.array_equal(gaps, cloud_gaps(track, 1))
    (True, True)
    """
    n_max = max(1, math.ceil(track.length_m / 100_000.0 * _MAX_CLOUD_GAPS_PER_100KM))
    k = np.arange(n_max)
    u = hash_uniform(seed, _TAG_CLOUD, track.rgt, k, np.arange(3)[:, None])
    p_exist = min(1.0, CLOUD_GAPS_PER_100KM / _MAX_CLOUD_GAPS_PER_100KM)
    lo, hi = CLOUD_GAP_LENGTH_M
    length = lo + u[1] * (hi - lo)
    start = u[2] * max(track.length_m - length.min(), 0.0)
    keep = u[0] < p_exist
    gaps = np.stack([start[keep], np.minimum(start[keep] + length[keep], track.length_m)], axis=1)
    return np.asarray(gaps[np.argsort(gaps[:, 0], kind="stable")], dtype=np.float64).reshape(-1, 2)


def solar_geometry(lon_deg: npt.ArrayLike, lat_deg: npt.ArrayLike, day_of_year: int,
                   seconds_of_day: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Solar elevation and azimuth (degrees; azimuth east of north in [0, 360)).

    The simulator's one sun (:func:`seaice_tasks.sim.sun.sun_position`, NOAA/Spencer series),
    also used for the Sentinel-2 cloud shadows.

    Examples
    --------
    >>> e, _ = solar_geometry(0.0, 0.0, 80, 12 * 3600.0)
    >>> bool(e > 85)
    True
    """
    az, elev = sun_position(day_of_year, np.asarray(seconds_of_day, dtype=np.float64) / _SECONDS_PER_HOUR,
                            lon_deg, lat_deg)
    return elev, az


def background_rate_hz(solar_elevation_deg: npt.ArrayLike, strong: bool) -> FloatArray:
    """Background count rate over bright snow (counts/s) for a solar elevation (degrees).

    ``BACKGROUND_NIGHT_RATE_HZ + BACKGROUND_RATE_PER_SIN_ELEV_HZ * max(sin(elev), 0)``, times
    ``WEAK_BEAM_FACTOR`` for a weak beam; multiply by ``BACKGROUND_ALBEDO[class]`` for the surface.

    Examples
    --------
    >>> float(background_rate_hz(-10.0, strong=False))
    15000.0
    >>> 5e6 < float(background_rate_hz(30.0, strong=True)) < 8e6
    True
    """
    sin_e = np.maximum(np.sin(np.radians(np.asarray(solar_elevation_deg, dtype=np.float64))), 0.0)
    rate = BACKGROUND_NIGHT_RATE_HZ + BACKGROUND_RATE_PER_SIN_ELEV_HZ * sin_e
    return np.asarray(rate * (1.0 if strong else WEAK_BEAM_FACTOR), dtype=np.float64)


# ----------------------------------------------------------------------------------------------
# Beam simulation
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _BeamContext:
    """Everything fixed for one beam of one granule."""

    world: TruthWorld
    track: Track
    beam: str
    strong: bool
    seed: int
    gaps: FloatArray
    delta_time0: float
    seconds_of_day0: float
    day_of_year: int
    mframe0: int
    channels: npt.NDArray[np.uint8]
    atmosphere: TransmissionProfile | None = None  #: None: a clear sky (nothing attenuated)

    def rng(self, chunk: int) -> np.random.Generator:
        """The generator of one chunk (deterministic)."""
        return np.random.default_rng([self.world.config.seed, self.seed, self.track.rgt,
                                      _BEAM_INDEX[self.beam], chunk])


def _beam_context(world: TruthWorld, track: Track, beam: str, sc_orient: int, seed: int,
                  gaps: FloatArray, atmosphere: TransmissionProfile | None = None) -> _BeamContext:
    strong = bool(is_strong(beam, sc_orient))
    delta_time0 = utc_to_delta_time(track.start_utc)
    start = track.start_utc
    sod = start.hour * _SECONDS_PER_HOUR + start.minute * 60.0 + start.second + start.microsecond * 1e-6
    spots = _BEAM_SPOT_FORWARD if sc_orient == int(ScOrient.FORWARD) else _BEAM_SPOT_BACKWARD
    pce = int(spots[beam][1][-1])
    first = (pce - 1) * _CHANNELS_PER_PCE + 1
    falling = (np.arange(first, first + _STRONG_CHANNELS) if strong
               else np.arange(first + _CHANNELS_PER_PCE - _WEAK_CHANNELS, first + _CHANNELS_PER_PCE))
    channels = np.concatenate([falling, falling + _RISING_EDGE_OFFSET]).astype(np.uint8)
    return _BeamContext(world=world, track=track, beam=beam, strong=strong, seed=seed, gaps=gaps,
                        delta_time0=delta_time0, seconds_of_day0=sod,
                        day_of_year=start.timetuple().tm_yday,
                        mframe0=int(delta_time0 * _MAJOR_FRAMES_PER_S), channels=channels, atmosphere=atmosphere)


@dataclasses.dataclass(frozen=True)
class _Chunk:
    """Photons (file order), truth and background rows of a range of shots."""

    photons: dict[str, npt.NDArray[Any]]
    segment: IntArray  #: per photon, 0-based segment index along the beam
    x_atc: FloatArray  #: per photon (m)
    kind: npt.NDArray[np.uint8]
    klass: npt.NDArray[np.uint8]
    surface: npt.NDArray[np.float32]
    bckgrd: dict[str, npt.NDArray[Any]]


def _in_gaps(s: npt.NDArray[Any], gaps: FloatArray) -> npt.NDArray[np.bool_]:
    """Whether along-track distances fall in a cloud gap (gaps sorted, [start, end))."""
    if gaps.shape[0] == 0:
        return np.zeros(s.shape, dtype=bool)
    k = np.searchsorted(gaps[:, 0], s, side="right") - 1
    ok = k >= 0
    out = np.zeros(s.shape, dtype=bool)
    out[ok] = s[ok] < gaps[k[ok], 1]
    return out


def _signal_finder(shot: IntArray, h: FloatArray, lam_bg: FloatArray) -> tuple[npt.NDArray[np.int8], FloatArray]:
    """Emulated ATL03 sea-ice signal confidence and the neighbour excess (counts) per photon.

    ``lam_bg`` is the expected background count of a photon's block in the ±SF_HALF_WINDOW_M box.
    """
    n = h.shape[0]
    conf = np.zeros(n, dtype=np.int8)
    if n == 0:
        return conf, np.zeros(0)
    block = shot // SF_BLOCK_SHOTS
    order = np.lexsort((h, block))
    b_sorted = block[order]
    key = (b_sorted - b_sorted[0]).astype(np.float64) * _BLOCK_KEY_SPAN_M + h[order]
    lo = np.searchsorted(key, key - SF_HALF_WINDOW_M, side="left")
    hi = np.searchsorted(key, key + SF_HALF_WINDOW_M, side="right")
    neighbours = np.empty(n, dtype=np.float64)
    neighbours[order] = (hi - lo - 1).astype(np.float64)  # excluding the photon itself
    excess = neighbours - lam_bg
    z = excess / np.sqrt(lam_bg + 1.0)
    count = neighbours + 1.0
    conf[(z >= SF_Z_LOW) & (count >= SF_MIN_COUNT_LOW)] = SignalConf.LOW
    conf[(z >= SF_Z_MEDIUM) & (count >= SF_MIN_COUNT_MEDIUM)] = SignalConf.MEDIUM
    conf[(z >= SF_Z_HIGH) & (count >= SF_MIN_COUNT_HIGH)] = SignalConf.HIGH
    # buffer: within SF_BUFFER_M of the block's signal height range
    starts = np.flatnonzero(np.r_[True, b_sorted[1:] != b_sorted[:-1]])
    block_of = np.cumsum(np.r_[True, b_sorted[1:] != b_sorted[:-1]]) - 1
    is_sig = conf[order] >= SignalConf.LOW
    hs = h[order]
    top = np.maximum.reduceat(np.where(is_sig, hs, -np.inf), starts)
    bottom = np.minimum.reduceat(np.where(is_sig, hs, np.inf), starts)
    near = (hs >= bottom[block_of] - SF_BUFFER_M) & (hs <= top[block_of] + SF_BUFFER_M) & ~is_sig
    buffer_mask = np.zeros(n, dtype=bool)
    buffer_mask[order] = near
    conf[buffer_mask] = SignalConf.BUFFER
    return conf, excess


def _rank_in_group(a: IntArray, b: npt.NDArray[Any]) -> IntArray:
    """1-based rank of each element within its (a, b) group, in array order."""
    n = a.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((np.arange(n), b, a))
    a_s, b_s = a[order], b[order]
    new = np.r_[True, (a_s[1:] != a_s[:-1]) | (b_s[1:] != b_s[:-1])]
    idx = np.arange(n)
    group_start = np.maximum.accumulate(np.where(new, idx, 0))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = idx - group_start + 1
    return rank


def _simulate_chunk(ctx: _BeamContext, n0: int, n1: int, chunk: int) -> _Chunk:
    """Simulate shots ``[n0, n1)`` (n0 a multiple of SHOTS_PER_MAJOR_FRAME) of one beam."""
    rng = ctx.rng(chunk)
    world, track = ctx.world, ctx.track
    shots = np.arange(n0, n1, dtype=np.int64)
    s = shots * SHOT_SPACING_M
    x, y = track.beam_xy(ctx.beam, s)
    t_day = ctx.seconds_of_day0 + track.time_at(s)
    klass, freeboard, roughness = world.sample(x, y)
    mss = world.mss_m(x, y)
    surface = world.sea_surface_m(x, y, t_day) + freeboard
    factor = 1.0 if ctx.strong else WEAK_BEAM_FACTOR
    lam = np.asarray(SIGNAL_PHOTONS_PER_SHOT, dtype=np.float64)[klass]
    water = klass == SeaIceClass.OPEN_WATER
    if water.any():
        cell_u = hash_uniform(world.config.seed, _TAG_SPECULAR, np.floor(x[water] / SPECULAR_CELL_M),
                              np.floor(y[water] / SPECULAR_CELL_M))
        lam[np.flatnonzero(water)[cell_u < SPECULAR_FRACTION]] = SPECULAR_PHOTONS_PER_SHOT
    lam *= factor
    transmission = None if ctx.atmosphere is None else ctx.atmosphere.at(s)
    if transmission is not None:
        lam *= transmission
    lam[_in_gaps(s, ctx.gaps)] = 0.0

    # background rate per 50-shot row (sun) x per-shot albedo
    n_rows = (n1 - n0) // SHOTS_PER_BCKGRD_ROW + (1 if (n1 - n0) % SHOTS_PER_BCKGRD_ROW else 0)
    row_first = n0 + np.arange(n_rows, dtype=np.int64) * SHOTS_PER_BCKGRD_ROW
    row_mid_s = (row_first + SHOTS_PER_BCKGRD_ROW / 2.0) * SHOT_SPACING_M
    rx, ry = track.beam_xy(ctx.beam, row_mid_s)
    rlon, rlat = to_lonlat(rx, ry)
    elev, _ = solar_geometry(rlon, rlat, ctx.day_of_year, ctx.seconds_of_day0 + track.time_at(row_mid_s))
    row_rate = background_rate_hz(elev, ctx.strong)
    row_of_shot = (shots - n0) // SHOTS_PER_BCKGRD_ROW
    shot_rate = row_rate[row_of_shot] * np.asarray(BACKGROUND_ALBEDO)[klass]
    if transmission is not None:
        solar = row_rate - background_rate_hz(_BELOW_HORIZON_DEG, ctx.strong)
        shot_rate = shot_rate + solar[row_of_shot] * solar_background_change(
            np.asarray(BACKGROUND_ALBEDO)[klass], transmission)
    window_s = 2.0 * (2.0 * TLM_HALF_HEIGHT_M) / SPEED_OF_LIGHT_M_S
    n_sig = rng.poisson(lam)
    n_ap = rng.poisson(lam * AFTERPULSE_PROB)
    n_ir = rng.poisson(lam * IMPULSE_RESPONSE_PROB)
    n_bg = rng.poisson(shot_rate * window_s)

    sigma = np.sqrt(roughness**2 + SYSTEM_JITTER_M**2)
    idx_sig = np.repeat(np.arange(shots.size), n_sig)
    idx_ap = np.repeat(np.arange(shots.size), n_ap)
    idx_ir = np.repeat(np.arange(shots.size), n_ir)
    idx_bg = np.repeat(np.arange(shots.size), n_bg)
    h_sig = surface[idx_sig] + sigma[idx_sig] * rng.standard_normal(idx_sig.size)
    h_ap = (surface[idx_ap] - rng.uniform(*AFTERPULSE_DEPTH_M, idx_ap.size)
            + SYSTEM_JITTER_M * rng.standard_normal(idx_ap.size))
    h_ir = surface[idx_ir] - rng.uniform(*IMPULSE_RESPONSE_DEPTH_M, idx_ir.size)
    h_bg = mss[idx_bg] + rng.uniform(-TLM_HALF_HEIGHT_M, TLM_HALF_HEIGHT_M, idx_bg.size)
    idx = np.concatenate([idx_sig, idx_ap, idx_ir, idx_bg])
    h = np.concatenate([h_sig, h_ap, h_ir, h_bg])
    kind = np.concatenate([np.full(idx_sig.size, PHOTON_KIND_SURFACE), np.full(idx_ap.size + idx_ir.size,
                           PHOTON_KIND_AFTERPULSE), np.full(idx_bg.size, PHOTON_KIND_BACKGROUND)]).astype(np.uint8)
    quality = np.concatenate([np.full(idx_sig.size, _QUALITY_NOMINAL), np.full(idx_ap.size, _QUALITY_AFTERPULSE),
                              np.full(idx_ir.size, _QUALITY_IMPULSE_RESPONSE),
                              np.full(idx_bg.size, _QUALITY_NOMINAL)]).astype(np.int8)
    order = np.lexsort((-h, idx))  # by shot, then by receive time (highest first)
    idx, h, kind, quality = idx[order], h[order], kind[order], quality[order]
    shot = shots[idx]

    lam_bg = (shot_rate[idx] * (2.0 * 2.0 * SF_HALF_WINDOW_M / SPEED_OF_LIGHT_M_S) * SF_BLOCK_SHOTS)
    conf_ice, excess = _signal_finder(shot, h, lam_bg)
    conf = np.full((h.size, _N_SURF), SignalConf.NOT_CONSIDERED, dtype=np.int8)
    conf[:, SurfaceType.SEA_ICE] = conf_ice
    conf[:, SurfaceType.OCEAN] = conf_ice
    weight = np.clip(np.rint(_WEIGHT_MAX * (1.0 - np.exp(-np.maximum(excess, 0.0) / WEIGHT_SCALE_COUNTS))),
                     0, _WEIGHT_MAX).astype(np.uint8)

    channel = ctx.channels[rng.integers(0, ctx.channels.size, h.size)]
    count = np.minimum(_rank_in_group(shot, channel), np.iinfo(np.uint8).max).astype(np.uint8)
    s_ph = shot * SHOT_SPACING_M
    segment = np.floor(s_ph / SEGMENT_LENGTH_M).astype(np.int64)
    dist_along = np.minimum((s_ph - segment * SEGMENT_LENGTH_M).astype(np.float32),
                            np.nextafter(np.float32(SEGMENT_LENGTH_M), np.float32(0.0)))
    lon, lat = to_lonlat(x, y)
    photons: dict[str, npt.NDArray[Any]] = {
        "h_ph": h.astype(np.float32),
        "lat_ph": lat[idx],
        "lon_ph": lon[idx],
        "delta_time": ctx.delta_time0 + shot / SHOT_RATE_HZ,
        "dist_ph_along": dist_along,
        "dist_ph_across": (track.across_offset_m(ctx.beam)
                           + _FOOTPRINT_SIGMA_M * rng.standard_normal(h.size)).astype(np.float32),
        "signal_conf_ph": conf,
        "quality_ph": quality,
        "ph_id_pulse": (shot % SHOTS_PER_MAJOR_FRAME + 1).astype(np.uint8),
        "pce_mframe_cnt": ((ctx.mframe0 + shot // SHOTS_PER_MAJOR_FRAME) % _MFRAME_MODULO).astype(np.uint32),
        "ph_id_channel": channel,
        "ph_id_count": count,
        "weight_ph": weight,
    }
    bckgrd = _bckgrd_rows(ctx, rng, row_first, shot_rate, n_sig + n_ap + n_ir, mss, n0, n1)
    return _Chunk(photons=photons, segment=segment, x_atc=track.x_atc0_m + s_ph, kind=kind,
                  klass=klass[idx], surface=surface[idx].astype(np.float32), bckgrd=bckgrd)


def _bckgrd_rows(ctx: _BeamContext, rng: np.random.Generator, row_first: IntArray, shot_rate: FloatArray,
                 n_signal: IntArray, mss: FloatArray, n0: int, n1: int) -> dict[str, npt.NDArray[Any]]:
    """``bckgrd_atlas`` rows (one per 50 shots) of a chunk."""
    starts = row_first - n0
    mean_rate = np.add.reduceat(shot_rate, starts) / np.diff(np.r_[starts, n1 - n0])
    int_s = SHOTS_PER_BCKGRD_ROW * 2.0 * BCKGRD_INT_HEIGHT_M / SPEED_OF_LIGHT_M_S
    reduced_h = BCKGRD_INT_HEIGHT_M - BCKGRD_SIGNAL_BAND_M
    total_bg = rng.poisson(mean_rate * int_s)
    reduced = rng.binomial(total_bg, reduced_h / BCKGRD_INT_HEIGHT_M)
    rate = reduced / (SHOTS_PER_BCKGRD_ROW * 2.0 * reduced_h / SPEED_OF_LIGHT_M_S)
    counts = total_bg + np.add.reduceat(n_signal, starts)
    top = mss[starts] + TLM_HALF_HEIGHT_M
    n_rows = row_first.size
    return {
        "delta_time": ctx.delta_time0 + (row_first + SHOTS_PER_BCKGRD_ROW / 2.0) / SHOT_RATE_HZ,
        "pce_mframe_cnt": ctx.mframe0 + row_first // SHOTS_PER_MAJOR_FRAME,
        "bckgrd_counts": counts.astype(np.int32),
        "bckgrd_counts_reduced": reduced.astype(np.int32),
        "bckgrd_rate": rate.astype(np.float32),
        "bckgrd_int_height": np.full(n_rows, BCKGRD_INT_HEIGHT_M, dtype=np.float32),
        "bckgrd_int_height_reduced": np.full(n_rows, reduced_h, dtype=np.float32),
        "bckgrd_hist_top": (mss[starts] + BCKGRD_INT_HEIGHT_M / 2.0).astype(np.float32),
        "tlm_top_band1": top.astype(np.float32),
        "tlm_height_band1": np.full(n_rows, 2.0 * TLM_HALF_HEIGHT_M, dtype=np.float32),
        "tlm_top_band2": np.zeros(n_rows, dtype=np.float32),
        "tlm_height_band2": np.zeros(n_rows, dtype=np.float32),
    }


def _segment_tables(ctx: _BeamContext, n_segments: int, counts: IntArray,
                    ) -> tuple[dict[str, npt.NDArray[Any]], dict[str, npt.NDArray[Any]]]:
    """``geolocation`` and ``geophys_corr`` arrays of a beam with ``n_segments`` 20 m segments."""
    world, track = ctx.world, ctx.track
    k = np.arange(n_segments, dtype=np.int64)
    s_mid = (k + 0.5) * SEGMENT_LENGTH_M
    x, y = track.beam_xy(ctx.beam, s_mid)
    lon, lat = to_lonlat(x, y)
    t_rel = track.time_at(s_mid)
    t_day = ctx.seconds_of_day0 + t_rel
    elev, az = solar_geometry(lon, lat, ctx.day_of_year, t_day)
    cnt = counts.astype(np.int64)
    beg = np.where(cnt > 0, np.cumsum(cnt) - cnt + 1, 0)
    surf = np.zeros((n_segments, _N_SURF), dtype=np.int8)
    surf[:, SurfaceType.OCEAN] = 1
    surf[:, SurfaceType.SEA_ICE] = 1
    delta_time = ctx.delta_time0 + t_rel
    geolocation: dict[str, npt.NDArray[Any]] = {
        "segment_id": (int(track.x_atc0_m // SEGMENT_LENGTH_M) + k).astype(np.int32),
        "segment_dist_x": track.x_atc0_m + k * SEGMENT_LENGTH_M,
        "segment_length": np.full(n_segments, SEGMENT_LENGTH_M, dtype=np.float64),
        "ph_index_beg": beg.astype(np.int64),
        "segment_ph_cnt": cnt.astype(np.int32),
        "reference_photon_index": np.where(cnt > 0, np.maximum(cnt // 2, 1), 0).astype(np.int32),
        "reference_photon_lat": lat,
        "reference_photon_lon": lon,
        "solar_elevation": elev.astype(np.float32),
        "solar_azimuth": az.astype(np.float32),
        "surf_type": surf,
        "delta_time": delta_time,
    }
    mss = world.mss_m(x, y)
    mdt = _MDT_MEAN_M + _MDT_AMPLITUDE_M * np.sin(2 * np.pi * x / _MDT_WAVELENGTH_M[0]) * np.cos(
        2 * np.pi * y / _MDT_WAVELENGTH_M[1])
    p2 = 1.5 * np.sin(np.radians(lat)) ** 2 - 0.5
    phase = 2 * np.pi * t_day / _M2_PERIOD_S + x / 1e6
    geophys: dict[str, npt.NDArray[Any]] = {
        "delta_time": delta_time,
        "dem_h": mss,
        "dem_flag": np.full(n_segments, _DEM_FLAG_MSS, dtype=np.int8),
        "geoid": mss - mdt,
        "geoid_free2mean": _GEOID_FREE2MEAN_COEF_M * p2,
        "tide_ocean": world.tide_ocean_m(x, y, t_day),
        "tide_equilibrium": world.tide_equilibrium_m(x, y, t_day),
        "dac": world.dac_m(x, y, t_day),
        "tide_earth": _TIDE_EARTH_AMPLITUDE_M * np.cos(phase),
        "tide_earth_free2mean": _TIDE_EARTH_FREE2MEAN_COEF_M * p2,
        "tide_load": _TIDE_LOAD_MEAN_M + _TIDE_LOAD_AMPLITUDE_M * np.sin(phase),
        "tide_pole": _TIDE_POLE_AMPLITUDE_M * np.sin(y / 1e6 + x / 2e6),
        "tide_oc_pole": _TIDE_OC_POLE_AMPLITUDE_M * np.cos(x / 1e6),
    }
    for name, values in geophys.items():
        if name not in ("delta_time", "dem_flag"):
            geophys[name] = np.asarray(values, dtype=np.float32)
    return geolocation, geophys


# ----------------------------------------------------------------------------------------------
# HDF5 writing
# ----------------------------------------------------------------------------------------------


def _group(parent: h5py.Group, path: str, attrs: Mapping[str, Any] | None = None) -> h5py.Group:
    """Get or create nested groups without object timestamps (deterministic bytes)."""
    node = parent
    for name in path.strip("/").split("/"):
        if name not in node:
            gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
            gcpl.set_obj_track_times(False)
            h5py.h5g.create(node.id, name.encode(), gcpl=gcpl)
        node = node[name]
    for key, value in (attrs or {}).items():
        node.attrs[key] = _attr(value)
    return node


def _attr(value: Any) -> Any:
    """Fixed-length byte strings for text (as in the real files), other values unchanged."""
    return np.bytes_(value.encode()) if isinstance(value, str) else value


def _create(group: h5py.Group, name: str, data: npt.ArrayLike, *, key: str | None = None,
            resizable: bool = True) -> h5py.Dataset:
    """Create a chunked, gzip-compressed dataset with the real attributes (no timestamps)."""
    arr = np.asarray(data)
    maxshape = (None, *arr.shape[1:]) if resizable else arr.shape
    chunks = (_H5_CHUNK_ROWS, *arr.shape[1:]) if resizable else None
    ds = group.create_dataset(name, data=arr, maxshape=maxshape, chunks=chunks,
                              compression="gzip" if resizable else None,
                              compression_opts=_GZIP_LEVEL if resizable else None, track_times=False)
    meta = _ATTRS.get(key or "")
    if meta is not None:
        units, long_name, fill = meta
        ds.attrs["units"] = _attr(units)
        ds.attrs["long_name"] = _attr(long_name)
        if fill is not None:
            ds.attrs["_FillValue"] = fill
    flags = _FLAGS.get(key or "")
    if flags is not None:
        ds.attrs["flag_values"] = flags[0]
        ds.attrs["flag_meanings"] = _attr(flags[1])
    return ds


def _append(group: h5py.Group, sub: str, arrays: Mapping[str, npt.NDArray[Any]],
            dtypes: Mapping[str, npt.DTypeLike]) -> None:
    """Append rows to the resizable datasets ``group/name`` (created empty on first use)."""
    for name, dtype in dtypes.items():
        values = np.asarray(arrays[name], dtype=dtype)
        if name not in group:
            _create(group, name, np.empty((0, *values.shape[1:]), dtype=dtype), key=f"{sub}/{name}")
        ds = group[name]
        n_old = ds.shape[0]
        ds.resize(n_old + values.shape[0], axis=0)
        ds[n_old:] = values


def _write_root(f: h5py.File, name: str, track: Track, config: SimConfig, t0: dt.datetime,
                t1: dt.datetime) -> None:
    """Root attributes, METADATA, orbit_info and ancillary_data (deterministic: no creation dates)."""
    root = {
        "short_name": "ATL03", "identifier_product_type": "ATL03", "granule_type": "ATL03",
        "level": "L2", "Conventions": "CF-1.6", "featureType": "trajectory",
        "identifier_product_doi": f"doi:10.5067/ATLAS/ATL03.{config.release:03d}",
        "description": ("This data set (ATL03) contains height above the WGS 84 ellipsoid (ITRF2014 reference "
                        "frame), latitude, longitude, and time for all photons downlinked by the ATLAS "
                        "instrument. SIMULATED by seaice_tasks.sim.atl03."),
        "source": "Simulation (seaice_tasks.sim)", "time_type": "CCSDS UTC-A",
        "time_coverage_start": t0.strftime(_ISO_Z), "time_coverage_end": t1.strftime(_ISO_Z),
    }
    for key, value in root.items():
        f.attrs[key] = _attr(value)
    _group(f, "METADATA", {"Description": "ISO19115 Structured Metadata Represented within HDF5"})
    _group(f, "METADATA/DatasetIdentification", {
        "shortName": "ATL03", "VersionID": f"{config.release:03d}", "fileName": name,
        "abstract": "Simulated ATL03 granule (seaice_tasks.sim.atl03) in the release-006 layout.",
        "characterSet": "utf8", "language": "eng", "spatialRepresentationType": "along-track",
        "status": "onGoing", "topicCategory": "geoscientificInformation",
    })
    _group(f, "METADATA/Extent", {"rangeBeginningDateTime": t0.strftime(_ISO_Z),
                                  "rangeEndingDateTime": t1.strftime(_ISO_Z)})
    orbit = _group(f, "orbit_info")
    _create(orbit, "sc_orient", np.array([config.sc_orient], dtype=np.int8), resizable=False)
    _create(orbit, "rgt", np.array([track.rgt], dtype=np.int16), resizable=False)
    _create(orbit, "cycle_number", np.array([track.cycle], dtype=np.int8), resizable=False)
    anc = _group(f, "ancillary_data")
    _create(anc, "atlas_sdp_gps_epoch", np.array([ATLAS_SDP_GPS_EPOCH_S]), resizable=False)
    d0, d1 = utc_to_delta_time(t0), utc_to_delta_time(t1)
    for key, when in (("data_start_utc", t0), ("data_end_utc", t1), ("granule_start_utc", t0),
                      ("granule_end_utc", t1)):
        text = when.strftime(_ISO_Z).encode()
        _create(anc, key, np.array([text], dtype=f"S{len(text)}"), resizable=False)
    _create(anc, "start_delta_time", np.array([d0]), resizable=False)
    _create(anc, "end_delta_time", np.array([d1]), resizable=False)
    for key, number in (("start_rgt", track.rgt), ("end_rgt", track.rgt), ("start_cycle", track.cycle),
                        ("end_cycle", track.cycle), ("start_region", track.region), ("end_region", track.region)):
        _create(anc, key, np.array([number], dtype=np.int32), resizable=False)


def _write_fpb_tables(f: h5py.File) -> None:
    """CAL-19 tables with the real axes and ffb_corr = 0 ps (the simulated detector has no bias)."""
    dead = np.asarray(_FPB_DEAD_TIME_NS, dtype=np.float64)
    strength = (np.arange(_FPB_N_STRENGTH) + 1) * _FPB_STRENGTH_STEP
    width = (np.arange(_FPB_N_WIDTH) + 1) * _FPB_WIDTH_STEP_NS
    for beam in BEAMS:
        g = _group(f, f"ancillary_data/calibrations/first_photon_bias/{beam}")
        _create(g, "dead_time", dead, resizable=False)
        _create(g, "strength", strength, resizable=False)
        _create(g, "width", width, resizable=False)
        _create(g, "ffb_corr", np.zeros((dead.size, strength.size, width.size), dtype=np.float32), resizable=False)


def _beam_attrs(beam: str, strong: bool, sc_orient: int) -> dict[str, str]:
    spots = _BEAM_SPOT_FORWARD if sc_orient == int(ScOrient.FORWARD) else _BEAM_SPOT_BACKWARD
    return {
        "Description": "Each group contains the segments for one Ground Track.",
        "atlas_beam_type": "strong" if strong else "weak",
        "atlas_pce": spots[beam][1], "atlas_spot_number": spots[beam][0], "groundtrack_id": beam,
        "sc_orientation": _SC_ORIENTATION_TEXT.get(sc_orient, "Transition"),
    }


@dataclasses.dataclass
class _BeamResult:
    """What a beam writer returns to the caller (truth arrays only when requested)."""

    n_photons: int
    n_shots: int
    kind: list[npt.NDArray[np.uint8]]
    klass: list[npt.NDArray[np.uint8]]
    surface: list[npt.NDArray[np.float32]]
    signal_x_atc: list[FloatArray]


def _chunk_ranges(n_shots: int) -> Iterator[tuple[int, int, int]]:
    for chunk, n0 in enumerate(range(0, n_shots, _CHUNK_SHOTS)):
        yield chunk, n0, min(n0 + _CHUNK_SHOTS, n_shots)


def _write_beam(f: h5py.File, ctx: _BeamContext, sc_orient: int, n_shots: int | None,
                n_photons_min: int | None, keep_truth: bool) -> _BeamResult:
    """Stream one beam into ``f``: either ``n_shots`` shots or until ``n_photons_min`` photons."""
    g = _group(f, ctx.beam, _beam_attrs(ctx.beam, ctx.strong, sc_orient))
    heights, bckgrd = _group(g, "heights"), _group(g, "bckgrd_atlas")
    _group(g, "geolocation")
    _group(g, "geophys_corr")
    counts = np.zeros(0, dtype=np.int64)
    res = _BeamResult(0, 0, [], [], [], [])
    limit = n_shots if n_shots is not None else np.iinfo(np.int64).max
    chunk, n0 = 0, 0
    while n0 < limit and (n_photons_min is None or res.n_photons < n_photons_min):
        n1 = min(n0 + _CHUNK_SHOTS, limit)
        part = _simulate_chunk(ctx, n0, n1, chunk)
        _append(heights, "heights", part.photons, _PHOTON_DTYPES)
        _append(bckgrd, "bckgrd_atlas", part.bckgrd, _BCKGRD_DTYPES)
        n_seg = math.floor((n1 - 1) * SHOT_SPACING_M / SEGMENT_LENGTH_M) + 1
        add = np.bincount(part.segment, minlength=n_seg)
        grown = np.zeros(n_seg, dtype=np.int64)
        grown[:counts.size] = counts
        counts = grown + add[:n_seg]
        res.n_photons += int(part.segment.size)
        if keep_truth:
            res.kind.append(part.kind)
            res.klass.append(part.klass)
            res.surface.append(part.surface)
            res.signal_x_atc.append(part.x_atc[part.kind == PHOTON_KIND_SURFACE])
        log.debug("%s: shots [%d, %d) -> %d photons", ctx.beam, n0, n1, part.segment.size)
        chunk, n0 = chunk + 1, n1
    res.n_shots = n0
    geolocation, geophys = _segment_tables(ctx, counts.size, counts)
    for name, values in geolocation.items():
        _create(g["geolocation"], name, values, key=f"geolocation/{name}")
    for name, values in geophys.items():
        _create(g["geophys_corr"], name, values, key=f"geophys_corr/{name}")
    return res


def _new_file(path: Path) -> h5py.File:
    """A new HDF5 file whose root group has no timestamps."""
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_obj_track_times(False)
    fid = h5py.h5f.create(os.fsencode(path), h5py.h5f.ACC_TRUNC, fcpl=fcpl)
    return h5py.File(fid)


# ----------------------------------------------------------------------------------------------
# Truth
# ----------------------------------------------------------------------------------------------


def _truth_bins(ctx: _BeamContext, n_shots: int, signal_x_atc: FloatArray,
                profile: TransmissionProfile) -> pd.DataFrame:
    """One row per absolute 2 m bin covered by the beam's shots."""
    track, world = ctx.track, ctx.world
    x_first = track.x_atc0_m
    x_last = track.x_atc0_m + (n_shots - 1) * SHOT_SPACING_M
    b0 = math.floor(x_first / _TRUTH_BIN_M)
    b1 = math.floor(x_last / _TRUTH_BIN_M)
    bins = np.arange(b0, b1 + 1, dtype=np.int64)
    s_c = (bins + 0.5) * _TRUTH_BIN_M - track.x_atc0_m
    x, y = track.beam_xy(ctx.beam, s_c)
    t_day = ctx.seconds_of_day0 + track.time_at(s_c)
    klass, freeboard, _ = world.sample(x, y)
    n_sig = np.bincount(np.floor(signal_x_atc / _TRUTH_BIN_M).astype(np.int64) - b0, minlength=bins.size)
    return pd.DataFrame({
        "beam": ctx.beam,
        "x_atc_m": bins * int(_TRUTH_BIN_M),
        "class": klass,
        "sea_surface_m": world.sea_surface_m(x, y, t_day),
        "freeboard_m": freeboard,
        "mss_m": world.mss_m(x, y),
        "tide_ocean_m": world.tide_ocean_m(x, y, t_day),
        "tide_equilibrium_m": world.tide_equilibrium_m(x, y, t_day),
        "dac_m": world.dac_m(x, y, t_day),
        "residual_m": world.residual_m(x, y),
        "n_signal_photons": n_sig[:bins.size].astype(np.int32),
        "in_cloud_gap": _in_gaps(s_c, ctx.gaps),
        "transmission": profile.at(s_c),
    })


def _model_constants() -> dict[str, Any]:
    return {
        "shot_spacing_m": SHOT_SPACING_M, "signal_photons_per_shot_strong": list(SIGNAL_PHOTONS_PER_SHOT),
        "specular_photons_per_shot_strong": SPECULAR_PHOTONS_PER_SHOT, "specular_fraction": SPECULAR_FRACTION,
        "weak_beam_factor": WEAK_BEAM_FACTOR, "system_jitter_m": SYSTEM_JITTER_M,
        "afterpulse_prob": AFTERPULSE_PROB, "impulse_response_prob": IMPULSE_RESPONSE_PROB,
        "tlm_half_height_m": TLM_HALF_HEIGHT_M, "background_night_rate_hz": BACKGROUND_NIGHT_RATE_HZ,
        "background_rate_per_sin_elev_hz": BACKGROUND_RATE_PER_SIN_ELEV_HZ,
        "background_albedo": list(BACKGROUND_ALBEDO), "bckgrd_int_height_m": BCKGRD_INT_HEIGHT_M,
        "sf_block_shots": SF_BLOCK_SHOTS, "sf_half_window_m": SF_HALF_WINDOW_M,
        "ffb_corr_ps": 0.0, "cloud_backscatter_albedo": CLOUD_BACKSCATTER_ALBEDO,
    }


# ----------------------------------------------------------------------------------------------
# Public writers
# ----------------------------------------------------------------------------------------------


def write_atl03_granule(world: TruthWorld, track: Track, config: SimConfig, out_dir: Path,
                        truth_dir: Path) -> Path:
    """Write one simulated ATL03 granule (6 beams) and its truth.

    Parameters
    ----------
    world : TruthWorld
        The truth world (sampled with no drift shift: the ice at the ICESat-2 time).
    track : Track
        The granule's reference ground track (length, start time, x_atc of the first shot).
    config : SimConfig
        Day settings: ``sc_orient`` (strong beams), ``release`` (file name / metadata) and
        ``seed`` (photon draws and cloud gaps, together with the world seed).
    out_dir, truth_dir : Path
        Where the HDF5 file and the truth files go (created if needed).

    Returns
    -------
    Path
        ``out_dir / ATL03_<start>_<rgt><cycle><region>_<release>_01.h5``; the truth files are at
        :func:`truth_paths` ``(truth_dir, name)``.

    Examples
    --------
    >>> import tempfile
    >>> cfg = SimConfig(granules=1, km=1)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = write_atl03_granule(TruthWorld(cfg.world), plan_day(cfg).tracks[0], cfg, Path(d), Path(d))
    ...     p.name.endswith("_006_01.h5") and truth_paths(Path(d), p.name).bins.exists()
    True
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    truth_dir.mkdir(parents=True, exist_ok=True)
    name = granule_file_name(track, config)
    path = out_dir / name
    n_shots = math.floor(track.length_m / SHOT_SPACING_M) + 1
    t1 = track.start_utc + dt.timedelta(seconds=float(track.time_at((n_shots - 1) * SHOT_SPACING_M)))
    gaps = cloud_gaps(track, config.seed)
    profile = transmission_profile(config.atmosphere, config.seed, track.rgt, track.length_m)
    atmosphere = None if config.atmosphere.clear else profile
    photon_frames: list[pd.DataFrame] = []
    bin_frames: list[pd.DataFrame] = []
    with _new_file(path) as f:
        _write_root(f, name, track, config, track.start_utc, t1)
        _write_fpb_tables(f)
        for beam in BEAMS:
            ctx = _beam_context(world, track, beam, config.sc_orient, config.seed, gaps, atmosphere)
            res = _write_beam(f, ctx, config.sc_orient, n_shots, None, keep_truth=True)
            kind = np.concatenate(res.kind)
            photon_frames.append(pd.DataFrame({
                "beam": pd.Categorical.from_codes(np.full(kind.size, _BEAM_INDEX[beam], dtype=np.int8),
                                                  categories=list(BEAMS)),
                "photon_index": np.arange(kind.size, dtype=np.int64),
                "class": np.concatenate(res.klass), "surface_height_m": np.concatenate(res.surface),
                "kind": kind, "is_signal": kind == PHOTON_KIND_SURFACE,
            }))
            bin_frames.append(_truth_bins(ctx, res.n_shots, np.concatenate(res.signal_x_atc), profile))
            log.info("%s %s (%s): %d photons", name, beam, "strong" if ctx.strong else "weak", res.n_photons)
    paths = truth_paths(truth_dir, name)
    pd.concat(photon_frames, ignore_index=True).to_parquet(paths.photons, index=False)
    pd.concat(bin_frames, ignore_index=True).to_parquet(paths.bins, index=False)
    meta = {
        "granule": name, "track": track.granule, "rgt": track.rgt, "x_atc0_m": track.x_atc0_m,
        "length_m": track.length_m, "n_shots": n_shots, "sc_orient": config.sc_orient,
        "world_seed": world.config.seed, "day_seed": config.seed,
        "cloud_gaps": [{"s_start_m": float(a), "s_end_m": float(b), "x_atc_start_m": track.x_atc0_m + float(a),
                        "x_atc_end_m": track.x_atc0_m + float(b)} for a, b in gaps],
        "atmosphere": dict(profile.to_doc(track.x_atc0_m, track.length_m), config=config.atmosphere.to_dict()),
        "model": _model_constants(),
    }
    paths.meta.write_text(json.dumps(meta, indent=2, sort_keys=True))
    log.info("wrote %s (+ truth in %s)", path, truth_dir)
    return path


def write_benchmark_beam(out_path: Path, world: TruthWorld, n_photons: int = 20_000_000, seed: int = 0) -> Path:
    """Stream one strong beam (``gt1r``) of at least ``n_photons`` photons into ``out_path``.

    The along-track length is whatever that many photons need (about 6.3 photons per shot, so
    ~2000 km for 20 M); shots are generated and appended ``_CHUNK_SHOTS`` at a time into
    resizable datasets, so the peak memory does not depend on ``n_photons`` (a few hundred MB).
    The file has the granule layout (one beam) and no truth.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = write_benchmark_beam(Path(d) / "b.h5", TruthWorld(), n_photons=5_000)
    ...     with h5py.File(p) as f:
    ...         f["gt1r/heights/h_ph"].shape[0] >= 5_000
    True
    """
    config = SimConfig(seed=seed, granules=1, km=1.0, world=world.config)
    track = plan_day(config).tracks[0]
    beam = "gt1r"
    ctx = _beam_context(world, track, beam, int(ScOrient.FORWARD), seed, np.zeros((0, 2)))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    name = granule_file_name(track, config)
    with _new_file(out_path) as f:
        _write_root(f, name, track, config, track.start_utc, track.start_utc)
        res = _write_beam(f, ctx, int(ScOrient.FORWARD), None, n_photons, keep_truth=False)
    log.info("benchmark beam %s: %d photons, %d shots (%.0f km)", out_path, res.n_photons, res.n_shots,
             res.n_shots * SHOT_SPACING_M / 1000.0)
    return out_path
