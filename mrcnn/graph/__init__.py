"""The TensorFlow side of Mask R-CNN: Keras layers and the tf functions they use.

Shape shorthand used in this package: B = images in the batch, A = anchors,
N = ROIs (proposals or detections) per image, NC = classes including the
background, C = feature channels. Boxes are (y1, x1, y2, x2); inside the graph
they are normalized (see ``box_ops.norm_boxes``).
"""
