"""One training step on one device and on two logical CPU replicas, compared.

Run by tests/test_distribute.py in its own process: the logical devices must be
set before TensorFlow initializes its devices. Usage: mirrored_step.py LOG_DIR SEED.
Prints one JSON line: {"logs": [one device's, two replicas'], "max_weight_rel":
largest |w1 - w2| / max |w1| over the weight tensors, "changed": tensors the step
changed, "weights", "replicas", "detected": detect()'s keys per image, "fit": the
History of a two-step MaskRCNN.train() on the two replicas, "checkpoints": the
files it wrote}.
"""
import json
import os
import sys

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

# Deterministic kernels, so that a difference is the strategy's and not the thread
# scheduling's: without this, CPU kernels may sum partial results in the order their
# threads finish, and a bias whose gradient is a near-cancelling sum then differs
# by far more than 1e-5 relative between two runs of the same step. (StepConfig
# keeps every proposal, so the ROI sampling's shuffles only reorder ROIs.) Needs
# the seeds, set below.
tf.config.experimental.enable_op_determinism()

import keras  # noqa: E402
import numpy as np  # noqa: E402

from conftest import TinyConfig  # noqa: E402
from mrcnn.data import DataGenerator  # noqa: E402
from mrcnn.datasets.shapes import ShapesDataset  # noqa: E402
from mrcnn.model import LAYER_PRESETS, MaskRCNN  # noqa: E402


class StepConfig(TinyConfig):
    """Two images as one per replica; every proposal kept as a positive-first ROI, so
    that ROI sampling draws the same ROIs on every run. ResNet-18: the strategy, not
    the backbone's depth, is under test, and four models are built here."""
    BACKBONE = "resnet18"
    GPU_COUNT = 2
    IMAGES_PER_GPU = 1
    POST_NMS_ROIS_TRAINING = 16
    TRAIN_ROIS_PER_IMAGE = 16
    ROI_POSITIVE_RATIO = 1.0


def one_step(strategy, initial, inputs, logdir):
    model = MaskRCNN("training", StepConfig(), logdir, strategy=strategy)
    if initial is not None:
        model.keras_model.set_weights(initial)
    model.set_trainable(LAYER_PRESETS["heads"], verbose=0)
    model.compile(0.01, 0.0)
    logs = model.keras_model.train_on_batch(inputs, return_dict=True)
    return model, logs


def main(logdir):
    dataset = ShapesDataset()
    dataset.load_shapes(2, 128, 128, seed=3)
    dataset.prepare()
    inputs = DataGenerator(dataset, StepConfig(), shuffle=False, seed=0, workers=1)[0][0]
    # StepConfig's GPU_COUNT of 2 would look for GPUs: the strategies are passed.
    single = tf.distribute.OneDeviceStrategy("/cpu:0")
    # A fixed seed: the same initial weights (and ROIs) on every run.
    keras.utils.set_random_seed(int(sys.argv[2]))
    initial = MaskRCNN("training", StepConfig(), logdir,
                       strategy=single).keras_model.get_weights()
    one, logs_one = one_step(single, initial, inputs, logdir)
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    two, logs_two = one_step(mirrored, initial, inputs, logdir)
    rel = max(float(np.max(np.abs(a - b)) / (np.max(np.abs(a)) + 1e-12))
              for a, b in zip(one.keras_model.get_weights(), two.keras_model.get_weights()))
    changed = sum(not np.array_equal(a, b)
                  for a, b in zip(initial, two.keras_model.get_weights()))
    # detect() on a model built under the strategy (mirrored variables).
    detector = MaskRCNN("inference", StepConfig(), logdir, strategy=mirrored)
    detected = detector.detect([dataset.load_image(0), dataset.load_image(1)])
    # fit() on the replicas: the bool gt masks travel as distribute.REDUCIBLE_BOOL_DTYPE.
    history = two.train(dataset, dataset, learning_rate=0.01, epochs=1, layers="heads",
                        workers=1, verbose=0)
    written = sorted(name for _, _, names in os.walk(two.log_dir) for name in names)
    print(json.dumps({"logs": [logs_one, logs_two], "max_weight_rel": rel,
                      "changed": changed, "weights": len(initial),
                      "detected": [sorted(r) for r in detected],
                      "replicas": mirrored.num_replicas_in_sync,
                      "fit": history.history, "checkpoints": written}))


if __name__ == "__main__":
    main(sys.argv[1])
