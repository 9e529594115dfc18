"""DetectionTargetLayer: proposals + ground truth -> the sampled training ROIs and their targets.

Shape shorthand: T = ROIs per image after sampling (``train_rois_per_image``),
G = ground-truth slots per image (MAX_GT_INSTANCES), h x w = size of the
stored gt masks (mini masks or the full image).
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from mrcnn.boxes import CROWD_IOU
from mrcnn.graph.box_ops import box_refinement, overlaps

# A proposal is positive at this IoU with some gt box, negative below it.
POSITIVE_IOU = 0.5


def _non_zero_rows(boxes: tf.Tensor) -> tf.Tensor:
    """[N] bool, True for the rows of boxes [N, 4] that are not zero padding."""
    return tf.reduce_any(tf.not_equal(boxes, 0), axis=1)


class DetectionTargetLayer(keras.layers.Layer):
    """Samples the training ROIs of every image and builds their targets.

    Per image, as in the classic implementation: zero padding is trimmed from
    the proposals and the gt; crowd instances (class id < 0) are split off the
    gt. A proposal is positive when its best IoU with a gt box is at least
    0.5, and negative when it is below 0.5 and its best IoU with any crowd box
    is below 0.001. At most ``int(T * roi_positive_ratio)`` random positives
    are kept, then ``int(P / roi_positive_ratio) - P`` random negatives, where
    P is the number of positives kept (so no positives means no negatives).
    Each positive takes its best-IoU gt box: class id, box deltas divided by
    ``bbox_std_dev``, and the gt mask cropped to the ROI, resized bilinearly
    to ``mask_shape`` and rounded to 0/1. The gt boxes are not added to the
    proposals. Everything is zero-padded to T rows: positives first, then
    negatives (class 0, zero deltas and masks), then padding; use
    :meth:`positive_rows` to take the rows that can be positive rather than
    relying on that order by hand. No gradient flows through the outputs.

    Args:
        train_rois_per_image: T, the ROIs kept per image.
        roi_positive_ratio: the largest fraction of the T ROIs that are positive.
        bbox_std_dev: (4,) divisors of the box-delta targets.
        mask_shape: (mask_h, mask_w) of the mask targets.
        use_mini_mask: True when gt_masks are mini masks (each mask resized to
            its own gt box), False when they cover the whole image.

    Call args:
        inputs: [proposals [B, N, (y1, x1, y2, x2)] normalized, zero-padded;
            gt_class_ids [B, G] int, zero-padded, negative for crowds;
            gt_boxes [B, G, (y1, x1, y2, x2)] normalized, zero-padded;
            gt_masks [B, h, w, G] bool or float;
            optionally gt_instance_ids [B, G] int, aligned with gt_class_ids
            (the association head's identities)].

    Returns:
        rois [B, T, (y1, x1, y2, x2)] normalized float32,
        target_class_ids [B, T] int32,
        target_deltas [B, T, (dy, dx, log(dh), log(dw))] float32,
        target_masks [B, T, mask_h, mask_w] float32 in {0, 1},
        and with gt_instance_ids: target_instance_ids [B, T] int32, the id of
        each positive's assigned gt instance, 0 for negatives and padding.
    """

    def __init__(self, train_rois_per_image: int, roi_positive_ratio: float,
                 bbox_std_dev=(0.1, 0.1, 0.2, 0.2), mask_shape=(28, 28),
                 use_mini_mask: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.train_rois_per_image = int(train_rois_per_image)
        self.roi_positive_ratio = float(roi_positive_ratio)
        self.bbox_std_dev = tuple(float(v) for v in np.ravel(bbox_std_dev))
        self.mask_shape = tuple(int(v) for v in mask_shape)
        self.use_mini_mask = bool(use_mini_mask)

    @property
    def max_positives(self) -> int:
        """The most positive ROIs an image gets: the length of :meth:`positive_rows`."""
        return int(self.train_rois_per_image * self.roi_positive_ratio)

    def positive_rows(self, per_roi):
        """The rows of a per-ROI tensor that can hold a positive ROI.

        The layer's order contract: in every image the sampled positives fill the first
        rows, then come the negatives, then padding. So the first :attr:`max_positives`
        rows hold every positive of every image; rows after them never do. Work that only
        positives need (the mask head and its loss) runs on these rows alone.

        Args:
            per_roi: [B, T, ...] one of the layer's outputs, or a tensor row-aligned with
                them (a symbolic KerasTensor or an eager tensor).

        Returns:
            [B, max_positives, ...] its first rows.
        """
        return per_roi[:, :self.max_positives]

    def call(self, inputs):
        proposals, gt_class_ids, gt_boxes, gt_masks = inputs[:4]
        # The targets are labels: no loss gradient may flow back into the RPN through them.
        proposals = tf.stop_gradient(tf.cast(proposals, tf.float32))
        rois_count = self.train_rois_per_image
        signature = (tf.TensorSpec([rois_count, 4], tf.float32),
                     tf.TensorSpec([rois_count], tf.int32),
                     tf.TensorSpec([rois_count, 4], tf.float32),
                     tf.TensorSpec([rois_count, *self.mask_shape], tf.float32))
        elements = (proposals, tf.cast(gt_class_ids, tf.int32),
                    tf.cast(gt_boxes, tf.float32), gt_masks)
        if len(inputs) == 5:
            signature += (tf.TensorSpec([rois_count], tf.int32),)
            elements += (tf.cast(inputs[4], tf.int32),)
        return tf.map_fn(
            lambda args: self._image_targets(*args),
            elements, fn_output_signature=signature)

    def _image_targets(self, proposals, gt_class_ids, gt_boxes, gt_masks,
                       gt_instance_ids=None):
        """One image: proposals [N, 4], gt_class_ids [G], gt_boxes [G, 4], gt_masks [h, w, G],
        gt_instance_ids [G] or None."""
        proposals = tf.boolean_mask(proposals, _non_zero_rows(proposals))
        present = _non_zero_rows(gt_boxes)
        gt_class_ids = tf.boolean_mask(gt_class_ids, present)
        gt_boxes = tf.boolean_mask(gt_boxes, present)
        gt_masks = tf.boolean_mask(gt_masks, present, axis=2)

        crowd = gt_class_ids < 0
        crowd_boxes = tf.boolean_mask(gt_boxes, crowd)
        instance = gt_class_ids > 0
        gt_class_ids = tf.boolean_mask(gt_class_ids, instance)
        gt_boxes = tf.boolean_mask(gt_boxes, instance)
        gt_masks = tf.boolean_mask(gt_masks, instance, axis=2)
        if gt_instance_ids is not None:
            gt_instance_ids = tf.boolean_mask(tf.boolean_mask(gt_instance_ids, present),
                                              instance)

        # With no (crowd) gt the max over an empty axis is -inf: nothing is
        # positive and nothing is near a crowd.
        iou = overlaps(proposals, gt_boxes)
        iou_max = tf.reduce_max(iou, axis=1)
        crowd_iou_max = tf.reduce_max(overlaps(proposals, crowd_boxes), axis=1)
        positive = iou_max >= POSITIVE_IOU
        negative = (iou_max < POSITIVE_IOU) & (crowd_iou_max < CROWD_IOU)

        positive_ix = tf.random.shuffle(tf.where(positive)[:, 0])[:self.max_positives]
        positive_count = tf.shape(positive_ix)[0]
        # The classic float32 product by 1/ratio, truncated, so that the
        # sampled counts match it exactly.
        negative_limit = tf.cast(tf.cast(positive_count, tf.float32)
                                 * (1.0 / self.roi_positive_ratio), tf.int32) - positive_count
        negative_ix = tf.random.shuffle(tf.where(negative)[:, 0])[:negative_limit]
        positive_rois = tf.gather(proposals, positive_ix)
        negative_rois = tf.gather(proposals, negative_ix)

        positive_iou = tf.gather(iou, positive_ix)
        assignment = tf.cond(tf.shape(positive_iou)[1] > 0,
                             lambda: tf.argmax(positive_iou, axis=1),
                             lambda: tf.zeros([0], tf.int64))
        roi_gt_boxes = tf.gather(gt_boxes, assignment)
        class_ids = tf.gather(gt_class_ids, assignment)
        deltas = box_refinement(positive_rois, roi_gt_boxes) / tf.constant(self.bbox_std_dev)
        masks = self._mask_targets(positive_rois, roi_gt_boxes,
                                   tf.gather(gt_masks, assignment, axis=2))

        rois = tf.concat([positive_rois, negative_rois], axis=0)
        padding = tf.maximum(self.train_rois_per_image - tf.shape(rois)[0], 0)
        target_padding = tf.shape(negative_rois)[0] + padding
        targets = (tf.pad(rois, [(0, padding), (0, 0)]),
                   tf.pad(class_ids, [(0, target_padding)]),
                   tf.pad(deltas, [(0, target_padding), (0, 0)]),
                   tf.pad(masks, [(0, target_padding), (0, 0), (0, 0)]))
        if gt_instance_ids is None:
            return targets
        return targets + (tf.pad(tf.gather(gt_instance_ids, assignment),
                                 [(0, target_padding)]),)

    def _mask_targets(self, rois, roi_gt_boxes, roi_masks):
        """Binary masks [P, mask_h, mask_w] of rois [P, 4] cut from roi_masks [h, w, P]."""
        # Cast only the assigned masks: full-image float masks of every gt would be large.
        roi_masks = tf.cast(roi_masks, tf.float32)
        if self.use_mini_mask:
            # A mini mask spans its gt box: express the ROI in that box's frame.
            y1, x1, y2, x2 = tf.unstack(rois, axis=1)
            gt_y1, gt_x1, gt_y2, gt_x2 = tf.unstack(roi_gt_boxes, axis=1)
            gt_height = gt_y2 - gt_y1
            gt_width = gt_x2 - gt_x1
            rois = tf.stack([(y1 - gt_y1) / gt_height, (x1 - gt_x1) / gt_width,
                             (y2 - gt_y1) / gt_height, (x2 - gt_x1) / gt_width], axis=1)
        masks = tf.image.crop_and_resize(
            tf.transpose(roi_masks, [2, 0, 1])[..., None], rois,
            tf.range(tf.shape(rois)[0]), self.mask_shape, method="bilinear")
        return tf.round(masks[..., 0])

    def compute_output_spec(self, inputs):
        batch = inputs[0].shape[0]
        rois_count = self.train_rois_per_image
        specs = [keras.KerasTensor((batch, rois_count, 4), "float32"),
                 keras.KerasTensor((batch, rois_count), "int32"),
                 keras.KerasTensor((batch, rois_count, 4), "float32"),
                 keras.KerasTensor((batch, rois_count, *self.mask_shape), "float32")]
        if len(inputs) == 5:
            specs.append(keras.KerasTensor((batch, rois_count), "int32"))
        return specs

    def get_config(self):
        return {**super().get_config(), "train_rois_per_image": self.train_rois_per_image,
                "roi_positive_ratio": self.roi_positive_ratio,
                "bbox_std_dev": self.bbox_std_dev, "mask_shape": self.mask_shape,
                "use_mini_mask": self.use_mini_mask}
