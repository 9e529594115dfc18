"""Speed of the training input pipeline (mrcnn.data) on synthetic shapes images.

Prints images/s of ``DataGenerator`` batches for the shapes sample (128 x 128, batch 8) and
for 512 x 512 shapes images (batch 2, anchors 32..512), built by one worker (the
generator's ``__getitem__`` called in a loop) and by ``--workers`` workers (a
``multiprocessing`` pool of forked processes, the mechanism ``fit`` uses with
``use_multiprocessing=True``; ``--threads`` uses a thread pool instead, like
``use_multiprocessing=False``). Also prints where one image's time goes.

    python benchmarks/bench_input_pipeline.py [--batches 10] [--workers 2] [--repeats 3]
                                              [--threads]
"""
from __future__ import annotations

import argparse
import multiprocessing
import multiprocessing.dummy
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mrcnn.data import (DataGenerator, build_rpn_targets, load_image_gt,  # noqa: E402
                        load_training_example)
from mrcnn.datasets.shapes import ShapesConfig, ShapesDataset  # noqa: E402


class Shapes512Config(ShapesConfig):
    NAME = "shapes512"
    IMAGES_PER_GPU = 2
    NUM_CLASSES = 4
    IMAGE_MIN_DIM = 512
    IMAGE_MAX_DIM = 512
    RPN_ANCHOR_SCALES = (32, 64, 128, 256, 512)


# The generator the pool workers read: set before the pool forks, so it is not pickled.
_GENERATOR: DataGenerator | None = None


def _build_batch(index: int):
    return _GENERATOR[index]


def images_per_second(generator: DataGenerator, batches: int, workers: int,
                      threads: bool, repeats: int) -> float:
    """Builds batches 1..batches (batch 0 warms up caches) and returns the best images/s
    of ``repeats`` runs (the machine is shared: the best run is the least disturbed)."""
    global _GENERATOR
    generator[0]
    _GENERATOR = generator
    indices = range(1, batches + 1)
    pool_class = multiprocessing.dummy.Pool if threads else multiprocessing.Pool
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        if workers == 1:
            for i in indices:
                generator[i]
        else:
            # Pool start-up is part of the cost, as it is for every epoch of fit.
            with pool_class(workers) as pool:
                for _ in pool.imap(_build_batch, indices):
                    pass
        elapsed = time.perf_counter() - start
        best = max(best, batches * generator.config.BATCH_SIZE / elapsed)
    return best


def stage_times_ms(dataset, config, anchors: np.ndarray, repeats: int) -> dict:
    """Mean milliseconds per image of the pipeline's stages."""
    rng = np.random.default_rng(0)
    times = {"load_image_gt": 0.0, "build_rpn_targets": 0.0, "load_training_example": 0.0}
    for image_id in range(repeats):
        start = time.perf_counter()
        _, _, class_ids, boxes, _ = load_image_gt(dataset, config, image_id)
        middle = time.perf_counter()
        build_rpn_targets(anchors, class_ids, boxes, config, rng=rng)
        end = time.perf_counter()
        load_training_example(dataset, config, image_id, anchors, None, rng)
        times["load_image_gt"] += middle - start
        times["build_rpn_targets"] += end - middle
        times["load_training_example"] += time.perf_counter() - end
    return {name: 1000 * total / repeats for name, total in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=10, help="timed batches per run")
    parser.add_argument("--workers", type=int, default=2, help="workers of the parallel run")
    parser.add_argument("--repeats", type=int, default=3, help="runs; the best is shown")
    parser.add_argument("--threads", action="store_true",
                        help="thread pool instead of processes for the parallel run")
    args = parser.parse_args()
    kind = "threads" if args.threads else "processes"

    for size, config in ((128, ShapesConfig()), (512, Shapes512Config())):
        dataset = ShapesDataset()
        dataset.load_shapes((args.batches + 1) * config.BATCH_SIZE, size, size, seed=0)
        dataset.prepare()
        generator = DataGenerator(dataset, config, shuffle=False, seed=0)
        label = f"input pipeline {size}x{size} batch {config.BATCH_SIZE}"
        rate = images_per_second(generator, args.batches, 1, args.threads, args.repeats)
        print(f"{label}: {rate:.1f} images/s (1 worker)", flush=True)
        rate = images_per_second(generator, args.batches, args.workers, args.threads,
                                 args.repeats)
        print(f"{label}: {rate:.1f} images/s ({args.workers} workers, {kind})", flush=True)
        stages = stage_times_ms(dataset, config, generator.anchors,
                                min(len(dataset.image_ids), 10))
        print(f"  per image ({len(generator.anchors)} anchors): "
              + ", ".join(f"{name} {ms:.1f} ms" for name, ms in stages.items()), flush=True)


if __name__ == "__main__":
    main()
