"""The KV-RM claim arbiter as a Z3 transition system (issue 8 item 3)."""

from __future__ import annotations

import io

from kvclaims.check.replay import check_events
from kvclaims.lower import kvrm_proof as K
from kvclaims.lower.commands import prove_command
from kvclaims.lower.descriptor import load_descriptors
from kvclaims.lower.table import build


def test_proof_holds_at_the_stated_bound():
    p = K.proof()
    r = p.result
    assert r.status == "proved", p.summary
    assert (p.blocks, p.requests, p.bound, p.k) == (8, 3, 7, 1)
    assert set(r.rules_checked) == {"R-hard", "K4-whole-prefix", "K2-live-mapping",
                                    "R-attribution"}


def test_evict_claimed_arbiter_yields_a_confirmed_r_hard_witness(spec):
    p = K.search("hard_protected", faults={K.EVICT_CLAIMED}, blocks=3, claim_mode="hard_exclude")
    r = p.result
    assert r.status == "witness" and r.rule == "R-hard" and r.confirmed
    report = check_events(spec, r.events, "w")
    assert "R-hard" in {f.rule for f in report.findings if f.status == "violation"}
    assert p.steps[-1].startswith("alloc")


def test_demote_reused_arbiter_yields_a_confirmed_prefix_witness(spec):
    r = K.search("demotable", faults={K.DEMOTE_REUSED}, blocks=3).result
    assert r.status == "witness" and r.rule == "K2-live-mapping" and r.confirmed


def test_modes_without_r_hard_are_not_modelled():
    assert K.check("best_effort").status == "not_modelled"
    assert K.check("expiring").status == "proved"


def test_kvrm_rows_classify():
    kvrm = tuple(d for d in load_descriptors() if d.runtime == "kv-rm")
    t = build(descriptors=kvrm)
    assert not t.errors
    for mode in ("hard_protected", "demotable", "expiring"):
        row = t.row("kv-rm", mode)
        assert row.cls == "native_sound", (mode, row.reason, row.missing, row.excluded)
        assert dict(row.deciding)["R-hard"] == "kvrm-arbiter-proof"
        assert [s.status for s in row.semantic] == ["proved"]
    for mode in ("best_effort", "soft_priority", "offloadable"):
        assert t.row("kv-rm", mode).cls == "unknown"


def test_proof_anchor_is_fail_closed_when_the_proof_is_missing():
    from kvclaims.lower.anchors import check_proof
    from kvclaims.lower.descriptor import Anchor

    assert check_proof(Anchor("proof", "no_such_proof")).status == "drift"
    c = check_proof(Anchor("proof", K.NAME))
    assert c.status == "verified" and "R-hard" in c.passed["hard_protected"]


def test_prove_prints_the_proof_and_its_bound(tmp_path):
    case = tmp_path / "c.toml"
    case.write_text('name = "soft"\nkind = "semantic"\nmode = "hard_protected"\n'
                    'expected_class = "rejected"\nprimitive = "lru_cached_blocks"\n'
                    'expected_rule = "R-hard"\n', encoding="utf-8")
    out = io.StringIO()
    assert prove_command(str(case), out) == 0
    text = out.getvalue()
    assert "KV-RM arbiter" in text and "proved" in text
    assert "8 blocks, 3 requests" in text and "7 arbiter transitions" in text and "k=1" in text
