"""The timeline is built incrementally (only the claims an event can change are sampled), and it
equals the timeline sampled from the full snapshot after every event, on every trace the
repository ships and every corpus trace (issue 20: rendering linear in the report size)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvclaims.check.replay import Replay
from kvclaims.report.timeline import build_timeline
from kvclaims.run import Options, open_events
from kvclaims.trace.model import InputError

ROOT = Path(__file__).resolve().parents[2]
TRACES = sorted(p for p in (ROOT / "traces").rglob("*") if p.suffix in (".kvt", ".jsonl"))


def _events(path: Path, spec):
    with open(path, "rb") as fh:
        try:
            return list(open_events(fh, str(path), spec, Options()))
        except (InputError, UnicodeDecodeError):
            return None


def _full(events, spec):
    """Claim step series and protected band from Replay.snapshot() after every event."""
    replay = Replay(spec, "t")
    points: dict[str, list[tuple]] = {}
    protected = []
    for ev in events:
        replay.feed(ev)
        s = replay.snapshot()
        protected.append(min(s["protected"], s["resident"]) if s["resident"] else s["protected"])
        for cid, c in s["claims"].items():
            sig = (c["state"], c["leading"], c["surviving"], c["required"], c["holds"],
                   bool(c["silent"]), replay.claims[cid].off_state or None)
            ps = points.setdefault(cid, [])
            if not ps or ps[-1][1:] != sig:
                ps.append((s["index"], *sig))
    return points, protected


def _compare(path: Path, spec) -> None:
    events = _events(path, spec)
    if not events:
        # a trace the reader stops in has no whole timeline to compare: it must then be the
        # input error `check` decides (not a reader failing on a valid trace)
        from kvclaims.check.verdict import INPUT_ERROR
        from kvclaims.run import decide_path

        assert decide_path(str(path), spec).result == INPUT_ERROR, path
        return
    points, protected = _full(events, spec)
    tl = build_timeline(events, spec, str(path), max_points=10 ** 9)
    got = {c.claim_id: [(p.index, p.state, p.leading, p.surviving, p.required, p.holds,
                         p.silent, p.offload) for p in c.points] for c in tl.claims}
    assert got == points
    assert [s.protected for s in tl.pool] == protected


@pytest.mark.parametrize("path", TRACES, ids=lambda p: str(p.relative_to(ROOT)))
def test_incremental_equals_full_snapshot(path, spec):
    _compare(path, spec)


def test_window_keeps_the_state_at_its_start(spec):
    path = ROOT / "traces" / "rules" / "ok-offload-lifecycle.kvt"
    events = _events(path, spec)
    whole = build_timeline(events, spec, str(path))
    part = build_timeline(events, spec, str(path), window=(4, 7))
    assert part.window == (4, 7) and [s.index for s in part.pool] == [4, 5, 6, 7]
    c_whole, c_part = whole.claims[0], part.claims[0]
    at4 = [p for p in c_whole.points if p.index <= 4][-1]
    first = [p for p in c_part.points if p.index <= 4][-1]
    assert (first.state, first.offload) == (at4.state, at4.offload)
    # one point before the window at most: the state the claim enters it with
    assert all(p.index >= 4 for p in c_part.points[1:]) and c_part.points[-1].index <= 7
    assert {p.offload for p in c_whole.points} >= {"offloaded", "restore_required", "restored",
                                                   "failed"}


def test_incremental_equals_full_snapshot_corpus(artifacts, spec):
    paths = sorted(artifacts.rglob("*.jsonl"))
    assert paths
    for p in paths:
        events = _events(p, spec)
        if events:
            points, protected = _full(events, spec)
            tl = build_timeline(events, spec, str(p), max_points=10 ** 9)
            got = {c.claim_id: [(q.index, q.state, q.leading, q.surviving, q.required, q.holds,
                                 q.silent, q.offload) for q in c.points] for c in tl.claims}
            assert got == points, p.name
            assert [s.protected for s in tl.pool] == protected, p.name
