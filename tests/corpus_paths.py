"""Where the repository and the reference corpus beside it are, for tests run from any stage.

A plain module, not a conftest: a runtime stage (tests/vllm, tests/sglang) has a conftest of its
own, and `from conftest import ...` there would read that one.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CORPUS = SHARED / "corpus" / "resident-kv-artifacts"
ARTIFACTS = CORPUS / "artifacts"
PAPERS = SHARED / "reference" / "papers.md"
HAVE_CORPUS = ARTIFACTS.is_dir() and PAPERS.is_file()
REQUIRE_ENV = "KVCLAIMS_REQUIRE_CORPUS"
NO_CORPUS = f"reference corpus absent ({SHARED} beside the checkout)"
