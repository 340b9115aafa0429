"""The arbiter mechanism table of the default scenario matches papers.md P1.5.4 row by row.

The table is parsed from ../shared/reference/papers.md (read in place); every computed row must
agree on actions, resident survival, active service and reuse, and every named label or number
the row carries must appear in the paper's notes cell.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kvclaims.runtime.mechanisms import DEFAULT_SCENARIO, mechanism_table

from conftest import HAVE_CORPUS, PAPERS
HEADING = "**Mechanism outcomes in the default scenario**"


def _paper_table() -> dict[str, list[str]]:
    if not HAVE_CORPUS:  # every test here is skipped (conftest.py)
        return {}
    lines = PAPERS.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(HEADING))
    rows: dict[str, list[str]] = {}
    for line in lines[start + 1:]:
        if not line.strip():
            if rows:
                break
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] in ("Mechanism",) or set(cells[0]) <= {"-", ":"}:
            continue
        rows[cells[0]] = cells[1:]
    return rows


PAPER = _paper_table()
OURS = {r.mechanism: r for r in mechanism_table()}


def _yes_no(v: bool | None) -> str:
    return "—" if v is None else "yes" if v else "no"


@pytest.mark.corpus
def test_same_mechanisms() -> None:
    assert list(PAPER) == list(OURS)


@pytest.mark.corpus
@pytest.mark.parametrize("mechanism", list(PAPER))
def test_row(mechanism: str) -> None:
    actions, survives, served, reusable, notes = PAPER[mechanism]
    ours = OURS[mechanism]
    if mechanism == "oracle_arbiter":
        assert (survives, served, reusable) == ("—", "—", "—")
        assert actions == "argmax total utility" and "argmax total utility" in ours.notes
        return
    assert ", ".join(ours.actions) == actions
    assert _yes_no(ours.resident_survives) == survives
    assert ours.active_served == served
    assert _yes_no(ours.active_reusable) == reusable
    for token in ours.notes:
        assert token in notes, (mechanism, token, notes)


def test_scenario_numbers() -> None:
    s = DEFAULT_SCENARIO
    assert s.live_by_step == (20, 40, 60, 70) and s.headroom == 20 and s.blocked_step == 2
    assert not s.feasible and s.resident_value == 17.0
    assert "chunking_not_live_bounding" in s.labels()
    assert "physical_capacity_infeasible" in s.labels()
    assert {r.mechanism: r.victim_harm for r in mechanism_table()}["native_eviction"] == 17.0
