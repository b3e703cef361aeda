"""Work functions of the 2 m resampling job (:mod:`seaice_tasks.spark_jobs.resample`).

:func:`plan_granule_work` turns one ATL03 granule into its work items -- one per chunk of each
selected beam (:mod:`seaice_tasks.is2.chunks`), reading only metadata and segment tables -- and
:func:`resample_chunk_work` resamples one item into the part file of its track partition.
Both are plain functions of ``(record, ctx)`` (:mod:`seaice_tasks.work`): the job runner maps
them in this process or on Spark executors.
"""

from __future__ import annotations

import dataclasses
from typing import Any

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

__all__ = ["plan_granule", "plan_granule_work", "resample_chunk_work", "item_key"]


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
) -> list[dict[str, Any]]:
    """Work items of one granule: a record per chunk of each selected beam, in beam order.

    Raises
    ------
    SeaIceError
        The granule cannot be read or named.
    """
    gid, info = _granule_id(uri, storage_options)
    items = []
    for beam in select_beams({b.beam: b.strength for b in info.beams}, config):
        segments = read_segments(uri, beam, storage_options=storage_options)
        for chunk in beam_chunks(segments, config):
            items.append({"uri": uri, "granule": gid.granule, "date": gid.date.isoformat(), "beam": beam,
                          **dataclasses.asdict(chunk)})
    return items


def plan_granule_work(rec: Record, ctx: WorkContext[ResampleConfig]) -> WorkResult:
    """Load phase, one granule (``rec["uri"]``) -> its work-item rows."""
    uri = str(rec["uri"])
    return WorkResult(rows=tuple(plan_granule(uri, ctx.config, ctx.inputs.options_for(uri))))


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
                             owned=(chunk.x_lo, chunk.x_hi))
    table = to_segments_table(frame)
    return WorkResult(rows=({"rows": table.num_rows},),
                      outputs=(TableOutput(item_key(rec), segment_part_name(chunk.part), table),))
