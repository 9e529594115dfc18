"""The graph's custom layers against numpy references and hand-computed values."""
import numpy as np
import pytest
import tensorflow as tf

from mrcnn import boxes as np_boxes
from mrcnn.graph import box_ops
from mrcnn.graph.detection import DetectionBoxes, DetectionLayer
from mrcnn.graph.layers import PadRows
from mrcnn.graph.proposals import ProposalLayer
from mrcnn.graph.association import ImageROICrop
from mrcnn.graph.roi_align import PyramidROIAlign, roi_levels
from mrcnn.image_meta import compose_image_meta

STD = np.array([0.1, 0.1, 0.2, 0.2])


def _metas(image_shape, windows, num_classes):
    """[len(windows), META] metas of molded images of `image_shape` with these pixel windows."""
    return np.stack([compose_image_meta(0, image_shape, image_shape, window, 1.0,
                                        np.ones(num_classes)) for window in windows]
                    ).astype(np.float32)


def test_box_ops_match_numpy_and_invert():
    rng = np.random.default_rng(0)
    boxes = np.sort(rng.uniform(0, 1, (20, 2, 2)), axis=1).transpose(0, 2, 1).reshape(20, 4)
    boxes = boxes[:, [0, 1, 2, 3]].astype(np.float32)
    boxes = np.stack([boxes[:, 0], boxes[:, 1], boxes[:, 0] + 0.1 + boxes[:, 2],
                      boxes[:, 1] + 0.1 + boxes[:, 3]], axis=1).astype(np.float32)
    gt = (boxes + rng.uniform(-0.05, 0.05, boxes.shape)).astype(np.float32)
    deltas = box_ops.box_refinement(boxes, gt).numpy()
    np.testing.assert_allclose(deltas, np_boxes.box_refinement(boxes, gt), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(box_ops.apply_box_deltas(boxes, deltas).numpy(), gt, atol=1e-5)
    np.testing.assert_allclose(box_ops.overlaps(boxes, gt).numpy(),
                               np_boxes.compute_overlaps(boxes, gt), atol=1e-6)


def test_clip_and_norm_boxes_by_hand():
    clipped = box_ops.clip_boxes(tf.constant([[-0.5, 0.2, 1.5, 0.9]]), tf.constant([0., 0., 1., 1.]))
    np.testing.assert_allclose(clipped.numpy(), [[0., 0.2, 1., 0.9]])
    # (box - [0, 0, 1, 1]) / [h-1, w-1, h-1, w-1] for a 101 x 201 image.
    normalized = box_ops.norm_boxes(tf.constant([[10., 20., 51., 101.]]), tf.constant([101, 201]))
    np.testing.assert_allclose(normalized.numpy(), [[0.1, 0.1, 0.5, 0.5]], rtol=1e-6)
    pixels = box_ops.denorm_boxes(normalized, tf.constant([101, 201]))
    np.testing.assert_array_equal(pixels.numpy(), [[10, 20, 51, 101]])


def test_overlaps_of_empty_boxes_is_zero():
    result = box_ops.overlaps(tf.zeros([2, 4]), tf.zeros([3, 4])).numpy()
    np.testing.assert_array_equal(result, np.zeros([2, 3]))


def _numpy_proposals(probs, deltas, anchors, count, threshold, limit):
    scores = probs[:, 1]
    order = np.argsort(-scores, kind="stable")[:limit]
    refined = np_boxes.apply_box_deltas(anchors[order], deltas[order] * STD)
    refined = np.clip(refined, 0, 1)
    keep = np_boxes.non_max_suppression(refined, scores[order], threshold)[:count]
    out = np.zeros([count, 4], np.float32)
    out[:len(keep)] = refined[keep]
    return out


def test_proposal_layer_matches_numpy_reference():
    rng = np.random.default_rng(1)
    batch, anchors_count = 2, 60
    # Anchors around 6 points, so that NMS has overlaps to remove.
    centres = rng.uniform(0.2, 0.8, (6, 2))[rng.integers(0, 6, anchors_count)]
    sizes = rng.uniform(0.2, 0.3, (anchors_count, 2))
    anchors = np.concatenate([centres - sizes / 2, centres + sizes / 2], 1).astype(np.float32)
    logits = rng.normal(size=(batch, anchors_count, 2))
    probs = (np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)).astype(np.float32)
    deltas = rng.normal(0, 0.2, (batch, anchors_count, 4)).astype(np.float32)
    layer = ProposalLayer(proposal_count=38, nms_threshold=0.5, pre_nms_limit=40,
                          rpn_bbox_std_dev=STD)
    result = layer([probs, deltas, np.broadcast_to(anchors, (batch,) + anchors.shape)]).numpy()
    assert result.shape == (batch, 38, 4)
    for b in range(batch):
        expected = _numpy_proposals(probs[b], deltas[b], anchors, 38, 0.5, 40)
        np.testing.assert_allclose(result[b], expected, atol=1e-5)
    # NMS leaves fewer than 38 of the 40 boxes: the rest is zero padding.
    assert np.all(result[:, -1] == 0)


def test_roi_levels_by_hand():
    # A 1024 x 1024 image: a 224-pixel ROI goes to P4, 112 to P3, 448 to P5,
    # tiny ones to P2 and padding (zero area) to P2.
    side = np.array([224, 112, 448, 10, 2000, 0]) / 1024
    rois = np.stack([np.zeros(6), np.zeros(6), side, side], 1).astype(np.float32)
    levels = roi_levels(tf.constant(rois), tf.constant(1024.0 * 1024.0)).numpy()
    np.testing.assert_array_equal(levels, [4, 3, 5, 2, 5, 2])


def test_pyramid_roi_align_takes_each_roi_from_its_level():
    # Every level is filled with its own level number: the pooled value tells
    # which level a ROI was cropped from.
    image_size = 256
    maps = [np.full([2, image_size // s, image_size // s, 3], level, np.float32)
            for level, s in zip(range(2, 6), (4, 8, 16, 32))]
    meta = _metas((image_size, image_size, 3), [(0, 0, image_size, image_size)] * 2, 4)
    # level = 4 + round(log2(side / (224 / 256))): 30 -> 2, 150 -> 3, 60 -> 2, 220 -> 4.
    sides = np.array([[30, 150], [60, 220]]) / image_size
    rois = np.zeros([2, 2, 4], np.float32)
    rois[:, :, 2] = rois[:, :, 3] = sides
    pooled = PyramidROIAlign((7, 7))([rois, meta] + maps).numpy()
    assert pooled.shape == (2, 2, 7, 7, 3)
    np.testing.assert_array_equal(pooled[:, :, 3, 3, 0], [[2, 3], [2, 4]])


def _numpy_detections(rois, probs, deltas, window, max_instances, min_confidence, nms):
    class_ids = probs.argmax(1)
    scores = probs[np.arange(len(probs)), class_ids]
    refined = np_boxes.apply_box_deltas(rois, deltas[np.arange(len(probs)), class_ids] * STD)
    refined = np.stack([np.clip(refined[:, 0], window[0], window[2]),
                        np.clip(refined[:, 1], window[1], window[3]),
                        np.clip(refined[:, 2], window[0], window[2]),
                        np.clip(refined[:, 3], window[1], window[3])], 1)
    candidates = np.where((class_ids > 0) & (scores >= min_confidence))[0]
    keep = []
    for class_id in np.unique(class_ids[candidates]):
        members = candidates[class_ids[candidates] == class_id]
        kept = np_boxes.non_max_suppression(refined[members], scores[members], nms)
        keep.extend(members[kept[:max_instances]])
    keep = sorted(keep, key=lambda i: (-scores[i], i))[:max_instances]
    out = np.zeros([max_instances, 6], np.float32)
    out[:len(keep)] = np.concatenate([refined[keep], class_ids[keep, None], scores[keep, None]], 1)
    return out


def test_detection_layer_matches_numpy_reference():
    rng = np.random.default_rng(2)
    count, classes = 40, 4
    centres = rng.uniform(0.2, 0.8, (2, count, 2))
    rois = np.concatenate([centres - 0.1, centres + 0.1], -1).astype(np.float32)
    logits = rng.normal(0, 2, (2, count, classes))
    probs = (np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)).astype(np.float32)
    deltas = rng.normal(0, 1, (2, count, classes, 4)).astype(np.float32)
    meta = _metas((101, 101, 3), [(10, 0, 91, 101), (0, 0, 101, 101)], classes)
    layer = DetectionLayer(max_instances=8, min_confidence=0.3, nms_threshold=0.3,
                           bbox_std_dev=STD)
    result = layer([rois, probs, deltas, meta]).numpy()
    windows = np.array([[0.1, 0, 0.9, 1], [0, 0, 1, 1]])
    for b in range(2):
        expected = _numpy_detections(rois[b], probs[b], deltas[b], windows[b], 8, 0.3, 0.3)
        np.testing.assert_allclose(result[b], expected, atol=1e-5)
        real = result[b][result[b][:, 4] > 0]
        assert np.all(np.diff(real[:, 5]) <= 0), "detections are ordered by score"


def test_detection_layer_with_only_background_gives_padding():
    probs = np.zeros([1, 5, 3], np.float32)
    probs[..., 0] = 1.0
    meta = _metas((64, 64, 3), [(0, 0, 64, 64)], 3)
    layer = DetectionLayer(max_instances=4, min_confidence=0.0, nms_threshold=0.3)
    result = layer([np.full([1, 5, 4], 0.5, np.float32), probs,
                    np.zeros([1, 5, 3, 4], np.float32), meta]).numpy()
    np.testing.assert_array_equal(result, np.zeros([1, 4, 6]))


def test_detection_boxes_trim_and_pad_back():
    detections = np.zeros([2, 5, 6], np.float32)
    detections[0, :2] = [[0, 0, .5, .5, 1, .9], [0, 0, .2, .2, 2, .8]]
    detections[1, :3] = [[0, 0, .5, .5, 1, .9], [0, 0, .2, .2, 2, .8], [.1, .1, .3, .3, 1, .7]]
    trimmed = DetectionBoxes()(detections).numpy()
    np.testing.assert_array_equal(trimmed, detections[:, :3, :4])
    padded = PadRows(5)(tf.ones([2, 3, 7])).numpy()
    assert padded.shape == (2, 5, 7)
    assert padded[:, :3].min() == 1 and padded[:, 3:].max() == 0


@pytest.mark.parametrize("layer", [
    ProposalLayer(10, 0.7, 100, STD),
    DetectionLayer(5, 0.7, 0.3, STD),
    PyramidROIAlign((7, 7)),
    PadRows(9),
    ImageROICrop((7, 7)),
])
def test_layers_round_trip_their_config(layer):
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


def test_conv2d_covering_its_input_equals_keras_conv2d():
    import keras

    from mrcnn.graph.layers import Conv2D
    reference = keras.layers.Conv2D(8, 7, padding="valid", activation="relu")
    fast = Conv2D(8, 7, padding="valid", activation="relu")
    covering = tf.random.normal([5, 7, 7, 3])
    larger = tf.random.normal([2, 9, 9, 3])
    reference(covering), fast(covering)
    fast.set_weights(reference.get_weights())
    for x in (covering, larger):  # the matmul path, then the ordinary one
        np.testing.assert_allclose(fast(x).numpy(), reference(x).numpy(), rtol=1e-5, atol=1e-5)
    assert [w.shape for w in fast.weights] == [(7, 7, 3, 8), (8,)]
