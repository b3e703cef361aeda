"""Arrow schemas of every table that crosses a stage boundary, with units in field metadata.

Each field carries ``unit`` and ``description`` metadata; :func:`validate_table` is called on
write (storage) and may be called on read, so a stage never hands on a table of the wrong shape.
"""

from __future__ import annotations

from typing import Final

import pyarrow as pa

from seaice_tasks.errors import SchemaError

__all__ = [
    "field",
    "validate_table",
    "units_of",
    "INVENTORY_SCHEMA",
    "SCHEMAS",
]


def field(name: str, type_: pa.DataType, unit: str, description: str, *, nullable: bool = True) -> pa.Field:
    """An Arrow field with ``unit`` and ``description`` metadata.

    Examples
    --------
    >>> field("h_m", pa.float32(), "m", "height").metadata[b"unit"]
    b'm'
    """
    return pa.field(name, type_, nullable=nullable, metadata={"unit": unit, "description": description})


def units_of(schema: pa.Schema) -> dict[str, str]:
    """Mapping column -> unit of a schema built with :func:`field`."""
    return {f.name: (f.metadata or {}).get(b"unit", b"").decode() for f in schema}


def validate_table(table: pa.Table, schema: pa.Schema, *, where: str) -> pa.Table:
    """Check and cast ``table`` to ``schema`` (column names, order, safe casts, nulls).

    Parameters
    ----------
    table : pyarrow.Table
        Table to check.
    schema : pyarrow.Schema
        Expected schema (field metadata is attached to the result).
    where : str
        File or stage named in errors.

    Raises
    ------
    SchemaError
        On missing or extra columns, an unsafe cast, or nulls in a non-nullable column.
    """
    names = set(table.column_names)
    expected = [f.name for f in schema]
    missing = [n for n in expected if n not in names]
    extra = sorted(names - set(expected))
    if missing or extra:
        raise SchemaError(f"{where}: columns differ from schema (missing {missing}, extra {extra})")
    original_meta = dict(table.schema.metadata or {})
    table = table.select(expected)
    for f in schema:
        if not f.nullable and table.column(f.name).null_count:
            raise SchemaError(f"{where}: column {f.name} has nulls but is not nullable")
    try:
        table = table.cast(schema, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
        raise SchemaError(f"{where}: cannot cast to schema ({exc})") from exc
    meta = original_meta
    meta.update(schema.metadata or {})
    return table.replace_schema_metadata(meta or None)


#: One raw input of a day, as found by discovery in a catalog (stage ``inventory``).
INVENTORY_SCHEMA: Final[pa.Schema] = pa.schema(
    [
        field("kind", pa.string(), "", "ATL03, ATL07, ATL10 or S2", nullable=False),
        field("uri", pa.string(), "", "URL or absolute path of the file (S2: folder of band files)",
              nullable=False),
        field("item", pa.string(), "", "granule key YYYYMMDDhhmmss_RRRRCCSS or S2 scene key", nullable=False),
        field("start_utc", pa.timestamp("us", tz="UTC"), "UTC", "acquisition start from the name",
              nullable=False),
        field("rgt", pa.int16(), "", "ICESat-2 reference ground track"),
        field("cycle", pa.int16(), "", "ICESat-2 orbit cycle"),
        field("region", pa.int8(), "", "ICESat-2 granule region"),
        field("release", pa.int16(), "", "ICESat-2 product release"),
        field("tile", pa.string(), "", "Sentinel-2 MGRS tile (without T)"),
        field("size_bytes", pa.int64(), "byte", "file size (S2: sum of the band files)", nullable=False),
    ],
    metadata={"seaice_schema": "inventory/1"},
)

#: Registry by stage name, documented in docs/products.md.
SCHEMAS: Final[dict[str, pa.Schema]] = {"inventory": INVENTORY_SCHEMA}
