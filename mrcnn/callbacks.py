"""Keras callbacks that measure training by mAP: evaluation, best checkpoint, early stop.

``MaskRCNN.train`` adds them from its keywords::

    model.train(train_set, val_set, 0.001, epochs=30, layers="heads",
                evaluate_every=1, evaluate_limit=50, early_stop=5)
    # History: val_map50, val_map, val_mask_map50, val_mask_map (COCO, pycocotools);
    # LOG_DIR/mask_rcnn_<name>_best.h5 (+ .json: epoch and value) by val_mask_map50.

:class:`EvaluateCallback` runs an inference model built once beside the training
model; before each evaluation it receives the training weights by layer name,
in memory (no graph is built and no file is read per evaluation). Its values go
into the epoch's ``logs``, so they must run before the callbacks that read them
(TensorBoard, checkpoints): :func:`training_callbacks` returns them in that order,
and Keras adds History and the progress bar after every given callback.
"""
from __future__ import annotations

import json
import math
import os
import time
import warnings
import weakref
from typing import TYPE_CHECKING, Any

import keras

from mrcnn import weights as weight_files
from mrcnn.checkpoints import non_finite_weights
from mrcnn.evaluation import (coco_results, detect_dataset, ground_truth, run_cocoeval,
                              summarize)

if TYPE_CHECKING:
    from mrcnn.config import Config
    from mrcnn.dataset import Dataset
    from mrcnn.model import MaskRCNN

# Logged name: (pycocotools evaluation type, summary number).
EVALUATION_METRICS = {"val_map50": ("bbox", "AP50"), "val_map": ("bbox", "AP"),
                      "val_mask_map50": ("segm", "AP50"), "val_mask_map": ("segm", "AP")}
DEFAULT_MONITOR = "val_mask_map50"
# Config values the Config constructor derives; they are not settings to copy.
_DERIVED = ("BATCH_SIZE", "IMAGE_SHAPE", "IMAGE_META_SIZE", "BACKBONE",
            "COMPUTE_BACKBONE_SHAPE")
# One inference twin per training MaskRCNN, reused by every train() call.
_DETECTORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def copy_weights(source: keras.Model, target: keras.Model) -> None:
    """Assigns the weights of `source`'s layers to the same-named layers of `target`.

    Raises:
        ValueError: a weighted layer of `target` missing in `source`, or other shapes.
    """
    sources = weight_files.weighted_layers(source)
    for name, layer in weight_files.weighted_layers(target).items():
        if name not in sources:
            raise ValueError(f"layer {name!r} of {target.name} is not in {source.name}: the "
                             "two models must be built from the same config")
        for to, value in zip(layer.weights, sources[name].weights):
            if tuple(to.shape) != tuple(value.shape):
                raise ValueError(f"layer {name!r}: weight {to.path} has shape {to.shape} "
                                 f"but {value.path} has {value.shape}")
            to.assign(value.value)


def evaluation_config(config: Config, min_confidence: float = 0.0) -> Config:
    """`config` set up to evaluate: one device, batches of the training BATCH_SIZE,
    detections from `min_confidence` up (COCO scoring wants them all), and whole
    images where training takes random crops (IMAGE_RESIZE_MODE "crop" becomes "pad64")."""
    settings = {k: v for k, v in vars(config).items() if k.isupper() and k not in _DERIVED}
    settings.update(GPU_COUNT=1, IMAGES_PER_GPU=config.BATCH_SIZE,
                    DETECTION_MIN_CONFIDENCE=min_confidence)
    if config.IMAGE_RESIZE_MODE == "crop":
        settings["IMAGE_RESIZE_MODE"] = "pad64"
    return type(type(config).__name__, (type(config),), settings)()


def inference_twin(model: MaskRCNN, min_confidence: float = 0.0) -> MaskRCNN:
    """An inference-mode MaskRCNN with `model`'s :func:`evaluation_config`, built once
    per `model` (and `min_confidence`)."""
    twin = _DETECTORS.get(model)
    if twin is None or twin.config.DETECTION_MIN_CONFIDENCE != min_confidence:
        twin = type(model)("inference", evaluation_config(model.config, min_confidence),
                           model.model_dir)
        _DETECTORS[model] = twin
    return twin


class EvaluateCallback(keras.callbacks.Callback):
    """Every `every` epochs, COCO evaluation of the current weights on a dataset.

    Writes into the epoch's logs ``val_map50`` and ``val_map`` (boxes, AP at IoU
    0.5 and over 0.5:0.95) and ``val_mask_map50`` and ``val_mask_map`` (masks).

    Args:
        detector: an inference-mode MaskRCNN built from the training config
            (:func:`inference_twin`); it receives the training weights before
            each evaluation.
        dataset: the prepared validation dataset.
        every: evaluate after every `every`-th epoch (1-based: epochs N, 2N, ...).
        limit: evaluate the first `limit` images; None or 0 for all.
        verbose: 1 prints the values and the time each evaluation took.

    An evaluation that raises (e.g. an unreadable validation image) is logged as
    NaN values with a warning, so that the epoch's checkpoint is still written.

    Attributes:
        seconds: duration of the last evaluation.
    """

    def __init__(self, detector: Any, dataset: Dataset, every: int = 1,
                 limit: int | None = None, verbose: int = 1):
        super().__init__()
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"evaluate every {every!r} epochs: give a whole number >= 1")
        self.detector, self.dataset, self.every, self.verbose = detector, dataset, every, verbose
        self.image_ids = list(dataset.image_ids)[:limit or None]
        if not self.image_ids:
            raise ValueError("the evaluation dataset has no images (is it prepared?)")
        self._truth = None
        self.seconds = 0.0

    def evaluate(self) -> dict:
        """The four values for the detector's current weights."""
        if self._truth is None:
            # Built once; it serves every evaluation. A dataset read from one COCO
            # file is scored against that file (its crowds and areas), as
            # evaluate_coco does; any other against load_mask.
            self._truth = ground_truth(self.dataset, self.image_ids,
                                       getattr(self.dataset, "coco_ground_truth", None))
        detections = detect_dataset(self.detector, self.dataset, self.image_ids, verbose=0)
        results = coco_results(detections, self._truth)
        stats = {t: summarize(run_cocoeval(results, self._truth, t), self._truth,
                              self.dataset.class_names) for t in ("bbox", "segm")}
        return {name: stats[t][key] for name, (t, key) in EVALUATION_METRICS.items()}

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if (epoch + 1) % self.every:
            return
        start = time.perf_counter()
        copy_weights(self.model, self.detector.keras_model)
        try:
            values = self.evaluate()
        except Exception as error:  # noqa: BLE001 - any failure here must not cost the epoch
            # The epoch's checkpoint and resume state are written by the callbacks
            # after this one: a bad validation image must not lose them.
            warnings.warn(f"evaluation after epoch {epoch + 1} failed and is skipped "
                          f"({type(error).__name__}: {error}); its values are logged as "
                          "NaN and training goes on. Fix the validation dataset, or train "
                          "without evaluate_every.", stacklevel=2)
            values = {name: math.nan for name in EVALUATION_METRICS}
        self.seconds = time.perf_counter() - start
        if logs is not None:
            logs.update(values)
        if self.verbose:
            print(f"\nepoch {epoch + 1}: " + ", ".join(f"{k} {v:.4f}" for k, v in values.items())
                  + f" ({len(self.image_ids)} images, {self.seconds:.1f} s)")


class _Monitor:
    """The best value so far of a logged quantity; "loss" values improve downwards."""

    def __init__(self, name: str, mode: str = "auto"):
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode is {mode!r}; use 'auto', 'min' or 'max'")
        self.name = name
        self.lower_is_better = "loss" in name if mode == "auto" else mode == "min"
        self.best, self.best_epoch = None, None
        self._warned = False

    def read(self, logs: dict | None) -> float | None:
        """The value in `logs`, or None (with one warning for a name never logged)."""
        value = (logs or {}).get(self.name)
        if value is None and self.name not in EVALUATION_METRICS and not self._warned:
            self._warned = True
            warnings.warn(f"monitored value {self.name!r} is not logged; logged: "
                          f"{', '.join(sorted(logs or {}))}", stacklevel=3)
        return None if value is None else float(value)

    def improves(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.best is None:
            return True
        return value < self.best if self.lower_is_better else value > self.best


class BestCheckpoint(keras.callbacks.Callback):
    """Keeps the weights of the epoch with the best monitored value.

    Writes `path` (classic HDF5 layout) and beside it a JSON ``{"epoch",
    "monitor", "value"}``, epochs 1-based as in the checkpoint names. A JSON
    already there for the same monitor is the record to beat, so that a second
    ``train()`` stage in the same log folder continues it.

    Args:
        path: e.g. ``LOG_DIR/mask_rcnn_<name>_best.h5``.
        monitor: a name in the epoch's logs ("val_mask_map50", "val_loss", ...).
        mode: "auto" (lower is better for names with "loss"), "min" or "max".
        verbose: 1 prints a line when a new best is saved.
    """

    def __init__(self, path: str, monitor: str = DEFAULT_MONITOR, mode: str = "auto",
                 verbose: int = 1):
        super().__init__()
        self.path, self.verbose = path, verbose
        self.record_path = os.path.splitext(path)[0] + ".json"
        self.monitor = _Monitor(monitor, mode)
        if os.path.isfile(self.record_path):
            with open(self.record_path, encoding="utf-8") as f:
                record = json.load(f)
            if record.get("monitor") == monitor:
                self.monitor.best, self.monitor.best_epoch = record["value"], record["epoch"]

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = self.monitor.read(logs)
        if value is None or not self.monitor.improves(value):
            return
        if non_finite_weights(self.model):
            # Never the best: the epoch checkpoint after this callback stops the run.
            return
        self.monitor.best, self.monitor.best_epoch = value, epoch + 1
        weight_files.save_weights(self.model, self.path)
        partial = self.record_path + ".partial"
        with open(partial, "w", encoding="utf-8") as f:
            json.dump({"epoch": epoch + 1, "monitor": self.monitor.name, "value": value}, f)
        os.replace(partial, self.record_path)
        if self.verbose:
            print(f"\nepoch {epoch + 1}: best {self.monitor.name} {value:.4f}, saved {self.path}")


class EarlyStop(keras.callbacks.Callback):
    """Stops training when a logged value has not improved for `patience` epochs.

    Args:
        monitor: a name in the epoch's logs.
        patience: epochs after the best one to wait; training stops at the end of
            the first epoch where the value is logged and the best is at least
            `patience` epochs old.
        mode: "auto" (lower is better for names with "loss"), "min" or "max".
        verbose: 1 prints a line when it stops training.

    Attributes:
        stopped_epoch: the 1-based epoch after which training stopped, or None.
    """

    def __init__(self, monitor: str = DEFAULT_MONITOR, patience: int = 5, mode: str = "auto",
                 verbose: int = 1):
        super().__init__()
        if not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience is {patience!r}: give a whole number of epochs >= 1")
        self.monitor, self.patience, self.verbose = _Monitor(monitor, mode), patience, verbose
        self.stopped_epoch = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.stopped_epoch = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = self.monitor.read(logs)
        if value is None or math.isnan(value):  # NaN: a skipped evaluation
            return
        if self.monitor.improves(value):
            self.monitor.best, self.monitor.best_epoch = value, epoch + 1
        elif epoch + 1 - self.monitor.best_epoch >= self.patience:
            self.model.stop_training = True
            self.stopped_epoch = epoch + 1
            if self.verbose:
                print(f"\nepoch {epoch + 1}: early stop, {self.monitor.name} best "
                      f"{self.monitor.best:.4f} at epoch {self.monitor.best_epoch}")


def best_checkpoint_path(model: MaskRCNN) -> str:
    """``LOG_DIR/mask_rcnn_<name>_best.h5`` beside the numbered checkpoints."""
    return model.checkpoint_path.replace("{epoch:04d}", "best")


def best_record(model: MaskRCNN) -> dict | None:
    """``{"epoch", "monitor", "value"}`` of the model's best checkpoint, None if there
    is none yet."""
    path = os.path.splitext(best_checkpoint_path(model))[0] + ".json"
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def training_callbacks(model: MaskRCNN, val_dataset: Dataset,
                       evaluate_every: int | None = None, evaluate_limit: int | None = None,
                       early_stop: int | None = None, monitor: str | None = None,
                       writer: bool = True) -> list:
    """The callbacks for ``MaskRCNN.train``'s keywords, in the order they must run.

    Args:
        model: the training MaskRCNN.
        val_dataset: the validation dataset.
        evaluate_every: COCO evaluation every N epochs (None: none).
        evaluate_limit: evaluate the first N validation images (None: all).
        early_stop: patience in epochs (None: no early stopping).
        monitor: the value that picks the best checkpoint and stops early; default
            "val_mask_map50" with evaluation, else "val_loss". Giving any of
            `evaluate_every`, `early_stop`, `monitor` keeps the best checkpoint.
        writer: False on the non-chief workers of a multi-worker run: no best
            checkpoint (they still evaluate and stop early, as the chief does, so that
            every worker runs the same steps).

    Returns:
        [EvaluateCallback?, BestCheckpoint?, EarlyStop?], empty without keywords.

    Raises:
        ValueError: an evaluation value monitored without `evaluate_every`.
    """
    if evaluate_every is None and early_stop is None and monitor is None:
        return []
    evaluating = evaluate_every is not None
    monitor = monitor or (DEFAULT_MONITOR if evaluating else "val_loss")
    if monitor in EVALUATION_METRICS and not evaluating:
        raise ValueError(f"monitor {monitor!r} is computed by the evaluation: pass "
                         "evaluate_every=N (mrcnn train --evaluate-every N) or monitor "
                         "'val_loss'")
    callbacks = []
    if evaluating:
        callbacks.append(EvaluateCallback(inference_twin(model), val_dataset, evaluate_every,
                                          evaluate_limit))
    if writer:
        callbacks.append(BestCheckpoint(best_checkpoint_path(model), monitor))
    if early_stop is not None:
        callbacks.append(EarlyStop(monitor, early_stop))
    return callbacks
