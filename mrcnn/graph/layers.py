"""Building blocks shared by the backbone and the heads.

``BatchNorm`` carries the classic TRAIN_BN switch; ``TimeDistributed`` applies
a layer to every ROI in one call by folding the ROI axis into the batch.
"""
from __future__ import annotations

import keras
import tensorflow as tf


class BatchNorm(keras.layers.BatchNormalization):
    """BatchNormalization with a fixed training mode (the classic TRAIN_BN).

    Small batches make batch statistics useless, so by default the layer is
    frozen: it always normalizes with its moving statistics, in training too.

    Args:
        train_bn: False: always inference mode (frozen). True: always batch
            statistics. None: follow the ``training`` flag Keras passes.
        **kwargs: BatchNormalization arguments; epsilon defaults to 1e-3 as in
            the classic weight files.
    """

    def __init__(self, train_bn: bool | None = False, **kwargs):
        kwargs.setdefault("epsilon", 1e-3)
        super().__init__(**kwargs)
        self.train_bn = train_bn

    def call(self, inputs, training=None, mask=None):
        if self.train_bn is not None:
            training = self.train_bn
        return super().call(inputs, training=training, mask=mask)

    def get_config(self):
        return {**super().get_config(), "train_bn": self.train_bn}


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
