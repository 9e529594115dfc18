"""DetectionLayer: ROIs + head outputs -> the final detections of every image."""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from mrcnn.graph.box_ops import apply_box_deltas, clip_boxes, norm_boxes
from mrcnn.image_meta import parse_image_meta_graph


class DetectionLayer(keras.layers.Layer):
    """Refines, filters and suppresses the classified ROIs.

    Per image: every ROI takes its most likely class and that class's box
    deltas (times ``bbox_std_dev``), is clipped to the image window, dropped
    if it is background or scores below ``min_confidence``, then per-class
    NMS runs and the ``max_instances`` best by score are kept (ties: lower
    ROI index first), zero-padded.

    Args:
        max_instances: detections per image (DETECTION_MAX_INSTANCES).
        min_confidence: minimum class score; 0 keeps all.
        nms_threshold: IoU threshold of the per-class NMS.
        bbox_std_dev: (4,) factors of the head's deltas.

    Call args:
        inputs: [rois [B, N, (y1, x1, y2, x2)] normalized,
            class_probs [B, N, NC], bbox_deltas [B, N, NC, 4],
            image_meta [B, META]].

    Returns:
        [B, max_instances, (y1, x1, y2, x2, class_id, score)], boxes
        normalized, rows ordered by descending score, zero rows as padding.
    """

    def __init__(self, max_instances: int, min_confidence: float, nms_threshold: float,
                 bbox_std_dev=(0.1, 0.1, 0.2, 0.2), **kwargs):
        super().__init__(**kwargs)
        self.max_instances = int(max_instances)
        self.min_confidence = float(min_confidence)
        self.nms_threshold = float(nms_threshold)
        self.bbox_std_dev = tuple(float(v) for v in np.ravel(bbox_std_dev))

    def call(self, inputs):
        rois, class_probs, bbox_deltas, image_meta = inputs
        meta = parse_image_meta_graph(image_meta)
        # All images of a batch share the molded shape.
        windows = norm_boxes(meta["window"], meta["image_shape"][0, :2])
        return tf.map_fn(
            lambda args: self._refine(*args), (rois, class_probs, bbox_deltas, windows),
            fn_output_signature=tf.TensorSpec([self.max_instances, 6], tf.float32))

    def _refine(self, rois, class_probs, bbox_deltas, window):
        """One image: rois [N, 4], class_probs [N, NC], bbox_deltas [N, NC, 4], window [4]."""
        class_ids = tf.argmax(class_probs, axis=1, output_type=tf.int32)
        scores = tf.gather(class_probs, class_ids, batch_dims=1)
        deltas = tf.gather(bbox_deltas, class_ids, batch_dims=1) * tf.constant(self.bbox_std_dev)
        boxes = clip_boxes(apply_box_deltas(rois, deltas), window)

        candidate = class_ids > 0
        if self.min_confidence:
            candidate &= scores >= self.min_confidence
        candidates = tf.where(candidate)[:, 0]
        kept = self._per_class_nms(tf.gather(boxes, candidates), tf.gather(scores, candidates),
                                   tf.gather(class_ids, candidates))
        # Ascending ROI index first, so that top_k breaks score ties by index.
        keep = tf.sort(tf.gather(candidates, kept))
        best = tf.math.top_k(tf.gather(scores, keep),
                             tf.minimum(tf.size(keep), self.max_instances), sorted=True).indices
        keep = tf.gather(keep, best)
        detections = tf.concat([tf.gather(boxes, keep),
                                tf.cast(tf.gather(class_ids, keep), tf.float32)[:, None],
                                tf.gather(scores, keep)[:, None]], axis=1)
        return tf.pad(detections, [(0, self.max_instances - tf.shape(detections)[0]), (0, 0)])

    def _per_class_nms(self, boxes, scores, class_ids):
        """Indices (into the inputs) kept by an NMS run separately for each class."""
        def one_class(class_id):
            members = tf.where(tf.equal(class_ids, class_id))[:, 0]
            kept = tf.image.non_max_suppression(
                tf.gather(boxes, members), tf.gather(scores, members),
                max_output_size=self.max_instances, iou_threshold=self.nms_threshold)
            kept = tf.gather(members, kept)
            return tf.pad(kept, [(0, self.max_instances - tf.size(kept))], constant_values=-1)

        kept = tf.map_fn(one_class, tf.unique(class_ids)[0],
                         fn_output_signature=tf.TensorSpec([self.max_instances], tf.int64))
        kept = tf.reshape(kept, [-1])
        return tf.boolean_mask(kept, kept > -1)

    def compute_output_shape(self, inputs_shape):
        return (inputs_shape[0][0], self.max_instances, 6)

    def get_config(self):
        return {**super().get_config(), "max_instances": self.max_instances,
                "min_confidence": self.min_confidence, "nms_threshold": self.nms_threshold,
                "bbox_std_dev": self.bbox_std_dev}


class DetectionBoxes(keras.layers.Layer):
    """The boxes of the detections, without the padding rows all images share.

    The mask head costs as much per box as it does per padding row, so it runs
    on ``n`` rows, the most real detections any image of the batch has.

    Call args:
        detections: [B, max_instances, (y1, x1, y2, x2, class_id, score)],
            padding (class_id 0) after the detections.

    Returns:
        [B, n, (y1, x1, y2, x2)] normalized boxes.
    """

    def call(self, detections):
        count = tf.reduce_max(tf.reduce_sum(tf.cast(detections[..., 4] > 0, tf.int32), axis=1))
        return detections[:, :count, :4]

    def compute_output_shape(self, detections_shape):
        return (detections_shape[0], None, 4)

