"""Tracking instances through a video: frames in, per-frame overlays and MOTS tracks out.

The work behind ``mrcnn track``, usable from Python::

    frames = read_video("clip.gif")                     # or a folder of frame images
    track_video(model, frames, "out", class_names)      # out/<frame>.png, out/tracks.txt

A video is a folder of images (frames in file-name order) or one multi-frame file that
imageio reads (GIF, multi-page TIFF; other formats where an imageio plugin for them is
installed). Every frame goes through the one image reader's policy (:mod:`mrcnn.image_io`).

Shapes: T frames; H, W frame height and width; N detections in a frame.
"""
from __future__ import annotations

import contextlib
import io
import os
from typing import TYPE_CHECKING, Sequence

import numpy as np

from mrcnn.image_io import ImageReadError, to_model_image
from mrcnn.inference import IMAGE_EXTENSIONS, collect_images, read_image
from mrcnn.mots import disjoint_detections, format_frame
from mrcnn.progress import Progress
from mrcnn.track import UNTRACKED, Tracker

if TYPE_CHECKING:  # the model module imports TensorFlow
    from mrcnn.model import MaskRCNN

# Name of the tracks file in the output folder.
TRACKS_FILE = "tracks.txt"


def read_video(path: str | os.PathLike) -> list[tuple[str, np.ndarray]]:
    """The frames of a video, in order, each named for its output file.

    Args:
        path: a folder of frame images (sorted by file name), or one multi-frame file.

    Returns:
        ``[(name, [H, W, 3] uint8 image)]``: file stems for a folder (``<stem>_<index>``
        where two stems are equal), ``<stem>_<index>`` (index from 0, five digits) for a
        file.

    Raises:
        FileNotFoundError: no such file or folder.
        ImageReadError: a file no installed imageio plugin reads (the message names the
            plugins to install) or that cannot be decoded.
        ValueError: no frame, frames of different sizes, or pixels the model cannot take.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        files = collect_images([path])
        stems = [os.path.splitext(os.path.basename(p))[0] for p in files]
        if len(set(stems)) < len(stems):  # a.png and a.jpg: keep both outputs apart
            stems = [f"{stem}_{index:05d}" for index, stem in enumerate(stems)]
        frames = [(stem, read_image(p)[0]) for stem, p in zip(stems, files)]
    elif os.path.isfile(path):
        stem = os.path.splitext(os.path.basename(path))[0]
        frames = [(f"{stem}_{index:05d}", frame)
                  for index, frame in enumerate(_read_multiframe(path))]
    else:
        raise FileNotFoundError(f"no such video file or folder of frames: {path}")
    if not frames:
        raise ValueError(f"no frames in {path}")
    sizes = {image.shape[:2] for _, image in frames}
    if len(sizes) > 1:
        raise ValueError(f"the frames of {path} differ in size ({sorted(sizes)}); a video's "
                         "frames must all have one size")
    return frames


def _read_multiframe(path: str) -> list[np.ndarray]:
    """The frames of one file as [H, W, 3] images."""
    import imageio.v3 as iio

    try:
        stack = np.asarray(iio.imread(path, index=None))
    except Exception as err:  # imageio's plugins raise many types
        plugins = " Is it a video format without an installed imageio plugin? Install " \
                  "imageio[ffmpeg] or imageio[pyav] for MP4/AVI, or extract the frames to " \
                  f"a folder of images ({', '.join(IMAGE_EXTENSIONS)})."
        raise ImageReadError(f"cannot read video file {path}: {type(err).__name__}: "
                             f"{str(err).splitlines()[0] if str(err) else ''}.{plugins}"
                             ) from err
    # [T, H, W, C] or [T, H, W] (gray) is a stack; [H, W, 3|4] or [H, W] one frame.
    if stack.ndim == 2 or (stack.ndim == 3 and stack.shape[-1] in (3, 4)):
        stack = stack[None]
    return [to_model_image(frame, f"{path} frame {index}") for index, frame in enumerate(stack)]


def track_video(model: MaskRCNN, frames: Sequence[tuple[str, np.ndarray]], out_dir: str,
                names: Sequence[str], tracker: Tracker | None = None) -> dict:
    """Detects and tracks instances frame by frame.

    Writes OUT/<frame name>.png (the tracked instances drawn with a colour per identity,
    captioned "<class> #<track id>") and OUT/tracks.txt in the MOTS format (frames counted
    from 0), line by line as frames are done. A detection's mask loses the pixels of
    higher-scoring detections first (the MOTS format wants disjoint masks), and one left
    with less than half its pixels is dropped as a duplicate
    (:func:`mrcnn.mots.disjoint_detections`), for the tracker, the drawing and the file
    alike.

    Args:
        model: an inference-mode MaskRCNN; with an association head its embeddings are
            used, without one the tracker links by mask IoU alone.
        frames: from :func:`read_video`.
        out_dir: output folder (created).
        names: class names, background first.
        tracker: the tracker (default: ``Tracker()``); it is reset first.

    Returns:
        {"frames": T, "tracks": number of distinct track ids, "embeddings": whether the
        model gave embeddings, "tracks_file": path}.
    """
    from mrcnn import visualize

    tracker = Tracker() if tracker is None else tracker
    tracker.reset()
    os.makedirs(out_dir, exist_ok=True)
    tracks_path = os.path.join(out_dir, TRACKS_FILE)
    seen, embeddings, progress = set(), False, Progress(len(frames), "track")
    with open(tracks_path, "w", encoding="ascii") as tracks_file:
        for index, (name, image) in enumerate(frames):
            r = disjoint_detections(model.detect([image])[0])
            embeddings = embeddings or "embeddings" in r
            track_ids = tracker.update(r)
            tracks_file.write(format_frame(index, {"ids": track_ids,
                                                   "class_ids": r["class_ids"],
                                                   "masks": r["masks"]}))
            tracks_file.flush()
            keep = track_ids != UNTRACKED
            seen.update(int(i) for i in track_ids[keep])
            captions = [f"{names[c]} #{i}" for c, i in zip(r["class_ids"][keep],
                                                           track_ids[keep])]
            # display_instances prints a line for a frame without instances.
            with contextlib.redirect_stdout(io.StringIO()):
                visualize.display_instances(
                    image, r["rois"][keep], r["masks"][..., keep], r["class_ids"][keep],
                    names, colors=visualize.identity_colors(track_ids[keep]), captions=captions,
                    save_path=os.path.join(out_dir, f"{name}.png"))
            progress.update(index + 1)
    return {"frames": len(frames), "tracks": len(seen), "embeddings": embeddings,
            "tracks_file": tracks_path}
