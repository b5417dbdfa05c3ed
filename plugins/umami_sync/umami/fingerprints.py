"""A compact set of 64-bit hashes: what a listing (:mod:`umami_sync.umami.listing`) remembers of the rows and
sessions it read."""

from __future__ import annotations

from array import array

RESERVE_LIMIT = 1 << 20
"""The most members a listing makes room for up front (16 MB a set); a list's count is the server's word, so a
larger one grows as its rows come."""


class Fingerprints:
    """A set of 64-bit hashes kept in one flat array (open addressing, linear probing): 12 to 24 bytes a member,
    where a Python ``set`` of ints takes about 70 (the int objects and the set's slots).

    Written here: the standard library has no compact set of integers, and numpy (not a dependency of the
    product) would need a sorted array rewritten on every insert for the same add-or-find.
    """

    __slots__ = ("_free", "_mask", "_slots")

    def __init__(self, capacity: int = 1024) -> None:
        self._slots = _empty(capacity)  # 0 marks an empty slot; capacity is a power of two
        self._mask = capacity - 1
        self._free = _room(capacity)  # members it takes before it grows

    def add(self, key: int) -> bool:
        """Add ``key`` (a hash: a signed 64-bit int); False when it was there already."""
        slots, mask, key = self._slots, self._mask, key or 1  # 0 is the empty mark: it shares 1's place
        index = key & mask
        while held := slots[index]:
            if held == key:
                return False
            index = (index + 1) & mask
        slots[index] = key
        self._free -= 1
        if not self._free:
            self._grow()
        return True

    def reserve(self, members: int) -> None:
        """Make room for ``members`` in all (at most :data:`RESERVE_LIMIT`) before they come, so the array is not
        rebuilt on the way there."""
        capacity, members = len(self._slots), min(members, RESERVE_LIMIT)
        while 3 * members > 2 * capacity:
            capacity *= 2
        if capacity > len(self._slots):
            self._rehash(capacity)

    def _grow(self) -> None:
        self._rehash(2 * len(self._slots))

    def _rehash(self, capacity: int) -> None:
        """Move every member into an empty array of ``capacity`` slots (no member repeats: no compare)."""
        old, slots, mask = self._slots, _empty(capacity), capacity - 1
        members = 0
        for key in old:
            if key:
                members += 1
                index = key & mask
                while slots[index]:
                    index = (index + 1) & mask
                slots[index] = key
        self._slots, self._mask, self._free = slots, mask, _room(capacity) - members


def _empty(capacity: int) -> array[int]:
    """An array of ``capacity`` empty slots, made in place (``array("q", bytes(...))`` would hold its size twice
    while it is made)."""
    return array("q", [0]) * capacity


def _room(capacity: int) -> int:
    """How many members an array of ``capacity`` slots takes: at most two thirds full, so that probes stay short
    (it grows when one more would pass that)."""
    return 2 * capacity // 3 + 1
