"""`kvclaims litmus`: every case agrees with docs/model.md §8, and traces/litmus/ is up to date."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from kvclaims.check.replay import check_events
from kvclaims.litmus import (
    AGREE,
    EXPECTED_FILE,
    LitmusResult,
    litmus_command,
    render_traces,
    run_litmus,
)
from kvclaims.trace.dsl import read_kvt

from conftest import ROOT

LITMUS_DIR = ROOT / "traces" / "litmus"


@pytest.fixture(scope="module")
def result() -> LitmusResult:
    return run_litmus()


def _row(result: LitmusResult, case: str, policy: str):
    return next(r for r in result.rows if r.case == case and r.policy == policy)


def test_every_case_agrees(result: LitmusResult) -> None:
    bad = [(r.case, r.policy, r.expected, r.observed) for r in result.rows if not r.agrees]
    assert not bad
    assert result.ok


def test_suite_covers_l1_to_l7_c1_and_the_sweep(result: LitmusResult) -> None:
    cases = [r.case for r in result.rows]
    for c in ("L1", "L2", "L3", "L4", "L5", "L6", "L7"):
        assert cases.count(c) == 1
    assert cases.count("C1") == 2
    assert sum(1 for c in cases if c.startswith("sweep")) == 21


def test_l3_numbers(result: LitmusResult) -> None:
    o = _row(result, "L3", "hard_exclude").observed
    assert (o["active"], o["victims"], o["blocking"], o["shortfall"], o["free"]) == (
        "refused", 0, ["claim:resident"], 50, 20)


def test_l1_l2_positions_0_to_9_survive(result: LitmusResult) -> None:
    for case, policy in (("L1", "native"), ("L2", "write_no_admit")):
        o = _row(result, case, policy).observed
        assert (o["victims"], o["remaining"], o["leading"]) == (50, 10, 10)


def test_l4_l5_losses_after_release_no_harm(result: LitmusResult) -> None:
    for case, policy in (("L4", "demote_on_conflict"), ("L5", "expiring")):
        o = _row(result, case, policy).observed
        assert (o["lost_after_release"], o["harmed"]) == (50, 0)


def test_l6_survival_is_not_materialization(result: LitmusResult) -> None:
    o = _row(result, "L6", "soft_priority").observed
    assert (o["surviving"], o["claim_leading"], o["required"], o["claim_materialized"]) == (
        59, 0, 60, False)


def test_sweep(result: LitmusResult) -> None:
    victims = [_row(result, f"sweep {u}", "native").observed["victims"]
               for u in (80, 90, 100, 110, 120, 130, 150)]
    assert victims == [50, 40, 30, 20, 10, 0, 0]
    for u in (80, 90, 100, 110, 120, 130, 150):
        assert _row(result, f"sweep {u}", "write_no_admit").observed["victims"] == max(0, 130 - u)
        hard = _row(result, f"sweep {u}", "hard_exclude").observed
        assert hard["victims"] == 0
        assert hard["active"] == ("refused" if u < 130 else "served")


def test_c1_is_classified_from_runs(result: LitmusResult) -> None:
    lowered = _row(result, "C1", "hard_protected->soft_priority").observed
    assert lowered["class"] == "unsound" and lowered["violated"] == ["R-hard"]
    assert _row(result, "C1", "soft_priority").observed["class"] == "approximate"


def test_disagreement_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    import kvclaims.litmus as litmus

    real = litmus._cases

    def broken():
        cases = real()
        first = cases[0]
        return [type(first)(first.case, first.title, first.policy, first.workload,
                            {**first.expected, "victims": 49}, first.trace), *cases[1:]]

    monkeypatch.setattr(litmus, "_cases", broken)
    out = io.StringIO()
    assert litmus_command(None, "text", out.write) == 1
    assert "FAIL" in out.getvalue()


def test_command_text_and_json(tmp_path: Path) -> None:
    out = io.StringIO()
    assert litmus_command(None, "text", out.write) == 0
    assert "30/30 litmus cases agree" in out.getvalue()
    out = io.StringIO()
    assert litmus_command(str(tmp_path), "json", out.write) == 0
    doc = json.loads(out.getvalue())
    assert doc["ok"] and doc["total"] == 30
    assert all(r["verdict"] == AGREE for r in doc["rows"])
    assert (tmp_path / "L3.kvt").is_file() and (tmp_path / EXPECTED_FILE).is_file()


def test_committed_traces_are_regenerated_byte_for_byte(result: LitmusResult) -> None:
    files = render_traces(result)
    on_disk = {p.name for p in LITMUS_DIR.iterdir() if p.is_file()}
    assert on_disk == set(files), "traces/litmus/ differs: run scripts/regen-litmus"
    for name, text in files.items():
        assert (LITMUS_DIR / name).read_bytes() == text.encode("utf-8"), (
            f"{name} is stale: run scripts/regen-litmus")


def test_regen_script_changes_nothing(tmp_path: Path) -> None:
    committed = {p.name: p.read_bytes() for p in LITMUS_DIR.iterdir() if p.is_file()}
    subprocess.run([str(ROOT / "scripts" / "regen-litmus"), str(tmp_path)], check=True,
                   cwd=ROOT, capture_output=True,
                   env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"})
    regenerated = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert regenerated == committed


def test_committed_traces_have_their_expected_verdicts(spec) -> None:
    expected = json.loads((LITMUS_DIR / EXPECTED_FILE).read_text())
    for name, exp in sorted(expected.items()):
        path = LITMUS_DIR / name
        with open(path, encoding="utf-8") as fh:
            report = check_events(spec, read_kvt(fh, name, spec=spec), name)
        violated = sorted({f.rule for f in report.findings if f.status == "violation"})
        assert (report.verdict, violated) == (exp["verdict"], exp["violated"]), name
