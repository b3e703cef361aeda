"""The authors' hand-labelled Sentinel-2 class masks (jmiqra, 2048 x 2048 RGB PNG) -> class codes."""

from __future__ import annotations

import logging
from pathlib import Path

import fsspec
import numpy as np
import pytest
from PIL import Image

from seaice_tasks.constants import SeaIceClass
from seaice_tasks.errors import CorruptFileError, InputError
from seaice_tasks.io.s2 import class_counts, decode_label_png

REALDATA = Path(__file__).resolve().parents[2].parent / "shared" / "realdata"
LABELS = REALDATA / "sentinel2" / "jmiqra_seaice_labels"

THICK, THIN, WATER = int(SeaIceClass.THICK_ICE), int(SeaIceClass.THIN_ICE), int(SeaIceClass.OPEN_WATER)
#: Pixel count per class (thick 0 = red, thin 1 = blue, water 2 = green), pinned from the files.
GOLDEN_COUNTS = {
    "s2_seg_02.png": {THICK: 3191801, THIN: 231587, WATER: 770916},
    "s2_seg_17.png": {THICK: 3189773, THIN: 987510, WATER: 17021},
    "s2_seg_22.png": {THICK: 1189242, THIN: 2504218, WATER: 500844},
}
MASK_SHAPE = (2048, 2048)


def test_realdata_present() -> None:
    assert LABELS.is_dir(), f"real data folder missing: {LABELS}"


@pytest.mark.parametrize("name", sorted(GOLDEN_COUNTS))
def test_decode_real_masks(name: str) -> None:
    labels = decode_label_png(LABELS / name)
    assert labels.dtype == np.uint8 and labels.shape == MASK_SHAPE
    assert set(np.unique(labels).tolist()) == {THICK, THIN, WATER}
    assert class_counts(labels) == GOLDEN_COUNTS[name]
    assert sum(GOLDEN_COUNTS[name].values()) == MASK_SHAPE[0] * MASK_SHAPE[1]


def test_decode_matches_colours_pixelwise() -> None:
    path = LABELS / "s2_seg_17.png"
    rgb = np.asarray(Image.open(path).convert("RGB"))
    labels = decode_label_png(path)
    np.testing.assert_array_equal(labels == THICK, np.all(rgb == (255, 0, 0), axis=-1))
    np.testing.assert_array_equal(labels == THIN, np.all(rgb == (0, 0, 255), axis=-1))
    np.testing.assert_array_equal(labels == WATER, np.all(rgb == (0, 255, 0), axis=-1))


def test_other_colours_are_unlabeled(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rgb = np.array(
        [[[255, 0, 0], [0, 0, 255], [0, 255, 0]], [[0, 0, 0], [254, 0, 0], [255, 255, 255]]], dtype=np.uint8
    )
    path = tmp_path / "odd.png"
    Image.fromarray(rgb, mode="RGB").save(path)
    with caplog.at_level(logging.WARNING, logger="seaice_tasks.io.s2"):
        labels = decode_label_png(path)
    assert labels.tolist() == [[THICK, THIN, WATER], [255, 255, 255]]
    assert class_counts(labels) == {THICK: 1, THIN: 1, WATER: 1, 255: 3}
    assert any("3 of 6 pixels" in r.getMessage() for r in caplog.records)


def test_palette_and_rgba_pngs(tmp_path: Path) -> None:
    rgb = np.zeros((4, 4, 3), dtype=np.uint8)
    rgb[:2] = (255, 0, 0)
    rgb[2:] = (0, 255, 0)
    Image.fromarray(rgb, mode="RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=4).save(
        tmp_path / "p.png"
    )
    rgba = np.concatenate([rgb, np.full((4, 4, 1), 255, dtype=np.uint8)], axis=-1)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    expected = [[THICK] * 4] * 2 + [[WATER] * 4] * 2
    assert decode_label_png(tmp_path / "p.png").tolist() == expected
    assert decode_label_png(tmp_path / "a.png").tolist() == expected


def test_decode_via_fsspec_url() -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe("/labels/s2_seg_02.png", (LABELS / "s2_seg_02.png").read_bytes())
    try:
        labels = decode_label_png("memory:///labels/s2_seg_02.png")
        assert class_counts(labels) == GOLDEN_COUNTS["s2_seg_02.png"]
    finally:
        fs.rm("/labels", recursive=True)


def test_bad_label_files(tmp_path: Path) -> None:
    bad = tmp_path / "s2_seg_99.png"
    bad.write_text("not a png")
    with pytest.raises(CorruptFileError, match="not a readable image") as exc:
        decode_label_png(bad)
    assert str(bad) in str(exc.value)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes((LABELS / "s2_seg_02.png").read_bytes()[:5000])
    with pytest.raises(CorruptFileError) as exc2:
        decode_label_png(truncated)
    assert str(truncated) in str(exc2.value)
    with pytest.raises(InputError, match="no such file") as exc3:
        decode_label_png(tmp_path / "missing.png")
    assert str(tmp_path / "missing.png") in str(exc3.value)
