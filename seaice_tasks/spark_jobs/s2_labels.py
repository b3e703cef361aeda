"""Spark job: Sentinel-2 scenes -> label partitions (``s2_labels/date=D/scene=S``).

Usage::

    spark-submit seaice_tasks/spark_jobs/s2_labels.py --scenes DIR1,DIR2 --lake ROOT --config '{...}'
    spark-submit seaice_tasks/spark_jobs/s2_labels.py --date 2019-11-04 --lake ROOT   # from the inventory

Load: the executors open the scenes (grid checks) and list their windows; a scene that cannot
be opened (missing band, grids that differ, corrupt file) or holds no valid pixel is a recorded
skip.  Map: with the thin-cloud/shadow filter on, a first pass gives each window's ``diff``
histogram and the driver sums them into the scene's filter statistics; the second pass labels
each window (and, with ``--unet-model``, segments it with the U-Net) into scratch files; the
third pass (one item per scene) mosaics them and stages the scene's files
(:mod:`seaice_tasks.s2.labels_work`).  Commit: the driver commits each scene whose windows all
succeeded and that is not fully clouded, U-Net labels into ``s2_unet_labels/date=D/scene=S``.
A second folder of one scene key and a scene of another day than ``--date`` are skips too.
The report goes to ``s2_labels_report/date=D``; a whole-day run removes the day's label
partitions it did not produce.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from seaice_tasks.errors import SeaIceError
from seaice_tasks.models.unet import read_unet_card, unet_config_from_card
from seaice_tasks.products import S2_LABELS, S2_LABELS_REPORT, S2_UNET_LABELS
from seaice_tasks.s2.labels_work import (
    label_window_work,
    plan_scene_work,
    scene_files_work,
    scene_stats,
    window_histogram_work,
)
from seaice_tasks.s2.scene_labels import S2LabelConfig
from seaice_tasks.spark_jobs.runner import Job, Run, main
from seaice_tasks.storage import PartitionKey

__all__ = ["JOB", "run"]


def run(job: Run[S2LabelConfig], scenes: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Plan the scenes, label their windows in passes, commit the scenes; the job's summary."""
    planned = job.map(plan_scene_work, [{"uri": uri} for uri in scenes])
    skipped = [{"uri": r.record["uri"], "reason": r.error} for r in planned if not r.ok]
    plans: list[dict[str, Any]] = []
    owner: dict[str, str] = {}
    for plan in (r.rows[0] for r in planned if r.ok):
        first = owner.setdefault(plan["scene"], plan["uri"])
        if first != plan["uri"]:  # two folders, one scene key: the first in input order wins
            skipped.append({"uri": plan["uri"], "reason": f"{plan['uri']}: scene {plan['scene']} is also {first}"})
        elif args.date and plan["date"] != args.date:
            skipped.append({"uri": plan["uri"], "reason": f"{plan['uri']}: scene of {plan['date']}, "
                                                          f"not of the run's day {args.date}"})
        else:
            plans.append(plan)
    job.lap("load")
    windows = [{**{k: p[k] for k in ("uri", "scene", "date")}, "window": k, "row_off": w[0], "col_off": w[1],
                "height": w[2], "width": w[3]} for p in plans for k, w in enumerate(p["windows"])]
    pixels = [float(w["height"] * w["width"]) for w in windows]
    stats: dict[str, Any] = {}
    if job.config.apply_filter:
        hists = job.map(window_histogram_work, windows, weights=pixels)
        stats = scene_stats([p["scene"] for p in plans], [row for r in hists if r.ok for row in r.rows])
    labelled = job.map(label_window_work, [{**w, "stats": stats.get(w["scene"]), "unet_model": args.unet_model}
                                           for w in windows], weights=pixels)
    failed_windows: dict[str, list[str]] = {}
    for r in labelled:
        if not r.ok:
            failed_windows.setdefault(r.record["scene"], []).append(r.error)
    failed = [{"scene": p["uri"], "reason": "; ".join(sorted(set(failed_windows[p["scene"]])))}
              for p in plans if p["scene"] in failed_windows]
    todo = [{**p, "stats": stats.get(p["scene"]), "unet_model": args.unet_model}
            for p in plans if p["scene"] not in failed_windows]
    results = job.map(scene_files_work, todo, weights=[float(sum(w[2] * w[3] for w in p["windows"])) for p in todo])
    failed += [{"scene": r.record["uri"], "reason": r.error} for r in results if not r.ok]
    done = [r for r in results if r.ok and not r.rows[0]["skip"]]
    skipped += [{"uri": r.record["uri"], "reason": r.rows[0]["skip"]} for r in results if r.ok and r.rows[0]["skip"]]
    rows = {r.rows[0]["scene"]: r.rows[0] for r in done}
    unet_config = unet_config_from_card(read_unet_card(args.unet_model)) if args.unet_model else None

    def is_unet(key: PartitionKey) -> bool:
        return key.stage == S2_UNET_LABELS.name

    manifests = job.commit(done, info=lambda key, _: rows[key.scene]["unet_info" if is_unet(key) else "info"],
                           config_for=lambda key: unet_config if is_unet(key) and unet_config else job.config)
    job.lap("map_reduce")
    return {"partitions": [m.key.relpath for m in manifests if not is_unet(m.key)],
            "unet_partitions": [m.key.relpath for m in manifests if is_unet(m.key)],
            "skipped": skipped, "failed": failed}


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--unet-model", default="",
                   help="also label with this U-Net model folder into s2_unet_labels partitions "
                        "(the executors must see the folder)")


def _check(args: argparse.Namespace, config: S2LabelConfig) -> None:
    del config
    if args.unet_model:
        try:
            read_unet_card(args.unet_model)
        except (OSError, ValueError, SeaIceError) as exc:
            raise SeaIceError(f"--unet-model {args.unet_model}: not a U-Net model folder ({exc})") from exc


JOB = Job(name="s2_labels", config_type=S2LabelConfig, inventory_kind="S2", inputs_arg="scenes",
          report=S2_LABELS_REPORT, body=run, description=__doc__, add_arguments=_add_arguments,
          check_arguments=_check,
          products=lambda args: (S2_LABELS, S2_UNET_LABELS) if args.unet_model else (S2_LABELS,))

if __name__ == "__main__":
    os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")
    sys.exit(main(JOB))
