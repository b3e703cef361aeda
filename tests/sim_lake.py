"""A simulated day made into the colocation's inputs: inventory, 2 m tracks and S2 labels in a lake."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seaice_tasks.catalog import run_discover
from seaice_tasks.is2.resample import ResampleConfig
from seaice_tasks.s2.scene_labels import S2LabelConfig
from seaice_tasks.sim.day import simulate_day
from seaice_tasks.sim.geometry import SimConfig
from seaice_tasks.spark_jobs import resample, s2_labels
from seaice_tasks.spark_jobs.runner import run_job
from seaice_tasks.storage import InputStore, Lake


def resampled_and_labelled(config: SimConfig, root: Path) -> tuple[Any, Path]:
    """Simulate ``config`` under ``root/sim``; discover, resample and S2-label it into ``root/lake``.

    Returns the simulation result and the lake folder.
    """
    sim = simulate_day(config, root / "sim", workers=1)
    lake_dir = root / "lake"
    run_discover(config.date, catalog=str(sim.catalog), lake=str(lake_dir))
    lake = Lake(lake_dir)
    inputs = InputStore(str(sim.catalog))
    run_job(resample.JOB, [str(p) for p in sim.atl03], lake, ResampleConfig(), day=config.date, inputs=inputs)
    run_job(s2_labels.JOB, [str(p) for p in sim.scenes], lake, S2LabelConfig(), day=config.date, inputs=inputs)
    return sim, lake_dir
