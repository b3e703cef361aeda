"""Freeboard quicklooks (seaice_tasks.surface.plots): PNG bytes, determinism, size, degenerate inputs."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from seaice_tasks.surface.plots import (
    HISTOGRAM_SIZE_PX,
    MAX_LINE_POINTS,
    QUICKLOOK_SIZE_PX,
    _bin_stats,
    _class_raster,
    freeboard_histogram,
    track_quicklook,
)

PNG = b"\x89PNG\r\n\x1a\n"
SURFACES = ("surface_minimum_m", "surface_average_m", "surface_nearest_minimum_m", "surface_nasa_m",
            "surface_nasa_smooth_m", "surface_leads_m")
X0_M = 12_340_000.0  # along-track distances are from the equator crossing (m)
TITLE = "20191104195311_05940510 gt2r 2019-11-04"


def ours_frame(length_m: float = 30_000.0, seed: int = 0) -> pd.DataFrame:
    """A synthetic ``freeboard`` track: 2 m rows, ice at ~0.3 m, a few leads at ~0 m, surfaces near 0."""
    rng = np.random.default_rng(seed)
    x = X0_M + np.arange(0.0, length_m, 2.0)
    rel = x - X0_M
    n = x.size
    cls = np.where(rng.random(n) < 0.3, 1, 0).astype(np.uint8)
    cls[rng.random(n) < 0.01] = 255
    ssh = 0.05 * np.sin(rel / 20_000.0)
    h = 0.3 + ssh + rng.normal(0.0, 0.08, n)
    for start, width in ((2_000, 120), (9_000, 60), (15_500, 300), (22_000, 40), (27_000, 200)):
        lead = (rel >= start) & (rel < start + width)
        cls[lead] = 2
        h[lead] = ssh[lead] + rng.normal(0.0, 0.02, int(lead.sum()))
    h[rng.random(n) < 0.001] = 8.0  # a few cloud blunders
    gap = (rel >= 18_000) & (rel < 18_600)  # no photons here
    keep = ~gap
    frame = pd.DataFrame({"x_atc_m": x, "h_cor_mean_m": h, "class": cls})[keep].reset_index(drop=True)
    s = 0.05 * np.sin((frame["x_atc_m"].to_numpy() - X0_M) / 20_000.0)
    frame["surface_minimum_m"] = s - 0.03
    frame["surface_average_m"] = s + 0.01
    frame["surface_nearest_minimum_m"] = s - 0.02
    frame["surface_nasa_m"] = s
    frame["surface_nasa_smooth_m"] = s - 0.005
    frame["surface_leads_m"] = s + 0.002
    frame["surface_m"] = frame["surface_nasa_m"]
    frame["freeboard_m"] = frame["h_cor_mean_m"] - frame["surface_m"]
    return frame


def atl07_frame(length_m: float = 30_000.0, offset_m: float = 0.2) -> pd.DataFrame:
    x = X0_M + np.arange(10.0, length_m, 35.0)
    rel = x - X0_M
    lead = ((rel >= 2_000) & (rel < 2_120)) | ((rel >= 15_500) & (rel < 15_800))
    h = np.where(lead, 0.0, 0.3) + 0.05 * np.sin(rel / 20_000.0) - offset_m
    return pd.DataFrame({
        "seg_dist_x": x,
        "height_segment_height": h,
        "height_segment_type": np.where(lead, 2, 1).astype(np.int8),
        "height_segment_ssh_flag": lead.astype(np.int8),
    })


def atl10_frames(length_m: float = 30_000.0, offset_m: float = 0.2) -> tuple[pd.DataFrame, pd.DataFrame]:
    x = X0_M + np.arange(10.0, length_m, 35.0)
    rel = x - X0_M
    ndx = (rel // 10_000).astype(np.int32) + 1
    surface = pd.DataFrame({"beam_refsurf_height": np.array([0.01, 0.03, 0.05]) - offset_m})
    fb = 0.3 + 0.05 * np.cos(rel / 3_000.0)
    return (pd.DataFrame({"seg_dist_x": x, "beam_fb_height": fb, "beam_refsurf_ndx": ndx,
                          "height_segment_height": fb + surface["beam_refsurf_height"].to_numpy()[ndx - 1]}),
            surface)


def photons_frame(start_m: float = 15_000.0, length_m: float = 1_500.0, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n_sig, n_bg = 12_000, 3_000
    xs = X0_M + start_m + rng.random(n_sig) * length_m
    rel = xs - X0_M
    hs = np.where((rel >= 15_500) & (rel < 15_800), 0.0, 0.3) + rng.normal(0.0, 0.1, n_sig)
    xb = X0_M + start_m + rng.random(n_bg) * length_m
    hb = rng.uniform(-15.0, 15.0, n_bg)
    return pd.DataFrame({"x_atc_m": np.concatenate([xs, xb]), "h_m": np.concatenate([hs, hb]),
                         "signal": np.concatenate([np.ones(n_sig, bool), np.zeros(n_bg, bool)])})


def size(png: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(png)) as image:
        image.load()
        return image.size


def full_quicklook(ours: pd.DataFrame) -> bytes:
    atl10, surface = atl10_frames()
    return track_quicklook(ours, title=TITLE, atl07=atl07_frame(), atl10=atl10, atl10_surface=surface,
                           photons=photons_frame(), datum_offset_m=0.2)


def test_quicklook_is_a_deterministic_png_of_bounded_size() -> None:
    ours = ours_frame()
    png = full_quicklook(ours)
    assert png[:8] == PNG
    assert full_quicklook(ours) == png
    width, height = size(png)
    assert (width, height) == QUICKLOOK_SIZE_PX[True]
    assert 1000 <= width <= 1600 and 900 <= height <= 1400


def test_quicklook_without_any_nasa_or_photons() -> None:
    png = track_quicklook(ours_frame(), title=TITLE)
    assert png[:8] == PNG
    assert size(png) == QUICKLOOK_SIZE_PX[False]
    assert size(png)[1] <= 1400


def test_quicklook_with_empty_nasa_and_photon_frames() -> None:
    empty07 = atl07_frame().iloc[:0]
    atl10, surface = atl10_frames()
    png = track_quicklook(ours_frame(), title=TITLE, atl07=empty07, atl10=atl10.iloc[:0],
                          atl10_surface=surface.iloc[:0], photons=photons_frame().iloc[:0])
    assert png[:8] == PNG
    assert size(png) == QUICKLOOK_SIZE_PX[True]
    # Empty frames without columns count as not available too.
    assert track_quicklook(ours_frame(), title=TITLE, atl07=pd.DataFrame(), atl10=pd.DataFrame())[:8] == PNG


def test_quicklook_atl10_without_its_surface() -> None:
    atl10, _ = atl10_frames()
    png = track_quicklook(ours_frame(), title=TITLE, atl10=atl10, atl10_surface=None, photons=photons_frame())
    assert png[:8] == PNG


def test_quicklook_track_without_open_water() -> None:
    ours = ours_frame()
    ours["class"] = np.where(ours["class"] == 2, 0, ours["class"]).astype(np.uint8)
    for column in (*SURFACES, "surface_m", "freeboard_m"):
        ours[column] = np.nan
    atl10, surface = atl10_frames()
    png = track_quicklook(ours, title=TITLE, atl07=atl07_frame(), atl10=atl10, atl10_surface=surface,
                          photons=photons_frame())
    assert png[:8] == PNG
    assert size(png) == QUICKLOOK_SIZE_PX[True]


def test_quicklook_of_an_empty_or_tiny_track() -> None:
    ours = ours_frame()
    assert track_quicklook(ours.iloc[:0], title=TITLE)[:8] == PNG
    assert track_quicklook(ours.iloc[:1], title=TITLE, photons=photons_frame())[:8] == PNG


def test_quicklook_sorts_ours_and_rejects_missing_columns() -> None:
    ours = ours_frame(length_m=4_000.0)
    shuffled = ours.sample(frac=1.0, random_state=3)
    assert track_quicklook(shuffled, title=TITLE) == track_quicklook(ours, title=TITLE)
    with pytest.raises(ValueError, match="freeboard_m"):
        track_quicklook(ours.drop(columns=["freeboard_m"]), title=TITLE)
    with pytest.raises(ValueError, match="atl07"):
        track_quicklook(ours, title=TITLE, atl07=atl07_frame().drop(columns=["height_segment_ssh_flag"]))


def test_quicklook_of_a_long_track() -> None:
    ours = ours_frame(length_m=1_000_000.0)  # 500,000 rows
    png = track_quicklook(ours, title=TITLE, atl07=atl07_frame(1_000_000.0))
    assert png[:8] == PNG


def test_bin_stats_caps_points_and_keeps_extremes() -> None:
    x = np.arange(0.0, 1_000_000.0, 2.0)
    y = np.zeros(x.size)
    y[123_457] = -1.0  # one 2 m lead row
    centres, mean, lo, hi = _bin_stats(x, y, 0.0, 1_000_000.0, MAX_LINE_POINTS)
    assert centres.size == mean.size == MAX_LINE_POINTS
    assert np.nanmin(lo) == -1.0 and np.nanmax(hi) == 0.0
    _, mean, _, _ = _bin_stats(x, np.full(x.size, np.nan), 0.0, 1_000_000.0, 10)
    assert np.isnan(mean).all()


def test_class_raster_fractions_and_gaps() -> None:
    x = np.arange(0.0, 40.0, 2.0)
    cls = np.array([0] * 5 + [2] * 5 + [1] * 5 + [255] * 5, dtype=np.uint8)
    raster = _class_raster(x, cls, 0.0, 80.0, 8, 4)  # 10 m columns: five rows each
    assert raster.shape == (4, 8, 3)
    colours = [tuple(raster[r, c]) for r, c in ((0, 0), (0, 1), (0, 2), (0, 3), (0, 7))]
    assert colours == [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)]
    mixed = _class_raster(x, cls, 0.0, 40.0, 2, 4)  # first column: half thick (top), half water
    assert [tuple(mixed[r, 0]) for r in range(4)] == [(1.0, 0.0, 0.0)] * 2 + [(0.0, 1.0, 0.0)] * 2


def histograms() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    edges = np.linspace(-0.2, 1.5, 86)
    centres = 0.5 * (edges[:-1] + edges[1:])
    ours = np.round(10_000 * np.exp(-0.5 * ((centres - 0.3) / 0.15) ** 2))
    atl10 = np.round(800 * np.exp(-0.5 * ((centres - 0.35) / 0.2) ** 2))
    return {"ours (2 m, ice)": (edges, ours), "ATL10": (edges, atl10)}


def test_histogram_is_a_deterministic_png() -> None:
    png = freeboard_histogram(histograms(), title="Freeboard 2019-11-04")
    assert png[:8] == PNG
    assert freeboard_histogram(histograms(), title="Freeboard 2019-11-04") == png
    assert size(png) == HISTOGRAM_SIZE_PX
    assert size(png)[0] <= 1600 and size(png)[1] <= 1400


def test_histogram_with_empty_counts() -> None:
    hists = histograms()
    hists["ATL10"] = (np.empty(0), np.empty(0))
    hists["zeros"] = (np.linspace(0.0, 1.0, 11), np.zeros(10))
    assert freeboard_histogram(hists, title="t")[:8] == PNG
    assert freeboard_histogram({"none": ([], [])}, title="t")[:8] == PNG
    assert freeboard_histogram({}, title="t")[:8] == PNG


def test_histogram_rejects_inconsistent_bins() -> None:
    with pytest.raises(ValueError, match="edges"):
        freeboard_histogram({"a": (np.linspace(0, 1, 5), np.ones(5))}, title="t")
    with pytest.raises(ValueError, match="increase"):
        freeboard_histogram({"a": (np.array([0.0, 0.5, 0.4]), np.ones(2))}, title="t")
