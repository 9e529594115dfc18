"""The association head: an L2-normalized embedding per ROI, for linking instances across frames.

As in Track R-CNN (Voigtlaender et al., CVPR 2019), a small head on the
ROI-aligned pyramid features gives every ROI an embedding; a triplet loss over
the positive training ROIs of the whole batch, labelled by the ground-truth
instance identity, pulls the same object in different frames together and
pushes different objects apart. Its layers are all named ``mrcnn_assoc_*``:
none of the classic weight names change, the ``heads`` layer preset trains it,
and a classic weight file loads with the head left at its initial weights.

Shape shorthand: B images, N ROIs per image, D = ASSOCIATION_EMBEDDING_SIZE,
P positive-ROI rows per image.
"""
from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers

from mrcnn.graph.layers import TimeDistributed
from mrcnn.graph.precision import FLOAT32
from mrcnn.graph.roi_align import PyramidROIAlign, zero_invalid_rois
from mrcnn.graph.triplet import triplet_batch_hard_loss

# The head's layers with weights, in graph order.
ASSOCIATION_LAYERS = ("mrcnn_assoc_conv1", "mrcnn_assoc_conv2", "mrcnn_assoc_fc",
                      "mrcnn_assoc_embedding")
# Width of the head's two convolutions and of its hidden fully connected layer.
HEAD_CHANNELS = 128
HEAD_FC_SIZE = 256

_serializable = keras.saving.register_keras_serializable(package="mrcnn")


class L2Normalize(keras.layers.Layer):
    """Scales every vector of the last axis to unit length (float32).

    Call args:
        inputs: [..., D].

    Returns:
        [..., D] float32 with ``||x|| = 1`` (an all-zero vector stays zero).
    """

    def call(self, inputs):
        return tf.math.l2_normalize(tf.cast(inputs, tf.float32), axis=-1)

    def compute_output_shape(self, inputs_shape):
        return inputs_shape


class StopGradient(keras.layers.Layer):
    """The identity in the forward pass; no gradient flows back through it.

    Call args:
        inputs: any tensor.
    """

    def call(self, inputs):
        return tf.stop_gradient(inputs)

    def compute_output_shape(self, inputs_shape):
        return inputs_shape


class ImageROICrop(keras.layers.Layer):
    """Every ROI's crop of the (molded) input image, resized bilinearly, divided by 128.

    Args:
        crop_shape: (height, width) of the crops.

    Call args:
        inputs: [image [B, H, W, C] float, rois [B, N, (y1, x1, y2, x2)] normalized].

    Returns:
        [B, N, height, width, C] float32; a non-finite or empty ROI crops as the zero box,
        as in PyramidROIAlign.
    """

    def __init__(self, crop_shape, **kwargs):
        super().__init__(**kwargs)
        self.crop_shape = tuple(int(v) for v in crop_shape)

    def call(self, inputs):
        image, rois = inputs
        batch, count = tf.shape(rois)[0], tf.shape(rois)[1]
        # The ROIs come from the RPN; no gradient flows back into them.
        boxes = tf.stop_gradient(zero_invalid_rois(tf.reshape(tf.cast(rois, tf.float32),
                                                              [-1, 4])))
        crops = tf.image.crop_and_resize(tf.cast(image, tf.float32) / 128.0, boxes,
                                         tf.repeat(tf.range(batch), count), self.crop_shape)
        return tf.reshape(crops, tf.concat([[batch, count], tf.shape(crops)[1:]], axis=0))

    def compute_output_shape(self, inputs_shape):
        image_shape, rois_shape = inputs_shape
        return (*rois_shape[:2], *self.crop_shape, image_shape[-1])

    def get_config(self):
        return {**super().get_config(), "crop_shape": self.crop_shape}


def association_head(rois, image_meta, feature_maps, pool_size: int, embedding_size: int,
                     trains_features: bool = True, image=None):
    """Unit-length embeddings of every ROI.

    Args:
        rois: [B, N, (y1, x1, y2, x2)] normalized ROIs.
        image_meta: [B, META] image metadata.
        feature_maps: [P2, P3, P4, P5], each [B, H_l, W_l, C].
        pool_size: ROIAlign output side (POOL_SIZE).
        embedding_size: D.
        trains_features: False stops the head's gradient at its ROI-aligned features
            (layer ``mrcnn_assoc_features_fixed``), so the association loss trains the
            head's own layers only, not the backbone and pyramid the detector shares
            (ASSOCIATION_TRAINS_FEATURES).
        image: None, or the molded input images [B, H, W, C]: each ROI's crop of them
            (layer ``mrcnn_assoc_image_crop``, pool_size², bilinear) is concatenated to
            its features, so the head sees the object's colours (ASSOCIATION_SEES_IMAGE).

    Returns:
        [B, N, D] float32 L2-normalized embeddings (layer ``mrcnn_assoc``).
    """
    x = PyramidROIAlign((pool_size, pool_size), name="mrcnn_assoc_roi_align",
                        dtype=FLOAT32)([rois, image_meta] + list(feature_maps))
    if not trains_features:
        x = StopGradient(name="mrcnn_assoc_features_fixed", dtype=FLOAT32)(x)
    if image is not None:
        crops = ImageROICrop((pool_size, pool_size), name="mrcnn_assoc_image_crop",
                             dtype=FLOAT32)([image, rois])
        x = layers.Concatenate(name="mrcnn_assoc_features_and_image", dtype=FLOAT32)(
            [x, crops])
    x = TimeDistributed(layers.Conv2D(HEAD_CHANNELS, 3, padding="same", activation="relu"),
                        name="mrcnn_assoc_conv1")(x)
    x = TimeDistributed(layers.Conv2D(HEAD_CHANNELS, 3, strides=2, padding="same",
                                      activation="relu"), name="mrcnn_assoc_conv2")(x)
    x = TimeDistributed(layers.Flatten(), name="mrcnn_assoc_flatten")(x)
    x = TimeDistributed(layers.Dense(HEAD_FC_SIZE, activation="relu"), name="mrcnn_assoc_fc")(x)
    x = TimeDistributed(layers.Dense(embedding_size), name="mrcnn_assoc_embedding")(x)
    return L2Normalize(name="mrcnn_assoc", dtype=FLOAT32)(x)


def positive_roi_embeddings(target_instance_ids: tf.Tensor, embeddings: tf.Tensor):
    """The embeddings of the positive ROIs of the whole batch, with their identities.

    Instance ids are unique across a dataset, so rows of different images with
    the same id are the same object (in different frames).

    Args:
        target_instance_ids: [B, P] int, the instance id of each positive-ROI row,
            0 for the rows that are not positive (negatives, padding).
        embeddings: [B, P, D] the rows' embeddings.

    Returns:
        labels [N] int32, embeddings [N, D] float32 of the rows with an id > 0.
    """
    ids = tf.reshape(tf.cast(target_instance_ids, tf.int32), [-1])
    embeddings = tf.reshape(tf.cast(embeddings, tf.float32), [-1, embeddings.shape[-1]])
    positive = ids > 0
    return tf.boolean_mask(ids, positive), tf.boolean_mask(embeddings, positive)


@_serializable
def mrcnn_assoc_loss(target_instance_ids: tf.Tensor, embeddings: tf.Tensor) -> tf.Tensor:
    """The default association loss: batch-hard triplet loss, margin 0.2, over the
    positive ROIs of the batch (:func:`positive_roi_embeddings`).

    Returns:
        [] float32; 0 when no identity appears twice in the batch.
    """
    labels, embeddings = positive_roi_embeddings(target_instance_ids, embeddings)
    return triplet_batch_hard_loss(embeddings, labels)
