"""``python -m mrcnn``: the same as the ``mrcnn`` command."""
import sys

from mrcnn.cli import main

sys.exit(main())
