"""Colocation of 2 m ICESat-2 segments with Sentinel-2 label rasters (METHOD.md §4.1-4.3).

A **pair** is one (granule, beam) track and one Sentinel-2 scene whose valid footprint the track
crosses within ``max_dt_s`` of the scene's sensing time.  Geometry:

* segment centres (mean photon lon/lat of each 2 m bin) go to the scene's own CRS (UTM zones,
  EPSG:3976, whatever the label raster says) with pyproj, once per pair;
* a drift shift ``d`` = (dx, dy) in EPSG:3976 metres is the ice motion from the S2 to the IS2
  time, so a segment at ``q`` looks up the pixel at ``q - d``.  Within one scene the map from
  EPSG:3976 to the scene CRS is affine to far better than a metre over the ±1.5 km search, so
  the shift is applied in the scene CRS as ``J @ d`` with the Jacobian ``J`` at the footprint
  (:func:`local_jacobian`) instead of reprojecting per candidate shift;
* pixel lookup by the inverse affine transform of the raster, floored; outside the raster is
  ``-1``.

Everything here is vectorised over segments; nothing loops per segment or pixel.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from functools import lru_cache
from typing import Any, ClassVar, Final

import numpy as np
import numpy.typing as npt

from seaice_tasks.config import JsonConfig
from seaice_tasks.constants import SeaIceClass
from seaice_tasks.errors import ConfigError, SeaIceError
from seaice_tasks.is2.photon_evidence import PhotonEvidenceConfig

__all__ = [
    "POLAR_CRS",
    "ColocateConfig",
    "SceneGrid",
    "scene_sensing_utc",
    "granule_start_utc",
    "to_crs",
    "local_jacobian",
    "lead_runs",
]

#: Label policies of the transfer (``ColocateConfig.label_policy``).
LABEL_POLICIES: Final[tuple[str, ...]] = ("s2", "evidence")

#: CRS of drift shifts and of the authors' colocation (NSIDC Sea Ice Polar Stereographic South).
POLAR_CRS: Final[str] = "EPSG:3976"
#: Step of the finite differences of :func:`local_jacobian` (m).
_JACOBIAN_STEP_M: Final[float] = 100.0
_SCENE_TIME_FORMAT: Final[str] = "%Y%m%dT%H%M%S"
_GRANULE_TIME_FORMAT: Final[str] = "%Y%m%d%H%M%S"

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclasses.dataclass(frozen=True)
class ColocateConfig(JsonConfig):
    """Pair finding, drift search, label transfer and features of the colocation job.

    Attributes
    ----------
    max_dt_s : float
        Largest |t_IS2 - t_S2| of a covered segment (s; METHOD §4.1: 4800 s = 80 min).
    min_overlap_m : float
        Least covered length for a pair (m): segments inside the valid footprint x 2 m.
    max_scene_cloud_fraction : float
        Scenes whose opaque cloud/shadow fraction (the label partition's ``cloud_fraction``) is
        above this are not paired (METHOD §4.1 filters ``HIGH_PROBA_CLOUDS_PERCENTAGE < 10`` on
        GEE metadata; default 1.0 = off, the per-pixel mask already removes cloud).
    min_scene_water_fraction : float
        Scenes whose labelled open-water fraction is below this are not paired (METHOD §4.1:
        ``WATER_PERCENTAGE > 5``; default 0.0 = off: a thin-ice scene still gives labels).
    search_radius_m : float
        Half-side of the square drift search (m, EPSG:3976 axes).
    coarse_step_m, fine_step_m, final_step_m : float
        Steps of the three search levels (m): coarse over the whole square on a block-averaged
        raster, fine around the coarse peak, final around the fine peak.
    candidates : int
        Best coarse shifts refined at full resolution.
    exclusion_m : float
        Candidates are at least this far apart (m); the confidence compares the best with the
        best other candidate.
    min_leads : int
        Least number of S2 lead runs (water or thin ice, >= ``min_lead_segments``) under the
        track for a drift estimate.
    min_lead_segments : int
        Least length (segments) of a lead run counted by ``min_leads``.
    min_correlation : float
        Least peak correlation between S2 lead indicator and photon lowness.
    min_confidence : float
        Least peak / second-peak ratio.
    floor_block_m : float
        Block length of the photon floor (m): the ``floor_percentile`` of ``h_cor_mean_m`` per
        block, interpolated, is the local reference of the photon lowness.
    floor_percentile : float
        Percentile of the photon floor.
    height_clip_m : (float, float)
        Clip of the height above the floor before correlation (m): ridges and noise spikes do not
        dominate.
    lead_height_m : float
        A segment this close to the floor counts as a photon lead in the agreement (m).
    drift_scope : {"scene", "pair"}
        One shift per (granule, scene) from all its beams together (default: the drift is the
        scene's), or one per beam.
    use_unet : bool
        Also look up the scene's U-Net labels (``label_unet``) when the scene has them.
    label_from : {"s2", "unet"}
        Which automatic label becomes ``label`` (``unet`` needs ``use_unet`` and a U-Net partition).
    edge_trim_segments : int
        Labelled segments next to a trimmed end run also set unlabeled (the authors' notebook
        ``corner_offset`` = 100; default 0).
    refine : bool
        Photon label refinement (:func:`seaice_tasks.is2.label_transfer.refine_with_photons`).
    refine_water_tolerance_m, refine_max_height_sd_m, refine_min_pcnt_ratio : float
        A thin/thick segment becomes water when it is within the tolerance of the local S2-water
        level, its photon height std is at most the maximum and its photon rate is at least the
        ratio times the track's median.
    refine_thick_above_m : float
        With ``refine``, a thin-ice or water segment at least this far above the local S2-water
        level becomes thick ice (m; thin ice is at most ~0.15 m above water).
    label_policy : {"evidence", "s2"}
        ``s2``: the colour label of the pixel under each segment is its label (the papers'; the
        parity recipe).
        ``evidence``: a segment is labelled only where the photons agree
        (:func:`seaice_tasks.is2.label_transfer.evidence_labels`): open water wherever the photon
        evidence finds it (the narrow leads a 10 m pixel calls ice), thick or thin ice where a pure
        pixel and the photons say the same; everything else is left unlabelled, never taught as ice
        (the default: on the demo's training day 99.6 % of its labels are right against 92.2 %,
        and it labels 2.1 times as much water; docs/colocation.md).
    unlabel_mixed : bool
        With ``s2``: leave unlabelled the segments on a pixel whose 3 x 3 neighbourhood holds
        another class (class edges, narrow features; ``evidence`` always does).
    evidence : PhotonEvidenceConfig
        Windows and thresholds of the photon evidence (:mod:`seaice_tasks.is2.photon_evidence`).
    reference_window_m : float
        Radius of the 10 km / 5 km feature windows (METHOD §5.1: 5000 m).
    reference_percentile : float
        Percentile of ``h_cor_mean_m`` per window of the label-free relative height.
    """

    kind: ClassVar[str] = "colocate"
    max_dt_s: float = 4800.0
    min_overlap_m: float = 200.0
    max_scene_cloud_fraction: float = 1.0
    min_scene_water_fraction: float = 0.0
    search_radius_m: float = 1500.0
    coarse_step_m: float = 40.0
    fine_step_m: float = 5.0
    final_step_m: float = 1.0
    candidates: int = 16
    exclusion_m: float = 150.0
    min_leads: int = 3
    min_lead_segments: int = 5
    min_correlation: float = 0.15
    min_confidence: float = 1.15
    floor_block_m: float = 1000.0
    floor_percentile: float = 10.0
    height_clip_m: tuple[float, float] = (-0.3, 1.0)
    lead_height_m: float = 0.12
    drift_scope: str = "scene"
    use_unet: bool = False
    label_from: str = "s2"
    edge_trim_segments: int = 0
    refine: bool = False
    refine_water_tolerance_m: float = 0.05
    refine_max_height_sd_m: float = 0.2
    refine_min_pcnt_ratio: float = 1.5
    refine_thick_above_m: float = 0.3
    label_policy: str = "evidence"
    unlabel_mixed: bool = False
    evidence: PhotonEvidenceConfig = dataclasses.field(default_factory=PhotonEvidenceConfig)
    reference_window_m: float = 5000.0
    reference_percentile: float = 2.0

    def __post_init__(self) -> None:
        if self.max_dt_s <= 0 or self.min_overlap_m < 0:
            raise ConfigError("ColocateConfig: max_dt_s > 0 and min_overlap_m >= 0 required")
        if not 0 < self.final_step_m <= self.fine_step_m <= self.coarse_step_m <= self.search_radius_m:
            raise ConfigError("ColocateConfig: 0 < final_step_m <= fine_step_m <= coarse_step_m <= search_radius_m "
                              "required")
        if self.drift_scope not in ("scene", "pair"):
            raise ConfigError(f"ColocateConfig.drift_scope: 'scene' or 'pair', got {self.drift_scope!r}")
        if self.label_from not in ("s2", "unet"):
            raise ConfigError(f"ColocateConfig.label_from: 's2' or 'unet', got {self.label_from!r}")
        if self.label_from == "unet" and not self.use_unet:
            raise ConfigError("ColocateConfig.label_from 'unet' needs use_unet")
        if self.label_policy not in LABEL_POLICIES:
            raise ConfigError(f"ColocateConfig.label_policy: one of {list(LABEL_POLICIES)}, got {self.label_policy!r}")
        if not 0 <= self.floor_percentile <= 100 or not 0 <= self.reference_percentile <= 100:
            raise ConfigError("ColocateConfig: percentiles must be in [0, 100]")
        if self.height_clip_m[0] >= self.height_clip_m[1]:
            raise ConfigError("ColocateConfig.height_clip_m: (low, high) with low < high required")
        if self.candidates < 1:
            raise ConfigError("ColocateConfig.candidates: >= 1 required")
        if self.edge_trim_segments < 0 or self.min_leads < 0 or self.min_lead_segments < 1:
            raise ConfigError("ColocateConfig: edge_trim_segments >= 0, min_leads >= 0, min_lead_segments >= 1")


def scene_sensing_utc(scene: str) -> dt.datetime:
    """Sensing time of a scene key ``YYYYMMDDThhmmss_Txxxxx``.

    Examples
    --------
    >>> scene_sensing_utc("20191104T192524_T06CZY").isoformat()
    '2019-11-04T19:25:24+00:00'
    """
    try:
        return dt.datetime.strptime(scene.split("_", 1)[0], _SCENE_TIME_FORMAT).replace(tzinfo=dt.UTC)
    except ValueError:
        raise SeaIceError(f"scene key {scene!r}: not YYYYMMDDThhmmss_Txxxxx") from None


def granule_start_utc(granule: str) -> dt.datetime:
    """Start time of a granule key ``YYYYMMDDhhmmss_RRRRCCSS``.

    Examples
    --------
    >>> granule_start_utc("20191104195105_06350510").isoformat()
    '2019-11-04T19:51:05+00:00'
    """
    try:
        return dt.datetime.strptime(granule.split("_", 1)[0], _GRANULE_TIME_FORMAT).replace(tzinfo=dt.UTC)
    except ValueError:
        raise SeaIceError(f"granule key {granule!r}: not YYYYMMDDhhmmss_RRRRCCSS") from None


@lru_cache(maxsize=16)
def _transformer(src: str, dst: str) -> Any:
    from pyproj import Transformer

    return Transformer.from_crs(src, dst, always_xy=True)


def to_crs(x: npt.ArrayLike, y: npt.ArrayLike, src: str, dst: str) -> tuple[FloatArray, FloatArray]:
    """Coordinates from ``src`` to ``dst`` (``always_xy``: lon/lat order for EPSG:4326)."""
    if src == dst:
        return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    xo, yo = _transformer(src, dst).transform(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    return np.asarray(xo, dtype=np.float64), np.asarray(yo, dtype=np.float64)


def local_jacobian(crs: str, lon_deg: float, lat_deg: float) -> FloatArray:
    """2 x 2 derivative of the map EPSG:3976 -> ``crs`` at a point: scene metres per polar metre.

    Examples
    --------
    >>> bool(np.allclose(local_jacobian("EPSG:3976", -170.0, -75.0), np.eye(2)))
    True
    """
    x0, y0 = to_crs([lon_deg], [lat_deg], "EPSG:4326", POLAR_CRS)
    h = _JACOBIAN_STEP_M
    px = np.array([x0[0], x0[0] + h, x0[0]])
    py = np.array([y0[0], y0[0], y0[0] + h])
    sx, sy = to_crs(px, py, POLAR_CRS, crs)
    return np.array([[sx[1] - sx[0], sx[2] - sx[0]], [sy[1] - sy[0], sy[2] - sy[0]]], dtype=np.float64) / h


@dataclasses.dataclass(frozen=True)
class SceneGrid:
    """The grid of a scene's label raster: CRS, affine transform and shape.

    Attributes
    ----------
    scene : str
        Scene key.
    crs : str
        CRS of the grid (``EPSG:xxxxx`` or WKT).
    transform : tuple of float
        Affine ``(a, b, c, d, e, f)``: ``x = a col + b row + c``, ``y = d col + e row + f``.
    shape : (int, int)
        Rows, columns.

    Examples
    --------
    >>> g = SceneGrid("s", "EPSG:32706", (10.0, 0.0, 500000.0, 0.0, -10.0, 1000.0), (100, 100))
    >>> r, c = g.pixel_of(np.array([500005.0, 499999.0]), np.array([995.0, 995.0]))
    >>> r.tolist(), c.tolist()
    ([0, -1], [0, -1])
    """

    scene: str
    crs: str
    transform: tuple[float, float, float, float, float, float]
    shape: tuple[int, int]

    @property
    def sensing_utc(self) -> dt.datetime:
        """Sensing time from the scene key."""
        return scene_sensing_utc(self.scene)

    @property
    def pixel_size_m(self) -> float:
        """Side of a pixel (m, the mean of the two axes)."""
        a, b, _, d, e, _ = self.transform
        return float(0.5 * (np.hypot(a, d) + np.hypot(b, e)))

    def to_pixel(self, dx: FloatArray, dy: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Fractional (row, col) displacement of a displacement (dx, dy) in the grid's CRS (m).

        The linear part of the inverse transform: a point's fractional pixel is
        ``to_pixel(x - c, y - f)``, and shifting the point by (dx, dy) moves it by
        ``to_pixel(dx, dy)`` pixels.
        """
        a, b, _, d, e, _ = self.transform
        det = a * e - b * d
        if det == 0:
            raise SeaIceError(f"scene {self.scene}: singular label raster transform {self.transform}")
        dx = np.asarray(dx, dtype=np.float64)
        dy = np.asarray(dy, dtype=np.float64)
        return (-d * dx + a * dy) / det, (e * dx - b * dy) / det

    def fractional_pixel(self, x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Fractional (row, col) of points in the grid's CRS (pixel (0, 0) spans [0, 1) x [0, 1))."""
        _, _, c, _, _, f = self.transform
        return self.to_pixel(np.asarray(x, dtype=np.float64) - c, np.asarray(y, dtype=np.float64) - f)

    def pixel_of(self, x: FloatArray, y: FloatArray) -> tuple[IntArray, IntArray]:
        """(row, col) of points in the grid's CRS, floored; ``-1`` for both outside the raster."""
        row_f, col_f = self.fractional_pixel(x, y)
        row, col = np.floor(row_f), np.floor(col_f)
        inside = (row >= 0) & (row < self.shape[0]) & (col >= 0) & (col < self.shape[1]) & np.isfinite(row + col)
        r = np.where(inside, row, -1).astype(np.int64)
        cc = np.where(inside, col, -1).astype(np.int64)
        return r, cc

    def sample(self, raster: npt.NDArray[np.uint8], x: FloatArray, y: FloatArray,
               outside: int = int(SeaIceClass.UNLABELED)) -> tuple[npt.NDArray[np.uint8], IntArray, IntArray]:
        """Values of a raster on this grid at points (``outside`` where off the raster), rows, cols."""
        r, c = self.pixel_of(x, y)
        inside = r >= 0
        values = np.full(r.shape, outside, dtype=np.uint8)
        values[inside] = raster[r[inside], c[inside]]
        return values, r, c


def lead_runs(is_lead: npt.NDArray[np.bool_], contiguous: npt.NDArray[np.bool_], min_length: int) -> int:
    """Number of runs of ``is_lead`` at least ``min_length`` long (a run breaks where not ``contiguous``).

    ``contiguous[i]`` says that row ``i`` follows row ``i - 1`` without a gap.

    Examples
    --------
    >>> lead_runs(np.array([1, 1, 0, 1, 1, 1, 0, 1], bool), np.ones(8, bool), 2)
    2
    """
    lead = np.asarray(is_lead, dtype=bool)
    if lead.size == 0:
        return 0
    starts = lead & ~np.r_[False, lead[:-1] & np.asarray(contiguous, dtype=bool)[1:]]
    run_id = np.cumsum(starts) - 1
    lengths = np.bincount(run_id[lead], minlength=int(starts.sum())) if starts.any() else np.zeros(0, np.int64)
    return int(np.count_nonzero(lengths >= min_length))
