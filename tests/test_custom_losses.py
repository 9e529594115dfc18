"""LOSS_FUNCTIONS, EXTRA_LOSSES and TRAINING_METRICS: checks, display, reload, the CLI,
and a short fit that shows every chosen loss and monitor in History."""
import json
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from mrcnn import losses
from mrcnn.cli import build_parser, loss_settings
from mrcnn.config import LOSS_NAMES, ConfigError
from mrcnn.config_presets import derive_config
from mrcnn.data import DataGenerator
from mrcnn.graph.losses import LossLayer, MonitorLayer, positive_roi_masks
from mrcnn.model import MaskRCNN
from samples.shapes.train_shapes import FastShapesConfig

MONITOR_NAMES = ["roi_accuracy", "mask_iou", "positive_fraction"]


@keras.saving.register_keras_serializable(package="tests")
class MaskAreaLoss:
    """A user's loss term with its own hyper-parameter: ``scale`` × the squared
    difference between predicted and target mask area of the positive ROIs."""

    def __init__(self, scale: float):
        self.scale = scale

    def __call__(self, target_mask, target_class_ids, mrcnn_mask):
        target, pred = positive_roi_masks(target_mask, target_class_ids, mrcnn_mask)
        area_error = tf.reduce_mean(pred, axis=[1, 2]) - tf.reduce_mean(target, axis=[1, 2])
        return self.scale * tf.math.divide_no_nan(tf.reduce_sum(tf.square(area_error)),
                                                  tf.cast(tf.size(area_error), tf.float32))

    def get_config(self):
        return {"scale": self.scale}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def every_tensor(*tensors):
    """A monitor taking every documented graph tensor (its shapes are checked below)."""
    return tf.constant(0.0)


def fixed_batch_losses(model, dataset, passes=2):
    """The weighted losses (name -> value) on the first batch of ``dataset``, averaged
    over ``passes`` forward passes (the ROI sampling is random)."""
    km = model.keras_model
    inputs = list(DataGenerator(dataset, model.config, shuffle=False, seed=0)[0][0])
    weights = {layer.name: layer.weight for layer in km.layers if isinstance(layer, LossLayer)}
    totals = dict.fromkeys(weights, 0.0)
    for _ in range(passes):
        outputs = dict(zip(km.output_names, km(inputs, training=True)))
        for name, weight in weights.items():
            totals[name] += weight * float(outputs[name][0]) / passes
    return totals


def custom_settings():
    return {
        "LOSS_FUNCTIONS": {"rpn_class_loss": "focal",
                           "mrcnn_class_loss": losses.focal(gamma=2.0, alpha=0.25),
                           "mrcnn_bbox_loss": keras.losses.Huber(delta=1.0),
                           "mrcnn_mask_loss": "dice"},
        "EXTRA_LOSSES": {"mask_area_loss": MaskAreaLoss(scale=4.0)},
        "LOSS_WEIGHTS": {"mrcnn_mask_loss": 2.0, "mask_area_loss": 0.5},
        "TRAINING_METRICS": {**{n: n for n in MONITOR_NAMES},
                             "every_tensor": (every_tensor, tuple(losses.GRAPH_TENSORS))},
    }


@pytest.fixture(scope="module")
def trained(shapes, tmp_path_factory):
    """The main job's compact model, smaller still, with custom losses and monitors,
    fitted for 3 epochs of 2 steps. (Its RPN finds positive ROIs from the first step,
    which the ResNet-50 tiny config does not, so every loss takes part.)"""
    keras.utils.set_random_seed(1)
    config = derive_config(FastShapesConfig, NAME="custom", IMAGES_PER_GPU=2,
                           TRAIN_ROIS_PER_IMAGE=16, POST_NMS_ROIS_TRAINING=300,
                           STEPS_PER_EPOCH=2, VALIDATION_STEPS=1, **custom_settings())
    model = MaskRCNN("training", config, str(tmp_path_factory.mktemp("logs")))
    losses_before = fixed_batch_losses(model, shapes)
    history = model.train(shapes, shapes, learning_rate=0.001, epochs=3, layers="all",
                          workers=1)
    return model, history.history, losses_before


def test_history_shows_every_loss_and_monitor_with_val_twins(trained):
    _, history, _ = trained
    names = ["loss", *LOSS_NAMES, "mask_area_loss", *MONITOR_NAMES, "every_tensor"]
    assert set(history) == set(names) | {f"val_{n}" for n in names}
    assert all(np.isfinite(values).all() and len(values) == 3 for values in history.values())
    assert 0 < history["positive_fraction"][0] <= 1
    assert history["mask_area_loss"][0] > 0


def test_loss_goes_down(trained, shapes):
    model, _, before = trained
    after = fixed_batch_losses(model, shapes)
    # A head's loss that is 0 at the start counted nothing (no positive ROI yet, which
    # changes as the RPN learns): compare the losses that counted something before.
    counted = [name for name, value in before.items() if value > 0]
    assert {"rpn_class_loss", "mrcnn_class_loss"} <= set(counted)  # focal, both heads
    assert sum(after[n] for n in counted) < 0.8 * sum(before[n] for n in counted), \
        (before, after)


def test_layers_keep_the_loss_names_and_hold_the_chosen_functions(trained):
    model, _, _ = trained
    km = model.keras_model
    assert km.get_layer("mrcnn_class_loss").function == losses.BoundLoss(
        "mrcnn_class_loss", losses.focal(2.0, 0.25))
    assert km.get_layer("mrcnn_mask_loss").function.loss == losses.dice()
    assert km.get_layer("mrcnn_mask_loss").weight == 2.0
    assert km.get_layer("mask_area_loss").function.scale == 4.0
    assert isinstance(km.get_layer("mask_iou"), MonitorLayer)
    # Each layer (the user's too, registered) reloads from JSON without custom objects.
    for name in ("mrcnn_class_loss", "mrcnn_bbox_loss", "mask_area_loss", "mask_iou"):
        text = json.dumps(keras.saving.serialize_keras_object(km.get_layer(name)))
        clone = keras.saving.deserialize_keras_object(json.loads(text))
        assert clone.get_config() == km.get_layer(name).get_config()


def test_every_documented_graph_tensor_is_wired_with_its_rank(trained):
    model, _, _ = trained
    config = model.config
    dims = {"NC": config.NUM_CLASSES, "T": config.TRAIN_ROIS_PER_IMAGE,
            "h": config.MASK_SHAPE[0], "w": config.MASK_SHAPE[1]}
    inputs = model.keras_model.get_layer("every_tensor").input
    for tensor, (name, spec) in zip(inputs, losses.GRAPH_TENSORS.items()):
        assert len(tensor.shape) == len(spec.shape), name
        for actual, documented in zip(tensor.shape, spec.shape):
            expected = dims.get(documented, documented)
            if isinstance(expected, int) and actual is not None:
                assert actual == expected, (name, tensor.shape, spec.shape)


def test_monitors_are_not_part_of_the_loss(trained, shapes):
    model, _, _ = trained
    km = model.keras_model
    inputs = DataGenerator(shapes, model.config, shuffle=False, seed=0)[0][0]
    values = km(list(inputs), training=True)
    outputs = dict(zip(km.output_names, values))
    weights = {layer.name: layer.weight for layer in km.layers if isinstance(layer, LossLayer)}
    named = sum(weight * float(outputs[name][0]) for name, weight in weights.items())
    decay = model.config.WEIGHT_DECAY * sum(
        float(np.mean(w.numpy() ** 2)) for w in km.trainable_weights
        if not w.path.endswith(("gamma", "beta")))
    total = float(km.compute_loss(x=inputs, y_pred=values, training=True))
    assert set(weights) == {*LOSS_NAMES, "mask_area_loss"}
    assert float(outputs["positive_fraction"][0]) > 0
    assert total == pytest.approx(named + decay, rel=1e-4)


# ---------------------------------------------------------------- config checks

def test_display_shows_the_choices(tiny_config_class, capsys):
    derive_config(tiny_config_class, **custom_settings()).display()
    printed = capsys.readouterr().out
    assert "focal(gamma=2.0, alpha=0.25)" in printed and "'mrcnn_mask_loss': 'dice'" in printed
    assert "mask_area_loss" in printed and "roi_accuracy" in printed


def test_config_with_factory_losses_survives_to_dict_and_reload(tiny_config_class):
    config = derive_config(tiny_config_class, LOSS_FUNCTIONS={
        "mrcnn_class_loss": losses.class_weighted([0.5, 1, 2, 2]),
        "rpn_bbox_loss": losses.smooth_l1(beta=0.2),
        "rpn_class_loss": keras.losses.CategoricalFocalCrossentropy(gamma=3.0, alpha=0.5)})
    saved = json.dumps(keras.saving.serialize_keras_object(config.to_dict()["LOSS_FUNCTIONS"]))
    reloaded = derive_config(tiny_config_class,
                             LOSS_FUNCTIONS=keras.saving.deserialize_keras_object(
                                 json.loads(saved)))
    assert reloaded.LOSS_FUNCTIONS["mrcnn_class_loss"] == losses.class_weighted([0.5, 1, 2, 2])
    assert reloaded.LOSS_FUNCTIONS["rpn_bbox_loss"].beta == 0.2
    assert reloaded.LOSS_FUNCTIONS["rpn_class_loss"].get_config()["gamma"] == 3.0
    probe = losses.probe_tensors(config)
    for head in config.LOSS_FUNCTIONS:
        args = [probe[n] for n in losses.HEAD_INPUTS[head]]
        assert float(losses.head_loss(head, reloaded.LOSS_FUNCTIONS[head])(*args)) == \
            pytest.approx(float(losses.head_loss(head, config.LOSS_FUNCTIONS[head])(*args)))


@pytest.mark.parametrize("settings,message", [
    ({"LOSS_FUNCTIONS": {"mrcnn_class_loss": "focl"}}, r"mrcnn_class_loss.*'focl'.*'focal'"),
    ({"LOSS_FUNCTIONS": {"mrcnn_mask_loss": losses.focal()}}, r"mrcnn_mask_loss.*'dice'"),
    ({"LOSS_FUNCTIONS": {"rpn_bbox_loss": 0.5}}, r"rpn_bbox_loss.*type float.*'smooth_l1'"),
    ({"LOSS_FUNCTIONS": {"mrcnn_mask_loss": lambda target, ids, pred: pred}},
     r"mrcnn_mask_loss.*shape \[2, 4, 28, 28, 4\].*scalar"),
    ({"LOSS_FUNCTIONS": {"mask_loss": "dice"}}, r"mask_loss.*EXTRA_LOSSES"),
    ({"LOSS_FUNCTIONS": {"mrcnn_class_loss": "class_weighted:weights=[1, 2]"}},
     r"2 values for a head of 4 classes"),
    ({"LOSS_FUNCTIONS": {"mrcnn_class_loss": "focal:gama=2"}}, r"focal.*gama.*gamma, alpha"),
    ({"EXTRA_LOSSES": {"area": lambda target_mask, mrcnn_masks: 0.0}},
     r"EXTRA_LOSSES\['area'\] takes mrcnn_masks.*Graph tensors: rpn_match"),
    ({"EXTRA_LOSSES": {"area": lambda target_mask: tf.reduce_sum(target_mask, 0)}},
     r"EXTRA_LOSSES\['area'\] returns a value of shape"),
    ({"TRAINING_METRICS": ["mask_ious"]}, r"'mask_ious'.*roi_accuracy, mask_iou"),
    ({"TRAINING_METRICS": {"loss": "mask_iou"}}, r"'loss' cannot name"),
    ({"TRAINING_METRICS": "mask_iou"}, r"TRAINING_METRICS is 'mask_iou'"),
    ({"LOSS_WEIGHTS": {"area": 1.0}}, r"LOSS_WEIGHTS names unknown losses \['area'\]"),
])
def test_bad_specifications_raise_config_error(tiny_config_class, settings, message):
    with pytest.raises(ConfigError, match=message):
        derive_config(tiny_config_class, **settings)


def test_default_config_imports_no_tensorflow():
    code = ("import sys\nfrom mrcnn.config import Config\n"
            "class C(Config):\n    NAME = 'c'\n    NUM_CLASSES = 2\n"
            "C()\nprint('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


# ---------------------------------------------------------------- the command line

def test_cli_loss_and_metric_options_build_the_settings(tiny_config_class):
    args = build_parser().parse_args([
        "train", "--dataset", "shapes", "--weights", "none",
        "--loss", "mrcnn_class_loss=focal:gamma=2,alpha=0.25", "--loss", "mrcnn_mask_loss=bce_dice",
        "--loss", "iou_term=mrcnn.graph.monitors:mask_iou", "--loss-weight", "iou_term=0.1",
        "--metric", "mask_iou", "--metric", "accuracy=roi_accuracy"])
    settings = loss_settings(tiny_config_class, args.loss, args.metric, args.loss_weight)
    assert settings["LOSS_FUNCTIONS"] == {"mrcnn_class_loss": "focal:gamma=2,alpha=0.25",
                                          "mrcnn_mask_loss": "bce_dice"}
    assert settings["EXTRA_LOSSES"] == {"iou_term": "mrcnn.graph.monitors:mask_iou"}
    assert settings["TRAINING_METRICS"] == {"mask_iou": "mask_iou", "accuracy": "roi_accuracy"}
    assert settings["LOSS_WEIGHTS"] == {**tiny_config_class.LOSS_WEIGHTS, "iou_term": 0.1}
    config = derive_config(tiny_config_class, **settings)
    chosen = losses.training_losses(config)
    assert chosen["mrcnn_class_loss"][0].loss == losses.focal(2.0, 0.25)
    assert chosen["iou_term"][1] == ("target_mask", "target_class_ids", "mrcnn_mask")


def test_cli_help_documents_the_options_with_examples(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = capsys.readouterr().out
    assert "--loss mrcnn_class_loss=focal:gamma=2,alpha=0.25" in text
    for name in [*losses.FACTORIES, *losses.MONITORS]:
        assert name in text
