"""Two-step evaluation on any Dataset, and the report: confusion matrix, curves, worst images."""
import contextlib
import csv
import io
import json

import numpy as np
import pytest
import skimage.io
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mrcnn import inference
from mrcnn.boxes import extract_bboxes
from mrcnn.coco import STAT_NAMES
from mrcnn.dataset import Dataset
from mrcnn.evaluation import (ImageDetections, coco_results, detect_dataset, ground_truth,
                              run_cocoeval, score_detections)
from mrcnn.report import confusion_matrix, match_instances, write_report


def box_mask(shape, y1, x1, y2, x2):
    mask = np.zeros(shape, bool)
    mask[y1:y2, x1:x2] = True
    return mask


class HandDataset(Dataset):
    """Three 40 x 50 images with hand-placed rectangles of classes a, b, c; image 2
    also has a crowd region (negative class id)."""
    SHAPE = (40, 50)
    INSTANCES = {0: [(1, (2, 2, 12, 12)), (2, (20, 20, 35, 40))],
                 1: [(3, (5, 5, 25, 25)), (1, (28, 30, 38, 48))],
                 2: [(2, (0, 0, 10, 10)), (-3, (20, 0, 40, 20))]}

    def __init__(self):
        super().__init__()
        for class_id, name in enumerate("abc", start=1):
            self.add_class("hand", class_id, name)
        for image_id in self.INSTANCES:
            self.add_image("hand", image_id, path=None)
        self.prepare()

    def load_image(self, image_id):
        image = np.full(self.SHAPE + (3,), 40 * image_id, np.uint8)
        for class_id, box in self.INSTANCES[image_id]:
            image[box_mask(self.SHAPE, *box)] = 60 * abs(class_id)
        return image

    def load_mask(self, image_id):
        items = self.INSTANCES[image_id]
        masks = np.stack([box_mask(self.SHAPE, *box) for _, box in items], axis=-1)
        return masks, np.array([c for c, _ in items], np.int32)


def detections_of(image_id, items):
    """ImageDetections from (class id, score, box) items."""
    masks = np.stack([box_mask(HandDataset.SHAPE, *box) for _, _, box in items], axis=-1) \
        if items else np.zeros(HandDataset.SHAPE + (0,), bool)
    return ImageDetections.from_result(image_id, {
        "rois": extract_bboxes(masks), "class_ids": np.array([c for c, _, _ in items]),
        "scores": np.array([s for _, s, _ in items], np.float32), "masks": masks})


def perfect(dataset):
    return [detections_of(i, [(c, 1.0, box) for c, box in items if c > 0])
            for i, items in dataset.INSTANCES.items()]


# Image 0: "a" found; "b" found as "c". Image 1: "c" found; "a" missed; a false "b";
# a low-scoring false "a" (below min_score). Image 2: "b" shifted too far (IoU 0.33)
# is a false positive and a miss; a detection on the crowd region is not counted.
IMPERFECT = {
    0: [(1, 0.9, (2, 2, 12, 12)), (3, 0.8, (20, 21, 35, 40))],
    1: [(3, 0.95, (5, 5, 25, 24)), (2, 0.7, (0, 30, 10, 45)), (1, 0.2, (30, 0, 38, 8))],
    2: [(2, 0.6, (0, 5, 10, 15)), (1, 0.9, (21, 1, 39, 19))],
}
# rows: true BG, a, b, c; columns: predicted BG, a, b, c.
EXPECTED_MATRIX = [[0, 0, 2, 0],
                   [1, 1, 0, 0],
                   [1, 0, 0, 1],
                   [0, 0, 0, 1]]


@pytest.fixture(scope="module")
def hand():
    dataset = HandDataset()
    return dataset, ground_truth(dataset)


def test_ground_truth_from_load_mask(hand):
    dataset, truth = hand
    assert truth.image_ids == {0: 0, 1: 1, 2: 2} and truth.category_ids == {1: 1, 2: 2, 3: 3}
    class_ids, rles, crowd = truth.instances(2)
    np.testing.assert_array_equal(class_ids, [2, 3])
    np.testing.assert_array_equal(crowd, [False, True])
    np.testing.assert_array_equal(mask_utils.decode(rles).astype(bool),
                                  np.abs(dataset.load_mask(2)[0]))
    annotation = truth.coco.imgToAnns[1][0]
    assert annotation["bbox"] == [5, 5, 20, 20] and annotation["area"] == 400


@pytest.mark.parametrize("eval_type", ["bbox", "segm"])
def test_ground_truth_fed_back_scores_1(hand, eval_type):
    dataset, truth = hand
    stats = score_detections(perfect(dataset), truth, dataset.class_names, eval_type)
    assert [stats[k] for k in ("AP", "AP50", "AP75", "AR100")] == pytest.approx([1.0] * 4)
    assert stats["per_class_ap"] == pytest.approx({"a": 1.0, "b": 1.0, "c": 1.0})


def test_imperfect_detections_match_a_direct_cocoeval(hand):
    dataset, truth = hand
    detections = [detections_of(i, items) for i, items in IMPERFECT.items()]
    stats = score_detections(detections, truth, dataset.class_names, "segm")
    # The same scoring written out with pycocotools alone.
    images, annotations, results = [], [], []
    for image_id, items in dataset.INSTANCES.items():
        images.append({"id": image_id, "height": 40, "width": 50})
        for class_id, (y1, x1, y2, x2) in items:
            rle = mask_utils.encode(np.asfortranarray(box_mask((40, 50), y1, x1, y2, x2),
                                                      np.uint8))
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": abs(class_id), "segmentation": rle,
                                "area": float((y2 - y1) * (x2 - x1)),
                                "bbox": [x1, y1, x2 - x1, y2 - y1],
                                "iscrowd": int(class_id < 0)})
        for class_id, score, (y1, x1, y2, x2) in IMPERFECT[image_id]:
            rle = mask_utils.encode(np.asfortranarray(box_mask((40, 50), y1, x1, y2, x2),
                                                      np.uint8))
            results.append({"image_id": image_id, "category_id": class_id, "score": score,
                            "segmentation": rle})
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = {"images": images, "annotations": annotations,
                        "categories": [{"id": k, "name": n} for k, n in enumerate("abc", 1)]}
        coco.createIndex()
        direct = COCOeval(coco, coco.loadRes(results), "segm")
        direct.evaluate()
        direct.accumulate()
        direct.summarize()
    assert [stats[name] for name in STAT_NAMES] == pytest.approx(direct.stats.tolist())
    assert 0 < stats["AP"] < 1


def test_match_instances_is_greedy_by_score():
    gt = [box_mask((10, 10), 0, 0, 5, 5), box_mask((10, 10), 0, 0, 5, 6)]
    rles = mask_utils.encode(np.asfortranarray(np.stack(gt, -1), np.uint8))
    pred = mask_utils.encode(np.asfortranarray(np.stack(gt[::-1], -1), np.uint8))
    # The higher score takes its best overlap first; the other gets what is left.
    pred_match, gt_match = match_instances(list(rles), np.zeros(2, bool), list(pred),
                                           np.array([0.2, 0.9]))
    np.testing.assert_array_equal(pred_match, [1, 0])
    np.testing.assert_array_equal(gt_match, [1, 0])


def test_confusion_matrix_equals_the_hand_count(hand):
    dataset, truth = hand
    detections = [detections_of(i, items) for i, items in IMPERFECT.items()]
    confusion = confusion_matrix(detections, truth, dataset.num_classes, min_score=0.5)
    np.testing.assert_array_equal(confusion.matrix, EXPECTED_MATRIX)
    # Errors: image 0 one wrong class; image 1 a false "b" and the missed "a";
    # image 2 the shifted "b" (false positive) and the same "b" missed.
    assert confusion.errors == {0: 1, 1: 2, 2: 2}
    # Without the score threshold the false "a" of image 1 counts as well.
    low = confusion_matrix(detections, truth, dataset.num_classes, min_score=0.0)
    assert low.matrix[0, 1] == 1 and low.errors[1] == 3


def test_confusion_matrix_names_a_class_id_beyond_the_dataset(hand):
    dataset, truth = hand
    detections = [detections_of(i, items) for i, items in IMPERFECT.items()]
    with pytest.raises(ValueError, match="class id .* but the dataset has 2 classes"):
        confusion_matrix(detections, truth, 2, min_score=0.0)


def nonblank(path, min_colors=5):
    image = skimage.io.imread(path)
    return image.ndim == 3 and len(np.unique(image.reshape(-1, image.shape[-1]), axis=0)) \
        >= min_colors


def test_report_files(hand, tmp_path):
    dataset, truth = hand
    detections = [detections_of(i, items) for i, items in IMPERFECT.items()]
    evaluator = run_cocoeval(coco_results(detections, truth), truth, "segm")
    report = write_report(dataset, detections, truth, evaluator, str(tmp_path), "hand",
                          worst=2, verbose=0)
    with open(report["confusion_csv"], newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["true \\ predicted", "background", "a", "b", "c"]
    assert [[int(v) for v in row[1:]] for row in rows[1:]] == EXPECTED_MATRIX
    assert [row[0] for row in rows[1:]] == ["background", "a", "b", "c"]
    assert report["worst_images"] == [1, 2]  # most errors first, ties by image order
    for key in ("confusion_png", "pr_curves_png", "worst_png"):
        assert nonblank(report[key]), key


class FakeModel:
    """detect() gives fixed detections for the images it recognises; counts its calls."""

    class config:  # noqa: N801 - mimics model.config
        BATCH_SIZE = 2

    def __init__(self, dataset, items):
        self.by_image = {}
        for image_id, image_items in items.items():
            d = detections_of(image_id, image_items)
            self.by_image[dataset.load_image(image_id).tobytes()] = {
                "rois": d.rois, "class_ids": d.class_ids, "scores": d.scores,
                "masks": d.masks}
        self.calls = []

    def detect(self, images):
        self.calls.append(len(images))
        return [self.by_image[image.tobytes()] for image in images]


class CountingDataset(HandDataset):
    def __init__(self):
        super().__init__()
        self.reads = []

    def load_image(self, image_id):
        self.reads.append(image_id)
        return super().load_image(image_id)


def test_detect_dataset_reads_each_image_once_in_batches():
    dataset = CountingDataset()
    model = FakeModel(dataset, IMPERFECT)
    dataset.reads.clear()
    detections = detect_dataset(model, dataset, verbose=0)
    assert model.calls == [2, 1] and dataset.reads == [0, 1, 2]
    assert [d.image_id for d in detections] == [0, 1, 2]
    np.testing.assert_array_equal(detections[1].masks, model.by_image[
        dataset.load_image(1).tobytes()]["masks"])
    assert detect_dataset(model, dataset, limit=1, verbose=0)[0].image_id == 0


def test_evaluate_detects_once_for_both_types_and_writes_the_report(tmp_path, capsys):
    dataset = CountingDataset()
    model = FakeModel(dataset, IMPERFECT)
    dataset.reads.clear()
    stats = inference.evaluate(model, dataset, None, ("bbox", "segm"), 0, str(tmp_path), "x")
    assert model.calls == [2, 1]
    # Read once for detection; the report reads again only the images it draws
    # (here all three: each has an error).
    assert sorted(dataset.reads) == [0, 0, 1, 1, 2, 2]
    truth = ground_truth(dataset)
    detections = [detections_of(i, items) for i, items in IMPERFECT.items()]
    for eval_type in ("bbox", "segm"):
        expected = score_detections(detections, truth, dataset.class_names, eval_type)
        assert {k: v for k, v in stats[eval_type].items() if k != "results_path"} == expected
    assert json.loads((tmp_path / "x_stats.json").read_text())["segm"]["AP"] == \
        stats["segm"]["AP"]
    names = {p.name for p in tmp_path.iterdir()}
    assert {"x_bbox_results.json", "x_segm_results.json", "x_confusion.csv",
            "x_confusion.png", "x_pr_curves.png", "x_worst.png"} <= names
    assert "segm: AP " in capsys.readouterr().out


def test_mrcnn_evaluate_on_shapes_writes_stats_and_report(monkeypatch, tmp_path, capsys):
    from mrcnn import cli, model as model_module

    class GroundTruthModel:
        """Stands in for MaskRCNN: detects exactly the ground truth of the shapes images."""

        def __init__(self, mode, config, model_dir):
            self.config = config

        def detect(self, images):
            results = []
            for image in images:
                image_id = self.by_image[image.tobytes()]
                masks, class_ids = self.dataset.load_mask(image_id)
                results.append({"rois": extract_bboxes(masks), "class_ids": class_ids,
                                "scores": np.ones(len(class_ids), np.float32),
                                "masks": masks})
            return results

    real_evaluate = cli.evaluate

    def evaluate(model, dataset, coco, *args):
        model.dataset = dataset
        model.by_image = {dataset.load_image(i).tobytes(): i for i in dataset.image_ids}
        return real_evaluate(model, dataset, coco, *args)

    monkeypatch.setattr(model_module, "MaskRCNN", GroundTruthModel)
    monkeypatch.setattr(cli, "evaluate", evaluate)
    assert cli.main(["evaluate", "--dataset", "shapes", "--weights", "none", "--count", "4",
                     "--out", str(tmp_path), "--logs", str(tmp_path)]) == 0
    stats = json.loads((tmp_path / "shapes_shapes_val_stats.json").read_text())
    assert stats["segm"]["AP"] == pytest.approx(1.0) and stats["bbox"]["AP50"] == \
        pytest.approx(1.0)
    results = json.loads((tmp_path / "shapes_shapes_val_segm_results.json").read_text())
    assert {r["image_id"] for r in results} == {0, 1, 2, 3}
    with open(tmp_path / "shapes_shapes_val_confusion.csv", newline="") as f:
        rows = list(csv.reader(f))
    matrix = np.array([[int(v) for v in row[1:]] for row in rows[1:]])
    assert matrix[0].sum() == matrix[:, 0].sum() == 0          # no error at all
    assert np.trace(matrix) == len(results)
    assert "segm: AP 1.000" in capsys.readouterr().out
