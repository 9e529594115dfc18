"""Installs the `mrcnn` package: Mask R-CNN for TensorFlow 2 / Keras 3."""
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"',
                    (HERE / "mrcnn" / "__init__.py").read_text()).group(1)

setup(
    name="mrcnn",
    version=VERSION,
    description="Mask R-CNN instance segmentation for TensorFlow 2 / Keras 3 "
                "(classic MatterPort API and weight files)",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["mrcnn", "mrcnn.*"]),
    python_requires=">=3.10",
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3.0",
        "numpy",
        "scipy",
        "scikit-image",
        "pycocotools",
        "matplotlib",
        "h5py",
        # TensorFlow no longer brings it; train() writes TensorBoard logs.
        "tensorboard",
        # mrcnn.track_metrics: HOTA, MOTSA / sMOTSA, IDF1 of tracks.
        "trackeval",
    ],
    extras_require={"test": ["pytest", "albumentations"]},
    entry_points={"console_scripts": ["mrcnn=mrcnn.cli:main"]},
)
