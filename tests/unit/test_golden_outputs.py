"""The committed outputs of a small simulated day, byte for byte (golden sha256 of every committed file).

The checksums in ``tests/golden/small_day_sha256.json`` were recorded before the refit that
introduced the product registry and the job runner (S2 partitions then lived under
``granule=<scene>``, now ``scene=<scene>``); any change of an output byte -- a schema, a config
default, a writer option, a library upgrade -- fails here.  When a change of the outputs is
intended, regenerate with ``SEAICE_UPDATE_GOLDEN=1 pytest tests/unit/test_golden_outputs.py`` and
say why in the commit.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from seaice_tasks.catalog import run_discover
from seaice_tasks.spark_jobs import resample, s2_labels
from seaice_tasks.spark_jobs.runner import run_job
from seaice_tasks.storage import Lake

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "small_day_sha256.json"
#: File kinds compared (the inventory holds absolute paths of the inputs, so it is left out).
_COMPARED = (".parquet", ".tif", ".png")


def _checksums(lake: Lake) -> dict[str, str]:
    """``<partition relpath>/<name>`` -> sha256 of the committed bytes, for every file the manifests list.

    Found through the manifests, not the folders: the version folder a file sits in is no part of the key.
    """
    out = {}
    for stage in sorted(p.name for p in Path(lake.path()).iterdir() if p.is_dir() and not p.name.startswith("_")):
        if stage == "inventory":
            continue
        for key in lake.partitions(stage):
            _, files = lake.read_partition(key, verify=True)
            out.update({f"{key.relpath}/{name}": hashlib.sha256(data).hexdigest()
                        for name, data in files.items() if Path(name).suffix in _COMPARED})
    return dict(sorted(out.items()))


def test_small_day_outputs_are_byte_identical(small_sim_day, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lake_dir = tmp_path / "lake"
    run_discover("2019-11-04", catalog=str(small_sim_day.catalog), lake=str(lake_dir))
    lake = Lake(lake_dir)
    for job, kind in ((resample.JOB, "ATL03"), (s2_labels.JOB, "S2")):
        uris = [str(u) for u in (small_sim_day.atl03 if kind == "ATL03" else small_sim_day.scenes)]
        summary = run_job(job, uris, lake, day="2019-11-04")
        assert summary["failed"] == [] and summary["skipped"] == []
    got = _checksums(lake)
    if os.environ.get("SEAICE_UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    assert got == json.loads(GOLDEN.read_text())
