"""Asking Z3, and reading its three answers (docs/checking.md "Solver answers"; issue 16).

Decides how an answer of the solver is read everywhere kvclaims asks Z3: the Z3 engine
(kvclaims.check.partial), shrink with `--engine z3` (through the engine), the lowering primitives
(kvclaims.lower.primitives, which `kvclaims prove` and `kvclaims lower` use) and the KV-RM proof
(kvclaims.lower.kvrm_proof). `sat` and `unsat` are answers; `unknown` is neither: :func:`ask`
raises :class:`SolverUnknown` with Z3's reason (a timeout, an incomplete theory, a resource
limit), and every caller makes its result inconclusive (exit 3), never "none found".

An interrupt (SIGINT while Z3 runs) is caught by Z3 itself, which then answers `unknown`; read as
an answer it would let a command finish with a partial result. :func:`ask` re-raises it as
KeyboardInterrupt, so the command stops (the CLI exits 130 without presenting a result).

The timeout of each question can be set for every call site at once by the environment variable
KVCLAIMS_SOLVER_TIMEOUT_MS (milliseconds; it wins over a caller's own timeout, e.g. `kvclaims
check --solver-timeout`), and Z3's deterministic resource limit by KVCLAIMS_SOLVER_RLIMIT (a
count of Z3's internal steps; the same input always stops at the same point, which a wall-clock
timeout does not promise), so a test or a user can force the third answer.
"""

from __future__ import annotations

import os
import time
from typing import Any

import z3

ENV_TIMEOUT = "KVCLAIMS_SOLVER_TIMEOUT_MS"
ENV_RLIMIT = "KVCLAIMS_SOLVER_RLIMIT"


class SolverUnknown(Exception):
    """Z3 answered neither sat nor unsat; `reason` is its reason_unknown() (e.g. "timeout")."""

    def __init__(self, reason: str):
        super().__init__(f"the solver answered unknown ({reason})")
        self.reason = reason


def timeout_ms(default: int | None = None) -> int | None:
    """The solver timeout in ms from KVCLAIMS_SOLVER_TIMEOUT_MS, else `default`."""
    value = _positive(ENV_TIMEOUT, "milliseconds")
    return default if value is None else value


def _positive(name: str, unit: str) -> int | None:
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{name} must be a positive integer ({unit}), got {text!r}")
    return value


def ask(solver: z3.Solver, *assumptions: Any, timeout: int | None = None) -> z3.CheckSatResult:
    """`solver.check(*assumptions)`, answering only sat or unsat.

    `timeout` (ms) is set on the solver unless KVCLAIMS_SOLVER_TIMEOUT_MS gives another.
    Raises SolverUnknown for Z3's third answer and KeyboardInterrupt when Z3 stopped on an
    interrupt."""
    limit = timeout_ms(timeout)
    if limit is not None:
        solver.set("timeout", limit)
    rlimit = _positive(ENV_RLIMIT, "Z3 resource units")
    if rlimit is not None:
        solver.set("rlimit", rlimit)
    start = time.monotonic()
    answer = solver.check(*assumptions)
    if answer == z3.unknown:
        reason = solver.reason_unknown()
        if _interrupted(reason, limit, rlimit is not None, time.monotonic() - start):
            raise KeyboardInterrupt(f"solver interrupted ({reason})")
        raise SolverUnknown(reason)
    return answer


def _interrupted(reason: str, limit: int | None, rlimit: bool, seconds: float) -> bool:
    """Whether Z3 stopped on an interrupt rather than on a limit: it says "interrupted from
    keyboard", or "canceled" when no resource limit was set and no timeout could have lapsed
    (Z3 also says "canceled" for some timeouts and resource limits)."""
    text = reason.lower()
    if "interrupt" in text:
        return True
    if "cancel" in text and not rlimit:
        return limit is None or seconds * 1000 < 0.9 * limit
    return False
