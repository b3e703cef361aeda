"""Sea surface, freeboard and thickness of the classified 2 m segments, and their validation.

:mod:`.sea_surface` (four estimators per 10 km window), :mod:`.freeboard` (per-segment freeboard
with uncertainty), :mod:`.thickness` (hydrostatic thickness), :mod:`.validate` (against NASA's
ATL07/ATL10) and :mod:`.plots` (quicklooks).
"""
