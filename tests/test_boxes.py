"""NumPy box math: IoU, NMS, deltas, mask boxes, normalization; expectations worked by hand."""
import warnings

import numpy as np
import pytest

from mrcnn.boxes import (apply_box_deltas, box_areas, box_refinement, compute_iou,
                         compute_overlaps, denorm_boxes, extract_bboxes, non_max_suppression,
                         norm_boxes, trim_zeros)


def test_box_areas():
    boxes = np.array([[0, 0, 10, 10], [2, 3, 5, 9], [4, 4, 4, 8]])
    np.testing.assert_array_equal(box_areas(boxes), [100, 18, 0])


def test_compute_iou_known_boxes():
    box = np.array([0, 0, 10, 10])
    boxes = np.array([[5, 5, 15, 15], [0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 10, 5]])
    iou = compute_iou(box, boxes, 100, box_areas(boxes))
    # 5x5 overlap over 100 + 100 - 25; identical; disjoint; half inside.
    np.testing.assert_allclose(iou, [25 / 175, 1.0, 0.0, 0.5])


def test_compute_iou_zero_area_gives_zero_without_warning():
    box = np.array([3, 3, 3, 3])
    boxes = np.array([[3, 3, 3, 3], [0, 0, 10, 10]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        iou = compute_iou(box, boxes, 0, box_areas(boxes))
    np.testing.assert_array_equal(iou, [0.0, 0.0])


def test_compute_overlaps_orientation_and_values():
    boxes1 = np.array([[0, 0, 10, 10], [0, 0, 20, 20]])
    boxes2 = np.array([[5, 5, 15, 15], [0, 0, 10, 10], [0, 0, 0, 0]])
    overlaps = compute_overlaps(boxes1, boxes2)
    assert overlaps.shape == (2, 3)
    assert overlaps.dtype == np.float64
    np.testing.assert_allclose(overlaps, [[25 / 175, 1.0, 0.0],
                                          [100 / 400, 100 / 400, 0.0]])


def test_compute_overlaps_float_boxes_match_int_boxes():
    boxes1 = np.array([[0, 0, 10, 10], [3, 1, 9, 7]])
    boxes2 = np.array([[5, 5, 15, 15], [2, 2, 8, 12]])
    np.testing.assert_allclose(compute_overlaps(boxes1.astype(np.float32), boxes2),
                               compute_overlaps(boxes1, boxes2), rtol=1e-6)


@pytest.mark.parametrize("n1, n2", [(0, 3), (2, 0), (0, 0)])
def test_compute_overlaps_empty(n1, n2):
    boxes = np.array([[0, 0, 10, 10]] * 3)
    overlaps = compute_overlaps(boxes[:n1], boxes[:n2])
    assert overlaps.shape == (n1, n2)


# Scores: D .95, A .9, B .8, C .7. IoU(D, A) = 90/100, IoU(D, B) = 72/118 = 0.61,
# IoU(A, B) = 81/119 = 0.68, C overlaps nothing.
NMS_BOXES = np.array([[0, 0, 10, 10],    # A
                      [1, 1, 11, 11],    # B
                      [20, 20, 30, 30],  # C
                      [0, 0, 10, 9]])    # D
NMS_SCORES = np.array([0.9, 0.8, 0.7, 0.95])


@pytest.mark.parametrize("threshold, expected", [
    (0.5, [3, 2]),         # D suppresses A (0.9) and B (0.61)
    (0.7, [3, 1, 2]),      # D suppresses only A; B survives (0.61), then C
    (0.95, [3, 0, 1, 2]),  # nothing is suppressed: picks in score order
])
def test_non_max_suppression_hand_example(threshold, expected):
    picked = non_max_suppression(NMS_BOXES, NMS_SCORES, threshold)
    assert picked.dtype == np.int32
    assert picked.tolist() == expected


def test_non_max_suppression_removes_only_strictly_greater_iou():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 5]])  # IoU exactly 0.5
    assert non_max_suppression(boxes, np.array([0.9, 0.8]), 0.5).tolist() == [0, 1]
    assert non_max_suppression(boxes, np.array([0.9, 0.8]), 0.49).tolist() == [0]


def test_non_max_suppression_empty():
    picked = non_max_suppression(np.zeros((0, 4)), np.zeros(0), 0.5)
    assert picked.dtype == np.int32 and picked.shape == (0,)


def test_apply_box_deltas_by_hand():
    # h=10, w=20, centre (5, 10) -> centre (6, 6), h=20, w=20.
    boxes = np.array([[0, 0, 10, 20]])
    deltas = np.array([[0.1, -0.2, np.log(2.0), 0.0]])
    result = apply_box_deltas(boxes, deltas)
    assert result.dtype == np.float32
    np.testing.assert_allclose(result, [[-4, -4, 16, 16]], atol=1e-5)


def test_box_refinement_by_hand():
    # box h=10, w=20, centre (5, 10); gt h=10, w=40, centre (7, 24).
    deltas = box_refinement(np.array([[0, 0, 10, 20]]), np.array([[2, 4, 12, 44]]))
    assert deltas.dtype == np.float32
    np.testing.assert_allclose(deltas, [[0.2, 0.7, 0.0, np.log(2.0)]], rtol=1e-6)


def test_deltas_round_trip():
    rng = np.random.default_rng(0)
    y1x1 = rng.uniform(0, 100, (20, 2))
    boxes = np.concatenate([y1x1, y1x1 + rng.uniform(1, 50, (20, 2))], axis=1)
    y1x1 = rng.uniform(0, 100, (20, 2))
    gt = np.concatenate([y1x1, y1x1 + rng.uniform(1, 50, (20, 2))], axis=1)
    np.testing.assert_allclose(apply_box_deltas(boxes, box_refinement(boxes, gt)), gt,
                               atol=1e-3)


def test_extract_bboxes_rectangles_and_empty():
    mask = np.zeros((20, 30, 3), dtype=bool)
    mask[2:5, 3:9, 0] = True
    mask[10:12, 0:2, 2] = True  # an L shape: box spans both arms
    mask[10:20, 25:30, 2] = True
    boxes = extract_bboxes(mask)
    assert boxes.dtype == np.int32
    np.testing.assert_array_equal(boxes, [[2, 3, 5, 9], [0, 0, 0, 0], [10, 0, 20, 30]])


def test_extract_bboxes_single_pixel_and_no_instances():
    mask = np.zeros((5, 5, 1), dtype=np.uint8)
    mask[4, 0, 0] = 1
    np.testing.assert_array_equal(extract_bboxes(mask), [[4, 0, 5, 1]])
    assert extract_bboxes(np.zeros((5, 5, 0), bool)).shape == (0, 4)


def test_norm_boxes_uses_h_minus_one():
    shape = (11, 21)  # h - 1 = 10, w - 1 = 20
    boxes = np.array([[0, 0, 11, 21], [5, 10, 6, 11], [1, 2, 3, 4]])
    normed = norm_boxes(boxes, shape)
    assert normed.dtype == np.float32
    np.testing.assert_allclose(normed, [[0, 0, 1, 1], [0.5, 0.5, 0.5, 0.5],
                                        [0.1, 0.1, 0.2, 0.15]], rtol=1e-6)
    np.testing.assert_array_equal(denorm_boxes(normed, shape), boxes)
    assert denorm_boxes(normed, shape).dtype == np.int32


def test_denorm_boxes_rounds_to_nearest_pixel():
    # 0.26 * 10 = 2.6 -> 3; 0.74 * 10 + 1 = 8.4 -> 8.
    np.testing.assert_array_equal(denorm_boxes(np.array([[0.26, 0, 0.74, 1]]), (11, 11)),
                                  [[3, 0, 8, 11]])


def test_trim_zeros():
    x = np.array([[1, 2, 0, 0], [0, 0, 0, 0], [0, 0, 0, 3], [0, 0, 0, 0]])
    np.testing.assert_array_equal(trim_zeros(x), [[1, 2, 0, 0], [0, 0, 0, 3]])
    with pytest.raises(ValueError, match="2-D"):
        trim_zeros(np.zeros(4))
