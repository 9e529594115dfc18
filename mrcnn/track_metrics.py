"""Tracking scores with the community's implementation: TrackEval (HOTA, CLEAR, Identity).

The MOTS variants: detections and ground truth are matched by mask IoU, so CLEAR's MOTA
and MOTP are MOTSA and MOTSP, and its soft sMOTA is sMOTSA (Voigtlaender et al., 2019)::

    scores = evaluate_tracks({"video0": truth_frames}, {"video0": tracked_frames})
    scores["IDF1"], scores["IDSW"], scores["HOTA"], scores["sMOTSA"]

A sequence is a list of the objects of each frame (frame 0 first), each a dict
``{"ids": int [N], "class_ids": int [N], "masks": bool [H, W, N]}`` as in
:mod:`mrcnn.mots`; ground truth and tracks of a sequence have the same number of frames.
Objects with id 0 (untracked) are left out. Scores of several sequences are combined as
TrackEval combines them (counts summed, then the ratios).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from mrcnn.metrics import compute_overlaps_masks

# Reported names: ours (MOTS naming) -> (TrackEval metric, its field).
SCORES = {"HOTA": ("HOTA", "HOTA"), "DetA": ("HOTA", "DetA"), "AssA": ("HOTA", "AssA"),
          "MOTSA": ("CLEAR", "MOTA"), "sMOTSA": ("CLEAR", "sMOTA"),
          "MOTSP": ("CLEAR", "MOTP"), "IDF1": ("Identity", "IDF1"),
          "IDSW": ("CLEAR", "IDSW"), "Frag": ("CLEAR", "Frag"), "FP": ("CLEAR", "CLR_FP"),
          "FN": ("CLEAR", "CLR_FN"), "TP": ("CLEAR", "CLR_TP")}
COUNTS = ("IDSW", "Frag", "FP", "FN", "TP")


def evaluate_tracks(ground_truth: Mapping[str, Sequence[Mapping]],
                    tracks: Mapping[str, Sequence[Mapping]],
                    class_aware: bool = True) -> dict:
    """HOTA, MOTSA, sMOTSA, IDF1, ID switches, ... of tracks against ground truth.

    Args:
        ground_truth: ``{sequence name: [objects of each frame]}``.
        tracks: the same sequences, tracked.
        class_aware: an object and a track of different classes never match (their
            similarity is 0), as in the MOTS benchmarks' per-class evaluation.

    Returns:
        {name: value} for the names of SCORES: HOTA, DetA, AssA (averaged over TrackEval's
        localization thresholds), MOTSA, sMOTSA, MOTSP, IDF1 (floats), IDSW, Frag, FP, FN,
        TP (ints).

    Raises:
        ValueError: sequences or frame counts that differ between the two.
    """
    import trackeval

    if set(ground_truth) != set(tracks):
        raise ValueError(f"ground truth and tracks name different sequences: "
                         f"{sorted(ground_truth)} vs {sorted(tracks)}")
    metrics = {"HOTA": trackeval.metrics.HOTA, "CLEAR": trackeval.metrics.CLEAR,
               "Identity": trackeval.metrics.Identity}
    metrics = {name: make({"PRINT_CONFIG": False}) for name, make in metrics.items()}
    results = {name: {} for name in metrics}
    for sequence in ground_truth:
        data = _trackeval_sequence(sequence, ground_truth[sequence], tracks[sequence],
                                   class_aware)
        for name, metric in metrics.items():
            results[name][sequence] = metric.eval_sequence(data)
    combined = {name: metric.combine_sequences(results[name])
                for name, metric in metrics.items()}
    scores = {}
    for ours, (metric, field) in SCORES.items():
        value = combined[metric][field]
        scores[ours] = int(value) if ours in COUNTS else float(np.mean(value))
    return scores


def _trackeval_sequence(name: str, truth: Sequence[Mapping], tracked: Sequence[Mapping],
                        class_aware: bool) -> dict:
    """One sequence in the form TrackEval's metrics take: ids renumbered 0.. per side,
    and the ground truth / track similarity (mask IoU) of every frame."""
    if len(truth) != len(tracked):
        raise ValueError(f"sequence {name}: {len(truth)} frames of ground truth but "
                         f"{len(tracked)} of tracks")
    frames = [(_tracked_only(t), _tracked_only(p)) for t, p in zip(truth, tracked)]
    gt_index = _index_of_ids([t["ids"] for t, _ in frames])
    track_index = _index_of_ids([p["ids"] for _, p in frames])
    similarity = []
    for t, p in frames:
        iou = compute_overlaps_masks(t["masks"], p["masks"]).astype(np.float64)
        if class_aware:
            iou[t["class_ids"][:, None] != p["class_ids"][None, :]] = 0.0
        similarity.append(iou)
    return {"num_timesteps": len(frames), "num_gt_ids": len(gt_index),
            "num_tracker_ids": len(track_index),
            "num_gt_dets": sum(len(t["ids"]) for t, _ in frames),
            "num_tracker_dets": sum(len(p["ids"]) for _, p in frames),
            "gt_ids": [np.array([gt_index[i] for i in t["ids"]], dtype=int) for t, _ in frames],
            "tracker_ids": [np.array([track_index[i] for i in p["ids"]], dtype=int)
                            for _, p in frames],
            "similarity_scores": similarity}


def _tracked_only(objects: Mapping) -> dict:
    ids = np.asarray(objects["ids"]).astype(np.int64)
    masks = np.asarray(objects["masks"], dtype=bool)
    if not masks.ndim == 3 or masks.shape[-1] != len(ids) or len(objects["class_ids"]) != len(ids):
        raise ValueError(f"objects' ids [N], class_ids [N] and masks [H, W, N] disagree: "
                         f"{len(ids)}, {len(objects['class_ids'])}, {masks.shape}")
    keep = ids != 0
    return {"ids": ids[keep], "class_ids": np.asarray(objects["class_ids"])[keep],
            "masks": masks[..., keep]}


def _index_of_ids(ids_per_frame: Sequence[np.ndarray]) -> dict:
    """{id: 0..K-1} over all frames, in increasing id order."""
    unique = sorted({int(i) for ids in ids_per_frame for i in ids})
    return {i: k for k, i in enumerate(unique)}
