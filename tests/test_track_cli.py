"""`mrcnn track` end to end with a tiny random model: frames in, PNGs and MOTS tracks out."""
import os

import imageio.v3 as iio
import numpy as np
import pytest
import skimage.io

from conftest import write_config_module
from mrcnn import cli, visualize
from mrcnn import config_presets as configs
from mrcnn.datasets.moving_shapes import MovingShapesDataset
from mrcnn.mots import read_mots
from mrcnn.video import read_video

FRAMES = 4


@pytest.fixture(scope="module")
def tiny(tiny_config_class, tmp_path_factory):
    """A config file and the weights of a tiny random model whose class head always says
    class 1 (so that it detects something), and a moving-shapes video as GIF and folder."""
    root = tmp_path_factory.mktemp("track_cli")
    config_file = root / "tiny_config.py"
    config = write_config_module(config_file, tiny_config_class)

    from mrcnn.model import MaskRCNN
    from mrcnn.weights import save_weights

    model = MaskRCNN("inference", configs.inference_config(
        configs.load_config_class(config)), str(root / "logs"))
    kernel, bias = model.keras_model.get_layer("mrcnn_class_logits").weights
    kernel.assign(np.zeros(kernel.shape))
    bias.assign(np.array([0., 3., 1., 0.]))
    weights = root / "tiny.h5"
    save_weights(model.keras_model, str(weights))

    dataset = MovingShapesDataset()
    dataset.load_videos(1, FRAMES, 128, 128, seed=0)
    dataset.prepare()
    frames = np.stack([dataset.load_image(i) for i in dataset.image_ids])
    gif = root / "clip.gif"
    iio.imwrite(gif, frames)
    folder = root / "frames"
    folder.mkdir()
    for i, frame in enumerate(frames):
        skimage.io.imsave(folder / f"f{i:02d}.png", frame)
    return {"root": root, "config": config, "weights": str(weights), "gif": str(gif),
            "folder": str(folder), "frames": frames}


def test_read_video(tiny, tmp_path):
    from_folder = read_video(tiny["folder"])
    assert [name for name, _ in from_folder] == [f"f{i:02d}" for i in range(FRAMES)]
    np.testing.assert_array_equal(np.stack([f for _, f in from_folder]), tiny["frames"])
    from_gif = read_video(tiny["gif"])
    assert [name for name, _ in from_gif] == [f"clip_{i:05d}" for i in range(FRAMES)]
    assert all(f.shape == (128, 128, 3) and f.dtype == np.uint8 for _, f in from_gif)
    tiff = tmp_path / "gray.tif"
    iio.imwrite(tiff, tiny["frames"][..., 0])  # a grayscale stack [T, H, W]
    frames = read_video(tiff)
    assert len(frames) == FRAMES
    np.testing.assert_array_equal(frames[1][1][..., 2], tiny["frames"][1][..., 0])
    with pytest.raises(FileNotFoundError, match="no such video"):
        read_video(tmp_path / "missing")


def test_identity_colors_are_stable_and_distinct():
    colors = visualize.identity_colors(range(1, 11))
    assert visualize.identity_colors([7, 3]) == [colors[6], colors[2]]
    assert len(set(colors)) == 10
    assert all(0 <= c <= 1 for color in colors for c in color)


def test_track_end_to_end(tiny, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["track", "--config", tiny["config"], "--weights", tiny["weights"],
                     "--video", tiny["gif"], "--out", str(out), "--min-score", "0",
                     "--logs", str(tmp_path / "logs")]) == 0
    captured = capsys.readouterr()
    assert f"{FRAMES} frames" in captured.out
    assert "no association head" in captured.err
    names = [f"clip_{i:05d}.png" for i in range(FRAMES)]
    assert sorted(os.listdir(out)) == names + ["tracks.txt"]
    for name in names:
        assert skimage.io.imread(out / name).shape[:2] == (128, 128)
    tracks = read_mots(out / "tracks.txt")
    assert tracks, "the class bias makes the tiny model detect class 1"
    assert set(tracks) <= set(range(FRAMES))
    for objects in tracks.values():
        assert (objects["class_ids"] == 1).all() and (objects["ids"] >= 1).all()
        assert objects["masks"].shape[:2] == (128, 128)
        assert objects["masks"].sum(axis=-1).max() <= 1  # disjoint, as MOTS wants


def test_tracker_flags_reach_the_tracker():
    def tracker(*flags):
        args = cli.build_parser().parse_args(["track", "--video", "clip.gif",
                                              "--weights", "w.h5", *flags])
        return cli.tracker_from_args(args)
    default = tracker()
    assert default.class_consistent and default.memory == 3 and default.max_cost == 0.7
    tuned = tracker("--any-class", "--memory", "5", "--max-cost", "0.9",
                    "--embedding-weight", "4", "--min-score", "0.35")
    assert not tuned.class_consistent and tuned.memory == 5 and tuned.max_cost == 0.9
    assert tuned.embedding_weight == 4.0 and tuned.min_score == 0.35


def test_unreadable_video_names_the_plugins(tiny, tmp_path, capsys):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\0" * 64)
    assert cli.main(["track", "--config", tiny["config"], "--weights", tiny["weights"],
                     "--video", str(clip), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot read video file") and "imageio[ffmpeg]" in err
    assert not (tmp_path / "out").exists()  # failed before anything was written
    assert cli.main(["track", "--config", tiny["config"], "--weights", tiny["weights"],
                     "--video", tiny["gif"], "--memory", "-1"]) == 1
    assert "memory must be >= 0" in capsys.readouterr().err
