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


def classified_from_truth(lake: Lake, sim: Any, day: str) -> int:
    """Commit ``segments_classified`` for every 2 m track of ``day`` with the simulator's truth classes.

    For the freeboard and validation stages without a trained model: each segment's class is its
    truth class (p = 1 for it), features as the classifier computes them.  Returns the partitions.
    """
    import datetime as dt

    import numpy as np
    import pandas as pd

    from seaice_tasks.is2.classify import TRACK_COLUMNS
    from seaice_tasks.is2.features import FEATURE_NAMES, segment_features
    from seaice_tasks.outputs import TableOutput, write_partition
    from seaice_tasks.products import CLASSES_FILE, SEGMENTS_2M, SEGMENTS_CLASSIFIED
    from seaice_tasks.schemas import SEGMENTS_CLASSIFIED_SCHEMA
    from seaice_tasks.sim.atl03 import truth_paths
    from seaice_tasks.sim.scoring import truth_classes
    from seaice_tasks.storage import geoparquet_table

    n = 0
    for key in lake.partitions(SEGMENTS_2M.name, dt.date.fromisoformat(day)):
        track = lake.read_table(key).select(list(TRACK_COLUMNS)).to_pandas()
        track = track.sort_values("x_atc_m", kind="stable").reset_index(drop=True)
        atl03 = next(p for p in sim.atl03 if str(key.granule) in p.name)
        truth = pd.read_parquet(truth_paths(sim.truth, atl03.name).bins)
        cls = truth_classes(track, truth, str(key.beam))
        feats = segment_features(track, None)
        out = track[["bin_index", "x_atc_m", "lat_deg", "lon_deg", "time_utc", "n_photons"]].copy()
        out.insert(0, "beam", str(key.beam))
        out.insert(0, "granule", str(key.granule))
        out["window_valid"] = cls != 255
        out["class"] = cls
        for i, name in enumerate(("p_thick", "p_thin", "p_water")):
            out[name] = np.where(cls == 255, np.nan, (cls == i).astype(np.float32)).astype(np.float32)
        for name in FEATURE_NAMES:
            out[name] = feats[name].to_numpy(dtype=np.float64)
        ckey = SEGMENTS_CLASSIFIED.key(date=day, granule=key.granule, beam=key.beam)
        table = geoparquet_table(out, SEGMENTS_CLASSIFIED_SCHEMA)
        write_partition(lake, ckey, [TableOutput(ckey, CLASSES_FILE, table)], None, {"model": {"name": "truth"}})
        n += 1
    return n
