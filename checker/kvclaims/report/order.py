"""The `order` part of a report of a partly ordered trace (docs/partial.md, docs/report-format.md).

Summarises what the Z3 engine (kvclaims.check.partial) decided over the admissible orders for every
view (JSON, text): the unordered parts whose order some finding reads are detailed with each
witness's order of them; the others are only counted, with why their order cannot matter. It
decides nothing.
"""

from __future__ import annotations

from typing import Any

# Why an unordered part the report only counts cannot change the result (docs/partial.md).
ORDER_FREE_REASON = ("no finding's condition reads the order of these parts: every admissible "
                     "order of them gives the same findings")


def order_summary(extra: dict[str, Any]) -> dict[str, Any] | None:
    """`order` of a partly ordered trace decided by the Z3 engine: the answer over its admissible
    orders, the unordered parts whose order matters (`conflicting`, with each witness's order of
    them), and only counts for the others (`order_free`): the object grows with the conflicting
    parts, not with the trace. None for a totally ordered trace."""
    how = extra.get("linearizations")
    if how is None:
        return None
    parts = extra.get("unordered", ())
    detailed = extra.get("conflicting_parts", ())
    detailed_events = sum(b - a + 1 for a, b in extra.get("conflicting", ()))
    events = sum(b - a + 1 for a, b in parts)
    return {
        "linearizations": how,
        "parts": len(parts),
        "unordered_events": events,
        "conflicting": [{"events": d["events"], "lines": d["lines"], **d["orders"],
                         "witnesses": d["witnesses"]} for d in detailed],
        "order_free": {"parts": len(parts) - len(detailed),
                       "events": events - detailed_events, "reason": ORDER_FREE_REASON},
    }
