"""Shared fixtures: the spec, the reference corpus beside the checkout (../shared), the repo root.

The reference corpus is not part of the repository. A test that reads it either asks for the
`artifacts` fixture or carries the `corpus` mark; when ../shared is absent such a test is skipped
with one reason, and the run ends with one line saying how many were skipped and why. CI sets
KVCLAIMS_REQUIRE_CORPUS=1 (.ci/run), which turns the absence into a usage error, so CI always runs
them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kvclaims import spec as spec_mod

from corpus_paths import (  # noqa: F401  (re-exported: tests import them from conftest)
    ARTIFACTS,
    CORPUS,
    HAVE_CORPUS,
    NO_CORPUS,
    PAPERS,
    REQUIRE_ENV,
    ROOT,
    SHARED,
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "corpus: reads the reference corpus in ../shared")
    if not HAVE_CORPUS and os.environ.get(REQUIRE_ENV) == "1":
        raise pytest.UsageError(f"{NO_CORPUS}, and {REQUIRE_ENV}=1 requires it")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if HAVE_CORPUS:
        return
    skip = pytest.mark.skip(reason=NO_CORPUS)
    for item in items:
        if item.get_closest_marker("corpus") or "artifacts" in getattr(item, "fixturenames", ()):
            # First, so its reason wins over pytest's "got empty parameter set".
            item.add_marker(skip, append=False)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if HAVE_CORPUS:
        return
    n = sum(1 for r in terminalreporter.stats.get("skipped", ())
            if NO_CORPUS in str(getattr(r, "longrepr", "")))
    terminalreporter.write_line(f"kvclaims: {n} tests skipped: {NO_CORPUS}")


@pytest.fixture(scope="session")
def spec():
    return spec_mod.load()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    if not HAVE_CORPUS:
        pytest.skip(NO_CORPUS)
    return ARTIFACTS
