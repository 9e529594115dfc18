"""Training speed of MaskRCNN, and the input pipeline's own speed.

ResNet-50, 81 classes, 512 x 512 images, batch 2, every layer trained, the
classic defaults otherwise (2000 training proposals, 200 ROIs per image, 28 x 28
masks); synthetic shapes images as ground truth, random initial weights.

    python benchmarks/bench_train.py                 # 10 timed steps
    python benchmarks/bench_train.py --steps 20 --size 512 --batch 2
    python benchmarks/bench_train.py --mixed-precision bfloat16
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cpu_info import cpu_summary  # noqa: E402
from mrcnn.config import Config  # noqa: E402
from mrcnn.data import DataGenerator  # noqa: E402
from mrcnn.model import LAYER_PRESETS, MaskRCNN  # noqa: E402
from mrcnn.datasets.shapes import ShapesDataset  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--mixed-precision", choices=("float16", "bfloat16"),
                        help="Config.MIXED_PRECISION (default float32)")
    args = parser.parse_args()
    print(cpu_summary())
    precision = f"mixed_{args.mixed_precision}" if args.mixed_precision else None

    class BenchConfig(Config):
        NAME = "bench"
        NUM_CLASSES = 81
        BACKBONE = args.backbone
        GPU_COUNT = 1
        IMAGES_PER_GPU = args.batch
        IMAGE_MIN_DIM = args.size
        IMAGE_MAX_DIM = args.size
        MIXED_PRECISION = precision
    config = BenchConfig()

    dataset = ShapesDataset()
    dataset.load_shapes(4 * args.batch, args.size, args.size, seed=0)
    dataset.prepare()
    batches = DataGenerator(dataset, config, seed=0)

    start = time.perf_counter()
    count = len(batches)
    data = [batches[i % count][0] for i in range(2 * count)]
    pipeline_rate = len(data) * args.batch / (time.perf_counter() - start)

    model = MaskRCNN("training", config, model_dir="/tmp/mrcnn_bench_logs")
    model.set_trainable(LAYER_PRESETS["all"], verbose=0)
    model.compile(config.LEARNING_RATE, config.LEARNING_MOMENTUM)
    start = time.perf_counter()
    model.keras_model.train_on_batch(data[0])
    first = time.perf_counter() - start
    # Printed at once: an emulated bfloat16 run may be stopped before its timed steps.
    print(f"first step (tracing included): {first:.0f} s", flush=True)
    times = []
    for step in range(args.steps):
        start = time.perf_counter()
        model.keras_model.train_on_batch(data[step % len(data)])
        times.append(time.perf_counter() - start)
    step_time = float(np.median(times))
    print(f"training {args.backbone} {args.size}x{args.size} batch {args.batch} "
          f"{precision or 'float32'}: "
          f"{args.batch / step_time:.3f} images/s ({step_time:.2f} s/step, median of "
          f"{args.steps}; first step {first:.0f} s)")
    print(f"input pipeline {args.size}x{args.size}: {pipeline_rate:.1f} images/s on one "
          f"thread ({pipeline_rate * step_time / args.batch:.0f}x what training consumes)")


if __name__ == "__main__":
    main()
