"""The listing's set of hashes, pure: Fingerprints say once that a hash is new, make room ahead, and hold little."""

from __future__ import annotations

import tracemalloc
import uuid

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


def test_the_listing_holds_at_most_half_the_memory_per_row_of_two_python_sets() -> None:
    """Two Python sets of 64-bit hashes held about 138 bytes a row (issue 18); the flat arrays 24 to 48."""
    keys = [hash((str(uuid.UUID(int=n)), "a.example.com")) for n in range(30_000)]
    tracemalloc.start()
    try:
        rows, sessions = Fingerprints(), Fingerprints()
        for key in keys:
            rows.add(key)
            sessions.add(key >> 1)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert held / len(keys) <= 138 / 2
