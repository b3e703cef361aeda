"""What a track quicklook draws of our 2 m rows, gathered chunk by chunk (:mod:`seaice_tasks.surface.plots`).

A quicklook bins the rows along track (at most :data:`MAX_LINE_POINTS` bins: means, minima and
maxima), counts the classes per pixel column of its class strip, sets its height and freeboard
axes from percentiles of every finite value, and draws a short zoom stretch row by row.
:class:`QuicklookRows` gathers exactly that from consecutive rows, so a track read in chunks
(:mod:`seaice_tasks.trackio`) draws the very picture the whole track in memory draws: counts and
extremes add up exactly, the bins' sums go on from the previous chunk's in row order (``np.bincount``
adds in row order), the percentiles see every finite value.  It holds the binned series, the
finite heights and freeboards (8 bytes a row each, for the percentiles) and the zoom stretch's rows.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from seaice_tasks.constants import CLASS_COLOURS_RGB, H5_FILL_THRESHOLD, SeaIceClass

__all__ = ["MAX_LINE_POINTS", "STRIP_CLASSES", "SURFACES", "QuicklookRows", "Overview", "floats", "zoom_stretch"]

FloatArray = npt.NDArray[np.float64]

#: Most points of one line of our 2 m product in the overview panels (bins along track).
MAX_LINE_POINTS: Final[int] = 2500
#: Width (px) of the axes column: the class strip has at most one column per pixel.
AXES_WIDTH_PX: Final[int] = 1060
#: Class codes of the strip, top to bottom within a column, with their legend names.
STRIP_CLASSES: Final[tuple[tuple[SeaIceClass, str], ...]] = (
    (SeaIceClass.THICK_ICE, "thick ice"),
    (SeaIceClass.THIN_ICE, "thin ice"),
    (SeaIceClass.OPEN_WATER, "open water"),
    (SeaIceClass.UNLABELED, "no class"),
)
#: Strip colour of pixel columns without any 2 m segment (a gap in the track).
GAP_RGB: Final[tuple[float, float, float]] = (1.0, 1.0, 1.0)
#: Our surfaces: column, legend name, colour, line style, width.
SURFACES: Final[tuple[tuple[str, str, str, str, float], ...]] = (
    ("surface_minimum_m", "sea surface: minimum", "#1f77b4", "-", 1.3),
    ("surface_average_m", "sea surface: average", "#ff7f0e", "-", 1.3),
    ("surface_nearest_minimum_m", "sea surface: nearest minimum", "#9467bd", "-", 1.1),
    ("surface_nasa_m", "sea surface: NASA equation", "#2ca02c", "-", 1.3),
    ("surface_nasa_smooth_m", "sea surface: NASA eq., smoothed", "#0b4d0b", "--", 1.6),
    ("surface_leads_m", "sea surface: leads (2 km kernel)", "#e377c2", "-", 1.8),
)
#: Columns of ours a quicklook reads.
OURS_COLUMNS: Final[tuple[str, ...]] = (
    "x_atc_m", "h_cor_mean_m", "class", *(c for c, *_ in SURFACES), "surface_m", "freeboard_m",
)
_SURFACE_COLUMNS: Final[tuple[str, ...]] = (*(c for c, *_ in SURFACES), "surface_m")
#: Bin width of the 2 m product (m): the overview has one bin per 2 m at most.
_ROW_M: Final[float] = 2.0


def floats(frame: pd.DataFrame, column: str) -> FloatArray:
    """A column as float64 (m), NaN for missing values and HDF5 fill values."""
    values = frame[column].to_numpy(dtype=np.float64, na_value=np.nan)
    return np.where(np.abs(values) < H5_FILL_THRESHOLD, values, np.nan)


def _classes(frame: pd.DataFrame) -> npt.NDArray[np.uint8]:
    return np.asarray(frame["class"].to_numpy(dtype=np.float64, na_value=255.0).astype(np.uint8))


def zoom_stretch(ph_x: FloatArray) -> tuple[float, float] | None:
    """Along-track range (m) of the photon zoom: the photons' extent, at least 2 m (None: no photons)."""
    if not ph_x.size:
        return None
    zx0, zx1 = float(ph_x.min()), float(ph_x.max())
    if zx1 - zx0 < 2.0:
        zx0, zx1 = zx0 - 1.0, zx1 + 1.0
    return zx0, zx1


def overview_bins(x0: float, x1: float) -> int:
    """Bins of the overview lines over ``[x0, x1]`` (m)."""
    return int(min(MAX_LINE_POINTS, max(1, math.ceil((x1 - x0) / _ROW_M))))


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
    bins = _Bins(x0, x1, nbins)
    bins.add(x, y)
    return bins.stats()


class _Bins:
    """:func:`_bin_stats` over consecutive pieces of ``(x, y)``."""

    def __init__(self, x0: float, x1: float, nbins: int) -> None:
        self.x0, self.nbins = x0, nbins
        self.x1 = x1
        self.width = (x1 - x0) / nbins
        self.counts = np.zeros(nbins, dtype=np.int64)
        self.sums = np.zeros(nbins)
        self.lo = np.full(nbins, np.nan)
        self.hi = np.full(nbins, np.nan)

    def add(self, x: FloatArray, y: FloatArray) -> None:
        ok = np.isfinite(x) & np.isfinite(y) & (x >= self.x0) & (x <= self.x1)
        if not ok.any():
            return
        xv, yv = x[ok], y[ok]
        idx = np.clip(((xv - self.x0) / self.width).astype(np.int64), 0, self.nbins - 1)
        self.counts += np.bincount(idx, minlength=self.nbins)
        # the sums go on from the previous pieces' in row order: np.bincount adds its weights in order
        self.sums = np.asarray(np.bincount(np.concatenate([np.arange(self.nbins), idx]),
                                           weights=np.concatenate([self.sums, yv]), minlength=self.nbins),
                               dtype=np.float64)
        starts = np.flatnonzero(np.concatenate(([True], idx[1:] != idx[:-1])))
        self.lo[idx[starts]] = np.fmin(self.lo[idx[starts]], np.minimum.reduceat(yv, starts))
        self.hi[idx[starts]] = np.fmax(self.hi[idx[starts]], np.maximum.reduceat(yv, starts))

    def stats(self) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        centres = self.x0 + (np.arange(self.nbins, dtype=np.float64) + 0.5) * self.width
        mean = np.full(self.nbins, np.nan)
        have = self.counts > 0
        mean[have] = self.sums[have] / self.counts[have]
        return centres, mean, self.lo.copy(), self.hi.copy()


def _class_counts(x: FloatArray, classes: npt.NDArray[np.uint8], x0: float, x1: float,
                  ncols: int) -> npt.NDArray[np.int64]:
    """Rows per class of the strip (``STRIP_CLASSES`` order; other codes: no class) per column of ``[x0, x1]``."""
    width = (x1 - x0) / ncols
    inside = np.isfinite(x) & (x >= x0) & (x <= x1)
    idx = np.clip(((x[inside] - x0) / width).astype(np.int64), 0, ncols - 1)
    cls = classes[inside]
    codes = [int(code) for code, _ in STRIP_CLASSES]
    category = np.full(cls.size, len(codes) - 1, dtype=np.int64)
    for k, code in enumerate(codes[:-1]):
        category[cls == code] = k
    return np.stack([np.bincount(idx[category == k], minlength=ncols) for k in range(len(codes))])


def _raster(counts: npt.NDArray[np.int64], nrows: int) -> FloatArray:
    """RGB strip (``nrows`` x columns x 3, 0-1) from :func:`_class_counts`."""
    n_codes = len(STRIP_CLASSES)
    total = counts.sum(axis=0)
    cum = np.cumsum(counts, axis=0) / np.maximum(total, 1)
    centre = (np.arange(nrows, dtype=np.float64) + 0.5) / nrows
    pixel = np.minimum((cum[None, :, :] <= centre[:, None, None]).sum(axis=1), n_codes - 1)
    pixel[:, total == 0] = n_codes
    palette = np.array([[c / 255.0 for c in CLASS_COLOURS_RGB[code]] for code, _ in STRIP_CLASSES]
                       + [list(GAP_RGB)], dtype=np.float64)
    return np.asarray(palette[pixel], dtype=np.float64)


def _class_raster(x: FloatArray, classes: npt.NDArray[np.uint8], x0: float, x1: float,
                  ncols: int, nrows: int) -> FloatArray:
    """RGB strip (``nrows`` x ``ncols`` x 3, 0-1) of the class fractions per column of ``[x0, x1]``.

    Every column is split top to bottom in proportion to the fractions of thick ice, thin ice,
    open water and no class among the 2 m segments that start in it (codes other than 0, 1, 2
    count as no class); columns without any segment are white.
    """
    return _raster(_class_counts(x, classes, x0, x1, ncols), nrows)


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


@dataclasses.dataclass(frozen=True)
class Overview:
    """The binned overview of our rows over ``[x0, x1]`` (m)."""

    centres: FloatArray
    h_mean: FloatArray
    h_lo: FloatArray
    h_hi: FloatArray
    surface_means: dict[str, FloatArray]
    fb_mean: FloatArray
    raster: FloatArray


class QuicklookRows:
    """What a quicklook needs of our rows, gathered from consecutive sorted rows (module docstring).

    Parameters
    ----------
    x_range : tuple of float or None
        ``(x0, x1)`` of the overview (m): the track's first finite ``x_atc_m`` and its last + 2;
        None for a track without rows (the overview then spans NASA's segments).
    zoom : tuple of float or None
        The photon zoom's stretch (:func:`zoom_stretch`; None: no zoom rows kept).
    """

    def __init__(self, x_range: tuple[float, float] | None, zoom: tuple[float, float] | None) -> None:
        self.x_range = x_range
        self.zoom = zoom
        self.n_rows = 0
        self.counts = {int(code): 0 for code, _ in STRIP_CLASSES[:-1]}
        self.any_finite = dict.fromkeys(_SURFACE_COLUMNS, False)
        self.same_as_reference = dict.fromkeys(_SURFACE_COLUMNS, True)
        self.fb_any = False
        self._h: list[FloatArray] = []
        self._fb: list[FloatArray] = []
        self._zoom: list[pd.DataFrame] = []
        self._bins: dict[str, _Bins] = {}
        self._strip = np.zeros((len(STRIP_CLASSES), 0), dtype=np.int64)
        if x_range is not None:
            x0, x1 = x_range
            nbins = overview_bins(x0, x1)
            self._bins = {c: _Bins(x0, x1, nbins) for c in ("h_cor_mean_m", *(c for c, *_ in SURFACES),
                                                             "freeboard_m")}
            self._strip = np.zeros((len(STRIP_CLASSES), min(AXES_WIDTH_PX, nbins)), dtype=np.int64)

    @classmethod
    def of_frame(cls, t: pd.DataFrame, zoom: tuple[float, float] | None) -> QuicklookRows:
        """All rows of a sorted track at once."""
        x = floats(t, "x_atc_m")
        finite = x[np.isfinite(x)]
        rows = cls((float(finite[0]), float(finite[-1]) + _ROW_M) if finite.size else None, zoom)
        rows.add(t)
        return rows

    def add(self, t: pd.DataFrame) -> None:
        """Take the next rows in (sorted, after the rows taken so far)."""
        x = floats(t, "x_atc_m")
        h = floats(t, "h_cor_mean_m")
        cls = _classes(t)
        surfaces = {c: floats(t, c) for c in _SURFACE_COLUMNS}
        fb = floats(t, "freeboard_m")
        fin = np.isfinite(x)
        self.n_rows += int(fin.sum())
        for code in self.counts:
            self.counts[code] += int((cls[fin] == code).sum())
        for c, values in surfaces.items():
            self.any_finite[c] |= bool(np.isfinite(values).any())
            self.same_as_reference[c] &= bool(np.array_equal(values, surfaces["surface_m"], equal_nan=True))
        self.fb_any |= bool(np.isfinite(fb).any())
        self._h.append(h[np.isfinite(h)])
        self._fb.append(fb[np.isfinite(fb)])
        if self.x_range is not None:
            x0, x1 = self.x_range
            for c, bins in self._bins.items():
                bins.add(x, h if c == "h_cor_mean_m" else fb if c == "freeboard_m" else surfaces[c])
            self._strip += _class_counts(x, cls, x0, x1, self._strip.shape[1])
        if self.zoom is not None:
            zx0, zx1 = self.zoom
            inz = fin & (x >= zx0 - _ROW_M) & (x <= zx1)
            self._zoom.append(pd.DataFrame({"x": x[inz], "h": h[inz], "class": cls[inz],
                                            "surface_m": surfaces["surface_m"][inz]}))

    @property
    def class_counts(self) -> dict[int, int]:
        """Rows per strip class (codes other than 0, 1, 2: no class)."""
        counts = dict(self.counts)
        counts[int(SeaIceClass.UNLABELED)] = self.n_rows - sum(counts.values())
        return counts

    def heights(self) -> FloatArray:
        """Every finite 2 m height (m)."""
        return np.concatenate(self._h) if self._h else np.empty(0)

    def freeboards(self) -> FloatArray:
        """Every finite freeboard (m)."""
        return np.concatenate(self._fb) if self._fb else np.empty(0)

    def zoom_rows(self) -> pd.DataFrame:
        """Rows of the zoom stretch (``x``, ``h``, ``class``, ``surface_m``), from 2 m before it."""
        if not self._zoom:
            return pd.DataFrame({"x": np.empty(0), "h": np.empty(0), "class": np.empty(0, np.uint8),
                                 "surface_m": np.empty(0)})
        return pd.concat(self._zoom, ignore_index=True)

    def overview(self, x0: float, x1: float) -> Overview:
        """The binned overview over ``[x0, x1]`` (the track's ``x_range``, or NASA's when it has no rows)."""
        nbins = overview_bins(x0, x1)
        if self.x_range is None:
            empty = np.empty(0)
            self._bins = {c: _Bins(x0, x1, nbins) for c in ("h_cor_mean_m", *(c for c, *_ in SURFACES),
                                                             "freeboard_m")}
            self._strip = _class_counts(empty, np.empty(0, np.uint8), x0, x1, min(AXES_WIDTH_PX, nbins))
        centres, h_mean, h_lo, h_hi = self._bins["h_cor_mean_m"].stats()
        return Overview(centres=centres, h_mean=h_mean, h_lo=h_lo, h_hi=h_hi,
                        surface_means={c: self._bins[c].stats()[1] for c, *_ in SURFACES},
                        fb_mean=self._bins["freeboard_m"].stats()[1], raster=_raster(self._strip, 24))
