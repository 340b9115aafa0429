"""Generate a .kvt trace with N claims, each of which loses a block silently (a violation).

Per claim: two free blocks allocated to a resident request, a soft_priority claim accepted on
them, both materialized, then one taken by another request with no harm event (R-no-silent-loss).
Seven events per claim; the pool is large enough that nothing else is lost. Used by
bench/report_bench.py for the report rendering curve. `python bench/gen_claims.py N OUT.kvt`.

`python bench/gen_claims.py --churn N OUT.kvt`: one hard claim on 8 blocks of a 64-block pool,
then N allocations of the other blocks by 16 requests in turn (none of them the claim's): the
long, conformant trace of the explain curve.
"""

from __future__ import annotations

import sys


def lines(n_claims: int):
    usable = 2 * n_claims + 8
    yield "kvtrace 1"
    for k in range(n_claims):
        a, b = 2 * k + 1, 2 * k + 2
        cid, pre = f"claim:bench-{k:06d}", f"prefix-{k:06d}"
        yield f"block {a} victim request=res-{k} reason=free_uncached usable={usable}"
        yield f"block {b} victim request=res-{k} reason=free_uncached usable={usable}"
        yield (f"claim {cid} accepted mode=soft_priority required=2 "
               f"predicate=leading_prefix_at_least(2) prefix={pre} usable={usable}")
        yield f"block {a} materialized claim={cid} prefix={pre} position=0"
        yield f"block {b} materialized claim={cid} prefix={pre} position=1"
        yield f"claim {cid} materialized"
        yield f"block {b} victim request=taker-{k} reason=cached_prefix_reuse usable={usable}"


def churn(n_events: int):
    usable = 64
    yield "kvtrace 1"
    for b in range(1, 9):
        yield f"block {b} victim request=resident reason=free_uncached usable={usable}"
    yield (f"claim claim:churn accepted mode=hard_exclude required=8 "
           f"predicate=leading_prefix_at_least(8) prefix=p usable={usable}")
    for b in range(1, 9):
        yield f"block {b} materialized claim=claim:churn prefix=p position={b - 1}"
    yield "claim claim:churn materialized"
    for k in range(max(0, n_events - 18)):
        yield (f"block {9 + k % (usable - 8)} victim request=r{k // 256 % 16} "
               f"reason=free_uncached usable={usable}")


def main() -> None:
    args = sys.argv[1:]
    gen = lines
    if args[0] == "--churn":
        gen = churn
        args = args[1:]
    n, out = int(args[0]), args[1]
    with open(out, "w", encoding="utf-8") as fh:
        for line in gen(n):
            fh.write(line + "\n")


if __name__ == "__main__":
    main()
