"""``seaice demo``: the embedded default day through the daily DAG, then a summary.

The demo builds a catalog folder from the real sample granules in ``../shared/realdata``
(linked under their original NSIDC granule names), runs ``airflow dags test seaice_daily`` for
each demo day with a private Airflow home (SQLite metadata) and lake, and prints what the run
committed and what each input holds.  Everything it writes stays under ``--workdir``
(default ``var/demo``, git-ignored).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Final

from seaice_tasks.orchestration import airflow_env, realdata_folder
from seaice_tasks.storage import Lake, PartitionKey

__all__ = ["DEMO_DAYS", "REAL_CATALOG", "build_real_catalog", "run_demo"]

log = logging.getLogger(__name__)

#: Real files linked into the demo catalog: (file in realdata, name in the catalog).  The
#: ATL03 sample is a Harmony subset of ATL03_20181014002445_02350104_006_02.h5 (SOURCES.md).
REAL_CATALOG: Final[tuple[tuple[str, str], ...]] = (
    ("icesat2/harmony_ATL03_gt1l.h5", "icesat2/ATL03_20181014002445_02350104_006_02.h5"),
    ("icesat2/icepyx_processed_ATL07-01_20190222003738_08490201_003_02.h5",
     "icesat2/processed_ATL07-01_20190222003738_08490201_003_02.h5"),
    ("icesat2/icepyx_processed_ATL07-01_20190225115500_09020201_003_02.h5",
     "icesat2/processed_ATL07-01_20190225115500_09020201_003_02.h5"),
    ("icesat2/icepyx_processed_ATL07-01_20190226002919_09100201_003_02.h5",
     "icesat2/processed_ATL07-01_20190226002919_09100201_003_02.h5"),
)
#: Days the demo runs (those of the real granules above).
DEMO_DAYS: Final[tuple[str, ...]] = ("2018-10-14", "2019-02-26")
AIRFLOW_TIMEOUT_S: Final[int] = 600


def build_real_catalog(catalog: Path) -> list[Path]:
    """Link the real sample granules into ``catalog`` under their granule names."""
    src_root = realdata_folder()
    if not src_root.is_dir():
        raise FileNotFoundError(f"{src_root}: shared real data not found (set SEAICE_REALDATA)")
    made = []
    for src, name in REAL_CATALOG:
        dst = catalog / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.is_symlink() or dst.exists():
            dst.unlink()
        dst.symlink_to((src_root / src).resolve())
        made.append(dst)
    return made


def _airflow_bin() -> str:
    candidate = Path(sys.executable).with_name("airflow")
    return str(candidate) if candidate.exists() else (shutil.which("airflow") or "airflow")


def run_demo(workdir: str | os.PathLike[str] = "var/demo", date: str | None = None) -> int:
    """Run the demo; returns the process exit status (0 on success)."""
    from seaice_tasks.cli import format_summary, inspect_path

    wd = Path(workdir).resolve()
    catalog, lake_dir, home = wd / "catalog", wd / "lake", wd / "airflow"
    build_real_catalog(catalog)
    env = airflow_env(home, extra={"SEAICE_LAKE": str(lake_dir), "SEAICE_CATALOG": str(catalog)})
    airflow = _airflow_bin()
    print(f"seaice demo: Airflow home {home}, catalog {catalog}, lake {lake_dir}", flush=True)
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True,
                   timeout=AIRFLOW_TIMEOUT_S)
    days = [date] if date else list(DEMO_DAYS)
    logging.getLogger("seaice_tasks").setLevel(logging.ERROR)  # summaries list the warnings
    lake = Lake(lake_dir)
    for day in days:
        print(f"seaice demo: airflow dags test seaice_daily {day}", flush=True)
        proc = subprocess.run([airflow, "dags", "test", "seaice_daily", day], env=env,
                              capture_output=True, text=True, timeout=AIRFLOW_TIMEOUT_S)
        (wd / f"dags_test_{day}.log").write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            print(proc.stdout[-4000:] + proc.stderr[-4000:], file=sys.stderr)
            print(f"seaice demo: DAG run for {day} failed (log: {wd / f'dags_test_{day}.log'})",
                  file=sys.stderr)
            return proc.returncode
        manifest = lake.require(PartitionKey("inventory", dt.date.fromisoformat(day)))
        print(f"\n== {day}: inventory committed at {lake.partition_url(manifest.key)}")
        print(f"   inputs by kind: {manifest.info['counts']}")
        for skip in manifest.info["skipped"]:
            print(f"   skipped: {skip['uri']}: {skip['reason']}")
        table = lake.read_table(manifest.key).to_pandas()
        for uri in table["uri"]:
            print(format_summary(inspect_path(uri)))
    print(f"\nseaice demo: done; outputs under {lake_dir}")
    return 0
