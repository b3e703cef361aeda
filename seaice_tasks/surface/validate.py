"""Our 2 m freeboard of one track against NASA's ATL07/ATL10 of the same granule and beam (METHOD.md §11).

Matching is along track: ATL07/ATL10 ``seg_dist_x`` and our ``x_atc_m`` are the same along-track
coordinate of the reference ground track, so every NASA segment covers our 2 m rows within
``seg_dist_x +- length / 2`` (``height_segment_length_seg``; rows are aggregated by cumulative
sums, O(n log n)).  Figures (:func:`compare_track`):

``datum``
    median of our ``h_cor_mean`` minus ATL07's ``height_segment_height`` over the matched
    segments: ATL07 removes the inverted barometer / DAC and we do not, so the surfaces differ by
    a slowly varying offset; freeboards do not (both are heights above a local surface).
``sea_surface``
    per ATL10 reference section (its freeboard segments' extent): our reference surface's mean
    minus ``beam_refsurf_height``, raw and after the datum offset (mean, RMSE, n).
``classes``
    ATL07 water (``ssh_flag == 1`` or a lead type: 2-5 from release 003, 2-9 before) or ice (type
    1; type 0 cloud dropped) against the majority of our classified rows under the segment:
    agreement and the 2 x 2 table (rows ATL07, columns ours).
``freeboard``
    ours averaged to each ATL10 segment's extent minus ``beam_fb_height`` (mean, RMSE,
    correlation), and per reference section (ice rows only).
``resolution``
    segments per km of the covered stretch: our 2 m rows with a freeboard, ATL07, ATL10; median
    NASA segment length.
``histograms``
    freeboard counts of our ice rows and of ATL10 in fixed bins.

A missing or unreadable ATL07/ATL10 (or a beam absent from it), or one that is another
granule's file under this granule's name (its metadata disagrees with its name), is a recorded
flag, never an error: the other figures are still computed (:mod:`seaice_tasks.surface.reference`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from typing import Any, ClassVar, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from seaice_tasks.alongtrack import segment_means
from seaice_tasks.config import JsonConfig
from seaice_tasks.constants import SeaIceClass
from seaice_tasks.errors import ConfigError, SeaIceError
from seaice_tasks.outputs import BytesOutput, Output
from seaice_tasks.products import FREEBOARD, QUICKLOOK_FILE, VALIDATION, VALIDATION_FILE
from seaice_tasks.surface.reference import ReferenceTrack, companion_uri, read_reference
from seaice_tasks.work import Record, WorkContext, WorkResult

__all__ = [
    "ValidateConfig",
    "ReferenceTrack",
    "companion_uri",
    "read_reference",
    "atl07_is_water",
    "compare_track",
    "pooled_summary",
    "zoom_centre",
    "zoom_height_range",
    "zoom_photons",
    "markdown_report",
    "validate_track_work",
]

log = logging.getLogger(__name__)

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
class ValidateConfig(JsonConfig):
    """Settings of the comparison with ATL07/ATL10 and of the quicklooks.

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


def compare_track(ours: pd.DataFrame, ref: ReferenceTrack, config: ValidateConfig | None = None) -> dict[str, Any]:
    """Every comparison figure of one track (module docstring); JSON-ready.

    Parameters
    ----------
    ours : pandas.DataFrame
        One ``freeboard`` track (``x_atc_m``, ``h_cor_mean_m``, ``class``, ``surface_m``,
        ``freeboard_m``), any order.
    ref : ReferenceTrack
        ATL07/ATL10 of the same beam (:func:`read_reference`).
    config : ValidateConfig, optional
        Histogram bins, default segment length.
    """
    cfg = config if config is not None else ValidateConfig()
    t = ours.sort_values("x_atc_m", kind="stable").reset_index(drop=True)
    x = t["x_atc_m"].to_numpy(dtype=np.float64)
    h = t["h_cor_mean_m"].to_numpy(dtype=np.float64, na_value=np.nan)
    cls = t["class"].to_numpy(dtype=np.int64)
    surface = t["surface_m"].to_numpy(dtype=np.float64, na_value=np.nan)
    fb = t["freeboard_m"].to_numpy(dtype=np.float64, na_value=np.nan)
    ice = np.isin(cls, _ICE)
    span_km = float(x[-1] - x[0] + 2.0) / _M_PER_KM if x.size else 0.0
    out: dict[str, Any] = {"flags": list(ref.flags), "segments": int(x.size), "span_km": round(span_km, 3)}
    out["histograms"] = {"ours_ice": _histogram(fb[ice], cfg)}
    resolution: dict[str, Any] = {"ours_per_km": round(float(np.isfinite(fb).sum()) / span_km, 2) if span_km else None}
    datum = 0.0
    a07 = _sorted(ref.atl07)
    if a07 is not None and x.size:
        inside = (a07["seg_dist_x"] >= x[0]) & (a07["seg_dist_x"] <= x[-1])
        a07 = a07.loc[inside].reset_index(drop=True)
    if a07 is not None and not a07.empty:
        c07 = a07["seg_dist_x"].to_numpy(dtype=np.float64)
        l07 = _lengths(a07, cfg.default_length_m)
        h_ours, n_rows = segment_means(x, h, c07, l07)
        h07 = a07["height_segment_height"].to_numpy(dtype=np.float64, na_value=np.nan)
        d = h_ours - h07
        datum = float(np.nanmedian(d)) if np.isfinite(d).any() else 0.0
        out["datum"] = {"offset_m": round(datum, 4), "height_difference": _diff_stats(d)}
        water07 = atl07_is_water(a07["height_segment_type"].to_numpy(dtype=np.int64, na_value=-1),
                                 a07["height_segment_ssh_flag"].to_numpy(dtype=np.int64, na_value=0), ref.release)
        classified = cls != _UNCLASSIFIED
        wfrac, n_cls = segment_means(x, np.where(classified, (cls == _WATER).astype(np.float64), np.nan), c07, l07)
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
        del n_rows
    a10 = _sorted(ref.atl10)
    if a10 is not None and x.size:
        a10 = a10.loc[(a10["seg_dist_x"] >= x[0]) & (a10["seg_dist_x"] <= x[-1])].reset_index(drop=True)
    if a10 is not None and not a10.empty:
        c10 = a10["seg_dist_x"].to_numpy(dtype=np.float64)
        l10 = _lengths(a10, cfg.default_length_m)
        fb10 = a10["beam_fb_height"].to_numpy(dtype=np.float64, na_value=np.nan)
        fb_ours, _ = segment_means(x, fb, c10, l10)
        both = np.isfinite(fb_ours) & np.isfinite(fb10)
        corr = (float(np.corrcoef(fb_ours[both], fb10[both])[0, 1])
                if both.sum() > 2 and np.std(fb10[both]) > 0 and np.std(fb_ours[both]) > 0 else None)
        out["freeboard"] = {"per_atl10_segment": {**_diff_stats(fb_ours - fb10),
                                                  "correlation": None if corr is None else round(corr, 4)},
                            "ours_mean_ice_m": _diff_stats(fb[ice])["mean_m"],
                            "atl10_mean_m": _diff_stats(fb10)["mean_m"]}
        out["histograms"]["atl10"] = _histogram(fb10, cfg)
        resolution["atl10_per_km"] = round(float(len(a10)) / span_km, 2)
        if ref.atl10_surface is not None and not ref.atl10_surface.empty and "beam_refsurf_ndx" in a10.columns:
            out["sea_surface"] = _sections(x, surface, fb, ice, a10, l10, ref.atl10_surface, datum)
    out["resolution"] = resolution
    return out


def _sections(x: FloatArray, surface: FloatArray, fb: FloatArray, ice: npt.NDArray[np.bool_], a10: pd.DataFrame,
              l10: FloatArray, refsurf: pd.DataFrame, datum: float) -> dict[str, Any]:
    """Per ATL10 reference section: our surface and ice freeboard against ATL10's."""
    ndx = a10["beam_refsurf_ndx"].to_numpy(dtype=np.int64, na_value=0)
    c10 = a10["seg_dist_x"].to_numpy(dtype=np.float64)
    heights = refsurf["beam_refsurf_height"].to_numpy(dtype=np.float64, na_value=np.nan)
    fb10 = a10["beam_fb_height"].to_numpy(dtype=np.float64, na_value=np.nan)
    rows = []
    for k in np.unique(ndx[(ndx >= 1) & (ndx <= heights.size)]).tolist():
        sel = ndx == k
        lo = float((c10[sel] - 0.5 * l10[sel]).min())
        hi = float((c10[sel] + 0.5 * l10[sel]).max())
        a, b = np.searchsorted(x, lo), np.searchsorted(x, hi)
        s = surface[a:b]
        f = fb[a:b][ice[a:b]]
        rows.append({"section": int(k), "from_m": lo, "to_m": hi,
                     "ours_m": float(np.nanmean(s)) if np.isfinite(s).any() else np.nan,
                     "atl10_m": float(heights[k - 1]),
                     "ours_fb_m": float(np.nanmean(f)) if np.isfinite(f).any() else np.nan,
                     "atl10_fb_m": float(np.nanmean(fb10[sel])) if np.isfinite(fb10[sel]).any() else np.nan})
    frame = pd.DataFrame(rows, columns=["section", "from_m", "to_m", "ours_m", "atl10_m", "ours_fb_m", "atl10_fb_m"])
    d = (frame["ours_m"] - frame["atl10_m"]).to_numpy(dtype=np.float64)
    dfb = (frame["ours_fb_m"] - frame["atl10_fb_m"]).to_numpy(dtype=np.float64)
    return {"sections": len(frame), "raw": _diff_stats(d), "after_datum": _diff_stats(d - datum),
            "freeboard_per_section": _diff_stats(dfb)}


def _pool(values: list[Mapping[str, Any]]) -> dict[str, float | int | None]:
    """Count-weighted mean of ``mean_m`` and quadratic mean of ``rmse_m`` over tracks."""
    parts = [(int(v["n"]), float(v["mean_m"]), float(v["rmse_m"])) for v in values
             if v and v.get("n") and v.get("mean_m") is not None]
    n = sum(p[0] for p in parts)
    if not n:
        return {"n": 0, "mean_m": None, "rmse_m": None}
    return {"n": n, "mean_m": round(sum(p[0] * p[1] for p in parts) / n, 4),
            "rmse_m": round(float(np.sqrt(sum(p[0] * p[2] ** 2 for p in parts) / n)), 4)}


def pooled_summary(tracks: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The day's figures pooled over its tracks (count-weighted), and the summed histograms."""
    def pick(*path: str) -> list[Mapping[str, Any]]:
        out = []
        for doc in tracks.values():
            v: Any = doc
            for p in path:
                v = v.get(p) if isinstance(v, Mapping) else None
            if isinstance(v, Mapping):
                out.append(v)
        return out

    agree = [(int(c["matched"]), float(c["agreement"])) for c in pick("classes") if c.get("agreement") is not None]
    n_agree = sum(a for a, _ in agree)
    hist: dict[str, dict[str, Any]] = {}
    for doc in tracks.values():
        for name, h in doc.get("histograms", {}).items():
            slot = hist.setdefault(name, {"edges_m": h["edges_m"], "counts": [0] * len(h["counts"])})
            slot["counts"] = [a + b for a, b in zip(slot["counts"], h["counts"], strict=True)]
    res_ours = [d["resolution"].get("ours_per_km") for d in tracks.values() if d.get("resolution")]
    res_10 = [d["resolution"].get("atl10_per_km") for d in tracks.values() if d.get("resolution")]
    return {
        "tracks": len(tracks),
        "flagged": {k: d["flags"] for k, d in sorted(tracks.items()) if d.get("flags")},
        "sea_surface_after_datum": _pool(pick("sea_surface", "after_datum")),
        "sea_surface_raw": _pool(pick("sea_surface", "raw")),
        "freeboard_vs_atl10_segments": _pool(pick("freeboard", "per_atl10_segment")),
        "freeboard_vs_atl10_sections": _pool(pick("sea_surface", "freeboard_per_section")),
        "class_agreement_vs_atl07": round(sum(a * b for a, b in agree) / n_agree, 4) if n_agree else None,
        "segments_per_km": {
            "ours": round(float(np.mean([r for r in res_ours if r is not None])), 2)
            if any(r is not None for r in res_ours) else None,
            "atl10": round(float(np.mean([r for r in res_10 if r is not None])), 2)
            if any(r is not None for r in res_10) else None,
        },
        "histograms": hist,
    }


#: Photons of a zoom further than this above or below the 2 m heights of the stretch are not drawn (m).
_ZOOM_MARGIN_M: Final[float] = 3.0
#: ``geophys_corr/dem_flag`` value meaning ``dem_h`` is the mean sea surface.
_DEM_FLAG_MSS: Final[int] = 3
#: Lowest ``signal_conf_ph`` (sea-ice column) of a signal photon in the zoom.
_SIGNAL_CONF: Final[int] = 3


def zoom_centre(ours: pd.DataFrame) -> float:
    """Along-track centre of a quicklook's photon zoom (m): the open-water row nearest the middle."""
    x = ours["x_atc_m"].to_numpy(dtype=np.float64)
    if not x.size:
        return 0.0
    mid = 0.5 * (x[0] + x[-1])
    water = x[ours["class"].to_numpy() == _WATER]
    return float(water[np.argmin(np.abs(water - mid))]) if water.size else float(mid)


def zoom_height_range(ours: pd.DataFrame) -> tuple[float, float]:
    """Height range (m) of a quicklook's photon zoom: the 1st to 99th percentile of the track's 2 m heights."""
    h = ours["h_cor_mean_m"].to_numpy(dtype=np.float64)
    finite = h[np.isfinite(h)]
    return (float(np.percentile(finite, 1)), float(np.percentile(finite, 99))) if finite.size else (0.0, 1.0)


def zoom_photons(atl03_uri: str, beam: str, centre_m: float, length_m: float, h_range_m: tuple[float, float],
                 storage_options: dict[str, Any] | None = None) -> pd.DataFrame:
    """Photons of ``centre +- length / 2`` on our height datum (m above the MSS, tides removed).

    ``h_m = h_ph - MSS - tide_ocean - tide_equilibrium`` with the 20 m segment's corrections
    (MSS = ``dem_h`` where ``dem_flag`` says it is the mean sea surface, else the geoid): the
    2 m heights' datum without the first-photon bias (a centimetre), enough for a picture.
    ``signal``: sea-ice confidence >= 3 and nominal quality.
    """
    from seaice_tasks.io.atl03 import read_photons, read_segments

    seg = read_segments(atl03_uri, beam, storage_options=storage_options)
    start = seg["segment_dist_x_m"].to_numpy(dtype=np.float64)
    lo, hi = centre_m - 0.5 * length_m, centre_m + 0.5 * length_m
    rows = np.flatnonzero((start >= lo - 20.0) & (start <= hi))
    empty = pd.DataFrame({"x_atc_m": np.empty(0), "h_m": np.empty(0), "signal": np.empty(0, dtype=bool)})
    if not rows.size:
        return empty
    a, b = int(rows[0]), int(rows[-1]) + 1
    ph = read_photons(atl03_uri, beam, a, b, storage_options=storage_options)
    r = ph.segment_row
    dem_flag = seg["dem_flag"].to_numpy(dtype=np.float64)
    mss = np.where(dem_flag == _DEM_FLAG_MSS, seg["dem_h"].to_numpy(dtype=np.float64),
                   seg["geoid"].to_numpy(dtype=np.float64))
    corr = (mss + np.nan_to_num(seg["tide_ocean"].to_numpy(dtype=np.float64))
            + np.nan_to_num(seg["tide_equilibrium"].to_numpy(dtype=np.float64)))
    h = ph.h_ph_m.astype(np.float64) - corr[r]
    keep = (ph.x_atc_m >= lo) & (ph.x_atc_m < hi) & (h >= h_range_m[0] - _ZOOM_MARGIN_M) & (
        h <= h_range_m[1] + _ZOOM_MARGIN_M)
    signal = (ph.signal_conf[:, 2] >= _SIGNAL_CONF) & (ph.quality_ph == 0)
    return pd.DataFrame({"x_atc_m": ph.x_atc_m[keep], "h_m": h[keep], "signal": signal[keep]})


def markdown_report(day: str, pooled: Mapping[str, Any], tracks: Mapping[str, Mapping[str, Any]]) -> str:
    """The day's validation as Markdown: pooled figures, then one line per track."""
    def num(v: Any, unit: str = "") -> str:
        return "-" if v is None else (f"{v:.3f}{unit}" if isinstance(v, float) else f"{v}{unit}")

    lines = [f"# Validation of {day} against ATL07/ATL10", "",
             f"{pooled['tracks']} track(s).  Freeboard is datum-free; sea surfaces are compared after removing "
             "each track's datum offset (median of our 2 m heights minus ATL07's: ATL07 removes the inverted "
             "barometer, we do not).", "",
             "| figure | n | mean (m) | RMSE (m) |", "|---|---|---|---|"]
    for label, key in (("sea surface - ATL10 reference, per section (after datum)", "sea_surface_after_datum"),
                       ("sea surface - ATL10 reference, per section (raw)", "sea_surface_raw"),
                       ("freeboard - ATL10, per ATL10 segment", "freeboard_vs_atl10_segments"),
                       ("ice freeboard - ATL10, per section", "freeboard_vs_atl10_sections")):
        v = pooled[key]
        lines.append(f"| {label} | {v['n']} | {num(v['mean_m'])} | {num(v['rmse_m'])} |")
    res = pooled["segments_per_km"]
    lines += ["", f"Class agreement with ATL07 (water vs ice): {num(pooled['class_agreement_vs_atl07'])}.  "
                  f"Segments per km: ours {num(res['ours'])}, ATL10 {num(res['atl10'])}.", "",
              "| track | segments | datum offset (m) | surface RMSE (m) | freeboard diff mean / RMSE (m) | "
              "class agreement | flags |", "|---|---|---|---|---|---|---|"]
    for name, doc in sorted(tracks.items()):
        ss = doc.get("sea_surface", {}).get("after_datum", {})
        fb = doc.get("freeboard", {}).get("per_atl10_segment", {})
        lines.append(f"| {name} | {doc.get('segments')} | {num(doc.get('datum', {}).get('offset_m'))} | "
                     f"{num(ss.get('rmse_m'))} | {num(fb.get('mean_m'))} / {num(fb.get('rmse_m'))} | "
                     f"{num(doc.get('classes', {}).get('agreement'))} | {', '.join(doc.get('flags', [])) or '-'} |")
    return "\n".join(lines) + "\n"


def validate_track_work(rec: Record, ctx: WorkContext[ValidateConfig]) -> WorkResult:
    """One track -> its ``validation`` partition (figures JSON + quicklook) and the figures as a row.

    Record: ``date``, ``granule``, ``beam`` and the URIs ``atl03``, ``atl07``, ``atl10`` the
    driver found in the day's inventory (empty: none).  Raw files are read with the catalog's
    storage options.
    """
    from seaice_tasks.surface.plots import track_quicklook

    cfg = ctx.config
    granule, beam, day = str(rec["granule"]), str(rec["beam"]), str(rec["date"])
    options = dict(ctx.inputs.storage_options) or None
    ours = ctx.lake.read_table(FREEBOARD.key(date=day, granule=granule, beam=beam)).to_pandas()
    ours = ours.sort_values("x_atc_m", kind="stable").reset_index(drop=True)
    ref = read_reference(rec.get("atl07") or None, rec.get("atl10") or None, beam, options)
    doc = compare_track(ours, ref, cfg)
    key = VALIDATION.key(date=day, granule=granule, beam=beam)
    outputs: list[Output] = []
    if cfg.quicklook:
        photons = None
        if rec.get("atl03") and len(ours):
            try:
                photons = zoom_photons(str(rec["atl03"]), beam, zoom_centre(ours), cfg.zoom_m,
                                       zoom_height_range(ours), options)
            except (SeaIceError, OSError) as exc:
                doc["flags"].append(f"no photon zoom: {exc}")
        png = track_quicklook(ours, title=f"{granule} {beam} {day}", atl07=ref.atl07, atl10=ref.atl10,
                              atl10_surface=ref.atl10_surface, photons=photons,
                              datum_offset_m=float(doc.get("datum", {}).get("offset_m") or 0.0))
        outputs.append(BytesOutput(key, QUICKLOOK_FILE, png))
    outputs.insert(0, BytesOutput(key, VALIDATION_FILE, json.dumps(doc, sort_keys=True, indent=1).encode()))
    return WorkResult(rows=({"track": f"{granule}/{beam}", **doc},), outputs=tuple(outputs))
