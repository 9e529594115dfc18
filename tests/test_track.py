"""The tracker, the MOTS text format and the tracking scores, on hand-made sequences."""
import numpy as np
import pytest

from mrcnn.datasets.moving_shapes import shape_mask
from mrcnn.mots import disjoint_detections, format_frame, read_mots, remove_overlaps, write_mots
from mrcnn.track import Tracker
from mrcnn.track_metrics import evaluate_tracks

H, W = 64, 96
# Two unit embeddings far apart: the appearance of objects A and B.
E_A, E_B = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])


def square(x, y=32, s=8):
    return shape_mask("square", (float(y), float(x), s, 0.0), H, W)


def result(masks, class_ids=None, scores=None, embeddings=None):
    masks = np.stack(masks, axis=-1) if masks else np.zeros((H, W, 0), bool)
    n = masks.shape[-1]
    out = {"masks": masks, "rois": np.zeros((n, 4), np.int32),
           "class_ids": np.ones(n, np.int32) if class_ids is None else np.array(class_ids),
           "scores": np.full(n, 0.9) if scores is None else np.array(scores, float)}
    if embeddings is not None:
        out["embeddings"] = np.array(embeddings, np.float32).reshape(n, -1)
    return out


def crossing():
    """Squares A and B (same class) moving 6 px a frame towards each other along one row:
    at frame 4, B stands exactly where A was at frame 3, so the best-overlapping
    continuation of A's track is B. Detections list B first from frame 4 on."""
    frames = []
    for t in range(7):
        a, b = 20 + 6 * t, 62 - 6 * t
        order = [(a, E_A, 1), (b, E_B, 2)] if t < 4 else [(b, E_B, 2), (a, E_A, 1)]
        frames.append(([square(x) for x, _, _ in order], [e for _, e, _ in order],
                       np.array([i for _, _, i in order])))
    return frames


def run(tracker, frames, with_embeddings=True):
    out = []
    for masks, embeddings, _ in frames:
        out.append(tracker.update(result(masks, embeddings=embeddings if with_embeddings
                                          else None)))
    return out


def identity_changes(frames, track_ids):
    """How many times an object's track id differs from its previous frame's."""
    last, changes = {}, 0
    for (_, _, truth), ids in zip(frames, track_ids):
        for obj, tid in zip(truth, ids):
            changes += int(obj in last and last[obj] != tid)
            last[obj] = tid
    return changes


def test_embeddings_keep_identities_where_iou_swaps_them():
    frames = crossing()
    iou_only = run(Tracker(embedding_weight=0.0), frames)
    with_embeddings = run(Tracker(embedding_weight=1.0), frames)
    no_embeddings = run(Tracker(embedding_weight=1.0), frames, with_embeddings=False)
    # IoU alone follows A's track onto B at frame 4, and B's onto A.
    assert identity_changes(frames, iou_only) == 2
    assert list(iou_only[3]) == [1, 2] and list(iou_only[4]) == [1, 2]  # B now has id 1
    assert identity_changes(frames, with_embeddings) == 0
    assert list(with_embeddings[4]) == [2, 1]
    # Results without embeddings: the same as IoU alone.
    assert [list(i) for i in no_embeddings] == [list(i) for i in iou_only]


def test_cost_matrix_values():
    tracker = Tracker(embedding_weight=1.0, iou_weight=1.0, max_cost=1.0)
    tracker.update(result([square(20)], embeddings=[E_A]))
    shifted = square(26)
    iou = (shifted & square(20)).sum() / (shifted | square(20)).sum()
    cost = tracker.cost_matrix(np.stack([shifted, square(20)], -1), np.array([1, 1]),
                               np.array([E_A, E_B], np.float32))
    np.testing.assert_allclose(cost, [[(0 + 1 - iou) / 2, (np.sqrt(2) / 2 + 0) / 2]],
                               rtol=1e-6)
    # Another class is never linked.
    cost = tracker.cost_matrix(square(20)[..., None], np.array([2]), E_A[None])
    assert np.isinf(cost).all()


def test_fast_motion_is_linked_by_appearance_and_gated_without_it():
    # No overlap at all between frames: IoU alone starts a new track, embeddings link it.
    frames = [([square(20)], [E_A], [1]), ([square(60)], [E_A], [1])]
    assert [list(i) for i in run(Tracker(embedding_weight=0.0), frames)] == [[1], [2]]
    assert [list(i) for i in run(Tracker(embedding_weight=1.0), frames)] == [[1], [1]]
    # ... but not to an object that looks different.
    frames[1] = ([square(60)], [E_B], [2])
    assert [list(i) for i in run(Tracker(embedding_weight=1.0), frames)] == [[1], [2]]


def test_births_deaths_and_memory():
    present, gone = [square(30)], []
    sequence = [present, present, gone, gone, present]
    for memory, expected in ((3, [[1], [1], [], [], [1]]), (1, [[1], [1], [], [], [2]])):
        tracker = Tracker(embedding_weight=0.0, memory=memory)
        ids = [list(tracker.update(result(masks))) for masks in sequence]
        assert ids == expected
    tracker = Tracker(embedding_weight=0.0, memory=1)
    for masks in sequence[:4]:
        tracker.update(result(masks))
    assert tracker.tracks == []  # ended after two missed frames
    # Low scores are not tracked and start nothing; ids keep counting after a reset.
    tracker = Tracker(embedding_weight=0.0, min_score=0.5)
    assert list(tracker.update(result([square(20), square(70)], scores=[0.3, 0.8]))) == [0, 1]
    assert len(tracker.tracks) == 1
    assert list(tracker.update(result([square(20), square(70)], scores=[0.9, 0.8]))) == [2, 1]
    tracker.reset()
    assert tracker.tracks == [] and list(tracker.update(result([square(20)]))) == [1]


def test_class_consistency():
    first, second = result([square(30)], class_ids=[1]), result([square(30)], class_ids=[2])
    for consistent, expected in ((True, [2]), (False, [1])):
        tracker = Tracker(embedding_weight=0.0, class_consistent=consistent)
        tracker.update(first)
        assert list(tracker.update(second)) == expected


def test_tracker_errors():
    with pytest.raises(ValueError, match="not both 0"):
        Tracker(embedding_weight=0.0, iou_weight=0.0)
    with pytest.raises(ValueError, match="memory"):
        Tracker(memory=-1)
    tracker = Tracker()
    bad = result([square(20)])
    bad["scores"] = np.array([0.9, 0.8])
    with pytest.raises(ValueError, match="disagree"):
        tracker.update(bad)
    bad = result([square(20)])
    bad["embeddings"] = np.stack([E_A, E_B])
    with pytest.raises(ValueError, match="embeddings must be"):
        tracker.update(bad)
    tracker.update(result([square(20)]))
    with pytest.raises(ValueError, match="reset"):
        tracker.update(result([np.zeros((32, 32), bool)]))
    assert list(tracker.update(result([]))) == []  # a frame without detections


def test_mots_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    frames = []
    for frame in range(3):
        masks = remove_overlaps(rng.random((H, W, 4)) > 0.6, rng.random(4))
        frames.append((frame, {"ids": np.array([3, 1, 0, 999]),
                               "class_ids": np.array([2, 1, 1, 3]), "masks": masks}))
    path = write_mots(tmp_path / "tracks.txt", frames)
    lines = open(path).read().splitlines()
    assert len(lines) == 9  # the untracked object (id 0) is not written
    frame, object_id, class_id, height, width, _ = lines[0].split()
    assert (frame, object_id, class_id, height, width) == ("0", "1001", "1", str(H), str(W))
    assert [line.split()[1] for line in lines[:3]] == ["1001", "2003", "3999"]
    back = read_mots(path)
    assert sorted(back) == [0, 1, 2]
    for frame, objects in frames:
        order = [1, 0, 3]  # by object id: 1001, 2003, 3999
        np.testing.assert_array_equal(back[frame]["ids"], objects["ids"][order])
        np.testing.assert_array_equal(back[frame]["class_ids"], objects["class_ids"][order])
        np.testing.assert_array_equal(back[frame]["masks"], objects["masks"][..., order])


def test_mots_rules(tmp_path):
    two = np.stack([square(30), square(34)], axis=-1)
    with pytest.raises(ValueError, match="remove_overlaps"):
        format_frame(0, {"ids": [1, 2], "class_ids": [1, 1], "masks": two})
    disjoint = remove_overlaps(two, np.array([0.5, 0.9]))
    np.testing.assert_array_equal(disjoint[..., 1], square(34))  # the higher score keeps all
    np.testing.assert_array_equal(disjoint[..., 0], square(30) & ~square(34))
    with pytest.raises(ValueError, match="1..999"):
        format_frame(0, {"ids": [1000], "class_ids": [1], "masks": two[..., :1]})
    bad = tmp_path / "bad.txt"
    bad.write_text("0 1001 2 64 96 abc\n")
    with pytest.raises(ValueError, match="line 1.*not class 2"):
        read_mots(bad)


def test_scores_of_one_swap():
    """The crossing tracked by IoU alone: both objects switch once (IDSW 2), the best
    one-to-one id mapping covers 8 of 14 detections on each side (IDF1 8/14)."""
    frames = crossing()

    def sequence(track_ids):
        return [{"ids": ids, "class_ids": np.ones(len(ids)), "masks": np.stack(masks, -1)}
                for (masks, _, _), ids in zip(frames, track_ids)]

    truth = {"crossing": sequence([truth for _, _, truth in frames])}
    swapped = evaluate_tracks(truth, {"crossing": sequence(run(Tracker(embedding_weight=0),
                                                               frames))})
    kept = evaluate_tracks(truth, {"crossing": sequence(run(Tracker(), frames))})
    assert swapped["IDSW"] == 2 and kept["IDSW"] == 0
    assert swapped["IDF1"] == pytest.approx(8 / 14) and kept["IDF1"] == pytest.approx(1.0)
    assert swapped["MOTSA"] == pytest.approx(1 - 2 / 14) and kept["MOTSA"] == pytest.approx(1)
    assert swapped["TP"] == kept["TP"] == 14 and swapped["FP"] == swapped["FN"] == 0
    assert kept["HOTA"] == pytest.approx(1.0) and 0 < swapped["HOTA"] < kept["HOTA"]
    # A missed object and a track of the wrong class count as FN (and FP).
    wrong_class = sequence(run(Tracker(), frames))
    wrong_class[0] = {**wrong_class[0], "class_ids": np.array([2, 1])}
    scores = evaluate_tracks(truth, {"crossing": wrong_class})
    assert (scores["FN"], scores["FP"]) == (1, 1)
    with pytest.raises(ValueError, match="frames"):
        evaluate_tracks(truth, {"crossing": wrong_class[:3]})


def test_disjoint_detections_drop_duplicates():
    # A duplicate of another class under a higher-scoring detection, and a neighbour.
    masks = [square(30), square(31), square(60)]
    r = result(masks, class_ids=[1, 2, 1], scores=[0.9, 0.6, 0.8], embeddings=np.eye(3))
    out = disjoint_detections(r)
    np.testing.assert_array_equal(out["class_ids"], [1, 1])
    np.testing.assert_array_equal(out["scores"], [0.9, 0.8])
    np.testing.assert_array_equal(out["embeddings"], np.eye(3)[[0, 2]])
    assert out["rois"].shape == (2, 4) and out["masks"].shape == (H, W, 2)
    np.testing.assert_array_equal(out["masks"][..., 1], square(60))
    assert len(disjoint_detections(r, min_kept=0.0)["scores"]) == 3
