"""Assembles the Mask R-CNN graph from a Config.

backbone -> fpn -> rpn -> proposals -> (targets) -> roi_align -> heads ->
(losses | detections). This is the only module of ``mrcnn.graph`` that reads
a Config; the layers it builds take plain arguments.
"""
from __future__ import annotations

import functools
import re

import keras
import tensorflow as tf
from keras import layers

from mrcnn import losses as loss_choices
from mrcnn.anchors import anchor_settings
from mrcnn.config import IMAGE_DIVISOR, Config, divisible_size
from mrcnn.distribute import MultiWorkerSteps
from mrcnn.graph import losses
from mrcnn.graph.association import association_head
from mrcnn.graph.backbone import resnet_graph
from mrcnn.graph.detection import DetectionBoxes, DetectionLayer
from mrcnn.graph.fpn import fpn_graph
from mrcnn.graph.heads import classifier_head, mask_head
from mrcnn.graph.layers import (ImageMetaField, NormalizeBoxes, PadRows, PyramidAnchors,
                                synchronized_batch_norm)
from mrcnn.graph.precision import FLOAT32, config_policy
from mrcnn.graph.proposals import ProposalLayer
from mrcnn.graph.rpn import build_rpn_model
from mrcnn.graph.targets import DetectionTargetLayer
from mrcnn.weights import ClassicWeightsModel

# Weights that weight decay leaves alone: BatchNorm's scale and offset.
NO_DECAY = re.compile(r"(gamma|beta)$")


def config_batch_norm(build):
    """Decorates a graph builder ``build(config, ...)`` so that its BatchNorm layers
    synchronize their batch statistics across replicas when SYNC_BATCH_NORM is set."""
    @functools.wraps(build)
    def build_with_batch_norm(config, *args, **kwargs):
        with synchronized_batch_norm(config.SYNC_BATCH_NORM):
            return build(config, *args, **kwargs)
    return build_with_batch_norm


def check_image_shape(config: Config) -> None:
    """Raises ValueError unless IMAGE_SHAPE halves cleanly 6 times."""
    height, width = (int(v) for v in config.IMAGE_SHAPE[:2])
    if divisible_size(height) != height or divisible_size(width) != width:
        raise ValueError(
            f"Image size {height}x{width} must be divisible by {IMAGE_DIVISOR} at least "
            f"6 times for the feature pyramid: use e.g. 256, 320, 384, 448, 512, 576, "
            f"640, ... for IMAGE_MAX_DIM (square mode) or IMAGE_MIN_DIM (crop mode).")


def pyramid_features(input_image, config: Config):
    """Backbone + FPN.

    Args:
        input_image: [B, H, W, IMAGE_CHANNEL_COUNT] molded images.
        config: the model's Config.

    Returns:
        [P2, P3, P4, P5, P6] feature maps with TOP_DOWN_PYRAMID_SIZE channels.
    """
    if callable(config.BACKBONE):
        _, c2, c3, c4, c5 = config.BACKBONE(input_image, stage5=True, train_bn=config.TRAIN_BN)
    else:
        _, c2, c3, c4, c5 = resnet_graph(input_image, config.BACKBONE, stage5=True,
                                         train_bn=config.TRAIN_BN)
    return fpn_graph(c2, c3, c4, c5, config.TOP_DOWN_PYRAMID_SIZE)


def region_proposals(feature_maps, config: Config):
    """Runs the shared RPN on every pyramid level and concatenates the results.

    Args:
        feature_maps: [P2, P3, P4, P5, P6].
        config: the model's Config.

    Returns:
        rpn_class_logits [B, A, 2], rpn_class [B, A, 2], rpn_bbox [B, A, 4],
        anchors ordered level by level as in generate_pyramid_anchors.
    """
    rpn = build_rpn_model(config.RPN_ANCHOR_STRIDE, len(config.RPN_ANCHOR_RATIOS),
                          config.TOP_DOWN_PYRAMID_SIZE)
    per_level = [rpn(p) for p in feature_maps]
    names = ("rpn_class_logits", "rpn_class", "rpn_bbox")
    # float32: the softmax scores and the deltas feed the proposals.
    return [layers.Concatenate(axis=1, name=name, dtype=FLOAT32)(
        [level[i] for level in per_level])
            for i, name in enumerate(names)]


@config_policy
@config_batch_norm
def build_inference_model(config: Config) -> keras.Model:
    """The inference graph.

    Inputs: ``input_image`` [B, H, W, C] molded images, ``input_image_meta``
    [B, IMAGE_META_SIZE], ``input_anchors`` [B, A, 4] normalized anchors.

    Outputs, in the classic order: detections [B, DETECTION_MAX_INSTANCES,
    (y1, x1, y2, x2, class_id, score)], mrcnn_class [B, N, NC], mrcnn_bbox
    [B, N, NC, 4], mrcnn_mask [B, DETECTION_MAX_INSTANCES, 28, 28, NC],
    rpn_rois [B, N, 4], rpn_class [B, A, 2], rpn_bbox [B, A, 4], where N is
    POST_NMS_ROIS_INFERENCE; with ASSOCIATION_EMBEDDING_SIZE = D, an eighth,
    mrcnn_assoc [B, DETECTION_MAX_INSTANCES, D]: the detections' unit-length
    embeddings, zero rows as padding.
    """
    check_image_shape(config)
    input_image = keras.Input((None, None, config.IMAGE_CHANNEL_COUNT), name="input_image")
    input_image_meta = keras.Input((config.IMAGE_META_SIZE,), name="input_image_meta")
    input_anchors = keras.Input((None, 4), name="input_anchors")

    feature_maps = pyramid_features(input_image, config)
    head_maps = feature_maps[:4]
    _, rpn_class, rpn_bbox = region_proposals(feature_maps, config)
    rpn_rois = ProposalLayer(config.POST_NMS_ROIS_INFERENCE, config.RPN_NMS_THRESHOLD,
                             config.PRE_NMS_LIMIT, config.RPN_BBOX_STD_DEV,
                             name="ROI", dtype=FLOAT32)([rpn_class, rpn_bbox, input_anchors])

    _, mrcnn_class, mrcnn_bbox = classifier_head(
        rpn_rois, input_image_meta, head_maps, config.POOL_SIZE, config.NUM_CLASSES,
        config.TRAIN_BN, config.FPN_CLASSIF_FC_LAYERS_SIZE)
    detections = DetectionLayer(config.DETECTION_MAX_INSTANCES, config.DETECTION_MIN_CONFIDENCE,
                                config.DETECTION_NMS_THRESHOLD, config.BBOX_STD_DEV,
                                name="mrcnn_detection", dtype=FLOAT32)(
        [rpn_rois, mrcnn_class, mrcnn_bbox, input_image_meta])
    # The mask head runs on the final detections, not on all proposals.
    detection_boxes = DetectionBoxes(name="detection_boxes", dtype=FLOAT32)(detections)
    mrcnn_mask = mask_head(detection_boxes, input_image_meta, head_maps, config.MASK_POOL_SIZE,
                           config.NUM_CLASSES, config.TRAIN_BN, config.MASK_HEAD_CHANNELS)
    mrcnn_mask = PadRows(config.DETECTION_MAX_INSTANCES, name="mrcnn_mask_padded",
                         dtype=FLOAT32)(mrcnn_mask)
    outputs = [detections, mrcnn_class, mrcnn_bbox, mrcnn_mask, rpn_rois, rpn_class, rpn_bbox]
    if config.ASSOCIATION_EMBEDDING_SIZE:
        # Like the mask head, the association head runs on the final detections.
        embeddings = association_head(detection_boxes, input_image_meta, head_maps,
                                      config.POOL_SIZE, config.ASSOCIATION_EMBEDDING_SIZE,
                                      config.ASSOCIATION_TRAINS_FEATURES,
                                      input_image if config.ASSOCIATION_SEES_IMAGE else None)
        outputs.append(PadRows(config.DETECTION_MAX_INSTANCES, name="mrcnn_assoc_padded",
                               dtype=FLOAT32)(embeddings))
    return ClassicWeightsModel([input_image, input_image_meta, input_anchors], outputs,
                               name="mask_rcnn")


class TrainingModel(MultiWorkerSteps, ClassicWeightsModel):
    """The training graph, whose loss adds the classic L2 weight decay.

    The loss is the weighted sum of the loss layers' outputs (the five named
    losses and the extra ones) plus ``weight_decay * sum(mean(w**2))`` over
    the trainable weights other than BatchNorm gamma/beta, so layers frozen by
    ``set_trainable`` are not decayed.

    Args:
        inputs, outputs: as keras.Model.
        weight_decay: WEIGHT_DECAY.
        loss_outputs: (index in ``outputs``, weight) of every LossLayer output.
    """

    def __init__(self, inputs, outputs, weight_decay: float, loss_outputs=(), **kwargs):
        super().__init__(inputs, outputs, **kwargs)
        self.weight_decay = float(weight_decay)
        self.loss_outputs = tuple((int(i), float(w)) for i, w in loss_outputs)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        # The loss layers' outputs rather than Keras's add_loss list: under
        # MirroredStrategy the replicas share each layer's list, so every replica
        # would also sum the others' terms.
        terms = [weight * tf.reshape(y_pred[i], []) for i, weight in self.loss_outputs]
        decayed = [w for w in self.trainable_weights if not NO_DECAY.search(w.path)]
        loss = tf.add_n(terms + [losses.l2_regularization(decayed, self.weight_decay)])
        # Keras sums the replicas' gradients but leaves a custom loss unscaled:
        # each replica's loss counts 1/replicas, so the step is the global batch's
        # mean (and the weight decay counted once); Keras's loss tracker undoes the
        # factor for the reported loss.
        return loss / tf.distribute.get_strategy().num_replicas_in_sync


@config_policy
@config_batch_norm
def build_training_model(config: Config) -> keras.Model:
    """The training graph.

    Inputs (as batched by ``mrcnn.data.DataGenerator``): input_image [B, H, W, C]
    molded, input_image_meta [B, META], input_rpn_match [B, A, 1] int32,
    input_rpn_bbox [B, RPN_TRAIN_ANCHORS_PER_IMAGE, 4], input_gt_class_ids
    [B, MAX_GT_INSTANCES] int32, input_gt_boxes [B, MAX_GT_INSTANCES, 4] pixels,
    input_gt_masks [B, h, w, MAX_GT_INSTANCES] (mini masks when USE_MINI_MASK),
    and with ASSOCIATION_EMBEDDING_SIZE input_gt_instance_ids [B, MAX_GT_INSTANCES]
    int32 (0 pads).

    Outputs, in the classic order: rpn_class_logits, rpn_class, rpn_bbox,
    mrcnn_class_logits, mrcnn_class, mrcnn_bbox, mrcnn_mask, rpn_rois,
    output_rois, then the five losses (as LOSS_FUNCTIONS chooses; then
    mrcnn_assoc_loss with the association head) and the EXTRA_LOSSES, each a
    named LossLayer, then the TRAINING_METRICS, each a named MonitorLayer.
    """
    check_image_shape(config)
    if not config.USE_RPN_ROIS:
        raise ValueError("USE_RPN_ROIS = False (training the heads on given ROIs) is not "
                         "supported; set USE_RPN_ROIS = True.")
    image_shape = tuple(int(v) for v in config.IMAGE_SHAPE)
    input_image = keras.Input(image_shape, name="input_image")
    input_image_meta = keras.Input((config.IMAGE_META_SIZE,), name="input_image_meta")
    input_rpn_match = keras.Input((None, 1), name="input_rpn_match", dtype="int32")
    input_rpn_bbox = keras.Input((None, 4), name="input_rpn_bbox")
    input_gt_class_ids = keras.Input((None,), name="input_gt_class_ids", dtype="int32")
    input_gt_boxes = keras.Input((None, 4), name="input_gt_boxes")
    mask_shape = (tuple(config.MINI_MASK_SHAPE) if config.USE_MINI_MASK else image_shape[:2])
    input_gt_masks = keras.Input(mask_shape + (None,), name="input_gt_masks", dtype="bool")
    inputs = [input_image, input_image_meta, input_rpn_match, input_rpn_bbox,
              input_gt_class_ids, input_gt_boxes, input_gt_masks]
    association = bool(config.ASSOCIATION_EMBEDDING_SIZE)
    if association:
        inputs.append(keras.Input((None,), name="input_gt_instance_ids", dtype="int32"))

    feature_maps = pyramid_features(input_image, config)
    head_maps = feature_maps[:4]
    rpn_class_logits, rpn_class, rpn_bbox = region_proposals(feature_maps, config)
    anchors = PyramidAnchors(image_shape, **anchor_settings(config, image_shape),
                             name="anchors", dtype=FLOAT32)(input_image)
    rpn_rois = ProposalLayer(config.POST_NMS_ROIS_TRAINING, config.RPN_NMS_THRESHOLD,
                             config.PRE_NMS_LIMIT, config.RPN_BBOX_STD_DEV,
                             name="ROI", dtype=FLOAT32)([rpn_class, rpn_bbox, anchors])

    gt_boxes = NormalizeBoxes(name="gt_boxes_normalized", dtype=FLOAT32)(
        [input_gt_boxes, input_image])
    targets = DetectionTargetLayer(config.TRAIN_ROIS_PER_IMAGE, config.ROI_POSITIVE_RATIO,
                                   config.BBOX_STD_DEV, config.MASK_SHAPE,
                                   config.USE_MINI_MASK, name="proposal_targets",
                                   dtype=FLOAT32)
    rois, target_class_ids, target_bbox, target_mask, *target_instance_ids = targets(
        [rpn_rois, input_gt_class_ids, gt_boxes, input_gt_masks] + inputs[7:])

    mrcnn_class_logits, mrcnn_class, mrcnn_bbox = classifier_head(
        rois, input_image_meta, head_maps, config.POOL_SIZE, config.NUM_CLASSES,
        config.TRAIN_BN, config.FPN_CLASSIF_FC_LAYERS_SIZE)
    # Only positive ROIs have a mask loss: the mask head runs on their rows alone.
    mrcnn_mask = mask_head(targets.positive_rows(rois), input_image_meta, head_maps,
                           config.MASK_POOL_SIZE, config.NUM_CLASSES, config.TRAIN_BN,
                           config.MASK_HEAD_CHANNELS)
    mrcnn_mask = PadRows(config.TRAIN_ROIS_PER_IMAGE, name="mrcnn_mask_padded",
                         dtype=FLOAT32)(mrcnn_mask)
    active_class_ids = ImageMetaField("active_class_ids", name="active_class_ids",
                                      dtype=FLOAT32)(
        input_image_meta)

    # The tensors that losses and monitors can take (documented in mrcnn.losses).
    graph_tensors = {
        "rpn_match": input_rpn_match, "rpn_target_bbox": input_rpn_bbox,
        "rpn_class_logits": rpn_class_logits, "rpn_class": rpn_class, "rpn_bbox": rpn_bbox,
        "rois": rois, "target_class_ids": target_class_ids, "target_bbox": target_bbox,
        "target_mask": target_mask, "mrcnn_class_logits": mrcnn_class_logits,
        "mrcnn_class": mrcnn_class, "mrcnn_bbox": mrcnn_bbox, "mrcnn_mask": mrcnn_mask,
        "active_class_ids": active_class_ids,
    }
    if association:
        # The loss pairs the positive ROIs only: the head runs on their rows alone.
        graph_tensors["target_instance_ids"] = targets.positive_rows(target_instance_ids[0])
        graph_tensors["mrcnn_assoc"] = association_head(
            targets.positive_rows(rois), input_image_meta, head_maps, config.POOL_SIZE,
            config.ASSOCIATION_EMBEDDING_SIZE, config.ASSOCIATION_TRAINS_FEATURES,
            input_image if config.ASSOCIATION_SEES_IMAGE else None)
    chosen_losses = loss_choices.training_losses(config)
    loss_values = [losses.LossLayer(fn, config.LOSS_WEIGHTS.get(name, 1.0), name=name,
                                    dtype=FLOAT32)(
        [graph_tensors[t] for t in inputs])
        for name, (fn, inputs) in chosen_losses.items()]
    monitor_values = [losses.MonitorLayer(fn, name=name, dtype=FLOAT32)(
        [graph_tensors[t] for t in inputs])
                      for name, (fn, inputs) in loss_choices.training_monitors(config).items()]
    heads = [rpn_class_logits, rpn_class, rpn_bbox, mrcnn_class_logits, mrcnn_class,
             mrcnn_bbox, mrcnn_mask, rpn_rois, rois]
    loss_outputs = [(len(heads) + i, config.LOSS_WEIGHTS.get(name, 1.0))
                    for i, name in enumerate(chosen_losses)]
    return TrainingModel(inputs, heads + loss_values + monitor_values, config.WEIGHT_DECAY,
                         loss_outputs, name="mask_rcnn")
