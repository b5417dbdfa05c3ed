"""The listing's set of hashes, pure: Fingerprints say once that a hash is new, make room ahead, and hold little."""

from __future__ import annotations

import tracemalloc
import uuid

from tests.test_readme import readme_bytes_per_row
from umami_sync.umami.fingerprints import RESERVE_LIMIT, Fingerprints


def test_fingerprints_say_once_that_a_hash_is_new_and_keep_every_hash_as_they_grow() -> None:
    hashes = [hash((str(uuid.UUID(int=n)), "a.example.com")) for n in range(5000)] + [0, 1, -1, -(2**63), 2**63 - 1]
    fingerprints = Fingerprints(capacity=8)

    assert all(fingerprints.add(key) for key in hashes[:-4])  # 0 and 1 share a place: 0 is the empty mark
    assert fingerprints.add(-1) and fingerprints.add(-(2**63)) and fingerprints.add(2**63 - 1)
    assert not any(fingerprints.add(key) for key in hashes)


def test_fingerprints_made_room_for_ahead_keep_what_they_held_and_say_the_same() -> None:
    hashes = [hash((str(uuid.UUID(int=n)), "a.example.com")) for n in range(5000)]
    fingerprints = Fingerprints(capacity=8)
    assert all(fingerprints.add(key) for key in hashes[:100])

    fingerprints.reserve(5000)
    room = len(fingerprints._slots)

    assert not any(fingerprints.add(key) for key in hashes[:100])
    assert all(fingerprints.add(key) for key in hashes[100:])
    assert len(fingerprints._slots) == room  # no rebuild on the way to the reserved size
    fingerprints.reserve(10**12)  # a count is the server's word: room is made for at most RESERVE_LIMIT
    assert len(fingerprints._slots) <= 2 * RESERVE_LIMIT


def test_the_listing_holds_the_memory_per_row_the_readme_gives() -> None:
    """Two 64-bit hashes a row in flat arrays one to two thirds full: 25 to 51 bytes a row as the list grows
    (CPython's array keeps a sixteenth spare), 35 on average over a doubling of its size; within the README's
    figure (two Python sets held 138, issue 18)."""
    keys = [hash((str(uuid.UUID(int=n)), "a.example.com")) for n in range(43_690)]
    per_row, samples = 0.0, 0
    tracemalloc.start()
    try:
        rows, sessions = Fingerprints(), Fingerprints()
        for count, key in enumerate(keys, 1):
            rows.add(key)
            sessions.add(key >> 1)
            if count > 21_845 and count % 64 == 0:  # a doubling of the list's size, from just after the arrays grew
                per_row, samples = per_row + tracemalloc.get_traced_memory()[0] / count, samples + 1
    finally:
        tracemalloc.stop()

    assert per_row / samples <= readme_bytes_per_row()
