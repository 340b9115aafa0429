"""The model as data: load spec/ into frozen, typed objects (docs/model.md §2-§6).

This module is the only reader of spec/ files. Everything else (the replay checker, the .kvt
grammar's vocabulary, the writers, the generated docs) asks it, so an event name, a field, a
lifecycle transition, a rule id or a mode bundle is written once, in spec/.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

FIELD_TYPES = frozenset(
    {"int", "float", "str", "bool", "list[str]", "list[int]", "list[object]", "object", "any"}
)


# What an input value outside a closed field's vocabulary does (fields.toml `on_unknown`), and
# what an undeclared key on a known event does (events.toml `on_unknown_key`); docs/checking.md.
ON_UNKNOWN = frozenset({"error", "unknown"})
ON_UNKNOWN_KEY = frozenset({"error"})
# Spec tables a closed field may take its values from (fields.toml `values_from`).
VALUE_SOURCES = ("modes.aliases", "lifecycle.offload.outcome_types", "lifecycle.claim.states")
INT_TYPES = frozenset({"int", "list[int]"})


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    type: str
    nullable: bool
    kvt: str
    doc: str
    values: frozenset[str] | None = None  # a closed vocabulary; None for an open field
    on_unknown: str | None = None  # "error" | "unknown" for a closed field
    min: int | None = None  # inclusive range of an int (or list[int] element) field
    max: int | None = None


@dataclass(frozen=True, slots=True)
class EventSpec:
    name: str
    scope: str
    subject: str
    verb: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    doc: str
    carries: tuple[str, ...] = ()  # fields recorded on it by the reference telemetry, read by no rule
    on_unknown_key: str = "error"  # what an undeclared key does (events.toml; docs/checking.md)


@dataclass(frozen=True, slots=True)
class Transition:
    event: str
    sources: frozenset[str]
    target: str  # "same" keeps the state


@dataclass(frozen=True, slots=True)
class Machine:
    initial: str
    states: tuple[str, ...]
    transitions: Mapping[str, Transition]


@dataclass(frozen=True, slots=True)
class RuleSpec:
    id: str
    title: str
    section: str
    sentence: str


@dataclass(frozen=True, slots=True)
class ModeSpec:
    name: str
    rules: tuple[str, ...]
    gate: str | None
    undecidable: bool
    protects: bool = False  # may block an active request (docs/model.md §6 R-yield)


@dataclass(frozen=True, slots=True)
class OrderSpec:
    """Which fields carry partial-order information (fields.toml `[order]`; docs/kvt.md)."""

    batch_fields: tuple[str, ...]  # batch keys in precedence; the first an event carries counts
    block_field: str  # the batch field `.kvt` `batch { }` blocks write
    source_field: str  # an event's recorded source; skew declarations relate two of its values
    time_fields: tuple[str, ...]  # a skew bound is measured on the first of these an event carries


@dataclass(frozen=True, slots=True, eq=False)
class Spec:
    root: Path
    base_fields: tuple[str, ...]
    fields: Mapping[str, FieldSpec]
    events: Mapping[str, EventSpec]
    subjects: Mapping[str, str]  # subject -> field carried in the ID position ("" for none)
    claim: Machine
    responsible: frozenset[str]
    released: frozenset[str]
    offload: Machine
    offload_outcome_events: Mapping[str, str]
    offload_constants: Mapping[str, str]
    offload_host_states: frozenset[str]
    rules: Mapping[str, RuleSpec]
    mode_aliases: Mapping[str, str]
    modes: Mapping[str, ModeSpec]
    gates: Mapping[str, tuple[str, ...]]
    values: Mapping[str, str]
    order: OrderSpec
    informational: frozenset[str] = frozenset()  # accepted on every event; no field, no rule

    def allowed_keys(self, event: str) -> frozenset[str] | None:
        """The keys a known event may carry (its closed key set; None for an unknown event):
        the base fields, the [order] fields, its required, optional and `carries` fields, and
        the informational names (events.toml; docs/checking.md "Closed input")."""
        return _allowed(self).get(event)

    # derived lookups -------------------------------------------------------------------------
    def event_for(self, subject: str, verb: str) -> EventSpec | None:
        return _by_spelling(self).get((subject, verb))

    def field_for_kvt(self, key: str) -> FieldSpec | None:
        return _by_kvt(self).get(key)

    def kvt_key(self, field: str) -> str:
        spec = self.fields.get(field)
        return spec.kvt if spec is not None else field

    def canonical_mode(self, spelling: str | None) -> str | None:
        if spelling is None:
            return None
        return self.mode_aliases.get(spelling)

    def events_of_scope(self, scope: str) -> frozenset[str]:
        return frozenset(e.name for e in self.events.values() if e.scope == scope)


@lru_cache(maxsize=None)
def _by_spelling(spec: Spec) -> dict[tuple[str, str], EventSpec]:
    return {(e.subject, e.verb): e for e in spec.events.values()}


@lru_cache(maxsize=None)
def _allowed(spec: Spec) -> dict[str, frozenset[str]]:
    o = spec.order
    common = {*spec.base_fields, *o.batch_fields, o.source_field, *o.time_fields,
              *spec.informational}
    return {e.name: frozenset({*common, *e.required, *e.optional, *e.carries})
            for e in spec.events.values()}


@lru_cache(maxsize=None)
def _by_kvt(spec: Spec) -> dict[str, FieldSpec]:
    return {f.kvt: f for f in spec.fields.values()}


class SpecError(Exception):
    """spec/ is inconsistent; raised at load time so a bad table never reaches a verdict."""


def spec_root() -> Path:
    """spec/ as package data (kvclaims/spec: in the wheel, or the repository's spec/ by a
    symlink in the checkout), the same place for an installed wheel and an editable install."""
    packaged = resources.files("kvclaims") / "spec"
    if packaged.is_dir():
        return Path(str(packaged))
    raise SpecError("cannot find spec/: kvclaims/spec is missing from the installed package")


def grammar_text(root: Path | None = None) -> str:
    """spec/trace.lark, the .kvt grammar (read here so spec/ has one reader)."""
    return ((root or spec_root()) / "trace.lark").read_text(encoding="utf-8")


def formats_table(root: Path | None = None) -> dict:
    """spec/formats.toml, the runtime KV-event formats kvclaims imports, as written (checked
    and turned into declarations by kvclaims.trace.formats.base; docs/formats.md)."""
    return _read(root or spec_root(), "formats.toml")


@lru_cache(maxsize=None)
def digest(root: Path | None = None) -> str:
    """sha256 over the spec's top-level files (names and contents, by name): what a saved
    checker state was decided with (kvclaims.checkpoint refuses another)."""
    import hashlib

    h = hashlib.sha256()
    for p in sorted((root or spec_root()).iterdir(), key=lambda p: p.name):
        if p.is_file():
            h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def _read(root: Path, name: str) -> dict:
    with open(root / name, "rb") as fh:
        return tomllib.load(fh)


def _machine(table: dict) -> Machine:
    transitions = {}
    for t in table["transitions"]:
        if t["event"] in transitions:
            raise SpecError(f"two transitions for {t['event']}")
        transitions[t["event"]] = Transition(t["event"], frozenset(t["from"]), t["to"])
    return Machine(table["initial"], tuple(table["states"]), MappingProxyType(transitions))


def _order(table: dict, fields: Mapping[str, FieldSpec]) -> OrderSpec:
    order = OrderSpec(tuple(table["batch_fields"]), table["block_field"], table["source_field"],
                      tuple(table["time_fields"]))
    typed = [*((f, "int") for f in order.batch_fields), (order.source_field, "str"),
             *((f, "int") for f in order.time_fields)]
    for name, type_ in typed:
        if name not in fields:
            raise SpecError(f"[order] names unknown field {name}")
        if fields[name].type != type_:
            raise SpecError(f"[order] field {name} must have type {type_}")
    if order.block_field not in order.batch_fields:
        raise SpecError(f"[order] block_field {order.block_field} is not a batch field")
    return order


@lru_cache(maxsize=None)
def load(root: Path | None = None) -> Spec:
    root = root or spec_root()
    fields_file = _read(root, "fields.toml")
    fields_t = fields_file["fields"]
    events_t = _read(root, "events.toml")
    life_t = _read(root, "lifecycle.toml")
    rules_t = _read(root, "rules.toml")["rules"]
    modes_t = _read(root, "modes.toml")

    life_early = _read(root, "lifecycle.toml")
    modes_early = _read(root, "modes.toml")
    sources = {"modes.aliases": tuple(modes_early["aliases"]),
               "lifecycle.offload.outcome_types": tuple(life_early["offload"]["outcome_types"]),
               "lifecycle.claim.states": tuple(life_early["claim"]["states"])}
    fields = {}
    for name, f in fields_t.items():
        if f["type"] not in FIELD_TYPES:
            raise SpecError(f"field {name}: unknown type {f['type']!r}")
        fields[name] = FieldSpec(name, f["type"], bool(f.get("nullable", False)),
                                 f.get("kvt", name), f.get("doc", ""),
                                 *_closed(name, f, sources), *_range(name, f))
    kvt_keys = [f.kvt for f in fields.values()]
    if len(set(kvt_keys)) != len(kvt_keys):
        raise SpecError("two fields share a .kvt key")
    subjects = {s: t["id_field"] for s, t in events_t["subjects"].items()}
    events = {}
    spellings = set()
    for name, e in events_t["events"].items():
        if e["subject"] not in subjects:
            raise SpecError(f"event {name}: unknown subject {e['subject']}")
        for fld in (*e["required"], *e["optional"]):
            if fld not in fields:
                raise SpecError(f"event {name}: unknown field {fld}")
        if (e["subject"], e["verb"]) in spellings:
            raise SpecError(f"event {name}: .kvt spelling used twice")
        spellings.add((e["subject"], e["verb"]))
        for fld in e.get("carries", ()):
            if fld not in fields:
                raise SpecError(f"event {name}: carries unknown field {fld}")
        on_key = e.get("on_unknown_key", events_t.get("on_unknown_key", "error"))
        if on_key not in ON_UNKNOWN_KEY:
            raise SpecError(f"event {name}: on_unknown_key must be one of {sorted(ON_UNKNOWN_KEY)}")
        events[name] = EventSpec(name, e["scope"], e["subject"], e["verb"],
                                 tuple(e["required"]), tuple(e["optional"]), e.get("doc", ""),
                                 tuple(e.get("carries", ())), on_key)
    informational = frozenset(events_t.get("informational", ()))
    if informational & set(fields):
        raise SpecError(f"informational names that are fields: {sorted(informational & set(fields))}")
    claim = _machine(life_t["claim"])
    offload = _machine(life_t["offload"])
    for m in (claim, offload):
        for ev in m.transitions:
            if ev not in events:
                raise SpecError(f"lifecycle names unknown event {ev}")
    rules = {rid: RuleSpec(rid, r["title"], r["section"], r["sentence"]) for rid, r in rules_t.items()}
    modes = {}
    for name, m in modes_t["modes"].items():
        for rid in m["rules"]:
            if rid not in rules:
                raise SpecError(f"mode {name}: unknown rule {rid}")
        modes[name] = ModeSpec(name, tuple(m["rules"]), m.get("gate"),
                               bool(m.get("undecidable", False)), bool(m.get("protects", False)))
    aliases = dict(modes_t["aliases"])
    for spelling, mode in aliases.items():
        if mode not in modes:
            raise SpecError(f"alias {spelling}: unknown mode {mode}")
    gates = {g: tuple(t["requirements"]) for g, t in modes_t["gates"].items()}
    outcome_events = dict(life_t["offload"]["outcome_events"])
    for ev in outcome_events.values():
        if ev not in events:
            raise SpecError(f"offload outcome names unknown event {ev}")
    consts = {k: life_t["offload"][k] for k in ("restore_source", "host_tier", "gpu_tier")}
    return Spec(
        root=root,
        base_fields=tuple(events_t["base"]),
        fields=MappingProxyType(fields),
        events=MappingProxyType(events),
        subjects=MappingProxyType(subjects),
        claim=claim,
        responsible=frozenset(life_t["claim"]["responsible"]),
        released=frozenset(life_t["claim"]["released"]),
        offload=offload,
        offload_outcome_events=MappingProxyType(outcome_events),
        offload_constants=MappingProxyType(consts),
        offload_host_states=frozenset(life_t["offload"]["host_states"]),
        rules=MappingProxyType(rules),
        mode_aliases=MappingProxyType(aliases),
        modes=MappingProxyType(modes),
        gates=MappingProxyType(gates),
        values=MappingProxyType(dict(events_t["values"])),
        order=_order(fields_file["order"], fields),
        informational=informational,
    )


def _closed(name: str, f: dict, sources: dict[str, tuple[str, ...]]
            ) -> tuple[frozenset[str] | None, str | None]:
    """A field's closed vocabulary and `on_unknown` (fields.toml), checked for consistency."""
    if "values" in f and "values_from" in f:
        raise SpecError(f"field {name}: give `values` or `values_from`, not both")
    if "values_from" in f:
        if f["values_from"] not in sources:
            raise SpecError(f"field {name}: values_from must be one of {list(sources)}")
        values: frozenset[str] | None = frozenset(sources[f["values_from"]])
    elif "values" in f:
        values = frozenset(f["values"])
    else:
        values = None
    on_unknown = f.get("on_unknown")
    if (values is None) != (on_unknown is None):
        raise SpecError(f"field {name}: a closed field needs both values and on_unknown")
    if values is not None and (f["type"] != "str" or not values):
        raise SpecError(f"field {name}: only a str field takes a non-empty closed vocabulary")
    if on_unknown is not None and on_unknown not in ON_UNKNOWN:
        raise SpecError(f"field {name}: on_unknown must be one of {sorted(ON_UNKNOWN)}")
    return values, on_unknown


def _range(name: str, f: dict) -> tuple[int | None, int | None]:
    """An int field's inclusive range (fields.toml `min`, `max`); only int fields take one."""
    lo, hi = f.get("min"), f.get("max")
    if lo is None and hi is None:
        return None, None
    if f["type"] not in INT_TYPES:
        raise SpecError(f"field {name}: only int fields take min/max")
    if type(lo) is not int or type(hi) is not int or lo > hi:
        raise SpecError(f"field {name}: min and max must be integers with min <= max")
    return lo, hi


# ---- the runtimes' KV event stream formats (spec/streams.toml; docs/formats.md) ---------------
COPY_SEMANTICS = frozenset({"per_copy", "deduplicated"})
REPEATED_STORE = frozenset({"copy", "copy_or_report"})
ON_UNKNOWN_FIELD = frozenset({"unknown", "carry"})
IDENTITY_ROLES = ("hash", "tier", "group", "salt", "lora")
STREAM_FIELD_TYPES = frozenset({"int", "str", "list", "any"})


@dataclass(frozen=True, slots=True)
class StreamVariant:
    """One event variant of a stream format: its fields in wire order, the required ones, and
    what a field outside the list does."""

    name: str
    fields: tuple[str, ...]
    required: frozenset[str]
    on_unknown_field: str


@dataclass(frozen=True, slots=True)
class StreamFormat:
    """A runtime's KV event stream, declared (spec/streams.toml): how copies count, its media
    and tiers, which field carries each identity dimension, its closed event variants."""

    name: str
    runtime: str
    copies: str
    repeated_store: str
    default_medium: str
    media: Mapping[str, str]
    cleared_tiers: frozenset[str]
    identity: Mapping[str, str]
    variants: Mapping[str, StreamVariant]
    field_types: Mapping[str, tuple[str, bool]]  # field -> (type, nullable)
    device_tier: str

    @property
    def deduplicated(self) -> bool:
        return self.copies == "deduplicated"


@lru_cache(maxsize=None)
def stream_formats(root: Path | None = None) -> Mapping[str, StreamFormat]:
    """Every declared KV event stream format, checked for consistency (SpecError otherwise)."""
    t = _read(root or spec_root(), "streams.toml")
    tiers = frozenset(t["tiers"])
    if t["device_tier"] not in tiers:
        raise SpecError(f"streams.toml: device_tier {t['device_tier']!r} is not a tier")
    types: dict[str, tuple[str, bool]] = {}
    for name, spelled in t["field_types"].items():
        base = spelled.rstrip("?")
        if base not in STREAM_FIELD_TYPES:
            raise SpecError(f"streams.toml: field {name}: unknown type {spelled!r}")
        types[name] = (base, spelled.endswith("?"))
    out = {}
    for name, f in t["formats"].items():
        where = f"streams.toml: format {name}"
        if f["copies"] not in COPY_SEMANTICS:
            raise SpecError(f"{where}: copies must be one of {sorted(COPY_SEMANTICS)}")
        if f["repeated_store"] not in REPEATED_STORE:
            raise SpecError(f"{where}: repeated_store must be one of {sorted(REPEATED_STORE)}")
        media = dict(f["media"])
        if not set(media.values()) <= tiers or f["default_medium"] not in media:
            raise SpecError(f"{where}: media name unknown tiers or lack the default medium")
        cleared = frozenset(f["cleared_tiers"])
        if not cleared <= tiers:
            raise SpecError(f"{where}: cleared_tiers names an unknown tier")
        identity = dict(f["identity"])
        if set(identity) != set(IDENTITY_ROLES):
            raise SpecError(f"{where}: identity must name exactly {list(IDENTITY_ROLES)}")
        variants = {}
        for vname, v in f["events"].items():
            fields = tuple(v["fields"])
            unknown = (set(fields) | set(v["required"])) - set(types)
            if unknown or not set(v["required"]) <= set(fields):
                raise SpecError(f"{where}: {vname} names fields without a type or requires "
                                f"undeclared ones: {sorted(unknown)}")
            if v["on_unknown_field"] not in ON_UNKNOWN_FIELD:
                raise SpecError(f"{where}: {vname}: on_unknown_field must be one of "
                                f"{sorted(ON_UNKNOWN_FIELD)}")
            variants[vname] = StreamVariant(vname, fields, frozenset(v["required"]),
                                            v["on_unknown_field"])
        for role, fld in identity.items():
            if fld and not any(fld in v.fields for v in variants.values()):
                raise SpecError(f"{where}: identity {role} names {fld}, which no event carries")
        out[name] = StreamFormat(name, f["runtime"], f["copies"], f["repeated_store"],
                                 f["default_medium"], MappingProxyType(media), cleared,
                                 MappingProxyType(identity), MappingProxyType(variants),
                                 MappingProxyType(types), t["device_tier"])
    return MappingProxyType(out)
