"""Named simulated days: the ones already used for training and tuning, and unseen evaluation days.

A method is tuned on some days and scored on others.  The simulator's days differ from each
other only where their :class:`~seaice_tasks.sim.geometry.SimConfig` differs, so an evaluation
that should say something about real days must use days that differ from the tuning days the
way real days do: lead density and thin-ice share, spacecraft orientation (which beams are
strong), solar background (day or night) and return strength (haze, thin cloud).

:data:`DAYS` lists every day by name with its role:

* ``training`` -- a model was fitted on it;
* ``tuning`` -- a method or a parameter was chosen while looking at it;
* ``evaluation (reported)`` -- an experiment's evaluation day whose numbers are in the docs: it was
  never tuned on, but it has been looked at;
* ``unseen`` -- never used for training or tuning, never reported: keep it that way (score a new
  method once, on all unseen days, after the method is frozen).

Every unseen day has its own date, day seed and world seed (different ice, tracks and clouds
from every other day) and differs from the training days in one or two of the ways above.
``docs/simulator.md`` has the table.

Examples
--------
>>> day("unseen_night").date
'2019-06-24'
>>> sorted(n for n, d in DAYS.items() if d.role == UNSEEN)[:2]
['unseen_dense_forward', 'unseen_hazy_backward']
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from seaice_tasks.errors import ConfigError
from seaice_tasks.sim.atmosphere import AtmosphereConfig
from seaice_tasks.sim.geometry import SimConfig
from seaice_tasks.sim.world import WorldConfig

__all__ = ["NamedDay", "DAYS", "day", "days_of", "unseen_days", "TRAINING", "TUNING", "REPORTED", "UNSEEN"]

TRAINING: Final[str] = "training"
TUNING: Final[str] = "tuning"
REPORTED: Final[str] = "evaluation (reported)"
UNSEEN: Final[str] = "unseen"
_ROLES: Final[frozenset[str]] = frozenset({TRAINING, TUNING, REPORTED, UNSEEN})

#: Lead area of the dense-lead day: 9 % open water + 16 % thin ice (training days: 4 + 6 %).
DENSE_WATER_FRACTION: Final[float] = 0.09
DENSE_THIN_FRACTION: Final[float] = 0.16
#: Local solar time window (h) of the night day: around local midnight.
NIGHT_LOCAL_HOURS: Final[tuple[float, float]] = (23.0, 25.0)
#: The hazy day: haze of two-way transmission 0.6 and thin-cloud patches over ~30 % of each
#: track, each patch transmitting 0.5-0.9 of what the haze lets through (0.30-0.54 in all).
HAZY_ATMOSPHERE: Final[AtmosphereConfig] = AtmosphereConfig(
    transmission=0.6, patch_fraction=0.3, patch_transmission=(0.5, 0.9), patch_length_m=4000.0)
#: Thin-cloud patches alone (no haze) over ~40 % of each track, transmission 0.3-0.7.
PATCHY_ATMOSPHERE: Final[AtmosphereConfig] = AtmosphereConfig(
    transmission=1.0, patch_fraction=0.4, patch_transmission=(0.3, 0.7), patch_length_m=6000.0)
#: The sparse-lead day: 2 % open water + 4 % thin ice.
SPARSE_WATER_FRACTION: Final[float] = 0.02
SPARSE_THIN_FRACTION: Final[float] = 0.04
#: Where issue 26's evaluation days are reported.
_ISSUE_26: Final[str] = ("experiments/unseen_days.py --days unseen: scored once on 2026-12-08 after the method was "
                         "frozen (docs/classification.md, docs/freeboard.md)")
#: The U-Net experiment's world (experiments/unet_experiment.py): 10 % water, 15 % thin ice.
_UNET_WATER_FRACTION: Final[float] = 0.10
_UNET_THIN_FRACTION: Final[float] = 0.15


@dataclasses.dataclass(frozen=True)
class NamedDay:
    """One named simulated day.

    Attributes
    ----------
    name : str
        Registry key.
    config : SimConfig
        The day (date, seeds, sizes, knobs).
    role : str
        :data:`TRAINING`, :data:`TUNING`, :data:`REPORTED` or :data:`UNSEEN`.
    differs : str
        How the day differs from the training days (empty for those).
    used_by : str
        Where the day is used (module or experiment), or what it is for.
    """

    name: str
    config: SimConfig
    role: str
    differs: str
    used_by: str

    def __post_init__(self) -> None:
        if self.role not in _ROLES:
            raise ConfigError(f"NamedDay {self.name}: role {self.role!r} not one of {sorted(_ROLES)}")

    @property
    def date(self) -> str:
        """The UTC day ``YYYY-MM-DD``."""
        return self.config.date


def _unet_world(seed: int) -> WorldConfig:
    return WorldConfig(seed=seed, water_fraction=_UNET_WATER_FRACTION, thin_fraction=_UNET_THIN_FRACTION)


_ALL: Final[tuple[NamedDay, ...]] = (
    # -- days already used (the configs as the scripts build them) -----------------------------------
    NamedDay("demo_train", SimConfig(date="2019-11-03", seed=20191103, granules=2, km=60.0), TRAINING, "",
             "seaice_tasks.demo.TRAIN_CONFIG: the demo's classifier is trained on it"),
    NamedDay("demo", SimConfig(), TUNING, "",
             "seaice_tasks.demo.DEMO_CONFIG (make demo); the freeboard lead_kernel_m was chosen on it"),
    NamedDay("classifier_train", SimConfig(date="2019-11-05", seed=105), TRAINING, "",
             "experiments/classifier_accuracy.py TRAIN_DAY"),
    NamedDay("classifier_eval", SimConfig(date="2019-11-08", seed=108), REPORTED,
             "date and seed (tracks, clouds); the demo's world", "experiments/classifier_accuracy.py EVAL_DAY"),
    NamedDay("freeboard_design", SimConfig(date="2019-11-10", seed=1110), TUNING,
             "date and seed (tracks, clouds); the demo's world",
             "looked at while the freeboard 'leads' surface was designed (docs/freeboard.md)"),
    NamedDay("freeboard_eval", SimConfig(date="2019-11-12", seed=1112), REPORTED,
             "date and seed (tracks, clouds); the demo's world", "experiments/freeboard_accuracy.py EVAL_DAY"),
    NamedDay("unet_train", SimConfig(date="2019-11-04", seed=20191104, granules=3, scene_km=5.0,
                                     world=_unet_world(1104)), TRAINING, "",
             "experiments/unet_experiment.py training day (world seed 1104)"),
    NamedDay("unet_eval", SimConfig(date="2019-11-26", seed=20191126, granules=2, scene_km=5.0,
                                    world=_unet_world(1126)), REPORTED, "date, day and world seeds",
             "experiments/unet_experiment.py evaluation day (world seed 1126)"),
    # -- tuning days of the photon leads, labels and features (experiments/unseen_days.py --days tuning) -----
    NamedDay("tune_hazy", SimConfig(date="2019-11-19", seed=9019, atmosphere=HAZY_ATMOSPHERE,
                                    world=WorldConfig(seed=9119)), TUNING,
             "return strength: the hazy day's atmosphere", "photon evidence, label policy, features, leads"),
    NamedDay("tune_backward", SimConfig(date="2019-11-20", seed=9020, sc_orient=0, world=WorldConfig(seed=9120)),
             TUNING, "spacecraft backward (sc_orient 0)", "photon evidence, label policy, features, leads"),
    NamedDay("tune_night", SimConfig(date="2019-06-20", seed=9620, overpass_local_hours=NIGHT_LOCAL_HOURS,
                                     world=WorldConfig(seed=9720)), TUNING,
             "night: polar winter at local midnight, no Sentinel-2 scene", "photon evidence, features, leads"),
    NamedDay("tune_dense", SimConfig(date="2019-11-21", seed=9021, world=WorldConfig(
        seed=9121, water_fraction=DENSE_WATER_FRACTION, thin_fraction=DENSE_THIN_FRACTION)), TUNING,
             "lead density: 9 % water + 16 % thin ice", "photon evidence, label policy, features, leads"),
    # -- issue 26's evaluation days: scored once, after the method was frozen (reported) --------------
    NamedDay("unseen_dense_leads",
             SimConfig(date="2019-11-14", seed=7014, world=WorldConfig(
                 seed=8014, water_fraction=DENSE_WATER_FRACTION, thin_fraction=DENSE_THIN_FRACTION)),
             REPORTED, "lead density and thin-ice share: 9 % water + 16 % thin ice (training: 4 + 6 %)",
             _ISSUE_26),
    NamedDay("unseen_backward", SimConfig(date="2019-11-17", seed=7017, sc_orient=0, world=WorldConfig(seed=8017)),
             REPORTED, "spacecraft backward (sc_orient 0): strong beams gt1l/gt2l/gt3l on the left", _ISSUE_26),
    NamedDay("unseen_night",
             SimConfig(date="2019-06-24", seed=7624, overpass_local_hours=NIGHT_LOCAL_HOURS,
                       world=WorldConfig(seed=8624)),
             REPORTED, "night: polar winter at local midnight (sun ~40 deg below the horizon), night background "
             "only, no Sentinel-2 scene (unlit)", _ISSUE_26),
    NamedDay("unseen_hazy", SimConfig(date="2019-11-22", seed=7022, atmosphere=HAZY_ATMOSPHERE,
                                      world=WorldConfig(seed=8022)),
             REPORTED, "return strength: haze (T 0.6) and thin-cloud patches (T 0.30-0.54, ~30 % of the track)",
             _ISSUE_26),
    NamedDay("unseen_backward_patchy",
             SimConfig(date="2019-11-29", seed=7029, sc_orient=0, atmosphere=PATCHY_ATMOSPHERE,
                       world=WorldConfig(seed=8029, water_fraction=0.06, thin_fraction=0.10)),
             REPORTED, "backward orientation + thin-cloud patches (T 0.3-0.7, ~40 % of the track), "
             "6 % water + 10 % thin ice", _ISSUE_26),
    # -- unseen evaluation days: kept for the next method ------------------------------------------------
    NamedDay("unseen_night_dense",
             SimConfig(date="2019-06-28", seed=7628, overpass_local_hours=NIGHT_LOCAL_HOURS, world=WorldConfig(
                 seed=8628, water_fraction=DENSE_WATER_FRACTION, thin_fraction=DENSE_THIN_FRACTION)),
             UNSEEN, "night (no Sentinel-2 scene) + 9 % water and 16 % thin ice", "evaluation only"),
    NamedDay("unseen_hazy_backward",
             SimConfig(date="2019-11-25", seed=7025, sc_orient=0, atmosphere=HAZY_ATMOSPHERE,
                       world=WorldConfig(seed=8025)),
             UNSEEN, "backward orientation + the hazy day's atmosphere", "evaluation only"),
    NamedDay("unseen_sparse_patchy",
             SimConfig(date="2019-11-27", seed=7027, atmosphere=PATCHY_ATMOSPHERE,
                       world=WorldConfig(seed=8027, water_fraction=SPARSE_WATER_FRACTION,
                                         thin_fraction=SPARSE_THIN_FRACTION)),
             UNSEEN, "few leads (2 % water + 4 % thin ice) + thin-cloud patches", "evaluation only"),
    NamedDay("unseen_dense_forward",
             SimConfig(date="2019-11-30", seed=7030, world=WorldConfig(seed=8030, water_fraction=0.07,
                                                                       thin_fraction=0.13)),
             UNSEEN, "lead density: 7 % water + 13 % thin ice", "evaluation only"),
)

#: Every named day by name (read-only).
DAYS: Final[Mapping[str, NamedDay]] = MappingProxyType({d.name: d for d in _ALL})


def day(name: str) -> SimConfig:
    """The :class:`SimConfig` of a named day.

    Raises
    ------
    ConfigError
        When ``name`` is not in :data:`DAYS` (one line listing the known names).
    """
    found = DAYS.get(name)
    if found is None:
        raise ConfigError(f"unknown simulated day {name!r}; known: {', '.join(sorted(DAYS))}")
    return found.config


def days_of(role: str) -> tuple[NamedDay, ...]:
    """The days of one role, in registry order.

    Raises
    ------
    ConfigError
        When ``role`` is not one of the roles.
    """
    if role not in _ROLES:
        raise ConfigError(f"unknown role {role!r}; known: {', '.join(sorted(_ROLES))}")
    return tuple(d for d in _ALL if d.role == role)


def unseen_days() -> tuple[NamedDay, ...]:
    """The days never used for training or tuning, in registry order."""
    return tuple(d for d in _ALL if d.role == UNSEEN)
