"""The module-level names of the classic ``mrcnn.model``, with their classic signatures.

Classic code (the MatterPort samples and notebooks) reaches these through
``import mrcnn.model as modellib``; ``mrcnn.model`` re-exports them from here. Each is a thin
wrapper over the module where the code lives now, adapting the argument order and the
defaults: new code should call those modules directly (named in each docstring).

Shape shorthand as in ``mrcnn.data``: ``B`` batch, ``A`` anchors, ``G`` =
``MAX_GT_INSTANCES``, ``T`` = ``TRAIN_ROIS_PER_IMAGE``, ``NC`` = ``NUM_CLASSES``, boxes
``(y1, x1, y2, x2)``.
"""
from __future__ import annotations

import copy
import logging
from typing import Callable, Iterator

import numpy as np
import tensorflow as tf

from mrcnn import data
from mrcnn.anchors import compute_backbone_shapes
from mrcnn.boxes import box_refinement, compute_overlaps
from mrcnn.config import Config
from mrcnn.graph import box_ops, layers as graph_layers, losses
from mrcnn.graph.backbone import _bottleneck, resnet_graph as _resnet_graph
from mrcnn.graph.detection import DetectionLayer as _DetectionLayer
from mrcnn.graph.heads import classifier_head, mask_head
from mrcnn.graph.proposals import ProposalLayer as _ProposalLayer
from mrcnn.graph.roi_align import PyramidROIAlign
from mrcnn.graph.rpn import build_rpn_model
from mrcnn.graph.targets import POSITIVE_IOU
from mrcnn.image_meta import parse_image_meta_graph
from mrcnn.graph.targets import DetectionTargetLayer as _DetectionTargetLayer
from mrcnn.images import (compose_image_meta, expand_mask, mold_image, parse_image_meta,
                          resize, unmold_image)

__all__ = [
    "log", "load_image_gt", "build_rpn_targets", "generate_random_rois",
    "build_detection_targets", "data_generator", "mold_image", "unmold_image",
    "compose_image_meta", "parse_image_meta", "parse_image_meta_graph",
    "compute_backbone_shapes", "norm_boxes_graph", "denorm_boxes_graph",
    "apply_box_deltas_graph", "clip_boxes_graph", "overlaps_graph", "log2_graph",
    "trim_zeros_graph", "batch_slice", "batch_pack_graph", "smooth_l1_loss",
    "identity_block", "conv_block", "refine_detections_graph", "detection_targets_graph",
    "BatchNorm", "ProposalLayer", "PyramidROIAlign", "DetectionTargetLayer", "DetectionLayer",
    "resnet_graph", "rpn_graph", "build_rpn_model", "fpn_classifier_graph",
    "build_fpn_mask_graph",
    "rpn_class_loss_graph", "rpn_bbox_loss_graph", "mrcnn_class_loss_graph",
    "mrcnn_bbox_loss_graph", "mrcnn_mask_loss_graph",
]

logger = logging.getLogger(__name__)

# Share of generate_random_rois' ROIs drawn around the ground-truth boxes (the rest lie
# anywhere in the image), as in the classic debugging pipeline.
NEAR_GT_FRACTION = 0.9


# ------------------------------------------------------------------ printing

def log(text: str, array=None) -> None:
    """Prints ``text``, and for an array its shape, min, max and dtype on the same line.

    Args:
        text: the label, e.g. the name of the array.
        array: optional array (or anything ``np.asarray`` takes).
    """
    if array is not None:
        array = np.asarray(array)
        text = f"{text:<25s}shape: {str(array.shape):<20s}  "
        if array.size:
            text += f"min: {array.min():10.5f}  max: {array.max():10.5f}"
        else:
            text += f"min: {'':10s}  max: {'':10s}"
        text += f"  {array.dtype}"
    print(text)


# ------------------------------------------------------------------ data pipeline

def _classic_augmentation(augment: bool, augmentation):
    """The classic ``augment=True`` (deprecated): a random left-right flip."""
    if augment and augmentation is None:
        logger.warning("'augment' is deprecated; use augmentation=mrcnn.data.Augmenter() "
                       "(a random left-right flip) or an imgaug/albumentations augmenter.")
        return data.Augmenter(fliplr=0.5)
    return augmentation


def load_image_gt(dataset, config, image_id: int, augment: bool = False, augmentation=None,
                  use_mini_mask: bool = False):
    """The classic ``load_image_gt``: see ``mrcnn.data.load_image_gt``.

    Unlike the new function, whose default follows ``config.USE_MINI_MASK``, the classic
    default gives full-size masks.

    Args:
        dataset: a prepared Dataset.
        config: a Config.
        image_id: internal image id.
        augment: deprecated; True flips left-right at random.
        augmentation: any augmenter of ``mrcnn.augmentation`` (imgaug, albumentations,
            ``mrcnn.data.Augmenter``, a callable).
        use_mini_mask: True stores the masks at ``MINI_MASK_SHAPE``.

    Returns:
        image [h, w, 3] uint8, image_meta [META], class_ids int32 [N],
        bbox int32 [N, 4], mask bool [h, w, N] (or [mh, mw, N]).
    """
    return data.load_image_gt(dataset, config, image_id,
                              augmentation=_classic_augmentation(augment, augmentation),
                              use_mini_mask=use_mini_mask)


def build_rpn_targets(image_shape, anchors: np.ndarray, gt_class_ids: np.ndarray,
                      gt_boxes: np.ndarray, config):
    """The classic argument order of ``mrcnn.data.build_rpn_targets``.

    Args:
        image_shape: [h, w, C] of the molded image (unused, as in the classic code).
        anchors: [A, 4] pixel anchors.
        gt_class_ids: [N] class ids, negative for crowds.
        gt_boxes: [N, 4] pixel boxes.
        config: a Config.

    Returns:
        rpn_match int32 [A] (1, -1, 0) and rpn_bbox float32 [R, 4].
    """
    return data.build_rpn_targets(anchors, gt_class_ids, gt_boxes, config)


def _random_boxes(count: int, y_range: tuple[int, int], x_range: tuple[int, int]):
    """``count`` int32 boxes with corners drawn uniformly in the ranges, at least 1 px."""
    boxes = np.zeros((0, 4), dtype=np.int32)
    while len(boxes) < count:
        # Twice as many candidates as missing: a few are degenerate and dropped.
        draws = 2 * (count - len(boxes))
        ys = np.sort(np.random.randint(y_range[0], y_range[1], (draws, 2)), axis=1)
        xs = np.sort(np.random.randint(x_range[0], x_range[1], (draws, 2)), axis=1)
        valid = (ys[:, 1] - ys[:, 0] >= 1) & (xs[:, 1] - xs[:, 0] >= 1)
        candidates = np.stack([ys[:, 0], xs[:, 0], ys[:, 1], xs[:, 1]], axis=1)[valid]
        boxes = np.concatenate([boxes, candidates.astype(np.int32)])
    return boxes[:count]


def generate_random_rois(image_shape, count: int, gt_class_ids: np.ndarray,
                         gt_boxes: np.ndarray) -> np.ndarray:
    """Random ROIs, most of them near the ground truth, for debugging the heads.

    ``int(0.9 * count / N)`` ROIs per ground-truth box have corners within one box size
    of it; the rest lie anywhere in the image. Uses numpy's global random state.

    Args:
        image_shape: [h, w, ...] of the molded image.
        count: ROIs to generate.
        gt_class_ids: [N] class ids (unused; the classic signature has them).
        gt_boxes: [N, 4] pixel boxes.

    Returns:
        int32 [count, (y1, x1, y2, x2)] pixel ROIs, at least 1 px in each side.
    """
    height, width = int(image_shape[0]), int(image_shape[1])
    gt_boxes = np.asarray(gt_boxes).reshape(-1, 4)
    per_box = int(NEAR_GT_FRACTION * count / len(gt_boxes)) if len(gt_boxes) else 0
    rois = []
    for y1, x1, y2, x2 in gt_boxes:
        box_h, box_w = y2 - y1, x2 - x1
        y_range = (max(y1 - box_h, 0), min(y2 + box_h, height) + 1)
        x_range = (max(x1 - box_w, 0), min(x2 + box_w, width) + 1)
        rois.append(_random_boxes(per_box, y_range, x_range))
    rois.append(_random_boxes(count - per_box * len(gt_boxes), (0, height + 1),
                              (0, width + 1)))
    return np.concatenate(rois)


def build_detection_targets(rpn_rois: np.ndarray, gt_class_ids: np.ndarray,
                            gt_boxes: np.ndarray, gt_masks: np.ndarray, config):
    """NumPy twin of the DetectionTargetLayer, for inspecting the heads' targets.

    A ROI is positive at IoU >= 0.5 with a ground-truth instance (class id > 0), negative
    below. Up to ``int(T * ROI_POSITIVE_RATIO)`` random positives are kept, negatives fill
    the rest; when there are too few ROIs, random kept negatives (or positives, if no
    negative exists) are repeated up to T rows. Uses numpy's global random state.

    Args:
        rpn_rois: [N, 4] int pixel ROIs (e.g. from generate_random_rois).
        gt_class_ids: [G] class ids.
        gt_boxes: [G, 4] pixel boxes.
        gt_masks: [h, w, G] bool masks: full-size, or mini masks with USE_MINI_MASK.
        config: a Config; uses TRAIN_ROIS_PER_IMAGE, ROI_POSITIVE_RATIO, BBOX_STD_DEV,
            MASK_SHAPE, NUM_CLASSES, USE_MINI_MASK and IMAGE_SHAPE.

    Returns:
        rois int32 [T, 4], class_ids int32 [T] (0 for negatives),
        bboxes float32 [T, NC, (dy, dx, log(dh), log(dw))] (set at the class of each
        positive, divided by BBOX_STD_DEV), masks float32 [T, mask_h, mask_w, NC] in {0, 1}
        (set at the class of each positive).

    Raises:
        ValueError: no ROI at all.
    """
    rois_per_image = config.TRAIN_ROIS_PER_IMAGE
    rpn_rois = np.asarray(rpn_rois).reshape(-1, 4)
    if not len(rpn_rois):
        raise ValueError("build_detection_targets got no ROIs; pass [N, 4] pixel boxes, "
                         "e.g. from generate_random_rois.")
    instances = np.nonzero(np.asarray(gt_class_ids) > 0)[0]
    gt_class_ids, gt_boxes = np.asarray(gt_class_ids)[instances], np.asarray(gt_boxes)[instances]
    gt_masks = gt_masks[:, :, instances]
    iou = compute_overlaps(rpn_rois, gt_boxes)
    iou_max = iou.max(axis=1, initial=0.0)
    positives = np.nonzero(iou_max >= POSITIVE_IOU)[0]
    negatives = np.nonzero(iou_max < POSITIVE_IOU)[0]

    max_positives = int(rois_per_image * config.ROI_POSITIVE_RATIO)
    if len(positives) > max_positives:
        positives = np.random.choice(positives, max_positives, replace=False)
    if len(negatives) > rois_per_image - len(positives):
        negatives = np.random.choice(negatives, rois_per_image - len(positives),
                                     replace=False)
    missing = rois_per_image - len(positives) - len(negatives)
    if missing > 0:
        # Too few ROIs: repeat random kept negatives, or positives when there is none.
        if len(negatives):
            negatives = np.concatenate([negatives, np.random.choice(negatives, missing)])
        else:
            positives = np.concatenate([positives, np.random.choice(positives, missing)])
    keep = np.concatenate([positives, negatives]).astype(int)

    rois = rpn_rois[keep].astype(np.int32)
    class_ids = np.zeros(rois_per_image, dtype=np.int32)
    bboxes = np.zeros((rois_per_image, config.NUM_CLASSES, 4), dtype=np.float32)
    masks = np.zeros((rois_per_image,) + tuple(config.MASK_SHAPE) + (config.NUM_CLASSES,),
                     dtype=np.float32)
    if len(positives):
        assigned = iou[positives].argmax(axis=1)
        rows = np.arange(len(positives))
        class_ids[rows] = gt_class_ids[assigned]
        bboxes[rows, class_ids[rows]] = (box_refinement(rois[rows].astype(np.float32),
                                                        gt_boxes[assigned].astype(np.float32))
                                         / config.BBOX_STD_DEV)
        for row, gt in zip(rows, assigned):
            instance_mask = gt_masks[:, :, gt:gt + 1]
            if config.USE_MINI_MASK:
                instance_mask = expand_mask(gt_boxes[gt:gt + 1], instance_mask,
                                            config.IMAGE_SHAPE)
            y1, x1, y2, x2 = rois[row]
            crop = instance_mask[y1:y2, x1:x2, 0]
            masks[row, :, :, class_ids[row]] = np.round(resize(crop, config.MASK_SHAPE))
    return rois, class_ids, bboxes, masks


def data_generator(dataset, config, shuffle: bool = True, augment: bool = False,
                   augmentation=None, random_rois: int = 0, batch_size: int = 1,
                   detection_targets: bool = False, no_augmentation_sources=None
                   ) -> Iterator[tuple[list, list]]:
    """The classic infinite generator of training batches (``mrcnn.data.DataGenerator``
    is the Keras 3 one that ``train()`` uses).

    Args:
        dataset: a prepared Dataset.
        config: a Config.
        shuffle: reshuffle every epoch.
        augment: deprecated; True flips left-right at random.
        augmentation: any augmenter of ``mrcnn.augmentation``.
        random_rois: > 0 adds that many ``generate_random_rois`` per image.
        batch_size: images per batch.
        detection_targets: with random_rois, adds ``build_detection_targets`` of those ROIs.
        no_augmentation_sources: dataset sources never augmented.

    Yields:
        ``(inputs, outputs)``: inputs the list ``[images float32 [B, h, w, 3], image_meta
        [B, META], rpn_match int32 [B, A, 1], rpn_bbox float32 [B, R, 4], gt_class_ids int32
        [B, G], gt_boxes int32 [B, G, 4], gt_masks bool [B, mh, mw, G]]``, then with
        random_rois ``rpn_rois int32 [B, random_rois, 4]`` and with detection_targets
        ``rois int32 [B, T, 4]``; outputs ``[]``, or with detection_targets
        ``[class_ids int32 [B, T, 1], bboxes float32 [B, T, NC, 4],
        masks float32 [B, T, mask_h, mask_w, NC]]``. Images without a positive instance
        are skipped; images that fail to load are logged and skipped.
    """
    if detection_targets and not random_rois:
        logger.warning("data_generator: detection_targets needs random_rois > 0 (the "
                       "ROIs the targets are built for); yielding no detection targets.")
    batch_config = copy.copy(config)
    batch_config.BATCH_SIZE = batch_size
    batches = data.DataGenerator(dataset, batch_config, shuffle=shuffle,
                                 augmentation=_classic_augmentation(augment, augmentation),
                                 no_augmentation_sources=no_augmentation_sources)
    while True:
        for index in range(len(batches)):
            (example,) = batches[index]
            inputs = list(example)
            inputs[5] = inputs[5].astype(np.int32)
            outputs = []
            if random_rois:
                inputs, outputs = _with_random_rois(inputs, random_rois, detection_targets,
                                                    config)
            yield inputs, outputs
        batches.on_epoch_end()


def _with_random_rois(inputs: list, count: int, detection_targets: bool, config):
    """Adds the random ROIs (and their targets) of every image of a batch."""
    _, _, _, _, batch_class_ids, batch_boxes, batch_masks = inputs
    rpn_rois, targets = [], []
    for class_ids, boxes, masks in zip(batch_class_ids, batch_boxes, batch_masks):
        # The ground truth is packed at the front; the rest is zero padding.
        present = np.any(boxes != 0, axis=1)
        class_ids, boxes, masks = class_ids[present], boxes[present], masks[:, :, present]
        rois = generate_random_rois(config.IMAGE_SHAPE, count, class_ids, boxes)
        rpn_rois.append(rois)
        if detection_targets:
            targets.append(build_detection_targets(rois, class_ids, boxes, masks, config))
    inputs = inputs + [np.stack(rpn_rois)]
    if not detection_targets:
        return inputs, []
    rois, class_ids, bboxes, masks = (np.stack(column) for column in zip(*targets))
    return inputs + [rois], [class_ids[:, :, np.newaxis], bboxes, masks]


# ------------------------------------------------------------------ graph helpers

def norm_boxes_graph(boxes, shape):
    """``mrcnn.graph.box_ops.norm_boxes``: pixel boxes [..., 4] to normalized ones."""
    return box_ops.norm_boxes(boxes, shape)


def denorm_boxes_graph(boxes, shape):
    """``mrcnn.graph.box_ops.denorm_boxes``: normalized boxes [..., 4] to int32 pixels."""
    return box_ops.denorm_boxes(boxes, shape)


def apply_box_deltas_graph(boxes, deltas):
    """``mrcnn.graph.box_ops.apply_box_deltas``: boxes [N, 4] moved by deltas [N, 4]."""
    return box_ops.apply_box_deltas(boxes, deltas)


def clip_boxes_graph(boxes, window):
    """``mrcnn.graph.box_ops.clip_boxes``: boxes [N, 4] clipped to window [4]."""
    return box_ops.clip_boxes(boxes, window)


def overlaps_graph(boxes1, boxes2):
    """``mrcnn.graph.box_ops.overlaps``: IoU [N1, N2] of two box sets."""
    return box_ops.overlaps(boxes1, boxes2)


def log2_graph(x):
    """Base-2 logarithm of a tensor."""
    return tf.math.log(x) / tf.math.log(2.0)


def trim_zeros_graph(boxes, name: str = "trim_zeros"):
    """Drops the all-zero rows of boxes [N, 4].

    Returns:
        (boxes [n, 4], non_zeros [N] bool).
    """
    non_zeros = tf.cast(tf.reduce_sum(tf.abs(boxes), axis=1), tf.bool)
    return tf.boolean_mask(boxes, non_zeros, name=name), non_zeros


def batch_slice(inputs, graph_fn: Callable, batch_size: int, names=None):
    """Runs ``graph_fn`` on each image's slice of ``inputs`` and stacks the results.

    Args:
        inputs: a tensor or list of tensors, each [batch_size, ...].
        graph_fn: function of one slice of each input; returns a tensor or a list.
        batch_size: the (static) batch size.
        names: optional names of the stacked outputs.

    Returns:
        The stacked output(s) [batch_size, ...]: one tensor, or a list.
    """
    if not isinstance(inputs, (list, tuple)):
        inputs = [inputs]
    outputs = []
    for i in range(batch_size):
        result = graph_fn(*[x[i] for x in inputs])
        outputs.append(result if isinstance(result, (list, tuple)) else [result])
    names = names or [None] * len(outputs[0])
    stacked = [tf.stack(list(column), axis=0, name=name)
               for column, name in zip(zip(*outputs), names)]
    return stacked[0] if len(stacked) == 1 else stacked


def batch_pack_graph(x, counts, num_rows: int):
    """The first ``counts[i]`` entries of each row ``x[i]``, concatenated.

    Args:
        x: [num_rows, N, ...].
        counts: [num_rows] int.
        num_rows: the static number of rows.

    Returns:
        [sum(counts), ...].
    """
    return tf.concat([x[i, :counts[i]] for i in range(num_rows)], axis=0)


def smooth_l1_loss(y_true, y_pred):
    """Element-wise smooth-L1 (Huber with threshold 1) of ``y_true - y_pred``, any shape."""
    return losses.smooth_l1(y_true - y_pred)


def detection_targets_graph(proposals, gt_class_ids, gt_boxes, gt_masks, config: Config):
    """The training targets of one image, as ``DetectionTargetLayer(config)`` computes
    them per image.

    Args:
        proposals: [N, (y1, x1, y2, x2)] normalized, zero-padded.
        gt_class_ids: [MAX_GT_INSTANCES] int, zero-padded, negative for crowds.
        gt_boxes: [MAX_GT_INSTANCES, (y1, x1, y2, x2)] normalized, zero-padded.
        gt_masks: [h, w, MAX_GT_INSTANCES] bool (mini masks when USE_MINI_MASK).

    Returns:
        rois [TRAIN_ROIS_PER_IMAGE, 4], class_ids [TRAIN_ROIS_PER_IMAGE] int32, deltas
        [TRAIN_ROIS_PER_IMAGE, 4] and masks [TRAIN_ROIS_PER_IMAGE, mask_h, mask_w],
        positives first, zero-padded.
    """
    return DetectionTargetLayer(config)._image_targets(
        tf.cast(proposals, tf.float32), tf.cast(gt_class_ids, tf.int32),
        tf.cast(gt_boxes, tf.float32), gt_masks)


def refine_detections_graph(rois, probs, deltas, window, config: Config):
    """The detections of one image, as ``DetectionLayer(config)`` computes them per image.

    Args:
        rois: [N, (y1, x1, y2, x2)] normalized.
        probs: [N, NUM_CLASSES] class probabilities.
        deltas: [N, NUM_CLASSES, 4] class-specific box deltas.
        window: (y1, x1, y2, x2) normalized image window.

    Returns:
        [DETECTION_MAX_INSTANCES, (y1, x1, y2, x2, class_id, score)], zero-padded.
    """
    return DetectionLayer(config)._refine(
        tf.cast(rois, tf.float32), tf.cast(probs, tf.float32), tf.cast(deltas, tf.float32),
        tf.cast(window, tf.float32))


# ------------------------------------------------------------------ layers

class BatchNorm(graph_layers.BatchNorm):
    """The classic BatchNorm: follows the ``training`` argument of each call
    (``BatchNorm(name=...)(x, training=train_bn)``), unlike
    ``mrcnn.graph.layers.BatchNorm``, which fixes the mode at construction."""

    def __init__(self, **kwargs):
        kwargs.setdefault("train_bn", None)
        super().__init__(**kwargs)


def _default_config(config: Config | None):
    # Without a config (e.g. from get_config, which has every setting), the class defaults.
    return config if config is not None else Config


class ProposalLayer(_ProposalLayer):
    """The classic constructor ``ProposalLayer(proposal_count, nms_threshold, config)``;
    PRE_NMS_LIMIT and RPN_BBOX_STD_DEV come from ``config``."""

    def __init__(self, proposal_count: int, nms_threshold: float, config: Config | None = None,
                 **kwargs):
        config = _default_config(config)
        kwargs.setdefault("pre_nms_limit", config.PRE_NMS_LIMIT)
        kwargs.setdefault("rpn_bbox_std_dev", config.RPN_BBOX_STD_DEV)
        super().__init__(proposal_count, nms_threshold, **kwargs)


class DetectionTargetLayer(_DetectionTargetLayer):
    """The classic constructor ``DetectionTargetLayer(config)``."""

    def __init__(self, config: Config | None = None, **kwargs):
        config = _default_config(config)
        kwargs.setdefault("train_rois_per_image", config.TRAIN_ROIS_PER_IMAGE)
        kwargs.setdefault("roi_positive_ratio", config.ROI_POSITIVE_RATIO)
        kwargs.setdefault("bbox_std_dev", config.BBOX_STD_DEV)
        kwargs.setdefault("mask_shape", config.MASK_SHAPE)
        kwargs.setdefault("use_mini_mask", config.USE_MINI_MASK)
        super().__init__(**kwargs)


class DetectionLayer(_DetectionLayer):
    """The classic constructor ``DetectionLayer(config)``."""

    def __init__(self, config: Config | None = None, **kwargs):
        config = _default_config(config)
        kwargs.setdefault("max_instances", config.DETECTION_MAX_INSTANCES)
        kwargs.setdefault("min_confidence", config.DETECTION_MIN_CONFIDENCE)
        kwargs.setdefault("nms_threshold", config.DETECTION_NMS_THRESHOLD)
        kwargs.setdefault("bbox_std_dev", config.BBOX_STD_DEV)
        super().__init__(**kwargs)


# ------------------------------------------------------------------ graph builders

def resnet_graph(input_image, architecture: str, stage5: bool = False, train_bn: bool = True):
    """``mrcnn.graph.backbone.resnet_graph`` with the classic defaults.

    Returns:
        [C1, C2, C3, C4, C5]; C5 is None without stage5.
    """
    return _resnet_graph(input_image, architecture, stage5=stage5, train_bn=train_bn)


def identity_block(input_tensor, kernel_size: int, filters, stage: int, block: str,
                   use_bias: bool = True, train_bn: bool = True):
    """The classic ResNet block whose shortcut is the input (1x1, kxk, 1x1 convolutions).

    Args:
        input_tensor: [B, H, W, filters[2]] features.
        kernel_size: of the middle convolution.
        filters: (f1, f2, f3) channels of the three convolutions.
        stage, block: in the layer names, e.g. ``res2b_branch2a``.
        use_bias, train_bn: convolution biases; BatchNorm mode.

    Returns:
        [B, H, W, filters[2]] features.
    """
    return _bottleneck(input_tensor, tuple(filters), stage, block, 1, False, train_bn,
                       kernel_size, use_bias)


def conv_block(input_tensor, kernel_size: int, filters, stage: int, block: str,
               strides=(2, 2), use_bias: bool = True, train_bn: bool = True):
    """The classic ResNet block with a projection shortcut (a strided 1x1 convolution).

    Args:
        input_tensor: [B, H, W, C] features.
        kernel_size, filters, stage, block, use_bias, train_bn: as :func:`identity_block`.
        strides: of the first convolution and of the shortcut (an int or a pair).

    Returns:
        [B, H / strides, W / strides, filters[2]] features.
    """
    return _bottleneck(input_tensor, tuple(filters), stage, block, strides, True, train_bn,
                       kernel_size, use_bias)


def rpn_graph(feature_map, anchors_per_location: int, anchor_stride: int):
    """The RPN head on one feature map [B, H, W, C].

    Returns:
        [rpn_class_logits [B, A_l, 2], rpn_probs [B, A_l, 2], rpn_bbox [B, A_l, 4]].
    """
    model = build_rpn_model(anchor_stride, anchors_per_location, feature_map.shape[-1])
    return model(feature_map)


def fpn_classifier_graph(rois, feature_maps, image_meta, pool_size: int, num_classes: int,
                         train_bn: bool = True, fc_layers_size: int = 1024):
    """``mrcnn.graph.heads.classifier_head`` with the classic argument order.

    Returns:
        mrcnn_class_logits [B, N, NC], mrcnn_probs [B, N, NC], mrcnn_bbox [B, N, NC, 4].
    """
    return classifier_head(rois, image_meta, feature_maps, pool_size, num_classes, train_bn,
                           fc_layers_size)


def build_fpn_mask_graph(rois, feature_maps, image_meta, pool_size: int, num_classes: int,
                         train_bn: bool = True):
    """``mrcnn.graph.heads.mask_head`` with the classic argument order.

    Returns:
        [B, N, 2 * pool_size, 2 * pool_size, NC] mask probabilities.
    """
    return mask_head(rois, image_meta, feature_maps, pool_size, num_classes, train_bn)


# ------------------------------------------------------------------ losses

def rpn_class_loss_graph(rpn_match, rpn_class_logits):
    """``mrcnn.graph.losses.rpn_class_loss``: rpn_match [B, A, 1], logits [B, A, 2]."""
    return losses.rpn_class_loss(rpn_match, rpn_class_logits)


def rpn_bbox_loss_graph(config, target_bbox, rpn_match, rpn_bbox):
    """``mrcnn.graph.losses.rpn_bbox_loss`` (config is unused: the targets are packed per
    image without it)."""
    return losses.rpn_bbox_loss(target_bbox, rpn_match, rpn_bbox)


def mrcnn_class_loss_graph(target_class_ids, pred_class_logits, active_class_ids):
    """``mrcnn.graph.losses.mrcnn_class_loss``; active_class_ids [B, NC]."""
    return losses.mrcnn_class_loss(target_class_ids, pred_class_logits, active_class_ids)


def mrcnn_bbox_loss_graph(target_bbox, target_class_ids, pred_bbox):
    """``mrcnn.graph.losses.mrcnn_bbox_loss``."""
    return losses.mrcnn_bbox_loss(target_bbox, target_class_ids, pred_bbox)


def mrcnn_mask_loss_graph(target_masks, target_class_ids, pred_masks):
    """``mrcnn.graph.losses.mrcnn_mask_loss``."""
    return losses.mrcnn_mask_loss(target_masks, target_class_ids, pred_masks)
