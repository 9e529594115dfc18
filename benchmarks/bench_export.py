"""Latency of the exported SavedModel against MaskRCNN.detect() on the same image.

ResNet-50, 81 classes, 1000 proposals, 100 detections (DETECTION_MIN_CONFIDENCE 0, so
that both sides paste 100 full-size masks), random weights, one 1024 x 1024 image. The
two run alternately, so that a machine shared with other work slows both alike.

    python benchmarks/bench_export.py                 # 1024², 5 rounds
    python benchmarks/bench_export.py --size 512 --repeats 3
"""
import argparse
import os
import platform
import subprocess
import tempfile
import time

import numpy as np


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import tensorflow as tf

    from mrcnn.config import Config
    from mrcnn.model import MaskRCNN

    class BenchConfig(Config):
        NAME = "bench"
        NUM_CLASSES = 81
        BACKBONE = "resnet50"
        GPU_COUNT = 1
        IMAGES_PER_GPU = 1
        IMAGE_MIN_DIM = args.size
        IMAGE_MAX_DIM = args.size
        POST_NMS_ROIS_INFERENCE = 1000
        DETECTION_MAX_INSTANCES = 100
        DETECTION_MIN_CONFIDENCE = 0.0

    model = MaskRCNN("inference", BenchConfig(), model_dir=tempfile.mkdtemp())
    export_dir = os.path.join(tempfile.mkdtemp(), "saved_model")
    start = time.perf_counter()
    model.export(export_dir)
    print(f"export: {time.perf_counter() - start:.1f} s", flush=True)
    loaded = tf.saved_model.load(export_dir)
    serving = loaded.signatures["serving_default"]

    image = np.random.default_rng(0).integers(0, 255, (args.size, args.size, 3), np.uint8)
    runs = {"detect()": lambda: model.detect([image])[0],
            "SavedModel": lambda: {k: v.numpy() for k, v in serving(image=tf.constant(image)).items()}}
    for run in runs.values():  # first calls: tracing, graph optimization
        run()
    times = {name: [] for name in runs}
    detections = {}
    for _ in range(args.repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            detections[name] = len(run()["rois"])
            times[name].append(time.perf_counter() - start)
    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical cores; TensorFlow {tf.__version__}; "
          f"devices: {[d.device_type for d in tf.config.list_physical_devices()]}")
    for name, values in times.items():
        print(f"{name:>10} {args.size}x{args.size}: median {np.median(values):.3f} s, "
              f"min {min(values):.3f} s, max {max(values):.3f} s over {args.repeats} runs, "
              f"{detections[name]} detections")
    ratio = np.median(times["SavedModel"]) / np.median(times["detect()"])
    print(f"SavedModel / detect() median latency: {ratio:.3f}")


if __name__ == "__main__":
    main()
