"""JUnit XML for CI systems: one testsuite per input file, one testcase per claim and rule.

Adapts a report; a violation is a <failure>, an unknown is an <error>, a rule not exercised is
<skipped>, and an input error is an <error> on a testcase for the file.
"""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from kvclaims.check.verdict import NOT_EXERCISED, UNKNOWN, VIOLATION, Report


def render(reports: list[Report]) -> str:
    out = ['<?xml version="1.0" encoding="UTF-8"?>', "<testsuites>"]
    for rep in reports:
        cases = []
        failures = errors = 0
        if rep.error is not None:
            errors += 1
            cases.append(f'  <testcase classname={quoteattr(rep.file)} name="input">'
                         f'<error message={quoteattr(rep.error.message)}>'
                         f'{escape(f"{rep.file}:{rep.error.line}:{rep.error.column}")}</error>'
                         "</testcase>")
        for c in rep.claims:
            for rule, status in c.rules.items():
                name = quoteattr(f"{c.claim_id} {rule}")
                finding = next((f for f in rep.findings
                                if f.claim_id == c.claim_id and f.rule == rule), None)
                where = (f"{rep.file}:{finding.line}:{finding.column}: {finding.message}"
                         if finding else "")
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
        for f in rep.findings:
            if f.claim_id is None:
                tag = "failure" if f.status == VIOLATION else "error"
                failures += f.status == VIOLATION
                errors += f.status != VIOLATION
                where = f"{rep.file}:{f.line}:{f.column}: {f.message}"
                cases.append(f"  <testcase classname={quoteattr(rep.file)} name={quoteattr(f.rule)}>"
                             f"<{tag} message={quoteattr(where)}>{escape(where)}</{tag}></testcase>")
        out.append(f"<testsuite name={quoteattr(rep.file)} tests=\"{len(cases)}\" "
                   f"failures=\"{failures}\" errors=\"{errors}\">")
        out.extend(cases)
        out.append("</testsuite>")
    out.append("</testsuites>")
    return "\n".join(out) + "\n"
