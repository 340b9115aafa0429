"""An installed wheel answers as the checkout does: `lower`, `prove`, `litmus` need nothing beside
the package (issue 19). The wheel is built from this checkout, installed with its default
dependencies into a fresh venv in a temporary directory, and run from outside the checkout.

Cost, measured with `pytest tests/test_wheel.py --durations=5` on the 2-core machine: 13 s in
all (building and installing 4.6 s, `lower` 5 s, `prove` 2.3 s, `litmus` 0.4 s, each twice);
up to ~2 min when five other jobs load the machine.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from conftest import ROOT

CASE = ROOT / "traces" / "bad-lowering" / "hard-onto-ttl.toml"
COMMANDS = (("lower",), ("litmus", "--format", "json"), ("prove", str(CASE)))


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
                   check=True, capture_output=True, timeout=600)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """bin/ of a fresh venv holding only the wheel and its default dependencies."""
    tmp = tmp_path_factory.mktemp("wheel")
    _pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"), str(ROOT))
    (wheel,) = (tmp / "dist").glob("kvclaims-*.whl")
    venv.create(tmp / "venv", with_pip=False)
    _pip("--python", str(tmp / "venv" / "bin" / "python"), "install", str(wheel))
    return tmp / "venv" / "bin"


def _normal(command: str, text: str) -> str:
    """What must agree: for `prove`, the decisions (a solver's witness may differ between z3
    builds, and the proof's time always does)."""
    if command != "prove":
        return text
    keep = [ln for ln in text.splitlines() if not ln.startswith("      ") and "witness (" not in ln]
    return re.sub(r"; slowest check [0-9.]+ s", "", "\n".join(keep))


@pytest.mark.parametrize("args", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_wheel_answers_as_the_checkout(installed: Path, args: tuple[str, ...], tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    ours = subprocess.run([sys.executable, "-m", "kvclaims.cli", *args], capture_output=True,
                          text=True, timeout=600, cwd=ROOT)
    theirs = subprocess.run([str(installed / "kvclaims"), *args], capture_output=True,
                            text=True, timeout=600, cwd=tmp_path, env=env)
    assert theirs.returncode == ours.returncode == 0, theirs.stderr
    assert _normal(args[0], theirs.stdout) == _normal(args[0], ours.stdout)
    assert theirs.stderr == ours.stderr
    # the installed command ran the wheel's code, not this checkout's
    where = subprocess.run([str(installed / "python"), "-c",
                            "import kvclaims; print(kvclaims.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, env=env, check=True)
    assert str(ROOT) not in where.stdout and str(installed.parent) in where.stdout


def test_wheel_ships_every_report_schema(installed: Path) -> None:
    """The JSON Schemas of the reports (checker/kvclaims/schemas/) are package data (issue 20)."""
    ours = ROOT / "checker" / "kvclaims" / "schemas"
    (theirs,) = installed.parent.glob("lib/python*/site-packages/kvclaims/schemas")
    names = sorted(p.name for p in ours.glob("*.schema.json"))
    assert names and sorted(p.name for p in theirs.glob("*.schema.json")) == names
    for name in names:
        assert (theirs / name).read_bytes() == (ours / name).read_bytes()
