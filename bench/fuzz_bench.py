"""Fuzzing benchmarks (issue 7 acceptance), results recorded in bench/fuzz.md.

    .venv/bin/python bench/fuzz_bench.py faults  [--examples 2000] [--seed 0]
    .venv/bin/python bench/fuzz_bench.py correct [--examples 5000] [--seed 0]
    .venv/bin/python bench/fuzz_bench.py parsers [--examples 100000] [--seed 0]

`faults`: every fault switch under every policy it applies to, searched from a fixed seed until the
first failure (budget --examples); prints examples-to-find, shrunk trace size, re-check.
`correct`: every correct policy variant, --examples workloads each; any failure is printed.
`parsers`: --examples generated malformed inputs (half .kvt, half JSON Lines) through the readers
and the whole check pipeline; any exception other than a located InputError is a crash.
Prints a markdown table; exit 1 if an acceptance criterion fails.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

from kvclaims.fuzz import strategies as kst
from kvclaims.fuzz.driver import search
from kvclaims.runtime import policies as P

# Policies under which a fault switch can never fire (the policy never takes the faulty path):
# demote_on_conflict demotes until the request fits and never refuses; resident_reserve with its
# default reserve (the largest request) never needs to refuse, so it is searched with reserve 0.
NEVER_FIRES = {(f, P.DEMOTE_ON_CONFLICT) for f in (P.SMEARED_ATTRIBUTION, P.WRONG_SHORTFALL,
                                                    P.WRONG_FREE)}
POLICY_ARGS = {P.RESIDENT_RESERVE: ",reserve_blocks=0"}


def policy_name(p: P.Policy) -> str:
    args = []
    if p.defer_attempts:
        args.append(f"defer_attempts={p.defer_attempts}")
    if p.reserve_blocks is not None:
        args.append(f"reserve_blocks={p.reserve_blocks}")
    if p.free_order != P.TAIL_FIRST:
        args.append(f"free_order={p.free_order}")
    return "micro:" + ",".join([p.name, *args])


def faults(examples: int, seed: int) -> int:
    bad = 0
    print("| fault | policy | rule | found after (examples) | shrunk events | re-checks | "
          "shrink steps | s |")
    print("|---|---|---|---|---|---|---|---|")
    for f in P.FAULTS.values():
        for pol in f.policies:
            if (f.name, pol) in NEVER_FIRES:
                print(f"| {f.name} | {pol} | {f.rule} | cannot fire (policy never refuses) "
                      "| | | | |")
                continue
            rt = f"micro:{pol}{POLICY_ARGS.get(pol, '')}+{f.name}"
            t = time.perf_counter()
            with tempfile.TemporaryDirectory() as out:
                s = search(rt, examples=examples, seed=seed, out=out, max_failures=1)
            dt = time.perf_counter() - t
            if not s.failures:
                bad += 1
                print(f"| {f.name} | {pol} | {f.rule} | NOT FOUND in {s.examples} | | | | "
                      f"{dt:.1f} |")
                continue
            x = s.failures[0]
            ok = x.rule in f.rules and x.rechecked and (x.kvt_events or 99) <= 12
            bad += not ok
            print(f"| {f.name} | `{rt}` | {x.rule} | {x.found_after} | {x.kvt_events} | "
                  f"{'yes' if x.rechecked else 'NO'} | {x.shrink_steps} | {dt:.1f} |", flush=True)
    return 1 if bad else 0


def correct(examples: int, seed: int) -> int:
    bad = 0
    print("| policy | examples | failures | s | examples/s |")
    print("|---|---|---|---|---|")
    for p in kst.CORRECT_POLICIES:
        rt = policy_name(p)
        s = search(rt, examples=examples, seed=seed, max_shrinks=200)
        bad += bool(s.failures)
        fails = ", ".join(f"{f.rule}: {f.message}" for f in s.failures) or "none"
        print(f"| `{rt}` | {s.examples} | {fails} | {s.seconds:.1f} | "
              f"{s.examples / s.seconds:.0f} |", flush=True)
    return 1 if bad else 0


def parsers(examples: int, seed: int) -> int:
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed
    from hypothesis import strategies as st

    from kvclaims.fuzz.inputs import check_input

    counts: dict[str, int] = {}
    crashes: list[str] = []

    @hseed(seed)
    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(st.one_of(kst.malformed_kvt().map(lambda b: ("kvt", b)),
                     kst.malformed_jsonl().map(lambda b: ("jsonl", b))))
    def run(case: tuple[str, bytes]) -> None:
        fmt, data = case
        try:
            outcome = check_input(data, fmt)
        except AssertionError as err:
            crashes.append(f"{fmt}: {err}")
            outcome = "crash"
        key = f"{fmt}:{outcome}"
        counts[key] = counts.get(key, 0) + 1

    t = time.perf_counter()
    run()
    dt = time.perf_counter() - t
    total = sum(counts.values())
    print(f"{total} inputs in {dt:.0f} s ({total / dt:.0f}/s), seed {seed}")
    print("| format:outcome | inputs |")
    print("|---|---|")
    for k in sorted(counts):
        print(f"| {k} | {counts[k]} |")
    for c in crashes[:20]:
        print("CRASH", c)
    return 1 if crashes else 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=("faults", "correct", "parsers"))
    ap.add_argument("--examples", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    default = {"faults": 2000, "correct": 5000, "parsers": 100_000}[a.what]
    return {"faults": faults, "correct": correct, "parsers": parsers}[a.what](
        a.examples or default, a.seed)


if __name__ == "__main__":
    sys.exit(main())
