"""The solver's third answer is inconclusive everywhere Z3 is asked (issue 16; kvclaims.solver).

Z3 is forced to answer `unknown` on every question by a resource limit of one step
(KVCLAIMS_SOLVER_RLIMIT=1, deterministic: a wall-clock timeout of 1 ms may still let a small
question finish). Then `check --engine z3`, `shrink --engine z3`, `prove` and `lower` must each
exit 3 and name the solver's reason; none may report a pass, a witness-free "none found", or a
shrunk result. Each command runs in a child process, so the caches of the lowering searches
(`primitives.check`, `kvrm_proof.proof`) start empty.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import z3

from kvclaims import solver

from conftest import ROOT

PARTIAL = ROOT / "traces" / "partial" / "batch-every-order-violates.kvt"
REASON = "max. resource limit exceeded"


def kv(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kvclaims.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=600,
                          env={**os.environ, **env})


FORCED = {solver.ENV_RLIMIT: "1"}


def test_ask_raises_on_unknown_and_sets_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    x = z3.Int("x")
    s = z3.Solver()
    s.add(x > 3, x < 10)
    assert solver.ask(s) == z3.sat  # no limit: an answer
    monkeypatch.setenv(solver.ENV_RLIMIT, "1")
    with pytest.raises(solver.SolverUnknown) as info:
        solver.ask(s)
    assert "resource limit" in info.value.reason
    monkeypatch.delenv(solver.ENV_RLIMIT)
    monkeypatch.setenv(solver.ENV_TIMEOUT, "250")
    assert solver.timeout_ms(60_000) == 250  # the environment wins over the caller's timeout
    monkeypatch.setenv(solver.ENV_TIMEOUT, "0")
    with pytest.raises(ValueError, match=solver.ENV_TIMEOUT):
        solver.timeout_ms(1)


@pytest.mark.parametrize(("reason", "limit", "rlimit", "seconds", "interrupt"), [
    ("interrupted from keyboard", 60_000, False, 0.5, True),
    ("canceled", None, False, 0.5, True),  # no limit was set: only an interrupt cancels
    ("canceled", 60_000, False, 0.5, True),  # long before the timeout
    ("canceled", 1_000, False, 1.0, False),  # the timeout lapsed
    ("canceled", None, True, 0.0, False),  # a resource limit
    ("timeout", 1_000, False, 1.0, False),
    ("max. resource limit exceeded", None, True, 0.0, False),
    ("(incomplete (theory arithmetic))", None, False, 0.1, False),
])
def test_interrupt_is_told_from_limits(reason: str, limit: int | None, rlimit: bool,
                                       seconds: float, interrupt: bool) -> None:
    assert solver._interrupted(reason, limit, rlimit, seconds) is interrupt


def test_check_engine_z3_is_inconclusive() -> None:
    ok = kv("check", "--engine", "z3", str(PARTIAL))
    assert ok.returncode == 1, ok.stdout + ok.stderr  # the control: every order violates
    r = kv("check", "--engine", "z3", "--format", "json", str(PARTIAL), **FORCED)
    assert r.returncode == 3, r.stdout + r.stderr
    assert REASON in r.stdout and "Traceback" not in r.stderr


def test_shrink_engine_z3_is_inconclusive(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "min.kvt"
    r = kv("shrink", "--no-progress", "--engine", "z3", "-o", str(out), str(PARTIAL), **FORCED)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "inconclusive" in r.stderr and REASON in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()  # no result is presented


def test_prove_is_inconclusive() -> None:
    r = kv("prove", "traces/bad-lowering", **FORCED)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "INCONCLUSIVE" in r.stdout and REASON in r.stdout
    assert "witness (" not in r.stdout  # no semantic case claims a witness or a proof


def test_lower_is_inconclusive() -> None:
    r = kv("lower", "--format", "json", **FORCED)
    assert r.returncode == 3, r.stdout[-2000:] + r.stderr
    assert "inconclusive" in r.stderr and REASON in r.stderr
    assert '"status": "proved"' not in r.stdout and '"status": "bounded"' not in r.stdout


@pytest.mark.parametrize("args", [
    ["prove", "traces/bad-lowering"],
    ["lower", "--format", "json"],
    ["check", "--engine", "z3", str(PARTIAL)],
    ["shrink", "--no-progress", "--engine", "z3", str(PARTIAL)],
])
def test_interrupt_in_the_solver_exits_130_without_a_result(
        args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Ctrl-C while Z3 runs: Z3 catches SIGINT itself and answers unknown, "interrupted from
    # keyboard" (what `timeout -s INT` does to a real run); the command must stop, not read it
    # as an answer
    from kvclaims import cli
    from kvclaims.lower import kvrm_proof, primitives

    primitives.check.cache_clear()
    kvrm_proof.proof.cache_clear()
    monkeypatch.setattr(z3.Solver, "check", lambda self, *a: z3.unknown)
    monkeypatch.setattr(z3.Solver, "reason_unknown", lambda self: "interrupted from keyboard")
    monkeypatch.setattr(sys, "argv", ["kvclaims", *args])
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as info:
        cli.main()
    out, err = capsys.readouterr()
    primitives.check.cache_clear()
    kvrm_proof.proof.cache_clear()
    assert info.value.code == 130, (out, err)
    assert out == "" and "interrupted; no result" in err
