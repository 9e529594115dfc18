"""The moving-shapes video dataset: determinism, identities, masks, motion and crossings."""
import math

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from mrcnn.metrics import compute_overlaps_masks
from mrcnn.datasets.moving_shapes import MovingShapesDataset, shape_mask

SIZE = 128
VIDEOS = 12
FRAMES = 8


def make_dataset(seed, videos=VIDEOS, **kwargs):
    dataset = MovingShapesDataset()
    dataset.load_videos(videos, FRAMES, SIZE, SIZE, seed=seed, **kwargs)
    dataset.prepare()
    return dataset


@pytest.fixture(scope="module")
def dataset():
    return make_dataset(seed=3)


def test_classes_and_order(dataset):
    assert dataset.class_names == ["BG", "square", "circle", "triangle"]
    assert dataset.num_images == VIDEOS * FRAMES
    assert dataset.video_ids() == list(range(VIDEOS))
    # Ordered video by video, frame by frame.
    places = [(info["video"], info["frame"]) for info in dataset.image_info]
    assert places == [(v, f) for v in range(VIDEOS) for f in range(FRAMES)]
    assert dataset.video_image_ids(2) == list(range(2 * FRAMES, 3 * FRAMES))
    assert dataset.sequence_of(2 * FRAMES + 5) == 2
    with pytest.raises(ValueError, match="no video 99"):
        dataset.video_image_ids(99)


def test_same_seed_same_videos(dataset):
    again = make_dataset(seed=3)
    for image_id in (0, 13, VIDEOS * FRAMES - 1):
        np.testing.assert_array_equal(dataset.load_image(image_id), again.load_image(image_id))
        for a, b in zip(dataset.frame_ground_truth(image_id).values(),
                        again.frame_ground_truth(image_id).values()):
            np.testing.assert_array_equal(a, b)
    other = make_dataset(seed=4)
    assert not np.array_equal(dataset.load_image(0), other.load_image(0))


def test_identities_are_consistent_and_unique(dataset):
    owner = {}
    for image_id in dataset.image_ids:
        info = dataset.image_info[image_id]
        ids = dataset.load_instance_ids(image_id)
        _, class_ids = dataset.load_mask(image_id)
        assert ids.dtype == np.int32 and len(ids) == len(class_ids) and len(set(ids)) == len(ids)
        assert (ids >= 1).all()
        appearance = {i: (name, color, dims[2])
                      for i, (name, color, dims) in zip(info["instance_ids"], info["shapes"])}
        for instance, class_id in zip(ids, class_ids):
            # Same object: same video, class, colour and size in every frame.
            key = (info["video"], class_id, appearance[instance])
            assert owner.setdefault(int(instance), key) == key
    videos_of_ids = {}
    for instance, (video, _, _) in owner.items():
        videos_of_ids.setdefault(video, set()).add(instance)
    assert len(videos_of_ids) == VIDEOS  # and ids never shared: owner has one video per id


def test_ids_continue_across_loads():
    dataset = MovingShapesDataset()
    dataset.load_videos(2, 3, SIZE, SIZE, seed=0)
    first = {int(i) for info in dataset.image_info for i in info["instance_ids"]}
    dataset.load_videos(2, 3, SIZE, SIZE, seed=0)
    dataset.prepare()
    second = {int(i) for info in dataset.image_info[6:] for i in info["instance_ids"]}
    assert not first & second and min(second) == max(first) + 1
    assert dataset.video_ids() == [0, 1, 2, 3]


def test_masks_match_the_drawing(dataset):
    for image_id in range(0, VIDEOS * FRAMES, 7):
        info = dataset.image_info[image_id]
        image = dataset.load_image(image_id)
        truth = dataset.frame_ground_truth(image_id)
        masks = truth["masks"]
        assert masks.dtype == bool and masks.shape[:2] == (SIZE, SIZE)
        assert masks.sum(axis=-1).max() <= 1  # visible parts do not overlap
        colors = {i: color for i, (_, color, _) in zip(info["instance_ids"], info["shapes"])}
        for k, instance in enumerate(truth["instance_ids"]):
            assert (image[masks[..., k]] == colors[instance]).all()
        assert (image[~masks.any(axis=-1)] == info["bg_color"]).all()


def test_objects_move_and_turn(dataset):
    steps, turns = [], []
    for video in dataset.video_ids():
        first, second = (dataset.image_info[i]["shapes"]
                         for i in dataset.video_image_ids(video)[:2])
        for (_, _, (y0, x0, s, a0)), (_, _, (y1, x1, _, a1)) in zip(first, second):
            steps.append(math.hypot(y1 - y0, x1 - x0) / s)
            turns.append(abs(a1 - a0))
            assert s <= y0 <= SIZE - 1 - s and s <= x0 <= SIZE - 1 - s  # fully inside
    # Bounces shorten some steps; most objects move by at least 0.4 s per frame.
    assert np.median(steps) >= 0.4 and max(steps) <= 1.5 + 1e-6
    assert max(turns) > 0.05


def test_turned_shape_masks():
    square = shape_mask("square", (50.0, 50.0, 10, 0.0), 100, 100)
    diamond = shape_mask("square", (50.0, 50.0, 10, math.pi / 4), 100, 100)
    rows = np.flatnonzero(square.any(axis=1))
    assert rows.min() == 40 and rows.max() == 60  # half side 10
    rows = np.flatnonzero(diamond.any(axis=1))
    assert abs((50 - rows.min()) - 10 * math.sqrt(2)) <= 1  # a corner points up
    assert abs(square.sum() - diamond.sum()) / square.sum() < 0.05
    # A half turn puts the triangle's apex at the bottom.
    up = shape_mask("triangle", (50.0, 50.0, 10, 0.0), 100, 100)
    down = shape_mask("triangle", (50.0, 50.0, 10, math.pi), 100, 100)
    assert np.flatnonzero(up.any(axis=1)).min() == 40  # apex s above the centre
    assert abs(np.flatnonzero(down.any(axis=1)).max() - 60) <= 1
    assert up[:50].sum() < up[50:].sum() and down[:50].sum() > down[51:].sum()
    assert abs(int(up.sum()) - int(down.sum())) <= 0.05 * up.sum()
    with pytest.raises(ValueError, match="unknown shape"):
        shape_mask("star", (50.0, 50.0, 10, 0.0), 100, 100)


def test_crossings_occur_and_defeat_overlap_linking(dataset):
    """Objects overlap and hide each other, and linking by mask IoU alone goes wrong."""
    hidden = overlapping = wrong_links = 0
    for video in dataset.video_ids():
        image_ids = dataset.video_image_ids(video)
        for image_id in image_ids:
            info = dataset.image_info[image_id]
            full = np.stack([shape_mask(name, dims, SIZE, SIZE)
                             for name, _, dims in info["shapes"]], axis=-1)
            overlaps = compute_overlaps_masks(full, full)
            overlapping += int((np.triu(overlaps, 1) > 0).any())
            visible = dataset.load_mask(image_id)[0].sum(axis=(0, 1))
            hidden += int((visible < full.sum(axis=(0, 1))[dataset._visible(info)]).any())
        for previous, current in zip(image_ids, image_ids[1:]):
            a, b = dataset.frame_ground_truth(previous), dataset.frame_ground_truth(current)
            rows, cols = linear_sum_assignment(-compute_overlaps_masks(a["masks"], b["masks"]))
            wrong_links += int((a["instance_ids"][rows] != b["instance_ids"][cols]).sum())
    assert overlapping >= VIDEOS and hidden >= 1 and wrong_links >= 1


def test_hidden_object_leaves_the_frame_and_keeps_its_id():
    dataset = MovingShapesDataset()
    dataset.load_videos(1, 2, SIZE, SIZE, seed=0, objects=(2, 2))
    info = dataset.image_info[1]
    # The top object grows over the bottom one: the bottom one is completely hidden.
    (name, color, (y, x, s, angle)), top = info["shapes"]
    info["shapes"] = [(name, color, (y, x, s, angle)), ("square", top[1], (y, x, 4 * s, 0.0))]
    dataset.prepare()
    masks, class_ids = dataset.load_mask(1)
    assert masks.shape[-1] == len(class_ids) == 1
    np.testing.assert_array_equal(dataset.load_instance_ids(1), info["instance_ids"][1:])
    np.testing.assert_array_equal(dataset.load_instance_ids(0), info["instance_ids"])


def test_bad_arguments():
    with pytest.raises(ValueError, match="too small"):
        MovingShapesDataset().load_videos(1, 4, 32, 128, seed=0)
    with pytest.raises(ValueError, match="frames >= 1"):
        MovingShapesDataset().load_videos(1, 0, 128, 128, seed=0)
    with pytest.raises(ValueError, match="objects"):
        MovingShapesDataset().load_videos(1, 4, 128, 128, seed=0, objects=(3, 2))
