"""Image/mask resizing, mini-masks, molding and image meta; expectations worked by hand."""
import random
from types import SimpleNamespace

import numpy as np
import pytest

from mrcnn.boxes import extract_bboxes
from mrcnn.images import (compose_image_meta, expand_mask, minimize_mask, mold_image,
                          parse_image_meta, resize, resize_image, resize_mask, to_rgb,
                          unmold_image, unmold_mask)


def ramp_image(h, w, channels=3, dtype=np.uint8):
    """An image whose pixels differ, so that crops and pads can be located."""
    image = (np.arange(h * w * channels) % 251).reshape(h, w, channels)
    return image.astype(dtype)


def test_resize_accepts_bool_masks_bilinearly():
    mask = np.zeros((4, 4), dtype=bool)
    mask[:, :2] = True
    out = resize(mask, (2, 2))
    assert out.dtype.kind == "f"
    np.testing.assert_allclose(out, [[1, 0], [1, 0]])
    # Upscaling blends: the column straddling the edge gets an intermediate value.
    assert 0 < resize(mask, (4, 8))[0, 3] < 1


def test_resize_image_none_is_identity():
    image = ramp_image(30, 40)
    out, window, scale, padding, crop = resize_image(image, 64, 128, mode="none")
    assert out is image
    assert window == (0, 0, 30, 40) and scale == 1 and crop is None
    assert padding == [(0, 0), (0, 0), (0, 0)]


def test_resize_image_square_upscales_then_pads():
    image = ramp_image(50, 100)
    out, window, scale, padding, crop = resize_image(image, min_dim=100, max_dim=256)
    # scale = 100 / 50 = 2 -> 100 x 200, padded to 256 x 256 around the centre.
    assert scale == 2 and crop is None
    assert out.shape == (256, 256, 3) and out.dtype == np.uint8
    assert padding == [(78, 78), (28, 28), (0, 0)]
    assert window == (78, 28, 178, 228)
    assert not out[:78].any() and not out[178:].any() and not out[:, :28].any()
    assert out[78:178, 28:228].any()


def test_resize_image_square_downscales_to_max_dim():
    out, window, scale, padding, _ = resize_image(ramp_image(300, 150), max_dim=100)
    # No min_dim: scale 1 would exceed 100, so scale = 100 / 300 -> 100 x 50.
    assert scale == pytest.approx(1 / 3)
    assert out.shape == (100, 100, 3)
    assert padding == [(0, 0), (25, 25), (0, 0)]
    assert window == (0, 25, 100, 75)


def test_resize_image_square_caps_min_dim_scale_by_max_dim():
    image = np.ones((100, 400, 3), dtype=np.float32)
    out, window, scale, padding, _ = resize_image(image, min_dim=200, max_dim=256)
    # min_dim asks for 2x, but 800 > 256: scale = 256 / 400 = 0.64 -> 64 x 256.
    assert scale == pytest.approx(0.64)
    assert out.dtype == np.float32
    assert padding == [(96, 96), (0, 0), (0, 0)]
    assert window == (96, 0, 160, 256)
    np.testing.assert_allclose(out[96:160], 1.0)


def test_resize_image_min_scale():
    _, window, scale, _, _ = resize_image(ramp_image(40, 40), min_dim=20, max_dim=128,
                                          min_scale=1.5)
    assert scale == 1.5
    assert window == (34, 34, 94, 94)  # 60 x 60 centred in 128 x 128


def test_resize_image_smaller_than_target_is_padded_without_scaling():
    image = ramp_image(21, 30)
    out, window, scale, padding, _ = resize_image(image, max_dim=64)
    assert scale == 1
    # An odd margin puts the extra row at the bottom.
    assert padding == [(21, 22), (17, 17), (0, 0)]
    assert window == (21, 17, 42, 47)
    np.testing.assert_array_equal(out[21:42, 17:47], image)


def test_resize_image_grayscale_2d():
    image = ramp_image(50, 100, channels=1)[:, :, 0]
    out, window, scale, padding, _ = resize_image(image, min_dim=100, max_dim=256)
    assert out.shape == (256, 256)
    assert window == (78, 28, 178, 228)
    # The padding is for the [H, W, N] masks, so it keeps three entries.
    assert padding == [(78, 78), (28, 28), (0, 0)]


def test_resize_image_pad64():
    image = ramp_image(100, 130)
    out, window, scale, padding, crop = resize_image(image, min_dim=64, mode="pad64")
    # No upscaling (100 > 64); 100 -> 128 and 130 -> 192, centred.
    assert scale == 1 and crop is None
    assert out.shape == (128, 192, 3)
    assert padding == [(14, 14), (31, 31), (0, 0)]
    assert window == (14, 31, 114, 161)
    np.testing.assert_array_equal(out[14:114, 31:161], image)


def test_resize_image_pad64_odd_margin():
    _, window, _, padding, _ = resize_image(ramp_image(99, 64), min_dim=64, mode="pad64")
    assert padding == [(14, 15), (0, 0), (0, 0)] and window == (14, 0, 113, 64)


def test_resize_image_pad64_already_divisible():
    out, window, _, padding, _ = resize_image(ramp_image(128, 64), min_dim=64, mode="pad64")
    assert out.shape == (128, 64, 3)
    assert padding == [(0, 0), (0, 0), (0, 0)] and window == (0, 0, 128, 64)


def test_resize_image_pad64_needs_multiple_of_64():
    with pytest.raises(ValueError, match="multiple of 64"):
        resize_image(ramp_image(100, 130), min_dim=100, mode="pad64")


def test_resize_image_crop_uses_python_random():
    image = ramp_image(80, 100)
    random.seed(7)
    out, window, scale, padding, crop = resize_image(image, min_dim=64, mode="crop")
    random.seed(7)
    y, x = random.randint(0, 16), random.randint(0, 36)
    assert crop == (y, x, 64, 64)
    assert window == (0, 0, 64, 64) and scale == 1
    assert padding == [(0, 0), (0, 0), (0, 0)]
    np.testing.assert_array_equal(out, image[y:y + 64, x:x + 64])


def test_resize_image_crop_upscales_small_image():
    out, _, scale, _, crop = resize_image(ramp_image(32, 48), min_dim=64, mode="crop")
    assert scale == 2 and out.shape == (64, 64, 3)
    assert crop[0] == 0 and 0 <= crop[1] <= 32


def test_resize_image_bad_arguments():
    with pytest.raises(ValueError, match="square.*pad64.*crop"):
        resize_image(ramp_image(10, 10), 64, 64, mode="stretch")
    with pytest.raises(ValueError, match="max_dim"):
        resize_image(ramp_image(10, 10), min_dim=64, mode="square")
    with pytest.raises(ValueError, match="min_dim"):
        resize_image(ramp_image(10, 10), mode="crop")


def test_resize_mask_follows_resize_image():
    mask = np.zeros((50, 100, 2), dtype=bool)
    mask[10:20, 30:40, 0] = True
    _, _, scale, padding, crop = resize_image(ramp_image(50, 100), min_dim=100, max_dim=256)
    resized = resize_mask(mask, scale, padding, crop)
    assert resized.shape == (256, 256, 2) and resized.dtype == bool
    # Scaled x2 to [20:40, 60:80], then shifted by the (78, 28) padding.
    np.testing.assert_array_equal(extract_bboxes(resized), [[98, 88, 118, 108], [0, 0, 0, 0]])


def test_resize_mask_crop():
    mask = np.random.default_rng(0).random((80, 100, 3)) > 0.5
    np.testing.assert_array_equal(resize_mask(mask, 1, None, (5, 7, 64, 64)),
                                  mask[5:69, 7:71])


def test_minimize_expand_round_trip_on_rectangle():
    mask = np.zeros((40, 50, 2), dtype=bool)
    mask[5:25, 10:40, 0] = True
    mask[30:34, 0:4, 1] = True
    mask[30:34, 0:2, 1] = False  # right half only, so the box is [30, 2, 34, 4]
    bbox = extract_bboxes(mask)
    mini = minimize_mask(bbox, mask, (8, 8))
    assert mini.shape == (8, 8, 2) and mini.dtype == bool
    assert mini[..., 0].all()
    np.testing.assert_array_equal(expand_mask(bbox, mini, (40, 50, 3)), mask)


def test_minimize_mask_bilinear_downscale():
    mask = np.zeros((4, 4, 1), dtype=np.uint8)
    mask[:, :2, 0] = 255  # 0/255 masks count as 0/1
    mini = minimize_mask(np.array([[0, 0, 4, 4]]), mask, (2, 2))
    np.testing.assert_array_equal(mini[..., 0], [[True, False], [True, False]])


def test_minimize_mask_rounds_blended_values():
    mask = np.zeros((2, 2, 1), dtype=bool)
    mask[0, 0, 0] = True
    # Upscaled 2 -> 4 the corner pixel blends to 0.56 (kept) and 0.19 (dropped).
    mini = minimize_mask(np.array([[0, 0, 2, 2]]), mask, (4, 4))
    expected = np.zeros((4, 4), dtype=bool)
    expected[:2, :2] = True
    np.testing.assert_array_equal(mini[..., 0], expected)


def test_minimize_mask_zero_area_box():
    mask = np.ones((10, 10, 2), dtype=bool)
    with pytest.raises(ValueError, match=r"Instance 1 .*\[3, 3, 3, 8\]"):
        minimize_mask(np.array([[0, 0, 5, 5], [3, 3, 3, 8]]), mask, (4, 4))


def test_expand_mask_rounds_blended_values():
    mini = np.zeros((2, 2, 1), dtype=bool)
    mini[0, 0, 0] = True
    full = expand_mask(np.array([[1, 2, 5, 6]]), mini, (8, 8, 3))
    expected = np.zeros((8, 8), dtype=bool)
    expected[1:3, 2:4] = True  # the 0.56 corner of the 4 x 4 box, not the 0.19 ring
    np.testing.assert_array_equal(full[..., 0], expected)


def test_expand_mask_zero_area_box_stays_empty():
    mini = np.ones((4, 4, 2), dtype=bool)
    full = expand_mask(np.array([[2, 2, 2, 6], [0, 0, 3, 3]]), mini, (8, 8, 3))
    assert not full[..., 0].any()
    assert full[..., 1].sum() == 9


def test_unmold_mask_pastes_thresholded_mask():
    mask = np.zeros((28, 28), dtype=np.float32)
    mask[:, :14] = 1.0
    full = unmold_mask(mask, (10, 20, 20, 40), (50, 60, 3))
    assert full.shape == (50, 60) and full.dtype == bool
    # Resized to 10 x 20 the left half covers columns 0..9 (value >= 0.5) of the box.
    expected = np.zeros((50, 60), dtype=bool)
    expected[10:20, 20:30] = True
    np.testing.assert_array_equal(full, expected)


def test_unmold_mask_threshold_is_inclusive():
    full = unmold_mask(np.full((28, 28), 0.5, np.float32), (0, 0, 5, 5), (8, 8))
    assert full.sum() == 25
    assert not unmold_mask(np.full((28, 28), 0.49, np.float32), (0, 0, 5, 5), (8, 8)).any()


def test_unmold_mask_zero_area_box():
    full = unmold_mask(np.ones((28, 28), np.float32), (4, 4, 4, 9), (10, 10, 3))
    assert full.shape == (10, 10) and not full.any()


def test_mold_and_unmold_image():
    config = SimpleNamespace(MEAN_PIXEL=np.array([123.7, 116.8, 103.9]))
    image = np.array([[[200, 100, 0]]], dtype=np.uint8)
    np.testing.assert_allclose(mold_image(image, config), [[[76.3, -16.8, -103.9]]])
    # astype(uint8) truncates: 124.7 -> 124.
    np.testing.assert_array_equal(unmold_image(np.array([[[1.0, -16.0, 50.0]]]), config),
                                  [[[124, 100, 153]]])


def test_image_meta_round_trip():
    meta = compose_image_meta(7, (480, 640, 3), (1024, 1024, 3), (128, 0, 896, 1024), 1.6,
                              [1, 1, 0, 1])
    assert meta.shape == (1 + 3 + 3 + 4 + 1 + 4,)
    other = compose_image_meta(2, (10, 20, 3), (64, 64, 3), (0, 1, 2, 3), 0.5, [1, 0, 0, 0])
    parsed = parse_image_meta(np.stack([meta, other]))
    np.testing.assert_array_equal(parsed["image_id"], [7, 2])
    np.testing.assert_array_equal(parsed["original_image_shape"], [[480, 640, 3], [10, 20, 3]])
    np.testing.assert_array_equal(parsed["image_shape"], [[1024, 1024, 3], [64, 64, 3]])
    np.testing.assert_array_equal(parsed["window"], [[128, 0, 896, 1024], [0, 1, 2, 3]])
    np.testing.assert_allclose(parsed["scale"], [1.6, 0.5])
    np.testing.assert_array_equal(parsed["active_class_ids"], [[1, 1, 0, 1], [1, 0, 0, 0]])
    assert parsed["image_id"].dtype == np.int32 and parsed["scale"].dtype == np.float32
    assert parsed["window"].dtype == np.int32


@pytest.mark.parametrize("shape", [(4, 5), (4, 5, 1)])
def test_to_rgb_gray(shape):
    gray = np.arange(20, dtype=np.uint8).reshape(shape)
    rgb = to_rgb(gray)
    assert rgb.shape == (4, 5, 3) and rgb.dtype == np.uint8
    for channel in range(3):
        np.testing.assert_array_equal(rgb[..., channel], gray.reshape(4, 5))


def test_to_rgb_drops_alpha_and_keeps_rgb():
    rgba = np.arange(4 * 5 * 4, dtype=np.uint8).reshape(4, 5, 4)
    np.testing.assert_array_equal(to_rgb(rgba), rgba[..., :3])
    rgb = rgba[..., :3].copy()
    np.testing.assert_array_equal(to_rgb(rgb), rgb)


@pytest.mark.parametrize("shape", [(4, 5, 2), (2, 4, 5, 3), (5,)])
def test_to_rgb_rejects_other_shapes(shape):
    with pytest.raises(ValueError, match="grayscale, RGB or RGBA"):
        to_rgb(np.zeros(shape, np.uint8))
