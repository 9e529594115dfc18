"""The shapes dataset and config now live in the package, in :mod:`mrcnn.datasets.shapes`;
this module keeps ``from samples.shapes.shapes import ShapesConfig, ShapesDataset`` working."""
from mrcnn.datasets.shapes import (BUFFER, MAX_OVERLAP, SHAPES, SOURCE,  # noqa: F401
                                   ShapesConfig, ShapesDataset, random_image, random_shape,
                                   shape_mask)

__all__ = ["SOURCE", "SHAPES", "BUFFER", "MAX_OVERLAP", "ShapesConfig", "ShapesDataset",
           "random_shape", "random_image", "shape_mask"]
