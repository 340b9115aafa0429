"""SGLang 0.5.23 anchors verified against the installed package (runs in .venv-sglang-0.5.23):
every source anchor of spec/descriptors/sglang-0.5.23-hicache.toml is found (no drift, nothing
unchecked), and the trace anchors (traces/sglang/) replay to their recorded verdicts."""

from __future__ import annotations

import importlib.metadata

import sglang  # noqa: F401  (absent SGLang is a failure, not a skip)

from kvclaims.lower import anchors as A
from kvclaims.lower.descriptor import load_descriptors
from kvclaims.lower.relation import VERIFIED


def _sglang():
    return next(d for d in load_descriptors() if d.runtime == "sglang")


def test_installed_sglang_is_the_described_version():
    assert importlib.metadata.version("sglang") == _sglang().version == "0.5.23"


def test_every_sglang_anchor_verifies(capsys):
    _, rows = A.check_anchors([_sglang()], sources=True)
    checked = [r for r in rows if r.anchor.kind in ("source", "trace")]
    assert len(checked) >= 15
    bad = [(r.anchor.ref or r.anchor.path, r.check.status, r.check.detail) for r in checked
           if r.check.status != VERIFIED]
    assert bad == []
    assert A.verify_command(None, "sglang") == 0
    assert "0 drift, 0 unchecked" in capsys.readouterr().out
