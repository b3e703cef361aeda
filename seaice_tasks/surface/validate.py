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

The figures are computed in :mod:`seaice_tasks.surface.comparison`.  :func:`validate_track_work`
reads a track in along-track chunks of ``chunk_rows`` (:mod:`seaice_tasks.trackio`), three
times: its extent, then the zoom's centre and height range, then the figures and the quicklook
(:class:`~seaice_tasks.surface.quicklook_data.QuicklookRows`); the figures and the picture are
those of the whole track in memory, byte for byte.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from seaice_tasks.constants import SeaIceClass
from seaice_tasks.errors import SeaIceError
from seaice_tasks.outputs import BytesOutput, Output
from seaice_tasks.products import FREEBOARD, QUICKLOOK_FILE, VALIDATION, VALIDATION_FILE
from seaice_tasks.storage import PartitionKey
from seaice_tasks.surface.comparison import (
    COMPARED_COLUMNS,
    TrackComparison,
    ValidateConfig,
    atl07_is_water,
    compare_track,
)
from seaice_tasks.surface.quicklook_data import OURS_COLUMNS, QuicklookRows, floats, zoom_stretch
from seaice_tasks.surface.reference import ReferenceTrack, companion_uri, read_reference
from seaice_tasks.trackio import PartitionSource, TrackOrderError, iter_chunks
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
    "validate_track",
    "validate_track_work",
]

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
_WATER: Final[int] = int(SeaIceClass.OPEN_WATER)


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


def _quicklook(ours: pd.DataFrame | QuicklookRows, title: str, ref: ReferenceTrack, photons: pd.DataFrame | None,
               doc: dict[str, Any]) -> bytes:
    """The track's quicklook PNG, of the track in memory or of its rows gathered chunk by chunk."""
    from seaice_tasks.surface.plots import draw_track_quicklook, track_quicklook

    offset = float(doc.get("datum", {}).get("offset_m") or 0.0)
    if isinstance(ours, QuicklookRows):
        return draw_track_quicklook(ours, title=title, atl07=ref.atl07, atl10=ref.atl10,
                                    atl10_surface=ref.atl10_surface, photons=photons, datum_offset_m=offset)
    return track_quicklook(ours, title=title, atl07=ref.atl07, atl10=ref.atl10, atl10_surface=ref.atl10_surface,
                           photons=photons, datum_offset_m=offset)


def _photons(rec: Record, beam: str, centre_m: float, h_range_m: tuple[float, float], cfg: ValidateConfig,
             options: dict[str, Any] | None, doc_flags: list[str]) -> pd.DataFrame | None:
    """The zoom's photons (None: no ATL03; a read that fails is a flag, appended to ``doc_flags``)."""
    try:
        return zoom_photons(str(rec["atl03"]), beam, centre_m, cfg.zoom_m, h_range_m, options)
    except (SeaIceError, OSError) as exc:
        doc_flags.append(f"no photon zoom: {exc}")
        return None


def _whole_track(ctx: WorkContext[ValidateConfig], rec: Record, key: PartitionKey, ref: ReferenceTrack,
                 title: str) -> tuple[dict[str, Any], bytes | None]:
    """The figures and quicklook of the track read at once."""
    cfg = ctx.config
    options = dict(ctx.inputs.storage_options) or None
    ours = ctx.lake.read_table(key).to_pandas()
    ours = ours.sort_values("x_atc_m", kind="stable").reset_index(drop=True)
    doc = compare_track(ours, ref, cfg)
    if not cfg.quicklook:
        return doc, None
    failed: list[str] = []
    photons = (_photons(rec, str(key.beam), zoom_centre(ours), zoom_height_range(ours), cfg, options, failed)
               if rec.get("atl03") and len(ours) else None)
    doc["flags"].extend(failed)
    return doc, _quicklook(ours, title, ref, photons, doc)


def _streamed(ctx: WorkContext[ValidateConfig], rec: Record, key: PartitionKey, ref: ReferenceTrack, title: str,
              chunk_rows: int) -> tuple[dict[str, Any], bytes | None]:
    """The figures and quicklook of the track read in chunks, three times (module docstring)."""
    cfg = ctx.config
    options = dict(ctx.inputs.storage_options) or None
    with PartitionSource(ctx.lake, key) as source:
        first = last = first_m = last_m = np.nan
        for chunk in iter_chunks(source, [], chunk_rows):
            own = chunk.frame.iloc[chunk.own]
            x, xm = own["x_atc_m"].to_numpy(dtype=np.float64), floats(own, "x_atc_m")
            xm = xm[np.isfinite(xm)]
            if x.size:
                first, last = (x[0] if np.isnan(first) else first), x[-1]
            if xm.size:
                first_m, last_m = (xm[0] if np.isnan(first_m) else first_m), xm[-1]
        rows = source.num_rows
        failed: list[str] = []
        photons = None
        if cfg.quicklook and rec.get("atl03") and rows:
            centre, h_range = _zoom_inputs(source, chunk_rows, 0.5 * (first + last))
            photons = _photons(rec, str(key.beam), centre, h_range, cfg, options, failed)
        comparison = TrackComparison(ref, cfg, (float(first), float(last)) if rows else None)
        quicklook = None
        columns = list(COMPARED_COLUMNS)
        if cfg.quicklook:
            from seaice_tasks.surface.plots import photon_arrays

            quicklook = QuicklookRows((float(first_m), float(last_m) + 2.0) if np.isfinite(first_m) else None,
                                      zoom_stretch(photon_arrays(photons)[0]))
            columns = list(dict.fromkeys([*columns, *OURS_COLUMNS]))
        for chunk in iter_chunks(source, columns, chunk_rows):
            own = chunk.frame.iloc[chunk.own].reset_index(drop=True)
            comparison.add(own)
            if quicklook is not None:
                quicklook.add(own)
    doc = comparison.result()
    doc["flags"].extend(failed)
    if quicklook is None:
        return doc, None
    return doc, _quicklook(quicklook, title, ref, photons, doc)


def _zoom_inputs(source: PartitionSource, chunk_rows: int, mid_m: float) -> tuple[float, tuple[float, float]]:
    """:func:`zoom_centre` and :func:`zoom_height_range` of a track read in chunks (its mid-point given)."""
    best, best_d = np.nan, np.inf
    heights = []
    for chunk in iter_chunks(source, ["class", "h_cor_mean_m"], chunk_rows):
        own = chunk.frame.iloc[chunk.own]
        x = own["x_atc_m"].to_numpy(dtype=np.float64)
        water = x[own["class"].to_numpy() == _WATER]
        if water.size:
            d = np.abs(water - mid_m)
            j = int(np.argmin(d))
            if d[j] < best_d:
                best, best_d = float(water[j]), float(d[j])
        h = own["h_cor_mean_m"].to_numpy(dtype=np.float64)
        heights.append(h[np.isfinite(h)])
    finite = np.concatenate(heights) if heights else np.empty(0)
    h_range = (float(np.percentile(finite, 1)), float(np.percentile(finite, 99))) if finite.size else (0.0, 1.0)
    return (best if np.isfinite(best) else float(mid_m)), h_range


def validate_track(ctx: WorkContext[ValidateConfig], rec: Record, chunk_rows: int) -> WorkResult:
    """:func:`validate_track_work` with ``chunk_rows`` given (0: the whole track at once)."""
    granule, beam, day = str(rec["granule"]), str(rec["beam"]), str(rec["date"])
    options = dict(ctx.inputs.storage_options) or None
    key_in = FREEBOARD.key(date=day, granule=granule, beam=beam)
    ref = read_reference(rec.get("atl07") or None, rec.get("atl10") or None, beam, options)
    title = f"{granule} {beam} {day}"
    if chunk_rows == 0:
        doc, png = _whole_track(ctx, rec, key_in, ref, title)
    else:
        try:
            doc, png = _streamed(ctx, rec, key_in, ref, title, chunk_rows)
        except TrackOrderError as exc:
            log.warning("%s; validated as a whole", exc)
            doc, png = _whole_track(ctx, rec, key_in, ref, title)
    key = VALIDATION.key(date=day, granule=granule, beam=beam)
    outputs: list[Output] = [BytesOutput(key, VALIDATION_FILE, json.dumps(doc, sort_keys=True, indent=1).encode())]
    if png is not None:
        outputs.append(BytesOutput(key, QUICKLOOK_FILE, png))
    return WorkResult(rows=({"track": f"{granule}/{beam}", **doc},), outputs=tuple(outputs))


def validate_track_work(rec: Record, ctx: WorkContext[ValidateConfig]) -> WorkResult:
    """One track -> its ``validation`` partition (figures JSON + quicklook) and the figures as a row.

    Record: ``date``, ``granule``, ``beam`` and the URIs ``atl03``, ``atl07``, ``atl10`` the
    driver found in the day's inventory (empty: none).  Raw files are read with the catalog's
    storage options.  The track is read in chunks of the config's ``chunk_rows`` (module
    docstring); with ``chunk_rows`` 0, or when its rows are not in ascending ``x_atc_m`` (a
    warning), at once.
    """
    return validate_track(ctx, rec, ctx.config.chunk_rows)
