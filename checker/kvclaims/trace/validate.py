"""Field-level validation of imported events against spec/fields.toml and spec/events.toml.

Decides whether an event is well-formed: its required fields are present, every field the spec
knows has the spec's type, every int is inside its field's range, every value of a closed field
whose `on_unknown` is "error" is in its vocabulary, and a known event carries only the keys the
spec allows it (`Spec.allowed_keys`; an undeclared key is an input error, docs/checking.md
"Closed input"). A closed field whose `on_unknown` is "unknown" (protection_mode) keeps an unknown
value for the checker, which makes the claim unknown. Unknown event names are not an input error
(they reach the checker, which makes what they could affect unknown, docs/model.md §5).
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any, Callable

from kvclaims.spec import Spec


def _is_int(v: Any) -> bool:
    return type(v) is int


def _is_float(v: Any) -> bool:
    return type(v) is float or type(v) is int


def _is_str(v: Any) -> bool:
    return type(v) is str


def _is_bool(v: Any) -> bool:
    return type(v) is bool


def _list_of(pred: Callable[[Any], bool]) -> Callable[[Any], bool]:
    def check(v: Any) -> bool:
        return type(v) is list and all(pred(x) for x in v)

    return check


_CHECKS: dict[str, Callable[[Any], bool]] = {
    "int": _is_int,
    "float": _is_float,
    "str": _is_str,
    "bool": _is_bool,
    "list[str]": _list_of(_is_str),
    "list[int]": _list_of(_is_int),
    "list[object]": _list_of(lambda x: type(x) is dict),
    "object": lambda v: type(v) is dict,
    "any": lambda v: True,
}


_SHALLOW = frozenset({"int", "float", "str", "bool", "any"})
# Distinct (event, keys, value types) shapes remembered as valid. Traces repeat a handful of
# shapes; past this many the validator simply checks every field (a speed limit, not a cap).
_SHAPE_CACHE = 4096
# A cached shape's entry: the value tests its events still need (each takes the fields dict and
# returns whether those values are valid); NO_DEEP when the shape decides everything.
ValueTest = Callable[[dict[str, Any]], bool]
NO_DEEP: tuple[ValueTest, ...] = ()


def _range_test(names: tuple[str, ...], lo: int, hi: int) -> ValueTest:
    get = itemgetter(*names)
    if len(names) == 1:
        return lambda f: lo <= get(f) <= hi

    def test(f: dict[str, Any]) -> bool:
        values = get(f)
        return lo <= min(values) and max(values) <= hi
    return test


def _range_member_test(names: tuple[str, ...], lo: int, hi: int, name: str,
                       values: frozenset[str]) -> ValueTest:
    """`_range_test` and `_member_test` in one call."""
    get = itemgetter(*names)
    if len(names) == 1:
        return lambda f: lo <= get(f) <= hi and f[name] in values

    def test(f: dict[str, Any]) -> bool:
        ints = get(f)
        return lo <= min(ints) and max(ints) <= hi and f[name] in values
    return test


def _member_test(name: str, values: frozenset[str]) -> ValueTest:
    return lambda f: f[name] in values


def _problem_test(check: "Validator", kind: str, names: tuple[str, ...]) -> ValueTest:
    return lambda f: check._check(kind, {k: f[k] for k in names}, required=False) is None


class Validator:
    """Compiled per-spec checks; `check` returns None or (field, message).

    A shape already seen valid (same event, same keys, same value types) is accepted after
    running only its value tests: the int ranges and closed vocabularies of its fields and its
    container fields (lists and objects), which the shape does not capture. This is exact: the
    shape decides the keys (closed per event) and the types; a failed test re-runs the full
    check, which names the field.
    """

    def __init__(self, spec: Spec):
        self._types: dict[str, tuple[Callable[[Any], bool], bool, str]] = {
            name: (_CHECKS[f.type], f.nullable, f.type) for name, f in spec.fields.items()
        }
        self._deep = {name for name, f in spec.fields.items() if f.type not in _SHALLOW}
        self._required = {name: e.required for name, e in spec.events.items()}
        self._allowed = {name: spec.allowed_keys(name) for name in spec.events}
        self._kvt = {name: f.kvt for name, f in spec.fields.items() if f.kvt != name}
        # field → (min, max) of an int or list[int] field; field → vocabulary of a closed field
        # whose unknown values are input errors
        self._ranges = {name: (f.min, f.max) for name, f in spec.fields.items()
                        if f.min is not None and f.max is not None}
        self._closed = {name: f.values for name, f in spec.fields.items()
                        if f.values is not None and f.on_unknown == "error"}
        # shape (kind, *keys, *value types) → the value tests its events still need (NO_DEEP
        # when none); importers may read it to skip `check_shape` for a NO_DEEP shape.
        self.shapes: dict[tuple[Any, ...], tuple[ValueTest, ...]] = {}

    def check(self, kind: str, fields: dict[str, Any]) -> tuple[str, str] | None:
        shape = (kind, *fields, *map(type, fields.values()))
        return self.check_shape(kind, fields, shape, self.shapes.get(shape))

    def check_shape(self, kind: str, fields: dict[str, Any], shape: tuple[Any, ...],
                    deep: tuple[ValueTest, ...] | None) -> tuple[str, str] | None:
        """`check`, given the event's shape and its cache entry (`shapes.get(shape)`)."""
        if deep is not None:
            for test in deep:
                if not test(fields):
                    return self._check(kind, fields)
            return None
        bad = self._check(kind, fields)
        if bad is None and len(self.shapes) < _SHAPE_CACHE:
            self.shapes[shape] = self._tests(kind, fields)
        return bad

    def _tests(self, kind: str, fields: dict[str, Any]) -> tuple[ValueTest, ...]:
        """The value tests events of this (valid) shape need: container fields in full, int
        ranges grouped by range, closed vocabularies."""
        deep = tuple(k for k in fields if k in self._deep)
        by_range: dict[tuple[int, int], list[str]] = {}
        closed: list[tuple[str, frozenset[str]]] = []
        for name, value in fields.items():
            if type(value) is int and name in self._ranges:
                by_range.setdefault(self._ranges[name], []).append(name)
            elif type(value) is str and name in self._closed:
                closed.append((name, self._closed[name]))
        tests: list[ValueTest] = []
        if len(by_range) == 1 and len(closed) == 1:  # the common shape: one call per event
            (lo, hi), names = next(iter(by_range.items()))
            tests.append(_range_member_test(tuple(names), lo, hi, *closed[0]))
        else:
            tests += [_member_test(name, values) for name, values in closed]
            tests += [_range_test(tuple(names), lo, hi) for (lo, hi), names in by_range.items()]
        if deep:
            tests.append(_problem_test(self, kind, deep))
        return tuple(tests) or NO_DEEP

    def _check(self, kind: str, fields: dict[str, Any], *, required: bool = True
               ) -> tuple[str, str] | None:
        types = self._types
        allowed = self._allowed.get(kind)
        for name, value in fields.items():
            t = types.get(name)
            if allowed is not None and name not in allowed:
                return name, _unknown_key(kind, name, allowed, self._kvt)
            if t is None:
                continue
            if value is None:
                if t[1]:
                    continue
                return name, f"field {name!r} must be {t[2]}, got null"
            if not t[0](value):
                return name, f"field {name!r} must be {t[2]}, got {type(value).__name__} {value!r:.60}"
            bad = self._value(name, value)
            if bad is not None:
                return name, bad
        for name in self._required.get(kind, ()) if required else ():
            if fields.get(name) is None:
                return name, f"event {kind!r} requires field {name!r}"
        return None

    def _value(self, name: str, value: Any) -> str | None:
        """Why a well-typed value is outside its field's range or vocabulary, else None."""
        rng = self._ranges.get(name)
        if rng is not None:
            lo, hi = rng
            for v in value if type(value) is list else (value,):
                if not lo <= v <= hi:
                    return f"field {name!r} is {str(v):.60}, outside its range {lo}..{hi}"
        closed = self._closed.get(name)
        if closed is not None and value not in closed:
            return (f"field {name!r} has unknown value {value!r:.60}; expected one of: "
                    f"{', '.join(sorted(closed))}")
        return None


def _unknown_key(kind: str, name: str, allowed: frozenset[str], kvt: dict[str, str]) -> str:
    near = sorted(k for k in allowed if _one_edit(name, k))
    alias = sorted((kvt[k], k) for k in allowed if k in kvt and _one_edit(name, kvt[k]))
    hint = f" (did you mean {near[0]!r}?)" if near else \
        f" (did you mean {alias[0][0]!r}, the .kvt key of {alias[0][1]!r}?)" if alias else ""
    return (f"event {kind!r} does not carry field {name!r}{hint}: an undeclared key is an input "
            f"error (spec/events.toml; docs/checking.md)")


def _one_edit(a: str, b: str) -> bool:
    """Whether `a` and `b` differ by one deletion, insertion, substitution or adjacent
    transposition (the typo a hint can name with confidence)."""
    if abs(len(a) - len(b)) > 1 or a == b:
        return False
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    if len(a) == len(b):
        swapped = i + 1 < len(a) and a[i] == b[i + 1] and a[i + 1] == b[i]
        return a[i + 1:] == b[i + 1:] or (swapped and a[i + 2:] == b[i + 2:])
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return short[i:] == long_[i + 1:]
