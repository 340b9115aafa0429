"""Load and validate runtime descriptors and the lowering tables (docs/model.md §9, P2.6).

Reads spec/descriptor.schema.json, spec/lowering.toml, spec/kvhints.toml and spec/descriptors/*.toml (via
`kvclaims.spec.spec_root()`); validates each descriptor against the schema (a small validator for
the JSON Schema subset the schema uses, so no extra dependency) and against the spec (modes,
obligation ids). Returns frozen data; errors name the file and the JSON path.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from kvclaims import spec as spec_mod


class DescriptorError(Exception):
    """A descriptor or the lowering table is malformed; carries the file and where."""


# ---- data --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Anchor:
    kind: str  # source | doc | trace | issue
    ref: str  # source ref, URL, trace path or issue ref
    verdict: str | None = None  # trace: the expected verdict
    require: str | None = None  # trace: the gate checked with it
    violated: tuple[str, ...] = ()  # trace: the rules expected violated
    note: str = ""

    @property
    def text(self) -> str:
        if self.kind == "trace":
            extra = f" --require {self.require}" if self.require else ""
            return f"trace:{self.ref}{extra} => {self.verdict}"
        return f"{self.kind}:{self.ref}"


@dataclass(frozen=True, slots=True)
class Evidence:
    id: str
    depth: str
    modes: tuple[str, ...]
    supports: tuple[str, ...]
    basis: str
    anchors: tuple[Anchor, ...]
    rows: tuple[str, ...] = ()
    pressure_controlled: bool = False
    ambiguous: bool = False
    note: str = ""
    runtime: str = ""


@dataclass(frozen=True, slots=True)
class Mapping_:
    mode: str
    label: str
    primitives: tuple[str, ...]
    claimed_class: str | None = None
    claimed_depth: str | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class Descriptor:
    runtime: str
    name: str
    version: str
    modes: tuple[str, ...]
    mappings: tuple[Mapping_, ...]
    evidence: tuple[Evidence, ...]
    commit: str | None = None
    package: str | None = None
    distribution: str | None = None
    note: str = ""
    path: str = ""


@dataclass(frozen=True, slots=True)
class LoweringTables:
    depths: tuple[str, ...]
    depth_names: Mapping[str, str]
    extra_obligations: Mapping[str, tuple[str, ...]]
    obligation_sentences: Mapping[str, str]
    allowed: Mapping[str, frozenset[str]]
    raising_bases: frozenset[str]
    trace_only: frozenset[str] = frozenset()  # rules decided on traces, not lowered per mode

    def rank(self, depth: str) -> int:
        return self.depths.index(depth)

    def bundle(self, spec: spec_mod.Spec, mode: str) -> tuple[str, ...]:
        """O[m]: the replay rules of the mode (spec/modes.toml) plus its lowering extras."""
        return tuple(r for r in spec.modes[mode].rules if r not in self.trace_only) + tuple(
            self.extra_obligations.get(mode, ()))


# ---- a validator for the JSON Schema subset used by spec/descriptor.schema.json ----------------
_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "integer": int}


def _resolve(schema: dict, root: dict) -> dict:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    node: Any = root
    for part in ref.lstrip("#/").split("/"):
        node = node[part]
    return node


def validate(instance: Any, schema: dict, root: dict | None = None, path: str = "$") -> list[str]:
    """Errors (JSON path: message) of `instance` against `schema`; [] when valid."""
    root = root or schema
    schema = _resolve(schema, root)
    errs: list[str] = []
    if "oneOf" in schema:
        matches = [s for s in schema["oneOf"] if not validate(instance, s, root, path)]
        if len(matches) != 1:
            kinds = instance.get("kind") if isinstance(instance, dict) else None
            errs.append(f"{path}: matches {len(matches)} of the allowed shapes (kind={kinds!r})")
        return errs
    t = schema.get("type")
    if t is not None:
        py = _TYPES[t]
        ok = isinstance(instance, py) and not (t in ("integer",) and isinstance(instance, bool))
        if not ok:
            return [f"{path}: expected {t}, got {type(instance).__name__}"]
    if "const" in schema and instance != schema["const"]:
        errs.append(f"{path}: must be {schema['const']!r}")
    if "enum" in schema and instance not in schema["enum"]:
        errs.append(f"{path}: {instance!r} is not one of {schema['enum']}")
    if isinstance(instance, str):
        if len(instance) < schema.get("minLength", 0):
            errs.append(f"{path}: empty")
        if "pattern" in schema and not re.search(schema["pattern"], instance):
            errs.append(f"{path}: {instance!r} does not match {schema['pattern']}")
    if isinstance(instance, list):
        if len(instance) < schema.get("minItems", 0):
            errs.append(f"{path}: needs at least {schema['minItems']} item(s)")
        if schema.get("uniqueItems") and len({json.dumps(i, sort_keys=True) for i in instance}) \
                != len(instance):
            errs.append(f"{path}: items must be unique")
        if "items" in schema:
            for i, item in enumerate(instance):
                errs += validate(item, schema["items"], root, f"{path}[{i}]")
    if isinstance(instance, dict):
        for key in schema.get("required", ()):
            if key not in instance:
                errs.append(f"{path}: missing required field {key!r}")
        props = schema.get("properties", {})
        for key, value in instance.items():
            if key in props:
                errs += validate(value, props[key], root, f"{path}.{key}")
            elif schema.get("additionalProperties") is False:
                errs.append(f"{path}: unknown field {key!r}")
    return errs


# ---- loading -----------------------------------------------------------------------------------
def schema_path(root: Path | None = None) -> Path:
    return (root or spec_mod.spec_root()) / "descriptor.schema.json"


def descriptors_dir(root: Path | None = None) -> Path:
    return (root or spec_mod.spec_root()) / "descriptors"


@cache
def load_schema(root: Path | None = None) -> dict:
    with open(schema_path(root), encoding="utf-8") as fh:
        return json.load(fh)


@cache
def load_tables(root: Path | None = None) -> LoweringTables:
    root = root or spec_mod.spec_root()
    with open(root / "lowering.toml", "rb") as fh:
        t = tomllib.load(fh)
    spec = spec_mod.load()
    depths = tuple(t["depths"])
    extra = {m: tuple(v) for m, v in t["extra_obligations"].items()}
    sentences = {o: v["sentence"] for o, v in t["obligations"].items()}
    allowed = {o: frozenset(v) for o, v in t["allowed"].items()}
    trace_only = frozenset(t.get("trace_only", ()))
    for o in trace_only:
        if o not in spec.rules:
            raise DescriptorError(f"lowering.toml: trace_only names unknown rule {o}")
    for m in extra:
        if m not in spec.modes:
            raise DescriptorError(f"lowering.toml: extra obligations for unknown mode {m}")
    known = set(spec.rules) | set(sentences)
    for o, ds in allowed.items():
        if o not in known:
            raise DescriptorError(f"lowering.toml: allowed depths for unknown obligation {o}")
        if not ds <= set(depths):
            raise DescriptorError(f"lowering.toml: {o}: unknown depth in {sorted(ds)}")
    for m in spec.modes:
        for o in tuple(spec.modes[m].rules) + extra.get(m, ()):
            if o not in allowed and o not in trace_only:
                raise DescriptorError(f"lowering.toml: no allowed depths for obligation {o}")
    return LoweringTables(depths, dict(t["depth_names"]), extra, sentences, allowed,
                          frozenset(t["bases"]["raising"]), trace_only)


@dataclass(frozen=True, slots=True)
class HintKind:
    """One KV hint kind (spec/kvhints.toml [kinds]): the mode it lowers onto, whether an accepted
    hint holds its blocks, and for a kind that ends a hold (Demote) the event accepting it is."""

    name: str
    mode: str | None
    holds: bool = False
    ends: bool = False
    on_accept: str | None = None
    sentence: str = ""


@dataclass(frozen=True, slots=True)
class HintOutcome:
    """One KV hint outcome (spec/kvhints.toml [outcomes]): the events it becomes as the first
    answer and when it arrives for a hint already accepted; `decided`: whether it settles the
    claim's fate."""

    name: str
    answer: tuple[str, ...]
    later: tuple[str, ...]
    decided: bool
    grants: bool = False  # after this answer the runtime holds the hint
    final: bool = True  # no other answer follows (deferred: False)
    cuts: bool = False  # may arrive for an accepted hint and ends its hold
    sentence: str = ""


@dataclass(frozen=True, slots=True)
class HintTable:
    """spec/kvhints.toml: how KV hints lower onto claim modes and lifecycle events."""

    send: str
    materialize: str
    kinds: Mapping[str, HintKind]
    outcomes: Mapping[str, HintOutcome]
    spellings: Mapping[str, str]
    answers: Mapping[str, tuple[str, ...]]
    payload_blocks: str = ""  # the payload key listing the hinted blocks' hashes
    unanswered: str = ""  # the outcome of a hint nothing answered


def _hint_table(t: dict, spec: spec_mod.Spec, where: str = "kvhints.toml") -> HintTable:
    """Build and check the hint table: every event is a claim transition of spec/lifecycle.toml,
    every mode a mode of spec/modes.toml, every spelling a kind, every answer set outcomes."""
    def event(name: Any, at: str) -> str:
        if name not in spec.claim.transitions:
            raise DescriptorError(f"{where}: {at}: {name!r} is not a claim transition of "
                                  "spec/lifecycle.toml")
        return str(name)

    try:
        send = event(t["send"], "send")
        materialize = event(t["materialize"], "materialize")
        kinds = {}
        for k, v in t["kinds"].items():
            mode = v.get("mode")
            if mode is not None and mode not in spec.modes:
                raise DescriptorError(f"{where}: kinds.{k}.mode: unknown mode {mode!r}")
            on_accept = v.get("on_accept")
            if bool(v.get("ends")) != (on_accept is not None) or (mode is None) != bool(
                    v.get("ends")):
                raise DescriptorError(f"{where}: kinds.{k}: a kind has a mode, or ends a hold "
                                      "with an on_accept event, not both")
            kinds[k] = HintKind(k, mode, bool(v.get("holds")), bool(v.get("ends")),
                                event(on_accept, f"kinds.{k}.on_accept") if on_accept else None,
                                v.get("sentence", ""))
        outcomes = {o: HintOutcome(o, tuple(event(e, f"outcomes.{o}.answer") for e in v["answer"]),
                                   tuple(event(e, f"outcomes.{o}.later")
                                         for e in v.get("later", ())),
                                   bool(v["decided"]), bool(v.get("grants")),
                                   bool(v.get("final", True)), bool(v.get("cuts")),
                                   v.get("sentence", ""))
                    for o, v in t["outcomes"].items()}
        spellings = dict(t.get("spellings", {}))
        answers = {r: tuple(v) for r, v in t["answers"].items() if r != "unanswered"}
        unanswered = str(t["answers"]["unanswered"])
    except KeyError as err:
        raise DescriptorError(f"{where}: missing {err}") from None
    for s, k in spellings.items():
        if k not in kinds:
            raise DescriptorError(f"{where}: spellings.{s}: unknown kind {k!r}")
    if unanswered not in outcomes or outcomes[unanswered].decided:
        raise DescriptorError(f"{where}: answers.unanswered: {unanswered!r} is not an outcome "
                              "that settles nothing")
    for r, os_ in answers.items():
        if not set(os_) <= set(outcomes):
            raise DescriptorError(f"{where}: answers.{r}: unknown outcome in {list(os_)}")
    return HintTable(send, materialize, kinds, outcomes, spellings, answers,
                     str(t.get("payload", {}).get("blocks", "")), unanswered)


@cache
def load_hint_table(root: Path | None = None) -> HintTable:
    """spec/kvhints.toml, checked against the lifecycle and the modes."""
    root = root or spec_mod.spec_root()
    with open(root / "kvhints.toml", "rb") as fh:
        t = tomllib.load(fh)
    return _hint_table(t, spec_mod.load())


def _anchor(a: dict) -> Anchor:
    kind = a["kind"]
    ref = a.get("ref") or a.get("url") or a.get("path") or ""
    return Anchor(kind, ref, a.get("verdict"), a.get("require"), tuple(a.get("violated", ())),
                  a.get("note", ""))


def parse_descriptor(data: dict, path: str = "<descriptor>",
                     spec: spec_mod.Spec | None = None) -> Descriptor:
    """Validate one parsed descriptor (schema, then spec consistency) and build it."""
    spec = spec or spec_mod.load()
    errs = validate(data, load_schema())
    if errs:
        raise DescriptorError(f"{path}: " + "; ".join(errs))
    tables = load_tables()
    modes = tuple(data["modes"])
    mappings = []
    labels: set[str] = set()
    for i, m in enumerate(data["mapping"]):
        label = m.get("label", m["mode"])
        if label in labels:
            raise DescriptorError(f"{path}: $.mapping[{i}]: row {label!r} defined twice")
        if m["mode"] not in modes:
            raise DescriptorError(f"{path}: $.mapping[{i}]: mode {m['mode']} not in $.modes")
        labels.add(label)
        mappings.append(Mapping_(m["mode"], label, tuple(m["primitives"]), m.get("claimed_class"),
                                 m.get("claimed_depth"), m.get("note", "")))
    ids: set[str] = set()
    evidence = []
    for i, e in enumerate(data["evidence"]):
        if e["id"] in ids:
            raise DescriptorError(f"{path}: $.evidence[{i}]: evidence id {e['id']!r} used twice")
        ids.add(e["id"])
        for o in e["supports"]:
            if o not in tables.allowed:
                raise DescriptorError(f"{path}: $.evidence[{i}].supports: unknown obligation {o}")
        for r in e.get("rows", ()):
            if r not in labels:
                raise DescriptorError(f"{path}: $.evidence[{i}].rows: unknown row {r}")
        evidence.append(Evidence(
            id=e["id"], depth=e["depth"], modes=tuple(e["modes"]), supports=tuple(e["supports"]),
            basis=e["basis"], anchors=tuple(_anchor(a) for a in e["anchors"]),
            rows=tuple(e.get("rows", ())), pressure_controlled=bool(e.get("pressure_controlled")),
            ambiguous=bool(e.get("ambiguous")), note=e.get("note", ""), runtime=data["runtime"]))
    return Descriptor(
        runtime=data["runtime"], name=data["name"], version=data["version"], modes=modes,
        mappings=tuple(mappings), evidence=tuple(evidence), commit=data.get("commit"),
        package=data.get("package"), distribution=data.get("distribution"),
        note=data.get("note", ""), path=path)


def load_descriptor(path: str | Path) -> Descriptor:
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as err:
        raise DescriptorError(f"{p}: {err}") from None
    return parse_descriptor(data, str(p))


def load_descriptors(directory: str | Path | None = None) -> tuple[Descriptor, ...]:
    """Every spec/descriptors/*.toml, sorted by file name."""
    d = Path(directory) if directory is not None else descriptors_dir()
    files = sorted(d.glob("*.toml"))
    if not files:
        raise DescriptorError(f"{d}: no descriptors")
    return tuple(load_descriptor(f) for f in files)
