"""The augmentation protocols that ``augmentation=`` accepts, recognised without configuration.

Four kinds of object work as ``augmentation`` in ``MaskRCNN.train``, ``load_image_gt`` and the
data generators:

- an **imgaug** augmenter (anything with ``to_deterministic()`` and ``augment_image``), as in
  classic code: it is made deterministic once per image, applied to the image, then applied
  to the masks (as uint8) with hooks that let only the geometric augmenters named in
  :data:`MASK_AUGMENTERS` run, so that colour changes leave the masks alone;
- an **albumentations** transform (``A.Compose([...])`` or a single transform), called as
  ``transform(image=image, masks=[mask, ...])``; albumentations itself knows which of its
  transforms move masks;
- :class:`mrcnn.data.Augmenter`, or any callable with an ``rng`` parameter: called as
  ``augmentation(image, masks, rng=rng)`` so that the data generator's random stream makes
  the augmentation reproducible;
- any other callable ``(image, masks) -> (image, masks)``.

Shapes: ``image`` [h, w, C], ``masks`` bool [h, w, N] instance masks. The caller
(``mrcnn.data``) checks that shapes and the image dtype survive.
"""
from __future__ import annotations

import importlib
import inspect
import sys
from typing import Any

import numpy as np

# The imgaug augmenters that move pixels without changing their values: the only ones the
# masks go through (the classic list; container augmenters pass the decision to their
# children).
MASK_AUGMENTERS = ("Sequential", "SomeOf", "OneOf", "Sometimes", "Fliplr", "Flipud",
                   "CropAndPad", "Affine", "PiecewiseAffine")

IMGAUG, ALBUMENTATIONS, WITH_RNG, CALLABLE = "imgaug", "albumentations", "with rng", "callable"


def augmentation_kind(augmentation: Any) -> str:
    """Which protocol ``augmentation`` follows.

    Args:
        augmentation: the object passed as ``augmentation=``.

    Returns:
        "imgaug", "albumentations", "with rng" (a callable taking ``rng=``, e.g.
        :class:`mrcnn.data.Augmenter`) or "callable".

    Raises:
        TypeError: the object follows none of them, or is a class rather than an instance.
    """
    if isinstance(augmentation, type):
        raise TypeError(
            f"augmentation is the class {augmentation.__name__}, not an augmenter: pass an "
            f"instance, e.g. {augmentation.__name__}().")
    if callable(getattr(augmentation, "to_deterministic", None)) and callable(
            getattr(augmentation, "augment_image", None)):
        return IMGAUG
    if any(cls.__module__.split(".")[0] == "albumentations"
           for cls in type(augmentation).__mro__):
        return ALBUMENTATIONS
    if callable(augmentation):
        try:
            parameters = inspect.signature(augmentation).parameters
        except (TypeError, ValueError):  # some builtins have no signature
            return CALLABLE
        return WITH_RNG if "rng" in parameters else CALLABLE
    raise TypeError(
        f"augmentation {augmentation!r} is not an augmenter: pass an imgaug augmenter, an "
        "albumentations transform, an mrcnn.data.Augmenter, or a callable "
        "(image, masks) -> (image, masks).")


def apply_augmentation(augmentation: Any, image: np.ndarray, masks: np.ndarray,
                       rng: np.random.Generator | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Augments one image and its instance masks with any supported augmenter.

    Args:
        augmentation: an object of one of the kinds of :func:`augmentation_kind`.
        image: [h, w, C] image.
        masks: bool [h, w, N] instance masks.
        rng: random generator, passed to augmenters that take ``rng``; the others draw
            from their own random state.

    Returns:
        The augmented image [h', w', C] and masks [h', w', N] as the augmenter returns
        them (the masks as uint8 or bool); the caller checks the shapes.

    Raises:
        TypeError: ``augmentation`` is no augmenter. Whatever the augmenter raises
        propagates unchanged.
    """
    kind = augmentation_kind(augmentation)
    if kind == IMGAUG:
        return _apply_imgaug(augmentation, image, masks)
    if kind == ALBUMENTATIONS:
        return _apply_albumentations(augmentation, image, masks)
    if kind == WITH_RNG:
        return augmentation(image, masks, rng=rng)
    return augmentation(image, masks)


def _apply_imgaug(augmenter, image: np.ndarray, masks: np.ndarray):
    # One deterministic copy per image: the image and its masks get the same draws.
    deterministic = augmenter.to_deterministic()
    image = deterministic.augment_image(image)
    if masks.shape[-1] == 0:
        return image, masks
    hooks = _imgaug_hooks_class(augmenter)(activator=_geometric_only)
    return image, deterministic.augment_image(masks.astype(np.uint8), hooks=hooks)


def _geometric_only(images, augmenter, parents, default) -> bool:
    """imgaug hook activator: run only the mask-safe augmenters on the masks."""
    return type(augmenter).__name__ in MASK_AUGMENTERS


def _imgaug_hooks_class(augmenter):
    """``HooksImages`` of the library that defined ``augmenter`` (imgaug, or a look-alike).

    Looked up along the augmenter's module path (``imgaug.augmenters.flip`` ->
    ``imgaug.augmenters`` -> ``imgaug``), so that mrcnn needs no imgaug import of its own
    (imgaug 0.4 does not import on numpy 2).
    """
    module_path = type(augmenter).__module__.split(".")
    for end in range(len(module_path), 0, -1):
        name = ".".join(module_path[:end])
        module = sys.modules.get(name) or importlib.import_module(name)
        if hasattr(module, "HooksImages"):
            return module.HooksImages
    raise TypeError(f"{augmenter!r} looks like an imgaug augmenter, but no HooksImages was "
                    f"found in {type(augmenter).__module__} or its parent packages.")


def _apply_albumentations(transform, image: np.ndarray, masks: np.ndarray):
    instance_masks = [masks[:, :, i].astype(np.uint8) for i in range(masks.shape[-1])]
    result = transform(image=image, masks=instance_masks)
    new_image = np.asarray(result["image"])
    if not instance_masks:
        return new_image, np.zeros(new_image.shape[:2] + (0,), dtype=bool)
    return new_image, np.stack([np.asarray(m) for m in result["masks"]], axis=-1)
