"""The augmentation protocols: imgaug (through a stand-in), albumentations, Augmenter, callables."""
import copy
import traceback

import albumentations as A
import numpy as np
import pytest

from mrcnn.augmentation import (ALBUMENTATIONS, CALLABLE, IMGAUG, WITH_RNG, augmentation_kind,
                                apply_augmentation)
from mrcnn.config import Config
from mrcnn.data import AugmentationError, Augmenter, DataGenerator, load_image_gt
from mrcnn.dataset import Dataset

SIZE = 128
BRIGHT = 200


# ---------------------------------------------------------------- an imgaug look-alike
# imgaug 0.4 does not import on numpy 2; these few classes follow its API where mrcnn
# touches it: to_deterministic(), augment_image(image, hooks=...), HooksImages(activator=...)
# asked once per augmenter with (images, augmenter, parents, default).

class HooksImages:
    def __init__(self, activator=None):
        self.activator = activator

    def is_activated(self, images, augmenter, parents, default):
        return default if self.activator is None else self.activator(images, augmenter,
                                                                     parents, default)


class StandInAugmenter:
    random_state = np.random.default_rng(0)

    def to_deterministic(self):
        deterministic = copy.deepcopy(self)
        deterministic.draw(self.random_state)
        return deterministic

    def augment_image(self, image, hooks=None):
        return self.run(image, hooks, parents=[])

    def run(self, image, hooks, parents):
        if hooks is not None and not hooks.is_activated([image], self, parents, True):
            return image
        return self.apply(image, hooks, parents)

    def draw(self, rng):
        pass


class Fliplr(StandInAugmenter):
    def __init__(self, p):
        self.p = p
        self.flip = None

    def draw(self, rng):
        self.flip = rng.random() < self.p

    def apply(self, image, hooks, parents):
        return image[:, ::-1] if self.flip else image


class Multiply(StandInAugmenter):
    def __init__(self, factor):
        self.factor = factor

    def apply(self, image, hooks, parents):
        return np.clip(image * self.factor, 0, 255).astype(image.dtype)


class Sequential(StandInAugmenter):
    def __init__(self, children):
        self.children = children

    def draw(self, rng):
        for child in self.children:
            child.draw(rng)

    def apply(self, image, hooks, parents):
        for child in self.children:
            image = child.run(image, hooks, parents + [self])
        return image


# ---------------------------------------------------------------- data

class OneBlobDataset(Dataset):
    """Dark images with one bright rectangle in the left half; its mask is the rectangle."""

    def __init__(self, count=2):
        super().__init__()
        self.add_class("blob", 1, "blob")
        for i in range(count):
            self.add_image("blob", i, None)
        self.prepare()

    def load_image(self, image_id):
        image = np.full((SIZE, SIZE, 3), 20, dtype=np.uint8)
        image[30:60, 10:40] = BRIGHT
        return image

    def load_mask(self, image_id):
        mask = np.zeros((SIZE, SIZE, 1), dtype=bool)
        mask[30:60, 10:40, 0] = True
        return mask, np.array([1], dtype=np.int32)


class BlobConfig(Config):
    NAME = "blob"
    NUM_CLASSES = 2
    GPU_COUNT = 1
    IMAGES_PER_GPU = 1
    IMAGE_MIN_DIM = SIZE
    IMAGE_MAX_DIM = SIZE
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    USE_MINI_MASK = False


def _flips_image_and_masks_together(augmentation, runs=12):
    """Runs load_image_gt repeatedly; returns how many results were flipped."""
    dataset, config = OneBlobDataset(), BlobConfig()
    flipped = 0
    for _ in range(runs):
        image, _, class_ids, bbox, mask = load_image_gt(dataset, config, 0,
                                                        augmentation=augmentation,
                                                        use_mini_mask=False)
        assert mask.dtype == bool and mask.shape == (SIZE, SIZE, 1)
        assert image.dtype == np.uint8 and image.shape == (SIZE, SIZE, 3)
        # The mask covers exactly the bright pixels, wherever the flip put them.
        np.testing.assert_array_equal(mask[:, :, 0], image[:, :, 0] > 100)
        assert mask.sum() == 30 * 30
        if bbox[0, 1] >= SIZE // 2:
            flipped += 1
            np.testing.assert_array_equal(bbox[0], [30, SIZE - 40, 60, SIZE - 10])
    return flipped


def test_kinds_are_detected_without_configuration():
    assert augmentation_kind(Sequential([Fliplr(0.5)])) == IMGAUG
    assert augmentation_kind(A.Compose([A.HorizontalFlip()])) == ALBUMENTATIONS
    assert augmentation_kind(A.HorizontalFlip()) == ALBUMENTATIONS
    assert augmentation_kind(Augmenter()) == WITH_RNG
    assert augmentation_kind(lambda image, masks: (image, masks)) == CALLABLE
    with pytest.raises(TypeError, match="imgaug augmenter, an albumentations transform"):
        augmentation_kind("fliplr")


def test_imgaug_style_augmenter_flips_image_and_masks_together():
    flipped = _flips_image_and_masks_together(Sequential([Fliplr(0.5)]))
    # 12 runs at p = 0.5: both outcomes occur (fixed stand-in seed).
    assert 0 < flipped < 12


def test_imgaug_hooks_keep_colour_augmenters_off_the_masks():
    image = np.full((8, 8, 3), 100, dtype=np.uint8)
    masks = np.zeros((8, 8, 2), dtype=bool)
    masks[:, :2, 0] = True
    masks[0, :, 1] = True
    new_image, new_masks = apply_augmentation(Sequential([Fliplr(1.0), Multiply(2)]),
                                              image, masks)
    assert np.all(new_image == 200)
    # Flipped like the image, but not multiplied: still 0/1.
    np.testing.assert_array_equal(new_masks, masks[:, ::-1].astype(np.uint8))


def test_albumentations_flips_image_and_masks_together():
    transform = A.Compose([A.HorizontalFlip(p=0.5), A.GaussNoise(p=0.0)])
    flipped = _flips_image_and_masks_together(transform)
    assert 0 < flipped < 12


def test_albumentations_colour_transform_leaves_masks_alone():
    image = np.full((8, 8, 3), 100, dtype=np.uint8)
    masks = np.zeros((8, 8, 1), dtype=bool)
    masks[2:4, 2:6, 0] = True
    transform = A.Compose([A.VerticalFlip(p=1.0),
                           A.RandomBrightnessContrast(brightness_limit=(0.3, 0.3),
                                                      contrast_limit=0, p=1.0)])
    new_image, new_masks = apply_augmentation(transform, image, masks)
    assert np.all(new_image > 100)
    np.testing.assert_array_equal(new_masks, masks[::-1].astype(np.uint8))
    # No instances: nothing to move, the shapes still hold.
    _, no_masks = apply_augmentation(transform, image, masks[:, :, :0])
    assert no_masks.shape == (8, 8, 0)


def test_augmenter_gets_the_generators_rng_and_plain_callables_work():
    dataset, config = OneBlobDataset(), BlobConfig()
    seen = []

    def plain(image, masks):
        seen.append("plain")
        return image[::-1], masks[::-1]

    image, _, _, bbox, _ = load_image_gt(dataset, config, 0, augmentation=plain)
    assert seen == ["plain"]
    np.testing.assert_array_equal(bbox[0], [SIZE - 60, 10, SIZE - 30, 40])
    # Augmenter draws from the rng it is given: the same seed gives the same result.
    augmenter = Augmenter(fliplr=0.5, flipud=0.5)
    first = load_image_gt(dataset, config, 0, augmentation=augmenter,
                          rng=np.random.default_rng(7))
    second = load_image_gt(dataset, config, 0, augmentation=augmenter,
                           rng=np.random.default_rng(7))
    np.testing.assert_array_equal(first[3], second[3])


def test_failing_augmenter_raises_with_its_own_traceback():
    def broken_augmenter(image, masks):
        raise RuntimeError("augmenter bug")

    generator = DataGenerator(OneBlobDataset(), BlobConfig(), augmentation=broken_augmenter,
                              steps_per_epoch=1)
    with pytest.raises(AugmentationError, match="augmenter bug") as raised:
        generator[0]
    cause = raised.value.__cause__
    assert isinstance(cause, RuntimeError)
    frames = [frame.name for frame in traceback.extract_tb(cause.__traceback__)]
    assert frames[-1] == "broken_augmenter"
    assert "no instance of a positive class" not in str(raised.value)


def test_migration_guides_nucleus_pipeline_moves_masks_only_geometrically():
    # The albumentations version of the classic nucleus augmentation (docs/migrating.md).
    augmentation = A.SomeOf([
        A.HorizontalFlip(p=0.5),
        A.VerticalFlip(p=0.5),
        A.RandomRotate90(p=1.0),
        A.MultiplicativeNoise(multiplier=(0.8, 1.5), p=1.0),
        A.GaussianBlur(blur_limit=0, sigma_limit=(0.1, 5.0), p=1.0),
    ], n=2)
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    masks = np.zeros((64, 64, 2), dtype=bool)
    masks[5:20, 10:30, 0] = True
    masks[40:60, 40:50, 1] = True
    for _ in range(10):
        new_image, new_masks = apply_augmentation(augmentation, image, masks)
        assert new_image.shape == image.shape and new_image.dtype == np.uint8
        assert set(np.unique(new_masks)) <= {0, 1}
        # Flips and quarter turns keep every instance's area.
        np.testing.assert_array_equal(new_masks.sum(axis=(0, 1)), [300, 200])
