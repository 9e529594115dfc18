"""MaskRCNN in inference mode: detect(), molding and unmolding, anchors, log dirs."""
import os

import h5py
import numpy as np
import pytest

from mrcnn.boxes import norm_boxes
from mrcnn.image_meta import parse_image_meta
from mrcnn.model import IMAGENET_WEIGHTS_FILE, MaskRCNN

CLASS_SCORE_BIAS = np.array([0., 3., 1., 0.])  # class 1 wins with softmax 0.8214


@pytest.fixture(scope="module")
def model(tiny_config_class, tmp_path_factory):
    """A tiny inference model whose heads are set by hand.

    The RPN (random) ranks the anchors but moves none, the class head always says
    class 1 with a known score and moves no box, and the mask head says "inside"
    everywhere. Detections are then anchors, and every mask fills its box.
    """
    class Config(tiny_config_class):
        DETECTION_MIN_CONFIDENCE = 0.5
    mrcnn = MaskRCNN("inference", Config(), str(tmp_path_factory.mktemp("logs")))
    km = mrcnn.keras_model
    for name in ("mrcnn_bbox_fc", "mrcnn_class_logits", "mrcnn_mask"):
        for w in km.get_layer(name).weights:
            w.assign(np.zeros(w.shape))
    km.get_layer("mrcnn_class_logits").weights[1].assign(CLASS_SCORE_BIAS)
    km.get_layer("mrcnn_mask").weights[1].assign(np.full([4], 2.0))
    for w in km.get_layer("rpn_model").weights[4:]:  # rpn_bbox_pred kernel and bias
        w.assign(np.zeros(w.shape))
    return mrcnn


def _images():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, shape, dtype=np.uint8)
            for shape in [(100, 150, 3), (128, 128, 3), (60, 90, 3)]]


def test_detect_returns_classic_dicts_in_original_pixels(model):
    images = _images()
    results = model.detect(images)
    assert len(results) == len(images)
    expected_score = np.exp(3) / np.exp(CLASS_SCORE_BIAS).sum()
    for image, result in zip(images, results):
        assert set(result) == {"rois", "class_ids", "scores", "masks"}
        count = len(result["rois"])
        assert 0 < count <= model.config.DETECTION_MAX_INSTANCES
        assert result["rois"].dtype == np.int32 and result["rois"].shape == (count, 4)
        assert result["class_ids"].dtype == np.int32 and np.all(result["class_ids"] == 1)
        assert result["scores"].dtype == np.float32
        np.testing.assert_allclose(result["scores"], expected_score, rtol=1e-5)
        assert result["masks"].dtype == bool
        assert result["masks"].shape == image.shape[:2] + (count,)
        y1, x1, y2, x2 = result["rois"].T
        height, width = image.shape[:2]
        assert np.all((0 <= y1) & (y1 < y2) & (y2 <= height))
        assert np.all((0 <= x1) & (x1 < x2) & (x2 <= width))
        for i, (a, b, c, d) in enumerate(result["rois"]):
            box_mask = np.zeros(image.shape[:2], bool)
            box_mask[a:c, b:d] = True
            np.testing.assert_array_equal(result["masks"][:, :, i], box_mask)


def test_detect_traces_once_for_all_sizes_and_batches(tiny_config_class, tmp_path):
    class Pad64(tiny_config_class):
        IMAGE_RESIZE_MODE = "pad64"
        IMAGE_MIN_DIM = 64
        IMAGES_PER_GPU = 2
    model = MaskRCNN("inference", Pad64(), str(tmp_path))
    images = _images()
    # pad64 keeps each image's aspect: three molded shapes, so detect() groups the images
    # by shape and runs batches of 1 and 2 images of different sizes.
    shapes = [model.mold_inputs([image])[0].shape[1:3] for image in images]
    assert shapes == [(128, 192), (128, 128), (64, 128)]
    results = model.detect(images + images[:1])
    assert [r["masks"].shape[:2] for r in results] == [i.shape[:2] for i in images + images[:1]]
    model.detect(images[2:])
    assert model._predict.experimental_get_tracing_count() == 1


def test_detect_matches_detect_of_each_image_alone(model):
    together = model.detect(_images())
    for image, result in zip(_images(), together):
        alone = model.detect([image])[0]
        for key in result:
            np.testing.assert_array_equal(result[key], alone[key])


@pytest.mark.parametrize("images, message", [
    ([], "no images"),
    (np.zeros([64, 64, 3], np.uint8), "list of images"),
    ([np.zeros([64, 64, 3]), np.zeros([64, 64, 2], np.uint8)], "image 1 of the list: 2 channels"),
    ([np.zeros([1, 1, 3], np.uint8)], "image 0 of the list: the image is 1x1"),
])
def test_detect_rejects_bad_input_clearly(model, images, message):
    with pytest.raises(ValueError, match=message):
        model.detect(images)


def test_detect_molded_uses_molded_pixels(model):
    molded, metas, _ = model.mold_inputs(_images()[1:2])
    result = model.detect_molded(molded, metas)[0]
    assert result["masks"].shape == (128, 128, len(result["rois"]))
    with pytest.raises(ValueError, match="one meta per image"):
        model.detect_molded(molded, np.concatenate([metas, metas]))


def test_hand_drawn_box_survives_mold_and_unmold(model):
    image = np.zeros([100, 150, 3], np.uint8)
    box = np.array([20, 30, 70, 110])
    molded, metas, windows = model.mold_inputs([image])
    window = windows[0]
    scale = parse_image_meta(metas)["scale"][0]
    molded_box = box * scale + np.array([window[0], window[1], window[0], window[1]])
    detections = np.zeros([6, 6], np.float32)
    detections[0, :4] = norm_boxes(molded_box[None], molded.shape[1:3])[0]
    detections[0, 4:] = [2, 0.9]
    masks = np.zeros([6, 28, 28, 4], np.float32)
    masks[0, :, :, 2] = 1.0
    rois, class_ids, scores, full_masks = model.unmold_detections(
        detections, masks, image.shape, molded.shape[1:], window)
    np.testing.assert_array_equal(rois, [box])
    np.testing.assert_array_equal(class_ids, [2])
    np.testing.assert_allclose(scores, [0.9])
    assert full_masks.shape == (100, 150, 1)
    assert full_masks[20:70, 30:110, 0].all() and full_masks.sum() == 50 * 80


def test_unmold_drops_zero_area_boxes(model):
    detections = np.zeros([6, 6], np.float32)
    detections[0] = [0.5, 0.5, 0.5, 0.9, 1, 0.9]
    rois, class_ids, scores, masks = model.unmold_detections(
        detections, np.ones([6, 28, 28, 4]), (128, 128, 3), (128, 128, 3), (0, 0, 128, 128))
    assert rois.shape == (0, 4) and masks.shape == (128, 128, 0) and masks.dtype == bool


def test_get_anchors_is_cached_per_shape(model):
    anchors = model.get_anchors((128, 128, 3))
    # 3 ratios on 32^2 + 16^2 + 8^2 + 4^2 + 2^2 cells.
    assert anchors.shape == (3 * (1024 + 256 + 64 + 16 + 4), 4)
    assert model.get_anchors((128, 128, 3)) is anchors
    assert model.anchors.max() > 100  # pixel anchors are kept beside the normalized ones


def test_log_dir_resumes_from_checkpoint_name(model):
    path = os.path.join(model.model_dir, "tiny20240102T0304", "mask_rcnn_tiny_0007.h5")
    model.set_log_dir(path)
    assert model.epoch == 7
    assert model.log_dir == os.path.join(model.model_dir, "tiny20240102T0304")
    assert model.checkpoint_path.endswith("mask_rcnn_tiny_{epoch:04d}.h5")
    model.set_log_dir()
    assert model.epoch == 0


def test_find_last_picks_latest_run_and_checkpoint(model, tmp_path):
    model.model_dir = str(tmp_path)
    with pytest.raises(FileNotFoundError, match="No training run"):
        model.find_last()
    for run in ("tiny20240101T0000", "tiny20240202T0000"):
        os.makedirs(tmp_path / run)
    with pytest.raises(FileNotFoundError, match="No checkpoint"):
        model.find_last()
    for epoch in (1, 2):
        with h5py.File(tmp_path / "tiny20240202T0000" / f"mask_rcnn_tiny_{epoch:04d}.h5",
                       "w") as handle:
            handle["layer/kernel:0"] = np.ones(3, np.float32)
    assert model.find_last().endswith(os.path.join("tiny20240202T0000", "mask_rcnn_tiny_0002.h5"))


def test_imagenet_weights_are_found_locally_or_explained(model, tmp_path):
    model.model_dir = str(tmp_path)
    if not any(os.path.exists(os.path.join(d, IMAGENET_WEIGHTS_FILE))
               for d in (os.path.expanduser("~/.keras/models"),)):
        with pytest.raises(FileNotFoundError, match="Download"):
            model.get_imagenet_weights()
    (tmp_path / IMAGENET_WEIGHTS_FILE).write_bytes(b"")
    assert os.path.exists(model.get_imagenet_weights())


def test_bad_mode_and_config_are_refused(tiny_config_class):
    with pytest.raises(ValueError, match="mode"):
        MaskRCNN("predict", tiny_config_class(), "logs")
    with pytest.raises(TypeError, match="Config"):
        MaskRCNN("inference", object(), "logs")
