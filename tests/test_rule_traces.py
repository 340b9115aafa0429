"""The project's own traces (traces/rules/): every rule has a violating and a conforming trace.

Each trace exists as .kvt (hand-written) and JSON Lines (its twin, written by kvclaims); the test
asserts the verdict, the rule and the line of its first finding in both formats, that both name the
same event, and that the JSON Lines twin is what `kvclaims convert` writes today.
"""

from __future__ import annotations

import io
import tomllib

import pytest

from kvclaims.check.verdict import CONFORMANT, PASS
from kvclaims.run import Options, check_path
from kvclaims.trace import write
from kvclaims.trace.dsl import read_kvt

from conftest import ROOT

RULES = ROOT / "traces" / "rules"
EXPECTED = tomllib.loads((RULES / "expected.toml").read_text())


def test_every_trace_has_an_expectation() -> None:
    stems = {p.stem for p in RULES.glob("*.kvt")}
    assert stems == set(EXPECTED)
    assert {p.stem for p in RULES.glob("*.jsonl")} == stems


def test_every_rule_has_a_violating_and_a_conforming_trace(spec) -> None:
    broken = {e["rule"] for e in EXPECTED.values() if e["verdict"] != CONFORMANT}
    held = {r for e in EXPECTED.values() if e["verdict"] == CONFORMANT for r in e["covers"]}
    assert broken == set(spec.rules)
    assert held == set(spec.rules)


@pytest.mark.parametrize("stem", sorted(EXPECTED))
def test_trace(stem: str, spec) -> None:
    exp = EXPECTED[stem]
    reports = {fmt: check_path(str(RULES / f"{stem}.{fmt}"), spec, Options())
               for fmt in ("kvt", "jsonl")}
    for fmt, rep in reports.items():
        assert rep.error is None, rep.error
        assert rep.verdict == exp["verdict"], (fmt, [f.message for f in rep.findings])
        if exp["verdict"] == CONFORMANT:
            for rule in exp["covers"]:
                assert any(c.rules[rule] == PASS for c in rep.claims), (fmt, rule)
            continue
        first_of_rule = next(f for f in rep.findings if f.rule == exp["rule"])
        assert first_of_rule.line == exp[f"{fmt}_line"], (fmt, first_of_rule)
        assert rep.findings[0].rule == exp.get("first", exp["rule"])
    kvt_first = next(f for f in reports["kvt"].findings if f.rule == exp.get("rule"))  \
        if exp["verdict"] != CONFORMANT else None
    if kvt_first is not None:
        jsonl_first = next(f for f in reports["jsonl"].findings if f.rule == exp["rule"])
        assert kvt_first.event_index == jsonl_first.event_index


@pytest.mark.parametrize("stem", sorted(EXPECTED))
def test_jsonl_twin_is_current(stem: str, spec) -> None:
    out = io.StringIO()
    write.write_jsonl(read_kvt(str(RULES / f"{stem}.kvt"), spec=spec), out)
    assert out.getvalue() == (RULES / f"{stem}.jsonl").read_text()
