"""ICESat-2 processing stages: ATL03 photons -> 2 m along-track segments (:mod:`.resample`)."""
