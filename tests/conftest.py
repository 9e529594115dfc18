"""Shared test configuration: a tiny Mask R-CNN config that builds and runs fast."""
import pytest

from mrcnn.config import Config
from samples.shapes.shapes import ShapesDataset


class TinyConfig(Config):
    """ResNet-50 on 128 x 128 images with small heads and few ROIs."""
    NAME = "tiny"
    NUM_CLASSES = 1 + 3
    BACKBONE = "resnet50"
    GPU_COUNT = 1
    IMAGES_PER_GPU = 2
    IMAGE_MIN_DIM = 128
    IMAGE_MAX_DIM = 128
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
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
