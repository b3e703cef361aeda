"""The daily summary of a day in the lake, and the stage timings of a run.

:func:`day_summary` reads the day's manifests, job reports and freeboard tables (deterministic:
no wall clock, so a re-run gives the same bytes); :func:`summary_markdown` is the same as a page.
The timings of a run's tasks are written beside it as plain documents (:func:`write_timings`),
outside the versioned summary partition.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any, Final

import numpy as np

from seaice_tasks.products import (
    CLASSIFY_REPORT,
    COLOCATE_REPORT,
    DAILY_SUMMARY,
    FREEBOARD,
    FREEBOARD_FILE,
    FREEBOARD_REPORT,
    INVENTORY,
    RESAMPLE_REPORT,
    S2_LABELS_REPORT,
    SEGMENTS_CLASSIFIED,
    VALIDATE_REPORT,
    VALIDATION_DAY,
    VALIDATION_FILE,
    Product,
)
from seaice_tasks.publish.stac import PUBLISHED
from seaice_tasks.storage import Lake, code_version

__all__ = ["TIMINGS_DIR", "day_is_empty", "day_summary", "summary_markdown", "timings_markdown", "write_timings"]

#: Job reports the summary reads skips and failures from, by stage.
STAGE_REPORTS: Final[dict[str, Product]] = {
    "resample_2m": RESAMPLE_REPORT, "s2_labels": S2_LABELS_REPORT, "colocate": COLOCATE_REPORT,
    "classify": CLASSIFY_REPORT, "freeboard": FREEBOARD_REPORT, "validate": VALIDATE_REPORT,
}
#: Percentiles of the freeboard statistics (%).
FREEBOARD_PERCENTILES: Final[tuple[int, int]] = (10, 90)
#: Classes of the classified segments in the summary, by their count key in the classify report.
CLASS_NAMES: Final[tuple[str, ...]] = ("thick", "thin", "water")
#: Folder of the per-run stage timings (lake documents, not partitions: a re-run's timings differ,
#: and the daily summary must stay byte-identical across re-runs).
TIMINGS_DIR: Final[str] = "run_timings"


def _report_doc(lake: Lake, product: Product, day: dt.date) -> dict[str, Any] | None:
    """The manifest info of a job's day report (None when the job did not report the day)."""
    manifest = lake.manifest(product.key(date=day))
    return dict(manifest.info) if manifest is not None else None


def _freeboard_stats(lake: Lake, day: dt.date) -> dict[str, Any]:
    """Count, mean, median, std and percentiles (m) of the finite freeboards of the day's tracks."""
    values = [lake.read_table(k, FREEBOARD_FILE).column("freeboard_m").to_numpy(zero_copy_only=False)
              for k in lake.partitions(FREEBOARD.name, day)]
    fb = np.concatenate(values).astype(np.float64) if values else np.zeros(0)
    fb = fb[np.isfinite(fb)]
    if fb.size == 0:
        return {"segments": 0}
    lo, hi = np.percentile(fb, FREEBOARD_PERCENTILES)
    return {"segments": int(fb.size), "mean_m": round(float(fb.mean()), 4), "median_m": round(float(np.median(fb)), 4),
            "std_m": round(float(fb.std()), 4), f"p{FREEBOARD_PERCENTILES[0]}_m": round(float(lo), 4),
            f"p{FREEBOARD_PERCENTILES[1]}_m": round(float(hi), 4)}


def day_is_empty(lake: Lake, day: dt.date) -> bool:
    """Whether the lake holds nothing of ``day``: no inventory, job report or partition of a published product.

    Such a day (one the pipeline never ran, such as a mistyped date) gets no summary partition.
    """
    if lake.manifest(INVENTORY.key(date=day)) is not None:
        return False
    if any(lake.manifest(report.key(date=day)) is not None for report in STAGE_REPORTS.values()):
        return False
    return not any(lake.partitions(product.name, day) for product in PUBLISHED)


def day_summary(lake: Lake, day: dt.date) -> dict[str, Any]:
    """The day's summary from its manifests, reports and freeboard tables (JSON-ready, deterministic).

    Returns
    -------
    dict
        ``date``; ``inputs`` (inventory counts per kind); ``products`` ({product: {"partitions",
        "rows"}} of the published products); ``stages`` ({stage: {"reported", "skipped",
        "failed"}}); ``classes`` (counts and fractions of thick ice, thin ice, open water among
        the classified segments, or None without a classification); ``freeboard``
        (:func:`_freeboard_stats`); ``validation`` (the pooled figures of ``validation_day``
        without histograms, or None).
    """
    inventory = lake.manifest(INVENTORY.key(date=day))
    products = {}
    for product in PUBLISHED:
        if product is DAILY_SUMMARY:
            continue
        keys = lake.partitions(product.name, day)
        manifests = [m for m in (lake.manifest(k) for k in keys) if m is not None]
        products[product.name] = {"partitions": len(manifests), "rows": sum(m.rows for m in manifests)}
    stages = {}
    for stage, report in STAGE_REPORTS.items():
        doc = _report_doc(lake, report, day)
        stages[stage] = {"reported": doc is not None, "skipped": len((doc or {}).get("skipped", [])),
                         "failed": len((doc or {}).get("failed", []))}
    classes = None
    if stages["classify"]["reported"]:
        counts = {c: 0 for c in CLASS_NAMES}
        for key in lake.partitions(SEGMENTS_CLASSIFIED.name, day):
            manifest = lake.manifest(key)
            for name, n in ((manifest.info if manifest else {}).get("class_counts") or {}).items():
                if name in counts:
                    counts[name] += int(n)
        total = sum(counts.values())
        classes = {"counts": counts,
                   "fractions": {c: round(n / total, 4) for c, n in counts.items()} if total else None}
    validation = None
    day_key = VALIDATION_DAY.key(date=day)
    if lake.manifest(day_key) is not None:
        pooled = json.loads(lake.open_file(day_key, VALIDATION_FILE)).get("pooled", {})
        validation = {k: v for k, v in pooled.items() if k != "histograms"}
    return {
        "date": day.isoformat(),
        "inputs": dict(sorted(((inventory.info.get("counts") or {}) if inventory else {}).items())),
        "products": products,
        "stages": stages,
        "classes": classes,
        "freeboard": _freeboard_stats(lake, day),
        "validation": validation,
        "code_version": code_version(),
    }


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {_fmt(v)}" for k, v in value.items())
    return str(value)


def summary_markdown(summary: Mapping[str, Any]) -> str:
    """The daily summary as a Markdown page."""
    lines = [f"# seaice daily summary {summary['date']}", "",
             f"Stage timings of the latest run: `{TIMINGS_DIR}/{summary['date']}.md` at the lake root.", "",
             "Inputs: " + (", ".join(f"{k} {v}" for k, v in summary["inputs"].items()) or "none"), "",
             "| product | partitions | rows |", "|---|---:|---:|"]
    lines += [f"| `{name}` | {p['partitions']} | {p['rows']} |" for name, p in summary["products"].items()]
    lines += ["", "| stage | reported | skipped | failed |", "|---|---|---:|---:|"]
    lines += [f"| {name} | {'yes' if s['reported'] else 'no'} | {s['skipped']} | {s['failed']} |"
              for name, s in summary["stages"].items()]
    classes = summary.get("classes")
    lines += ["", "Classes of the 2 m segments: "
              + (_fmt(classes["fractions"]) + f" (of {sum(classes['counts'].values())} segments)"
                 if classes and classes.get("fractions") else "not classified (no promoted model)")]
    fb = summary["freeboard"]
    lines += ["", "Freeboard (m): " + (", ".join(f"{k.removesuffix('_m')} {_fmt(v)}" for k, v in fb.items())
                                       if fb.get("segments") else "none")]
    validation = summary.get("validation")
    if validation:
        lines += ["", "Validation against ATL07/ATL10 (pooled over the day's tracks):", ""]
        lines += [f"- {k}: {_fmt(v)}" for k, v in validation.items() if k != "flagged"]
    return "\n".join(lines) + "\n"


def timings_markdown(day: dt.date, timings: Mapping[str, float | None]) -> str:
    """The stage timings of a run as a Markdown table (seconds; ``-`` for a task that did not run)."""
    lines = [f"# seaice run timings {day.isoformat()}", "", "| task | wall clock (s) |", "|---|---:|"]
    lines += [f"| {task} | {'-' if sec is None else f'{sec:.1f}'} |" for task, sec in timings.items()]
    ran = [v for v in timings.values() if v is not None]
    lines += ["", f"Sum of the task times: {sum(ran):.1f} s (tasks in parallel overlap)."]
    return "\n".join(lines) + "\n"


def write_timings(lake: Lake, day: dt.date, timings: Mapping[str, float | None]) -> str:
    """Write ``run_timings/<day>.json`` and ``.md`` (atomically, replacing an earlier run's); the JSON's path."""
    doc = {"date": day.isoformat(), "unit": "s", "tasks": dict(timings)}
    relpath = f"{TIMINGS_DIR}/{day.isoformat()}.json"
    lake.write_document(relpath, json.dumps(doc, sort_keys=True, indent=1).encode())
    lake.write_document(f"{TIMINGS_DIR}/{day.isoformat()}.md", timings_markdown(day, timings).encode())
    return relpath
