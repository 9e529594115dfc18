"""The main job: train Mask R-CNN on synthetic shapes, evaluate it, draw its detections.

On a 2-core CPU with no weight files, the default run trains a small FPN
Mask R-CNN (the compact backbone below, given as a callable BACKBONE, and a
narrow mask head) from random initialization on 128 x 128 shapes images, then prints
the mean VOC-style AP at IoU 0.5 (the classic ``compute_ap``) on held-out
images and writes a PNG of ground truth and captioned detections. Each epoch it
logs the COCO mAP on its validation images (val_map50, val_map, val_mask_map50,
val_mask_map) and keeps the best checkpoint by val_mask_map50, which the
held-out evaluation then uses::

    python samples/shapes/train_shapes.py                   # default run
    python samples/shapes/train_shapes.py --epochs 20       # longer
    python samples/shapes/train_shapes.py --backbone resnet50 \\
        --weights weights/mask_rcnn_coco.h5                 # classic fine-tuning
    python samples/shapes/train_shapes.py --loss mrcnn_class_loss=focal \\
        --loss mrcnn_mask_loss=bce_dice --metric mask_iou   # other losses, a monitor
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import time

import numpy as np

# Runs as a script from anywhere: make the repository importable.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from mrcnn import visualize  # noqa: E402  (first: it quiets TensorFlow's C++ log)
from keras import layers, utils  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from mrcnn.boxes import extract_bboxes  # noqa: E402
from mrcnn.callbacks import best_checkpoint_path, best_record  # noqa: E402
from mrcnn.cli import loss_settings  # noqa: E402
from mrcnn.data import Augmenter, load_image_gt  # noqa: E402
from mrcnn.graph.layers import BatchNorm  # noqa: E402
from mrcnn.metrics import compute_ap  # noqa: E402
from mrcnn.model import MaskRCNN  # noqa: E402
from mrcnn.weights import HEAD_LAYERS  # noqa: E402
from mrcnn.datasets.shapes import ShapesConfig, ShapesDataset  # noqa: E402


BACKBONE_STRIDES = [4, 8, 16, 32, 64]
BACKBONE_WIDTHS = (16, 32, 64, 128, 256)  # C1..C5


def compact_backbone(input_image, stage5: bool = True, train_bn=None) -> list:
    """A small conv-BN-ReLU network for simple images: C1..C5 at strides 2..32.

    Args:
        input_image: [B, H, W, 3] molded images.
        stage5: build C5 (always needed by the FPN).
        train_bn: BatchNorm mode (see mrcnn.graph.layers.BatchNorm).

    Returns:
        [C1, C2, C3, C4, C5] with BACKBONE_WIDTHS channels.
    """
    outputs, x = [], input_image
    for level, width in enumerate(BACKBONE_WIDTHS, start=1):
        for i, stride in enumerate((2, 1)):
            x = layers.Conv2D(width, 3, strides=stride, padding="same",
                              name=f"compact{level}_conv{i}")(x)
            x = BatchNorm(train_bn, name=f"compact{level}_bn{i}")(x)
            x = layers.Activation("relu")(x)
        outputs.append(x)
    return outputs


def compact_backbone_shapes(image_shape) -> np.ndarray:
    """[(height, width)] of P2..P6 for compact_backbone."""
    return np.array([[-(-image_shape[0] // s), -(-image_shape[1] // s)]
                     for s in BACKBONE_STRIDES])


class FastShapesConfig(ShapesConfig):
    """Shapes on a CPU from scratch: a compact backbone, batch statistics, small heads."""
    BACKBONE = compact_backbone
    COMPUTE_BACKBONE_SHAPE = compact_backbone_shapes
    BACKBONE_STRIDES = BACKBONE_STRIDES
    MASK_HEAD_CHANNELS = 64
    MASK_POOL_SIZE = 7
    MASK_SHAPE = [14, 14]
    # From random weights the moving statistics are meaningless until trained:
    # batch statistics in training, moving ones in inference.
    TRAIN_BN = None
    IMAGES_PER_GPU = 8
    TOP_DOWN_PYRAMID_SIZE = 64
    FPN_CLASSIF_FC_LAYERS_SIZE = 256
    PRE_NMS_LIMIT = 1000
    POST_NMS_ROIS_TRAINING = 500
    POST_NMS_ROIS_INFERENCE = 300
    RPN_TRAIN_ANCHORS_PER_IMAGE = 128
    TRAIN_ROIS_PER_IMAGE = 32
    MAX_GT_INSTANCES = 8
    DETECTION_MAX_INSTANCES = 20
    # Low-scoring detections can only add to the AP (they rank last).
    DETECTION_MIN_CONFIDENCE = 0.1
    OPTIMIZER = "adam"
    LEARNING_RATE = 0.001
    STEPS_PER_EPOCH = 50
    VALIDATION_STEPS = 2


def inference_config(config_class):
    """The same settings, one image at a time."""
    class InferenceConfig(config_class):
        GPU_COUNT = 1
        IMAGES_PER_GPU = 1
    return InferenceConfig()


def evaluate(model: MaskRCNN, dataset: ShapesDataset, config) -> float:
    """Mean of the per-image VOC AP at IoU 0.5 (classic compute_ap)."""
    aps = []
    for image_id in dataset.image_ids:
        image, _, gt_class_ids, gt_boxes, gt_masks = load_image_gt(
            dataset, config, image_id, use_mini_mask=False)
        result = model.detect([image])[0]
        ap, _, _, _ = compute_ap(gt_boxes, gt_class_ids, gt_masks, result["rois"],
                                 result["class_ids"], result["scores"], result["masks"])
        aps.append(ap)
    return float(np.mean(aps))


def draw(model: MaskRCNN, dataset: ShapesDataset, image_ids, path: str,
         min_score: float = 0.5) -> None:
    """A few images in one PNG: ground truth on top, below it the detections scoring
    at least `min_score`, each labelled with its class name (and score)."""
    images = [dataset.load_image(i) for i in image_ids]
    results = model.detect(images)
    fig = Figure(figsize=(3 * len(images), 6.4), dpi=100)
    axes = fig.subplots(2, len(images), squeeze=False)
    for column, (image_id, image, result) in enumerate(zip(image_ids, images, results)):
        gt_masks, gt_class_ids = dataset.load_mask(image_id)
        confident = np.where(result["scores"] >= min_score)[0]
        # display_instances prints a line for an image without instances.
        with contextlib.redirect_stdout(io.StringIO()):
            visualize.display_instances(image, extract_bboxes(gt_masks), gt_masks,
                                        gt_class_ids, dataset.class_names,
                                        ax=axes[0, column])
            visualize.display_instances(image, result["rois"][confident],
                                        result["masks"][:, :, confident],
                                        result["class_ids"][confident], dataset.class_names,
                                        result["scores"][confident], ax=axes[1, column])
        axes[0, column].set_title(f"image {image_id}: ground truth")
        axes[1, column].set_title("detections")
    fig.tight_layout()
    fig.savefig(path)


def train_schedule(model: MaskRCNN, train_set, val_set, learning_rate: float, epochs: int,
                   **train_options) -> None:
    """All layers to `epochs`: the classic schedule's shape, the first 3/4 of the epochs
    at `learning_rate` and the rest at a tenth of it (which also lets BatchNorm's
    statistics settle); the second stage is left out when early stopping ended the first.

    Args:
        train_options: more keywords of ``MaskRCNN.train`` (augmentation, evaluation).
    """
    first_stage = max(1, epochs * 3 // 4)
    model.train(train_set, val_set, learning_rate, epochs=first_stage, layers="all",
                **train_options)
    if epochs > model.epoch == first_stage:  # not stopped early
        model.train(train_set, val_set, learning_rate / 10, epochs=epochs, layers="all",
                    **train_options)


def main(argv=None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10, help="training epochs (default 10)")
    parser.add_argument("--steps", type=int, default=FastShapesConfig.STEPS_PER_EPOCH,
                        help="steps per epoch")
    parser.add_argument("--lr", type=float, default=FastShapesConfig.LEARNING_RATE,
                        help="learning rate of the first 3/4 of the epochs (then a tenth)")
    parser.add_argument("--train-count", type=int, default=1000)
    parser.add_argument("--val-count", type=int, default=50)
    parser.add_argument("--backbone", default="compact",
                        choices=["compact", "resnet18", "resnet34", "resnet50", "resnet101"])
    parser.add_argument("--weights", help="start from this .h5 file (heads re-initialized)")
    parser.add_argument("--logs", default="logs", help="log and checkpoint directory")
    parser.add_argument("--out", default="shapes_detections.png", help="PNG to write")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the datasets and of the initial weights")
    parser.add_argument("--loss", action="append", default=[], metavar="NAME=SPEC",
                        help="a head's loss, as 'mrcnn train --loss', e.g. "
                             "mrcnn_class_loss=focal:gamma=2 (repeatable; default classic)")
    parser.add_argument("--metric", action="append", default=[], metavar="NAME",
                        help="a monitor shown during training: roi_accuracy, mask_iou, "
                             "positive_fraction (repeatable)")
    parser.add_argument("--evaluate-every", type=int, default=1,
                        help="COCO mAP on the validation images every N epochs, and the "
                             "best checkpoint by mask mAP@0.5 (0: neither)")
    parser.add_argument("--early-stop", type=int, metavar="PATIENCE",
                        help="stop when the mask mAP@0.5 has not improved for PATIENCE epochs")
    args = parser.parse_args(argv)
    # The same seed gives the same initial weights, so that runs with other losses compare.
    utils.set_random_seed(args.seed)

    class Config(FastShapesConfig):
        STEPS_PER_EPOCH = args.steps
        if args.backbone != "compact":
            BACKBONE = args.backbone
    for name, value in loss_settings(FastShapesConfig, args.loss, args.metric).items():
        setattr(Config, name, value)
    config = Config()
    if args.loss:
        print(f"losses: {config.LOSS_FUNCTIONS} (the others classic)")

    train_set, val_set, test_set = ShapesDataset(), ShapesDataset(), ShapesDataset()
    for dataset, count, seed in ((train_set, args.train_count, args.seed),
                                 (val_set, args.val_count, args.seed + 1),
                                 (test_set, args.val_count, args.seed + 2)):
        dataset.load_shapes(count, config.IMAGE_SHAPE[0], config.IMAGE_SHAPE[1], seed=seed)
        dataset.prepare()

    start = time.time()
    model = MaskRCNN("training", config, args.logs)
    if args.weights:
        model.load_weights(args.weights, by_name=True, exclude=HEAD_LAYERS)
    # val_map50, val_map, val_mask_map50, val_mask_map each epoch; the best by val_mask_map50.
    train_schedule(model, train_set, val_set, args.lr, args.epochs,
                   augmentation=Augmenter(fliplr=0.5, flipud=0.5),
                   evaluate_every=args.evaluate_every or None, evaluate_limit=args.val_count,
                   early_stop=args.early_stop)
    trained = time.time() - start

    detector = MaskRCNN("inference", inference_config(Config), args.logs)
    record = best_record(model)
    detector.load_weights(best_checkpoint_path(model) if record else model.find_last())
    if record:
        print(f"best checkpoint: epoch {record['epoch']}, {record['monitor']} "
              f"{record['value']:.3f} ({best_checkpoint_path(model)})")
    mean_ap = evaluate(detector, test_set, detector.config)
    draw(detector, test_set, test_set.image_ids[:4], args.out)
    print(f"trained {args.epochs} epochs in {trained / 60:.1f} min; "
          f"mAP@0.5 on {len(test_set.image_ids)} held-out images: {mean_ap:.3f}; "
          f"detections drawn to {args.out}")
    return mean_ap


if __name__ == "__main__":
    main()
