"""PyramidROIAlign: crops every ROI from the pyramid level that fits its size."""
from __future__ import annotations

import keras
import tensorflow as tf

from mrcnn.image_meta import parse_image_meta_graph

# A ROI of CANONICAL_SIZE pixels (in a 224 x 224 image's terms) maps to P4.
CANONICAL_SIZE = 224.0
CANONICAL_LEVEL = 4
MIN_LEVEL, MAX_LEVEL = 2, 5


def roi_levels(boxes: tf.Tensor, image_area: tf.Tensor) -> tf.Tensor:
    """Pyramid level of each ROI: ``4 + log2(sqrt(h*w) / (224 / sqrt(image_area)))``.

    Args:
        boxes: [N, (y1, x1, y2, x2)] normalized ROIs.
        image_area: scalar, molded image height * width in pixels.

    Returns:
        [N] int32 levels, rounded half to even and clipped to 2..5. Empty
        (zero-padding) ROIs go to level 2.
    """
    height = boxes[:, 2] - boxes[:, 0]
    width = boxes[:, 3] - boxes[:, 1]
    size_ratio = tf.sqrt(height * width) / (CANONICAL_SIZE / tf.sqrt(image_area))
    level = CANONICAL_LEVEL + tf.round(tf.math.log(size_ratio) / tf.math.log(2.0))
    # Clip in float so that log(0) = -inf lands on level 2 deterministically.
    return tf.cast(tf.clip_by_value(level, MIN_LEVEL, MAX_LEVEL), tf.int32)


def zero_invalid_rois(boxes: tf.Tensor) -> tf.Tensor:
    """Sets to zero the ROIs that are non-finite or have no area.

    A NaN box has no pyramid level (its level casts to int32 -2147483648): left in,
    it would fall out of the per-level gathers and the pooled tensor would lose a row.
    A zero box goes to level 2 like the zero padding, and pools a constant crop.

    Args:
        boxes: [N, (y1, x1, y2, x2)] normalized ROIs.

    Returns:
        [N, (y1, x1, y2, x2)] the same ROIs, invalid rows zeroed.
    """
    valid = (tf.reduce_all(tf.math.is_finite(boxes), axis=1) &
             (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]))
    return tf.where(valid[:, tf.newaxis], boxes, tf.zeros_like(boxes))


class PyramidROIAlign(keras.layers.Layer):
    """ROIAlign on a feature pyramid (bilinear, one sample per output cell).

    Args:
        pool_shape: (height, width) of the output of every ROI.

    Call args:
        inputs: [boxes [B, N, (y1, x1, y2, x2)] normalized,
            image_meta [B, META], P2, P3, P4, P5 each [B, H_l, W_l, C]].
            The molded image size is read from the first image's meta.

    Returns:
        [B, N, pool_height, pool_width, C] pooled features in ROI order; a
        non-finite or empty ROI pools as the zero box (see zero_invalid_rois).
    """

    def __init__(self, pool_shape, **kwargs):
        super().__init__(**kwargs)
        self.pool_shape = tuple(int(v) for v in pool_shape)

    def call(self, inputs):
        boxes, image_meta, *feature_maps = inputs
        batch, count = tf.shape(boxes)[0], tf.shape(boxes)[1]
        flat_boxes = zero_invalid_rois(tf.reshape(boxes, (-1, 4)))
        image_index = tf.repeat(tf.range(batch), count)
        image_shape = parse_image_meta_graph(image_meta)["image_shape"][0]
        levels = roi_levels(flat_boxes, image_shape[0] * image_shape[1])

        positions, pooled = [], []
        for level, feature_map in enumerate(feature_maps, start=MIN_LEVEL):
            ix = tf.cast(tf.where(tf.equal(levels, level))[:, 0], tf.int32)
            # The boxes come from the RPN; no gradient flows back into them.
            level_boxes = tf.stop_gradient(tf.gather(flat_boxes, ix))
            pooled.append(tf.image.crop_and_resize(
                feature_map, level_boxes, tf.gather(image_index, ix), self.pool_shape,
                method="bilinear"))
            positions.append(ix)
        # Put every pooled ROI back at its position in the input order.
        pooled = tf.dynamic_stitch(positions, pooled)
        channels = feature_maps[0].shape[-1]
        return tf.reshape(pooled, (batch, count) + self.pool_shape + (channels,))

    def compute_output_shape(self, inputs_shape):
        boxes_shape, _, p2_shape = inputs_shape[:3]
        return tuple(boxes_shape[:2]) + self.pool_shape + (p2_shape[-1],)

    def get_config(self):
        return {**super().get_config(), "pool_shape": self.pool_shape}
