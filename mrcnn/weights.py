"""Weight files in the classic Keras 2 HDF5 layout: reading and writing.

The layout (see tests/data/keras2_h5_weight_layout.json): the root (or a
``model_weights`` group) has the attribute ``layer_names``; each layer has a
group whose attribute ``weight_names`` lists its weights in order, stored as
datasets at ``<layer>/<weight name>``. The nested RPN is one group,
``rpn_model``, holding ``rpn_conv_shared/kernel:0`` and so on; TimeDistributed
layers store their inner layer's weights under the wrapper's name.

Loading matches top-level layers by name and the weights of a layer by
order, checks every shape before assigning anything, and so either loads
everything asked for or leaves the model unchanged.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import h5py
import keras
import numpy as np

from mrcnn.graph.association import ASSOCIATION_LAYERS
from mrcnn.graph.backbone import BASIC_BLOCK_NETWORKS, STAGE_BLOCKS

# Class-dependent layers that fine-tuning to another class count must skip.
HEAD_LAYERS = ("mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_bbox", "mrcnn_mask")
# The `exclude` policy that skips HEAD_LAYERS exactly when the file has another class count.
HEADS_IF_MISMATCH = "heads-if-mismatch"


class WeightFileError(ValueError):
    """A weight file that does not fit the model."""


@dataclass
class LoadReport:
    """What ``load_weights`` did: layer names loaded, and those left alone."""
    loaded: list = field(default_factory=list)
    # Weighted layers of the file that the model lacks (or that were excluded).
    unused_in_file: list = field(default_factory=list)
    # Weighted layers of the model the file did not set.
    not_in_file: list = field(default_factory=list)
    # Layers of the model skipped on request (they keep their weights).
    excluded: list = field(default_factory=list)


def _text(value) -> str:
    # h5py returns bytes for files written by Keras 2, str for newer ones.
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def weighted_layers(model: keras.Model) -> dict:
    """Top-level layers of ``model`` that hold weights, by name, in model order."""
    return {layer.name: layer for layer in model.layers if layer.weights}


def _classic_weight_names(layer) -> list[str]:
    """The names the classic files give to ``layer.weights``, in order."""
    if isinstance(layer, keras.Model):
        return [f"{sub.name}/{w.name}:0" for sub in layer.layers for w in sub.weights]
    return [f"{layer.name}/{w.name}:0" for w in layer.weights]


def _open_h5(filepath: str) -> h5py.File:
    """Opens an HDF5 file for reading; a file that is not one raises WeightFileError."""
    try:
        return h5py.File(filepath, "r")
    except OSError as err:
        raise WeightFileError(
            f"{filepath} is not a readable HDF5 weight file (random bytes, truncated, or "
            f"another format): {err}. Download or copy the .h5 file again.") from err


def _open_weights_group(handle: h5py.File, filepath: str) -> h5py.Group:
    if "layer_names" not in handle.attrs and "model_weights" in handle:
        handle = handle["model_weights"]
    if "layer_names" not in handle.attrs:
        raise WeightFileError(
            f"{filepath} is not a Keras HDF5 weight file in the classic layout (it has no "
            "'layer_names' attribute). mrcnn reads the classic .h5 files (e.g. "
            "mask_rcnn_coco.h5) and the checkpoints it writes itself.")
    return handle


def load_weights(model: keras.Model, filepath: str, by_name: bool = False,
                 exclude=None) -> LoadReport:
    """Loads a classic-layout HDF5 weight file into ``model``.

    Args:
        model: the Keras model to fill.
        filepath: path of the .h5 file.
        by_name: False: the file must hold exactly the model's weighted layers.
            True: load the layers whose names both have; ignore the rest.
        exclude: layer names to leave untouched (implies by_name).

    Returns:
        A LoadReport.

    Raises:
        FileNotFoundError: no file at ``filepath``.
        WeightFileError: the file is not in the classic layout, shares no
            layer with the model, or (by_name=False) differs in its layers,
            or a layer's weights differ in count or shape. Nothing is loaded.
    """
    if not os.path.isfile(filepath):
        raise FileNotFoundError(
            f"No weight file at {filepath!r}. See weights/README.md for where to get "
            "mask_rcnn_coco.h5 and the ImageNet weights and where to put them.")
    exclude = set(exclude or ())
    by_name = by_name or bool(exclude)
    model_layers = weighted_layers(model)
    with _open_h5(filepath) as handle:
        group = _open_weights_group(handle, filepath)
        file_layers = {}
        for name in map(_text, group.attrs["layer_names"]):
            weight_names = [_text(w) for w in group[name].attrs.get("weight_names", [])]
            if weight_names:
                file_layers[name] = weight_names
        report = LoadReport(
            loaded=[n for n in model_layers if n in file_layers and n not in exclude],
            unused_in_file=[n for n in file_layers if n not in model_layers or n in exclude],
            not_in_file=[n for n in model_layers if n not in file_layers or n in exclude],
            excluded=[n for n in model_layers if n in exclude])
        if not by_name:
            _check_same_layers(filepath, report)
        if not report.loaded:
            raise WeightFileError(
                f"{filepath} shares no weighted layer name with the model (file layers "
                f"start with {list(file_layers)[:3]}); is it a weight file for another "
                "architecture?")
        assignments = _matched_weights(group, model_layers, file_layers, report.loaded,
                                       filepath)
        # Everything is read before anything is assigned: a truncated file fails here,
        # with the model untouched.
        try:
            values = [np.asarray(dataset) for _, dataset in assignments]
        except (OSError, KeyError, RuntimeError) as err:
            raise WeightFileError(f"{filepath} is damaged (truncated or corrupt): reading "
                                  f"its weights failed ({err}); nothing was loaded. "
                                  "Download or copy the file again.") from err
    for (variable, _), value in zip(assignments, values):
        variable.assign(value)
    return report


def num_classes_in_file(filepath: str) -> int | None:
    """Number of classes (background included) of a weight file's class head.

    Args:
        filepath: path of a classic-layout .h5 file.

    Returns:
        The width of ``mrcnn_class_logits``, e.g. 81 for mask_rcnn_coco.h5;
        None for a file without that layer (ImageNet backbone weights).

    Raises:
        FileNotFoundError: no file at ``filepath``.
        WeightFileError: the file is not in the classic layout.
    """
    if not os.path.isfile(filepath):
        raise FileNotFoundError(f"No weight file at {filepath!r}.")
    with _open_h5(filepath) as handle:
        group = _open_weights_group(handle, filepath)
        if "mrcnn_class_logits" not in group:
            return None
        layer = group["mrcnn_class_logits"]
        weight_names = [_text(w) for w in layer.attrs.get("weight_names", [])]
        # The kernel [fc, classes] or the bias [classes]: the last axis counts the classes.
        return int(layer[weight_names[0]].shape[-1]) if weight_names else None


@dataclass(frozen=True)
class WeightFileInfo:
    """What a weight file was trained as, read from its layers.

    Attributes:
        num_classes: classes of the class head, background included (81 for
            mask_rcnn_coco.h5); None for a file without one (ImageNet backbone weights).
        backbone: "resnet18", "resnet34", "resnet50" or "resnet101", from the blocks of
            its ResNet stages; None for a file with another backbone.
    """
    num_classes: int | None
    backbone: str | None


def weight_file_info(filepath: str) -> WeightFileInfo:
    """The class count and backbone of a classic-layout weight file, without a model.

    Args:
        filepath: path of a classic-layout .h5 file.

    Raises:
        FileNotFoundError: no file at ``filepath``.
        WeightFileError: the file is not in the classic layout.
    """
    num_classes = num_classes_in_file(filepath)
    with h5py.File(filepath, "r") as handle:
        group = _open_weights_group(handle, filepath)
        layer_names = [_text(name) for name in group.attrs["layer_names"]]
    return WeightFileInfo(num_classes, _backbone_of(layer_names))


def _backbone_of(layer_names) -> str | None:
    """The built-in ResNet whose blocks per stage (and block kind) the layer names show."""
    blocks = {stage: set() for stage in range(2, 6)}
    bottleneck = False
    for name in layer_names:
        match = re.fullmatch(r"res([2-5])([a-z])_branch2([abc])", name)
        if match:
            blocks[int(match.group(1))].add(match.group(2))
            bottleneck |= match.group(3) == "c"
    counts = tuple(len(blocks[stage]) for stage in range(2, 6))
    for backbone, stage_blocks in STAGE_BLOCKS.items():
        if stage_blocks == counts and bottleneck != (backbone in BASIC_BLOCK_NETWORKS):
            return backbone
    return None


def resolve_exclude(exclude, filepath: str, num_classes: int) -> tuple:
    """The layer names that ``exclude`` asks to skip when loading `filepath`.

    Args:
        exclude: None, layer names, or ``HEADS_IF_MISMATCH`` ("heads-if-mismatch"):
            HEAD_LAYERS when the file's class count is known and is not `num_classes`,
            else nothing.
        filepath: the weight file.
        num_classes: NUM_CLASSES of the model to load into.

    Raises:
        ValueError: any other string (a single layer name must be given as a list).
    """
    if isinstance(exclude, str):
        if exclude != HEADS_IF_MISMATCH:
            raise ValueError(f"exclude={exclude!r}: use {HEADS_IF_MISMATCH!r} or a list of "
                             f"layer names, e.g. exclude={list(HEAD_LAYERS)}")
        if not os.path.isfile(filepath):
            return ()  # load_weights reports the missing file, saying where to get one
        file_classes = num_classes_in_file(filepath)
        return HEAD_LAYERS if file_classes not in (None, num_classes) else ()
    return tuple(exclude or ())


def settings_to_fit(info: WeightFileInfo, config_class, settings: dict) -> dict:
    """The settings a config needs to fit a weight file, for detection with that file.

    Heads re-initialized for another class count, or a backbone that loads only in
    part, would make every detection meaningless: the file's NUM_CLASSES and BACKBONE
    win over the config's, but not over `settings` the user gave explicitly.

    Args:
        info: the file's :func:`weight_file_info`.
        config_class: the Config subclass to start from.
        settings: explicit settings, e.g. from ``--set``.

    Returns:
        {setting: the file's value} for each setting the file knows, `config_class`
        has another value of, and `settings` does not name.
    """
    fitted = {}
    for name, value in (("NUM_CLASSES", info.num_classes), ("BACKBONE", info.backbone)):
        current = getattr(config_class, name)
        if value is not None and not callable(current) and current != value \
                and name not in settings:
            fitted[name] = value
    return fitted


def _check_same_layers(filepath: str, report: LoadReport) -> None:
    if report.unused_in_file or report.not_in_file:
        raise WeightFileError(
            f"{filepath} does not hold the same layers as the model: the model lacks "
            f"{report.unused_in_file[:5]}{'...' if len(report.unused_in_file) > 5 else ''}, "
            f"the file lacks {report.not_in_file[:5]}"
            f"{'...' if len(report.not_in_file) > 5 else ''}. "
            "Use by_name=True to load the layers both have (e.g. another backbone or "
            "class count, with exclude=[...] for the heads).")


def _matched_weights(group, model_layers, file_layers, names, filepath):
    """(variable, dataset) pairs for ``names``; raises on any count or shape mismatch."""
    pairs, problems, mismatched = [], [], set()
    for name in names:
        variables = model_layers[name].weights
        weight_names = file_layers[name]
        if len(variables) != len(weight_names):
            problems.append(f"layer {name!r}: the file has {len(weight_names)} weights "
                            f"({weight_names}), the model {len(variables)}")
            mismatched.add(name)
            continue
        for variable, weight_name in zip(variables, weight_names):
            dataset = group[name][weight_name]
            if tuple(variable.shape) != dataset.shape:
                problems.append(f"layer {name!r}, weight {weight_name!r}: file shape "
                                f"{dataset.shape}, model shape {tuple(variable.shape)}")
                mismatched.add(name)
            pairs.append((variable, dataset))
    if problems:
        hints = (f"A different NUM_CLASSES? Load with exclude={list(HEAD_LAYERS)}. "
                 "A different BACKBONE? Check the config.")
        if ASSOCIATION_LAYERS[0] in mismatched:
            hints += (f"\n{ASSOCIATION_LAYERS[0]} differs: the file's association head was "
                      "trained with the other ASSOCIATION_SEES_IMAGE (the image crop adds "
                      "IMAGE_CHANNEL_COUNT inputs); set it as in training, or load with "
                      f"exclude={list(ASSOCIATION_LAYERS)} to start the head afresh.")
        raise WeightFileError(f"{filepath} does not fit the model; nothing was loaded:\n  "
                              + "\n  ".join(problems) + "\n" + hints)
    return pairs


def save_weights(model: keras.Model, filepath: str) -> None:
    """Writes ``model``'s weights in the classic layout (readable by load_weights
    and by classic Keras 2 code)."""
    directory = os.path.dirname(os.path.abspath(filepath))
    os.makedirs(directory, exist_ok=True)
    # Write next to the target, then rename: a crash never leaves half a file.
    partial = filepath + ".partial"
    with h5py.File(partial, "w") as handle:
        handle.attrs["layer_names"] = np.array([layer.name.encode("utf8")
                                                for layer in model.layers])
        handle.attrs["backend"] = b"tensorflow"
        handle.attrs["keras_version"] = keras.__version__.encode("utf8")
        for layer in model.layers:
            group = handle.create_group(layer.name)
            names = _classic_weight_names(layer)
            group.attrs["weight_names"] = np.array([n.encode("utf8") for n in names],
                                                   dtype="S")
            for name, variable in zip(names, layer.weights):
                group.create_dataset(name, data=variable.numpy())
    # On disk before the rename, so that a power loss leaves the old file or the new one.
    with open(partial, "rb+") as written:
        os.fsync(written.fileno())
    os.replace(partial, filepath)


def _is_classic_h5(filepath) -> bool:
    # Keras 3 itself handles ".weights.h5"; a plain ".h5" is the classic layout.
    name = os.fspath(filepath)
    return name.endswith(".h5") and not name.endswith(".weights.h5")


class ClassicWeightsModel(keras.Model):
    """A keras.Model whose ``save_weights`` / ``load_weights`` on ``*.h5`` use the classic
    layout, as classic code calls them (``keras_model.save_weights("x.h5")``,
    ``keras_model.load_weights("x.h5", by_name=True)``); other file names go to Keras.
    """

    def save_weights(self, filepath, overwrite: bool = True, **kwargs):
        if not _is_classic_h5(filepath):
            return super().save_weights(filepath, overwrite=overwrite, **kwargs)
        if not overwrite and os.path.exists(filepath):
            raise FileExistsError(f"{filepath} exists; pass overwrite=True to replace it.")
        save_weights(self, filepath)

    def load_weights(self, filepath, skip_mismatch: bool = False, by_name: bool = False,
                     exclude=None, **kwargs):
        if not _is_classic_h5(filepath):
            return super().load_weights(filepath, skip_mismatch=skip_mismatch, **kwargs)
        if skip_mismatch:
            raise ValueError(
                "skip_mismatch is not supported for classic .h5 files: name the layers to "
                f"skip, e.g. load_weights(path, by_name=True, exclude={list(HEAD_LAYERS)}).")
        return load_weights(self, filepath, by_name=by_name, exclude=exclude)
