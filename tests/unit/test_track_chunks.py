"""A track read in along-track chunks gives the whole track's outputs, byte for byte (seaice_tasks.trackio).

Small synthetic tracks: leads that a chunk boundary cuts (one longer than a chunk), windows that a
boundary cuts, a track without water, an empty track; several chunk sizes down to one row.
"""

from __future__ import annotations

import dataclasses
import logging
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from seaice_tasks.errors import ConfigError, InputError, SchemaError, StorageError
from seaice_tasks.is2.classify import ClassifyConfig, classify_chunks, classify_frame
from seaice_tasks.is2.features import FEATURE_NAMES, NOTEBOOK_FEATURES, segment_features
from seaice_tasks.outputs import TableOutput, stage_output, write_partition
from seaice_tasks.products import CLASSES_FILE, FREEBOARD, FREEBOARD_FILE, SEGMENTS_CLASSIFIED
from seaice_tasks.schemas import FREEBOARD_SCHEMA, SEGMENTS_CLASSIFIED_SCHEMA
from seaice_tasks.storage import PARQUET_ROW_GROUP_ROWS, InputStore, Lake, geoparquet_table
from seaice_tasks.surface.comparison import TrackComparison, ValidateConfig, compare_track
from seaice_tasks.surface.freeboard import FreeboardConfig, freeboard_chunks, freeboard_frame, freeboard_track
from seaice_tasks.surface.plots import draw_track_quicklook, photon_arrays, track_quicklook
from seaice_tasks.surface.quicklook_data import QuicklookRows, zoom_stretch
from seaice_tasks.surface.reference import ReferenceTrack
from seaice_tasks.surface.sea_surface import SeaSurfaceConfig
from seaice_tasks.trackio import (
    DEFAULT_CHUNK_ROWS,
    TRACK_ROW_GROUP_ROWS,
    FrameSource,
    PartitionSource,
    TrackOrderError,
    iter_chunks,
    row_groups,
)
from seaice_tasks.work import WorkContext
from tests.unit.test_surface_plots import atl07_frame, atl10_frames, ours_frame, photons_frame

DAY = "2019-11-04"
GRANULE = "20191104195311_05940510"
#: Windows of 300 m (150 rows), a running minimum over +-20 rows: several windows per chunk.
SURFACE = SeaSurfaceConfig(radius_m=150.0, smooth_rows=20, lead_kernel_m=200.0)
CONFIGS = {
    "default": FreeboardConfig(surface=SURFACE),
    "thin fallback, trimmed, nasa reference": FreeboardConfig(
        surface=SeaSurfaceConfig(radius_m=150.0, smooth_rows=20, lead_fallback="thin", lead_edge_trim_m=4.0,
                                 reference="nasa", nearest_k=3), lead_p_water=0.9),
    "photon leads, Eq. 2": FreeboardConfig(surface=dataclasses.replace(SURFACE, weight_form="paper"),
                                           leads="photons"),
    "classes as leads": FreeboardConfig(surface=SURFACE, leads="classes"),
    "row runs, smoothed reference": FreeboardConfig(
        surface=SeaSurfaceConfig(radius_m=90.0, smooth_rows=7, lead_runs="rows", reference="nasa_smooth",
                                 split_gap_m=30.0, weight_form="notebook")),
}
#: Chunk sizes: one row, a size that cuts leads and windows anywhere, about a third, the whole.
CHUNKS = (1, 37, 250, 10**6)


def track(n: int = 1200, *, leads: tuple[tuple[int, int], ...] = ((240, 260), (600, 700), (1010, 1013)),
          seed: int = 0) -> pd.DataFrame:
    """A classified track of ``n`` 2 m rows: ice, open water at ``leads`` (row ranges), gaps, NaN heights."""
    rng = np.random.default_rng(seed)
    step = np.where(rng.random(n) < 0.02, rng.integers(2, 40, n), 1)
    bins = (np.cumsum(step) + 5000).astype(np.int64)
    x = bins * 2.0 + 0.25
    cls = np.where(rng.random(n) < 0.3, 1, 0).astype(np.uint8)
    cls[rng.random(n) < 0.03] = 255
    for a, b in leads:
        cls[a:b] = 2
    surface = 0.1 * np.sin(x / 3000.0)
    h = np.where(cls == 2, surface + rng.normal(0, 0.02, n), surface + rng.gamma(2.0, 0.2, n))
    h[rng.random(n) < 0.02] = np.nan
    h[rng.random(n) < 0.005] = 20.0
    sd = rng.gamma(2.0, 0.05, n)
    frame = pd.DataFrame({
        "bin_index": bins, "x_atc_m": x, "lat_deg": -75.0 + x * 1e-6, "lon_deg": -170.0 + x * 2e-6,
        "time_utc": pd.to_datetime(1.5e9 + x / 7000.0, unit="s", utc=True), "n_photons": rng.integers(0, 12, n),
        "h_cor_mean_m": h, "h_cor_median_m": h - 0.01, "h_std_m": sd, "pcnt_mean": rng.random(n) * 5,
        "pcnth_mean": rng.random(n) * 3, "bcnt_mean": rng.random(n), "brate_mean": rng.random(n) * 1e6,
        "class": cls, "p_water": rng.random(n).astype(np.float32),
    })
    frame["n_photons"] = frame["n_photons"].astype(np.int32)
    frame["height_sd_m"] = sd
    # photon evidence: most lead rows and a stretch the classes call ice (a lead only the photons see)
    photon_water = (cls == 2) & (rng.random(n) < 0.8)
    photon_water[int(0.7 * n):int(0.7 * n) + 15] = True
    frame["water_vote"] = np.where(photon_water, 1.0, rng.random(n) * 0.5)
    frame["height_above_low_m"] = np.where(photon_water, rng.random(n) * 0.05, 0.05 + rng.gamma(2.0, 0.2, n))
    return frame


def classified_table(t: pd.DataFrame, beam: str = "gt1r") -> pa.Table:
    """``t`` as a ``segments_classified`` table."""
    out = t[["bin_index", "x_atc_m", "lat_deg", "lon_deg", "time_utc", "n_photons"]].copy()
    out.insert(0, "beam", beam)
    out.insert(0, "granule", GRANULE)
    out["window_valid"] = t["class"].to_numpy() != 255
    out["class"] = t["class"].to_numpy()
    for name in ("p_thick", "p_thin"):
        out[name] = np.float32(0.0)
    out["p_water"] = t["p_water"].to_numpy()
    feats = segment_features(t, None)
    for name in FEATURE_NAMES:
        out[name] = feats[name].to_numpy(dtype=np.float64)
    table: pa.Table = geoparquet_table(out, SEGMENTS_CLASSIFIED_SCHEMA)
    return table


def same_frames(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Equal column names, dtypes and bytes of every column."""
    assert list(got.columns) == list(expected.columns)
    for c in expected.columns:
        a, b = got[c].to_numpy(), expected[c].to_numpy()
        assert a.dtype == b.dtype, c
        if a.dtype == object:
            assert [str(v) for v in a] == [str(v) for v in b], c
        else:
            assert np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes(), c


# -- trackio -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_rows", CHUNKS)
def test_chunks_own_every_row_once_and_hold_their_halos(chunk_rows: int) -> None:
    t = track()
    x = t["x_atc_m"].to_numpy()
    owned = []
    for chunk in iter_chunks(FrameSource(t), ["h_cor_mean_m"], chunk_rows, halo_rows=3, halo_m=25.0):
        assert chunk.hi - chunk.lo <= chunk_rows and len(chunk.frame) == chunk.stop - chunk.start
        assert chunk.start == max(int(np.searchsorted(x, x[chunk.lo] - 25.0)) - 3, 0)
        assert chunk.stop == min(int(np.searchsorted(x, x[chunk.hi - 1] + 25.0, side="right")) + 3, len(t))
        np.testing.assert_array_equal(chunk.frame["x_atc_m"].to_numpy(), x[chunk.start:chunk.stop])
        owned.append(chunk.frame["x_atc_m"].to_numpy()[chunk.own])
    np.testing.assert_array_equal(np.concatenate(owned), x)


def test_a_partition_streams_in_batches_and_rows_out_of_order_are_refused(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    t = track(3000)
    key = SEGMENTS_CLASSIFIED.key(date=DAY, granule=GRANULE, beam="gt1r")
    write_partition(lake, key, [TableOutput(key, CLASSES_FILE, classified_table(t))], None)
    with PartitionSource(lake, key) as source:
        assert source.num_rows == 3000
        chunks = list(iter_chunks(source, ["class"], 700, halo_rows=5))
        assert [c.lo for c in chunks] == [0, 700, 1400, 2100, 2800]
        got = pd.concat([c.frame.iloc[c.own] for c in chunks], ignore_index=True)
        np.testing.assert_array_equal(got["class"].to_numpy(), t["class"].to_numpy())
        with pytest.raises(InputError, match="columns \\['nope'\\] missing"):
            list(iter_chunks(source, ["nope"], 700))
    reversed_rows = classified_table(t).take(np.arange(len(t))[::-1])
    write_partition(lake, key, [TableOutput(key, CLASSES_FILE, reversed_rows)], None)
    with PartitionSource(lake, key) as source, pytest.raises(TrackOrderError, match="not in ascending"):
        list(iter_chunks(source, ["class"], 700))


def test_row_groups_recut_pieces_into_contiguous_tables() -> None:
    table = pa.table({"a": np.arange(1000), "b": [str(i) for i in range(1000)]})
    pieces = [table.slice(a, b - a) for a, b in ((0, 3), (3, 3), (3, 400), (400, 1000))]
    groups = list(row_groups(pieces, 300))
    assert [g.num_rows for g in groups] == [300, 300, 300, 100]
    assert all(c.num_chunks == 1 for g in groups for c in g.columns)
    assert pa.concat_tables(groups).equals(table)
    assert [g.num_rows for g in row_groups([table.slice(0, 0)])] == [0]


def test_table_pieces_are_the_bytes_of_one_table(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    key = FREEBOARD.key(date=DAY, granule=GRANULE, beam="gt1r")
    writer = lake.writer(key, FreeboardConfig())
    long = pa.table({"i": pa.array(np.arange(PARQUET_ROW_GROUP_ROWS + 5_000, dtype=np.int64) % 7, pa.int8())})
    long = long.replace_schema_metadata({b"k": b"v"})
    pieces = [long.slice(0, 1000), long.slice(1000, 70_000), long.slice(71_000)]
    whole = writer.write_table("whole.parquet", long)
    streamed = writer.write_table_pieces("streamed.parquet", row_groups(pieces, PARQUET_ROW_GROUP_ROWS))
    assert (streamed.sha256, streamed.bytes, streamed.rows) == (whole.sha256, whole.bytes, whole.rows)
    assert pq.ParquetFile(lake.path("_staging", writer.token, key.relpath, "streamed.parquet")).num_row_groups == 2
    empty = long.slice(0, 0)
    assert (writer.write_table_pieces("e2.parquet", row_groups([empty], PARQUET_ROW_GROUP_ROWS)).sha256
            == writer.write_table("e1.parquet", empty).sha256)
    plain = writer.write_table_pieces("plain.parquet", row_groups(pieces, 50_000), use_dictionary=False)
    file = pq.ParquetFile(lake.path("_staging", writer.token, key.relpath, "plain.parquet"))
    assert (file.num_row_groups, plain.rows) == (22, long.num_rows)
    assert not file.metadata.row_group(0).column(0).has_dictionary_page and file.read().equals(long)
    with pytest.raises(SchemaError, match="differs from the first"):
        writer.write_table_pieces("bad.parquet", [long.slice(0, 5), pa.table({"j": [1]})])
    with pytest.raises(StorageError, match="no table pieces"):
        writer.write_table_pieces("none.parquet", [])


def test_chunk_rows_is_recorded_only_when_not_the_default() -> None:
    assert "chunk_rows" not in FreeboardConfig().to_dict() and "chunk_rows" not in ClassifyConfig().to_json()
    assert ValidateConfig(chunk_rows=1000).to_dict()["chunk_rows"] == 1000
    assert FreeboardConfig.from_json(FreeboardConfig(chunk_rows=7).to_json()).chunk_rows == 7
    assert FreeboardConfig.from_json("{}").chunk_rows == DEFAULT_CHUNK_ROWS
    with pytest.raises(ConfigError, match="chunk_rows must be >= 0"):
        ClassifyConfig(chunk_rows=-1)


# -- the stages: chunked == whole track ----------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "chunk_rows"), [(n, c) for n in sorted(CONFIGS) for c in CHUNKS
                                                   if c > 1 or n == "default"])
def test_freeboard_in_chunks_is_the_whole_tracks(name: str, chunk_rows: int) -> None:
    config = CONFIGS[name]
    short = ((40, 60), (200, 330), (410, 413))  # one-row chunks: a shorter track, leads a window and more long
    tracks = (track(500, leads=short), track(500, leads=())) if chunk_rows == 1 else (track(), track(leads=()))
    for t in (*tracks, track(0)):  # leads across boundaries, no water at all, no rows
        whole = freeboard_frame(t, config)
        got = list(freeboard_chunks(FrameSource(t), config, chunk_rows))
        same_frames(pd.concat(got, ignore_index=True) if len(got) > 1 else got[0], whole)


@pytest.mark.parametrize("chunk_rows", (1, 37, 250))
def test_freeboard_in_chunks_with_rows_sharing_an_x(chunk_rows: int) -> None:
    """Rows with equal x_atc_m (not in 2 m bins, but allowed): still the whole track's values."""
    t = track(500 if chunk_rows == 1 else 1200, leads=((40, 60), (200, 330), (410, 413)))
    x = t["x_atc_m"].to_numpy().copy()
    same = np.random.default_rng(4).random(x.size) < 0.1
    x[1:][same[1:]] = x[:-1][same[1:]]
    t["x_atc_m"] = np.maximum.accumulate(x)
    assert (np.diff(t["x_atc_m"].to_numpy()) == 0).sum() > 20
    config = FreeboardConfig(surface=SeaSurfaceConfig(radius_m=60.0, smooth_rows=5, lead_kernel_m=100.0))
    whole = freeboard_frame(t, config)
    got = list(freeboard_chunks(FrameSource(t), config, chunk_rows))
    same_frames(pd.concat(got, ignore_index=True), whole)
    # the window surfaces are np.interp over every row with a value of its window, as the whole track did it:
    # rows that share an x take the last such row's value
    x, v = whole["x_atc_m"].to_numpy(), whole["surface_nasa_m"].to_numpy()
    own = whole["surface_flag"].to_numpy() == 0
    np.testing.assert_array_equal(v, np.interp(x, x[own], v[own]))


@pytest.mark.parametrize("chunk_rows", CHUNKS)
def test_classes_in_chunks_are_the_whole_tracks(chunk_rows: int, one_thread: None) -> None:
    from seaice_tasks.models.registry import LoadedModel
    from seaice_tasks.models.sequence import build_model, preset

    card = {"name": "tiny", "input": {"features": list(NOTEBOOK_FEATURES), "half_window": 2,
                                      "normalisation": {f: {"mean": 0.1, "std": 2.0} for f in NOTEBOOK_FEATURES}}}
    loaded = LoadedModel(build_model(preset("notebook", units=4, dense=(4,)), len(NOTEBOOK_FEATURES), seed=0), card)
    config = ClassifyConfig(reference_window_m=300.0, batch_size=16)  # batches that span chunks
    t = track().drop(columns=["class", "p_water", "height_sd_m"])
    whole = classify_frame(t, loaded, config)
    assert whole["window_valid"].sum() > 500
    got = pd.concat(list(classify_chunks(FrameSource(t), loaded, config, chunk_rows)), ignore_index=True)
    same_frames(got, whole)


@pytest.mark.parametrize("chunk_rows", (13, 300, 5000, 10**6))
def test_figures_and_quicklook_in_chunks_are_the_whole_tracks(chunk_rows: int) -> None:
    ours = ours_frame(seed=2)
    ours.loc[ours.index[::97], "freeboard_m"] = np.nan
    atl10, surface = atl10_frames()
    ref = ReferenceTrack(atl07=atl07_frame(), atl10=atl10, atl10_surface=surface, release=3, flags=())
    photons = photons_frame()
    x = ours["x_atc_m"].to_numpy()
    comparison = TrackComparison(ref, None, (float(x[0]), float(x[-1])))
    rows = QuicklookRows((float(x[0]), float(x[-1]) + 2.0), zoom_stretch(photon_arrays(photons)[0]))
    for chunk in iter_chunks(FrameSource(ours), list(ours.columns), chunk_rows):
        comparison.add(chunk.frame.iloc[chunk.own])
        rows.add(chunk.frame.iloc[chunk.own])
    assert comparison.result() == compare_track(ours, ref)
    kwargs = {"title": "t", "atl07": ref.atl07, "atl10": atl10, "atl10_surface": surface, "photons": photons,
              "datum_offset_m": 0.2}
    assert draw_track_quicklook(rows, **kwargs) == track_quicklook(ours, **kwargs)


# -- the work functions: the staged file -------------------------------------------------------------------------


def _staged_freeboard(lake: Lake, chunk_rows: int, config: FreeboardConfig,
                      group_rows: int = TRACK_ROW_GROUP_ROWS) -> tuple[bytes, list[dict[str, Any]]]:
    """The staged freeboard.parquet of the track (its bytes) and the summary rows."""
    ctx = WorkContext(config=config, lake=lake, inputs=InputStore(str(lake.root)), token=uuid.uuid4().hex)
    result = freeboard_track(ctx, DAY, GRANULE, "gt1r", chunk_rows, group_rows=group_rows)
    for output in result.outputs:
        stage_output(lake, output, ctx.token, ctx.config)
    key = FREEBOARD.key(date=DAY, granule=GRANULE, beam="gt1r")
    data = ctx.read_staged(key, FREEBOARD_FILE)
    lake.discard_staging(ctx.token)
    return data, list(result.rows)


def test_the_freeboard_file_is_the_same_for_any_chunk_size_and_for_rows_out_of_order(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    lake = Lake(tmp_path / "lake")
    key = SEGMENTS_CLASSIFIED.key(date=DAY, granule=GRANULE, beam="gt1r")
    t = track(2500)
    write_partition(lake, key, [TableOutput(key, CLASSES_FILE, classified_table(t))], None)
    config = CONFIGS["default"]
    whole = _staged_freeboard(lake, 0, config)  # the track at once
    for chunk_rows in (7, 111, 1000):
        assert _staged_freeboard(lake, chunk_rows, config) == whole
    shuffled = classified_table(t).take(np.random.default_rng(3).permutation(len(t)))
    write_partition(lake, key, [TableOutput(key, CLASSES_FILE, shuffled)], None)
    with caplog.at_level(logging.WARNING, logger="seaice_tasks.surface.freeboard"):
        assert _staged_freeboard(lake, 111, config) == whole
    assert "not in ascending, finite x_atc_m" in caplog.text and "computed as a whole" in caplog.text


def test_the_freeboard_file_has_fixed_row_groups_whatever_the_chunk_size(tmp_path: Path) -> None:
    """Row groups of ``group_rows`` rows, cut by the row count alone: the same bytes for chunks of 1, 37, 250 rows
    and for the track at once, and the same table (columns, values, metadata) as one row group of it all."""
    lake = Lake(tmp_path / "lake")
    key = SEGMENTS_CLASSIFIED.key(date=DAY, granule=GRANULE, beam="gt1r")
    t = track(500, leads=((40, 60), (200, 330), (410, 413)))
    write_partition(lake, key, [TableOutput(key, CLASSES_FILE, classified_table(t))], None)
    config = CONFIGS["default"]
    group_rows = 64
    whole, rows = _staged_freeboard(lake, 0, config, group_rows)
    for chunk_rows in (1, 37, 250):
        assert _staged_freeboard(lake, chunk_rows, config, group_rows) == (whole, rows), chunk_rows
    file = pq.ParquetFile(pa.BufferReader(whole))
    assert [file.metadata.row_group(i).num_rows for i in range(file.num_row_groups)] == [64] * 7 + [52]
    chunks = [file.metadata.row_group(g).column(c) for g in range(file.num_row_groups)
              for c in range(file.metadata.num_columns)]
    assert not any(c.has_dictionary_page or "RLE_DICTIONARY" in c.encodings for c in chunks)  # no dictionaries
    # what a single pq.write_table of the whole output (one row group) holds: the same table
    out = freeboard_frame(lake.read_table(key).to_pandas(), config)
    out.insert(0, "beam", "gt1r")
    out.insert(0, "granule", GRANULE)
    fkey = FREEBOARD.key(date=DAY, granule=GRANULE, beam="gt1r")
    writer = lake.writer(fkey, config)
    writer.write_table("one.parquet", geoparquet_table(out, FREEBOARD_SCHEMA), FREEBOARD_SCHEMA)
    one = pq.ParquetFile(lake.path("_staging", writer.token, fkey.relpath, "one.parquet"))
    assert one.num_row_groups == 1
    assert file.read().equals(one.read(), check_metadata=True)
    # the default: row groups of TRACK_ROW_GROUP_ROWS (one here), the same bytes for any chunk size
    assert _staged_freeboard(lake, 0, config)[0] == _staged_freeboard(lake, 37, config)[0] != whole


def test_chunks_hold_a_chunk_not_the_track(tmp_path: Path) -> None:
    """Streaming a committed track through the freeboard in chunks allocates a fraction of what the whole track does.

    (What the work function adds, the output row group it fills for the file, is the same either way.)
    """
    lake = Lake(tmp_path / "lake")
    key = SEGMENTS_CLASSIFIED.key(date=DAY, granule=GRANULE, beam="gt1r")
    write_partition(lake, key, [TableOutput(key, CLASSES_FILE, classified_table(track(60_000, seed=1)))], None)
    config = CONFIGS["default"]

    def chunked() -> int:
        with PartitionSource(lake, key) as source:
            return sum(len(out) for out in freeboard_chunks(source, config, 2000))

    def whole() -> int:
        return len(freeboard_frame(lake.read_table(key).to_pandas(), config))

    chunked()  # imports and caches out of the measurements
    peaks = {}
    for name, run in (("whole", whole), ("chunked", chunked)):
        tracemalloc.start()
        assert run() == 60_000
        peaks[name] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peaks["chunked"] < 0.2 * peaks["whole"], peaks
