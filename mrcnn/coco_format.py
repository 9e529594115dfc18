"""COCO-format annotation files: where they are, and whether they are valid.

The file side of :mod:`mrcnn.coco`: resolving the standard MS COCO layout (and
saying what to download when it is incomplete), checking a parsed annotations
file so that mistakes surface as clear errors at load time rather than as
misplaced masks in training, and turning segmentations into RLEs.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
from typing import Any, Sequence

from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

COCO_DOWNLOAD_URL = "http://images.cocodataset.org"
# The 2014 minival / valminusminival splits come from the Faster R-CNN authors, not from
# cocodataset.org; these are the links the classic project used. Their images are in val2014.
_SPLIT_2014_URLS = {
    "minival": "https://dl.dropboxusercontent.com/s/o43o90bna78omob/"
               "instances_minival2014.json.zip?dl=0",
    "valminusminival": "https://dl.dropboxusercontent.com/s/s3tw5zcg7395368/"
                       "instances_valminusminival2014.json.zip?dl=0",
}
_OFFICIAL = {("train", "2014"), ("val", "2014"), ("train", "2017"), ("val", "2017")}


def read_coco(json_path: str) -> COCO:
    """Reads, checks (:func:`check_coco`) and indexes a COCO instances file.

    Args:
        json_path: the annotations ``.json``.

    Returns:
        The pycocotools ``COCO`` object, with iscrowd, area and bbox filled in
        where the file left them out.
    """
    try:
        with open(json_path, encoding="utf-8") as f:
            data = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{json_path} is not a COCO annotations file: it is not valid "
                         f"UTF-8 JSON ({err}). Check that the file is complete and is the "
                         "instances_*.json of the dataset") from err
    check_coco(data, json_path)
    coco = COCO()
    coco.dataset = data
    # createIndex prints progress lines; a loader should not.
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def find_coco_files(location: str | os.PathLike, subset: str | None = None, year: int | str | None = None,
                    image_dir: str | os.PathLike | None = None) -> tuple[str, str]:
    """Paths of an annotations file and its image folder, checked to exist.

    Args:
        location: a COCO root (``annotations/instances_{subset}{year}.json`` and
            ``{subset}{year}/`` images; the 2014 "minival" and "valminusminival"
            splits use ``val2014/``) or the path of an annotations ``.json``.
        subset: "train", "val", ... with a root; None with a JSON path.
        year: e.g. 2017 with a root (None: no year in the names); None with a JSON path.
        image_dir: the image folder, overriding the default (``{root}/{subset}{year}``,
            or the JSON's own folder).

    Returns:
        (annotations JSON path, image folder).

    Raises:
        FileNotFoundError: naming each missing path and, for the official COCO
            sets, the cocodataset.org archive to unzip where.
        ValueError: `subset` missing with a root, or given with a JSON path.
    """
    location = os.fspath(location)
    problems = []
    if location.lower().endswith(".json") or os.path.isfile(location):
        if subset is not None or year is not None:
            raise ValueError(f"subset and year name the files of a COCO root folder; "
                             f"{location} is an annotations file: pass image_dir instead")
        json_path = location
        image_dir = (os.path.dirname(os.path.abspath(json_path)) if image_dir is None
                     else os.fspath(image_dir))
        if not os.path.isfile(json_path):
            problems.append(f"COCO annotations file not found: {json_path}")
        image_hint = ("the folder that the JSON's images[].file_name paths are relative "
                      "to; pass image_dir=...")
    else:
        if not os.path.isdir(location):
            raise FileNotFoundError(
                f"COCO dataset not found: {location} is neither a folder nor a .json file. "
                "Pass a COCO root (annotations/instances_{subset}{year}.json plus "
                "{subset}{year}/ images) or the path of an annotations .json")
        if subset is None:
            raise ValueError("subset (e.g. 'train', 'val') is required with a COCO root "
                             f"folder ({location})")
        year = "" if year is None else str(year)
        json_path = os.path.join(location, "annotations", f"instances_{subset}{year}.json")
        image_subset = "val" if subset in _SPLIT_2014_URLS else subset
        official = (image_subset, year) in _OFFICIAL and image_dir is None
        image_dir = (os.path.join(location, f"{image_subset}{year}") if image_dir is None
                     else os.fspath(image_dir))
        if not os.path.isfile(json_path):
            problems.append(_missing_json(location, json_path, subset, year))
        image_hint = (f"download {COCO_DOWNLOAD_URL}/zips/{image_subset}{year}.zip and unzip "
                      f"it in {location}" if official else
                      "the folder that the JSON's images[].file_name paths are relative to; "
                      "pass image_dir=...")
    if not os.path.isdir(image_dir):
        problems.append(f"COCO image folder not found: expected {image_dir} ({image_hint})")
    if problems:
        raise FileNotFoundError("\n".join(problems))
    return json_path, image_dir


def _missing_json(root: str, json_path: str, subset: str, year: str) -> str:
    message = f"COCO annotations not found: expected {json_path}. "
    if (subset, year) in _OFFICIAL:
        return message + (f"Download {COCO_DOWNLOAD_URL}/annotations/annotations_trainval"
                          f"{year}.zip and unzip it in {root} (it holds annotations/).")
    if subset in _SPLIT_2014_URLS and year == "2014":
        return message + (f"This split is not on cocodataset.org: download "
                          f"{_SPLIT_2014_URLS[subset]} and unzip it in "
                          f"{os.path.join(root, 'annotations')} (or use val2017, nearly "
                          "the same images as minival2014).")
    folder = os.path.join(root, "annotations")
    if os.path.isdir(folder):
        found = sorted(n for n in os.listdir(folder) if n.startswith("instances_"))
        if found:
            message += f"Found instead: {', '.join(found)}. "
    return message + ("Put the COCO-format annotations there, or pass the JSON path itself "
                      "with image_dir=...")


def check_coco(data: Any, source: str) -> None:
    """Checks a COCO instances dict in place; fills iscrowd, area and bbox where missing.

    COCOeval needs those three fields, which hand-made COCO files often leave out.

    Args:
        data: the parsed JSON (``images``, ``categories``, ``annotations``).
        source: the file name, to start every error message with.

    Raises:
        ValueError: a required key is missing, an id is duplicated, an
            annotation refers to an unknown image or category id, or a
            segmentation does not fit its image (polygon points more than 1 px
            outside, or an RLE size other than the image's [height, width]).
    """
    if not isinstance(data, dict) or "images" not in data or "categories" not in data:
        raise ValueError(f"{source} is not a COCO instances file: it needs 'images' and "
                         "'categories' lists (and 'annotations')")
    data.setdefault("annotations", [])
    _require(data["images"], ("id", "file_name", "width", "height"), "image", source)
    _require(data["categories"], ("id", "name"), "category", source)
    _require(data["annotations"], ("id", "image_id", "category_id", "segmentation"),
             "annotation", source)
    images = {image["id"]: image for image in data["images"]}
    category_ids = {category["id"] for category in data["categories"]}
    for kind, count, unique in (("image", len(data["images"]), len(images)),
                                ("category", len(data["categories"]), len(category_ids)),
                                ("annotation", len(data["annotations"]),
                                 len({a["id"] for a in data["annotations"]}))):
        if count != unique:
            raise ValueError(f"{source}: {count - unique} duplicate {kind} ids; COCO ids "
                             "must be unique")
    for ann in data["annotations"]:
        image = images.get(ann["image_id"])
        if image is None:
            raise ValueError(f"{source}: annotation {ann['id']} refers to image id "
                             f"{ann['image_id']!r}, which is not in 'images'")
        if ann["category_id"] not in category_ids:
            raise ValueError(f"{source}: annotation {ann['id']} (image {ann['image_id']}) "
                             f"refers to category id {ann['category_id']!r}, which is not "
                             f"in 'categories' (ids {sorted(category_ids)})")
        height, width = int(image["height"]), int(image["width"])
        problem = _segmentation_problem(ann["segmentation"], height, width)
        if problem:
            raise ValueError(f"{source}: annotation {ann['id']} of image {ann['image_id']} "
                             f"({image['file_name']}, {width}x{height}): {problem}")
        ann.setdefault("iscrowd", 0)
        if "area" not in ann or "bbox" not in ann:
            rle = segmentation_to_rle(ann["segmentation"], height, width)
            ann.setdefault("area", float(mask_utils.area(rle)) if rle else 0.0)
            ann.setdefault("bbox", mask_utils.toBbox(rle).tolist() if rle else [0.0] * 4)


def _require(entries: Any, keys: Sequence[str], kind: str, source: str) -> None:
    for index, entry in enumerate(entries):
        absent = [key for key in keys if key not in entry]
        if absent:
            raise ValueError(f"{source}: {kind} #{index} (id {entry.get('id')!r}) lacks "
                             f"{', '.join(map(repr, absent))}")


def segmentation_to_rle(segmentation: list | dict, height: int, width: int) -> dict | None:
    """A COCO segmentation as one compressed RLE.

    Args:
        segmentation: polygons ``[[x1, y1, x2, y2, ...], ...]`` (merged into one
            mask), an uncompressed RLE (counts a list) or a compressed one.
        height: image height H.
        width: image width W.

    Returns:
        ``{"size": [H, W], "counts": ...}``, or None when no polygon has 3 points.
    """
    if isinstance(segmentation, list):
        # frPyObjects reads a 4-number list as a box and rejects an empty list; neither
        # encloses any area.
        polygons = [p for p in segmentation if len(p) >= 6]
        if not polygons:
            return None
        return mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    if isinstance(segmentation["counts"], list):
        return mask_utils.frPyObjects(segmentation, height, width)
    return segmentation


def _segmentation_problem(segmentation: Any, height: int, width: int) -> str | None:
    """Why a segmentation does not fit an image of this size, or None if it does."""
    if isinstance(segmentation, list):
        for polygon in segmentation:
            if not isinstance(polygon, list) or len(polygon) % 2:
                return ("a polygon must be a flat list [x1, y1, x2, y2, ...] of an even "
                        "number of coordinates")
            if not polygon:
                continue
            xs, ys = polygon[0::2], polygon[1::2]
            # One pixel of slack: annotation tools put vertices on the outer pixel edge.
            if min(xs) < -1 or max(xs) > width + 1 or min(ys) < -1 or max(ys) > height + 1:
                return (f"polygon spans x {min(xs)}..{max(xs)}, y {min(ys)}..{max(ys)}, "
                        "outside the image")
        return None
    if isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
        if list(segmentation["size"]) != [height, width]:
            return (f"RLE size {list(segmentation['size'])} differs from the image's "
                    f"[height, width] = [{height}, {width}]")
        return None
    return "segmentation must be a list of polygons or an RLE dict with 'counts' and 'size'"
