"""ResNet backbones with the classic layer names.

ResNet-50 / ResNet-101 are Caffe-style ResNet v1 bottleneck networks: the
stride sits on the first 1x1 convolution of a block
(``res{stage}{block}_branch2a``) and every convolution has a bias, as in the
classic weight files and the ImageNet ResNet-50 file they were started from.
ResNet-18 / ResNet-34 use the two-convolution basic block (stride on the first
3x3): lighter backbones for small data or training from scratch, named in the
same scheme so that the ``layers`` presets of ``train()`` apply to them too.
"""
from __future__ import annotations

import keras
from keras import layers

from mrcnn.graph.layers import BatchNorm

# Blocks in stages 2..5.
STAGE_BLOCKS = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3),
                "resnet50": (3, 4, 6, 3), "resnet101": (3, 4, 23, 3)}
BASIC_BLOCK_NETWORKS = ("resnet18", "resnet34")


def _bottleneck(x, filters: tuple[int, int, int], stage: int, block: str,
                strides: int, shortcut_conv: bool, train_bn: bool | None,
                kernel_size: int = 3, use_bias: bool = True):
    """One bottleneck block: 1x1 -> 3x3 -> 1x1, plus the shortcut.

    Args:
        x: [B, H, W, C_in] input features.
        filters: channels of the three convolutions.
        stage: stage number (2..5), used in the layer names.
        block: block letter ("a", "b", ...), used in the layer names.
        strides: stride of the first 1x1 convolution and of the shortcut.
        shortcut_conv: True for the first block of a stage (projection shortcut).
        train_bn: BatchNorm mode, see ``BatchNorm``.
        kernel_size: of the middle convolution.
        use_bias: the convolutions have biases (the classic weights do).

    Returns:
        [B, H / strides, W / strides, filters[2]] features.
    """
    conv_name = f"res{stage}{block}_branch"
    bn_name = f"bn{stage}{block}_branch"
    shortcut = x
    y = layers.Conv2D(filters[0], 1, strides=strides, use_bias=use_bias,
                      name=conv_name + "2a")(x)
    y = BatchNorm(train_bn, name=bn_name + "2a")(y)
    y = layers.Activation("relu")(y)
    y = layers.Conv2D(filters[1], kernel_size, padding="same", use_bias=use_bias,
                      name=conv_name + "2b")(y)
    y = BatchNorm(train_bn, name=bn_name + "2b")(y)
    y = layers.Activation("relu")(y)
    y = layers.Conv2D(filters[2], 1, use_bias=use_bias, name=conv_name + "2c")(y)
    y = BatchNorm(train_bn, name=bn_name + "2c")(y)
    if shortcut_conv:
        shortcut = layers.Conv2D(filters[2], 1, strides=strides, use_bias=use_bias,
                                 name=conv_name + "1")(x)
        shortcut = BatchNorm(train_bn, name=bn_name + "1")(shortcut)
    y = layers.Add()([y, shortcut])
    return layers.Activation("relu", name=f"res{stage}{block}_out")(y)


def _basic_block(x, filters: int, stage: int, block: str, strides: int,
                 shortcut_conv: bool, train_bn: bool | None):
    """One basic block: 3x3 -> 3x3, plus the shortcut (ResNet-18/34).

    Args:
        x: [B, H, W, C_in] input features.
        filters: channels of both convolutions.
        stage, block, strides, shortcut_conv, train_bn: as in ``_bottleneck``.

    Returns:
        [B, H / strides, W / strides, filters] features.
    """
    conv_name = f"res{stage}{block}_branch"
    bn_name = f"bn{stage}{block}_branch"
    shortcut = x
    y = layers.Conv2D(filters, 3, strides=strides, padding="same", name=conv_name + "2a")(x)
    y = BatchNorm(train_bn, name=bn_name + "2a")(y)
    y = layers.Activation("relu")(y)
    y = layers.Conv2D(filters, 3, padding="same", name=conv_name + "2b")(y)
    y = BatchNorm(train_bn, name=bn_name + "2b")(y)
    if shortcut_conv:
        shortcut = layers.Conv2D(filters, 1, strides=strides, name=conv_name + "1")(x)
        shortcut = BatchNorm(train_bn, name=bn_name + "1")(shortcut)
    y = layers.Add()([y, shortcut])
    return layers.Activation("relu", name=f"res{stage}{block}_out")(y)


def _stage(x, architecture: str, stage: int, strides: int, train_bn):
    """All blocks of one stage; the first one projects the shortcut."""
    width = 64 * 2 ** (stage - 2)
    blocks = STAGE_BLOCKS[architecture][stage - 2]
    for i in range(blocks):
        block = chr(ord("a") + i)
        stride = strides if i == 0 else 1
        if architecture in BASIC_BLOCK_NETWORKS:
            # Stage 2 of ResNet-18/34 keeps its 64 channels: no projection needed.
            x = _basic_block(x, width, stage, block, stride, i == 0 and stage > 2, train_bn)
        else:
            x = _bottleneck(x, (width, width, 4 * width), stage, block, stride, i == 0,
                            train_bn)
    return x


def resnet_graph(input_image: keras.KerasTensor, architecture: str,
                 stage5: bool = True, train_bn: bool | None = False) -> list:
    """Builds the ResNet feature extractor.

    Args:
        input_image: [B, H, W, C] molded image (H and W divisible by 64).
        architecture: "resnet18", "resnet34", "resnet50" or "resnet101".
        stage5: build stage 5 (C5); without it C5 is None.
        train_bn: BatchNorm mode, see ``BatchNorm``.

    Returns:
        [C1, C2, C3, C4, C5] feature maps with strides 4, 4, 8, 16, 32 and
        64, 256, 512, 1024, 2048 channels (ResNet-18/34: 64, 64, 128, 256, 512).
    """
    if architecture not in STAGE_BLOCKS:
        raise ValueError(f"Unknown backbone {architecture!r}; use one of "
                         f"{sorted(STAGE_BLOCKS)} or a callable.")
    x = layers.ZeroPadding2D(3)(input_image)
    x = layers.Conv2D(64, 7, strides=2, name="conv1")(x)
    x = BatchNorm(train_bn, name="bn_conv1")(x)
    x = layers.Activation("relu")(x)
    c1 = x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
    c2 = x = _stage(x, architecture, 2, 1, train_bn)
    c3 = x = _stage(x, architecture, 3, 2, train_bn)
    c4 = x = _stage(x, architecture, 4, 2, train_bn)
    c5 = _stage(x, architecture, 5, 2, train_bn) if stage5 else None
    return [c1, c2, c3, c4, c5]
