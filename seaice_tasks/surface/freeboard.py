"""Freeboard and thickness of every 2 m segment of a track (METHOD.md §10; docs/freeboard.md).

:func:`freeboard_frame` takes one track of ``segments_classified`` rows (the classes and the raw
heights in metres the classifier carried) and returns the ``freeboard`` product's rows:

1. the local sea surface from the open-water segments
   (:func:`~seaice_tasks.surface.sea_surface.sea_surface`: four estimators, the configured
   reference, its uncertainty, interpolation flags, the distance to the nearest lead);
2. total freeboard ``h_f = h_cor_mean - surface`` (P1 Eq. 1, no clipping at 0) with
   ``sigma_f**2 = sigma_seg**2 + sigma_surface**2``, ``sigma_seg = height_sd / sqrt(N)`` floored
   as in the surface; segments farther than ``far_from_lead_m`` from any lead are flagged
   (their surface is an interpolation across a long stretch of ice);
3. snow depth, ice thickness and its uncertainty for ice segments
   (:func:`~seaice_tasks.surface.thickness.ice_thickness`).

Leads (``FreeboardConfig.leads``): the surface is only as good as the segments it takes for open
water.  ``classes`` takes the classifier's open water (the paper); ``photons`` the photon evidence
the classify stage carries (``water_vote``, ``height_above_low_m``,
:mod:`seaice_tasks.is2.photon_evidence`): segments at the local water level among dark or
specular neighbours; ``confirmed`` (the default) the classifier's open water that the photons
confirm -- and, on a track where the classifier finds no open water at all, the photons' alone,
so that a track without freeboard is a track without leads, not a weak model (its summary says
``leads_from_photons``).  The classes in the output stay the classifier's.

Rows above the surface's ``max_height_m`` or without a height get NaN freeboard.
:func:`freeboard_chunks` gives the same rows chunk by chunk, reading the track twice
(:mod:`seaice_tasks.surface.surface_passes`): bit for bit the whole track's, whatever the chunk
size.  :func:`freeboard_track_work` is the work function of ``spark_jobs/freeboard.py``: one track
per work item, read in chunks of ``chunk_rows`` and written in row groups of
:data:`~seaice_tasks.trackio.TRACK_ROW_GROUP_ROWS` rows (the same bytes for every chunk size); a track
without open water or too short for a window is a recorded flag in its manifest info, never a
failure.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from typing import Any, ClassVar, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from seaice_tasks.constants import SeaIceClass
from seaice_tasks.errors import ConfigError, InputError
from seaice_tasks.outputs import Output, stage_table_pieces
from seaice_tasks.products import FREEBOARD, FREEBOARD_FILE, SEGMENTS_CLASSIFIED
from seaice_tasks.schemas import FREEBOARD_SCHEMA
from seaice_tasks.storage import PartitionKey, geoparquet_table
from seaice_tasks.surface.sea_surface import FLAG_NO_WATER, SeaSurfaceConfig, segment_sigma
from seaice_tasks.surface.surface_passes import RowInputs, SurfaceScan, row_inputs, surface_rows
from seaice_tasks.surface.thickness import ThicknessConfig, ice_thickness
from seaice_tasks.trackio import (
    TRACK_ROW_GROUP_ROWS,
    TRACK_USE_DICTIONARY,
    BoundingBox,
    ChunkedConfig,
    FrameSource,
    PartitionSource,
    TrackOrderError,
    TrackSource,
    iter_chunks,
    row_groups,
)
from seaice_tasks.work import Record, WorkContext, WorkResult

__all__ = ["FreeboardConfig", "INPUT_COLUMNS", "EVIDENCE_INPUT_COLUMNS", "LEAD_DETECTORS", "photon_leads",
           "freeboard_frame", "freeboard_chunks", "freeboard_track",
           "freeboard_track_work", "track_flags"]

log = logging.getLogger(__name__)

#: ``segments_classified`` columns the freeboard reads.
INPUT_COLUMNS: Final[tuple[str, ...]] = (
    "bin_index", "x_atc_m", "lat_deg", "lon_deg", "time_utc", "n_photons", "class", "p_water", "h_cor_mean_m",
    "height_sd_m",
)
_ICE: Final[tuple[int, int]] = (int(SeaIceClass.THICK_ICE), int(SeaIceClass.THIN_ICE))
_WATER: Final[int] = int(SeaIceClass.OPEN_WATER)
#: The photon evidence columns of ``segments_classified`` the lead detectors other than ``classes`` read.
EVIDENCE_INPUT_COLUMNS: Final[tuple[str, ...]] = ("water_vote", "height_above_low_m")
#: Lead detectors (``FreeboardConfig.leads``).
LEAD_DETECTORS: Final[tuple[str, ...]] = ("classes", "photons", "confirmed")
_NONE: Final[int] = 255
#: A track shorter than this (m) holds less than one full 10 km window: flagged ``short_track``.
_SHORT_TRACK_WINDOWS: Final[float] = 1.0


@dataclasses.dataclass(frozen=True)
class FreeboardConfig(ChunkedConfig):
    """Sea-surface, freeboard and thickness settings of the freeboard job (and ``chunk_rows``).

    Attributes
    ----------
    surface : SeaSurfaceConfig
        Windows, estimators, leads, smoothing and the reference surface.
    thickness : ThicknessConfig
        Snow and density assumptions.
    far_from_lead_m : float
        Segments farther than this from any open-water segment are flagged (m).
    lead_p_water : float
        When > 0, a segment whose ``p_water`` reaches it is a lead candidate even when another
        class won the argmax (the classifier's water recall is its weakest; docs/freeboard.md).
        0 (default): leads are the segments classified open water.
    leads : str
        Which segments are leads (module docstring): ``classes``, ``photons`` or ``confirmed``
        (default; chosen on tuning days, docs/freeboard.md).
    lead_vote : float
        Smallest ``water_vote`` (share of water-like bins around a segment) of a photon lead.
    lead_height_m : float
        Largest ``height_above_low_m`` of a photon lead (m): the segment is near the local water
        level.  The low level is a low percentile of noisy heights, a few cm below the water, so a
        tight cut keeps only the segments whose noise reads low and biases the surface low
        (0.10 m: -0.8 to -1.6 cm on the tuning days); the classifier's water keeps thin ice out.
        0.20 m and a vote of 0.4 were chosen on the tuning days (docs/freeboard.md).
    """

    kind: ClassVar[str] = "freeboard"
    surface: SeaSurfaceConfig = dataclasses.field(default_factory=SeaSurfaceConfig)
    thickness: ThicknessConfig = dataclasses.field(default_factory=ThicknessConfig)
    far_from_lead_m: float = 10_000.0
    lead_p_water: float = 0.0
    leads: str = "confirmed"
    lead_vote: float = 0.4
    lead_height_m: float = 0.20

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.far_from_lead_m > 0:
            raise ConfigError("FreeboardConfig.far_from_lead_m must be > 0")
        if not 0 <= self.lead_p_water <= 1:
            raise ConfigError("FreeboardConfig.lead_p_water must be in [0, 1]")
        if self.leads not in LEAD_DETECTORS:
            raise ConfigError(f"FreeboardConfig.leads must be one of {LEAD_DETECTORS}, got {self.leads!r}")
        if not (0 < self.lead_vote <= 1 and self.lead_height_m > 0):
            raise ConfigError("FreeboardConfig.lead_vote must be in (0, 1] and lead_height_m > 0")

    def input_columns(self) -> tuple[str, ...]:
        """The ``segments_classified`` columns this configuration reads."""
        return INPUT_COLUMNS if self.leads == "classes" else (*INPUT_COLUMNS, *EVIDENCE_INPUT_COLUMNS)


def freeboard_frame(track: pd.DataFrame, config: FreeboardConfig | None = None,
                    classes: Any = None, photons: list[bool] | None = None) -> pd.DataFrame:
    """Surface, freeboard and thickness of every segment of one track (module docstring).

    Parameters
    ----------
    track : pandas.DataFrame
        One track of ``segments_classified`` (:data:`INPUT_COLUMNS`), any order.
    config : FreeboardConfig, optional
        Settings.
    classes : array_like of int, optional
        Classes to estimate the surface from instead of the track's ``class`` column, in the
        track's ascending ``x_atc_m`` order (the S2-transferred labels or the truth, for
        experiments); they are the output's ``class``.
    photons : list, optional
        Gets whether the track's leads came from the photons alone (:func:`freeboard_chunks`).

    Returns
    -------
    pandas.DataFrame
        The ``freeboard`` columns (:data:`~seaice_tasks.schemas.FREEBOARD_SCHEMA`) without the
        granule, beam and geometry, in ascending ``x_atc_m``.
    """
    cfg = config if config is not None else FreeboardConfig()
    missing = [c for c in cfg.input_columns() if c not in track.columns and c != "p_water"
               and not (c == "class" and classes is not None)]
    if missing:
        raise ValueError(f"freeboard_frame: columns {missing} missing")
    t = track.sort_values("x_atc_m", kind="stable").reset_index(drop=True)
    if classes is not None:
        t["class"] = np.asarray(classes).astype(np.uint8)
    pieces = list(freeboard_chunks(FrameSource(t), cfg, max(len(t), 1), p_water=classes is None, photons=photons))
    return pieces[0] if len(pieces) == 1 else pd.concat(pieces, ignore_index=True)


def _model_water(t: pd.DataFrame, config: FreeboardConfig, p_water: bool) -> npt.NDArray[np.bool_]:
    """Rows the classifier calls open water (or whose ``p_water`` reaches ``lead_p_water``)."""
    water = t["class"].to_numpy(dtype=np.uint8) == _WATER
    if p_water:
        water |= t["p_water"].to_numpy(dtype=np.float64, na_value=np.nan) >= config.lead_p_water
    return np.asarray(water, dtype=np.bool_)


def photon_leads(t: pd.DataFrame, config: FreeboardConfig) -> npt.NDArray[np.bool_]:
    """Rows the photon evidence calls open water: ``water_vote >= lead_vote`` at the local water level."""
    vote = t["water_vote"].to_numpy(dtype=np.float64, na_value=np.nan)
    above = t["height_above_low_m"].to_numpy(dtype=np.float64, na_value=np.nan)
    return np.asarray((vote >= config.lead_vote) & (above < config.lead_height_m), dtype=np.bool_)


def _lead_rows(t: pd.DataFrame, config: FreeboardConfig, p_water: bool, photons_only: bool) -> npt.NDArray[np.bool_]:
    """The lead rows of consecutive rows by ``config.leads`` (``photons_only``: the track has no model water)."""
    if config.leads == "classes":
        return _model_water(t, config, p_water)
    photons = photon_leads(t, config)
    if config.leads == "photons" or photons_only:
        return photons
    return _model_water(t, config, p_water) & photons


def _has_model_water(source: TrackSource, config: FreeboardConfig, chunk_rows: int, p_water: bool) -> bool:
    """Whether the classifier finds open water anywhere in the track (one read of its class columns)."""
    columns = ["class", *(["p_water"] if p_water else [])]
    return any(bool(_model_water(chunk.frame.iloc[chunk.own], config, p_water).any())
               for chunk in iter_chunks(source, columns, chunk_rows))


def _surface_inputs(t: pd.DataFrame, config: FreeboardConfig, p_water: bool, photons_only: bool) -> RowInputs:
    """The sea surface's inputs of consecutive rows: the leads as open water, the other rows' classes (255 for
    the classifier's water that is no lead)."""
    cls = t["class"].to_numpy(dtype=np.uint8)
    lead = _lead_rows(t, config, p_water, photons_only)
    cls = np.where(lead, np.uint8(_WATER), np.where(cls == _WATER, np.uint8(_NONE), cls))
    return row_inputs(t["x_atc_m"].to_numpy(dtype=np.float64), t["h_cor_mean_m"].to_numpy(dtype=np.float64,
                                                                                           na_value=np.nan),
                      cls.astype(np.int64), t["height_sd_m"].to_numpy(dtype=np.float64, na_value=np.nan),
                      t["n_photons"].to_numpy(dtype=np.float64), t["bin_index"].to_numpy(dtype=np.int64),
                      config.surface)


def freeboard_chunks(source: TrackSource, config: FreeboardConfig, chunk_rows: int, *, p_water: bool = True,
                     bbox: BoundingBox | None = None, photons: list[bool] | None = None) -> Iterator[pd.DataFrame]:
    """The rows of :func:`freeboard_frame`, chunk by chunk, from a track in ascending ``x_atc_m``.

    Two passes over ``source`` (:mod:`seaice_tasks.surface.surface_passes`); the frames,
    concatenated, are :func:`freeboard_frame`'s, bit for bit, whatever ``chunk_rows``.
    ``p_water``: leads from ``p_water`` as configured (when the column is there); ``bbox`` gets the
    track's points in the first pass, before the first frame is given; ``photons`` gets whether the
    leads came from the photons alone (``leads="confirmed"`` on a track without model water).

    Raises
    ------
    TrackOrderError
        When the rows are not in ascending ``x_atc_m`` (in the first pass, before any frame).
    """
    use_p = p_water and config.lead_p_water > 0 and "p_water" in source.column_names()
    evidence = list(EVIDENCE_INPUT_COLUMNS) if config.leads != "classes" else []
    columns = ["bin_index", "h_cor_mean_m", "class", "height_sd_m", "n_photons", *(["p_water"] if use_p else []),
               *evidence]
    photons_only = config.leads == "confirmed" and not _has_model_water(source, config, chunk_rows, use_p)
    if photons is not None:
        photons.append(photons_only)
    scan = SurfaceScan(config.surface)
    geo = ["lon_deg", "lat_deg"] if bbox is not None else []
    for chunk in iter_chunks(source, [*columns, *geo], chunk_rows, halo_rows=scan.halo_rows, halo_m=scan.halo_m):
        scan.add(chunk, _surface_inputs(chunk.frame, config, use_p, photons_only))
        if bbox is not None:
            own = chunk.frame.iloc[chunk.own]
            bbox.add(own["lon_deg"].to_numpy(dtype=np.float64), own["lat_deg"].to_numpy(dtype=np.float64))
    tables = scan.finish()
    kept = ["lat_deg", "lon_deg", "time_utc"]
    for chunk in iter_chunks(source, [*columns, *kept], chunk_rows, halo_rows=tables.halo_rows):
        surf = surface_rows(tables, chunk, _surface_inputs(chunk.frame, config, use_p, photons_only), config.surface)
        yield _freeboard_rows(chunk.frame.iloc[chunk.own].reset_index(drop=True), surf, config)


def _freeboard_rows(t: pd.DataFrame, surf: pd.DataFrame, cfg: FreeboardConfig) -> pd.DataFrame:
    """Freeboard and thickness of rows ``t`` given their surface columns ``surf``."""
    cls = t["class"].to_numpy(dtype=np.uint8)
    h = t["h_cor_mean_m"].to_numpy(dtype=np.float64, na_value=np.nan)
    sd = t["height_sd_m"].to_numpy(dtype=np.float64, na_value=np.nan)
    n_ph = t["n_photons"].to_numpy(dtype=np.float64)
    usable = np.isfinite(h) & (h <= cfg.surface.max_height_m)
    sigma_seg = segment_sigma(sd, n_ph, cfg.surface.sigma_floor_m)
    freeboard = np.where(usable, h - surf["surface_m"].to_numpy(), np.nan)
    fb_sigma = np.where(usable, np.hypot(sigma_seg, surf["surface_sigma_m"].to_numpy()), np.nan)
    ice = np.isin(cls, _ICE) & np.isfinite(freeboard)
    thick, thick_sigma, snow = ice_thickness(np.where(ice, freeboard, np.nan), np.where(ice, fb_sigma, np.nan),
                                             cfg.thickness)
    dist = surf["lead_distance_m"].to_numpy()
    out = t[["bin_index", "x_atc_m", "lat_deg", "lon_deg", "time_utc", "n_photons"]].copy()
    out["class"] = cls
    out["h_cor_mean_m"] = h
    out["height_sd_m"] = sd
    for column in surf.columns:
        out[column] = surf[column].to_numpy()
    out["far_from_lead"] = ~(np.isfinite(dist) & (dist <= cfg.far_from_lead_m))
    out["freeboard_m"] = freeboard
    out["freeboard_sigma_m"] = fb_sigma
    out["snow_depth_m"] = snow
    out["thickness_m"] = thick
    out["thickness_sigma_m"] = thick_sigma
    return out


class _Summary:
    """Flags and summary row of a track's freeboard, over its output frames in order."""

    def __init__(self) -> None:
        self.rows = 0
        self.photons = False
        self.any_height = False
        self.all_no_water = True
        self.x_first = self.x_last = np.nan
        self.with_freeboard = self.far_from_lead = self.water = 0
        self._fb_ice: list[npt.NDArray[np.float64]] = []
        self._thickness_ice: list[npt.NDArray[np.float64]] = []
        self._surface: list[npt.NDArray[np.float64]] = []

    def add(self, out: pd.DataFrame) -> None:
        if out.empty:
            return
        x = out["x_atc_m"].to_numpy(dtype=np.float64)
        self.x_first = float(x[0]) if not self.rows else self.x_first
        self.x_last = float(x[-1])
        self.rows += len(out)
        self.any_height |= bool(np.isfinite(out["h_cor_mean_m"].to_numpy(dtype=np.float64)).any())
        self.all_no_water &= bool((out["surface_flag"].to_numpy() == FLAG_NO_WATER).all())
        cls = out["class"].to_numpy()
        ice = np.isin(cls, _ICE)
        fb = out["freeboard_m"].to_numpy()
        self.with_freeboard += int(np.isfinite(fb).sum())
        self.far_from_lead += int(out["far_from_lead"].sum())
        self.water += int((cls == _WATER).sum())
        for kept, values in ((self._fb_ice, fb[ice]), (self._thickness_ice, out["thickness_m"].to_numpy()[ice]),
                             (self._surface, out["surface_m"].to_numpy())):
            v = np.asarray(values, dtype=np.float64)
            kept.append(v[np.isfinite(v)])

    def flags(self, config: FreeboardConfig) -> list[str]:
        flags = []
        if not self.any_height:
            flags.append("no_heights")
        if self.all_no_water:
            flags.append("no_water")
        if self.rows < 2 or self.x_last - self.x_first < _SHORT_TRACK_WINDOWS * 2 * config.surface.radius_m:
            flags.append("short_track")
        if self.photons and not self.all_no_water:
            flags.append("leads_from_photons")
        return flags

    def row(self, granule: str, beam: str, config: FreeboardConfig) -> dict[str, Any]:
        return {
            "granule": granule, "beam": beam, "segments": self.rows, "flags": self.flags(config),
            "with_freeboard": self.with_freeboard,
            "far_from_lead": self.far_from_lead,
            "water_segments": self.water,
            "freeboard_ice_m": _stats(np.concatenate(self._fb_ice) if self._fb_ice else np.empty(0)),
            "thickness_m": _stats(np.concatenate(self._thickness_ice) if self._thickness_ice else np.empty(0)),
            "surface_std_m": _stats(np.concatenate(self._surface) if self._surface else np.empty(0))["std"],
        }


def track_flags(frame: pd.DataFrame, config: FreeboardConfig) -> list[str]:
    """Recorded conditions of a track's freeboard (manifest info): ``no_water``, ``short_track``, ``no_heights``
    (``leads_from_photons`` is known to the job only)."""
    summary = _Summary()
    summary.add(frame)
    return summary.flags(config)


def _stats(values: Any) -> dict[str, float | None]:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not v.size:
        return {"mean": None, "median": None, "std": None}
    return {"mean": round(float(v.mean()), 4), "median": round(float(np.median(v)), 4),
            "std": round(float(v.std()), 4)}


def _track_table(out: pd.DataFrame, key: PartitionKey, bbox: list[float] | None = None) -> pa.Table:
    """The ``freeboard`` table of freeboard rows (``bbox``: the whole track's, for a piece)."""
    out.insert(0, "beam", str(key.beam))
    out.insert(0, "granule", str(key.granule))
    table: pa.Table = geoparquet_table(out, FREEBOARD_SCHEMA, bbox=bbox)
    return table


def _whole_track(ctx: WorkContext[FreeboardConfig], key_in: PartitionKey, key: PartitionKey,
                 summary: _Summary, group_rows: int) -> Output:
    """The track read and computed at once, written in the row groups of the streamed file."""
    table = ctx.lake.read_table(key_in)
    photons: list[bool] = []
    out = freeboard_frame(table.select(list(ctx.config.input_columns())).to_pandas(), ctx.config, photons=photons)
    summary.photons = any(photons)
    summary.add(out)
    del table
    output = _track_table(out, key)
    del out
    return stage_table_pieces(ctx.lake, key, FREEBOARD_FILE, row_groups([output], group_rows), ctx.token,
                              ctx.config, use_dictionary=TRACK_USE_DICTIONARY)


def _streamed(ctx: WorkContext[FreeboardConfig], key_in: PartitionKey, key: PartitionKey, summary: _Summary,
              chunk_rows: int, group_rows: int) -> Output:
    """The track computed chunk by chunk, the output streamed into its staged file."""
    bbox = BoundingBox()
    with PartitionSource(ctx.lake, key_in) as source:
        def pieces() -> Iterator[pa.Table]:
            photons: list[bool] = []
            for out in freeboard_chunks(source, ctx.config, chunk_rows, bbox=bbox, photons=photons):
                summary.photons = any(photons)
                summary.add(out)
                yield _track_table(out, key, bbox.bbox)

        return stage_table_pieces(ctx.lake, key, FREEBOARD_FILE, row_groups(pieces(), group_rows), ctx.token,
                                  ctx.config, use_dictionary=TRACK_USE_DICTIONARY)


def freeboard_track(ctx: WorkContext[FreeboardConfig], date: str, granule: str, beam: str,
                    chunk_rows: int, *, group_rows: int = TRACK_ROW_GROUP_ROWS) -> WorkResult:
    """:func:`freeboard_track_work` with ``chunk_rows`` given (0: the whole track at once).

    ``group_rows``: rows per row group of the file (the layout of the product's files: keep the
    default; the file is the same for every ``chunk_rows``).
    """
    key_in = SEGMENTS_CLASSIFIED.key(date=date, granule=granule, beam=beam)
    key = FREEBOARD.key(date=date, granule=granule, beam=beam)
    with PartitionSource(ctx.lake, key_in) as source:
        missing = [c for c in ctx.config.input_columns() if c not in source.column_names()]
    if missing:
        raise InputError(ctx.lake.path(key_in.relpath), f"segments_classified lacks columns {missing}")
    summary = _Summary()
    output: Output
    if chunk_rows == 0:
        output = _whole_track(ctx, key_in, key, summary, group_rows)
    else:
        try:
            output = _streamed(ctx, key_in, key, summary, chunk_rows, group_rows)
        except TrackOrderError as exc:
            log.warning("%s; computed as a whole", exc)
            summary = _Summary()
            output = _whole_track(ctx, key_in, key, summary, group_rows)
    return WorkResult(rows=(summary.row(granule, beam, ctx.config),), outputs=(output,))


def freeboard_track_work(rec: Record, ctx: WorkContext[FreeboardConfig]) -> WorkResult:
    """One track -> its ``freeboard`` partition and a summary row (flags, freeboard statistics).

    Record: ``date``, ``granule``, ``beam``.  The track is read and written in chunks of the
    config's ``chunk_rows``; with ``chunk_rows`` 0, or when its rows are not in ascending
    ``x_atc_m`` (a warning), at once.
    """
    return freeboard_track(ctx, str(rec["date"]), str(rec["granule"]), str(rec["beam"]), ctx.config.chunk_rows)
