"""The truth world of the simulator: a procedural sea-ice field and a non-flat sea surface.

Everything is a pure, vectorised function of EPSG:3976 coordinates (m) so that any sensor -- a
10 kHz ATL03 beam, a 10 m Sentinel-2 raster, a 2 m truth profile -- samples the same world
without a world-sized raster in memory.

Sea-ice field (with ``shift_m=(0, 0)`` the ice at the ICESat-2 time; a Sentinel-2 scene whose
ice drifted by d until the ICESat-2 pass shows ``sample(x, y, shift_m=-d)``):

* Floes are cells of ``len(floe_scales_m)`` nested jittered-grid Voronoi tessellations (cell sizes
  of km to hundreds of m), so floe sizes span orders of magnitude (a heavy-tailed distribution).
* Every cell boundary at every level is a potential lead with its own width drawn from a
  truncated power law (``lead_width_min_m`` .. ``lead_width_max_m``, exponent
  ``lead_width_alpha``).  A point is in a lead when its distance to the boundary, divided by the
  half-width, is below a threshold; the threshold is calibrated on a deterministic sample so the
  lead area equals ``water_fraction + thin_fraction``.  Each lead is refrozen (thin ice) with
  probability ``thin_fraction / (water_fraction + thin_fraction)``, else open water.
* Freeboard: per floe (finest cell) a log-normal draw clipped to ``thick_freeboard_m``; per
  refrozen lead a uniform draw in ``thin_freeboard_m``; 0 for open water.

Sea surface (ellipsoidal height, m) = MSS + ocean tide + equilibrium tide + DAC + mesoscale
residual, each a smooth function of position (and, for tides/DAC, time), so a single sea level
per granule is wrong by up to a few decimetres and local estimation matters.

Random draws (all from ``seed`` through a counter-based hash, so any point can be evaluated
independently and in any order):

* jitter of each Voronoi seed: hash(seed, level, i, j, 0/1) -> U(0, 1) per axis;
* per boundary (pair of seeds): width U -> power law; refrozen U -> Bernoulli;
* per floe: freeboard U -> log-normal quantile; per lead: thin freeboard U;
* sea-surface modes: ``numpy.random.default_rng(seed)`` draws phases/directions of the residual
  and tide waves once at construction.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar, Final

import numpy as np
import numpy.typing as npt

from seaice_tasks.config import JsonConfig
from seaice_tasks.constants import SeaIceClass
from seaice_tasks.errors import ConfigError

__all__ = ["WorldConfig", "TruthWorld", "hash_uniform", "WORLD_CRS"]

#: CRS of the world: WGS 84 / NSIDC Sea Ice Polar Stereographic South (true scale 70 S).
WORLD_CRS: Final[str] = "EPSG:3976"

FloatArray = npt.NDArray[np.float64]

_CALIBRATION_POINTS: Final[int] = 200_000
_CHUNK_POINTS: Final[int] = 1_000_000
_CALIBRATION_EXTENT_M: Final[float] = 60_000.0
_SPLITMIX_GAMMA: Final[int] = 0x9E3779B97F4A7C15
_MIX1: Final[int] = 0xBF58476D1CE4E5B9
_MIX2: Final[int] = 0x94D049BB133111EB
_U53: Final[float] = 2.0**-53
_TAG_JITTER_X, _TAG_JITTER_Y, _TAG_WIDTH, _TAG_REFROZEN, _TAG_FLOE_FB, _TAG_THIN_FB = range(1, 7)
_RESIDUAL_MODES: Final[int] = 6
_SECONDS_PER_HOUR: Final[float] = 3600.0
_M2_PERIOD_H: Final[float] = 12.42
_K1_PERIOD_H: Final[float] = 23.93


def _mix(z: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64 finaliser (vectorised, wrapping uint64 arithmetic)."""
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(_MIX1)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(_MIX2)
        return z ^ (z >> np.uint64(31))


def hash_uniform(seed: int, *keys: npt.ArrayLike) -> FloatArray:
    """Deterministic U[0, 1) for each element of the broadcast integer ``keys``.

    Examples
    --------
    >>> a = hash_uniform(1, np.arange(3), 7)
    >>> bool(((a >= 0) & (a < 1)).all()), np.array_equal(a, hash_uniform(1, np.arange(3), 7))
    (True, True)
    """
    arrays = np.broadcast_arrays(*[np.asarray(k, dtype=np.int64) for k in keys])
    with np.errstate(over="ignore"):
        h = np.full(arrays[0].shape, np.uint64(seed & 0xFFFFFFFFFFFFFFFF), dtype=np.uint64)
        for k in arrays:
            h = _mix(h + np.uint64(_SPLITMIX_GAMMA) + k.astype(np.uint64))
    return (h >> np.uint64(11)).astype(np.float64) * _U53


@dataclasses.dataclass(frozen=True)
class WorldConfig(JsonConfig):
    """Knobs of the truth world (docs/simulator.md).

    Attributes
    ----------
    seed : int
        Seed of every random draw.
    water_fraction, thin_fraction : float
        Target area fractions of open water and thin ice (thick ice is the rest).
    floe_scales_m : tuple of float
        Voronoi cell sizes of the nested floe levels (m).
    lead_width_min_m, lead_width_max_m : float
        Range of the power-law lead widths (m).
    lead_width_alpha : float
        Exponent of the width density p(w) ~ w^-alpha.
    thick_freeboard_m : (float, float)
        Clip range of thick-ice freeboard (m).
    thick_freeboard_median_m, thick_freeboard_sigma : float
        Log-normal median (m) and log-sigma of thick-ice freeboard.
    thin_freeboard_m : (float, float)
        Range of thin-ice freeboard (m).
    roughness_m : (float, float, float)
        Surface roughness (height std within a 2 m footprint) of thick, thin, water (m).
    mss_mean_m, mss_gradient_m_per_km : float
        Mean sea surface: a tilted plane (m, m/km along +x) ...
    mss_wave_amplitude_m, mss_wave_length_km : float
        ... plus one long wave.
    tide_m2_amplitude_m, tide_k1_amplitude_m, tide_equilibrium_amplitude_m : float
        Ocean tide constituents (m) and the long-period equilibrium tide (m).
    dac_amplitude_m : float
        Dynamic atmosphere correction amplitude (m).
    residual_amplitude_m : float
        Amplitude of the mesoscale sea-surface residual (m), not in any correction product.
    residual_wavelength_km : (float, float)
        Range of the residual's wavelengths (km).
    """

    kind: ClassVar[str] = "sim_world"
    seed: int = 20191104
    water_fraction: float = 0.04
    thin_fraction: float = 0.06
    floe_scales_m: tuple[float, ...] = (4000.0, 1200.0, 350.0)
    lead_width_min_m: float = 10.0
    lead_width_max_m: float = 3000.0
    lead_width_alpha: float = 2.2
    thick_freeboard_m: tuple[float, float] = (0.2, 1.5)
    thick_freeboard_median_m: float = 0.45
    thick_freeboard_sigma: float = 0.45
    thin_freeboard_m: tuple[float, float] = (0.02, 0.15)
    roughness_m: tuple[float, float, float] = (0.06, 0.015, 0.005)
    mss_mean_m: float = -56.0
    mss_gradient_m_per_km: float = 0.01
    mss_wave_amplitude_m: float = 1.5
    mss_wave_length_km: float = 400.0
    tide_m2_amplitude_m: float = 0.25
    tide_k1_amplitude_m: float = 0.35
    tide_equilibrium_amplitude_m: float = 0.02
    dac_amplitude_m: float = 0.08
    residual_amplitude_m: float = 0.2
    residual_wavelength_km: tuple[float, float] = (20.0, 100.0)

    def __post_init__(self) -> None:
        lead = self.water_fraction + self.thin_fraction
        if not (self.water_fraction >= 0.0 and self.thin_fraction >= 0.0 and lead < 1.0):
            raise ConfigError(f"WorldConfig: water+thin fractions must be in [0, 1), got {lead}")
        if not self.floe_scales_m or min(self.floe_scales_m) <= 0:
            raise ConfigError("WorldConfig: floe_scales_m must be positive")
        if not 0 < self.lead_width_min_m < self.lead_width_max_m:
            raise ConfigError("WorldConfig: need 0 < lead_width_min_m < lead_width_max_m")
        if self.lead_width_alpha <= 1.0:
            raise ConfigError("WorldConfig: lead_width_alpha must be > 1")

    @property
    def thick_fraction(self) -> float:
        """Area fraction of thick ice."""
        return 1.0 - self.water_fraction - self.thin_fraction


@dataclasses.dataclass(frozen=True)
class _Boundary:
    """Nearest boundary of one Voronoi level for each query point."""

    score: FloatArray  #: distance to the boundary / lead half-width
    pair_key: npt.NDArray[np.int64]  #: symmetric id of the seed pair (the lead)
    floe_key: npt.NDArray[np.int64]  #: id of the nearest seed (the floe)


class TruthWorld:
    """The simulated world; cheap to build, evaluated lazily at any EPSG:3976 point.

    Parameters
    ----------
    config : WorldConfig
        Knobs and seed.
    """

    def __init__(self, config: WorldConfig | None = None) -> None:
        self.config = config or WorldConfig()
        cfg = self.config
        rng = np.random.default_rng(cfg.seed)
        lo, hi = cfg.residual_wavelength_km
        self._res_k = 2 * np.pi / (rng.uniform(lo, hi, _RESIDUAL_MODES) * 1000.0)
        self._res_dir = rng.uniform(0, 2 * np.pi, _RESIDUAL_MODES)
        self._res_phase = rng.uniform(0, 2 * np.pi, _RESIDUAL_MODES)
        self._tide_phase = rng.uniform(0, 2 * np.pi, 4)
        self._mss_dir = rng.uniform(0, 2 * np.pi)
        self._lead_threshold = self._calibrate()

    # -- the ice field --------------------------------------------------------------------------
    def _level(self, level: int, x: FloatArray, y: FloatArray) -> _Boundary:
        """Nearest and second-nearest jittered seeds of one level (3x3 neighbour cells).

        Seeds are hashed once per cell of the query's bounding box and gathered per point.
        """
        cfg = self.config
        size = cfg.floe_scales_m[level]
        ci = np.floor(x / size).astype(np.int64)
        cj = np.floor(y / size).astype(np.int64)
        i0, j0 = int(ci.min()) - 1, int(cj.min()) - 1
        ni, nj = int(ci.max()) + 2 - i0, int(cj.max()) + 2 - j0
        ti, tj = np.meshgrid(np.arange(i0, i0 + ni), np.arange(j0, j0 + nj), indexing="ij")
        seed_x = ((ti + hash_uniform(cfg.seed, level, ti, tj, _TAG_JITTER_X)) * size).ravel()
        seed_y = ((tj + hash_uniform(cfg.seed, level, ti, tj, _TAG_JITTER_Y)) * size).ravel()
        base = (ci - i0) * nj + (cj - j0)
        offsets = np.array([di * nj + dj for di in (-1, 0, 1) for dj in (-1, 0, 1)], dtype=np.int64)
        cand = base[None, :] + offsets[:, None]  # (9, N) flat seed-table indices
        d = (x[None, :] - seed_x[cand]) ** 2 + (y[None, :] - seed_y[cand]) ** 2
        two = np.argpartition(d, 1, axis=0)[:2]
        cols = np.arange(x.shape[0])
        first, second = cand[two[0], cols], cand[two[1], cols]
        d1, d2 = d[two[0], cols], d[two[1], cols]
        swap = d2 < d1
        first, second = np.where(swap, second, first), np.where(swap, first, second)
        d1, d2 = np.minimum(d1, d2), np.maximum(d1, d2)
        sep = np.hypot(seed_x[second] - seed_x[first], seed_y[second] - seed_y[first])
        dist = (d2 - d1) / (2.0 * np.maximum(sep, 1e-9))  # distance to the bisector (m)

        def key(flat: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
            gi, gj = np.divmod(flat, nj)
            return np.asarray(((gi + i0) * 1_000_003 + (gj + j0)) * 16 + level, dtype=np.int64)

        k1, k2 = key(first), key(second)
        pair = np.minimum(k1, k2) * 1_000_033 + np.maximum(k1, k2)
        width = self._lead_width(hash_uniform(cfg.seed, pair, _TAG_WIDTH))
        return _Boundary(score=dist / (0.5 * width), pair_key=pair, floe_key=k1)

    def _lead_width(self, u: FloatArray) -> FloatArray:
        """Truncated power-law quantile: p(w) ~ w^-alpha on [w_min, w_max] (m)."""
        cfg = self.config
        a = 1.0 - cfg.lead_width_alpha
        lo, hi = cfg.lead_width_min_m**a, cfg.lead_width_max_m**a
        return np.asarray((lo + u * (hi - lo)) ** (1.0 / a), dtype=np.float64)

    def _nearest_lead(self, x: FloatArray, y: FloatArray) -> tuple[FloatArray, npt.NDArray[np.int64],
                                                                     npt.NDArray[np.int64]]:
        """(min score over levels, pair key of that lead, finest-level floe key)."""
        best = None
        floe = np.zeros(x.shape[0], dtype=np.int64)
        for level in range(len(self.config.floe_scales_m)):
            b = self._level(level, x, y)
            floe = b.floe_key  # finest level wins (last)
            if best is None:
                best = (b.score, b.pair_key)
            else:
                take = b.score < best[0]
                best = (np.where(take, b.score, best[0]), np.where(take, b.pair_key, best[1]))
        assert best is not None
        return best[0], best[1], floe

    def _calibrate(self) -> float:
        """Lead-score threshold giving the configured lead area fraction (deterministic sample)."""
        target = self.config.water_fraction + self.config.thin_fraction
        if target <= 0:
            return 0.0
        u = hash_uniform(self.config.seed, np.arange(2 * _CALIBRATION_POINTS), 99)
        x = (u[:_CALIBRATION_POINTS] - 0.5) * _CALIBRATION_EXTENT_M
        y = (u[_CALIBRATION_POINTS:] - 0.5) * _CALIBRATION_EXTENT_M
        score, _, _ = self._nearest_lead(x, y)
        return float(np.quantile(score, target))

    def sample(
        self, x_m: npt.ArrayLike, y_m: npt.ArrayLike, shift_m: tuple[float, float] = (0.0, 0.0)
    ) -> tuple[npt.NDArray[np.uint8], FloatArray, FloatArray]:
        """Class, freeboard (m) and roughness (m) at EPSG:3976 points.

        Parameters
        ----------
        x_m, y_m : array_like
            Coordinates in EPSG:3976 (m).
        shift_m : (float, float)
            Displacement (dx, dy) in m of the ice relative to the reference (ICESat-2) time: the
            field is evaluated at (x - dx, y - dy).

        Returns
        -------
        classes : uint8 array
            :class:`SeaIceClass` codes 0 thick, 1 thin, 2 water.
        freeboard_m : float array
        roughness_m : float array
        """
        cfg = self.config
        xa = np.atleast_1d(np.asarray(x_m, dtype=np.float64)).ravel() - shift_m[0]
        ya = np.atleast_1d(np.asarray(y_m, dtype=np.float64)).ravel() - shift_m[1]
        shape = np.shape(x_m)
        parts = [self._nearest_lead(xa[k:k + _CHUNK_POINTS], ya[k:k + _CHUNK_POINTS])
                 for k in range(0, max(xa.shape[0], 1), _CHUNK_POINTS)]
        score = np.concatenate([p[0] for p in parts])
        pair = np.concatenate([p[1] for p in parts])
        floe = np.concatenate([p[2] for p in parts])
        in_lead = score < self._lead_threshold
        lead_total = cfg.water_fraction + cfg.thin_fraction
        p_thin = cfg.thin_fraction / lead_total if lead_total > 0 else 0.0
        refrozen = hash_uniform(cfg.seed, pair, _TAG_REFROZEN) < p_thin
        classes = np.full(xa.shape, SeaIceClass.THICK_ICE, dtype=np.uint8)
        classes[in_lead & refrozen] = SeaIceClass.THIN_ICE
        classes[in_lead & ~refrozen] = SeaIceClass.OPEN_WATER
        # freeboards
        u_floe = np.clip(hash_uniform(cfg.seed, floe, _TAG_FLOE_FB), 1e-9, 1 - 1e-9)
        z = np.sqrt(2.0) * _erfinv(2.0 * u_floe - 1.0)
        thick = np.clip(cfg.thick_freeboard_median_m * np.exp(cfg.thick_freeboard_sigma * z),
                        *cfg.thick_freeboard_m)
        lo, hi = cfg.thin_freeboard_m
        thin = lo + hash_uniform(cfg.seed, pair, _TAG_THIN_FB) * (hi - lo)
        freeboard = np.where(classes == SeaIceClass.THICK_ICE, thick,
                             np.where(classes == SeaIceClass.THIN_ICE, thin, 0.0))
        roughness = np.asarray(cfg.roughness_m, dtype=np.float64)[classes]
        return classes.reshape(shape), freeboard.reshape(shape), roughness.reshape(shape)

    def classes_at(
        self, x_m: npt.ArrayLike, y_m: npt.ArrayLike, shift_m: tuple[float, float] = (0.0, 0.0)
    ) -> npt.NDArray[np.uint8]:
        """Class codes only (see :meth:`sample`)."""
        return self.sample(x_m, y_m, shift_m)[0]

    # -- the sea surface ------------------------------------------------------------------------
    def mss_m(self, x_m: npt.ArrayLike, y_m: npt.ArrayLike) -> FloatArray:
        """Mean sea surface above WGS84 (m): tilted plane plus one long wave."""
        cfg = self.config
        x = np.asarray(x_m, dtype=np.float64)
        y = np.asarray(y_m, dtype=np.float64)
        along = x * math.cos(self._mss_dir) + y * math.sin(self._mss_dir)
        k = 2 * np.pi / (cfg.mss_wave_length_km * 1000.0)
        return np.asarray(cfg.mss_mean_m + cfg.mss_gradient_m_per_km * x / 1000.0
                          + cfg.mss_wave_amplitude_m * np.sin(k * along), dtype=np.float64)

    def tide_ocean_m(self, x_m: npt.ArrayLike, y_m: npt.ArrayLike, t_s: npt.ArrayLike) -> FloatArray:
        """Ocean tide (m): M2 + K1 with phases varying slowly in space; ``t_s`` in s of the day."""
        cfg = self.config
        x = np.asarray(x_m, dtype=np.float64) / 1e6
        y = np.asarray(y_m, dtype=np.float64) / 1e6
        t_h = np.asarray(t_s, dtype=np.float64) / _SECONDS_PER_HOUR
        m2 = cfg.tide_m2_amplitude_m * np.cos(2 * np.pi * t_h / _M2_PERIOD_H + self._tide_phase[0] + 2.0 * x)
        k1 = cfg.tide_k1_amplitude_m * np.cos(2 * np.pi * t_h / _K1_PERIOD_H + self._tide_phase[1] + 1.5 * y)
        return np.asarray(m2 + k1, dtype=np.float64)

    def tide_equilibrium_m(self, x_m: npt.ArrayLike, y_m: npt.ArrayLike, t_s: npt.ArrayLike) -> FloatArray:
        """Long-period equilibrium tide (m), nearly constant over a day."""
        y = np.asarray(y_m, dtype=np.float64) / 1e6
        t_h = np.asarray(t_s, dtype=np.float64) / _SECONDS_PER_HOUR
        out = self.config.tide_equilibrium_amplitude_m * np.cos(self._tide_phase[2] + y + t_h / 24.0 / 14.0)
        return np.asarray(out + 0.0 * np.asarray(x_m, dtype=np.float64), dtype=np.float64)

    def dac_m(self, x_m: npt.ArrayLike, y_m: npt.ArrayLike, t_s: npt.ArrayLike) -> FloatArray:
        """Dynamic atmosphere correction (m): a weather-scale wave moving over the day."""
        x = np.asarray(x_m, dtype=np.float64)
        y = np.asarray(y_m, dtype=np.float64)
        t_h = np.asarray(t_s, dtype=np.float64) / _SECONDS_PER_HOUR
        k = 2 * np.pi / 1.0e6
        return np.asarray(self.config.dac_amplitude_m * np.sin(k * (x + 0.5 * y) + self._tide_phase[3] + t_h / 6.0),
                          dtype=np.float64)

    def residual_m(self, x_m: npt.ArrayLike, y_m: npt.ArrayLike) -> FloatArray:
        """Mesoscale sea-surface residual (m): in no correction product, tens of km scale."""
        x = np.asarray(x_m, dtype=np.float64)[..., None]
        y = np.asarray(y_m, dtype=np.float64)[..., None]
        phase = self._res_k * (x * np.cos(self._res_dir) + y * np.sin(self._res_dir)) + self._res_phase
        wave = np.sin(phase).sum(axis=-1) / np.sqrt(_RESIDUAL_MODES / 2.0)
        return np.asarray(self.config.residual_amplitude_m * wave, dtype=np.float64)

    def sea_surface_m(self, x_m: npt.ArrayLike, y_m: npt.ArrayLike, t_s: npt.ArrayLike) -> FloatArray:
        """Instantaneous local sea surface above WGS84 (m): MSS + tides + DAC + residual."""
        return np.asarray(
            self.mss_m(x_m, y_m) + self.tide_ocean_m(x_m, y_m, t_s) + self.tide_equilibrium_m(x_m, y_m, t_s)
            + self.dac_m(x_m, y_m, t_s) + self.residual_m(x_m, y_m),
            dtype=np.float64,
        )


def _erfinv(v: FloatArray) -> FloatArray:
    """Inverse error function (scipy), isolated so the import stays local."""
    from scipy.special import erfinv

    return np.asarray(erfinv(v), dtype=np.float64)
