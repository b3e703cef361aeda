"""Fixtures shared by tests/unit and tests/integration: the real sample data, a small simulated day, a tiny U-Net.

Nothing here starts a server: those fixtures live in ``tests/integration/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REALDATA = REPO.parent / "shared" / "realdata"


@pytest.fixture(scope="session")
def realdata() -> Path:
    """The shared real sample data (must be beside the repository)."""
    assert REALDATA.is_dir(), f"{REALDATA} missing: ../shared/realdata must be beside the repo"
    return REALDATA


@pytest.fixture(scope="session")
def small_sim_day(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A small simulated day (1 granule x 20 km, one 5 km scene), written once per session."""
    from seaice_tasks.sim.day import simulate_day
    from seaice_tasks.sim.geometry import SimConfig

    config = SimConfig(granules=1, km=20.0, scenes_per_granule=1, scene_km=5.0)
    return simulate_day(config, tmp_path_factory.mktemp("small_sim_day"), workers=1)


@pytest.fixture(scope="session")
def tiny_unet_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved, untrained U-Net folder (3 levels, width 2, 32 px tiles): enough for plumbing tests."""
    from seaice_tasks.models.unet import UNetConfig, build_unet, save_unet
    from seaice_tasks.train.loop import seed_everything

    cfg = UNetConfig(base_filters=2, levels=3, dropouts=(0.1, 0.1, 0.2), decoder_dropouts=(0.2, 0.1), tile_px=32)
    seed_everything(3)
    folder = tmp_path_factory.mktemp("tiny_unet")
    save_unet(build_unet(cfg), cfg, {}, folder, training_data="untrained, plumbing tests")
    return folder


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Run torch on one intra-op thread: OpenMP spin-waits make 2 threads very slow on a busy 2-core box."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
