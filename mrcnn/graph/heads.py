"""The two parallel heads: class + box regression, and the mask head."""
from __future__ import annotations

from keras import layers

from mrcnn.graph.layers import BatchNorm, Conv2D, TimeDistributed
from mrcnn.graph.precision import FLOAT32
from mrcnn.graph.roi_align import PyramidROIAlign


def classifier_head(rois, image_meta, feature_maps, pool_size: int, num_classes: int,
                    train_bn: bool | None, fc_layers_size: int = 1024):
    """Class scores and class-specific box deltas for every ROI.

    The two "fully connected" layers are convolutions (7x7 valid, then 1x1)
    as in the classic weight files.

    Args:
        rois: [B, N, (y1, x1, y2, x2)] normalized ROIs.
        image_meta: [B, META] image metadata.
        feature_maps: [P2, P3, P4, P5], each [B, H_l, W_l, C].
        pool_size: ROIAlign output side (POOL_SIZE).
        num_classes: NC, background included.
        train_bn: BatchNorm mode, see ``BatchNorm``.
        fc_layers_size: width of the two hidden layers.

    Returns:
        class_logits [B, N, NC], class_probs [B, N, NC] and
        bbox_deltas [B, N, NC, (dy, dx, log(dh), log(dw))].
    """
    x = PyramidROIAlign((pool_size, pool_size), name="roi_align_classifier",
                        dtype=FLOAT32)(
        [rois, image_meta] + list(feature_maps))
    x = TimeDistributed(Conv2D(fc_layers_size, pool_size, padding="valid"),
                        name="mrcnn_class_conv1")(x)
    x = TimeDistributed(BatchNorm(train_bn), name="mrcnn_class_bn1")(x)
    x = layers.Activation("relu")(x)
    x = TimeDistributed(Conv2D(fc_layers_size, 1), name="mrcnn_class_conv2")(x)
    x = TimeDistributed(BatchNorm(train_bn), name="mrcnn_class_bn2")(x)
    x = layers.Activation("relu")(x)
    shared = layers.Reshape((-1, fc_layers_size), name="pool_squeeze")(x)

    class_logits = TimeDistributed(layers.Dense(num_classes), name="mrcnn_class_logits")(shared)
    class_probs = layers.Activation("softmax", name="mrcnn_class", dtype=FLOAT32)(class_logits)
    x = TimeDistributed(layers.Dense(num_classes * 4), name="mrcnn_bbox_fc")(shared)
    bbox_deltas = layers.Reshape((-1, num_classes, 4), name="mrcnn_bbox", dtype=FLOAT32)(x)
    return class_logits, class_probs, bbox_deltas


def mask_head(rois, image_meta, feature_maps, pool_size: int, num_classes: int,
              train_bn: bool | None, channels: int = 256):
    """Per-class mask probabilities for every ROI.

    Args:
        rois: [B, N, (y1, x1, y2, x2)] normalized ROIs.
        image_meta: [B, META] image metadata.
        feature_maps: [P2, P3, P4, P5], each [B, H_l, W_l, C].
        pool_size: ROIAlign output side (MASK_POOL_SIZE).
        num_classes: NC, background included.
        train_bn: BatchNorm mode, see ``BatchNorm``.
        channels: channels of the four convolutions and the deconvolution.

    Returns:
        [B, N, 2 * pool_size, 2 * pool_size, NC] sigmoid mask probabilities.
    """
    x = PyramidROIAlign((pool_size, pool_size), name="roi_align_mask",
                        dtype=FLOAT32)(
        [rois, image_meta] + list(feature_maps))
    for i in range(1, 5):
        x = TimeDistributed(layers.Conv2D(channels, 3, padding="same"),
                            name=f"mrcnn_mask_conv{i}")(x)
        x = TimeDistributed(BatchNorm(train_bn), name=f"mrcnn_mask_bn{i}")(x)
        x = layers.Activation("relu")(x)
    x = TimeDistributed(layers.Conv2DTranspose(channels, 2, strides=2, activation="relu"),
                        name="mrcnn_mask_deconv")(x)
    return TimeDistributed(layers.Conv2D(num_classes, 1, activation="sigmoid"),
                           name="mrcnn_mask")(x)
