"""DetectionTargetLayer on hand-built proposals and ground truth; expectations worked by hand."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from mrcnn.graph.targets import DetectionTargetLayer

STD = (0.1, 0.1, 0.2, 0.2)
GT_A = [0.0, 0.0, 0.5, 0.5]
GT_B = [0.5, 0.5, 1.0, 1.0]
# IoU 1 with A; IoU 0.8 with B; IoU 0 with both; padding.
PROPOSALS = [GT_A, [0.5, 0.5, 1.0, 0.9], [0.0, 0.6, 0.3, 0.9], [0.0, 0.0, 0.0, 0.0]]
# B's deltas to the second proposal: centre x 0.7 -> 0.75 over width 0.4, width 0.4 -> 0.5.
DELTAS_B = [0.0, 0.05 / 0.4 / 0.1, 0.0, np.log(0.5 / 0.4) / 0.2]


def run(layer, proposals, gt_class_ids, gt_boxes, gt_masks):
    outputs = layer([np.asarray(proposals, np.float32), np.asarray(gt_class_ids, np.int32),
                     np.asarray(gt_boxes, np.float32), np.asarray(gt_masks)])
    return [o.numpy() for o in outputs]


def row_of(rois, box):
    """Index of the row of rois [T, 4] equal to box."""
    (rows,) = np.nonzero(np.all(np.isclose(rois, box), axis=1))
    assert len(rows) == 1, (rois, box)
    return rows[0]


def two_gt_image(mini_mask_b=None):
    """One image, gt A (class 1, identity mini mask) and B (class 2), one padding slot."""
    masks = np.zeros((1, 4, 4, 3), bool)
    masks[0, :, :, 0] = np.eye(4, dtype=bool)
    masks[0, :, :, 1] = True if mini_mask_b is None else mini_mask_b
    return [PROPOSALS], [[1, 2, 0]], [[GT_A, GT_B, [0, 0, 0, 0]]], masks


def test_positives_negatives_classes_deltas_and_masks():
    layer = DetectionTargetLayer(6, 0.5, STD, (4, 4), use_mini_mask=True)
    rois, class_ids, deltas, masks = run(layer, *two_gt_image())
    assert rois.shape == (1, 6, 4) and class_ids.shape == (1, 6)
    assert deltas.shape == (1, 6, 4) and masks.shape == (1, 6, 4, 4)
    assert class_ids.dtype == np.int32 and masks.dtype == np.float32
    rois, class_ids, deltas, masks = rois[0], class_ids[0], deltas[0], masks[0]
    # The two positives come first (in random order), then the one negative, then padding.
    a, b = row_of(rois, GT_A), row_of(rois, PROPOSALS[1])
    assert {a, b} == {0, 1}
    np.testing.assert_allclose(rois[2], PROPOSALS[2])
    np.testing.assert_array_equal(rois[3:], 0)
    assert (class_ids[a], class_ids[b]) == (1, 2)
    np.testing.assert_array_equal(class_ids[2:], 0)
    np.testing.assert_allclose(deltas[a], 0, atol=1e-6)
    np.testing.assert_allclose(deltas[b], DELTAS_B, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(deltas[2:], 0)
    # A proposal equal to its gt box gets the whole mini mask, resized (here 4x4 -> 4x4).
    np.testing.assert_array_equal(masks[a], np.eye(4))
    np.testing.assert_array_equal(masks[b], 1)
    np.testing.assert_array_equal(masks[2:], 0)


def test_mini_mask_is_cropped_in_gt_box_coordinates():
    # The proposal spans x in [0.5, 0.9] = the left 0.8 of gt B, so the 4 target
    # columns sample B's mini mask at columns 0, 0.8, 1.6 and 2.4: with only
    # column 2 set, bilinear gives 0, 0, 0.6, 0.6, rounded to 0, 0, 1, 1.
    mini_mask_b = np.zeros((4, 4), bool)
    mini_mask_b[:, 2] = True
    layer = DetectionTargetLayer(6, 0.5, STD, (4, 4), use_mini_mask=True)
    rois, _, _, masks = run(layer, *two_gt_image(mini_mask_b))
    expected = np.tile([0.0, 0.0, 1.0, 1.0], (4, 1))
    np.testing.assert_array_equal(masks[0, row_of(rois[0], PROPOSALS[1])], expected)


def test_full_image_masks_are_cropped_by_the_roi():
    mask = np.arange(16).reshape(4, 4) % 3 == 0
    layer = DetectionTargetLayer(4, 0.5, STD, (4, 3), use_mini_mask=False)
    # IoU 2/3 with the whole-image gt box: positive. Columns 0..2 of the 4x4 image.
    roi = [0.0, 0.0, 1.0, 2.0 / 3.0]
    rois, class_ids, _, masks = run(layer, [[roi]], [[3]], [[[0.0, 0.0, 1.0, 1.0]]],
                                    mask[None, :, :, None])
    np.testing.assert_allclose(rois[0, 0], roi)
    assert class_ids[0, 0] == 3
    np.testing.assert_array_equal(masks[0, 0], mask[:, :3])


def test_crowd_boxes_are_neither_targets_nor_near_negatives():
    # Gt A (class 1) and a crowd on B. Proposals: A; the crowd box itself
    # (IoU 1 with the crowd, 0 with A); a proposal far from both.
    proposals = [GT_A, GT_B, [0.0, 0.6, 0.3, 0.9]]
    # Room for 2 positives and int(1 * 4) - 1 = 3 negatives: only one may qualify.
    layer = DetectionTargetLayer(8, 0.25, STD, (4, 4), use_mini_mask=True)
    rois, class_ids, _, _ = run(layer, [proposals], [[1, -1]], [[GT_A, GT_B]],
                                np.ones((1, 4, 4, 2), bool))
    np.testing.assert_allclose(rois[0, :2], [GT_A, proposals[2]])
    np.testing.assert_array_equal(rois[0, 2:], 0)
    np.testing.assert_array_equal(class_ids[0], [1, 0, 0, 0, 0, 0, 0, 0])


def test_no_gt_gives_zero_targets_without_nan():
    # No positives means no negatives either (the classic 1:2 sampling).
    layer = DetectionTargetLayer(6, 0.5, STD, (4, 4), use_mini_mask=True)
    outputs = run(layer, [PROPOSALS], [[0, 0]], np.zeros((1, 2, 4)), np.zeros((1, 4, 4, 2), bool))
    for output in outputs:
        assert not np.isnan(output).any()
        np.testing.assert_array_equal(output, 0)


def test_positives_are_capped_and_negatives_follow_the_ratio():
    # 5 positives (copies of A) and 5 negatives; T = 4 at ratio 0.5 keeps 2 + int(2 / 0.5) - 2.
    proposals = [GT_A] * 5 + [[0.6, 0.6, 0.9, 0.9 - 0.01 * i] for i in range(5)]
    layer = DetectionTargetLayer(4, 0.5, STD, (4, 4), use_mini_mask=True)
    rois, class_ids, _, _ = run(layer, [proposals], [[1]], [[GT_A]], np.ones((1, 4, 4, 1), bool))
    np.testing.assert_array_equal(class_ids[0], [1, 1, 0, 0])
    np.testing.assert_allclose(rois[0, :2], [GT_A, GT_A])
    assert all(rois[0, i, 0] == pytest.approx(0.6) for i in (2, 3))


def test_batch_with_different_gt_counts_in_a_functional_model():
    layer = DetectionTargetLayer(6, 0.5, STD, (4, 4), use_mini_mask=True)
    inputs = [keras.Input((None, 4)), keras.Input((3,), dtype="int32"), keras.Input((3, 4)),
              keras.Input((4, 4, 3), dtype="bool")]
    outputs = layer(inputs)
    assert [o.dtype for o in outputs] == ["float32", "int32", "float32", "float32"]
    assert [o.shape for o in outputs] == [(None, 6, 4), (None, 6), (None, 6, 4), (None, 6, 4, 4)]
    model = keras.Model(inputs, outputs)
    proposals, gt_class_ids, gt_boxes, gt_masks = two_gt_image()
    # Image 1 keeps only gt B (class 2) in its last slot.
    rois, class_ids, deltas, _ = model.predict(
        [np.concatenate([proposals, proposals]).astype(np.float32),
         np.array(gt_class_ids + [[0, 0, 2]], np.int32),
         np.array(gt_boxes + [[[0, 0, 0, 0], [0, 0, 0, 0], GT_B]], np.float32),
         np.concatenate([gt_masks, gt_masks[:, :, :, ::-1]])], verbose=0)
    assert sorted(class_ids[0]) == [0, 0, 0, 0, 1, 2]
    # Image 1: one positive, int(1 / 0.5) - 1 = 1 negative (the A proposal or the far one).
    np.testing.assert_array_equal(class_ids[1], [2, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(rois[1, 0], PROPOSALS[1])
    np.testing.assert_allclose(deltas[1, 0], DELTAS_B, rtol=1e-5, atol=1e-6)
    assert np.any(rois[1, 1]) and not np.any(rois[1, 2:])


def test_no_gradient_flows_through_the_targets():
    layer = DetectionTargetLayer(6, 0.5, STD, (4, 4), use_mini_mask=True)
    proposals, gt_class_ids, gt_boxes, gt_masks = two_gt_image()
    proposals = tf.Variable(np.asarray(proposals, np.float32))
    with tf.GradientTape() as tape:
        rois, _, deltas, _ = layer([proposals, np.asarray(gt_class_ids, np.int32),
                                    np.asarray(gt_boxes, np.float32), gt_masks])
        total = tf.reduce_sum(rois) + tf.reduce_sum(deltas)
    assert tape.gradient(total, proposals) is None


def test_get_config_round_trip():
    layer = DetectionTargetLayer(200, 0.33, np.array(STD), [28, 28], False, name="proposal_targets")
    clone = DetectionTargetLayer.from_config(layer.get_config())
    assert (clone.name, clone.train_rois_per_image, clone.roi_positive_ratio) == \
        ("proposal_targets", 200, 0.33)
    assert (clone.bbox_std_dev, clone.mask_shape, clone.use_mini_mask) == (STD, (28, 28), False)


def test_positive_rows_hold_every_positive_and_only_they_can():
    # Many random proposals around three gt boxes per image: dozens of positives and
    # negatives to sample, drawn differently in each image. The mask head relies on
    # positive_rows; a layer that put positives anywhere but first would fail here.
    rng = np.random.default_rng(5)
    gt = np.array([[0.1, 0.1, 0.4, 0.4], [0.5, 0.2, 0.9, 0.6], [0.2, 0.6, 0.5, 0.95]])
    jitter = rng.uniform(-0.08, 0.08, (3, 60, 4))
    proposals = np.clip(np.concatenate([gt[None] + jitter[:, :3], jitter + 0.45], 1), 0, 1)
    proposals = np.sort(proposals.reshape(3, -1, 2, 2), axis=2).reshape(3, -1, 4)
    layer = DetectionTargetLayer(20, 0.33, STD, (4, 4), use_mini_mask=True)
    class_ids = run(layer, proposals, [[1, 2, 3]] * 3, [gt] * 3,
                    np.ones((3, 4, 4, 3), bool))[1]
    inside = layer.positive_rows(tf.constant(class_ids)).numpy()
    assert layer.max_positives == 6 and inside.shape == (3, 6)
    np.testing.assert_array_equal(class_ids[:, 6:], 0)      # nothing positive after them
    for row in inside:                                      # positives, then negatives
        count = int((row > 0).sum())
        assert count > 0 and np.all(row[:count] > 0) and np.all(row[count:] == 0)
