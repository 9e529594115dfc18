"""A one-line progress bar on stderr (no Keras import, so data-side code can use it)."""
from __future__ import annotations

import sys
import time


class Progress:
    """Redraws ``label [#####.....] done/total s/item`` in place; silent for one item.

    Args:
        total: number of items.
        label: text before the bar.
        enabled: False makes every update a no-op (a ``verbose=0`` switch).
    """

    def __init__(self, total: int, label: str, enabled: bool = True):
        self.total, self.label, self.start = total, label, time.perf_counter()
        self.enabled = enabled and total > 1

    def update(self, done: int) -> None:
        """Shows ``done`` of ``total`` items finished; ends the line at the last one."""
        if not self.enabled:
            return
        filled = 30 * done // self.total
        rate = (time.perf_counter() - self.start) / max(done, 1)
        end = "\n" if done == self.total else ""
        print(f"\r{self.label} [{'#' * filled}{'.' * (30 - filled)}] {done}/{self.total} "
              f"{rate:.2f} s/item", end=end, file=sys.stderr, flush=True)
