"""The one image reader (mrcnn.image_io) and the paths that use it: files and arrays,
Dataset.load_image, load_image_gt's ground-truth checks, weight and annotation files."""
import json

import h5py
import numpy as np
import pytest
import tifffile

from mrcnn.data import DataGenerator, load_image_gt
from mrcnn.dataset import Dataset
from mrcnn.image_io import ImageReadError, read_image, to_model_image

from tests.conftest import TinyConfig

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (6, 7, 3), dtype=np.uint8)


def _write(tmp_path, pixels, name="image.tif"):
    path = str(tmp_path / name)
    photometric = "rgb" if pixels.ndim == 3 and pixels.shape[2] in (3, 4) else "minisblack"
    tifffile.imwrite(path, pixels, photometric=photometric)
    return path


# ------------------------------------------------------------ the policy, one case each

def test_uint16_is_scaled_by_257_rounded(tmp_path):
    pixels = np.array([[0, 128, 129], [385, 65535, 65406]], np.uint16)[:, :, None].repeat(3, 2)
    image = read_image(_write(tmp_path, pixels))
    assert image.dtype == np.uint8
    # 128/257 = 0.498 -> 0, 129/257 = 0.502 -> 1, 385/257 = 1.498 -> 1, 65406/257 = 254.498 -> 254.
    np.testing.assert_array_equal(image[:, :, 0], [[0, 0, 1], [1, 255, 254]])


def test_grayscale_is_repeated_to_rgb(tmp_path):
    gray = RGB[:, :, 0]
    image = read_image(_write(tmp_path, gray))
    assert image.shape == (6, 7, 3)
    for channel in range(3):
        np.testing.assert_array_equal(image[:, :, channel], gray)


def test_rgba_loses_its_alpha(tmp_path):
    rgba = np.concatenate([RGB, np.full((6, 7, 1), 7, np.uint8)], axis=2)
    np.testing.assert_array_equal(read_image(_write(tmp_path, rgba, "a.png")), RGB)


@pytest.mark.parametrize("channels", [2, 5])
def test_other_channel_counts_raise_naming_the_file(tmp_path, channels):
    path = _write(tmp_path, np.zeros((6, 7, channels), np.uint8))
    with pytest.raises(ValueError, match=f"{channels} channels") as info:
        read_image(path)
    assert path in str(info.value) and "IMAGE_CHANNEL_COUNT=3" in str(info.value)


def test_four_channels_kept_for_a_four_channel_model():
    image = RNG.integers(0, 256, (6, 7, 4), dtype=np.uint8)
    assert to_model_image(image, "x", channels=4) is image
    with pytest.raises(ValueError, match="x: 3 channels"):
        to_model_image(RGB, "x", channels=4)


@pytest.mark.parametrize("shape, size", [((0, 0, 3), "0x0"), ((1, 1, 3), "1x1"),
                                         ((5, 1, 3), "1x5")])
def test_empty_and_one_pixel_images_raise(shape, size):
    with pytest.raises(ValueError, match=f"image 4: the image is {size} pixels"):
        to_model_image(np.zeros(shape, np.uint8), "image 4")


def test_float_in_0_255_taken_as_is(tmp_path):
    pixels = RNG.uniform(0, 255, (6, 7, 3)).astype(np.float32)
    np.testing.assert_array_equal(read_image(_write(tmp_path, pixels)), pixels)
    assert to_model_image(pixels.astype(np.float64), "x").dtype == np.float32


@pytest.mark.parametrize("value, message", [(np.nan, "1 pixel values are NaN"),
                                            (np.inf, "NaN or infinite"),
                                            (-1.0, r"span -1.0\.\.")])
def test_non_finite_or_out_of_range_floats_raise(value, message):
    pixels = np.zeros((6, 7, 3), np.float32)
    pixels[2, 3, 1] = value
    with pytest.raises(ValueError, match=message):
        to_model_image(pixels, "image 2")


def test_integers_in_range_become_uint8_others_raise():
    np.testing.assert_array_equal(to_model_image(RGB.astype(np.int64), "x"), RGB)
    with pytest.raises(ValueError, match="int32 values span 0..1000"):
        to_model_image(np.array([[0, 1000], [0, 0]], np.int32), "x")


def test_corrupt_file_raises_an_io_error_naming_it(tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(RNG.integers(0, 256, 64, dtype=np.uint8)))
    with pytest.raises(ImageReadError, match="cannot read image file .*broken.png"):
        read_image(path)


def test_missing_file_raises_an_io_error_naming_it(tmp_path):
    with pytest.raises(ImageReadError, match="nothere.jpg does not exist"):
        read_image(tmp_path / "nothere.jpg")


# ------------------------------------------------------------ the same policy everywhere

class FileDataset(Dataset):
    """Image files with one square instance of class `class_id` each."""

    def __init__(self, paths, class_id=1, mask_shape=None, class_ids=None):
        super().__init__()
        for i in range(1, 4):
            self.add_class("files", i, f"c{i}")
        for i, path in enumerate(paths):
            self.add_image("files", i, path)
        self.class_id, self.mask_shape, self.instance_ids = class_id, mask_shape, class_ids
        self.prepare()

    def load_mask(self, image_id):
        shape = self.mask_shape or self.load_image(image_id).shape[:2] + (1,)
        masks = np.zeros(shape, bool)
        masks[2:20, 2:20] = True
        ids = self.instance_ids if self.instance_ids is not None else [self.class_id]
        return masks, np.array(ids, np.int32)


@pytest.fixture(scope="module")
def uint16_file(tmp_path_factory):
    pixels = (RNG.integers(0, 256, (40, 40, 3)) * 257).astype(np.uint16)
    return _write(tmp_path_factory.mktemp("u16"), pixels), pixels


def test_training_and_detection_see_the_same_uint16_pixels(uint16_file):
    path, pixels = uint16_file
    dataset = FileDataset([path])
    from_dataset = dataset.load_image(0)
    assert from_dataset.dtype == np.uint8
    np.testing.assert_array_equal(from_dataset, pixels // 257)
    # detect() converts arrays with to_model_image, by list index.
    np.testing.assert_array_equal(to_model_image(pixels, "image 0 of the list"), from_dataset)
    image, *_ = load_image_gt(dataset, TinyConfig(), 0)
    assert image.dtype == np.uint8 and image.max() <= 255


def test_load_image_gt_converts_a_users_own_load_image(uint16_file):
    _, pixels = uint16_file

    class Raw(FileDataset):
        def load_image(self, image_id):
            return pixels[:, :, 0]  # uint16 gray straight from a microscope

    image, *_ = load_image_gt(Raw([None]), TinyConfig(), 0, use_mini_mask=False)
    assert image.shape == (128, 128, 3) and image.dtype == np.uint8


def test_class_id_out_of_range_names_the_image_and_id(uint16_file):
    dataset = FileDataset([uint16_file[0]], class_id=4)  # TinyConfig: NUM_CLASSES 4
    with pytest.raises(ValueError, match=r"image 0 \(.*image.tif\): class id 4 is outside "
                                         r"1..3 \(NUM_CLASSES=4"):
        load_image_gt(dataset, TinyConfig(), 0)
    with pytest.raises(ValueError, match="class id 0 is outside"):
        load_image_gt(FileDataset([uint16_file[0]], class_id=0), TinyConfig(), 0)
    # A crowd carries the negative of a valid id.
    *_, class_ids, _, _ = load_image_gt(FileDataset([uint16_file[0]], class_id=-2),
                                        TinyConfig(), 0)
    assert class_ids.tolist() == [-2]


def test_masks_must_match_the_image_and_the_class_ids(uint16_file):
    path = uint16_file[0]
    with pytest.raises(ValueError, match=r"masks of shape \(30, 40, 1\) for an image of "
                                         r"shape \(40, 40, 3\)"):
        load_image_gt(FileDataset([path], mask_shape=(30, 40, 1)), TinyConfig(), 0)
    with pytest.raises(ValueError, match="1 masks but class ids of shape \\(2,\\)"):
        load_image_gt(FileDataset([path], class_ids=[1, 2]), TinyConfig(), 0)


def test_generator_skips_unreadable_files_and_counts_them(tmp_path, uint16_file, caplog):
    good = uint16_file[0]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    dataset = FileDataset([good, str(broken), good, str(tmp_path / "missing.png")])
    generator = DataGenerator(dataset, TinyConfig(), shuffle=False, seed=0, steps_per_epoch=2)
    with caplog.at_level("WARNING", logger="mrcnn.data"):
        ids = [generator[i][0][1][:, 0].tolist() for i in range(2)]
        generator.on_epoch_end()
    assert ids == [[0, 2], [2, 0]]  # batch 1 starts at image 2, skips 3, wraps to 0
    assert "Skipping image 1 (" + str(broken) in caplog.text
    assert "Skipping image 3 (" in caplog.text and "missing.png" in caplog.text
    assert "Epoch 1: 2 images skipped" in caplog.text and "[1, 3]" in caplog.text
    assert generator.skipped == []


def test_generator_lets_errors_in_user_code_propagate(uint16_file):
    class Buggy(FileDataset):
        def load_mask(self, image_id):
            raise OSError("my own bug in load_mask")

    generator = DataGenerator(Buggy([uint16_file[0]] * 2), TinyConfig(), shuffle=False)
    with pytest.raises(OSError, match="my own bug") as info:
        generator[0]
    assert not isinstance(info.value, ImageReadError)
    out_of_range = DataGenerator(FileDataset([uint16_file[0]] * 2, class_id=7), TinyConfig())
    with pytest.raises(ValueError, match="class id 7"):
        out_of_range[0]


# ------------------------------------------------------------ files that lie

@pytest.mark.parametrize("content", [bytes(RNG.integers(0, 256, 4096, dtype=np.uint8)),
                                     b"\x89HDF\r\n\x1a\n" + b"\0" * 100])
def test_weight_file_of_random_bytes_is_named_and_changes_nothing(tmp_path, content):
    import keras

    from mrcnn.weights import WeightFileError, load_weights, num_classes_in_file

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="dense")])
    before = [w.numpy() for w in model.weights]
    path = tmp_path / "mask_rcnn_coco.h5"
    path.write_bytes(content)
    with pytest.raises(WeightFileError, match="mask_rcnn_coco.h5 is not a readable HDF5"):
        load_weights(model, str(path))
    with pytest.raises(WeightFileError, match="mask_rcnn_coco.h5"):
        num_classes_in_file(str(path))
    for old, new in zip(before, model.weights):
        np.testing.assert_array_equal(old, new.numpy())


def test_truncated_weight_file_is_named_and_changes_nothing(tmp_path):
    import keras

    from mrcnn.weights import WeightFileError, load_weights, save_weights

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(300, name="a"),
                              keras.layers.Dense(300, name="b")])
    path = str(tmp_path / "w.h5")
    save_weights(model, path)
    with h5py.File(path, "r") as handle:
        offset = handle["b"]["b/kernel:0"].id.get_offset()
    with open(path, "r+b") as f:  # cut the file inside the last layer's kernel
        f.truncate(offset + 1000)
    for w in model.weights:
        w.assign(np.zeros(w.shape))
    with pytest.raises(WeightFileError, match="w.h5 is not a readable HDF5 .*truncated"):
        load_weights(model, path)
    assert all(not np.any(w.numpy()) for w in model.weights)


@pytest.mark.parametrize("content", [b"\xff\xfe\x00garbage", b'{"images": [', b"not json"])
def test_annotation_file_that_is_not_json_is_named(tmp_path, content):
    from mrcnn.coco import CocoDataset

    path = tmp_path / "instances_train.json"
    path.write_bytes(content)
    dataset = CocoDataset()
    with pytest.raises(ValueError, match="instances_train.json is not a COCO annotations "
                                         "file: it is not valid UTF-8 JSON"):
        dataset.load_coco(str(path))
    assert dataset.image_info == [] and len(dataset.class_info) == 1
    path.write_text(json.dumps([1, 2]))
    with pytest.raises(ValueError, match="instances_train.json is not a COCO instances"):
        dataset.load_coco(str(path))
