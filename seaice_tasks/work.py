"""The contract between stages and the job runner: what a work function gets and returns.

A work function is a plain package function ``fn(record, ctx) -> WorkResult`` (or a dict, or a
list of dicts: its rows).  The runner (:mod:`seaice_tasks.spark_jobs.runner`) calls it once per
work item, in this process or on a Spark executor -- the same code path either way -- with

* ``record``: the work item, a JSON object (the runner sends it as JSON text);
* ``ctx``: a :class:`WorkContext`: the job's typed config, the lake, the input store (raw
  inputs have their own storage options), the job's staging token.

and gets back :class:`WorkResult` rows (JSON-ready dicts the driver collects) and outputs
(:mod:`seaice_tasks.outputs`), which the runner stages under the job's token and the driver
commits.  A work function that raises is a failed item: the runner records the error with the
item and goes on with the others.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from seaice_tasks.config import JsonConfig
from seaice_tasks.outputs import Output
from seaice_tasks.storage import InputStore, Lake, PartitionKey

__all__ = ["WorkContext", "WorkResult", "Record", "ConfigT"]

ConfigT = TypeVar("ConfigT", bound=JsonConfig)
#: One work item as the runner hands it over: a JSON object.
Record = Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class WorkContext(Generic[ConfigT]):
    """What every work function of a job run receives besides its record.

    Attributes
    ----------
    config : JsonConfig
        The job's configuration (typed: ``WorkContext[ResampleConfig]``).
    lake : Lake
        The output store (read committed products from it; outputs are staged by the runner).
    inputs : InputStore
        The raw-input store: use ``inputs.options_for(uri)`` when opening a granule or scene.
    token : str
        The job run's staging token.
    """

    config: ConfigT
    lake: Lake
    inputs: InputStore
    token: str

    def read_staged(self, key: PartitionKey, name: str) -> bytes:
        """Bytes a work item of this run staged earlier (e.g. a scratch file of a previous pass)."""
        return self.lake.writer(key, token=self.token).read_staged(name)


@dataclasses.dataclass(frozen=True)
class WorkResult:
    """What one work item gives back: rows for the driver and outputs to stage."""

    rows: tuple[dict[str, Any], ...] = ()
    outputs: tuple[Output, ...] = ()
