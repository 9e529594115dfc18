"""The association head: triplet losses, instance ids through the data and the graph,
sequence batching, training and detect() embeddings."""
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from mrcnn import losses
from mrcnn.config import ConfigError
from mrcnn.config_presets import derive_config
from mrcnn.data import DataGenerator, load_training_example, sequence_runs
from mrcnn.datasets.moving_shapes import MovingShapesDataset
from mrcnn.datasets.shapes import ShapesDataset
from mrcnn.graph.association import ASSOCIATION_LAYERS, ImageROICrop, association_head
from mrcnn.graph.network import build_inference_model, build_training_model
from mrcnn.graph.targets import DetectionTargetLayer
from mrcnn.graph.triplet import triplet_batch_hard_loss, triplet_semihard_loss
from mrcnn.image_meta import compose_image_meta, parse_image_meta
from mrcnn.model import MaskRCNN
from mrcnn.weights import WeightFileError, _classic_weight_names, weighted_layers


# ---------------------------------------------------------------- the triplet losses

def _points(xs):
    """1-D positions as [N, 2] embeddings (distances are |x_i - x_j|)."""
    return tf.constant([[x, 0.0] for x in xs], tf.float32)


def test_semihard_takes_the_closest_negative_farther_than_the_positive():
    # a=0 and p=1 share label 1. From a, negatives at 0.5 (hard), 1.5 (semi-hard), 4
    # (easy): the pair (a, p) takes 1.5 -> 1 - 1.5 + 1 = 0.5. From p: 1.5, 2.5, 3, all
    # farther than 1, the closest is 1.5 -> 0.5. The hardest negative would give a mean
    # of 1.0, the farthest 0.
    embeddings = _points([0.0, 1.0, -0.5, -1.5, 4.0])
    labels = tf.constant([1, 1, 2, 3, 4])
    assert float(triplet_semihard_loss(embeddings, labels, margin=1.0)) == pytest.approx(0.5)


def test_semihard_falls_back_to_the_farthest_negative():
    # (a=0, p=3): negatives at 1 and 2, none farther than 3 -> the farthest, 2:
    # 3 - 2 + 0.5 = 1.5. (p, a): negatives at 2 and 5 -> 5: max(3 - 5 + 0.5, 0) = 0.
    embeddings = _points([0.0, 3.0, 1.0, -2.0])
    labels = tf.constant([7, 7, 8, 9])
    assert float(triplet_semihard_loss(embeddings, labels, margin=0.5)) == pytest.approx(0.75)


def test_batch_hard_takes_the_hardest_positive_and_negative():
    # Label 1 at 0, 1, 2; negatives at 2.5 and -0.5. Anchor 0: hardest positive 2,
    # hardest negative 0.5 -> 0.2 + 1.5 = 1.7; anchor 1: 1 and 1.5 -> 0; anchor 2:
    # 2 and 0.5 -> 1.7. The negatives have no positive and do not count.
    embeddings = _points([0.0, 1.0, 2.0, 2.5, -0.5])
    labels = tf.constant([1, 1, 1, 2, 3])
    assert float(triplet_batch_hard_loss(embeddings, labels, margin=0.2)) == \
        pytest.approx(3.4 / 3)
    softplus = lambda x: math.log1p(math.exp(x))  # noqa: E731
    assert float(triplet_batch_hard_loss(embeddings, labels, soft=True)) == \
        pytest.approx((2 * softplus(1.5) + softplus(-0.5)) / 3)


@pytest.mark.parametrize("loss", [losses.triplet_semihard(), losses.triplet_batch_hard(),
                                  losses.triplet_batch_hard(soft=True)])
@pytest.mark.parametrize("labels", [[1, 2, 3, 4], [5, 5, 5, 5], []])
def test_no_positive_and_negative_gives_zero_with_finite_gradients(loss, labels):
    # Duplicated rows: distance 0, where a plain sqrt has an infinite gradient.
    embeddings = tf.Variable(np.tile([[0.6, 0.8]], (len(labels), 1)).astype(np.float32)
                             .reshape(len(labels), 2))
    with tf.GradientTape() as tape:
        value = loss(tf.constant(labels, tf.int32), embeddings)
    gradient = tape.gradient(value, embeddings)
    assert float(value) == 0.0
    assert gradient is None or np.all(np.isfinite(gradient))


@pytest.mark.parametrize("loss", [losses.triplet_semihard(1.0), losses.triplet_batch_hard(1.0),
                                  losses.triplet_batch_hard(soft=True)])
def test_identical_rows_of_one_identity_have_finite_gradients(loss):
    embeddings = tf.Variable([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    with tf.GradientTape() as tape:
        value = loss(tf.constant([1, 1, 2, 3]), embeddings)
    assert float(value) > 0
    assert np.all(np.isfinite(tape.gradient(value, embeddings)))


def _reference(kind, embeddings, labels, valid, margin, soft=False):
    """The losses' definitions, literally, on numpy arrays."""
    rows = [i for i in range(len(labels)) if valid[i]]
    distance = lambda i, j: float(np.linalg.norm(embeddings[i] - embeddings[j]))  # noqa: E731
    terms = []
    for a in rows:
        positives = [p for p in rows if p != a and labels[p] == labels[a]]
        negatives = [n for n in rows if labels[n] != labels[a]]
        if not positives or not negatives:
            continue
        if kind == "batch_hard":
            gap = max(distance(a, p) for p in positives) - min(distance(a, n) for n in negatives)
            terms.append(math.log1p(math.exp(gap)) if soft else max(gap + margin, 0.0))
            continue
        for p in positives:
            farther = [distance(a, n) for n in negatives if distance(a, n) > distance(a, p)]
            chosen = min(farther) if farther else max(distance(a, n) for n in negatives)
            terms.append(max(distance(a, p) - chosen + margin, 0.0))
    return float(np.mean(terms)) if terms else 0.0


@pytest.mark.parametrize("seed", range(4))
def test_losses_match_a_literal_numpy_reference(seed):
    rng = np.random.default_rng(seed)
    count = 14
    embeddings = rng.normal(size=(count, 5))
    embeddings = (embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)).astype(
        np.float32)
    labels = rng.integers(0, 5, count)
    valid = rng.random(count) < 0.8
    args = (tf.constant(embeddings), tf.constant(labels))
    for margin in (0.0, 0.2, 1.0):
        assert float(triplet_semihard_loss(*args, margin, valid=tf.constant(valid))) == \
            pytest.approx(_reference("semihard", embeddings, labels, valid, margin), abs=1e-5)
        assert float(triplet_batch_hard_loss(*args, margin, valid=tf.constant(valid))) == \
            pytest.approx(_reference("batch_hard", embeddings, labels, valid, margin), abs=1e-5)
    assert float(triplet_batch_hard_loss(*args, soft=True, valid=tf.constant(valid))) == \
        pytest.approx(_reference("batch_hard", embeddings, labels, valid, 0, soft=True),
                      abs=1e-5)


def test_factories_are_serializable_and_named_in_the_config():
    for loss in (losses.triplet_semihard(0.5), losses.triplet_batch_hard(0.3, soft=True)):
        config = keras.saving.serialize_keras_object(loss)
        assert keras.saving.deserialize_keras_object(config) == loss
    assert losses.parse_choice("triplet_batch_hard:margin=0.3,soft=True") == \
        losses.triplet_batch_hard(0.3, True)
    assert losses.parse_choice("triplet_semihard") == losses.triplet_semihard(1.0)
    with pytest.raises(ConfigError, match="margin"):
        losses.triplet_semihard(-1)


# ---------------------------------------------------------------- settings

@pytest.fixture(scope="module")
def assoc_config(tiny_config_class):
    # ResNet-18, and (with a random RPN) so many proposals that some always overlap
    # the objects: the loss has positives from the first step. Every positive is kept
    # (up to 64, no negatives), so the loss does not depend on which are sampled.
    return derive_config(tiny_config_class, BACKBONE="resnet18", PRE_NMS_LIMIT=5000,
                         POST_NMS_ROIS_TRAINING=1500, TRAIN_ROIS_PER_IMAGE=64,
                         ROI_POSITIVE_RATIO=1.0, MASK_HEAD_CHANNELS=32,
                         DETECTION_MIN_CONFIDENCE=0.0, ASSOCIATION_EMBEDDING_SIZE=16,
                         SEQUENCE_FRAMES=2, OPTIMIZER="adam", STEPS_PER_EPOCH=4,
                         VALIDATION_STEPS=4,
                         # As the tracking sample trains it.
                         ASSOCIATION_SEES_IMAGE=True, ASSOCIATION_TRAINS_FEATURES=False,
                         # The soft margin never reaches exactly 0: its course shows.
                         LOSS_FUNCTIONS={"mrcnn_assoc_loss": "triplet_batch_hard:soft=True"})


def test_settings_are_checked(tiny_config_class):
    with pytest.raises(ConfigError, match="ASSOCIATION_EMBEDDING_SIZE"):
        derive_config(tiny_config_class, ASSOCIATION_EMBEDDING_SIZE=0)
    with pytest.raises(ConfigError, match="ASSOCIATION_SEES_IMAGE.*True or False"):
        derive_config(tiny_config_class, ASSOCIATION_EMBEDDING_SIZE=8,
                      ASSOCIATION_SEES_IMAGE="yes")
    with pytest.raises(ConfigError, match="SEQUENCE_FRAMES.*BATCH_SIZE"):
        derive_config(tiny_config_class, SEQUENCE_FRAMES=3)
    with pytest.raises(ConfigError, match="mrcnn_assoc_loss.*ASSOCIATION_EMBEDDING_SIZE"):
        derive_config(tiny_config_class, LOSS_FUNCTIONS={"mrcnn_assoc_loss": "triplet_semihard"})
    with pytest.raises(ConfigError, match="mrcnn_assoc_loss.*ASSOCIATION_EMBEDDING_SIZE"):
        derive_config(tiny_config_class, LOSS_WEIGHTS={"mrcnn_assoc_loss": 2.0})
    with pytest.raises(ConfigError, match="mrcnn_assoc_loss.*triplet"):
        derive_config(tiny_config_class, ASSOCIATION_EMBEDDING_SIZE=8,
                      LOSS_FUNCTIONS={"mrcnn_assoc_loss": "dice"})
    config = derive_config(tiny_config_class, ASSOCIATION_EMBEDDING_SIZE=8,
                           LOSS_FUNCTIONS={"mrcnn_assoc_loss": "triplet_semihard:margin=0.5"},
                           LOSS_WEIGHTS={**tiny_config_class.LOSS_WEIGHTS,
                                         "mrcnn_assoc_loss": 0.5})
    function, inputs = losses.training_losses(config)["mrcnn_assoc_loss"]
    assert function.loss == losses.triplet_semihard(0.5)
    assert inputs == ("target_instance_ids", "mrcnn_assoc")


@pytest.mark.parametrize("trains_features", [True, False])
def test_the_head_trains_the_shared_features_only_when_asked(trains_features):
    # The head on four random pyramid levels of a 64² image: the gradient of its
    # embeddings reaches the feature maps (the backbone and pyramid) or stops at them.
    size, rng = 64, np.random.default_rng(0)
    maps = [tf.constant(rng.normal(size=(1, size // s, size // s, 8)), tf.float32)
            for s in (4, 8, 16, 32)]
    meta = tf.constant(compose_image_meta(0, (size, size, 3), (size, size, 3),
                                          (0, 0, size, size), 1.0, np.ones(2))[None],
                       tf.float32)
    rois = tf.constant([[[0.1, 0.1, 0.6, 0.5], [0.3, 0.2, 0.9, 0.9]]], tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(maps)
        embeddings = association_head(rois, meta, maps, pool_size=7, embedding_size=4,
                                      trains_features=trains_features)
        loss = tf.reduce_sum(embeddings[..., 0])
    head_variables = [v for v in tape.watched_variables() if "kernel" in v.name]
    gradients = tape.gradient(loss, maps + head_variables)
    assert embeddings.shape == (1, 2, 4)
    np.testing.assert_allclose(np.linalg.norm(embeddings.numpy(), axis=-1), 1.0, rtol=1e-5)
    reached = [g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in gradients]
    assert any(reached[:4]) == trains_features, reached
    # The head's own layers train either way: two convolutions and two dense layers.
    assert len(head_variables) == 4 and all(reached[4:]), reached


def test_image_crops_are_the_rois_pixels():
    # A 9x9 image of zeros with a 3x3 block of (128, 256, -128) at rows and columns 3..5.
    # Normalized boxes map 0..1 to pixel centres 0..8, as for the pyramid's crops.
    image = np.zeros((1, 9, 9, 3), np.float32)
    image[0, 3:6, 3:6] = [128, 256, -128]
    rois = np.array([[[3 / 8, 3 / 8, 5 / 8, 5 / 8], [0, 0, 2 / 8, 2 / 8]]], np.float32)
    crops = ImageROICrop((3, 3))([tf.constant(image), tf.constant(rois)]).numpy()
    assert crops.shape == (1, 2, 3, 3, 3)
    np.testing.assert_allclose(crops[0, 0], np.broadcast_to([1, 2, -1], (3, 3, 3)))
    np.testing.assert_allclose(crops[0, 1], 0)


def test_the_head_sees_the_image_only_when_asked(tiny_config_class):
    def assoc_layers(config):
        model = build_inference_model(config)
        return {layer.name: [tuple(w.shape) for w in layer.weights]
                for layer in model.layers if layer.name.startswith("mrcnn_assoc")}
    config = derive_config(tiny_config_class, ASSOCIATION_EMBEDDING_SIZE=8)
    features = assoc_layers(config)
    both = assoc_layers(derive_config(type(config), ASSOCIATION_SEES_IMAGE=True))
    assert "mrcnn_assoc_image_crop" not in features and "mrcnn_assoc_image_crop" in both
    # Only the first convolution widens, by the image's channels.
    (kernel, _), (wider, _) = features["mrcnn_assoc_conv1"], both["mrcnn_assoc_conv1"]
    assert wider == kernel[:2] + (kernel[2] + config.IMAGE_CHANNEL_COUNT, kernel[3])
    assert {k: v for k, v in both.items() if k not in ("mrcnn_assoc_conv1",
            "mrcnn_assoc_image_crop", "mrcnn_assoc_features_and_image")} == \
        {k: v for k, v in features.items() if k != "mrcnn_assoc_conv1"}


# ---------------------------------------------------------------- data

def _frames(videos, frames, seed):
    dataset = MovingShapesDataset()
    dataset.load_videos(videos, frames, 128, 128, seed=seed, objects=(3, 4))
    dataset.prepare()
    return dataset


@pytest.fixture(scope="module")
def train_frames():
    """Two videos of three frames: four runs of two frames, all seen in each epoch."""
    return _frames(2, 3, seed=1)


@pytest.fixture(scope="module")
def val_frames():
    return _frames(2, 3, seed=2)


def test_instance_ids_follow_the_kept_instances(assoc_config, train_frames):
    anchors = np.zeros((1, 4), np.float32) + [0, 0, 16, 16]
    for image_id in range(6):
        example = load_training_example(train_frames, assoc_config, image_id, anchors, None,
                                        np.random.default_rng(0))
        ids = train_frames.load_instance_ids(image_id)
        count = len(ids)
        assert example.gt_instance_ids.dtype == np.int32
        assert example.gt_instance_ids.shape == (assoc_config.MAX_GT_INSTANCES,)
        np.testing.assert_array_equal(example.gt_instance_ids[:count], ids)
        assert not example.gt_instance_ids[count:].any()
        np.testing.assert_array_equal(example.gt_class_ids[:count],
                                      train_frames.load_mask(image_id)[1])


def test_head_on_without_identities_is_a_clear_error(assoc_config):
    shapes = ShapesDataset()
    shapes.load_shapes(2, 128, 128, seed=0)
    shapes.prepare()
    with pytest.raises(ValueError, match="load_instance_ids.*None.*ASSOCIATION_EMBEDDING_SIZE"):
        load_training_example(shapes, assoc_config, 0, np.zeros((1, 4)), None,
                              np.random.default_rng(0))
    with pytest.raises(ValueError, match="'video' and 'frame'.*SEQUENCE_FRAMES = 1"):
        sequence_runs(shapes, 2)


def test_sequence_batches_hold_runs_of_consecutive_frames(assoc_config, train_frames):
    runs = sequence_runs(train_frames, 2)
    assert runs.shape == (2 * 2, 2)
    np.testing.assert_array_equal(runs, [[0, 1], [1, 2], [3, 4], [4, 5]])
    generator = DataGenerator(train_frames, assoc_config, seed=0, steps_per_epoch=8)
    starts = []
    for index in range(len(generator)):
        inputs = generator[index][0]
        assert len(inputs) == 8
        image_ids = [int(parse_image_meta(meta[None])["image_id"][0]) for meta in inputs[1]]
        first, second = (train_frames.image_info[i] for i in image_ids)
        assert first["video"] == second["video"] and second["frame"] == first["frame"] + 1
        # The run's frames share their objects: every id of the first frame but the
        # hidden ones is in the second.
        assert set(inputs[7][0][inputs[7][0] > 0]) & set(inputs[7][1][inputs[7][1] > 0])
        starts.append(image_ids[0])
    # Shuffled by run, each pass anew: not in dataset order.
    assert sorted(starts[:4]) == sorted(starts[4:]) == [0, 1, 3, 4]
    assert starts[:4] != starts[4:] or starts[:4] != sorted(starts[:4])


def test_sequence_runs_give_a_whole_run_the_same_augmentation(assoc_config, train_frames):
    from mrcnn.data import Augmenter

    generator = DataGenerator(train_frames, assoc_config, seed=3, steps_per_epoch=8,
                              augmentation=Augmenter(fliplr=0.5, flipud=0.5))
    plain = DataGenerator(train_frames, assoc_config, seed=3, steps_per_epoch=8)
    for index in range(8):
        flipped, unflipped = generator[index][0], plain[index][0]
        # Boxes of the same frame, augmented or not: both frames moved alike.
        moves = [_flip_of(flipped[5][j], unflipped[5][j]) for j in range(2)]
        assert moves[0] == moves[1]


def _flip_of(boxes, original, size=128):
    """Which flip turns the original boxes into boxes: (left-right, up-down)."""
    boxes, original = boxes[original.any(axis=1)], original[original.any(axis=1)]
    for lr in (False, True):
        for ud in (False, True):
            y1, x1, y2, x2 = original.T
            if lr:
                x1, x2 = size - x2, size - x1
            if ud:
                y1, y2 = size - y2, size - y1
            if np.allclose(np.sort(np.stack([y1, x1, y2, x2], 1), 0), np.sort(boxes, 0)):
                return lr, ud
    raise AssertionError("the boxes are no flip of the originals")


# ---------------------------------------------------------------- graphs

def test_detection_targets_carry_the_instance_id_of_each_positive():
    layer = DetectionTargetLayer(8, 0.5, mask_shape=(4, 4), use_mini_mask=False)
    gt_boxes = np.array([[0.1, 0.1, 0.4, 0.4], [0.5, 0.5, 0.9, 0.9], [0, 0, 0, 0]], np.float32)
    proposals = np.array([[0.1, 0.1, 0.4, 0.4], [0.52, 0.5, 0.9, 0.9], [0.0, 0.6, 0.1, 0.7],
                          [0.6, 0.0, 0.7, 0.1], [0, 0, 0, 0]], np.float32)
    inputs = [proposals[None], np.array([[1, 2, 0]], np.int32), gt_boxes[None],
              np.ones((1, 16, 16, 3), bool)]
    ids = np.array([[7, 9, 0]], np.int32)
    rois, class_ids, _, _, instance_ids = (np.asarray(t)[0] for t in layer(inputs + [ids]))
    assert sorted(class_ids[class_ids > 0]) == [1, 2]
    np.testing.assert_array_equal(instance_ids, np.select([class_ids == 1, class_ids == 2],
                                                          [7, 9], 0))
    assert len(layer(inputs)) == 4



def _layers(model):
    return {name: list(zip(_classic_weight_names(layer), [tuple(w.shape) for w in layer.weights]))
            for name, layer in weighted_layers(model).items()}


def _head_off(config):
    return derive_config(type(config), ASSOCIATION_EMBEDDING_SIZE=None, SEQUENCE_FRAMES=1,
                         LOSS_FUNCTIONS={})


@pytest.fixture(scope="module")
def head_off_inference(assoc_config):
    off = _head_off(assoc_config)
    return build_inference_model(off)


def test_the_head_adds_only_its_own_layers(assoc_config, head_off_inference, trained):
    on_inference = trained["inference"].keras_model
    off = _layers(head_off_inference)
    on = _layers(on_inference)
    assert not [name for name in off if "assoc" in name]
    assert {name: w for name, w in on.items() if not name.startswith("mrcnn_assoc_")} == off
    assert sorted(set(on) - set(off)) == sorted(ASSOCIATION_LAYERS)
    assert len(head_off_inference.outputs) == 7 and len(on_inference.outputs) == 8
    assert [t.name for t in head_off_inference.inputs] == \
        [t.name for t in on_inference.inputs]
    training = trained["model"].keras_model
    assert [t.name for t in training.inputs][-1] == "input_gt_instance_ids"
    assert {name for name in _layers(training) if name.startswith("mrcnn_assoc")} == \
        set(on) - set(off)
    # The sample's settings are wired into both graphs.
    for model in (training, on_inference):
        names = {layer.name for layer in model.layers}
        assert {"mrcnn_assoc_image_crop", "mrcnn_assoc_features_fixed"} <= names


def test_head_off_training_graph_is_unchanged(assoc_config):
    off = _head_off(assoc_config)
    model = build_training_model(off)
    assert [t.name for t in model.inputs] == [
        "input_image", "input_image_meta", "input_rpn_match", "input_rpn_bbox",
        "input_gt_class_ids", "input_gt_boxes", "input_gt_masks"]
    assert not [layer.name for layer in model.layers if "assoc" in layer.name]
    assert len(model.get_layer("proposal_targets").output) == 4


# ---------------------------------------------------------------- training and detect

@pytest.fixture(scope="module")
def trained(assoc_config, train_frames, tmp_path_factory):
    keras.utils.set_random_seed(0)
    model_dir = tmp_path_factory.mktemp("assoc")
    model = MaskRCNN("training", assoc_config, str(model_dir))
    # Only the head trains: the (random) RPN and its proposals stay fixed, so the loss's
    # course is the head's. Twelve steps learn the training videos, not yet others: the
    # validation runs on them too (each run once), which checks its pipeline, not
    # generalization.
    history = model.train(train_frames, train_frames, learning_rate=0.002, epochs=3,
                          layers=r"mrcnn_assoc_.*", resume=False, workers=1, verbose=0)
    path = str(model_dir / "assoc.h5")
    model.keras_model.save_weights(path)
    inference = MaskRCNN("inference", assoc_config, str(model_dir))
    inference.load_weights(path)
    return {"history": history.history, "model": model, "inference": inference,
            "path": path, "model_dir": model_dir}


def test_fit_reports_the_association_loss_going_down(trained):
    history = trained["history"]
    assert {"mrcnn_assoc_loss", "val_mrcnn_assoc_loss"} <= set(history)
    train, val = history["mrcnn_assoc_loss"], history["val_mrcnn_assoc_loss"]
    assert train[0] > 0 and val[0] > 0
    assert train[-1] < train[0] and val[-1] < val[0], history


def test_detect_returns_unit_embeddings_aligned_with_the_detections(trained, val_frames,
                                                                    assoc_config):
    images = [val_frames.load_image(i) for i in range(3)]
    results = trained["inference"].detect(images)
    assert sum(len(r["rois"]) for r in results) > 0
    for r in results:
        count = len(r["rois"])
        assert r["embeddings"].shape == (count, assoc_config.ASSOCIATION_EMBEDDING_SIZE)
        assert r["embeddings"].dtype == np.float32
        assert r["masks"].shape[2] == count == len(r["class_ids"])
        np.testing.assert_allclose(np.linalg.norm(r["embeddings"], axis=1), 1.0, atol=1e-5)


def test_head_off_files_load_with_the_head_left_as_initialized(trained, head_off_inference,
                                                               tmp_path):
    classic = str(tmp_path / "classic.h5")
    head_off_inference.save_weights(classic)
    model = trained["inference"]
    before = [w.numpy() for w in model.keras_model.get_layer("mrcnn_assoc_fc").weights]
    with pytest.raises(WeightFileError):
        model.load_weights(classic)
    for exclude in (None, "heads-if-mismatch"):
        report = model.load_weights(classic, by_name=True, exclude=exclude)
        assert "mrcnn_assoc_fc" in report.not_in_file and "res2a_branch2a" in report.loaded
        after = [w.numpy() for w in model.keras_model.get_layer("mrcnn_assoc_fc").weights]
        assert all(np.array_equal(a, b) for a, b in zip(before, after))
    # And back: a head-on file fills a head-off model by name.
    report = _load_into(head_off_inference, trained["path"])
    assert "mrcnn_assoc_fc" in report.unused_in_file


def test_a_head_trained_without_the_image_crop_does_not_load_silently(assoc_config, trained,
                                                                      tmp_path):
    without = build_inference_model(derive_config(type(assoc_config),
                                                  ASSOCIATION_SEES_IMAGE=False))
    with pytest.raises(WeightFileError, match="ASSOCIATION_SEES_IMAGE") as error:
        without.load_weights(trained["path"], by_name=True)
    assert "mrcnn_assoc_conv1" in str(error.value)
    # The hint's exclusion loads everything else and leaves the head as initialized.
    report = without.load_weights(trained["path"], by_name=True,
                                  exclude=list(ASSOCIATION_LAYERS))
    assert sorted(report.excluded) == sorted(ASSOCIATION_LAYERS)
    assert "res2a_branch2a" in report.loaded


def _load_into(model, path):
    from mrcnn.weights import load_weights
    return load_weights(model, path, by_name=True)
