"""The one interface every runtime KV-event importer implements (docs/formats.md; docs/model.md §5
runtime streams).

An importer decides how one runtime's published KV events become the neutral stream the claim
join reads (kvclaims.trace.vllm_events: `Batch` / `KVEvent`, vLLM's event and field names), and
nothing about claims:

- :meth:`Importer.detect` whether a file's first bytes are its format (only where unambiguous);
- :meth:`Importer.frames` the file's records as :class:`~kvclaims.trace.kv_records.Frame`\\ s in
  recorded order, each numbered by the publisher's own event number (`event_id`, `seq_num`) so the
  Sequencer decides gaps, duplicates and restarts; `Frame.stream` names the numbering (one per
  publisher); a malformed record, an unknown key or an unknown event kind is a located
  InputError (file:line:column) naming it;
- :meth:`Importer.decoder` a decoder for one stream, fed frames in the decided order and
  returning each one's `Batch` (stateful where the format says less than the neutral stream
  needs, e.g. TensorRT-LLM's `removed` names no level).

What each format carries and ignores is declared in spec/formats.toml (:class:`Declaration`):
an undeclared key is schema drift and never passes silently.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

import msgspec

from kvclaims.trace.kv_records import Frame
from kvclaims.trace.model import InputError
from kvclaims.trace.vllm_events import Batch, stream_format

# The neutral stream's event kinds, in vLLM's order (spec/streams.toml, format `vllm`).
STORED, REMOVED, CLEARED = tuple(stream_format("vllm").variants)

Decoder = Callable[[Any, "int | None"], Batch]


@dataclass(frozen=True)
class ObjectKeys:
    """The keys of one object of a wire shape: read (required, optional) and carried-and-ignored."""

    required: tuple[str, ...]
    optional: tuple[str, ...]
    ignored: tuple[str, ...]

    @property
    def known(self) -> frozenset[str]:
        return frozenset(self.required + self.optional + self.ignored)


@dataclass(frozen=True)
class Declaration:
    """One format's row of spec/formats.toml."""

    name: str
    runtime: str
    version: str
    source: str
    wire: str
    first_event_id: int
    variants: tuple[str, ...]
    tiers: dict[str, str]
    objects: dict[str, ObjectKeys]

    def keys(self, kind: str) -> ObjectKeys:
        return self.objects[kind]


@lru_cache(maxsize=None)
def declarations() -> dict[str, Declaration]:
    """Every format declared in spec/formats.toml, checked for shape."""
    from kvclaims import spec as spec_mod

    out = {}
    for name, row in spec_mod.formats_table().items():
        objects = {}
        for kind, keys in row.get("objects", {}).items():
            ok = ObjectKeys(tuple(keys["required"]), tuple(keys["optional"]),
                            tuple(keys["ignored"]))
            if len(ok.known) != len(ok.required + ok.optional + ok.ignored):
                raise spec_mod.SpecError(f"spec/formats.toml {name}.{kind}: a key is declared twice")
            objects[kind] = ok
        out[name] = Declaration(name, row["runtime"], row["version"], row["source"], row["wire"],
                                int(row["first_event_id"]),
                                tuple(row.get("variants", ())),
                                {str(k): str(v) for k, v in row.get("tiers", {}).items()},
                                objects)
    return out


class Importer(Protocol):
    """One runtime's KV-event format (see the module docstring)."""

    name: str

    @property
    def declaration(self) -> Declaration: ...

    def detect(self, head: bytes) -> bool: ...

    def frames(self, data: bytes, file: str) -> list[Frame]: ...

    def decoder(self) -> Decoder: ...


class JsonLinesImporter(ABC):
    """The part every JSON Lines importer shares: its declaration by name, and its frames read
    line by line (each line's frames from :meth:`line_frames`, which each format defines)."""

    name = ""

    @property
    def declaration(self) -> Declaration:
        return declarations()[self.name]

    def frames(self, data: bytes, file: str) -> list[Frame]:
        decl = self.declaration
        out: list[Frame] = []
        for line in json_lines(data, file):
            out += self.line_frames(line, decl, Where(file, line, self.top))
        return out

    top = ""  # the kind of a line's object, for messages

    @abstractmethod
    def line_frames(self, line: Line, decl: Declaration, where: Where) -> list[Frame]:
        """The frames one line of the format holds (checked against `decl`, located at
        `where`)."""


# ---- JSON Lines, located ------------------------------------------------------------------------
_BYTE_RE = re.compile(r"\(byte (\d+)\)")


@dataclass(frozen=True)
class Line:
    """One JSON object of a JSON Lines file: its 1-based number, raw bytes and decoded value."""

    number: int
    raw: bytes
    value: Any


def json_lines(data: bytes, file: str) -> Iterator[Line]:
    """The JSON values of a JSON Lines file, skipping blank lines and `#` comment lines (a
    sample's header); an undecodable line is a located InputError."""
    for number, raw in enumerate(data.split(b"\n"), 1):
        text = raw.strip()
        if not text or text.startswith(b"#"):
            continue
        try:
            value = msgspec.json.decode(raw)
        except msgspec.DecodeError as err:
            msg = str(err)
            m = _BYTE_RE.search(msg)
            col = int(m.group(1)) + 1 if m else 1
            raise InputError(file, number, col,
                             f"invalid JSON: {_BYTE_RE.sub('', msg).strip()}") from None
        yield Line(number, raw, value)


def first_json_line(head: bytes) -> bytes | None:
    """The first line of `head` after blank and `#` lines when it starts a JSON object (it may
    be cut at the end of `head`), else None: what detection looks at."""
    for raw in head.split(b"\n"):
        text = raw.strip()
        if not text or text.startswith(b"#"):
            continue
        return text if text.startswith(b"{") else None
    return None


def has_keys(line: bytes | None, *keys: str) -> bool:
    """Whether the (possibly cut) JSON line names every one of `keys` as an object key."""
    return line is not None and all(
        re.search(rb'"' + re.escape(k.encode()) + rb'"\s*:', line) for k in keys)


def key_column(raw: bytes, key: str) -> int:
    """The 1-based column of `"key":` in a raw line (1 when not found)."""
    m = re.search(rb'"' + re.escape(key.encode()) + rb'"\s*:', raw)
    return len(raw[:m.start()].decode("utf-8", "replace")) + 1 if m else 1


@dataclass(frozen=True)
class Where:
    """Where an object sits: the file, the line, and a path of keys for messages (`event.data`)."""

    file: str
    line: Line
    path: str

    def error(self, message: str, key: str | None = None) -> InputError:
        col = key_column(self.line.raw, key) if key else 1
        return InputError(self.file, self.line.number, col, f"{self.path}: {message}")

    def at(self, sub: str) -> Where:
        return Where(self.file, self.line, f"{self.path}.{sub}" if self.path else sub)


def checked(obj: Any, kind: str, decl: Declaration, where: Where) -> dict[str, Any]:
    """`obj` as the declared object `kind` of `decl`: a JSON object with every required key and
    no key spec/formats.toml does not declare (schema drift: an input error naming it)."""
    if not isinstance(obj, dict):
        raise where.error(f"expected a JSON object ({decl.name} {kind}), got "
                          f"{type(obj).__name__}")
    keys = decl.keys(kind)
    for k in obj:
        if k not in keys.known:
            raise where.error(f"unknown field {k!r} in a {decl.name} {kind} (not declared in "
                              f"spec/formats.toml [{decl.name}.objects.{kind}]: schema drift)", k)
    for k in keys.required:
        if k not in obj:
            raise where.error(f"missing field {k!r} of a {decl.name} {kind}")
    return obj


def integer(obj: dict[str, Any], key: str, where: Where, *, optional: bool = False,
            minimum: int | None = 0) -> int | None:
    """`obj[key]` as an int (not a bool), at least `minimum`; None only when `optional`."""
    v = obj.get(key)
    if v is None and optional:
        return None
    if type(v) is not int or (minimum is not None and v < minimum):
        raise where.error(f"field {key!r} must be an integer"
                          + (f" >= {minimum}" if minimum is not None else "")
                          + f", got {v!r}", key)
    return v


def text(obj: dict[str, Any], key: str, where: Where, *, optional: bool = False) -> str | None:
    v = obj.get(key)
    if v is None and optional:
        return None
    if not isinstance(v, str):
        raise where.error(f"field {key!r} must be a string, got {v!r}", key)
    return v


def items(obj: dict[str, Any], key: str, where: Where) -> list[tuple[Any, Where]]:
    """`obj[key]` as a list, each item with where it sits (`key[i]`)."""
    v = obj.get(key)
    if not isinstance(v, list):
        raise where.error(f"field {key!r} must be a list", key)
    return [(x, where.at(f"{key}[{i}]")) for i, x in enumerate(v)]


def integers(obj: dict[str, Any], key: str, where: Where) -> list[int]:
    """`obj[key]` as a list of non-negative ints (block hashes)."""
    v = obj.get(key)
    if not isinstance(v, list) or any(type(x) is not int or x < 0 for x in v):
        raise where.error(f"field {key!r} must be a list of non-negative integers", key)
    return v


def tier(decl: Declaration, value: Any, key: str, where: Where) -> str:
    """A format's tier or level name as the neutral stream's medium (spec/formats.toml tiers)."""
    medium = decl.tiers.get(str(value)) if type(value) in (str, int) else None
    if medium is None:
        raise where.error(f"field {key!r}: unknown {decl.name} tier {value!r} (known: "
                          f"{', '.join(decl.tiers)})", key)
    return medium
