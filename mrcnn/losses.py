"""Choosing each head's loss, adding loss terms and training monitors.

Three settings of :class:`~mrcnn.config.Config` use this module::

    class MyConfig(Config):
        LOSS_FUNCTIONS = {
            "mrcnn_class_loss": losses.focal(gamma=2.0, alpha=0.25),   # a factory
            "mrcnn_mask_loss": "bce_dice",                              # a name
            "rpn_bbox_loss": keras.losses.Huber(delta=0.5),            # a Keras loss
        }
        EXTRA_LOSSES = {"mask_area_loss": mask_area_loss}   # parameters = graph tensors
        LOSS_WEIGHTS = {**Config.LOSS_WEIGHTS, "mask_area_loss": 0.1}
        TRAINING_METRICS = ["roi_accuracy", "mask_iou", "positive_fraction"]

``LOSS_FUNCTIONS`` maps any of the five loss names (and ``mrcnn_assoc_loss``
when ``ASSOCIATION_EMBEDDING_SIZE`` turns the association head on) to

- a name: ``"classic"``, ``"focal"``, ``"smooth_l1"``, ``"dice"``,
  ``"bce_dice"``, ``"triplet_semihard"``, ``"triplet_batch_hard"`` (default
  hyper-parameters; "classic" for ``mrcnn_assoc_loss`` is ``triplet_batch_hard()``),
  optionally with hyper-parameters as ``"focal:gamma=2,alpha=0.25"`` or ``"class_weighted:weights=[1,2,2,1]"``;
- what a factory of this module returns (``focal(...)`` etc.);
- a ``keras.losses.Loss`` instance, applied to the head's counted elements:
  one-hot targets and softmax probabilities of the counted anchors / ROIs for
  the classifiers, target and predicted deltas of the positives for the box
  heads, target and predicted masks of the positive ROIs for the mask head,
  instance ids and embeddings of the positive ROIs for the association head;
- a plain function with the head's arguments (:data:`HEAD_INPUTS`) returning
  a scalar;
- ``"package.module:name"`` or ``"path/file.py:name"`` naming one of these.

Unlisted losses stay classic; each keeps its layer name, so the progress bar,
``History`` and TensorBoard show it as before, weighted by ``LOSS_WEIGHTS``.

``EXTRA_LOSSES`` and ``TRAINING_METRICS`` map a new name to a function of
graph tensors (:data:`GRAPH_TENSORS`; with the association head also
:data:`ASSOCIATION_TENSORS`): a function whose required parameters
are named after them, a ``(function, [tensor names])`` pair, or
``"module:name"``; ``TRAINING_METRICS`` also takes the built-in monitors of
:data:`MONITORS` by name (a list of names is short for ``{name: name}``).
Extra losses are added to ``loss`` with their ``LOSS_WEIGHTS`` (default 1);
monitors are only shown (with ``val_`` twins), never added to the loss.

The factories' results and the built-in functions are registered Keras
serializables whose configs hold their hyper-parameters, so a saved
config or model reloads with ``keras.saving`` and no custom objects.
Settings are checked when the Config is made (:func:`check_settings`):
each choice is called once on small tensors shaped as documented, and a
problem raises :class:`~mrcnn.config.ConfigError` naming the loss.
"""
from __future__ import annotations

import ast
import inspect
from typing import Any, Callable, NamedTuple, Sequence

import keras
import numpy as np
import tensorflow as tf

from mrcnn.config import ASSOCIATION_LOSS, LOSS_NAMES, Config, ConfigError, loss_names
from mrcnn.config_presets import import_object
from mrcnn.graph import association
from mrcnn.graph import losses as graph_losses
from mrcnn.graph import monitors, triplet

_serializable = keras.saving.register_keras_serializable(package="mrcnn")


class GraphTensor(NamedTuple):
    """A training-graph tensor that losses and monitors can take."""
    shape: tuple    # dims: B batch, A anchors, R RPN targets, T ROIs, NC classes, h x w mask,
                    # P positive-ROI rows, D embedding size
    kind: str       # what its values are; drives the probe tensors of check_settings
    meaning: str


# The graph tensors that losses, extra losses and monitors can take, by name.
GRAPH_TENSORS = {
    "rpn_match": GraphTensor(("B", "A", 1), "match",
                             "int32 anchor match: 1 positive, -1 negative, 0 neutral"),
    "rpn_target_bbox": GraphTensor(("B", "R", 4), "real",
                                   "RPN box targets (dy, dx, log dh, log dw) / RPN_BBOX_STD_DEV,"
                                   " packed: row k pairs with the k-th positive anchor"),
    "rpn_class_logits": GraphTensor(("B", "A", 2), "real", "RPN (bg, fg) logits"),
    "rpn_class": GraphTensor(("B", "A", 2), "probs", "RPN (bg, fg) probabilities"),
    "rpn_bbox": GraphTensor(("B", "A", 4), "real", "RPN predicted deltas"),
    "rois": GraphTensor(("B", "T", 4), "boxes",
                        "sampled training ROIs, normalized (y1, x1, y2, x2); zero rows pad"),
    "target_class_ids": GraphTensor(("B", "T"), "class_ids",
                                    "int32 ROI class targets, 0 for negatives and padding"),
    "target_bbox": GraphTensor(("B", "T", 4), "real",
                               "ROI box targets (dy, dx, log dh, log dw) / BBOX_STD_DEV"),
    "target_mask": GraphTensor(("B", "T", "h", "w"), "binary", "ROI mask targets in {0, 1}"),
    "mrcnn_class_logits": GraphTensor(("B", "T", "NC"), "real", "classifier logits"),
    "mrcnn_class": GraphTensor(("B", "T", "NC"), "probs", "classifier probabilities"),
    "mrcnn_bbox": GraphTensor(("B", "T", "NC", 4), "real", "class-specific predicted deltas"),
    "mrcnn_mask": GraphTensor(("B", "T", "h", "w", "NC"), "probs",
                              "class-specific mask probabilities"),
    "active_class_ids": GraphTensor(("B", "NC"), "ones",
                                    "1 for the classes of the image's dataset, else 0"),
}
# The graph tensors that only the association head (ASSOCIATION_EMBEDDING_SIZE) makes.
ASSOCIATION_TENSORS = {
    "target_instance_ids": GraphTensor(("B", "P"), "instance_ids",
                                       "int32 instance identity of the positive-ROI rows "
                                       "(the first int(T * ROI_POSITIVE_RATIO) rows), 0 for "
                                       "the others"),
    "mrcnn_assoc": GraphTensor(("B", "P", "D"), "unit",
                               "L2-normalized embeddings of the positive-ROI rows"),
}

_TENSOR_SPECS = {**GRAPH_TENSORS, **ASSOCIATION_TENSORS}

# Arguments of each of the five losses (and of a plain function replacing one).
HEAD_INPUTS = {
    "rpn_class_loss": ("rpn_match", "rpn_class_logits"),
    "rpn_bbox_loss": ("rpn_target_bbox", "rpn_match", "rpn_bbox"),
    "mrcnn_class_loss": ("target_class_ids", "mrcnn_class_logits", "active_class_ids"),
    "mrcnn_bbox_loss": ("target_bbox", "target_class_ids", "mrcnn_bbox"),
    "mrcnn_mask_loss": ("target_mask", "target_class_ids", "mrcnn_mask"),
    ASSOCIATION_LOSS: ("target_instance_ids", "mrcnn_assoc"),
}

# What a head's counted elements are, which decides the losses that fit it.
HEAD_KINDS = {
    "rpn_class_loss": "classifier", "mrcnn_class_loss": "classifier",
    "rpn_bbox_loss": "box", "mrcnn_bbox_loss": "box",
    "mrcnn_mask_loss": "mask", ASSOCIATION_LOSS: "embedding",
}

# Each loss name -> the gatherer of its counted (targets, predictions).
COUNTED_ELEMENTS = {**graph_losses.COUNTED_ELEMENTS,
                    ASSOCIATION_LOSS: association.positive_roi_embeddings}
# Each loss name -> its "classic" (default) function of HEAD_INPUTS.
DEFAULT_LOSSES = {**{name: getattr(graph_losses, name) for name in LOSS_NAMES},
                  ASSOCIATION_LOSS: association.mrcnn_assoc_loss}

# The built-in monitors: name -> (function, its graph tensors).
MONITORS = {
    "roi_accuracy": (monitors.roi_accuracy, ("target_class_ids", "mrcnn_class_logits", "rois")),
    "mask_iou": (monitors.mask_iou, ("target_mask", "target_class_ids", "mrcnn_mask")),
    "positive_fraction": (monitors.positive_fraction, ("target_class_ids", "rois")),
}


# ---------------------------------------------------------------- the factories' losses

class HeadLoss:
    """A loss of one kind of head, computed on the head's counted elements.

    Subclasses set ``kind`` and implement ``__call__(targets, predictions)``:

    - "classifier": labels [N] int, logits [N, C] (C = 2 for the RPN);
    - "box": target deltas [N, 4], predicted deltas [N, 4];
    - "mask": target masks [P, h, w], predicted probabilities [P, h, w];
    - "embedding": instance ids [N] int, embeddings [N, D] (pairs within them).

    Each returns a float32 scalar, 0 when N (or P) is 0. The constructor's
    arguments are the hyper-parameters; ``get_config`` returns them.
    """
    kind = ""
    name = ""

    def __call__(self, targets: tf.Tensor, predictions: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def get_config(self) -> dict:
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict) -> "HeadLoss":
        return cls(**config)

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{self.name}({params})"


def _per_class(values: Sequence[float], num_classes: int, what: str) -> list[float]:
    values = [float(v) for v in values]
    if len(values) != num_classes:
        raise ConfigError(f"{what} has {len(values)} values for a head of {num_classes} "
                          f"classes: give one per class, background first")
    return values


@_serializable
class FocalLoss(HeadLoss):
    """Softmax focal loss ``alpha_c (1 - p_c)**gamma CE``, mean over the counted elements.

    See :func:`focal`.
    """
    kind = "classifier"
    name = "focal"

    def __init__(self, gamma: float = 2.0, alpha: float | Sequence[float] | None = None):
        if not isinstance(gamma, (int, float)) or gamma < 0:
            raise ConfigError(f"focal: gamma is {gamma!r}; use a number >= 0")
        if isinstance(alpha, (int, float)) and 0 <= alpha <= 1:
            alpha = float(alpha)
        elif isinstance(alpha, Sequence) and not isinstance(alpha, str) and all(
                isinstance(a, (int, float)) and a >= 0 for a in alpha):
            alpha = [float(a) for a in alpha]
        elif alpha is not None:
            raise ConfigError(f"focal: alpha is {alpha!r}; use a fraction in [0, 1], a list "
                              "of per-class weights >= 0, or None")
        self.gamma = float(gamma)
        self.alpha = alpha

    def class_weights(self, num_classes: int) -> list[float] | None:
        """[num_classes] factors: a float alpha weights the object classes, 1 - alpha the
        background (as RetinaNet does for its foreground); a list is per class."""
        if self.alpha is None:
            return None
        if isinstance(self.alpha, list):
            return _per_class(self.alpha, num_classes, "focal: alpha")
        return [1.0 - self.alpha] + [self.alpha] * (num_classes - 1)

    def __call__(self, labels, logits):
        weights = self.class_weights(int(logits.shape[-1]))
        return graph_losses.mean_or_zero(
            graph_losses.softmax_focal_loss(labels, logits, self.gamma, weights))

    def get_config(self):
        return {"gamma": self.gamma, "alpha": self.alpha}


@_serializable
class ClassWeightedLoss(HeadLoss):
    """Cross-entropy weighted by the target's class, mean over the counted elements.

    See :func:`class_weighted`.
    """
    kind = "classifier"
    name = "class_weighted"

    def __init__(self, weights: Sequence[float]):
        if isinstance(weights, (str, bytes)) or not isinstance(weights, Sequence) or any(
                not isinstance(w, (int, float)) or w < 0 for w in weights):
            raise ConfigError(f"class_weighted: weights is {weights!r}; give a list of "
                              "numbers >= 0, one per class, background first")
        self.weights = [float(w) for w in weights]

    def __call__(self, labels, logits):
        weights = _per_class(self.weights, int(logits.shape[-1]), "class_weighted: weights")
        return graph_losses.mean_or_zero(
            graph_losses.softmax_focal_loss(labels, logits, 0.0, weights))

    def get_config(self):
        return {"weights": self.weights}


@_serializable
class SmoothL1Loss(HeadLoss):
    """Smooth-L1 with threshold ``beta``, mean over the positives' coordinates.

    See :func:`smooth_l1`.
    """
    kind = "box"
    name = "smooth_l1"

    def __init__(self, beta: float = 1.0):
        if not isinstance(beta, (int, float)) or beta <= 0:
            raise ConfigError(f"smooth_l1: beta is {beta!r}; use a number > 0")
        self.beta = float(beta)

    def __call__(self, target, pred):
        return graph_losses.mean_or_zero(graph_losses.smooth_l1(pred - target, self.beta))

    def get_config(self):
        return {"beta": self.beta}


def _check_non_negative(name: str, **values) -> None:
    for key, value in values.items():
        if not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"{name}: {key} is {value!r}; use a number >= 0")


@_serializable
class DiceLoss(HeadLoss):
    """Soft dice loss per positive ROI's mask, mean over the positive ROIs.

    See :func:`dice`.
    """
    kind = "mask"
    name = "dice"

    def __init__(self, smooth: float = 1.0):
        _check_non_negative("dice", smooth=smooth)
        self.smooth = float(smooth)

    def __call__(self, target, pred):
        return graph_losses.mean_or_zero(graph_losses.soft_dice_loss(target, pred, self.smooth))

    def get_config(self):
        return {"smooth": self.smooth}


@_serializable
class BceDiceLoss(HeadLoss):
    """``bce_weight`` × the classic mask cross-entropy + ``dice_weight`` × dice (smooth 1).

    See :func:`bce_dice`.
    """
    kind = "mask"
    name = "bce_dice"

    def __init__(self, bce_weight: float = 1.0, dice_weight: float = 1.0):
        _check_non_negative("bce_dice", bce_weight=bce_weight, dice_weight=dice_weight)
        self.bce_weight = float(bce_weight)
        self.dice_weight = float(dice_weight)

    def __call__(self, target, pred):
        bce = graph_losses.mean_or_zero(graph_losses.binary_cross_entropy(target, pred))
        return self.bce_weight * bce + self.dice_weight * DiceLoss()(target, pred)

    def get_config(self):
        return {"bce_weight": self.bce_weight, "dice_weight": self.dice_weight}


def focal(gamma: float = 2.0, alpha: float | Sequence[float] | None = None) -> FocalLoss:
    """Softmax focal loss for ``rpn_class_loss`` or ``mrcnn_class_loss``.

    Over the counted anchors / ROIs (the classic loss's), each element's
    cross-entropy times ``(1 - p)**gamma`` (p: probability of its target) and
    its class's alpha factor; the mean over the counted elements.
    ``gamma=0, alpha=None`` is exactly the classic cross-entropy.

    Args:
        gamma: focusing exponent, >= 0.
        alpha: None (no factor); a float in [0, 1] weighting the object classes
            (1 - alpha the background); or a list with one weight per class,
            background first (2 for the RPN, NUM_CLASSES for the classifier).
    """
    return FocalLoss(gamma, alpha)


def class_weighted(weights: Sequence[float]) -> ClassWeightedLoss:
    """Per-class weighted cross-entropy for ``mrcnn_class_loss`` (or ``rpn_class_loss``).

    Each counted ROI's cross-entropy is multiplied by the weight of its target
    class and the sum divided by the number of counted ROIs, as Keras's
    ``class_weight`` weights samples (the weights are not renormalized; all
    ones give the classic loss).

    Args:
        weights: one number >= 0 per class, background first.
    """
    return ClassWeightedLoss(weights)


def smooth_l1(beta: float = 1.0) -> SmoothL1Loss:
    """Smooth-L1 for ``rpn_bbox_loss`` or ``mrcnn_bbox_loss``; ``beta=1`` is the classic.

    Args:
        beta: where the loss turns from 0.5 d²/beta to |d| - 0.5 beta; > 0.
    """
    return SmoothL1Loss(beta)


def dice(smooth: float = 1.0) -> DiceLoss:
    """Soft dice loss for ``mrcnn_mask_loss``: per positive ROI, on the mask of its
    target class, ``1 - (2 Σ t p + smooth) / (Σ t + Σ p + smooth)``; mean over the ROIs.

    Args:
        smooth: >= 0, added to numerator and denominator.
    """
    return DiceLoss(smooth)


def bce_dice(bce_weight: float = 1.0, dice_weight: float = 1.0) -> BceDiceLoss:
    """``bce_weight`` × the classic mask loss + ``dice_weight`` × :func:`dice` (smooth 1),
    for ``mrcnn_mask_loss``."""
    return BceDiceLoss(bce_weight, dice_weight)


@_serializable
class TripletSemiHardLoss(HeadLoss):
    """FaceNet's semi-hard triplet loss over the batch's rows. See :func:`triplet_semihard`."""
    kind = "embedding"
    name = "triplet_semihard"

    def __init__(self, margin: float = 1.0):
        _check_non_negative("triplet_semihard", margin=margin)
        self.margin = float(margin)

    def __call__(self, labels, embeddings, valid=None):
        return triplet.triplet_semihard_loss(embeddings, labels, self.margin, valid)

    def get_config(self):
        return {"margin": self.margin}


@_serializable
class TripletBatchHardLoss(HeadLoss):
    """Batch-hard triplet loss over the batch's rows. See :func:`triplet_batch_hard`."""
    kind = "embedding"
    name = "triplet_batch_hard"

    def __init__(self, margin: float = 0.2, soft: bool = False):
        _check_non_negative("triplet_batch_hard", margin=margin)
        if not isinstance(soft, bool):
            raise ConfigError(f"triplet_batch_hard: soft is {soft!r}; use True or False")
        self.margin = float(margin)
        self.soft = soft

    def __call__(self, labels, embeddings, valid=None):
        return triplet.triplet_batch_hard_loss(embeddings, labels, self.margin, self.soft,
                                               valid)

    def get_config(self):
        return {"margin": self.margin, "soft": self.soft}


def triplet_semihard(margin: float = 1.0) -> TripletSemiHardLoss:
    """Triplet loss with semi-hard negatives (FaceNet) for ``mrcnn_assoc_loss``.

    For each anchor-positive pair of the batch, the closest negative that is
    still farther than the positive, else the farthest negative; loss
    ``max(d_ap - d_an + margin, 0)``, Euclidean distances, mean over the
    pairs (see :func:`mrcnn.graph.triplet.triplet_semihard_loss`). Called as
    ``loss(labels [N], embeddings [N, D], valid=None)``; 0 with no positive pair.

    Args:
        margin: >= 0.
    """
    return TripletSemiHardLoss(margin)


def triplet_batch_hard(margin: float = 0.2, soft: bool = False) -> TripletBatchHardLoss:
    """Batch-hard triplet loss (Hermans et al. 2017) for ``mrcnn_assoc_loss``.

    Each anchor's farthest positive and closest negative in the batch;
    ``max(margin + d_p - d_n, 0)``, or ``softplus(d_p - d_n)`` with ``soft``
    (margin unused); mean over the anchors with a positive and a negative
    (see :func:`mrcnn.graph.triplet.triplet_batch_hard_loss`). Called as
    ``loss(labels [N], embeddings [N, D], valid=None)``; 0 with no positive pair.

    Args:
        margin: >= 0.
        soft: the soft margin instead of the hinge.
    """
    return TripletBatchHardLoss(margin, soft)


LOSS_CLASSES = (FocalLoss, ClassWeightedLoss, SmoothL1Loss, DiceLoss, BceDiceLoss,
                TripletSemiHardLoss, TripletBatchHardLoss)
# Names accepted in LOSS_FUNCTIONS (and by ``mrcnn train --loss``).
FACTORIES = {"focal": focal, "class_weighted": class_weighted, "smooth_l1": smooth_l1,
             "dice": dice, "bce_dice": bce_dice, "triplet_semihard": triplet_semihard,
             "triplet_batch_hard": triplet_batch_hard}


@_serializable
class BoundLoss:
    """A factory's loss or a ``keras.losses.Loss`` applied to one head's counted elements.

    Called with the head's graph tensors (:data:`HEAD_INPUTS`), it gathers the
    counted elements as the classic loss does and applies ``loss`` to them.
    A Keras loss gets one-hot targets and softmax probabilities for a
    classifier; its per-element values (``Loss.call``) are averaged over the
    counted elements, 0 when nothing counts (its ``reduction`` is not used).

    Args:
        head: one of the loss names of HEAD_INPUTS.
        loss: a :class:`HeadLoss` of that head's kind, or a ``keras.losses.Loss``.
    """

    def __init__(self, head: str, loss: HeadLoss | keras.losses.Loss):
        self.head = head
        self.loss = loss

    def __call__(self, *inputs) -> tf.Tensor:
        targets, predictions = COUNTED_ELEMENTS[self.head](*inputs)
        if isinstance(self.loss, HeadLoss):
            return self.loss(targets, predictions)
        if HEAD_KINDS[self.head] == "classifier":
            targets = tf.one_hot(targets, int(predictions.shape[-1]))
            predictions = tf.nn.softmax(predictions)
        # The unreduced values, averaged here: the Loss's own reduction would divide by
        # the replica count under tf.distribute, which add_loss does already.
        return graph_losses.mean_or_zero(self.loss.call(targets, predictions))

    def get_config(self) -> dict:
        return {"head": self.head, "loss": keras.saving.serialize_keras_object(self.loss)}

    @classmethod
    def from_config(cls, config: dict) -> "BoundLoss":
        return cls(config["head"], keras.saving.deserialize_keras_object(config["loss"]))

    def __eq__(self, other) -> bool:
        return isinstance(other, BoundLoss) and self.get_config() == other.get_config()

    def __repr__(self) -> str:
        return f"BoundLoss({self.head!r}, {self.loss!r})"


# ---------------------------------------------------------------- reading the settings

def _accepted(head: str) -> str:
    fitting = [cls.name for cls in LOSS_CLASSES if cls.kind == HEAD_KINDS[head]]
    return ("Accepted: 'classic'" + "".join(f", {n!r}" for n in fitting)
            + " (optionally with hyper-parameters, e.g. 'focal:gamma=2,alpha=0.25'), what "
            "a mrcnn.losses factory returns, a keras.losses.Loss instance, a function of ("
            + ", ".join(HEAD_INPUTS[head]) + ") returning a scalar, or "
            "'package.module:name' naming one of these.")


def parse_choice(text: str) -> Any:
    """The object a string choice names.

    Args:
        text: ``"classic"``, a factory name with optional hyper-parameters
            (``"focal"``, ``"focal:gamma=2,alpha=0.25"``,
            ``"class_weighted:weights=[1, 2, 2]"``), or ``"module:name"``.

    Returns:
        "classic", a HeadLoss, or the imported object.

    Raises:
        ConfigError: malformed hyper-parameters or an unknown name.
        ValueError: a module or name that cannot be imported.
    """
    name, _, params = text.strip().partition(":")
    name = name.strip()
    if name == "classic" and not params:
        return "classic"
    if name in FACTORIES:
        try:
            return FACTORIES[name](**_parse_params(name, params))
        except TypeError as err:  # a missing or unknown hyper-parameter
            raise ConfigError(f"{name}: {err}; its hyper-parameters: "
                              f"{', '.join(inspect.signature(FACTORIES[name]).parameters)}") \
                from None
    if params:
        return import_object(text.strip())
    raise ConfigError(f"{text!r} is not a loss name")


def _parse_params(name: str, params: str) -> dict:
    """``"gamma=2,alpha=[0.25, 0.75]"`` -> {"gamma": 2, "alpha": [0.25, 0.75]}."""
    if not params.strip():
        return {}
    try:
        call = ast.parse(f"f({params})", mode="eval").body
        if call.args:
            raise ValueError("positional value")
        return {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
    except (SyntaxError, ValueError) as err:
        raise ConfigError(f"{name}: cannot read the hyper-parameters {params!r} ({err}); "
                          f"write them as NAME=VALUE separated by commas, e.g. "
                          f"'focal:gamma=2,alpha=0.25'") from None


def head_loss(head: str, choice: Any) -> Callable[..., tf.Tensor]:
    """The function of the head's graph tensors (:data:`HEAD_INPUTS`) for a LOSS_FUNCTIONS choice.

    Raises:
        ConfigError: naming the head and listing what is accepted.
    """
    where = f"LOSS_FUNCTIONS[{head!r}]"
    if isinstance(choice, str):
        try:
            choice = parse_choice(choice)
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}. {_accepted(head)}") from None
        except ValueError as err:
            raise ConfigError(f"{where}: {err}") from None
    if choice == "classic" or choice is None:
        return DEFAULT_LOSSES[head]
    if isinstance(choice, HeadLoss):
        if choice.kind != HEAD_KINDS[head]:
            fits = [h for h, kind in HEAD_KINDS.items() if kind == choice.kind]
            raise ConfigError(f"{where} is {choice!r}, a loss for {' and '.join(fits)}. "
                              f"{_accepted(head)}")
        return BoundLoss(head, choice)
    if isinstance(choice, keras.losses.Loss):
        return BoundLoss(head, choice)
    if callable(choice) and not isinstance(choice, type):
        return choice
    raise ConfigError(f"{where} is {choice!r} of type {type(choice).__name__}. "
                      f"{_accepted(head)}")


def _graph_function(setting: str, name: str, spec: Any) -> tuple[Callable, tuple]:
    """(function, graph tensor names) of an EXTRA_LOSSES or TRAINING_METRICS entry."""
    where = f"{setting}[{name!r}]"
    accepted = (f"Give a function whose parameters are named after graph tensors, a "
                f"(function, [tensor names]) pair, or 'package.module:name'"
                + (f", or a built-in monitor ({', '.join(MONITORS)})"
                   if setting == "TRAINING_METRICS" else "")
                + f". Graph tensors: {', '.join(GRAPH_TENSORS)}.")
    if isinstance(spec, str):
        if setting == "TRAINING_METRICS" and spec in MONITORS:
            return MONITORS[spec]
        if ":" not in spec:
            raise ConfigError(f"{where} is {spec!r}, not a known name. {accepted}")
        try:
            spec = import_object(spec)
        except ValueError as err:
            raise ConfigError(f"{where}: {err}") from None
    if isinstance(spec, (tuple, list)) and len(spec) == 2 and callable(spec[0]):
        function, inputs = spec[0], tuple(spec[1])
    elif callable(spec) and not isinstance(spec, type):
        function = spec
        try:
            parameters = inspect.signature(spec).parameters.values()
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: cannot read the parameters of {spec!r}. "
                              f"{accepted}") from None
        inputs = tuple(p.name for p in parameters if p.default is inspect.Parameter.empty
                       and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))
    else:
        raise ConfigError(f"{where} is {spec!r} of type {type(spec).__name__}. {accepted}")
    unknown = [t for t in inputs if t not in GRAPH_TENSORS and t not in ASSOCIATION_TENSORS]
    if unknown or not inputs:
        raise ConfigError(f"{where} takes {', '.join(unknown) or 'no graph tensor'}. "
                          f"{accepted}")
    return function, inputs


def _monitor_entries(config: Config) -> dict:
    metrics = config.TRAINING_METRICS
    return dict(metrics) if isinstance(metrics, dict) else {name: name for name in metrics}


def training_losses(config: Config) -> dict[str, tuple[Callable, tuple]]:
    """name -> (function, graph tensor names): the five losses as chosen (and
    mrcnn_assoc_loss with the association head), then EXTRA_LOSSES."""
    chosen = {head: (head_loss(head, config.LOSS_FUNCTIONS.get(head, "classic")),
                     HEAD_INPUTS[head]) for head in loss_names(config)}
    extras = {name: _graph_function("EXTRA_LOSSES", name, spec)
              for name, spec in config.EXTRA_LOSSES.items()}
    return {**chosen, **extras}


def training_monitors(config: Config) -> dict[str, tuple[Callable, tuple]]:
    """name -> (function, graph tensor names) of TRAINING_METRICS."""
    return {name: _graph_function("TRAINING_METRICS", name, spec)
            for name, spec in _monitor_entries(config).items()}


# ---------------------------------------------------------------- checking

def probe_tensors(config: Config, seed: int = 0) -> dict[str, tf.Tensor]:
    """Small tensors shaped and valued as GRAPH_TENSORS documents, for trying a function.

    Two images, 16 anchors, 4 RPN targets, 4 ROIs (two positive), NUM_CLASSES
    classes, MASK_SHAPE masks, and two positive-ROI rows per image whose
    instance ids (1, 2 and 1, 3) make one pair across the images.
    """
    rng = np.random.default_rng(seed)
    dims = {"B": 2, "A": 16, "R": 4, "T": 4, "NC": int(config.NUM_CLASSES),
            "h": int(config.MASK_SHAPE[0]), "w": int(config.MASK_SHAPE[1]), "P": 2,
            "D": int(config.ASSOCIATION_EMBEDDING_SIZE or 8)}
    tensors = {}
    for name, spec in _TENSOR_SPECS.items():
        shape = tuple(dims.get(d, d) for d in spec.shape)
        if spec.kind == "match":
            value = np.resize(np.array([1, -1, 0, -1], np.int32), shape)
        elif spec.kind == "class_ids":
            value = np.zeros(shape, np.int32)
            value[:, :2] = rng.integers(1, dims["NC"], size=(shape[0], 2))
        elif spec.kind == "boxes":
            corner = rng.uniform(0, 0.5, size=shape[:-1] + (2,))
            value = np.concatenate([corner, corner + 0.4], axis=-1).astype(np.float32)
        elif spec.kind == "binary":
            value = (rng.uniform(size=shape) > 0.5).astype(np.float32)
        elif spec.kind == "probs":
            value = rng.uniform(0.05, 0.95, size=shape).astype(np.float32)
        elif spec.kind == "ones":
            value = np.ones(shape, np.float32)
        elif spec.kind == "instance_ids":
            value = np.array([[1, 2], [1, 3]], np.int32)
        elif spec.kind == "unit":
            value = rng.normal(size=shape)
            value = (value / np.linalg.norm(value, axis=-1, keepdims=True)).astype(np.float32)
        else:
            value = rng.normal(size=shape).astype(np.float32)
        tensors[name] = tf.constant(value)
    return tensors


def _check_scalar(where: str, function: Callable, inputs: tuple, tensors: dict) -> None:
    try:
        value = function(*(tensors[name] for name in inputs))
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
    except Exception as err:  # a user's function: report whatever it raised, with the loss
        raise ConfigError(f"{where}: calling it on tensors shaped as documented "
                          f"({', '.join(f'{n} {_TENSOR_SPECS[n].shape}' for n in inputs)}) "
                          f"raised {type(err).__name__}: {err}") from err
    shape = tuple(getattr(value, "shape", ()))
    if int(np.prod(shape)) != 1:
        raise ConfigError(f"{where} returns a value of shape {list(shape)}; a loss or "
                          "monitor must return a scalar (reduce it, e.g. tf.reduce_mean)")


def check_settings(config: Config) -> None:
    """Checks LOSS_FUNCTIONS, EXTRA_LOSSES and TRAINING_METRICS of ``config``.

    Every name must be known or new as appropriate, every choice of a
    supported type, and each function is called once on
    :func:`probe_tensors` and must return a scalar.

    Raises:
        ConfigError: naming the setting and the loss or monitor, and what is accepted.
    """
    model_losses = loss_names(config)
    unknown = sorted(set(config.LOSS_FUNCTIONS) - set(model_losses))
    if unknown:
        head_off = (" (mrcnn_assoc_loss needs the association head: set "
                    "ASSOCIATION_EMBEDDING_SIZE)" if ASSOCIATION_LOSS in unknown else "")
        raise ConfigError(f"LOSS_FUNCTIONS names {unknown}, not a loss of the model{head_off}: "
                          f"use {', '.join(model_losses)} (new terms go in EXTRA_LOSSES)")
    names = list(config.EXTRA_LOSSES) + list(_monitor_entries(config))
    for name in names:
        if not isinstance(name, str) or not name.isidentifier() or name == "loss" \
                or name.startswith("val_") or name in HEAD_INPUTS or name in GRAPH_TENSORS \
                or name in ASSOCIATION_TENSORS \
                or names.count(name) > 1:
            raise ConfigError(
                f"{name!r} cannot name an extra loss or monitor: use a new identifier, not "
                f"'loss', 'val_*', a graph tensor or one of {', '.join(LOSS_NAMES)}, and each "
                "name once across EXTRA_LOSSES and TRAINING_METRICS")
    tensors = probe_tensors(config)
    for head, choice in config.LOSS_FUNCTIONS.items():
        _check_scalar(f"LOSS_FUNCTIONS[{head!r}]", head_loss(head, choice), HEAD_INPUTS[head],
                      tensors)
    if not config.ASSOCIATION_EMBEDDING_SIZE:
        for setting, functions in (("EXTRA_LOSSES", training_losses(config)),
                                   ("TRAINING_METRICS", training_monitors(config))):
            for name, (_, inputs) in functions.items():
                needed = [t for t in inputs if t in ASSOCIATION_TENSORS]
                if needed:
                    raise ConfigError(f"{setting}[{name!r}] takes {', '.join(needed)}, which "
                                      "only the association head makes: set "
                                      "ASSOCIATION_EMBEDDING_SIZE")
    for name, spec in config.EXTRA_LOSSES.items():
        _check_scalar(f"EXTRA_LOSSES[{name!r}]", *_graph_function("EXTRA_LOSSES", name, spec),
                      tensors)
    for name, (function, inputs) in training_monitors(config).items():
        _check_scalar(f"TRAINING_METRICS[{name!r}]", function, inputs, tensors)
