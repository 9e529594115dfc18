"""Mixed precision: the Keras dtype policy a Mask R-CNN graph is built under.

Convolutions and dense layers take the policy of ``Config.MIXED_PRECISION``
("mixed_float16" or "mixed_bfloat16": low-precision compute, float32
variables). The numerically delicate parts are built with ``dtype=FLOAT32``
(Keras then casts their floating inputs to float32 at the boundary): the RPN
concatenations and softmax outputs, proposals and NMS, ROI alignment (its
boxes; TensorFlow's crop_and_resize yields float32 anyway), the association
head's ROI alignment, image crops and normalized embeddings, the detection
targets and layer, the mask output padding, and every loss and monitor layer.
The variables are float32 under every policy, so weight files and checkpoints
keep the classic layout and load under any other policy.
"""
from __future__ import annotations

import contextlib
import functools

import keras

# The dtype of the layers that stay in full precision under a mixed policy.
FLOAT32 = "float32"
# Config.MIXED_PRECISION values that need the optimizer's loss scaling.
LOSS_SCALED_POLICIES = ("mixed_float16",)


@contextlib.contextmanager
def build_policy(policy: str | None):
    """Builds layers under ``policy`` and restores the previous global policy after.

    Keras reads the global dtype policy when a layer is created; setting it
    only around the build keeps other models (and tests) in the process as
    they were.

    Args:
        policy: a Keras policy name ("mixed_float16", "mixed_bfloat16",
            "float32"), or None to leave the global policy as it is.
    """
    previous = keras.config.dtype_policy()
    if policy is not None:
        keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def config_policy(build):
    """Decorates a graph builder ``build(config, ...)`` to build under
    ``config.MIXED_PRECISION`` (see build_policy)."""
    @functools.wraps(build)
    def build_under_policy(config, *args, **kwargs):
        with build_policy(config.MIXED_PRECISION):
            return build(config, *args, **kwargs)
    return build_under_policy


def loss_scaled(optimizer: keras.optimizers.Optimizer, keras_model: keras.Model
                ) -> keras.optimizers.Optimizer:
    """``optimizer`` wrapped in a dynamic LossScaleOptimizer when ``keras_model``
    computes in float16 (whose small gradients would underflow), else as is.

    The wrapper unscales the gradients before the inner optimizer applies them,
    so the inner optimizer's global_clipnorm clips the true gradients.
    """
    if keras_model.dtype_policy.name in LOSS_SCALED_POLICIES:
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
