"""Readers of the real ICESat-2 (ATL03, ATL07, ATL10) and Sentinel-2 product layouts."""
