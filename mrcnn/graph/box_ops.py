"""Box math on tensors: the tf twins of the numpy functions in ``mrcnn.boxes``.

Every function works on any leading batch dimensions: ``boxes`` is
[..., (y1, x1, y2, x2)] and ``deltas`` is [..., (dy, dx, log(dh), log(dw))].
"""
from __future__ import annotations

import tensorflow as tf

from mrcnn.boxes import MAX_LOG_SCALE


def _centres_and_sizes(boxes: tf.Tensor):
    height = boxes[..., 2] - boxes[..., 0]
    width = boxes[..., 3] - boxes[..., 1]
    return boxes[..., 0] + 0.5 * height, boxes[..., 1] + 0.5 * width, height, width


def apply_box_deltas(boxes: tf.Tensor, deltas: tf.Tensor) -> tf.Tensor:
    """Moves and scales boxes by deltas.

    Args:
        boxes: [..., (y1, x1, y2, x2)] boxes to refine.
        deltas: [..., (dy, dx, log(dh), log(dw))] refinements, already
            multiplied by the std-devs; log(dh) and log(dw) are clamped at
            ``mrcnn.boxes.MAX_LOG_SCALE``.

    Returns:
        [..., (y1, x1, y2, x2)] refined boxes.
    """
    centre_y, centre_x, height, width = _centres_and_sizes(boxes)
    centre_y += deltas[..., 0] * height
    centre_x += deltas[..., 1] * width
    height *= tf.exp(tf.minimum(deltas[..., 2], MAX_LOG_SCALE))
    width *= tf.exp(tf.minimum(deltas[..., 3], MAX_LOG_SCALE))
    y1 = centre_y - 0.5 * height
    x1 = centre_x - 0.5 * width
    return tf.stack([y1, x1, y1 + height, x1 + width], axis=-1)


def box_refinement(boxes: tf.Tensor, gt_boxes: tf.Tensor) -> tf.Tensor:
    """Deltas that turn ``boxes`` into ``gt_boxes`` (the inverse of apply_box_deltas).

    Args:
        boxes: [..., (y1, x1, y2, x2)] source boxes.
        gt_boxes: [..., (y1, x1, y2, x2)] target boxes.

    Returns:
        [..., (dy, dx, log(dh), log(dw))] float32 deltas.
    """
    boxes = tf.cast(boxes, tf.float32)
    gt_boxes = tf.cast(gt_boxes, tf.float32)
    centre_y, centre_x, height, width = _centres_and_sizes(boxes)
    gt_centre_y, gt_centre_x, gt_height, gt_width = _centres_and_sizes(gt_boxes)
    return tf.stack([(gt_centre_y - centre_y) / height,
                     (gt_centre_x - centre_x) / width,
                     tf.math.log(gt_height / height),
                     tf.math.log(gt_width / width)], axis=-1)


def clip_boxes(boxes: tf.Tensor, window: tf.Tensor) -> tf.Tensor:
    """Clips boxes to lie inside a window.

    Args:
        boxes: [..., (y1, x1, y2, x2)].
        window: [4] or broadcastable to boxes, (y1, x1, y2, x2) of the window.

    Returns:
        [..., 4] boxes with every coordinate inside the window.
    """
    window = tf.cast(window, boxes.dtype)
    low = tf.stack([window[..., 0], window[..., 1], window[..., 0], window[..., 1]], axis=-1)
    high = tf.stack([window[..., 2], window[..., 3], window[..., 2], window[..., 3]], axis=-1)
    return tf.maximum(tf.minimum(boxes, high), low)


def overlaps(boxes1: tf.Tensor, boxes2: tf.Tensor) -> tf.Tensor:
    """IoU of every box of ``boxes1`` with every box of ``boxes2``.

    Args:
        boxes1: [N1, (y1, x1, y2, x2)].
        boxes2: [N2, (y1, x1, y2, x2)].

    Returns:
        [N1, N2] IoU; 0 where the union is empty.
    """
    b1 = tf.expand_dims(boxes1, 1)
    b2 = tf.expand_dims(boxes2, 0)
    y1 = tf.maximum(b1[..., 0], b2[..., 0])
    x1 = tf.maximum(b1[..., 1], b2[..., 1])
    y2 = tf.minimum(b1[..., 2], b2[..., 2])
    x2 = tf.minimum(b1[..., 3], b2[..., 3])
    intersection = tf.maximum(y2 - y1, 0.) * tf.maximum(x2 - x1, 0.)
    area1 = (b1[..., 2] - b1[..., 0]) * (b1[..., 3] - b1[..., 1])
    area2 = (b2[..., 2] - b2[..., 0]) * (b2[..., 3] - b2[..., 1])
    return tf.math.divide_no_nan(intersection, area1 + area2 - intersection)


def _normalization(shape: tf.Tensor):
    # The "-1" convention matches tf.image.crop_and_resize: 0 and 1 are the
    # centres of the first and last pixel, and y2/x2 are exclusive.
    shape = tf.cast(shape, tf.float32)
    height, width = shape[0], shape[1]
    scale = tf.stack([height, width, height, width]) - 1.0
    return scale, tf.constant([0., 0., 1., 1.])


def norm_boxes(boxes: tf.Tensor, shape: tf.Tensor) -> tf.Tensor:
    """Pixel boxes to normalized ones: ``(box - [0, 0, 1, 1]) / [h-1, w-1, h-1, w-1]``.

    Args:
        boxes: [..., (y1, x1, y2, x2)] in pixels.
        shape: [(height, width)] of the image.

    Returns:
        [..., 4] float32 normalized boxes.
    """
    scale, shift = _normalization(shape)
    return (tf.cast(boxes, tf.float32) - shift) / scale


def denorm_boxes(boxes: tf.Tensor, shape: tf.Tensor) -> tf.Tensor:
    """Normalized boxes to int32 pixel boxes (the inverse of norm_boxes, rounded).

    Args:
        boxes: [..., (y1, x1, y2, x2)] normalized.
        shape: [(height, width)] of the image.

    Returns:
        [..., 4] int32 pixel boxes.
    """
    scale, shift = _normalization(shape)
    return tf.cast(tf.round(boxes * scale + shift), tf.int32)
