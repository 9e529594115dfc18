"""Evaluation in two steps: detect once over a dataset, then score with pycocotools.

Detection is the slow part, so it runs once (``MaskRCNN.detect`` in batches of
``BATCH_SIZE``, each image read once) and its results are kept, masks as RLEs;
any number of scorings ("bbox", "segm", the report of :mod:`mrcnn.report`)
then work from them::

    detections = detect_dataset(model, dataset, limit=50)
    truth = ground_truth(dataset, [d.image_id for d in detections])   # any Dataset
    for eval_type in ("bbox", "segm"):
        stats = score_detections(detections, truth, dataset.class_names, eval_type)

The ground truth is either the pycocotools ``COCO`` object of a COCO-format
dataset or, for any other :class:`~mrcnn.dataset.Dataset`, one built in memory
from ``load_mask`` (negative class ids are crowds, as in the classic data
pipeline).

Shapes: H, W image height and width; N detections (or instances) in an image.
"""
from __future__ import annotations

import contextlib
import copy
import io
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mrcnn.dataset import Dataset
from mrcnn.progress import Progress

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl",
              "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
EVAL_TYPES = ("bbox", "segm")


@dataclass
class ImageDetections:
    """The detections of one dataset image, masks kept compact.

    Attributes:
        image_id: internal image id in the dataset.
        rois: [N, (y1, x1, y2, x2)] int32 pixel boxes, y2/x2 exclusive.
        class_ids: [N] int32 internal class ids.
        scores: [N] float32 confidences.
        rles: N compressed COCO RLEs of the [H, W] masks (counts a str).
        shape: (H, W) of the image.
    """
    image_id: int
    rois: np.ndarray
    class_ids: np.ndarray
    scores: np.ndarray
    rles: list
    shape: tuple

    @classmethod
    def from_result(cls, image_id: int, result: dict) -> ImageDetections:
        """From one ``detect()`` result (rois, class_ids, scores, masks [H, W, N])."""
        masks = result["masks"]
        return cls(int(image_id), np.asarray(result["rois"], np.int32),
                   np.asarray(result["class_ids"], np.int32),
                   np.asarray(result["scores"], np.float32), encode_masks(masks),
                   tuple(masks.shape[:2]))

    @property
    def masks(self) -> np.ndarray:
        """bool [H, W, N] masks."""
        if not self.rles:
            return np.zeros(self.shape + (0,), bool)
        return mask_utils.decode(self.rles).astype(bool)


@dataclass
class GroundTruth:
    """pycocotools ground truth and how the dataset's ids map onto it.

    Attributes:
        coco: the ``COCO`` object.
        image_ids: {internal image id: COCO image id} of the images to score.
        category_ids: {internal class id: COCO category id} of the classes to score.
    """
    coco: COCO
    image_ids: dict
    category_ids: dict

    def __post_init__(self):
        self._class_ids = {c: k for k, c in self.category_ids.items()}

    def class_id(self, category_id: int) -> int:
        """The internal class id of a COCO category id."""
        return self._class_ids[category_id]

    def instances(self, image_id: int) -> tuple[np.ndarray, list, np.ndarray]:
        """The ground truth of an image as (class ids [G], G RLEs, crowd flags [G])."""
        annotations = [a for a in self.coco.imgToAnns[self.image_ids[image_id]]
                       if a["category_id"] in self._class_ids]
        class_ids = np.array([self._class_ids[a["category_id"]] for a in annotations],
                             np.int32)
        rles = [self.coco.annToRLE(a) for a in annotations]
        crowd = np.array([bool(a.get("iscrowd", 0)) for a in annotations], bool)
        return class_ids, rles, crowd


def encode_masks(masks: np.ndarray) -> list:
    """bool [H, W, N] masks as N compressed RLEs whose counts are str (JSON-ready)."""
    if masks.shape[2] == 0:
        return []
    rles = mask_utils.encode(np.asfortranarray(masks, np.uint8))
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return rles


def detect_dataset(model: Any, dataset: Dataset, image_ids: Sequence[int] | None = None,
                   limit: int = 0, batch_size: int | None = None,
                   verbose: int = 1) -> list[ImageDetections]:
    """Runs `model` once over dataset images, reading each image once.

    Args:
        model: anything with ``detect(images)`` returning one dict per image
            (rois, class_ids, scores, masks) and ``config.BATCH_SIZE``, e.g. an
            inference-mode MaskRCNN.
        dataset: the prepared dataset.
        image_ids: internal image ids; default all the dataset's.
        limit: only the first `limit` of them; 0 means all.
        batch_size: images per ``detect`` call; default ``model.config.BATCH_SIZE``.
        verbose: 1 shows a progress bar on stderr and prints the prediction time.

    Returns:
        One ImageDetections per image, in the order of `image_ids`.
    """
    image_ids = list(dataset.image_ids if image_ids is None else image_ids)
    if limit:
        image_ids = image_ids[:limit]
    batch_size = batch_size or model.config.BATCH_SIZE
    detections, detect_time = [], 0.0
    progress = Progress(len(image_ids), "detect", enabled=bool(verbose))
    for start in range(0, len(image_ids), batch_size):
        batch = image_ids[start:start + batch_size]
        images = [dataset.load_image(i) for i in batch]
        tic = time.perf_counter()
        results = model.detect(images)
        detect_time += time.perf_counter() - tic
        detections += [ImageDetections.from_result(i, r) for i, r in zip(batch, results)]
        progress.update(start + len(batch))
    if verbose:
        print(f"Prediction time: {detect_time:.1f} s "
              f"({detect_time / max(len(image_ids), 1):.2f} s/image)")
    return detections


def ground_truth(dataset: Dataset, image_ids: Sequence[int] | None = None,
                 coco: COCO | None = None) -> GroundTruth:
    """The ground truth of dataset images for pycocotools.

    Args:
        dataset: the prepared dataset.
        image_ids: internal image ids to score; default all.
        coco: the ``COCO`` object of a COCO-format dataset (its images and classes
            of source "coco"); None builds the ground truth from ``load_mask``
            (image and category ids are then the internal ones).

    Raises:
        ValueError: with `coco`, images or classes that it lacks.
    """
    image_ids = [int(i) for i in (dataset.image_ids if image_ids is None else image_ids)]
    if coco is None:
        return _ground_truth_from_masks(dataset, image_ids)
    coco_ids = {i: dataset.image_info[i]["id"] for i in image_ids}
    unknown = [c for c in coco_ids.values() if c not in coco.imgs]
    if unknown:
        raise ValueError(f"{len(unknown)} images (COCO ids {unknown[:5]}) are not in the "
                         "given COCO ground truth; pass the COCO object that load_coco "
                         "returned for this dataset")
    category_ids = {class_id: info["id"] for class_id, info in enumerate(dataset.class_info)
                    if info["source"] == "coco" and info["id"] in coco.cats}
    if not category_ids:
        raise ValueError("none of the dataset's classes is a category of the COCO ground "
                         "truth (are they of source 'coco'?)")
    return GroundTruth(coco, coco_ids, dict(sorted(category_ids.items())))


def _ground_truth_from_masks(dataset: Dataset, image_ids: list[int]) -> GroundTruth:
    images, annotations = [], []
    for image_id in image_ids:
        masks, class_ids = dataset.load_mask(image_id)
        images.append({"id": image_id, "height": masks.shape[0], "width": masks.shape[1]})
        for rle, class_id in zip(encode_masks(masks), class_ids):
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": abs(int(class_id)), "segmentation": rle,
                                "area": float(mask_utils.area(rle)),
                                "bbox": mask_utils.toBbox(rle).tolist(),
                                "iscrowd": int(class_id < 0)})
    categories = [{"id": k, "name": name} for k, name in enumerate(dataset.class_names)
                  if k > 0]
    coco = COCO()
    coco.dataset = {"images": images, "annotations": annotations, "categories": categories}
    with _quiet(True):
        coco.createIndex()
    return GroundTruth(coco, {i: i for i in image_ids}, {c["id"]: c["id"] for c in categories})


def coco_result(image_id: Any, category_id: Any, box: Sequence[float], score: float,
                rle: dict | None = None) -> dict:
    """One detection in the COCO results format.

    Args:
        image_id, category_id: COCO ids.
        box: (y1, x1, y2, x2) pixels, y2/x2 exclusive.
        score: confidence.
        rle: compressed RLE of the mask (counts a str); None leaves out "segmentation".

    Returns:
        {image_id, category_id, bbox [x, y, width, height] rounded to 0.1 px, score
        (, segmentation)}.
    """
    y1, x1, y2, x2 = (float(v) for v in box)
    result = {"image_id": image_id, "category_id": category_id,
              "bbox": [float(round(v, 1)) for v in (x1, y1, x2 - x1, y2 - y1)],
              "score": float(score)}
    if rle is not None:
        result["segmentation"] = rle
    return result


def coco_results(detections: Sequence[ImageDetections], truth: GroundTruth) -> list[dict]:
    """The detections in the COCO results format, with the ids of `truth`; classes it
    does not score are left out."""
    results = []
    for image in detections:
        for box, class_id, score, rle in zip(image.rois, image.class_ids, image.scores,
                                             image.rles):
            if int(class_id) in truth.category_ids:
                results.append(coco_result(truth.image_ids[image.image_id],
                                           truth.category_ids[int(class_id)], box, score, rle))
    return results


def run_cocoeval(results: list[dict], truth: GroundTruth, eval_type: str,
                 verbose: int = 0) -> COCOeval:
    """pycocotools' evaluation of COCO-format `results`, accumulated and summarized.

    Args:
        results: from :func:`coco_results`.
        truth: the ground truth; only its images and categories are scored.
        eval_type: "bbox" or "segm".
        verbose: 1 lets pycocotools print its summary.
    """
    if eval_type not in EVAL_TYPES:
        raise ValueError(f"eval_type must be 'bbox' or 'segm', got {eval_type!r}")
    with _quiet(not verbose):
        # loadRes cannot take an empty list; scoring an empty result set gives the true zeros.
        # It also adds fields (id, area) to the results: give it copies. Given a bbox it
        # takes the box's area, which would put masks in the size ranges of their boxes.
        dropped = ("bbox",) if eval_type == "segm" else ()
        loaded = (truth.coco.loadRes([{k: v for k, v in r.items() if k not in dropped}
                                      for r in results]) if results
                  else _empty_results(truth.coco))
        evaluator = COCOeval(truth.coco, loaded, eval_type)
        evaluator.params.imgIds = list(truth.image_ids.values())
        evaluator.params.catIds = sorted(truth.category_ids.values())
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


def summarize(evaluator: COCOeval, truth: GroundTruth, class_names: Sequence[str]) -> dict:
    """The 12 summary numbers of an evaluation and the AP@[.5:.95] of each class.

    Returns:
        ``{"AP", "AP50", ..., "ARl"}`` (-1 where no ground truth falls in an area
        range) and ``"per_class_ap"``: {class name: AP}, nan for a class without
        ground truth.
    """
    stats: dict[str, Any] = {name: float(v) for name, v in zip(STAT_NAMES, evaluator.stats)}
    # precision: [iou thresholds, recall thresholds, classes, area ranges, max dets]; area
    # range 0 is "all" and the last max-dets is 100, the slice the "AP" summary averages.
    precision = evaluator.eval["precision"]
    per_class = {}
    for k, category_id in enumerate(evaluator.params.catIds):
        values = precision[:, :, k, 0, -1]
        values = values[values > -1]
        name = class_names[truth.class_id(category_id)]
        per_class[name] = float(values.mean()) if values.size else float("nan")
    stats["per_class_ap"] = per_class
    return stats


def score_detections(detections: Sequence[ImageDetections], truth: GroundTruth,
                     class_names: Sequence[str], eval_type: str = "bbox",
                     verbose: int = 0) -> dict:
    """COCO statistics of detections: :func:`run_cocoeval` then :func:`summarize`.

    Args:
        detections: from :func:`detect_dataset`.
        truth: from :func:`ground_truth`, for the same images.
        class_names: the dataset's class names (``dataset.class_names``).
        eval_type: "bbox" or "segm".
        verbose: 1 lets pycocotools print its summary.
    """
    evaluator = run_cocoeval(coco_results(detections, truth), truth, eval_type, verbose)
    return summarize(evaluator, truth, class_names)


def _empty_results(coco: COCO) -> COCO:
    results = COCO()
    results.dataset = {"images": list(coco.dataset["images"]),
                       "categories": copy.deepcopy(coco.dataset["categories"]),
                       "annotations": []}
    with _quiet(True):
        results.createIndex()
    return results


def _quiet(quiet: bool):
    """Silences pycocotools' prints to stdout when `quiet`."""
    return contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext()
