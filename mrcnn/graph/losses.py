"""The five Mask R-CNN losses, the L2 weight decay, and the named layer that registers a loss.

Each loss is a plain tf function returning a float32 scalar that is exactly 0
(never NaN) when nothing counts, e.g. an image without positive ROIs.
Shape shorthand: A = anchors per image, R = RPN box targets per image
(RPN_TRAIN_ANCHORS_PER_IMAGE), T = training ROIs per image, NC = classes.
"""
from __future__ import annotations

from typing import Callable, Iterable

import keras
import tensorflow as tf

# Probabilities are clipped this far from 0 and 1 before the log, as Keras's
# binary cross-entropy does.
_EPSILON = 1e-7

# Registered so that a LossLayer's config names its loss function and from_config finds it.
_serializable = keras.saving.register_keras_serializable(package="mrcnn")


def _mean_or_zero(values: tf.Tensor) -> tf.Tensor:
    """Mean of all elements of ``values``; 0 when it is empty."""
    return tf.math.divide_no_nan(tf.reduce_sum(values), tf.cast(tf.size(values), tf.float32))


def smooth_l1(diff: tf.Tensor) -> tf.Tensor:
    """Element-wise smooth-L1 (Huber with threshold 1): 0.5 d² if |d| < 1, else |d| - 0.5.

    Args:
        diff: [...] prediction minus target.

    Returns:
        [...] float32 losses, the shape of ``diff``.
    """
    abs_diff = tf.abs(tf.cast(diff, tf.float32))
    return tf.where(abs_diff < 1.0, 0.5 * tf.square(abs_diff), abs_diff - 0.5)


@_serializable
def rpn_class_loss(rpn_match: tf.Tensor, rpn_class_logits: tf.Tensor) -> tf.Tensor:
    """Anchor foreground/background cross-entropy over the non-neutral anchors.

    Args:
        rpn_match: [B, A, 1] int, 1 positive, -1 negative, 0 neutral anchor.
        rpn_class_logits: [B, A, (bg, fg)] RPN logits.

    Returns:
        Scalar mean sparse softmax cross-entropy; 0 when all anchors are neutral.
    """
    rpn_match = tf.squeeze(tf.cast(rpn_match, tf.int32), -1)
    counted = tf.where(rpn_match != 0)
    labels = tf.cast(tf.gather_nd(rpn_match, counted) == 1, tf.int32)
    logits = tf.cast(tf.gather_nd(rpn_class_logits, counted), tf.float32)
    return _mean_or_zero(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))


@_serializable
def rpn_bbox_loss(target_bbox: tf.Tensor, rpn_match: tf.Tensor, rpn_bbox: tf.Tensor) -> tf.Tensor:
    """Smooth-L1 between the positive anchors' predicted deltas and their targets.

    The targets of an image are packed at the front of ``target_bbox``: its
    k-th positive anchor, counted in anchor order, pairs with row k. Positives
    beyond the R rows have no target and are ignored.

    Args:
        target_bbox: [B, R, (dy, dx, log(dh), log(dw))] packed targets,
            already divided by RPN_BBOX_STD_DEV.
        rpn_match: [B, A, 1] int, 1 for the positive anchors.
        rpn_bbox: [B, A, (dy, dx, log(dh), log(dw))] predicted deltas.

    Returns:
        Scalar mean over positives × 4 coordinates; 0 when there are no positives.
    """
    positive = tf.squeeze(tf.cast(rpn_match, tf.int32), -1) == 1
    # Rank of each positive among its image's positives = its target row.
    rank = tf.cumsum(tf.cast(positive, tf.int32), axis=1) - 1
    positive &= rank < tf.shape(target_bbox)[1]
    anchors = tf.where(positive)
    rows = tf.stack([anchors[:, 0], tf.cast(tf.gather_nd(rank, anchors), tf.int64)], axis=1)
    diff = tf.gather_nd(tf.cast(rpn_bbox, tf.float32), anchors) - tf.gather_nd(
        tf.cast(target_bbox, tf.float32), rows)
    return _mean_or_zero(smooth_l1(diff))


@_serializable
def mrcnn_class_loss(target_class_ids: tf.Tensor, pred_class_logits: tf.Tensor,
                     active_class_ids: tf.Tensor) -> tf.Tensor:
    """Classifier cross-entropy over every ROI slot, ignoring classes foreign to the image.

    Zero-padded ROI slots have target 0 and count as background. A ROI whose
    predicted class does not belong to its own image's dataset (inactive in
    that image's ``active_class_ids``) is left out, so that training on mixed
    datasets does not penalise predictions the image cannot label.

    Args:
        target_class_ids: [B, T] int, zero-padded.
        pred_class_logits: [B, T, NC] classifier logits.
        active_class_ids: [B, NC], 1 for the classes of the image's dataset, else 0.

    Returns:
        Scalar: sum of the kept ROIs' losses / number kept; 0 when none is kept.
    """
    pred_class_logits = tf.cast(pred_class_logits, tf.float32)
    pred_class_ids = tf.argmax(pred_class_logits, axis=2)
    pred_active = tf.gather(tf.cast(active_class_ids, tf.float32), pred_class_ids, batch_dims=1)
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(target_class_ids, tf.int32), logits=pred_class_logits)
    return tf.math.divide_no_nan(tf.reduce_sum(loss * pred_active), tf.reduce_sum(pred_active))


def _positive_rois(target_class_ids: tf.Tensor):
    """([P, 2] (image, roi) indices, [P] class ids) of the ROIs with class id > 0."""
    target_class_ids = tf.cast(target_class_ids, tf.int64)
    positive = tf.where(target_class_ids > 0)
    return positive, tf.gather_nd(target_class_ids, positive)


@_serializable
def mrcnn_bbox_loss(target_deltas: tf.Tensor, target_class_ids: tf.Tensor,
                    pred_bbox: tf.Tensor) -> tf.Tensor:
    """Smooth-L1 of the positive ROIs' deltas predicted for their target class.

    Args:
        target_deltas: [B, T, (dy, dx, log(dh), log(dw))], already divided by BBOX_STD_DEV.
        target_class_ids: [B, T] int, > 0 for the positive ROIs.
        pred_bbox: [B, T, NC, (dy, dx, log(dh), log(dw))] class-specific deltas.

    Returns:
        Scalar mean over positives × 4 coordinates; 0 when there are no positives.
    """
    positive, class_ids = _positive_rois(target_class_ids)
    pred = tf.gather_nd(tf.cast(pred_bbox, tf.float32),
                        tf.concat([positive, class_ids[:, None]], axis=1))
    target = tf.gather_nd(tf.cast(target_deltas, tf.float32), positive)
    return _mean_or_zero(smooth_l1(pred - target))


@_serializable
def mrcnn_mask_loss(target_masks: tf.Tensor, target_class_ids: tf.Tensor,
                    pred_masks: tf.Tensor) -> tf.Tensor:
    """Binary cross-entropy of the positive ROIs' masks predicted for their target class.

    Args:
        target_masks: [B, T, h, w] float in {0, 1}.
        target_class_ids: [B, T] int, > 0 for the positive ROIs.
        pred_masks: [B, T, h, w, NC] sigmoid probabilities.

    Returns:
        Scalar mean over positives × h × w pixels; 0 when there are no positives.
    """
    positive, class_ids = _positive_rois(target_class_ids)
    pred = tf.gather(tf.gather_nd(tf.cast(pred_masks, tf.float32), positive), class_ids,
                     axis=3, batch_dims=1)
    pred = tf.clip_by_value(pred, _EPSILON, 1.0 - _EPSILON)
    target = tf.gather_nd(tf.cast(target_masks, tf.float32), positive)
    bce = -(target * tf.math.log(pred) + (1.0 - target) * tf.math.log(1.0 - pred))
    return _mean_or_zero(bce)


def l2_regularization(weights: Iterable[tf.Tensor], weight_decay: float) -> tf.Tensor:
    """The classic weight decay: ``weight_decay`` × Σ mean(w²) over the tensors.

    Each tensor contributes the mean, not the sum, of its squares, as in the
    classic model. The caller chooses the tensors: the classic model passes
    the trainable weights except BatchNorm gamma and beta (biases included).

    Args:
        weights: tensors or variables of any shape.
        weight_decay: the factor (WEIGHT_DECAY).

    Returns:
        Scalar float32; 0 for no tensors.
    """
    terms = [tf.reduce_mean(tf.square(tf.cast(w, tf.float32))) for w in weights]
    return weight_decay * tf.add_n(terms) if terms else tf.constant(0.0)


class LossLayer(keras.layers.Lambda):
    """A named layer that adds ``weight * loss_fn(*inputs)`` to the model's loss.

    Its name (e.g. ``rpn_class_loss``) is also the name of a
    ``keras.metrics.Mean`` the layer owns, so ``fit`` shows and ``History``
    records ``rpn_class_loss`` and ``val_rpn_class_loss`` next to ``loss``.
    Compile the model with no ``loss=``: ``loss`` is then the sum of every
    ``add_loss`` term. The metric records the weighted value, as the classic
    model did, so the named losses add up to ``loss`` (with the L2 term, if any);
    exactly so per epoch when all batches have the same size, since Keras
    averages ``loss`` weighted by batch size and these metrics per batch.

    Keras 3 notes (checked on 3.15): a metric assigned as a layer attribute is
    tracked, and ``Model.metrics`` collects the metrics of all sublayers, so
    no private attribute is needed; ``add_loss`` is only valid inside
    ``call``. ``compute_output_shape`` is given so that Keras does not trace
    ``call`` on symbolic inputs to infer the shape. The five losses are
    registered as serializable, so ``from_config`` finds them by name; a
    lambda ``loss_fn`` only reloads with unsafe deserialization enabled.
    Works under ``tf.distribute.MirroredStrategy``.

    Args:
        loss_fn: the loss function; called with the layer's inputs as
            positional arguments, returns a scalar.
        weight: factor of the loss in the total (LOSS_WEIGHTS[name]).
        name: the layer's and the metric's name.

    Call args:
        inputs: list of the loss function's arguments, shapes as it requires.

    Returns:
        [1] the unweighted loss (shape [1] so that the value can be a model
        output that predict/evaluate stack over batches).
    """

    def __init__(self, loss_fn: Callable[..., tf.Tensor], weight: float = 1.0, **kwargs):
        super().__init__(loss_fn, **kwargs)
        self.weight = float(weight)
        self.loss_tracker = keras.metrics.Mean(name=self.name)

    def call(self, inputs):
        value = tf.reshape(self.function(*inputs), [])
        weighted = self.weight * value
        self.add_loss(weighted)
        self.loss_tracker.update_state(weighted)
        return tf.reshape(value, [1])

    def compute_output_shape(self, inputs_shape):
        return (1,)

    def get_config(self):
        return {**super().get_config(), "weight": self.weight}

    @classmethod
    def from_config(cls, config, custom_objects=None, safe_mode=None):
        config = dict(config)
        # Lambda would pass the function as ``function=``; this constructor names it loss_fn.
        loss_fn = keras.saving.deserialize_keras_object(
            config.pop("function"), custom_objects=custom_objects,
            safe_mode=safe_mode is not False)
        config.pop("arguments", None)
        return cls(loss_fn, **config)
