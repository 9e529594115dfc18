"""Drawing helpers for images, boxes, masks and evaluation results (matplotlib).

Only numpy, matplotlib and scikit-image are needed: no TensorFlow, no IPython.

Every drawing function takes ``save_path``. When it is given, a PNG is written
there with a headless :class:`matplotlib.figure.Figure` (pyplot is never touched,
so no display is needed and the current backend, e.g. Jupyter's inline one, is
left alone) and the path is returned. Without it the figure is shown through
pyplot as in the classic API. When ``ax`` is given, drawing goes into it and
nothing is shown; its figure is saved only if ``save_path`` is given.

Functions that draw one image (``display_instances``, ``draw_boxes``,
``display_differences``, ``draw_rois``) save it at its native size: the PNG has
exactly the image's H x W pixels, pixels not covered by a mask, box or caption
are the input's, ``figsize`` is ignored and the title (which has no room
outside the image) is not drawn.

Shapes: N instances, H x W image, boxes ``(y1, x1, y2, x2)`` in pixels with
y2/x2 exclusive.
"""
import colorsys
import itertools
import os
import random
from html import escape as html_escape

import numpy as np
from matplotlib import lines, patches
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from skimage.measure import find_contours

_DPI = 100
SavePath = str | os.PathLike | None
GT_COLOR = (0.0, 1.0, 0.0, 0.8)
PRED_COLOR = (1.0, 0.0, 0.0, 1.0)


def _pyplot():
    # Imported lazily so that saving never selects or needs an interactive backend.
    import matplotlib.pyplot as plt
    return plt


def _figure(save_path, figsize) -> Figure:
    """A headless figure when saving, a pyplot one when it is to be shown."""
    if save_path is not None:
        return Figure(figsize=figsize, dpi=_DPI)
    return _pyplot().figure(figsize=figsize)


def _image_axes(image_shape, ax, save_path, figsize):
    """Axes to draw one image into, and whether this call owns their figure.

    A saved figure is sized so that one figure pixel is one image pixel.
    """
    if ax is not None:
        return ax, False
    if save_path is not None:
        height, width = image_shape[:2]
        fig = Figure(figsize=(width / _DPI, height / _DPI), dpi=_DPI)
        return fig.add_axes((0, 0, 1, 1)), True
    return _figure(None, figsize).add_subplot(), True


def _show_image(ax, image: np.ndarray, title: str = "") -> None:
    """Draws an image over the whole axes, one data unit per pixel, axis off."""
    height, width = image.shape[:2]
    # "nearest" keeps saved native-size pixels identical to the input.
    ax.imshow(image.astype(np.uint8), interpolation="nearest")
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    ax.axis("off")
    ax.set_title(title)


def _finish(fig, save_path, owned: bool):
    """Saves the figure as a PNG (returning the path) or shows it if we own it."""
    if save_path is not None:
        # The explicit dpi and bbox override user rcParams (e.g. savefig.bbox="tight")
        # that would change the pixel size of the file.
        fig.savefig(save_path, format="png", dpi=fig.dpi, bbox_inches=fig.bbox_inches)
        return os.fspath(save_path)
    if owned:
        _pyplot().show()
    return None


def _outline_mask(ax, mask: np.ndarray, color) -> None:
    """Draws the contour polygons of a [H, W] mask."""
    # Padding closes the contours of masks that touch the image border.
    padded = np.pad(mask.astype(np.uint8), 1)
    for verts in find_contours(padded, 0.5):
        # find_contours gives (row, col); polygons want (x, y); undo the padding.
        ax.add_patch(patches.Polygon(np.fliplr(verts) - 1, facecolor="none", edgecolor=color))


def _add_box(ax, box, color, linestyle="dashed", alpha=0.7) -> None:
    y1, x1, y2, x2 = box
    ax.add_patch(patches.Rectangle((x1, y1), x2 - x1, y2 - y1, linewidth=2, alpha=alpha,
                                   linestyle=linestyle, edgecolor=color, facecolor="none"))


def random_colors(N: int, bright: bool = True, seed: int | None = None) -> list:
    """Generates N visually distinct colours: hues evenly spaced, then shuffled.

    Args:
        N: number of colours.
        bright: HSV value 1.0 if True, else 0.7.
        seed: seed for the shuffle; None uses Python's global ``random`` state
            (as the classic API did, so ``random.seed`` makes it reproducible).

    Returns:
        A list of N (r, g, b) tuples with components in [0, 1].
    """
    value = 1.0 if bright else 0.7
    colors = [colorsys.hsv_to_rgb(i / N, 1.0, value) for i in range(N)]
    (random if seed is None else random.Random(seed)).shuffle(colors)
    return colors


def identity_colors(track_ids: np.ndarray | list) -> list:
    """A colour per track id, the same for an id in every frame and every run.

    Hues step by the golden ratio, so consecutive ids get far-apart colours.

    Returns:
        [(r, g, b)] with components in [0, 1].
    """
    return [colorsys.hsv_to_rgb((int(i) * 0.618033988749895) % 1.0, 1.0, 1.0)
            for i in track_ids]


def apply_mask(image: np.ndarray, mask: np.ndarray, color, alpha: float = 0.5) -> np.ndarray:
    """Blends a colour into the masked pixels of an image.

    Each of the first three channels becomes ``image * (1 - alpha) + alpha * color * 255``
    on mask pixels. Unlike the classic function the input is not modified.

    Args:
        image: [H, W, 3 or 4] image, values in 0..255.
        mask: [H, W] bool or 0/1 mask.
        color: (r, g, b[, a]) with components in [0, 1]; alpha component ignored.
        alpha: opacity of the colour.

    Returns:
        A new array of the image's dtype (integer dtypes are rounded).
    """
    out = image.copy()
    selected = mask.astype(bool)
    pixels = image[selected][:, :3].astype(np.float64)
    blended = pixels * (1 - alpha) + alpha * np.asarray(color[:3], np.float64) * 255
    if np.issubdtype(image.dtype, np.integer):
        blended = np.rint(blended)
    channels = out[..., :3]  # a view: writing it writes `out`
    channels[selected] = blended.astype(image.dtype)
    return out


def display_instances(image: np.ndarray, boxes: np.ndarray, masks: np.ndarray,
                      class_ids: np.ndarray, class_names: list, scores: np.ndarray | None = None,
                      title: str = "", figsize: tuple[float, float] = (16, 16),
                      ax: Axes | None = None, show_mask: bool = True, show_bbox: bool = True,
                      colors: list | None = None, captions: list | None = None,
                      save_path: SavePath = None) -> str | None:
    """Draws instances: dashed boxes, "name score" captions, mask overlays and outlines.

    Args:
        image: [H, W, 3] image, values in 0..255.
        boxes: [N, (y1, x1, y2, x2)] pixel boxes; all-zero rows (padding) are skipped.
        masks: [H, W, N] bool masks.
        class_ids: [N] class ids indexing ``class_names``.
        class_names: list of class names, index 0 the background.
        scores: [N] confidences, shown with 3 decimals; None shows names only.
        title: figure title (not drawn in native-size saves).
        figsize: figure size in inches when showing; ignored when saving.
        ax: axes to draw into instead of a new figure.
        show_mask: overlay the masks and their outlines.
        show_bbox: draw the boxes.
        colors: [N] colours (components in [0, 1]); random by default.
        captions: [N] strings replacing the "name score" captions.
        save_path: where to write a PNG of exactly H x W pixels.

    Returns:
        ``save_path`` when given, else None.

    Raises:
        ValueError: if boxes, masks and class_ids disagree on N.
    """
    n = boxes.shape[0]
    if not (n == masks.shape[-1] == class_ids.shape[0]):
        raise ValueError(f"boxes, masks and class_ids must have the same N; got "
                         f"{n} boxes, {masks.shape[-1]} masks, {class_ids.shape[0]} class_ids")
    if n == 0:
        print("*** No instances to display ***")
    ax, owned = _image_axes(image.shape, ax, save_path, figsize)
    colors = random_colors(n) if colors is None else colors
    masked_image = image
    for i in range(n):
        if not np.any(boxes[i]):
            continue
        y1, x1, _, _ = boxes[i]
        if show_bbox:
            _add_box(ax, boxes[i], colors[i])
        if captions is not None:
            caption = captions[i]
        else:
            name = class_names[class_ids[i]]
            caption = name if scores is None else f"{name} {scores[i]:.3f}"
        ax.text(x1, y1 + 8, caption, color="w", size=11, backgroundcolor="none")
        if show_mask:
            masked_image = apply_mask(masked_image, masks[:, :, i], colors[i])
            _outline_mask(ax, masks[:, :, i], colors[i])
    _show_image(ax, masked_image, title)
    return _finish(ax.figure, save_path, owned)


def display_images(images: list, titles: list | None = None, cols: int = 4, cmap=None,
                   norm=None, interpolation=None, save_path: SavePath = None) -> str | None:
    """Shows images in a grid with optional titles.

    Args:
        images: list of [H, W, 3] images (0..255, drawn as uint8) or [H, W] arrays
            (drawn through ``cmap``/``norm``).
        titles: one title per image.
        cols: number of columns.
        cmap, norm, interpolation: passed to ``imshow``.
        save_path: where to write a PNG.

    Returns:
        ``save_path`` when given, else None.
    """
    titles = titles if titles is not None else [""] * len(images)
    rows = max(1, -(-len(images) // cols))
    fig = _figure(save_path, (14, 14 * rows / cols))
    for i, (image, title) in enumerate(zip(images, titles), start=1):
        ax = fig.add_subplot(rows, cols, i)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
        image = np.asarray(image)
        if image.ndim == 3 or image.dtype == bool:
            image = image.astype(np.uint8)
        ax.imshow(image, cmap=cmap, norm=norm, interpolation=interpolation)
    return _finish(fig, save_path, True)


def display_top_masks(image: np.ndarray, mask: np.ndarray, class_ids: np.ndarray,
                      class_names: list, limit: int = 4, save_path: SavePath = None) -> str | None:
    """Shows the image and, per class, its instances for the `limit` largest classes.

    Args:
        image: [H, W, 3] image.
        mask: [H, W, N] instance masks, bool or integer (non-zero is inside).
        class_ids: [N] class ids.
        class_names: list of class names.
        limit: number of classes shown, by descending total mask area.
        save_path: where to write a PNG.

    Returns:
        ``save_path`` when given, else None.
    """
    images = [image]
    titles = [f"H x W={image.shape[0]}x{image.shape[1]}"]
    unique_ids = np.unique(class_ids)
    # Counted as Python ints: the sum of a uint8 mask is unsigned, and negating it overflows.
    areas = [int(np.count_nonzero(mask[:, :, class_ids == c])) for c in unique_ids]
    top_ids = [c for c, area in sorted(zip(unique_ids, areas), key=lambda r: -r[1]) if area > 0]
    for class_id in top_ids[:limit]:
        class_masks = mask[:, :, class_ids == class_id] != 0
        # Instance k is painted with value k so that touching instances stay apart.
        images.append(np.sum(class_masks * np.arange(1, class_masks.shape[-1] + 1), -1))
        titles.append(class_names[class_id])
    # Empty panels keep the grid width constant when there are fewer classes.
    images += [np.zeros(image.shape[:2])] * (limit - len(top_ids[:limit]))
    titles += ["-"] * (len(images) - len(titles))
    return display_images(images, titles=titles, cols=limit + 1, cmap="Blues_r",
                          save_path=save_path)


def draw_box(image: np.ndarray, box, color) -> np.ndarray:
    """Burns a 3-pixel box outline into a copy of an image.

    Args:
        image: [H, W, C] image.
        box: (y1, x1, y2, x2) in pixels, y2/x2 exclusive; the outline lies inside it.
        color: C values assigned to the outline pixels.

    Returns:
        A new image with the outline drawn.
    """
    out = image.copy()
    y1, x1, y2, x2 = (int(v) for v in box)
    out[y1:y1 + 3, x1:x2] = color
    out[max(y2 - 3, y1):y2, x1:x2] = color
    out[y1:y2, x1:x1 + 3] = color
    out[y1:y2, max(x2 - 3, x1):x2] = color
    return out


def draw_boxes(image: np.ndarray, boxes: np.ndarray | None = None,
               refined_boxes: np.ndarray | None = None, masks: np.ndarray | None = None,
               captions: list | None = None, visibilities: list | None = None, title: str = "",
               ax: Axes | None = None, save_path: SavePath = None) -> str | None:
    """Draws boxes and/or refined boxes (joined by a line), captions and masks.

    Args:
        image: [H, W, 3] image.
        boxes: [N, (y1, x1, y2, x2)] boxes, drawn dotted; all-zero rows skipped.
        refined_boxes: [N, (y1, x1, y2, x2)] boxes, drawn solid.
        masks: [H, W, N] masks.
        captions: [N] strings, placed at the refined box if any, else the box.
        visibilities: [N] 0 (grey, dotted), 1 (coloured, dotted) or 2 (coloured,
            solid); refined boxes of visibility 0 are hidden.
        title: figure title (not drawn in native-size saves).
        ax: axes to draw into.
        save_path: where to write a PNG of the image's size.

    Returns:
        ``save_path`` when given, else None.
    """
    if boxes is None and refined_boxes is None:
        raise ValueError("draw_boxes needs boxes or refined_boxes")
    n = (boxes if boxes is not None else refined_boxes).shape[0]
    ax, owned = _image_axes(image.shape, ax, save_path, (12, 12))
    colors = random_colors(n)
    masked_image = image
    for i in range(n):
        visibility = visibilities[i] if visibilities is not None else 1
        color = (0.5, 0.5, 0.5) if visibility == 0 else colors[i]
        style = "solid" if visibility == 2 else "dotted"
        anchor = None
        if boxes is not None:
            if not np.any(boxes[i]):
                continue
            _add_box(ax, boxes[i], color, style, alpha=0.5 if visibility == 0 else 1.0)
            anchor = boxes[i]
        if refined_boxes is not None and visibility > 0:
            _add_box(ax, refined_boxes[i], color, "solid", alpha=1.0)
            if anchor is not None:
                ax.add_line(lines.Line2D([anchor[1], refined_boxes[i][1]],
                                         [anchor[0], refined_boxes[i][0]], color=color))
            anchor = refined_boxes[i]
        if captions is not None and anchor is not None:
            ax.text(anchor[1], anchor[0], captions[i], size=11, verticalalignment="top",
                    color="w", bbox={"facecolor": color, "alpha": 0.5, "pad": 2,
                                     "edgecolor": "none"})
        if masks is not None:
            masked_image = apply_mask(masked_image, masks[:, :, i], color)
            _outline_mask(ax, masks[:, :, i], color)
    _show_image(ax, masked_image, title)
    return _finish(ax.figure, save_path, owned)


def display_differences(image: np.ndarray, gt_box: np.ndarray, gt_class_id: np.ndarray,
                        gt_mask: np.ndarray, pred_box: np.ndarray, pred_class_id: np.ndarray,
                        pred_score: np.ndarray, pred_mask: np.ndarray, class_names: list,
                        title: str = "", ax: Axes | None = None, show_mask: bool = True,
                        show_box: bool = True, iou_threshold: float = 0.5,
                        score_threshold: float = 0.5, save_path: SavePath = None) -> str | None:
    """Draws ground truth (green) and predictions (red) with "score / IoU" captions.

    A prediction's IoU is that with its matched ground truth, or its best overlap
    when unmatched.

    Args:
        image: [H, W, 3] image.
        gt_box: [G, (y1, x1, y2, x2)] ground-truth boxes.
        gt_class_id: [G] ground-truth class ids.
        gt_mask: [H, W, G] ground-truth masks.
        pred_box: [P, (y1, x1, y2, x2)] predicted boxes.
        pred_class_id: [P] predicted class ids.
        pred_score: [P] prediction confidences.
        pred_mask: [H, W, P] predicted masks.
        class_names: list of class names.
        title: figure title; a legend by default.
        ax, show_mask, show_box, save_path: as in :func:`display_instances`.
        iou_threshold: minimum mask IoU of a match.
        score_threshold: predictions scoring lower are not matched.

    Returns:
        ``save_path`` when given, else None.
    """
    from mrcnn.metrics import compute_matches

    # Drop zero-padding rows up front so that compute_matches keeps every row.
    gt = np.any(gt_box != 0, axis=1)
    gt_box, gt_class_id, gt_mask = gt_box[gt], gt_class_id[gt], gt_mask[..., gt]
    pred = np.any(pred_box != 0, axis=1)
    pred_box, pred_class_id = pred_box[pred], pred_class_id[pred]
    pred_score, pred_mask = pred_score[pred], pred_mask[..., pred]
    _, pred_match, overlaps = compute_matches(
        gt_box, gt_class_id, gt_mask, pred_box, pred_class_id, pred_score, pred_mask,
        iou_threshold=iou_threshold, score_threshold=score_threshold)
    # compute_matches reports predictions in this order (descending score, its
    # own tie order); reorder ours the same way so captions line up.
    order = np.argsort(pred_score)[::-1]
    pred_box, pred_class_id = pred_box[order], pred_class_id[order]
    pred_score, pred_mask = pred_score[order], pred_mask[..., order]
    n_gt, n_pred = len(gt_class_id), len(pred_class_id)
    captions = [""] * n_gt
    for i in range(n_pred):
        match = int(pred_match[i])
        iou = overlaps[i, match] if match > -1 else (overlaps[i].max() if n_gt else 0.0)
        captions.append(f"{pred_score[i]:.2f} / {iou:.2f}")
    return display_instances(
        image, np.concatenate([gt_box, pred_box]).reshape(-1, 4),
        np.concatenate([gt_mask, pred_mask], axis=-1),
        np.concatenate([gt_class_id, pred_class_id]).astype(np.int64), class_names,
        ax=ax, show_bbox=show_box, show_mask=show_mask,
        colors=[GT_COLOR] * n_gt + [PRED_COLOR] * n_pred, captions=captions,
        title=title or "Ground Truth and Detections\n GT=green, pred=red, captions: score/IoU",
        save_path=save_path)


def plot_precision_recall(AP: float, precisions: np.ndarray, recalls: np.ndarray,
                          save_path: SavePath = None) -> str | None:
    """Plots a precision-recall curve.

    Args:
        AP: average precision at IoU 0.5, shown in the title.
        precisions: [K] precision values.
        recalls: [K] recall values.
        save_path: where to write a PNG.

    Returns:
        ``save_path`` when given, else None.
    """
    ax = _figure(save_path, None).add_subplot()
    ax.set_title(f"Precision-Recall Curve. AP@50 = {AP:.3f}")
    ax.set_xlim(0, 1.1)
    ax.set_ylim(0, 1.1)
    ax.plot(recalls, precisions)
    return _finish(ax.figure, save_path, True)


def plot_overlaps(gt_class_ids: np.ndarray, pred_class_ids: np.ndarray,
                  pred_scores: np.ndarray, overlaps: np.ndarray, class_names: list,
                  threshold: float = 0.5, save_path: SavePath = None) -> str | None:
    """Draws the IoU matrix of predictions (rows) against ground truth (columns).

    Cells above ``threshold`` are labelled "match" (same class, bold green text) or
    "wrong" (bold red text).

    Args:
        gt_class_ids: [G] ground-truth class ids; zeros (padding) are dropped.
        pred_class_ids: [P] predicted class ids, in the row order of ``overlaps``
            (descending score for :func:`mrcnn.metrics.compute_matches`); zeros dropped.
        pred_scores: [P] prediction confidences.
        overlaps: [P, G] IoUs.
        class_names: list of class names.
        threshold: IoU above which a cell counts as a match.
        save_path: where to write a PNG.

    Returns:
        ``save_path`` when given, else None.
    """
    gt_class_ids = gt_class_ids[gt_class_ids != 0]
    pred_class_ids = pred_class_ids[pred_class_ids != 0]
    ax = _figure(save_path, (12, 10)).add_subplot()
    ax.imshow(overlaps, interpolation="nearest", cmap="Blues", vmin=0, vmax=1)
    ax.set_yticks(np.arange(len(pred_class_ids)),
                  [f"{class_names[int(c)]} ({pred_scores[i]:.2f})"
                   for i, c in enumerate(pred_class_ids)])
    ax.set_xticks(np.arange(len(gt_class_ids)), [class_names[int(c)] for c in gt_class_ids],
                  rotation=90)
    for i, j in itertools.product(range(overlaps.shape[0]), range(overlaps.shape[1])):
        iou, label = overlaps[i, j], ""
        if iou > threshold:
            label = "match" if gt_class_ids[j] == pred_class_ids[i] else "wrong"
        color = {"match": "lime", "wrong": "red"}.get(label, "black" if iou > 0 else "grey")
        ax.text(j, i, f"{iou:.3f}\n{label}", ha="center", va="center", fontsize=9, color=color,
                fontweight="bold" if label else "normal")
    ax.set_xlabel("Ground Truth")
    ax.set_ylabel("Predictions")
    ax.figure.tight_layout()
    return _finish(ax.figure, save_path, True)


def draw_rois(image: np.ndarray, rois: np.ndarray, refined_rois: np.ndarray,
              mask: np.ndarray, class_ids: np.ndarray, class_names: list, limit: int = 10,
              save_path: SavePath = None) -> str | None:
    """Draws a random sample of ROIs, their refinements, classes and mask targets.

    Negative ROIs (class 0) are grey and dashed; positive ones also show the refined
    box (solid, joined by a line), the class name and the mask pasted into the ROI.

    Args:
        image: [H, W, 3] image.
        rois: [R, (y1, x1, y2, x2)] proposals in pixels.
        refined_rois: [R, (y1, x1, y2, x2)] proposals with the box deltas applied.
        mask: [R, mask_h, mask_w] mask targets in ROI coordinates.
        class_ids: [R] class ids, 0 for negatives.
        class_names: list of class names.
        limit: maximum number of ROIs drawn (sampled with ``np.random``).
        save_path: where to write a PNG of the image's size.

    Returns:
        ``save_path`` when given, else None.
    """
    from mrcnn.images import unmold_mask

    ids = np.arange(rois.shape[0])
    if len(ids) > limit:
        ids = np.random.choice(ids, limit, replace=False)
    n_pos = int(np.sum(class_ids > 0))
    ax, owned = _image_axes(image.shape, None, save_path, (12, 12))
    masked_image = image
    for roi_id, color in zip(ids, random_colors(len(ids))):
        class_id = class_ids[roi_id]
        y1, x1 = rois[roi_id][:2]
        _add_box(ax, rois[roi_id], color if class_id else "gray", alpha=1.0)
        if class_id:
            ry1, rx1 = refined_rois[roi_id][:2]
            _add_box(ax, refined_rois[roi_id], color, "solid", alpha=1.0)
            ax.add_line(lines.Line2D([x1, rx1], [y1, ry1], color=color))
            ax.text(rx1, ry1 + 8, class_names[class_id], color="w", size=11)
            full_mask = unmold_mask(mask[roi_id], rois[roi_id][:4].astype(np.int32), image.shape)
            masked_image = apply_mask(masked_image, full_mask, color)
    _show_image(ax, masked_image, f"Positive ROIs: {n_pos} / {rois.shape[0]}")
    print("Positive ROIs: ", n_pos)
    print("Negative ROIs: ", int(np.sum(class_ids == 0)))
    print(f"Positive Ratio: {n_pos / max(class_ids.shape[0], 1):.2f}")
    return _finish(ax.figure, save_path, owned)


def display_weight_stats(model) -> list:
    """Prints a table of min, max and standard deviation per weight tensor.

    Kernels (weights of 2 or more dimensions) whose values are all equal are flagged
    "*** dead?", and weights beyond +-1000 "*** Overflow?".

    Args:
        model: anything with ``.weights`` (e.g. a Keras model) or ``.keras_model``
            (a :class:`mrcnn.model.MaskRCNN`); each weight needs ``.name`` (``.path``
            is preferred when present) and numpy conversion.

    Returns:
        The table rows, header first, as lists of strings.
    """
    weights = model.weights if hasattr(model, "weights") else model.keras_model.weights
    table = [["WEIGHT NAME", "SHAPE", "MIN", "MAX", "STD"]]
    for weight in weights:
        name = getattr(weight, "path", None) or weight.name
        values = np.asarray(weight.numpy() if hasattr(weight, "numpy") else weight)
        alert = ""
        # Constant vectors (biases, BatchNorm statistics) are normal at initialisation.
        if values.ndim > 1 and values.min() == values.max():
            alert += " *** dead?"
        if np.abs(values).max() > 1000:
            alert += " *** Overflow?"
        table.append([name + alert, str(values.shape), f"{values.min():+9.4f}",
                      f"{values.max():+9.4f}", f"{values.std():+9.4f}"])
    widths = [max(len(row[c]) for row in table) for c in range(len(table[0]))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)))
    return table


def display_table(table: list) -> str:
    """Shows a table: as HTML in a notebook (IPython), else as aligned text.

    Args:
        table: rows, each a list of cells (anything ``str`` accepts); the first row is
            shown as any other, as in the classic function.

    Returns:
        The HTML of the table.
    """
    html = "".join("<tr>" + "".join(f"<td>{html_escape(str(cell))}</td>" for cell in row)
                   + "</tr>" for row in table)
    html = f"<table>{html}</table>"
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display
    except ImportError:
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        display(HTML(html))
    else:
        cells = [[str(cell) for cell in row] for row in table]
        widths = [max(len(row[c]) for row in cells if c < len(row))
                  for c in range(max(map(len, cells), default=0))]
        for row in cells:
            print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)))
    return html
