"""A UTF-8 byte-order mark before a trace is skipped and said once (trace.detect.skip_bom): every
stored rule trace, in both formats and with both engines, gets the same report with a mark as
without, findings at the same line and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvclaims import spec as spec_mod
from kvclaims.run import Options, check_path
from kvclaims.trace import detect

from conftest import ROOT

SPEC = spec_mod.load()
TRACES = sorted(p for sub in ("rules", "partial") for p in (ROOT / "traces" / sub).iterdir()
                if p.suffix in (".kvt", ".jsonl"))


def _key(rep) -> tuple:
    return (rep.verdict, rep.events, [(f.rule, f.status, f.line, f.column) for f in rep.findings],
            None if rep.error is None else (rep.error.line, rep.error.column))


# the replay on every file; the Z3 engine on every .kvt (a rule's .jsonl holds the same events)
CASES = [(p, "replay") for p in TRACES] + [(p, "z3") for p in TRACES
                                           if p.suffix == ".kvt" or p.parent.name == "partial"]


@pytest.mark.parametrize("trace, engine", CASES,
                         ids=[f"{e}-{p.parent.name}/{p.name}" for p, e in CASES])
def test_a_byte_order_mark_changes_nothing_but_a_note(trace: Path, engine: str, tmp_path: Path,
                                                      capsys) -> None:
    marked = tmp_path / trace.name
    marked.write_bytes(detect.BOM + trace.read_bytes())
    options = Options(engine=engine)
    plain = check_path(str(trace), SPEC, options)
    assert capsys.readouterr().err.count("byte-order mark") == 0
    with_mark = check_path(str(marked), SPEC, options)
    assert _key(with_mark) == _key(plain)
    assert capsys.readouterr().err.count("byte-order mark") == 1


def test_format_detection_sees_past_the_mark() -> None:
    assert detect.detect(detect.BOM + b"kvtrace 1\n") == "kvt"
    assert detect.detect(detect.BOM + b'{"event": "x"}\n') == "jsonl"
