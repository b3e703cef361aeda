"""Work function of the colocation job (:mod:`seaice_tasks.spark_jobs.colocate`).

One work item is one (granule, scene) candidate: the scene's label partition and the 2 m
track partitions of the granule's beams.  :func:`colocate_work`

1. reads the label raster, its unusable mask (and the U-Net labels when asked) and each beam's
   segments; projects the segment centres into the scene CRS;
2. keeps the beams whose track crosses the valid footprint within ``max_dt_s`` for at least
   ``min_overlap_m`` (the pairs);
3. estimates the drift shift (:mod:`seaice_tasks.is2.drift`) from all the pairs' beams together
   (``drift_scope`` "scene") or per beam; a manual override of a pair wins;
4. transfers the labels at the shift, trims the end runs, computes the features on the whole
   track, refines with the photons (optional) and applies the manual corrections
   (:mod:`seaice_tasks.is2.label_transfer`, :mod:`seaice_tasks.is2.features`);
5. returns one pair row per beam (:data:`~seaice_tasks.schemas.PAIRS_SCHEMA` fields, plus
   ``skip``/``info``) and a ``segments_labelled`` table per pair with labelled segments.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from seaice_tasks.constants import SeaIceClass
from seaice_tasks.errors import InputError, SeaIceError
from seaice_tasks.is2.colocate import (
    POLAR_CRS,
    ColocateConfig,
    SceneGrid,
    local_jacobian,
    scene_sensing_utc,
    to_crs,
)
from seaice_tasks.is2.drift import DriftEstimate, DriftInput, agreement, estimate_drift, photon_height_above_floor
from seaice_tasks.is2.features import segment_features, window_index
from seaice_tasks.is2.label_transfer import (
    SOURCE_MANUAL,
    SOURCE_NONE,
    SOURCE_PHOTONS,
    SOURCE_S2,
    SOURCE_UNET,
    apply_corrections,
    evidence_labels,
    lookup_labels,
    mixed_pixels,
    refine_with_photons,
    trim_slice,
)
from seaice_tasks.is2.photon_evidence import photon_evidence
from seaice_tasks.outputs import TableOutput
from seaice_tasks.products import LABELS_FILE, S2_LABELS, S2_UNET_LABELS, SEGMENTS_2M, SEGMENTS_LABELLED, UNUSABLE_FILE
from seaice_tasks.schemas import FEATURE_FIELDS, SEGMENTS_LABELLED_SCHEMA
from seaice_tasks.storage import geoparquet_table
from seaice_tasks.work import Record, WorkContext, WorkResult

__all__ = ["plan_candidate_work", "colocate_work", "SEGMENT_COLUMNS"]

#: segments_2m columns the colocation reads.
SEGMENT_COLUMNS: Final[tuple[str, ...]] = (
    "bin_index", "x_atc_m", "lat_deg", "lon_deg", "time_utc", "n_photons", "h_cor_mean_m", "h_cor_median_m",
    "h_std_m", "pcnt_mean", "pcnth_mean", "bcnt_mean", "brate_mean",
)
_UNLABELED: Final[int] = int(SeaIceClass.UNLABELED)
_NODATA_MASK: Final[int] = 255
_SEGMENT_M: Final[float] = 2.0
_NS_PER_S: Final[float] = 1e9

FloatArray = npt.NDArray[np.float64]


def _raster(data: bytes) -> tuple[npt.NDArray[np.uint8], str, tuple[float, ...]]:
    import rasterio

    with rasterio.MemoryFile(io.BytesIO(data)) as mem, mem.open() as ds:
        if ds.crs is None:
            raise SeaIceError("label raster has no CRS")
        return np.asarray(ds.read(1)), ds.crs.to_string(), tuple(ds.transform)[:6]


class _Track:
    """One beam's segments with their scene-CRS positions and the pair's coverage."""

    def __init__(self, beam: str, frame: pd.DataFrame, grid: SceneGrid, sensing_ns: int, config: ColocateConfig):
        self.beam = beam
        self.frame = frame.reset_index(drop=True)
        lon = self.frame["lon_deg"].to_numpy(dtype=np.float64)
        lat = self.frame["lat_deg"].to_numpy(dtype=np.float64)
        self.x, self.y = to_crs(lon, lat, "EPSG:4326", grid.crs)
        t = self.frame["time_utc"]
        t_ns = t.dt.tz_convert("UTC").astype("int64").to_numpy() if hasattr(t, "dt") else np.asarray(t, np.int64)
        self.dt_s = (t_ns - sensing_ns) / _NS_PER_S
        self.in_time = np.abs(self.dt_s) <= config.max_dt_s
        self.contiguous = np.r_[False, np.diff(self.frame["bin_index"].to_numpy()) == 1]
        self.above_floor = photon_height_above_floor(self.frame["h_cor_mean_m"].to_numpy(dtype=np.float64),
                                                     self.frame["x_atc_m"].to_numpy(dtype=np.float64),
                                                     config.floor_block_m, config.floor_percentile)
        self._evidence: npt.NDArray[np.uint8] | None = None
        self._config = config

    @property
    def evidence(self) -> npt.NDArray[np.uint8]:
        """The photon evidence class of every segment (computed on the whole track, once)."""
        if self._evidence is None:
            self._evidence = photon_evidence(self.frame, self._config.evidence)["evidence_class"].to_numpy(np.uint8)
        return self._evidence

    def covered(self, grid: SceneGrid, unusable: npt.NDArray[np.uint8], offset: FloatArray) -> npt.NDArray[np.bool_]:
        """Segments inside the valid footprint (mask not nodata) and the time window at a scene offset."""
        values, _, _ = grid.sample(unusable, self.x - offset[0], self.y - offset[1], outside=_NODATA_MASK)
        return np.asarray((values != _NODATA_MASK) & self.in_time, dtype=bool)


def _drift_input(tracks: Sequence[_Track], near: Sequence[npt.NDArray[np.bool_]]) -> DriftInput:
    return DriftInput(
        x=np.concatenate([t.x[m] for t, m in zip(tracks, near, strict=True)]),
        y=np.concatenate([t.y[m] for t, m in zip(tracks, near, strict=True)]),
        above_floor=np.concatenate([t.above_floor[m] for t, m in zip(tracks, near, strict=True)]),
        contiguous=np.concatenate([(t.contiguous & np.r_[False, m[:-1]])[m]
                                   for t, m in zip(tracks, near, strict=True)]),
    )


def _near(track: _Track, grid: SceneGrid, radius_m: float) -> npt.NDArray[np.bool_]:
    """Segments within the search radius of the raster (they may come inside at some shift)."""
    a, b, c, d, e, f = grid.transform
    px = grid.pixel_size_m
    pad = math.ceil(radius_m / px)
    big = SceneGrid(grid.scene, grid.crs, (a, b, c - pad * (a + b), d, e, f - pad * (d + e)),
                    (grid.shape[0] + 2 * pad, grid.shape[1] + 2 * pad))
    r, _ = big.pixel_of(track.x, track.y)
    return (r >= 0) & track.in_time


def _nan_if(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _load(rec: Record, ctx: WorkContext[ColocateConfig], *, unet: bool) -> tuple[
        SceneGrid, npt.NDArray[np.uint8], npt.NDArray[np.uint8], npt.NDArray[np.uint8] | None,
        list[tuple[_Track, npt.NDArray[np.bool_]]]]:
    """The scene's rasters and the record's beams that pair with it (covered at zero shift)."""
    config = ctx.config
    scene = str(rec["scene"])
    granule = str(rec["granule"])
    label_key = S2_LABELS.key(date=rec["scene_date"], scene=scene)
    _, files = ctx.lake.read_partition(label_key, [LABELS_FILE, UNUSABLE_FILE])
    labels, crs, transform = _raster(files[LABELS_FILE])
    unusable, crs_u, transform_u = _raster(files[UNUSABLE_FILE])
    if unusable.shape != labels.shape or crs_u != crs or transform_u != transform:
        raise InputError(ctx.lake.partition_url(label_key), "labels and unusable mask on different grids")
    grid = SceneGrid(scene, crs, (transform[0], transform[1], transform[2], transform[3], transform[4], transform[5]),
                     (int(labels.shape[0]), int(labels.shape[1])))
    unet_labels = None
    if unet and rec.get("unet"):
        unet_labels, crs_n, transform_n = _raster(ctx.lake.open_file(
            S2_UNET_LABELS.key(date=rec["scene_date"], scene=scene), LABELS_FILE))
        if unet_labels.shape != labels.shape or crs_n != crs or transform_n != transform:
            raise InputError(scene, "U-Net labels on another grid than the colour labels")
    sensing_ns = int(scene_sensing_utc(scene).timestamp() * _NS_PER_S)
    tracks = []
    for beam in rec["beams"]:
        key = SEGMENTS_2M.key(date=rec["date"], granule=granule, beam=beam)
        frame = ctx.lake.read_table(key).select(list(SEGMENT_COLUMNS)).to_pandas()
        tracks.append(_Track(beam, frame.sort_values("x_atc_m", kind="stable"), grid, sensing_ns, config))
    zero = np.zeros(2)
    covered = [t.covered(grid, unusable, zero) for t in tracks]
    pairs = [(t, c) for t, c in zip(tracks, covered, strict=True)
             if np.count_nonzero(c) * _SEGMENT_M >= max(config.min_overlap_m, _SEGMENT_M)]
    return grid, labels, unusable, unet_labels, pairs


def plan_candidate_work(rec: Record, ctx: WorkContext[ColocateConfig]) -> dict[str, Any]:
    """Load pass of one (granule, scene) candidate: the beams that pair and the drift search's size.

    Returns ``{"beams": [...], "segments": n}`` where ``n`` counts the paired beams' segments within
    the search radius of the scene (the cost of the drift search, the weight of the map pass).
    """
    grid, _, _, _, pairs = _load(rec, ctx, unet=False)
    return {"beams": [t.beam for t, _ in pairs],
            "segments": int(sum(np.count_nonzero(_near(t, grid, ctx.config.search_radius_m)) for t, _ in pairs))}


def colocate_work(rec: Record, ctx: WorkContext[ColocateConfig]) -> WorkResult:
    """One (granule, scene) candidate -> pair rows and labelled-segment tables (module docstring).

    Record: ``date``, ``granule``, ``beams``, ``scene``, ``scene_date``, ``unet`` (the scene has a
    U-Net partition and the config asks for it), ``corrections`` (rows of the checked table for
    this granule), ``overrides`` (rows of the drift table for this granule and scene).

    Raises
    ------
    SeaIceError
        When a partition cannot be read or the label raster is unusable (the item fails alone).
    """
    config = ctx.config
    scene = str(rec["scene"])
    granule = str(rec["granule"])
    grid, labels, unusable, unet, pairs = _load(rec, ctx, unet=True)
    if not pairs:
        return WorkResult(rows=())
    crs = grid.crs
    centre_x = grid.transform[2] + 0.5 * (grid.shape[1] * grid.transform[0] + grid.shape[0] * grid.transform[1])
    centre_y = grid.transform[5] + 0.5 * (grid.shape[1] * grid.transform[3] + grid.shape[0] * grid.transform[4])
    lon0, lat0 = to_crs([centre_x], [centre_y], crs, "EPSG:4326")
    jac = local_jacobian(crs, float(lon0[0]), float(lat0[0])) if crs != POLAR_CRS else np.eye(2)
    near = {t.beam: _near(t, grid, config.search_radius_m) for t, _ in pairs}
    estimates: dict[str, DriftEstimate] = {}
    if config.drift_scope == "scene":
        joint = estimate_drift(_drift_input([t for t, _ in pairs], [near[t.beam] for t, _ in pairs]), grid, labels,
                               jac, config)
        estimates = {t.beam: joint for t, _ in pairs}
    else:
        for t, _ in pairs:
            estimates[t.beam] = estimate_drift(_drift_input([t], [near[t.beam]]), grid, labels, jac, config)
    overrides = {str(o["beam"]): o for o in rec.get("overrides", [])}
    corrections = pd.DataFrame(rec.get("corrections") or [], columns=["row", "granule", "beam", "x_from", "x_to",
                                                                      "class", "author", "note"])
    rows: list[dict[str, Any]] = []
    outputs = []
    for track, _ in pairs:
        est = estimates[track.beam]
        override = overrides.get(track.beam)
        if override is not None:
            shift = np.array([float(override["dx"]), float(override["dy"])])
            source = "override"
        elif est.accepted:
            shift = np.array([est.dx_m, est.dy_m])
            source = "estimated"
        else:
            shift = np.zeros(2)
            source = "zero"
        row, table, info = _transfer(track, grid, labels, unusable, unet, jac, shift, config,
                                     corrections.loc[corrections["beam"] == track.beam], rec)
        row.update({
            "granule": granule, "beam": track.beam, "scene": scene, "scene_crs": crs,
            "shift_dx_m": float(shift[0]), "shift_dy_m": float(shift[1]), "shift_source": source,
            "estimated_dx_m": _nan_if(est.estimated_dx_m), "estimated_dy_m": _nan_if(est.estimated_dy_m),
            "shift_confidence": _nan_if(est.confidence), "low_confidence": source == "zero",
            "correlation_before": _nan_if(est.correlation_zero), "correlation_after": _nan_if(
                est.correlation if source == "estimated" else (est.correlation_zero if source == "zero" else math.nan)),
            "n_leads": int(est.n_leads), "drift_note": est.reason,
        })
        row["info"] = {**info, "shift_source": source, "shift_m": [float(shift[0]), float(shift[1])],
                       "drift_note": est.reason, **({"override": {k: override[k] for k in ("author", "note")}}
                                                   if override is not None else {})}
        if table is not None:
            outputs.append(TableOutput(SEGMENTS_LABELLED.key(date=rec["date"], granule=granule, beam=track.beam,
                                                             scene=scene), "segments.parquet", table))
        rows.append(row)
    return WorkResult(rows=tuple(rows), outputs=tuple(outputs))


def _transfer(track: _Track, grid: SceneGrid, labels: npt.NDArray[np.uint8], unusable: npt.NDArray[np.uint8],
              unet: npt.NDArray[np.uint8] | None, jac: FloatArray, shift: FloatArray, config: ColocateConfig,
              corrections: pd.DataFrame, rec: Record) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    """Labels of one pair at a shift: the pair row's coverage fields, the table (or None) and info."""
    offset = jac @ shift
    xs, ys = track.x - offset[0], track.y - offset[1]
    rows_px, cols_px = grid.pixel_of(xs, ys)
    mask = lookup_labels(unusable, rows_px, cols_px)
    inside = (mask != _NODATA_MASK) & track.in_time
    covered_idx = np.flatnonzero(inside)
    if covered_idx.size == 0:  # covered at zero shift, but the drift moves the track off the footprint
        return ({"dt_s": math.nan, "x_atc_from_m": math.nan, "x_atc_to_m": math.nan, "overlap_m": 0.0, "n_segments": 0,
                 "usable_fraction": 0.0, "agreement_before": None, "agreement_after": None, "n_labelled": 0,
                 "skip": f"{rec['granule']}/{track.beam} x {grid.scene}: the shifted track leaves the footprint"},
                None, {})
    first, last = int(covered_idx[0]), int(covered_idx[-1]) + 1
    s2 = np.where(inside, lookup_labels(labels, rows_px, cols_px), np.uint8(_UNLABELED)).astype(np.uint8)
    unet_lab = (np.where(inside, lookup_labels(unet, rows_px, cols_px), np.uint8(_UNLABELED)).astype(np.uint8)
                if unet is not None else np.full(s2.shape, _UNLABELED, dtype=np.uint8))
    auto = unet_lab if config.label_from == "unet" else s2
    n_cov = int(covered_idx.size)
    usable = int(np.count_nonzero(inside & (mask == 0) & (s2 != _UNLABELED)))
    dt_med = float(np.median(track.dt_s[inside]))
    x = track.frame["x_atc_m"].to_numpy(dtype=np.float64)
    row: dict[str, Any] = {
        "dt_s": dt_med, "x_atc_from_m": float(x[first]), "x_atc_to_m": float(x[last - 1] + _SEGMENT_M),
        "overlap_m": n_cov * _SEGMENT_M, "n_segments": n_cov, "usable_fraction": usable / max(n_cov, 1),
        "agreement_before": _nan_if(agreement(np.where(inside, lookup_labels(labels, *grid.pixel_of(track.x, track.y)),
                                                       np.uint8(_UNLABELED)).astype(np.uint8),
                                              track.above_floor, config.lead_height_m)),
        "agreement_after": _nan_if(agreement(s2[inside], track.above_floor[inside], config.lead_height_m)),
        "n_labelled": 0, "skip": "",
    }
    stretch, trimmed = trim_slice(auto[first:last], config.edge_trim_segments)
    lo, hi = first + stretch.start, first + stretch.stop
    if hi <= lo:
        row["skip"] = (f"{rec['granule']}/{track.beam} x {grid.scene}: no usable labelled pixel under the track "
                       f"({n_cov} segments in the footprint, all cloud/shadow or unlabeled)")
        return row, None, {}
    full = np.full(auto.shape, _UNLABELED, dtype=np.uint8)
    full[lo:hi] = trimmed
    feats = segment_features(track.frame, full, radius_m=config.reference_window_m,
                             percentile=config.reference_percentile)
    label = full.copy()
    source = np.where(label != _UNLABELED, SOURCE_UNET if config.label_from == "unet" else SOURCE_S2,
                      SOURCE_NONE).astype(object)
    if config.label_policy == "evidence" or config.unlabel_mixed:
        mixed = lookup_labels(mixed_pixels(unet if config.label_from == "unet" and unet is not None else labels)
                              .astype(np.uint8), rows_px, cols_px) != 0
        if config.label_policy == "evidence":
            stretch_labels, from_photons = evidence_labels(full[lo:hi], mixed[lo:hi], track.evidence[lo:hi])
            label[lo:hi] = stretch_labels
            source[lo:hi] = np.where(from_photons, SOURCE_PHOTONS,
                                     np.where(stretch_labels != _UNLABELED, source[lo:hi], SOURCE_NONE))
        else:
            label[mixed & (label != _UNLABELED)] = np.uint8(_UNLABELED)
            source[label == _UNLABELED] = SOURCE_NONE
    if config.refine:
        to_water, to_thick = refine_with_photons(label, track.frame["h_cor_mean_m"].to_numpy(dtype=np.float64),
                                       track.frame["h_std_m"].to_numpy(dtype=np.float64),
                                       track.frame["pcnt_mean"].to_numpy(dtype=np.float64),
                                       window_index(x, config.reference_window_m),
                                       tolerance_m=config.refine_water_tolerance_m,
                                       max_height_sd_m=config.refine_max_height_sd_m,
                                       min_pcnt_ratio=config.refine_min_pcnt_ratio,
                                       thick_above_m=config.refine_thick_above_m)
        label[to_water] = np.uint8(SeaIceClass.OPEN_WATER)
        label[to_thick] = np.uint8(SeaIceClass.THICK_ICE)
        source[to_water | to_thick] = SOURCE_PHOTONS
    sel = slice(lo, hi)
    label_sel, which, used = apply_corrections(label[sel], x[sel], corrections)
    source_sel = source[sel].copy()
    source_sel[which >= 0] = SOURCE_MANUAL
    frame = track.frame.iloc[sel]
    out = pd.DataFrame({
        "granule": str(rec["granule"]), "beam": track.beam, "scene": grid.scene,
        "bin_index": frame["bin_index"].to_numpy(), "x_atc_m": x[sel],
        "lat_deg": frame["lat_deg"].to_numpy(), "lon_deg": frame["lon_deg"].to_numpy(),
        "dt_s": track.dt_s[sel], "pixel_row": rows_px[sel].astype(np.int32), "pixel_col": cols_px[sel].astype(np.int32),
        "label_s2": s2[sel], "label_unet": unet_lab[sel], "label": label_sel, "label_source": source_sel.astype(str),
        "correction_row": which, "n_photons": frame["n_photons"].to_numpy(dtype=np.int32),
        **{f.name: feats[f.name].to_numpy(dtype=np.float64)[sel] for f in FEATURE_FIELDS},
    })
    n_lab = int(np.count_nonzero(label_sel != _UNLABELED))
    row["n_labelled"] = n_lab
    if n_lab == 0:
        row["skip"] = f"{rec['granule']}/{track.beam} x {grid.scene}: every segment unlabeled after corrections"
        return row, None, {}
    applied = [c for c in corrections.to_dict("records") if int(c["row"]) in set(used)]
    counts = {name: int(np.count_nonzero(source_sel == name))
              for name in (SOURCE_S2, SOURCE_UNET, SOURCE_PHOTONS, SOURCE_MANUAL, SOURCE_NONE)}
    info = {"corrections": applied, "label_sources": counts,
            "class_counts": {str(k): int(np.count_nonzero(label_sel == k)) for k in (0, 1, 2)}}
    return row, geoparquet_table(out, SEGMENTS_LABELLED_SCHEMA), info
