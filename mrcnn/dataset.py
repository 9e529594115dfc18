"""The `Dataset` base class: the classic registry of classes and images.

A dataset collects classes and images from one or more *sources* (e.g.
``"coco"``, ``"shapes"``) and gives each a dense internal id. Subclass it,
add classes and images in a loader method, override :meth:`Dataset.load_mask`
(and :meth:`Dataset.load_image` where the images are not files), then call
:meth:`Dataset.prepare` before use::

    class BalloonDataset(Dataset):
        def load_balloons(self, folder):
            self.add_class("balloon", 1, "balloon")
            for path in sorted(Path(folder).glob("*.jpg")):
                self.add_image("balloon", image_id=path.stem, path=str(path),
                               polygons=read_polygons(path))

        def load_mask(self, image_id):
            ...  # -> (bool [H, W, N], int32 [N])

    dataset = BalloonDataset()
    dataset.load_balloons("balloon/train")
    dataset.prepare()

Ids: a *class id* / *image id* is the internal index into ``class_info`` /
``image_info``; a *source id* is the id the source itself uses, and
``"source.id"`` strings key the maps between the two. Class 0 is always the
background ``"BG"``, which belongs to every source.

Shapes: H, W image height and width; N instances in an image.
"""
from __future__ import annotations

import operator
import warnings
from typing import Any

import numpy as np

_PREPARE_FIRST = ("call dataset.prepare() first: it builds class_names, num_classes, "
                  "image_ids and the source maps from the classes and images added so far "
                  "(call it again after adding more)")


class _BuiltByPrepare:
    """An attribute that prepare() sets; reading it earlier raises RuntimeError.

    The value lives in the instance ``__dict__`` under the classic name, so
    ``vars(dataset)`` and subclasses that assign it themselves keep working.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        try:
            return obj.__dict__[self.name]
        except KeyError:
            raise RuntimeError(f"{type(obj).__name__}.{self.name.lstrip('_')} is not "
                               f"available yet: {_PREPARE_FIRST}.") from None

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self.name] = value

    def __delete__(self, obj: Any) -> None:
        obj.__dict__.pop(self.name, None)


class Dataset:
    """Base class of datasets: classes, images and how to load them.

    Attributes:
        class_info: one dict per class, ``{"source", "id", "name"}``; index = class id.
        image_info: one dict per image, ``{"id", "source", "path", **extra}``;
            index = image id.

    Built by :meth:`prepare` (reading them earlier raises RuntimeError):
        num_classes: int, classes including the background.
        class_ids: int [num_classes], ``np.arange(num_classes)``.
        class_names: list of str, each class name up to its first comma.
        num_images: int.
        image_ids (property; stored as ``_image_ids``): int [num_images].
        class_from_source_map: ``{"source.source_class_id": class_id}``.
        image_from_source_map: ``{"source.source_image_id": image_id}``.
        sources: sorted list of the distinct class sources ("" is the
            background's source).
        source_class_ids: ``{source: [class ids]}``; class 0 is in every list.
    """

    num_classes = _BuiltByPrepare()
    class_ids = _BuiltByPrepare()
    class_names = _BuiltByPrepare()
    num_images = _BuiltByPrepare()
    _image_ids = _BuiltByPrepare()
    class_from_source_map = _BuiltByPrepare()
    image_from_source_map = _BuiltByPrepare()
    sources = _BuiltByPrepare()
    source_class_ids = _BuiltByPrepare()

    _PREPARED = ("num_classes", "class_ids", "class_names", "num_images", "_image_ids",
                 "class_from_source_map", "image_from_source_map", "sources",
                 "source_class_ids")

    def __init__(self, class_map: dict | None = None):
        """Makes an empty dataset holding only the background class.

        Args:
            class_map: unused, as in the classic API (kept for compatibility).
        """
        if class_map is not None:
            warnings.warn("Dataset(class_map=...) is not supported and is ignored.",
                          stacklevel=2)
        self.image_info: list[dict] = []
        self.class_info: list[dict] = [{"source": "", "id": 0, "name": "BG"}]
        self._prepared = False

    def __repr__(self) -> str:
        state = "prepared" if self._prepared else "not prepared"
        return (f"<{type(self).__name__}: {len(self.class_info)} classes, "
                f"{len(self.image_info)} images, {state}>")

    # ------------------------------------------------------------------ building

    def add_class(self, source: str, class_id: int, class_name: str) -> None:
        """Registers a class; a class already added (same source and id) is ignored.

        Args:
            source: name of the source, e.g. "coco". Must not contain a dot.
            class_id: the id the source gives this class.
            class_name: display name; only the text before the first comma is
                kept in `class_names`.

        Raises:
            ValueError: the source contains a dot.
        """
        _check_source(source)
        for info in self.class_info:
            if info["source"] == source and info["id"] == class_id:
                return
        self._unprepare()
        self.class_info.append({"source": source, "id": class_id, "name": class_name})

    def add_image(self, source: str, image_id: Any, path: str | None, **kwargs: Any) -> None:
        """Registers an image. Its internal id is the number of images added before it.

        Args:
            source: name of the source, e.g. "coco". Must not contain a dot.
            image_id: the id the source gives this image (any value with a str()).
            path: file to read in `load_image`, or None where `load_image` is
                overridden to make the image.
            **kwargs: anything else to keep in the image's `image_info` dict
                (size, annotations, ...).

        Raises:
            ValueError: the source contains a dot.
        """
        _check_source(source)
        self._unprepare()
        info = {"id": image_id, "source": source, "path": path}
        info.update(kwargs)
        self.image_info.append(info)

    def append_data(self, class_info: list[dict], image_info: list[dict]) -> None:
        """Merges the classes and images of another dataset into this one.

        The classic method of this name was an unfinished stub. Here it adds
        every class of `class_info` (as :meth:`add_class`, so duplicates are
        ignored) and every image of `image_info` (as :meth:`add_image`, extra
        keys kept), and records where each landed:

        - ``self.external_to_class_id``: ``{"source.id": class id}`` for the
          given classes;
        - ``self.external_to_image_id``: ``{"source.id": image id}`` for the
          given images.

        Call :meth:`prepare` afterwards.

        Args:
            class_info: dicts with keys "source", "id", "name", e.g. another
                dataset's `class_info` (its "BG" entry is skipped).
            image_info: dicts with keys "source", "id", "path" and any extras,
                e.g. another dataset's `image_info`.
        """
        self.external_to_class_id = {}
        for info in class_info:
            if info["id"] == 0 and info["source"] == "":
                continue
            self.add_class(info["source"], info["id"], info["name"])
            self.external_to_class_id[_key(info["source"], info["id"])] = next(
                i for i, c in enumerate(self.class_info)
                if c["source"] == info["source"] and c["id"] == info["id"])
        self.external_to_image_id = {}
        for info in image_info:
            extra = {k: v for k, v in info.items() if k not in ("source", "id", "path")}
            self.add_image(info["source"], info["id"], info["path"], **extra)
            self.external_to_image_id[_key(info["source"], info["id"])] = (
                len(self.image_info) - 1)

    def prepare(self, class_map: dict | None = None) -> None:
        """Builds the ids, names and source maps. Call it after adding everything.

        Args:
            class_map: unused, as in the classic API (kept for compatibility).
        """
        if class_map is not None:
            warnings.warn("Dataset.prepare(class_map=...) is not supported and is ignored.",
                          stacklevel=2)
        self.num_classes = len(self.class_info)
        self.class_ids = np.arange(self.num_classes)
        self.class_names = [info["name"].split(",")[0] for info in self.class_info]
        self.num_images = len(self.image_info)
        self._image_ids = np.arange(self.num_images)
        self.class_from_source_map = {_key(info["source"], info["id"]): class_id
                                      for class_id, info in enumerate(self.class_info)}
        self.image_from_source_map = {_key(info["source"], info["id"]): image_id
                                      for image_id, info in enumerate(self.image_info)}
        self.sources = sorted({info["source"] for info in self.class_info})
        self.source_class_ids = {
            source: [class_id for class_id, info in enumerate(self.class_info)
                     if class_id == 0 or info["source"] == source]
            for source in self.sources}
        self._prepared = True

    def _unprepare(self) -> None:
        # Maps built before a class or image was added would silently miss it.
        if self._prepared:
            for name in self._PREPARED:
                delattr(self, name)
            self._prepared = False

    # ------------------------------------------------------------------ lookups

    @property
    def image_ids(self) -> np.ndarray:
        """int [num_images]: the internal image ids, 0..num_images-1."""
        return self._image_ids

    def map_source_class_id(self, source_class_id: str) -> int:
        """Internal class id of a source class.

        Args:
            source_class_id: "source.id", e.g. "coco.12".

        Returns:
            The class id (index into `class_info` and `class_names`).

        Raises:
            KeyError: no class has that source and id.
        """
        try:
            return self.class_from_source_map[source_class_id]
        except KeyError:
            raise KeyError(f"unknown source class {source_class_id!r}: this dataset has "
                           f"{_preview(self.class_from_source_map)}") from None

    def get_source_class_id(self, class_id: int, source: str) -> Any:
        """The id that `source` gives internal class `class_id`.

        The background (class 0) belongs to every source and maps to 0.

        Args:
            class_id: internal class id, 0..num_classes-1.
            source: the source expected to own the class, e.g. "coco".

        Raises:
            IndexError: `class_id` is out of range.
            ValueError: the class comes from another source.
        """
        class_id = _check_index(class_id, self.num_classes, "class")
        info = self.class_info[class_id]
        if class_id == 0:
            return 0
        if info["source"] != source:
            raise ValueError(f"class {class_id} ({info['name']!r}) comes from source "
                             f"{info['source']!r}, not {source!r}")
        return info["id"]

    def source_image_link(self, image_id: int) -> str | None:
        """The path (or URL) recorded for an image by `add_image`."""
        return self._image(image_id)["path"]

    def image_reference(self, image_id: int) -> str:
        """A string that helps find the image in its source (a URL, a file name).

        Override it in a subclass; the base returns "".
        """
        self._image(image_id)
        return ""

    def _image(self, image_id: int) -> dict:
        return self.image_info[_check_index(image_id, len(self.image_info), "image")]

    # ------------------------------------------------------------------ loading

    def load_image(self, image_id: int) -> np.ndarray:
        """Reads the image file at ``image_info[image_id]["path"]``.

        The policy of :mod:`mrcnn.image_io`: grayscale is repeated to 3
        channels, an alpha channel dropped, 16-bit values scaled to 8 bits
        (``round(v / 257)``), so that training and ``detect()`` see the same
        values.

        Args:
            image_id: internal image id.

        Returns:
            image: [H, W, 3] uint8 (float32 in 0..255 for a floating-point file).

        Raises:
            mrcnn.image_io.ImageReadError: the file is missing or unreadable.
            ValueError: no path, or content the model cannot take.
        """
        from mrcnn.image_io import read_image

        info = self._image(image_id)
        if info["path"] is None:
            raise ValueError(f"image {image_id} has no path: {type(self).__name__} must "
                             "override load_image() for images that are not files")
        return read_image(info["path"])

    def load_mask(self, image_id: int) -> tuple[np.ndarray, np.ndarray]:
        """The instance masks of an image. Every dataset must override this.

        Args:
            image_id: internal image id.

        Returns:
            masks: bool [H, W, N], one channel per instance.
            class_ids: int32 [N], the internal class id of each instance
                (e.g. from ``map_source_class_id("source.id")``).

        Raises:
            NotImplementedError: always, in the base class. (The classic base
                returned empty arrays, which silently trains on nothing.)
        """
        raise NotImplementedError(
            f"{type(self).__name__}.load_mask() is not implemented: a Dataset subclass must "
            f"override load_mask(image_id) to return (masks, class_ids), masks a bool array "
            f"[height, width, instances] and class_ids an int32 array [instances] of class "
            f"ids (requested for image {image_id})")

    def load_instance_ids(self, image_id: int) -> np.ndarray | None:
        """The identity of each instance of an image, for the association head.

        Override it for sequences (video frames): the same physical object has
        the same id in every frame, and different objects never share one in the
        whole dataset (the training loss pairs the ROIs of all the images of a
        batch by id).

        Args:
            image_id: internal image id.

        Returns:
            int [N] ids >= 1, aligned with ``load_mask``'s instances; or None, the
            default: the dataset has no identities (ASSOCIATION_EMBEDDING_SIZE
            cannot train on it).
        """
        return None


def _key(source: str, source_id: Any) -> str:
    return f"{source}.{source_id}"


def _check_source(source: str) -> None:
    if "." in source:
        raise ValueError(f"source {source!r} contains a dot, which would make the "
                         f"'source.id' keys ambiguous; use e.g. {source.replace('.', '_')!r}")


def _check_index(index: Any, count: int, what: str) -> int:
    """`index` as an int in 0..count-1, else a TypeError or IndexError naming the range."""
    try:
        value = operator.index(index)
    except TypeError:
        raise TypeError(f"{what} id must be an integer, got {index!r}") from None
    if not 0 <= value < count:
        valid = f"valid ids are 0..{count - 1}" if count else f"there are no {what}s"
        raise IndexError(f"{what} id {index} is out of range: {valid}")
    return value


def _preview(mapping: dict, limit: int = 10) -> str:
    keys = list(mapping)
    shown = ", ".join(map(repr, keys[:limit]))
    more = f", ... ({len(keys)} in all)" if len(keys) > limit else ""
    return f"{shown}{more}" if keys else "no classes"
