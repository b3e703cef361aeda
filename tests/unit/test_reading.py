"""seaice_tasks.read: a product's committed rows, once, with geometry; also while a partition is committed again."""

from __future__ import annotations

import functools
import hashlib
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

import seaice_tasks
from seaice_tasks.errors import ConfigError
from seaice_tasks.outputs import TableOutput, write_partition
from seaice_tasks.products import CLASSES_FILE, SEGMENTS_CLASSIFIED
from seaice_tasks.reading import read, table_products
from seaice_tasks.storage import Lake
from tests.unit.test_track_chunks import DAY, GRANULE, classified_table, track

#: Rounds of the committer while a reader reads.
COMMITS = 12


def _commit(lake: Lake, beam: str, n: int, seed: int = 0) -> None:
    key = SEGMENTS_CLASSIFIED.key(date=DAY, granule=GRANULE, beam=beam)
    write_partition(lake, key, [TableOutput(key, CLASSES_FILE, classified_table(track(n, seed=seed), beam))], None)


def _digest(values: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(values).tobytes()).hexdigest()


@pytest.fixture()
def lake(tmp_path: Path) -> Lake:
    lake = Lake(tmp_path / "lake")
    _commit(lake, "gt1r", 400)
    _commit(lake, "gt2r", 300, seed=1)
    return lake


def test_read_gives_the_committed_rows_with_keys_and_geometry(lake: Lake) -> None:
    frame = seaice_tasks.read(str(lake.root), "segments_classified", DAY)
    assert len(frame) == 700 and str(frame.crs) == "EPSG:4326"
    assert list(frame.columns[:3]) == ["date", "granule", "beam"]
    assert set(frame["date"]) == {DAY} and frame["beam"].tolist() == ["gt1r"] * 400 + ["gt2r"] * 300
    committed = lake.read_table(SEGMENTS_CLASSIFIED.key(date=DAY, granule=GRANULE, beam="gt2r")).to_pandas()
    got = frame[frame["beam"] == "gt2r"]
    np.testing.assert_array_equal(got["x_atc_m"].to_numpy(), committed["x_atc_m"].to_numpy())
    np.testing.assert_allclose(got.geometry.x.to_numpy(), committed["lon_deg"].to_numpy())
    # a partition committed again: its new rows, never the superseded ones
    _commit(lake, "gt1r", 250, seed=2)
    assert len(read(str(lake.root), "segments_classified", [DAY])) == 550
    # days: a range, every day, a day without data
    assert len(read(str(lake.root), "segments_classified", "2019-11-03/2019-11-05")) == 550
    assert len(read(str(lake.root), "segments_classified")) == 550
    assert len(read(str(lake.root), "segments_classified", "2019-11-05")) == 0


def test_read_filters_by_bbox_and_columns(lake: Lake) -> None:
    whole = read(str(lake.root), "segments_classified", DAY)
    lon, lat = whole.geometry.x.to_numpy(), whole.geometry.y.to_numpy()
    box = (float(np.median(lon)), float(lat.min()), float(lon.max()), float(lat.max()))
    inside = read(str(lake.root), "segments_classified", DAY, bbox=box)
    assert 0 < len(inside) < len(whole) and len(inside) == int((lon >= box[0]).sum())
    narrow = read(str(lake.root), "segments_classified", DAY, columns=["class", "x_atc_m"])
    assert list(narrow.columns) == ["date", "granule", "beam", "x_atc_m", "class", "geometry"]


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"product": "s2_labels"}, "'s2_labels' is not a table product; known: "),
    ({"product": "nope"}, "'nope' is not a table product"),
    ({"dates": "2019-02-30"}, "'2019-02-30' is not a day"),
    ({"dates": "2019-11-05/2019-11-04"}, "ends before it starts"),
    ({"bbox": (1.0, 2.0, 0.0, 3.0)}, "bbox must be"),
    ({"bbox": ("west", "south", "east", "north")}, "bbox must be"),
    ({"columns": ["height"]}, r"no column\(s\) \['height'\]"),
])
def test_bad_arguments_are_one_line(lake: Lake, kwargs: dict[str, object], match: str) -> None:
    args = {"product": "segments_classified", "dates": DAY, **kwargs}
    with pytest.raises(ConfigError, match=match):
        read(str(lake.root), str(args.pop("product")), args.pop("dates"), **args)  # type: ignore[arg-type]


def test_a_missing_lake_is_an_error_not_an_empty_frame(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"lake_url .*no lake there"):
        read(str(tmp_path / "none"), "freeboard", DAY)
    assert "freeboard" in table_products() and "s2_labels" not in table_products()


def read_while_committing(commits: Sequence[Callable[[], None]], read_once: Callable[[], None],
                          min_reads: int) -> int:
    """Run ``commits`` in turn on a thread while calling ``read_once`` in a loop until they are done (and at least
    ``min_reads`` times); a committer's error fails the test.  The number of reads begun while commits ran."""
    done = threading.Event()
    errors: list[BaseException] = []

    def committer() -> None:
        try:
            for commit in commits:
                commit()
        except BaseException as exc:  # reported by the test
            errors.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=committer)
    thread.start()
    reads = during = 0
    while not done.is_set() or reads < min_reads:
        during += not done.is_set()
        read_once()
        reads += 1
    thread.join()
    assert not errors, errors
    return during


def test_a_reader_sees_one_committed_version_while_the_partition_is_committed_again(lake: Lake) -> None:
    """A committer replaces gt1r in a loop (400 and 250 rows in turn); every read holds one of the two versions
    of gt1r, whole (row count and checksum of x_atc_m), and gt2r unchanged."""
    versions = {n: _digest(classified_table(track(n, seed=s), "gt1r").column("x_atc_m").to_numpy())
                for n, s in ((400, 0), (250, 2))}
    seen = set()

    def read_once() -> None:
        frame = read(str(lake.root), "segments_classified", DAY)
        gt1r = frame[frame["beam"] == "gt1r"]
        assert len(gt1r) in versions and _digest(gt1r["x_atc_m"].to_numpy()) == versions[len(gt1r)]
        assert (frame["beam"] == "gt2r").sum() == 300
        seen.add(len(gt1r))

    commits = [functools.partial(_commit, lake, "gt1r", *((250, 2) if i % 2 == 0 else (400, 0)))
               for i in range(COMMITS)]
    during = read_while_committing(commits, read_once, min_reads=3)
    assert during >= 2 and seen <= set(versions)  # reads overlapped the commits
