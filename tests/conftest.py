"""Shared test configuration: a tiny Mask R-CNN config that builds and runs fast."""
import pytest

from mrcnn.datasets.shapes import ShapesConfig, ShapesDataset


class TinyConfig(ShapesConfig):
    """The shapes config (128 x 128 images, 3 classes, small anchors) on ResNet-50, with
    small heads and few ROIs, images and steps."""
    NAME = "tiny"
    BACKBONE = "resnet50"
    IMAGES_PER_GPU = 2
    PRE_NMS_LIMIT = 500
    POST_NMS_ROIS_TRAINING = 64
    POST_NMS_ROIS_INFERENCE = 32
    TRAIN_ROIS_PER_IMAGE = 16
    RPN_TRAIN_ANCHORS_PER_IMAGE = 64
    MAX_GT_INSTANCES = 8
    DETECTION_MAX_INSTANCES = 6
    FPN_CLASSIF_FC_LAYERS_SIZE = 64
    TOP_DOWN_PYRAMID_SIZE = 64
    STEPS_PER_EPOCH = 2
    VALIDATION_STEPS = 1


@pytest.fixture(scope="session")
def tiny_config_class():
    return TinyConfig


@pytest.fixture(scope="module")
def shapes():
    """Six 128 x 128 synthetic shapes images, prepared."""
    dataset = ShapesDataset()
    dataset.load_shapes(6, 128, 128, seed=3)
    dataset.prepare()
    return dataset


def write_config_module(path, config_class, extra: str = "") -> str:
    """Writes `config_class`'s settings, with DETECTION_MIN_CONFIDENCE 0, as the class
    TinyConfig of a module file at `path` (plus `extra` source), for the CLI's --config.

    Returns:
        "PATH:TinyConfig".
    """
    fields = {name: value for name, value in vars(config_class).items() if name.isupper()}
    fields["DETECTION_MIN_CONFIDENCE"] = 0
    body = "".join(f"    {name} = {value!r}\n" for name, value in fields.items())
    path.write_text("from mrcnn.datasets.shapes import ShapesConfig\n\n\n"
                    f"class TinyConfig(ShapesConfig):\n{body}{extra}")
    return f"{path}:TinyConfig"
