"""The synthetic shapes sample: determinism, masks, colours, occlusion."""
import numpy as np
import pytest

from mrcnn.datasets.shapes import ShapesConfig, ShapesDataset, shape_mask

SIZE = 128
COUNT = 12


def make_dataset(seed, count=COUNT):
    dataset = ShapesDataset()
    dataset.load_shapes(count, SIZE, SIZE, seed=seed)
    dataset.prepare()
    return dataset


@pytest.fixture(scope="module")
def dataset():
    return make_dataset(seed=1)


def test_config():
    config = ShapesConfig()
    assert config.NAME == "shapes"
    assert config.NUM_CLASSES == 4
    assert config.BATCH_SIZE == 8
    np.testing.assert_array_equal(config.IMAGE_SHAPE, [128, 128, 3])
    assert config.RPN_ANCHOR_SCALES == (8, 16, 32, 64, 128)
    assert (config.TRAIN_ROIS_PER_IMAGE, config.STEPS_PER_EPOCH,
            config.VALIDATION_STEPS) == (32, 100, 5)


def test_classes(dataset):
    assert dataset.class_names == ["BG", "square", "circle", "triangle"]
    assert dataset.num_images == COUNT
    assert dataset.source_class_ids["shapes"] == [0, 1, 2, 3]


def test_same_seed_same_data(dataset):
    again = make_dataset(seed=1)
    for image_id in dataset.image_ids:
        assert again.image_reference(image_id) == dataset.image_reference(image_id)
        np.testing.assert_array_equal(again.load_image(image_id), dataset.load_image(image_id))
        masks, class_ids = dataset.load_mask(image_id)
        masks_again, class_ids_again = again.load_mask(image_id)
        np.testing.assert_array_equal(masks_again, masks)
        np.testing.assert_array_equal(class_ids_again, class_ids)


def test_different_seed_differs(dataset):
    other = make_dataset(seed=2)
    assert any(not np.array_equal(other.load_image(i), dataset.load_image(i))
               for i in dataset.image_ids)
    assert ([other.image_reference(i) for i in other.image_ids]
            != [dataset.image_reference(i) for i in dataset.image_ids])


def test_specs_fit_the_image(dataset):
    for info in dataset.image_info:
        assert 1 <= len(info["shapes"]) <= 4
        for name, color, (y, x, s) in info["shapes"]:
            assert name in ("square", "circle", "triangle")
            assert all(0 <= c <= 255 for c in color)
            assert 20 <= y <= SIZE - 21 and 20 <= x <= SIZE - 21
            assert 20 <= s <= SIZE // 4


def test_image_and_mask_types(dataset):
    for image_id in dataset.image_ids:
        image = dataset.load_image(image_id)
        assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
        masks, class_ids = dataset.load_mask(image_id)
        assert masks.dtype == bool and class_ids.dtype == np.int32
        assert masks.ndim == 3 and masks.shape[:2] == (SIZE, SIZE)
        assert 1 <= masks.shape[-1] == len(class_ids) <= 4
        assert set(class_ids.tolist()) <= {1, 2, 3}
        assert masks.any(axis=(0, 1)).all()


def test_masks_have_their_shape_colour_and_do_not_overlap(dataset):
    for image_id, info in zip(dataset.image_ids, dataset.image_info):
        image = dataset.load_image(image_id)
        masks, class_ids = dataset.load_mask(image_id)
        assert masks.sum(axis=-1).max() <= 1
        visible = [(name, color) for name, color, dims in info["shapes"]
                   if (shape_mask(name, dims, SIZE, SIZE) & masks.any(-1)).any()]
        assert len(visible) == masks.shape[-1]
        for i, (name, color) in enumerate(visible):
            assert dataset.class_names[class_ids[i]] == name
            np.testing.assert_array_equal(image[masks[..., i]],
                                          np.broadcast_to(color, (masks[..., i].sum(), 3)))
        np.testing.assert_array_equal(image[~masks.any(-1)][:, None],
                                      np.broadcast_to(info["bg_color"],
                                                      ((~masks.any(-1)).sum(), 1, 3)))


def test_occlusion_hides_earlier_shapes():
    dataset = ShapesDataset()
    dataset.add_class("shapes", 1, "square")
    dataset.add_class("shapes", 2, "circle")
    dataset.add_class("shapes", 3, "triangle")
    shapes = [("square", (255, 0, 0), (40, 40, 20)),     # partly under the circle
              ("triangle", (0, 0, 255), (90, 90, 20)),   # fully under the big square
              ("circle", (0, 255, 0), (60, 60, 20)),
              ("square", (9, 9, 9), (90, 90, 32))]
    dataset.add_image("shapes", 0, None, height=SIZE, width=SIZE, bg_color=(1, 2, 3),
                      shapes=shapes)
    dataset.prepare()
    masks, class_ids = dataset.load_mask(0)
    np.testing.assert_array_equal(class_ids, [1, 2, 1])
    full_square = shape_mask("square", (40, 40, 20), SIZE, SIZE)
    circle = shape_mask("circle", (60, 60, 20), SIZE, SIZE)
    big_square = shape_mask("square", (90, 90, 32), SIZE, SIZE)
    np.testing.assert_array_equal(masks[..., 0], full_square & ~circle & ~big_square)
    np.testing.assert_array_equal(masks[..., 1], circle & ~big_square)
    np.testing.assert_array_equal(masks[..., 2], big_square)
    assert 0 < masks[..., 0].sum() < full_square.sum()
    assert masks.sum(axis=-1).max() == 1
    image = dataset.load_image(0)
    assert (image[masks[..., 0]] == (255, 0, 0)).all()
    assert not (image == (0, 0, 255)).all(-1).any()  # the hidden triangle left no pixel


def test_shape_geometry():
    square = shape_mask("square", (50, 60, 10), SIZE, SIZE)
    assert square.sum() == 21 * 21
    assert square[40, 50] and square[60, 70] and not square[39, 60]
    circle = shape_mask("circle", (50, 60, 10), SIZE, SIZE)
    assert circle[50, 60] and circle[50, 69] and not circle[50, 71]
    assert abs(circle.sum() - np.pi * 100) < 0.1 * np.pi * 100
    triangle = shape_mask("triangle", (50, 60, 10), SIZE, SIZE)
    assert triangle[41, 60] and triangle[59, 60] and not triangle[41, 55]
    assert triangle[59, 50] and triangle[59, 70] and not triangle[59, 48]
    with pytest.raises(ValueError, match="hexagon"):
        shape_mask("hexagon", (50, 60, 10), SIZE, SIZE)


def test_too_small_images_are_refused():
    with pytest.raises(ValueError, match="too small"):
        ShapesDataset().load_shapes(1, 64, 64, seed=0)
