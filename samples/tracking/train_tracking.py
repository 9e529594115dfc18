"""Tracking moving shapes: Mask R-CNN with an association head, from scratch on a CPU.

Trains the compact Mask R-CNN of the shapes sample, plus the association-embedding head
(ASSOCIATION_EMBEDDING_SIZE, the default batch-hard triplet loss over runs of
SEQUENCE_FRAMES consecutive frames; the head sees the ROI's pixels next to its features,
and does not train the features the detector shares), on synthetic moving-shapes videos
(mrcnn.datasets.moving_shapes: shapes that move fast, turn, cross and hide each other;
each keeps its colour and size). Then, on held-out videos, it detects every frame once and
tracks the same detections twice with mrcnn.track.Tracker: with the embedding term, and
with mask IoU alone (the baseline, embedding_weight 0). Each tracker's settings (gate
max_cost, the detection score a track needs, whether tracks keep their class; for the
embedding tracker also embedding_weight) are chosen by IDF1 on validation videos; the
scores (TrackEval: IDF1, ID switches, HOTA, MOTSA, sMOTSA) are those of the test videos::

    python samples/tracking/train_tracking.py                  # train, then evaluate
    python samples/tracking/train_tracking.py --epochs 12      # shorter (a weaker detector)
    python samples/tracking/train_tracking.py --weights logs/tracking.../mask_rcnn_tracking_0032.h5
                                                               # evaluate a trained file
    mrcnn track --config samples/tracking/train_tracking.py:TrackingConfig \\
        --weights logs/tracking.../mask_rcnn_tracking_0032.h5 --video clip.gif --out out/

It prints wall-clock and CPU (user + system) times of training and evaluation.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import resource
import sys
import time

import numpy as np

# Runs as a script from anywhere: make the repository importable.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from mrcnn import visualize  # noqa: E402  (first: it quiets TensorFlow's C++ log)
from keras import utils  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from mrcnn.boxes import extract_bboxes  # noqa: E402
from mrcnn.cli import loss_settings  # noqa: E402
from mrcnn.datasets.moving_shapes import MovingShapesDataset  # noqa: E402
from mrcnn.model import MaskRCNN  # noqa: E402
from mrcnn.mots import disjoint_detections  # noqa: E402
from mrcnn.track import UNTRACKED, Tracker  # noqa: E402
from mrcnn.track_metrics import evaluate_tracks  # noqa: E402
from mrcnn.config_presets import inference_config  # noqa: E402
from samples.shapes.train_shapes import FastShapesConfig, train_schedule  # noqa: E402

# The settings tried on the validation videos: gates for both trackers, and the embedding
# term's weight (iou_weight 1) for the embedding tracker.
MAX_COSTS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
EMBEDDING_WEIGHTS = (0.5, 1.0, 2.0, 4.0)
# ... and the detection score a track needs (the detector keeps scores >= 0.1).
MIN_SCORES = (0.2, 0.35, 0.5)
# ... and whether a track links only detections of its class (False: it follows an object
# through frames where the detector mistakes its class).
CLASS_CONSISTENT = (True, False)
# Scores printed, in this order.
SHOWN = ("IDF1", "IDSW", "HOTA", "AssA", "DetA", "MOTSA", "sMOTSA", "FP", "FN")


class TrackingConfig(FastShapesConfig):
    """The CPU shapes config with the association head, trained on runs of 2 frames."""
    NAME = "tracking"
    ASSOCIATION_EMBEDDING_SIZE = 32
    # A batch of 8 = four runs of 2 consecutive frames: each object appears twice, so the
    # triplet loss has positives, and four videos keep the batch statistics varied.
    SEQUENCE_FRAMES = 2
    # Trained jointly, the association loss left the detector missing 2.3 times as many
    # objects in this budget: the head learns on the features the detection losses make.
    ASSOCIATION_TRAINS_FEATURES = False
    # ... and also sees the ROI's pixels: the objects' colours tell them apart.
    ASSOCIATION_SEES_IMAGE = True
    IMAGES_PER_GPU = 8
    DETECTION_MIN_CONFIDENCE = 0.5
    STEPS_PER_EPOCH = 50
    VALIDATION_STEPS = 2


def cpu_seconds() -> float:
    """User + system CPU time of this process so far, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def videos(count: int, frames: int, size: int, seed: int) -> MovingShapesDataset:
    dataset = MovingShapesDataset()
    dataset.load_videos(count, frames, size, size, seed=seed)
    dataset.prepare()
    return dataset


def detect_videos(model: MaskRCNN, dataset: MovingShapesDataset) -> dict:
    """``{video: [detect() result per frame]}``, masks made disjoint as MOTS wants and
    duplicates dropped (mrcnn.mots.disjoint_detections)."""
    detections = {}
    for video in dataset.video_ids():
        results = []
        for image_id in dataset.video_image_ids(video):
            results.append(disjoint_detections(model.detect([dataset.load_image(image_id)])[0]))
        detections[video] = results
    return detections


def track(detections: dict, tracker: Tracker) -> dict:
    """``{video: [objects of each frame]}``: the tracker run on each video's detections."""
    tracks = {}
    for video, results in detections.items():
        tracker.reset()
        tracks[str(video)] = [{"ids": tracker.update(r), "class_ids": r["class_ids"],
                               "masks": r["masks"]} for r in results]
    return tracks


def ground_truth(dataset: MovingShapesDataset) -> dict:
    return {str(video): [dataset.frame_ground_truth(i) for i in dataset.video_image_ids(video)]
            for video in dataset.video_ids()}


def best_settings(detections: dict, truth: dict, embedding_weights: tuple) -> dict:
    """The Tracker settings (embedding_weight of `embedding_weights`, max_cost of
    MAX_COSTS, min_score of MIN_SCORES, class_consistent of CLASS_CONSISTENT) with the
    highest IDF1 on `truth`'s videos."""
    grid = [{"embedding_weight": w, "max_cost": c, "min_score": m, "class_consistent": k}
            for w in embedding_weights for c in MAX_COSTS for m in MIN_SCORES
            for k in CLASS_CONSISTENT]
    idf1 = [evaluate_tracks(truth, track(detections, Tracker(**settings)))["IDF1"]
            for settings in grid]
    return grid[int(np.argmax(idf1))]


def most_different(tracked: dict) -> int:
    """The video where the trackers started the most different numbers of tracks (the
    first such one): where they disagree, to draw."""
    def track_count(frames):
        return len({i for objects in frames for i in objects["ids"] if i != UNTRACKED})
    videos_ = list(next(iter(tracked.values())))
    spread = [np.ptp([track_count(tracks[v]) for tracks in tracked.values()]) for v in videos_]
    return int(videos_[int(np.argmax(spread))])


def draw(dataset: MovingShapesDataset, video: int, tracked: dict, path: str,
         frames: int = 8) -> None:
    """One row per tracker: the first frames of a video, a colour per track id."""
    image_ids = dataset.video_image_ids(video)[:frames]
    fig = Figure(figsize=(2 * len(image_ids), 2.2 * len(tracked)), dpi=100)
    axes = fig.subplots(len(tracked), len(image_ids), squeeze=False)
    for row, (name, tracks) in enumerate(tracked.items()):
        for column, image_id in enumerate(image_ids):
            objects = tracks[str(video)][column]
            keep = objects["ids"] != UNTRACKED
            ids = objects["ids"][keep]
            masks = objects["masks"][..., keep]
            boxes = extract_bboxes(masks)  # places the captions; not drawn
            with contextlib.redirect_stdout(io.StringIO()):
                visualize.display_instances(
                    dataset.load_image(image_id), boxes, masks, objects["class_ids"][keep],
                    dataset.class_names, ax=axes[row, column], show_bbox=False,
                    colors=visualize.identity_colors(ids), captions=[f"#{i}" for i in ids])
            axes[row, column].set_title(f"{name}, frame {column}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=32, help="training epochs")
    parser.add_argument("--steps", type=int, default=TrackingConfig.STEPS_PER_EPOCH,
                        help="steps per epoch")
    parser.add_argument("--lr", type=float, default=TrackingConfig.LEARNING_RATE,
                        help="learning rate of the first 3/4 of the epochs (then a tenth)")
    parser.add_argument("--train-videos", type=int, default=200)
    parser.add_argument("--frames", type=int, default=8, help="frames per training video")
    parser.add_argument("--val-videos", type=int, default=8)
    parser.add_argument("--test-videos", type=int, default=20)
    parser.add_argument("--test-frames", type=int, default=12,
                        help="frames per validation and test video")
    parser.add_argument("--embedding-size", type=int,
                        default=TrackingConfig.ASSOCIATION_EMBEDDING_SIZE,
                        help="ASSOCIATION_EMBEDDING_SIZE (0: no head, IoU tracking only)")
    parser.add_argument("--sequence-frames", type=int, default=TrackingConfig.SEQUENCE_FRAMES,
                        help="SEQUENCE_FRAMES: consecutive frames per run in a batch")
    parser.add_argument("--loss", action="append", default=[], metavar="NAME=SPEC",
                        help="a loss, as 'mrcnn train --loss', e.g. "
                             "mrcnn_assoc_loss=triplet_semihard:margin=0.5 (repeatable)")
    parser.add_argument("--loss-weight", action="append", default=[], metavar="NAME=X",
                        help="a loss's weight, e.g. mrcnn_assoc_loss=2 (repeatable)")
    parser.add_argument("--weights", help="evaluate this .h5 file instead of training")
    parser.add_argument("--logs", default="logs", help="log and checkpoint directory")
    parser.add_argument("--out", default="tracking.png", help="PNG of one tracked test video")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the datasets and of the initial weights")
    args = parser.parse_args(argv)
    utils.set_random_seed(args.seed)

    class Config(TrackingConfig):
        STEPS_PER_EPOCH = args.steps
        ASSOCIATION_EMBEDDING_SIZE = args.embedding_size or None
        SEQUENCE_FRAMES = args.sequence_frames if args.embedding_size else 1
    for name, value in loss_settings(Config, args.loss, weights=args.loss_weight).items():
        setattr(Config, name, value)
    config = Config()
    size = config.IMAGE_SHAPE[0]
    train_set = videos(args.train_videos, args.frames, size, args.seed)
    val_set = videos(args.val_videos, args.test_frames, size, args.seed + 1)
    test_set = videos(args.test_videos, args.test_frames, size, args.seed + 2)

    wall, cpu = time.time(), cpu_seconds()
    if args.weights:
        weights = args.weights
    else:
        model = MaskRCNN("training", config, args.logs)
        train_schedule(model, train_set, val_set, args.lr, args.epochs)
        weights = model.find_last()
    train_wall, train_cpu = time.time() - wall, cpu_seconds() - cpu

    wall, cpu = time.time(), cpu_seconds()
    detector = MaskRCNN("inference", inference_config(Config, DETECTION_MIN_CONFIDENCE=0.1),
                        args.logs)
    detector.load_weights(weights)
    val_detections, test_detections = detect_videos(detector, val_set), detect_videos(
        detector, test_set)
    has_embeddings = "embeddings" in test_detections[test_set.video_ids()[0]][0]
    val_truth, test_truth = ground_truth(val_set), ground_truth(test_set)
    trackers = {"IoU only": (0.0,)}
    if has_embeddings:
        trackers["embedding"] = EMBEDDING_WEIGHTS
    scores, tracked = {}, {}
    for name, embedding_weights in trackers.items():
        settings = best_settings(val_detections, val_truth, embedding_weights)
        tracked[name] = track(test_detections, Tracker(**settings))
        scores[name] = {**evaluate_tracks(test_truth, tracked[name]), **settings}
    eval_wall, eval_cpu = time.time() - wall, cpu_seconds() - cpu
    draw(test_set, most_different(tracked), tracked, args.out)

    objects = sum(len(f["ids"]) for frames in test_truth.values() for f in frames)
    print(f"\n{len(test_truth)} held-out videos x {args.test_frames} frames, {objects} "
          f"objects; both trackers link the same detections ({weights})")
    print(f"{'tracker':<12}{'weight':>7}{'gate':>6}{'score':>6}{'class':>6}"
          + "".join(f"{name:>8}" for name in SHOWN))
    for name, s in scores.items():
        print(f"{name:<12}{s['embedding_weight']:>7.1f}{s['max_cost']:>6.2f}"
              f"{s['min_score']:>6.2f}{'same' if s['class_consistent'] else 'any':>6}" + "".join(
            f"{s[k]:>8d}" if isinstance(s[k], int) else f"{s[k]:>8.3f}" for k in SHOWN))
    if not has_embeddings:
        print("the model has no association head: only the IoU tracker ran")
    print(f"training: {train_wall / 60:.1f} min wall, {train_cpu / 60:.1f} min CPU; "
          f"evaluation: {eval_wall / 60:.1f} min wall, {eval_cpu / 60:.1f} min CPU; "
          f"tracks drawn to {args.out}")
    return scores


if __name__ == "__main__":
    main()
