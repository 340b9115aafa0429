"""The bad-lowering suite: every bad lowering of docs/model.md §9 is present and rejected."""

from __future__ import annotations

import io
from pathlib import Path

from kvclaims.lower.commands import prove_command
from kvclaims.lower.prove import prove

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "traces" / "bad-lowering"

# docs/model.md §9 "Bad-lowering suite", item by item -> case file
MODEL_LIST = {
    "generic counters only": "generic-counters-only",
    "restore after reuse": "restore-after-reuse",
    "fallback recompute as restore": "fallback-recompute-as-restore",
    "wrong-claim failure outcome": "wrong-claim-failure-outcome",
    "unclaimed failure": "unclaimed-failure",
    "post-hoc claim naming": "post-hoc-claim-naming",
    "missing identity or anchors": "missing-identity",
    "missing ordering": "missing-ordering",
    "ordinary offload without claim metadata": "ordinary-offload-no-claim",
    "blocking-claim smear": "blocking-claim-smear",
    "scheduler event after request termination": "scheduler-event-after-termination",
    "refusal misclassified as native pre-admission refusal": "refusal-misclassified-native",
    "hard_protected onto soft priority": "hard-onto-soft-priority",
    "hard_protected onto TTL": "hard-onto-ttl",
    "hard_protected onto write no-admit": "hard-onto-write-no-admit",
    "hard_protected onto lock_ref": "hard-onto-lock-ref",
    "hard_protected onto LMCache controller pin": "hard-onto-lmcache-pin",
    # KV hints (docs/lowering.md "KV hints"; spec/kvhints.toml)
    "a Pin accepted and later clipped with no event": "hint-pin-clip-no-event",
    "a Pin clip reported after the loss": "hint-pin-clip-after-loss",
    "a Retain treated as hard": "hint-retain-as-hard",
    "a Retain treated as soft priority": "hint-retain-as-soft",
    "a Prefetch treated as hard": "hint-prefetch-as-hard",
    "a Demote accepted without a demotion event": "hint-demote-no-event",
    "a deferred hint treated as accepted": "hint-deferred-as-accepted",
    "a missing outcome read as accepted": "hint-missing-as-accepted",
    "a clipped answer read as accepted": "hint-clipped-as-accepted",
    "a rejected hint read as accepted": "hint-rejected-as-accepted",
}


def test_every_model_bad_lowering_has_a_case():
    files = {p.stem for p in SUITE.glob("*.toml")}
    assert set(MODEL_LIST.values()) == files


def test_every_case_is_rejected_with_its_reason():
    results = prove(SUITE)
    assert len(results) == len(MODEL_LIST)
    failed = [(r.name, r.why) for r in results if not r.ok]
    assert failed == []
    for r in results:
        if r.kind in ("semantic", "hint"):
            assert r.decision.witness.confirmed and len(r.decision.witness.events) <= 8


def test_prove_command_prints_witnesses_and_exits_0():
    out = io.StringIO()
    assert prove_command(str(SUITE), out) == 0
    text = out.getvalue()
    n = len(MODEL_LIST)
    assert f"{n}/{n} bad lowerings rejected" in text and "kvtrace 1" in text


def test_an_accepted_lowering_fails_prove(tmp_path):
    case = tmp_path / "sound.toml"
    case.write_text('name = "hard onto hard exclusion"\nkind = "semantic"\n'
                    'mode = "hard_protected"\nprimitive = "hard_exclude_refusal"\n'
                    'expected_class = "rejected"\nexpected_rule = "R-hard"\n')
    out = io.StringIO()
    assert prove_command(str(case), out) == 1
    assert "FAILED" in out.getvalue()


def test_a_wrong_reason_fails_prove(tmp_path):
    text = (SUITE / "post-hoc-claim-naming.toml").read_text()
    case = tmp_path / "wrong.toml"
    case.write_text(text.replace('expected = ["R-acceptance", "pre_registered_accepted_claim"]',
                                 'expected = ["R-hard"]'))
    assert prove_command(str(case), io.StringIO()) == 1


def test_bad_case_file_is_a_usage_error(tmp_path):
    case = tmp_path / "broken.toml"
    case.write_text('name = "x"\nkind = "semantic"\n')
    assert prove_command(str(case), io.StringIO()) == 2
