"""Our 2 m freeboard of one track against NASA's ATL07/ATL10 of the same beam: the figures (METHOD.md §11).

:func:`compare_track` of a track in memory, :class:`TrackComparison` of a track given in
along-track chunks (:mod:`seaice_tasks.trackio`): the same figures, bit for bit.  The rows meet
NASA's segments by cumulative sums in row order (:class:`~seaice_tasks.alongtrack.SegmentMeans`),
the histograms add counts, a reference section's rows are gathered until it ends, the mean
freeboard of the ice rows sees every finite one (8 bytes a row: the only part that grows with
the track).  The figures are described in :mod:`seaice_tasks.surface.validate`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from seaice_tasks.alongtrack import SegmentMeans
from seaice_tasks.constants import SeaIceClass
from seaice_tasks.errors import ConfigError
from seaice_tasks.surface.reference import ReferenceTrack
from seaice_tasks.trackio import ChunkedConfig

__all__ = ["ValidateConfig", "atl07_is_water", "compare_track", "TrackComparison", "COMPARED_COLUMNS"]

FloatArray = npt.NDArray[np.float64]
#: ATL07 surface types of leads from release 003 (specular 2-5) and before (2-9, dark leads too).
_LEAD_TYPES_R003: Final[tuple[int, ...]] = (2, 3, 4, 5)
_LEAD_TYPES_OLD: Final[tuple[int, ...]] = (2, 3, 4, 5, 6, 7, 8, 9)
_ICE_TYPE: Final[int] = 1
_CLOUD_TYPE: Final[int] = 0
_WATER: Final[int] = int(SeaIceClass.OPEN_WATER)
_ICE: Final[tuple[int, int]] = (int(SeaIceClass.THICK_ICE), int(SeaIceClass.THIN_ICE))
_UNCLASSIFIED: Final[int] = int(SeaIceClass.UNLABELED)
_M_PER_KM: Final[float] = 1000.0


@dataclasses.dataclass(frozen=True)
class ValidateConfig(ChunkedConfig):
    """Settings of the comparison with ATL07/ATL10 and of the quicklooks (and ``chunk_rows``).

    Attributes
    ----------
    histogram_bins : int
        Freeboard histogram bins.
    histogram_range_m : tuple of float
        Freeboard histogram range (m).
    default_length_m : float
        Extent of a NASA segment without a usable ``height_segment_length_seg`` (m).
    quicklook : bool
        Draw the per-track quicklook PNGs.
    zoom_m : float
        Length of the photon-cloud zoom of a quicklook (m), centred on the track's lead nearest
        its middle.
    """

    kind: ClassVar[str] = "validate"
    histogram_bins: int = 50
    histogram_range_m: tuple[float, float] = (-0.5, 3.5)
    default_length_m: float = 20.0
    quicklook: bool = True
    zoom_m: float = 1500.0

    def __post_init__(self) -> None:
        super().__post_init__()
        lo, hi = self.histogram_range_m
        if self.histogram_bins < 1 or not hi > lo or not self.default_length_m > 0 or not self.zoom_m > 0:
            raise ConfigError("ValidateConfig: histogram_bins >= 1, a range lo < hi, default_length_m > 0 and "
                              "zoom_m > 0 required")


def atl07_is_water(types: npt.ArrayLike, ssh_flag: npt.ArrayLike, release: int | None) -> npt.NDArray[np.int8]:
    """1 water, 0 ice, -1 neither (cloud, unknown) per ATL07 segment (METHOD §11).

    Examples
    --------
    >>> atl07_is_water([0, 1, 2, 7, 1], [0, 0, 0, 0, 1], 3).tolist()
    [-1, 0, 1, -1, 1]
    """
    t = np.asarray(types, dtype=np.int64)
    ssh = np.asarray(ssh_flag, dtype=np.int64)
    leads = _LEAD_TYPES_OLD if (release is not None and release < 3) else _LEAD_TYPES_R003
    out = np.full(t.size, -1, dtype=np.int8)
    out[t == _ICE_TYPE] = 0
    out[np.isin(t, leads) | (ssh == 1)] = 1
    return out


def _lengths(frame: pd.DataFrame, default_m: float) -> FloatArray:
    if "height_segment_length_seg" not in frame.columns:
        return np.full(len(frame), default_m)
    length = frame["height_segment_length_seg"].to_numpy(dtype=np.float64, na_value=np.nan)
    return np.where(np.isfinite(length) & (length > 0), length, default_m)


def _diff_stats(d: npt.ArrayLike) -> dict[str, float | int | None]:
    v = np.asarray(d, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not v.size:
        return {"n": 0, "mean_m": None, "rmse_m": None, "std_m": None}
    return {"n": int(v.size), "mean_m": round(float(v.mean()), 4), "rmse_m": round(float(np.sqrt(np.mean(v**2))), 4),
            "std_m": round(float(v.std()), 4)}


def _histogram(values: npt.ArrayLike, config: ValidateConfig) -> dict[str, list[float] | list[int]]:
    v = np.asarray(values, dtype=np.float64)
    counts, edges = np.histogram(v[np.isfinite(v)], bins=config.histogram_bins, range=config.histogram_range_m)
    return {"edges_m": [round(float(e), 6) for e in edges], "counts": [int(c) for c in counts]}


def _sorted(frame: pd.DataFrame | None) -> pd.DataFrame | None:
    if frame is None or frame.empty:
        return None
    return frame.sort_values("seg_dist_x", kind="stable").reset_index(drop=True)


#: Columns of the ``freeboard`` product the comparison reads.
COMPARED_COLUMNS: Final[tuple[str, ...]] = ("x_atc_m", "h_cor_mean_m", "class", "surface_m", "freeboard_m")


def compare_track(ours: pd.DataFrame, ref: ReferenceTrack, config: ValidateConfig | None = None) -> dict[str, Any]:
    """Every comparison figure of one track (:mod:`seaice_tasks.surface.validate`); JSON-ready.

    Parameters
    ----------
    ours : pandas.DataFrame
        One ``freeboard`` track (``x_atc_m``, ``h_cor_mean_m``, ``class``, ``surface_m``,
        ``freeboard_m``), any order.
    ref : ReferenceTrack
        ATL07/ATL10 of the same beam (:func:`~seaice_tasks.surface.reference.read_reference`).
    config : ValidateConfig, optional
        Histogram bins, default segment length.
    """
    t = ours.sort_values("x_atc_m", kind="stable").reset_index(drop=True)
    x = t["x_atc_m"].to_numpy(dtype=np.float64)
    comparison = TrackComparison(ref, config, (float(x[0]), float(x[-1])) if x.size else None)
    comparison.add(t)
    return comparison.result()


class TrackComparison:
    """:func:`compare_track` of a track given in consecutive sorted pieces (module docstring).

    Parameters
    ----------
    ref : ReferenceTrack
        ATL07/ATL10 of the beam.
    config : ValidateConfig, optional
        Settings.
    x_range : tuple of float or None
        ``x_atc_m`` of the track's first and last rows (m); None for a track without rows.
    """

    def __init__(self, ref: ReferenceTrack, config: ValidateConfig | None,
                 x_range: tuple[float, float] | None) -> None:
        self.cfg = config if config is not None else ValidateConfig()
        self.ref = ref
        self.x_range = x_range
        self.rows = 0
        self._with_fb = 0
        self._hist = np.zeros(self.cfg.histogram_bins, dtype=np.int64)
        self._fb_ice: list[FloatArray] = []
        a07 = _sorted(ref.atl07)
        if a07 is not None and x_range is not None:
            a07 = a07.loc[(a07["seg_dist_x"] >= x_range[0]) & (a07["seg_dist_x"] <= x_range[1])].reset_index(drop=True)
        self.a07 = a07 if a07 is not None and not a07.empty else None
        a10 = _sorted(ref.atl10)
        if a10 is not None and x_range is not None:
            a10 = a10.loc[(a10["seg_dist_x"] >= x_range[0]) & (a10["seg_dist_x"] <= x_range[1])].reset_index(drop=True)
        self.a10 = a10 if a10 is not None and not a10.empty else None
        #: Our heights and water fractions per ATL07 segment, our freeboard per ATL10 segment.
        self._m07: tuple[SegmentMeans, SegmentMeans] | None = None
        self._m10: SegmentMeans | None = None
        if self.a07 is not None:
            c07, l07 = self.a07["seg_dist_x"].to_numpy(dtype=np.float64), _lengths(self.a07, self.cfg.default_length_m)
            self._m07 = (SegmentMeans(c07, l07), SegmentMeans(c07, l07))
        #: Per ATL10 reference section: its extent (m) and our surfaces and ice freeboards in it, until its means.
        self._sections: dict[int, tuple[float, float, list[FloatArray], list[FloatArray]]] = {}
        self._section_means: dict[int, tuple[float, float]] = {}
        if self.a10 is not None:
            c10, l10 = self.a10["seg_dist_x"].to_numpy(dtype=np.float64), _lengths(self.a10, self.cfg.default_length_m)
            self._m10 = SegmentMeans(c10, l10)
            if self._has_sections():
                ndx = self.a10["beam_refsurf_ndx"].to_numpy(dtype=np.int64, na_value=0)
                n_sections = len(ref.atl10_surface) if ref.atl10_surface is not None else 0
                for k in np.unique(ndx[(ndx >= 1) & (ndx <= n_sections)]).tolist():
                    sel = ndx == k
                    self._sections[int(k)] = (float((c10[sel] - 0.5 * l10[sel]).min()),
                                              float((c10[sel] + 0.5 * l10[sel]).max()), [], [])

    def _has_sections(self) -> bool:
        surface = self.ref.atl10_surface
        return (self.a10 is not None and surface is not None and not surface.empty
                and "beam_refsurf_ndx" in self.a10.columns)

    def add(self, t: pd.DataFrame) -> None:
        """The next rows of the track (``COMPARED_COLUMNS``; ascending ``x_atc_m``, after the rows so far)."""
        x = t["x_atc_m"].to_numpy(dtype=np.float64)
        if not x.size:
            return
        h = t["h_cor_mean_m"].to_numpy(dtype=np.float64, na_value=np.nan)
        cls = t["class"].to_numpy(dtype=np.int64)
        surface = t["surface_m"].to_numpy(dtype=np.float64, na_value=np.nan)
        fb = t["freeboard_m"].to_numpy(dtype=np.float64, na_value=np.nan)
        ice = np.isin(cls, _ICE)
        self.rows += x.size
        self._with_fb += int(np.isfinite(fb).sum())
        fb_ice = fb[ice]
        self._hist += np.histogram(fb_ice[np.isfinite(fb_ice)], bins=self.cfg.histogram_bins,
                                   range=self.cfg.histogram_range_m)[0]
        self._fb_ice.append(fb_ice[np.isfinite(fb_ice)])
        if self._m07 is not None:
            self._m07[0].add(x, h)
            classified = cls != _UNCLASSIFIED
            self._m07[1].add(x, np.where(classified, (cls == _WATER).astype(np.float64), np.nan))
        if self._m10 is not None:
            self._m10.add(x, fb)
        for k, (lo, hi, surfaces, freeboards) in self._sections.items():
            if k in self._section_means:
                continue
            a, b = np.searchsorted(x, lo), np.searchsorted(x, hi)
            if a < b:
                surfaces.append(surface[a:b].copy())  # not a view: it would hold the whole piece
                freeboards.append(fb[a:b][ice[a:b]])
            if x[-1] >= hi:  # no later row falls in the section: its means, and its rows let go
                self._section_means[k] = _section_means(surfaces, freeboards)
                surfaces.clear()
                freeboards.clear()

    def result(self) -> dict[str, Any]:
        """The figures of the rows given (:func:`compare_track`'s document)."""
        cfg, ref = self.cfg, self.ref
        span_km = (float(self.x_range[1] - self.x_range[0] + 2.0) / _M_PER_KM
                   if self.x_range is not None and self.rows else 0.0)
        out: dict[str, Any] = {"flags": list(ref.flags), "segments": int(self.rows), "span_km": round(span_km, 3)}
        edges = np.histogram(np.empty(0), bins=cfg.histogram_bins, range=cfg.histogram_range_m)[1]
        out["histograms"] = {"ours_ice": {"edges_m": [round(float(e), 6) for e in edges],
                                          "counts": [int(c) for c in self._hist]}}
        resolution: dict[str, Any] = {"ours_per_km": round(float(self._with_fb) / span_km, 2) if span_km else None}
        fb_ice = np.concatenate(self._fb_ice) if self._fb_ice else np.empty(0)
        datum = 0.0
        a07, m07 = self.a07, self._m07
        if a07 is not None and m07 is not None:
            l07 = _lengths(a07, cfg.default_length_m)
            h_ours, _ = m07[0].result()
            h07 = a07["height_segment_height"].to_numpy(dtype=np.float64, na_value=np.nan)
            d = h_ours - h07
            datum = float(np.nanmedian(d)) if np.isfinite(d).any() else 0.0
            out["datum"] = {"offset_m": round(datum, 4), "height_difference": _diff_stats(d)}
            water07 = atl07_is_water(a07["height_segment_type"].to_numpy(dtype=np.int64, na_value=-1),
                                     a07["height_segment_ssh_flag"].to_numpy(dtype=np.int64, na_value=0), ref.release)
            wfrac, n_cls = m07[1].result()
            ours_water = np.where(n_cls > 0, (wfrac > 0.5).astype(np.int8), -1)
            both = (water07 >= 0) & (ours_water >= 0)
            table = [[int(((water07 == a) & (ours_water == b) & both).sum()) for b in (0, 1)] for a in (0, 1)]
            out["classes"] = {
                "matched": int(both.sum()),
                "agreement": round(float((water07[both] == ours_water[both]).mean()), 4) if both.any() else None,
                "table_atl07_ice_water_vs_ours_ice_water": table,
                "atl07_water_fraction": round(float((water07[both] == 1).mean()), 4) if both.any() else None,
                "ours_water_fraction": round(float((ours_water[both] == 1).mean()), 4) if both.any() else None,
            }
            resolution["atl07_per_km"] = round(float(len(a07)) / span_km, 2)
            resolution["atl07_median_length_m"] = round(float(np.median(l07)), 2)
        a10, m10 = self.a10, self._m10
        if a10 is not None and m10 is not None:
            fb10 = a10["beam_fb_height"].to_numpy(dtype=np.float64, na_value=np.nan)
            fb_ours, _ = m10.result()
            both = np.isfinite(fb_ours) & np.isfinite(fb10)
            corr = (float(np.corrcoef(fb_ours[both], fb10[both])[0, 1])
                    if both.sum() > 2 and np.std(fb10[both]) > 0 and np.std(fb_ours[both]) > 0 else None)
            out["freeboard"] = {"per_atl10_segment": {**_diff_stats(fb_ours - fb10),
                                                      "correlation": None if corr is None else round(corr, 4)},
                                "ours_mean_ice_m": _diff_stats(fb_ice)["mean_m"],
                                "atl10_mean_m": _diff_stats(fb10)["mean_m"]}
            out["histograms"]["atl10"] = _histogram(fb10, cfg)
            resolution["atl10_per_km"] = round(float(len(a10)) / span_km, 2)
            if self._has_sections():
                out["sea_surface"] = self._section_figures(a10, datum)
        out["resolution"] = resolution
        return out

    def _section_figures(self, a10: pd.DataFrame, datum: float) -> dict[str, Any]:
        """Per ATL10 reference section: our surface and ice freeboard against ATL10's."""
        ndx = a10["beam_refsurf_ndx"].to_numpy(dtype=np.int64, na_value=0)
        heights = (self.ref.atl10_surface["beam_refsurf_height"].to_numpy(dtype=np.float64, na_value=np.nan)
                   if self.ref.atl10_surface is not None else np.empty(0))
        fb10 = a10["beam_fb_height"].to_numpy(dtype=np.float64, na_value=np.nan)
        rows = []
        for k, (lo, hi, surfaces, freeboards) in sorted(self._sections.items()):
            sel = ndx == k
            ours_m, ours_fb_m = self._section_means.get(k) or _section_means(surfaces, freeboards)
            rows.append({"section": int(k), "from_m": lo, "to_m": hi, "ours_m": ours_m,
                         "atl10_m": float(heights[k - 1]), "ours_fb_m": ours_fb_m,
                         "atl10_fb_m": float(np.nanmean(fb10[sel])) if np.isfinite(fb10[sel]).any() else np.nan})
        frame = pd.DataFrame(rows, columns=["section", "from_m", "to_m", "ours_m", "atl10_m", "ours_fb_m",
                                            "atl10_fb_m"])
        d = (frame["ours_m"] - frame["atl10_m"]).to_numpy(dtype=np.float64)
        dfb = (frame["ours_fb_m"] - frame["atl10_fb_m"]).to_numpy(dtype=np.float64)
        return {"sections": len(frame), "raw": _diff_stats(d), "after_datum": _diff_stats(d - datum),
                "freeboard_per_section": _diff_stats(dfb)}


def _section_means(surfaces: list[FloatArray], freeboards: list[FloatArray]) -> tuple[float, float]:
    """Our mean surface and mean ice freeboard (m) of a section's rows (NaN without a finite one)."""
    s = np.concatenate(surfaces) if surfaces else np.empty(0)
    f = np.concatenate(freeboards) if freeboards else np.empty(0)
    return (float(np.nanmean(s)) if np.isfinite(s).any() else np.nan,
            float(np.nanmean(f)) if np.isfinite(f).any() else np.nan)
