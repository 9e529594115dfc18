"""Tracks as text in the MOTS challenge format (KITTI MOTS / MOTSChallenge), and back.

One line per object and frame, fields separated by one space::

    <frame> <object id> <class id> <image height> <image width> <rle>

with ``object id = class id * 1000 + track id`` (track ids 1..999) and ``rle`` the
compressed run-length encoding of the object's mask as pycocotools writes it (column-major
counts). Masks of one frame must not overlap (the challenge's rule):
:func:`remove_overlaps` gives each pixel to one detection. Frames are numbered as the caller
numbers them (``mrcnn track`` counts from 0, as KITTI MOTS does). In the challenge's own
data, class 10 marks ignore regions; this module gives no class a special meaning.

The *objects of a frame* are a dict ``{"ids": int [N], "class_ids": int [N], "masks": bool
[H, W, N]}``, the form that :mod:`mrcnn.track_metrics` also takes.
"""
from __future__ import annotations

import os
from typing import Iterable, Mapping

import numpy as np
from pycocotools import mask as mask_utils

from mrcnn.evaluation import encode_masks

# object id = class id * ID_DIVISOR + track id.
ID_DIVISOR = 1000


def remove_overlaps(masks: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Gives each pixel claimed by several masks to the highest-scoring one.

    Args:
        masks: bool [H, W, N]; scores: [N].

    Returns:
        bool [H, W, N], disjoint; a mask may end up empty.
    """
    masks = np.asarray(masks, dtype=bool)
    owner = np.full(masks.shape[:2], -1)
    # Painted from the lowest score up: the highest-scoring claim is painted last.
    for i in np.argsort(scores, kind="stable"):
        owner[masks[..., i]] = i
    return owner[..., None] == np.arange(masks.shape[-1])


def disjoint_detections(result: Mapping[str, np.ndarray], min_kept: float = 0.5) -> dict:
    """A ``detect()`` result made fit for tracking and the MOTS format: disjoint masks
    (:func:`remove_overlaps`), without the detections left with less than `min_kept` of
    their pixels (duplicates of a higher-scoring detection, often of another class).

    Args:
        result: ``masks`` bool [H, W, N], ``scores`` [N], and any other per-detection
            arrays ([N, ...]: rois, class_ids, embeddings).
        min_kept: fraction of its own mask a detection must keep (0: keep all).

    Returns:
        A new result dict with the same keys, M <= N detections.
    """
    masks = np.asarray(result["masks"], dtype=bool)
    disjoint = remove_overlaps(masks, result["scores"])
    area = masks.sum(axis=(0, 1))
    keep = disjoint.sum(axis=(0, 1)) >= min_kept * np.maximum(area, 1)
    out = {key: np.asarray(value)[keep] for key, value in result.items() if key != "masks"}
    out["masks"] = disjoint[..., keep]
    return out


def format_frame(frame: int, objects: Mapping[str, np.ndarray]) -> str:
    """The MOTS lines of one frame's objects (empty masks and track id 0 left out).

    Args:
        frame: frame number.
        objects: ``ids`` [N] track ids (0: untracked, not written), ``class_ids`` [N],
            ``masks`` bool [H, W, N], disjoint.

    Returns:
        The lines, each ending in a newline, ordered by object id ("" for no object).

    Raises:
        ValueError: a track id above 999, a negative class id, or overlapping masks.
    """
    ids = np.asarray(objects["ids"]).astype(np.int64)
    class_ids = np.asarray(objects["class_ids"]).astype(np.int64)
    masks = np.asarray(objects["masks"], dtype=bool)
    if not masks.ndim == 3 or not masks.shape[-1] == len(ids) == len(class_ids):
        raise ValueError(f"frame {frame}: ids [N], class_ids [N] and masks [H, W, N] "
                         f"disagree: {len(ids)}, {len(class_ids)}, {masks.shape}")
    keep = (ids != 0) & masks.any(axis=(0, 1))
    ids, class_ids, masks = ids[keep], class_ids[keep], masks[..., keep]
    if len(ids) and (ids.min() < 1 or ids.max() >= ID_DIVISOR):
        raise ValueError(f"frame {frame}: track ids must be 1..{ID_DIVISOR - 1} in the MOTS "
                         f"format (object id = class id * {ID_DIVISOR} + track id), got "
                         f"{ids.min()}..{ids.max()}; split the video into shorter parts")
    if len(class_ids) and class_ids.min() < 0:
        raise ValueError(f"frame {frame}: class ids must be >= 0, got {class_ids.min()}")
    if masks.sum(axis=-1).max(initial=0) > 1:
        raise ValueError(f"frame {frame}: masks overlap, which the MOTS format forbids; "
                         "pass them through mrcnn.mots.remove_overlaps(masks, scores) first")
    height, width = masks.shape[:2]
    object_ids = class_ids * ID_DIVISOR + ids
    lines = [f"{frame} {object_id} {class_id} {height} {width} {rle['counts']}\n"
             for object_id, class_id, rle in zip(object_ids, class_ids, encode_masks(masks))]
    return "".join(line for _, line in sorted(zip(object_ids, lines)))


def write_mots(path: str | os.PathLike, frames: Iterable[tuple[int, Mapping]]) -> str:
    """Writes a MOTS text file.

    Args:
        path: file to write (replaced).
        frames: ``(frame number, objects)`` pairs, in frame order (see
            :func:`format_frame`).

    Returns:
        `path`.
    """
    with open(path, "w", encoding="ascii") as f:
        for frame, objects in frames:
            f.write(format_frame(frame, objects))
    return os.fspath(path)


def read_mots(path: str | os.PathLike) -> dict[int, dict]:
    """Reads a MOTS text file.

    Returns:
        ``{frame number: objects}`` for the frames with at least one object, objects as
        in :func:`format_frame` (``ids`` are the track ids, ``masks`` [H, W, N] decoded),
        in the file's order.

    Raises:
        ValueError: a line that is not in the format; the message names file and line.
    """
    rows: dict[int, list] = {}
    with open(path, encoding="ascii") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            fields = line.split()
            try:
                if len(fields) != 6:
                    raise ValueError(f"{len(fields)} fields instead of 6")
                frame, object_id, class_id, height, width = (int(v) for v in fields[:5])
                if object_id // ID_DIVISOR != class_id:
                    raise ValueError(f"object id {object_id} is not class {class_id} * "
                                     f"{ID_DIVISOR} + track id")
                mask = mask_utils.decode({"size": [height, width],
                                          "counts": fields[5].encode("ascii")})
            except ValueError as err:
                raise ValueError(f"{path}, line {number}: not a MOTS line (frame id class "
                                 f"height width rle): {err}") from None
            rows.setdefault(frame, []).append((object_id % ID_DIVISOR, class_id,
                                               mask.astype(bool)))
    return {frame: {"ids": np.array([r[0] for r in objects], dtype=np.int32),
                    "class_ids": np.array([r[1] for r in objects], dtype=np.int32),
                    "masks": np.stack([r[2] for r in objects], axis=-1)}
            for frame, objects in rows.items()}
