"""Every command's --help ends with its exit codes and an example, and every such example is an
example of docs/cli.md (so tests/test_docs_examples.py runs it and compares its output)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from conftest import ROOT
from kvclaims import cli
from test_docs_examples import blocks

COMMANDS = sorted(cli.cli.commands)
DOC_COMMANDS = {c.text for b in blocks(ROOT / "docs" / "cli.md") if b.info.split()[0] == "console"
                for c in b.commands}  # every stage: a block marked `stage=` runs in that stage


def test_every_command_has_exit_codes_and_examples() -> None:
    assert set(cli.EXAMPLES) == set(COMMANDS) == set(cli.EXIT_CODES)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_exit_codes_and_a_run_example(command: str) -> None:
    out = CliRunner().invoke(cli.cli, [command, "--help"]).output
    words = " ".join(out.split())
    assert f"Exit codes: {cli.EXIT_CODES[command]}; 130/143 interrupted" in words
    for example in cli.EXAMPLES[command]:
        assert (example + " ").startswith(f"kvclaims {command} ")
        assert f"    {example}" in out  # unwrapped, as given
        assert example in DOC_COMMANDS, f"{example!r} is not run by docs/cli.md"


def test_top_level_help_names_exit_codes_and_completion() -> None:
    out = " ".join(CliRunner().invoke(cli.cli, ["--help"]).output.split())
    assert "Exit codes: 0 conformant" in out and "_KVCLAIMS_COMPLETE=bash_source" in out


def test_fuzz_help_offers_only_runtimes_that_run() -> None:
    out = CliRunner().invoke(cli.cli, ["fuzz", "--help"]).output
    assert "kvrm" not in out
