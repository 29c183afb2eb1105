"""`ser-ray bench ...`: speed figures as ratios against a baseline measured in the same run.

One module per stage: scan, features, models, train, search. Each prints readable lines and
ends with one JSON line of its figures.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def seconds(action: Callable[[], object]) -> float:
    """Wall time of one call."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start
