"""The paged KV pool and its free queue (docs/model.md §8, papers P1.9.1: vLLM's BlockPool order).

Decides which physical block an allocation takes next. Blocks are 1..usable (vLLM keeps block 0 as
its null block). The free queue holds never-cached blocks first, then cached blocks least recently
freed first; the runtime frees a finished request's blocks tail first, so a cached prefix loses its
tail before its head and positions 0-9 survive 60/70/80. Callers may exclude blocks (hard
exclusion) and push some blocks to the back (soft priority). No events here: the runtime reports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Content:
    """What a cached block holds: logical position `position` of object `owner`."""

    owner: str
    position: int

    @property
    def block_hash(self) -> str:
        return f"{self.owner}/{self.position}"


class Pool:
    """Free queue + cached content of `usable` blocks; in-use blocks are simply not queued."""

    def __init__(self, usable: int):
        self.usable = usable
        # dicts as ordered sets: insertion order is queue order
        self._uncached: dict[int, None] = dict.fromkeys(range(1, usable + 1))
        self._cached: dict[int, None] = {}
        self.content: dict[int, Content] = {}

    def queue(self, exclude: Iterable[int] = (),
              back: Callable[[int], tuple[float, ...] | None] | None = None) -> list[int]:
        """The free queue as the allocator sees it: excluded blocks left out; blocks for which
        `back` gives a key go after all others, ordered by that key (stable)."""
        ex = set(exclude)
        order = [b for b in self._uncached if b not in ex]
        order += [b for b in self._cached if b not in ex]
        if back is None:
            return order
        front = [b for b in order if back(b) is None]
        rest = [b for b in order if back(b) is not None]
        rest.sort(key=lambda b: back(b) or ())
        return front + rest

    def free_count(self, exclude: Iterable[int] = ()) -> int:
        ex = set(exclude)
        return sum(1 for b in self._uncached if b not in ex) + sum(
            1 for b in self._cached if b not in ex)

    def take(self, block: int) -> Content | None:
        """Allocate `block`: it leaves the free queue and its cached content is dropped."""
        if block in self._uncached:
            del self._uncached[block]
        elif block in self._cached:
            del self._cached[block]
        else:
            raise ValueError(f"block {block} is not free")
        return self.content.pop(block, None)

    def release(self, blocks: Iterable[int], contents: dict[int, Content] | None = None) -> None:
        """Free `blocks` in the given order; those with content stay cached (evictable)."""
        for b in blocks:
            c = (contents or {}).get(b)
            if c is None:
                self.content.pop(b, None)
                self._uncached[b] = None
            else:
                self.content[b] = c
                self._cached[b] = None

    def is_free(self, block: int) -> bool:
        return block in self._uncached or block in self._cached
