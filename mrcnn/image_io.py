"""The one image reader: files and arrays to the pixels the model takes.

Every path into the network goes through here (``Dataset.load_image``, ``CocoDataset``,
``load_image_gt``, ``MaskRCNN.detect`` and the ``mrcnn`` command), so a model trained on
some kind of image sees the same values when it detects on it. The policy:

- grayscale ``[H, W]`` or ``[H, W, 1]`` is repeated to three channels, RGBA loses its alpha
  (both only for a 3-channel model);
- 16-bit values are mapped onto 0..255: ``round(value / 257)``, so 65535 becomes 255;
- uint8 is kept, as are other integer types whose values all lie in 0..255;
- floating-point images are taken as they are when every value lies in 0..255;
- anything else raises: a channel count other than the model's, an image smaller than
  2 x 2, non-finite values, values outside 0..255, an unreadable or missing file. The
  message names the file (or the image's index in a list) and the fix.

Shapes: H, W image height and width; C channels.
"""
from __future__ import annotations

import os

import numpy as np

__all__ = ["ImageReadError", "UINT16_TO_UINT8", "read_raw_image", "to_model_image",
           "read_image"]

# 16-bit images are mapped onto 0..255 by this factor (65535 / 255).
UINT16_TO_UINT8 = 257
# Smallest height and width the pipeline can resize and pad meaningfully.
MIN_IMAGE_SIZE = 2


class ImageReadError(OSError):
    """An image file that is missing or cannot be decoded.

    The only error of the reader that the training generator skips: everything else
    (a channel count, a pixel range) is a property of the data to fix, not a bad file.
    """


def read_raw_image(path: str | os.PathLike) -> np.ndarray:
    """Decodes an image file, values and dtype as stored.

    Raises:
        ImageReadError: the file is missing or cannot be decoded; the message names it.
    """
    # skimage is imported here so that `import mrcnn` stays light.
    import skimage.io

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ImageReadError(f"image file {path} does not exist (check the path given to "
                             "add_image or the dataset folder)")
    try:
        return np.asarray(skimage.io.imread(path))
    except Exception as err:  # imageio's plugins raise many types for a bad file
        raise ImageReadError(f"cannot read image file {path}: {type(err).__name__}: {err}. "
                             "Is it a complete image file (PNG, JPEG, TIFF, ...)?") from err


def to_model_image(image, source: str, channels: int = 3) -> np.ndarray:
    """Applies the reader's policy (module docstring) to an image array.

    Args:
        image: [H, W] or [H, W, C'] array as read or made.
        source: what to call the image in an error: a file path, "image 3", ...
        channels: the model's IMAGE_CHANNEL_COUNT.

    Returns:
        [H, W, channels] uint8 for integer input, float32 (values 0..255) for float
        input. An input that already fits is returned as is (no copy).

    Raises:
        ValueError: the image cannot be made to fit; the message names `source`.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, np.newaxis]
    if image.ndim != 3:
        raise ValueError(f"{source}: array of shape {image.shape} is not an image; pass "
                         f"[height, width] or [height, width, {channels}] arrays")
    if image.shape[0] < MIN_IMAGE_SIZE or image.shape[1] < MIN_IMAGE_SIZE:
        raise ValueError(f"{source}: the image is {image.shape[1]}x{image.shape[0]} pixels "
                         f"(width x height); it must be at least {MIN_IMAGE_SIZE}x"
                         f"{MIN_IMAGE_SIZE}. Remove the empty image from the data")
    if channels == 3 and image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    elif channels == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    if image.shape[2] != channels:
        raise ValueError(
            f"{source}: {image.shape[2]} channels (array shape {image.shape}), but the "
            f"model takes {channels} (IMAGE_CHANNEL_COUNT={channels}). Convert the image "
            "(grayscale, RGB and RGBA are converted automatically for 3 channels) or set "
            "IMAGE_CHANNEL_COUNT and MEAN_PIXEL to match the data")
    return _to_model_values(image, source)


def _to_model_values(image: np.ndarray, source: str) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return np.round(image / UINT16_TO_UINT8).astype(np.uint8)
    if np.issubdtype(image.dtype, np.floating):
        finite = np.isfinite(image)
        if not finite.all():
            raise ValueError(f"{source}: {finite.size - np.count_nonzero(finite)} pixel values "
                             "are NaN or infinite; replace them before passing the image")
        _check_range(image, source)
        return image.astype(np.float32, copy=False)
    if np.issubdtype(image.dtype, np.integer):
        _check_range(image, source)
        return image.astype(np.uint8)
    raise ValueError(f"{source}: pixel type {image.dtype} is not supported; use 8- or "
                     "16-bit integers, or floats in 0..255")


def _check_range(image: np.ndarray, source: str) -> None:
    low, high = image.min(), image.max()
    if low < 0 or high > 255:
        raise ValueError(f"{source}: {image.dtype} values span {low}..{high}; the model "
                         "takes values in 0..255 (uint8, uint16 is scaled automatically). "
                         "Rescale the image to 0..255")


def read_image(path: str | os.PathLike, channels: int = 3) -> np.ndarray:
    """Reads an image file under the reader's policy (module docstring).

    Args:
        path: the image file.
        channels: the model's IMAGE_CHANNEL_COUNT.

    Returns:
        [H, W, channels] uint8 (float32 in 0..255 for a floating-point file).

    Raises:
        ImageReadError: the file is missing or cannot be decoded.
        ValueError: its content does not fit the model (channels, size, values).
    """
    return to_model_image(read_raw_image(path), os.fspath(path), channels)
