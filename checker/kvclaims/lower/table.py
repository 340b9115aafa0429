"""The runtime × mode table as data (docs/model.md §9; issue 5 item 5).

Loads every descriptor, checks the anchors (trace anchors always, by replay; source anchors only
when asked), asks the Z3 primitive models for witnesses, and classifies each row with
`relation.classify`. Pure data out; rendering is kvclaims.lower.render.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kvclaims import spec as spec_mod
from kvclaims.lower import kvhints, kvrm_proof, primitives
from kvclaims.lower.anchors import AnchorRow, check_anchors
from kvclaims.lower.descriptor import Descriptor, load_descriptors, load_tables
from kvclaims.lower.relation import (
    APPROXIMATE,
    CLASSES,
    NATIVE_SOUND,
    REJECTED,
    SOUND_WITH_ADAPTER,
    UNKNOWN,
    Decision,
    classify,
)

PUBLIC = frozenset({"vllm", "vllm-kvhints", "tensorrt-llm", "sglang", "dynamo", "lmcache"})


@dataclass(frozen=True, slots=True)
class LoweringTable:
    rows: tuple[Decision, ...]
    anchors: tuple[AnchorRow, ...]
    descriptors: tuple[Descriptor, ...]
    verified_sources: bool
    bound: int

    @property
    def errors(self) -> tuple[str, ...]:
        out = [f"{r.runtime} {r.label}: {e}" for r in self.rows for e in r.errors]
        out += [f"{a.runtime} {a.evidence}: anchor drift: {a.anchor.text}: {a.check.detail}"
                for a in self.anchors if a.check.status == "drift"]
        return tuple(out)

    def row(self, runtime: str, label: str) -> Decision:
        return next(r for r in self.rows if r.runtime == runtime and r.label == label)

    def counts(self) -> dict[str, int]:
        out = {c: 0 for c in CLASSES}
        for r in self.rows:
            out[r.cls] += 1
        return out


def build(verify_sources: bool = False, source: str | Path | None = None,
          bound: int = primitives.DEFAULT_BOUND,
          descriptors: tuple[Descriptor, ...] | None = None) -> LoweringTable:
    spec = spec_mod.load()
    tables = load_tables()
    descriptors = descriptors if descriptors is not None else load_descriptors()
    checks, anchor_rows = check_anchors(descriptors, sources=verify_sources,
                                        source=Path(source) if source else None)

    def semantic(p: str, m: str) -> primitives.SemanticResult:
        if p == kvrm_proof.NAME:  # the KV-RM arbiter: its own system and bound
            return kvrm_proof.check(m)
        if p in kvhints.primitive_names():  # a KV hint lowering (spec/kvhints.toml)
            return kvhints.check(p, m, bound)
        return primitives.check(p, m, bound)

    rows = tuple(classify(spec, tables, d, row, checks, semantic)
                 for d in descriptors for row in d.mappings)
    return LoweringTable(rows, tuple(anchor_rows), descriptors, verify_sources, bound)


__all__ = [
    "APPROXIMATE",
    "NATIVE_SOUND",
    "PUBLIC",
    "REJECTED",
    "SOUND_WITH_ADAPTER",
    "UNKNOWN",
    "LoweringTable",
    "build",
]
