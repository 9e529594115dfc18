"""MaskRCNN: the classic model class (build, detect, weights, log directory).

Typical use::

    model = MaskRCNN(mode="inference", config=InferenceConfig(), model_dir="logs")
    model.load_weights("weights/mask_rcnn_coco.h5", by_name=True)
    result = model.detect([image])[0]   # rois, class_ids, scores, masks
"""
from __future__ import annotations

import datetime
import glob
import os
import re

import keras
import numpy as np
import tensorflow as tf

from mrcnn import weights as weight_files
from mrcnn.anchors import compute_backbone_shapes, generate_pyramid_anchors
from mrcnn.boxes import denorm_boxes, norm_boxes
from mrcnn.config import Config
from mrcnn.data import DataGenerator
from mrcnn.graph.network import build_inference_model, build_training_model
from mrcnn.images import box_mask, compose_image_meta, mold_image, resize_image

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
# Where get_imagenet_weights looks, besides model_dir.
WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "weights")
MODES = ("training", "inference")


class MaskRCNN:
    """Mask R-CNN with the classic API.

    Args:
        mode: "training" or "inference".
        config: an instance of a Config subclass.
        model_dir: root directory of the training logs and checkpoints.

    Attributes:
        keras_model: the Keras model of the chosen mode.
        epoch: the last completed training epoch (0 for a new model).
        log_dir, checkpoint_path: where training writes (see set_log_dir).
    """

    def __init__(self, mode: str, config: Config, model_dir: str):
        if mode not in MODES:
            raise ValueError(f"mode is {mode!r}; use 'training' or 'inference'.")
        if not isinstance(config, Config):
            raise TypeError(f"config must be an instance of a Config subclass, "
                            f"not {type(config).__name__}.")
        self.mode = mode
        self.config = config
        self.model_dir = model_dir
        self._anchor_cache = {}
        self._predict = None
        self.set_log_dir()
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
                          window):
        """Turns one image's network outputs into pixel boxes and full-size masks.

        Args:
            detections: [max_instances, (y1, x1, y2, x2, class_id, score)],
                normalized boxes, zero rows as padding.
            mrcnn_mask: [max_instances, mask_h, mask_w, NC] mask probabilities.
            original_image_shape: [H, W, C] of the image before resizing.
            image_shape: [h, w, C] of the molded image.
            window: [(y1, x1, y2, x2)] pixels, the image inside the molded one.

        Returns:
            rois [n, (y1, x1, y2, x2)] int32 pixels of the original image,
            class_ids [n] int32, scores [n] float32, masks [H, W, n] bool.
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
        return boxes.astype(np.int32), class_ids, scores, full_masks

    def get_anchors(self, image_shape) -> np.ndarray:
        """Normalized pyramid anchors [A, (y1, x1, y2, x2)] of a molded image shape.

        Cached per shape; ``self.anchors`` keeps the pixel anchors of the last call.
        """
        key = tuple(int(v) for v in image_shape[:2])
        if key not in self._anchor_cache:
            config = self.config
            pixel_anchors = generate_pyramid_anchors(
                config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS,
                compute_backbone_shapes(config, image_shape), config.BACKBONE_STRIDES,
                config.RPN_ANCHOR_STRIDE)
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

    def _check_images(self, images) -> None:
        if self.mode != "inference":
            raise RuntimeError("detect() needs a model created with mode='inference'.")
        if isinstance(images, np.ndarray) and images.ndim == 3:
            raise ValueError("detect() takes a list of images; wrap a single image as "
                             "[image].")
        if len(images) == 0:
            raise ValueError("detect() got no images; pass a list of [H, W, C] arrays.")
        channels = self.config.IMAGE_CHANNEL_COUNT
        for i, image in enumerate(images):
            shape = np.shape(image)
            if len(shape) != 3 or shape[2] != channels:
                raise ValueError(
                    f"Image {i} has shape {shape}; the model takes [H, W, {channels}] "
                    f"(IMAGE_CHANNEL_COUNT={channels}). Convert grayscale or RGBA images "
                    "with mrcnn.images.to_rgb(image).")

    def detect(self, images: list[np.ndarray], verbose: int = 0) -> list[dict]:
        """Detects instances in images.

        Images may differ in size and count: equally shaped molded images run
        together in batches of up to BATCH_SIZE.

        Args:
            images: list of [H, W, C] images (RGB for the classic config).
            verbose: 1 prints the shapes of the inputs.

        Returns:
            One dict per image: rois [N, (y1, x1, y2, x2)] int32 pixels,
            class_ids [N] int32, scores [N] float32, masks [H, W, N] bool.
        """
        self._check_images(images)
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
                detections, _, _, mrcnn_mask, _, _, _ = self._run_inference(molded, metas)
                for j, (index, _, _, window) in enumerate(batch):
                    results[index] = self._result(detections[j], mrcnn_mask[j],
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
            detections, _, _, mrcnn_mask, _, _, _ = self._run_inference(
                molded_images[start:stop], image_metas[start:stop])
            shape = molded_images.shape[1:]
            window = (0, 0) + tuple(shape[:2])
            results += [self._result(d, m, shape, shape, window)
                        for d, m in zip(detections, mrcnn_mask)]
        return results

    def _result(self, detections, mrcnn_mask, original_shape, molded_shape, window) -> dict:
        rois, class_ids, scores, masks = self.unmold_detections(
            detections, mrcnn_mask, original_shape, molded_shape, window)
        return {"rois": rois, "class_ids": class_ids, "scores": scores, "masks": masks}

    def export(self, export_dir: str, class_names=None) -> str:
        """Writes a TensorFlow SavedModel doing all of detect() on one raw image.

        Its ``serving_default`` signature takes uint8 ``image`` [H, W, 3] of any size and
        returns rois, class_ids, scores, masks [H, W, N] and class_names; it loads with
        TensorFlow alone (see mrcnn.export for the signatures).

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

    def set_trainable(self, layer_regex: str, keras_model=None, verbose: int = 0) -> list:
        """Makes the weighted layers whose full name matches ``layer_regex`` trainable
        and freezes the others; nested models (``rpn_model``) are entered.

        Args:
            layer_regex: a regex matched (fullmatch) against each layer's name.
            keras_model: the model to walk; the training model by default.
            verbose: 1 prints the trainable layers.

        Returns:
            The names of the trainable layers.
        """
        keras_model = keras_model or self.keras_model
        trainable = []
        for layer in keras_model.layers:
            if isinstance(layer, keras.Model):
                # Setting a model's flag sets all its layers': set it first, then
                # let each inner layer follow the regex.
                layer.trainable = True
                inner = self.set_trainable(layer_regex, layer, verbose)
                if not inner:
                    layer.trainable = False
                trainable += inner
                continue
            if not layer.weights:
                continue
            layer.trainable = bool(re.fullmatch(layer_regex, layer.name))
            if layer.trainable:
                trainable.append(layer.name)
                if verbose:
                    print(f"trainable: {layer.name} ({type(layer).__name__})")
        return trainable

    def compile(self, learning_rate: float, momentum: float) -> None:
        """The optimizer (classic: SGD with momentum) with global gradient-norm
        clipping; the losses come from the named loss layers and the model's
        weight decay."""
        clip = self.config.GRADIENT_CLIP_NORM
        if self.config.OPTIMIZER == "adam":
            optimizer = keras.optimizers.Adam(learning_rate=learning_rate, global_clipnorm=clip)
        else:
            optimizer = keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum,
                                             global_clipnorm=clip)
        # NMS and the data-dependent gathers have dynamic shapes: no XLA.
        self.keras_model.compile(optimizer=optimizer, jit_compile=False)

    def train(self, train_dataset, val_dataset, learning_rate: float, epochs: int,
              layers: str, augmentation=None, custom_callbacks=None,
              no_augmentation_sources=None, workers: int | None = None):
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

        Returns:
            The Keras History: ``loss``, the five named losses and their ``val_`` twins.
        """
        if self.mode != "training":
            raise RuntimeError("train() needs a model created with mode='training'.")
        if self.epoch >= epochs:
            raise ValueError(f"The model is at epoch {self.epoch} already; epochs is the epoch "
                             f"to reach, so pass more than {self.epoch}.")
        layer_regex = LAYER_PRESETS.get(layers, layers)
        workers = workers or min(4, os.cpu_count() or 1)
        train_batches = DataGenerator(train_dataset, self.config, shuffle=True,
                                      augmentation=augmentation,
                                      no_augmentation_sources=no_augmentation_sources,
                                      steps_per_epoch=self.config.STEPS_PER_EPOCH,
                                      workers=workers)
        val_batches = DataGenerator(val_dataset, self.config, shuffle=True,
                                    steps_per_epoch=self.config.VALIDATION_STEPS,
                                    workers=workers)
        os.makedirs(self.log_dir, exist_ok=True)
        callbacks = [keras.callbacks.TensorBoard(self.log_dir, histogram_freq=0,
                                                 write_graph=False),
                     ClassicCheckpoint(self.checkpoint_path)] + list(custom_callbacks or [])
        print(f"Starting at epoch {self.epoch}. LR={learning_rate}\n"
              f"Checkpoint path: {self.checkpoint_path}")
        self.set_trainable(layer_regex)
        self.compile(learning_rate, self.config.LEARNING_MOMENTUM)
        history = self.keras_model.fit(
            train_batches, initial_epoch=self.epoch, epochs=epochs,
            steps_per_epoch=self.config.STEPS_PER_EPOCH, callbacks=callbacks,
            validation_data=val_batches, validation_steps=self.config.VALIDATION_STEPS,
            # The generators reshuffle themselves, reproducibly; Keras's own
            # shuffle of batch indices would use Python's global random state.
            shuffle=False)
        self.epoch = max(self.epoch, epochs)
        return history

    # ------------------------------------------------------------------ weights

    def load_weights(self, filepath: str, by_name: bool = False, exclude=None):
        """Loads a weight file: a classic Keras 2 .h5 file or one this library saved.

        Args:
            filepath: path of the .h5 file.
            by_name: load the layers whose names match and ignore the rest
                (another backbone depth, or the heads of another class count
                together with ``exclude``).
            exclude: layer names to skip, e.g. weights.HEAD_LAYERS when
                fine-tuning to another NUM_CLASSES; implies by_name.

        Returns:
            A weights.LoadReport listing the loaded and skipped layers. A file
            that does not fit raises weights.WeightFileError naming the layer and
            both shapes, and leaves the model unchanged.
        """
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
        name = (self.config.NAME or "mrcnn").lower()
        if model_path:
            pattern = (r".*[/\\]" + re.escape(name) +
                       r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})[/\\]mask_rcnn_[\w-]+_(\d{4})\.h5$")
            match = re.match(pattern, model_path)
            if match:
                now = datetime.datetime(*map(int, match.groups()[:5]))
                self.epoch = int(match.group(6))
        self.log_dir = os.path.join(self.model_dir, f"{name}{now:%Y%m%dT%H%M}")
        # Keras fills in {epoch}; the 4 digits keep checkpoints sorted by name.
        self.checkpoint_path = os.path.join(self.log_dir, f"mask_rcnn_{name}_{{epoch:04d}}.h5")

    def find_last(self) -> str:
        """Path of the last checkpoint of the last training run of this config.

        Raises:
            FileNotFoundError: no run or no checkpoint in model_dir.
        """
        name = (self.config.NAME or "mrcnn").lower()
        runs = sorted(d for d in glob.glob(os.path.join(self.model_dir, name + "*"))
                      if os.path.isdir(d))
        if not runs:
            raise FileNotFoundError(
                f"No training run of {name!r} in {self.model_dir!r}: expected a directory "
                f"{name}YYYYmmddTHHMM there.")
        checkpoints = sorted(glob.glob(os.path.join(runs[-1], "mask_rcnn*.h5")))
        if not checkpoints:
            raise FileNotFoundError(f"No checkpoint mask_rcnn*.h5 in {runs[-1]!r}.")
        return checkpoints[-1]


class ClassicCheckpoint(keras.callbacks.Callback):
    """Saves the weights after every epoch in the classic HDF5 layout.

    Args:
        path_template: checkpoint path with an ``{epoch:04d}`` field, filled
            with the 1-based number of the epoch just finished.
    """

    def __init__(self, path_template: str):
        super().__init__()
        self.path_template = path_template

    def on_epoch_end(self, epoch, logs=None):
        weight_files.save_weights(self.model, self.path_template.format(epoch=epoch + 1))
