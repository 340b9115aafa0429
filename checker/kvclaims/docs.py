"""Render spec/ as Markdown (docs/spec.md): the model as data, for people.

Adapts the loaded Spec to a document; a test regenerates it and fails when docs/spec.md is stale.
"""

from __future__ import annotations

from kvclaims.spec import Spec, formats_table, stream_formats


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|")


def _int(n: int | None) -> str:
    """An int bound as written in docs: 2^63-1 by name."""
    return "2^63-1" if n == 2**63 - 1 else str(n)


def render_spec(spec: Spec) -> str:
    out: list[str] = []
    w = out.append
    w("# The kvclaims spec (generated)\n")
    w("Generated from `spec/*.toml` by `kvclaims spec --format md`; do not edit by hand. "
      "The model in words is docs/model.md.\n")
    w("## Events (docs/model.md §5)\n")
    o = spec.order
    w("Keys are closed (docs/checking.md \"Closed input\"): a known event may carry only its "
      "required, read and carried fields, the base fields "
      + ", ".join(f"`{b}`" for b in spec.base_fields) + ", the order fields "
      + ", ".join(f"`{b}`" for b in (*o.batch_fields, o.source_field, *o.time_fields))
      + " and the informational names below; any other key is an input error. An unknown "
      "event name is not an input error (what it could affect is unknown).\n")
    w("| event | scope | .kvt spelling | required | reads | also carries | meaning |")
    w("|---|---|---|---|---|---|---|")
    for e in spec.events.values():
        idf = spec.subjects[e.subject]
        ident = f"<{spec.kvt_key(idf)}>" if idf else "-"
        req = ", ".join(f"`{r}`" for r in e.required) or "-"
        opt = ", ".join(f"`{r}`" for r in e.optional) or "-"
        car = ", ".join(f"`{r}`" for r in e.carries) or "-"
        w(f"| `{e.name}` | {e.scope} | `{e.subject} {ident} {e.verb}` | {req} | {opt} | {car} | "
          f"{_md_escape(e.doc)} |")
    w("\nInformational names (fields of the reference telemetry that no rule reads; accepted on "
      "every known event, values unchecked): "
      + ", ".join(f"`{n}`" for n in sorted(spec.informational)) + ".\n")
    w("\n## Fields\n")
    w("Every int field has a range; a closed field has a vocabulary and says what an unknown "
      "value does (`error`: an input error, exit 2; `unknown`: the claim is unknown). Other "
      "string fields are open.\n")
    w("| telemetry name | .kvt key | type | range or values | unknown value | meaning |")
    w("|---|---|---|---|---|---|")
    for f in spec.fields.values():
        t = f.type + (" or null" if f.nullable else "")
        if f.min is not None:
            dom = f"{f.min}..{_int(f.max)}"
        elif f.values is not None:
            dom = ", ".join(f"`{v}`" for v in sorted(f.values))
        else:
            dom = "-"
        w(f"| `{f.name}` | `{f.kvt}` | {t} | {dom} | {f.on_unknown or '-'} | "
          f"{_md_escape(f.doc)} |")
    w("\n## Partial order (`[order]`, docs/kvt.md)\n")
    w("- batch keys, in precedence: " + ", ".join(f"`{b}`" for b in o.batch_fields)
      + f"; `.kvt` `batch {{ }}` blocks write `{o.block_field}`")
    w(f"- source field (skew declarations relate two of its values): `{o.source_field}`")
    w("- time fields a skew bound is measured on, in precedence: "
      + ", ".join(f"`{t}`" for t in o.time_fields))
    w("\n## Claim lifecycle (docs/model.md §4)\n")
    w(f"Initial state `{spec.claim.initial}`. Under responsibility: "
      + ", ".join(f"`{s}`" for s in sorted(spec.responsible)) + ". Released: "
      + ", ".join(f"`{s}`" for s in sorted(spec.released)) + ".\n")
    w("| event | from | to |")
    w("|---|---|---|")
    for t in spec.claim.transitions.values():
        w(f"| `{t.event}` | {', '.join(sorted(t.sources))} | {t.target} |")
    w("\n## Offload sub-lifecycle (per `offload_generation`)\n")
    w("| event | from | to |")
    w("|---|---|---|")
    for t in spec.offload.transitions.values():
        w(f"| `{t.event}` | {', '.join(sorted(t.sources))} | {t.target} |")
    w("\nClaim-scoped outcomes of a restoration failure and the event that answers each: "
      + ", ".join(f"{k} → `{v}`" for k, v in spec.offload_outcome_events.items()) + ".\n")
    w("## Rules (docs/model.md §6)\n")
    w("| id | title | section | statement |")
    w("|---|---|---|---|")
    for r in spec.rules.values():
        w(f"| `{r.id}` | {r.title} | {r.section} | {_md_escape(r.sentence)} |")
    w("\n## Modes and their bundles\n")
    w("| runtime spelling | mode |")
    w("|---|---|")
    for a, m in spec.mode_aliases.items():
        w(f"| `{a}` | `{m}` |")
    w("")
    w("| mode | rules | gate |")
    w("|---|---|---|")
    for m in spec.modes.values():
        note = " (cannot be witnessed from the reference vocabulary)" if m.undecidable else ""
        w(f"| `{m.name}` | {', '.join(m.rules)}{note} | {m.gate or '-'} |")
    w("\n## Evidence gates (`--require`)\n")
    for g, reqs in spec.gates.items():
        w(f"- `{g}`: " + ", ".join(f"`{r}`" for r in reqs))
    w("\n## Value vocabularies\n")
    for k, v in spec.values.items():
        w(f"- {k}: `{v}`")
    _streams(w)
    return "\n".join(out) + "\n"


def _streams(w) -> None:
    """spec/streams.toml and the version notes of spec/formats.toml (docs/formats.md)."""
    wire = formats_table()
    w("\n## KV event stream formats (`spec/streams.toml`, docs/formats.md)\n")
    w("What the join decides for each `--input-format` (the wire keys each importer reads are "
      "declared in `spec/formats.toml`). `copies`: `per_copy` (a remove that leaves a copy is "
      "no loss) or `deduplicated` (a repeated store or a remove of a block not stored is a "
      "stream inconsistency). Identity: the neutral field carrying each dimension (- : one "
      "value for the whole stream).\n")
    w("| format | hasher | copies | media → tiers | cleared | hash | tier | group | salt | "
      "LoRA | version note |")
    w("|---|---|---|---|---|---|---|---|---|---|---|")
    for f in stream_formats().values():
        ident = [f"`{f.identity[r]}`" if f.identity[r] else "-"
                 for r in ("hash", "tier", "group", "salt", "lora")]
        media = ", ".join(f"`{m}` {t}" for m, t in f.media.items())
        note = _md_escape(str(wire.get(f.name, {}).get("version", "-")))
        w(f"| `{f.name}` | {f.runtime} | {f.copies} | {media} | "
          f"{', '.join(sorted(f.cleared_tiers))} | " + " | ".join(ident) + f" | {note} |")
    w("\nThe event variants each format's neutral stream may carry (closed: a field outside "
      "the list is a stream finding naming it, where `on_unknown_field` is `unknown`):\n")
    w("| format | variant | fields (required in bold) | unknown field |")
    w("|---|---|---|---|")
    for f in stream_formats().values():
        for v in f.variants.values():
            fields = ", ".join(f"**`{x}`**" if x in v.required else f"`{x}`" for x in v.fields)
            w(f"| `{f.name}` | `{v.name}` | {fields or '-'} | {v.on_unknown_field} |")
