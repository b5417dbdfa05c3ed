"""The collector's passes spared the objects alive before a stage."""

from __future__ import annotations

import gc

from umami_sync.collector import collector_spared


def test_objects_alive_on_entry_are_frozen_until_exit_and_new_garbage_is_still_collected() -> None:
    before = [[n] for n in range(1000)]
    assert gc.get_freeze_count() == 0

    with collector_spared():
        frozen = gc.get_freeze_count()
        cycle: list[object] = []
        cycle.append(cycle)  # made inside: garbage the collector must still find
        del cycle
        collected = gc.collect()

    assert frozen >= len(before)
    assert collected >= 1
    assert gc.get_freeze_count() == 0


def test_the_objects_are_given_back_when_the_block_fails() -> None:
    try:
        with collector_spared():
            raise ValueError("the stage broke")
    except ValueError:
        pass

    assert gc.get_freeze_count() == 0
