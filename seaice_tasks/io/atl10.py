"""Reader of ICESat-2 ATL10 (sea-ice freeboard) granules, current and legacy layouts.

Three tables per beam (METHOD.md §1.3, §11):

* freeboard segments (one per ATL07 sea-ice segment with a freeboard):
  :func:`read_atl10_freeboard`;
* leads used for the sea-surface reference: :func:`read_atl10_leads`;
* ~10 km reference-surface sections: :func:`read_atl10_reference_surface`.

Layouts
-------
release 005 and later (checked against ``icepyx_is2variables.json``, key ``ATL10``)
    ``gtx/freeboard_segment/{beam_fb_*, latitude, ..., heights/*, geophysical/*}``,
    ``gtx/leads/*``, ``gtx/reference_surface_section/*``.
release 004 and earlier (LEGACY: not in the variable list; paths from METHOD.md §1.3, Koo's
``get_ATL10.py`` and other public readers; tested only on a synthetic fixture)
    ``gtx/freeboard_beam_segment/beam_freeboard/*`` (``beam_fb_sigma`` = today's ``beam_fb_unc``),
    ``gtx/freeboard_beam_segment/height_segments/*``, ``gtx/freeboard_beam_segment/geophysical/*``,
    reference-surface sections directly in ``gtx/freeboard_beam_segment/``, ``gtx/leads/*``.

Both layouts give the same column names (today's leaf names).  Indices (``beam_refsurf_ndx``,
``ssh_ndx``, ``beam_lead_ndx``) are returned as stored: 1-based, as in the product.

Examples
--------
>>> ATL10_PATHS_USED[0]
'{beam}/freeboard_segment/delta_time'
>>> ATL10_LEGACY_PATHS_USED[0]
'{beam}/freeboard_beam_segment/beam_freeboard/delta_time'
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any, Final, Literal

import h5py
import numpy as np
import pandas as pd

from seaice_tasks.config import ReaderConfig
from seaice_tasks.constants import BEAMS, Beam
from seaice_tasks.errors import MissingBeamError
from seaice_tasks.io._h5 import check_product, has_path, open_h5
from seaice_tasks.io._seaice_products import ORBIT_PATHS, Var, beam_summary, read_table
from seaice_tasks.io.summary import ProductSummary

__all__ = [
    "PRODUCT",
    "Layout",
    "FREEBOARD_VARIABLES",
    "LEADS_VARIABLES",
    "REFSURF_VARIABLES",
    "LEGACY_FREEBOARD_VARIABLES",
    "LEGACY_LEADS_VARIABLES",
    "LEGACY_REFSURF_VARIABLES",
    "ATL10_PATHS_USED",
    "ATL10_LEGACY_PATHS_USED",
    "atl10_layout",
    "read_atl10_freeboard",
    "read_atl10_leads",
    "read_atl10_reference_surface",
    "summarize_atl10",
]

log = logging.getLogger(__name__)

PRODUCT: Final[str] = "ATL10"
#: ``"current"`` = release 005+ groups, ``"legacy"`` = release 004 and earlier.
Layout = Literal["current", "legacy"]

_I1: Final = np.dtype(np.int8)
_I4: Final = np.dtype(np.int32)
_F4: Final = np.dtype(np.float32)
_F8: Final = np.dtype(np.float64)

# Current (r005+) groups below the beam.
_FB: Final[str] = "freeboard_segment"
_FBH: Final[str] = f"{_FB}/heights"
_FBG: Final[str] = f"{_FB}/geophysical"
_LEADS: Final[str] = "leads"
_RS: Final[str] = "reference_surface_section"
# Legacy (<= r004) groups below the beam.
_LFB_ROOT: Final[str] = "freeboard_beam_segment"
_LFB: Final[str] = f"{_LFB_ROOT}/beam_freeboard"
_LFBH: Final[str] = f"{_LFB_ROOT}/height_segments"
_LFBG: Final[str] = f"{_LFB_ROOT}/geophysical"

# (column, current group, legacy group, legacy leaf when renamed, dtype, required); units:
# s, degrees, m.
_FREEBOARD_SPEC: Final[tuple[tuple[str, str, str, str | None, np.dtype[Any], bool], ...]] = (
    ("delta_time", _FB, _LFB, None, _F8, True),  # s since the ATLAS SDP epoch (GPS)
    ("latitude", _FB, _LFB, None, _F8, True),  # degrees north
    ("longitude", _FB, _LFB, None, _F8, True),  # degrees east
    ("seg_dist_x", _FB, _LFB, None, _F8, True),  # m along track
    ("height_segment_id", _FB, _LFB, None, _I4, False),
    ("geoseg_beg", _FB, _LFB, None, _I4, False),
    ("geoseg_end", _FB, _LFB, None, _I4, False),
    ("beam_fb_height", _FB, _LFB, None, _F4, True),  # m, freeboard
    ("beam_fb_unc", _FB, _LFB, "beam_fb_sigma", _F4, False),  # m, freeboard uncertainty
    ("beam_fb_confidence", _FB, _LFB, None, _F4, False),
    ("beam_fb_quality_flag", _FB, _LFB, None, _I1, False),
    ("beam_refsurf_ndx", _FB, _LFB, None, _I4, False),  # 1-based reference-surface section
    ("height_segment_height", _FBH, _LFBH, None, _F4, False),  # m above MSS (ATL07)
    ("height_segment_type", _FBH, _LFBH, None, _I1, False),  # ATL07SurfaceType
    ("height_segment_ssh_flag", _FBH, _LFBH, None, _I1, False),
    ("height_segment_length_seg", _FBH, _LFBH, None, _F4, False),  # m
    ("height_segment_confidence", _FBH, _LFBH, None, _F4, False),
    ("height_segment_w_gaussian", _FBH, _LFBH, None, _F4, False),  # m
    ("height_segment_sigma", _FBH, _LFBH, None, _F4, False),  # m
    ("photon_rate", _FBH, _LFBH, None, _F4, False),  # photons per shot
    ("height_segment_mss", _FBG, _LFBG, None, _F4, False),  # m
    ("height_segment_ocean", _FBG, _LFBG, None, _F4, False),  # m
    ("height_segment_lpe", _FBG, _LFBG, None, _F4, False),  # m
    ("height_segment_ib", _FBG, _LFBG, None, _F4, False),  # m
    ("height_segment_dac", _FBG, _LFBG, None, _F4, False),  # m
    ("height_segment_geoid", _FBG, _LFBG, None, _F4, False),  # m
)

_LEADS_SPEC: Final[tuple[tuple[str, np.dtype[Any], bool], ...]] = (
    ("delta_time", _F8, True),  # s
    ("latitude", _F8, True),  # degrees north
    ("longitude", _F8, True),  # degrees east
    ("lead_dist_x", _F8, False),  # m along track
    ("lead_height", _F4, True),  # m, lead sea-surface height
    ("lead_length", _F4, False),  # m
    ("lead_sigma", _F4, False),  # m
    ("ssh_n", _I4, False),  # ATL07 segments in the lead
    ("ssh_ndx", _I4, False),  # 1-based first freeboard segment of the lead
)

_REFSURF_SPEC: Final[tuple[tuple[str, np.dtype[Any], bool], ...]] = (
    ("delta_time", _F8, False),  # s
    ("latitude", _F8, True),  # degrees north
    ("longitude", _F8, True),  # degrees east
    ("beam_refsurf_dist_x", _F8, False),  # m along track (legacy: UNCERTAIN whether present)
    ("beam_refsurf_height", _F4, True),  # m, reference sea-surface height
    ("beam_refsurf_sigma", _F4, False),  # m
    ("beam_lead_n", _I4, False),  # leads in the section
    ("beam_lead_ndx", _I4, False),  # 1-based first lead of the section
)

#: Freeboard-segment columns, release 005+ layout.
FREEBOARD_VARIABLES: Final[tuple[Var, ...]] = tuple(
    Var(col, f"{grp}/{col}", dtype, req) for col, grp, _lg, _ll, dtype, req in _FREEBOARD_SPEC
)
#: Freeboard-segment columns, legacy (<= r004) layout, same column names.
LEGACY_FREEBOARD_VARIABLES: Final[tuple[Var, ...]] = tuple(
    Var(col, f"{lgrp}/{leaf or col}", dtype, req) for col, _g, lgrp, leaf, dtype, req in _FREEBOARD_SPEC
)
#: Lead columns (same group in both layouts).
LEADS_VARIABLES: Final[tuple[Var, ...]] = tuple(Var(c, f"{_LEADS}/{c}", d, r) for c, d, r in _LEADS_SPEC)
LEGACY_LEADS_VARIABLES: Final[tuple[Var, ...]] = LEADS_VARIABLES
#: Reference-surface-section columns, release 005+ layout.
REFSURF_VARIABLES: Final[tuple[Var, ...]] = tuple(Var(c, f"{_RS}/{c}", d, r) for c, d, r in _REFSURF_SPEC)
#: Reference-surface-section columns, legacy layout (datasets directly in freeboard_beam_segment).
LEGACY_REFSURF_VARIABLES: Final[tuple[Var, ...]] = tuple(
    Var(c, f"{_LFB_ROOT}/{c}", d, r) for c, d, r in _REFSURF_SPEC
)

_TABLES: Final[dict[tuple[str, Layout], tuple[Var, ...]]] = {
    ("freeboard", "current"): FREEBOARD_VARIABLES,
    ("freeboard", "legacy"): LEGACY_FREEBOARD_VARIABLES,
    ("leads", "current"): LEADS_VARIABLES,
    ("leads", "legacy"): LEGACY_LEADS_VARIABLES,
    ("refsurf", "current"): REFSURF_VARIABLES,
    ("refsurf", "legacy"): LEGACY_REFSURF_VARIABLES,
}

#: Every release-005+ dataset the ATL10 readers and summary may open (``{beam}`` placeholder);
#: all are in the real ATL10 variable list.
ATL10_PATHS_USED: Final[tuple[str, ...]] = (
    *(f"{{beam}}/{v.path}" for t in (FREEBOARD_VARIABLES, LEADS_VARIABLES, REFSURF_VARIABLES) for v in t),
    *ORBIT_PATHS,
)
#: LEGACY (<= r004) datasets, not in the variable list: from METHOD.md §1.3 and public readers,
#: tested only on the synthetic fixture.
ATL10_LEGACY_PATHS_USED: Final[tuple[str, ...]] = tuple(
    f"{{beam}}/{v.path}" for v in (*LEGACY_FREEBOARD_VARIABLES, *LEGACY_REFSURF_VARIABLES)
)


def atl10_layout(f: h5py.File, beam: str | None = None) -> Layout:
    """Which ATL10 layout a file (or one beam of it) uses.

    ``legacy`` when the beam (or, with ``beam=None``, any beam) has ``freeboard_beam_segment``
    and no ``freeboard_segment``; ``current`` otherwise (also for beams without data).
    """
    beams = (beam,) if beam is not None else tuple(b for b in BEAMS if has_path(f, b))
    for b in beams:
        if has_path(f, f"{b}/{_FB}"):
            return "current"
        if has_path(f, f"{b}/{_LFB_ROOT}"):
            return "legacy"
    return "current"


def _read(
    path: str | os.PathLike[str],
    beam: str,
    table: str,
    columns: Sequence[str] | None,
    config: ReaderConfig | None,
    storage_options: dict[str, Any] | None,
) -> pd.DataFrame:
    cfg = config if config is not None else ReaderConfig()
    with open_h5(path, storage_options) as f:
        check_product(f, PRODUCT)
        if not has_path(f, beam):
            present = sorted(k for k in f if k.startswith("gt"))
            raise MissingBeamError(f.filename, f"beam {beam} not in file (beams present: {present})")
        layout = atl10_layout(f, beam)
        if layout == "legacy":
            log.debug("%s: beam %s uses the legacy (<= r004) ATL10 layout", f.filename, beam)
        out = read_table(f, beam, _TABLES[(table, layout)], columns, cfg)
    out.attrs.update({"product": PRODUCT, "path": os.fspath(path), "beam": beam, "layout": layout})
    return out


def read_atl10_freeboard(
    path: str | os.PathLike[str],
    beam: Beam | str,
    columns: Sequence[str] | None = None,
    *,
    config: ReaderConfig | None = None,
    storage_options: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Read the freeboard segments of one ATL10 beam.

    Parameters
    ----------
    path : str or os.PathLike
        Local path or fsspec URL of an ATL10 granule (either layout).
    beam : str
        Beam group, ``gt1l`` ... ``gt3r``.
    columns : sequence of str, optional
        Columns to return, in this order (default: all, ``time_utc`` after ``delta_time``).
    config : ReaderConfig, optional
        Supplies the ATLAS SDP epoch when ``ancillary_data/atlas_sdp_gps_epoch`` is absent.
    storage_options : dict, optional
        fsspec options for remote URLs.

    Returns
    -------
    pandas.DataFrame
        One row per freeboard segment: ``beam_fb_height``/``beam_fb_unc`` (m, float64, fill ->
        NaN; legacy ``beam_fb_sigma`` is returned as ``beam_fb_unc``), ``beam_refsurf_ndx``
        (1-based row of :func:`read_atl10_reference_surface`), position (degrees, m along
        track), time (``delta_time`` s, ``time_utc`` UTC) and the ATL07 segment heights,
        flags and corrections (m).  Required: delta_time, latitude, longitude, seg_dist_x,
        beam_fb_height.  Empty frame for a beam without segments.

    Raises
    ------
    CorruptFileError
        The file is missing, truncated or not HDF5.
    WrongProductError
        The file is not ATL10.
    MissingBeamError
        ``beam`` is not in the file.
    MissingVariableError
        A required dataset is absent from a beam that has data.
    """
    return _read(path, str(beam), "freeboard", columns, config, storage_options)


def read_atl10_leads(
    path: str | os.PathLike[str],
    beam: Beam | str,
    columns: Sequence[str] | None = None,
    *,
    config: ReaderConfig | None = None,
    storage_options: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Read the leads of one ATL10 beam.

    Parameters
    ----------
    path : str or os.PathLike
        Local path or fsspec URL of an ATL10 granule (either layout).
    beam : str
        Beam group, ``gt1l`` ... ``gt3r``.
    columns : sequence of str, optional
        Columns to return, in this order (default: all, ``time_utc`` after ``delta_time``).
    config : ReaderConfig, optional
        Supplies the ATLAS SDP epoch when ``ancillary_data/atlas_sdp_gps_epoch`` is absent.
    storage_options : dict, optional
        fsspec options for remote URLs.

    Returns
    -------
    pandas.DataFrame
        One row per lead: ``lead_height`` (m, sea-surface height of the lead), ``lead_length``
        (m), ``lead_sigma`` (m), ``lead_dist_x`` (m along track), ``ssh_n`` (segments) and
        ``ssh_ndx`` (1-based first freeboard segment), position and time.  Required:
        delta_time, latitude, longitude, lead_height.  Empty frame for a beam without leads.

    Raises
    ------
    CorruptFileError
        The file is missing, truncated or not HDF5.
    WrongProductError
        The file is not ATL10.
    MissingBeamError
        ``beam`` is not in the file.
    MissingVariableError
        A required dataset is absent from a beam that has data.
    """
    return _read(path, str(beam), "leads", columns, config, storage_options)


def read_atl10_reference_surface(
    path: str | os.PathLike[str],
    beam: Beam | str,
    columns: Sequence[str] | None = None,
    *,
    config: ReaderConfig | None = None,
    storage_options: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Read the ~10 km reference-surface sections of one ATL10 beam.

    Parameters
    ----------
    path : str or os.PathLike
        Local path or fsspec URL of an ATL10 granule (either layout).
    beam : str
        Beam group, ``gt1l`` ... ``gt3r``.
    columns : sequence of str, optional
        Columns to return, in this order (default: all, ``time_utc`` after ``delta_time``).
    config : ReaderConfig, optional
        Supplies the ATLAS SDP epoch when ``ancillary_data/atlas_sdp_gps_epoch`` is absent.
    storage_options : dict, optional
        fsspec options for remote URLs.

    Returns
    -------
    pandas.DataFrame
        One row per section: ``beam_refsurf_height`` and ``beam_refsurf_sigma`` (m),
        ``beam_lead_n`` / ``beam_lead_ndx`` (leads used, 1-based first lead),
        ``beam_refsurf_dist_x`` (m along track), position and time.  Required: latitude,
        longitude, beam_refsurf_height.  Empty frame for a beam without sections.

    Raises
    ------
    CorruptFileError
        The file is missing, truncated or not HDF5.
    WrongProductError
        The file is not ATL10.
    MissingBeamError
        ``beam`` is not in the file.
    MissingVariableError
        A required dataset is absent from a beam that has data.
    """
    return _read(path, str(beam), "refsurf", columns, config, storage_options)


def summarize_atl10(
    path: str | os.PathLike[str],
    *,
    config: ReaderConfig | None = None,
    storage_options: dict[str, Any] | None = None,
) -> ProductSummary:
    """Summarise an ATL10 granule: granule key, beams with strength and freeboard-segment count.

    Parameters
    ----------
    path : str or os.PathLike
        Local path or fsspec URL of an ATL10 granule (either layout).
    config : ReaderConfig, optional
        Default orientation / epoch when ``orbit_info`` / ``ancillary_data`` are absent.
    storage_options : dict, optional
        fsspec options for remote URLs.

    Returns
    -------
    ProductSummary
        ``n_segments`` = freeboard segments per beam; times ISO-8601 UTC from the freeboard
        segments; ``extra`` holds ``sc_orient``, ``rgt``, ``cycle``, ``layout`` and per-beam
        ``n_leads`` / ``n_reference_sections``.

    Raises
    ------
    CorruptFileError, WrongProductError
        As :func:`read_atl10_freeboard`.
    """
    cfg = config if config is not None else ReaderConfig()
    name = os.fspath(path)
    with open_h5(path, storage_options) as f:
        check_product(f, PRODUCT)
        layout = atl10_layout(f)
        fb_time = f"{{beam}}/{_TABLES[('freeboard', layout)][0].path}"
        lead_time = f"{{beam}}/{_TABLES[('leads', layout)][0].path}"
        rs_height = next(v.path for v in _TABLES[("refsurf", layout)] if v.column == "beam_refsurf_height")
        extra: dict[str, Any] = {"layout": layout, "n_leads": {}, "n_reference_sections": {}}
        for beam in BEAMS:
            if has_path(f, beam):
                extra["n_leads"][beam] = _length(f, lead_time.format(beam=beam))
                extra["n_reference_sections"][beam] = _length(f, f"{beam}/{rs_height}")
        return beam_summary(
            f,
            name,
            count_paths=(fb_time,),
            time_paths=(fb_time,),
            config=cfg,
            product=PRODUCT,
            extra=extra,
        )


def _length(f: h5py.File, path: str) -> int:
    if not has_path(f, path):
        return 0
    ds = f[path]
    return int(ds.shape[0]) if isinstance(ds, h5py.Dataset) and ds.shape else 0
