"""`kvclaims shrink` and kvclaims.shrink: 1-minimal sub-traces that still violate the same rule.

The acceptance trace is the 60/70/80 probe with an unreported resident loss: the reference
corpus's claim-metadata run (../shared/corpus, read in place) with its harm report dropped, as in
tests/explain. It must shrink to the claim's acceptance, the 60 block materializations
`leading_prefix_at_least(60)` needs and one victim, and the written .kvt must re-check as the same
violation. Also: the MicroRuntime's silent-loss run (event_sequence renumbering), every violating
rule trace of traces/rules/, rule selection, errors, the check budget and 1-minimality.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner
from conftest import ARTIFACTS, ROOT

from kvclaims.check.replay import check_events
from kvclaims.check.state import EventNames, RuleIds
from kvclaims.check.verdict import UNKNOWN, VIOLATION
from kvclaims.cli import cli
from kvclaims.runtime import policies as P
from kvclaims.runtime.micro import run
from kvclaims.runtime.workload import ClaimSpec, sixty_seventy_eighty
from kvclaims.shrink import SEQUENCE_FIELD, ShrinkError, provenance, shrink, violates
from kvclaims.trace.dsl import read_kvt
from kvclaims.trace.jsonl import read_jsonl

RULES = ROOT / "traces" / "rules"
EXPECTED = tomllib.loads((RULES / "expected.toml").read_text())
BAD = sorted(stem for stem, e in EXPECTED.items() if e["verdict"] == VIOLATION)
PROBE = ARTIFACTS / "claim_metadata" / "claim_metadata_60_70_80.jsonl"


@pytest.fixture(scope="module")
def silent_trace(tmp_path_factory, artifacts, spec) -> Path:
    """The 60/70/80 claim-metadata probe with its harm report dropped: a silent resident loss."""
    harmed = EventNames(spec).harmed
    lines = PROBE.read_text().splitlines(keepends=True)
    kept = [ln for ln in lines if json.loads(ln).get("event") != harmed]
    assert len(kept) == len(lines) - 1
    out = tmp_path_factory.mktemp("shrink") / "silent_60_70_80.jsonl"
    out.write_text("".join(kept))
    return out


def _read(path: Path, spec):
    if path.suffix == ".kvt":
        return list(read_kvt(path, spec=spec))
    with open(path, "rb") as fh:
        return list(read_jsonl(fh, str(path), spec))


def _renumbered(events):
    """`events` with event_sequence rewritten consecutively, as shrink builds its candidates."""
    seqs = [e.fields[SEQUENCE_FIELD] for e in events if SEQUENCE_FIELD in e.fields]
    if not seqs:
        return list(events)
    k, out = seqs[0], []
    for e in events:
        if SEQUENCE_FIELD in e.fields:
            e = msgspec.structs.replace(e, fields={**e.fields, SEQUENCE_FIELD: k})
            k += 1
        out.append(e)
    return out


def _one_minimal(events, spec, rule) -> bool:
    """Removing any single event loses the violation of `rule`."""
    return not any(
        violates(check_events(spec, _renumbered(events[:i] + events[i + 1 :])), rule)
        for i in range(len(events))
    )


def _shrink_cli(*args: str):
    return CliRunner().invoke(cli, ["shrink", "--no-progress", *args])


# ---- the acceptance trace: the 60/70/80 probe's unreported resident loss ------------------------


def test_probe_shrinks_to_acceptance_materializations_and_one_victim(silent_trace, spec):
    silent = RuleIds(spec).silent
    events = _read(silent_trace, spec)
    result = shrink(events, spec, rule=silent)
    assert result.rule == silent and result.minimal
    assert result.original_events == len(events) == 241
    E = EventNames(spec)
    kinds = Counter(e.kind for e in result.events)
    assert set(kinds) <= {E.accepted, E.block_materialized, E.materialized, E.victim}
    claim = result.report.claims[0]
    assert claim.required_blocks == 60
    # leading_prefix_at_least(60) needs all 60 positions; the claim's own materialized event is
    # not needed for responsibility (accepted is under responsibility already).
    assert kinds == {E.accepted: 1, E.block_materialized: 60, E.victim: 1}
    assert len(result.events) == 62
    assert sorted(
        e.get("logical_block_position") for e in result.events if e.kind == E.block_materialized
    ) == list(range(60))
    assert list(result.indices) == sorted(result.indices)
    assert [e.line for e in result.events] == [events[i].line for i in result.indices]
    assert result.checks <= 500  # measured: 380
    assert _one_minimal(list(result.events), spec, silent)


def test_probe_cli_writes_a_kvt_that_rechecks(silent_trace, spec, tmp_path):
    silent = RuleIds(spec).silent
    out = tmp_path / "min.kvt"
    res = _shrink_cli(str(silent_trace), "--rule", silent, "-o", str(out), "--progress")
    assert res.exit_code == 0, res.output
    text = out.read_text()
    first = text.splitlines()[0]
    assert first.startswith("#") and str(silent_trace) in first and silent in first
    assert text.splitlines()[1] == "# 62 of 241 events kept, 1-minimal"
    assert "original lines, in order: 61-120, 122, 143" in text
    back = list(read_kvt(out, spec=spec))
    assert len(back) == 62
    report = check_events(spec, back, str(out))
    assert violates(report, silent)
    assert "241 → 62 events" in res.stderr and "re-checked: " in res.stderr
    assert "(verdict violation)" in res.stderr
    assert res.stdout == ""


def test_rule_defaults_to_the_first_violation(silent_trace, spec):
    R = RuleIds(spec)
    events = _read(silent_trace, spec)
    first = check_events(spec, events).first_violation()
    assert first is not None and first.rule == R.hard  # hard claim: R-hard breaks first
    result = shrink(events, spec)
    assert result.rule == R.hard
    E = EventNames(spec)
    assert [e.kind for e in result.events] == [E.accepted, E.block_materialized, E.victim]
    res = _shrink_cli(str(silent_trace))
    assert res.exit_code == 0 and f"{R.hard}: 241 → 3 events" in res.stderr
    assert res.stdout.startswith("# kvclaims shrink") and "kvtrace 1" in res.stdout


# ---- event_sequence renumbering --------------------------------------------------------------


def test_micro_silent_loss_is_renumbered(spec):
    silent = RuleIds(spec).silent
    events = run(
        sixty_seventy_eighty(claim=ClaimSpec("claim:resident", 60)),
        P.SOFT_PRIORITY,
        [P.SILENT_LOSS],
    ).events
    assert all(SEQUENCE_FIELD in e.fields for e in events)
    result = shrink(events, spec)
    assert result.rule == silent and len(result.events) == 62 and result.renumbered
    start = events[0].fields[SEQUENCE_FIELD]
    assert [e.fields[SEQUENCE_FIELD] for e in result.events] == list(
        range(start, start + len(result.events))
    )
    assert not any(f.rule == RuleIds(spec).stream for f in result.report.findings)
    # Keeping the original numbers would open gaps: R-stream unknown, the loss only unknown.
    kept = [events[i] for i in result.indices]
    gappy = check_events(spec, kept)
    assert not violates(gappy, silent)
    assert any(f.rule == RuleIds(spec).stream and f.status == UNKNOWN for f in gappy.findings)
    assert "renumbered" in provenance(result, "micro")


def test_sequence_references_follow_the_renumbering(spec):
    from kvclaims.shrink import _Sequencer
    from kvclaims.trace.model import Event

    ref = next(n for n in spec.fields if n != SEQUENCE_FIELD and n.endswith(SEQUENCE_FIELD))
    E = EventNames(spec)
    events = (
        Event(E.accepted, {SEQUENCE_FIELD: 10}),
        Event(E.restoration_failed, {SEQUENCE_FIELD: 11}),
        Event(E.refused, {SEQUENCE_FIELD: 12, ref: 11}),
        Event(E.refused, {ref: 12}),  # no number of its own; names a kept event's number
        Event(E.refused, {SEQUENCE_FIELD: 13, ref: 99}),  # names no event: left as it is
    )
    seq = _Sequencer(events, spec)
    built = seq.build([0, 2, 3, 4])
    assert [e.fields.get(SEQUENCE_FIELD) for e in built] == [10, 11, None, 12]
    # events[1] (number 11) is not kept: the reference to it stays as recorded.
    assert [e.fields.get(ref) for e in built] == [None, 11, 11, 99]
    assert built[0] is events[0]  # unchanged events are not copied
    assert seq.build([1, 2])[1].fields == {SEQUENCE_FIELD: 11, ref: 10}
    assert seq.build([3]) == [events[3]]  # 12 is not kept: nothing to rewrite


# ---- the rule traces: every violating trace of traces/rules/ --------------------------------


def test_rule_traces_cover_at_least_four_rules():
    assert len({EXPECTED[s]["rule"] for s in BAD}) >= 4


@pytest.mark.parametrize("stem", BAD)
def test_rule_trace_shrinks_and_rechecks(stem, spec, tmp_path):
    rule = EXPECTED[stem]["rule"]
    out = tmp_path / f"{stem}.min.kvt"
    res = _shrink_cli(str(RULES / f"{stem}.kvt"), "--rule", rule, "-o", str(out))
    assert res.exit_code == 0, res.output
    back = list(read_kvt(out, spec=spec))
    assert violates(check_events(spec, back, str(out)), rule)
    assert 1 <= len(back) <= len(_read(RULES / f"{stem}.kvt", spec))
    assert _one_minimal(back, spec, rule)
    # The JSON Lines twin shrinks to the same events.
    twin = shrink(_read(RULES / f"{stem}.jsonl", spec), spec, rule=rule)
    assert [e.kind for e in twin.events] == [e.kind for e in back]


# ---- errors and exit codes ------------------------------------------------------------------


def test_conformant_trace_is_exit_2(spec):
    res = _shrink_cli(str(RULES / "ok-hard-refusal.kvt"))
    assert res.exit_code == 2
    assert "does not violate any rule" in res.stderr and "conformant" in res.stderr
    with pytest.raises(ShrinkError):
        shrink(_read(RULES / "ok-hard-refusal.kvt", spec), spec)


def test_rule_not_violated_is_exit_2(spec):
    hard = RuleIds(spec).hard
    res = _shrink_cli(str(RULES / "bad-silent-loss.kvt"), "--rule", hard)
    assert res.exit_code == 2 and f"does not violate {hard}" in res.stderr


def test_unknown_rule_and_bad_input_are_exit_2(tmp_path):
    res = _shrink_cli(str(RULES / "bad-silent-loss.kvt"), "--rule", "R-nope")
    assert res.exit_code == 2 and "is not a rule" in res.output
    bad = tmp_path / "bad.kvt"
    bad.write_text("kvtrace 1\nclaim claim:r accepted mode=\n")
    res = _shrink_cli(str(bad))
    assert res.exit_code == 2 and f"{bad}:2:" in res.stderr and "Traceback" not in res.output
    res = _shrink_cli(str(tmp_path / "missing.kvt"))
    assert res.exit_code == 2 and "cannot open" in res.stderr


def test_z3_engine_shrinks_to_the_same_result(spec):
    """--engine z3 decides every candidate with the Z3 engine, and lands on the replay's result."""
    by_replay = _shrink_cli(str(RULES / "bad-silent-loss.kvt"))
    by_z3 = _shrink_cli("--engine", "z3", str(RULES / "bad-silent-loss.kvt"))
    assert by_z3.exit_code == 0 and "(z3 engine)" in by_z3.stderr
    body = lambda out: [ln for ln in out.splitlines() if not ln.startswith("#")]
    assert body(by_z3.stdout) == body(by_replay.stdout)


def test_z3_engine_is_the_one_called(monkeypatch, spec):
    from kvclaims.check import partial

    calls: list[int] = []
    real = partial.decide

    def z3_decide(spec_, events, *a, **kw):
        calls.append(len(events))
        return real(spec_, events, *a, **kw)

    monkeypatch.setattr(partial, "decide", z3_decide)
    res = _shrink_cli("--engine", "z3", str(RULES / "bad-silent-loss.kvt"))
    assert res.exit_code == 0 and "(z3 engine)" in res.stderr
    assert calls and calls[0] == 12  # the original trace first, then the candidates


# ---- the library API: pluggable engine, progress, budget --------------------------------------


def test_decide_is_pluggable_and_progress_is_reported(spec):
    events = _read(RULES / "bad-silent-loss.kvt", spec)
    calls: list[int] = []
    seen: list[tuple[int, int]] = []

    def decide(candidate):
        calls.append(len(candidate))
        return check_events(spec, candidate)

    result = shrink(events, spec, decide=decide, progress=lambda c, n: seen.append((c, n)))
    assert result.checks == len(calls) == len(seen) and calls[0] == len(events)
    assert [c for c, _ in seen] == list(range(1, len(calls) + 1))
    assert seen[-1][1] == len(result.events)
    assert len(result.events) == 6  # accepted, 4 materializations, the victim


def test_check_budget_gives_a_smaller_but_not_minimal_result(silent_trace, spec):
    silent = RuleIds(spec).silent
    events = _read(silent_trace, spec)
    result = shrink(events, spec, rule=silent, max_checks=20)
    assert not result.minimal and result.checks == 20
    assert len(result.events) < len(events)
    assert violates(check_events(spec, list(result.events)), silent)
    res = _shrink_cli(str(silent_trace), "--rule", silent, "--max-checks", "20")
    assert res.exit_code == 0 and "not 1-minimal" in res.stderr
    assert res.stdout.splitlines()[1].endswith("not 1-minimal (the check budget ran out)")


def test_entry_point_writes_kvt_on_stdout():
    proc = subprocess.run(
        [sys.executable, "-m", "kvclaims.cli", "shrink", str(RULES / "bad-silent-loss.kvt")],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode()
    assert out.startswith("# kvclaims shrink: R-no-silent-loss, a sub-trace of ")
    assert "original lines, in order: 7-11, 14" in out
    events = list(read_kvt(io.StringIO(out), "<stdout>"))
    assert len(events) == 6
