"""MultiWorkerMirroredStrategy: two local worker processes (TF_CONFIG on 127.0.0.1)
train the tiny config through MaskRCNN.train and end alike; only the chief writes.

Slow on a shared 2-core machine (two TensorFlow processes tracing the same graph): the
workers get WORKER_TIMEOUT seconds.
"""
import json
import os
import socket
import subprocess
import sys

import numpy as np

TESTS = os.path.dirname(os.path.abspath(__file__))
WORKER_TIMEOUT = 600


def free_ports(count: int) -> list[int]:
    """Ports of 127.0.0.1 free right now (bound, read, released)."""
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def files_under(folder) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), folder)
                  for d, _, names in os.walk(folder) for f in names)


def test_two_workers_train_alike_and_only_the_chief_writes(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [os.path.dirname(TESTS), TESTS, os.environ.get("PYTHONPATH", "")])}
    ports = [str(p) for p in free_ports(2)]
    workers = []
    for index in range(2):
        command = [sys.executable, os.path.join(TESTS, "multi_worker_train.py"), str(index),
                   *ports, str(tmp_path / f"model_dir{index}"), str(tmp_path / f"w{index}.npz")]
        log = open(tmp_path / f"worker{index}.log", "w")
        workers.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env))
    try:
        codes = [w.wait(timeout=WORKER_TIMEOUT) for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
    logs = [(tmp_path / f"worker{i}.log").read_text()[-3000:] for i in range(2)]
    assert codes == [0, 0], logs

    runs = [json.loads((tmp_path / f"w{i}.npz.json").read_text()) for i in range(2)]
    assert runs[0]["epoch"] == runs[1]["epoch"] == 2
    # The logs are the cluster's means: the same on both workers, finite, one per epoch.
    assert runs[0]["history"] == runs[1]["history"]
    assert len(runs[0]["history"]["loss"]) == 2
    assert all(np.isfinite(runs[0]["history"]["loss"]))
    with np.load(tmp_path / "w0.npz") as first, np.load(tmp_path / "w1.npz") as second:
        assert len(first.files) == len(second.files) > 100
        for name in first.files:
            np.testing.assert_array_equal(first[name], second[name], err_msg=name)

    chief = files_under(tmp_path / "model_dir0")
    run_dir = os.path.dirname(chief[0]).split(os.sep)[0]
    names = [os.path.relpath(f, run_dir) for f in chief]
    assert {"mask_rcnn_tiny_0001.h5", "mask_rcnn_tiny_0002.h5", "train_state.npz"} <= set(names)
    assert any(n.startswith("train" + os.sep + "events.out.tfevents") for n in names), names
    # The other worker, as on its own host, wrote nothing: no checkpoint, log or state.
    assert not os.path.exists(tmp_path / "model_dir1") or not files_under(
        tmp_path / "model_dir1")
