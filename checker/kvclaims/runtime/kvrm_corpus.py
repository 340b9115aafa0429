"""The KV-RM corpus (traces/kvrm/): named workloads, with and without one fault each, and the
verdict the checker must give (docs/model.md §10). Data only; scripts/regen-kvrm-traces writes the files."""

from __future__ import annotations

from kvclaims.runtime.kvrm import (
    DEMOTABLE, EXPIRING, FAULT_RULE, FAULTS, HARD, KvrmClaim, KvrmRequest, KvrmWorkload,
)

MIXED = KvrmWorkload(
    max_batch=3, max_blocks=8, usable=12, claims=(KvrmClaim("claim:sys", "sys", 3, HARD),),
    requests=(KvrmRequest("a", 0, 2, 3, "claim:sys"), KvrmRequest("b", 0, 1, 4),
              KvrmRequest("c", 1, 2, 2, "claim:sys"), KvrmRequest("d", 2, 4, 4),
              KvrmRequest("e", 3, 6, 2), KvrmRequest("f", 3, 8, 0)),
    summary_window=None, run_id="kvrm-mixed")


def pressure(mode: str) -> KvrmWorkload:
    """A claimed 4-block prefix, a request that would need 5 + 2 of 10 blocks: refused (hard),
    refused while the prefix is in use (demotable), expired at tick 3 (expiring)."""
    return KvrmWorkload(
        max_batch=2, max_blocks=8, usable=10,
        claims=(KvrmClaim("claim:r", "r", 4, mode, 3 if mode == EXPIRING else None),),
        requests=(KvrmRequest("x", 0, 2, 2, "claim:r"), KvrmRequest("y", 1, 5, 2),
                  KvrmRequest("z", 6, 3, 3), KvrmRequest("v", 7, 6, 1)),
        summary_window=2, run_id=f"kvrm-pressure-{mode}")


def cases() -> dict[str, tuple[KvrmWorkload, tuple[str, ...], dict]]:
    out: dict[str, tuple[KvrmWorkload, tuple[str, ...], dict]] = {
        "ok-mixed.kvt": (MIXED, (), {"verdict": "conformant", "violated": []}),
    }
    for mode in (HARD, DEMOTABLE, EXPIRING):
        out[f"ok-pressure-{mode}.kvt"] = (pressure(mode), (),
                                          {"verdict": "conformant", "violated": []})
    for fault in sorted(FAULTS):
        w = pressure(HARD) if fault == "summary_as_materialization" else MIXED
        out[f"bad-{fault.replace('_', '-')}.kvt"] = (
            w, (fault,), {"verdict": "violation", "violated": [FAULT_RULE[fault]]})
    return out
