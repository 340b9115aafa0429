"""kvclaims explain: timeline data, PNG/SVG/HTML pictures, the ASCII strip (issue 9)."""

from __future__ import annotations

import io
import json
import re
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from kvclaims.explain import explain_command, read_timeline
from kvclaims.report.timeline import build_timeline
from kvclaims.explain import strips_for_report
from kvclaims.report.ascii_timeline import ascii_timeline
from kvclaims.run import Options, check_path, open_events

ROOT = Path(__file__).resolve().parents[2]
CONF = "conformance"


def _l1(a: Path) -> str:
    return str(a / CONF / "L1_native_no_claim.jsonl")


def _l3(a: Path) -> str:
    return str(a / CONF / "L3_hard_claim_infeasibility.jsonl")


def _l4(a: Path) -> str:
    return str(a / CONF / "L4_demote_before_loss.jsonl")


@pytest.fixture(scope="module")
def silent_trace(tmp_path_factory, artifacts) -> str:
    """The 60/70/80 hard-claim probe with its harm report dropped: a silent resident loss."""
    src = artifacts / "claim_metadata" / "claim_metadata_60_70_80.jsonl"
    lines = src.read_text().splitlines(keepends=True)
    kept = [ln for ln in lines if json.loads(ln).get("event") != "resident_claim_harmed"]
    assert len(kept) == len(lines) - 1
    out = tmp_path_factory.mktemp("silent") / "silent_60_70_80.jsonl"
    out.write_text("".join(kept))
    return str(out)


@pytest.fixture(scope="module")
def cases(artifacts, silent_trace) -> dict[str, str]:
    return {"L1": _l1(artifacts), "L3": _l3(artifacts), "L4": _l4(artifacts),
            "silent": silent_trace}


# ---- timeline data ------------------------------------------------------------------------

def test_l1_resident_band_collapses(artifacts, spec):
    tl = read_timeline(_l1(artifacts), spec)
    res = [s.resident for s in tl.pool]
    assert max(res) == 60 and res[-1] == 10
    assert tl.pool[-1].protected == 0 and not tl.claims
    assert tl.resident_victims_total == 50
    assert all(v.claim_id is None for v in tl.victims)
    active = {r.request_id: r for r in tl.requests}["active"]
    assert active.outcome == "served" and active.allocated == 70
    assert not tl.findings and tl.verdict == "conformant" and not tl.downsampled


def test_l3_protected_band_intact_and_active_refused(artifacts, spec):
    tl = read_timeline(_l3(artifacts), spec)
    assert tl.pool[-1].protected == 60 and tl.pool[-1].resident == 60
    assert tl.resident_victims_total == 0
    # once materialized the protected band never drops
    peak = next(k for k, s in enumerate(tl.pool) if s.protected == 60)
    assert all(s.protected == 60 for s in tl.pool[peak:])
    lanes = {r.request_id: r for r in tl.requests}
    active = lanes["active"]
    assert active.outcome == "refused"
    assert active.blocking_claim_ids == ("claim:resident",)
    (mark,) = active.marks
    assert mark.verb == "refused" and mark.blocking_claim_ids == ("claim:resident",)
    (claim,) = tl.claims
    assert claim.points[-1].leading == 60 and claim.points[-1].holds


def test_l4_demoted_before_loss(artifacts, spec):
    tl = read_timeline(_l4(artifacts), spec)
    (claim,) = tl.claims
    states = [p.state for p in claim.points]
    first_loss = min(v.index for v in tl.victims if v.resident)
    demoted_at = next(p.index for p in claim.points if p.state == "demoted")
    assert demoted_at < first_loss and states[-1] == "demoted"
    assert all(v.claim_id == "claim:resident" for v in tl.victims if v.resident)
    assert tl.verdict == "conformant"


def test_silent_loss_finding_pinned(silent_trace, spec):
    tl = read_timeline(silent_trace, spec)
    rules = {f.rule for f in tl.findings}
    assert "R-no-silent-loss" in rules
    f = next(f for f in tl.findings if f.rule == "R-no-silent-loss")
    victim = next(v for v in tl.victims if v.index == f.event_index)
    assert victim.resident and victim.claim_id == "claim:resident"
    (claim,) = tl.claims
    assert any(p.silent for p in claim.points)


def test_downsampling_keeps_findings_and_says_so(spec):
    src = (ROOT / "traces" / "rules" / "bad-silent-loss.kvt").read_bytes()
    head, body = src.split(b"claim claim:r accepted", 1)
    filler = b"".join(b"block %d victim request=f reason=free_uncached usable=8\n" % (100 + k)
                      for k in range(3000))
    data = head + filler + b"claim claim:r accepted" + body
    events = open_events(io.BufferedReader(io.BytesIO(data)), "long.kvt", spec, Options())
    tl = build_timeline(events, spec, "long.kvt", max_points=400)
    assert tl.events > 3000 and tl.downsampled
    assert len(tl.pool) <= 420
    assert any("downsampled" in n for n in tl.notes)
    drawn = {s.index for s in tl.pool}
    assert all(f.event_index in drawn for f in tl.findings)
    assert tl.pool[-1].index == tl.events - 1


# ---- pictures -----------------------------------------------------------------------------

def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("name", ["L1", "L3", "L4", "silent"])
def test_png(cases, name, tmp_path):
    out = tmp_path / f"{name}.png"
    assert explain_command(cases[name], None, str(out), None) == 0
    w, h = _png_size(out)
    assert w >= 1000 and h >= 600
    assert out.stat().st_size > 30_000


@pytest.mark.parametrize("name", ["L3", "silent"])
def test_svg(cases, name, tmp_path):
    out = tmp_path / f"{name}.svg"
    assert explain_command(cases[name], None, str(out), None) == 0
    root = ET.parse(out).getroot()
    assert root.tag.endswith("svg")
    assert out.stat().st_size > 20_000


@pytest.mark.parametrize("name", ["L1", "L3", "L4", "silent"])
def test_html_self_contained(cases, name, tmp_path, spec):
    out = tmp_path / f"{name}.html"
    assert explain_command(cases[name], None, str(out), None) == 0
    text = out.read_text(encoding="utf-8")
    report = check_path(cases[name], spec)
    for f in report.findings:
        assert f.rule in text
    low = text.lower()
    for bad in ("http://", "https://", "//cdn", "src=", "<link", "@import", "url("):
        assert bad not in low, bad
    assert "http" not in low
    assert text.count("<svg") == 1 and "<title>" in text
    svg = re.search(r"<svg.*</svg>", text, re.S)
    assert svg is not None
    ET.fromstring(svg.group(0))  # the inline SVG is well-formed XML


def test_html_silent_names_rule(cases, tmp_path):
    out = tmp_path / "s.html"
    assert explain_command(cases["silent"], "claim:resident", str(out), None) == 0
    assert "R-no-silent-loss" in out.read_text(encoding="utf-8")


# ---- CLI contract -------------------------------------------------------------------------

def test_errors_are_located_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"event": "allocation_victim_selected", "schema_version": 1}\n{not json\n')
    err = io.StringIO()
    assert explain_command(str(bad), None, str(tmp_path / "x.html"), None, stderr=err) == 2
    msg = err.getvalue()
    assert re.search(r"bad\.jsonl:\d+:\d+: ", msg) and "Traceback" not in msg
    assert not (tmp_path / "x.html").exists()
    err = io.StringIO()
    assert explain_command(str(tmp_path / "missing.kvt"), None, str(tmp_path / "x.png"), None,
                           stderr=err) == 2
    assert "cannot open" in err.getvalue()
    err = io.StringIO()
    assert explain_command(str(ROOT / "traces/rules/bad-silent-loss.kvt"), None,
                           str(tmp_path / "x.pdf"), None, stderr=err) == 2
    err = io.StringIO()
    assert explain_command(str(ROOT / "traces/rules/bad-silent-loss.kvt"), "claim:nope",
                           str(tmp_path / "x.html"), None, stderr=err) == 2
    assert "claim:r" in err.getvalue()


# ---- ASCII strip --------------------------------------------------------------------------

def test_ascii_strip_for_silent_loss(silent_trace, spec):
    tl = read_timeline(silent_trace, spec)
    lines = ascii_timeline(tl, "claim:resident", width=60)
    assert len(lines) == 5
    assert all(len(ln.split("|")[1]) == 60 for ln in lines[1:4])
    assert "!" in lines[1] and "^" in lines[3] and "R-no-silent-loss at event" in lines[4]


def test_strips_for_report(spec):
    path = str(ROOT / "traces" / "rules" / "bad-silent-loss.kvt")
    report = check_path(path, spec)
    strips = strips_for_report(report, spec)
    k = next(i for i, f in enumerate(report.findings) if f.rule == "R-no-silent-loss")
    assert "!" in strips[k][1] and "^" in strips[k][3]
