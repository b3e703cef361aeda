"""Along-track aggregation of 2 m rows to longer segments (NASA's ATL07/ATL10 extents, sections).

Our 2 m rows and NASA's segments share the along-track coordinate of the reference ground track
(``x_atc_m`` = ATL07/ATL10 ``seg_dist_x``), so a NASA segment centred at ``c`` with length ``L``
covers our rows with ``c - L/2 <= x < c + L/2``.  Used by the validation stage and by the
simulator's scoring alike; :class:`SegmentMeans` gives the same means from rows that come in
along-track chunks.  Imports only numpy.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["segment_means", "SegmentMeans"]

FloatArray = npt.NDArray[np.float64]


def segment_means(x_m: npt.ArrayLike, values: npt.ArrayLike, centres_m: npt.ArrayLike,
                  lengths_m: npt.ArrayLike) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """Mean of the finite ``values`` of the rows within each segment ``centre +- length / 2``.

    Parameters
    ----------
    x_m : array_like of float
        Our rows' along-track distance (m), ascending.
    values : array_like of float
        Values of the rows (NaN: not counted).
    centres_m, lengths_m : array_like of float
        NASA segment centres and lengths (m).

    Returns
    -------
    means, counts : ndarray
        Mean per segment (NaN without rows) and the rows counted.

    Examples
    --------
    >>> segment_means([0.0, 2.0, 4.0, 6.0], [1.0, 3.0, np.nan, 5.0], [3.0], [6.0])
    (array([2.]), array([2]))
    """
    x = np.asarray(x_m, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    c = np.asarray(centres_m, dtype=np.float64)
    half = 0.5 * np.asarray(lengths_m, dtype=np.float64)
    ok = np.isfinite(v)
    csum = np.concatenate([[0.0], np.cumsum(np.where(ok, v, 0.0))])
    ccount = np.concatenate([[0], np.cumsum(ok.astype(np.int64))])
    lo = np.searchsorted(x, c - half, side="left")
    hi = np.searchsorted(x, c + half, side="left")
    counts = ccount[hi] - ccount[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, (csum[hi] - csum[lo]) / np.maximum(counts, 1), np.nan)
    return means, counts


class SegmentMeans:
    """:func:`segment_means` of rows given in consecutive ascending pieces (a track read in chunks).

    Keeps the running sum and count of the rows so far and, per segment end, the sum and count
    of the rows before it once a piece reaches past it: the very numbers (the same sums, added in
    the same order) that :func:`segment_means` takes from its cumulative sums over all rows.

    Examples
    --------
    >>> m = SegmentMeans([3.0], [6.0])
    >>> m.add([0.0, 2.0], [1.0, 3.0]); m.add([4.0, 6.0], [np.nan, 5.0])
    >>> m.result()
    (array([2.]), array([2]))
    """

    def __init__(self, centres_m: npt.ArrayLike, lengths_m: npt.ArrayLike) -> None:
        c = np.asarray(centres_m, dtype=np.float64)
        half = 0.5 * np.asarray(lengths_m, dtype=np.float64)
        self._bounds = np.concatenate([c - half, c + half])
        self._sums = np.full(self._bounds.size, np.nan)
        self._counts = np.full(self._bounds.size, -1, dtype=np.int64)
        self._sum = 0.0
        self._count = 0
        self._first = True

    def add(self, x_m: npt.ArrayLike, values: npt.ArrayLike) -> None:
        """The next rows (ascending ``x_m``, after the rows given so far) and their values (NaN: not counted)."""
        x = np.asarray(x_m, dtype=np.float64)
        if not x.size:
            return
        v = np.asarray(values, dtype=np.float64)
        ok = np.isfinite(v)
        w = np.where(ok, v, 0.0)
        csum = (np.concatenate([[0.0], np.cumsum(w)]) if self._first
                else np.cumsum(np.concatenate([[self._sum], w])))
        ccount = np.cumsum(np.concatenate([[self._count], ok.astype(np.int64)]))
        self._first = False
        pending = self._counts < 0
        k = np.searchsorted(x, self._bounds, side="left")
        found = pending & (k < x.size)
        self._sums[found] = csum[k[found]]
        self._counts[found] = ccount[k[found]]
        self._sum, self._count = float(csum[-1]), int(ccount[-1])

    def result(self) -> tuple[FloatArray, npt.NDArray[np.int64]]:
        """Mean per segment (NaN without rows) and the rows counted, as :func:`segment_means` gives them."""
        pending = self._counts < 0
        sums = np.where(pending, self._sum, self._sums)
        counts = np.where(pending, self._count, self._counts)
        m = sums.size // 2
        n = counts[m:] - counts[:m]
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(n > 0, (sums[m:] - sums[:m]) / np.maximum(n, 1), np.nan)
        return means, n
