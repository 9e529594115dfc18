"""Training mode: the loss goes down, every named loss is reported, checkpoints resume."""
import glob
import os

import numpy as np
import pytest

from mrcnn.config import LOSS_NAMES
from mrcnn.data import DataGenerator
from mrcnn.model import LAYER_PRESETS, MaskRCNN
from samples.shapes.train_shapes import FastShapesConfig


class TrainConfig(FastShapesConfig):
    """The main job's compact model, smaller still.

    Every positive proposal is kept and no negative (ROI_POSITIVE_RATIO 1 over as many
    rows as proposals): each pass over a batch samples the same ROIs, in another order
    only, so the losses of a batch repeat to rounding.
    """
    NAME = "trainee"
    IMAGES_PER_GPU = 2
    POST_NMS_ROIS_TRAINING = 32
    TRAIN_ROIS_PER_IMAGE = 32
    ROI_POSITIVE_RATIO = 1.0
    STEPS_PER_EPOCH = 2
    VALIDATION_STEPS = 1


@pytest.fixture(scope="module")
def trained(shapes, tmp_path_factory):
    """A model trained for one epoch, and its History."""
    model = MaskRCNN("training", TrainConfig(), str(tmp_path_factory.mktemp("logs")))
    history = model.train(shapes, shapes, learning_rate=0.01, epochs=1, layers="all", workers=1)
    return model, history


def test_history_has_loss_and_every_named_loss_with_val_twins(trained):
    _, history = trained
    expected = {"loss", *LOSS_NAMES, "val_loss", *(f"val_{n}" for n in LOSS_NAMES)}
    assert set(history.history) == expected
    assert all(np.isfinite(v[0]) for v in history.history.values())


HEAD_SAMPLES = ("rpn_model", "fpn_p2", "mrcnn_class_logits", "mrcnn_class_bn1")


def _weights(layers) -> dict:
    """{layer/index: values} of every weight of `layers`, non-trainable ones included."""
    return {f"{layer.name}/{i}": w.numpy() for layer in layers
            for i, w in enumerate(layer.weights)}


def _backbone_layers(keras_model):
    return [layer for layer in keras_model.layers if layer.name.startswith("compact")]


@pytest.fixture(scope="module")
def resumed(trained, shapes):
    """The first epoch's checkpoint loaded into a new model, which then trains its heads
    for epoch 2; with the weights before that epoch and its History."""
    model, _ = trained
    checkpoint = model.find_last()
    assert os.path.basename(checkpoint) == "mask_rcnn_trainee_0001.h5"
    resumed = MaskRCNN("training", TrainConfig(), model.model_dir)
    resumed.load_weights(checkpoint)
    km = resumed.keras_model
    before = (_weights(_backbone_layers(km)), _weights(km.get_layer(n) for n in HEAD_SAMPLES),
              [w.numpy() for w in km.weights])
    history = resumed.train(shapes, shapes, learning_rate=0.01, epochs=2, layers="heads",
                            workers=1)
    return resumed, history, before


def test_checkpoint_per_epoch_and_resume_at_next_epoch(trained, resumed, shapes):
    model, _ = trained
    resumed, history, (_, _, loaded) = resumed
    assert resumed.log_dir == model.log_dir
    for mine, theirs in zip(loaded, model.keras_model.weights):
        np.testing.assert_array_equal(mine, theirs.numpy())
    assert history.epoch == [1]
    assert resumed.epoch == 2
    assert sorted(os.path.basename(p) for p in glob.glob(os.path.join(model.log_dir, "*.h5"))) \
        == ["mask_rcnn_trainee_0001.h5", "mask_rcnn_trainee_0002.h5"]
    with pytest.raises(ValueError, match="epoch 2 already"):
        resumed.train(shapes, shapes, learning_rate=0.01, epochs=2, layers="heads")


def test_repeated_steps_on_one_batch_lower_the_loss(trained, shapes):
    model, _ = trained
    model.set_trainable(LAYER_PRESETS["all"])
    model.compile(0.005, 0.9)
    inputs = DataGenerator(shapes, model.config, shuffle=False, seed=0)[0][0]
    logs = [model.keras_model.train_on_batch(inputs, return_dict=True) for _ in range(12)]
    # The sampled training ROIs vary from step to step; the RPN targets do not.
    rpn = [log["rpn_class_loss"] + log["rpn_bbox_loss"] for log in logs]
    total = [log["loss"] for log in logs]
    assert np.mean(rpn[-3:]) < 0.95 * np.mean(rpn[:3]), rpn
    assert np.mean(total[-3:]) < np.mean(total[:3]), total


def test_reported_loss_is_the_named_losses_plus_weight_decay_and_val_is_evaluate(
        trained, shapes):
    model, _ = trained
    km, config = model.keras_model, model.config
    model.set_trainable(LAYER_PRESETS["all"])
    model.compile(0.0, 0.0)  # no step changes the weights: the decay term stays fixed

    def batches():  # the same batches each time: a new generator starts at its epoch 0
        return DataGenerator(shapes, config, shuffle=False, seed=1, workers=1)
    history = km.fit(batches(), epochs=1, steps_per_epoch=2, validation_data=batches(),
                     validation_steps=2, verbose=0, shuffle=False)
    logs = {name: values[0] for name, values in history.history.items()}
    decay = config.WEIGHT_DECAY * sum(float(np.mean(w.numpy() ** 2))
                                      for w in km.trainable_weights
                                      if not w.path.endswith(("gamma", "beta")))
    assert decay > 0
    for prefix in ("", "val_"):
        named = sum(logs[prefix + name] for name in LOSS_NAMES)
        assert logs[prefix + "loss"] == pytest.approx(named + decay, rel=1e-4), prefix
    evaluated = km.evaluate(batches(), steps=2, return_dict=True, verbose=0)
    for name in ("loss", *LOSS_NAMES):
        assert logs[f"val_{name}"] == pytest.approx(evaluated[name], rel=1e-4, abs=1e-6), name


def test_train_heads_leaves_the_backbone_and_its_statistics_alone(resumed):
    model, _, (backbone, heads, _) = resumed
    km = model.keras_model
    assert any("_bn" in name for name in backbone)   # BatchNorm moving statistics included
    after = _weights(_backbone_layers(km))
    for name, before in backbone.items():
        np.testing.assert_array_equal(after[name], before, err_msg=name)
    after = _weights(km.get_layer(n) for n in HEAD_SAMPLES)
    assert not [name for name, before in heads.items() if np.array_equal(after[name], before)]


def test_layer_presets_freeze_the_backbone_for_heads(trained):
    model, _ = trained
    trainable = model.set_trainable(LAYER_PRESETS["heads"])
    assert "mrcnn_mask" in trainable and "rpn_conv_shared" in trainable
    assert "fpn_p2" in trainable and not any(n.startswith("compact") for n in trainable)
    km = model.keras_model
    assert not km.get_layer("compact1_conv0").trainable and km.get_layer("fpn_c2p2").trainable
    model.set_trainable(LAYER_PRESETS["all"])
    assert km.get_layer("compact1_conv0").trainable
    # Inside the nested RPN model each layer follows the regex on its own, also
    # when the model's own flag flips (Keras then sets all its layers).
    model.set_trainable("mrcnn_.*")
    assert not km.get_layer("rpn_model").trainable
    model.set_trainable("rpn_class_raw")
    rpn = km.get_layer("rpn_model")
    assert rpn.get_layer("rpn_class_raw").trainable
    assert not rpn.get_layer("rpn_conv_shared").trainable
    assert not km.get_layer("mrcnn_mask").trainable
