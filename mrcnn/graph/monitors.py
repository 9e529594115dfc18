"""Built-in training monitors: values shown next to the losses but never added to them.

Each is a plain tf function of graph tensors (see ``mrcnn.losses.GRAPH_TENSORS``)
returning a float32 scalar, 0 when there is nothing to measure. Shape
shorthand: T = training ROIs per image, NC = classes, h x w = MASK_SHAPE.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from mrcnn.graph.losses import mean_or_zero, positive_roi_masks

# Registered so that a MonitorLayer's config names its function and reloads it.
_serializable = keras.saving.register_keras_serializable(package="mrcnn")


def _sampled_rois(rois: tf.Tensor) -> tf.Tensor:
    """[B, T] float, 1 for the sampled ROIs, 0 for the zero padding."""
    return tf.cast(tf.reduce_any(tf.not_equal(rois, 0), axis=-1), tf.float32)


@_serializable
def roi_accuracy(target_class_ids: tf.Tensor, mrcnn_class_logits: tf.Tensor,
                 rois: tf.Tensor) -> tf.Tensor:
    """Fraction of the sampled ROIs (positives and negatives) classified as their target.

    Args:
        target_class_ids: [B, T] int, 0 for the negatives.
        mrcnn_class_logits: [B, T, NC] classifier logits.
        rois: [B, T, (y1, x1, y2, x2)] normalized, zero rows for padding.

    Returns:
        Scalar in [0, 1]; 0 without sampled ROIs.
    """
    sampled = _sampled_rois(rois)
    correct = tf.cast(tf.equal(tf.argmax(mrcnn_class_logits, axis=-1),
                               tf.cast(target_class_ids, tf.int64)), tf.float32)
    return tf.math.divide_no_nan(tf.reduce_sum(correct * sampled), tf.reduce_sum(sampled))


@_serializable
def mask_iou(target_mask: tf.Tensor, target_class_ids: tf.Tensor,
             mrcnn_mask: tf.Tensor) -> tf.Tensor:
    """Mean IoU of the positive ROIs' masks (their target class, thresholded at 0.5).

    Args:
        target_mask: [B, T, h, w] float in {0, 1}.
        target_class_ids: [B, T] int, > 0 for the positive ROIs.
        mrcnn_mask: [B, T, h, w, NC] sigmoid probabilities.

    Returns:
        Scalar in [0, 1]; 0 without positive ROIs. A ROI whose target and
        prediction are both empty counts as IoU 0.
    """
    target, pred = positive_roi_masks(target_mask, target_class_ids, mrcnn_mask)
    target = target >= 0.5
    pred = pred >= 0.5
    intersection = tf.reduce_sum(tf.cast(target & pred, tf.float32), axis=[1, 2])
    union = tf.reduce_sum(tf.cast(target | pred, tf.float32), axis=[1, 2])
    return mean_or_zero(tf.math.divide_no_nan(intersection, union))


@_serializable
def positive_fraction(target_class_ids: tf.Tensor, rois: tf.Tensor) -> tf.Tensor:
    """Fraction of the sampled ROIs that are positive (compare with ROI_POSITIVE_RATIO).

    Args:
        target_class_ids: [B, T] int, > 0 for the positive ROIs.
        rois: [B, T, (y1, x1, y2, x2)] normalized, zero rows for padding.

    Returns:
        Scalar in [0, 1]; 0 without sampled ROIs.
    """
    sampled = _sampled_rois(rois)
    positive = tf.cast(target_class_ids > 0, tf.float32) * sampled
    return tf.math.divide_no_nan(tf.reduce_sum(positive), tf.reduce_sum(sampled))
