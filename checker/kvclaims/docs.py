"""Render spec/ as Markdown (docs/spec.md): the model as data, for people.

Adapts the loaded Spec to a document; a test regenerates it and fails when docs/spec.md is stale.
"""

from __future__ import annotations

from kvclaims.spec import Spec


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|")


def render_spec(spec: Spec) -> str:
    out: list[str] = []
    w = out.append
    w("# The kvclaims spec (generated)\n")
    w("Generated from `spec/*.toml` by `kvclaims spec --format md`; do not edit by hand. "
      "The model in words is docs/model.md.\n")
    w("## Events (docs/model.md §5)\n")
    w("Every event may also carry the base fields "
      + ", ".join(f"`{b}`" for b in spec.base_fields) + " and any unknown field (kept).\n")
    w("| event | scope | .kvt spelling | required | reads | meaning |")
    w("|---|---|---|---|---|---|")
    for e in spec.events.values():
        idf = spec.subjects[e.subject]
        ident = f"<{spec.kvt_key(idf)}>" if idf else "-"
        req = ", ".join(f"`{r}`" for r in e.required) or "-"
        opt = ", ".join(f"`{r}`" for r in e.optional) or "-"
        w(f"| `{e.name}` | {e.scope} | `{e.subject} {ident} {e.verb}` | {req} | {opt} | "
          f"{_md_escape(e.doc)} |")
    w("\n## Fields\n")
    w("| telemetry name | .kvt key | type | meaning |")
    w("|---|---|---|---|")
    for f in spec.fields.values():
        t = f.type + (" or null" if f.nullable else "")
        w(f"| `{f.name}` | `{f.kvt}` | {t} | {_md_escape(f.doc)} |")
    o = spec.order
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
    return "\n".join(out) + "\n"
