"""Shared fixtures: the spec, the reference corpus beside the checkout (../shared), the repo root."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvclaims import spec as spec_mod

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus" / "resident-kv-artifacts"
ARTIFACTS = CORPUS / "artifacts"


@pytest.fixture(scope="session")
def spec():
    return spec_mod.load()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    # CI has ../shared beside the checkout; its absence is a failure, never a skip.
    assert ARTIFACTS.is_dir(), f"reference corpus not found at {ARTIFACTS} (../shared missing?)"
    return ARTIFACTS
