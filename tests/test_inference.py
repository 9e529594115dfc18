"""Inference over collections: reading image files, naming outputs."""
import numpy as np
import pytest
import tifffile

from mrcnn import inference


def test_collect_images(tmp_path):
    for name in ("b.png", "a.JPG", "c.tiff", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    extra = tmp_path / "notes.txt"
    assert inference.collect_images([str(tmp_path), str(extra)]) == [
        str(tmp_path / n) for n in ("a.JPG", "b.png", "c.tiff", "notes.txt")]
    with pytest.raises(FileNotFoundError, match="no such image file or folder"):
        inference.collect_images([str(tmp_path / "nope")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        inference.collect_images([str(tmp_path / "empty")])


@pytest.mark.parametrize("shape, dtype, note", [
    ((20, 30), np.uint8, False),
    ((20, 30, 3), np.uint8, False),
    ((20, 30, 4), np.uint8, False),
    ((20, 30), np.uint16, True),
    ((20, 30, 3), np.uint16, True),
])
def test_read_image_gives_8_bit_rgb(tmp_path, shape, dtype, note):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)
    path = str(tmp_path / "image.tif")  # PNG has no 16-bit RGB in Pillow
    tifffile.imwrite(path, pixels, photometric="rgb" if len(shape) == 3 else "minisblack")
    image, message = inference.read_image(path)
    assert image.shape == (20, 30, 3) and image.dtype == np.uint8
    expected = pixels if dtype == np.uint8 else np.round(pixels / 257).astype(np.uint8)
    expected = np.atleast_3d(expected)
    np.testing.assert_array_equal(image, np.broadcast_to(expected, (20, 30, 3))
                                  if expected.shape[2] == 1 else expected[:, :, :3])
    assert (message is not None) == note and (not note or "16-bit" in message)


@pytest.mark.parametrize("pixels, message", [
    (np.zeros((8, 8, 2), np.uint8), "2 channels"),
    (np.zeros((8, 8, 5), np.uint8), "5 channels"),
    (np.full((8, 8, 3), 300, np.float32), r"float32 values span 300.0\.\.300.0"),
])
def test_read_image_refuses_what_the_model_cannot_take(tmp_path, pixels, message):
    path = str(tmp_path / "odd.tif")
    tifffile.imwrite(path, pixels, photometric="minisblack" if pixels.shape[2] != 3 else "rgb")
    with pytest.raises(ValueError, match=message) as info:
        inference.read_image(path)
    assert path in str(info.value)


def test_read_image_names_an_unreadable_file(tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(b"not a png")
    with pytest.raises(OSError, match="broken.png"):
        inference.read_image(str(path))


def test_output_names_do_not_collide():
    used = set()
    names = [inference._output_name(p, used) for p in ("x/a.jpg", "y/a.png", "a.tif", "b.png")]
    assert names == ["a.png", "a-1.png", "a-2.png", "b.png"]
