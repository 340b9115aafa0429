"""explain's window (--from/--to event numbers or times, --around a finding), standard input, and
what the HTML page draws: every event of the window, protected blocks by the claim's mode, the
offload sub-lifecycle, the silent-loss mark in the legend (issue 20)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from kvclaims.cli import cli

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from gen_claims import lines as claim_lines  # noqa: E402  (bench/: the benchmark's trace)

ROOT = Path(__file__).resolve().parents[2]
PROBE = ROOT / "traces" / "vllm" / "0.34.0" / "stock-probe.kvt"


def _page(tmp_path: Path, *args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    out = tmp_path / "x.html"
    if out.exists():
        out.unlink()
    res = CliRunner().invoke(cli, ["explain", "--out", str(out), *args], input=stdin)
    return res.exit_code, (out.read_text() if out.exists() else ""), res.output


def _rows(page: str) -> list[list[int]]:
    m = re.search(r'<script id="pool" type="application/json">(.*?)</script>', page, re.S)
    assert m is not None
    return json.loads(m.group(1).replace("<\\/", "</"))["rows"]


def test_every_event_of_a_window_is_drawn(tmp_path):
    code, page, _ = _page(tmp_path, "--from", "140", "--to", "160", str(PROBE))
    assert code == 0
    assert [r[0] + 1 for r in _rows(page)] == list(range(140, 161))  # event numbers 140..160
    assert "window: event 140 to event 160 of 368 events" in page
    assert 'class="verdict">VIOLATION' in page  # the whole trace's verdict


def test_around_a_finding_centres_on_its_event(tmp_path):
    code, page, _ = _page(tmp_path, "--around", "R-hard", str(PROBE))
    assert code == 0
    numbers = [r[0] + 1 for r in _rows(page)]
    assert numbers[0] == 147 - 100 and numbers[-1] == 147 + 100  # R-hard is at event 147
    assert "stock-probe.kvt:157:1 event 147" in page
    code, page2, _ = _page(tmp_path, "--around", "hard", str(PROBE))
    assert code == 0 and _rows(page2) == _rows(page)


def test_a_time_window_and_standard_input(tmp_path, artifacts):
    src = artifacts / "conformance" / "L1_native_no_claim.jsonl"
    stamps = [json.loads(ln)["timestamp_ns"] for ln in src.read_text().splitlines()]
    want = [k + 1 for k, t in enumerate(stamps) if t - stamps[0] >= 1_000_000]
    code, page, _ = _page(tmp_path, "--from", "1ms", "-", stdin=src.read_bytes())
    assert code == 0
    assert [r[0] + 1 for r in _rows(page)] == want
    assert "<h1>&lt;stdin&gt;:" in page


@pytest.mark.parametrize("args, words", [
    (["--around", "nope"], "no finding of that rule"),
    (["--from", "0"], "event number"),
    (["--from", "20", "--to", "10"], "empty"),
    (["--from", "1", "--to", "2ms"], "both event numbers or both times"),
    (["--around", "R-hard", "--from", "3"], "without --from/--to"),
    (["--from", "9999"], "368 events"),
])
def test_window_mistakes_are_usage_errors(tmp_path, args, words):
    code, page, output = _page(tmp_path, *args, str(PROBE))
    assert code == 2 and words in output and page == ""


def test_modes_offload_and_legend(tmp_path):
    src = (ROOT / "traces" / "rules" / "ok-demote-before-loss.kvt").read_text()
    demotable = tmp_path / "demotable.kvt"
    demotable.write_text(src.replace("mode=hard_exclude", "mode=demotable"))
    code, page, _ = _page(tmp_path, str(demotable))
    assert code == 0
    assert "protected by demotable claims" in page and "protected: demotable" in page
    assert "hard claim" not in page
    assert "lost silently" in page and "resident block lost" in page  # the legend's marks
    code, page, _ = _page(tmp_path, str(ROOT / "traces" / "rules" / "ok-offload-lifecycle.kvt"))
    assert code == 0
    for st in ("offloaded", "restore_required", "restored", "failed"):
        assert f"offload: {st}" in page and f"offload {st} from event" in page


def test_long_traces_say_the_overview_is_downsampled(tmp_path):
    code, page, _ = _page(tmp_path, str(PROBE))
    assert code == 0 and "downsampled" not in page and len(_rows(page)) == 368
    big = tmp_path / "big.kvt"
    big.write_text("\n".join(claim_lines(400)) + "\n")
    code, page, _ = _page(tmp_path, str(big))
    assert code == 0 and "overview downsampled" in page and len(_rows(page)) < 2800
    code, page, _ = _page(tmp_path, "--from", "1", "--to", "2800", str(big))
    assert code == 0 and len(_rows(page)) == 2800 and "downsampled" not in page
