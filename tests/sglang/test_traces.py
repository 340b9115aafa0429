"""traces/sglang/ regenerates byte for byte from SGLang's real code, and each trace gives the
verdict expected.json records (the lowering table's SGLang trace anchors rely on them)."""

from __future__ import annotations

import json
from pathlib import Path

from kvclaims.kvstream import check_records
from kvclaims.run import decide_path
from kvclaims.runtime.sglang.probe import write_traces
from kvclaims.trace.vllm_events import load_manifest

TRACES = Path(__file__).resolve().parents[2] / "traces" / "sglang"


def test_kvt_regenerate_byte_for_byte(tmp_path):
    write_traces(str(tmp_path))
    for name in ("stock-probe.kvt", "plugin-probe.kvt", "plugin-demote.kvt"):
        assert (tmp_path / name).read_text() == (TRACES / name).read_text(), name
    assert json.loads((tmp_path / "expected.json").read_text()) == json.loads(
        (TRACES / "expected.json").read_text())


def test_committed_traces_give_their_verdicts(spec):
    expected = json.loads((TRACES / "expected.json").read_text())
    for name, exp in expected.items():
        path = TRACES / name
        if name.endswith(".kvbatches"):
            rep = check_records(path.read_bytes(), str(path), spec,
                                load_manifest(str(TRACES / exp["claims"])))
        else:
            rep = decide_path(str(path), spec)
        assert rep.verdict == exp["verdict"], name
        violated = sorted({f.rule for f in rep.findings if f.status == "violation"})
        assert violated == exp["violated"], name
