"""One track in along-track chunks: read with a halo and owned rows, written back in row groups.

A track -- one (date, granule, beam) partition of ``segments_2m`` or of a product made from it --
holds some 500,000 rows of 2 m per 1000 km.  A stage that works on it chunk by chunk keeps its
memory flat in the track's length:

* :func:`iter_chunks` cuts the rows, in along-track order, into chunks of ``chunk_rows`` rows.  A
  chunk **owns** rows ``[lo, hi)`` (row numbers of the whole track, from 0) and **holds** rows
  ``[start, stop)``: the owned rows, a halo of ``halo_m`` metres of ``x_atc_m`` on either side and
  then ``halo_rows`` more rows, so every owned row sees all the rows it depends on.  Every row is
  owned by exactly one chunk: per-row results of the owned rows, concatenated in chunk order, are
  the whole track's.  What reaches beyond any halo (an interpolation across a long stretch without
  leads, say) takes two passes: the first keeps small statistics (per window, per lead), the
  second computes the rows from them (the stage modules show how).
* a :class:`TrackSource` gives the rows: :class:`PartitionSource` streams the committed Parquet
  file(s) of a partition in record batches, its version pinned for every pass; :class:`FrameSource`
  wraps a table already in memory (the whole-track functions: one chunk).  Rows must come in
  ascending, finite ``x_atc_m`` (:class:`TrackOrderError` otherwise).
* :func:`row_groups` re-cuts the per-chunk output tables into row groups of
  :data:`TRACK_ROW_GROUP_ROWS` rows (the last one shorter), each column one contiguous array, for
  :func:`~seaice_tasks.outputs.stage_table_pieces` (without dictionaries: :data:`TRACK_USE_DICTIONARY`).
  The row groups depend on the rows only, never on ``chunk_rows``: a track's file is byte for byte
  the same for every chunk size, and for the whole track at once (the stages cut it the same way).
  :class:`BoundingBox` collects the GeoParquet ``bbox`` of the whole output in a first pass, so
  that every piece carries the file's.

Memory: the chunk with its halos, a pass's small statistics and the output row group being filled
(at most :data:`TRACK_ROW_GROUP_ROWS` rows, whatever the track's length; :func:`row_groups` holds
it in Arrow's own memory, not in the frames it came from).  Between chunks the C heap's free
memory goes back to the system (:func:`release_heap`).
"""

from __future__ import annotations

import abc
import ctypes
import dataclasses
import functools
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any, Final, Self

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from seaice_tasks.config import JsonConfig
from seaice_tasks.errors import ConfigError, InputError, StorageError
from seaice_tasks.storage import Lake, PartitionKey

__all__ = [
    "X_COLUMN",
    "DEFAULT_CHUNK_ROWS",
    "TRACK_ROW_GROUP_ROWS",
    "TRACK_USE_DICTIONARY",
    "ChunkedConfig",
    "TrackOrderError",
    "TrackSource",
    "FrameSource",
    "PartitionSource",
    "TrackChunk",
    "iter_chunks",
    "row_groups",
    "release_heap",
    "BoundingBox",
]

#: The along-track coordinate the rows are ordered by (m).
X_COLUMN: Final[str] = "x_atc_m"
#: Rows per chunk by default: about 65 km of 2 m segments (tens of MiB of working memory per stage; with
#: the freeboard's halo of 2 x 10,000 rows it holds about 53,000 rows at a time; docs/benchmarks.md, "Track memory").
DEFAULT_CHUNK_ROWS: Final[int] = 32_768
#: Rows per row group of the table files the track stages write (``classes.parquet``, ``freeboard.parquet``):
#: about 65 km of 2 m segments.  It fixes the files' layout (changing it changes their bytes, not their values)
#: and bounds the output a stage holds while writing; sizes and peaks of other sizes: docs/benchmarks.md,
#: "Track memory".
TRACK_ROW_GROUP_ROWS: Final[int] = 32_768
#: Whether those files dictionary-encode their columns: no.  Nearly every column of a track takes a new value
#: in every row (coordinates, times, heights), and a dictionary starts again in every row group: with it the
#: files of row groups of 32,768 to 262,144 rows are 7-18 % larger than one row group; without it they are
#: 9-10 % smaller than that, whatever the row group size (docs/benchmarks.md, "Track memory").
TRACK_USE_DICTIONARY: Final[bool] = False
#: Rows per record batch read from a Parquet file (at most; a chunk is assembled from batches).
BATCH_ROWS: Final[int] = 16_384
#: Read buffer of a column chunk (bytes): pages are read as they are decoded, not a whole column chunk at once.
READ_BUFFER_BYTES: Final[int] = 1 << 20


@dataclasses.dataclass(frozen=True)
class ChunkedConfig(JsonConfig):
    """Base of the configs of stages that read a track in along-track chunks.

    Attributes
    ----------
    chunk_rows : int
        Rows per chunk (:func:`iter_chunks`); 0: the whole track at once, in memory.  An
        execution setting: no output value depends on it, nor the layout of a file (the table
        files' row groups are cut by :data:`TRACK_ROW_GROUP_ROWS`).  The recorded config
        (manifests, the ``seaice`` metadata of files, ``config_hash``) lists it only when it is
        not the default, so the config hash is the one it was before the setting existed.
    """

    chunk_rows: int = DEFAULT_CHUNK_ROWS

    def __post_init__(self) -> None:
        if isinstance(self.chunk_rows, bool) or self.chunk_rows < 0:
            raise ConfigError(f"{type(self).__name__}.chunk_rows must be >= 0 (0: the whole track), "
                              f"got {self.chunk_rows!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary of the fields, ``chunk_rows`` only when it is not the default."""
        doc = super().to_dict()
        if self.chunk_rows == DEFAULT_CHUNK_ROWS:
            del doc["chunk_rows"]
        return doc

    def chunk_rows_for(self, rows: int) -> int:
        """Rows per chunk for a track of ``rows`` rows (the whole track for 0)."""
        return self.chunk_rows if self.chunk_rows > 0 else max(rows, 1)


class TrackOrderError(InputError):
    """The rows of a track are not in ascending, finite ``x_atc_m``: they cannot be read in chunks."""


class TrackSource(abc.ABC):
    """The rows of one track in along-track order, readable once per pass."""

    @property
    @abc.abstractmethod
    def num_rows(self) -> int:
        """Rows of the track."""

    @property
    @abc.abstractmethod
    def where(self) -> str:
        """What the rows are (named in errors)."""

    @abc.abstractmethod
    def column_names(self) -> list[str]:
        """The columns there are."""

    @abc.abstractmethod
    def blocks(self, columns: Sequence[str], rows: int) -> Iterator[pd.DataFrame]:
        """One pass over the rows: frames of ``columns`` of at most ``rows`` rows each (a source in memory: one)."""

    @abc.abstractmethod
    def empty(self, columns: Sequence[str]) -> pd.DataFrame:
        """A frame of ``columns`` without rows, with the types :meth:`blocks` gives."""


class FrameSource(TrackSource):
    """A track already in memory (a DataFrame in ascending ``x_atc_m``), e.g. for the whole-track functions."""

    def __init__(self, frame: pd.DataFrame, where: str = "track") -> None:
        self._frame = frame.reset_index(drop=True)
        self._where = where

    @property
    def num_rows(self) -> int:
        return len(self._frame)

    @property
    def where(self) -> str:
        return self._where

    def column_names(self) -> list[str]:
        return [str(c) for c in self._frame.columns]

    def blocks(self, columns: Sequence[str], rows: int) -> Iterator[pd.DataFrame]:
        del rows
        yield self._frame[list(columns)]

    def empty(self, columns: Sequence[str]) -> pd.DataFrame:
        return self._frame[list(columns)].iloc[0:0]


class PartitionSource(TrackSource):
    """The committed Parquet file(s) of one partition, in name order, streamed in record batches.

    The files of the version the manifest names when the source is opened are kept open until
    :meth:`close` (use it as a context manager), so every pass reads that one version.  Column
    chunks are read through a buffer of :data:`READ_BUFFER_BYTES`, a page at a time.

    Parameters
    ----------
    lake : Lake
        The lake.
    key : PartitionKey
        The partition (committed).
    name : str, optional
        One table file; default: every ``.parquet`` file of the partition, in name order (the part
        files of a ``segments_2m`` track follow its along-track order).

    Raises
    ------
    StorageError
        When the partition is not committed or has no such file.
    """

    def __init__(self, lake: Lake, key: PartitionKey, name: str | None = None) -> None:
        manifest = lake.require(key)
        names = [name] if name else [f.name for f in manifest.files if f.name.endswith(".parquet")]
        self._where = lake.partition_url(key) if name is None else lake.file_url(key, name)
        self._handles: list[Any] = []
        self._files: list[pq.ParquetFile] = []
        try:
            for n in names:
                if not any(f.name == n for f in manifest.files):
                    raise StorageError(f"{lake.partition_url(key)}: no file {n!r} in manifest")
                handle = lake.fs.open(lake.path(key.relpath, manifest.file_relpath(n)), "rb")
                self._handles.append(handle)
                self._files.append(pq.ParquetFile(handle, buffer_size=READ_BUFFER_BYTES))
        except BaseException:
            self.close()
            raise
        self._rows = sum(f.metadata.num_rows for f in self._files)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the files."""
        for handle in self._handles:
            handle.close()
        self._handles = []

    @property
    def num_rows(self) -> int:
        return int(self._rows)

    @property
    def where(self) -> str:
        return self._where

    def column_names(self) -> list[str]:
        return list(self._files[0].schema_arrow.names) if self._files else []

    def blocks(self, columns: Sequence[str], rows: int) -> Iterator[pd.DataFrame]:
        self._check(columns)
        for parquet in self._files:
            for batch in parquet.iter_batches(batch_size=rows, columns=list(columns), use_threads=False):
                yield batch.to_pandas()

    def empty(self, columns: Sequence[str]) -> pd.DataFrame:
        self._check(columns)
        frame: pd.DataFrame = self._files[0].schema_arrow.empty_table().select(list(columns)).to_pandas()
        return frame

    def _check(self, columns: Sequence[str]) -> None:
        if not self._files:
            raise InputError(self._where, "no Parquet file")
        missing = [c for c in columns if c not in self.column_names()]
        if missing:
            raise InputError(self._where, f"columns {missing} missing")


@dataclasses.dataclass(frozen=True)
class TrackChunk:
    """One chunk of a track: owned rows ``[lo, hi)``, held rows ``[start, stop)`` (row numbers of the track).

    Attributes
    ----------
    lo, hi : int
        Rows the chunk owns.
    start, stop : int
        Rows the chunk holds (the owned rows and their halos).
    rows : int
        Rows of the whole track.
    frame : pandas.DataFrame
        The held rows (``stop - start``), index from 0.
    """

    lo: int
    hi: int
    start: int
    stop: int
    rows: int
    frame: pd.DataFrame

    @property
    def own(self) -> slice:
        """The owned rows within :attr:`frame`."""
        return slice(self.lo - self.start, self.hi - self.start)

    @property
    def first(self) -> bool:
        """Whether the chunk starts the track."""
        return self.lo == 0

    @property
    def last(self) -> bool:
        """Whether the chunk ends the track."""
        return self.hi == self.rows

    def row_numbers(self) -> npt.NDArray[np.int64]:
        """Track row numbers of the held rows."""
        return np.arange(self.start, self.stop, dtype=np.int64)


class _Rows:
    """A rolling buffer of consecutive rows of one pass, with their ``x_atc_m`` checked."""

    def __init__(self, blocks: Iterator[pd.DataFrame], where: str) -> None:
        self._blocks = blocks
        self._where = where
        self._frames: deque[pd.DataFrame] = deque()
        self._xs: deque[npt.NDArray[np.float64]] = deque()
        self.lo = 0  # first buffered row
        self.hi = 0  # one past the last buffered row
        self.eof = False
        self._last_x = -np.inf

    def _read(self) -> bool:
        if self.eof:
            return False
        for block in self._blocks:
            if len(block) == 0:
                continue
            x = block[X_COLUMN].to_numpy(dtype=np.float64, na_value=np.nan)
            if not (np.isfinite(x).all() and x[0] >= self._last_x and bool(np.all(np.diff(x) >= 0))):
                raise TrackOrderError(self._where, f"rows not in ascending, finite {X_COLUMN} near row {self.hi}")
            self._last_x = float(x[-1])
            self._frames.append(block)
            self._xs.append(x)
            self.hi += len(block)
            return True
        self.eof = True
        return False

    def fill(self, row: int) -> None:
        """Read until rows up to ``row - 1`` are buffered (or the pass ends)."""
        while self.hi < row and self._read():
            pass

    def fill_beyond(self, x_m: float) -> None:
        """Read until a buffered row has ``x > x_m`` (or the pass ends)."""
        while (not self._xs or self._xs[-1][-1] <= x_m) and self._read():
            pass

    def x(self) -> npt.NDArray[np.float64]:
        """``x`` of the buffered rows."""
        return np.concatenate(list(self._xs)) if self._xs else np.empty(0)

    def frame(self, start: int, stop: int) -> pd.DataFrame:
        """The buffered rows ``[start, stop)`` as one frame, index from 0."""
        parts = []
        offset = self.lo
        for block in self._frames:
            a, b = max(start - offset, 0), min(stop - offset, len(block))
            if a < b:
                parts.append(block.iloc[a:b] if (a, b) != (0, len(block)) else block)
            offset += len(block)
        if len(parts) == 1:
            return parts[0].reset_index(drop=True)
        return pd.concat(parts, ignore_index=True)

    def drop_before(self, row: int) -> None:
        """Forget whole blocks before ``row``."""
        while self._frames and self.lo + len(self._frames[0]) <= row:
            self.lo += len(self._frames.popleft())
            self._xs.popleft()


def iter_chunks(source: TrackSource, columns: Sequence[str], chunk_rows: int, *, halo_rows: int = 0,
                halo_m: float = 0.0) -> Iterator[TrackChunk]:
    """One pass over a track in chunks of ``chunk_rows`` owned rows with their halos (module docstring).

    Parameters
    ----------
    source : TrackSource
        The rows, in ascending ``x_atc_m``.
    columns : sequence of str
        Columns to read (``x_atc_m`` is always read).
    chunk_rows : int
        Owned rows per chunk (>= 1; the last chunk may own fewer).
    halo_rows : int
        Rows held beyond the metre halo on either side.
    halo_m : float
        Metres of ``x_atc_m`` held beyond the owned rows on either side: every row with
        ``x_lo - halo_m <= x <= x_hi + halo_m`` (``x_lo``, ``x_hi``: the first and last owned row).

    Yields
    ------
    TrackChunk
        In along-track order; a track without rows gives one empty chunk.

    Raises
    ------
    TrackOrderError
        When the rows are not in ascending, finite ``x_atc_m``.
    ValueError
        For ``chunk_rows < 1`` or negative halos.
    """
    if chunk_rows < 1 or halo_rows < 0 or not halo_m >= 0:
        raise ValueError(f"iter_chunks: chunk_rows >= 1 and halos >= 0 required (got {chunk_rows}, "
                         f"{halo_rows}, {halo_m})")
    total = source.num_rows
    cols = list(dict.fromkeys([X_COLUMN, *columns]))
    rows = _Rows(source.blocks(cols, BATCH_ROWS), source.where)
    if total == 0:
        yield TrackChunk(0, 0, 0, 0, 0, source.empty(cols))
        return
    for lo in range(0, total, chunk_rows):
        hi = min(lo + chunk_rows, total)
        rows.fill(hi)
        if rows.hi < hi:
            raise InputError(source.where, f"{rows.hi} rows read, {total} expected")
        x = rows.x()
        x_lo, x_hi = x[lo - rows.lo], x[hi - 1 - rows.lo]
        start = max(rows.lo + int(np.searchsorted(x, x_lo - halo_m, side="left")) - halo_rows, 0)
        rows.fill_beyond(x_hi + halo_m)
        x = rows.x()
        stop = min(rows.lo + int(np.searchsorted(x, x_hi + halo_m, side="right")) + halo_rows, total)
        rows.fill(stop)
        yield TrackChunk(lo, hi, start, stop, total, rows.frame(start, stop))
        rows.drop_before(start)
        if chunk_rows >= BATCH_ROWS:  # small chunks leave little behind
            release_heap()
    rows.fill(total + 1)
    if rows.hi != total:
        raise InputError(source.where, f"{rows.hi} rows read, {total} expected")


@functools.cache
def _malloc_trim() -> Any:
    """glibc's ``malloc_trim`` (None elsewhere)."""
    try:
        return ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return None


def release_heap() -> None:
    """Give freed memory back to the system: Arrow's pool's and the C heap's (glibc; elsewhere Arrow's only).

    A chunk's frames and batches are freed when the next one is read, but the allocators keep
    freed memory mapped and the next chunk's arrays do not always fit in it: without this the
    resident set creeps up chunk by chunk.
    """
    pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def row_groups(pieces: Iterable[pa.Table], rows: int = TRACK_ROW_GROUP_ROWS) -> Iterator[pa.Table]:
    """Tables of ``rows`` rows (the last one shorter) from consecutive ``pieces``, each column one array.

    However the rows are cut into pieces, the tables are the same: row ``i`` of the pieces
    together is in table ``i // rows``.  A table of no rows is given only when all pieces are
    empty (the file of an empty track).  Memory: one row group (plus one column while it is joined).

    Raises
    ------
    ValueError
        For ``rows < 1``.
    """
    if rows < 1:
        raise ValueError(f"row_groups: rows >= 1 required, got {rows}")
    columns: list[list[pa.Array]] = []
    schema: pa.Schema | None = None
    held = 0
    given = False
    for piece in pieces:
        if schema is None:
            schema = piece.schema
            columns = [[] for _ in schema]
        done = 0
        while done < piece.num_rows:
            take = min(rows - held, piece.num_rows - done)
            for i, col in enumerate(piece.slice(done, take).columns):
                # a copy: the piece's arrays may share the memory of whole frames it came from
                columns[i].append(pa.concat_arrays(col.chunks))
            held += take
            done += take
            if held == rows:
                yield _joined(schema, columns)
                given = True
                held = 0
        del piece
    if schema is not None and (held or not given):
        yield _joined(schema, columns)


def _joined(schema: pa.Schema, columns: list[list[pa.Array]]) -> pa.Table:
    """The held column pieces as one table (each column one array); empties ``columns`` as it goes."""
    arrays = []
    for i, field in enumerate(schema):
        parts, columns[i] = columns[i], []
        arrays.append(parts[0] if len(parts) == 1 else pa.concat_arrays(parts) if parts
                      else pa.array([], type=field.type))
        del parts
    return pa.Table.from_arrays(arrays, schema=schema)


class BoundingBox:
    """The GeoParquet ``bbox`` of points seen chunk by chunk: that of :func:`~seaice_tasks.storage.geoparquet_table`."""

    def __init__(self) -> None:
        self._lo = np.array([np.inf, np.inf])
        self._hi = np.array([-np.inf, -np.inf])

    def add(self, lon_deg: npt.ArrayLike, lat_deg: npt.ArrayLike) -> None:
        """Take the points with finite lon and lat into account."""
        lon = np.asarray(lon_deg, dtype=np.float64)
        lat = np.asarray(lat_deg, dtype=np.float64)
        finite = np.isfinite(lon) & np.isfinite(lat)
        if finite.any():
            self._lo = np.minimum(self._lo, [lon[finite].min(), lat[finite].min()])
            self._hi = np.maximum(self._hi, [lon[finite].max(), lat[finite].max()])

    @property
    def bbox(self) -> list[float]:
        """``[lon min, lat min, lon max, lat max]`` (degrees), empty without any finite point."""
        if not np.isfinite(self._lo).all():
            return []
        return [float(self._lo[0]), float(self._lo[1]), float(self._hi[0]), float(self._hi[1])]
