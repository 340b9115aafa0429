"""Typo campaign (issue 16): every single-field typo of the corpus's violating traces.

For each JSON Lines trace of the reference corpus and of the repository's traces/ (the rule
traces' JSON Lines twins among them) whose plain check is a violation, and for each
field of each event line, the line is rewritten with one typo in that field, and the whole trace
is checked again in process (`check_stream`, replay engine):

- key typos: the key with its middle character deleted, and with its two middle characters
  swapped (skipped when the typo is another key the event may carry, or the same key);
- value typos (string values): the value with its middle character deleted, and, for a closed
  field (spec/fields.toml `values`), its title-case spelling (`Post_Hoc`).

A typo must never turn the violation into `conformant`. Two steps, so that the very same typos
can be checked by another checker (e.g. the commit before issue 16, for comparison):

    .venv/bin/python bench/typo_campaign.py generate /tmp/typos.jsonl
    .venv/bin/python bench/typo_campaign.py check /tmp/typos.jsonl
    PYTHONPATH=OLD_CHECKOUT/checker .venv/bin/python bench/typo_campaign.py check /tmp/typos.jsonl

`check` prints a Markdown table (bench/typos.md records it).
"""

from __future__ import annotations

import argparse
import io
import json
import time
from collections import Counter
from pathlib import Path

from kvclaims import spec as spec_mod
from kvclaims.run import Options, check_stream

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parent.parent / "shared" / "corpus" / "resident-kv-artifacts" / "artifacts"
ROOTS = {"corpus": CORPUS, "traces": HERE.parent / "traces"}


def _check(data: bytes, name: str, spec: spec_mod.Spec) -> str:
    fh = io.BufferedReader(io.BytesIO(data))  # type: ignore[arg-type]
    return check_stream(fh, name, spec, Options(engine="replay", input_format="jsonl")).verdict


def _key_typos(key: str) -> list[str]:
    m = len(key) // 2
    out = [key[:m] + key[m + 1:]]
    if len(key) >= 2:
        out.append(key[:m - 1] + key[m] + key[m - 1] + key[m + 1:])
    return [t for t in dict.fromkeys(out) if t and t != key]


def _value_typos(value: str, closed: bool) -> list[str]:
    m = len(value) // 2
    out = [value[:m] + value[m + 1:]] if value else []
    if closed:
        out.append(value.title())
    return [t for t in dict.fromkeys(out) if t != value]


def typos(line: bytes, spec: spec_mod.Spec):  # type: ignore[no-untyped-def]
    """(what, field, typo, mutated line) of every single-field typo of one event line."""
    obj = json.loads(line)
    kind = obj.get("event")
    # (getattr: the same campaign runs against a checker from before issue 16, for comparison)
    allowed_keys = getattr(spec, "allowed_keys", None)
    allowed = allowed_keys(kind) if isinstance(kind, str) and allowed_keys else None
    for key, value in obj.items():
        if key == "event":
            continue
        for typo in _key_typos(key):
            if typo in obj or (allowed is not None and typo in allowed):
                continue  # another key of the event: not a typo
            new = {(typo if k == key else k): v for k, v in obj.items()}
            yield "key", key, typo, json.dumps(new).encode() + b"\n"
        if isinstance(value, str):
            f = spec.fields.get(key)
            values = getattr(f, "values", None) if f is not None else None
            if values is None and key == "protection_mode":
                values = frozenset(spec.mode_aliases)
            for typo in _value_typos(value, values is not None):
                if values is not None and typo in values:
                    continue
                new = {**obj, key: typo}
                yield "value", key, typo, json.dumps(new).encode() + b"\n"


def _resolve(rel: str) -> Path:
    label, _, rest = rel.partition(":")
    return ROOTS[label] / rest


def generate(out: Path) -> None:
    """Write every typo of every violating trace as one JSON line (the mutants)."""
    spec = spec_mod.load()
    n = 0
    paths = [(label, p) for label, root in ROOTS.items() for p in sorted(root.rglob("*.jsonl"))]
    with open(out, "w", encoding="utf-8") as fh:
        for label, path in paths:
            data = path.read_bytes()
            rel = f"{label}:{path.relative_to(ROOTS[label]).as_posix()}"
            if _check(data, rel, spec) != "violation":
                continue
            for i, line in enumerate(data.splitlines(keepends=True)):
                if line.strip():
                    for what, field, typo, new in typos(line, spec):
                        fh.write(json.dumps({"trace": rel, "line": i + 1, "what": what,
                                             "field": field, "typo": typo,
                                             "text": new.decode()}) + "\n")
                        n += 1
    print(f"{n} typos written to {out}")


def check(mutants: Path) -> None:
    """Check every mutant (whatever kvclaims is importable) and print the Markdown table."""
    spec = spec_mod.load()
    rows: dict[str, Counter[str]] = {}
    sizes: dict[str, int] = {}
    flips: list[str] = []
    cache: dict[str, list[bytes]] = {}
    start = time.perf_counter()
    with open(mutants, encoding="utf-8") as fh:
        for raw in fh:
            m = json.loads(raw)
            rel = m["trace"]
            if rel not in cache:
                cache[rel] = _resolve(rel).read_bytes().splitlines(keepends=True)
                sizes[rel] = len(cache[rel])
            lines = cache[rel]
            i = m["line"] - 1
            mutated = b"".join([*lines[:i], m["text"].encode(), *lines[i + 1:]])
            v = _check(mutated, rel, spec)
            rows.setdefault(rel, Counter())[v] += 1
            if v == "conformant":
                flips.append(f"{rel}:{m['line']}: {m['what']} {m['field']} -> {m['typo']!r}")
    seconds = time.perf_counter() - start
    totals: Counter[str] = Counter()
    cols = ("violation", "input_error", "inconclusive", "conformant")
    print("| violating trace | lines | typos | " + " | ".join(cols) + " |")
    print("|---|---:|---:|" + "---:|" * len(cols))
    for rel, v in rows.items():
        totals.update(v)
        print(f"| {rel} | {sizes[rel]} | {sum(v.values())} | "
              + " | ".join(str(v[c]) for c in cols) + " |")
    print(f"| **total** | | {sum(totals.values())} | "
          + " | ".join(str(totals[c]) for c in cols) + " |")
    print(f"\n{sum(totals.values())} typos checked in {seconds:.1f} s; "
          f"{len(flips)} turned the violation into conformant.")
    for f in flips:
        print(f"- {f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("step", choices=("generate", "check"))
    ap.add_argument("mutants", help="the file of typos (written by generate, read by check)")
    ap.add_argument("--corpus", default=str(CORPUS), help="the reference corpus's artifacts/")
    args = ap.parse_args()
    ROOTS["corpus"] = Path(args.corpus)
    if args.step == "generate":
        generate(Path(args.mutants))
    else:
        check(Path(args.mutants))


if __name__ == "__main__":
    main()
