"""mAP during training: evaluation callback, best checkpoint, early stopping, find_last."""
import json
import os
import types

import h5py
import keras
import numpy as np
import pytest

from mrcnn import callbacks
from mrcnn.evaluation import detect_dataset, ground_truth, score_detections
from mrcnn.model import MaskRCNN
from mrcnn.weights import load_weights


def run_epochs(callback, model, values, name="val_mask_map50"):
    """Feeds `values` (None: not logged that epoch) to a callback as a fit loop would;
    returns the number of epochs run."""
    callback.set_model(model)
    model.stop_training = False
    callback.on_train_begin()
    for epoch, value in enumerate(values):
        # Each epoch changes the weights, so that the saved epoch can be told apart.
        model.layers[-1].kernel.assign(np.full(model.layers[-1].kernel.shape, epoch + 1.0))
        logs = {"loss": 1.0} if value is None else {"loss": 1.0, name: value}
        callback.on_epoch_end(epoch, logs)
        if model.stop_training:
            return epoch + 1
    return len(values)


@pytest.fixture
def small_model():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, name="dense")])
    return model


@pytest.mark.parametrize("values, patience, stopped", [
    ([0.1, 0.3, 0.2, 0.25, 0.3, 0.4], 2, 4),    # best at 2; 3 and 4 do not beat it
    ([0.1, 0.3, 0.2, 0.35, 0.3, 0.3], 2, 6),    # 4 improves, so 6 is two after it
    ([0.1, 0.2, 0.3, 0.4], 1, None),            # always improving
    ([0.5, None, 0.4, None, 0.4], 3, 5),        # epochs without a value still count
    ([float("nan"), 0.2, 0.1, 0.1], 2, 4),      # a failed (NaN) first evaluation is skipped
])
def test_early_stop_after_patience_epochs_without_improvement(small_model, values,
                                                              patience, stopped):
    stop = callbacks.EarlyStop("val_mask_map50", patience, verbose=0)
    ran = run_epochs(stop, small_model, values)
    assert stop.stopped_epoch == stopped
    assert ran == (stopped or len(values))


def test_early_stop_on_a_loss_waits_for_a_decrease(small_model):
    stop = callbacks.EarlyStop("val_loss", 2, verbose=0)
    assert run_epochs(stop, small_model, [3.0, 2.0, 2.5, 1.0, 1.5, 1.2], "val_loss") == 6
    assert stop.stopped_epoch == 6 and stop.monitor.best_epoch == 4


@pytest.mark.parametrize("name, values", [
    ("val_mask_map50", [0.1, 0.5, np.nan, 0.7, 0.6, 0.7]),
    ("val_loss", [3.0, 2.0, 2.5, 1.0, 1.5, 1.0]),
])
def test_best_checkpoint_is_the_argmax_of_the_monitored_value(small_model, tmp_path, name,
                                                              values):
    path = str(tmp_path / "mask_rcnn_x_best.h5")
    best = callbacks.BestCheckpoint(path, name, verbose=0)
    run_epochs(best, small_model, values, name)
    expected = np.nanargmin(values) if "loss" in name else np.nanargmax(values)
    record = json.loads((tmp_path / "mask_rcnn_x_best.json").read_text())
    assert record == {"epoch": int(expected) + 1, "monitor": name,
                      "value": values[expected]}
    # The saved weights are those of that epoch (run_epochs sets the kernel to epoch + 1).
    load_weights(small_model, path)
    assert np.all(small_model.layers[-1].kernel.numpy() == expected + 1)
    # A second stage in the same folder continues the record: a worse value saves nothing.
    again = callbacks.BestCheckpoint(path, name, verbose=0)
    run_epochs(again, small_model, [values[expected]], name)
    assert json.loads((tmp_path / "mask_rcnn_x_best.json").read_text()) == record


def test_non_finite_weights_are_never_the_best_checkpoint(small_model, tmp_path):
    best = callbacks.BestCheckpoint(str(tmp_path / "b.h5"), "val_mask_map50", verbose=0)
    best.set_model(small_model)
    small_model.layers[-1].kernel.assign(np.full((2, 1), np.nan))
    best.on_epoch_end(0, {"val_mask_map50": 0.3})  # the first value: it would be the best
    assert not (tmp_path / "b.h5").exists() and best.monitor.best is None


def test_a_value_that_is_never_logged_warns(small_model, tmp_path):
    best = callbacks.BestCheckpoint(str(tmp_path / "b.h5"), "val_mAP", verbose=0)
    with pytest.warns(UserWarning, match=r"'val_mAP' is not logged; logged: loss, val_mAP50"):
        run_epochs(best, small_model, [0.1, 0.2], "val_mAP50")
    assert not (tmp_path / "b.h5").exists()


def test_training_callbacks_checks_the_monitor(tiny_config_class, tmp_path):
    model = types.SimpleNamespace(checkpoint_path=str(tmp_path / "mask_rcnn_t_{epoch:04d}.h5"))
    assert callbacks.training_callbacks(model, None) == []
    with pytest.raises(ValueError, match="evaluate_every"):
        callbacks.training_callbacks(model, None, monitor="val_mask_map50")
    (best, stop) = callbacks.training_callbacks(model, None, early_stop=3)
    assert best.monitor.name == stop.monitor.name == "val_loss"
    assert best.path == str(tmp_path / "mask_rcnn_t_best.h5") and stop.patience == 3
    # A non-chief worker stops early as the chief does but writes no best checkpoint.
    (only_stop,) = callbacks.training_callbacks(model, None, early_stop=3, writer=False)
    assert isinstance(only_stop, callbacks.EarlyStop)
    with pytest.raises(ValueError, match="patience"):
        callbacks.training_callbacks(model, None, early_stop=0)


def test_evaluation_config(tiny_config_class):
    class Cropping(tiny_config_class):
        GPU_COUNT = 2
        IMAGE_RESIZE_MODE = "crop"
        DETECTION_MIN_CONFIDENCE = 0.7
    config = callbacks.evaluation_config(Cropping())
    assert isinstance(config, Cropping)
    assert (config.GPU_COUNT, config.BATCH_SIZE, config.DETECTION_MIN_CONFIDENCE) == (1, 4, 0.0)
    assert config.IMAGE_RESIZE_MODE == "pad64" and config.NUM_CLASSES == 4
    assert callbacks.evaluation_config(tiny_config_class(), 0.5).IMAGE_RESIZE_MODE == "square"


def test_find_last_skips_the_best_checkpoint(tiny_config_class, tmp_path):
    run = tmp_path / "tiny20240101T1200"
    run.mkdir()
    # Sound files: find_last passes over unreadable ones.
    for name in ("mask_rcnn_tiny_0001.h5", "mask_rcnn_tiny_0002.h5", "mask_rcnn_tiny_best.h5"):
        with h5py.File(run / name, "w") as handle:
            handle["layer/kernel:0"] = np.ones(3, np.float32)
    model = types.SimpleNamespace(config=tiny_config_class(), model_dir=str(tmp_path))
    assert MaskRCNN.find_last(model) == str(run / "mask_rcnn_tiny_0002.h5")


# ---------------------------------------------------------------- on a real model

class LogsSeen(keras.callbacks.Callback):
    """Records the keys of the logs that a callback after the evaluation receives."""

    def __init__(self):
        super().__init__()
        self.keys = []

    def on_epoch_end(self, epoch, logs=None):
        self.keys.append(sorted(logs))


@pytest.fixture(scope="module")
def trained(tiny_config_class, shapes, tmp_path_factory):
    """Two epochs of a ResNet-18 tiny model with evaluation every 2 epochs."""
    class Config(tiny_config_class):
        BACKBONE = "resnet18"
    logs = tmp_path_factory.mktemp("logs")
    model = MaskRCNN("training", Config(), str(logs))
    # With a zero kernel (left untrained) class 1 wins every ROI: the random model
    # detects something.
    kernel, bias = model.keras_model.get_layer("mrcnn_class_logits").weights
    kernel.assign(np.zeros(kernel.shape))
    bias.assign([0.0, 3.0, 1.0, 0.0])
    seen = LogsSeen()
    history = model.train(shapes, shapes, 0.001, epochs=2, layers=r"(rpn\_.*)|(fpn\_.*)",
                          custom_callbacks=[seen], workers=1, evaluate_every=2,
                          evaluate_limit=4)
    return model, history, seen


def test_history_has_the_evaluation_every_n_epochs(trained):
    model, history, seen = trained
    assert history.epoch == [0, 1] and model.epoch == 2
    for name in ("val_map50", "val_map", "val_mask_map50", "val_mask_map"):
        # History keeps a value per epoch where it was logged: epoch 2 only.
        assert len(history.history[name]) == 1 and len(history.history["loss"]) == 2, name
        assert 0.0 <= history.history[name][0] <= 1.0
    # The callbacks after it (TensorBoard, checkpoints, custom ones) see the values.
    assert "val_map50" in seen.keys[1] and "val_map50" not in seen.keys[0]


def test_evaluation_equals_a_separate_evaluation_of_the_same_weights(trained, shapes):
    model, history, _ = trained
    twin = callbacks.inference_twin(model)
    assert callbacks.inference_twin(model) is twin  # built once
    copied = [w.numpy() for w in twin.keras_model.weights]
    # The epoch-2 checkpoint, read from disk, holds the weights the callback copied.
    twin.load_weights(model.checkpoint_path.format(epoch=2))
    for before, after in zip(copied, twin.keras_model.weights):
        np.testing.assert_array_equal(before, after.numpy())
    image_ids = list(shapes.image_ids)[:4]
    detections = detect_dataset(twin, shapes, image_ids, verbose=0)
    assert sum(len(d.scores) for d in detections) > 0
    truth = ground_truth(shapes, image_ids)
    for name, (eval_type, key) in callbacks.EVALUATION_METRICS.items():
        stats = score_detections(detections, truth, shapes.class_names, eval_type)
        assert history.history[name][0] == pytest.approx(stats[key], abs=1e-12), name


def test_best_checkpoint_beside_the_numbered_ones(trained):
    model, history, _ = trained
    files = sorted(os.listdir(model.log_dir))
    assert {"mask_rcnn_tiny_0001.h5", "mask_rcnn_tiny_0002.h5", "mask_rcnn_tiny_best.h5",
            "mask_rcnn_tiny_best.json"} <= set(files)
    record = json.loads(open(os.path.join(model.log_dir, "mask_rcnn_tiny_best.json")).read())
    assert record == {"epoch": 2, "monitor": "val_mask_map50",
                      "value": history.history["val_mask_map50"][0]}
    assert model.find_last().endswith("mask_rcnn_tiny_0002.h5")


def test_cli_train_passes_the_evaluation_flags(monkeypatch, tmp_path):
    from mrcnn import cli, model as model_module

    calls = []

    class FakeMaskRCNN:
        def __init__(self, mode, config, model_dir):
            self.epoch, self.config = 0, config
            self.checkpoint_path = str(tmp_path / "mask_rcnn_shapes_{epoch:04d}.h5")

        def train(self, *args, **kwargs):
            calls.append(kwargs)
            self.epoch = args[3]

    monkeypatch.setattr(model_module, "MaskRCNN", FakeMaskRCNN)
    assert cli.main(["train", "--dataset", "shapes", "--weights", "none", "--epochs", "2",
                     "--train-count", "2", "--val-count", "2", "--evaluate-every", "2",
                     "--early-stop", "3", "--limit", "5", "--logs", str(tmp_path)]) == 0
    assert [(c["evaluate_every"], c["evaluate_limit"], c["early_stop"], c["monitor"])
            for c in calls] == [(2, 5, 3, None)]
    assert cli.main(["train", "--dataset", "shapes", "--weights", "none", "--epochs", "1",
                     "--train-count", "2", "--val-count", "2", "--monitor", "val_loss",
                     "--logs", str(tmp_path)]) == 0
    assert (calls[-1]["evaluate_every"], calls[-1]["evaluate_limit"],
            calls[-1]["monitor"]) == (None, None, "val_loss")
