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

Chunks (:func:`classify_chunks`, :mod:`seaice_tasks.trackio`): a track is read twice, in
along-track chunks of ``chunk_rows`` rows.  The first pass walks the chain of reference windows
and keeps one value per window; the second computes the features of each chunk with a halo of
``half + 1`` rows (a window's neighbours and their predecessors) plus the photon evidence's
(:data:`~seaice_tasks.is2.features.FEATURE_HALO_ROWS`), the rows' references from the
window table (:func:`~seaice_tasks.is2.features.window_rows`), and feeds the windows to the model
in the very batches of ``batch_size`` windows the whole track would give (a batch may span two
chunks).  The classes are therefore the whole track's, bit for bit, for any chunk size.

:func:`classify_track_work` is the Spark work function of ``spark_jobs/classify.py``: one track
per work item, the model read from the lake once per executor process (:func:`cached_model`), the
output streamed into its staged file in row groups of
:data:`~seaice_tasks.trackio.TRACK_ROW_GROUP_ROWS` rows: the file's bytes do not depend on the
chunk size (nor on reading the track at once).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from seaice_tasks.constants import SeaIceClass
from seaice_tasks.errors import ConfigError, InputError
from seaice_tasks.is2.colocate import ColocateConfig
from seaice_tasks.is2.features import (
    FEATURE_HALO_ROWS,
    FEATURE_NAMES,
    feature_frame,
    window_centres,
    window_chain,
    window_rows,
    window_stats,
)
from seaice_tasks.outputs import Output, stage_table_pieces
from seaice_tasks.products import CLASSES_FILE, SEGMENTS_2M, SEGMENTS_CLASSIFIED
from seaice_tasks.schemas import SEGMENTS_CLASSIFIED_SCHEMA
from seaice_tasks.storage import Lake, PartitionKey, geoparquet_table
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

if TYPE_CHECKING:
    from seaice_tasks.models.registry import LoadedModel

__all__ = ["ClassifyConfig", "TRACK_COLUMNS", "classify_frame", "classify_chunks", "reference_windows",
           "cached_model", "classify_track", "classify_track_work", "model_summary"]

log = logging.getLogger(__name__)

#: segments_2m columns the classification reads.
TRACK_COLUMNS: Final[tuple[str, ...]] = (
    "bin_index", "x_atc_m", "lat_deg", "lon_deg", "time_utc", "n_photons", "h_cor_mean_m", "h_cor_median_m",
    "h_std_m", "pcnt_mean", "pcnth_mean", "bcnt_mean", "brate_mean",
)
#: The columns of an output row taken over from the 2 m row.
_KEPT_COLUMNS: Final[list[str]] = ["bin_index", "x_atc_m", "lat_deg", "lon_deg", "time_utc", "n_photons"]
_NO_CLASS: Final[int] = int(SeaIceClass.UNLABELED)
_N_CLASSES: Final[int] = 3
_WATER: Final[int] = int(SeaIceClass.OPEN_WATER)
_DEFAULTS: Final[ColocateConfig] = ColocateConfig()


@dataclasses.dataclass(frozen=True)
class ClassifyConfig(ChunkedConfig):
    """Inference settings (and ``chunk_rows``, :class:`~seaice_tasks.trackio.ChunkedConfig`).

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
    water_vote_min : float
        The classifier's open water needs the photons' support: a segment whose ``water_vote``
        (:mod:`seaice_tasks.is2.photon_evidence`) is below this takes the more probable ice class
        instead (0: the argmax alone, the papers').  0.4, chosen on the tuning days: water
        precision +2 to +3 points for at most half a point of recall (docs/classification.md).
    """

    kind: ClassVar[str] = "classify"
    model: str = "seaice-is2-lstm"
    version: str = ""
    reference_window_m: float = _DEFAULTS.reference_window_m
    reference_percentile: float = _DEFAULTS.reference_percentile
    batch_size: int = 8192
    water_vote_min: float = 0.4

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.model:
            raise ConfigError("ClassifyConfig.model: a model name is required")
        if not 0.0 <= self.water_vote_min <= 1.0:
            raise ConfigError(f"ClassifyConfig.water_vote_min must be in [0, 1], got {self.water_vote_min}")
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
        Reference window and batch size (the track is one chunk here).

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
    track = frame.sort_values("x_atc_m", kind="stable").reset_index(drop=True)
    pieces = list(classify_chunks(FrameSource(track), loaded, config, max(len(track), 1)))
    return pieces[0] if len(pieces) == 1 else pd.concat(pieces, ignore_index=True)


def _card_inputs(card: Mapping[str, Any]) -> tuple[list[str], int, npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The features, half window and training normalisation (mean, std) a model card names."""
    try:
        features = [str(f) for f in card["input"]["features"]]
        half = int(card["input"]["half_window"])
        stats = card["input"]["normalisation"]
        mean = np.array([float(stats[f]["mean"]) for f in features])
        std = np.array([float(stats[f]["std"]) for f in features])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(str(card.get("name", "model")), f"model card lacks its inputs ({exc})") from None
    return features, half, mean, std


def reference_windows(source: TrackSource, config: ClassifyConfig, chunk_rows: int,
                      bbox: BoundingBox | None = None) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Pass 1: first row and label-free reference height (m) of every window of the track; ``bbox`` of its points."""
    radius = config.reference_window_m
    anchor = 0
    starts: list[npt.NDArray[np.int64]] = []
    stats: list[npt.NDArray[np.float64]] = []
    columns = ["h_cor_mean_m", *(("lon_deg", "lat_deg") if bbox is not None else ())]
    for chunk in iter_chunks(source, columns, chunk_rows, halo_m=radius):
        f = chunk.frame
        if bbox is not None:
            own = f.iloc[chunk.own]
            bbox.add(own["lon_deg"].to_numpy(dtype=np.float64), own["lat_deg"].to_numpy(dtype=np.float64))
        x = f["x_atc_m"].to_numpy(dtype=np.float64)
        h = f["h_cor_mean_m"].to_numpy(dtype=np.float64, na_value=np.nan)
        w_starts, w_stops, anchor = window_chain(x, radius, anchor=anchor, offset=chunk.start, until=chunk.hi)
        starts.append(w_starts)
        stats.append(window_stats(h, np.ones(h.size, dtype=np.bool_), w_starts, w_stops, config.reference_percentile,
                                  offset=chunk.start))
    return np.concatenate(starts), np.concatenate(stats)


@dataclasses.dataclass
class _Pending:
    """Owned rows of a chunk waiting for the model's answer on their windows."""

    rows: pd.DataFrame
    features: pd.DataFrame
    centres: npt.NDArray[np.int64]  # window centres, positions in ``rows``
    probs: npt.NDArray[np.float32]
    water_vote_min: float = 0.0
    filled: int = 0

    @property
    def done(self) -> bool:
        return self.filled == self.centres.size

    def frame(self) -> pd.DataFrame:
        out = self.rows
        valid = np.zeros(len(out), dtype=np.bool_)
        valid[self.centres] = True
        classes = np.full(len(out), _NO_CLASS, dtype=np.uint8)
        probs = self.probs[self.centres]
        predicted = probs.argmax(axis=1).astype(np.uint8)
        if self.water_vote_min > 0:
            unsupported = (predicted == _WATER) & ~(
                self.features["water_vote"].to_numpy(dtype=np.float64)[self.centres] >= self.water_vote_min)
            predicted[unsupported] = probs[unsupported, :_WATER].argmax(axis=1).astype(np.uint8)
        classes[self.centres] = predicted
        out["window_valid"] = valid
        out["class"] = classes
        out["p_thick"], out["p_thin"], out["p_water"] = self.probs[:, 0], self.probs[:, 1], self.probs[:, 2]
        for name in FEATURE_NAMES:
            out[name] = self.features[name].to_numpy(dtype=np.float64)
        return out


class _Batches:
    """Windows fed to the model in the batches of ``batch_size`` the whole track would give, answers in order."""

    def __init__(self, loaded: LoadedModel, batch_size: int) -> None:
        self._loaded = loaded
        self._batch = batch_size
        self._windows: list[npt.NDArray[np.float32]] = []
        self._count = 0
        self.queue: deque[_Pending] = deque()

    def add(self, pending: _Pending, windows: npt.NDArray[np.float32]) -> None:
        self.queue.append(pending)
        if windows.size:
            self._windows.append(windows)
            self._count += len(windows)

    def predict(self, final: bool) -> None:
        """Answer every full batch (``final``: the rest too) and hand the probabilities to their rows."""
        from seaice_tasks.models.sequence import predict_proba

        take = self._count if final else self._count - self._count % self._batch
        if take == 0:
            return
        windows = np.concatenate(self._windows) if len(self._windows) > 1 else self._windows[0]
        probs = predict_proba(self._loaded.model, windows[:take], batch_size=self._batch)
        self._windows = [windows[take:]] if take < self._count else []
        self._count -= take
        k = 0
        for pending in self.queue:
            m = min(pending.centres.size - pending.filled, take - k)
            pending.probs[pending.centres[pending.filled:pending.filled + m]] = probs[k:k + m]
            pending.filled += m
            k += m
            if k == take:
                break

    def ready(self) -> Iterator[pd.DataFrame]:
        """Frames of the chunks at the front whose windows are all answered."""
        while self.queue and self.queue[0].done:
            yield self.queue.popleft().frame()


def classify_chunks(source: TrackSource, loaded: LoadedModel, config: ClassifyConfig, chunk_rows: int,
                    bbox: BoundingBox | None = None) -> Iterator[pd.DataFrame]:
    """The rows of :func:`classify_frame`, chunk by chunk, from a track in ascending ``x_atc_m``.

    Two passes over ``source`` (module docstring); the frames, concatenated, are
    :func:`classify_frame`'s, bit for bit, whatever ``chunk_rows``.  ``bbox`` (optional) gets the
    track's points in the first pass, before the first frame is given.

    Raises
    ------
    InputError
        When the card lacks its inputs.
    TrackOrderError
        When the rows are not in ascending ``x_atc_m`` (in the first pass, before any frame).
    """
    features, half, mean, std = _card_inputs(loaded.card)
    starts, stats = reference_windows(source, config, chunk_rows, bbox)
    offsets = np.arange(-half, half + 1)
    batches = _Batches(loaded, config.batch_size)
    for chunk in iter_chunks(source, TRACK_COLUMNS, chunk_rows, halo_rows=half + 1 + FEATURE_HALO_ROWS):
        f = chunk.frame
        ref = window_rows(stats, starts, chunk.rows, chunk.row_numbers())
        feats = feature_frame(f, ref, np.full(len(f), np.nan))
        z = (feats[features].to_numpy(dtype=np.float64) - mean) / std
        usable = np.isfinite(z).all(axis=1)
        centres = np.flatnonzero(window_centres(f["bin_index"].to_numpy(dtype=np.int64), usable, half))
        own = chunk.own
        centres = centres[(centres >= own.start) & (centres < own.stop)]
        windows = z[centres[:, None] + offsets[None, :]].astype(np.float32)
        rows = f.iloc[own][_KEPT_COLUMNS].reset_index(drop=True)
        pending = _Pending(rows, feats.iloc[own].reset_index(drop=True), (centres - own.start).astype(np.int64),
                           np.full((len(rows), _N_CLASSES), np.nan, dtype=np.float32), config.water_vote_min)
        batches.add(pending, windows)
        batches.predict(final=False)
        yield from batches.ready()
    batches.predict(final=True)
    yield from batches.ready()


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


def _track_table(out: pd.DataFrame, granule: str, beam: str, bbox: list[float] | None = None) -> pa.Table:
    """The ``segments_classified`` table of classified rows (``bbox``: the whole track's, for a piece)."""
    out.insert(0, "beam", beam)
    out.insert(0, "granule", granule)
    table: pa.Table = geoparquet_table(out, SEGMENTS_CLASSIFIED_SCHEMA, bbox=bbox)
    return table


class _Tally:
    """The summary row's counts, over the frames of a track."""

    def __init__(self) -> None:
        self.segments = 0
        self.classified = 0
        self.counts = np.zeros(_N_CLASSES, dtype=np.int64)

    def add(self, out: pd.DataFrame) -> None:
        valid = out["window_valid"].to_numpy()
        self.segments += len(out)
        self.classified += int(valid.sum())
        self.counts += np.bincount(out.loc[valid, "class"].to_numpy(dtype=np.int64), minlength=_N_CLASSES)[:_N_CLASSES]


def _whole_track(ctx: WorkContext[ClassifyConfig], key_in: PartitionKey, key: PartitionKey, loaded: LoadedModel,
                 tally: _Tally, group_rows: int) -> Output:
    """The track read and classified at once, written in the row groups of the streamed file."""
    frame = ctx.lake.read_table(key_in).select(list(TRACK_COLUMNS)).to_pandas()
    out = classify_frame(frame, loaded, ctx.config)
    tally.add(out)
    table = _track_table(out, str(key.granule), str(key.beam))
    del frame, out
    return stage_table_pieces(ctx.lake, key, CLASSES_FILE, row_groups([table], group_rows), ctx.token, ctx.config,
                              use_dictionary=TRACK_USE_DICTIONARY)


def _streamed(ctx: WorkContext[ClassifyConfig], key_in: PartitionKey, key: PartitionKey, loaded: LoadedModel,
              tally: _Tally, chunk_rows: int, group_rows: int) -> Output:
    """The track classified chunk by chunk, the output streamed into its staged file."""
    bbox = BoundingBox()
    with PartitionSource(ctx.lake, key_in) as source:
        def pieces() -> Iterator[pa.Table]:
            for out in classify_chunks(source, loaded, ctx.config, chunk_rows, bbox):
                tally.add(out)
                yield _track_table(out, str(key.granule), str(key.beam), bbox.bbox)

        return stage_table_pieces(ctx.lake, key, CLASSES_FILE, row_groups(pieces(), group_rows), ctx.token,
                                  ctx.config, use_dictionary=TRACK_USE_DICTIONARY)


def classify_track(ctx: WorkContext[ClassifyConfig], date: str, granule: str, beam: str, version: str,
                   chunk_rows: int, *, group_rows: int = TRACK_ROW_GROUP_ROWS) -> WorkResult:
    """:func:`classify_track_work` with ``chunk_rows`` given (0: the whole track at once).

    ``group_rows``: rows per row group of the file (the layout of the product's files: keep the
    default; the file is the same for every ``chunk_rows``).
    """
    loaded = cached_model(ctx.lake, ctx.config.model, version)
    key_in = SEGMENTS_2M.key(date=date, granule=granule, beam=beam)
    key = SEGMENTS_CLASSIFIED.key(date=date, granule=granule, beam=beam)
    tally = _Tally()
    output: Output
    if chunk_rows == 0:
        output = _whole_track(ctx, key_in, key, loaded, tally, group_rows)
    else:
        try:
            output = _streamed(ctx, key_in, key, loaded, tally, chunk_rows, group_rows)
        except TrackOrderError as exc:
            log.warning("%s; classified as a whole", exc)
            tally = _Tally()
            output = _whole_track(ctx, key_in, key, loaded, tally, group_rows)
    counts = tally.counts
    row = {"granule": granule, "beam": beam, "segments": tally.segments, "classified": tally.classified,
           "class_counts": {"thick": int(counts[0]), "thin": int(counts[1]), "water": int(counts[2])}}
    return WorkResult(rows=(row,), outputs=(output,))


def classify_track_work(rec: Record, ctx: WorkContext[ClassifyConfig]) -> WorkResult:
    """One track -> its ``segments_classified`` partition.

    Record: ``date``, ``granule``, ``beam``, ``version`` (the model version the driver resolved).
    The track is read and written in chunks of the config's ``chunk_rows`` (module docstring);
    with ``chunk_rows`` 0, or when its rows are not in ascending ``x_atc_m`` (a warning), at once.
    """
    return classify_track(ctx, str(rec["date"]), str(rec["granule"]), str(rec["beam"]), str(rec["version"]),
                          ctx.config.chunk_rows)
