"""Triplet losses on embeddings: FaceNet's semi-hard mining and Hermans et al.'s batch-hard.

Both take the rows of one batch: ``embeddings`` [N, D] (L2-normalized in the
association head, though nothing here assumes it), ``labels`` [N] integer
identities, and an optional ``valid`` [N] bool mask for padded rows. Pairs are
formed only within the batch: a *positive* of anchor ``a`` is another valid row
with its label, a *negative* a valid row with another label. Distances are
Euclidean (not squared), ``d(a, b) = ||e_a - e_b||``.

Both return a float32 scalar that is exactly 0, with finite (zero) gradients,
when no anchor has both a positive and a negative. The formulas work on
[N, N] (batch-hard) and [N, N, N] (semi-hard) tensors, so N is meant to be the
positive ROIs of a training batch (hundreds), not a dataset.
"""
from __future__ import annotations

import tensorflow as tf

from mrcnn.graph.losses import mean_or_zero

# Stands in for "no candidate" in masked min/max reductions: finite (unlike inf), so
# that the unselected branch of tf.where never turns a zero gradient into NaN.
_FAR = 1e9
# Squared distances are clamped here before the square root, whose gradient at 0 is
# infinite (identical embeddings are common: the diagonal, duplicated rows).
_MIN_SQUARED_DISTANCE = 1e-12


def pairwise_distances(embeddings: tf.Tensor) -> tf.Tensor:
    """Euclidean distances between all rows.

    Args:
        embeddings: [N, D] float.

    Returns:
        [N, N] float32, 0 on the diagonal, symmetric, finite gradients everywhere.
    """
    embeddings = tf.cast(embeddings, tf.float32)
    squared_norms = tf.reduce_sum(tf.square(embeddings), axis=1)
    squared = (squared_norms[:, None] + squared_norms[None, :]
               - 2.0 * tf.matmul(embeddings, embeddings, transpose_b=True))
    distances = tf.sqrt(tf.maximum(squared, _MIN_SQUARED_DISTANCE))
    diagonal = tf.eye(tf.shape(embeddings)[0], dtype=tf.bool)
    return tf.where(diagonal, tf.zeros_like(distances), distances)


def _pair_masks(labels: tf.Tensor, valid: tf.Tensor | None):
    """([N, N] positive pairs, [N, N] negative pairs) as bool; a row never pairs itself."""
    labels = tf.reshape(tf.cast(labels, tf.int64), [-1])
    count = tf.shape(labels)[0]
    if valid is None:
        valid = tf.ones([count], tf.bool)
    valid = tf.reshape(tf.cast(valid, tf.bool), [-1])
    both_valid = valid[:, None] & valid[None, :]
    same = tf.equal(labels[:, None], labels[None, :])
    not_self = tf.logical_not(tf.eye(count, dtype=tf.bool))
    return same & both_valid & not_self, tf.logical_not(same) & both_valid


def triplet_semihard_loss(embeddings: tf.Tensor, labels: tf.Tensor, margin: float = 1.0,
                          valid: tf.Tensor | None = None) -> tf.Tensor:
    """FaceNet's triplet loss with semi-hard negatives (Schroff et al., 2015).

    For every anchor-positive pair (a, p), the negative n is the *closest
    negative still farther than the positive*: argmin d(a, n) over the
    negatives with d(a, n) > d(a, p); when no negative is that far, the
    *farthest negative* of the anchor. The pair's loss is
    ``max(d(a, p) - d(a, n) + margin, 0)``; the result is the mean over the
    pairs whose anchor has at least one negative (each ordered pair counts,
    so (a, p) and (p, a) both do). This is the rule of TensorFlow Addons'
    ``triplet_semihard_loss``, with Euclidean rather than squared distances.

    Args:
        embeddings: [N, D] float.
        labels: [N] int identities.
        margin: the hinge's margin, >= 0.
        valid: [N] bool, False for rows to ignore (padding); None: all valid.

    Returns:
        [] float32; 0 when no anchor has a positive and a negative.
    """
    distances = pairwise_distances(embeddings)
    positive, negative = _pair_masks(labels, valid)
    anchor_positive = distances[:, :, None]                 # [a, p, 1]
    anchor_negative = distances[:, None, :]                 # [a, 1, n]
    negative = negative[:, None, :]                         # [a, 1, n]
    semihard = negative & (anchor_negative > anchor_positive)  # [a, p, n]
    closest_farther = tf.reduce_min(tf.where(semihard, anchor_negative, _FAR), axis=2)
    farthest = tf.reduce_max(tf.where(negative, anchor_negative, -_FAR), axis=2)
    chosen = tf.where(tf.reduce_any(semihard, axis=2), closest_farther, farthest)  # [a, p]
    counted = positive & tf.reduce_any(negative, axis=2)    # [a, p]
    losses = tf.nn.relu(distances - chosen + margin)
    return mean_or_zero(tf.boolean_mask(losses, counted))


def triplet_batch_hard_loss(embeddings: tf.Tensor, labels: tf.Tensor, margin: float = 0.2,
                            soft: bool = False, valid: tf.Tensor | None = None) -> tf.Tensor:
    """Batch-hard triplet loss (Hermans, Beyer and Leibe, "In Defense of the Triplet
    Loss for Person Re-Identification", 2017).

    Every anchor with at least one positive and one negative takes its
    hardest positive (the farthest, ``d_p = max d(a, p)``) and its hardest
    negative (the closest, ``d_n = min d(a, n)``); its loss is
    ``max(margin + d_p - d_n, 0)``, or with ``soft`` the soft margin
    ``softplus(d_p - d_n) = log(1 + exp(d_p - d_n))`` (``margin`` unused).
    The result is the mean over those anchors.

    Args:
        embeddings: [N, D] float.
        labels: [N] int identities.
        margin: the hinge's margin, >= 0.
        soft: use the soft margin instead of the hinge.
        valid: [N] bool, False for rows to ignore (padding); None: all valid.

    Returns:
        [] float32; 0 when no anchor has a positive and a negative.
    """
    distances = pairwise_distances(embeddings)
    positive, negative = _pair_masks(labels, valid)
    hardest_positive = tf.reduce_max(tf.where(positive, distances, -_FAR), axis=1)
    hardest_negative = tf.reduce_min(tf.where(negative, distances, _FAR), axis=1)
    counted = tf.reduce_any(positive, axis=1) & tf.reduce_any(negative, axis=1)
    gap = tf.boolean_mask(hardest_positive - hardest_negative, counted)
    losses = tf.nn.softplus(gap) if soft else tf.nn.relu(gap + margin)
    return mean_or_zero(losses)
