"""The `mrcnn` command: detect, train and evaluate from the shell.

::

    mrcnn detect --config coco --weights coco --image photos/ --out out/
    mrcnn train --weights coco --train-json train.json --val-json val.json --epochs 20
    mrcnn evaluate --config coco --weights coco --dataset /data/coco --year 2017
    mrcnn export --config coco --weights coco --out models/mrcnn/1
    mrcnn track --config my_config.py:Cfg --weights tracker.h5 --video clip.gif --out out/

Exit status: 0 on success, 2 for a usage error, 1 for a failure at run time
(missing file, weight file that does not fit, bad input), reported as one
``error: ...`` line on stderr (``--debug`` shows the traceback instead).

The command functions (:func:`run_detect`, :func:`run_train`,
:func:`run_evaluate`) take the parsed arguments, so that scripts such as
``samples/coco/coco.py`` can translate their own flags and reuse them.
TensorFlow is imported only when a command runs: ``--help`` stays instant.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

# Short local name: presets and config loading are used throughout the commands.
from mrcnn import config_presets as configs
from mrcnn.config import ASSOCIATION_LOSS, LOSS_NAMES
from mrcnn.inference import collect_images, detect_files, evaluate, read_image
from mrcnn.resources import (COCO_WEIGHTS_FILE, category_ids, coco_root_splits, json_source,
                             load_coco_dataset, weights_file)

if TYPE_CHECKING:  # the model module imports TensorFlow: only when a command runs
    from mrcnn.config import Config
    from mrcnn.model import MaskRCNN


class UsageError(Exception):
    """Arguments that parse but do not go together; reported like argparse's errors."""


@dataclass(frozen=True)
class Stage:
    """One MaskRCNN.train call: train `layers` up to epoch `epochs` at `lr_scale` x the LR."""
    epochs: int
    layers: str
    lr_scale: float = 1.0


def note(text: str) -> None:
    """A remark for the user, on stderr so that stdout stays the command's output."""
    print(text, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------- weights

def load_weights(model: MaskRCNN, spec: str) -> None:
    """Loads ``--weights`` into `model` by layer name, re-initializing the
    class-dependent heads when the file was trained for another class count."""
    from mrcnn.weights import HEADS_IF_MISMATCH, num_classes_in_file

    path = weights_file(spec, model)
    if path is None:
        note("note: --weights none: the model starts from random weights")
        return
    report = model.load_weights(path, by_name=True, exclude=HEADS_IF_MISMATCH)
    if report.excluded:
        note(f"note: heads re-initialized: file has {num_classes_in_file(path)} classes, "
             f"config {model.config.NUM_CLASSES}")
    note(f"loaded {len(report.loaded)} layers from {path}")
    random_layers = [n for n in report.not_in_file if n not in report.excluded]
    if model.mode == "inference" and random_layers:
        note(f"warning: {len(random_layers)} layers are not in {path} and keep random "
             f"weights (e.g. {', '.join(random_layers[:3])}); does the config's BACKBONE "
             "match the file?")


# ---------------------------------------------------------------------- configs

def base_config_class(args: argparse.Namespace, default: str | None = None,
                      json_path: str | None = None) -> type[Config]:
    """The ``--config`` class; without one, for a COCO-format JSON a generic config
    named after the file, else the config named `default`."""
    if args.config:
        return configs.load_config_class(args.config)
    if json_path:
        name = re.sub(r"[^\w-]", "_", os.path.splitext(os.path.basename(json_path))[0])
        return type(configs.DatasetConfig.__name__, (configs.DatasetConfig,), {"NAME": name})
    return configs.load_config_class(default)


# ---------------------------------------------------------------------- detect

def detect_config_class(args: argparse.Namespace, weights_path: str | None,
                        settings: dict) -> tuple[type[Config], dict]:
    """The config class for detection, and `settings` adjusted to the weight file
    (its class count and backbone, see ``mrcnn.weights.settings_to_fit``). Without
    --config, the default settings are used: those of mask_rcnn_coco.h5 and of
    ``mrcnn train`` without --config.
    """
    from mrcnn.weights import settings_to_fit, weight_file_info

    info = weight_file_info(weights_path) if weights_path else None
    if not args.config and (info is None or info.num_classes is None):
        raise UsageError("--config is required when --weights does not name a file with "
                         "class heads")
    base = configs.load_config_class(args.config) if args.config else configs.DatasetConfig
    fitted = settings_to_fit(info, base, settings) if info else {}
    if args.config and "NUM_CLASSES" in fitted:
        note(f"note: using the {fitted['NUM_CLASSES']} classes of {weights_path} "
             f"(config {base.NUM_CLASSES})")
    if "BACKBONE" in fitted:
        note(f"note: using the {fitted['BACKBONE']} backbone of {weights_path} "
             f"(config {base.BACKBONE})")
    if "NUM_CLASSES" in fitted:
        fitted["CLASS_NAMES"] = None
    return base, {**settings, **fitted}


def settings_with_precision(args: argparse.Namespace) -> dict:
    """The --set settings, and MIXED_PRECISION from --mixed-precision when given."""
    settings = configs.parse_settings(args.set)
    if getattr(args, "mixed_precision", None):
        settings["MIXED_PRECISION"] = f"mixed_{args.mixed_precision}"
    return settings


def add_precision_flag(parser: argparse.ArgumentParser) -> None:
    """--mixed-precision {float16,bfloat16}: Config.MIXED_PRECISION."""
    parser.add_argument("--mixed-precision", choices=("float16", "bfloat16"),
                        help="compute convolutions and dense layers in float16 (GPUs) or "
                             "bfloat16 (CPUs with AVX512_BF16/AMX; slower without); boxes, "
                             "losses and weights stay float32 (default: the config's "
                             "MIXED_PRECISION, float32)")


def inference_model(args: argparse.Namespace) -> tuple:
    """The inference model of detect and export: the config from --config, --set,
    --mixed-precision and --min-confidence (class count and backbone from the weight
    file unless given), the weights of --weights loaded.

    Returns:
        (MaskRCNN in inference mode, class names with the background first).
    """
    settings = settings_with_precision(args)
    if args.min_confidence is not None:
        settings["DETECTION_MIN_CONFIDENCE"] = args.min_confidence
    base, settings = detect_config_class(args, weights_file(args.weights), settings)
    config = configs.inference_config(base, **settings)
    names = configs.class_names(config, args.class_names)

    from mrcnn.model import MaskRCNN

    model = MaskRCNN("inference", config, args.logs)
    load_weights(model, args.weights)
    return model, names


def add_inference_model_flags(parser: argparse.ArgumentParser) -> None:
    """--min-confidence and --class-names, which inference_model reads (detect, export)."""
    parser.add_argument("--min-confidence", type=float, metavar="X",
                        help="minimum detection score (default: the config's "
                             "DETECTION_MIN_CONFIDENCE)")
    parser.add_argument("--class-names", metavar="a,b,c",
                        help="class names, background excluded (default: the config's "
                             "CLASS_NAMES, else 'class N')")


def run_detect(args: argparse.Namespace) -> int:
    """``mrcnn detect``: annotated PNGs and a COCO-style results.json for image files."""
    paths = collect_images(args.image)
    # Check every input before the slow model build, so that a bad file fails at once.
    for path in paths:
        _, message = read_image(path)
        if message:
            note(message)
    model, names = inference_model(args)
    results = detect_files(model, paths, args.out, names)
    print(f"{len(paths)} images, {len(results)} detections: annotated images and "
          f"results.json in {args.out}")
    return 0


# ---------------------------------------------------------------------- track

def run_track(args: argparse.Namespace) -> int:
    """``mrcnn track``: per-frame PNGs coloured by identity and a MOTS tracks file."""
    from mrcnn.video import read_video, track_video

    # Before the slow model build: bad tracker settings and unreadable frames fail at once.
    tracker = tracker_from_args(args)
    frames = read_video(args.video)
    model, names = inference_model(args)
    summary = track_video(model, frames, args.out, names, tracker)
    if not summary["embeddings"] and args.embedding_weight > 0:
        note("note: the model has no association head (ASSOCIATION_EMBEDDING_SIZE): "
             "detections were linked by mask IoU alone")
    print(f"{summary['frames']} frames, {summary['tracks']} tracks: frames and "
          f"{os.path.basename(summary['tracks_file'])} (MOTS format) in {args.out}")
    return 0


# ---------------------------------------------------------------------- export

def run_export(args: argparse.Namespace) -> int:
    """``mrcnn export``: a SavedModel that runs detection on raw images (mrcnn.export)."""
    from mrcnn.export import check_export_dir

    # Before the slow model build.
    check_export_dir(args.out)
    model, names = inference_model(args)
    print(f"SavedModel written to {model.export(args.out, names)}")
    return 0


# ---------------------------------------------------------------------- evaluate

def run_evaluate(args: argparse.Namespace) -> int:
    """``mrcnn evaluate``: COCO bbox / segm evaluation of a weight file, and the report."""
    if args.dataset and args.val_json:
        raise UsageError("give either --dataset or --val-json")
    coco = None
    if args.dataset == "shapes":
        # The validation images of `mrcnn train --dataset shapes` (same seed).
        shapes_args = argparse.Namespace(**{**vars(args), "train_count": 0,
                                            "val_count": args.count,
                                            "steps_per_epoch": None, "val_steps": None})
        train_config, _, dataset, _ = training_data(shapes_args)
        split, base = "shapes_val", type(train_config)
    elif args.dataset:
        subset = args.subset or coco_root_splits(args.year)[1]
        sources = [(args.dataset, subset, args.year, None)]
        split, base = f"{subset}{args.year}", base_config_class(args, "coco")
    elif args.val_json:
        sources = [json_source(args.val_json, args.val_images)]
        split = os.path.splitext(os.path.basename(args.val_json))[0]
        base = base_config_class(args, json_path=args.val_json)
    else:
        raise UsageError("give the data: --dataset shapes, --dataset COCO_DIR or --val-json")
    weights_file(args.weights)
    if args.dataset != "shapes":
        dataset, coco = load_coco_dataset(sources)
    settings = {"NUM_CLASSES": dataset.num_classes, "CLASS_NAMES": dataset.class_names,
                "DETECTION_MIN_CONFIDENCE": args.min_confidence,
                **configs.parse_settings(args.set)}
    config = configs.inference_config(base, **settings)

    from mrcnn.model import MaskRCNN

    model = MaskRCNN("inference", config, args.logs)
    load_weights(model, args.weights)
    types = ("bbox", "segm") if args.eval_type == "both" else (args.eval_type,)
    evaluate(model, dataset, coco, types, args.limit, args.out or args.logs,
             f"{config.NAME}_{split}")
    return 0


# ---------------------------------------------------------------------- train

def training_data(args: argparse.Namespace) -> tuple:
    """The training config, datasets and validation COCO object (None for shapes).

    `args` name the data (checked by run_train): --dataset shapes or COCO_DIR,
    else --train-json and --val-json.
    """
    settings = settings_with_precision(args)
    for flag, name in (("steps_per_epoch", "STEPS_PER_EPOCH"), ("val_steps", "VALIDATION_STEPS")):
        if getattr(args, flag) is not None:
            settings[name] = getattr(args, flag)
    if args.dataset == "shapes":
        from mrcnn.datasets.shapes import SHAPES, ShapesDataset

        config = configs.derive_config(base_config_class(args, "shapes"),
                                       **{"NUM_CLASSES": 1 + len(SHAPES),
                                          "CLASS_NAMES": ["BG", *SHAPES], **settings})
        height, width = config.IMAGE_SHAPE[:2]
        datasets = []
        for count, seed in ((args.train_count, 0), (args.val_count, 1)):
            dataset = ShapesDataset()
            dataset.load_shapes(count, int(height), int(width), seed=seed)
            dataset.prepare()
            datasets.append(dataset)
        return config, datasets[0], datasets[1], None
    if args.dataset:
        train_subsets, val_subset = coco_root_splits(args.year)
        train_sources = [(args.dataset, s, args.year, None) for s in train_subsets]
        val_sources = [(args.dataset, val_subset, args.year, None)]
        base = base_config_class(args, "coco")
    else:
        train_sources = [json_source(args.train_json, args.train_images)]
        val_sources = [json_source(args.val_json, args.val_images)]
        base = base_config_class(args, json_path=args.train_json)
    train_dataset, _ = load_coco_dataset(train_sources)
    # The validation set must use the training set's classes, in the same order.
    val_dataset, val_coco = load_coco_dataset(val_sources, category_ids(train_dataset))
    config = configs.derive_config(base, **{"NUM_CLASSES": train_dataset.num_classes,
                                            "CLASS_NAMES": train_dataset.class_names,
                                            **settings})
    return config, train_dataset, val_dataset, val_coco


def loss_settings(config: Config | type[Config], losses: Sequence[str] = (),
                  metrics: Sequence[str] = (), weights: Sequence[str] = ()) -> dict:
    """LOSS_FUNCTIONS, EXTRA_LOSSES, TRAINING_METRICS and LOSS_WEIGHTS of `config`
    updated with ``--loss NAME=SPEC``, ``--metric NAME[=SPEC]`` and ``--loss-weight NAME=X``
    (the values are checked when the Config is made: see mrcnn.losses)."""
    metric_settings = config.TRAINING_METRICS
    settings = {"LOSS_FUNCTIONS": dict(config.LOSS_FUNCTIONS),
                "EXTRA_LOSSES": dict(config.EXTRA_LOSSES),
                "TRAINING_METRICS": (dict(metric_settings) if isinstance(metric_settings, dict)
                                     else {name: name for name in metric_settings}),
                "LOSS_WEIGHTS": dict(config.LOSS_WEIGHTS)}
    for flag, items in (("--loss", losses), ("--metric", metrics), ("--loss-weight", weights)):
        for item in items:
            name, sep, spec = (part.strip() for part in item.partition("="))
            needs_value = flag != "--metric" or sep
            if not name or (needs_value and not spec):
                raise UsageError(f"{flag} {item!r}: use NAME=VALUE, e.g. "
                                 + {"--loss": "--loss mrcnn_class_loss=focal:gamma=2",
                                    "--metric": "--metric mask_iou",
                                    "--loss-weight": "--loss-weight mrcnn_mask_loss=2"}[flag])
            if flag == "--loss":
                named = LOSS_NAMES + (ASSOCIATION_LOSS,)
                setting = "LOSS_FUNCTIONS" if name in named else "EXTRA_LOSSES"
                settings[setting][name] = spec
            elif flag == "--metric":
                settings["TRAINING_METRICS"][name] = spec or name
            else:
                try:
                    settings["LOSS_WEIGHTS"][name] = float(spec)
                except ValueError:
                    raise UsageError(f"--loss-weight {item!r}: the weight must be a number") \
                        from None
    return settings


def run_train(args: argparse.Namespace) -> int:
    """``mrcnn train``: one training stage from the flags, or ``args.schedule``;
    then, with ``--evaluate``, COCO evaluation of the last checkpoint."""
    if bool(args.dataset) == bool(args.train_json and args.val_json):
        raise UsageError("give the data: --dataset shapes, --dataset COCO_DIR, or "
                         "--train-json and --val-json (one of them)")
    for flag in ("evaluate_every", "early_stop"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            raise UsageError(f"--{flag.replace('_', '-')} takes a number of epochs >= 1")
    weights_file(args.weights)
    config, train_dataset, val_dataset, val_coco = training_data(args)
    if args.loss or args.metric or args.loss_weight:
        config = configs.derive_config(type(config), **loss_settings(
            config, args.loss, args.metric, args.loss_weight))

    from mrcnn.data import Augmenter
    from mrcnn.model import MaskRCNN

    model = MaskRCNN("training", config, args.logs)
    load_weights(model, args.weights)
    stages = args.schedule or [Stage(args.epochs, args.layers)]
    todo = [stage for stage in stages if stage.epochs > model.epoch]
    if not todo:
        raise ValueError(f"the model is at epoch {model.epoch} already; --epochs is the "
                         f"epoch to reach, so pass more than {model.epoch}")
    augmentation = Augmenter(fliplr=args.fliplr) if args.fliplr > 0 else None
    learning_rate = args.lr or config.LEARNING_RATE
    for stage in todo:
        print(f"Training {stage.layers} to epoch {stage.epochs}, "
              f"learning rate {learning_rate * stage.lr_scale}")
        model.train(train_dataset, val_dataset, learning_rate * stage.lr_scale,
                    stage.epochs, stage.layers, augmentation=augmentation,
                    workers=args.workers, evaluate_every=args.evaluate_every,
                    evaluate_limit=args.limit or None, early_stop=args.early_stop,
                    monitor=args.monitor, resume=not args.no_resume)
    checkpoint = model.checkpoint_path.format(epoch=model.epoch)
    print(f"last checkpoint: {checkpoint}")
    if args.evaluate:
        eval_model = MaskRCNN("inference", configs.inference_config(
            type(config), DETECTION_MIN_CONFIDENCE=0), args.logs)
        load_weights(eval_model, checkpoint)
        evaluate(eval_model, val_dataset, val_coco, ("bbox", "segm"), args.limit,
                 model.log_dir, f"{config.NAME}_val")
    return 0


# ---------------------------------------------------------------------- parser

class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples' line breaks and shows the defaults that say something."""

    def _get_help_string(self, action):
        text = action.help or ""
        if (action.option_strings and "%(default)" not in text and action.default
                not in (None, argparse.SUPPRESS) and action.default is not False
                and action.default != []):
            text += " (default: %(default)s)"
        return text


def tracker_from_args(args: argparse.Namespace):
    """The mrcnn.track.Tracker that `mrcnn track`'s tracker flags ask for (ValueError if
    invalid)."""
    from mrcnn.track import Tracker

    return Tracker(embedding_weight=args.embedding_weight, iou_weight=args.iou_weight,
                   max_cost=args.max_cost, min_score=args.min_score, memory=args.memory,
                   class_consistent=not args.any_class)


def build_parser() -> argparse.ArgumentParser:
    """The ``mrcnn`` argument parser (subcommands detect, train, evaluate, track, export)."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("model")
    group.add_argument("--config", metavar="NAME",
                       help=f"configuration: {configs.CONFIG_FORMS}")
    group.add_argument("--weights", required=True, metavar="PATH|coco|imagenet|last|none",
                       help=f"weights to start from: a .h5 file; coco = {COCO_WEIGHTS_FILE} "
                            "in weights/ (download it from the URL the error gives); "
                            "imagenet = the ResNet-50 ImageNet file; last = the newest "
                            "checkpoint of the config's NAME in --logs; none = random")
    group.add_argument("--logs", default="logs", metavar="DIR",
                       help="folder of training runs and checkpoints")
    group.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                       help="override a config setting, e.g. --set IMAGE_MAX_DIM=512 "
                            "(repeatable)")
    group.add_argument("--debug", action="store_true",
                       help="show tracebacks and TensorFlow's log messages")

    data = argparse.ArgumentParser(add_help=False)
    group = data.add_argument_group("data")
    group.add_argument("--dataset", metavar="shapes|COCO_DIR",
                       help="'shapes' (synthetic) or an MS COCO root folder "
                            "(annotations/instances_<subset><year>.json, <subset><year>/)")
    group.add_argument("--year", default="2017", help="COCO year, with --dataset COCO_DIR")
    group.add_argument("--val-json", metavar="FILE", help="COCO-format validation annotations")
    group.add_argument("--val-images", metavar="DIR",
                       help="folder of the --val-json images (default: the JSON's folder)")
    group.add_argument("--limit", type=int, default=0,
                       help="evaluate only the first N images (0: all)")

    parser = argparse.ArgumentParser(
        prog="mrcnn", formatter_class=_Formatter,
        description="Mask R-CNN from the command line: detect objects in images, train on "
                    "synthetic shapes, MS COCO or your own COCO-format data, and evaluate "
                    "with the COCO metrics. Run 'mrcnn COMMAND --help' for each command.",
        epilog="examples:\n"
               "  mrcnn detect --config coco --weights coco --image photos/ --out out/\n"
               "  mrcnn train --weights coco --train-json train.json --val-json val.json\n"
               "  mrcnn evaluate --config coco --weights coco --dataset /data/coco\n"
               "exit status: 0 success, 1 failure (one 'error:' line), 2 usage error")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    detect = commands.add_parser(
        "detect", parents=[common], formatter_class=_Formatter,
        help="detect instances in image files",
        description="Detect instances in image files (png, jpg, jpeg, bmp, tif, tiff; any "
                    "size; grayscale, RGB, RGBA, 8 or 16 bits). Writes OUT/<name>.png with "
                    "boxes, masks and labels drawn at the image's size, and OUT/results.json "
                    "in the COCO results format (plus file_name and category_name). The "
                    "number of classes is the weight file's; without --config the default "
                    "settings are used (those of mask_rcnn_coco.h5 and of 'mrcnn train' "
                    "without --config).",
        epilog="examples:\n"
               "  mrcnn detect --config coco --weights coco --image street.jpg --out out/\n"
               "  mrcnn detect --config my_config.py:BalloonConfig --weights "
               "logs/balloon20240101T1200/mask_rcnn_balloon_0030.h5 \\\n"
               "      --image photos/ --out out/ --class-names balloon --min-confidence 0.9")
    detect.add_argument("--image", nargs="+", required=True, metavar="PATH_OR_DIR",
                        help="image files and/or folders of images")
    detect.add_argument("--out", default="out", metavar="DIR", help="output folder")
    add_inference_model_flags(detect)
    add_precision_flag(detect)
    detect.set_defaults(handler=run_detect, parser=detect)

    train = commands.add_parser(
        "train", parents=[common, data], formatter_class=_Formatter,
        help="train on shapes, MS COCO or COCO-format data",
        description="Train Mask R-CNN. With COCO-format data the classes come from the "
                    "JSON: the config gets NUM_CLASSES = 1 + its categories (without "
                    "--config, a default config named after the training JSON). Starting "
                    "from weights of another class count re-initializes the heads. "
                    "Checkpoints go to LOGS/<name><date>/.",
        epilog="examples:\n"
               "  mrcnn train --dataset shapes --weights none --epochs 2 --layers all\n"
               "  mrcnn train --weights coco --train-json data/train.json "
               "--val-json data/val.json \\\n"
               "      --epochs 30 --layers heads --evaluate\n"
               "  mrcnn train --config coco --dataset /data/coco --weights imagenet "
               "--layers all --epochs 40\n"
               "  mrcnn train --dataset shapes --weights none --layers all \\\n"
               "      --loss mrcnn_class_loss=focal:gamma=2,alpha=0.25 "
               "--loss mrcnn_mask_loss=bce_dice --metric mask_iou\n"
               "  mrcnn train --dataset shapes --weights none --loss "
               "rpn_bbox_loss=smooth_l1:beta=0.5 \\\n"
               "      --loss area_loss=my_losses.py:area_loss --loss-weight area_loss=0.1 "
               "--metric roi_accuracy --metric iou=my_losses.py:box_iou")
    group = train.add_argument_group("training data")
    group.add_argument("--train-json", metavar="FILE", help="COCO-format training annotations")
    group.add_argument("--train-images", metavar="DIR",
                       help="folder of the --train-json images (default: the JSON's folder)")
    group.add_argument("--train-count", type=int, default=500,
                       help="training images, with --dataset shapes")
    group.add_argument("--val-count", type=int, default=50,
                       help="validation images, with --dataset shapes")
    group = train.add_argument_group("schedule")
    group.add_argument("--epochs", type=int, default=10,
                       help="epoch to reach (counted from the checkpoint's epoch with "
                            "--weights last)")
    group.add_argument("--layers", default="heads",
                       help="layers to train: heads, 3+, 4+, 5+, all, or a regex of layer names")
    group.add_argument("--lr", type=float, help="learning rate (default: the config's)")
    group.add_argument("--steps-per-epoch", type=int, help="default: the config's")
    group.add_argument("--val-steps", type=int, help="default: the config's VALIDATION_STEPS")
    group.add_argument("--fliplr", type=float, default=0.5,
                       help="probability of a left-right flip (0: no augmentation)")
    group.add_argument("--workers", type=int, help="data-loading threads")
    group.add_argument("--no-resume", action="store_true",
                       help="start a new run even if the last run of this config was "
                            "interrupted (by default the same command continues it)")
    group.add_argument("--evaluate", action="store_true",
                       help="afterwards, COCO bbox and segm evaluation of the last checkpoint "
                            "on the validation set")
    group.add_argument("--evaluate-every", type=int, metavar="N",
                       help="every N epochs, COCO evaluation on the validation set (--limit "
                            "images): val_map50, val_map, val_mask_map50, val_mask_map in "
                            "the logs, best checkpoint mask_rcnn_<name>_best.h5")
    group.add_argument("--early-stop", type=int, metavar="PATIENCE",
                       help="stop when the monitored value has not improved for PATIENCE "
                            "epochs")
    group.add_argument("--monitor", metavar="NAME",
                       help="value that picks the best checkpoint and stops early "
                            "(default: val_mask_map50 with --evaluate-every, else val_loss)")
    group = train.add_argument_group("losses and monitors (see the README's 'Losses' section)")
    group.add_argument("--loss", action="append", default=[], metavar="NAME=SPEC",
                       help="a head's loss (NAME rpn_class_loss, rpn_bbox_loss, "
                            "mrcnn_class_loss, mrcnn_bbox_loss, mrcnn_mask_loss or, with "
                            "ASSOCIATION_EMBEDDING_SIZE, mrcnn_assoc_loss; SPEC "
                            "classic, focal, class_weighted, smooth_l1, dice, bce_dice, "
                            "triplet_semihard or triplet_batch_hard, "
                            "with hyper-parameters as focal:gamma=2,alpha=0.25, or "
                            "package.module:name), or a new loss term (a new NAME; SPEC "
                            "package.module:function or file.py:function whose parameters "
                            "are graph tensors) (repeatable)")
    group.add_argument("--loss-weight", action="append", default=[], metavar="NAME=X",
                       help="weight of a loss in the total, as LOSS_WEIGHTS (repeatable)")
    group.add_argument("--metric", action="append", default=[], metavar="NAME[=SPEC]",
                       help="a monitor shown with the losses but not added to them: "
                            "roi_accuracy, mask_iou, positive_fraction, or "
                            "NAME=package.module:function (repeatable)")
    add_precision_flag(train)
    train.set_defaults(handler=run_train, parser=train, schedule=None)

    evaluate_parser = commands.add_parser(
        "evaluate", parents=[common, data], formatter_class=_Formatter,
        help="COCO evaluation (bbox, segm) and report, on COCO-format data or shapes",
        description="Evaluate a weight file with the COCO metrics: prints the 12 summary "
                    "numbers and the per-class AP, and writes the detections (COCO results "
                    "JSON) and the statistics to --out. The classes come from the JSON. "
                    "Also writes a report there: the confusion matrix over classes and "
                    "background at mask IoU 0.5 (CSV, PNG), precision-recall curves per "
                    "class (PNG) and the images with most errors, ground truth beside "
                    "detections (PNG).",
        epilog="examples:\n"
               "  mrcnn evaluate --config coco --weights coco --dataset /data/coco "
               "--year 2017 --limit 500\n"
               "  mrcnn evaluate --weights logs/val20240101T1200/mask_rcnn_val_0030.h5 "
               "--val-json data/val.json")
    evaluate_parser.add_argument("--subset", help="COCO subset with --dataset "
                                 "(default: val, or minival for 2014)")
    evaluate_parser.add_argument("--count", type=int, default=50,
                                 help="images, with --dataset shapes (those that 'mrcnn "
                                      "train --dataset shapes' validates on)")
    evaluate_parser.add_argument("--eval-type", choices=("bbox", "segm", "both"),
                                 default="both")
    evaluate_parser.add_argument("--min-confidence", type=float, default=0.0, metavar="X",
                                 help="minimum detection score (COCO scoring wants all)")
    evaluate_parser.add_argument("--out", metavar="DIR",
                                 help="folder for the results JSON (default: --logs)")
    evaluate_parser.set_defaults(handler=run_evaluate, parser=evaluate_parser)

    track = commands.add_parser(
        "track", parents=[common], formatter_class=_Formatter,
        help="detect and track instances through a video",
        description="Detect instances in every frame of a video and link them into tracks "
                    "(mrcnn.track.Tracker): by the association head's embeddings and mask "
                    "IoU when the model has the head (ASSOCIATION_EMBEDDING_SIZE), else by "
                    "mask IoU alone. The video is a folder of frame images (in file-name "
                    "order) or one multi-frame file imageio reads (GIF, TIFF). Writes "
                    "OUT/<frame>.png with a colour per identity and OUT/tracks.txt in the "
                    "MOTS challenge format (frame id class height width rle; object id = "
                    "class * 1000 + track; frames from 0).",
        epilog="examples:\n"
               "  mrcnn track --config samples/tracking/train_tracking.py:TrackingConfig "
               "\\\n      --weights logs/tracking/mask_rcnn_tracking.h5 --video clip.gif "
               "--out out/\n"
               "  mrcnn track --config coco --weights coco --video frames/ --out out/ "
               "--embedding-weight 0")
    track.add_argument("--video", required=True, metavar="DIR_OR_FILE",
                       help="folder of frame images, or a multi-frame file (GIF, TIFF)")
    track.add_argument("--out", default="out", metavar="DIR", help="output folder")
    group = track.add_argument_group("tracker (see mrcnn.track)")
    group.add_argument("--embedding-weight", type=float, default=1.0, metavar="X",
                       help="weight of the embedding distance in the cost (0: mask IoU "
                            "alone)")
    group.add_argument("--iou-weight", type=float, default=1.0, metavar="X",
                       help="weight of 1 - mask IoU with the track's last mask")
    group.add_argument("--max-cost", type=float, default=0.7, metavar="X",
                       help="never link a track and a detection costing more (0..1)")
    group.add_argument("--min-score", type=float, default=0.5, metavar="X",
                       help="detections scoring less are not tracked")
    group.add_argument("--memory", type=int, default=3, metavar="FRAMES",
                       help="frames a track waits for its object to reappear")
    group.add_argument("--any-class", action="store_true",
                       help="link a track to detections of any class (default: of its own "
                            "class only), to follow objects whose class the detector mistakes "
                            "in some frames")
    add_inference_model_flags(track)
    add_precision_flag(track)
    track.set_defaults(handler=run_track, parser=track)

    export = commands.add_parser(
        "export", parents=[common], formatter_class=_Formatter,
        help="write a TensorFlow SavedModel for serving",
        description="Write a TensorFlow SavedModel that runs all of detection on one raw "
                    "uint8 image of any size (signature serving_default: image [H, W, 3] "
                    "-> rois, class_ids, scores, masks [H, W, N], class_names, and "
                    "embeddings with the association head) and loads "
                    "with TensorFlow alone, e.g. in TensorFlow Serving.",
        epilog="examples:\n"
               "  mrcnn export --config coco --weights coco --out models/mrcnn/1\n"
               "  mrcnn export --config my_config.py:BalloonConfig --weights "
               "logs/balloon20240101T1200/mask_rcnn_balloon_0030.h5 \\\n"
               "      --out models/balloon/1 --class-names balloon")
    export.add_argument("--out", required=True, metavar="DIR",
                        help="new folder for the SavedModel")
    add_inference_model_flags(export)
    export.set_defaults(handler=run_export, parser=export)
    return parser


def _one_line(err: BaseException, most: int = 6) -> str:
    """The message of `err` on one line; of a long list of problems, the first few
    and the closing hint."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if len(lines) > most:
        lines = lines[:most - 2] + [f"... ({len(lines) - most + 1} more)", lines[-1]]
    text = lines[0] if lines else type(err).__name__
    for previous, line in zip(lines, lines[1:]):
        text += (" " if previous.endswith(":") else "; ") + line
    return text


def run(args: argparse.Namespace) -> int:
    """Runs a parsed command, turning failures into exit statuses (see the module doc)."""
    if not args.debug:
        # Set before TensorFlow is first imported: its C++ warnings would drown the output.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return args.handler(args)
    except UsageError as err:
        args.parser.error(str(err))
    except (OSError, ValueError) as err:
        if args.debug:
            raise
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mrcnn`` command; returns the exit status."""
    return run(build_parser().parse_args(argv))
