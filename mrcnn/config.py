"""Configuration of a Mask R-CNN model: the classic `Config` class.

Subclass :class:`Config` and override its UPPER_CASE class attributes::

    class ShapesConfig(Config):
        NAME = "shapes"
        NUM_CLASSES = 1 + 3
        IMAGE_MIN_DIM = IMAGE_MAX_DIM = 128

Making an instance computes the derived settings (``BATCH_SIZE``,
``IMAGE_SHAPE``, ``IMAGE_META_SIZE``) and checks that the settings can work
together; a setting that cannot raises :class:`ConfigError` naming the setting
and the fix. This module imports no TensorFlow.
"""
from __future__ import annotations

import inspect

import numpy as np

from mrcnn.image_meta import meta_size

RESIZE_MODES = ("none", "square", "pad64", "crop")
LOSS_NAMES = ("rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss",
              "mrcnn_bbox_loss", "mrcnn_mask_loss")
# The association head's loss (only with ASSOCIATION_EMBEDDING_SIZE).
ASSOCIATION_LOSS = "mrcnn_assoc_loss"
OPTIMIZERS = ("sgd", "adam")
BUILTIN_BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101")
# Keras dtype policies of MIXED_PRECISION (None: float32, or the global policy you set).
MIXED_PRECISION_POLICIES = ("mixed_float16", "mixed_bfloat16")

# Every level of the feature pyramid halves the image: inputs must divide by 2**6.
IMAGE_DIVISOR = 64


def divisible_size(size: int) -> int:
    """The smallest image side >= `size` that the feature pyramid can halve 6 times
    (a multiple of IMAGE_DIVISOR); equal to `size` exactly when `size` fits."""
    return -(-int(size) // IMAGE_DIVISOR) * IMAGE_DIVISOR


class ConfigError(ValueError):
    """Settings that cannot work together."""


def loss_names(config: "Config") -> tuple:
    """The named losses of the model ``config`` builds: LOSS_NAMES, then
    ASSOCIATION_LOSS when ASSOCIATION_EMBEDDING_SIZE turns the head on."""
    return LOSS_NAMES + ((ASSOCIATION_LOSS,) if config.ASSOCIATION_EMBEDDING_SIZE else ())


class Config:
    """Base configuration, holding every classic setting with its classic default.

    Don't use it directly: subclass it, override what differs, and instantiate
    the subclass.
    """
    # Name of the configuration; used in log directory and checkpoint names.
    NAME = None

    # Devices to train on, and images per device. Batch = GPU_COUNT * IMAGES_PER_GPU.
    GPU_COUNT = 1
    IMAGES_PER_GPU = 2

    # Training steps per epoch (not tied to the dataset size) and validation
    # steps run at the end of every epoch.
    STEPS_PER_EPOCH = 1000
    VALIDATION_STEPS = 50
    # Steps between saves of the resume state (train_state.npz, see mrcnn.checkpoints)
    # within an epoch; None saves it at the end of every epoch only.
    TRAIN_STATE_STEPS = None

    # "resnet50", "resnet101" (the classic weight files), the lighter
    # "resnet18" / "resnet34", or a callable
    # `backbone(input_image, stage5=True, train_bn=...) -> [C1, C2, C3, C4, C5]`.
    BACKBONE = "resnet101"
    # Required with a callable BACKBONE: `f(image_shape) -> [[h, w] per stride]`.
    COMPUTE_BACKBONE_SHAPE = None
    # Strides of the pyramid levels P2..P6.
    BACKBONE_STRIDES = [4, 8, 16, 32, 64]

    # Width of the two fully connected layers of the class/box head.
    FPN_CLASSIF_FC_LAYERS_SIZE = 1024
    # Channels of the feature pyramid.
    TOP_DOWN_PYRAMID_SIZE = 256

    # Classes, background included.
    NUM_CLASSES = 1

    # Anchor side in pixels (one per pyramid level), width/height ratios, and
    # the anchor step in feature-map cells.
    RPN_ANCHOR_SCALES = (32, 64, 128, 256, 512)
    RPN_ANCHOR_RATIOS = [0.5, 1, 2]
    RPN_ANCHOR_STRIDE = 1

    # IoU threshold of the proposal NMS.
    RPN_NMS_THRESHOLD = 0.7
    # Anchors per image sampled for training the RPN (at most half positive).
    RPN_TRAIN_ANCHORS_PER_IMAGE = 256
    # Best-scoring anchors kept before the proposal NMS.
    PRE_NMS_LIMIT = 6000
    # Proposals kept after NMS, in training and in inference.
    POST_NMS_ROIS_TRAINING = 2000
    POST_NMS_ROIS_INFERENCE = 1000

    # Store ground-truth masks cropped to their box and resized (saves memory).
    USE_MINI_MASK = True
    MINI_MASK_SHAPE = (56, 56)

    # Image resizing: "none", "square", "pad64" or "crop" (see images.resize_image).
    IMAGE_RESIZE_MODE = "square"
    IMAGE_MIN_DIM = 800
    IMAGE_MAX_DIM = 1024
    # Minimum up-scaling factor; 0 for none.
    IMAGE_MIN_SCALE = 0
    # Input channels (3 for RGB).
    IMAGE_CHANNEL_COUNT = 3

    # Mean pixel (RGB) subtracted from every image.
    MEAN_PIXEL = np.array([123.7, 116.8, 103.9])

    # ROIs per image fed to the heads in training, and the fraction positive.
    TRAIN_ROIS_PER_IMAGE = 200
    ROI_POSITIVE_RATIO = 0.33

    # ROIAlign output sizes of the box head and of the mask head.
    POOL_SIZE = 7
    MASK_POOL_SIZE = 14
    # Output size of the mask head (fixed by the network: 2 * MASK_POOL_SIZE).
    MASK_SHAPE = [28, 28]
    # Channels of the mask head's convolutions (not a classic setting: the
    # classic weight files have 256; fewer make a much cheaper head).
    MASK_HEAD_CHANNELS = 256

    # Ground-truth instances kept per image.
    MAX_GT_INSTANCES = 100

    # Standard deviations that divide the box-delta targets of the RPN and the head.
    RPN_BBOX_STD_DEV = np.array([0.1, 0.1, 0.2, 0.2])
    BBOX_STD_DEV = np.array([0.1, 0.1, 0.2, 0.2])

    # Final detections per image, their minimum score (0 keeps all) and the
    # IoU threshold of the per-class NMS.
    DETECTION_MAX_INSTANCES = 100
    DETECTION_MIN_CONFIDENCE = 0.7
    DETECTION_NMS_THRESHOLD = 0.3

    # SGD learning rate and momentum, and the L2 weight decay.
    LEARNING_RATE = 0.001
    LEARNING_MOMENTUM = 0.9
    WEIGHT_DECAY = 0.0001
    # "sgd" (classic: SGD with LEARNING_MOMENTUM) or "adam" (not a classic
    # setting: converges faster from random weights; LEARNING_MOMENTUM unused).
    OPTIMIZER = "sgd"

    # Weight of each loss in the total.
    LOSS_WEIGHTS = {
        "rpn_class_loss": 1.,
        "rpn_bbox_loss": 1.,
        "mrcnn_class_loss": 1.,
        "mrcnn_bbox_loss": 1.,
        "mrcnn_mask_loss": 1.
    }

    # The loss of each of the five heads, by loss name; unlisted ones are classic.
    # A name ("focal", "focal:gamma=2,alpha=0.25", "class_weighted:weights=[...]",
    # "smooth_l1", "dice", "bce_dice"), a mrcnn.losses factory's result, a
    # keras.losses.Loss, or a function of the head's tensors (see mrcnn/losses.py).
    LOSS_FUNCTIONS = {}
    # Extra loss terms, name -> function of graph tensors (mrcnn.losses.GRAPH_TENSORS);
    # weighted by LOSS_WEIGHTS[name] (default 1).
    EXTRA_LOSSES = {}
    # Monitors shown next to the losses but not added to them: name -> function of
    # graph tensors, or built-ins by name ("roi_accuracy", "mask_iou", "positive_fraction").
    TRAINING_METRICS = {}

    # Association head (tracking instances across frames, see mrcnn/graph/association.py):
    # None = off; D > 0 adds a head giving every detection an L2-normalized embedding of
    # size D, trained by LOSS_FUNCTIONS["mrcnn_assoc_loss"] (default "triplet_batch_hard",
    # or "triplet_semihard") on the datasets' load_instance_ids.
    ASSOCIATION_EMBEDDING_SIZE = None
    # True (Track R-CNN): the association loss also trains the backbone and pyramid the
    # detector shares. False: its gradient stops at the head's input, so it trains the
    # head's own layers only, on the features as the detection losses make them (from
    # random weights on a short budget the sample's detector missed 227 objects this way,
    # 527 trained jointly; see samples/tracking).
    ASSOCIATION_TRAINS_FEATURES = True
    # True: the head also sees each ROI's crop of the input image (POOL_SIZE², next to its
    # ROI-aligned features), as appearance descriptors for re-identification are made
    # from image crops (DeepSORT): colour, the steadiest cue of an object's identity, is
    # what detection features are trained to ignore. It widens mrcnn_assoc_conv1 by
    # IMAGE_CHANNEL_COUNT inputs, so head weights trained with one value do not load
    # into a model with the other.
    ASSOCIATION_SEES_IMAGE = False
    # Consecutive frames of one sequence (image_info "video" / "frame") per run in a
    # training batch; 1 = independent images. BATCH_SIZE must be a multiple of it.
    SEQUENCE_FRAMES = 1

    # True: the heads train on the RPN's proposals. False: on ROIs given as input.
    USE_RPN_ROIS = True

    # BatchNorm mode: False freezes it (inference statistics, the default for
    # small batches), True always uses batch statistics, None follows training.
    TRAIN_BN = False
    # With TRAIN_BN under a multi-replica strategy: True computes the batch statistics
    # over the global batch (synchronized across replicas) rather than per replica.
    SYNC_BATCH_NORM = False

    # Gradients are clipped to this global norm.
    GRADIENT_CLIP_NORM = 5.0

    # Compute precision: None (float32), "mixed_float16" (GPUs; training scales the
    # loss) or "mixed_bfloat16" (CPUs with AVX512_BF16/AMX, TPUs, recent GPUs).
    # Convolutions and dense layers compute in low precision; proposals, NMS, ROI
    # boxes, detections, softmax outputs and losses stay float32, and so do the
    # weights, so checkpoints load under any policy (see mrcnn/graph/precision.py).
    MIXED_PRECISION = None

    def __init__(self):
        # A function stored as a class attribute would bind to the instance;
        # keep the plain callable.
        for name in ("BACKBONE", "COMPUTE_BACKBONE_SHAPE"):
            value = inspect.getattr_static(self, name)
            setattr(self, name, value.__func__ if isinstance(value, staticmethod) else value)
        self.BATCH_SIZE = self.IMAGES_PER_GPU * self.GPU_COUNT
        if self.IMAGE_RESIZE_MODE == "crop":
            self.IMAGE_SHAPE = np.array([self.IMAGE_MIN_DIM, self.IMAGE_MIN_DIM,
                                         self.IMAGE_CHANNEL_COUNT])
        else:
            self.IMAGE_SHAPE = np.array([self.IMAGE_MAX_DIM, self.IMAGE_MAX_DIM,
                                         self.IMAGE_CHANNEL_COUNT])
        self.IMAGE_META_SIZE = meta_size(self.NUM_CLASSES)
        self.validate()

    def validate(self) -> None:
        """Raises ConfigError for the first setting that cannot work."""
        def fail(setting, problem, fix):
            raise ConfigError(f"{type(self).__name__}.{setting} {problem}. {fix}")

        if not isinstance(self.NUM_CLASSES, (int, np.integer)) or self.NUM_CLASSES < 2:
            fail("NUM_CLASSES", f"is {self.NUM_CLASSES!r}, but it counts the background "
                 "class plus at least one object class",
                 "Set NUM_CLASSES = 1 + <number of your classes> in your Config subclass.")
        for name in ("GPU_COUNT", "IMAGES_PER_GPU", "STEPS_PER_EPOCH",
                     "DETECTION_MAX_INSTANCES", "MAX_GT_INSTANCES",
                     "TRAIN_ROIS_PER_IMAGE", "RPN_TRAIN_ANCHORS_PER_IMAGE",
                     "POST_NMS_ROIS_TRAINING", "POST_NMS_ROIS_INFERENCE", "PRE_NMS_LIMIT"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                fail(name, f"is {value!r}", "Use a positive integer.")
        if self.IMAGE_RESIZE_MODE not in RESIZE_MODES:
            fail("IMAGE_RESIZE_MODE", f"is {self.IMAGE_RESIZE_MODE!r}, an unknown mode",
                 f"Use one of {', '.join(map(repr, RESIZE_MODES))}.")
        if (self.IMAGE_RESIZE_MODE == "square"
                and divisible_size(self.IMAGE_MAX_DIM) != self.IMAGE_MAX_DIM):
            fail("IMAGE_MAX_DIM", f"is {self.IMAGE_MAX_DIM}, not a multiple of "
                 f"{IMAGE_DIVISOR}, so square images cannot be halved 6 times",
                 f"Use a multiple of {IMAGE_DIVISOR}, e.g. "
                 f"{divisible_size(self.IMAGE_MAX_DIM)}.")
        if (self.IMAGE_RESIZE_MODE in ("crop", "pad64")
                and divisible_size(self.IMAGE_MIN_DIM) != self.IMAGE_MIN_DIM):
            fail("IMAGE_MIN_DIM", f"is {self.IMAGE_MIN_DIM}, not a multiple of "
                 f"{IMAGE_DIVISOR}, which mode {self.IMAGE_RESIZE_MODE!r} requires",
                 f"Use a multiple of {IMAGE_DIVISOR}, e.g. "
                 f"{divisible_size(self.IMAGE_MIN_DIM)}.")
        if self.IMAGE_RESIZE_MODE == "square" and self.IMAGE_MIN_DIM > self.IMAGE_MAX_DIM:
            fail("IMAGE_MIN_DIM", f"({self.IMAGE_MIN_DIM}) is larger than IMAGE_MAX_DIM "
                 f"({self.IMAGE_MAX_DIM})", "Make IMAGE_MIN_DIM <= IMAGE_MAX_DIM.")
        if len(self.MEAN_PIXEL) != self.IMAGE_CHANNEL_COUNT:
            fail("MEAN_PIXEL", f"has {len(self.MEAN_PIXEL)} values but "
                 f"IMAGE_CHANNEL_COUNT is {self.IMAGE_CHANNEL_COUNT}",
                 "Give one mean per input channel.")
        if callable(self.BACKBONE):
            if not callable(self.COMPUTE_BACKBONE_SHAPE):
                fail("COMPUTE_BACKBONE_SHAPE", "is not set, but BACKBONE is a callable",
                     "Give a function image_shape -> [[height, width] per stride].")
        elif self.BACKBONE not in BUILTIN_BACKBONES:
            fail("BACKBONE", f"is {self.BACKBONE!r}",
                 f"Use one of {', '.join(map(repr, BUILTIN_BACKBONES))} or a callable.")
        if len(self.RPN_ANCHOR_SCALES) != len(self.BACKBONE_STRIDES):
            fail("RPN_ANCHOR_SCALES", f"has {len(self.RPN_ANCHOR_SCALES)} scales for "
                 f"{len(self.BACKBONE_STRIDES)} BACKBONE_STRIDES",
                 "Give one anchor scale per pyramid level (P2..P6).")
        if not 0 < self.ROI_POSITIVE_RATIO <= 1:
            fail("ROI_POSITIVE_RATIO", f"is {self.ROI_POSITIVE_RATIO}",
                 "Use a fraction in (0, 1].")
        if list(self.MASK_SHAPE) != [2 * self.MASK_POOL_SIZE] * 2:
            fail("MASK_SHAPE", f"is {list(self.MASK_SHAPE)}, but the mask head upsamples "
                 f"MASK_POOL_SIZE={self.MASK_POOL_SIZE} by 2",
                 f"Set MASK_SHAPE = [{2 * self.MASK_POOL_SIZE}, {2 * self.MASK_POOL_SIZE}] "
                 "or change MASK_POOL_SIZE.")
        for name in ("LOSS_FUNCTIONS", "EXTRA_LOSSES", "TRAINING_METRICS"):
            value = getattr(self, name)
            if not isinstance(value, dict) and not (
                    name == "TRAINING_METRICS" and isinstance(value, (list, tuple))):
                fail(name, f"is {value!r}", "Use a dict from names to losses or functions "
                     "(TRAINING_METRICS also takes a list of built-in monitor names).")
        size = self.ASSOCIATION_EMBEDDING_SIZE
        if size is not None and (not isinstance(size, (int, np.integer))
                                 or isinstance(size, bool) or size < 1):
            fail("ASSOCIATION_EMBEDDING_SIZE", f"is {size!r}",
                 "Use None (no association head) or a positive integer, e.g. 128.")
        for name in ("ASSOCIATION_TRAINS_FEATURES", "ASSOCIATION_SEES_IMAGE"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                fail(name, f"is {getattr(self, name)!r}", "Use True or False.")
        frames = self.SEQUENCE_FRAMES
        if not isinstance(frames, (int, np.integer)) or isinstance(frames, bool) or frames < 1:
            fail("SEQUENCE_FRAMES", f"is {frames!r}", "Use a positive integer (1: no sequences).")
        if self.BATCH_SIZE % frames:
            fail("SEQUENCE_FRAMES", f"({frames}) does not divide BATCH_SIZE ({self.BATCH_SIZE} "
                 f"= IMAGES_PER_GPU x GPU_COUNT), so a batch cannot hold whole runs of frames",
                 "Make IMAGES_PER_GPU x GPU_COUNT a multiple of SEQUENCE_FRAMES.")
        unknown = set(self.LOSS_WEIGHTS) - set(loss_names(self)) - set(self.EXTRA_LOSSES)
        if unknown:
            fail("LOSS_WEIGHTS", f"names unknown losses {sorted(unknown)}",
                 f"Use the names {', '.join(loss_names(self))} or those of EXTRA_LOSSES"
                 + (" (mrcnn_assoc_loss needs ASSOCIATION_EMBEDDING_SIZE)"
                    if ASSOCIATION_LOSS in unknown else "") + ".")
        if self.LOSS_FUNCTIONS or self.EXTRA_LOSSES or self.TRAINING_METRICS:
            # Checking a loss means calling it: only then is TensorFlow imported.
            from mrcnn.losses import check_settings
            try:
                check_settings(self)
            except ConfigError as err:
                raise ConfigError(f"{type(self).__name__}.{err}") from err.__cause__
        if self.OPTIMIZER not in OPTIMIZERS:
            fail("OPTIMIZER", f"is {self.OPTIMIZER!r}",
                 f"Use one of {', '.join(map(repr, OPTIMIZERS))}.")
        if self.MIXED_PRECISION not in (None,) + MIXED_PRECISION_POLICIES:
            fail("MIXED_PRECISION", f"is {self.MIXED_PRECISION!r}",
                 f"Use None (float32) or one of "
                 f"{', '.join(map(repr, MIXED_PRECISION_POLICIES))}.")
        if self.TRAIN_BN not in (True, False, None):
            fail("TRAIN_BN", f"is {self.TRAIN_BN!r}", "Use False, True or None.")
        if self.SYNC_BATCH_NORM not in (True, False):
            fail("SYNC_BATCH_NORM", f"is {self.SYNC_BATCH_NORM!r}", "Use False or True.")

    def to_dict(self) -> dict:
        """Every UPPER_CASE setting, derived ones included, by name."""
        return {name: getattr(self, name) for name in dir(self) if name.isupper()}

    def display(self) -> None:
        """Prints every setting, one per line."""
        print("\nConfigurations:")
        for name, value in sorted(self.to_dict().items()):
            print(f"{name:30} {value}")
        print("\n")
