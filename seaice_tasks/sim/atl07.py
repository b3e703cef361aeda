"""Emulation of NASA's ATL07 (sea-ice heights) and ATL10 (freeboard) from an ATL03 granule.

Works from the ATL03 *layout* through :mod:`seaice_tasks.io.atl03`, so it runs on the
simulator's granules and on real ATL03 files alike.  Method, thresholds and their provenance,
differences from NASA's processing and measured numbers: ``docs/simulator_atl07_atl10.md``.

ATL07 emulation, per beam (vectorised; one loop per photon chunk only):

1. Signal photons: ``signal_conf_ph[:, 2] >= signal_conf_min`` (sea-ice column, medium/high),
   ``quality_ph == 0`` (optional) and finite height, in along-track order.
2. Segments: consecutive groups of ``photons_per_segment`` (150) signal photons, restarted at
   along-track photon gaps > ``max_photon_gap_m``; groups with fewer than
   ``min_photons_per_segment`` photons (run tails) are dropped.  ~150 photons give 10-200 m
   strong-beam segments and longer weak-beam segments, as ATL07.
3. Height: a trimmed mean (photons within ``max(trim_n_sigma * 1.4826 * MAD, trim_floor_m)`` of
   the median), a stand-in for the fine tracker's waveform fit; ``height_segment_w_gaussian`` =
   the trimmed photons' standard deviation; ``surface_error_est`` = w / sqrt(n_used).
   ``height_segment_height = h - MSS - tide_ocean - tide_equilibrium - DAC`` (DAC standing in for
   ATL07's inverted barometer), with the MSS = ATL03 ``dem_h`` where ``dem_flag == 3``; all
   corrections interpolated from the 20 m segments to the segment centre by along-track distance.
4. Surface type (ATBD-style decision on photon rate, width and background; see
   :func:`classify_surface`) and ``height_segment_ssh_flag`` = 1 for specular leads (types 2-5).

ATL10 emulation: :func:`seaice_tasks.sim.atl10.emulate_atl10_beam`.

Examples
--------
>>> ATL07EmulationConfig().photons_per_segment
150
>>> atl07_atl10_names("ATL03_20191104195311_05940510_006_01.h5", hemisphere=2)
('ATL07-02_20191104195311_05940501_006_01.h5', 'ATL10-02_20191104195311_05940501_006_01.h5')
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Final, Literal

import h5py
import numpy as np
import numpy.typing as npt
import pandas as pd

from seaice_tasks.config import JsonConfig
from seaice_tasks.constants import (
    H5_FILL_FLOAT32,
    SEGMENT_LENGTH_M,
    SHOTS_PER_MAJOR_FRAME,
    ATL07SurfaceType,
    SurfaceType,
)
from seaice_tasks.errors import ConfigError, MissingVariableError
from seaice_tasks.granule import GranuleId
from seaice_tasks.io.atl03 import (
    PhotonBlock,
    iter_segment_chunks,
    read_atl03_info,
    read_bckgrd,
    read_photons,
    read_segments,
)
from seaice_tasks.sim.atl10 import ATL10_SECTION_LENGTH_M, SIGMA_FLOOR_M, emulate_atl10_beam

__all__ = [
    "ATL07EmulationConfig",
    "ATL07_COLUMNS_WRITTEN",
    "ATL07_LAYOUT",
    "ATL10_FREEBOARD_LAYOUT",
    "ATL10_LEADS_LAYOUT",
    "ATL10_REFSURF_LAYOUT",
    "emulate_atl07_beam",
    "classify_surface",
    "atl07_atl10_names",
    "write_atl07_atl10",
    "emulate_atl10_beam",
]

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Strength = Literal["strong", "weak", "unknown"]

#: MAD -> standard deviation of a normal distribution.
_MAD_TO_SIGMA: Final[float] = 1.4826
#: ``dem_flag`` value meaning ``dem_h`` is the mean sea surface (METHOD.md §1.2).
DEM_FLAG_MSS: Final[int] = 3
#: Rows of ``bckgrd_atlas`` (200 Hz) averaged into a 25 Hz background rate.
_BCKGRD_ROWS_PER_25HZ: Final[int] = 8
#: Region field of ATL07/ATL10 file names (one file per orbit half, METHOD.md §1.3).
PRODUCT_REGION: Final[int] = 1
#: Revision written into the product file names.
PRODUCT_REVISION: Final[int] = 1
#: Hemisphere suffix: ``-01`` Arctic, ``-02`` Antarctic.
HEMISPHERE_NORTH: Final[int] = 1
HEMISPHERE_SOUTH: Final[int] = 2
_FILL_INT8: Final[int] = -1
_SPECULAR_TYPES: Final[tuple[int, ...]] = (
    int(ATL07SurfaceType.SPECULAR_LEAD_LOW_W_BKG),
    int(ATL07SurfaceType.SPECULAR_LEAD_LOW),
    int(ATL07SurfaceType.SPECULAR_LEAD_HIGH_W_BKG),
    int(ATL07SurfaceType.SPECULAR_LEAD_HIGH),
)


@dataclasses.dataclass(frozen=True)
class ATL07EmulationConfig(JsonConfig):
    """Knobs of the ATL07/ATL10 emulation (provenance in docs/simulator_atl07_atl10.md).

    Attributes
    ----------
    signal_conf_min : int
        Minimum ``signal_conf_ph[:, 2]`` (sea-ice column) of a signal photon; 3 = medium+high, the
        ATL07 fine tracker's "high-confidence" photons (METHOD.md §3.1).
    require_nominal_quality : bool
        Drop photons with ``quality_ph != 0`` (afterpulse / impulse response / TEP).
    photons_per_segment : int
        Signal photons aggregated per ATL07 segment (ATL07: ~150).
    min_photons_per_segment : int
        Smaller groups (tails of photon runs) are dropped.
    max_photon_gap_m : float
        Along-track gap between consecutive signal photons (m) that closes a segment.
    trim_n_sigma, trim_floor_m : float
        Photons farther than ``max(trim_n_sigma * robust_sigma, trim_floor_m)`` (m) from the
        segment median are trimmed before the mean/width.
    remove_dac : bool
        Subtract ATL03's DAC (our stand-in for ATL07's inverted barometer) from the heights.
    reference_window_segments : int
        Running-median window (segments) of the photon rate that normalises it (relative rate).
    cloud_photon_rate : float
        Strong-beam photon rate (signal photons/shot) below which a segment is cloud-covered
        (ATBD P1 = 0.5); multiplied by ``weak_beam_gain`` for weak beams.
    weak_beam_gain : float
        Weak/strong beam energy ratio (~1/4).
    specular_rel_rate, specular_high_rel_rate : float
        Relative photon rate from which a narrow segment is a specular lead (low / high): ATBD
        P2 = 2.5 and P3 = 11 photons/shot over the 1-2 photons/shot of real strong-beam ice, and
        low enough for the simulator's specular/ice ratio 10/5 (docs/simulator_atl07_atl10.md).
    dark_rel_rate : float
        Relative photon rate up to which a narrow segment is a dark lead.
    specular_max_width_m, dark_rough_max_width_m : float
        Gaussian-width limits (m) for specular / smooth-dark (ATBD W1 = 0.13) and rough-dark
        (W2 = 0.17) leads.
    high_background_hz : float
        ``backgr_r_200`` (counts/s) above which a lead gets the ``_w_bkg`` type (ATBD B1 = 4 MHz).
    section_length_m : float
        ATL10 reference-surface section length (m; NASA: 10 km).
    sigma_floor_m : float
        Floor of the per-segment height uncertainty in the lead equation (m).
    max_photons_per_chunk : int
        ATL03 photons read at a time per beam (bounded memory).
    """

    kind: ClassVar[str] = "atl07_emulation"
    signal_conf_min: int = 3
    require_nominal_quality: bool = True
    photons_per_segment: int = 150
    min_photons_per_segment: int = 50
    max_photon_gap_m: float = 200.0
    trim_n_sigma: float = 3.0
    trim_floor_m: float = 0.15
    remove_dac: bool = True
    reference_window_segments: int = 201
    cloud_photon_rate: float = 0.5
    weak_beam_gain: float = 0.25
    specular_rel_rate: float = 1.6
    specular_high_rel_rate: float = 7.0
    dark_rel_rate: float = 0.5
    specular_max_width_m: float = 0.13
    dark_rough_max_width_m: float = 0.17
    high_background_hz: float = 4.0e6
    section_length_m: float = ATL10_SECTION_LENGTH_M
    sigma_floor_m: float = SIGMA_FLOOR_M
    max_photons_per_chunk: int = 2_000_000

    def __post_init__(self) -> None:
        if not 0 < self.min_photons_per_segment <= self.photons_per_segment:
            raise ConfigError("ATL07EmulationConfig: need 0 < min_photons_per_segment <= photons_per_segment")
        if self.max_photon_gap_m <= 0 or self.section_length_m <= 0 or self.sigma_floor_m <= 0:
            raise ConfigError("ATL07EmulationConfig: gap, section length and sigma floor must be positive")
        if self.reference_window_segments < 1 or self.max_photons_per_chunk < 1:
            raise ConfigError("ATL07EmulationConfig: window and chunk sizes must be >= 1")


_DEFAULT: Final[ATL07EmulationConfig] = ATL07EmulationConfig()

# ----------------------------------------------------------------------------------------------
# Photon selection and grouping
# ----------------------------------------------------------------------------------------------

_Sig = dict[str, npt.NDArray[Any]]
_SIG_KEYS: Final[tuple[str, ...]] = ("h", "x", "lat", "lon", "t", "shot", "seg_id")


def _signal_photons(block: PhotonBlock, cfg: ATL07EmulationConfig) -> _Sig:
    """Signal photons of a block as compact arrays sorted by along-track distance."""
    conf = block.signal_conf[:, int(SurfaceType.SEA_ICE)] if len(block) else np.empty(0, np.int8)
    keep = (conf >= cfg.signal_conf_min) & np.isfinite(block.h_ph_m) & np.isfinite(block.x_atc_m)
    if cfg.require_nominal_quality:
        keep &= block.quality_ph == 0
    idx = np.flatnonzero(keep)
    idx = idx[np.argsort(block.x_atc_m[idx], kind="stable")]
    shot = block.pce_mframe_cnt[idx].astype(np.int64) * SHOTS_PER_MAJOR_FRAME + block.ph_id_pulse[idx].astype(
        np.int64
    )
    return {
        "h": block.h_ph_m[idx].astype(np.float64),
        "x": block.x_atc_m[idx],
        "lat": block.lat_deg[idx],
        "lon": block.lon_deg[idx],
        "t": block.delta_time_s[idx],
        "shot": shot,
        "seg_id": block.segment_id[idx],
    }


def _concat(a: _Sig | None, b: _Sig) -> _Sig:
    if a is None:
        return b
    return {k: np.concatenate([a[k], b[k]]) for k in _SIG_KEYS}


def _take(sig: _Sig, sel: slice | IntArray) -> _Sig:
    return {k: v[sel] for k, v in sig.items()}


def _raw_groups(x: FloatArray, cfg: ATL07EmulationConfig) -> IntArray:
    """Group index (0, 1, ...) of each photon: runs split at gaps, then every N photons."""
    n = x.size
    if n == 0:
        return np.empty(0, dtype=np.int64)
    new_run = np.concatenate([[True], np.diff(x) > cfg.max_photon_gap_m])
    run_start = np.flatnonzero(new_run)
    run_id = np.cumsum(new_run) - 1
    rank = np.arange(n) - run_start[run_id]
    new_group = new_run | (rank % cfg.photons_per_segment == 0)
    return np.asarray(np.cumsum(new_group) - 1, dtype=np.int64)


# ----------------------------------------------------------------------------------------------
# Segment statistics
# ----------------------------------------------------------------------------------------------


def _group_median(values: FloatArray, group: IntArray, starts: IntArray, counts: IntArray) -> FloatArray:
    """Median of ``values`` per group (groups 0..G-1, each non-empty)."""
    order = np.lexsort((values, group))
    s = values[order]
    lo = s[starts + (counts - 1) // 2]
    hi = s[starts + counts // 2]
    return np.asarray(0.5 * (lo + hi), dtype=np.float64)


def _interp_by_x(x_new: FloatArray, x: FloatArray, values: FloatArray) -> FloatArray:
    """Linear interpolation over finite samples (constant beyond the ends); NaN when none."""
    ok = np.isfinite(values) & np.isfinite(x)
    if not ok.any():
        return np.full(x_new.shape, np.nan)
    order = np.argsort(x[ok], kind="stable")
    return np.asarray(np.interp(x_new, x[ok][order], values[ok][order]), dtype=np.float64)


def _segment_corrections(segments: pd.DataFrame, x_centre: FloatArray) -> dict[str, FloatArray]:
    """ATL03 20 m-segment corrections at ATL07 segment centres (m; degrees for the sun angles)."""
    n_seg = len(segments)

    def col(name: str) -> FloatArray:
        if name in segments.columns:
            return np.asarray(segments[name], dtype=np.float64)
        return np.full(n_seg, np.nan)

    seg_len = np.nan_to_num(col("segment_length_m"), nan=SEGMENT_LENGTH_M)
    x20 = col("segment_dist_x_m") + 0.5 * seg_len
    mss20 = np.where(col("dem_flag") == DEM_FLAG_MSS, col("dem_h"), np.nan)
    if n_seg and not np.isfinite(mss20).any():
        log.warning("no dem_flag == %d (MSS) 20 m segment: using the geoid as the mean sea surface", DEM_FLAG_MSS)
        mss20 = col("geoid")
    out = {"height_segment_mss": _interp_by_x(x_centre, x20, mss20)}
    for target, source in (
        ("height_segment_ocean", "tide_ocean"),
        ("height_segment_lpe", "tide_equilibrium"),
        ("height_segment_dac", "dac"),
        ("height_segment_geoid", "geoid"),
        ("height_segment_earth", "tide_earth"),
        ("height_segment_load", "tide_load"),
        ("height_segment_pole", "tide_pole"),
        ("solar_elevation", "solar_elevation"),
        ("solar_azimuth", "solar_azimuth"),
    ):
        out[target] = _interp_by_x(x_centre, x20, col(source))
    out["height_segment_ib"] = out["height_segment_dac"].copy()
    return out


def _background(bckgrd: pd.DataFrame, t: FloatArray) -> tuple[FloatArray, FloatArray]:
    """(200 Hz, 25 Hz) background rates (counts/s) at segment times."""
    if len(bckgrd) == 0 or "bckgrd_rate" not in bckgrd.columns:
        return np.full(t.shape, np.nan), np.full(t.shape, np.nan)
    bt = np.asarray(bckgrd["delta_time"], dtype=np.float64)
    rate = np.asarray(bckgrd["bckgrd_rate"], dtype=np.float64)
    order = np.argsort(bt, kind="stable")
    bt, rate = bt[order], rate[order]
    r25 = pd.Series(rate).rolling(_BCKGRD_ROWS_PER_25HZ, center=True, min_periods=1).mean().to_numpy()
    return _interp_by_x(t, bt, rate), _interp_by_x(t, bt, np.asarray(r25, dtype=np.float64))


_STAT_COLUMNS: Final[tuple[str, ...]] = (
    "delta_time", "latitude", "longitude", "seg_dist_x", "height_segment_id", "geoseg_beg", "geoseg_end",
    "height_segment_height", "height_segment_length_seg", "height_segment_w_gaussian",
    "height_segment_surface_error_est", "height_segment_confidence", "height_segment_quality",
    "height_segment_n_pulse_seg", "height_segment_type", "height_segment_ssh_flag", "photon_rate",
    "n_photons_actual", "n_photons_used", "backgr_r_200", "backgr_r_25", "hist_mean_h", "hist_median_h",
    "height_segment_mss", "height_segment_ocean", "height_segment_lpe", "height_segment_ib",
    "height_segment_dac", "height_segment_geoid", "height_segment_earth", "height_segment_load",
    "height_segment_pole", "solar_elevation", "solar_azimuth",
)
#: Columns of :func:`emulate_atl07_beam` (ATL07 leaf names).
ATL07_COLUMNS_WRITTEN: Final[tuple[str, ...]] = _STAT_COLUMNS


def _empty_frame() -> pd.DataFrame:
    return pd.DataFrame({c: np.empty(0) for c in _STAT_COLUMNS})


def _aggregate(
    sig: _Sig,
    group: IntArray,
    segments: pd.DataFrame,
    bckgrd: pd.DataFrame,
    cfg: ATL07EmulationConfig,
) -> pd.DataFrame:
    """Segment table of photons already grouped (``group`` contiguous, 0..G-1; -1 = unused)."""
    use = group >= 0
    if not use.any():
        return _empty_frame()
    s = _take(sig, np.flatnonzero(use))
    _, g = np.unique(group[use], return_inverse=True)
    g = g.astype(np.int64)
    n_groups = int(g.max()) + 1
    counts = np.bincount(g, minlength=n_groups).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    h = s["h"]
    med = _group_median(h, g, starts, counts)
    dev = np.abs(h - med[g])
    mad = _group_median(dev, g, starts, counts)
    half = np.fmax(cfg.trim_n_sigma * _MAD_TO_SIGMA * mad, cfg.trim_floor_m)
    kept = (dev <= half[g]).astype(np.float64)
    n_used = np.bincount(g, kept, n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(g, kept * h, n_groups) / n_used
        width = np.sqrt(np.bincount(g, kept * (h - mean[g]) ** 2, n_groups) / n_used)
        surface_error = width / np.sqrt(n_used)
    raw_mean = np.bincount(g, h, n_groups) / counts
    x = s["x"]
    x_lo = np.minimum.reduceat(x, starts)
    x_hi = np.maximum.reduceat(x, starts)
    centre = 0.5 * (x_lo + x_hi)
    n_pulse = np.maximum.reduceat(s["shot"], starts) - np.minimum.reduceat(s["shot"], starts) + 1
    t = np.bincount(g, s["t"], n_groups) / counts
    mid = starts + counts // 2
    corr = _segment_corrections(segments, centre)
    tides = np.nan_to_num(corr["height_segment_ocean"]) + np.nan_to_num(corr["height_segment_lpe"])
    if cfg.remove_dac:
        tides = tides + np.nan_to_num(corr["height_segment_dac"])
    height = mean - corr["height_segment_mss"] - tides
    r200, r25 = _background(bckgrd, t)
    quality = ((n_used >= cfg.min_photons_per_segment) & np.isfinite(height)).astype(np.int8)
    out: dict[str, npt.NDArray[Any]] = {
        "delta_time": t,
        "latitude": s["lat"][mid],
        "longitude": s["lon"][mid],
        "seg_dist_x": centre,
        "height_segment_id": np.zeros(n_groups, dtype=np.int32),
        "geoseg_beg": np.minimum.reduceat(s["seg_id"], starts).astype(np.int32),
        "geoseg_end": np.maximum.reduceat(s["seg_id"], starts).astype(np.int32),
        "height_segment_height": height,
        "height_segment_length_seg": x_hi - x_lo,
        "height_segment_w_gaussian": width,
        "height_segment_surface_error_est": surface_error,
        "height_segment_confidence": 1.0 - n_used / counts,
        "height_segment_quality": quality,
        "height_segment_n_pulse_seg": n_pulse.astype(np.int32),
        "height_segment_type": np.ones(n_groups, dtype=np.int8),
        "height_segment_ssh_flag": np.zeros(n_groups, dtype=np.int8),
        "photon_rate": counts / n_pulse,
        "n_photons_actual": counts.astype(np.int16),
        "n_photons_used": n_used.astype(np.int16),
        "backgr_r_200": r200,
        "backgr_r_25": r25,
        "hist_mean_h": raw_mean - corr["height_segment_mss"] - tides,
        "hist_median_h": med - corr["height_segment_mss"] - tides,
        **corr,
    }
    return pd.DataFrame({c: out[c] for c in _STAT_COLUMNS})


def classify_surface(df: pd.DataFrame, strength: Strength, config: ATL07EmulationConfig = _DEFAULT) -> pd.DataFrame:
    """Set ``height_segment_type`` and ``height_segment_ssh_flag`` of a whole beam (ATBD-style).

    Decision, in order of precedence (later rules override earlier ones):

    * relative rate ``r = photon_rate / running_median(photon_rate)`` over
      ``reference_window_segments`` segments (the local ice rate);
    * type 1 (ice) by default;
    * dark lead, rough (9) when ``r <= dark_rel_rate`` and ``w <= dark_rough_max_width_m``;
      smooth (7) when also ``w <= specular_max_width_m``;
    * specular lead, low (3) when ``r >= specular_rel_rate`` and ``w <= specular_max_width_m``;
      high (5) when also ``r >= specular_high_rel_rate``;
    * each lead type minus 1 (``_w_bkg``) when ``backgr_r_200 > high_background_hz``;
    * cloud-covered (0) when ``photon_rate < cloud_photon_rate`` (x ``weak_beam_gain`` for weak
      beams).

    ``height_segment_ssh_flag`` = 1 for specular leads (types 2-5) of good quality.

    Parameters
    ----------
    df : pandas.DataFrame
        ATL07 segments of one beam in along-track order (``photon_rate`` photons/shot,
        ``height_segment_w_gaussian`` m, ``backgr_r_200`` counts/s, ``height_segment_quality``).
    strength : {"strong", "weak", "unknown"}
        Beam strength ("unknown" is treated as strong).
    config : ATL07EmulationConfig
        Thresholds.

    Returns
    -------
    pandas.DataFrame
        A copy of ``df`` with the two columns set.

    Examples
    --------
    >>> d = pd.DataFrame({"photon_rate": [4.0, 4.0, 40.0, 4.0, 0.1],
    ...                   "height_segment_w_gaussian": [0.2, 0.2, 0.02, 0.2, 0.2],
    ...                   "backgr_r_200": [1e4] * 5, "height_segment_quality": [1] * 5})
    >>> classify_surface(d, "strong").height_segment_type.tolist()
    [1, 1, 5, 1, 0]
    """
    cfg = config
    out = df.copy()
    n = len(out)
    if n == 0:
        return out
    rate = np.asarray(out["photon_rate"], dtype=np.float64)
    width = np.asarray(out["height_segment_w_gaussian"], dtype=np.float64)
    bkg = np.asarray(out["backgr_r_200"], dtype=np.float64) > cfg.high_background_hz
    ref = pd.Series(rate).rolling(cfg.reference_window_segments, center=True, min_periods=1).median().to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = rate / ref
    narrow = width <= cfg.specular_max_width_m
    semi = width <= cfg.dark_rough_max_width_m
    kind = np.full(n, int(ATL07SurfaceType.OTHER), dtype=np.int8)
    shift = bkg.astype(np.int8)  # the _w_bkg variant is one code lower
    dark = rel <= cfg.dark_rel_rate
    kind[dark & semi] = int(ATL07SurfaceType.DARK_LEAD_ROUGH) - shift[dark & semi]
    kind[dark & narrow] = int(ATL07SurfaceType.DARK_LEAD_SMOOTH) - shift[dark & narrow]
    spec = (rel >= cfg.specular_rel_rate) & narrow
    kind[spec] = int(ATL07SurfaceType.SPECULAR_LEAD_LOW) - shift[spec]
    high = spec & (rel >= cfg.specular_high_rel_rate)
    kind[high] = int(ATL07SurfaceType.SPECULAR_LEAD_HIGH) - shift[high]
    gain = cfg.weak_beam_gain if strength == "weak" else 1.0
    kind[rate < cfg.cloud_photon_rate * gain] = int(ATL07SurfaceType.CLOUD_COVERED)
    good = np.asarray(out["height_segment_quality"]) == 1
    out["height_segment_type"] = kind
    out["height_segment_ssh_flag"] = (np.isin(kind, _SPECULAR_TYPES) & good).astype(np.int8)
    return out


def _finish(frames: list[pd.DataFrame], strength: Strength, cfg: ATL07EmulationConfig) -> pd.DataFrame:
    df = pd.concat(frames, ignore_index=True) if frames else _empty_frame()
    df = classify_surface(df, strength, cfg)
    df["height_segment_id"] = np.arange(1, len(df) + 1, dtype=np.int32)
    return df


def emulate_atl07_beam(
    photons: PhotonBlock,
    segments: pd.DataFrame,
    bckgrd: pd.DataFrame,
    config: ATL07EmulationConfig | None = None,
    *,
    strength: Strength = "strong",
) -> pd.DataFrame:
    """ATL07-style sea-ice segments of one beam's photons (pure, vectorised).

    Parameters
    ----------
    photons : PhotonBlock
        Photons of one beam (:func:`seaice_tasks.io.atl03.read_photons`).
    segments : pandas.DataFrame
        The beam's 20 m segment table (:func:`seaice_tasks.io.atl03.read_segments`): supplies the
        MSS (``dem_h`` with ``dem_flag == 3``), tides, DAC, geoid and sun angles.
    bckgrd : pandas.DataFrame
        The beam's ``bckgrd_atlas`` table (:func:`seaice_tasks.io.atl03.read_bckgrd`); may be empty.
    config : ATL07EmulationConfig, optional
        Thresholds (defaults documented on the class).
    strength : {"strong", "weak", "unknown"}
        Beam strength (scales the cloud threshold).

    Returns
    -------
    pandas.DataFrame
        One row per segment, columns :data:`ATL07_COLUMNS_WRITTEN` (ATL07 leaf names):
        ``delta_time`` (s since the ATLAS SDP epoch), ``latitude``/``longitude`` (deg),
        ``seg_dist_x`` (m, centre), ``height_segment_height`` (m above the MSS, tides and DAC
        removed), ``height_segment_length_seg``/``_w_gaussian``/``_surface_error_est`` (m),
        ``photon_rate`` (signal photons/shot), ``backgr_r_200``/``_25`` (counts/s),
        corrections (m), type/ssh flags.
    """
    cfg = config if config is not None else _DEFAULT
    sig = _signal_photons(photons, cfg)
    group = _drop_small(_raw_groups(sig["x"], cfg), cfg)
    return _finish([_aggregate(sig, group, segments, bckgrd, cfg)], strength, cfg)


def _drop_small(group: IntArray, cfg: ATL07EmulationConfig) -> IntArray:
    if group.size == 0:
        return group
    counts = np.bincount(group)
    return np.where(counts[group] >= cfg.min_photons_per_segment, group, -1)


def _emulate_beam_file(path: str, beam: str, strength: Strength, cfg: ATL07EmulationConfig) -> pd.DataFrame:
    """Stream one beam chunk by chunk, carrying the open segment's photons across chunks."""
    segments = read_segments(path, beam)
    try:
        bckgrd = read_bckgrd(path, beam)
    except MissingVariableError:
        log.warning("%s %s: no bckgrd_atlas; background rates are NaN", path, beam)
        bckgrd = pd.DataFrame({"delta_time": np.empty(0), "bckgrd_rate": np.empty(0)})
    chunks = iter_segment_chunks(path, beam, cfg.max_photons_per_chunk)
    frames: list[pd.DataFrame] = []
    carry: _Sig | None = None
    for k, (s0, s1) in enumerate(chunks):
        sig = _concat(carry, _signal_photons(read_photons(path, beam, s0, s1), cfg))
        raw = _raw_groups(sig["x"], cfg)
        carry = None
        if k < len(chunks) - 1 and raw.size:
            tail = int(np.searchsorted(raw, raw[-1], side="left"))
            carry = _take(sig, slice(tail, None))
            sig, raw = _take(sig, slice(0, tail)), raw[:tail]
        frames.append(_aggregate(sig, _drop_small(raw, cfg), segments, bckgrd, cfg))
    return _finish(frames, strength, cfg)


# ----------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------

_F4: Final = np.dtype(np.float32)
_F8: Final = np.dtype(np.float64)
_I1: Final = np.dtype(np.int8)
_I2: Final = np.dtype(np.int16)
_I4: Final = np.dtype(np.int32)

_SIS: Final[str] = "sea_ice_segments"
#: ATL07 column -> (path below the beam group, dtype, units).
ATL07_LAYOUT: Final[Mapping[str, tuple[str, np.dtype[Any], str]]] = {
    "delta_time": (f"{_SIS}/delta_time", _F8, "seconds since 2018-01-01"),
    "latitude": (f"{_SIS}/latitude", _F8, "degrees_north"),
    "longitude": (f"{_SIS}/longitude", _F8, "degrees_east"),
    "seg_dist_x": (f"{_SIS}/seg_dist_x", _F8, "meters"),
    "height_segment_id": (f"{_SIS}/height_segment_id", _I4, "1"),
    "geoseg_beg": (f"{_SIS}/geoseg_beg", _I4, "1"),
    "geoseg_end": (f"{_SIS}/geoseg_end", _I4, "1"),
    **{
        c: (f"{_SIS}/heights/{c}", dt, u)
        for c, dt, u in (
            ("height_segment_height", _F4, "meters"),
            ("height_segment_length_seg", _F4, "meters"),
            ("height_segment_w_gaussian", _F4, "meters"),
            ("height_segment_surface_error_est", _F4, "meters"),
            ("height_segment_confidence", _F4, "1"),
            ("height_segment_quality", _I1, "1"),
            ("height_segment_n_pulse_seg", _I4, "1"),
            ("height_segment_type", _I1, "1"),
            ("height_segment_ssh_flag", _I1, "1"),
        )
    },
    **{
        c: (f"{_SIS}/geophysical/{c}", _F4, "meters")
        for c in (
            "height_segment_mss", "height_segment_ocean", "height_segment_lpe", "height_segment_ib",
            "height_segment_dac", "height_segment_geoid", "height_segment_earth", "height_segment_load",
            "height_segment_pole",
        )
    },
    "solar_elevation": (f"{_SIS}/geolocation/solar_elevation", _F4, "degrees"),
    "solar_azimuth": (f"{_SIS}/geolocation/solar_azimuth", _F4, "degrees_east"),
    "photon_rate": (f"{_SIS}/stats/photon_rate", _F4, "photons/shot"),
    "n_photons_actual": (f"{_SIS}/stats/n_photons_actual", _I2, "1"),
    "n_photons_used": (f"{_SIS}/stats/n_photons_used", _I2, "1"),
    "backgr_r_200": (f"{_SIS}/stats/backgr_r_200", _F4, "hz"),
    "backgr_r_25": (f"{_SIS}/stats/backgr_r_25", _F4, "hz"),
    "hist_mean_h": (f"{_SIS}/stats/hist_mean_h", _F4, "meters"),
    "hist_median_h": (f"{_SIS}/stats/hist_median_h", _F4, "meters"),
}

_FBS: Final[str] = "freeboard_segment"
#: ATL10 freeboard-segment column -> (path below the beam group, dtype, units).
ATL10_FREEBOARD_LAYOUT: Final[Mapping[str, tuple[str, np.dtype[Any], str]]] = {
    "delta_time": (f"{_FBS}/delta_time", _F8, "seconds since 2018-01-01"),
    "latitude": (f"{_FBS}/latitude", _F8, "degrees_north"),
    "longitude": (f"{_FBS}/longitude", _F8, "degrees_east"),
    "seg_dist_x": (f"{_FBS}/seg_dist_x", _F8, "meters"),
    "height_segment_id": (f"{_FBS}/height_segment_id", _I4, "1"),
    "geoseg_beg": (f"{_FBS}/geoseg_beg", _I4, "1"),
    "geoseg_end": (f"{_FBS}/geoseg_end", _I4, "1"),
    "beam_fb_height": (f"{_FBS}/beam_fb_height", _F4, "meters"),
    "beam_fb_unc": (f"{_FBS}/beam_fb_unc", _F4, "meters"),
    "beam_fb_confidence": (f"{_FBS}/beam_fb_confidence", _F4, "1"),
    "beam_fb_quality_flag": (f"{_FBS}/beam_fb_quality_flag", _I1, "1"),
    "beam_refsurf_ndx": (f"{_FBS}/beam_refsurf_ndx", _I4, "1"),
    **{
        c: (f"{_FBS}/heights/{c}", dt, u)
        for c, dt, u in (
            ("height_segment_height", _F4, "meters"),
            ("height_segment_type", _I1, "1"),
            ("height_segment_ssh_flag", _I1, "1"),
            ("height_segment_length_seg", _F4, "meters"),
            ("height_segment_confidence", _F4, "1"),
            ("height_segment_w_gaussian", _F4, "meters"),
            ("photon_rate", _F4, "photons/shot"),
            ("backgr_r_200", _F4, "hz"),
            ("backgr_r_25", _F4, "hz"),
        )
    },
    "height_segment_surface_error_est": (f"{_FBS}/heights/height_segment_sigma", _F4, "meters"),
    **{
        c: (f"{_FBS}/geophysical/{c}", _F4, "meters")
        for c in (
            "height_segment_mss", "height_segment_ocean", "height_segment_lpe", "height_segment_ib",
            "height_segment_dac", "height_segment_geoid", "height_segment_earth", "height_segment_load",
        )
    },
    "height_segment_pole": (f"{_FBS}/geophysical/height_segment_tide_pole", _F4, "meters"),
}
#: ATL10 lead column -> (path, dtype, units).
ATL10_LEADS_LAYOUT: Final[Mapping[str, tuple[str, np.dtype[Any], str]]] = {
    "delta_time": ("leads/delta_time", _F8, "seconds since 2018-01-01"),
    "latitude": ("leads/latitude", _F8, "degrees_north"),
    "longitude": ("leads/longitude", _F8, "degrees_east"),
    "lead_dist_x": ("leads/lead_dist_x", _F8, "meters"),
    "lead_height": ("leads/lead_height", _F4, "meters"),
    "lead_length": ("leads/lead_length", _F4, "meters"),
    "lead_sigma": ("leads/lead_sigma", _F4, "meters"),
    "ssh_n": ("leads/ssh_n", _I4, "1"),
    "ssh_ndx": ("leads/ssh_ndx", _I4, "1"),
}
_RSS: Final[str] = "reference_surface_section"
#: ATL10 reference-surface column -> (path, dtype, units).
ATL10_REFSURF_LAYOUT: Final[Mapping[str, tuple[str, np.dtype[Any], str]]] = {
    "delta_time": (f"{_RSS}/delta_time", _F8, "seconds since 2018-01-01"),
    "latitude": (f"{_RSS}/latitude", _F8, "degrees_north"),
    "longitude": (f"{_RSS}/longitude", _F8, "degrees_east"),
    "beam_refsurf_dist_x": (f"{_RSS}/beam_refsurf_dist_x", _F8, "meters"),
    "beam_refsurf_height": (f"{_RSS}/beam_refsurf_height", _F4, "meters"),
    "beam_refsurf_sigma": (f"{_RSS}/beam_refsurf_sigma", _F4, "meters"),
    "beam_refsurf_interp_flag": (f"{_RSS}/beam_refsurf_interp_flag", _I1, "1"),
    "beam_lead_n": (f"{_RSS}/beam_lead_n", _I4, "1"),
    "beam_lead_ndx": (f"{_RSS}/beam_lead_ndx", _I4, "1"),
}


def atl07_atl10_names(atl03_name: str | GranuleId, hemisphere: int) -> tuple[str, str]:
    """ATL07/ATL10 file names of an ATL03 granule (same time, RGT, cycle; region 01; revision 01).

    Parameters
    ----------
    atl03_name : str or GranuleId
        ATL03 file name (or its parsed id).
    hemisphere : int
        1 Arctic (``-01``), 2 Antarctic (``-02``).
    """
    from seaice_tasks.granule import parse_granule

    g = atl03_name if isinstance(atl03_name, GranuleId) else parse_granule(atl03_name)
    core = (
        f"{g.start:%Y%m%d%H%M%S}_{g.rgt:04d}{g.cycle:02d}{PRODUCT_REGION:02d}_{g.release:03d}_{PRODUCT_REVISION:02d}.h5"
    )
    return f"ATL07-{hemisphere:02d}_{core}", f"ATL10-{hemisphere:02d}_{core}"


def _to_stored(values: npt.NDArray[Any], dtype: np.dtype[Any]) -> npt.NDArray[Any]:
    if dtype.kind == "f":
        v = np.asarray(values, dtype=np.float64)
        return np.where(np.isfinite(v), v, H5_FILL_FLOAT32).astype(dtype)
    v = np.asarray(values, dtype=np.float64) if np.asarray(values).dtype.kind == "f" else np.asarray(values)
    if v.dtype.kind == "f":
        v = np.where(np.isfinite(v), v, _FILL_INT8)
    return v.astype(dtype)


def _write_table(
    group: h5py.Group, df: pd.DataFrame, layout: Mapping[str, tuple[str, np.dtype[Any], str]]
) -> None:
    for column, (path, dtype, units) in layout.items():
        values = df[column].to_numpy() if column in df.columns else np.full(len(df), np.nan)
        ds = group.create_dataset(path, data=_to_stored(values, dtype), track_times=False)
        ds.attrs["units"] = np.bytes_(units)
        if dtype.kind == "f":
            ds.attrs["_FillValue"] = np.array([H5_FILL_FLOAT32], dtype=dtype)


def _write_common(
    f: h5py.File, product: str, name: str, release: int, sc_orient: int, epoch: float,
    rgt: int, cycle: int,
) -> None:
    meta = f.create_group("METADATA/DatasetIdentification", track_order=False)
    for key, value in (("shortName", product), ("fileName", name), ("VersionID", f"{release:03d}")):
        meta.attrs[key] = np.bytes_(value)
    f.attrs["short_name"] = np.bytes_(product)
    f.create_dataset("orbit_info/sc_orient", data=np.array([sc_orient], dtype=np.int8), track_times=False)
    f.create_dataset("orbit_info/rgt", data=np.array([rgt], dtype=np.int16), track_times=False)
    f.create_dataset("orbit_info/cycle_number", data=np.array([cycle], dtype=np.int8), track_times=False)
    f.create_dataset("ancillary_data/atlas_sdp_gps_epoch", data=np.array([epoch]), track_times=False)


def _beam_attrs(path: str, beams: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    with h5py.File(path, "r") as f:
        for beam in beams:
            out[beam] = {
                k: f[beam].attrs[k] for k in ("atlas_beam_type", "sc_orientation", "atlas_spot_number",
                                              "groundtrack_id") if k in f[beam].attrs
            }
    return out


def write_atl07_atl10(
    atl03_path: Path,
    out_dir: Path,
    config: ATL07EmulationConfig | None = None,
) -> tuple[Path, Path]:
    """Emulate ATL07 and ATL10 from an ATL03 granule and write them in the real layouts.

    Parameters
    ----------
    atl03_path : pathlib.Path
        ATL03 granule (full or subset; read through :mod:`seaice_tasks.io.atl03`).
    out_dir : pathlib.Path
        Output directory (created).
    config : ATL07EmulationConfig, optional
        Emulation knobs.

    Returns
    -------
    (pathlib.Path, pathlib.Path)
        The ATL07 and ATL10 files, named ``ATL07-0H_<time>_<rgt><cycle>01_<release>_01.h5`` (H = 1
        Arctic, 2 Antarctic, from the photons' mean latitude).  Floats use the fill 3.4028235e38;
        identical input gives byte-identical files.

    Raises
    ------
    ValueError
        When the granule's name (or metadata) does not identify it.
    """
    cfg = config if config is not None else _DEFAULT
    src = os.fspath(atl03_path)
    info = read_atl03_info(src)
    if info.granule is None:
        raise ValueError(f"{src}: cannot identify the granule (name or METADATA/DatasetIdentification)")
    atl07: dict[str, pd.DataFrame] = {}
    for b in info.beams:
        if b.n_photons == 0 or b.n_segments == 0:
            continue
        atl07[b.beam] = _emulate_beam_file(src, b.beam, b.strength, cfg)
        log.info("%s %s (%s): %d ATL07 segments", src, b.beam, b.strength, len(atl07[b.beam]))
    lats = np.concatenate([np.asarray(d["latitude"], dtype=np.float64) for d in atl07.values()] or [np.empty(0)])
    hemisphere = HEMISPHERE_SOUTH if lats.size and float(np.nanmean(lats)) < 0 else HEMISPHERE_NORTH
    name07, name10 = atl07_atl10_names(info.granule, hemisphere)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    attrs = _beam_attrs(src, tuple(atl07))
    release = info.granule.release
    common = (release, info.sc_orient, info.atlas_sdp_gps_epoch_s, info.granule.rgt, info.granule.cycle)
    p07, p10 = out / name07, out / name10
    with h5py.File(p07, "w", libver="earliest", track_order=False) as f:
        _write_common(f, "ATL07", name07, *common)
        for beam, df in atl07.items():
            g = f.create_group(beam)
            g.attrs.update(attrs[beam])
            _write_table(g, df, ATL07_LAYOUT)
    with h5py.File(p10, "w", libver="earliest", track_order=False) as f:
        _write_common(f, "ATL10", name10, *common)
        for beam, df in atl07.items():
            fb, leads, refsurf = emulate_atl10_beam(df, cfg)
            g = f.create_group(beam)
            g.attrs.update(attrs[beam])
            _write_table(g, fb, ATL10_FREEBOARD_LAYOUT)
            _write_table(g, leads, ATL10_LEADS_LAYOUT)
            _write_table(g, refsurf, ATL10_REFSURF_LAYOUT)
            log.info("%s %s: %d freeboard segments, %d leads, %d sections", name10, beam, len(fb), len(leads),
                     len(refsurf))
    return p07, p10
