"""SavedModel export: the whole of ``MaskRCNN.detect()`` as one TensorFlow graph.

The exported model takes a raw image and returns what ``detect()`` returns: resizing,
padding, molding, anchors, the network, box unmolding and mask pasting all run in the graph,
so the SavedModel loads and runs with TensorFlow alone (no ``mrcnn``, no Python callbacks).

Signatures of the SavedModel:

``serving_default``
    ``image``: uint8 ``[H, W, IMAGE_CHANNEL_COUNT]``, one image of any size (no batch axis).
    Returns, for the ``N`` detections of the image:
    ``rois`` int32 ``[N, (y1, x1, y2, x2)]`` pixels of the input image (y2, x2 exclusive),
    ``class_ids`` int32 ``[N]``, ``scores`` float32 ``[N]``,
    ``masks`` bool ``[H, W, N]`` at the input's size, and
    ``class_names`` string ``[N]``, the name of each detection's class, and, when the
    model has the association head (ASSOCIATION_EMBEDDING_SIZE = D), ``embeddings``
    float32 ``[N, D]``, unit rows, row i that of detection i (as ``detect()``'s).
``serving_any_channels`` (3-channel models only)
    The same for a uint8 ``[H, W, C]`` image with C = 1 (gray, replicated), 3, or 4 (RGBA,
    alpha dropped), the policy of ``mrcnn.images.to_rgb``; other channel counts raise
    InvalidArgumentError.

The numerics follow the numpy side value for value: the resize reproduces
``mrcnn.images.resize`` (scikit-image's bilinear zoom, pixel centres at half-integers, zeros
outside the image, no anti-aliasing, result truncated to the input dtype), the anchors are
those of ``mrcnn.anchors`` (centred on the cell corner), and the masks are pasted as
``mrcnn.images.box_mask`` does. The class names, background first, are also stored as the
asset ``assets/class_names.txt``, one per line.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from typing import Sequence

import keras
import tensorflow as tf

from mrcnn import config_presets
from mrcnn.anchors import generate_anchors
from mrcnn.config import IMAGE_DIVISOR, Config
from mrcnn.graph import box_ops

__all__ = ["export_saved_model", "check_export_dir", "detect_image", "resize_like_skimage",
           "resize_and_pad", "pyramid_anchors", "unmold_detections", "SERVING_SIGNATURE",
           "ANY_CHANNELS_SIGNATURE"]

SERVING_SIGNATURE = "serving_default"
ANY_CHANNELS_SIGNATURE = "serving_any_channels"
CLASS_NAMES_ASSET = "class_names.txt"
INFERENCE_INPUTS = ("input_image", "input_image_meta", "input_anchors")
EXPORTED_RESIZE_MODES = ("square", "pad64")


# ---------------------------------------------------------------------- pre-processing

def _linear_taps(in_size: tf.Tensor, out_size: tf.Tensor):
    """Source rows of a 1-D bilinear resize and their weights, as scipy.ndimage.zoom
    (grid_mode=True, order=1) computes them.

    Returns:
        index [out_size] int32 of the lower tap in the input padded by one zero on each
        side, and weights (low, high) [out_size] float64.
    """
    scale = tf.cast(in_size, tf.float64) / tf.cast(out_size, tf.float64)
    coords = (tf.range(out_size, dtype=tf.float64) + 0.5) * scale - 0.5
    low = tf.floor(coords)
    # scipy derives the last spline weight as 1 - the others: same rounding here.
    low_weight = 1.0 - (coords - low)
    return tf.cast(low, tf.int32) + 1, low_weight, 1.0 - low_weight


def resize_like_skimage(image: tf.Tensor, height: tf.Tensor, width: tf.Tensor) -> tf.Tensor:
    """Bilinear resize with the result of ``mrcnn.images.resize`` (scikit-image).

    tf.image.resize clamps samples at the border; scikit-image's ``mode="constant"``
    blends them with zeros, and differs in the last bit elsewhere. This computes the
    same float64 sums in the same order, so that the two agree bit for bit, then
    clips to the input's range as ``clip=True`` does (for the non-negative images
    and mask probabilities given here the zero fill never widens that range).

    Args:
        image: [H, W, C] image of any real dtype.
        height, width: int32 scalars, the output size.

    Returns:
        [height, width, C] float64 resized image.
    """
    padded = tf.pad(tf.cast(image, tf.float64), [[1, 1], [1, 1], [0, 0]])
    rows, row_low, row_high = _linear_taps(tf.shape(image)[0], height)
    cols, col_low, col_high = _linear_taps(tf.shape(image)[1], width)
    row_low, row_high = row_low[:, None, None], row_high[:, None, None]
    col_low, col_high = col_low[None, :, None], col_high[None, :, None]
    top, bottom = tf.gather(padded, rows), tf.gather(padded, rows + 1)
    # scipy's order: corners row-major, each value times the row then the column weight.
    resized = (((tf.gather(top, cols, axis=1) * row_low * col_low
                 + tf.gather(top, cols + 1, axis=1) * row_low * col_high)
                + tf.gather(bottom, cols, axis=1) * row_high * col_low)
               + tf.gather(bottom, cols + 1, axis=1) * row_high * col_high)
    # Border pixels blended with the zero fill come back up to the input's minimum.
    values = padded[1:-1, 1:-1]
    return tf.clip_by_value(resized, tf.reduce_min(values), tf.reduce_max(values))


def _centred_pad(size: tf.Tensor, target: tf.Tensor):
    before = (target - size) // 2
    return before, target - size - before


def resize_and_pad(image: tf.Tensor, mode: str, min_dim: int, max_dim: int,
                   min_scale: float):
    """``mrcnn.images.resize_image`` in the graph, for the "square" and "pad64" modes.

    Args:
        image: [H, W, C] uint8 image.
        mode, min_dim, max_dim, min_scale: IMAGE_RESIZE_MODE, IMAGE_MIN_DIM,
            IMAGE_MAX_DIM and IMAGE_MIN_SCALE.

    Returns:
        resized [h, w, C] uint8, window [(y1, x1, y2, x2)] int32 pixels of the image
        inside it, and scale, a float64 scalar.
    """
    if mode not in EXPORTED_RESIZE_MODES:
        raise ValueError(f"IMAGE_RESIZE_MODE {mode!r} cannot be exported; use 'square' or "
                         "'pad64', the inference modes.")
    size = tf.cast(tf.shape(image)[:2], tf.float64)
    scale = tf.constant(1.0, tf.float64)
    if min_dim:
        # Scale up but not down.
        scale = tf.maximum(scale, min_dim / tf.reduce_min(size))
    if min_scale:
        scale = tf.maximum(scale, float(min_scale))
    if mode == "square":
        longest = tf.reduce_max(size)
        scale = tf.where(tf.round(longest * scale) > max_dim, max_dim / longest, scale)
    new_size = tf.cast(tf.round(size * scale), tf.int32)
    height, width = new_size[0], new_size[1]
    image = tf.cond(
        tf.equal(scale, 1.0), lambda: image,
        # Truncation to uint8, as numpy's astype does after skimage's resize.
        lambda: tf.cast(resize_like_skimage(image, height, width), tf.uint8))
    if mode == "square":
        target_height = target_width = tf.constant(max_dim, tf.int32)
    else:
        # config.divisible_size in the graph: -size % D is the distance to the next
        # multiple of D.
        target_height = height + -height % IMAGE_DIVISOR
        target_width = width + -width % IMAGE_DIVISOR
    top, bottom = _centred_pad(height, target_height)
    left, right = _centred_pad(width, target_width)
    image = tf.pad(image, [[top, bottom], [left, right], [0, 0]])
    return image, tf.stack([top, left, top + height, left + width]), scale


def pyramid_anchors(image_shape: tf.Tensor, scales: Sequence[float], ratios: Sequence[float],
                    strides: Sequence[int], anchor_stride: int) -> tf.Tensor:
    """``mrcnn.anchors.generate_pyramid_anchors`` for a molded shape known only in the graph.

    The anchor shapes of each level come from the numpy generator (its anchors at the
    origin); the graph only lays them on the grid, at the cell corners
    (``arange(0, cells, anchor_stride) * stride``) in the numpy order: rows, columns,
    then shapes.

    Args:
        image_shape: [(height, width)] int32 of the molded image.
        scales, ratios, strides, anchor_stride: RPN_ANCHOR_SCALES, RPN_ANCHOR_RATIOS,
            BACKBONE_STRIDES and RPN_ANCHOR_STRIDE.

    Returns:
        [A, (y1, x1, y2, x2)] float64 anchors in pixels.
    """
    levels = []
    for scale, stride in zip(scales, strides):
        at_origin = tf.constant(generate_anchors(scale, ratios, (1, 1), stride, anchor_stride))
        # Feature map side: ceil(image side / stride), as anchors.compute_backbone_shapes.
        cells = -(-image_shape // stride)
        shifts_y = tf.cast(tf.range(0, cells[0], anchor_stride) * stride, tf.float64)
        shifts_x = tf.cast(tf.range(0, cells[1], anchor_stride) * stride, tf.float64)
        centres_y, centres_x = tf.meshgrid(shifts_y, shifts_x, indexing="ij")
        centres = tf.reshape(tf.stack([centres_y, centres_x, centres_y, centres_x], -1),
                             [-1, 1, 4])
        levels.append(tf.reshape(centres + at_origin[None], [-1, 4]))
    return tf.concat(levels, axis=0)


def _image_meta(original_shape, molded_shape, window, scale, num_classes: int):
    """``mrcnn.images.compose_image_meta`` of one image: [1, META] float32."""
    meta = tf.concat([tf.zeros([1]), tf.cast(original_shape, tf.float32),
                      tf.cast(molded_shape, tf.float32), tf.cast(window, tf.float32),
                      tf.cast(scale, tf.float32)[None], tf.zeros([num_classes])], axis=0)
    return meta[None]


# ---------------------------------------------------------------------- post-processing

def _paste_mask(mask: tf.Tensor, box: tf.Tensor, image_size: tf.Tensor) -> tf.Tensor:
    """``mrcnn.images.unmold_mask``: a [h, w] mask resized into its box of an image.

    Returns:
        [H, W] bool.
    """
    height, width = box[2] - box[0], box[3] - box[1]
    resized = resize_like_skimage(mask[:, :, None], height, width)[:, :, 0]
    # box_mask thresholds the float32 result of the resize.
    inside = tf.cast(resized, tf.float32) >= 0.5
    return tf.pad(inside, [[box[0], image_size[0] - box[2]], [box[1], image_size[1] - box[3]]])


def unmold_detections(detections: tf.Tensor, mrcnn_mask: tf.Tensor, original_shape: tf.Tensor,
                      molded_shape: tf.Tensor, window: tf.Tensor,
                      embeddings: tf.Tensor | None = None) -> dict:
    """``MaskRCNN.unmold_detections`` in the graph: pixel boxes and full-size masks.

    Args:
        detections: [max_instances, (y1, x1, y2, x2, class_id, score)] normalized
            boxes in the molded image, zero rows as padding.
        mrcnn_mask: [max_instances, mask_h, mask_w, NC] mask probabilities.
        original_shape: [(H, W)] int32 of the input image.
        molded_shape: [(h, w)] int32 of the molded image.
        window: [(y1, x1, y2, x2)] int32 pixels, the image inside the molded one.
        embeddings: None, or [max_instances, D] association embeddings.

    Returns:
        dict of rois [N, 4] int32, class_ids [N] int32, scores [N] float32, masks
        [H, W, N] bool and, with `embeddings`, embeddings [N, D] float32.
    """
    # The detections up to the first padding row.
    count = tf.reduce_sum(tf.math.cumprod(tf.cast(detections[:, 4] > 0, tf.int32)))
    class_ids = tf.cast(detections[:count, 4], tf.int32)
    scores = detections[:count, 5]
    masks = tf.gather(tf.transpose(mrcnn_mask[:count], [0, 3, 1, 2]), class_ids, batch_dims=1)

    # Normalized coordinates of the molded image -> of the window -> pixels.
    wy1, wx1, wy2, wx2 = tf.unstack(box_ops.norm_boxes(window, molded_shape))
    shift = tf.stack([wy1, wx1, wy1, wx1])
    scale = tf.stack([wy2 - wy1, wx2 - wx1, wy2 - wy1, wx2 - wx1])
    boxes = box_ops.denorm_boxes((detections[:count, :4] - shift) / scale, original_shape)
    # Rounding cannot carry a box past the image; the clip keeps the mask padding valid.
    boxes = box_ops.clip_boxes(boxes, tf.concat([[0, 0], original_shape], 0))

    # Boxes that shrank to nothing in the original image are dropped.
    keep = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) > 0
    boxes, class_ids = tf.boolean_mask(boxes, keep), tf.boolean_mask(class_ids, keep)
    scores, masks = tf.boolean_mask(scores, keep), tf.boolean_mask(masks, keep)
    full_masks = tf.cond(
        tf.size(class_ids) > 0,
        lambda: tf.map_fn(lambda args: _paste_mask(args[0], args[1], original_shape),
                          (masks, boxes), fn_output_signature=tf.TensorSpec([None, None], tf.bool)),
        # map_fn cannot stack zero masks of a size known only at run time.
        lambda: tf.zeros(tf.concat([[0], original_shape], 0), tf.bool))
    result = {"rois": boxes, "class_ids": class_ids, "scores": scores,
              "masks": tf.transpose(full_masks, [1, 2, 0])}
    if embeddings is not None:
        result["embeddings"] = tf.boolean_mask(tf.cast(embeddings[:count], tf.float32), keep)
    return result


# ---------------------------------------------------------------------- the SavedModel

def _check_exportable(keras_model: keras.Model, config: Config) -> None:
    inputs = tuple(t.name.split(":")[0] for t in keras_model.inputs)
    if inputs != INFERENCE_INPUTS:
        raise ValueError(
            f"Only an inference model can be exported; this one takes {', '.join(inputs)} "
            "(a training model?). Build MaskRCNN(mode='inference', config=..., model_dir=...), "
            "load the trained weights into it, and export that.")
    if config.IMAGE_RESIZE_MODE not in EXPORTED_RESIZE_MODES:
        raise ValueError(f"IMAGE_RESIZE_MODE is {config.IMAGE_RESIZE_MODE!r}; the exported "
                         "model resizes as the inference modes 'square' and 'pad64' do. Set "
                         "one of them in the inference config.")
    if callable(config.BACKBONE):
        raise ValueError("A callable BACKBONE cannot be exported: its COMPUTE_BACKBONE_SHAPE "
                         "is Python, and the exported graph computes the anchors itself.")


def detect_image(keras_model: keras.Model, config: Config, image: tf.Tensor) -> dict:
    """``MaskRCNN.detect([image])[0]`` as tensors: the body of ``serving_default``.

    Args:
        keras_model: the inference model.
        config: its Config.
        image: [H, W, IMAGE_CHANNEL_COUNT] uint8 image.

    Returns:
        dict of rois [N, 4] int32 pixels, class_ids [N] int32, scores [N] float32,
        masks [H, W, N] bool and, with the association head, embeddings [N, D] float32.
    """
    molded, window, scale = resize_and_pad(image, config.IMAGE_RESIZE_MODE,
                                           config.IMAGE_MIN_DIM, config.IMAGE_MAX_DIM,
                                           config.IMAGE_MIN_SCALE)
    molded_shape = tf.shape(molded)
    # As mrcnn.images.mold_image: float32 pixels minus the (float64) mean.
    molded = tf.cast(tf.cast(tf.cast(molded, tf.float32), tf.float64)
                     - tf.constant(config.MEAN_PIXEL, tf.float64), tf.float32)
    meta = _image_meta(tf.shape(image), molded_shape, window, scale, config.NUM_CLASSES)
    anchors = pyramid_anchors(molded_shape[:2], config.RPN_ANCHOR_SCALES,
                              config.RPN_ANCHOR_RATIOS, config.BACKBONE_STRIDES,
                              config.RPN_ANCHOR_STRIDE)
    anchors = box_ops.norm_boxes(anchors, molded_shape[:2])
    outputs = keras_model([molded[None], meta, anchors[None]], training=False)
    detections, mrcnn_mask = outputs[0], outputs[3]
    # The association head's embeddings are an eighth output when it is on.
    embeddings = outputs[7][0] if len(outputs) > 7 else None
    return unmold_detections(detections[0], mrcnn_mask[0], tf.shape(image)[:2],
                             molded_shape[:2], window, embeddings)


def _to_rgb(image: tf.Tensor) -> tf.Tensor:
    """``mrcnn.images.to_rgb`` of a uint8 [H, W, C] image, C in 1, 3, 4."""
    channels = tf.shape(image)[2]
    check = tf.debugging.Assert(
        tf.reduce_any(tf.equal(channels, [1, 3, 4])),
        ["The image must have 1 (gray), 3 (RGB) or 4 (RGBA) channels; it has", channels])
    with tf.control_dependencies([check]):
        rgb = tf.cond(tf.equal(channels, 1), lambda: tf.tile(image, [1, 1, 3]),
                      lambda: image[:, :, :3])
    return tf.ensure_shape(rgb, [None, None, 3])


class _DetectionModule(tf.Module):
    """The exported object: the model's variables, the class names and the signatures.

    Only the variables are tracked, not the Keras model: tracking it would serialize
    every layer object, which a SavedModel user never needs, at several times the cost.
    """

    def __init__(self, keras_model: keras.Model, config: Config, class_names: Sequence[str],
                 names_file: str):
        super().__init__(name="mask_rcnn")
        self.model_variables = [v.value for v in keras_model.weights]
        self.class_names = tf.constant(list(class_names))
        self.class_names_file = tf.saved_model.Asset(names_file)

        def detect(image):
            # A loaded signature checks the dtype but not the shape of its input.
            image = tf.ensure_shape(image, [None, None, config.IMAGE_CHANNEL_COUNT])
            result = detect_image(keras_model, config, image)
            result["class_names"] = tf.gather(self.class_names, result["class_ids"])
            return result

        channels = config.IMAGE_CHANNEL_COUNT
        self.detect = tf.function(detect, input_signature=[
            tf.TensorSpec([None, None, channels], tf.uint8, name="image")])
        if channels == 3:
            # Calls the traced serving_default graph rather than tracing it again.
            self.detect_any_channels = tf.function(
                lambda image: self.detect(_to_rgb(image)),
                input_signature=[tf.TensorSpec([None, None, None], tf.uint8, name="image")])


def check_export_dir(export_dir: str) -> None:
    """Raises FileExistsError unless ``export_dir`` is new or an empty folder: an export
    never overwrites files."""
    if os.path.exists(export_dir) and (not os.path.isdir(export_dir) or os.listdir(export_dir)):
        raise FileExistsError(f"{export_dir} exists and is not an empty folder; choose a new "
                              "folder (TF Serving: a new version number) or remove it.")


def export_saved_model(keras_model: keras.Model, config: Config, export_dir: str,
                       class_names: Sequence[str] | None = None) -> str:
    """Writes a SavedModel that runs all of detection on a raw image (see the module doc).

    Args:
        keras_model: the inference model (``MaskRCNN(mode="inference", ...).keras_model``)
            with its trained weights.
        config: its Config.
        export_dir: folder to create; it must not exist yet or be empty. The SavedModel is
            written next to it first and moved there when complete.
        class_names: the class names, with or without the background first (default:
            the config's CLASS_NAMES, else "class 1", ...), see mrcnn.config_presets.class_names.

    Returns:
        export_dir.

    Raises:
        ValueError: a training model, a resize mode or backbone that cannot be exported,
            or class names that do not fit NUM_CLASSES.
        FileExistsError: export_dir holds files.
    """
    _check_exportable(keras_model, config)
    class_names = [str(name) for name in config_presets.class_names(config, class_names)]
    export_dir = os.path.abspath(export_dir)
    check_export_dir(export_dir)
    parent = os.path.dirname(export_dir)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        names_file = os.path.join(staging, CLASS_NAMES_ASSET)
        with open(names_file, "w", encoding="utf-8") as f:
            f.write("".join(name + "\n" for name in class_names))
        module = _DetectionModule(keras_model, config, class_names, names_file)
        signatures = {SERVING_SIGNATURE: module.detect}
        if hasattr(module, "detect_any_channels"):
            signatures[ANY_CHANNELS_SIGNATURE] = module.detect_any_channels
        saved = os.path.join(staging, "saved_model")
        tf.saved_model.save(module, saved, signatures=signatures)
        if os.path.isdir(export_dir):
            os.rmdir(export_dir)
        os.replace(saved, export_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return export_dir
