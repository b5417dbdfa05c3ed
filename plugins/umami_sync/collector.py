"""The garbage collector's passes spared the objects alive before a stage runs.

A task starts with a few hundred thousand objects alive (Airflow and the product as imported) that live as long as
the process. Every full pass of the collector walks all of them, and the rows a stage reads set off passes all the
time: measured with the bench's profile, those passes took a quarter of the listing's CPU and a third of stage 1's.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator


@contextmanager
def collector_spared() -> Iterator[None]:
    """Leave the objects alive on entry out of the collector's passes until exit (``gc.freeze``); what the block
    makes is collected as usual."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
