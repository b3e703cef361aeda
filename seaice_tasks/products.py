"""The product registry: every product the lake holds, its key shape, files and schemas.

Stage names, file names and schemas are imported from here only (CLI, demo, jobs, stages,
tests); ``docs/products.md`` lists the same products and a test checks the two agree.

A product's **key shape** says which key fields name one partition (:class:`KeyShape`):

======================  ==========================================  ===========================================
shape                   fields                                      path below the lake root
======================  ==========================================  ===========================================
day                     date                                        ``<product>/date=D``
granule                 date, granule                               ``<product>/date=D/granule=G``
track                   date, granule, beam                         ``<product>/date=D/granule=G/beam=B``
scene                   date, scene                                 ``<product>/date=D/scene=S``
pair                    date, granule, beam, scene                  ``<product>/date=D/granule=G/beam=B/scene=S``
model version           name, version                               ``<product>/name=N/version=V``
training-set version    name, version                               ``<product>/name=N/version=V``
======================  ==========================================  ===========================================

Examples
--------
>>> import datetime as dt
>>> SEGMENTS_2M.key(date=dt.date(2019, 11, 4), granule="20191104195311_05940510", beam="gt2r").relpath
'segments_2m/date=2019-11-04/granule=20191104195311_05940510/beam=gt2r'
>>> S2_LABELS.file(LABELS_FILE).raster.nodata
255
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any, Final, Literal

import pyarrow as pa

from seaice_tasks.constants import CLASS_COLOURS_RGB, SeaIceClass
from seaice_tasks.errors import StorageError
from seaice_tasks.schemas import (
    FREEBOARD_SCHEMA,
    INVENTORY_SCHEMA,
    PAIRS_SCHEMA,
    SEGMENTS_2M_SCHEMA,
    SEGMENTS_CLASSIFIED_SCHEMA,
    SEGMENTS_LABELLED_SCHEMA,
    TRAINING_SEGMENTS_SCHEMA,
)
from seaice_tasks.storage import KEY_FIELDS, PartitionKey

__all__ = [
    "KeyShape",
    "RasterSpec",
    "FileSpec",
    "Product",
    "DAY",
    "GRANULE",
    "TRACK",
    "SCENE",
    "PAIR",
    "MODEL_VERSION",
    "TRAINING_SET_VERSION",
    "MODEL_NAME",
    "KEY_SHAPES",
    "INVENTORY",
    "SEGMENTS_2M",
    "RESAMPLE_REPORT",
    "S2_LABELS",
    "S2_LABELS_REPORT",
    "S2_UNET_LABELS",
    "S2_PAIRS",
    "SEGMENTS_LABELLED",
    "COLOCATE_REPORT",
    "TRAINING_SET",
    "MODELS",
    "MODEL_PROMOTIONS",
    "SEGMENTS_CLASSIFIED",
    "CLASSIFY_REPORT",
    "FREEBOARD",
    "FREEBOARD_REPORT",
    "VALIDATION",
    "VALIDATION_DAY",
    "VALIDATE_REPORT",
    "DAILY_SUMMARY",
    "PRODUCTS",
    "product",
    "INVENTORY_FILE",
    "REPORT_FILE",
    "LABELS_FILE",
    "UNUSABLE_FILE",
    "QUICKLOOK_FILE",
    "PAIRS_FILE",
    "LABELLED_FILE",
    "TRAINING_SEGMENTS_FILE",
    "NORMALISATION_FILE",
    "TRAINING_REPORT_FILE",
    "WEIGHTS_FILE",
    "CARD_FILE",
    "CONFUSION_FILE",
    "PROMOTION_FILE",
    "CLASSES_FILE",
    "FREEBOARD_FILE",
    "INCIDENT_FILE",
    "INCIDENTS",
    "INCIDENT",
    "VALIDATION_FILE",
    "VALIDATION_MD_FILE",
    "HISTOGRAM_FILE",
    "SUMMARY_FILE",
    "SUMMARY_MD_FILE",
    "SEGMENT_PART_PATTERN",
    "segment_part_name",
    "LABEL_COLORMAP",
    "UNUSABLE_NODATA",
]

FileKind = Literal["table", "raster", "image", "json", "weights", "text"]

#: File names shared by several products.
INVENTORY_FILE: Final[str] = "inventory.parquet"
REPORT_FILE: Final[str] = "report.json"
LABELS_FILE: Final[str] = "labels.tif"
UNUSABLE_FILE: Final[str] = "unusable.tif"
QUICKLOOK_FILE: Final[str] = "quicklook.png"
PAIRS_FILE: Final[str] = "pairs.parquet"
LABELLED_FILE: Final[str] = "segments.parquet"
TRAINING_SEGMENTS_FILE: Final[str] = "segments.parquet"
NORMALISATION_FILE: Final[str] = "normalisation.json"
TRAINING_REPORT_FILE: Final[str] = "class_balance.json"
#: Files of a model folder (:mod:`seaice_tasks.models.registry`) and of a promotion record.
WEIGHTS_FILE: Final[str] = "model.safetensors"
CARD_FILE: Final[str] = "card.json"
CONFUSION_FILE: Final[str] = "confusion.png"
PROMOTION_FILE: Final[str] = "promotion.json"
CLASSES_FILE: Final[str] = "classes.parquet"
FREEBOARD_FILE: Final[str] = "freeboard.parquet"
#: The record of one failed task try (seaice_tasks.monitoring).
INCIDENT_FILE: Final[str] = "incident.json"
#: Files of a track's and of a day's validation.
VALIDATION_FILE: Final[str] = "validation.json"
VALIDATION_MD_FILE: Final[str] = "validation.md"
HISTOGRAM_FILE: Final[str] = "freeboard_histogram.png"
#: Files of the daily summary (the publish task).
SUMMARY_FILE: Final[str] = "summary.json"
SUMMARY_MD_FILE: Final[str] = "summary.md"
#: One part file per work item of a track (``part-00000.parquet`` ...).
SEGMENT_PART_PATTERN: Final[str] = "part-{part:05d}.parquet"
#: Class code -> RGB of the label COGs' colour table.
LABEL_COLORMAP: Final[dict[int, tuple[int, int, int]]] = {int(k): v for k, v in CLASS_COLOURS_RGB.items()}
#: Meaning of the class codes, written as a COG tag.
_CLASS_CODES: Final[str] = "0 thick ice, 1 thin ice, 2 open water, 255 unlabeled"
#: Nodata of the unusable-mask COG (0 usable, 1 opaque cloud/shadow).
UNUSABLE_NODATA: Final[int] = 255


def segment_part_name(part: int) -> str:
    """Name of the ``part``-th part file of a 2 m track partition.

    Examples
    --------
    >>> segment_part_name(3)
    'part-00003.parquet'
    """
    return SEGMENT_PART_PATTERN.format(part=part)


@dataclasses.dataclass(frozen=True)
class KeyShape:
    """Which key fields name one partition of a product."""

    name: str
    fields: tuple[str, ...]

    def __post_init__(self) -> None:
        unknown = [f for f in self.fields if f not in KEY_FIELDS]
        if unknown or not self.fields:
            raise ValueError(f"key shape {self.name!r}: fields {list(self.fields)} not in {list(KEY_FIELDS)}")


DAY: Final[KeyShape] = KeyShape("day", ("date",))
GRANULE: Final[KeyShape] = KeyShape("granule", ("date", "granule"))
TRACK: Final[KeyShape] = KeyShape("track", ("date", "granule", "beam"))
SCENE: Final[KeyShape] = KeyShape("scene", ("date", "scene"))
PAIR: Final[KeyShape] = KeyShape("pair", ("date", "granule", "beam", "scene"))
MODEL_VERSION: Final[KeyShape] = KeyShape("model version", ("name", "version"))
#: One failed task try: the run's day and the incident id.
INCIDENT: Final[KeyShape] = KeyShape("incident", ("date", "name"))
TRAINING_SET_VERSION: Final[KeyShape] = KeyShape("training-set version", ("name", "version"))
MODEL_NAME: Final[KeyShape] = KeyShape("model name", ("name",))
KEY_SHAPES: Final[tuple[KeyShape, ...]] = (DAY, GRANULE, TRACK, SCENE, PAIR, MODEL_VERSION, TRAINING_SET_VERSION,
                                           MODEL_NAME, INCIDENT)


@dataclasses.dataclass(frozen=True)
class RasterSpec:
    """What a raster file of a product holds.

    Attributes
    ----------
    dtype : str
        numpy dtype name of the band(s).
    nodata : int or None
        Nodata value.
    tags : tuple of (str, str)
        GDAL metadata written into every such file (code meanings), before any per-file tags.
    colormap : mapping or None
        Colour table of a single-band class raster.
    """

    dtype: str
    nodata: int | None
    tags: tuple[tuple[str, str], ...] = ()
    colormap: Mapping[int, tuple[int, int, int]] | None = None


@dataclasses.dataclass(frozen=True)
class FileSpec:
    """One file of a product.

    Attributes
    ----------
    name : str
        File name, or a ``str.format`` pattern (``part-{part:05d}.parquet``) when a partition
        holds several files of the kind.
    kind : {"table", "raster", "image", "json"}
        GeoParquet/Parquet table, COG, PNG picture or JSON document.
    description : str
        One line for docs and catalogues.
    schema : pyarrow.Schema or None
        Arrow schema of a table (enforced on write).
    raster : RasterSpec or None
        Description of a raster.
    """

    name: str
    kind: FileKind
    description: str
    schema: pa.Schema | None = None
    raster: RasterSpec | None = None

    @property
    def is_pattern(self) -> bool:
        """True when :attr:`name` is a pattern for several files."""
        return "{" in self.name

    def matches(self, name: str) -> bool:
        """Whether a file name is this file (or follows this pattern)."""
        if not self.is_pattern:
            return name == self.name
        head, _, rest = self.name.partition("{")
        tail = rest.partition("}")[2]
        return name.startswith(head) and name.endswith(tail) and len(name) > len(head) + len(tail)


@dataclasses.dataclass(frozen=True)
class Product:
    """One product of the lake: name, key shape, files and a line of description."""

    name: str
    shape: KeyShape
    description: str
    files: tuple[FileSpec, ...]

    def key(self, **fields: Any) -> PartitionKey:
        """The partition key of this product for ``fields`` (exactly the shape's fields).

        Raises
        ------
        StorageError
            When a field of the shape is missing or another is given.
        """
        given = {k for k, v in fields.items() if v is not None}
        if given != set(self.shape.fields):
            raise StorageError(f"{self.name}: a {self.shape.name} key needs {list(self.shape.fields)}, "
                               f"got {sorted(given)}")
        date = fields.get("date")
        if isinstance(date, str):
            date = dt.date.fromisoformat(date)
        return PartitionKey(self.name, date, **{k: str(v) for k, v in fields.items() if k != "date"})

    def file(self, name: str) -> FileSpec:
        """The spec of a file name of this product.

        Raises
        ------
        StorageError
            When the product has no such file.
        """
        for spec in self.files:
            if spec.matches(name):
                return spec
        raise StorageError(f"{self.name}: no file {name!r} (files: {[f.name for f in self.files]})")

    @property
    def schema(self) -> pa.Schema | None:
        """The Arrow schema of the product's table files (None for raster or JSON products)."""
        return next((f.schema for f in self.files if f.schema is not None), None)


def _report(stage: str, job: str) -> Product:
    return Product(
        name=stage,
        shape=DAY,
        description=f"day report of the {job} job: committed partitions, skipped inputs and failures",
        files=(FileSpec(REPORT_FILE, "json", "the job's summary without timings (skips and failures also in the "
                                             "manifest's info)"),),
    )


def _label_raster(description: str) -> FileSpec:
    return FileSpec(LABELS_FILE, "raster", description,
                    raster=RasterSpec("uint8", int(SeaIceClass.UNLABELED), (("classes", _CLASS_CODES),),
                                      LABEL_COLORMAP))


INVENTORY: Final[Product] = Product(
    name="inventory",
    shape=DAY,
    description="the raw granules and scenes of one day found in the catalog",
    files=(FileSpec(INVENTORY_FILE, "table", "one row per input file or scene folder", schema=INVENTORY_SCHEMA),),
)
SEGMENTS_2M: Final[Product] = Product(
    name="segments_2m",
    shape=TRACK,
    description="2 m along-track segments of one ATL03 beam: corrected heights and photon statistics",
    files=(FileSpec(SEGMENT_PART_PATTERN, "table", "GeoParquet part file of one work item (ascending x_atc_m)",
                    schema=SEGMENTS_2M_SCHEMA),),
)
RESAMPLE_REPORT: Final[Product] = _report("resample_report", "2 m resampling")
S2_LABELS: Final[Product] = Product(
    name="s2_labels",
    shape=SCENE,
    description="filtered colour-threshold labels of one Sentinel-2 scene on its band grid",
    files=(
        _label_raster("class COG with colour table (0 thick, 1 thin, 2 water, 255 unlabeled)"),
        FileSpec(UNUSABLE_FILE, "raster", "opaque cloud/shadow mask COG (0 usable, 1 unusable, 255 no data)",
                 raster=RasterSpec("uint8", UNUSABLE_NODATA, (("values", "0 usable, 1 opaque cloud/shadow"),))),
        FileSpec(QUICKLOOK_FILE, "image", "RGB composite beside the labels (PNG, at most 768 px a side)"),
    ),
)
S2_LABELS_REPORT: Final[Product] = _report("s2_labels_report", "Sentinel-2 label")
S2_UNET_LABELS: Final[Product] = Product(
    name="s2_unet_labels",
    shape=SCENE,
    description="U-Net labels of one Sentinel-2 scene (optional, with a trained model)",
    files=(
        _label_raster("class COG with colour table, the model's weights sha256 and input view as tags"),
        FileSpec(QUICKLOOK_FILE, "image", "RGB composite beside the U-Net labels (PNG)"),
    ),
)
S2_PAIRS: Final[Product] = Product(
    name="s2_pairs",
    shape=DAY,
    description="the day's ICESat-2 track / Sentinel-2 scene pairs: covered stretch, drift shift, agreement",
    files=(FileSpec(PAIRS_FILE, "table", "one row per (granule, beam, scene) pair", schema=PAIRS_SCHEMA),),
)
SEGMENTS_LABELLED: Final[Product] = Product(
    name="segments_labelled",
    shape=PAIR,
    description="2 m segments of one track under one scene with transferred labels and classifier features",
    files=(FileSpec(LABELLED_FILE, "table", "GeoParquet, ascending x_atc_m, the pair's trimmed stretch",
                    schema=SEGMENTS_LABELLED_SCHEMA),),
)
COLOCATE_REPORT: Final[Product] = _report("colocate_report", "colocation")
TRAINING_SET: Final[Product] = Product(
    name="training_set",
    shape=TRAINING_SET_VERSION,
    description="an immutable training set: labelled segments with window splits, normalisation, provenance",
    files=(
        FileSpec(TRAINING_SEGMENTS_FILE, "table", "labelled segments in track order; split of each window centre",
                 schema=TRAINING_SEGMENTS_SCHEMA),
        FileSpec(NORMALISATION_FILE, "json", "feature list and z-score statistics of the training split"),
        FileSpec(TRAINING_REPORT_FILE, "json", "class balance per split, source pairs and corrections"),
    ),
)
MODELS: Final[Product] = Product(
    name="models",
    shape=MODEL_VERSION,
    description="a trained segment classifier: weights, model card (features, normalisation, metrics), confusion plot",
    files=(
        FileSpec(WEIGHTS_FILE, "weights", "state_dict as safetensors (no pickle)"),
        FileSpec(CARD_FILE, "json", "model card: architecture, config, features, normalisation, training set, metrics"),
        FileSpec(CONFUSION_FILE, "image", "row-normalised confusion matrices of the held-out split (PNG)"),
    ),
)
MODEL_PROMOTIONS: Final[Product] = Product(
    name="model_promotions",
    shape=MODEL_NAME,
    description="which version of a model is promoted (the default of inference); each promotion a new version",
    files=(FileSpec(PROMOTION_FILE, "json", "promoted version, its score, the one it replaced and why"),),
)
SEGMENTS_CLASSIFIED: Final[Product] = Product(
    name="segments_classified",
    shape=TRACK,
    description="every 2 m segment of one track classified by the promoted model: class, probabilities, raw values",
    files=(FileSpec(CLASSES_FILE, "table", "GeoParquet, ascending x_atc_m, every segment of the track",
                    schema=SEGMENTS_CLASSIFIED_SCHEMA),),
)
CLASSIFY_REPORT: Final[Product] = _report("classify_report", "classification")
FREEBOARD: Final[Product] = Product(
    name="freeboard",
    shape=TRACK,
    description="sea surface (four estimators), freeboard and thickness of every 2 m segment of one track",
    files=(FileSpec(FREEBOARD_FILE, "table", "GeoParquet, ascending x_atc_m, every segment of the track",
                    schema=FREEBOARD_SCHEMA),),
)
FREEBOARD_REPORT: Final[Product] = _report("freeboard_report", "freeboard")
VALIDATION: Final[Product] = Product(
    name="validation",
    shape=TRACK,
    description="one track against NASA's ATL07/ATL10 of the same granule and beam, with its quicklook",
    files=(
        FileSpec(VALIDATION_FILE, "json", "sea-surface, classification, freeboard and resolution comparison"),
        FileSpec(QUICKLOOK_FILE, "image", "photons, classes, sea surfaces and freeboard along track (PNG)"),
    ),
)
VALIDATION_DAY: Final[Product] = Product(
    name="validation_day",
    shape=DAY,
    description="the day's validation report: every track against ATL07/ATL10, freeboard histograms",
    files=(
        FileSpec(VALIDATION_FILE, "json", "per-track and pooled comparison figures"),
        FileSpec(VALIDATION_MD_FILE, "text", "the same as a Markdown report"),
        FileSpec(HISTOGRAM_FILE, "image", "freeboard histograms of the day, ours and ATL10 (PNG)"),
    ),
)
VALIDATE_REPORT: Final[Product] = _report("validate_report", "validation")
INCIDENTS: Final[Product] = Product(
    name="incidents",
    shape=INCIDENT,
    description="one failed Airflow task try: dag, run, task, map index, granule, try, error, log URL",
    files=(FileSpec(INCIDENT_FILE, "json", "the incident; 'recovered' once a later try of the task succeeded"),),
)
DAILY_SUMMARY: Final[Product] = Product(
    name="daily_summary",
    shape=DAY,
    description="the day at a glance: inputs, partitions, skips and failures, class fractions, freeboard, validation",
    files=(
        FileSpec(SUMMARY_FILE, "json", "counts, class fractions, freeboard statistics, validation figures"),
        FileSpec(SUMMARY_MD_FILE, "text", "the same as a Markdown page"),
    ),
)

#: Every product, by name.
PRODUCTS: Final[dict[str, Product]] = {
    p.name: p for p in (INVENTORY, SEGMENTS_2M, RESAMPLE_REPORT, S2_LABELS, S2_LABELS_REPORT, S2_UNET_LABELS,
                        S2_PAIRS, SEGMENTS_LABELLED, COLOCATE_REPORT, TRAINING_SET, MODELS, MODEL_PROMOTIONS,
                        SEGMENTS_CLASSIFIED, CLASSIFY_REPORT, FREEBOARD, FREEBOARD_REPORT, VALIDATION,
                        VALIDATION_DAY, VALIDATE_REPORT, DAILY_SUMMARY, INCIDENTS)
}


def product(name: str) -> Product:
    """The registered product of a name.

    Raises
    ------
    StorageError
        For an unknown name.
    """
    try:
        return PRODUCTS[name]
    except KeyError:
        raise StorageError(f"unknown product {name!r}; known: {sorted(PRODUCTS)}") from None
