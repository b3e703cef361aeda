"""Along-track aggregation of 2 m rows to longer segments (NASA's ATL07/ATL10 extents, sections).

Our 2 m rows and NASA's segments share the along-track coordinate of the reference ground track
(``x_atc_m`` = ATL07/ATL10 ``seg_dist_x``), so a NASA segment centred at ``c`` with length ``L``
covers our rows with ``c - L/2 <= x < c + L/2``.  Used by the validation stage and by the
simulator's scoring alike.  Imports only numpy.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["segment_means"]

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
