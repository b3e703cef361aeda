"""ATL03 photons -> 2 m along-track segments (METHOD.md §3): the vectorised heart of the 2 m product.

Pipeline of one beam (every step a whole-array numpy operation; no Python loop over photons,
shots or bins):

1. **Shot auxiliaries on all photons** (§3.3): shot key = ``pce_mframe_cnt * 200 + ph_id_pulse - 1``;
   ``pcnt`` = photons of the shot (any confidence), ``pcnth`` = those with
   ``signal_conf_ph[:, surface_type] >= min_signal_conf``; ``np.unique`` + ``np.bincount``.
2. **Background** (§3.3): each photon takes the ``bckgrd_atlas`` row of its 50-shot window, found
   by the key ``pce_mframe_cnt * 4 + (ph_id_pulse - 1) // 50`` (nearest key when absent), see
   :func:`background_rows`.
3. **Selection** (§3.1): ``signal_conf_ph[:, 2] >= 3`` and ``quality_ph == 0`` (configurable),
   finite height / along-track distance / time; optionally drop "specular" shots.
4. **Binning** (§3.2, §3.4): absolute grid, bin index ``floor(x_atc / 2)``; a stable sort by bin,
   ``np.add.reduceat`` for sums, ``np.lexsort((value, bin))`` + index arithmetic for medians.
   Empty bins are never emitted.
5. **Corrections** (§3.6): 20 m segment values interpolated (``np.interp``) to the bin centre
   along track, over finite values only.
6. **First-photon bias** (§3.5): CAL-19 lookup per FPB window (default: the 2 m bin itself).
7. **Corrected heights**: ``h - mss - tide_ocean - tide_equilibrium - fpb`` (default) or the
   authors' ``h - mss - tide - fpb`` with the six-term ``tide`` (``correction="paper"``).

Streaming (:func:`resample_beam`): chunks of segment rows from
:func:`~seaice_tasks.io.atl03.iter_segment_chunks` are cut at arbitrary 20 m segment boundaries
(``segment_dist_x`` is not a multiple of 2 m), so a 2 m bin -- and a laser shot -- can straddle
two chunks.  Each chunk is processed with a one-chunk look-ahead: selected photons whose FPB
window starts at or after the first window of the next chunk are *carried* into the next chunk,
and shot counts are taken over the previous, current and next chunks' shot keys.  The result is
identical, bit for bit, to processing the whole beam at once (tested).

Column meanings and units: ``docs/segments_2m.md`` and :data:`seaice_tasks.schemas.SEGMENTS_2M_SCHEMA`.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, Final, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from seaice_tasks.config import JsonConfig, ReaderConfig
from seaice_tasks.constants import (
    BEAMS,
    SEGMENT_LENGTH_M,
    SHOTS_PER_BCKGRD_ROW,
    SHOTS_PER_MAJOR_FRAME,
    SPEED_OF_LIGHT_M_S,
    SignalConf,
    SurfaceType,
)
from seaice_tasks.errors import ConfigError, GranuleNameError, MissingVariableError
from seaice_tasks.granule import parse_granule
from seaice_tasks.io._h5 import has_path, open_h5, read_dataset
from seaice_tasks.io.atl03 import (
    PhotonBlock,
    iter_segment_chunks,
    read_atl03_info,
    read_bckgrd,
    read_fpb_tables,
    read_photons,
    read_segments,
)

__all__ = [
    "ResampleConfig",
    "OUTPUT_COLUMNS",
    "CAL42_DEAD_TIME_KEY",
    "shot_keys",
    "shot_counts",
    "background_rows",
    "bin_statistics",
    "resample_photons",
    "resample_beam",
    "resample_granule",
    "select_beams",
    "to_segments_table",
    "read_optional_bckgrd",
    "read_fpb_with_dead_time",
]

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: ``bckgrd_atlas`` rows per 200-shot major frame (one row per 50 shots).
BCKGRD_ROWS_PER_FRAME: Final[int] = SHOTS_PER_MAJOR_FRAME // SHOTS_PER_BCKGRD_ROW
#: ``geophys_corr/dem_flag`` value meaning that ``dem_h`` is the mean sea surface.
DEM_FLAG_MSS: Final[int] = 3
#: Quality flag of a nominal photon (``heights/quality_ph``).
QUALITY_NOMINAL: Final[int] = 0
#: Photon-count quantiles defining the FPB pulse width (ATL07 fine tracker: h10, h90).
FPB_LOW_QUANTILE: Final[float] = 0.10
FPB_HIGH_QUANTILE: Final[float] = 0.90
#: One picosecond and one nanosecond in seconds.
PS_TO_S: Final[float] = 1e-12
NS_TO_S: Final[float] = 1e-9
#: CAL-19 ``dead_time`` axes with a maximum below this are taken to be in seconds, else in ns.
_DEAD_TIME_AXIS_SECONDS_MAX: Final[float] = 1e-6
#: Key of the beam's mean CAL-42 dead time (s) in the ``fpb_tables`` mapping (added by
#: :func:`resample_beam` from ``ancillary_data/calibrations/dead_time/<beam>/dead_time``).
CAL42_DEAD_TIME_KEY: Final[str] = "cal42_dead_time_s"
_CAL42_PATH: Final[str] = "ancillary_data/calibrations/dead_time/{beam}/dead_time"
_FPB_TABLE_NAMES: Final[tuple[str, ...]] = ("dead_time", "strength", "width")
#: Relative tolerance when checking that ``fpb_window_m`` is a multiple of ``bin_size_m``.
_MULTIPLE_RTOL: Final[float] = 1e-9
_NS_PER_S: Final[int] = 1_000_000_000
_DEG_FULL_TURN: Final[float] = 360.0
_DEG_HALF_TURN: Final[float] = 180.0

#: The six ATL03 tide terms the authors (Koo's reader) summed into ``tide`` (METHOD §3.3, §3.6).
PAPER_TIDE_TERMS: Final[tuple[str, ...]] = (
    "tide_earth",
    "tide_load",
    "tide_ocean",
    "tide_pole",
    "tide_oc_pole",
    "tide_equilibrium",
)

#: Output column -> numpy dtype, in output order (without ``geometry``, added by
#: :func:`to_segments_table`).
_COLUMN_DTYPES: Final[dict[str, str]] = {
    "granule": "object",
    "beam": "object",
    "bin_index": "int64",
    "x_atc_m": "float64",
    "lat_deg": "float64",
    "lon_deg": "float64",
    "delta_time_s": "float64",
    "time_utc": "datetime64[ns, UTC]",
    "n_photons": "int32",
    "single_photon": "bool",
    "h_mean_m": "float64",
    "h_median_m": "float64",
    "h_std_m": "float64",
    **{f"{a}_{s}": "float64" for a in ("pcnt", "pcnth", "bcnt", "brate") for s in ("mean", "sd", "median")},
    "bckgrd_missing": "bool",
    "mss_m": "float64",
    "tide_ocean_m": "float64",
    "tide_equilibrium_m": "float64",
    "tide_paper_m": "float64",
    "dac_m": "float64",
    "geoid_m": "float64",
    "solar_elevation_deg": "float64",
    "solar_azimuth_deg": "float64",
    "corrections_missing": "bool",
    "fpb_corr_m": "float64",
    "fpb_available": "bool",
    "h_cor_mean_m": "float64",
    "h_cor_median_m": "float64",
}
#: Columns of the frames returned here, in order.
OUTPUT_COLUMNS: Final[tuple[str, ...]] = tuple(_COLUMN_DTYPES)

#: Output correction column -> 20 m segment column (``read_segments``) it is interpolated from.
_CORRECTION_SOURCES: Final[dict[str, str]] = {
    "mss_m": "mss",
    "tide_ocean_m": "tide_ocean",
    "tide_equilibrium_m": "tide_equilibrium",
    "tide_paper_m": "tide_paper",
    "dac_m": "dac",
    "geoid_m": "geoid",
    "solar_elevation_deg": "solar_elevation",
    "solar_azimuth_deg": "solar_azimuth",
}
#: Corrections subtracted from h per ``ResampleConfig.correction`` (plus ``fpb_corr_m``).
_SUBTRACTED: Final[dict[str, tuple[str, ...]]] = {
    "default": ("mss_m", "tide_ocean_m", "tide_equilibrium_m"),
    "paper": ("mss_m", "tide_paper_m"),
}
_ANGLE_COLUMNS: Final[frozenset[str]] = frozenset({"solar_azimuth"})


@dataclasses.dataclass(frozen=True)
class ResampleConfig(JsonConfig):
    """Options of the ATL03 -> 2 m resampling (METHOD.md §3).

    Attributes
    ----------
    beams : {"strong", "all"} or tuple of str
        Beams :func:`resample_granule` processes: the strong beams for the granule's
        ``sc_orient`` (none during a yaw-flip transition), all beams present, or an explicit list.
    bin_size_m : float
        Along-track bin length (m); bins are ``[k * bin_size_m, (k + 1) * bin_size_m)``.
    surface_type : int
        Column of ``signal_conf_ph`` used for selection and ``pcnth`` (2 = sea ice).
    min_signal_conf : int
        Minimum ``signal_conf_ph`` of a selected photon (3 = medium; 4 = high only).
    nominal_quality_only : bool
        Keep only ``quality_ph == 0`` photons (drops possible afterpulses, impulse-response
        effects and TEP); False keeps every quality.
    max_signal_photons_per_shot : int or None
        When set, drop every photon of a shot with more than this many signal photons (ATL07's
        "specular shot" filter uses 16); None keeps all shots.
    correction : {"default", "paper"}
        ``"default"``: ``h_cor = h - mss - tide_ocean - tide_equilibrium - fpb``;
        ``"paper"``: the authors' ``h - mss - tide - fpb`` with the six-term ``tide``
        (earth + load + ocean + pole + ocean pole + equilibrium), which double-counts the tides
        already applied to ``h_ph`` (METHOD §3.6, §13 row 14).
    fpb_window_m : float
        Along-track window (m, a multiple of ``bin_size_m``) over which the first-photon-bias
        pulse width and strength are estimated; the default 2.0 is the bin itself.
    max_correction_distance_m : float
        A correction is NaN at a bin whose nearest 20 m segment centre with a finite value of it
        is farther than this (m): no extrapolation across long fill runs.
    max_photons_per_chunk : int
        Photons read at once by :func:`resample_beam` (bounds memory).
    """

    kind: ClassVar[str] = "resample"
    beams: Literal["strong", "all"] | tuple[str, ...] = "strong"
    bin_size_m: float = 2.0
    surface_type: int = int(SurfaceType.SEA_ICE)
    min_signal_conf: int = int(SignalConf.MEDIUM)
    nominal_quality_only: bool = True
    max_signal_photons_per_shot: int | None = None
    correction: Literal["default", "paper"] = "default"
    fpb_window_m: float = 2.0
    max_correction_distance_m: float = 1000.0
    max_photons_per_chunk: int = ReaderConfig().max_photons_per_chunk

    def __post_init__(self) -> None:
        if isinstance(self.beams, tuple):
            bad = [b for b in self.beams if b not in BEAMS]
            if bad:
                raise ConfigError(f"ResampleConfig.beams: unknown beam(s) {bad}; known {list(BEAMS)}")
        elif self.beams not in ("strong", "all"):
            raise ConfigError(f"ResampleConfig.beams: {self.beams!r} is not 'strong', 'all' or a tuple")
        if not self.bin_size_m > 0:
            raise ConfigError(f"ResampleConfig.bin_size_m must be > 0, got {self.bin_size_m}")
        if self.surface_type not in tuple(SurfaceType):
            raise ConfigError(f"ResampleConfig.surface_type must be 0..4, got {self.surface_type}")
        if self.correction not in _SUBTRACTED:
            raise ConfigError(f"ResampleConfig.correction: {self.correction!r} not in {list(_SUBTRACTED)}")
        ratio = self.fpb_window_m / self.bin_size_m
        if ratio < 1 or abs(ratio - round(ratio)) > _MULTIPLE_RTOL * ratio:
            raise ConfigError(
                f"ResampleConfig.fpb_window_m ({self.fpb_window_m}) must be a positive multiple of "
                f"bin_size_m ({self.bin_size_m})"
            )
        if self.max_signal_photons_per_shot is not None and self.max_signal_photons_per_shot < 1:
            raise ConfigError("ResampleConfig.max_signal_photons_per_shot must be >= 1 or None")
        if not self.max_correction_distance_m > 0:
            raise ConfigError("ResampleConfig.max_correction_distance_m must be > 0")
        if self.max_photons_per_chunk < 1:
            raise ConfigError("ResampleConfig.max_photons_per_chunk must be >= 1")

    @property
    def bins_per_fpb_window(self) -> int:
        """Number of bins in one FPB window (>= 1)."""
        return round(self.fpb_window_m / self.bin_size_m)


# ----------------------------------------------------------------------------------------------
# Photon-level auxiliaries
# ----------------------------------------------------------------------------------------------


def shot_keys(pce_mframe_cnt: npt.ArrayLike, ph_id_pulse: npt.ArrayLike) -> IntArray:
    """Global shot index ``pce_mframe_cnt * 200 + ph_id_pulse - 1`` (int64, one per laser shot).

    Examples
    --------
    >>> shot_keys([10, 10, 11], [1, 200, 1]).tolist()
    [2000, 2199, 2200]
    """
    frame = np.asarray(pce_mframe_cnt, dtype=np.int64)
    pulse = np.asarray(ph_id_pulse, dtype=np.int64)
    return frame * SHOTS_PER_MAJOR_FRAME + (pulse - 1)


def shot_counts(
    keys: npt.ArrayLike, is_signal: npt.ArrayLike, query: npt.ArrayLike | None = None
) -> tuple[IntArray, IntArray]:
    """Photons per shot (``pcnt``) and signal photons per shot (``pcnth``), per photon.

    Parameters
    ----------
    keys : array_like of int, shape (N,)
        Shot key of every photon (:func:`shot_keys`), ALL photons regardless of confidence.
    is_signal : array_like of bool, shape (N,)
        Whether each photon passes the confidence threshold.
    query : array_like of int, optional
        Shot keys to return counts for (each must occur in ``keys``); default ``keys`` itself.

    Returns
    -------
    pcnt, pcnth : ndarray of int64
        Counts (photons / shot) for each query photon.

    Examples
    --------
    >>> keys = shot_keys([5, 5, 5, 5, 6], [1, 1, 2, 1, 1])
    >>> pcnt, pcnth = shot_counts(keys, [True, False, True, True, False])
    >>> pcnt.tolist(), pcnth.tolist()
    ([3, 3, 1, 3, 1], [2, 2, 1, 2, 0])
    """
    k = np.asarray(keys, dtype=np.int64)
    signal = np.asarray(is_signal, dtype=bool)
    if k.shape != signal.shape:
        raise ValueError(f"keys {k.shape} and is_signal {signal.shape} differ in shape")
    uniq, inverse = np.unique(k, return_inverse=True)
    inverse = inverse.reshape(-1)
    total = np.bincount(inverse, minlength=uniq.size).astype(np.int64)
    high = np.bincount(inverse[signal], minlength=uniq.size).astype(np.int64)
    if query is None:
        return total[inverse], high[inverse]
    q = np.asarray(query, dtype=np.int64)
    idx = np.searchsorted(uniq, q)
    if q.size and (idx.max() >= uniq.size or not np.array_equal(uniq[idx], q)):
        raise ValueError("query holds shot keys absent from keys")
    return total[idx], high[idx]


def background_rows(
    pce_mframe_cnt: npt.ArrayLike, ph_id_pulse: npt.ArrayLike, bckgrd_mframe_cnt: npt.ArrayLike
) -> IntArray:
    """Row of ``bckgrd_atlas`` (one row per 50 shots) holding each photon's background.

    Each background row gets a window key ``pce_mframe_cnt * 4 + w`` where ``w`` (0..3) is its
    position in the row block of its major frame.  A block with fewer than 4 rows is a frame cut
    by the granule/subset edge: the FIRST block is aligned to the end of its frame (its leading
    windows are missing; verified on the real subset by ``delta_time``), any other short block to
    the start.  A photon's key is ``pce_mframe_cnt * 4 + (ph_id_pulse - 1) // 50``; its row is the
    row with the equal key, else the nearest key (ties: the earlier row).

    Parameters
    ----------
    pce_mframe_cnt, ph_id_pulse : array_like of int, shape (N,)
        Photon major frame and pulse number (1..200).
    bckgrd_mframe_cnt : array_like of int, shape (M,), M >= 1
        ``bckgrd_atlas/pce_mframe_cnt`` in file order (sorted by time).

    Returns
    -------
    ndarray of int64, shape (N,)
        Row indices into the background table.

    Examples
    --------
    >>> bg = [7, 7, 7, 8, 8, 8, 8, 9]       # frame 7 starts mid-frame, frame 9 is cut at its end
    >>> background_rows([7, 7, 8, 8, 9, 9, 12], [1, 200, 1, 151, 1, 200, 1], bg).tolist()
    [0, 2, 3, 6, 7, 7, 7]
    """
    frame = np.asarray(pce_mframe_cnt, dtype=np.int64)
    pulse = np.asarray(ph_id_pulse, dtype=np.int64)
    bg_frame = np.asarray(bckgrd_mframe_cnt, dtype=np.int64)
    if bg_frame.size == 0:
        raise ValueError("background table is empty")
    order = np.argsort(bg_frame, kind="stable")
    sorted_frame = bg_frame[order]
    _, block_start, block_len = np.unique(sorted_frame, return_index=True, return_counts=True)
    position = np.arange(sorted_frame.size, dtype=np.int64) - np.repeat(block_start, block_len)
    length = np.repeat(block_len, block_len)
    short_first = (np.arange(sorted_frame.size) < block_len[0]) & (length < BCKGRD_ROWS_PER_FRAME)
    window = np.where(short_first, position + BCKGRD_ROWS_PER_FRAME - length, position)
    window = np.minimum(window, BCKGRD_ROWS_PER_FRAME - 1)
    bg_key = sorted_frame * BCKGRD_ROWS_PER_FRAME + window
    ph_key = frame * BCKGRD_ROWS_PER_FRAME + (pulse - 1) // SHOTS_PER_BCKGRD_ROW
    right = np.clip(np.searchsorted(bg_key, ph_key, side="left"), 0, bg_key.size - 1)
    left = np.clip(right - 1, 0, bg_key.size - 1)
    take_right = np.abs(bg_key[right] - ph_key) < np.abs(bg_key[left] - ph_key)
    take_right |= bg_key[right] == ph_key
    return order[np.where(take_right, right, left)].astype(np.int64)


# ----------------------------------------------------------------------------------------------
# Vectorised grouping
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Groups:
    """Photons sorted by a group key: ``order`` (stable), group ``starts`` / ``counts`` / ``keys``."""

    order: IntArray
    starts: IntArray
    counts: IntArray
    keys: IntArray
    key: IntArray

    @classmethod
    def of(cls, key: IntArray) -> _Groups:
        order = np.argsort(key, kind="stable").astype(np.int64)
        sk = key[order]
        if sk.size == 0:
            empty = np.zeros(0, dtype=np.int64)
            return cls(order, empty, empty, empty, key)
        starts = np.flatnonzero(np.r_[True, sk[1:] != sk[:-1]]).astype(np.int64)
        counts = np.diff(np.r_[starts, sk.size]).astype(np.int64)
        return cls(order, starts, counts, sk[starts], key)

    def sum(self, values: npt.NDArray[Any]) -> FloatArray:
        return np.add.reduceat(values[self.order].astype(np.float64), self.starts)

    def mean(self, values: npt.NDArray[Any]) -> FloatArray:
        return self.sum(values) / self.counts

    def std(self, values: npt.NDArray[Any], mean: FloatArray) -> FloatArray:
        """Population standard deviation (two-pass)."""
        dev = values[self.order].astype(np.float64) - np.repeat(mean, self.counts)
        return np.sqrt(np.add.reduceat(dev * dev, self.starts) / self.counts)

    def value_sorted(self, values: npt.NDArray[Any]) -> FloatArray:
        """Values sorted by (group, value): groups keep their ``starts`` (NaN last in a group).

        Equivalent to ``v[np.lexsort((v, key))]`` but about twice as fast: a global value rank
        combined with the group rank into one int64 key, sorted once (already group-major).
        """
        v = values.astype(np.float64)[self.order]
        n = v.size
        rank = np.empty(n, dtype=np.int64)
        rank[np.argsort(v)] = np.arange(n, dtype=np.int64)
        group_rank = np.repeat(np.arange(self.counts.size, dtype=np.int64), self.counts)
        out: FloatArray = v[np.argsort(group_rank * n + rank, kind="stable")]
        return out

    def median(self, values: npt.NDArray[Any]) -> FloatArray:
        vs = self.value_sorted(values)
        lo = self.starts + (self.counts - 1) // 2
        hi = self.starts + self.counts // 2
        out: FloatArray = 0.5 * (vs[lo] + vs[hi])
        return out

    def quantile(self, values: npt.NDArray[Any], q: float) -> FloatArray:
        """Linear-interpolation quantile (``numpy.quantile`` default method) per group."""
        vs = self.value_sorted(values)
        pos = q * (self.counts - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, self.counts - 1)
        frac = pos - lo
        a, b = vs[self.starts + lo], vs[self.starts + hi]
        out: FloatArray = a + frac * (b - a)
        return out


def _wrapped_mean_deg(groups: _Groups, lon: FloatArray) -> FloatArray:
    """Mean longitude per group that is correct across the ±180° meridian."""
    ls = lon[groups.order]
    ref = np.repeat(ls[groups.starts], groups.counts)
    dev = np.mod(ls - ref + _DEG_HALF_TURN, _DEG_FULL_TURN) - _DEG_HALF_TURN
    mean = ls[groups.starts] + np.add.reduceat(dev, groups.starts) / groups.counts
    return np.mod(mean + _DEG_HALF_TURN, _DEG_FULL_TURN) - _DEG_HALF_TURN


def _mean_time_ns(groups: _Groups, t_ns: IntArray) -> IntArray:
    """Mean of int64 nanosecond times per group, exact (offsets from each group's first photon)."""
    ts = t_ns[groups.order]
    t0 = ts[groups.starts]
    offset = np.add.reduceat(ts - np.repeat(t0, groups.counts), groups.starts)
    return t0 + np.round(offset / groups.counts).astype(np.int64)


def bin_statistics(bin_index: npt.ArrayLike, values: npt.ArrayLike) -> pd.DataFrame:
    """Count, mean, population std and median of ``values`` per non-empty bin (vectorised).

    Parameters
    ----------
    bin_index : array_like of int, shape (N,)
        Bin of each value (any order).
    values : array_like of float, shape (N,)
        Values to summarise.

    Returns
    -------
    pandas.DataFrame
        Columns ``bin_index`` (ascending, only bins that hold values), ``n``, ``mean``, ``std``
        (population, 0 for a single value) and ``median``.

    Examples
    --------
    >>> bin_statistics([3, 1, 3, 3], [1.0, 5.0, 2.0, 6.0]).to_dict("list")
    {'bin_index': [1, 3], 'n': [1, 3], 'mean': [5.0, 3.0], 'std': [0.0, 2.160246899469287], 'median': [5.0, 2.0]}
    """
    b = np.asarray(bin_index, dtype=np.int64)
    v = np.asarray(values, dtype=np.float64)
    groups = _Groups.of(b)
    if groups.starts.size == 0:
        return pd.DataFrame({"bin_index": b[:0], "n": b[:0], "mean": v[:0], "std": v[:0], "median": v[:0]})
    mean = groups.mean(v)
    return pd.DataFrame(
        {
            "bin_index": groups.keys,
            "n": groups.counts,
            "mean": mean,
            "std": groups.std(v, mean),
            "median": groups.median(v),
        }
    )


# ----------------------------------------------------------------------------------------------
# Corrections (20 m segments -> bins) and first-photon bias
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _CorrectionGrid:
    """Finite (x, value) pairs per correction, sorted by segment-centre along-track distance."""

    series: Mapping[str, tuple[FloatArray, FloatArray]]

    @classmethod
    def from_segments(cls, segments: pd.DataFrame) -> _CorrectionGrid:
        n = len(segments)
        x0 = _column(segments, "segment_dist_x_m", n)
        length = _column(segments, "segment_length_m", n)
        centre = x0 + np.where(np.isfinite(length), length, SEGMENT_LENGTH_M) / 2.0
        source: dict[str, FloatArray] = {
            name: _column(segments, name, n)
            for name in ("tide_ocean", "tide_equilibrium", "dac", "geoid", "solar_elevation", "solar_azimuth")
        }
        dem_flag = _column(segments, "dem_flag", n)
        source["mss"] = np.where(dem_flag == DEM_FLAG_MSS, _column(segments, "dem_h", n), np.nan)
        source["tide_paper"] = np.sum([_column(segments, t, n) for t in PAPER_TIDE_TERMS], axis=0)
        order = np.argsort(centre, kind="stable")
        xs = centre[order]
        series: dict[str, tuple[FloatArray, FloatArray]] = {}
        for name, values in source.items():
            v = values[order]
            ok = np.isfinite(v) & np.isfinite(xs)
            xv, vv = xs[ok], v[ok]
            if name in _ANGLE_COLUMNS and vv.size:
                vv = np.unwrap(vv, period=_DEG_FULL_TURN)
            series[name] = (xv, vv)
        return cls(series)

    def at(self, name: str, x: FloatArray, max_distance_m: float) -> FloatArray:
        xv, vv = self.series[name]
        if xv.size == 0 or x.size == 0:
            return np.full(x.shape, np.nan)
        out = np.interp(x, xv, vv)
        right = np.clip(np.searchsorted(xv, x), 0, xv.size - 1)
        left = np.clip(right - 1, 0, xv.size - 1)
        distance = np.minimum(np.abs(x - xv[left]), np.abs(x - xv[right]))
        out = np.where(distance <= max_distance_m, out, np.nan)
        if name in _ANGLE_COLUMNS:
            out = np.mod(out, _DEG_FULL_TURN)
        return out


def _column(frame: pd.DataFrame, name: str, n: int) -> FloatArray:
    if name not in frame.columns:
        return np.full(n, np.nan)
    values: FloatArray = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
    return values


@dataclasses.dataclass(frozen=True)
class _FpbCube:
    """CAL-19 table as ``ffb_ps[strength, width]`` for the chosen dead-time slice."""

    strength: FloatArray
    width_ns: FloatArray
    ffb_ps: FloatArray

    @classmethod
    def from_tables(cls, tables: Mapping[str, npt.ArrayLike]) -> _FpbCube:
        axes = {name: np.asarray(tables[name], dtype=np.float64).ravel() for name in _FPB_TABLE_NAMES}
        cube = np.asarray(tables["ffb_corr"], dtype=np.float64)
        sizes = tuple(axes[name].size for name in _FPB_TABLE_NAMES)
        if cube.ndim != len(sizes):
            raise ValueError(f"ffb_corr has {cube.ndim} dimensions, expected 3")
        # Axis order differs between writers: take the first permutation whose shape matches
        # (dead_time, strength, width), preferring the documented order.
        perm = next(
            (p for p in itertools.permutations(range(cube.ndim)) if tuple(cube.shape[i] for i in p) == sizes),
            None,
        )
        if perm is None:
            raise ValueError(f"ffb_corr shape {cube.shape} does not match axes {sizes}")
        cube = np.transpose(cube, perm)
        dead = axes["dead_time"]
        dead_s = dead if np.nanmax(np.abs(dead)) < _DEAD_TIME_AXIS_SECONDS_MAX else dead * NS_TO_S
        cal42 = tables.get(CAL42_DEAD_TIME_KEY)
        if cal42 is not None and np.isfinite(np.asarray(cal42, dtype=np.float64)).any():
            target = float(np.nanmean(np.asarray(cal42, dtype=np.float64)))
            slice_index = int(np.nanargmin(np.abs(dead_s - target)))
        else:
            slice_index = dead.size // 2
            log.info("no CAL-42 dead time: using the middle CAL-19 dead-time slice %d", slice_index)
        s_order, w_order = np.argsort(axes["strength"]), np.argsort(axes["width"])
        plane = cube[slice_index][np.ix_(s_order, w_order)]
        return cls(axes["strength"][s_order], axes["width"][w_order], plane)

    def lookup_m(self, strength: FloatArray, width_ns: FloatArray) -> FloatArray:
        """Nearest-neighbour CAL-19 lookup, converted to metres (``ps * 1e-12 * c / 2``)."""
        i = _nearest_index(self.strength, strength)
        j = _nearest_index(self.width_ns, width_ns)
        return self.ffb_ps[i, j] * PS_TO_S * SPEED_OF_LIGHT_M_S / 2.0


def _nearest_index(axis: FloatArray, values: FloatArray) -> IntArray:
    """Index of the nearest element of the sorted ``axis`` (ties to the lower one)."""
    right = np.clip(np.searchsorted(axis, values), 0, axis.size - 1)
    left = np.clip(right - 1, 0, axis.size - 1)
    return np.where(np.abs(axis[right] - values) < np.abs(values - axis[left]), right, left).astype(np.int64)


def _fpb_per_bin(
    groups_bin: _Groups, bins: IntArray, h: FloatArray, shot: IntArray, cube: _FpbCube, per_window: int
) -> FloatArray:
    """FPB correction (m) of each bin, from its FPB window's width (h10..h90) and strength."""
    window = np.floor_divide(bins, per_window)
    groups = _Groups.of(window)
    width_ns = (
        (groups.quantile(h, FPB_HIGH_QUANTILE) - groups.quantile(h, FPB_LOW_QUANTILE))
        / (SPEED_OF_LIGHT_M_S / 2.0)
        / NS_TO_S
    )
    ss = shot[groups.order]
    n_shots = np.maximum.reduceat(ss, groups.starts) - np.minimum.reduceat(ss, groups.starts) + 1
    strength = groups.counts / n_shots
    fpb_window = cube.lookup_m(strength, width_ns)
    bin_window = np.floor_divide(groups_bin.keys, per_window)
    return fpb_window[np.searchsorted(groups.keys, bin_window)]


# ----------------------------------------------------------------------------------------------
# Selected photons and the per-bin product
# ----------------------------------------------------------------------------------------------

_Photons = dict[str, npt.NDArray[Any]]
_PHOTON_FIELDS: Final[tuple[str, ...]] = (
    "bin", "x", "h", "lat", "lon", "dt", "t_ns", "shot", "pcnt", "pcnth", "bcnt", "brate",
)


def _empty_photons() -> _Photons:
    ints = ("bin", "t_ns", "shot", "pcnt", "pcnth")
    return {k: np.zeros(0, dtype=np.int64 if k in ints else np.float64) for k in _PHOTON_FIELDS}


def _concat(a: _Photons, b: _Photons) -> _Photons:
    return {k: np.concatenate([a[k], b[k]]) for k in _PHOTON_FIELDS}


def _take(p: _Photons, mask: BoolArray) -> _Photons:
    return {k: v[mask] for k, v in p.items()}


def _select(
    photons: PhotonBlock,
    context_keys: IntArray,
    context_signal: BoolArray,
    bckgrd: pd.DataFrame | None,
    config: ResampleConfig,
) -> _Photons:
    """Shot counts, background and selection of one block; returns the selected photons."""
    keys = shot_keys(photons.pce_mframe_cnt, photons.ph_id_pulse)
    is_signal = photons.signal_conf[:, config.surface_type] >= config.min_signal_conf
    pcnt, pcnth = shot_counts(context_keys, context_signal, keys)
    x = photons.x_atc_m.astype(np.float64)
    h = photons.h_ph_m.astype(np.float64)
    dt_s = photons.delta_time_s.astype(np.float64)
    keep = is_signal & np.isfinite(x) & np.isfinite(h) & np.isfinite(dt_s)
    if config.nominal_quality_only:
        keep &= photons.quality_ph == QUALITY_NOMINAL
    if config.max_signal_photons_per_shot is not None:
        keep &= pcnth <= config.max_signal_photons_per_shot
    n_bad = int((is_signal & ~(np.isfinite(x) & np.isfinite(h) & np.isfinite(dt_s))).sum())
    if n_bad:
        log.warning("%s: %d signal photons with non-finite height/x_atc/time dropped", photons.beam, n_bad)
    idx = np.flatnonzero(keep)
    if bckgrd is not None and len(bckgrd):
        rows = background_rows(photons.pce_mframe_cnt[idx], photons.ph_id_pulse[idx], bckgrd["pce_mframe_cnt"])
        bcnt = bckgrd["bckgrd_counts"].to_numpy(dtype=np.float64)[rows]
        brate = bckgrd["bckgrd_rate"].to_numpy(dtype=np.float64)[rows]
    else:
        bcnt = brate = np.full(idx.size, np.nan)
    xs = x[idx]
    return {
        "bin": np.floor(xs / config.bin_size_m).astype(np.int64),
        "x": xs,
        "h": h[idx],
        "lat": photons.lat_deg[idx].astype(np.float64),
        "lon": photons.lon_deg[idx].astype(np.float64),
        "dt": dt_s[idx],
        "t_ns": photons.time_utc[idx].astype("datetime64[ns]").astype(np.int64),
        "shot": keys[idx],
        "pcnt": pcnt[idx],
        "pcnth": pcnth[idx],
        "bcnt": bcnt,
        "brate": brate,
    }


def _empty_frame() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=d) for c, d in _COLUMN_DTYPES.items()})


def _bins(
    p: _Photons,
    grid: _CorrectionGrid,
    cube: _FpbCube | None,
    bckgrd_missing: bool,
    config: ResampleConfig,
    *,
    beam: str,
    granule: str,
) -> pd.DataFrame:
    """Per-bin product of selected photons (all of whose bins and FPB windows are complete)."""
    if p["bin"].size == 0:
        return _empty_frame()
    g = _Groups.of(p["bin"])
    n_bins = g.keys.size
    cols: dict[str, Any] = {
        "granule": np.full(n_bins, granule, dtype=object),
        "beam": np.full(n_bins, beam, dtype=object),
        "bin_index": g.keys,
        "x_atc_m": g.keys.astype(np.float64) * config.bin_size_m,
        "lat_deg": g.mean(p["lat"]),
        "lon_deg": _wrapped_mean_deg(g, p["lon"]),
        "delta_time_s": g.mean(p["dt"]),
        "time_utc": pd.to_datetime(_mean_time_ns(g, p["t_ns"]), unit="ns", utc=True),
        "n_photons": g.counts.astype(np.int32),
        "single_photon": g.counts == 1,
    }
    h_mean = g.mean(p["h"])
    cols.update(h_mean_m=h_mean, h_median_m=g.median(p["h"]), h_std_m=g.std(p["h"], h_mean))
    for name in ("pcnt", "pcnth", "bcnt", "brate"):
        mean = g.mean(p[name])
        cols[f"{name}_mean"] = mean
        cols[f"{name}_sd"] = g.std(p[name], mean)
        cols[f"{name}_median"] = g.median(p[name])
    cols["bckgrd_missing"] = np.full(n_bins, bckgrd_missing)
    centre = cols["x_atc_m"] + config.bin_size_m / 2.0
    for out, src in _CORRECTION_SOURCES.items():
        cols[out] = grid.at(src, centre, config.max_correction_distance_m)
    if cube is not None:
        fpb = _fpb_per_bin(g, p["bin"], p["h"], p["shot"], cube, config.bins_per_fpb_window)
    else:
        fpb = np.zeros(n_bins)
    total = np.sum([cols[c] for c in _SUBTRACTED[config.correction]], axis=0) + fpb
    cols["corrections_missing"] = ~np.isfinite(total)
    cols.update(
        fpb_corr_m=fpb,
        fpb_available=np.full(n_bins, cube is not None),
        h_cor_mean_m=h_mean - total,
        h_cor_median_m=cols["h_median_m"] - total,
    )
    frame = pd.DataFrame({c: cols[c] for c in OUTPUT_COLUMNS})
    return frame.astype({c: d for c, d in _COLUMN_DTYPES.items() if d != "datetime64[ns, UTC]"})


def _fpb_cube(fpb_tables: Mapping[str, Any] | None) -> _FpbCube | None:
    if fpb_tables is None:
        return None
    if "ffb_corr" not in fpb_tables or any(n not in fpb_tables for n in _FPB_TABLE_NAMES):
        raise ValueError(f"fpb_tables needs ffb_corr, {', '.join(_FPB_TABLE_NAMES)}; got {sorted(fpb_tables)}")
    return _FpbCube.from_tables(fpb_tables)


def resample_photons(
    photons: PhotonBlock,
    segments: pd.DataFrame,
    bckgrd: pd.DataFrame | None,
    fpb_tables: Mapping[str, Any] | None,
    config: ResampleConfig,
    *,
    beam: str,
    granule: str,
) -> pd.DataFrame:
    """2 m along-track segments of one block of photons (pure; METHOD.md §3).

    Parameters
    ----------
    photons : PhotonBlock
        ALL photons of a segment range (shot counts are taken before selection).
    segments : pandas.DataFrame
        20 m segment table (:func:`~seaice_tasks.io.atl03.read_segments`) covering the photons;
        corrections are interpolated from its segment centres.
    bckgrd : pandas.DataFrame or None
        ``bckgrd_atlas`` table (:func:`~seaice_tasks.io.atl03.read_bckgrd`); None -> NaN
        ``bcnt_*``/``brate_*`` and ``bckgrd_missing`` True.
    fpb_tables : mapping or None
        CAL-19 tables (:func:`~seaice_tasks.io.atl03.read_fpb_tables`), optionally with
        :data:`CAL42_DEAD_TIME_KEY`; None -> ``fpb_corr_m`` 0 and ``fpb_available`` False.
    config : ResampleConfig
        Selection, grid and correction options.
    beam, granule : str
        Identifiers written to every row.

    Returns
    -------
    pandas.DataFrame
        One row per non-empty bin, ascending ``bin_index``; columns :data:`OUTPUT_COLUMNS`
        (documented in ``docs/segments_2m.md``).  No selected photon -> an empty frame with the
        same columns and dtypes.
    """
    keys = shot_keys(photons.pce_mframe_cnt, photons.ph_id_pulse)
    is_signal = photons.signal_conf[:, config.surface_type] >= config.min_signal_conf
    selected = _select(photons, keys, is_signal, bckgrd, config)
    return _bins(
        selected,
        _CorrectionGrid.from_segments(segments),
        _fpb_cube(fpb_tables),
        bckgrd is None,
        config,
        beam=beam,
        granule=granule,
    )


# ----------------------------------------------------------------------------------------------
# Streaming a beam / a granule from a file
# ----------------------------------------------------------------------------------------------


def _granule_key(path: str) -> str:
    try:
        return parse_granule(path).granule
    except GranuleNameError:
        info = read_atl03_info(path)
        if info.granule is not None:
            return info.granule.granule
        return os.path.splitext(os.path.basename(path))[0]


def read_optional_bckgrd(path: str, beam: str, storage_options: dict[str, Any] | None) -> pd.DataFrame | None:
    """``bckgrd_atlas`` of a beam, or None (with a warning) when it is missing or empty."""
    try:
        table = read_bckgrd(path, beam, storage_options=storage_options)
    except MissingVariableError as exc:
        log.warning("%s %s: no usable bckgrd_atlas (%s); bcnt/brate are NaN, bckgrd_missing=True", path, beam, exc)
        return None
    if table.empty:
        log.warning("%s %s: bckgrd_atlas is empty; bcnt/brate are NaN, bckgrd_missing=True", path, beam)
        return None
    return table


def read_fpb_with_dead_time(path: str, beam: str, storage_options: dict[str, Any] | None) -> dict[str, Any] | None:
    """CAL-19 first-photon-bias tables plus the CAL-42 dead times, or None when absent."""
    tables: dict[str, Any] | None = read_fpb_tables(path, beam, storage_options=storage_options)
    if tables is None:
        return None
    with open_h5(path, storage_options) as f:
        cal42 = _CAL42_PATH.format(beam=beam)
        if has_path(f, cal42):
            tables[CAL42_DEAD_TIME_KEY] = read_dataset(f, cal42)
    return tables


def _blocks(
    path: str, beam: str, chunks: list[tuple[int, int]], storage_options: dict[str, Any] | None
) -> Iterator[PhotonBlock]:
    for start, stop in chunks:
        block = read_photons(path, beam, start, stop, storage_options=storage_options)
        if len(block):
            yield block


def resample_beam(
    path: str | os.PathLike[str],
    beam: str,
    config: ResampleConfig | None = None,
    storage_options: dict[str, Any] | None = None,
    max_photons: int | None = None,
    *,
    granule: str | None = None,
) -> pd.DataFrame:
    """2 m segments of one beam of an ATL03 file, streamed by segment-row chunks.

    Equal, bit for bit, to :func:`resample_photons` on the whole beam: the photons of the last,
    possibly incomplete, FPB window (by default: the last 2 m bin) of a chunk are carried into
    the next chunk, and shot counts see the previous and next chunks' photons, so bins and shots
    that straddle a chunk boundary are complete when emitted.

    Parameters
    ----------
    path : str or os.PathLike
        Local ATL03 file or fsspec URL.
    beam : str
        Beam group, e.g. ``"gt1r"``.
    config : ResampleConfig, optional
        Defaults to ``ResampleConfig()``.
    storage_options : dict, optional
        fsspec options for remote URLs.
    max_photons : int, optional
        Photons per chunk; default ``config.max_photons_per_chunk``.
    granule : str, optional
        Granule key written to the rows; default from the file name / metadata.

    Returns
    -------
    pandas.DataFrame
        As :func:`resample_photons`.
    """
    config = ResampleConfig() if config is None else config
    text = os.fspath(path)
    granule = _granule_key(text) if granule is None else granule
    segments = read_segments(text, beam, storage_options=storage_options)
    grid = _CorrectionGrid.from_segments(segments)
    bckgrd = read_optional_bckgrd(text, beam, storage_options)
    cube = _fpb_cube(read_fpb_with_dead_time(text, beam, storage_options))
    chunks = iter_segment_chunks(
        text, beam, config.max_photons_per_chunk if max_photons is None else max_photons,
        storage_options=storage_options,
    )
    per_window = config.bins_per_fpb_window
    blocks = _blocks(text, beam, chunks, storage_options)
    current = next(blocks, None)
    previous_keys = np.zeros(0, dtype=np.int64)
    previous_signal = np.zeros(0, dtype=bool)
    carry = _empty_photons()
    last_cut: int | None = None
    frames: list[pd.DataFrame] = []
    n_chunks = 0
    while current is not None:
        following = next(blocks, None)
        keys = shot_keys(current.pce_mframe_cnt, current.ph_id_pulse)
        signal = current.signal_conf[:, config.surface_type] >= config.min_signal_conf
        ctx_keys, ctx_signal = [previous_keys, keys], [previous_signal, signal]
        if following is not None:
            ctx_keys.append(shot_keys(following.pce_mframe_cnt, following.ph_id_pulse))
            ctx_signal.append(following.signal_conf[:, config.surface_type] >= config.min_signal_conf)
        pool = _concat(carry, _select(current, np.concatenate(ctx_keys), np.concatenate(ctx_signal), bckgrd, config))
        x_next = following.x_atc_m[np.isfinite(following.x_atc_m)] if following is not None else np.zeros(0)
        if x_next.size == 0 and following is not None:
            emit = np.zeros(pool["bin"].size, dtype=bool)  # nothing binnable ahead yet: keep carrying
        elif following is None:
            emit = np.ones(pool["bin"].size, dtype=bool)
        else:
            cut = int(np.floor(x_next.min() / config.bin_size_m)) // per_window * per_window
            if last_cut is not None and cut < last_cut:
                log.warning("%s %s: along-track distance goes backwards between chunks; bins near "
                            "x=%.1f m may be split", text, beam, cut * config.bin_size_m)
            last_cut = cut if last_cut is None else max(cut, last_cut)
            emit = pool["bin"] < cut
        frames.append(_bins(_take(pool, emit), grid, cube, bckgrd is None, config, beam=beam, granule=granule))
        carry = _take(pool, ~emit)
        previous_keys, previous_signal = keys, signal
        current = following
        n_chunks += 1
    non_empty = [f for f in frames if len(f)]
    out = pd.concat(non_empty, ignore_index=True) if non_empty else _empty_frame()
    log.info("%s %s: %d chunks -> %d bins of %d photons", text, beam, n_chunks, len(out),
             int(out["n_photons"].sum()) if len(out) else 0)
    return out


def select_beams(available: Mapping[str, str], config: ResampleConfig) -> tuple[str, ...]:
    """Beams to process from ``{beam: strength}`` ("strong" / "weak" / "unknown").

    Examples
    --------
    >>> avail = {"gt1l": "weak", "gt1r": "strong", "gt2r": "strong"}
    >>> select_beams(avail, ResampleConfig())
    ('gt1r', 'gt2r')
    >>> select_beams(avail, ResampleConfig(beams=("gt1l", "gt3r")))
    ('gt1l',)
    """
    if config.beams == "all":
        return tuple(available)
    if config.beams == "strong":
        return tuple(b for b, s in available.items() if s == "strong")
    missing = [b for b in config.beams if b not in available]
    if missing:
        log.warning("requested beam(s) %s not in the granule (present: %s)", missing, list(available))
    return tuple(b for b in config.beams if b in available)


def resample_granule(
    path: str | os.PathLike[str],
    config: ResampleConfig | None = None,
    storage_options: dict[str, Any] | None = None,
    max_photons: int | None = None,
) -> dict[str, pd.DataFrame]:
    """2 m segments of every selected beam (``config.beams``) of an ATL03 granule.

    Returns
    -------
    dict
        ``{beam: frame}`` in ATLAS beam order; empty when no beam qualifies (e.g. ``"strong"``
        during a yaw-flip transition, logged).
    """
    config = ResampleConfig() if config is None else config
    text = os.fspath(path)
    info = read_atl03_info(text, storage_options=storage_options)
    beams = select_beams({b.beam: b.strength for b in info.beams}, config)
    if not beams:
        log.warning("%s: no beam selected by beams=%r (sc_orient=%d)", text, config.beams, info.sc_orient)
    granule = info.granule.granule if info.granule is not None else _granule_key(text)
    return {
        beam: resample_beam(text, beam, config, storage_options, max_photons, granule=granule) for beam in beams
    }


def to_segments_table(frame: pd.DataFrame) -> pa.Table:
    """GeoParquet-ready Arrow table of a 2 m frame in :data:`~seaice_tasks.schemas.SEGMENTS_2M_SCHEMA`.

    The point geometry (WKB, EPSG:4326) is built from ``lon_deg`` / ``lat_deg``.
    """
    from seaice_tasks.schemas import SEGMENTS_2M_SCHEMA
    from seaice_tasks.storage import geoparquet_table

    return geoparquet_table(frame, SEGMENTS_2M_SCHEMA)
