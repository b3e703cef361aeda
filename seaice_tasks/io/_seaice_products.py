"""Machinery shared by the ATL07 and ATL10 readers: variable tables, orbit info, summaries.

Both products store one table per beam group as a set of equally long 1-D datasets (the
"segment rate"), split over a few sub-groups (``heights/``, ``geophysical/``...).  A reader
describes such a table as a tuple of :class:`Var` (output column, path relative to the beam
group, dtype, required) and :func:`read_table` turns it into a :class:`pandas.DataFrame` with
the tolerance rules of METHOD.md §1.3:

* float fill values (> :data:`~seaice_tasks.constants.H5_FILL_THRESHOLD`) become NaN;
* a missing *optional* dataset becomes an all-NaN column and a warning is logged once per file
  and dataset;
* a missing *required* dataset raises :class:`~seaice_tasks.errors.MissingVariableError`;
* a beam whose table group is absent, or present without any of the required datasets (how
  the NSIDC subsetter writes beams without data, e.g. ``gt2r`` of the 2019-02-22 ATL07), gives
  an empty table with the right columns.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import h5py
import numpy as np
import numpy.typing as npt
import pandas as pd

from seaice_tasks.config import ReaderConfig
from seaice_tasks.constants import BEAMS, ScOrient, is_strong
from seaice_tasks.errors import CorruptFileError, GranuleNameError, MissingBeamError, MissingVariableError
from seaice_tasks.granule import parse_granule
from seaice_tasks.io._h5 import fill_to_nan, has_path, read_dataset
from seaice_tasks.io._time import delta_time_to_utc
from seaice_tasks.io.summary import BeamSummary, ProductSummary, Strength

__all__ = [
    "Var",
    "TIME_UTC",
    "EPOCH_PATH",
    "SC_ORIENT_PATH",
    "ORBIT_PATHS",
    "read_epoch",
    "read_sc_orient",
    "beam_strength",
    "select_vars",
    "read_table",
    "table_length",
    "iso_utc",
    "granule_key",
    "beam_summary",
]

log = logging.getLogger(__name__)

#: Name of the derived UTC time column (computed from ``delta_time``).
TIME_UTC: Final[str] = "time_utc"
#: GPS seconds of the ATLAS SDP epoch (``delta_time`` origin).
EPOCH_PATH: Final[str] = "ancillary_data/atlas_sdp_gps_epoch"
#: Spacecraft orientation: 0 backward, 1 forward, 2 transition.
SC_ORIENT_PATH: Final[str] = "orbit_info/sc_orient"
#: Granule-level paths the summaries read.
ORBIT_PATHS: Final[tuple[str, ...]] = (
    EPOCH_PATH,
    SC_ORIENT_PATH,
    "orbit_info/rgt",
    "orbit_info/cycle_number",
)
#: Beam group attribute naming the beam strength (``b"strong"`` / ``b"weak"``).
BEAM_TYPE_ATTR: Final[str] = "atlas_beam_type"

_F4: Final = np.dtype(np.float32)

# (file, dataset template) pairs already warned about, so a reader called for six beams logs a
# missing optional variable once.
_WARNED: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class Var:
    """One column of a segment table.

    Attributes
    ----------
    column : str
        Output column name (the dataset's leaf name in the current product layout).
    path : str
        Dataset path relative to the beam group, e.g. ``sea_ice_segments/heights/height_segment_height``.
    dtype : numpy.dtype
        Dtype of the column in an empty table (floats are always returned as float64).
    required : bool
        Whether a beam with data but without this dataset is an error.
    """

    column: str
    path: str
    dtype: np.dtype[Any] = _F4
    required: bool = False


def read_epoch(f: h5py.File, config: ReaderConfig) -> float:
    """``ancillary_data/atlas_sdp_gps_epoch`` (GPS s), or the configured default with a warning."""
    if has_path(f, EPOCH_PATH):
        value = read_dataset(f, EPOCH_PATH).ravel()
        if value.size and np.isfinite(value[0]):
            return float(value[0])
    _warn_once(
        f.filename,
        EPOCH_PATH,
        f"{f.filename}: {EPOCH_PATH} missing; using the default {config.atlas_sdp_gps_epoch_s} s",
    )
    return float(config.atlas_sdp_gps_epoch_s)


def read_sc_orient(f: h5py.File) -> int | None:
    """``orbit_info/sc_orient`` as an int (2 = transition when it changes within the granule).

    Returns None when the dataset is absent or empty.
    """
    if not has_path(f, SC_ORIENT_PATH):
        return None
    values = np.unique(read_dataset(f, SC_ORIENT_PATH).ravel())
    if values.size == 0:
        return None
    if values.size > 1:
        return int(ScOrient.TRANSITION)
    return int(values[0])


def beam_strength(f: h5py.File, beam: str, sc_orient: int | None) -> Strength:
    """Strength of ``beam``: the ``atlas_beam_type`` attribute, else from ``sc_orient``."""
    if has_path(f, beam):
        raw = f[beam].attrs.get(BEAM_TYPE_ATTR)
        if raw is not None:
            text = (raw.decode() if isinstance(raw, bytes) else str(raw)).strip().lower()
            if text == "strong":
                return "strong"
            if text == "weak":
                return "weak"
    if sc_orient is None or sc_orient not in tuple(int(o) for o in ScOrient):
        return "unknown"
    strong = is_strong(beam, sc_orient)
    if strong is None:
        return "unknown"
    return "strong" if strong else "weak"


def select_vars(variables: Sequence[Var], columns: Sequence[str] | None) -> tuple[Var, ...]:
    """The :class:`Var` entries behind ``columns`` (all when None), in the requested order.

    ``time_utc`` is accepted as a column when the table has ``delta_time``.

    Raises
    ------
    ValueError
        On an unknown column name.
    """
    if columns is None:
        return tuple(variables)
    by_name = {v.column: v for v in variables}
    known = [*by_name, TIME_UTC] if "delta_time" in by_name else list(by_name)
    unknown = [c for c in columns if c not in known]
    if unknown:
        raise ValueError(f"unknown column(s) {unknown}; known: {known}")
    return tuple(by_name[c] for c in dict.fromkeys(columns) if c != TIME_UTC)


def table_length(f: h5py.File, beam: str, variables: Sequence[Var]) -> int | None:
    """Rows of the table from the first required dataset present; None for an empty beam.

    Raises
    ------
    MissingBeamError
        If the beam group is not in the file.
    MissingVariableError
        If some but not all required datasets are present.
    """
    if not has_path(f, beam):
        present = sorted(k for k in f if k.startswith("gt"))
        raise MissingBeamError(f.filename, f"beam {beam} not in file (beams present: {present})")
    required = [v for v in variables if v.required]
    found = [v for v in required if has_path(f, f"{beam}/{v.path}")]
    if not found:
        return None
    if len(found) < len(required):
        missing = [f"{beam}/{v.path}" for v in required if v not in found]
        raise MissingVariableError(f.filename, f"required dataset(s) {missing} missing")
    ds = f[f"{beam}/{found[0].path}"]
    if not isinstance(ds, h5py.Dataset):
        raise MissingVariableError(f.filename, f"{beam}/{found[0].path} is not a dataset")
    return int(ds.shape[0]) if ds.shape else 0


def read_table(
    f: h5py.File,
    beam: str,
    variables: Sequence[Var],
    columns: Sequence[str] | None,
    config: ReaderConfig,
) -> pd.DataFrame:
    """Read one per-beam segment table into a DataFrame (see the module docstring for the rules).

    Parameters
    ----------
    f : h5py.File
        Open product file.
    beam : str
        Beam group, ``gt1l`` ... ``gt3r``.
    variables : sequence of Var
        The full column table of the product group; must include ``delta_time`` for ``time_utc``.
    columns : sequence of str or None
        Columns to return, in this order (None: all of ``variables`` plus ``time_utc`` after
        ``delta_time``).
    config : ReaderConfig
        Supplies the ATLAS SDP epoch when the file lacks it.

    Returns
    -------
    pandas.DataFrame
        One row per segment; floats as float64 with fills as NaN, integers in their file dtype,
        ``time_utc`` as ``datetime64[ns]`` (UTC, naive).
    """
    selected = select_vars(variables, columns)
    want_time = (columns is None and any(v.column == "delta_time" for v in variables)) or (
        columns is not None and TIME_UTC in columns
    )
    order = _column_order(variables, columns, want_time)
    n = table_length(f, beam, variables)
    data: dict[str, Any] = {}
    if n is None or n == 0:
        log.info("%s: beam %s has no segments", f.filename, beam)
        for v in selected:
            data[v.column] = np.empty(0, dtype=np.float64 if v.dtype.kind == "f" else v.dtype)
        if want_time:
            data[TIME_UTC] = np.empty(0, dtype="datetime64[ns]")
        return pd.DataFrame(data, columns=order)
    to_read = list(selected)
    if want_time and not any(v.column == "delta_time" for v in to_read):
        to_read.extend(v for v in variables if v.column == "delta_time")
    missing: list[str] = []
    for v in to_read:
        values = _read_column(f, beam, v, n)
        if values is None:
            missing.append(f"{{beam}}/{v.path}")
            values = np.full(n, np.nan)
        data[v.column] = values
    if missing:
        message = f"{f.filename}: optional dataset(s) missing, columns set to NaN: {missing} ({beam=})"
        _warn_once(f.filename, " ".join(missing), message)
    if want_time:
        data[TIME_UTC] = delta_time_to_utc(data["delta_time"], read_epoch(f, config))
    return pd.DataFrame({c: data[c] for c in order}, columns=order)


def _column_order(variables: Sequence[Var], columns: Sequence[str] | None, want_time: bool) -> list[str]:
    if columns is not None:
        return list(dict.fromkeys(columns))
    out: list[str] = []
    for v in variables:
        out.append(v.column)
        if v.column == "delta_time" and want_time:
            out.append(TIME_UTC)
    return out


def _read_column(f: h5py.File, beam: str, var: Var, n: int) -> npt.NDArray[Any] | None:
    """The column's values (floats with fills as NaN); None for a missing optional dataset."""
    path = f"{beam}/{var.path}"
    if not has_path(f, path):
        if var.required:
            raise MissingVariableError(f.filename, f"required dataset {path} missing")
        return None
    values = read_dataset(f, path)
    if values.ndim != 1 or values.shape[0] != n:
        raise CorruptFileError(f.filename, f"{path} has shape {values.shape}, expected ({n},)")
    if values.dtype.kind == "f":
        return fill_to_nan(values)
    return values


def _warn_once(filename: str, key: str, message: str) -> None:
    token = (filename, key)
    if token in _WARNED:
        return
    _WARNED.add(token)
    log.warning("%s", message)


def iso_utc(value: np.datetime64) -> str | None:
    """ISO-8601 UTC string with microseconds and a ``Z`` suffix; None for NaT.

    Examples
    --------
    >>> iso_utc(np.datetime64("2019-02-22T00:39:52.530835480", "ns"))
    '2019-02-22T00:39:52.530835Z'
    """
    if np.isnat(value):
        return None
    return f"{np.datetime_as_string(value, unit='us')}Z"


def granule_key(path: str | os.PathLike[str]) -> tuple[str | None, str | None]:
    """(granule key, warning) for a file name: the key is None when the name does not parse."""
    try:
        return parse_granule(path).granule, None
    except GranuleNameError as exc:
        return None, str(exc)


def beam_summary(
    f: h5py.File,
    name: str,
    count_paths: Sequence[str],
    time_paths: Sequence[str],
    config: ReaderConfig,
    product: str,
    extra: dict[str, Any] | None = None,
) -> ProductSummary:
    """Beams, strengths, counts and time range of a segment product.

    Parameters
    ----------
    f : h5py.File
        Open product file (already checked to be ``product``).
    name : str
        The path or URL the file was opened from (reported, and parsed for the granule).
    count_paths : sequence of str
        Candidate ``{beam}``-templated datasets whose length is the segment count (first present
        wins; none present = 0 segments).
    time_paths : sequence of str
        ``{beam}``-templated ``delta_time`` datasets spanning the time range.
    config : ReaderConfig
        Default orientation and epoch when the file lacks them.
    product : str
        ``ATL07`` or ``ATL10``.
    extra : dict, optional
        Product-specific facts to add to ``ProductSummary.extra``.
    """
    warnings: list[str] = []
    sc_orient = read_sc_orient(f)
    if sc_orient is None:
        sc_orient = int(config.default_sc_orient)
        warnings.append(f"{SC_ORIENT_PATH} missing; assumed sc_orient={sc_orient}")
        log.warning("%s: %s missing; assuming sc_orient=%d", name, SC_ORIENT_PATH, sc_orient)
    if not has_path(f, EPOCH_PATH):
        warnings.append(f"{EPOCH_PATH} missing; used {config.atlas_sdp_gps_epoch_s} s")
    epoch = read_epoch(f, config)
    beams: list[BeamSummary] = []
    t_min, t_max = np.inf, -np.inf
    for beam in BEAMS:
        if not has_path(f, beam):
            continue
        n = 0
        for template in count_paths:
            path = template.format(beam=beam)
            if has_path(f, path):
                n = int(f[path].shape[0]) if f[path].shape else 0
                break
        beams.append(BeamSummary(beam, beam_strength(f, beam, sc_orient), None, n))
        for template in time_paths:
            path = template.format(beam=beam)
            if has_path(f, path):
                t = fill_to_nan(read_dataset(f, path))
                t = t[np.isfinite(t)]
                if t.size:
                    t_min, t_max = min(t_min, float(t.min())), max(t_max, float(t.max()))
                break
    start = end = None
    if np.isfinite(t_min):
        utc = delta_time_to_utc(np.array([t_min, t_max]), epoch)
        start, end = iso_utc(utc[0]), iso_utc(utc[1])
    granule, name_warning = granule_key(name)
    if name_warning is not None:
        warnings.append(name_warning)
    facts: dict[str, Any] = {"sc_orient": sc_orient}
    for key, path in (("rgt", "orbit_info/rgt"), ("cycle", "orbit_info/cycle_number")):
        if has_path(f, path):
            values = read_dataset(f, path).ravel()
            facts[key] = int(values[0]) if values.size else None
    facts.update(extra or {})
    return ProductSummary(
        path=name,
        product=product,
        granule=granule,
        time_start_utc=start,
        time_end_utc=end,
        beams=tuple(beams),
        extra=facts,
        warnings=tuple(warnings),
    )
