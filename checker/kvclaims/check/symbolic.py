"""Guarded symbolic values for the Z3 encoding (docs/model.md §6 over partly ordered traces).

Decides nothing. A value is a Python bool/int or a Z3 term; every operation folds when its inputs
are Python values, so the parts of a trace whose order is known stay plain Python and only the
unordered parts reach the solver. :class:`Store` holds the encoded state: writes under a guard
become `If(guard, new, old)`, so imperative decision code can be executed over both branches of a
symbolic condition (`if store.may(c): with store.when(c): ...`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import z3

Val = Any  # bool | int | z3.ExprRef


def is_sym(x: Val) -> bool:
    return isinstance(x, z3.ExprRef)


def lift(x: Val, ctx: z3.Context) -> z3.ExprRef:
    if isinstance(x, z3.ExprRef):
        return x
    if isinstance(x, bool):
        return z3.BoolVal(x, ctx)
    if isinstance(x, int):
        return z3.IntVal(x, ctx)
    raise TypeError(f"cannot encode {x!r}")


class Ops:
    """Folding operations in one Z3 context: the symbolic implementation of
    kvclaims.check.rules.ops.Ops (the rule definitions of check/rules/ are evaluated with it)."""

    def __init__(self, ctx: z3.Context):
        self.ctx = ctx

    def ite(self, c: Val, a: Val, b: Val) -> Val:
        if c is True:
            return a
        if c is False:
            return b
        if a is b:
            return a
        sa, sb = is_sym(a), is_sym(b)
        if not sa and not sb and type(a) is type(b) and a == b:
            return a
        if sa and sb and a.eq(b):
            return a
        return z3.If(c, lift(a, self.ctx), lift(b, self.ctx))

    def and_(self, *xs: Val) -> Val:
        out = []
        for x in xs:
            if x is False:
                return False
            if x is not True:
                out.append(x)
        if not out:
            return True
        if len(out) == 1:
            return out[0]
        return z3.And(*out)

    def or_(self, *xs: Val) -> Val:
        out = []
        for x in xs:
            if x is True:
                return True
            if x is not False:
                out.append(x)
        if not out:
            return False
        if len(out) == 1:
            return out[0]
        return z3.Or(*out)

    def any(self, xs: Iterable[Val]) -> Val:
        return self.or_(*xs)

    def all(self, xs: Iterable[Val]) -> Val:
        return self.and_(*xs)

    def not_(self, x: Val) -> Val:
        if x is True:
            return False
        if x is False:
            return True
        return z3.Not(x)

    def implies(self, a: Val, b: Val) -> Val:
        return self.or_(self.not_(a), b)

    def eq(self, a: Val, b: Val) -> Val:
        if not is_sym(a) and not is_sym(b):
            return a == b
        return lift(a, self.ctx) == lift(b, self.ctx)

    def member(self, x: Val, values: Iterable[int]) -> Val:
        if not is_sym(x):
            return x in values
        return self.or_(*(x == v for v in values))

    def cmp(self, op: str, a: Val, b: Val) -> Val:
        if not is_sym(a) and not is_sym(b):
            return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
        a, b = lift(a, self.ctx), lift(b, self.ctx)
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]

    def total(self, xs: Iterable[Val]) -> Val:
        n = 0
        syms = []
        for x in xs:
            if is_sym(x):
                syms.append(x)
            else:
                n += int(x)
        if not syms:
            return n
        terms = [z3.If(s, z3.IntVal(1, self.ctx), z3.IntVal(0, self.ctx)) if z3.is_bool(s) else s
                 for s in syms]
        return z3.Sum(*terms) + n if n else z3.Sum(*terms)

    def count(self, bits: Iterable[Val]) -> Val:
        return self.total(bits)


class Store:
    """The encoded state: a map from keys to values, written under the current guard."""

    def __init__(self, ops: Ops):
        self.ops = ops
        self.v: dict[Any, Val] = {}
        self.guard: Val = True

    def __getitem__(self, key: Any) -> Val:
        return self.v[key]

    def __setitem__(self, key: Any, val: Val) -> None:
        g = self.guard
        if g is True:
            self.v[key] = val
        elif g is not False:
            self.v[key] = self.ops.ite(g, val, self.v[key])

    def may(self, cond: Val) -> bool:
        """False only when the condition is known false here: the branch is then skipped."""
        return self.guard is not False and cond is not False

    @contextmanager
    def when(self, cond: Val) -> Iterator[None]:
        saved = self.guard
        self.guard = self.ops.and_(saved, cond)
        try:
            yield
        finally:
            self.guard = saved

    def branches(self, cond: Val) -> Iterator[bool]:
        """Run the body for each possible truth value of `cond`: `for t in s.branches(c): ...`"""
        for value, c in ((True, cond), (False, self.ops.not_(cond))):
            if self.may(c):
                with self.when(c):
                    yield value
