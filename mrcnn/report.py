"""An evaluation report that shows where a model fails.

From the detections of :func:`mrcnn.evaluation.detect_dataset` and the ground
truth of :func:`mrcnn.evaluation.ground_truth`:

- a confusion matrix over the classes plus background (CSV and PNG): each
  detection scoring at least ``min_score`` is matched, best score first, to the
  unmatched ground-truth instance of highest mask IoU if that IoU is at least
  ``iou_threshold``, whatever the two classes; ``matrix[true, predicted]``, row 0
  the detections that match nothing (false positives), column 0 the instances
  that no detection matches (misses). Detections that only cover a crowd region
  are not counted.
- precision-recall curves per class at IoU 0.5 from pycocotools (PNG);
- the images with most errors (false positives, misses, wrong classes), ground
  truth and detections side by side (PNG).

Drawing uses matplotlib's headless Agg canvas: no display is needed.

Shapes: C classes including the background (class 0); G ground-truth instances
and P detections in an image.
"""
from __future__ import annotations

import contextlib
import csv
import io
import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure
from pycocotools import mask as mask_utils
from pycocotools.cocoeval import COCOeval

from mrcnn.boxes import extract_bboxes
from mrcnn.dataset import Dataset
from mrcnn.evaluation import GroundTruth, ImageDetections
from mrcnn.progress import Progress

GT_COLOR = (0.0, 0.8, 0.0)
PRED_COLOR = (1.0, 0.2, 0.2)


@dataclass
class Confusion:
    """A confusion matrix and the errors of each image.

    Attributes:
        matrix: int [C, C], rows the true class, columns the predicted one;
            index 0 is the background.
        errors: {internal image id: false positives + misses + wrong classes}.
    """
    matrix: np.ndarray
    errors: dict


def match_instances(gt_rles: list, gt_crowd: np.ndarray, pred_rles: list,
                    pred_scores: np.ndarray, iou_threshold: float = 0.5):
    """Class-agnostic greedy matching of one image's detections to its ground truth.

    Args:
        gt_rles: G RLEs of the ground-truth masks.
        gt_crowd: [G] bool, crowd regions.
        pred_rles: P RLEs of the detected masks.
        pred_scores: [P] confidences.
        iou_threshold: smallest mask IoU of a match.

    Returns:
        pred_match: [P] int, the matched ground-truth index, -1 for none, -2 for a
            detection that only covers a crowd region.
        gt_match: [G] int, the matched detection index or -1 (always -1 for crowds).
    """
    pred_match = -np.ones(len(pred_rles), int)
    gt_match = -np.ones(len(gt_rles), int)
    if not pred_rles or not gt_rles:
        return pred_match, gt_match
    # For a crowd, pycocotools' IoU is the fraction of the detection inside it.
    overlaps = np.asarray(mask_utils.iou(pred_rles, gt_rles, [int(c) for c in gt_crowd]))
    for i in np.argsort(-np.asarray(pred_scores), kind="stable"):
        free = (gt_match < 0) & ~gt_crowd & (overlaps[i] >= iou_threshold)
        if free.any():
            j = int(np.argmax(np.where(free, overlaps[i], -1.0)))
            pred_match[i], gt_match[j] = j, i
        elif np.any(gt_crowd & (overlaps[i] >= iou_threshold)):
            pred_match[i] = -2
    return pred_match, gt_match


def confusion_matrix(detections: Sequence[ImageDetections], truth: GroundTruth,
                     num_classes: int, iou_threshold: float = 0.5,
                     min_score: float = 0.5, verbose: int = 0) -> Confusion:
    """Counts matches between detections and ground truth by class (see the module doc).

    Args:
        detections: one ImageDetections per image.
        truth: the ground truth of those images.
        num_classes: C, the dataset's class count including the background.
        iou_threshold: smallest mask IoU of a match.
        min_score: detections scoring lower are left out.
        verbose: 1 shows a progress bar on stderr.
    """
    matrix = np.zeros((num_classes, num_classes), np.int64)
    errors = {}
    progress = Progress(len(detections), "confusion", enabled=bool(verbose))
    for n, image in enumerate(detections, start=1):
        gt_class_ids, gt_rles, gt_crowd = truth.instances(image.image_id)
        keep = np.flatnonzero(image.scores >= min_score)
        pred_class_ids = image.class_ids[keep]
        if pred_class_ids.size and pred_class_ids.max() >= num_classes:
            raise ValueError(
                f"a detection of image {image.image_id} has class id "
                f"{int(pred_class_ids.max())} but the dataset has {num_classes} classes: "
                "the model's NUM_CLASSES is larger than the dataset's; evaluate on the "
                "dataset (classes) that the model was trained for.")
        pred_match, gt_match = match_instances(gt_rles, gt_crowd,
                                               [image.rles[k] for k in keep],
                                               image.scores[keep], iou_threshold)
        matched = pred_match >= 0
        true_class = np.zeros(len(pred_match), np.int64)
        true_class[matched] = gt_class_ids[pred_match[matched]]
        counted = pred_match != -2
        np.add.at(matrix, (true_class[counted], pred_class_ids[counted]), 1)
        missed = (gt_match < 0) & ~gt_crowd
        np.add.at(matrix, (gt_class_ids[missed], 0), 1)
        wrong_class = matched & (true_class != pred_class_ids)
        errors[image.image_id] = int(np.sum(pred_match == -1) + missed.sum()
                                     + wrong_class.sum())
        progress.update(n)
    return Confusion(matrix, errors)


def save_confusion_matrix(matrix: np.ndarray, class_names: Sequence[str], csv_path: str,
                          png_path: str, iou_threshold: float = 0.5) -> None:
    """Writes the matrix as CSV (a header row and a first column of class names,
    "background" first) and as a PNG heat map with the counts, titled with the
    `iou_threshold` that matched the instances."""
    names = ["background" if k == 0 else name for k, name in enumerate(class_names)]
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["true \\ predicted", *names])
        for name, row in zip(names, matrix):
            writer.writerow([name, *(int(v) for v in row)])

    size = 2.5 + 0.6 * len(names)
    fig = Figure(figsize=(size + 1, size), dpi=100)
    ax = fig.add_subplot()
    # Normalized per true class, so that rare classes are as readable as common ones.
    totals = np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    image = ax.imshow(matrix / totals, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, label="fraction of the true class")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center",
                color="white" if count / totals[i, 0] > 0.5 else "black")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"confusion matrix (mask IoU >= {iou_threshold:g})")
    fig.tight_layout()
    fig.savefig(png_path)


def save_precision_recall(evaluator: COCOeval, truth: GroundTruth,
                          class_names: Sequence[str], path: str) -> None:
    """Draws each class's precision-recall curve at IoU 0.5 (pycocotools' interpolated
    precision, all areas, 100 detections per image); classes without ground truth
    are left out."""
    # precision: [iou thresholds, recall thresholds, classes, area ranges, max dets].
    precision = evaluator.eval["precision"][0, :, :, 0, -1]
    recall = evaluator.params.recThrs
    fig = Figure(figsize=(7, 5), dpi=100)
    ax = fig.add_subplot()
    for k, category_id in enumerate(evaluator.params.catIds):
        curve = precision[:, k]
        if np.all(curve < 0):
            continue
        curve = np.maximum(curve, 0)
        ax.plot(recall, curve, label=f"{class_names[truth.class_id(category_id)]} "
                                     f"(AP50 {curve.mean():.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(f"precision-recall per class, {evaluator.params.iouType} IoU 0.5")
    if ax.lines:
        ax.legend(loc="lower left", fontsize="small")
    fig.tight_layout()
    fig.savefig(path)


def save_worst_images(dataset: Dataset, detections: Sequence[ImageDetections],
                      truth: GroundTruth, errors: dict, path: str, count: int = 4,
                      min_score: float = 0.5) -> list[int]:
    """Draws the `count` images with most errors: ground truth left, detections
    scoring at least `min_score` right, each labelled with class name (and score).

    Returns:
        The internal ids of the images drawn, worst first (none without errors).
    """
    from mrcnn import visualize

    worst = [i for i in sorted(errors, key=lambda i: -errors[i]) if errors[i] > 0][:count]
    by_id = {image.image_id: image for image in detections}
    rows = max(len(worst), 1)
    fig = Figure(figsize=(8, 4 * rows), dpi=100)
    axes = fig.subplots(rows, 2, squeeze=False)
    for row, image_id in enumerate(worst):
        image = dataset.load_image(image_id)
        class_ids, rles, crowd = truth.instances(image_id)
        gt_masks = (mask_utils.decode(rles).astype(bool) if rles
                    else np.zeros(image.shape[:2] + (0,), bool))
        found = by_id[image_id]
        keep = np.flatnonzero(found.scores >= min_score)
        # display_instances prints a line for an image without instances.
        with contextlib.redirect_stdout(io.StringIO()):
            visualize.display_instances(
                image, extract_bboxes(gt_masks), gt_masks, class_ids, dataset.class_names,
                ax=axes[row, 0], colors=[GT_COLOR] * len(class_ids),
                captions=[dataset.class_names[c] + (" (crowd)" if is_crowd else "")
                          for c, is_crowd in zip(class_ids, crowd)])
            visualize.display_instances(
                image, found.rois[keep], found.masks[:, :, keep], found.class_ids[keep],
                dataset.class_names, found.scores[keep], ax=axes[row, 1],
                colors=[PRED_COLOR] * len(keep))
        axes[row, 0].set_title(f"image {image_id}: ground truth")
        axes[row, 1].set_title(f"detections ({errors[image_id]} errors)")
    if not worst:
        for ax in axes[0]:
            ax.axis("off")
        axes[0, 0].text(0.5, 0.5, "no errors", ha="center", transform=axes[0, 0].transAxes)
    fig.tight_layout()
    fig.savefig(path)
    return worst


def write_report(dataset: Dataset, detections: Sequence[ImageDetections],
                 truth: GroundTruth, evaluator: COCOeval, out_dir: str, prefix: str,
                 iou_threshold: float = 0.5, min_score: float = 0.5, worst: int = 4,
                 verbose: int = 1) -> dict:
    """Writes the report's files to ``out_dir/<prefix>_*``.

    Args:
        dataset: the dataset the detections come from (for class names and images).
        detections: from :func:`mrcnn.evaluation.detect_dataset`.
        truth: from :func:`mrcnn.evaluation.ground_truth`, same images.
        evaluator: a pycocotools evaluation of them (:func:`mrcnn.evaluation.run_cocoeval`),
            whose curves are drawn; "segm" for instance segmentation.
        out_dir: output folder (created).
        prefix: start of the file names.
        iou_threshold, min_score: of the confusion matrix and the worst images.
        worst: how many images to draw.
        verbose: 1 shows a progress bar on stderr.

    Returns:
        {"confusion_csv", "confusion_png", "pr_curves_png", "worst_png": paths,
        "confusion": Confusion, "worst_images": internal ids drawn}.
    """
    os.makedirs(out_dir, exist_ok=True)
    paths = {key: os.path.join(out_dir, f"{prefix}_{name}") for key, name in (
        ("confusion_csv", "confusion.csv"), ("confusion_png", "confusion.png"),
        ("pr_curves_png", "pr_curves.png"), ("worst_png", "worst.png"))}
    confusion = confusion_matrix(detections, truth, dataset.num_classes, iou_threshold,
                                 min_score, verbose)
    save_confusion_matrix(confusion.matrix, dataset.class_names, paths["confusion_csv"],
                          paths["confusion_png"], iou_threshold)
    save_precision_recall(evaluator, truth, dataset.class_names, paths["pr_curves_png"])
    drawn = save_worst_images(dataset, detections, truth, confusion.errors,
                              paths["worst_png"], worst, min_score)
    return {**paths, "confusion": confusion, "worst_images": drawn}
