"""What ``seaice inspect`` reports about one product file: a small, JSON-ready summary."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["BeamSummary", "ProductSummary"]

Strength = Literal["strong", "weak", "unknown"]


@dataclass(frozen=True)
class BeamSummary:
    """Counts of one beam group.

    Attributes
    ----------
    beam : str
        ``gt1l`` ... ``gt3r``.
    strength : {"strong", "weak", "unknown"}
        From ``atlas_beam_type`` or ``orbit_info/sc_orient``.
    n_photons : int or None
        ATL03 photons (None for segment products).
    n_segments : int
        ATL03 20 m geolocation segments, ATL07 sea-ice segments or ATL10 freeboard segments.
    """

    beam: str
    strength: Strength
    n_photons: int | None
    n_segments: int


@dataclass(frozen=True)
class ProductSummary:
    """Summary of one ICESat-2 granule or Sentinel-2 raster.

    ``time_start_utc`` / ``time_end_utc`` are ISO-8601 strings (UTC) or None when unknown.
    ``extra`` carries product-specific facts (S2: CRS, shape, bands; ATL03: sc_orient, ...).
    """

    path: str
    product: str
    granule: str | None
    time_start_utc: str | None
    time_end_utc: str | None
    beams: tuple[BeamSummary, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dictionary."""
        out = asdict(self)
        out["beams"] = [asdict(b) for b in self.beams]
        out["warnings"] = list(self.warnings)
        return out
