"""Building blocks shared by the graph's modules.

``BatchNorm`` carries the classic TRAIN_BN switch; ``TimeDistributed`` applies
a layer to every ROI in one call by folding the ROI axis into the batch;
``PyramidAnchors`` and ``NormalizeBoxes`` feed the training graph;
``ImageMetaField`` reads one field of the image meta by name.
"""
from __future__ import annotations

import contextlib

import keras
import tensorflow as tf

from mrcnn.anchors import generate_pyramid_anchors
from mrcnn.boxes import norm_boxes
from mrcnn.graph import box_ops
from mrcnn.image_meta import FIELDS, parse_image_meta_graph


# The default of BatchNorm's ``synchronized`` while a graph is built (SYNC_BATCH_NORM).
_synchronized_default = [False]


@contextlib.contextmanager
def synchronized_batch_norm(enabled: bool):
    """BatchNorm layers made inside compute their batch statistics over the global batch
    (all replicas of a tf.distribute strategy: keras's ``synchronized=True``), when
    ``enabled``; the previous default is restored after."""
    previous = _synchronized_default[0]
    _synchronized_default[0] = bool(enabled)
    try:
        yield
    finally:
        _synchronized_default[0] = previous


class BatchNorm(keras.layers.BatchNormalization):
    """BatchNormalization with a fixed training mode (the classic TRAIN_BN).

    Small batches make batch statistics useless, so by default the layer is
    frozen: it always normalizes with its moving statistics, in training too.

    Args:
        train_bn: False: always inference mode (frozen). True: always batch
            statistics. None: follow the ``training`` flag Keras passes.
        **kwargs: BatchNormalization arguments; epsilon defaults to 1e-3 as in
            the classic weight files, synchronized to the default that
            synchronized_batch_norm sets (False outside it).
    """

    def __init__(self, train_bn: bool | None = False, **kwargs):
        kwargs.setdefault("epsilon", 1e-3)
        kwargs.setdefault("synchronized", _synchronized_default[0])
        super().__init__(**kwargs)
        self.train_bn = train_bn

    def call(self, inputs, training=None, mask=None):
        if self.train_bn is not None:
            training = self.train_bn
        return super().call(inputs, training=training, mask=mask)

    def get_config(self):
        return {**super().get_config(), "train_bn": self.train_bn}


class Conv2D(keras.layers.Conv2D):
    """Conv2D that runs as a matrix product when its kernel covers the whole input.

    The box head's first layer is a 7x7 'valid' convolution of 7x7 ROI features
    (one output pixel): a dot product of the flattened features with the
    flattened kernel. TensorFlow's CPU convolution gradients are very slow for
    that shape (seconds per training step), a matmul's are not. The weights,
    their layout and the results are those of keras.layers.Conv2D.
    """

    def call(self, inputs):
        kernel_h, kernel_w = self.kernel_size
        covers_input = (self.padding == "valid" and tuple(inputs.shape[1:3]) == (kernel_h, kernel_w)
                        and tuple(self.strides) == (1, 1) and tuple(self.dilation_rate) == (1, 1))
        if not covers_input:
            return super().call(inputs)
        # (h, w, c) flattening order of the input matches the kernel's HWIO layout.
        flat = tf.reshape(inputs, (-1, kernel_h * kernel_w * inputs.shape[-1]))
        outputs = tf.matmul(flat, tf.reshape(self.kernel, (-1, self.filters)))
        if self.use_bias:
            outputs = outputs + self.bias
        outputs = tf.reshape(self.activation(outputs), (-1, 1, 1, self.filters))
        return outputs


class TimeDistributed(keras.layers.TimeDistributed):
    """Applies ``layer`` to every slice of axis 1 by merging axes 0 and 1.

    Keras's own TimeDistributed runs a Python loop over a static axis 1 (one
    convolution per ROI); folding the ROIs into the batch runs one convolution
    for all of them. Weights and the layer name are the same, so classic weight
    files that store ``mrcnn_class_conv1/kernel:0`` under the wrapper load as is.

    Args:
        layer: the layer to apply to inputs of shape [B, N, ...].
    """

    def call(self, inputs, training=None, mask=None):
        folded = tf.reshape(inputs, (-1,) + tuple(inputs.shape[2:]))
        # Keras drops `training` for layers whose call does not take it.
        outputs = self.layer(folded, training=training)
        leading = tf.shape(inputs)[:2]
        unfolded = tf.reshape(outputs, tf.concat([leading, tf.shape(outputs)[1:]], 0))
        unfolded.set_shape(inputs.shape[:2].concatenate(outputs.shape[1:]))
        return unfolded


class PyramidAnchors(keras.layers.Layer):
    """The normalized pyramid anchors of a fixed image shape, for every image.

    Training images all have IMAGE_SHAPE, so their anchors are one constant,
    computed once with the numpy generator the input pipeline also uses.

    Args:
        image_shape: (height, width) of the molded training images.
        scales, ratios, feature_shapes, feature_strides, anchor_stride: the
            arguments of ``generate_pyramid_anchors``, as
            ``mrcnn.anchors.anchor_settings(config, image_shape)`` gives them.

    Call args:
        images: [B, H, W, C]; only B is used.

    Returns:
        [B, A, (y1, x1, y2, x2)] normalized anchors.
    """

    def __init__(self, image_shape, scales, ratios, feature_shapes, feature_strides,
                 anchor_stride: int, **kwargs):
        super().__init__(**kwargs)
        self.image_shape = tuple(int(v) for v in image_shape[:2])
        self.scales = tuple(float(v) for v in scales)
        self.ratios = tuple(float(v) for v in ratios)
        self.feature_strides = tuple(int(v) for v in feature_strides)
        self.anchor_stride = int(anchor_stride)
        self.feature_shapes = tuple(tuple(int(v) for v in s) for s in feature_shapes)
        pixels = generate_pyramid_anchors(self.scales, self.ratios, self.feature_shapes,
                                          self.feature_strides, self.anchor_stride)
        self.anchors = norm_boxes(pixels, self.image_shape).astype("float32")

    def call(self, images):
        anchors = tf.constant(self.anchors)
        return tf.broadcast_to(anchors, tf.concat([tf.shape(images)[:1], tf.shape(anchors)], 0))

    def compute_output_shape(self, images_shape):
        return (images_shape[0],) + self.anchors.shape

    def get_config(self):
        return {**super().get_config(), "image_shape": self.image_shape, "scales": self.scales,
                "ratios": self.ratios, "feature_strides": self.feature_strides,
                "anchor_stride": self.anchor_stride, "feature_shapes": self.feature_shapes}


class NormalizeBoxes(keras.layers.Layer):
    """Pixel boxes -> normalized boxes of the images they belong to.

    Call args:
        inputs: [boxes [B, N, (y1, x1, y2, x2)] pixels, images [B, H, W, C]].

    Returns:
        [B, N, 4] normalized boxes (see box_ops.norm_boxes).
    """

    def call(self, inputs):
        boxes, images = inputs
        return box_ops.norm_boxes(boxes, tf.shape(images)[1:3])

    def compute_output_shape(self, inputs_shape):
        return inputs_shape[0]


class PadRows(keras.layers.Layer):
    """Zero-pads axis 1 (ROIs or detections) to ``length`` rows.

    Heads that only need some rows (the real detections; the positive training
    ROIs) run on those, and this restores the full shape.

    Args:
        length: rows of the output.

    Call args:
        inputs: [B, n, ...] with n <= length.

    Returns:
        [B, length, ...].
    """

    def __init__(self, length: int, **kwargs):
        super().__init__(**kwargs)
        self.length = int(length)

    def call(self, inputs):
        padding = [(0, 0)] * len(inputs.shape)
        padding[1] = (0, self.length - tf.shape(inputs)[1])
        return tf.pad(inputs, padding)

    def compute_output_shape(self, inputs_shape):
        return (inputs_shape[0], self.length) + tuple(inputs_shape[2:])

    def get_config(self):
        return {**super().get_config(), "length": self.length}


class ImageMetaField(keras.layers.Layer):
    """One field of the image meta, read by name (see :mod:`mrcnn.image_meta`).

    Args:
        field: a field name of ``mrcnn.image_meta.FIELDS``, e.g. "active_class_ids".

    Call args:
        image_meta: [B, META] float.

    Returns:
        The field as :func:`mrcnn.image_meta.parse_image_meta_graph` gives it, float32.
    """

    def __init__(self, field: str, **kwargs):
        super().__init__(**kwargs)
        if field not in dict(FIELDS):
            raise ValueError(f"unknown image meta field {field!r}; use one of "
                             f"{[name for name, _ in FIELDS]}")
        self.field = field

    def call(self, image_meta):
        return parse_image_meta_graph(image_meta)[self.field]

    def get_config(self):
        return {**super().get_config(), "field": self.field}
