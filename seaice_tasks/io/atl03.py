"""Reader of ATL03 (Global Geolocated Photons) granules and subsets.

Layout: METHOD.md §1.2; along-track coordinate: §3.2.  Per beam group ``gtXY``:

* ``heights/*`` photon-rate arrays (length Nph),
* ``geolocation/*`` and ``geophys_corr/*`` 20 m segment arrays (length Nseg),
* ``bckgrd_atlas/*`` 200 Hz background rows,
* granule-level ``orbit_info/sc_orient`` and ``ancillary_data/atlas_sdp_gps_epoch`` (both absent
  from Harmony/NSIDC subsets: then the :class:`~seaice_tasks.config.ReaderConfig` defaults are used
  and a warning is logged and recorded).

Photons belong to segments through ``geolocation/ph_index_beg`` (1-based index of the segment's
first photon, 0 = empty segment) and ``geolocation/segment_ph_cnt``.  Segment ids are not
contiguous across data gaps, and the photons of a segment-row range ``[start, stop)`` form one
contiguous photon slice, which is what lets :func:`read_photons` read only that slice and
:func:`iter_segment_chunks` stream a multi-GB beam with bounded memory.

``segment_dist_x`` (along-track distance of the segment start) is treated as required by both
:func:`read_segments` and :func:`read_photons`: every photon's along-track coordinate
``x_atc = segment_dist_x + dist_ph_along`` depends on it, it is present in the real subset file and
in the full ATL03 schema, and a cumulative sum of ``segment_length`` would be wrong across the
data gaps that subsets always have.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import h5py
import numpy as np
import numpy.typing as npt
import pandas as pd

from seaice_tasks.config import ReaderConfig
from seaice_tasks.constants import BEAMS, H5_FILL_THRESHOLD, ScOrient, SurfaceType, is_strong
from seaice_tasks.errors import AllFillError, CorruptFileError, GranuleNameError, MissingVariableError
from seaice_tasks.granule import GranuleId, parse_granule
from seaice_tasks.io._h5 import (
    check_product,
    fill_to_nan,
    has_path,
    open_h5,
    read_dataset,
    read_float,
    require_group,
)
from seaice_tasks.io._time import delta_time_to_utc
from seaice_tasks.io.summary import BeamSummary, ProductSummary, Strength

__all__ = [
    "PRODUCT",
    "SC_ORIENT_PATH",
    "EPOCH_PATH",
    "PHOTON_PATHS",
    "SEGMENT_REQUIRED_PATHS",
    "SEGMENT_OPTIONAL_PATHS",
    "BCKGRD_REQUIRED_PATHS",
    "BCKGRD_OPTIONAL_PATHS",
    "FPB_PATHS",
    "ATL03_PATHS_USED",
    "SIGNAL_CONF_COLUMNS",
    "ATL03BeamInfo",
    "ATL03Info",
    "PhotonBlock",
    "read_atl03_info",
    "summarize_atl03",
    "read_segments",
    "read_photons",
    "photon_slice",
    "segment_chunks",
    "iter_segment_chunks",
    "MAX_PHOTONS_PER_CHUNK",
    "read_bckgrd",
    "read_fpb_tables",
]

log = logging.getLogger(__name__)

PRODUCT: Final[str] = "ATL03"
_DEFAULT_CONFIG: Final[ReaderConfig] = ReaderConfig()
#: Default photons per chunk of a beam (``ResampleConfig.max_photons_per_chunk`` starts from it).
MAX_PHOTONS_PER_CHUNK: Final[int] = 2_000_000

#: Granule-level datasets (absent from subsets).
SC_ORIENT_PATH: Final[str] = "orbit_info/sc_orient"
EPOCH_PATH: Final[str] = "ancillary_data/atlas_sdp_gps_epoch"
#: Group whose attributes carry the original granule file name and release.
_DATASET_ID_GROUP: Final[str] = "METADATA/DatasetIdentification"
_GRANULE_NAME_ATTRS: Final[tuple[str, ...]] = (
    "fileName",
    "producerGranuleId",
    "ProducerGranuleId",
    "granule_id",
)
_RELEASE_ATTR: Final[str] = "VersionID"
#: Beam-group attributes: beam strength (v006) and spacecraft orientation (seen on the real subset).
_BEAM_TYPE_ATTR: Final[str] = "atlas_beam_type"
_SC_ORIENTATION_ATTR: Final[str] = "sc_orientation"
_SC_ORIENTATION_NAMES: Final[Mapping[str, ScOrient]] = types.MappingProxyType(
    {"backward": ScOrient.BACKWARD, "forward": ScOrient.FORWARD, "transition": ScOrient.TRANSITION}
)
_BEAM_RE: Final[re.Pattern[str]] = re.compile(r"^gt[123][lr]$")
#: Rows read at a time when looking for the first / last non-fill value of a dataset.
_EDGE_SCAN_BLOCK: Final[int] = 65_536

_HEIGHTS: Final[str] = "{beam}/heights"
_GEOLOCATION: Final[str] = "{beam}/geolocation"
_BCKGRD: Final[str] = "{beam}/bckgrd_atlas"
_FPB_GROUP: Final[str] = "ancillary_data/calibrations/first_photon_bias/{beam}"

#: PhotonBlock field -> dataset (photon rate).
PHOTON_PATHS: Final[Mapping[str, str]] = types.MappingProxyType(
    {
        "h_ph_m": "{beam}/heights/h_ph",
        "lat_deg": "{beam}/heights/lat_ph",
        "lon_deg": "{beam}/heights/lon_ph",
        "delta_time_s": "{beam}/heights/delta_time",
        "dist_ph_along_m": "{beam}/heights/dist_ph_along",
        "signal_conf": "{beam}/heights/signal_conf_ph",
        "quality_ph": "{beam}/heights/quality_ph",
        "ph_id_pulse": "{beam}/heights/ph_id_pulse",
        "pce_mframe_cnt": "{beam}/heights/pce_mframe_cnt",
    }
)
#: Segment-table column -> dataset; a missing one raises MissingVariableError.
SEGMENT_REQUIRED_PATHS: Final[Mapping[str, str]] = types.MappingProxyType(
    {
        "segment_id": "{beam}/geolocation/segment_id",
        "segment_dist_x_m": "{beam}/geolocation/segment_dist_x",
        "ph_index_beg": "{beam}/geolocation/ph_index_beg",
        "segment_ph_cnt": "{beam}/geolocation/segment_ph_cnt",
    }
)
#: Segment-table column -> dataset; a missing one becomes a NaN column and a logged warning.
SEGMENT_OPTIONAL_PATHS: Final[Mapping[str, str]] = types.MappingProxyType(
    {
        "segment_length_m": "{beam}/geolocation/segment_length",
        "reference_photon_lat": "{beam}/geolocation/reference_photon_lat",
        "reference_photon_lon": "{beam}/geolocation/reference_photon_lon",
        "solar_elevation": "{beam}/geolocation/solar_elevation",
        "solar_azimuth": "{beam}/geolocation/solar_azimuth",
        "delta_time": "{beam}/geolocation/delta_time",
        "geoid": "{beam}/geophys_corr/geoid",
        "geoid_free2mean": "{beam}/geophys_corr/geoid_free2mean",
        "dac": "{beam}/geophys_corr/dac",
        "tide_ocean": "{beam}/geophys_corr/tide_ocean",
        "tide_earth": "{beam}/geophys_corr/tide_earth",
        "tide_load": "{beam}/geophys_corr/tide_load",
        "tide_pole": "{beam}/geophys_corr/tide_pole",
        "tide_oc_pole": "{beam}/geophys_corr/tide_oc_pole",
        "tide_equilibrium": "{beam}/geophys_corr/tide_equilibrium",
        "dem_h": "{beam}/geophys_corr/dem_h",
        "dem_flag": "{beam}/geophys_corr/dem_flag",
    }
)
BCKGRD_REQUIRED_PATHS: Final[Mapping[str, str]] = types.MappingProxyType(
    {
        "delta_time": "{beam}/bckgrd_atlas/delta_time",
        "pce_mframe_cnt": "{beam}/bckgrd_atlas/pce_mframe_cnt",
        "bckgrd_counts": "{beam}/bckgrd_atlas/bckgrd_counts",
        "bckgrd_rate": "{beam}/bckgrd_atlas/bckgrd_rate",
    }
)
BCKGRD_OPTIONAL_PATHS: Final[Mapping[str, str]] = types.MappingProxyType(
    {"bckgrd_int_height": "{beam}/bckgrd_atlas/bckgrd_int_height"}
)
#: CAL-19 first-photon-bias table name -> dataset.
FPB_PATHS: Final[Mapping[str, str]] = types.MappingProxyType(
    {name: f"{_FPB_GROUP}/{name}" for name in ("ffb_corr", "width", "strength", "dead_time")}
)
#: Every dataset path this module reads (``{beam}`` placeholders), checked against the real schema.
ATL03_PATHS_USED: Final[tuple[str, ...]] = (
    SC_ORIENT_PATH,
    EPOCH_PATH,
    *PHOTON_PATHS.values(),
    *SEGMENT_REQUIRED_PATHS.values(),
    *SEGMENT_OPTIONAL_PATHS.values(),
    *BCKGRD_REQUIRED_PATHS.values(),
    *BCKGRD_OPTIONAL_PATHS.values(),
    *FPB_PATHS.values(),
)

#: ``to_pandas`` column names of the five ``signal_conf_ph`` columns, in SurfaceType order.
SIGNAL_CONF_COLUMNS: Final[tuple[str, ...]] = tuple(f"signal_conf_{s.name.lower()}" for s in SurfaceType)
_N_SURFACE_TYPES: Final[int] = len(SurfaceType)

ScOrientSource = Literal["orbit_info", "beam_attribute", "config_default"]


# ----------------------------------------------------------------------------------------------
# Pure index helpers
# ----------------------------------------------------------------------------------------------


def _nonempty(beg: npt.NDArray[np.int64], cnt: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """Segments that own photons: ``ph_index_beg`` not fill (0) and a positive count."""
    return (beg > 0) & (cnt > 0)


def _row_bounds(n_rows: int, start: int, stop: int | None) -> tuple[int, int]:
    stop = n_rows if stop is None else stop
    if not 0 <= start <= stop <= n_rows:
        raise ValueError(f"segment rows [{start}, {stop}) outside [0, {n_rows}]")
    return start, stop


def photon_slice(
    ph_index_beg: npt.ArrayLike, segment_ph_cnt: npt.ArrayLike, start: int = 0, stop: int | None = None
) -> tuple[int, int]:
    """0-based photon slice ``[p0, p1)`` holding the photons of segment rows ``[start, stop)``.

    Segments with ``ph_index_beg == 0`` (fill: no photons) are skipped, wherever they are in the
    range (start, inside or end).

    Parameters
    ----------
    ph_index_beg : array_like of int, shape (Nseg,)
        ``geolocation/ph_index_beg``: 1-based index of each segment's first photon, 0 when empty.
    segment_ph_cnt : array_like of int, shape (Nseg,)
        ``geolocation/segment_ph_cnt``: photons per segment.
    start, stop : int
        Segment-row range (row indices into the segment table, not segment ids); ``stop=None``
        means the last row.

    Returns
    -------
    tuple of int
        ``(p0, p1)`` 0-based photon indices; ``(0, 0)`` when no segment in the range has photons.

    Raises
    ------
    ValueError
        On arrays of different lengths or a row range outside the table.

    Examples
    --------
    >>> photon_slice([0, 1, 4, 0, 9, 0], [0, 3, 5, 0, 2, 0], 0, 6)
    (0, 10)
    >>> photon_slice([0, 1, 4, 0, 9, 0], [0, 3, 5, 0, 2, 0], 2, 4)
    (3, 8)
    >>> photon_slice([0, 1, 4, 0, 9, 0], [0, 3, 5, 0, 2, 0], 5, 6)
    (0, 0)
    """
    beg = np.asarray(ph_index_beg, dtype=np.int64)
    cnt = np.asarray(segment_ph_cnt, dtype=np.int64)
    if beg.shape != cnt.shape or beg.ndim != 1:
        raise ValueError(f"ph_index_beg {beg.shape} and segment_ph_cnt {cnt.shape} must be equal 1-D shapes")
    start, stop = _row_bounds(beg.size, start, stop)
    rows = np.flatnonzero(_nonempty(beg[start:stop], cnt[start:stop]))
    if rows.size == 0:
        return 0, 0
    first, last = start + int(rows[0]), start + int(rows[-1])
    return int(beg[first]) - 1, int(beg[last]) - 1 + int(cnt[last])


def segment_chunks(
    segment_ph_cnt: npt.ArrayLike,
    max_photons: int,
    ph_index_beg: npt.ArrayLike | None = None,
) -> list[tuple[int, int]]:
    """Partition segment rows into contiguous ``[start, stop)`` ranges of at most ``max_photons``.

    Greedy: each chunk takes as many following rows as fit (``cumsum`` + ``searchsorted``, one
    step per chunk); a single segment with more photons than ``max_photons`` is a chunk of its own.
    Empty segments (count 0, or ``ph_index_beg == 0`` when given) weigh nothing.

    Parameters
    ----------
    segment_ph_cnt : array_like of int, shape (Nseg,)
        Photons per segment.
    max_photons : int
        Upper bound of photons per chunk (>= 1).
    ph_index_beg : array_like of int, optional
        When given, segments whose index is fill (0) count as empty.

    Returns
    -------
    list of (int, int)
        Chunks covering ``[0, Nseg)`` without gaps or overlap; empty when Nseg is 0.

    Examples
    --------
    >>> segment_chunks([3, 4, 0, 2, 9, 1], 7)
    [(0, 3), (3, 4), (4, 5), (5, 6)]
    >>> segment_chunks([], 5)
    []
    """
    if max_photons < 1:
        raise ValueError(f"max_photons must be >= 1, got {max_photons}")
    cnt = np.clip(np.asarray(segment_ph_cnt, dtype=np.int64), 0, None)
    if ph_index_beg is not None:
        cnt = np.where(np.asarray(ph_index_beg, dtype=np.int64) > 0, cnt, 0)
    n_rows = cnt.size
    cum = np.cumsum(cnt)
    chunks: list[tuple[int, int]] = []
    start = 0
    while start < n_rows:
        base = int(cum[start - 1]) if start else 0
        stop = max(int(np.searchsorted(cum, base + max_photons, side="right")), start + 1)
        chunks.append((start, stop))
        start = stop
    return chunks


# ----------------------------------------------------------------------------------------------
# Data classes
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ATL03BeamInfo:
    """Counts and time range of one ATL03 beam group (no photon data read).

    Attributes
    ----------
    beam : str
        ``gt1l`` ... ``gt3r``.
    strength : {"strong", "weak", "unknown"}
        From the group's ``atlas_beam_type`` attribute, else from ``sc_orient``.
    n_photons : int
        Length of ``heights/h_ph`` (0 without a ``heights`` group).
    n_segments : int
        Length of ``geolocation/segment_id`` (0 without a ``geolocation`` group).
    time_start_utc, time_end_utc : datetime.datetime or None
        First / last non-fill photon time (UTC, timezone-aware); None without valid times.
    all_fill : bool
        ``heights/h_ph`` holds photons but only fill values: the beam is unusable (the other
        beams of the granule are not).
    """

    beam: str
    strength: Strength
    n_photons: int
    n_segments: int
    time_start_utc: dt.datetime | None
    time_end_utc: dt.datetime | None
    all_fill: bool = False


@dataclass(frozen=True)
class ATL03Info:
    """Granule-level facts of an ATL03 file, read from metadata and dataset shapes only.

    Attributes
    ----------
    path : str
        The file as given.
    granule : GranuleId or None
        From the file name, else from ``METADATA/DatasetIdentification`` attributes.
    sc_orient : int
        Spacecraft orientation (0 backward, 1 forward, 2 transition).
    sc_orient_source : {"orbit_info", "beam_attribute", "config_default"}
        Where ``sc_orient`` came from.
    atlas_sdp_gps_epoch_s : float
        GPS seconds of the ATLAS SDP epoch (file value or config default).
    release : int or None
        Product release (e.g. 6).
    beams : tuple of ATL03BeamInfo
        Beam groups that have ``heights`` or ``geolocation``, in ATLAS order.
    time_start_utc, time_end_utc : datetime.datetime or None
        Photon time range over all beams (UTC).
    warnings : tuple of str
        Fallbacks used (missing ``orbit_info``, ``ancillary_data``...), also logged.
    """

    path: str
    granule: GranuleId | None
    sc_orient: int
    sc_orient_source: ScOrientSource
    atlas_sdp_gps_epoch_s: float
    release: int | None
    beams: tuple[ATL03BeamInfo, ...]
    time_start_utc: dt.datetime | None
    time_end_utc: dt.datetime | None
    warnings: tuple[str, ...] = ()

    @property
    def beam_names(self) -> tuple[str, ...]:
        """Names of the beams present."""
        return tuple(b.beam for b in self.beams)

    def beam(self, name: str) -> ATL03BeamInfo:
        """Info of one beam; ``KeyError`` when absent."""
        for b in self.beams:
            if b.beam == name:
                return b
        raise KeyError(f"{name} not in {self.beam_names}")


@dataclass(frozen=True, eq=False)
class PhotonBlock:
    """Photons of a contiguous range of geolocation segments of one beam.

    All arrays have length N (``signal_conf`` is (N, 5)); photon order is file order.

    Attributes
    ----------
    beam : str
        Beam group.
    seg_start, seg_stop : int
        Segment-table row range ``[seg_start, seg_stop)`` the photons belong to.
    ph_start : int
        0-based index in the beam's photon arrays of the first photon of the block.
    h_ph_m : ndarray of float32
        Photon height above the WGS84 ellipsoid (m); fill -> NaN.
    lat_deg, lon_deg : ndarray of float64
        Photon latitude / longitude (degrees).
    delta_time_s : ndarray of float64
        Seconds since the ATLAS SDP epoch (GPS time base).
    time_utc : ndarray of datetime64[ns]
        UTC time (leap seconds removed).
    dist_ph_along_m : ndarray of float32
        Along-track offset within the photon's 20 m segment (m).
    x_atc_m : ndarray of float64
        Along-track distance from the equator crossing (m) = ``segment_dist_x + dist_ph_along``.
    signal_conf : ndarray of int8, shape (N, 5)
        ``signal_conf_ph``; columns land, ocean, sea ice, land ice, inland water.
    quality_ph : ndarray of int8
        0 nominal, 1 possible afterpulse, 2 possible impulse response effect, 3 possible TEP.
    ph_id_pulse : ndarray of uint8
        Laser pulse number within its major frame (1..200).
    pce_mframe_cnt : ndarray of uint32
        Major-frame counter.
    segment_row : ndarray of int64
        Row of the photon's segment in the segment table (:func:`read_segments`).
    segment_id : ndarray of int64
        The photon's 20 m segment id.
    """

    beam: str
    seg_start: int
    seg_stop: int
    ph_start: int
    h_ph_m: npt.NDArray[np.float32]
    lat_deg: npt.NDArray[np.float64]
    lon_deg: npt.NDArray[np.float64]
    delta_time_s: npt.NDArray[np.float64]
    time_utc: npt.NDArray[np.datetime64]
    dist_ph_along_m: npt.NDArray[np.float32]
    x_atc_m: npt.NDArray[np.float64]
    signal_conf: npt.NDArray[np.int8]
    quality_ph: npt.NDArray[np.int8]
    ph_id_pulse: npt.NDArray[np.uint8]
    pce_mframe_cnt: npt.NDArray[np.uint32]
    segment_row: npt.NDArray[np.int64]
    segment_id: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.h_ph_m.shape[0])

    def to_pandas(self) -> pd.DataFrame:
        """One row per photon; ``signal_conf`` split into ``signal_conf_land`` ... ``_inland_water``."""
        columns: dict[str, Any] = {
            "h_ph_m": self.h_ph_m,
            "lat_deg": self.lat_deg,
            "lon_deg": self.lon_deg,
            "delta_time_s": self.delta_time_s,
            "time_utc": self.time_utc,
            "dist_ph_along_m": self.dist_ph_along_m,
            "x_atc_m": self.x_atc_m,
        }
        for k, name in enumerate(SIGNAL_CONF_COLUMNS):
            columns[name] = self.signal_conf[:, k]
        columns.update(
            quality_ph=self.quality_ph,
            ph_id_pulse=self.ph_id_pulse,
            pce_mframe_cnt=self.pce_mframe_cnt,
            segment_row=self.segment_row,
            segment_id=self.segment_id,
        )
        return pd.DataFrame(columns)


# ----------------------------------------------------------------------------------------------
# Internal file helpers
# ----------------------------------------------------------------------------------------------


def _fmt(template: str, beam: str) -> str:
    return template.format(beam=beam)


def _attr_text(obj: Any, key: str) -> str | None:
    """An attribute as stripped text (bytes decoded; first item of an array), else None."""
    if key not in obj.attrs:
        return None
    value = obj.attrs[key]
    if isinstance(value, np.ndarray):
        if value.size == 0:
            return None
        value = value.ravel()[0]
    if isinstance(value, bytes | np.bytes_):
        value = bytes(value).decode("utf-8", "replace")
    text = str(value).strip()
    return text or None


def _n_rows(f: h5py.File, path: str) -> int:
    """First-dimension length of a dataset (no data read); 0 when absent."""
    if not has_path(f, path):
        return 0
    obj = f[path]
    if not isinstance(obj, h5py.Dataset) or obj.ndim == 0:
        return 0
    return int(obj.shape[0])


def _require_rows(f: h5py.File, path: str) -> int:
    if not has_path(f, path) or not isinstance(f[path], h5py.Dataset):
        raise MissingVariableError(f.filename, f"dataset {path} missing")
    return _n_rows(f, path)


def _read_int64(f: h5py.File, path: str, sel: slice = slice(None)) -> npt.NDArray[np.int64]:
    return read_dataset(f, path, sel).astype(np.int64, copy=False)


def _first_last_valid(f: h5py.File, path: str) -> tuple[float, float] | None:
    """First and last non-fill values of a 1-D float dataset, reading blocks from both ends."""
    n_rows = _n_rows(f, path)
    first: float | None = None
    for lo in range(0, n_rows, _EDGE_SCAN_BLOCK):
        values = fill_to_nan(read_dataset(f, path, slice(lo, lo + _EDGE_SCAN_BLOCK)))
        ok = np.flatnonzero(np.isfinite(values))
        if ok.size:
            first = float(values[ok[0]])
            break
    if first is None:
        return None
    for hi in range(n_rows, 0, -_EDGE_SCAN_BLOCK):
        values = fill_to_nan(read_dataset(f, path, slice(max(hi - _EDGE_SCAN_BLOCK, 0), hi)))
        ok = np.flatnonzero(np.isfinite(values))
        if ok.size:
            return first, float(values[ok[-1]])
    return first, first  # unreachable in practice: the forward scan found a value


def _all_fill(f: h5py.File, beam: str) -> bool:
    path = _fmt(PHOTON_PATHS["h_ph_m"], beam)
    return bool(_n_rows(f, path)) and _first_last_valid(f, path) is None


def _beams_present(f: h5py.File) -> tuple[str, ...]:
    names = [k for k in f if _BEAM_RE.match(k) and isinstance(f[k], h5py.Group)]
    found = [k for k in names if has_path(f, f"{k}/heights") or has_path(f, f"{k}/geolocation")]
    order = {b: i for i, b in enumerate(BEAMS)}
    return tuple(sorted(found, key=order.__getitem__))


def _epoch(f: h5py.File, config: ReaderConfig) -> tuple[float, str | None]:
    """ATLAS SDP epoch (GPS s) and, when the config default is used, the reason."""
    if has_path(f, EPOCH_PATH):
        values = fill_to_nan(read_dataset(f, EPOCH_PATH)).ravel()
        if values.size and np.isfinite(values[0]):
            return float(values[0]), None
    reason = (
        f"{f.filename}: {EPOCH_PATH} missing or fill; using the configured "
        f"atlas_sdp_gps_epoch_s={config.atlas_sdp_gps_epoch_s}"
    )
    return float(config.atlas_sdp_gps_epoch_s), reason


def _sc_orient(
    f: h5py.File, beams: tuple[str, ...], config: ReaderConfig
) -> tuple[int, ScOrientSource, list[str]]:
    """Spacecraft orientation: orbit_info, else a beam group's ``sc_orientation``, else the config."""
    if has_path(f, SC_ORIENT_PATH):
        values = read_dataset(f, SC_ORIENT_PATH).ravel()
        if values.size and int(values[0]) in tuple(ScOrient):
            return int(values[0]), "orbit_info", []
    notes = [f"{f.filename}: {SC_ORIENT_PATH} missing"]
    for beam in beams:
        text = _attr_text(f[beam], _SC_ORIENTATION_ATTR)
        if text is not None and text.lower() in _SC_ORIENTATION_NAMES:
            orient = _SC_ORIENTATION_NAMES[text.lower()]
            notes[0] += f"; using {beam} attribute {_SC_ORIENTATION_ATTR}={text!r} (sc_orient={int(orient)})"
            return int(orient), "beam_attribute", notes
    notes[0] += f"; using the configured default_sc_orient={config.default_sc_orient}"
    return int(config.default_sc_orient), "config_default", notes


def _strength(f: h5py.File, beam: str, sc_orient: int) -> Strength:
    text = _attr_text(f[beam], _BEAM_TYPE_ATTR)
    if text is not None and text.lower() == "strong":
        return "strong"
    if text is not None and text.lower() == "weak":
        return "weak"
    strong = is_strong(beam, sc_orient)
    if strong is None:
        return "unknown"
    return "strong" if strong else "weak"


def _granule(f: h5py.File, path: str) -> GranuleId | None:
    candidates = [os.path.basename(path)]
    if has_path(f, _DATASET_ID_GROUP):
        group = f[_DATASET_ID_GROUP]
        candidates += [t for key in _GRANULE_NAME_ATTRS if (t := _attr_text(group, key)) is not None]
    for name in candidates:
        try:
            return parse_granule(name)
        except GranuleNameError:
            continue
    return None


def _release(f: h5py.File, granule: GranuleId | None) -> int | None:
    if granule is not None:
        return granule.release
    if has_path(f, _DATASET_ID_GROUP):
        text = _attr_text(f[_DATASET_ID_GROUP], _RELEASE_ATTR)
        if text is not None and text.isdigit():
            return int(text)
    return None


def _to_datetime(delta_time_s: float, epoch_s: float) -> dt.datetime:
    utc_us = delta_time_to_utc([delta_time_s], epoch_s).astype("datetime64[us]")[0]
    naive: dt.datetime = utc_us.item()
    return naive.replace(tzinfo=dt.UTC)


def _open_beam(f: h5py.File, beam: str, *groups: str) -> None:
    """Check the product and the beam's groups (MissingBeamError / MissingVariableError)."""
    check_product(f, PRODUCT)
    for template in groups:
        require_group(f, _fmt(template, beam), beam=beam)


# ----------------------------------------------------------------------------------------------
# Public readers
# ----------------------------------------------------------------------------------------------


def read_atl03_info(
    path: str | os.PathLike[str],
    config: ReaderConfig = _DEFAULT_CONFIG,
    storage_options: dict[str, Any] | None = None,
) -> ATL03Info:
    """Read granule facts: orientation, epoch, beams, counts and time range (no bulk reads).

    Parameters
    ----------
    path : str or os.PathLike
        Local ATL03 file or fsspec URL.
    config : ReaderConfig
        Fallbacks for ``orbit_info/sc_orient`` and ``ancillary_data/atlas_sdp_gps_epoch``.
    storage_options : dict, optional
        fsspec options for remote URLs.

    Returns
    -------
    ATL03Info

    Raises
    ------
    CorruptFileError, WrongProductError
        Unreadable file or not ATL03.
    AllFillError
        When every beam with photons holds only fill values in ``h_ph`` (a single all-fill
        beam among usable ones is flagged in its :class:`ATL03BeamInfo` and in the warnings).
    """
    text = os.fspath(path)
    with open_h5(text, storage_options) as f:
        check_product(f, PRODUCT)
        beams = _beams_present(f)
        sc_orient, source, notes = _sc_orient(f, beams, config)
        epoch, epoch_note = _epoch(f, config)
        if epoch_note is not None:
            notes.append(epoch_note)
        for note in notes:
            log.warning(note)
        infos: list[ATL03BeamInfo] = []
        for beam in beams:
            all_fill = _all_fill(f, beam)
            if all_fill:
                notes.append(f"{text}: {_fmt(PHOTON_PATHS['h_ph_m'], beam)} holds only fill values")
            edges = _first_last_valid(f, _fmt(PHOTON_PATHS["delta_time_s"], beam))
            t0, t1 = (
                (None, None)
                if edges is None
                else (_to_datetime(min(edges), epoch), _to_datetime(max(edges), epoch))
            )
            infos.append(
                ATL03BeamInfo(
                    beam=beam,
                    strength=_strength(f, beam, sc_orient),
                    n_photons=_n_rows(f, _fmt(PHOTON_PATHS["h_ph_m"], beam)),
                    n_segments=_n_rows(f, _fmt(SEGMENT_REQUIRED_PATHS["segment_id"], beam)),
                    time_start_utc=t0,
                    time_end_utc=t1,
                    all_fill=all_fill,
                )
            )
        filled = [b for b in infos if b.all_fill]
        if filled and len(filled) == sum(1 for b in infos if b.n_photons):
            raise AllFillError(text, f"{_fmt(PHOTON_PATHS['h_ph_m'], filled[0].beam)} holds only fill values"
                               + (f" (and in {[b.beam for b in filled[1:]]})" if len(filled) > 1 else ""))
        granule = _granule(f, text)
        release = _release(f, granule)
    starts = [b.time_start_utc for b in infos if b.time_start_utc is not None]
    ends = [b.time_end_utc for b in infos if b.time_end_utc is not None]
    return ATL03Info(
        path=text,
        granule=granule,
        sc_orient=sc_orient,
        sc_orient_source=source,
        atlas_sdp_gps_epoch_s=epoch,
        release=release,
        beams=tuple(infos),
        time_start_utc=min(starts) if starts else None,
        time_end_utc=max(ends) if ends else None,
        warnings=tuple(notes),
    )


def _iso_z(value: dt.datetime | None) -> str | None:
    """ISO-8601 UTC with microseconds and ``Z``, as the other products' summaries."""
    return None if value is None else f"{value.astimezone(dt.UTC):%Y-%m-%dT%H:%M:%S.%f}Z"


def summarize_atl03(
    path: str | os.PathLike[str],
    config: ReaderConfig = _DEFAULT_CONFIG,
    storage_options: dict[str, Any] | None = None,
) -> ProductSummary:
    """:class:`ProductSummary` of an ATL03 file (what ``seaice inspect`` prints).

    ``extra`` holds ``sc_orient``, ``sc_orient_source``, ``atlas_sdp_gps_epoch_s`` and ``release``.
    """
    info = read_atl03_info(path, config, storage_options)
    return ProductSummary(
        path=info.path,
        product=PRODUCT,
        granule=info.granule.granule if info.granule is not None else None,
        time_start_utc=_iso_z(info.time_start_utc),
        time_end_utc=_iso_z(info.time_end_utc),
        beams=tuple(BeamSummary(b.beam, b.strength, b.n_photons, b.n_segments) for b in info.beams),
        extra={
            "sc_orient": info.sc_orient,
            "sc_orient_source": info.sc_orient_source,
            "atlas_sdp_gps_epoch_s": info.atlas_sdp_gps_epoch_s,
            "release": info.release,
        },
        warnings=info.warnings,
    )


def read_segments(
    path: str | os.PathLike[str],
    beam: str,
    seg_start: int = 0,
    seg_stop: int | None = None,
    *,
    storage_options: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """The 20 m geolocation-segment table of one beam (rows ``[seg_start, seg_stop)``).

    Columns: ``segment_id`` (int64), ``segment_dist_x_m`` (m from the equator crossing to the
    segment start, float64), ``ph_index_beg`` (int64, 1-based, 0 = empty segment, as in the file),
    ``segment_ph_cnt`` (int64), then float64 with fill as NaN: ``segment_length_m`` (m),
    ``reference_photon_lat`` / ``_lon`` (deg), ``solar_elevation`` / ``solar_azimuth`` (deg),
    ``delta_time`` (s since the ATLAS SDP epoch), ``geoid``, ``geoid_free2mean``, ``dac``,
    ``tide_ocean``, ``tide_earth``, ``tide_load``, ``tide_pole``, ``tide_oc_pole``,
    ``tide_equilibrium``, ``dem_h`` (all m) and ``dem_flag`` (code 0-4 as float, fill 127 -> NaN).

    Raises
    ------
    MissingVariableError
        When ``segment_id``, ``segment_dist_x``, ``ph_index_beg`` or ``segment_ph_cnt`` is absent
        (a missing optional column is a NaN column and a logged warning).
    CorruptFileError, WrongProductError, MissingBeamError
        As for every reader here.
    """
    text = os.fspath(path)
    with open_h5(text, storage_options) as f:
        _open_beam(f, beam, _GEOLOCATION)
        n_seg = _require_rows(f, _fmt(SEGMENT_REQUIRED_PATHS["segment_id"], beam))
        seg_start, seg_stop = _row_bounds(n_seg, seg_start, seg_stop)
        sel = slice(seg_start, seg_stop)
        columns: dict[str, Any] = {}
        for name, template in SEGMENT_REQUIRED_PATHS.items():
            p = _fmt(template, beam)
            columns[name] = read_float(f, p, sel) if name == "segment_dist_x_m" else _read_int64(f, p, sel)
        for name, template in SEGMENT_OPTIONAL_PATHS.items():
            p = _fmt(template, beam)
            if has_path(f, p):
                columns[name] = read_float(f, p, sel)
            else:
                log.warning("%s: optional dataset %s missing; column %s is NaN", text, p, name)
                columns[name] = np.full(seg_stop - seg_start, np.nan)
    order = ["segment_id", "segment_dist_x_m", "segment_length_m", "ph_index_beg", "segment_ph_cnt"]
    order += [c for c in columns if c not in order]
    return pd.DataFrame({c: columns[c] for c in order})


def read_photons(
    path: str | os.PathLike[str],
    beam: str,
    seg_start: int = 0,
    seg_stop: int | None = None,
    *,
    config: ReaderConfig = _DEFAULT_CONFIG,
    storage_options: dict[str, Any] | None = None,
) -> PhotonBlock:
    """Photons of segment rows ``[seg_start, seg_stop)``, reading only their photon slice.

    The slice comes from :func:`photon_slice`; each photon's segment row is
    ``np.repeat(rows, segment_ph_cnt)`` (empty segments repeat 0 times), and
    ``x_atc = segment_dist_x[row] + dist_ph_along`` (METHOD.md §3.2).

    Parameters
    ----------
    path : str or os.PathLike
        Local ATL03 file or fsspec URL.
    beam : str
        Beam group, e.g. ``"gt1r"``.
    seg_start, seg_stop : int
        Segment-table row range (not segment ids); ``seg_stop=None`` = to the end.
    config : ReaderConfig
        Supplies the epoch when ``ancillary_data/atlas_sdp_gps_epoch`` is absent.
    storage_options : dict, optional
        fsspec options for remote URLs.

    Returns
    -------
    PhotonBlock

    Raises
    ------
    CorruptFileError
        Unreadable file, or ``ph_index_beg`` / ``segment_ph_cnt`` inconsistent with the photons.
    WrongProductError, MissingBeamError, MissingVariableError
        Not ATL03, no such beam, a needed dataset absent.
    AllFillError
        The photon slice's ``h_ph`` is all fill.
    ValueError
        Row range outside the segment table.
    """
    text = os.fspath(path)
    with open_h5(text, storage_options) as f:
        _open_beam(f, beam, _HEIGHTS, _GEOLOCATION)
        seg_paths = {k: _fmt(v, beam) for k, v in SEGMENT_REQUIRED_PATHS.items()}
        n_seg = _require_rows(f, seg_paths["segment_id"])
        seg_start, seg_stop = _row_bounds(n_seg, seg_start, seg_stop)
        sel = slice(seg_start, seg_stop)
        beg = _read_int64(f, seg_paths["ph_index_beg"], sel)
        cnt = _read_int64(f, seg_paths["segment_ph_cnt"], sel)
        seg_id = _read_int64(f, seg_paths["segment_id"], sel)
        seg_x = read_float(f, seg_paths["segment_dist_x_m"], sel)
        if beg.shape != cnt.shape or beg.shape != seg_id.shape or beg.shape != seg_x.shape:
            raise CorruptFileError(text, f"{beam}/geolocation arrays have different lengths")
        p0, p1 = photon_slice(beg, cnt)
        per_segment = np.where(_nonempty(beg, cnt), cnt, 0)
        n_ph_file = _require_rows(f, _fmt(PHOTON_PATHS["h_ph_m"], beam))
        if int(per_segment.sum()) != p1 - p0 or p1 > n_ph_file:
            raise CorruptFileError(
                text,
                f"{beam}: segments [{seg_start}, {seg_stop}) claim {int(per_segment.sum())} photons in "
                f"slice [{p0}, {p1}) of {n_ph_file}; ph_index_beg/segment_ph_cnt are inconsistent",
            )
        ph = slice(p0, p1)
        paths = {k: _fmt(v, beam) for k, v in PHOTON_PATHS.items()}
        h_raw = read_dataset(f, paths["h_ph_m"], ph)
        h_ph = np.where(np.abs(h_raw) > H5_FILL_THRESHOLD, np.nan, h_raw).astype(np.float32)
        if h_ph.size and np.isnan(h_ph).all():
            raise AllFillError(text, f"{paths['h_ph_m']} holds only fill values in photons [{p0}, {p1})")
        delta_time = read_float(f, paths["delta_time_s"], ph)
        dist_raw = read_dataset(f, paths["dist_ph_along_m"], ph)
        dist_along = np.where(np.abs(dist_raw) > H5_FILL_THRESHOLD, np.nan, dist_raw).astype(np.float32)
        signal_conf = read_dataset(f, paths["signal_conf"], ph).astype(np.int8, copy=False)
        if signal_conf.shape[1:] != (_N_SURFACE_TYPES,):
            raise CorruptFileError(
                text, f"{paths['signal_conf']} has shape {signal_conf.shape}, expected (N, 5)"
            )
        epoch, epoch_note = _epoch(f, config)
        if epoch_note is not None:
            log.info(epoch_note)
        block = PhotonBlock(
            beam=beam,
            seg_start=seg_start,
            seg_stop=seg_stop,
            ph_start=p0,
            h_ph_m=h_ph,
            lat_deg=read_float(f, paths["lat_deg"], ph),
            lon_deg=read_float(f, paths["lon_deg"], ph),
            delta_time_s=delta_time,
            time_utc=delta_time_to_utc(delta_time, epoch),
            dist_ph_along_m=dist_along,
            x_atc_m=np.repeat(seg_x, per_segment) + dist_along.astype(np.float64),
            signal_conf=signal_conf,
            quality_ph=read_dataset(f, paths["quality_ph"], ph).astype(np.int8, copy=False),
            ph_id_pulse=read_dataset(f, paths["ph_id_pulse"], ph).astype(np.uint8, copy=False),
            pce_mframe_cnt=read_dataset(f, paths["pce_mframe_cnt"], ph).astype(np.uint32, copy=False),
            segment_row=np.repeat(np.arange(seg_start, seg_stop, dtype=np.int64), per_segment),
            segment_id=np.repeat(seg_id, per_segment),
        )
    log.debug("%s %s: segments [%d, %d) -> %d photons", text, beam, seg_start, seg_stop, len(block))
    return block


def iter_segment_chunks(
    path: str | os.PathLike[str],
    beam: str,
    max_photons: int = MAX_PHOTONS_PER_CHUNK,
    *,
    storage_options: dict[str, Any] | None = None,
) -> list[tuple[int, int]]:
    """Segment-row ranges of a beam each holding at most ``max_photons`` photons.

    Reads only ``geolocation/ph_index_beg`` and ``segment_ph_cnt``; pass each ``(start, stop)``
    to :func:`read_photons` / :func:`read_segments` to stream a beam with bounded memory.  A single
    segment with more photons than ``max_photons`` is its own chunk.  See :func:`segment_chunks`.
    """
    text = os.fspath(path)
    with open_h5(text, storage_options) as f:
        _open_beam(f, beam, _GEOLOCATION)
        beg = _read_int64(f, _fmt(SEGMENT_REQUIRED_PATHS["ph_index_beg"], beam))
        cnt = _read_int64(f, _fmt(SEGMENT_REQUIRED_PATHS["segment_ph_cnt"], beam))
    if beg.shape != cnt.shape:
        raise CorruptFileError(text, f"{beam}: ph_index_beg and segment_ph_cnt lengths differ")
    return segment_chunks(cnt, max_photons, beg)


def read_bckgrd(
    path: str | os.PathLike[str],
    beam: str,
    *,
    storage_options: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """The 200 Hz ``bckgrd_atlas`` table (one row per 50 shots) of one beam.

    Columns: ``delta_time`` (s since the ATLAS SDP epoch), ``pce_mframe_cnt`` (int64),
    ``bckgrd_counts`` (int64, photons in the 50-shot window), ``bckgrd_rate`` (counts/s, float64)
    and ``bckgrd_int_height`` (m, float64; NaN column with a warning when absent).

    Raises
    ------
    MissingVariableError
        No ``bckgrd_atlas`` group or a required dataset absent.
    """
    text = os.fspath(path)
    with open_h5(text, storage_options) as f:
        _open_beam(f, beam, _BCKGRD)
        columns: dict[str, Any] = {}
        for name, template in BCKGRD_REQUIRED_PATHS.items():
            p = _fmt(template, beam)
            is_int = name in ("pce_mframe_cnt", "bckgrd_counts")
            columns[name] = _read_int64(f, p) if is_int else read_float(f, p)
        n_rows = len(columns["delta_time"])
        for name, template in BCKGRD_OPTIONAL_PATHS.items():
            p = _fmt(template, beam)
            if has_path(f, p):
                columns[name] = read_float(f, p)
            else:
                log.warning("%s: optional dataset %s missing; column %s is NaN", text, p, name)
                columns[name] = np.full(n_rows, np.nan)
    if any(len(v) != n_rows for v in columns.values()):
        raise CorruptFileError(text, f"{beam}/bckgrd_atlas arrays have different lengths")
    return pd.DataFrame(columns)


def read_fpb_tables(
    path: str | os.PathLike[str],
    beam: str,
    *,
    storage_options: dict[str, Any] | None = None,
) -> dict[str, npt.NDArray[Any]] | None:
    """CAL-19 first-photon-bias tables of one beam, or None when the calibrations are absent.

    Returns
    -------
    dict or None
        ``ffb_corr`` (ps), ``width``, ``strength``, ``dead_time`` arrays as stored (axis order is
        the file's; see METHOD.md §3.5); None when
        ``ancillary_data/calibrations/first_photon_bias/<beam>`` is absent (subset files).

    Raises
    ------
    MissingBeamError
        The beam group itself is absent.
    MissingVariableError
        The calibration group exists but lacks one of the four tables.
    """
    text = os.fspath(path)
    with open_h5(text, storage_options) as f:
        check_product(f, PRODUCT)
        require_group(f, beam, beam=beam)
        group = _fmt(_FPB_GROUP, beam)
        if not has_path(f, group):
            log.info("%s: %s absent; no first-photon-bias tables", text, group)
            return None
        return {name: read_dataset(f, _fmt(template, beam)) for name, template in FPB_PATHS.items()}
