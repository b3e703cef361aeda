"""The authors' sliding windows along a track and the centred windows of the classifier (METHOD.md §5).

* :func:`window_index` / :func:`window_bounds` / :func:`window_chain` -- the sliding 10 km window
  with 5 km stride (METHOD §5.1), exactly: every row ends with the id of the last window that
  wrote it; :func:`window_chain` walks it chunk by chunk;
* :func:`window_stats` / :func:`window_rows` -- a per-window statistic and its value at any row;
* :func:`window_centres` -- where a centred window of ``2 * half + 1`` consecutive 2 m bins fits
  (METHOD §5.3 with the last centre included and integer bin contiguity, §13 row 8).

Re-exported by :mod:`seaice_tasks.is2.features`.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["DEFAULT_RADIUS_M", "DEFAULT_HALF_WINDOW", "window_bounds", "window_chain", "window_index",
           "window_stats", "window_rows", "window_centres"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: Radius of the sliding windows (m; 10 km windows at 5 km stride, METHOD §5.1).
DEFAULT_RADIUS_M: Final[float] = 5000.0
#: Neighbours on each side of a window centre (METHOD §5.3: ``nearby`` = 2, 5 segments).
DEFAULT_HALF_WINDOW: Final[int] = 2


def _check_sorted(x_atc_m: FloatArray, what: str) -> None:
    if x_atc_m.size > 1 and not bool(np.all(np.diff(x_atc_m) >= 0)):
        raise ValueError(f"{what}: x_atc_m must be sorted ascending")


def window_bounds(x_atc_m: npt.ArrayLike, radius_m: float = DEFAULT_RADIUS_M) -> tuple[IntArray, IntArray]:
    """Row ranges ``[start, stop)`` of the authors' sliding windows (METHOD §5.1).

    With ``i = 0``: the window anchored at ``b = x[i]`` holds the rows with ``b - R < x < b + R``
    (strict); the next anchor is the row after its last row.

    Parameters
    ----------
    x_atc_m : array_like of float
        Along-track distance of one track, sorted ascending (m).
    radius_m : float
        Window radius ``R`` (m).

    Returns
    -------
    starts, stops : ndarray of int64
        First row and one past the last row of each window, in window order.

    Raises
    ------
    ValueError
        When ``x_atc_m`` is not sorted or ``radius_m`` is not positive.

    Examples
    --------
    >>> window_bounds([0.0, 2.0, 4.0, 6.0, 20.0], 5.0)
    (array([0, 1, 4]), array([3, 4, 5]))
    """
    x = np.asarray(x_atc_m, dtype=np.float64)
    if not radius_m > 0:
        raise ValueError(f"radius_m must be > 0, got {radius_m}")
    _check_sorted(x, "window_bounds")
    starts, stops, _ = window_chain(x, radius_m)
    return starts, stops


def window_chain(x_atc_m: npt.ArrayLike, radius_m: float, *, anchor: int = 0, offset: int = 0,
                 until: int | None = None) -> tuple[IntArray, IntArray, int]:
    """The windows of :func:`window_bounds` anchored before row ``until``, from the one anchored at ``anchor``.

    The chain of a whole track walked a piece at a time (:mod:`seaice_tasks.trackio`): ``x_atc_m``
    holds track rows ``offset ..`` and must hold every row within ``radius_m`` of the anchors.

    Parameters
    ----------
    x_atc_m : array_like of float
        Along-track distance of the held rows, ascending (m).
    radius_m : float
        Window radius (m, > 0).
    anchor : int
        Track row of the first window's anchor (0, or the next anchor a previous call returned).
    offset : int
        Track row of ``x_atc_m[0]``.
    until : int, optional
        Windows anchored at rows ``< until`` (default: to the end of the held rows).

    Returns
    -------
    starts, stops : ndarray of int64
        Track rows ``[start, stop)`` of each window.
    next_anchor : int
        The anchor of the window after the last one.

    Examples
    --------
    >>> window_chain([0.0, 2.0, 4.0, 6.0, 20.0], 5.0, until=4)
    (array([0, 1]), array([3, 4]), 4)
    """
    x = np.asarray(x_atc_m, dtype=np.float64)
    end = offset + x.size if until is None else until
    starts: list[int] = []
    stops: list[int] = []
    i = anchor
    while i < end:  # one iteration per window
        b = x[i - offset]
        starts.append(offset + int(np.searchsorted(x, b - radius_m, side="right")))
        stop = offset + int(np.searchsorted(x, b + radius_m, side="left"))
        stops.append(stop)
        i = stop
    return np.asarray(starts, dtype=np.int64), np.asarray(stops, dtype=np.int64), i


def _last_writer(starts: IntArray, stops: IntArray, n: int) -> IntArray:
    ids = np.full(n, -1, dtype=np.int64)
    for w, (lo, hi) in enumerate(zip(starts.tolist(), stops.tolist(), strict=True)):
        ids[lo:hi] = w
    return ids


def window_index(x_atc_m: npt.ArrayLike, radius_m: float = DEFAULT_RADIUS_M) -> IntArray:
    """Id of the last sliding window that wrote each row (METHOD §5.1, the authors' semantics).

    Parameters
    ----------
    x_atc_m : array_like of float
        Along-track distance of one track, sorted ascending (m).
    radius_m : float
        Window radius (m); 5000 m gives the 10 km windows at 5 km stride.

    Returns
    -------
    ndarray of int64
        Window id (0, 1, ...) per row.

    Raises
    ------
    ValueError
        When ``x_atc_m`` is not sorted or ``radius_m`` is not positive.

    Examples
    --------
    Window 0 is anchored at x = 0 and covers x < 5 (rows 0..3); window 1 is anchored at x = 6,
    covers 1 < x < 11 and writes rows 2..4 (overwriting rows 2 and 3); after the gap window 2 is
    anchored at x = 20.

    >>> window_index([0.0, 1.0, 2.0, 4.0, 6.0, 20.0, 21.0], 5.0)
    array([0, 0, 1, 1, 1, 2, 2])
    """
    x = np.asarray(x_atc_m, dtype=np.float64)
    starts, stops = window_bounds(x, radius_m)
    return _last_writer(starts, stops, x.size)


def window_stats(h: FloatArray, include: BoolArray, starts: IntArray, stops: IntArray, percentile: float,
                 offset: int = 0) -> FloatArray:
    """``percentile`` (0: the minimum) of the included finite ``h`` of each window ``[start, stop)`` (NaN: none).

    ``h`` and ``include`` hold track rows ``offset ..`` (every row of the windows).
    """
    stat = np.full(starts.size, np.nan)
    usable = include & np.isfinite(h)
    for w, (lo, hi) in enumerate(zip((starts - offset).tolist(), (stops - offset).tolist(), strict=True)):
        rows = h[lo:hi][usable[lo:hi]]
        if rows.size:
            stat[w] = rows.min() if percentile == 0 else np.percentile(rows, percentile)
    return stat


def window_rows(stat: FloatArray, starts: IntArray, n_rows: int, rows: IntArray) -> FloatArray:
    """Per row, the value of the last window that wrote it; windows without one filled along the rows.

    Every window of a chain writes rows ``[start, next start)`` last (:func:`window_index`).  Rows
    of windows without a value take the linear interpolation over the row number between the
    nearest rows that have one, held beyond the first and last: pandas' ``interpolate(method=
    "linear", limit_direction="both")`` over the whole track, exactly.  ``np.interp`` reads only the
    two rows that bracket a row, and those are first or last rows of windows with a value: the
    window table is all it takes, however far they are.

    Parameters
    ----------
    stat : ndarray of float
        Value per window (NaN: none).
    starts : ndarray of int
        First row of every window of the track, ascending.
    n_rows : int
        Rows of the track.
    rows : ndarray of int
        Track rows wanted (any subset).

    Examples
    --------
    >>> window_rows(np.array([1.0, np.nan, 4.0]), np.array([0, 2, 4]), 6, np.arange(6)).tolist()
    [1.0, 1.0, 2.0, 3.0, 4.0, 4.0]
    """
    if not rows.size:
        return np.empty(0)
    owner = np.searchsorted(starts, rows, side="right") - 1
    values = np.asarray(stat[owner], dtype=np.float64)
    missing = ~np.isfinite(values)
    have = np.isfinite(stat)
    if missing.any() and have.any():
        ends = np.append(starts[1:], n_rows) - 1
        edges = np.unique(np.concatenate([starts[have], ends[have]]))
        edge_values = stat[np.searchsorted(starts, edges, side="right") - 1]
        values[missing] = np.interp(rows[missing].astype(np.float64), edges.astype(np.float64), edge_values)
    return values


def window_centres(bin_index: npt.ArrayLike, usable: npt.ArrayLike, half: int = DEFAULT_HALF_WINDOW) -> BoolArray:
    """Rows that centre a window of ``2 * half + 1`` consecutive usable 2 m bins.

    Row ``i`` is a centre when rows ``i - half .. i + half`` exist, are all ``usable`` and
    ``bin_index[i + k] - bin_index[i] == k`` exactly for every ``k`` (integer bins: no float
    tolerance).  Unlike the authors' loop the last valid centre is included (METHOD §13 row 8).
    One call must cover one track (the caller masks windows that would span tracks).

    Parameters
    ----------
    bin_index : array_like of int
        2 m bin index per row, in track order.
    usable : array_like of bool
        Whether each row may be part of a window (labelled, finite features).
    half : int
        Neighbours on each side (>= 0).

    Returns
    -------
    ndarray of bool
        True at the window centres.

    Raises
    ------
    ValueError
        For a negative ``half`` or arrays of different lengths.

    Examples
    --------
    >>> window_centres([0, 1, 2, 3, 4, 5, 7, 8, 9], [True] * 9, half=1).astype(int).tolist()
    [0, 1, 1, 1, 1, 0, 0, 1, 0]
    """
    bins = np.asarray(bin_index, dtype=np.int64)
    ok = np.asarray(usable, dtype=np.bool_)
    if half < 0:
        raise ValueError(f"half must be >= 0, got {half}")
    if bins.shape != ok.shape or bins.ndim != 1:
        raise ValueError(f"bin_index {bins.shape} and usable {ok.shape} must be 1-D of one length")
    n = bins.size
    width = 2 * half + 1
    centres = np.zeros(n, dtype=np.bool_)
    if n < width:
        return centres
    # bad[j] counts unusable rows / broken steps; a window is clean when its sums are zero.
    bad_rows = np.concatenate(([0], np.cumsum(~ok, dtype=np.int64)))
    broken = np.diff(bins) != 1
    bad_steps = np.concatenate(([0], np.cumsum(broken, dtype=np.int64)))
    first = np.arange(n - width + 1)  # first row of each candidate window
    rows_clean = bad_rows[first + width] - bad_rows[first] == 0
    steps_clean = bad_steps[first + width - 1] - bad_steps[first] == 0
    centres[first + half] = rows_clean & steps_clean
    return centres
