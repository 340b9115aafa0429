"""A typed msgspec schema of the JSON Lines events, generated from spec/ (docs/checking.md
"Closed input"; issue 22 item 2).

Decides, at decode speed, a sufficient condition for a line to pass the field checks of
kvclaims.trace.validate: one msgspec Struct per known event (tagged by its `event` value), whose
fields are the event's allowed keys (`Spec.allowed_keys`) with the spec's types, int ranges
(`Meta(ge, le)`), closed vocabularies whose unknown values are errors (`Literal`), nullability,
and its required fields without a default; an undeclared key is refused (`forbid_unknown_fields`).

The schema only ever says yes or "ask the reference": a line it accepts would pass
`Validator.check` (every value it admits is one the validator admits, field by field), and a line
it refuses goes to the reference reader, which words and locates the error. A field or event it
cannot express exactly (a non-nullable `any` field, which the validator refuses as null but msgspec
cannot, or a range on a type other than int) keeps its event out of the schema, so that event is
always read by the reference path. Duplicate keys are not its concern: the reader tests them on
every line (msgspec keeps the last of a repeated key).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any, Literal, Union

import msgspec

from kvclaims.spec import FieldSpec, Spec

# The JSON key naming an event (the reference telemetry's; kvclaims.trace.jsonl reads it too).
EVENT_KEY = "event"

_PLAIN: dict[str, Any] = {"str": str, "bool": bool, "float": Union[int, float],
                          "list[str]": list[str], "list[object]": list[dict],
                          "object": dict}


def _value_type(field: FieldSpec) -> Any | None:
    """The msgspec type admitting exactly the non-null values Validator admits for `field`, or
    None when msgspec cannot express it exactly."""
    ranged = field.min is not None and field.max is not None
    if field.type in ("int", "list[int]"):
        elem: Any = Annotated[int, msgspec.Meta(ge=field.min, le=field.max)] if ranged else int
        return elem if field.type == "int" else list[elem]  # type: ignore[valid-type]
    if ranged:
        return None
    if field.type == "str" and field.values is not None and field.on_unknown == "error":
        return Literal[tuple(sorted(field.values))]
    if field.type == "any":
        return Any if field.nullable else None  # msgspec's Any admits null
    return _PLAIN.get(field.type)


def _struct(spec: Spec, name: str) -> type | None:
    event = spec.events[name]
    required = set(event.required)
    fields: list[tuple[Any, ...]] = []
    for key in sorted(spec.allowed_keys(name) or ()):
        if key == EVENT_KEY:
            return None
        field = spec.fields.get(key)
        if field is None:  # an informational name: any value, null included
            if key in required:
                return None
            fields.append((key, Any, msgspec.UNSET))
            continue
        t = _value_type(field)
        if t is None:
            return None
        if key in required:  # present and not null (Validator: `fields.get(name) is None`)
            fields.append((key, t))
        elif field.nullable:
            fields.append((key, Union[t, None, msgspec.UnsetType], msgspec.UNSET))
        else:
            fields.append((key, Union[t, msgspec.UnsetType], msgspec.UNSET))
    fields.sort(key=lambda f: len(f) == 3)  # required fields first, as a Struct needs
    return msgspec.defstruct(f"Typed_{name}", fields, tag_field=EVENT_KEY, tag=name,
                             forbid_unknown_fields=True, frozen=True, gc=False)


@lru_cache(maxsize=None)
def typed_decoder(spec: Spec) -> msgspec.json.Decoder | None:
    """A decoder whose success on a line means the line's event passes the field checks (see the
    module docstring); None when no event can be expressed."""
    structs = [s for s in (_struct(spec, name) for name in sorted(spec.events))
               if s is not None and spec.events[s.__struct_config__.tag].on_unknown_key == "error"]
    if not structs:
        return None
    return msgspec.json.Decoder(Union[tuple(structs)])  # type: ignore[arg-type]


def typed_events(spec: Spec) -> frozenset[str]:
    """The events the typed schema decides (the others always take the reference path)."""
    decoder = typed_decoder(spec)
    if decoder is None:
        return frozenset()
    types = getattr(decoder.type, "__args__", (decoder.type,))
    return frozenset(t.__struct_config__.tag for t in types)
