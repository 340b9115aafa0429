"""JUnit XML for CI systems: one testsuite per input file, one testcase per claim and rule.

Adapts a decided report; it decides nothing. A violation is a <failure>, an unknown is an
<error>, a rule not exercised is <skipped>, and an input error is an <error> on a testcase for
the file (with the findings on the part read, no claim cases). Each --require gate has one
testcase per requirement: a missing obligation or a violated rule is a <failure>, a pass in the
written order only an <error>; so the suite fails exactly when the overall result does.
Rules left out by --select/--ignore are named in the suite's `rules_left_out` property.
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape, quoteattr

from kvclaims import spec as spec_mod
from kvclaims.check import selection
from kvclaims.check.verdict import NOT_EXERCISED, UNKNOWN, VIOLATION, Report
from kvclaims.report.location import location, place


def render(reports: list[Report]) -> str:
    out = ['<?xml version="1.0" encoding="UTF-8"?>', "<testsuites>"]
    for rep in reports:
        cases = []
        failures = errors = 0
        if rep.error is not None:
            errors += 1
            e = rep.error
            where = place(rep.file, e.line, e.column)
            cases.append(f'  <testcase classname={quoteattr(rep.file)} name="input">'
                         f'<error message={quoteattr(e.message)}>{escape(where)}</error>'
                         "</testcase>")
        shown: set[tuple[str | None, str, str]] = set()  # (claim, rule, status) with a case
        first: dict[tuple[str | None, str], object] = {}  # the first finding per (claim, rule)
        for f in rep.findings:
            first.setdefault((f.claim_id, f.rule), f)
        for c in rep.claims:
            for rule, status in c.rules.items():
                shown.add((c.claim_id, rule, status))
                name = quoteattr(f"{c.claim_id} {rule}")
                finding: Any = first.get((c.claim_id, rule))
                where = (f"{location(rep.file, finding.line, finding.column, finding.event_index)}"
                         f": {finding.message}" if finding else "")
                if status == VIOLATION:
                    failures += 1
                    body = f'<failure message={quoteattr(where or rule)}>{escape(where)}</failure>'
                elif status == UNKNOWN:
                    errors += 1
                    body = f'<error message={quoteattr(where or rule)}>{escape(where)}</error>'
                elif status == NOT_EXERCISED:
                    body = "<skipped/>"
                else:
                    body = ""
                cases.append(f"  <testcase classname={quoteattr(rep.file)} name={name}>"
                             f"{body}</testcase>")
        for g in rep.gates:
            for req in dict.fromkeys((*g.requirements, *g.violated)):
                name = quoteattr(f"gate {g.bundle} {req}")
                if req in g.missing or req in g.violated:
                    failures += 1
                    why = (f"{rep.file}: gate {g.bundle}: "
                           + ("missing obligation " if req in g.missing else "violated rule ")
                           + req)
                    body = f'<failure message={quoteattr(why)}>{escape(why)}</failure>'
                elif g.status == UNKNOWN:
                    errors += 1
                    why = (f"{rep.file}: gate {g.bundle}: {req} witnessed in the written order "
                           "only; other admissible orders are unchecked")
                    body = f'<error message={quoteattr(why)}>{escape(why)}</error>'
                else:
                    body = ""
                cases.append(f"  <testcase classname={quoteattr(rep.file)} name={name}>"
                             f"{body}</testcase>")
        for f in rep.findings:
            # A finding no claim case carries (trace-level, about a claim the trace does not
            # accept, or on the part read before an input error) has its own case.
            if (f.claim_id, f.rule, f.status) not in shown:
                tag = "failure" if f.status == VIOLATION else "error"
                failures += f.status == VIOLATION
                errors += f.status != VIOLATION
                where = f"{location(rep.file, f.line, f.column, f.event_index)}: {f.message}"
                name = f.rule if f.claim_id is None else f"{f.claim_id} {f.rule}"
                cases.append(f"  <testcase classname={quoteattr(rep.file)} name={quoteattr(name)}>"
                             f"<{tag} message={quoteattr(where)}>{escape(where)}</{tag}></testcase>")
        out.append(f"<testsuite name={quoteattr(rep.file)} tests=\"{len(cases)}\" "
                   f"failures=\"{failures}\" errors=\"{errors}\">")
        # The overall result first (what the exit code says), then the rules' verdict.
        left_out = selection.summary(rep, spec_mod.load())
        out.append(f'  <properties><property name="result" value={quoteattr(rep.result)}/>'
                   f'<property name="verdict" value={quoteattr(rep.verdict)}/>'
                   + ("" if left_out is None else
                      f'<property name="rules_left_out" value={quoteattr(left_out)}/>')
                   + "</properties>")
        out.extend(cases)
        out.append("</testsuite>")
    out.append("</testsuites>")
    return "\n".join(out) + "\n"
