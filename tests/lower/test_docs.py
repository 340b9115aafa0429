"""docs/lowering.md is the current rendering of the table; the renderers and lower_command work."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from kvclaims.lower.commands import lower_command
from kvclaims.lower.table import build
from kvclaims.lower.render import render_md

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def table():
    return build()


def test_docs_lowering_is_current(table):
    committed = (ROOT / "docs" / "lowering.md").read_text(encoding="utf-8")
    assert committed == render_md(table), "run scripts/regen-lowering-doc"


def test_lower_command_json():
    out = io.StringIO()
    assert lower_command("json", False, None, out) == 0
    doc = json.loads(out.getvalue())
    rows = {(r["runtime"], r["row"]): r for r in doc["rows"]}
    assert rows[("tensorrt-llm", "soft_priority")]["depth"] == "policy"
    assert rows[("tensorrt-llm", "hard_protected")]["semantic"][0]["witness"][0].startswith("claim")


def test_lower_command_text_and_usage():
    out = io.StringIO()
    assert lower_command("text", False, None, out) == 0
    assert "sound_with_adapter (policy)" in out.getvalue()
    assert lower_command("yaml", False, None, io.StringIO()) == 2
    assert lower_command("text", False, "/tmp", io.StringIO()) == 2
