"""Public Hypothesis strategies for resident KV claims (docs/model.md §2-§6), for testing runtimes and checkers.

What they generate, smallest first so that Hypothesis shrinks towards tiny pools and short traces:

- :func:`cache_identities` — ``cache_identity`` strings (model, revision, dtype, block size);
- :func:`claims` — a :class:`~kvclaims.runtime.workload.ClaimSpec` on a prefix of ``blocks`` blocks;
- :func:`active_requests` — a :class:`~kvclaims.runtime.workload.RequestSpec` that fits the pool;
- :func:`workloads` — pool size, resident prefixes with optional claims, active requests;
- :func:`pressured_workloads` — one claimed prefix and an active request that must touch it;
- :func:`vllm_workloads` — workloads for the vLLM harness (``vllm:stock|plugin``): small pools,
  resident prefixes each with a declared claim, active requests of whole 16-token blocks;
- :func:`traces` — event lists valid by construction: a correct MicroRuntime policy's trace;
- :func:`violating_traces` — a valid trace with one :class:`Mutation` applied, which breaks exactly
  one named rule (``MUTATIONS`` lists them, with the rule and the status the model gives it);
- :func:`malformed_kvt` / :func:`malformed_jsonl` — byte-level corruptions of well-formed traces, for
  parser robustness (every one must read as events or as an InputError with a location).

Example, a checker under test (any function from events to rule ids)::

    from hypothesis import given
    from kvclaims.fuzz import strategies as kst

    @given(kst.violating_traces())
    def test_my_checker_finds_the_rule(case):
        assert case.mutation.rule in my_checker(case.events)

Nothing here does I/O; the trace writers are only used to render text for the malformed-input
strategies.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hypothesis import assume
from hypothesis import strategies as st

from kvclaims import spec as spec_mod
from kvclaims.check.verdict import UNKNOWN, VIOLATION
from kvclaims.runtime import policies as P
from kvclaims.runtime.micro import run
from kvclaims.runtime.vocabulary import NAMES as N
from kvclaims.runtime.workload import (
    ATTENTION_MODES,
    SLIDING_WINDOW,
    ClaimSpec,
    PrefixSpec,
    RequestSpec,
    Workload,
)
from kvclaims.trace.model import Event

__all__ = [
    "CORRECT_POLICIES",
    "MUTATIONS",
    "MutatedTrace",
    "Mutation",
    "active_requests",
    "cache_identities",
    "claims",
    "malformed_jsonl",
    "malformed_kvt",
    "policies",
    "pressured_workloads",
    "traces",
    "violating_traces",
    "vllm_workloads",
    "workloads",
]

SPEC = spec_mod.load()
OUTCOMES: tuple[str, ...] = tuple(sorted(SPEC.offload_outcome_events))

# Every correct MicroRuntime policy, with the parameter variants that change its behaviour.
CORRECT_POLICIES: tuple[P.Policy, ...] = tuple(P.Policy(name) for name in P.POLICIES) + (
    P.Policy(P.HARD_EXCLUDE, defer_attempts=2),
    P.Policy(P.EXPIRING, defer_attempts=1),
    P.Policy(P.SOFT_PRIORITY, free_order=P.HEAD_FIRST),
    P.Policy(P.RESIDENT_RESERVE, reserve_blocks=4),
)


def policies() -> st.SearchStrategy[P.Policy]:
    """A correct MicroRuntime policy (one of :data:`CORRECT_POLICIES`)."""
    return st.sampled_from(CORRECT_POLICIES)


def cache_identities() -> st.SearchStrategy[str]:
    """A ``cache_identity``: what two KV blocks must share to be interchangeable (docs/model.md §3)."""
    word = st.from_regex(r"[a-z][a-z0-9\-]{0,11}", fullmatch=True)
    return st.builds(
        lambda model, rev, dtype, bs: f"{model}@{rev}/{dtype}/block{bs}",
        word, st.from_regex(r"[0-9a-f]{7}", fullmatch=True),
        st.sampled_from(("bf16", "fp16", "fp8", "fp32")), st.sampled_from((16, 32, 64, 128)))


@st.composite
def claims(draw: st.DrawFn, blocks: int, claim_id: str = "claim:p0") -> ClaimSpec:
    """A claim on a prefix of `blocks` blocks: predicate ``leading_prefix_at_least(1..blocks)``,
    protected or best effort, a value, an optional TTL, an optional injected restore failure."""
    return ClaimSpec(
        claim_id,
        draw(st.integers(1, blocks)),
        protected=draw(st.sampled_from((True, False))),
        predicted_value=float(draw(st.integers(1, 3))),
        duration_steps=draw(st.none() | st.integers(0, 3)),
        restore_fails=draw(st.booleans()),
        failure_outcome=draw(st.sampled_from(OUTCOMES)),
    )


@st.composite
def active_requests(draw: st.DrawFn, usable: int, request_id: str = "r0",
                    prefix_ids: Sequence[str] = ()) -> RequestSpec:
    """An active request whose live KV fits a pool of `usable` blocks: a chunk schedule, an
    attention mode (docs/model.md §2), future-reuse intent, optionally reusing a claimed prefix."""
    attention = draw(st.sampled_from(ATTENTION_MODES))
    chunks = tuple(draw(st.lists(st.integers(1, usable), min_size=1, max_size=4)))
    window = draw(st.integers(max(chunks), max(usable, max(chunks)))) \
        if attention == SLIDING_WINDOW else None
    reuse = draw(st.booleans())
    reuses: str | None = None
    if prefix_ids:
        reuses = draw(st.none() | st.sampled_from(tuple(prefix_ids)))
    r = RequestSpec(request_id, chunks, attention, window, reuse, reuses)
    if r.max_live > usable:  # full attention accumulates: cut the schedule to what fits
        kept: list[int] = []
        for c in chunks:
            if sum(kept) + c > usable:
                break
            kept.append(c)
        r = RequestSpec(request_id, tuple(kept) or (usable,), future_reuse_requested=reuse,
                        reuses=reuses)
    return r


@st.composite
def workloads(draw: st.DrawFn, max_usable: int = 24, max_prefixes: int = 3,
              max_requests: int = 3) -> Workload:
    """A workload the MicroRuntime models (``Workload.check`` passes). Pools start at one block and
    prefixes at one block, so shrinking reaches traces of a handful of events."""
    usable = draw(st.integers(1, max_usable))
    prefixes: list[PrefixSpec] = []
    room = usable
    for i in range(draw(st.integers(0, max_prefixes))):
        if room <= 0:
            break
        blocks = draw(st.integers(1, room))
        room -= blocks
        claim = draw(st.none() | claims(blocks, f"claim:p{i}"))
        prefixes.append(PrefixSpec(f"p{i}", blocks, claim))
    ids = [p.prefix_id for p in prefixes]
    requests = tuple(draw(active_requests(usable, f"r{j}", ids))
                     for j in range(draw(st.integers(1, max_requests))))
    return Workload(usable, tuple(prefixes), requests)


@st.composite
def pressured_workloads(draw: st.DrawFn, max_usable: int = 12) -> Workload:
    """One claimed prefix and an active request large enough that, unprotected, it breaks the
    claim's predicate (tail-first freeing loses the tail first); then a request reusing the prefix.
    Under soft priority the claim is harmed; under exclusion the request is refused."""
    usable = draw(st.integers(2, max_usable))
    blocks = draw(st.integers(1, usable - 1))
    required = draw(st.integers(1, blocks))
    claim = ClaimSpec("claim:p0", required, duration_steps=draw(st.none() | st.just(1)))
    need = draw(st.integers(usable - required + 1, usable))
    requests = [RequestSpec("r0", (need,))]
    if draw(st.booleans()):
        requests.append(RequestSpec("r1", (1,), reuses="p0"))
    return Workload(usable, (PrefixSpec("p0", blocks, claim),), tuple(requests))


@st.composite
def vllm_workloads(draw: st.DrawFn, max_usable: int = 16, max_prefixes: int = 3,
                   max_requests: int = 3) -> Workload:
    """A workload for the vLLM harness (``vllm:stock``, ``vllm:plugin``;
    kvclaims.runtime.vllm.fuzz_adapter): a pool of ``usable`` blocks (2..max_usable; vLLM's null
    block comes on top), 1..max_prefixes resident prefixes that fit the pool together, each with a
    declared claim (``leading_prefix_at_least(1..blocks)``; protected — the adapter's mode — or
    best effort), and 1..max_requests active requests of 1..usable blocks, each optionally
    starting with a resident prefix's tokens (a prefix-cache hit) followed by fresh blocks.

    Only what the harness drives is drawn: the chunk schedule is one chunk (vLLM chunks prefills
    itself), attention is full, no TTL, no restore failure. Lists and numbers shrink towards one
    resident prefix of one block, one active request as large as the pool, and a pool of two
    blocks: the smallest workload in which an unprotected prefix is evicted."""
    usable = draw(st.integers(2, max_usable))
    sizes = draw(st.lists(st.integers(1, usable - 1), min_size=1, max_size=max_prefixes))
    prefixes: list[PrefixSpec] = []
    room = usable - 1  # leave at least one block for an active request
    for i, blocks in enumerate(sizes):
        if blocks > room:
            break
        room -= blocks
        required = draw(st.integers(1, blocks))
        protected = i == 0 or draw(st.booleans())
        prefixes.append(PrefixSpec(f"p{i}", blocks,
                                   ClaimSpec(f"claim:p{i}", required, protected=protected)))
    # A request is drawn as the blocks it leaves free (`spare`, shrinking to 0: a request as large
    # as the pool), so one request alone is the pressure and the others can be shrunk away.
    reqs = draw(st.lists(st.tuples(st.integers(0, usable - 1),
                                   st.none() | st.integers(0, len(prefixes) - 1)),
                         min_size=1, max_size=max_requests))
    requests: list[RequestSpec] = []
    for j, (spare, reuse) in enumerate(reqs):
        total, reuses = usable - spare, None
        if reuse is not None and prefixes[reuse].blocks < total:
            reuses = prefixes[reuse].prefix_id
            total -= prefixes[reuse].blocks
        requests.append(RequestSpec(f"r{j}", (total,), reuses=reuses))
    return Workload(usable, tuple(prefixes), tuple(requests), run_id="vllm-fuzz")


@st.composite
def traces(draw: st.DrawFn, policy: P.Policy | st.SearchStrategy[P.Policy] | None = None,
           workload: st.SearchStrategy[Workload] | None = None) -> list[Event]:
    """A trace valid by construction: a correct MicroRuntime policy run on a generated workload,
    with the claims' ``cache_identity`` (when present) rewritten to a drawn one. The checker must
    find it conformant."""
    pol = policy if isinstance(policy, P.Policy) else draw(
        policies() if policy is None else policy)
    wl = draw(workloads() if workload is None else workload)
    events = list(run(wl, pol).events)
    if any("cache_identity" in e.fields for e in events):
        ident = draw(cache_identities())
        events = [_with(e, cache_identity=ident) if "cache_identity" in e.fields else e
                  for e in events]
    return events


# ---- mutations that break one named rule ---------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Mutation:
    """A trace edit that breaks exactly one rule: `rule` (spec/rules.toml id) gets `status`
    (``violation``, or ``unknown`` for evidence rules); `policy` produces traces it applies to."""

    name: str
    rule: str
    status: str
    policy: P.Policy
    apply: Callable[[list[Event]], list[Event] | None]  # None: not applicable to this trace
    what: str = ""


@dataclass(frozen=True, slots=True)
class MutatedTrace:
    events: list[Event]
    mutation: Mutation
    original: list[Event]


def _with(e: Event, **fields: Any) -> Event:
    return Event(e.kind, {**e.fields, **fields}, e.line, e.column)


def _renumber(events: list[Event], gap_at: int | None = None) -> list[Event]:
    """Rewrite event_sequence 1..n (skipping one number before `gap_at`), keep other fields."""
    out = []
    for i, e in enumerate(events):
        if "event_sequence" in e.fields:
            seq = i + 1 + (1 if gap_at is not None and i >= gap_at else 0)
            e = _with(e, event_sequence=seq)
        out.append(Event(e.kind, e.fields, i + 1, 1))
    return out


def _first(events: list[Event], kind: str) -> int | None:
    return next((i for i, e in enumerate(events) if e.kind == kind), None)


def _drop_harm(events: list[Event]) -> list[Event] | None:
    i = _first(events, N.harmed)
    if i is None or not any(e.kind == N.victim for e in events[i + 1:]):
        return None
    rest = events[i + 1:]
    # later post-release loss reports would then be out of order too: keep only the loss silent
    rest = [e for e in rest if e.kind != N.lost_after_release]
    return _renumber(events[:i] + rest)


def _post_hoc(events: list[Event]) -> list[Event] | None:
    i = _first(events, N.accepted)
    if i is None:
        return None
    return events[:i] + [_with(events[i], claim_registration=N.post_hoc)] + events[i + 1:]


def _harm_twice(events: list[Event]) -> list[Event] | None:
    i = _first(events, N.harmed)
    if i is None:
        return None
    j = next((k for k in range(i + 1, len(events)) if events[k].kind == N.lost_after_release),
             None)
    if j is None:
        return None
    harm = _with(events[i], physical_block_id=events[j].get("physical_block_id"))
    return _renumber(events[:j] + [harm] + events[j + 1:])


def _other_prefix(events: list[Event]) -> list[Event] | None:
    i = _first(events, N.materialized)
    if i is None:
        return None
    e = events[i]
    return events[:i] + [_with(e, prefix_id=f"{e.get('prefix_id')}:other")] + events[i + 1:]


def _shortfall(events: list[Event]) -> list[Event] | None:
    i = _first(events, N.refused)
    if i is None or not events[i].get("blocking_claim_ids"):
        return None
    e = events[i]
    return events[:i] + [_with(e, capacity_shortfall_blocks=e.get("capacity_shortfall_blocks", 0)
                               + 1)] + events[i + 1:]


def _smear(events: list[Event]) -> list[Event] | None:
    i = _first(events, N.refused)
    if i is None or not events[i].get("blocking_claim_ids"):
        return None
    e = events[i]
    ids = sorted({*e.get("blocking_claim_ids"), "claim:bystander"})
    return events[:i] + [_with(e, blocking_claim_ids=ids)] + events[i + 1:]


def _recompute(events: list[Event]) -> list[Event] | None:
    i = _first(events, N.restored)
    if i is None:
        return None
    source = SPEC.values.get("recompute_source", "fallback_recompute")
    e = _with(events[i], restoration_source=source, cache_tier_from=source,
              restored_from_offload_tier=False)
    return events[:i] + [e] + events[i + 1:]


def _gap(events: list[Event]) -> list[Event] | None:
    if len(events) < 2 or "event_sequence" not in events[0].fields:
        return None
    return _renumber(events, gap_at=len(events) // 2)


def _unknown_event(events: list[Event]) -> list[Event] | None:
    # after the last block materialization: inside a run of block events it would split the run
    i = max((k for k, e in enumerate(events) if e.kind == N.block_materialized), default=None)
    if i is None or _first(events, N.materialized) is None:
        return None
    claim_id = events[_first(events, N.materialized) or 0].get("claim_id")
    extra = Event("kvclaims_fuzz_unnamed_event", {"claim_id": claim_id, "event_sequence": 0})
    return _renumber(events[:i + 1] + [extra] + events[i + 1:])


def _mutations() -> tuple[Mutation, ...]:
    rules = SPEC.rules

    def r(rid: str) -> str:
        return rules[rid].id  # KeyError: the spec lost a rule a mutation breaks

    soft, hard = P.Policy(P.SOFT_PRIORITY), P.Policy(P.HARD_EXCLUDE)
    return (
        Mutation("drop_harm", r("R-no-silent-loss"), VIOLATION, soft, _drop_harm,
                 "the harm report before a predicate-breaking loss is removed"),
        Mutation("post_hoc_registration", r("R-acceptance"), VIOLATION, soft, _post_hoc,
                 "the acceptance says claim_registration post_hoc"),
        Mutation("harm_twice", r("R-harm"), VIOLATION, soft, _harm_twice,
                 "a post-release loss is reported as harm again"),
        Mutation("identity_change", r("R-identity"), VIOLATION, soft, _other_prefix,
                 "the materialization names another prefix than the acceptance"),
        Mutation("wrong_shortfall", r("R-attribution"), VIOLATION, hard, _shortfall,
                 "a refusal's capacity_shortfall_blocks is one too many"),
        Mutation("smeared_attribution", r("R-attribution"), VIOLATION, hard, _smear,
                 "a refusal names a claim that holds no protected blocks"),
        Mutation("restore_from_recompute", r("R-offload"), VIOLATION, P.Policy(P.OFFLOADABLE),
                 _recompute, "a restoration says it came from recomputation"),
        Mutation("sequence_gap", r("R-stream"), UNKNOWN, soft, _gap,
                 "event_sequence skips a number halfway through"),
        Mutation("unknown_event", r("R-vocabulary"), UNKNOWN, soft, _unknown_event,
                 "an event the spec does not name follows the materialization"),
    )


MUTATIONS: dict[str, Mutation] = {m.name: m for m in _mutations()}


@st.composite
def violating_traces(draw: st.DrawFn, mutation: str | Mutation | None = None) -> MutatedTrace:
    """A valid trace (from the mutation's policy on :func:`pressured_workloads`) with one mutation
    applied: the model says `mutation.rule` has status `mutation.status`, and no other rule is
    violated. `mutation` defaults to any of :data:`MUTATIONS`."""
    m = (mutation if isinstance(mutation, Mutation) else MUTATIONS[mutation]) if mutation \
        else draw(st.sampled_from(tuple(MUTATIONS.values())))
    original = list(run(draw(pressured_workloads()), m.policy).events)
    mutated = m.apply(original)
    assume(mutated is not None)
    assert mutated is not None
    return MutatedTrace(mutated, m, original)


# ---- malformed inputs ----------------------------------------------------------------------------
_NASTY = st.sampled_from([b"", b"\x00", b"\xff\xfe", b"\xc3", b"\r", b"\n", b"\r\n", b" ", b"\t",
                          b"#", b"=", b"\"", b"\\", b"{", b"}", b"[", b"]", b",", b":", b"..",
                          b"1e309", b"-0", b"NaN", b"null", b"true", b"9" * 40, b"kvtrace 2",
                          b"kvtrace 1", b"\xe2\x80\xae", b"\xed\xa0\x80", b"()", b"(", b"@"])


@st.composite
def _corrupt(draw: st.DrawFn, data: bytes) -> bytes:
    """Apply 1-3 byte-level edits: delete, insert, replace, duplicate or swap lines, truncate."""
    for _ in range(draw(st.integers(1, 3))):
        n = len(data)
        op = draw(st.sampled_from(("insert", "delete", "replace", "truncate", "dup_line",
                                   "swap_lines", "flip")))
        at = draw(st.integers(0, n))
        if op == "insert":
            data = data[:at] + draw(_NASTY | st.binary(max_size=6)) + data[at:]
        elif op == "delete":
            data = data[:at] + data[at + draw(st.integers(1, 16)):]
        elif op == "replace":
            data = data[:at] + draw(_NASTY | st.binary(min_size=1, max_size=4)) + data[at + 1:]
        elif op == "truncate":
            data = data[:at]
        elif op == "flip" and n:
            i = min(at, n - 1)
            data = data[:i] + bytes([data[i] ^ (1 << draw(st.integers(0, 7)))]) + data[i + 1:]
        else:
            lines = data.split(b"\n")
            i = draw(st.integers(0, len(lines) - 1))
            j = draw(st.integers(0, len(lines) - 1))
            if op == "dup_line":
                lines.insert(j, lines[i])
            else:
                lines[i], lines[j] = lines[j], lines[i]
            data = b"\n".join(lines)
    return data


def _kvt_bytes(events: list[Event]) -> bytes:
    from kvclaims.trace.write import write_kvt

    out = io.StringIO()
    write_kvt(events, out, spec=SPEC)
    return out.getvalue().encode()


def _jsonl_bytes(events: list[Event]) -> bytes:
    from kvclaims.trace.write import write_jsonl

    out = io.StringIO()
    write_jsonl(events, out)
    return out.getvalue().encode()


def well_formed_kvt() -> st.SearchStrategy[bytes]:
    """A valid trace rendered as ``.kvt`` text (bytes)."""
    return traces(workload=workloads(max_usable=8)).map(_kvt_bytes)


def well_formed_jsonl() -> st.SearchStrategy[bytes]:
    """A valid trace rendered as JSON Lines (bytes)."""
    return traces(workload=workloads(max_usable=8)).map(_jsonl_bytes)


def malformed_kvt() -> st.SearchStrategy[bytes]:
    """A ``.kvt`` trace with 1-3 byte-level corruptions (may happen to stay well-formed)."""
    return well_formed_kvt().flatmap(_corrupt)


def malformed_jsonl() -> st.SearchStrategy[bytes]:
    """A JSON Lines trace with 1-3 byte-level corruptions (may happen to stay well-formed)."""
    return well_formed_jsonl().flatmap(_corrupt)
