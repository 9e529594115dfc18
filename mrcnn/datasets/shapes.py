"""Synthetic shapes: squares, circles and triangles on a plain background.

The classic toy problem for Mask R-CNN: images are generated, not read, so the
dataset needs no download and trains in minutes. It ships with the package:
``mrcnn train --dataset shapes`` and ``--config shapes`` use it. Every image is stored as a
*spec* (background colour and a list of shapes) and rendered on demand with
`skimage.draw`; the same seed gives the same dataset.

Shapes: H, W image height and width; N visible instances.
"""
from __future__ import annotations

import math

import numpy as np
import skimage.draw

from mrcnn.boxes import non_max_suppression
from mrcnn.config import Config
from mrcnn.dataset import Dataset

SOURCE = "shapes"
# Class names in source-id order: "square" is shapes.1, "circle" shapes.2, ...
SHAPES = ("square", "circle", "triangle")
# Distance kept between a shape's centre and the image border, and the minimum size.
BUFFER = 20
# Boxes of the shapes in one image overlap at most this much (IoU).
MAX_OVERLAP = 0.3


class ShapesConfig(Config):
    """Small images, small anchors and few ROIs: trains quickly on one device."""
    NAME = "shapes"
    GPU_COUNT = 1
    IMAGES_PER_GPU = 8
    NUM_CLASSES = 1 + len(SHAPES)
    IMAGE_MIN_DIM = 128
    IMAGE_MAX_DIM = 128
    # The shapes are 40..64 px across; anchors from 8 to 128 px cover them.
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    # Few objects per image: few ROIs are enough.
    TRAIN_ROIS_PER_IMAGE = 32
    STEPS_PER_EPOCH = 100
    VALIDATION_STEPS = 5


class ShapesDataset(Dataset):
    """Generated images of 1 to 4 coloured squares, circles and triangles.

    A shape spec is ``(name, (r, g, b), (y, x, s))``: centre (x, y) and size s
    (square: half side; circle: radius; triangle: apex s above the centre,
    base s below it). Shapes are drawn in list order, so a later shape hides
    the ones under it.
    """

    def load_shapes(self, count: int, height: int, width: int, seed: int | None = None) -> None:
        """Adds the shape classes and `count` generated images.

        Args:
            count: number of images to add.
            height, width: image size in pixels; height >= 80 and width >= 41
                so that shapes of at least 20 px fit 20 px inside the border.
            seed: seed of the numpy random generator; the same seed gives the
                same images (None: different every time).
        """
        if height // 4 < BUFFER or width < 2 * BUFFER + 1:
            raise ValueError(f"images of {height}x{width} are too small for shapes: "
                             f"use height >= {4 * BUFFER} and width >= {2 * BUFFER + 1}")
        for source_id, name in enumerate(SHAPES, start=1):
            self.add_class(SOURCE, source_id, name)
        rng = np.random.default_rng(seed)
        first = sum(info["source"] == SOURCE for info in self.image_info)
        for i in range(count):
            bg_color, shapes = random_image(rng, height, width)
            self.add_image(SOURCE, image_id=first + i, path=None, width=width,
                           height=height, bg_color=bg_color, shapes=shapes)

    def load_image(self, image_id: int) -> np.ndarray:
        """Renders the image from its spec.

        Returns:
            image: uint8 [H, W, 3].
        """
        info = self._image(image_id)
        if info["source"] != SOURCE:
            return super().load_image(image_id)
        return render(info["bg_color"], info["shapes"], info["height"], info["width"])

    def load_mask(self, image_id: int) -> tuple[np.ndarray, np.ndarray]:
        """One mask per visible shape, with the parts hidden by later shapes removed.

        Returns:
            masks: bool [H, W, N]; N may be smaller than the number of shapes
                because shapes that are completely hidden are dropped.
            class_ids: int32 [N], dataset class ids (needs `prepare()`).
        """
        info = self._image(image_id)
        if info["source"] != SOURCE:
            return super().load_mask(image_id)
        masks, visible = visible_masks(info["shapes"], info["height"], info["width"])
        class_ids = np.array([self.map_source_class_id(f"{SOURCE}.{SHAPES.index(name) + 1}")
                              for name, _, _ in info["shapes"]], dtype=np.int32)
        return masks, class_ids[visible]

    def image_reference(self, image_id: int) -> str:
        """The image's spec: its shapes as (name, colour, (y, x, s))."""
        info = self._image(image_id)
        if info["source"] != SOURCE:
            return super().image_reference(image_id)
        return str(info["shapes"])


def random_shape(rng: np.random.Generator, height: int, width: int
                 ) -> tuple[str, tuple[int, int, int], tuple[int, int, int]]:
    """A random shape spec ``(name, (r, g, b), (y, x, s))`` that fits the image."""
    name = SHAPES[rng.integers(len(SHAPES))]
    color = tuple(int(c) for c in rng.integers(0, 256, size=3))
    y = int(rng.integers(BUFFER, height - BUFFER))
    x = int(rng.integers(BUFFER, width - BUFFER))
    s = int(rng.integers(BUFFER, height // 4 + 1))
    return name, color, (y, x, s)


def random_image(rng: np.random.Generator, height: int, width: int
                 ) -> tuple[tuple[int, int, int], list]:
    """A random background colour and 1-4 shapes whose boxes overlap little.

    Returns:
        bg_color: (r, g, b).
        shapes: list of ``(name, (r, g, b), (y, x, s))``.
    """
    bg_color = tuple(int(c) for c in rng.integers(0, 256, size=3))
    shapes = [random_shape(rng, height, width) for _ in range(rng.integers(1, 5))]
    boxes = np.array([[y - s, x - s, y + s, x + s] for _, _, (y, x, s) in shapes],
                     dtype=np.float32)
    # Later shapes score higher: NMS keeps them and drops the ones they overlap.
    keep = non_max_suppression(boxes, np.arange(len(shapes), dtype=np.float32), MAX_OVERLAP)
    return bg_color, [shapes[i] for i in sorted(keep)]


def render(bg_color, shapes: list, height: int, width: int, mask_of=None) -> np.ndarray:
    """Draws shape specs ``(name, (r, g, b), dims)`` in order, later ones on top.

    Args:
        bg_color: (r, g, b) background.
        shapes: the specs.
        height, width: image size.
        mask_of: ``(name, dims, height, width) -> [H, W] bool``; default :func:`shape_mask`.

    Returns:
        uint8 [H, W, 3] image.
    """
    mask_of = mask_of or shape_mask
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = bg_color
    for name, color, dims in shapes:
        image[mask_of(name, dims, height, width)] = color
    return image


def visible_masks(shapes: list, height: int, width: int, mask_of=None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The visible part of each shape of :func:`render`'s drawing.

    Args:
        shapes, height, width, mask_of: as :func:`render`.

    Returns:
        masks: bool [H, W, N] of the shapes with a visible pixel, the parts hidden by
            later shapes removed; visible: int [N] their indices in `shapes`.
    """
    mask_of = mask_of or shape_mask
    masks = np.stack([mask_of(name, dims, height, width) for name, _, dims in shapes],
                     axis=-1)
    # Walk from the top shape down, removing what the shapes above cover.
    covered = np.zeros((height, width), dtype=bool)
    for i in reversed(range(masks.shape[-1])):
        masks[..., i] &= ~covered
        covered |= masks[..., i]
    visible = np.flatnonzero(masks.any(axis=(0, 1)))
    return masks[..., visible], visible


def shape_mask(name: str, dims: tuple[int, int, int], height: int, width: int) -> np.ndarray:
    """Pixels covered by one shape.

    Args:
        name: "square", "circle" or "triangle".
        dims: (y, x, s): centre and size (half side, radius, or apex height).
        height, width: image size.

    Returns:
        mask: bool [height, width].
    """
    y, x, s = dims
    mask = np.zeros((height, width), dtype=bool)
    if name == "square":
        rows, cols = skimage.draw.rectangle((y - s, x - s), end=(y + s, x + s),
                                            shape=(height, width))
    elif name == "circle":
        rows, cols = skimage.draw.disk((y, x), s, shape=(height, width))
    elif name == "triangle":
        half_base = s / math.sin(math.radians(60))
        rows, cols = skimage.draw.polygon([y - s, y + s, y + s],
                                          [x, x - half_base, x + half_base],
                                          shape=(height, width))
    else:
        raise ValueError(f"unknown shape {name!r}; expected one of {SHAPES}")
    mask[rows, cols] = True
    return mask
