"""The checker's mutation suite, CI sample (issue 15 item 3; whole set: bench/mutation_bench.py).

From every conformant seed (corpus, litmus, vLLM, KV-RM, traces/rules/ok-*, traces/partial,
MicroRuntime runs of every correct policy, each re-declared in every mode), every operator of
mutation_ops yields the edits its rule forbids. CI decides a fixed-seed sample of them, a bounded
number per (rule, mode), through the public decision path, and requires every one to be
non-conformant (violation or inconclusive) unless claimed equivalent with a reason recorded in
bench/mutation.md, at most 2% of a rule's mutants. The structure of the suite is checked on the
whole set: every rule and mode of the spec is covered, and an operator only yields mutants where
its rule applies.
"""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

import pytest

import mutation_kill as K
import mutation_ops as O
import mutation_seeds as S
from kvclaims.check.verdict import CONFORMANT, INCONCLUSIVE
from mutation_equivalent import EQUIVALENT
from mutation_known import GAPS
from mutation_view import SPEC, bundle_of

PER_CELL = 6  # sampled mutants per (rule, mode)
SAMPLE_SEED = 15
BENCH = Path(__file__).resolve().parents[2] / "bench" / "mutation.md"
IN_BUNDLES = frozenset(r for m in SPEC.modes.values() for r in m.rules)


@pytest.fixture(scope="module")
def decider():
    d = S.Decider()
    yield d
    d.close()


@pytest.fixture(scope="module")
def seeds(decider, artifacts):
    return S.conformant_seeds(decider)


@pytest.fixture(scope="module")
def everything(seeds):
    return [m for s in seeds.kept for m in O.mutants(s.name, s.events, s.skews)]


def test_every_rule_of_the_spec_has_operators() -> None:
    # A rule added to spec/rules.toml fails here until an operator breaks it.
    assert set(O.OPERATORS) == set(SPEC.rules)
    assert all(O.OPERATORS[r] for r in SPEC.rules)
    for rule, ops in O.OPERATORS.items():
        assert all(op.rule == rule for op in ops)


def test_every_mode_has_conformant_seeds(seeds) -> None:
    modes = {m for s in seeds.kept for m in _modes(s)}
    decidable = {name for name, m in SPEC.modes.items() if not m.undecidable}
    assert decidable <= modes
    # A mode that cannot be witnessed from a trace is never conformant, so it seeds nothing.
    for name, m in SPEC.modes.items():
        if m.undecidable:
            assert name not in modes
            assert any(n.endswith(f"@{name}") and v == INCONCLUSIVE for n, v in seeds.rejected)


def _modes(seed: S.Seed) -> set[str]:
    from mutation_view import View

    return {c.mode for c in View(seed.events).claims.values() if c.mode}


def test_every_rule_yields_mutants_in_every_mode_it_applies_to(everything) -> None:
    cells = {(m.rule, m.mode) for m in everything}
    for rule in SPEC.rules:
        assert any(r == rule for r, _ in cells), f"no mutant of {rule}"
    for name, mode in SPEC.modes.items():
        if mode.undecidable:
            continue
        for rule in mode.rules:
            assert (rule, name) in cells, f"no mutant of {rule} in mode {name}"


def test_operators_only_target_claims_whose_bundle_has_the_rule(everything) -> None:
    for m in everything:
        if m.rule in IN_BUNDLES and m.mode in SPEC.modes:
            assert m.rule in bundle_of(m.mode), m.id


def test_mutants_differ_from_their_seed(seeds, everything) -> None:
    by_name = {s.name: s.events for s in seeds.kept}
    for m in everything:
        assert m.events != by_name[m.seed], m.id


def _sample(everything: list[O.Mutant], rule: str) -> list[O.Mutant]:
    """Up to PER_CELL mutants of `rule` per mode: one of each operator first, then others,
    drawn with a fixed seed."""
    cells: dict[str, list[O.Mutant]] = defaultdict(list)
    for m in everything:
        if m.rule == rule:
            cells[m.mode].append(m)
    rng = random.Random(f"{SAMPLE_SEED}:{rule}")
    out: list[O.Mutant] = []
    for mode in sorted(cells):
        group = cells[mode]
        by_op: dict[str, list[O.Mutant]] = defaultdict(list)
        for m in group:
            by_op[m.operator].append(m)
        picked = [rng.choice(ms) for _, ms in sorted(by_op.items())]
        rest = [m for m in group if m not in picked]
        picked += rng.sample(rest, max(0, min(len(rest), PER_CELL - len(picked))))
        out += picked
    return out


@pytest.mark.parametrize("rule", list(SPEC.rules))
def test_sampled_mutants_are_killed(decider, everything, rule: str) -> None:
    sample = _sample(everything, rule)
    assert sample, f"no mutant of {rule}"
    outcomes = [K.decide(decider, m) for m in sample]
    invalid = [o.mutant.id + ": " + str(o.error) for o in outcomes if o.error is not None]
    assert not invalid, invalid
    survivors = [f"{o.mutant.id} ({o.verdict})" for o in outcomes
                 if not o.killed and not o.equivalent and not o.known]
    assert not survivors, "\n".join(survivors)
    row = K.by_rule(K.tally(outcomes))[rule]
    assert row.killed + row.equivalent + row.known == row.total == len(sample)
    # A reported checker gap none of whose sampled mutants survives was fixed: remove it.
    for gap in GAPS:
        hit = [o for o in outcomes if gap.covers(o.mutant)]
        assert not hit or any(o.known for o in hit), f"{gap.rule}: gap fixed, remove it"


def test_equivalent_claims_are_reasoned_and_rare(everything) -> None:
    text = " ".join(BENCH.read_text(encoding="utf-8").split())
    for gap in GAPS:
        assert gap.reason in text, "known gap's reason not in bench/mutation.md"
    per_rule: dict[str, int] = defaultdict(int)
    for m in everything:
        per_rule[m.rule] += 1
    claimed: dict[str, int] = defaultdict(int)
    for mid, reason in EQUIVALENT.items():
        assert reason.strip() and " ".join(reason.split()) in text, \
            f"{mid}: reason not in bench/mutation.md"
        rule = mid.split("|")[0]
        claimed[rule] += 1
    for rule, n in claimed.items():
        assert n <= K.MAX_EQUIVALENT * per_rule[rule], rule


def test_a_conformant_seed_is_not_counted_as_killed(decider, seeds) -> None:
    # The kill criterion itself can fail: the unmutated seed is conformant, not killed.
    s = seeds.kept[0]
    m = O.Mutant("(none)", "identity", s.name, "(none)", "no edit", s.events, s.skews)
    o = K.decide(decider, m)
    assert o.verdict == CONFORMANT and not o.killed
