"""vLLM anchors checked against the installed wheel (runs in each vLLM environment).

`kvclaims lower --verify-anchors` resolves vllm with importlib. spec/descriptors/vllm-0.33.0.toml
pins 0.33.0: under 0.33.0 every vLLM source anchor must be found (no drift, nothing unchecked);
under any other installed version (0.34.0) every source anchor must be reported as drift naming
both versions, never verified against code it was not read from. A deliberately broken anchor is
drift on every version.
"""

from __future__ import annotations

import importlib.metadata

import vllm  # noqa: F401  (absent vLLM is a failure, not a skip)

from kvclaims.lower import anchors as A
from kvclaims.lower.descriptor import load_descriptors
from kvclaims.lower.relation import DRIFT, VERIFIED
from kvclaims.runtime.vllm import adapter


def _vllm():
    return next(d for d in load_descriptors() if d.runtime == "vllm")


PINNED = "0.33.0"


def test_the_descriptor_pins_a_supported_version():
    assert _vllm().version == PINNED
    assert importlib.metadata.version("vllm") in adapter.SUPPORTED_VERSIONS


def test_every_vllm_anchor_against_the_installed_wheel(capsys):
    installed = importlib.metadata.version("vllm")
    _, rows = A.check_anchors([_vllm()], sources=True)
    sources = [r for r in rows if r.anchor.kind == "source"]
    assert len(sources) >= 10
    if installed == PINNED:
        bad = [(r.anchor.ref, r.check.status, r.check.detail) for r in sources
               if r.check.status != VERIFIED]
        assert bad == []
        assert A.verify_command(None, "vllm") == 0
        assert "0 drift, 0 unchecked" in capsys.readouterr().out
    else:
        for r in sources:
            assert r.check.status == DRIFT, r.anchor.ref
            assert installed in r.check.detail and PINNED in r.check.detail, r.check.detail
        assert A.verify_command(None, "vllm") != 0
        assert f"{len(sources)} drift" in capsys.readouterr().out


def test_broken_anchor_against_the_installed_wheel_is_drift():
    v = importlib.metadata.version("vllm")
    for ref, why in [(f"vllm@{v}:vllm/v1/core/block_pool.py:BlockPool.pin_forever", "not defined"),
                     (f"vllm@{v}:vllm/v1/core/no_such_file.py:BlockPool", "missing"),
                     ("vllm@0.32.0:vllm/v1/core/block_pool.py:BlockPool", "0.32.0")]:
        c = A.check_source(A.parse_source(ref), "vllm", "vllm", None)
        assert c.status == DRIFT and why in c.detail, (ref, c)
