"""Closed input never fails open (issue 16; docs/checking.md "Closed input").

Generated, per event kind: one conformant and one violating trace of the repository or the corpus
that carry it. Every single-character deletion, insertion, substitution and transposition of
every key the event carries there (except typos that give another key the event may carry:
those are not typos), and every value outside a closed field's vocabulary at distance one from
it (plus its case variants), is an input error or, for a field whose unknown values are
`unknown` (protection_mode), an inconclusive verdict: never conformant.

The exhaustive part reads each mutated event line with the JSON Lines importer, in process: the
importer decides a line on that line alone (types, ranges, vocabularies, keys; no state crosses
lines), so a line it refuses makes the whole trace an input error; end to end, the first mutant of
each (key, edit) class is checked as a whole trace, and a Hypothesis sample checks mutants end to
end in both formats (.kvt and JSON Lines). Duplicate keys, out-of-range integers and truncated
last lines are generated in both formats and must be located input errors, never a traceback.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvclaims import spec as spec_mod
from kvclaims.check.verdict import CONFORMANT, INCONCLUSIVE, INPUT_ERROR, VIOLATION, Report
from kvclaims.fuzz.typos import KEY_ALPHABET, Mutant, edits, key_mutants, value_mutants
from kvclaims.run import Options, check_stream
from kvclaims.trace import write
from kvclaims.trace.dsl import read_kvt
from kvclaims.trace.jsonl import read_jsonl
from kvclaims.trace.model import Event, InputError
from kvclaims.trace.validate import Validator

from conftest import ARTIFACTS, ROOT
from kvt_strategies import events

SPEC = spec_mod.load()
INT_TYPES = ("int", "list[int]")


# ---- the spec declares what is closed ----------------------------------------------------------

def test_every_int_field_declares_a_range() -> None:
    missing = [f.name for f in SPEC.fields.values()
               if f.type in INT_TYPES and (f.min is None or f.max is None)]
    assert not missing, f"int fields without min/max in spec/fields.toml: {missing}"


def test_closed_fields_declare_what_an_unknown_value_does() -> None:
    closed = {f.name: f.on_unknown for f in SPEC.fields.values() if f.values is not None}
    assert set(closed.values()) <= {"error", "unknown"}
    # the fields the issue names are closed; an unknown mode keeps making the claim unknown
    for name in ("claim_registration", "protection_mode", "victim_reason", "feasibility",
                 "claim_scoped_outcome_type", "cache_tier_from", "restoration_source"):
        assert name in closed, name
    assert closed["protection_mode"] == "unknown"
    assert closed["claim_registration"] == "error"
    # the values the checker compares against are inside the vocabularies
    assert SPEC.values["post_hoc_registration"] in SPEC.fields["claim_registration"].values
    assert SPEC.values["cached_victim_reason"] in SPEC.fields["victim_reason"].values
    assert SPEC.offload_constants["restore_source"] in SPEC.fields["restoration_source"].values


def test_informational_names_are_no_typo_of_a_key() -> None:
    # an informational name one edit from a field's telemetry name would hide that field's
    # typo (a .kvt key is read through its alias first: `blocks` there is block_ids)
    close = {(i, f.name) for f in SPEC.fields.values() for i in edits(f.name)
             if i in SPEC.informational}
    assert not close, close


# ---- one conformant and one violating trace per event kind ---------------------------------------

def _stored_traces() -> list[Path]:
    pats = ("traces/**/*.kvt", "traces/**/*.jsonl")
    files = sorted({p for pat in pats for p in ROOT.glob(pat)})
    return files + sorted(ARTIFACTS.rglob("*.jsonl"))


def _check_bytes(data: bytes, name: str, engine: str = "replay") -> Report:
    return check_stream(io.BufferedReader(io.BytesIO(data)), name, SPEC,  # type: ignore[arg-type]
                        Options(engine=engine))


def _events(path: Path) -> list[Event]:
    if path.suffix == ".kvt":
        return list(read_kvt(path, str(path), spec=SPEC))
    with open(path, "rb") as fh:
        return list(read_jsonl(fh, str(path), SPEC))


def _value(name: str, event: str) -> object:
    """A valid value of field `name` for a synthetic event (ids tie it to the skeleton)."""
    ids = {"claim_id": "claim:s", "prefix_id": "p", "request_id": "r1", "outcome_claim_id": "claim:s",
           "physical_block_id": 9, "logical_block_position": 0, "decode_step": 0}
    if name in ids:
        return ids[name]
    f = SPEC.fields[name]
    if f.values is not None:
        return sorted(f.values)[0]
    return {"int": 1, "float": 1.0, "str": "x", "bool": False, "list[int]": [1],
            "list[str]": ["x"], "list[object]": [], "object": {}, "any": 1}[f.type]


def _synthetic(kind: str) -> list[tuple[str, tuple[Event, ...]]]:
    """A short conformant-looking and a violating trace ending in `kind` with every field it
    reads (required and optional): a hard claim accepted and materialized, then the event; the
    violating one opens with a post-hoc acceptance (R-acceptance)."""
    e = SPEC.events[kind]
    fields = {n: _value(n, kind) for n in (*e.required, *e.optional)}
    skeleton = [
        Event("resident_claim_accepted", {
            "claim_id": "claim:s", "protection_mode": "hard_protected", "prefix_id": "p",
            "resident_blocks_required": 1, "claim_registration": "pre_registered",
            "materialization_predicate": "leading_prefix_at_least(1)"}),
        Event("resident_block_materialized", {"physical_block_id": 1, "claim_id": "claim:s",
                                              "prefix_id": "p", "logical_block_position": 0}),
        Event("resident_claim_materialized", {"claim_id": "claim:s"}),
    ]
    bad = Event("resident_claim_accepted", {"claim_id": "claim:v", "protection_mode": "none",
                                            "claim_registration": "post_hoc"})
    tail = Event(kind, fields)
    return [("synthetic", (*skeleton, tail)), ("synthetic", (bad, *skeleton, tail))]


@lru_cache(maxsize=None)
def _bases() -> dict[tuple[str, str], tuple[str, tuple[Event, ...]]]:
    """(event kind, conformant | violation) → the shortest trace of that verdict carrying the
    kind: stored (the repository's traces, the corpus) or synthetic (every field the event
    reads); totally ordered, decided by the replay."""
    candidates: list[tuple[str, tuple[Event, ...]]] = []
    for path in _stored_traces():
        candidates.append((str(path.relative_to(ROOT.parent)), tuple(_events(path))))
    for kind in SPEC.events:
        candidates += _synthetic(kind)
    out: dict[tuple[str, str], tuple[str, tuple[Event, ...]]] = {}
    for name, events in candidates:
        report = _check_bytes(_jsonl(events), "b.jsonl")
        if report.verdict not in (CONFORMANT, VIOLATION) or len(events) > 40:
            continue
        for kind in {e.kind for e in events}:
            key = (kind, report.verdict)
            if key not in out or len(events) < len(out[key][1]):
                out[key] = (name, events)
    return out


def _jsonl(events: Iterable[Event]) -> bytes:
    buf = io.StringIO()
    write.write_jsonl(events, buf)
    return buf.getvalue().encode("utf-8")


def _kvt(events: Iterable[Event]) -> bytes:
    buf = io.StringIO()
    write.write_kvt(events, buf, spec=SPEC)
    return buf.getvalue().encode("utf-8")


VALIDATOR = Validator(SPEC)


def _line_refused(event: Event) -> tuple[str, str] | None:
    """The importers' decision on one event's fields (kvclaims.trace.validate, which both the
    JSON Lines and the .kvt importer ask, line by line, with no state across lines): the
    (field, message) that refuses it, else None."""
    return VALIDATOR.check(event.kind, dict(event.fields))


def _mutants(event: Event) -> Iterable[Mutant]:
    for key in event.fields:
        yield from key_mutants(event, SPEC, key)
        f = SPEC.fields.get(key)
        if f is not None and f.values is not None and event.fields[key] is not None:
            yield from value_mutants(event, SPEC, key)


BASES = sorted(_bases())


def test_bases_cover_the_event_kinds_the_checker_dispatches_on() -> None:
    kinds = {k for k, _ in BASES}
    # every claim-lifecycle event and the block events have a conformant and a violating trace
    must = set(SPEC.claim.transitions) | set(SPEC.events_of_scope("block"))
    lacking = sorted(k for k in must for v in (CONFORMANT, VIOLATION) if (k, v) not in BASES)
    assert len(lacking) <= 6, lacking  # kinds no stored trace of one verdict carries
    assert len(kinds) >= 30, kinds


@pytest.mark.parametrize(("kind", "verdict"), BASES, ids=[f"{k}-{v}" for k, v in BASES])
def test_every_typo_of_a_key_or_closed_value_is_refused(kind: str, verdict: str) -> None:
    name, events = _bases()[(kind, verdict)]
    index = next(i for i, e in enumerate(events) if e.kind == kind)
    event = events[index]
    first_of_class: dict[tuple[str, str, int], Mutant] = {}
    n = 0
    for m in _mutants(event):
        n += 1
        err = _line_refused(m.event)
        if m.what == "value" and SPEC.fields[m.field].on_unknown == "unknown":
            assert err is None, (m, err)  # kept for the checker, which makes the claim unknown
        else:
            assert err is not None, f"{name}: {kind}: {m.what} {m.field!r} -> {m.typo!r} is read"
            assert err[0] == (m.typo if m.what == "key" else m.field), err
        first_of_class.setdefault((m.what, m.field, len(m.typo) - len(m.field)), m)
    assert n > 0 or not event.fields  # an event without fields has no key to misspell
    # end to end, in both formats: the whole trace with the mutated event never conforms
    for m in first_of_class.values():
        mutated = [*events[:index], m.event, *events[index + 1:]]
        refused = _line_refused(m.event) is not None
        for data, fmt in ((_jsonl(mutated), "jsonl"), (_kvt(mutated), "kvt")):
            report = _check_bytes(data, f"m.{fmt}")
            assert report.verdict != CONFORMANT, (name, fmt, m.what, m.field, m.typo)
            if refused:
                assert report.verdict == INPUT_ERROR and report.error is not None, report.verdict
                assert report.error.line == index + 1 + (fmt == "kvt"), report.error


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_typo_sample_across_formats(data: st.DataObject) -> None:
    kind, verdict = data.draw(st.sampled_from(BASES))
    _, events = _bases()[(kind, verdict)]
    carrying = [i for i, e in enumerate(events) if e.kind == kind and e.fields]
    if not carrying:
        return  # no key to misspell
    index = data.draw(st.sampled_from(carrying))
    event = events[index]
    key = data.draw(st.sampled_from(sorted(event.fields)))
    f = SPEC.fields.get(key)
    if f is not None and f.values is not None and event.fields[key] is not None \
            and data.draw(st.booleans()):
        typo = data.draw(st.text(KEY_ALPHABET + "-. ", min_size=0, max_size=24)
                         .filter(lambda v: v not in (f.values or ())))
        fields = {**event.fields, key: typo}
    else:
        allowed = SPEC.allowed_keys(kind) or frozenset()
        typo = data.draw(st.sampled_from(sorted(edits(key) - allowed - set(event.fields))))
        fields = {(typo if k == key else k): v for k, v in event.fields.items()}
    mutated = [*events[:index], Event(kind, fields), *events[index + 1:]]
    fmt = data.draw(st.sampled_from(["jsonl", "kvt"]))
    raw = _jsonl(mutated) if fmt == "jsonl" else _kvt(mutated)
    report = _check_bytes(raw, f"m.{fmt}", engine=data.draw(st.sampled_from(["replay", "auto"])))
    assert report.verdict != CONFORMANT, (fmt, kind, key, typo)


# ---- duplicate keys, out-of-range integers, truncated last lines, in every format --------------

def _simple_events() -> st.SearchStrategy[list[Event]]:
    return st.lists(events(), min_size=1, max_size=4)


def _located(report: Report, line: int) -> None:
    assert report.verdict == INPUT_ERROR and report.error is not None, report.verdict
    assert report.error.line == line and report.error.column >= 1, report.error


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(_simple_events(), st.data())
def test_duplicate_keys_are_input_errors(evs: list[Event], data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(evs) - 1))
    ev = evs[i]
    if not ev.fields:
        return
    key = data.draw(st.sampled_from(sorted(ev.fields)))
    # JSON Lines: the key written again, with another value, with or without blanks
    line = write.jsonl_line(ev).rstrip("\n")
    sep = data.draw(st.sampled_from([":", " : ", ":  "]))
    dup = line[:-1] + f", {json.dumps(key)}{sep}{json.dumps(data.draw(st.integers(0, 9)))}}}"
    lines = [write.jsonl_line(e).rstrip("\n") for e in evs]
    lines[i] = dup
    raw = ("\n".join(lines) + "\n").encode()
    with pytest.raises(InputError) as info:
        list(read_jsonl(io.BytesIO(raw), "d.jsonl", SPEC))
    assert info.value.line == i + 1 and "given twice" in info.value.message
    assert info.value.column == len(line[:-1] + ", ") + 1  # at the second spelling
    _located(_check_bytes(raw, "d.jsonl"), i + 1)
    # .kvt: the pair written twice
    kvt_lines = _kvt(evs).decode().rstrip("\n").split("\n")
    target = kvt_lines[i + 1]
    extra = f" {json.dumps(key)}=1"
    kvt_lines[i + 1] = target + extra
    raw = ("\n".join(kvt_lines) + "\n").encode()
    with pytest.raises(InputError) as info:
        list(read_kvt(io.BytesIO(raw), "d.kvt", spec=SPEC))
    assert info.value.line == i + 2 and "given twice" in info.value.message
    _located(_check_bytes(raw, "d.kvt"), i + 2)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(_simple_events(), st.data())
def test_out_of_range_integers_are_input_errors(evs: list[Event], data: st.DataObject) -> None:
    ints = sorted(n for n, f in SPEC.fields.items() if f.type == "int" and f.min is not None
                  and n != "schema_version")
    i = data.draw(st.integers(0, len(evs) - 1))
    ev = evs[i]
    name = data.draw(st.sampled_from(ints))
    f = SPEC.fields[name]
    assert f.min is not None and f.max is not None
    bad = data.draw(st.one_of(st.integers(max_value=f.min - 1), st.integers(min_value=f.max + 1),
                              st.just(10**26)))
    spec_event = SPEC.events[ev.kind]
    if name not in (SPEC.allowed_keys(ev.kind) or ()) or (
            name == SPEC.subjects[spec_event.subject] and bad < 0):
        return  # not a key of this event (its own error); a negative ID is written `-`
    evs = [*evs[:i], Event(ev.kind, {**ev.fields, name: bad}), *evs[i + 1:]]
    for raw, fmt, line in ((_jsonl(evs), "jsonl", i + 1), (_kvt(evs), "kvt", i + 2)):
        with pytest.raises(InputError) as info:
            list(read_jsonl(io.BytesIO(raw), "r.jsonl", SPEC) if fmt == "jsonl"
                 else read_kvt(io.BytesIO(raw), "r.kvt", spec=SPEC))
        assert info.value.line == line and "outside its range" in info.value.message, info.value
        # the column is at the field (JSON Lines columns count bytes, .kvt ones characters)
        text = raw.split(b"\n")[line - 1] if fmt == "jsonl" else raw.decode().split("\n")[line - 1]
        after = text[info.value.column - 1:]
        assert str(bad) in (after.decode() if isinstance(after, bytes) else after), text
        _located(_check_bytes(raw, f"r.{fmt}"), line)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(_simple_events(), st.data())
def test_truncated_last_lines_are_input_errors(evs: list[Event], data: st.DataObject) -> None:
    for raw, fmt, first in ((_jsonl(evs), "jsonl", 0), (_kvt(evs), "kvt", 1)):
        text = raw.decode()
        lines = [ln + "\n" for ln in text.rstrip("\n").split("\n")]
        last = lines[-1].rstrip("\n")
        keep = data.draw(st.integers(1, len(last) - 1 if fmt == "jsonl" else len(last)))
        cut = ("".join(lines[:-1]) + last[:keep]).encode()
        report = _check_bytes(cut, f"t.{fmt}")
        _located(report, len(lines))
        # what was read before the cut line is still decided and reported
        assert report.events == len(lines) - 1 - first


def test_truncated_kvt_keeps_the_findings_before_it() -> None:
    # a violating rule trace whose violation is found before its last line
    for path in sorted((ROOT / "traces" / "rules").glob("*.kvt")):
        whole = path.read_text()
        full = _check_bytes(whole.encode(), path.name)
        n = len(whole.rstrip("\n").splitlines())
        found = {(f.rule, f.status, f.line) for f in full.findings
                 if f.status == VIOLATION and f.line < n}
        if full.verdict == VIOLATION and found:
            break
    else:
        raise AssertionError("no rule trace with a violation before its last line")
    cut = whole.rstrip("\n")  # the last line without its newline: by the criterion, cut
    report = _check_bytes(cut.encode(), path.name)
    assert report.verdict == INPUT_ERROR and report.error is not None
    assert "truncated last line" in report.error.message and report.error.line == n
    assert found <= {(f.rule, f.status, f.line) for f in report.findings}, path


@settings(max_examples=300, deadline=None)
@given(st.text("ab_", max_size=6), st.text("ab_", max_size=6))
def test_the_hint_names_exactly_the_keys_one_edit_away(a: str, b: str) -> None:
    from kvclaims.trace.validate import _one_edit

    assert _one_edit(a, b) == (b in edits(a, "ab_"))


def test_an_undeclared_key_names_its_nearest_key() -> None:
    fields = {"claim_id": "c", "claim_registrathon": "post_hoc"}
    field, message = VALIDATOR.check("resident_claim_accepted", fields) or ("", "")
    assert field == "claim_registrathon" and "did you mean 'claim_registration'" in message
    field, message = VALIDATOR.check("resident_claim_accepted",
                                     {"claim_id": "c", "registraton": "post_hoc"}) or ("", "")
    assert "'registration', the .kvt key of 'claim_registration'" in message


_KEYS = st.text(alphabet=':"\\ ab{}[],', max_size=4)
_VALUES = st.recursive(
    st.none() | st.integers() | st.text(alphabet=':"\\ ab{}[],', max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=3),
    max_leaves=8)


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(_KEYS, _VALUES, max_size=5), st.sampled_from([None, ":", " : "]),
       st.data())
def test_the_duplicate_key_count_is_exact(obj: dict, sep: str | None,  # type: ignore[type-arg]
                                          data: st.DataObject) -> None:
    # colons, quotes, backslashes and brackets inside keys and strings; nested objects
    from kvclaims.trace.jsonl import _duplicate_key

    seps = (",", sep) if sep is not None else None
    raw = json.dumps(obj, separators=seps).encode()
    assert _duplicate_key(raw, obj) is None, raw
    if obj:
        key = data.draw(st.sampled_from(sorted(obj)))
        dup = raw[:-1] + b", " + json.dumps(key).encode() + (sep or ": ").encode() + b"1}"
        found = _duplicate_key(dup, json.loads(dup))
        assert found is not None and repr(key) in found[1], (dup, found)
