"""The command line as users and CI see it: formats, exit codes, conversion, the spec command."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from conftest import ARTIFACTS, ROOT

RULES = ROOT / "traces" / "rules"


def kv(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kvclaims.cli", *args], capture_output=True,
                          input=stdin, timeout=120)


def test_exit_codes_follow_the_verdict() -> None:
    assert kv("check", str(RULES / "ok-hard-refusal.kvt")).returncode == 0
    assert kv("check", str(RULES / "bad-silent-loss.kvt")).returncode == 1
    assert kv("check", str(RULES / "unknown-stream-gap.kvt")).returncode == 3
    # Several files: a violation outranks inconclusive, an input error outranks both.
    assert kv("check", str(RULES / "unknown-mode.kvt"), str(RULES / "bad-silent-loss.kvt")
              ).returncode == 1
    assert kv("check", str(RULES / "bad-silent-loss.kvt"), str(RULES / "missing.kvt")
              ).returncode == 2


def test_text_report_locates_and_explains() -> None:
    out = kv("check", str(RULES / "bad-silent-loss.kvt")).stdout.decode()
    assert "VIOLATION R-no-silent-loss" in out
    assert "bad-silent-loss.kvt:14:1" in out
    assert "14 | block 4 victim request=a reason=cached_prefix_reuse" in out
    assert "state before: materialized" in out
    assert "reconstructed outcome" in out
    assert "Traceback" not in out


def test_json_report_version_2() -> None:
    proc = kv("check", "--format", "json", str(RULES / "bad-attribution-smear.kvt"),
              str(RULES / "ok-hard-refusal.kvt"))
    lines = proc.stdout.decode().splitlines()
    assert len(lines) == 3  # two reports, then the closing summary (docs/fleet.md)
    bad, ok, summary = (json.loads(x) for x in lines)
    assert summary["kind"] == "summary" and summary["files"] == 2
    assert bad["report_version"] == 2 and bad["verdict"] == "violation"
    assert list(bad)[:2] == ["report_version", "result"] and bad["result"] == "violation"
    assert bad["gates"] == [] and ok["gates"] == []  # one shape: a list, also without --require
    f = bad["findings"][0]
    assert {k for k in f} >= {"status", "rule", "claim_id", "request_id", "line",
                              "event_index", "message"}
    assert f["rule"] == "R-attribution" and f["claim_id"] == "claim:x" and f["line"] == 15
    assert ok["verdict"] == "conformant"
    req = next(r for r in ok["requests"] if r["request_id"] == "a")
    assert req == {"request_id": "a", "outcome": "refused", "blocking_claim_ids": ["claim:r"],
                   "capacity_shortfall_blocks": 2, "free_blocks_before_allocate": 4,
                   "feasibility": "infeasible_preserve_resident_and_active",
                   "future_reuse_admitted": False, "allocated_blocks": 0}
    claim = ok["claims"][0]
    assert claim["rules"]["R-attribution"] == "pass" and claim["victims"] == 0


def test_junit_is_valid_xml_with_failures() -> None:
    proc = kv("check", "--format", "junit", str(RULES / "bad-hard-victim.kvt"),
              str(RULES / "ok-hard-refusal.kvt"))
    assert proc.returncode == 1
    root = ET.fromstring(proc.stdout)
    suites = root.findall("testsuite")
    assert [s.get("failures") for s in suites] == ["1", "0"]
    failure = root.find(".//failure")
    assert failure is not None and "bad-hard-victim.kvt:15:1" in failure.get("message")


@pytest.mark.corpus
def test_require_gate_fails_the_check() -> None:
    trace = str(ARTIFACTS / "offload_lifecycle" / "success_restore.jsonl")
    proc = kv("check", "--require", "offloadable", trace)
    assert proc.returncode == 1
    assert "gate offloadable: FAIL  missing: ordered_lifecycle_events, " \
        "restoration_failure_outcome" in proc.stdout.decode()
    proc = kv("check", "--require", "offloadable",
              str(ARTIFACTS / "offload_lifecycle" / "positive_bundle.jsonl"))
    assert proc.returncode == 0 and "gate offloadable: PASS" in proc.stdout.decode()


def test_convert_round_trip_through_the_cli() -> None:
    src = RULES / "ok-offload-lifecycle.kvt"
    as_jsonl = kv("convert", "--to", "jsonl", str(src)).stdout
    back = kv("convert", "--to", "kvt", "-", stdin=as_jsonl)
    assert back.returncode == 0
    again = kv("convert", "--to", "jsonl", "-", stdin=back.stdout).stdout
    assert again == as_jsonl


def test_convert_reports_input_errors() -> None:
    proc = kv("convert", "--to", "kvt", "-", stdin=b"kvtrace 1\nclaim c frobnicated\n")
    assert proc.returncode == 2
    assert b"<stdin>" not in proc.stderr or b":2:" in proc.stderr
    assert b"Traceback" not in proc.stderr


def test_spec_command_renders_docs() -> None:
    out = kv("spec").stdout.decode()
    assert out == (ROOT / "docs" / "spec.md").read_text()
