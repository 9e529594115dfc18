"""The losses on hand-computed values, their empty cases, and the named loss layers in fit."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from mrcnn.graph.losses import (LossLayer, l2_regularization, mrcnn_bbox_loss, mrcnn_class_loss,
                                mrcnn_mask_loss, rpn_bbox_loss, rpn_class_loss, smooth_l1)


def np_smooth_l1(diff):
    diff = np.abs(diff)
    return np.where(diff < 1, 0.5 * diff ** 2, diff - 0.5)


def np_cross_entropy(logits, label):
    return -(logits[label] - np.log(np.sum(np.exp(logits))))


def value_and_gradient(loss_fn, *args, wrt):
    """The loss and its gradient with respect to argument number ``wrt``."""
    args = [tf.constant(a) for a in args]
    with tf.GradientTape() as tape:
        tape.watch(args[wrt])
        value = loss_fn(*args)
    return value.numpy(), tape.gradient(value, args[wrt]).numpy()


def assert_exact_zero(value, gradient):
    assert value == 0.0 and value.shape == ()
    assert not np.isnan(gradient).any()
    np.testing.assert_array_equal(gradient, 0)


def test_smooth_l1():
    diff = tf.constant([-2.0, -0.5, 0.0, 0.5, 1.0, 3.0])
    np.testing.assert_allclose(smooth_l1(diff), [1.5, 0.125, 0.0, 0.125, 0.5, 2.5])


def test_rpn_class_loss_known_values():
    rpn_match = np.array([[[1], [0], [-1]]], np.int32)
    logits = np.array([[[0.0, np.log(3.0)], [5.0, -5.0], [0.0, 0.0]]], np.float32)
    # Positive: p(fg) = 3/4. Negative: p(bg) = 1/2. The neutral anchor does not count.
    expected = (-np.log(3 / 4) + np.log(2.0)) / 2
    assert float(rpn_class_loss(rpn_match, logits)) == pytest.approx(expected, rel=1e-6)


def test_rpn_class_loss_all_neutral_is_zero():
    value, gradient = value_and_gradient(rpn_class_loss, np.zeros((2, 3, 1), np.int32),
                                         np.ones((2, 3, 2), np.float32), wrt=1)
    assert_exact_zero(value, gradient)


def test_rpn_bbox_loss_pairs_each_image_positives_with_its_packed_targets():
    rng = np.random.default_rng(0)
    rpn_match = np.array([[1, 0, 1, -1], [0, 0, 0, 1]], np.int32)[..., None]
    rpn_bbox = rng.normal(scale=2.0, size=(2, 4, 4)).astype(np.float32)
    target_bbox = rng.normal(scale=2.0, size=(2, 3, 4)).astype(np.float32)
    # Image 0: anchors 0 and 2 -> target rows 0 and 1. Image 1: anchor 3 -> row 0.
    diff = np.stack([rpn_bbox[0, 0] - target_bbox[0, 0], rpn_bbox[0, 2] - target_bbox[0, 1],
                     rpn_bbox[1, 3] - target_bbox[1, 0]])
    value = rpn_bbox_loss(target_bbox, rpn_match, rpn_bbox)
    assert float(value) == pytest.approx(np_smooth_l1(diff).mean(), rel=1e-5)


def test_rpn_bbox_loss_ignores_positives_without_a_target_row():
    rpn_match = np.ones((1, 3, 1), np.int32)
    rpn_bbox = np.array([[[0.5] * 4, [9.0] * 4, [9.0] * 4]], np.float32)
    target_bbox = np.zeros((1, 1, 4), np.float32)
    assert float(rpn_bbox_loss(target_bbox, rpn_match, rpn_bbox)) == pytest.approx(0.125)


def test_rpn_bbox_loss_without_positives_is_zero():
    rpn_match = np.array([[[0], [-1]]], np.int32)
    value, gradient = value_and_gradient(
        lambda bbox: rpn_bbox_loss(np.zeros((1, 2, 4), np.float32), rpn_match, bbox),
        np.ones((1, 2, 4), np.float32), wrt=0)
    assert_exact_zero(value, gradient)


def test_mrcnn_class_loss_excludes_predictions_inactive_in_their_own_image():
    active = np.array([[1, 1, 0], [1, 0, 1]], np.float32)
    targets = np.array([[0, 1], [2, 0]], np.int32)
    # Predicted classes: image 0 -> [2 (inactive there), 1]; image 1 -> [2, 1 (inactive there)].
    # Image 1's first ROI counts although class 2 is inactive in image 0.
    logits = np.array([[[0.0, 1.0, 2.0], [0.5, 1.5, 0.0]],
                       [[0.0, 0.0, 3.0], [0.0, 2.0, 1.0]]], np.float32)
    expected = (np_cross_entropy(logits[0, 1], 1) + np_cross_entropy(logits[1, 0], 2)) / 2
    value = mrcnn_class_loss(targets, logits, active)
    assert float(value) == pytest.approx(expected, rel=1e-6)


def test_mrcnn_class_loss_counts_zero_padded_slots_as_background():
    logits = np.array([[[2.0, 0.0], [0.0, 0.0]]], np.float32)
    value = mrcnn_class_loss(np.zeros((1, 2), np.int32), logits, np.ones((1, 2), np.float32))
    expected = (np_cross_entropy(logits[0, 0], 0) + np_cross_entropy(logits[0, 1], 0)) / 2
    assert float(value) == pytest.approx(expected, rel=1e-6)


def test_mrcnn_class_loss_with_no_active_prediction_is_zero():
    logits = np.array([[[0.0, 1.0], [0.0, 2.0]]], np.float32)
    value, gradient = value_and_gradient(
        lambda x: mrcnn_class_loss(np.array([[1, 0]], np.int32), x, np.array([[1, 0]], np.float32)),
        logits, wrt=0)
    assert_exact_zero(value, gradient)


def test_mrcnn_bbox_loss_uses_the_target_class_deltas_of_positives():
    rng = np.random.default_rng(1)
    class_ids = np.array([[2, 0, 1]], np.int32)
    target = rng.normal(size=(1, 3, 4)).astype(np.float32)
    pred = rng.normal(scale=2.0, size=(1, 3, 3, 4)).astype(np.float32)
    diff = np.stack([pred[0, 0, 2] - target[0, 0], pred[0, 2, 1] - target[0, 2]])
    value = mrcnn_bbox_loss(target, class_ids, pred)
    assert float(value) == pytest.approx(np_smooth_l1(diff).mean(), rel=1e-5)


def test_mrcnn_bbox_loss_without_positives_is_zero():
    value, gradient = value_and_gradient(
        lambda x: mrcnn_bbox_loss(np.ones((2, 3, 4), np.float32), np.zeros((2, 3), np.int32), x),
        np.ones((2, 3, 2, 4), np.float32), wrt=0)
    assert_exact_zero(value, gradient)


def test_mrcnn_mask_loss_uses_the_target_class_mask_of_positives():
    # ROI 0 is class 1; ROI 1 is background. Masks are 1x2 pixels, 3 classes.
    target = np.array([[[[1.0, 0.0]], [[1.0, 1.0]]]], np.float32)
    pred = np.full((1, 2, 1, 2, 3), 0.5, np.float32)
    pred[0, 0, 0, :, 1] = [0.8, 0.4]
    expected = -(np.log(0.8) + np.log(0.6)) / 2
    value = mrcnn_mask_loss(target, np.array([[1, 0]], np.int32), pred)
    assert float(value) == pytest.approx(expected, rel=1e-5)


def test_mrcnn_mask_loss_is_finite_for_saturated_predictions():
    pred = np.zeros((1, 1, 1, 1, 2), np.float32)
    value = mrcnn_mask_loss(np.ones((1, 1, 1, 1), np.float32), np.ones((1, 1), np.int32), pred)
    assert float(value) == pytest.approx(-np.log(1e-7), rel=1e-3)


def test_mrcnn_mask_loss_without_positives_is_zero():
    value, gradient = value_and_gradient(
        lambda x: mrcnn_mask_loss(np.ones((1, 2, 2, 2), np.float32), np.zeros((1, 2), np.int32), x),
        np.full((1, 2, 2, 2, 3), 0.5, np.float32), wrt=0)
    assert_exact_zero(value, gradient)


def test_l2_regularization_is_mean_of_squares_per_tensor():
    dense = keras.layers.Dense(1, kernel_initializer="ones", bias_initializer="ones")
    dense.build((None, 4))
    weights = [dense.kernel, dense.bias, tf.constant([[2.0, 0.0]])]
    # 0.1 * (mean(1²) + mean(1²) + mean(4, 0)).
    assert float(l2_regularization(weights, 0.1)) == pytest.approx(0.4)
    assert float(l2_regularization([], 0.1)) == 0.0


def tiny_model():
    """Dense -> fake RPN logits; two named loss layers, weighted 2 and 0.5."""
    x = keras.Input((3,), name="x")
    rpn_match = keras.Input((5, 1), dtype="int32", name="rpn_match")
    logits = keras.layers.Reshape((5, 2))(keras.layers.Dense(10, name="dense")(x))
    class_loss = LossLayer(rpn_class_loss, weight=2.0, name="rpn_class_loss")([rpn_match, logits])
    square_loss = LossLayer(lambda t: tf.reduce_mean(tf.square(t)), weight=0.5,
                            name="square_loss")([logits])
    return keras.Model([x, rpn_match], [class_loss, square_loss])


def test_loss_layers_register_losses_and_named_metrics_in_fit():
    rng = np.random.default_rng(0)

    def batch(n):
        return (rng.normal(size=(n, 3)).astype(np.float32),
                rng.integers(-1, 2, size=(n, 5, 1)).astype(np.int32))

    model = tiny_model()
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    history = model.fit(batch(8), epochs=2, batch_size=4, validation_data=(batch(4),),
                        verbose=0).history
    names = ["loss", "rpn_class_loss", "square_loss"]
    assert set(history) == set(names + ["val_" + name for name in names])
    assert all(len(values) == 2 for values in history.values())
    # The metrics hold the weighted losses, which add up to the total.
    for prefix in ("", "val_"):
        total = np.add(history[prefix + "rpn_class_loss"], history[prefix + "square_loss"])
        np.testing.assert_allclose(history[prefix + "loss"], total, rtol=1e-5)

    x, rpn_match = batch(4)
    class_loss, square_loss = model.predict([x, rpn_match], batch_size=4, verbose=0)
    assert class_loss.shape == (1,) and square_loss.shape == (1,)
    evaluated = model.evaluate([x, rpn_match], batch_size=4, return_dict=True, verbose=0)
    assert evaluated["rpn_class_loss"] == pytest.approx(2.0 * class_loss[0], rel=1e-5)
    assert evaluated["square_loss"] == pytest.approx(0.5 * square_loss[0], rel=1e-5)
    assert evaluated["loss"] == pytest.approx(evaluated["rpn_class_loss"]
                                              + evaluated["square_loss"], rel=1e-5)


def test_loss_layer_config_round_trip():
    layer = LossLayer(mrcnn_mask_loss, weight=0.5, name="mrcnn_mask_loss")
    clone = LossLayer.from_config(layer.get_config())
    assert (clone.name, clone.weight, clone.function) == ("mrcnn_mask_loss", 0.5, mrcnn_mask_loss)
