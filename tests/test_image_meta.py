"""The image meta layout: one home, compose/parse round trips in numpy and tf, read by name."""
import pathlib
import re

import numpy as np
import pytest
import tensorflow as tf

import mrcnn
from mrcnn import images, utils
from mrcnn.config import Config
from mrcnn.graph.layers import ImageMetaField
from mrcnn.image_meta import (FIELDS, compose_image_meta, meta_size, parse_image_meta,
                              parse_image_meta_graph)

META = np.stack([
    compose_image_meta(7, (480, 640, 3), (1024, 1024, 3), (128, 0, 896, 1024), 1.6, [1, 1, 0]),
    compose_image_meta(2, (10, 20, 3), (64, 64, 3), (0, 1, 2, 3), 0.5, [1, 0, 1]),
])


def test_layout_by_hand():
    # 1 + 3 + 3 + 4 + 1 fixed values, then one per class.
    assert meta_size(3) == 15 and META.shape == (2, 15)
    np.testing.assert_array_equal(META[0], [7, 480, 640, 3, 1024, 1024, 3, 128, 0, 896, 1024,
                                            1.6, 1, 1, 0])
    assert [name for name, _ in FIELDS][-1] == "active_class_ids"

    class Three(Config):
        NAME = "three"
        NUM_CLASSES = 3
    assert Three().IMAGE_META_SIZE == meta_size(3)


def test_tf_parser_matches_numpy_parser():
    expected = parse_image_meta(META)
    parsed = parse_image_meta_graph(tf.constant(META, tf.float32))
    assert set(parsed) == set(expected) == {name for name, _ in FIELDS}
    for name, value in expected.items():
        assert parsed[name].dtype == tf.float32
        np.testing.assert_allclose(parsed[name].numpy(), value, rtol=1e-6, err_msg=name)


def test_meta_field_layer_reads_by_name():
    np.testing.assert_array_equal(ImageMetaField("window")(META).numpy(),
                                  [[128, 0, 896, 1024], [0, 1, 2, 3]])
    np.testing.assert_array_equal(ImageMetaField("active_class_ids")(META).numpy(),
                                  [[1, 1, 0], [1, 0, 1]])
    with pytest.raises(ValueError, match="unknown image meta field 'windows'"):
        ImageMetaField("windows")


def test_compose_rejects_a_wrong_field_size():
    with pytest.raises(ValueError, match="'window' takes 4 values, got 3"):
        compose_image_meta(0, (1, 1, 3), (1, 1, 3), (0, 0, 1), 1.0, [1, 0])


def test_classic_names_are_the_same_functions():
    assert images.compose_image_meta is utils.compose_image_meta is compose_image_meta
    assert images.parse_image_meta is utils.parse_image_meta is parse_image_meta


def test_no_meta_index_outside_its_module():
    # A slice such as meta[:, 12:], image_meta[0, 4] or meta[:12] would bypass the layout
    # (meta[0], the first image of a batch, is fine).
    pattern = re.compile(r"meta\w*\[(?:[^\]]*,\s*\d|\s*:\s*\d)")
    root = pathlib.Path(mrcnn.__file__).parent
    offenders = [f"{path.relative_to(root)}:{number}: {line.strip()}"
                 for path in root.rglob("*.py") if path.name != "image_meta.py"
                 for number, line in enumerate(path.read_text().splitlines(), 1)
                 if pattern.search(line)]
    assert not offenders
