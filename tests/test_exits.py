"""How a kvclaims process ends (kvclaims.exits, issue 19): exit codes survive pipes, Ctrl-C is 130
and SIGTERM 143 for every command, a missing optional feature names its extra, and every user
mistake with a path is a one-line error (exit 2), never an "internal error"."""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from kvclaims import cli, exits

from conftest import ROOT

RULES = ROOT / "traces" / "rules"
OK, BAD = str(RULES / "ok-hard-refusal.kvt"), str(RULES / "bad-silent-loss.kvt")
PARTIAL = str(ROOT / "traces" / "partial" / "batch-every-order-violates.kvt")
CLAIMS = str(ROOT / "traces" / "vllm" / "0.34.0" / "claims.toml")
KV = [sys.executable, "-m", "kvclaims.cli"]


# ---- pipes ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("last, code", [(OK, 0), (BAD, 1)])
def test_exit_code_survives_a_reader_that_stops_early(last: str, code: int) -> None:
    # ~700 kB of JSON: far more than a pipe holds, so the writes after the reader left fail
    proc = subprocess.Popen([*KV, "check", "--format", "json", *[OK] * 400, last],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.read(10)
    proc.stdout.close()  # as `| head -c 10` does
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == code, err.decode()
    assert b"Traceback" not in err and b"Broken pipe" not in err


# ---- signals -------------------------------------------------------------------------------------
def _handles_sigterm(pid: int) -> bool:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    return False


LONG_RUNNING = {
    "check": ["check", "-"],  # waits for standard input that never ends
    "fuzz": ["fuzz", "--runtime", "micro:native", "--examples", "100000000"],
}


@pytest.mark.parametrize("sig, code, word", [(signal.SIGINT, 130, "interrupted"),
                                             (signal.SIGTERM, 143, "terminated")])
@pytest.mark.parametrize("command", sorted(LONG_RUNNING))
def test_a_signal_ends_any_command_with_its_code(command: str, sig: int, code: int, word: str,
                                                 tmp_path: Path) -> None:
    proc = subprocess.Popen([*KV, *LONG_RUNNING[command]], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    try:
        while not _handles_sigterm(proc.pid):  # kvclaims.exits is in charge from here on
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        time.sleep(0.5)  # into the command's work
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == code, err.decode()
    assert err.decode().strip().splitlines()[-1] == f"kvclaims: {word}; no result"
    assert b"Traceback" not in err


# ---- optional features ---------------------------------------------------------------------------
def test_optional_modules_name_the_extras_of_pyproject() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    for module, (dist, extra) in exits.OPTIONAL.items():
        assert any(req.startswith(dist) for req in extras[extra]), (module, dist, extra)
    assert {e for _, e in exits.OPTIONAL.values()} == set(extras) - {"test"}


@pytest.mark.parametrize("module, args", [
    ("zmq", ["watch", "tcp://127.0.0.1:9", "--claims", CLAIMS]),
    ("matplotlib", ["explain", OK, "--out", "out.png"]),
    ("ray", ["check", OK, OK, "--ray"]),
])
def test_a_missing_optional_module_names_its_extra(module: str, args: list[str],
                                                   tmp_path: Path) -> None:
    run = (f"import sys; sys.modules[{module!r}] = None; sys.argv = ['kvclaims', *{args!r}]; "
           "from kvclaims.cli import main; main()")
    proc = subprocess.run([sys.executable, "-c", run], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    _, extra = exits.OPTIONAL[module]
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert f"kvclaims[{extra}]" in proc.stderr and "internal error" not in proc.stderr


def test_a_plugin_that_fails_to_import_shows_why(tmp_path: Path) -> None:
    (tmp_path / "brokenrt.py").write_text("import no_such_dependency_19\n")
    proc = subprocess.run([*KV, "fuzz", "--runtime", "py:brokenrt:make", "--examples", "1"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2
    assert "no_such_dependency_19" in proc.stderr and "internal error" not in proc.stderr


# ---- every path argument -------------------------------------------------------------------------
def _matrix(tmp: Path) -> list[list[str]]:
    """Every command's path arguments, each given each kind of wrong path."""
    inputs = [lambda p: ["check", p], lambda p: ["convert", "--to", "jsonl", p],
              lambda p: ["explain", p, "--out", str(tmp / "o.html")], lambda p: ["prove", p],
              lambda p: ["shrink", p], lambda p: ["watch", "tcp://127.0.0.1:9", "--claims", p],
              lambda p: ["fuzz", "--runtime", "micro:native", "--replay", p]]
    files = [lambda p: ["check", "--witness", p, PARTIAL],
             lambda p: ["explain", OK, "--out", p + ".html"], lambda p: ["shrink", BAD, "-o", p]]
    folders_in = [lambda p: ["lower", "--verify-anchors", "--source", p]]
    folders_out = [lambda p: ["litmus", "--out", p],
                   lambda p: ["fuzz", "--runtime", "micro:native", "--examples", "1", "--out", p]]
    missing, directory, a_file = str(tmp / "missing"), str(tmp / "dir"), str(tmp / "a-file")
    under_a_file, unwritable = str(tmp / "a-file" / "x"), "/sys/kvclaims-unwritable/x"
    cases = [(inputs, (missing, directory)), (folders_in, (missing, a_file)),
             (files, (str(tmp / "missing" / "x"), directory, under_a_file, unwritable)),
             (folders_out, (a_file, under_a_file, unwritable))]
    return [make(p) for makers, paths in cases for make, p in itertools.product(makers, paths)]


def test_no_path_mistake_is_an_internal_error(tmp_path: Path, monkeypatch, capsys) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "a-file").write_text("not a folder\n")
    monkeypatch.chdir(tmp_path)
    matrix = _matrix(tmp_path)
    assert len(matrix) == 34
    for args in matrix:
        monkeypatch.setattr(sys, "argv", ["kvclaims", *args])
        with pytest.raises(SystemExit) as ended:
            cli.main()
        out, err = capsys.readouterr()
        assert "internal error" not in err and "Traceback" not in err, (args, err)
        assert ended.value.code in (0, 1, 2), (args, err)
        if ended.value.code == 2:
            assert err.strip() or out.strip(), args  # `check` reports input errors in its report


# ---- messages are not wrapped -------------------------------------------------------------------
def test_a_long_error_message_stays_on_one_line(tmp_path: Path) -> None:
    module = "a_plugin_module_with_a_name_long_enough_to_pass_eighty_columns_" + "x" * 40
    proc = subprocess.run([*KV, "fuzz", "--runtime", f"py:{module}:make", "--examples", "1"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "COLUMNS": "80"})
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and module in lines[0] and len(lines[0]) > 120, proc.stderr
