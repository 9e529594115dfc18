"""MaskRCNN: the classic model class (build, detect, weights, log directory).

Typical use::

    model = MaskRCNN(mode="inference", config=InferenceConfig(), model_dir="logs")
    model.load_weights("weights/mask_rcnn_coco.h5", by_name=True)
    result = model.detect([image])[0]   # rois, class_ids, scores, masks
"""
from __future__ import annotations

import collections
import datetime
import functools
import glob
import os
import re
import sys
import warnings

import keras
import numpy as np
import tensorflow as tf

from mrcnn import weights as weight_files
from mrcnn.anchors import config_anchors
from mrcnn.boxes import denorm_boxes, norm_boxes
from mrcnn.augmentation import augmentation_kind
from mrcnn.callbacks import training_callbacks
from mrcnn.checkpoints import (RUN_TIMESTAMP, RUN_TIMESTAMP_RE, STATE_FILE,
                               NonFiniteLossError, StateSaver, StopOnNonFiniteLoss,
                               TrainingRun, checkpoint_file, checkpoint_problem,
                               non_finite_weights, run_name, training_runs)
from mrcnn.config import Config
from mrcnn.data import DataGenerator, check_instance_ids, sequence_runs
from mrcnn import distribute
from mrcnn.distribute import is_chief, model_strategy
from mrcnn.graph.network import build_inference_model, build_training_model
from mrcnn.graph.precision import loss_scaled
from mrcnn.image_io import to_model_image
from mrcnn.images import box_mask, compose_image_meta, mold_image, resize_image
# WEIGHTS_DIR: where get_imagenet_weights looks, besides model_dir.
from mrcnn.resources import WEIGHTS_DIR

# The classic module-level names of mrcnn.model (modellib.log, modellib.load_image_gt,
# modellib.data_generator, the layer classes, ...), for classic code; see mrcnn.classic.
from mrcnn.classic import (  # noqa: F401  (re-exported)
    BatchNorm, DetectionLayer, DetectionTargetLayer, ProposalLayer, PyramidROIAlign,
    apply_box_deltas_graph, batch_pack_graph, batch_slice, build_detection_targets,
    build_fpn_mask_graph, build_rpn_model, build_rpn_targets, clip_boxes_graph,
    compute_backbone_shapes, conv_block, data_generator, denorm_boxes_graph,
    detection_targets_graph,
    fpn_classifier_graph, generate_random_rois, identity_block, load_image_gt, log, log2_graph,
    mrcnn_bbox_loss_graph, mrcnn_class_loss_graph, mrcnn_mask_loss_graph, norm_boxes_graph,
    overlaps_graph, parse_image_meta, parse_image_meta_graph, resnet_graph, rpn_bbox_loss_graph,
    refine_detections_graph, rpn_class_loss_graph, rpn_graph, smooth_l1_loss,
    trim_zeros_graph, unmold_image)

# The classic `layers` presets of train(): regexes over the layer names.
LAYER_PRESETS = {
    "heads": r"(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "3+": r"(res3.*)|(bn3.*)|(res4.*)|(bn4.*)|(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "4+": r"(res4.*)|(bn4.*)|(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "5+": r"(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "all": ".*",
}
IMAGENET_WEIGHTS_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
IMAGENET_WEIGHTS_URL = ("https://github.com/fchollet/deep-learning-models/releases/"
                        "download/v0.2/" + IMAGENET_WEIGHTS_FILE)
MODES = ("training", "inference")
# Resize modes whose molded images all have IMAGE_SHAPE, so that they batch.
TRAINING_RESIZE_MODES = ("square", "crop")


def weighted_layer_names(keras_model) -> list[str]:
    """Names of the layers with weights, nested models (rpn_model) entered: what
    set_trainable's regex is matched against."""
    names = []
    for layer in keras_model.layers:
        if isinstance(layer, keras.Model):
            names += weighted_layer_names(layer)
        elif layer.weights:
            names.append(layer.name)
    return names


class MaskRCNN:
    """Mask R-CNN with the classic API.

    Args:
        mode: "training" or "inference".
        config: an instance of a Config subclass.
        model_dir: root directory of the training logs and checkpoints.
        strategy: a tf.distribute.Strategy to build and train under (see
            mrcnn.distribute); default: GPU_COUNT > 1 mirrors over that many
            local GPUs, else one device.

    Attributes:
        keras_model: the Keras model of the chosen mode.
        epoch: the last completed training epoch (0 for a new model).
        log_dir, checkpoint_path: where training writes (see set_log_dir).
    """

    def __init__(self, mode: str, config: Config, model_dir: str,
                 strategy: tf.distribute.Strategy | None = None):
        if mode not in MODES:
            raise ValueError(f"mode is {mode!r}; use 'training' or 'inference'.")
        if not isinstance(config, Config):
            raise TypeError(f"config must be an instance of a Config subclass, "
                            f"not {type(config).__name__}.")
        if mode == "inference" and config.IMAGE_RESIZE_MODE == "crop":
            # A random crop at inference would drop part of the image and map the
            # boxes back as if nothing had been cut.
            raise ValueError(
                "IMAGE_RESIZE_MODE='crop' is a training augmentation; an inference model "
                "must see the whole image. Use 'square' (or 'pad64') in the inference "
                "config.")
        self.mode = mode
        self.config = config
        self.model_dir = model_dir
        self._anchor_cache = {}
        self._predict = None
        self.strategy = model_strategy(config, strategy)
        self.set_log_dir()
        with self.strategy.scope():
            self.keras_model = self.build(mode, config)

    def build(self, mode: str, config: Config):
        """Builds the Keras model of ``mode`` from ``config``."""
        return (build_inference_model if mode == "inference" else build_training_model)(config)

    # ------------------------------------------------------------------ inference

    def mold_inputs(self, images: list[np.ndarray]):
        """Resizes and normalizes images into the network's input format.

        Args:
            images: list of [H, W, C] images, C = IMAGE_CHANNEL_COUNT.

        Returns:
            molded_images [N, h, w, C] float32, image_metas [N, META],
            windows [N, (y1, x1, y2, x2)] of the image inside the molded one.
            Raises ValueError when the molded shapes differ (use detect, which
            groups images by molded shape).
        """
        config = self.config
        molded, metas, windows = [], [], []
        for image in images:
            resized, window, scale, _, _ = resize_image(
                image, min_dim=config.IMAGE_MIN_DIM, min_scale=config.IMAGE_MIN_SCALE,
                max_dim=config.IMAGE_MAX_DIM, mode=config.IMAGE_RESIZE_MODE)
            molded.append(mold_image(resized, config))
            metas.append(compose_image_meta(0, image.shape, resized.shape, window, scale,
                                            np.zeros([config.NUM_CLASSES], dtype=np.int32)))
            windows.append(window)
        if len({m.shape for m in molded}) > 1:
            raise ValueError(f"Molded images differ in shape {[m.shape for m in molded]}; "
                             "detect() handles that by batching equal shapes together.")
        return np.stack(molded), np.stack(metas), np.array(windows)

    def unmold_detections(self, detections, mrcnn_mask, original_image_shape, image_shape,
                          window, embeddings=None):
        """Turns one image's network outputs into pixel boxes and full-size masks.

        Args:
            detections: [max_instances, (y1, x1, y2, x2, class_id, score)],
                normalized boxes, zero rows as padding.
            mrcnn_mask: [max_instances, mask_h, mask_w, NC] mask probabilities.
            original_image_shape: [H, W, C] of the image before resizing.
            image_shape: [h, w, C] of the molded image.
            window: [(y1, x1, y2, x2)] pixels, the image inside the molded one.
            embeddings: optional [max_instances, D] association embeddings.

        Returns:
            rois [n, (y1, x1, y2, x2)] int32 pixels of the original image,
            class_ids [n] int32, scores [n] float32, masks [H, W, n] bool;
            with ``embeddings``, a fifth value: embeddings [n, D] float32, row i
            that of detection i.
        """
        padding = np.where(detections[:, 4] == 0)[0]
        count = padding[0] if padding.size else detections.shape[0]
        boxes = detections[:count, :4]
        class_ids = detections[:count, 4].astype(np.int32)
        scores = detections[:count, 5].astype(np.float32)
        masks = mrcnn_mask[np.arange(count), :, :, class_ids]

        # Normalized coordinates of the molded image -> of the window -> pixels.
        wy1, wx1, wy2, wx2 = norm_boxes(np.array(window), image_shape[:2])
        shift = np.array([wy1, wx1, wy1, wx1])
        scale = np.array([wy2 - wy1, wx2 - wx1, wy2 - wy1, wx2 - wx1])
        boxes = denorm_boxes((boxes - shift) / scale, original_image_shape[:2])

        # Boxes that shrank to nothing in the original image are dropped.
        keep = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) > 0
        boxes, class_ids, scores, masks = boxes[keep], class_ids[keep], scores[keep], masks[keep]
        full_masks = np.zeros(tuple(original_image_shape[:2]) + (len(boxes),), dtype=bool)
        for i, (mask, (y1, x1, y2, x2)) in enumerate(zip(masks, boxes)):
            # Only the box is written: the rest of each mask stays False.
            full_masks[y1:y2, x1:x2, i] = box_mask(mask, (y1, x1, y2, x2))
        unmolded = boxes.astype(np.int32), class_ids, scores, full_masks
        if embeddings is None:
            return unmolded
        return unmolded + (np.asarray(embeddings[:count], np.float32)[keep],)

    def get_anchors(self, image_shape) -> np.ndarray:
        """Normalized pyramid anchors [A, (y1, x1, y2, x2)] of a molded image shape.

        Cached per shape; ``self.anchors`` keeps the pixel anchors of the last call.
        """
        key = tuple(int(v) for v in image_shape[:2])
        if key not in self._anchor_cache:
            pixel_anchors = config_anchors(self.config, image_shape)
            self._anchor_cache[key] = (pixel_anchors, norm_boxes(pixel_anchors, key))
        self.anchors, normalized = self._anchor_cache[key]
        return normalized

    def _run_inference(self, molded_images, image_metas):
        """Runs the inference graph on one batch of equally shaped molded images."""
        if self._predict is None:
            model, config = self.keras_model, self.config
            # One trace serves every image size and batch size.
            self._predict = tf.function(
                lambda images, metas, anchors: model([images, metas, anchors], training=False),
                input_signature=[
                    tf.TensorSpec([None, None, None, config.IMAGE_CHANNEL_COUNT], tf.float32),
                    tf.TensorSpec([None, config.IMAGE_META_SIZE], tf.float32),
                                 tf.TensorSpec([None, None, 4], tf.float32)],
                reduce_retracing=True)
        anchors = self.get_anchors(molded_images.shape[1:])
        anchors = np.broadcast_to(anchors, (len(molded_images),) + anchors.shape)
        outputs = self._predict(tf.constant(molded_images, tf.float32),
                                tf.constant(image_metas, tf.float32),
                                tf.constant(anchors, tf.float32))
        return [np.asarray(o) for o in outputs]

    def _check_images(self, images) -> list[np.ndarray]:
        """The images converted by the reader's policy (mrcnn.image_io), by list index."""
        if self.mode != "inference":
            raise RuntimeError("detect() needs a model created with mode='inference'.")
        if isinstance(images, np.ndarray) and images.ndim == 3:
            raise ValueError("detect() takes a list of images; wrap a single image as "
                             "[image].")
        if len(images) == 0:
            raise ValueError("detect() got no images; pass a list of [H, W, C] arrays.")
        channels = self.config.IMAGE_CHANNEL_COUNT
        return [to_model_image(image, f"image {i} of the list", channels)
                for i, image in enumerate(images)]

    def detect(self, images: list[np.ndarray], verbose: int = 0) -> list[dict]:
        """Detects instances in images.

        Images may differ in size and count: equally shaped molded images run
        together in batches of up to BATCH_SIZE.

        Args:
            images: list of [H, W, C] images (RGB for the classic config), converted
                as ``mrcnn.image_io`` reads files: grayscale and RGBA to RGB, uint16
                to uint8; float images in 0..255 taken as they are.
            verbose: 1 prints the shapes of the inputs.

        Returns:
            One dict per image: rois [N, (y1, x1, y2, x2)] int32 pixels,
            class_ids [N] int32, scores [N] float32, masks [H, W, N] bool; with
            ASSOCIATION_EMBEDDING_SIZE = D also embeddings [N, D] float32,
            L2-normalized rows, row i that of detection i.
        """
        images = self._check_images(images)
        if verbose:
            print(f"Processing {len(images)} images")
        results = [None] * len(images)
        molded_shapes = {}
        for i, image in enumerate(images):
            molded, meta, window = self.mold_inputs([image])
            molded_shapes.setdefault(molded.shape[1:], []).append((i, molded[0], meta[0],
                                                                   window[0]))
        for shape, group in molded_shapes.items():
            for start in range(0, len(group), self.config.BATCH_SIZE):
                batch = group[start:start + self.config.BATCH_SIZE]
                molded = np.stack([item[1] for item in batch])
                metas = np.stack([item[2] for item in batch])
                if verbose:
                    print(f"molded_images {molded.shape}, image_metas {metas.shape}")
                outputs = self._run_inference(molded, metas)
                for j, (index, _, _, window) in enumerate(batch):
                    results[index] = self._result([o[j] for o in outputs],
                                                  images[index].shape, shape, window)
        return results

    def detect_molded(self, molded_images: np.ndarray, image_metas: np.ndarray,
                      verbose: int = 0) -> list[dict]:
        """Detects instances in images that are already molded (e.g. by load_image_gt).

        Args:
            molded_images: [N, h, w, C] molded images of one shape.
            image_metas: [N, META] their metadata.
            verbose: 1 prints the shapes of the inputs.

        Returns:
            One dict per image as in detect(), in molded-image pixels.
        """
        if len(molded_images) != len(image_metas):
            raise ValueError(f"Got {len(molded_images)} molded images but "
                             f"{len(image_metas)} image metas; give one meta per image.")
        if verbose:
            print(f"molded_images {np.shape(molded_images)}")
        molded_images = np.asarray(molded_images, np.float32)
        image_metas = np.asarray(image_metas, np.float32)
        results = []
        for start in range(0, len(molded_images), self.config.BATCH_SIZE):
            stop = start + self.config.BATCH_SIZE
            outputs = self._run_inference(molded_images[start:stop], image_metas[start:stop])
            shape = molded_images.shape[1:]
            window = (0, 0) + tuple(shape[:2])
            results += [self._result([o[j] for o in outputs], shape, shape, window)
                        for j in range(len(outputs[0]))]
        return results

    def _result(self, outputs, original_shape, molded_shape, window) -> dict:
        """One image's result dict from its rows of the inference model's outputs."""
        # detections, mrcnn_class, mrcnn_bbox, mrcnn_mask, rpn_rois, rpn_class, rpn_bbox,
        # then the embeddings when the association head is on.
        embeddings = outputs[7] if len(outputs) > 7 else None
        unmolded = self.unmold_detections(outputs[0], outputs[3], original_shape, molded_shape,
                                          window, embeddings)
        return dict(zip(("rois", "class_ids", "scores", "masks", "embeddings"), unmolded))

    def export(self, export_dir: str, class_names=None) -> str:
        """Writes a TensorFlow SavedModel doing all of detect() on one raw image.

        Its ``serving_default`` signature takes uint8 ``image`` [H, W,
        IMAGE_CHANNEL_COUNT] of any size and returns rois, class_ids, scores, masks
        [H, W, N], class_names and, with the association head, embeddings; it loads
        with TensorFlow alone (see mrcnn.export for the signatures).

        Args:
            export_dir: a new (or empty) folder.
            class_names: the class names, with or without the background first
                (default: the config's CLASS_NAMES, else "class N").

        Returns:
            export_dir. A training-mode model raises ValueError.
        """
        from mrcnn.export import export_saved_model

        return export_saved_model(self.keras_model, self.config, export_dir, class_names)

    # ------------------------------------------------------------------ training

    def set_trainable(self, layer_regex: str, keras_model=None, indent: int = 0,
                      verbose: int = 1) -> list:
        """Makes the weighted layers whose full name matches ``layer_regex`` trainable
        and freezes the others; nested models (``rpn_model``) are entered.

        Args:
            layer_regex: a regex matched (fullmatch) against each layer's name.
            keras_model: the model to walk; the training model by default.
            indent: spaces before each printed name (nested models print indented).
            verbose: 1 prints the trainable layers, as the classic method did.

        Returns:
            The names of the trainable layers.
        """
        if verbose > 0 and keras_model is None:
            log("Selecting layers to train")
        keras_model = keras_model or self.keras_model
        trainable = []
        for layer in keras_model.layers:
            if isinstance(layer, keras.Model):
                if verbose > 0:
                    print("In model: ", layer.name)
                # Setting a model's flag sets all its layers': set it first, then
                # let each inner layer follow the regex.
                layer.trainable = True
                inner = self.set_trainable(layer_regex, layer, indent + 4, verbose)
                if not inner:
                    layer.trainable = False
                trainable += inner
                continue
            if not layer.weights:
                continue
            layer.trainable = bool(re.fullmatch(layer_regex, layer.name))
            if layer.trainable:
                trainable.append(layer.name)
                if verbose > 0:
                    log(f"{' ' * indent}{layer.name:20}   ({type(layer).__name__})")
        return trainable

    def find_trainable_layer(self, layer):
        """The layer that holds the weights: a TimeDistributed wrapper's inner layer."""
        if isinstance(layer, keras.layers.TimeDistributed):
            return self.find_trainable_layer(layer.layer)
        return layer

    def get_trainable_layers(self) -> list:
        """The layers of keras_model that hold weights (TimeDistributed unwrapped)."""
        found = [self.find_trainable_layer(layer) for layer in self.keras_model.layers]
        return [layer for layer in found if layer.weights]

    def run_graph(self, images: list[np.ndarray], outputs, image_metas=None
                  ) -> collections.OrderedDict:
        """Runs the inference graph up to some of its tensors, for inspection.

        Args:
            images: list of [H, W, C] images (molded here), or, with ``image_metas``,
                molded images [N, h, w, C].
            outputs: list of (name, tensor) pairs; the tensors are outputs of
                keras_model's layers, e.g. ``keras_model.get_layer("ROI").output``.
            image_metas: [N, META] metas of already molded images.

        Returns:
            An OrderedDict name -> numpy array, each also printed with ``log``.
        """
        if self.mode != "inference":
            raise RuntimeError("run_graph() needs a model created with mode='inference' "
                               "(the training graph also needs the ground truth).")
        names = [name for name, _ in outputs]
        tensors = [tensor for _, tensor in outputs]
        if image_metas is None:
            molded_images, image_metas, _ = self.mold_inputs(images)
        else:
            molded_images = images
        molded_images = np.asarray(molded_images, np.float32)
        anchors = self.get_anchors(molded_images.shape[1:])
        anchors = np.broadcast_to(anchors, (len(molded_images),) + anchors.shape)
        try:
            probe = keras.Model(self.keras_model.inputs, tensors)
        except ValueError as error:
            raise ValueError(
                f"run_graph() outputs {names} must be outputs of this model's layers, e.g. "
                "model.keras_model.get_layer('ROI').output (a layer called more than once, "
                "like rpn_model, has no single output).") from error
        values = probe([tf.constant(molded_images), tf.constant(image_metas, tf.float32),
                        tf.constant(anchors, tf.float32)], training=False)
        if not isinstance(values, (list, tuple)):
            values = [values]
        results = collections.OrderedDict(
            (name, np.asarray(value)) for name, value in zip(names, values))
        for name, value in results.items():
            log(name, value)
        return results

    def ancestor(self, tensor, name: str, checked=None):
        """Not available in Keras 3: it walked TF1 graph ops by name.

        Raises:
            NotImplementedError: always, with the Keras 3 way to get the tensor.
        """
        raise NotImplementedError(
            f"MaskRCNN.ancestor({name!r}) searched TF1 graph op names, which Keras 3 "
            "tensors do not have. Take the output of the layer you want and run it:\n"
            "    tensor = model.keras_model.get_layer('ROI').output\n"
            "    values = model.run_graph([image], [('proposals', tensor)])\n"
            "(print([layer.name for layer in model.keras_model.layers]) lists the layers).")

    def compile(self, learning_rate: float, momentum: float) -> None:
        """The optimizer (classic: SGD with momentum) with global gradient-norm
        clipping, loss-scaled when the model computes in float16; the losses come
        from the named loss layers and the model's weight decay."""
        clip = self.config.GRADIENT_CLIP_NORM
        # The optimizer's variables are mirrored like the model's: created in its scope.
        with self.strategy.scope():
            if self.config.OPTIMIZER == "adam":
                optimizer = distribute.Adam(learning_rate=learning_rate, global_clipnorm=clip)
            else:
                optimizer = distribute.SGD(learning_rate=learning_rate, momentum=momentum,
                                           global_clipnorm=clip)
            # float16 gradients underflow without loss scaling (MIXED_PRECISION).
            optimizer = loss_scaled(optimizer, self.keras_model)
            # NMS and the data-dependent gathers have dynamic shapes: no XLA; the
            # float16 loss scale is ours, not Keras's automatic one.
            self.keras_model.compile(optimizer=optimizer, jit_compile=False,
                                     auto_scale_loss=False)

    def train(self, train_dataset, val_dataset, learning_rate: float, epochs: int,
              layers: str, augmentation=None, custom_callbacks=None,
              no_augmentation_sources=None, workers: int | None = None,
              evaluate_every: int | None = None, evaluate_limit: int | None = None,
              early_stop: int | None = None, monitor: str | None = None,
              resume: bool = True, verbose: int | None = None):
        """Trains the model up to epoch ``epochs`` (absolute, not a count).

        Args:
            train_dataset, val_dataset: prepared Dataset objects.
            learning_rate: SGD learning rate.
            epochs: the epoch to reach; training continues from ``self.epoch``
                (0, or the epoch of the checkpoint last loaded).
            layers: a preset ("heads", "3+", "4+", "5+", "all") or a regex of
                the layer names to train.
            augmentation: None, a ``mrcnn.data.Augmenter``, or a callable
                ``(image, masks) -> (image, masks)`` (e.g. an albumentations
                adapter) applied to training images.
            custom_callbacks: more Keras callbacks.
            no_augmentation_sources: dataset sources never augmented.
            workers: data-loading threads (default: the CPU count, at most 4).
            evaluate_every, evaluate_limit, early_stop, monitor: COCO evaluation on
                `val_dataset` every N epochs (of its first `evaluate_limit` images),
                logging val_map50, val_map, val_mask_map50, val_mask_map; the best
                checkpoint ``mask_rcnn_<name>_best.h5`` by `monitor`; early stopping
                after `early_stop` epochs without improvement. See
                mrcnn.callbacks.training_callbacks.
            resume: continue an interrupted run of this config in model_dir
                (see mrcnn.checkpoints): the same call after a crash resumes at
                the last saved step. False always starts as asked.
            verbose: Keras's fit verbosity; None: the progress bar on a terminal,
                one line per epoch (2) when stdout is a file or a pipe.

        Returns:
            The Keras History: ``loss``, the five named losses and their ``val_`` twins
            (and the evaluation's values; empty when an interrupted run had finished
            this call already).

        Raises:
            ValueError: before the first step, for a dataset with more classes than
                NUM_CLASSES, a resize mode that cannot batch, or a ``layers`` regex
                that matches no layer.
            checkpoints.NonFiniteLossError: a step gave a NaN or infinite loss.
        """
        if self.mode != "training":
            raise RuntimeError("train() needs a model created with mode='training'.")
        layer_regex = LAYER_PRESETS.get(layers, layers)
        self._check_training(train_dataset, val_dataset, layers, layer_regex)
        if augmentation is not None:
            augmentation_kind(augmentation)  # TypeError now, not at the first batch
        run = TrainingRun(self, {"layers": layers, "learning_rate": float(learning_rate),
                                 "epochs": int(epochs)}, resume)
        if run.action == "skip":
            print(f"Stage {layers!r} to epoch {epochs} already done in {self.log_dir}: "
                  "skipped (resuming an interrupted run).")
            history = keras.callbacks.History()
            history.on_train_begin()  # epoch [] and history {}: nothing trained here
            return history
        if self.epoch >= epochs:
            raise ValueError(f"The model is at epoch {self.epoch} already; epochs is the epoch "
                             f"to reach, so pass more than {self.epoch}.")
        workers = workers or min(4, os.cpu_count() or 1)
        train_batches = DataGenerator(train_dataset, self.config, shuffle=True,
                                      augmentation=augmentation,
                                      no_augmentation_sources=no_augmentation_sources,
                                      steps_per_epoch=self.config.STEPS_PER_EPOCH,
                                      workers=workers,
                                      seed=distribute.shared_seed(self.strategy, run.seed))
        # The epoch's batches are those an uninterrupted run would draw.
        train_batches.start_at(self.epoch, run.step)
        val_batches = DataGenerator(val_dataset, self.config, shuffle=True,
                                    steps_per_epoch=self.config.VALIDATION_STEPS,
                                    workers=workers,
                                    seed=distribute.shared_seed(self.strategy, None))
        chief = is_chief(self.strategy)
        if chief:
            os.makedirs(self.log_dir, exist_ok=True)
        steps = self.config.STEPS_PER_EPOCH
        stop_on_nan = StopOnNonFiniteLoss(steps, run.step)
        saver = StateSaver(run, self.config.TRAIN_STATE_STEPS, run.step)
        # Under a multi-worker strategy only the chief writes logs and checkpoints.
        writers = ([keras.callbacks.TensorBoard(self.log_dir, histogram_freq=0,
                                                write_graph=False),
                    ClassicCheckpoint(self.checkpoint_path), saver]
                   if chief else [])
        callbacks = [stop_on_nan] + writers + list(custom_callbacks or [])
        # The evaluation writes into the epoch's logs: it runs before the others read them.
        callbacks = training_callbacks(self, val_dataset, evaluate_every, evaluate_limit,
                                       early_stop, monitor, writer=chief) + callbacks
        start = f"step {run.step} of epoch {self.epoch + 1}" if run.step else f"epoch {self.epoch}"
        print(f"{'Resuming' if run.action == 'resume' else 'Starting'} at {start}. "
              f"LR={learning_rate}\nCheckpoint path: {self.checkpoint_path}")
        self.set_trainable(layer_regex, verbose=0)
        self.compile(learning_rate, self.config.LEARNING_MOMENTUM)
        run.restore_optimizer(self.keras_model)
        run.begin(self.keras_model, train_batches.seed)
        if verbose is None:
            verbose = 1 if sys.stdout.isatty() else 2
        fit = functools.partial(
            self.keras_model.fit, distribute.fit_batches(self.strategy, train_batches),
            callbacks=callbacks,
            validation_data=distribute.fit_batches(self.strategy, val_batches), validation_steps=self.config.VALIDATION_STEPS,
            # The generators reshuffle themselves, reproducibly; Keras's own
            # shuffle of batch indices would use Python's global random state.
            shuffle=False, verbose=verbose)
        histories = []
        if run.step:
            # Keras has no initial step: the rest of the interrupted epoch is one fit.
            histories.append(fit(initial_epoch=self.epoch, epochs=self.epoch + 1,
                                 steps_per_epoch=steps - run.step))
            self.epoch += 1
        # Early stopping may have ended the run in the first fit.
        if self.epoch < epochs and not (histories and self.keras_model.stop_training):
            histories.append(fit(initial_epoch=self.epoch, epochs=epochs,
                                 steps_per_epoch=steps))
            # Counted, not set to `epochs`: early stopping ends before it.
            self.epoch += len(histories[-1].epoch)
        run.finish(self.keras_model)
        history = histories[-1]
        for earlier in reversed(histories[:-1]):
            history.epoch = earlier.epoch + history.epoch
            for key, values in earlier.history.items():
                history.history[key] = values + history.history.get(key, [])
        return history

    def _check_training(self, train_dataset, val_dataset, layers: str,
                        layer_regex: str) -> None:
        """The checks train() makes before anything is built or written."""
        config = self.config
        for name, dataset in (("training", train_dataset), ("validation", val_dataset)):
            if dataset.num_classes > config.NUM_CLASSES:
                raise ValueError(
                    f"The {name} dataset has {dataset.num_classes} classes (background "
                    f"included) but NUM_CLASSES is {config.NUM_CLASSES}: set NUM_CLASSES = "
                    f"{dataset.num_classes} in the config.")
        if config.IMAGE_RESIZE_MODE not in TRAINING_RESIZE_MODES:
            raise ValueError(
                f"IMAGE_RESIZE_MODE={config.IMAGE_RESIZE_MODE!r} cannot train: it keeps "
                "each image's own size, so images of different sizes cannot be stacked "
                f"into a batch of IMAGE_SHAPE {list(config.IMAGE_SHAPE)}. Use 'square' "
                "(or 'crop') for training; 'pad64' and 'none' suit inference.")
        for dataset in (train_dataset, val_dataset):
            if config.ASSOCIATION_EMBEDDING_SIZE and len(dataset.image_ids):
                # The association head needs identities: fail before anything is written.
                check_instance_ids(dataset, int(dataset.image_ids[0]))
            if config.SEQUENCE_FRAMES > 1:
                sequence_runs(dataset, config.SEQUENCE_FRAMES)
        names = weighted_layer_names(self.keras_model)
        if not any(re.fullmatch(layer_regex, name) for name in names):
            raise ValueError(
                f"layers={layers!r} matches no weighted layer of the model (names such as "
                f"{', '.join(names[:3])}, ...); use a preset {sorted(LAYER_PRESETS)} or a "
                "regex matched against the full layer names.")

    # ------------------------------------------------------------------ weights

    def load_weights(self, filepath: str, by_name: bool = False, exclude=None):
        """Loads a weight file: a classic Keras 2 .h5 file or one this library saved.

        Args:
            filepath: path of the .h5 file.
            by_name: load the layers whose names match and ignore the rest
                (another backbone depth, or the heads of another class count
                together with ``exclude``).
            exclude: layer names to skip, e.g. weights.HEAD_LAYERS when
                fine-tuning to another NUM_CLASSES; implies by_name. Or
                "heads-if-mismatch": skip the class-dependent heads (they keep
                their weights, random in a new model) only when the file's class
                count differs from NUM_CLASSES.

        Returns:
            A weights.LoadReport listing the loaded, skipped and excluded layers.
            A file that does not fit raises weights.WeightFileError naming the
            layer and both shapes, and leaves the model unchanged.
        """
        exclude = weight_files.resolve_exclude(exclude, filepath, self.config.NUM_CLASSES)
        report = weight_files.load_weights(self.keras_model, filepath, by_name, exclude)
        # Training resumes from the epoch encoded in a checkpoint's name.
        self.set_log_dir(filepath)
        return report

    def get_imagenet_weights(self) -> str:
        """Path of the ImageNet ResNet-50 weight file, found locally.

        Looks in ``weights/`` of this repository, in model_dir and in Keras's
        cache (~/.keras/models). Never downloads: weights/README.md says where
        to get the file.
        """
        candidates = [os.path.join(d, IMAGENET_WEIGHTS_FILE) for d in (
            WEIGHTS_DIR, self.model_dir, os.path.expanduser("~/.keras/models"))]
        for path in candidates:
            if os.path.isfile(path):
                return path
        raise FileNotFoundError(
            f"ImageNet weights {IMAGENET_WEIGHTS_FILE} not found in {candidates}. "
            f"Download {IMAGENET_WEIGHTS_URL} into {WEIGHTS_DIR}.")

    # ------------------------------------------------------------------ log dir

    def set_log_dir(self, model_path: str | None = None) -> None:
        """Sets the log directory and the epoch counter.

        A new model logs to ``<model_dir>/<name><YYYYmmddTHHMM>/`` from epoch 0.
        Given a checkpoint path ``.../<name><YYYYmmddTHHMM>/mask_rcnn_<name>_NNNN.h5``,
        training continues in that directory after epoch NNNN.
        """
        self.epoch = 0
        now = datetime.datetime.now()
        name = run_name(self.config)
        if model_path:
            pattern = (r".*[/\\]" + re.escape(name) + RUN_TIMESTAMP_RE +
                       r"[/\\]mask_rcnn_[\w-]+_(\d{4})\.h5$")
            match = re.match(pattern, model_path)
            if match:
                now = datetime.datetime(*map(int, match.groups()[:5]))
                self.epoch = int(match.group(6))
        self.log_dir = os.path.join(self.model_dir, f"{name}{now:{RUN_TIMESTAMP}}")
        # Keras fills in {epoch}; the 4 digits keep checkpoints sorted by name.
        self.checkpoint_path = os.path.join(self.log_dir, checkpoint_file(name, "{epoch:04d}"))

    def find_last(self) -> str:
        """Path of the last sound checkpoint of the last training run of this config.

        A checkpoint that cannot be read whole or holds non-finite values is passed
        over, with a warning, for the one before it.

        Raises:
            FileNotFoundError: no run or no sound checkpoint in model_dir.
        """
        name = run_name(self.config)
        runs = training_runs(self.model_dir, name)
        if not runs:
            raise FileNotFoundError(
                f"No training run of {name!r} in {self.model_dir!r}: expected a directory "
                f"{name}YYYYmmddTHHMM there.")
        # Numbered checkpoints only: mask_rcnn_<name>_best.h5 sorts after them.
        checkpoints = sorted(p for p in glob.glob(os.path.join(runs[-1], "mask_rcnn*.h5"))
                             if re.search(r"_\d{4}\.h5$", p))
        if not checkpoints:
            interrupted = os.path.isfile(os.path.join(runs[-1], STATE_FILE))
            raise FileNotFoundError(
                f"No checkpoint mask_rcnn*.h5 in {runs[-1]!r}." + (
                    " It holds the training state of a run interrupted in its first epoch: "
                    "call the same train() again to resume it." if interrupted else ""))
        rejected = []
        for path in reversed(checkpoints):
            problem = checkpoint_problem(path)
            if problem is None:
                return path
            warnings.warn(f"find_last: skipping {path}: {problem}", stacklevel=2)
            rejected.append(f"{os.path.basename(path)}: {problem}")
        raise FileNotFoundError(f"No sound checkpoint in {runs[-1]!r}: " + "; ".join(rejected))


class ClassicCheckpoint(keras.callbacks.Callback):
    """Saves the weights after every epoch in the classic HDF5 layout, never
    non-finite ones (NonFiniteLossError instead).

    Args:
        path_template: checkpoint path with an ``{epoch:04d}`` field, filled
            with the 1-based number of the epoch just finished.
    """

    def __init__(self, path_template: str):
        super().__init__()
        self.path_template = path_template

    def on_epoch_end(self, epoch, logs=None):
        bad = non_finite_weights(self.model)
        if bad:
            raise NonFiniteLossError(
                f"Training stopped at the end of epoch {epoch + 1}: {len(bad)} weights hold "
                f"NaN or infinite values (e.g. {bad[0]}); checkpoint not written. Lower the "
                "learning rate and resume from the last checkpoint.")
        weight_files.save_weights(self.model, self.path_template.format(epoch=epoch + 1))
