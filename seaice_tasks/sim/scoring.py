"""Score committed products against the simulator's truth (the demo summary, tests).

The simulator writes, beside every granule and scene, the truth the pipeline never reads:
per-2 m-bin surfaces and signal-photon counts (``*_truth_bins.parquet``) and per-pixel classes
(``truth/<scene>/classes.tif``).  These functions compare lake partitions with them.

* 2 m segments: ``h_cor_mean_m`` is height minus MSS, tides and first-photon bias
  (docs/segments_2m.md), so its truth is ``dac_m + residual_m + freeboard_m`` of the bin
  (the sea-surface anomaly the corrections leave, plus the freeboard).
* Sentinel-2 labels: pixel accuracy on the pixels both the product and the truth label.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = ["SegmentScore", "score_segments", "score_labels", "expected_h_cor_m", "truth_classes", "score_classes",
           "freeboard_truth", "score_freeboard", "SECTION_M",
           "score_label_transfer", "truth_bins_by_granule"]

#: Truth class of a segment without a truth bin.
_NO_TRUTH: Final[int] = 255


@dataclass(frozen=True)
class SegmentScore:
    """Corrected 2 m heights of one (granule, beam) against the truth.

    Attributes
    ----------
    n_bins : int
        Output bins matched to a truth bin (every output bin should match).
    n_unmatched : int
        Output bins with no truth bin at their ``x_atc_m``.
    rmse_m, bias_m, median_abs_m : float
        Root-mean-square, photon-weighted mean and median absolute error of ``h_cor_mean_m`` (m).
    noise_m : float
        The photon-noise floor of the RMSE: ``jitter_m * sqrt(mean(1 / n_photons))`` (m).
    photons, truth_photons : int
        Selected photons in the bins and the truth's surface-signal photons there.
    """

    n_bins: int
    n_unmatched: int
    rmse_m: float
    bias_m: float
    median_abs_m: float
    noise_m: float
    photons: int
    truth_photons: int


def expected_h_cor_m(truth_bins: pd.DataFrame) -> pd.Series:
    """What ``h_cor_mean_m`` should be for each truth bin (m): DAC + residual + freeboard."""
    return truth_bins["dac_m"] + truth_bins["residual_m"] + truth_bins["freeboard_m"]


def score_segments(segments: pd.DataFrame, truth_bins: pd.DataFrame, beam: str, jitter_m: float) -> SegmentScore:
    """Compare one beam's 2 m segments with its truth bins (matched on ``x_atc_m``).

    Parameters
    ----------
    segments : pandas.DataFrame
        A ``segments_2m`` partition (``x_atc_m``, ``h_cor_mean_m``, ``n_photons``).
    truth_bins : pandas.DataFrame
        The granule's ``*_truth_bins.parquet`` (all beams).
    beam : str
        The partition's beam.
    jitter_m : float
        Per-photon height noise of the simulator (m), for the noise floor.
    """
    truth = truth_bins.loc[truth_bins["beam"] == beam, ["x_atc_m", "dac_m", "residual_m", "freeboard_m",
                                                         "n_signal_photons"]]
    seg = segments[["x_atc_m", "h_cor_mean_m", "n_photons"]].copy()
    seg["x_atc_m"] = np.round(seg["x_atc_m"].to_numpy(dtype=np.float64)).astype(np.int64)
    m = seg.merge(truth, on="x_atc_m", how="inner", validate="1:1")
    if m.empty:
        nan = math.nan
        return SegmentScore(0, len(seg), nan, nan, nan, nan, 0, 0)
    err = m["h_cor_mean_m"].to_numpy() - expected_h_cor_m(m).to_numpy()
    n = m["n_photons"].to_numpy(dtype=np.float64)
    return SegmentScore(
        n_bins=len(m),
        n_unmatched=len(seg) - len(m),
        rmse_m=float(np.sqrt(np.mean(err**2))),
        bias_m=float(np.average(err, weights=n)),
        median_abs_m=float(np.median(np.abs(err))),
        noise_m=float(jitter_m * np.sqrt(np.mean(1.0 / n))),
        photons=int(n.sum()),
        truth_photons=int(m["n_signal_photons"].sum()),
    )


def score_labels(labels: npt.ArrayLike, truth_classes: str | Path | npt.ArrayLike) -> dict[str, Any]:
    """Pixel accuracy, per-class IoU and coverage of a label raster against the truth classes.

    ``truth_classes`` is the truth raster or the path of ``classes.tif``; 255 is unlabeled in
    both (see :func:`seaice_tasks.metrics.evaluate`).
    """
    from seaice_tasks.metrics import evaluate

    if isinstance(truth_classes, str | Path):
        import rasterio

        with rasterio.open(truth_classes) as ds:
            truth = np.asarray(ds.read(1))
    else:
        truth = np.asarray(truth_classes)
    return evaluate(truth, np.asarray(labels))


def truth_bins_by_granule(truth_dir: Path) -> dict[str, pd.DataFrame]:
    """Every granule's truth bins in a simulated day's truth folder, by granule key.

    The files are ``ATL03_<YYYYMMDDhhmmss>_<RRRRCCSS>_..._truth_bins.parquet``.
    """
    return {p.name.split("_")[1] + "_" + p.name.split("_")[2]: pd.read_parquet(p)
            for p in sorted(Path(truth_dir).glob("ATL03_*_truth_bins.parquet"))}


def truth_classes(segments: pd.DataFrame, truth_bins: pd.DataFrame, beam: str) -> npt.NDArray[np.uint8]:
    """The truth class of each segment (matched on ``x_atc_m``; 255 where no truth bin)."""
    truth = truth_bins.loc[truth_bins["beam"] == beam, ["x_atc_m", "class"]].rename(columns={"x_atc_m": "xk"})
    xk = pd.DataFrame({"xk": np.round(segments["x_atc_m"].to_numpy(dtype=np.float64)).astype(np.int64)})
    merged = xk.merge(truth, on="xk", how="left", validate="m:1")
    return np.asarray(merged["class"].fillna(255).to_numpy(), dtype=np.uint8)


def score_label_transfer(truth: npt.ArrayLike, labels: npt.ArrayLike) -> dict[str, Any]:
    """Transferred 2 m labels against the truth classes: agreement, per-class precision/recall, labelled fraction.

    ``accuracy`` is over the labelled segments (the issue's "overall agreement"); ``labelled``
    the fraction of segments with a label; precision/recall per class code (None when undefined).

    Examples
    --------
    >>> s = score_label_transfer([0, 0, 1, 2], [0, 255, 1, 1])
    >>> round(s["accuracy"], 3), s["labelled"], s["recall"][2], s["precision"][1]
    (0.667, 0.75, 0.0, 0.5)
    """
    from seaice_tasks.metrics import evaluate, per_class_precision, per_class_recall

    out = evaluate(np.asarray(truth), np.asarray(labels))
    cm = np.asarray(out["confusion_matrix"])

    def by_class(values: npt.NDArray[np.float64]) -> dict[int, float | None]:
        return {int(c): (float(v) if np.isfinite(v) else None) for c, v in zip(out["classes"], values, strict=True)}

    return {"accuracy": out["pixel_accuracy"], "labelled": out["coverage"], "n_segments": out["n_truth"],
            "n_labelled": out["n_evaluated"], "precision": by_class(per_class_precision(cm)),
            "recall": by_class(per_class_recall(cm)), "confusion_matrix": out["confusion_matrix"]}


def score_classes(tracks: Iterable[tuple[pd.DataFrame, npt.ArrayLike]]) -> dict[str, Any] | None:
    """Classified segments against truth: the classification report and the flagged fraction.

    Parameters
    ----------
    tracks : iterable of (frame, truth)
        Per track: a ``segments_classified`` table (``window_valid``, ``class``) and the truth
        class of each of its rows (:func:`truth_classes`; 255 where none).

    Returns
    -------
    dict or None
        :func:`seaice_tasks.metrics.classification_report` over the rows with a prediction and a
        truth class, plus ``flagged_fraction`` (rows without a full window / all rows); None
        without any track.
    """
    from seaice_tasks.metrics import classification_report

    truths, preds, flagged, total = [], [], 0, 0
    for frame, truth in tracks:
        t = np.asarray(truth)
        valid = frame["window_valid"].to_numpy()
        ok = valid & (t != _NO_TRUTH)
        truths.append(t[ok])
        preds.append(frame["class"].to_numpy()[ok])
        flagged += int((~valid).sum())
        total += len(frame)
    if not truths:
        return None
    report = classification_report(np.concatenate(truths), np.concatenate(preds))
    report["flagged_fraction"] = flagged / total if total else None
    return report


#: Length of the sea-surface sections scored against the truth (m): ATL10's 10 km.
SECTION_M: Final[float] = 10_000.0
#: Freeboard of the truth's open water (m).
_ICE_CLASSES: Final[tuple[int, int]] = (0, 1)


def _rmse(v: npt.ArrayLike) -> float | None:
    a = np.asarray(v, dtype=np.float64)
    a = a[np.isfinite(a)]
    return float(np.sqrt(np.mean(a**2))) if a.size else None


def _mean(v: npt.ArrayLike) -> float | None:
    a = np.asarray(v, dtype=np.float64)
    a = a[np.isfinite(a)]
    return float(a.mean()) if a.size else None


def freeboard_truth(frame: pd.DataFrame, truth_bins: pd.DataFrame, beam: str) -> pd.DataFrame:
    """Truth of each row of a ``freeboard`` track: class, sea surface and freeboard (matched on ``x_atc_m``).

    The truth's sea surface on the 2 m heights' datum is ``dac_m + residual_m`` (what the
    corrections leave of the instantaneous sea surface, :func:`expected_h_cor_m`).
    """
    truth = truth_bins.loc[truth_bins["beam"] == beam, ["x_atc_m", "class", "dac_m", "residual_m", "freeboard_m"]]
    truth = truth.rename(columns={"x_atc_m": "xk", "class": "truth_class", "freeboard_m": "truth_freeboard_m"})
    xk = pd.DataFrame({"xk": np.round(frame["x_atc_m"].to_numpy(dtype=np.float64)).astype(np.int64)})
    m = xk.merge(truth, on="xk", how="left", validate="m:1")
    return pd.DataFrame({
        "truth_class": m["truth_class"].fillna(_NO_TRUTH).to_numpy().astype(np.uint8),
        "truth_surface_m": (m["dac_m"] + m["residual_m"]).to_numpy(dtype=np.float64),
        "truth_freeboard_m": m["truth_freeboard_m"].to_numpy(dtype=np.float64),
    })


def score_freeboard(tracks: Iterable[tuple[pd.DataFrame, pd.DataFrame, str, pd.DataFrame | None]]) -> dict[str, Any]:
    """Sea surface and freeboard of ``freeboard`` tracks against the truth, and ATL10 beside ours.

    Parameters
    ----------
    tracks : iterable of (frame, truth_bins, beam, atl10)
        A ``freeboard`` track (ascending ``x_atc_m``), its granule's truth bins, the beam and the
        (simulated) ATL10 freeboard segments of the beam (``seg_dist_x``, ``beam_fb_height``,
        ``height_segment_length_seg``) or None.

    Returns
    -------
    dict
        ``sea_surface``: bias and RMSE over 10 km sections (absolute grid) of the section-mean
        error of ``surface_m`` (m), the per-segment RMSE and ``z_rms``, the RMS of the error over
        ``surface_sigma_m`` (about 1 when the uncertainty column is honest); ``freeboard_ice``: RMSE of the 2 m
        freeboard on truth-ice segments, RMSE of the 2 m heights themselves on the same
        segments and their ratio; ``atl10_extent``: ours averaged to each ATL10 segment's extent
        and ATL10, both against the truth averaged the same way, overall and per majority truth
        class (``thick``, ``thin``, ``water``).
    """
    from seaice_tasks.alongtrack import segment_means

    section_err: list[float] = []
    seg_err: list[npt.NDArray[np.float64]] = []
    z: list[npt.NDArray[np.float64]] = []
    fb_err: list[npt.NDArray[np.float64]] = []
    h_err: list[npt.NDArray[np.float64]] = []
    ext: dict[str, list[npt.NDArray[np.float64]]] = {"ours": [], "atl10": [], "cls": []}
    for frame, truth_bins, beam, atl10 in tracks:
        t = freeboard_truth(frame, truth_bins, beam)
        x = frame["x_atc_m"].to_numpy(dtype=np.float64)
        err_s = frame["surface_m"].to_numpy(dtype=np.float64) - t["truth_surface_m"].to_numpy()
        seg_err.append(err_s)
        sigma_s = frame["surface_sigma_m"].to_numpy(dtype=np.float64)
        z.append(np.where(sigma_s > 0, err_s / np.where(sigma_s > 0, sigma_s, 1.0), np.nan))
        sections = np.floor(x / SECTION_M).astype(np.int64)
        for s in np.unique(sections):
            e = err_s[(sections == s) & np.isfinite(err_s)]
            if e.size:
                section_err.append(float(e.mean()))
        ice = np.isin(t["truth_class"].to_numpy(), _ICE_CLASSES)
        fb = frame["freeboard_m"].to_numpy(dtype=np.float64)
        truth_fb = t["truth_freeboard_m"].to_numpy()
        fb_err.append((fb - truth_fb)[ice])
        h_true = t["truth_surface_m"].to_numpy() + truth_fb
        h_err.append((frame["h_cor_mean_m"].to_numpy(dtype=np.float64) - h_true)[ice & np.isfinite(fb)])
        if atl10 is not None and len(atl10):
            a = atl10.loc[(atl10["seg_dist_x"] >= x[0]) & (atl10["seg_dist_x"] <= x[-1])]
            c = a["seg_dist_x"].to_numpy(dtype=np.float64)
            length = a["height_segment_length_seg"].to_numpy(dtype=np.float64)
            length = np.where(np.isfinite(length) & (length > 0), length, 20.0)
            tb = truth_bins.loc[truth_bins["beam"] == beam].sort_values("x_atc_m")
            tx = tb["x_atc_m"].to_numpy(dtype=np.float64)
            truth_mean, _ = segment_means(tx, tb["freeboard_m"].to_numpy(dtype=np.float64), c, length)
            ours_mean, _ = segment_means(x, fb, c, length)
            cls_votes = [segment_means(tx, (tb["class"].to_numpy() == k).astype(np.float64), c, length)[0]
                         for k in (0, 1, 2)]
            ext["ours"].append(ours_mean - truth_mean)
            ext["atl10"].append(a["beam_fb_height"].to_numpy(dtype=np.float64) - truth_mean)
            ext["cls"].append(np.argmax(np.nan_to_num(np.vstack(cls_votes), nan=-1.0), axis=0).astype(np.float64))

    def cat(parts: list[npt.NDArray[np.float64]]) -> npt.NDArray[np.float64]:
        return np.concatenate(parts) if parts else np.empty(0)

    fb_all, h_all = cat(fb_err), cat(h_err)
    fb_rmse, h_rmse = _rmse(fb_all), _rmse(h_all)
    out: dict[str, Any] = {
        "sea_surface": {"sections": len(section_err), "bias_m": _mean(section_err),
                        "section_rmse_m": _rmse(section_err), "segment_rmse_m": _rmse(cat(seg_err)),
                        "z_rms": _rmse(cat(z))},
        "freeboard_ice": {"n": int(np.isfinite(fb_all).sum()), "rmse_m": fb_rmse, "bias_m": _mean(fb_all),
                          "height_rmse_m": h_rmse,
                          "ratio": (fb_rmse / h_rmse) if fb_rmse is not None and h_rmse else None},
    }
    if ext["ours"]:
        ours, atl10, cls = cat(ext["ours"]), cat(ext["atl10"]), cat(ext["cls"])
        both = np.isfinite(ours) & np.isfinite(atl10)
        per: dict[str, Any] = {}
        for name, sel in (("all", both), *((n, both & (cls == k)) for k, n in enumerate(("thick", "thin", "water")))):
            per[name] = {"n": int(sel.sum()), "ours_rmse_m": _rmse(ours[sel]), "atl10_rmse_m": _rmse(atl10[sel]),
                         "ours_bias_m": _mean(ours[sel]), "atl10_bias_m": _mean(atl10[sel])}
        out["atl10_extent"] = per
    return out
