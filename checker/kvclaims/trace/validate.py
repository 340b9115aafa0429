"""Field-level validation of imported events against spec/fields.toml and spec/events.toml.

Decides whether an event is well-formed: its required fields are present and every field the spec
knows has the spec's type. Unknown fields are kept unchecked; unknown event names are not an
input error (they reach the checker, which makes what they could affect unknown, MODEL §5).
"""

from __future__ import annotations

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
# The cached entry of a valid shape without container fields (nothing left to re-check).
NO_DEEP: tuple[str, ...] = ()


class Validator:
    """Compiled per-spec checks; `check` returns None or (field, message).

    A shape already seen valid (same event, same keys, same value types) is accepted after
    re-checking only its container fields (lists and objects), whose elements the shape does not
    capture. This is exact: for scalar fields the type decides validity.
    """

    def __init__(self, spec: Spec):
        self._types: dict[str, tuple[Callable[[Any], bool], bool, str]] = {
            name: (_CHECKS[f.type], f.nullable, f.type) for name, f in spec.fields.items()
        }
        self._deep = {name for name, f in spec.fields.items() if f.type not in _SHALLOW}
        self._required = {name: e.required for name, e in spec.events.items()}
        # shape (kind, *keys, *value types) → its container fields (NO_DEEP when none); importers
        # may read it to skip the call of `check_shape` for a cached shape whose entry is NO_DEEP.
        self.shapes: dict[tuple[Any, ...], tuple[str, ...]] = {}

    def check(self, kind: str, fields: dict[str, Any]) -> tuple[str, str] | None:
        shape = (kind, *fields, *map(type, fields.values()))
        return self.check_shape(kind, fields, shape, self.shapes.get(shape))

    def check_shape(self, kind: str, fields: dict[str, Any], shape: tuple[Any, ...],
                    deep: tuple[str, ...] | None) -> tuple[str, str] | None:
        """`check`, given the event's shape and its cache entry (`shapes.get(shape)`)."""
        if deep is not None:
            if not deep:
                return None
            return self._check(kind, {k: fields[k] for k in deep}, required=False)
        bad = self._check(kind, fields)
        if bad is None and len(self.shapes) < _SHAPE_CACHE:
            self.shapes[shape] = tuple(k for k in fields if k in self._deep) or NO_DEEP
        return bad

    def _check(self, kind: str, fields: dict[str, Any], *, required: bool = True
               ) -> tuple[str, str] | None:
        types = self._types
        for name, value in fields.items():
            t = types.get(name)
            if t is None:
                continue
            if value is None:
                if t[1]:
                    continue
                return name, f"field {name!r} must be {t[2]}, got null"
            if not t[0](value):
                return name, f"field {name!r} must be {t[2]}, got {type(value).__name__} {value!r:.60}"
        for name in self._required.get(kind, ()) if required else ():
            if fields.get(name) is None:
                return name, f"event {kind!r} requires field {name!r}"
        return None
