"""Pyramid anchors: count, order and exact corners worked by hand; backbone shapes."""
from types import SimpleNamespace

import numpy as np

from mrcnn.anchors import compute_backbone_shapes, generate_anchors, generate_pyramid_anchors

SCALES = (8, 16, 32, 64, 128)
STRIDES = [4, 8, 16, 32, 64]
RATIOS = [0.5, 1, 2]
R2 = np.sqrt(2.0)


def small_config(**overrides):
    values = dict(BACKBONE="resnet50", BACKBONE_STRIDES=STRIDES, COMPUTE_BACKBONE_SHAPE=None)
    values.update(overrides)
    return SimpleNamespace(**values)


def pyramid_64():
    shapes = compute_backbone_shapes(small_config(), (64, 64, 3))
    return generate_pyramid_anchors(SCALES, RATIOS, shapes, STRIDES, 1)


def test_backbone_shapes_ceil_of_each_stride():
    np.testing.assert_array_equal(compute_backbone_shapes(small_config(), (64, 64, 3)),
                                  [[16, 16], [8, 8], [4, 4], [2, 2], [1, 1]])
    np.testing.assert_array_equal(compute_backbone_shapes(small_config(), (100, 60, 3)),
                                  [[25, 15], [13, 8], [7, 4], [4, 2], [2, 1]])


def test_backbone_shapes_of_callable_backbone():
    config = small_config(BACKBONE=lambda *a, **k: None,
                          COMPUTE_BACKBONE_SHAPE=lambda shape: [[shape[0] // 2, 7]])
    assert compute_backbone_shapes(config, (64, 32, 3)) == [[32, 7]]


def test_pyramid_anchor_count():
    assert pyramid_64().shape == (3 * (16 ** 2 + 8 ** 2 + 4 ** 2 + 2 ** 2 + 1 ** 2), 4)


def test_first_anchors_centred_on_cell_corner_ratio_order():
    anchors = pyramid_64()
    # Scale 8 at (0, 0): ratio 0.5 is tall (h = 8*sqrt2, w = 8/sqrt2), 1 square, 2 wide.
    np.testing.assert_allclose(anchors[:3], [[-4 * R2, -2 * R2, 4 * R2, 2 * R2],
                                             [-4, -4, 4, 4],
                                             [-2 * R2, -4 * R2, 2 * R2, 4 * R2]])
    # Next position along x (centre x = 1 * stride 4), same row.
    np.testing.assert_allclose(anchors[4], [-4, 0, 4, 8])
    # Second row starts after 16 positions: centre y = 4.
    np.testing.assert_allclose(anchors[16 * 3 + 1], [0, -4, 8, 4])
    # Last anchor of P2: position (15, 15), centre (60, 60), ratio 2.
    np.testing.assert_allclose(anchors[16 * 16 * 3 - 1],
                               [60 - 2 * R2, 60 - 4 * R2, 60 + 2 * R2, 60 + 4 * R2])


def test_levels_concatenated_in_order():
    anchors = pyramid_64()
    # P3 (scale 16, stride 8) starts right after the 768 anchors of P2.
    np.testing.assert_allclose(anchors[768 + 1], [-8, -8, 8, 8])
    np.testing.assert_allclose(anchors[768 + 3 + 1], [-8, 0, 8, 16])
    # P6: a single position at (0, 0), scale 128, ratio 2 last.
    np.testing.assert_allclose(anchors[-1], [-32 * R2, -64 * R2, 32 * R2, 64 * R2])


def test_anchor_stride_skips_cells():
    anchors = generate_anchors(16, [1], (4, 4), 8, 2)
    centers_y = (anchors[:, 0] + anchors[:, 2]) / 2
    centers_x = (anchors[:, 1] + anchors[:, 3]) / 2
    np.testing.assert_array_equal(centers_y, [0, 0, 16, 16])
    np.testing.assert_array_equal(centers_x, [0, 16, 0, 16])


def test_several_scales_per_level_are_scale_minor():
    anchors = generate_anchors([8, 16], [1, 4], (1, 1), 4, 1)
    # meshgrid(scales, ratios): ratio-major, scale-minor.
    np.testing.assert_allclose(anchors, [[-4, -4, 4, 4], [-8, -8, 8, 8],
                                         [-2, -8, 2, 8], [-4, -16, 4, 16]])


def test_default_config_1024_anchor_count():
    shapes = compute_backbone_shapes(small_config(), (1024, 1024, 3))
    anchors = generate_pyramid_anchors((32, 64, 128, 256, 512), RATIOS, shapes, STRIDES, 1)
    assert anchors.shape == (261888, 4)


def test_config_anchors_are_the_one_recipe_of_pipeline_graph_and_detect(tiny_config_class,
                                                                       shapes):
    from mrcnn.anchors import anchor_settings, config_anchors
    from mrcnn.boxes import norm_boxes
    from mrcnn.data import DataGenerator
    from mrcnn.graph.layers import PyramidAnchors

    config = tiny_config_class()
    expected = generate_pyramid_anchors(config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS,
                                        [[32, 32], [16, 16], [8, 8], [4, 4], [2, 2]],
                                        config.BACKBONE_STRIDES, config.RPN_ANCHOR_STRIDE)
    np.testing.assert_array_equal(config_anchors(config, (128, 128, 3)), expected)
    np.testing.assert_array_equal(DataGenerator(shapes, config).anchors, expected)
    layer = PyramidAnchors((128, 128), **anchor_settings(config, (128, 128, 3)))
    graph_anchors = layer(np.zeros((2, 128, 128, 3), np.float32)).numpy()
    assert graph_anchors.shape == (2, len(expected), 4)
    np.testing.assert_allclose(graph_anchors[1], norm_boxes(expected, (128, 128)), rtol=1e-6)
