"""Quicklooks of the ``freeboard`` product: one track's panels and a day's freeboard histograms.

:func:`track_quicklook` draws one track (granule + beam) of the product as one PNG, its panels
sharing the along-track axis (km, the product's ``x_atc_m`` frame, which is ATL07/ATL10's
``seg_dist_x`` frame too):

1. a colour strip of the 2 m classes (the fraction of each class among the 2 m segments of every
   pixel column; red thick ice, blue thin ice, green open water, black no class,
   :data:`~seaice_tasks.constants.CLASS_COLOURS_RGB`);
2. heights above the mean sea surface: our 2 m ``h_cor_mean_m`` (min-max envelope and mean per
   bin), the four sea surfaces and the smoothed NASA-equation surface, NASA's ATL07 segment heights
   (its sea-surface segments marked) and ATL10's reference surface, both shifted by
   ``datum_offset_m`` onto our datum;
3. freeboard: ours (mean per bin) and ATL10's ``beam_fb_height`` (dots);
4. optionally a zoom on a short stretch with its photon cloud (signal and background), our 2 m
   heights, our reference surface, ATL07/ATL10 and the stretch's class strip.

Long tracks (up to some 500,000 rows of 2 m) are binned along track to at most
:data:`MAX_LINE_POINTS` points per line (means and min-max envelopes, so narrow leads still show in
the envelope); NASA's segments and the photons are thinned to at most :data:`MAX_NASA_POINTS` and
:data:`MAX_PHOTON_POINTS`.  :func:`freeboard_histogram` draws freeboard distributions (e.g. ours vs
ATL10 of a day) as density step histograms.

Both return PNG bytes of a fixed pixel size (:data:`QUICKLOOK_DPI`); matplotlib is used through
:class:`matplotlib.figure.Figure` and the Agg canvas (no pyplot state) and the PNG carries no
software or time stamp, so identical inputs give identical bytes.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from seaice_tasks.constants import CLASS_COLOURS_RGB
from seaice_tasks.surface.quicklook_data import GAP_RGB as _GAP_RGB
from seaice_tasks.surface.quicklook_data import (
    MAX_LINE_POINTS,
    QuicklookRows,
    _bin_stats,
    _class_raster,
    _limits,
    zoom_stretch,
)
from seaice_tasks.surface.quicklook_data import OURS_COLUMNS as _OURS_COLUMNS
from seaice_tasks.surface.quicklook_data import STRIP_CLASSES as _STRIP_CLASSES
from seaice_tasks.surface.quicklook_data import SURFACES as _SURFACES
from seaice_tasks.surface.quicklook_data import floats as _floats

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "QUICKLOOK_DPI",
    "MAX_LINE_POINTS",
    "MAX_NASA_POINTS",
    "MAX_PHOTON_POINTS",
    "QUICKLOOK_SIZE_PX",
    "HISTOGRAM_SIZE_PX",
    "track_quicklook",
    "draw_track_quicklook",
    "freeboard_histogram",
    "_bin_stats",
    "_class_raster",
]

FloatArray = npt.NDArray[np.float64]

#: Resolution of the PNGs (dots per inch; fixed, so their pixel sizes are too).
QUICKLOOK_DPI: Final[int] = 100
#: Most ATL07 / ATL10 segments drawn per series (every k-th beyond).
MAX_NASA_POINTS: Final[int] = 20_000
#: Most photons drawn in the zoom panel, signal and background each (every k-th beyond).
MAX_PHOTON_POINTS: Final[int] = 200_000

_FONT: Final[str] = "DejaVu Sans"
_FS: Final[float] = 11.0  # axis labels, notes (pt)
_FS_TICK: Final[float] = 10.0
_FS_LEGEND: Final[float] = 10.0

# Track quicklook geometry (px): axes column at the left, legends in the column at the right.
_W: Final[int] = 1600
_LEFT: Final[int] = 85
_AX_W: Final[int] = 1060
_TOP: Final[int] = 100
_STRIP_H: Final[int] = 40
_GAP: Final[int] = 10
_HEIGHTS_H: Final[int] = 470
_FB_H: Final[int] = 250
_XLABEL: Final[int] = 55
_ZOOM_TITLE: Final[int] = 45
_ZSTRIP_H: Final[int] = 26
_ZOOM_H: Final[int] = 320
_BOTTOM: Final[int] = 55
_H_OVERVIEW: Final[int] = _TOP + _STRIP_H + _GAP + _HEIGHTS_H + _GAP + _FB_H + _XLABEL + 10
_H_ZOOM: Final[int] = _H_OVERVIEW + _ZOOM_TITLE + _ZSTRIP_H + 6 + _ZOOM_H + _BOTTOM

#: Pixel size (width, height) of :func:`track_quicklook` without and with the photon zoom panel.
QUICKLOOK_SIZE_PX: Final[dict[bool, tuple[int, int]]] = {False: (_W, _H_OVERVIEW), True: (_W, _H_ZOOM)}
#: Pixel size (width, height) of :func:`freeboard_histogram`.
HISTOGRAM_SIZE_PX: Final[tuple[int, int]] = (1200, 650)

_ATL07_COLUMNS: Final[tuple[str, ...]] = (
    "seg_dist_x", "height_segment_height", "height_segment_type", "height_segment_ssh_flag",
)
_ATL10_COLUMNS: Final[tuple[str, ...]] = ("seg_dist_x", "beam_fb_height", "beam_refsurf_ndx")
_PHOTON_COLUMNS: Final[tuple[str, ...]] = ("x_atc_m", "h_m", "signal")

_C_HCOR_FILL: Final[str] = "0.82"
_C_HCOR: Final[str] = "0.45"
_C_ATL07: Final[str] = "#8c564b"
_C_ATL07_SSH: Final[str] = "#e377c2"
_C_ATL10: Final[str] = "#d62728"
_C_ZOOM_SPAN: Final[str] = "#fff1a8"
_C_FB: Final[str] = "#1f77b4"
_C_ZOOM_HCOR: Final[str] = "#17becf"


# ---------------------------------------------------------------------------------------------
# Data helpers (numpy only)
# ---------------------------------------------------------------------------------------------


def _available(frame: pd.DataFrame | None, columns: Sequence[str], name: str) -> bool:
    """Whether ``frame`` has rows; raise when it has rows but lacks a column."""
    if frame is None or len(frame) == 0:
        return False
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"track_quicklook: {name} lacks columns {missing}")
    return True


def _every(n: int, limit: int) -> int:
    """Step ``k`` of an every-k-th thinning that leaves at most ``limit`` of ``n`` items."""
    return max(1, math.ceil(n / limit))


# ---------------------------------------------------------------------------------------------
# Drawing helpers
# ---------------------------------------------------------------------------------------------


def _axes(fig: Figure, top_px: float, height_px: float, fig_h: int, sharex: Axes | None = None) -> Axes:
    """An axes of the left column, ``top_px`` below the figure's top edge, ``height_px`` high."""
    rect = (_LEFT / _W, 1.0 - (top_px + height_px) / fig_h, _AX_W / _W, height_px / fig_h)
    ax = fig.add_axes(rect, sharex=sharex)
    ax.tick_params(labelsize=_FS_TICK)
    ax.ticklabel_format(axis="both", useOffset=False, style="plain")
    return ax


def _legend(ax: Axes, handles: Sequence[Artist], *, ncol: int = 1, title: str | None = None) -> None:
    """Legend in the right-hand column beside ``ax`` (never over the data)."""
    legend = ax.legend(handles=list(handles), loc="upper left", bbox_to_anchor=(1.012, 1.0), borderaxespad=0.0,
                       frameon=False, ncol=ncol, title=title, handlelength=2.0, columnspacing=1.0,
                       prop={"family": _FONT, "size": _FS_LEGEND})
    if title is not None:
        legend.get_title().set_fontsize(_FS_LEGEND)
        legend.get_title().set_fontfamily(_FONT)
        legend.get_title().set_fontweight("bold")


def _note(ax: Axes, notes: Sequence[str]) -> None:
    """Notes (missing inputs) in the top-left corner of ``ax``."""
    if notes:
        ax.text(0.006, 0.965, "\n".join(notes), transform=ax.transAxes, ha="left", va="top", fontsize=_FS,
                fontfamily=_FONT, color="0.2", zorder=10,
                bbox={"boxstyle": "round,pad=0.3", "facecolor": "white", "edgecolor": "0.6", "alpha": 0.9})


def _ylabel(ax: Axes, text: str) -> None:
    ax.set_ylabel(text, fontsize=_FS, fontfamily=_FONT)


def _strip(ax: Axes, raster: FloatArray, x0_km: float, x1_km: float, label: str) -> None:
    """Draw a class strip raster over ``[x0_km, x1_km]`` (km)."""
    ax.imshow(raster, extent=(x0_km, x1_km, 0.0, 1.0), aspect="auto", interpolation="nearest", origin="upper")
    ax.set_xlim(x0_km, x1_km)
    ax.set_ylim(0.0, 1.0)
    ax.set_yticks([])
    ax.set_ylabel(label, fontsize=_FS, fontfamily=_FONT, rotation=0, ha="right", va="center")
    ax.tick_params(labelbottom=False)


def _rgb(colour: tuple[int, int, int]) -> tuple[float, float, float]:
    """An 8-bit RGB colour as matplotlib's 0-1 floats."""
    return colour[0] / 255.0, colour[1] / 255.0, colour[2] / 255.0


def _strip_handles(raster: FloatArray) -> list[Artist]:
    """Legend patches of the strip's classes (and of gaps when the strip has any)."""
    from matplotlib.patches import Patch

    handles: list[Artist] = [
        Patch(facecolor=_rgb(CLASS_COLOURS_RGB[code]), edgecolor="0.4", label=name)
        for code, name in _STRIP_CLASSES
    ]
    if bool(np.all(raster == np.asarray(_GAP_RGB), axis=-1).any()):
        handles.append(Patch(facecolor=_GAP_RGB, edgecolor="0.4", label="no 2 m segment"))
    return handles


def _dot(colour: str, label: str) -> Artist:
    """Legend proxy of a dot series (the plotted dots are too small to read in a legend)."""
    from matplotlib.lines import Line2D

    return Line2D([], [], linestyle="none", marker="o", markersize=4.5, markeredgewidth=0.0, color=colour,
                  label=label)


def _nice_m(value: float) -> str:
    """A bin width (m) for a legend: ``12 m``, ``1.2 km``."""
    return f"{value / 1000.0:.3g} km" if value >= 1000.0 else f"{value:.3g} m"


def _finish(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=QUICKLOOK_DPI, facecolor="white", metadata={"Software": None})
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# Track quicklook
# ---------------------------------------------------------------------------------------------


def track_quicklook(
    ours: pd.DataFrame,
    *,
    title: str,
    atl07: pd.DataFrame | None = None,
    atl10: pd.DataFrame | None = None,
    atl10_surface: pd.DataFrame | None = None,
    photons: pd.DataFrame | None = None,
    datum_offset_m: float = 0.0,
) -> bytes:
    """PNG quicklook of one track of the ``freeboard`` product beside NASA's ATL07 and ATL10.

    Parameters
    ----------
    ours : pandas.DataFrame
        One track of the ``freeboard`` product (:data:`~seaice_tasks.schemas.FREEBOARD_SCHEMA`),
        at least ``x_atc_m`` (m), ``h_cor_mean_m`` (m), ``class`` (0 thick, 1 thin, 2 water,
        255 none), ``surface_minimum_m``, ``surface_average_m``, ``surface_nearest_minimum_m``,
        ``surface_nasa_m``, ``surface_nasa_smooth_m``, ``surface_leads_m``, ``surface_m`` and ``freeboard_m`` (m).
        Any order (sorted here); any length (lines are binned to at most
        :data:`MAX_LINE_POINTS` points); all-NaN surfaces (no open water) and no rows render.
    title : str
        Figure title, e.g. ``"20191104195311_05940510 gt2r 2019-11-04"``.
    atl07 : pandas.DataFrame, optional
        ATL07 segments of the beam: ``seg_dist_x`` (m, our ``x_atc_m`` frame),
        ``height_segment_height`` (m, ATL07's datum), ``height_segment_type`` and
        ``height_segment_ssh_flag`` (1 = sea-surface segment).  Drawn at
        ``height_segment_height + datum_offset_m``.
    atl10 : pandas.DataFrame, optional
        ATL10 freeboard segments: ``seg_dist_x`` (m), ``beam_fb_height`` (m, freeboard) and
        ``beam_refsurf_ndx`` (1-based row of ``atl10_surface``).
    atl10_surface : pandas.DataFrame, optional
        ATL10 reference-surface sections: ``beam_refsurf_height`` (m, ATL07's datum); drawn as
        a step line, per ATL10 segment the height of its section + ``datum_offset_m``.
    photons : pandas.DataFrame, optional
        Photons of a short stretch: ``x_atc_m`` (m), ``h_m`` (m, our datum) and ``signal``
        (bool).  When given, a zoom panel of that stretch (its ``x_atc_m`` range) is added
        (an empty frame gives the panel with a note).
    datum_offset_m : float, default 0
        Added to ATL07/ATL10 heights (m) to put them on our datum (heights above the MSS).

    Returns
    -------
    bytes
        PNG at :data:`QUICKLOOK_DPI` dpi, :data:`QUICKLOOK_SIZE_PX` ``[photons is not None]``
        pixels (1600 x 945 without, 1600 x 1397 with the zoom panel).  Identical inputs give
        identical bytes.

    Raises
    ------
    ValueError
        When ``ours`` or a non-empty NASA / photon frame lacks a listed column.
    """
    missing = [c for c in _OURS_COLUMNS if c not in ours.columns]
    if missing:
        raise ValueError(f"track_quicklook: ours lacks columns {missing}")
    t = ours if ours["x_atc_m"].is_monotonic_increasing else ours.sort_values("x_atc_m", kind="stable")
    rows = QuicklookRows.of_frame(t, zoom_stretch(photon_arrays(photons)[0]))
    return draw_track_quicklook(rows, title=title, atl07=atl07, atl10=atl10, atl10_surface=atl10_surface,
                                photons=photons, datum_offset_m=datum_offset_m)


def photon_arrays(photons: pd.DataFrame | None) -> tuple[FloatArray, FloatArray, npt.NDArray[np.bool_]]:
    """The zoom's photons with finite position and height: ``x_atc_m``, ``h_m`` (m) and ``signal``.

    Raises
    ------
    ValueError
        When a non-empty ``photons`` lacks a column.
    """
    if not _available(photons, _PHOTON_COLUMNS, "photons") or photons is None:
        return np.empty(0), np.empty(0), np.empty(0, dtype=np.bool_)
    ph_x, ph_h = _floats(photons, "x_atc_m"), _floats(photons, "h_m")
    ph_sig = photons["signal"].to_numpy(dtype=np.bool_, na_value=False)
    keep = np.isfinite(ph_x) & np.isfinite(ph_h)
    return ph_x[keep], ph_h[keep], ph_sig[keep]


def draw_track_quicklook(
    rows: QuicklookRows,
    *,
    title: str,
    atl07: pd.DataFrame | None = None,
    atl10: pd.DataFrame | None = None,
    atl10_surface: pd.DataFrame | None = None,
    photons: pd.DataFrame | None = None,
    datum_offset_m: float = 0.0,
) -> bytes:
    """:func:`track_quicklook` of our rows gathered in ``rows`` (e.g. chunk by chunk; the other arguments alike).

    ``rows`` must have been made with the zoom stretch of ``photons`` (:func:`photon_arrays`,
    :func:`~seaice_tasks.surface.quicklook_data.zoom_stretch`).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    have07 = _available(atl07, _ATL07_COLUMNS, "atl07")
    have10 = _available(atl10, _ATL10_COLUMNS, "atl10")
    have10s = _available(atl10_surface, ("beam_refsurf_height",), "atl10_surface")
    zoom = photons is not None

    # Along-track range (m) of the overview: our track, else NASA's segments.
    nasa_x = [_floats(f, "seg_dist_x") for f, ok in ((atl07, have07), (atl10, have10)) if ok and f is not None]
    if rows.x_range is not None:
        x0, x1 = rows.x_range
    elif any(np.isfinite(a).any() for a in nasa_x):
        allx = np.concatenate([a[np.isfinite(a)] for a in nasa_x])
        x0, x1 = float(allx.min()), float(allx.max()) + 2.0
    else:
        x0, x1 = 0.0, 1000.0
    km0, km1 = x0 / 1000.0, x1 / 1000.0
    nbins = int(min(MAX_LINE_POINTS, max(1, math.ceil((x1 - x0) / 2.0))))
    bin_m = (x1 - x0) / nbins

    # NASA series inside the range (m on our datum).
    a07x = a07h = np.empty(0)
    a07ssh = np.empty(0, dtype=np.bool_)
    if have07 and atl07 is not None:
        a = atl07.sort_values("seg_dist_x", kind="stable")
        a07x, a07h = _floats(a, "seg_dist_x"), _floats(a, "height_segment_height") + datum_offset_m
        a07ssh = _floats(a, "height_segment_ssh_flag") == 1.0
        keep = np.isfinite(a07x) & (a07x >= x0) & (a07x <= x1)
        a07x, a07h, a07ssh = a07x[keep], a07h[keep], a07ssh[keep]
    a10x = a10fb = a10ref = np.empty(0)
    if have10 and atl10 is not None:
        a = atl10.sort_values("seg_dist_x", kind="stable")
        a10x, a10fb = _floats(a, "seg_dist_x"), _floats(a, "beam_fb_height")
        a10ref = np.full(a10x.size, np.nan)
        if have10s and atl10_surface is not None:
            ref_h = _floats(atl10_surface, "beam_refsurf_height")
            ndx = _floats(a, "beam_refsurf_ndx")
            ok = np.isfinite(ndx) & (ndx >= 1) & (ndx <= ref_h.size)
            a10ref[ok] = ref_h[ndx[ok].astype(np.int64) - 1] + datum_offset_m
        keep = np.isfinite(a10x) & (a10x >= x0) & (a10x <= x1)
        a10x, a10fb, a10ref = a10x[keep], a10fb[keep], a10ref[keep]

    # Photon zoom stretch (m).
    ph_x, ph_h, ph_sig = photon_arrays(photons)
    zx0, zx1 = zoom_stretch(ph_x) or (math.nan, math.nan)
    view = rows.overview(x0, x1)

    fig_w, fig_h = QUICKLOOK_SIZE_PX[zoom]
    fig = Figure(figsize=(fig_w / QUICKLOOK_DPI, fig_h / QUICKLOOK_DPI), dpi=QUICKLOOK_DPI, facecolor="white")
    FigureCanvasAgg(fig)
    fig.suptitle(title, y=1.0 - 12.0 / fig_h, va="top", fontsize=15, fontweight="bold", fontfamily=_FONT)
    n_rows = rows.n_rows
    counts = rows.class_counts
    fractions = ", ".join(f"{name} {counts[code] / max(n_rows, 1):.1%}" for code, name in _STRIP_CLASSES)
    subtitle = (f"{n_rows:,} segments of 2 m over {(x1 - x0) / 1000.0:,.1f} km ({fractions}); "
                f"ATL07/ATL10 heights shifted by {datum_offset_m:+.3f} m onto our datum")
    fig.text(0.5, 1.0 - 42.0 / fig_h, subtitle, ha="center", va="top", fontsize=_FS, fontfamily=_FONT,
             color="0.3")

    # (1) class strip.
    top = float(_TOP)
    ax_strip = _axes(fig, top, _STRIP_H, fig_h)
    raster = view.raster
    _strip(ax_strip, raster, km0, km1, "class")
    ax_strip.legend(handles=_strip_handles(raster), loc="lower right", bbox_to_anchor=(1.0, 1.0),
                    borderaxespad=0.15, frameon=False, ncol=5, handlelength=1.6, columnspacing=1.2,
                    prop={"family": _FONT, "size": _FS_LEGEND})
    ax_strip.set_title(f"2 m classes (fraction per {_nice_m((x1 - x0) / min(_AX_W, nbins))} column)",
                       fontsize=_FS, fontfamily=_FONT, loc="left", pad=3)

    # (2) heights.
    top += _STRIP_H + _GAP
    ax_h = _axes(fig, top, _HEIGHTS_H, fig_h, sharex=ax_strip)
    handles: list[Artist] = []
    centres, h_mean, h_lo, h_hi = view.centres, view.h_mean, view.h_lo, view.h_hi
    ckm = centres / 1000.0
    has = np.isfinite(h_lo)
    ax_h.fill_between(ckm, np.where(has, h_lo, 0.0), np.where(has, h_hi, 0.0), where=has, step="mid",
                      color=_C_HCOR_FILL, linewidth=0.0, zorder=1)
    handles.append(Patch(facecolor=_C_HCOR_FILL, edgecolor="none",
                         label=f"ours: 2 m h_cor_mean, min-max per {_nice_m(bin_m)}"))
    handles += ax_h.plot(ckm, h_mean, color=_C_HCOR, linewidth=0.7, zorder=2,
                         label=f"ours: 2 m h_cor_mean, mean per {_nice_m(bin_m)}")
    surface_lines: list[FloatArray] = []
    for column, name, colour, style, width in _SURFACES:
        s_mean = view.surface_means[column]
        surface_lines.append(s_mean)
        is_ref = rows.any_finite[column] and rows.same_as_reference[column]
        label = f"{name} (freeboard reference)" if is_ref else name
        handles += ax_h.plot(ckm, s_mean, color=colour, linestyle=style, linewidth=width, zorder=4, label=label)
    notes: list[str] = []
    if not any(rows.any_finite.values()):
        notes.append("no sea surface (no open water in the track)")
    if a07x.size:
        k = _every(a07x.size, MAX_NASA_POINTS)
        ax_h.plot(a07x[::k] / 1000.0, a07h[::k], linestyle="none", marker=".", markersize=2.5, color=_C_ATL07,
                  zorder=3)
        handles.append(_dot(_C_ATL07, "ATL07 heights (+offset)"))
        if a07ssh.any():
            handles += ax_h.plot(a07x[a07ssh] / 1000.0, a07h[a07ssh], linestyle="none", marker="v",
                                 markersize=4.5, color=_C_ATL07_SSH, markeredgecolor="0.2", markeredgewidth=0.4,
                                 zorder=5, label="ATL07 sea-surface segments (+offset)")
    else:
        notes.append("ATL07 not available")
    if a10x.size and np.isfinite(a10ref).any():
        k = _every(a10x.size, MAX_NASA_POINTS)
        handles += ax_h.plot(a10x[::k] / 1000.0, a10ref[::k], drawstyle="steps-mid", color=_C_ATL10,
                             linewidth=1.6, zorder=6, label="ATL10 reference surface (+offset)")
    elif a10x.size:
        notes.append("ATL10 reference surface not available")
    else:
        notes.append("ATL10 not available")
    if zoom and ph_x.size:
        ax_h.axvspan(zx0 / 1000.0, zx1 / 1000.0, color=_C_ZOOM_SPAN, zorder=0, linewidth=0.0)
        handles.append(Patch(facecolor=_C_ZOOM_SPAN, edgecolor="0.6", label="photon zoom stretch (below)"))
    _note(ax_h, notes)
    # Limits from the 2 m heights themselves (an envelope's maxima are mostly the rare blunders).
    ax_h.set_ylim(*_limits([rows.heights(), *surface_lines, a07h, a10ref], include=(0.0,),
                           top_pad=0.1 + 0.07 * len(notes)))
    ax_h.axhline(0.0, color="0.6", linewidth=0.6, linestyle=":", zorder=1)
    ax_h.grid(True, color="0.92", linewidth=0.6)
    ax_h.set_axisbelow(True)
    _ylabel(ax_h, "height above MSS (m)")
    ax_h.tick_params(labelbottom=False)
    _legend(ax_h, handles)

    # (3) freeboard.
    top += _HEIGHTS_H + _GAP
    ax_fb = _axes(fig, top, _FB_H, fig_h, sharex=ax_strip)
    fb_mean = view.fb_mean
    fb_handles: list[Artist] = []
    fb_handles += ax_fb.plot(ckm, fb_mean, color=_C_FB, linewidth=0.9, zorder=3,
                             label=f"ours: 2 m freeboard, mean per {_nice_m(bin_m)}")
    fb_notes: list[str] = []
    if not rows.fb_any:
        fb_notes.append("no freeboard (no sea surface)")
    if a10x.size:
        k = _every(a10x.size, MAX_NASA_POINTS)
        ax_fb.plot(a10x[::k] / 1000.0, a10fb[::k], linestyle="none", marker=".", markersize=3.0, color=_C_ATL10,
                   alpha=0.7, zorder=2)
        fb_handles.append(_dot(_C_ATL10, "ATL10 freeboard (beam_fb_height)"))
    else:
        fb_notes.append("ATL10 not available")
    if zoom and ph_x.size:
        ax_fb.axvspan(zx0 / 1000.0, zx1 / 1000.0, color=_C_ZOOM_SPAN, zorder=0, linewidth=0.0)
    _note(ax_fb, fb_notes)
    ax_fb.axhline(0.0, color="0.5", linewidth=0.7, linestyle=":", zorder=1)
    ax_fb.set_ylim(*_limits([rows.freeboards(), a10fb], include=(0.0,), top_pad=0.1 + 0.12 * len(fb_notes)))
    ax_fb.grid(True, color="0.92", linewidth=0.6)
    ax_fb.set_axisbelow(True)
    ax_fb.set_xlim(km0, km1)
    _ylabel(ax_fb, "freeboard (m)")
    ax_fb.set_xlabel("along-track distance (km)", fontsize=_FS, fontfamily=_FONT)
    _legend(ax_fb, fb_handles)

    # (4) photon zoom.
    if zoom:
        top += _FB_H + _XLABEL + _ZOOM_TITLE
        ax_zs = _axes(fig, top, _ZSTRIP_H, fig_h)
        ax_z = _axes(fig, top + _ZSTRIP_H + 6, _ZOOM_H, fig_h, sharex=ax_zs)
        _ylabel(ax_z, "height above MSS (m)")
        ax_z.set_xlabel("along-track distance (km)", fontsize=_FS, fontfamily=_FONT)
        if not ph_x.size:
            _strip(ax_zs, np.ones((1, 1, 3)), 0.0, 1.0, "class")
            ax_zs.set_title("Photon zoom", fontsize=_FS + 1, fontfamily=_FONT, loc="left", pad=4,
                            fontweight="bold")
            _note(ax_z, ["no photons given for the zoom stretch"])
            ax_z.set_xlim(0.0, 1.0)
            ax_z.set_xticks([])
            ax_z.set_yticks([])
        else:
            zkm0, zkm1 = zx0 / 1000.0, zx1 / 1000.0
            zrows = rows.zoom_rows()
            x, h = zrows["x"].to_numpy(dtype=np.float64), zrows["h"].to_numpy(dtype=np.float64)
            cls, surface = zrows["class"].to_numpy(dtype=np.uint8), zrows["surface_m"].to_numpy(dtype=np.float64)
            zbins = int(min(_AX_W, max(1, math.ceil((zx1 - zx0) / 2.0))))
            _strip(ax_zs, _class_raster(x, cls, zx0, zx1, zbins, 12), zkm0, zkm1, "class")
            ax_zs.set_title(f"Photon zoom: {zkm0:,.3f}-{zkm1:,.3f} km ({zx1 - zx0:,.0f} m), "
                            "ATL03 photons with our 2 m segments (class colours as above)",
                            fontsize=_FS + 1, fontfamily=_FONT, loc="left", pad=4, fontweight="bold")
            z_handles: list[Artist] = []
            bg, sig = ~ph_sig, ph_sig
            for mask, colour, size, order, name in ((bg, "0.72", 1.5, 1, "background photons"),
                                                    (sig, "0.1", 2.0, 2, "signal photons")):
                n_mask = int(mask.sum())
                k = _every(n_mask, MAX_PHOTON_POINTS)
                label = f"{name} ({n_mask:,})" if k == 1 else f"{name} (every {k}th of {n_mask:,})"
                ax_z.plot(ph_x[mask][::k] / 1000.0, ph_h[mask][::k], linestyle="none", marker=".",
                          markersize=size, markeredgewidth=0.0, color=colour, zorder=order)
                z_handles.append(_dot(colour, label))
            zx, zh, zsurf = x, h, surface
            if zx.size > MAX_LINE_POINTS:
                zc, zh, _, _ = _bin_stats(x, h, zx0, zx1, MAX_LINE_POINTS)
                _, zsurf, _, _ = _bin_stats(x, surface, zx0, zx1, MAX_LINE_POINTS)
                zx = zc
                z_label = f"ours: h_cor_mean, mean per {_nice_m((zx1 - zx0) / MAX_LINE_POINTS)}"
            else:
                zx = zx + 1.0  # bin centres
                z_label = "ours: 2 m h_cor_mean"
            z_handles += ax_z.plot(zx / 1000.0, zh, color=_C_ZOOM_HCOR, linewidth=1.1, zorder=4, label=z_label)
            z_handles += ax_z.plot(zx / 1000.0, zsurf, color="black", linestyle="--", linewidth=1.5, zorder=5,
                                   label="ours: sea surface used for freeboard")
            z_notes: list[str] = []
            if not np.isfinite(zsurf).any():
                z_notes.append("no sea surface in this stretch")
            z07 = (a07x >= zx0) & (a07x <= zx1)
            if z07.any():
                z_handles += ax_z.plot(a07x[z07] / 1000.0, a07h[z07], linestyle="none", marker="o", markersize=3.5,
                                       color=_C_ATL07, zorder=7, label="ATL07 heights (+offset)")
                if (z07 & a07ssh).any():
                    zs = z07 & a07ssh
                    z_handles += ax_z.plot(a07x[zs] / 1000.0, a07h[zs], linestyle="none", marker="v", markersize=5.5,
                                           color=_C_ATL07_SSH, markeredgecolor="0.2", markeredgewidth=0.4, zorder=8,
                                           label="ATL07 sea-surface segments (+offset)")
            elif not a07x.size:
                z_notes.append("ATL07 not available")
            z10 = (a10x >= zx0) & (a10x <= zx1)
            if z10.any() and np.isfinite(a10ref[z10]).any():
                z_handles += ax_z.plot(a10x[z10] / 1000.0, a10ref[z10], drawstyle="steps-mid", color=_C_ATL10,
                                       linewidth=1.6, zorder=6, label="ATL10 reference surface (+offset)")
            elif not a10x.size:
                z_notes.append("ATL10 not available")
            _note(ax_z, z_notes)
            sig_h = ph_h[sig] if sig.any() else ph_h
            ax_z.set_ylim(*_limits([sig_h, zh, zsurf], q=0.2, pad=0.12, top_pad=0.12 + 0.08 * len(z_notes)))
            ax_z.set_xlim(zkm0, zkm1)
            ax_z.grid(True, color="0.92", linewidth=0.6)
            ax_z.set_axisbelow(True)
            _legend(ax_z, z_handles)
    return _finish(fig)


# ---------------------------------------------------------------------------------------------
# Histograms
# ---------------------------------------------------------------------------------------------


def freeboard_histogram(
    hists: Mapping[str, tuple[npt.ArrayLike, npt.ArrayLike]],
    *,
    title: str,
) -> bytes:
    """PNG of freeboard distributions as density step histograms (e.g. ours vs ATL10 of a day).

    Parameters
    ----------
    hists : mapping of str to (array_like, array_like)
        Label -> ``(bin_edges, counts)``: ascending bin edges (m, length ``k + 1``) and segment
        counts per bin (length ``k``).  Each is drawn normalised to a density (fraction per metre:
        ``counts / (sum(counts) * bin width)``), its segment count and histogram mean in the
        legend.  Empty counts (or all zero) give a legend entry with ``n = 0`` and no line.
    title : str
        Axes title, e.g. ``"Freeboard 2019-11-04, all tracks"``.

    Returns
    -------
    bytes
        PNG at :data:`QUICKLOOK_DPI` dpi, :data:`HISTOGRAM_SIZE_PX` pixels; identical inputs give
        identical bytes.

    Raises
    ------
    ValueError
        When a histogram's edges are not one longer than its counts or do not increase.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.font_manager import FontProperties
    from matplotlib.lines import Line2D

    colours = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
    fig_w, fig_h = HISTOGRAM_SIZE_PX
    fig = Figure(figsize=(fig_w / QUICKLOOK_DPI, fig_h / QUICKLOOK_DPI), dpi=QUICKLOOK_DPI, facecolor="white")
    FigureCanvasAgg(fig)
    ax = fig.add_axes((80 / fig_w, 65 / fig_h, 760 / fig_w, (fig_h - 120) / fig_h))
    ax.tick_params(labelsize=_FS_TICK)
    handles: list[Artist] = []
    lows: list[float] = []
    highs: list[float] = []
    for i, (label, (edges_in, counts_in)) in enumerate(hists.items()):
        edges = np.asarray(edges_in, dtype=np.float64).ravel()
        counts = np.asarray(counts_in, dtype=np.float64).ravel()
        colour = colours[i % len(colours)]
        if counts.size and edges.size != counts.size + 1:
            raise ValueError(f"freeboard_histogram: {label!r} has {edges.size} edges for {counts.size} counts")
        if counts.size and not bool(np.all(np.diff(edges) > 0)):
            raise ValueError(f"freeboard_histogram: {label!r} bin edges do not increase")
        counts = np.where(np.isfinite(counts), counts, 0.0)
        total = float(counts.sum())
        if total <= 0:
            handles.append(Line2D([], [], color=colour, linewidth=1.8, label=f"{label}\nn = 0 segments"))
            continue
        density = counts / (total * np.diff(edges))
        mean = float(np.sum(0.5 * (edges[:-1] + edges[1:]) * counts) / total)
        nz = np.flatnonzero(counts > 0)
        lows.append(float(edges[nz[0]]))
        highs.append(float(edges[nz[-1] + 1]))
        handles.append(ax.stairs(density, edges, color=colour, linewidth=1.8,
                                 label=f"{label}\nn = {total:,.0f} segments, mean {mean:.3f} m"))
    if lows:
        span = max(highs) - min(lows)
        ax.set_xlim(min(lows) - 0.02 * span, max(highs) + 0.02 * span)
        ax.set_ylim(bottom=0.0)
    else:
        _note(ax, ["no freeboard values"])
    ax.axvline(0.0, color="0.5", linewidth=0.7, linestyle=":")
    ax.grid(True, color="0.92", linewidth=0.6)
    ax.set_axisbelow(True)
    ax.set_xlabel("freeboard (m)", fontsize=_FS, fontfamily=_FONT)
    ax.set_ylabel("density (1/m)", fontsize=_FS, fontfamily=_FONT)
    ax.set_title(title, fontsize=14, fontweight="bold", fontfamily=_FONT, pad=12)
    if handles:
        legend = ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
                           frameon=False, labelspacing=1.0, prop={"family": _FONT, "size": _FS_LEGEND})
        legend.set_title("density = fraction of segments per metre", prop=FontProperties(family=_FONT, size=9.5))
    return _finish(fig)
