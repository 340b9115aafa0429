"""Every `kvclaims` command the docs show runs, and its output is the one shown (issue 20).

The convention (docs/cli.md "Examples in the docs"):

- an example is a fenced block whose info string is `console`, or `console stage=NAME` when it
  needs a stage's environment or server (NAME: vllm, sglang, nats, ray);
- a line starting with `$ ` is a command; the lines after it, up to the next `$ ` line or the
  block's end, are its expected output (standard output and standard error as a terminal shows
  them, merged); a line `...` stands for any number of lines, and `...` inside a line for any
  text within it; trailing spaces are ignored;
- a last output line `[exit N]` is the expected exit code (none written: 0).

How they are run: each document's blocks in order, each command by bash in one scratch directory
per document that mirrors the repository root (every top-level entry is a symbolic link, so
`traces/...` and `docs/...` read the checkout, `../shared/corpus` the reference corpus beside it, and
whatever a command writes lands in the scratch directory), with the bin/ directory of the Python running the tests first on PATH (`kvclaims` is
that environment's), a scratch HOME, NO_COLOR=1, TERM=dumb, PYTHONUNBUFFERED=1 (so the two
streams interleave as on a terminal). Normalisation of the output before comparing: the scratch
directory's absolute path and the repository's are removed (an absolute path prints as the
relative one); nothing else (timings need `...`).

Stages: a test run is in the stage named by KVCLAIMS_DOCS_STAGE (unset or empty: the main
stage, which runs the blocks without `stage=`); a stage's run executes only its own blocks. A
stage exists when a script in scripts/ or .ci/run sets `KVCLAIMS_DOCS_STAGE=NAME`; a block whose
stage no script runs fails the main stage (never a silent skip).

Also failed: a `kvclaims` command in any other fenced block (a line whose command word is
`kvclaims`, or `.../bin/kvclaims`; comments and python/toml/json blocks are not commands), so no
example escapes the test.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from corpus_paths import HAVE_CORPUS, NO_CORPUS, ROOT

STAGE_ENV = "KVCLAIMS_DOCS_STAGE"
STAGE = os.environ.get(STAGE_ENV, "")
DOCS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*(.*)$")
NOT_COMMANDS = {"python", "toml", "json", "jsonl"}  # `kvclaims` there is a module or a value
COMMAND_WORD = re.compile(r"(?:^|[\s;&|(]|\$ )(?:[\w.\-/]*/)?kvclaims(?=\s|$)")
EXIT_LINE = re.compile(r"^\[exit (\d+)\]$")


@dataclass
class Command:
    doc: Path
    line: int
    text: str
    expected: list[str] = field(default_factory=list)
    exit_code: int = 0


@dataclass
class Block:
    doc: Path
    line: int
    info: str
    stage: str
    body: list[str]
    commands: list[Command] = field(default_factory=list)


def blocks(doc: Path) -> list[Block]:
    """Every fenced block of `doc` (its info string, stage, 1-based opening line, body)."""
    out = []
    lines = doc.read_text(encoding="utf-8").split("\n")
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = m.groups()
        j = i + 1
        while j < len(lines) and not (lines[j].strip().startswith(fence[0] * len(fence))
                                      and lines[j].strip().strip(fence[0]) == ""):
            j += 1
        body = [ln[len(indent):] if ln.startswith(indent) else ln for ln in lines[i + 1:j]]
        words = info.split()
        kind = words[0] if words else ""
        stage = next((w.split("=", 1)[1] for w in words[1:] if w.startswith("stage=")), "")
        block = Block(doc, i + 1, kind, stage, body)
        if kind == "console":
            block.commands = _commands(doc, i + 2, body)
        out.append(block)
        i = j + 1
    return out


def _commands(doc: Path, first: int, body: list[str]) -> list[Command]:
    cmds: list[Command] = []
    for n, line in enumerate(body, first):
        if line.startswith("$ "):
            cmds.append(Command(doc, n, line[2:]))
        elif cmds:
            cmds[-1].expected.append(line)
        elif line.strip():
            raise AssertionError(f"{doc.name}:{n}: output before any `$ ` command")
    for c in cmds:
        while c.expected and not c.expected[-1].strip():
            c.expected.pop()
        if c.expected and (m := EXIT_LINE.match(c.expected[-1].strip())):
            c.exit_code = int(m.group(1))
            c.expected.pop()
    return cmds


ALL = {doc: blocks(doc) for doc in DOCS}


def stages_run() -> set[str]:
    """The stages some script runs: those that set KVCLAIMS_DOCS_STAGE=NAME."""
    found = set()
    for script in [*(ROOT / "scripts").rglob("*"), ROOT / ".ci" / "run"]:
        if script.is_file():
            try:
                text = script.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
            found.update(re.findall(STAGE_ENV + r"=([A-Za-z0-9_]+)", text))
    return found


def line_matches(pattern: str, actual: str) -> bool:
    if "..." not in pattern:
        return pattern == actual
    parts = [re.escape(p) for p in pattern.split("...")]
    return re.fullmatch(".*".join(parts), actual, re.S) is not None


def output_matches(expected: list[str], actual: list[str]) -> bool:
    """Line by line, a line `...` matching any number of lines (greedy with backtracking)."""
    exp = [e.rstrip() for e in expected]
    act = [a.rstrip() for a in actual]
    memo: dict[tuple[int, int], bool] = {}

    def match(i: int, j: int) -> bool:
        key = (i, j)
        if key in memo:
            return memo[key]
        if i == len(exp):
            result = j == len(act)
        elif exp[i] == "...":
            result = any(match(i + 1, k) for k in range(j, len(act) + 1))
        else:
            result = j < len(act) and line_matches(exp[i], act[j]) and match(i + 1, j + 1)
        memo[key] = result
        return result

    return match(0, 0)


def scratch_root(tmp: Path) -> Path:
    """A directory that reads as the repository root and keeps what commands write."""
    root = tmp / "repo"
    root.mkdir()
    for entry in ROOT.iterdir():
        if entry.name in (".git", ".venv") or entry.name.startswith(".venv-"):
            continue
        (root / entry.name).symlink_to(entry)
    shared = ROOT.parent / "shared"  # the reference corpus beside the checkout (conftest.SHARED)
    if shared.is_dir():
        (tmp / "shared").symlink_to(shared)
    return root


def run(cmd: Command, cwd: Path, home: Path) -> tuple[int, list[str]]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "FORCE_COLOR")}
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
               HOME=str(home), NO_COLOR="1", TERM="dumb", PYTHONUNBUFFERED="1")
    env.pop("VIRTUAL_ENV", None)
    p = subprocess.run(["bash", "-c", cmd.text], cwd=cwd, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=900)
    out = p.stdout
    for prefix in (str(cwd.resolve()), str(cwd), str(ROOT)):
        out = out.replace(prefix + "/", "").replace(prefix, ".")
    lines = out.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return p.returncode, lines


def _ids() -> list[str]:
    return [doc.relative_to(ROOT).as_posix() for doc in DOCS]


@pytest.mark.parametrize("doc", DOCS, ids=_ids())
def test_doc_examples_run_as_shown(doc: Path, tmp_path: Path) -> None:
    mine = [b for b in ALL[doc] if b.info == "console" and b.stage == STAGE]
    if not any(b.commands for b in mine):
        return  # nothing of this stage in this document (the other tests below still hold)
    if not HAVE_CORPUS and any("../shared/corpus" in c.text for b in mine for c in b.commands):
        pytest.skip(NO_CORPUS)  # as every corpus test (conftest); CI requires the corpus
    cwd = scratch_root(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    failures = []
    for b in mine:
        for cmd in b.commands:
            code, lines = run(cmd, cwd, home)
            if code != cmd.exit_code or not output_matches(cmd.expected, lines):
                failures.append(
                    f"{doc.relative_to(ROOT)}:{cmd.line}: $ {cmd.text}\n"
                    f"  exit {code} (shown: {cmd.exit_code})\n  expected:\n"
                    + "\n".join("    " + e for e in cmd.expected)
                    + "\n  actual:\n" + "\n".join("    " + a for a in lines))
    assert not failures, "\n\n".join(failures)


def test_no_kvclaims_command_outside_a_console_block() -> None:
    found = []
    for doc, bs in ALL.items():
        for b in bs:
            if b.info == "console" or b.info in NOT_COMMANDS:
                continue
            for n, line in enumerate(b.body, b.line + 1):
                code = re.sub(r"(^|\s)#.*$", "", line)
                if COMMAND_WORD.search(code):
                    found.append(f"{doc.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not found, ("kvclaims commands outside a `console` block (not run by the docs "
                       "test; see tests/test_docs_examples.py):\n" + "\n".join(found))


def test_every_stage_with_examples_is_run_by_some_script() -> None:
    if STAGE:
        return  # checked by the main stage's run
    have = stages_run()
    orphans = [f"{b.doc.relative_to(ROOT)}:{b.line}: stage={b.stage}"
               for bs in ALL.values() for b in bs
               if b.info == "console" and b.stage and b.stage not in have]
    assert not orphans, (
        f"console blocks of a stage no script runs (a script must set {STAGE_ENV}=NAME and run "
        "tests/test_docs_examples.py in that stage's environment):\n" + "\n".join(orphans))


def test_console_blocks_hold_commands() -> None:
    """A console block without a `$ ` command would be silently skipped."""
    empty = [f"{b.doc.relative_to(ROOT)}:{b.line}" for bs in ALL.values() for b in bs
             if b.info == "console" and not b.commands]
    assert not empty, "console blocks without a `$ ` command: " + ", ".join(empty)


# ---- the matcher itself --------------------------------------------------------------------------
@pytest.mark.parametrize("expected, actual, ok", [
    (["a", "...", "d"], ["a", "b", "c", "d"], True),
    (["a", "...", "d"], ["a", "d"], True),
    (["a", "...", "d"], ["a", "b"], False),
    (["a ... s"], ["a 1.5 s"], True),
    (["a ... s"], ["b 1.5 s"], False),
    (["x"], ["x", "y"], False),
    (["..."], [], True),
    (["a  "], ["a"], True),
])
def test_output_matching(expected: list[str], actual: list[str], ok: bool) -> None:
    assert output_matches(expected, actual) is ok


def test_commands_and_exit_lines_are_parsed(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text("text\n\n```console stage=vllm\n$ kvclaims a\nout\n[exit 3]\n$ kvclaims b\n"
                   "```\n\n```sh\nkvclaims c   # not run\n```\n")
    (b, sh) = blocks(doc)
    assert (b.info, b.stage, len(b.commands)) == ("console", "vllm", 2)
    assert (b.commands[0].text, b.commands[0].expected, b.commands[0].exit_code) == \
        ("kvclaims a", ["out"], 3)
    assert (b.commands[1].expected, b.commands[1].exit_code) == ([], 0)
    assert sh.info == "sh" and COMMAND_WORD.search("kvclaims c")
    assert not COMMAND_WORD.search("import kvclaims.cli") and not COMMAND_WORD.search(
        "kvclaims: expected conformant")
    assert COMMAND_WORD.search(".venv/bin/kvclaims litmus")
