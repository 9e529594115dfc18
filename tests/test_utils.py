"""mrcnn.utils keeps the classic names, re-exported from where they live."""
import io

import pytest

from mrcnn import anchors, boxes, images, metrics, utils

CLASSIC_NAMES = [
    "compute_iou", "compute_overlaps", "non_max_suppression", "apply_box_deltas",
    "box_refinement", "extract_bboxes", "norm_boxes", "denorm_boxes", "trim_zeros",
    "generate_anchors", "generate_pyramid_anchors", "compute_backbone_shapes",
    "resize", "resize_image", "resize_mask", "minimize_mask", "expand_mask", "unmold_mask",
    "mold_image", "unmold_image", "compose_image_meta", "parse_image_meta",
    "compute_overlaps_masks", "compute_matches", "compute_ap", "compute_ap_range",
    "compute_recall", "download_trained_weights", "Dataset", "COCO_MODEL_URL",
]


@pytest.mark.parametrize("name", CLASSIC_NAMES)
def test_classic_name_available(name):
    assert name in utils.__all__
    assert getattr(utils, name) is not None


@pytest.mark.parametrize("module", [boxes, anchors, images, metrics])
def test_reexports_are_the_same_objects(module):
    for name in module.__all__:
        assert getattr(utils, name) is getattr(module, name), name
        assert name in utils.__all__


def test_dataset_is_loaded_lazily_from_mrcnn_dataset():
    from mrcnn.dataset import Dataset
    assert utils.Dataset is Dataset


def test_unknown_attribute():
    with pytest.raises(AttributeError, match="no_such_helper"):
        utils.no_such_helper


def test_coco_model_url():
    assert utils.COCO_MODEL_URL == ("https://github.com/matterport/Mask_RCNN/releases/"
                                    "download/v2.0/mask_rcnn_coco.h5")


def test_download_trained_weights_writes_the_response(tmp_path, monkeypatch, capsys):
    requested = []

    def fake_urlopen(url):
        requested.append(url)
        return io.BytesIO(b"weights")

    monkeypatch.setattr(utils.urllib.request, "urlopen", fake_urlopen)
    target = tmp_path / "mask_rcnn_coco.h5"
    utils.download_trained_weights(str(target), verbose=0)
    assert requested == [utils.COCO_MODEL_URL]
    assert target.read_bytes() == b"weights"
    assert capsys.readouterr().out == ""
