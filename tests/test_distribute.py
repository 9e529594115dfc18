"""tf.distribute: two logical CPU replicas take the step one device takes, detect and train."""
import json
import math
import os
import subprocess
import sys

import keras
import pytest

from conftest import TinyConfig
from mrcnn.model import MaskRCNN

TESTS = os.path.dirname(os.path.abspath(__file__))


def test_gpu_count_beyond_the_visible_gpus_names_the_fix(tmp_path):
    config = type("TwoGpus", (TinyConfig,), {"GPU_COUNT": 2, "IMAGES_PER_GPU": 1})()
    with pytest.raises(ValueError, match="GPU_COUNT is 2 but TensorFlow sees 0 GPUs"):
        MaskRCNN("training", config, str(tmp_path))


def test_mirrored_step_on_two_replicas_equals_one_device(tmp_path):
    # Logical devices must be configured before TensorFlow starts: a fresh process.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [os.path.dirname(TESTS), TESTS, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, os.path.join(TESTS, "mirrored_step.py"),
                           str(tmp_path), "1"], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    one, two = result["logs"]
    # rpn_bbox_loss is over the positive anchors, a different count in each image.
    assert one["rpn_bbox_loss"] > 0 and set(one) == set(two)
    for name in one:
        assert two[name] == pytest.approx(one[name], rel=1e-5, abs=1e-7), name
    # The heads (a third of the weight tensors here) moved, and moved alike.
    assert 0 < result["changed"] < result["weights"]
    assert result["max_weight_rel"] < 1e-5
    assert result["detected"] == [["class_ids", "masks", "rois", "scores"]] * 2
    # train() (fit with the bool gt masks) on the replicas: one epoch of two steps,
    # every loss reported and finite, the classic checkpoint and resume state written.
    fit = result["fit"]
    assert set(one) <= set(fit) and all(len(values) == 1 for values in fit.values())
    assert all(math.isfinite(values[0]) for values in fit.values()), fit
    assert {"mask_rcnn_tiny_0001.h5", "train_state.npz"} <= set(result["checkpoints"])


def batch_norm_layers(model) -> dict:
    """{classic layer name: BatchNormalization layer} of a model, entering nested models
    and TimeDistributed wrappers (named by the wrapper, as the weight files name them)."""
    found = {}
    for layer in model.layers:
        inner = getattr(layer, "layer", layer)  # a TimeDistributed wrapper's layer
        if isinstance(inner, keras.Model):
            found.update(batch_norm_layers(inner))
        elif isinstance(inner, keras.layers.BatchNormalization):
            found[layer.name] = inner
    return found


def test_sync_batch_norm_synchronizes_every_batch_norm_and_keeps_the_weight_names(tmp_path):
    synced = type("Synced", (TinyConfig,), {"TRAIN_BN": True, "SYNC_BATCH_NORM": True})()
    default = type("PerReplica", (TinyConfig,), {"TRAIN_BN": True})()
    synced_layers, default_layers = (
        batch_norm_layers(MaskRCNN("inference", config, str(tmp_path)).keras_model)
        for config in (synced, default))
    # ResNet-50's 53 (bn_conv1, bn2a_branch2a, ...) and the heads' 6, named alike.
    assert len(synced_layers) == 59 and list(synced_layers) == list(default_layers)
    assert {"bn_conv1", "bn5c_branch2c", "mrcnn_class_bn2", "mrcnn_mask_bn4"} <= set(
        synced_layers)
    assert all(layer.synchronized for layer in synced_layers.values())
    assert not any(layer.synchronized for layer in default_layers.values())
    for layer in synced_layers.values():
        assert [w.name for w in layer.weights] == ["gamma", "beta", "moving_mean",
                                                   "moving_variance"]
