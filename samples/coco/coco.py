"""Mask R-CNN on MS COCO: the classic sample's command line, on top of the `mrcnn` command.

Train (the classic schedule: heads to epoch 40, ResNet stage 4 and up to 120,
everything to 160 at a tenth of the learning rate, random left-right flips)::

    python samples/coco/coco.py train --dataset /data/coco --year 2017 --model imagenet
    python samples/coco/coco.py train --dataset /data/coco --year 2017 --model coco
    python samples/coco/coco.py train --dataset /data/coco --year 2017 --model last

Evaluate (bbox and segm, on the first --limit validation images, all detections
scored: DETECTION_MIN_CONFIDENCE 0, one image per batch)::

    python samples/coco/coco.py evaluate --dataset /data/coco --year 2017 --model coco

Data and weights are read from disk only. The COCO root holds
``annotations/instances_<subset><year>.json`` and ``<subset><year>/`` images
(2014: train2014 + valminusminival2014 for training, minival2014 for
validation; 2017: train2017 and val2017); a missing file is reported with the
archive to download from cocodataset.org and where to unzip it. ``--model coco``
reads weights/mask_rcnn_coco.h5 (the error says where to download it).

The equivalent ``mrcnn`` commands: ``mrcnn train --config coco --dataset DIR
--weights MODEL`` (one stage) and ``mrcnn evaluate --config coco --dataset DIR
--weights MODEL``. The classic module-level names (CocoConfig, CocoDataset,
build_coco_results, evaluate_coco) are importable from here as before.
"""
import argparse
import os
import sys

ROOT_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Run from a checkout without installing: the repository root holds the package.
sys.path.insert(0, ROOT_DIR)

from mrcnn import cli  # noqa: E402
from mrcnn.coco import CocoDataset, build_coco_results, evaluate_coco  # noqa: E402
from mrcnn.config_presets import COCO_CLASS_NAMES, CocoConfig  # noqa: E402

# The classic sample's module-level names, for code that does `import coco`.
__all__ = ["CocoConfig", "CocoDataset", "COCO_CLASS_NAMES", "build_coco_results",
           "evaluate_coco", "SCHEDULE", "main"]

DEFAULT_LOGS_DIR = os.path.join(ROOT_DIR, "logs")
# The classic schedule; epochs are cumulative, so a resumed run skips the stages done.
SCHEDULE = (cli.Stage(epochs=40, layers="heads"),
            cli.Stage(epochs=120, layers="4+"),
            cli.Stage(epochs=160, layers="all", lr_scale=0.1))


def build_parser() -> argparse.ArgumentParser:
    """The classic flags of samples/coco/coco.py."""
    parser = argparse.ArgumentParser(
        description="Train Mask R-CNN on MS COCO, or evaluate it.",
        epilog="example: python samples/coco/coco.py evaluate --dataset /data/coco "
               "--year 2017 --model coco --limit 500")
    parser.add_argument("command", choices=("train", "evaluate"))
    parser.add_argument("--dataset", required=True, metavar="/path/to/coco/",
                        help="root of the MS COCO dataset")
    parser.add_argument("--year", default="2017", metavar="<year>",
                        help="2014 or 2017 (default: 2017)")
    parser.add_argument("--model", required=True, metavar="PATH|coco|imagenet|last",
                        help="weights to start from or to evaluate")
    parser.add_argument("--logs", default=DEFAULT_LOGS_DIR, metavar="/path/to/logs/",
                        help="logs and checkpoints folder (default: logs/)")
    parser.add_argument("--limit", type=int, default=500, metavar="<image count>",
                        help="images to evaluate (default: 500; 0: all)")
    parser.add_argument("--download", default=False, metavar="<True|False>",
                        help="ignored: nothing is downloaded; missing files are reported "
                             "with what to download")
    return parser


def to_cli_args(args: argparse.Namespace) -> argparse.Namespace:
    """Translates the classic flags into parsed `mrcnn train` / `mrcnn evaluate` arguments."""
    argv = [args.command, "--config", "coco", "--dataset", args.dataset, "--year",
            str(args.year), "--weights", args.model, "--logs", args.logs,
            "--limit", str(args.limit)]
    if args.command == "evaluate":
        argv += ["--min-confidence", "0"]
    cli_args = cli.build_parser().parse_args(argv)
    if args.command == "train":
        cli_args.schedule = list(SCHEDULE)
    return cli_args


def main(argv=None) -> int:
    """Runs the classic command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.download:
        cli.note("note: --download is ignored: mrcnn reads COCO from disk only")
    return cli.run(to_cli_args(args))


if __name__ == "__main__":
    sys.exit(main())
