"""Detection demo: the successor of the classic demo.ipynb, as a script.

Runs the COCO model (mask_rcnn_coco.h5, 81 classes) on image files and writes
one annotated PNG per image plus a COCO-style results.json::

    python samples/demo.py --weights weights/mask_rcnn_coco.h5 --image images/ --out out/

It is ``mrcnn detect --config coco`` with the COCO class names; every option of
``mrcnn detect --help`` works here too (``--weights`` defaults to ``coco``, i.e.
weights/mask_rcnn_coco.h5, and the error says where to download it if missing).
"""
import os
import sys

# Run from a checkout without installing: the repository root holds the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mrcnn import cli  # noqa: E402


def main(argv=None) -> int:
    """Runs ``mrcnn detect --config coco`` with `argv` (default: the command line)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(arg == "--weights" or arg.startswith("--weights=") for arg in argv):
        argv += ["--weights", "coco"]
    return cli.main(["detect", "--config", "coco", *argv])


if __name__ == "__main__":
    sys.exit(main())
