"""MIXED_PRECISION: low-precision convolutions, float32 boxes, losses, outputs and weights."""
import keras
import numpy as np
import pytest

from conftest import TinyConfig
from mrcnn import weights as weight_files
from mrcnn.config import ConfigError
from mrcnn.data import DataGenerator
from mrcnn.model import LAYER_PRESETS, MaskRCNN

# Layers that must compute in float32 under any policy (see mrcnn/graph/precision.py).
FLOAT32_LAYERS = ("rpn_class", "rpn_bbox", "ROI", "proposal_targets", "roi_align_classifier",
                  "roi_align_mask", "mrcnn_class", "mrcnn_bbox", "mrcnn_mask_padded",
                  "rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss", "mrcnn_bbox_loss",
                  "mrcnn_mask_loss")


class Bfloat16Config(TinyConfig):
    MIXED_PRECISION = "mixed_bfloat16"


class Float16Config(TinyConfig):
    MIXED_PRECISION = "mixed_float16"


def inference_config(config_class):
    return type(f"Inference{config_class.__name__}", (config_class,),
                {"IMAGES_PER_GPU": 1})()


@pytest.fixture(autouse=True)
def global_policy_stays_float32():
    """Building a mixed model must leave Keras's global policy alone."""
    assert keras.config.dtype_policy().name == "float32"
    yield
    policy = keras.config.dtype_policy().name
    keras.config.set_dtype_policy("float32")
    assert policy == "float32"


@pytest.fixture(scope="module")
def bf16_training(tmp_path_factory):
    # Seeded: whether 6 steps lower the loss by 5% depends on the initial weights, which
    # otherwise depend on what the tests before this module drew.
    keras.utils.set_random_seed(0)
    return MaskRCNN("training", Bfloat16Config(), str(tmp_path_factory.mktemp("logs")))


@pytest.fixture(scope="module")
def image():
    return (np.random.RandomState(1).rand(128, 128, 3) * 255).astype(np.uint8)


def test_unknown_policy_names_the_choices():
    with pytest.raises(ConfigError, match="MIXED_PRECISION.*'mixed_bfloat16'"):
        type("Bad", (TinyConfig,), {"MIXED_PRECISION": "bfloat16"})()


def test_convolutions_compute_low_boxes_losses_and_weights_float32(bf16_training):
    km = bf16_training.keras_model
    assert km.get_layer("conv1").compute_dtype == "bfloat16"
    assert km.get_layer("fpn_p2").compute_dtype == "bfloat16"
    rpn = km.get_layer("rpn_model")
    assert rpn.get_layer("rpn_conv_shared").compute_dtype == "bfloat16"
    assert rpn.get_layer("rpn_class_xxx").compute_dtype == "float32"
    for name in FLOAT32_LAYERS:
        layer = km.get_layer(name)
        assert layer.compute_dtype == "float32", name
        outputs = layer.output if isinstance(layer.output, list) else [layer.output]
        assert outputs[0].dtype == "float32", name
    assert {w.dtype for w in km.weights} == {"float32"}


def test_bfloat16_training_steps_are_finite_and_lower_the_loss(bf16_training, shapes):
    model = bf16_training
    # The heads only: bfloat16 is emulated (slow) on CPUs without AVX512_BF16.
    model.set_trainable(LAYER_PRESETS["heads"], verbose=0)
    model.compile(0.01, 0.9)
    assert not isinstance(model.keras_model.optimizer, keras.optimizers.LossScaleOptimizer)
    inputs = DataGenerator(shapes, model.config, shuffle=False, seed=0)[0][0]
    logs = [model.keras_model.train_on_batch(inputs, return_dict=True) for _ in range(6)]
    assert all(np.isfinite(list(log.values())).all() for log in logs), logs
    rpn = [log["rpn_class_loss"] + log["rpn_bbox_loss"] for log in logs]
    assert np.mean(rpn[-2:]) < 0.95 * np.mean(rpn[:2]), rpn
    outputs = model.keras_model(inputs, training=False)
    assert all(o.dtype == "float32" for o in outputs[-5:])   # the five losses


def test_float16_training_compiles_with_loss_scaling(tmp_path):
    model = MaskRCNN("training", Float16Config(), str(tmp_path))
    model.compile(0.01, 0.9)
    optimizer = model.keras_model.optimizer
    assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    # Clipping stays on the inner optimizer, which sees the unscaled gradients.
    assert optimizer.inner_optimizer.global_clipnorm == Float16Config.GRADIENT_CLIP_NORM


def test_bfloat16_detections_have_float32_outputs(bf16_training, image, tmp_path):
    model = MaskRCNN("inference", inference_config(Bfloat16Config), str(tmp_path))
    assert [o.dtype for o in model.keras_model.outputs] == ["float32"] * 7
    molded, metas, _ = model.mold_inputs([image])
    assert all(o.dtype == np.float32 for o in model._run_inference(molded, metas))
    result = model.detect([image])[0]
    assert result["scores"].dtype == np.float32 and result["masks"].dtype == bool


def test_bfloat16_association_head_gives_unit_float32_embeddings(image, tmp_path):
    config_class = type("Bfloat16AssocConfig", (Bfloat16Config,), {
        "ASSOCIATION_EMBEDDING_SIZE": 8, "ASSOCIATION_SEES_IMAGE": True,
        "ASSOCIATION_TRAINS_FEATURES": False, "DETECTION_MIN_CONFIDENCE": 0.0})
    model = MaskRCNN("inference", inference_config(config_class), str(tmp_path))
    km = model.keras_model
    assert km.get_layer("mrcnn_assoc_conv1").compute_dtype == "bfloat16"
    for name in ("mrcnn_assoc_roi_align", "mrcnn_assoc_image_crop", "mrcnn_assoc"):
        assert km.get_layer(name).compute_dtype == "float32", name
    result = model.detect([image])[0]
    embeddings = result["embeddings"]
    assert embeddings.dtype == np.float32 and embeddings.shape == (len(result["scores"]), 8)
    assert len(embeddings) > 0
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("saved, loaded", [(Bfloat16Config, TinyConfig),
                                           (TinyConfig, Bfloat16Config)])
def test_a_checkpoint_saved_under_one_policy_loads_under_another(saved, loaded, tmp_path):
    source = MaskRCNN("inference", inference_config(saved), str(tmp_path))
    path = str(tmp_path / "weights.h5")
    weight_files.save_weights(source.keras_model, path)
    target = MaskRCNN("inference", inference_config(loaded), str(tmp_path))
    target.load_weights(path)
    pairs = list(zip(source.keras_model.weights, target.keras_model.weights))
    assert len(pairs) == len(target.keras_model.weights) > 100
    for mine, theirs in pairs:
        assert theirs.dtype == "float32"
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy(), err_msg=mine.path)
