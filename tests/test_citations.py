"""The repository stands alone: its documents and `--help` texts cite the model inside it
(docs/model.md, `kvclaims spec`), never the sibling ../shared folder, and every "docs/model.md §N"
anywhere in the repository names a section that docs/model.md has."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from kvclaims import cli

from conftest import ROOT

MODEL = ROOT / "docs" / "model.md"
OUTSIDE = re.compile(r"\.\./shared|shared/design|shared/reference|MODEL\.md|MODEL §")
CITATION = re.compile(r"docs/model\.md §(\d+)")
DOCS = sorted([*ROOT.glob("docs/*.md"), ROOT / "README.md", *ROOT.glob("spec/**/*.toml"),
               *ROOT.glob("spec/*.json"), *ROOT.glob("spec/*.lark")])
COMMANDS = sorted(cli.cli.commands)


def _sections() -> set[int]:
    return {int(m) for m in re.findall(r"^## (\d+)\. ", MODEL.read_text(encoding="utf-8"), re.M)}


def test_the_model_has_its_ten_sections() -> None:
    assert _sections() == set(range(1, 11))


@pytest.mark.parametrize("doc", DOCS, ids=[p.relative_to(ROOT).as_posix() for p in DOCS])
def test_documents_cite_the_model_inside_the_repository(doc) -> None:
    text = doc.read_text(encoding="utf-8")
    lines = [ln for ln in text.splitlines() if OUTSIDE.search(ln)
             and "../shared/corpus" not in ln]  # the reference corpus is data, not the model
    assert lines == []


def test_every_citation_names_a_section() -> None:
    sections = _sections()
    for path in [*DOCS, *ROOT.glob("checker/**/*.py")]:
        for n in CITATION.findall(path.read_text(encoding="utf-8")):
            assert int(n) in sections, (path, n)


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_points_at_what_an_installed_user_has(command: str | None) -> None:
    args = [] if command is None else [command]
    out = subprocess.run([sys.executable, "-m", "kvclaims.cli", *args, "--help"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert not OUTSIDE.search(out) and "docs/model.md" not in out, out
