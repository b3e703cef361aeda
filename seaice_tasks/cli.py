"""The ``seaice`` command line.

``seaice inspect PATH [--json]``   what a product file holds (ATL03/ATL07/ATL10 HDF5, S2 raster)
``seaice discover --date D``      list a day's inputs in a catalog and commit the inventory
``seaice simulate --out DIR``     a simulated polar day with known truth, in the real layouts
                                 (``--day NAME``: a named tuning or unseen day)
``seaice resample GRANULE...``    ATL03 -> 2 m segment partitions (spark-submit, or in-process)
``seaice label-s2 SCENE...``      Sentinel-2 -> filtered colour-label COGs (spark-submit, or in-process)
``seaice colocate --date D``      2 m tracks x S2 labels -> pairs, drift shifts, labelled segments
``seaice training-set --dates D`` labelled segments -> a versioned, immutable training set
``seaice train``                  train an LSTM / MLP segment classifier (one process, Horovod, torchrun)
``seaice models list|show|promote`` the model registry in the lake
``seaice classify --date D``      every 2 m segment of the day -> class + probabilities (the promoted model)
``seaice freeboard --date D``     classified segments -> sea surfaces, freeboard, thickness (Spark)
``seaice validate --date D``      freeboard vs ATL07/ATL10 per track, quicklooks, the day's report (Spark)
``seaice plot --date D --out DIR`` the day's quicklooks and freeboard histogram as PNG files
``seaice status``                 recent skips, failures and open incidents (failure monitoring)
``seaice demo``                   the embedded default day through the daily DAG, with a summary
``seaice gc``                     remove leftovers of dead runs and killed commits from the lake
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from seaice_tasks import __version__
from seaice_tasks.errors import ConfigError, SeaIceError
from seaice_tasks.io.inspect import inspect_path
from seaice_tasks.io.summary import ProductSummary

__all__ = ["main", "format_summary"]

log = logging.getLogger("seaice")

EXIT_OK: Final[int] = 0
EXIT_INPUT_ERROR: Final[int] = 2
#: ``seaice status``: the Airflow API did not answer (the lake's part is still printed).
EXIT_UNREACHABLE: Final[int] = 1
#: ``seaice simulate``'s day and seed without ``--day`` (the demo's day).
DEFAULT_SIM_DATE: Final[str] = "2019-11-04"
DEFAULT_SIM_SEED: Final[int] = 20191104


def format_summary(summary: ProductSummary) -> str:
    """Human-readable text of a :class:`~seaice_tasks.io.summary.ProductSummary`
    (:func:`seaice_tasks.io.inspect.inspect_path`)."""
    lines = [
        f"{summary.path}",
        f"  product   {summary.product}",
        f"  granule   {summary.granule or '-'}",
        f"  time      {summary.time_start_utc or '-'} .. {summary.time_end_utc or '-'}",
    ]
    if summary.beams:
        lines.append("  beam   strength   photons   segments")
        for b in summary.beams:
            photons = "-" if b.n_photons is None else f"{b.n_photons:,}"
            lines.append(f"  {b.beam:<6} {b.strength:<8} {photons:>9} {b.n_segments:>10,}")
    for key, value in sorted(summary.extra.items()):
        lines.append(f"  {key:<9} {value}")
    for warning in summary.warnings:
        lines.append(f"  warning   {warning}")
    return "\n".join(lines)


def _cmd_inspect(args: argparse.Namespace) -> int:
    package = logging.getLogger("seaice_tasks")
    level = package.level
    if not args.verbose:  # the summary lists the readers' warnings itself
        package.setLevel(logging.ERROR)
    try:
        return _inspect_paths(args)
    finally:
        package.setLevel(level)  # in-process callers (the tests, notebooks) keep their logging


def _inspect_paths(args: argparse.Namespace) -> int:
    status = EXIT_OK
    docs = []
    for path in args.paths:
        try:
            summary = inspect_path(path)
        except SeaIceError as exc:
            print(f"seaice inspect: error: {exc}", file=sys.stderr)
            status = EXIT_INPUT_ERROR
            continue
        if args.json:
            docs.append(summary.to_dict())
        else:
            print(format_summary(summary))
    if args.json and docs:
        print(json.dumps(docs[0] if len(docs) == 1 else docs, indent=2, default=str))
    return status


def _json_object(text: str, argument: str = "--config") -> dict[str, object]:
    """The JSON object of an argument (one line naming it when it is not JSON or not an object)."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{argument}: not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{argument}: expected a JSON object {{...}}, got {type(value).__name__}")
    return value


def _cmd_discover(args: argparse.Namespace) -> int:
    from seaice_tasks.catalog import run_discover
    from seaice_tasks.config import DiscoverConfig, parse_day
    from seaice_tasks.store_access import open_lake

    day = parse_day(args.date)
    config = DiscoverConfig.from_dict(_json_object(args.config))
    lake = open_lake(args.lake, must_exist=False, writable=True)
    result = run_discover(day, catalog=args.catalog, lake=lake.root, config=config)
    print(json.dumps(result, indent=2))
    return EXIT_OK


def _cmd_publish(args: argparse.Namespace) -> int:
    from seaice_tasks.config import parse_day
    from seaice_tasks.publish import publish_day
    from seaice_tasks.store_access import open_lake

    day = parse_day(args.date)
    config = _json_object(args.config)
    lake = open_lake(args.lake, must_exist=True, writable=True)
    result = publish_day(day.isoformat(), lake=lake.root, config=config)
    print(json.dumps({k: v for k, v in result.items() if k != "summary"}, indent=2))
    return EXIT_OK


def _sim_seed(args: argparse.Namespace) -> int:
    """``--seed`` or the default day's seed."""
    return int(args.seed) if args.seed is not None else DEFAULT_SIM_SEED


def _cmd_simulate(args: argparse.Namespace) -> int:
    from seaice_tasks.config import parse_day
    from seaice_tasks.sim.day import simulate_day
    from seaice_tasks.sim.days import day as named_day
    from seaice_tasks.sim.geometry import SimConfig
    from seaice_tasks.sim.world import WorldConfig
    from seaice_tasks.store_access import output_folder

    if args.day and (args.date is not None or args.seed is not None):
        raise ConfigError(f"--day {args.day} fixes the date and the seeds: drop --date and --seed")
    base = named_day(args.day) if args.day else SimConfig(
        date=args.date or DEFAULT_SIM_DATE, seed=_sim_seed(args), world=WorldConfig(seed=_sim_seed(args)))
    parse_day(base.date)
    for name, value in (("--granules", args.granules), ("--scenes-per-granule", args.scenes_per_granule)):
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be >= 1, got {value}")
    for name, fvalue in (("--km", args.km), ("--scene-km", args.scene_km)):
        if fvalue is not None and not fvalue > 0:
            raise ConfigError(f"{name} must be > 0, got {fvalue}")
    if args.benchmark_beam < 0:
        raise ConfigError(f"--benchmark-beam must be >= 0, got {args.benchmark_beam}")
    output_folder(args.out)
    if args.benchmark_beam:
        from seaice_tasks.sim.atl03 import write_benchmark_beam
        from seaice_tasks.sim.world import TruthWorld

        os.makedirs(args.out, exist_ok=True)
        path = write_benchmark_beam(Path(args.out) / "benchmark_beam_ATL03.h5",
                                    TruthWorld(WorldConfig(seed=_sim_seed(args))), n_photons=args.benchmark_beam,
                                    seed=_sim_seed(args))
        print(f"seaice simulate: wrote benchmark beam {path}")
        return EXIT_OK
    sizes = {"granules": args.granules, "km": args.km, "scenes_per_granule": args.scenes_per_granule,
             "scene_km": args.scene_km}
    config = dataclasses.replace(base, **{k: v for k, v in sizes.items() if v is not None})
    result = simulate_day(config, args.out, clouds=not args.no_clouds)
    print(result.summary())
    return EXIT_OK


def _run_job(name: str, argv: list[str], args: argparse.Namespace) -> int:
    """Run a Spark job script in this process (``--no-spark``) or through ``spark-submit``.

    The script is run as a script either way (nothing imports a job script): in this process with
    :func:`runpy.run_path` as ``__main__``, else by ``spark-submit`` with the environment's Python.
    """
    import runpy
    import subprocess

    from seaice_tasks.spark_jobs import job_script

    script = str(job_script(name))
    if args.no_spark:
        saved = sys.argv
        sys.argv = [script, *argv, "--no-spark"]
        try:
            runpy.run_path(script, run_name="__main__")
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else EXIT_INPUT_ERROR if exc.code else EXIT_OK
        finally:
            sys.argv = saved
        return EXIT_OK
    spark_submit = Path(sys.executable).with_name("spark-submit")
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
    cmd = [str(spark_submit), "--master", args.master, "--conf", "spark.ui.enabled=false", script, *argv]
    return subprocess.run(cmd, env=env, check=False).returncode


def _cmd_resample(args: argparse.Namespace) -> int:
    return _run_job("resample", ["--granules", ",".join(args.granules), "--date", args.date or "", "--lake",
                                 args.lake or "", "--config", args.config], args)


def _cmd_label_s2(args: argparse.Namespace) -> int:
    return _run_job("s2_labels", ["--scenes", ",".join(args.scenes), "--date", args.date or "", "--lake",
                                  args.lake or "", "--config", args.config, "--unet-model", args.unet_model], args)


def _cmd_colocate(args: argparse.Namespace) -> int:
    return _run_job("colocate", ["--granules", ",".join(args.granules), "--date", args.date, "--lake",
                                 args.lake or "", "--config", args.config, "--corrections", args.corrections,
                                 "--drift-overrides", args.drift_overrides], args)


def _cmd_classify(args: argparse.Namespace) -> int:
    return _run_job("classify", ["--granules", ",".join(args.granules), "--date", args.date, "--lake",
                                 args.lake or "", "--config", args.config], args)


def _cmd_freeboard(args: argparse.Namespace) -> int:
    return _run_job("freeboard", ["--granules", ",".join(args.granules), "--date", args.date, "--lake",
                                  args.lake or "", "--config", args.config], args)


def _cmd_validate(args: argparse.Namespace) -> int:
    return _run_job("validate", ["--granules", ",".join(args.granules), "--date", args.date, "--lake",
                                 args.lake or "", "--config", args.config], args)


def _cmd_plot(args: argparse.Namespace) -> int:
    """Write the day's quicklooks (committed by validate, else drawn from the freeboard alone) to ``--out``."""
    from seaice_tasks.config import parse_day
    from seaice_tasks.products import FREEBOARD, HISTOGRAM_FILE, QUICKLOOK_FILE, VALIDATION, VALIDATION_DAY
    from seaice_tasks.store_access import open_lake, output_folder
    from seaice_tasks.surface.plots import track_quicklook

    day = parse_day(args.date)
    lake = open_lake(args.lake, must_exist=True)
    output_folder(args.out, create=False)
    keys = [k for k in lake.partitions(FREEBOARD.name, day) if not args.granules or k.granule in args.granules]
    if not keys:
        raise ConfigError(f"no freeboard partition on {day} in {lake.root} (run seaice freeboard first)")
    out = output_folder(args.out)
    written = []
    for key in keys:
        vkey = VALIDATION.key(date=day, granule=key.granule, beam=key.beam)
        target = out / f"{key.granule}_{key.beam}_{QUICKLOOK_FILE}"
        if lake.manifest(vkey) is not None:
            target.write_bytes(lake.open_file(vkey, QUICKLOOK_FILE))
        else:
            frame = lake.read_table(key).to_pandas().sort_values("x_atc_m", kind="stable")
            target.write_bytes(track_quicklook(frame, title=f"{key.granule} {key.beam} {day} (no ATL07/ATL10: "
                                                            "run seaice validate)"))
        written.append(target)
    dkey = VALIDATION_DAY.key(date=day)
    if lake.manifest(dkey) is not None:
        target = out / f"{day}_{HISTOGRAM_FILE}"
        target.write_bytes(lake.open_file(dkey, HISTOGRAM_FILE))
        written.append(target)
    for path in written:
        print(path)
    return EXIT_OK


def _cmd_status(args: argparse.Namespace) -> int:
    """Job reports' skips and failures and the open incidents of the last ``--days`` days."""
    import datetime as dt

    from seaice_tasks.config import parse_day
    from seaice_tasks.monitoring import lake_status, status_table
    from seaice_tasks.store_access import open_lake

    if args.days < 1:
        raise ConfigError(f"--days must be >= 1, got {args.days}")
    if args.runs < 1:
        raise ConfigError(f"--runs must be >= 1, got {args.runs}")
    today = parse_day(args.today, "--today") if args.today else dt.datetime.now(dt.UTC).date()
    status = lake_status(open_lake(args.lake, must_exist=True), today - dt.timedelta(days=args.days - 1))
    url = args.airflow or os.environ.get("SEAICE_AIRFLOW_URL", "")
    exit_status = EXIT_OK
    if url:
        from seaice_tasks.airflow_stack import AirflowApiError, AirflowClient
        from seaice_tasks.monitoring import airflow_status

        client = AirflowClient(url, args.airflow_user, os.environ.get("SEAICE_AIRFLOW_PASSWORD", ""))
        try:
            status["airflow"] = dict(airflow_status(client, runs=args.runs), url=url)
        except (OSError, AirflowApiError) as exc:  # the lake's part is still shown; the exit status says so
            status["airflow"] = {"url": url, "error": f"{url}: {exc}"}
            exit_status = EXIT_UNREACHABLE
    print(json.dumps(status, indent=1, sort_keys=True) if args.json else status_table(status))
    return exit_status


def _cmd_training_set(args: argparse.Namespace) -> int:
    from seaice_tasks.config import parse_day
    from seaice_tasks.is2.training_set import TrainingSetConfig, run_training_set
    from seaice_tasks.store_access import open_lake

    days = [parse_day(d, "--dates") for d in args.dates.split(",") if d.strip()]
    if not days:
        raise ConfigError("--dates: at least one YYYY-MM-DD")
    config = TrainingSetConfig.from_dict(_json_object(args.config))
    if args.name:
        config = dataclasses.replace(config, name=args.name)
    summary = run_training_set(open_lake(args.lake, must_exist=True, writable=True), days, config)
    print(json.dumps(summary, indent=2, sort_keys=True, default=str))
    return EXIT_OK


def _cmd_train(args: argparse.Namespace) -> int:
    import math

    from seaice_tasks.store_access import open_lake
    from seaice_tasks.train.promotion import promote
    from seaice_tasks.train.segments import SegmentTrainConfig

    for flag, value in (("--epochs", args.epochs), ("--batch-size", args.batch_size)):
        if value is not None and value < 1:  # 0 would silently mean the preset's value
            raise ConfigError(f"{flag}: must be >= 1, got {value} (leave it out for the preset's)")
    if args.lr is not None and not (math.isfinite(args.lr) and args.lr > 0):
        raise ConfigError(f"--lr: must be > 0, got {args.lr} (leave it out for the preset's)")
    fields = _json_object(args.config) if args.config else {}
    for name, value in (("name", args.name), ("preset", args.preset), ("training_set", args.training_set),
                        ("training_set_version", args.training_set_version), ("epochs", args.epochs),
                        ("batch_size", args.batch_size), ("lr", args.lr), ("seed", args.seed),
                        ("device", args.device)):
        if value not in (None, ""):
            fields[name] = value
    config = SegmentTrainConfig.from_dict(fields)
    lake = open_lake(args.lake, must_exist=True, writable=True)
    if args.backend == "single" and args.np == 1:
        from seaice_tasks.train.segments import train_segment_model

        result = train_segment_model(lake, config)
        result.pop("history", None)
    else:
        from seaice_tasks.train.launch import TrainingFailed, run_training

        try:
            result = run_training(args.backend, args.np, lake.root, config, hosts=args.hosts)
        except TrainingFailed as exc:
            print(f"seaice train: error: {exc}", file=sys.stderr)
            return EXIT_INPUT_ERROR if exc.returncode == EXIT_INPUT_ERROR else 1
    if not args.no_promote:
        result["promotion"] = promote(lake, config.name, str(result["version"]))
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True, default=str))
    else:
        test = result.get("metrics", {}).get("test", {})
        print(f"model {result['model']}: {'trained' if result.get('committed') else 'already committed'}"
              + (f", held-out accuracy {test['accuracy']:.4f}, macro F1 {test['macro_f1']:.4f}"
                 if test.get("accuracy") is not None else "")
              + (f"; promotion: {result['promotion']['reason']}" if "promotion" in result else ""))
    return EXIT_OK


def _cmd_models(args: argparse.Namespace) -> int:
    from seaice_tasks.models import lake as registry
    from seaice_tasks.store_access import open_lake
    from seaice_tasks.train.promotion import promote

    lake = open_lake(args.lake, must_exist=True, writable=args.action == "promote")
    if args.action == "list":
        keys = registry.list_models(lake, args.model or None)
        rows = []
        broken: list[str] = []
        for key in keys:
            assert key.name is not None and key.version is not None
            try:
                card = registry.model_card(lake, key.name, key.version)
            except SeaIceError as exc:  # one unreadable card does not hide the others
                broken.append(str(exc))
                card = {"architecture": {"preset": "UNREADABLE"}}
            test = card.get("metrics", {}).get("test", {})
            run = card.get("metrics", {}).get("run", {})
            rows.append({"name": key.name, "version": key.version,
                         "preset": card.get("architecture", {}).get("preset", ""),
                         "accuracy": test.get("accuracy"), "macro_f1": test.get("macro_f1"),
                         "backend": f"{run.get('backend', '?')} x {run.get('world_size', '?')}",
                         "promoted": registry.promoted_version(lake, key.name) == key.version})
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            print(f"{'name':<22} {'version':<17} {'preset':<9} {'accuracy':>8} {'macro F1':>8}  {'backend':<12} "
                  "promoted")
            for r in rows:
                acc = f"{r['accuracy']:.4f}" if r["accuracy"] is not None else "-"
                f1 = f"{r['macro_f1']:.4f}" if r["macro_f1"] is not None else "-"
                print(f"{r['name']:<22} {r['version']:<17} {r['preset']:<9} {acc:>8} {f1:>8}  {r['backend']:<12} "
                      f"{'promoted' if r['promoted'] else ''}")
        if broken:
            print(f"seaice models: error: {len(broken)} unreadable card(s): " + "; ".join(broken), file=sys.stderr)
            return EXIT_INPUT_ERROR
        return EXIT_OK
    if not args.model:
        raise ConfigError(f"models {args.action}: give the model name")
    if args.action == "show":
        version = args.version or registry.promoted_version(lake, args.model)
        if version is None:
            raise ConfigError(f"models show: no version of {args.model} is promoted; give one")
        card = registry.model_card(lake, args.model, version)
        print(json.dumps({"version": version, "promoted": registry.promoted_version(lake, args.model) == version,
                          "card": card}, indent=2, sort_keys=True))
        return EXIT_OK
    if not args.version:
        raise ConfigError("models promote: give the version")
    print(json.dumps(promote(lake, args.model, args.version, force=args.force), indent=2, sort_keys=True))
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from seaice_tasks.demo import run_demo

    return run_demo(workdir=args.workdir, date=args.date)


def _cmd_gc(args: argparse.Namespace) -> int:
    from seaice_tasks.storage import GC_MIN_AGE_S
    from seaice_tasks.store_access import open_lake

    hours = GC_MIN_AGE_S / 3600.0 if args.min_age_hours is None else args.min_age_hours
    if not hours >= 0:
        raise ConfigError(f"--min-age-hours must be >= 0, got {hours}")
    lake = open_lake(args.lake, must_exist=True, writable=True)
    removed = lake.gc_staging(min_age_s=hours * 3600.0)
    if args.json:
        print(json.dumps({"lake": lake.url(), "min_age_hours": hours, "removed": removed}, indent=2))
    else:
        for url in removed:
            print(f"removed {url}")
        print(f"seaice gc: {len(removed)} leftover(s) older than {hours:g} h removed from {lake.url()}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``seaice``."""
    parser = argparse.ArgumentParser(prog="seaice", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"seaice {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("inspect", help="summarise ATL03/ATL07/ATL10 HDF5 files or S2 rasters")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_inspect)

    p = sub.add_parser("discover", help="list a day's inputs in a catalog and commit the inventory")
    p.add_argument("--date", required=True, help="UTC day YYYY-MM-DD")
    p.add_argument("--catalog", default=None, help="raw input folder/URL (default $SEAICE_CATALOG)")
    p.add_argument("--lake", default=None, help="storage root (default $SEAICE_LAKE or ./var/lake)")
    p.add_argument("--config", default="{}", help="DiscoverConfig JSON, e.g. "
                   '\'{"is2_source": "cmr", "s2_source": "stac", "bbox": [-180, -90, 180, -50]}\'')
    p.set_defaults(func=_cmd_discover)

    p = sub.add_parser("publish", help="commit a day's summary and publish its partitions to the lake's STAC catalog")
    p.add_argument("--date", required=True, help="UTC day YYYY-MM-DD")
    p.add_argument("--lake", default=None, help="storage root (default $SEAICE_LAKE or ./var/lake)")
    p.add_argument("--config", default="{}", help="PublishConfig as JSON (license, title, max_info_bytes)")
    p.set_defaults(func=_cmd_publish)

    p = sub.add_parser("simulate", help="write a simulated day (ATL03/ATL07/ATL10 + S2) with its truth")
    p.add_argument("--out", required=True, help="output folder (catalog/ and truth/ are created in it)")
    p.add_argument("--day", default="", help="a named day of seaice_tasks.sim.days (docs/simulator.md: tuning and "
                                             "unseen days: haze, night, the other orientation, dense leads); "
                                             "its date, seeds and conditions, sizes overridable")
    p.add_argument("--date", default=None, help=f"UTC day YYYY-MM-DD (default {DEFAULT_SIM_DATE})")
    p.add_argument("--granules", type=int, default=None, help="number of ATL03 granules (default 3)")
    p.add_argument("--km", type=float, default=None, help="along-track length of each granule (km; default 100)")
    p.add_argument("--seed", type=int, default=None,
                   help=f"seed of the day and of the world (default {DEFAULT_SIM_SEED})")
    p.add_argument("--scenes-per-granule", type=int, default=None,
                   help="Sentinel-2 scenes over each track (default 1)")
    p.add_argument("--scene-km", type=float, default=None, help="side of each Sentinel-2 scene (km; default 20)")
    p.add_argument("--no-clouds", action="store_true", help="cloud-free Sentinel-2 scenes")
    p.add_argument("--benchmark-beam", type=int, default=0, metavar="N",
                   help="instead: write one strong beam of at least N photons, streaming")
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("resample", help="ATL03 granules -> 2 m segments in the lake (a Spark job)")
    p.add_argument("granules", nargs="*", metavar="GRANULE", help="ATL03 files/URLs (or use --date)")
    p.add_argument("--date", default=None, help="UTC day: the ATL03 granules of its committed inventory")
    p.add_argument("--lake", default=None, help="storage root (default $SEAICE_LAKE or ./var/lake)")
    p.add_argument("--config", default="{}",
                   help="ResampleConfig fields as JSON (max_photons_per_chunk: photons per work item)")
    p.add_argument("--master", default="local[*]", help="Spark master (local[*], spark://host:7077)")
    p.add_argument("--no-spark", action="store_true", help="run in this process without Spark")
    p.set_defaults(func=_cmd_resample)

    p = sub.add_parser("label-s2", help="Sentinel-2 scenes -> filtered colour labels in the lake (a Spark job)")
    p.add_argument("scenes", nargs="*", metavar="SCENE", help="scene folders/files (or use --date)")
    p.add_argument("--date", default=None, help="UTC day: the S2 scenes of its committed inventory")
    p.add_argument("--lake", default=None, help="storage root (default $SEAICE_LAKE or ./var/lake)")
    p.add_argument("--config", default="{}", help="S2LabelConfig fields as JSON")
    p.add_argument("--unet-model", default="", metavar="DIR",
                   help="also label with this trained U-Net (a save_unet model folder) into s2_unet_labels")
    p.add_argument("--master", default="local[*]", help="Spark master (local[*], spark://host:7077)")
    p.add_argument("--no-spark", action="store_true", help="run in this process without Spark")
    p.set_defaults(func=_cmd_label_s2)

    p = sub.add_parser("colocate", help="2 m tracks x S2 labels -> pairs, drift shifts, labelled segments (Spark)")
    p.add_argument("granules", nargs="*", metavar="GRANULE", help="granule keys (default: every 2 m track of the day)")
    p.add_argument("--date", required=True, help="UTC day YYYY-MM-DD of the 2 m tracks")
    p.add_argument("--lake", default=None, help="storage root (default $SEAICE_LAKE or ./var/lake)")
    p.add_argument("--config", default="{}", help="ColocateConfig fields as JSON (refine, drift_scope, ...)")
    p.add_argument("--corrections", default="", metavar="URL",
                   help="manual label corrections (CSV/Parquet: granule, beam, x_from, x_to, class, author, note)")
    p.add_argument("--drift-overrides", default="", metavar="URL",
                   help="manual drift shifts (CSV/Parquet: granule, beam, scene, dx, dy, author, note)")
    p.add_argument("--master", default="local[*]", help="Spark master (local[*], spark://host:7077)")
    p.add_argument("--no-spark", action="store_true", help="run in this process without Spark")
    p.set_defaults(func=_cmd_colocate)

    p = sub.add_parser("training-set", help="labelled segments of some days -> a versioned, immutable training set")
    p.add_argument("--dates", required=True, help="comma-separated UTC days YYYY-MM-DD")
    p.add_argument("--name", default="", help="training-set name (default: the config's, 'seaice')")
    p.add_argument("--lake", default=None, help="storage root (default $SEAICE_LAKE or ./var/lake)")
    p.add_argument("--config", default="{}", help="TrainingSetConfig fields as JSON (features, split, block_m, ...)")
    p.set_defaults(func=_cmd_training_set)

    p = sub.add_parser("classify", help="classify every 2 m segment of a day with the promoted model (Spark)")
    p.add_argument("granules", nargs="*", metavar="GRANULE", help="granule keys (default: every 2 m track of the day)")
    p.add_argument("--date", required=True, help="UTC day YYYY-MM-DD of the 2 m tracks")
    p.add_argument("--lake", default=None, help="storage root (default $SEAICE_LAKE or ./var/lake)")
    p.add_argument("--config", default="{}", help="ClassifyConfig fields as JSON (model, version, ...)")
    p.add_argument("--master", default="local[*]", help="Spark master (local[*], spark://host:7077)")
    p.add_argument("--no-spark", action="store_true", help="run in this process without Spark")
    p.set_defaults(func=_cmd_classify)

    for name, func, help_text, config_help in (
        ("freeboard", _cmd_freeboard, "sea surfaces, freeboard and thickness of a day's classified segments (Spark)",
         'FreeboardConfig as JSON ({"surface": {"reference": "nasa"}, "thickness": {"snow": "constant"}})'),
        ("validate", _cmd_validate, "a day's freeboard against ATL07/ATL10: figures, quicklooks, report (Spark)",
         "ValidateConfig fields as JSON (histogram_bins, quicklook, zoom_m, ...)"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("granules", nargs="*", metavar="GRANULE", help="granule keys (default: every track of the day)")
        p.add_argument("--date", required=True, help="UTC day YYYY-MM-DD")
        p.add_argument("--lake", default=None, help="storage root (default $SEAICE_LAKE or ./var/lake)")
        p.add_argument("--config", default="{}", help=config_help)
        p.add_argument("--master", default="local[*]", help="Spark master (local[*], spark://host:7077)")
        p.add_argument("--no-spark", action="store_true", help="run in this process without Spark")
        p.set_defaults(func=func)

    p = sub.add_parser("plot", help="write a day's quicklooks and freeboard histogram as PNG files")
    p.add_argument("granules", nargs="*", metavar="GRANULE", help="granule keys (default: every track of the day)")
    p.add_argument("--date", required=True, help="UTC day YYYY-MM-DD")
    p.add_argument("--lake", default=None, help="storage root (default $SEAICE_LAKE or ./var/lake)")
    p.add_argument("--out", required=True, help="folder the PNG files are written to")
    p.set_defaults(func=_cmd_plot)

    p = sub.add_parser("status", help="recent skipped/failed inputs and open incidents (lake), runs and failed tasks "
                                     "(Airflow REST API)")
    p.add_argument("--lake", default=None, help="storage root (default $SEAICE_LAKE or ./var/lake)")
    p.add_argument("--days", type=int, default=7, help="days back from today (UTC) to show")
    p.add_argument("--today", default="", help="the last day shown, YYYY-MM-DD (default: today, UTC)")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.add_argument("--airflow", default="", help="API server URL for recent runs and failed tasks (default "
                   "$SEAICE_AIRFLOW_URL; none: the lake only); password from $SEAICE_AIRFLOW_PASSWORD")
    p.add_argument("--airflow-user", default="admin", help="user of the Airflow API (default admin)")
    p.add_argument("--runs", type=int, default=20, help="newest DAG runs shown from Airflow")
    p.set_defaults(func=_cmd_status)

    p = sub.add_parser("train", help="train an LSTM / MLP classifier of 2 m segments on a training set")
    p.add_argument("--lake", default=None, help="storage root (default $SEAICE_LAKE or ./var/lake)")
    p.add_argument("--name", default="", help="model name (default seaice-is2-lstm)")
    p.add_argument("--preset", default="", help="notebook (default), paper or mlp")
    p.add_argument("--training-set", default="", help="training-set name (default seaice)")
    p.add_argument("--training-set-version", default="", help="its version (default: the newest)")
    p.add_argument("--epochs", type=int, default=None, help="epochs (default: the preset's)")
    p.add_argument("--batch-size", type=int, default=None, help="per-process batch (default: the preset's, 32)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the preset's)")
    p.add_argument("--seed", type=int, default=None, help="seed of weights, shuffling, dropout (0)")
    p.add_argument("--device", default="", help="cpu (default), cuda or cuda:N")
    p.add_argument("--backend", choices=("single", "horovod", "torchrun"), default="single",
                   help="single process, horovodrun or torchrun")
    p.add_argument("--np", type=int, default=1, help="processes (horovod / torchrun)")
    p.add_argument("--hosts", default="", help="horovod host list, e.g. dgx1:8,dgx2:8 (default localhost:NP)")
    p.add_argument("--config", default="", help="SegmentTrainConfig fields as JSON (flags win)")
    p.add_argument("--no-promote", action="store_true", help="do not promote the model even when it is better")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("models", help="list, show or promote models of the lake's registry")
    p.add_argument("action", choices=("list", "show", "promote"))
    p.add_argument("model", nargs="?", default="", help="model name (list: filter; show/promote: required)")
    p.add_argument("version", nargs="?", default="", help="version (show: default the promoted one)")
    p.add_argument("--lake", default=None, help="storage root (default $SEAICE_LAKE or ./var/lake)")
    p.add_argument("--force", action="store_true", help="promote even when not better")
    p.add_argument("--json", action="store_true", help="machine-readable output (list)")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("demo", help="run the embedded default day through the daily DAG")
    p.add_argument("--workdir", default="var/demo", help="folder for the demo's catalog, lake and Airflow home")
    p.add_argument("--date", default=None, help="day to run (default: the demo day)")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("gc", help="remove leftovers of dead runs and killed commits from the lake")
    p.add_argument("--lake", default=None, help="storage root (default $SEAICE_LAKE or ./var/lake)")
    p.add_argument("--min-age-hours", type=float, default=None, metavar="H",
                   help="remove only what is untouched for H hours (default 6: a live run is never touched)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_gc)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``seaice`` script; returns the exit status."""
    from seaice_tasks.redact import install_secret_filter, redact, secrets_from_env

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    install_secret_filter()  # no log level shows a token, password or secret key
    try:
        status: int = args.func(args)
    except SeaIceError as exc:
        print(f"seaice {args.command}: error: {redact(str(exc), secrets_from_env())}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except FileNotFoundError as exc:
        print(f"seaice {args.command}: error: {redact(str(exc), secrets_from_env())}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
