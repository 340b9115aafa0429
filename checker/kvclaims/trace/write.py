"""Write Event streams as .kvt (spec/trace.lark) or as reference-telemetry JSON Lines (docs/model.md §5).

Adapts events to the two text forms and decides the canonical spelling: .kvt lines use the spec's
subject, ID and verb, then kvt keys (required, optional, then others sorted), and quote a string
only when it would not read back as itself. Both forms round-trip through their readers.
Partial order (docs/kvt.md): skew declarations follow the .kvt header; a run of consecutive events
whose block field (`unordered_batch`) equals the next block number is written as a `batch { }`
block, any other value as a plain field, so reading back gives the very same fields.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from functools import lru_cache
from typing import IO, Any

from kvclaims import spec as spec_mod
from kvclaims.spec import Spec, SpecError
from kvclaims.trace.dsl import ABSENT_ID, EVENT_KEY, KVT_VERSION, SEQUENCE_FIELD
from kvclaims.trace.kvt_fast import parse_value_text
from kvclaims.trace.kvt_syntax import MAX_RANGE, terminal_literal, terminal_regex
from kvclaims.trace.model import Event, Skew

# Fields whose string value is written as a predicate call, `leading_prefix_at_least(60)`, when it
# is one (fields.toml has no column saying so).
CALL_FIELDS = ("materialization_predicate",)


class _Spelling:
    def __init__(self, spec: Spec):
        for name in (SEQUENCE_FIELD, *CALL_FIELDS):
            if name not in spec.fields:
                raise SpecError(f".kvt writer needs field {name} in fields.toml")
        self.spec = spec
        self.key = {f.name: f.kvt for f in spec.fields.values()}
        self.alias_taken = {f.kvt for f in spec.fields.values()}
        self.bare = terminal_regex("BARE").fullmatch
        self.name = terminal_regex("NAME").fullmatch
        self.numeric = [terminal_regex(t).fullmatch for t in ("INT", "FLOAT", "RANGE")]
        self.keywords = {terminal_literal(t) for t in ("TRUE", "FALSE", "NULL")}
        self.order = {e.name: (*e.required, *e.optional) for e in spec.events.values()}


@lru_cache(maxsize=None)
def _spelling(spec: Spec) -> _Spelling:
    return _Spelling(spec)


def _string(s: str, sp: _Spelling) -> str:
    if sp.bare(s) and s not in sp.keywords and not any(f(s) for f in sp.numeric):
        return s
    return json.dumps(s, ensure_ascii=False)


def _int_range(v: list[Any]) -> str | None:
    if 3 <= len(v) <= MAX_RANGE and all(type(x) is int for x in v):
        lo = v[0]
        if all(x == lo + i for i, x in enumerate(v)):
            return f"{lo}..{v[-1]}"
    return None


def _value(v: Any, sp: _Spelling) -> str:
    if v is None or type(v) is bool:
        return {None: "null", True: "true", False: "false"}[v]
    if type(v) is int:
        return str(v)
    if type(v) is float:
        if not math.isfinite(v):
            raise ValueError(f"{v!r} has no .kvt (or JSON) spelling")
        return repr(v)
    if type(v) is str:
        return _string(v, sp)
    if type(v) is list:
        return _int_range(v) or "[" + ", ".join(_value(x, sp) for x in v) + "]"
    if type(v) is dict:
        return "{" + ", ".join(f"{_object_key(k, sp)}={_value(x, sp)}" for k, x in v.items()) + "}"
    raise ValueError(f"{type(v).__name__} value {v!r:.40} has no .kvt spelling")


def _object_key(k: str, sp: _Spelling) -> str:
    return k if sp.name(k) else json.dumps(k, ensure_ascii=False)


def _field_key(name: str, sp: _Spelling) -> str:
    if name in sp.key:
        return sp.key[name]
    if sp.name(name) and name not in sp.alias_taken:
        return name
    return json.dumps(name, ensure_ascii=False)  # quoted: taken literally, never as an alias


def _field_value(name: str, v: Any, sp: _Spelling) -> str:
    if name in CALL_FIELDS and type(v) is str and "(" in v:
        ok, read = parse_value_text(v)
        if ok and read == v:
            return v
    return _value(v, sp)


def kvt_line(event: Event, spec: Spec | None = None) -> str:
    """One .kvt line (without newline) spelling `event`."""
    return _kvt_line(event, spec or spec_mod.load(), None)


def _kvt_line(event: Event, spec: Spec, omit: str | None) -> str:
    sp = _spelling(spec)
    es = spec.events.get(event.kind)
    if es is None:
        raise ValueError(f"event {event.kind!r} has no .kvt spelling (not in spec/events.toml)")
    fields = dict(event.fields)
    if omit is not None:
        del fields[omit]  # given by the enclosing `batch { }` block
    parts: list[str] = []
    seq = fields.get(SEQUENCE_FIELD)
    if type(seq) is int:
        parts.append(f"@{fields.pop(SEQUENCE_FIELD)}")
    id_field = spec.subjects[es.subject]
    ident = ABSENT_ID
    if id_field and fields.get(id_field) is not None:
        v = fields[id_field]
        if spec.fields[id_field].type == "int" and type(v) is int:
            ident = str(fields.pop(id_field))
        elif type(v) is str:
            ident = v if sp.bare(v) and v != ABSENT_ID else json.dumps(v, ensure_ascii=False)
            del fields[id_field]
    parts += [es.subject, ident, es.verb]
    known = [n for n in sp.order[es.name] if n in fields]
    rest = sorted((n for n in fields if n not in set(known)), key=lambda n: _field_key(n, sp))
    for name in (*known, *rest):
        parts.append(f"{_field_key(name, sp)}={_field_value(name, fields[name], sp)}")
    return " ".join(parts)


def skew_line(skew: Skew) -> str:
    """The .kvt declaration `skew A B DELTA_NS` of `skew`."""
    bare = terminal_regex("BARE").fullmatch
    for source in (skew.source_a, skew.source_b):
        if not bare(source):
            raise ValueError(f"skew source {source!r} is not a .kvt word (letters, digits and "
                             f"_.:/+- only)")
    return f"{terminal_literal('SKEW')} {skew.source_a} {skew.source_b} {skew.delta_ns}"


def write_kvt(events: Iterable[Event], out: IO[str], spec: Spec | None = None, *,
              skews: Iterable[Skew] = ()) -> None:
    """A .kvt trace: the `kvtrace 1` header, the skew declarations, then one line per event,
    batches of the block field as `batch { }` blocks (indented two spaces)."""
    spec = spec or spec_mod.load()
    out.write(f"{terminal_literal('KVTRACE')} {KVT_VERSION}\n")
    for skew in skews:
        out.write(skew_line(skew))
        out.write("\n")
    field = spec.order.block_field
    opening = f"{terminal_literal('BATCH')} {terminal_literal('LBRACE')}\n"
    closing = f"{terminal_literal('RBRACE')}\n"
    blocks = 0  # blocks written; the reader numbers the next one blocks + 1
    open_block = False
    for event in events:
        n = event.fields.get(field)
        if open_block and not (type(n) is int and n == blocks):
            out.write(closing)
            open_block = False
        if not open_block and type(n) is int and n == blocks + 1:
            out.write(opening)
            blocks, open_block = n, True
        if open_block:
            out.write("  ")
            out.write(_kvt_line(event, spec, field))
        else:
            out.write(_kvt_line(event, spec, None))
        out.write("\n")
    if open_block:
        out.write(closing)


def jsonl_line(event: Event) -> str:
    if EVENT_KEY in event.fields:
        raise ValueError(f"field {EVENT_KEY!r} collides with the event name key")
    return json.dumps({EVENT_KEY: event.kind, **event.fields}, sort_keys=True,
                      separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def write_jsonl(events: Iterable[Event], out: IO[str]) -> None:
    """Reference telemetry: one compact JSON object per line, keys sorted."""
    for event in events:
        out.write(jsonl_line(event))
        out.write("\n")
