"""Reader of ICESat-2 ATL07 (sea-ice and sea-surface height) granules.

One table per beam, ``gtx/sea_ice_segments`` (METHOD.md §1.3): variable-length segments of
~150 signal photons with their height relative to the mean sea surface, surface type, quality
and geophysical corrections.  Column names are the datasets' leaf names.

Verified on the three real release-003 NSIDC subsets in ``shared/realdata/icesat2`` and on the
ATL07 variable list ``icepyx_is2variables.json`` (every path in :data:`ATL07_PATHS_USED`).

Examples
--------
>>> [v.column for v in ATL07_VARIABLES if v.required]
['delta_time', 'latitude', 'longitude', 'seg_dist_x', 'height_segment_height']
>>> ATL07_PATHS_USED[0]
'{beam}/sea_ice_segments/delta_time'
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import pandas as pd

from seaice_tasks.config import ReaderConfig
from seaice_tasks.constants import Beam
from seaice_tasks.io._h5 import check_product, open_h5
from seaice_tasks.io._seaice_products import ORBIT_PATHS, TIME_UTC, Var, beam_summary, read_table
from seaice_tasks.io.summary import ProductSummary

__all__ = [
    "PRODUCT",
    "SEGMENT_GROUP",
    "ATL07_VARIABLES",
    "ATL07_COLUMNS",
    "ATL07_PATHS_USED",
    "read_atl07",
    "summarize_atl07",
]

log = logging.getLogger(__name__)

PRODUCT: Final[str] = "ATL07"
#: Per-beam group holding the segment table.
SEGMENT_GROUP: Final[str] = "sea_ice_segments"

_I1: Final = np.dtype(np.int8)
_I4: Final = np.dtype(np.int32)
_F8: Final = np.dtype(np.float64)
_S: Final[str] = SEGMENT_GROUP
_H: Final[str] = f"{SEGMENT_GROUP}/heights"
_G: Final[str] = f"{SEGMENT_GROUP}/geophysical"

#: Columns of :func:`read_atl07`: (column, path below the beam group, dtype, required).
#: Units: times s, coordinates degrees, distances/lengths/heights m.
ATL07_VARIABLES: Final[tuple[Var, ...]] = (
    Var("delta_time", f"{_S}/delta_time", _F8, True),  # s since the ATLAS SDP epoch (GPS)
    Var("latitude", f"{_S}/latitude", _F8, True),  # degrees north
    Var("longitude", f"{_S}/longitude", _F8, True),  # degrees east
    Var("seg_dist_x", f"{_S}/seg_dist_x", _F8, True),  # m along track, segment centre
    Var("height_segment_id", f"{_S}/height_segment_id", _I4),
    Var("geoseg_beg", f"{_S}/geoseg_beg", _I4),  # first ATL03 20 m segment id
    Var("geoseg_end", f"{_S}/geoseg_end", _I4),
    Var("height_segment_height", f"{_H}/height_segment_height", required=True),  # m above MSS
    Var("height_segment_type", f"{_H}/height_segment_type", _I1),  # ATL07SurfaceType
    Var("height_segment_ssh_flag", f"{_H}/height_segment_ssh_flag", _I1),  # 1 sea-surface candidate
    Var("height_segment_quality", f"{_H}/height_segment_quality", _I1),  # 1 good
    Var("height_segment_fit_quality_flag", f"{_H}/height_segment_fit_quality_flag", _I1),
    Var("height_segment_length_seg", f"{_H}/height_segment_length_seg"),  # m
    Var("height_segment_confidence", f"{_H}/height_segment_confidence"),
    Var("height_segment_w_gaussian", f"{_H}/height_segment_w_gaussian"),  # m
    Var("height_segment_surface_error_est", f"{_H}/height_segment_surface_error_est"),  # m
    Var("height_segment_rms", f"{_H}/height_segment_rms"),  # m
    Var("height_segment_htcorr_skew", f"{_H}/height_segment_htcorr_skew"),  # m
    Var("height_segment_n_pulse_seg", f"{_H}/height_segment_n_pulse_seg", _I4),
    Var("height_segment_mss", f"{_G}/height_segment_mss"),  # m, mean sea surface
    Var("height_segment_ocean", f"{_G}/height_segment_ocean"),  # m, ocean tide
    Var("height_segment_lpe", f"{_G}/height_segment_lpe"),  # m, long-period equilibrium tide
    Var("height_segment_ib", f"{_G}/height_segment_ib"),  # m, inverted barometer
    Var("height_segment_dac", f"{_G}/height_segment_dac"),  # m, dynamic atmosphere
    Var("height_segment_geoid", f"{_G}/height_segment_geoid"),  # m
    Var("height_segment_earth", f"{_G}/height_segment_earth"),  # m, solid-earth tide
    Var("height_segment_load", f"{_G}/height_segment_load"),  # m, load tide
    Var("photon_rate", f"{_S}/stats/photon_rate"),  # signal photons per shot
)

#: Output columns of :func:`read_atl07` with ``columns=None``.
ATL07_COLUMNS: Final[tuple[str, ...]] = tuple(
    c for v in ATL07_VARIABLES for c in ((v.column, TIME_UTC) if v.column == "delta_time" else (v.column,))
)

#: Every dataset the ATL07 reader and summary may open, ``{beam}`` = ``gt1l`` ... ``gt3r``.
ATL07_PATHS_USED: Final[tuple[str, ...]] = (
    *(f"{{beam}}/{v.path}" for v in ATL07_VARIABLES),
    *ORBIT_PATHS,
)


def read_atl07(
    path: str | os.PathLike[str],
    beam: Beam | str,
    columns: Sequence[str] | None = None,
    *,
    config: ReaderConfig | None = None,
    storage_options: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Read the sea-ice segments of one ATL07 beam.

    Parameters
    ----------
    path : str or os.PathLike
        Local path or fsspec URL of an ATL07 granule.
    beam : str
        Beam group, ``gt1l`` ... ``gt3r``.
    columns : sequence of str, optional
        Columns to return, in this order; default :data:`ATL07_COLUMNS`.  ``time_utc`` may be
        requested without ``delta_time``.
    config : ReaderConfig, optional
        Supplies the ATLAS SDP epoch when ``ancillary_data/atlas_sdp_gps_epoch`` is absent.
    storage_options : dict, optional
        fsspec options for remote URLs.

    Returns
    -------
    pandas.DataFrame
        One row per segment.  Heights, lengths and corrections in m (float64, fill -> NaN);
        ``delta_time`` in s since 2018-01-01 (GPS); ``time_utc`` ``datetime64[ns]`` UTC;
        ``latitude``/``longitude`` in degrees; ``seg_dist_x`` in m along track.  Flags keep their
        integer dtype.  A missing optional dataset gives an all-NaN column (warning logged once).
        A beam without segments gives an empty frame with the same columns.

    Raises
    ------
    CorruptFileError
        The file is missing, truncated or not HDF5.
    WrongProductError
        The file is not ATL07.
    MissingBeamError
        ``beam`` is not in the file.
    MissingVariableError
        A required dataset (delta_time, latitude, longitude, seg_dist_x, height_segment_height)
        is absent from a beam that has data.
    ValueError
        ``columns`` names an unknown column.
    """
    cfg = config if config is not None else ReaderConfig()
    with open_h5(path, storage_options) as f:
        check_product(f, PRODUCT)
        out = read_table(f, str(beam), ATL07_VARIABLES, columns, cfg)
    out.attrs.update({"product": PRODUCT, "path": os.fspath(path), "beam": str(beam)})
    return out


def summarize_atl07(
    path: str | os.PathLike[str],
    *,
    config: ReaderConfig | None = None,
    storage_options: dict[str, Any] | None = None,
) -> ProductSummary:
    """Summarise an ATL07 granule: granule key, beams with strength and segment count, time range.

    Parameters
    ----------
    path : str or os.PathLike
        Local path or fsspec URL of an ATL07 granule.
    config : ReaderConfig, optional
        Default orientation / epoch when ``orbit_info`` / ``ancillary_data`` are absent.
    storage_options : dict, optional
        fsspec options for remote URLs.

    Returns
    -------
    ProductSummary
        ``n_segments`` = sea-ice segments per beam (0 for empty beams); times are ISO-8601 UTC;
        ``extra`` holds ``sc_orient``, ``rgt``, ``cycle``.

    Raises
    ------
    CorruptFileError, WrongProductError
        As :func:`read_atl07`.
    """
    cfg = config if config is not None else ReaderConfig()
    name = os.fspath(path)
    with open_h5(path, storage_options) as f:
        check_product(f, PRODUCT)
        return beam_summary(
            f,
            name,
            count_paths=(f"{{beam}}/{_S}/delta_time",),
            time_paths=(f"{{beam}}/{_S}/delta_time",),
            config=cfg,
            product=PRODUCT,
        )
