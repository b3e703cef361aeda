"""Emulation of NASA's ATL10 freeboard step on an emulated ATL07 beam (docs/simulator_atl07_atl10.md).

Input: the per-beam ATL07 table of :func:`seaice_tasks.sim.atl07.emulate_atl07_beam` (columns named
as the ATL07 datasets).  Steps (METHOD.md §1.3, §9; ATL10 ATBD as summarised in P1 Eqs. 2-3):

1. Freeboard segments = ATL07 segments with ``height_segment_quality == 1`` and a finite height,
   in along-track order.
2. Leads = maximal runs of consecutive freeboard segments with ``height_segment_ssh_flag == 1``
   (specular leads only, as since release 003).  Per lead with heights ``h_i`` and uncertainties
   ``sigma_i`` (``height_segment_surface_error_est`` floored at ``sigma_floor_m``)::

       h_min = min h_i;  w_i = exp(-((h_i - h_min) / sigma_i)**2);  a_i = w_i / sum(w)
       h_L = sum(a_i h_i);  sigma_L**2 = sum(a_i**2 sigma_i**2)                     (Eq. 2)

3. Reference-surface sections = fixed along-track bins of ``section_length_m`` (10 km, as NASA)
   on an absolute grid ``floor(seg_dist_x / L)``; only sections holding segments are written.  A
   lead belongs to the section holding its centre.  Per section with leads::

       beta_L = (1 / sigma_L**2) / sum_M (1 / sigma_M**2);  h_ref = sum(beta_L h_L)
       sigma_ref**2 = sum(beta_L**2 sigma_L**2)                                     (Eq. 3)

   Sections without leads take ``h_ref``/``sigma_ref`` linearly interpolated in along-track distance
   between sections with leads (``beam_refsurf_interp_flag`` 1), or the nearest one beyond the
   first/last (flag 2); with no lead in the whole beam they stay NaN (flag 3).
4. ``beam_fb_height = height_segment_height - h_ref(section)``,
   ``beam_fb_unc = sqrt(surface_error_est**2 + sigma_ref**2)``, ``beam_fb_quality_flag`` = the
   section's interp flag (0 best), ``beam_refsurf_ndx`` = 1-based section row.

Examples
--------
>>> import pandas as pd
>>> df = pd.DataFrame({
...     "seg_dist_x": [10.0, 30.0, 50.0, 70.0], "latitude": [-75.0] * 4, "longitude": [-170.0] * 4,
...     "delta_time": [1.0, 2.0, 3.0, 4.0], "height_segment_height": [0.5, 0.02, 0.04, 0.6],
...     "height_segment_surface_error_est": [0.02] * 4, "height_segment_length_seg": [20.0] * 4,
...     "height_segment_ssh_flag": [0, 1, 1, 0], "height_segment_quality": [1] * 4})
>>> fb, leads, rs = emulate_atl10_beam(df)
>>> len(leads), int(leads.ssh_n[0]), int(leads.ssh_ndx[0])
(1, 2, 2)
>>> round(float(rs.beam_refsurf_height[0]), 3), int(fb.beam_refsurf_ndx[0])
(0.025, 1)
"""

from __future__ import annotations

import logging
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = [
    "ATL10_SECTION_LENGTH_M",
    "SIGMA_FLOOR_M",
    "INTERP_OWN_LEADS",
    "INTERP_INTERPOLATED",
    "INTERP_EXTRAPOLATED",
    "INTERP_UNDEFINED",
    "FREEBOARD_COPY_COLUMNS",
    "emulate_atl10_beam",
]

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: NASA's ATL10 reference-surface section length (m): ~10 km (METHOD.md §1.3).
ATL10_SECTION_LENGTH_M: Final[float] = 10_000.0
#: Floor of the per-segment height uncertainty used in Eq. 2 (m): guards sigma_i = 0.
SIGMA_FLOOR_M: Final[float] = 0.005
#: ``beam_refsurf_interp_flag`` / ``beam_fb_quality_flag`` codes (ours; 0 is best as in ATL10).
INTERP_OWN_LEADS: Final[int] = 0
INTERP_INTERPOLATED: Final[int] = 1
INTERP_EXTRAPOLATED: Final[int] = 2
INTERP_UNDEFINED: Final[int] = 3
#: Floor of a lead's variance (m^2), as R1 (METHOD.md §9).
_VAR_FLOOR_M2: Final[float] = 1e-10
_SSH_CANDIDATE: Final[int] = 1
_GOOD_QUALITY: Final[int] = 1

#: ATL07 columns copied onto the freeboard segments (ATL10 ``freeboard_segment`` heights/geophysical).
FREEBOARD_COPY_COLUMNS: Final[tuple[str, ...]] = (
    "delta_time",
    "latitude",
    "longitude",
    "seg_dist_x",
    "height_segment_id",
    "geoseg_beg",
    "geoseg_end",
    "height_segment_height",
    "height_segment_type",
    "height_segment_ssh_flag",
    "height_segment_length_seg",
    "height_segment_confidence",
    "height_segment_w_gaussian",
    "height_segment_surface_error_est",
    "photon_rate",
    "backgr_r_200",
    "backgr_r_25",
    "height_segment_mss",
    "height_segment_ocean",
    "height_segment_lpe",
    "height_segment_ib",
    "height_segment_dac",
    "height_segment_geoid",
    "height_segment_earth",
    "height_segment_load",
    "height_segment_pole",
)

_LEAD_COLUMNS: Final[tuple[str, ...]] = (
    "delta_time",
    "latitude",
    "longitude",
    "lead_dist_x",
    "lead_height",
    "lead_length",
    "lead_sigma",
    "ssh_n",
    "ssh_ndx",
)
_REFSURF_COLUMNS: Final[tuple[str, ...]] = (
    "delta_time",
    "latitude",
    "longitude",
    "beam_refsurf_dist_x",
    "beam_refsurf_height",
    "beam_refsurf_sigma",
    "beam_refsurf_interp_flag",
    "beam_lead_n",
    "beam_lead_ndx",
)
_FB_EXTRA: Final[tuple[str, ...]] = (
    "beam_fb_height",
    "beam_fb_unc",
    "beam_fb_confidence",
    "beam_fb_quality_flag",
    "beam_refsurf_ndx",
)


def _col(df: pd.DataFrame, name: str, n: int, fill: float = np.nan) -> FloatArray:
    if name in df.columns:
        return np.asarray(df[name], dtype=np.float64)
    return np.full(n, fill)


def _lead_runs(ssh: npt.NDArray[np.bool_]) -> tuple[IntArray, IntArray]:
    """Start rows and lengths of maximal runs of True."""
    padded = np.concatenate([[False], ssh, [False]]).astype(np.int8)
    edges = np.diff(padded)
    starts = np.flatnonzero(edges == 1).astype(np.int64)
    stops = np.flatnonzero(edges == -1).astype(np.int64)
    return starts, stops - starts


def _mid_rows(starts: IntArray, counts: IntArray) -> IntArray:
    return np.asarray(starts + counts // 2, dtype=np.int64)


def emulate_atl10_beam(
    atl07_beam_df: pd.DataFrame,
    config: Any | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Leads, ~10 km reference surface and freeboard of one beam (NASA Eqs. 2-3).

    Parameters
    ----------
    atl07_beam_df : pandas.DataFrame
        One row per ATL07 segment in along-track order, columns named as the ATL07 datasets
        (``seg_dist_x`` m, ``height_segment_height`` m above the MSS,
        ``height_segment_surface_error_est`` m, ``height_segment_ssh_flag``,
        ``height_segment_quality``, ``height_segment_length_seg`` m, position/time ...).
    config : ATL07EmulationConfig, optional
        Supplies ``section_length_m`` and ``sigma_floor_m`` (defaults
        :data:`ATL10_SECTION_LENGTH_M`, :data:`SIGMA_FLOOR_M`).

    Returns
    -------
    freeboard_df : pandas.DataFrame
        Freeboard segments: :data:`FREEBOARD_COPY_COLUMNS` plus ``beam_fb_height`` (m),
        ``beam_fb_unc`` (m), ``beam_fb_confidence``, ``beam_fb_quality_flag`` (0 own leads,
        1 interpolated, 2 extrapolated, 3 no reference) and ``beam_refsurf_ndx`` (1-based).
    leads_df : pandas.DataFrame
        ``lead_height`` / ``lead_sigma`` (m), ``lead_length`` (m, sum of segment lengths),
        ``lead_dist_x`` (m, centre), ``ssh_n`` and ``ssh_ndx`` (1-based first freeboard segment),
        position and time of the lead's middle segment.
    refsurf_df : pandas.DataFrame
        One row per section holding segments: ``beam_refsurf_height`` / ``_sigma`` (m),
        ``beam_refsurf_interp_flag``, ``beam_lead_n``, ``beam_lead_ndx`` (1-based first lead,
        0 when none), ``beam_refsurf_dist_x`` (m, mean of its segments), position and time of
        its middle segment.
    """
    section_m = float(getattr(config, "section_length_m", ATL10_SECTION_LENGTH_M))
    sigma_floor = float(getattr(config, "sigma_floor_m", SIGMA_FLOOR_M))
    if section_m <= 0 or sigma_floor <= 0:
        raise ValueError("section_length_m and sigma_floor_m must be positive")
    n_all = len(atl07_beam_df)
    quality = _col(atl07_beam_df, "height_segment_quality", n_all, _GOOD_QUALITY)
    height_all = _col(atl07_beam_df, "height_segment_height", n_all)
    valid = (quality == _GOOD_QUALITY) & np.isfinite(height_all)
    seg = atl07_beam_df.loc[valid].reset_index(drop=True)
    n = len(seg)
    fb = pd.DataFrame(
        {c: seg[c].to_numpy() if c in seg.columns else np.full(n, np.nan) for c in FREEBOARD_COPY_COLUMNS}
    )
    if n == 0:
        for c in _FB_EXTRA:
            fb[c] = np.empty(0)
        return (
            fb,
            pd.DataFrame({c: np.empty(0) for c in _LEAD_COLUMNS}),
            pd.DataFrame({c: np.empty(0) for c in _REFSURF_COLUMNS}),
        )
    h = _col(seg, "height_segment_height", n)
    x = _col(seg, "seg_dist_x", n)
    length = np.nan_to_num(_col(seg, "height_segment_length_seg", n), nan=0.0)
    se = _col(seg, "height_segment_surface_error_est", n)
    sigma = np.fmax(np.nan_to_num(se, nan=sigma_floor), sigma_floor)
    lat, lon, t = _col(seg, "latitude", n), _col(seg, "longitude", n), _col(seg, "delta_time", n)

    # --- leads (Eq. 2) ------------------------------------------------------------------------
    ssh = _col(seg, "height_segment_ssh_flag", n, 0) == _SSH_CANDIDATE
    starts, counts = _lead_runs(ssh)
    n_leads = starts.size
    rows = np.flatnonzero(ssh)
    lead_of = np.repeat(np.arange(n_leads), counts)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    if n_leads:
        h_min = np.minimum.reduceat(h[rows], offsets)
        w = np.exp(-(((h[rows] - h_min[lead_of]) / sigma[rows]) ** 2))
        a = w / np.bincount(lead_of, w, n_leads)[lead_of]
        h_lead = np.asarray(np.bincount(lead_of, a * h[rows], n_leads), dtype=np.float64)
        var_lead = np.asarray(
            np.fmax(np.bincount(lead_of, a**2 * sigma[rows] ** 2, n_leads), _VAR_FLOOR_M2), dtype=np.float64
        )
        last = starts + counts - 1
        lead_x = np.asarray(
            0.5 * ((x[starts] - 0.5 * length[starts]) + (x[last] + 0.5 * length[last])), dtype=np.float64
        )
        lead_len = np.asarray(np.bincount(lead_of, length[rows], n_leads), dtype=np.float64)
    else:
        empty: FloatArray = np.empty(0, dtype=np.float64)
        h_lead, var_lead, lead_x, lead_len = empty, empty, empty, empty
    mid = _mid_rows(starts, counts)
    leads = pd.DataFrame(
        {
            "delta_time": t[mid],
            "latitude": lat[mid],
            "longitude": lon[mid],
            "lead_dist_x": lead_x,
            "lead_height": h_lead,
            "lead_length": lead_len,
            "lead_sigma": np.sqrt(var_lead),
            "ssh_n": counts.astype(np.int32),
            "ssh_ndx": (starts + 1).astype(np.int32),
        }
    )

    # --- sections (Eq. 3) ---------------------------------------------------------------------
    key = np.floor(x / section_m).astype(np.int64)
    sec_keys, sec_of = np.unique(key, return_inverse=True)
    n_sec = sec_keys.size
    sec_n = np.bincount(sec_of, minlength=n_sec)
    sec_x = np.bincount(sec_of, x, n_sec) / sec_n
    order = np.argsort(sec_of, kind="stable")
    sec_start = np.concatenate([[0], np.cumsum(sec_n)[:-1]])
    sec_mid = order[sec_start + sec_n // 2]
    lead_sec = np.clip(np.searchsorted(sec_keys, np.floor(lead_x / section_m).astype(np.int64)), 0, n_sec - 1)
    lead_n = np.bincount(lead_sec, minlength=n_sec)
    inv = 1.0 / var_lead
    beta = inv / np.bincount(lead_sec, inv, n_sec)[lead_sec] if n_leads else np.empty(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        h_ref = np.where(lead_n > 0, np.bincount(lead_sec, beta * h_lead, n_sec), np.nan)
        s_ref = np.where(lead_n > 0, np.sqrt(np.bincount(lead_sec, beta**2 * var_lead, n_sec)), np.nan)
    first_lead = np.full(n_sec, n_leads, dtype=np.int64)
    np.minimum.at(first_lead, lead_sec, np.arange(n_leads, dtype=np.int64))
    first_lead[lead_n == 0] = -1
    flag = np.full(n_sec, INTERP_UNDEFINED, dtype=np.int8)
    has = lead_n > 0
    if has.any():
        flag[has] = INTERP_OWN_LEADS
        x_has = sec_x[has]
        inside = (sec_x >= x_has.min()) & (sec_x <= x_has.max())
        flag[~has & inside] = INTERP_INTERPOLATED
        flag[~has & ~inside] = INTERP_EXTRAPOLATED
        h_ref = np.where(has, h_ref, np.interp(sec_x, x_has, h_ref[has]))
        s_ref = np.where(has, s_ref, np.interp(sec_x, x_has, s_ref[has]))
    else:
        log.info("beam without specular leads: %d sections have no reference surface", n_sec)
    refsurf = pd.DataFrame(
        {
            "delta_time": t[sec_mid],
            "latitude": lat[sec_mid],
            "longitude": lon[sec_mid],
            "beam_refsurf_dist_x": sec_x,
            "beam_refsurf_height": h_ref,
            "beam_refsurf_sigma": s_ref,
            "beam_refsurf_interp_flag": flag,
            "beam_lead_n": lead_n.astype(np.int32),
            "beam_lead_ndx": (first_lead + 1).astype(np.int32),
        }
    )

    # --- freeboard ----------------------------------------------------------------------------
    fb["beam_fb_height"] = h - h_ref[sec_of]
    fb["beam_fb_unc"] = np.sqrt(np.nan_to_num(se, nan=sigma_floor) ** 2 + s_ref[sec_of] ** 2)
    fb["beam_fb_confidence"] = _col(seg, "height_segment_confidence", n)
    fb["beam_fb_quality_flag"] = flag[sec_of]
    fb["beam_refsurf_ndx"] = (sec_of + 1).astype(np.int32)
    log.debug("ATL10 emulation: %d segments, %d leads, %d sections (%d with leads)", n, n_leads, n_sec, int(has.sum()))
    return fb, leads, refsurf
