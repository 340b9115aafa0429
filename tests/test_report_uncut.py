"""No report line of any format loses a character of an id or a number, at any width (issue 20).

Generated traces (a soft claim that loses a block silently, with ids and block numbers drawn by
Hypothesis, ids up to 90 characters, longer than the narrowest width) are decided once and
rendered as text at a drawn width, as JSON, JUnit and the explain HTML page. Every claim id,
request id and block number of the trace, and every finding's location, must stand whole on one
line of each format: wrapped, never cut, never split. (Every block number is checked in the HTML
page, which draws each victim.)"""

from __future__ import annotations

import html
import io
import json
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from kvclaims.report.timeline import build_timeline
from kvclaims.report import json as json_report
from kvclaims.report import junit
from kvclaims.report.html import render_html
from kvclaims.report.location import location
from kvclaims.report.text import render
from kvclaims import spec as spec_mod
from kvclaims.run import Options, decide_trace, open_events

SPEC = spec_mod.load()

IDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCXYZ0123456789:-_.", min_size=1,
              max_size=90).filter(lambda s: s[0].isalpha() and s not in ("null", "true", "false"))
BLOCKS = st.integers(min_value=0, max_value=10 ** 15)


def _trace(claim: str, req_a: str, req_b: str, blocks: list[int], usable: int) -> str:
    b1, b2, b3 = blocks
    return "\n".join([
        "kvtrace 1",
        f"block {b1} victim request={req_a} reason=free_uncached usable={usable}",
        f"block {b2} victim request={req_a} reason=free_uncached usable={usable}",
        f"claim {claim} accepted mode=soft_priority required=2 "
        f"predicate=leading_prefix_at_least(2) prefix=p-{claim} usable={usable}",
        f"block {b1} materialized claim={claim} prefix=p-{claim} position=0",
        f"block {b2} materialized claim={claim} prefix=p-{claim} position=1",
        f"claim {claim} materialized",
        f"block {b3} victim request={req_b} reason=free_uncached usable={usable}",
        f"block {b2} victim request={req_b} reason=cached_prefix_reuse usable={usable}",
    ]) + "\n"


def _whole_on_a_line(token: str, text: str) -> bool:
    return any(token in line for line in text.splitlines())


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(claim=IDS, req_a=IDS, req_b=IDS,
       blocks=st.lists(BLOCKS, min_size=3, max_size=3, unique=True),
       usable=st.integers(min_value=8, max_value=10 ** 12),
       width=st.integers(min_value=20, max_value=240))
def test_no_line_loses_a_character(claim, req_a, req_b, blocks, usable, width):
    if len({claim, req_a, req_b}) < 3:
        return
    spec = SPEC
    src = _trace(claim, req_a, req_b, blocks, usable)
    events = list(open_events(io.BufferedReader(io.BytesIO(src.encode())), "t.kvt", spec,
                              Options()))
    report = decide_trace(spec, events, file="t.kvt")
    assert report.result == "violation" and report.findings

    buf = io.StringIO()
    render(report, spec, Console(file=buf, width=width, soft_wrap=True, color_system=None),
           width=width)
    text = buf.getvalue()
    as_json = json_report.render(report)
    as_junit = junit.render([report])
    page = render_html(build_timeline(events, spec, "t.kvt", decided=report))

    # what the text report shows: the ids, the lost block, the quoted line's numbers
    tokens = [claim, req_a, req_b, str(usable), str(blocks[1])]
    locations = [location("t.kvt", f.line, f.column, f.event_index) for f in report.findings]
    for token in tokens + locations:
        assert _whole_on_a_line(token, text), (token, width, text)
    # a line longer than the width holds one word only (an id or number longer than a line)
    for line in text.splitlines():
        if len(line) > width:
            assert (len(line.split()) == 1 or line.strip() in locations
                    or line.split()[0] in ("state", "leading", "events")), line
    data = json.loads(as_json)
    assert [f["location"] for f in data["findings"]] == locations
    for token in [claim, req_a, req_b, str(blocks[1])]:
        assert _whole_on_a_line(token, as_json), token
    for token in [claim, *locations]:
        assert _whole_on_a_line(html.escape(token, quote=True), as_junit), token
        assert _whole_on_a_line(html.escape(token, quote=True), page), token
    for n in (str(b) for b in blocks):
        assert re.search(rf"\b{n}\b", page), n


def test_width_flag_wraps_and_off_a_terminal_lines_are_whole():
    from pathlib import Path

    from click.testing import CliRunner

    from kvclaims.cli import cli

    probe = str(Path(__file__).resolve().parents[1] / "traces" / "vllm" / "0.34.0" / "stock-probe.kvt")
    whole = CliRunner().invoke(cli, ["check", probe]).output
    narrow = CliRunner().invoke(cli, ["check", "--width", "40", probe]).output
    # every id, number and location of the whole report is in the narrow one, whole (the claim
    # table becomes records and the strips narrower: their scale line is left out)
    def data(text):
        return {t.strip(",;()") for ln in text.splitlines() if "one column =" not in ln
                for t in ln.split() if any(ch.isdigit() or ch == ":" for ch in t)}
    assert data(whole) <= data(narrow)
    assert any(len(ln) > 40 for ln in whole.splitlines())
    for ln in narrow.splitlines():
        assert len(ln) <= 40 or len(ln.split()) == 1 or ln.split()[0] in (
            "state", "leading", "events") or ln.strip().startswith(probe), ln
    # off a terminal each logical line is written whole: the rule's sentence is on one line
    assert any(ln.startswith("  rule: ") and ln.endswith("(docs/model.md §6)")
               for ln in whole.splitlines())
