"""The classic ``mrcnn.utils`` names, re-exported from the modules where they now live.

Code written against the classic API (``from mrcnn import utils``; ``utils.compute_ap(...)``,
``utils.Dataset``) keeps working. New code can import from ``mrcnn.boxes``,
``mrcnn.anchors``, ``mrcnn.images``, ``mrcnn.metrics`` and ``mrcnn.dataset`` directly.
"""
from __future__ import annotations

import shutil
import urllib.request

from mrcnn.anchors import compute_backbone_shapes, generate_anchors, generate_pyramid_anchors
from mrcnn.boxes import (apply_box_deltas, box_refinement, compute_iou, compute_overlaps,
                         denorm_boxes, extract_bboxes, non_max_suppression, norm_boxes,
                         trim_zeros)
from mrcnn.images import (box_mask, compose_image_meta, expand_mask, minimize_mask, mold_image,
                          parse_image_meta, resize, resize_image, resize_mask, to_rgb,
                          unmold_image, unmold_mask)
from mrcnn.metrics import (compute_ap, compute_ap_range, compute_matches,
                           compute_overlaps_masks, compute_recall)

# Weights of the COCO model published with the classic project (ResNet-101, 81 classes).
COCO_MODEL_URL = "https://github.com/matterport/Mask_RCNN/releases/download/v2.0/mask_rcnn_coco.h5"

__all__ = [
    "COCO_MODEL_URL", "Dataset", "download_trained_weights", "box_refinement_graph",
    "batch_slice",
    # boxes
    "compute_iou", "compute_overlaps", "non_max_suppression", "apply_box_deltas",
    "box_refinement", "extract_bboxes", "norm_boxes", "denorm_boxes", "trim_zeros",
    # anchors
    "generate_anchors", "generate_pyramid_anchors", "compute_backbone_shapes",
    # images and masks
    "resize", "resize_image", "resize_mask", "minimize_mask", "expand_mask", "box_mask",
    "unmold_mask", "mold_image", "unmold_image", "compose_image_meta", "parse_image_meta", "to_rgb",
    # metrics
    "compute_overlaps_masks", "compute_matches", "compute_ap", "compute_ap_range",
    "compute_recall",
]


def download_trained_weights(coco_model_path: str, verbose: int = 1) -> None:
    """Download the classic COCO weights (``COCO_MODEL_URL``, about 250 MB).

    Args:
        coco_model_path: file to write.
        verbose: print progress when positive.
    """
    if verbose > 0:
        print("Downloading pretrained model to " + coco_model_path + " ...")
    with urllib.request.urlopen(COCO_MODEL_URL) as response, open(coco_model_path, "wb") as out:
        shutil.copyfileobj(response, out)
    if verbose > 0:
        print("... done downloading pretrained model!")


def __getattr__(name: str):
    # Imported on first use so that this module does not depend on mrcnn.dataset at import
    # time (and the data helpers stay usable on their own).
    if name == "Dataset":
        from mrcnn.dataset import Dataset
        return Dataset
    # The classic TensorFlow helpers: imported on use, as they load TensorFlow.
    if name == "box_refinement_graph":
        from mrcnn.graph.box_ops import box_refinement
        return box_refinement
    if name == "batch_slice":
        from mrcnn.classic import batch_slice
        return batch_slice
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
