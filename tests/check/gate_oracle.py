"""Test oracle: the offloadable gate recomputed over the recorded history (issue 22 item 4).

The computation kvclaims.check.gate used before the gate became per-claim state updated per event,
kept here, outside the package, only so tests/check/test_gate_incremental.py can compare the two
on generated histories. Quadratic in the number of offload events; never used by the checker.
"""

from __future__ import annotations

from typing import Any, Callable

from kvclaims.check.gate import Rec, _is, _names
from kvclaims.check.predicate import parse_predicate
from kvclaims.spec import Spec


class _Claims:
    """Per-claim view of the recorded events."""

    def __init__(self, spec: Spec, records: list[Rec]):
        self.spec = spec
        self.records = records
        E = spec.events
        self.scope = {name: e.scope for name, e in E.items()}

    def of(self, cid: str) -> list[Rec]:
        out = []
        for rec in self.records:
            f = rec[2]
            if f.get("claim_id") == cid or cid in (f.get("blocking_claim_ids") or ()):
                out.append(rec)
        return out

    def single_valued(self, recs: list[Rec], name: str) -> bool:
        values = {f.get(name) for _, _, f in recs if f.get(name) is not None}
        return len(values) == 1


def _first(recs: list[Rec], after: int, pred: Callable[[str, dict[str, Any]], bool]) -> int | None:
    for i, kind, f in recs:
        if i > after and pred(kind, f):
            return i
    return None


def offloadable_missing_oracle(spec: Spec, records: list[Rec]) -> list[str]:
    """The offloadable gate as it was decided before issue 22 item 4: over the whole
    recorded history, once per accepted claim (quadratic)."""
    N = _names(spec)
    req = spec.gates["offloadable"]
    consts = spec.offload_constants
    outcomes = spec.offload_outcome_events
    post_hoc = spec.values["post_hoc_registration"]
    view = _Claims(spec, records)
    accepted = [(i, f) for i, k, f in records
                if k == N.accepted and f.get("claim_id") is not None]
    if not accepted:
        return sorted(req)
    missing: set[str] = set()
    for acc_i, acc in accepted:
        cid = acc["claim_id"]
        recs = view.of(cid)
        met: dict[str, bool] = {}
        first_i = recs[0][0] if recs else acc_i
        met["pre_registered_accepted_claim"] = (
            acc.get("claim_registration") != post_hoc and first_i == acc_i)
        met["stable_claim_id_and_fixed_materialization_predicate"] = (
            view.single_valued(recs, "materialization_predicate")
            and parse_predicate(acc.get("materialization_predicate") or "") is not None)
        met["reusable_object_id"] = view.single_valued(recs, "reusable_object_id")
        met["fixed_cache_identity_and_deterministic_request_token_map"] = (
            view.single_valued(recs, "cache_identity")
            and view.single_valued(recs, "request_token_map_id"))
        mat_i = _first(recs, acc_i, lambda k, f: k == N.materialized
                       and f.get("predicate_materialized") is not False)
        met["materialization_predicate"] = (
            mat_i is not None and met["stable_claim_id_and_fixed_materialization_predicate"])

        def gen_of(f: dict[str, Any]) -> Any:
            return f.get("offload_generation")

        success_end = None
        failure_end = None
        success_start = failure_start = None
        for off_i, k, f in recs:
            if k != N.offloaded:
                continue
            if f.get("cache_tier_from") not in (None, consts["gpu_tier"]) or \
                    f.get("cache_tier_to") not in (None, consts["host_tier"]):
                continue
            g = gen_of(f)
            same = [(i, kk, ff) for i, kk, ff in recs if i > off_i and gen_of(ff) == g]
            rr = _first(same, off_i, lambda kk, ff: kk == N.restore_required)
            if rr is None:
                continue
            restored = _first(same, rr, lambda kk, ff: kk == N.restored)
            failed = _first(same, rr, lambda kk, ff: kk == N.restoration_failed)
            if restored is not None and failed is None:
                ok_src = [ff for i, kk, ff in same if i == restored][0]
                reuse_before = _first(same, rr, lambda kk, ff:
                                      kk == N.reuse_after_restore)
                if (ok_src.get("restoration_source") == consts["restore_source"]
                        and ok_src.get("restored_from_offload_tier") is not False
                        and ok_src.get("cache_tier_from") in (None, consts["host_tier"])
                        and reuse_before is not None and reuse_before > restored):
                    reuse = [ff for i, kk, ff in same if i == reuse_before][0]
                    if reuse.get("predicate_satisfied") is not False and success_end is None:
                        success_start, success_end = off_i, reuse_before
            if failed is not None:
                fev = [ff for i, kk, ff in same if i == failed][0]
                otype = fev.get("claim_scoped_outcome_type")
                if (isinstance(otype, str) and otype in outcomes
                        and fev.get("outcome_claim_id") == cid
                        and (_is(fev.get("controlled_restoration_unavailable"))
                             or _is(fev.get("injected_restoration_failure")))):
                    want = outcomes[otype]

                    def answers(kk: str, ff: dict[str, Any]) -> bool:
                        if kk != want:
                            return False
                        if want == N.refused:
                            return (cid in (ff.get("blocking_claim_ids") or ())
                                    and ff.get("outcome_claim_id", cid) == cid)
                        return ff.get("claim_id") == cid

                    out_i = _first(recs, failed, answers)
                    restored_after = _first(same, failed,
                                            lambda kk, ff: kk == N.restored)
                    if out_i is not None and restored_after is None and failure_end is None:
                        failure_start, failure_end = off_i, out_i
        met["offload_restorability"] = success_end is not None
        met["restoration_failure_outcome"] = failure_end is not None
        met["ordered_lifecycle_events"] = (
            mat_i is not None and success_end is not None and failure_end is not None
            and acc_i < mat_i < (success_start or 0) and success_end < (failure_start or 0))
        missing.update(r for r in req if not met.get(r, False))
    # The reference analyzers list missing requirements sorted by id.
    return sorted(r for r in req if r in missing)
