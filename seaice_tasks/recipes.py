"""Named recipes: the settings of the stages that decide what the pipeline learns and publishes.

A recipe is one configuration per stage (the ``--config`` JSON of each job).  Two are named:

``default``
    What the daily DAG runs (every stage's defaults): training labels that the photons confirm
    (``ColocateConfig.label_policy="evidence"``), features that mean the same on every day
    (``TrainingSetConfig.features="robust"``), open water only where the photons support it
    (``ClassifyConfig.water_vote_min``), leads that the classifier and the photons agree on
    (``FreeboardConfig.leads="confirmed"``) and unbiased per-lead heights
    (``SeaSurfaceConfig.weight_form="mean"``).  Chosen on the tuning days of
    :mod:`seaice_tasks.sim.days`; scored on the unseen days (docs/classification.md,
    docs/freeboard.md).
``paper``
    The papers' method (Iqrah et al., METHOD.md): Sentinel-2 colour labels as they are, the
    authors' notebook features, the classifier's argmax, its open water as leads, Eq. 2 lead
    heights and the ATL10 window surface with Eq. 3's uncertainty alone (Eqs. 2-3).  Kept so that
    parity with P1 stays measurable.

Examples
--------
>>> sorted(RECIPES)
['default', 'paper']
>>> import json
>>> paper = json.loads(recipe_json("paper")["freeboard"])
>>> paper["leads"], paper["surface"]["weight_form"], paper["surface"]["reference"]
('classes', 'paper', 'nasa')
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from seaice_tasks.config import JsonConfig
from seaice_tasks.errors import ConfigError
from seaice_tasks.is2.classify import ClassifyConfig
from seaice_tasks.is2.colocate import ColocateConfig
from seaice_tasks.is2.training_set import TrainingSetConfig
from seaice_tasks.surface.freeboard import FreeboardConfig
from seaice_tasks.surface.sea_surface import SeaSurfaceConfig

__all__ = ["RECIPES", "recipe", "recipe_json"]

_DEFAULT: Final[Mapping[str, JsonConfig]] = MappingProxyType({
    "colocate": ColocateConfig(),
    "training_set": TrainingSetConfig(),
    "classify": ClassifyConfig(),
    "freeboard": FreeboardConfig(),
})
_PAPER: Final[Mapping[str, JsonConfig]] = MappingProxyType({
    "colocate": ColocateConfig(label_policy="s2"),
    "training_set": TrainingSetConfig(features="notebook"),
    "classify": ClassifyConfig(water_vote_min=0.0),
    "freeboard": FreeboardConfig(leads="classes", surface=SeaSurfaceConfig(reference="nasa", weight_form="paper",
                                                                           surface_sigma_floor_m=0.0)),
})
#: Every named recipe: stage (job name) -> its configuration.
RECIPES: Final[Mapping[str, Mapping[str, JsonConfig]]] = MappingProxyType({"default": _DEFAULT, "paper": _PAPER})


def recipe(name: str) -> Mapping[str, JsonConfig]:
    """The configurations of a named recipe by stage.

    Raises
    ------
    ConfigError
        When ``name`` is not a recipe (one line listing the known ones).
    """
    found = RECIPES.get(name)
    if found is None:
        raise ConfigError(f"unknown recipe {name!r}; known: {', '.join(sorted(RECIPES))}")
    return found


def recipe_json(name: str) -> dict[str, str]:
    """The ``--config`` JSON of each stage of a recipe (every field: ``seaice <job> --config "$(...)"``)."""
    return {stage: config.to_json() for stage, config in recipe(name).items()}
