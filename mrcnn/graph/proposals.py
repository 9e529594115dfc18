"""ProposalLayer: RPN scores and deltas -> the top proposals of every image."""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from mrcnn.graph.box_ops import apply_box_deltas, clip_boxes


class ProposalLayer(keras.layers.Layer):
    """Refines anchors by the RPN deltas and keeps the best after NMS.

    Per image: the ``pre_nms_limit`` anchors with the highest foreground
    score are moved by their deltas (times ``rpn_bbox_std_dev``), clipped to
    the image, and reduced by NMS to at most ``proposal_count`` proposals,
    ordered by score and zero-padded.

    Args:
        proposal_count: proposals per image after NMS.
        nms_threshold: IoU above which the lower-scoring box is dropped.
        pre_nms_limit: anchors kept (by score) before NMS.
        rpn_bbox_std_dev: (4,) factors of the RPN deltas.

    Call args:
        inputs: [rpn_probs [B, A, (bg, fg)], rpn_bbox [B, A, 4] deltas,
            anchors [B, A, (y1, x1, y2, x2)] normalized].

    Returns:
        [B, proposal_count, (y1, x1, y2, x2)] normalized proposals.
    """

    def __init__(self, proposal_count: int, nms_threshold: float, pre_nms_limit: int,
                 rpn_bbox_std_dev=(0.1, 0.1, 0.2, 0.2), **kwargs):
        super().__init__(**kwargs)
        self.proposal_count = int(proposal_count)
        self.nms_threshold = float(nms_threshold)
        self.pre_nms_limit = int(pre_nms_limit)
        self.rpn_bbox_std_dev = tuple(float(v) for v in np.ravel(rpn_bbox_std_dev))

    def call(self, inputs):
        rpn_probs, rpn_bbox, anchors = inputs
        # Boxes and NMS in float32 whatever the layer's policy: a low-precision
        # rpn_bbox times the float32 std-dev factors would not even multiply.
        scores = tf.cast(rpn_probs[:, :, 1], tf.float32)
        deltas = tf.cast(rpn_bbox, tf.float32) * tf.constant(self.rpn_bbox_std_dev)
        anchors = tf.cast(anchors, tf.float32)
        limit = tf.minimum(self.pre_nms_limit, tf.shape(anchors)[1])
        scores, top = tf.math.top_k(scores, limit, sorted=True)
        deltas = tf.gather(deltas, top, batch_dims=1)
        anchors = tf.gather(anchors, top, batch_dims=1)
        boxes = clip_boxes(apply_box_deltas(anchors, deltas), tf.constant([0., 0., 1., 1.]))
        return tf.map_fn(
            lambda args: self._nms(*args), (boxes, scores),
            fn_output_signature=tf.TensorSpec([self.proposal_count, 4], tf.float32))

    def _nms(self, boxes, scores):
        keep = tf.image.non_max_suppression(boxes, scores, self.proposal_count,
                                            self.nms_threshold)
        proposals = tf.gather(boxes, keep)
        return tf.pad(proposals, [(0, self.proposal_count - tf.shape(proposals)[0]), (0, 0)])

    def compute_output_shape(self, inputs_shape):
        return (inputs_shape[0][0], self.proposal_count, 4)

    def get_config(self):
        return {**super().get_config(), "proposal_count": self.proposal_count,
                "nms_threshold": self.nms_threshold, "pre_nms_limit": self.pre_nms_limit,
                "rpn_bbox_std_dev": self.rpn_bbox_std_dev}
