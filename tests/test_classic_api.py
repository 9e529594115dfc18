"""The classic mrcnn.model surface: module-level names, MaskRCNN debugging methods, .h5 I/O."""
import copy
import inspect

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

import mrcnn.model as modellib
from mrcnn import utils, visualize, weights
from mrcnn.graph import losses
from mrcnn.images import minimize_mask

_ = inspect.Parameter.empty
# Parameter names and defaults of the classic functions (shared/reference/classic_mrcnn.md;
# `_` marks a parameter without default).
CLASSIC_FUNCTIONS = {
    "log": [("text", _), ("array", None)],
    "load_image_gt": [("dataset", _), ("config", _), ("image_id", _), ("augment", False),
                      ("augmentation", None), ("use_mini_mask", False)],
    "data_generator": [("dataset", _), ("config", _), ("shuffle", True), ("augment", False),
                       ("augmentation", None), ("random_rois", 0), ("batch_size", 1),
                       ("detection_targets", False), ("no_augmentation_sources", None)],
    "build_rpn_targets": [("image_shape", _), ("anchors", _), ("gt_class_ids", _),
                          ("gt_boxes", _), ("config", _)],
    "build_detection_targets": [("rpn_rois", _), ("gt_class_ids", _), ("gt_boxes", _),
                                ("gt_masks", _), ("config", _)],
    "generate_random_rois": [("image_shape", _), ("count", _), ("gt_class_ids", _),
                             ("gt_boxes", _)],
    "mold_image": [("images", _), ("config", _)],
    "unmold_image": [("normalized_images", _), ("config", _)],
    "compose_image_meta": [("image_id", _), ("original_image_shape", _), ("image_shape", _),
                           ("window", _), ("scale", _), ("active_class_ids", _)],
    "parse_image_meta": [("meta", _)],
    "parse_image_meta_graph": [("meta", _)],
    "compute_backbone_shapes": [("config", _), ("image_shape", _)],
    "norm_boxes_graph": [("boxes", _), ("shape", _)],
    "denorm_boxes_graph": [("boxes", _), ("shape", _)],
    "resnet_graph": [("input_image", _), ("architecture", _), ("stage5", False),
                     ("train_bn", True)],
    "build_rpn_model": [("anchor_stride", _), ("anchors_per_location", _), ("depth", _)],
    "fpn_classifier_graph": [("rois", _), ("feature_maps", _), ("image_meta", _),
                             ("pool_size", _), ("num_classes", _), ("train_bn", True),
                             ("fc_layers_size", 1024)],
    "build_fpn_mask_graph": [("rois", _), ("feature_maps", _), ("image_meta", _),
                             ("pool_size", _), ("num_classes", _), ("train_bn", True)],
    "rpn_class_loss_graph": [("rpn_match", _), ("rpn_class_logits", _)],
    "rpn_bbox_loss_graph": [("config", _), ("target_bbox", _), ("rpn_match", _),
                            ("rpn_bbox", _)],
    "mrcnn_class_loss_graph": [("target_class_ids", _), ("pred_class_logits", _),
                               ("active_class_ids", _)],
    "mrcnn_bbox_loss_graph": [("target_bbox", _), ("target_class_ids", _), ("pred_bbox", _)],
    "mrcnn_mask_loss_graph": [("target_masks", _), ("target_class_ids", _),
                              ("pred_masks", _)],
    "identity_block": [("input_tensor", _), ("kernel_size", _), ("filters", _), ("stage", _),
                       ("block", _), ("use_bias", True), ("train_bn", True)],
    "conv_block": [("input_tensor", _), ("kernel_size", _), ("filters", _), ("stage", _),
                   ("block", _), ("strides", (2, 2)), ("use_bias", True), ("train_bn", True)],
    "batch_pack_graph": [("x", _), ("counts", _), ("num_rows", _)],
    "smooth_l1_loss": [("y_true", _), ("y_pred", _)],
    "refine_detections_graph": [("rois", _), ("probs", _), ("deltas", _), ("window", _),
                                ("config", _)],
    "detection_targets_graph": [("proposals", _), ("gt_class_ids", _), ("gt_boxes", _),
                                ("gt_masks", _), ("config", _)],
}
CLASSIC_METHODS = {
    "run_graph": [("images", _), ("outputs", _), ("image_metas", None)],
    "ancestor": [("tensor", _), ("name", _), ("checked", None)],
    "find_trainable_layer": [("layer", _)],
    "get_trainable_layers": [],
    "set_trainable": [("layer_regex", _), ("keras_model", None), ("indent", 0),
                      ("verbose", 1)],
    "load_weights": [("filepath", _), ("by_name", False), ("exclude", None)],
    "detect": [("images", _), ("verbose", 0)],
    "detect_molded": [("molded_images", _), ("image_metas", _), ("verbose", 0)],
    "set_log_dir": [("model_path", None)],
}
# Methods that take more (keyword) parameters now: the classic ones come first, unchanged.
CLASSIC_METHOD_PREFIXES = {
    "train": [("train_dataset", _), ("val_dataset", _), ("learning_rate", _), ("epochs", _),
              ("layers", _), ("augmentation", None), ("custom_callbacks", None),
              ("no_augmentation_sources", None)],
    "compile": [("learning_rate", _), ("momentum", _)],
    "mold_inputs": [("images", _)],
    "unmold_detections": [("detections", _), ("mrcnn_mask", _), ("original_image_shape", _),
                          ("image_shape", _), ("window", _)],
    "get_anchors": [("image_shape", _)],
    "find_last": [],
    "get_imagenet_weights": [],
}
# Leading constructor parameters of the classic layers.
CLASSIC_LAYERS = {
    "ProposalLayer": ["proposal_count", "nms_threshold", "config"],
    "PyramidROIAlign": ["pool_shape"],
    "DetectionTargetLayer": ["config"],
    "DetectionLayer": ["config"],
}


def _parameters(function, skip_self=False):
    params = [p for p in inspect.signature(function).parameters.values()
              if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    return [(p.name, p.default) for p in params[int(skip_self):]]


@pytest.mark.parametrize("name", sorted(CLASSIC_FUNCTIONS))
def test_module_function_has_the_classic_signature(name):
    assert _parameters(getattr(modellib, name)) == CLASSIC_FUNCTIONS[name]


@pytest.mark.parametrize("name", sorted(CLASSIC_METHODS))
def test_maskrcnn_method_has_the_classic_signature(name):
    assert _parameters(getattr(modellib.MaskRCNN, name), skip_self=True) == \
        CLASSIC_METHODS[name]


@pytest.mark.parametrize("name", sorted(CLASSIC_METHOD_PREFIXES))
def test_maskrcnn_method_starts_with_the_classic_parameters(name):
    classic = CLASSIC_METHOD_PREFIXES[name]
    parameters = _parameters(getattr(modellib.MaskRCNN, name), skip_self=True)
    assert parameters[:len(classic)] == classic
    # Anything added after them has a default, so classic calls still bind.
    assert all(default is not inspect.Parameter.empty
               for _name, default in parameters[len(classic):])


@pytest.mark.parametrize("name", sorted(CLASSIC_LAYERS))
def test_layer_class_has_the_classic_constructor(name):
    layer_class = getattr(modellib, name)
    assert issubclass(layer_class, keras.layers.Layer)
    names = [n for n, _ in _parameters(layer_class.__init__, skip_self=True)]
    assert names[:len(CLASSIC_LAYERS[name])] == CLASSIC_LAYERS[name]


def test_classic_utils_and_visualize_names_exist():
    for name in ("box_refinement_graph", "batch_slice", "compute_backbone_shapes",
                 "download_trained_weights", "Dataset", "COCO_MODEL_URL"):
        assert hasattr(utils, name), name
    for name in ("display_table", "display_top_masks", "display_weight_stats", "draw_rois",
                 "plot_overlaps", "display_differences", "draw_boxes"):
        assert hasattr(visualize, name), name


def test_log_prints_name_shape_min_max_dtype(capsys):
    modellib.log("rois", np.array([[1.5, -2.0], [3.0, 0.25]], dtype=np.float32))
    modellib.log("empty", np.zeros((0, 4)))
    modellib.log("Just text")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["rois", "shape:", "(2,", "2)", "min:", "-2.00000", "max:",
                                "3.00000", "float32"]
    assert lines[0].index("shape:") == 25
    assert lines[1].split() == ["empty", "shape:", "(0,", "4)", "min:", "max:", "float64"]
    assert lines[2] == "Just text"


# ------------------------------------------------------------------ data pipeline

def test_load_image_gt_defaults_to_full_size_masks(shapes, tiny_config_class):
    config = tiny_config_class()
    assert config.USE_MINI_MASK
    image, meta, class_ids, bbox, mask = modellib.load_image_gt(shapes, config, 0)
    assert image.shape == (128, 128, 3) and meta.shape == (config.IMAGE_META_SIZE,)
    assert mask.shape == (128, 128, len(class_ids)) and mask.dtype == bool
    assert bbox.shape == (len(class_ids), 4) and bbox.dtype == np.int32
    mini = modellib.load_image_gt(shapes, config, 0, use_mini_mask=True)[4]
    assert mini.shape == tuple(config.MINI_MASK_SHAPE) + (len(class_ids),)


def test_load_image_gt_augment_flag_flips_left_right(shapes, tiny_config_class):
    config = tiny_config_class()
    plain = modellib.load_image_gt(shapes, config, 1)
    np.random.seed(0)
    flips = [modellib.load_image_gt(shapes, config, 1, augment=True) for _ in range(8)]
    flipped = [r for r in flips if not np.array_equal(r[0], plain[0])]
    assert 0 < len(flipped) < 8
    np.testing.assert_array_equal(flipped[0][0], plain[0][:, ::-1])
    np.testing.assert_array_equal(flipped[0][4], plain[4][:, ::-1])


def test_build_rpn_targets_takes_the_classic_argument_order(tiny_config_class):
    config = tiny_config_class()
    anchors = np.array([[0, 0, 10, 10], [0, 0, 10, 12], [50, 50, 60, 60]], dtype=np.float32)
    match, bbox = modellib.build_rpn_targets(config.IMAGE_SHAPE, anchors, np.array([1]),
                                             np.array([[0, 0, 10, 10]]), config)
    np.testing.assert_array_equal(match, [1, 1, -1])
    assert bbox.shape == (config.RPN_TRAIN_ANCHORS_PER_IMAGE, 4)
    np.testing.assert_allclose(bbox[0], 0, atol=1e-6)


def test_generate_random_rois_lie_near_the_ground_truth(tiny_config_class):
    np.random.seed(1)
    gt_boxes = np.array([[10, 10, 30, 30], [60, 70, 100, 90]])
    rois = modellib.generate_random_rois((128, 128, 3), 50, np.array([1, 2]), gt_boxes)
    assert rois.shape == (50, 4) and rois.dtype == np.int32
    assert np.all(rois[:, 2] > rois[:, 0]) and np.all(rois[:, 3] > rois[:, 1])
    assert rois.min() >= 0 and rois.max() <= 128
    # int(0.9 * 50 / 2) = 22 per box, within one box size of it.
    near_first = rois[:22]
    assert near_first[:, :2].min() >= 0 and near_first[:, 2:].max() <= 50
    near_second = rois[22:44]
    assert near_second[:, 0].min() >= 20 and near_second[:, 1].min() >= 50


def _l_shaped_instance():
    """One instance in a 128 x 128 image: box (10, 10, 30, 34), the lower-right quarter
    missing."""
    mask = np.zeros((128, 128, 1), dtype=bool)
    mask[10:20, 10:34, 0] = True
    mask[20:30, 10:22, 0] = True
    return np.array([3]), np.array([[10, 10, 30, 34]]), mask


@pytest.mark.parametrize("use_mini_mask", [False, True])
def test_build_detection_targets_by_hand(tiny_config_class, use_mini_mask):
    class Config(tiny_config_class):
        USE_MINI_MASK = use_mini_mask
    config = Config()
    class_ids, boxes, mask = _l_shaped_instance()
    if use_mini_mask:
        mask = minimize_mask(boxes, mask, config.MINI_MASK_SHAPE)
    rois_in = np.array([[10, 10, 30, 34], [10, 10, 30, 30], [90, 90, 120, 120]])
    rois, target_ids, deltas, masks = modellib.build_detection_targets(
        rois_in, class_ids, boxes, mask, config)
    rois_per_image, nc = config.TRAIN_ROIS_PER_IMAGE, config.NUM_CLASSES
    assert rois.shape == (rois_per_image, 4) and rois.dtype == np.int32
    assert deltas.shape == (rois_per_image, nc, 4)
    assert masks.shape == (rois_per_image, 28, 28, nc)
    # Two positives (IoU 1 and 400/480) first, then the negative repeated.
    assert sorted(map(tuple, rois[:2])) == [(10, 10, 30, 30), (10, 10, 30, 34)]
    np.testing.assert_array_equal(rois[2:], np.tile([90, 90, 120, 120], (14, 1)))
    np.testing.assert_array_equal(target_ids, [3, 3] + [0] * 14)
    smaller = int(np.nonzero(rois[:2, 3] == 30)[0][0])
    # Centre x 20 -> 22 and width 20 -> 24, over BBOX_STD_DEV (0.1, 0.1, 0.2, 0.2).
    np.testing.assert_allclose(deltas[smaller, 3], [0, 1.0, 0, np.log(1.2) / 0.2], atol=1e-5)
    np.testing.assert_allclose(deltas[1 - smaller, 3], 0, atol=1e-6)
    assert not deltas[:, :3].any() and not deltas[2:].any()
    expected = np.zeros((28, 28))
    expected[:14] = 1
    expected[14:, :14] = 1
    agreement = np.mean(masks[1 - smaller, :, :, 3] == expected)
    assert agreement == 1.0 if not use_mini_mask else agreement > 0.95
    assert not masks[:, :, :, :3].any() and not masks[2:].any()


def test_data_generator_yields_the_classic_tuples(shapes, tiny_config_class):
    config = tiny_config_class()
    anchors = 4092  # 3 ratios x (32² + 16² + 8² + 4² + 2²) for 128 x 128.
    inputs, outputs = next(modellib.data_generator(shapes, config, batch_size=3))
    assert outputs == []
    expected = [((3, 128, 128, 3), np.float32), ((3, config.IMAGE_META_SIZE), np.float32),
                ((3, anchors, 1), np.int32), ((3, config.RPN_TRAIN_ANCHORS_PER_IMAGE, 4),
                                              np.float32),
                ((3, 8), np.int32), ((3, 8, 4), np.int32), ((3, 56, 56, 8), bool)]
    assert [(a.shape, a.dtype) for a in inputs] == expected
    assert np.all(inputs[4][:, 0] > 0)  # every image has an instance

    np.random.seed(2)
    # About 1 % of the random ROIs reach IoU 0.5 with a gt box: 1000 give some positives.
    generator = modellib.data_generator(shapes, config, shuffle=False, random_rois=1000,
                                        batch_size=2, detection_targets=True)
    inputs, outputs = next(generator)
    assert len(inputs) == 9 and len(outputs) == 3
    rois_per_image, nc = config.TRAIN_ROIS_PER_IMAGE, config.NUM_CLASSES
    assert inputs[7].shape == (2, 1000, 4) and inputs[7].dtype == np.int32
    assert inputs[8].shape == (2, rois_per_image, 4)
    assert [o.shape for o in outputs] == [(2, rois_per_image, 1), (2, rois_per_image, nc, 4),
                                          (2, rois_per_image, 28, 28, nc)]
    # Target classes are gt classes of the image (or 0), at the positions of their deltas.
    for image in range(2):
        target = outputs[0][image, :, 0]
        assert set(target) <= set(inputs[4][image]) | {0}
        assert np.any(target > 0)
        for row in np.nonzero(target)[0]:
            assert outputs[2][image, row, :, :, target[row]].any()
    # Many batches: the generator keeps going past the 6 images.
    for _ in range(4):
        inputs, outputs = next(generator)
    assert inputs[0].shape == (2, 128, 128, 3)


# ------------------------------------------------------------------ graph pieces

def test_classic_layers_take_their_settings_from_the_config(tiny_config_class):
    config = tiny_config_class()
    proposals = modellib.ProposalLayer(20, 0.6, config=config, name="ROI")
    assert (proposals.proposal_count, proposals.nms_threshold, proposals.pre_nms_limit) == \
        (20, 0.6, config.PRE_NMS_LIMIT)
    targets = modellib.DetectionTargetLayer(config, name="proposal_targets")
    assert targets.train_rois_per_image == config.TRAIN_ROIS_PER_IMAGE
    assert targets.mask_shape == tuple(config.MASK_SHAPE)
    detections = modellib.DetectionLayer(config, name="mrcnn_detection")
    assert detections.max_instances == config.DETECTION_MAX_INSTANCES
    # A copy from get_config is the same layer.
    again = modellib.DetectionLayer.from_config(detections.get_config())
    assert again.max_instances == detections.max_instances


def test_classic_batchnorm_follows_the_training_argument():
    x = np.random.default_rng(0).normal(3.0, 2.0, (16, 4, 4, 2)).astype(np.float32)
    layer = modellib.BatchNorm(name="bn")
    frozen = np.asarray(layer(x, training=False))
    batch = np.asarray(layer(x, training=True))
    # Fresh moving statistics (0, 1): training=False leaves x (almost) as it is.
    np.testing.assert_allclose(frozen, x / np.sqrt(1 + 1e-3), rtol=1e-5)
    np.testing.assert_allclose(batch.mean(), 0, atol=1e-4)


def test_graph_builders_keep_the_classic_argument_order(tiny_config_class):
    config = tiny_config_class()
    image = keras.Input((128, 128, 3))
    c1, c2, c3, c4, c5 = modellib.resnet_graph(image, "resnet50")
    assert c5 is None and tuple(c4.shape) == (None, 8, 8, 1024)
    rois = keras.Input((5, 4))
    meta = keras.Input((config.IMAGE_META_SIZE,))
    maps = [keras.Input((s, s, 16)) for s in (32, 16, 8, 4)]
    logits, probs, bbox = modellib.fpn_classifier_graph(rois, maps, meta, 7, 4, False, 32)
    assert tuple(probs.shape) == (None, 5, 4) and tuple(bbox.shape) == (None, 5, 4, 4)
    masks = modellib.build_fpn_mask_graph(rois, maps, meta, 14, 4, train_bn=False)
    assert tuple(masks.shape) == (None, 5, 28, 28, 4)
    rpn = modellib.build_rpn_model(1, 3, 16)
    assert rpn.name == "rpn_model"


def test_graph_helpers_match_their_numpy_twins():
    boxes = np.array([[0., 0., 10., 20.], [5., 5., 6., 7.]], dtype=np.float32)
    normalized = modellib.norm_boxes_graph(boxes, tf.constant([11, 21]))
    np.testing.assert_allclose(normalized, utils.norm_boxes(boxes, (11, 21)), rtol=1e-6)
    np.testing.assert_array_equal(modellib.denorm_boxes_graph(normalized, (11, 21)), boxes)
    meta = utils.compose_image_meta(7, (100, 80, 3), (128, 128, 3), (14, 24, 114, 104), 1.28,
                                    [1, 1, 0])[None]
    graph_meta = modellib.parse_image_meta_graph(meta.astype(np.float32))
    for key, value in modellib.parse_image_meta(meta).items():
        np.testing.assert_allclose(np.asarray(graph_meta[key]), value, rtol=1e-6)
    stacked = utils.batch_slice([tf.constant([[1., 2.], [3., 4.]])], lambda row: row * 2, 2)
    np.testing.assert_array_equal(stacked, [[2., 4.], [6., 8.]])


def test_loss_graphs_map_the_classic_arguments(tiny_config_class):
    rng = np.random.default_rng(0)
    rpn_match = rng.integers(-1, 2, (2, 30, 1)).astype(np.int32)
    rpn_logits = rng.normal(size=(2, 30, 2)).astype(np.float32)
    rpn_bbox = rng.normal(size=(2, 30, 4)).astype(np.float32)
    target_bbox = rng.normal(size=(2, 10, 4)).astype(np.float32)
    class_ids = np.array([[1, 2, 0, 0], [3, 0, 0, 0]], dtype=np.int32)
    class_logits = rng.normal(size=(2, 4, 4)).astype(np.float32)
    deltas = rng.normal(size=(2, 4, 4)).astype(np.float32)
    pred_deltas = rng.normal(size=(2, 4, 4, 4)).astype(np.float32)
    target_masks = rng.integers(0, 2, (2, 4, 6, 6)).astype(np.float32)
    pred_masks = rng.uniform(0.01, 0.99, (2, 4, 6, 6, 4)).astype(np.float32)
    active = np.ones((2, 4), dtype=np.float32)
    config = tiny_config_class()
    pairs = [
        (modellib.rpn_class_loss_graph(rpn_match, rpn_logits),
         losses.rpn_class_loss(rpn_match, rpn_logits)),
        (modellib.rpn_bbox_loss_graph(config, target_bbox, rpn_match, rpn_bbox),
         losses.rpn_bbox_loss(target_bbox, rpn_match, rpn_bbox)),
        (modellib.mrcnn_class_loss_graph(class_ids, class_logits, active),
         losses.mrcnn_class_loss(class_ids, class_logits, active)),
        (modellib.mrcnn_bbox_loss_graph(deltas, class_ids, pred_deltas),
         losses.mrcnn_bbox_loss(deltas, class_ids, pred_deltas)),
        (modellib.mrcnn_mask_loss_graph(target_masks, class_ids, pred_masks),
         losses.mrcnn_mask_loss(target_masks, class_ids, pred_masks)),
    ]
    for classic, current in pairs:
        assert float(classic) > 0
        np.testing.assert_allclose(float(classic), float(current), rtol=1e-6)


# ------------------------------------------------------------------ MaskRCNN methods

@pytest.fixture(scope="module")
def inference_model(tiny_config_class, tmp_path_factory):
    return modellib.MaskRCNN("inference", tiny_config_class(),
                             str(tmp_path_factory.mktemp("logs")))


def test_run_graph_returns_the_arrays_of_named_layers(inference_model, capsys):
    km = inference_model.keras_model
    image = np.random.default_rng(3).integers(0, 255, (100, 120, 3), dtype=np.uint8)
    results = inference_model.run_graph([image], [
        ("proposals", km.get_layer("ROI").output),
        ("probs", km.get_layer("mrcnn_class").output),
        ("detections", km.get_layer("mrcnn_detection").output),
    ])
    assert list(results) == ["proposals", "probs", "detections"]
    config = inference_model.config
    assert results["proposals"].shape == (1, config.POST_NMS_ROIS_INFERENCE, 4)
    assert results["probs"].shape == (1, config.POST_NMS_ROIS_INFERENCE, config.NUM_CLASSES)
    assert results["detections"].shape == (1, config.DETECTION_MAX_INSTANCES, 6)
    # The same values as the full model's outputs on the same inputs.
    molded, metas, _ = inference_model.mold_inputs([image])
    anchors = inference_model.get_anchors(molded.shape[1:])[None]
    full = km([molded, metas.astype(np.float32), anchors.astype(np.float32)], training=False)
    np.testing.assert_allclose(results["proposals"], full[4], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(results["probs"], full[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(results["detections"], full[0], rtol=1e-5, atol=1e-6)
    printed = capsys.readouterr().out
    assert "proposals" in printed and "shape: (1, 32, 4)" in printed
    # Already molded images with their metas give the same result.
    again = inference_model.run_graph(molded, [("probs", km.get_layer("mrcnn_class").output)],
                                      image_metas=metas)
    np.testing.assert_allclose(again["probs"], results["probs"], rtol=1e-5, atol=1e-6)


def test_ancestor_explains_the_keras3_way(inference_model):
    with pytest.raises(NotImplementedError, match=r"(?s)get_layer\('ROI'\).output.*run_graph"):
        inference_model.ancestor(None, "ROI/refined_anchors:0")


def test_trainable_layers_and_classic_set_trainable_printout(inference_model, capsys):
    model = inference_model
    found = model.get_trainable_layers()
    names = [layer.name for layer in found]
    assert "conv1" in names and "rpn_model" in names
    # TimeDistributed wrappers are unwrapped to the layer holding the weights.
    wrapper = model.keras_model.get_layer("mrcnn_class_logits")
    assert model.find_trainable_layer(wrapper) is wrapper.layer
    assert wrapper.layer in found
    trainable = model.set_trainable(r"(mrcnn\_.*)|(rpn\_.*)")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Selecting layers to train"
    assert "In model:  rpn_model" in lines
    assert any(line.startswith("    rpn_conv_shared") for line in lines)
    assert any(line.split()[:2] == ["mrcnn_class_logits", "(TimeDistributed)"]
               for line in lines)
    assert "rpn_conv_shared" in trainable and "conv1" not in trainable
    assert not model.keras_model.get_layer("conv1").trainable
    model.set_trainable(".*", verbose=0)
    assert capsys.readouterr().out == ""
    assert model.keras_model.get_layer("conv1").trainable


def _read_classic_layout(path):
    """What a Keras 2 by-name loader sees: layer name -> {weight name: array}."""
    with h5py.File(path, "r") as handle:
        names = [n.decode() if isinstance(n, bytes) else n for n in handle.attrs["layer_names"]]
        found = {}
        for name in names:
            weight_names = [w.decode() if isinstance(w, bytes) else w
                            for w in handle[name].attrs["weight_names"]]
            found[name] = {w: handle[name][w][()] for w in weight_names}
    return found


def test_keras_model_save_weights_h5_writes_the_classic_layout(inference_model, tmp_path):
    km = inference_model.keras_model
    path = str(tmp_path / "x.h5")
    km.save_weights(path)
    layout = _read_classic_layout(path)
    np.testing.assert_array_equal(layout["conv1"]["conv1/kernel:0"],
                                  km.get_layer("conv1").weights[0].numpy())
    assert list(layout["rpn_model"])[:2] == ["rpn_conv_shared/kernel:0",
                                             "rpn_conv_shared/bias:0"]
    assert "mrcnn_class_logits/kernel:0" in layout["mrcnn_class_logits"]
    assert list(layout["bn_conv1"]) == [f"bn_conv1/{w}:0" for w in
                                        ("gamma", "beta", "moving_mean", "moving_variance")]

    changed = [w for name in ("conv1", "rpn_model", "mrcnn_class_logits", "mrcnn_mask_bn1")
               for w in km.get_layer(name).weights]
    saved = [w.numpy() for w in changed]
    for w in changed:
        w.assign(np.full(w.shape, 7.0))
    report = km.load_weights(path, by_name=True)
    assert isinstance(report, weights.LoadReport) and "rpn_model" in report.loaded
    assert set(report.loaded) == set(weights.weighted_layers(km))
    for w, value in zip(changed, saved):
        np.testing.assert_array_equal(w.numpy(), value)
    assert weights.num_classes_in_file(path) == inference_model.config.NUM_CLASSES
    # Keras's own format still goes to Keras.
    native = str(tmp_path / "x.weights.h5")
    km.save_weights(native)
    with h5py.File(native, "r") as handle:
        assert "layer_names" not in handle.attrs
    with pytest.raises(ValueError, match="exclude="):
        km.load_weights(path, skip_mismatch=True)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        km.save_weights(path, overwrite=False)


# ------------------------------------------------------------------ visualize

def test_display_top_masks_takes_uint8_masks_without_overflow(tmp_path):
    import warnings

    from PIL import Image
    masks = np.zeros((40, 40, 300), dtype=np.uint8)
    masks[5:20, 5:20, :200] = 1
    masks[25:35, 25:35, 200:] = 1
    class_ids = np.array([1] * 200 + [2] * 100)
    image = np.zeros((40, 40, 3), dtype=np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        visualize.display_top_masks(image, masks, class_ids, ["BG", "a", "b"], limit=2,
                                    save_path=str(tmp_path / "uint8.png"))
    visualize.display_top_masks(image, masks.astype(bool), class_ids, ["BG", "a", "b"],
                                limit=2, save_path=str(tmp_path / "bool.png"))
    with Image.open(tmp_path / "uint8.png") as a, Image.open(tmp_path / "bool.png") as b:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_display_table_prints_aligned_text_and_returns_html(capsys):
    html = visualize.display_table([["WEIGHT NAME", "SHAPE"], ["conv1/kernel", "(7, 7)"],
                                    ["a<b", 3]])
    assert html == ("<table><tr><td>WEIGHT NAME</td><td>SHAPE</td></tr>"
                    "<tr><td>conv1/kernel</td><td>(7, 7)</td></tr>"
                    "<tr><td>a&lt;b</td><td>3</td></tr></table>")
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["WEIGHT NAME   SHAPE ", "conv1/kernel  (7, 7)", "a<b           3     "]


def test_run_graph_rejects_foreign_tensors_and_training_models(inference_model):
    foreign = keras.Input((4,), name="foreign")
    with pytest.raises(ValueError, match=r"outputs \['x'\] must be outputs of this model"):
        inference_model.run_graph([np.zeros((64, 64, 3), np.uint8)], [("x", foreign)])
    # The mode check comes first: a shallow copy with another mode suffices.
    training = copy.copy(inference_model)
    training.mode = "training"
    with pytest.raises(RuntimeError, match="mode='inference'"):
        training.run_graph([], [])


def test_classic_resnet_blocks_build_the_classic_layer_names():
    # A custom BACKBONE callable of classic code composes these.
    image = keras.Input((32, 32, 64))
    x = modellib.conv_block(image, 3, [16, 16, 64], stage=2, block="a", strides=(1, 1),
                            train_bn=False)
    x = modellib.identity_block(x, 5, [16, 16, 64], stage=2, block="b", use_bias=False,
                                train_bn=False)
    model = keras.Model(image, x)
    names = {layer.name for layer in model.layers}
    assert {"res2a_branch1", "bn2a_branch1", "res2a_branch2c", "res2b_branch2b",
            "res2b_out"} <= names and "res2b_branch1" not in names
    assert tuple(model.get_layer("res2b_branch2b").kernel.shape) == (5, 5, 16, 16)
    assert model.get_layer("res2b_branch2a").bias is None
    assert tuple(x.shape) == (None, 32, 32, 64)
    strided = modellib.conv_block(image, 3, [8, 8, 32], stage=3, block="a")
    assert tuple(strided.shape) == (None, 16, 16, 32)


def test_batch_pack_and_smooth_l1_by_hand():
    x = tf.constant([[1., 2., 3.], [4., 5., 6.]])
    np.testing.assert_array_equal(modellib.batch_pack_graph(x, tf.constant([2, 1]), 2),
                                  [1., 2., 4.])
    loss = modellib.smooth_l1_loss(tf.constant([0., 0., 0.]), tf.constant([0.5, -2., 1.]))
    np.testing.assert_allclose(loss, [0.125, 1.5, 0.5])


def test_refine_detections_graph_is_one_image_of_the_detection_layer(tiny_config_class):
    config = type("KeepAll", (tiny_config_class,), {"DETECTION_MIN_CONFIDENCE": 0.0})()
    rng = np.random.default_rng(3)
    corners = 0.8 * rng.random((1, 6, 2)).astype(np.float32)
    rois = np.concatenate([corners, corners + 0.2], axis=-1)
    probs = rng.dirichlet(np.ones(config.NUM_CLASSES), (1, 6)).astype(np.float32)
    deltas = rng.normal(0, 0.5, (1, 6, config.NUM_CLASSES, 4)).astype(np.float32)
    meta = utils.compose_image_meta(0, (128, 128, 3), (128, 128, 3), (0, 0, 128, 128), 1.0,
                                    np.ones(config.NUM_CLASSES))[None].astype(np.float32)
    layer = modellib.DetectionLayer(config)([rois, probs, deltas, meta])
    window = np.array([0., 0., 1., 1.], np.float32)
    one = modellib.refine_detections_graph(rois[0], probs[0], deltas[0], window, config)
    np.testing.assert_allclose(one, layer[0], rtol=1e-6)
    assert one.shape == (config.DETECTION_MAX_INSTANCES, 6)
    assert np.count_nonzero(np.asarray(one)[:, 5]) > 0  # some detections survive


def test_detection_targets_graph_gives_one_images_targets(tiny_config_class):
    config = type("FullMasks", (tiny_config_class,), {"USE_MINI_MASK": False})()
    gt_boxes = np.array([[0.1, 0.1, 0.5, 0.5], [0.0, 0.0, 0.0, 0.0]], np.float32)
    gt_masks = np.zeros((128, 128, 2), bool)
    gt_masks[13:64, 13:64, 0] = True
    proposals = np.array([[0.1, 0.1, 0.5, 0.5], [0.6, 0.6, 0.9, 0.9], [0, 0, 0, 0]],
                         np.float32)
    rois, class_ids, deltas, masks = modellib.detection_targets_graph(
        proposals, np.array([2, 0]), gt_boxes, gt_masks, config)
    rows = config.TRAIN_ROIS_PER_IMAGE
    assert rois.shape == (rows, 4) and masks.shape == (rows, *config.MASK_SHAPE)
    # The proposal on the gt box is the positive: first row, class 2, zero deltas.
    np.testing.assert_allclose(rois[0], proposals[0])
    assert list(np.asarray(class_ids)[:2]) == [2, 0]
    np.testing.assert_allclose(deltas[0], 0, atol=1e-6)
    assert np.asarray(masks[0]).mean() > 0.9 and not np.asarray(masks[1:]).any()
