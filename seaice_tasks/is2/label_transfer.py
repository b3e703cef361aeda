"""Sentinel-2 labels -> 2 m segments: pixel lookup, end trimming, manual corrections, photon refinement.

METHOD.md §4.3-4.4.  For one pair (track x scene), given the segment centres in the scene CRS
and the drift shift already applied:

1. **Lookup** (:func:`lookup_labels`): the class of the pixel under each segment; unlabeled
   (255) where the pixel is nodata, opaque cloud/shadow (the label raster is already 255
   there) or outside the raster.  Optionally the U-Net label of the same pixel.
2. **Trimming** (:func:`trim_slice`): only the runs of unlabeled segments that touch the two
   ends of the stretch are dropped (the notebook's ``del_last_first_chunk`` scanned for the
   last open-water chunk anywhere and deleted everything after the last interior lead, METHOD
   §4.4); ``edge_trim_segments`` more labelled segments next to a trimmed run may be unlabeled
   (the notebook's ``corner_offset``; default 0).
3. **Photon refinement** (:func:`refine_with_photons`, optional, off by default): leads narrower
   than ~2 px are grey in the image and labelled thin or thick, while the 2 m photons resolve
   them: a thin/thick segment at the local S2-water level, flat and bright in photon rate
   becomes water.
4. **Evidence policy** (:func:`evidence_labels`, ``label_policy="evidence"``): labels only
   where the photons agree -- open water wherever the photon evidence
   (:mod:`seaice_tasks.is2.photon_evidence`) finds it, ice where a pure pixel
   (:func:`mixed_pixels`) and the photons say the same class; the rest unlabelled, so a narrow
   lead the 10 m colours call ice is never taught as ice.
5. **Manual corrections** (:func:`apply_corrections`): along-track intervals (granule, beam,
   x_from, x_to, class, author, note) set the label, after everything automatic; applying
   them twice changes nothing.

:func:`read_corrections` reads and checks a corrections table (CSV or Parquet), and
:func:`read_drift_overrides` the manual drift table (granule, beam, scene, dx, dy, author,
note); a table that cannot be used is one error naming the file and the row.
"""

from __future__ import annotations

import dataclasses
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from seaice_tasks.constants import SeaIceClass
from seaice_tasks.errors import InputError

__all__ = [
    "SOURCE_S2",
    "SOURCE_UNET",
    "SOURCE_PHOTONS",
    "SOURCE_MANUAL",
    "SOURCE_NONE",
    "CORRECTION_COLUMNS",
    "OVERRIDE_COLUMNS",
    "lookup_labels",
    "trim_slice",
    "refine_with_photons",
    "mixed_pixels",
    "evidence_labels",
    "apply_corrections",
    "read_corrections",
    "read_drift_overrides",
    "check_corrections",
    "Corrections",
]

SOURCE_S2: Final[str] = "s2"
SOURCE_UNET: Final[str] = "unet"
SOURCE_PHOTONS: Final[str] = "photons"
SOURCE_MANUAL: Final[str] = "manual"
SOURCE_NONE: Final[str] = "none"
#: Columns of a manual label corrections table.
CORRECTION_COLUMNS: Final[tuple[str, ...]] = ("granule", "beam", "x_from", "x_to", "class", "author", "note")
#: Columns of a manual drift override table.
OVERRIDE_COLUMNS: Final[tuple[str, ...]] = ("granule", "beam", "scene", "dx", "dy", "author", "note")
_UNLABELED: Final[int] = int(SeaIceClass.UNLABELED)
_LABELS: Final[frozenset[int]] = frozenset({int(SeaIceClass.THICK_ICE), int(SeaIceClass.THIN_ICE),
                                            int(SeaIceClass.OPEN_WATER)})
_CLASS_NAMES: Final[dict[str, int]] = {"thick": 0, "thick_ice": 0, "thin": 1, "thin_ice": 1, "water": 2,
                                       "open_water": 2}
_MIN_REFINE_WATER: Final[int] = 3

U8 = npt.NDArray[np.uint8]


def lookup_labels(raster: U8, rows: npt.NDArray[np.int64], cols: npt.NDArray[np.int64]) -> U8:
    """The raster's value at each (row, col); 255 where ``row < 0`` (outside)."""
    out = np.full(rows.shape, _UNLABELED, dtype=np.uint8)
    inside = rows >= 0
    out[inside] = raster[rows[inside], cols[inside]]
    return out


def trim_slice(labels: U8, edge_trim_segments: int = 0) -> tuple[slice, U8]:
    """Rows kept after dropping the unlabeled runs that touch either end, and their labels.

    Interior unlabeled runs (clouds, a nodata sliver) stay, as unlabeled; with
    ``edge_trim_segments`` the first and last labelled segments next to a trimmed end are
    unlabeled too.

    Examples
    --------
    >>> s, lab = trim_slice(np.array([255, 255, 0, 255, 2, 0, 255], np.uint8))
    >>> (s.start, s.stop), lab.tolist()
    ((2, 6), [0, 255, 2, 0])
    >>> trim_slice(np.array([255, 0, 0, 0, 255], np.uint8), 1)[1].tolist()
    [255, 0, 255]
    """
    labelled = np.flatnonzero(labels != _UNLABELED)
    if labelled.size == 0:
        return slice(0, 0), labels[:0].copy()
    start, stop = int(labelled[0]), int(labelled[-1]) + 1
    kept = labels[start:stop].copy()
    n = edge_trim_segments
    if n > 0:
        if start > 0:
            kept[:n] = _UNLABELED
        if stop < labels.size:
            kept[max(0, kept.size - n):] = _UNLABELED
    return slice(start, stop), kept


def refine_with_photons(labels: U8, h: npt.NDArray[np.float64], height_sd: npt.NDArray[np.float64],
                        pcnt: npt.NDArray[np.float64], window: npt.NDArray[np.int64], *, tolerance_m: float,
                        max_height_sd_m: float, min_pcnt_ratio: float,
                        thick_above_m: float = math.inf) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Which segments the photons relabel: (thin/thick -> water, thin/water -> thick).

    Per feature window (``window``: :func:`seaice_tasks.is2.features.window_index`), the local
    water level is the median height of the S2-water segments (at least 3; else no
    refinement in that window).  A thin or thick segment becomes water when its height is
    within ``tolerance_m`` of that level, its photon height std is at most ``max_height_sd_m``
    and its photons per shot are at least ``min_pcnt_ratio`` x the track's median (specular
    leads are bright).  A thin-ice or water segment at least ``thick_above_m`` above the level
    becomes thick ice (a 10 m pixel straddling a floe edge; thin ice is at most ~0.15 m).

    Examples
    --------
    >>> lab = np.array([2, 2, 2, 1, 0, 0, 1], np.uint8)
    >>> h = np.array([0.0, 0.01, -0.01, 0.0, 0.4, 0.01, 0.5])
    >>> w, t = refine_with_photons(lab, h, np.full(7, 0.1), np.array([2, 2, 2, 5, 1, 1, 1.0]), np.zeros(7, np.int64),
    ...                            tolerance_m=0.03, max_height_sd_m=0.2, min_pcnt_ratio=1.5, thick_above_m=0.3)
    >>> w.tolist(), t.tolist()
    ([False, False, False, True, False, False, False], [False, False, False, False, False, False, True])
    """
    water = labels == SeaIceClass.OPEN_WATER
    thin = labels == SeaIceClass.THIN_ICE
    candidate = thin | (labels == SeaIceClass.THICK_ICE)
    frame = pd.DataFrame({"w": window, "h": np.where(water, h, np.nan)})
    counts = frame.groupby("w")["h"].transform("count").to_numpy()
    level = frame.groupby("w")["h"].transform("median").to_numpy(dtype=np.float64)
    level = np.where(counts >= _MIN_REFINE_WATER, level, np.nan)
    median_pcnt = float(np.nanmedian(pcnt)) if np.isfinite(pcnt).any() else math.nan
    with np.errstate(invalid="ignore"):
        to_water = (candidate & (np.abs(h - level) <= tolerance_m) & (height_sd <= max_height_sd_m)
                    & (pcnt >= min_pcnt_ratio * median_pcnt))
        to_thick = (thin | water) & (h - level >= thick_above_m)
    return to_water, to_thick & ~to_water


@dataclasses.dataclass(frozen=True)
class Corrections:
    """A checked corrections table: usable rows, and rows refused with the reason.

    ``rows`` keeps the table's own row numbers (0-based, header excluded) in ``row``.
    """

    rows: pd.DataFrame
    refused: tuple[dict[str, Any], ...] = ()

    def for_track(self, granule: str, beam: str) -> pd.DataFrame:
        """The usable rows of one track."""
        sel = (self.rows["granule"] == granule) & (self.rows["beam"] == beam)
        return self.rows.loc[sel]


def _read_table(data: bytes, name: str, columns: Sequence[str]) -> pd.DataFrame:
    try:
        if name.endswith(".parquet"):
            frame = pd.read_parquet(io.BytesIO(data))
        else:
            frame = pd.read_csv(io.BytesIO(data), dtype={"granule": str, "beam": str, "scene": str},
                                keep_default_na=False, na_values=[""])
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise InputError(name, f"not a readable CSV/Parquet table ({exc})") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(name, f"missing column(s) {missing}; expected {list(columns)}")
    frame = frame[list(columns)].copy()
    for col in ("author", "note"):
        frame[col] = frame[col].fillna("").astype(str)
    return frame


def _class_code(value: Any) -> int | None:
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _CLASS_NAMES:
            return _CLASS_NAMES[text]
        if not text.lstrip("-").isdigit():
            return None
        value = int(text)
    try:
        code = int(value)
    except (TypeError, ValueError):
        return None
    return code if code in _LABELS else None


def read_corrections(data: bytes, name: str) -> pd.DataFrame:
    """Parse a corrections table (CSV or Parquet bytes; ``name`` for errors) into typed rows.

    ``class`` is 0/1/2 or thick/thin/water; ``x_from`` < ``x_to`` are along-track distances (m).

    Raises
    ------
    InputError
        Naming ``name`` and the first bad row (missing column, bad number, unknown class,
        x_from >= x_to).
    """
    frame = _read_table(data, name, CORRECTION_COLUMNS)
    codes = []
    for i, (value, x0, x1) in enumerate(zip(frame["class"], frame["x_from"], frame["x_to"], strict=True)):
        code = _class_code(value)
        if code is None:
            raise InputError(name, f"row {i}: class {value!r} is not 0/1/2 or thick/thin/water")
        try:
            a, b = float(x0), float(x1)
        except (TypeError, ValueError):
            raise InputError(name, f"row {i}: x_from/x_to {x0!r}/{x1!r} are not numbers") from None
        if not (math.isfinite(a) and math.isfinite(b) and a < b):
            raise InputError(name, f"row {i}: x_from {x0} must be < x_to {x1}")
        codes.append(code)
    frame["class"] = np.asarray(codes, dtype=np.uint8)
    frame["x_from"] = frame["x_from"].astype(np.float64)
    frame["x_to"] = frame["x_to"].astype(np.float64)
    frame["granule"] = frame["granule"].astype(str)
    frame["beam"] = frame["beam"].astype(str)
    frame.insert(0, "row", np.arange(len(frame), dtype=np.int64))
    return frame.reset_index(drop=True)


def check_corrections(frame: pd.DataFrame, name: str, day_granules: Mapping[str, bool]) -> Corrections:
    """Refuse the rows of a parsed corrections table that cannot apply to this day.

    ``day_granules`` maps every granule of the run's day to True; a row naming a granule whose
    key dates to the run's day but is not among them is refused (unknown granule), rows of other
    days are ignored silently (one table may cover a season).  Rows whose intervals overlap
    another row of the same track are refused, both of them (which one wins is not knowable).
    """
    refused: list[dict[str, Any]] = []
    days = {g[:8] for g in day_granules}
    today = frame["granule"].str[:8].isin(days)
    frame = frame.loc[today]
    unknown = ~frame["granule"].isin(list(day_granules))
    for row in frame.loc[unknown].itertuples():
        refused.append({"table": name, "row": int(row.row),
                        "reason": f"{name}: row {row.row}: unknown granule {row.granule} (no 2 m track of it)"})
    frame = frame.loc[~unknown]
    bad: set[int] = set()
    for (_, _), grp in frame.groupby(["granule", "beam"], sort=True):
        g = grp.sort_values(["x_from", "row"])
        x0, x1, rows = g["x_from"].to_numpy(), g["x_to"].to_numpy(), g["row"].to_numpy()
        reach = np.maximum.accumulate(x1)
        overlap = np.flatnonzero(x0[1:] < reach[:-1]) + 1
        for j in overlap:
            other = int(rows[int(np.flatnonzero(x1[:j] > x0[j])[0])])
            for r, o in ((int(rows[j]), other), (other, int(rows[j]))):
                if r not in bad:
                    bad.add(r)
                    refused.append({"table": name, "row": r,
                                    "reason": f"{name}: row {r}: interval overlaps row {o} of the same track"})
    frame = frame.loc[~frame["row"].isin(sorted(bad))]
    return Corrections(frame.reset_index(drop=True), tuple(sorted(refused, key=lambda d: d["row"])))


def mixed_pixels(labels: U8) -> npt.NDArray[np.bool_]:
    """Pixels whose 3 x 3 neighbourhood holds another value than their own (nodata counts).

    A 10 m pixel at a class edge, or on a feature a few pixels wide, mixes classes: its colour
    label is the least trustworthy.

    Examples
    --------
    >>> mixed_pixels(np.array([[0, 0, 0, 0], [0, 0, 2, 0], [0, 0, 0, 0], [0, 0, 0, 0]], np.uint8)).astype(int)
    array([[0, 1, 1, 1],
           [0, 1, 1, 1],
           [0, 1, 1, 1],
           [0, 0, 0, 0]])
    """
    from scipy.ndimage import maximum_filter, minimum_filter

    values = np.asarray(labels, dtype=np.uint8)
    return np.asarray(maximum_filter(values, size=3, mode="nearest")
                      != minimum_filter(values, size=3, mode="nearest"), dtype=bool)


def evidence_labels(s2: U8, mixed: npt.ArrayLike, evidence: U8) -> tuple[U8, npt.NDArray[np.bool_]]:
    """Labels where the photons agree (``label_policy="evidence"``), and which came from the photons alone.

    Parameters
    ----------
    s2 : ndarray of uint8
        The image's label of each segment (0 thick, 1 thin, 2 water, 255 none).
    mixed : array_like of bool
        The segment's pixel mixes classes (:func:`mixed_pixels`).
    evidence : ndarray of uint8
        The photon evidence class of each segment (0, 1, 2).

    Returns
    -------
    labels : ndarray of uint8
        Open water where the evidence says water (whatever the image says: narrow leads are
        ice or mixed in it); thin ice where the image and the evidence agree; thick ice where a
        pure pixel and the evidence agree; 255 elsewhere (the image's water the photons do not
        confirm, disagreements, mixed thick pixels).
    from_photons : ndarray of bool
        Segments labelled water against (or without) the image's label.

    Examples
    --------
    >>> labels, photons = evidence_labels(np.array([0, 0, 1, 1, 2, 255, 0], np.uint8),
    ...                                   np.array([0, 1, 0, 0, 0, 0, 0], bool),
    ...                                   np.array([0, 0, 1, 0, 0, 2, 2], np.uint8))
    >>> labels.tolist(), photons.tolist()
    ([0, 255, 1, 255, 255, 2, 2], [False, False, False, False, False, True, True])
    >>> evidence_labels(np.array([1, 0], np.uint8), np.array([1, 1], bool), np.array([1, 0], np.uint8))[0].tolist()
    [1, 255]
    """
    s2 = np.asarray(s2, dtype=np.uint8)
    ev = np.asarray(evidence, dtype=np.uint8)
    pure = ~np.asarray(mixed, dtype=bool)
    water = ev == SeaIceClass.OPEN_WATER
    # thin ice: the image and the photons agreeing is enough (thin ice borders leads, so most of its
    # pixels are mixed); thick ice also needs a pure pixel (a mixed "thick" pixel is often a lead edge)
    ice_agrees = (pure | (ev == SeaIceClass.THIN_ICE)) & (s2 == ev) & (s2 != SeaIceClass.OPEN_WATER) \
        & (s2 != _UNLABELED)
    out = np.full(s2.shape, _UNLABELED, dtype=np.uint8)
    out[ice_agrees] = s2[ice_agrees]
    out[water] = np.uint8(SeaIceClass.OPEN_WATER)
    return out, water & (s2 != SeaIceClass.OPEN_WATER)


def apply_corrections(labels: U8, x_atc_m: npt.NDArray[np.float64],
                      rows: pd.DataFrame) -> tuple[U8, npt.NDArray[np.int32], list[int]]:
    """Set the label of every segment whose bin centre is in a correction interval [x_from, x_to).

    Returns the new labels, the table row applied to each segment (-1 none) and the table rows
    that changed or confirmed at least one segment.  Idempotent.

    Examples
    --------
    >>> rows = pd.DataFrame({"row": [4], "x_from": [2.0], "x_to": [6.0], "class": [2]})
    >>> lab, which, used = apply_corrections(np.zeros(4, np.uint8), np.array([0.0, 2, 4, 6]), rows)
    >>> lab.tolist(), which.tolist(), used
    ([0, 2, 2, 0], [-1, 4, 4, -1], [4])
    """
    out = labels.copy()
    which = np.full(labels.shape, -1, dtype=np.int32)
    used = []
    centre = np.asarray(x_atc_m, dtype=np.float64) + 1.0
    table = zip(rows["row"].to_numpy(), rows["x_from"].to_numpy(), rows["x_to"].to_numpy(),
                rows["class"].to_numpy(), strict=True)
    for number, x0, x1, code in table:  # one vectorised pass per correction row
        sel = (centre >= x0) & (centre < x1)
        if sel.any():
            out[sel] = np.uint8(code)
            which[sel] = int(number)
            used.append(int(number))
    return out, which, used


def read_drift_overrides(data: bytes, name: str) -> pd.DataFrame:
    """Parse a manual drift table (granule, beam, scene, dx, dy, author, note; dx/dy EPSG:3976 m).

    Raises
    ------
    InputError
        Naming ``name`` and the first bad row (missing column, non-numeric shift, a pair listed
        twice).
    """
    frame = _read_table(data, name, OVERRIDE_COLUMNS)
    for i, (dx, dy) in enumerate(zip(frame["dx"], frame["dy"], strict=True)):
        try:
            ok = math.isfinite(float(dx)) and math.isfinite(float(dy))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise InputError(name, f"row {i}: dx/dy {dx!r}/{dy!r} are not finite numbers (m)")
    frame["dx"] = frame["dx"].astype(np.float64)
    frame["dy"] = frame["dy"].astype(np.float64)
    for col in ("granule", "beam", "scene"):
        frame[col] = frame[col].astype(str)
    dup = frame.duplicated(["granule", "beam", "scene"], keep="first")
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise InputError(name, f"row {i}: pair {frame.at[i, 'granule']}/{frame.at[i, 'beam']}/"
                         f"{frame.at[i, 'scene']} listed twice")
    frame.insert(0, "row", np.arange(len(frame), dtype=np.int64))
    return frame
