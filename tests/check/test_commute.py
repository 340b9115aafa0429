"""Batches decided without the solver (check/commute.py, docs/partial.md "Batches decided without
the solver"): the reduced decision equals the full encoding and every order's replay.

Small generated traces with batches (two claims, one hard, their blocks, other blocks, harms,
releases, allocations for a few requests, some carrying the pool size), so that batches commute,
conflict through a block, a claim, a prefix or a request, or read the pool. For each:

- the Z3 engine with the reduction (`partial.decide`) and without it (`reduce=False`, every batch
  encoded) give the same verdict, the same answer over the orders, and the same findings per
  rule when the trace's findings do not depend on a witness's choice;
- THE decision (`run.decide_trace`: a trace whose batches all commute never reaches the solver)
  gives the verdict of brute force: every order of every batch replayed, violation when all
  violate, inconclusive when some do, or when some order leaves a rule unknown.
"""

from __future__ import annotations

import io
import itertools
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from kvclaims import spec as spec_mod
from kvclaims.check import commute, partial, replay
from kvclaims.check.state import RuleIds
from kvclaims.check.verdict import CONFORMANT, INCONCLUSIVE, UNKNOWN, VIOLATION
from kvclaims.run import Options, decide_trace
from kvclaims.trace.dsl import read_partial_kvt

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuzz"))
from fuzz_budget import hsettings  # noqa: E402 - tests/fuzz holds the shared budget helper

SPEC = spec_mod.load()

PRELUDE = [
    "kvtrace 1",
    "claim claim:h accepted mode=hard_exclude required=2 predicate=leading_prefix_at_least(2) "
    "prefix=ph usable=16",
    "block 1 materialized claim=claim:h prefix=ph position=0",
    "block 2 materialized claim=claim:h prefix=ph position=1",
    "claim claim:h materialized",
    "claim claim:s accepted mode=soft_priority required=2 predicate=leading_prefix_at_least(2) "
    "prefix=ps usable=16",
    "block 3 materialized claim=claim:s prefix=ps position=0",
    "block 4 materialized claim=claim:s prefix=ps position=1",
    "claim claim:s materialized",
]


@st.composite
def line(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["victim", "victim", "victim", "materialized", "harmed",
                                 "released"]))
    if kind == "victim":
        b = draw(st.integers(1, 8))
        req = draw(st.sampled_from(["", " request=r0", " request=r1", " request=r2"]))
        reason = draw(st.sampled_from(["cached_prefix_reuse", "free_uncached"]))
        usable = draw(st.sampled_from(["", "", " usable=16"]))
        return f"block {b} victim{req} reason={reason}{usable}"
    if kind == "materialized":
        b = draw(st.integers(5, 8))
        owner = draw(st.sampled_from([("claim:h", "ph"), ("claim:s", "ps")]))
        pos = draw(st.integers(0, 1))
        return f"block {b} materialized claim={owner[0]} prefix={owner[1]} position={pos}"
    c = draw(st.sampled_from(["claim:h", "claim:s"]))
    return f"claim {c} {kind}"


@st.composite
def batched_trace(draw: st.DrawFn) -> str:
    lines = list(PRELUDE)
    for _ in range(draw(st.integers(1, 3))):
        body = draw(st.lists(line(), min_size=1, max_size=4))
        if len(body) > 1 and draw(st.booleans()):
            lines += ["batch {", *body, "}"]
        else:
            lines += body
    return "\n".join(lines) + "\n"


def _trace(text: str):
    trace = read_partial_kvt(io.StringIO(text), "gen.kvt", spec=SPEC)
    batches = [(s, e) for s, e, _ in trace.batches(SPEC) if e - s >= 2]
    return trace, batches


def _every_order(trace, batches) -> str:
    """Brute force: the verdict over every admissible order, each replayed as written."""
    events = list(trace.events)
    perms = [list(itertools.permutations(range(s, e))) for s, e in batches]
    verdicts = set()
    for choice in itertools.product(*perms):
        order = list(range(len(events)))
        for (s, e), p in zip(batches, choice):
            order[s:e] = p
        linear = partial.witness_events(events, order, SPEC, SPEC.order.batch_fields, {})
        verdicts.add(replay.check_events(SPEC, linear).verdict)
    if verdicts == {VIOLATION}:
        return VIOLATION
    if VIOLATION in verdicts or INCONCLUSIVE in verdicts:
        return INCONCLUSIVE
    return CONFORMANT


def _per_rule(rep) -> set[tuple[str, str | None, str]]:
    return {(f.rule, f.claim_id, f.status) for f in rep.findings}


@hsettings(60, 400)
@given(batched_trace())
def test_reduced_decision_equals_the_full_encoding(text):
    trace, batches = _trace(text)
    full = partial.decide(SPEC, trace.events, batches=batches, reduce=False)
    reduced = partial.decide(SPEC, trace.events, batches=batches)
    assert reduced.verdict == full.verdict, text
    # Which orders violate: the reduced trace names only the conflicting batches, so a trace
    # whose batches all commute reads as totally ordered; otherwise the answer is the same.
    how_full = full.extra.get("linearizations")
    how_reduced = reduced.extra.get("linearizations")
    if how_reduced is not None:
        assert how_reduced == how_full, text
    else:
        assert how_full in (None, "all_conform", "none_violate", "all_violate"), text
    # Findings per rule, where no witness's choice picks them: every order gives the same.
    if how_full in (None, "all_conform", "none_violate") or how_reduced is None:
        assert _per_rule(reduced) == _per_rule(full), text


@hsettings(60, 400)
@given(batched_trace())
def test_the_decision_equals_every_order_replayed(text):
    trace, batches = _trace(text)
    rep = decide_trace(SPEC, trace, Options())
    assert rep.verdict == _every_order(trace, batches), text
    if not commute.conflicting(SPEC, trace.events, batches):
        # no solver: the written order's report, every finding a fact of every order
        assert rep.extra.get("linearizations") is None, text
        assert not any(f.status == UNKNOWN and "written order" in f.message
                       for f in rep.findings), text


def _kvt(body: list[str]) -> str:
    return "\n".join([*PRELUDE, *body]) + "\n"


def test_batches_of_other_blocks_commute():
    trace, batches = _trace(_kvt(["batch {", "block 5 victim request=r0 reason=free_uncached",
                                  "block 6 victim request=r1 reason=free_uncached", "}"]))
    assert batches and commute.conflicting(SPEC, trace.events, batches) == []


def test_what_makes_a_batch_conflict():
    """Each way two events can share state: one block, one claim (through its blocks), one
    request, the pool size, a claim event in the batch."""
    cases = {
        "block": ["block 5 victim reason=free_uncached", "block 5 materialized claim=claim:s "
                  "prefix=ps position=0"],
        "claim": ["block 1 victim reason=cached_prefix_reuse",
                  "block 2 victim reason=cached_prefix_reuse"],
        "prefix": ["block 3 victim reason=cached_prefix_reuse",
                   "block 6 materialized claim=claim:s prefix=ps position=1"],
        "request": ["block 5 victim request=r0 reason=free_uncached",
                    "block 6 victim request=r0 reason=free_uncached"],
        "pool": ["block 5 victim reason=free_uncached usable=16",
                 "block 6 victim reason=free_uncached"],
        "claim event": ["claim claim:h harmed", "block 6 victim reason=free_uncached"],
    }
    for why, body in cases.items():
        trace, batches = _trace(_kvt(["batch {", *body, "}"]))
        assert commute.conflicting(SPEC, trace.events, batches) == batches, why


def test_an_unsorted_order_field_conflicts():
    """R-stream reads a batch's order fields sorted: written unsorted, the batch goes to Z3."""
    def body(a: int, b: int) -> list[str]:
        return ["batch {", f"block 5 victim reason=free_uncached seq={a}",
                f"block 6 victim reason=free_uncached seq={b}", "}"]
    sorted_, _ = _trace(_kvt(body(1, 2)))
    unsorted, batches = _trace(_kvt(body(2, 1)))
    assert commute.conflicting(SPEC, sorted_.events, batches) == []
    assert commute.conflicting(SPEC, unsorted.events, batches) == batches


def test_a_declared_deferral_bound_stops_the_reduction():
    from kvclaims.check.progress import DeferBound
    trace, batches = _trace(_kvt(["batch {", "block 5 victim request=r0 reason=free_uncached",
                                  "block 6 victim request=r1 reason=free_uncached", "}"]))
    bound = DeferBound("steps", 2, "--defer-steps")
    assert commute.conflicting(SPEC, trace.events, batches, (bound,)) == batches


def test_only_the_conflicting_part_of_a_batch_is_ordered_by_the_solver():
    """A batch whose victims of the hard claim's blocks conflict (one claim), beside allocations
    of other blocks: those lead, in the written order, pinned (no solver variable), and the
    decision is that of the full encoding."""
    body = ["batch {", "block 5 victim request=r0 reason=free_uncached",
            "block 1 victim reason=cached_prefix_reuse",
            "block 6 victim request=r1 reason=free_uncached",
            "block 2 victim reason=cached_prefix_reuse", "block 7 victim reason=free_uncached",
            "}"]
    trace, batches = _trace(_kvt(body))
    (s, e), = batches
    assert commute.conflicting(SPEC, trace.events, batches) == batches
    leaders = commute.batch_leaders(SPEC, trace.events, batches)
    assert sorted(leaders) == [s, s + 2, s + 4]
    full = partial.decide(SPEC, trace.events, batches=batches, reduce=False)
    reduced = partial.decide(SPEC, trace.events, batches=batches)
    assert (reduced.verdict, reduced.extra["linearizations"]) == (
        full.verdict, full.extra["linearizations"]) == (VIOLATION, "all_violate")
    assert _per_rule(reduced) == _per_rule(full)
    assert reduced.verdict == _every_order(trace, batches)
    # the leaders come first in the witness, in the written order
    assert reduced.extra["violating"][s:s + 3] == [s, s + 2, s + 4]


@st.composite
def commuting_batch(draw: st.DrawFn) -> str:
    """The prelude and one batch of allocations of distinct other blocks for distinct requests."""
    blocks = draw(st.lists(st.integers(5, 8), min_size=2, max_size=4, unique=True))
    body = [f"block {b} victim request=r{k} reason=free_uncached" for k, b in enumerate(blocks)]
    return _kvt(["batch {", *body, "}"])


@st.composite
def numbered_trace(draw: st.DrawFn) -> str:
    """A batched trace whose events carry `event_sequence`, a batch's numbers sometimes written
    out of order (R-stream reads them sorted: such a batch must conflict)."""
    lines = draw(st.one_of(batched_trace(), commuting_batch())).splitlines()
    out, seq, batch = [lines[0]], 0, None
    for ln in lines[1:]:
        if ln == "batch {":
            batch = []
            out.append(ln)
        elif ln == "}":
            nums = list(range(seq + 1, seq + len(batch) + 1))
            nums = draw(st.permutations(nums))
            out += [f"{b} seq={n}" for b, n in zip(batch, nums)]
            seq += len(batch)
            out.append(ln)
            batch = None
        elif batch is not None:
            batch.append(ln)
        else:
            seq += 1
            out.append(f"{ln} seq={seq}")
    return "\n".join(out) + "\n"


@hsettings(40, 300)
@given(numbered_trace())
def test_reduced_decision_equals_the_full_encoding_with_order_fields(text):
    trace, batches = _trace(text)
    full = partial.decide(SPEC, trace.events, batches=batches, reduce=False)
    reduced = partial.decide(SPEC, trace.events, batches=batches)
    assert reduced.verdict == full.verdict, text
    assert reduced.extra.get("linearizations") in (None, full.extra.get("linearizations")), text
    stream = RuleIds(SPEC).stream
    assert ({(f.status, f.event_index) for f in reduced.findings if f.rule == stream}
            == {(f.status, f.event_index) for f in full.findings if f.rule == stream}), text
