"""Config presets by name, config loading, derived configs, --set settings, class names."""
import sys

import pytest

from mrcnn import config_presets
from mrcnn.config import Config, ConfigError


def test_registry_names_load():
    coco = config_presets.load_config_class("coco")
    assert coco is config_presets.CocoConfig
    assert (coco.NAME, coco.NUM_CLASSES, coco.IMAGES_PER_GPU) == ("coco", 81, 2)
    assert len(config_presets.COCO_CLASS_NAMES) == 81 and config_presets.COCO_CLASS_NAMES[:2] == (
        "BG", "person")
    assert config_presets.load_config_class("shapes").NAME == "shapes"
    assert config_presets.load_config_class("mrcnn.config_presets:CocoConfig") is coco


def test_config_from_a_file(tmp_path):
    (tmp_path / "helper.py").write_text("SIZE = 256\n")
    (tmp_path / "mine.py").write_text(
        "from helper import SIZE\nfrom mrcnn.config import Config\n\n"
        "class MyConfig(Config):\n    NAME = 'mine'\n    NUM_CLASSES = 3\n"
        "    IMAGE_MAX_DIM = SIZE\n\nNOT_A_CONFIG = 1\n")
    search_path = list(sys.path)
    config_class = config_presets.load_config_class(f"{tmp_path / 'mine.py'}:MyConfig")
    assert config_class.IMAGE_MAX_DIM == 256      # the file imports its sibling module
    assert sys.path == search_path                # and sys.path is as it was
    with pytest.raises(ValueError, match="not a subclass"):
        config_presets.load_config_class(f"{tmp_path / 'mine.py'}:NOT_A_CONFIG")
    with pytest.raises(ValueError, match="has no 'Other'"):
        config_presets.load_config_class(f"{tmp_path / 'mine.py'}:Other")


@pytest.mark.parametrize("name, message", [
    ("nope", "unknown config 'nope'"),
    ("no_such_module_xyz:Config", "cannot import module"),
    ("missing/file.py:Config", "no Python file"),
    (":Config", "is not of the form"),
])
def test_bad_config_names(name, message):
    with pytest.raises(ValueError, match=message):
        config_presets.load_config_class(name)


def test_derive_and_inference_config():
    base = config_presets.CocoConfig
    config = config_presets.inference_config(base, NUM_CLASSES=3, DETECTION_MIN_CONFIDENCE=0)
    assert isinstance(config, base) and config.BATCH_SIZE == 1
    assert (config.NUM_CLASSES, config.DETECTION_MIN_CONFIDENCE) == (3, 0)
    assert base.NUM_CLASSES == 81 and base.GPU_COUNT == 1    # the base is untouched
    with pytest.raises(ValueError, match="no setting IMAGE_MAX_DIMS"):
        config_presets.derive_config(base, IMAGE_MAX_DIMS=512)
    with pytest.raises(ConfigError):
        config_presets.derive_config(base, IMAGE_MAX_DIM=500)


def test_parse_settings():
    assert config_presets.parse_settings(["IMAGE_MAX_DIM=512", "BACKBONE=resnet50",
                                   "RPN_ANCHOR_SCALES=(8, 16, 32, 64, 128)", "TRAIN_BN=None"]
                                  ) == {"IMAGE_MAX_DIM": 512, "BACKBONE": "resnet50",
                                        "RPN_ANCHOR_SCALES": (8, 16, 32, 64, 128),
                                        "TRAIN_BN": None}
    for bad in ("IMAGE_MAX_DIM", "image_max_dim=5"):
        with pytest.raises(ValueError, match="NAME=VALUE"):
            config_presets.parse_settings([bad])


def test_class_names():
    class Three(Config):
        NAME = "three"
        NUM_CLASSES = 3
    config = Three()
    assert config_presets.class_names(config) == ["BG", "class 1", "class 2"]
    assert config_presets.class_names(config, "a, b") == ["BG", "a", "b"]
    assert config_presets.class_names(config, ["bg", "a", "b"]) == ["bg", "a", "b"]
    with pytest.raises(ValueError, match="got 1 class names"):
        config_presets.class_names(config, "a")
    assert config_presets.class_names(config_presets.CocoConfig())[1] == "person"
