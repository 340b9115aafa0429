"""Reports of batched traces stay small (issue 22, item 3; docs/partial.md, "Which parts the
report details"): the JSON report of n order-free batches and k conflicting ones grows with k, not
with n; the views (text, JSON, JUnit, explain) agree on the verdict; and `check --witness` still writes whole orders that
re-check as written.

Generated: a trace of k soft claims, each with a conflicting batch (its harm and the victim it
reports: harm first conforms, victim first is a silent loss), and n batches of victims of blocks no
claim holds, in any interleaving.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from kvclaims.cli import cli

FREE, CONFLICT = "free", "conflict"


def batched_trace(kinds: list[str]) -> str:
    """A .kvt trace: the claims, then one batch per entry of `kinds`, in that order."""
    k = kinds.count(CONFLICT)
    lines = ["kvtrace 1"]
    for j in range(k):
        c, b = f"claim:r{j}", 10 * j + 1
        lines += [f"claim {c} accepted mode=soft_priority required=2 "
                  f"predicate=leading_prefix_at_least(2) prefix=p{j} usable=64",
                  f"block {b} materialized claim={c} prefix=p{j} position=0",
                  f"block {b + 1} materialized claim={c} prefix=p{j} position=1",
                  f"claim {c} materialized"]
    lines.append("active a admitted required=7 usable=64")
    fresh, j = 1000, 0
    for kind in kinds:
        lines.append("batch {")
        if kind == CONFLICT:
            lines += [f"claim claim:r{j} harmed",
                      f"block {10 * j + 2} victim request=a reason=cached_prefix_reuse usable=64"]
            j += 1
        else:
            for _ in range(3):
                lines.append(f"block {fresh} victim request=a reason=cached_prefix_reuse "
                             "usable=64")
                fresh += 1
        lines.append("}")
    lines.append("active a refused")
    return "\n".join(lines) + "\n"


def _check(runner: CliRunner, path: Path, *args: str) -> tuple[int, str]:
    res = runner.invoke(cli, ["check", str(path), *args])
    return res.exit_code, res.stdout


@st.composite
def interleavings(draw: st.DrawFn) -> list[str]:
    n = draw(st.integers(1, 30))
    k = draw(st.integers(0, 3))
    return draw(st.permutations([FREE] * n + [CONFLICT] * k))


@settings(max_examples=15, deadline=None)
@given(interleavings())
def test_report_grows_with_conflicting_parts_not_batches(kinds):
    n, k = kinds.count(FREE), kinds.count(CONFLICT)
    runner = CliRunner()
    with tempfile.TemporaryDirectory() as tmp:
        trace, ref = Path(tmp) / "t.kvt", Path(tmp) / "r.kvt"
        trace.write_text(batched_trace(kinds))
        # the same conflicting batches with a single order-free batch
        ref.write_text(batched_trace([FREE] + [CONFLICT] * k))
        code, out = _check(runner, trace, "--format", "json")
        code_ref, out_ref = _check(runner, ref, "--format", "json")
        doc, doc_ref = json.loads(out.splitlines()[0]), json.loads(out_ref.splitlines()[0])

        # order-free batches change no verdict, in any view
        assert doc["verdict"] == doc_ref["verdict"] == ("inconclusive" if k else "conformant")
        assert code == code_ref == (3 if k else 0)
        assert _check(runner, trace)[0] == code
        junit = _check(runner, trace, "--format", "junit")[1]
        assert ("<failure" in junit or "<error" in junit) == bool(k)
        html = Path(tmp) / "x.html"
        assert runner.invoke(cli, ["explain", str(trace), "--out", str(html)]).exit_code == 0
        drawn = html.read_text()
        assert {v for v in ("CONFORMANT", "VIOLATION", "INCONCLUSIVE") if v in drawn} == \
            {doc["verdict"].upper()}

        # only the conflicting batches are detailed, the rest counted
        order = doc["order"]
        assert order["parts"] == n + k and order["unordered_events"] == 3 * n + 2 * k
        assert len(order["conflicting"]) == k
        assert order["order_free"] == {"parts": n, "events": 3 * n,
                                       "reason": order["order_free"]["reason"]}
        for part in order["conflicting"]:
            first, last = part["events"]
            assert last - first == 1 and sorted(part["violating"]) == [first, last]
            assert sorted(part["conforming"]) == [first, last]
        # the witnesses differ in the order of some conflicting part
        assert not k or any(p["violating"] != p["conforming"] for p in order["conflicting"])

        # size: a constant plus a term per conflicting part (its claim, findings and witness
        # orders), whatever n; listing every batch took ~400 bytes per batch
        size = len(out.splitlines()[0])
        assert size <= 1200 + 2400 * k, (size, n, k)

        # --witness still writes whole orders that re-check as written
        prefix = Path(tmp) / "w"
        assert _check(runner, trace, "--witness", str(prefix))[0] == code
        bad, good = Path(f"{prefix}.violating.kvt"), Path(f"{prefix}.conforming.kvt")
        assert bad.exists() == bool(k)
        if k:
            assert _check(runner, bad)[0] == 1
        assert _check(runner, good)[0] == 0
        def events(text: str) -> list[tuple[str, ...]]:  # (subject, id, event), any field order
            return [tuple(ln.split()[:3]) for ln in text.splitlines()
                    if ln and not ln.startswith(("#", "kvtrace")) and ln not in ("batch {", "}")]
        assert sorted(events(good.read_text())) == sorted(events(trace.read_text()))
