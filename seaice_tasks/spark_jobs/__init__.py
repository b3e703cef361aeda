"""Spark jobs: thin entry scripts (``resample.py``, ``s2_labels.py``, ``colocate.py``, ``classify.py``,
``freeboard.py``, ``validate.py``) on one runner.

Job scripts are run, never imported, by the package (``spark-submit <script>``, or the CLI's
``--no-spark`` which runs the script in-process); :func:`job_script` finds a script's path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

__all__ = ["JOB_NAMES", "job_script"]

#: The job scripts of this folder, by name.
JOB_NAMES: Final[tuple[str, ...]] = ("resample", "s2_labels", "colocate", "classify", "freeboard", "validate")


def job_script(name: str) -> Path:
    """Path of the job script ``name`` (``resample``, ``s2_labels``), for ``spark-submit``.

    Raises
    ------
    ValueError
        For an unknown job name.
    """
    if name not in JOB_NAMES:
        raise ValueError(f"unknown Spark job {name!r}; known: {list(JOB_NAMES)}")
    return Path(__file__).with_name(f"{name}.py")
