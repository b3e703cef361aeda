"""seaice: ICESat-2 ATL03 + Sentinel-2 sea-ice classification and freeboard.

Importing this package must stay cheap: it never imports airflow, pyspark or torch.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
