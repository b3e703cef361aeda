"""Simulate one polar day: granules and scenes into a catalog, truth beside it.

Layout under ``out``::

    catalog/icesat2/ATL03_<time>_<rgt><cycle><region>_<rel>_01.h5    (+ ATL07-02_..., ATL10-02_...)
    catalog/sentinel2/<SAFE name>/T<tile>_<time>_B02.tif ... _B08.tif
    truth/...                                                          (never read by the pipeline)
    truth/manifest.json                                                (every parameter, drift, file hashes)

``catalog/`` is what ``SEAICE_CATALOG`` points at; ``truth/`` is the referee's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Final

from seaice_tasks import __version__
from seaice_tasks.sim.geometry import DayPlan, SimConfig, plan_day
from seaice_tasks.sim.world import TruthWorld

__all__ = ["SimResult", "simulate_day", "CATALOG_DIR", "TRUTH_DIR", "MANIFEST_FILE"]

log = logging.getLogger(__name__)

CATALOG_DIR: Final[str] = "catalog"
TRUTH_DIR: Final[str] = "truth"
MANIFEST_FILE: Final[str] = "manifest.json"
_HASH_CHUNK: Final[int] = 1 << 20


@dataclasses.dataclass(frozen=True)
class SimResult:
    """What :func:`simulate_day` wrote."""

    out: Path
    catalog: Path
    truth: Path
    atl03: tuple[Path, ...]
    atl07: tuple[Path, ...]
    atl10: tuple[Path, ...]
    scenes: tuple[Path, ...]
    seconds: float

    def summary(self) -> str:
        """Human-readable report."""
        lines = [f"simulated day under {self.out} in {self.seconds:.1f} s", f"  catalog {self.catalog}"]
        for kind, paths in (("ATL03", self.atl03), ("ATL07", self.atl07), ("ATL10", self.atl10),
                            ("S2", self.scenes)):
            size = sum(_size(p) for p in paths) / 1e6
            lines.append(f"  {kind:<6} {len(paths)} file(s), {size:.1f} MB")
            lines.extend(f"         {p.name}" for p in paths)
        lines.append(f"  truth   {self.truth} (manifest {MANIFEST_FILE})")
        return "\n".join(lines)


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _plan_doc(plan: DayPlan) -> dict[str, Any]:
    def plain(obj: Any) -> dict[str, Any]:
        out = dataclasses.asdict(obj)
        return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in out.items()}

    return {
        "tracks": [dict(plain(t), granule=t.granule) for t in plan.tracks],
        "scenes": [dict(plain(s), scene=s.scene, safe_name=s.safe_name) for s in plan.scenes],
        # drawn over a track but not acquired: the sun was too low (Sentinel-2 does not image in the dark)
        "unlit_scenes": [dict(plain(s), scene=s.scene) for s in plan.unlit_scenes],
    }


def _simulate_one(config: SimConfig, kind: str, what: Any, icesat2: Path, sentinel2: Path, truth: Path,
                  clouds: bool) -> tuple[Path, ...]:
    """One granule (ATL03 + ATL07 + ATL10) or one scene; runs in a worker process."""
    from seaice_tasks.sim.atl03 import write_atl03_granule
    from seaice_tasks.sim.atl07 import write_atl07_atl10
    from seaice_tasks.sim.s2 import write_s2_scene

    world = TruthWorld(config.world)
    if kind == "granule":
        log.info("simulating ATL03 %s", what.granule)
        path = write_atl03_granule(world, what, config, icesat2, truth)
        p07, p10 = write_atl07_atl10(path, icesat2)
        return path, p07, p10
    log.info("simulating Sentinel-2 %s", what.scene)
    return (write_s2_scene(world, what, config, sentinel2, truth, clouds=clouds, workers=1),)


def simulate_day(config: SimConfig, out: str | Path, *, clouds: bool = True, workers: int | None = None) -> SimResult:
    """Write a simulated day (see the module docstring for the layout).

    Parameters
    ----------
    config : SimConfig
        Day, seed, number/size of granules and scenes, the world's knobs.
    out : path
        Output folder (created).
    clouds : bool
        Thin/opaque clouds and shadows in the Sentinel-2 scenes.
    workers : int, optional
        Processes writing granules and scenes in parallel (default: the CPU count); the files
        do not depend on it.

    Returns
    -------
    SimResult
    """
    t0 = time.perf_counter()
    root = Path(out)
    icesat2 = root / CATALOG_DIR / "icesat2"
    sentinel2 = root / CATALOG_DIR / "sentinel2"
    truth = root / TRUTH_DIR
    for folder in (icesat2, sentinel2, truth):
        folder.mkdir(parents=True, exist_ok=True)
    plan = plan_day(config)
    if plan.unlit_scenes:
        log.info("%d Sentinel-2 scene(s) not acquired: sun below %.1f deg (listed in the manifest)",
                 len(plan.unlit_scenes), config.s2_min_sun_elevation_deg)
    workers = max(1, min(workers or (os.cpu_count() or 1), len(plan.tracks) + len(plan.scenes)))
    jobs: list[tuple[str, Any]] = [("granule", t) for t in plan.tracks] + [("scene", s) for s in plan.scenes]
    if workers == 1:
        done = [_simulate_one(config, kind, what, icesat2, sentinel2, truth, clouds) for kind, what in jobs]
    else:
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool:
            futures = [pool.submit(_simulate_one, config, kind, what, icesat2, sentinel2, truth, clouds)
                       for kind, what in jobs]
            done = [f.result() for f in futures]
    atl03 = [p[0] for (kind, _), p in zip(jobs, done, strict=True) if kind == "granule"]
    atl07 = [p[1] for (kind, _), p in zip(jobs, done, strict=True) if kind == "granule"]
    atl10 = [p[2] for (kind, _), p in zip(jobs, done, strict=True) if kind == "granule"]
    scenes = [p[0] for (kind, _), p in zip(jobs, done, strict=True) if kind == "scene"]
    files = {
        str(p.relative_to(root)): _sha256(p)
        for p in sorted([*atl03, *atl07, *atl10, *(f for s in scenes for f in sorted(s.iterdir()))])
    }
    manifest = {
        "code_version": __version__,
        "config": config.to_dict(),
        "clouds": clouds,
        "plan": _plan_doc(plan),
        "files": files,
    }
    (truth / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return SimResult(out=root, catalog=root / CATALOG_DIR, truth=truth, atl03=tuple(atl03), atl07=tuple(atl07),
                     atl10=tuple(atl10), scenes=tuple(scenes), seconds=time.perf_counter() - t0)
