"""The operator interface every rule definition is written against (docs/checking.md, "One definition per rule").

Decides nothing. A rule of docs/model.md §6 is a function of an `Ops` and of values read from the
replayed state and the event (check/rules/__init__.py). Two implementations evaluate it:

- `PY` (:class:`PyOps`): plain Python on `bool`/`int` values, each operator one plain function
  with no allocation, so the replay (check/replay.py) evaluates a rule at full speed;
- `kvclaims.check.symbolic.Ops`: the same operators over Python values *or* Z3 terms, folding
  known values, so the Z3 engine (check/z3model.py) builds the rule's terms from the same text.

Only these operators may appear in a rule: no Python `and`/`or`/`not`/`if` on a value read from
the state (they would not carry over to Z3 terms); arithmetic `+`/`-` on ints is shared by both.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple, Protocol

Val = Any  # bool | int for PY; also a z3.ExprRef for the symbolic implementation


class Ops(Protocol):
    """State reads come in as values; these combine them."""

    def and_(self, *xs: Val) -> Val: ...
    def or_(self, *xs: Val) -> Val: ...
    def not_(self, x: Val) -> Val: ...
    def implies(self, a: Val, b: Val) -> Val: ...
    def ite(self, c: Val, a: Val, b: Val) -> Val: ...
    def eq(self, a: Val, b: Val) -> Val: ...
    def member(self, x: Val, values: Iterable[int]) -> Val: ...
    def cmp(self, op: str, a: Val, b: Val) -> Val: ...
    def total(self, xs: Iterable[Val]) -> Val: ...
    def count(self, bits: Iterable[Val]) -> Val: ...


_CMP = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}


class PyOps:
    """The concrete operators: Python values in, Python values out."""

    __slots__ = ()

    @staticmethod
    def and_(*xs: Val) -> bool:
        for x in xs:
            if not x:
                return False
        return True

    @staticmethod
    def or_(*xs: Val) -> bool:
        for x in xs:
            if x:
                return True
        return False

    @staticmethod
    def not_(x: Val) -> bool:
        return not x

    @staticmethod
    def implies(a: Val, b: Val) -> bool:
        return (not a) or bool(b)

    @staticmethod
    def ite(c: Val, a: Val, b: Val) -> Val:
        return a if c else b

    @staticmethod
    def eq(a: Val, b: Val) -> bool:
        return a == b

    @staticmethod
    def member(x: Val, values: Iterable[int]) -> bool:
        return x in values

    @staticmethod
    def cmp(op: str, a: Val, b: Val) -> bool:
        return _CMP[op](a, b)

    @staticmethod
    def total(xs: Iterable[Val]) -> int:
        return sum(int(x) for x in xs)

    @staticmethod
    def count(bits: Iterable[Val]) -> int:
        return sum(1 for b in bits if b)


PY = PyOps()


# ---- what a rule files ------------------------------------------------------------------------
# Where a filed finding is located: at the event being decided, or at the earlier event a claim
# left pending (its harm, its materialized declaration, its post-release loss reports).
AT_EVENT, AT_HARM, AT_MATERIALIZED, AT_LOST_REPORT = "event", "harm", "materialized", "lost_report"


class Filed(NamedTuple):
    """A finding a rule files when `cond` holds (a truth value, or a Z3 guard).

    `message` is the rule module's wording, a `str.format` template over the names an engine
    supplies (`block`, `pos`, `claim`, `pred`, `verb`, `state`, `in_state`, `at_line`); `at` says
    which event it is located at. The engines only evaluate `cond`, fill the template and locate
    the finding.
    """

    cond: Val
    rule: str
    status: str
    message: str
    at: str = AT_EVENT
