"""Sea-ice thickness from laser freeboard by hydrostatic equilibrium (neither paper does this).

ICESat-2 measures the **total** freeboard ``h_f`` (ice plus snow above the local sea surface).
With snow depth ``h_s`` and densities of sea water, ice and snow (``rho_w``, ``rho_i``,
``rho_s``), buoyancy gives the ice thickness::

    h_i = (rho_w * h_f - (rho_w - rho_s) * h_s) / (rho_w - rho_i)

The snow depth is an assumption, not a measurement (``snow`` of :class:`ThicknessConfig`):

``fraction`` (default, ``h_s = snow_fraction * h_f``)
    ``snow_fraction = 1`` is the zero-ice-freeboard assumption of Antarctic laser altimetry
    (Kurtz & Markus 2012; snow loads the ice until the snow-ice interface sits at sea level), the
    usual choice in the Ross and Weddell Seas of the papers' study areas;
``constant`` (``h_s = snow_depth_m``, capped at ``h_f``)
    a climatological depth.

Uncertainty: first-order propagation of the freeboard uncertainty, the snow uncertainty
(``snow_sigma_m`` for a constant depth, ``snow_fraction_sigma * h_f`` for a fraction) and the
ice and snow density uncertainties, assumed independent.  Thickness is given for ice segments
(thick or thin) only; open water and unclassified segments get NaN.  The densities are the
commonly used Antarctic values; they are config fields, not constants of nature.

Examples
--------
>>> h, s, snow = ice_thickness(np.array([0.3]), np.array([0.05]), ThicknessConfig())
>>> round(float(h[0]), 3), round(float(snow[0]), 2)
(0.826, 0.3)
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Final

import numpy as np
import numpy.typing as npt

from seaice_tasks.config import JsonConfig
from seaice_tasks.errors import ConfigError

__all__ = ["ThicknessConfig", "ice_thickness", "RHO_WATER_KG_M3", "RHO_ICE_KG_M3", "RHO_SNOW_KG_M3"]

FloatArray = npt.NDArray[np.float64]

#: Sea-water density (kg m-3).
RHO_WATER_KG_M3: Final[float] = 1024.0
#: First-year sea-ice density (kg m-3).
RHO_ICE_KG_M3: Final[float] = 915.0
#: Snow density on Antarctic sea ice (kg m-3).
RHO_SNOW_KG_M3: Final[float] = 300.0


@dataclasses.dataclass(frozen=True)
class ThicknessConfig(JsonConfig):
    """Snow and density assumptions of the hydrostatic thickness (module docstring).

    Attributes
    ----------
    snow : str
        ``fraction`` (``h_s = snow_fraction * h_f``) or ``constant`` (``h_s = snow_depth_m``).
    snow_fraction, snow_fraction_sigma : float
        Snow depth as a fraction of the total freeboard, and its uncertainty.
    snow_depth_m, snow_sigma_m : float
        Constant snow depth and its uncertainty (m).
    rho_water, rho_ice, rho_snow : float
        Densities (kg m-3).
    rho_ice_sigma, rho_snow_sigma : float
        Density uncertainties (kg m-3).
    """

    kind: ClassVar[str] = "thickness"
    snow: str = "fraction"
    snow_fraction: float = 1.0
    snow_fraction_sigma: float = 0.2
    snow_depth_m: float = 0.2
    snow_sigma_m: float = 0.1
    rho_water: float = RHO_WATER_KG_M3
    rho_ice: float = RHO_ICE_KG_M3
    rho_snow: float = RHO_SNOW_KG_M3
    rho_ice_sigma: float = 10.0
    rho_snow_sigma: float = 50.0

    def __post_init__(self) -> None:
        if self.snow not in ("fraction", "constant"):
            raise ConfigError(f"ThicknessConfig.snow must be fraction or constant, got {self.snow!r}")
        if not 0 <= self.snow_fraction <= 1 or self.snow_depth_m < 0:
            raise ConfigError("ThicknessConfig: 0 <= snow_fraction <= 1 and snow_depth_m >= 0 required")
        if not self.rho_snow < self.rho_ice < self.rho_water:
            raise ConfigError("ThicknessConfig: rho_snow < rho_ice < rho_water required")
        if min(self.snow_fraction_sigma, self.snow_sigma_m, self.rho_ice_sigma, self.rho_snow_sigma) < 0:
            raise ConfigError("ThicknessConfig: uncertainties must be >= 0")


def ice_thickness(freeboard_m: npt.ArrayLike, freeboard_sigma_m: npt.ArrayLike,
                  config: ThicknessConfig | None = None) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Ice thickness, its uncertainty and the assumed snow depth (all m) from total freeboard.

    Parameters
    ----------
    freeboard_m, freeboard_sigma_m : array_like of float
        Total freeboard and its uncertainty (m).  Negative freeboards are kept (noise about a
        thin floe); their thickness is negative too, flagging them rather than hiding them.
    config : ThicknessConfig, optional
        Snow and density assumptions.

    Returns
    -------
    thickness_m, thickness_sigma_m, snow_depth_m : ndarray of float64
    """
    cfg = config if config is not None else ThicknessConfig()
    hf = np.asarray(freeboard_m, dtype=np.float64)
    s_hf = np.asarray(freeboard_sigma_m, dtype=np.float64)
    rw, ri, rs = cfg.rho_water, cfg.rho_ice, cfg.rho_snow
    denom = rw - ri
    if cfg.snow == "fraction":
        hs = cfg.snow_fraction * hf
        s_hs = cfg.snow_fraction_sigma * np.abs(hf)
        d_hf: FloatArray = np.full_like(hf, (rw - (rw - rs) * cfg.snow_fraction) / denom)
    else:
        hs = np.minimum(np.full_like(hf, cfg.snow_depth_m), np.maximum(hf, 0.0))
        s_hs = np.full_like(hf, cfg.snow_sigma_m)
        d_hf = np.full_like(hf, rw / denom)
    thickness = (rw * hf - (rw - rs) * hs) / denom
    # the snow error (for a fraction: the fraction's error times h_f) is independent of h_f's
    snow_term = (rw - rs) / denom * s_hs
    var = ((d_hf * s_hf) ** 2 + snow_term**2
           + (thickness / denom * cfg.rho_ice_sigma) ** 2 + (hs / denom * cfg.rho_snow_sigma) ** 2)
    return thickness, np.sqrt(var), hs
