"""Training machinery shared by the U-Net and the ICESat-2 LSTM/MLP models.

``dataset`` (tiles of labelled Sentinel-2 scenes and the shared preprocessing) and ``loop`` (a
generic :class:`~seaice_tasks.train.loop.Trainer` with checkpoint/resume) import torch; this
package file does not.
"""
