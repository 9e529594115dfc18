"""Inference over collections: image files to overlays and results, datasets to COCO
scores and an evaluation report.

The work behind ``mrcnn detect`` and ``mrcnn evaluate``, usable from Python::

    paths = collect_images(["photos/"])
    results = detect_files(model, paths, "out", class_names)     # out/*.png, results.json
    stats = evaluate(model, dataset, coco, ("bbox", "segm"), limit=500,
                     out_dir="logs", prefix="coco_val2017")

Shapes: H, W image height and width; N detections in an image.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
from typing import TYPE_CHECKING, Sequence

import numpy as np

from mrcnn.image_io import UINT16_TO_UINT8, read_raw_image, to_model_image
from mrcnn.progress import Progress

if TYPE_CHECKING:  # the model module imports TensorFlow
    from pycocotools.coco import COCO

    from mrcnn.dataset import Dataset
    from mrcnn.model import MaskRCNN

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def collect_images(paths: Sequence[str]) -> list[str]:
    """Image files named by `paths`: files as given, folders' images sorted by name.

    Raises:
        FileNotFoundError: a path that does not exist.
        ValueError: no image at all.
    """
    files = []
    for path in paths:
        if os.path.isdir(path):
            files += sorted(os.path.join(path, name) for name in os.listdir(path)
                            if name.lower().endswith(IMAGE_EXTENSIONS))
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise FileNotFoundError(f"no such image file or folder: {path}")
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {', '.join(paths)}")
    return files


def read_image(path: str) -> tuple[np.ndarray, str | None]:
    """Reads an image file as 8-bit RGB (the policy of :mod:`mrcnn.image_io`).

    Returns:
        ([H, W, 3] image, a note for the user or None). Grayscale is repeated
        to three channels, alpha dropped, 16-bit values divided by 257.

    Raises:
        OSError: the file cannot be decoded (``image_io.ImageReadError``).
        ValueError: a channel count or pixel values the model cannot take.
    """
    raw = read_raw_image(path)
    message = None
    if raw.dtype == np.uint16:
        message = f"note: {path} is 16-bit: scaled to 8 bits (divided by {UINT16_TO_UINT8})"
    return to_model_image(raw, path), message


def _output_name(path: str, used: set) -> str:
    """``<stem>.png``, numbered when two inputs share a stem (a.jpg and a.png)."""
    stem = os.path.splitext(os.path.basename(path))[0]
    name, n = f"{stem}.png", 1
    while name in used:
        name, n = f"{stem}-{n}.png", n + 1
    used.add(name)
    return name


def detect_files(model: MaskRCNN, paths: Sequence[str], out_dir: str,
                 names: Sequence[str]) -> list[dict]:
    """Runs `model` on image files, writing DIR/<stem>.png overlays and DIR/results.json.

    Args:
        model: an inference-mode MaskRCNN.
        paths: image files, already checked with :func:`read_image`.
        out_dir: output folder (created).
        names: class names, background first.

    Returns:
        The COCO-style results: one dict per detection with file_name, image_id
        (index in `paths`), category_id (class id), category_name, bbox
        [x, y, w, h], score and segmentation (RLE, counts a str).
    """
    from mrcnn import visualize
    from mrcnn.evaluation import coco_result, encode_masks

    os.makedirs(out_dir, exist_ok=True)
    results, used, progress = [], set(), Progress(len(paths), "detect")
    for index, path in enumerate(paths):
        image, _ = read_image(path)
        r = model.detect([image])[0]
        save_path = os.path.join(out_dir, _output_name(path, used))
        # display_instances prints a line for an image without detections: keep stdout clean.
        with contextlib.redirect_stdout(io.StringIO()):
            visualize.display_instances(image, r["rois"], r["masks"], r["class_ids"], names,
                                        r["scores"], save_path=save_path)
        for box, class_id, score, rle in zip(r["rois"], r["class_ids"], r["scores"],
                                             encode_masks(r["masks"])):
            results.append({"file_name": path,
                            **coco_result(index, int(class_id), box, score, rle),
                            "category_name": names[class_id]})
        progress.update(index + 1)
    with open(os.path.join(out_dir, "results.json"), "w", encoding="utf-8") as f:
        json.dump(results, f)
    return results


def print_stats(eval_type: str, stats: dict) -> None:
    """The 12 COCO numbers on one line, then the per-class AP table."""
    from mrcnn.coco import STAT_NAMES

    print(f"{eval_type}: " + "  ".join(f"{n} {stats[n]:.3f}" for n in STAT_NAMES))
    print(f"per-class AP ({eval_type}, IoU .50:.95):")
    for name, ap in stats["per_class_ap"].items():
        print(f"  {name:<24} {'n/a' if math.isnan(ap) else f'{ap:.3f}'}")


def evaluate(model: MaskRCNN, dataset: Dataset, coco: COCO | None,
             eval_types: Sequence[str], limit: int, out_dir: str, prefix: str,
             report: bool = True) -> dict:
    """COCO evaluation of `model` for each of `eval_types` from one detection pass,
    and the report of :mod:`mrcnn.report`.

    Args:
        model: an inference-mode MaskRCNN (DETECTION_MIN_CONFIDENCE 0 for COCO scoring).
        dataset: prepared dataset of the images to score: a CocoDataset with `coco`,
            or any Dataset (its ground truth is then read through ``load_mask``).
        coco: the pycocotools ground truth of a CocoDataset, or None.
        eval_types: "bbox" and/or "segm".
        limit: score only the first `limit` images (0: all).
        out_dir: folder for ``<prefix>_<type>_results.json``, ``<prefix>_stats.json``
            and the report (``<prefix>_confusion.csv`` / ``.png``,
            ``<prefix>_pr_curves.png``, ``<prefix>_worst.png``).
        prefix: start of the file names.
        report: also write the report (its curves are those of the last eval type).

    Returns:
        ``{eval_type: stats}`` with the statistics of mrcnn.coco.evaluate_coco,
        also printed (the 12 numbers and the per-class AP).
    """
    from mrcnn.coco import write_results
    from mrcnn.evaluation import (coco_results, detect_dataset, ground_truth, run_cocoeval,
                                  summarize)
    from mrcnn.report import write_report

    for eval_type in eval_types:
        if eval_type not in ("bbox", "segm"):
            raise ValueError(f"eval_type must be 'bbox' or 'segm', got {eval_type!r}")
    os.makedirs(out_dir, exist_ok=True)
    image_ids = list(dataset.image_ids)[:limit or None]
    truth = ground_truth(dataset, image_ids, coco)
    detections = detect_dataset(model, dataset, image_ids)
    results = coco_results(detections, truth)
    all_stats, evaluator = {}, None
    for eval_type in eval_types:
        path = write_results(results,
                             os.path.join(out_dir, f"{prefix}_{eval_type}_results.json"))
        evaluator = run_cocoeval(results, truth, eval_type)
        all_stats[eval_type] = {**summarize(evaluator, truth, dataset.class_names),
                                "results_path": path}
        print_stats(eval_type, all_stats[eval_type])
    stats_path = os.path.join(out_dir, f"{prefix}_stats.json")
    with open(stats_path, "w", encoding="utf-8") as f:
        json.dump(all_stats, f, indent=1)
    if report:
        write_report(dataset, detections, truth, evaluator, out_dir, prefix)
    print(f"results, statistics and report in {out_dir}")
    return all_stats
