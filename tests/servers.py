"""Plain helpers for tests that start real processes: a Spark environment.

Ports, process-group stops and port waits are :mod:`seaice_tasks.airflow_stack`'s (``free_port``,
``stop_group``, ``wait_port``).

Imported by ``tests/integration/conftest.py`` and by integration test modules; no fixtures live here.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def spark_env() -> dict[str, str]:
    """Environment for a ``spark-submit`` child: this venv's Python for driver and executors, loopback."""
    env = dict(os.environ)
    env.update({
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
    })
    return env
