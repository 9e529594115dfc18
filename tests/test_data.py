"""Training input pipeline: RPN targets by hand, ground truth, augmentation, batches."""
import ast
import logging
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from mrcnn.boxes import box_refinement, compute_overlaps, extract_bboxes
from mrcnn.data import (MAX_CONSECUTIVE_ERRORS, AugmentationError, Augmenter, DataGenerator,
                        build_rpn_targets, load_image_gt, load_training_example)
from mrcnn.dataset import Dataset
from mrcnn.image_meta import parse_image_meta
from mrcnn.images import minimize_mask, resize_image, resize_mask
from mrcnn.datasets.shapes import ShapesConfig, ShapesDataset

STD = np.array([0.1, 0.1, 0.2, 0.2])


def rpn_config(anchors_per_image=256):
    return SimpleNamespace(RPN_TRAIN_ANCHORS_PER_IMAGE=anchors_per_image, RPN_BBOX_STD_DEV=STD)


class SmallConfig(ShapesConfig):
    IMAGES_PER_GPU = 2
    MAX_GT_INSTANCES = 6


class ToyDataset(Dataset):
    """128 x 128 images of rectangles; a spec is a list of (class id, (y1, x1, y2, x2))."""

    def __init__(self, specs, broken=(), size=128):
        super().__init__()
        for class_id, name in enumerate(("a", "b", "c"), start=1):
            self.add_class("toy", class_id, name)
        for i, rects in enumerate(specs):
            self.add_image("toy", i, None, rects=rects)
        self.broken = set(broken)
        self.size = size
        self.loads = []
        self.prepare()

    def load_image(self, image_id):
        self.loads.append(image_id)
        if image_id in self.broken:
            raise OSError(f"cannot read image {image_id}")
        image = np.full((self.size, self.size, 3), 50, dtype=np.uint8)
        for k, (_, (y1, x1, y2, x2)) in enumerate(self.image_info[image_id]["rects"]):
            image[y1:y2, x1:x2] = 100 + 30 * k
        return image

    def load_mask(self, image_id):
        rects = self.image_info[image_id]["rects"]
        masks = np.zeros((self.size, self.size, len(rects)), dtype=bool)
        for k, (_, (y1, x1, y2, x2)) in enumerate(rects):
            masks[y1:y2, x1:x2, k] = True
        return masks, np.array([class_id for class_id, _ in rects], dtype=np.int32)

    def image_reference(self, image_id):
        return f"toy image #{image_id}"


# ---------------------------------------------------------------- build_rpn_targets

GT_A = [0, 0, 10, 10]     # area 100
GT_B = [50, 50, 60, 80]   # area 300
ANCHORS = np.array([
    [0, 0, 10, 10],       # IoU 1 with A: positive
    [0, 0, 10, 12],       # IoU 100/120 with A: positive
    [0, 0, 10, 20],       # IoU 0.5 with A, not its best: neutral
    [100, 100, 110, 110],  # no overlap: negative
    [50, 50, 60, 58],     # IoU 80/300 < 0.3 with B, tied best for B: positive
    [50, 72, 60, 80],     # the same IoU, the other tied best for B: positive
], dtype=np.float64)


def test_rpn_targets_thresholds_and_best_anchor_rule():
    match, bbox = build_rpn_targets(ANCHORS, np.array([1, 2]), np.array([GT_A, GT_B]),
                                    rpn_config(), rng=np.random.default_rng(0))
    assert match.dtype == np.int32 and bbox.dtype == np.float32
    np.testing.assert_array_equal(match, [1, 1, 0, -1, 1, 1])
    assert bbox.shape == (256, 4)
    # Deltas (dy, dx, log dh, log dw) of anchors 0, 1, 4, 5 to their gt, by hand.
    expected = np.array([
        [0, 0, 0, 0],
        [0, (5 - 6) / 12, 0, np.log(10 / 12)],
        [0, (65 - 54) / 8, 0, np.log(30 / 8)],
        [0, (65 - 76) / 8, 0, np.log(30 / 8)],
    ]) / STD
    np.testing.assert_allclose(bbox[:4], expected, rtol=1e-5, atol=1e-6)
    assert not bbox[4:].any()


def test_rpn_targets_crowd_anchors_are_never_negative():
    crowd = [100, 100, 120, 120]  # IoU 100/400 with anchor 3
    match, bbox = build_rpn_targets(ANCHORS, np.array([1, -1]), np.array([GT_A, crowd]),
                                    rpn_config(), rng=np.random.default_rng(0))
    # Anchor 3 would be negative, but touches the crowd; the crowd is no gt (anchor 3 is
    # not positive), and anchors 4, 5 (far from A and the crowd) are plain negatives.
    np.testing.assert_array_equal(match, [1, 1, 0, 0, -1, -1])
    np.testing.assert_allclose(bbox[1], np.array([0, -1 / 12, 0, np.log(10 / 12)]) / STD,
                               rtol=1e-5)


def test_rpn_targets_cap_positives_at_half_and_negatives_at_the_rest():
    near = np.array([[0, 0, 10, 10 + 0.1 * k] for k in range(10)])   # IoU >= 0.9 with A
    far = np.array([[200 + k, 200, 210 + k, 210] for k in range(20)])
    anchors = np.concatenate([near, far])
    match, bbox = build_rpn_targets(anchors, np.array([1]), np.array([GT_A]), rpn_config(8),
                                    rng=np.random.default_rng(1))
    assert np.sum(match == 1) == 4 and np.sum(match == -1) == 4
    assert np.all(match[:10] >= 0) and np.all(match[10:] <= 0)
    positives = np.nonzero(match == 1)[0]
    widths = 10 + 0.1 * positives
    np.testing.assert_allclose(bbox[:4, 1], (5 - widths / 2) / widths / 0.1, rtol=1e-5)
    np.testing.assert_allclose(bbox[:4, 3], np.log(10 / widths) / 0.2, rtol=1e-5)
    # The subsampling follows the generator.
    again, _ = build_rpn_targets(anchors, np.array([1]), np.array([GT_A]), rpn_config(8),
                                 rng=np.random.default_rng(1))
    np.testing.assert_array_equal(match, again)


def test_rpn_targets_without_gt_are_negatives_only():
    match, bbox = build_rpn_targets(ANCHORS, np.zeros([0], np.int32), np.zeros([0, 4]),
                                    rpn_config(4), rng=np.random.default_rng(0))
    assert np.sum(match == -1) == 4 and np.sum(match == 0) == 2
    assert not bbox.any()


def test_rpn_targets_ignore_a_gt_that_overlaps_no_anchor():
    outside = [500, 500, 510, 510]
    match, bbox = build_rpn_targets(ANCHORS, np.array([1, 2]), np.array([GT_A, outside]),
                                    rpn_config(), rng=np.random.default_rng(0))
    np.testing.assert_array_equal(match, [1, 1, 0, -1, -1, -1])


def classic_rpn_match(anchors, gt_class_ids, gt_boxes):
    """The classic labelling, written the classic way ([A, gt] overlaps, argwhere ties)."""
    match = np.zeros(len(anchors), dtype=np.int32)
    crowd = gt_class_ids < 0
    no_crowd = np.ones(len(anchors), dtype=bool)
    if crowd.any():
        no_crowd = compute_overlaps(anchors, gt_boxes[crowd]).max(axis=1) < 0.001
    gt_boxes = gt_boxes[~crowd]
    overlaps = compute_overlaps(anchors, gt_boxes)
    argmax = np.argmax(overlaps, axis=1)
    iou_max = overlaps[np.arange(len(anchors)), argmax]
    match[(iou_max < 0.3) & no_crowd] = -1
    match[np.argwhere(overlaps == np.max(overlaps, axis=0))[:, 0]] = 1
    match[iou_max >= 0.7] = 1
    return match, gt_boxes[argmax]


def test_rpn_targets_match_the_classic_rules_on_pyramid_anchors():
    config = ShapesConfig()
    anchors = DataGenerator(ToyDataset([[]]), config).anchors
    rng = np.random.default_rng(5)
    corners = rng.integers(0, 100, (6, 2))
    gt_boxes = np.concatenate([corners, corners + rng.integers(6, 40, (6, 2))], axis=1)
    gt_class_ids = np.array([1, 2, 3, -1, 1, 2])
    expected, best_gt = classic_rpn_match(anchors, gt_class_ids, gt_boxes)
    # Room for every label: no subsampling, so the labels compare one to one.
    match, bbox = build_rpn_targets(anchors, gt_class_ids, gt_boxes,
                                    rpn_config(2 * len(anchors)))
    np.testing.assert_array_equal(match, expected)
    positives = expected == 1
    deltas = box_refinement(anchors[positives], best_gt[positives]) / STD
    np.testing.assert_allclose(bbox[:positives.sum()], deltas, rtol=1e-6)
    assert not bbox[positives.sum():].any()


# ---------------------------------------------------------------- load_image_gt

def test_load_image_gt_resizes_image_and_masks_together():
    dataset = ShapesDataset()
    dataset.load_shapes(2, 96, 160, seed=5)
    dataset.prepare()
    config = ShapesConfig()
    image, meta, class_ids, bbox, mask = load_image_gt(dataset, config, 1, use_mini_mask=False)
    assert image.dtype == np.uint8 and image.shape == (128, 128, 3)
    assert meta.shape == (config.IMAGE_META_SIZE,)
    assert class_ids.dtype == np.int32 and bbox.dtype == np.int32
    assert mask.dtype == bool and mask.shape == (128, 128, len(class_ids))

    expected_image, window, scale, padding, _ = resize_image(
        dataset.load_image(1), min_dim=128, max_dim=128, mode="square")
    raw_masks, raw_ids = dataset.load_mask(1)
    np.testing.assert_array_equal(image, expected_image)
    np.testing.assert_array_equal(mask, resize_mask(raw_masks, scale, padding))
    np.testing.assert_array_equal(class_ids, raw_ids)
    np.testing.assert_array_equal(bbox, extract_bboxes(mask))
    fields = parse_image_meta(meta[None])
    assert (fields["image_id"][0], fields["scale"][0]) == (1, scale)
    np.testing.assert_array_equal(fields["original_image_shape"][0], [96, 160, 3])
    np.testing.assert_array_equal(fields["image_shape"][0], [128, 128, 3])
    np.testing.assert_array_equal(fields["window"][0], window)
    assert scale == 0.8


def test_load_image_gt_mini_masks(shapes):
    config = ShapesConfig()
    _, _, ids, bbox, full = load_image_gt(shapes, config, 2, use_mini_mask=False)
    _, _, ids_mini, bbox_mini, mini = load_image_gt(shapes, config, 2)  # USE_MINI_MASK
    assert mini.shape == (56, 56, len(ids)) and mini.dtype == bool
    np.testing.assert_array_equal(bbox_mini, bbox)
    np.testing.assert_array_equal(mini, minimize_mask(bbox, full, (56, 56)))


def test_load_image_gt_active_classes_follow_the_source():
    dataset = ToyDataset([[(1, (10, 10, 40, 40))]])
    dataset.add_class("other", 1, "unrelated")
    dataset.prepare()

    class FiveClasses(ShapesConfig):
        NUM_CLASSES = 5

    *_, meta_class_part = np.split(
        load_image_gt(dataset, FiveClasses(), 0)[1], [12])
    np.testing.assert_array_equal(meta_class_part, [1, 1, 1, 1, 0])


def test_load_image_gt_drops_empty_masks_and_keeps_crowds():
    dataset = ToyDataset([[(1, (10, 10, 40, 40)), (2, (60, 60, 60, 90)),
                           (-3, (70, 20, 100, 50))]])
    _, _, class_ids, bbox, mask = load_image_gt(dataset, ShapesConfig(), 0)
    np.testing.assert_array_equal(class_ids, [1, -3])
    np.testing.assert_array_equal(bbox, [[10, 10, 40, 40], [70, 20, 100, 50]])
    assert mask.shape == (56, 56, 2) and mask.all()


# ---------------------------------------------------------------- augmentation

def test_flip_moves_image_and_masks_identically(shapes):
    config = ShapesConfig()
    image, _, ids, bbox, mask = load_image_gt(shapes, config, 0, use_mini_mask=False)
    outcomes = set()
    augmenter = Augmenter(fliplr=0.5, seed=7)
    for _ in range(8):
        aug_image, _, aug_ids, aug_bbox, aug_mask = load_image_gt(
            shapes, config, 0, augmentation=augmenter, use_mini_mask=False)
        flipped = not np.array_equal(aug_image, image)
        outcomes.add(flipped)
        expected_image, expected_mask = ((np.fliplr(image), np.fliplr(mask)) if flipped
                                         else (image, mask))
        np.testing.assert_array_equal(aug_image, expected_image)
        np.testing.assert_array_equal(aug_mask, expected_mask)
        np.testing.assert_array_equal(aug_bbox, extract_bboxes(expected_mask))
        np.testing.assert_array_equal(aug_ids, ids)
    assert outcomes == {True, False}


def test_augmenter_is_reproducible_and_geometry_safe():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    masks = rng.random((32, 32, 2)) > 0.5
    augmenter = Augmenter(fliplr=0.5, flipud=0.5, rot90=True, brightness=0.3, seed=11)
    twin = Augmenter(fliplr=0.5, flipud=0.5, rot90=True, brightness=0.3, seed=11)
    for _ in range(5):
        out_image, out_masks = augmenter(image, masks)
        twin_image, twin_masks = twin(image, masks)
        np.testing.assert_array_equal(out_image, twin_image)
        np.testing.assert_array_equal(out_masks, twin_masks)
        # Masks move rigidly: one of the 8 flips/rotations of the square.
        views = [np.rot90(m, k) for m in (masks, masks[:, ::-1]) for k in range(4)]
        assert any(np.array_equal(out_masks, v) for v in views)
        assert out_image.dtype == np.uint8 and out_image.shape == image.shape


def test_augmenter_brightness_only_touches_the_image():
    image = np.full((8, 12, 3), 200, dtype=np.uint8)
    masks = np.eye(8, 12, dtype=bool)[:, :, None]
    out_image, out_masks = Augmenter(fliplr=0, rot90=True, brightness=0.5, seed=2)(image, masks)
    np.testing.assert_array_equal(out_masks, masks)  # not square: no rotation either
    assert len(np.unique(out_image)) == 1 and out_image.max() <= 255
    assert out_image[0, 0, 0] != 200


def test_shape_changing_augmentation_raises(shapes):
    def crop(image, masks):
        return image[:100], masks[:100]

    def to_float(image, masks):
        return image / 255.0, masks

    with pytest.raises(AugmentationError, match="crop"):
        load_image_gt(shapes, ShapesConfig(), 0, augmentation=crop)
    with pytest.raises(ValueError, match="to_float.*dtype"):
        load_image_gt(shapes, ShapesConfig(), 0, augmentation=to_float)
    with pytest.raises(ValueError):
        Augmenter(fliplr=1.5)


# ---------------------------------------------------------------- DataGenerator

def test_generator_batch_layout(shapes):
    config = SmallConfig()
    generator = DataGenerator(shapes, config, shuffle=False, seed=0)
    assert len(generator) == 3
    (inputs,) = generator[0]
    assert isinstance(inputs, tuple)  # tf.data (used by fit) rejects a list here
    num_anchors = len(generator.anchors)
    assert num_anchors == 3 * sum((128 // s) ** 2 for s in config.BACKBONE_STRIDES)
    expected = [((2, 128, 128, 3), np.float32), ((2, 16), np.float32),
                ((2, num_anchors, 1), np.int32), ((2, 256, 4), np.float32),
                ((2, 6), np.int32), ((2, 6, 4), np.float32), ((2, 56, 56, 6), bool)]
    assert [(x.shape, x.dtype) for x in inputs] == expected
    images, metas, rpn_match, rpn_bbox, class_ids, boxes, masks = inputs
    np.testing.assert_array_equal(metas[:, 0], [0, 1])
    for b, image_id in enumerate([0, 1]):
        image, meta, ids, bbox, mini = load_image_gt(shapes, config, image_id)
        np.testing.assert_allclose(images[b], image - config.MEAN_PIXEL, rtol=1e-6)
        np.testing.assert_allclose(metas[b], meta)
        n = len(ids)
        np.testing.assert_array_equal(class_ids[b, :n], ids)
        np.testing.assert_array_equal(boxes[b, :n], bbox)
        np.testing.assert_array_equal(masks[b, :, :, :n], mini)
        assert not class_ids[b, n:].any() and not boxes[b, n:].any()
        assert not masks[b, :, :, n:].any()
        assert np.sum(rpn_match[b] == 1) >= n
        assert np.sum(rpn_match[b] != 0) <= 256
    with pytest.raises(IndexError):
        generator[3]


def test_generator_subsamples_instances_beyond_max():
    rects = [(1, (10 * k, 0, 10 * k + 8, 30)) for k in range(5)]
    dataset = ToyDataset([rects])

    class ThreeInstances(ShapesConfig):
        IMAGES_PER_GPU = 1
        MAX_GT_INSTANCES = 3

    config = ThreeInstances()
    generator = DataGenerator(dataset, config, shuffle=False, seed=0)
    anchors = generator.anchors
    example = load_training_example(dataset, config, 0, anchors, None, np.random.default_rng(0))
    assert example.gt_class_ids.tolist() == [1, 1, 1]
    all_boxes = [list(box) for _, box in rects]
    kept = example.gt_boxes.tolist()
    assert len({tuple(b) for b in kept}) == 3 and all(b in all_boxes for b in kept)


def test_generator_skips_images_without_instances():
    dataset = ToyDataset([[], [(1, (10, 10, 50, 50))], [(-1, (0, 0, 64, 64))],
                          [(2, (60, 20, 100, 70))]])
    generator = DataGenerator(dataset, SmallConfig(), shuffle=False, seed=0)
    assert [generator[i][0][1][:, 0].tolist() for i in range(2)] == [[1, 3], [3, 1]]

    negatives = DataGenerator(dataset, SmallConfig(), shuffle=False, seed=0,
                              negative_images=True)
    (inputs,) = negatives[0]
    np.testing.assert_array_equal(inputs[1][:, 0], [0, 1])
    assert not inputs[4][0].any() and not inputs[5][0].any() and not inputs[6][0].any()
    assert np.all(inputs[2][0] <= 0)  # no gt: negatives only

    empty = DataGenerator(ToyDataset([[], []]), SmallConfig(), shuffle=False)
    with pytest.raises(ValueError, match="negative_images=True"):
        empty[0]


def test_generator_logs_and_skips_broken_images(caplog):
    dataset = ToyDataset([[(1, (10, 10, 50, 50))]] * 4, broken={1})
    generator = DataGenerator(dataset, SmallConfig(), shuffle=False, seed=0)
    with caplog.at_level(logging.ERROR, logger="mrcnn.data"):
        (inputs,) = generator[0]
    np.testing.assert_array_equal(inputs[1][:, 0], [0, 2])
    assert "toy image #1" in caplog.text and "image 1" in caplog.text

    all_broken = ToyDataset([[(1, (10, 10, 50, 50))]] * 8, broken=range(8))
    with caplog.at_level(logging.CRITICAL, logger="mrcnn.data"):
        with pytest.raises(OSError):
            DataGenerator(all_broken, SmallConfig(), shuffle=False)[0]
    assert len(all_broken.loads) == MAX_CONSECUTIVE_ERRORS


def test_generator_augmentation_sources():
    calls = []

    def spy(image, masks):
        calls.append(image.shape)
        return image, masks

    dataset = ToyDataset([[(1, (10, 10, 50, 50))]] * 2)
    DataGenerator(dataset, SmallConfig(), augmentation=spy, seed=0)[0]
    assert len(calls) == 2
    DataGenerator(dataset, SmallConfig(), augmentation=spy, seed=0,
                  no_augmentation_sources=["toy"])[0]
    assert len(calls) == 2


def test_generator_is_deterministic_given_a_seed(shapes):
    def batches(seed, order):
        generator = DataGenerator(shapes, SmallConfig(), augmentation=Augmenter(
            fliplr=0.5, brightness=0.2), seed=seed)
        first = {i: generator[i] for i in order}
        generator.on_epoch_end()
        return first, generator[0]

    (a, a_next), (b, b_next) = batches(4, [0, 1, 2]), batches(4, [2, 0, 1])
    for i in range(3):
        for x, y in zip(a[i][0], b[i][0]):
            np.testing.assert_array_equal(x, y)
    for x, y in zip(a_next[0], b_next[0]):
        np.testing.assert_array_equal(x, y)
    order = [int(m) for i in range(3) for m in a[i][0][1][:, 0]]
    assert sorted(order) == list(range(6))
    other = [int(m) for i in range(3) for m in batches(5, [0, 1, 2])[0][i][0][1][:, 0]]
    assert other != order


def test_len_rounds_up():
    dataset = ToyDataset([[(1, (10, 10, 50, 50))]] * 5)
    assert len(DataGenerator(dataset, SmallConfig())) == math.ceil(5 / 2)


def test_steps_per_epoch_makes_fresh_passes_over_the_images():
    dataset = ToyDataset([[(1, (10, 10, 50, 50))]] * 4)
    generator = DataGenerator(dataset, SmallConfig(), seed=3, steps_per_epoch=7)
    assert len(generator) == 7
    ids = [int(i) for b in range(7) for i in generator[b][0][1][:, 0]]
    passes = [ids[k:k + 4] for k in range(0, 12, 4)]
    assert all(sorted(p) == [0, 1, 2, 3] for p in passes)
    assert len({tuple(p) for p in passes}) > 1


def test_data_module_does_not_import_the_graph():
    tree = ast.parse(Path(__file__).parents[1].joinpath("mrcnn", "data.py").read_text())
    modules = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    modules |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    assert not any(m.startswith(("mrcnn.graph", "mrcnn.model")) for m in modules)
