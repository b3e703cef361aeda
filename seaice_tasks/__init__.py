"""seaice: ICESat-2 ATL03 + Sentinel-2 sea-ice classification and freeboard.

Importing this package must stay cheap: it never imports airflow, pyspark or torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["__version__", "read"]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """``seaice_tasks.read``: :func:`seaice_tasks.reading.read`, imported on first use (this package stays cheap)."""
    if name == "read":
        return importlib.import_module("seaice_tasks.reading").read
    raise AttributeError(f"module 'seaice_tasks' has no attribute {name!r}")
