"""The product registry: key shapes, keys, file specs, and docs/products.md against the registry."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from seaice_tasks.errors import StorageError
from seaice_tasks.products import (
    KEY_SHAPES,
    PRODUCTS,
    S2_LABELS,
    SEGMENTS_2M,
    product,
    segment_part_name,
)
from seaice_tasks.storage import KEY_FIELDS, PartitionKey

DOC = Path(__file__).resolve().parents[2] / "docs" / "products.md"
DAY = dt.date(2019, 11, 4)
GRANULE = "20191104195311_05940510"
SCENE = "20191104T200456_T07CAN"


def _table(section: str) -> list[list[str]]:
    """Rows (cells without backticks) of the first Markdown table after a ``### section`` heading."""
    text = DOC.read_text()
    start = text.index(f"### {section}\n")
    rows = []
    for line in text[start:].splitlines()[1:]:
        if line.startswith("#"):
            break
        if line.startswith("|") and not line.startswith("|---"):
            rows.append([c.strip().replace("`", "") for c in line.strip("|").split("|")])
    return rows[1:]  # without the header


def test_doc_lists_exactly_the_registered_products() -> None:
    rows = {r[0]: r for r in _table("Products")}
    assert set(rows) == set(PRODUCTS)
    for name, (_, shape, files, schema, what) in rows.items():
        p = PRODUCTS[name]
        assert shape == p.shape.name, name
        assert [f.strip() for f in files.split(",")] == [f.name for f in p.files], name
        expected = (p.schema.metadata or {}).get(b"seaice_schema", b"-").decode() if p.schema else "-"
        assert schema == expected, name
        assert what == p.description, name


def test_doc_lists_exactly_the_key_shapes() -> None:
    rows = {r[0]: r for r in _table("Key shapes")}
    assert set(rows) == {s.name for s in KEY_SHAPES}
    for shape in KEY_SHAPES:
        _, fields, path = rows[shape.name]
        assert tuple(f.strip() for f in fields.split(",")) == shape.fields
        example = {f: "X" for f in shape.fields}
        key = PartitionKey("p", dt.date(2019, 1, 1) if "date" in example else None,
                           **{f: v for f, v in example.items() if f != "date"})
        documented = re.sub(r"=[A-Z]\b", "=X", path.replace("<product>", "p").rstrip("/"))
        assert key.relpath.replace("2019-01-01", "X") == documented


def test_keys_are_checked_against_the_shape() -> None:
    key = SEGMENTS_2M.key(date=DAY, granule=GRANULE, beam="gt2r")
    assert key.relpath == f"segments_2m/date=2019-11-04/granule={GRANULE}/beam=gt2r"
    assert S2_LABELS.key(date="2019-11-04", scene=SCENE).relpath == f"s2_labels/date=2019-11-04/scene={SCENE}"
    with pytest.raises(StorageError, match="track key needs"):
        SEGMENTS_2M.key(date=DAY, granule=GRANULE)
    with pytest.raises(StorageError, match="scene key needs"):
        S2_LABELS.key(date=DAY, granule=SCENE)  # a scene is not a granule (the old layout)


def test_partition_key_round_trips_every_shape() -> None:
    for shape in KEY_SHAPES:
        values = {f: ("2019-11-04" if f == "date" else f"v{k}") for k, f in enumerate(shape.fields)}
        key = PartitionKey("p", DAY if "date" in values else None, **{f: v for f, v in values.items() if f != "date"})
        assert PartitionKey.from_relpath(key.relpath) == key
        assert PartitionKey.from_dict(key.to_dict()) == key
        assert key.fields == shape.fields
    assert set(KEY_FIELDS) == {f for s in KEY_SHAPES for f in s.fields}


def test_partition_dict_keeps_the_format_1_layout() -> None:
    """Granule and track keys serialise as before (``item``), so their files stay byte-identical."""
    key = SEGMENTS_2M.key(date=DAY, granule=GRANULE, beam="gt2r")
    assert key.to_dict() == {"stage": "segments_2m", "date": "2019-11-04", "item": GRANULE, "beam": "gt2r"}
    scene = S2_LABELS.key(date=DAY, scene=SCENE).to_dict()
    assert scene == {"stage": "s2_labels", "date": "2019-11-04", "item": None, "beam": None, "scene": SCENE}


def test_bad_partition_paths_are_errors() -> None:
    bad_paths = ("segments_2m", "segments_2m/granule", "x/date=2019-13-45", "x/colour=red",
                 "x/date=2019-11-04/date=2019-11-05")
    for bad in bad_paths:
        with pytest.raises(StorageError):
            PartitionKey.from_relpath(bad)
    with pytest.raises(StorageError, match="no key field"):
        PartitionKey("x", None)


def test_file_specs() -> None:
    assert SEGMENTS_2M.file(segment_part_name(12)).schema is SEGMENTS_2M.schema
    assert not SEGMENTS_2M.file("part-00000.parquet").matches("part-.parquet")
    with pytest.raises(StorageError, match="no file"):
        S2_LABELS.file("labels.png")
    with pytest.raises(StorageError, match="unknown product"):
        product("thickness")
    assert product("s2_labels") is S2_LABELS
