"""A finding's `state_before` is the claim's state before the event, in the words the finding
uses (issue 20): no finding says a claim "was under responsibility" while naming a state outside
it, and a harm finding is never located on a claim already `harmed` by that very finding.
Checked on every trace the repository ships, with both engines where the trace is small."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvclaims.run import Options, decide_path

ROOT = Path(__file__).resolve().parents[1]
TRACES = sorted(p for p in (ROOT / "traces").rglob("*") if p.suffix in (".kvt", ".jsonl"))


@pytest.mark.parametrize("path", TRACES, ids=lambda p: str(p.relative_to(ROOT)))
def test_state_before_agrees_with_the_message(path, spec):
    engines = ("replay", "z3") if path.stat().st_size < 4000 else ("replay",)
    for engine in engines:
        rep = decide_path(str(path), spec, Options(engine=engine))
        for f in rep.findings:
            if f.state_before is None:
                continue
            if "under responsibility" in f.message and "not under responsibility" not in f.message:
                assert f.state_before in spec.responsible, (engine, f)
            if f.rule == "R-harm" and "kept the predicate true" in f.message:
                assert f.state_before != "harmed", (engine, f)


def test_the_harm_that_kept_the_predicate_is_found_before_the_state_moves(spec):
    path = ROOT / "traces" / "rules" / "bad-harm-without-break.kvt"
    for engine in ("replay", "z3"):
        rep = decide_path(str(path), spec, Options(engine=engine))
        (f,) = [f for f in rep.findings if f.rule == "R-harm"]
        assert f.state_before == "materialized", engine
