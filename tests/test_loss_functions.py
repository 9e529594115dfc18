"""mrcnn.losses on hand-computed values: focal, class weights, smooth-L1, dice, the
monitors, the empty cases, string choices and serialization."""
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from mrcnn import losses
from mrcnn.graph import losses as graph_losses
from mrcnn.graph import monitors


def log_softmax(logits):
    return logits - np.log(np.sum(np.exp(logits), axis=-1, keepdims=True))


# Three ROIs of one image, three classes; targets 1, 0, 2; every class active.
TARGETS = np.array([[1, 0, 2]], np.int32)
LOGITS = np.array([[[0.0, 2.0, -1.0], [1.0, 0.5, 0.0], [0.3, 0.2, -0.4]]], np.float32)
ACTIVE = np.ones((1, 3), np.float32)


def class_loss(choice):
    return float(losses.head_loss("mrcnn_class_loss", choice)(TARGETS, LOGITS, ACTIVE))


def test_focal_with_gamma_0_is_exactly_the_classic_cross_entropy():
    classic = graph_losses.mrcnn_class_loss(TARGETS, LOGITS, ACTIVE)
    assert class_loss(losses.focal(gamma=0.0)) == float(classic)
    rpn_match = np.array([[[1], [-1], [0], [1]]], np.int32)
    rpn_logits = np.array([[[0.2, 1.0], [2.0, -1.0], [5.0, 5.0], [1.5, 0.0]]], np.float32)
    focal_rpn = losses.head_loss("rpn_class_loss", losses.focal(gamma=0))
    assert float(focal_rpn(rpn_match, rpn_logits)) == float(
        graph_losses.rpn_class_loss(rpn_match, rpn_logits))


def test_focal_gamma_2_on_three_rois_by_hand():
    log_p = log_softmax(LOGITS[0].astype(np.float64))[np.arange(3), TARGETS[0]]
    p = np.exp(log_p)
    expected = np.mean(-(1 - p) ** 2 * log_p)
    assert class_loss(losses.focal(gamma=2.0)) == pytest.approx(expected, rel=1e-5)
    # alpha 0.25 weights the object classes, 0.75 the background (ROI 1).
    alpha = np.array([0.25, 0.75, 0.25])
    assert class_loss("focal:gamma=2,alpha=0.25") == pytest.approx(
        np.mean(-alpha * (1 - p) ** 2 * log_p), rel=1e-5)
    # The easy ROI loses most: focal shrinks the well-classified ROI 0 by (1 - p)².
    assert class_loss(losses.focal(gamma=2.0)) < class_loss("classic")


def test_class_weights_multiply_each_roi_and_divide_by_the_count():
    log_p = log_softmax(LOGITS[0].astype(np.float64))[np.arange(3), TARGETS[0]]
    weights = np.array([0.5, 2.0, 4.0])  # classes 0, 1, 2
    expected = np.sum(-weights[TARGETS[0]] * log_p) / 3
    assert class_loss(losses.class_weighted([0.5, 2.0, 4.0])) == pytest.approx(expected, rel=1e-5)
    assert class_loss(losses.class_weighted([1, 1, 1])) == pytest.approx(class_loss("classic"))
    # A per-class alpha is the same weighting, focal or not.
    assert class_loss(losses.focal(gamma=0, alpha=[0.5, 2.0, 4.0])) == pytest.approx(expected)


def test_smooth_l1_beta():
    diff = tf.constant([-2.0, -0.4, 0.0, 0.3, 1.0])
    np.testing.assert_allclose(graph_losses.smooth_l1(diff, beta=0.5),
                               [1.75, 0.16, 0.0, 0.09, 0.75], rtol=1e-6)
    target = np.zeros((1, 2, 4), np.float32)
    class_ids = np.array([[1, 0]], np.int32)
    pred = np.zeros((1, 2, 2, 4), np.float32)
    pred[0, 0, 1] = [0.2, -3.0, 0.0, 0.5]
    expected = (0.04 + 2.75 + 0 + 0.25) / 4  # beta 0.5: 0.2² ; 3 - 0.25 ; 0 ; 0.5 - 0.25
    bbox = losses.head_loss("mrcnn_bbox_loss", losses.smooth_l1(beta=0.5))
    assert float(bbox(target, class_ids, pred)) == pytest.approx(expected, rel=1e-6)
    classic = losses.head_loss("mrcnn_bbox_loss", "smooth_l1")
    assert float(classic(target, class_ids, pred)) == float(
        graph_losses.mrcnn_bbox_loss(target, class_ids, pred))


def mask_inputs():
    """ROI 0 is class 1 with a hand-drawn 2x2 target; ROI 1 is a negative."""
    target = np.array([[[[1, 0], [1, 0]], [[1, 1], [1, 1]]]], np.float32)
    pred = np.full((1, 2, 2, 2, 2), 0.9, np.float32)
    pred[0, 0, :, :, 1] = [[0.5, 0.5], [1.0, 0.0]]
    return target, np.array([[1, 0]], np.int32), pred


def test_dice_on_hand_drawn_masks():
    # overlap 0.5 + 1 = 1.5; |target| 2, |pred| 2: 1 - (3 + 1) / (4 + 1) = 0.2.
    dice = losses.head_loss("mrcnn_mask_loss", losses.dice(smooth=1.0))
    assert float(dice(*mask_inputs())) == pytest.approx(0.2, rel=1e-6)
    sharp = losses.head_loss("mrcnn_mask_loss", "dice:smooth=0")
    assert float(sharp(*mask_inputs())) == pytest.approx(1 - 3 / 4, rel=1e-6)
    bce = float(graph_losses.mrcnn_mask_loss(*mask_inputs()))
    mixed = losses.head_loss("mrcnn_mask_loss", losses.bce_dice(bce_weight=0.5, dice_weight=2))
    assert float(mixed(*mask_inputs())) == pytest.approx(0.5 * bce + 2 * 0.2, rel=1e-5)


def test_builtin_monitors_by_hand():
    target, class_ids, pred = mask_inputs()
    # ROI 0: target {(0,0), (1,0)}, prediction >= 0.5 {(0,0), (0,1), (1,0)}: IoU 2/3.
    assert float(monitors.mask_iou(target, class_ids, pred)) == pytest.approx(2 / 3)
    rois = np.array([[[0, 0, .5, .5], [.1, .1, .3, .3], [0, 0, 0, 0]]], np.float32)
    targets = np.array([[2, 0, 0]], np.int32)
    logits = np.array([[[0, 0, 1], [0, 1, 0], [1, 0, 0]]], np.float32)
    # The padding row does not count: ROI 0 right, ROI 1 wrong.
    assert float(monitors.roi_accuracy(targets, logits, rois)) == pytest.approx(0.5)
    assert float(monitors.positive_fraction(targets, rois)) == pytest.approx(0.5)


HEAD_EMPTY_INPUTS = {
    "rpn_class_loss": [np.zeros((1, 3, 1), np.int32), np.ones((1, 3, 2), np.float32)],
    "rpn_bbox_loss": [np.ones((1, 2, 4), np.float32), -np.ones((1, 3, 1), np.int32),
                      np.ones((1, 3, 4), np.float32)],
    "mrcnn_class_loss": [np.ones((1, 2), np.int32), np.ones((1, 2, 3), np.float32),
                         np.zeros((1, 3), np.float32)],
    "mrcnn_bbox_loss": [np.ones((1, 2, 4), np.float32), np.zeros((1, 2), np.int32),
                        np.ones((1, 2, 3, 4), np.float32)],
    "mrcnn_mask_loss": [np.ones((1, 2, 2, 2), np.float32), np.zeros((1, 2), np.int32),
                        np.full((1, 2, 2, 2, 3), 0.5, np.float32)],
}
CHOICES = [
    ("rpn_class_loss", losses.focal()), ("rpn_class_loss", losses.class_weighted([1, 3])),
    ("mrcnn_class_loss", losses.focal(gamma=2, alpha=0.25)),
    ("mrcnn_class_loss", keras.losses.CategoricalFocalCrossentropy(gamma=2.0)),
    ("rpn_bbox_loss", losses.smooth_l1(0.1)), ("mrcnn_bbox_loss", keras.losses.Huber()),
    ("mrcnn_mask_loss", losses.dice()), ("mrcnn_mask_loss", losses.bce_dice()),
    ("mrcnn_mask_loss", keras.losses.BinaryCrossentropy()),
]


@pytest.mark.parametrize("head,choice", CHOICES, ids=lambda c: repr(c)[:30])
def test_every_loss_is_zero_with_finite_gradient_when_nothing_counts(head, choice):
    fn = losses.head_loss(head, choice)
    inputs = [tf.constant(v) for v in HEAD_EMPTY_INPUTS[head]]
    with tf.GradientTape() as tape:
        tape.watch(inputs[-1] if head != "mrcnn_class_loss" else inputs[1])
        value = fn(*inputs)
    gradient = tape.gradient(value, inputs[-1] if head != "mrcnn_class_loss" else inputs[1])
    assert float(value) == 0.0
    assert gradient is None or (np.isfinite(gradient.numpy()).all()
                                and not np.any(gradient.numpy()))


def test_string_choices_parse_hyper_parameters():
    assert losses.parse_choice("focal:gamma=1.5, alpha=[0.1, 1, 1]") == losses.focal(
        1.5, [0.1, 1.0, 1.0])
    assert losses.parse_choice("bce_dice:dice_weight=0.5") == losses.bce_dice(1.0, 0.5)
    assert losses.parse_choice("classic") == "classic"
    assert losses.parse_choice("mrcnn.graph.monitors:mask_iou") is monitors.mask_iou


@pytest.mark.parametrize("loss", [losses.focal(1.0, [0.2, 0.8]), losses.class_weighted([1, 2]),
                                  losses.smooth_l1(0.3), losses.dice(0.0),
                                  losses.bce_dice(2.0, 0.5)], ids=repr)
def test_factory_results_reload_from_json_with_their_hyper_parameters(loss):
    text = json.dumps(keras.saving.serialize_keras_object(loss))
    clone = keras.saving.deserialize_keras_object(json.loads(text))
    assert type(clone) is type(loss) and clone.get_config() == loss.get_config()
    assert repr(clone) == repr(loss)


def test_loss_layer_with_a_chosen_loss_reloads_without_custom_objects():
    for choice in (losses.focal(gamma=3.0, alpha=0.3), keras.losses.Huber(delta=0.5)):
        head = "mrcnn_class_loss" if isinstance(choice, losses.HeadLoss) else "mrcnn_bbox_loss"
        layer = graph_losses.LossLayer(losses.head_loss(head, choice), 0.5, name=head)
        text = json.dumps(keras.saving.serialize_keras_object(layer))
        clone = keras.saving.deserialize_keras_object(json.loads(text))
        assert isinstance(clone, graph_losses.LossLayer) and clone.weight == 0.5
        assert clone.function.head == head
        assert clone.function.loss.get_config() == choice.get_config()
    monitor = graph_losses.MonitorLayer(monitors.mask_iou, name="mask_iou")
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(monitor))
    assert isinstance(clone, graph_losses.MonitorLayer) and clone.function is monitors.mask_iou
