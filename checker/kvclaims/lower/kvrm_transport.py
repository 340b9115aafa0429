"""KV-RM merge-staged transport: coalescing a descriptor's mapping into transfer groups (docs/model.md §10).

A mapping is a set of (source block, staging slot) pairs, each staging slot used once. A transfer
group is a run of pairs contiguous in both source and destination. Merge-staged coalescing stages
the pairs by destination and merges each pair into the previous group when it continues it on both
sides; because every slot has one source, each pair has at most one successor (s+1, d+1), so the
groups are exactly the maximal runs and their number is the optimum. The baselines: one transfer
per block, and a greedy coalescer that merges in pager order (by source) without staging.
A mechanism of the model, not of one runtime: the KV-RM runtime (kvclaims.runtime.kvrm) and the
arbiter proof (kvclaims.lower.kvrm_proof) both use it.
"""

from __future__ import annotations

from collections.abc import Iterable

Pair = tuple[int, int]
Group = tuple[tuple[int, ...], tuple[int, ...]]


def _runs(pairs: Iterable[Pair]) -> list[Group]:
    groups: list[tuple[list[int], list[int]]] = []
    for s, d in pairs:
        if groups and groups[-1][0][-1] + 1 == s and groups[-1][1][-1] + 1 == d:
            groups[-1][0].append(s)
            groups[-1][1].append(d)
        else:
            groups.append(([s], [d]))
    return [(tuple(a), tuple(b)) for a, b in groups]


def merge_staged(pairs: Iterable[Pair]) -> list[Group]:
    """Optimal: stage by destination, merge runs contiguous on both sides."""
    return _runs(sorted(set(pairs), key=lambda p: p[1]))


def greedy_unsorted(pairs: Iterable[Pair]) -> list[Group]:
    """Baseline: merge in pager order (by source block), no staging by destination."""
    return _runs(sorted(set(pairs)))


def one_per_block(pairs: Iterable[Pair]) -> list[Group]:
    return [((s,), (d,)) for s, d in sorted(set(pairs), key=lambda p: p[1])]


def optimal_count(pairs: Iterable[Pair]) -> int:
    """The number of maximal runs contiguous in both source and destination."""
    ps = set(pairs)
    return sum(1 for s, d in ps if (s - 1, d - 1) not in ps)


def brute_force_min(pairs: Iterable[Pair]) -> int:
    """Minimum number of disjoint groups, each contiguous on both sides, covering `pairs`
    (exhaustive over set partitions; small inputs only)."""
    ps = sorted(set(pairs), key=lambda p: p[1])

    def valid(block: list[Pair]) -> bool:
        b = sorted(block, key=lambda p: p[1])
        return all(q[0] == p[0] + 1 and q[1] == p[1] + 1 for p, q in zip(b, b[1:]))

    best = len(ps)

    def go(i: int, blocks: list[list[Pair]]) -> None:
        nonlocal best
        if len(blocks) >= best:
            return
        if i == len(ps):
            best = len(blocks)
            return
        for blk in blocks:
            blk.append(ps[i])
            if valid(blk):
                go(i + 1, blocks)
            blk.pop()
        blocks.append([ps[i]])
        go(i + 1, blocks)
        blocks.pop()

    go(0, [])
    return best if ps else 0
