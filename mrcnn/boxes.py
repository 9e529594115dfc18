"""NumPy box math: overlaps, non-max suppression, box deltas, mask boxes, normalization.

Shape shorthand: ``N`` boxes, ``(y1, x1, y2, x2)`` corners in pixels with ``y2``/``x2``
exclusive (a box ``[0, 0, 10, 10]`` covers 10 x 10 pixels). Deltas are
``(dy, dx, log(dh), log(dw))`` relative to the source box's height and width.

These functions reproduce the classic ``mrcnn.utils`` results value for value (same dtypes,
same tie order); the graph side has its own TensorFlow versions in ``mrcnn.graph.box_ops``.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

# An anchor (RPN targets, numpy) or a proposal (head targets, tf) whose IoU with a crowd box
# reaches this is never a negative: the crowd may well hide an unlabelled object there.
CROWD_IOU = 0.001

__all__ = [
    "compute_iou", "compute_overlaps", "non_max_suppression", "apply_box_deltas",
    "box_refinement", "extract_bboxes", "norm_boxes", "denorm_boxes", "trim_zeros",
]

# Largest log(dh), log(dw) applied to a box (as Detectron2): a box grows at most 1000/16
# times, so that a wild prediction cannot overflow exp() into inf and NaN boxes. Both the
# numpy and the tf apply_box_deltas clamp here.
MAX_LOG_SCALE = math.log(1000.0 / 16)


def box_areas(boxes: np.ndarray) -> np.ndarray:
    """Areas of boxes.

    Args:
        boxes: [..., (y1, x1, y2, x2)] boxes.

    Returns:
        [...] ``(y2 - y1) * (x2 - x1)``, in the boxes' dtype.
    """
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def _centers_and_sizes(boxes: np.ndarray):
    """Split float32 boxes [N, 4] into (center_y, center_x, height, width), each [N]."""
    height = boxes[:, 2] - boxes[:, 0]
    width = boxes[:, 3] - boxes[:, 1]
    return boxes[:, 0] + 0.5 * height, boxes[:, 1] + 0.5 * width, height, width


def compute_iou(box: np.ndarray, boxes: np.ndarray, box_area, boxes_area) -> np.ndarray:
    """IoU of one box with each of several boxes.

    The areas are passed in rather than computed so that callers comparing many pairs
    compute each area once. Boxes without area on both sides (a zero union) get an IoU of
    0 rather than nan.

    Args:
        box: [(y1, x1, y2, x2)] one box. Leading dimensions broadcast against ``boxes``.
        boxes: [N, (y1, x1, y2, x2)] boxes.
        box_area: [] area of ``box`` (broadcastable to ``box[..., 0]``).
        boxes_area: [N] areas of ``boxes``.

    Returns:
        [N] IoU values (float64 for integer boxes, the boxes' float dtype otherwise).
    """
    y1 = np.maximum(box[..., 0], boxes[..., 0])
    y2 = np.minimum(box[..., 2], boxes[..., 2])
    x1 = np.maximum(box[..., 1], boxes[..., 1])
    x2 = np.minimum(box[..., 3], boxes[..., 3])
    intersection = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    union = box_area + boxes_area - intersection
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = intersection / union
    return np.where(union == 0, 0, iou)


def compute_overlaps(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """IoU of every pair of boxes from two sets.

    Args:
        boxes1: [N1, (y1, x1, y2, x2)] boxes.
        boxes2: [N2, (y1, x1, y2, x2)] boxes.

    Returns:
        [N1, N2] float64 IoU; zeros of that shape when either set is empty.
    """
    boxes1 = np.asarray(boxes1)
    boxes2 = np.asarray(boxes2)
    if len(boxes1) == 0 or len(boxes2) == 0:
        return np.zeros((len(boxes1), len(boxes2)))
    # Row i of boxes1 against column j of boxes2, evaluated as iou(boxes2[j], boxes1[i])
    # like the classic loop so that the float arithmetic is identical.
    overlaps = compute_iou(boxes2[None, :, :], boxes1[:, None, :],
                           box_areas(boxes2)[None, :], box_areas(boxes1)[:, None])
    return overlaps.astype(np.float64)


def non_max_suppression(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression.

    Picks the best-scoring box, drops the boxes whose IoU with it is above ``threshold``
    (strictly), and repeats.

    Args:
        boxes: [N, (y1, x1, y2, x2)] boxes.
        scores: [N] box scores; ties are broken like ``scores.argsort()[::-1]``.
        threshold: IoU above which a box is suppressed.

    Returns:
        [K] int32 indices into ``boxes`` of the kept boxes, best score first; empty for no
        boxes.
    """
    boxes = np.asarray(boxes)
    scores = np.asarray(scores)
    if len(boxes) == 0:
        return np.zeros([0], dtype=np.int32)
    if boxes.dtype.kind != "f":
        boxes = boxes.astype(np.float32)
    area = box_areas(boxes)
    ixs = scores.argsort()[::-1]
    pick = []
    while len(ixs) > 0:
        i = ixs[0]
        pick.append(i)
        rest = ixs[1:]
        iou = compute_iou(boxes[i], boxes[rest], area[i], area[rest])
        ixs = rest[~(iou > threshold)]
    return np.array(pick, dtype=np.int32)


def apply_box_deltas(boxes: np.ndarray, deltas: np.ndarray) -> np.ndarray:
    """Move and resize boxes by deltas (the inverse of :func:`box_refinement`).

    Args:
        boxes: [N, (y1, x1, y2, x2)] boxes.
        deltas: [N, (dy, dx, log(dh), log(dw))] refinements; log(dh) and log(dw)
            are clamped at MAX_LOG_SCALE.

    Returns:
        [N, (y1, x1, y2, x2)] float32 refined boxes.
    """
    deltas = np.asarray(deltas)
    center_y, center_x, height, width = _centers_and_sizes(np.asarray(boxes, dtype=np.float32))
    # In-place updates keep float32 even for float64 deltas, as the classic code did.
    center_y += deltas[:, 0] * height
    center_x += deltas[:, 1] * width
    height *= np.exp(np.minimum(deltas[:, 2], MAX_LOG_SCALE))
    width *= np.exp(np.minimum(deltas[:, 3], MAX_LOG_SCALE))
    y1 = center_y - 0.5 * height
    x1 = center_x - 0.5 * width
    return np.stack([y1, x1, y1 + height, x1 + width], axis=1)


def box_refinement(box: np.ndarray, gt_box: np.ndarray) -> np.ndarray:
    """Deltas that turn each box into its ground-truth box.

    Args:
        box: [N, (y1, x1, y2, x2)] source boxes; must have non-zero height and width.
        gt_box: [N, (y1, x1, y2, x2)] target boxes.

    Returns:
        [N, (dy, dx, log(dh), log(dw))] float32 deltas.
    """
    center_y, center_x, height, width = _centers_and_sizes(np.asarray(box, dtype=np.float32))
    gt_center_y, gt_center_x, gt_height, gt_width = _centers_and_sizes(
        np.asarray(gt_box, dtype=np.float32))
    dy = (gt_center_y - center_y) / height
    dx = (gt_center_x - center_x) / width
    dh = np.log(gt_height / height)
    dw = np.log(gt_width / width)
    return np.stack([dy, dx, dh, dw], axis=1)


def extract_bboxes(mask: np.ndarray) -> np.ndarray:
    """Tight box around each instance mask.

    Args:
        mask: [H, W, N] instance masks (any dtype; non-zero is inside).

    Returns:
        [N, (y1, x1, y2, x2)] int32 boxes with exclusive ``y2``/``x2``; all zeros for an
        empty mask.
    """
    height, width = mask.shape[:2]
    rows = np.any(mask, axis=1)  # [H, N]
    cols = np.any(mask, axis=0)  # [W, N]
    # argmax finds the first True; on the reversed axis it finds the last one.
    y1 = np.argmax(rows, axis=0)
    y2 = height - np.argmax(rows[::-1], axis=0)
    x1 = np.argmax(cols, axis=0)
    x2 = width - np.argmax(cols[::-1], axis=0)
    boxes = np.stack([y1, x1, y2, x2], axis=1).astype(np.int32)
    boxes[~np.any(rows, axis=0)] = 0
    return boxes


def _norm_scale_shift(shape: Sequence[int]):
    height, width = shape
    # h - 1 / w - 1 and the +1 on the exclusive corners follow tf.image.crop_and_resize,
    # where 1.0 is the centre of the last pixel.
    return np.array([height - 1, width - 1, height - 1, width - 1]), np.array([0, 0, 1, 1])


def norm_boxes(boxes: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Convert pixel boxes to normalized coordinates.

    Args:
        boxes: [N, (y1, x1, y2, x2)] boxes in pixels.
        shape: (height, width) of the image in pixels.

    Returns:
        [N, (y1, x1, y2, x2)] float32 boxes, ``(boxes - [0, 0, 1, 1]) / [h-1, w-1, h-1, w-1]``.
    """
    scale, shift = _norm_scale_shift(shape)
    return np.divide(boxes - shift, scale).astype(np.float32)


def denorm_boxes(boxes: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Convert normalized boxes back to pixels (the inverse of :func:`norm_boxes`).

    Args:
        boxes: [N, (y1, x1, y2, x2)] normalized boxes.
        shape: (height, width) of the image in pixels.

    Returns:
        [N, (y1, x1, y2, x2)] int32 boxes in pixels, rounded to the nearest pixel.
    """
    scale, shift = _norm_scale_shift(shape)
    return np.around(np.multiply(boxes, scale) + shift).astype(np.int32)


def trim_zeros(x: np.ndarray) -> np.ndarray:
    """Drop the all-zero rows used to pad a fixed-size array.

    Args:
        x: [N, C] array.

    Returns:
        [M, C] the rows of ``x`` that hold a non-zero value.

    Raises:
        ValueError: if ``x`` is not 2-D.
    """
    if x.ndim != 2:
        raise ValueError(f"trim_zeros expects a 2-D array, got shape {x.shape}")
    return x[~np.all(x == 0, axis=1)]
