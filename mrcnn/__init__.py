"""Mask R-CNN for TensorFlow 2 / Keras 3, with the classic MatterPort API.

Public names: :class:`Config`, :class:`Dataset` and (lazily, because it imports
TensorFlow) :class:`MaskRCNN`.
"""
__version__ = "3.0.0.dev0"

import os  # noqa: E402

# TensorFlow's graph optimizer logs a warning per ROIAlign op on every trace
# (it cannot cost dynamic shapes); keep its C++ log to errors unless the user
# chose a level. Only effective before TensorFlow is imported.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mrcnn.config import Config  # noqa: E402
from mrcnn.dataset import Dataset  # noqa: E402


def __getattr__(name):
    # MaskRCNN pulls in TensorFlow (seconds to import); load it on first use only.
    if name == "MaskRCNN":
        from mrcnn.model import MaskRCNN
        return MaskRCNN
    raise AttributeError(f"module 'mrcnn' has no attribute {name!r}")


__all__ = ["Config", "Dataset", "MaskRCNN", "__version__"]
