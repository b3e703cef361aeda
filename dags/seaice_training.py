"""
### seaice_training

Training of the 2 m segment classifier (LSTM presets or the MLP baseline) on the newest
training set, whenever the daily DAG commits one (schedule: the Asset `seaice_training_set`),
or by hand with Params.

1. `train` (pool `dgx`, queue `gpu`) runs the launcher command: one process, `horovodrun -np N
   -H localhost:N --gloo` (or the `hosts` list) or `torchrun --nproc-per-node N`; every rank
   checkpoints into the lake (rank 0 writes), so a retry resumes from the last finished epoch;
   rank 0 commits the model as `models/name=<model>/version=<v>` (weights, card, confusion plot);
2. `evaluate` loads the committed model from the lake (safetensors + JSON, no pickle), scores it
   again on the held-out split and fails when that differs from its card;
3. `promote` makes it the default of inference (`model_promotions/name=<model>`) only when it
   predicts every class and beats the promoted version on the same evaluation windows (both
   training sets' test splits, macro F1 over all classes: `seaice_tasks.train.promotion`).

* Params: `lake`, `model` (name), `preset` (notebook / paper / mlp), `backend` (single /
  horovod / torchrun), `np` (processes), `hosts` (Horovod host list, e.g. `dgx1:8,dgx2:8`),
  `epochs` (0: the preset's), `training_set` (name), `training_set_version` (empty: newest),
  `config` (more SegmentTrainConfig fields as JSON, e.g. `{"device": "cuda"}`).
* The `dgx` pool must exist: `airflow pools set dgx 1 "GPU training host"` (one training at a
  time per host; docs/operations.md).  Tasks of queue `gpu` run on the Celery workers that
  listen to it (docker-compose's GPU worker); other executors ignore the queue.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pendulum
from airflow.sdk import Asset, Param, dag, task

#: The daily DAG's outlet: updated whenever a new training set version is committed.
TRAINING_SET_ASSET = Asset(name="seaice_training_set", uri="seaice://lake/training_set")
#: The model registry: updated whenever a model is promoted.
MODEL_ASSET = Asset(name="seaice_model", uri="seaice://lake/models")

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "seaice",
    "retries": 2,
    "retry_delay": dt.timedelta(minutes=2),
    "retry_exponential_backoff": True,
}


def _config(params: dict[str, Any]) -> Any:
    from seaice_tasks.train.segments import SegmentTrainConfig

    fields = dict(params.get("config") or {})
    for name in ("preset", "training_set", "training_set_version"):
        if params.get(name):
            fields[name] = params[name]
    if params.get("model"):
        fields["name"] = params["model"]
    if int(params.get("epochs") or 0):
        fields["epochs"] = int(params["epochs"])
    return SegmentTrainConfig.from_dict(fields)


@dag(
    dag_id="seaice_training",
    doc_md=__doc__,
    schedule=[TRAINING_SET_ASSET],
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["seaice", "training", "horovod"],
    params={
        "lake": Param(None, type=["null", "string"], description="storage root; empty = $SEAICE_LAKE"),
        "model": Param("seaice-is2-lstm", type="string", description="model name in the registry"),
        "preset": Param("notebook", type="string", enum=["notebook", "paper", "mlp"], description="architecture"),
        "backend": Param("single", type="string", enum=["single", "horovod", "torchrun"],
                         description="launcher: one process, horovodrun or torchrun"),
        "np": Param(1, type="integer", minimum=1, description="processes (GPUs) of the run"),
        "hosts": Param(None, type=["null", "string"],
                         description="horovod host list (host:slots,...); empty = localhost:np"),
        "epochs": Param(0, type="integer", minimum=0, description="epochs; 0 = the preset's"),
        "training_set": Param("seaice", type="string", description="training-set name"),
        "training_set_version": Param(None, type=["null", "string"],
                         description="training-set version; empty = the newest"),
        "config": Param({}, type="object", description="more SegmentTrainConfig fields (JSON)"),
    },
)
def seaice_training() -> None:
    @task(pool="dgx", queue="gpu", execution_timeout=dt.timedelta(hours=6))
    def train(params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run the launcher; a retry resumes from the run's last checkpoint."""
        from seaice_tasks.storage import lake_from_env
        from seaice_tasks.train.launch import run_training
        from seaice_tasks.train.segments import train_segment_model

        p = params or {}
        lake = lake_from_env(p.get("lake") or None)
        config = _config(p)
        backend, nproc = str(p.get("backend") or "single"), int(p.get("np") or 1)
        if backend == "single" and nproc == 1:
            result = train_segment_model(lake, config)
            result.pop("history", None)
        else:
            result = run_training(backend, nproc, lake.root, config, hosts=str(p.get("hosts") or ""))
        return {k: result[k] for k in ("model", "version", "backend", "world_size", "training_set", "committed")}

    @task
    def evaluate(trained: dict[str, Any], params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Reload the committed model and re-score the held-out split; it must match the card."""
        from seaice_tasks.storage import lake_from_env
        from seaice_tasks.train.segments import reevaluate

        p = params or {}
        return reevaluate(lake_from_env(p.get("lake") or None), _config(p).name, trained["version"])

    @task(outlets=[MODEL_ASSET])
    def promote(evaluated: dict[str, Any], params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Promote the model when it sees every class and beats the promoted one on the same windows."""
        from seaice_tasks.storage import lake_from_env
        from seaice_tasks.train.promotion import promote as promote_model

        p = params or {}
        return promote_model(lake_from_env(p.get("lake") or None), _config(p).name, evaluated["version"])

    promote(evaluate(train()))


DAG = seaice_training()
