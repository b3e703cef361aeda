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

Rows above the surface's ``max_height_m`` or without a height get NaN freeboard.
:func:`freeboard_track_work` is the work function of ``spark_jobs/freeboard.py``: one track per
work item, a track without open water or too short for a window is a recorded flag in its
manifest info, never a failure.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Final

import numpy as np
import pandas as pd
import pyarrow as pa

from seaice_tasks.config import JsonConfig
from seaice_tasks.constants import SeaIceClass
from seaice_tasks.errors import ConfigError, InputError
from seaice_tasks.outputs import TableOutput
from seaice_tasks.products import FREEBOARD, FREEBOARD_FILE, SEGMENTS_CLASSIFIED
from seaice_tasks.schemas import FREEBOARD_SCHEMA
from seaice_tasks.storage import geoparquet_table
from seaice_tasks.surface.sea_surface import FLAG_NO_WATER, SeaSurfaceConfig, sea_surface, segment_sigma
from seaice_tasks.surface.thickness import ThicknessConfig, ice_thickness
from seaice_tasks.work import Record, WorkContext, WorkResult

__all__ = ["FreeboardConfig", "INPUT_COLUMNS", "freeboard_frame", "freeboard_track_work", "track_flags"]

#: ``segments_classified`` columns the freeboard reads.
INPUT_COLUMNS: Final[tuple[str, ...]] = (
    "bin_index", "x_atc_m", "lat_deg", "lon_deg", "time_utc", "n_photons", "class", "p_water", "h_cor_mean_m",
    "height_sd_m",
)
_ICE: Final[tuple[int, int]] = (int(SeaIceClass.THICK_ICE), int(SeaIceClass.THIN_ICE))
_WATER: Final[int] = int(SeaIceClass.OPEN_WATER)
#: A track shorter than this (m) holds less than one full 10 km window: flagged ``short_track``.
_SHORT_TRACK_WINDOWS: Final[float] = 1.0


@dataclasses.dataclass(frozen=True)
class FreeboardConfig(JsonConfig):
    """Sea-surface, freeboard and thickness settings of the freeboard job.

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
    """

    kind: ClassVar[str] = "freeboard"
    surface: SeaSurfaceConfig = dataclasses.field(default_factory=SeaSurfaceConfig)
    thickness: ThicknessConfig = dataclasses.field(default_factory=ThicknessConfig)
    far_from_lead_m: float = 10_000.0
    lead_p_water: float = 0.0

    def __post_init__(self) -> None:
        if not self.far_from_lead_m > 0:
            raise ConfigError("FreeboardConfig.far_from_lead_m must be > 0")
        if not 0 <= self.lead_p_water <= 1:
            raise ConfigError("FreeboardConfig.lead_p_water must be in [0, 1]")


def freeboard_frame(track: pd.DataFrame, config: FreeboardConfig | None = None,
                    classes: Any = None) -> pd.DataFrame:
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

    Returns
    -------
    pandas.DataFrame
        The ``freeboard`` columns (:data:`~seaice_tasks.schemas.FREEBOARD_SCHEMA`) without the
        granule, beam and geometry, in ascending ``x_atc_m``.
    """
    cfg = config if config is not None else FreeboardConfig()
    missing = [c for c in INPUT_COLUMNS if c not in track.columns and c != "p_water"
               and not (c == "class" and classes is not None)]
    if missing:
        raise ValueError(f"freeboard_frame: columns {missing} missing")
    t = track.sort_values("x_atc_m", kind="stable").reset_index(drop=True)
    cls = (np.asarray(classes).astype(np.uint8) if classes is not None
           else t["class"].to_numpy(dtype=np.uint8))
    h = t["h_cor_mean_m"].to_numpy(dtype=np.float64, na_value=np.nan)
    sd = t["height_sd_m"].to_numpy(dtype=np.float64, na_value=np.nan)
    n_ph = t["n_photons"].to_numpy(dtype=np.float64)
    lead_cls = cls
    if cfg.lead_p_water > 0 and classes is None and "p_water" in t.columns:
        p_water = t["p_water"].to_numpy(dtype=np.float64, na_value=np.nan)
        lead_cls = np.where(p_water >= cfg.lead_p_water, np.uint8(_WATER), cls)
    surf = sea_surface(t["x_atc_m"].to_numpy(dtype=np.float64), h, lead_cls, cfg.surface, height_sd_m=sd,
                       n_photons=n_ph, bin_index=t["bin_index"].to_numpy(dtype=np.int64))
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


def track_flags(frame: pd.DataFrame, config: FreeboardConfig) -> list[str]:
    """Recorded conditions of a track's freeboard (manifest info): ``no_water``, ``short_track``, ``no_heights``."""
    flags = []
    if frame.empty or not np.isfinite(frame["h_cor_mean_m"].to_numpy(dtype=np.float64)).any():
        flags.append("no_heights")
    if frame.empty or bool((frame["surface_flag"].to_numpy() == FLAG_NO_WATER).all()):
        flags.append("no_water")
    x = frame["x_atc_m"].to_numpy(dtype=np.float64)
    if x.size < 2 or x[-1] - x[0] < _SHORT_TRACK_WINDOWS * 2 * config.surface.radius_m:
        flags.append("short_track")
    return flags


def _stats(values: Any) -> dict[str, float | None]:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not v.size:
        return {"mean": None, "median": None, "std": None}
    return {"mean": round(float(v.mean()), 4), "median": round(float(np.median(v)), 4),
            "std": round(float(v.std()), 4)}


def freeboard_track_work(rec: Record, ctx: WorkContext[FreeboardConfig]) -> WorkResult:
    """One track -> its ``freeboard`` partition and a summary row (flags, freeboard statistics).

    Record: ``date``, ``granule``, ``beam``.
    """
    granule, beam = str(rec["granule"]), str(rec["beam"])
    key_in = SEGMENTS_CLASSIFIED.key(date=rec["date"], granule=granule, beam=beam)
    table = ctx.lake.read_table(key_in)
    missing = [c for c in INPUT_COLUMNS if c not in table.column_names]
    if missing:
        raise InputError(ctx.lake.path(key_in.relpath), f"segments_classified lacks columns {missing}")
    out = freeboard_frame(table.select(list(INPUT_COLUMNS)).to_pandas(), ctx.config)
    flags = track_flags(out, ctx.config)
    out.insert(0, "beam", beam)
    out.insert(0, "granule", granule)
    result: pa.Table = geoparquet_table(out, FREEBOARD_SCHEMA)
    key = FREEBOARD.key(date=rec["date"], granule=granule, beam=beam)
    cls = out["class"].to_numpy()
    ice = np.isin(cls, _ICE)
    fb = out["freeboard_m"].to_numpy()
    row = {
        "granule": granule, "beam": beam, "segments": len(out), "flags": flags,
        "with_freeboard": int(np.isfinite(fb).sum()),
        "far_from_lead": int(out["far_from_lead"].sum()),
        "water_segments": int((cls == _WATER).sum()),
        "freeboard_ice_m": _stats(fb[ice]),
        "thickness_m": _stats(out["thickness_m"].to_numpy()[ice]),
        "surface_std_m": _stats(out["surface_m"].to_numpy())["std"],
    }
    return WorkResult(rows=(row,), outputs=(TableOutput(key, FREEBOARD_FILE, result),))
