"""Work functions of the 2 m resampling job (:mod:`seaice_tasks.spark_jobs.resample`).

:func:`plan_granule_work` turns one ATL03 granule into its work items -- one per chunk of each
selected beam (:mod:`seaice_tasks.is2.chunks`), reading only metadata and segment tables -- and
:func:`resample_chunk_work` resamples one item into the part file of its track partition.
Both are plain functions of ``(record, ctx)`` (:mod:`seaice_tasks.work`): the job runner maps
them in this process or on Spark executors.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Final

from seaice_tasks.errors import SeaIceError
from seaice_tasks.granule import GranuleId, parse_granule
from seaice_tasks.io.atl03 import read_atl03_info, read_photons, read_segments
from seaice_tasks.is2.chunks import BeamChunk
from seaice_tasks.is2.resample import (
    ResampleConfig,
    beam_chunks,
    read_fpb_with_dead_time,
    read_optional_bckgrd,
    resample_photons,
    select_beams,
    to_segments_table,
)
from seaice_tasks.outputs import TableOutput
from seaice_tasks.products import SEGMENTS_2M, segment_part_name
from seaice_tasks.storage import PartitionKey
from seaice_tasks.work import Record, WorkContext, WorkResult

__all__ = ["plan_granule", "plan_granule_work", "resample_chunk_work", "item_key", "NAME_TIME_TOLERANCE_S"]

#: Photon times may start this much after the start time in the granule name (s) before a flag:
#: a granule starts at its region boundary, the first photon of a beam a few seconds later.
NAME_TIME_TOLERANCE_S: Final[float] = 600.0


def _granule_id(uri: str, storage_options: dict[str, Any] | None) -> tuple[GranuleId, Any]:
    info = read_atl03_info(uri, storage_options=storage_options)
    try:
        return parse_granule(uri), info
    except SeaIceError:
        if info.granule is None:
            raise
        return info.granule, info  # from the file's metadata (subsets are renamed)


def plan_granule(
    uri: str, config: ResampleConfig, storage_options: dict[str, Any] | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Work items of one granule, and the beams it cannot resample, each with its reason.

    Returns
    -------
    items : list of dict
        One record per chunk of each usable selected beam, in beam order.
    notes : list of dict
        ``{"uri", "beam", "skip" | "flag": reason}``: a requested beam the file lacks, a beam
        without photons or whose heights are all fill (skips: the other beams go on), photon
        times that do not match the granule name (a flag: the beam is still resampled).

    Raises
    ------
    SeaIceError
        The granule cannot be read or named.
    """
    gid, info = _granule_id(uri, storage_options)
    beams = {b.beam: b for b in info.beams}
    notes: list[dict[str, str]] = []
    if isinstance(config.beams, tuple):
        notes += [{"uri": uri, "beam": b, "skip": f"{uri}: beam {b} is not in the file (present: {sorted(beams)})"}
                  for b in config.beams if b not in beams]
    selected = select_beams({b: i.strength for b, i in beams.items()}, config)
    if not selected and beams and config.beams == "strong":
        notes.append({"uri": uri, "beam": "", "skip": f"{uri}: no strong beam (sc_orient {info.sc_orient})"})
    items = []
    for beam in selected:
        b = beams[beam]
        if b.all_fill or b.n_photons == 0:
            why = "heights/h_ph holds only fill values" if b.all_fill else "no photons"
            notes.append({"uri": uri, "beam": beam, "skip": f"{uri}: {beam}: {why}"})
            continue
        t0 = b.time_start_utc
        if t0 is not None and abs((t0 - gid.start).total_seconds()) > NAME_TIME_TOLERANCE_S:
            notes.append({"uri": uri, "beam": beam, "flag": f"{uri}: {beam}: first photon at {t0:%Y-%m-%dT%H:%M:%SZ}, "
                                                            f"the granule name says {gid.start:%Y-%m-%dT%H:%M:%SZ}"})
        segments = read_segments(uri, beam, storage_options=storage_options)
        for chunk in beam_chunks(segments, config):
            items.append({"uri": uri, "granule": gid.granule, "date": gid.date.isoformat(), "beam": beam,
                          **dataclasses.asdict(chunk)})
    return items, notes


def plan_granule_work(rec: Record, ctx: WorkContext[ResampleConfig]) -> WorkResult:
    """Load phase, one granule (``rec["uri"]``) -> its work-item rows and its beams' skip/flag rows."""
    uri = str(rec["uri"])
    items, notes = plan_granule(uri, ctx.config, ctx.inputs.options_for(uri))
    return WorkResult(rows=tuple(items + notes))


def item_key(item: Record) -> PartitionKey:
    """The track partition a work item contributes to."""
    return SEGMENTS_2M.key(date=item["date"], granule=item["granule"], beam=item["beam"])


def resample_chunk_work(rec: Record, ctx: WorkContext[ResampleConfig]) -> WorkResult:
    """Map phase, one work item -> the part file of its chunk (the bins it owns)."""
    uri, beam = str(rec["uri"]), str(rec["beam"])
    chunk = BeamChunk(**{f.name: rec[f.name] for f in dataclasses.fields(BeamChunk)})
    so = ctx.inputs.options_for(uri)
    segments = read_segments(uri, beam, storage_options=so)
    photons = read_photons(uri, beam, chunk.read_start, chunk.read_stop, storage_options=so)
    bckgrd, fpb = read_optional_bckgrd(uri, beam, so), read_fpb_with_dead_time(uri, beam, so)
    frame = resample_photons(photons, segments, bckgrd, fpb, ctx.config, beam=beam, granule=str(rec["granule"]),
                             owned=(chunk.x_lo, chunk.x_hi), source=uri)
    table = to_segments_table(frame)
    return WorkResult(rows=({"rows": table.num_rows},),
                      outputs=(TableOutput(item_key(rec), segment_part_name(chunk.part), table),))
