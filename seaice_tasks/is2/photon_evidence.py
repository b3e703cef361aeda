"""The photons' own evidence of open water and thin ice along a 2 m track (no labels, no model).

NASA's ATL07 tells leads from ice by what the photons do, not by an image: open water is at the
local water level, flat, and either specular (far more photons than the ice around it) or dark
(far fewer).  This module reads the same evidence off the 2 m segments, in terms that mean the
same on every day:

* ``rate_rel`` -- the bin's photon count over the running median count of the track around it
  (``rate_window_m``).  Haze, thin cloud, the beam's strength and the time of day scale every
  count alike, so the ratio does not move with them;
* ``height_above_low_m`` -- the bin's corrected height above a low percentile of the heights
  around it (``low_window_m``, ``low_percentile``): the local water level when the window holds
  a lead, a little below the thinnest ice otherwise.  Offsets between days and tracks (tides,
  dynamic topography) cancel;
* ``water_like`` -- a bin at the water level (``height_above_low_m`` below ``water_height_m``)
  whose rate is dark (below ``dark_rate``) or specular (above ``specular_rate``);
* ``water_vote`` -- the share of ``water_like`` bins among the ``2 * smooth_bins + 1`` bins
  around it, and ``height_median_m`` the median ``height_above_low_m`` there: a lead is several
  bins wide, a noisy bin is not;
* ``evidence_class`` -- open water where the vote reaches ``water_vote`` and the median height is
  at the water level; thin ice where the median height is below ``thin_height_m`` and the median
  rate below ``thin_rate`` (thin ice is low and darker than snow); thick ice otherwise.

The windows count rows (2 m bins), so across a data gap they reach further along track.  Every
threshold is a :class:`PhotonEvidenceConfig` field; the defaults were set on tuning days only
(docs/classification.md).  Uses: labels that do not teach narrow leads as ice (colocation),
features that hold on hazy days and either orientation, and the leads the sea surface trusts.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from seaice_tasks.config import JsonConfig
from seaice_tasks.constants import SeaIceClass

__all__ = ["PhotonEvidenceConfig", "EVIDENCE_COLUMNS", "photon_evidence", "evidence_halo_rows", "odd_rows"]

FloatArray = npt.NDArray[np.float64]
#: Columns :func:`photon_evidence` returns.
EVIDENCE_COLUMNS: Final[tuple[str, ...]] = (
    "rate_rel", "height_above_low_m", "water_like", "water_vote", "height_median_m", "rate_median", "evidence_class",
)
_BIN_M: Final[float] = 2.0
_THICK: Final[int] = int(SeaIceClass.THICK_ICE)
_THIN: Final[int] = int(SeaIceClass.THIN_ICE)
_WATER: Final[int] = int(SeaIceClass.OPEN_WATER)


@dataclasses.dataclass(frozen=True)
class PhotonEvidenceConfig(JsonConfig):
    """Windows and thresholds of :func:`photon_evidence`.

    Attributes
    ----------
    rate_window_m : float
        Length of the running median of the photon count (m).
    low_window_m : float
        Length of the window of the local low height level (m).
    low_percentile : float
        Percentile of the heights in that window taken as the low level (%).
    dark_rate : float
        ``rate_rel`` below which a bin is dark (dark open water; thin ice sits near 0.5).
    specular_rate : float
        ``rate_rel`` above which a bin is specular (calm open water).
    water_height_m : float
        Largest ``height_above_low_m`` of a water-like bin (m).
    smooth_bins : int
        Bins on each side of the neighbourhood vote.
    water_vote : float
        Smallest share of water-like bins around a bin for open water.
    water_median_height_m : float
        Largest neighbourhood median height for open water (m).
    thin_height_m : float
        Largest neighbourhood median height for thin ice (m).
    thin_rate : float
        Largest neighbourhood median ``rate_rel`` for thin ice.
    """

    kind: ClassVar[str] = "photon_evidence"
    rate_window_m: float = 2000.0
    low_window_m: float = 5000.0
    low_percentile: float = 2.0
    dark_rate: float = 0.3
    specular_rate: float = 1.6
    water_height_m: float = 0.12
    smooth_bins: int = 2
    water_vote: float = 0.5
    water_median_height_m: float = 0.10
    thin_height_m: float = 0.20
    thin_rate: float = 0.8

    def __post_init__(self) -> None:
        if not (self.rate_window_m >= 4 * _BIN_M and self.low_window_m >= 4 * _BIN_M):
            raise ValueError("rate_window_m and low_window_m must span a few 2 m bins (>= 8 m)")
        if not 0.0 <= self.low_percentile <= 50.0:
            raise ValueError(f"low_percentile {self.low_percentile} is not in 0..50")
        if not 0.0 < self.dark_rate < 1.0 < self.specular_rate:
            raise ValueError("need 0 < dark_rate < 1 < specular_rate")
        if self.smooth_bins < 0 or not 0.0 < self.water_vote <= 1.0:
            raise ValueError("smooth_bins must be >= 0 and water_vote in (0, 1]")


def odd_rows(length_m: float) -> int:
    """Rows (2 m bins, odd, >= 1) of a running window ``length_m`` long (m).

    >>> odd_rows(2000.0), odd_rows(5000.0), odd_rows(1.0)
    (1001, 2501, 1)
    """
    rows = max(1, round(length_m / _BIN_M))
    return rows + 1 - rows % 2


def evidence_halo_rows(config: PhotonEvidenceConfig) -> int:
    """Rows a chunk must read beyond the rows it owns for :func:`photon_evidence` to be exact."""
    return max(odd_rows(config.rate_window_m), odd_rows(config.low_window_m)) // 2 + 2 * config.smooth_bins + 1


def photon_evidence(frame: pd.DataFrame, config: PhotonEvidenceConfig | None = None) -> pd.DataFrame:
    """The photon evidence of every 2 m segment of one track.

    Parameters
    ----------
    frame : pandas.DataFrame
        One track in along-track order with ``n_photons`` and ``h_cor_mean_m`` (m).
    config : PhotonEvidenceConfig, optional

    Returns
    -------
    pandas.DataFrame
        Same index: the :data:`EVIDENCE_COLUMNS`.  A bin without a height is never water-like and
        takes no part in the low level; its ``evidence_class`` follows its neighbours.

    Examples
    --------
    >>> x = np.arange(400.0) * 2
    >>> h = np.where((x >= 300) & (x < 340), 0.0, 0.5)  # a 40 m lead in 0.5 m ice
    >>> n = np.where(h == 0.0, 30, 12)                    # a specular one
    >>> ev = photon_evidence(pd.DataFrame({"n_photons": n, "h_cor_mean_m": h}))
    >>> ev["evidence_class"].to_numpy()[[100, 160, 300]].tolist()
    [0, 2, 0]
    """
    from scipy.ndimage import median_filter, percentile_filter, uniform_filter1d

    cfg = config or PhotonEvidenceConfig()
    n = frame["n_photons"].to_numpy(dtype=np.float64)
    h = frame["h_cor_mean_m"].to_numpy(dtype=np.float64)
    size = len(frame)
    if size == 0:
        empty = {c: np.empty(0) for c in EVIDENCE_COLUMNS}
        empty["water_like"] = np.empty(0, np.bool_)
        empty["evidence_class"] = np.empty(0, np.uint8)
        return pd.DataFrame(empty, index=frame.index)
    have = np.isfinite(h)
    reference = median_filter(n, size=odd_rows(cfg.rate_window_m), mode="nearest")
    rate_rel = n / np.maximum(reference, 1.0)
    lifted = np.where(have, h, np.inf)  # a bin without a height never sets the low level
    low = percentile_filter(lifted, cfg.low_percentile, size=odd_rows(cfg.low_window_m), mode="nearest")
    low = np.where(np.isfinite(low), low, np.nan)
    above = h - low
    water_like = have & (above < cfg.water_height_m) & ((rate_rel < cfg.dark_rate) | (rate_rel > cfg.specular_rate))
    width = 2 * cfg.smooth_bins + 1
    vote = uniform_filter1d(water_like.astype(np.float64), width, mode="nearest")
    height_median = median_filter(np.where(np.isfinite(above), above, np.inf), size=width, mode="nearest")
    height_median = np.where(np.isfinite(height_median), height_median, np.nan)
    rate_median = median_filter(rate_rel, size=width, mode="nearest")
    water = (vote >= cfg.water_vote) & (height_median < cfg.water_median_height_m)
    thin = ~water & (height_median < cfg.thin_height_m) & (rate_median < cfg.thin_rate)
    evidence = np.where(water, _WATER, np.where(thin, _THIN, _THICK)).astype(np.uint8)
    return pd.DataFrame({
        "rate_rel": rate_rel, "height_above_low_m": above, "water_like": water_like, "water_vote": vote,
        "height_median_m": height_median, "rate_median": rate_median, "evidence_class": evidence,
    }, index=frame.index)
