"""Heights of leads: runs of open-water 2 m bins, one height and variance each (P1 Eq. 2 or its unbiased forms).

A lead is a maximal run of consecutive lead bins (:func:`lead_runs`).  Its height
(:func:`lead_heights`) is, by ``weight_form``:

``paper``
    ATL10's lead equation (P1 Eq. 2) with the correct weight ``exp(-((h - h_min) / sigma)**2)``;
``notebook``
    the authors' precedence bug ``exp(-(h - h_min) / sigma)**2`` (parity only);
``mean``
    the inverse-variance mean of the lead's segments (unbiased at 2 m, where Eq. 2 reads low);
``median``
    the segments' median (unbiased, and not lifted by the edge segments whose footprint reaches
    the ice; variance pi/2 times the mean's).

:func:`nasa_lead_surface` combines a window's leads by Eq. 3; :func:`smooth_leads` and
:func:`lead_kernel_surface` make the along-track ``leads`` surface of
:mod:`seaice_tasks.surface.sea_surface`.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["WEIGHT_FORMS", "LEAD_VARIANCE_FLOOR_M2", "lead_runs", "lead_heights", "nasa_lead_surface",
           "lead_kernel_surface", "smooth_leads"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: Per-lead height forms (``SeaSurfaceConfig.weight_form``).
WEIGHT_FORMS: Final[tuple[str, ...]] = ("paper", "notebook", "mean", "median")
#: Variance of a median over that of the mean of normal samples (large n): pi / 2.
_MEDIAN_VARIANCE_FACTOR: Final[float] = float(np.pi / 2.0)
#: Leads farther than this many kernel lengths take no part in a lead's smoothed height.
_KERNEL_REACH: Final[float] = 3.0
#: Floor of a lead's variance (m**2; R1's guard of Eq. 3).
LEAD_VARIANCE_FLOOR_M2: Final[float] = 1e-10


def lead_runs(is_lead: BoolArray, consecutive: BoolArray) -> tuple[IntArray, IntArray]:
    """Maximal runs of lead rows: ``[start, stop)`` row ranges.

    ``consecutive[i]`` says row ``i + 1`` follows row ``i`` without a gap (length ``n - 1``).

    Examples
    --------
    >>> lead_runs(np.array([0, 1, 1, 0, 1, 1], bool), np.array([1, 1, 1, 1, 0], bool))
    (array([1, 4, 5]), array([3, 5, 6]))
    """
    n = is_lead.size
    if n == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    starts_mask = is_lead.copy()
    starts_mask[1:] &= ~(is_lead[:-1] & consecutive)
    stops_mask = is_lead.copy()
    stops_mask[:-1] &= ~(is_lead[1:] & consecutive)
    return np.flatnonzero(starts_mask).astype(np.int64), (np.flatnonzero(stops_mask) + 1).astype(np.int64)


def lead_heights(h: FloatArray, sigma: FloatArray, starts: IntArray, stops: IntArray,
                 weight_form: str = "paper") -> tuple[FloatArray, FloatArray]:
    """Height and variance of each lead ``[starts, stops)`` (m, m**2): paper Eq. 2 or the mean.

    ``weight_form``: ``paper`` (Eq. 2), ``notebook`` (its precedence bug) or ``mean`` (the
    inverse-variance mean, :class:`SeaSurfaceConfig`).

    Examples
    --------
    One lead of two segments 1 sigma apart: weights 1 and exp(-1); their mean is half way.

    >>> h_l, var_l = lead_heights(np.array([0.0, 0.1]), np.array([0.1, 0.1]), np.array([0]), np.array([2]))
    >>> round(float(h_l[0]), 4)
    0.0269
    >>> h_l, var_l = lead_heights(np.array([0.0, 0.1]), np.array([0.1, 0.1]), np.array([0]), np.array([2]), "mean")
    >>> round(float(h_l[0]), 4), round(float(var_l[0]), 4)
    (0.05, 0.005)

    A lead of five segments whose edge segments read high: the median keeps to the interior.

    >>> h_l, _ = lead_heights(np.array([0.2, 0.01, 0.0, 0.02, 0.15]), np.full(5, 0.03), np.array([0]),
    ...                       np.array([5]), "median")
    >>> round(float(h_l[0]), 4)
    0.02
    """
    if starts.size == 0:
        return np.empty(0), np.empty(0)
    run = np.repeat(np.arange(starts.size), stops - starts)
    rows = np.concatenate([np.arange(a, b) for a, b in zip(starts.tolist(), stops.tolist(), strict=True)])
    hh, ss = h[rows], sigma[rows]
    if weight_form == "median":
        return _median_leads(hh, ss, run, stops - starts)
    if weight_form == "mean":
        w = 1.0 / ss**2
    else:
        h_min = _run_min(hh, run, starts.size)
        dz = (hh - h_min[run]) / ss
        w = np.exp(-(dz**2)) if weight_form == "paper" else np.exp(-dz) ** 2
    wsum = np.bincount(run, weights=w, minlength=starts.size)
    a = w / wsum[run]
    h_lead = np.bincount(run, weights=a * hh, minlength=starts.size)
    var_lead = np.maximum(np.bincount(run, weights=a**2 * ss**2, minlength=starts.size), LEAD_VARIANCE_FLOOR_M2)
    return np.asarray(h_lead, dtype=np.float64), np.asarray(var_lead, dtype=np.float64)


def _median_leads(hh: FloatArray, ss: FloatArray, run: IntArray,
                  counts: IntArray) -> tuple[FloatArray, FloatArray]:
    """Median height of each lead's segments (m) and its variance: pi/2 times the inverse-variance mean's."""
    order = np.lexsort((hh, run))
    sorted_h = hh[order]
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    med = 0.5 * (sorted_h[first + (counts - 1) // 2] + sorted_h[first + counts // 2])
    inv = np.bincount(run, weights=1.0 / ss**2, minlength=counts.size)
    var = np.maximum(_MEDIAN_VARIANCE_FACTOR / inv, LEAD_VARIANCE_FLOOR_M2)
    return np.asarray(med, dtype=np.float64), np.asarray(var, dtype=np.float64)


def nasa_lead_surface(h: FloatArray, sigma: FloatArray, starts: IntArray, stops: IntArray,
                      weight_form: str = "paper") -> tuple[float, float, float, int]:
    """Eqs. 2-3 over the leads ``[starts, stops)`` of one window.

    Returns
    -------
    h_ref, sigma_ref, spread, n_leads : float, float, float, int
        The window's surface (m), Eq. 3's uncertainty (m), the sample standard deviation of the
        lead heights (m; 0 for one lead) and the number of leads; NaNs and 0 without leads.

    Examples
    --------
    >>> h_ref, s, spread, n = nasa_lead_surface(np.array([0.0, 0.1]), np.array([0.1, 0.1]),
    ...                                         np.array([0]), np.array([2]))
    >>> round(h_ref, 4), n
    (0.0269, 1)
    """
    if starts.size == 0:
        return float("nan"), float("nan"), float("nan"), 0
    h_lead, var_lead = lead_heights(h, sigma, starts, stops, weight_form)
    inv = 1.0 / var_lead
    beta = inv / inv.sum()
    h_ref = float(np.sum(beta * h_lead))
    sigma_ref = float(np.sqrt(np.sum(beta**2 * var_lead)))
    spread = float(np.std(h_lead, ddof=1)) if starts.size > 1 else 0.0
    return h_ref, sigma_ref, spread, int(starts.size)


def lead_kernel_surface(x: FloatArray, h: FloatArray, sigma: FloatArray, water: BoolArray, consecutive: BoolArray,
                        kernel_m: float, weight_form: str = "paper") -> tuple[FloatArray, FloatArray]:
    """The ``leads`` surface: lead heights (Eq. 2) smoothed along track and interpolated between leads.

    Every lead of the track (a run of open-water bins) gets its Eq. 2 height at its centre; these
    are averaged with Gaussian weights ``exp(-d**2 / (2 kernel_m**2)) / sigma_L**2`` over the
    leads within ``3 kernel_m`` (the inverse-variance combination of Eq. 3, local instead of per
    fixed window), and the rows take the linear interpolation between lead centres (held beyond
    the first and last).  Unlike the window estimators the surface follows the sea between
    leads instead of stepping every 5 km.

    Returns
    -------
    surface, sigma : ndarray of float64
        Per row (m); NaN without any lead.
    """
    starts, stops = lead_runs(water, consecutive)
    n = x.size
    if starts.size == 0:
        return np.full(n, np.nan), np.full(n, np.nan)
    h_lead, var_lead = lead_heights(h, sigma, starts, stops, weight_form)
    x_lead = 0.5 * (x[starts] + x[stops - 1])
    smooth, smooth_var = smooth_leads(x_lead, h_lead, var_lead, kernel_m)
    return np.interp(x, x_lead, smooth), np.sqrt(np.interp(x, x_lead, smooth_var))


def smooth_leads(x_lead: FloatArray, h_lead: FloatArray, var_lead: FloatArray,
                 kernel_m: float) -> tuple[FloatArray, FloatArray]:
    """Lead heights and variances (m, m**2) at the lead centres ``x_lead`` (m, ascending), smoothed along track.

    The smoothing of :func:`lead_kernel_surface` (one value per lead; the rows interpolate them).
    """
    lo = np.searchsorted(x_lead, x_lead - _KERNEL_REACH * kernel_m, side="left")
    hi = np.searchsorted(x_lead, x_lead + _KERNEL_REACH * kernel_m, side="right")
    smooth = np.empty(x_lead.size)
    smooth_var = np.empty(x_lead.size)
    for j, (a, b) in enumerate(zip(lo.tolist(), hi.tolist(), strict=True)):
        d = (x_lead[a:b] - x_lead[j]) / kernel_m
        w = np.exp(-0.5 * d**2) / var_lead[a:b]
        w /= w.sum()
        smooth[j] = float(w @ h_lead[a:b])
        spread = float(w @ (h_lead[a:b] - smooth[j]) ** 2) / max(b - a - 1, 1)
        smooth_var[j] = float(w**2 @ var_lead[a:b]) + spread
    return smooth, smooth_var


def _run_min(values: FloatArray, run: IntArray, n_runs: int) -> FloatArray:
    out = np.full(n_runs, np.inf)
    np.minimum.at(out, run, values)
    return out
