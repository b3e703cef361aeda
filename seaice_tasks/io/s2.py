"""Sentinel-2 10 m bands: open a scene, read DN in windows, DN -> reflectance, 8-bit RGB, label PNGs.

A *scene* is the four 10 m bands B02 (blue), B03 (green), B04 (red) and B08 (NIR) on one grid.  It
comes as

* a folder holding one raster per band (``.tif``, ``.tiff`` or ``.jp2`` whose name contains the band
  token, e.g. ``T18SVG_20160112T160632_B02.jp2``, ``s2_B02_crop1024.tif``, ``<gee id>.B2.tif``),
* a mapping ``{"B02": path, ...}``, or
* one multi-band raster whose band descriptions name the bands (``B02``/``B2`` ...) or, without
  descriptions, holds exactly the four bands in the order B02, B03, B04, B08.

Paths may be local or fsspec URLs (``s3://...``, ``memory://...``): URLs are read through the fsspec
file system handed to rasterio as its ``opener``, so windowed reads fetch only the bytes they need.

Radiometry (METHOD.md §1.4): reflectance rho = (DN + offset) / 10000 with offset 0 before processing
baseline 04.00 and -1000 from 04.00 on; DN 0 is *no data*.

The 8-bit RGB composite feeds the colour-threshold segmentation (METHOD.md §2.1), which classifies
on V = max(R, G, B): open water 0-30, thin ice 31-204, thick ice 205-255.  How the authors stretched
their PNGs is UNCERTAIN; see :class:`S2ReadConfig` for the stretch used here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, ClassVar, Final, Literal

import numpy as np
import numpy.typing as npt
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.windows import Window

from seaice_tasks.config import JsonConfig
from seaice_tasks.constants import (
    CLASS_COLOURS_RGB,
    S2_BANDS,
    S2_BOA_ADD_OFFSET_DN,
    S2_OFFSET_BASELINE,
    S2_REFLECTANCE_SCALE,
    UNLABELED,
    SeaIceClass,
)
from seaice_tasks.errors import (
    ConfigError,
    CorruptFileError,
    GranuleNameError,
    InputError,
    MissingVariableError,
    RasterMismatchError,
    WrongProductError,
)
from seaice_tasks.granule import S2SceneId, parse_s2_scene
from seaice_tasks.io.summary import ProductSummary

__all__ = [
    "read_bands_overview",
    "S2_NODATA_DN",
    "RASTER_SUFFIXES",
    "S2ReadConfig",
    "S2Scene",
    "open_s2_scene",
    "read_bands",
    "read_reflectance",
    "iter_windows",
    "dn_to_reflectance",
    "rgb_composite",
    "valid_mask",
    "valid_fraction",
    "is_all_nodata",
    "summarize_s2",
    "decode_label_png",
    "class_counts",
]

log = logging.getLogger(__name__)

#: DN of Sentinel-2 L1C/L2A pixels outside the swath (``NO_DATA``), used when a file sets no nodata.
S2_NODATA_DN: Final[int] = 0
#: File name endings recognised as band rasters in a scene folder (case-insensitive).
RASTER_SUFFIXES: Final[tuple[str, ...]] = (".tif", ".tiff", ".jp2")
#: Longest side (px) of the decimated read used for quick statistics (valid fraction, DN range).
OVERVIEW_MAX_PX: Final[int] = 512
#: Default tile side (px) of :func:`iter_windows`: 2048^2 x 4 bands x 2 B = 32 MiB of DN per tile.
DEFAULT_TILE_PX: Final[int] = 2048
#: Largest value of an 8-bit channel.
UINT8_MAX: Final[int] = 255
#: Only this raster data type is accepted for Sentinel-2 DN.
S2_DN_DTYPE: Final[str] = "uint16"
#: Tolerance (in CRS units, metres for UTM) when comparing the geotransforms of two bands.
TRANSFORM_TOLERANCE: Final[float] = 1e-6

_BAND_TOKEN_RE = re.compile(r"^B(?:0?(\d)|(\d\d)|(8A))$", re.IGNORECASE)
_BASELINE_RE = re.compile(r"(\d{1,2})\.?(\d{2})")
_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

BaselineSource = Literal["config", "name", "metadata", "assumed"]


# --------------------------------------------------------------------------------------------------
# configuration and scene description


@dataclass(frozen=True)
class S2ReadConfig(JsonConfig):
    """How Sentinel-2 scenes are read and turned into the 8-bit RGB used by the colour thresholds.

    Attributes
    ----------
    bands : tuple of str
        Bands to read, in the order of the arrays returned by :func:`read_bands`.  The default
        ``("B02", "B03", "B04", "B08")`` (blue, green, red, NIR) is also the order
        :func:`rgb_composite` expects (its first three bands must be B02, B03, B04).
    rgb_stretch_max_reflectance : float
        Reflectance (dimensionless, 0-1) mapped to 255 in the 8-bit composite; 0 maps to 0 and
        the scale is linear in between (before gamma), values above saturate at 255.  The
        authors' stretch is UNCERTAIN (METHOD.md §1.4); the TCI convention maps DN 0-2000, i.e.
        reflectance 0-0.2, to 1-255, which saturates every ice surface.  The default 1.0 keeps
        the full reflectance range, so with the §2.1 thresholds on V = max(R, G, B)

        * open water (rho ≈ 0.02-0.08) gives V ≤ 30 ⇔ rho < 0.1196 (water),
        * young/thin ice (rho ≈ 0.1-0.7) gives 31 ≤ V ≤ 204 ⇔ 0.1196 ≤ rho < 0.8020 (thin ice),
        * snow-covered ice (rho ≈ 0.8-0.95 in the visible) gives V ≥ 205 ⇔ rho ≥ 0.8020 (thick ice).

        Lower it (e.g. 0.9) to push bright-but-not-fresh snow into the thick-ice class.
    rgb_gamma : float
        Gamma of the stretch, GEE ``visParams`` convention: value = (rho / max) ** (1 / gamma);
        1.0 is linear, > 1 brightens dark surfaces.
    processing_baseline : tuple of (int, int) or None
        Processing baseline (major, minor), e.g. ``(4, 0)``, forced for every scene.  None: take
        it from the scene name (``N0208`` in SAFE names) or the raster metadata
        (``PROCESSING_BASELINE``); when neither has it, assume a baseline before 04.00 (offset 0,
        right for the 2019 study data) and log a warning.

    Examples
    --------
    >>> cfg = S2ReadConfig(rgb_stretch_max_reflectance=0.9)
    >>> S2ReadConfig.from_json(cfg.to_json()) == cfg
    True
    """

    kind: ClassVar[str] = "s2_read"
    bands: tuple[str, ...] = S2_BANDS
    rgb_stretch_max_reflectance: float = 1.0
    rgb_gamma: float = 1.0
    processing_baseline: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if not self.bands:
            raise ConfigError("S2ReadConfig.bands: at least one band is needed")
        normalised = tuple(_normalise_band(b) for b in self.bands)
        if None in normalised:
            raise ConfigError(f"S2ReadConfig.bands: {self.bands!r} holds a name that is not Bnn/B8A")
        if len(set(normalised)) != len(normalised):
            raise ConfigError(f"S2ReadConfig.bands: {self.bands!r} repeats a band")
        object.__setattr__(self, "bands", normalised)
        for name in ("rgb_stretch_max_reflectance", "rgb_gamma"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"S2ReadConfig.{name}: must be a positive number, got {value!r}")
        if self.processing_baseline is not None:
            major, minor = self.processing_baseline
            if major < 0 or minor < 0:
                raise ConfigError(f"S2ReadConfig.processing_baseline: invalid {self.processing_baseline!r}")


@dataclass(frozen=True)
class S2Scene:
    """One Sentinel-2 scene on disk: where each band is and the grid they share.

    Built by :func:`open_s2_scene`; holds no pixel data.

    Attributes
    ----------
    source : str
        The folder, file or URL the scene was opened from (``"<mapping>"`` for a mapping).
    scene_id : S2SceneId or None
        Parsed from the folder/file name when it follows a Sentinel-2 convention.
    crs : str
        ``"EPSG:nnnnn"`` when the CRS has an EPSG code, else its WKT.
    transform : tuple of 6 float
        Affine geotransform ``(a, b, c, d, e, f)``: x = a*col + b*row + c, y = d*col + e*row + f,
        in CRS units (metres for UTM) at pixel corners.
    shape : tuple of (int, int)
        (rows, cols) in pixels.
    bands : tuple of str
        Band names in read order.
    band_paths : tuple of str
        File (or URL) of each band.
    band_indexes : tuple of int
        1-based band index of each band inside its file.
    nodata : int
        DN marking no data (the file's nodata value, else :data:`S2_NODATA_DN` = 0).
    processing_baseline : tuple of (int, int) or None
        Processing baseline; None when unknown (treated as before 04.00, offset 0).
    baseline_source : {"config", "name", "metadata", "assumed"}
        Where the baseline came from.
    valid_fraction : float
        Fraction (0-1) of pixels with data in every band, estimated on a decimated read
        (at most :data:`OVERVIEW_MAX_PX` px on the longest side).
    dtype : str
        Data type of the DN (``uint16``).
    storage_options : mapping or None
        fsspec options used for URLs (not compared, not shown).
    """

    source: str
    scene_id: S2SceneId | None
    crs: str
    transform: tuple[float, float, float, float, float, float]
    shape: tuple[int, int]
    bands: tuple[str, ...]
    band_paths: tuple[str, ...]
    band_indexes: tuple[int, ...]
    nodata: int
    processing_baseline: tuple[int, int] | None
    baseline_source: BaselineSource
    valid_fraction: float
    dtype: str = S2_DN_DTYPE
    storage_options: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def resolution_m(self) -> tuple[float, float]:
        """Pixel size (x, y) in CRS units (m), both positive."""
        a, b, _, d, e, _ = self.transform
        return (math.hypot(a, d), math.hypot(b, e))

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in CRS units (north-up grids)."""
        a, _, c, _, e, f = self.transform
        rows, cols = self.shape
        xs = (c, c + a * cols)
        ys = (f, f + e * rows)
        return (min(xs), min(ys), max(xs), max(ys))

    @property
    def epsg(self) -> int | None:
        """EPSG code of the CRS, or None."""
        m = re.fullmatch(r"EPSG:(\d+)", self.crs)
        return int(m.group(1)) if m else None

    @property
    def radiometric_offset_dn(self) -> int:
        """DN offset added before scaling: -1000 from baseline 04.00 on, else 0."""
        return _offset_for(self.processing_baseline)


# --------------------------------------------------------------------------------------------------
# opening


def open_s2_scene(
    source: str | os.PathLike[str] | Mapping[str, str | os.PathLike[str]],
    config: S2ReadConfig | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> S2Scene:
    """Locate the bands of a scene and check they share one grid.

    Parameters
    ----------
    source : str, os.PathLike or mapping
        A folder of per-band rasters, a mapping band -> raster path, or one multi-band raster
        (local path or fsspec URL).
    config : S2ReadConfig, optional
        Bands to use and the processing baseline override; default ``S2ReadConfig()``.
    storage_options : mapping, optional
        Passed to fsspec for URLs.

    Returns
    -------
    S2Scene

    Raises
    ------
    InputError
        The source does not exist, or a folder holds several files for one band.
    MissingVariableError
        A band is not found (names the folder/file and the band).
    CorruptFileError
        A file is not a readable raster (names the file).
    WrongProductError
        A band is not ``uint16``.
    RasterMismatchError
        The bands differ in CRS, transform or shape (names both files and the difference).
    """
    cfg = config if config is not None else S2ReadConfig()
    band_files: list[tuple[str, str, int]]  # (band, path, 1-based index)
    if isinstance(source, Mapping):
        label = "<mapping>"
        band_files = _bands_from_mapping(source, cfg.bands)
    else:
        label = os.fspath(source)
        if _isdir(label, storage_options):
            band_files = _bands_from_folder(label, cfg.bands, storage_options)
        else:
            band_files = _bands_from_file(label, cfg.bands, storage_options)

    grid: dict[str, Any] | None = None
    ref_path = ""
    tags: dict[str, str] = {}
    for band, path, index in band_files:
        with _open_raster(path, storage_options) as ds:
            info = _grid_of(ds, index)
            if info["dtype"] != S2_DN_DTYPE:
                raise WrongProductError(
                    path, f"band {band} has data type {info['dtype']}, expected {S2_DN_DTYPE} DN"
                )
            if grid is None:
                grid, ref_path = info, path
            else:
                _check_same_grid(path, info, ref_path, grid)
            tags.update({str(k): str(v) for k, v in ds.tags().items()})
    assert grid is not None  # band_files is never empty: cfg.bands is not

    scene_id = _scene_id_of(label, [p for _, p, _ in band_files])
    baseline, baseline_source = _baseline_of(cfg, scene_id, tags, label)
    scene = S2Scene(
        source=label,
        scene_id=scene_id,
        crs=grid["crs_text"],
        transform=grid["transform"],
        shape=grid["shape"],
        bands=tuple(b for b, _, _ in band_files),
        band_paths=tuple(p for _, p, _ in band_files),
        band_indexes=tuple(i for _, _, i in band_files),
        nodata=grid["nodata"],
        processing_baseline=baseline,
        baseline_source=baseline_source,
        valid_fraction=0.0,
        storage_options=storage_options,
    )
    frac = valid_fraction(scene, overview_max_px=OVERVIEW_MAX_PX)
    scene = dataclasses.replace(scene, valid_fraction=frac)
    if frac == 0.0:
        log.warning("%s: no valid pixel in the decimated read (all DN == %d)", label, scene.nodata)
    log.info(
        "%s: S2 scene %s, %s, %dx%d px, bands %s, baseline %s (%s), valid fraction %.3f",
        label,
        scene_id.scene if scene_id else "(unnamed)",
        scene.crs,
        scene.shape[0],
        scene.shape[1],
        ",".join(scene.bands),
        baseline,
        baseline_source,
        frac,
    )
    return scene


def _normalise_band(name: str) -> str | None:
    """``B2``/``b02``/``B02`` -> ``B02``; ``B8A`` -> ``B8A``; None when not a band name."""
    m = _BAND_TOKEN_RE.match(name.strip())
    if m is None:
        return None
    if m.group(1) is not None:
        return f"B0{m.group(1)}"
    if m.group(2) is not None:
        return f"B{m.group(2)}"
    return "B8A"


def _band_token_re(band: str) -> re.Pattern[str]:
    """Regex finding ``band`` as a token of a file name (``B02`` also matches ``B2``)."""
    core = f"B0?{band[2]}" if band[1] == "0" else band
    return re.compile(rf"(?<![0-9A-Za-z]){core}(?![0-9A-Za-z])", re.IGNORECASE)


def _is_url(path: str) -> bool:
    return bool(_URL_RE.match(path)) and not path.startswith("file://")


def _local(path: str) -> str:
    return path[len("file://") :] if path.startswith("file://") else path


def _fs(path: str, storage_options: Mapping[str, Any] | None) -> tuple[Any, str]:
    import fsspec

    fs, inner = fsspec.core.url_to_fs(path, **dict(storage_options or {}))
    return fs, inner


def _isdir(path: str, storage_options: Mapping[str, Any] | None) -> bool:
    if _is_url(path):
        fs, inner = _fs(path, storage_options)
        return bool(fs.isdir(inner))
    return os.path.isdir(_local(path))


def _exists(path: str, storage_options: Mapping[str, Any] | None) -> bool:
    if _is_url(path):
        fs, inner = _fs(path, storage_options)
        return bool(fs.exists(inner))
    return os.path.exists(_local(path))


def _listdir(folder: str, storage_options: Mapping[str, Any] | None) -> list[str]:
    """Full paths (URLs keep their scheme) of the plain files directly in ``folder``."""
    if _is_url(folder):
        fs, inner = _fs(folder, storage_options)
        base = folder.rstrip("/")
        out = []
        for entry in fs.ls(inner, detail=True):
            if entry.get("type") == "file":
                out.append(f"{base}/{PurePosixPath(str(entry['name'])).name}")
        return sorted(out)
    local = _local(folder)
    return sorted(
        os.path.join(folder, n) for n in os.listdir(local) if os.path.isfile(os.path.join(local, n))
    )


@contextlib.contextmanager
def _open_raster(path: str, storage_options: Mapping[str, Any] | None = None) -> Iterator[Any]:
    """Open a raster with rasterio; errors name the file."""
    if not _exists(path, storage_options):
        raise InputError(path, "no such file")
    try:
        if _is_url(path):
            fs, inner = _fs(path, storage_options)
            ds = rasterio.open(inner, opener=fs)
        else:
            ds = rasterio.open(_local(path))
    except RasterioError as exc:
        raise CorruptFileError(path, f"not a readable raster ({exc})") from exc
    try:
        yield ds
    finally:
        ds.close()


def _bands_from_mapping(
    source: Mapping[str, str | os.PathLike[str]], bands: tuple[str, ...]
) -> list[tuple[str, str, int]]:
    by_band = {}
    for key, value in source.items():
        norm = _normalise_band(str(key))
        if norm is not None:
            by_band[norm] = os.fspath(value)
    out = []
    for band in bands:
        if band not in by_band:
            raise MissingVariableError("<mapping>", f"no entry for band {band}; keys: {sorted(source)}")
        out.append((band, by_band[band], 1))
    return out


def _bands_from_folder(
    folder: str, bands: tuple[str, ...], storage_options: Mapping[str, Any] | None
) -> list[tuple[str, str, int]]:
    files = [p for p in _listdir(folder, storage_options) if p.lower().endswith(RASTER_SUFFIXES)]
    out = []
    for band in bands:
        token = _band_token_re(band)
        hits = [p for p in files if token.search(PurePosixPath(p.replace("\\", "/")).name)]
        if len(hits) > 1:
            ten_m = [p for p in hits if "10m" in PurePosixPath(p.replace("\\", "/")).name.lower()]
            hits = ten_m or hits
        if not hits:
            names = [PurePosixPath(p.replace("\\", "/")).name for p in files]
            raise MissingVariableError(
                folder,
                f"no raster for band {band} (a {'/'.join(RASTER_SUFFIXES)} file whose name contains "
                f"{band}); rasters found: {names}",
            )
        if len(hits) > 1:
            raise InputError(folder, f"several rasters for band {band}: {hits}")
        path = hits[0]
        out.append((band, path, 1))
    return out


def _bands_from_file(
    path: str, bands: tuple[str, ...], storage_options: Mapping[str, Any] | None
) -> list[tuple[str, str, int]]:
    with _open_raster(path, storage_options) as ds:
        names = _band_names(ds, path)
        count = int(ds.count)
    if names is None:
        raise MissingVariableError(
            path,
            f"cannot tell which band is which: {count} band(s) without B02.. descriptions "
            f"(an undescribed file must hold exactly {', '.join(S2_BANDS)} in that order)",
        )
    out = []
    for band in bands:
        if band not in names:
            raise MissingVariableError(path, f"no band {band} in the file (bands: {names})")
        out.append((band, path, names.index(band) + 1))
    return out


def _band_names(ds: Any, path: str) -> list[str] | None:
    """S2 band name of each band of an open file, or None when it cannot be told."""
    descriptions = [_normalise_band(d) if d else None for d in ds.descriptions]
    if all(d is not None for d in descriptions) and len(set(descriptions)) == len(descriptions):
        return [d for d in descriptions if d is not None]
    if ds.count == len(S2_BANDS):
        log.info("%s: no band descriptions, assuming the order %s", path, ",".join(S2_BANDS))
        return list(S2_BANDS)
    if ds.count == 1:
        name = PurePosixPath(path.replace("\\", "/")).name
        for band in (*S2_BANDS, "B01", "B05", "B06", "B07", "B8A", "B09", "B10", "B11", "B12"):
            if _band_token_re(band).search(name):
                return [band]
    return None


def _grid_of(ds: Any, index: int) -> dict[str, Any]:
    crs = ds.crs
    if crs is None:
        crs_text = ""
    else:
        epsg = crs.to_epsg()
        crs_text = f"EPSG:{epsg}" if epsg is not None else crs.to_wkt()
    t = ds.transform
    nodata = ds.nodatavals[index - 1]
    return {
        "crs": crs,
        "crs_text": crs_text,
        "transform": (float(t.a), float(t.b), float(t.c), float(t.d), float(t.e), float(t.f)),
        "shape": (int(ds.height), int(ds.width)),
        "nodata": S2_NODATA_DN if nodata is None else int(nodata),
        "dtype": str(ds.dtypes[index - 1]),
    }


def _check_same_grid(path: str, info: dict[str, Any], ref_path: str, ref: dict[str, Any]) -> None:
    if info["crs"] != ref["crs"]:
        raise RasterMismatchError(
            path, f"CRS {info['crs_text'] or 'none'} differs from {ref['crs_text'] or 'none'} of {ref_path}"
        )
    if info["shape"] != ref["shape"]:
        raise RasterMismatchError(path, f"shape {info['shape']} differs from {ref['shape']} of {ref_path}")
    if not all(
        math.isclose(a, b, rel_tol=0.0, abs_tol=TRANSFORM_TOLERANCE)
        for a, b in zip(info["transform"], ref["transform"], strict=True)
    ):
        raise RasterMismatchError(
            path, f"transform {info['transform']} differs from {ref['transform']} of {ref_path}"
        )
    if info["nodata"] != ref["nodata"]:
        raise RasterMismatchError(path, f"nodata {info['nodata']} differs from {ref['nodata']} of {ref_path}")


def _scene_id_of(label: str, paths: list[str]) -> S2SceneId | None:
    for candidate in (label, *paths):
        if candidate == "<mapping>":
            continue
        try:
            return parse_s2_scene(candidate)
        except GranuleNameError:
            continue
    return None


def _baseline_of(
    cfg: S2ReadConfig, scene_id: S2SceneId | None, tags: Mapping[str, str], label: str
) -> tuple[tuple[int, int] | None, BaselineSource]:
    if cfg.processing_baseline is not None:
        return cfg.processing_baseline, "config"
    if scene_id is not None and scene_id.baseline is not None:
        return scene_id.baseline, "name"
    for key, value in tags.items():
        if key.upper().endswith("PROCESSING_BASELINE"):
            m = _BASELINE_RE.search(value)
            if m is not None:
                return (int(m.group(1)), int(m.group(2))), "metadata"
    log.warning(
        "%s: processing baseline unknown (not in the name or metadata); assuming < 04.00, "
        "reflectance = DN / %g with no offset",
        label,
        S2_REFLECTANCE_SCALE,
    )
    return None, "assumed"


# --------------------------------------------------------------------------------------------------
# reading


def iter_windows(scene: S2Scene, tile_px: int = DEFAULT_TILE_PX) -> Iterator[Window]:
    """Tile the scene into windows of at most ``tile_px`` x ``tile_px`` pixels, row-major.

    Examples
    --------
    >>> s = S2Scene("x", None, "EPSG:32618", (10.0, 0.0, 0.0, 0.0, -10.0, 0.0), (5, 3), ("B02",),
    ...             ("x",), (1,), 0, None, "assumed", 1.0)
    >>> [tuple(int(v) for v in w.flatten()) for w in iter_windows(s, tile_px=4)]
    [(0, 0, 3, 4), (0, 4, 3, 1)]
    """
    if tile_px <= 0:
        raise ValueError(f"tile_px must be positive, got {tile_px}")
    rows, cols = scene.shape
    for r0 in range(0, rows, tile_px):
        for c0 in range(0, cols, tile_px):
            yield Window(c0, r0, min(tile_px, cols - c0), min(tile_px, rows - r0))


def _check_window(scene: S2Scene, window: Window) -> Window:
    rows, cols = scene.shape
    c0, r0, w, h = (float(window.col_off), float(window.row_off), float(window.width), float(window.height))
    if not all(v.is_integer() for v in (c0, r0, w, h)):
        raise ValueError(f"{scene.source}: window {window} must have integer offsets and sizes")
    if c0 < 0 or r0 < 0 or w <= 0 or h <= 0 or c0 + w > cols or r0 + h > rows:
        raise ValueError(f"{scene.source}: window {window} is not inside the {rows}x{cols} px scene")
    return Window(int(c0), int(r0), int(w), int(h))


def read_bands(scene: S2Scene, window: Window | None = None) -> npt.NDArray[np.uint16]:
    """Read the DN of all scene bands, whole or in one window.

    Parameters
    ----------
    scene : S2Scene
    window : rasterio.windows.Window, optional
        Pixel window (integer offsets and sizes, inside the scene); None reads everything.
        Use :func:`iter_windows` to process big scenes tile by tile.

    Returns
    -------
    numpy.ndarray of uint16, shape (band, rows, cols)
        DN in the order of ``scene.bands``.

    Raises
    ------
    CorruptFileError
        A file cannot be read (names it).
    ValueError
        The window is not inside the scene.
    """
    if window is None:
        rows, cols = scene.shape
        win = Window(0, 0, cols, rows)
    else:
        win = _check_window(scene, window)
    out = np.empty((len(scene.bands), int(win.height), int(win.width)), dtype=np.uint16)
    by_path: dict[str, list[int]] = {}
    for slot, path in enumerate(scene.band_paths):
        by_path.setdefault(path, []).append(slot)
    for path, slots in by_path.items():
        indexes = [scene.band_indexes[s] for s in slots]
        with _open_raster(path, scene.storage_options) as ds:
            try:
                data = ds.read(indexes, window=win)
            except RasterioError as exc:
                raise CorruptFileError(path, f"cannot read bands {indexes} ({exc})") from exc
        out[slots] = data
    return out


def read_reflectance(scene: S2Scene, window: Window | None = None) -> npt.NDArray[np.float32]:
    """:func:`read_bands` then :func:`dn_to_reflectance` with the scene's baseline and nodata."""
    return dn_to_reflectance(read_bands(scene, window), scene.processing_baseline, scene.nodata)


def _offset_for(baseline: tuple[int, int] | None) -> int:
    if baseline is not None and tuple(baseline) >= S2_OFFSET_BASELINE:
        return S2_BOA_ADD_OFFSET_DN
    return 0


def dn_to_reflectance(
    dn: npt.ArrayLike, baseline: tuple[int, int] | None = None, nodata: int | None = S2_NODATA_DN
) -> npt.NDArray[np.float32]:
    """Convert Sentinel-2 DN to reflectance: rho = (DN + offset) / 10000.

    Parameters
    ----------
    dn : array_like of int
        Digital numbers (any shape).
    baseline : tuple of (int, int) or None
        Processing baseline; offset -1000 DN from (4, 0) on, 0 before or when None (unknown).
    nodata : int or None
        DN marking no data, returned as NaN; None masks nothing.

    Returns
    -------
    numpy.ndarray of float32
        Reflectance (dimensionless, nominally 0-1; may be slightly negative from baseline 04.00
        on, where DN < 1000).

    Examples
    --------
    >>> dn_to_reflectance([0, 1500, 10000]).tolist()
    [nan, 0.15000000596046448, 1.0]
    >>> dn_to_reflectance([1500], baseline=(4, 0)).tolist()
    [0.05000000074505806]
    """
    arr = np.asarray(dn)
    offset = np.float32(_offset_for(baseline))
    out: npt.NDArray[np.float32] = (arr.astype(np.float32) + offset) / np.float32(S2_REFLECTANCE_SCALE)
    if nodata is not None:
        out[arr == nodata] = np.nan
    return out


def valid_mask(dn: npt.ArrayLike, nodata: int = S2_NODATA_DN) -> npt.NDArray[np.bool_]:
    """Pixels holding data in every band of a (band, rows, cols) DN stack -> (rows, cols) bool.

    Examples
    --------
    >>> valid_mask([[[0, 5]], [[3, 4]]]).tolist()
    [[False, True]]
    """
    arr = np.asarray(dn)
    if arr.ndim == 2:
        arr = arr[np.newaxis]
    mask: npt.NDArray[np.bool_] = np.all(arr != nodata, axis=0)
    return mask


def read_bands_overview(scene: S2Scene, overview_max_px: int) -> npt.NDArray[Any]:
    """All bands read at most ``overview_max_px`` px on the longest side (nearest neighbour)."""
    rows, cols = scene.shape
    factor = max(1, math.ceil(max(rows, cols) / overview_max_px))
    out_rows, out_cols = max(1, math.ceil(rows / factor)), max(1, math.ceil(cols / factor))
    out = np.empty((len(scene.bands), out_rows, out_cols), dtype=scene.dtype)
    for slot, (path, index) in enumerate(zip(scene.band_paths, scene.band_indexes, strict=True)):
        with _open_raster(path, scene.storage_options) as ds:
            try:
                out[slot] = ds.read(index, out_shape=(out_rows, out_cols), resampling=Resampling.nearest)
            except RasterioError as exc:
                raise CorruptFileError(path, f"cannot read band {index} ({exc})") from exc
    return out


def valid_fraction(scene: S2Scene, window: Window | None = None, overview_max_px: int | None = None) -> float:
    """Fraction (0-1) of pixels with data (DN != nodata) in every band.

    Parameters
    ----------
    scene : S2Scene
    window : rasterio.windows.Window, optional
        Restrict to a window (full resolution); ignores ``overview_max_px``.
    overview_max_px : int, optional
        Estimate on a nearest-neighbour decimated read at most this many pixels on the longest
        side (fast); None counts every pixel, reading tile by tile.
    """
    if window is not None:
        return float(valid_mask(read_bands(scene, window), scene.nodata).mean())
    if overview_max_px is not None:
        return float(valid_mask(read_bands_overview(scene, overview_max_px), scene.nodata).mean())
    n_valid = 0
    for win in iter_windows(scene):
        n_valid += int(valid_mask(read_bands(scene, win), scene.nodata).sum())
    return n_valid / float(scene.shape[0] * scene.shape[1])


def is_all_nodata(scene: S2Scene) -> bool:
    """True when no pixel holds data in every band (exact; stops at the first tile with data)."""
    return not any(valid_mask(read_bands(scene, win), scene.nodata).any() for win in iter_windows(scene))


# --------------------------------------------------------------------------------------------------
# 8-bit RGB


def rgb_composite(
    reflectance: npt.ArrayLike, config: S2ReadConfig | None = None
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.bool_]]:
    """8-bit true-colour composite (R = B04, G = B03, B = B02) for the colour thresholds.

    channel = round(255 * clip(rho / max, 0, 1) ** (1 / gamma)), with ``max`` =
    ``config.rgb_stretch_max_reflectance`` and ``gamma`` = ``config.rgb_gamma``.

    Parameters
    ----------
    reflectance : array_like of float, shape (3 or 4, rows, cols)
        Reflectance of B02, B03, B04 (then optionally B08, ignored), NaN where no data.
    config : S2ReadConfig, optional

    Returns
    -------
    rgb : numpy.ndarray of uint8, shape (rows, cols, 3)
        R, G, B; 0 where any of the three bands is NaN.
    valid : numpy.ndarray of bool, shape (rows, cols)
        True where all three bands hold data.  (Nodata pixels are black, i.e. V = 0, which the
        §2.1 thresholds would call open water: mask them with ``valid``.)

    Examples
    --------
    >>> rgb, ok = rgb_composite([[[0.05, np.nan]], [[0.5, 0.1]], [[0.9, 0.1]]])
    >>> rgb.tolist(), ok.tolist()
    ([[[230, 128, 13], [0, 0, 0]]], [[True, False]])
    """
    cfg = config if config is not None else S2ReadConfig()
    refl = np.asarray(reflectance, dtype=np.float32)
    if refl.ndim != 3 or refl.shape[0] not in (3, 4):
        raise ValueError(f"reflectance must have shape (3 or 4, rows, cols), got {refl.shape}")
    rgb_f = np.stack((refl[2], refl[1], refl[0]), axis=-1)
    valid: npt.NDArray[np.bool_] = np.all(np.isfinite(rgb_f), axis=-1)
    scaled = np.clip(np.nan_to_num(rgb_f, nan=0.0) / np.float32(cfg.rgb_stretch_max_reflectance), 0.0, 1.0)
    if cfg.rgb_gamma != 1.0:
        scaled = scaled ** np.float32(1.0 / cfg.rgb_gamma)
    rgb: npt.NDArray[np.uint8] = np.rint(scaled * np.float32(UINT8_MAX)).astype(np.uint8)
    rgb[~valid] = 0
    return rgb, valid


# --------------------------------------------------------------------------------------------------
# summary


def summarize_s2(
    path: str | os.PathLike[str],
    config: S2ReadConfig | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> ProductSummary:
    """Small JSON-ready summary of a Sentinel-2 scene folder or raster (``seaice inspect``).

    A folder (or a file holding all configured bands) is opened as a scene; any other raster
    (e.g. an 8-bit RGB preview) is described band by band.  DN ranges are read on a decimated
    overview (at most :data:`OVERVIEW_MAX_PX` px on the longest side), so they are approximate.

    Returns
    -------
    ProductSummary
        ``product`` "S2"; ``granule`` the scene key ``YYYYMMDDThhmmss_Txxxxx`` when the name
        parses, else the file/folder stem; times from the scene name (else None); ``extra``:
        ``crs``, ``epsg``, ``shape`` [rows, cols], ``resolution_m`` [x, y], ``bounds``
        [left, bottom, right, top] (CRS units), ``bands``, ``dtype``, ``nodata``, ``dn_min`` /
        ``dn_max`` per band (None when a band is all nodata), ``valid_fraction``,
        ``processing_baseline``, ``baseline_source``, ``files``.
    """
    cfg = config if config is not None else S2ReadConfig()
    text = os.fspath(path)
    warnings: list[str] = []
    generic = False
    scene: S2Scene
    if _isdir(text, storage_options):
        scene = open_s2_scene(text, cfg, storage_options)
    else:
        with _open_raster(text, storage_options) as ds:
            names = _band_names(ds, text)
            info = _grid_of(ds, 1)
            count = int(ds.count)
        if names is not None and all(b in names for b in cfg.bands) and info["dtype"] == S2_DN_DTYPE:
            scene = open_s2_scene(text, cfg, storage_options)
        else:
            warnings.append(f"not a {'/'.join(cfg.bands)} {S2_DN_DTYPE} scene; described band by band")
            generic = True
            if names is None:
                names = [f"band{i}" for i in range(1, count + 1)]
            scene_id = _scene_id_of(text, [])
            source: BaselineSource = "assumed"  # not DN: no radiometry, no warning
            scene = S2Scene(
                source=text,
                scene_id=scene_id,
                crs=info["crs_text"],
                transform=info["transform"],
                shape=info["shape"],
                bands=tuple(names),
                band_paths=(text,) * count,
                band_indexes=tuple(range(1, count + 1)),
                nodata=info["nodata"],
                processing_baseline=None,
                baseline_source=source,
                valid_fraction=0.0,
                dtype=info["dtype"],
                storage_options=storage_options,
            )
    overview = read_bands_overview(scene, OVERVIEW_MAX_PX)
    valid = overview != scene.nodata
    frac = float(np.all(valid, axis=0).mean())
    dn_min: dict[str, int | None] = {}
    dn_max: dict[str, int | None] = {}
    for band, values, ok in zip(scene.bands, overview, valid, strict=True):
        dn_min[band] = int(values[ok].min()) if ok.any() else None
        dn_max[band] = int(values[ok].max()) if ok.any() else None
    if frac == 0.0:
        warnings.append(f"all pixels are nodata (DN {scene.nodata})")
    if scene.baseline_source == "assumed" and not generic:
        warnings.append("processing baseline unknown: assumed < 04.00 (no reflectance offset)")
    if not scene.crs:
        warnings.append("no CRS")

    sid = scene.scene_id
    granule = sid.scene if sid is not None else PurePosixPath(text.rstrip("/").replace("\\", "/")).stem
    time_utc = f"{sid.sensing:%Y-%m-%dT%H:%M:%S}Z" if sid is not None else None
    extra: dict[str, Any] = {
        "crs": scene.crs,
        "epsg": scene.epsg,
        "shape": list(scene.shape),
        "resolution_m": list(scene.resolution_m),
        "bounds": list(scene.bounds),
        "bands": list(scene.bands),
        "dtype": scene.dtype,
        "nodata": scene.nodata,
        "dn_min": dn_min,
        "dn_max": dn_max,
        "valid_fraction": frac,
        "processing_baseline": list(scene.processing_baseline) if scene.processing_baseline else None,
        "baseline_source": scene.baseline_source,
        "files": sorted(set(scene.band_paths)),
    }
    return ProductSummary(
        path=text,
        product="S2",
        granule=granule,
        time_start_utc=time_utc,
        time_end_utc=time_utc,
        extra=extra,
        warnings=tuple(warnings),
    )


# --------------------------------------------------------------------------------------------------
# the authors' hand-labelled PNG masks


def _pack_rgb(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint32]:
    r, g, b = (rgb[..., i].astype(np.uint32) for i in range(3))
    packed: npt.NDArray[np.uint32] = (r << np.uint32(16)) | (g << np.uint32(8)) | b
    return packed


def decode_label_png(
    path: str | os.PathLike[str], storage_options: Mapping[str, Any] | None = None
) -> npt.NDArray[np.uint8]:
    """Decode one of the authors' hand-labelled class masks (RGB PNG) into our class codes.

    Colours (METHOD.md §2.1): red (255, 0, 0) -> 0 thick ice, blue (0, 0, 255) -> 1 thin ice,
    green (0, 255, 0) -> 2 open water; any other colour -> 255 unlabeled (counted, and logged
    as a warning).

    Parameters
    ----------
    path : str or os.PathLike
        Local path or fsspec URL of the PNG (any Pillow-readable image; palette/alpha are
        converted to RGB).
    storage_options : mapping, optional
        fsspec options for URLs.

    Returns
    -------
    numpy.ndarray of uint8, shape (rows, cols)

    Raises
    ------
    InputError
        The file does not exist.
    CorruptFileError
        The file is not a readable image.
    """
    from PIL import Image, UnidentifiedImageError

    text = os.fspath(path)
    if not _exists(text, storage_options):
        raise InputError(text, "no such file")
    try:
        if _is_url(text):
            fs, inner = _fs(text, storage_options)
            with fs.open(inner, "rb") as fh, Image.open(fh) as im:
                rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
        else:
            with Image.open(_local(text)) as im:
                rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise CorruptFileError(text, f"not a readable image ({exc})") from exc

    packed = _pack_rgb(rgb)
    labels = np.full(packed.shape, UNLABELED, dtype=np.uint8)
    for cls in (SeaIceClass.THICK_ICE, SeaIceClass.THIN_ICE, SeaIceClass.OPEN_WATER):
        colour = np.asarray(CLASS_COLOURS_RGB[cls], dtype=np.uint8)
        labels[packed == _pack_rgb(colour)] = int(cls)
    n_other = int(np.count_nonzero(labels == UNLABELED))
    if n_other:
        log.warning(
            "%s: %d of %d pixels (%.3f%%) have a colour other than red/blue/green -> unlabeled (%d)",
            text,
            n_other,
            labels.size,
            100.0 * n_other / labels.size,
            UNLABELED,
        )
    log.info("%s: label mask %dx%d px, counts %s", text, *labels.shape, class_counts(labels))
    return labels


def class_counts(labels: npt.ArrayLike) -> dict[int, int]:
    """Pixel count per class code present (thick 0, thin 1, water 2, unlabeled 255, others).

    Examples
    --------
    >>> class_counts(np.array([[0, 0, 2], [255, 2, 2]], dtype=np.uint8))
    {0: 2, 2: 3, 255: 1}
    """
    values, counts = np.unique(np.asarray(labels), return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts, strict=True)}
