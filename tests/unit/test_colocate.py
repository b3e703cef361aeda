"""Colocation job: pairs, drift estimated against the simulator's truth, label transfer, bad input."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import rasterio

from seaice_tasks.constants import SeaIceClass
from seaice_tasks.errors import InputError
from seaice_tasks.is2.colocate import ColocateConfig, SceneGrid
from seaice_tasks.is2.drift import DriftInput, estimate_drift
from seaice_tasks.is2.label_transfer import (
    apply_corrections,
    check_corrections,
    read_corrections,
    read_drift_overrides,
    trim_slice,
)
from seaice_tasks.outputs import RasterOutput, write_partition
from seaice_tasks.products import (
    COLOCATE_REPORT,
    LABELS_FILE,
    S2_LABELS,
    S2_PAIRS,
    SEGMENTS_LABELLED,
    UNUSABLE_FILE,
)
from seaice_tasks.s2.scene_labels import S2LabelConfig
from seaice_tasks.sim.geometry import SimConfig
from seaice_tasks.sim.scoring import score_label_transfer, truth_classes
from seaice_tasks.spark_jobs import colocate, s2_labels
from seaice_tasks.spark_jobs.runner import EXIT_BAD_ARGUMENT, main, run_job
from seaice_tasks.storage import Lake, PartitionKey
from tests.sim_lake import resampled_and_labelled

DAY = "2019-11-04"
#: One granule, one 12 km scene over it: all three strong beams cross the scene.
SIM = SimConfig(date=DAY, seed=31, granules=1, km=24.0, scenes_per_granule=1, scene_km=12.0)
DRIFT_TOLERANCE_M = 20.0


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A simulated day resampled and labelled into a lake (colocation's inputs), and its truth."""
    sim, lake_dir = resampled_and_labelled(SIM, tmp_path_factory.mktemp("colocate_day"))
    manifest = json.loads((sim.truth / "manifest.json").read_text())
    return {"sim": sim, "lake_dir": lake_dir, "drift": {s["scene"]: s["drift_m"] for s in manifest["plan"]["scenes"]}}


def _lake_copy(day: dict[str, Any], tmp_path: Path) -> Lake:
    shutil.copytree(day["lake_dir"], tmp_path / "lake")
    return Lake(tmp_path / "lake")


def _colocate(lake: Lake, config: ColocateConfig | None = None, granules: list[str] | None = None,
              **options: Any) -> dict[str, Any]:
    uris = granules if granules is not None else colocate.day_tracks(lake, pd.Timestamp(DAY).date())
    return run_job(colocate.JOB, uris, lake, config or ColocateConfig(), day=DAY, whole_day=granules is None,
                   **options)


def _pairs(lake: Lake) -> pd.DataFrame:
    return lake.read_table(S2_PAIRS.key(date=pd.Timestamp(DAY).date())).to_pandas()


def _files_sha(lake: Lake) -> dict[str, str]:
    out = {}
    for stage in (S2_PAIRS.name, SEGMENTS_LABELLED.name):
        for key in lake.partitions(stage):
            for name, data in lake.read_partition(key)[1].items():
                out[f"{key.relpath}/{name}"] = hashlib.sha256(data).hexdigest()
    return out


@pytest.fixture(scope="module")
def colocated(day: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    lake_dir = tmp_path_factory.mktemp("colocated") / "lake"
    shutil.copytree(day["lake_dir"], lake_dir)
    lake = Lake(lake_dir)
    summary = _colocate(lake)
    return {"lake": lake, "summary": summary}


def test_pairs_drift_and_labels_against_truth(day: dict[str, Any], colocated: dict[str, Any]) -> None:
    lake, summary = colocated["lake"], colocated["summary"]
    assert summary["failed"] == [] and summary["skipped"] == []
    pairs = _pairs(lake)
    assert len(pairs) == 3 and set(pairs["beam"]) == {"gt1r", "gt2r", "gt3r"}  # every strong beam crosses
    assert (pairs["dt_s"].abs() <= 4800).all() and (pairs["overlap_m"] > 1000).all()
    assert (pairs["x_atc_to_m"] > pairs["x_atc_from_m"]).all() and (pairs["usable_fraction"] > 0.3).all()
    enough = pairs[pairs["n_leads"] >= ColocateConfig().min_leads]
    assert len(enough) == 3  # this day has leads under every beam
    for row in enough.itertuples():
        truth = day["drift"][row.scene]
        assert row.shift_source == "estimated" and not row.low_confidence
        assert np.hypot(row.shift_dx_m - truth[0], row.shift_dy_m - truth[1]) <= DRIFT_TOLERANCE_M, row
        assert row.agreement_after > row.agreement_before  # the shift makes image and photons agree better
        assert row.correlation_after > row.correlation_before
    truth_bins = pd.read_parquet(next(day["sim"].truth.glob("*_truth_bins.parquet")))
    all_truth, all_labels = [], []
    for key in lake.partitions(SEGMENTS_LABELLED.name):
        seg = lake.read_table(key).to_pandas()
        assert seg["x_atc_m"].is_monotonic_increasing
        all_truth.append(truth_classes(seg, truth_bins, str(key.beam)))
        all_labels.append(seg["label"].to_numpy())
        assert set(seg["label_source"]) <= {"s2", "photons", "none"} and "photons" in set(seg["label_source"])
        assert lake.require(key).info["shift_source"] == "estimated"
    score = score_label_transfer(np.concatenate(all_truth), np.concatenate(all_labels))
    # the default policy labels where the photons agree with the image (or find water): few labels are wrong
    assert score["accuracy"] > 0.97 and score["labelled"] > 0.6
    report = lake.require(COLOCATE_REPORT.key(date=pd.Timestamp(DAY).date()))
    assert report.info["failed"] == [] and len(summary["pairs"]) == 3


def test_rerun_is_byte_identical(day: dict[str, Any], colocated: dict[str, Any], tmp_path: Path) -> None:
    lake = _lake_copy(day, tmp_path)
    _colocate(lake)
    assert _files_sha(lake) == _files_sha(colocated["lake"])


def test_refinement_changes_labels_with_photons(day: dict[str, Any], tmp_path: Path) -> None:
    lake = _lake_copy(day, tmp_path)
    _colocate(lake, ColocateConfig(refine=True))
    sources = pd.concat([lake.read_table(k).to_pandas() for k in lake.partitions(SEGMENTS_LABELLED.name)])
    changed = sources["label_source"] == "photons"
    assert changed.any()
    assert (sources.loc[changed, "label"] != sources.loc[changed, "label_s2"]).all()


def _label_scores(day: dict[str, Any], lake: Lake) -> tuple[dict[str, Any], pd.DataFrame]:
    truth_bins = pd.read_parquet(next(day["sim"].truth.glob("*_truth_bins.parquet")))
    frames = []
    for key in lake.partitions(SEGMENTS_LABELLED.name):
        seg = lake.read_table(key).to_pandas()
        frames.append(seg.assign(truth=truth_classes(seg, truth_bins, str(key.beam))))
    both = pd.concat(frames, ignore_index=True)
    return score_label_transfer(both["truth"].to_numpy(), both["label"].to_numpy()), both


@pytest.fixture(scope="module")
def colocated_s2(day: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """The day colocated with the papers' labels (the colour of the pixel under each segment)."""
    lake = Lake(tmp_path_factory.mktemp("colocated_s2") / "lake")
    shutil.copytree(day["lake_dir"], lake.root)
    _colocate(lake, ColocateConfig(label_policy="s2"))
    return lake


@pytest.mark.parametrize("policy", [{}, {"label_policy": "s2", "unlabel_mixed": True}])
def test_labels_that_do_not_teach_leads_as_ice(day: dict[str, Any], colocated: dict[str, Any], colocated_s2: Lake,
                                               tmp_path: Path, policy: dict[str, Any]) -> None:
    """The default policy (photon evidence) and the papers' labels without mixed pixels, against the papers'."""
    lake = colocated["lake"] if not policy else _lake_copy(day, tmp_path)
    if policy:
        _colocate(lake, ColocateConfig(**policy))
    before, _ = _label_scores(day, colocated_s2)
    after, both = _label_scores(day, lake)
    assert after["accuracy"] > before["accuracy"] + 0.03  # fewer wrong labels (at 10 m most are edge pixels)
    assert after["labelled"] > 0.5  # still most of the track
    truly_water = both["truth"] == 2
    # a lead is never taught as ice more often than before (the 10 m colours call narrow leads ice)
    as_ice = lambda f: float(np.mean(np.isin(f["label"], (0, 1))))  # noqa: E731
    assert as_ice(both[truly_water]) < as_ice(_label_scores(day, colocated_s2)[1].query("truth == 2")) / 2
    if not policy:
        assert after["recall"][2] > 2 * before["recall"][2] and after["precision"][2] > 0.9  # the photons' leads
        photons = both[both["label_source"] == "photons"]
        assert len(photons) and (photons["label"] == 2).all() and (photons["label_s2"] != 2).all()


def test_epsg3976_scene_gives_the_same_labels(day: dict[str, Any], colocated: dict[str, Any], tmp_path: Path) -> None:
    """A label partition on the polar grid (EPSG:3976, as the authors worked) pairs and labels alike."""
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    lake = _lake_copy(day, tmp_path)
    key = lake.partitions(S2_LABELS.name)[0]
    man, files = lake.read_partition(key)
    outputs = []
    for name in (LABELS_FILE, UNUSABLE_FILE):
        with rasterio.MemoryFile(io.BytesIO(files[name])) as mem, mem.open() as src:
            transform, width, height = calculate_default_transform(src.crs, "EPSG:3976", src.width, src.height,
                                                                   *src.bounds, resolution=10.0)
            dst = np.full((height, width), 255, dtype=np.uint8)
            reproject(src.read(1), dst, src_transform=src.transform, src_crs=src.crs, dst_transform=transform,
                      dst_crs="EPSG:3976", resampling=Resampling.nearest, src_nodata=255, dst_nodata=255)
        outputs.append(RasterOutput(key, name, dst, "EPSG:3976", tuple(transform)[:6]))
    write_partition(lake, key, outputs, S2LabelConfig(), man.info)
    summary = _colocate(lake)
    assert summary["failed"] == []
    polar, utm = _pairs(lake), _pairs(colocated["lake"])
    assert (polar["scene_crs"] == "EPSG:3976").all() and len(polar) == len(utm)
    truth = day["drift"][str(key.scene)]
    for row in polar.itertuples():
        assert np.hypot(row.shift_dx_m - truth[0], row.shift_dy_m - truth[1]) <= DRIFT_TOLERANCE_M, summary["pairs"]
    for k in lake.partitions(SEGMENTS_LABELLED.name):
        a = lake.read_table(k).to_pandas().set_index("bin_index")["label"]
        b = colocated["lake"].read_table(k).to_pandas().set_index("bin_index")["label"]
        common = a.index.intersection(b.index)
        # the nearest-neighbour regrid moves class edges by up to a pixel (and with them the mixed pixels the
        # default policy leaves unlabelled)
        assert len(common) > 0.95 * len(b) and (a[common] == b[common]).mean() > 0.93


def test_no_signal_gives_zero_shift_and_low_confidence() -> None:
    grid = SceneGrid("20191104T000000_T01CAA", "EPSG:3976", (10.0, 0.0, 0.0, 0.0, -10.0, 2000.0), (200, 200))
    x = np.arange(1.0, 2000.0, 2.0)
    data = DriftInput(x=x, y=np.full(x.size, 1000.0), above_floor=np.full(x.size, 0.4),
                      contiguous=np.r_[False, np.ones(x.size - 1, bool)])
    config = ColocateConfig(search_radius_m=200.0)
    for raster in (np.zeros((200, 200), np.uint8), np.full((200, 200), 255, np.uint8)):  # all thick; all cloud
        est = estimate_drift(data, grid, raster, np.eye(2), config)
        assert not est.accepted and (est.dx_m, est.dy_m) == (0.0, 0.0) and est.reason


def test_drift_override_wins(day: dict[str, Any], tmp_path: Path) -> None:
    lake = _lake_copy(day, tmp_path)
    granule = colocate.day_tracks(lake, pd.Timestamp(DAY).date())[0]
    scene = str(lake.partitions(S2_LABELS.name)[0].scene)
    table = tmp_path / "drift.csv"
    table.write_text("granule,beam,scene,dx,dy,author,note\n"
                     f"{granule},gt2r,{scene},12.5,-40,ana,checked by eye\n")
    _colocate(lake, drift_overrides=str(table))
    pairs = _pairs(lake).set_index("beam")
    assert pairs.loc["gt2r", "shift_source"] == "override"
    assert (pairs.loc["gt2r", "shift_dx_m"], pairs.loc["gt2r", "shift_dy_m"]) == (12.5, -40.0)
    assert pairs.loc["gt1r", "shift_source"] == "estimated"
    key = SEGMENTS_LABELLED.key(date=DAY, granule=granule, beam="gt2r", scene=scene)
    assert lake.require(key).info["override"] == {"author": "ana", "note": "checked by eye"}


def test_corrections_apply_once_and_bad_rows_are_recorded(day: dict[str, Any], tmp_path: Path) -> None:
    lake = _lake_copy(day, tmp_path)
    granule = colocate.day_tracks(lake, pd.Timestamp(DAY).date())[0]
    scene = str(lake.partitions(S2_LABELS.name)[0].scene)
    key = SEGMENTS_LABELLED.key(date=DAY, granule=granule, beam="gt1r", scene=scene)
    _colocate(lake)
    before = lake.read_table(key).to_pandas()
    x0 = float(before["x_atc_m"].iloc[100])
    table = tmp_path / "corrections.csv"
    table.write_text("granule,beam,x_from,x_to,class,author,note\n"
                     f"{granule},gt1r,{x0},{x0 + 40},water,ana,a lead the image missed\n"
                     f"20191104000000_99990510,gt1r,0,10,thick,bo,no such granule\n"
                     f"{granule},gt3r,{x0},{x0 + 40},thin,bo,overlaps the next\n"
                     f"{granule},gt3r,{x0 + 20},{x0 + 60},thick,bo,overlaps the previous\n"
                     f"20191105000000_99990510,gt1r,0,10,thick,bo,another day: ignored\n")
    for _ in range(2):  # idempotent
        summary = _colocate(lake, corrections=str(table))
        after = lake.read_table(key).to_pandas()
        sel = (after["x_atc_m"] + 1 >= x0) & (after["x_atc_m"] + 1 < x0 + 40)
        assert sel.sum() == 20 and (after.loc[sel, "label"] == SeaIceClass.OPEN_WATER).all()
        assert (after.loc[sel, "label_source"] == "manual").all() and (after.loc[sel, "correction_row"] == 0).all()
        assert (after.loc[~sel, "label"].to_numpy() == before.loc[~sel.to_numpy(), "label"].to_numpy()).all()
        reasons = [s["reason"] for s in summary["skipped"]]
        assert any("row 1: unknown granule" in r for r in reasons)
        assert any("row 2: interval overlaps row 3" in r for r in reasons)
        assert any("row 3: interval overlaps row 2" in r for r in reasons)
        assert not any("row 4" in r for r in reasons)
        assert summary["corrections_applied"] == [{"granule": granule, "beam": "gt1r", "row": 0}]
        assert [c["author"] for c in lake.require(key).info["corrections"]] == ["ana"]


def test_bad_tables_are_one_line_and_write_nothing(day: dict[str, Any], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    lake = _lake_copy(day, tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("granule,beam,x_from,x_to,class,author,note\nG,gt1r,10,5,water,a,b\n")
    status = main(colocate.JOB, ["--date", DAY, "--lake", str(lake.root), "--corrections", str(bad), "--no-spark"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == EXIT_BAD_ARGUMENT and len(err) == 1 and str(bad) in err[0] and "row 0" in err[0]
    assert lake.partitions(S2_PAIRS.name) == [] and lake.partitions(COLOCATE_REPORT.name) == []
    missing = tmp_path / "drift.csv"
    missing.write_text("granule,beam,scene,dx\nG,gt1r,S,1\n")
    assert main(colocate.JOB, ["--date", DAY, "--lake", str(lake.root), "--drift-overrides", str(missing),
                               "--no-spark"]) == EXIT_BAD_ARGUMENT
    assert "missing column" in capsys.readouterr().err
    assert main(colocate.JOB, ["--lake", str(lake.root), "--no-spark"]) == EXIT_BAD_ARGUMENT  # --date required


def test_missing_track_and_corrupt_scene_do_not_stop_the_others(day: dict[str, Any], tmp_path: Path) -> None:
    lake = _lake_copy(day, tmp_path)
    granule = colocate.day_tracks(lake, pd.Timestamp(DAY).date())[0]
    scene = str(lake.partitions(S2_LABELS.name)[0].scene)
    broken = PartitionKey.from_relpath(S2_LABELS.key(date=DAY, scene=scene[:-6] + "T01CZZ").relpath)
    writer = lake.writer(broken, S2LabelConfig())
    for name in (LABELS_FILE, UNUSABLE_FILE):
        writer.write_bytes(name, b"not a tiff")
    writer.info = {"cloud_fraction": 0.0, "class_fractions": {"open_water": 0.1}}
    writer.commit()
    summary = _colocate(lake, granules=[granule, "20191104000000_99990510"])
    assert [s["granule"] for s in summary["skipped"] if "granule" in s] == ["20191104000000_99990510"]
    assert len(summary["failed"]) == 1 and "T01CZZ" in summary["failed"][0]["pair"]
    assert len(summary["partitions"]) == 3  # the good scene's pairs are committed


def test_trim_only_end_runs_and_corrections_checks() -> None:
    labels = np.array([255, 255, 0, 0, 255, 255, 2, 0, 255], np.uint8)
    kept, lab = trim_slice(labels)
    assert (kept.start, kept.stop) == (2, 8) and lab.tolist() == [0, 0, 255, 255, 2, 0]  # interior cloud stays
    frame = read_corrections(b"granule,beam,x_from,x_to,class,author,note\nG,gt1r,0,4,2,a,\n", "c.csv")
    out, which, used = apply_corrections(np.zeros(4, np.uint8), np.array([0.0, 2.0, 4.0, 6.0]), frame)
    again, _, _ = apply_corrections(out, np.array([0.0, 2.0, 4.0, 6.0]), frame)
    assert out.tolist() == [2, 2, 0, 0] and again.tolist() == out.tolist() and used == [0] and which[0] == 0
    with pytest.raises(InputError, match=r"c.csv: row 0: class 'slush'"):
        read_corrections(b"granule,beam,x_from,x_to,class,author,note\nG,gt1r,0,4,slush,a,\n", "c.csv")
    with pytest.raises(InputError, match="row 1: pair"):
        read_drift_overrides(b"granule,beam,scene,dx,dy,author,note\nG,b,S,1,2,a,n\nG,b,S,3,4,a,n\n", "d.csv")
    checked = check_corrections(frame, "c.csv", {"G": True})
    assert len(checked.rows) == 1 and checked.refused == ()


def test_unet_labels_transfer_when_asked(day: dict[str, Any], tiny_unet_model: Path, tmp_path: Path,
                                         one_thread: None) -> None:
    lake = _lake_copy(day, tmp_path)
    run_job(s2_labels.JOB, [str(p) for p in day["sim"].scenes], lake, S2LabelConfig(), day=DAY,
            unet_model=str(tiny_unet_model))
    _colocate(lake, ColocateConfig(use_unet=True, label_policy="s2"))
    seg = pd.concat([lake.read_table(k).to_pandas() for k in lake.partitions(SEGMENTS_LABELLED.name)])
    assert (seg["label_unet"] != 255).mean() > 0.5 and (seg["label_source"] == "s2").any()
    assert (seg["label"] == seg["label_s2"]).all()  # the colour labels stay the label unless label_from says
    _colocate(lake, ColocateConfig(use_unet=True, label_from="unet", label_policy="s2"))
    seg = pd.concat([lake.read_table(k).to_pandas() for k in lake.partitions(SEGMENTS_LABELLED.name)])
    labelled = seg["label"] != 255
    assert (seg.loc[labelled, "label"] == seg.loc[labelled, "label_unet"]).all()
    assert set(seg.loc[labelled, "label_source"]) == {"unet"}


def test_no_scene_and_clouded_track_are_recorded_skips(day: dict[str, Any], tmp_path: Path) -> None:
    lake = _lake_copy(day, tmp_path)
    granule = colocate.day_tracks(lake, pd.Timestamp(DAY).date())[0]
    key = lake.partitions(S2_LABELS.name)[0]
    man, files = lake.read_partition(key)
    outputs = []
    for name in (LABELS_FILE, UNUSABLE_FILE):  # the whole scene under opaque cloud, still a valid footprint
        with rasterio.MemoryFile(io.BytesIO(files[name])) as mem, mem.open() as src:
            data = src.read(1)
            crs, transform = src.crs.to_string(), tuple(src.transform)[:6]
        value = 255 if name == LABELS_FILE else 1
        outputs.append(RasterOutput(key, name, np.where(data == 255, 255, value).astype(np.uint8), crs, transform))
    write_partition(lake, key, outputs, S2LabelConfig(), man.info)
    summary = _colocate(lake)
    assert summary["failed"] == [] and summary["partitions"] == []
    assert len(summary["pairs"]) == 3 and all(p["n_labelled"] == 0 for p in summary["pairs"])
    assert all("no usable labelled pixel" in s["reason"] for s in summary["skipped"] if "pair" in s)
    pairs = _pairs(lake)
    assert pairs["low_confidence"].all() and (pairs["shift_dx_m"] == 0).all()  # no signal: zero shift, flagged
    lake.delete(key)  # no scene at all: the granule is a recorded skip
    summary = _colocate(lake)
    assert summary["pairs"] == [] and [s["granule"] for s in summary["skipped"]] == [granule]
    assert "no Sentinel-2 label scene" in summary["skipped"][0]["reason"]
    assert lake.partitions(SEGMENTS_LABELLED.name) == []  # the whole-day run removed the earlier pairs
