"""Exceptions raised by seaice on bad input.

Every error names the offending file (or URL) and what is wrong with it, so a data engineer
reading an Airflow log can act on one line.
"""

from __future__ import annotations

import os

__all__ = [
    "SeaIceError",
    "InputError",
    "CorruptFileError",
    "WrongProductError",
    "MissingBeamError",
    "MissingVariableError",
    "AllFillError",
    "RasterMismatchError",
    "GranuleNameError",
    "StorageError",
    "ConfigError",
    "SchemaError",
]


class SeaIceError(Exception):
    """Base class of every error raised by seaice."""


class InputError(SeaIceError):
    """An input file cannot be used.

    Parameters
    ----------
    path : str or os.PathLike
        The file (or URL) at fault.
    problem : str
        What is wrong with it, in a few words.
    """

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class CorruptFileError(InputError):
    """The file is not a readable HDF5 / raster (truncated, corrupt or another format)."""


class WrongProductError(InputError):
    """The file is readable but holds another product than the reader expects."""


class MissingBeamError(InputError):
    """The requested beam group is not in the file."""


class MissingVariableError(InputError):
    """A dataset the reader needs is not in the file."""


class AllFillError(InputError):
    """A dataset the reader needs holds only fill values."""


class RasterMismatchError(InputError):
    """Rasters that must share a grid (CRS, transform, shape) do not."""


class GranuleNameError(SeaIceError):
    """A file name does not follow the ICESat-2 or Sentinel-2 naming convention."""


class StorageError(SeaIceError):
    """A partition in the lake is missing, uncommitted or fails its manifest check."""


class ConfigError(SeaIceError):
    """A configuration value or JSON document is invalid."""


class SchemaError(SeaIceError):
    """A table does not match the schema of its stage boundary."""
