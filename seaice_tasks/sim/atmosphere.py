"""Atmospheric transmission of the simulated ICESat-2 passes: haze and patches of thin cloud.

ATLAS ranges through the whole atmosphere twice.  Aerosol haze and thin (semi-transparent)
cloud attenuate every return without hiding the surface: fewer signal photons per shot, so
NASA's ATL07 segments (a fixed ~150 signal photons each) get longer, and at very low
transmission a segment's photon rate falls below the cloud threshold.  Opaque clouds, where no
signal comes back at all, are modelled separately (:func:`seaice_tasks.sim.atl03.cloud_gaps`).

Model (per granule, the same for its six beams, which lie within 3.4 km of each other):

* **Transmission** T(s) along track (two-way, 0-1) = ``transmission`` (the day's haze) x the
  transmission of the thin-cloud patch over s (1 outside patches).
* **Patches**: an alternating renewal process along track: patch lengths are exponential with
  mean ``patch_length_m`` (the correlation length of the cloud field), clear gaps between them
  exponential with mean ``patch_length_m * (1 - f) / f``, so the expected share of the track
  under patches is f = ``patch_fraction``; the first interval is a patch with probability f
  (the process is stationary).  Each patch draws its own two-way transmission
  U(``patch_transmission``).  The draws come from their own ``numpy.random.Generator`` seeded by
  (day seed, ``_TAG_ATMOSPHERE``, RGT), so switching the atmosphere on shifts no other draw.
* **Signal** (surface photons, afterpulses, impulse-response tails): the photon rate of each
  shot x T(s).
* **Solar background** (the sunlit part of the background rate only): the surface-reflected
  sunlight crosses the attenuating layer once on its way up to the telescope (the downwelling
  sunlight is mostly scattered forward and stays as diffuse illumination), so it is x sqrt(T),
  and the layer itself sends back the light it scatters, with a reflectance
  ``CLOUD_BACKSCATTER_ALBEDO`` on the scale of ``BACKGROUND_ALBEDO`` (snow 1.0):
  ``rate = solar * (albedo * sqrt(T) + CLOUD_BACKSCATTER_ALBEDO * (1 - sqrt(T)))``.  Over snow the
  background falls less than the signal (T = 0.4: signal x 0.40, background x 0.71); over dark
  water it is unchanged.  The night part of the rate (detector dark counts, airglow) is not
  attenuated.

The Sentinel-2 scenes have their own haze (:mod:`seaice_tasks.sim.s2`), drawn independently:
a scene is sensed 7-48 min before or after the ICESat-2 pass, while thin cloud moves by tens of km
and changes shape, so the two sensors do not see the same patches.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Final

import numpy as np
import numpy.typing as npt

from seaice_tasks.config import JsonConfig
from seaice_tasks.errors import ConfigError

__all__ = [
    "AtmosphereConfig",
    "TransmissionProfile",
    "transmission_profile",
    "solar_background_change",
    "CLOUD_BACKSCATTER_ALBEDO",
]

FloatArray = npt.NDArray[np.float64]

#: Reflectance of the light a thin cloud or haze layer scatters back up, relative to snow
#: (the scale of ``seaice_tasks.sim.atl03.BACKGROUND_ALBEDO``): a cloud of optical depth ~0.5
#: reflects ~10-20 % (strong forward scattering), as bright as open water in our scale.
CLOUD_BACKSCATTER_ALBEDO: Final[float] = 0.2
#: Tag of the atmosphere's generator (distinct from every other tag of the simulator).
_TAG_ATMOSPHERE: Final[int] = 303
#: Columns of the patch table: start and end along track (m from the first shot), transmission.
_PATCH_COLUMNS: Final[int] = 3


@dataclasses.dataclass(frozen=True)
class AtmosphereConfig(JsonConfig):
    """Haze and thin-cloud patches over a simulated day's ICESat-2 passes (all defaults: clear).

    Attributes
    ----------
    transmission : float
        Two-way transmission of the day's haze, in (0, 1]; 1 is a clear sky.
    patch_fraction : float
        Expected share of each track under thin-cloud patches, in [0, 1).
    patch_transmission : (float, float)
        Range of a patch's own two-way transmission, 0 < lo <= hi <= 1; each patch draws
        U(lo, hi), multiplied by ``transmission``.
    patch_length_m : float
        Mean along-track length of a patch (m): the correlation length of the cloud field.
    """

    kind: ClassVar[str] = "sim_atmosphere"
    transmission: float = 1.0
    patch_fraction: float = 0.0
    patch_transmission: tuple[float, float] = (0.2, 0.6)
    patch_length_m: float = 5000.0

    def __post_init__(self) -> None:
        if not 0.0 < self.transmission <= 1.0:
            raise ConfigError(f"AtmosphereConfig.transmission: must be in (0, 1], got {self.transmission}")
        if not 0.0 <= self.patch_fraction < 1.0:
            raise ConfigError(f"AtmosphereConfig.patch_fraction: must be in [0, 1), got {self.patch_fraction}")
        lo, hi = self.patch_transmission
        if not 0.0 < lo <= hi <= 1.0:
            raise ConfigError(f"AtmosphereConfig.patch_transmission: need 0 < lo <= hi <= 1, got {(lo, hi)}")
        if not self.patch_length_m > 0.0:
            raise ConfigError(f"AtmosphereConfig.patch_length_m: must be > 0, got {self.patch_length_m}")

    @property
    def clear(self) -> bool:
        """Whether nothing attenuates (the default; the simulated files are then those of a clear sky)."""
        return self.transmission == 1.0 and self.patch_fraction == 0.0


@dataclasses.dataclass(frozen=True)
class TransmissionProfile:
    """Two-way transmission along one track.

    Attributes
    ----------
    haze : float
        The day's haze transmission.
    patches : ndarray, shape (P, 3)
        Thin-cloud patches, sorted and disjoint: start, end (m along track from the first shot,
        [start, end)) and the patch's own transmission.
    """

    haze: float
    patches: FloatArray

    def at(self, s_m: npt.ArrayLike) -> FloatArray:
        """Transmission at along-track distances ``s_m`` (m from the first shot).

        Examples
        --------
        >>> p = TransmissionProfile(0.5, np.array([[10.0, 20.0, 0.4]]))
        >>> p.at([5.0, 15.0, 20.0]).tolist()
        [0.5, 0.2, 0.5]
        """
        s = np.asarray(s_m, dtype=np.float64)
        out = np.full(s.shape, self.haze, dtype=np.float64)
        if self.patches.shape[0] == 0:
            return out
        k = np.searchsorted(self.patches[:, 0], s, side="right") - 1
        inside = (k >= 0) & (s < self.patches[np.maximum(k, 0), 1])
        out[inside] *= self.patches[k[inside], 2]
        return out

    def mean(self, length_m: float) -> float:
        """Mean transmission over ``[0, length_m)`` (exact, from the patch table)."""
        if length_m <= 0.0:
            return self.haze
        covered = np.clip(self.patches[:, 1], 0.0, length_m) - np.clip(self.patches[:, 0], 0.0, length_m)
        loss = float(np.sum(covered * (1.0 - self.patches[:, 2])))
        return self.haze * (1.0 - loss / length_m)

    def to_doc(self, x_atc0_m: float, length_m: float) -> dict[str, Any]:
        """JSON-ready record for the truth metadata (patches also as x_atc, m)."""
        return {
            "haze_transmission": self.haze,
            "mean_transmission": self.mean(length_m),
            "patches": [{"s_start_m": float(a), "s_end_m": float(b), "x_atc_start_m": x_atc0_m + float(a),
                         "x_atc_end_m": x_atc0_m + float(b), "patch_transmission": float(t),
                         "transmission": self.haze * float(t)} for a, b, t in self.patches],
        }


def transmission_profile(config: AtmosphereConfig, seed: int, rgt: int, length_m: float) -> TransmissionProfile:
    """The transmission along one track (deterministic from the day ``seed`` and the ``rgt``).

    Parameters
    ----------
    config : AtmosphereConfig
        Haze and patch knobs.
    seed : int
        The day's seed.
    rgt : int
        Reference ground track of the granule.
    length_m : float
        Along-track length of the track (m).

    Returns
    -------
    TransmissionProfile

    Examples
    --------
    >>> cfg = AtmosphereConfig(transmission=0.8, patch_fraction=0.3)
    >>> p = transmission_profile(cfg, 1, 7, 100_000.0)
    >>> bool(0.8 * 0.2 <= p.at(np.arange(0, 100_000, 50.0)).min()), bool(p.at([0.0]).max() <= 0.8)
    (True, True)
    >>> transmission_profile(AtmosphereConfig(), 1, 7, 100_000.0).patches.shape
    (0, 3)
    """
    none = np.zeros((0, _PATCH_COLUMNS), dtype=np.float64)
    if config.patch_fraction == 0.0 or length_m <= 0.0:
        return TransmissionProfile(config.transmission, none)
    rng = np.random.default_rng([seed, _TAG_ATMOSPHERE, rgt])
    f = config.patch_fraction
    mean_patch = config.patch_length_m
    mean_clear = mean_patch * (1.0 - f) / f
    lo, hi = config.patch_transmission
    cloudy = bool(rng.uniform() < f)
    s = 0.0
    rows: list[tuple[float, float, float]] = []
    while s < length_m:
        run = float(rng.exponential(mean_patch if cloudy else mean_clear))
        if cloudy:
            rows.append((s, min(s + run, length_m), float(rng.uniform(lo, hi))))
        s += run
        cloudy = not cloudy
    patches = np.asarray(rows, dtype=np.float64).reshape(-1, _PATCH_COLUMNS)
    return TransmissionProfile(config.transmission, patches if patches.size else none)


def solar_background_change(albedo: npt.ArrayLike, transmission: npt.ArrayLike) -> FloatArray:
    """Change of the solar background factor under a transmission T, per unit solar rate.

    ``albedo * sqrt(T) + CLOUD_BACKSCATTER_ALBEDO * (1 - sqrt(T)) - albedo``: add this times the
    sunlit part of the rate to the clear-sky rate (exactly 0 for T = 1).

    Examples
    --------
    >>> bool((solar_background_change([1.0, 0.2], [1.0, 0.25]) == 0.0).all())  # clear sky; dark water
    True
    >>> round(float(solar_background_change(1.0, 0.25)), 3)
    -0.4
    """
    root = np.sqrt(np.asarray(transmission, dtype=np.float64))
    a = np.asarray(albedo, dtype=np.float64)
    return np.asarray((1.0 - root) * (CLOUD_BACKSCATTER_ALBEDO - a), dtype=np.float64)

