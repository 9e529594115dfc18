"""The Mask R-CNN losses, the L2 weight decay, and the named layers that report them.

Each head's loss is built from two plain tf functions: a *gatherer* that
picks the head's counted elements out of the graph tensors (the non-neutral
anchors, the kept ROIs, the positive ROIs' deltas or masks) and an
element-wise *formula* (softmax focal / cross-entropy, smooth-L1, binary
cross-entropy, soft dice). The five classic losses are those compositions;
``mrcnn.losses`` composes the same pieces with other hyper-parameters. Every
loss returns a float32 scalar that is exactly 0 (never NaN) when nothing
counts, e.g. an image without positive ROIs.
Shape shorthand: A = anchors per image, R = RPN box targets per image
(RPN_TRAIN_ANCHORS_PER_IMAGE), T = training ROIs per image, NC = classes,
N = counted elements, P = positive ROIs.
"""
from __future__ import annotations

from typing import Callable, Iterable, Sequence

import keras
import tensorflow as tf

# Probabilities are clipped this far from 0 and 1 before the log, as Keras's
# binary cross-entropy does.
_EPSILON = 1e-7

# Registered so that a LossLayer's config names its loss function and from_config finds it.
_serializable = keras.saving.register_keras_serializable(package="mrcnn")


def mean_or_zero(values: tf.Tensor) -> tf.Tensor:
    """Mean of all elements of ``values``; 0 when it is empty.

    Under a tf.distribute strategy with several replicas, the mean is over the
    elements of the whole global batch: each replica divides its sum by the
    mean count per replica (the all-reduced count / replicas), so that the
    replicas' values, averaged as the training model averages its loss
    (TrainingModel.compute_loss), give sum / count of the global batch, and a
    replica without positives does not halve the others' loss.
    """
    count = tf.cast(tf.size(values), tf.float32)
    replica = tf.distribute.get_replica_context()
    if replica is not None and replica.num_replicas_in_sync > 1:
        count = replica.all_reduce("sum", count) / replica.num_replicas_in_sync
    return tf.math.divide_no_nan(tf.reduce_sum(values), count)


# ---------------------------------------------------------------- formulas

def softmax_focal_loss(labels: tf.Tensor, logits: tf.Tensor, gamma: float = 0.0,
                       class_weights: Sequence[float] | tf.Tensor | None = None) -> tf.Tensor:
    """Per-element softmax focal loss ``-w[c] (1 - p_c)**gamma log p_c`` of the target class c.

    With ``gamma=0`` and no ``class_weights`` it is exactly the softmax
    cross-entropy (the classic classifier losses).

    Args:
        labels: [N] int target class ids.
        logits: [N, C] logits.
        gamma: focusing exponent, >= 0.
        class_weights: [C] factor of each target class, or None for 1.

    Returns:
        [N] float32 losses.
    """
    labels = tf.cast(labels, tf.int32)
    logits = tf.cast(logits, tf.float32)
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    if gamma:
        p_target = tf.exp(-loss)
        # Floored so that the power's gradient stays finite where p_target rounds to 1.
        loss *= tf.pow(tf.maximum(1.0 - p_target, _EPSILON), float(gamma))
    if class_weights is not None:
        loss *= tf.gather(tf.cast(class_weights, tf.float32), labels)
    return loss


def smooth_l1(diff: tf.Tensor, beta: float = 1.0) -> tf.Tensor:
    """Element-wise smooth-L1: 0.5 d² / beta if |d| < beta, else |d| - 0.5 beta.

    ``beta=1`` is the classic (Huber with threshold 1).

    Args:
        diff: [...] prediction minus target.
        beta: the threshold between the quadratic and the linear part, > 0.

    Returns:
        [...] float32 losses, the shape of ``diff``.
    """
    abs_diff = tf.abs(tf.cast(diff, tf.float32))
    return tf.where(abs_diff < beta, 0.5 * tf.square(abs_diff) / beta, abs_diff - 0.5 * beta)


def binary_cross_entropy(target: tf.Tensor, probs: tf.Tensor) -> tf.Tensor:
    """Element-wise binary cross-entropy of probabilities (clipped away from 0 and 1).

    Args:
        target: [...] float in [0, 1].
        probs: [...] predicted probabilities, the shape of ``target``.

    Returns:
        [...] float32 losses.
    """
    probs = tf.clip_by_value(tf.cast(probs, tf.float32), _EPSILON, 1.0 - _EPSILON)
    target = tf.cast(target, tf.float32)
    return -(target * tf.math.log(probs) + (1.0 - target) * tf.math.log(1.0 - probs))


def soft_dice_loss(target: tf.Tensor, probs: tf.Tensor, smooth: float = 1.0) -> tf.Tensor:
    """Per-mask soft dice loss ``1 - (2 Σ t p + s) / (Σ t + Σ p + s)``.

    Args:
        target: [P, h, w] float in {0, 1}.
        probs: [P, h, w] predicted probabilities.
        smooth: added to numerator and denominator; > 0 keeps an empty target
            with an empty prediction at loss 0.

    Returns:
        [P] float32 losses in [0, 1].
    """
    target = tf.cast(target, tf.float32)
    probs = tf.cast(probs, tf.float32)
    overlap = tf.reduce_sum(target * probs, axis=[1, 2])
    total = tf.reduce_sum(target, axis=[1, 2]) + tf.reduce_sum(probs, axis=[1, 2])
    return 1.0 - (2.0 * overlap + smooth) / (total + smooth)


# ---------------------------------------------------------------- gatherers

def counted_anchor_classes(rpn_match: tf.Tensor, rpn_class_logits: tf.Tensor):
    """The non-neutral anchors' fg/bg labels and logits.

    Args:
        rpn_match: [B, A, 1] int, 1 positive, -1 negative, 0 neutral anchor.
        rpn_class_logits: [B, A, (bg, fg)] RPN logits.

    Returns:
        labels [N] int32 (1 foreground, 0 background), logits [N, 2].
    """
    rpn_match = tf.squeeze(tf.cast(rpn_match, tf.int32), -1)
    counted = tf.where(rpn_match != 0)
    labels = tf.cast(tf.gather_nd(rpn_match, counted) == 1, tf.int32)
    return labels, tf.cast(tf.gather_nd(rpn_class_logits, counted), tf.float32)


def positive_anchor_deltas(target_bbox: tf.Tensor, rpn_match: tf.Tensor, rpn_bbox: tf.Tensor):
    """The positive anchors' target and predicted deltas, paired.

    The targets of an image are packed at the front of ``target_bbox``: its
    k-th positive anchor, counted in anchor order, pairs with row k. Positives
    beyond the R rows have no target and are left out.

    Args:
        target_bbox: [B, R, (dy, dx, log(dh), log(dw))] packed targets,
            already divided by RPN_BBOX_STD_DEV.
        rpn_match: [B, A, 1] int, 1 for the positive anchors.
        rpn_bbox: [B, A, (dy, dx, log(dh), log(dw))] predicted deltas.

    Returns:
        target [N, 4], predicted [N, 4] float32.
    """
    positive = tf.squeeze(tf.cast(rpn_match, tf.int32), -1) == 1
    # Rank of each positive among its image's positives = its target row.
    rank = tf.cumsum(tf.cast(positive, tf.int32), axis=1) - 1
    positive &= rank < tf.shape(target_bbox)[1]
    anchors = tf.where(positive)
    rows = tf.stack([anchors[:, 0], tf.cast(tf.gather_nd(rank, anchors), tf.int64)], axis=1)
    return (tf.gather_nd(tf.cast(target_bbox, tf.float32), rows),
            tf.gather_nd(tf.cast(rpn_bbox, tf.float32), anchors))


def counted_roi_classes(target_class_ids: tf.Tensor, pred_class_logits: tf.Tensor,
                        active_class_ids: tf.Tensor):
    """The ROI slots the classifier loss counts: their target classes and logits.

    Zero-padded ROI slots have target 0 and count as background. A ROI whose
    predicted class does not belong to its own image's dataset (inactive in
    that image's ``active_class_ids``) is left out, so that training on mixed
    datasets does not penalise predictions the image cannot label.

    Args:
        target_class_ids: [B, T] int, zero-padded.
        pred_class_logits: [B, T, NC] classifier logits.
        active_class_ids: [B, NC], 1 for the classes of the image's dataset, else 0.

    Returns:
        labels [N] int32, logits [N, NC] float32.
    """
    pred_class_logits = tf.cast(pred_class_logits, tf.float32)
    pred_class_ids = tf.argmax(pred_class_logits, axis=2)
    pred_active = tf.gather(tf.cast(active_class_ids, tf.float32), pred_class_ids, batch_dims=1)
    kept = tf.where(pred_active > 0)
    return (tf.cast(tf.gather_nd(target_class_ids, kept), tf.int32),
            tf.gather_nd(pred_class_logits, kept))


def _positive_rois(target_class_ids: tf.Tensor):
    """([P, 2] (image, roi) indices, [P] class ids) of the ROIs with class id > 0."""
    target_class_ids = tf.cast(target_class_ids, tf.int64)
    positive = tf.where(target_class_ids > 0)
    return positive, tf.gather_nd(target_class_ids, positive)


def positive_roi_deltas(target_deltas: tf.Tensor, target_class_ids: tf.Tensor,
                        pred_bbox: tf.Tensor):
    """The positive ROIs' target deltas and the deltas predicted for their target class.

    Args:
        target_deltas: [B, T, (dy, dx, log(dh), log(dw))], already divided by BBOX_STD_DEV.
        target_class_ids: [B, T] int, > 0 for the positive ROIs.
        pred_bbox: [B, T, NC, (dy, dx, log(dh), log(dw))] class-specific deltas.

    Returns:
        target [P, 4], predicted [P, 4] float32.
    """
    positive, class_ids = _positive_rois(target_class_ids)
    pred = tf.gather_nd(tf.cast(pred_bbox, tf.float32),
                        tf.concat([positive, class_ids[:, None]], axis=1))
    return tf.gather_nd(tf.cast(target_deltas, tf.float32), positive), pred


def positive_roi_masks(target_masks: tf.Tensor, target_class_ids: tf.Tensor,
                       pred_masks: tf.Tensor):
    """The positive ROIs' target masks and the masks predicted for their target class.

    Args:
        target_masks: [B, T, h, w] float in {0, 1}.
        target_class_ids: [B, T] int, > 0 for the positive ROIs.
        pred_masks: [B, T, h, w, NC] sigmoid probabilities.

    Returns:
        target [P, h, w], predicted [P, h, w] float32.
    """
    positive, class_ids = _positive_rois(target_class_ids)
    pred = tf.gather(tf.gather_nd(tf.cast(pred_masks, tf.float32), positive), class_ids,
                     axis=3, batch_dims=1)
    return tf.gather_nd(tf.cast(target_masks, tf.float32), positive), pred


# ---------------------------------------------------------------- the classic losses

@_serializable
def rpn_class_loss(rpn_match: tf.Tensor, rpn_class_logits: tf.Tensor) -> tf.Tensor:
    """Anchor foreground/background cross-entropy over the non-neutral anchors.

    Args: as :func:`counted_anchor_classes`.

    Returns:
        Scalar mean softmax cross-entropy; 0 when all anchors are neutral.
    """
    return mean_or_zero(softmax_focal_loss(*counted_anchor_classes(rpn_match, rpn_class_logits)))


@_serializable
def rpn_bbox_loss(target_bbox: tf.Tensor, rpn_match: tf.Tensor, rpn_bbox: tf.Tensor) -> tf.Tensor:
    """Smooth-L1 between the positive anchors' predicted deltas and their targets.

    Args: as :func:`positive_anchor_deltas`.

    Returns:
        Scalar mean over positives × 4 coordinates; 0 when there are no positives.
    """
    target, pred = positive_anchor_deltas(target_bbox, rpn_match, rpn_bbox)
    return mean_or_zero(smooth_l1(pred - target))


@_serializable
def mrcnn_class_loss(target_class_ids: tf.Tensor, pred_class_logits: tf.Tensor,
                     active_class_ids: tf.Tensor) -> tf.Tensor:
    """Classifier cross-entropy over the ROI slots of :func:`counted_roi_classes`.

    Args: as :func:`counted_roi_classes`.

    Returns:
        Scalar: sum of the kept ROIs' losses / number kept; 0 when none is kept.
    """
    return mean_or_zero(softmax_focal_loss(
        *counted_roi_classes(target_class_ids, pred_class_logits, active_class_ids)))


@_serializable
def mrcnn_bbox_loss(target_deltas: tf.Tensor, target_class_ids: tf.Tensor,
                    pred_bbox: tf.Tensor) -> tf.Tensor:
    """Smooth-L1 of the positive ROIs' deltas predicted for their target class.

    Args: as :func:`positive_roi_deltas`.

    Returns:
        Scalar mean over positives × 4 coordinates; 0 when there are no positives.
    """
    target, pred = positive_roi_deltas(target_deltas, target_class_ids, pred_bbox)
    return mean_or_zero(smooth_l1(pred - target))


@_serializable
def mrcnn_mask_loss(target_masks: tf.Tensor, target_class_ids: tf.Tensor,
                    pred_masks: tf.Tensor) -> tf.Tensor:
    """Binary cross-entropy of the positive ROIs' masks predicted for their target class.

    Args: as :func:`positive_roi_masks`.

    Returns:
        Scalar mean over positives × h × w pixels; 0 when there are no positives.
    """
    return mean_or_zero(binary_cross_entropy(
        *positive_roi_masks(target_masks, target_class_ids, pred_masks)))


# Each head's loss name -> the gatherer of its counted (targets, predictions).
COUNTED_ELEMENTS = {
    "rpn_class_loss": counted_anchor_classes,
    "rpn_bbox_loss": positive_anchor_deltas,
    "mrcnn_class_loss": counted_roi_classes,
    "mrcnn_bbox_loss": positive_roi_deltas,
    "mrcnn_mask_loss": positive_roi_masks,
}


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


class _NamedValueLayer(keras.layers.Lambda):
    """A layer computing a scalar ``function(*inputs)`` and tracking its mean under its name.

    The layer's name is also the name of a ``keras.metrics.Mean`` it owns, so
    ``fit`` shows and ``History`` records ``<name>`` and ``val_<name>``.
    Keras 3 notes (checked on 3.15): a metric assigned as a layer attribute is
    tracked, and ``Model.metrics`` collects the metrics of all sublayers, so
    no private attribute is needed. ``compute_output_shape`` is given so that
    Keras does not trace ``call`` on symbolic inputs to infer the shape.
    Registered functions (the classic losses, ``mrcnn.losses``' choices, the
    built-in monitors) reload by name; a lambda only reloads with unsafe
    deserialization enabled.

    Call args:
        inputs: list of the function's arguments, shapes as it requires.

    Returns:
        [1] the function's value (shape [1] so that it can be a model output
        that predict/evaluate stack over batches).
    """

    def __init__(self, function: Callable[..., tf.Tensor], **kwargs):
        super().__init__(function, **kwargs)
        self.tracker = keras.metrics.Mean(name=self.name)

    def compute_output_shape(self, inputs_shape):
        return (1,)

    @classmethod
    def from_config(cls, config, custom_objects=None, safe_mode=None):
        config = dict(config)
        # Lambda would pass the function as ``function=``; the constructors take it first.
        function = keras.saving.deserialize_keras_object(
            config.pop("function"), custom_objects=custom_objects,
            safe_mode=safe_mode is not False)
        config.pop("arguments", None)
        return cls(function, **config)


@_serializable
class LossLayer(_NamedValueLayer):
    """A named layer that adds ``weight * loss_fn(*inputs)`` to the model's loss.

    Compile the model with no ``loss=``: ``loss`` is then the sum of every
    ``add_loss`` term. The metric records the weighted value, as the classic
    model did, so the named losses add up to ``loss`` (with the L2 term, if any);
    exactly so per epoch when all batches have the same size, since Keras
    averages ``loss`` weighted by batch size and these metrics per batch.
    ``add_loss`` is only valid inside ``call``. The training model
    (``network.TrainingModel``) sums the layers' weighted outputs instead of
    the ``add_loss`` list, which the replicas of a MirroredStrategy share. See :class:`_NamedValueLayer` for the
    metric, the inputs and the output (the unweighted loss).

    Args:
        loss_fn: the loss function; called with the layer's inputs as
            positional arguments, returns a scalar.
        weight: factor of the loss in the total (LOSS_WEIGHTS[name]).
        name: the layer's and the metric's name.
    """

    def __init__(self, loss_fn: Callable[..., tf.Tensor], weight: float = 1.0, **kwargs):
        super().__init__(loss_fn, **kwargs)
        self.weight = float(weight)

    def call(self, inputs):
        value = tf.reshape(self.function(*inputs), [])
        weighted = self.weight * value
        self.add_loss(weighted)
        self.tracker.update_state(weighted)
        return tf.reshape(value, [1])

    def get_config(self):
        return {**super().get_config(), "weight": self.weight}


@_serializable
class MonitorLayer(_NamedValueLayer):
    """A named layer that reports ``monitor_fn(*inputs)`` without adding it to the loss.

    It calls no ``add_loss``, so ``loss`` and the gradients do not see it;
    ``fit`` shows its mean and ``val_`` twin next to the losses. See
    :class:`_NamedValueLayer` for the metric, the inputs and the output.

    Args:
        monitor_fn: called with the layer's inputs as positional arguments,
            returns a scalar.
        name: the layer's and the metric's name.
    """

    def call(self, inputs):
        value = tf.stop_gradient(tf.reshape(tf.cast(self.function(*inputs), tf.float32), []))
        self.tracker.update_state(value)
        return tf.reshape(value, [1])
