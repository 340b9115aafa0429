"""The checker's mutation suite, whole set (issue 15 item 3), results recorded in bench/mutation.md.

    .venv/bin/python bench/mutation_bench.py [--no-corpus] [--rule R-harm ...] [--survivors N]

Builds every conformant seed (tests/mutation/mutation_seeds: corpus, litmus, vLLM, KV-RM,
traces/rules/ok-*, traces/partial, MicroRuntime runs of every correct policy, each claim-bearing
seed re-declared in every mode), applies every operator of tests/mutation/mutation_ops to each,
decides every mutant through kvclaims.run.check_path (engine auto) and prints the kill rate per
rule and mode, then per rule, then the survivors (up to --survivors of each rule, with the edit).
Exit 1 if a mutant survives outside the equivalent mutants and the known checker gaps
(tests/mutation/mutation_known.py), an operator wrote invalid input, or a rule has more than 2%
of its mutants claimed equivalent.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "mutation"))

import mutation_kill as K  # noqa: E402
import mutation_ops as O  # noqa: E402
import mutation_seeds as S  # noqa: E402
from mutation_view import SPEC  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-corpus", action="store_true")
    ap.add_argument("--rule", action="append")
    ap.add_argument("--survivors", type=int, default=5)
    args = ap.parse_args()
    t0 = time.perf_counter()
    decider = S.Decider()
    seeds = S.conformant_seeds(decider, with_corpus=not args.no_corpus)
    t1 = time.perf_counter()
    outcomes = []
    rules = tuple(args.rule) if args.rule else None
    for seed in seeds.kept:
        for m in O.mutants(seed.name, seed.events, seed.skews, rules):
            outcomes.append(K.decide(decider, m))
    t2 = time.perf_counter()
    rows = K.tally(outcomes)
    per_rule = K.by_rule(rows)
    print(f"seeds: {len(seeds.kept)} conformant ({len(seeds.rejected)} candidates not "
          f"conformant, not used: {dict(Counter(v for _, v in seeds.rejected))}); "
          f"mutants: {len(outcomes)}; seeds {t1 - t0:.0f} s, mutants {t2 - t1:.0f} s\n")
    print("Per rule and mode:\n")
    print(K.table(rows))
    print("\nPer rule:\n")
    print("| rule | mutants | killed | kill rate | targeted rule named | equivalent | known gap "
          "| other survivors | invalid |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for rule in SPEC.rules:
        r = per_rule.get(rule)
        if r is None:
            print(f"| {rule} | 0 | - | - | - | - | - | - | - |")
            continue
        print(f"| {rule} | {r.total} | {r.killed} | {100 * r.rate:.1f}% | {r.named} | "
              f"{r.equivalent} | {r.known} | {len(r.survivors)} | {len(r.invalid)} |")
    print("\nPer operator:\n")
    print("| rule | operator | what it edits | mutants | killed |")
    print("|---|---|---|---:|---:|")
    ops: dict[tuple[str, str], list[int]] = {}
    for o in outcomes:
        cell = ops.setdefault((o.mutant.rule, o.mutant.operator), [0, 0])
        cell[0] += 1
        cell[1] += o.killed
    for rule, table in O.OPERATORS.items():
        for op in table:
            total, killed = ops.get((rule, op.name), [0, 0])
            print(f"| {rule} | {op.name} | {op.what} | {total} | {killed} |")
    bad = 0
    for rule, r in sorted(per_rule.items()):
        for label, group in (("SURVIVOR", r.survivors), ("INVALID", r.invalid)):
            bad += len(group)
            for o in group[:args.survivors]:
                print(f"\n{label} {o.mutant.id}\n  verdict {o.verdict}; findings {o.rules}"
                      + (f"; error {o.error}" if o.error else ""))
            if len(group) > args.survivors:
                print(f"\n... and {len(group) - args.survivors} more {label.lower()}s of {rule}")
    known = [o for o in outcomes if o.known]
    if known:
        print(f"\nKnown checker gaps (tests/mutation/mutation_known.py): {len(known)} survivors")
        for o in known[:args.survivors]:
            print(f"  {o.mutant.id}")
    over = K.equivalent_within_limit(per_rule)
    for rule in over:
        print(f"\n{rule}: more than 2% of its mutants claimed equivalent")
    decider.close()
    return 1 if bad or over else 0


if __name__ == "__main__":
    sys.exit(main())
