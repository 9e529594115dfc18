"""Linking detections across the frames of a video into tracks (identities).

A :class:`Tracker` is fed one frame's ``MaskRCNN.detect()`` result at a time and gives each
detection a track id. The cost of continuing a track with a detection is the weighted mean
of two dissimilarities, each in [0, 1]::

    cost = (embedding_weight * |e_track - e_det| / 2 + iou_weight * (1 - IoU(mask_track,
            mask_det))) / (embedding_weight + iou_weight)

where the embeddings are the L2-normalized rows of the result's ``embeddings`` (so their
distance is in [0, 2]) and the masks are the detection's and the track's last one. Pairs
costing more than ``max_cost`` (or of different classes, with ``class_consistent``) are
never linked; the rest are assigned one to one at least total cost
(``scipy.optimize.linear_sum_assignment``). Unlinked detections scoring at least
``min_score`` start new tracks; a track that has gone unlinked for more than ``memory``
frames ends. With ``embedding_weight=0``, or results without embeddings, the cost is the
mask IoU alone: the IoU-only baseline, the same tracker without the appearance term::

    tracker = Tracker(embedding_weight=1.0)
    for image in frames:
        result = model.detect([image])[0]
        track_ids = tracker.update(result)      # [N] int32, 0 for untracked detections

Shapes: H, W frame height and width; N detections in a frame; T live tracks; D embedding
size.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from mrcnn.metrics import compute_overlaps_masks

# Track id of a detection that belongs to no track (scored below min_score, unlinked).
UNTRACKED = 0


@dataclass
class Track:
    """One identity followed across frames.

    Attributes:
        track_id: >= 1, unique within the tracker.
        class_id: class of the detection that started it.
        mask: bool [H, W], the mask of its last detection.
        embedding: float32 [D] of its last detection, or None.
        last_frame: index of the frame of its last detection.
    """
    track_id: int
    class_id: int
    mask: np.ndarray
    embedding: np.ndarray | None
    last_frame: int


class Tracker:
    """Frame-by-frame assignment of detections to tracks (see the module doc)."""

    def __init__(self, embedding_weight: float = 1.0, iou_weight: float = 1.0,
                 max_cost: float = 0.7, min_score: float = 0.5, memory: int = 3,
                 class_consistent: bool = True):
        """
        Args:
            embedding_weight: weight of the embedding distance (0: IoU only).
            iou_weight: weight of 1 - mask IoU with the track's last mask.
            max_cost: pairs costing more are never linked (cost in [0, 1]; with IoU alone,
                0.7 links only masks overlapping with IoU >= 0.3).
            min_score: detections scoring less are not tracked (track id 0).
            memory: frames a track survives without a detection; it can be linked again
                within them (0: it ends at its first missed frame).
            class_consistent: link only detections of the track's class.
        """
        if embedding_weight < 0 or iou_weight < 0 or embedding_weight + iou_weight <= 0:
            raise ValueError(f"embedding_weight and iou_weight must be >= 0 and not both 0, "
                             f"got {embedding_weight} and {iou_weight}")
        if memory < 0:
            raise ValueError(f"memory must be >= 0 frames, got {memory}")
        self.embedding_weight = float(embedding_weight)
        self.iou_weight = float(iou_weight)
        self.max_cost = float(max_cost)
        self.min_score = float(min_score)
        self.memory = int(memory)
        self.class_consistent = bool(class_consistent)
        self.reset()

    def reset(self) -> None:
        """Forgets all tracks, for a new video; track ids start again at 1."""
        self.tracks: list[Track] = []
        self.frame = -1
        self._next_id = 1

    def update(self, result: dict) -> np.ndarray:
        """Links one frame's detections to the tracks and returns their track ids.

        Args:
            result: a ``detect()`` result: ``masks`` bool [H, W, N], ``class_ids`` [N],
                ``scores`` [N], optionally ``embeddings`` [N, D] (L2-normalized rows);
                ``rois`` is not used (the masks say more).

        Returns:
            track_ids: int32 [N], >= 1, or 0 (UNTRACKED) for detections below min_score.
        """
        masks = np.asarray(result["masks"], dtype=bool)
        class_ids = np.asarray(result["class_ids"]).astype(np.int64)
        scores = np.asarray(result["scores"], dtype=np.float64)
        embeddings = result.get("embeddings")
        if not masks.ndim == 3 or not masks.shape[-1] == len(class_ids) == len(scores):
            raise ValueError(f"result's masks [H, W, N], class_ids [N] and scores [N] disagree:"
                             f" masks {masks.shape}, {len(class_ids)} class_ids, "
                             f"{len(scores)} scores")
        if embeddings is not None:
            embeddings = np.asarray(embeddings, dtype=np.float32)
            if embeddings.ndim != 2 or len(embeddings) != len(scores):
                raise ValueError(f"result's embeddings must be [N, D] with N = {len(scores)}"
                                 f" detections, got shape {embeddings.shape}")
        self.frame += 1
        track_ids = np.full(len(scores), UNTRACKED, dtype=np.int32)
        candidates = np.flatnonzero(scores >= self.min_score)
        cost = self.cost_matrix(masks[..., candidates], class_ids[candidates],
                                None if embeddings is None else embeddings[candidates])
        rows, cols = linear_sum_assignment(np.where(np.isfinite(cost), cost, 2.0 + cost.size))
        linked = set()
        for row, col in zip(rows, cols):
            if np.isfinite(cost[row, col]):
                detection = candidates[col]
                self._continue(self.tracks[row], detection, masks, embeddings)
                track_ids[detection] = self.tracks[row].track_id
                linked.add(col)
        for col, detection in enumerate(candidates):
            if col not in linked:
                track = Track(self._next_id, int(class_ids[detection]),
                              masks[..., detection], None, self.frame)
                self._continue(track, detection, masks, embeddings)
                self.tracks.append(track)
                track_ids[detection] = track.track_id
                self._next_id += 1
        self.tracks = [t for t in self.tracks if self.frame - t.last_frame <= self.memory]
        return track_ids

    def cost_matrix(self, masks: np.ndarray, class_ids: np.ndarray,
                    embeddings: np.ndarray | None) -> np.ndarray:
        """The cost of continuing each live track with each detection.

        Args:
            masks: bool [H, W, N]; class_ids: [N]; embeddings: [N, D] or None.

        Returns:
            cost: float64 [T, N] in [0, 1]; inf where the classes differ (with
            class_consistent) or the cost exceeds max_cost.
        """
        cost = np.full((len(self.tracks), masks.shape[-1]), np.inf)
        if cost.size == 0:
            return cost
        track_masks = np.stack([t.mask for t in self.tracks], axis=-1)
        if track_masks.shape[:2] != masks.shape[:2]:
            raise ValueError(f"frame size changed from {track_masks.shape[:2]} to "
                             f"{masks.shape[:2]}: call reset() before a new video")
        dissimilarity = self.iou_weight * (1.0 - compute_overlaps_masks(track_masks, masks))
        weight = np.full((len(self.tracks), 1), self.iou_weight)
        if self.embedding_weight > 0 and embeddings is not None:
            # Tracks started from results without embeddings keep the IoU term alone.
            has = np.array([t.embedding is not None for t in self.tracks])
            if has.any():
                known = np.stack([t.embedding for t in self.tracks if t.embedding is not None])
                distance = np.linalg.norm(known[:, None, :] - embeddings[None, :, :], axis=-1)
                dissimilarity[has] += self.embedding_weight * distance / 2.0
                weight[has] += self.embedding_weight
        cost = dissimilarity / weight
        if self.class_consistent:
            track_classes = np.array([t.class_id for t in self.tracks])
            cost[track_classes[:, None] != class_ids[None, :]] = np.inf
        cost[cost > self.max_cost] = np.inf
        return cost

    def _continue(self, track: Track, detection: int, masks: np.ndarray,
                  embeddings: np.ndarray | None) -> None:
        track.mask = masks[..., detection]
        track.embedding = None if embeddings is None else embeddings[detection]
        track.last_frame = self.frame
