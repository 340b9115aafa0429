"""The rule definitions compiled once for Python values: what the replay calls (docs/checking.md, "One definition per rule").

Decides nothing new. Each condition function of a rule module (first parameter `o`, the
operators of rules/ops.py) is compiled once, at import, into a plain Python function of the same
parameters in which each operator call on `o` is replaced by the Python expression it stands for:
`o.and_(a, b)` by `(a and b)`, `o.not_(x)` by `(not x)`, `o.ite(c, a, b)` by `(a if c else b)`,
`o.cmp(">", a, b)` by `(a > b)`, `o.member(x, s)` by `(x in s)`, `o.total(xs)` by `sum(xs)`, and
so on. The source is the definition itself, read from its module: the replay evaluates the very
text the Z3 engine evaluates, with no operator call and no allocation per event (Python's
short-circuit `and`/`or` give the same truth value as the operators, which evaluate every
argument; tests/check/test_rule_definitions.py checks the three readings agree). An operator call
the compiler does not know stays a call on `o`, which the replay passes as `PY`.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from types import ModuleType, SimpleNamespace
from typing import Any

from kvclaims.check.rules import (
    acceptance,
    attribution,
    expiry,
    explicit,
    hard,
    harm,
    identity,
    loss,
    no_admit,
    no_silent_loss,
    offload,
    order,
    progress,
    release_order,
    steps,
    yield_,
)

_CMPOPS = {"<": ast.Lt, "<=": ast.LtE, ">": ast.Gt, ">=": ast.GtE}


class _Inline(ast.NodeTransformer):
    def __init__(self, o: str):
        self.o = o

    def visit_Call(self, node: ast.Call) -> Any:
        self.generic_visit(node)
        f = node.func
        if not (isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name)
                and f.value.id == self.o):
            return node
        a, name = node.args, f.attr
        starred = any(isinstance(x, ast.Starred) for x in a)
        if name in ("and_", "or_"):
            if starred or not a:
                fn = "all" if name == "and_" else "any"
                return ast.Call(ast.Name(fn, ast.Load()), [ast.Tuple(a, ast.Load())]
                                if a else [ast.Tuple([], ast.Load())], [])
            if len(a) == 1:
                return a[0]
            return ast.BoolOp(ast.And() if name == "and_" else ast.Or(), a)
        if starred:
            return node
        if name == "not_" and len(a) == 1:
            return ast.UnaryOp(ast.Not(), a[0])
        if name == "implies" and len(a) == 2:
            return ast.BoolOp(ast.Or(), [ast.UnaryOp(ast.Not(), a[0]), a[1]])
        if name == "ite" and len(a) == 3:
            return ast.IfExp(a[0], a[1], a[2])
        if name == "eq" and len(a) == 2:
            return ast.Compare(a[0], [ast.Eq()], [a[1]])
        if name == "member" and len(a) == 2:
            return ast.Compare(a[0], [ast.In()], [a[1]])
        if (name == "cmp" and len(a) == 3 and isinstance(a[0], ast.Constant)
                and a[0].value in _CMPOPS):
            return ast.Compare(a[1], [_CMPOPS[a[0].value]()], [a[2]])
        if name == "total" and len(a) == 1:
            return ast.Call(ast.Name("sum", ast.Load()), [a[0]], [])
        return node


def compile_definition(fn: Any, env: dict[str, Any] | None = None) -> Any:
    """`fn` with its operator calls inlined (same parameters; `o` is still accepted). `env`
    overrides names of the function's module (rules/steps.py's calls of the rule modules run their
    compiled forms)."""
    params = list(inspect.signature(fn).parameters)
    if not params or params[0] != "o":
        return fn
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    func = tree.body[0]
    assert isinstance(func, ast.FunctionDef)
    func.decorator_list = []
    func.returns = None
    for arg in func.args.args:
        arg.annotation = None
    _Inline("o").visit(func)
    ast.fix_missing_locations(tree)
    ns: dict[str, Any] = {}
    scope = fn.__globals__ if env is None else {**fn.__globals__, **env}
    exec(compile(tree, inspect.getsourcefile(fn) or "<rule>", "exec"),  # noqa: S102
         scope, ns)
    out = ns[fn.__name__]
    out.__doc__ = fn.__doc__
    out.__wrapped__ = fn
    return out


def compile_module(module: ModuleType, env: dict[str, Any] | None = None) -> SimpleNamespace:
    """Every public function of a rule module, compiled; other names as they are."""
    out = {}
    for name, value in vars(module).items():
        if name.startswith("_"):
            continue
        if inspect.isfunction(value) and value.__module__ == module.__name__:
            out[name] = compile_definition(value, env)
        else:
            out[name] = value
    return SimpleNamespace(**out)


acceptance = compile_module(acceptance)  # type: ignore[assignment]
attribution = compile_module(attribution)  # type: ignore[assignment]
expiry = compile_module(expiry)  # type: ignore[assignment]
explicit = compile_module(explicit)  # type: ignore[assignment]
hard = compile_module(hard)  # type: ignore[assignment]
harm = compile_module(harm)  # type: ignore[assignment]
identity = compile_module(identity)  # type: ignore[assignment]
loss = compile_module(loss)  # type: ignore[assignment]
no_admit = compile_module(no_admit)  # type: ignore[assignment]
no_silent_loss = compile_module(no_silent_loss)  # type: ignore[assignment]
offload = compile_module(offload)  # type: ignore[assignment]
order = compile_module(order)  # type: ignore[assignment]
progress = compile_module(progress)  # type: ignore[assignment]
release_order = compile_module(release_order)  # type: ignore[assignment]
yield_ = compile_module(yield_)  # type: ignore[assignment]
steps = compile_module(steps, env={  # type: ignore[assignment]
    "acceptance": acceptance, "expiry": expiry, "explicit": explicit, "hard": hard, "harm": harm,
    "no_admit": no_admit, "no_silent_loss": no_silent_loss, "offload": offload, "order": order,
    "release_order": release_order})
