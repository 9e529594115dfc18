"""Inference speed and peak memory of MaskRCNN.detect().

ResNet-50, 81 classes, 1000 proposals, 100 detections (DETECTION_MIN_CONFIDENCE 0
so that the mask head always runs on all 100), batch 1, random weights. Each
image size runs in its own process so that its peak memory is its own.

    python benchmarks/bench_inference.py            # 512 and 1024
    python benchmarks/bench_inference.py --sizes 512 --repeats 5
"""
import argparse
import resource
import subprocess
import sys
import time

import numpy as np


def measure(size: int, repeats: int) -> None:
    from mrcnn.config import Config
    from mrcnn.model import MaskRCNN

    class BenchConfig(Config):
        NAME = "bench"
        NUM_CLASSES = 81
        BACKBONE = "resnet50"
        GPU_COUNT = 1
        IMAGES_PER_GPU = 1
        IMAGE_MIN_DIM = size
        IMAGE_MAX_DIM = size
        POST_NMS_ROIS_INFERENCE = 1000
        DETECTION_MAX_INSTANCES = 100
        DETECTION_MIN_CONFIDENCE = 0.0

    model = MaskRCNN("inference", BenchConfig(), model_dir="/tmp/mrcnn_bench_logs")
    image = np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8)
    start = time.perf_counter()
    result = model.detect([image])[0]
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.detect([image])
        times.append(time.perf_counter() - start)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"inference {size}x{size}: {np.median(times):.3f} s/image (median of {repeats}, "
          f"min {min(times):.3f}), first call {first:.1f} s, peak RSS {peak_mib:.0f} MiB, "
          f"{len(result['rois'])} detections after unmolding", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--single", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.single:
        measure(args.single, args.repeats)
        return
    for size in args.sizes:
        subprocess.run([sys.executable, __file__, "--single", str(size),
                        "--repeats", str(args.repeats)], check=True)


if __name__ == "__main__":
    main()
