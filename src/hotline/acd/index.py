"""Indexes that let a routing decision touch only the few candidates that matter.

Ready agents of a (queue, tier) and waiting calls of a (queue, tier) live in heaps ordered by
the queue's strategy. Removal is O(1): the item's ``epoch`` is bumped and its stale entries are
skipped when they reach the top (and compacted when they pile up).
"""

from __future__ import annotations

from heapq import heapify, heappop, heappush
from random import Random


class Indexed:
    """Anything kept in a ``LazyHeap``: an entry is live while its epoch equals the item's."""

    __slots__ = ("epoch",)

    def __init__(self) -> None:
        self.epoch = 0


class LazyHeap:
    __slots__ = ("_heap", "_seq", "size")

    def __init__(self) -> None:
        self._heap: list[tuple[float, float, int, int, Indexed]] = []
        self._seq = 0
        self.size = 0  # live entries

    def push(self, k1: float, k2: float, item: Indexed) -> None:
        self._seq += 1
        heappush(self._heap, (k1, k2, self._seq, item.epoch, item))
        self.size += 1

    def peek(self) -> Indexed | None:
        heap = self._heap
        while heap:
            entry = heap[0]
            item = entry[4]
            if item.epoch == entry[3]:
                return item
            heappop(heap)
        return None

    def discard(self, item: Indexed) -> None:
        """Account for ``item`` leaving; the caller has already bumped its epoch."""
        self.size -= 1
        if len(self._heap) > 2 * self.size + 64:
            self._heap = [e for e in self._heap if e[4].epoch == e[3]]
            heapify(self._heap)

    def count_before(self, k1: float, k2: float) -> int:
        """Live entries ordered before (k1, k2): O(n), for the rare caller who needs it."""
        n = 0
        for e in self._heap:
            if e[4].epoch == e[3] and (e[0], e[1]) < (k1, k2):
                n += 1
        return n

    def live(self) -> list[Indexed]:
        """Live items, best first."""
        return [e[4] for e in sorted(self._heap) if e[4].epoch == e[3]]


class RandomIndex:
    """Uniform choice among live items; swap-remove keeps both operations O(1)."""

    __slots__ = ("_items", "_pos", "_rng")

    def __init__(self, rng: Random) -> None:
        self._items: list[Indexed] = []
        self._pos: dict[Indexed, int] = {}
        self._rng = rng

    @property
    def size(self) -> int:
        return len(self._items)

    def push(self, k1: float, k2: float, item: Indexed) -> None:
        self._pos[item] = len(self._items)
        self._items.append(item)

    def peek(self) -> Indexed | None:
        items = self._items
        if not items:
            return None
        return items[int(self._rng.random() * len(items))]

    def discard(self, item: Indexed) -> None:
        pos = self._pos.pop(item)
        last = self._items.pop()
        if last is not item:
            self._items[pos] = last
            self._pos[last] = pos

    def live(self) -> list[Indexed]:
        return list(self._items)
