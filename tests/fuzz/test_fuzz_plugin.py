"""The pytest plug-in (kvclaims.pytest_plugin): its fixtures check traces and events, its failure
output shows the located, explained finding (run under pytester), and its fuzz helper works."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvclaims.check.verdict import CONFORMANT, VIOLATION
from kvclaims.runtime.interface import vllm_installed
from kvclaims.runtime.micro import run
from kvclaims.runtime.workload import sixty_seventy_eighty

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parents[2]
SILENT = ROOT / "traces" / "rules" / "bad-silent-loss.kvt"


def test_fixture_checks_a_trace_file(kvclaims_check) -> None:
    rep = kvclaims_check(SILENT, VIOLATION)
    assert rep.first_violation().rule == "R-no-silent-loss"


def test_fixture_checks_events(kvclaims_check) -> None:
    events = run(sixty_seventy_eighty(), "hard_exclude").events
    assert kvclaims_check(events).verdict == CONFORMANT


def test_fuzz_fixture_finds_an_expected_rule(kvclaims_fuzz) -> None:
    s = kvclaims_fuzz("micro:soft_priority+silent_loss", examples=300,
                      expect_rule="R-no-silent-loss")
    assert s.failures[0].kvt is not None and s.failures[0].kvt.exists()


# The plug-in is registered through the package's `pytest11` entry point, so the pytester runs
# below load it exactly as a user's test suite does.


def test_failure_shows_the_located_finding(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(f"""
        def test_trace(kvclaims_check):
            kvclaims_check({str(SILENT)!r})
    """)
    result = pytester.runpytest_inprocess("-q")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "expected conformant, got violation" in out
    assert "VIOLATION R-no-silent-loss" in out
    assert "bad-silent-loss.kvt:14:1 event 12 (allocation_victim_selected)" in out
    assert "unreported resident loss" in out and "state before: materialized" in out
    assert "Traceback" not in out


def test_fuzz_failure_shows_the_minimal_trace(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        def test_runtime(kvclaims_fuzz):
            kvclaims_fuzz("micro:soft_priority+harm_twice", examples=300, seed=0)
    """)
    result = pytester.runpytest_inprocess("-q")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "1 failing rule(s)" in out and "R-harm (violation), minimal trace of" in out
    assert "VIOLATION R-harm" in out and ".kvt:" in out
    assert "reproduce: kvclaims fuzz --runtime" in out


@pytest.mark.skipif(vllm_installed(),
                    reason="vLLM is installed here: vllm:stock is available")
def test_unavailable_runtime_fails_cleanly(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        def test_runtime(kvclaims_fuzz):
            kvclaims_fuzz("vllm:stock", examples=10)
    """)
    result = pytester.runpytest_inprocess("-q")
    result.assert_outcomes(failed=1)
    assert "vLLM is not installed in this environment" in result.stdout.str()
