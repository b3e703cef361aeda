"""ATL03 photons -> 2 m along-track segments (METHOD.md §3): the vectorised heart of the 2 m product.

Pipeline of one beam (every step a whole-array numpy operation; no Python loop over photons,
shots or bins):

1. **Shot auxiliaries on all photons** (§3.3): shot key = ``pce_mframe_cnt * 200 + ph_id_pulse - 1``;
   ``pcnt`` = photons of the shot (any confidence), ``pcnth`` = those with
   ``signal_conf_ph[:, surface_type] >= min_signal_conf``; a run-length encoding of the shot
   keys (photons of a shot are consecutive; runs are sorted and summed only when they are not).
2. **Background** (§3.3): each photon takes the ``bckgrd_atlas`` row of its 50-shot window, found
   by the key ``pce_mframe_cnt * 4 + (ph_id_pulse - 1) // 50`` (nearest key when absent), see
   :func:`background_rows`.
3. **Selection** (§3.1): ``signal_conf_ph[:, 2] >= 3`` and ``quality_ph == 0`` (configurable),
   finite height / along-track distance / time; optionally drop "specular" shots.
4. **Binning** (§3.2, §3.4): absolute grid, bin index ``floor(x_atc / 2)``; a stable sort by bin
   (skipped when the bins are already non-decreasing, as along track), ``np.add.reduceat`` for
   sums, and for medians / FPB quantiles the bins of equal photon count stacked into one matrix
   and ``np.partition``-ed along its rows (exact; see :meth:`_Groups.ranked_sorted`).
   Empty bins are never emitted.
5. **Corrections** (§3.6): 20 m segment values interpolated (``np.interp``) to the bin centre
   along track, over finite values only.
6. **First-photon bias** (§3.5): CAL-19 lookup per FPB window (default: the 2 m bin itself).
7. **Corrected heights**: ``h - mss - tide_ocean - tide_equilibrium - fpb`` (default) or the
   authors' ``h - mss - tide - fpb`` with the six-term ``tide`` (``correction="paper"``).

Chunks (:func:`resample_beam` and the Spark job): a beam is cut into chunks of whole 20 m segment
rows, each read with a halo and keeping the 2 m bins it owns (:mod:`seaice_tasks.is2.chunks`), so
a bin -- or a laser shot -- that straddles a chunk boundary is computed once, from all its
photons; the result is identical, bit for bit, to processing the whole beam at once (tested).
The output frame is assembled column by column from the chunks' columns, so the bins are not
held twice at the end.

Column meanings and units: ``docs/segments_2m.md`` and :data:`seaice_tasks.schemas.SEGMENTS_2M_SCHEMA`.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, Final, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from seaice_tasks.config import JsonConfig
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
    MAX_PHOTONS_PER_CHUNK,
    PhotonBlock,
    read_atl03_info,
    read_bckgrd,
    read_fpb_tables,
    read_photons,
    read_segments,
)
from seaice_tasks.is2.chunks import BeamChunk, ownership_step_m, plan_beam_chunks

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
    "beam_chunks",
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
        Photons per chunk of a beam (:mod:`seaice_tasks.is2.chunks`): the work item of the Spark
        job and the read of :func:`resample_beam`; bounds memory.  The only photon-limit setting.
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
    max_photons_per_chunk: int = MAX_PHOTONS_PER_CHUNK

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


def _run_starts(values: IntArray) -> IntArray:
    """Index of the first element of each run of equal consecutive values."""
    if values.size == 0:
        return np.zeros(0, dtype=np.int64)
    change = np.empty(values.size, dtype=bool)
    change[0] = True
    np.not_equal(values[1:], values[:-1], out=change[1:])
    return np.flatnonzero(change).astype(np.int64)


@dataclasses.dataclass(frozen=True)
class _ShotTable:
    """Photons (``total``) and signal photons (``high``) per shot, by ascending unique shot key."""

    keys: IntArray
    total: IntArray
    high: IntArray

    @classmethod
    def summed(cls, keys: IntArray, total: IntArray, high: IntArray) -> _ShotTable:
        """``total`` and ``high`` summed over equal keys (any order; sorted only when needed)."""
        if keys.size > 1 and not bool(np.all(keys[1:] >= keys[:-1])):
            order = np.argsort(keys, kind="stable")
            keys, total, high = keys[order], total[order], high[order]
        starts = _run_starts(keys)
        if starts.size == keys.size:
            return cls(keys, total, high)
        return cls(keys[starts], np.add.reduceat(total, starts), np.add.reduceat(high, starts))


@dataclasses.dataclass(frozen=True)
class _ShotRuns:
    """Run-length encoding of a block's photon shot keys: runs of consecutive equal keys.

    The photons of a shot are consecutive in ATL03, so there is about one run per shot; the
    encoding is exact for any order (a shot split into several runs is summed by :meth:`table`).
    """

    keys: IntArray
    lengths: IntArray
    high: IntArray

    @classmethod
    def of(cls, keys: IntArray, signal: BoolArray | None = None) -> _ShotRuns:
        starts = _run_starts(keys)
        lengths = np.diff(np.append(starts, keys.size)).astype(np.int64)
        if signal is None or starts.size == 0:
            high = np.zeros(starts.size, dtype=np.int64)
        else:
            high = np.add.reduceat(signal, starts, dtype=np.int64)
        return cls(keys[starts], lengths, high)

    def table(self) -> _ShotTable:
        return _ShotTable.summed(self.keys, self.lengths, self.high)

    def counts(self, table: _ShotTable) -> tuple[IntArray, IntArray]:
        """``pcnt`` and ``pcnth`` of every photon of the runs, looked up in ``table``."""
        idx = np.searchsorted(table.keys, self.keys)
        if self.keys.size and (idx.max() >= table.keys.size or not np.array_equal(table.keys[idx], self.keys)):
            raise ValueError("query holds shot keys absent from keys")
        return np.repeat(table.total[idx], self.lengths), np.repeat(table.high[idx], self.lengths)


def shot_counts(
    keys: npt.ArrayLike, is_signal: npt.ArrayLike, query: npt.ArrayLike | None = None
) -> tuple[IntArray, IntArray]:
    """Photons per shot (``pcnt``) and signal photons per shot (``pcnth``), per photon.

    Photons of a shot are consecutive in ATL03, so the counts come from a run-length encoding of
    ``keys`` (no sort); runs of one shot that are not adjacent are summed after sorting the runs.

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
    k, signal = k.ravel(), signal.ravel()
    runs = _ShotRuns.of(k, signal)
    q_runs = runs if query is None else _ShotRuns.of(np.asarray(query, dtype=np.int64).ravel())
    return q_runs.counts(runs.table())


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
    # Photons come in runs of one 50-shot window: look up each run once, then repeat.
    starts = _run_starts(ph_key)
    run_key = ph_key[starts]
    right = np.clip(np.searchsorted(bg_key, run_key, side="left"), 0, bg_key.size - 1)
    left = np.clip(right - 1, 0, bg_key.size - 1)
    take_right = np.abs(bg_key[right] - run_key) < np.abs(bg_key[left] - run_key)
    take_right |= bg_key[right] == run_key
    run_row = order[np.where(take_right, right, left)].astype(np.int64)
    return np.repeat(run_row, np.diff(np.append(starts, ph_key.size)))


# ----------------------------------------------------------------------------------------------
# Vectorised grouping
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Groups:
    """Photons sorted by a group key: ``order`` (stable), group ``starts`` / ``counts`` / ``keys``.

    ``identity`` is True when the key is already non-decreasing (the usual case along track):
    ``order`` is then ``arange(N)`` and :meth:`take` returns its input without a gather.
    """

    order: IntArray
    starts: IntArray
    counts: IntArray
    keys: IntArray
    key: IntArray
    identity: bool = False

    @classmethod
    def of(cls, key: IntArray) -> _Groups:
        if key.size == 0:
            empty = np.zeros(0, dtype=np.int64)
            return cls(empty, empty, empty, empty, key, True)
        identity = bool(np.all(key[1:] >= key[:-1]))
        if identity:  # a stable sort of a non-decreasing key is the identity
            order = np.arange(key.size, dtype=np.int64)
            sk = key
        else:
            order = np.argsort(key, kind="stable").astype(np.int64)
            sk = key[order]
        starts = _run_starts(sk)
        counts = np.diff(np.append(starts, sk.size)).astype(np.int64)
        return cls(order, starts, counts, sk[starts], key, identity)

    def take(self, values: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """``values`` in group order (the input itself when the key was already sorted)."""
        return values if self.identity else values[self.order]

    def gather(self, values: npt.NDArray[Any]) -> FloatArray:
        """``values`` in group order as float64 (no copy when already both)."""
        out: FloatArray = self.take(values).astype(np.float64, copy=False)
        return out

    # The ``*_sorted`` methods take values already in group order (:meth:`gather`), so that the
    # sum, standard deviation and median of one column share a single gather.

    def sum_sorted(self, vs: FloatArray) -> FloatArray:
        out: FloatArray = np.add.reduceat(vs, self.starts)
        return out

    def mean_sorted(self, vs: FloatArray) -> FloatArray:
        return self.sum_sorted(vs) / self.counts

    def std_sorted(self, vs: FloatArray, mean: FloatArray) -> FloatArray:
        """Population standard deviation (two-pass)."""
        dev = vs - np.repeat(mean, self.counts)
        out: FloatArray = np.sqrt(np.add.reduceat(dev * dev, self.starts) / self.counts)
        return out

    def sum(self, values: npt.NDArray[Any]) -> FloatArray:
        return self.sum_sorted(self.gather(values))

    def mean(self, values: npt.NDArray[Any]) -> FloatArray:
        return self.sum(values) / self.counts

    def std(self, values: npt.NDArray[Any], mean: FloatArray) -> FloatArray:
        return self.std_sorted(self.gather(values), mean)

    @functools.cached_property
    def _by_size(self) -> tuple[IntArray, IntArray, IntArray, IntArray]:
        """Groups stacked by size: ``(group order, photon order, sizes, bucket bounds)``.

        ``group order``: groups sorted (stably) by size; ``photon order``: the group-ordered
        photons of those groups in that order, so that the groups of one size are one contiguous
        ``(groups, size)`` block; ``sizes[i]`` is the size of bucket ``i``, whose groups are
        ``group order[bounds[i]:bounds[i + 1]]``.
        """
        groups = np.argsort(self.counts, kind="stable").astype(np.int64)
        sizes = self.counts[groups]
        bounds = np.append(_run_starts(sizes), sizes.size).astype(np.int64)
        offsets = np.cumsum(sizes) - sizes  # first stacked photon of each group
        photons = np.repeat(self.starts[groups] - offsets, sizes) + np.arange(int(sizes.sum()), dtype=np.int64)
        return groups, photons, sizes[bounds[:-1]], bounds

    def _value_sorted(self, vs: FloatArray) -> FloatArray:
        """Values sorted by (group, value): groups keep their ``starts`` (NaN last in a group)."""
        n = vs.size
        rank = np.empty(n, dtype=np.int64)
        rank[np.argsort(vs)] = np.arange(n, dtype=np.int64)
        group_rank = np.repeat(np.arange(self.counts.size, dtype=np.int64), self.counts)
        out: FloatArray = vs[np.argsort(group_rank * n + rank, kind="stable")]
        return out

    def ranked_sorted(
        self, vs: FloatArray, ranks_of_size: Callable[[IntArray], list[IntArray]]
    ) -> list[FloatArray]:
        """Order statistics ``sorted(group)[rank]`` of every group, for ranks set by group size.

        ``vs`` in group order; ``ranks_of_size(sizes)`` gives, for an array of group sizes, the
        wanted 0-based ranks within a group of each size (one array per statistic; NaN sorts
        last).  Groups of equal size are stacked into one ``(groups, size)`` matrix that is
        ``partition``-ed along its rows at those ranks -- exact, one small partition per
        distinct group size instead of a global sort.  The values at given ranks do not depend
        on how ties are ordered, except for -0.0 vs +0.0: values holding a negative zero take the
        global-sort path so that results stay bit-identical to it.
        """
        if bool(np.any(np.signbit(vs) & (vs == 0))):
            ordered = self._value_sorted(vs)
            return [ordered[self.starts + r] for r in ranks_of_size(self.counts)]
        groups, photons, sizes, bounds = self._by_size
        bucket_ranks = ranks_of_size(sizes)
        stacked = vs[photons]
        outs = [np.empty(self.counts.size, dtype=np.float64) for _ in bucket_ranks]
        first = 0
        for i, size in enumerate(sizes.tolist()):
            lo, hi = int(bounds[i]), int(bounds[i + 1])
            last = first + (hi - lo) * size
            rows = stacked[first:last].reshape(hi - lo, size)
            wanted = sorted({int(r[i]) for r in bucket_ranks})
            if size > 1:
                rows.partition(wanted, axis=1)
            for out, r in zip(outs, bucket_ranks, strict=True):
                out[lo:hi] = rows[:, int(r[i])]
            first = last
        result: list[FloatArray] = []
        for out in outs:
            unstacked = np.empty_like(out)
            unstacked[groups] = out
            result.append(unstacked)
        return result

    def median_sorted(self, vs: FloatArray) -> FloatArray:
        lo, hi = self.ranked_sorted(vs, lambda size: [(size - 1) // 2, size // 2])
        out: FloatArray = 0.5 * (lo + hi)
        return out

    def median(self, values: npt.NDArray[Any]) -> FloatArray:
        return self.median_sorted(self.gather(values))

    def quantiles_sorted(self, vs: FloatArray, qs: tuple[float, ...]) -> list[FloatArray]:
        """Linear-interpolation quantiles (``numpy.quantile`` default method) per group."""

        def low_high(size: IntArray) -> list[IntArray]:
            out: list[IntArray] = []
            for q in qs:
                lo = np.floor(q * (size - 1)).astype(np.int64)
                out += [lo, np.minimum(lo + 1, size - 1)]
            return out

        values = self.ranked_sorted(vs, low_high)
        result: list[FloatArray] = []
        for i, q in enumerate(qs):
            pos = q * (self.counts - 1)
            lo = np.floor(pos).astype(np.int64)
            a, b = values[2 * i], values[2 * i + 1]
            result.append(a + (pos - lo) * (b - a))
        return result

    def quantile(self, values: npt.NDArray[Any], q: float) -> FloatArray:
        """Linear-interpolation quantile (``numpy.quantile`` default method) per group."""
        return self.quantiles_sorted(self.gather(values), (q,))[0]


def _wrapped_mean_deg(groups: _Groups, lon: FloatArray) -> FloatArray:
    """Mean longitude per group that is correct across the ±180° meridian."""
    ls = groups.take(lon)
    ref = np.repeat(ls[groups.starts], groups.counts)
    dev = np.mod(ls - ref + _DEG_HALF_TURN, _DEG_FULL_TURN) - _DEG_HALF_TURN
    mean = ls[groups.starts] + np.add.reduceat(dev, groups.starts) / groups.counts
    out: FloatArray = np.mod(mean + _DEG_HALF_TURN, _DEG_FULL_TURN) - _DEG_HALF_TURN
    return out


def _mean_time_ns(groups: _Groups, t_ns: IntArray) -> IntArray:
    """Mean of int64 nanosecond times per group, exact (offsets from each group's first photon)."""
    ts = groups.take(t_ns)
    t0 = ts[groups.starts]
    offset = np.add.reduceat(ts - np.repeat(t0, groups.counts), groups.starts)
    out: IntArray = t0 + np.round(offset / groups.counts).astype(np.int64)
    return out


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
            # all finite: share ``xs`` itself, so that :meth:`at_all` finds the distances once
            xv, vv = (xs, v) if bool(ok.all()) else (xs[ok], v[ok])
            if name in _ANGLE_COLUMNS and vv.size:
                vv = np.unwrap(vv, period=_DEG_FULL_TURN)
            series[name] = (xv, vv)
        return cls(series)

    def at(self, name: str, x: FloatArray, max_distance_m: float) -> FloatArray:
        return self.at_all((name,), x, max_distance_m)[name]

    def at_all(self, names: Iterable[str], x: FloatArray, max_distance_m: float) -> dict[str, FloatArray]:
        """Corrections ``names`` at ``x``: NaN farther than ``max_distance_m`` from a finite value.

        The "near a finite value" mask is computed once per distinct set of segment centres.
        """
        near: dict[int, BoolArray] = {}
        result: dict[str, FloatArray] = {}
        for name in names:
            xv, vv = self.series[name]
            if xv.size == 0 or x.size == 0:
                result[name] = np.full(x.shape, np.nan)
                continue
            out = np.interp(x, xv, vv)
            mask = near.get(id(xv))
            if mask is None:
                right = np.clip(np.searchsorted(xv, x), 0, xv.size - 1)
                left = np.clip(right - 1, 0, xv.size - 1)
                distance = np.minimum(np.abs(x - xv[left]), np.abs(x - xv[right]))
                mask = near[id(xv)] = distance <= max_distance_m
            out = np.where(mask, out, np.nan)
            if name in _ANGLE_COLUMNS:
                out = np.mod(out, _DEG_FULL_TURN)
            result[name] = out
        return result


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
    groups_bin: _Groups,
    bins: IntArray,
    h: FloatArray,
    shot: IntArray,
    cube: _FpbCube,
    per_window: int,
    h_bin_sorted: FloatArray | None = None,
) -> FloatArray:
    """FPB correction (m) of each bin, from its FPB window's width (h10..h90) and strength.

    With one bin per window the bin groups are the window groups (``h_bin_sorted``: ``h``
    already in bin-group order, when the caller has it).
    """
    if per_window == 1:
        groups = groups_bin
        hs = groups.gather(h) if h_bin_sorted is None else h_bin_sorted
    else:
        groups = _Groups.of(np.floor_divide(bins, per_window))
        hs = groups.gather(h)
    h_high, h_low = groups.quantiles_sorted(hs, (FPB_HIGH_QUANTILE, FPB_LOW_QUANTILE))
    width_ns = (h_high - h_low) / (SPEED_OF_LIGHT_M_S / 2.0) / NS_TO_S
    ss = groups.take(shot)
    n_shots = np.maximum.reduceat(ss, groups.starts) - np.minimum.reduceat(ss, groups.starts) + 1
    strength = groups.counts / n_shots
    fpb_window = cube.lookup_m(strength, width_ns)
    if per_window == 1:
        return fpb_window
    bin_window = np.floor_divide(groups_bin.keys, per_window)
    out: FloatArray = fpb_window[np.searchsorted(groups.keys, bin_window)]
    return out


# ----------------------------------------------------------------------------------------------
# Selected photons and the per-bin product
# ----------------------------------------------------------------------------------------------

_Photons = dict[str, npt.NDArray[Any]]
_PHOTON_FIELDS: Final[tuple[str, ...]] = (
    "bin", "x", "h", "lat", "lon", "dt", "t_ns", "shot", "pcnt", "pcnth", "bcnt", "brate",
)


#: Per-bin output columns of one block (numpy arrays; ``time_utc`` as int64 ns, without the
#: constant ``granule`` / ``beam`` columns, added by :func:`_frame`).
_Columns = dict[str, npt.NDArray[Any]]


def _take(p: _Photons, mask: BoolArray) -> _Photons:
    return {k: v[mask] for k, v in p.items()}


def _shot_inputs(photons: PhotonBlock, config: ResampleConfig) -> tuple[IntArray, BoolArray]:
    """Shot key and "signal" flag (``pcnth``) of every photon of a block."""
    keys = shot_keys(photons.pce_mframe_cnt, photons.ph_id_pulse)
    is_signal: BoolArray = photons.signal_conf[:, config.surface_type] >= config.min_signal_conf
    return keys, is_signal


def _select(
    photons: PhotonBlock,
    keys: IntArray,
    is_signal: BoolArray,
    runs: _ShotRuns,
    shots: _ShotTable,
    bckgrd: pd.DataFrame | None,
    config: ResampleConfig,
    source: str,
) -> _Photons:
    """Shot counts, background and selection of one block; returns the selected photons.

    ``keys`` / ``is_signal``: :func:`_shot_inputs` of the block; ``runs``: their run-length
    encoding; ``shots``: the shot table (:class:`_ShotTable`) of the block.
    """
    pcnt, pcnth = runs.counts(shots)
    x = np.asarray(photons.x_atc_m, dtype=np.float64)
    finite = np.isfinite(x) & np.isfinite(photons.h_ph_m) & np.isfinite(photons.delta_time_s)
    keep = is_signal & finite
    if config.nominal_quality_only:
        keep &= photons.quality_ph == QUALITY_NOMINAL
    if config.max_signal_photons_per_shot is not None:
        keep &= pcnth <= config.max_signal_photons_per_shot
    n_bad = int((is_signal & ~finite).sum())
    if n_bad:
        log.warning("%s %s: %d signal photons with non-finite height/x_atc/time dropped", source, photons.beam,
                    n_bad)
    del finite
    idx = np.flatnonzero(keep)
    del keep
    pool: _Photons = {}

    def put(name: str, source: npt.NDArray[Any], dtype: type[np.generic], *, gathered: bool = False) -> None:
        out = np.empty(idx.size, dtype=dtype)
        if gathered:
            out[:] = source
        elif source.dtype == out.dtype:
            np.take(source, idx, out=out)
        else:
            out[:] = source[idx]
        pool[name] = out

    put("x", x, np.float64)
    put("bin", np.floor(pool["x"] / config.bin_size_m).astype(np.int64), np.int64, gathered=True)
    put("h", photons.h_ph_m, np.float64)
    put("lat", photons.lat_deg, np.float64)
    put("lon", photons.lon_deg, np.float64)
    put("dt", photons.delta_time_s, np.float64)
    put("t_ns", photons.time_utc.astype("datetime64[ns]", copy=False).view(np.int64), np.int64)
    put("shot", keys, np.int64)
    put("pcnt", pcnt, np.int64)
    put("pcnth", pcnth, np.int64)
    if bckgrd is not None and len(bckgrd):
        rows = background_rows(photons.pce_mframe_cnt[idx], photons.ph_id_pulse[idx], bckgrd["pce_mframe_cnt"])
        put("bcnt", bckgrd["bckgrd_counts"].to_numpy(dtype=np.float64)[rows], np.float64, gathered=True)
        put("brate", bckgrd["bckgrd_rate"].to_numpy(dtype=np.float64)[rows], np.float64, gathered=True)
    else:
        put("bcnt", np.full(idx.size, np.nan), np.float64, gathered=True)
        put("brate", np.full(idx.size, np.nan), np.float64, gathered=True)
    return {k: pool[k] for k in _PHOTON_FIELDS}


def _empty_frame() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=d) for c, d in _COLUMN_DTYPES.items()})


def _bins(
    p: _Photons,
    grid: _CorrectionGrid,
    cube: _FpbCube | None,
    bckgrd_missing: bool,
    config: ResampleConfig,
) -> _Columns:
    """Per-bin columns of selected photons (all of whose bins and FPB windows are complete).

    Every column is built once in its output dtype (see :func:`_frame`); each photon column is
    gathered into bin order once and shared by its mean, standard deviation and median.
    """
    if p["bin"].size == 0:
        return {}
    g = _Groups.of(p["bin"])
    n_bins = g.keys.size
    x_atc = g.keys.astype(np.float64) * config.bin_size_m
    cols: _Columns = {
        "bin_index": g.keys,
        "x_atc_m": x_atc,
        "lat_deg": g.mean(p["lat"]),
        "lon_deg": _wrapped_mean_deg(g, p["lon"]),
        "delta_time_s": g.mean(p["dt"]),
        "time_utc": _mean_time_ns(g, p["t_ns"]),
        "n_photons": g.counts.astype(np.int32),
        "single_photon": g.counts == 1,
    }
    hs = g.gather(p["h"])
    h_mean = g.mean_sorted(hs)
    h_median = g.median_sorted(hs)
    cols.update(h_mean_m=h_mean, h_median_m=h_median, h_std_m=g.std_sorted(hs, h_mean))
    for name in ("pcnt", "pcnth", "bcnt", "brate"):
        vs = g.gather(p[name])
        mean = g.mean_sorted(vs)
        cols[f"{name}_mean"] = mean
        cols[f"{name}_sd"] = g.std_sorted(vs, mean)
        cols[f"{name}_median"] = g.median_sorted(vs)
        del vs
    cols["bckgrd_missing"] = np.full(n_bins, bckgrd_missing)
    centre = x_atc + config.bin_size_m / 2.0
    corrections = grid.at_all(_CORRECTION_SOURCES.values(), centre, config.max_correction_distance_m)
    for out, src in _CORRECTION_SOURCES.items():
        cols[out] = corrections[src]
    if cube is not None:
        fpb = _fpb_per_bin(g, p["bin"], p["h"], p["shot"], cube, config.bins_per_fpb_window, hs)
    else:
        fpb = np.zeros(n_bins)
    total = np.sum([cols[c] for c in _SUBTRACTED[config.correction]], axis=0) + fpb
    cols["corrections_missing"] = ~np.isfinite(total)
    cols.update(
        fpb_corr_m=fpb,
        fpb_available=np.full(n_bins, cube is not None),
        h_cor_mean_m=h_mean - total,
        h_cor_median_m=h_median - total,
    )
    return cols


def _frame(parts: list[_Columns], *, beam: str, granule: str) -> pd.DataFrame:
    """One DataFrame (:data:`OUTPUT_COLUMNS`) of the per-block columns ``parts`` (emptied here).

    Columns are concatenated one at a time and each block's piece is released right after, and
    the frame adopts the arrays without copying or consolidating them: the peak is the output
    plus one column, not twice the output (``pd.concat`` of per-block frames).
    """
    parts = [part for part in parts if part and part["bin_index"].size]
    if not parts:
        return _empty_frame()
    n_rows = sum(int(part["bin_index"].size) for part in parts)
    cols: dict[str, Any] = {}
    for name, dtype in _COLUMN_DTYPES.items():
        if name == "granule":
            cols[name] = np.full(n_rows, granule, dtype=object)
            continue
        if name == "beam":
            cols[name] = np.full(n_rows, beam, dtype=object)
            continue
        pieces = [part.pop(name) for part in parts]
        values = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
        del pieces
        if name == "time_utc":
            cols[name] = pd.to_datetime(values, unit="ns", utc=True)
        else:
            cols[name] = values.astype(dtype, copy=False)
    return pd.DataFrame(cols, copy=False)


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
    owned: tuple[float, float] | None = None,
    source: str = "",
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
    owned : (float, float), optional
        Keep only the bins whose start ``x_atc`` (m) lies in ``[lo, hi)`` (a chunk's own bins,
        :class:`~seaice_tasks.is2.chunks.BeamChunk`); None keeps all.
    source : str
        The file the photons come from, named in warnings (default: the granule key).

    Returns
    -------
    pandas.DataFrame
        One row per non-empty bin, ascending ``bin_index``; columns :data:`OUTPUT_COLUMNS`
        (documented in ``docs/segments_2m.md``).  No selected photon -> an empty frame with the
        same columns and dtypes.
    """
    cols = _chunk_columns(photons, _CorrectionGrid.from_segments(segments), bckgrd, _fpb_cube(fpb_tables), config,
                          owned, source or granule)
    return _frame([cols], beam=beam, granule=granule)


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


def _chunk_columns(
    photons: PhotonBlock,
    grid: _CorrectionGrid,
    bckgrd: pd.DataFrame | None,
    cube: _FpbCube | None,
    config: ResampleConfig,
    owned: tuple[float, float] | None,
    source: str,
) -> _Columns:
    """Per-bin columns of one block of photons, keeping the bins whose start lies in ``owned``."""
    keys, is_signal = _shot_inputs(photons, config)
    runs = _ShotRuns.of(keys, is_signal)
    selected = _select(photons, keys, is_signal, runs, runs.table(), bckgrd, config, source)
    del keys, is_signal, runs
    if owned is not None:
        x_bin = selected["bin"].astype(np.float64) * config.bin_size_m  # as x_atc_m of the bins
        own = (x_bin >= owned[0]) & (x_bin < owned[1])
        if not bool(own.all()):
            selected = _take(selected, own)
    return _bins(selected, grid, cube, bckgrd is None, config)


def beam_chunks(segments: pd.DataFrame, config: ResampleConfig) -> list[BeamChunk]:
    """The chunks of a beam (:mod:`seaice_tasks.is2.chunks`) from its 20 m segment table."""
    return plan_beam_chunks(segments["segment_dist_x_m"].to_numpy(dtype=np.float64),
                            segments["segment_ph_cnt"].to_numpy(), segments["ph_index_beg"].to_numpy(),
                            max_photons=config.max_photons_per_chunk,
                            step_m=ownership_step_m(config.bin_size_m, config.fpb_window_m))


def resample_beam(
    path: str | os.PathLike[str],
    beam: str,
    config: ResampleConfig | None = None,
    storage_options: dict[str, Any] | None = None,
    *,
    granule: str | None = None,
) -> pd.DataFrame:
    """2 m segments of one beam of an ATL03 file, chunk by chunk with bounded memory.

    The beam is cut into chunks of at most ``config.max_photons_per_chunk`` photons, each read
    with a halo and keeping the bins it owns (:mod:`seaice_tasks.is2.chunks`) -- the same chunks
    as the Spark job's work items -- so the result equals :func:`resample_photons` on the whole
    beam, bit for bit.

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
    chunks = beam_chunks(segments, config)
    parts = []
    for chunk in chunks:
        block = read_photons(text, beam, chunk.read_start, chunk.read_stop, storage_options=storage_options)
        parts.append(_chunk_columns(block, grid, bckgrd, cube, config, (chunk.x_lo, chunk.x_hi), text))
        del block
    out = _frame(parts, beam=beam, granule=granule)
    log.info("%s %s: %d chunks -> %d bins of %d photons", text, beam, len(chunks), len(out),
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
        beam: resample_beam(text, beam, config, storage_options, granule=granule) for beam in beams
    }


def to_segments_table(frame: pd.DataFrame) -> pa.Table:
    """GeoParquet-ready Arrow table of a 2 m frame in :data:`~seaice_tasks.schemas.SEGMENTS_2M_SCHEMA`.

    The point geometry (WKB, EPSG:4326) is built from ``lon_deg`` / ``lat_deg``.
    """
    from seaice_tasks.schemas import SEGMENTS_2M_SCHEMA
    from seaice_tasks.storage import geoparquet_table

    return geoparquet_table(frame, SEGMENTS_2M_SCHEMA)
