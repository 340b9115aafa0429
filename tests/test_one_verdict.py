"""One verdict everywhere (issue 17; docs/report-format.md "One verdict, every view").

For every trace in traces/, every corpus trace and Hypothesis-made partly ordered traces, the
overall result `kvclaims.run.decide_path` decides is the one every view shows: check's text,
JSON and JUnit, explain's HTML and picture, shrink's message, and check of the trace converted
to each format. Levels agree: no claim or finding reads `violation` in a trace that is not a
violation. Gates, usage mistakes, input errors and `lower --verify-anchors` are tested below.
"""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from kvclaims import spec as spec_mod
from kvclaims.check.verdict import (
    CONFORMANT,
    GATE_FAILED,
    INCONCLUSIVE,
    INPUT_ERROR,
    UNKNOWN,
    VIOLATION,
    Report,
)
from kvclaims.cli import cli
from kvclaims.explain import explain_command
from kvclaims.fuzz import strategies as kst
from kvclaims.report import json as json_report
from kvclaims.report import junit, text
from kvclaims.run import Options, decide_path, decide_trace, exit_code
from kvclaims.trace.convert import TARGETS, Inexpressible, convert
from kvclaims.trace.model import Event, InputError, PartialTrace
from kvclaims.trace.partial_input import read_partial
from kvclaims.trace.write import write_jsonl

from conftest import ARTIFACTS, ROOT

SPEC = spec_mod.load()
TRACES = sorted(p for p in (ROOT / "traces").rglob("*")
                if p.suffix in (".kvt", ".jsonl") and p.is_file())
CORPUS = sorted(ARTIFACTS.rglob("*.jsonl")) if ARTIFACTS.is_dir() else [
    pytest.param(None, id="corpus", marks=pytest.mark.corpus)]  # skipped, with its reason


def _id(p: Path) -> str:
    return str(p.relative_to(ROOT.parent))


# ---- the views ---------------------------------------------------------------------------------
def _text(rep: Report) -> str:
    buf = io.StringIO()
    text.render(rep, SPEC, Console(file=buf, width=200, color_system=None, soft_wrap=True))
    return buf.getvalue()


def _junit_result(rep: Report) -> str:
    suite = ET.fromstring(junit.render([rep])).find("testsuite")
    assert suite is not None
    failures, errors = int(suite.get("failures", "0")), int(suite.get("errors", "0"))
    props = {p.get("name"): p.get("value") for p in suite.iterfind("properties/property")}
    assert props == {"result": rep.result, "verdict": rep.verdict}
    if rep.error is not None:
        assert suite.find("testcase[@name='input']/error") is not None
        return INPUT_ERROR
    if failures:
        return GATE_FAILED if rep.verdict != VIOLATION else VIOLATION
    return INCONCLUSIVE if errors else CONFORMANT


def _html_result(path: Path, options: Options, tmp: Path) -> str | int:
    out = tmp / "picture.html"
    code = explain_command(str(path), None, str(out), None, stderr=io.StringIO(),
                           options=options)
    if code != 0:
        return code
    m = re.search(r'<span class="verdict">([A-Z_]+)</span>', out.read_text())
    assert m is not None
    return m.group(1).lower()


def _picture_result(path: Path, options: Options, tmp: Path) -> str | int:
    """The picture's headline: an SVG with its text kept as text (matplotlib svg.fonttype)."""
    matplotlib = pytest.importorskip("matplotlib")
    out = tmp / "picture.svg"
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        code = explain_command(str(path), None, str(out), None, stderr=io.StringIO(),
                               options=options)
    if code != 0:
        return code
    words = {r.lower() for r in re.findall(r": ([A-Z_]+)<", out.read_text())}
    found = words & {CONFORMANT, VIOLATION, GATE_FAILED, INCONCLUSIVE, INPUT_ERROR}
    assert len(found) == 1, found
    return found.pop()


def _shrink_message(path: Path) -> tuple[int, str]:
    res = CliRunner().invoke(cli, ["shrink", "--max-checks", "1", str(path)])
    return res.exit_code, res.stderr


def _check_converted(path: Path, rep: Report, tmp: Path) -> None:
    """check(convert(x, f)) == check(x) for every format f, or a refusal naming why."""
    try:
        trace = read_partial(path, str(path), SPEC)
    except (InputError, UnicodeDecodeError):
        assert rep.result in (INPUT_ERROR, INCONCLUSIVE)
        return
    for to in TARGETS:
        try:
            body = convert(trace, to, SPEC)
        except Inexpressible as err:
            # only what the target truly cannot say: skews in JSON Lines, unknown events in .kvt
            assert (to == "jsonl" and trace.skews and "skew" in str(err)) or \
                (to == "kvt" and "spelling" in str(err)), err
            continue
        copy = tmp / f"copy.{to}"
        copy.write_text(body, encoding="utf-8")
        again = decide_path(str(copy), SPEC, Options())
        assert _essence(again) == _essence(rep), (to, body)


def _essence(rep: Report) -> tuple:
    """What a conversion must keep: the results, the findings' rule/status/claim, each claim's
    verdict and rule statuses (lines and quotes may differ)."""
    return (rep.result, rep.verdict,
            sorted((f.rule, f.status, f.claim_id) for f in rep.findings),
            sorted((c.claim_id, c.verdict, tuple(sorted(c.rules.items()))) for c in rep.claims))


def assert_levels_agree(rep: Report) -> None:
    if rep.verdict != VIOLATION:
        assert all(f.status != VIOLATION for f in rep.findings)
        for c in rep.claims:
            assert c.verdict != VIOLATION, c
            assert VIOLATION not in c.rules.values(), c
    for c in rep.claims:
        if VIOLATION in c.rules.values():
            assert c.verdict == VIOLATION
        elif UNKNOWN in c.rules.values():
            assert c.verdict == INCONCLUSIVE
    if rep.error is not None:
        assert rep.claims == () and rep.requests == () and rep.prefixes == ()


def assert_one_verdict(path: Path, tmp: Path, *, picture: bool = True) -> Report:
    options = Options()
    rep = decide_path(str(path), SPEC, options)
    result = rep.result
    assert_levels_agree(rep)
    # check: text headline, JSON, JUnit, exit code
    head = _text(rep).splitlines()[0]
    assert head.startswith(f"{rep.file}: {result.upper()}"), head
    data = json.loads(json_report.render(rep))
    assert (data["result"], data["verdict"]) == (result, rep.verdict)
    assert list(data)[:2] == ["report_version", "result"]
    assert _junit_result(rep) == result
    # explain: the HTML page and the picture (or the same exit code as check when no picture)
    views = [_html_result(path, options, tmp)]
    if picture:
        views.append(_picture_result(path, options, tmp))
    for shown in views:
        assert shown == (result if rep.error is None else exit_code([rep])), (shown, result)
    # shrink: the same verdict in its message (a violation shrinks; anything else is refused)
    code, message = _shrink_message(path)
    if rep.error is not None:
        assert code == 2
    elif rep.verdict == VIOLATION:
        assert code == 0 and "(verdict violation)" in message, message
    else:
        assert code == 2 and f"(verdict {result})" in message, message
    _check_converted(path, rep, tmp)
    return rep


@pytest.mark.parametrize("path", TRACES, ids=_id)
def test_every_view_of_a_project_trace_shows_the_decided_verdict(path: Path, tmp_path: Path):
    assert_one_verdict(path, tmp_path)


@pytest.mark.parametrize("path", CORPUS, ids=[_id(p) for p in CORPUS if isinstance(p, Path)]
                         or None)
def test_every_view_of_a_corpus_trace_shows_the_decided_verdict(path: Path, tmp_path: Path):
    assert_one_verdict(path, tmp_path)


@pytest.mark.corpus
def test_the_corpus_is_there() -> None:
    assert len(CORPUS) >= 30 and len(TRACES) >= 50


# ---- Hypothesis-made partly ordered traces -----------------------------------------------------
def _with(e: Event, **fields: object) -> Event:
    return Event(e.kind, {**e.fields, **fields}, e.line, e.column, e.text)


@st.composite
def partial_traces(draw: st.DrawFn) -> list[Event]:
    """A MicroRuntime trace (conformant, or with one rule broken) whose events are cut into runs,
    some of them batches (`unordered_batch` numbered in file order, as `.kvt` blocks are)."""
    events = draw(st.one_of(kst.traces(), kst.violating_traces().map(lambda m: m.events)))
    field = SPEC.order.block_field
    out: list[Event] = []
    i, block = 0, 0
    while i < len(events):
        size = draw(st.integers(1, 3))
        run = events[i:i + size]
        if len(run) >= 2 and draw(st.booleans()):
            block += 1
            run = [_with(e, **{field: block}) for e in run]
        out.extend(run)
        i += size
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(events=partial_traces())
def test_every_view_of_a_generated_partial_trace_shows_the_decided_verdict(events,
                                                                           tmp_path_factory):
    tmp = tmp_path_factory.mktemp("partial")
    path = tmp / "generated.jsonl"  # JSON Lines: also events without a .kvt spelling
    with open(path, "w", encoding="utf-8") as fh:
        write_jsonl(events, fh)
    rep = assert_one_verdict(path, tmp)
    # the in-memory decision is the file's
    assert _essence(decide_trace(SPEC, events, Options(), str(path))) == _essence(rep)


# ---- levels on the partial examples ------------------------------------------------------------
def test_an_inconclusive_partial_trace_has_no_violating_claim(tmp_path: Path):
    rep = decide_path(str(ROOT / "traces/partial/batch-hides-silent-loss.kvt"), SPEC)
    assert rep.verdict == INCONCLUSIVE
    assert all(c.verdict != VIOLATION for c in rep.claims)
    assert "FAIL" not in _text(rep)
    suite = ET.fromstring(junit.render([rep])).find("testsuite")
    assert suite is not None and suite.get("failures") == "0"


def test_the_replay_engine_on_a_partial_trace_states_no_violation():
    rep = decide_path(str(ROOT / "traces/partial/batch-every-order-violates.kvt"), SPEC,
                      Options(engine="replay"))
    assert rep.result == INCONCLUSIVE
    assert_levels_agree(rep)


# ---- gates -------------------------------------------------------------------------------------
NO_RESTORE = ARTIFACTS / "offload_lifecycle" / "false_positive_offload_no_restore.jsonl"


@pytest.mark.corpus
def test_a_failed_gate_fails_the_headline_junit_and_the_exit_code():
    res = CliRunner().invoke(cli, ["check", "--require", "offloadable", str(NO_RESTORE)])
    assert res.exit_code == 1
    assert res.stdout.splitlines()[0].startswith(f"{NO_RESTORE}: GATE_FAILED (rules: conformant)")
    res = CliRunner().invoke(cli, ["check", "--format", "junit", "--require", "offloadable",
                                   str(NO_RESTORE)])
    suite = ET.fromstring(res.stdout).find("testsuite")
    assert suite is not None
    failed = [c.get("name") for c in suite.findall("testcase") if c.find("failure") is not None]
    rep = decide_path(str(NO_RESTORE), SPEC, Options(require=("offloadable",)))
    assert failed == [f"gate offloadable {m}" for m in rep.gates[0].requirements
                      if m in rep.gates[0].missing]
    assert int(suite.get("failures", "0")) == len(rep.gates[0].missing) > 0


@pytest.mark.corpus
@pytest.mark.parametrize("require", [(), ("offloadable",), ("offloadable", "hard_protected")])
def test_the_json_gates_are_one_list_whatever_the_flag_count(require):
    args = ["check", "--format", "json", *(x for r in require for x in ("--require", r)),
            str(NO_RESTORE)]
    data = json.loads(CliRunner().invoke(cli, args).stdout)
    assert "gate" not in data and [g["bundle"] for g in data["gates"]] == [
        SPEC.canonical_mode(r) or r for r in require]
    for g in data["gates"]:
        assert set(g) == {"bundle", "status", "passed", "missing", "violated",
                          "written_order_only"}
    assert data["result"] == (GATE_FAILED if require else CONFORMANT)


def test_a_gate_read_in_the_written_order_of_a_partial_trace_is_unknown_not_passed():
    rep = decide_path(str(ROOT / "traces/partial/batch-any-order-conforms.kvt"), SPEC,
                      Options(require=("offloadable",)))
    g = rep.gates[0]
    assert g.written_order_only and not g.passed


# ---- usage -------------------------------------------------------------------------------------
def test_a_skew_naming_no_source_of_the_traces_is_a_usage_error():
    trace = str(ROOT / "traces/partial/skew-demotion-beyond-delta.kvt")
    res = CliRunner().invoke(cli, ["check", "--skew", "sched:kvv:2000000", trace])
    assert res.exit_code == 2
    assert "kvv, sched" in res.output and "kv_events, scheduler" in res.output
    assert res.stdout.count("CONFORMANT") == 0


def test_an_unknown_gate_is_a_usage_error_naming_the_gates():
    res = CliRunner().invoke(cli, ["check", "--require", "nope", str(NO_RESTORE)])
    assert res.exit_code == 2 and "offloadable" in res.output


def test_an_unknown_claim_is_a_usage_error_naming_the_claims(tmp_path: Path):
    res = CliRunner().invoke(cli, ["explain", "--claim", "claim:nope", "--out",
                                   str(tmp_path / "x.html"),
                                   str(ROOT / "traces/rules/bad-silent-loss.kvt")])
    assert res.exit_code == 2 and "claim:nope" in res.output and "claims:" in res.output


def test_explain_takes_the_check_options(tmp_path: Path):
    out = tmp_path / "x.html"
    trace = str(ROOT / "traces/partial/skew-demotion-beyond-delta.kvt")
    assert CliRunner().invoke(cli, ["explain", "--out", str(out), trace]).exit_code == 0
    assert 'class="verdict">CONFORMANT' in out.read_text()
    res = CliRunner().invoke(cli, ["explain", "--engine", "replay", "--out", str(out), trace])
    assert res.exit_code == 0 and 'class="verdict">INCONCLUSIVE' in out.read_text()


# ---- input errors state no facts ---------------------------------------------------------------
def test_an_unopened_file_has_no_line_zero_and_no_outcome():
    res = CliRunner().invoke(cli, ["check", "nonexist.kvt"])
    assert res.exit_code == 2
    assert ":0:" not in res.stdout and "preserved" not in res.stdout
    data = json.loads(CliRunner().invoke(cli, ["check", "--format", "json", "nonexist.kvt"]).stdout)
    assert data["error"]["line"] is None and "resident_preserved" not in data
    assert "claims" not in data and data["scope"] == "part_read"


def test_a_typo_on_line_3_shows_no_claim_verdict(tmp_path: Path):
    bad = tmp_path / "typo.kvt"
    bad.write_text("kvtrace 1\nclaim c accepted mode=hard required=1 "
                   "predicate=leading_prefix_at_least(1) prefix=p usable=4\nclaim c frobnicated\n")
    res = CliRunner().invoke(cli, ["check", str(bad)])
    assert res.exit_code == 2 and f"{bad}:3:" in res.stdout
    assert "conformant" not in res.stdout.lower() and "reconstructed" not in res.stdout
    data = json.loads(CliRunner().invoke(cli, ["check", "--format", "json", str(bad)]).stdout)
    assert data["error"]["line"] == 3 and "claims" not in data and data["scope"] == "part_read"


def test_finding_counts_count_every_protected_block_lost():
    rep = decide_path(str(ROOT / "traces/vllm/0.34.0/stock-probe.kvt"), SPEC)
    assert rep.finding_counts["R-hard"] == 50 == rep.claims[0].victims


# ---- convert: lossless or refused, written whole or not at all --------------------------------
SKEWED = ROOT / "traces/partial/skew-demotion-within-delta.kvt"


def test_convert_keeps_the_skew_in_kvt_and_refuses_json_lines(tmp_path: Path):
    res = CliRunner().invoke(cli, ["convert", "--to", "kvt", str(SKEWED)])
    assert res.exit_code == 0 and "skew scheduler kv_events 1000000" in res.stdout
    out = tmp_path / "copy.jsonl"
    out.write_text("old\n")
    res = CliRunner().invoke(cli, ["convert", "--to", "jsonl", "-o", str(out), str(SKEWED)])
    assert res.exit_code == 2 and "skew" in res.stderr and res.stdout == ""
    assert out.read_text() == "old\n"  # untouched: whole or not at all
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.jsonl"]  # no temporary left


def test_convert_writes_nothing_before_the_input_is_accepted(tmp_path: Path):
    bad = tmp_path / "late.kvt"
    good = (ROOT / "traces/rules/bad-silent-loss.kvt").read_text()
    bad.write_text(good + "claim c frobnicated\n")
    for args in (["--to", "jsonl"], ["--to", "kvt"]):
        res = CliRunner().invoke(cli, ["convert", *args, str(bad)])
        assert res.exit_code == 2 and res.stdout == ""
        res = CliRunner().invoke(cli, ["convert", *args, "-o", str(tmp_path / "o"), str(bad)])
        assert res.exit_code == 2 and not (tmp_path / "o").exists()
    res = CliRunner().invoke(cli, ["convert", "--to", "jsonl", "-o", str(tmp_path / "o"),
                                   str(ROOT / "traces/rules/bad-silent-loss.kvt")])
    assert res.exit_code == 0 and (tmp_path / "o").read_text().count("\n") == 12


# ---- lower --verify-anchors --------------------------------------------------------------------
def test_verify_anchors_with_nothing_to_verify_against_is_inconclusive(tmp_path: Path):
    empty = tmp_path / "empty"
    empty.mkdir()
    res = CliRunner().invoke(cli, ["lower", "--verify-anchors", "--source", str(empty)])
    assert res.exit_code == 3
    assert "inconclusive" in res.stderr and "unchecked vllm source:" in res.stderr


# ---- the pytest plug-in and fuzz --replay decide as check does --------------------------------
@pytest.mark.corpus
def test_the_pytest_plugin_compares_the_overall_result_with_the_check_options():
    from kvclaims.pytest_plugin import check_trace

    rep = check_trace(ROOT / "traces/partial/batch-hides-silent-loss.kvt", "inconclusive")
    assert rep.result == INCONCLUSIVE
    check_trace(NO_RESTORE, "gate_failed", options=Options(require=("offloadable",)))
    events = read_partial(ROOT / "traces/partial/skew-demotion-within-delta.kvt", None, SPEC)
    check_trace(events, "inconclusive")  # its skew travels with it
    check_trace(list(events.events), "conformant")  # without the skew, the written order holds
    with pytest.raises(pytest.fail.Exception, match="expected conformant, got inconclusive"):
        check_trace(events, "conformant")


# ---- levels against brute force: every linearization of small batches --------------------------
def _linearizations(events: list[Event], limit: int = 400) -> list[list[Event]] | None:
    """Every admissible order of `events` (batches of the block field permuted in place), as
    totally ordered traces the Z3 engine's witnesses are (order fields renumbered); None when
    there are more than `limit`."""
    import itertools

    from kvclaims.check import partial

    trace = PartialTrace(tuple(events))
    runs = [(s, e) for s, e, _ in trace.batches(SPEC) if e - s >= 2]
    count = 1
    for s, e in runs:
        count *= len(list(itertools.permutations(range(s, e))))
    if count > limit:
        return None
    _, renumber = partial._stream_breaks(events, [(s, e - 1) for s, e in runs],
                                         SPEC.order.time_fields)
    out = []
    for choice in itertools.product(*(itertools.permutations(range(s, e)) for s, e in runs)):
        order = list(range(len(events)))
        for (s, e), perm in zip(runs, choice):
            order[s:e] = perm
        out.append(partial.witness_events(events, order, SPEC, SPEC.order.batch_fields,
                                          renumber))
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(events=partial_traces())
def test_decided_findings_hold_in_every_admissible_order(events):
    """A `violation` finding (and claim status) of a partly ordered trace holds in every admissible
    order; a conformant trace conforms in every order; an inconclusive one has no violation."""
    rep = decide_trace(SPEC, events, Options(), "generated")
    orders = _linearizations(events)
    if orders is None or rep.error is not None:
        return
    each = [decide_trace(SPEC, linear, Options(), "one order") for linear in orders]
    for r in each:
        assert r.extra.get("order") in (None, "total")  # a witness is totally ordered
    if rep.verdict == CONFORMANT:
        assert all(r.verdict == CONFORMANT for r in each)
    if rep.verdict == VIOLATION:
        assert all(r.verdict == VIOLATION for r in each)
    for f in rep.findings:
        if f.status == VIOLATION and f.claim_id is not None:
            for r in each:
                assert any(g.status == VIOLATION and (g.rule, g.claim_id) == (f.rule, f.claim_id)
                           for g in r.findings), (f, r.findings)
    for c in rep.claims:
        for rule, status in c.rules.items():
            if status == VIOLATION:
                assert all(any(x.claim_id == c.claim_id and x.rules.get(rule) == VIOLATION
                               for x in r.claims) for r in each), (c.claim_id, rule)


def test_every_verdict_command_takes_every_decision_option():
    """No command decides with a subset of the options: check, explain and shrink take the same
    decision flags, and each flag is an Options field (or converted into one)."""
    import dataclasses

    from kvclaims.cli import decision_options

    @decision_options
    def probe(options):  # the flags the decorator adds, by parameter name
        return options

    flags = {p.name for p in probe.__click_params__}
    fields = {f.name for f in dataclasses.fields(Options)}
    converted = {"skews": "skews", "solver_timeout": "solver_timeout_ms",
                 "max_defer_steps": "defer_bounds", "max_defer_ns": "defer_bounds"}
    derived = {"rules_by"}  # who gave --select/--ignore: a flag or the configuration file
    assert {converted.get(n, n) for n in flags} == fields - derived
    for name in ("check", "explain", "shrink"):
        assert flags <= {p.name for p in cli.commands[name].params}, name
