"""Tests for mrcnn.visualize: headless PNG output, pixel exactness, helpers."""
import os

os.environ.setdefault("MPLBACKEND", "Agg")

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from mrcnn import visualize

H, W = 96, 128
CLASS_NAMES = ["BG", "cat", "dog"]
# Two rectangular instances; boxes are the masks' extents (y2/x2 exclusive).
BOXES = np.array([[10, 10, 40, 50], [50, 70, 85, 115]], dtype=np.int32)
COLORS = [(1.0, 0.0, 0.0), (0.0, 0.0, 1.0)]


def _masks(boxes, shape=(H, W)):
    masks = np.zeros(shape + (len(boxes),), dtype=bool)
    for i, (y1, x1, y2, x2) in enumerate(boxes):
        masks[y1:y2, x1:x2, i] = True
    return masks


@pytest.fixture(scope="module")
def image():
    # Random pixels: any unintended change (resampling, margins, title) shows up.
    return np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)


def _read_rgb(path):
    with Image.open(path) as png:
        return np.asarray(png.convert("RGB"))


def _assert_png(path):
    assert os.path.getsize(path) > 0
    with Image.open(path) as png:
        png.verify()
        assert png.format == "PNG"


def test_display_instances_saves_native_size_and_exact_pixels(image, tmp_path):
    masks = _masks(BOXES)
    path = visualize.display_instances(
        image, BOXES, masks, np.array([1, 2]), CLASS_NAMES, scores=np.array([0.99, 0.5]),
        title="a title", colors=COLORS, save_path=tmp_path / "inst.png")
    assert path == os.fspath(tmp_path / "inst.png")
    _assert_png(path)
    out = _read_rgb(path)
    assert out.shape == (H, W, 3)

    # (b) every pixel inside each mask (away from the outline) changed, and away
    # from captions and lines it is exactly the apply_mask blend.
    for i, (y1, x1, y2, x2) in enumerate(BOXES):
        inner = (slice(y1 + 4, y2 - 4), slice(x1 + 4, x2 - 4))
        assert np.all(np.any(out[inner] != image[inner], axis=-1)), f"mask {i} unchanged"
    blended = visualize.apply_mask(visualize.apply_mask(image, masks[..., 0], COLORS[0]),
                                   masks[..., 1], COLORS[1])
    for region in [(slice(25, 36), slice(15, 45)), (slice(65, 80), slice(75, 110))]:
        np.testing.assert_array_equal(out[region], blended[region])

    # (c) far from masks, boxes and captions (and where a title would be), the
    # input is untouched.
    for region in [(slice(90, 96), slice(0, W)), (slice(45, 96), slice(0, 60)),
                   (slice(0, 42), slice(100, W)), (slice(0, 3), slice(0, W))]:
        np.testing.assert_array_equal(out[region], image[region])


def test_display_instances_without_instances(image, tmp_path, capsys):
    path = visualize.display_instances(
        image, np.zeros((0, 4), np.int32), np.zeros((H, W, 0), bool), np.zeros(0, np.int32),
        CLASS_NAMES, save_path=tmp_path / "empty.png")
    assert "*** No instances to display ***" in capsys.readouterr().out
    np.testing.assert_array_equal(_read_rgb(path), image)


def test_display_instances_rejects_mismatched_lengths(image):
    with pytest.raises(ValueError, match=r"2 boxes, 1 masks, 3 class_ids"):
        visualize.display_instances(image, BOXES, _masks(BOXES[:1]), np.array([1, 2, 1]),
                                    CLASS_NAMES, save_path="unused.png")


def test_display_instances_into_given_axes(image, tmp_path):
    from matplotlib.figure import Figure
    ax = Figure().add_subplot()
    assert visualize.display_instances(image, BOXES, _masks(BOXES), np.array([1, 2]),
                                       CLASS_NAMES, ax=ax, captions=["a", "b"]) is None
    assert len(ax.images) == 1 and len(ax.texts) == 2
    _assert_png(visualize.display_instances(image, BOXES, _masks(BOXES), np.array([1, 2]),
                                            CLASS_NAMES, ax=ax, save_path=tmp_path / "ax.png"))


def test_saving_is_headless_and_tensorflow_free(tmp_path):
    # A fresh interpreter: saving must not import pyplot (the caller's backend stays
    # untouched) nor TensorFlow, even for display_differences (mrcnn.metrics).
    code = f"""
import sys, numpy as np
from mrcnn import visualize
m = np.zeros((20, 20, 1), bool); m[5:15, 5:15] = True
b = np.array([[5, 5, 15, 15]])
visualize.display_differences(np.zeros((20, 20, 3), np.uint8), b, np.array([1]), m, b,
    np.array([1]), np.array([0.9]), m, ["BG", "x"], save_path={str(tmp_path / 'd.png')!r})
assert "matplotlib.pyplot" not in sys.modules, "pyplot imported"
assert "tensorflow" not in sys.modules, "tensorflow imported"
"""
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert result.returncode == 0, result.stderr
    _assert_png(tmp_path / "d.png")


def test_other_functions_write_pngs(image, tmp_path, capsys):
    masks = _masks(BOXES)
    class_ids = np.array([1, 2])
    paths = [
        visualize.display_images([image, masks[..., 0], image], titles=["a", "b", "c"], cols=2,
                                 cmap="gray", save_path=tmp_path / "images.png"),
        visualize.display_top_masks(image, masks, class_ids, CLASS_NAMES, limit=3,
                                    save_path=tmp_path / "top.png"),
        visualize.draw_boxes(image, boxes=BOXES, refined_boxes=BOXES + 2, masks=masks,
                             captions=["a", "b"], visibilities=[0, 2], title="t",
                             save_path=tmp_path / "boxes.png"),
        visualize.display_differences(
            image, BOXES, class_ids, masks, BOXES[::-1] + 1, np.array([2, 2]),
            np.array([0.6, 0.9]), masks[..., ::-1], CLASS_NAMES,
            save_path=tmp_path / "diff.png"),
        visualize.plot_precision_recall(0.75, np.array([1.0, 1.0, 0.5]),
                                        np.array([0.0, 0.5, 1.0]), save_path=tmp_path / "pr.png"),
        visualize.plot_overlaps(class_ids, np.array([2, 1]), np.array([0.9, 0.6]),
                                np.array([[0.8, 0.0], [0.3, 0.6]]), CLASS_NAMES,
                                save_path=tmp_path / "overlaps.png"),
        visualize.draw_rois(image, BOXES, BOXES + 3, np.ones((2, 28, 28)), np.array([1, 0]),
                            CLASS_NAMES, save_path=tmp_path / "rois.png"),
    ]
    for path in paths:
        _assert_png(path)
    for name in ["boxes", "diff", "rois"]:
        assert _read_rgb(tmp_path / f"{name}.png").shape == (H, W, 3)
    assert "Positive ROIs:  1" in capsys.readouterr().out


def test_display_differences_captions_follow_score_order(image):
    from matplotlib.figure import Figure
    # Given in ascending score: the 0.6 prediction is GT 1 exactly, the 0.9 one is
    # GT 0 shifted 5 px right (IoU 30*35 / (30*45)); a zero row is padding.
    pred_boxes = np.array([BOXES[1], BOXES[0] + [0, 5, 0, 5], [0, 0, 0, 0]])
    ax = Figure().add_subplot()
    visualize.display_differences(image, BOXES, np.array([1, 2]), _masks(BOXES), pred_boxes,
                                  np.array([2, 1, 0]), np.array([0.6, 0.9, 0.0]),
                                  _masks(pred_boxes), CLASS_NAMES, ax=ax)
    captions = {t.get_text(): t.get_position() for t in ax.texts if t.get_text()}
    # Each caption sits at its own box: (x1, y1 + 8).
    assert captions == {"0.60 / 1.00": (70, 58), "0.90 / 0.78": (15, 18)}


def test_display_weight_stats(capsys):
    class Weight:
        def __init__(self, name, value):
            self.name, self.value = name, np.asarray(value, np.float32)

        def numpy(self):
            return self.value

    class Model:
        weights = [Weight("conv/kernel", [[1.0, -2.0]]), Weight("conv/bias", [0.0, 0.0]),
                   Weight("dense/kernel", [[3.0], [3.0]]), Weight("big/kernel", [5000.0, 1.0])]

    table = visualize.display_weight_stats(Model())
    assert table[0] == ["WEIGHT NAME", "SHAPE", "MIN", "MAX", "STD"]
    assert table[1][:4] == ["conv/kernel", "(1, 2)", "  -2.0000", "  +1.0000"]
    assert table[2][0] == "conv/bias"  # constant vectors are not flagged
    assert "dead?" in table[3][0] and "Overflow?" in table[4][0]
    assert "dense/kernel *** dead?" in capsys.readouterr().out


def test_random_colors():
    colors = visualize.random_colors(7)
    assert len(colors) == 7 and len(set(colors)) == 7
    assert all(len(c) == 3 and all(0.0 <= v <= 1.0 for v in c) for c in colors)
    assert visualize.random_colors(5, seed=3) == visualize.random_colors(5, seed=3)
    assert max(max(c) for c in colors) == 1.0
    assert max(max(c) for c in visualize.random_colors(4, bright=False)) == pytest.approx(0.7)


def test_apply_mask_blends_only_masked_pixels():
    image = np.full((4, 5, 3), 101, np.uint8)
    mask = np.zeros((4, 5), bool)
    mask[1, 2] = True
    out = visualize.apply_mask(image, mask, (1.0, 0.5, 0.0), alpha=0.4)
    # 101 * 0.6 + 0.4 * (255, 127.5, 0) = (162.6, 111.6, 60.6), rounded
    assert out.dtype == np.uint8 and out[1, 2].tolist() == [163, 112, 61]
    assert np.all(out[~mask] == 101)
    assert np.all(image == 101), "input was modified"
    floats = visualize.apply_mask(image.astype(np.float32), mask, (1.0, 0.5, 0.0), alpha=0.4)
    np.testing.assert_allclose(floats[1, 2], [162.6, 111.6, 60.6], rtol=1e-6)


def test_draw_box_burns_border_only():
    image = np.zeros((20, 30, 3), np.uint8)
    out = visualize.draw_box(image, (2, 4, 15, 25), (255, 0, 0))
    red = np.all(out == (255, 0, 0), axis=-1)
    border = np.zeros((20, 30), bool)
    border[2:15, 4:25] = True
    border[5:12, 7:22] = False
    np.testing.assert_array_equal(red, border)
    assert not image.any(), "input was modified"
