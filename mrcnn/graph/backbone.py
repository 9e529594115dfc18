"""ResNet-50 / ResNet-101 backbone with the classic layer names.

Caffe-style ResNet v1: the stride sits on the first 1x1 convolution of a
block (``res{stage}{block}_branch2a``) and every convolution has a bias, as in
the classic weight files and the ImageNet ResNet-50 file they were started from.
"""
from __future__ import annotations

import keras
from keras import layers

from mrcnn.graph.layers import BatchNorm

# Identity blocks after the first (conv) block of stage 4.
STAGE4_IDENTITY_BLOCKS = {"resnet50": 5, "resnet101": 22}


def _bottleneck(x, filters: tuple[int, int, int], stage: int, block: str,
                strides: int, shortcut_conv: bool, train_bn: bool | None):
    """One bottleneck block: 1x1 -> 3x3 -> 1x1, plus the shortcut.

    Args:
        x: [B, H, W, C_in] input features.
        filters: channels of the three convolutions.
        stage: stage number (2..5), used in the layer names.
        block: block letter ("a", "b", ...), used in the layer names.
        strides: stride of the first 1x1 convolution and of the shortcut.
        shortcut_conv: True for the first block of a stage (projection shortcut).
        train_bn: BatchNorm mode, see ``BatchNorm``.

    Returns:
        [B, H / strides, W / strides, filters[2]] features.
    """
    conv_name = f"res{stage}{block}_branch"
    bn_name = f"bn{stage}{block}_branch"
    shortcut = x
    y = layers.Conv2D(filters[0], 1, strides=strides, name=conv_name + "2a")(x)
    y = BatchNorm(train_bn, name=bn_name + "2a")(y)
    y = layers.Activation("relu")(y)
    y = layers.Conv2D(filters[1], 3, padding="same", name=conv_name + "2b")(y)
    y = BatchNorm(train_bn, name=bn_name + "2b")(y)
    y = layers.Activation("relu")(y)
    y = layers.Conv2D(filters[2], 1, name=conv_name + "2c")(y)
    y = BatchNorm(train_bn, name=bn_name + "2c")(y)
    if shortcut_conv:
        shortcut = layers.Conv2D(filters[2], 1, strides=strides, name=conv_name + "1")(x)
        shortcut = BatchNorm(train_bn, name=bn_name + "1")(shortcut)
    y = layers.Add()([y, shortcut])
    return layers.Activation("relu", name=f"res{stage}{block}_out")(y)


def _stage(x, filters, stage: int, blocks: int, strides: int, train_bn):
    x = _bottleneck(x, filters, stage, "a", strides, True, train_bn)
    for i in range(1, blocks):
        x = _bottleneck(x, filters, stage, chr(ord("a") + i), 1, False, train_bn)
    return x


def resnet_graph(input_image: keras.KerasTensor, architecture: str,
                 stage5: bool = True, train_bn: bool | None = False) -> list:
    """Builds the ResNet feature extractor.

    Args:
        input_image: [B, H, W, C] molded image (H and W divisible by 64).
        architecture: "resnet50" or "resnet101".
        stage5: build stage 5 (C5); without it C5 is None.
        train_bn: BatchNorm mode, see ``BatchNorm``.

    Returns:
        [C1, C2, C3, C4, C5] feature maps with strides 4, 4, 8, 16, 32 and
        64, 256, 512, 1024, 2048 channels.
    """
    if architecture not in STAGE4_IDENTITY_BLOCKS:
        raise ValueError(f"Unknown backbone {architecture!r}; use one of "
                         f"{sorted(STAGE4_IDENTITY_BLOCKS)} or a callable.")
    x = layers.ZeroPadding2D(3)(input_image)
    x = layers.Conv2D(64, 7, strides=2, name="conv1")(x)
    x = BatchNorm(train_bn, name="bn_conv1")(x)
    x = layers.Activation("relu")(x)
    c1 = x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
    c2 = x = _stage(x, (64, 64, 256), 2, 3, 1, train_bn)
    c3 = x = _stage(x, (128, 128, 512), 3, 4, 2, train_bn)
    c4 = x = _stage(x, (256, 256, 1024), 4, 1 + STAGE4_IDENTITY_BLOCKS[architecture], 2,
                    train_bn)
    c5 = _stage(x, (512, 512, 2048), 5, 3, 2, train_bn) if stage5 else None
    return [c1, c2, c3, c4, c5]
