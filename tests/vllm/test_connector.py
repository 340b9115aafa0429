"""The restore-failure witness on vLLM's real scheduler (every supported version) (issue 6 item 6, docs/model.md §4, §6).

The host-tier connector is loaded by vLLM's own KVConnectorFactory through
`kv_connector_module_path`; the claim-aware scheduler through `scheduler_cls`; the failed load goes
through vLLM's real `Scheduler._handle_invalid_blocks`. The witness passes the offloadable bundle;
each control is rejected by the checker or the gate.
"""

from __future__ import annotations

import json

import pytest
from vllm.v1.request import RequestStatus

from kvclaims.run import Options, check_path
from kvclaims.runtime.vllm.connector import HostTierConnector
from kvclaims.runtime.vllm.restore import CLAIM_ID, OTHER_ID, VARIANTS, run_restore
from kvclaims.runtime.vllm.scheduler_plugin import ClaimAwareScheduler

REQUIRE = Options(require=("offloadable",))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("restore")
    out = {}
    for v in VARIANTS:
        r = run_restore(v)
        path = d / f"{v}.kvt"
        r.harness.write_kvt(str(path))
        out[v] = (r, path)
    yield out
    for r, _ in out.values():
        r.harness.close()


def check(spec, path):
    rep = check_path(str(path), spec, REQUIRE)
    return rep, rep.gates[0], sorted({f.rule for f in rep.findings if f.status == "violation"})


def kinds(r):
    return [e.kind for e in r.events]


def test_vllm_loads_the_connector_through_its_module_path(runs):
    r, _ = runs["witness"]
    s = r.harness.scheduler
    assert isinstance(s, ClaimAwareScheduler)
    assert type(s.connector) is HostTierConnector
    assert type(r.harness.worker_connector) is HostTierConnector
    kt = r.harness.vllm_config.kv_transfer_config
    assert kt.kv_connector_module_path == "kvclaims.runtime.vllm.connector"
    assert kt.kv_load_failure_policy == "fail"
    assert s.recompute_kv_load_failures is False  # vLLM's own reading of the policy


def test_witness_passes_the_whole_offloadable_bundle(spec, runs):
    r, path = runs["witness"]
    rep, gate, violated = check(spec, path)
    assert rep.verdict == "conformant" and violated == []
    assert gate.missing == () and gate.violated == () and gate.passed
    # the numbers come from vLLM: 4 blocks restored byte-exact from the host tier, then the
    # injected failure reported as vLLM block ids, and vLLM failed the request
    assert [ok for _, _, ok in r.restore_checks] == [1, 1, 1, 1]
    assert [rid for rid, _ in r.load_errors] == ["r3"] and len(r.load_errors[0][1]) == 4
    assert r.outcomes["r2"] == "finished" and r.outcomes["r3"] == "refused"
    seq = [k for k in kinds(r) if k.startswith("resident_claim_") or k == "active_request_refused"]
    assert seq == ["resident_claim_accepted", "resident_claim_materialized",
                   "resident_claim_offloaded", "resident_claim_restore_required",
                   "resident_claim_restored", "resident_claim_reuse_after_restore",
                   "resident_claim_offloaded", "resident_claim_restore_required",
                   "resident_claim_restoration_failed", "active_request_refused"]
    fail = next(e for e in r.events if e.kind == "resident_claim_restoration_failed").fields
    assert fail["claim_id"] == fail["outcome_claim_id"] == CLAIM_ID
    assert fail["claim_scoped_outcome_type"] == "refusal"
    assert fail["controlled_restoration_unavailable"] is True
    assert fail["injected_restoration_failure"] is True
    ref = next(e for e in r.events if e.kind == "active_request_refused").fields
    assert ref["blocking_claim_ids"] == [CLAIM_ID]
    assert ref["feasibility"] == "infeasible_restore_claimed_kv"


def test_fail_policy_is_vllms_own_error_path(runs):
    r, _ = runs["witness"]
    step = r.harness.steps[-1]
    assert step.finished == {"r3": "error"}  # FinishReason.ERROR from update_from_output
    assert "r3" not in r.harness.scheduler.requests
    assert r.harness.requests["r3"].status == RequestStatus.FINISHED_ERROR


def test_control_wrong_claim_is_rejected(spec, runs):
    r, path = runs["wrong-claim"]
    rep, gate, violated = check(spec, path)
    assert rep.verdict == "violation"
    assert violated == ["R-attribution", "R-offload"]
    assert "restoration_failure_outcome" in gate.missing and not gate.passed
    fail = next(e for e in r.events if e.kind == "resident_claim_restoration_failed").fields
    assert fail["claim_id"] == CLAIM_ID and fail["outcome_claim_id"] == OTHER_ID


def test_control_unclaimed_failure_has_no_claim_scoped_outcome(spec, runs):
    r, path = runs["unclaimed-failure"]
    rep, gate, violated = check(spec, path)
    assert r.outcomes["u2"] == "errored"  # vLLM failed it
    assert "resident_claim_restoration_failed" not in kinds(r)
    assert "active_request_refused" not in kinds(r)
    assert r.harness.scheduler.kvclaims_unclaimed_load_failures[0][0] == "u2"
    assert gate.missing == ("ordered_lifecycle_events", "restoration_failure_outcome")
    assert not gate.passed


def test_control_fallback_recompute_is_not_restoration(spec, runs):
    r, path = runs["recompute"]
    assert r.harness.scheduler.recompute_kv_load_failures is True
    assert r.outcomes["r3"] == "finished"  # served by recompute after the failed load
    assert [rid for rid, _ in r.load_errors] == ["r3"]
    rep, gate, violated = check(spec, path)
    assert rep.verdict == "violation" and violated == ["R-offload"]
    assert "R-offload" in gate.violated and not gate.passed
    assert "restoration_failure_outcome" in gate.missing


def test_control_generic_counters_only_is_rejected(spec, runs):
    r, path = runs["generic-counters"]
    ks = set(kinds(r))
    assert {"generic_kv_blocks_offloaded", "generic_kv_blocks_onboarded"} <= ks
    assert not any(k.startswith("resident_claim_") and k not in (
        "resident_claim_accepted", "resident_claim_materialized") for k in ks)
    rep, gate, violated = check(spec, path)
    assert rep.verdict == "violation" and "R-no-silent-loss" in violated
    assert {"offload_restorability", "restoration_failure_outcome"} <= set(gate.missing)


def test_committed_restore_traces_have_their_gate_results(spec, vllm_traces):
    traces = vllm_traces
    expected = json.loads((traces / "expected.json").read_text())
    names = [n for n in expected if n.startswith("restore-")]
    assert sorted(names) == sorted(f"restore-{v}.kvt" for v in VARIANTS)
    for name in names:
        rep, gate, violated = check(spec, traces / name)
        want = expected[name]
        assert rep.verdict == want["verdict"], name
        assert violated == want["violated"], name
        assert list(gate.missing) == want["gate_offloadable_missing"], name
        assert list(gate.violated) == want["gate_offloadable_violated"], name
    assert expected["restore-witness.kvt"]["gate_offloadable_missing"] == []
