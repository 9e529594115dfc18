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
    """The main job's compact model, smaller still."""
    NAME = "trainee"
    IMAGES_PER_GPU = 2
    TRAIN_ROIS_PER_IMAGE = 16
    POST_NMS_ROIS_TRAINING = 100
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


def test_checkpoint_per_epoch_and_resume_at_next_epoch(trained, shapes):
    model, _ = trained
    checkpoint = model.find_last()
    assert os.path.basename(checkpoint) == "mask_rcnn_trainee_0001.h5"
    resumed = MaskRCNN("training", TrainConfig(), model.model_dir)
    resumed.load_weights(checkpoint)
    assert resumed.epoch == 1 and resumed.log_dir == model.log_dir
    for mine, theirs in zip(resumed.keras_model.weights, model.keras_model.weights):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    history = resumed.train(shapes, shapes, learning_rate=0.01, epochs=2, layers="heads",
                            workers=1)
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


def test_total_loss_is_weighted_losses_plus_weight_decay(trained, shapes):
    model, _ = trained
    model.set_trainable(LAYER_PRESETS["all"])
    model.compile(0.0, 0.0)
    inputs = DataGenerator(shapes, model.config, shuffle=False, seed=0)[0][0]
    outputs = model.keras_model(list(inputs), training=True)
    named = sum(float(v[0]) for v in outputs[-len(LOSS_NAMES):])
    decay = model.config.WEIGHT_DECAY * sum(
        float(np.mean(w.numpy() ** 2)) for w in model.keras_model.trainable_weights
        if not w.path.endswith(("gamma", "beta")))
    total = float(model.keras_model.compute_loss(x=inputs, y_pred=outputs, training=True))
    assert total == pytest.approx(named + decay, rel=1e-4)


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
