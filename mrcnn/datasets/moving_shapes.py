"""Synthetic videos of moving shapes, with an identity per object, for tracking.

The video counterpart of :mod:`mrcnn.datasets.shapes`: the same classes (square, circle,
triangle) on a plain background, generated from a seeded numpy generator, rendered on
demand with `skimage.draw`. Each object keeps its class, colour and size for the whole
video (its *appearance*), while its position and angle change: it moves in a straight line
at a constant speed (bouncing off the image border) and turns at a constant rate.

Objects come in pairs whose paths cross: both members pass near a common meeting point
around the same frame, so they overlap, the one drawn later hides the other (sometimes
completely, and the hidden one is missing from that frame's ground truth), and, as the
pair members often share a class and move fast relative to their size, linking masks by
overlap alone swaps or loses identities there. The appearance tells them apart.

Every frame is one dataset image with ``video`` and ``frame`` in its image_info; image ids
are ordered video by video, frame by frame. Instance ids are unique across the dataset
(ids >= 1): the same object has the same id in every frame of its video.

Shapes: H, W image height and width; N visible instances in a frame.
"""
from __future__ import annotations

import math

import numpy as np
import skimage.draw

from mrcnn.dataset import Dataset
from mrcnn.datasets.shapes import SHAPES, render, visible_masks

# Source of the images and classes; the classes are those of the shapes dataset, in the same
# order ("moving_shapes.1" = square, ...), so class ids and names are the same in both.
SOURCE = "moving_shapes"
# Smallest object size s (half side, radius or apex height) in pixels.
MIN_SIZE = 12
# Largest object size: min(height, width) // SIZE_DIVISOR.
SIZE_DIVISOR = 5
# Colours of the objects of one video differ from each other and from the background by at
# least this much in some channel, so that colour identifies an object.
MIN_COLOR_DISTANCE = 60
# Largest turn per frame, in radians.
MAX_TURN = 0.3


class MovingShapesDataset(Dataset):
    """Videos of 2-4 shapes that move, turn and cross each other; one image per frame.

    A frame's spec is a list of objects in drawing order (a later object hides the ones
    under it), each ``(name, (r, g, b), (y, x, s, angle))``: centre (x, y) in pixels
    (floats), size s (square: half side; circle: radius; triangle: apex s above the centre,
    base s below it, as in the shapes dataset) and angle in radians, counter-clockwise.
    """

    def load_videos(self, count: int, frames: int, height: int, width: int,
                    seed: int | None = None, *, objects: tuple[int, int] = (2, 4),
                    speed: tuple[float, float] = (0.4, 1.5),
                    same_class: float = 0.5) -> None:
        """Adds the shape classes and `count` generated videos of `frames` frames each.

        Args:
            count: number of videos to add.
            frames: frames per video (>= 1).
            height, width: frame size in pixels, each >= 8 * MIN_SIZE (96).
            seed: seed of the numpy random generator; the same seed (and arguments) gives
                the same videos (None: different every time).
            objects: (fewest, most) objects per video, both inclusive.
            speed: (slowest, fastest) speed in pixels per frame, as a multiple of the
                object's size s; at about 2 the object moves its own width each frame.
            same_class: probability that the second object of a crossing pair has the
                class of the first.
        """
        if min(height, width) < 8 * MIN_SIZE:
            raise ValueError(f"frames of {height}x{width} are too small for moving shapes: "
                             f"use height and width >= {8 * MIN_SIZE}")
        if frames < 1 or count < 0:
            raise ValueError(f"need count >= 0 and frames >= 1, got count={count}, "
                             f"frames={frames}")
        if not 1 <= objects[0] <= objects[1]:
            raise ValueError(f"objects must be (fewest, most) with 1 <= fewest <= most, "
                             f"got {objects}")
        for source_id, name in enumerate(SHAPES, start=1):
            self.add_class(SOURCE, source_id, name)
        rng = np.random.default_rng(seed)
        mine = [info for info in self.image_info if info["source"] == SOURCE]
        first_video = max((info["video"] for info in mine), default=-1) + 1
        next_id = max((max(info["instance_ids"], default=0) for info in mine), default=0) + 1
        first_image = len(mine)
        for v in range(count):
            video = random_video(rng, frames, height, width, objects, speed, same_class)
            ids = list(range(next_id, next_id + len(video["objects"])))
            next_id += len(ids)
            for frame, shapes in enumerate(video["frames"]):
                self.add_image(SOURCE, image_id=first_image + v * frames + frame, path=None,
                               width=width, height=height, video=first_video + v,
                               frame=frame, bg_color=video["bg_color"], shapes=shapes,
                               instance_ids=ids)

    def load_image(self, image_id: int) -> np.ndarray:
        """Renders the frame from its spec.

        Returns:
            image: uint8 [H, W, 3].
        """
        info = self._image(image_id)
        if info["source"] != SOURCE:
            return super().load_image(image_id)
        return render(info["bg_color"], info["shapes"], info["height"], info["width"],
                      shape_mask)

    def load_mask(self, image_id: int) -> tuple[np.ndarray, np.ndarray]:
        """One mask per visible object, with the parts hidden by later objects removed.

        Returns:
            masks: bool [H, W, N]; objects completely hidden in this frame are left out.
            class_ids: int32 [N], dataset class ids (needs `prepare()`).
        """
        info = self._image(image_id)
        if info["source"] != SOURCE:
            return super().load_mask(image_id)
        masks, visible = self._visible_masks(info)
        class_ids = np.array([self.map_source_class_id(f"{SOURCE}.{SHAPES.index(name) + 1}")
                              for name, _, _ in info["shapes"]], dtype=np.int32)
        return masks, class_ids[visible]

    def load_instance_ids(self, image_id: int) -> np.ndarray:
        """The identity of each instance of `load_mask`, in the same order.

        Returns:
            instance_ids: int32 [N], >= 1, unique across the dataset per physical object.
        """
        info = self._image(image_id)
        if info["source"] != SOURCE:
            return super().load_instance_ids(image_id)
        visible = self._visible(info)
        return np.asarray(info["instance_ids"], dtype=np.int32)[visible]

    def sequence_of(self, image_id: int) -> int:
        """The video an image (frame) belongs to."""
        return self._image(image_id)["video"]

    def video_ids(self) -> list[int]:
        """The videos of this dataset, in order."""
        return sorted({info["video"] for info in self.image_info if info["source"] == SOURCE})

    def video_image_ids(self, video: int) -> list[int]:
        """The image ids of one video's frames, in frame order."""
        ids = [i for i, info in enumerate(self.image_info)
               if info["source"] == SOURCE and info["video"] == video]
        if not ids:
            raise ValueError(f"no video {video} in this dataset; videos: {self.video_ids()}")
        return sorted(ids, key=lambda i: self.image_info[i]["frame"])

    def frame_ground_truth(self, image_id: int) -> dict:
        """A frame's ground truth for tracking evaluation.

        Returns:
            {"ids": int32 [N] instance ids, "class_ids": int32 [N], "masks": bool
            [H, W, N]}, instances aligned as in `load_mask`: the *objects of a frame* of
            :mod:`mrcnn.mots` and :mod:`mrcnn.track_metrics`.
        """
        masks, class_ids = self.load_mask(image_id)
        return {"ids": self.load_instance_ids(image_id), "class_ids": class_ids,
                "masks": masks}

    def image_reference(self, image_id: int) -> str:
        """The frame's place and spec: video, frame and objects (id, name, colour, dims)."""
        info = self._image(image_id)
        if info["source"] != SOURCE:
            return super().image_reference(image_id)
        objects = [(i, *shape) for i, shape in zip(info["instance_ids"], info["shapes"])]
        return f"video {info['video']} frame {info['frame']}: {objects}"

    def _visible(self, info: dict) -> np.ndarray:
        return self._visible_masks(info)[1]

    @staticmethod
    def _visible_masks(info: dict) -> tuple[np.ndarray, np.ndarray]:
        """Masks of the visible objects and the indices of those objects in the spec."""
        return visible_masks(info["shapes"], info["height"], info["width"], shape_mask)


def random_video(rng: np.random.Generator, frames: int, height: int, width: int,
                 objects: tuple[int, int] = (2, 4), speed: tuple[float, float] = (0.4, 1.5),
                 same_class: float = 0.5) -> dict:
    """A random video: background colour, objects and each frame's spec.

    Objects 2k and 2k+1 form a crossing pair: they pass within about s/2 of a shared
    meeting point, in the image's central half, at frames at most one apart.

    Returns:
        {"bg_color": (r, g, b), "objects": [(name, colour, s)],
         "frames": [[(name, colour, (y, x, s, angle)) per object] per frame]}.
    """
    bg_color = _random_color(rng, [])
    count = int(rng.integers(objects[0], objects[1] + 1))
    max_size = max(MIN_SIZE, min(height, width) // SIZE_DIVISOR)
    specs, paths = [], []
    for i in range(count):
        if i % 2 == 0:
            name = SHAPES[rng.integers(len(SHAPES))]
            meet_frame = float(rng.integers(0, frames))
            meet = np.array([rng.uniform(height / 4, 3 * height / 4),
                             rng.uniform(width / 4, 3 * width / 4)])
        elif rng.random() >= same_class:
            name = SHAPES[rng.integers(len(SHAPES))]
        color = _random_color(rng, [bg_color] + [c for _, c, _ in specs])
        s = int(rng.integers(MIN_SIZE, max_size + 1))
        direction = rng.uniform(0, 2 * math.pi)
        velocity = rng.uniform(*speed) * s * np.array([math.sin(direction),
                                                       math.cos(direction)])
        passes = meet + rng.uniform(-s / 2, s / 2, size=2)
        passes_frame = meet_frame + (rng.integers(-1, 2) if i % 2 else 0)
        angle, turn = rng.uniform(0, 2 * math.pi), rng.uniform(-MAX_TURN, MAX_TURN)
        specs.append((name, color, s))
        paths.append((passes, passes_frame, velocity, angle, turn))
    video_frames = []
    for t in range(frames):
        shapes = []
        for (name, color, s), (passes, passes_frame, velocity, angle, turn) in zip(specs, paths):
            y, x = passes + velocity * (t - passes_frame)
            # Centres stay s from the border, so every object stays fully inside the frame.
            y, x = _bounce(y, s, height - 1 - s), _bounce(x, s, width - 1 - s)
            shapes.append((name, color, (float(y), float(x), s, float(angle + turn * t))))
        video_frames.append(shapes)
    return {"bg_color": bg_color, "objects": specs, "frames": video_frames}


def shape_mask(name: str, dims: tuple[float, float, float, float], height: int,
               width: int) -> np.ndarray:
    """Pixels covered by one turned shape.

    Args:
        name: "square", "circle" or "triangle".
        dims: (y, x, s, angle): centre, size (half side, radius, or apex height) and
            counter-clockwise angle in radians (at 0, as drawn by the shapes dataset).
        height, width: image size.

    Returns:
        mask: bool [height, width].
    """
    y, x, s, angle = dims
    if name == "circle":
        rows, cols = skimage.draw.disk((y, x), s, shape=(height, width))
    else:
        if name == "square":
            corners = [(-s, -s), (-s, s), (s, s), (s, -s)]
        elif name == "triangle":
            half_base = s / math.sin(math.radians(60))
            corners = [(-s, 0.0), (s, -half_base), (s, half_base)]
        else:
            raise ValueError(f"unknown shape {name!r}; expected one of {SHAPES}")
        cos, sin = math.cos(angle), math.sin(angle)
        # Counter-clockwise on screen, where rows grow downwards.
        rows = [y + dy * cos - dx * sin for dy, dx in corners]
        cols = [x + dx * cos + dy * sin for dy, dx in corners]
        rows, cols = skimage.draw.polygon(rows, cols, shape=(height, width))
    mask = np.zeros((height, width), dtype=bool)
    mask[rows, cols] = True
    return mask


def _bounce(position: float, low: float, high: float) -> float:
    """Folds a straight path into [low, high], as a ball bouncing between two walls."""
    span = high - low
    offset = (position - low) % (2 * span)
    return low + (offset if offset <= span else 2 * span - offset)


def _random_color(rng: np.random.Generator, taken: list) -> tuple[int, int, int]:
    """A random colour at least MIN_COLOR_DISTANCE (in its most different channel) from
    every colour in `taken`."""
    while True:
        color = rng.integers(0, 256, size=3)
        if all(np.abs(color - np.array(other)).max() >= MIN_COLOR_DISTANCE for other in taken):
            return tuple(int(c) for c in color)
