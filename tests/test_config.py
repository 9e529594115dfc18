"""Config: classic defaults, derived settings, validation errors, display/to_dict."""
import numpy as np
import pytest

from mrcnn.config import Config, ConfigError

# Every classic default (reference §2), for a subclass that sets only NAME and NUM_CLASSES.
CLASSIC_DEFAULTS = {
    "GPU_COUNT": 1,
    "IMAGES_PER_GPU": 2,
    "STEPS_PER_EPOCH": 1000,
    "VALIDATION_STEPS": 50,
    "BACKBONE": "resnet101",
    "COMPUTE_BACKBONE_SHAPE": None,
    "BACKBONE_STRIDES": [4, 8, 16, 32, 64],
    "FPN_CLASSIF_FC_LAYERS_SIZE": 1024,
    "TOP_DOWN_PYRAMID_SIZE": 256,
    "RPN_ANCHOR_SCALES": (32, 64, 128, 256, 512),
    "RPN_ANCHOR_RATIOS": [0.5, 1, 2],
    "RPN_ANCHOR_STRIDE": 1,
    "RPN_NMS_THRESHOLD": 0.7,
    "RPN_TRAIN_ANCHORS_PER_IMAGE": 256,
    "PRE_NMS_LIMIT": 6000,
    "POST_NMS_ROIS_TRAINING": 2000,
    "POST_NMS_ROIS_INFERENCE": 1000,
    "USE_MINI_MASK": True,
    "MINI_MASK_SHAPE": (56, 56),
    "IMAGE_RESIZE_MODE": "square",
    "IMAGE_MIN_DIM": 800,
    "IMAGE_MAX_DIM": 1024,
    "IMAGE_MIN_SCALE": 0,
    "IMAGE_CHANNEL_COUNT": 3,
    "MEAN_PIXEL": np.array([123.7, 116.8, 103.9]),
    "TRAIN_ROIS_PER_IMAGE": 200,
    "ROI_POSITIVE_RATIO": 0.33,
    "POOL_SIZE": 7,
    "MASK_POOL_SIZE": 14,
    "MASK_SHAPE": [28, 28],
    "MAX_GT_INSTANCES": 100,
    "RPN_BBOX_STD_DEV": np.array([0.1, 0.1, 0.2, 0.2]),
    "BBOX_STD_DEV": np.array([0.1, 0.1, 0.2, 0.2]),
    "DETECTION_MAX_INSTANCES": 100,
    "DETECTION_MIN_CONFIDENCE": 0.7,
    "DETECTION_NMS_THRESHOLD": 0.3,
    "LEARNING_RATE": 0.001,
    "LEARNING_MOMENTUM": 0.9,
    "WEIGHT_DECAY": 0.0001,
    "LOSS_WEIGHTS": {"rpn_class_loss": 1., "rpn_bbox_loss": 1., "mrcnn_class_loss": 1.,
                     "mrcnn_bbox_loss": 1., "mrcnn_mask_loss": 1.},
    "USE_RPN_ROIS": True,
    "TRAIN_BN": False,
    "GRADIENT_CLIP_NORM": 5.0,
}


def make(**settings):
    """An instance of a fresh Config subclass with NAME, NUM_CLASSES and `settings`."""
    attrs = {"NAME": "test", "NUM_CLASSES": 3}
    attrs.update(settings)
    return type("TestConfig", (Config,), attrs)()


def backbone_fn(input_image, stage5=True, train_bn=False):
    return [input_image] * 5


def backbone_shapes_fn(image_shape):
    return [[image_shape[0] // s, image_shape[1] // s] for s in (4, 8, 16, 32, 64)]


@pytest.mark.parametrize("name", sorted(CLASSIC_DEFAULTS))
def test_classic_default(name):
    config = make()
    expected = CLASSIC_DEFAULTS[name]
    value = getattr(config, name)
    if isinstance(expected, np.ndarray):
        np.testing.assert_allclose(value, expected)
    else:
        assert value == expected
        assert type(value) is type(expected)


def test_name_and_num_classes_are_kept():
    config = make()
    assert config.NAME == "test"
    assert config.NUM_CLASSES == 3


def test_derived_settings_square():
    config = make(GPU_COUNT=2, IMAGES_PER_GPU=3, IMAGE_MIN_DIM=128, IMAGE_MAX_DIM=256)
    assert config.BATCH_SIZE == 6
    np.testing.assert_array_equal(config.IMAGE_SHAPE, [256, 256, 3])
    assert config.IMAGE_META_SIZE == 12 + 3


def test_derived_settings_default_and_crop():
    np.testing.assert_array_equal(make().IMAGE_SHAPE, [1024, 1024, 3])
    config = make(IMAGE_RESIZE_MODE="crop", IMAGE_MIN_DIM=512, IMAGE_MAX_DIM=1000,
                  NUM_CLASSES=81)
    np.testing.assert_array_equal(config.IMAGE_SHAPE, [512, 512, 3])
    assert config.IMAGE_META_SIZE == 12 + 81
    assert make().BATCH_SIZE == 2


@pytest.mark.parametrize("settings, setting_named", [
    ({"NUM_CLASSES": 1}, "NUM_CLASSES"),
    ({"NUM_CLASSES": 0}, "NUM_CLASSES"),
    ({"IMAGE_MAX_DIM": 1000}, "IMAGE_MAX_DIM"),
    ({"IMAGE_RESIZE_MODE": "stretch"}, "IMAGE_RESIZE_MODE"),
    ({"BACKBONE": backbone_fn}, "COMPUTE_BACKBONE_SHAPE"),
    ({"BACKBONE": "resnet152"}, "BACKBONE"),
])
def test_config_errors_name_the_setting(settings, setting_named):
    with pytest.raises(ConfigError, match=setting_named):
        make(**settings)


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


def test_max_dim_not_multiple_of_64_allowed_outside_square_mode():
    config = make(IMAGE_RESIZE_MODE="crop", IMAGE_MIN_DIM=256, IMAGE_MAX_DIM=1000)
    assert config.IMAGE_MAX_DIM == 1000


def test_callable_backbone_is_kept_plain():
    config = make(BACKBONE=backbone_fn, COMPUTE_BACKBONE_SHAPE=backbone_shapes_fn)
    # Stored as a class attribute, a function would otherwise become a bound method.
    assert config.BACKBONE is backbone_fn
    assert config.COMPUTE_BACKBONE_SHAPE is backbone_shapes_fn
    assert len(config.BACKBONE("x")) == 5
    assert config.COMPUTE_BACKBONE_SHAPE((128, 128))[0] == [32, 32]
    config = make(BACKBONE=staticmethod(backbone_fn),
                  COMPUTE_BACKBONE_SHAPE=staticmethod(backbone_shapes_fn))
    assert config.BACKBONE is backbone_fn
    assert config.COMPUTE_BACKBONE_SHAPE is backbone_shapes_fn


def test_to_dict_has_every_setting_and_derived_ones():
    config = make()
    settings = config.to_dict()
    for name in list(CLASSIC_DEFAULTS) + ["NAME", "NUM_CLASSES", "BATCH_SIZE",
                                          "IMAGE_SHAPE", "IMAGE_META_SIZE"]:
        assert name in settings
    assert settings["BATCH_SIZE"] == 2
    assert settings["NAME"] == "test"
    assert all(name.isupper() for name in settings)
    assert "display" not in settings and "validate" not in settings


def test_display_prints_every_setting(capsys):
    config = make()
    config.display()
    out = capsys.readouterr().out
    printed = {line.split()[0] for line in out.splitlines() if line.strip()}
    assert set(config.to_dict()) <= printed
    assert any(line.split()[:2] == ["NAME", "test"] for line in out.splitlines()
               if line.strip())


def test_divisible_size_is_the_one_divisibility_rule():
    from mrcnn.config import IMAGE_DIVISOR, divisible_size
    from mrcnn.images import resize_image

    assert IMAGE_DIVISOR == 64
    assert [divisible_size(s) for s in (1, 64, 65, 128, 500)] == [64, 64, 128, 128, 512]
    # pad64 pads each side up to that size; square mode's IMAGE_MAX_DIM must equal it.
    padded = resize_image(np.zeros((70, 130, 3), np.uint8), min_dim=64, mode="pad64")[0]
    assert padded.shape == (128, 192, 3)
    with pytest.raises(ConfigError, match="e.g. 512"):
        type("Odd", (Config,), {"NAME": "odd", "NUM_CLASSES": 2, "IMAGE_MAX_DIM": 500})()
