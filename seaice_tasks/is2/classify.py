"""Inference: every 2 m segment of a track classified by a trained model (METHOD.md §8).

:func:`classify_frame` takes one track of ``segments_2m`` rows and a loaded model (its card says
the features, their order, the training split's normalisation statistics and the window):

1. the per-segment features are computed on the whole track, as the colocation computed them
   for training (:func:`~seaice_tasks.is2.features.segment_features`, the label-free local
   reference of :class:`ClassifyConfig`'s window and percentile; no labels needed);
2. they are z-scored with the **training** statistics from the card (never the track's own:
   METHOD §8 lists the authors' bug);
3. windows of ``2 * half + 1`` consecutive 2 m bins with finite features are gathered
   (:func:`~seaice_tasks.is2.features.window_centres`: never across gaps or tracks); segments
   that do not centre one get class 255, NaN probabilities and ``window_valid`` False: a flag,
   not a guess;
4. the model gives class probabilities; class = argmax.

The output rows carry the track keys and the **raw** values (heights in metres, photon rates),
so freeboard is computed from metres, never from normalised heights.

:func:`classify_track_work` is the Spark work function of ``spark_jobs/classify.py``: one track
per work item, the model read from the lake once per executor process (:func:`cached_model`).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Final

import numpy as np
import pandas as pd
import pyarrow as pa

from seaice_tasks.config import JsonConfig
from seaice_tasks.constants import SeaIceClass
from seaice_tasks.errors import ConfigError, InputError
from seaice_tasks.is2.colocate import ColocateConfig
from seaice_tasks.is2.features import FEATURE_NAMES, segment_features, window_centres
from seaice_tasks.outputs import TableOutput
from seaice_tasks.products import CLASSES_FILE, SEGMENTS_2M, SEGMENTS_CLASSIFIED
from seaice_tasks.schemas import SEGMENTS_CLASSIFIED_SCHEMA
from seaice_tasks.storage import Lake, geoparquet_table
from seaice_tasks.work import Record, WorkContext, WorkResult

if TYPE_CHECKING:
    from seaice_tasks.models.registry import LoadedModel

__all__ = ["ClassifyConfig", "TRACK_COLUMNS", "classify_frame", "cached_model", "classify_track_work",
           "model_summary"]

log = logging.getLogger(__name__)

#: segments_2m columns the classification reads.
TRACK_COLUMNS: Final[tuple[str, ...]] = (
    "bin_index", "x_atc_m", "lat_deg", "lon_deg", "time_utc", "n_photons", "h_cor_mean_m", "h_cor_median_m",
    "h_std_m", "pcnt_mean", "pcnth_mean", "bcnt_mean", "brate_mean",
)
_NO_CLASS: Final[int] = int(SeaIceClass.UNLABELED)
_DEFAULTS: Final[ColocateConfig] = ColocateConfig()


@dataclasses.dataclass(frozen=True)
class ClassifyConfig(JsonConfig):
    """Inference settings.

    Attributes
    ----------
    model : str
        Model name in the lake's registry.
    version : str
        Model version; empty: the promoted one (resolved once by the job's driver).
    reference_window_m : float
        Radius of the windows of the label-free relative height (m): the colocation's default,
        which the training features used.
    reference_percentile : float
        Percentile of the window's heights the relative height is measured from.
    batch_size : int
        Windows per forward pass.
    """

    kind: ClassVar[str] = "classify"
    model: str = "seaice-is2-lstm"
    version: str = ""
    reference_window_m: float = _DEFAULTS.reference_window_m
    reference_percentile: float = _DEFAULTS.reference_percentile
    batch_size: int = 8192

    def __post_init__(self) -> None:
        if not self.model:
            raise ConfigError("ClassifyConfig.model: a model name is required")
        if self.reference_window_m <= 0 or not 0 <= self.reference_percentile <= 100 or self.batch_size < 1:
            raise ConfigError("ClassifyConfig: reference_window_m > 0, 0 <= reference_percentile <= 100 and "
                              "batch_size >= 1 required")


def model_summary(card: Mapping[str, Any], version: str) -> dict[str, Any]:
    """What an output manifest records of the model that classified it."""
    return {"name": card.get("name"), "version": version, "weights_sha256": card.get("weights_sha256"),
            "preset": card.get("architecture", {}).get("preset"),
            "training_set": card.get("training_data", {}).get("partition"),
            "test_accuracy": card.get("metrics", {}).get("test", {}).get("accuracy")}


def classify_frame(frame: pd.DataFrame, loaded: LoadedModel, config: ClassifyConfig) -> pd.DataFrame:
    """Classes and probabilities of every segment of one track (module docstring).

    Parameters
    ----------
    frame : pandas.DataFrame
        One track of ``segments_2m`` (:data:`TRACK_COLUMNS`), any order.
    loaded : LoadedModel
        Model and card (:func:`~seaice_tasks.models.lake.load_lake_model`).
    config : ClassifyConfig
        Reference window and batch size.

    Returns
    -------
    pandas.DataFrame
        The rows in ascending ``x_atc_m`` with ``window_valid``, ``class``, ``p_thick``,
        ``p_thin``, ``p_water`` and the raw feature columns.

    Raises
    ------
    InputError
        When the card lacks the features, their statistics or the window.
    """
    from seaice_tasks.models.sequence import predict_proba

    card = loaded.card
    try:
        features = [str(f) for f in card["input"]["features"]]
        half = int(card["input"]["half_window"])
        stats = card["input"]["normalisation"]
        mean = np.array([float(stats[f]["mean"]) for f in features])
        std = np.array([float(stats[f]["std"]) for f in features])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(str(card.get("name", "model")), f"model card lacks its inputs ({exc})") from None
    track = frame.sort_values("x_atc_m", kind="stable").reset_index(drop=True)
    feats = segment_features(track, None, radius_m=config.reference_window_m, percentile=config.reference_percentile)
    z = (feats[features].to_numpy(dtype=np.float64) - mean) / std
    usable = np.isfinite(z).all(axis=1)
    centres = np.flatnonzero(window_centres(track["bin_index"].to_numpy(dtype=np.int64), usable, half))
    offsets = np.arange(-half, half + 1)
    n = len(track)
    probs = np.full((n, 3), np.nan, dtype=np.float32)
    classes = np.full(n, _NO_CLASS, dtype=np.uint8)
    if centres.size:
        windows = z[centres[:, None] + offsets[None, :]].astype(np.float32)
        p = predict_proba(loaded.model, windows, batch_size=config.batch_size)
        probs[centres] = p
        classes[centres] = p.argmax(axis=1).astype(np.uint8)
    valid = np.zeros(n, dtype=np.bool_)
    valid[centres] = True
    out = track[["bin_index", "x_atc_m", "lat_deg", "lon_deg", "time_utc", "n_photons"]].copy()
    out["window_valid"] = valid
    out["class"] = classes
    out["p_thick"], out["p_thin"], out["p_water"] = probs[:, 0], probs[:, 1], probs[:, 2]
    for name in FEATURE_NAMES:
        out[name] = feats[name].to_numpy(dtype=np.float64)
    return out


_CACHE: dict[tuple[str, str, str], LoadedModel] = {}
_CACHE_LOCK = threading.Lock()


def cached_model(lake: Lake, name: str, version: str) -> LoadedModel:
    """The model, read from the lake once per process (executors reuse it for every track)."""
    key = (lake.root, name, version)
    with _CACHE_LOCK:
        if key not in _CACHE:
            from seaice_tasks.models.lake import load_lake_model

            _CACHE[key] = load_lake_model(lake, name, version)
            log.info("model %s %s loaded", name, version)
        return _CACHE[key]


def classify_track_work(rec: Record, ctx: WorkContext[ClassifyConfig]) -> WorkResult:
    """One track -> its ``segments_classified`` partition.

    Record: ``date``, ``granule``, ``beam``, ``version`` (the model version the driver resolved).
    """
    config = ctx.config
    granule, beam = str(rec["granule"]), str(rec["beam"])
    loaded = cached_model(ctx.lake, config.model, str(rec["version"]))
    frame = ctx.lake.read_table(SEGMENTS_2M.key(date=rec["date"], granule=granule, beam=beam)).select(
        list(TRACK_COLUMNS)).to_pandas()
    out = classify_frame(frame, loaded, config)
    out.insert(0, "beam", beam)
    out.insert(0, "granule", granule)
    table: pa.Table = geoparquet_table(out, SEGMENTS_CLASSIFIED_SCHEMA)
    key = SEGMENTS_CLASSIFIED.key(date=rec["date"], granule=granule, beam=beam)
    valid = out["window_valid"].to_numpy()
    counts = np.bincount(out.loc[valid, "class"].to_numpy(dtype=np.int64), minlength=3)[:3]
    row = {"granule": granule, "beam": beam, "segments": len(out), "classified": int(valid.sum()),
           "class_counts": {"thick": int(counts[0]), "thin": int(counts[1]), "water": int(counts[2])}}
    return WorkResult(rows=(row,), outputs=(TableOutput(key, CLASSES_FILE, table),))
