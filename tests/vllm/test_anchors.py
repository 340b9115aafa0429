"""vLLM 0.33.0 anchors verified against the installed wheel (runs under .venv-vllm).

`kvclaims lower --verify-anchors` resolves vllm with importlib; every vLLM source anchor of
spec/descriptors/vllm-0.33.0.toml must be found (no drift, nothing unchecked), and a deliberately
broken anchor must be reported as drift.
"""

from __future__ import annotations

import importlib.metadata

import vllm  # noqa: F401  (absent vLLM is a failure, not a skip)

from kvclaims.lower import anchors as A
from kvclaims.lower.descriptor import load_descriptors
from kvclaims.lower.relation import DRIFT, VERIFIED


def _vllm():
    return next(d for d in load_descriptors() if d.runtime == "vllm")


def test_installed_vllm_is_the_pinned_version():
    assert importlib.metadata.version("vllm") == _vllm().version == "0.33.0"


def test_every_vllm_anchor_verifies_against_the_installed_wheel(capsys):
    _, rows = A.check_anchors([_vllm()], sources=True)
    sources = [r for r in rows if r.anchor.kind == "source"]
    assert len(sources) >= 10
    bad = [(r.anchor.ref, r.check.status, r.check.detail) for r in sources
           if r.check.status != VERIFIED]
    assert bad == []
    assert A.verify_command(None, "vllm") == 0
    assert "0 drift, 0 unchecked" in capsys.readouterr().out


def test_broken_anchor_against_the_installed_wheel_is_drift():
    for ref, why in [("vllm@0.33.0:vllm/v1/core/block_pool.py:BlockPool.pin_forever", "not defined"),
                     ("vllm@0.33.0:vllm/v1/core/no_such_file.py:BlockPool", "missing"),
                     ("vllm@0.32.0:vllm/v1/core/block_pool.py:BlockPool", "0.32.0")]:
        c = A.check_source(A.parse_source(ref), "vllm", "vllm", None)
        assert c.status == DRIFT and why in c.detail, (ref, c)
