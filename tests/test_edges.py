"""Edges of the numerics and of train(): clamped box deltas, NaN proposals, checks before
the first step, a NaN loss, checkpoints that are never garbage, "crop" at inference."""
import functools
import glob
import math
import os
import sys
from types import SimpleNamespace

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from mrcnn import boxes as np_boxes
from mrcnn.checkpoints import STATE_FILE, NonFiniteLossError
from mrcnn.config import LOSS_NAMES
from mrcnn.data import DataGenerator
from mrcnn.graph import box_ops
from mrcnn.graph.proposals import ProposalLayer
from mrcnn.graph.association import ImageROICrop
from mrcnn.graph.roi_align import PyramidROIAlign
from mrcnn.model import MaskRCNN
from samples.shapes.shapes import ShapesDataset
from samples.shapes.train_shapes import FastShapesConfig

# ------------------------------------------------------------------ box deltas


def test_max_log_scale_is_detectrons():
    assert np_boxes.MAX_LOG_SCALE == pytest.approx(math.log(62.5))


@pytest.mark.parametrize("apply", [np_boxes.apply_box_deltas,
                                   lambda b, d: box_ops.apply_box_deltas(
                                       tf.constant(b), tf.constant(d)).numpy()],
                         ids=["numpy", "tf"])
def test_huge_log_sizes_are_clamped_before_exp(apply):
    boxes = np.array([[0, 0, 16, 16], [10, 10, 20, 30]], np.float32)
    # 1500 overflows exp in float32; 2 is below the clamp and moves as before.
    deltas = np.array([[0, 0, 1500, 1500], [0, 0, 2, -1]], np.float32)
    out = apply(boxes, deltas)
    assert np.isfinite(out).all()
    # Clamped: a 16-pixel box grows to 1000 pixels, centred where it was.
    np.testing.assert_allclose(out[0], [8 - 500, 8 - 500, 8 + 500, 8 + 500], rtol=1e-5)
    h, w = 10 * math.exp(2), 20 * math.exp(-1)
    np.testing.assert_allclose(out[1], [15 - h / 2, 20 - w / 2, 15 + h / 2, 20 + w / 2],
                               rtol=1e-5)


def test_proposals_stay_finite_for_wild_rpn_deltas():
    anchors = np.array([[[0.1, 0.1, 0.2, 0.2], [0.5, 0.5, 0.6, 0.7], [0.3, 0.3, 0.4, 0.4]]],
                       np.float32)
    probs = np.array([[[0.1, 0.9], [0.2, 0.8], [0.7, 0.3]]], np.float32)
    deltas = np.full([1, 3, 4], 1500.0, np.float32)  # what a uint16 image used to produce
    proposals = ProposalLayer(3, 0.7, 3)([probs, deltas, anchors]).numpy()
    assert np.isfinite(proposals).all()


# ------------------------------------------------------------------ ROI align


@pytest.fixture(scope="module")
def pyramid():
    rng = np.random.default_rng(0)
    maps = [rng.normal(size=[2, 256 // s, 256 // s, 3]).astype(np.float32)
            for s in (4, 8, 16, 32)]
    meta = np.zeros([2, 16], np.float32)
    meta[:, 4:7] = [256, 256, 3]
    rois = np.tile(np.array([[0.1, 0.1, 0.3, 0.4], [0.2, 0.0, 0.9, 0.8], [0.5, 0.5, 0.6, 0.6],
                             [0.0, 0.0, 1.0, 1.0], [0.3, 0.2, 0.5, 0.9]], np.float32), [2, 1, 1])
    return maps, meta, rois


@pytest.mark.parametrize("bad_row", [2, 4], ids=["middle", "end"])
@pytest.mark.parametrize("bad_box", [[np.nan] * 4, [0.1, np.inf, 0.2, 0.3],
                                     [0.5, 0.5, 0.4, 0.6]], ids=["nan", "inf", "degenerate"])
def test_invalid_roi_pools_like_the_zero_box_and_leaves_the_others(pyramid, bad_row, bad_box):
    maps, meta, rois = pyramid
    layer = PyramidROIAlign((7, 7))
    clean = layer([rois, meta] + maps).numpy()
    bad = rois.copy()
    bad[1, bad_row] = bad_box
    zeroed = rois.copy()
    zeroed[1, bad_row] = 0
    pooled = layer([bad, meta] + maps).numpy()
    assert pooled.shape == (2, 5, 7, 7, 3) and np.isfinite(pooled).all()
    np.testing.assert_array_equal(pooled, layer([zeroed, meta] + maps).numpy())
    others = [i for i in range(5) if i != bad_row]
    np.testing.assert_array_equal(pooled[1, others], clean[1, others])
    np.testing.assert_array_equal(pooled[0], clean[0])


@pytest.mark.parametrize("bad_box", [[np.nan] * 4, [0.1, np.inf, 0.2, 0.3],
                                     [0.5, 0.5, 0.4, 0.6]], ids=["nan", "inf", "degenerate"])
def test_invalid_roi_crops_the_image_like_the_zero_box(pyramid, bad_box):
    _, _, rois = pyramid
    image = np.random.default_rng(0).uniform(-128, 128, (2, 32, 32, 3)).astype(np.float32)
    layer = ImageROICrop((5, 5))
    bad, zeroed = rois.copy(), rois.copy()
    bad[1, 2], zeroed[1, 2] = bad_box, 0
    crops = layer([image, bad]).numpy()
    assert np.isfinite(crops).all()
    np.testing.assert_array_equal(crops, layer([image, zeroed]).numpy())
    others = [0, 1, 3, 4]
    np.testing.assert_array_equal(crops[:, others], layer([image, rois]).numpy()[:, others])


# ------------------------------------------------------------------ train() and checkpoints


class EdgeConfig(FastShapesConfig):
    """The compact shapes model at 128 x 128, a few steps per epoch."""
    NAME = "edge"
    IMAGE_MIN_DIM = IMAGE_MAX_DIM = 128
    IMAGES_PER_GPU = 2
    TRAIN_ROIS_PER_IMAGE = 8
    POST_NMS_ROIS_TRAINING = 32
    RPN_TRAIN_ANCHORS_PER_IMAGE = 32
    STEPS_PER_EPOCH = 3
    VALIDATION_STEPS = 1


@pytest.fixture(scope="module")
def small_shapes():
    dataset = ShapesDataset()
    dataset.load_shapes(4, 128, 128, seed=1)
    dataset.prepare()
    return dataset


@pytest.fixture(scope="module")
def trainee(tmp_path_factory):
    return MaskRCNN("training", EdgeConfig(), str(tmp_path_factory.mktemp("logs")))


def _weights(model):
    return [w.numpy() for w in model.keras_model.weights]


def _assert_nothing_written(model, before):
    assert not os.path.exists(model.log_dir) or not glob.glob(os.path.join(model.log_dir, "*"))
    for old, new in zip(before, _weights(model)):
        np.testing.assert_array_equal(old, new)


def test_too_many_classes_refused_before_the_first_step(trainee, small_shapes):
    big = ShapesDataset()
    for class_id in range(1, 6):
        big.add_class("many", class_id, f"c{class_id}")
    big.prepare()
    before = _weights(trainee)
    with pytest.raises(ValueError, match="training dataset has 6 classes .* NUM_CLASSES is 4"):
        trainee.train(big, small_shapes, 0.001, 1, "heads")
    with pytest.raises(ValueError, match="validation dataset has 6 classes"):
        trainee.train(small_shapes, big, 0.001, 1, "heads")
    _assert_nothing_written(trainee, before)


@pytest.mark.parametrize("mode", ["pad64", "none"])
def test_resize_modes_that_cannot_batch_are_refused(trainee, small_shapes, mode):
    # Mixed sizes: pad64 would mold these to 128x128 and 128x192, which np.stack refuses.
    mixed = ShapesDataset()
    mixed.load_shapes(1, 128, 128, seed=1)
    mixed.load_shapes(1, 128, 192, seed=2)
    mixed.prepare()
    config = trainee.config
    before = _weights(trainee)
    config.IMAGE_RESIZE_MODE = mode
    try:
        with pytest.raises(ValueError, match=f"IMAGE_RESIZE_MODE='{mode}' cannot train.*"
                                             "Use 'square'"):
            trainee.train(mixed, mixed, 0.001, 1, "heads")
    finally:
        config.IMAGE_RESIZE_MODE = "square"
    _assert_nothing_written(trainee, before)


def test_an_augmenter_class_is_refused_before_the_first_step(trainee, small_shapes):
    from mrcnn.data import Augmenter
    before = _weights(trainee)
    with pytest.raises(TypeError, match=r"the class Augmenter.*e\.g\. Augmenter\(\)"):
        trainee.train(small_shapes, small_shapes, 0.001, 1, "heads", augmentation=Augmenter)
    with pytest.raises(TypeError, match="is not an augmenter"):
        trainee.train(small_shapes, small_shapes, 0.001, 1, "heads", augmentation="fliplr")
    _assert_nothing_written(trainee, before)


def test_layers_regex_matching_nothing_is_refused(trainee, small_shapes):
    trainable = [layer.trainable for layer in trainee.keras_model.layers]
    with pytest.raises(ValueError, match=r"layers='rpn\.\*x' matches no weighted layer"):
        trainee.train(small_shapes, small_shapes, 0.001, 1, r"rpn.*x")
    assert [layer.trainable for layer in trainee.keras_model.layers] == trainable


def test_crop_is_refused_at_inference():
    class Cropping(EdgeConfig):
        IMAGE_RESIZE_MODE = "crop"

    with pytest.raises(ValueError, match="IMAGE_RESIZE_MODE='crop' is a training "
                                         "augmentation.*Use 'square'"):
        MaskRCNN("inference", Cropping(), "unused_logs")


def test_nan_loss_stops_at_that_step_and_saves_nothing_from_it(trainee, small_shapes):
    before = _weights(trainee)
    # A learning rate of 1e12 blows the weights up within a step or two.
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss at step \d of epoch 1 "
                                                 r"\(step \d of the run\)\. Last values: "
                                                 r"loss nan") as info:
        trainee.train(small_shapes, small_shapes, 1e12, 2, "all", workers=1, resume=False)
    message = str(info.value)
    assert all(name in message for name in LOSS_NAMES), message
    assert glob.glob(os.path.join(trainee.log_dir, "*.h5")) == []
    with pytest.raises(FileNotFoundError):
        trainee.find_last()
    # The resume state holds the finite weights the stage started from.
    with np.load(os.path.join(trainee.log_dir, STATE_FILE)) as state:
        saved = [state[f"w{i}"] for i in range(len(before))]
    for old, new in zip(before, saved):
        np.testing.assert_array_equal(old, new)


def _h5(path, value):
    with h5py.File(path, "w") as handle:
        handle["layer/kernel:0"] = np.full(4, value, np.float32)


def test_find_last_passes_over_partial_truncated_and_non_finite_files(tmp_path):
    run = tmp_path / "edge20250101T0000"
    run.mkdir()
    _h5(run / "mask_rcnn_edge_0001.h5", 1.0)
    _h5(run / "mask_rcnn_edge_0002.h5", np.nan)
    _h5(run / "mask_rcnn_edge_0003.h5", 1.0)
    with open(run / "mask_rcnn_edge_0003.h5", "r+b") as f:
        f.truncate(100)
    _h5(run / "mask_rcnn_edge_0004.h5.partial", 1.0)  # a save in flight
    finder = SimpleNamespace(config=EdgeConfig(), model_dir=str(tmp_path))
    with pytest.warns(UserWarning, match="skipping .*0003.h5: unreadable"):
        found = MaskRCNN.find_last(finder)
    assert os.path.basename(found) == "mask_rcnn_edge_0001.h5"
    os.remove(found)
    with pytest.warns(UserWarning, match="0002.h5: non-finite values"):
        with pytest.raises(FileNotFoundError, match="No sound checkpoint"):
            MaskRCNN.find_last(finder)


def test_verbose_is_one_line_per_epoch_when_stdout_is_not_a_terminal(trainee, small_shapes,
                                                                      monkeypatch):
    seen = []

    def fit(*args, **kwargs):
        seen.append(kwargs["verbose"])
        history = keras.callbacks.History()
        history.epoch = []  # as fit leaves it after no epoch
        return history

    monkeypatch.setattr(trainee.keras_model, "fit", fit)
    trainee.set_log_dir()
    trainee.train(small_shapes, small_shapes, 0.001, 1, "heads", resume=False)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    trainee.set_log_dir()
    trainee.train(small_shapes, small_shapes, 0.001, 1, "heads", resume=False)
    assert seen == [2, 1]


def test_generator_start_at_gives_the_batches_of_an_uninterrupted_run(small_shapes):
    config = EdgeConfig()
    uninterrupted = DataGenerator(small_shapes, config, seed=5, steps_per_epoch=3)
    uninterrupted.on_epoch_end()
    resumed = DataGenerator(small_shapes, config, seed=5, steps_per_epoch=3)
    resumed.start_at(1, 2)
    assert len(resumed) == 1
    for mine, theirs in zip(resumed[0][0], uninterrupted[2][0]):
        np.testing.assert_array_equal(mine, theirs)
    resumed.on_epoch_end()
    assert len(resumed) == 3 and resumed.epoch == 2


def test_detect_reads_uint16_gray_and_rgba_arrays_like_their_rgb(small_shapes):
    detector = MaskRCNN("inference", EdgeConfig(), "unused_logs")
    rgb = small_shapes.load_image(0)
    expected = detector.detect([rgb])[0]
    wide = rgb.astype(np.uint16) * 257
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 9, np.uint8)], axis=2)
    for image in (wide, rgba):
        result = detector.detect([image])[0]
        for key in expected:
            np.testing.assert_array_equal(result[key], expected[key])
    gray = detector.detect([rgb[:, :, 0]])[0]
    assert gray["masks"].shape[:2] == rgb.shape[:2]


def test_config_fingerprint_follows_loss_hyper_parameters_not_object_identity():
    from mrcnn import losses
    from mrcnn.checkpoints import config_fingerprint

    def config_with(loss):
        class LossConfig(EdgeConfig):
            LOSS_FUNCTIONS = {"mrcnn_class_loss": loss}
        return LossConfig()

    keras_focal = config_fingerprint(config_with(keras.losses.CategoricalFocalCrossentropy(gamma=2.0)))
    assert "0x" not in keras_focal  # no memory address: a rerun in a new process matches
    assert keras_focal == config_fingerprint(
        config_with(keras.losses.CategoricalFocalCrossentropy(gamma=2.0)))
    assert keras_focal != config_fingerprint(
        config_with(keras.losses.CategoricalFocalCrossentropy(gamma=3.0)))
    ours = config_fingerprint(config_with(losses.focal(gamma=2.0)))
    assert ours == config_fingerprint(config_with(losses.focal(gamma=2.0)))
    assert ours != config_fingerprint(config_with(losses.focal(gamma=3.0)))


def test_find_last_ignores_the_runs_of_a_config_whose_name_extends_this_one(tmp_path):
    own, other = tmp_path / "edge20250101T0000", tmp_path / "edge_small20240101T0000"
    for run, name in ((own, "edge"), (other, "edge_small")):
        run.mkdir()
        _h5(run / f"mask_rcnn_{name}_0001.h5", 1.0)
    (tmp_path / "edge20260101T0000.old").mkdir()  # not a run folder either
    finder = SimpleNamespace(config=EdgeConfig(), model_dir=str(tmp_path))
    # "edge_small..." sorts after "edge2025..." ('_' > '2'): a prefix glob picked it.
    assert MaskRCNN.find_last(finder) == str(own / "mask_rcnn_edge_0001.h5")


def test_find_last_on_a_run_interrupted_in_its_first_epoch_says_how_to_resume(tmp_path):
    run = tmp_path / "edge20250101T0000"
    run.mkdir()
    (run / STATE_FILE).write_bytes(b"state")
    finder = SimpleNamespace(config=EdgeConfig(), model_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="interrupted in its first epoch.*train"):
        MaskRCNN.find_last(finder)


def _scaled(target_class_ids, logits, active_class_ids, factor=1.0):
    return factor * tf.reduce_mean(logits)


class ScaledLoss:
    def __init__(self, factor):
        self.factor = factor

    def __call__(self, target_class_ids, logits, active_class_ids):
        return self.factor * tf.reduce_mean(logits)


@pytest.mark.parametrize("make", [lambda f: functools.partial(_scaled, factor=f), ScaledLoss])
def test_config_fingerprint_of_partials_and_callable_objects(make):
    from mrcnn.checkpoints import config_fingerprint

    def config_with(loss):
        return type("LossConfig", (EdgeConfig,), {"LOSS_FUNCTIONS": {"mrcnn_class_loss": loss}})()

    two = config_fingerprint(config_with(make(2.0)))
    assert "0x" not in two  # no memory address: a rerun in a new process matches
    assert two == config_fingerprint(config_with(make(2.0)))
    assert two != config_fingerprint(config_with(make(3.0)))


class _FakeTrainee:
    """What TrainingRun reads of a MaskRCNN: config, folders, weights, set_log_dir."""
    set_log_dir = MaskRCNN.set_log_dir

    def __init__(self, model_dir, value, strategy=None):
        self.config, self.model_dir, self.epoch = EdgeConfig(), str(model_dir), 0
        self.strategy = strategy or tf.distribute.get_strategy()
        with self.strategy.scope():
            self.keras_model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
            self.keras_model.compile(optimizer=keras.optimizers.SGD(momentum=0.9))
        for weight in self.keras_model.weights:
            weight.assign(np.full(weight.shape, value, np.float32))
        self.set_log_dir()


def test_a_crash_after_the_stages_last_save_resumes_as_a_finished_stage(tmp_path):
    from mrcnn.checkpoints import TrainingRun
    stage = {"layers": "heads", "learning_rate": 0.01, "epochs": 2}
    first = _FakeTrainee(tmp_path, 1.0)
    run = TrainingRun(first, stage, resume=False)
    run.begin(first.keras_model, seed=7)
    run.save(first.keras_model, 2, 0, 7)  # StateSaver at the end of the last epoch; then killed
    again = _FakeTrainee(tmp_path, 5.0)
    rerun = TrainingRun(again, stage)
    assert (rerun.action, rerun.epoch, again.epoch) == ("skip", 2, 2)
    assert again.log_dir == first.log_dir
    for weight in again.keras_model.weights:
        np.testing.assert_array_equal(weight.numpy(), 1.0)
    # The next stage of the script continues the same run.
    assert again._run_stages == (first.log_dir, [stage])


def test_resuming_under_a_strategy_restores_the_optimizer_state(tmp_path):
    from mrcnn.checkpoints import TrainingRun
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    stage = {"layers": "all", "learning_rate": 0.01, "epochs": 3}
    first = _FakeTrainee(tmp_path, 1.0, strategy)
    optimizer = first.keras_model.optimizer
    with strategy.scope():
        optimizer.build(first.keras_model.trainable_variables)
    for slot in optimizer.variables:
        slot.assign(np.full(slot.shape, 3 if "int" in slot.dtype else 0.25, slot.dtype))
    run = TrainingRun(first, stage, resume=False)
    run.begin(first.keras_model, seed=7)
    run.save(first.keras_model, 1, 2, 7)  # mid-epoch; then killed
    again = _FakeTrainee(tmp_path, 5.0, strategy)
    rerun = TrainingRun(again, stage)
    assert (rerun.action, rerun.epoch, rerun.step) == ("resume", 1, 2)
    # The momentum slots are built beside the mirrored weights: only inside the scope.
    rerun.restore_optimizer(again.keras_model)
    saved = [v.numpy() for v in optimizer.variables]
    restored = [v.numpy() for v in again.keras_model.optimizer.variables]
    assert len(restored) == len(saved) > 1
    for a, b in zip(restored, saved):
        np.testing.assert_array_equal(a, b)
