"""Command bodies for the CLI (wired in kvclaims.cli): `kvclaims lower` and `kvclaims prove`.

Exit codes follow the house rules: 0 ok, 1 a violation (drift, over-claim, an accepted bad
lowering), 2 usage or input error, 3 inconclusive (a solver question answered unknown,
kvclaims.solver, its reason printed; or --verify-anchors with anchors it could not check).
"""

from __future__ import annotations

import sys
from typing import IO, Any

from kvclaims.lower.descriptor import DescriptorError
from kvclaims.lower.primitives import witness_kvt
from kvclaims.lower.relation import UNCHECKED


def lower_command(fmt: str, verify_anchors: bool, source: str | None,
                  out: IO[str] | None = None, runtime: str | None = None) -> int:
    """`kvclaims lower [--format text|json|md] [--runtime NAME] [--verify-anchors [--source
    DIR]]`; --runtime keeps one runtime's rows (its descriptors only)."""
    from kvclaims.lower.descriptor import load_descriptors
    from kvclaims.lower.table import build
    from kvclaims.lower.render import RENDERERS

    stream = out or sys.stdout
    if fmt not in RENDERERS:
        print(f"kvclaims lower: unknown format {fmt!r} (text, json, md)", file=sys.stderr)
        return 2
    if source is not None and not verify_anchors:
        print("kvclaims lower: --source needs --verify-anchors", file=sys.stderr)
        return 2
    try:
        descriptors = None
        if runtime is not None:
            every = load_descriptors()
            descriptors = tuple(d for d in every if d.runtime == runtime)
            if not descriptors:
                known = ", ".join(sorted({d.runtime for d in every}))
                print(f"kvclaims lower: --runtime {runtime}: no descriptor; the runtimes are "
                      f"{known}", file=sys.stderr)
                return 2
        table = build(verify_sources=verify_anchors, source=source, descriptors=descriptors)
    except DescriptorError as err:
        print(f"kvclaims lower: {err}", file=sys.stderr)
        return 2
    stream.write(RENDERERS[fmt](table))
    undecided = [(r, s) for r in table.rows for s in r.semantic if s.status == "unknown"]
    if undecided:
        for r, s in undecided:
            print(f"kvclaims lower: inconclusive: {r.runtime} {r.label}: {s.primitive}: {s.note}",
                  file=sys.stderr)
        return 3
    if table.errors:
        for e in table.errors:
            print(f"kvclaims lower: {e}", file=sys.stderr)
        return 1
    if verify_anchors:
        # Unverified is not verified: asked to verify, an anchor it could not check leaves the
        # answer open (exit 3, as an inconclusive check), and each one is named.
        seen: set[str] = set()
        unchecked = []
        for row in table.anchors:
            if row.anchor.kind in CHECKED_KINDS and row.check.status == UNCHECKED and \
                    row.anchor.text not in seen:
                seen.add(row.anchor.text)
                unchecked.append(row)
        if unchecked:
            for row in unchecked:
                print(f"kvclaims lower: unchecked {row.runtime} {row.anchor.text} -- "
                      f"{row.check.detail}", file=sys.stderr)
            print(f"kvclaims lower: inconclusive: {len(unchecked)} anchor(s) could not be "
                  "checked", file=sys.stderr)
            return 3
    return 0


# The anchor kinds --verify-anchors checks (doc and issue anchors are recorded, not fetched).
CHECKED_KINDS = ("source", "trace", "proof")


def prove_command(path: str, out: IO[str] | None = None, fmt: str = "text") -> int:
    """`kvclaims prove DIR|FILE [--format text|json]`: each bad lowering rejected with its
    reason (and witness); the JSON report is schemas/prove.schema.json."""
    from kvclaims.lower.prove import case_lines, prove

    stream = out or sys.stdout
    try:
        results = prove(path)
    except DescriptorError as err:
        print(f"kvclaims prove: {err}", file=sys.stderr)
        return 2
    from kvclaims.lower import kvrm_proof

    kvrm = kvrm_proof.proof()  # decided before anything is printed: an interrupt leaves no partial report
    if fmt == "json":
        return _prove_json(results, kvrm, stream)
    bad = 0
    undecided = 0
    for r in results:
        if r.inconclusive:
            undecided += 1
            print(f"INCONCLUSIVE {r.name} [{r.kind}, {r.mode}]  ({r.file})", file=stream)
            print(f"    {r.inconclusive}", file=stream)
            continue
        for line in case_lines(r):
            print(line, file=stream)
        if not r.ok:
            bad += 1
    print(f"{len(results) - bad - undecided}/{len(results)} bad lowerings rejected with their "
          f"reason" + (f", {undecided} inconclusive (the solver answered unknown)"
                       if undecided else ""), file=stream)
    kvrm = _kvrm_section(stream)
    if bad or kvrm is False:
        return 1
    return 3 if undecided or kvrm is None else 0


def _kvrm_section(stream: IO[str]) -> bool | None:
    """The KV-RM arbiter proof (issue 8): result and bound; False when it fails, None when the
    solver answered unknown (inconclusive)."""
    from kvclaims.lower import kvrm_proof as K

    p = K.proof()
    r = p.result
    print(file=stream)
    print(f"KV-RM arbiter ({', '.join(K.MODES)}; kvclaims.lower.kvrm_proof):", file=stream)
    print(f"    {p.summary}", file=stream)
    print(f"    bound: {p.blocks} blocks, {p.requests} requests, 1 claim (any length, any mode), "
          f"{p.bound} arbiter transitions (admit, refuse, alloc, commit, eos, demote, expire); "
          f"k-induction k={p.k if p.k is not None else '-'}", file=stream)
    if r.status == "witness":
        print(f"    FINDING: witness ({len(r.events)} events; replay "
              f"{'confirms' if r.confirmed else 'DISAGREES'} {r.rule}):", file=stream)
        for line in witness_kvt(r.events).splitlines():
            print(f"      {line}", file=stream)
    if r.status == "unknown":
        return None
    return r.status == "proved"


PROVE_REPORT_VERSION = 1  # `kvclaims prove --format json` (schemas/prove.schema.json)


def _witness_dict(w: Any, steps: tuple[str, ...]) -> dict[str, Any] | None:
    if w is None:
        return None
    return {"depth": w.depth, "steps": list(steps), "rule": w.rule, "confirmed": w.confirmed,
            "kvt": witness_kvt(w.events).splitlines()}


def _prove_json(results: list[Any], kvrm: Any, stream: IO[str]) -> int:
    """The prove report as one JSON object; the exit code as for the text."""
    import json

    cases = []
    for r in results:
        result = "inconclusive" if r.inconclusive else "rejected" if r.ok else "failed"
        cases.append({
            "name": r.name, "kind": r.kind, "mode": r.mode, "file": r.file, "result": result,
            "reason": r.reason or None, "decided_class": r.decision.cls,
            "decided_reason": r.decision.reason,
            "contradictions": [what for _, _, what in r.decision.contradictions],
            "witness": _witness_dict(r.decision.witness, tuple(r.steps)),
            "why_failed": r.why if not r.ok and not r.inconclusive else None,
            "inconclusive": r.inconclusive or None})
    k = kvrm.result
    kvrm_status = k.status  # proved | witness | unknown
    doc = {
        "report_version": PROVE_REPORT_VERSION,
        "rejected": sum(c["result"] == "rejected" for c in cases),
        "failed": sum(c["result"] == "failed" for c in cases),
        "inconclusive": sum(c["result"] == "inconclusive" for c in cases),
        "total": len(cases),
        "cases": cases,
        "kvrm": {"summary": kvrm.summary, "status": kvrm_status, "blocks": kvrm.blocks,
                 "requests": kvrm.requests, "bound": kvrm.bound, "k": kvrm.k,
                 "witness": ({"rule": k.rule, "confirmed": k.confirmed,
                              "kvt": witness_kvt(k.events).splitlines()}
                             if kvrm_status == "witness" else None)},
    }
    stream.write(json.dumps(doc, indent=2) + "\n")
    if doc["failed"] or kvrm_status == "witness":
        return 1
    return 3 if doc["inconclusive"] or kvrm_status == "unknown" else 0
