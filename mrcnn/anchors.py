"""Anchor boxes of the feature pyramid, and the feature-map sizes they sit on.

Anchors are ``[A, (y1, x1, y2, x2)]`` float64 boxes in image pixels. An anchor is centred
on the top-left corner of its feature-map cell (``arange(0, shape) * stride``, no half-stride
offset) as in the classic implementation; the pretrained RPN weights expect that placement.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

# The classic helpers, re-exported by mrcnn.utils; anchor_settings and config_anchors are
# this package's own.
__all__ = ["generate_anchors", "generate_pyramid_anchors", "compute_backbone_shapes"]


def generate_anchors(scales, ratios: Sequence[float], shape: Sequence[int],
                     feature_stride: int, anchor_stride: int) -> np.ndarray:
    """Anchors of one feature map.

    Args:
        scales: [S] anchor sides in pixels (a scalar counts as one), e.g. ``32``.
        ratios: [R] width/height ratios, e.g. ``[0.5, 1, 2]``.
        shape: (height, width) of the feature map in cells.
        feature_stride: image pixels per feature-map cell.
        anchor_stride: feature-map cells between anchor positions.

    Returns:
        [positions * S * R, (y1, x1, y2, x2)] anchors, ordered by position (rows, then
        columns), then by ratio, then by scale.
    """
    scales, ratios = np.meshgrid(np.array(scales), np.array(ratios))
    scales = scales.flatten()
    ratios = ratios.flatten()
    # Equal area for every ratio: h * w = scale².
    heights = scales / np.sqrt(ratios)
    widths = scales * np.sqrt(ratios)

    shifts_y = np.arange(0, shape[0], anchor_stride) * feature_stride
    shifts_x = np.arange(0, shape[1], anchor_stride) * feature_stride
    centers_x, centers_y = np.meshgrid(shifts_x, shifts_y)
    # [positions, 1] against [1, shapes]: one row per position, one column per shape.
    centers_y = centers_y.reshape(-1, 1)
    centers_x = centers_x.reshape(-1, 1)
    half_h = 0.5 * heights[None, :]
    half_w = 0.5 * widths[None, :]
    boxes = np.stack([centers_y - half_h, centers_x - half_w,
                      centers_y + half_h, centers_x + half_w], axis=-1)
    return boxes.reshape(-1, 4)


def generate_pyramid_anchors(scales: Sequence[float], ratios: Sequence[float],
                             feature_shapes, feature_strides: Sequence[int],
                             anchor_stride: int) -> np.ndarray:
    """Anchors of every pyramid level, one scale per level.

    Args:
        scales: [L] anchor side per level, e.g. ``(32, 64, 128, 256, 512)``.
        ratios: [R] width/height ratios shared by all levels.
        feature_shapes: [L, (height, width)] feature-map sizes, from
            :func:`compute_backbone_shapes`.
        feature_strides: [L] image pixels per cell of each level.
        anchor_stride: feature-map cells between anchor positions.

    Returns:
        [A, (y1, x1, y2, x2)] anchors of P2..P6 concatenated in level order, the order of
        the RPN outputs.
    """
    return np.concatenate([
        generate_anchors(scale, ratios, shape, stride, anchor_stride)
        for scale, shape, stride in zip(scales, feature_shapes, feature_strides)
    ], axis=0)


def compute_backbone_shapes(config, image_shape: Sequence[int]) -> np.ndarray:
    """Feature-map size of each pyramid level.

    Args:
        config: a ``Config``; uses ``BACKBONE``, ``BACKBONE_STRIDES`` and, for a callable
            backbone, ``COMPUTE_BACKBONE_SHAPE``.
        image_shape: (height, width, ...) of the molded input image.

    Returns:
        [L, (height, width)] ``ceil(image side / stride)`` per stride, or whatever
        ``COMPUTE_BACKBONE_SHAPE(image_shape)`` returns for a callable backbone.
    """
    if callable(config.BACKBONE):
        return config.COMPUTE_BACKBONE_SHAPE(image_shape)
    return np.array([[int(math.ceil(image_shape[0] / stride)),
                      int(math.ceil(image_shape[1] / stride))]
                     for stride in config.BACKBONE_STRIDES])


def anchor_settings(config, image_shape: Sequence[int]) -> dict:
    """The :func:`generate_pyramid_anchors` arguments of a config, for one molded image shape.

    The one recipe from config to anchors: the input pipeline, the training graph and
    ``detect()`` all build their anchors from it.

    Args:
        config: a ``Config``; uses ``RPN_ANCHOR_SCALES``, ``RPN_ANCHOR_RATIOS``,
            ``BACKBONE_STRIDES``, ``RPN_ANCHOR_STRIDE`` and the backbone settings.
        image_shape: (height, width, ...) of the molded image.

    Returns:
        dict with ``scales``, ``ratios``, ``feature_shapes``, ``feature_strides`` and
        ``anchor_stride``.
    """
    return {"scales": tuple(config.RPN_ANCHOR_SCALES), "ratios": tuple(config.RPN_ANCHOR_RATIOS),
            "feature_shapes": compute_backbone_shapes(config, image_shape),
            "feature_strides": tuple(config.BACKBONE_STRIDES),
            "anchor_stride": config.RPN_ANCHOR_STRIDE}


def config_anchors(config, image_shape: Sequence[int]) -> np.ndarray:
    """[A, (y1, x1, y2, x2)] pixel anchors of a config for one molded image shape."""
    return generate_pyramid_anchors(**anchor_settings(config, image_shape))
