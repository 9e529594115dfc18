"""Crash resume: a training script killed with SIGKILL mid-epoch, run again, continues at
the last saved step of the stage in flight, with the optimizer's state, in the same run."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np

from mrcnn.checkpoints import STATE_FILE

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Two stages, as the classic samples train: heads to epoch 1, then everything to epoch 2.
# The state is saved every 2 steps (and at each epoch end); with KILL_AFTER set, the
# script stops after that many steps of the second stage, waiting to be killed.
SCRIPT = textwrap.dedent("""
    import os, sys, time
    sys.path.insert(0, {repo!r})
    import keras
    from mrcnn.model import MaskRCNN
    from samples.shapes.shapes import ShapesDataset
    from samples.shapes.train_shapes import FastShapesConfig

    class Config(FastShapesConfig):
        NAME = "crash"
        IMAGES_PER_GPU = 2
        TRAIN_ROIS_PER_IMAGE = 8
        POST_NMS_ROIS_TRAINING = 32
        RPN_TRAIN_ANCHORS_PER_IMAGE = 32
        STEPS_PER_EPOCH = 3
        VALIDATION_STEPS = 1
        TRAIN_STATE_STEPS = 2

    class Progress(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
        def on_train_batch_end(self, batch, logs=None):
            with open("progress.txt", "a") as f:
                f.write(f"{{self.epoch}} {{int(self.model.optimizer.iterations)}}\\n")
            if self.epoch == 1 and int(self.model.optimizer.iterations) == int(
                    os.environ.get("KILL_AFTER", 0)):
                time.sleep(600)

    dataset = ShapesDataset()
    dataset.load_shapes(4, 128, 128, seed=1)
    dataset.prepare()
    model = MaskRCNN("training", Config(), "logs")
    model.train(dataset, dataset, 0.001, 1, "heads", workers=1, custom_callbacks=[Progress()])
    model.train(dataset, dataset, 0.0001, 2, "all", workers=1, custom_callbacks=[Progress()])
    print("done", model.epoch, model.log_dir)
""")


def _progress(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [tuple(map(int, line.split())) for line in f if line.endswith("\n")]


def test_sigkill_mid_epoch_then_rerun_resumes_at_the_saved_step(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT.format(repo=REPO))
    progress = str(tmp_path / "progress.txt")
    env = {**os.environ, "KILL_AFTER": "3", "TF_CPP_MIN_LOG_LEVEL": "3"}
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, env=env,
                                 stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 400
        # Stage 2's third step (the epoch's last): state saved at its step 2, not 3.
        while (1, 3) not in _progress(progress):
            assert first.poll() is None, (tmp_path / "first.log").read_text()
            assert time.time() < deadline, "the first run did not reach the kill point"
            time.sleep(0.2)
        first.send_signal(signal.SIGKILL)
        first.wait()
    before = _progress(progress)
    # Stage 1: iterations 1..3 in epoch 0; stage 2 (a new optimizer): 1..3 in epoch 1.
    assert before == [(0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (1, 3)]
    runs = os.listdir(tmp_path / "logs")
    assert len(runs) == 1
    run_dir = tmp_path / "logs" / runs[0]
    assert sorted(p for p in os.listdir(run_dir) if p.endswith(".h5")) == [
        "mask_rcnn_crash_0001.h5"]
    with np.load(run_dir / STATE_FILE) as state:
        meta = json.loads(str(state["meta"]))
    assert (meta["running"], meta["stage"], meta["epoch"], meta["step"]) == (True, 1, 1, 2)

    os.remove(progress)
    env.pop("KILL_AFTER")
    rerun = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=400)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "Stage 'heads' to epoch 1 already done" in rerun.stdout
    assert "Resuming at step 2 of epoch 2" in rerun.stdout
    # Only the lost step runs again, and the optimizer's count goes on from 2.
    assert _progress(progress) == [(1, 3)]
    assert os.listdir(tmp_path / "logs") == runs
    assert f"done 2 {os.path.join('logs', runs[0])}" in rerun.stdout
    assert sorted(p for p in os.listdir(run_dir) if p.endswith(".h5")) == [
        "mask_rcnn_crash_0001.h5", "mask_rcnn_crash_0002.h5"]
    with np.load(run_dir / STATE_FILE) as state:
        meta = json.loads(str(state["meta"]))
        assert state.files == ["meta"]  # a finished run keeps only its record
    assert not meta["running"] and [s["layers"] for s in meta["stages"]] == ["heads", "all"]
