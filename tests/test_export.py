"""SavedModel export: same detections as detect(), loaded where mrcnn cannot be imported."""
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from mrcnn import cli, config_presets
from mrcnn.config import Config
from mrcnn.anchors import compute_backbone_shapes, generate_pyramid_anchors
from mrcnn.boxes import compute_overlaps
from mrcnn.export import (ANY_CHANNELS_SIGNATURE, SERVING_SIGNATURE, pyramid_anchors,
                          resize_and_pad, unmold_detections)
from mrcnn.images import resize_image
from samples.shapes.shapes import ShapesDataset

CLASS_NAMES = ["BG", "square", "circle", "triangle"]
# Landscape to be upscaled, portrait to be downscaled, square at the model's size.
IMAGE_SIZES = {"wide": (80, 120), "tall": (200, 120), "square": (128, 128)}

# Runs in a process where mrcnn cannot be imported: runs every signature on the images.
RELOAD_SCRIPT = r'''
import importlib.abc, os, sys

class RefuseMrcnn(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "mrcnn" or name.startswith("mrcnn."):
            raise ImportError(f"{name} is hidden from this process")

sys.meta_path.insert(0, RefuseMrcnn())
sys.path = [p for p in sys.path if not os.path.isdir(os.path.join(p or ".", "mrcnn"))]
try:
    import mrcnn
    sys.exit("mrcnn could be imported")
except ImportError:
    pass

import numpy as np
import tensorflow as tf

export_dir, images_file, out_file = sys.argv[1:]
loaded = tf.saved_model.load(export_dir)
images = dict(np.load(images_file))
outputs = {"signatures": np.array(sorted(loaded.signatures))}
for signature in loaded.signatures:
    function = loaded.signatures[signature]
    outputs[signature + "/input"] = np.array(repr(function.structured_input_signature))
    for name, image in images.items():
        try:
            result = function(image=tf.constant(image))
        except tf.errors.InvalidArgumentError as err:
            outputs[f"{signature}/{name}/error"] = np.array(err.message)
            continue
        for key, value in result.items():
            value = value.numpy()
            # Strings come back as Python objects, which np.load refuses.
            outputs[f"{signature}/{name}/{key}"] = value.astype(bytes) if value.dtype == object else value
np.savez(out_file, **outputs)
'''


def _make_images():
    """Shapes images of IMAGE_SIZES, plus gray, RGBA and 2-channel versions of one."""
    images = {}
    for seed, (name, (height, width)) in enumerate(IMAGE_SIZES.items()):
        dataset = ShapesDataset()
        dataset.load_shapes(1, height, width, seed=seed)
        images[name] = dataset.load_image(0)
    wide = images["wide"]
    images["gray"] = wide[:, :, :1]
    images["rgba"] = np.concatenate([wide, np.full(wide.shape[:2] + (1,), 200, np.uint8)], -1)
    images["two_channels"] = wide[:, :, :2]
    return images


def _spread_out(model, image):
    """Scales random weights so that detections differ: varied objectness and mask
    pixels, small box refinements, and class scores neither flat nor saturated, with
    class biases that give every class the same mean log-probability on ``image``."""
    keras_model = model.keras_model
    rpn = keras_model.get_layer("rpn_model")
    for layer, factor in ((rpn.get_layer("rpn_class_raw"), 30.0),
                          (rpn.get_layer("rpn_bbox_pred"), 0.1),
                          (keras_model.get_layer("mrcnn_bbox_fc"), 0.1),
                          (keras_model.get_layer("mrcnn_class_logits"), 0.05),
                          (keras_model.get_layer("mrcnn_mask"), 30.0)):
        kernel = layer.weights[0]
        kernel.assign(kernel * factor)
    molded, metas, _ = model.mold_inputs([image])
    anchors = model.get_anchors(molded.shape[1:])[None]
    class_probs = np.asarray(keras_model([molded, metas, anchors])[1])[0]
    bias = keras_model.get_layer("mrcnn_class_logits").weights[1]
    bias.assign(bias - np.log(class_probs).mean(axis=0))


@pytest.fixture(scope="module")
def exported(tiny_config_class, tmp_path_factory):
    """A tiny model with spread-out scores, exported by `mrcnn export` and reloaded in a
    process without mrcnn; the detect() results of the same weights."""
    root = tmp_path_factory.mktemp("export")
    # The settings the tiny config and its parents (up to Config) set.
    fields = {name: value for cls in reversed(tiny_config_class.__mro__)
              if issubclass(cls, Config) and cls is not Config
              for name, value in vars(cls).items() if name.isupper()}
    fields.update(DETECTION_MIN_CONFIDENCE=0, CLASS_NAMES=CLASS_NAMES)
    body = "".join(f"    {name} = {value!r}\n" for name, value in fields.items())
    config_file = root / "tiny_config.py"
    config_file.write_text(f"from mrcnn.config import Config\n\n\nclass TinyConfig(Config):\n"
                           f"{body}")
    config = config_presets.inference_config(config_presets.load_config_class(f"{config_file}:TinyConfig"))

    import keras

    from mrcnn.model import MaskRCNN
    from mrcnn.weights import save_weights

    keras.utils.set_random_seed(0)
    model = MaskRCNN("inference", config, str(root / "logs"))
    _spread_out(model, _make_images()["square"])
    keras_model = model.keras_model
    weights = root / "tiny.h5"
    save_weights(keras_model, str(weights))

    export_dir = root / "saved_model"
    status = cli.main(["export", "--config", f"{config_file}:TinyConfig", "--weights",
                       str(weights), "--out", str(export_dir), "--logs", str(root / "logs")])

    images = _make_images()
    np.savez(root / "images.npz", **images)
    (root / "reload.py").write_text(RELOAD_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    run = subprocess.run([sys.executable, "reload.py", str(export_dir), "images.npz",
                          "outputs.npz"], cwd=root, env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    outputs = dict(np.load(root / "outputs.npz"))
    return {"status": status, "dir": export_dir, "model": model, "images": images,
            "outputs": outputs, "root": root, "config_file": config_file}


def _result(outputs, signature, name):
    prefix = f"{signature}/{name}/"
    return {key[len(prefix):]: value for key, value in outputs.items()
            if key.startswith(prefix)}


def _mask_iou(a, b):
    union = np.logical_or(a, b).sum()
    return np.logical_and(a, b).sum() / union if union else 1.0


def _assert_same_detections(exported, expected):
    assert exported["class_ids"].dtype == np.int32 and exported["rois"].dtype == np.int32
    assert exported["scores"].dtype == np.float32 and exported["masks"].dtype == bool
    np.testing.assert_array_equal(exported["class_ids"], expected["class_ids"])
    assert exported["masks"].shape == expected["masks"].shape
    for i in range(len(expected["class_ids"])):
        box_iou = compute_overlaps(exported["rois"][i:i + 1], expected["rois"][i:i + 1])[0, 0]
        assert box_iou >= 0.98, (i, exported["rois"][i], expected["rois"][i])
        assert abs(exported["scores"][i] - expected["scores"][i]) <= 1e-4
        assert _mask_iou(exported["masks"][..., i], expected["masks"][..., i]) >= 0.98


def test_cli_export_writes_a_saved_model_with_the_class_names(exported):
    assert exported["status"] == 0
    assert (exported["dir"] / "saved_model.pb").is_file()
    names = (exported["dir"] / "assets" / "class_names.txt").read_text().splitlines()
    assert names == CLASS_NAMES


def test_signatures_take_one_uint8_image_of_any_size(exported):
    outputs = exported["outputs"]
    assert list(outputs["signatures"]) == sorted([SERVING_SIGNATURE, ANY_CHANNELS_SIGNATURE])
    signature = str(outputs[f"{SERVING_SIGNATURE}/input"])
    assert "shape=(None, None, 3), dtype=tf.uint8, name='image'" in signature
    for name, (height, width) in IMAGE_SIZES.items():
        result = _result(outputs, SERVING_SIGNATURE, name)
        assert set(result) == {"rois", "class_ids", "scores", "masks", "class_names"}
        count = len(result["class_ids"])
        assert result["rois"].shape == (count, 4)
        assert result["masks"].shape == (height, width, count)
        assert [n.decode() for n in result["class_names"]] == [
            CLASS_NAMES[i] for i in result["class_ids"]]


def test_same_detections_as_detect(exported):
    classes = set()
    for name in IMAGE_SIZES:
        expected = exported["model"].detect([exported["images"][name]])[0]
        # Several detections of distinct scores, masks neither empty nor full.
        assert len(expected["scores"]) >= 3 and np.ptp(expected["scores"]) > 0.01
        assert 0 < expected["masks"].mean() < 0.5
        classes |= set(expected["class_ids"])
        _assert_same_detections(_result(exported["outputs"], SERVING_SIGNATURE, name), expected)
    assert len(classes) >= 2


def test_gray_and_rgba_images_through_the_second_signature(exported):
    outputs, images = exported["outputs"], exported["images"]
    model = exported["model"]
    gray_expected = model.detect([np.repeat(images["gray"], 3, axis=-1)])[0]
    _assert_same_detections(_result(outputs, ANY_CHANNELS_SIGNATURE, "gray"), gray_expected)
    _assert_same_detections(_result(outputs, ANY_CHANNELS_SIGNATURE, "rgba"),
                            model.detect([images["wide"]])[0])
    error = str(_result(outputs, ANY_CHANNELS_SIGNATURE, "two_channels")["error"])
    assert "1 (gray), 3 (RGB) or 4 (RGBA) channels" in error
    # serving_default takes 3 channels only.
    error = str(_result(outputs, SERVING_SIGNATURE, "gray")["error"])
    assert "[80,120,1] is not compatible with expected shape [?,?,3]" in error


def test_graph_has_no_python_callbacks(exported):
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((exported["dir"] / "saved_model.pb").read_bytes())
    graph = saved.meta_graphs[0].graph_def
    ops = {node.op for node in graph.node}
    for function in graph.library.function:
        ops |= {node.op for node in function.node_def}
    assert "NonMaxSuppressionV3" in ops or "NonMaxSuppressionV5" in ops  # the whole graph
    assert not ops & {"PyFunc", "PyFuncStateless", "EagerPyFunc"}


def test_export_refuses_a_training_model(tiny_config_class, tmp_path):
    from mrcnn.model import MaskRCNN

    model = MaskRCNN("training", tiny_config_class(), str(tmp_path / "logs"))
    with pytest.raises(ValueError, match=r"Only an inference model can be exported.*"
                                         r"mode='inference'"):
        model.export(str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_export_never_overwrites(exported, tmp_path, capsys):
    target = tmp_path / "model"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not an empty folder"):
        exported["model"].export(str(target))
    assert cli.main(["export", "--config", f"{exported['config_file']}:TinyConfig",
                     "--weights", "none", "--out", str(target)]) == 1
    assert "not an empty folder" in capsys.readouterr().err
    assert os.listdir(target) == ["keep.txt"] and (target / "keep.txt").read_text() == "mine"
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".export-")]


def test_export_checks_the_class_names_first(exported, tmp_path):
    with pytest.raises(ValueError, match="got 2 class names but the config has NUM_CLASSES = 4"):
        exported["model"].export(str(tmp_path / "out"), class_names=["a", "b"])
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("rows", [0, 3])
def test_unmold_detections_is_the_numpy_unmolding(exported, rows):
    # A 90 x 60 image molded into 128 x 128 at scale 128 / 90: window (0, 21, 128, 106).
    window, original_shape, molded_shape = (0, 21, 128, 106), (90, 60, 3), (128, 128, 3)
    boxes = np.array([[0.1, 0.2, 0.6, 0.5, 2, 0.9],
                      [0.5, 0.4, 0.9, 0.8, 1, 0.8],
                      [0.3, 0.3, 0.29, 0.5, 3, 0.7]], np.float32)  # the last: no height
    detections = np.zeros((6, 6), np.float32)
    detections[:rows] = boxes[:rows]
    masks = np.random.default_rng(0).random((6, 28, 28, 4)).astype(np.float32)
    masks[1] = 0.5 + 0.4 * masks[1]  # confident everywhere: the edge blends with the zero fill
    expected = exported["model"].unmold_detections(detections, masks, original_shape,
                                                   molded_shape, window)
    result = unmold_detections(tf.constant(detections), tf.constant(masks),
                               tf.constant(original_shape[:2]), tf.constant(molded_shape[:2]),
                               tf.constant(window))
    assert len(expected[0]) == max(rows - 1, 0)
    for name, value in zip(("rois", "class_ids", "scores", "masks"), expected):
        np.testing.assert_array_equal(result[name].numpy(), value)
        assert result[name].dtype.as_numpy_dtype == value.dtype


@pytest.mark.parametrize("mode, min_dim, max_dim, size", [
    ("square", 128, 128, (60, 90)), ("square", 128, 128, (200, 120)),
    ("square", 128, 256, (37, 301)), ("square", 128, 128, (128, 128)),
    ("pad64", 64, None, (37, 53)), ("pad64", 128, None, (300, 170)),
])
@pytest.mark.parametrize("low, high", [(0, 256), (60, 200)])  # (60, 200): no black pixel
def test_resize_and_pad_is_resize_image_bit_for_bit(mode, min_dim, max_dim, size, low, high):
    image = np.random.default_rng(sum(size)).integers(low, high, size + (3,), np.uint8)
    image[5:25, 5:25] = 128  # flat areas, where rounding would show
    expected, window, scale, _, _ = resize_image(image, min_dim=min_dim, max_dim=max_dim,
                                                 mode=mode)
    resized, tf_window, tf_scale = resize_and_pad(tf.constant(image), mode, min_dim,
                                                  max_dim, 0)
    np.testing.assert_array_equal(resized.numpy(), expected)
    assert tuple(tf_window.numpy()) == window and tf_scale.numpy() == scale


@pytest.mark.parametrize("shape, anchor_stride", [((128, 128), 1), ((192, 320), 2)])
def test_pyramid_anchors_are_the_numpy_anchors(tiny_config_class, shape, anchor_stride):
    config = tiny_config_class()
    expected = generate_pyramid_anchors(
        config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS,
        compute_backbone_shapes(config, shape), config.BACKBONE_STRIDES, anchor_stride)
    anchors = pyramid_anchors(tf.constant(shape), config.RPN_ANCHOR_SCALES,
                              config.RPN_ANCHOR_RATIOS, config.BACKBONE_STRIDES, anchor_stride)
    np.testing.assert_array_equal(anchors.numpy(), expected)


def test_export_command_help(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["export", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "mrcnn export" in text and "--out DIR" in text and "serving_default" in text


def test_the_association_head_exports_its_embeddings(tiny_config_class, tmp_path):
    import keras

    from mrcnn.model import MaskRCNN

    keras.utils.set_random_seed(0)
    config = config_presets.derive_config(
        tiny_config_class, IMAGES_PER_GPU=1, DETECTION_MIN_CONFIDENCE=0.0,
        ASSOCIATION_EMBEDDING_SIZE=8, ASSOCIATION_SEES_IMAGE=True)
    model = MaskRCNN("inference", config, str(tmp_path / "logs"))
    image = _make_images()["square"]
    expected = model.detect([image])[0]
    assert len(expected["scores"]) >= 3
    served = tf.saved_model.load(model.export(str(tmp_path / "saved")))
    result = {k: v.numpy() for k, v in
              served.signatures[SERVING_SIGNATURE](image=tf.constant(image)).items()}
    _assert_same_detections(result, expected)
    assert result["embeddings"].dtype == np.float32
    np.testing.assert_allclose(result["embeddings"], expected["embeddings"], atol=1e-4)
