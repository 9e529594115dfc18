"""Weight files: the classic layer names and shapes, the classic HDF5 layout, exclude."""
import json
import os

import h5py
import numpy as np
import pytest

from mrcnn.config import Config
from mrcnn.graph.network import build_inference_model
from mrcnn.weights import (HEAD_LAYERS, HEADS_IF_MISMATCH, WeightFileError, WeightFileInfo,
                           _classic_weight_names, load_weights, num_classes_in_file,
                           resolve_exclude, save_weights, settings_to_fit, weight_file_info,
                           weighted_layers)

# Part of the repository: a missing file fails the tests, it never skips them.
LAYOUT_PATH = os.path.join(os.path.dirname(__file__), "data", "keras2_h5_weight_layout.json")


def _layout():
    with open(LAYOUT_PATH) as f:
        return json.load(f)


def _coco_config(backbone):
    class CocoConfig(Config):
        NAME = "coco"
        NUM_CLASSES = 81
        BACKBONE = backbone
        IMAGES_PER_GPU = 1
    return CocoConfig()


def _reference_layers(layout, backbone):
    """{layer: [(weight name, shape)]} of the classic file for a backbone."""
    entry = layout[f"inference_{backbone}_classes81"]
    return {layer["layer"]: [(w[0], tuple(w[1])) for w in layer["weights"]]
            for layer in entry["layers_with_weights"]}, entry["num_parameters"]


@pytest.fixture(scope="module")
def resnet50_coco_model():
    return build_inference_model(_coco_config("resnet50"))


def _model_layers(model):
    return {name: list(zip(_classic_weight_names(layer), [tuple(w.shape) for w in layer.weights]))
            for name, layer in weighted_layers(model).items()}


def test_resnet50_layers_match_the_classic_file(resnet50_coco_model):
    expected, parameters = _reference_layers(_layout(), "resnet50")
    assert _model_layers(resnet50_coco_model) == expected
    assert resnet50_coco_model.count_params() == parameters


def test_resnet101_layers_match_the_classic_file():
    expected, parameters = _reference_layers(_layout(), "resnet101")
    model = build_inference_model(_coco_config("resnet101"))
    assert _model_layers(model) == expected
    assert model.count_params() == parameters == 64158584


def _write_classic_file(path, layers, extra_layer_names=("input_image", "res2a_out")):
    """A Keras 2 style file: bytes layer names, weightless layers, fill values per weight."""
    values = {}
    with h5py.File(path, "w") as f:
        names = list(extra_layer_names) + list(layers)
        f.attrs["layer_names"] = np.array([n.encode() for n in names])
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4"
        for name in extra_layer_names:
            f.create_group(name).attrs["weight_names"] = np.array([], dtype="S")
        for i, (name, weights) in enumerate(layers.items()):
            group = f.create_group(name)
            group.attrs["weight_names"] = np.array([w.encode() for w, _ in weights])
            for j, (weight_name, shape) in enumerate(weights):
                value = 0.001 * i + 0.0001 * j
                # A fill value stores no data: the 45M-parameter file stays tiny.
                group.create_dataset(weight_name, shape=shape, dtype="f4", fillvalue=value)
                values[(name, j)] = np.float32(value)
    return values


def test_classic_hdf5_file_loads_into_every_variable(resnet50_coco_model, tmp_path):
    expected, _ = _reference_layers(_layout(), "resnet50")
    path = str(tmp_path / "mask_rcnn_coco_r50.h5")
    values = _write_classic_file(path, expected)
    report = load_weights(resnet50_coco_model, path)
    assert sorted(report.loaded) == sorted(expected)
    for name, layer in weighted_layers(resnet50_coco_model).items():
        for j, variable in enumerate(layer.weights):
            assert np.all(np.asarray(variable) == values[(name, j)]), (name, j)


def test_resnet101_file_loads_into_resnet50_by_name_only(resnet50_coco_model, tmp_path):
    expected, _ = _reference_layers(_layout(), "resnet101")
    path = str(tmp_path / "mask_rcnn_coco.h5")
    _write_classic_file(path, expected)
    with pytest.raises(WeightFileError, match="res4g_branch2a"):
        load_weights(resnet50_coco_model, path)
    report = load_weights(resnet50_coco_model, path, by_name=True)
    assert "res4g_branch2a" in report.unused_in_file
    assert "res4f_branch2c" in report.loaded and not report.not_in_file


@pytest.fixture(scope="module")
def three_class_config(tiny_config_class):
    class ThreeClasses(tiny_config_class):
        NUM_CLASSES = 3
    return ThreeClasses()


@pytest.fixture(scope="module")
def tiny_models(tiny_config_class, three_class_config):
    """A four-class and a three-class tiny inference model."""
    return (build_inference_model(tiny_config_class()),
            build_inference_model(three_class_config))


def _snapshot(model):
    return [w.numpy() for w in model.weights]


def test_shape_mismatch_names_layer_and_shapes_and_changes_nothing(tiny_models, tmp_path):
    four_classes, three_classes = tiny_models
    path = str(tmp_path / "three.h5")
    save_weights(three_classes, path)
    before = _snapshot(four_classes)
    with pytest.raises(WeightFileError) as error:
        load_weights(four_classes, path, by_name=True)
    message = str(error.value)
    assert "mrcnn_class_logits" in message and "(64, 3)" in message and "(64, 4)" in message
    assert all(np.array_equal(a, b) for a, b in zip(before, _snapshot(four_classes)))


def test_exclude_skips_the_class_dependent_heads(tiny_models, tmp_path):
    four_classes, three_classes = tiny_models
    path = str(tmp_path / "three.h5")
    save_weights(three_classes, path)
    heads_before = {n: _snapshot(four_classes.get_layer(n)) for n in HEAD_LAYERS
                    if four_classes.get_layer(n).weights}
    report = load_weights(four_classes, path, exclude=HEAD_LAYERS)
    assert not set(HEAD_LAYERS) & set(report.loaded)
    for name, before in heads_before.items():
        after = _snapshot(four_classes.get_layer(name))
        assert all(np.array_equal(a, b) for a, b in zip(before, after))
    for name in ("conv1", "rpn_model", "mrcnn_class_conv1", "mrcnn_mask_deconv"):
        for mine, theirs in zip(four_classes.get_layer(name).weights,
                                three_classes.get_layer(name).weights):
            np.testing.assert_array_equal(np.asarray(mine), np.asarray(theirs))


def test_saved_file_has_the_classic_layout_and_round_trips(tiny_models, three_class_config,
                                                          tmp_path):
    _, model = tiny_models
    path = str(tmp_path / "saved.h5")
    save_weights(model, path)
    with h5py.File(path, "r") as f:
        names = [n.decode() for n in f.attrs["layer_names"]]
        assert names == [layer.name for layer in model.layers]
        assert [w.decode() for w in f["rpn_model"].attrs["weight_names"]][:2] == [
            "rpn_conv_shared/kernel:0", "rpn_conv_shared/bias:0"]
        assert f["mrcnn_mask_bn1/mrcnn_mask_bn1/moving_variance:0"].shape == (256,)
    clone = build_inference_model(three_class_config)
    load_weights(clone, path)
    for a, b in zip(model.weights, clone.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_missing_file_and_foreign_file_errors(tiny_models, tmp_path):
    model, _ = tiny_models
    with pytest.raises(FileNotFoundError, match="weights/README.md"):
        load_weights(model, str(tmp_path / "nope.h5"))
    foreign = str(tmp_path / "foreign.h5")
    with h5py.File(foreign, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(WeightFileError, match="layer_names"):
        load_weights(model, foreign)
    other = str(tmp_path / "other.h5")
    _write_classic_file(other, {"dense_1": [("dense_1/kernel:0", (3, 3))]})
    with pytest.raises(WeightFileError, match="shares no weighted layer"):
        load_weights(model, other, by_name=True)


def test_model_weights_group_of_full_model_files_is_found(tiny_models, tmp_path):
    _, model = tiny_models
    flat = str(tmp_path / "flat.h5")
    save_weights(model, flat)
    nested = str(tmp_path / "nested.h5")
    with h5py.File(flat, "r") as source, h5py.File(nested, "w") as target:
        source.copy(source["/"], target, name="model_weights")
        for key, value in source.attrs.items():
            target["model_weights"].attrs[key] = value
    report = load_weights(model, nested)
    assert "conv1" in report.loaded


def test_num_classes_in_file(tiny_models, tmp_path):
    for model, classes in zip(tiny_models, (4, 3)):
        path = str(tmp_path / f"saved{classes}.h5")
        save_weights(model, path)
        assert num_classes_in_file(path) == classes
    classic = str(tmp_path / "classic.h5")
    _write_classic_file(classic, {"mrcnn_class_logits": [
        ("mrcnn_class_logits/kernel:0", (1024, 81)), ("mrcnn_class_logits/bias:0", (81,))]})
    assert num_classes_in_file(classic) == 81
    backbone = str(tmp_path / "backbone.h5")
    _write_classic_file(backbone, {"conv1": [("conv1/kernel:0", (7, 7, 3, 64))]})
    assert num_classes_in_file(backbone) is None
    with pytest.raises(FileNotFoundError):
        num_classes_in_file(str(tmp_path / "nope.h5"))


def _resnet_layers(stage_blocks, branches):
    """Classic ResNet layer names (tiny stand-in weights) for blocks per stage 2..5."""
    return {f"res{stage}{chr(ord('a') + block)}_branch2{branch}": [
                (f"res{stage}{chr(ord('a') + block)}_branch2{branch}/kernel:0", (1,))]
            for stage, count in zip(range(2, 6), stage_blocks) for block in range(count)
            for branch in branches}


def test_weight_file_info_reads_class_count_and_backbone(tiny_models, tmp_path):
    saved = str(tmp_path / "tiny.h5")
    save_weights(tiny_models[0], saved)
    assert weight_file_info(saved) == WeightFileInfo(num_classes=4, backbone="resnet50")
    for backbone, blocks, branches in (("resnet101", (3, 4, 23, 3), "abc"),
                                       ("resnet50", (3, 4, 6, 3), "abc"),
                                       ("resnet34", (3, 4, 6, 3), "ab"),
                                       ("resnet18", (2, 2, 2, 2), "ab")):
        path = str(tmp_path / f"{backbone}.h5")
        _write_classic_file(path, _resnet_layers(blocks, branches))
        assert weight_file_info(path) == WeightFileInfo(None, backbone)
    other = str(tmp_path / "other.h5")
    _write_classic_file(other, {"compact1_conv0": [("compact1_conv0/kernel:0", (1,))]})
    assert weight_file_info(other).backbone is None
    with pytest.raises(FileNotFoundError):
        weight_file_info(str(tmp_path / "nope.h5"))


def test_settings_to_fit_take_what_the_file_knows_unless_given(tiny_config_class):
    info = WeightFileInfo(num_classes=81, backbone="resnet101")
    assert settings_to_fit(info, tiny_config_class, {}) == {"NUM_CLASSES": 81,
                                                            "BACKBONE": "resnet101"}
    assert settings_to_fit(info, tiny_config_class, {"NUM_CLASSES": 4}) == {
        "BACKBONE": "resnet101"}
    assert settings_to_fit(WeightFileInfo(4, None), tiny_config_class, {}) == {}


def test_resolve_exclude(tiny_models, tmp_path):
    path = str(tmp_path / "four.h5")
    save_weights(tiny_models[0], path)
    assert resolve_exclude(HEADS_IF_MISMATCH, path, 4) == ()
    assert resolve_exclude(HEADS_IF_MISMATCH, path, 3) == HEAD_LAYERS
    assert resolve_exclude(["mrcnn_mask"], path, 3) == ("mrcnn_mask",)
    assert resolve_exclude(None, path, 3) == ()
    with pytest.raises(ValueError, match="'heads-if-mismatch' or a list"):
        resolve_exclude("mrcnn_mask", path, 3)


def test_maskrcnn_load_weights_heads_if_mismatch(tiny_models, three_class_config, tmp_path):
    from mrcnn.model import MaskRCNN

    four, three = tiny_models
    four_path, three_path = str(tmp_path / "four.h5"), str(tmp_path / "three.h5")
    save_weights(four, four_path)
    save_weights(three, three_path)
    model = MaskRCNN("inference", three_class_config, str(tmp_path / "logs"))
    heads = [n for n in HEAD_LAYERS if model.keras_model.get_layer(n).weights]
    heads_before = {n: _snapshot(model.keras_model.get_layer(n)) for n in heads}
    # Another class count: the heads are skipped and keep their weights, the rest loads.
    report = model.load_weights(four_path, by_name=True, exclude=HEADS_IF_MISMATCH)
    assert sorted(report.excluded) == sorted(heads)
    for name in heads:
        assert all(np.array_equal(a, b) for a, b in
                   zip(heads_before[name], _snapshot(model.keras_model.get_layer(name))))
    np.testing.assert_array_equal(np.asarray(model.keras_model.get_layer("conv1").weights[0]),
                                  np.asarray(four.get_layer("conv1").weights[0]))
    # The same class count: everything loads, the heads too.
    report = model.load_weights(three_path, exclude=HEADS_IF_MISMATCH)
    assert report.excluded == [] and "mrcnn_class_logits" in report.loaded
    for a, b in zip(model.keras_model.weights, three.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
