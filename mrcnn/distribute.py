"""The tf.distribute strategy a MaskRCNN model builds, trains and detects under.

``MaskRCNN(..., strategy=...)`` takes any ``tf.distribute.Strategy``
(``MirroredStrategy`` for the GPUs of one machine, ``MultiWorkerMirroredStrategy``
configured by ``TF_CONFIG`` for several machines); without one, ``GPU_COUNT > 1``
mirrors over that many local GPUs and ``GPU_COUNT = 1`` uses TensorFlow's default
(one device). ``BATCH_SIZE`` is the global batch, split evenly over the replicas.

How the step stays the single-device one: the loss layers' means are over the
global batch (``mrcnn.graph.losses.mean_or_zero`` all-reduces the counts), and
``TrainingModel.compute_loss`` weights each replica's loss, weight decay
included, by 1/replicas before Keras sums the replicas' gradients, and the
optimizers clip the summed gradient (GlobalBatchClipping).
"""
from __future__ import annotations

import keras
import tensorflow as tf

from mrcnn.config import Config


def model_strategy(config: Config, strategy: tf.distribute.Strategy | None = None
                   ) -> tf.distribute.Strategy:
    """``strategy``, checked against the config, or the one ``GPU_COUNT`` asks for.

    Raises:
        ValueError: BATCH_SIZE does not split evenly over the replicas, or
            GPU_COUNT asks for more GPUs than TensorFlow sees.
    """
    if strategy is None and config.GPU_COUNT > 1:
        gpus = tf.config.list_logical_devices("GPU")
        if len(gpus) < config.GPU_COUNT:
            raise ValueError(
                f"GPU_COUNT is {config.GPU_COUNT} but TensorFlow sees {len(gpus)} GPUs: "
                f"set GPU_COUNT = {max(len(gpus), 1)} (or pass strategy=...).")
        strategy = tf.distribute.MirroredStrategy([gpu.name for gpu in gpus[:config.GPU_COUNT]])
    strategy = strategy or tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    if config.BATCH_SIZE % replicas:
        raise ValueError(
            f"BATCH_SIZE {config.BATCH_SIZE} (IMAGES_PER_GPU x GPU_COUNT) does not split "
            f"over the strategy's {replicas} replicas: set GPU_COUNT = {replicas} and "
            "IMAGES_PER_GPU to the images per replica.")
    return strategy


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True for the one process that writes checkpoints and logs: every process of a
    single-machine strategy; the chief (or worker 0 without a chief) of a cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    if resolver.task_type == "chief":
        return True
    return (resolver.task_type == "worker" and resolver.task_id == 0
            and "chief" not in resolver.cluster_spec().jobs)


class GlobalBatchClipping:
    """Mixin for a Keras optimizer: ``global_clipnorm`` clips the gradient of the
    global batch, not each replica's part of it.

    Keras 3 clips in ``_clip_gradients`` on each replica *before* it all-reduces
    (sums) the gradients, so N replicas whose gradients clip would step N times
    as far as one device. Here each replica sums the gradients first, clips the
    sum as one device would, and hands on 1/N of it: the optimizer's own
    all-reduce then gives back the clipped sum. One replica: Keras's clipping.
    """

    def _clip_gradients(self, grads):
        replica = tf.distribute.get_replica_context()
        if not (self.global_clipnorm and replica is not None
                and replica.num_replicas_in_sync > 1):
            return super()._clip_gradients(grads)
        present = [i for i, g in enumerate(grads) if g is not None]
        summed = replica.all_reduce("sum", [grads[i] for i in present])
        clipped, _ = tf.clip_by_global_norm(summed, self.global_clipnorm)
        grads = list(grads)
        for i, g in zip(present, clipped):
            grads[i] = g / replica.num_replicas_in_sync
        return grads


class SGD(GlobalBatchClipping, keras.optimizers.SGD):
    """keras.optimizers.SGD with global-batch gradient clipping."""


class Adam(GlobalBatchClipping, keras.optimizers.Adam):
    """keras.optimizers.Adam with global-batch gradient clipping."""
