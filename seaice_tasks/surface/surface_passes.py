"""The sea surface of a track in two passes over along-track chunks (:mod:`seaice_tasks.trackio`).

The surfaces of :mod:`seaice_tasks.surface.sea_surface` reach far: a row takes its window's value,
windows without leads are interpolated from the nearest windows with leads however far, the
``leads`` surface interpolates between lead centres, the distance to the nearest lead is
unbounded.  None of that fits a halo, so the track is read twice:

1. :class:`SurfaceScan` (pass 1, chunks with a halo of ``radius_m`` metres and the lead-edge
   trim plus two rows): the window chain and per window its statistics (minimum, mean, Eq. 2-3
   surface and uncertainty, lead count, the ``nearest_k`` lowest lead rows), the x of its first
   and last rows; per lead its centre, Eq. 2 height and variance (a lead that runs past a chunk is
   carried until it ends); per chunk its first and last lead row.  :meth:`SurfaceScan.finish`
   turns them into :class:`SurfaceTables` (the ``leads`` smoothing runs there, over all leads).
2. :func:`surface_rows` (pass 2, chunks with a halo of ``smooth_rows`` rows): every row of the
   chunk from the tables.  A row of a window without leads takes ``np.interp`` between the last
   row before it and the first row after it that have a value -- first and last rows of windows
   with leads, all in the tables -- which is what ``np.interp`` over every row reads; the running
   minimum needs ``smooth_rows`` neighbours (the NASA surface is finite everywhere once a track
   has a lead, so its fill-in of NaNs never reaches further); the nearest lead row is one of the
   chunk's or the last before / first after it.

Every value is the one the whole track in memory gives, bit for bit: the same arithmetic on the
same operands.  The per-window and per-lead statistics are the memory that grows with the track
(a few floats per 5 km window and per lead).

Where the science goes: a new lead detector replaces :func:`row_inputs`' ``water`` (a per-row
rule; give its reach in rows to :attr:`SurfaceScan.halo_rows`); a new window estimator adds a
statistic in :meth:`SurfaceScan._window` and a column filled by :func:`_filled` in
:func:`surface_rows`; a new lead estimator adds a per-lead value in :meth:`SurfaceScan._leads`
and its use in :meth:`SurfaceScan.finish` / :func:`surface_rows`.
"""

from __future__ import annotations

import dataclasses
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from seaice_tasks.is2.features import window_chain
from seaice_tasks.surface.sea_surface import (
    _BIN_M,
    _THIN,
    _WATER,
    ESTIMATORS,
    FLAG_EXTRAPOLATED,
    FLAG_INTERPOLATED,
    FLAG_NO_WATER,
    FLAG_OWN_LEADS,
    SeaSurfaceConfig,
    _nearest,
    _trim_edges,
    empty_surface,
    lead_heights,
    lead_runs,
    nasa_lead_surface,
    running_nanmin,
    segment_sigma,
    smooth_leads,
)
from seaice_tasks.trackio import TrackChunk

__all__ = ["RowInputs", "row_inputs", "SurfaceScan", "SurfaceTables", "surface_rows", "SURFACE_COLUMNS"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: The per-window statistics filled along track, in output order.
_WINDOW_ESTIMATORS: Final[tuple[str, ...]] = ("minimum", "average", "nasa")
#: The columns :func:`surface_rows` gives, in order.
SURFACE_COLUMNS: Final[tuple[str, ...]] = (
    *(f"surface_{name}_m" for name in ESTIMATORS), "surface_nasa_smooth_m", "surface_leads_m", "surface_m",
    "surface_sigma_m", "surface_flag", "window_leads", "lead_distance_m",
)


@dataclasses.dataclass(frozen=True)
class RowInputs:
    """The per-row inputs of the surfaces for consecutive rows of a track (m unless stated).

    ``consecutive[i]``: row ``i + 1`` follows row ``i`` without a gap; ``water``: the lead rows
    (open water, usable, the edge trim applied; right for rows ``trim + 1`` away from the ends of
    the rows given, or at the ends of the track).
    """

    x: FloatArray
    h: FloatArray
    cls: IntArray
    sigma: FloatArray
    usable: BoolArray
    consecutive: BoolArray
    water: BoolArray


def trim_rows(config: SeaSurfaceConfig) -> int:
    """Rows trimmed at either end of a run of open water (``lead_edge_trim_m``)."""
    return round(config.lead_edge_trim_m / _BIN_M)


def row_inputs(x: FloatArray, h: FloatArray, cls: IntArray, sd: FloatArray, n_ph: FloatArray, bins: IntArray,
               config: SeaSurfaceConfig) -> RowInputs:
    """:class:`RowInputs` of consecutive rows: heights, classes (0 thick .. 2 water), photon sd and count, bins."""
    usable = np.isfinite(h) & (h <= config.max_height_m)
    sigma = segment_sigma(sd, n_ph, config.sigma_floor_m)
    n = x.size
    consecutive = np.ones(max(n - 1, 0), dtype=np.bool_) if config.lead_runs == "rows" else np.diff(bins) == 1
    water = _trim_edges(usable & (cls == _WATER), consecutive, trim_rows(config))
    return RowInputs(x, h, cls, sigma, usable, consecutive, water)


@dataclasses.dataclass(frozen=True)
class SurfaceTables:
    """What pass 1 keeps of a track (module docstring); pass 2 needs nothing else but the chunk.

    ``edges[name]``: the (x, value) of the first and last rows of every window with a value of
    surface ``name`` (``nearest_minimum``: their own nearest-minimum values), ascending in x.
    """

    rows: int
    starts: IntArray
    stats: dict[str, FloatArray]
    nasa_sigma: FloatArray
    leads_per_window: IntArray
    lowest: list[tuple[FloatArray, FloatArray]]
    edges: dict[str, tuple[FloatArray, FloatArray]]
    lead_x: FloatArray
    lead_smooth: FloatArray
    lead_smooth_var: FloatArray
    water_lo: IntArray
    water_first: FloatArray
    water_last: FloatArray
    halo_rows: int


class SurfaceScan:
    """Pass 1 over a track's chunks (module docstring): feed :meth:`add` every chunk, then :meth:`finish`."""

    def __init__(self, config: SeaSurfaceConfig) -> None:
        self.config = config
        self._trim = trim_rows(config)
        self._anchor = 0
        self._rows = 0
        self._starts: list[IntArray] = []
        self._x_first: list[float] = []   # x of each window's first row
        self._x_before: list[float] = []  # x of the row before each window's first row (NaN for row 0)
        self._stats: dict[str, list[float]] = {name: [] for name in (*_WINDOW_ESTIMATORS, "nasa_sigma")}
        self._leads_per_window: list[int] = []
        self._lowest: list[tuple[FloatArray, FloatArray]] = []
        self._lead_x: list[FloatArray] = []
        self._lead_h: list[FloatArray] = []
        self._lead_var: list[FloatArray] = []
        self._open: tuple[float, FloatArray, FloatArray] | None = None  # a lead running on: x of its start, h, sigma
        self._water_lo: list[int] = []
        self._water_first: list[float] = []
        self._water_last: list[float] = []
        self._last_x = np.nan

    @property
    def halo_m(self) -> float:
        """Metres of halo pass 1 needs (a window's reach)."""
        return self.config.radius_m

    @property
    def halo_rows(self) -> int:
        """Rows of halo pass 1 needs beyond the metres: the edge trim, one row to see a lead go on, one more."""
        return self._trim + 2

    def add(self, chunk: TrackChunk, rows: RowInputs) -> None:
        """Take one chunk in (its held rows' inputs), in along-track order."""
        self._rows = chunk.rows
        if chunk.hi == chunk.lo:
            return
        off = chunk.start
        starts, stops, self._anchor = window_chain(rows.x, self.config.radius_m, anchor=self._anchor, offset=off,
                                                   until=chunk.hi)
        for s, e in zip((starts - off).tolist(), (stops - off).tolist(), strict=True):
            self._window(rows, s, e)
            self._x_first.append(float(rows.x[s]))
            self._x_before.append(float(rows.x[s - 1]) if s + off > 0 else np.nan)
        self._starts.append(starts)
        self._leads(chunk, rows)
        own = chunk.own
        x_water = rows.x[own][rows.water[own]]
        self._water_lo.append(chunk.lo)
        self._water_first.append(float(x_water[0]) if x_water.size else np.nan)
        self._water_last.append(float(x_water[-1]) if x_water.size else np.nan)
        if chunk.last:
            self._last_x = float(rows.x[own][-1])

    def _window(self, r: RowInputs, lo: int, hi: int) -> None:
        """The statistics of the window of held rows ``[lo, hi)``."""
        cfg = self.config
        leads_mask = r.water[lo:hi]
        if not leads_mask.any() and cfg.lead_fallback == "thin":
            leads_mask = r.usable[lo:hi] & ((r.cls[lo:hi] == _WATER) | (r.cls[lo:hi] == _THIN))
        if not leads_mask.any():
            for values in self._stats.values():
                values.append(np.nan)
            self._leads_per_window.append(0)
            self._lowest.append((np.empty(0), np.empty(0)))
            return
        rows = np.flatnonzero(leads_mask) + lo
        hw = r.h[rows]
        self._stats["minimum"].append(hw.min())
        self._stats["average"].append(hw.mean())
        lowest = rows[np.argsort(r.h[rows], kind="stable")[:cfg.nearest_k]]
        lowest = lowest[np.argsort(r.x[lowest], kind="stable")]
        self._lowest.append((r.x[lowest], r.h[lowest]))
        ls, le = lead_runs(leads_mask, r.consecutive[lo:hi - 1] if hi - lo > 1 else np.empty(0, np.bool_))
        h_ref, s_ref, spread, n_leads = nasa_lead_surface(r.h[lo:hi], r.sigma[lo:hi], ls, le, cfg.weight_form)
        self._stats["nasa"].append(h_ref)
        self._stats["nasa_sigma"].append(np.sqrt(s_ref**2 + spread**2 / n_leads))
        self._leads_per_window.append(n_leads)

    def _leads(self, chunk: TrackChunk, r: RowInputs) -> None:
        """Eq. 2 height, variance and centre of every lead that ends in the chunk's owned rows."""
        own = chunk.own
        a, b = own.start, own.stop
        starts, stops = lead_runs(r.water[a:b], r.consecutive[a:b - 1])
        starts, stops = starts + a, stops + a
        goes_on = bool(not chunk.last and r.water[b] and r.consecutive[b - 1])
        carried, self._open = self._open, None
        if starts.size and goes_on and stops[-1] == b:  # the last run continues in the next chunk
            x0, h0, s0 = (carried if carried is not None and starts[-1] == a
                          else (float(r.x[starts[-1]]), np.empty(0), np.empty(0)))
            self._open = (x0, np.concatenate([h0, r.h[starts[-1]:b]]), np.concatenate([s0, r.sigma[starts[-1]:b]]))
            if starts[-1] == a:
                carried = None
            starts, stops = starts[:-1], stops[:-1]
        if carried is not None:  # the first run ends a lead begun before the chunk
            x0, h0, s0 = carried
            end = int(stops[0])
            h_c, var_c = lead_heights(np.concatenate([h0, r.h[a:end]]), np.concatenate([s0, r.sigma[a:end]]),
                                      np.array([0]), np.array([h0.size + end - a]), self.config.weight_form)
            self._lead_x.append(np.array([0.5 * (x0 + r.x[end - 1])]))
            self._lead_h.append(h_c)
            self._lead_var.append(var_c)
            starts, stops = starts[1:], stops[1:]
        if starts.size:
            h_l, var_l = lead_heights(r.h, r.sigma, starts, stops, self.config.weight_form)
            self._lead_x.append(0.5 * (r.x[starts] + r.x[stops - 1]))
            self._lead_h.append(h_l)
            self._lead_var.append(var_l)

    def finish(self) -> SurfaceTables:
        """The tables of the whole track (after its last chunk)."""
        cfg = self.config
        starts = np.concatenate(self._starts) if self._starts else np.empty(0, np.int64)
        stats = {name: np.asarray(values, dtype=np.float64) for name, values in self._stats.items()}
        x_last = np.append(np.asarray(self._x_before[1:], dtype=np.float64), self._last_x)
        x_first = np.asarray(self._x_first, dtype=np.float64)
        edges = {}
        for name in (*_WINDOW_ESTIMATORS, "nasa_sigma"):
            have = np.isfinite(stats["nasa" if name == "nasa_sigma" else name])
            edges[name] = _edge_table(x_first[have], x_last[have], stats[name][have], stats[name][have])
        near_first, near_last = [], []
        have_near = np.asarray([lx.size > 0 for lx, _ in self._lowest], dtype=np.bool_)
        for w in np.flatnonzero(have_near).tolist():
            lx, lh = self._lowest[w]
            near_first.append(lh[_nearest(lx, x_first[w:w + 1])][0])
            near_last.append(lh[_nearest(lx, x_last[w:w + 1])][0])
        edges["nearest_minimum"] = _edge_table(x_first[have_near], x_last[have_near], np.asarray(near_first),
                                               np.asarray(near_last))
        lead_x = np.concatenate(self._lead_x) if self._lead_x else np.empty(0)
        lead_h = np.concatenate(self._lead_h) if self._lead_h else np.empty(0)
        lead_var = np.concatenate(self._lead_var) if self._lead_var else np.empty(0)
        smooth, smooth_var = smooth_leads(lead_x, lead_h, lead_var, cfg.lead_kernel_m)
        return SurfaceTables(
            rows=self._rows, starts=starts, stats=stats, nasa_sigma=stats["nasa_sigma"],
            leads_per_window=np.asarray(self._leads_per_window, dtype=np.int64), lowest=self._lowest, edges=edges,
            lead_x=lead_x, lead_smooth=smooth, lead_smooth_var=smooth_var,
            water_lo=np.asarray(self._water_lo, dtype=np.int64),
            water_first=np.asarray(self._water_first, dtype=np.float64),
            water_last=np.asarray(self._water_last, dtype=np.float64),
            halo_rows=max(cfg.smooth_rows, self._trim + 1),
        )


def _edge_table(x_first: FloatArray, x_last: FloatArray, v_first: FloatArray,
                v_last: FloatArray) -> tuple[FloatArray, FloatArray]:
    """(x, value) of the first and last rows of windows, interleaved in along-track order."""
    x = np.column_stack([x_first, x_last]).ravel()
    v = np.column_stack([v_first, v_last]).ravel()
    return x.astype(np.float64), v.astype(np.float64)


def _filled(x: FloatArray, own_values: FloatArray, edges: tuple[FloatArray, FloatArray]) -> tuple[FloatArray, IntArray]:
    """Rows' own values, else ``np.interp`` over the windows' edge rows: ``np.interp`` over every row with a value.

    (Rows that share an x are never cut apart by a window's start, which is the first row beyond
    an x: they have one value.)  Flags: 0 own value, 1 interpolated, 2 beyond the first or last
    row with a value, 3 none in the track.
    """
    flag = np.full(x.size, FLAG_NO_WATER, dtype=np.int64)
    edge_x, edge_v = edges
    if not edge_x.size:
        return np.full(x.size, np.nan), flag
    have = np.isfinite(own_values)
    out = np.array(own_values, dtype=np.float64)
    out[~have] = np.interp(x[~have], edge_x, edge_v)
    flag[:] = FLAG_INTERPOLATED
    flag[(x < edge_x[0]) | (x > edge_x[-1])] = FLAG_EXTRAPOLATED
    flag[have] = FLAG_OWN_LEADS
    return out, flag


def surface_rows(tables: SurfaceTables, chunk: TrackChunk, r: RowInputs, config: SeaSurfaceConfig) -> pd.DataFrame:
    """Pass 2: the surface columns (:data:`SURFACE_COLUMNS`) of the chunk's owned rows.

    ``r`` holds the chunk's rows (:attr:`TrackChunk.frame`, read with a halo of at least
    ``tables.halo_rows`` rows); the chunks are those of pass 1 (the same ``chunk_rows``).
    """
    own = chunk.own
    if chunk.hi == chunk.lo:
        return empty_surface()
    owner = np.searchsorted(tables.starts, chunk.row_numbers(), side="right") - 1
    x = r.x
    held: dict[str, FloatArray] = {}
    flag = np.full(x.size, FLAG_NO_WATER, dtype=np.int64)
    for name in ESTIMATORS:
        values = (_nearest_rows(tables, owner, x) if name == "nearest_minimum"
                  else tables.stats[name][owner])
        held[name], f = _filled(x, values, tables.edges[name])
        if name == "nasa":
            flag = f
    sigma_row = _filled(x, tables.nasa_sigma[owner], tables.edges["nasa_sigma"])[0][own]
    nasa = held["nasa"]
    smooth = (running_nanmin(nasa, config.smooth_rows, x, config.split_gap_m) if config.smooth_rows
              else nasa.copy())
    out = {f"surface_{name}_m": held[name][own] for name in ESTIMATORS}
    out["surface_nasa_smooth_m"] = smooth[own]
    x_own = x[own]
    if tables.lead_x.size:
        out["surface_leads_m"] = np.interp(x_own, tables.lead_x, tables.lead_smooth)
        leads_sigma = np.sqrt(np.interp(x_own, tables.lead_x, tables.lead_smooth_var))
    else:
        out["surface_leads_m"], leads_sigma = np.full(x_own.size, np.nan), np.full(x_own.size, np.nan)
    reference = out[f"surface_{config.reference}_m"]
    if config.reference == "leads":
        sigma_row = leads_sigma
    sigma_row = np.hypot(sigma_row, config.surface_sigma_floor_m)  # NaN stays NaN
    return pd.DataFrame({
        **out,
        "surface_m": reference,
        "surface_sigma_m": sigma_row,
        "surface_flag": flag[own].astype(np.uint8),
        "window_leads": tables.leads_per_window[owner[own]].astype(np.int32),
        "lead_distance_m": _lead_distance(tables, chunk.lo, x_own, r.water[own]),
    })


def _nearest_rows(tables: SurfaceTables, owner: IntArray, x: FloatArray) -> FloatArray:
    """The ``nearest_minimum`` value of rows of windows with leads (NaN for the others)."""
    values = np.full(x.size, np.nan)
    for w in np.unique(owner).tolist():
        lx, lh = tables.lowest[w]
        if lx.size:
            mine = owner == w
            values[mine] = lh[_nearest(lx, x[mine])]
    return values


def _lead_distance(tables: SurfaceTables, lo: int, x: FloatArray, water: BoolArray) -> FloatArray:
    """Distance (m) of the rows to the nearest lead row: the chunk's own, the last before or the first after."""
    before = tables.water_last[(tables.water_lo < lo) & np.isfinite(tables.water_last)]
    after = tables.water_first[(tables.water_lo > lo) & np.isfinite(tables.water_first)]
    points = np.concatenate([before[-1:], x[water], after[:1]])
    if not points.size:
        return np.full(x.size, np.nan)
    return np.asarray(np.abs(x - points[_nearest(points, x)]), dtype=np.float64)
