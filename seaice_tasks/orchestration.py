"""Environment of an embedded Airflow (demo, tests): home, DAG folder, metadata DB, limits.

Nothing here imports Airflow; the functions build the environment for ``airflow`` subprocesses.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Final

__all__ = [
    "repo_root",
    "dags_folder",
    "plugins_folder",
    "realdata_folder",
    "airflow_env",
    "spark_connection",
    "AIRFLOW_PARALLELISM",
    "POOLS",
    "write_pools_file",
    "DEFAULT_SPARK_MASTER",
]

#: Task slots of the embedded Airflow: the machine has two cores.
AIRFLOW_PARALLELISM: Final[int] = 4
#: Airflow pools the DAGs use: name -> (slots, description).  ``spark`` bounds the concurrent
#: spark-submits of all runs (two jobs of a day run side by side on two cores); ``dgx`` is the
#: GPU training host (one training at a time).
POOLS: Final[dict[str, tuple[int, str]]] = {
    "spark": (2, "Spark jobs (concurrent spark-submits)"),
    "dgx": (1, "GPU training host"),
}
#: Spark master of the embedded ``spark_default`` connection.
DEFAULT_SPARK_MASTER: Final[str] = "local[*]"


def spark_connection(master: str = DEFAULT_SPARK_MASTER) -> str:
    """``AIRFLOW_CONN_SPARK_DEFAULT`` value for a master (``local[*]``, ``spark://host:7077``)."""
    return json.dumps({"conn_type": "spark", "host": master})


def write_pools_file(path: str | os.PathLike[str]) -> Path:
    """Write ``POOLS`` as the JSON that ``airflow pools import <path>`` reads; returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({name: {"slots": slots, "description": text, "include_deferred": False}
                               for name, (slots, text) in POOLS.items()}, indent=2) + "\n")
    return out


def repo_root() -> Path:
    """The source checkout that holds this package (``dags/`` lives beside it)."""
    return Path(__file__).resolve().parents[1]


def dags_folder() -> Path:
    """Folder of the project's DAG files (``$SEAICE_DAGS_FOLDER`` or ``<repo>/dags``)."""
    return Path(os.environ.get("SEAICE_DAGS_FOLDER") or repo_root() / "dags")


def plugins_folder() -> Path:
    """Folder of the project's Airflow plugins (``$SEAICE_PLUGINS_FOLDER`` or ``<repo>/plugins``)."""
    return Path(os.environ.get("SEAICE_PLUGINS_FOLDER") or repo_root() / "plugins")


def realdata_folder() -> Path:
    """The shared real sample data (``$SEAICE_REALDATA`` or ``<repo>/../shared/realdata``)."""
    return Path(os.environ.get("SEAICE_REALDATA") or repo_root().parent / "shared" / "realdata")


def airflow_env(
    home: str | os.PathLike[str],
    *,
    sql_alchemy_conn: str | None = None,
    extra: Mapping[str, str] | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Environment for an ``airflow`` subprocess with its own home and metadata DB.

    Parameters
    ----------
    home : path
        ``AIRFLOW_HOME``; created if missing.
    sql_alchemy_conn : str, optional
        Metadata DB URL; default SQLite in ``home`` (Postgres:
        ``postgresql+psycopg2://postgres@127.0.0.1:5432/<db>``).
    extra : mapping, optional
        More variables (``SEAICE_LAKE``, ``SEAICE_CATALOG`` ...).
    base : mapping, optional
        Starting environment (default ``os.environ``).
    """
    home_path = Path(home).resolve()
    home_path.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ if base is None else base)
    env.update(
        {
            "AIRFLOW_HOME": str(home_path),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder()),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins_folder()),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PARALLELISM": str(AIRFLOW_PARALLELISM),
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sql_alchemy_conn
            or f"sqlite:///{home_path / 'airflow.db'}",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": env.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING"),
            # spark-submit of this environment, and its Python for driver and executors
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
            "PYSPARK_PYTHON": sys.executable,
            "AIRFLOW_CONN_SPARK_DEFAULT": env.get("AIRFLOW_CONN_SPARK_DEFAULT") or spark_connection(),
        }
    )
    env.update(extra or {})
    return env
