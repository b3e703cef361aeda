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

from seaice_tasks.constants import CLASS_COLOURS_RGB, H5_FILL_THRESHOLD, SeaIceClass

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
    "freeboard_histogram",
]

FloatArray = npt.NDArray[np.float64]

#: Resolution of the PNGs (dots per inch; fixed, so their pixel sizes are too).
QUICKLOOK_DPI: Final[int] = 100
#: Most points of one line of our 2 m product in the overview panels (bins along track).
MAX_LINE_POINTS: Final[int] = 2500
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

#: Class codes of the strip, top to bottom within a column, with their legend names.
_STRIP_CLASSES: Final[tuple[tuple[SeaIceClass, str], ...]] = (
    (SeaIceClass.THICK_ICE, "thick ice"),
    (SeaIceClass.THIN_ICE, "thin ice"),
    (SeaIceClass.OPEN_WATER, "open water"),
    (SeaIceClass.UNLABELED, "no class"),
)
#: Strip colour of pixel columns without any 2 m segment (a gap in the track).
_GAP_RGB: Final[tuple[float, float, float]] = (1.0, 1.0, 1.0)

#: Our surfaces: column, legend name, colour, line style, width.
_SURFACES: Final[tuple[tuple[str, str, str, str, float], ...]] = (
    ("surface_minimum_m", "sea surface: minimum", "#1f77b4", "-", 1.3),
    ("surface_average_m", "sea surface: average", "#ff7f0e", "-", 1.3),
    ("surface_nearest_minimum_m", "sea surface: nearest minimum", "#9467bd", "-", 1.1),
    ("surface_nasa_m", "sea surface: NASA equation", "#2ca02c", "-", 1.3),
    ("surface_nasa_smooth_m", "sea surface: NASA eq., smoothed", "#0b4d0b", "--", 1.6),
    ("surface_leads_m", "sea surface: leads (2 km kernel)", "#e377c2", "-", 1.8),
)
_OURS_COLUMNS: Final[tuple[str, ...]] = (
    "x_atc_m", "h_cor_mean_m", "class", *(c for c, *_ in _SURFACES), "surface_m", "freeboard_m",
)
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


def _floats(frame: pd.DataFrame, column: str) -> FloatArray:
    """A column as float64 (m), NaN for missing values and HDF5 fill values."""
    values = frame[column].to_numpy(dtype=np.float64, na_value=np.nan)
    return np.where(np.abs(values) < H5_FILL_THRESHOLD, values, np.nan)


def _every(n: int, limit: int) -> int:
    """Step ``k`` of an every-k-th thinning that leaves at most ``limit`` of ``n`` items."""
    return max(1, math.ceil(n / limit))


def _bin_stats(x: FloatArray, y: FloatArray, x0: float, x1: float,
               nbins: int) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Mean, minimum and maximum of ``y`` in ``nbins`` equal bins of ``x`` over ``[x0, x1]``.

    Parameters
    ----------
    x : numpy.ndarray of float
        Along-track positions (m), ascending.
    y : numpy.ndarray of float
        Values at ``x`` (any unit); NaN values take no part.
    x0, x1 : float
        The binned range (m), ``x1 > x0``; values outside it take no part.
    nbins : int
        Number of bins (>= 1).

    Returns
    -------
    tuple of numpy.ndarray
        Bin centres (m), and per bin the mean, minimum and maximum of ``y`` (NaN for empty bins,
        so lines break at gaps).
    """
    width = (x1 - x0) / nbins
    centres = x0 + (np.arange(nbins, dtype=np.float64) + 0.5) * width
    mean, lo, hi = (np.full(nbins, np.nan) for _ in range(3))
    ok = np.isfinite(x) & np.isfinite(y) & (x >= x0) & (x <= x1)
    if not ok.any():
        return centres, mean, lo, hi
    xv, yv = x[ok], y[ok]
    idx = np.clip(((xv - x0) / width).astype(np.int64), 0, nbins - 1)
    counts = np.bincount(idx, minlength=nbins)
    sums = np.bincount(idx, weights=yv, minlength=nbins)
    have = counts > 0
    mean[have] = sums[have] / counts[have]
    starts = np.flatnonzero(np.concatenate(([True], idx[1:] != idx[:-1])))
    lo[idx[starts]] = np.minimum.reduceat(yv, starts)
    hi[idx[starts]] = np.maximum.reduceat(yv, starts)
    return centres, mean, lo, hi


def _class_raster(x: FloatArray, classes: npt.NDArray[np.uint8], x0: float, x1: float,
                  ncols: int, nrows: int) -> FloatArray:
    """RGB strip (``nrows`` x ``ncols`` x 3, 0-1) of the class fractions per column of ``[x0, x1]``.

    Every column is split top to bottom in proportion to the fractions of thick ice, thin ice,
    open water and no class among the 2 m segments that start in it (codes other than 0, 1, 2
    count as no class); columns without any segment are white.
    """
    width = (x1 - x0) / ncols
    inside = np.isfinite(x) & (x >= x0) & (x <= x1)
    idx = np.clip(((x[inside] - x0) / width).astype(np.int64), 0, ncols - 1)
    cls = classes[inside]
    codes = [int(code) for code, _ in _STRIP_CLASSES]
    category = np.full(cls.size, len(codes) - 1, dtype=np.int64)
    for k, code in enumerate(codes[:-1]):
        category[cls == code] = k
    counts = np.stack([np.bincount(idx[category == k], minlength=ncols) for k in range(len(codes))])
    total = counts.sum(axis=0)
    cum = np.cumsum(counts, axis=0) / np.maximum(total, 1)
    centre = (np.arange(nrows, dtype=np.float64) + 0.5) / nrows
    pixel = np.minimum((cum[None, :, :] <= centre[:, None, None]).sum(axis=1), len(codes) - 1)
    pixel[:, total == 0] = len(codes)
    palette = np.array([[c / 255.0 for c in CLASS_COLOURS_RGB[code]] for code, _ in _STRIP_CLASSES]
                       + [list(_GAP_RGB)], dtype=np.float64)
    return np.asarray(palette[pixel], dtype=np.float64)


def _limits(arrays: Sequence[FloatArray], *, q: float = 0.5, pad: float = 0.08, top_pad: float = 0.08,
            min_span: float = 0.1, include: Sequence[float] = ()) -> tuple[float, float]:
    """Robust axis limits: the ``q`` and ``100 - q`` percentiles of all finite values, padded.

    Parameters
    ----------
    arrays : sequence of numpy.ndarray
        Values (m); NaNs ignored.
    q : float
        Lower percentile (%); outliers (clouds, blunders) beyond are clipped from view.
    pad, top_pad : float
        Margins below and above as fractions of the span.
    min_span : float
        Smallest span (m) before padding.
    include : sequence of float
        Values (m) always inside the limits (e.g. 0), when anything is finite.

    Returns
    -------
    tuple of float
        ``(low, high)`` (m); ``(-1, 1)`` when nothing is finite.
    """
    finite = [a[np.isfinite(a)] for a in arrays]
    values = np.concatenate(finite) if finite else np.empty(0)
    if values.size == 0:
        return -1.0, 1.0
    lo, hi = (float(v) for v in np.percentile(values, [q, 100.0 - q]))
    lo, hi = min([lo, *include]), max([hi, *include])
    if hi - lo < min_span:
        mid = 0.5 * (lo + hi)
        lo, hi = mid - 0.5 * min_span, mid + 0.5 * min_span
    span = hi - lo
    return lo - pad * span, hi + top_pad * span


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
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    missing = [c for c in _OURS_COLUMNS if c not in ours.columns]
    if missing:
        raise ValueError(f"track_quicklook: ours lacks columns {missing}")
    t = ours if ours["x_atc_m"].is_monotonic_increasing else ours.sort_values("x_atc_m", kind="stable")
    x = _floats(t, "x_atc_m")
    h = _floats(t, "h_cor_mean_m")
    cls = t["class"].to_numpy(dtype=np.float64, na_value=255.0).astype(np.uint8)
    surfaces = {c: _floats(t, c) for c in (*(c for c, *_ in _SURFACES), "surface_m")}
    fb = _floats(t, "freeboard_m")

    have07 = _available(atl07, _ATL07_COLUMNS, "atl07")
    have10 = _available(atl10, _ATL10_COLUMNS, "atl10")
    have10s = _available(atl10_surface, ("beam_refsurf_height",), "atl10_surface")
    zoom = photons is not None
    have_ph = _available(photons, _PHOTON_COLUMNS, "photons")

    # Along-track range (m) of the overview: our track, else NASA's segments.
    finite_x = x[np.isfinite(x)]
    nasa_x = [_floats(f, "seg_dist_x") for f, ok in ((atl07, have07), (atl10, have10)) if ok and f is not None]
    if finite_x.size:
        x0, x1 = float(finite_x[0]), float(finite_x[-1]) + 2.0
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
    ph_x = ph_h = np.empty(0)
    ph_sig = np.empty(0, dtype=np.bool_)
    if have_ph and photons is not None:
        ph_x, ph_h = _floats(photons, "x_atc_m"), _floats(photons, "h_m")
        ph_sig = photons["signal"].to_numpy(dtype=np.bool_, na_value=False)
        keep = np.isfinite(ph_x) & np.isfinite(ph_h)
        ph_x, ph_h, ph_sig = ph_x[keep], ph_h[keep], ph_sig[keep]
    zx0 = zx1 = math.nan
    if ph_x.size:
        zx0, zx1 = float(ph_x.min()), float(ph_x.max())
        if zx1 - zx0 < 2.0:
            zx0, zx1 = zx0 - 1.0, zx1 + 1.0

    fig_w, fig_h = QUICKLOOK_SIZE_PX[zoom]
    fig = Figure(figsize=(fig_w / QUICKLOOK_DPI, fig_h / QUICKLOOK_DPI), dpi=QUICKLOOK_DPI, facecolor="white")
    FigureCanvasAgg(fig)
    fig.suptitle(title, y=1.0 - 12.0 / fig_h, va="top", fontsize=15, fontweight="bold", fontfamily=_FONT)
    n_rows = int(np.isfinite(x).sum())
    counts = {code: int((cls[np.isfinite(x)] == int(code)).sum()) for code, _ in _STRIP_CLASSES}
    counts[SeaIceClass.UNLABELED] = n_rows - sum(v for k, v in counts.items() if k != SeaIceClass.UNLABELED)
    fractions = ", ".join(f"{name} {counts[code] / max(n_rows, 1):.1%}" for code, name in _STRIP_CLASSES)
    subtitle = (f"{n_rows:,} segments of 2 m over {(x1 - x0) / 1000.0:,.1f} km ({fractions}); "
                f"ATL07/ATL10 heights shifted by {datum_offset_m:+.3f} m onto our datum")
    fig.text(0.5, 1.0 - 42.0 / fig_h, subtitle, ha="center", va="top", fontsize=_FS, fontfamily=_FONT,
             color="0.3")

    # (1) class strip.
    top = float(_TOP)
    ax_strip = _axes(fig, top, _STRIP_H, fig_h)
    raster = _class_raster(x, cls, x0, x1, min(_AX_W, nbins), 24)
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
    centres, h_mean, h_lo, h_hi = _bin_stats(x, h, x0, x1, nbins)
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
        values = surfaces[column]
        _, s_mean, _, _ = _bin_stats(x, values, x0, x1, nbins)
        surface_lines.append(s_mean)
        is_ref = bool(np.isfinite(values).any()) and bool(
            np.array_equal(values, surfaces["surface_m"], equal_nan=True))
        label = f"{name} (freeboard reference)" if is_ref else name
        handles += ax_h.plot(ckm, s_mean, color=colour, linestyle=style, linewidth=width, zorder=4, label=label)
    notes: list[str] = []
    if not any(np.isfinite(s).any() for s in surfaces.values()):
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
    ax_h.set_ylim(*_limits([h, *surface_lines, a07h, a10ref], include=(0.0,), top_pad=0.1 + 0.07 * len(notes)))
    ax_h.axhline(0.0, color="0.6", linewidth=0.6, linestyle=":", zorder=1)
    ax_h.grid(True, color="0.92", linewidth=0.6)
    ax_h.set_axisbelow(True)
    _ylabel(ax_h, "height above MSS (m)")
    ax_h.tick_params(labelbottom=False)
    _legend(ax_h, handles)

    # (3) freeboard.
    top += _HEIGHTS_H + _GAP
    ax_fb = _axes(fig, top, _FB_H, fig_h, sharex=ax_strip)
    _, fb_mean, _, _ = _bin_stats(x, fb, x0, x1, nbins)
    fb_handles: list[Artist] = []
    fb_handles += ax_fb.plot(ckm, fb_mean, color=_C_FB, linewidth=0.9, zorder=3,
                             label=f"ours: 2 m freeboard, mean per {_nice_m(bin_m)}")
    fb_notes: list[str] = []
    if not np.isfinite(fb).any():
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
    ax_fb.set_ylim(*_limits([fb, a10fb], include=(0.0,), top_pad=0.1 + 0.12 * len(fb_notes)))
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
            inz = np.isfinite(x) & (x >= zx0 - 2.0) & (x <= zx1)
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
            zx, zh, zsurf = x[inz], h[inz], surfaces["surface_m"][inz]
            if zx.size > MAX_LINE_POINTS:
                zc, zh, _, _ = _bin_stats(x, h, zx0, zx1, MAX_LINE_POINTS)
                _, zsurf, _, _ = _bin_stats(x, surfaces["surface_m"], zx0, zx1, MAX_LINE_POINTS)
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
