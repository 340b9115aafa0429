"""KV-RM (issue 8): correct runs conformant, each fault caught by its rule alone, the coalescer
optimal, and the traces/kvrm corpus at its expected verdicts."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvclaims import spec as spec_mod
from kvclaims.check.replay import check_events
from kvclaims.run import Options, check_path
from kvclaims.lower import kvrm_transport as T
from kvclaims.runtime.kvrm import FAULT_RULE, FAULTS, kvrm_runtime

from conftest import ROOT
from kvrm_strategies import workloads

SPEC = spec_mod.load()
EXAMPLES = int(os.environ.get("KVRM_EXAMPLES", "150"))
K_RULES = {"K1-one-descriptor", "K2-live-mapping", "K3-transfer-groups", "K4-whole-prefix",
           "K5-summary-not-materialization"}


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(workloads())
def test_correct_kvrm_runs_are_conformant(w) -> None:
    r = kvrm_runtime(w)
    rep = check_events(SPEC, r.events)
    assert rep.verdict == "conformant", [(f.rule, f.message) for f in rep.findings]
    assert not r.fired
    # merge-staged coalescing reaches the optimum every step
    assert all(g <= p for g, p in zip(r.groups_per_step, r.pairs_per_step))


@settings(max_examples=max(20, EXAMPLES // 3), deadline=None,
          suppress_health_check=list(HealthCheck))
@given(workloads(), st.sampled_from(sorted(FAULTS)))
def test_each_fault_is_caught_by_its_rule_only(w, fault) -> None:
    r = kvrm_runtime(w, [fault])
    rep = check_events(SPEC, r.events)
    rules = {f.rule for f in rep.findings if f.status == "violation"}
    if fault in r.fired:
        assert rules == {FAULT_RULE[fault]}, (fault, [(f.rule, f.message) for f in rep.findings])
    else:
        assert rep.verdict == "conformant"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9)), max_size=7,
                unique_by=lambda p: p[1]))
def test_merge_staged_is_optimal_against_brute_force(pairs) -> None:
    best = T.brute_force_min(pairs)
    groups = T.merge_staged(pairs)
    assert len(groups) == best == T.optimal_count(pairs)
    assert len(T.greedy_unsorted(pairs)) >= best
    covered = [(s, d) for src, dst in groups for s, d in zip(src, dst)]
    assert sorted(covered) == sorted(set(pairs))


def _expected() -> dict:
    return json.loads((ROOT / "traces" / "kvrm" / "expected.json").read_text())


@pytest.mark.parametrize("name", sorted(_expected()))
def test_corpus_expected_verdicts(name) -> None:
    exp = _expected()[name]
    rep = check_path(str(ROOT / "traces" / "kvrm" / name), SPEC, Options())
    assert rep.verdict == exp["verdict"]
    rules = sorted({f.rule for f in rep.findings if f.status == "violation"})
    assert rules == exp["violated"]
    assert set(rules) <= K_RULES
