"""Inference speed and peak memory of MaskRCNN.detect(), and what lower precision changes.

ResNet-50, 81 classes, 1000 proposals, 100 detections (DETECTION_MIN_CONFIDENCE 0
so that the mask head always runs on all 100), batch 1, random weights. Each
image size runs in its own process so that its peak memory is its own.

    python benchmarks/bench_inference.py            # 512 and 1024
    python benchmarks/bench_inference.py --sizes 512 --repeats 5
    python benchmarks/bench_inference.py --mixed-precision bfloat16
    python benchmarks/bench_inference.py --sizes 1024 --mixed-precision bfloat16 \\
        --weights logs/shapes.../mask_rcnn_shapes_0010.h5 --shapes-config --compare

--compare also runs the float32 model on the same weights and the same synthetic
shapes images and prints the fraction of its detections that the low-precision
model matches (same class, box IoU >= 0.9) and their mean mask IoU. Use trained
weights (--weights; NUM_CLASSES and the ResNet depth are read from the file): with
random ones the objectness is near flat and any rounding reorders the proposals.
"""
import argparse
import os
import resource
import subprocess
import sys
import time

import numpy as np

# The repository root, for samples.shapes (the shapes main job's config).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cpu_info import cpu_summary  # noqa: E402

MATCH_IOU = 0.9


def bench_config(size: int, precision, weights, shapes_config: bool = False):
    from mrcnn.config import Config
    from mrcnn.weights import weight_file_info
    from samples.shapes.train_shapes import FastShapesConfig

    info = weight_file_info(weights) if weights else None
    base = FastShapesConfig if shapes_config else Config

    class BenchConfig(base):
        NAME = "bench"
        NUM_CLASSES = (info and info.num_classes) or 81
        BACKBONE = base.BACKBONE if shapes_config else (info and info.backbone) or "resnet50"
        GPU_COUNT = 1
        IMAGES_PER_GPU = 1
        IMAGE_MIN_DIM = size
        IMAGE_MAX_DIM = size
        POST_NMS_ROIS_INFERENCE = 1000
        DETECTION_MAX_INSTANCES = 100
        DETECTION_MIN_CONFIDENCE = 0.0 if not weights else 0.5
        MIXED_PRECISION = precision
    return BenchConfig()


def build(size: int, precision, weights, shapes_config: bool = False):
    from mrcnn.model import MaskRCNN

    model = MaskRCNN("inference", bench_config(size, precision, weights, shapes_config),
                     model_dir="/tmp/mrcnn_bench_logs")
    if weights:
        model.load_weights(weights, by_name=True)
    return model


def agreement(reference: list, other: list) -> tuple:
    """(matched fraction of the reference detections, mean mask IoU of the matched)."""
    from mrcnn.boxes import compute_overlaps
    from mrcnn.metrics import compute_overlaps_masks

    matched, total, mask_ious = 0, 0, []
    for ref, low in zip(reference, other):
        total += len(ref["class_ids"])
        if not len(ref["class_ids"]) or not len(low["class_ids"]):
            continue
        box_iou = compute_overlaps(ref["rois"], low["rois"])
        mask_iou = compute_overlaps_masks(ref["masks"], low["masks"])
        same_class = ref["class_ids"][:, None] == low["class_ids"][None, :]
        box_iou = np.where(same_class, box_iou, 0)
        for i in range(len(ref["class_ids"])):
            j = int(np.argmax(box_iou[i]))
            if box_iou[i, j] >= MATCH_IOU:
                matched += 1
                mask_ious.append(mask_iou[i, j])
                box_iou[:, j] = 0  # each detection matches once
    return matched / max(total, 1), float(np.mean(mask_ious)) if mask_ious else float("nan"), total


def timed(model, images, repeats: int) -> tuple:
    start = time.perf_counter()
    results = [model.detect([image])[0] for image in images[:1]]
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.detect([images[0]])
        times.append(time.perf_counter() - start)
    return first, times, results


def measure(size: int, repeats: int, precision, weights, compare: bool,
            shapes_config: bool = False, image_count: int = 8) -> None:
    name = precision or "float32"
    model = build(size, precision, weights, shapes_config)
    if weights:
        from mrcnn.datasets.shapes import ShapesDataset

        dataset = ShapesDataset()
        dataset.load_shapes(image_count, size, size, seed=7)
        dataset.prepare()
        images = [dataset.load_image(i) for i in dataset.image_ids]
    else:
        images = [np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8)]
    first, times, results = timed(model, images, repeats)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"inference {size}x{size} {name}: {np.median(times):.3f} s/image (median of "
          f"{repeats}, min {min(times):.3f}), first call {first:.1f} s, peak RSS "
          f"{peak_mib:.0f} MiB, {len(results[0]['rois'])} detections after unmolding",
          flush=True)
    if compare and precision:
        low = [model.detect([image])[0] for image in images]
        reference_model = build(size, None, weights, shapes_config)
        _, ref_times, _ = timed(reference_model, images, repeats)
        reference = [reference_model.detect([image])[0] for image in images]
        fraction, mask_iou, total = agreement(reference, low)
        print(f"float32 on the same weights: {np.median(ref_times):.3f} s/image, so {name} "
              f"takes {np.median(times) / np.median(ref_times):.2f}x; of {total} float32 "
              f"detections on {len(images)} images {fraction:.1%} matched (class, box IoU >= "
              f"{MATCH_IOU}), mean mask IoU {mask_iou:.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mixed-precision", choices=("float16", "bfloat16"),
                        help="Config.MIXED_PRECISION (default float32)")
    parser.add_argument("--weights", metavar="PATH", help="a trained classic-layout .h5 file")
    parser.add_argument("--compare", action="store_true",
                        help="also run float32 and compare the detections")
    parser.add_argument("--shapes-config", action="store_true",
                        help="the shapes main job's settings (samples/shapes "
                             "FastShapesConfig: compact backbone, small heads) for its "
                             "weights")
    parser.add_argument("--images", type=int, default=8,
                        help="synthetic shapes images compared with --weights")
    parser.add_argument("--single", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    precision = f"mixed_{args.mixed_precision}" if args.mixed_precision else None
    if args.single:
        measure(args.single, args.repeats, precision, args.weights, args.compare,
                args.shapes_config, args.images)
        return
    print(cpu_summary(), flush=True)
    for size in args.sizes:
        subprocess.run([sys.executable, __file__, *sys.argv[1:], "--single", str(size)],
                       check=True)


if __name__ == "__main__":
    main()
