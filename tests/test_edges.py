"""Edges of the numerics and of train(): clamped box deltas, NaN proposals, checks before
the first step, a NaN loss, checkpoints that are never garbage, "crop" at inference."""
import math
import os

import numpy as np
import pytest
import tensorflow as tf

from mrcnn import boxes as np_boxes
from mrcnn.graph import box_ops
from mrcnn.graph.proposals import ProposalLayer
from mrcnn.graph.roi_align import PyramidROIAlign

from tests.conftest import TinyConfig

# ------------------------------------------------------------------ box deltas


def test_max_log_scale_is_detectrons():
    assert np_boxes.MAX_LOG_SCALE == pytest.approx(math.log(62.5))


@pytest.mark.parametrize("apply", [np_boxes.apply_box_deltas,
                                   lambda b, d: box_ops.apply_box_deltas(
                                       tf.constant(b), tf.constant(d)).numpy()],
                         ids=["numpy", "tf"])
def test_huge_log_sizes_are_clamped_before_exp(apply):
    boxes = np.array([[0, 0, 16, 16], [10, 10, 20, 30]], np.float32)
    # 1500 overflows exp in float32; 2 is below the clamp and moves as before.
    deltas = np.array([[0, 0, 1500, 1500], [0, 0, 2, -1]], np.float32)
    out = apply(boxes, deltas)
    assert np.isfinite(out).all()
    # Clamped: a 16-pixel box grows to 1000 pixels, centred where it was.
    np.testing.assert_allclose(out[0], [8 - 500, 8 - 500, 8 + 500, 8 + 500], rtol=1e-5)
    h, w = 10 * math.exp(2), 20 * math.exp(-1)
    np.testing.assert_allclose(out[1], [15 - h / 2, 20 - w / 2, 15 + h / 2, 20 + w / 2],
                               rtol=1e-5)


def test_proposals_stay_finite_for_wild_rpn_deltas():
    anchors = np.array([[[0.1, 0.1, 0.2, 0.2], [0.5, 0.5, 0.6, 0.7], [0.3, 0.3, 0.4, 0.4]]],
                       np.float32)
    probs = np.array([[[0.1, 0.9], [0.2, 0.8], [0.7, 0.3]]], np.float32)
    deltas = np.full([1, 3, 4], 1500.0, np.float32)  # what a uint16 image used to produce
    proposals = ProposalLayer(3, 0.7, 3)([probs, deltas, anchors]).numpy()
    assert np.isfinite(proposals).all()


# ------------------------------------------------------------------ ROI align


@pytest.fixture(scope="module")
def pyramid():
    rng = np.random.default_rng(0)
    maps = [rng.normal(size=[2, 256 // s, 256 // s, 3]).astype(np.float32)
            for s in (4, 8, 16, 32)]
    meta = np.zeros([2, 16], np.float32)
    meta[:, 4:7] = [256, 256, 3]
    rois = np.tile(np.array([[0.1, 0.1, 0.3, 0.4], [0.2, 0.0, 0.9, 0.8], [0.5, 0.5, 0.6, 0.6],
                             [0.0, 0.0, 1.0, 1.0], [0.3, 0.2, 0.5, 0.9]], np.float32), [2, 1, 1])
    return maps, meta, rois


@pytest.mark.parametrize("bad_row", [2, 4], ids=["middle", "end"])
@pytest.mark.parametrize("bad_box", [[np.nan] * 4, [0.1, np.inf, 0.2, 0.3],
                                     [0.5, 0.5, 0.4, 0.6]], ids=["nan", "inf", "degenerate"])
def test_invalid_roi_pools_like_the_zero_box_and_leaves_the_others(pyramid, bad_row, bad_box):
    maps, meta, rois = pyramid
    layer = PyramidROIAlign((7, 7))
    clean = layer([rois, meta] + maps).numpy()
    bad = rois.copy()
    bad[1, bad_row] = bad_box
    zeroed = rois.copy()
    zeroed[1, bad_row] = 0
    pooled = layer([bad, meta] + maps).numpy()
    assert pooled.shape == (2, 5, 7, 7, 3) and np.isfinite(pooled).all()
    np.testing.assert_array_equal(pooled, layer([zeroed, meta] + maps).numpy())
    others = [i for i in range(5) if i != bad_row]
    np.testing.assert_array_equal(pooled[1, others], clean[1, others])
    np.testing.assert_array_equal(pooled[0], clean[0])
