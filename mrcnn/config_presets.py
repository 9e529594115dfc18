"""Config presets by name, config classes loaded from a spec, and configs derived at run time.

The `mrcnn` command (and the samples) pick a :class:`~mrcnn.config.Config`
subclass by name and adjust it to the job: the number of classes of a
COCO-format dataset, one image per batch for inference, settings given on the
command line. Adjusting means subclassing on the fly, so that the user's class
stays untouched and the result is still an ordinary ``Config``::

    config_class = load_config_class("coco")              # or "pkg.mod:MyConfig",
                                                           # or "my_config.py:MyConfig"
    config = derive_config(config_class, NUM_CLASSES=4)   # a Config instance
    config = inference_config(config_class)               # GPU_COUNT 1, IMAGES_PER_GPU 1

A config may carry ``CLASS_NAMES`` (background first); :func:`class_names`
uses it to label detections. This module imports no TensorFlow.
"""
from __future__ import annotations

import ast
import contextlib
import importlib
import importlib.util
import os
import sys
from typing import Any, Sequence

from mrcnn.config import Config

# The 80 COCO categories in category-id order, after the background: the class
# ids of mask_rcnn_coco.h5 index this list.
COCO_CLASS_NAMES = (
    "BG", "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck",
    "boat", "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird",
    "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack",
    "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball",
    "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket",
    "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair",
    "couch", "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse",
    "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier",
    "toothbrush")

class CocoConfig(Config):
    """The classic COCO training configuration (matches mask_rcnn_coco.h5)."""
    NAME = "coco"
    IMAGES_PER_GPU = 2
    NUM_CLASSES = 1 + 80
    CLASS_NAMES = COCO_CLASS_NAMES


class DatasetConfig(Config):
    """Base of the configurations made for a COCO-format dataset when no --config is given;
    NAME and NUM_CLASSES come from the dataset."""
    NAME = "dataset"


# Short names accepted wherever a config is named.
CONFIG_REGISTRY = {
    "shapes": "mrcnn.datasets.shapes:ShapesConfig",
    "coco": "mrcnn.config_presets:CocoConfig",
}
CONFIG_FORMS = (f"{', '.join(CONFIG_REGISTRY)}, package.module:ClassName or "
                "path/to/file.py:ClassName")


def import_object(spec: str) -> Any:
    """The object named by ``"package.module:name"`` or ``"path/to/file.py:name"``.

    A module is looked up in the installed packages, then in the current
    folder, so that a local module imports whichever way the command was
    started. sys.path is left as it was.

    Raises:
        ValueError: malformed spec, a module that cannot be imported, or a
            missing name; the message names what was looked for.
    """
    location, sep, name = spec.rpartition(":")
    if not sep or not location or not name:
        raise ValueError(f"{spec!r} is not of the form package.module:Name or "
                         "path/to/file.py:Name")
    if location.endswith(".py"):
        module = _module_from_file(location)
    else:
        try:
            with _importable_from(os.getcwd(), last=True):
                module = importlib.import_module(location)
        except ImportError as err:
            raise ValueError(f"cannot import module {location!r} (from {spec!r}): {err}") \
                from err
    try:
        return getattr(module, name)
    except AttributeError:
        raise ValueError(f"{location} has no {name!r}") from None


def _module_from_file(path: str):
    if not os.path.isfile(path):
        raise ValueError(f"no Python file at {path!r}")
    module_name = "_mrcnn_user_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    # The file's own folder comes first, so that it can import its sibling modules.
    with _importable_from(os.path.dirname(os.path.abspath(path))):
        spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def _importable_from(folder: str, last: bool = False):
    """Makes `folder` importable while a user's module loads (first, or `last`), then
    restores sys.path: the package never leaves its own search path changed."""
    added = folder not in sys.path
    if added:
        sys.path.insert(len(sys.path) if last else 0, folder)
    try:
        yield
    finally:
        if added and folder in sys.path:
            sys.path.remove(folder)


def load_config_class(name: str) -> type[Config]:
    """The Config subclass that `name` designates.

    Args:
        name: a registry name ("shapes", "coco"), ``package.module:ClassName``
            or ``path/to/file.py:ClassName``.

    Raises:
        ValueError: unknown name, import failure, or not a Config subclass.
    """
    spec = CONFIG_REGISTRY.get(name, name)
    if ":" not in spec:
        raise ValueError(f"unknown config {name!r}: use one of {CONFIG_FORMS}")
    config_class = import_object(spec)
    if not (isinstance(config_class, type) and issubclass(config_class, Config)):
        raise ValueError(f"config {name!r} is {config_class!r}, not a subclass of "
                         "mrcnn.config.Config")
    return config_class


def derive_config(base: type[Config], **settings: Any) -> Config:
    """An instance of a subclass of `base` with `settings` as class attributes.

    Args:
        base: the Config subclass to start from.
        **settings: UPPER_CASE settings to override; derived ones (BATCH_SIZE,
            IMAGE_SHAPE, ...) are computed from them.

    Raises:
        ValueError: a setting the Config does not have (a typo would otherwise
            be ignored silently).
        ConfigError: settings that cannot work together.
    """
    # CLASS_NAMES is optional: Config itself does not define it.
    unknown = sorted(k for k in settings if not hasattr(base, k) and k != "CLASS_NAMES")
    if unknown:
        raise ValueError(f"{base.__name__} has no setting {', '.join(unknown)}")
    return type(base.__name__, (base,), dict(settings))()


def inference_config(base: type[Config], **settings: Any) -> Config:
    """`base` set up for inference: one device, one image per batch (so no runs of
    SEQUENCE_FRAMES frames), plus `settings`."""
    return derive_config(base, **{"GPU_COUNT": 1, "IMAGES_PER_GPU": 1, "SEQUENCE_FRAMES": 1,
                                  **settings})


def parse_settings(assignments: Sequence[str]) -> dict:
    """Turns ``["NAME=VALUE", ...]`` into settings for :func:`derive_config`.

    Values are Python literals (``512``, ``0.5``, ``(8, 16)``, ``True``); anything
    else is taken as a string (``BACKBONE=resnet50``).

    Raises:
        ValueError: an item without "=" or with a name that is not UPPER_CASE.
    """
    settings = {}
    for item in assignments:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name.isupper():
            raise ValueError(f"--set {item!r}: use NAME=VALUE with an UPPER_CASE config "
                             "setting, e.g. --set IMAGE_MAX_DIM=512")
        try:
            settings[name] = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            settings[name] = text.strip()
    return settings


def class_names(config: Config, names: str | Sequence[str] | None = None) -> list[str]:
    """Display names of the config's classes, background first.

    Args:
        config: the model's config (NUM_CLASSES, optionally CLASS_NAMES).
        names: "a,b,c" or a list; with or without the background name. None:
            the config's CLASS_NAMES, else "class 1", "class 2", ...

    Raises:
        ValueError: a number of names that fits neither NUM_CLASSES nor
            NUM_CLASSES - 1.
    """
    if names is None:
        names = getattr(config, "CLASS_NAMES", None)
    if names is None:
        return ["BG"] + [f"class {i}" for i in range(1, config.NUM_CLASSES)]
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",")]
    names = list(names)
    if len(names) == config.NUM_CLASSES - 1:
        return ["BG"] + names
    if len(names) == config.NUM_CLASSES:
        return names
    raise ValueError(f"got {len(names)} class names but the config has NUM_CLASSES = "
                     f"{config.NUM_CLASSES}: give {config.NUM_CLASSES - 1} names (without "
                     "the background)")
