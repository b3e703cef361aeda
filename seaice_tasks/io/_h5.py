"""HDF5 helpers shared by the ICESat-2 readers: open with clear errors, fill -> NaN, slices.

Every reader opens files through :func:`open_h5`, so a truncated file, a non-HDF5 file or an
unreachable URL always raises a :class:`~seaice_tasks.errors.CorruptFileError` naming the file.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any, Final

import h5py
import numpy as np
import numpy.typing as npt

from seaice_tasks.constants import H5_FILL_THRESHOLD
from seaice_tasks.errors import (
    AllFillError,
    CorruptFileError,
    MissingBeamError,
    MissingVariableError,
    WrongProductError,
)

__all__ = [
    "open_h5",
    "read_dataset",
    "read_float",
    "fill_to_nan",
    "require_group",
    "has_path",
    "product_of",
    "check_product",
]

log = logging.getLogger(__name__)

#: HDF5 attribute holding a dataset's fill value.
FILL_VALUE_ATTR: Final[str] = "_FillValue"


@contextlib.contextmanager
def open_h5(
    path: str | os.PathLike[str], storage_options: dict[str, Any] | None = None
) -> Iterator[h5py.File]:
    """Open a local path or fsspec URL as a read-only :class:`h5py.File`.

    Parameters
    ----------
    path : str or os.PathLike
        Local path or URL (``s3://...``, ``file://...``).
    storage_options : dict, optional
        fsspec options for remote URLs.

    Raises
    ------
    CorruptFileError
        When the file is missing, truncated or not HDF5.
    """
    text = os.fspath(path)
    if "://" in text and not text.startswith("file://"):
        import fsspec

        try:
            fobj = fsspec.open(text, "rb", **(storage_options or {})).open()
        except (OSError, ValueError) as exc:
            raise CorruptFileError(text, f"cannot open: {exc}") from exc
        try:
            with _h5file(text, fobj) as f:
                yield f
        finally:
            fobj.close()
        return
    local = text.removeprefix("file://")
    if not os.path.exists(local):
        raise CorruptFileError(text, "no such file")
    with _h5file(text, local) as f:
        yield f


@contextlib.contextmanager
def _h5file(name: str, target: Any) -> Iterator[h5py.File]:
    try:
        f = h5py.File(target, "r")
    except OSError as exc:
        raise CorruptFileError(name, f"not a readable HDF5 file ({_short(exc)})") from exc
    try:
        yield f
    finally:
        f.close()


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]


def has_path(f: h5py.File, path: str) -> bool:
    """Whether ``path`` exists in the file (never raises on broken links)."""
    try:
        return path in f
    except (KeyError, OSError, RuntimeError):
        return False


def require_group(f: h5py.File, path: str, *, beam: str | None = None) -> h5py.Group:
    """Return the group at ``path`` or raise a clear error naming the file."""
    if not has_path(f, path):
        if beam is not None and not has_path(f, beam):
            present = sorted(k for k in f if k.startswith("gt"))
            raise MissingBeamError(f.filename, f"beam {beam} not in file (beams present: {present})")
        raise MissingVariableError(f.filename, f"group {path} missing")
    obj = f[path]
    if not isinstance(obj, h5py.Group):
        raise MissingVariableError(f.filename, f"{path} is not a group")
    return obj


def read_dataset(
    f: h5py.File, path: str, sel: slice | tuple[Any, ...] = slice(None)
) -> npt.NDArray[Any]:
    """Read ``f[path][sel]`` as a numpy array, with a clear error when missing or unreadable."""
    if not has_path(f, path):
        raise MissingVariableError(f.filename, f"dataset {path} missing")
    ds = f[path]
    if not isinstance(ds, h5py.Dataset):
        raise MissingVariableError(f.filename, f"{path} is not a dataset")
    try:
        return np.asarray(ds[sel])
    except (OSError, RuntimeError, ValueError) as exc:
        raise CorruptFileError(f.filename, f"cannot read {path} ({_short(exc)})") from exc


def fill_to_nan(values: npt.ArrayLike, fill_threshold: float = H5_FILL_THRESHOLD) -> npt.NDArray[np.float64]:
    """Float64 copy of ``values`` with ICESat-2 fill values (> ``fill_threshold``) as NaN.

    Examples
    --------
    >>> fill_to_nan(np.array([1.0, 3.4028235e38], dtype=np.float32)).tolist()
    [1.0, nan]
    """
    out = np.asarray(values, dtype=np.float64).copy()
    out[np.abs(out) > fill_threshold] = np.nan
    return out


def read_float(
    f: h5py.File,
    path: str,
    sel: slice | tuple[Any, ...] = slice(None),
    *,
    all_fill_ok: bool = True,
) -> npt.NDArray[np.float64]:
    """Float64 read with fill values as NaN (``> 3e38`` for floats, ``_FillValue`` for integers).

    Parameters
    ----------
    all_fill_ok : bool
        If False, a non-empty dataset holding only fill values raises :class:`AllFillError`.
    """
    raw = read_dataset(f, path, sel)
    out = fill_to_nan(raw)
    if np.issubdtype(raw.dtype, np.integer):
        fill = f[path].attrs.get(FILL_VALUE_ATTR, None)
        if fill is not None:
            out[raw == fill] = np.nan
    if not all_fill_ok and out.size and np.isnan(out).all():
        raise AllFillError(f.filename, f"{path} holds only fill values")
    return out


def product_of(f: h5py.File) -> str | None:
    """The ICESat-2 product short name (``ATL03``...) from metadata or layout, else None."""
    for path in ("METADATA/DatasetIdentification", "/"):
        if has_path(f, path) or path == "/":
            attrs = f[path].attrs
            for key in ("shortName", "short_name", "identifier_product_type"):
                if key in attrs:
                    value = attrs[key]
                    text = value.decode() if isinstance(value, bytes) else str(value)
                    if text.upper().startswith("ATL"):
                        return text.upper()[:5]
    beams = [k for k in f if k.startswith("gt")]
    for beam in beams:
        if has_path(f, f"{beam}/heights/h_ph"):
            return "ATL03"
        if has_path(f, f"{beam}/freeboard_segment") or has_path(f, f"{beam}/freeboard_beam_segment"):
            return "ATL10"
        if has_path(f, f"{beam}/sea_ice_segments"):
            return "ATL07"
    return None


def check_product(f: h5py.File, expected: str) -> None:
    """Raise :class:`WrongProductError` unless the file is ``expected`` (e.g. ``"ATL03"``)."""
    found = product_of(f)
    if found != expected:
        what = found if found is not None else "no ICESat-2 product layout"
        raise WrongProductError(f.filename, f"expected {expected}, found {what}")
