"""The writer layer: what stages hand over to be written, and the one place that writes it.

Stages compute and return outputs -- :class:`TableOutput`, :class:`RasterOutput`,
:class:`BytesOutput`, each naming its partition key and file name -- and never write into the
lake themselves (a table too long to hold at once is streamed into its staged file by
:func:`stage_table_pieces`, which checks it the same way, and handed over as a
:class:`StagedOutput`).  The job runner stages them (:func:`stage_output`, on the executor that
computed them) and commits partitions on the driver; :func:`write_partition` does both in one
process (tests, experiments).  Every file is checked against its product in
:mod:`seaice_tasks.products`: a table against its Arrow schema, a raster against its dtype, and
the product's nodata, colour table and tags are applied here, so two stages writing the same
product cannot disagree about its files.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from seaice_tasks.config import JsonConfig
from seaice_tasks.errors import SchemaError
from seaice_tasks.products import product
from seaice_tasks.storage import FileEntry, Lake, Manifest, PartitionKey, PartitionWriter

__all__ = [
    "TableOutput",
    "RasterOutput",
    "BytesOutput",
    "StagedOutput",
    "Output",
    "stage_table_pieces",
    "stage_into",
    "stage_output",
    "write_partition",
]


@dataclasses.dataclass(frozen=True)
class TableOutput:
    """An Arrow table for a table file of a product (validated against the product's schema)."""

    key: PartitionKey
    name: str
    table: pa.Table
    #: Config recorded in the file and its partition (None: the job's config).
    config: JsonConfig | None = None


@dataclasses.dataclass(frozen=True)
class RasterOutput:
    """A (rows, cols) or (bands, rows, cols) array for a COG file of a product.

    Attributes
    ----------
    crs : str or object
        CRS of the grid (WKT, ``EPSG:xxxx`` or a rasterio CRS).
    transform : tuple of float
        Affine coefficients ``(a, b, c, d, e, f)`` of the grid.
    tags : tuple of (str, str)
        Per-file GDAL tags, written after the product's own tags.
    """

    key: PartitionKey
    name: str
    array: npt.NDArray[Any]
    crs: Any
    transform: tuple[float, ...]
    tags: tuple[tuple[str, str], ...] = ()
    config: JsonConfig | None = None


@dataclasses.dataclass(frozen=True)
class BytesOutput:
    """Bytes of an image or JSON file of a product, or a ``scratch`` file.

    A scratch file (``scratch=True``) is staged for a later pass of the same job to read
    (:meth:`seaice_tasks.work.WorkContext.read_staged`) and is never committed; its name need not
    be a file of the product.
    """

    key: PartitionKey
    name: str
    data: bytes
    config: JsonConfig | None = None
    scratch: bool = False


@dataclasses.dataclass(frozen=True)
class StagedOutput:
    """A table file a work item already staged under the job's token (:func:`stage_table_pieces`)."""

    key: PartitionKey
    name: str
    entry: FileEntry
    #: The config recorded in the file when it was staged (informational; nothing is written again).
    config: JsonConfig | None = None


Output = TableOutput | RasterOutput | BytesOutput | StagedOutput


def stage_into(writer: PartitionWriter, out: Output) -> FileEntry:
    """Stage one output in ``writer`` (its key must be the output's), checked against the product.

    Raises
    ------
    SchemaError
        When a table does not fit the product's schema, a raster has another dtype, or the
        file kind is not the product's.
    StorageError
        When the product has no such file.
    """
    if out.key != writer.key:
        raise SchemaError(f"{out.name}: output of {out.key.relpath} staged into {writer.key.relpath}")
    if isinstance(out, BytesOutput) and out.scratch:
        return writer.write_bytes(out.name, out.data)
    spec = product(out.key.stage).file(out.name)
    where = writer.lake.file_url(out.key, out.name)
    if isinstance(out, StagedOutput):
        if spec.kind != "table" or out.entry.name != out.name:
            raise SchemaError(f"{where}: a staged table given for a {spec.kind} file")
        return out.entry
    if isinstance(out, TableOutput):
        if spec.kind != "table":
            raise SchemaError(f"{where}: a table given for a {spec.kind} file")
        return writer.write_table(out.name, out.table, spec.schema)
    if isinstance(out, RasterOutput):
        if spec.raster is None:
            raise SchemaError(f"{where}: a raster given for a {spec.kind} file")
        if np.dtype(out.array.dtype).name != spec.raster.dtype:
            raise SchemaError(f"{where}: raster dtype {out.array.dtype} is not the product's {spec.raster.dtype}")
        from affine import Affine

        return writer.write_cog(out.name, out.array, crs=out.crs, transform=Affine(*out.transform[:6]),
                                nodata=spec.raster.nodata, colormap=spec.raster.colormap,
                                tags={**dict(spec.raster.tags), **dict(out.tags)})
    if spec.kind in ("table", "raster"):
        raise SchemaError(f"{where}: bytes given for a {spec.kind} file")
    return writer.write_bytes(out.name, out.data)


def stage_output(lake: Lake, out: Output, token: str, config: JsonConfig | Mapping[str, Any] | None) -> FileEntry:
    """Stage one output under a job's ``token`` (executor side; the driver adopts and commits).

    ``config`` is the job's config, recorded in the file unless the output carries its own.
    """
    writer = lake.writer(out.key, out.config if out.config is not None else config, token=token)
    return stage_into(writer, out)


def stage_table_pieces(lake: Lake, key: PartitionKey, name: str, pieces: Iterable[pa.Table], token: str,
                       config: JsonConfig | Mapping[str, Any] | None, *,
                       use_dictionary: bool = True) -> StagedOutput:
    """Stream a table file of a product into the staging of a job's ``token``, piece by piece.

    Every piece is checked against the product's schema as a :class:`TableOutput` is, and
    written as the file's next row group
    (:meth:`~seaice_tasks.storage.PartitionWriter.write_table_pieces`; pieces of the default
    row group size give the bytes one :class:`TableOutput` of their concatenation gives;
    ``use_dictionary`` False: no column dictionary-encoded).  ``config`` is what
    :func:`stage_output` would record (the job's).  Return the result as an output of the work
    item; the driver adopts and commits it like any other.

    Raises
    ------
    SchemaError
        When the file is not a table of the product or a piece does not fit its schema.
    """
    spec = product(key.stage).file(name)
    if spec.kind != "table":
        raise SchemaError(f"{lake.file_url(key, name)}: table pieces given for a {spec.kind} file")
    writer = lake.writer(key, config, token=token)
    entry = writer.write_table_pieces(name, pieces, spec.schema, use_dictionary=use_dictionary)
    return StagedOutput(key, name, entry, config if isinstance(config, JsonConfig) else None)


def write_partition(
    lake: Lake,
    key: PartitionKey,
    outputs: Sequence[Output],
    config: JsonConfig | Mapping[str, Any] | None,
    info: Mapping[str, Any] | None = None,
) -> Manifest:
    """Stage ``outputs`` of one partition and commit it in this process (manifest last)."""
    with lake.writer(key, config) as writer:
        for out in outputs:
            stage_into(writer, out)
        writer.info = dict(info or {})
    return lake.require(key)
