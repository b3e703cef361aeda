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

Feature lists are chosen by name (:data:`FEATURE_SETS`, :func:`resolve_features`).  The windows
live in :mod:`seaice_tasks.is2.windows` (re-exported here).
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
from seaice_tasks.is2.photon_evidence import PhotonEvidenceConfig, evidence_halo_rows, odd_rows, photon_evidence
from seaice_tasks.is2.windows import (
    DEFAULT_HALF_WINDOW,
    DEFAULT_RADIUS_M,
    _check_sorted,
    window_bounds,
    window_centres,
    window_chain,
    window_index,
    window_rows,
    window_stats,
)
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
#: Percentile of ``h_cor_mean_m`` per window used as the label-free local reference.
DEFAULT_PERCENTILE: Final[float] = 2.0

_WATER: Final[int] = int(SeaIceClass.OPEN_WATER)
#: Rows of the background rate's running median (the evidence's rate window).
_RATE_ROWS: Final[int] = odd_rows(FEATURE_EVIDENCE.rate_window_m)


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
