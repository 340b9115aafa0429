"""A trace is read once (issue 21; docs/architecture.md, the pipeline; kvclaims.run).

`decide_path` streams a file through the written-order replay and, when some other order may be
admissible (a batch, a skew), hands the events it kept to the Z3 engine: the file is opened once,
and the verdict is the one `decide_trace` gives for the same events in memory. With
--engine auto the kept events are bounded (run.KEEP_EVENTS): a longer partly ordered trace is
inconclusive, never a pass, and says why; --engine z3 keeps them all.
"""

from __future__ import annotations

import builtins
import io
from pathlib import Path
from typing import Any

import pytest

from kvclaims import run
from kvclaims import spec as spec_mod
from kvclaims.check.verdict import CONFORMANT, INCONCLUSIVE, UNKNOWN
from kvclaims.run import Options, decide_path, decide_trace
from kvclaims.trace.partial_input import read_partial

from conftest import ROOT

SPEC = spec_mod.load()
PARTIAL = sorted((ROOT / "traces" / "partial").glob("*.kv*")) + sorted(
    (ROOT / "traces" / "partial").glob("*.jsonl"))
OTHERS = sorted((ROOT / "traces" / "litmus").glob("*.kvt"))[:4]


class Opened:
    """Counts the files kvclaims.run opens (it opens with the builtin `open`)."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def __call__(self, file: Any, *args: Any, **kwargs: Any) -> Any:
        self.paths.append(str(file))
        return builtins.open(file, *args, **kwargs)


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> Opened:
    counter = Opened()
    monkeypatch.setattr(run, "open", counter, raising=False)
    return counter


def _same(a: Any, b: Any) -> None:
    assert (a.result, a.verdict, a.error) == (b.result, b.verdict, b.error)
    assert [(f.rule, f.status, f.event_index) for f in a.findings] == \
        [(f.rule, f.status, f.event_index) for f in b.findings]
    assert [(c.claim_id, c.verdict) for c in a.claims] == [(c.claim_id, c.verdict) for c in b.claims]


def _id(p: Path) -> str:
    return str(p.relative_to(ROOT))


@pytest.mark.parametrize("engine", ["auto", "z3"])
@pytest.mark.parametrize("path", PARTIAL + OTHERS, ids=_id)
def test_a_file_is_opened_once_and_decided_as_its_events_in_memory(path: Path, engine: str,
                                                                    opened: Opened) -> None:
    options = Options(engine=engine)
    rep = decide_path(str(path), SPEC, options)
    assert opened.paths == [str(path)]
    _same(rep, decide_trace(SPEC, read_partial(path, str(path), SPEC), options, str(path)))


def test_standard_input_is_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    path = ROOT / "traces" / "partial" / "batch-every-order-violates.kvt"
    data = path.read_bytes()

    class Counted(io.BytesIO):
        given = 0

        def readinto(self, b: Any) -> int:
            n = super().readinto(b)
            Counted.given += n
            return n

    class Stdin:
        buffer = io.BufferedReader(Counted(data))  # type: ignore[arg-type]

    monkeypatch.setattr(run.sys, "stdin", Stdin)
    rep = decide_path("-", SPEC, Options())
    assert Counted.given == len(data)  # every byte once: a second pass would read more
    _same(rep, decide_trace(SPEC, read_partial(path, "<stdin>", SPEC), Options(), "<stdin>"))


@pytest.mark.parametrize("path", PARTIAL, ids=_id)
def test_auto_keeps_a_bounded_number_of_events(path: Path, monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    trace = read_partial(path, str(path), SPEC)
    n = len(trace.events)
    every = decide_path(str(path), SPEC, Options(engine="z3"))
    # Enough kept: the Z3 engine decides, as with every event kept.
    monkeypatch.setattr(run, "KEEP_EVENTS", n)
    _same(decide_path(str(path), SPEC, Options()), every)
    # One too few: the written order only, inconclusive (never a pass), saying why.
    monkeypatch.setattr(run, "KEEP_EVENTS", n - 1)
    rep = decide_path(str(path), SPEC, Options())
    assert rep.verdict == INCONCLUSIVE and rep.result != CONFORMANT
    why = [f for f in rep.findings if f.status == UNKNOWN and "keeps for the Z3 engine" in f.message]
    assert len(why) == 1 and f"more than the {n - 1} events" in why[0].message
    assert rep.extra["engine"] == "replay"
    # --engine z3 keeps every event whatever the bound.
    _same(decide_path(str(path), SPEC, Options(engine="z3")), every)


def test_a_long_totally_ordered_trace_keeps_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    path = ROOT / "traces" / "litmus" / "L1.kvt"
    kept: list[run.Kept] = []
    real = run.Kept

    def spy(limit: int | None) -> run.Kept:
        kept.append(real(limit))
        return kept[-1]

    monkeypatch.setattr(run, "KEEP_EVENTS", 2)
    monkeypatch.setattr(run, "Kept", spy)
    rep = decide_path(str(path), SPEC, Options())
    assert kept and kept[0].let_go and kept[0].events == []
    monkeypatch.setattr(run, "KEEP_EVENTS", 1 << 20)
    _same(rep, decide_path(str(path), SPEC, Options()))  # the same decision: its order is total
