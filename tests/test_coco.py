"""COCO-format loading, validation, results and evaluation on a tiny generated dataset."""
import contextlib
import copy
import io
import json
import os
import tempfile

import numpy as np
import pytest
import scipy.ndimage
import skimage.draw
import skimage.io
from pycocotools import mask as mask_utils
from pycocotools.cocoeval import COCOeval

from mrcnn.boxes import extract_bboxes
from mrcnn.coco import STAT_NAMES, CocoDataset, build_coco_results, evaluate_coco

CATEGORIES = [{"id": 18, "name": "disk"}, {"id": 3, "name": "square"},
              {"id": 5, "name": "blob"}]
COCO_URL_A = "http://images.cocodataset.org/val2017/000000000001.jpg"


def uncompressed_rle(mask):
    """COCO's uncompressed RLE, written independently of pycocotools."""
    flat = mask.flatten(order="F").astype(np.int8)
    changes = np.flatnonzero(np.diff(flat)) + 1
    counts = np.diff(np.concatenate([[0], changes, [flat.size]])).tolist()
    if flat[0]:
        counts = [0] + counts  # counts start with a run of zeros
    return {"size": list(mask.shape), "counts": counts}


def polygon_mask(shape, polygons):
    mask = np.zeros(shape, bool)
    for polygon in polygons:
        rr, cc = skimage.draw.polygon(polygon[1::2], polygon[0::2], shape)
        mask[rr, cc] = True
    return mask


def build_images():
    """(images dict, annotations list, truth) where truth[coco id] = [(mask, cat, crowd, kind)]."""
    images, annotations, truth = [], [], {}
    specs = {1: (40, 48), 7: (36, 44), 12: (40, 40), 20: (32, 32)}
    for coco_id, shape in specs.items():
        entry = {"id": coco_id, "file_name": f"img{coco_id}.png", "height": shape[0],
                 "width": shape[1]}
        if coco_id == 1:
            entry["coco_url"] = COCO_URL_A
        images.append(entry)
        truth[coco_id] = []

    def add(ann_id, coco_id, cat, segmentation, mask, crowd=0, kind="rle"):
        annotations.append({"id": ann_id, "image_id": coco_id, "category_id": cat,
                            "segmentation": segmentation, "iscrowd": crowd})
        truth[coco_id].append((mask, cat, crowd, kind))

    square = [[6, 5, 18, 5, 18, 15, 6, 15]]
    triangle = [[25, 30, 40, 30, 32, 20]]
    add(101, 1, 3, square, polygon_mask((40, 48), square), kind="polygon")
    add(102, 1, 18, triangle, polygon_mask((40, 48), triangle), kind="polygon")
    # Explicit area and bbox (as COCO files have them) on one; the others are filled in.
    rle = mask_utils.merge(mask_utils.frPyObjects(square, 40, 48))
    annotations[0].update(area=float(mask_utils.area(rle)),
                          bbox=mask_utils.toBbox(rle).tolist())

    disk = np.zeros((36, 44), bool)
    disk[skimage.draw.disk((12, 12), 7, shape=disk.shape)] = True
    compressed = mask_utils.encode(np.asfortranarray(disk, np.uint8))
    compressed["counts"] = compressed["counts"].decode("ascii")
    add(201, 7, 18, compressed, disk)
    ellipse = np.zeros((36, 44), bool)
    ellipse[skimage.draw.ellipse(24, 30, 6, 9, shape=ellipse.shape)] = True
    add(202, 7, 3, uncompressed_rle(ellipse), ellipse)

    parts = [[3, 3, 12, 3, 12, 10, 3, 10], [15, 4, 22, 4, 22, 12]]
    add(301, 12, 5, parts, polygon_mask((40, 40), parts), kind="polygon")
    crowd = np.zeros((40, 40), bool)
    crowd[25:35, 5:30] = True
    add(302, 12, 3, uncompressed_rle(crowd), crowd, crowd=1)
    return images, annotations, truth


@pytest.fixture(scope="module")
def coco_dir(tmp_path_factory):
    """A COCO root in the standard layout: annotations/instances_val2017.json, val2017/."""
    root = tmp_path_factory.mktemp("coco")
    images, annotations, truth = build_images()
    rng = np.random.default_rng(0)
    (root / "val2017").mkdir()
    for entry in images:
        # Noise makes every image distinct, so the fake model can recognise them.
        pixels = rng.integers(0, 256, (entry["height"], entry["width"], 3), dtype=np.uint8)
        for mask, cat, _, _ in truth[entry["id"]]:
            pixels[mask] = cat * 10
        skimage.io.imsave(root / "val2017" / entry["file_name"], pixels, check_contrast=False)
    data = {"images": images, "annotations": annotations, "categories": CATEGORIES}
    (root / "annotations").mkdir()
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(data))
    return root, data, truth


def load(location, **kwargs):
    dataset = CocoDataset()
    coco = dataset.load_coco(location, return_coco=True, **kwargs)
    dataset.prepare()
    return dataset, coco


@pytest.fixture(scope="module")
def loaded(coco_dir):
    root = coco_dir[0]
    return load(root, subset="val", year=2017)


def write_variant(coco_dir, tmp_path, change):
    data = copy.deepcopy(coco_dir[1])
    change(data)
    path = tmp_path / "variant.json"
    path.write_text(json.dumps(data))
    return str(path), str(coco_dir[0] / "val2017")


def test_load_from_root_and_from_json_path(coco_dir, loaded):
    dataset, coco = loaded
    assert dataset.class_names == ["BG", "square", "blob", "disk"]  # sorted COCO ids 3, 5, 18
    assert [info["id"] for info in dataset.image_info] == [1, 7, 12, 20]
    info = dataset.image_info[1]
    assert (info["source"], info["width"], info["height"]) == ("coco", 44, 36)
    assert info["path"] == os.path.join(coco_dir[0], "val2017", "img7.png")
    assert [a["id"] for a in info["annotations"]] == [201, 202]
    assert sorted(coco.imgs) == [1, 7, 12, 20]
    # A JSON path takes the images from image_dir.
    same, _ = load(coco_dir[0] / "annotations" / "instances_val2017.json",
                   image_dir=coco_dir[0] / "val2017")
    assert [i["path"] for i in same.image_info] == [i["path"] for i in dataset.image_info]
    np.testing.assert_array_equal(same.load_image(0), dataset.load_image(0))
    assert dataset.load_image(0).shape == (40, 48, 3)


def test_relative_json_path_without_image_dir_reads_images_beside_it(coco_dir, monkeypatch):
    images = coco_dir[0] / "val2017"
    (images / "annotations.json").write_text(json.dumps(coco_dir[1]))
    monkeypatch.chdir(images)
    dataset, _ = load("annotations.json")
    assert os.path.dirname(dataset.image_info[0]["path"]) == str(images)
    assert dataset.load_image(0).shape == (40, 48, 3)


def test_missing_fields_are_filled_for_cocoeval(loaded, coco_dir):
    coco = loaded[1]
    assert coco.anns[101]["bbox"] == coco_dir[1]["annotations"][0]["bbox"]  # explicit: kept
    disk = coco.anns[201]
    assert disk["area"] == mask_utils.area(disk["segmentation"])
    np.testing.assert_allclose(disk["bbox"], mask_utils.toBbox(disk["segmentation"]))
    assert coco.anns[202]["iscrowd"] == 0 and coco.anns[302]["iscrowd"] == 1


def test_class_ids_map_both_ways(loaded):
    dataset = loaded[0]
    assert dataset.map_source_class_id("coco.18") == 3
    assert dataset.map_source_class_id("coco.3") == 1
    assert [dataset.get_source_class_id(c, "coco") for c in (0, 1, 2, 3)] == [0, 3, 5, 18]


def test_rle_masks_are_exact(loaded, coco_dir):
    dataset, truth = loaded[0], coco_dir[2]
    masks, class_ids = dataset.load_mask(1)
    assert masks.dtype == bool and class_ids.dtype == np.int32
    np.testing.assert_array_equal(class_ids, [3, 1])
    np.testing.assert_array_equal(masks, np.stack([t[0] for t in truth[7]], axis=-1))


def test_polygon_masks_match_up_to_the_boundary(loaded, coco_dir):
    dataset, truth = loaded[0], coco_dir[2]
    for image_id, coco_id in ((0, 1), (2, 12)):
        masks, _ = dataset.load_mask(image_id)
        for index, (rendered, _, _, kind) in enumerate(truth[coco_id]):
            if kind != "polygon":
                continue
            boundary = (scipy.ndimage.binary_dilation(rendered)
                        & ~scipy.ndimage.binary_erosion(rendered))
            differ = masks[:, :, index] != rendered
            assert not (differ & ~boundary).any()
            assert (masks[:, :, index] & rendered).sum() / (masks[:, :, index]
                                                             | rendered).sum() > 0.7


def test_crowds_get_negative_class_ids(loaded, coco_dir):
    masks, class_ids = loaded[0].load_mask(2)
    np.testing.assert_array_equal(class_ids, [2, -1])  # blob, crowd of "square"
    np.testing.assert_array_equal(masks[:, :, 1], coco_dir[2][12][1][0])


def test_empty_image_and_keep_empty(loaded, coco_dir):
    masks, class_ids = loaded[0].load_mask(3)
    assert masks.shape == (32, 32, 0) and masks.dtype == bool
    assert class_ids.shape == (0,) and class_ids.dtype == np.int32
    dataset, _ = load(coco_dir[0], subset="val", year="2017", keep_empty=False)
    assert [info["id"] for info in dataset.image_info] == [1, 7, 12]


def test_class_ids_restrict_classes_and_annotations(coco_dir):
    dataset, _ = load(coco_dir[0], subset="val", year=2017, class_ids=[18], keep_empty=False)
    assert dataset.class_names == ["BG", "disk"]
    assert [info["id"] for info in dataset.image_info] == [1, 7]
    masks, class_ids = dataset.load_mask(1)
    np.testing.assert_array_equal(class_ids, [1])
    with pytest.raises(ValueError, match=r"class_ids \[4\]"):
        load(coco_dir[0], subset="val", year=2017, class_ids=[4])


def test_tiny_or_empty_segmentations_are_skipped(coco_dir, tmp_path):
    def change(data):
        data["annotations"][0]["segmentation"] = [[1, 1, 2, 1]]  # no area
        data["annotations"][1]["segmentation"] = []
    path, image_dir = write_variant(coco_dir, tmp_path, change)
    dataset, _ = load(path, image_dir=image_dir)
    assert dataset.load_mask(0)[0].shape == (40, 48, 0)


def test_missing_files_name_the_expected_paths(coco_dir, tmp_path):
    (tmp_path / "val2017").mkdir()
    with pytest.raises(FileNotFoundError) as error:
        CocoDataset().load_coco(tmp_path, "val", 2017)
    message = str(error.value)
    assert os.path.join(str(tmp_path), "annotations", "instances_val2017.json") in message
    assert "http://images.cocodataset.org/annotations/annotations_trainval2017.zip" in message
    with pytest.raises(FileNotFoundError) as error:
        CocoDataset().load_coco(tmp_path, "train", 2014)
    message = str(error.value)
    assert os.path.join(str(tmp_path), "train2014") in message
    assert "http://images.cocodataset.org/zips/train2014.zip" in message
    with pytest.raises(FileNotFoundError, match="instances_minival2014.json.zip"):
        CocoDataset().load_coco(tmp_path, "minival", 2014)
    with pytest.raises(FileNotFoundError, match=r"Found instead: instances_val2017.json"):
        CocoDataset().load_coco(coco_dir[0], "val")  # no year
    with pytest.raises(FileNotFoundError, match="nothing.json"):
        CocoDataset().load_coco(tmp_path / "nothing.json", image_dir=tmp_path)
    json_path = coco_dir[0] / "annotations" / "instances_val2017.json"
    with pytest.raises(FileNotFoundError, match="no_images"):
        CocoDataset().load_coco(json_path, image_dir=tmp_path / "no_images")


def test_minival_reads_its_images_from_val2014(coco_dir, tmp_path):
    (tmp_path / "annotations").mkdir()
    os.symlink(coco_dir[0] / "val2017", tmp_path / "val2014")
    (tmp_path / "annotations" / "instances_minival2014.json").write_text(
        json.dumps(coco_dir[1]))
    dataset, _ = load(tmp_path, subset="minival", year=2014)
    assert dataset.image_info[0]["path"] == os.path.join(tmp_path, "val2014", "img1.png")


@pytest.mark.parametrize("change, pattern", [
    (lambda d: d["annotations"][2].update(image_id=99),
     r"annotation 201 refers to image id 99"),
    (lambda d: d["annotations"][3].update(category_id=4),
     r"annotation 202 \(image 7\) refers to category id 4"),
    (lambda d: d["annotations"][1]["segmentation"][0].__setitem__(2, 49.5),
     r"annotation 102 of image 1 .*outside the image"),
    (lambda d: d["annotations"][3]["segmentation"].update(size=[44, 36]),
     r"annotation 202 of image 7 .*RLE size \[44, 36\]"),
    (lambda d: d["annotations"][0]["segmentation"][0].append(3),
     r"annotation 101 of image 1 .*even number"),
    (lambda d: d["images"][0].pop("width"), r"image #0 \(id 1\) lacks 'width'"),
    (lambda d: d["annotations"].append(dict(d["annotations"][0])), r"duplicate annotation"),
])
def test_invalid_annotations_raise_clear_errors(coco_dir, tmp_path, change, pattern):
    path, image_dir = write_variant(coco_dir, tmp_path, change)
    with pytest.raises(ValueError, match=pattern):
        CocoDataset().load_coco(path, image_dir=image_dir)


def test_polygons_may_touch_the_outer_pixel_edge(coco_dir, tmp_path):
    path, image_dir = write_variant(
        coco_dir, tmp_path, lambda d: d["annotations"][1]["segmentation"][0].__setitem__(2, 48.9))
    CocoDataset().load_coco(path, image_dir=image_dir)


def test_unreadable_images(coco_dir, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for name in ("img1.png", "img12.png"):
        os.symlink(coco_dir[0] / "val2017" / name, images / name)
    (images / "img7.png").write_bytes(b"not a png")
    json_path = coco_dir[0] / "annotations" / "instances_val2017.json"
    dataset, _ = load(json_path, image_dir=images)
    with pytest.raises(OSError, match="img7.png"):
        dataset.load_image(1)
    with pytest.raises(OSError, match="img20.png.*skip_unreadable"):
        dataset.load_image(3)
    with pytest.warns(UserWarning, match=r"dropped 1 of 4 images .*img20.png"):
        dataset, _ = load(json_path, image_dir=images, skip_unreadable=True)
    assert [info["id"] for info in dataset.image_info] == [1, 7, 12]


def test_image_reference(loaded):
    dataset = loaded[0]
    assert dataset.image_reference(0) == "http://cocodataset.org/#explore?id=1"
    assert dataset.image_reference(1) == dataset.image_info[1]["path"]


def gt_detections(dataset, image_id):
    """Ground truth of an image as a detect() result (crowds left out), score 1."""
    masks, class_ids = dataset.load_mask(image_id)
    keep = class_ids > 0
    masks, class_ids = masks[:, :, keep], class_ids[keep]
    return {"rois": extract_bboxes(masks), "class_ids": class_ids,
            "scores": np.ones(len(class_ids), np.float32), "masks": masks}


def test_build_coco_results_format(loaded):
    dataset = loaded[0]
    r = gt_detections(dataset, 1)
    results = build_coco_results(dataset, [1], r["rois"], r["class_ids"], r["scores"],
                                 r["masks"])
    assert json.loads(json.dumps(results)) == results
    assert [res["category_id"] for res in results] == [18, 3]
    assert all(res["image_id"] == 7 and res["score"] == 1.0 for res in results)
    y1, x1, y2, x2 = r["rois"][0]
    assert results[0]["bbox"] == [x1, y1, x2 - x1, y2 - y1]
    assert all(isinstance(v, float) for v in results[0]["bbox"])
    decoded = mask_utils.decode([res["segmentation"] for res in results])
    np.testing.assert_array_equal(decoded.astype(bool), r["masks"])
    # The multi-image form gives the same results; masks=None gives boxes only.
    several = build_coco_results(dataset, [1, 3], [r["rois"], np.zeros((0, 4))],
                                 [r["class_ids"], []], [r["scores"], []],
                                 [r["masks"], np.zeros((32, 32, 0), bool)])
    assert several == results
    boxes_only = build_coco_results(dataset, 1, r["rois"], r["class_ids"], r["scores"], None)
    assert "segmentation" not in boxes_only[0]
    with pytest.raises(ValueError, match="shape"):
        build_coco_results(dataset, [0], r["rois"], r["class_ids"], r["scores"], r["masks"])


class FakeModel:
    """Stands in for MaskRCNN: returns fixed detections for images it recognises."""

    class config:  # noqa: N801 - mimics model.config
        BATCH_SIZE = 2

    def __init__(self, dataset, detections):
        self.by_image = {dataset.load_image(i).tobytes(): d for i, d in detections.items()}
        self.calls = []

    def detect(self, images):
        self.calls.append(len(images))
        return [self.by_image[image.tobytes()] for image in images]


@pytest.mark.parametrize("eval_type", ["bbox", "segm"])
def test_ground_truth_as_detections_scores_1(loaded, tmp_path, eval_type):
    dataset, coco = loaded
    model = FakeModel(dataset, {i: gt_detections(dataset, i) for i in dataset.image_ids})
    path = tmp_path / "results.json"
    stats = evaluate_coco(model, dataset, coco, eval_type, results_path=path, verbose=0)
    assert model.calls == [2, 2]
    # pycocotools divides by tp + fp + eps, so a perfect score is 1 - 2e-16.
    assert [stats[k] for k in ("AP", "AP50", "AP75", "AR100")] == pytest.approx([1.0] * 4)
    assert stats["per_class_ap"] == pytest.approx({"square": 1.0, "blob": 1.0, "disk": 1.0})
    assert stats["results_path"] == str(path) and len(json.loads(path.read_text())) == 5


def imperfect_detections(dataset):
    detections = {i: gt_detections(dataset, i) for i in dataset.image_ids}
    first = detections[0]
    first["masks"][:, :, 0] = np.roll(first["masks"][:, :, 0], 3, axis=1)  # shifted square
    first["rois"] = extract_bboxes(first["masks"])
    first["scores"] = np.array([0.6, 0.9], np.float32)
    second = detections[1]  # the disk is missed; a false "blob" comes with a low score
    false_mask = np.zeros((36, 44, 1), bool)
    false_mask[2:8, 30:40] = True
    second["masks"] = np.concatenate([second["masks"][:, :, 1:], false_mask], axis=-1)
    second["rois"] = extract_bboxes(second["masks"])
    second["class_ids"] = np.array([1, 2], np.int32)
    second["scores"] = np.array([0.8, 0.3], np.float32)
    return detections


@pytest.mark.parametrize("eval_type", ["bbox", "segm"])
def test_imperfect_detections_match_pycocotools(loaded, tmp_path, eval_type):
    dataset, coco = loaded
    detections = imperfect_detections(dataset)
    stats = evaluate_coco(FakeModel(dataset, detections), dataset, coco, eval_type,
                          results_path=tmp_path / "r.json", batch_size=3, verbose=0)
    results = []
    for i, r in detections.items():
        results += build_coco_results(dataset, [i], r["rois"], r["class_ids"], r["scores"],
                                      r["masks"])
    with contextlib.redirect_stdout(io.StringIO()):
        direct = COCOeval(coco, coco.loadRes(results), eval_type)
        direct.params.imgIds = [1, 7, 12, 20]
        direct.evaluate()
        direct.accumulate()
        direct.summarize()
    assert [stats[name] for name in STAT_NAMES] == direct.stats.tolist()
    assert 0 < stats["AP"] < 1
    assert stats["AP"] == pytest.approx(np.mean(list(stats["per_class_ap"].values())))


def test_no_detections_score_zero(loaded, tmp_path):
    dataset, coco = loaded
    empty = {i: {"rois": np.zeros((0, 4), np.int32), "class_ids": np.zeros(0, np.int32),
                 "scores": np.zeros(0, np.float32),
                 "masks": np.zeros((*dataset.load_image(i).shape[:2], 0), bool)}
             for i in dataset.image_ids}
    stats = evaluate_coco(FakeModel(dataset, empty), dataset, coco, "segm", limit=3,
                          verbose=0)
    assert stats["AP"] == stats["AR100"] == 0.0
    assert stats["per_class_ap"] == {"square": 0.0, "blob": 0.0, "disk": 0.0}
    assert stats["results_path"].startswith(tempfile.gettempdir())
    assert json.loads(open(stats["results_path"]).read()) == []
    os.remove(stats["results_path"])


def test_invalid_eval_type(loaded):
    with pytest.raises(ValueError, match="eval_type"):
        evaluate_coco(None, loaded[0], loaded[1], "keypoints")


class FakeDetector(FakeModel):
    """FakeModel with the one-layer keras_model that EvaluateCallback copies weights into."""

    def __init__(self, dataset, detections, fail=False):
        super().__init__(dataset, detections)
        self.keras_model = one_layer_model()
        self.fail = fail

    def detect(self, images):
        if self.fail:
            raise OSError("cannot read image 'val/broken.jpg'")
        return super().detect(images)


def one_layer_model():
    import keras
    return keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, name="dense")])


def test_training_evaluation_scores_against_the_coco_file(loaded, coco_dir):
    from mrcnn.callbacks import EvaluateCallback
    dataset, coco = loaded
    assert dataset.coco_ground_truth is coco
    detector = FakeDetector(dataset, {i: gt_detections(dataset, i) for i in dataset.image_ids})
    callback = EvaluateCallback(detector, dataset, verbose=0)
    assert callback.evaluate() == pytest.approx(
        {"val_map50": 1.0, "val_map": 1.0, "val_mask_map50": 1.0, "val_mask_map": 1.0})
    # The file's annotations, crowds included, not masks rebuilt by load_mask.
    assert callback._truth.coco is coco
    # Two files: no single ground truth; load_mask's is used.
    two = CocoDataset()
    for _ in range(2):
        two.load_coco(coco_dir[0], "val", 2017)
    assert two.coco_ground_truth is None


def test_a_failed_evaluation_logs_nan_and_training_goes_on(loaded):
    from mrcnn.callbacks import EVALUATION_METRICS, EvaluateCallback
    dataset = loaded[0]
    callback = EvaluateCallback(FakeDetector(dataset, {}, fail=True), dataset, verbose=0)
    callback.set_model(one_layer_model())
    logs = {"loss": 1.0}
    with pytest.warns(UserWarning, match="evaluation after epoch 3 failed.*broken.jpg"):
        callback.on_epoch_end(2, logs)
    assert set(logs) == {"loss", *EVALUATION_METRICS}
    assert all(np.isnan(logs[name]) for name in EVALUATION_METRICS)


def test_mask_scoring_sizes_detections_by_their_mask_area(loaded):
    from mrcnn.evaluation import ImageDetections, coco_results, ground_truth, run_cocoeval
    dataset = loaded[0]
    truth = ground_truth(dataset, [0], loaded[1])
    masks, class_ids = dataset.load_mask(0)
    height, width = masks.shape[:2]
    small = np.zeros((height, width, 1), bool)
    small[2:6, 2:6] = True  # 16 pixels inside a box of the whole image
    detection = ImageDetections.from_result(0, {
        "rois": np.array([[0, 0, height, width]]), "class_ids": class_ids[class_ids > 0][:1],
        "scores": np.array([0.9], np.float32), "masks": small})
    results = coco_results([detection], truth)
    (mask_result,) = run_cocoeval(results, truth, "segm").cocoDt.anns.values()
    (box_result,) = run_cocoeval(results, truth, "bbox").cocoDt.anns.values()
    assert mask_result["area"] == 16  # in the "small" range, as its mask is
    assert box_result["area"] == height * width
