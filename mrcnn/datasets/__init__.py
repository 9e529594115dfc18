"""Datasets that ship with the package: ``shapes`` (synthetic, generated on the fly) and
``moving_shapes`` (synthetic videos with an identity per object, for tracking)."""
