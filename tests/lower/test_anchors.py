"""Anchor verification against a source tree: good anchors verify, broken ones fail loudly."""

from __future__ import annotations

import pytest

from kvclaims.lower import anchors as A
from kvclaims.lower.descriptor import Anchor, Descriptor, Evidence, Mapping_
from kvclaims.lower.relation import DRIFT, UNCHECKED, VERIFIED

SRC = '''
class BlockPool:
    def get_new_blocks(self, n):
        return []
    medium: str = "GPU"
LIMIT = 3
'''


@pytest.fixture()
def tree(tmp_path):
    pkg = tmp_path / "fakert" / "core"
    pkg.mkdir(parents=True)
    (pkg / "pool.py").write_text(SRC)
    (tmp_path / "fakert-1.0.dist-info").mkdir()
    return tmp_path


def _check(tree, ref):
    return A.check_source(A.parse_source(ref), "fakert", "fakert", tree)


@pytest.mark.parametrize("ref", [
    "fakert@1.0:fakert/core/pool.py:BlockPool.get_new_blocks",
    "fakert@1.0:fakert/core/pool.py:BlockPool.medium",
    "fakert@1.0:fakert/core/pool.py:LIMIT",
    "fakert@1.0:fakert/core/pool.py:3",
])
def test_good_anchor_verifies(tree, ref):
    assert _check(tree, ref).status == VERIFIED


@pytest.mark.parametrize("ref, why", [
    ("fakert@1.0:fakert/core/pool.py:BlockPool.get_old_blocks", "not defined"),
    ("fakert@1.0:fakert/core/pool.py:get_new_blocks", "not defined"),  # not at module level
    ("fakert@1.0:fakert/core/gone.py:BlockPool", "missing"),
    ("fakert@1.0:fakert/core/pool.py:999", "beyond the end"),
    ("fakert@2.0:fakert/core/pool.py:BlockPool", "pins 2.0"),
])
def test_broken_anchor_is_drift(tree, ref, why):
    c = _check(tree, ref)
    assert c.status == DRIFT and why in c.detail


def test_other_package_is_unchecked_not_verified(tree):
    ref = A.parse_source("other@1.0:other/x.py:f")
    assert A.check_source(ref, "other", "other", tree).status == UNCHECKED


def test_malformed_anchor_refused():
    with pytest.raises(ValueError):
        A.parse_source("fakert:pool.py")


def test_verify_command_fails_loudly_on_a_broken_vllm_anchor(tmp_path, capsys):
    # a fake vllm tree in which BlockPool lost get_new_blocks: the real descriptor must drift
    core = tmp_path / "vllm" / "v1" / "core"
    core.mkdir(parents=True)
    (core / "block_pool.py").write_text("class BlockPool:\n    pass\n")
    assert A.verify_command(str(tmp_path), "vllm") == 1
    out = capsys.readouterr().out
    assert "DRIFT" in out and "BlockPool.get_new_blocks" in out


def test_check_anchors_uses_descriptor_packages(tree):
    a = Anchor("source", "fakert@1.0:fakert/core/pool.py:BlockPool")
    bad = Anchor("source", "fakert@1.0:fakert/core/pool.py:Nope")
    ev = Evidence("e", "native", ("best_effort",), (), "code", (a, bad))
    d = Descriptor("fakert", "Fake", "1.0", ("best_effort",),
                   (Mapping_("best_effort", "best_effort", ()),), (ev,), package="fakert",
                   distribution="fakert")
    _checks, rows = A.check_anchors([d], sources=True, source=tree)
    assert [r.check.status for r in rows] == [VERIFIED, DRIFT]
    _, rows = A.check_anchors([d])  # not asked to verify sources
    assert {r.check.status for r in rows} == {UNCHECKED}


def test_trace_anchor_drift(tmp_path):
    c = A.check_trace(Anchor("trace", "traces/litmus/L3.kvt", "violation"))
    assert c.status == DRIFT and "conformant" in c.detail
    c = A.check_trace(Anchor("trace", "traces/litmus/L3.kvt", "conformant"))
    assert c.status == VERIFIED and "R-hard" in c.passed["hard_protected"]


def test_main_entry_point(tree, capsys):
    assert A.main(["--source", str(tree), "--runtime", "vllm"]) == 0
    assert "unchecked" in capsys.readouterr().out
