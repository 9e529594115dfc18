"""Region proposal network: one small model shared by every pyramid level."""
from __future__ import annotations

import keras
from keras import layers

from mrcnn.graph.precision import FLOAT32


def build_rpn_model(anchor_stride: int, anchors_per_location: int,
                    depth: int) -> keras.Model:
    """Builds the shared RPN head as the nested model ``rpn_model``.

    Its weights live under ``rpn_model/`` in the classic weight files, so the
    name and the inner layer names are part of the file format.

    Args:
        anchor_stride: anchors every this many feature-map cells (the stride
            of the shared convolution).
        anchors_per_location: anchors per cell (the number of ratios).
        depth: channels of the feature maps.

    Returns:
        A model mapping a feature map [B, H, W, depth] to
        ``rpn_class_logits`` [B, H*W*anchors, (bg, fg)],
        ``rpn_probs`` [B, H*W*anchors, (bg, fg)] and
        ``rpn_bbox`` [B, H*W*anchors, (dy, dx, log(dh), log(dw))].
    """
    feature_map = keras.Input(shape=(None, None, depth), name="input_rpn_feature_map")
    shared = layers.Conv2D(512, 3, padding="same", activation="relu",
                           strides=anchor_stride, name="rpn_conv_shared")(feature_map)
    # Channels 2a, 2a+1 hold anchor a's (bg, fg) logits; 4a..4a+3 its deltas,
    # so a reshape gives anchors in (y, x, ratio) order, as generate_anchors.
    class_raw = layers.Conv2D(2 * anchors_per_location, 1, name="rpn_class_raw")(shared)
    class_logits = layers.Reshape((-1, 2))(class_raw)
    probs = layers.Activation("softmax", name="rpn_class_xxx", dtype=FLOAT32)(class_logits)
    bbox_raw = layers.Conv2D(4 * anchors_per_location, 1, name="rpn_bbox_pred")(shared)
    bbox = layers.Reshape((-1, 4))(bbox_raw)
    return keras.Model(feature_map, [class_logits, probs, bbox], name="rpn_model")
