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
import numpy as np
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
    if not is_multi_worker(strategy):
        return True
    resolver = strategy.cluster_resolver
    if resolver.task_type == "chief":
        return True
    return (resolver.task_type == "worker" and resolver.task_id == 0
            and "chief" not in resolver.cluster_spec().jobs)


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    """True when ``strategy`` spans several processes (a TF_CONFIG cluster)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    return bool(resolver is not None and resolver.cluster_spec().as_dict())


def shared_seed(strategy: tf.distribute.Strategy, seed: int | None) -> int | None:
    """``seed``, or under a cluster the chief's seed on every worker.

    Each worker builds the whole global batch and keeps its replicas' share of it
    (tf.data's auto-sharding of a generator), so the workers' generators must draw
    the same batches: they take the chief's seed (a fresh one when ``seed`` is
    None), sent to all by an all-reduce in which the others add 0.
    """
    if not is_multi_worker(strategy):
        return seed
    mine = np.random.SeedSequence(seed).entropy % 2**62 if is_chief(strategy) else 0

    def first_replica_value():
        first = tf.distribute.get_replica_context().replica_id_in_sync_group == 0
        return tf.constant(mine, tf.int64) * tf.cast(first, tf.int64)

    return int(strategy.reduce("SUM", strategy.run(first_replica_value), axis=None))


# The dtype that bool input arrays travel in under a multi-replica strategy (see
# ReducibleBatches): 0/1 exactly, and summable both by AddN (MirroredStrategy) and by
# the collective all-reduce of MultiWorkerMirroredStrategy, which takes no 8-bit type.
REDUCIBLE_BOOL_DTYPE = np.float16


class ReducibleBatches(keras.utils.PyDataset):
    """A DataGenerator's batches with every bool array as REDUCIBLE_BOOL_DTYPE.

    Why: under a multi-replica strategy, ``fit`` first reduces one input batch
    across the replicas (a MEAN, to learn the input shapes for its symbolic
    build), and neither AddN nor a collective all-reduce takes bool, so the bool
    ``input_gt_masks`` fails there. The model's input stays declared bool:
    Keras casts the 0/1 values back at the model's input, inside each replica.

    Args:
        batches: the ``mrcnn.data.DataGenerator`` (or any PyDataset) to wrap; its
            epoch hooks and parallelism are passed through.
    """

    def __init__(self, batches: keras.utils.PyDataset):
        super().__init__(workers=batches.workers,
                         use_multiprocessing=batches.use_multiprocessing,
                         max_queue_size=batches.max_queue_size)
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int):
        return tuple(tuple(a.astype(REDUCIBLE_BOOL_DTYPE) if a.dtype == bool else a
                           for a in part) for part in self.batches[index])

    def on_epoch_begin(self) -> None:
        self.batches.on_epoch_begin()

    def on_epoch_end(self) -> None:
        self.batches.on_epoch_end()


def fit_batches(strategy: tf.distribute.Strategy, batches: keras.utils.PyDataset
                ) -> keras.utils.PyDataset:
    """``batches`` as ``fit`` can take them under ``strategy``: ReducibleBatches when
    it has several replicas, else as they are."""
    return ReducibleBatches(batches) if strategy.num_replicas_in_sync > 1 else batches


class MultiWorkerSteps:
    """Mixin for the training keras.Model: ``fit`` and ``evaluate`` under a
    MultiWorkerMirroredStrategy, around two Keras 3.15 traps.

    1. Before the first step, Keras's symbolic build all-reduces one input batch
       (a MEAN of the whole nested batch, only to learn its shapes);
       MultiWorkerMirroredStrategy's reduce does not walk nested structures and
       fails converting the batch to one tensor. A Mask R-CNN model is built
       when it is made, so under a cluster that build is skipped, leaving only
       the optimizer's variables to create (in the strategy's scope).
    2. Keras reduces each step's logs with ``strategy.reduce("MEAN", v, axis=0)``
       across workers, which fails on the scalar logs: they leave each replica
       as [1] vectors, whose mean along axis 0 is the scalar Keras expects.
    On one machine both are Keras's own behaviour.
    """

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self.distribute_strategy
        if not is_multi_worker(strategy):
            return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)
        if self.optimizer is not None and not self.optimizer.built:
            with strategy.scope():
                self.optimizer.build(self.trainable_variables)
        return None

    def train_step(self, data):
        return self._vector_logs(super().train_step(data))

    def test_step(self, data):
        return self._vector_logs(super().test_step(data))

    def _vector_logs(self, logs: dict) -> dict:
        if not is_multi_worker(self.distribute_strategy):
            return logs
        return {name: tf.reshape(value, [1]) for name, value in logs.items()}


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
