"""Image and mask preparation: resize/pad/crop, mini-masks, molding.

The image meta lives in :mod:`mrcnn.image_meta` (re-exported here).

Shape shorthand: ``H, W`` image height and width, ``C`` channels, ``N`` instances. Boxes are
``(y1, x1, y2, x2)`` in pixels with exclusive ``y2``/``x2``. Masks are ``[H, W, N]`` with one
channel per instance.
"""
from __future__ import annotations

import random
import warnings
from typing import Sequence

import numpy as np
import scipy.ndimage
import skimage.transform

from mrcnn.config import IMAGE_DIVISOR, RESIZE_MODES, divisible_size
# The image meta has its own module; these names stay importable from here.
from mrcnn.image_meta import compose_image_meta, parse_image_meta  # noqa: F401

__all__ = [
    "resize", "resize_image", "resize_mask", "minimize_mask", "expand_mask", "box_mask",
    "unmold_mask", "mold_image", "unmold_image", "compose_image_meta", "parse_image_meta", "to_rgb",
]


def resize(image: np.ndarray, output_shape: Sequence[int], order: int = 1,
           mode: str = "constant", cval: float = 0, clip: bool = True,
           preserve_range: bool = False, anti_aliasing: bool = False,
           anti_aliasing_sigma=None) -> np.ndarray:
    """``skimage.transform.resize`` with the classic defaults (no anti-aliasing).

    Boolean input is resized as float32 0/1 values when ``order > 0``: scikit-image no
    longer interpolates bool arrays, and the masks are meant to be blended then rounded.

    Args:
        image: [H, W] or [H, W, C] image.
        output_shape: (height, width) of the result (channels are kept).
        order: spline order, 0 nearest, 1 bilinear.
        mode: how to fill outside the image (``"constant"``, ``"edge"``, ...).
        cval: fill value for ``mode="constant"``.
        clip: clip the result to the input range.
        preserve_range: keep the input value range instead of scaling integers to [0, 1].
        anti_aliasing: Gaussian-smooth before downscaling.
        anti_aliasing_sigma: the smoothing sigma; None picks it from the scale.

    Returns:
        [height, width] or [height, width, C] resized image (float for ``order > 0``).
    """
    if image.dtype == bool and order != 0:
        image = image.astype(np.float32)
    return skimage.transform.resize(
        image, output_shape, order=order, mode=mode, cval=cval, clip=clip,
        preserve_range=preserve_range, anti_aliasing=anti_aliasing,
        anti_aliasing_sigma=anti_aliasing_sigma)


def _centered_pad(size: int, target: int):
    """(before, after) padding that centres ``size`` pixels in ``target`` pixels."""
    before = (target - size) // 2
    return before, target - size - before


def resize_image(image: np.ndarray, min_dim: int | None = None, max_dim: int | None = None,
                 min_scale: float | None = None, mode: str = "square"):
    """Resize an image keeping its aspect ratio, then pad or crop it to the model's size.

    Modes:
        ``"none"``: unchanged.
        ``"square"``: scale up so the short side is at least ``min_dim`` (and the scale at
        least ``min_scale``), but down so the long side is at most ``max_dim``; then zero-pad,
        centred, to ``max_dim x max_dim``.
        ``"pad64"``: scale as above without the ``max_dim`` cap, then zero-pad, centred, each
        side to a multiple of 64. ``min_dim`` must be a multiple of 64.
        ``"crop"``: scale as above, then take a random ``min_dim x min_dim`` crop
        (``random.randint``; training only).

    Args:
        image: [H, W, C] or [H, W] image.
        min_dim: smallest short side after scaling (square, pad64) or crop size (crop).
        max_dim: largest long side and padded size (square).
        min_scale: smallest scale factor.
        mode: one of ``"none"``, ``"square"``, ``"pad64"``, ``"crop"``.

    Returns:
        image: [h, w, C] (or [h, w]) resized image in the input dtype.
        window: (y1, x1, y2, x2) of the image content inside the result, in pixels.
        scale: factor applied to the image.
        padding: [(top, bottom), (left, right), (0, 0)] zero padding added.
        crop: (y, x, h, w) of the crop in the scaled image, or None.

    Raises:
        ValueError: for an unknown mode, or a missing or unusable ``min_dim``/``max_dim``.
    """
    if mode not in RESIZE_MODES:
        raise ValueError(f"Unknown resize mode {mode!r}; use one of {', '.join(RESIZE_MODES)}")
    image_dtype = image.dtype
    h, w = image.shape[:2]
    window = (0, 0, h, w)
    scale = 1
    padding = [(0, 0), (0, 0), (0, 0)]
    crop = None
    if mode == "none":
        return image, window, scale, padding, crop
    if mode == "square" and not max_dim:
        raise ValueError("Resize mode 'square' needs max_dim (IMAGE_MAX_DIM)")
    if mode == "pad64" and (min_dim is None or divisible_size(min_dim) != min_dim):
        raise ValueError(f"Resize mode 'pad64' needs min_dim (IMAGE_MIN_DIM) to be a multiple "
                         f"of {IMAGE_DIVISOR}, got {min_dim}")
    if mode == "crop" and not min_dim:
        raise ValueError("Resize mode 'crop' needs min_dim (IMAGE_MIN_DIM), the crop size")

    if min_dim:
        # Scale up but not down.
        scale = max(1, min_dim / min(h, w))
    if min_scale and scale < min_scale:
        scale = min_scale
    if max_dim and mode == "square":
        image_max = max(h, w)
        if round(image_max * scale) > max_dim:
            scale = max_dim / image_max
    if scale != 1:
        image = resize(image, (round(h * scale), round(w * scale)), preserve_range=True)
    h, w = image.shape[:2]

    if mode == "square":
        top, bottom = _centered_pad(h, max_dim)
        left, right = _centered_pad(w, max_dim)
    elif mode == "pad64":
        top, bottom = _centered_pad(h, divisible_size(h))
        left, right = _centered_pad(w, divisible_size(w))
    else:  # crop; the scale above made the short side at least min_dim, so the crop fits.
        y = random.randint(0, h - min_dim)
        x = random.randint(0, w - min_dim)
        crop = (y, x, min_dim, min_dim)
        image = image[y:y + min_dim, x:x + min_dim]
        return image.astype(image_dtype), (0, 0, min_dim, min_dim), scale, padding, crop

    padding = [(top, bottom), (left, right), (0, 0)]
    # A grayscale [H, W] image has no channel axis to pad.
    image = np.pad(image, padding[:image.ndim], mode="constant", constant_values=0)
    window = (top, left, h + top, w + left)
    return image.astype(image_dtype), window, scale, padding, crop


def resize_mask(mask: np.ndarray, scale: float, padding, crop=None) -> np.ndarray:
    """Apply the scale and padding (or crop) of :func:`resize_image` to instance masks.

    Args:
        mask: [H, W, N] masks.
        scale: factor from :func:`resize_image`.
        padding: [(top, bottom), (left, right), (0, 0)] from :func:`resize_image`.
        crop: (y, x, h, w) from :func:`resize_image`, or None to pad instead.

    Returns:
        [h, w, N] masks in the input dtype (nearest-neighbour scaling).
    """
    # zoom warns about its output-shape rounding on every call; the rounding is intended.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mask = scipy.ndimage.zoom(mask, zoom=[scale, scale, 1], order=0)
    if crop is not None:
        y, x, h, w = crop
        return mask[y:y + h, x:x + w]
    return np.pad(mask, padding, mode="constant", constant_values=0)


def minimize_mask(bbox: np.ndarray, mask: np.ndarray, mini_shape: Sequence[int]) -> np.ndarray:
    """Crop each mask to its box and shrink it to a small fixed size to save memory.

    Args:
        bbox: [N, (y1, x1, y2, x2)] int boxes of the masks.
        mask: [H, W, N] masks.
        mini_shape: (height, width) of the mini masks, e.g. (56, 56).

    Returns:
        [height, width, N] bool mini masks (bilinear resize, then rounded).

    Raises:
        ValueError: for a box with zero area.
    """
    mini_mask = np.zeros(tuple(mini_shape) + (mask.shape[-1],), dtype=bool)
    for i in range(mask.shape[-1]):
        y1, x1, y2, x2 = bbox[i][:4]
        # bool first: a uint8 mask of 0/255 must blend like 0/1.
        m = mask[:, :, i].astype(bool)[y1:y2, x1:x2]
        if m.size == 0:
            box = np.asarray(bbox[i][:4]).tolist()
            raise ValueError(f"Instance {i} has a box with zero area: {box}")
        mini_mask[:, :, i] = np.around(resize(m, mini_shape)).astype(bool)
    return mini_mask


def expand_mask(bbox: np.ndarray, mini_mask: np.ndarray, image_shape: Sequence[int]) -> np.ndarray:
    """Restore mini masks to full image masks (the inverse of :func:`minimize_mask`).

    Args:
        bbox: [N, (y1, x1, y2, x2)] int boxes of the masks in the image.
        mini_mask: [height, width, N] mini masks.
        image_shape: (H, W, ...) of the image.

    Returns:
        [H, W, N] bool masks; an instance with a zero-area box stays empty.
    """
    mask = np.zeros(tuple(image_shape[:2]) + (mini_mask.shape[-1],), dtype=bool)
    for i in range(mini_mask.shape[-1]):
        y1, x1, y2, x2 = bbox[i][:4]
        if y2 <= y1 or x2 <= x1:
            continue
        m = resize(mini_mask[:, :, i], (y2 - y1, x2 - x1))
        mask[y1:y2, x1:x2, i] = np.around(m).astype(bool)
    return mask


def box_mask(mask: np.ndarray, bbox: Sequence[int]) -> np.ndarray:
    """A predicted mask resized to its box and thresholded at 0.5.

    Args:
        mask: [h, w] float mask probabilities, e.g. 28 x 28.
        bbox: (y1, x1, y2, x2) int box with positive height and width.

    Returns:
        [y2 - y1, x2 - x1] bool mask of the box.
    """
    y1, x1, y2, x2 = bbox
    return resize(mask, (y2 - y1, x2 - x1)) >= 0.5


def unmold_mask(mask: np.ndarray, bbox: Sequence[int], image_shape: Sequence[int]) -> np.ndarray:
    """Paste a predicted mask of the mask head into a full-image mask.

    Args:
        mask: [h, w] float mask probabilities, e.g. 28 x 28.
        bbox: (y1, x1, y2, x2) int box of the detection in the image.
        image_shape: (H, W, ...) of the image.

    Returns:
        [H, W] bool mask: the mask resized to the box, thresholded at 0.5; all False for a
        box with no height or width.
    """
    y1, x1, y2, x2 = bbox
    full_mask = np.zeros(tuple(image_shape[:2]), dtype=bool)
    if y2 <= y1 or x2 <= x1:
        return full_mask
    full_mask[y1:y2, x1:x2] = box_mask(mask, bbox)
    return full_mask


def mold_image(images: np.ndarray, config) -> np.ndarray:
    """Network input from RGB images: subtract the mean pixel.

    Args:
        images: [..., C] images (any dtype).
        config: a ``Config``; uses ``MEAN_PIXEL`` [C].

    Returns:
        [..., C] float images (float64 with the default float64 ``MEAN_PIXEL``).
    """
    return images.astype(np.float32) - config.MEAN_PIXEL


def unmold_image(normalized_images: np.ndarray, config) -> np.ndarray:
    """RGB images from network input (the inverse of :func:`mold_image`).

    Args:
        normalized_images: [..., C] molded images.
        config: a ``Config``; uses ``MEAN_PIXEL`` [C].

    Returns:
        [..., C] uint8 images.
    """
    return (normalized_images + config.MEAN_PIXEL).astype(np.uint8)


def to_rgb(image: np.ndarray) -> np.ndarray:
    """Three-channel version of an image as read from disk.

    Args:
        image: [H, W] or [H, W, 1] grayscale, [H, W, 3] RGB, or [H, W, 4] RGBA image.

    Returns:
        [H, W, 3] image in the input dtype: gray replicated to three channels, alpha dropped.

    Raises:
        ValueError: for any other shape.
    """
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim == 3 and image.shape[-1] == 1:
        return np.repeat(image, 3, axis=-1)
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        return image[:, :, :3]
    raise ValueError(f"Expected a grayscale, RGB or RGBA image of shape [H, W], [H, W, 1], "
                     f"[H, W, 3] or [H, W, 4]; got shape {image.shape}")
