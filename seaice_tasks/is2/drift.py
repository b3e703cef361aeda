"""Automatic drift shift between a Sentinel-2 scene and the ICESat-2 tracks that cross it.

The papers shifted each scene by eye (Table I: 0-550 m).  Here the rigid shift ``d`` (EPSG:3976
metres, the ice motion from the S2 to the IS2 time) maximises the agreement between what the
image says along the shifted track and what the photons say:

* **S2 side**: the lead indicator of each pixel (1 thin ice or open water, 0 thick ice, NaN
  unlabeled);
* **photon side**: the *lowness* of each 2 m segment, ``-(h_cor_mean - floor)`` clipped to
  ``height_clip_m``, where the floor is a low percentile of the heights per ``floor_block_m``
  block (the sea surface varies by decimetres over tens of km; leads are centimetres above it,
  floes decimetres);
* **score**: the Pearson correlation of the two over the segments on labelled pixels.

The search is coarse-to-fine (:class:`~seaice_tasks.is2.colocate.ColocateConfig`): the whole
±``search_radius_m`` square at ``coarse_step_m`` on the lead indicator box-smoothed to that
scale, with the lowness smoothed alike; the ``candidates`` best coarse shifts (at least
``exclusion_m`` apart) are refined at ``fine_step_m`` on the full-resolution raster, and the
best refined peak once more at ``final_step_m``.  A narrow peak can rank low on the smoothed
surface (sea ice has false peaks of similar height at 40 m resolution), so several candidates
are refined.  The confidence is the best refined correlation over the best other candidate's.
An estimate is used only with enough S2 leads under
the track (``min_leads``), a peak correlation of at least ``min_correlation`` and a confidence
of at least ``min_confidence``; otherwise the shift is zero and flagged low-confidence (all
thick ice, fully clouded, no photons: never an exception).

Shifts are searched in EPSG:3976 axes and applied in the scene CRS through the local Jacobian
(:func:`~seaice_tasks.is2.colocate.local_jacobian`).  Vectorised over segments and shifts (in
blocks), no Python loop per segment or pixel.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from seaice_tasks.constants import SeaIceClass
from seaice_tasks.is2.colocate import ColocateConfig, SceneGrid, lead_runs

__all__ = ["DriftInput", "DriftEstimate", "lead_indicator", "photon_height_above_floor", "estimate_drift",
           "agreement"]

FloatArray = npt.NDArray[np.float64]
#: Elements of one (shifts x segments) block of the search.
_BLOCK_ELEMENTS: Final[int] = 4_000_000
#: Bin size of the 2 m segments (m).
_SEGMENT_M: Final[float] = 2.0
#: Confidence reported when nothing away from the peak correlates positively.
_CONFIDENCE_CAP: Final[float] = 100.0
_SECOND_FLOOR: Final[float] = 0.01
#: Shifts that keep fewer labelled segments than this fraction of the best-covered shift do not compete.
_MIN_COVERAGE_RATIO: Final[float] = 0.5


def lead_indicator(labels: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """1 for thin ice and open water, 0 for thick ice, NaN for anything else (float32)."""
    out = np.full(labels.shape, np.nan, dtype=np.float32)
    out[labels == SeaIceClass.THICK_ICE] = 0.0
    out[(labels == SeaIceClass.THIN_ICE) | (labels == SeaIceClass.OPEN_WATER)] = 1.0
    return out


def photon_height_above_floor(h: FloatArray, x_atc: FloatArray, block_m: float, percentile: float) -> FloatArray:
    """Height above the local floor: ``h`` minus the ``percentile`` of its ``block_m`` block, interpolated.

    The floor of each block sits at the block centre and is linearly interpolated between
    centres (held flat beyond the first and last); NaN heights stay NaN.

    Examples
    --------
    >>> x = np.arange(0.0, 4000.0, 2.0)
    >>> h = np.where(x % 1000 < 50, 0.0, 0.3) + 2e-5 * x  # a lead in every block, a tilted sea
    >>> r = photon_height_above_floor(h, x, 1000.0, 1.0)
    >>> bool(np.all(np.abs(r - np.where(x % 1000 < 50, 0.0, 0.3)) < 0.06))
    True
    """
    h = np.asarray(h, dtype=np.float64)
    x = np.asarray(x_atc, dtype=np.float64)
    ok = np.isfinite(h)
    if not ok.any():
        return np.full(h.shape, np.nan)
    block = np.floor(x[ok] / block_m).astype(np.int64)
    frame = pd.DataFrame({"b": block, "h": h[ok], "x": x[ok]})
    grouped = frame.groupby("b", sort=True)
    floor = grouped["h"].quantile(percentile / 100.0).to_numpy(dtype=np.float64)
    centre = (grouped["b"].first().to_numpy(dtype=np.float64) + 0.5) * block_m
    return np.asarray(h - np.interp(x, centre, floor), dtype=np.float64)


@dataclasses.dataclass(frozen=True)
class DriftInput:
    """Segments of the tracks under one scene, in the scene CRS at zero shift.

    Attributes
    ----------
    x, y : ndarray
        Segment centres in the scene CRS (m).
    above_floor : ndarray
        :func:`photon_height_above_floor` of each segment (m; NaN where no height).
    contiguous : ndarray of bool
        Row ``i`` directly follows row ``i - 1`` on the same track (2 m apart).
    """

    x: FloatArray
    y: FloatArray
    above_floor: FloatArray
    contiguous: npt.NDArray[np.bool_]


@dataclasses.dataclass(frozen=True)
class DriftEstimate:
    """Result of :func:`estimate_drift`.

    Attributes
    ----------
    dx_m, dy_m : float
        Shift to apply (EPSG:3976 m): the estimate when accepted, else 0.
    estimated_dx_m, estimated_dy_m : float
        Best shift of the search (NaN when there was nothing to search).
    correlation_zero, correlation : float
        Correlation at zero shift and at the applied shift (NaN without labelled segments).
    agreement_zero, agreement_applied : float
        Lead/ice agreement (:func:`agreement`) at zero shift and at the applied shift.
    confidence : float
        Peak / second-peak correlation ratio (NaN without a search).
    n_leads : int
        S2 lead runs under the tracks at zero shift.
    accepted : bool
        The estimate is used.
    reason : str
        Why not, when not accepted.
    """

    dx_m: float
    dy_m: float
    estimated_dx_m: float
    estimated_dy_m: float
    correlation_zero: float
    correlation: float
    agreement_zero: float
    agreement_applied: float
    confidence: float
    n_leads: int
    accepted: bool
    reason: str


def _lowness(above: FloatArray, clip: tuple[float, float]) -> FloatArray:
    return -np.clip(above, clip[0], clip[1])


def _smooth(values: FloatArray, contiguous: npt.NDArray[np.bool_], n: int) -> FloatArray:
    """Running mean over ``n`` rows within each contiguous run (NaN-aware)."""
    if n <= 1:
        return values
    run = np.cumsum(~contiguous)
    frame = pd.DataFrame({"run": run, "v": values})
    out = frame.groupby("run", sort=False)["v"].transform(lambda s: s.rolling(n, center=True, min_periods=1).mean())
    return np.asarray(out.to_numpy(dtype=np.float64), dtype=np.float64)


def _box_smooth(ind: npt.NDArray[np.float32], size: int) -> npt.NDArray[np.float32]:
    """Mean of ``ind`` over a ``size`` x ``size`` box around each pixel (NaN where under half is labelled)."""
    if size <= 1:
        return ind
    from scipy.ndimage import uniform_filter

    valid = np.isfinite(ind)
    total = uniform_filter(np.where(valid, ind, 0.0).astype(np.float64), size, mode="constant")
    frac = uniform_filter(valid.astype(np.float64), size, mode="constant")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(frac >= 0.5, total / frac, np.nan).astype(np.float32)


def _candidates(shifts: FloatArray, corr: FloatArray, n: int, separation: float) -> list[FloatArray]:
    """Up to ``n`` best shifts at least ``separation`` apart (greedy, best first; ties nearest zero)."""
    order = np.lexsort((np.hypot(shifts[:, 0], shifts[:, 1]), -np.nan_to_num(corr, nan=-np.inf)))
    chosen: list[FloatArray] = []
    for i in order:
        if not np.isfinite(corr[i]) or len(chosen) >= n:
            break
        if all(math.hypot(*(shifts[i] - c)) > separation for c in chosen):
            chosen.append(shifts[i].copy())
    return chosen


def _correlations(grid: SceneGrid, raster: npt.NDArray[np.float32], x: FloatArray, y: FloatArray,
                  low: FloatArray, offsets: FloatArray) -> FloatArray:
    """Pearson correlation of raster values at (x, y) - offset with ``low``, per offset row.

    NaN for offsets that leave under :data:`_MIN_COVERAGE_RATIO` of the best offset's segments
    on labelled pixels (among the offsets of this call).  The points' fractional pixels are
    computed once; an offset moves them all by one fractional-pixel displacement, and the
    values are gathered from the flattened raster with a NaN cell for "outside".
    """
    out = np.full(len(offsets), np.nan)
    counts = np.zeros(len(offsets))
    ok = np.isfinite(low)
    x, y, low = x[ok], y[ok], low[ok]
    if x.size == 0:
        return out
    rows, cols = grid.shape
    row_f, col_f = grid.fractional_pixel(x, y)
    d_row, d_col = grid.to_pixel(offsets[:, 0], offsets[:, 1])
    flat = np.append(raster.ravel().astype(np.float64), np.nan)  # index rows * cols: outside
    low_sq = low * low
    step = max(1, _BLOCK_ELEMENTS // x.size)
    for s0 in range(0, len(offsets), step):
        r = np.floor(row_f[None, :] - d_row[s0:s0 + step, None])
        c = np.floor(col_f[None, :] - d_col[s0:s0 + step, None])
        inside = (r >= 0) & (r < rows) & (c >= 0) & (c < cols)
        index = np.where(inside, r * cols + c, rows * cols).astype(np.int64)
        vals = flat[index]
        valid = np.isfinite(vals)
        v = np.where(valid, vals, 0.0)
        w = valid.astype(np.float64)
        n = w.sum(axis=1)
        sv, sp = v.sum(axis=1), w @ low
        svv, spp, svp = np.einsum("ij,ij->i", v, v), w @ low_sq, v @ low
        with np.errstate(invalid="ignore", divide="ignore"):
            cov = n * svp - sv * sp
            den = np.sqrt(np.maximum(n * svv - sv * sv, 0.0) * np.maximum(n * spp - sp * sp, 0.0))
            out[s0:s0 + step] = np.where((den > 0) & (n >= 3), cov / den, np.nan)
        counts[s0:s0 + step] = n
    # a shift that leaves few segments on labelled pixels correlates by chance: only shifts keeping
    # at least half the best coverage compete
    out[counts < _MIN_COVERAGE_RATIO * counts.max()] = np.nan
    return out


def _grid_shifts(centre: FloatArray, half: float, step: float) -> FloatArray:
    n = math.floor(half / step + 1e-9)
    axis = np.arange(-n, n + 1, dtype=np.float64) * step
    gx, gy = np.meshgrid(axis, axis, indexing="xy")
    return np.column_stack([gx.ravel() + centre[0], gy.ravel() + centre[1]])


def _best(shifts: FloatArray, corr: FloatArray) -> tuple[FloatArray, float]:
    """Best shift (ties: the one nearest zero, then the first) and its correlation."""
    if not np.isfinite(corr).any():
        return np.zeros(2), math.nan
    top = np.nanmax(corr)
    cand = np.flatnonzero(corr >= top - 1e-12)
    i = cand[np.argmin(np.hypot(shifts[cand, 0], shifts[cand, 1]))]
    return shifts[i].copy(), float(corr[i])


def agreement(labels: npt.NDArray[np.uint8], above_floor: FloatArray, lead_height_m: float) -> float:
    """Fraction of labelled segments where S2 and photons agree on lead (thin/water; below ``lead_height_m``) or not."""
    ind = lead_indicator(labels)
    ok = np.isfinite(ind) & np.isfinite(above_floor)
    if not ok.any():
        return math.nan
    return float(np.mean((ind[ok] > 0.5) == (above_floor[ok] < lead_height_m)))


def estimate_drift(data: DriftInput, grid: SceneGrid, labels: npt.NDArray[np.uint8], jacobian: FloatArray,
                   config: ColocateConfig) -> DriftEstimate:
    """The drift shift of one scene from the segments under it (see the module docstring).

    Parameters
    ----------
    data : DriftInput
        Segments (scene CRS, zero shift) with heights above the floor.
    grid : SceneGrid
        The label raster's grid.
    labels : ndarray of uint8
        Label raster (0 thick, 1 thin, 2 water, 255 unlabeled: nodata or cloud).
    jacobian : ndarray (2, 2)
        EPSG:3976 -> scene CRS derivative at the scene (:func:`~seaice_tasks.is2.colocate.local_jacobian`).
    config : ColocateConfig
        Search parameters.
    """
    ind = lead_indicator(labels)
    low = _lowness(data.above_floor, config.height_clip_m)
    zero_labels, _, _ = grid.sample(labels, data.x, data.y)
    zero_ind = lead_indicator(zero_labels)
    n_leads = lead_runs(zero_ind > 0.5, data.contiguous, config.min_lead_segments)
    corr_zero = float(_correlations(grid, ind, data.x, data.y, low, np.zeros((1, 2)))[0])
    agree_zero = agreement(zero_labels, data.above_floor, config.lead_height_m)
    nan = math.nan

    def result(shift: FloatArray, est: FloatArray, corr: float, confidence: float, accepted: bool,
               reason: str) -> DriftEstimate:
        off = jacobian @ shift
        applied, _, _ = grid.sample(labels, data.x - off[0], data.y - off[1])
        return DriftEstimate(float(shift[0]), float(shift[1]), float(est[0]), float(est[1]), corr_zero,
                             corr if accepted else corr_zero, agree_zero,
                             agreement(applied, data.above_floor, config.lead_height_m), confidence,
                             n_leads, accepted, reason)

    if not np.isfinite(zero_ind).any() and not np.isfinite(low).any():
        return result(np.zeros(2), np.full(2, nan), nan, nan, False,
                      "no labelled pixel or photon height under the track")
    # coarse: the raster box-smoothed to the coarse step, the lowness smoothed alike, every shift
    k = max(1, round(config.coarse_step_m / max(grid.pixel_size_m, 1e-9)))
    coarse = _box_smooth(ind, k)
    n_smooth = max(1, round(k * grid.pixel_size_m / _SEGMENT_M))
    low_s = _smooth(low, data.contiguous, n_smooth)
    sub = slice(None, None, max(1, n_smooth // 4))
    shifts = _grid_shifts(np.zeros(2), config.search_radius_m, config.coarse_step_m)
    corr = _correlations(grid, coarse, data.x[sub], data.y[sub], low_s[sub], shifts @ jacobian.T)
    starts = _candidates(shifts, corr, config.candidates, config.exclusion_m)
    if not starts:
        return result(np.zeros(2), np.full(2, nan), nan, nan, False, "no labelled pixel under the shifted track")
    # fine: each candidate on the full-resolution raster; the best refined peak wins
    refined: list[tuple[float, FloatArray]] = []
    half = slice(None, None, 2)  # every other 2 m segment: still 2-3 per 10 m pixel
    for start in starts:
        fine = _grid_shifts(start, config.coarse_step_m, config.fine_step_m)
        best, peak = _best(fine, _correlations(grid, ind, data.x[half], data.y[half], low[half], fine @ jacobian.T))
        if math.isfinite(peak):
            refined.append((peak, best))
    if not refined:
        return result(np.zeros(2), np.full(2, nan), nan, nan, False, "no labelled pixel under the shifted track")
    refined.sort(key=lambda pb: (-pb[0], math.hypot(*pb[1])))
    peak, best = refined[0]
    others = [p for p, b in refined[1:] if math.hypot(*(b - best)) > config.exclusion_m]
    second = max(others) if others else nan
    confidence = (_CONFIDENCE_CAP if not math.isfinite(second) or second <= 0
                  else min(_CONFIDENCE_CAP, peak / max(second, _SECOND_FLOOR)))
    final = _grid_shifts(best, config.fine_step_m, config.final_step_m)
    cand, value = _best(final, _correlations(grid, ind, data.x, data.y, low, final @ jacobian.T))
    if math.isfinite(value) and value >= peak:
        best, peak = cand, value
    reasons = []
    if n_leads < config.min_leads:
        reasons.append(f"{n_leads} S2 lead run(s) under the track, fewer than {config.min_leads}")
    if peak < config.min_correlation:
        reasons.append(f"peak correlation {peak:.3f} below {config.min_correlation}")
    if confidence < config.min_confidence:
        reasons.append(f"confidence {confidence:.2f} below {config.min_confidence}")
    if reasons:
        return result(np.zeros(2), best, peak, confidence, False, "; ".join(reasons))
    return result(best, best, peak, confidence, True, "")
