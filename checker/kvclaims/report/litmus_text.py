"""Render `kvclaims litmus` rows (kvclaims.litmus.LitmusResult) as a text matrix or JSON.

Rendering only: the rows were decided in kvclaims.litmus (docs/model.md §8). One line per case:
case, policy, expected, observed, verdict; a row that disagrees shows the differing facts.
"""

from __future__ import annotations

import json
from typing import Any

# The JSON report's version (checker/kvclaims/schemas/litmus.schema.json); it was `"schema":
# "kvclaims.litmus/1"` before every report took one `report_version` key (issue 20).
REPORT_VERSION = 1
_HEADERS = ("case", "policy", "expected", "observed", "verdict")


def _value(v: Any) -> str:
    if isinstance(v, list):
        return "[" + ",".join(str(x) for x in v) + "]"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return str(v)


def _facts(facts: dict[str, Any], keys: list[str]) -> str:
    return " ".join(f"{k}={_value(facts.get(k))}" for k in keys)


def render_text(result: Any) -> str:
    lines = []
    table = []
    for r in result.rows:
        keys = list(r.expected)
        observed = _facts(r.observed, keys)
        table.append((r.case, r.policy, _facts(r.expected, keys), observed, r.verdict))
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(_HEADERS[:2])]
    lines.append(f"{'case':<{widths[0]}}  {'policy':<{widths[1]}}  verdict  expected (observed shown where it differs)")
    for (case, policy, exp, obs, verdict), r in zip(table, result.rows):
        lines.append(f"{case:<{widths[0]}}  {policy:<{widths[1]}}  {verdict:<7}  {exp}")
        if not r.agrees:
            diff = [k for k in r.expected if r.observed.get(k) != r.expected[k]]
            lines.append(f"{'':<{widths[0]}}  {'':<{widths[1]}}  {'':<7}  observed: "
                         f"{_facts(r.observed, diff)}")
    agree = sum(1 for r in result.rows if r.agrees)
    lines.append("")
    lines.append(f"{agree}/{len(result.rows)} litmus cases agree with the model"
                 + ("" if result.ok else " (disagreements above)"))
    return "\n".join(lines) + "\n"


def render_json(result: Any) -> str:
    doc = {
        "report_version": REPORT_VERSION,
        "ok": result.ok,
        "agree": sum(1 for r in result.rows if r.agrees),
        "total": len(result.rows),
        "rows": [{"case": r.case, "policy": r.policy, "title": r.title,
                  "expected": r.expected, "observed": {k: r.observed.get(k) for k in r.expected},
                  "verdict": r.verdict, "trace": r.trace} for r in result.rows],
    }
    return json.dumps(doc, indent=2, sort_keys=False) + "\n"
