"""Freeboard and validation jobs on a simulated day (truth classes), and validation on real layouts."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from seaice_tasks.demo import score_freeboard_day
from seaice_tasks.granule import parse_granule
from seaice_tasks.io.atl07 import read_atl07
from seaice_tasks.products import (
    CLASSES_FILE,
    FREEBOARD,
    FREEBOARD_FILE,
    FREEBOARD_REPORT,
    HISTOGRAM_FILE,
    QUICKLOOK_FILE,
    SEGMENTS_CLASSIFIED,
    VALIDATION,
    VALIDATION_DAY,
    VALIDATION_FILE,
    VALIDATION_MD_FILE,
)
from seaice_tasks.schemas import FREEBOARD_SCHEMA
from seaice_tasks.sim.geometry import SimConfig
from seaice_tasks.spark_jobs.runner import EXIT_BAD_ARGUMENT, load_job, main, run_job
from seaice_tasks.storage import Lake
from seaice_tasks.surface.validate import (
    ReferenceTrack,
    atl07_is_water,
    companion_uri,
    compare_track,
    read_reference,
)
from tests.fixtures.atl10_layout import SEG_DIST_X0_M, SEGMENT_SPACING_M, write_atl10
from tests.sim_lake import classified_from_truth

DAY = "2019-11-04"
DATE = dt.date(2019, 11, 4)
SIM = SimConfig(date=DAY, seed=31, granules=1, km=24.0, scenes_per_granule=1, scene_km=12.0)
REAL_ATL07 = "icepyx_processed_ATL07-01_20190226002919_09100201_003_02.h5"


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A simulated day resampled, classified with its truth classes, then through freeboard and validate."""
    from seaice_tasks.catalog import run_discover
    from seaice_tasks.is2.resample import ResampleConfig
    from seaice_tasks.sim.day import simulate_day
    from seaice_tasks.storage import InputStore

    root = tmp_path_factory.mktemp("freeboard_day")
    sim = simulate_day(SIM, root / "sim", workers=1)
    run_discover(DAY, catalog=str(sim.catalog), lake=str(root / "lake"))
    lake = Lake(root / "lake")
    run_job(load_job("resample"), [str(p) for p in sim.atl03], lake, ResampleConfig(), day=DAY,
            inputs=InputStore(str(sim.catalog)))
    classified_from_truth(lake, sim, DAY)
    classified = root / "classified"
    shutil.copytree(root / "lake", classified)
    fb = run_job(load_job("freeboard"), [], lake, None, day=DAY, whole_day=True)
    val = run_job(load_job("validate"), [], lake, None, day=DAY, whole_day=True, inputs=InputStore(str(sim.catalog)))
    return {"sim": sim, "lake": lake, "classified": classified, "freeboard": fb, "validate": val}


def _digests(lake: Lake) -> list[str]:
    keys = lake.partitions(FREEBOARD.name, DATE)
    return [hashlib.sha256(lake.open_file(k, FREEBOARD_FILE)).hexdigest() for k in keys]


def test_every_classified_segment_gets_a_surface_and_freeboard(day: dict[str, Any]) -> None:
    lake: Lake = day["lake"]
    keys = lake.partitions(FREEBOARD.name, DATE)
    classified = lake.partitions(SEGMENTS_CLASSIFIED.name, DATE)
    assert [(k.granule, k.beam) for k in keys] == [(k.granule, k.beam) for k in classified] and len(keys) == 3
    assert day["freeboard"]["failed"] == [] and day["freeboard"]["skipped"] == []
    for key, ckey in zip(keys, classified, strict=True):
        table = lake.read_table(key)
        assert table.schema.remove_metadata().equals(FREEBOARD_SCHEMA.remove_metadata())
        frame = table.to_pandas()
        assert len(frame) == lake.require(ckey).rows
        assert frame["x_atc_m"].is_monotonic_increasing
        assert np.allclose(frame["freeboard_m"], frame["h_cor_mean_m"] - frame["surface_m"], equal_nan=True)
        assert np.isfinite(frame["surface_m"]).all() and (frame["surface_sigma_m"] > 0).all()
        ice = frame["class"].isin([0, 1])
        assert np.isfinite(frame.loc[ice, "thickness_m"]).mean() > 0.99
        info = lake.require(key).info
        assert info["flags"] == [] and info["water_segments"] > 0
    assert lake.require(FREEBOARD_REPORT.key(date=DATE)).info["failed"] == []


def test_freeboard_rerun_is_byte_identical(day: dict[str, Any], tmp_path: Path) -> None:
    shutil.copytree(day["classified"], tmp_path / "lake")
    lake = Lake(tmp_path / "lake")
    run_job(load_job("freeboard"), [], lake, None, day=DAY, whole_day=True)
    assert _digests(lake) == _digests(day["lake"])


def test_against_truth_ours_beats_the_simulated_atl10(day: dict[str, Any]) -> None:
    """With the true classes: the surface is unbiased within 3 cm and our freeboard, averaged to the
    ATL10 segments, is closer to the truth than the simulated ATL10 (overall and on thin ice)."""
    score = score_freeboard_day(day["lake"], DATE, day["sim"].truth)  # the demo's scoring
    assert score is not None
    assert abs(score["sea_surface"]["bias_m"]) < 0.03
    ext = score["atl10_extent"]
    assert ext["all"]["n"] > 1000 and ext["all"]["ours_rmse_m"] < ext["all"]["atl10_rmse_m"]
    assert ext["thin"]["n"] > 10 and ext["thin"]["ours_rmse_m"] < ext["thin"]["atl10_rmse_m"]
    assert score["freeboard_ice"]["ratio"] > 1.0  # the surface adds error to the photon noise, never removes it
    assert 0.5 < score["sea_surface"]["z_rms"] < 2.0, score["sea_surface"]  # the uncertainty column is honest


def test_a_track_without_water_is_flagged_and_a_corrupt_one_fails_alone(day: dict[str, Any], tmp_path: Path) -> None:
    """A track where the classifier finds no water takes its leads from the photons (flagged so); one where the
    photons find none either has no freeboard (flag ``no_water``); a corrupt one fails alone."""
    from seaice_tasks.outputs import TableOutput, write_partition

    shutil.copytree(day["classified"], tmp_path / "lake")
    lake = Lake(tmp_path / "lake")
    dry, broken, good = lake.partitions(SEGMENTS_CLASSIFIED.name, DATE)

    def rewrite(column: str, values: Any) -> None:
        table = lake.read_table(dry)
        table = table.set_column(table.schema.get_field_index(column), table.schema.field(column), [values])
        write_partition(lake, dry, [TableOutput(dry, CLASSES_FILE, table)], None, {})

    cls = lake.read_table(dry).column("class").to_numpy()
    rewrite("class", np.where(cls == 2, 0, cls).astype(np.uint8))
    man = lake.require(broken)
    path = Path(lake.path(broken.relpath, str(man.version), CLASSES_FILE))
    path.write_bytes(b"PAR1 not a parquet file")
    summary = run_job(load_job("freeboard"), [], lake, None, day=DAY, whole_day=True)
    assert [f["track"] for f in summary["failed"]] == [f"{broken.granule}/{broken.beam}"]
    assert summary["flagged"] == [{"track": f"{dry.granule}/{dry.beam}", "flags": ["leads_from_photons"]}]
    keys = {(k.granule, k.beam) for k in lake.partitions(FREEBOARD.name, DATE)}
    assert keys == {(dry.granule, dry.beam), (good.granule, good.beam)}
    dry_key = FREEBOARD.key(date=DATE, granule=dry.granule, beam=dry.beam)
    dry_fb = lake.read_table(dry_key).to_pandas()
    assert dry_fb["freeboard_m"].notna().mean() > 0.9 and (dry_fb["surface_flag"] < 3).all()
    rewrite("water_vote", np.zeros(len(cls)))
    summary = run_job(load_job("freeboard"), [], lake, None, day=DAY, whole_day=True)
    assert {"track": f"{dry.granule}/{dry.beam}", "flags": ["no_water"]} in summary["flagged"]
    dry_fb = lake.read_table(dry_key).to_pandas()
    assert dry_fb["freeboard_m"].isna().all() and (dry_fb["surface_flag"] == 3).all()


def test_bad_config_exits_2_before_writing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(load_job("freeboard"), ["--date", DAY, "--lake", str(tmp_path / "lake"), "--no-spark",
                                          "--config", '{"surface": {"reference": "lowest"}}'])
    assert status == EXIT_BAD_ARGUMENT
    assert "reference must be one of" in capsys.readouterr().err
    assert not (tmp_path / "lake" / "freeboard").exists()


def test_validation_of_the_simulated_day(day: dict[str, Any]) -> None:
    lake: Lake = day["lake"]
    keys = lake.partitions(VALIDATION.name, DATE)
    assert len(keys) == 3 and day["validate"]["failed"] == []
    for key in keys:
        doc = json.loads(lake.open_file(key, VALIDATION_FILE))
        assert doc["flags"] == []
        assert doc["classes"]["agreement"] > 0.9  # truth classes vs the emulated ATL07 surface types
        assert doc["resolution"]["ours_per_km"] > 5 * doc["resolution"]["atl10_per_km"]
        assert doc["sea_surface"]["sections"] >= 2 and doc["freeboard"]["per_atl10_segment"]["n"] > 100
        assert abs(doc["freeboard"]["per_atl10_segment"]["mean_m"]) < 0.15
        assert lake.open_file(key, QUICKLOOK_FILE).startswith(b"\x89PNG")
    day_key = VALIDATION_DAY.key(date=DATE)
    report = json.loads(lake.open_file(day_key, VALIDATION_FILE))
    assert report["pooled"]["tracks"] == 3 and set(report["pooled"]["histograms"]) == {"ours_ice", "atl10"}
    assert "| freeboard - ATL10, per ATL10 segment |" in lake.open_file(day_key, VALIDATION_MD_FILE).decode()
    assert lake.open_file(day_key, HISTOGRAM_FILE).startswith(b"\x89PNG")


def test_freeboard_and_validation_files_are_the_same_for_any_chunk_size(day: dict[str, Any]) -> None:
    """Chunks cutting windows, leads, NASA segments and reference sections, or the track at once: every staged
    file (freeboard.parquet, validation.json, quicklook.png) and summary row is byte for byte the job's."""
    import uuid

    from seaice_tasks.outputs import stage_output
    from seaice_tasks.spark_jobs.runner import inventory_uris
    from seaice_tasks.storage import InputStore
    from seaice_tasks.surface.freeboard import FreeboardConfig, freeboard_track
    from seaice_tasks.surface.validate import ValidateConfig, validate_track
    from seaice_tasks.work import WorkContext, WorkResult

    lake: Lake = day["lake"]
    inputs = InputStore(str(day["sim"].catalog))
    uris = {kind: inventory_uris(lake, DATE, kind) for kind in ("ATL03", "ATL07", "ATL10")}
    key = lake.partitions(FREEBOARD.name, DATE)[0]
    granule, beam = str(key.granule), str(key.beam)
    rec = {"date": DAY, "granule": granule, "beam": beam, "atl03": next(u for u in uris["ATL03"] if granule in u),
           "atl07": companion_uri(granule, uris["ATL07"], "ATL07") or "",
           "atl10": companion_uri(granule, uris["ATL10"], "ATL10") or ""}
    vkey = VALIDATION.key(date=DATE, granule=granule, beam=beam)
    committed = {name: lake.open_file(k, name) for k, name in ((key, FREEBOARD_FILE), (vkey, VALIDATION_FILE),
                                                              (vkey, QUICKLOOK_FILE))}
    def check(ctx: WorkContext[Any], result: WorkResult, chunk_rows: int) -> None:
        for output in result.outputs:
            stage_output(lake, output, ctx.token, ctx.config)
            assert ctx.read_staged(output.key, output.name) == committed[output.name], (output.name, chunk_rows)
        lake.discard_staging(ctx.token)

    for chunk_rows in (0, 1500, 4999):
        fb_ctx = WorkContext(config=FreeboardConfig(), lake=lake, inputs=inputs, token=uuid.uuid4().hex)
        result = freeboard_track(fb_ctx, DAY, granule, beam, chunk_rows)
        check(fb_ctx, result, chunk_rows)
        assert result.rows[0] == {"granule": granule, "beam": beam, **lake.require(key).info}
        v_ctx = WorkContext(config=ValidateConfig(), lake=lake, inputs=inputs, token=uuid.uuid4().hex)
        check(v_ctx, validate_track(v_ctx, rec, chunk_rows), chunk_rows)


def test_missing_or_broken_nasa_products_are_flags(day: dict[str, Any], tmp_path: Path) -> None:
    lake: Lake = day["lake"]
    key = lake.partitions(FREEBOARD.name, DATE)[0]
    ours = lake.read_table(key).to_pandas()
    none = read_reference(None, None, str(key.beam))
    assert none.flags == ("no_atl07", "no_atl10")
    doc = compare_track(ours, none)
    assert doc["flags"] == ["no_atl07", "no_atl10"] and "sea_surface" not in doc
    assert doc["resolution"]["ours_per_km"] > 100
    bad = tmp_path / "ATL07-02_20191104221126_01300501_006_01.h5"
    bad.write_bytes(b"not hdf5")
    broken = read_reference(str(bad), str(day["sim"].atl10[0]), "gt9x")
    assert broken.flags[0].startswith("atl07 unusable:") and "atl10 unusable" in broken.flags[1]


def test_companion_granules_are_matched_by_pass_not_by_key() -> None:
    uris = ["c/ATL07-02_20191104190000_05940501_006_01.h5", "c/ATL07-02_20191104150000_05940501_006_01.h5",
            "c/ATL10-02_20191104190000_05940501_006_01.h5", "c/ATL07-02_20191104190000_05940601_006_01.h5"]
    assert companion_uri("20191104195311_05940510", uris, "ATL07") == uris[0]
    assert companion_uri("20191104195311_05940510", uris, "ATL10") == uris[2]
    assert companion_uri("20191104195311_05950510", uris, "ATL07") is None


def test_validation_on_the_real_atl07_layout(realdata: Path) -> None:
    """Release-003 ATL07 (real file): our rows built from its heights are matched and agree."""
    path = realdata / "icesat2" / REAL_ATL07
    atl07 = read_atl07(path, "gt3l")
    water = atl07_is_water(atl07["height_segment_type"], atl07["height_segment_ssh_flag"], 3)
    assert set(np.unique(water)) <= {-1, 0, 1} and (water == 0).any()
    x = np.arange(atl07["seg_dist_x"].min(), atl07["seg_dist_x"].max(), 2.0)
    order = np.argsort(atl07["seg_dist_x"].to_numpy())
    xs = atl07["seg_dist_x"].to_numpy()[order]
    h07 = atl07["height_segment_height"].to_numpy()[order]
    ok = np.isfinite(h07)
    nearest = np.clip(np.searchsorted(xs, x), 0, xs.size - 1)
    cls = np.where(water[order][nearest] == 1, 2, 0).astype(np.uint8)
    ours = pd.DataFrame({"x_atc_m": x, "h_cor_mean_m": np.interp(x, xs[ok], h07[ok]) + 0.05, "class": cls,
                         "surface_m": 0.0, "freeboard_m": np.interp(x, xs[ok], h07[ok])})
    ref = read_reference(str(path), None, "gt3l")
    doc = compare_track(ours, ref)
    assert doc["flags"] == ["no_atl10"]
    assert doc["datum"]["offset_m"] == pytest.approx(0.05, abs=0.05)
    assert doc["classes"]["matched"] > 300 and doc["classes"]["agreement"] > 0.8  # types 6-9 (dark leads) are neither
    assert doc["resolution"]["atl07_per_km"] > 1 and doc["resolution"]["ours_per_km"] > 400


@pytest.mark.parametrize("layout", ["current", "legacy"])
def test_validation_on_both_atl10_layouts(tmp_path: Path, layout: str) -> None:
    """Our freeboard equal to ATL10's: zero difference per segment and per reference section."""
    path = write_atl10(tmp_path, layout)  # type: ignore[arg-type]
    ref = read_reference(None, str(path), "gt1r")
    assert ref.flags == ("no_atl07",) and ref.atl10 is not None and ref.atl10_surface is not None
    a10 = ref.atl10.sort_values("seg_dist_x")
    x = np.arange(SEG_DIST_X0_M - 20.0, a10["seg_dist_x"].max() + 20.0, 2.0)
    fb = np.interp(x, a10["seg_dist_x"], a10["beam_fb_height"].fillna(0.3))
    near = np.abs(x[:, None] - a10["seg_dist_x"].to_numpy()[None, :]).argmin(axis=1)
    fb = a10["beam_fb_height"].to_numpy()[near]  # piecewise constant: each ATL10 segment's own value
    ours = pd.DataFrame({"x_atc_m": x, "h_cor_mean_m": fb, "class": np.zeros(x.size, np.uint8), "surface_m": 0.0,
                         "freeboard_m": fb})
    doc = compare_track(ours, ReferenceTrack(None, ref.atl10, ref.atl10_surface, None, ref.flags))
    per = doc["freeboard"]["per_atl10_segment"]
    assert per["n"] >= 10 and per["rmse_m"] == pytest.approx(0.0, abs=1e-6)
    assert doc["sea_surface"]["sections"] == 2
    assert doc["resolution"]["atl10_per_km"] == pytest.approx(1000.0 / SEGMENT_SPACING_M, rel=0.2)


def test_cli_freeboard_validate_and_plot(day: dict[str, Any], tmp_path: Path) -> None:
    from seaice_tasks.cli import main as cli

    shutil.copytree(day["classified"], tmp_path / "lake")
    lake = str(tmp_path / "lake")
    assert cli(["freeboard", "--date", DAY, "--lake", lake, "--no-spark"]) == 0
    assert _digests(Lake(lake)) == _digests(day["lake"])
    out = tmp_path / "png"
    assert cli(["plot", "--date", DAY, "--lake", lake, "--out", str(out)]) == 0  # before validation: drawn here
    assert len(list(out.glob("*_quicklook.png"))) == 3 and not list(out.glob("*histogram.png"))
    assert cli(["validate", "--date", DAY, "--lake", lake, "--no-spark"]) == 0
    assert cli(["plot", "--date", DAY, "--lake", lake, "--out", str(out)]) == 0
    assert len(list(out.glob("*_quicklook.png"))) == 3 and len(list(out.glob("*histogram.png"))) == 1
    assert cli(["plot", "--date", "2019-11-05", "--lake", lake, "--out", str(out)]) == 2


def _renamed(src: Path, folder: Path, product: str, start: dt.datetime, rgt: int) -> Path:
    """A copy of ``src`` under the name of another granule of ``product`` (start time, RGT)."""
    folder.mkdir(parents=True, exist_ok=True)
    g = parse_granule(src.name)
    name = f"{product}-02_{start:%Y%m%d%H%M%S}_{rgt:04d}{g.cycle:02d}01_{g.release:03d}_{g.revision:02d}.h5"
    return Path(shutil.copyfile(src, folder / name))


def _read_one(product: str, path: Path, beam: str) -> ReferenceTrack:
    return read_reference(str(path), None, beam) if product == "ATL07" else read_reference(None, str(path), beam)


@pytest.mark.parametrize("product", ["ATL07", "ATL10"])
def test_a_nasa_file_of_another_granule_under_this_granules_name_is_skipped(
        day: dict[str, Any], tmp_path: Path, product: str) -> None:
    src = Path((day["sim"].atl07 if product == "ATL07" else day["sim"].atl10)[0])
    key = day["lake"].partitions(FREEBOARD.name, DATE)[0]
    own = _read_one(product, src, str(key.beam))
    assert not [f for f in own.flags if f.startswith(product.lower())]  # under its own name: used
    g = parse_granule(src.name)
    other = _renamed(src, tmp_path, product, g.start + dt.timedelta(hours=2), g.rgt % 1387 + 1)
    ref = _read_one(product, other, str(key.beam))
    flag = next((f for f in ref.flags if f.startswith(product.lower())), "")
    assert flag.startswith(f"{product.lower()} skipped: {other} is another granule's file: "
                           f"its metadata names {src.name}")
    assert f"orbit_info/rgt is {g.rgt}, its name says {g.rgt % 1387 + 1}" in flag
    if product == "ATL07":
        assert ref.atl07 is None and ref.release is None
    else:
        assert ref.atl10 is None and ref.atl10_surface is None


def test_a_nasa_file_whose_segments_lie_outside_its_names_pass_is_skipped(tmp_path: Path) -> None:
    """No granule metadata to compare: the times of the beam's segments give it away."""
    bare = write_atl10(tmp_path, with_orbit_info=False)  # segments from 2019-11-04T19:53:11
    assert read_reference(None, str(bare), "gt1r").flags == ("no_atl07",)
    for start in (dt.datetime(2019, 11, 4, 21, 0, 0), dt.datetime(2019, 11, 4, 19, 55, 0)):
        late = _renamed(bare, tmp_path / start.strftime("%H%M"), "ATL10", start, 594)
        ref = read_reference(None, str(late), "gt1r")
        assert ref.flags == ("no_atl07", f"atl10 skipped: {late} is another granule's file: its segments span "
                             f"2019-11-04T19:53:11Z to 2019-11-04T19:53:11Z, its name starts "
                             f"{start:%Y-%m-%dT%H:%M:%S}Z") and ref.atl10 is None


def test_validate_records_the_skip_of_an_atl10_of_another_granule(day: dict[str, Any], tmp_path: Path) -> None:
    """The ATL10 of granule 20191104195311_05940510 put under the name of the day's granule's pass: the
    day's tracks are not compared with it; each track's flags name the file and what disagrees."""
    from seaice_tasks.catalog import run_discover
    from seaice_tasks.storage import InputStore

    shutil.copytree(day["lake"].path(), tmp_path / "lake")
    shutil.copytree(day["sim"].catalog, tmp_path / "catalog")
    own = next((tmp_path / "catalog").rglob("ATL10-*.h5"))
    assert parse_granule(own.name).rgt != 594
    own.unlink()
    write_atl10(own.parent, name=own.name)  # rgt 594, 2019-11-04T19:53:11: another granule's file
    run_discover(DAY, catalog=str(tmp_path / "catalog"), lake=str(tmp_path / "lake"))
    lake = Lake(tmp_path / "lake")
    val = run_job(load_job("validate"), [], lake, None, day=DAY, whole_day=True,
                  inputs=InputStore(str(tmp_path / "catalog")))
    keys = lake.partitions(VALIDATION.name, DATE)
    assert val["failed"] == [] and len(keys) == 3
    for key in keys:
        doc = json.loads(lake.open_file(key, VALIDATION_FILE))
        assert len(doc["flags"]) == 1 and doc["flags"][0].startswith(f"atl10 skipped: {own} is another granule's "
                                                                      "file: orbit_info/rgt is 594, its name says")
        assert "freeboard" not in doc and "atl10" not in doc["histograms"]  # not compared with the wrong track
        assert doc["classes"]["agreement"] > 0.9  # the ATL07 of the pass is still used
    pooled = json.loads(lake.open_file(VALIDATION_DAY.key(date=DATE), VALIDATION_FILE))["pooled"]
    assert len(pooled["flagged"]) == 3
