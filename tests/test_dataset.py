"""Dataset base class: registry, prepare() maps, lookups, errors, load_image."""
import numpy as np
import pytest
import skimage.io

from mrcnn import Dataset


@pytest.fixture
def dataset():
    """Two sources, a duplicate class, comma names, three images; prepared."""
    ds = Dataset()
    ds.add_class("coco", 1, "person, human")
    ds.add_class("coco", 12, "stop sign")
    ds.add_class("coco", 1, "person again")  # duplicate: ignored
    ds.add_class("shapes", 1, "square")
    ds.add_image("coco", image_id=139, path="/data/139.jpg", width=640, height=480)
    ds.add_image("shapes", image_id=0, path=None, shapes=[("square", (1, 2, 3), (5, 5, 5))])
    ds.add_image("coco", image_id=285, path="/data/285.jpg")
    ds.prepare()
    return ds


def test_background_class_first():
    ds = Dataset()
    assert ds.class_info == [{"source": "", "id": 0, "name": "BG"}]
    assert ds.image_info == []


def test_prepare_builds_the_classic_attributes(dataset):
    assert dataset.num_classes == 4
    np.testing.assert_array_equal(dataset.class_ids, [0, 1, 2, 3])
    assert dataset.class_names == ["BG", "person", "stop sign", "square"]
    assert dataset.num_images == 3
    np.testing.assert_array_equal(dataset.image_ids, [0, 1, 2])
    np.testing.assert_array_equal(dataset._image_ids, [0, 1, 2])
    assert dataset.class_from_source_map == {".0": 0, "coco.1": 1, "coco.12": 2,
                                             "shapes.1": 3}
    assert dataset.image_from_source_map == {"coco.139": 0, "shapes.0": 1, "coco.285": 2}
    assert dataset.sources == ["", "coco", "shapes"]
    assert dataset.source_class_ids == {"": [0], "coco": [0, 1, 2], "shapes": [0, 3]}


def test_class_names_keep_text_before_first_comma():
    ds = Dataset()
    ds.add_class("a", 1, "one,two,three")
    ds.add_class("a", 2, "plain")
    ds.add_class("a", 3, "trailing,")
    ds.prepare()
    assert ds.class_names == ["BG", "one", "plain", "trailing"]


def test_add_image_keeps_extra_keys(dataset):
    assert dataset.image_info[0] == {"id": 139, "source": "coco", "path": "/data/139.jpg",
                                     "width": 640, "height": 480}
    assert dataset.image_info[1]["shapes"] == [("square", (1, 2, 3), (5, 5, 5))]


def test_source_with_a_dot_is_rejected():
    ds = Dataset()
    with pytest.raises(ValueError, match="dot"):
        ds.add_class("my.source", 1, "thing")
    with pytest.raises(ValueError, match="dot"):
        ds.add_image("my.source", 1, "x.png")


def test_map_source_class_id(dataset):
    assert dataset.map_source_class_id("coco.12") == 2
    assert dataset.map_source_class_id("shapes.1") == 3
    with pytest.raises(KeyError, match="coco.99"):
        dataset.map_source_class_id("coco.99")


def test_get_source_class_id(dataset):
    assert dataset.get_source_class_id(2, "coco") == 12
    assert dataset.get_source_class_id(3, "shapes") == 1
    assert dataset.get_source_class_id(0, "coco") == 0
    with pytest.raises(ValueError, match="'shapes', not 'coco'"):
        dataset.get_source_class_id(3, "coco")
    with pytest.raises(IndexError, match=r"class id 4 .*0\.\.3"):
        dataset.get_source_class_id(4, "coco")


def test_source_image_link_and_reference(dataset):
    assert dataset.source_image_link(2) == "/data/285.jpg"
    assert dataset.image_reference(0) == ""


def test_unknown_image_id_names_the_range(dataset):
    for bad in (3, -1, 100):
        with pytest.raises(IndexError, match=rf"image id {bad} .*0\.\.2"):
            dataset.source_image_link(bad)
    with pytest.raises(IndexError, match="image id 7"):
        dataset.load_image(7)
    with pytest.raises(TypeError, match="integer"):
        dataset.image_reference("coco.139")
    assert dataset.source_image_link(np.int64(0)) == "/data/139.jpg"


@pytest.mark.parametrize("name", ["class_names", "num_classes", "class_ids", "num_images",
                                  "image_ids", "sources", "source_class_ids",
                                  "class_from_source_map", "image_from_source_map"])
def test_prepared_attributes_need_prepare(name):
    ds = Dataset()
    ds.add_class("a", 1, "thing")
    with pytest.raises(RuntimeError, match=r"dataset\.prepare\(\)"):
        getattr(ds, name)


def test_lookups_need_prepare():
    ds = Dataset()
    ds.add_class("a", 1, "thing")
    with pytest.raises(RuntimeError, match=r"prepare\(\)"):
        ds.map_source_class_id("a.1")
    with pytest.raises(RuntimeError, match=r"prepare\(\)"):
        ds.get_source_class_id(1, "a")


def test_adding_after_prepare_asks_to_prepare_again(dataset):
    dataset.add_image("coco", image_id=1, path="/data/1.jpg")
    with pytest.raises(RuntimeError, match="prepare"):
        dataset.num_images
    dataset.prepare()
    assert dataset.num_images == 4
    dataset.add_class("coco", 12, "stop sign")  # duplicate: changes nothing
    assert dataset.num_classes == 4


def test_load_mask_must_be_overridden(dataset):
    with pytest.raises(NotImplementedError, match=r"(?s)Dataset\.load_mask.*override.*bool"):
        dataset.load_mask(0)


def test_append_data_merges_and_maps():
    other = Dataset()
    other.add_class("balloon", 1, "balloon")
    other.add_image("balloon", "b7", "/b/7.jpg", polygons=[1, 2])
    ds = Dataset()
    ds.add_class("coco", 1, "person")
    ds.add_image("coco", 5, "/c/5.jpg")
    ds.append_data(other.class_info, other.image_info)
    ds.prepare()
    assert ds.class_names == ["BG", "person", "balloon"]
    assert ds.external_to_class_id == {"balloon.1": 2}
    assert ds.external_to_image_id == {"balloon.b7": 1}
    assert ds.image_info[1] == {"id": "b7", "source": "balloon", "path": "/b/7.jpg",
                                "polygons": [1, 2]}


def _opaque_rgba(height, width):
    rgba = np.random.default_rng(0).integers(0, 256, size=(height, width, 4), dtype=np.uint8)
    rgba[..., 3] = 255  # opaque, so no writer premultiplies the colours
    return rgba


# (file name, stored pixels, the RGB image load_image must give), worked by hand.
GRAY = np.arange(12 * 7, dtype=np.uint8).reshape(12, 7)
RGBA = _opaque_rgba(9, 11)
STORED_IMAGES = {
    "gray.png": (GRAY, np.stack([GRAY] * 3, axis=-1)),
    "rgba.png": (RGBA, RGBA[..., :3]),
    "rgb.png": (RGBA[..., :3], RGBA[..., :3]),
}


@pytest.mark.parametrize("name", sorted(STORED_IMAGES))
def test_load_image_gives_rgb_uint8(tmp_path, name):
    stored, expected = STORED_IMAGES[name]
    path = tmp_path / name
    skimage.io.imsave(path, stored, check_contrast=False)
    ds = Dataset()
    ds.add_image("files", 0, str(path))
    image = ds.load_image(0)
    assert image.dtype == np.uint8 and image.shape == stored.shape[:2] + (3,)
    np.testing.assert_array_equal(image, expected)


def test_load_image_without_path_is_a_clear_error(dataset):
    with pytest.raises(ValueError, match="no path"):
        dataset.load_image(1)
