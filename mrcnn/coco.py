"""COCO-format datasets and COCO-style evaluation, on top of pycocotools.

:class:`CocoDataset` reads the official MS COCO layout or any COCO-format
annotations file (the format most labelling tools export), checks it, and turns
its polygons and RLEs into instance masks. :func:`evaluate_coco` runs a model
over a dataset and scores it with pycocotools' ``COCOeval``::

    dataset = CocoDataset()
    coco = dataset.load_coco("/data/coco", "val", year=2017, return_coco=True)
    dataset.prepare()
    stats = evaluate_coco(model, dataset, coco, eval_type="segm", limit=500)
    print(stats["AP"], stats["per_class_ap"]["person"])

Shapes: H, W image height and width; N instances (or detections) in an image.
"""
from __future__ import annotations

import json
import os
import tempfile
import warnings
from typing import Any, Sequence

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from mrcnn.coco_format import find_coco_files, read_coco, segmentation_to_rle
from mrcnn.dataset import Dataset
from mrcnn.evaluation import STAT_NAMES  # noqa: F401  (its classic home)
from mrcnn.evaluation import (EVAL_TYPES, coco_result, coco_results, detect_dataset,
                              encode_masks, ground_truth, run_cocoeval, summarize)


class CocoDataset(Dataset):
    """A dataset read from COCO-format annotations; every class and image has source "coco".

    COCO category ids become the class ids' source ids, so
    ``map_source_class_id("coco.18")`` and ``get_source_class_id(class_id, "coco")``
    convert between the two; COCO image ids are the images' source ids.
    """

    def load_coco(self, dataset_dir_or_json: str | os.PathLike, subset: str | None = None,
                  year: int | str | None = None, class_ids: Sequence[int] | None = None,
                  class_map: dict | None = None, return_coco: bool = False,
                  image_dir: str | os.PathLike | None = None, keep_empty: bool = True,
                  skip_unreadable: bool = False) -> COCO | None:
        """Adds the classes and images of a COCO-format annotations file.

        Call it once per file (e.g. train2014 then valminusminival2014), then
        :meth:`prepare`.

        Args:
            dataset_dir_or_json: either a COCO root holding
                ``annotations/instances_{subset}{year}.json`` and the images in
                ``{subset}{year}/`` (``val{year}/`` for the 2014 "minival" and
                "valminusminival" splits), or the path of an annotations ``.json``.
            subset: "train", "val", "minival", ... with a COCO root; None with a JSON path.
            year: e.g. 2017 with a COCO root (None: no year in the names); None with a
                JSON path.
            class_ids: COCO category ids to load (in this order); None loads every
                category of the file, sorted by id.
            class_map: unused, as in the classic API (kept for compatibility).
            return_coco: also return the pycocotools ``COCO`` object (needed by
                :func:`evaluate_coco`).
            image_dir: folder that the images' ``file_name`` entries are relative to.
                Default: ``{root}/{subset}{year}`` for a COCO root, the JSON's own
                folder for a JSON path.
            keep_empty: keep images without any annotation of the loaded classes
                (negatives). With `class_ids`, the classic loader dropped them: pass
                False for that behaviour.
            skip_unreadable: drop images whose file does not exist, with a warning
                saying how many. Otherwise files are not checked here (too slow for
                COCO) and :meth:`load_image` raises OSError on a missing file.

        Returns:
            The pycocotools ``COCO`` object if `return_coco`, else None.

        Raises:
            FileNotFoundError: the annotations file or the image folder is missing;
                the message names the expected path and where to download it.
            ValueError: the file is not valid COCO (an annotation names an unknown
                image or category, a segmentation lies outside its image, a
                required key is missing, ...), or a class id is not in the file.
        """
        if class_map is not None:
            warnings.warn("load_coco(class_map=...) is not supported and is ignored.",
                          stacklevel=2)
        json_path, image_dir = find_coco_files(dataset_dir_or_json, subset, year, image_dir)
        coco = read_coco(json_path)

        all_ids = sorted(coco.cats)
        if class_ids is None:
            class_ids = all_ids
        unknown = [c for c in class_ids if c not in coco.cats]
        if unknown:
            raise ValueError(f"class_ids {unknown} are not categories of {json_path}; "
                             f"its category ids are {all_ids}")
        for cat_id in class_ids:
            self.add_class("coco", cat_id, coco.cats[cat_id]["name"])

        wanted = set(class_ids)
        loaded = {info["id"] for info in self.image_info if info["source"] == "coco"}
        clashes = loaded.intersection(coco.imgs)
        if clashes:
            warnings.warn(f"{len(clashes)} image ids of {json_path} are already in this dataset "
                          f"(e.g. {sorted(clashes)[:3]}): lookups by COCO id will find only "
                          "the last image with that id", stacklevel=2)
        missing = []
        for coco_id, image in coco.imgs.items():
            annotations = [a for a in coco.imgToAnns.get(coco_id, ())
                           if a["category_id"] in wanted]
            if not annotations and not keep_empty:
                continue
            path = os.path.join(image_dir, image["file_name"])
            if skip_unreadable and not os.path.isfile(path):
                missing.append(path)
                continue
            extra = {"coco_url": image["coco_url"]} if "coco_url" in image else {}
            self.add_image("coco", image_id=coco_id, path=path, width=int(image["width"]),
                           height=int(image["height"]), annotations=annotations, **extra)
        self._coco_files = getattr(self, "_coco_files", []) + [coco]
        if missing:
            warnings.warn(f"skip_unreadable: dropped {len(missing)} of {len(coco.imgs)} images "
                          f"of {json_path} whose file does not exist, e.g. "
                          f"{', '.join(missing[:3])}", stacklevel=2)
        return coco if return_coco else None

    @property
    def coco_ground_truth(self) -> COCO | None:
        """The ``COCO`` object of the one annotations file loaded, None after several
        files (or none): training-time evaluation scores against it."""
        files = getattr(self, "_coco_files", [])
        return files[0] if len(files) == 1 else None

    def annToRLE(self, ann: dict, height: int, width: int) -> dict | None:  # noqa: N802
        """Compressed RLE of an annotation's segmentation (classic name).

        Args:
            ann: a COCO annotation with a polygon list, compressed or uncompressed RLE.
            height: image height H.
            width: image width W.

        Returns:
            The RLE dict ``{"size": [H, W], "counts": ...}``, or None when the
            segmentation has no polygon of at least 3 points.
        """
        return segmentation_to_rle(ann["segmentation"], height, width)

    def annToMask(self, ann: dict, height: int, width: int) -> np.ndarray:  # noqa: N802
        """Binary mask of an annotation (classic name).

        Args:
            ann: a COCO annotation, as in :meth:`annToRLE`.
            height: image height H.
            width: image width W.

        Returns:
            uint8 [H, W] mask, 1 inside.
        """
        rle = self.annToRLE(ann, height, width)
        if rle is None:
            return np.zeros((height, width), np.uint8)
        return mask_utils.decode(rle)

    def load_mask(self, image_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Instance masks of a COCO image.

        Crowd regions (``iscrowd=1``) get the negative of their class id, the
        classic convention that lets training keep them out of both the
        positives and the background. Annotations whose mask covers no pixel
        are skipped.

        Args:
            image_id: internal image id.

        Returns:
            masks: bool [H, W, N].
            class_ids: int32 [N], negative for crowds. N may be 0.
        """
        info = self._image(image_id)
        if info["source"] != "coco":
            return super().load_mask(image_id)
        height, width = info["height"], info["width"]
        rles, class_ids = [], []
        for ann in info["annotations"]:
            rle = self.annToRLE(ann, height, width)
            if rle is None:
                continue
            class_id = self.map_source_class_id(f"coco.{ann['category_id']}")
            rles.append(rle)
            class_ids.append(-class_id if ann.get("iscrowd") else class_id)
        if not rles:
            return np.zeros((height, width, 0), bool), np.zeros((0,), np.int32)
        masks = mask_utils.decode(rles).astype(bool)
        keep = masks.any(axis=(0, 1))
        return masks[:, :, keep], np.asarray(class_ids, np.int32)[keep]

    def load_image(self, image_id: int) -> np.ndarray:
        """Reads a COCO image as RGB, checking it against the annotations file.

        Args:
            image_id: internal image id.

        Returns:
            image: [H, W, 3], uint8 for 8-bit files.

        Raises:
            OSError: the file is missing or cannot be decoded (the message names it).
            ValueError: its size differs from the width and height in the JSON,
                which would misplace every mask (often an EXIF-rotated photo).
        """
        info = self._image(image_id)
        if info["source"] != "coco":
            return super().load_image(image_id)
        from mrcnn.image_io import ImageReadError, read_image

        path = info["path"]
        try:
            image = read_image(path)
        except ImageReadError as err:
            hint = ("; pass skip_unreadable=True to load_coco to drop missing files"
                    if not os.path.exists(path) else "")
            raise ImageReadError(f"{err} (COCO image id {info['id']}, dataset image id "
                                 f"{image_id}){hint}") from err
        if image.shape[:2] != (info["height"], info["width"]):
            raise ValueError(f"image file {path} is {image.shape[1]}x{image.shape[0]} "
                             f"(width x height) but its annotations say "
                             f"{info['width']}x{info['height']}")
        return image

    def image_reference(self, image_id: int) -> str:
        """The cocodataset.org page of an official COCO image, else the image's path."""
        info = self._image(image_id)
        if info["source"] != "coco":
            return super().image_reference(image_id)
        if "cocodataset.org" in info.get("coco_url", ""):
            return f"http://cocodataset.org/#explore?id={info['id']}"
        return info["path"]


def build_coco_results(dataset: Dataset, image_ids: int | Sequence[int],
                       rois: np.ndarray | Sequence[np.ndarray] | None,
                       class_ids: np.ndarray | Sequence[np.ndarray],
                       scores: np.ndarray | Sequence[np.ndarray],
                       masks: np.ndarray | Sequence[np.ndarray] | None) -> list[dict]:
    """Detections in the COCO results format (JSON-serializable).

    Either one image (an int or a one-element list of ids, with that image's
    arrays, as the classic call passes them) or several (a list of ids and a
    list of per-image arrays of the same length).

    Args:
        dataset: the prepared dataset the ids refer to (classes of source "coco").
        image_ids: internal image id(s).
        rois: [N, (y1, x1, y2, x2)] pixel boxes with exclusive y2/x2, per image;
            None gives no results (classic behaviour).
        class_ids: [N] internal class ids, per image.
        scores: [N] confidences, per image.
        masks: [H, W, N] instance masks, per image; None leaves out "segmentation"
            (a bbox-only result set).

    Returns:
        One dict per detection: image_id (COCO id), category_id (COCO id), bbox
        [x, y, width, height] rounded to 0.1 px, score, and segmentation (a
        compressed RLE whose counts are a str).
    """
    if rois is None:
        return []
    if np.ndim(image_ids) == 0 or isinstance(rois, np.ndarray):
        image_ids = np.atleast_1d(image_ids)
        if len(image_ids) != 1:
            raise ValueError(f"got {len(image_ids)} image ids with the arrays of one image; "
                             "pass one id, or a list of per-image arrays for each id")
        rois, class_ids, scores, masks = [rois], [class_ids], [scores], [masks]
    elif not len(image_ids) == len(rois) == len(class_ids) == len(scores):
        raise ValueError(f"got {len(image_ids)} image ids but {len(rois)} rois, "
                         f"{len(class_ids)} class_ids and {len(scores)} scores arrays")
    if masks is None:
        masks = [None] * len(image_ids)
    results = []
    for image_id, boxes, ids, confidences, image_masks in zip(image_ids, rois, class_ids,
                                                              scores, masks):
        info = dataset.image_info[int(image_id)]
        rles = [None] * len(boxes)
        if image_masks is not None:
            _check_mask_shape(image_masks, info, len(boxes))
            rles = encode_masks(image_masks)
        for box, class_id, score, rle in zip(np.asarray(boxes, np.float64), ids,
                                             confidences, rles):
            results.append(coco_result(info["id"],
                                       dataset.get_source_class_id(int(class_id), "coco"),
                                       box, score, rle))
    return results


def evaluate_coco(model: Any, dataset: Dataset, coco: COCO, eval_type: str = "bbox",
                  limit: int = 0, image_ids: Sequence[int] | None = None,
                  results_path: str | os.PathLike | None = None,
                  batch_size: int | None = None, verbose: int = 1) -> dict:
    """Runs `model` over dataset images and scores the detections with COCOeval.

    The two steps of :mod:`mrcnn.evaluation` in one call: ``detect_dataset`` then
    ``score_detections``; use those to score one detection pass several ways.
    Only the dataset's classes are scored (``params.catIds``), so a model
    trained on a few COCO categories is not charged for the others. Note that
    pycocotools' "segm" evaluation rewrites the ground-truth segmentations in
    `coco` (shared with the dataset's annotations) as RLEs, in place; the masks
    they give stay the same.

    Args:
        model: anything with ``detect(images)`` returning one dict per image
            (rois, class_ids, scores, masks) and ``config.BATCH_SIZE``, e.g. an
            inference-mode MaskRCNN (DETECTION_MIN_CONFIDENCE 0 is the usual
            setting for COCO scoring).
        dataset: prepared CocoDataset (or any dataset of source "coco").
        coco: the ``COCO`` object of the ground truth (``load_coco(...,
            return_coco=True)``).
        eval_type: "bbox" or "segm".
        limit: evaluate only the first `limit` images; 0 means all.
        image_ids: internal image ids to evaluate; default all the dataset's.
        results_path: where to write the results JSON. Default: a new file
            ``mrcnn_coco_{eval_type}_*.json`` in the system temp folder (the
            current folder may be read-only or a source tree); its path is returned.
        batch_size: images per ``detect`` call; default ``model.config.BATCH_SIZE``.
        verbose: 1 prints a progress line on stderr and pycocotools' summary.

    Returns:
        ``{"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100",
        "ARs", "ARm", "ARl"}``: pycocotools' 12 summary numbers (-1 where no
        ground truth falls in an area range); ``"per_class_ap"``: {class name:
        AP@[.5:.95]}, nan for a class without ground truth; ``"results_path"``.
        With no detections at all, every AP and AR is 0 (-1 as above).

    Raises:
        ValueError: unknown `eval_type`, or images / classes that `coco` lacks.
    """
    if eval_type not in EVAL_TYPES:
        raise ValueError(f"eval_type must be 'bbox' or 'segm', got {eval_type!r}")
    image_ids = list(dataset.image_ids if image_ids is None else image_ids)
    if limit:
        image_ids = image_ids[:limit]
    truth = ground_truth(dataset, image_ids, coco)
    detections = detect_dataset(model, dataset, image_ids, batch_size=batch_size,
                                verbose=verbose)
    results = coco_results(detections, truth)
    results_path = write_results(results, results_path, eval_type)
    evaluator = run_cocoeval(results, truth, eval_type, verbose)
    stats = summarize(evaluator, truth, dataset.class_names)
    stats["results_path"] = results_path
    if verbose:
        print(f"results in {results_path}")
    return stats


def write_results(results: list[dict], path: str | os.PathLike | None = None,
                  eval_type: str = "bbox") -> str:
    """Writes COCO-format results as JSON to `path` (default: a new
    ``mrcnn_coco_{eval_type}_*.json`` in the system temp folder); returns the path."""
    if path is None:
        handle, path = tempfile.mkstemp(prefix=f"mrcnn_coco_{eval_type}_", suffix=".json")
        os.close(handle)
    path = os.fspath(path)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(results, f)
    return path


def _check_mask_shape(masks: np.ndarray, info: dict, count: int) -> None:
    expected = (info.get("height"), info.get("width"))
    if masks.ndim != 3 or masks.shape[2] != count or (
            None not in expected and masks.shape[:2] != expected):
        raise ValueError(f"masks of image {info['id']} have shape {masks.shape}; expected "
                         f"[height, width, detections] = [{expected[0]}, {expected[1]}, "
                         f"{count}] (full-image masks, as detect() returns them)")
