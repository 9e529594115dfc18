"""The image meta: what the network needs to know about each molded image, in one vector.

This module owns the layout; everything else reads the fields by name. A meta vector is
the concatenation, in this order, of:

==========================  ============  ==================================================
field                       values        meaning
==========================  ============  ==================================================
``image_id``                1             the image's index in its dataset
``original_image_shape``    3             (H, W, C) before resizing and padding
``image_shape``             3             (H, W, C) of the molded image
``window``                  4             (y1, x1, y2, x2) pixels of the image content
``scale``                   1             resize factor applied to the original image
``active_class_ids``        NUM_CLASSES   1 for the classes of the image's dataset, else 0
==========================  ============  ==================================================

:func:`compose_image_meta` packs one image (numpy), :func:`parse_image_meta` unpacks a
batch (numpy) and :func:`parse_image_meta_graph` the same inside the graph (TensorFlow,
imported only when called). Shape shorthand: ``B`` images, ``META`` = ``meta_size(NC)``,
``NC`` classes.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["FIELDS", "meta_size", "compose_image_meta", "parse_image_meta",
           "parse_image_meta_graph"]

# (name, number of values); None: the rest of the vector (one value per class).
FIELDS = (("image_id", 1), ("original_image_shape", 3), ("image_shape", 3), ("window", 4),
          ("scale", 1), ("active_class_ids", None))
# Fields that hold a single value: parsed to [B] rather than [B, 1].
_SCALAR_FIELDS = {name for name, size in FIELDS if size == 1}
_FIXED_SIZE = sum(size for _, size in FIELDS if size is not None)


def meta_size(num_classes: int) -> int:
    """Length of the meta vector of a model with `num_classes` classes (background included)."""
    return _FIXED_SIZE + int(num_classes)


def _split(meta) -> dict:
    """The fields of meta [B, META] (a numpy array or a tf tensor) as slices, by name."""
    fields, start = {}, 0
    for name, size in FIELDS:
        if size is None:
            fields[name] = meta[:, start:]
        elif name in _SCALAR_FIELDS:
            fields[name] = meta[:, start]
        else:
            fields[name] = meta[:, start:start + size]
        start += size or 0
    return fields


def compose_image_meta(image_id: int, original_image_shape: Sequence[int],
                       image_shape: Sequence[int], window: Sequence[int], scale: float,
                       active_class_ids: Sequence[int]) -> np.ndarray:
    """Pack the attributes of one image into a 1-D array (the model's ``input_image_meta``).

    Args:
        image_id: the image's index in its dataset.
        original_image_shape: (H, W, C) before resizing and padding.
        image_shape: (H, W, C) after resizing and padding.
        window: (y1, x1, y2, x2) of the image content in the padded image, in pixels.
        scale: resize factor applied to the original image.
        active_class_ids: [NUM_CLASSES] 1 for the classes of the image's dataset, else 0.

    Returns:
        [meta_size(NUM_CLASSES)] float64 array.
    """
    values = {"image_id": [image_id], "original_image_shape": original_image_shape,
              "image_shape": image_shape, "window": window, "scale": [scale],
              "active_class_ids": active_class_ids}
    parts = []
    for name, size in FIELDS:
        part = np.asarray(values[name], dtype=np.float64).ravel()
        if size is not None and part.size != size:
            raise ValueError(f"image meta field {name!r} takes {size} values, got {part.size}")
        parts.append(part)
    return np.concatenate(parts)


def parse_image_meta(meta: np.ndarray) -> dict:
    """Unpack a batch of image meta arrays (the inverse of :func:`compose_image_meta`).

    Args:
        meta: [B, META] arrays from :func:`compose_image_meta`.

    Returns:
        dict with ``image_id`` [B] int32, ``original_image_shape`` [B, 3] int32,
        ``image_shape`` [B, 3] int32, ``window`` [B, (y1, x1, y2, x2)] int32,
        ``scale`` [B] float32 and ``active_class_ids`` [B, NUM_CLASSES] int32.
    """
    fields = _split(np.asarray(meta))
    return {name: value.astype(np.float32 if name == "scale" else np.int32)
            for name, value in fields.items()}


def parse_image_meta_graph(meta) -> dict:
    """Unpack a batch of image metas inside the graph (the tf twin of :func:`parse_image_meta`).

    Args:
        meta: [B, META] float tensor.

    Returns:
        dict of float32 tensors with the same names and shapes as :func:`parse_image_meta`
        (kept in float: the graph computes with them).
    """
    import tensorflow as tf  # only the graph side needs it

    return _split(tf.cast(meta, tf.float32))
