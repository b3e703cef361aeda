"""Training sets: de-duplication, window centres, block/random splits, normalisation, versions, lake, arrays."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from seaice_tasks.errors import ConfigError, SchemaError, SeaIceError
from seaice_tasks.is2 import training_set as ts_mod
from seaice_tasks.is2.features import FEATURE_NAMES, NOTEBOOK_FEATURES, PAPER_FEATURES, ROBUST_FEATURES
from seaice_tasks.is2.training_set import (
    TrainingSetConfig,
    build_training_set,
    commit_training_set,
    load_sources,
    run_training_set,
)
from seaice_tasks.outputs import TableOutput, write_partition
from seaice_tasks.products import (
    LABELLED_FILE,
    NORMALISATION_FILE,
    SEGMENTS_LABELLED,
    TRAINING_REPORT_FILE,
    TRAINING_SEGMENTS_FILE,
    TRAINING_SET,
)
from seaice_tasks.schemas import SEGMENTS_LABELLED_SCHEMA, TRAINING_SEGMENTS_SCHEMA
from seaice_tasks.storage import Lake
from seaice_tasks.train.windows import column_names, feature_statistics, window_arrays

DAY = dt.date(2019, 11, 4)
GRANULE = "20191104195311_05940510"
SCENE_A = "20191104T192524_T06CZY"
SCENE_B = "20191104T200456_T07CAN"


def _frame(
    bins: np.ndarray,
    *,
    granule: str = GRANULE,
    beam: str = "gt1r",
    scene: str = SCENE_A,
    dt_s: float = 600.0,
    labels: np.ndarray | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """A segments_labelled table of one pair with random finite features."""
    rng = np.random.default_rng(seed)
    n = bins.size
    frame = pd.DataFrame({
        "granule": granule,
        "beam": beam,
        "scene": scene,
        "bin_index": bins.astype(np.int64),
        "x_atc_m": bins * 2.0,
        "lat_deg": -75.0,
        "lon_deg": -170.0,
        "dt_s": dt_s,
        "pixel_row": np.zeros(n, np.int32),
        "pixel_col": np.zeros(n, np.int32),
        "label_s2": np.zeros(n, np.uint8),
        "label_unet": np.full(n, 255, np.uint8),
        "label": (labels if labels is not None else rng.integers(0, 3, n)).astype(np.uint8),
        "label_source": "s2",
        "correction_row": np.full(n, -1, np.int32),
        "n_photons": np.full(n, 5, np.int32),
    })
    for name in FEATURE_NAMES:
        frame[name] = rng.normal(size=n)
    frame["geometry"] = [b"\x01\x01\x00\x00\x00" + bytes(16)] * n
    return frame


def _long_frames() -> list[pd.DataFrame]:
    """Three 40 km tracks (20,000 bins each) with a few gaps."""
    frames = []
    for k, beam in enumerate(("gt1r", "gt2r", "gt3r")):
        bins = np.arange(1_000_000, 1_020_000)
        bins = np.delete(bins, np.arange(3000 + k, 20_000, 4999))
        frames.append(_frame(bins, beam=beam, seed=k))
    return frames


# -- config ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs", [
    {"split": "tracks"}, {"fractions": (0.6, 0.2, 0.3)}, {"fractions": (0.0, 0.5, 0.5)}, {"block_m": 0.0},
    {"seed": -1}, {"half_window": -1}, {"features": "paper6"}, {"features": ("h_cor_mean_m", "nope")},
    {"name": "a/b"},
])
def test_config_rejects(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        TrainingSetConfig(**kwargs)


def test_config_json_round_trip() -> None:
    cfg = TrainingSetConfig(features=("h_cor_mean_m", "d_pcnt"), split="random", seed=3)
    assert TrainingSetConfig.from_json(cfg.to_json()) == cfg
    assert TrainingSetConfig().feature_names == ROBUST_FEATURES  # the default recipe's
    assert TrainingSetConfig(features="notebook").feature_names == NOTEBOOK_FEATURES  # the paper recipe's


# -- building ----------------------------------------------------------------------------------------------------
def test_deduplicates_by_smallest_abs_dt_then_scene() -> None:
    bins = np.arange(100, 120)
    a = _frame(bins, scene=SCENE_A, dt_s=-900.0, labels=np.zeros(20), seed=1)
    b = _frame(bins[5:], scene=SCENE_B, dt_s=300.0, labels=np.full(15, 2), seed=2)
    out = build_training_set([a, b], TrainingSetConfig(split="random")).table.to_pandas()
    assert out["bin_index"].is_unique
    by_bin = out.set_index("bin_index")
    assert (by_bin.loc[105:119, "scene"] == SCENE_B).all() and (by_bin.loc[105:119, "label"] == 2).all()
    assert (by_bin.loc[100:104, "scene"] == SCENE_A).all()
    np.testing.assert_array_equal(by_bin.loc[105:119, "pcnt_mean"], b["pcnt_mean"].to_numpy())
    # equal |dt_s|: the smaller scene key wins, whatever the frame order
    c = _frame(bins, scene=SCENE_B, dt_s=300.0, labels=np.ones(20), seed=3)
    d = _frame(bins, scene=SCENE_A, dt_s=-300.0, labels=np.zeros(20), seed=4)
    tie = build_training_set([c, d], TrainingSetConfig(split="random")).table.to_pandas()
    assert (tie["scene"] == SCENE_A).all() and (tie["label"] == 0).all()


def test_unlabelled_and_nonfinite_rows_break_windows() -> None:
    labels = np.zeros(30)
    labels[10] = 255
    frame = _frame(np.arange(30), labels=labels)
    frame.loc[20, "rel_height_m"] = np.nan  # a selected (notebook) feature
    frame.loc[5, "d_pcnt"] = np.nan  # not selected: harmless
    ts = build_training_set([frame], TrainingSetConfig(split="random"))
    out = ts.table.to_pandas()
    centres = out.loc[out["split"] >= 0, "bin_index"].to_numpy()
    assert 10 not in out["bin_index"].to_numpy() and 20 not in out["bin_index"].to_numpy()
    assert all(abs(c - 10) > 2 and abs(c - 20) > 2 for c in centres)
    assert 5 in centres
    assert ts.report["segments"]["unlabelled_dropped"] == 1
    paper = build_training_set([frame], TrainingSetConfig(split="random", features="paper")).table.to_pandas()
    assert 20 in paper["bin_index"].to_numpy() and 5 not in paper.loc[paper["split"] >= 0, "bin_index"].to_numpy()


def test_windows_never_cross_tracks() -> None:
    # two beams whose bins continue across the boundary: gt1r 0..9, gt2r 10..19
    frames = [_frame(np.arange(0, 10), beam="gt1r"), _frame(np.arange(10, 20), beam="gt2r")]
    out = build_training_set(frames, TrainingSetConfig(split="random")).table.to_pandas()
    centres = out[out["split"] >= 0]
    assert sorted(centres["bin_index"]) == [2, 3, 4, 5, 6, 7, 12, 13, 14, 15, 16, 17]


def _windows_of(out: pd.DataFrame, half: int = 2) -> pd.DataFrame:
    """(row, split) for every segment of every window, by position in the output table."""
    centres = np.flatnonzero(out["split"].to_numpy() >= 0)
    rows = (centres[:, None] + np.arange(-half, half + 1)[None, :]).ravel()
    return pd.DataFrame({"row": rows, "split": np.repeat(out["split"].to_numpy()[centres], 2 * half + 1)})


def test_block_split_never_shares_segments_between_splits() -> None:
    cfg = TrainingSetConfig(block_m=2000.0, seed=7)
    ts = build_training_set(_long_frames(), cfg)
    out = ts.table.to_pandas()
    windows = _windows_of(out)
    assert windows.groupby("row")["split"].nunique().max() == 1
    assert set(windows["split"]) == {0, 1, 2}
    # every window lies in one block, and windows at block edges are dropped
    block = out["block"].to_numpy()
    centres = np.flatnonzero(out["split"].to_numpy() >= 0)
    assert (block[centres - 2] == block[centres + 2]).all()
    edge = out.index[(out["x_atc_m"] % 2000.0) == 0.0]
    assert (out.loc[edge, "split"] == -1).all()
    # blocks get their split from the hash: one split per (granule, beam, block)
    per_block = out[out["split"] >= 0].groupby(["granule", "beam", "block"])["split"].nunique()
    assert per_block.max() == 1
    assert sum(ts.report["windows"][s] for s in ("train", "validation", "test")) == ts.report["windows"]["all"]
    frac = ts.report["windows"]["train"] / ts.report["windows"]["all"]
    assert 0.4 < frac < 0.8


def test_block_split_fractions_hold_on_few_blocks() -> None:
    """12 blocks of 10 km: each split gets its fraction of the windows to within one block."""
    ts = build_training_set(_long_frames(), TrainingSetConfig(block_m=10_000.0))
    out = ts.table.to_pandas()
    centres = out[out["split"] >= 0]
    largest = centres.groupby(["granule", "beam", "block"]).size().max() / len(centres)
    for split, target in enumerate(TrainingSetConfig().fractions):
        assert abs((centres["split"] == split).mean() - target) <= largest, split
    # a different seed deals the blocks out differently
    other = build_training_set(_long_frames(), TrainingSetConfig(block_m=10_000.0, seed=21)).table.to_pandas()
    assert not np.array_equal(other["split"].to_numpy(), out["split"].to_numpy())


def test_random_split_sizes_and_seed() -> None:
    frame = _frame(np.arange(104))  # 100 centres
    a = build_training_set([frame], TrainingSetConfig(split="random"))
    b = build_training_set([frame], TrainingSetConfig(split="random"))
    c = build_training_set([frame], TrainingSetConfig(split="random", seed=21))
    split_a = a.table.column("split").to_numpy()
    assert a.report["windows"] == {"train": 60, "validation": 20, "test": 20, "all": 100}
    np.testing.assert_array_equal(split_a, b.table.column("split").to_numpy())
    assert not np.array_equal(split_a, c.table.column("split").to_numpy())
    # the authors' sizes of 122,936 windows
    assert ts_mod._random_sizes(122_936, (0.6, 0.2, 0.2)) == (73_761, 24_587, 24_588)
    # random windows share segments between splits (the leak the docstring warns of)
    assert _windows_of(a.table.to_pandas()).groupby("row")["split"].nunique().max() > 1


def test_normalisation_uses_training_rows_only() -> None:
    cfg = TrainingSetConfig(block_m=2000.0, seed=7, features="notebook")
    frames = _long_frames()
    ts = build_training_set(frames, cfg)
    out = ts.table.to_pandas()
    windows = _windows_of(out)
    train_rows = np.unique(windows.loc[windows["split"] == 0, "row"])
    for f in NOTEBOOK_FEATURES:
        vals = out[f].to_numpy()[train_rows]
        assert ts.normalisation["mean"][f] == pytest.approx(vals.mean())
        assert ts.normalisation["std"][f] == pytest.approx(vals.std())
    assert ts.normalisation["n_rows"] == train_rows.size
    assert ts.normalisation["features"] == list(NOTEBOOK_FEATURES)
    # change a feature of a test-window segment: the statistics stay, the version changes
    test_row = out.iloc[np.unique(windows.loc[windows["split"] == 2, "row"])[0]]
    frame = next(f for f in frames if f["beam"].iloc[0] == test_row["beam"])
    frame.loc[frame["bin_index"] == test_row["bin_index"], "h_cor_mean_m"] += 100.0
    changed = build_training_set(frames, cfg)
    assert changed.normalisation == ts.normalisation
    assert changed.version != ts.version
    # while changing a training segment moves the mean
    train_seg = out.iloc[train_rows[0]]
    frame = next(f for f in frames if f["beam"].iloc[0] == train_seg["beam"])
    frame.loc[frame["bin_index"] == train_seg["bin_index"], "h_cor_mean_m"] += 100.0
    assert build_training_set(frames, cfg).normalisation["mean"]["h_cor_mean_m"] != ts.normalisation["mean"][
        "h_cor_mean_m"]


def test_version_deterministic_and_sensitive() -> None:
    frames = [_frame(np.arange(200), seed=5)]
    cfg = TrainingSetConfig(split="random")
    a = build_training_set(frames, cfg, sources=[{"partition": "p", "version": "v1", "corrections": []}])
    b = build_training_set(frames, cfg, sources=[{"partition": "p", "version": "v1", "corrections": []}])
    assert a.version == b.version and len(a.version) == 16
    assert a.table.equals(b.table) and a.report == b.report
    assert build_training_set(frames, TrainingSetConfig(split="random", seed=1)).version != a.version
    assert build_training_set(frames, TrainingSetConfig(split="random", features="paper")).version != a.version
    other_sources = build_training_set(frames, cfg, sources=[{"partition": "p", "version": "v2", "corrections": []}])
    assert other_sources.version != a.version


def test_report_contents() -> None:
    sources: list[dict[str, Any]] = [{"partition": "a", "version": "1", "corrections": [{"row": 3}]},
                                     {"partition": "b", "version": "2", "corrections": []}]
    ts = build_training_set(_long_frames(), TrainingSetConfig(block_m=2000.0, seed=7), sources=sources)
    rep = ts.report
    assert rep["n_tracks"] == 3 and rep["split_method"] == "blocks" and rep["version"] == ts.version
    assert rep["sources"] == sources
    assert rep["corrections"] == [{"partition": "a", "corrections": [{"row": 3}]}]
    for split in ("train", "validation", "test", "all"):
        assert sum(rep["class_counts"][split].values()) == rep["windows"][split]
        assert sum(rep["class_fractions"][split].values()) == pytest.approx(1.0)
    assert rep["blocks"]["train"] + rep["blocks"]["validation"] + rep["blocks"]["test"] == rep["blocks"]["all"]
    assert rep["config"] == TrainingSetConfig(block_m=2000.0, seed=7).to_dict()
    json.dumps(rep)


def test_table_follows_schema_in_track_order() -> None:
    frames = [_frame(np.arange(50), beam="gt3r"), _frame(np.arange(50), beam="gt1r")]
    table = build_training_set(frames, TrainingSetConfig(split="random")).table
    assert table.schema.names == TRAINING_SEGMENTS_SCHEMA.names
    out = table.to_pandas()
    assert out.equals(out.sort_values(["granule", "beam", "bin_index"]).reset_index(drop=True))


def test_no_labelled_segments() -> None:
    with pytest.raises(SeaIceError, match="no labelled"):
        build_training_set([_frame(np.arange(20), labels=np.full(20, 255))], TrainingSetConfig())


# -- lake --------------------------------------------------------------------------------------------------------
def test_commit_twice_returns_same_manifest_without_rewriting(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    lake = Lake(tmp_path / "lake")
    cfg = TrainingSetConfig(split="random")
    ts = build_training_set([_frame(np.arange(300))], cfg)
    first = commit_training_set(lake, ts, cfg)
    key = TRAINING_SET.key(name="seaice", version=ts.version)
    assert first.key == key
    read = lake.read_table(key, TRAINING_SEGMENTS_FILE)
    assert read.num_rows == ts.table.num_rows
    assert json.loads(lake.open_file(key, NORMALISATION_FILE)) == ts.normalisation
    assert json.loads(lake.open_file(key, TRAINING_REPORT_FILE))["windows"] == ts.report["windows"]
    assert first.info["windows"] == ts.report["windows"]

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a committed training set was rewritten")

    monkeypatch.setattr(ts_mod, "write_partition", refuse)
    second = commit_training_set(lake, ts, cfg)
    assert second.version == first.version and second.files == first.files


def _write_pair(lake: Lake, frame: pd.DataFrame, corrections: list[Any]) -> None:
    key = SEGMENTS_LABELLED.key(date=DAY, granule=frame["granule"].iloc[0], beam=frame["beam"].iloc[0],
                                scene=frame["scene"].iloc[0])
    table = pa.Table.from_pandas(frame[SEGMENTS_LABELLED_SCHEMA.names], preserve_index=False)
    write_partition(lake, key, [TableOutput(key, LABELLED_FILE, table)], None, info={"corrections": corrections})


def test_load_and_run(tmp_path: Any) -> None:
    lake = Lake(tmp_path / "lake")
    with pytest.raises(SeaIceError, match="no labelled segments for 2019-11-04: run colocate first"):
        run_training_set(lake, [DAY], TrainingSetConfig())
    _write_pair(lake, _frame(np.arange(400), beam="gt2r", seed=1), [])
    _write_pair(lake, _frame(np.arange(400), beam="gt1r", seed=2), [{"row": 1}])
    frames, sources = load_sources(lake, [DAY])
    assert [s["partition"] for s in sources] == sorted(s["partition"] for s in sources)
    assert sources[0]["partition"].startswith("segments_labelled/date=2019-11-04/") and "beam=gt1r" in sources[0][
        "partition"]
    assert sources[0]["corrections"] == [{"row": 1}] and sources[1]["corrections"] == []
    assert all(s["version"] for s in sources) and "geometry" not in frames[0].columns
    cfg = TrainingSetConfig(split="random", features="paper")
    summary = run_training_set(lake, [DAY], cfg)
    assert summary["partition"] == f"training_set/name=seaice/version={summary['version']}"
    assert summary["windows"]["all"] == 2 * 396 and summary["sources"] == 2
    assert run_training_set(lake, [DAY], cfg)["version"] == summary["version"]
    json.dumps(summary)


# -- window arrays -----------------------------------------------------------------------------------------------
def test_window_arrays_shapes_order_and_zscore() -> None:
    ts = build_training_set([_frame(np.arange(60), beam="gt1r"), _frame(np.arange(40), beam="gt2r")],
                            TrainingSetConfig(split="random", features="paper"))
    out = ts.table.to_pandas()
    feats = list(PAPER_FEATURES)
    w = window_arrays(ts.table, feats)
    centres = np.flatnonzero(out["split"].to_numpy() >= 0)
    assert w.x.shape == (centres.size, 5, 6) and w.x.dtype == np.float32 and w.y.dtype == np.int64
    for k, offset in enumerate(range(-2, 3)):
        np.testing.assert_allclose(w.x[:, k, :], out[feats].to_numpy()[centres + offset], rtol=1e-6)
    np.testing.assert_array_equal(w.y, out["label"].to_numpy()[centres])
    assert list(w.keys.columns) == ["granule", "beam", "bin_index", "x_atc_m", "scene"]
    np.testing.assert_array_equal(w.keys["bin_index"], out["bin_index"].to_numpy()[centres])
    # one split, z-scored
    stats = feature_statistics(ts.normalisation)
    test = window_arrays(out, feats, split=2, normalisation=stats)
    test_centres = np.flatnonzero(out["split"].to_numpy() == 2)
    raw = out[feats].to_numpy()[test_centres]
    mean = np.array([stats[f]["mean"] for f in feats])
    std = np.array([stats[f]["std"] for f in feats])
    np.testing.assert_allclose(test.x[:, 2, :], (raw - mean) / std, rtol=1e-5, atol=1e-6)
    assert len(test) == test_centres.size
    # flat table of the authors: timestep-major names
    flat = w.flat()
    assert list(flat.columns[1:4]) == ["h_cor_mean_m-2", "height_sd_m-2", "pcnth_mean-2"]
    np.testing.assert_allclose(flat["d_brate2"], w.x[:, 4, 5])


def test_column_names_timestep_major() -> None:
    names = column_names(["h_cor_mean_m", "h_diff_m"])
    assert names == ["h_cor_mean_m-2", "h_diff_m-2", "h_cor_mean_m-1", "h_diff_m-1", "h_cor_mean_m0", "h_diff_m0",
                     "h_cor_mean_m1", "h_diff_m1", "h_cor_mean_m2", "h_diff_m2"]


def test_window_arrays_checks() -> None:
    out = build_training_set([_frame(np.arange(30))], TrainingSetConfig(split="random")).table.to_pandas()
    with pytest.raises(ConfigError, match="normalisation"):
        window_arrays(out, ["h_cor_mean_m"], normalisation={"h_diff_m": {"mean": 0.0, "std": 1.0}})
    with pytest.raises(SchemaError, match="missing"):
        window_arrays(out.drop(columns="scene"), ["h_cor_mean_m"])
    shuffled = out.iloc[::-1].reset_index(drop=True)
    with pytest.raises(SchemaError, match="adjacent"):
        window_arrays(shuffled, ["h_cor_mean_m"])


# -- a class missing, a split missing ----------------------------------------------------------------------------
def test_a_missing_class_warns_loudly_and_is_recorded(tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    lake = Lake(tmp_path / "lake")
    labels = np.where(np.arange(6000) % 50 < 30, 0, 1)  # thick and thin ice, no open water anywhere
    frames = [_frame(np.arange(6000), beam=b, labels=labels, seed=k) for k, b in enumerate(("gt1r", "gt2r"))]
    config = TrainingSetConfig(block_m=1000.0)
    with caplog.at_level("WARNING"):
        ts = build_training_set(frames, config)
    assert any("HAS NO WATER WINDOW IN ITS TRAINING SPLIT" in r.getMessage() for r in caplog.records)
    assert ts.report["missing_classes"] == {"train": ["water"], "validation": ["water"], "test": ["water"]}
    manifest = commit_training_set(lake, ts, config)
    assert manifest.info["missing_classes"]["train"] == ["water"]
    full = build_training_set([_frame(np.arange(6000), beam="gt1r")], config)
    assert full.report["missing_classes"] == {}


def test_a_set_without_test_or_validation_windows_is_not_committed(tmp_path: Any,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from seaice_tasks.cli import main as cli_main

    lake = Lake(tmp_path / "lake")
    _write_pair(lake, _frame(np.arange(300), beam="gt1r", seed=3), [])  # 600 m: one block per split at most
    ts = build_training_set(load_sources(lake, [DAY])[0], TrainingSetConfig())
    assert ts.report["windows"]["test"] == 0 or ts.report["windows"]["validation"] == 0
    with pytest.raises(ts_mod.EmptyTrainingSetError, match="not committed"):
        commit_training_set(lake, ts, TrainingSetConfig())
    assert cli_main(["training-set", "--dates", DAY.isoformat(), "--lake", str(tmp_path / "lake")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "window" in err and "not committed" in err
    assert lake.partitions(TRAINING_SET.name) == []


@pytest.mark.parametrize("fractions", [(0.8, 0.0, 0.2), (0.8, 0.2, 0.0)])
def test_config_needs_validation_and_test_fractions(fractions: tuple[float, float, float]) -> None:
    with pytest.raises(ConfigError, match="three fractions > 0"):
        TrainingSetConfig(fractions=fractions)
