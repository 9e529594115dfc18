"""Datasets that ship with the package: ``shapes`` (synthetic, generated on the fly)."""
