"""The `mrcnn` command: help, usage and run-time errors, detect and train end to end."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import skimage.io

from conftest import write_config_module
from mrcnn import cli, resources
from mrcnn import config_presets as configs

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# With a zero kernel, class 1 always wins: the random tiny model detects class-1 objects.
CLASS_LOGITS_BIAS = np.array([0., 3., 1., 0.])


@pytest.fixture(scope="module")
def tiny(tiny_config_class, tmp_path_factory):
    """A config module file, a weight file of a tiny model, and test images."""
    root = tmp_path_factory.mktemp("cli")
    config_file = root / "tiny_config.py"
    config = write_config_module(config_file, tiny_config_class,
                                 "\n\nclass TinyThree(TinyConfig):\n    NUM_CLASSES = 3\n")

    from mrcnn.model import MaskRCNN
    from mrcnn.weights import save_weights

    model = MaskRCNN("inference", configs.inference_config(
        configs.load_config_class(config)), str(root / "logs"))
    kernel, bias = model.keras_model.get_layer("mrcnn_class_logits").weights
    kernel.assign(np.zeros(kernel.shape))
    bias.assign(CLASS_LOGITS_BIAS)
    weights = root / "tiny.h5"
    save_weights(model.keras_model, str(weights))

    images = root / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    skimage.io.imsave(images / "rgb.png", rng.integers(0, 256, (100, 150, 3), np.uint8))
    skimage.io.imsave(images / "gray.jpg", rng.integers(0, 256, (90, 70), np.uint8))
    skimage.io.imsave(images / "deep.png", rng.integers(0, 65536, (64, 80), np.uint16))
    (images / "notes.txt").write_text("not an image")
    two_channels = root / "two_channels.png"
    skimage.io.imsave(two_channels, rng.integers(0, 256, (40, 40, 2), np.uint8))
    return {"root": root, "config": config, "config3": f"{config_file}:TinyThree",
            "weights": str(weights),
            "images": str(images), "two_channels": str(two_channels)}


def _exit_code(argv):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    return info.value.code


def test_python_m_mrcnn_help():
    out = subprocess.run([sys.executable, "-m", "mrcnn", "--help"], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for command in ("detect", "train", "evaluate"):
        assert command in out.stdout


@pytest.mark.parametrize("command", ["detect", "train", "evaluate"])
def test_subcommand_help(command, capsys):
    assert _exit_code([command, "--help"]) == 0
    text = capsys.readouterr().out
    assert f"mrcnn {command}" in text and "examples:" in text and "--weights" in text


def test_usage_errors_exit_2(tiny, capsys):
    assert _exit_code([]) == 2
    assert _exit_code(["detect", "--image", "x.png"]) == 2            # no --weights
    # Without --config, only a weight file with class heads tells the class count.
    assert _exit_code(["detect", "--weights", "none", "--image", tiny["images"]]) == 2
    assert "--config is required" in capsys.readouterr().err
    assert _exit_code(["train", "--weights", "none"]) == 2           # no data
    assert _exit_code(["evaluate", "--weights", "none"]) == 2          # no data
    assert _exit_code(["train", "--weights", "none", "--dataset", "shapes",
                       "--evaluate-every", "0"]) == 2


def test_unknown_config_exits_1(tiny, capsys):
    assert cli.main(["detect", "--config", "nope", "--weights", tiny["weights"],
                     "--image", tiny["images"]]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("error: unknown config 'nope'")
    assert "shapes, coco" in err and "Traceback" not in err


def test_detect_end_to_end(tiny, tmp_path, capsys):
    out = tmp_path / "out"
    # A three-class config with four-class weights: the file's class count wins.
    assert cli.main(["detect", "--config", tiny["config3"], "--weights", tiny["weights"],
                     "--image", tiny["images"], "--out", str(out),
                     "--class-names", "a,b,c", "--logs", str(tmp_path / "logs")]) == 0
    captured = capsys.readouterr()
    assert "deep.png is 16-bit" in captured.err
    assert "using the 4 classes of" in captured.err and "re-initialized" not in captured.err
    assert "3 images" in captured.out

    sizes = {"rgb": (100, 150), "gray": (90, 70), "deep": (64, 80)}
    assert sorted(os.listdir(out)) == ["deep.png", "gray.png", "results.json", "rgb.png"]
    for stem, size in sizes.items():
        assert skimage.io.imread(out / f"{stem}.png").shape[:2] == size

    results = json.loads((out / "results.json").read_text())
    assert results, "the class bias makes every kept ROI a class-1 detection"
    files = sorted(os.path.join(tiny["images"], n) for n in ("deep.png", "gray.jpg", "rgb.png"))
    for r in results:
        assert set(r) == {"file_name", "image_id", "category_id", "category_name", "bbox",
                          "score", "segmentation"}
        assert r["file_name"] == files[r["image_id"]]
        assert (r["category_id"], r["category_name"]) == (1, "a")
        assert len(r["bbox"]) == 4 and 0 <= r["score"] <= 1
        assert isinstance(r["segmentation"]["counts"], str)
        height, width = sizes[os.path.splitext(os.path.basename(r["file_name"]))[0]]
        assert r["segmentation"]["size"] == [height, width]


def test_two_channel_image_is_refused(tiny, tmp_path, capsys):
    assert cli.main(["detect", "--config", tiny["config"], "--weights", tiny["weights"],
                     "--image", tiny["images"], tiny["two_channels"],
                     "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and tiny["two_channels"] in err and "2 channels" in err
    assert not os.listdir(tmp_path)


def test_missing_weights_file_says_what_to_download(tiny, tmp_path, capsys):
    assert cli.main(["detect", "--config", tiny["config"], "--weights",
                     str(tmp_path / "missing.h5"), "--image", tiny["images"]]) == 1
    err = capsys.readouterr().err
    assert "missing.h5" in err and resources.COCO_WEIGHTS_URL in err


def test_missing_coco_weights_say_where_to_put_them(tiny, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(resources, "WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "weights").mkdir()
    assert cli.main(["detect", "--config", tiny["config"], "--weights", "coco",
                     "--image", tiny["images"]]) == 1
    err = capsys.readouterr().err
    assert resources.COCO_WEIGHTS_URL in err
    assert f"save it as {tmp_path / 'weights' / resources.COCO_WEIGHTS_FILE}" in err


def _coco_files(root, categories=((5, "red"), (10, "green"))):
    """A COCO-format train.json / val.json with a few 128 x 128 images of rectangles."""
    rng = np.random.default_rng(1)
    for split, count in (("train", 4), ("val", 2)):
        images, annotations = [], []
        for i in range(count):
            image = np.full((128, 128, 3), 30, np.uint8)
            for cat_id, _ in categories:
                y, x = (int(v) for v in rng.integers(10, 60, 2))
                image[y:y + 40, x:x + 50] = rng.integers(100, 256, 3)
                annotations.append({
                    "id": len(annotations) + 1, "image_id": i + 1, "category_id": cat_id,
                    "segmentation": [[x, y, x + 50, y, x + 50, y + 40, x, y + 40]],
                    "bbox": [x, y, 50, 40], "area": 2000, "iscrowd": 0})
            skimage.io.imsave(root / f"{split}{i}.png", image)
            images.append({"id": i + 1, "file_name": f"{split}{i}.png", "width": 128,
                           "height": 128})
        data = {"images": images, "annotations": annotations,
                "categories": [{"id": c, "name": n} for c, n in categories]}
        (root / f"{split}.json").write_text(json.dumps(data))
    return str(root / "train.json"), str(root / "val.json")


def test_training_data_takes_the_classes_from_the_json(tiny, tmp_path):
    train_json, val_json = _coco_files(tmp_path)
    args = cli.build_parser().parse_args([
        "train", "--config", tiny["config"], "--weights", "none", "--train-json", train_json,
        "--val-json", val_json, "--steps-per-epoch", "3", "--set", "IMAGES_PER_GPU=1"])
    config, train, val, coco = cli.training_data(args)
    assert config.NUM_CLASSES == 3 and config.CLASS_NAMES == ["BG", "red", "green"]
    assert config.STEPS_PER_EPOCH == 3 and config.BATCH_SIZE == 1
    assert (train.num_images, val.num_images) == (4, 2) and val.class_names == train.class_names
    assert sorted(coco.cats) == [5, 10]

    # Without --config: a generic config named after the training JSON.
    args.config = None
    config, *_ = cli.training_data(args)
    assert config.NAME == "train" and config.NUM_CLASSES == 3


def test_training_data_shapes(tiny):
    args = cli.build_parser().parse_args([
        "train", "--config", tiny["config"], "--weights", "none", "--dataset", "shapes",
        "--train-count", "3", "--val-count", "2"])
    config, train, val, coco = cli.training_data(args)
    assert config.NUM_CLASSES == 4 and config.CLASS_NAMES == ["BG", "square", "circle",
                                                              "triangle"]
    assert (train.num_images, val.num_images, coco) == (3, 2, None)
    assert train.load_image(0).shape == (128, 128, 3)


def test_train_with_a_missing_json_exits_1(tmp_path, capsys):
    assert cli.main(["train", "--weights", "none", "--train-json", str(tmp_path / "a.json"),
                     "--val-json", str(tmp_path / "b.json")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "a.json" in err and "Traceback" not in err


def test_train_on_coco_format_data_then_evaluate(tiny, tmp_path, capsys):
    train_json, val_json = _coco_files(tmp_path)
    logs = tmp_path / "logs"
    assert cli.main(["train", "--config", tiny["config"], "--weights", tiny["weights"],
                     "--train-json", train_json, "--val-json", val_json, "--epochs", "1",
                     "--steps-per-epoch", "1", "--val-steps", "1", "--workers", "1",
                     "--logs", str(logs), "--evaluate"]) == 0
    captured = capsys.readouterr()
    assert "heads re-initialized: file has 4 classes, config 3" in captured.err
    assert "bbox: AP " in captured.out and "segm: AP " in captured.out
    (run,) = os.listdir(logs)
    files = set(os.listdir(logs / run))
    assert {"mask_rcnn_tiny_0001.h5", "tiny_val_bbox_results.json",
            "tiny_val_segm_results.json", "tiny_val_stats.json"} <= files
    stats = json.loads((logs / run / "tiny_val_stats.json").read_text())
    assert set(stats) == {"bbox", "segm"} and set(stats["bbox"]["per_class_ap"]) == {
        "red", "green"}


def test_coco_sample_translates_the_classic_flags():
    from samples.coco import coco

    args = coco.to_cli_args(coco.build_parser().parse_args(
        ["train", "--dataset", "/data/coco", "--model", "imagenet", "--logs", "/tmp/l"]))
    assert (args.handler, args.config, args.dataset, args.year, args.weights) == (
        cli.run_train, "coco", "/data/coco", "2017", "imagenet")
    assert [(s.epochs, s.layers, s.lr_scale) for s in args.schedule] == [
        (40, "heads", 1.0), (120, "4+", 1.0), (160, "all", 0.1)]
    assert args.fliplr == 0.5

    args = coco.to_cli_args(coco.build_parser().parse_args(
        ["evaluate", "--dataset", "/data/coco", "--year", "2014", "--model", "coco"]))
    assert (args.handler, args.min_confidence, args.limit) == (cli.run_evaluate, 0.0, 500)
    assert resources.coco_root_splits("2014") == (["train", "valminusminival"], "minival")
    assert coco.CocoConfig().NUM_CLASSES == len(coco.COCO_CLASS_NAMES) == 81


def test_demo_is_detect_with_the_coco_config(monkeypatch):
    from samples import demo

    calls = []
    monkeypatch.setattr(cli, "main", lambda argv: calls.append(argv) or 0)
    assert demo.main(["--image", "images/"]) == 0
    assert calls == [["detect", "--config", "coco", "--image", "images/", "--weights",
                      "coco"]]


def test_long_error_messages_fit_on_one_line():
    err = ValueError("x.h5 does not fit:\n  a\n  b\n  c\n  d\n  e\n  f\nUse exclude.")
    assert cli._one_line(err) == "x.h5 does not fit: a; b; c; ... (3 more); Use exclude."


def test_mixed_precision_flag_sets_the_config_policy(tiny):
    args = cli.build_parser().parse_args([
        "train", "--config", tiny["config"], "--weights", "none", "--dataset", "shapes",
        "--train-count", "1", "--val-count", "1", "--mixed-precision", "bfloat16"])
    config, *_ = cli.training_data(args)
    assert config.MIXED_PRECISION == "mixed_bfloat16"
    args = cli.build_parser().parse_args([
        "detect", "--weights", "none", "--image", "a.png", "--mixed-precision", "float16"])
    assert cli.settings_with_precision(args)["MIXED_PRECISION"] == "mixed_float16"
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["detect", "--weights", "none", "--image", "a.png",
                                       "--mixed-precision", "int8"])
