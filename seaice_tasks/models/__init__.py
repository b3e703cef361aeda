"""PyTorch models of the pipeline: the Sentinel-2 U-Net (``unet``) and the losses (``losses``).

The submodules import torch; this package file does not, so ``import seaice_tasks.models`` stays
cheap and ``import seaice_tasks`` never pulls torch in.
"""
