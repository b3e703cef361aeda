"""Benchmark: stream one simulated strong ATL03 beam of N photons to HDF5.

Usage::

    .venv/bin/python benchmarks/sim_benchmark_beam.py --n-photons 20000000 --out /tmp/bench_beam.h5

Prints the wall time, the photons written per second and the peak resident memory of the process
(``resource.getrusage``, which includes the interpreter and imported libraries).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import h5py

from seaice_tasks.sim.atl03 import write_benchmark_beam
from seaice_tasks.sim.world import TruthWorld

DEFAULT_PHOTONS = 20_000_000
BEAM = "gt1r"
KIB_PER_MIB = 1024.0


def main(argv: Sequence[str] | None = None) -> int:
    """Write the benchmark beam and print its timing and memory figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-photons", type=int, default=DEFAULT_PHOTONS, help="minimum photons to write")
    parser.add_argument("--seed", type=int, default=0, help="seed of the track and photon draws")
    parser.add_argument("--out", type=Path, default=None, help="output file (default: a temporary file)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out if args.out is not None else Path(tmp) / "benchmark_beam.h5"
        world = TruthWorld()
        t0 = time.perf_counter()
        write_benchmark_beam(out, world, n_photons=args.n_photons, seed=args.seed)
        wall = time.perf_counter() - t0
        with h5py.File(out, "r") as f:
            n_photons = int(f[f"{BEAM}/heights/h_ph"].shape[0])
        size_mb = out.stat().st_size / KIB_PER_MIB / KIB_PER_MIB
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KIB_PER_MIB  # ru_maxrss is KiB on Linux
    print(f"photons: {n_photons:,}  file: {size_mb:.1f} MiB")
    print(f"wall time: {wall:.2f} s  throughput: {n_photons / wall:,.0f} photons/s")
    print(f"peak RSS: {peak_mib:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
