"""The job runner's packing of work items into Spark tasks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from seaice_tasks.spark_jobs.runner import balanced_bins


def test_balanced_bins_is_a_partition_and_near_equal() -> None:
    rng = np.random.default_rng(0)
    weights = rng.integers(1, 500_000, size=37).astype(float).tolist()
    bins = balanced_bins(weights, 4)
    assert len(bins) == 4
    flat = sorted(itertools.chain.from_iterable(bins))
    assert flat == list(range(37))  # every item exactly once
    loads = [sum(weights[i] for i in b) for b in bins]
    # LPT bound: no bin exceeds the mean load by more than the heaviest item
    assert max(loads) - sum(loads) / 4 <= max(weights)
    assert max(loads) / min(loads) < 1.1
    assert bins == balanced_bins(weights, 4)  # deterministic


def test_balanced_bins_small_cases() -> None:
    assert balanced_bins([5, 1, 4, 2, 3], 2) == [[0, 1, 3], [2, 4]]
    assert balanced_bins([], 3) == []
    assert balanced_bins([1.0, 1.0, 1.0], 5) == [[0], [1], [2]]  # never an empty task
    assert balanced_bins([2.0, 2.0, 2.0, 2.0], 2) == [[0, 2], [1, 3]]
    with pytest.raises(ValueError, match="n_bins"):
        balanced_bins([1.0], 0)
