"""Chunks of an ATL03 beam for the 2 m resampling: segment ranges, halos and bin ownership.

A beam is cut into chunks of whole 20 m segment rows holding at most ``max_photons`` photons
(:func:`~seaice_tasks.io.atl03.segment_chunks`).  ``segment_dist_x`` is not a multiple of 2 m,
so a 2 m bin -- and a laser shot -- can straddle two chunks.  Each chunk therefore

* **reads** its rows plus a halo of :func:`halo_segments` segments on either side, so that every
  shot and every first-photon-bias window of the bins it owns is complete;
* **owns** the bins whose start ``x_atc`` lies in ``[x_lo, x_hi)``: the chunk's first and last
  segment starts snapped down to the ownership grid (:func:`ownership_step_m`, the larger of the
  bin and the FPB window), ``-inf`` / ``+inf`` at the ends of the beam.

Every bin is owned by exactly one chunk and computed from all its photons, so the chunks
together give the same bins, bit for bit, as the whole beam at once.  The Spark job's work items
and :func:`seaice_tasks.is2.resample.resample_beam` both use these chunks: there is one way to
chunk ATL03.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Final

import numpy as np
import numpy.typing as npt

from seaice_tasks.constants import SEGMENT_LENGTH_M
from seaice_tasks.io.atl03 import segment_chunks

__all__ = ["HALO_SEGMENTS", "BeamChunk", "ownership_step_m", "halo_segments", "plan_beam_chunks"]

#: Segments of halo read beyond a chunk on either side, besides one ownership step.
HALO_SEGMENTS: Final[int] = 1


@dataclasses.dataclass(frozen=True)
class BeamChunk:
    """One chunk of a beam.

    Attributes
    ----------
    part : int
        Position along the beam (0 first).
    seg_start, seg_stop : int
        Segment rows ``[seg_start, seg_stop)`` the chunk stands for.
    read_start, read_stop : int
        Segment rows read, with the halo.
    x_lo, x_hi : float
        Owned bins: bin start ``x_atc`` (m) in ``[x_lo, x_hi)``.
    photons : int
        Photons in ``[seg_start, seg_stop)`` (the chunk's weight).
    """

    part: int
    seg_start: int
    seg_stop: int
    read_start: int
    read_stop: int
    x_lo: float
    x_hi: float
    photons: int


def ownership_step_m(bin_size_m: float, fpb_window_m: float) -> float:
    """Grid the chunk boundaries snap to (m): bins and FPB windows stay whole.

    Examples
    --------
    >>> ownership_step_m(2.0, 10.0)
    10.0
    """
    return float(max(bin_size_m, fpb_window_m))


def halo_segments(step_m: float) -> int:
    """20 m segments read beyond a chunk on each side so its owned bins/windows see all photons.

    Examples
    --------
    >>> halo_segments(2.0), halo_segments(40.0)
    (2, 3)
    """
    return HALO_SEGMENTS + math.ceil(step_m / SEGMENT_LENGTH_M)


def _snap_floor(x_m: float, step_m: float) -> float:
    return math.floor(x_m / step_m) * step_m


def plan_beam_chunks(
    segment_dist_x_m: npt.ArrayLike,
    segment_ph_cnt: npt.ArrayLike,
    ph_index_beg: npt.ArrayLike,
    *,
    max_photons: int,
    step_m: float,
) -> list[BeamChunk]:
    """The chunks of one beam from its 20 m segment table.

    Parameters
    ----------
    segment_dist_x_m : array_like of float, shape (Nseg,)
        Along-track distance of each segment start (m).
    segment_ph_cnt, ph_index_beg : array_like of int, shape (Nseg,)
        Photons per segment and 1-based index of its first photon (0: empty).
    max_photons : int
        Photons per chunk at most (a larger single segment is a chunk of its own).
    step_m : float
        Ownership grid (:func:`ownership_step_m`).

    Returns
    -------
    list of BeamChunk
        At least one chunk (the whole beam, also when it has no segment).

    Examples
    --------
    >>> chunks = plan_beam_chunks([0.0, 20.0, 40.0, 60.0], [5, 5, 5, 5], [1, 6, 11, 16], max_photons=10, step_m=2.0)
    >>> [(c.seg_start, c.seg_stop, c.read_start, c.read_stop, c.x_lo, c.x_hi) for c in chunks]
    [(0, 2, 0, 4, -inf, 40.0), (2, 4, 0, 4, 40.0, inf)]
    """
    x0 = np.asarray(segment_dist_x_m, dtype=np.float64)
    beg = np.asarray(ph_index_beg)
    cnt_raw = np.asarray(segment_ph_cnt)
    n = int(x0.size)
    cnt = np.where(beg > 0, cnt_raw, 0)
    halo = halo_segments(step_m)
    ranges = segment_chunks(cnt_raw, max_photons, beg) if n else []
    if not ranges:
        ranges = [(0, n)]
    chunks = []
    for part, (a, b) in enumerate(ranges):
        lo = -math.inf if part == 0 else _snap_floor(float(x0[a]), step_m)
        hi = math.inf if part == len(ranges) - 1 else _snap_floor(float(x0[b]), step_m)
        chunks.append(BeamChunk(part=part, seg_start=a, seg_stop=b, read_start=max(a - halo, 0),
                                read_stop=min(b + halo, n), x_lo=lo, x_hi=hi, photons=int(cnt[a:b].sum())))
    return chunks
