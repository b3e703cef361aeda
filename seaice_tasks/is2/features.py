"""Per-segment classifier features of one ICESat-2 track (METHOD.md §5).

Three pieces, all vectorised over segments (the only Python loops run over the 10 km windows):

* :func:`window_index` -- the authors' sliding 10 km window with 5 km stride (METHOD §5.1),
  exactly: every row ends with the id of the last window that wrote it;
* :func:`segment_features` -- the :data:`~seaice_tasks.schemas.FEATURE_FIELDS` of one track:
  heights, the label-free relative height ``rel_height_m`` (height above a low percentile of the
  window), the authors' label-leaking ``rel_height_labels_m`` (height above the lowest labelled
  water of the window; parity only, METHOD §5.4 / §13 row 9), photon statistics and the paper's
  along-track differences ``d_pcnt`` / ``d_brate``;
* :func:`window_centres` -- where a centred window of ``2 * half + 1`` consecutive 2 m bins fits
  (METHOD §5.3 with the last centre included and integer bin contiguity, §13 row 8).

Feature lists are chosen by name (:data:`FEATURE_SETS`, :func:`resolve_features`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from seaice_tasks.constants import SeaIceClass
from seaice_tasks.errors import ConfigError
from seaice_tasks.is2.photon_evidence import PhotonEvidenceConfig, evidence_halo_rows, photon_evidence
from seaice_tasks.schemas import FEATURE_FIELDS

__all__ = [
    "FEATURE_NAMES",
    "NOTEBOOK_FEATURES",
    "PAPER_FEATURES",
    "PARITY_FEATURES",
    "FEATURE_SETS",
    "ROBUST_FEATURES",
    "FEATURE_EVIDENCE",
    "FEATURE_HALO_ROWS",
    "DEFAULT_RADIUS_M",
    "DEFAULT_PERCENTILE",
    "DEFAULT_HALF_WINDOW",
    "resolve_features",
    "window_bounds",
    "window_chain",
    "window_index",
    "window_stats",
    "window_rows",
    "segment_features",
    "feature_frame",
    "window_centres",
]

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: Every per-segment feature column, in schema order.
FEATURE_NAMES: Final[tuple[str, ...]] = tuple(f.name for f in FEATURE_FIELDS)
#: The authors' 8 features in their order, with the label-free ``rel_height_m`` in place of
#: ``rel_height_min_elev`` (METHOD §5.4).
NOTEBOOK_FEATURES: Final[tuple[str, ...]] = (
    "h_cor_mean_m", "h_diff_m", "rel_height_m", "height_sd_m", "pcnth_mean", "pcnt_mean", "bcnt_mean", "brate_mean",
)
#: R2's reading of the paper's 6 features (METHOD §5.4): height, height std, signal photons,
#: photon-rate change, background counts, background-rate change.
PAPER_FEATURES: Final[tuple[str, ...]] = (
    "h_cor_mean_m", "height_sd_m", "pcnth_mean", "d_pcnt", "bcnt_mean", "d_brate",
)
#: The notebook set without the absolute height ``h_cor_mean_m``: every height relative to the
#: track itself (the mean-median asymmetry, the local reference, the spread), so a sea-surface
#: offset between days or tracks (dynamic topography, tides not in the corrections) does not move
#: the inputs.  A subset of the notebook set: a model can train on it from a notebook training set.
RELATIVE_FEATURES: Final[tuple[str, ...]] = tuple(f for f in NOTEBOOK_FEATURES if f != "h_cor_mean_m")
#: Features that mean the same on every day: heights relative to the local levels, photon and
#: background rates relative to the track's own, the photons' vote for open water -- nothing
#: that haze, thin cloud, the beam's strength (the spacecraft's orientation) or the sun moves.
#: (``brate_rel`` is computed but not in the set: at night the background is a few dark counts, its
#: ratio is noise, and a model trained by day leaned on it -- 94.9 % -> 98.0 % on a night tuning day
#: without it.)
ROBUST_FEATURES: Final[tuple[str, ...]] = (
    "height_above_low_m", "rel_height_m", "h_diff_m", "height_sd_m", "rate_rel", "water_vote",
)
#: The photon evidence settings behind ``rate_rel``, ``height_above_low_m`` and ``water_vote``:
#: part of the features' definition (a model's card names its features, not these settings).
FEATURE_EVIDENCE: Final[PhotonEvidenceConfig] = PhotonEvidenceConfig()
#: The notebook set with the authors' label-derived relative height (leaks labels; parity only).
PARITY_FEATURES: Final[tuple[str, ...]] = tuple(
    "rel_height_labels_m" if f == "rel_height_m" else f for f in NOTEBOOK_FEATURES
)
#: Named feature sets.
FEATURE_SETS: Final[dict[str, tuple[str, ...]]] = {
    "notebook": NOTEBOOK_FEATURES,
    "paper": PAPER_FEATURES,
    "parity": PARITY_FEATURES,
    "relative": RELATIVE_FEATURES,
    "robust": ROBUST_FEATURES,
}
#: Rows a chunk of a track reads beyond its own for exact features (the evidence's windows).
FEATURE_HALO_ROWS: Final[int] = evidence_halo_rows(FEATURE_EVIDENCE)
#: Radius of the sliding windows (m; 10 km windows at 5 km stride, METHOD §5.1).
DEFAULT_RADIUS_M: Final[float] = 5000.0
#: Percentile of ``h_cor_mean_m`` per window used as the label-free local reference.
DEFAULT_PERCENTILE: Final[float] = 2.0
#: Neighbours on each side of a window centre (METHOD §5.3: ``nearby`` = 2, 5 segments).
DEFAULT_HALF_WINDOW: Final[int] = 2

_WATER: Final[int] = int(SeaIceClass.OPEN_WATER)
#: Rows of the background rate's running median (the evidence's rate window).
_RATE_ROWS: Final[int] = 2 * round(FEATURE_EVIDENCE.rate_window_m / 4.0) + 1


def resolve_features(spec: str | Sequence[str]) -> tuple[str, ...]:
    """The feature columns of a set name or an explicit list of names.

    Parameters
    ----------
    spec : str or sequence of str
        A key of :data:`FEATURE_SETS` (``"notebook"``, ``"paper"``, ``"parity"``) or a list of
        names from :data:`FEATURE_NAMES`, in the order the model sees them.

    Returns
    -------
    tuple of str
        The feature names.

    Raises
    ------
    ConfigError
        For an unknown set name, an unknown or repeated feature name, or an empty list.

    Examples
    --------
    >>> resolve_features("paper")
    ('h_cor_mean_m', 'height_sd_m', 'pcnth_mean', 'd_pcnt', 'bcnt_mean', 'd_brate')
    >>> resolve_features(["pcnt_mean", "h_diff_m"])
    ('pcnt_mean', 'h_diff_m')
    >>> resolve_features(["h_cor_mean_m", "rel_height_min_elev"])
    Traceback (most recent call last):
    ...
    seaice_tasks.errors.ConfigError: unknown feature(s) ['rel_height_min_elev']; known: ...
    """
    if isinstance(spec, str):
        if spec not in FEATURE_SETS:
            raise ConfigError(f"unknown feature set {spec!r}; known sets: {sorted(FEATURE_SETS)} "
                              f"(or give a list of feature names)")
        return FEATURE_SETS[spec]
    names = tuple(spec)
    if not names:
        raise ConfigError("empty feature list")
    unknown = [n for n in names if n not in FEATURE_NAMES]
    if unknown:
        raise ConfigError(f"unknown feature(s) {unknown}; known: {list(FEATURE_NAMES)}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"feature(s) {repeated} given more than once")
    return names


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


def _windowed_reference(
    h: FloatArray, include: BoolArray, starts: IntArray, stops: IntArray, percentile: float
) -> FloatArray:
    """Per-row reference: ``percentile`` of ``h`` over the included rows of each row's last window."""
    stat = window_stats(h, include, starts, stops, percentile)
    return window_rows(stat, starts, h.size, np.arange(h.size, dtype=np.int64))


def _column(segments: pd.DataFrame, name: str) -> FloatArray:
    if name not in segments.columns:
        raise ValueError(f"segment_features: column {name!r} missing")
    return np.asarray(segments[name].to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)


def _step_difference(values: FloatArray, consecutive: BoolArray) -> FloatArray:
    out = np.full(values.size, np.nan)
    if values.size > 1:
        out[1:] = np.where(consecutive, values[1:] - values[:-1], np.nan)
    return out


def segment_features(
    segments: pd.DataFrame,
    labels: npt.ArrayLike | None,
    *,
    radius_m: float = DEFAULT_RADIUS_M,
    percentile: float = DEFAULT_PERCENTILE,
) -> pd.DataFrame:
    """The per-segment features of one track (METHOD §5.1-5.4).

    Parameters
    ----------
    segments : pandas.DataFrame
        One (granule, beam) track of ``segments_2m`` rows, sorted by ``x_atc_m``; needs
        ``bin_index``, ``x_atc_m`` (m), ``h_cor_mean_m``, ``h_cor_median_m``, ``h_std_m`` (m),
        ``pcnth_mean``, ``pcnt_mean`` (photon/shot), ``bcnt_mean`` (count), ``brate_mean``
        (count/s), ``n_photons``.  Windows never span tracks: call once per track.
    labels : array_like of uint8 or None
        Per-row labels (0 thick, 1 thin, 2 water, 255 unlabeled) for ``rel_height_labels_m``;
        None leaves that column NaN.
    radius_m : float
        Radius of the sliding windows (m).
    percentile : float
        Percentile (0-100) of the window's finite ``h_cor_mean_m`` that ``rel_height_m`` is
        measured from (0 = the window minimum).

    Returns
    -------
    pandas.DataFrame
        Exactly the :data:`FEATURE_NAMES` columns (float64), on the index of ``segments``:

        * ``h_cor_mean_m`` (m), ``h_diff_m = h_cor_mean_m - h_cor_median_m`` (m);
        * ``rel_height_m`` (m): ``h_cor_mean_m`` minus the ``percentile`` of the row's last
          window (:func:`window_index`); windows without a finite height are NaN and filled by
          linear interpolation over the row index (``limit_direction="both"``);
        * ``rel_height_labels_m`` (m): the same with the minimum height of the window's water
          rows (label 2) as reference, windows without water NaN then interpolated; all NaN
          without labels or without any water (the authors' leaking feature, parity only);
        * ``height_sd_m = h_std_m`` (m); ``pcnth_mean``, ``pcnt_mean``, ``bcnt_mean``,
          ``brate_mean`` copied;
        * ``d_pcnt`` (photon/shot), ``d_brate`` (count/s): difference to the previous row when
          that row is the previous 2 m bin (``bin_index`` step 1), NaN otherwise;
        * ``rate_rel``, ``height_above_low_m`` (m), ``water_vote``: the photon evidence
          (:func:`~seaice_tasks.is2.photon_evidence.photon_evidence` with :data:`FEATURE_EVIDENCE`);
          ``brate_rel``: ``brate_mean`` over its running median (2 km; NaN where it is 0 or
          missing).

    Raises
    ------
    ValueError
        When a column is missing, rows are not sorted by ``x_atc_m``, ``labels`` has another
        length, or ``percentile`` is outside 0-100.

    Examples
    --------
    >>> seg = pd.DataFrame({"bin_index": [0, 1, 2, 4], "x_atc_m": [0.0, 2.0, 4.0, 8.0],
    ...                     "h_cor_mean_m": [0.5, 0.1, 0.3, 0.2], "h_cor_median_m": [0.4, 0.1, 0.3, 0.2],
    ...                     "h_std_m": 0.1, "pcnth_mean": 3.0, "pcnt_mean": [4.0, 5.0, 7.0, 6.0],
    ...                     "bcnt_mean": 1.0, "brate_mean": 1e6, "n_photons": [12, 12, 12, 12]})
    >>> f = segment_features(seg, [0, 2, 1, 0], percentile=0.0)
    >>> f["rel_height_m"].round(2).tolist(), f["rel_height_labels_m"].round(2).tolist()
    ([0.4, 0.0, 0.2, 0.1], [0.4, 0.0, 0.2, 0.1])
    >>> f["d_pcnt"].tolist()
    [nan, 1.0, 2.0, nan]
    """
    if not 0 <= percentile <= 100:
        raise ValueError(f"percentile must be in [0, 100], got {percentile}")
    x = _column(segments, "x_atc_m")
    _check_sorted(x, "segment_features")
    n = x.size
    if "bin_index" not in segments.columns:
        raise ValueError("segment_features: column 'bin_index' missing")
    h = _column(segments, "h_cor_mean_m")
    starts, stops = window_bounds(x, radius_m) if n else (np.empty(0, np.int64), np.empty(0, np.int64))
    everywhere = np.ones(n, dtype=np.bool_)
    ref = _windowed_reference(h, everywhere, starts, stops, percentile)

    if labels is None:
        ref_labels = np.full(n, np.nan)
    else:
        lab = np.asarray(labels)
        if lab.shape != (n,):
            raise ValueError(f"segment_features: {lab.shape[0] if lab.ndim else 0} labels for {n} segments")
        ref_labels = _windowed_reference(h, lab == _WATER, starts, stops, 0.0)
    return feature_frame(segments, ref, ref_labels)


def feature_frame(segments: pd.DataFrame, ref: FloatArray, ref_labels: FloatArray) -> pd.DataFrame:
    """The :data:`FEATURE_NAMES` of ``segments`` given each row's references (m; :func:`segment_features`).

    ``d_pcnt``/``d_brate`` of a row come from the row before it in ``segments``, and the
    evidence features (``rate_rel``, ``height_above_low_m``, ``water_vote``, ``brate_rel``) from
    the :data:`FEATURE_HALO_ROWS` rows around it: for the rows of a chunk
    (:mod:`seaice_tasks.trackio`) only those that far from its ends are right.
    """
    from scipy.ndimage import median_filter

    bins = segments["bin_index"].to_numpy(dtype=np.int64)
    h = _column(segments, "h_cor_mean_m")
    pcnt = _column(segments, "pcnt_mean")
    brate = _column(segments, "brate_mean")
    consecutive = np.diff(bins) == 1
    out = pd.DataFrame(
        {
            "h_cor_mean_m": h,
            "h_diff_m": h - _column(segments, "h_cor_median_m"),
            "rel_height_m": h - ref,
            "rel_height_labels_m": h - ref_labels,
            "height_sd_m": _column(segments, "h_std_m"),
            "pcnth_mean": _column(segments, "pcnth_mean"),
            "pcnt_mean": pcnt,
            "bcnt_mean": _column(segments, "bcnt_mean"),
            "brate_mean": brate,
            "d_pcnt": _step_difference(pcnt, consecutive),
            "d_brate": _step_difference(brate, consecutive),
        },
        index=segments.index,
    )
    evidence = photon_evidence(segments, FEATURE_EVIDENCE)
    out["rate_rel"] = evidence["rate_rel"].to_numpy(dtype=np.float64)
    out["height_above_low_m"] = evidence["height_above_low_m"].to_numpy(dtype=np.float64)
    out["water_vote"] = evidence["water_vote"].to_numpy(dtype=np.float64)
    if brate.size:
        finite = np.isfinite(brate)
        reference = median_filter(np.where(finite, brate, 0.0), size=_RATE_ROWS, mode="nearest")
        out["brate_rel"] = np.where(finite & (reference > 0), brate / np.where(reference > 0, reference, 1.0), np.nan)
    else:
        out["brate_rel"] = np.empty(0)
    return out[list(FEATURE_NAMES)]


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
