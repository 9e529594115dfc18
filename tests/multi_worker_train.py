"""One worker of a two-process MultiWorkerMirroredStrategy run of the tiny config.

Run by tests/test_multi_worker.py, twice at once: ``multi_worker_train.py INDEX PORT0
PORT1 MODEL_DIR OUT``. The cluster is two workers on 127.0.0.1 (worker 0 is the chief);
each process trains through ``MaskRCNN.train`` with its own model_dir, as on its own
host, and saves its final weights to OUT (an .npz) with the History in OUT + ".json".
"""
import json
import os
import sys

index, ports, model_dir, out = int(sys.argv[1]), sys.argv[2:4], sys.argv[4], sys.argv[5]
# TF_CONFIG is read when the strategy is made: before any other TensorFlow call.
os.environ["TF_CONFIG"] = json.dumps({
    "cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
    "task": {"type": "worker", "index": index}})

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

strategy = tf.distribute.MultiWorkerMirroredStrategy()

import keras  # noqa: E402

from conftest import TinyConfig  # noqa: E402
from mrcnn.datasets.shapes import ShapesDataset  # noqa: E402
from mrcnn.model import MaskRCNN  # noqa: E402


class WorkerConfig(TinyConfig):
    """The global batch of 2: one image on each worker's one replica."""
    IMAGES_PER_GPU = 1
    GPU_COUNT = 2
    STEPS_PER_EPOCH = 2
    VALIDATION_STEPS = 1


def main():
    keras.utils.set_random_seed(index)  # different on each worker: the strategy syncs
    dataset = ShapesDataset()
    dataset.load_shapes(4, 128, 128, seed=3)
    dataset.prepare()
    model = MaskRCNN("training", WorkerConfig(), model_dir, strategy=strategy)
    history = model.train(dataset, dataset, learning_rate=0.01, epochs=2, layers="heads",
                          workers=1, verbose=2)
    np.savez(out, *model.keras_model.get_weights())
    with open(out + ".json", "w") as f:
        json.dump({"history": history.history, "epoch": model.epoch}, f)


if __name__ == "__main__":
    main()
