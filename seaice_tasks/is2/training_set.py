"""Immutable, versioned training sets of 5-segment windows from labelled 2 m segments (METHOD.md §5.3, §7).

:func:`build_training_set` (pure) turns ``segments_labelled`` tables into one table of the
segments that belong to a window, in track order, with the split of every window centre:

1. concatenate; keep labels 0/1/2; where two scenes label one segment (granule, beam,
   bin_index), keep the label of the smallest ``|dt_s|`` (ties: the smallest scene key);
2. sort by granule, beam, bin_index; a segment is *usable* when all selected features are finite;
3. window centres: ``2 * half_window + 1`` consecutive usable bins of one track
   (:func:`seaice_tasks.is2.features.window_centres`, last centre included);
4. split (``split``):

   * ``"blocks"`` (default, honest): the track is cut into ``block_m`` blocks
     (``block = floor(x_atc_m / block_m)``); a window is kept only when all its segments are in
     one block; the (granule, beam, block)s are put in a seeded random order (a sha256 hash of
     (seed, granule, beam, block) each) and dealt out to train/validation/test by their window
     counts against the cumulative ``fractions``, so each split holds its fraction of the
     windows to within one block.  No segment is in windows of two splits;
   * ``"random"`` (the authors' parity, METHOD §7): the centres, in track order, are permuted
     with ``numpy.random.default_rng(seed)`` and cut into sizes as sklearn's two
     ``train_test_split`` calls give (60/20/20: 73,761 / 24,587 / 24,588 of 122,936).  Windows
     overlap, so the same segments appear in train and test windows: accuracies are optimistic;

5. normalisation from the training windows only: mean and population std per feature over the
   segments of training windows (each once), std floored at :data:`STD_FLOOR`.

The version is a sha256 of the config, the sources and the table's contents, so the same inputs
give the same version and the same bytes; :func:`commit_training_set` never rewrites a committed
version.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from seaice_tasks.config import JsonConfig, json_default
from seaice_tasks.constants import SeaIceClass
from seaice_tasks.errors import ConfigError, SchemaError, SeaIceError
from seaice_tasks.is2.features import DEFAULT_HALF_WINDOW, FEATURE_NAMES, resolve_features, window_centres
from seaice_tasks.outputs import BytesOutput, Output, TableOutput, write_partition
from seaice_tasks.products import (
    LABELLED_FILE,
    NORMALISATION_FILE,
    SEGMENTS_LABELLED,
    TRAINING_REPORT_FILE,
    TRAINING_SEGMENTS_FILE,
    TRAINING_SET,
)
from seaice_tasks.schemas import TRAINING_SEGMENTS_SCHEMA, validate_table
from seaice_tasks.storage import Lake, Manifest

__all__ = [
    "EmptyTrainingSetError",
    "SPLIT_NAMES",
    "CLASS_KEYS",
    "STD_FLOOR",
    "TrainingSetConfig",
    "TrainingSet",
    "build_training_set",
    "commit_training_set",
    "load_sources",
    "run_training_set",
]


class EmptyTrainingSetError(SeaIceError):
    """The inputs give no training window (no labelled segment, or none in the training split), or a split is empty."""


log = logging.getLogger(__name__)

#: Names of the splits 0, 1, 2 in reports.
SPLIT_NAMES: Final[tuple[str, ...]] = ("train", "validation", "test")
#: Report keys of the classes 0, 1, 2.
CLASS_KEYS: Final[tuple[str, ...]] = ("thick", "thin", "water")
#: Smallest std of the normalisation (feature units): a constant feature does not divide by 0.
STD_FLOOR: Final[float] = 1e-6
#: Digits of the sha256 that name a version.
VERSION_DIGITS: Final[int] = 16
#: ``split`` of a segment that centres no window.
NOT_A_CENTRE: Final[int] = -1
_LABELLED: Final[tuple[int, ...]] = (
    int(SeaIceClass.THICK_ICE), int(SeaIceClass.THIN_ICE), int(SeaIceClass.OPEN_WATER),
)
_SPLIT_METHODS: Final[tuple[str, ...]] = ("blocks", "random")
_SAFE_NAME: Final[re.Pattern[str]] = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_FRACTION_TOLERANCE: Final[float] = 1e-6
_CEIL_TOLERANCE: Final[float] = 1e-9
_HASH_BYTES: Final[int] = 8
_KEY_COLUMNS: Final[tuple[str, ...]] = ("granule", "beam", "bin_index")
_INPUT_COLUMNS: Final[tuple[str, ...]] = (
    "granule", "beam", "scene", "bin_index", "x_atc_m", "label", "dt_s", *FEATURE_NAMES,
)

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclasses.dataclass(frozen=True)
class TrainingSetConfig(JsonConfig):
    """How a training set is cut from labelled segments.

    Attributes
    ----------
    name : str
        Training-set name (partition ``name=``; a safe path component).
    features : str or tuple of str
        Feature set name (``robust``, the default: features that mean the same on every day;
        ``notebook``, ``paper``, ``parity``, ``relative``) or feature names in model order
        (:func:`seaice_tasks.is2.features.resolve_features`).
    split : {"blocks", "random"}
        Along-track block split (default) or the authors' random split of windows (parity; leaks
        neighbouring segments between splits).
    block_m : float
        Length of the along-track blocks (m).
    fractions : (float, float, float)
        Train, validation and test fractions (each > 0, sum 1): a model needs windows to
        validate and to be scored on.
    seed : int
        Seed of the block hash and the random permutation (>= 0; authors: 20).
    half_window : int
        Neighbours on each side of a window centre (2: the authors' 5-segment windows).

    Examples
    --------
    >>> cfg = TrainingSetConfig.from_json('{"features": ["h_cor_mean_m", "d_pcnt"], "split": "random"}')
    >>> cfg.feature_names, cfg.fractions
    (('h_cor_mean_m', 'd_pcnt'), (0.6, 0.2, 0.2))
    >>> TrainingSetConfig(fractions=(0.5, 0.2, 0.2))
    Traceback (most recent call last):
    ...
    seaice_tasks.errors.ConfigError: TrainingSetConfig.fractions: three fractions > 0 (train, validation, test) ...
    """

    kind: ClassVar[str] = "training_set"
    name: str = "seaice"
    features: str | tuple[str, ...] = "robust"
    split: str = "blocks"
    block_m: float = 10_000.0
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    seed: int = 20
    half_window: int = DEFAULT_HALF_WINDOW

    def __post_init__(self) -> None:
        if not _SAFE_NAME.match(self.name):
            raise ConfigError(f"TrainingSetConfig.name: {self.name!r} is not a safe path component")
        try:
            resolve_features(self.features)
        except ConfigError as exc:
            raise ConfigError(f"TrainingSetConfig.features: {exc}") from None
        if self.split not in _SPLIT_METHODS:
            raise ConfigError(f"TrainingSetConfig.split: one of {list(_SPLIT_METHODS)}, got {self.split!r}")
        if not (math.isfinite(self.block_m) and self.block_m > 0):
            raise ConfigError(f"TrainingSetConfig.block_m: > 0 required, got {self.block_m}")
        if (len(self.fractions) != len(SPLIT_NAMES) or any(not math.isfinite(f) or f <= 0 for f in self.fractions)
                or abs(sum(self.fractions) - 1.0) > _FRACTION_TOLERANCE):
            raise ConfigError(f"TrainingSetConfig.fractions: three fractions > 0 (train, validation, test) summing "
                              f"to 1, got {self.fractions}")
        if self.seed < 0:
            raise ConfigError(f"TrainingSetConfig.seed: >= 0 required, got {self.seed}")
        if self.half_window < 0:
            raise ConfigError(f"TrainingSetConfig.half_window: >= 0 required, got {self.half_window}")

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The selected features, resolved."""
        return resolve_features(self.features)


@dataclasses.dataclass(frozen=True, eq=False)
class TrainingSet:
    """A built training set, ready to commit.

    Attributes
    ----------
    table : pyarrow.Table
        :data:`~seaice_tasks.schemas.TRAINING_SEGMENTS_SCHEMA` rows in track order.
    normalisation : dict
        ``{"features", "mean", "std", "n_rows", "std_floor", "ddof"}`` of the training split
        (feature units).
    report : dict
        Class balance per split, windows, tracks and blocks per split, sources, corrections, config.
    version : str
        First 16 hex digits of the sha256 of config, sources and table.
    """

    table: pa.Table
    normalisation: dict[str, Any]
    report: dict[str, Any]
    version: str


# -- building --------------------------------------------------------------------------------------------------
def _prepare(frames: Sequence[pd.DataFrame]) -> tuple[pd.DataFrame, dict[str, int]]:
    """Concatenate, keep labelled rows, de-duplicate by smallest |dt_s|, sort in track order."""
    for i, frame in enumerate(frames):
        missing = [c for c in _INPUT_COLUMNS if c not in frame.columns]
        if missing:
            raise SchemaError(f"build_training_set: frame {i} lacks column(s) {missing}")
    if not frames:
        return pd.DataFrame(columns=list(_INPUT_COLUMNS)), {"input": 0, "unlabelled": 0, "duplicates": 0}
    data = pd.concat([f[list(_INPUT_COLUMNS)] for f in frames], ignore_index=True)
    n_input = len(data)
    data = data[data["label"].isin(_LABELLED)]
    n_labelled = len(data)
    data = data.assign(_abs_dt=data["dt_s"].astype(np.float64).abs())
    data = data.sort_values([*_KEY_COLUMNS, "_abs_dt", "scene"], kind="mergesort", na_position="last")
    data = data.drop_duplicates(subset=list(_KEY_COLUMNS), keep="first").drop(columns="_abs_dt")
    data = data.reset_index(drop=True)
    counts = {"input": n_input, "unlabelled": n_input - n_labelled, "duplicates": n_labelled - len(data)}
    return data, counts


def _ends_equal(values: IntArray, half: int) -> BoolArray:
    """True at row i when ``values[i - half] == values[i + half]`` (both rows exist)."""
    n = values.size
    out = np.zeros(n, dtype=np.bool_)
    if n > 2 * half:
        out[half:n - half] = values[:n - 2 * half] == values[2 * half:]
    return out


def _hash_fraction(seed: int, granule: str, beam: str, block: int) -> float:
    digest = hashlib.sha256(f"{seed}|{granule}|{beam}|{block}".encode()).digest()
    return int.from_bytes(digest[:_HASH_BYTES], "big") / float(2 ** (8 * _HASH_BYTES))


def _block_splits(data: pd.DataFrame, block: IntArray, centres: IntArray, config: TrainingSetConfig) -> IntArray:
    keys = pd.DataFrame({"granule": data["granule"].to_numpy()[centres], "beam": data["beam"].to_numpy()[centres],
                         "block": block[centres]})
    # blocks in a seeded random order (one hash per block, independent of the input order), then
    # dealt out by their window counts so each split gets its fraction of the windows to within
    # one block (a hash threshold per block would miss the fractions by far on a day of few blocks)
    unique = keys.value_counts(sort=False).rename("windows").reset_index()
    u = np.array([_hash_fraction(config.seed, g, b, int(k))
                  for g, b, k in zip(unique["granule"], unique["beam"], unique["block"], strict=True)])
    unique = unique.assign(u=u).sort_values(["u", "granule", "beam", "block"], kind="stable", ignore_index=True)
    counts = unique["windows"].to_numpy(dtype=np.float64)
    middle = (np.cumsum(counts) - 0.5 * counts) / counts.sum()
    cumulative = np.cumsum(np.asarray(config.fractions, dtype=np.float64))
    unique = unique.assign(split=np.minimum(np.searchsorted(cumulative, middle, side="right"), len(SPLIT_NAMES) - 1))
    unique = unique.drop(columns=["windows", "u"])
    merged = keys.merge(unique, on=["granule", "beam", "block"], how="left", validate="many_to_one")
    return np.asarray(merged["split"].to_numpy(dtype=np.int64), dtype=np.int64)


def _random_sizes(n: int, fractions: tuple[float, float, float]) -> tuple[int, int, int]:
    """Split sizes of sklearn's ``train_test_split`` twice (ceil of the test sizes)."""
    n_test = min(n, math.ceil(fractions[2] * n - _CEIL_TOLERANCE))
    rest = n - n_test
    share = fractions[1] / (fractions[0] + fractions[1])
    n_val = min(rest, math.ceil(share * rest - _CEIL_TOLERANCE))
    return rest - n_val, n_val, n_test


def _random_splits(n_centres: int, config: TrainingSetConfig) -> IntArray:
    n_train, n_val, _ = _random_sizes(n_centres, config.fractions)
    order = np.random.default_rng(config.seed).permutation(n_centres)
    split = np.full(n_centres, 2, dtype=np.int64)
    split[order[:n_train]] = 0
    split[order[n_train:n_train + n_val]] = 1
    return split


def _members(centres: IntArray, half: int, n: int) -> BoolArray:
    """Rows inside at least one window centred at ``centres``."""
    edges = np.zeros(n + 1, dtype=np.int64)
    np.add.at(edges, centres - half, 1)
    np.add.at(edges, centres + half + 1, -1)
    return np.asarray(np.cumsum(edges[:n]) > 0, dtype=np.bool_)


def _table_digest(table: pa.Table) -> str:
    """sha256 over column names, types and values (independent of Parquet encoding)."""
    h = hashlib.sha256()
    for name in table.column_names:
        col = table.column(name).combine_chunks()
        h.update(f"{name}:{col.type}\n".encode())
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            h.update(json.dumps(col.to_pylist()).encode())
        else:
            h.update(np.ascontiguousarray(col.to_numpy(zero_copy_only=False)).tobytes())
    return h.hexdigest()


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=json_default)


def _class_balance(labels: IntArray) -> tuple[dict[str, int], dict[str, float]]:
    counts = np.bincount(labels, minlength=len(CLASS_KEYS))[: len(CLASS_KEYS)]
    total = int(counts.sum())
    return ({k: int(c) for k, c in zip(CLASS_KEYS, counts, strict=True)},
            {k: (float(c) / total if total else 0.0) for k, c in zip(CLASS_KEYS, counts, strict=True)})


def _report(data: pd.DataFrame, block: IntArray, centres: IntArray, centre_split: IntArray,
            config: TrainingSetConfig, sources: list[dict[str, Any]], counts: dict[str, int],
            n_rows: int) -> dict[str, Any]:
    labels = data["label"].to_numpy(dtype=np.int64)[centres]
    groups: dict[str, BoolArray] = {name: centre_split == s for s, name in enumerate(SPLIT_NAMES)}
    groups["all"] = np.ones(centres.size, dtype=np.bool_)
    tracks = data["granule"].astype(str) + "/" + data["beam"].astype(str)
    blocks = (tracks.to_numpy()[centres].astype(object) + "/" + block[centres].astype(str).astype(object))
    class_counts: dict[str, dict[str, int]] = {}
    class_fractions: dict[str, dict[str, float]] = {}
    for name, mask in groups.items():
        class_counts[name], class_fractions[name] = _class_balance(labels[mask])
    return {
        "config": config.to_dict(),
        "features": list(config.feature_names),
        "split_method": config.split,
        "missing_classes": {name: [k for k, n in class_counts[name].items() if n == 0] for name in SPLIT_NAMES
                            if any(n == 0 for n in class_counts[name].values())},
        "windows": {name: int(mask.sum()) for name, mask in groups.items()},
        "class_counts": class_counts,
        "class_fractions": class_fractions,
        "blocks": {name: len(set(blocks[mask].tolist())) for name, mask in groups.items()},
        "tracks": {name: len(set(tracks.to_numpy()[centres][mask].tolist())) for name, mask in groups.items()},
        "n_tracks": int(tracks.nunique()),
        "segments": {"input": counts["input"], "unlabelled_dropped": counts["unlabelled"],
                     "duplicates_dropped": counts["duplicates"], "labelled": len(data), "in_windows": n_rows},
        "sources": sources,
        "corrections": [{"partition": s.get("partition"), "corrections": s["corrections"]}
                        for s in sources if s.get("corrections")],
    }


def build_training_set(
    frames: Sequence[pd.DataFrame],
    config: TrainingSetConfig,
    *,
    sources: Sequence[Mapping[str, Any]] = (),
) -> TrainingSet:
    """Build a training set from ``segments_labelled`` tables (pure: no lake).

    Parameters
    ----------
    frames : sequence of pandas.DataFrame
        ``segments_labelled`` tables (:data:`~seaice_tasks.schemas.SEGMENTS_LABELLED_SCHEMA`
        columns; at least granule, beam, scene, bin_index, x_atc_m (m), label, dt_s (s) and the
        feature columns).
    config : TrainingSetConfig
        Features, split method, blocks, fractions, seed, window size.
    sources : sequence of mapping
        Provenance of the frames (``{"partition", "version", "corrections"}`` per partition,
        :func:`load_sources`); part of the version and the report.

    Returns
    -------
    TrainingSet
        Table, normalisation, report and version.

    Raises
    ------
    SchemaError
        When a frame lacks a column.
    EmptyTrainingSetError
        When there is no labelled segment, or no window lands in the training split.

    Notes
    -----
    ``split="random"`` (the authors' protocol) assigns overlapping windows independently, so
    windows sharing segments land in train and test: test accuracy is optimistic.  The default
    ``"blocks"`` keeps each block (and all its windows) in one split and drops windows that
    straddle a block boundary.
    """
    features = list(config.feature_names)
    half = config.half_window
    data, counts = _prepare(frames)
    if data.empty:
        raise EmptyTrainingSetError("build_training_set: no labelled segments")
    n = len(data)
    values = data[features].to_numpy(dtype=np.float64, na_value=np.nan)
    usable = np.isfinite(values).all(axis=1)
    bins = data["bin_index"].to_numpy(dtype=np.int64)
    track = data.groupby(["granule", "beam"], sort=False).ngroup().to_numpy(dtype=np.int64)
    block = np.floor(data["x_atc_m"].to_numpy(dtype=np.float64) / config.block_m).astype(np.int64)
    is_centre = window_centres(bins, usable, half) & _ends_equal(track, half)
    if config.split == "blocks":
        # x_atc_m grows with bin_index along a track, so equal end blocks mean one block.
        is_centre &= _ends_equal(block, half)
    centres = np.flatnonzero(is_centre).astype(np.int64)
    if config.split == "blocks":
        centre_split = _block_splits(data, block, centres, config)
    else:
        centre_split = _random_splits(centres.size, config)
    train_rows = _members(centres[centre_split == 0], half, n)
    if not bool(train_rows.any()):
        raise EmptyTrainingSetError(f"build_training_set: no window in the training split ({centres.size} windows, "
                                    f"{config.split} split); add data or change block_m/seed")

    split_col = np.full(n, NOT_A_CENTRE, dtype=np.int8)
    split_col[centres] = centre_split.astype(np.int8)
    member = _members(centres, half, n)
    out = data.loc[member, ["granule", "beam", "scene", "bin_index", "x_atc_m", "label"]].copy()
    out["block"] = block[member]
    out["split"] = split_col[member]
    for name in FEATURE_NAMES:
        out[name] = data.loc[member, name].astype(np.float64)
    table = validate_table(pa.Table.from_pandas(out, preserve_index=False), TRAINING_SEGMENTS_SCHEMA,
                           where="build_training_set")

    train_values = values[train_rows]
    mean = train_values.mean(axis=0)
    std = np.maximum(train_values.std(axis=0, ddof=0), STD_FLOOR)
    normalisation: dict[str, Any] = {
        "features": features,
        "mean": {f: float(m) for f, m in zip(features, mean, strict=True)},
        "std": {f: float(s) for f, s in zip(features, std, strict=True)},
        "n_rows": int(train_rows.sum()),
        "ddof": 0,
        "std_floor": STD_FLOOR,
    }
    plain_sources: list[dict[str, Any]] = json.loads(_canonical([dict(s) for s in sources]))
    digest = hashlib.sha256()
    for part in (config.to_json(), _canonical(plain_sources), _table_digest(table)):
        digest.update(part.encode())
        digest.update(b"\n")
    version = digest.hexdigest()[:VERSION_DIGITS]
    report = _report(data, block, centres, centre_split, config, plain_sources, counts, int(member.sum()))
    report["version"] = version
    log.info("training set %s/%s: %d segments, windows %s, %d tracks", config.name, version, table.num_rows,
             report["windows"], report["n_tracks"])
    unseen = report["missing_classes"].get("train", [])
    if unseen:
        log.warning("TRAINING SET %s/%s HAS NO %s WINDOW IN ITS TRAINING SPLIT: a model trained on it cannot predict "
                    "%s and will not be promoted (windows without a class per split: %s)", config.name, version,
                    " OR ".join(c.upper() for c in unseen), ", ".join(unseen), report["missing_classes"])
    elif report["missing_classes"]:
        log.warning("training set %s/%s: splits without a class: %s", config.name, version, report["missing_classes"])
    return TrainingSet(table=table, normalisation=normalisation, report=report, version=version)


# -- lake ------------------------------------------------------------------------------------------------------
def _json_bytes(doc: Mapping[str, Any]) -> bytes:
    return (json.dumps(doc, sort_keys=True, indent=1, default=json_default) + "\n").encode()


def _summary(ts: TrainingSet, config: TrainingSetConfig) -> dict[str, Any]:
    return {
        "windows": ts.report["windows"],
        "missing_classes": ts.report.get("missing_classes", {}),
        "class_fractions": ts.report["class_fractions"]["all"],
        "features": list(config.feature_names),
        "split_method": config.split,
        "sources": len(ts.report["sources"]),
    }


def commit_training_set(lake: Lake, ts: TrainingSet, config: TrainingSetConfig) -> Manifest:
    """Commit a training set as ``training_set/name=<name>/version=<version>``, once.

    Parameters
    ----------
    lake : Lake
        Destination lake.
    ts : TrainingSet
        Built by :func:`build_training_set` with ``config``.
    config : TrainingSetConfig
        Recorded in the manifest and files.

    Returns
    -------
    Manifest
        The new manifest, or the existing one when that version is already committed (a
        training set is immutable: it is never rewritten).

    Raises
    ------
    EmptyTrainingSetError
        When the validation or the test split holds no window (nothing is committed: a model
        trained on it could be neither validated nor scored for promotion).
    """
    empty = [name for name in SPLIT_NAMES if int(ts.report["windows"].get(name, 0)) == 0]
    if empty:
        raise EmptyTrainingSetError(f"training set {config.name}/{ts.version}: no {' and no '.join(empty)} window "
                                    f"(windows {ts.report['windows']}): not committed; add labelled days or lower "
                                    f"block_m")
    key = TRAINING_SET.key(name=config.name, version=ts.version)
    existing = lake.manifest(key)
    if existing is not None:
        log.info("%s already committed: not rewritten", key.relpath)
        return existing
    outputs: list[Output] = [
        TableOutput(key, TRAINING_SEGMENTS_FILE, ts.table),
        BytesOutput(key, NORMALISATION_FILE, _json_bytes(ts.normalisation)),
        BytesOutput(key, TRAINING_REPORT_FILE, _json_bytes(ts.report)),
    ]
    manifest = write_partition(lake, key, outputs, config, info=_summary(ts, config))
    log.info("committed %s (%d segments)", key.relpath, ts.table.num_rows)
    return manifest


def load_sources(lake: Lake, dates: Sequence[dt.date]) -> tuple[list[pd.DataFrame], list[dict[str, Any]]]:
    """Every committed ``segments_labelled`` partition of ``dates`` and its provenance.

    Parameters
    ----------
    lake : Lake
        Lake to read.
    dates : sequence of datetime.date
        UTC days.

    Returns
    -------
    frames : list of pandas.DataFrame
        The partitions' tables (without ``geometry``), in the order of ``sources``.
    sources : list of dict
        ``{"partition": relpath, "version": manifest version, "corrections": [...]}`` sorted by
        relpath; manifest and table come from one consistent read.
    """
    keys = sorted({k for day in dates for k in lake.partitions(SEGMENTS_LABELLED.name, day)},
                  key=lambda k: k.relpath)
    frames: list[pd.DataFrame] = []
    sources: list[dict[str, Any]] = []
    for key in keys:  # one read per partition
        manifest, files = lake.read_partition(key, [LABELLED_FILE])
        table = pq.read_table(io.BytesIO(files[LABELLED_FILE]))
        if "geometry" in table.column_names:
            table = table.drop_columns(["geometry"])
        frames.append(table.to_pandas())
        sources.append({"partition": key.relpath, "version": manifest.version,
                        "corrections": list(manifest.info.get("corrections", []))})
    return frames, sources


def run_training_set(lake: Lake, dates: Sequence[dt.date], config: TrainingSetConfig) -> dict[str, Any]:
    """Load the labelled segments of ``dates``, build and commit a training set.

    Parameters
    ----------
    lake : Lake
        Lake holding ``segments_labelled`` and receiving ``training_set``.
    dates : sequence of datetime.date
        UTC days whose labelled segments are used.
    config : TrainingSetConfig
        Training-set options.

    Returns
    -------
    dict
        JSON-ready summary: ``partition`` (relpath), ``version``, ``windows`` per split,
        ``class_balance`` (fractions per split), ``features``, ``sources`` (count).

    Raises
    ------
    EmptyTrainingSetError
        When the days hold no labelled segment, no window lands in the training split, or the
        validation or test split holds none (nothing committed).
    """
    frames, sources = load_sources(lake, dates)
    if not any(bool(f["label"].isin(_LABELLED).any()) for f in frames if "label" in f.columns):
        days = ", ".join(d.isoformat() for d in dates) or "no dates"
        raise EmptyTrainingSetError(f"no labelled segments for {days}: run colocate first")
    ts = build_training_set(frames, config, sources=sources)
    manifest = commit_training_set(lake, ts, config)
    return {
        "partition": manifest.key.relpath,
        "version": ts.version,
        "windows": ts.report["windows"],
        "missing_classes": ts.report["missing_classes"],
        "class_balance": ts.report["class_fractions"],
        "features": list(config.feature_names),
        "split_method": config.split,
        "sources": len(sources),
        "segments": ts.table.num_rows,
    }
