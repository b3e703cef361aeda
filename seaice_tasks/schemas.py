"""Arrow schemas of every table that crosses a stage boundary, with units in field metadata.

Each field carries ``unit`` and ``description`` metadata; :func:`validate_table` is called on
write (storage) and may be called on read, so a stage never hands on a table of the wrong shape.
"""

from __future__ import annotations

from typing import Final

import pyarrow as pa

from seaice_tasks.errors import SchemaError

__all__ = [
    "field",
    "validate_table",
    "units_of",
    "INVENTORY_SCHEMA",
]


def field(name: str, type_: pa.DataType, unit: str, description: str, *, nullable: bool = True) -> pa.Field:
    """An Arrow field with ``unit`` and ``description`` metadata.

    Examples
    --------
    >>> field("h_m", pa.float32(), "m", "height").metadata[b"unit"]
    b'm'
    """
    return pa.field(name, type_, nullable=nullable, metadata={"unit": unit, "description": description})


def units_of(schema: pa.Schema) -> dict[str, str]:
    """Mapping column -> unit of a schema built with :func:`field`."""
    return {f.name: (f.metadata or {}).get(b"unit", b"").decode() for f in schema}


def validate_table(table: pa.Table, schema: pa.Schema, *, where: str) -> pa.Table:
    """Check and cast ``table`` to ``schema`` (column names, order, safe casts, nulls).

    Parameters
    ----------
    table : pyarrow.Table
        Table to check.
    schema : pyarrow.Schema
        Expected schema (field metadata is attached to the result).
    where : str
        File or stage named in errors.

    Raises
    ------
    SchemaError
        On missing or extra columns, an unsafe cast, or nulls in a non-nullable column.
    """
    names = set(table.column_names)
    expected = [f.name for f in schema]
    missing = [n for n in expected if n not in names]
    extra = sorted(names - set(expected))
    if missing or extra:
        raise SchemaError(f"{where}: columns differ from schema (missing {missing}, extra {extra})")
    original_meta = dict(table.schema.metadata or {})
    table = table.select(expected)
    for f in schema:
        if not f.nullable and table.column(f.name).null_count:
            raise SchemaError(f"{where}: column {f.name} has nulls but is not nullable")
    try:
        table = table.cast(schema, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
        raise SchemaError(f"{where}: cannot cast to schema ({exc})") from exc
    meta = original_meta
    meta.update(schema.metadata or {})
    return table.replace_schema_metadata(meta or None)


#: One raw input of a day, as found by discovery in a catalog (product ``inventory``, :mod:`seaice_tasks.products`).
INVENTORY_SCHEMA: Final[pa.Schema] = pa.schema(
    [
        field("kind", pa.string(), "", "ATL03, ATL07, ATL10 or S2", nullable=False),
        field("uri", pa.string(), "", "URL or absolute path of the file (S2: folder of band files)",
              nullable=False),
        field("item", pa.string(), "", "granule key YYYYMMDDhhmmss_RRRRCCSS or S2 scene key", nullable=False),
        field("start_utc", pa.timestamp("us", tz="UTC"), "UTC", "acquisition start from the name",
              nullable=False),
        field("rgt", pa.int16(), "", "ICESat-2 reference ground track"),
        field("cycle", pa.int16(), "", "ICESat-2 orbit cycle"),
        field("region", pa.int8(), "", "ICESat-2 granule region"),
        field("release", pa.int16(), "", "ICESat-2 product release"),
        field("tile", pa.string(), "", "Sentinel-2 MGRS tile (without T)"),
        field("size_bytes", pa.int64(), "byte", "file size (S2: sum of the band files)", nullable=False),
    ],
    metadata={"seaice_schema": "inventory/1"},
)


#: 2 m along-track segments of one ATL03 beam (product ``segments_2m``; seaice_tasks.is2.resample,
#: columns documented in docs/segments_2m.md).
SEGMENTS_2M_SCHEMA: Final[pa.Schema] = pa.schema(
    [
        field("granule", pa.string(), "", "ATL03 granule key YYYYMMDDhhmmss_RRRRCCSS", nullable=False),
        field("beam", pa.string(), "", "beam group gt1l..gt3r", nullable=False),
        field("bin_index", pa.int64(), "", "floor(x_atc / bin size); x_atc_m / 2 for 2 m bins", nullable=False),
        field("x_atc_m", pa.float64(), "m", "along-track distance of the bin START from the equator crossing",
              nullable=False),
        field("lat_deg", pa.float64(), "deg", "mean photon latitude"),
        field("lon_deg", pa.float64(), "deg", "mean photon longitude (wrap-safe), -180..180"),
        field("delta_time_s", pa.float64(), "s", "mean photon time, seconds since the ATLAS SDP epoch (GPS)"),
        field("time_utc", pa.timestamp("ns", tz="UTC"), "UTC", "mean photon time, UTC (leap seconds removed)"),
        field("n_photons", pa.int32(), "photon", "selected photons in the bin (>= 1)", nullable=False),
        field("single_photon", pa.bool_(), "", "bin holds one photon (h_std_m = 0)", nullable=False),
        field("h_mean_m", pa.float64(), "m", "mean photon height above WGS84 (h_ph)"),
        field("h_median_m", pa.float64(), "m", "median photon height above WGS84"),
        field("h_std_m", pa.float64(), "m", "population standard deviation of photon heights"),
        *[
            field(f"{aux}_{stat}", pa.float64(), unit, f"{label} of {desc} over the bin's photons")
            for aux, unit, desc in (
                ("pcnt", "photon/shot", "photons (any confidence) of each photon's shot"),
                ("pcnth", "photon/shot", "signal photons (conf >= threshold) of each photon's shot"),
                ("bcnt", "count", "bckgrd_atlas counts of each photon's 50-shot window"),
                ("brate", "count/s", "bckgrd_atlas background rate of each photon's 50-shot window"),
            )
            for stat, label in (("mean", "mean"), ("sd", "population std"), ("median", "median"))
        ],
        field("bckgrd_missing", pa.bool_(), "", "no bckgrd_atlas: bcnt_*/brate_* are NaN", nullable=False),
        field("mss_m", pa.float64(), "m", "mean sea surface (dem_h where dem_flag == 3) at the bin centre"),
        field("tide_ocean_m", pa.float64(), "m", "ocean tide at the bin centre"),
        field("tide_equilibrium_m", pa.float64(), "m", "long-period equilibrium tide at the bin centre"),
        field("tide_paper_m", pa.float64(), "m",
              "authors' tide: earth + load + ocean + pole + ocean-pole + equilibrium tides"),
        field("dac_m", pa.float64(), "m", "dynamic atmosphere correction at the bin centre (not subtracted)"),
        field("geoid_m", pa.float64(), "m", "geoid height at the bin centre (not subtracted)"),
        field("solar_elevation_deg", pa.float64(), "deg", "solar elevation at the bin centre"),
        field("solar_azimuth_deg", pa.float64(), "deg", "solar azimuth at the bin centre, 0..360"),
        field("corrections_missing", pa.bool_(), "", "a subtracted correction is NaN: h_cor_* are NaN",
              nullable=False),
        field("fpb_corr_m", pa.float64(), "m", "first-photon-bias correction (0 without CAL-19 tables)"),
        field("fpb_available", pa.bool_(), "", "CAL-19 tables were available", nullable=False),
        field("h_cor_mean_m", pa.float64(), "m", "h_mean_m minus MSS, tides and FPB (per config correction)"),
        field("h_cor_median_m", pa.float64(), "m", "h_median_m minus MSS, tides and FPB (per config correction)"),
        field("geometry", pa.binary(), "", "WKB point (lon_deg, lat_deg), EPSG:4326", nullable=False),
    ],
    metadata={"seaice_schema": "segments_2m/1"},
)
__all__ += ["SEGMENTS_2M_SCHEMA"]


#: One (granule, beam, scene) pair of the day (product ``s2_pairs``; seaice_tasks.is2.colocate,
#: docs/colocation.md): the stretch of the track a Sentinel-2 scene covers and the drift shift used.
PAIRS_SCHEMA: Final[pa.Schema] = pa.schema(
    [
        field("granule", pa.string(), "", "ATL03 granule key YYYYMMDDhhmmss_RRRRCCSS", nullable=False),
        field("beam", pa.string(), "", "beam group gt1l..gt3r", nullable=False),
        field("scene", pa.string(), "", "Sentinel-2 scene key YYYYMMDDThhmmss_Txxxxx", nullable=False),
        field("scene_crs", pa.string(), "", "CRS of the scene's label raster", nullable=False),
        field("dt_s", pa.float64(), "s", "median t_IS2 - t_S2 over the covered segments", nullable=False),
        field("x_atc_from_m", pa.float64(), "m", "first covered segment's x_atc (bin start)", nullable=False),
        field("x_atc_to_m", pa.float64(), "m", "last covered segment's x_atc (bin end)", nullable=False),
        field("overlap_m", pa.float64(), "m", "covered length: 2 m segments inside the valid footprint x 2 m",
              nullable=False),
        field("n_segments", pa.int64(), "", "segments inside the valid footprint", nullable=False),
        field("usable_fraction", pa.float64(), "", "fraction of covered segments on a usable (not cloud/shadow) "
                                                   "labelled pixel", nullable=False),
        field("n_labelled", pa.int64(), "", "segments labelled after the shift, trimming and corrections",
              nullable=False),
        field("n_leads", pa.int64(), "", "runs of S2 water/thin-ice segments along the track (drift signal)",
              nullable=False),
        field("shift_dx_m", pa.float64(), "m", "drift shift applied, EPSG:3976 x (ice moved by it from S2 to IS2)",
              nullable=False),
        field("shift_dy_m", pa.float64(), "m", "drift shift applied, EPSG:3976 y", nullable=False),
        field("shift_source", pa.string(), "", "estimated, override, or zero (no signal)", nullable=False),
        field("estimated_dx_m", pa.float64(), "m", "the search's best shift, EPSG:3976 x (NaN: no search)"),
        field("estimated_dy_m", pa.float64(), "m", "the search's best shift, EPSG:3976 y (NaN: no search)"),
        field("shift_confidence", pa.float64(), "", "peak correlation / best correlation > exclusion radius away "
                                                    "(1: no distinct peak)"),
        field("low_confidence", pa.bool_(), "", "no usable drift signal: the zero shift was used", nullable=False),
        field("agreement_before", pa.float64(), "", "S2 lead/ice vs photon lead/ice agreement at zero shift"),
        field("agreement_after", pa.float64(), "", "the same at the applied shift"),
        field("correlation_before", pa.float64(), "", "S2 lead indicator vs photon lowness correlation at zero shift"),
        field("correlation_after", pa.float64(), "", "the same at the applied shift"),
    ],
    metadata={"seaice_schema": "s2_pairs/1"},
)
__all__ += ["PAIRS_SCHEMA"]

#: Per-segment features of the classifiers (METHOD.md §5.4; seaice_tasks.is2.features).
FEATURE_FIELDS: Final[tuple[pa.Field, ...]] = (
    field("h_cor_mean_m", pa.float64(), "m", "corrected mean height (segments_2m)"),
    field("h_diff_m", pa.float64(), "m", "h_cor_mean_m - h_cor_median_m (mean-median asymmetry)"),
    field("rel_height_m", pa.float64(), "m", "h_cor_mean_m minus a label-free local reference (low percentile "
                                             "of the 10 km window)"),
    field("rel_height_labels_m", pa.float64(), "m", "authors' relative height: h_cor_mean_m minus the minimum "
                                                    "labelled-water height of the 10 km window (label leakage; "
                                                    "parity only)"),
    field("height_sd_m", pa.float64(), "m", "population std of photon heights (segments_2m h_std_m)"),
    field("pcnth_mean", pa.float64(), "photon/shot", "mean signal photons per shot"),
    field("pcnt_mean", pa.float64(), "photon/shot", "mean photons per shot"),
    field("bcnt_mean", pa.float64(), "count", "mean background counts per 50-shot window"),
    field("brate_mean", pa.float64(), "count/s", "mean background rate"),
    field("d_pcnt", pa.float64(), "photon/shot", "first along-track difference of pcnt_mean (paper's 6-feature set)"),
    field("d_brate", pa.float64(), "count/s", "first along-track difference of brate_mean (paper's 6-feature set)"),
    field("rate_rel", pa.float64(), "", "photon count over the running median count around it (2 km): the same "
                                        "under haze, on either beam strength, by day and night"),
    field("height_above_low_m", pa.float64(), "m", "h_cor_mean_m above a low percentile of the heights around it "
                                                   "(5 km): the local water level where a lead is near"),
    field("water_vote", pa.float64(), "", "share of the 5 bins around it at the water level with a dark or "
                                          "specular photon rate (seaice_tasks.is2.photon_evidence)"),
    field("brate_rel", pa.float64(), "", "background rate over its running median (2 km): dark surfaces reflect "
                                         "less sunlight; about 1 at night"),
)
__all__ += ["FEATURE_FIELDS"]

#: 2 m segments of one (granule, beam) under one Sentinel-2 scene with transferred labels and
#: features (product ``segments_labelled``; seaice_tasks.is2.label_transfer, docs/colocation.md).
SEGMENTS_LABELLED_SCHEMA: Final[pa.Schema] = pa.schema(
    [
        field("granule", pa.string(), "", "ATL03 granule key", nullable=False),
        field("beam", pa.string(), "", "beam group", nullable=False),
        field("scene", pa.string(), "", "Sentinel-2 scene key", nullable=False),
        field("bin_index", pa.int64(), "", "2 m bin index (x_atc_m / 2)", nullable=False),
        field("x_atc_m", pa.float64(), "m", "along-track distance of the bin start", nullable=False),
        field("lat_deg", pa.float64(), "deg", "mean photon latitude"),
        field("lon_deg", pa.float64(), "deg", "mean photon longitude"),
        field("dt_s", pa.float64(), "s", "t_IS2 - t_S2 of the segment"),
        field("pixel_row", pa.int32(), "", "label raster row looked up after the shift (-1 outside)",
              nullable=False),
        field("pixel_col", pa.int32(), "", "label raster column looked up after the shift (-1 outside)",
              nullable=False),
        field("label_s2", pa.uint8(), "", "colour label of the pixel (0 thick, 1 thin, 2 water, 255 unlabeled)",
              nullable=False),
        field("label_unet", pa.uint8(), "", "U-Net label of the pixel (255: none or not used)", nullable=False),
        field("label", pa.uint8(), "", "final label: the automatic label, photon refinement, manual corrections",
              nullable=False),
        field("label_source", pa.string(), "", "s2, unet, photons, manual or none", nullable=False),
        field("correction_row", pa.int32(), "", "row of the corrections table applied (-1: none)", nullable=False),
        field("n_photons", pa.int32(), "photon", "selected photons in the bin", nullable=False),
        *FEATURE_FIELDS,
        field("geometry", pa.binary(), "", "WKB point (lon_deg, lat_deg), EPSG:4326", nullable=False),
    ],
    metadata={"seaice_schema": "segments_labelled/1"},
)
__all__ += ["SEGMENTS_LABELLED_SCHEMA"]

#: Segments of a training set (product ``training_set``; seaice_tasks.is2.training_set): every
#: labelled segment of the windows, in track order, with the split of the windows centred on it.
TRAINING_SEGMENTS_SCHEMA: Final[pa.Schema] = pa.schema(
    [
        field("granule", pa.string(), "", "ATL03 granule key", nullable=False),
        field("beam", pa.string(), "", "beam group", nullable=False),
        field("scene", pa.string(), "", "Sentinel-2 scene the label came from", nullable=False),
        field("bin_index", pa.int64(), "", "2 m bin index", nullable=False),
        field("x_atc_m", pa.float64(), "m", "along-track distance of the bin start", nullable=False),
        field("label", pa.uint8(), "", "label (0 thick, 1 thin, 2 water)", nullable=False),
        field("block", pa.int64(), "", "along-track block index floor(x_atc / block length)", nullable=False),
        field("split", pa.int8(), "", "split of the window centred here: 0 train, 1 validation, 2 test, "
                                      "-1 not a window centre", nullable=False),
        *FEATURE_FIELDS,
    ],
    metadata={"seaice_schema": "training_set/1"},
)
__all__ += ["TRAINING_SEGMENTS_SCHEMA"]

#: Classes of every 2 m segment of a track (product ``segments_classified``;
#: seaice_tasks.is2.classify): the promoted model's class and probabilities where the segment
#: centres a full window, the raw (never normalised) values beside them.
SEGMENTS_CLASSIFIED_SCHEMA: Final[pa.Schema] = pa.schema(
    [
        field("granule", pa.string(), "", "ATL03 granule key", nullable=False),
        field("beam", pa.string(), "", "beam group", nullable=False),
        field("bin_index", pa.int64(), "", "2 m bin index (x_atc_m / 2)", nullable=False),
        field("x_atc_m", pa.float64(), "m", "along-track distance of the bin start", nullable=False),
        field("lat_deg", pa.float64(), "deg", "mean photon latitude"),
        field("lon_deg", pa.float64(), "deg", "mean photon longitude"),
        field("time_utc", pa.timestamp("ns", tz="UTC"), "UTC", "mean photon time"),
        field("n_photons", pa.int32(), "photon", "selected photons in the bin", nullable=False),
        field("window_valid", pa.bool_(), "", "the segment centres a full window of consecutive bins with finite "
                                              "features (else no prediction)", nullable=False),
        field("class", pa.uint8(), "", "predicted class: 0 thick, 1 thin, 2 water, 255 no prediction",
              nullable=False),
        field("p_thick", pa.float32(), "", "probability of thick ice (NaN: no prediction)"),
        field("p_thin", pa.float32(), "", "probability of thin ice (NaN: no prediction)"),
        field("p_water", pa.float32(), "", "probability of open water (NaN: no prediction)"),
        *FEATURE_FIELDS,
        field("geometry", pa.binary(), "", "WKB point (lon_deg, lat_deg), EPSG:4326", nullable=False),
    ],
    metadata={"seaice_schema": "segments_classified/1"},
)
__all__ += ["SEGMENTS_CLASSIFIED_SCHEMA"]

#: Sea surface, freeboard and thickness of every 2 m segment of one track (product ``freeboard``;
#: seaice_tasks.surface, docs/freeboard.md).
FREEBOARD_SCHEMA: Final[pa.Schema] = pa.schema(
    [
        field("granule", pa.string(), "", "ATL03 granule key", nullable=False),
        field("beam", pa.string(), "", "beam group", nullable=False),
        field("bin_index", pa.int64(), "", "2 m bin index (x_atc_m / 2)", nullable=False),
        field("x_atc_m", pa.float64(), "m", "along-track distance of the bin start", nullable=False),
        field("lat_deg", pa.float64(), "deg", "mean photon latitude"),
        field("lon_deg", pa.float64(), "deg", "mean photon longitude"),
        field("time_utc", pa.timestamp("ns", tz="UTC"), "UTC", "mean photon time"),
        field("n_photons", pa.int32(), "photon", "selected photons in the bin", nullable=False),
        field("class", pa.uint8(), "", "the classifier's class (0 thick, 1 thin, 2 water, 255 none); the surface's "
                                       "leads are its water the photons confirm (FreeboardConfig.leads)",
              nullable=False),
        field("h_cor_mean_m", pa.float64(), "m", "corrected mean height (segments_2m)"),
        field("height_sd_m", pa.float64(), "m", "population std of photon heights"),
        field("surface_minimum_m", pa.float64(), "m", "sea surface: lowest open-water height of the 10 km window"),
        field("surface_average_m", pa.float64(), "m", "sea surface: mean open-water height of the window"),
        field("surface_nearest_minimum_m", pa.float64(), "m", "sea surface: nearest of the window's 10 lowest "
                                                               "open-water heights"),
        field("surface_nasa_m", pa.float64(), "m", "sea surface: the window's leads combined by ATL10's Eq. 3, each "
                                                   "lead's height by weight_form (Eq. 2 with 'paper')"),
        field("surface_nasa_smooth_m", pa.float64(), "m", "running minimum of surface_nasa_m (paper figures)"),
        field("surface_leads_m", pa.float64(), "m", "lead heights (the median of each lead's segments by default) "
                                                    "smoothed along track, interpolated between leads"),
        field("surface_m", pa.float64(), "m", "the reference surface freeboard is measured from (config)"),
        field("surface_sigma_m", pa.float64(), "m", "uncertainty of the reference surface (Eq. 3, lead spread and "
                                                    "surface_sigma_floor_m)"),
        field("surface_flag", pa.uint8(), "", "0 own leads in the window, 1 interpolated, 2 extrapolated, "
                                              "3 no open water in the track", nullable=False),
        field("window_leads", pa.int32(), "", "leads in the segment's 10 km window", nullable=False),
        field("lead_distance_m", pa.float64(), "m", "along-track distance to the nearest open-water segment"),
        field("far_from_lead", pa.bool_(), "", "lead_distance_m above the config's limit (or no lead)",
              nullable=False),
        field("freeboard_m", pa.float64(), "m", "total freeboard h_cor_mean_m - surface_m"),
        field("freeboard_sigma_m", pa.float64(), "m", "freeboard uncertainty (segment and surface, in quadrature)"),
        field("snow_depth_m", pa.float64(), "m", "assumed snow depth (thickness config; ice segments)"),
        field("thickness_m", pa.float64(), "m", "hydrostatic ice thickness (ice segments; NaN otherwise)"),
        field("thickness_sigma_m", pa.float64(), "m", "thickness uncertainty (first-order propagation)"),
        field("geometry", pa.binary(), "", "WKB point (lon_deg, lat_deg), EPSG:4326", nullable=False),
    ],
    metadata={"seaice_schema": "freeboard/1"},
)
__all__ += ["FREEBOARD_SCHEMA"]
