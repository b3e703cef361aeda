"""Sentinel-2 stage: thin-cloud/shadow filter, colour-threshold labels, U-Net."""
