"""The identity of a block in a runtime's KV event stream, and its live copies (docs/model.md §5
runtime streams; docs/formats.md "Block identity, copies and stream consistency").

A block is the same block only when every dimension of its identity matches: the publishing
instance and data-parallel rank (the Batch's), the KV cache group, the tier (the event's medium
through the format's media table), and the hash (which the runtimes already namespace by cache
salt, extra keys and LoRA; the join compares those where the format carries them). This module
decides one thing, nothing about claims: how many copies of each identity are live after each
store, remove and clear, by the format's declared copy semantics (spec/streams.toml `copies`):

- "per_copy" (vLLM: physical blocks are not deduplicated, BlockRemoved is per copy): copies are
  counted. The count is an interval [lo, hi] (hi None: unbounded), exact from the stream's start;
  a first store seen without the stream's start may have copies from before it (hi unbounded),
  and a repeated store that may be a report of reused blocks adds to hi only. A remove leaving
  lo >= 1 keeps the block; hi == 0 loses it; anything else is unsettled (unknown, never a pass).
- "deduplicated" (SGLang): one live block per identity. A store of a live block, and (once the
  stream's start was seen) a remove of a block that is not live, are inconsistencies the caller
  reports as stream findings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# What a store or a remove did to an identity's copies.
NEW = "new"  # not live before, live now
AGAIN = "again"  # live before, stored again (a copy; for a deduplicating runtime inconsistent)
KEPT = "kept"  # a remove that leaves at least one copy
GONE = "gone"  # a remove that leaves none
UNSETTLED = "unsettled"  # a remove after which the stream cannot tell whether a copy is left
ABSENT = "absent"  # a remove of a block that is not live


@dataclass(frozen=True, slots=True)
class BlockKey:
    """A block's identity as the ledger counts it (the salt and LoRA are in the hash)."""

    instance: str | None
    dp_rank: int | None
    group: int
    tier: str
    hash: Any


@dataclass(slots=True)
class _Count:
    lo: int
    hi: int | None  # None: unbounded


@dataclass
class CopyLedger:
    """Live copies per :class:`BlockKey`, by a format's copy semantics. `from_start`: whether
    the stream was seen from its first batch (set by the caller; cleared by a gap)."""

    deduplicated: bool
    from_start: bool = True
    _live: dict[BlockKey, _Count] = field(default_factory=dict)

    def live(self, key: BlockKey) -> bool:
        c = self._live.get(key)
        return c is not None and (c.hi is None or c.hi > 0)

    def settled_live(self, key: BlockKey) -> bool:
        c = self._live.get(key)
        return c is not None and c.lo > 0

    def store(self, key: BlockKey, *, maybe_report: bool = False) -> str:
        """One BlockStored of `key`. `maybe_report`: the store may report a reused block instead
        of adding a copy (vLLM's kv_cache_report_mode = "full")."""
        c = self._live.get(key)
        if c is None or (c.hi is not None and c.hi == 0):
            exact = self.deduplicated or self.from_start
            self._live[key] = _Count(1, 1 if exact else None)
            return NEW
        if self.deduplicated:
            self._live[key] = _Count(1, 1)
            return AGAIN
        if not maybe_report:
            c.lo += 1
        if c.hi is not None:
            c.hi += 1
        return AGAIN

    def remove(self, key: BlockKey) -> str:
        """One BlockRemoved of `key` (one copy)."""
        c = self._live.get(key)
        if c is None or (c.hi is not None and c.hi == 0):
            self._live.pop(key, None)
            return ABSENT
        c.lo = max(0, c.lo - 1)
        if c.hi is not None:
            c.hi -= 1
        if self.deduplicated or c.hi == 0:
            del self._live[key]
            return GONE
        if c.lo > 0:
            return KEPT
        return UNSETTLED

    def clear(self, instance: str | None, tiers: frozenset[str]) -> list[BlockKey]:
        """AllBlocksCleared on `instance`: every identity of that instance on `tiers` goes."""
        gone = [k for k in self._live if k.instance == instance and k.tier in tiers]
        for k in gone:
            del self._live[k]
        return gone

    def __len__(self) -> int:
        return len(self._live)
