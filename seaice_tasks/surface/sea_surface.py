"""Local sea surface of one track from its open-water segments (METHOD.md §9, §10.2).

One track (granule + beam) of 2 m segments in along-track order, with a class per segment
(predicted by the classifier; the S2-transferred labels or the simulator's truth can be passed
instead for experiments).  The authors' sliding windows (METHOD §5.1, radius 5 km: 10 km windows
at a 5 km stride, every row keeping the value of the last window that wrote it;
:func:`~seaice_tasks.is2.features.window_index`) hold four estimators:

``minimum``
    the lowest open-water height of the window;
``average``
    the mean open-water height;
``nearest_minimum``
    the ``nearest_k`` lowest open-water rows; every row takes the height of the nearest of them
    in along-track distance;
``nasa``
    the lead equation of ATL10 (paper Eqs. 2-3) with the **correct** weight.  Leads are maximal
    runs of consecutive 2 m bins of open water inside the window.  Per lead ``L`` with heights
    ``h_i`` and uncertainties ``sigma_i`` (``height_sd / sqrt(N)`` floored at ``sigma_floor_m``)::

        h_min = min h_i;  w_i = exp(-((h_i - h_min) / sigma_i)**2);  a_i = w_i / sum(w)
        h_L = sum(a_i h_i);  sigma_L**2 = sum(a_i**2 sigma_i**2)                     (Eq. 2)
        beta_L = (1 / sigma_L**2) / sum_M (1 / sigma_M**2)
        h_ref = sum(beta_L h_L);  sigma_ref**2 = sum(beta_L**2 sigma_L**2)              (Eq. 3)

    ``weight_form="notebook"`` reproduces the authors' precedence bug
    ``exp(-(h - h_min) / sigma)**2`` (METHOD §13 #1) for parity only.  ``weight_form="mean"``
    (not in the papers) replaces Eq. 2 by the inverse-variance mean of the lead's segments,
    ``a_i = sigma_i**-2 / sum(sigma**-2)``: Eq. 2 pulls a lead towards its lowest segment, and at
    2 m that segment's noise is as large as the weights' sigma, so Eq. 2 reads every lead low
    (docs/freeboard.md); the mean is unbiased where the segments are.  ``weight_form="median"``
    (the default, not in the papers) takes the median of the lead's segments (variance pi/2 times
    the mean's): unbiased too, and the one or two edge segments of a lead, whose ~11 m footprint
    reaches the ice and reads high, do not move it.

A fifth surface, ``leads`` (the default reference of freeboard; not in the papers,
:func:`lead_kernel_surface`), keeps the per-lead heights (:mod:`seaice_tasks.surface.lead_heights`)
but not the windows: each lead's height is averaged with its neighbours' (Gaussian weights over
``lead_kernel_m``, inverse variance as Eq. 3) and the rows take the linear interpolation between
lead centres.  The window estimators
hold one value per 10 km window (a step every 5 km); with perfect lead heights that alone leaves
5-7 cm RMSE on a sea surface that moves by decimetres over tens of km (docs/freeboard.md), where
``leads`` leaves 1 cm.  ``reference="nasa"`` is the paper's choice.

The uncertainty the window surfaces carry to every segment (``surface_sigma_m``) is Eq. 3's photon
term plus the spread of the leads about the window's surface, ``s_L**2 / n_L`` (the sample
variance of the lead heights over their count; 0 for one lead): Eq. 3 alone says a window of
many well-measured leads is good to a millimetre, which the leads' scatter contradicts.  Every
reference's uncertainty also takes ``surface_sigma_floor_m`` in quadrature (the error that
averaging leads does not remove, measured on the tuning days).

Windows without open water get no value (the paper's text) unless ``lead_fallback="thin"``
(the notebook: thin ice and water become leads).  Missing windows are filled by linear
interpolation in along-track distance between windows with leads (flag 1), held at the nearest
one beyond the first or last (flag 2); a track without any open water stays NaN (flag 3).  Rows
above ``max_height_m`` (clouds, blunders; the authors' 10 m) or with NaN heights take no part.

Optional smoothing (METHOD §10.2, the paper's figures): a running NaN-minimum of the ``nasa``
surface over ``+-smooth_rows`` rows, split where consecutive rows are more than ``split_gap_m``
apart, remaining NaNs filled from the nearest value.

Examples
--------
>>> import numpy as np
>>> x = np.arange(0.0, 40.0, 2.0)
>>> h = np.where((x >= 10) & (x < 16), 0.01, 0.40)
>>> classes = np.where((x >= 10) & (x < 16), 2, 0).astype(np.uint8)
>>> s = sea_surface(x, h, classes, SeaSurfaceConfig(radius_m=50.0), height_sd_m=np.full(x.size, 0.05),
...                 n_photons=np.full(x.size, 4))
>>> round(float(s["surface_nasa_m"][0]), 6), int(s["surface_flag"][0])
(0.01, 0)
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from seaice_tasks.config import JsonConfig
from seaice_tasks.constants import SeaIceClass
from seaice_tasks.errors import ConfigError
from seaice_tasks.surface.lead_heights import (
    WEIGHT_FORMS,
    lead_heights,
    lead_kernel_surface,
    lead_runs,
    nasa_lead_surface,
    smooth_leads,
)

__all__ = [
    "ESTIMATORS",
    "REFERENCES",
    "WEIGHT_FORMS",
    "FLAG_OWN_LEADS",
    "FLAG_INTERPOLATED",
    "FLAG_EXTRAPOLATED",
    "FLAG_NO_WATER",
    "SeaSurfaceConfig",
    "lead_runs",
    "lead_heights",
    "lead_kernel_surface",
    "smooth_leads",
    "empty_surface",
    "nasa_lead_surface",
    "running_nanmin",
    "segment_sigma",
    "sea_surface",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: The four estimators, in the order of the output columns ``surface_<name>_m``.
ESTIMATORS: Final[tuple[str, ...]] = ("minimum", "average", "nearest_minimum", "nasa")
#: Surfaces freeboard may be measured from (``SeaSurfaceConfig.reference``).
REFERENCES: Final[tuple[str, ...]] = (*ESTIMATORS, "nasa_smooth", "leads")
#: ``surface_flag``: the row's window has its own leads.
FLAG_OWN_LEADS: Final[int] = 0
#: Interpolated between windows with leads.
FLAG_INTERPOLATED: Final[int] = 1
#: Held at the nearest window with leads beyond the first or last one.
FLAG_EXTRAPOLATED: Final[int] = 2
#: No open water anywhere in the track: no surface.
FLAG_NO_WATER: Final[int] = 3
#: The authors' cut of implausible heights (m).
DEFAULT_MAX_HEIGHT_M: Final[float] = 10.0
#: Floor of a 2 m segment's height uncertainty (m): R2's (1 cm)**2 floor of sd**2 / N.
DEFAULT_SIGMA_FLOOR_M: Final[float] = 0.01
_WATER: Final[int] = int(SeaIceClass.OPEN_WATER)
#: Length of a segment (m).
_BIN_M: Final[float] = 2.0
_THIN: Final[int] = int(SeaIceClass.THIN_ICE)


@dataclasses.dataclass(frozen=True)
class SeaSurfaceConfig(JsonConfig):
    """How the local sea surface of a track is estimated (module docstring).

    Attributes
    ----------
    radius_m : float
        Window radius (m): 5000 gives the authors' 10 km windows at a 5 km stride.
    reference : str
        The estimator freeboard is measured from: ``nasa`` (the paper's choice), ``minimum``,
        ``average``, ``nearest_minimum``, ``nasa_smooth`` (the smoothed ``nasa`` surface) or
        ``leads`` (lead heights smoothed along track over ``lead_kernel_m`` and interpolated
        between leads, :func:`lead_kernel_surface`; not in the papers).
    lead_fallback : str
        ``none`` (paper text: windows without water are interpolated) or ``thin`` (notebook:
        thin ice counts as lead when a window has no water).  UNCERTAIN in METHOD §9.
    weight_form : str
        Per-lead height: ``paper`` (Eq. 2, the paper), ``notebook`` (the authors' precedence bug,
        parity only), ``mean`` (inverse-variance mean: unbiased at 2 m) or ``median`` (the
        segments' median: unbiased and not lifted by the lead's edge segments; the default,
        chosen on the tuning days, docs/freeboard.md).
    sigma_floor_m : float
        Floor of a segment's height uncertainty ``height_sd / sqrt(N)`` (m).
    lead_runs : str
        ``bins``: a lead is a run of consecutive 2 m bins (a gap in the data ends it);
        ``rows``: consecutive rows of the table (the authors, gaps ignored).
    nearest_k : int
        Lowest water rows of the ``nearest_minimum`` estimator.
    max_height_m : float
        Rows above this height (m) take no part (clouds, blunders).
    lead_kernel_m : float
        Gaussian length scale of the ``leads`` surface (m).
    lead_edge_trim_m : float
        Open-water segments within this distance (m) of the end of their run of water are not
        leads: the ~11 m laser footprint straddles the ice edge there and lifts their heights.
    smooth_rows : int
        Half width of the running minimum of ``surface_nasa_smooth_m`` (rows; 0: no smoothing,
        the column is the unsmoothed surface).  10,000 in the paper's figures.
    split_gap_m : float
        The smoothing restarts where consecutive rows are farther apart (m).
    surface_sigma_floor_m : float
        Added in quadrature to ``surface_sigma_m`` (m): the error of the surface that averaging
        leads does not remove (a lead's edge segments, a lead that is thin ice, the sea between
        leads).  Without it the error is 1.5-2.4 times the stated uncertainty on the tuning days;
        with 0.015 m, 0.9-1.2 times (1.7 on the hazy day; docs/freeboard.md).
    """

    kind: ClassVar[str] = "sea_surface"
    radius_m: float = 5000.0
    reference: str = "leads"
    lead_fallback: str = "none"
    weight_form: str = "median"
    sigma_floor_m: float = DEFAULT_SIGMA_FLOOR_M
    lead_runs: str = "bins"
    nearest_k: int = 10
    max_height_m: float = DEFAULT_MAX_HEIGHT_M
    lead_kernel_m: float = 2000.0
    lead_edge_trim_m: float = 0.0
    smooth_rows: int = 10_000
    split_gap_m: float = 10_000.0
    surface_sigma_floor_m: float = 0.015

    def __post_init__(self) -> None:
        checks: tuple[tuple[bool, str], ...] = (
            (self.radius_m > 0, "radius_m must be > 0"),
            (self.reference in REFERENCES, f"reference must be one of {REFERENCES}, got {self.reference!r}"),
            (self.lead_kernel_m > 0, "lead_kernel_m must be > 0"),
            (self.lead_fallback in ("none", "thin"), f"lead_fallback must be none or thin, got {self.lead_fallback!r}"),
            (self.weight_form in WEIGHT_FORMS,
             f"weight_form must be one of {WEIGHT_FORMS}, got {self.weight_form!r}"),
            (self.sigma_floor_m > 0, "sigma_floor_m must be > 0"),
            (self.lead_runs in ("bins", "rows"), f"lead_runs must be bins or rows, got {self.lead_runs!r}"),
            (self.nearest_k >= 1, "nearest_k must be >= 1"),
            (self.smooth_rows >= 0, "smooth_rows must be >= 0"),
            (self.lead_edge_trim_m >= 0, "lead_edge_trim_m must be >= 0"),
            (self.split_gap_m > 0, "split_gap_m must be > 0"),
            (self.surface_sigma_floor_m >= 0, "surface_sigma_floor_m must be >= 0"),
        )
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"SeaSurfaceConfig: {message}")


def _trim_edges(water: BoolArray, consecutive: BoolArray, k: int) -> BoolArray:
    """``water`` without the ``k`` rows at each end of every run of water rows."""
    if k <= 0 or not water.any():
        return water
    out = np.zeros_like(water)
    starts, stops = lead_runs(water, consecutive)
    for a, b in zip((starts + k).tolist(), (stops - k).tolist(), strict=True):
        if b > a:
            out[a:b] = True
    return out


def _nearest_minimum(x: FloatArray, h: FloatArray, water: IntArray, rows: slice, k: int) -> FloatArray:
    """Each row of ``rows`` takes the height of the nearest (in x) of the ``k`` lowest water rows."""
    lowest = water[np.argsort(h[water], kind="stable")[:k]]
    lowest = lowest[np.argsort(x[lowest], kind="stable")]
    return np.asarray(h[lowest[_nearest(x[lowest], x[rows])]], dtype=np.float64)


def _nearest(points: FloatArray, x: FloatArray) -> IntArray:
    """Index of the nearest of the ascending, non-empty ``points`` for every ``x`` (ties: the lower one)."""
    if points.size == 1:
        return np.zeros(x.size, dtype=np.int64)
    j = np.clip(np.searchsorted(points, x), 1, points.size - 1)
    left = np.abs(x - points[j - 1]) <= np.abs(points[j] - x)
    return np.where(left, j - 1, j).astype(np.int64)


def segment_sigma(height_sd_m: FloatArray, n_photons: FloatArray, floor_m: float) -> FloatArray:
    """Height uncertainty of 2 m segments (m): ``height_sd / sqrt(N)`` floored (R2; 1-photon bins have sd 0)."""
    return np.maximum(np.where(n_photons > 0, np.nan_to_num(height_sd_m) / np.sqrt(np.maximum(n_photons, 1.0)), 0.0),
                      floor_m)


def running_nanmin(values: FloatArray, half: int, x: FloatArray, split_gap_m: float) -> FloatArray:
    """Running NaN-minimum over ``+-half`` rows, truncated at the ends and at gaps > ``split_gap_m``.

    Remaining NaNs (pieces without any value) take the nearest value of their piece, then of the
    track.

    Examples
    --------
    >>> running_nanmin(np.array([3.0, np.nan, 1.0, 5.0, 4.0]), 1, np.arange(5.0), 10.0)
    array([3., 1., 1., 1., 4.])
    """
    from scipy.ndimage import minimum_filter1d

    out = np.full(values.size, np.nan)
    if values.size == 0:
        return out
    cuts = np.flatnonzero(np.diff(x) > split_gap_m) + 1
    for piece in np.split(np.arange(values.size), cuts):
        v = values[piece]
        if half > 0:
            m = minimum_filter1d(np.where(np.isfinite(v), v, np.inf), size=2 * half + 1, mode="constant",
                                 cval=np.inf)
            m[~np.isfinite(m)] = np.nan
        else:
            m = v.copy()
        out[piece] = m
    finite = np.isfinite(out)
    if finite.any() and not finite.all():
        idx = np.flatnonzero(finite)
        near = idx[_nearest(x[idx], x)]
        out[~finite] = out[near[~finite]]
    return out


def sea_surface(
    x_atc_m: npt.ArrayLike,
    h_m: npt.ArrayLike,
    classes: npt.ArrayLike,
    config: SeaSurfaceConfig | None = None,
    *,
    height_sd_m: npt.ArrayLike,
    n_photons: npt.ArrayLike,
    bin_index: npt.ArrayLike | None = None,
) -> pd.DataFrame:
    """The four sea surfaces of one track, the chosen reference and its uncertainty, per row.

    Parameters
    ----------
    x_atc_m : array_like of float
        Along-track distance (m), ascending.
    h_m : array_like of float
        Corrected 2 m heights ``h_cor_mean_m`` (m).
    classes : array_like of int
        0 thick, 1 thin, 2 open water, 255 none (never a lead).
    config : SeaSurfaceConfig, optional
        Window, estimator and lead settings.
    height_sd_m, n_photons : array_like
        Photon height standard deviation (m) and photon count of each segment (for ``sigma_i``).
    bin_index : array_like of int, optional
        2 m bin numbers (``lead_runs="bins"``); default ``round(x_atc_m / 2)``.

    Returns
    -------
    pandas.DataFrame
        Same rows: ``surface_minimum_m``, ``surface_average_m``, ``surface_nearest_minimum_m``,
        ``surface_nasa_m``, ``surface_nasa_smooth_m``, ``surface_leads_m`` (m, filled along track), ``surface_m`` (the
        ``reference``), ``surface_sigma_m`` (m), ``surface_flag`` (0 own leads, 1 interpolated,
        2 extrapolated, 3 no water in the track), ``window_leads`` (leads of the row's window)
        and ``lead_distance_m`` (to the nearest lead segment, m; NaN without any).

    Raises
    ------
    ValueError
        When the arrays differ in length or ``x_atc_m`` is not ascending.
    """
    from seaice_tasks.surface.surface_passes import SurfaceScan, row_inputs, surface_rows
    from seaice_tasks.trackio import TrackChunk

    cfg = config if config is not None else SeaSurfaceConfig()
    x = np.asarray(x_atc_m, dtype=np.float64)
    h = np.asarray(h_m, dtype=np.float64)
    cls = np.asarray(classes).astype(np.int64)
    sd = np.asarray(height_sd_m, dtype=np.float64)
    n_ph = np.asarray(n_photons, dtype=np.float64)
    if not (x.size == h.size == cls.size == sd.size == n_ph.size):
        raise ValueError("sea_surface: x_atc_m, h_m, classes, height_sd_m and n_photons differ in length")
    if x.size > 1 and not bool(np.all(np.diff(x) >= 0)):
        raise ValueError("sea_surface: x_atc_m must be sorted ascending")
    bins = (np.asarray(bin_index, dtype=np.int64) if bin_index is not None
            else np.round(x / 2.0).astype(np.int64))
    n = x.size
    if n == 0:
        return empty_surface()
    chunk = TrackChunk(0, n, 0, n, n, pd.DataFrame({"x_atc_m": x}))
    rows = row_inputs(x, h, cls, sd, n_ph, bins, cfg)
    scan = SurfaceScan(cfg)
    scan.add(chunk, rows)
    return surface_rows(scan.finish(), chunk, rows, cfg)


def empty_surface() -> pd.DataFrame:
    """The surface columns of a track without rows."""
    out = {f"surface_{name}_m": np.full(0, np.nan) for name in ESTIMATORS}
    return pd.DataFrame({**out, "surface_nasa_smooth_m": [], "surface_leads_m": [], "surface_m": [],
                         "surface_sigma_m": [],
                         "surface_flag": np.empty(0, np.uint8), "window_leads": np.empty(0, np.int32),
                         "lead_distance_m": []})
