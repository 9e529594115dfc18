"""Training input pipeline: ground truth, RPN anchor targets, augmentation and batches.

NumPy only: nothing here builds a TensorFlow graph (``keras`` is imported for the
:class:`keras.utils.PyDataset` base class alone).

Shape shorthand: ``H, W`` image size as loaded, ``h, w`` after resizing; ``N`` instances
of an image; ``A`` anchors; ``B`` = ``BATCH_SIZE``; ``G`` = ``MAX_GT_INSTANCES``;
``R`` = ``RPN_TRAIN_ANCHORS_PER_IMAGE``; ``META`` = ``IMAGE_META_SIZE``; ``mh, mw`` =
``MINI_MASK_SHAPE`` (or ``h, w`` without mini masks). Boxes are ``(y1, x1, y2, x2)`` in
pixels, ``y2``/``x2`` exclusive.

Randomness: every random choice (augmentation, anchor and instance subsampling, shuffling)
comes from a ``np.random.Generator`` that :class:`DataGenerator` derives from
``(seed, epoch, batch index)``, so a batch does not depend on which worker builds it or when.
Two things stay outside that control: ``IMAGE_RESIZE_MODE = "crop"``, whose crop position
comes from Python's global ``random`` (``mrcnn.images.resize_image``), and augmentation
callables that draw from their own random state.
"""
from __future__ import annotations

import logging
import math
from typing import Callable, NamedTuple, Sequence

import keras
import numpy as np

from mrcnn.anchors import config_anchors
from mrcnn.augmentation import apply_augmentation
from mrcnn.boxes import CROWD_IOU, box_refinement, compute_overlaps, extract_bboxes
from mrcnn.image_io import ImageReadError, to_model_image
from mrcnn.images import (compose_image_meta, minimize_mask, mold_image, resize_image,
                          resize_mask)

__all__ = ["Augmenter", "AugmentationError", "TrainingExample", "load_image_gt",
           "build_rpn_targets", "load_training_example", "check_instance_ids", "sequence_runs",
           "DataGenerator"]

logger = logging.getLogger(__name__)

# IoU at or above which an anchor is positive, and below which it is negative (classic).
RPN_POSITIVE_IOU = 0.7
RPN_NEGATIVE_IOU = 0.3
# Consecutive unreadable image files before the generator gives up: one broken file
# should not end a long training run, but a broken dataset must not loop silently.
MAX_CONSECUTIVE_ERRORS = 5

AugmentFn = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


class AugmentationError(ValueError):
    """An augmentation failed, or changed the shape or dtype of the image or the masks."""


class Augmenter:
    """Random flips, 90° rotations and brightness changes, safe for instance masks.

    The geometric operations move the image and the masks identically; brightness changes
    the image only. Random draws are made in the same order on every call, so a seed fixes
    the whole sequence.

    imgaug augmenters, albumentations transforms and any callable
    ``(image, masks) -> (image, masks)`` work as ``augmentation`` too (see
    ``mrcnn.augmentation``). They must keep the shapes (no resizing or cropping): resizing
    belongs to ``IMAGE_RESIZE_MODE``.
    """

    def __init__(self, fliplr: float = 0.5, flipud: float = 0.0, rot90: bool = False,
                 brightness: float = 0.0, seed: int | None = None):
        """Makes an augmenter.

        Args:
            fliplr: probability of a left-right flip.
            flipud: probability of an up-down flip.
            rot90: rotate by a random multiple of 90 degrees. Only square images are
                rotated; a rotation would change the shape of the others.
            brightness: b in [0, 1]: the image is multiplied by a factor drawn uniformly
                from [1 - b, 1 + b] and clipped to its dtype's range.
            seed: seed of the generator used when no ``rng`` is passed to a call.

        Raises:
            ValueError: a probability or ``brightness`` outside [0, 1].
        """
        for name, value in (("fliplr", fliplr), ("flipud", flipud), ("brightness", brightness)):
            if not 0 <= value <= 1:
                raise ValueError(f"Augmenter({name}={value!r}): use a value in [0, 1]")
        self.fliplr = fliplr
        self.flipud = flipud
        self.rot90 = rot90
        self.brightness = brightness
        self._rng = np.random.default_rng(seed)

    def __repr__(self) -> str:
        return (f"Augmenter(fliplr={self.fliplr}, flipud={self.flipud}, rot90={self.rot90}, "
                f"brightness={self.brightness})")

    def __call__(self, image: np.ndarray, masks: np.ndarray,
                 rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Augments one image and its instance masks.

        Args:
            image: [h, w, C] image (uint8 in training).
            masks: [h, w, N] bool instance masks.
            rng: random generator; None uses the augmenter's own (seeded) one.

        Returns:
            image: [h, w, C] augmented image, same dtype.
            masks: [h, w, N] the masks moved like the image.
        """
        rng = self._rng if rng is None else rng
        flip_lr, flip_ud = rng.random(2) < (self.fliplr, self.flipud)
        quarter_turns = int(rng.integers(4))
        factor = rng.uniform(1 - self.brightness, 1 + self.brightness)
        if flip_lr:
            image, masks = image[:, ::-1], masks[:, ::-1]
        if flip_ud:
            image, masks = image[::-1], masks[::-1]
        if self.rot90 and image.shape[0] == image.shape[1]:
            image = np.rot90(image, quarter_turns, axes=(0, 1))
            masks = np.rot90(masks, quarter_turns, axes=(0, 1))
        if self.brightness:
            scaled = image.astype(np.float32) * factor
            if np.issubdtype(image.dtype, np.integer):
                limits = np.iinfo(image.dtype)
                scaled = np.clip(np.rint(scaled), limits.min, limits.max)
            image = scaled.astype(image.dtype)
        return np.ascontiguousarray(image), np.ascontiguousarray(masks)


def _augment(augmentation: AugmentFn, image: np.ndarray, masks: np.ndarray,
             rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray]:
    """Runs an augmentation and checks that it kept the shapes and the image dtype.

    Any kind of augmenter of ``mrcnn.augmentation`` works. What it raises is re-raised as
    an AugmentationError (its own traceback chained), which the data generators never
    take for a broken image.
    """
    try:
        new_image, new_masks = apply_augmentation(augmentation, image, masks, rng)
    except Exception as error:
        raise AugmentationError(f"augmentation {augmentation!r} failed: "
                                f"{type(error).__name__}: {error}") from error
    new_image, new_masks = np.asarray(new_image), np.asarray(new_masks)
    if new_image.shape != image.shape or new_masks.shape != masks.shape:
        raise AugmentationError(
            f"augmentation {augmentation!r} changed the shapes: image {image.shape} -> "
            f"{new_image.shape}, masks {masks.shape} -> {new_masks.shape}. Augmentations "
            f"must keep shapes; resize or crop through IMAGE_RESIZE_MODE instead.")
    if new_image.dtype != image.dtype:
        raise AugmentationError(f"augmentation {augmentation!r} changed the image dtype "
                                f"from {image.dtype} to {new_image.dtype}")
    return new_image, new_masks.astype(bool)


def load_image_gt(dataset, config, image_id: int, augmentation: AugmentFn | None = None,
                  use_mini_mask: bool | None = None, rng: np.random.Generator | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Loads an image and its ground truth, resized (and augmented) for training.

    Args:
        dataset: a prepared ``Dataset``.
        config: a ``Config``; uses the ``IMAGE_*`` resize settings, ``NUM_CLASSES``,
            ``USE_MINI_MASK`` and ``MINI_MASK_SHAPE``.
        image_id: [] internal image id.
        augmentation: None, an :class:`Augmenter`, or a callable
            ``(image [h, w, 3], masks bool [h, w, N]) -> (image, masks)`` that keeps shapes.
            It runs after resizing.
        use_mini_mask: store the masks cropped to their boxes at ``MINI_MASK_SHAPE``;
            None follows ``config.USE_MINI_MASK``.
        rng: random generator for an :class:`Augmenter`; None uses the augmenter's own.

    Returns:
        image: [h, w, 3] the resized image, in the dataset's dtype (uint8).
        image_meta: [META] from ``compose_image_meta``; its window is the one of the
            resized image before augmentation (as in the classic pipeline, where only
            inference reads the window).
        class_ids: int32 [N] class ids; negative ids (crowds) are kept.
        bbox: int32 [N, (y1, x1, y2, x2)] boxes of the final masks (the dataset's own boxes
            are ignored).
        mask: bool [h, w, N], or [mh, mw, N] with mini masks. Instances whose mask became
            empty (resized or cropped away) are dropped.

    Raises:
        AugmentationError: the augmentation changed a shape or the image dtype.
        mrcnn.image_io.ImageReadError: the image file cannot be read (an OSError of
            ``dataset.load_image`` is raised as one).
        ValueError: the image does not fit the model (see ``mrcnn.image_io``), the masks
            are not [H, W, N] of the image's size with one class id each, or a class id
            (sign aside, for crowds) is outside 1..NUM_CLASSES-1.
    """
    return _load_ground_truth(dataset, config, image_id, augmentation, use_mini_mask, rng)[:5]


def _load_ground_truth(dataset, config, image_id: int, augmentation: AugmentFn | None,
                       use_mini_mask: bool | None, rng: np.random.Generator | None):
    """:func:`load_image_gt`'s five values, then kept: bool [N0], True for the
    instances of ``load_mask`` (N0 of them) that are returned."""
    if use_mini_mask is None:
        use_mini_mask = config.USE_MINI_MASK
    path = dataset.image_info[image_id].get("path")
    name = f"image {image_id}" + (f" ({path})" if path else "")
    try:
        image = dataset.load_image(image_id)
    except OSError as err:
        # A load_image of the user's own that fails to read a file counts as unreadable
        # too (the generator skips those); an OSError of load_mask does not.
        if isinstance(err, ImageReadError):
            raise
        raise ImageReadError(f"{name}: {type(err).__name__}: {err}") from err
    image = to_model_image(image, name, config.IMAGE_CHANNEL_COUNT)
    masks, class_ids = dataset.load_mask(image_id)
    masks, class_ids = np.asarray(masks), np.asarray(class_ids)
    _check_ground_truth(name, image.shape, masks, class_ids, config.NUM_CLASSES)
    original_shape = image.shape
    image, window, scale, padding, crop = resize_image(
        image, min_dim=config.IMAGE_MIN_DIM, min_scale=config.IMAGE_MIN_SCALE,
        max_dim=config.IMAGE_MAX_DIM, mode=config.IMAGE_RESIZE_MODE)
    masks = resize_mask(masks.astype(bool), scale, padding, crop)
    if augmentation is not None:
        image, masks = _augment(augmentation, image, masks, rng)

    # Rows first: reducing the long axis 0 before the short ones is ~50x faster than
    # masks.any(axis=(0, 1)).
    keep = masks.any(axis=0).any(axis=0)
    masks = masks[:, :, keep]
    class_ids = np.asarray(class_ids, dtype=np.int32)[keep]
    bbox = extract_bboxes(masks)

    active_class_ids = np.zeros(config.NUM_CLASSES, dtype=np.int32)
    source = dataset.image_info[image_id]["source"]
    active_class_ids[dataset.source_class_ids[source]] = 1

    if use_mini_mask:
        masks = minimize_mask(bbox, masks, config.MINI_MASK_SHAPE)
    image_meta = compose_image_meta(image_id, original_shape, image.shape, window, scale,
                                    active_class_ids)
    return image, image_meta, class_ids, bbox, masks, keep


def _check_ground_truth(name: str, image_shape: tuple, masks: np.ndarray,
                        class_ids: np.ndarray, num_classes: int) -> None:
    """Raises ValueError naming the image when load_mask's output cannot be trained on."""
    fix = "check load_mask(), which returns (bool [H, W, N] masks, int32 [N] class ids)"
    if masks.ndim != 3 or masks.shape[:2] != image_shape[:2]:
        raise ValueError(f"{name}: masks of shape {masks.shape} for an image of shape "
                         f"{image_shape}; they must be [{image_shape[0]}, {image_shape[1]}, "
                         f"instances]: {fix}")
    if class_ids.shape != (masks.shape[2],):
        raise ValueError(f"{name}: {masks.shape[2]} masks but class ids of shape "
                         f"{class_ids.shape}; give one class id per mask: {fix}")
    # Crowds carry the negative of their class id.
    bad = class_ids[(np.abs(class_ids) < 1) | (np.abs(class_ids) >= num_classes)]
    if bad.size:
        raise ValueError(f"{name}: class id {int(bad[0])} is outside 1..{num_classes - 1} "
                         f"(NUM_CLASSES={num_classes}, background 0 excluded): set "
                         "NUM_CLASSES to the dataset's num_classes, or fix load_mask()")


def _subsample(indices: np.ndarray, keep: int, rng: np.random.Generator) -> np.ndarray:
    """The entries of ``indices`` beyond ``keep``, chosen at random (empty if none)."""
    extra = len(indices) - keep
    if extra <= 0:
        return indices[:0]
    return rng.choice(indices, extra, replace=False)


def build_rpn_targets(anchors: np.ndarray, gt_class_ids: np.ndarray, gt_boxes: np.ndarray,
                      config, rng: np.random.Generator | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Labels the anchors and computes the box deltas the RPN should predict.

    Classic rules: crowd boxes (negative class ids) are left out of the ground truth, and an
    anchor overlapping a crowd box (IoU >= 0.001) is never negative. An anchor is negative
    when its best IoU is below 0.3; for every ground-truth box, all the anchors tied at its
    best IoU are positive (even below 0.3, though not at IoU 0, where the classic code made
    every anchor a tie); an anchor with IoU >= 0.7 is positive. Then
    random positives beyond ``R // 2`` and random negatives beyond ``R - positives`` are
    made neutral.

    Args:
        anchors: [A, (y1, x1, y2, x2)] anchors in pixels.
        gt_class_ids: [N] class ids; negative for crowds.
        gt_boxes: [N, (y1, x1, y2, x2)] ground-truth boxes in pixels.
        config: a ``Config``; uses ``RPN_TRAIN_ANCHORS_PER_IMAGE`` and ``RPN_BBOX_STD_DEV``.
        rng: random generator of the subsampling; None makes a fresh unseeded one.

    Returns:
        rpn_match: int32 [A], 1 positive, -1 negative, 0 neutral.
        rpn_bbox: float32 [R, (dy, dx, log(dh), log(dw))] deltas from each positive anchor
            (in anchor order) to its best ground-truth box, divided by
            ``RPN_BBOX_STD_DEV``; zero rows after the positives.
    """
    rng = np.random.default_rng() if rng is None else rng
    gt_class_ids = np.asarray(gt_class_ids)
    gt_boxes = np.asarray(gt_boxes).reshape(-1, 4)
    num_anchors = len(anchors)
    rpn_match = np.zeros(num_anchors, dtype=np.int32)
    rpn_bbox = np.zeros((config.RPN_TRAIN_ANCHORS_PER_IMAGE, 4), dtype=np.float32)

    crowd = gt_class_ids < 0
    if crowd.any():
        crowd_iou = compute_overlaps(gt_boxes[crowd], anchors).max(axis=0)
        may_be_negative = crowd_iou < CROWD_IOU
        gt_boxes = gt_boxes[~crowd]
    else:
        may_be_negative = np.ones(num_anchors, dtype=bool)

    # [gt, A] rather than [A, gt]: numpy reduces a few long rows much faster than many
    # short ones, and the values are the same (IoU is symmetric).
    overlaps = compute_overlaps(gt_boxes, anchors)
    # initial=0 gives the no-gt case its meaning: every anchor has IoU 0.
    anchor_iou_max = overlaps.max(axis=0, initial=0.0)
    rpn_match[(anchor_iou_max < RPN_NEGATIVE_IOU) & may_be_negative] = -1
    # Every gt box gets its best anchors, however poorly matched. A gt that overlaps no
    # anchor at all (IoU 0) has no best anchor: without the > 0 test every anchor would tie.
    gt_best = (overlaps == overlaps.max(axis=1, keepdims=True)) & (overlaps > 0)
    rpn_match[gt_best.any(axis=0)] = 1
    rpn_match[anchor_iou_max >= RPN_POSITIVE_IOU] = 1

    positives = np.nonzero(rpn_match == 1)[0]
    rpn_match[_subsample(positives, config.RPN_TRAIN_ANCHORS_PER_IMAGE // 2, rng)] = 0
    num_positives = int(np.sum(rpn_match == 1))
    negatives = np.nonzero(rpn_match == -1)[0]
    rpn_match[_subsample(negatives, config.RPN_TRAIN_ANCHORS_PER_IMAGE - num_positives,
                         rng)] = 0

    positives = np.nonzero(rpn_match == 1)[0]
    if len(positives):
        best_gt = overlaps[:, positives].argmax(axis=0)
        deltas = box_refinement(anchors[positives], gt_boxes[best_gt])
        rpn_bbox[:len(positives)] = deltas / config.RPN_BBOX_STD_DEV
    return rpn_match, rpn_bbox


class TrainingExample(NamedTuple):
    """One image's network inputs, padded to fixed sizes (see :func:`load_training_example`)."""
    image: np.ndarray
    image_meta: np.ndarray
    rpn_match: np.ndarray
    rpn_bbox: np.ndarray
    gt_class_ids: np.ndarray
    gt_boxes: np.ndarray
    gt_masks: np.ndarray
    # Only with ASSOCIATION_EMBEDDING_SIZE (the association head): int32 [G].
    gt_instance_ids: np.ndarray | None = None


def load_training_example(dataset, config, image_id: int, anchors: np.ndarray,
                          augmentation: AugmentFn | None, rng: np.random.Generator
                          ) -> TrainingExample:
    """Everything the training graph needs from one image.

    Args:
        dataset: a prepared ``Dataset``.
        config: a ``Config``.
        image_id: [] internal image id.
        anchors: [A, (y1, x1, y2, x2)] anchors in pixels of the molded image.
        augmentation: as for :func:`load_image_gt`, or None.
        rng: random generator for augmentation and subsampling.

    Returns:
        A :class:`TrainingExample` of
        image: float32 [h, w, 3] molded (``image - MEAN_PIXEL``);
        image_meta: float32 [META];
        rpn_match: int32 [A]; rpn_bbox: float32 [R, 4] (see :func:`build_rpn_targets`,
        computed from all the instances);
        gt_class_ids: int32 [G]; gt_boxes: float32 [G, (y1, x1, y2, x2)] in pixels;
        gt_masks: bool [mh, mw, G]; with ``ASSOCIATION_EMBEDDING_SIZE``,
        gt_instance_ids: int32 [G] from ``dataset.load_instance_ids`` (else None).
        Instances beyond ``MAX_GT_INSTANCES`` are dropped at random; the rest of the
        slots are zero.

    Raises:
        ValueError: as :func:`load_image_gt`, and with the association head on, a
            dataset whose ``load_instance_ids`` gives None or not one id >= 1 per mask.
    """
    image, image_meta, class_ids, boxes, masks, kept = _load_ground_truth(
        dataset, config, image_id, augmentation, None, rng)
    rpn_match, rpn_bbox = build_rpn_targets(anchors, class_ids, boxes, config, rng=rng)
    instance_ids = (_instance_ids(dataset, image_id, len(kept))[kept]
                    if config.ASSOCIATION_EMBEDDING_SIZE else None)

    max_instances = config.MAX_GT_INSTANCES
    if len(class_ids) > max_instances:
        keep = rng.choice(len(class_ids), max_instances, replace=False)
        class_ids, boxes, masks = class_ids[keep], boxes[keep], masks[:, :, keep]
        instance_ids = None if instance_ids is None else instance_ids[keep]
    count = len(class_ids)
    gt_class_ids = np.zeros(max_instances, dtype=np.int32)
    gt_boxes = np.zeros((max_instances, 4), dtype=np.float32)
    gt_masks = np.zeros(masks.shape[:2] + (max_instances,), dtype=bool)
    gt_class_ids[:count] = class_ids
    gt_boxes[:count] = boxes
    gt_masks[:, :, :count] = masks
    gt_instance_ids = None
    if instance_ids is not None:
        gt_instance_ids = np.zeros(max_instances, dtype=np.int32)
        gt_instance_ids[:count] = instance_ids
    return TrainingExample(mold_image(image, config).astype(np.float32),
                           image_meta.astype(np.float32), rpn_match, rpn_bbox,
                           gt_class_ids, gt_boxes, gt_masks, gt_instance_ids)


def _instance_ids(dataset, image_id: int, count: int) -> np.ndarray:
    """int32 [count] ``dataset.load_instance_ids(image_id)``, checked: one id >= 1 for
    each of load_mask's ``count`` instances."""
    ids = dataset.load_instance_ids(image_id)
    name = f"{type(dataset).__name__} image {image_id}"
    if ids is None:
        raise ValueError(
            f"{name}: ASSOCIATION_EMBEDDING_SIZE is set but load_instance_ids() returned None "
            "(the Dataset default): the association head trains on instance identities. "
            "Override load_instance_ids(image_id) to return an int array [N] of ids >= 1 "
            "aligned with load_mask()'s instances, or set ASSOCIATION_EMBEDDING_SIZE = None.")
    ids = np.asarray(ids)
    if ids.shape != (count,) or not np.issubdtype(ids.dtype, np.integer) or np.any(ids < 1):
        raise ValueError(f"{name}: load_instance_ids() gave {ids!r} for {count} masks; give "
                         "one integer id >= 1 per instance of load_mask(), in its order")
    return ids.astype(np.int32)


def check_instance_ids(dataset, image_id: int) -> np.ndarray:
    """The instance ids of an image, checked as the association head's training needs them.

    Returns:
        int32 [N] ``dataset.load_instance_ids(image_id)``.

    Raises:
        ValueError: None (the dataset has no identities), or not one id >= 1 per
            instance of ``load_mask``; the message names the fix.
    """
    return _instance_ids(dataset, image_id, len(np.asarray(dataset.load_mask(image_id)[1])))


def sequence_runs(dataset, frames: int) -> np.ndarray:
    """Every run of ``frames`` consecutive frames of one sequence: the units of
    ``SEQUENCE_FRAMES`` batching.

    A sequence is the images of one ``(source, image_info["video"])``; its frames
    are ordered by ``image_info["frame"]``. Runs overlap: a sequence of F frames
    gives F - frames + 1 of them.

    Args:
        dataset: a prepared ``Dataset`` whose image_info entries have "video" and
            "frame" keys.
        frames: frames per run (>= 1).

    Returns:
        int [runs, frames] image ids, sequence by sequence in dataset order.

    Raises:
        ValueError: an image without "video" / "frame", or no sequence as long as
            ``frames``.
    """
    sequences: dict = {}
    for image_id in dataset.image_ids:
        info = dataset.image_info[image_id]
        if "video" not in info or "frame" not in info:
            raise ValueError(
                f"SEQUENCE_FRAMES = {frames} batches consecutive frames, but image "
                f"{image_id} ({dataset.image_reference(image_id)}) has no 'video' and 'frame' "
                "in its image_info: pass video=..., frame=... to add_image(), or set "
                "SEQUENCE_FRAMES = 1")
        sequences.setdefault((info["source"], info["video"]), []).append(
            (info["frame"], int(image_id)))
    runs = []
    for members in sequences.values():
        ids = [image_id for _, image_id in sorted(members)]
        runs += [ids[start:start + frames] for start in range(len(ids) - frames + 1)]
    if not runs:
        longest = max(len(m) for m in sequences.values())
        raise ValueError(f"SEQUENCE_FRAMES = {frames}, but the longest sequence of the "
                         f"dataset has {longest} frames: lower SEQUENCE_FRAMES or add frames")
    return np.array(runs, dtype=np.int64).reshape(-1, frames)


class DataGenerator(keras.utils.PyDataset):
    """Training batches of a dataset, for ``keras.Model.fit``.

    Batch ``i`` of an epoch holds the images at positions ``i * B ...`` of that epoch's
    order: as many passes over the dataset as the epoch's batches need, each pass shuffled
    anew (reshuffled in :meth:`on_epoch_end`), so every batch has ``B`` images. An image
    with no instance of a positive class is
    replaced by the next image of the order, unless ``negative_images`` is set. An image
    whose file cannot be read (``mrcnn.image_io.ImageReadError``) is logged with its id and
    path and replaced the same way; the count is logged at the end of the epoch, and
    ``MAX_CONSECUTIVE_ERRORS`` failures in a row re-raise the error. Any other error (in
    ``load_mask``, an augmentation, a check of the ground truth) propagates.

    Each item is ``(inputs,)`` (no targets: the losses are part of the model), inputs being
    the tuple ``(input_image float32 [B, h, w, 3], input_image_meta float32 [B, META],
    input_rpn_match int32 [B, A, 1], input_rpn_bbox float32 [B, R, 4],
    input_gt_class_ids int32 [B, G], input_gt_boxes float32 [B, G, 4],
    input_gt_masks bool [B, mh, mw, G])``, with ``input_gt_instance_ids int32 [B, G]``
    after them when ``ASSOCIATION_EMBEDDING_SIZE`` is set, in the order of the training
    model's inputs. A tuple, not a list: ``fit`` feeds batches through ``tf.data``, which
    takes a list for one tensor to be stacked and rejects a list of differently shaped
    arrays.

    With ``SEQUENCE_FRAMES = S > 1`` the unit is a run of S consecutive frames of one
    sequence (:func:`sequence_runs`) instead of an image: the epoch's order shuffles the
    runs (by their first frame), every batch holds ``B / S`` whole runs, frames in order,
    so the same objects appear in several images of a batch (the association loss's
    positive pairs). A run with an unusable frame (no positive instance, unreadable file)
    is skipped as a whole. All the frames of a run get the same random draws, so an
    augmentation that draws its parameters from ``rng`` in a fixed order (e.g.
    :class:`Augmenter`) flips or rotates the whole run alike; one with its own random
    state does not.
    """

    def __init__(self, dataset, config, shuffle: bool = True,
                 augmentation: AugmentFn | None = None,
                 no_augmentation_sources: Sequence[str] | None = None,
                 negative_images: bool = False, seed: int | None = None,
                 steps_per_epoch: int | None = None, workers: int = 1,
                 use_multiprocessing: bool = False, max_queue_size: int = 10):
        """Makes the generator.

        Args:
            dataset: a prepared ``Dataset`` with at least one image.
            config: a ``Config``; ``BATCH_SIZE`` images per batch, anchors for
                ``IMAGE_SHAPE``.
            shuffle: reshuffle the images every epoch; False keeps the dataset order.
            augmentation: as for :func:`load_image_gt`, or None.
            no_augmentation_sources: [S] sources whose images are never augmented.
            negative_images: keep images with no positive instance, as negatives.
            seed: makes every batch of every epoch reproducible (with any number of thread
                workers); None picks a random seed.
            steps_per_epoch: batches per epoch (e.g. ``config.STEPS_PER_EPOCH``); None
                for one pass, ``ceil(images / B)``. Give the ``steps_per_epoch`` passed to
                ``fit``: Keras ends an epoch early, with a warning, when the generator
                has fewer batches.
            workers, use_multiprocessing, max_queue_size: parallelism of ``fit``, see
                ``keras.utils.PyDataset``. Multiprocessing needs a dataset that can be
                copied into forked processes.

        Raises:
            ValueError: the dataset has no images.
        """
        super().__init__(workers=workers, use_multiprocessing=use_multiprocessing,
                         max_queue_size=max_queue_size)
        if len(dataset.image_ids) == 0:
            raise ValueError("DataGenerator: the dataset has no images "
                             "(did you add images and call dataset.prepare()?)")
        self.dataset = dataset
        self.config = config
        self.shuffle = shuffle
        self.augmentation = augmentation
        self.no_augmentation_sources = set(no_augmentation_sources or ())
        self.negative_images = negative_images
        self.steps_per_epoch = steps_per_epoch
        # An integer (SeedSequence entropy) rather than a Generator: batches derive their
        # own generator from (seed, epoch, index), whatever worker builds them.
        self.seed = np.random.SeedSequence(seed).entropy
        self.epoch = 0
        # Batches of the current epoch already trained on (see start_at).
        self.first_batch = 0
        # Image ids skipped this epoch (unreadable files), reported at its end.
        self.skipped: list[int] = []
        self.anchors = config_anchors(config, config.IMAGE_SHAPE)
        frames = config.SEQUENCE_FRAMES
        # [units, S] image ids: the runs of frames, or every image alone.
        self.units = (sequence_runs(dataset, frames) if frames > 1
                      else np.asarray(dataset.image_ids).reshape(-1, 1))
        self.units_per_batch = config.BATCH_SIZE // frames
        self.epoch_order = self._epoch_order()

    def _epoch_order(self) -> np.ndarray:
        """[P * units] unit indices (image ids without SEQUENCE_FRAMES): P passes,
        enough for all the epoch's batches."""
        ids = (np.asarray(self.dataset.image_ids) if self.config.SEQUENCE_FRAMES == 1
               else np.arange(len(self.units)))
        passes = math.ceil(self._epoch_length() * self.units_per_batch / len(ids))
        if not self.shuffle:
            return np.tile(ids, passes)
        # The 0 (here) and 1 (batches) keep the shuffling and the batches' random streams
        # apart.
        return np.concatenate([
            np.random.default_rng([self.seed, self.epoch, 0, p]).permutation(ids)
            for p in range(passes)])

    def __len__(self) -> int:
        return self._epoch_length() - self.first_batch

    def _epoch_length(self) -> int:
        if self.steps_per_epoch:
            return self.steps_per_epoch
        return math.ceil(len(self.units) / self.units_per_batch)

    def start_at(self, epoch: int, batch: int = 0) -> None:
        """Makes the next batches those of ``epoch`` (0-based) from ``batch`` on, as an
        uninterrupted run would have drawn them: resuming. Until the epoch ends,
        ``len(self)`` counts the batches left and index 0 is batch ``batch``."""
        self.epoch = epoch
        self.epoch_order = self._epoch_order()
        self.first_batch = batch

    def on_epoch_end(self) -> None:
        """Reports the images skipped in the epoch, moves to the next one and reshuffles."""
        if self.skipped:
            logger.warning("Epoch %d: %d images skipped because their file could not be "
                           "read (image ids %s); see the log above", self.epoch + 1,
                           len(self.skipped), sorted(set(self.skipped)))
        self.skipped = []
        self.first_batch = 0
        self.epoch += 1
        self.epoch_order = self._epoch_order()

    def __getitem__(self, index: int):
        """Builds batch ``index`` of the current epoch.

        Args:
            index: [] batch index in ``0 .. len(self) - 1``.

        Returns:
            ``(inputs,)``, inputs the tuple of seven (eight) arrays described in the class
            docstring.

        Raises:
            IndexError: index out of range.
            ValueError: a whole pass over the images found none usable.
        """
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range: the generator has {len(self)}")
        index += self.first_batch
        rng = np.random.default_rng([self.seed, self.epoch, 1, index])
        sequences = self.config.SEQUENCE_FRAMES > 1
        examples = []
        position = index * self.units_per_batch
        errors = 0
        misses = 0
        while len(examples) < self.config.BATCH_SIZE:
            if misses == len(self.epoch_order):
                raise ValueError(
                    f"DataGenerator: none of the {len(self.epoch_order)} "
                    f"{'runs of frames' if sequences else 'images'} gives training "
                    "examples: each has an image with no instance of a positive class "
                    "(check load_mask(), or pass negative_images=True) or fails to load "
                    "(see the log)")
            # Skipped units push the batch past its share; the end wraps to the start.
            unit = int(self.epoch_order[position % len(self.epoch_order)])
            image_ids = self.units[unit] if sequences else [unit]
            # Each frame of a run starts from the same generator state, so all of them
            # get the same augmentation.
            run_seed = [self.seed, self.epoch, 1, index, position]
            position += 1
            run = []
            for image_id in map(int, image_ids):
                frame_rng = np.random.default_rng(run_seed) if sequences else rng
                try:
                    example = self._load(image_id, frame_rng)
                    errors = 0
                except ImageReadError as err:
                    # Only unreadable files are skipped: an error in the user's load_mask
                    # or augmentation surfaces with its own traceback.
                    errors += 1
                    self.skipped.append(image_id)
                    where = [self.dataset.image_info[image_id].get("path"),
                             self.dataset.image_reference(image_id)]
                    logger.error("Skipping image %d (%s): %s", image_id,
                                 ", ".join(str(w) for w in where if w) or "no path", err)
                    if errors >= MAX_CONSECUTIVE_ERRORS:
                        raise
                    break
                if not (self.negative_images or np.any(example.gt_class_ids > 0)):
                    break
                run.append(example)
            if len(run) == len(image_ids):
                examples += run
                misses = 0
            else:
                misses += 1
        columns = [np.stack(column) if column[0] is not None else None
                   for column in zip(*examples)]
        batch = TrainingExample(*columns)
        batch = batch._replace(rpn_match=batch.rpn_match[:, :, np.newaxis])
        return (tuple(column for column in batch if column is not None),)

    def _load(self, image_id: int, rng: np.random.Generator) -> TrainingExample:
        source = self.dataset.image_info[image_id]["source"]
        augmentation = None if source in self.no_augmentation_sources else self.augmentation
        return load_training_example(self.dataset, self.config, image_id, self.anchors,
                                     augmentation, rng)
