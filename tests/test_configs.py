"""Named configs, configs derived at run time, settings from the command line, class names."""
import pytest

from mrcnn import configs
from mrcnn.config import Config, ConfigError


def test_registry_names_load():
    coco = configs.load_config_class("coco")
    assert coco is configs.CocoConfig
    assert (coco.NAME, coco.NUM_CLASSES, coco.IMAGES_PER_GPU) == ("coco", 81, 2)
    assert len(configs.COCO_CLASS_NAMES) == 81 and configs.COCO_CLASS_NAMES[:2] == (
        "BG", "person")
    assert configs.load_config_class("shapes").NAME == "shapes"
    assert configs.load_config_class("mrcnn.configs:CocoConfig") is coco


def test_config_from_a_file(tmp_path):
    (tmp_path / "helper.py").write_text("SIZE = 256\n")
    (tmp_path / "mine.py").write_text(
        "from helper import SIZE\nfrom mrcnn.config import Config\n\n"
        "class MyConfig(Config):\n    NAME = 'mine'\n    NUM_CLASSES = 3\n"
        "    IMAGE_MAX_DIM = SIZE\n\nNOT_A_CONFIG = 1\n")
    config_class = configs.load_config_class(f"{tmp_path / 'mine.py'}:MyConfig")
    assert config_class.IMAGE_MAX_DIM == 256      # the file imports its sibling module
    with pytest.raises(ValueError, match="not a subclass"):
        configs.load_config_class(f"{tmp_path / 'mine.py'}:NOT_A_CONFIG")
    with pytest.raises(ValueError, match="has no 'Other'"):
        configs.load_config_class(f"{tmp_path / 'mine.py'}:Other")


@pytest.mark.parametrize("name, message", [
    ("nope", "unknown config 'nope'"),
    ("no_such_module_xyz:Config", "cannot import module"),
    ("missing/file.py:Config", "no Python file"),
    (":Config", "is not of the form"),
])
def test_bad_config_names(name, message):
    with pytest.raises(ValueError, match=message):
        configs.load_config_class(name)


def test_derive_and_inference_config():
    base = configs.CocoConfig
    config = configs.inference_config(base, NUM_CLASSES=3, DETECTION_MIN_CONFIDENCE=0)
    assert isinstance(config, base) and config.BATCH_SIZE == 1
    assert (config.NUM_CLASSES, config.DETECTION_MIN_CONFIDENCE) == (3, 0)
    assert base.NUM_CLASSES == 81 and base.GPU_COUNT == 1    # the base is untouched
    with pytest.raises(ValueError, match="no setting IMAGE_MAX_DIMS"):
        configs.derive_config(base, IMAGE_MAX_DIMS=512)
    with pytest.raises(ConfigError):
        configs.derive_config(base, IMAGE_MAX_DIM=500)


def test_parse_settings():
    assert configs.parse_settings(["IMAGE_MAX_DIM=512", "BACKBONE=resnet50",
                                   "RPN_ANCHOR_SCALES=(8, 16, 32, 64, 128)", "TRAIN_BN=None"]
                                  ) == {"IMAGE_MAX_DIM": 512, "BACKBONE": "resnet50",
                                        "RPN_ANCHOR_SCALES": (8, 16, 32, 64, 128),
                                        "TRAIN_BN": None}
    for bad in ("IMAGE_MAX_DIM", "image_max_dim=5"):
        with pytest.raises(ValueError, match="NAME=VALUE"):
            configs.parse_settings([bad])


def test_class_names():
    class Three(Config):
        NAME = "three"
        NUM_CLASSES = 3
    config = Three()
    assert configs.class_names(config) == ["BG", "class 1", "class 2"]
    assert configs.class_names(config, "a, b") == ["BG", "a", "b"]
    assert configs.class_names(config, ["bg", "a", "b"]) == ["bg", "a", "b"]
    with pytest.raises(ValueError, match="got 1 class names"):
        configs.class_names(config, "a")
    assert configs.class_names(configs.CocoConfig())[1] == "person"
