"""Finding what a run needs on disk: weight files by name, COCO-format datasets.

Nothing is downloaded: a missing file raises FileNotFoundError saying what to
download and where to put it.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:  # the model module imports TensorFlow
    from mrcnn.dataset import Dataset
    from mrcnn.model import MaskRCNN

# The folder that holds the package: a checkout's root (site-packages once installed).
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A checkout's weights/ folder: weight files are looked up there first.
WEIGHTS_DIR = os.path.join(REPO_ROOT, "weights")

COCO_WEIGHTS_FILE = "mask_rcnn_coco.h5"
COCO_WEIGHTS_URL = ("https://github.com/matterport/Mask_RCNN/releases/download/v2.0/"
                    + COCO_WEIGHTS_FILE)


def coco_weights_path() -> str:
    """Path of mask_rcnn_coco.h5 in the repository's or the current folder's weights/,
    or in the current folder; FileNotFoundError saying what to download otherwise."""
    candidates = list(dict.fromkeys(os.path.abspath(p) for p in (
        os.path.join(WEIGHTS_DIR, COCO_WEIGHTS_FILE),
        os.path.join("weights", COCO_WEIGHTS_FILE), COCO_WEIGHTS_FILE)))
    for path in candidates:
        if os.path.isfile(path):
            return path
    target = candidates[0] if os.path.isdir(os.path.dirname(candidates[0])) else candidates[1]
    raise FileNotFoundError(f"the COCO weights are not in {' or '.join(candidates)}: "
                            f"download {COCO_WEIGHTS_URL} and save it as {target}")


def weights_file(spec: str, model: MaskRCNN | None = None) -> str | None:
    """The weight file that ``--weights`` names, None for "none".

    Args:
        spec: a path, "coco", "imagenet", "last" or "none".
        model: the MaskRCNN; "imagenet" and "last" are looked up in its log
            folder and give None without it (a check before the model exists).

    Raises:
        FileNotFoundError: the file does not exist; the message says what to get.
    """
    if spec == "none":
        return None
    if spec == "coco":
        return coco_weights_path()
    if spec in ("imagenet", "last"):
        if model is None:
            return None
        return model.get_imagenet_weights() if spec == "imagenet" else model.find_last()
    if not os.path.isfile(spec):
        raise FileNotFoundError(
            f"no weight file at {spec}. For the COCO weights, download {COCO_WEIGHTS_URL} "
            f"into weights/ and pass --weights coco (or its path)")
    return spec


def coco_root_splits(year: str) -> tuple[list[str], str]:
    """The classic (training subsets, validation subset) of a COCO root for `year`:
    2014 trains on train + valminusminival and validates on minival."""
    if str(year) == "2014":
        return ["train", "valminusminival"], "minival"
    return ["train"], "val"


def load_coco_dataset(sources: Sequence[tuple],
                      class_ids: Sequence[int] | None = None) -> tuple:
    """A prepared CocoDataset of `sources`, and the COCO object of the last one.

    Args:
        sources: (location, subset, year, image_dir) tuples for CocoDataset.load_coco.
        class_ids: COCO category ids to load; None for all of the file.
    """
    from mrcnn.coco import CocoDataset

    dataset, coco = CocoDataset(), None
    for location, subset, year, image_dir in sources:
        coco = dataset.load_coco(location, subset, year, class_ids=class_ids,
                                 return_coco=True, image_dir=image_dir)
    dataset.prepare()
    return dataset, coco


def json_source(json_path: str, image_dir: str | None) -> tuple:
    """A :func:`load_coco_dataset` source for a COCO-format JSON file and its image folder
    (None: the JSON's folder)."""
    # Absolute, so that the image folder of a JSON in the current folder is "." and not "".
    return os.path.abspath(json_path), None, None, image_dir


def category_ids(dataset: Dataset) -> list:
    """The COCO category ids of a CocoDataset's classes, in class-id order."""
    return [info["id"] for info in dataset.class_info[1:]]
