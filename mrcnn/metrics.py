"""Per-image detection metrics: mask IoU, greedy matching, VOC-style AP, box recall.

Shape shorthand: ``G`` ground-truth instances, ``P`` predicted instances, ``H, W`` image
size. Boxes are ``(y1, x1, y2, x2)`` in pixels; the box arrays may be zero-padded at the end
(all-zero rows are trimmed, and the masks and scores are cut to the same count).

The numbers match the classic ``mrcnn.utils`` functions; where the classic code divided by
zero (no ground truth, empty masks) these return 0 instead of nan, without warnings.
"""
from __future__ import annotations

import numpy as np

from mrcnn.boxes import compute_overlaps, trim_zeros

__all__ = ["compute_overlaps_masks", "compute_matches", "compute_ap", "compute_ap_range",
           "compute_recall"]


def compute_overlaps_masks(masks1: np.ndarray, masks2: np.ndarray) -> np.ndarray:
    """IoU of every pair of masks from two sets.

    Args:
        masks1: [H, W, N1] masks (bool, or probabilities thresholded at 0.5).
        masks2: [H, W, N2] masks.

    Returns:
        [N1, N2] float IoU (float32, float64 when a set is empty); 0 for two empty masks.
    """
    if masks1.shape[-1] == 0 or masks2.shape[-1] == 0:
        return np.zeros((masks1.shape[-1], masks2.shape[-1]))
    masks1 = np.reshape(masks1 > .5, (-1, masks1.shape[-1])).astype(np.float32)
    masks2 = np.reshape(masks2 > .5, (-1, masks2.shape[-1])).astype(np.float32)
    area1 = np.sum(masks1, axis=0)
    area2 = np.sum(masks2, axis=0)
    intersections = np.dot(masks1.T, masks2)
    union = area1[:, None] + area2[None, :] - intersections
    return np.divide(intersections, union, out=np.zeros_like(intersections), where=union > 0)


def compute_matches(gt_boxes: np.ndarray, gt_class_ids: np.ndarray, gt_masks: np.ndarray,
                    pred_boxes: np.ndarray, pred_class_ids: np.ndarray,
                    pred_scores: np.ndarray, pred_masks: np.ndarray,
                    iou_threshold: float = 0.5, score_threshold: float = 0.0):
    """Match predictions to ground truth greedily, best-scoring prediction first.

    Each prediction takes the unmatched ground-truth instance of highest mask IoU, provided
    the IoU reaches ``iou_threshold`` and the classes agree; a class mismatch on the best
    candidate lets the prediction try the next best one.

    Args:
        gt_boxes: [G, (y1, x1, y2, x2)] ground-truth boxes (zero padding allowed).
        gt_class_ids: [G] ground-truth class ids.
        gt_masks: [H, W, G] ground-truth masks.
        pred_boxes: [P, (y1, x1, y2, x2)] predicted boxes (zero padding allowed).
        pred_class_ids: [P] predicted class ids.
        pred_scores: [P] prediction confidences.
        pred_masks: [H, W, P] predicted masks.
        iou_threshold: smallest mask IoU of a match.
        score_threshold: ground-truth candidates with a mask IoU below this are skipped
            (the classic name is kept although it filters overlaps, not scores).

    Returns:
        gt_match: [G] float, index of the matched prediction (in score order) or -1.
        pred_match: [P] float, index of the matched ground truth for each prediction in
            descending score order, or -1.
        overlaps: [P, G] mask IoU, predictions in descending score order.
    """
    gt_boxes = trim_zeros(gt_boxes)
    gt_masks = gt_masks[..., :gt_boxes.shape[0]]
    pred_boxes = trim_zeros(pred_boxes)
    pred_scores = pred_scores[:pred_boxes.shape[0]]
    order = np.argsort(pred_scores)[::-1]
    pred_class_ids = pred_class_ids[order]
    pred_masks = pred_masks[..., order]

    overlaps = compute_overlaps_masks(pred_masks, gt_masks)

    pred_match = -1 * np.ones([len(order)])
    gt_match = -1 * np.ones([gt_boxes.shape[0]])
    for i in range(len(order)):
        candidates = np.argsort(overlaps[i])[::-1]
        low = np.where(overlaps[i, candidates] < score_threshold)[0]
        if low.size > 0:
            candidates = candidates[:low[0]]
        for j in candidates:
            if gt_match[j] > -1:
                continue
            # Candidates come in descending IoU: nothing further can reach the threshold.
            if overlaps[i, j] < iou_threshold:
                break
            if pred_class_ids[i] == gt_class_ids[j]:
                gt_match[j] = i
                pred_match[i] = j
                break
    return gt_match, pred_match, overlaps


def compute_ap(gt_boxes: np.ndarray, gt_class_ids: np.ndarray, gt_masks: np.ndarray,
               pred_boxes: np.ndarray, pred_class_ids: np.ndarray, pred_scores: np.ndarray,
               pred_masks: np.ndarray, iou_threshold: float = 0.5):
    """Average precision of one image at one mask-IoU threshold (VOC all-point style).

    Edge cases: without predictions the AP is 0. Without ground truth every recall is
    defined as 0 (the classic code divided by zero and produced nan/inf with a warning), so
    the AP is 0 whether or not there are predictions.

    Args:
        gt_boxes: [G, (y1, x1, y2, x2)] ground-truth boxes (zero padding allowed).
        gt_class_ids: [G] ground-truth class ids.
        gt_masks: [H, W, G] ground-truth masks.
        pred_boxes: [P, (y1, x1, y2, x2)] predicted boxes (zero padding allowed).
        pred_class_ids: [P] predicted class ids.
        pred_scores: [P] prediction confidences.
        pred_masks: [H, W, P] predicted masks.
        iou_threshold: smallest mask IoU of a true positive.

    Returns:
        mAP: the average precision.
        precisions: [P + 2] precision after each prediction in score order, padded with 0
            at both ends and made non-increasing from the right.
        recalls: [P + 2] recall after each prediction, padded with 0 in front and 1 at the
            end.
        overlaps: [P, G] mask IoU, predictions in descending score order.
    """
    gt_match, pred_match, overlaps = compute_matches(
        gt_boxes, gt_class_ids, gt_masks, pred_boxes, pred_class_ids, pred_scores,
        pred_masks, iou_threshold)

    true_positives = np.cumsum(pred_match > -1)
    precisions = true_positives / (np.arange(len(pred_match)) + 1)
    # float32 recalls, then float64 after padding: the classic rounding, kept on purpose.
    recalls = true_positives.astype(np.float32) / max(len(gt_match), 1)
    precisions = np.concatenate([[0], precisions, [0]])
    recalls = np.concatenate([[0], recalls, [1]])

    # Precision at a recall level is the best precision at that recall or any higher one.
    precisions = np.maximum.accumulate(precisions[::-1])[::-1]

    indices = np.where(recalls[:-1] != recalls[1:])[0] + 1
    mAP = np.sum((recalls[indices] - recalls[indices - 1]) * precisions[indices])
    return mAP, precisions, recalls, overlaps


def compute_ap_range(gt_box: np.ndarray, gt_class_id: np.ndarray, gt_mask: np.ndarray,
                     pred_box: np.ndarray, pred_class_id: np.ndarray, pred_score: np.ndarray,
                     pred_mask: np.ndarray, iou_thresholds=None, verbose: int = 1) -> float:
    """Mean of :func:`compute_ap` over several mask-IoU thresholds (COCO-style AP).

    Args:
        gt_box: [G, (y1, x1, y2, x2)] ground-truth boxes.
        gt_class_id: [G] ground-truth class ids.
        gt_mask: [H, W, G] ground-truth masks.
        pred_box: [P, (y1, x1, y2, x2)] predicted boxes.
        pred_class_id: [P] predicted class ids.
        pred_score: [P] prediction confidences.
        pred_mask: [H, W, P] predicted masks.
        iou_thresholds: [T] thresholds; None means 0.5, 0.55, ..., 0.95.
        verbose: print the AP of each threshold and of the range when true.

    Returns:
        The mean AP over the thresholds.
    """
    if iou_thresholds is None:
        iou_thresholds = np.arange(0.5, 1.0, 0.05)
    aps = []
    for iou_threshold in iou_thresholds:
        ap = compute_ap(gt_box, gt_class_id, gt_mask, pred_box, pred_class_id, pred_score,
                        pred_mask, iou_threshold=iou_threshold)[0]
        if verbose:
            print("AP @{:.2f}:\t {:.3f}".format(iou_threshold, ap))
        aps.append(ap)
    mean_ap = np.array(aps).mean()
    if verbose:
        print("AP @{:.2f}-{:.2f}:\t {:.3f}".format(iou_thresholds[0], iou_thresholds[-1],
                                                   mean_ap))
    return mean_ap


def compute_recall(pred_boxes: np.ndarray, gt_boxes: np.ndarray, iou: float):
    """Fraction of ground-truth boxes that some predicted box overlaps enough (box IoU).

    Edge cases: with no predictions or no ground truth the recall is 0.0 and no prediction
    is positive (the classic code raised for an empty ground truth).

    Args:
        pred_boxes: [P, (y1, x1, y2, x2)] predicted boxes, e.g. RPN proposals.
        gt_boxes: [G, (y1, x1, y2, x2)] ground-truth boxes.
        iou: smallest IoU for a prediction to find its best-overlapping ground truth.

    Returns:
        recall: number of distinct ground-truth boxes found / G.
        positive_ids: [K] int indices of the predictions that found one.
    """
    overlaps = compute_overlaps(pred_boxes, gt_boxes)
    if overlaps.size == 0:
        return 0.0, np.zeros([0], dtype=np.int64)
    iou_max = np.max(overlaps, axis=1)
    iou_argmax = np.argmax(overlaps, axis=1)
    positive_ids = np.where(iou_max >= iou)[0]
    recall = len(set(iou_argmax[positive_ids])) / overlaps.shape[1]
    return recall, positive_ids
