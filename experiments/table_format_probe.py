"""What readers outside the Lake API see: today's lake, a Delta Lake table, an Iceberg table (issue 27).

``python experiments/table_format_probe.py --lake var/demo/lake --work var/experiments/table_formats``
(a research script; ``deltalake``, ``pyiceberg`` and ``duckdb`` are not in the stack: install them
into a scratch folder first, ``pip install --target var/experiments/pkgs deltalake pyiceberg duckdb``,
and pass ``--pkgs var/experiments/pkgs``):

1. **today's lake** (``--lake``, e.g. the demo's): ``pyarrow.dataset`` (hive) on the ``freeboard``
   product folder, and ``geopandas.read_parquet`` on one partition folder;
2. **Delta Lake** (delta-rs) and **Iceberg** (pyiceberg, SQL catalog on SQLite here, Postgres in the
   stack): a table partitioned by date / granule / beam, 6 partitions of 50,000 rows appended, then
   one partition replaced by 40,000 rows; the format's own reader, ``pyarrow.dataset`` and DuckDB's
   ``read_parquet`` on the table's folder (what a scientist pointing a tool at the folder gets), and
   DuckDB's own ``delta_scan``; the commit latency of each step.

Prints one line per measurement (docs/storage.md, "Readers outside the Lake API").
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds

PARTITIONS = [("2019-11-04", g, b) for g in ("g1", "g2") for b in ("gt1r", "gt2r", "gt3r")]
ROWS, REPLACED_ROWS = 50_000, 40_000
EXPECTED = (len(PARTITIONS) - 1) * ROWS + REPLACED_ROWS


def _table(date: str, granule: str, beam: str, n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table({"date": pa.array([date] * n), "granule": pa.array([granule] * n), "beam": pa.array([beam] * n),
                     "x": rng.random(n), "v": pa.array(np.full(n, seed, dtype=np.int64))})


def _folder_readers(folder: Path, duckdb: Any) -> str:
    rows = ds.dataset(folder, format="parquet", partitioning="hive").count_rows()
    out = f"pyarrow.dataset {rows:,}"
    if duckdb is not None:
        got = duckdb.connect().sql(f"select count(*) from read_parquet('{folder}/**/*.parquet', "
                                   "hive_partitioning=true)").fetchall()[0][0]
        out += f", duckdb read_parquet {got:,}"
    return out + f" (committed {EXPECTED:,})"


def probe_lake(lake: Path) -> None:
    """Today's layout: product folders hold the data under hidden ``_v-<hash>`` folders."""
    import geopandas as gpd

    product = lake / "freeboard"
    rows = ds.dataset(product, format="parquet", partitioning="hive").count_rows()
    print(f"today: pyarrow.dataset on {product}: {rows:,} rows")
    partition = next(product.glob("date=*/granule=*/beam=*"), None)
    if partition is not None:
        try:
            print(f"today: geopandas.read_parquet({partition}): {len(gpd.read_parquet(partition)):,} rows")
        except Exception as exc:
            print(f"today: geopandas.read_parquet({partition}): {type(exc).__name__}: {str(exc)[:120]}")


def probe_delta(work: Path, duckdb: Any) -> None:
    """Delta Lake: partition replace by predicate; readers of the folder."""
    from deltalake import DeltaTable, write_deltalake

    root = work / "delta"
    shutil.rmtree(root, ignore_errors=True)
    t0 = time.perf_counter()
    for date, granule, beam in PARTITIONS:
        write_deltalake(str(root), _table(date, granule, beam, ROWS, 1), mode="append",
                        partition_by=["date", "granule", "beam"])
    t1 = time.perf_counter()
    date, granule, beam = PARTITIONS[0]
    write_deltalake(str(root), _table(date, granule, beam, REPLACED_ROWS, 2), mode="overwrite",
                    predicate=f"date = '{date}' AND granule = '{granule}' AND beam = '{beam}'",
                    partition_by=["date", "granule", "beam"])
    t2 = time.perf_counter()
    own = DeltaTable(str(root)).to_pyarrow_table().num_rows
    print(f"delta: append {(t1 - t0) / len(PARTITIONS) * 1000:.0f} ms per partition, replace "
          f"{(t2 - t1) * 1000:.0f} ms; own reader {own:,}; folder: {_folder_readers(root, duckdb)}")
    if duckdb is not None:
        try:
            got = duckdb.connect().sql(f"select count(*) from delta_scan('{root}')").fetchall()[0][0]
            print(f"delta: duckdb delta_scan {got:,}")
        except Exception as exc:
            print(f"delta: duckdb delta_scan: {type(exc).__name__}: {str(exc).splitlines()[0][:140]}")


def probe_iceberg(work: Path, duckdb: Any) -> None:
    """Iceberg (SQL catalog): partition overwrite by filter; readers of the data folder."""
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.expressions import And, EqualTo
    from pyiceberg.transforms import IdentityTransform

    warehouse = (work / "iceberg").resolve()
    shutil.rmtree(warehouse, ignore_errors=True)
    warehouse.mkdir(parents=True)
    catalog = SqlCatalog("probe", uri=f"sqlite:///{warehouse}/catalog.db", warehouse=f"file://{warehouse}")
    catalog.create_namespace("seaice")
    table = catalog.create_table("seaice.freeboard", schema=_table("d", "g", "b", 1, 0).schema)
    with table.update_spec() as spec:
        for column in ("date", "granule", "beam"):
            spec.add_field(column, IdentityTransform(), column)
    t0 = time.perf_counter()
    for date, granule, beam in PARTITIONS:
        table.append(_table(date, granule, beam, ROWS, 1))
    t1 = time.perf_counter()
    date, granule, beam = PARTITIONS[0]
    table.overwrite(_table(date, granule, beam, REPLACED_ROWS, 2), overwrite_filter=And(
        EqualTo("date", date), EqualTo("granule", granule), EqualTo("beam", beam)))
    t2 = time.perf_counter()
    own = table.scan().to_arrow().num_rows
    data = warehouse / "seaice" / "freeboard" / "data"
    print(f"iceberg: append {(t1 - t0) / len(PARTITIONS) * 1000:.0f} ms per partition, replace "
          f"{(t2 - t1) * 1000:.0f} ms; own reader {own:,}; data folder: {_folder_readers(data, duckdb)}")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lake", type=Path, default=Path("var/demo/lake"))
    p.add_argument("--work", type=Path, default=Path("var/experiments/table_formats"))
    p.add_argument("--pkgs", type=Path, default=None, help="folder with deltalake, pyiceberg, duckdb (pip --target)")
    args = p.parse_args(argv)
    if args.pkgs is not None:
        sys.path.append(str(args.pkgs.resolve()))
    args.work.mkdir(parents=True, exist_ok=True)
    if (args.lake / "freeboard").is_dir():
        probe_lake(args.lake)
    try:
        import duckdb
    except ImportError:
        duckdb = None
    probe_delta(args.work, duckdb)
    probe_iceberg(args.work, duckdb)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
