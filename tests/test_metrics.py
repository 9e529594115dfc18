"""Mask IoU, matching, AP and recall on small hand-worked examples."""
import warnings

import numpy as np
import pytest

from mrcnn.boxes import extract_bboxes
from mrcnn.metrics import (compute_ap, compute_ap_range, compute_matches,
                           compute_overlaps_masks, compute_recall)

H = W = 40


def masks_from_boxes(boxes):
    """[H, W, N] rectangle masks filling each box."""
    masks = np.zeros((H, W, len(boxes)), dtype=bool)
    for i, (y1, x1, y2, x2) in enumerate(boxes):
        masks[y1:y2, x1:x2, i] = True
    return masks


def instances(boxes):
    """(boxes, masks) of rectangle instances."""
    masks = masks_from_boxes(boxes)
    return extract_bboxes(masks), masks


@pytest.fixture
def no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def test_compute_overlaps_masks_by_hand():
    m1 = masks_from_boxes([[0, 0, 4, 4], [10, 10, 12, 12]])
    m2 = masks_from_boxes([[2, 0, 6, 4], [10, 10, 12, 12], [30, 30, 31, 31]])
    overlaps = compute_overlaps_masks(m1, m2)
    # 2x4 overlap of two 4x4 squares: 8 / (16 + 16 - 8).
    np.testing.assert_allclose(overlaps, [[8 / 24, 0, 0], [0, 1, 0]])


def test_compute_overlaps_masks_thresholds_probabilities():
    m1 = np.full((2, 2, 1), 0.6)
    m2 = np.full((2, 2, 1), 0.5)  # not > 0.5: empty
    m2[0, 0, 0] = 0.9
    np.testing.assert_allclose(compute_overlaps_masks(m1, m2), [[0.25]])


def test_compute_overlaps_masks_empty(no_warnings):
    empty = np.zeros((H, W, 2), dtype=bool)
    np.testing.assert_array_equal(compute_overlaps_masks(empty, empty), np.zeros((2, 2)))
    assert compute_overlaps_masks(empty[..., :0], empty).shape == (0, 2)
    assert compute_overlaps_masks(empty, empty[..., :0]).shape == (2, 0)


# Three ground-truth instances; predictions (given out of score order):
#   score 0.9: exactly gt 0, class 1 -> TP
#   score 0.8: exactly gt 2 but class 1 instead of 2 -> FP
#   score 0.7: exactly gt 1, class 1 -> TP
# precision 1, 1/2, 2/3; recall 1/3, 1/3, 2/3.
# Monotone precisions [1, 1, 2/3, 2/3, 0]; AP = 1/3 * 1 + 1/3 * 2/3 = 5/9.
GT_BOXES = [[0, 0, 10, 10], [0, 20, 10, 30], [20, 0, 30, 10]]
GT_CLASSES = np.array([1, 1, 2])
PRED_BOXES = [[0, 20, 10, 30], [0, 0, 10, 10], [20, 0, 30, 10]]
PRED_CLASSES = np.array([1, 1, 1])
PRED_SCORES = np.array([0.7, 0.9, 0.8])


def hand_example():
    gt_boxes, gt_masks = instances(GT_BOXES)
    pred_boxes, pred_masks = instances(PRED_BOXES)
    return (gt_boxes, GT_CLASSES, gt_masks, pred_boxes, PRED_CLASSES, PRED_SCORES,
            pred_masks)


def test_compute_ap_hand_example():
    ap, precisions, recalls, overlaps = compute_ap(*hand_example())
    assert ap == pytest.approx(5 / 9, rel=1e-6)
    np.testing.assert_allclose(precisions, [1, 1, 2 / 3, 2 / 3, 0])
    np.testing.assert_allclose(recalls, [0, 1 / 3, 1 / 3, 2 / 3, 1], rtol=1e-6)
    # Rows in score order: 0.9 (gt 0), 0.8 (gt 2), 0.7 (gt 1).
    np.testing.assert_array_equal(overlaps, [[1, 0, 0], [0, 0, 1], [0, 1, 0]])


def test_compute_matches_hand_example():
    gt_match, pred_match, _ = compute_matches(*hand_example())
    np.testing.assert_array_equal(gt_match, [0, 2, -1])
    np.testing.assert_array_equal(pred_match, [0, -1, 1])


def test_compute_matches_trims_zero_padding():
    gt_boxes, gt_classes, gt_masks, *pred = hand_example()
    padded_boxes = np.concatenate([gt_boxes, np.zeros((2, 4), np.int32)])
    padded_classes = np.concatenate([gt_classes, [0, 0]])
    padded_masks = np.concatenate([gt_masks, np.zeros((H, W, 2), bool)], axis=-1)
    gt_match, pred_match, overlaps = compute_matches(padded_boxes, padded_classes,
                                                     padded_masks, *pred)
    assert overlaps.shape == (3, 3)
    np.testing.assert_array_equal(gt_match, [0, 2, -1])


def test_compute_matches_class_mismatch_tries_next_ground_truth():
    # The prediction covers gt 0 exactly (IoU 1, class 2) and gt 1 at IoU 0.8 (class 1).
    gt_boxes, gt_masks = instances([[0, 0, 10, 10], [0, 0, 10, 8]])
    pred_boxes, pred_masks = instances([[0, 0, 10, 10]])
    args = (gt_boxes, np.array([2, 1]), gt_masks, pred_boxes)
    gt_match, pred_match, _ = compute_matches(*args, np.array([1]), np.array([0.9]), pred_masks)
    np.testing.assert_array_equal(gt_match, [-1, 0])
    np.testing.assert_array_equal(pred_match, [1])
    # A class that no ground truth has matches nothing.
    gt_match, pred_match, _ = compute_matches(*args, np.array([3]), np.array([0.9]), pred_masks)
    np.testing.assert_array_equal(gt_match, [-1, -1])
    np.testing.assert_array_equal(pred_match, [-1])


def test_compute_matches_iou_threshold():
    gt_boxes, gt_masks = instances([[0, 0, 4, 4]])
    pred_boxes, pred_masks = instances([[2, 0, 6, 4]])  # IoU 8 / 24
    args = (gt_boxes, np.array([1]), gt_masks, pred_boxes, np.array([1]), np.array([0.9]),
            pred_masks)
    assert compute_matches(*args, iou_threshold=0.5)[1].tolist() == [-1]
    assert compute_matches(*args, iou_threshold=0.3)[1].tolist() == [0]
    # score_threshold drops candidates whose overlap is below it.
    assert compute_matches(*args, iou_threshold=0.3, score_threshold=0.4)[1].tolist() == [-1]


def test_compute_ap_without_predictions(no_warnings):
    gt_boxes, gt_masks = instances(GT_BOXES)
    ap, precisions, recalls, overlaps = compute_ap(
        gt_boxes, GT_CLASSES, gt_masks, np.zeros((0, 4)), np.zeros(0, np.int32), np.zeros(0),
        np.zeros((H, W, 0)))
    assert ap == 0.0
    np.testing.assert_array_equal(precisions, [0, 0])
    np.testing.assert_array_equal(recalls, [0, 1])
    assert overlaps.shape == (0, 3)


def test_compute_ap_without_ground_truth(no_warnings):
    pred_boxes, pred_masks = instances(PRED_BOXES)
    ap, precisions, recalls, _ = compute_ap(
        np.zeros((0, 4)), np.zeros(0, np.int32), np.zeros((H, W, 0)), pred_boxes,
        PRED_CLASSES, PRED_SCORES, pred_masks)
    assert ap == 0.0
    np.testing.assert_array_equal(recalls, [0, 0, 0, 0, 1])
    assert not np.isnan(precisions).any()


def test_compute_ap_without_anything(no_warnings):
    empty = (np.zeros((0, 4)), np.zeros(0, np.int32), np.zeros((H, W, 0)))
    ap, _, _, _ = compute_ap(*empty, *empty[:2], np.zeros(0), empty[2])
    assert ap == 0.0


def test_compute_ap_range(capsys):
    gt_boxes, gt_masks = instances([[0, 0, 4, 4]])
    pred_boxes, pred_masks = instances([[2, 0, 6, 4]])  # IoU 1/3
    args = (gt_boxes, np.array([1]), gt_masks, pred_boxes, np.array([1]), np.array([0.9]),
            pred_masks)
    assert compute_ap_range(*args, iou_thresholds=[0.3, 0.5]) == pytest.approx(0.5)
    printed = capsys.readouterr().out
    assert "AP @0.30:\t 1.000" in printed
    assert "AP @0.50:\t 0.000" in printed
    assert "AP @0.30-0.50:\t 0.500" in printed


def test_compute_ap_range_default_thresholds_quiet(capsys):
    # A prediction with mask IoU 0.8 is correct at 0.5..0.8 (7 of 10 thresholds).
    gt_boxes, gt_masks = instances([[0, 0, 10, 10]])
    pred_boxes, pred_masks = instances([[0, 0, 10, 8]])
    ap = compute_ap_range(gt_boxes, np.array([1]), gt_masks, pred_boxes, np.array([1]),
                          np.array([0.9]), pred_masks, verbose=0)
    assert ap == pytest.approx(0.7)
    assert capsys.readouterr().out == ""


def test_compute_recall():
    gt = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]])
    pred = np.array([[0, 0, 10, 10],        # IoU 1 with gt 0
                     [0, 0, 10, 5],         # IoU 0.5 with gt 0
                     [20, 20, 30, 25],      # IoU 0.5 with gt 1
                     [100, 100, 110, 110]])  # nothing
    recall, positive_ids = compute_recall(pred, gt, 0.5)
    assert recall == pytest.approx(2 / 3)
    np.testing.assert_array_equal(positive_ids, [0, 1, 2])
    recall, positive_ids = compute_recall(pred, gt, 0.6)
    assert recall == pytest.approx(1 / 3)
    np.testing.assert_array_equal(positive_ids, [0])


def test_compute_recall_empty():
    boxes = np.array([[0, 0, 10, 10]])
    for pred, gt in [(boxes[:0], boxes), (boxes, boxes[:0])]:
        recall, positive_ids = compute_recall(pred, gt, 0.5)
        assert recall == 0.0 and len(positive_ids) == 0
