"""The public strategies (kvclaims.fuzz.strategies): valid traces are conformant, every mutation
breaks exactly its rule with its status, workloads are ones the MicroRuntime models (docs/model.md §6)."""

from __future__ import annotations

import re

import pytest
from fuzz_budget import hsettings
from hypothesis import given

from kvclaims import spec as spec_mod
from kvclaims.check.replay import check_events
from kvclaims.check.verdict import CONFORMANT
from kvclaims.fuzz import strategies as kst
from kvclaims.runtime.workload import Workload

SPEC = spec_mod.load()


@hsettings(100, 2000)
@given(wl=kst.workloads())
def test_workloads_are_modelled(wl: Workload) -> None:
    wl.check()


@hsettings(50, 500)
@given(ident=kst.cache_identities())
def test_cache_identities_are_spelled(ident: str) -> None:
    assert re.fullmatch(r"[a-z][a-z0-9\-]*@[0-9a-f]{7}/\w+/block\d+", ident)


@hsettings(150, 3000)
@given(events=kst.traces())
def test_valid_traces_are_conformant(events, kvclaims_check) -> None:
    kvclaims_check(events, CONFORMANT)


@pytest.mark.parametrize("name", sorted(kst.MUTATIONS))
def test_mutation_breaks_exactly_its_rule(name: str) -> None:
    m = kst.MUTATIONS[name]
    assert m.rule in SPEC.rules

    @hsettings(25, 500)
    @given(case=kst.violating_traces(name))
    def prop(case: kst.MutatedTrace) -> None:
        assert check_events(SPEC, case.original, "original").verdict == CONFORMANT
        rep = check_events(SPEC, case.events, "mutated")
        got = {(f.rule, f.status) for f in rep.findings}
        assert got == {(m.rule, m.status)}, [(f.rule, f.status, f.message) for f in rep.findings]

    prop()


def test_every_mutation_names_a_rule_of_the_spec() -> None:
    assert {m.rule for m in kst.MUTATIONS.values()} <= set(SPEC.rules)
