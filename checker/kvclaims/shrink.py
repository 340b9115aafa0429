"""Minimal counterexamples: shrink a trace violating a rule of docs/model.md §6 to a 1-minimal
sub-trace that still violates it (issue 4; the Hypothesis and Zeller ddmin tradition).

Deciding only: events and a deciding engine in, a :class:`ShrinkResult` out; no files, no
printing (`kvclaims shrink` in cli.py reads, writes and re-checks).

A *candidate* is a subset of the original events kept in their original order. It is
*interesting* when the engine's report on it has a VIOLATION finding of the target rule (the same
rule id; not necessarily at the same event or with the same message). The search:

1. the original trace is checked; the target is `rule`, else the rule of its first VIOLATION
   finding (findings are ordered by event index); no such violation is a :class:`ShrinkError`;
2. relevance cut: the replay decides in stream order (docs/model.md §5 order), so events after the
   target finding's event can matter only through a pending loss report settled at the end of a
   block group (docs/checking.md, the timing rule); the prefix ending at that event is tried
   first and kept only if the engine says it is still interesting;
3. ddmin (Zeller & Hildebrandt 2002) by complement removal: split the candidate into n chunks,
   keep the first complement that is interesting (n := max(n-1, 2)), else double n, until n is
   the candidate's size;
4. one-at-a-time: remove single events until no single removal is interesting (this pass is
   what the guarantee rests on; after a complete ddmin it costs only cache hits);
5. span: the first (last) kept event is replaced by a later (earlier) event of the same kind
   between it and its neighbour when the result stays interesting, then step 4 runs again;
   repeated until neither changes anything (each round lowers the count or the span, so it ends).

Guarantee when :attr:`ShrinkResult.minimal` is true: the kept sub-trace violates the rule and is
**1-minimal**: removing any single kept event gives a sub-trace that does not violate it (every
such sub-trace was checked). It is not claimed to be a globally smallest sub-trace (that search is
exponential, and the deciding function is not monotone); ties in count are broken only by step 5's
same-kind replacements, otherwise the first sub-trace found wins. With `max_checks` reached the
result is the smallest interesting sub-trace found so far and `minimal` is false.

Sequence numbers: a sub-trace keeping its original `event_sequence` values would have gaps, which
R-stream turns into `unknown` verdicts. Every candidate therefore has its `event_sequence` values
renumbered consecutively, starting from the original trace's first value, over the kept events
that carry one; fields naming another event's sequence number (`*_event_sequence`) are mapped to
the new number of that event when it is kept and left as recorded when it is not. Timestamps are
kept: the original order keeps them non-decreasing. `line` and `text` of a kept event still name
its original line, so findings on the result point back into the original file.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import msgspec

from kvclaims.check.verdict import VIOLATION, Report
from kvclaims.spec import Spec, SpecError
from kvclaims.trace.model import Event

Decide = Callable[[Sequence[Event]], Report]
Progress = Callable[[int, int], None]  # (checks performed, events in the smallest so far)

# The explicit-order field (docs/model.md §5); the same name the .kvt `@N` prefix carries.
SEQUENCE_FIELD = "event_sequence"


class ShrinkError(ValueError):
    """The trace cannot be shrunk for this rule: unknown rule, no events, or no such violation."""


@dataclass(frozen=True, slots=True)
class ShrinkResult:
    rule: str
    original_events: int
    # The kept events, in original order, as decided (event_sequence renumbered when present).
    events: tuple[Event, ...]
    # Their 0-based indices in the original event sequence.
    indices: tuple[int, ...]
    checks: int  # engine calls, the original's included
    minimal: bool  # every single-event removal was checked and loses the violation
    report: Report  # the engine's report on `events`
    renumbered: bool  # some kept event's (or reference to an) event_sequence was rewritten

    @property
    def span(self) -> int:
        """Last minus first original index of the kept events."""
        return self.indices[-1] - self.indices[0] if self.indices else 0

    @property
    def lines(self) -> tuple[int, ...]:
        """The original line of every kept event."""
        return tuple(e.line for e in self.events)


def violates(report: Report, rule: str) -> bool:
    return any(f.status == VIOLATION and f.rule == rule for f in report.findings)


class ShrinkInconclusive(Exception):
    """The engine could not decide a candidate (its report says the solver answered unknown,
    kvclaims.solver): whether it is interesting is unknown, so no result is 1-minimal or even
    trustworthy; the search stops (`kvclaims shrink` exits 3)."""


def undecided(report: Report) -> str | None:
    """Why the engine left `report` undecided (the Z3 engine's `solver` entry), else None."""
    why = report.extra.get("solver")
    return why if isinstance(why, str) else None


class _Budget(Exception):
    """`max_checks` engine calls were spent."""


class _Sequencer:
    """Builds a candidate's events, renumbering `event_sequence` (see the module docstring)."""

    def __init__(self, events: tuple[Event, ...], spec: Spec):
        if SEQUENCE_FIELD not in spec.fields:
            raise SpecError(f"shrinking needs field {SEQUENCE_FIELD} in fields.toml")
        self.events = events
        self.refs = tuple(n for n in spec.fields if n.endswith("_" + SEQUENCE_FIELD))
        self.numbered = [type(e.fields.get(SEQUENCE_FIELD)) is int for e in events]
        self.start = next(
            (e.fields[SEQUENCE_FIELD] for e, n in zip(events, self.numbered) if n), None
        )

    def build(self, indices: Sequence[int]) -> list[Event]:
        events = self.events
        if self.start is None:
            return [events[i] for i in indices]
        number: dict[int, int] = {}  # kept index -> its new sequence number
        renamed: dict[int, int] = {}  # original sequence number -> new (first holder wins)
        k = self.start
        for i in indices:
            if self.numbered[i]:
                number[i] = k
                renamed.setdefault(events[i].fields[SEQUENCE_FIELD], k)
                k += 1
        out = []
        for i in indices:
            ev = events[i]
            fields = ev.fields
            changed: dict[str, int] = {}
            if i in number and fields[SEQUENCE_FIELD] != number[i]:
                changed[SEQUENCE_FIELD] = number[i]
            for name in self.refs:
                v = fields.get(name)
                if type(v) is int and v in renamed and renamed[v] != v:
                    changed[name] = renamed[v]
            out.append(msgspec.structs.replace(ev, fields={**fields, **changed}) if changed else ev)
        return out


class _Search:
    def __init__(
        self,
        events: tuple[Event, ...],
        spec: Spec,
        decide: Decide,
        progress: Progress | None,
        max_checks: int | None,
    ):
        self.events = events
        self.kinds = [e.kind for e in events]
        self.sequencer = _Sequencer(events, spec)
        self.decide = decide
        self.progress = progress
        self.max_checks = max_checks
        self.rule = ""
        self.checks = 0
        self.cache: dict[tuple[int, ...], bool] = {}
        self.best: tuple[int, ...] = tuple(range(len(events)))
        self.reports: dict[tuple[int, ...], Report] = {}  # of interesting candidates only

    def check(self, indices: Sequence[int]) -> Report:
        if self.max_checks is not None and self.checks >= self.max_checks:
            raise _Budget
        self.checks += 1
        report = self.decide(self.sequencer.build(indices))
        why = undecided(report)
        if why is not None:
            raise ShrinkInconclusive(f"the engine could not decide a candidate of "
                                     f"{len(indices)} events ({why})")
        if self.progress is not None:
            self.progress(self.checks, len(self.best))
        return report

    def test(self, indices: Sequence[int]) -> bool:
        key = tuple(indices)
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        if not key:
            self.cache[key] = False  # an empty trace violates nothing
            return False
        report = self.check(key)
        ok = violates(report, self.rule)
        self.cache[key] = ok
        if ok:
            self.reports[key] = report
            if (len(key), key[-1] - key[0]) < (len(self.best), self.best[-1] - self.best[0]):
                self.best = key
        return ok

    # ---- the passes (module docstring, steps 2-5) -------------------------------------------
    def relevance_cut(self, c: list[int], at: int) -> list[int]:
        prefix = c[: at + 1]
        return prefix if len(prefix) < len(c) and self.test(prefix) else c

    def ddmin(self, c: list[int]) -> list[int]:
        n = 2
        while len(c) >= 2:
            chunks = _split(c, n)
            for i in range(len(chunks)):
                complement = [x for j, ch in enumerate(chunks) if j != i for x in ch]
                if self.test(complement):
                    c = complement
                    n = max(n - 1, 2)
                    break
            else:
                if n >= len(c):
                    break
                n = min(len(c), 2 * n)
        return c

    def one_at_a_time(self, c: list[int]) -> list[int]:
        changed = True
        while changed and len(c) >= 2:
            changed = False
            i = 0
            while i < len(c):
                candidate = c[:i] + c[i + 1 :]
                if self.test(candidate):
                    c = candidate
                    changed = True
                else:
                    i += 1
        return c

    def tighten(self, c: list[int]) -> list[int]:
        while len(c) >= 2:
            kinds = self.kinds
            moved = None
            last, before = c[-1], c[-2]
            for j in range(before + 1, last):  # nearest the neighbour first: the largest gain
                if kinds[j] == kinds[last] and self.test(c[:-1] + [j]):
                    moved = c[:-1] + [j]
                    break
            if moved is None:
                first, after = c[0], c[1]
                for j in range(after - 1, first, -1):
                    if kinds[j] == kinds[first] and self.test([j] + c[1:]):
                        moved = [j] + c[1:]
                        break
            if moved is None:
                return c
            c = self.one_at_a_time(moved)
        return c


def _split(c: list[int], n: int) -> list[list[int]]:
    """`c` in `n` contiguous chunks of near-equal size."""
    size, extra = divmod(len(c), n)
    out, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        out.append(c[start:end])
        start = end
    return out


def shrink(
    events: Sequence[Event],
    spec: Spec,
    *,
    rule: str | None = None,
    decide: Decide | None = None,
    progress: Progress | None = None,
    max_checks: int | None = None,
) -> ShrinkResult:
    """A 1-minimal sub-trace of `events` that still violates `rule` (module docstring).

    `decide` is the deciding function (default: kvclaims.run.decide_trace, as `check`);
    `progress` is called after every engine call with (checks so far, events in the smallest
    interesting sub-trace so far);
    `max_checks` bounds the engine calls. Raises :class:`ShrinkError` when `rule` is not a rule
    of spec/rules.toml, the trace is empty, or the engine finds no violation of the rule in it.
    """
    evs = tuple(events)
    if rule is not None and rule not in spec.rules:
        raise ShrinkError(f"unknown rule {rule!r}; one of: {', '.join(sorted(spec.rules))}")
    if not evs:
        raise ShrinkError("empty trace: no events")
    if max_checks is not None and max_checks < 1:
        raise ShrinkError("max_checks must be at least 1")
    if decide is None:
        from kvclaims.run import decide_trace

        def decide(candidate: Sequence[Event]) -> Report:
            return decide_trace(spec, candidate)

    search = _Search(evs, spec, decide, progress, max_checks)
    everything = list(range(len(evs)))
    # The original is decided as written (not renumbered): its verdict is the one `check` gives.
    search.checks += 1
    original = decide(evs)
    why = undecided(original)
    if why is not None and original.first_violation() is None:
        raise ShrinkInconclusive(f"the engine could not decide the trace itself ({why})")
    if progress is not None:
        progress(search.checks, len(evs))
    first = original.first_violation()
    target = rule if rule is not None else (first.rule if first is not None else None)
    if target is None:
        raise ShrinkError(f"the trace does not violate any rule (verdict {original.result})")
    hits = [f for f in original.findings if f.status == VIOLATION and f.rule == target]
    if not hits:
        raise ShrinkError(f"the trace does not violate {target} (verdict {original.result})")
    search.rule = target
    search.cache[tuple(everything)] = True
    search.reports[tuple(everything)] = original
    try:
        c = search.relevance_cut(everything, hits[0].event_index)
        c = search.ddmin(c)
        c = search.one_at_a_time(c)
        kept, minimal = tuple(search.tighten(c)), True
    except _Budget:
        kept, minimal = search.best, False
    kept_events = tuple(search.sequencer.build(kept))
    renumbered = any(e is not evs[i] for e, i in zip(kept_events, kept))
    return ShrinkResult(
        rule=target,
        original_events=len(evs),
        events=kept_events,
        indices=kept,
        checks=search.checks,
        minimal=minimal,
        report=search.reports[kept],
        renumbered=renumbered,
    )


def provenance(result: ShrinkResult, source: str, width: int = 98) -> str:
    """The comment lines that open a shrunk .kvt: the original file, the rule, and the original
    line of every kept event, in order (consecutive lines as ranges `a-b`)."""
    runs: list[list[int]] = []
    for n in result.lines:
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    lines = ", ".join(f"{a}-{b}" if b > a else str(a) for a, b in runs)
    out = [
        f"# kvclaims shrink: {result.rule}, a sub-trace of {source}\n",
        f"# {len(result.events)} of {result.original_events} events kept, "
        + ("1-minimal" if result.minimal else "not 1-minimal (the check budget ran out)")
        + "\n",
    ]
    wrapped = textwrap.wrap(
        f"original lines, in order: {lines}",
        width - 2,
        break_long_words=False,
        break_on_hyphens=False,
    )
    out += [f"# {part}\n" for part in wrapped]
    if result.renumbered:
        out.append(f"# {SEQUENCE_FIELD} renumbered consecutively over the kept events\n")
    return "".join(out)
