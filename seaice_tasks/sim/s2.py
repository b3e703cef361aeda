"""Simulated Sentinel-2 L1C scenes of the truth world, written in the real band-file layout.

A scene is the folder ``<out_dir>/<footprint.safe_name>`` holding four Cloud-Optimised GeoTIFFs
named like the granule band files of a real L1C product, ``T<tile>_<YYYYMMDDThhmmss>_B02.tif`` ..
``_B08.tif`` (the real ones are JPEG 2000; :func:`seaice_tasks.io.s2.open_s2_scene` finds both by
the band token and reads the processing baseline from the ``N0208`` field of the folder name).
The grid is ``footprint.size_m`` square at 10 m in the scene's UTM CRS, centred on the footprint
centre.  Pixels hold uint16 DN = round(reflectance x 10000) (+1000 from processing baseline 04.00
on), DN 0 = no data outside a straight swath edge that cuts one corner.

Radiometric model (per 10 m pixel, per band B02/B03/B04/B08; docs/simulator_s2.md):

1. *Surface*: the world's class and freeboard at the pixel centre at the S2 time give a surface
   reflectance from :class:`S2SimParams` (snow-covered thick ice bright, thin ice grey and
   brighter with freeboard, open water dark).
2. *Optics*: a Gaussian point-spread function (``psf_sigma_px``) mixes neighbouring pixels.
3. *Cloud shadow* (``clouds=True``): multiplied by ``1 - (1 - shadow_factor) * s`` where ``s`` is
   the opaque-cloud opacity displaced by ``cloud_height / tan(sun elevation)`` along the
   anti-solar azimuth.
4. *Clouds* (``clouds=True``): blended towards the cloud reflectance with the cloud opacity
   ``alpha = 1 - (1 - alpha_haze) (1 - alpha_opaque)``: a smooth thin haze over part of the scene
   (``alpha_haze`` up to ``haze_alpha_max`` x 0.9 ~ 0.1-0.3 reflectance added over water) and a few
   opaque clouds (``alpha_opaque`` -> 1, reflectance ~0.9).
5. *Sensor noise*: additive Gaussian, ``noise_std`` reflectance, then quantisation to DN.

Truth (``<truth_dir>/<footprint.scene>/``): ``classes.tif`` (uint8 class codes on the band grid,
255 where no data), ``cloud_mask.tif`` (uint8 :data:`CLOUD_CLEAR` 0, :data:`CLOUD_THIN` 1,
:data:`CLOUD_OPAQUE` 2, :data:`CLOUD_SHADOW` 3, 255 where no data) and ``scene.json``.

Drift convention: ``world.sample(x, y)`` is the ice at the ICESat-2 time; the ice moved by
``footprint.drift_m`` from the S2 to the IS2 time, so the S2 image at EPSG:3976 point (x, y) shows
``world.sample(x, y, shift_m=(-dx, -dy))``; ``classes.tif`` is that field (what the image shows).

Everything is deterministic from ``(config.seed, footprint.scene)``: the scene with
``clouds=False`` has the same surface, nodata edge and sensor noise as with ``clouds=True``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar, Final

import numpy as np
import numpy.typing as npt

from seaice_tasks.config import JsonConfig
from seaice_tasks.constants import (
    S2_BANDS,
    S2_BOA_ADD_OFFSET_DN,
    S2_OFFSET_BASELINE,
    S2_REFLECTANCE_SCALE,
    UNLABELED,
    SeaIceClass,
)
from seaice_tasks.errors import ConfigError
from seaice_tasks.sim.geometry import S2Footprint, SimConfig, to_lonlat
from seaice_tasks.sim.sun import sun_position
from seaice_tasks.sim.world import WORLD_CRS, TruthWorld

__all__ = [
    "S2SimParams",
    "write_s2_scene",
    "solar_position",
    "band_file_name",
    "S2_PIXEL_M",
    "CLOUD_CLEAR",
    "CLOUD_THIN",
    "CLOUD_OPAQUE",
    "CLOUD_SHADOW",
    "MASK_NODATA",
    "TRUTH_CLASSES_NAME",
    "TRUTH_CLOUD_MASK_NAME",
    "TRUTH_JSON_NAME",
]

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
F32Array = npt.NDArray[np.float32]
Band4 = tuple[float, float, float, float]

#: Pixel size of the 10 m bands (m).
S2_PIXEL_M: Final[float] = 10.0
#: Cloud-mask codes of ``cloud_mask.tif``.
CLOUD_CLEAR: Final[int] = 0
CLOUD_THIN: Final[int] = 1
CLOUD_OPAQUE: Final[int] = 2
CLOUD_SHADOW: Final[int] = 3
#: Value of no-data pixels in the uint8 truth rasters (the reader's ``UNLABELED``).
MASK_NODATA: Final[int] = UNLABELED
#: Truth file names.
TRUTH_CLASSES_NAME: Final[str] = "classes.tif"
TRUTH_CLOUD_MASK_NAME: Final[str] = "cloud_mask.tif"
TRUTH_JSON_NAME: Final[str] = "scene.json"
#: DN of no data (Sentinel-2 ``NO_DATA``) and the largest uint16 DN.
_NODATA_DN: Final[int] = 0
_DN_MAX: Final[int] = 65535
#: World points per row chunk (the world is fastest on ~0.25 M point batches).
_CHUNK_POINTS: Final[int] = 250_000
#: Worker threads for the row chunks (numpy, pyproj and the world release the GIL).
_MAX_WORKERS: Final[int] = 4
#: Gaussian kernel half-width in sigmas (scipy's default ``truncate``).
_PSF_TRUNCATE: Final[float] = 4.0
#: COG options: fixed so the files are byte-identical for identical inputs.
_COG_BLOCKSIZE: Final[int] = 512
_COG_COMPRESS: Final[str] = "DEFLATE"
_COG_LEVEL: Final[int] = 6
#: Latitude step (degrees) used to find the direction of true north on the UTM grid.
_NORTH_PROBE_DEG: Final[float] = 0.01
#: Random-stream tags (one independent stream per purpose, so ``clouds`` never shifts the noise).
_STREAM_NOISE, _STREAM_CLOUDS, _STREAM_GEOMETRY = 1, 2, 3
#: Number of corners of the square scene (the swath edge cuts one of them).
_CORNERS: Final[int] = 4

_MINUTES_PER_HOUR: Final[float] = 60.0
_HALF_TURN_DEG: Final[float] = 180.0


@dataclasses.dataclass(frozen=True)
class S2SimParams(JsonConfig):
    """Radiometric, cloud and swath knobs of the simulated Sentinel-2 scenes.

    Reflectances are top-of-atmosphere, dimensionless (0-1), per band in the order B02 (blue),
    B03 (green), B04 (red), B08 (NIR).  Orders of magnitude from the literature:

    * snow-covered (thick) ice: visible 0.8-0.95, NIR ~0.75 (Warren 1982, Rev. Geophys. 20;
      Brandt et al. 2005, J. Climate 18 -- snow-covered first-year ice albedo ~0.8-0.9; fresh
      snow spectral albedo ~0.95 at 500 nm falling to ~0.8 at 850 nm);
    * young ice (nilas, grey, grey-white): 0.1-0.5, increasing with thickness (Allison et al.
      1993, JGR 98; Brandt et al. 2005: nilas ~0.15-0.3, grey ice ~0.3-0.4, grey-white ~0.4-0.5);
    * open water: 0.03-0.07 TOA in the visible (Fresnel + Rayleigh path radiance; bluest), ~0.02
      in the NIR.

    With the reader's default 8-bit stretch (reflectance 1.0 -> 255, ``S2ReadConfig``) the §2.1
    thresholds on V = max(R, G, B) sit at reflectance 0.1196 (water/thin) and 0.8020 (thin/thick),
    so the tables keep every class at least ~0.03 (several noise sigmas) inside its V range.

    Attributes
    ----------
    thick_reflectance : tuple of 4 float
        Thick ice at the top of the thick-freeboard range.
    thick_dimming : float
        Reflectance subtracted (all bands) at the bottom of the thick-freeboard range (thinner
        snow); linear in freeboard in between.
    thin_reflectance_low, thin_reflectance_high : tuple of 4 float
        Thin ice at the bottom / top of the world's ``thin_freeboard_m`` range (linear between).
    water_reflectance : tuple of 4 float
        Open water.
    cloud_reflectance : tuple of 4 float
        Reflectance of an opaque cloud (alpha = 1).
    noise_std : float
        Standard deviation of the additive Gaussian sensor noise (reflectance).
    psf_sigma_px : float
        Gaussian point-spread function sigma (10 m pixels); 0.4 px gives an MTF of 0.45 at
        Nyquist, a little sharper than the MSI 10 m bands (~0.15-0.3, i.e. sigma ~0.5 px, which
        turns most 1-2 px leads grey and drops clear-sky threshold accuracy to ~94 %).  0
        disables it (every pixel pure: 100 % accuracy).
    nodata_cut_fraction : (float, float)
        Range of the swath-edge cut: the no-data triangle's legs are this fraction of the side.
    haze_cover : float
        Fraction of the scene under thin haze (alpha > 0).
    haze_alpha_max : (float, float)
        Range of the per-scene peak haze opacity.
    haze_ramp_sigma : float
        Width of the haze edge in standard deviations of the smooth haze field.
    haze_scale_m : float
        Correlation length (Gaussian sigma) of the haze field (m).
    opaque_cover : float
        Fraction of the scene under opaque-cloud cores and their soft edges.
    opaque_ramp_sigma : float
        Width of the opaque-cloud edge in standard deviations of its field.
    opaque_scale_m : float
        Correlation length of the opaque-cloud field (m).
    cloud_height_m : (float, float)
        Range of the opaque-cloud height above the surface (m): low stratus over sea ice.
    shadow_factor : (float, float)
        Range of the fraction of reflectance left in full shadow.
    min_sun_elevation_deg : float
        Floor of the sun elevation used for shadows (deg).  The simulator ties S2 sensing times to
        ICESat-2 overpasses, which may fall in the polar night hours; real S2 images are taken
        near 10:30 local solar time (elevation ~25-30 deg over the Ross Sea in November).
    thin_mask_alpha : float
        ``cloud_mask`` is thin cloud (1) where the total cloud opacity is at least this (0.05:
        adds >= ~0.04 reflectance over water, i.e. >= ~10 8-bit levels).
    opaque_mask_alpha : float
        ``cloud_mask`` is opaque cloud (2) where the opacity is at least this.
    shadow_mask_level : float
        ``cloud_mask`` is shadow (3) where the shadow strength ``s`` is at least this and no
        cloud is masked.
    cloud_cell_m : float
        Cell size of the coarse grid the cloud fields are generated on (m).
    """

    kind: ClassVar[str] = "sim_s2"
    thick_reflectance: Band4 = (0.92, 0.90, 0.88, 0.78)
    thick_dimming: float = 0.04
    thin_reflectance_low: Band4 = (0.18, 0.17, 0.16, 0.11)
    thin_reflectance_high: Band4 = (0.52, 0.50, 0.47, 0.35)
    water_reflectance: Band4 = (0.065, 0.050, 0.035, 0.020)
    cloud_reflectance: Band4 = (0.92, 0.91, 0.90, 0.86)
    noise_std: float = 0.005
    psf_sigma_px: float = 0.4
    nodata_cut_fraction: tuple[float, float] = (0.3, 0.55)
    haze_cover: float = 0.5
    haze_alpha_max: tuple[float, float] = (0.15, 0.33)
    haze_ramp_sigma: float = 1.0
    haze_scale_m: float = 2500.0
    opaque_cover: float = 0.08
    opaque_ramp_sigma: float = 0.25
    opaque_scale_m: float = 600.0
    cloud_height_m: tuple[float, float] = (500.0, 1500.0)
    shadow_factor: tuple[float, float] = (0.3, 0.6)
    min_sun_elevation_deg: float = 15.0
    thin_mask_alpha: float = 0.05
    opaque_mask_alpha: float = 0.8
    shadow_mask_level: float = 0.5
    cloud_cell_m: float = 100.0

    def __post_init__(self) -> None:
        for name in ("haze_cover", "opaque_cover", "thin_mask_alpha", "opaque_mask_alpha", "shadow_mask_level"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"S2SimParams.{name}: must be in [0, 1], got {value!r}")
        if self.noise_std < 0 or self.psf_sigma_px < 0:
            raise ConfigError("S2SimParams: noise_std and psf_sigma_px must be >= 0")
        if self.cloud_cell_m <= 0 or self.haze_scale_m <= 0 or self.opaque_scale_m <= 0:
            raise ConfigError("S2SimParams: cloud_cell_m, haze_scale_m and opaque_scale_m must be > 0")
        if not 0.0 < self.min_sun_elevation_deg <= 90.0:
            raise ConfigError("S2SimParams.min_sun_elevation_deg: must be in (0, 90]")
        lo, hi = self.nodata_cut_fraction
        if not 0.0 <= lo <= hi < 1.0:
            raise ConfigError("S2SimParams.nodata_cut_fraction: need 0 <= lo <= hi < 1")


# --------------------------------------------------------------------------------------------------
# small helpers


def band_file_name(footprint: S2Footprint, band: str) -> str:
    """Name of a band file, as the granule files of a real L1C product (``.tif`` not ``.jp2``).

    Examples
    --------
    >>> import datetime as dt
    >>> fp = S2Footprint("g", "02CNA", 32702, dt.datetime(2019, 11, 4, 19, 45, 21, tzinfo=dt.UTC),
    ...                  0.0, 0.0, 5000.0, (0.0, 0.0), (2, 8))
    >>> band_file_name(fp, "B02")
    'T02CNA_20191104T194521_B02.tif'
    """
    return f"T{footprint.tile}_{footprint.sensing_utc:%Y%m%dT%H%M%S}_{band}.tif"


def solar_position(when_utc: dt.datetime, lon_deg: float, lat_deg: float) -> tuple[float, float]:
    """Sun azimuth and elevation (degrees) at one instant: :func:`seaice_tasks.sim.sun.sun_position`.

    Parameters
    ----------
    when_utc : datetime.datetime
        Time (UTC; a naive value is taken as UTC).
    lon_deg, lat_deg : float
        Position (degrees east, degrees north).

    Returns
    -------
    azimuth_deg : float
        Clockwise from true north, [0, 360).
    elevation_deg : float
        Above the horizon (no refraction), negative at night.

    Examples
    --------
    >>> import datetime as dt
    >>> az, el = solar_position(dt.datetime(2019, 11, 4, 11, 43, 36, tzinfo=dt.UTC), 0.0, -75.0)
    >>> round(az) % 360, round(el)  # solar noon (12:00 - equation of time): due north, 90 - (75 - 15.4)
    (0, 30)
    """
    t = when_utc if when_utc.tzinfo is not None else when_utc.replace(tzinfo=dt.UTC)
    t = t.astimezone(dt.UTC)
    hours = t.hour + t.minute / _MINUTES_PER_HOUR + (t.second + t.microsecond * 1e-6) / 3600.0
    azimuth, elevation = sun_position(t.timetuple().tm_yday, hours, lon_deg, lat_deg)
    return float(azimuth), float(elevation)


def _scene_entropy(seed: int, scene: str) -> int:
    """128-bit integer from (seed, scene key): the root of every random stream of a scene."""
    digest = hashlib.sha256(f"sim_s2:{seed}:{scene}".encode()).digest()
    return int.from_bytes(digest[:16], "little")


def _rng(entropy: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([entropy, *keys]))


_LOCAL = threading.local()


def _to_world(epsg: int) -> Any:
    """Thread-local pyproj transformer UTM -> EPSG:3976 (transformers are not thread-safe)."""
    cache: dict[int, Any] = getattr(_LOCAL, "to_world", None) or {}
    if epsg not in cache:
        from pyproj import Transformer

        cache[epsg] = Transformer.from_crs(f"EPSG:{epsg}", WORLD_CRS, always_xy=True)
        _LOCAL.to_world = cache
    return cache[epsg]


def _bilinear(field: F32Array, rows: FloatArray, cols: FloatArray) -> F32Array:
    """Bilinear interpolation of ``field`` on the outer product of fractional ``rows`` x ``cols``."""
    r = np.clip(rows, 0.0, field.shape[0] - 1.000001)
    c = np.clip(cols, 0.0, field.shape[1] - 1.000001)
    r0 = np.floor(r).astype(np.intp)
    c0 = np.floor(c).astype(np.intp)
    wr = (r - r0).astype(np.float32)[:, None]
    wc = (c - c0).astype(np.float32)[None, :]
    top = field[r0][:, c0] * (1 - wc) + field[r0][:, c0 + 1] * wc
    bottom = field[r0 + 1][:, c0] * (1 - wc) + field[r0 + 1][:, c0 + 1] * wc
    out: F32Array = (top * (1 - wr) + bottom * wr).astype(np.float32)
    return out


# --------------------------------------------------------------------------------------------------
# scene geometry and cloud fields


@dataclasses.dataclass(frozen=True)
class _Grid:
    """The 10 m UTM grid of a scene."""

    epsg: int
    left_m: float
    top_m: float
    rows: int
    cols: int

    @property
    def transform(self) -> Any:
        from rasterio.transform import Affine

        return Affine(S2_PIXEL_M, 0.0, self.left_m, 0.0, -S2_PIXEL_M, self.top_m)

    def centres(self, r0: int, r1: int) -> tuple[FloatArray, FloatArray]:
        """UTM x, y of the pixel centres of rows ``r0:r1`` (may extend outside the grid)."""
        x = self.left_m + (np.arange(self.cols) + 0.5) * S2_PIXEL_M
        y = self.top_m - (np.arange(r0, r1) + 0.5) * S2_PIXEL_M
        xx, yy = np.meshgrid(x, y)
        return xx, yy


def _make_grid(footprint: S2Footprint) -> tuple[_Grid, float, float]:
    """Grid centred on the footprint centre (snapped to 10 m) and the centre's lon/lat."""
    from pyproj import Transformer

    to_utm = Transformer.from_crs(WORLD_CRS, f"EPSG:{footprint.utm_epsg}", always_xy=True)
    cx, cy = to_utm.transform(footprint.center_x_m, footprint.center_y_m)
    n = max(1, round(footprint.size_m / S2_PIXEL_M))
    half = n * S2_PIXEL_M / 2.0
    left = round((float(cx) - half) / S2_PIXEL_M) * S2_PIXEL_M
    top = round((float(cy) + half) / S2_PIXEL_M) * S2_PIXEL_M
    lon, lat = to_lonlat(footprint.center_x_m, footprint.center_y_m)
    return _Grid(footprint.utm_epsg, float(left), float(top), n, n), float(lon), float(lat)


@dataclasses.dataclass(frozen=True)
class _SwathEdge:
    """No-data triangle at one corner: pixels with u + v < cut are outside the swath.

    u, v are the pixel-centre distances (in sides) from the corner along the two edges.
    """

    corner: int  # 0 top-left, 1 top-right, 2 bottom-right, 3 bottom-left
    cut: float

    def valid(self, grid: _Grid, r0: int, r1: int) -> npt.NDArray[np.bool_]:
        u = (np.arange(grid.cols) + 0.5) / grid.cols
        v = (np.arange(r0, r1) + 0.5) / grid.rows
        if self.corner in (1, 2):
            u = 1.0 - u
        if self.corner in (2, 3):
            v = 1.0 - v
        mask: npt.NDArray[np.bool_] = (u[None, :] + v[:, None]) >= self.cut
        return mask


@dataclasses.dataclass(frozen=True)
class _Clouds:
    """Coarse cloud fields and the sun geometry of a cloudy scene.

    ``haze`` and ``opaque`` are opacities on a coarse grid whose cell (0, 0) centre sits at
    scene pixel coordinates (``origin_px``, ``origin_px``); one cell is ``cell_px`` pixels.
    """

    haze: F32Array
    opaque: F32Array
    origin_px: float
    cell_px: float
    shadow_rows_px: float  # displacement of the shadow from its cloud (pixel rows, +down)
    shadow_cols_px: float  # (pixel columns, +right)
    shadow_factor: float
    info: dict[str, Any]

    def fields(self, r0: int, r1: int, cols: int) -> tuple[F32Array, F32Array]:
        """(cloud opacity alpha, shadow strength s) on rows ``r0:r1``."""
        rows = np.arange(r0, r1, dtype=np.float64) + 0.5
        cc = np.arange(cols, dtype=np.float64) + 0.5
        fr = (rows - self.origin_px) / self.cell_px
        fc = (cc - self.origin_px) / self.cell_px
        haze = _bilinear(self.haze, fr, fc)
        opaque = _bilinear(self.opaque, fr, fc)
        shadow = _bilinear(self.opaque, fr - self.shadow_rows_px / self.cell_px,
                           fc - self.shadow_cols_px / self.cell_px)
        alpha: F32Array = (1.0 - (1.0 - haze) * (1.0 - opaque)).astype(np.float32)
        return alpha, shadow


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], sigma_cells: float) -> FloatArray:
    """Zero-mean, unit-std low-pass Gaussian noise (wrap-free: 'reflect' boundaries)."""
    from scipy.ndimage import gaussian_filter

    field = gaussian_filter(rng.standard_normal(shape), sigma_cells, mode="reflect")
    std = float(field.std())
    return np.asarray((field - field.mean()) / (std if std > 0 else 1.0), dtype=np.float64)


def _ramp(field: FloatArray, cover: float, ramp_sigma: float) -> FloatArray:
    """Opacity 0..1 rising over ``ramp_sigma`` above the level leaving ``cover`` of the field > 0."""
    if cover <= 0.0:
        return np.zeros_like(field)
    level = float(np.quantile(field, 1.0 - cover))
    return np.asarray(np.clip((field - level) / ramp_sigma, 0.0, 1.0), dtype=np.float64)


def _make_clouds(entropy: int, grid: _Grid, footprint: S2Footprint, lon: float, lat: float,
                 params: S2SimParams) -> _Clouds:
    """Draw the haze and opaque-cloud fields and the shadow displacement of a scene."""
    from pyproj import Transformer

    rng = _rng(entropy, _STREAM_CLOUDS)
    azimuth, elevation = solar_position(footprint.sensing_utc, lon, lat)
    used_elevation = max(elevation, params.min_sun_elevation_deg)
    height = float(rng.uniform(*params.cloud_height_m))
    shadow_factor = float(rng.uniform(*params.shadow_factor))
    haze_alpha_max = float(rng.uniform(*params.haze_alpha_max))
    length = height / math.tan(math.radians(used_elevation))
    anti = math.radians(azimuth + _HALF_TURN_DEG)
    east, north = length * math.sin(anti), length * math.cos(anti)
    # directions of true north and east on the UTM grid (meridian convergence)
    to_utm = Transformer.from_crs("EPSG:4326", f"EPSG:{grid.epsg}", always_xy=True)
    x0, y0 = to_utm.transform(lon, lat)
    x1, y1 = to_utm.transform(lon, lat + _NORTH_PROBE_DEG)
    nx, ny = float(x1) - float(x0), float(y1) - float(y0)
    norm = math.hypot(nx, ny)
    nx, ny = nx / norm, ny / norm
    dx_m = east * ny + north * nx  # east = north rotated clockwise: (ny, -nx)
    dy_m = -east * nx + north * ny
    shadow_cols, shadow_rows = dx_m / S2_PIXEL_M, -dy_m / S2_PIXEL_M
    cell_px = params.cloud_cell_m / S2_PIXEL_M
    pad_px = math.ceil(max(abs(shadow_cols), abs(shadow_rows))) + 2 * cell_px
    n_cells = math.ceil((max(grid.rows, grid.cols) + 2 * pad_px) / cell_px) + 1
    origin_px = -pad_px
    haze = _ramp(_smooth_field(rng, (n_cells, n_cells), params.haze_scale_m / params.cloud_cell_m),
                 params.haze_cover, params.haze_ramp_sigma) * haze_alpha_max
    opaque = _ramp(_smooth_field(rng, (n_cells, n_cells), params.opaque_scale_m / params.cloud_cell_m),
                   params.opaque_cover, params.opaque_ramp_sigma)
    info = {
        "sun_azimuth_deg": azimuth,
        "sun_elevation_deg": elevation,
        "sun_elevation_used_deg": used_elevation,
        "cloud_height_m": height,
        "shadow_length_m": length,
        "shadow_offset_utm_m": [dx_m, dy_m],
        "shadow_offset_px": [shadow_rows, shadow_cols],
        "shadow_factor": shadow_factor,
        "haze_alpha_max": haze_alpha_max,
        "haze_cover": params.haze_cover,
        "opaque_cover": params.opaque_cover,
        "thin_mask_alpha": params.thin_mask_alpha,
        "opaque_mask_alpha": params.opaque_mask_alpha,
        "shadow_mask_level": params.shadow_mask_level,
        "cloud_cell_m": params.cloud_cell_m,
    }
    return _Clouds(haze=haze.astype(np.float32), opaque=opaque.astype(np.float32), origin_px=origin_px,
                   cell_px=cell_px, shadow_rows_px=shadow_rows, shadow_cols_px=shadow_cols,
                   shadow_factor=shadow_factor, info=info)


# --------------------------------------------------------------------------------------------------
# surface reflectance and the per-chunk pipeline


def _surface_reflectance(classes: npt.NDArray[np.uint8], freeboard: FloatArray, world: TruthWorld,
                         params: S2SimParams) -> F32Array:
    """(4, ...) reflectance of the surface classes; thin/thick brightness follows freeboard."""
    wcfg = world.config
    t_lo, t_hi = wcfg.thin_freeboard_m
    k_lo, k_hi = wcfg.thick_freeboard_m
    t_thin = np.clip((freeboard - t_lo) / max(t_hi - t_lo, 1e-9), 0.0, 1.0)
    t_thick = np.clip((freeboard - k_lo) / max(k_hi - k_lo, 1e-9), 0.0, 1.0)
    out = np.empty((len(S2_BANDS), *classes.shape), dtype=np.float32)
    thick = classes == SeaIceClass.THICK_ICE
    thin = classes == SeaIceClass.THIN_ICE
    for b in range(len(S2_BANDS)):
        lo, hi = params.thin_reflectance_low[b], params.thin_reflectance_high[b]
        thick_b = params.thick_reflectance[b] - params.thick_dimming * (1.0 - t_thick)
        thin_b = lo + (hi - lo) * t_thin
        out[b] = np.where(thick, thick_b, np.where(thin, thin_b, params.water_reflectance[b]))
    return out


@dataclasses.dataclass(frozen=True)
class _ChunkResult:
    r0: int
    dn: npt.NDArray[np.uint16]
    classes: npt.NDArray[np.uint8]
    mask: npt.NDArray[np.uint8]


def _render_chunk(index: int, r0: int, r1: int, *, world: TruthWorld, footprint: S2Footprint, grid: _Grid,
                  edge: _SwathEdge, clouds: _Clouds | None, entropy: int, dn_offset: int,
                  params: S2SimParams) -> _ChunkResult:
    """DN, truth classes and cloud mask of rows ``r0:r1``."""
    from scipy.ndimage import gaussian_filter

    halo = math.ceil(_PSF_TRUNCATE * params.psf_sigma_px) if params.psf_sigma_px > 0 else 0
    xu, yu = grid.centres(r0 - halo, r1 + halo)
    xw, yw = _to_world(grid.epsg).transform(xu, yu)
    dx, dy = footprint.drift_m
    classes, freeboard, _ = world.sample(np.asarray(xw), np.asarray(yw), shift_m=(-float(dx), -float(dy)))
    rho = _surface_reflectance(classes, freeboard, world, params)
    if halo:
        rho = gaussian_filter(rho, (0.0, params.psf_sigma_px, params.psf_sigma_px), mode="nearest",
                              truncate=_PSF_TRUNCATE)
        rho = rho[:, halo:halo + (r1 - r0)]
    classes = classes[halo:halo + (r1 - r0)]
    valid = edge.valid(grid, r0, r1)
    mask = np.full(classes.shape, CLOUD_CLEAR, dtype=np.uint8)
    if clouds is not None:
        alpha, shadow = clouds.fields(r0, r1, grid.cols)
        rho *= 1.0 - np.float32(1.0 - clouds.shadow_factor) * shadow
        cloud_refl = np.asarray(params.cloud_reflectance, dtype=np.float32)[:, None, None]
        rho = (1.0 - alpha) * rho + alpha * cloud_refl
        mask[shadow >= params.shadow_mask_level] = CLOUD_SHADOW
        mask[alpha >= params.thin_mask_alpha] = CLOUD_THIN
        mask[alpha >= params.opaque_mask_alpha] = CLOUD_OPAQUE
    noise = _rng(entropy, _STREAM_NOISE, index).standard_normal(rho.shape, dtype=np.float32)
    rho += np.float32(params.noise_std) * noise
    dn = np.rint(rho * np.float32(S2_REFLECTANCE_SCALE)) + np.float32(dn_offset)
    dn_u16 = np.clip(dn, _NODATA_DN + 1, _DN_MAX).astype(np.uint16)
    dn_u16[:, ~valid] = _NODATA_DN
    classes = np.where(valid, classes, np.uint8(MASK_NODATA)).astype(np.uint8)
    mask[~valid] = MASK_NODATA
    return _ChunkResult(r0=r0, dn=dn_u16, classes=classes, mask=mask)


# --------------------------------------------------------------------------------------------------
# writing


def _write_cog(path: Path, data: npt.NDArray[Any], *, crs: str, transform: Any, nodata: int,
               tags: dict[str, str], descriptions: tuple[str, ...], resampling: str) -> None:
    """Write a COG with fixed options (byte-identical output for identical input)."""
    import rasterio
    from rasterio.io import MemoryFile
    from rasterio.shutil import copy as rio_copy

    count, height, width = data.shape
    profile = {"driver": "GTiff", "width": width, "height": height, "count": count, "dtype": data.dtype.name,
               "crs": crs, "transform": transform, "nodata": nodata}
    predictor = "YES" if np.issubdtype(data.dtype, np.integer) and data.dtype.itemsize > 1 else "NO"
    tmp = path.with_name(f".{path.name}.tmp")
    with MemoryFile() as mem, mem.open(**profile) as ds:
        ds.write(data)
        for i, desc in enumerate(descriptions, start=1):
            ds.set_band_description(i, desc)
        ds.update_tags(**tags)
        with rasterio.Env(GDAL_NUM_THREADS="1"):
            rio_copy(ds, str(tmp), driver="COG", BLOCKSIZE=_COG_BLOCKSIZE, COMPRESS=_COG_COMPRESS,
                     LEVEL=_COG_LEVEL, PREDICTOR=predictor, RESAMPLING=resampling, NUM_THREADS="1")
    os.replace(tmp, path)


def _baseline_text(baseline: tuple[int, int]) -> str:
    return f"{baseline[0]:02d}.{baseline[1]:02d}"


def write_s2_scene(world: TruthWorld, footprint: S2Footprint, config: SimConfig, out_dir: Path,
                   truth_dir: Path, *, clouds: bool = True, params: S2SimParams | None = None,
                   workers: int | None = None) -> Path:
    """Write one simulated Sentinel-2 scene (four band COGs) and its truth.

    Parameters
    ----------
    world : TruthWorld
        The truth world (sampled at the S2 time: shifted by ``-footprint.drift_m``).
    footprint : S2Footprint
        Tile, UTM EPSG, sensing time, centre (EPSG:3976 m), size (m), drift (m) and baseline.
    config : SimConfig
        The simulated day; ``config.seed`` (with ``footprint.scene``) seeds every random draw.
    out_dir : pathlib.Path
        The scene folder ``out_dir / footprint.safe_name`` is (re)written.
    truth_dir : pathlib.Path
        ``truth_dir / footprint.scene`` receives ``classes.tif``, ``cloud_mask.tif`` and
        ``scene.json``.  Write a clear and a cloudy version of a scene to different folders.
    clouds : bool
        False: the clear version of the same scene (same surface, noise and nodata edge).
    params : S2SimParams, optional
        Radiometric and cloud knobs (default ``S2SimParams()``).
    workers : int, optional
        Threads rendering row chunks (default: up to 4, at most the CPU count); the output
        does not depend on it.

    Returns
    -------
    pathlib.Path
        The scene folder (open it with :func:`seaice_tasks.io.s2.open_s2_scene`).
    """
    p = params if params is not None else S2SimParams()
    started = time.perf_counter()
    entropy = _scene_entropy(config.seed, footprint.scene)
    grid, lon, lat = _make_grid(footprint)
    geo_rng = _rng(entropy, _STREAM_GEOMETRY)
    edge = _SwathEdge(corner=int(geo_rng.integers(_CORNERS)), cut=float(geo_rng.uniform(*p.nodata_cut_fraction)))
    cloud_model = _make_clouds(entropy, grid, footprint, lon, lat, p) if clouds else None
    dn_offset = -S2_BOA_ADD_OFFSET_DN if tuple(footprint.baseline) >= S2_OFFSET_BASELINE else 0

    dn = np.empty((len(S2_BANDS), grid.rows, grid.cols), dtype=np.uint16)
    classes = np.empty((grid.rows, grid.cols), dtype=np.uint8)
    mask = np.empty((grid.rows, grid.cols), dtype=np.uint8)
    step = max(1, _CHUNK_POINTS // grid.cols)
    bounds = [(i, r, min(r + step, grid.rows)) for i, r in enumerate(range(0, grid.rows, step))]
    n_workers = workers if workers is not None else min(_MAX_WORKERS, os.cpu_count() or 1)

    def render(job: tuple[int, int, int]) -> _ChunkResult:
        return _render_chunk(*job, world=world, footprint=footprint, grid=grid, edge=edge, clouds=cloud_model,
                             entropy=entropy, dn_offset=dn_offset, params=p)

    with ThreadPoolExecutor(max_workers=max(1, n_workers)) as pool:
        for res in pool.map(render, bounds):
            rows = slice(res.r0, res.r0 + res.classes.shape[0])
            dn[:, rows] = res.dn
            classes[rows] = res.classes
            mask[rows] = res.mask
    rendered = time.perf_counter()

    scene_dir = Path(out_dir) / footprint.safe_name
    truth_scene = Path(truth_dir) / footprint.scene
    scene_dir.mkdir(parents=True, exist_ok=True)
    truth_scene.mkdir(parents=True, exist_ok=True)
    crs = f"EPSG:{grid.epsg}"
    base_tags = {"PROCESSING_BASELINE": _baseline_text(footprint.baseline), "PRODUCT_TYPE": "S2MSI1C",
                 "SENSING_TIME": f"{footprint.sensing_utc:%Y-%m-%dT%H:%M:%S}Z", "TILE_ID": footprint.tile,
                 "SEAICE_SIMULATED": "1"}
    for b, band in enumerate(S2_BANDS):
        _write_cog(scene_dir / band_file_name(footprint, band), dn[b:b + 1], crs=crs, transform=grid.transform,
                   nodata=_NODATA_DN, tags={**base_tags, "BAND_NAME": band}, descriptions=(band,),
                   resampling="AVERAGE")
    _write_cog(truth_scene / TRUTH_CLASSES_NAME, classes[None], crs=crs, transform=grid.transform,
               nodata=MASK_NODATA, tags={"CONTENT": "0 thick ice, 1 thin ice, 2 open water, 255 no data"},
               descriptions=("class",), resampling="NEAREST")
    _write_cog(truth_scene / TRUTH_CLOUD_MASK_NAME, mask[None], crs=crs, transform=grid.transform,
               nodata=MASK_NODATA, tags={"CONTENT": "0 clear, 1 thin cloud, 2 opaque cloud, 3 shadow, 255 no data"},
               descriptions=("cloud_mask",), resampling="NEAREST")

    valid = classes != MASK_NODATA
    n_valid = max(int(valid.sum()), 1)
    class_fractions = {c.name.lower(): int(np.count_nonzero(classes == c)) / n_valid
                       for c in (SeaIceClass.THICK_ICE, SeaIceClass.THIN_ICE, SeaIceClass.OPEN_WATER)}
    mask_names = {CLOUD_CLEAR: "clear", CLOUD_THIN: "thin_cloud", CLOUD_OPAQUE: "opaque_cloud",
                  CLOUD_SHADOW: "shadow"}
    mask_fractions = {name: int(np.count_nonzero(mask == code)) / n_valid for code, name in mask_names.items()}
    wcfg = world.config
    meta: dict[str, Any] = {
        "scene": footprint.scene,
        "safe_name": footprint.safe_name,
        "footprint": {
            "track_granule": footprint.track_granule, "tile": footprint.tile, "utm_epsg": footprint.utm_epsg,
            "sensing_utc": f"{footprint.sensing_utc:%Y-%m-%dT%H:%M:%S}Z",
            "center_x_m": float(footprint.center_x_m), "center_y_m": float(footprint.center_y_m),
            "center_lon_deg": lon, "center_lat_deg": lat, "size_m": float(footprint.size_m),
            "drift_m": [float(footprint.drift_m[0]), float(footprint.drift_m[1])],
            "baseline": list(footprint.baseline),
        },
        "drift_convention": "image at EPSG:3976 (x, y) shows world.sample(x, y, shift_m=(-dx, -dy))",
        "grid": {"crs": crs, "transform": list(grid.transform)[:6], "shape": [grid.rows, grid.cols],
                 "pixel_m": S2_PIXEL_M},
        "bands": {band: band_file_name(footprint, band) for band in S2_BANDS},
        "dn": {"scale": S2_REFLECTANCE_SCALE, "offset_added_dn": dn_offset, "nodata": _NODATA_DN},
        "swath_edge": {"corner": ["top_left", "top_right", "bottom_right", "bottom_left"][edge.corner],
                       "cut_fraction": edge.cut},
        "valid_fraction": float(valid.mean()),
        "clouds": clouds,
        "cloud": cloud_model.info if cloud_model is not None else None,
        "cloud_mask_fractions": mask_fractions,
        "class_fractions": class_fractions,
        "world_fractions": {"thick_ice": wcfg.thick_fraction, "thin_ice": wcfg.thin_fraction,
                            "open_water": wcfg.water_fraction},
        "params": p.to_dict(),
        "config_seed": config.seed,
        "world_seed": wcfg.seed,
    }
    tmp = truth_scene / f".{TRUTH_JSON_NAME}.tmp"
    tmp.write_text(json.dumps(meta, sort_keys=True, indent=1) + "\n")
    os.replace(tmp, truth_scene / TRUTH_JSON_NAME)
    done = time.perf_counter()
    log.info("%s: simulated S2 scene %dx%d px (clouds=%s, valid %.3f, classes %s) rendered in %.2f s, "
             "written in %.2f s -> %s", footprint.scene, grid.rows, grid.cols, clouds, float(valid.mean()),
             {k: round(v, 4) for k, v in class_fractions.items()}, rendered - started, done - rendered, scene_dir)
    return scene_dir
